/* rloo.c: REINFORCE Leave-One-Out (Ahmadian et al. 2024) on a decoder's LM head (objective.h),
 * as TRL 1.16's RLOOTrainer with one optimisation per generation batch. A batch holds groups of
 * k rows (RlooSpec.generations), one prompt and each of k completions the policy sampled for it,
 * with per-token labels on the completion and its stop token only (the trainer's rollout). A
 * row's log-prob is the sum of its labelled tokens' log-probs, read off the fused head's per-token
 * losses as DPO's; the reward model's scores come from the host (rloo_set_rewards) and the
 * reference policy's log-probs from a forward with the adapters off (reference_forward). The
 * advantages, the loss and the rows' gradient weights are ops.h's rloo_loss (rloo_loss.h), on the
 * device: a step reads nothing back before its backward. */
#include "loraft/objective.h"

/* Per-token labels as causal-lm's; n_valid counts rows. */
static int rloo_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err) {
    int k = m->spec.rloo.generations;
    if (k < 2 || B % k)
        return lf_fail(err, "an RLOO batch holds groups of %d completions, not %d rows", k, B);
    if (B > OPS_RLOO_MAX_ROWS)
        return lf_fail(err, "an RLOO batch of %d rows: at most %d", B, OPS_RLOO_MAX_ROWS);
    if (causal_lm_labels(m, labels, B, T, out, err)) return -1;
    m->n_valid = B;
    m->has_ref = 0; /* a new batch: its reference is still to come */
    return 0;
}

static int rloo_loss(Model *m, LfError *err) {
    const RlooSpec *s = &m->spec.rloo;
    int reference = m->adapters_off; /* this forward is the reference policy's */
    if (!reference && s->beta > 0 && !m->has_ref)
        return lf_fail(err, "RLOO's KL penalty needs the batch's reference forward first");
    m->loss_scale = 1.0f;
    lm_head_run(m, 0, 0, NULL);
    const float *ref = !reference && m->has_ref ? m->ref_logps : NULL;
    m->ops->rloo_loss(m->pair_sums, reference ? m->ref_logps : m->row_scores,
                      reference ? NULL : m->row_scale, m->losses, ref, m->row_rewards, s->beta,
                      s->generations, s->normalize, 1.0f, m->B, m->T);
    m->has_ref |= reference;
    return 0;
}

void rloo_set_rewards(Model *m, const float *rewards) {
    m->ops->upload(m->row_rewards, rewards, (size_t)m->B * sizeof *rewards);
}

const Objective objective_rloo = {
    .name = "rloo",
    .task_type = "CAUSAL_LM",
    .modules_to_save = {NULL, NULL},
    .labels_per_token = 1,
    .plan = row_weighted_plan,
    .prepare_labels = rloo_labels,
    .pairs = 1,
    .loss = rloo_loss,
    .loss_backward = row_weighted_backward,
};
