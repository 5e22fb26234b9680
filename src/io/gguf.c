/* gguf.c: validating mmap reader for GGUF v2/v3 files, the typed metadata getters and
 * tensor dequantisation to f32 (see gguf.h). Like src/safetensors.c, the parser trusts
 * nothing: every count and length is checked against the bytes that are left before it is
 * used, so a hostile file cannot make it allocate more than a small multiple of its own
 * size or read outside it. Every rule is listed in docs/FORMATS.md, has a case in
 * tests/test_gguf.c and is fuzzed by tests/fuzz/fuzz_gguf.c. Assumes a little-endian host,
 * as loraft does everywhere. Not here: the architecture (src/gguf_arch.c) and writing
 * (src/gguf_write.c). */
#include "loraft/gguf.h"

#include "loraft/fileio.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define GGUF_MAX_KEY 65535  /* the spec's limit on key length */
#define GGUF_MAX_NESTING 8  /* arrays of arrays of ... */
#define MIN_KV_BYTES 13     /* key length, value type, a 1-byte value */
#define MIN_TENSOR_BYTES 24 /* name length, n_dims, type, offset */

static const char *const type_names[] = {
    "UINT8", "INT8",   "UINT16", "INT16",  "UINT32", "INT32",   "FLOAT32",
    "BOOL",  "STRING", "ARRAY",  "UINT64", "INT64",  "FLOAT64",
};
#define N_TYPES 13

const char *gguf_type_name(uint32_t type) {
    return type < N_TYPES ? type_names[type] : "?";
}

size_t gguf_type_size(uint32_t type) {
    static const size_t size[N_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    return type < N_TYPES ? size[type] : 0;
}

/* The fewest bytes one value of a type can take in the file (a string: its length). */
static size_t min_value_size(uint32_t type) {
    if (type == GGUF_STRING) return 8;
    if (type == GGUF_ARRAY) return 12;
    return gguf_type_size(type);
}

/* ------------------------------------------------------------------- the cursor ---- */

/* Reads from the file image, failing with a message that names the file, what was being
 * read and where. */
typedef struct Cursor {
    const uint8_t *buf;
    size_t len, pos;
    const char *path;
    LfError *err;
} Cursor;

static int need(Cursor *c, uint64_t n, const char *what) {
    if (n <= c->len - c->pos) return 0;
    return lf_fail(c->err,
                   "%s: truncated: %s needs %" PRIu64 " bytes at byte %zu, the file ends at %zu",
                   c->path, what, n, c->pos, c->len);
}

static uint64_t load_le(const uint8_t *p, int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static int read_u32(Cursor *c, uint32_t *v, const char *what) {
    if (need(c, 4, what)) return -1;
    *v = (uint32_t)load_le(c->buf + c->pos, 4);
    c->pos += 4;
    return 0;
}

static int read_u64(Cursor *c, uint64_t *v, const char *what) {
    if (need(c, 8, what)) return -1;
    *v = load_le(c->buf + c->pos, 8);
    c->pos += 8;
    return 0;
}

/* A string: u64 length, then that many bytes; *s points at them in the image. */
static int read_str(Cursor *c, const uint8_t **s, uint64_t *len, const char *what) {
    if (read_u64(c, len, what) || need(c, *len, what)) return -1;
    *s = c->buf + c->pos;
    c->pos += *len;
    return 0;
}

/* --------------------------------------------------------------------- metadata ---- */

/* Skips over one value of `type`, checking it fits; depth counts enclosing arrays. */
static int skip_value(Cursor *c, uint32_t type, int depth, const char *what);

static int skip_array(Cursor *c, int depth, const char *what) {
    uint32_t elem;
    uint64_t n;
    if (read_u32(c, &elem, what) || read_u64(c, &n, what)) return -1;
    if (elem >= N_TYPES)
        return lf_fail(c->err, "%s: %s: array element type id %u is not a GGUF type (0..12)",
                       c->path, what, elem);
    if (elem == GGUF_ARRAY && depth + 1 >= GGUF_MAX_NESTING)
        return lf_fail(c->err, "%s: %s: arrays nested more than %d deep", c->path, what,
                       GGUF_MAX_NESTING);
    if (n > (c->len - c->pos) / min_value_size(elem))
        return lf_fail(c->err,
                       "%s: %s: array of %" PRIu64 " %s elements cannot fit in the %zu bytes "
                       "left in the file",
                       c->path, what, n, gguf_type_name(elem), c->len - c->pos);
    if (gguf_type_size(elem)) { /* fixed size: one jump */
        c->pos += n * gguf_type_size(elem);
        return 0;
    }
    for (uint64_t i = 0; i < n; i++)
        if (skip_value(c, elem, depth + 1, what)) return -1;
    return 0;
}

static int skip_value(Cursor *c, uint32_t type, int depth, const char *what) {
    if (type == GGUF_STRING) {
        const uint8_t *s;
        uint64_t len;
        return read_str(c, &s, &len, what);
    }
    if (type == GGUF_ARRAY) return skip_array(c, depth, what);
    if (need(c, gguf_type_size(type), what)) return -1;
    c->pos += gguf_type_size(type);
    return 0;
}

/* Where one KV lies in the image: filled by parse_kv, turned into a GgufKV by fill_kvs. */
typedef struct KvSpan {
    const uint8_t *key;
    uint64_t key_len;
} KvSpan;

static int parse_kv(Cursor *c, int i, GgufKV *kv, KvSpan *span) {
    char what[96];
    snprintf(what, sizeof what, "key-value pair %d", i);
    if (read_str(c, &span->key, &span->key_len, what)) return -1;
    if (span->key_len == 0 || span->key_len > GGUF_MAX_KEY || memchr(span->key, 0, span->key_len))
        return lf_fail(c->err,
                       "%s: key-value pair %d: key is empty, over %d bytes or has a NUL "
                       "byte",
                       c->path, i, GGUF_MAX_KEY);
    snprintf(what, sizeof what, "key '%.*s'", (int)(span->key_len < 60 ? span->key_len : 60),
             (const char *)span->key);
    uint32_t type;
    if (read_u32(c, &type, what)) return -1;
    if (type >= N_TYPES)
        return lf_fail(c->err, "%s: %s: value type id %u is not a GGUF type (0..12)", c->path, what,
                       type);
    kv->type = kv->elem_type = (GgufType)type;
    kv->n = 1;
    if (type == GGUF_ARRAY) { /* peek at the array header; skip_array checks it */
        if (need(c, 12, what)) return -1;
        kv->elem_type = (GgufType)load_le(c->buf + c->pos, 4);
        kv->n = load_le(c->buf + c->pos + 4, 8);
        kv->raw = c->buf + c->pos + 12;
    } else {
        kv->raw = c->buf + c->pos;
    }
    return skip_value(c, type, 0, what);
}

/* Strings the reader copies: STRING values and ARRAYs of STRING. */
static int has_strs(const GgufKV *kv) {
    return kv->type == GGUF_STRING || (kv->type == GGUF_ARRAY && kv->elem_type == GGUF_STRING);
}

/* Copies keys and strings into one arena (sized by a first pass over the validated KVs). */
static int fill_kvs(Gguf *g, const KvSpan *spans) {
    size_t n_strs = 0, bytes = 0;
    for (int i = 0; i < g->n_kvs; i++) {
        bytes += spans[i].key_len + 1;
        if (!has_strs(&g->kvs[i])) continue;
        const uint8_t *p = g->kvs[i].raw;
        for (uint64_t j = 0; j < g->kvs[i].n; j++) {
            uint64_t len = load_le(p, 8);
            bytes += len + 1;
            p += 8 + len;
        }
        n_strs += g->kvs[i].n;
    }
    GgufStr *strs = g->arena = malloc(n_strs * sizeof *strs + bytes + 1);
    if (!strs) return -1;
    char *chars = (char *)(strs + n_strs);
    for (int i = 0; i < g->n_kvs; i++) {
        GgufKV *kv = &g->kvs[i];
        memcpy(chars, spans[i].key, spans[i].key_len);
        chars[spans[i].key_len] = '\0';
        kv->key = chars;
        chars += spans[i].key_len + 1;
        if (!has_strs(kv)) continue;
        kv->strs = strs;
        const uint8_t *p = kv->raw;
        for (uint64_t j = 0; j < kv->n; j++, strs++) {
            strs->len = (size_t)load_le(p, 8);
            memcpy(chars, p + 8, strs->len);
            chars[strs->len] = '\0';
            strs->s = chars;
            chars += strs->len + 1;
            p += 8 + strs->len;
        }
    }
    return 0;
}

static int cmp_kv_key(const void *a, const void *b) {
    return strcmp((*(const GgufKV *const *)a)->key, (*(const GgufKV *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const GgufTensor *const *)a)->name, (*(const GgufTensor *const *)b)->name);
}

/* Sets *dup to the second of two of the n items (of `size` bytes at base) that cmp, given
 * pointers to pointers to them, finds equal; NULL when all differ. -1 when out of memory. */
static int find_duplicate(const void *base, size_t size, int n,
                          int (*cmp)(const void *, const void *), const void **dup) {
    const void **by = malloc((size_t)(n + 1) * sizeof *by);
    if (!by) return -1;
    for (int i = 0; i < n; i++) by[i] = (const char *)base + (size_t)i * size;
    qsort(by, (size_t)n, sizeof *by, cmp);
    *dup = NULL;
    for (int i = 1; i < n && !*dup; i++)
        if (cmp(&by[i - 1], &by[i]) == 0) *dup = by[i];
    free(by);
    return 0;
}

/* general.alignment: a UINT32 power of two, if present. */
static int read_alignment(Gguf *g, LfError *err) {
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *kv = gguf_find_kv(g, "general.alignment");
    if (!kv) return 0;
    if (kv->type != GGUF_UINT32)
        return lf_fail(err, "%s: general.alignment has type %s, expected UINT32", g->path,
                       gguf_type_name(kv->type));
    uint32_t a = (uint32_t)load_le(kv->raw, 4);
    if (a == 0 || (a & (a - 1)))
        return lf_fail(err, "%s: general.alignment %u is not a power of two", g->path, a);
    g->alignment = a;
    return 0;
}

static int parse_kvs(Gguf *g, Cursor *c, uint64_t n) {
    KvSpan *spans = calloc(n + 1, sizeof *spans);
    g->kvs = calloc(n + 1, sizeof *g->kvs);
    int rc = spans && g->kvs ? 0 : lf_fail(c->err, "%s: out of memory", g->path);
    for (uint64_t i = 0; rc == 0 && i < n; i++, g->n_kvs++)
        rc = parse_kv(c, (int)i, &g->kvs[i], &spans[i]);
    if (rc == 0 && fill_kvs(g, spans)) rc = lf_fail(c->err, "%s: out of memory", g->path);
    free(spans);
    const void *dup = NULL;
    if (rc == 0 && find_duplicate(g->kvs, sizeof *g->kvs, g->n_kvs, cmp_kv_key, &dup))
        rc = lf_fail(c->err, "%s: out of memory", g->path);
    if (rc == 0 && dup)
        rc = lf_fail(c->err, "%s: duplicate key '%s'", g->path, ((const GgufKV *)dup)->key);
    if (rc == 0) rc = read_alignment(g, c->err);
    return rc;
}

/* ---------------------------------------------------------------------- tensors ---- */

static void format_ne(char *buf, size_t cap, int n_dims, const int64_t *ne) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n_dims && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%" PRId64, i ? ", " : "", ne[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Bytes of a tensor of t->type and t->ne; -1 when ne[0] is not a whole number of blocks
 * or the element count or size overflows. */
static int tensor_nbytes(const GgufTensor *t, uint64_t *out) {
    int64_t be = quant_block_elems(t->type), numel = 1;
    if (t->ne[0] % be != 0) return -1;
    uint64_t n = (uint64_t)quant_block_bytes(t->type);
    for (int i = 0; i < GGUF_MAX_DIMS; i++)
        if (__builtin_mul_overflow(numel, t->ne[i], &numel) ||
            __builtin_mul_overflow(n, (uint64_t)(i ? t->ne[i] : t->ne[0] / be), &n))
            return -1;
    *out = n;
    return 0;
}

static int parse_tensor_info(Cursor *c, int i, GgufTensor *t) {
    char what[GGUF_MAX_NAME + 32];
    snprintf(what, sizeof what, "tensor info %d", i);
    const uint8_t *name;
    uint64_t len;
    if (read_str(c, &name, &len, what)) return -1;
    if (len == 0 || len >= GGUF_MAX_NAME || memchr(name, 0, len))
        return lf_fail(c->err,
                       "%s: tensor info %d: name is empty, has a NUL byte or is longer "
                       "than %d bytes",
                       c->path, i, GGUF_MAX_NAME - 1);
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    snprintf(what, sizeof what, "tensor '%s'", t->name);
    uint32_t n_dims, type;
    if (read_u32(c, &n_dims, what)) return -1;
    if (n_dims > GGUF_MAX_DIMS)
        return lf_fail(c->err, "%s: %s has %u dims, at most %d are allowed", c->path, what, n_dims,
                       GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t ne;
        if (read_u64(c, &ne, what)) return -1;
        if (ne > INT64_MAX)
            return lf_fail(c->err, "%s: %s: dim %d is %" PRIu64 ", over 2^63 - 1", c->path, what, d,
                           ne);
        t->ne[d] = (int64_t)ne;
    }
    if (read_u32(c, &type, what) || read_u64(c, &t->offset, what)) return -1;
    if (!quant_is_ggml(type))
        return lf_fail(c->err, "%s: %s: type id %u is not a ggml type", c->path, what, type);
    t->type = (GgmlType)type;
    uint64_t nbytes;
    if (tensor_nbytes(t, &nbytes) != 0) {
        char ne[160];
        format_ne(ne, sizeof ne, t->n_dims, t->ne);
        return lf_fail(c->err,
                       "%s: %s: dims %s of type %s overflow or ne[0] is not a multiple "
                       "of the block size %d",
                       c->path, what, ne, quant_type_name(type), quant_block_elems(type));
    }
    if (nbytes > SIZE_MAX) return lf_fail(c->err, "%s: %s is too large", c->path, what);
    t->nbytes = (size_t)nbytes;
    return 0;
}

/* Where one tensor's bytes lie in the data section; idx into g->tensors. */
typedef struct Span {
    uint64_t begin, end;
    int idx;
} Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Every tensor aligned and inside the data section, and no two sharing a byte. */
static int check_tensor_layout(Gguf *g, const Cursor *c, Span *spans) {
    LfError *err = c->err;
    uint64_t data_len = c->len - g->data_offset;
    for (int i = 0; i < g->n_tensors; i++) {
        GgufTensor *t = &g->tensors[i];
        if (t->offset % g->alignment)
            return lf_fail(err,
                           "%s: tensor '%s': offset %" PRIu64 " is not a multiple of the "
                           "alignment %u",
                           g->path, t->name, t->offset, g->alignment);
        if (t->offset > data_len || t->nbytes > data_len - t->offset)
            return lf_fail(err,
                           "%s: tensor '%s': bytes [%" PRIu64 ", %" PRIu64 ") of the data "
                           "section lie outside it (%" PRIu64 " bytes)",
                           g->path, t->name, t->offset, t->offset + t->nbytes, data_len);
        spans[i] = (Span){t->offset, t->offset + t->nbytes, i};
        t->data = c->buf + g->data_offset + t->offset;
    }
    qsort(spans, (size_t)g->n_tensors, sizeof *spans, cmp_span);
    uint64_t end = 0;
    int last = -1;
    for (int i = 0; i < g->n_tensors; i++) {
        if (spans[i].begin == spans[i].end) continue; /* empty tensors overlap nothing */
        if (last >= 0 && spans[i].begin < end)
            return lf_fail(err, "%s: tensor '%s' overlaps tensor '%s' in the data section", g->path,
                           g->tensors[spans[i].idx].name, g->tensors[last].name);
        end = spans[i].end;
        last = spans[i].idx;
    }
    return 0;
}

static int parse_tensors(Gguf *g, Cursor *c, uint64_t n) {
    g->tensors = calloc(n + 1, sizeof *g->tensors);
    Span *spans = calloc(n + 1, sizeof *spans);
    int rc = g->tensors && spans ? 0 : lf_fail(c->err, "%s: out of memory", g->path);
    for (uint64_t i = 0; rc == 0 && i < n; i++, g->n_tensors++)
        rc = parse_tensor_info(c, (int)i, &g->tensors[i]);
    const void *dup = NULL;
    if (rc == 0 &&
        find_duplicate(g->tensors, sizeof *g->tensors, g->n_tensors, cmp_tensor_name, &dup))
        rc = lf_fail(c->err, "%s: out of memory", g->path);
    if (rc == 0 && dup)
        rc = lf_fail(c->err, "%s: duplicate tensor name '%s'", g->path,
                     ((const GgufTensor *)dup)->name);
    if (rc == 0) {
        g->data_offset = (c->pos + g->alignment - 1) / g->alignment * g->alignment;
        if (n > 0 && g->data_offset > c->len)
            rc = lf_fail(c->err,
                         "%s: truncated: the data section would start at byte %zu "
                         "(after padding to %u), the file ends at %zu",
                         g->path, g->data_offset, g->alignment, c->len);
    }
    if (rc == 0 && n > 0) rc = check_tensor_layout(g, c, spans);
    free(spans);
    return rc;
}

/* ----------------------------------------------------------------------- header ---- */

static int parse_header(Gguf *g, Cursor *c) {
    if (c->len < 4)
        return lf_fail(c->err, "%s: file is %zu bytes, too short to be a GGUF file", g->path,
                       c->len);
    if (memcmp(c->buf, "GGUF", 4) != 0) {
        if (memcmp(c->buf, "FUGG", 4) == 0)
            return lf_fail(c->err, "%s: big-endian GGUF files are not supported", g->path);
        return lf_fail(c->err, "%s: not a GGUF file (the first 4 bytes are not \"GGUF\")", g->path);
    }
    c->pos = 4;
    uint64_t n_tensors, n_kvs;
    if (read_u32(c, &g->version, "the version")) return -1;
    if (g->version != 2 && g->version != 3)
        return lf_fail(c->err, "%s: GGUF version %u is not supported (only 2 and 3)", g->path,
                       g->version);
    if (read_u64(c, &n_tensors, "the tensor count") || read_u64(c, &n_kvs, "the key-value count"))
        return -1;
    size_t left = c->len - c->pos;
    if (n_kvs > left / MIN_KV_BYTES || n_kvs > INT_MAX)
        return lf_fail(c->err,
                       "%s: key-value count %" PRIu64 " cannot fit in the %zu bytes "
                       "left in the file",
                       g->path, n_kvs, left);
    if (n_tensors > left / MIN_TENSOR_BYTES || n_tensors > INT_MAX)
        return lf_fail(c->err,
                       "%s: tensor count %" PRIu64 " cannot fit in the %zu bytes "
                       "left in the file",
                       g->path, n_tensors, left);
    if (parse_kvs(g, c, n_kvs)) return -1;
    return parse_tensors(g, c, n_tensors);
}

int gguf_parse(Gguf *g, const void *buf, size_t len, const char *name, LfError *err) {
    memset(g, 0, sizeof *g);
    snprintf(g->path, sizeof g->path, "%s", name);
    Cursor c = {buf, len, 0, g->path, err};
    int rc = parse_header(g, &c);
    if (rc != 0) gguf_close(g);
    return rc;
}

int gguf_open(Gguf *g, const char *path, LfError *err) {
    memset(g, 0, sizeof *g);
    int fd;
    size_t size;
    if (file_open_read(path, &fd, &size, err)) return -1;
    if (size == 0) {
        close(fd);
        return gguf_parse(g, "", 0, path, err); /* reports the short file */
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lf_fail(err, "%s: mmap failed: %s", path, strerror(e));
    if (gguf_parse(g, map, size, path, err) != 0) {
        munmap(map, size);
        return -1;
    }
    g->map = map;
    g->map_size = size;
    return 0;
}

int gguf_kv_equal(const GgufKV *a, const GgufKV *b) {
    if (a->type != b->type || a->elem_type != b->elem_type || a->n != b->n) return 0;
    if (a->elem_type != GGUF_STRING)
        return memcmp(a->raw, b->raw, (size_t)a->n * gguf_type_size(a->elem_type)) == 0;
    for (uint64_t j = 0; j < a->n; j++)
        if (a->strs[j].len != b->strs[j].len || memcmp(a->strs[j].s, b->strs[j].s, a->strs[j].len))
            return 0;
    return 1;
}

int gguf_is_path(const char *path) {
    size_t n = strlen(path);
    return n >= 5 && strcmp(path + n - 5, ".gguf") == 0;
}

void gguf_close(Gguf *g) {
    if (g->map) munmap(g->map, g->map_size);
    free(g->kvs);
    free(g->tensors);
    free(g->arena);
    memset(g, 0, sizeof *g);
}

/* ---------------------------------------------------------------------- getters ---- */

const GgufKV *gguf_find_kv(const Gguf *g, const char *key) {
    for (int i = 0; i < g->n_kvs; i++)
        if (strcmp(g->kvs[i].key, key) == 0) return &g->kvs[i];
    return NULL;
}

static int is_int_type(uint32_t t) {
    return t <= GGUF_INT32 || t == GGUF_UINT64 || t == GGUF_INT64;
}
static int is_int_or_bool(uint32_t t) { /* llama.cpp reads a BOOL array as integers too */
    return is_int_type(t) || t == GGUF_BOOL;
}
static int is_float_type(uint32_t t) {
    return t == GGUF_FLOAT32 || t == GGUF_FLOAT64;
}
static int is_bool(uint32_t t) {
    return t == GGUF_BOOL;
}
static int is_string(uint32_t t) {
    return t == GGUF_STRING;
}
static int is_any(uint32_t t) {
    return t < N_TYPES;
}

/* Why kv (the KV `key`, or NULL) is not what a getter expected. */
static int kv_error(const Gguf *g, const char *key, const GgufKV *kv, const char *expected,
                    LfError *err) {
    if (!kv) return lf_fail(err, "%s: key '%s' not found", g->path, key);
    if (kv->type == GGUF_ARRAY)
        return lf_fail(err, "%s: key '%s' is an ARRAY of %s, expected %s", g->path, key,
                       gguf_type_name(kv->elem_type), expected);
    return lf_fail(err, "%s: key '%s' has type %s, expected %s", g->path, key,
                   gguf_type_name(kv->type), expected);
}

/* The KV `key` if it is a scalar of an accepted type; else NULL after filling err. */
static const GgufKV *scalar_kv(const Gguf *g, const char *key, int (*accept)(uint32_t),
                               const char *expected, LfError *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (kv && kv->type != GGUF_ARRAY && accept(kv->type)) return kv;
    kv_error(g, key, kv, expected, err);
    return NULL;
}

/* The KV `key` if it is an array of an accepted element type; else NULL after filling err. */
static const GgufKV *array_kv(const Gguf *g, const char *key, int (*accept)(uint32_t),
                              const char *expected, LfError *err) {
    const GgufKV *kv = gguf_find_kv(g, key);
    if (kv && kv->type == GGUF_ARRAY && accept(kv->elem_type)) return kv;
    kv_error(g, key, kv, expected, err);
    return NULL;
}

/* An integer value of type t at p, if it lies in [lo, hi]. */
static int load_int(const uint8_t *p, uint32_t t, int64_t lo, int64_t hi, int64_t *out) {
    uint64_t u = load_le(p, (int)gguf_type_size(t));
    int64_t s;
    switch (t) {
    case GGUF_INT8:
        s = (int8_t)u;
        break;
    case GGUF_INT16:
        s = (int16_t)u;
        break;
    case GGUF_INT32:
        s = (int32_t)u;
        break;
    case GGUF_INT64:
        s = (int64_t)u;
        break;
    default: /* unsigned */
        if (u > (uint64_t)hi) return -1;
        s = (int64_t)u;
    }
    if (s < lo || s > hi) return -1;
    *out = s;
    return 0;
}

static int get_int(const Gguf *g, const char *key, int64_t lo, int64_t hi, const char *want,
                   int64_t *out, LfError *err) {
    const GgufKV *kv = scalar_kv(g, key, is_int_type, want, err);
    if (!kv) return -1;
    if (load_int(kv->raw, kv->type, lo, hi, out) != 0)
        return lf_fail(err, "%s: key '%s': the %s value is out of range for %s", g->path, key,
                       gguf_type_name(kv->type), want);
    return 0;
}

int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, LfError *err) {
    int64_t v = 0;
    if (get_int(g, key, 0, UINT32_MAX, "an integer (u32)", &v, err)) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, LfError *err) {
    int64_t v = 0;
    if (get_int(g, key, INT32_MIN, INT32_MAX, "an integer (i32)", &v, err)) return -1;
    *out = (int32_t)v;
    return 0;
}

static float load_float(const uint8_t *p, uint32_t t) {
    uint64_t u = load_le(p, (int)gguf_type_size(t));
    if (t == GGUF_FLOAT64) {
        double d;
        memcpy(&d, &u, sizeof d);
        return (float)d;
    }
    uint32_t u32 = (uint32_t)u;
    float f;
    memcpy(&f, &u32, sizeof f);
    return f;
}

int gguf_get_f32(const Gguf *g, const char *key, float *out, LfError *err) {
    const GgufKV *kv = scalar_kv(g, key, is_float_type, "FLOAT32", err);
    if (!kv) return -1;
    *out = load_float(kv->raw, kv->type);
    return 0;
}

int gguf_get_bool(const Gguf *g, const char *key, int *out, LfError *err) {
    const GgufKV *kv = scalar_kv(g, key, is_bool, "BOOL", err);
    if (!kv) return -1;
    *out = kv->raw[0] != 0;
    return 0;
}

int gguf_get_str(const Gguf *g, const char *key, const GgufStr **out, LfError *err) {
    const GgufKV *kv = scalar_kv(g, key, is_string, "STRING", err);
    if (!kv) return -1;
    *out = kv->strs;
    return 0;
}

int gguf_get_arr_len(const Gguf *g, const char *key, size_t *n, LfError *err) {
    const GgufKV *kv = array_kv(g, key, is_any, "an ARRAY", err);
    if (!kv) return -1;
    *n = (size_t)kv->n;
    return 0;
}

int gguf_get_arr_str(const Gguf *g, const char *key, const GgufStr **strs, size_t *n,
                     LfError *err) {
    const GgufKV *kv = array_kv(g, key, is_string, "an ARRAY of STRING", err);
    if (!kv) return -1;
    *strs = kv->strs;
    *n = (size_t)kv->n;
    return 0;
}

/* The numeric array `key`, checked to hold exactly n elements of an accepted type. */
static const GgufKV *numeric_array(const Gguf *g, const char *key, int (*accept)(uint32_t),
                                   const char *expected, size_t n, LfError *err) {
    const GgufKV *kv = array_kv(g, key, accept, expected, err);
    if (kv && kv->n != n) {
        lf_fail(err, "%s: key '%s' has %" PRIu64 " elements, expected %zu", g->path, key, kv->n, n);
        return NULL;
    }
    return kv;
}

int gguf_get_arr_i32(const Gguf *g, const char *key, int32_t *out, size_t n, LfError *err) {
    const GgufKV *kv = numeric_array(g, key, is_int_or_bool, "an ARRAY of integers", n, err);
    if (!kv) return -1;
    size_t size = gguf_type_size(kv->elem_type);
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (load_int(kv->raw + i * size, kv->elem_type, INT32_MIN, INT32_MAX, &v) != 0)
            return lf_fail(err, "%s: key '%s': element %zu is out of range for i32", g->path, key,
                           i);
        out[i] = (int32_t)v;
    }
    return 0;
}

int gguf_get_arr_f32(const Gguf *g, const char *key, float *out, size_t n, LfError *err) {
    const GgufKV *kv = numeric_array(g, key, is_float_type, "an ARRAY of FLOAT32", n, err);
    if (!kv) return -1;
    size_t size = gguf_type_size(kv->elem_type);
    for (size_t i = 0; i < n; i++) out[i] = load_float(kv->raw + i * size, kv->elem_type);
    return 0;
}

/* ---------------------------------------------------------------- tensor access ---- */

const GgufTensor *gguf_find_tensor(const Gguf *g, const char *name) {
    for (int i = 0; i < g->n_tensors; i++)
        if (strcmp(g->tensors[i].name, name) == 0) return &g->tensors[i];
    return NULL;
}

int64_t gguf_numel(const GgufTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < GGUF_MAX_DIMS; i++) n *= t->ne[i];
    return n;
}

int gguf_shape_hf(const GgufTensor *t, int64_t shape[GGUF_MAX_DIMS]) {
    for (int i = 0; i < t->n_dims; i++) shape[i] = t->ne[t->n_dims - 1 - i];
    return t->n_dims;
}

int gguf_read_f32(const Gguf *g, const char *name, int ndim, const int64_t *shape, float *out,
                  LfError *err) {
    const GgufTensor *t = gguf_find_tensor(g, name);
    if (!t) return lf_fail(err, "%s: tensor '%s' not found", g->path, name);
    int64_t hf[GGUF_MAX_DIMS];
    int n = gguf_shape_hf(t, hf);
    if (n != ndim || memcmp(hf, shape, (size_t)n * sizeof *hf) != 0) {
        char want[160], got[160];
        format_ne(want, sizeof want, ndim, shape);
        format_ne(got, sizeof got, n, hf);
        return lf_fail(err, "%s: tensor '%s' has shape %s, expected %s", g->path, name, got, want);
    }
    if (!quant_can_dequantize(t->type))
        return lf_fail(err,
                       "%s: tensor '%s' has type %s, which loraft cannot dequantise "
                       "(supported: %s)",
                       g->path, name, quant_type_name(t->type), quant_dequantize_list());
    quant_dequantize(t->type, t->data, out, gguf_numel(t));
    return 0;
}
