/* pairs.c: what the preference objectives (dpo.c, reward.c) and RL (grpo.c) share: the pair
 * readout, which sits beside the gradient norm so that a step's one copy brings its loss and
 * statistics. */
#include <string.h>

#include "loraft/objective.h"

void pair_readout_place(Model *m, float *device, float *host) {
    size_t B = (size_t)m->max_batch;
    m->pair_sums = (double *)device;
    m->row_scores = device ? device + 2 * PAIR_STATS : NULL;
    m->ref_logps = device ? device + 2 * PAIR_STATS + B : NULL;
    m->seq_scores = host + 2 * PAIR_STATS;
    m->ref_scores = host + 2 * PAIR_STATS + B;
}

float pair_readout_loss(Model *m, const float *host) {
    /* ops.h's stats: loss, chosen, rejected, correct (rloo, grpo: grpo_weights's seven) */
    double s[PAIR_STATS];
    memcpy(s, host, sizeof s);
    if (m->spec.task == TASK_GRPO || m->spec.task == TASK_RLOO) return grpo_readout_loss(m, s);
    m->pair_stats =
        (PairStats){.pairs = m->n_valid, .correct = s[3], .chosen = s[1], .rejected = s[2]};
    return m->n_valid ? (float)(s[0] / m->n_valid) : 0.0f;
}
