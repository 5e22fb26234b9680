/* pref_data.h: preference pairs (DPO, reward models), responses to score and prompts to continue
 * (RLOO), and their batches.
 *
 * Records are JSONL objects with string fields "prompt", "chosen" and "rejected" (TRL's explicit-
 * prompt preference format, as ../shared/data/preferences/hh_rlhf_helpful_base.jsonl), or
 * "prompt" and "response" (PREF_SINGLE: `loraft score`), or "prompt" (PREF_PROMPTS; other fields
 * are ignored): a row of tok(prompt) alone, rendered as below, its last max_prompt_length tokens
 * kept. A response becomes one row:
 *   tok(prompt) + tok(" " + response) + [eos]
 * tok(prompt) with the tokenizer's own special tokens (tokenizer(prompt): BOS for a Llama-3-style
 * tokenizer, none for GPT-2 or SmolLM2), the rest without. With a chat template the prompt is
 * rendered first: an Anthropic HH prompt ("Human: ...\n\nAssistant: ...\n\nHuman: ...\n\n
 * Assistant:") is split into its user and assistant turns, any other prompt is one user turn, and
 * the generation prompt follows; the row is then tok(rendered) + tok(response) + [eos], the
 * rendered text encoded without added special tokens (the template carries them), as
 * apply_chat_template(tokenize=True) does.
 *
 * Truncation is TRL v0.12.0's DPOTrainer default (_truncate_tokens, truncation_mode "keep_end"):
 * when the prompt plus the longer of the two responses exceeds max_length, the prompt keeps its
 * last max_prompt_length tokens; when that is still too long, each response keeps its first
 * max_length - max_prompt_length tokens (its EOS may go). A pair's rows share the prompt.
 *
 * Batches: a batch of P pairs is 2P rows, row 2i chosen and 2i+1 rejected, padded to the longest
 * with pad_id (mask 0); labels per token are the ids on the response and its EOS and -100 on the
 * prompt and padding (mask_prompt, DPO) or the ids on every token (a reward model reads the last
 * one). The epoch order of pairs is a Fisher-Yates shuffle from rng_hash(seed, epoch), as the
 * Batcher's. */
#pragma once
#include <stdint.h>

#include "loraft/chat.h"
#include "loraft/data.h"
#include "loraft/lm_data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum PrefKind { PREF_PAIRS, PREF_SINGLE, PREF_PROMPTS } PrefKind;

typedef struct PrefSpec {
    const char *path;
    PrefKind kind;
    int max_length, max_prompt_length; /* >= 2, >= 0 */
    int limit;                         /* 0 = all; else only the first `limit` records kept */
    int holdout;                       /* the last `holdout` records of the file ... */
    int heldout;                       /* ... are the set (1) or are left out of it (0) */
    const ChatTemplate *chat;          /* NULL: the prompt as it is */
    const LmSpecials *sp;              /* the tokenizer's prefix and the EOS */
    int keep_records;                  /* PROMPTS: keep each record's JSON text (records) */
} PrefSpec;

typedef struct PrefSet {
    TokenizedSet rows;   /* PAIRS: row 2i chosen, 2i+1 rejected; SINGLE, PROMPTS: row i */
    int32_t *prompt_len; /* [rows.n] tokens of each row's prompt */
    int n_items;         /* pairs or single rows */
    int n_truncated;     /* items cut by max_length */
    int group;           /* rows per item: 2 or 1 */
    char **records;      /* keep_records: [n_items] each item's JSONL line; else NULL */
} PrefSet;

/* Reads, renders and tokenizes every record (errors name the file and line). */
int pref_set_load(PrefSet *s, const PrefSpec *spec, const TextTokenizer *tok, LfError *err);
void pref_set_free(PrefSet *s);

typedef struct PrefLoader {
    const PrefSet *s;
    int batch_size; /* items */
    int32_t pad_id;
    int pad_multiple; /* padded_length's multiple: 0 after init */
    int mask_prompt;
    int *order, next;
    int32_t *ids, *mask, *labels; /* [batch_size * group * max_len] */
    int *index;                   /* [batch_size * group] row numbers */
} PrefLoader;

int pref_loader_init(PrefLoader *l, const PrefSet *s, int batch_size, int32_t pad_id,
                     int mask_prompt, LfError *err);
void pref_loader_start_epoch(PrefLoader *l, uint64_t seed, int epoch, int shuffle);
/* The next batch (types NULL); 1, or 0 at the end of the epoch. */
int pref_loader_next(PrefLoader *l, Batch *out);
int pref_loader_num_batches(const PrefLoader *l);
void pref_loader_free(PrefLoader *l);

#ifdef __cplusplus
}
#endif
