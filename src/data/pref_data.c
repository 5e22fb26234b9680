/* pref_data.c: preference pairs, scored responses and prompts, tokenized once, and their batches
 * (see pref_data.h). */
#include "loraft/pref_data.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/rng.h"

enum { MAX_FIELDS = 3 };

/* One record's strings: prompt, then chosen and rejected (PAIRS), response (SINGLE) or nothing
 * (PROMPTS). */
typedef struct Record {
    char *f[MAX_FIELDS];
    size_t len[MAX_FIELDS];
    char *line; /* keep_records: the JSON text */
} Record;

static int n_fields(PrefKind k) {
    return k == PREF_PAIRS ? 3 : k == PREF_SINGLE ? 2 : 1;
}

static void records_free(Record *r, int n) {
    for (int i = 0; r && i < n; i++) {
        for (int k = 0; k < MAX_FIELDS; k++) free(r[i].f[k]);
        free(r[i].line);
    }
    free(r);
}

typedef struct Reading {
    const PrefSpec *spec;
    Record *recs;
    int n, cap;
} Reading;

/* The record's JSON text, as cJSON prints it back (the line may hold bytes a reader of JSON
 * would not take, such as NUL). */
static int keep_line(Record *r, const char *line, size_t len, long ln, LfError *err) {
    cJSON *o = cJSON_ParseWithLength(line, len);
    r->line = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return r->line ? 0 : lf_fail(err, "line %ld: out of memory", ln);
}

/* One JSONL line as a Record. */
static int read_record(void *ctx, const char *line, size_t len, long ln, LfError *err) {
    static const char *const names[3][MAX_FIELDS] = {
        {"prompt", "chosen", "rejected"}, {"prompt", "response", NULL}, {"prompt", NULL, NULL}};
    Reading *x = ctx;
    if (x->n == x->cap) {
        int cap = x->cap ? 2 * x->cap : 256;
        Record *grown = realloc(x->recs, (size_t)cap * sizeof *grown);
        if (!grown) return lf_fail(err, "out of memory");
        x->recs = grown, x->cap = cap;
    }
    Record *r = &x->recs[x->n++];
    memset(r, 0, sizeof *r);
    int label;
    for (int k = 0; k < n_fields(x->spec->kind); k++) {
        DatasetSpec ds = {.path = x->spec->path, .text_column = names[x->spec->kind][k]};
        if (jsonl_record(&ds, line, len, ln, &r->f[k], &r->len[k], &label, err)) return -1;
    }
    return x->spec->keep_records ? keep_line(r, line, len, ln, err) : 0;
}

/* Every non-blank line of the file as a Record. */
static int read_records(const PrefSpec *spec, Record **out, int *n_out, LfError *err) {
    Reading x = {.spec = spec};
    int rc = jsonl_each_line(spec->path, read_record, &x, err);
    if (!rc && !x.n) rc = lf_fail(err, "%s: no records", spec->path);
    if (rc) return records_free(x.recs, x.n), -1;
    *out = x.recs;
    *n_out = x.n;
    return 0;
}

/* ---- chat rendering of a prompt ---- */

static char *trim(char *s) {
    while (*s == ' ' || *s == '\n') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n')) s[--n] = 0;
    return s;
}

/* The next "\n\nHuman:" or "\n\nAssistant:" at or after s; *assistant says which. */
static char *next_turn(char *s, int *assistant) {
    char *h = strstr(s, "\n\nHuman:"), *a = strstr(s, "\n\nAssistant:");
    *assistant = a && (!h || a < h);
    return *assistant ? a : h;
}

/* An HH prompt split into turns in place (p is modified), the trailing empty "Assistant:" left
 * to the generation prompt; any other prompt is one user turn. msgs has room for every turn. */
static int hh_turns(char *p, ChatMessage *msgs) {
    char *s = trim(p);
    if (strncmp(s, "Human:", 6)) {
        msgs[0] = (ChatMessage){"user", s};
        return 1;
    }
    int n = 0, assistant = 0, next_assistant;
    s += 6;
    for (;;) {
        char *m = next_turn(s, &next_assistant);
        if (m) *m = 0;
        char *content = trim(s);
        if (m || !assistant || *content)
            msgs[n++] = (ChatMessage){assistant ? "assistant" : "user", content};
        if (!m) return n;
        assistant = next_assistant;
        s = m + (assistant ? 12 : 8);
    }
}

/* The prompt's ids: rendered by the chat template (no added special tokens), or the tokenizer's
 * prefix tokens and the prompt. */
static int prompt_ids(const PrefSpec *spec, const TextTokenizer *tok, const Record *r, IdList *ids,
                      LfError *err) {
    if (!spec->chat) {
        for (int k = 0; k < spec->sp->n_prefix; k++)
            if (idlist_push(ids, spec->sp->prefix[k], err)) return -1;
        return text_encode(tok, r->f[0], r->len[0], ids, err);
    }
    int turns = 1;
    for (const char *s = r->f[0]; (s = strstr(s, "\n\n")); s += 2) turns++;
    char *copy = strdup(r->f[0]), *text = NULL;
    ChatMessage *msgs = malloc((size_t)turns * sizeof *msgs);
    size_t len;
    int rc = copy && msgs ? 0 : lf_fail(err, "out of memory");
    if (!rc) rc = chat_render(spec->chat, msgs, hh_turns(copy, msgs), 1, &text, &len, err);
    if (!rc) rc = text_encode(tok, text, len, ids, err);
    free(copy), free(msgs), free(text);
    return rc;
}

/* A response's ids: tok(" " + response) (tok(response) after a chat template) + [eos]. */
static int response_ids(const PrefSpec *spec, const TextTokenizer *tok, const char *text,
                        size_t len, IdList *ids, LfError *err) {
    char *spaced = malloc(len + 2);
    if (!spaced) return lf_fail(err, "out of memory");
    spaced[0] = ' ';
    memcpy(spaced + 1, text, len + 1);
    int rc = spec->chat ? text_encode(tok, text, len, ids, err)
                        : text_encode(tok, spaced, len + 1, ids, err);
    free(spaced);
    return rc ? rc : idlist_push(ids, spec->sp->eos, err);
}

/* ---- the set ---- */

/* Appends row prompt[0..np) + resp[0..nr) to s->rows (capacity reserved by the caller). */
static void add_row(PrefSet *s, const int32_t *prompt, int np, const int32_t *resp, int nr) {
    TokenizedSet *ts = &s->rows;
    int32_t *dst = ts->ids + ts->offsets[ts->n];
    if (np) memcpy(dst, prompt, (size_t)np * sizeof *dst); /* an empty list may be NULL */
    if (nr) memcpy(dst + np, resp, (size_t)nr * sizeof *dst);
    s->prompt_len[ts->n] = np;
    ts->labels[ts->n] = -1;
    ts->offsets[ts->n + 1] = ts->offsets[ts->n] + np + nr;
    if (np + nr > ts->max_len) ts->max_len = np + nr;
    ts->n++;
}

/* One record: its prompt and responses encoded, truncated as TRL does, added as rows. */
static int add_record(PrefSet *s, const PrefSpec *spec, const TextTokenizer *tok, const Record *r,
                      IdList ids[MAX_FIELDS], LfError *err) {
    int nf = n_fields(spec->kind), longer = 0;
    for (int k = 0; k < nf; k++) ids[k].n = 0;
    if (prompt_ids(spec, tok, r, &ids[0], err)) return -1;
    for (int k = 1; k < nf; k++) {
        if (response_ids(spec, tok, r->f[k], r->len[k], &ids[k], err)) return -1;
        if ((int)ids[k].n > longer) longer = (int)ids[k].n;
    }
    const int32_t *prompt = ids[0].ids;
    int np = (int)ids[0].n, cut = 0, keep = spec->max_length - spec->max_prompt_length;
    int over = nf == 1 || np + longer > spec->max_length; /* a prompt alone keeps its end */
    if (over && np > spec->max_prompt_length) {
        prompt += np - spec->max_prompt_length; /* keep_end */
        np = spec->max_prompt_length;
        cut = 1;
    }
    for (int k = 1; k < nf; k++) {
        int nr = (int)ids[k].n;
        if (np + longer > spec->max_length && nr > keep) nr = keep, cut = 1;
        add_row(s, prompt, np, ids[k].ids, nr);
    }
    if (nf == 1 && !np) return lf_fail(err, "an empty prompt: nothing to continue");
    if (nf == 1) add_row(s, prompt, np, NULL, 0);
    s->n_truncated += cut;
    return 0;
}

/* Reserves room for rows rows of up to max_length ids. */
static int set_alloc(PrefSet *s, int rows, int max_length, LfError *err) {
    TokenizedSet *ts = &s->rows;
    ts->ids = malloc((size_t)rows * (size_t)max_length * sizeof *ts->ids);
    ts->offsets = calloc((size_t)rows + 1, sizeof *ts->offsets);
    ts->labels = malloc((size_t)rows * sizeof *ts->labels);
    s->prompt_len = malloc((size_t)rows * sizeof *s->prompt_len);
    if (ts->ids && ts->offsets && ts->labels && s->prompt_len) return 0;
    return lf_fail(err, "out of memory for %d rows of %d tokens", rows, max_length);
}

/* The n records' JSON texts moved into s->records. */
static int keep_records(PrefSet *s, Record *recs, int n, LfError *err) {
    s->records = malloc((size_t)n * sizeof *s->records);
    if (!s->records) return lf_fail(err, "out of memory");
    for (int i = 0; i < n; i++) s->records[i] = recs[i].line, recs[i].line = NULL;
    return 0;
}

int pref_set_load(PrefSet *s, const PrefSpec *spec, const TextTokenizer *tok, LfError *err) {
    memset(s, 0, sizeof *s);
    s->group = spec->kind == PREF_PAIRS ? 2 : 1;
    if (spec->max_prompt_length >= spec->max_length)
        return lf_fail(err, "max_prompt_length %d must be below max_length %d",
                       spec->max_prompt_length, spec->max_length);
    Record *recs = NULL; /* set by read_records; gcc -O3 cannot see that */
    int n = 0;
    if (read_records(spec, &recs, &n, err)) return -1;
    int hold = spec->holdout < n ? spec->holdout : n;
    int lo = spec->heldout ? n - hold : 0, hi = spec->heldout ? n : n - hold;
    if (spec->limit && hi - lo > spec->limit) hi = lo + spec->limit;
    int rc = hi > lo ? 0
                     : lf_fail(err, "%s: no records left (%d in the file, %d held out)", spec->path,
                               n, hold);
    IdList ids[MAX_FIELDS] = {{0}};
    if (!rc) rc = set_alloc(s, (hi - lo) * s->group, spec->max_length, err);
    for (int i = lo; i < hi && !rc; i++) {
        rc = add_record(s, spec, tok, &recs[i], ids, err);
        if (rc) lf_wrap(err, "%s: record %d", spec->path, i + 1);
    }
    if (!rc && spec->keep_records) rc = keep_records(s, recs + lo, hi - lo, err);
    for (int k = 0; k < MAX_FIELDS; k++) idlist_free(&ids[k]);
    records_free(recs, n);
    s->n_items = hi - lo;
    if (rc) pref_set_free(s);
    return rc;
}

void pref_set_free(PrefSet *s) {
    tokenized_set_free(&s->rows);
    free(s->prompt_len);
    for (int i = 0; s->records && i < s->n_items; i++) free(s->records[i]);
    free(s->records);
    memset(s, 0, sizeof *s);
}

/* ---- batches ---- */

int pref_loader_init(PrefLoader *l, const PrefSet *s, int batch_size, int32_t pad_id,
                     int mask_prompt, LfError *err) {
    memset(l, 0, sizeof *l);
    size_t rows = (size_t)batch_size * s->group, cells = rows * (size_t)s->rows.max_len;
    l->s = s;
    l->batch_size = batch_size;
    l->pad_id = pad_id;
    l->mask_prompt = mask_prompt;
    l->order = malloc((size_t)(s->n_items ? s->n_items : 1) * sizeof *l->order);
    l->ids = malloc(cells * sizeof *l->ids);
    l->mask = malloc(cells * sizeof *l->mask);
    l->labels = malloc(cells * sizeof *l->labels);
    l->index = malloc(rows * sizeof *l->index);
    if (!l->order || !l->ids || !l->mask || !l->labels || !l->index) {
        pref_loader_free(l);
        return lf_fail(err, "out of memory for %zu rows of %d tokens", rows, s->rows.max_len);
    }
    pref_loader_start_epoch(l, 0, 0, 0);
    return 0;
}

void pref_loader_start_epoch(PrefLoader *l, uint64_t seed, int epoch, int shuffle) {
    Rng r = {rng_hash(seed, (uint64_t)epoch), 0};
    for (int i = 0; i < l->s->n_items; i++) l->order[i] = i;
    if (shuffle) rng_shuffle(l->order, l->s->n_items, &r);
    l->next = 0;
}

static int row_len(const TokenizedSet *ts, int row) {
    return (int)(ts->offsets[row + 1] - ts->offsets[row]);
}

int pref_loader_next(PrefLoader *l, Batch *out) {
    const PrefSet *s = l->s;
    const TokenizedSet *ts = &s->rows;
    int items = s->n_items - l->next, g = s->group, T = 0;
    if (items <= 0) return 0;
    if (items > l->batch_size) items = l->batch_size;
    int B = items * g;
    for (int i = 0; i < B; i++) {
        l->index[i] = l->order[l->next + i / g] * g + i % g;
        if (row_len(ts, l->index[i]) > T) T = row_len(ts, l->index[i]);
    }
    T = padded_length(T, l->pad_multiple, ts->max_len);
    l->next += items;
    *out = (Batch){
        .B = B, .T = T, .ids = l->ids, .mask = l->mask, .labels = l->labels, .index = l->index};
    for (int i = 0; i < B; i++) {
        int row = l->index[i], len = row_len(ts, row);
        int from = l->mask_prompt ? s->prompt_len[row] : 0;
        const int32_t *src = ts->ids + ts->offsets[row];
        for (int t = 0; t < T; t++) {
            size_t c = (size_t)i * T + t;
            l->ids[c] = t < len ? src[t] : l->pad_id;
            l->mask[c] = t < len;
            l->labels[c] = t < len && t >= from ? src[t] : LM_IGNORE;
        }
        out->n_tokens += len;
    }
    return 1;
}

int pref_loader_num_batches(const PrefLoader *l) {
    return (l->s->n_items + l->batch_size - 1) / l->batch_size;
}

void pref_loader_free(PrefLoader *l) {
    free(l->order);
    free(l->ids);
    free(l->mask);
    free(l->labels);
    free(l->index);
    memset(l, 0, sizeof *l);
}
