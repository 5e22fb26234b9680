/* rewards.h: the reward functions that score RLOO's and GRPO's completions (train.reward_funcs,
 * TRL's reward_funcs) and how their rewards add up (TRL 1.16's GRPOTrainer and RLOOTrainer).
 *
 * Each function gives each completion a reward, or none (NaN: TRL's None, "cannot score this
 * one"): the reward model's score (rollout.h), the program of train.reward_command
 * (reward_command.h), or one of TRL's built-in rewards (trl.rewards), computed here:
 *   think_format_reward             1 where the completion's text is "<think>" + reasoning +
 *                                   "</think>" + anything, with no second "<think>"; else 0
 *   soft_overlong_punishment_reward DAPO's: 0 up to L - c tokens, then falling linearly to -1 at
 *                                   L (max_completion_length L, soft_punish_cache c)
 *   repetition_penalty_reward       (1 - unique n-grams / n-grams) x max_penalty over the
 *                                   completion's ids; 0 under n tokens
 * A completion's tokens count its stop token (TRL's completion ids end with the EOS), its text is
 * its ids decoded without special tokens.
 *
 * The rewards of a batch (groups of k completions of one prompt) become one reward a completion:
 * sum_then_normalize (TRL's default) the weighted sum of its functions' rewards, the ones it has
 * (nansum); normalize_then_sum (GDPO) each function's rewards normalised over the group first,
 * (x - mean) / (std + 1e-4), std with Bessel's, NaN where it has one reward or none, then the
 * weighted sum. A completion none of the functions scored has reward NaN: the advantages leave it
 * out of every mean and give it 0 (objective.h). */
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { REWARD_MAX_FUNCS = 8 };

typedef enum RewardKind {
    REWARD_MODEL,
    REWARD_COMMAND,
    REWARD_THINK_FORMAT,
    REWARD_SOFT_OVERLONG,
    REWARD_REPETITION,
} RewardKind;

typedef struct RewardFuncs {
    int n;
    RewardKind kind[REWARD_MAX_FUNCS];
    float weight[REWARD_MAX_FUNCS];
    int normalize_then_sum;
    int max_completion, soft_cache; /* soft_overlong_punishment_reward's L and c */
    int ngram;                      /* repetition_penalty_reward's n ... */
    float max_penalty;              /* ... and its reward at its most repetitive, <= 0 */
} RewardFuncs;

/* The kind train.reward_funcs names ("model", "command", or TRL's name of a built-in); -1 for an
 * unknown name. */
int reward_kind_named(const char *name);
/* Whether f lists a function of that kind. */
int reward_funcs_has(const RewardFuncs *f, RewardKind kind);
/* The name the log gives a function's rewards (rewards/NAME/mean). */
const char *reward_name(RewardKind kind);

float reward_think_format(const char *text);
float reward_soft_overlong(int tokens, int max_completion, int soft_cache);
/* scratch: room for n ints. */
float reward_repetition(const int32_t *ids, int n, int ngram, float max_penalty, int *scratch);

/* The built-in function i of f for one completion: its ids (n of them) and text. */
float reward_builtin(const RewardFuncs *f, int i, const int32_t *ids, int n, const char *text,
                     int *scratch);

/* per_func [rows * f->n], a row's functions' rewards in turn (NaN: none), into out [rows], rows
 * in groups of k. */
void reward_combine(const RewardFuncs *f, const float *per_func, int rows, int k, float *out);
/* A row's weighted sum of the rewards it has (the log's reward, whichever aggregation); NaN
 * where it has none. */
double reward_weighted(const RewardFuncs *f, const float *row);

#ifdef __cplusplus
}
#endif
