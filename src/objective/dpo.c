/* dpo.c: Direct Preference Optimization (Rafailov et al. 2023) on a decoder's LM head
 * (objective.h). A batch holds pairs: row 2i is prompt + chosen response, row 2i+1 prompt +
 * rejected response, with per-token labels on the response and its EOS only (the data's job).
 * A row's log-prob is the sum of its labelled tokens' log-probs, read off the fused head's
 * per-token losses; the reference policy's log-probs come from the caller (m->ref_logps: the same
 * model with its adapters off, computed once per pair). The formulas are TRL v0.12.0's
 * (trl/trainer/dpo_trainer.py, DPOTrainer.dpo_loss and concatenated_forward), with
 * x = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected):
 *   sigmoid  -(1 - eps) log sigmoid(beta x) - eps log sigmoid(-beta x)  (eps: label smoothing)
 *   ipo      (x - 1 / (2 beta))^2, on log-probs averaged over each response's tokens
 * the loss is the mean over pairs; the rewards are beta * (pi - ref), a pair is correct when its
 * chosen reward is above the rejected one. The gradient reaches the network through the head's
 * per-row weights (ops.h row_scale): d loss / d token loss of row b = -d loss / d logp_b. */
#include <math.h>

#include "loraft/objective.h"

static void dpo_plan(Model *m, Plan *pl) {
    causal_lm_plan(m, pl);
    PLAN_TAKE(pl, &m->row_scale, (size_t)m->max_batch * m->max_len, m->n_grads > 0, NULL);
}

/* Per-token labels as causal-lm's; n_valid counts pairs. */
static int dpo_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    if (B % 2) return lf_fail(err, "a DPO batch holds pairs of rows, not %d rows", B);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B / 2;
    return 0;
}

/* log sigmoid(z), without overflow at either end */
static double log_sigmoid(double z) {
    return z >= 0 ? -log1p(exp(-z)) : z - log1p(exp(z));
}

static double sigmoid(double z) {
    return exp(log_sigmoid(z));
}

/* One pair's loss of x (see the header) and its derivative *dx. */
static double dpo_pair_loss(const DpoSpec *s, double x, double *dx) {
    double beta = s->beta, eps = s->label_smoothing;
    if (s->loss == DPO_IPO) {
        double d = x - 1.0 / (2.0 * beta);
        *dx = 2.0 * d;
        return d * d;
    }
    *dx = -beta * (1.0 - eps) * sigmoid(-beta * x) + beta * eps * sigmoid(beta * x);
    return -(1.0 - eps) * log_sigmoid(beta * x) - eps * log_sigmoid(-beta * x);
}

/* Each row's response log-prob into m->seq_scores (sums), its token count into count[b]. */
static void row_logps(Model *m, int *count) {
    int B = m->B, T = m->T;
    for (int b = 0; b < B; b++) {
        double sum = 0;
        count[b] = 0;
        for (int t = 0; t < T; t++) {
            size_t i = (size_t)b * T + t;
            sum += m->host_losses[i];
            count[b] += m->host_labels[i] >= 0;
        }
        m->seq_scores[b] = (float)-sum;
    }
}

static int dpo_loss(Model *m, float loss_weight, LfError *err) {
    const DpoSpec *s = &m->spec.dpo;
    int B = m->B, T = m->T, N = B * T, P = B / 2, count[B];
    m->loss_scale = 0.0f; /* no gradient unless a reference is given */
    m->pair_stats = (PairStats){0};
    m->host_loss = 0;
    if (lm_head_run(m, 0, NULL, err)) return -1;
    m->ops->download(m->host_losses, m->losses, (size_t)N * sizeof(float));
    row_logps(m, count);
    if (!m->ref_logps) return 0;
    double sum = 0;
    float *w = m->host_losses; /* read above: now the rows' gradient weights */
    for (int p = 0; p < P; p++) {
        int c = 2 * p, r = c + 1;
        double nc = s->loss == DPO_IPO && count[c] ? count[c] : 1;
        double nr = s->loss == DPO_IPO && count[r] ? count[r] : 1;
        double pc = m->seq_scores[c] / nc, pr = m->seq_scores[r] / nr;
        double rc = m->ref_logps[c] / nc, rr = m->ref_logps[r] / nr, dx;
        sum += dpo_pair_loss(s, (pc - pr) - (rc - rr), &dx);
        double chosen = s->beta * (pc - rc), rejected = s->beta * (pr - rr);
        m->pair_stats.chosen += chosen;
        m->pair_stats.rejected += rejected;
        m->pair_stats.correct += chosen > rejected;
        /* token loss = -log p, so d loss / d token loss = -dx d x / d logp, over P pairs */
        double g = loss_weight / (double)P;
        for (int t = 0; t < T; t++) {
            w[(size_t)c * T + t] = (float)(-dx / nc * g);
            w[(size_t)r * T + t] = (float)(dx / nr * g);
        }
    }
    m->pair_stats.pairs = P;
    m->host_loss = (float)(sum / P);
    if (m->row_scale) m->ops->upload(m->row_scale, w, (size_t)N * sizeof(float));
    m->loss_scale = 1.0f;
    return 0;
}

static int dpo_backward(Model *m, LfError *err) {
    return lm_head_run(m, 1, m->row_scale, err);
}

const Objective objective_dpo = {
    .name = "dpo",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = dpo_plan,
    .prepare_labels = dpo_labels,
    .loss_on_host = 1,
    .loss = dpo_loss,
    .loss_backward = dpo_backward,
};
