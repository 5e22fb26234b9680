/* dpo.c: Direct Preference Optimization (Rafailov et al. 2023) on a decoder's LM head
 * (objective.h). A batch holds pairs: row 2i is prompt + chosen response, row 2i+1 prompt +
 * rejected response, with per-token labels on the response and its EOS only (the data's job).
 * A row's log-prob is the sum of its labelled tokens' log-probs, read off the fused head's
 * per-token losses. The reference policy is the same model with its adapters off: a forward in
 * that state (reference_forward) leaves its log-probs on the device as the batch's reference
 * (m->ref_logps), or the caller uploads the ones it kept (dpo_set_reference). The formulas are
 * TRL v0.12.0's (trl/trainer/dpo_trainer.py, DPOTrainer.dpo_loss and concatenated_forward), with
 * x = (pi_chosen - pi_rejected) - (ref_chosen - ref_rejected):
 *   sigmoid  -(1 - eps) log sigmoid(beta x) - eps log sigmoid(-beta x)  (eps: label smoothing)
 *   ipo      (x - 1 / (2 beta))^2, on log-probs averaged over each response's tokens
 * the loss is the mean over pairs; the rewards are beta * (pi - ref), a pair is correct when its
 * chosen reward is above the rejected one. All of it is ops.h's dpo_loss, on the device: a step
 * reads nothing back before its backward. The gradient reaches the network through the head's
 * per-row weights (ops.h row_scale): d loss / d token loss of row b = -d loss / d logp_b. */
#include "loraft/objective.h"

/* Per-token labels as causal-lm's; n_valid counts pairs. */
static int dpo_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    if (B % 2) return lf_fail(err, "a DPO batch holds pairs of rows, not %d rows", B);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B / 2;
    m->has_ref = 0; /* a new batch: its reference is still to come */
    return 0;
}

static int dpo_loss(Model *m, LfError *err) {
    const DpoSpec *s = &m->spec.dpo;
    int reference = m->adapters_off; /* this forward is the reference policy's */
    const float *ref = reference || !m->has_ref ? NULL : m->ref_logps;
    m->loss_scale = ref ? 1.0f : 0.0f; /* no gradient without a reference */
    (void)err;
    lm_head_run(m, 0, 0, NULL, NULL);
    m->ops->dpo_loss(m->pair_sums, reference ? m->ref_logps : m->row_scores,
                     ref ? m->row_scale : NULL, m->losses, m->labels, ref, s->beta,
                     s->label_smoothing, s->loss == DPO_IPO, 1.0f, m->B, m->T);
    m->has_ref |= reference;
    return 0;
}

void dpo_set_reference(Model *m, const float *ref) {
    if (ref) m->ops->upload(m->ref_logps, ref, (size_t)m->B * sizeof *ref);
    m->has_ref = ref != NULL;
}

int reference_forward(Model *m, LfError *err) {
    m->adapters_off = 1;
    int rc = model_forward(m, 0, NULL, err);
    m->adapters_off = 0;
    return rc;
}

const Objective objective_dpo = {
    .name = "dpo",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = row_weighted_plan,
    .prepare_labels = dpo_labels,
    .pairs = 1,
    .loss = dpo_loss,
    .loss_backward = row_weighted_backward,
};
