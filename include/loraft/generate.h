/* generate.h: continuing prompts with a decoder, shared by `loraft generate` (which streams
 * each token) and the trainer (SFT's answers to its evaluation prompts, RLOO's completions). A
 * prompt fills its sequence of the KV cache (model_decode, model.h), then one token per step is
 * chosen by a Sampler (sample.h) and fed back, until max_new tokens, a stop token or the stop
 * text; several prompts decode side by side, one step for all (gen_batch).
 *
 * Stops: the tokenizer's EOS and, with a chat template, its end-of-turn strings (chat.h):
 * a string that is one special token of the vocabulary stops at that id (ChatML's <|im_end|>,
 * Llama-3's <|eot_id|>); any other string (plain's "\nUser:") is a text the caller matches in
 * the decoded continuation and cuts off. A stop id is never part of the continuation.
 *
 * Also here: the chat template a model carries (its tokenizer_config.json's chat_template or
 * chat_template.jinja beside it, or a GGUF file's tokenizer.chat_template), or one by name. */
#pragma once
#include <stdint.h>

#include "loraft/bpe.h"
#include "loraft/chat.h"
#include "loraft/error.h"
#include "loraft/model.h"
#include "loraft/sample.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct GenStops {
    int32_t ids[CHAT_MAX_STOPS + 1];
    int n_ids;
    const char *text; /* NULL: none */
} GenStops;

/* EOS (when the tokenizer has one) and, when t is not NULL, t's end-of-turn strings. */
GenStops gen_stops(const ChatTemplate *t, const Bpe *bpe);
int gen_is_stop(const GenStops *st, int32_t id);

/* Receives each new token; returns nonzero to end the continuation there. */
typedef int (*GenEmit)(void *ctx, int32_t id);

typedef struct GenStats {
    int new_tokens;             /* tokens passed to emit */
    int32_t stop;               /* the stop id that ended it; -1: none (a limit, or emit) */
    double prefill_s, decode_s; /* wall time of the prompt, and of the new tokens */
} GenStats;

/* A prompt runs through the model in chunks of at most this many tokens (llama.cpp's default
 * batch), so that a model built for generation needs its activations and the cached attention's
 * scratch for this many rows, not for the longest prompt. */
enum { GEN_PREFILL_ROWS = 512 };
/* The rows to build a model with for prompts of up to `longest` tokens: one chunk's, at least 2
 * (model_create's least). */
static inline int gen_model_rows(int longest) {
    return longest < 2 ? 2 : longest < GEN_PREFILL_ROWS ? longest : GEN_PREFILL_ROWS;
}

/* Continues prompt[0..P) (P >= 1; through the model in chunks of m->max_len) by at most max_new
 * tokens, fewer when the model's positions run out, drawing from s as it stands; the KV cache is
 * reset (model_cache_reset) for P + max_new. stats may be NULL. */
int gen_run(Model *m, Sampler *s, const GenStops *st, const int32_t *prompt, int P, int max_new,
            GenEmit emit, void *ctx, GenStats *stats, LfError *err);

/* A batched generation's prompt: ids[0..n), n >= 1. */
typedef struct GenPrompt {
    const int32_t *ids;
    int n;
} GenPrompt;

/* Receives row `row`'s next token; returns nonzero to end that row there. */
typedef int (*GenRowEmit)(void *ctx, int row, int32_t id);

/* Continues n prompts side by side, as gen_run each (stats[n], may be NULL), with one decode step
 * for all the rows still going (model_decode_step: GEMMs over the rows, not one row at a time).
 * Row i draws as a sampler of s's settings seeded seeds[i] would alone (seeds NULL: the rows draw
 * from s in turn), so its tokens are gen_run's with that sampler up to the float rounding of the
 * batched GEMMs. A prompt repeated row after row (the same ids and n) runs through the model once
 * and its cache is copied (model_cache_copy). The model must hold n sequences in a step
 * (max_batch * max_len >= n). */
int gen_batch(Model *m, Sampler *s, const uint64_t *seeds, const GenStops *st,
              const GenPrompt *prompts, int n, int max_new, GenRowEmit emit, void *ctx,
              GenStats *stats, LfError *err);

/* The continuations of n prompts side by side (gen_batch), sampled as sc says (row i seeded
 * sc->seed + i: the tokens gen_run gives prompt i alone with that seed), as text: out[i] (malloc'd,
 * NUL-terminated, UTF-8: a token's incomplete bytes as U+FFFD) is cut before the stop text when
 * it appears; special tokens decode as their text (a stop id never appears). stats[n] may be
 * NULL. */
int gen_texts(Model *m, const SampleConfig *sc, const Bpe *bpe, const GenStops *st,
              const GenPrompt *prompts, int n, int max_new, char **out, GenStats *stats,
              LfError *err);

/* name (not NULL): the built-in template of that name; else the built-in template that the
 * chat template of model (an HF directory, a tokenizer directory or a .gguf file) stands for.
 * A model without one, or with one loraft does not know, is an error naming the built-in
 * templates. */
int chat_template_for_model(const char *model, const char *name, ChatTemplate *t, LfError *err);

#ifdef __cplusplus
}
#endif
