/* sample.h: choosing the next token from one row of logits [V] on the host, as transformers'
 * generate() does with do_sample: TemperatureLogitsWarper, then TopKLogitsWarper, then
 * TopPLogitsWarper, then MinPLogitsWarper, then a draw from the softmax of what is left;
 * temperature 0 is greedy (do_sample=False). Not a generation loop; its one processor,
 * transformers' RepetitionPenaltyLogitsProcessor, is sampler_penalize, which the loop applies
 * first (greedy or not) where it has the sequence so far.
 *
 *   temperature  0: argmax, the lowest id among equal maxima (torch.argmax); else logits / T
 *   top_k        0: off; else keep every token whose scaled logit is >= the k-th largest, so ties
 *                at the boundary are all kept (may keep more than k); k >= V is off
 *   top_p        1: off; else HF's nucleus rule on the softmax of the tokens top-k kept: sort
 *                them ascending, drop each whose cumulative probability from the bottom is
 *                <= 1 - p, always keep the most probable one. The smallest set with probability
 *                >= p is kept; p = 0 keeps one token
 *   min_p        0: off; else keep the tokens top-p kept whose probability is at least min_p
 *                times the most probable one's: exp(x - max x) >= min_p on the scaled logits
 *                (HF's ratio, which the earlier filters' normalisation does not change)
 *
 * Where it differs from transformers: the arithmetic is double (scaled logits, softmax, sums), so
 * a top-p boundary within float32 rounding of 1 - p may fall the other way; tokens of equal
 * probability at the top-p boundary are ordered by id (the lower id dropped first, as torch's
 * sort orders small inputs; for large inputs torch's order is unspecified); and the draw uses
 * loraft's counter-based generator (rng.h), not torch's, so the same seed gives a different
 * sequence from PyTorch but always the same one here. Each sampled token takes exactly one
 * 64-bit draw; greedy takes none.
 *
 * Cost per token: O(V) for the scan, scaling and exponentials; top-k selects with a k-element
 * heap, O(V log k), and sorts nothing; top-p sorts only the tokens within half a nat of the
 * least probable token the nucleus can need (binned by logit), so O(V log V) only for a nearly
 * flat distribution (then 14 ms for V = 49,152). Measured for V = 49,152 on one busy core:
 * 0.2-0.5 ms greedy, 0.6 ms with k = 50, 1.5-2 ms with top-p alone.
 *
 * Logits: NaN and +Inf are errors, as are logits that are all -Inf; a -Inf logit is a masked
 * token (probability 0), as transformers' processors write them. */
#pragma once
#include <stdint.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SampleConfig {
    float temperature;        /* >= 0; 0 is greedy */
    int top_k;                /* >= 0; 0 is off */
    float top_p;              /* in [0, 1]; 1 is off */
    float min_p;              /* in [0, 1]; 0 is off */
    float repetition_penalty; /* > 0; 1 is off (sampler_penalize) */
    uint64_t seed;            /* the same seed gives the same tokens for the same logits */
} SampleConfig;

typedef struct Sampler Sampler;

/* A sampler for vocabularies of `vocab` tokens; an out-of-range config is an error. */
int sampler_create(Sampler **out, const SampleConfig *cfg, int vocab, LfError *err);
void sampler_free(Sampler *s); /* NULL is fine */

/* The generator as a sampler created with this seed has it after `draws` tokens: interleaved
 * sequences (a batched generation's rows) each keep the draws of a sampler of their own. */
void sampler_seed(Sampler *s, uint64_t seed, uint64_t draws);

/* transformers' RepetitionPenaltyLogitsProcessor on logits[0..vocab), in place: each distinct
 * token of the sequence so far, prompt[0..n_prompt) then made[0..n_made), has its logit divided
 * by the penalty where it is positive and multiplied by it otherwise (> 1 discourages repeats);
 * nothing when the penalty is 1. The ids must be < vocab. */
void sampler_penalize(Sampler *s, float *logits, const int32_t *prompt, int n_prompt,
                      const int32_t *made, int n_made);

/* The next token for logits[0..vocab). */
int sampler_next(Sampler *s, const float *logits, int32_t *token, LfError *err);

/* The distribution sampler_next draws from for these logits, probs[0..vocab) (zero for tokens
 * filtered out; one-hot when greedy). Draws nothing: the sampler's sequence is unchanged. */
int sampler_probs(Sampler *s, const float *logits, double *probs, LfError *err);

#ifdef __cplusplus
}
#endif
