/* grpo.c: Group Relative Policy Optimization (Shao et al. 2024) on a decoder's LM head
 * (objective.h), as TRL 1.16's GRPOTrainer computes it with one optimisation per generation batch
 * (num_iterations 1: the policy that sampled is the one trained, so each token's importance ratio
 * is 1 and its clipping never acts). A batch holds groups of k rows (GrpoSpec.generations), one
 * prompt and each of k completions the policy sampled for it, labels on the completion and its
 * stop token only (the trainer's rollout). Per row b with reward r_b:
 *   A_b    = r_b - mean of its group's r, then (scale group) / (std of the group + 1e-4),
 *            (batch) / (std of the batch + 1e-4), (none) as it is; std with Bessel's correction
 *   loss   = sum over the completion tokens t of row b of
 *            w_b (-A_b + beta kl_bt) exp(logp_bt - sg(logp_bt)),
 *            kl_bt = exp(x) - x - 1, x = ref_bt - logp_bt (the reference: the adapters off)
 *   w_b    = dapo, bnpo: 1 / the batch's completion tokens; grpo: 1 / (B n_b), n_b row b's
 *            tokens; dr_grpo: 1 / (B max_completion_length)
 * The ratio on the KL is TRL's default bias correction (use_bias_correction_kl): its gradient
 * makes d loss / d log p_bt = w_b (-A_b - beta x) and, a token's loss being -log p, its gradient
 * weight w_b (A_b + beta x). At beta 0 (TRL's default) that is known from the rewards and the
 * labels before the forward: the host forms every token's weight once (grpo_set_rewards) and the
 * training forward writes dhidden in its one pass over the head, as causal-lm's; the loss (about
 * 0) and the statistics are the host's. With beta > 0 the reference forward leaves its per-token
 * losses, and the policy's forward adds beta w_b x to each weight on the device (ops.h grpo_kl),
 * which the backward's pass over the head reads, as DPO's. */
#include <math.h>

#include "loraft/objective.h"

/* Per-token labels as causal-lm's; n_valid counts rows. */
static int grpo_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    int k = m->spec.grpo.generations;
    if (k < 2 || B % k)
        return lf_fail(err, "a GRPO batch holds groups of %d completions, not %d rows", k, B);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B;
    m->has_ref = 0; /* a new batch: its reference is still to come */
    return 0;
}

/* row_scale [max_batch * max_len], which the host fills; with a KL penalty, the weights apart and
 * the reference's losses, and row_scale filled by the op. */
static void grpo_plan(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len;
    int kl = m->spec.grpo.beta > 0 && m->n_grads > 0;
    row_weighted_plan(m, pl);
    PLAN_TAKE(pl, &m->grpo_base, N, kl, NULL);
    PLAN_TAKE(pl, &m->grpo_kl_weight, N, kl, NULL);
    PLAN_TAKE(pl, &m->ref_losses, N, kl, NULL);
}

/* The sample standard deviation (Bessel's) of x[0..n), n >= 2. */
static double sample_std(const float *x, int n) {
    double mean = 0, sq = 0;
    for (int i = 0; i < n; i++) mean += x[i] / (double)n;
    for (int i = 0; i < n; i++) sq += (x[i] - mean) * (x[i] - mean);
    return sqrt(sq / (n - 1));
}

/* a[B]: each row's reward less its group's mean, scaled as s says; returns the rows whose std
 * (the batch's under scale batch, else the group's) is 0, TRL's torch.isclose(std, 0). */
static int advantages(double *a, const float *r, const GrpoSpec *s, int B) {
    int k = s->generations, zero = 0;
    double batch_std = s->scale == GRPO_SCALE_BATCH ? sample_std(r, B) : 0.0;
    for (int g = 0; g < B; g += k) {
        double mean = 0, std = s->scale == GRPO_SCALE_BATCH ? batch_std : sample_std(r + g, k);
        for (int b = g; b < g + k; b++) mean += r[b] / (double)k;
        for (int b = g; b < g + k; b++)
            a[b] = s->scale == GRPO_SCALE_NONE ? r[b] - mean : (r[b] - mean) / (std + 1e-4);
        zero += std <= 1e-8 ? k : 0;
    }
    return zero;
}

/* w_b: the share of the batch's loss each of row b's n[b] tokens carries. */
static double token_share(const GrpoSpec *s, const int *n, int b, long tokens, int B) {
    switch (s->loss) {
    case GRPO_GRPO:
        return 1.0 / ((double)B * (n[b] > 0 ? n[b] : 1)); /* TRL clamps the count at 1 */
    case GRPO_DR_GRPO:
        return 1.0 / ((double)B * s->max_completion);
    case GRPO_DAPO:
    case GRPO_BNPO:
        break;
    }
    return 1.0 / (double)(tokens > 0 ? tokens : 1);
}

int grpo_set_rewards(Model *m, const float *rewards, LfError *err) {
    const GrpoSpec *s = &m->spec.grpo;
    const int32_t *y = m->host_labels; /* the shifted labels */
    int B = m->B, T = m->T, kl = m->grpo_kl_weight != NULL, n[OPS_RLOO_MAX_ROWS] = {0};
    size_t N = (size_t)B * T;
    long tokens = 0;
    double a[OPS_RLOO_MAX_ROWS];
    if (B > OPS_RLOO_MAX_ROWS)
        return lf_fail(err, "a GRPO batch of %d rows: at most %d", B, OPS_RLOO_MAX_ROWS);
    /* the host's room for the weights (Objective.host_per_token): w A, then beta w */
    float *w = m->row_scale ? m->host_weights : NULL, *klw = kl ? m->host_weights + N : NULL;
    for (size_t i = 0; i < N; i++) n[i / T] += y[i] >= 0;
    for (int b = 0; b < B; b++) tokens += n[b];
    m->grpo_zero_std = advantages(a, rewards, s, B);
    m->grpo_loss = m->grpo_reward = m->grpo_positive = 0;
    for (int b = 0; b < B; b++) {
        double share = token_share(s, n, b, tokens, B);
        for (size_t i = (size_t)b * T; w && i < (size_t)(b + 1) * T; i++) {
            w[i] = (float)(share * a[b]);
            if (klw) klw[i] = y[i] >= 0 ? (float)(s->beta * share) : 0.0f;
        }
        m->grpo_loss -= share * n[b] * a[b];
        m->grpo_reward += rewards[b];
        m->grpo_positive += a[b] > 0;
    }
    if (w) m->ops->upload(kl ? m->grpo_base : m->row_scale, w, N * sizeof *w);
    if (klw) m->ops->upload(m->grpo_kl_weight, klw, N * sizeof *klw);
    return 0;
}

static int grpo_loss(Model *m, LfError *err) {
    size_t N = (size_t)m->B * m->T;
    if (m->adapters_off) { /* the reference forward: its per-token losses kept */
        m->loss_scale = 1.0f;
        lm_head_run(m, 0, 0, NULL);
        if (m->ref_losses) m->ops->copy(m->ref_losses, m->losses, N * sizeof(float));
        m->has_ref = 1;
        return 0;
    }
    if (!m->grpo_kl_weight) { /* no KL penalty: the weights are the host's */
        token_weighted_loss(m, m->row_scale);
        return 0;
    }
    if (!m->has_ref)
        return lf_fail(err, "GRPO's KL penalty needs the batch's reference forward first");
    m->loss_scale = 1.0f;
    m->dhidden_ready = 0;
    lm_head_run(m, 0, 0, NULL);
    m->ops->grpo_kl(m->pair_sums, m->row_scale, m->grpo_base, m->grpo_kl_weight, m->losses,
                    m->ref_losses, N);
    return 0;
}

static int grpo_backward(Model *m, LfError *err) {
    if (m->grpo_kl_weight) return row_weighted_backward(m, err);
    token_weighted_backward(m, m->row_scale);
    return 0;
}

float grpo_readout_loss(Model *m, const double *kl) {
    double kl_loss = 0, kl_mean = 0; /* the device's sums (ops.h grpo_kl) with a KL penalty */
    if (m->grpo_kl_weight) kl_loss = kl[0], kl_mean = kl[2] > 0 ? kl[1] / kl[2] : 0.0;
    m->rloo_stats = (RlooStats){.rows = m->n_valid,
                                .kl = kl_mean * m->n_valid,
                                .reward = m->grpo_reward,
                                .positive = m->grpo_positive,
                                .zero_std = m->grpo_zero_std};
    return (float)(m->grpo_loss + kl_loss);
}

const Objective objective_grpo = {
    .name = "grpo",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = grpo_plan,
    .prepare_labels = grpo_labels,
    .pairs = 1,
    .host_per_token = 2,
    .loss = grpo_loss,
    .loss_backward = grpo_backward,
};
