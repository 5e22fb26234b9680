/* causal_lm.c: the causal language-modelling objective (objective.h): labels per token,
 * shifted here so that position t predicts token t + 1 (as transformers' causal-LM loss
 * does: logits[:, :-1] against labels[:, 1:]); -100 (padding, masked prompt) is ignored;
 * the loss is the mean cross-entropy over the predicted tokens. PEFT task_type CAUSAL_LM,
 * no modules_to_save. The logits [B*T, V] are materialised; the chunked LM head that never
 * holds them is the next step. */
#include "loraft/objective.h"

static void causal_lm_plan(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len, V = m->cfg.vocab_size;
    PLAN_TAKE(pl, &m->logits, N * V, 1, NULL);
    PLAN_TAKE(pl, &m->losses, N, 1, NULL);
    PLAN_TAKE(pl, &m->dlogits, N * V, 1, NULL);
}

/* labels[B,T]: token ids (< vocab_size) or negative (ignored); out[b,t] = labels[b,t+1],
 * and -100 at the last position of every row. */
static int causal_lm_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out,
                            LfError *err) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t y = labels[(size_t)b * T + t];
            if (y >= m->cfg.vocab_size)
                return lf_fail(err, "label %d at row %d, position %d is not below vocab_size %d", y,
                               b, t, m->cfg.vocab_size);
            if (t) out[(size_t)b * T + t - 1] = y < 0 ? -100 : y;
            m->n_valid += t && y >= 0;
        }
    for (int b = 0; b < B; b++) out[(size_t)b * T + T - 1] = -100;
    return 0;
}

static int causal_lm_loss(Model *m, float loss_weight, float *loss, LfError *err) {
    (void)err;
    const Ops *o = m->ops;
    int N = m->B * m->T;
    float scale = m->n_valid ? loss_weight / (float)m->n_valid : 0.0f;
    o->cross_entropy(m->losses, m->dlogits, m->logits, m->labels, scale, N, m->cfg.vocab_size);
    o->download(m->host_losses, m->losses, (size_t)N * sizeof(float));
    double sum = 0;
    for (int i = 0; i < N; i++) sum += m->host_losses[i];
    *loss = m->n_valid ? (float)(sum / m->n_valid) : 0.0f;
    return 0;
}

const Objective objective_causal_lm = {
    .name = "causal-lm",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = causal_lm_plan,
    .prepare_labels = causal_lm_labels,
    .loss = causal_lm_loss,
};
