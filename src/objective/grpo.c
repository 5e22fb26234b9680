/* grpo.c: Group Relative Policy Optimization (Shao et al. 2024) on a decoder's LM head
 * (objective.h), as TRL 1.16's GRPOTrainer computes it with its defaults' beta 0 (no KL penalty,
 * no reference model) and one optimisation per generation batch (num_iterations 1: the policy
 * that sampled is the one trained, so each token's importance ratio is 1 and its clipping never
 * acts). A batch holds groups of k rows (GrpoSpec.generations), one prompt and each of k
 * completions the policy sampled for it, labels on the completion and its stop token only (the
 * trainer's rollout). Per row b with reward r_b:
 *   A_b    = r_b - mean of its group's r, then (scale group) / (std of the group + 1e-4),
 *            (batch) / (std of the batch + 1e-4), (none) as it is; std with Bessel's correction
 *   loss   = sum over the completion tokens t of row b of w_b (-A_b exp(logp_bt - sg(logp_bt)))
 *   w_b    = dapo, bnpo: 1 / the batch's completion tokens; grpo: 1 / (B n_b), n_b row b's
 *            tokens; dr_grpo: 1 / (B max_completion_length)
 * so d loss / d log p_bt = -w_b A_b and, a token's loss being -log p, its gradient weight is
 * w_b A_b: known from the rewards and the labels before the forward. The host forms every
 * token's weight once (grpo_set_rewards) and the training forward writes dhidden in its one pass
 * over the head, as causal-lm's; the loss (about 0) and the statistics are the host's too. */
#include <math.h>
#include <stdlib.h>

#include "loraft/objective.h"

/* Per-token labels as causal-lm's; n_valid counts rows. */
static int grpo_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    int k = m->spec.grpo.generations;
    if (k < 2 || B % k)
        return lf_fail(err, "a GRPO batch holds groups of %d completions, not %d rows", k, B);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B;
    return 0;
}

/* The sample standard deviation (Bessel's) of x[0..n), n >= 2. */
static double sample_std(const float *x, int n) {
    double mean = 0, sq = 0;
    for (int i = 0; i < n; i++) mean += x[i] / (double)n;
    for (int i = 0; i < n; i++) sq += (x[i] - mean) * (x[i] - mean);
    return sqrt(sq / (n - 1));
}

/* a[B]: each row's reward less its group's mean, scaled as s says. */
static void advantages(double *a, const float *r, const GrpoSpec *s, int B) {
    int k = s->generations;
    double batch_std = s->scale == GRPO_SCALE_BATCH ? sample_std(r, B) : 0.0;
    for (int g = 0; g < B; g += k) {
        double mean = 0, std = s->scale == GRPO_SCALE_GROUP ? sample_std(r + g, k) : batch_std;
        for (int b = g; b < g + k; b++) mean += r[b] / (double)k;
        for (int b = g; b < g + k; b++)
            a[b] = s->scale == GRPO_SCALE_NONE ? r[b] - mean : (r[b] - mean) / (std + 1e-4);
    }
}

/* w_b: the share of the batch's loss each of row b's n[b] tokens carries. */
static double token_share(const GrpoSpec *s, const int *n, int b, long tokens, int B) {
    switch (s->loss) {
    case GRPO_GRPO:
        return 1.0 / ((double)B * (n[b] > 1 ? n[b] : 1));
    case GRPO_DR_GRPO:
        return 1.0 / ((double)B * s->max_completion);
    case GRPO_DAPO:
    case GRPO_BNPO:
        break;
    }
    return 1.0 / (double)(tokens > 1 ? tokens : 1);
}

int grpo_set_rewards(Model *m, const float *rewards, LfError *err) {
    const GrpoSpec *s = &m->spec.grpo;
    int B = m->B, T = m->T;
    long tokens = 0;
    double *a = malloc((size_t)B * sizeof *a), loss = 0, reward = 0, positive = 0;
    int *n = calloc((size_t)B, sizeof *n);
    float *w = m->row_scale ? malloc((size_t)B * T * sizeof *w) : NULL;
    if (!a || !n || (m->row_scale && !w)) {
        free(a), free(n), free(w);
        return lf_fail(err, "out of memory for the weights of %d x %d tokens", B, T);
    }
    for (int i = 0; i < B * T; i++) n[i / T] += m->host_labels[i] >= 0; /* the shifted labels */
    for (int b = 0; b < B; b++) tokens += n[b];
    advantages(a, rewards, s, B);
    for (int b = 0; b < B; b++) {
        double share = token_share(s, n, b, tokens, B);
        for (int t = 0; w && t < T; t++) w[(size_t)b * T + t] = (float)(share * a[b]);
        loss -= share * n[b] * a[b];
        reward += rewards[b];
        positive += a[b] > 0;
    }
    if (w) m->ops->upload(m->row_scale, w, (size_t)B * T * sizeof *w);
    /* the readout's four, its loss a sum over the batch's rows (n_valid): loss * B */
    m->grpo_sums[0] = loss * B, m->grpo_sums[1] = 0.0;
    m->grpo_sums[2] = reward, m->grpo_sums[3] = positive;
    free(a), free(n), free(w);
    return 0;
}

static int grpo_loss(Model *m, LfError *err) {
    token_weighted_loss(m, m->row_scale);
    (void)err;
    return 0;
}

static int grpo_backward(Model *m, LfError *err) {
    token_weighted_backward(m, m->row_scale);
    (void)err;
    return 0;
}

const Objective objective_grpo = {
    .name = "grpo",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = row_weighted_plan,
    .prepare_labels = grpo_labels,
    .pairs = 1,
    .loss = grpo_loss,
    .loss_backward = grpo_backward,
};
