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

/* Length of the longest valid UTF-8 prefix of s[0..n); NUL bytes count as
 * invalid. */
static size_t utf8_valid_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c >= 0x01 && c < 0x80) {
            i++;
            continue;
        }
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the first continuation byte */
        size_t more;
        if (c >= 0xC2 && c <= 0xDF)
            more = 1;
        else if (c >= 0xE0 && c <= 0xEF) {
            more = 2;
            if (c == 0xE0) lo = 0xA0; /* overlong */
            if (c == 0xED) hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            more = 3;
            if (c == 0xF0) lo = 0x90; /* overlong */
            if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        } else
            return i;
        if (i + more >= n || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += more + 1;
    }
    return n;
}

/* Checks s[0..n), which starts at `line` column 1 of path; newlines inside
 * advance line. */
static int check_utf8(const char *s, size_t n, const char *path, long line, LfError *err) {
    size_t bad = utf8_valid_prefix((const unsigned char *)s, n);
    if (bad == n) return 0;
    size_t bol = 0;
    for (size_t i = 0; i < bad; i++)
        if (s[i] == '\n') line++, bol = i + 1;
    return lf_fail(err, "%s:%ld:%zu: %s (byte 0x%02x)", path, line, bad - bol + 1,
                   s[bad] ? "invalid UTF-8" : "NUL byte in text", (unsigned char)s[bad]);
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
    char known[512];
    return lf_fail(err, "%s:%ld: unknown label '%.*s' (known labels: %s)", path, line,
                   (int)(n > 100 ? 100 : n), t, known_labels(s, known, sizeof known));
}

/* ---- JSONL ---- */

static int json_missing(const cJSON *obj, const char *key, const char *path, long line,
                        LfError *err) {
    char keys[512] = "";
    for (const cJSON *c = obj->child; c; c = c->next)
        list_append(keys, sizeof keys, c->string, strlen(c->string));
    return lf_fail(err, "%s:%ld: no key '%s' (keys found: %s)", path, line, key, keys);
}

static int json_label(const DatasetSpec *s, const cJSON *v, int *label, const char *path, long line,
                      LfError *err) {
    if (cJSON_IsString(v))
        return label_from_text(s, v->valuestring, strlen(v->valuestring), label, path, line, err);
    if (cJSON_IsNumber(v) && fabs(v->valuedouble) < 1e15 &&
        v->valuedouble == (double)(long long)v->valuedouble)
        return label_from_int(s, (long long)v->valuedouble, label, path, line, err);
    return lf_fail(err, "%s:%ld: the '%s' value must be an integer or a string", path, line,
                   s->label_column);
}

/* One JSON object per line: its text and label are added to b. */
static int jsonl_line(Builder *b, const DatasetSpec *s, const char *line, size_t len, long ln,
                      LfError *err) {
    const char *path = s->path, *end = NULL;
    cJSON *obj = cJSON_ParseWithLengthOpts(line, len, &end, 0);
    if (!obj) {
        const char *at = cJSON_GetErrorPtr();
        long col = at && at >= line && at <= line + len ? (long)(at - line) + 1 : 1;
        return lf_fail(err, "%s:%ld: malformed JSON near column %ld", path, ln, col);
    }
    int rc = -1, label = -1;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, text_column(s)), *lab = NULL;
    while (end < line + len && strchr(" \t\r", *end)) end++;
    if (end != line + len)
        lf_fail(err, "%s:%ld: malformed JSON: text after the object at column %ld", path, ln,
                (long)(end - line) + 1);
    else if (!cJSON_IsObject(obj))
        lf_fail(err, "%s:%ld: expected a JSON object", path, ln);
    else if (!text)
        json_missing(obj, text_column(s), path, ln, err);
    else if (!cJSON_IsString(text))
        lf_fail(err, "%s:%ld: '%s' is not a string", path, ln, text_column(s));
    else if (is_labeled(s) && !(lab = cJSON_GetObjectItemCaseSensitive(obj, s->label_column)))
        json_missing(obj, s->label_column, path, ln, err);
    else if (!lab || json_label(s, lab, &label, path, ln, err) == 0)
        rc = builder_add(b, text->valuestring, strlen(text->valuestring), label, err);
    cJSON_Delete(obj);
    return rc;
}

static int load_jsonl(Builder *b, const DatasetSpec *s, LfError *err) {
    FILE *f = fopen(s->path, "rb");
    if (!f) return lf_fail(err, "%s: cannot open: %s", s->path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int rc = 0;
    for (long ln = 1; rc == 0 && !builder_full(b) && (got = getline(&line, &cap, f)) > 0; ln++) {
        size_t n = (size_t)got;
        const char *p = ln == 1 ? skip_bom(line, &n) : line;
        while (n && (p[n - 1] == '\n' || p[n - 1] == '\r')) n--;
        size_t ws = strspn(p, " \t\r");
        if (ws >= n) continue; /* blank line */
        rc = check_utf8(p, n, s->path, ln, err);
        if (rc == 0) rc = jsonl_line(b, s, p, n, ln, err);
    }
    if (rc == 0 && ferror(f)) rc = lf_fail(err, "%s: read error: %s", s->path, strerror(errno));
    free(line);
    fclose(f);
    return rc;
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
