/* rollout.c: RLOO's and GRPO's batches, sampled by the policy and scored by the reward model
 * (rollout.h). */
#include "loraft/rollout.h"

#include <stdlib.h>
#include <string.h>

#include "loraft/lm_data.h" /* LM_IGNORE */
#include "loraft/objective.h"
#include "loraft/rng.h"

int rollout_init(Rollout *ro, Model *reward, const GenStops *stops, const SampleConfig *sample,
                 int k, int max_new, int32_t pad, int mask_cut, int max_prompts, int max_prompt_len,
                 int slots, LfError *err) {
    *ro = (Rollout){.reward = reward,
                    .stops = *stops,
                    .sample = *sample,
                    .k = k,
                    .max_new = max_new,
                    .mask_cut = mask_cut,
                    .max_prompts = max_prompts,
                    .max_len = max_prompt_len + max_new,
                    .slots = slots,
                    .pad = pad};
    int max_len = ro->max_len; /* for the message: rollout_free clears ro */
    size_t rows = (size_t)max_prompts * k * slots, cells = rows * (size_t)max_len;
    ro->ids = malloc(cells * sizeof *ro->ids);
    ro->mask = malloc(cells * sizeof *ro->mask);
    ro->labels = malloc(cells * sizeof *ro->labels);
    ro->reward_labels = malloc(cells * sizeof *ro->reward_labels);
    ro->index = malloc(rows * sizeof *ro->index);
    ro->rewards = malloc(rows * sizeof *ro->rewards);
    if (ro->ids && ro->mask && ro->labels && ro->reward_labels && ro->index && ro->rewards)
        return 0;
    rollout_free(ro);
    return lf_fail(err, "out of memory for %zu rollout rows of %d tokens", rows, max_len);
}

void rollout_free(Rollout *ro) {
    free(ro->ids);
    free(ro->mask);
    free(ro->labels);
    free(ro->reward_labels);
    free(ro->index);
    free(ro->rewards);
    memset(ro, 0, sizeof *ro);
}

/* One slot's buffers. */
typedef struct Slot {
    int32_t *ids, *mask, *labels, *reward_labels;
    int *index;
    float *rewards;
} Slot;

static Slot slot_of(const Rollout *ro, int slot) {
    size_t at = rollout_first_row(ro, slot), cell = at * (size_t)ro->max_len;
    return (Slot){ro->ids + cell,           ro->mask + cell, ro->labels + cell,
                  ro->reward_labels + cell, ro->index + at,  ro->rewards + at};
}

/* gen_batch's tokens into each row of the slot's ids (at stride max_len), after its prompt. */
typedef struct Sink {
    int32_t *ids;
    int *len, max_len;
} Sink;

static int sink_emit(void *ctx, int row, int32_t id) {
    Sink *s = ctx;
    s->ids[(size_t)row * s->max_len + s->len[row]++] = id;
    return 0; /* gen_batch stops at max_new */
}

/* Rows b*k .. b*k+k-1: prompt b of the batch and k sampled completions, each with its stop id;
 * len[] their lengths, P[] their prompts'. */
static int sample_rows(Rollout *ro, const Slot *sl, Model *policy, const Batch *prompts,
                       uint64_t seed, int *len, int *P, int *cut, LfError *err) {
    int rows = prompts->B * ro->k;
    GenPrompt gp[OPS_RL_MAX_ROWS];
    GenStats gs[OPS_RL_MAX_ROWS];
    uint64_t seeds[OPS_RL_MAX_ROWS];
    for (int r = 0; r < rows; r++) {
        int b = r / ro->k;
        const int32_t *ids = prompts->ids + (size_t)b * prompts->T,
                      *m = prompts->mask + (size_t)b * prompts->T;
        P[r] = 0;
        while (P[r] < prompts->T && m[P[r]]) P[r]++;
        memcpy(sl->ids + (size_t)r * ro->max_len, ids, (size_t)P[r] * sizeof *ids);
        gp[r] = (GenPrompt){ids, P[r]}; /* the group's rows share it: prefilled once */
        seeds[r] = rng_hash(seed, r), len[r] = P[r];
    }
    Sampler *s;
    Sink sink = {sl->ids, len, ro->max_len};
    if (sampler_create(&s, &ro->sample, policy->cfg.vocab_size, err)) return -1;
    int rc =
        gen_batch(policy, s, seeds, &ro->stops, gp, rows, ro->max_new, sink_emit, &sink, gs, err);
    sampler_free(s);
    for (int r = 0; !rc && r < rows; r++) {
        if (gs[r].stop >= 0) sl->ids[(size_t)r * ro->max_len + len[r]++] = gs[r].stop;
        cut[r] = gs[r].stop < 0;
    }
    return rc;
}

/* Rows at stride max_len of lengths len[] (prompts of P[]) packed at stride T, padded, masked and
 * labelled for both models (a cut completion unlabelled under mask_cut). */
static void pack_rows(const Rollout *ro, const Slot *sl, const int *len, const int *P,
                      const int *cut, int rows, int T) {
    for (int r = 0; r < rows; r++) {
        int32_t *dst = sl->ids + (size_t)r * T;
        memmove(dst, sl->ids + (size_t)r * ro->max_len, (size_t)len[r] * sizeof *dst);
        for (int t = 0; t < T; t++) {
            size_t c = (size_t)r * T + t;
            int in = t < len[r];
            if (!in) dst[t] = ro->pad;
            sl->mask[c] = in;
            sl->labels[c] = in && t >= P[r] && !(ro->mask_cut && cut[r]) ? dst[t] : LM_IGNORE;
            sl->reward_labels[c] = in ? dst[t] : LM_IGNORE;
        }
        sl->index[r] = r;
    }
}

/* Each row's score by the reward model, into the slot's rewards. */
static int score_rows(const Rollout *ro, const Slot *sl, int rows, int T, LfError *err) {
    Model *rm = ro->reward;
    if (model_set_batch(rm, sl->ids, NULL, sl->mask, NULL, rows, T, err) ||
        model_forward(rm, 0, NULL, err))
        return -1;
    for (int r = 0; r < rows; r++) {
        int t = reward_last_token(sl->reward_labels + (size_t)r * T, T, rm->cfg.pad_token_id);
        if (model_lm_logits(rm, r * T + t, 1, &sl->rewards[r], err)) return -1;
    }
    return 0;
}

int rollout_batch(Rollout *ro, int slot, Model *policy, const Batch *prompts, uint64_t seed,
                  Batch *out, RolloutBatch *st, LfError *err) {
    int rows = prompts->B * ro->k, T = 0, clipped = 0;
    int len[OPS_RL_MAX_ROWS], P[OPS_RL_MAX_ROWS], cut[OPS_RL_MAX_ROWS];
    long tokens = 0;
    if (prompts->B > ro->max_prompts)
        return lf_fail(err, "a batch of %d prompts: the rollout holds %d", prompts->B,
                       ro->max_prompts);
    if (slot < 0 || slot >= ro->slots)
        return lf_fail(err, "rollout slot %d: the rollout has %d", slot, ro->slots);
    Slot sl = slot_of(ro, slot);
    if (sample_rows(ro, &sl, policy, prompts, seed, len, P, cut, err)) return -1;
    for (int r = 0; r < rows; r++) {
        tokens += len[r] - P[r], clipped += cut[r];
        if (len[r] > T) T = len[r];
    }
    pack_rows(ro, &sl, len, P, cut, rows, T);
    if (score_rows(ro, &sl, rows, T, err)) return -1;
    *out = (Batch){
        .B = rows, .T = T, .ids = sl.ids, .mask = sl.mask, .labels = sl.labels, .index = sl.index};
    for (int r = 0; r < rows; r++) out->n_tokens += len[r];
    if (!st) return 0;
    *st = (RolloutBatch){.rows = rows, .completion_tokens = tokens, .clipped = clipped};
    for (int r = 0; r < rows; r++)
        st->reward += sl.rewards[r], st->reward_sq += (double)sl.rewards[r] * sl.rewards[r];
    return 0;
}
