/* lm_data.c: causal-LM corpora: texts from JSONL or .txt files, chapter hold-out, packed
 * training blocks, evaluation rows and their batches (see lm_data.h).
 *
 * Not a tokenizer (text.h encodes) and not a batch shuffler of its own: the rows are a
 * TokenizedSet and the Batcher of data.h orders and pads them; this adds the [B,T] labels. */
#include "loraft/lm_data.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loraft/fileio.h"
#include "loraft/utf8.h"

/* ---- the growing text list: one buffer, offsets fixed at the end ---- */

typedef struct TextList {
    LmTexts *t;
    int cap;
    size_t used, bufcap;
} TextList;

static int grow_texts(TextList *l, size_t len, LfError *err) {
    LmTexts *t = l->t;
    if (t->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        size_t *off = realloc(t->offsets, (size_t)cap * sizeof *off);
        if (off) t->offsets = off;
        size_t *lens = realloc(t->lens, (size_t)cap * sizeof *lens);
        if (lens) t->lens = lens;
        if (!off || !lens || t->n == INT_MAX) return lf_fail(err, "out of memory for texts");
        l->cap = cap;
    }
    if (l->used + len + 1 > l->bufcap) {
        size_t cap = l->bufcap ? l->bufcap : 1 << 20;
        while (cap < l->used + len + 1) cap *= 2;
        char *buf = realloc(t->buf, cap);
        if (!buf) return lf_fail(err, "out of memory for %zu bytes of text", cap);
        t->buf = buf;
        l->bufcap = cap;
    }
    return 0;
}

/* Adds a[0..na) followed by b[0..nb) (b may be NULL when nb is 0) as one text. */
static int add_text(TextList *l, const char *a, size_t na, const char *b, size_t nb, LfError *err) {
    if (grow_texts(l, na + nb, err)) return -1;
    LmTexts *t = l->t;
    char *dst = t->buf + l->used;
    memcpy(dst, a, na);
    if (nb) memcpy(dst + na, b, nb);
    dst[na + nb] = '\0';
    t->offsets[t->n] = l->used;
    t->lens[t->n++] = na + nb;
    l->used += na + nb + 1;
    return 0;
}

/* ---- lines ---- */

static size_t line_end(const char *s, size_t n, size_t i) {
    const char *nl = memchr(s + i, '\n', n - i);
    return nl ? (size_t)(nl - s) : n;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr(" \t\r\n\f\v", s[i])) return 0;
    return 1;
}

/* Adds the texts of s[0..n) cut into lines or paragraphs. */
static int add_pieces(TextList *l, const char *s, size_t n, LmUnit unit, LfError *err) {
    for (size_t i = 0; i < n;) {
        size_t end = line_end(s, n, i);
        if (is_blank(s + i, end - i)) {
            i = end + 1;
            continue;
        }
        while (unit == LM_UNIT_PARAGRAPH && end < n) {
            size_t next = line_end(s, n, end + 1);
            if (is_blank(s + end + 1, next - end - 1)) break;
            end = next;
        }
        size_t len = end - i;
        while (len && s[i + len - 1] == '\r') len--;
        if (add_text(l, s + i, len, NULL, 0, err)) return -1;
        i = end + 1;
    }
    return 0;
}

/* Adds s[0..n) without its bytes [cut, cut_end), cut by unit. */
static int add_units(TextList *l, const char *s, size_t n, size_t cut, size_t cut_end, LmUnit unit,
                     LfError *err) {
    if (unit == LM_UNIT_FILE)
        return is_blank(s, cut) && is_blank(s + cut_end, n - cut_end)
                   ? 0
                   : add_text(l, s, cut, s + cut_end, n - cut_end, err);
    if (unit != LM_UNIT_LINE && unit != LM_UNIT_PARAGRAPH)
        return lf_fail(err, "unknown text unit %d", (int)unit);
    return add_pieces(l, s, cut, unit, err) || add_pieces(l, s + cut_end, n - cut_end, unit, err)
               ? -1
               : 0;
}

/* ---- chapters ---- */

static size_t skip_blanks(const char *s, size_t i, size_t end) {
    while (i < end && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
    return i;
}

static int is_roman(char c) {
    return c && strchr("IVXLCDM", c);
}

static int is_digit(char c) {
    return c >= '0' && c <= '9';
}

/* Is s[i..end) (one line) a chapter heading? */
static int is_heading(const char *s, size_t i, size_t end) {
    if (end - i < 9 || (memcmp(s + i, "CHAPTER", 7) && memcmp(s + i, "Chapter", 7))) return 0;
    size_t p = skip_blanks(s, i + 7, end), q = p;
    if (p == i + 7) return 0;
    int (*numeral)(char) = p < end && is_digit(s[p]) ? is_digit : is_roman;
    while (q < end && numeral(s[q])) q++;
    if (q == p) return 0;
    if (q < end && s[q] == '.') q++;
    return skip_blanks(s, q, end) == end;
}

int lm_chapters(const char *text, size_t len, size_t **starts, int *n, LfError *err) {
    int count = 0, cap = 64;
    size_t *v = malloc((size_t)cap * sizeof *v);
    for (size_t i = 0; v && i < len; i = line_end(text, len, i) + 1) {
        if (!is_heading(text, i, line_end(text, len, i))) continue;
        if (count + 1 == cap) {
            size_t *g = realloc(v, (size_t)(cap *= 2) * sizeof *g);
            if (!g) free(v);
            v = g;
        }
        if (v) v[count++] = i;
    }
    if (!v) return lf_fail(err, "out of memory for chapter offsets");
    v[count] = len;
    *starts = v;
    *n = count;
    return 0;
}

/* The bytes [*cut, *cut_end) of chapter h->chapter in the text of path. */
static int chapter_span(const LmHoldout *h, const char *path, const char *s, size_t n, size_t *cut,
                        size_t *cut_end, LfError *err) {
    size_t *starts;
    int count;
    if (lm_chapters(s, n, &starts, &count, err)) return -1;
    int k = h->chapter;
    if (k >= 1 && k <= count) *cut = starts[k - 1], *cut_end = starts[k];
    free(starts);
    if (k < 1 || k > count)
        return lf_fail(err,
                       "%s: no chapter %d: the file has %d chapter headings (lines "
                       "\"CHAPTER\" or \"Chapter\" and a numeral)",
                       path, k, count);
    return 0;
}

/* ---- reading ---- */

typedef struct Reader {
    const LmSource *src;
    TextList list;
    struct stat held; /* the holdout file's identity */
    int found;        /* the holdout file was read */
} Reader;

static int check_utf8(const char *s, size_t n, const char *path, LfError *err) {
    long line = 1;
    size_t bol = 0;
    uint32_t c;
    for (size_t i = 0, k; i < n; i += k) {
        k = (unsigned char)s[i] < 0x80
                ? 1
                : (size_t)utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (!k)
            return lf_fail(err, "%s:%ld:%zu: invalid UTF-8 (byte 0x%02x)", path, line, i - bol + 1,
                           (unsigned char)s[i]);
        if (s[i] == '\n') line++, bol = i + 1;
    }
    return 0;
}

static int is_holdout(const Reader *r, const char *path) {
    struct stat st;
    return !stat(path, &st) && st.st_dev == r->held.st_dev && st.st_ino == r->held.st_ino;
}

/* One .txt file: its texts, or the part of them src->part keeps. */
static int read_txt(Reader *r, const char *path, LfError *err) {
    const LmSource *src = r->src;
    int held = src->part != LM_PART_ALL && is_holdout(r, path);
    if (src->part == LM_PART_HELDOUT && !held) return 0;
    char *buf;
    size_t n;
    if (file_read_all(path, &buf, &n, err)) return -1;
    const char *s = buf + (n >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3) ? 3 : 0);
    n -= (size_t)(s - buf);
    size_t cut = 0, cut_end = 0;
    int rc = check_utf8(s, n, path, err);
    if (!rc && held) rc = chapter_span(&src->holdout, path, s, n, &cut, &cut_end, err);
    if (!rc && src->part == LM_PART_HELDOUT)
        rc = add_units(&r->list, s + cut, cut_end - cut, 0, 0, src->unit, err);
    else if (!rc)
        rc = add_units(&r->list, s, n, cut, cut_end, src->unit, err);
    r->found |= held;
    free(buf);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int is_txt_name(const struct dirent *e) {
    size_t n = strlen(e->d_name);
    return n > 4 && !strcmp(e->d_name + n - 4, ".txt");
}

static int read_dir(Reader *r, const char *dir, LfError *err) {
    struct dirent **names;
    int n = scandir(dir, &names, is_txt_name, by_name), rc = 0;
    if (n < 0) return lf_fail(err, "%s: cannot list: %s", dir, strerror(errno));
    char path[8192];
    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (!rc) rc = read_txt(r, path, err);
        free(names[i]);
    }
    free(names);
    return rc;
}

typedef struct JsonlTexts {
    Reader *r;
    DatasetSpec spec;
} JsonlTexts;

static int add_jsonl_text(void *ctx, const char *line, size_t len, long ln, LfError *err) {
    JsonlTexts *x = ctx;
    char *text;
    size_t text_len;
    int label;
    int rc = jsonl_record(&x->spec, line, len, ln, &text, &text_len, &label, err) ||
             add_text(&x->r->list, text, text_len, NULL, 0, err);
    free(text);
    return rc ? -1 : 0;
}

static int read_jsonl(Reader *r, const char *path, LfError *err) {
    JsonlTexts x = {r, {.path = path, .text_column = r->src->text_column}};
    return jsonl_each_line(path, add_jsonl_text, &x, err);
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

/* Reads src->path by its format: auto is jsonl for *.jsonl, txt for *.txt and directories. */
static int read_source(Reader *r, LfError *err) {
    const char *path = r->src->path, *fmt = r->src->format;
    struct stat st;
    if (stat(path, &st)) return lf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    if (!fmt || !strcmp(fmt, "auto"))
        fmt = ends_with(path, ".jsonl") && !S_ISDIR(st.st_mode) ? "jsonl"
              : ends_with(path, ".txt") || S_ISDIR(st.st_mode)  ? "txt"
                                                                : NULL;
    if (!fmt)
        return lf_fail(err,
                       "%s: cannot tell the corpus format from the name (.jsonl, .txt or a "
                       "directory of .txt files); set it to jsonl or txt",
                       path);
    if (!strcmp(fmt, "jsonl")) return read_jsonl(r, path, err);
    if (strcmp(fmt, "txt"))
        return lf_fail(err, "%s: unknown corpus format '%s' (auto, jsonl or txt)", path, fmt);
    return S_ISDIR(st.st_mode) ? read_dir(r, path, err) : read_txt(r, path, err);
}

static int open_holdout(Reader *r, LfError *err) {
    const LmHoldout *h = &r->src->holdout;
    if (!h->file || r->src->part == LM_PART_ALL) return 0;
    if (stat(h->file, &r->held))
        return lf_fail(err, "held-out file %s: cannot open: %s", h->file, strerror(errno));
    return 0;
}

int lm_texts_load(LmTexts *t, const LmSource *src, LfError *err) {
    memset(t, 0, sizeof *t);
    if (!src->path || !src->path[0]) return lf_fail(err, "corpus: no path given");
    if (src->part != LM_PART_ALL && !src->holdout.file)
        return lf_fail(err, "%s: a train or held-out part needs a holdout file", src->path);
    Reader r = {.src = src, .list = {.t = t}};
    int rc = open_holdout(&r, err) || read_source(&r, err) ? -1 : 0;
    if (!rc && src->part != LM_PART_ALL && !r.found)
        rc = lf_fail(err, "%s: the held-out file %s is not a .txt file of it", src->path,
                     src->holdout.file);
    if (!rc && t->n == 0) rc = lf_fail(err, "%s: no text in it", src->path);
    if (rc) {
        lm_texts_free(t);
        return -1;
    }
    snprintf(t->source, sizeof t->source, "%s", src->path);
    return 0;
}

void lm_texts_free(LmTexts *t) {
    free(t->buf);
    free(t->offsets);
    free(t->lens);
    memset(t, 0, sizeof *t);
}

/* ---- special tokens ---- */

static int wordpiece_specials(LmSpecials *sp, const Tokenizer *tok, LfError *err) {
    int32_t cls = tokenizer_special(tok, TOK_CLS), sep = tokenizer_special(tok, TOK_SEP);
    if (cls < 0 || sep < 0) return lf_fail(err, "the WordPiece vocabulary lacks [CLS] or [SEP]");
    *sp = (LmSpecials){.prefix = {cls}, .suffix = {sep}, .n_prefix = 1, .n_suffix = 1, .eos = sep};
    return 0;
}

/* Where the plain encoding of "a" sits inside the one with special tokens tells which of
 * them go before and which after. */
static int bpe_specials(LmSpecials *sp, const Bpe *bpe, LfError *err) {
    IdList plain = {0}, full = {0};
    int rc = bpe_encode(bpe, "a", 1, 0, &plain, err) || bpe_encode(bpe, "a", 1, 1, &full, err);
    size_t extra = rc ? 0 : full.n - plain.n, at = 0;
    while (at < extra && memcmp(full.ids + at, plain.ids, plain.n * sizeof *plain.ids)) at++;
    memset(sp, 0, sizeof *sp);
    if (!rc && (at > 4 || extra - at > 4))
        rc = lf_fail(err, "the tokenizer adds %zu tokens before a text and %zu after (at most 4)",
                     at, extra - at);
    for (size_t i = 0; !rc && i < extra; i++)
        if (i < at)
            sp->prefix[sp->n_prefix++] = full.ids[i];
        else
            sp->suffix[sp->n_suffix++] = full.ids[i + plain.n];
    sp->eos = bpe_eos(bpe);
    if (!rc && sp->eos < 0) rc = lf_fail(err, "the tokenizer has no EOS token for between texts");
    idlist_free(&plain);
    idlist_free(&full);
    return rc ? -1 : 0;
}

int lm_specials(LmSpecials *sp, const TextTokenizer *tok, LfError *err) {
    return tok->kind == TEXT_BPE ? bpe_specials(sp, tok->bpe, err)
                                 : wordpiece_specials(sp, tok->wordpiece, err);
}

/* ---- encoding, in parallel chunks of texts ---- */

enum { CHUNK = 1024 }; /* texts encoded per round: bounds the per-text lists */

/* Text i as tokenizer(text) would give it, into ids (cleared first). */
static int encode_text(const LmTexts *t, int i, const TextTokenizer *tok, const LmSpecials *sp,
                       IdList *ids, LfError *err) {
    ids->n = 0;
    int rc = 0;
    for (int k = 0; k < sp->n_prefix && !rc; k++) rc = idlist_push(ids, sp->prefix[k], err);
    if (!rc) rc = text_encode(tok, t->buf + t->offsets[i], t->lens[i], ids, err);
    for (int k = 0; k < sp->n_suffix && !rc; k++) rc = idlist_push(ids, sp->suffix[k], err);
    return rc ? lf_wrap(err, "%s: text %d", t->source, i + 1) : 0;
}

/* Texts [lo, hi) into lists[0 .. hi-lo) on all threads; err gets the first failure's. */
static int encode_chunk(const LmTexts *t, int lo, int hi, const TextTokenizer *tok,
                        const LmSpecials *sp, IdList *lists, LfError *err) {
    int failed = hi;
#pragma omp parallel for schedule(dynamic, 1)
    for (int i = lo; i < hi; i++) {
        LfError e;
        if (encode_text(t, i, tok, sp, &lists[i - lo], &e))
#pragma omp critical(lm_encode_error)
            if (i < failed) {
                failed = i;
                if (err) *err = e;
            }
    }
    return failed < hi ? -1 : 0;
}

/* The growing set: ids and, for rows, offsets. */
typedef struct Builder {
    LmSet *s;
    const LmSpecials *sp;
    int max_length; /* rows; 0 when packing */
    int64_t ids_cap, rows_cap;
} Builder;

static int push_ids(Builder *b, const int32_t *v, int64_t n, LfError *err) {
    TokenizedSet *ts = &b->s->rows;
    int64_t used = b->s->n_tokens;
    if (used + n > b->ids_cap) {
        int64_t cap = b->ids_cap ? b->ids_cap : 1 << 16;
        while (cap < used + n) cap *= 2;
        int32_t *ids = realloc(ts->ids, (size_t)cap * sizeof *ids);
        if (!ids) return lf_fail(err, "out of memory for %lld token ids", (long long)cap);
        ts->ids = ids;
        b->ids_cap = cap;
    }
    memcpy(ts->ids + used, v, (size_t)n * sizeof *v);
    b->s->n_tokens += n;
    return 0;
}

/* One document onto the packed stream, after an EOS unless the stream ends with one. */
static int pack_doc(Builder *b, const IdList *doc, LfError *err) {
    const int32_t *ids = b->s->rows.ids;
    int64_t n = b->s->n_tokens;
    if (doc->n == 0) return 0;
    if (n > 0 && ids[n - 1] != b->sp->eos && push_ids(b, &b->sp->eos, 1, err)) return -1;
    return push_ids(b, doc->ids, (int64_t)doc->n, err);
}

/* One evaluation row: the text's first tokens and its suffix specials, max_length at most. */
static int add_row(Builder *b, const IdList *ids, LfError *err) {
    LmSet *s = b->s;
    int64_t n = (int64_t)ids->n, keep = n < b->max_length ? n : b->max_length;
    if (n < 2) {
        s->n_skipped++;
        s->n_dropped += n;
        return 0;
    }
    if (s->rows.n + 1 >= b->rows_cap) {
        int64_t cap = b->rows_cap ? 2 * b->rows_cap : 1024;
        int64_t *off = cap < INT_MAX ? realloc(s->rows.offsets, (size_t)cap * sizeof *off) : NULL;
        if (!off) return lf_fail(err, "out of memory for %lld rows", (long long)cap);
        if (!b->rows_cap) off[0] = 0;
        s->rows.offsets = off;
        b->rows_cap = cap;
    }
    int ns = b->sp->n_suffix;
    if (push_ids(b, ids->ids, keep - ns, err) || push_ids(b, ids->ids + n - ns, ns, err)) return -1;
    s->n_dropped += n - keep;
    s->rows.offsets[++s->rows.n] = s->n_tokens;
    return 0;
}

static int encode_all(Builder *b, const LmTexts *t, const TextTokenizer *tok, LfError *err) {
    IdList *lists = calloc(CHUNK, sizeof *lists);
    int rc = lists ? 0 : lf_fail(err, "out of memory");
    for (int lo = 0; lo < t->n && !rc; lo += CHUNK) {
        int hi = t->n - lo < CHUNK ? t->n : lo + CHUNK;
        rc = encode_chunk(t, lo, hi, tok, b->sp, lists, err);
        for (int i = lo; i < hi && !rc; i++)
            rc = b->max_length ? add_row(b, &lists[i - lo], err) : pack_doc(b, &lists[i - lo], err);
    }
    for (int i = 0; lists && i < CHUNK; i++) idlist_free(&lists[i]);
    free(lists);
    return rc;
}

/* The rows' labels (all -1), max_len, n_predicted, and ids trimmed to what the rows hold. */
static int finish_rows(LmSet *s, LfError *err) {
    TokenizedSet *ts = &s->rows;
    ts->labels = malloc((size_t)ts->n * sizeof *ts->labels);
    if (!ts->labels) return lf_fail(err, "out of memory for %d rows", ts->n);
    for (int i = 0; i < ts->n; i++) {
        int len = (int)(ts->offsets[i + 1] - ts->offsets[i]);
        ts->labels[i] = -1;
        ts->max_len = len > ts->max_len ? len : ts->max_len;
        s->n_predicted += len - 1;
    }
    int32_t *fit = realloc(ts->ids, (size_t)ts->offsets[ts->n] * sizeof *fit);
    if (fit) ts->ids = fit;
    return 0;
}

/* Cuts the packed stream into blocks; the remainder is dropped. */
static int cut_blocks(LmSet *s, const LmTexts *t, int block_size, LfError *err) {
    int64_t n = s->n_tokens / block_size;
    if (n == 0)
        return lf_fail(err,
                       "%s: %lld tokens in all, fewer than one block of %d: lower the block "
                       "size (data.max_length) or add text",
                       t->source, (long long)s->n_tokens, block_size);
    if (n >= INT_MAX) return lf_fail(err, "%s: %lld blocks, too many", t->source, (long long)n);
    s->rows.n = (int)n;
    s->rows.offsets = malloc(((size_t)n + 1) * sizeof *s->rows.offsets);
    if (!s->rows.offsets) return lf_fail(err, "out of memory for %lld blocks", (long long)n);
    for (int64_t i = 0; i <= n; i++) s->rows.offsets[i] = i * block_size;
    s->n_dropped = s->n_tokens - n * block_size;
    s->n_tokens = n * block_size;
    return finish_rows(s, err);
}

int lm_pack(LmSet *s, const LmTexts *t, const TextTokenizer *tok, const LmSpecials *sp,
            int block_size, LfError *err) {
    memset(s, 0, sizeof *s);
    if (block_size < 2) return lf_fail(err, "block size %d: it must be at least 2", block_size);
    Builder b = {.s = s, .sp = sp};
    s->n_texts = t->n;
    if (encode_all(&b, t, tok, err) || cut_blocks(s, t, block_size, err)) {
        lm_set_free(s);
        return -1;
    }
    return 0;
}

int lm_rows(LmSet *s, const LmTexts *t, const TextTokenizer *tok, const LmSpecials *sp,
            int max_length, LfError *err) {
    memset(s, 0, sizeof *s);
    if (max_length < 2 || max_length <= sp->n_prefix + sp->n_suffix)
        return lf_fail(err, "max_length %d leaves no room for text beside %d special tokens",
                       max_length, sp->n_prefix + sp->n_suffix);
    Builder b = {.s = s, .sp = sp, .max_length = max_length};
    s->n_texts = t->n;
    int rc = encode_all(&b, t, tok, err);
    if (!rc && s->rows.n == 0)
        rc = lf_fail(err, "%s: no text of 2 tokens or more to evaluate on", t->source);
    if (rc || finish_rows(s, err)) {
        lm_set_free(s);
        return -1;
    }
    return 0;
}

void lm_set_free(LmSet *s) {
    tokenized_set_free(&s->rows);
    free(s->token_labels);
    memset(s, 0, sizeof *s);
}

/* ---- batches ---- */

int lm_loader_init(LmLoader *l, const LmSet *s, int batch_size, int32_t pad_id, LfError *err) {
    memset(l, 0, sizeof *l);
    if (batcher_init(&l->b, &s->rows, batch_size, pad_id, err)) return -1;
    l->s = s;
    l->labels = malloc((size_t)batch_size * (size_t)s->rows.max_len * sizeof *l->labels);
    if (l->labels) return 0;
    batcher_free(&l->b);
    return lf_fail(err, "out of memory for %d x %d labels", batch_size, s->rows.max_len);
}

void lm_loader_start_epoch(LmLoader *l, uint64_t seed, int epoch, int shuffle, int bucket) {
    batcher_start_epoch(&l->b, seed, epoch, shuffle, bucket);
}

int lm_loader_next(LmLoader *l, LmBatch *batch) {
    Batch b;
    if (!batcher_next(&l->b, &b)) return 0;
    const int32_t *token_labels = l->s->token_labels;
    int64_t predicted = 0;
    for (int r = 0; r < b.B; r++) {
        const int32_t *own = token_labels ? token_labels + l->s->rows.offsets[b.index[r]] : NULL;
        for (int t = 0; t < b.T; t++) {
            size_t i = (size_t)r * b.T + t;
            l->labels[i] = !b.mask[i] ? LM_IGNORE : own ? own[t] : b.ids[i];
            predicted += t > 0 && l->labels[i] >= 0;
        }
    }
    *batch = (LmBatch){.B = b.B,
                       .T = b.T,
                       .ids = b.ids,
                       .mask = b.mask,
                       .labels = l->labels,
                       .index = b.index,
                       .n_tokens = b.n_tokens,
                       .n_predicted = predicted};
    return 1;
}

int lm_loader_num_batches(const LmLoader *l) {
    return batcher_num_batches(&l->b);
}

void lm_loader_free(LmLoader *l) {
    batcher_free(&l->b);
    free(l->labels);
    memset(l, 0, sizeof *l);
}
