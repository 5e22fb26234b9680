/* lm_data.h: the data side of the causal-LM objective: a corpus of texts, packed training
 * blocks, one evaluation row per text, and the batches over both.
 *
 * A corpus is a JSONL file (one text per record, read with jsonl_record of data.h), a .txt
 * file, or a directory of .txt files (in name order). A .txt is cut into texts by an LmUnit:
 * the whole file (one document, the default), each non-blank line, or each paragraph.
 *
 * Training (lm_pack) follows Hugging Face's run_clm (tokenize_function + group_texts):
 *   - every text is encoded once with the tokenizer's own special tokens, as tokenizer(text)
 *     does: GPT-2 and SmolLM2 add none, a Llama-style template adds BOS, WordPiece adds
 *     [CLS] ... [SEP];
 *   - the encodings are concatenated in corpus order and cut into blocks of exactly
 *     block_size tokens; the remainder (fewer than block_size tokens) is dropped;
 *   - a block's labels are its ids: the model shifts them, so a batch has no padding.
 * It departs from run_clm in three places:
 *   - an EOS goes between consecutive documents unless the earlier one already ends with it
 *     (run_clm puts nothing there, so GPT-2 documents run into each other);
 *   - a .txt is one document by default (run_clm reads it a line at a time, keeping each
 *     "\n", and encodes each line alone, so no token spans a line end: GPT-2 makes 227,336
 *     tokens of Emma line by line, 227,199 of the whole file);
 *   - a corpus shorter than one block is an error (group_texts returns no blocks and the run
 *     fails later).
 *
 * Evaluation (lm_rows): each text alone, encoded as above, right-truncated to max_length
 * (a suffix special token such as [SEP] is kept at the end, as tokenizer(truncation=True)
 * keeps it); no packing. Texts of fewer than 2 tokens predict nothing and are left out.
 * eval_loss is the mean token loss over the predicted tokens, sum over rows of (len - 1)
 * (LmSet.n_predicted), and perplexity = exp(eval_loss).
 *
 * Holding out a chapter (LmHoldout): a chapter heading is a line that is "CHAPTER" or
 * "Chapter", one or more spaces or tabs, a numeral (arabic digits, or the capitals IVXLCDM),
 * an optional '.', and nothing else but whitespace: how the six Austen novels print them
 * ("CHAPTER I", "CHAPTER 1", "Chapter 1"; a title after the numeral is not recognised, so
 * that no line of prose is taken for a heading). Chapter N is the N-th heading of
 * the file counted from 1, whatever its numeral (Emma restarts at I in each volume, so its
 * chapter 19 is "CHAPTER I" of volume II); it runs from its heading line to the next heading
 * line or the end of the file, so a "VOLUME II" line ends the chapter before it. Text before
 * the first heading belongs to no chapter. The training part is the file with the chapter's
 * bytes cut out (one document still); the held-out part is the chapter, cut by the LmUnit.
 *
 * Batches (LmLoader): rows padded to the longest in the batch (never, for packed blocks),
 * mask 1 on real tokens, labels = ids there (or the set's token_labels) and -100 on padding. The
 * epoch order is a Fisher-Yates shuffle drawn from rng_hash(seed, epoch) (the Batcher of data.h),
 * so a resumed run sees the same blocks in the same order.
 *
 * Not here: the loss (the objective's), chat templates and SFT's answer labels (sft_data.h),
 * streaming corpora larger than memory. Token ids are int32 in one allocation per set. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/data.h"
#include "loraft/error.h"
#include "loraft/text.h"

#ifdef __cplusplus
extern "C" {
#endif

enum { LM_IGNORE = -100 }; /* the label of a padding position, as PyTorch's ignore_index */

/* How a .txt file is cut into texts (JSONL: one record is one text, always). A line or a
 * paragraph (a run of non-blank lines) is kept without its final newline; blank lines
 * (whitespace only) start no text. */
typedef enum LmUnit { LM_UNIT_FILE, LM_UNIT_LINE, LM_UNIT_PARAGRAPH } LmUnit;

/* What a load keeps of a corpus with a held-out chapter. */
typedef enum LmPart {
    LM_PART_ALL,     /* everything: the holdout is ignored */
    LM_PART_TRAIN,   /* everything but the chapter */
    LM_PART_HELDOUT, /* only the chapter */
} LmPart;

typedef struct LmHoldout {
    const char *file; /* a .txt of the corpus (matched by device and inode); NULL: none */
    int chapter;      /* N >= 1: the N-th chapter heading of the file */
} LmHoldout;

typedef struct LmSource {
    const char *path;        /* FILE.jsonl, FILE.txt, or a directory of *.txt files */
    const char *format;      /* NULL or "auto" (*.jsonl, *.txt or a directory), "jsonl", "txt" */
    const char *text_column; /* JSONL: NULL = "text" */
    LmUnit unit;             /* .txt files */
    LmHoldout holdout;
    LmPart part; /* with holdout.file set, TRAIN and HELDOUT require the file in the corpus */
} LmSource;

/* The texts of a corpus, UTF-8 checked; text i is buf + offsets[i], lens[i] bytes and a NUL
 * (it may hold NULs of its own, from a JSON "\u0000"). */
typedef struct LmTexts {
    int n;
    char *buf;
    size_t *offsets, *lens; /* [n] */
    char source[4096];      /* the path it was read from, for messages */
} LmTexts;

/* Fills *t (free with lm_texts_free; nothing is held on failure). Errors name the file and
 * line (JSONL records, invalid UTF-8), a missing file, a chapter the file does not have, and
 * a corpus without a single text. */
int lm_texts_load(LmTexts *t, const LmSource *src, LfError *err);
void lm_texts_free(LmTexts *t);

/* The chapters of text[0..len): *starts (malloc'd, [*n + 1]) holds each heading line's byte
 * offset, then len. *n may be 0. */
int lm_chapters(const char *text, size_t len, size_t **starts, int *n, LfError *err);

/* The special tokens the tokenizer adds to one text (tokenizer(text) in Hugging Face) and the
 * EOS put between documents. Byte-level BPE: its post-processor's tokens and bpe_eos (an error
 * when it has none); WordPiece: [CLS] and [SEP], and [SEP] as the EOS. A caller may set eos
 * to another id (SmolLM2-Instruct's EOS is <|im_end|>; a base model's is <|endoftext|>). */
typedef struct LmSpecials {
    int32_t prefix[4], suffix[4];
    int n_prefix, n_suffix;
    int32_t eos;
} LmSpecials;
int lm_specials(LmSpecials *sp, const TextTokenizer *tok, LfError *err);

/* Rows of token ids: rows.ids is one allocation, row i = ids[offsets[i] .. offsets[i+1]),
 * rows.labels all -1 (unused), rows.max_len the longest row. */
typedef struct LmSet {
    TokenizedSet rows;
    int n_texts;         /* texts read */
    int64_t n_tokens;    /* tokens the rows hold */
    int64_t n_dropped;   /* tokens made but not held: packed, the remainder after the last
                          * block; rows, those cut by max_length and those of skipped texts */
    int64_t n_predicted; /* sum over rows of (len - 1): the eval_loss denominator */
    int n_skipped;       /* rows: texts of fewer than 2 tokens, left out */
    /* NULL: every token's label is its id; else [n_tokens] beside rows.ids, LM_IGNORE where
     * nothing is predicted (SFT's prompts, sft_data.h) */
    int32_t *token_labels;
} LmSet;

/* Training blocks of exactly block_size tokens (>= 2) packed as the header says: the stream
 * is n_tokens + n_dropped long. An error when it is shorter than block_size. */
int lm_pack(LmSet *s, const LmTexts *t, const TextTokenizer *tok, const LmSpecials *sp,
            int block_size, LfError *err);
/* Evaluation rows: each text alone, right-truncated to max_length (>= 2). An error when no
 * text has 2 tokens. */
int lm_rows(LmSet *s, const LmTexts *t, const TextTokenizer *tok, const LmSpecials *sp,
            int max_length, LfError *err);
void lm_set_free(LmSet *s);

/* One batch; the arrays belong to the LmLoader and are overwritten by the next call. ids,
 * mask, labels: [B,T], T the longest row in the batch. index: [B] row numbers. */
typedef struct LmBatch {
    int B, T;
    const int32_t *ids, *mask;
    int32_t *labels;
    const int *index;
    int64_t n_tokens;    /* real tokens */
    int64_t n_predicted; /* labels that count (>= 0) at positions 1.. of each row */
} LmBatch;

typedef struct LmLoader {
    Batcher b;
    const LmSet *s;
    int32_t *labels; /* [batch_size * max_len] */
} LmLoader;

/* pad_id fills padding (masked; any id the model can embed, e.g. sp->eos). s must outlive
 * the loader. Starts in row order. */
int lm_loader_init(LmLoader *l, const LmSet *s, int batch_size, int32_t pad_id, LfError *err);
/* The order of one epoch: shuffled from (seed, epoch) or in row order; bucket > 0 groups
 * rows of similar length (data.h), useful for evaluation rows only. */
void lm_loader_start_epoch(LmLoader *l, uint64_t seed, int epoch, int shuffle, int bucket);
/* The next batch; 1, or 0 at the end of the epoch. */
int lm_loader_next(LmLoader *l, LmBatch *batch);
int lm_loader_num_batches(const LmLoader *l);
void lm_loader_free(LmLoader *l);

#ifdef __cplusplus
}
#endif
