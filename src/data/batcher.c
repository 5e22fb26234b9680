/* batcher.c: tokenizes a Dataset once, then serves padded batches epoch by epoch.
 *
 * The epoch order is a pure function of (seed, epoch) through rng_hash, so it is the same
 * on every machine; optional length bucketing keeps padding small. Not a data pipeline:
 * no prefetch threads, no device copies; the trainer uploads the host arrays it gets. */
#include "loraft/data.h"

#include <stdlib.h>
#include <string.h>

#include "loraft/rng.h"
#include "loraft/tokenizer.h"

/* ---- the tokenized set ---- */

enum { CHUNK = 2048 }; /* examples tokenized in parallel per round: bounds the scratch memory */

/* Appends seq[0..len) as sequence i to ts->ids, growing *cap. */
static int ids_append(TokenizedSet *ts, int64_t *cap, const int32_t *seq, int len, int i,
                      LfError *err) {
    int64_t used = ts->offsets[i];
    if (used + len > *cap) {
        int64_t c = *cap ? *cap : 1 << 16;
        while (c < used + len) c *= 2;
        int32_t *ids = realloc(ts->ids, (size_t)c * sizeof *ids);
        if (!ids) return lf_fail(err, "out of memory for %lld token ids", (long long)c);
        ts->ids = ids;
        *cap = c;
    }
    memcpy(ts->ids + used, seq, (size_t)len * sizeof *seq);
    ts->offsets[i + 1] = used + len;
    return 0;
}

/* Example i as [CLS] words [SEP], truncated, into seq[max_len]; returns its length, or -1.
 * words is scratch. */
static int tokenize_one(const Dataset *ds, const Tokenizer *tok, int i, int max_len,
                        int truncate_left, IdList *words, int32_t *seq, LfError *err) {
    const Example *ex = &ds->examples[i];
    words->n = 0;
    if (tokenizer_encode(tok, ex->text, ex->len, words, err))
        return lf_wrap(err, "%s: example %d", ds->source, i);
    int na = words->n > (size_t)1 << 30 ? 1 << 30 : (int)words->n;
    int len =
        tokenizer_build_inputs(tok, words->ids, na, NULL, 0, max_len, truncate_left, seq, NULL);
    if (len < 0 || len > max_len)
        return lf_fail(err, "%s: example %d: tokenizer returned length %d for max_len %d",
                       ds->source, i, len, max_len);
    return len;
}

/* Examples [lo, hi) into rows [hi-lo, max_len] and lens [hi-lo], on all threads (the
 * Tokenizer is read-only); on failure err gets the lowest failing example's message. */
static int tokenize_chunk(const Dataset *ds, const Tokenizer *tok, int lo, int hi, int max_len,
                          int truncate_left, int32_t *rows, int *lens, LfError *err) {
    int failed = hi;
#pragma omp parallel
    {
        IdList words = {0};
        LfError e;
#pragma omp for schedule(dynamic, 8)
        for (int i = lo; i < hi; i++) {
            int32_t *row = rows + (size_t)(i - lo) * (size_t)max_len;
            lens[i - lo] = tokenize_one(ds, tok, i, max_len, truncate_left, &words, row, &e);
            if (lens[i - lo] < 0)
#pragma omp critical(tokenize_error)
                if (i < failed) {
                    failed = i;
                    if (err) *err = e;
                }
        }
        idlist_free(&words);
    }
    return failed < hi ? -1 : 0;
}

int tokenized_set_build(TokenizedSet *ts, const Dataset *ds, const Tokenizer *tok, int max_len,
                        int truncate_left, LfError *err) {
    memset(ts, 0, sizeof *ts);
    if (max_len < 2) return lf_fail(err, "max_len %d leaves no room for [CLS] and [SEP]", max_len);
    if (ds->n <= 0) return lf_fail(err, "%s: no examples to tokenize", ds->source);
    int n = ds->n, chunk = n < CHUNK ? n : CHUNK, longest = 0;
    ts->n = n;
    ts->offsets = calloc((size_t)n + 1, sizeof *ts->offsets);
    ts->labels = malloc((size_t)n * sizeof *ts->labels);
    int32_t *rows = malloc((size_t)chunk * (size_t)max_len * sizeof *rows);
    int *lens = malloc((size_t)chunk * sizeof *lens);
    int64_t cap = 0;
    int rc = ts->offsets && ts->labels && rows && lens ? 0 : lf_fail(err, "out of memory");
    for (int lo = 0; lo < n && rc == 0; lo += chunk) {
        int hi = lo + chunk < n ? lo + chunk : n;
        rc = tokenize_chunk(ds, tok, lo, hi, max_len, truncate_left, rows, lens, err);
        for (int i = lo; i < hi && rc == 0; i++) {
            rc = ids_append(ts, &cap, rows + (size_t)(i - lo) * (size_t)max_len, lens[i - lo], i,
                            err);
            ts->labels[i] = ds->examples[i].label;
            longest = lens[i - lo] > longest ? lens[i - lo] : longest;
        }
    }
    free(rows);
    free(lens);
    if (rc) {
        tokenized_set_free(ts);
        return -1;
    }
    int32_t *fit = realloc(ts->ids, (size_t)ts->offsets[n] * sizeof *fit + 1);
    if (fit) ts->ids = fit;
    ts->max_len = longest;
    return 0;
}

void tokenized_set_free(TokenizedSet *ts) {
    free(ts->ids);
    free(ts->offsets);
    free(ts->labels);
    memset(ts, 0, sizeof *ts);
}

/* ---- batches ---- */

static int seq_len(const TokenizedSet *ts, int i) {
    return (int)(ts->offsets[i + 1] - ts->offsets[i]);
}

int batcher_num_batches(const Batcher *b) {
    return (b->ts->n + b->batch_size - 1) / b->batch_size;
}

int batcher_init(Batcher *b, const TokenizedSet *ts, int batch_size, int32_t pad_id, LfError *err) {
    memset(b, 0, sizeof *b);
    if (batch_size <= 0 || ts->n <= 0 || ts->max_len <= 0)
        return lf_fail(err, "batcher: batch size %d, %d examples, max_len %d: all must be > 0",
                       batch_size, ts->n, ts->max_len);
    for (int i = 0; i < ts->n; i++)
        if (seq_len(ts, i) < 0 || seq_len(ts, i) > ts->max_len)
            return lf_fail(err, "batcher: example %d has %d tokens, max_len is %d", i,
                           seq_len(ts, i), ts->max_len);
    size_t bt = (size_t)batch_size * (size_t)ts->max_len, bs = (size_t)batch_size;
    b->ts = ts;
    b->batch_size = batch_size;
    b->pad_id = pad_id;
    b->order = malloc((size_t)ts->n * sizeof *b->order);
    b->keys = malloc((size_t)ts->n * sizeof *b->keys);
    b->batches = malloc((size_t)batcher_num_batches(b) * sizeof *b->batches);
    b->ids = malloc(bt * sizeof *b->ids);
    b->types = calloc(bt, sizeof *b->types); /* one sentence: stays all 0 */
    b->mask = malloc(bt * sizeof *b->mask);
    b->labels = malloc(bs * sizeof *b->labels);
    b->index = malloc(bs * sizeof *b->index);
    if (!b->order || !b->keys || !b->batches || !b->ids || !b->types || !b->mask || !b->labels ||
        !b->index) {
        batcher_free(b);
        return lf_fail(err, "batcher: out of memory for %d x %d", batch_size, ts->max_len);
    }
    batcher_start_epoch(b, 0, 0, 0, 0);
    return 0;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts order[0..n) longest first, ties by example index: a total order, so every qsort
 * gives the same result. */
static void sort_by_length(const TokenizedSet *ts, int *order, int n, uint64_t *keys) {
    for (int i = 0; i < n; i++)
        keys[i] =
            (uint64_t)(uint32_t)(ts->max_len - seq_len(ts, order[i])) << 32 | (uint32_t)order[i];
    qsort(keys, (size_t)n, sizeof *keys, cmp_u64);
    for (int i = 0; i < n; i++) order[i] = (int)(uint32_t)keys[i];
}

void batcher_start_epoch(Batcher *b, uint64_t seed, int epoch, int shuffle, int bucket) {
    int n = b->ts->n, nb = batcher_num_batches(b);
    Rng r = {rng_hash(seed, (uint64_t)epoch), 0};
    for (int i = 0; i < n; i++) b->order[i] = i;
    if (shuffle) rng_shuffle(b->order, n, &r);
    if (bucket > 0) {
        int64_t window = (int64_t)bucket * b->batch_size;
        for (int64_t s = 0; s < n; s += window)
            sort_by_length(b->ts, b->order + s, (int)(s + window < n ? window : n - s), b->keys);
    }
    for (int k = 0; k < nb; k++) b->batches[k] = k * b->batch_size;
    if (shuffle && bucket > 0) rng_shuffle(b->batches, nb, &r);
    b->next = 0;
}

int batcher_next(Batcher *b, Batch *batch) {
    const TokenizedSet *ts = b->ts;
    if (b->next >= batcher_num_batches(b)) return 0;
    int start = b->batches[b->next++], B = ts->n - start, T = 0;
    if (B > b->batch_size) B = b->batch_size;
    const int *idx = b->order + start;
    for (int i = 0; i < B; i++)
        if (seq_len(ts, idx[i]) > T) T = seq_len(ts, idx[i]);
    T = padded_length(T, b->pad_multiple, ts->max_len);
    *batch = (Batch){.B = B,
                     .T = T,
                     .ids = b->ids,
                     .types = b->types,
                     .mask = b->mask,
                     .labels = b->labels,
                     .index = b->index};
    for (int i = 0; i < B; i++) {
        int len = seq_len(ts, idx[i]);
        const int32_t *src = ts->ids + ts->offsets[idx[i]];
        for (int t = 0; t < T; t++) {
            b->ids[i * T + t] = t < len ? src[t] : b->pad_id;
            b->mask[i * T + t] = t < len;
        }
        b->labels[i] = ts->labels[idx[i]];
        b->index[i] = idx[i];
        batch->n_tokens += len;
    }
    return 1;
}

void batcher_free(Batcher *b) {
    free(b->order);
    free(b->keys);
    free(b->batches);
    free(b->ids);
    free(b->types);
    free(b->mask);
    free(b->labels);
    free(b->index);
    memset(b, 0, sizeof *b);
}
