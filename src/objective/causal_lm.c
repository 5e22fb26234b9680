/* causal_lm.c: the causal language-modelling objective (objective.h): labels per token,
 * shifted here so that position t predicts token t + 1 (as transformers' causal-LM loss
 * does: logits[:, :-1] against labels[:, 1:]); -100 (padding, masked prompt) is ignored;
 * the loss is the mean cross-entropy over the predicted tokens. PEFT task_type CAUSAL_LM,
 * no modules_to_save. The architecture stops at its final hidden states; the LM head and the
 * loss run fused, in chunks of rows (ops.h lm_head_cross_entropy), so the [B*T, V] logits and
 * their gradient are never held: at SmolLM2's vocabulary and 8 x 2048 tokens that is 201 MB of
 * scratch (100 MB with a bf16 head) instead of 6.4 GB. A training forward (train mode, something
 * trains) also writes the hidden states' gradient, dhidden, in the same pass over the logits, since
 * backward follows with the loss's scale already known: a frozen head (LoRA) then costs backward
 * nothing, where it would form every chunk of logits again. A trainable head's gradient is a
 * parameter's, so forward never writes it: backward runs the head again for it. So does an
 * adapter on the head (peft's lm_head target): its up-projection rides inside the head's chunks
 * (ops.h OpsHeadLora), which add to du; lora_backward then turns du into A's gradient and dh's
 * term. Trained token rows of the head (its own, or a tied head's embedding rows) ride the same
 * way (model_head_branch), but their B is constant: the training forward writes their du beside
 * dhidden, and backward only turns it into the rows' gradient (lm_head_branch_backward). */
#include "loraft/objective.h"

void causal_lm_plan(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len, V = m->cfg.vocab_size, C = m->cfg.hidden_size;
    const Lora *lo = m->head->lora;
    TokenRows *tr = m->head_branch_rows; /* a branch of the head too (model_head_branch) */
    size_t R = lo ? (size_t)lo->r : tr ? (size_t)tr->k : 0;
    PLAN_TAKE(pl, &m->dhidden, N * C, m->n_grads > 0, NULL);
    PLAN_TAKE(pl, &m->head_du, N * R, lo && lo->A->grad, NULL);
    if (tr) {
        PLAN_TAKE(pl, &tr->u, N * R, 1, NULL);
        PLAN_TAKE(pl, &tr->du, N * R, tr->rows->grad != NULL, NULL);
    }
    PLAN_TAKE(pl, &m->head_scratch,
              ops_lm_head_scratch(N, C, V, OPS_LM_HEAD_CHUNK, model_head_bf16(m), R), 1, NULL);
}

/* The LM head skips the rows it would compute for nothing once they are this share of a batch:
 * below it the pass that adds a listed chunk's dh to its rows costs more than the rows save. */
enum { HEAD_SKIP_MIN = 16 }; /* one row in 16 */

/* The rows of the LM head's list (Model.head_rows): those of out[N] that count, then ignored ones
 * up to a whole number of chunks where the backend records CUDA graphs (so that a recording's
 * GEMM shapes come back batch after batch), or 0 (no list) where that spares under 1 /
 * HEAD_SKIP_MIN of the rows. */
static int head_rows(Model *m, const int32_t *out, int N) {
    int n = 0, granule = m->ops->graph_begin ? OPS_LM_HEAD_CHUNK : 1;
    for (int i = 0; i < N; i++)
        if (out[i] >= 0) m->host_head_rows[n++] = i;
    int listed = (n + granule - 1) / granule * granule;
    if ((N - listed) * HEAD_SKIP_MIN < N) return 0;
    for (int i = 0; n < listed; i++)
        if (out[i] < 0) m->host_head_rows[n++] = i;
    return listed;
}

/* labels[B,T]: token ids (< vocab_size) or negative (ignored); out[b,t] = labels[b,t+1],
 * and -100 at the last position of every row; the LM head's list of rows (head_rows). */
int causal_lm_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
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
    m->n_head_rows = head_rows(m, out, B * T);
    return 0;
}

/* The head over the batch's rows, or over the listed ones (Model.head_rows): the others' losses
 * are 0 and their dh 0 (a trainable head's dW is a sum over rows, which theirs would add 0 to). */
void lm_head_run(Model *m, int dh, int dw, const float *row_scale, const OpsEntropy *entropy) {
    const Ops *o = m->ops;
    const Linear *head = m->head;
    int N = m->B * m->T, C = m->cfg.hidden_size, V = m->cfg.vocab_size, listed = m->n_head_rows;
    if (dh) o->zero(m->dhidden, (size_t)N * C * sizeof(float));
    if (listed) o->zero(m->losses, (size_t)N * sizeof(float));
    if (listed && entropy && entropy->out) o->zero(entropy->out, (size_t)N * sizeof(float));
    HeadBranch hb;
    int branch = model_head_branch(m, &hb), du = branch && (dh || dw) && hb.dA;
    float p = branch && m->train_mode ? hb.p : 0.0f;
    OpsHeadLora hl = {0};
    if (branch) { /* u = drop(h) A^T over every row; the op adds du at the rows it computes */
        o->lora_forward(NULL, hb.u, m->hidden, hb.A, NULL, hb.scale, p,
                        model_site(m->cfg.num_layers, SITE_HEAD_LORA), m->scratch, N, C, V, hb.r);
        if (du) o->zero(hb.du, (size_t)N * hb.r * sizeof(float));
        hl = (OpsHeadLora){hb.u, hb.B, du ? hb.du : NULL, dw ? hb.dB : NULL, hb.scale, hb.r};
    }
    o->lm_head_cross_entropy(m->losses, dh ? m->dhidden : NULL, dw ? head->w->grad : NULL,
                             m->hidden, head->w->value, m->head_bf16, branch ? &hl : NULL,
                             m->labels, listed ? m->head_rows : NULL, m->loss_scale, row_scale,
                             entropy, (OpsLogitMap){m->cfg.final_softcap, m->spec.temperature},
                             m->head_scratch, listed ? listed : N, C, V, OPS_LM_HEAD_CHUNK);
    if (du && dw) lm_head_branch_backward(m, dh);
}

void lm_head_branch_backward(Model *m, int dh) {
    HeadBranch hb;
    if (!model_head_branch(m, &hb) || !hb.dA) return;
    float p = m->train_mode ? hb.p : 0.0f; /* dA += du^T drop(h), dh += drop'(du A) */
    m->ops->lora_backward(dh ? m->dhidden : NULL, hb.dA, NULL, hb.du, m->hidden, hb.u, hb.A, NULL,
                          1.0f, p, model_site(m->cfg.num_layers, SITE_HEAD_LORA), m->scratch,
                          m->B * m->T, m->cfg.hidden_size, hb.r, hb.r);
}

/* Whether backward runs the head's pass again: for the gradient of a parameter that a forward
 * does not write, a trainable head's or its adapter's B. A branch's du, like dhidden, is an
 * activation's gradient, which the training forward writes (the head's token rows need no
 * second pass: their B is constant). */
static int head_pass_in_backward(const Model *m) {
    HeadBranch hb;
    return m->head->w->grad || (model_head_branch(m, &hb) && hb.dB);
}

void token_weighted_loss(Model *m, const float *row_scale, float *entropy) {
    m->loss_scale = 1.0f;
    m->dhidden_ready = m->train_mode && m->n_grads > 0 && !head_pass_in_backward(m);
    OpsEntropy e = {entropy, NULL};
    lm_head_run(m, m->dhidden_ready, 0, m->dhidden_ready ? row_scale : NULL, entropy ? &e : NULL);
}

void token_weighted_backward(Model *m, const float *row_scale) {
    int dw = head_pass_in_backward(m);
    if (!m->dhidden_ready || dw) lm_head_run(m, !m->dhidden_ready, dw, row_scale, NULL);
    if (!dw) lm_head_branch_backward(m, 1); /* the du that lm_head_run wrote, into dA and dh */
}

static int causal_lm_loss(Model *m, LfError *err) {
    token_weighted_loss(m, NULL, NULL);
    (void)err;
    return 0;
}

static int causal_lm_backward(Model *m, LfError *err) {
    token_weighted_backward(m, NULL);
    (void)err;
    return 0;
}

void row_weighted_plan(Model *m, Plan *pl) {
    causal_lm_plan(m, pl);
    PLAN_TAKE(pl, &m->row_scale, (size_t)m->max_batch * m->max_len, m->n_grads > 0, NULL);
}

int row_weighted_backward(Model *m, LfError *err) {
    lm_head_run(m, 1, 1, m->row_scale, NULL);
    (void)err;
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
    .loss_backward = causal_lm_backward,
};
