/* rollout.h: RLOO's and GRPO's batches (model.task rloo, grpo; objective grpo.c). Each
 * prompt of a batch of prompts is continued k times by the policy, sampling from its own
 * distribution (as the SampleConfig says: temperature, top-k, top-p, min-p and repetition penalty,
 * TRL's sampling options) until a stop id (generate.h: EOS, the chat template's end of turn) or
 * max_new tokens; row b*k+j is prompt b + completion j, its stop id included. Each reward
 * function (rewards.h) scores every row: the reward model at the row's last token that is not pad
 * (transformers' rule, reward_last_token; it reads the policy's ids, so it must share the
 * policy's tokenizer), the reward command a batch at a time (reward_command.h), the built-ins a
 * row at a time; their rewards add up to the row's as rewards.h says. Labels are the completion's
 * ids (the stop id too) and -100 on the prompt and padding, as the rloo objective reads them. A
 * rollout holds several batches at once, each in a slot of its own (a trainer's step's batches,
 * sampled together, and an evaluation's). Every buffer is sized once, at rollout_init. */
#pragma once
#include <stdint.h>

#include "loraft/bpe.h"
#include "loraft/data.h"
#include "loraft/error.h"
#include "loraft/generate.h"
#include "loraft/model.h"
#include "loraft/reward_command.h"
#include "loraft/rewards.h"
#include "loraft/sample.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A batch's completions and rewards, for the log. */
typedef struct RolloutBatch {
    int rows, scored;         /* scored: the rows some function scored */
    double reward, reward_sq; /* their weighted sums of rewards (reward_weighted), and squares */
    long completion_tokens;   /* their stop ids included */
    int clipped;              /* completions cut at max_new without a stop id */
    /* each function's sums of its rewards and their squares, over the rows it scored */
    double func_sum[REWARD_MAX_FUNCS], func_sq[REWARD_MAX_FUNCS];
    int func_n[REWARD_MAX_FUNCS];
} RolloutBatch;

/* What scores the rows. */
typedef struct RolloutScoring {
    RewardFuncs funcs;
    Model *reward;          /* function model's, built for max_prompts * k rows of max_len */
    RewardCommand *command; /* function command's, started */
    const Bpe *tokenizer;   /* decodes the completions for think_format_reward and command */
} RolloutScoring;

typedef struct Rollout {
    RolloutScoring score;
    GenStops stops;
    SampleConfig sample; /* its seed unused: each row's own (rollout_batch) */
    int k, max_new, max_prompts, max_len, slots;
    int mask_cut; /* cut completions unlabelled */
    int32_t pad;  /* the id padding carries (masked: any id the models embed) */
    /* per slot, at strides of max_prompts * k * max_len cells and max_prompts * k rows */
    int32_t *ids, *mask, *labels, *reward_labels;
    int *index;
    float *rewards;  /* the rows' rewards, rewards.h's sums */
    float *per_func; /* at a stride of funcs.n: each function's reward of each row, NaN: none */
    int *scratch;    /* [max_new]: repetition_penalty_reward's */
} Rollout;

/* Sizes the buffers for batches of up to max_prompts prompts of up to max_prompt_len tokens:
 * rows of up to max_prompt_len + max_new (the policy and the reward model must be built for
 * max_prompts * k rows of that), in each of `slots` slots. mask_cut: a completion cut at max_new
 * without a stop id has no labels (GRPO's mask_truncated_completions); the reward model scores it
 * all the same. */
int rollout_init(Rollout *ro, const RolloutScoring *score, const GenStops *stops,
                 const SampleConfig *sample, int k, int max_new, int32_t pad, int mask_cut,
                 int max_prompts, int max_prompt_len, int slots, LfError *err);
void rollout_free(Rollout *ro);

/* prompts (B rows, each its mask's tokens) continued by policy into slot, the draws seeded by
 * seed (the same seed and weights give the same rows); *out points into the slot, which holds it
 * until the slot's next batch, and rollout_rewards(ro, slot) each row's reward; st (may be NULL)
 * gets the batch's figures. records: the prompts' JSONL records by prompts->index (pref_data.h's
 * PrefSet.records), for the reward command; NULL without one. A score of the reward model that
 * is not finite is an error (its weights are not). */
int rollout_batch(Rollout *ro, int slot, Model *policy, const Batch *prompts, char *const *records,
                  uint64_t seed, Batch *out, RolloutBatch *st, LfError *err);
/* Adds batch b's figures to sum's. */
void rollout_batch_add(RolloutBatch *sum, const RolloutBatch *b);
static inline size_t rollout_first_row(const Rollout *ro, int slot) {
    return (size_t)slot * ro->max_prompts * ro->k;
}
static inline float *rollout_rewards(const Rollout *ro, int slot) {
    return ro->rewards + rollout_first_row(ro, slot);
}
/* Row r's reward by each function (NaN: none), in the slot's last batch. */
static inline const float *rollout_func_rewards(const Rollout *ro, int slot, int r) {
    return ro->per_func + (rollout_first_row(ro, slot) + (size_t)r) * ro->score.funcs.n;
}

#ifdef __cplusplus
}
#endif
