/* grpo.c: Group Relative Policy Optimization (Shao et al. 2024) on a decoder's LM head
 * (objective.h), as TRL 1.16's GRPOTrainer computes it. A batch holds groups of k rows
 * (GrpoSpec.generations), one prompt and each of k completions the policy sampled for it, labels
 * on the completion and its stop token only (the trainer's rollout); a generation is the batches
 * of one optimizer step, sampled together and trained on num_iterations times (GrpoSpec.
 * iterations). Per row b with reward r_b:
 *   A_b    = r_b - mean of its group's r, then (scale group) / (std of the group + 1e-4),
 *            (batch) / (std of the generation + 1e-4), (none) as it is; std with Bessel's
 *   loss   = sum over the completion tokens t of row b of grpo_token.h's
 *            w_b (-min(c A_b, clamp(c) A_b) + beta c kl_bt), c = exp(logp_bt - logp_old_bt)
 *            (GSPO, GrpoSpec.sequence: one c a row, exp of the row's mean of logp - logp_old),
 *            kl_bt = exp(x) - x - 1, x = ref_bt - logp_bt (the reference: the adapters off);
 *            cispo's and sapo's policy terms in place of the min (grpo_token.h)
 *   w_b    = dapo, cispo: the step's micro-batches / the generation's completion tokens (the
 *            step's loss being the mean of its micro-batches'); bnpo: 1 / the batch's; grpo, sapo:
 *            1 / (B n_b), n_b row b's tokens; dr_grpo: 1 / (B max_completion_length)
 * On a generation's first pass the policy is the sampler (c = 1, no clipping) and, a token's loss
 * being -log p, each token's gradient weight is w_b A_b at beta 0 (TRL's default), known from the
 * rewards and the labels before the forward: the host forms the weights (grpo_set_rewards) and
 * the training forward writes dhidden in its one pass over the head, as causal-lm's; the loss
 * (about 0) and the statistics are the host's. With beta > 0, on a later pass (the policy has
 * moved: grpo_set_old gives the first pass's per-token losses) or for cispo (whose loss is the
 * log-probs times a constant), the weights or the loss depend on the forward's log-probs: the
 * policy's forward forms them on the device (ops.h grpo_weights), and the backward's pass over the
 * head reads them, as DPO's. */
#include <math.h>
#include <string.h>

#include "loraft/grpo_token.h"
#include "loraft/objective.h"

GrpoLoss grpo_loss_named(const char *name) {
    static const char *const names[] = {"dapo", "grpo", "bnpo", "dr_grpo", "cispo", "sapo"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(name, names[i])) return (GrpoLoss)i;
    return (GrpoLoss)-1;
}

GrpoScale grpo_scale_named(const char *name) {
    static const char *const names[] = {"group", "batch", "none"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(name, names[i])) return (GrpoScale)i;
    return (GrpoScale)-1;
}

/* The op's constants (grpo_token.h) from the spec. */
static OpsGrpoTerms terms_of(const GrpoSpec *s) {
    OpsGrpoPolicy policy = s->loss == GRPO_CISPO  ? OPS_GRPO_CISPO
                           : s->loss == GRPO_SAPO ? OPS_GRPO_SAPO
                                                  : OPS_GRPO_CLIP;
    return (OpsGrpoTerms){s->beta,     s->eps_low,  s->eps_high, s->delta,
                          s->sapo_pos, s->sapo_neg, s->sequence, policy};
}

/* Per-token labels as causal-lm's; n_valid counts rows. */
static int grpo_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    int k = m->spec.grpo.generations;
    if (k < 2 || B % k)
        return lf_fail(err, "a GRPO batch holds groups of %d completions, not %d rows", k, B);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B;
    m->has_ref = m->has_old = 0; /* a new batch: its reference and old losses still to come */
    return 0;
}

/* Whether the forward decides the tokens' weights (grpo_token.h): with a KL penalty, with the
 * sampling policy's losses (a generation's later pass), or for cispo, whose loss is the
 * log-probs' (its weights the host's all the same on a first pass, but not its loss). */
static int weights_on_device(const Model *m) {
    const GrpoSpec *s = &m->spec.grpo;
    return m->grpo_adv && (s->beta > 0 || m->has_old || s->loss == GRPO_CISPO);
}

/* row_scale [max_batch * max_len], which the host fills for a first pass at beta 0; where the
 * forward may decide the weights, their shares and advantages, and the reference's and the
 * sampling policy's losses. */
static void grpo_plan(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len;
    const GrpoSpec *s = &m->spec.grpo;
    int device = m->n_grads > 0 && (s->beta > 0 || s->iterations > 1 || s->loss == GRPO_CISPO);
    row_weighted_plan(m, pl);
    PLAN_TAKE(pl, &m->grpo_share, N, device, NULL);
    PLAN_TAKE(pl, &m->grpo_adv, N, device, NULL);
    PLAN_TAKE(pl, &m->ref_losses, N, device && s->beta > 0, NULL);
    PLAN_TAKE(pl, &m->old_losses, N, device && s->iterations > 1, NULL);
}

/* The sample standard deviation (Bessel's) of x[0..n), n >= 2. */
static double sample_std(const float *x, int n) {
    double mean = 0, sq = 0;
    for (int i = 0; i < n; i++) mean += x[i] / (double)n;
    for (int i = 0; i < n; i++) sq += (x[i] - mean) * (x[i] - mean);
    return sqrt(sq / (n - 1));
}

/* a[B]: each row's reward less its group's mean, scaled as s says (under scale batch by the std of
 * all[n], the generation's rewards); returns the rows whose std is 0, TRL's torch.isclose(std,
 * 0). */
static int advantages(double *a, const float *r, const GrpoSpec *s, int B, const float *all,
                      int n) {
    int k = s->generations, zero = 0;
    double batch_std = s->scale == GRPO_SCALE_BATCH ? sample_std(all, n) : 0.0;
    for (int g = 0; g < B; g += k) {
        double mean = 0, std = s->scale == GRPO_SCALE_BATCH ? batch_std : sample_std(r + g, k);
        for (int b = g; b < g + k; b++) mean += r[b] / (double)k;
        for (int b = g; b < g + k; b++)
            a[b] = s->scale == GRPO_SCALE_NONE ? r[b] - mean : (r[b] - mean) / (std + 1e-4);
        zero += std <= 1e-8 ? k : 0;
    }
    return zero;
}

/* w_b: the share of the step's loss each of row b's n[b] tokens carries; tokens, the batch's. */
static double token_share(const GrpoSpec *s, const GrpoGeneration *g, const int *n, int b,
                          long tokens, int B) {
    switch (s->loss) {
    case GRPO_GRPO:
    case GRPO_SAPO:
        return 1.0 / ((double)B * (n[b] > 0 ? n[b] : 1)); /* TRL clamps the count at 1 */
    case GRPO_DR_GRPO:
        return 1.0 / ((double)B * s->max_completion);
    case GRPO_DAPO:
    case GRPO_CISPO: /* TRL's num_items_in_batch: the generation's tokens */
        return g ? g->batches / (double)(g->tokens > 0 ? g->tokens : 1)
                 : 1.0 / (double)(tokens > 0 ? tokens : 1);
    case GRPO_BNPO:
        break;
    }
    return 1.0 / (double)(tokens > 0 ? tokens : 1);
}

int grpo_set_rewards(Model *m, const float *rewards, const GrpoGeneration *gen, LfError *err) {
    const GrpoSpec *s = &m->spec.grpo;
    const int32_t *y = m->host_labels; /* the shifted labels */
    int B = m->B, T = m->T, n[OPS_RLOO_MAX_ROWS] = {0};
    size_t N = (size_t)B * T;
    long tokens = 0;
    double a[OPS_RLOO_MAX_ROWS];
    if (B > OPS_RLOO_MAX_ROWS)
        return lf_fail(err, "a GRPO batch of %d rows: at most %d", B, OPS_RLOO_MAX_ROWS);
    /* the host's room for the weights (Objective.host_per_token): a first pass's (the ratio 1),
     * then w and A apart */
    float *wa = m->host_weights, *share = wa + N, *adv = wa + 2 * N;
    OpsGrpoTerms t = terms_of(s);
    for (size_t i = 0; i < N; i++) n[i / T] += y[i] >= 0;
    for (int b = 0; b < B; b++) tokens += n[b];
    m->grpo_zero_std =
        advantages(a, rewards, s, B, gen ? gen->rewards : rewards, gen ? gen->rows : B);
    m->grpo_loss = m->grpo_reward = m->grpo_positive = 0;
    m->grpo_tokens = (double)tokens;
    for (int b = 0; b < B; b++) {
        double w = token_share(s, gen, n, b, tokens, B);
        GrpoTerm first = grpo_term(&t, 1.0, a[b]); /* at ratio 1 (cispo's loss needs lp) */
        for (size_t i = (size_t)b * T; i < (size_t)(b + 1) * T; i++) {
            wa[i] = (float)(-w * (first.by_ratio + first.direct));
            share[i] = y[i] >= 0 ? (float)w : 0.0f, adv[i] = (float)a[b];
        }
        m->grpo_loss += w * n[b] * first.ratio_value;
        m->grpo_reward += rewards[b];
        m->grpo_positive += a[b] > 0;
    }
    if (m->row_scale) m->ops->upload(m->row_scale, wa, N * sizeof *wa);
    if (m->grpo_adv) {
        m->ops->upload(m->grpo_share, share, N * sizeof *share);
        m->ops->upload(m->grpo_adv, adv, N * sizeof *adv);
    }
    return 0;
}

/* Per-token losses [B*T] from the host into dst, a buffer the plan sized where `needs` holds. */
static int upload_losses(Model *m, float *dst, const float *host, const char *what,
                         const char *needs, LfError *err) {
    if (!dst) return lf_fail(err, "GRPO's %s need %s and a trainable model", what, needs);
    m->ops->upload(dst, host, (size_t)m->B * m->T * sizeof *host);
    return 0;
}

int grpo_set_reference(Model *m, const float *ref, LfError *err) {
    if (upload_losses(m, m->ref_losses, ref, "reference losses", "beta > 0", err)) return -1;
    m->has_ref = 1;
    return 0;
}

int grpo_set_old(Model *m, const float *old, LfError *err) {
    if (upload_losses(m, m->old_losses, old, "old log-probs", "num_iterations > 1", err)) return -1;
    m->has_old = 1;
    return 0;
}

static int grpo_loss(Model *m, LfError *err) {
    const GrpoSpec *s = &m->spec.grpo;
    size_t N = (size_t)m->B * m->T;
    m->grpo_forward_weights = 0;
    if (m->adapters_off) { /* the reference forward: its per-token losses kept */
        m->loss_scale = 1.0f;
        lm_head_run(m, 0, 0, NULL);
        if (m->ref_losses) m->ops->copy(m->ref_losses, m->losses, N * sizeof(float));
        m->has_ref = 1;
        return 0;
    }
    if (!weights_on_device(m)) { /* the weights are the host's */
        token_weighted_loss(m, m->row_scale);
        return 0;
    }
    if (s->beta > 0 && !m->has_ref)
        return lf_fail(err, "GRPO's KL penalty needs the batch's reference forward first");
    m->loss_scale = 1.0f;
    m->dhidden_ready = 0;
    lm_head_run(m, 0, 0, NULL);
    m->ops->grpo_weights(m->pair_sums, m->row_scale, m->grpo_share, m->grpo_adv, m->losses,
                         s->beta > 0 ? m->ref_losses : NULL, m->has_old ? m->old_losses : NULL,
                         terms_of(s), m->B, m->T);
    m->grpo_forward_weights = 1;
    return 0;
}

static int grpo_backward(Model *m, LfError *err) {
    if (weights_on_device(m)) return row_weighted_backward(m, err);
    token_weighted_backward(m, m->row_scale);
    return 0;
}

float grpo_readout_loss(Model *m, const double *sums) {
    int device = m->grpo_forward_weights; /* the device's sums (ops.h grpo_weights) */
    double kl = device && sums[2] > 0 ? sums[1] / sums[2] : 0.0;
    m->rloo_stats = (RlooStats){.rows = m->n_valid,
                                .kl = kl * m->n_valid,
                                .reward = m->grpo_reward,
                                .positive = m->grpo_positive,
                                .zero_std = m->grpo_zero_std,
                                .tokens = m->grpo_tokens,
                                .clipped_low = device ? sums[3] : 0.0,
                                .clipped_high = device ? sums[4] : 0.0};
    return (float)(device ? sums[0] : m->grpo_loss);
}

const Objective objective_grpo = {
    .name = "grpo",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = grpo_plan,
    .prepare_labels = grpo_labels,
    .pairs = 1,
    .host_per_token = 3,
    .loss = grpo_loss,
    .loss_backward = grpo_backward,
};
