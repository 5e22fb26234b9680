/* sft_data.c: SFT records -> rendered text -> token rows with answer-only labels (see
 * sft_data.h). Reads the whole file into memory (instruction sets are small next to corpora);
 * renders with chat.c, tokenizes with text.h and hands the rows to lm_data's loader. */
#include "loraft/sft_data.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/normalize.h"

/* One record: the conversation, its last message the answer; for instruction records also
 * the three fields (prompt templates need them apart). */
typedef struct Record {
    ChatMessage *msgs;
    int n_msgs;
    char *fields[3]; /* instruction, input, output; NULL for messages records */
    long line;
} Record;

typedef struct Records {
    Record *v;
    int n, cap;
} Records;

static void record_free(Record *e) {
    for (int i = 0; i < e->n_msgs; i++) free((char *)e->msgs[i].content);
    free(e->msgs);
    for (int i = 0; i < 3; i++) free(e->fields[i]);
}

static void records_free(Records *x) {
    for (int i = 0; i < x->n; i++) record_free(&x->v[i]);
    free(x->v);
}

static const char *column(const char *name, const char *def) {
    return name && *name ? name : def;
}

/* Known roles map to static strings, so a message owns only its content. */
static const char *role_name(const char *r) {
    static const char *roles[] = {"system", "user", "assistant"};
    for (int i = 0; i < 3; i++)
        if (r && !strcmp(r, roles[i])) return roles[i];
    return NULL;
}

static int add_message(Record *e, const char *role, const char *content, size_t len) {
    ChatMessage *m = realloc(e->msgs, (size_t)(e->n_msgs + 1) * sizeof *m);
    if (!m) return -1;
    e->msgs = m;
    char *c = strndup(content, len);
    if (!c) return -1;
    m[e->n_msgs++] = (ChatMessage){role, c};
    return 0;
}

/* A record's string field; "" when absent and optional. */
static int string_field(const cJSON *o, const char *name, int optional, const char **out,
                        const char *path, long line, LfError *err) {
    const cJSON *v = cJSON_GetObjectItem(o, name);
    if (!v && optional) return *out = "", 0;
    if (!cJSON_IsString(v))
        return lf_fail(err, "%s:%ld: field \"%s\" %s", path, line, name,
                       v ? "is not a string" : "is missing");
    *out = v->valuestring;
    return 0;
}

static int read_messages(Record *e, const cJSON *arr, const char *path, long line, LfError *err) {
    const cJSON *m;
    if (!cJSON_IsArray(arr) || cJSON_GetArraySize(arr) < 2)
        return lf_fail(err, "%s:%ld: messages must be an array of a prompt and an answer", path,
                       line);
    cJSON_ArrayForEach(m, arr) {
        const char *role = NULL, *content = NULL;
        if (string_field(m, "role", 0, &role, path, line, err) ||
            string_field(m, "content", 0, &content, path, line, err))
            return -1;
        if (!role_name(role))
            return lf_fail(err, "%s:%ld: role \"%s\": system, user or assistant", path, line, role);
        if (add_message(e, role_name(role), content, strlen(content)))
            return lf_fail(err, "out of memory");
    }
    if (strcmp(e->msgs[e->n_msgs - 1].role, "assistant"))
        return lf_fail(err, "%s:%ld: the last message must be the assistant's answer", path, line);
    return 0;
}

static int read_fields(Record *e, const cJSON *o, const SftColumns *c, const char *path, long line,
                       LfError *err) {
    const char *f[3] = {NULL, NULL, NULL};
    if (string_field(o, column(c->instruction, "instruction"), 0, &f[0], path, line, err) ||
        string_field(o, column(c->input, "input"), 1, &f[1], path, line, err) ||
        string_field(o, column(c->output, "output"), 0, &f[2], path, line, err))
        return -1;
    for (int i = 0; i < 3; i++)
        if (!(e->fields[i] = strdup(f[i]))) return lf_fail(err, "out of memory");
    /* the user turn: instruction, plus "\n\n" + input when there is one */
    size_t ni = strlen(f[0]), nx = strlen(f[1]);
    char *user = malloc(ni + 2 + nx + 1);
    if (!user) return lf_fail(err, "out of memory");
    memcpy(user, f[0], ni);
    if (nx) memcpy(user + ni, "\n\n", 2), memcpy(user + ni + 2, f[1], nx);
    int rc = add_message(e, "user", user, nx ? ni + 2 + nx : ni) ||
             add_message(e, "assistant", f[2], strlen(f[2]));
    free(user);
    return rc ? lf_fail(err, "out of memory") : 0;
}

typedef struct Reading {
    Records *x;
    const SftSource *src;
} Reading;

static int read_record(void *ctx, const char *text, size_t len, long line, LfError *err) {
    const Reading *r = ctx;
    Records *x = r->x;
    const SftColumns *c = &r->src->columns;
    const char *path = r->src->path;
    cJSON *o = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(o))
        return cJSON_Delete(o), lf_fail(err, "%s:%ld: not a JSON object", path, line);
    if (x->n == x->cap) {
        int cap = x->cap < INT_MAX / 2 ? (x->cap ? 2 * x->cap : 256) : 0;
        Record *v = cap > 0 ? realloc(x->v, (size_t)cap * sizeof *v) : NULL;
        if (!v) return cJSON_Delete(o), lf_fail(err, "out of memory");
        x->v = v, x->cap = cap;
    }
    Record *e = &x->v[x->n++];
    *e = (Record){.line = line};
    const cJSON *msgs = cJSON_GetObjectItem(o, column(c->messages, "messages"));
    int rc = msgs ? read_messages(e, msgs, path, line, err) : read_fields(e, o, c, path, line, err);
    cJSON_Delete(o);
    return rc;
}

static int read_records(Records *x, const SftSource *src, LfError *err) {
    Reading r = {x, src};
    return jsonl_each_line(src->path, read_record, &r, err);
}

/* ---- rendering ---- */

typedef struct Text {
    char *p;
    size_t len, cap;
} Text;

static int text_add(Text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->p, cap);
        if (!p) return -1;
        t->p = p, t->cap = cap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
    return 0;
}

/* tmpl[0..n) with {instruction} and {input} replaced. */
static int substitute(Text *t, const char *tmpl, size_t n, char *const *fields) {
    static const char *names[] = {"{instruction}", "{input}"};
    for (size_t i = 0; i < n;) {
        int hit = -1;
        for (int k = 0; k < 2 && hit < 0; k++)
            if (i + strlen(names[k]) <= n && !strncmp(tmpl + i, names[k], strlen(names[k])))
                hit = k;
        int rc = hit < 0 ? text_add(t, tmpl + i, 1) : text_add(t, fields[hit], strlen(fields[hit]));
        if (rc) return -1;
        i += hit < 0 ? 1 : strlen(names[hit]);
    }
    return 0;
}

/* The whole example as text, and the length of its prompt (a prefix of it). */
static int render(const SftFormat *f, const Record *e, Text *full, size_t *prompt_len,
                  LfError *err) {
    if (!f->prompt_template) {
        char *prompt = NULL, *all = NULL;
        size_t np = 0, na = 0;
        int rc = chat_render(&f->chat, e->msgs, e->n_msgs - 1, 1, &prompt, &np, err) ||
                 chat_render(&f->chat, e->msgs, e->n_msgs, 0, &all, &na, err);
        if (!rc && (np > na || memcmp(prompt, all, np)))
            rc = lf_fail(err, "the rendered prompt is not a prefix of the conversation");
        if (!rc && text_add(full, all, na)) rc = lf_fail(err, "out of memory");
        *prompt_len = np;
        free(prompt);
        free(all);
        return rc;
    }
    if (!e->fields[0])
        return lf_fail(err,
                       "data.prompt_template needs instruction / output records, not messages");
    const char *tmpl = f->prompt_template, *out = strstr(tmpl, "{output}");
    const char *tail = out + strlen("{output}");
    if (substitute(full, tmpl, (size_t)(out - tmpl), e->fields))
        return lf_fail(err, "out of memory");
    *prompt_len = full->len;
    if (text_add(full, e->fields[2], strlen(e->fields[2])) ||
        substitute(full, tail, strlen(tail), e->fields))
        return lf_fail(err, "out of memory");
    return 0;
}

/* ---- tokens ---- */

/* How many of ids[0..n) end within the first `bytes` bytes of text, which they encode: their
 * bytes walked along it (the rule of tokenizers' offsets). A space that starts a token where text
 * has none was put there by the tokenizer (SentencePiece's "▁" before each piece, ByteLevel's
 * add_prefix_space) and covers no text. */
static size_t tokens_within(const Bpe *bpe, const int32_t *ids, size_t n, const char *text,
                            size_t len, size_t bytes) {
    size_t end = 0, k = 0, m = 0;
    for (; k < n; k++) {
        const char *b = bpe_token_bytes(bpe, ids[k], &m);
        if (!b) break;
        size_t added = m && b[0] == ' ' && (end >= len || text[end] != ' ');
        if (end + m - added > bytes) break;
        end += m - added;
    }
    return k;
}

/* The number of ids[0..n) that end within the prompt, text's first prompt_len bytes
 * (tokens_within), walked along the text they encode: under an NFC normalizer NFC(text), the
 * prompt NFC(text[0..prompt_len)) of it (which tokenizers' offsets map back to the prompt). */
static int prompt_tokens(const Bpe *bpe, const int32_t *ids, size_t n, const char *text, size_t len,
                         size_t prompt_len, size_t *out, LfError *err) {
    if (!bpe_nfc(bpe)) return *out = tokens_within(bpe, ids, n, text, len, prompt_len), 0;
    Nfc z = {0};
    const char *p;
    size_t prompt_nfc, len_nfc;
    int rc = nfc_normalize(&z, text, prompt_len, &p, &prompt_nfc, err) ||
             nfc_normalize(&z, text, len, &p, &len_nfc, err);
    if (!rc) *out = tokens_within(bpe, ids, n, p, len_nfc, prompt_nfc);
    nfc_free(&z);
    return rc ? -1 : 0;
}

/* The example's ids and labels, before truncation. */
static int encode_example(const SftFormat *f, const TextTokenizer *tok, const Record *e,
                          IdList *ids, IdList *labels, LfError *err) {
    Text full = {0};
    size_t prompt_len = 0;
    const LmSpecials *sp = &f->specials;
    int templ = f->prompt_template != NULL, rc = render(f, e, &full, &prompt_len, err);
    ids->n = labels->n = 0;
    for (int k = 0; templ && k < sp->n_prefix && !rc; k++)
        rc = idlist_push(ids, sp->prefix[k], err);
    size_t np = ids->n;
    if (!rc) rc = bpe_encode(tok->bpe, full.p, full.len, 0, ids, err);
    for (int k = 0; templ && k < sp->n_suffix && !rc; k++)
        rc = idlist_push(ids, sp->suffix[k], err);
    size_t P = 0;
    if (!rc)
        rc = prompt_tokens(tok->bpe, ids->ids + np, ids->n - np, full.p, full.len, prompt_len, &P,
                           err);
    P += np;
    free(full.p);
    if (rc) return -1;
    int ended = 0;
    for (size_t i = 0; i < ids->n && !rc; i++) {
        int answer = i >= P && !ended;
        rc = idlist_push(labels, answer ? ids->ids[i] : LM_IGNORE, err);
        ended |= answer && gen_is_stop(&f->stops, ids->ids[i]);
    }
    if (!rc && !ended && f->eos >= 0)
        rc = idlist_push(ids, f->eos, err) || idlist_push(labels, f->eos, err);
    return rc;
}

/* ---- rows ---- */

typedef struct Rows {
    LmSet *s;
    int64_t ids_cap, labels_cap, rows_cap;
    int max_length, pack;
} Rows;

static int grow(void **p, int64_t *cap, int64_t need, size_t elem) {
    if (need <= *cap) return 0;
    int64_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * elem);
    if (!q) return -1;
    *p = q, *cap = c;
    return 0;
}

/* Appends ids / labels [0..n) (n <= max_length) to the last row when packing and it fits,
 * else as a new row. */
static int rows_add(Rows *r, const int32_t *ids, const int32_t *labels, int64_t n, LfError *err) {
    LmSet *s = r->s;
    TokenizedSet *ts = &s->rows;
    int64_t used = s->n_tokens;
    if (grow((void **)&ts->ids, &r->ids_cap, used + n, sizeof *ts->ids) ||
        grow((void **)&s->token_labels, &r->labels_cap, used + n, sizeof *s->token_labels) ||
        grow((void **)&ts->offsets, &r->rows_cap, (int64_t)ts->n + 2, sizeof *ts->offsets) ||
        ts->n == INT_MAX - 1)
        return lf_fail(err, "out of memory for %lld tokens", (long long)(used + n));
    memcpy(ts->ids + used, ids, (size_t)n * sizeof *ids);
    memcpy(s->token_labels + used, labels, (size_t)n * sizeof *labels);
    s->n_tokens += n;
    int join = r->pack && ts->n > 0 && used + n - ts->offsets[ts->n - 1] <= r->max_length;
    if (!join) ts->n++;
    ts->offsets[0] = 0;
    ts->offsets[ts->n] = s->n_tokens;
    return 0;
}

/* One example, right-truncated; skipped when no answer token is left to predict. */
static int add_example(Rows *r, const IdList *ids, const IdList *labels) {
    int64_t n = (int64_t)ids->n < r->max_length ? (int64_t)ids->n : r->max_length;
    int answer = 0;
    for (int64_t i = 1; i < n; i++) answer |= labels->ids[i] >= 0;
    r->s->n_dropped += (int64_t)ids->n - (answer ? n : 0);
    if (!answer) return r->s->n_skipped++, 0;
    return 1;
}

static int finish(LmSet *s, LfError *err) {
    TokenizedSet *ts = &s->rows;
    ts->labels = malloc(((size_t)ts->n + 1) * sizeof *ts->labels);
    if (!ts->labels) return lf_fail(err, "out of memory for %d rows", ts->n);
    for (int i = 0; i < ts->n; i++) {
        int64_t lo = ts->offsets[i], len = ts->offsets[i + 1] - lo;
        ts->labels[i] = -1;
        ts->max_len = len > ts->max_len ? (int)len : ts->max_len;
        for (int64_t t = 1; t < len; t++) s->n_predicted += s->token_labels[lo + t] >= 0;
    }
    return 0;
}

/* ---- the set ---- */

int sft_format_init(SftFormat *f, const ChatTemplate *chat, const char *prompt_template,
                    const TextTokenizer *tok, int32_t eos, LfError *err) {
    memset(f, 0, sizeof *f);
    if (tok->kind != TEXT_BPE)
        return lf_fail(err, "SFT needs a byte-level BPE tokenizer (a decoder's)");
    f->prompt_template = prompt_template && *prompt_template ? prompt_template : NULL;
    if (f->prompt_template) {
        const char *out = strstr(f->prompt_template, "{output}");
        if (!out)
            return lf_fail(err, "data.prompt_template \"%.60s\" has no {output}",
                           f->prompt_template);
        if (strstr(out, "{instruction}") || strstr(out, "{input}"))
            return lf_fail(err, "data.prompt_template: {instruction} and {input} must come "
                                "before {output}");
        if (lm_specials(&f->specials, tok, err)) return -1;
    } else { /* templates that render BOS / EOS text render this tokenizer's */
        f->chat = *chat;
        chat_template_set_vocab_specials(&f->chat, tok->bpe);
    }
    f->stops = gen_stops(f->prompt_template ? NULL : &f->chat, tok->bpe);
    f->eos = eos >= 0 ? eos : bpe_eos(tok->bpe);
    if (f->eos >= 0 && !gen_is_stop(&f->stops, f->eos) && f->stops.n_ids <= CHAT_MAX_STOPS)
        f->stops.ids[f->stops.n_ids++] = f->eos;
    return 0;
}

/* The records of src that src->part and src->limit keep: [*lo, *hi). */
static int part_range(const SftSource *src, int n, int *lo, int *hi, LfError *err) {
    *lo = 0, *hi = n;
    if (src->part != LM_PART_ALL && src->holdout > 0) {
        if (src->holdout >= n)
            return lf_fail(err, "%s: holding out %d examples leaves none of its %d to train on",
                           src->path, src->holdout, n);
        if (src->part == LM_PART_TRAIN)
            *hi = n - src->holdout;
        else
            *lo = n - src->holdout;
    }
    if (src->limit > 0 && *hi - *lo > src->limit) *hi = *lo + src->limit;
    return 0;
}

int sft_load(LmSet *s, const SftSource *src, const TextTokenizer *tok, const SftFormat *f,
             int max_length, int pack, LfError *err) {
    memset(s, 0, sizeof *s);
    if (max_length < 2) return lf_fail(err, "max_length %d: it must be at least 2", max_length);
    Records x = {0};
    IdList ids = {0}, labels = {0};
    Rows r = {.s = s, .max_length = max_length, .pack = pack};
    int lo = 0, hi = 0, rc = read_records(&x, src, err) || part_range(src, x.n, &lo, &hi, err);
    for (int i = lo; i < hi && !rc; i++) {
        rc = encode_example(f, tok, &x.v[i], &ids, &labels, err);
        if (rc) lf_wrap(err, "%s:%ld", src->path, x.v[i].line);
        if (!rc && add_example(&r, &ids, &labels))
            rc = rows_add(&r, ids.ids, labels.ids,
                          (int64_t)ids.n < max_length ? (int64_t)ids.n : max_length, err);
        s->n_texts++;
    }
    if (!rc && s->rows.n == 0)
        rc = lf_fail(err, "%s: no example with an answer within max_length %d", src->path,
                     max_length);
    if (!rc) rc = finish(s, err);
    idlist_free(&ids);
    idlist_free(&labels);
    records_free(&x);
    if (rc) lm_set_free(s);
    return rc ? -1 : 0;
}

const int32_t *sft_row_prompt(const LmSet *s, int i, int *prompt_len) {
    const int64_t lo = s->rows.offsets[i], len = s->rows.offsets[i + 1] - lo;
    int P = 0;
    while (P < len && s->token_labels[lo + P] < 0) P++;
    *prompt_len = P;
    return s->rows.ids + lo;
}
