/* data.h: text classification data sets and the batches the trainer consumes.
 *
 * dataset_load reads JSONL, CSV (RFC 4180) or an aclImdb split directory into
 * an array of (text, label) examples; tokenized_set_build turns them into token
 * ids once per run; a Batcher walks one epoch at a time in a seeded,
 * machine-independent order and pads each batch to its longest sequence.
 * Nothing here knows about models or devices. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Tokenizer Tokenizer; /* tokenizer.h */

/* text[0..len) may hold NUL bytes (a JSON "\u0000", a NUL in a CSV field): texts are
 * length-aware end to end, and the tokenizer's cleaning drops NUL as Hugging Face's does.
 * text[len] is a NUL too. label: class index, or -1 when the file has no labels. */
typedef struct Example {
    char *text;
    size_t len;
    int label;
} Example;

typedef struct Dataset {
    Example *examples;
    int n;
    char source[4096]; /* the path it was loaded from */
    char *storage;     /* owns every example's text */
} Dataset;

typedef struct DatasetSpec {
    const char *path;        /* file.jsonl, file.csv, or an aclImdb split dir (pos/, neg/) */
    const char *format;      /* "auto" or NULL (by extension / directory), "jsonl", "csv", "imdb" */
    const char *text_column; /* NULL = "text" */
    const char *label_column; /* usually "label"; NULL or "" = unlabeled (every label -1) */
    /* Labels must be integers 0..num_labels-1 (num_labels 0: any integer >= 0), or strings
     * matched against label_names (num_labels of them, NULL if none). A CSV field is an
     * integer when it looks like one, else a name; a JSON label is an integer, a name, or a
     * decimal integer string. aclImdb labels are neg = 0, pos = 1. */
    int num_labels;
    const char *const *label_names;
    int limit; /* 0 = all; else only the first `limit` examples (in file order) */
} DatasetSpec;

/* Fills *ds (which must be freed with dataset_free on success; on failure
 * nothing is held). Errors name the file and line (and the byte column for
 * invalid UTF-8). */
int dataset_load(Dataset *ds, const DatasetSpec *spec, LfError *err);
void dataset_free(Dataset *ds);

/* One JSONL line: the JSON object in line[0..len) gives the text (spec->text_column) and
 * label (spec->label_column; -1 when unlabeled) under the rules of dataset_load. The text is
 * decoded with its length (a \u0000 is a NUL byte of it, where cJSON would end the string)
 * into *text, malloc'ed, NUL-terminated, *text_len bytes; on failure *text is NULL. Errors
 * name spec->path and lineno. The JSONL reader and `loraft tokenize` both read lines with it,
 * so training and the CLI see the same text. */
int jsonl_record(const DatasetSpec *spec, const char *line, size_t len, long lineno, char **text,
                 size_t *text_len, int *label, LfError *err);

/* The lines of a JSONL file: fn(ctx, line, len, lineno, err) for each line that is not blank
 * (spaces, tabs, CRs), without its "\n" or "\r\n" and, on line 1, a UTF-8 BOM. fn returns 0 to
 * go on, 1 to stop there, -1 on an error (in err). Returns 0 or -1; opening and reading errors
 * name the path. Every JSONL reader (labelled examples, corpora, SFT records, preference pairs)
 * reads with it. */
typedef int (*JsonlLineFn)(void *ctx, const char *line, size_t len, long lineno, LfError *err);
int jsonl_each_line(const char *path, JsonlLineFn fn, void *ctx, LfError *err);

/* Every example as [CLS] ids [SEP], truncated to max_len; sequence i is
 * ids[offsets[i] .. offsets[i+1]), its label labels[i] (-1 = none). */
typedef struct TokenizedSet {
    int n;
    int32_t *ids;
    int64_t *offsets; /* [n+1] */
    int32_t *labels;  /* [n] */
    int max_len;      /* the longest sequence (at most the max_len asked for) */
} TokenizedSet;

/* Tokenizes every example once (with [CLS]/[SEP], truncated to max_len keeping the end
 * when truncate_left, else the start), on all OpenMP threads; done once per run, not per
 * epoch. Errors name ds->source and the example index. */
int tokenized_set_build(TokenizedSet *ts, const Dataset *ds, const Tokenizer *tok, int max_len,
                        int truncate_left, LfError *err);
void tokenized_set_free(TokenizedSet *ts);

/* The length a batch is padded to: its longest sequence's, rounded up to a multiple of `multiple`
 * (data.pad_to_multiple_of, as transformers' DataCollatorWithPadding: fewer shapes, each
 * planned once by cuDNN's attention; 0 or 1: no rounding), never past cap (the buffers'). */
static inline int padded_length(int longest, int multiple, int cap) {
    int T = multiple > 1 ? (longest + multiple - 1) / multiple * multiple : longest;
    return T < cap ? T : cap;
}

/* One padded batch; the arrays belong to the Batcher and are overwritten by the
 * next call. ids, types, mask: [B,T] with T the longest sequence in the batch (padded_length);
 * padding has id pad_id, type 0 and mask 0. labels, index: [B] (index = example
 * index in the TokenizedSet). */
typedef struct Batch {
    int B, T;
    int32_t *ids, *types, *mask;
    int32_t *labels;
    int *index;
    int n_tokens; /* real (unpadded) tokens */
} Batch;

typedef struct Batcher {
    const TokenizedSet *ts;
    int batch_size;
    int32_t pad_id;
    int pad_multiple;                     /* padded_length's multiple: 0 after init */
    int *order;                           /* [n] example indices, in epoch order */
    uint64_t *keys;                       /* [n] scratch for sorting by length */
    int *batches;                         /* [num_batches] where each batch starts in order[] */
    int next;                             /* next entry of batches[] */
    int32_t *ids, *types, *mask, *labels; /* [batch_size * max_len], labels [batch_size] */
    int *index;                           /* [batch_size] */
} Batcher;

/* Buffers are sized once here for batch_size x ts->max_len; nothing is
 * allocated per batch. ts must outlive the Batcher. Starts in sequential order
 * (as batcher_start_epoch with shuffle 0, bucket 0). */
int batcher_init(Batcher *b, const TokenizedSet *ts, int batch_size, int32_t pad_id, LfError *err);
/* Order for one epoch: a Fisher-Yates shuffle drawn from rng_hash(seed, epoch)
 * (the same seed and epoch give the same order on every machine) or sequential.
 * With bucket > 0, each window of bucket*batch_size examples is sorted by
 * length (longest first) and cut into batches, and with shuffle the batches are
 * then shuffled: little padding, still a random order (like length-grouped
 * sampling). */
void batcher_start_epoch(Batcher *b, uint64_t seed, int epoch, int shuffle, int bucket);
/* Fills *batch with the next batch padded to its longest sequence (as
 * DataCollatorWithPadding); returns 1, or 0 at the end of the epoch. One batch
 * (the last cut) may be smaller than batch_size. */
int batcher_next(Batcher *b, Batch *batch);
int batcher_num_batches(const Batcher *b);
void batcher_free(Batcher *b);

#ifdef __cplusplus
}
#endif
