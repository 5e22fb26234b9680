/* reward.c: a reward model on a decoder (objective.h): the architecture's score head [1,C]
 * (LlamaForSequenceClassification with num_labels 1, no bias) gives every token a score, and a
 * sequence's reward is the score of its last non-pad token, by transformers' rule. A batch holds
 * pairs, row 2i chosen and 2i+1 rejected; the loss is the mean over pairs of
 * -log sigmoid(r_chosen - r_rejected) (TRL's RewardTrainer). PEFT task_type SEQ_CLS with
 * modules_to_save ["score"], so transformers' AutoModelForSequenceClassification(num_labels=1)
 * plus PeftModel loads the adapter and scores alike. The score GEMM runs over every row
 * (N x C x 1, as transformers does); the pooled positions are found on the host with the labels,
 * the pooling, the loss and its gradient on the device (ops.h reward_loss). */
#include "loraft/objective.h"

static void reward_plan(Model *m, Plan *pl) {
    size_t N = (size_t)m->max_batch * m->max_len, C = m->cfg.hidden_size;
    PLAN_TAKE(pl, &m->logits, N, 1, NULL);  /* the score of every token */
    PLAN_TAKE(pl, &m->dlogits, N, 1, NULL); /* its gradient: nonzero at the pooled tokens */
    PLAN_TAKE(pl, &m->dhidden, N * C, m->n_grads > 0, NULL);
    PLAN_TAKE(pl, &m->head_scratch, ops_lm_head_scratch(N, C, 1, OPS_LM_HEAD_CHUNK, 0, 0), 1, NULL);
}

int reward_last_token(const int32_t *labels, int T, int pad_token_id) {
    int last = 0, last_any = 0;
    for (int t = 0; t < T; t++) {
        if (labels[t] < 0) continue;
        last_any = t;
        if (labels[t] != pad_token_id) last = t;
    }
    return pad_token_id < 0 ? last_any : last;
}

/* labels [B,T]: the ids on tokens, < 0 on padding; out[b] = the row's pooled position. */
static int reward_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out,
                         LfError *err) {
    if (B % 2) return lf_fail(err, "a reward-model batch holds pairs of rows, not %d rows", B);
    for (int b = 0; b < B; b++)
        out[b] = reward_last_token(labels + (size_t)b * T, T, m->cfg.pad_token_id);
    m->n_valid = B / 2;
    return 0;
}

static int reward_loss(Model *m, LfError *err) {
    (void)err;
    int N = m->B * m->T, C = m->cfg.hidden_size;
    m->ops->matmul_forward(m->logits, m->hidden, m->head->w->value, NULL, N, C, 1);
    m->ops->reward_loss(m->pair_sums, m->row_scores, m->dlogits, m->logits, m->labels, 1.0f, m->B,
                        m->T);
    return 0;
}

static int reward_backward(Model *m, LfError *err) {
    (void)err;
    const Linear *head = m->head;
    int N = m->B * m->T, C = m->cfg.hidden_size;
    m->ops->matmul_backward(m->dhidden, head->w->grad, m->dlogits, m->hidden, head->w->value, N, C,
                            1, OPS_SET);
    return 0;
}

const Objective objective_reward = {
    .name = "reward",
    .task_type = "SEQ_CLS",
    .modules_to_save = {"score", NULL},
    .labels_per_token = 1,
    .plan = reward_plan,
    .prepare_labels = reward_labels,
    .pairs = 1,
    .loss = reward_loss,
    .loss_backward = reward_backward,
};
