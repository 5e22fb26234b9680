/* dataset.c: loads (text, label) examples from JSONL, CSV or an aclImdb split
 * directory.
 *
 * Not a general JSON or CSV library: only the text and label columns are kept,
 * every text is checked to be UTF-8, and every failure names the file and the
 * line. JSONL is read a line at a time; a CSV is read whole because quoted
 * fields may span lines (its quoted fields are unescaped in place in that
 * buffer). */
#include "loraft/data.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "loraft/utf8.h"

/* ---- the growing example list: texts in one buffer, pointers fixed up at the end ---- */

typedef struct Builder {
    Example *ex;
    size_t *off; /* [n] offset of each text in buf */
    int n, cap;
    char *buf;
    size_t len, bufcap;
    int limit; /* 0 = no limit */
} Builder;

static int builder_full(const Builder *b) {
    return b->limit > 0 && b->n >= b->limit;
}

static int builder_add(Builder *b, const char *text, size_t len, int label, LfError *err) {
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 1024;
        Example *ex = realloc(b->ex, (size_t)cap * sizeof *ex);
        if (ex) b->ex = ex;
        size_t *off = realloc(b->off, (size_t)cap * sizeof *off);
        if (off) b->off = off;
        if (!ex || !off) return lf_fail(err, "out of memory for %d examples", cap);
        b->cap = cap;
    }
    if (b->len + len + 1 > b->bufcap) {
        size_t cap = b->bufcap ? b->bufcap : 1 << 20;
        while (cap < b->len + len + 1) cap *= 2;
        char *buf = realloc(b->buf, cap);
        if (!buf) return lf_fail(err, "out of memory for %zu bytes of text", cap);
        b->buf = buf;
        b->bufcap = cap;
    }
    memcpy(b->buf + b->len, text, len);
    b->buf[b->len + len] = '\0';
    b->off[b->n] = b->len;
    b->ex[b->n].len = len;
    b->ex[b->n].label = label;
    b->n++;
    b->len += len + 1;
    return 0;
}

static void builder_free(Builder *b) {
    free(b->ex);
    free(b->off);
    free(b->buf);
}

static void builder_finish(Builder *b, Dataset *ds) {
    for (int i = 0; i < b->n; i++) b->ex[i].text = b->buf + b->off[i];
    ds->examples = b->ex;
    ds->n = b->n;
    ds->storage = b->buf;
    free(b->off);
}

/* ---- text checks ---- */

/* Length of the longest valid UTF-8 prefix of s[0..n). A NUL byte is a character like any
 * other: texts are kept with their length. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    uint32_t c;
    for (int k; i < n; i += (size_t)k)
        if (!(k = s[i] < 0x80 ? 1 : utf8_decode(s + i, n - i, &c))) break;
    return i;
}

/* Checks s[0..n), which starts at `line` column 1 of path; newlines inside
 * advance line. */
static int check_utf8(const char *s, size_t n, const char *path, long line, LfError *err) {
    size_t bad = utf8_valid_prefix((const unsigned char *)s, n);
    if (bad == n) return 0;
    size_t bol = 0;
    for (size_t i = 0; i < bad; i++)
        if (s[i] == '\n') line++, bol = i + 1;
    return lf_fail(err, "%s:%ld:%zu: invalid UTF-8 (byte 0x%02x)", path, line, bad - bol + 1,
                   (unsigned char)s[bad]);
}

static const char *skip_bom(const char *s, size_t *n) {
    if (*n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) {
        *n -= 3;
        return s + 3;
    }
    return s;
}

/* ---- labels ---- */

static int is_labeled(const DatasetSpec *s) {
    return s->label_column && s->label_column[0];
}
static const char *text_column(const DatasetSpec *s) {
    return s->text_column && s->text_column[0] ? s->text_column : "text";
}

/* Appends ", s" (or "s" first) to a NUL-terminated list in buf, truncating
 * quietly. */
static void list_append(char *buf, size_t cap, const char *s, size_t len) {
    size_t used = strlen(buf);
    snprintf(buf + used, cap - used, "%s%.*s", used ? ", " : "", (int)len, s);
}

static const char *known_labels(const DatasetSpec *s, char *buf, size_t cap) {
    buf[0] = '\0';
    if (s->label_names)
        for (int i = 0; i < s->num_labels; i++)
            list_append(buf, cap, s->label_names[i], strlen(s->label_names[i]));
    else if (s->num_labels > 0)
        snprintf(buf, cap, "integers 0..%d", s->num_labels - 1);
    else
        snprintf(buf, cap, "integers >= 0");
    return buf;
}

static int label_from_int(const DatasetSpec *s, long long v, int *label, const char *path,
                          long line, LfError *err) {
    if (v < 0 || v > INT_MAX || (s->num_labels > 0 && v >= s->num_labels)) {
        char known[512];
        return lf_fail(err, "%s:%ld: label %lld out of range (known labels: %s)", path, line, v,
                       known_labels(s, known, sizeof known));
    }
    *label = (int)v;
    return 0;
}

/* A decimal integer (optional sign, digits only) in s[0..n)? */
static int parse_int(const char *s, size_t n, long long *out) {
    size_t i = n && (s[0] == '-' || s[0] == '+');
    if (i == n || n - i > 18) return 0;
    long long v = 0;
    for (size_t k = i; k < n; k++) {
        if (s[k] < '0' || s[k] > '9') return 0;
        v = 10 * v + (s[k] - '0');
    }
    *out = s[0] == '-' ? -v : v;
    return 1;
}

/* A label written as text: an integer when it looks like one, else one of
 * label_names. */
static int label_from_text(const DatasetSpec *s, const char *t, size_t n, int *label,
                           const char *path, long line, LfError *err) {
    long long v;
    if (parse_int(t, n, &v)) return label_from_int(s, v, label, path, line, err);
    for (int i = 0; s->label_names && i < s->num_labels; i++)
        if (strlen(s->label_names[i]) == n && !memcmp(s->label_names[i], t, n)) {
            *label = i;
            return 0;
        }
    char known[512], shown[128] = "";
    for (size_t i = 0; i < n && i < 100; i++) /* control bytes (NUL too) as \xNN */
        snprintf(shown + strlen(shown), sizeof shown - strlen(shown),
                 (unsigned char)t[i] < 0x20 ? "\\x%02x" : "%c", (unsigned char)t[i]);
    return lf_fail(err, "%s:%ld: unknown label '%s' (known labels: %s)", path, line, shown,
                   known_labels(s, known, sizeof known));
}

/* ---- JSONL ----
 * cJSON checks each line and parses its numbers, but it ends a decoded string at the first
 * NUL. The strings kept (the text, a label name) are decoded here from the line itself, with
 * their length, so "a\u0000b" stays three bytes. */

/* Past cJSON's whitespace: every byte up to ' '. */
static const char *json_ws(const char *p, const char *end) {
    while (p < end && (unsigned char)*p <= ' ') p++;
    return p;
}

/* Past the JSON string at p (on its opening quote). */
static const char *json_string_end(const char *p, const char *end) {
    for (p++; p < end && *p != '"'; p++)
        if (*p == '\\' && p + 1 < end) p++;
    return p < end ? p + 1 : end;
}

/* Past the value at p: at the ',' or '}' that follows it in its object. */
static const char *json_value_end(const char *p, const char *end) {
    for (int depth = 0; p < end && (depth > 0 || (*p != ',' && *p != '}'));) {
        if (*p == '"') {
            p = json_string_end(p, end);
            continue;
        }
        depth += (*p == '{' || *p == '[') - (*p == '}' || *p == ']');
        p++;
    }
    return p;
}

static int json_hex4(const char *p, const char *end, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = p + i < end ? p[i] : 0;
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return 0;
        *v = *v << 4 | (uint32_t)d;
    }
    return 1;
}

/* The \u escape at p (on the 'u'), or a surrogate pair of them: its code point, and where the
 * escape ends; NULL when invalid. */
static const char *json_u_escape(const char *p, const char *end, uint32_t *cp) {
    uint32_t lo;
    if (!json_hex4(p + 1, end, cp) || (*cp >= 0xDC00 && *cp <= 0xDFFF)) return NULL;
    p += 5;
    if (*cp < 0xD800 || *cp > 0xDBFF) return p;
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || !json_hex4(p + 2, end, &lo) || lo < 0xDC00 ||
        lo > 0xDFFF)
        return NULL;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (lo - 0xDC00);
    return p + 6;
}

/* Decodes the JSON string at p (on its opening quote) into out, which has room for its raw
 * bytes (an escape never decodes longer than it is written). Returns the decoded length, or
 * -1 when malformed. */
static long json_decode(const char *p, const char *end, char *out) {
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    long n = 0;
    for (p++; p < end && *p != '"';) {
        if (*p != '\\') {
            out[n++] = *p++;
            continue;
        }
        const char *e = ++p < end && *p ? strchr(from, *p) : NULL;
        uint32_t cp;
        if (p < end && *p == 'u' && (p = json_u_escape(p, end, &cp)))
            n += utf8_encode(cp, out + n);
        else if (e)
            out[n++] = to[e - from], p++;
        else
            return -1;
    }
    return p < end ? n : -1;
}

/* The first member of the JSON object in [p, end) whose key is `key`, the decoded keys compared
 * byte for byte: its index among the members (as cJSON lists them), *value where its value
 * starts; -1 when there is none, -2 when a key before it is malformed (cJSON reads a bad \u
 * escape as a NUL and would find another member). scratch has room for end - p bytes. */
static int json_member(const char *p, const char *end, const char *key, const char **value,
                       char *scratch) {
    long klen = (long)strlen(key);
    p = json_ws(p, end);
    if (p == end || *p != '{') return -1;
    p = json_ws(p + 1, end);
    for (int i = 0; p < end && *p == '"'; i++) {
        long n = json_decode(p, end, scratch);
        if (n < 0) return -2;
        p = json_ws(json_string_end(p, end), end);
        if (p < end && *p == ':') p = json_ws(p + 1, end);
        if (n == klen && !memcmp(scratch, key, (size_t)klen)) {
            *value = p;
            return i;
        }
        p = json_value_end(p, end);
        if (p == end || *p != ',') break;
        p = json_ws(p + 1, end);
    }
    return -1;
}

static const cJSON *json_child(const cJSON *obj, int i) {
    const cJSON *c = obj->child;
    while (c && i-- > 0) c = c->next;
    return c;
}

static int json_missing(const cJSON *obj, const char *key, const char *path, long line,
                        LfError *err) {
    char keys[512] = "";
    for (const cJSON *c = obj->child; c; c = c->next)
        list_append(keys, sizeof keys, c->string, strlen(c->string));
    return lf_fail(err, "%s:%ld: no key '%s' (keys found: %s)", path, line, key, keys);
}

/* json_member's index of `key` in the line of obj, or -1 with the error: malformed or missing. */
static int json_find(const cJSON *obj, const char *line, const char *end, const char *key,
                     const char **value, char *scratch, const char *path, long ln, LfError *err) {
    int i = json_member(line, end, key, value, scratch);
    if (i == -2) return lf_fail(err, "%s:%ld: malformed JSON string (a key)", path, ln);
    return i < 0 ? json_missing(obj, key, path, ln, err) : i;
}

/* The label member v, whose value starts at raw; scratch has room for the line. */
static int json_label(const DatasetSpec *s, const cJSON *v, const char *raw, const char *end,
                      char *scratch, int *label, long line, LfError *err) {
    if (cJSON_IsString(v)) {
        long n = json_decode(raw, end, scratch);
        return n < 0 ? lf_fail(err, "%s:%ld: malformed JSON string '%s'", s->path, line,
                               s->label_column)
                     : label_from_text(s, scratch, (size_t)n, label, s->path, line, err);
    }
    if (cJSON_IsNumber(v) && fabs(v->valuedouble) < 1e15 &&
        v->valuedouble == (double)(long long)v->valuedouble)
        return label_from_int(s, (long long)v->valuedouble, label, s->path, line, err);
    return lf_fail(err, "%s:%ld: the '%s' value must be an integer or a string", s->path, line,
                   s->label_column);
}

/* The checks of jsonl_record once cJSON has parsed the line; buf has room for the line. */
static int jsonl_fields(const DatasetSpec *s, const cJSON *obj, const char *line, size_t len,
                        const char *parse_end, long ln, char *buf, size_t *text_len, int *label,
                        LfError *err) {
    const char *path = s->path, *end = line + len, *tv = NULL, *lv = NULL;
    parse_end = json_ws(parse_end, end);
    if (parse_end != end)
        return lf_fail(err, "%s:%ld: malformed JSON: text after the object at column %ld", path, ln,
                       (long)(parse_end - line) + 1);
    if (!cJSON_IsObject(obj)) return lf_fail(err, "%s:%ld: expected a JSON object", path, ln);
    int ti = json_find(obj, line, end, text_column(s), &tv, buf, path, ln, err), li = -1;
    if (ti < 0) return -1;
    if (!cJSON_IsString(json_child(obj, ti)))
        return lf_fail(err, "%s:%ld: '%s' is not a string", path, ln, text_column(s));
    *label = -1;
    if (is_labeled(s) &&
        (li = json_find(obj, line, end, s->label_column, &lv, buf, path, ln, err)) < 0)
        return -1;
    if (li >= 0 && json_label(s, json_child(obj, li), lv, end, buf, label, ln, err)) return -1;
    long n = json_decode(tv, end, buf);
    if (n < 0) return lf_fail(err, "%s:%ld: malformed JSON string '%s'", path, ln, text_column(s));
    buf[n] = '\0';
    *text_len = (size_t)n;
    return 0;
}

int jsonl_record(const DatasetSpec *s, const char *line, size_t len, long ln, char **text,
                 size_t *text_len, int *label, LfError *err) {
    *text = NULL;
    if (check_utf8(line, len, s->path, ln, err)) return -1;
    const char *parse_end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &parse_end, 0);
    if (!obj) {
        const char *at = cJSON_GetErrorPtr();
        long col = at && at >= line && at <= line + len ? (long)(at - line) + 1 : 1;
        return lf_fail(err, "%s:%ld: malformed JSON near column %ld", s->path, ln, col);
    }
    char *buf = malloc(len + 1);
    int rc = buf ? jsonl_fields(s, obj, line, len, parse_end, ln, buf, text_len, label, err)
                 : lf_fail(err, "out of memory for a %zu-byte line", len);
    cJSON_Delete(obj);
    if (rc)
        free(buf);
    else
        *text = buf;
    return rc;
}

int jsonl_each_line(const char *path, JsonlLineFn fn, void *ctx, LfError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    for (long ln = 1; rc == 0 && (got = getline(&line, &cap, f)) > 0; ln++) {
        size_t n = (size_t)got;
        const char *p = ln == 1 ? skip_bom(line, &n) : line;
        while (n && (p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
        size_t ws = strspn(p, " \t\r");
        if (ws < n) rc = fn(ctx, p, n, ln, err); /* else a blank line */
    }
    if (rc == 0 && ferror(f)) rc = lf_fail(err, "%s: read error: %s", path, strerror(errno));
    free(line);
    fclose(f);
    return rc < 0 ? -1 : 0;
}

typedef struct JsonlExamples {
    Builder *b;
    const DatasetSpec *s;
} JsonlExamples;

static int add_jsonl_example(void *ctx, const char *line, size_t len, long ln, LfError *err) {
    JsonlExamples *x = ctx;
    char *text;
    size_t text_len;
    int label;
    int rc = jsonl_record(x->s, line, len, ln, &text, &text_len, &label, err);
    if (rc == 0) rc = builder_add(x->b, text, text_len, label, err);
    free(text);
    return rc ? -1 : builder_full(x->b);
}

static int load_jsonl(Builder *b, const DatasetSpec *s, LfError *err) {
    JsonlExamples x = {b, s};
    return jsonl_each_line(s->path, add_jsonl_example, &x, err);
}

/* ---- whole files (CSV, aclImdb reviews) ---- */

/* Reads path into a NUL-terminated malloc'ed buffer of *n bytes. */
static int read_whole(const char *path, char **out, size_t *n, LfError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return lf_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    char *buf = NULL;
    if (fstat(fileno(f), &st) == 0 && (buf = malloc((size_t)st.st_size + 1)))
        *n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = !buf || ferror(f) || *n != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        free(buf);
        return lf_fail(err, "%s: cannot read the file", path);
    }
    buf[*n] = '\0';
    *out = buf;
    return 0;
}

/* ---- CSV (RFC 4180) ---- */

typedef struct Field {
    char *s;
    size_t len;
} Field;

typedef struct CsvReader {
    const char *path;
    char *p, *end;
    long line;  /* line of *p */
    Field *f;   /* the current record's fields */
    int n, cap; /* fields in the record, allocated */
    long at;    /* line where the current record started */
} CsvReader;

static int csv_at_eol(const CsvReader *r, const char *p) {
    return p == r->end || *p == '\n' || (*p == '\r' && (p + 1 == r->end || p[1] == '\n'));
}

/* A quoted field starting at r->p (on the '"'), unescaped in place. */
static int csv_quoted(CsvReader *r, Field *fd, LfError *err) {
    long start = r->line;
    char *w = ++r->p;
    fd->s = w;
    for (;;) {
        if (r->p == r->end)
            return lf_fail(err,
                           "%s:%ld: unbalanced quote: the quoted field starting here is "
                           "never closed",
                           r->path, start);
        char c = *r->p++;
        if (c == '"') {
            if (r->p == r->end || *r->p != '"') break;
            r->p++; /* "" is one quote */
        } else if (c == '\n')
            r->line++;
        *w++ = c;
    }
    fd->len = (size_t)(w - fd->s);
    if (!csv_at_eol(r, r->p) && *r->p != ',')
        return lf_fail(err, "%s:%ld: unexpected '%c' after a closing quote", r->path, r->line,
                       *r->p);
    return 0;
}

/* Reads the next non-blank record into r->f; returns 1, 0 at the end, -1 on
 * error. */
static int csv_record(CsvReader *r, LfError *err) {
    while (r->p < r->end && csv_at_eol(r, r->p)) { /* blank lines */
        r->p += *r->p == '\r' ? (r->p + 1 < r->end ? 2 : 1) : 1;
        r->line++;
    }
    if (r->p == r->end) return 0;
    r->n = 0;
    r->at = r->line;
    for (;;) {
        if (r->n == r->cap) {
            int cap = r->cap ? 2 * r->cap : 16;
            Field *f = realloc(r->f, (size_t)cap * sizeof *f);
            if (!f) return lf_fail(err, "out of memory");
            r->f = f;
            r->cap = cap;
        }
        Field *fd = &r->f[r->n++];
        if (*r->p == '"') {
            if (csv_quoted(r, fd, err)) return -1;
        } else {
            fd->s = r->p;
            while (!csv_at_eol(r, r->p) && *r->p != ',') r->p++;
            fd->len = (size_t)(r->p - fd->s);
        }
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end) { /* end of line: \n or \r\n */
            r->p += *r->p == '\r' ? (r->p + 1 < r->end ? 2 : 1) : 1;
            r->line++;
        }
        return 1;
    }
}

/* Index of the column named `name` in the header r->f, or -1 with an error
 * listing them. */
static int csv_column(const CsvReader *r, const char *name, LfError *err) {
    char cols[512] = "";
    for (int i = 0; i < r->n; i++) {
        if (r->f[i].len == strlen(name) && !memcmp(r->f[i].s, name, r->f[i].len)) return i;
        list_append(cols, sizeof cols, r->f[i].s, r->f[i].len);
    }
    return lf_fail(err, "%s:%ld: no column '%s' (columns found: %s)", r->path, r->at, name, cols);
}

static int csv_rows(Builder *b, const DatasetSpec *s, CsvReader *r, LfError *err) {
    int rc = csv_record(r, err);
    if (rc <= 0) return rc; /* an empty file: no examples */
    int ncol = r->n, tc = csv_column(r, text_column(s), err), lc = -1;
    if (tc < 0 || (is_labeled(s) && (lc = csv_column(r, s->label_column, err)) < 0)) return -1;
    while (!builder_full(b) && (rc = csv_record(r, err)) == 1) {
        int label = -1;
        if (r->n != ncol)
            return lf_fail(err, "%s:%ld: expected %d fields as in the header, found %d", s->path,
                           r->at, ncol, r->n);
        if (lc >= 0 && label_from_text(s, r->f[lc].s, r->f[lc].len, &label, s->path, r->at, err))
            return -1;
        if (builder_add(b, r->f[tc].s, r->f[tc].len, label, err)) return -1;
    }
    return rc < 0 ? -1 : 0;
}

static int load_csv(Builder *b, const DatasetSpec *s, LfError *err) {
    char *buf;
    size_t n;
    if (read_whole(s->path, &buf, &n, err)) return -1;
    char *p = (char *)skip_bom(buf, &n);
    CsvReader r = {.path = s->path, .p = p, .end = p + n, .line = 1};
    int rc = check_utf8(p, n, s->path, 1, err);
    if (rc == 0) rc = csv_rows(b, s, &r, err);
    free(r.f);
    free(buf);
    return rc;
}

/* ---- aclImdb: DIR/neg/NAME.txt (label 0) then DIR/pos/NAME.txt (label 1), by
 * name ---- */

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The *.txt names in dir, sorted; *names must be freed with each entry. */
static int list_txt(const char *dir, char ***names, int *count, LfError *err) {
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return lf_fail(err, "%s: cannot open (an aclImdb split needs pos/ and neg/): %s", dir,
                       strerror(errno));
    char **v = NULL;
    int n = 0, cap = 0, rc = 0;
    for (struct dirent *e; rc == 0 && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt")) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            char **nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv)
                rc = lf_fail(err, "out of memory");
            else
                v = nv;
        }
        if (rc == 0 && !(v[n++] = strdup(e->d_name))) rc = lf_fail(err, "out of memory");
    }
    closedir(d);
    if (rc == 0) qsort(v, (size_t)n, sizeof *v, cmp_names);
    *names = v;
    *count = n;
    return rc;
}

static int imdb_file(Builder *b, const char *path, int label, LfError *err) {
    char *buf;
    size_t n;
    if (read_whole(path, &buf, &n, err)) return -1;
    const char *p = skip_bom(buf, &n);
    int rc = check_utf8(p, n, path, 1, err);
    if (rc == 0) rc = builder_add(b, p, n, label, err);
    free(buf);
    return rc;
}

static int load_imdb(Builder *b, const DatasetSpec *s, LfError *err) {
    static const char *const sub[2] = {"neg", "pos"};
    if (s->num_labels != 0 && s->num_labels != 2)
        return lf_fail(err, "%s: an aclImdb split has 2 labels (neg, pos), not %d", s->path,
                       s->num_labels);
    char path[8192];
    int rc = 0;
    for (int label = 0; label < 2 && rc == 0; label++) {
        char **names;
        int n;
        snprintf(path, sizeof path, "%s/%s", s->path, sub[label]);
        rc = list_txt(path, &names, &n, err);
        for (int i = 0; i < n; i++) {
            snprintf(path, sizeof path, "%s/%s/%s", s->path, sub[label], names[i]);
            if (rc == 0 && !builder_full(b)) rc = imdb_file(b, path, label, err);
            free(names[i]);
        }
        free(names);
    }
    return rc;
}

/* ---- entry points ---- */

static int has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

typedef int (*Loader)(Builder *b, const DatasetSpec *s, LfError *err);

/* The loader for spec->format, or for the path's kind when it is "auto"; NULL
 * on error. */
static Loader pick_loader(const DatasetSpec *s, LfError *err) {
    const char *fmt = s->format && s->format[0] ? s->format : "auto";
    struct stat st;
    if (!strcmp(fmt, "auto")) {
        if (stat(s->path, &st)) {
            lf_fail(err, "%s: cannot open: %s", s->path, strerror(errno));
            return NULL;
        }
        fmt = S_ISDIR(st.st_mode)             ? "imdb"
              : has_suffix(s->path, ".jsonl") ? "jsonl"
              : has_suffix(s->path, ".csv")   ? "csv"
                                              : NULL;
        if (!fmt) {
            lf_fail(err,
                    "%s: cannot tell the data format from the name (.jsonl, .csv or an "
                    "aclImdb directory); set it to jsonl, csv or imdb",
                    s->path);
            return NULL;
        }
    }
    Loader load = !strcmp(fmt, "jsonl")  ? load_jsonl
                  : !strcmp(fmt, "csv")  ? load_csv
                  : !strcmp(fmt, "imdb") ? load_imdb
                                         : NULL;
    if (!load)
        lf_fail(err, "%s: unknown data format '%s' (auto, jsonl, csv or imdb)", s->path, fmt);
    return load;
}

int dataset_load(Dataset *ds, const DatasetSpec *spec, LfError *err) {
    memset(ds, 0, sizeof *ds);
    if (!spec->path || !spec->path[0]) return lf_fail(err, "data set: no path given");
    if (spec->num_labels < 0 || spec->limit < 0 || (spec->label_names && spec->num_labels == 0))
        return lf_fail(err, "%s: bad data set spec (num_labels %d, limit %d%s)", spec->path,
                       spec->num_labels, spec->limit,
                       spec->label_names ? ", label names need num_labels > 0" : "");
    Loader load = pick_loader(spec, err);
    if (!load) return -1;
    Builder b = {.limit = spec->limit};
    if (load(&b, spec, err) || (b.n == 0 && lf_fail(err, "%s: no examples in it", spec->path))) {
        builder_free(&b);
        return -1;
    }
    builder_finish(&b, ds);
    snprintf(ds->source, sizeof ds->source, "%s", spec->path);
    return 0;
}

void dataset_free(Dataset *ds) {
    free(ds->examples);
    free(ds->storage);
    memset(ds, 0, sizeof *ds);
}
