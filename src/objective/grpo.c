/* grpo.c: the group policy-gradient objectives on a decoder's LM head (objective.h), as TRL
 * 1.16's GRPOTrainer and RLOOTrainer compute them: Group Relative Policy Optimization (Shao et al.
 * 2024) and REINFORCE Leave-One-Out (Ahmadian et al. 2024), which differ in their advantages and
 * their ratio alone. A batch holds groups of k rows (GrpoSpec.generations, RlooSpec's), one
 * prompt and each of k completions the policy sampled for it, labels on the completion and its
 * stop token only (the trainer's rollout); a generation is the batches of one optimizer step,
 * sampled together and trained on num_iterations times. Per row b with reward r_b:
 *   GRPO   A_b = r_b - mean of its group's r, then (scale group) / (std of the group + 1e-4),
 *          (batch) / (std of the generation + 1e-4), (none) as it is; std with Bessel's;
 *          (generation: GDPO's sums) (r_b - mean of the generation's r) / (its std + 1e-4)
 *   RLOO   r_b -= beta (logp_old_b - logp_ref_b): the KL penalty in the reward, from the rows'
 *          log-probs summed over the completion, the sampler's and the reference's (the adapters
 *          off), both taken at sampling (rl_row_logps); A_b = r_b - the mean of the other r of
 *          its group, then (normalize) (A_b - mean A) / (std A + 1e-4) over the generation
 *   a row no reward function scored (r_b NaN, rewards.h) is left out of every mean and std, and
 *   its A_b is 0; a mean or std of none (a std of one) is NaN, and so is every A_b it gives: 0
 *   loss   = sum over the completion tokens t of row b of grpo_token.h's
 *            w_b (-min(c A_b, clamp(c) A_b) + beta c kl_bt), c = exp(logp_bt - logp_old_bt)
 *            (GSPO, GrpoSpec.level: one c a row, exp of the row's mean of logp - logp_old;
 *            RLOO: of its sum, the ratio of the completions' probabilities, and no KL term),
 *            kl_bt = exp(x) - x - 1, x = ref_bt - logp_bt (the reference: the adapters off);
 *            cispo's, sapo's and vespo's policy terms in place of the min (grpo_token.h)
 *   w_b    = dapo, cispo, vespo: the step's micro-batches / the generation's completion tokens (the
 *            step's loss being the mean of its micro-batches'); bnpo: 1 / the batch's; grpo, sapo
 *            and RLOO: 1 / (B n_b), n_b row b's tokens; dr_grpo: 1 / (B max_completion_length);
 *            luspo (GSPO's loss scaled by each completion's length): 1 / B
 * On a generation's first pass the policy is the sampler (c = 1, no clipping) and, a token's loss
 * being -log p, each token's gradient weight is w_b A_b at beta 0 (TRL's default; RLOO's n_b
 * w_b A_b = A_b / B, its row's ratio moving with each token's log-prob whole), known from the
 * rewards and the labels before the forward: the host forms the weights (grpo_set_rewards) and
 * the training forward writes dhidden in its one pass over the head, as causal-lm's; the loss
 * (about 0) and the statistics are the host's. With beta > 0, on a later pass (the policy has
 * moved: grpo_set_old gives the first pass's per-token losses) or for cispo and vespo (whose
 * loss is the log-probs times a constant), the weights or the loss depend on the forward's
 * log-probs: the policy's forward forms them on the device (ops.h grpo_weights), and the backward's
 * pass over the head reads them, as DPO's. */
#include <math.h>
#include <string.h>

#include "loraft/grpo_token.h"
#include "loraft/objective.h"

GrpoLoss grpo_loss_named(const char *name) {
    static const char *const names[] = {"dapo",  "grpo", "bnpo",  "dr_grpo",
                                        "cispo", "sapo", "luspo", "vespo"};
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

static int is_rloo(const Model *m) {
    return m->spec.task == TASK_RLOO;
}

/* The loss's settings: GRPO's own, or RLOO's as GRPO's (TRL's RLOOTrainer: the clipped ratio of
 * a row's summed log-probs, a mean over rows, the KL in the reward and not in the loss). */
static GrpoSpec loss_spec(const Model *m) {
    if (!is_rloo(m)) return m->spec.grpo;
    const RlooSpec *r = &m->spec.rloo;
    return (GrpoSpec){.generations = r->generations,
                      .loss = GRPO_GRPO,
                      .scale = GRPO_SCALE_NONE,
                      .iterations = r->iterations,
                      .eps_low = r->eps_low,
                      .eps_high = r->eps_high,
                      .level = OPS_GRPO_SEQUENCE_SUM};
}

/* The op's constants (grpo_token.h) from the spec. */
static OpsGrpoTerms terms_of(const GrpoSpec *s) {
    OpsGrpoPolicy policy = s->loss == GRPO_CISPO   ? OPS_GRPO_CISPO
                           : s->loss == GRPO_SAPO  ? OPS_GRPO_SAPO
                           : s->loss == GRPO_VESPO ? OPS_GRPO_VESPO
                                                   : OPS_GRPO_CLIP;
    return (OpsGrpoTerms){s->beta,
                          s->eps_low,
                          s->eps_high,
                          s->delta,
                          s->sapo_pos,
                          s->sapo_neg,
                          s->level,
                          policy,
                          s->kl_corrected,
                          {s->vespo_k[0], s->vespo_k[1]},
                          {s->vespo_lambda[0], s->vespo_lambda[1]},
                          s->off_policy,
                          s->entropy_quantile,
                          s->entropy_coef};
}

/* Per-token labels as causal-lm's; n_valid counts rows. */
static int rl_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    int k = loss_spec(m).generations;
    const char *name = is_rloo(m) ? "an RLOO" : "a GRPO";
    if (k < 2 || B % k)
        return lf_fail(err, "%s batch holds groups of %d completions, not %d rows", name, k, B);
    if (B > OPS_RL_MAX_ROWS)
        return lf_fail(err, "%s batch of %d rows: at most %d", name, B, OPS_RL_MAX_ROWS);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B;
    m->has_ref = m->has_old = 0; /* a new batch: its reference and old losses still to come */
    return 0;
}

/* cispo's and vespo's loss is the log-probs' times a constant: the forward's, even at ratio 1. */
static int loss_of_logps(const GrpoSpec *s) {
    return s->loss == GRPO_CISPO || s->loss == GRPO_VESPO;
}

/* The entropy mask's and the bonus's terms: the forward's entropies decide them. */
static int entropy_terms(const GrpoSpec *s) {
    return s->entropy_quantile > 0 || s->entropy_bonus;
}

/* Whether the forward decides the tokens' weights (grpo_token.h): with a KL penalty, with the
 * sampling policy's losses (a generation's later pass), for cispo and vespo (their weights
 * the host's all the same on a first pass, but not their loss), or with the entropy's terms. */
static int weights_on_device(const Model *m) {
    GrpoSpec s = loss_spec(m);
    return m->grpo_adv && (s.beta > 0 || m->has_old || loss_of_logps(&s) || entropy_terms(&s));
}

/* row_scale [max_batch * max_len], which the host fills for a first pass at beta 0, and the
 * entropies; where the forward may decide the weights, their shares and advantages, the
 * reference's and the sampling policy's losses, and the entropy bonus's weights. */
static void rl_plan(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len;
    GrpoSpec s = loss_spec(m);
    int device = m->n_grads > 0 &&
                 (s.beta > 0 || s.iterations > 1 || loss_of_logps(&s) || entropy_terms(&s));
    row_weighted_plan(m, pl);
    PLAN_TAKE(pl, &m->entropy, N, m->n_grads > 0, NULL);
    PLAN_TAKE(pl, &m->grpo_share, N, device, NULL);
    PLAN_TAKE(pl, &m->grpo_adv, N, device, NULL);
    PLAN_TAKE(pl, &m->ref_losses, N, device && s.beta > 0, NULL);
    PLAN_TAKE(pl, &m->old_losses, N, device && s.iterations > 1, NULL);
    PLAN_TAKE(pl, &m->entropy_scale, N, device && s.entropy_bonus, NULL);
}

/* Row b's reward as the advantages see it: RLOO's (rl; NULL: GRPO's, as it is) clamped into its
 * range (NaN stays NaN, as torch's clamp), less beta times its KL (beta 0: none). */
static double reward_of(const GrpoGeneration *g, const RlooSpec *rl, int b) {
    double r = g->rewards[b];
    if (!rl) return r;
    if (rl->clip && !isnan(r))
        r = r < rl->clip_lo ? rl->clip_lo : r > rl->clip_hi ? rl->clip_hi : r;
    return r - (rl->beta > 0 ? rl->beta * ((double)g->logps[b] - g->ref_logps[b]) : 0.0);
}

/* Row b's leave-one-out difference (RLOO's): its reward less the mean of its group's others
 * that have one; NaN where it has none or they are none. */
static double loo_of(const GrpoGeneration *g, const RlooSpec *rl, int k, int b) {
    int grp = b - b % k, n = 0;
    double others = 0, r = reward_of(g, rl, b);
    for (int j = grp; j < grp + k; j++) {
        double x = reward_of(g, rl, j);
        if (j != b && !isnan(x)) others += x, n++;
    }
    return isnan(r) || !n ? NAN : r - others / n;
}

/* The mean and the sample standard deviation (Bessel's) over the rows [at, at + n), whole
 * groups of k, of their rewards or (loo) of RLOO's leave-one-out differences, the ones that are
 * not NaN (torch's nanmean and TRL's nanstd: NaN over none, the std NaN over one). Nothing is
 * stored: the generation may be any number of rows. */
static void moments(double *mean, double *std, const GrpoGeneration *g, const RlooSpec *rl, int k,
                    int loo, int at, int n) {
    double sum = 0, sq = 0;
    int count = 0;
    for (int b = at; b < at + n; b++) {
        double v = loo ? loo_of(g, rl, k, b) : reward_of(g, rl, b);
        if (!isnan(v)) sum += v, count++;
    }
    *mean = count ? sum / count : NAN;
    for (int b = at; b < at + n; b++) {
        double v = loo ? loo_of(g, rl, k, b) : reward_of(g, rl, b);
        if (!isnan(v)) sq += (v - *mean) * (v - *mean);
    }
    *std = count > 1 ? sqrt(sq / (count - 1)) : NAN;
}

/* The batch's advantages a[B] and the rewards they come from, r[B] (RLOO's penalised; NaN where
 * none scored the row), its rows g->first .. + B of the generation g: GRPO's each reward less
 * its group's mean, scaled as its spec says; RLOO's each reward less the mean of its group's
 * others, normalised over the generation where its spec says; NaN advantages 0. zero counts the
 * rows whose std is 0 (TRL's torch.isclose(std, 0): their group's rewards, or under GRPO's scale
 * batch and generation the generation's). */
static void batch_advantages(const Model *m, const GrpoGeneration *g, double *a, double *r, int B,
                             double *zero) {
    GrpoSpec s = loss_spec(m);
    int rloo = is_rloo(m), k = s.generations, whole = s.scale == GRPO_SCALE_GENERATION;
    const RlooSpec *rl = rloo ? &m->spec.rloo : NULL;
    int normalize = rloo ? m->spec.rloo.normalize : s.scale == GRPO_SCALE_BATCH || whole;
    double all_mean = 0, all_std = 0; /* over the generation: RLOO's differences, GRPO's rewards */
    if (normalize) moments(&all_mean, &all_std, g, rl, k, rloo, 0, g->rows);
    for (int grp = 0; grp < B; grp += k) {
        double mean = 0, std = 0;
        moments(&mean, &std, g, rl, k, 0, g->first + grp, k);
        double zero_std = !rloo && normalize ? all_std : std;
        *zero += fabs(zero_std) <= 1e-8 ? k : 0;
        for (int b = grp; b < grp + k; b++) {
            r[b] = reward_of(g, rl, g->first + b);
            if (rloo) {
                a[b] = loo_of(g, rl, k, g->first + b);
                if (normalize) a[b] = (a[b] - all_mean) / (all_std + 1e-4);
            } else {
                double center = whole ? all_mean : mean;
                a[b] = s.scale == GRPO_SCALE_NONE ? r[b] - center
                                                  : (r[b] - center) / (zero_std + 1e-4);
            }
            if (isnan(a[b])) a[b] = 0; /* TRL's nan_to_num */
        }
    }
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
    case GRPO_LUSPO: /* a completion's sum, by its length: its tokens' mean times it */
        return 1.0 / (double)B;
    case GRPO_DAPO:
    case GRPO_CISPO:
    case GRPO_VESPO: /* TRL's num_items_in_batch: the generation's tokens */
        return g->batches / (double)(g->tokens > 0 ? g->tokens : 1);
    case GRPO_BNPO:
        break;
    }
    return 1.0 / (double)(tokens > 0 ? tokens : 1);
}

int grpo_set_rewards(Model *m, const float *rewards, const GrpoGeneration *gen, LfError *err) {
    GrpoSpec s = loss_spec(m);
    const int32_t *y = m->host_labels; /* the shifted labels */
    int B = m->B, T = m->T, n[OPS_RL_MAX_ROWS] = {0};
    size_t N = (size_t)B * T;
    long tokens = 0;
    double kl = 0;
    for (size_t i = 0; i < N; i++) n[i / T] += y[i] >= 0;
    for (int b = 0; b < B; b++) tokens += n[b];
    GrpoGeneration alone = {rewards, NULL, NULL, B, 0, tokens, 1}; /* the batch its own */
    const GrpoGeneration *g = gen ? gen : &alone;
    int k = s.generations;
    if (g->first < 0 || g->first % k || g->first + B > g->rows || g->rows % k)
        return lf_fail(err, "a batch of %d rows at row %d of a generation of %d: groups of %d", B,
                       g->first, g->rows, k);
    int with_kl = is_rloo(m) && m->spec.rloo.beta > 0; /* the KL penalty's log-probs */
    if (with_kl && !(g->logps && g->ref_logps))
        return lf_fail(err, "RLOO's KL penalty needs the rows' log-probs at sampling, the "
                            "policy's and the reference's (rl_row_logps)");
    double a[OPS_RL_MAX_ROWS], r[OPS_RL_MAX_ROWS];
    m->grpo_zero_std = 0;
    batch_advantages(m, g, a, r, B, &m->grpo_zero_std);
    const float *logps = with_kl ? g->logps + g->first : NULL;
    const float *ref = with_kl ? g->ref_logps + g->first : NULL;
    /* the host's room for the weights (Objective.host_per_token): a first pass's (the ratio 1),
     * then w and A apart */
    float *wa = m->host_weights, *share = wa + N, *adv = wa + 2 * N;
    OpsGrpoTerms t = terms_of(&s);
    m->grpo_loss = m->grpo_reward = m->grpo_positive = 0;
    m->grpo_tokens = (double)tokens;
    for (int b = 0; b < B; b++) {
        double w = token_share(&s, g, n, b, tokens, B);
        /* by the sum, a token moves its row's log-ratio as its own: its weight is the row's */
        double moves = s.level == OPS_GRPO_SEQUENCE_SUM ? n[b] : 1;
        GrpoTerm first = grpo_term(&t, 1.0, a[b]); /* at ratio 1 (cispo's, vespo's loss needs lp) */
        for (size_t i = (size_t)b * T; i < (size_t)(b + 1) * T; i++) {
            wa[i] = (float)(-w * (moves * first.by_ratio + first.direct));
            share[i] = y[i] >= 0 ? (float)w : 0.0f, adv[i] = (float)a[b];
        }
        m->grpo_loss += w * n[b] * first.ratio_value;
        m->grpo_reward += isnan(r[b]) ? 0.0 : r[b];
        m->grpo_positive += a[b] > 0;
        kl += with_kl ? (double)logps[b] - ref[b] : 0.0;
    }
    m->grpo_kl = tokens > 0 ? B * kl / (double)tokens : 0.0; /* TRL's: per completion token */
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
    if (!dst) return lf_fail(err, "the %s need %s and a trainable model", what, needs);
    m->ops->upload(dst, host, (size_t)m->B * m->T * sizeof *host);
    return 0;
}

int grpo_set_reference(Model *m, const float *ref, LfError *err) {
    if (upload_losses(m, m->ref_losses, ref, "GRPO's reference losses", "beta > 0", err)) return -1;
    m->has_ref = 1;
    return 0;
}

int grpo_set_old(Model *m, const float *old, LfError *err) {
    if (upload_losses(m, m->old_losses, old, "old log-probs", "num_iterations > 1", err)) return -1;
    m->has_old = 1;
    return 0;
}

/* out[B]: each row's log-prob, minus the sum of the last forward's per-token losses (0 off the
 * completions), read back. */
static int row_logps(Model *m, float *out, LfError *err) {
    size_t T = (size_t)m->T;
    float *losses = m->host_weights;
    m->ops->download(losses, m->losses, (size_t)m->B * T * sizeof *losses);
    if (m->ops->status(err)) return -1;
    for (int b = 0; b < m->B; b++) {
        double sum = 0;
        for (size_t t = 0; t < T; t++) sum += losses[b * T + t];
        out[b] = (float)-sum;
    }
    return 0;
}

int rl_row_logps(Model *m, float *logps, float *ref_logps, LfError *err) {
    m->losses_only = 1;
    int rc = model_forward(m, 0, NULL, err) || row_logps(m, logps, err) ||
             reference_forward(m, err) || row_logps(m, ref_logps, err);
    m->losses_only = 0;
    return rc ? -1 : 0;
}

/* The entropy bonus's weights where it applies this step (the coefficient not 0), else NULL. */
static float *bonus_scale(const Model *m) {
    return loss_spec(m).entropy_coef != 0 ? m->entropy_scale : NULL;
}

static int rl_loss(Model *m, LfError *err) {
    GrpoSpec s = loss_spec(m);
    size_t N = (size_t)m->B * m->T;
    if (m->adapters_off || m->losses_only) { /* the per-token losses alone; a reference's kept */
        m->loss_scale = 1.0f;
        lm_head_run(m, 0, 0, NULL, NULL);
        if (m->adapters_off && m->ref_losses)
            m->ops->copy(m->ref_losses, m->losses, N * sizeof(float));
        m->has_ref |= m->adapters_off;
        return 0;
    }
    if (!weights_on_device(m)) { /* the weights are the host's */
        token_weighted_loss(m, m->row_scale, m->entropy);
        return 0;
    }
    if (s.beta > 0 && !m->has_ref)
        return lf_fail(err, "GRPO's KL penalty needs the batch's reference forward first");
    m->loss_scale = 1.0f;
    m->dhidden_ready = 0;
    OpsEntropy e = {m->entropy, NULL};
    lm_head_run(m, 0, 0, NULL, &e);
    m->ops->grpo_weights(m->pair_sums, m->row_scale, bonus_scale(m), m->grpo_share, m->grpo_adv,
                         m->losses, m->entropy, s.beta > 0 ? m->ref_losses : NULL,
                         m->has_old ? m->old_losses : NULL, terms_of(&s), m->B, m->T);
    return 0;
}

static int rl_backward(Model *m, LfError *err) {
    (void)err;
    if (!weights_on_device(m)) {
        token_weighted_backward(m, m->row_scale);
        return 0;
    }
    OpsEntropy e = {NULL, bonus_scale(m)};
    lm_head_run(m, 1, 1, m->row_scale, e.scale ? &e : NULL);
    return 0;
}

/* The sum of the last policy forward's entropies over the batch's completion tokens (0 where
 * it formed none), read back. */
static double completion_entropy(Model *m) {
    size_t N = (size_t)m->B * m->T;
    float *h = m->host_weights; /* free once the batch's weights went up */
    double sum = 0;
    if (!m->entropy) return 0;
    m->ops->download(h, m->entropy, N * sizeof *h);
    for (size_t i = 0; i < N; i++) sum += m->host_labels[i] >= 0 ? h[i] : 0.0;
    return sum;
}

/* The step's ops beyond its shape (Objective.graph_key): which path forms the weights, whether
 * the sampling policy's losses are given, and the entropy bonus's coefficient, an argument of
 * the weights' op (a recording keeps its arguments). */
static uint64_t rl_graph_key(const Model *m) {
    float coef = loss_spec(m).entropy_coef;
    uint32_t bits;
    memcpy(&bits, &coef, sizeof bits);
    return (uint64_t)bits << 2 | (uint64_t)weights_on_device(m) << 1 | (uint64_t)m->has_old;
}

float grpo_readout_loss(Model *m, const double *sums) {
    /* the device's sums (ops.h grpo_weights), where the loss took its weights from the device:
     * known from the batch's settings (a recorded step's replay runs no host code) */
    int device = weights_on_device(m);
    double kl = is_rloo(m)              ? m->grpo_kl
                : device && sums[2] > 0 ? sums[1] / sums[2] * m->n_valid
                                        : 0.0;
    m->rloo_stats = (RlooStats){.rows = m->n_valid,
                                .kl = kl,
                                .reward = m->grpo_reward,
                                .positive = m->grpo_positive,
                                .zero_std = m->grpo_zero_std,
                                .tokens = m->grpo_tokens,
                                .clipped_low = device ? sums[3] : 0.0,
                                .clipped_high = device ? sums[4] : 0.0,
                                .entropy = completion_entropy(m),
                                .kept_entropy = device ? sums[5] : 0.0,
                                .kept = device ? sums[6] : 0.0};
    return (float)(device ? sums[0] : m->grpo_loss);
}

/* GRPO and RLOO: the same functions, each under its own settings (loss_spec). */
#define RL_OBJECTIVE(task_name)                                                                    \
    {                                                                                              \
        .name = task_name, .task_type = "CAUSAL_LM", .modules_to_save = {NULL, NULL},              \
        .labels_per_token = 1, .plan = rl_plan, .prepare_labels = rl_labels, .pairs = 1,           \
        .host_per_token = 3, .loss = rl_loss, .loss_backward = rl_backward,                        \
        .graph_key = rl_graph_key,                                                                 \
    }
const Objective objective_grpo = RL_OBJECTIVE("grpo"), objective_rloo = RL_OBJECTIVE("rloo");
