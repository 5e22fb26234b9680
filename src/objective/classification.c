/* classification.c: the sequence-classification objective (objective.h): one label per
 * sequence, logits [B,K] from the architecture's head, softmax cross-entropy averaged over
 * the labelled rows (label -100 is ignored, as in HF), PEFT task_type SEQ_CLS. */
#include "loraft/objective.h"

static void classification_plan(Model *m, Plan *pl) {
    size_t B = m->max_batch, K = m->cfg.num_labels;
    PLAN_TAKE(pl, &m->logits, B * K, 1, NULL);
    PLAN_TAKE(pl, &m->dlogits, B * K, 1, NULL);
}

/* labels[B]: a class below num_labels, or negative (ignored); uploaded as they are */
static int classification_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out,
                                 LfError *err) {
    (void)T;
    for (int b = 0; b < B; b++) {
        if (labels[b] >= m->cfg.num_labels)
            return lf_fail(err, "label %d of example %d is not below num_labels %d", labels[b], b,
                           m->cfg.num_labels);
        m->n_valid += labels[b] >= 0;
        out[b] = labels[b];
    }
    return 0;
}

static int classification_loss(Model *m, LfError *err) {
    (void)err;
    m->ops->cross_entropy(m->losses, m->dlogits, m->logits, m->labels, 1.0f, m->B,
                          m->cfg.num_labels);
    return 0;
}

const Objective objective_classification = {
    .name = "classification",
    .task_type = "SEQ_CLS",
    .modules_to_save = {"classifier", "score"},
    .labels_per_token = 0,
    .plan = classification_plan,
    .prepare_labels = classification_labels,
    .loss = classification_loss,
};

const Objective *objective_for(Task task) {
    switch (task) {
    case TASK_CAUSAL_LM:
        return &objective_causal_lm;
    case TASK_DPO:
        return &objective_dpo;
    case TASK_REWARD:
        return &objective_reward;
    case TASK_RLOO:
        return &objective_rloo;
    case TASK_GRPO:
        return &objective_grpo;
    case TASK_CLASSIFICATION:
        break;
    }
    return &objective_classification;
}
