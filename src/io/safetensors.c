/* safetensors.c: validating mmap reader and atomic writer for safetensors
 * files, plus the f16/bf16 <-> f32 conversions. The header parser trusts
 * nothing: every rule it enforces is listed in docs/FORMATS.md and has a test
 * in tests/test_safetensors.c and a fuzzer in tests/fuzz/. Assumes a
 * little-endian host (x86-64, aarch64), as the format does. */
#include "loraft/safetensors.h"

#include "loraft/fileio.h"
#include "loraft/quant_block.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2},   [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4},   [ST_I16] = {"I16", 2},   [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtype_info / sizeof dtype_info[0]))
#define DTYPE_LIST "F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL"

/* The reference implementation refuses headers over 100 MB before parsing them.
 */
#define ST_MAX_HEADER 100000000ull

const char *st_dtype_name(StDtype d) {
    return (unsigned)d < N_DTYPES ? dtype_info[d].name : "?";
}
size_t st_dtype_size(StDtype d) {
    return (unsigned)d < N_DTYPES ? dtype_info[d].size : 0;
}

int64_t st_numel(const StTensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

/* ---------------------------------------------------------------- conversions
 * ---- */

float bf16_to_f32(uint16_t h) {
    return qb_bf16(h);
}

uint16_t f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1)) >> 16);
}

float f16_to_f32(uint16_t h) {
    return qb_f16(h);
}

/* Drops the low `shift` bits of v, rounding to nearest, ties to even. */
static uint32_t round_shift(uint32_t v, unsigned shift) {
    uint32_t q = v >> shift, rem = v & ((1u << shift) - 1), half = 1u << (shift - 1);
    return q + (rem > half || (rem == half && (q & 1)));
}

uint16_t f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    uint32_t sign = (x >> 16) & 0x8000, ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((ax >> 13) & 0x3ff));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (ax < 0x33000000u) return (uint16_t)sign;             /* <= 2^-25 rounds to 0 */
    if (ax < 0x38800000u) {                                  /* f16 subnormal: units of 2^-24 */
        uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
        return (uint16_t)(sign | round_shift(m, 126 - e));
    }
    /* Normal: rebias the exponent (127 -> 15); a mantissa carry correctly bumps
     * it. */
    return (uint16_t)(sign | round_shift(ax - (112u << 23), 13));
}

/* ------------------------------------------------------------------- reading
 * ---- */

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape) {
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
}

/* Bytes of a dtype x shape tensor; -1 on a negative dimension or overflow. */
static int shape_nbytes(StDtype dtype, int ndim, const int64_t *shape, uint64_t *out) {
    uint64_t n = st_dtype_size(dtype);
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)shape[i], &n)) return -1;
    *out = n;
    return 0;
}

/* A JSON number holding an integer in [0, 2^53], the range a double represents
 * exactly. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return -1;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v)) return -1;
    *out = (uint64_t)v;
    return 0;
}

static int parse_dtype(const cJSON *j, StDtype *out) {
    if (!cJSON_IsString(j)) return -1;
    for (int i = 0; i < N_DTYPES; i++)
        if (strcmp(j->valuestring, dtype_info[i].name) == 0) {
            *out = (StDtype)i;
            return 0;
        }
    return -1;
}

static int parse_shape(const cJSON *shape, StTensor *t) {
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > ST_MAX_DIMS) return -1;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        uint64_t d;
        if (json_uint(dim, &d) != 0) return -1;
        t->shape[t->ndim++] = (int64_t)d;
    }
    return 0;
}

/* Where one tensor's bytes lie in the data block; idx into st->tensors. */
typedef struct Span {
    uint64_t begin, end;
    int idx;
} Span;

/* Parses one header entry into t and span, checking it against the data block
 * size. */
static int parse_entry(const char *file, const cJSON *item, uint64_t data_len, StTensor *t,
                       Span *span, LfError *err) {
    const char *name = item->string;
    if (strlen(name) >= ST_MAX_NAME)
        return lf_fail(err, "%s: tensor name '%.40s...' is longer than %d bytes", file, name,
                       ST_MAX_NAME - 1);
    memcpy(t->name, name, strlen(name) + 1);
    if (!cJSON_IsObject(item))
        return lf_fail(err, "%s: tensor '%s': entry is not a JSON object", file, name);
    if (parse_dtype(cJSON_GetObjectItemCaseSensitive(item, "dtype"), &t->dtype) != 0)
        return lf_fail(err,
                       "%s: tensor '%s': missing or invalid dtype (expected a "
                       "string, one of %s)",
                       file, name, DTYPE_LIST);

    if (parse_shape(cJSON_GetObjectItemCaseSensitive(item, "shape"), t) != 0)
        return lf_fail(err,
                       "%s: tensor '%s': shape must be a list of at most %d "
                       "non-negative integers",
                       file, name, ST_MAX_DIMS);

    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        json_uint(offs->child, &span->begin) != 0 || json_uint(offs->child->next, &span->end) != 0)
        return lf_fail(err,
                       "%s: tensor '%s': data_offsets must be [begin, end], two "
                       "non-negative integers",
                       file, name);
    unsigned long long b = span->begin, e = span->end;
    if (b > e)
        return lf_fail(err, "%s: tensor '%s': data_offsets [%llu, %llu] have begin > end", file,
                       name, b, e);
    if (e > data_len)
        return lf_fail(err,
                       "%s: tensor '%s': data_offsets [%llu, %llu] lie outside the "
                       "data block of %llu bytes",
                       file, name, b, e, (unsigned long long)data_len);

    uint64_t need;
    char shp[200];
    format_shape(shp, sizeof shp, t->ndim, t->shape);
    if (shape_nbytes(t->dtype, t->ndim, t->shape, &need) != 0 || need != e - b)
        return lf_fail(err,
                       "%s: tensor '%s': shape %s x %s does not match the byte "
                       "length %llu of data_offsets [%llu, %llu]",
                       file, name, shp, st_dtype_name(t->dtype), e - b, b, e);
    t->nbytes = (size_t)need;
    return 0;
}

static int parse_metadata(SafeTensors *st, const cJSON *m, LfError *err) {
    if (st->metadata) return lf_fail(err, "%s: __metadata__ appears more than once", st->path);
    if (!cJSON_IsObject(m))
        return lf_fail(err, "%s: __metadata__ must be an object of string -> string", st->path);
    st->metadata = calloc(2 * (size_t)cJSON_GetArraySize(m) + 1, sizeof *st->metadata);
    if (!st->metadata) return lf_fail(err, "%s: out of memory", st->path);
    int n = 0;
    const cJSON *kv;
    cJSON_ArrayForEach(kv, m) {
        if (!cJSON_IsString(kv))
            return lf_fail(err,
                           "%s: __metadata__ must be an object of string -> string "
                           "('%s' is not a string)",
                           st->path, kv->string);
        if (!(st->metadata[n++] = strdup(kv->string)) ||
            !(st->metadata[n++] = strdup(kv->valuestring)))
            return lf_fail(err, "%s: out of memory", st->path);
    }
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b) {
    return strcmp((*(const StTensor *const *)a)->name, (*(const StTensor *const *)b)->name);
}

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* cJSON keeps duplicate keys: sort the names and compare neighbours. */
static int check_unique_names(const SafeTensors *st, LfError *err) {
    const StTensor **by_name = malloc((size_t)(st->n_tensors + 1) * sizeof *by_name);
    if (!by_name) return lf_fail(err, "%s: out of memory", st->path);
    for (int i = 0; i < st->n_tensors; i++) by_name[i] = &st->tensors[i];
    qsort(by_name, (size_t)st->n_tensors, sizeof *by_name, cmp_tensor_name);
    int rc = 0;
    for (int i = 1; i < st->n_tensors && rc == 0; i++)
        if (strcmp(by_name[i - 1]->name, by_name[i]->name) == 0)
            rc = lf_fail(err, "%s: duplicate tensor name '%s' in the header", st->path,
                         by_name[i]->name);
    free(by_name);
    return rc;
}

/* The tensors, sorted by offsets, must tile the data block exactly: no overlap,
 * no hole. */
static int check_layout(const SafeTensors *st, Span *spans, uint64_t data_len, LfError *err) {
    qsort(spans, (size_t)st->n_tensors, sizeof *spans, cmp_span);
    uint64_t pos = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        const char *name = st->tensors[spans[i].idx].name;
        if (spans[i].begin < pos)
            return lf_fail(err, "%s: tensor '%s' overlaps tensor '%s' in the data block", st->path,
                           name, st->tensors[spans[i - 1].idx].name);
        if (spans[i].begin > pos)
            return lf_fail(err,
                           "%s: hole in the data block: bytes [%llu, %llu) before "
                           "tensor '%s' belong to no tensor",
                           st->path, (unsigned long long)pos, (unsigned long long)spans[i].begin,
                           name);
        pos = spans[i].end;
    }
    if (pos != data_len)
        return lf_fail(err,
                       "%s: hole in the data block: bytes [%llu, %llu) at its end "
                       "belong to no tensor",
                       st->path, (unsigned long long)pos, (unsigned long long)data_len);
    return 0;
}

static int parse_header(SafeTensors *st, const cJSON *header, const unsigned char *data,
                        uint64_t data_len, LfError *err) {
    size_t cap = (size_t)cJSON_GetArraySize(header) + 1;
    st->tensors = calloc(cap, sizeof *st->tensors);
    Span *spans = calloc(cap, sizeof *spans);
    int rc = st->tensors && spans ? 0 : lf_fail(err, "%s: out of memory", st->path);
    const cJSON *item;
    cJSON_ArrayForEach(item, header) {
        if (rc != 0) break;
        if (strcmp(item->string, "__metadata__") == 0) {
            rc = parse_metadata(st, item, err);
            continue;
        }
        int i = st->n_tensors;
        rc = parse_entry(st->path, item, data_len, &st->tensors[i], &spans[i], err);
        if (rc != 0) break;
        st->tensors[i].data = data + spans[i].begin;
        spans[i].idx = i;
        st->n_tensors++;
    }
    if (rc == 0) rc = check_unique_names(st, err);
    if (rc == 0) rc = check_layout(st, spans, data_len, err);
    free(spans);
    return rc;
}

int safetensors_parse(SafeTensors *st, const void *buf, size_t len, const char *name,
                      LfError *err) {
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", name);
    const unsigned char *p = buf;
    if (len == 0) return lf_fail(err, "%s: empty file (0 bytes), not a safetensors file", name);
    if (len < 8)
        return lf_fail(err, "%s: file is %zu bytes, shorter than 8 bytes (the header length field)",
                       name, len);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)p[i] << (8 * i);
    if (n > len - 8)
        return lf_fail(err,
                       "%s: header length %llu is larger than the %zu bytes after "
                       "the length field",
                       name, (unsigned long long)n, len - 8);
    if (n > ST_MAX_HEADER)
        return lf_fail(err, "%s: header length %llu is over the %llu-byte limit", name,
                       (unsigned long long)n, ST_MAX_HEADER);
    const char *json = (const char *)p + 8, *end = NULL;
    if (memchr(json, '\0', n))
        return lf_fail(err, "%s: header is not valid JSON (it contains a NUL byte)", name);
    cJSON *header = cJSON_ParseWithLengthOpts(json, n, &end, 0);
    if (!header)
        return lf_fail(err, "%s: header is not valid JSON (error at byte %td of the header)", name,
                       end ? end - json : 0);
    while (end < json + n && strchr(" \t\r\n", *end)) end++; /* padding is allowed */
    int rc = 0;
    if (end != json + n)
        rc = lf_fail(err,
                     "%s: header is not valid JSON (trailing bytes after the "
                     "object at byte %td)",
                     name, end - json);
    else if (!cJSON_IsObject(header))
        rc = lf_fail(err, "%s: header is not a JSON object", name);
    else
        rc = parse_header(st, header, p + 8 + n, len - 8 - n, err);
    cJSON_Delete(header);
    if (rc != 0) safetensors_close(st);
    return rc;
}

int safetensors_open(SafeTensors *st, const char *path, LfError *err) {
    memset(st, 0, sizeof *st);
    int fd;
    size_t size;
    if (file_open_read(path, &fd, &size, err)) return -1;
    if (size == 0) {
        close(fd);
        return safetensors_parse(st, "", 0, path, err); /* reports the empty file */
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lf_fail(err, "%s: mmap failed: %s", path, strerror(e));
    if (safetensors_parse(st, map, size, path, err) != 0) {
        munmap(map, size);
        return -1;
    }
    st->map = map;
    st->map_size = size;
    return 0;
}

void safetensors_close(SafeTensors *st) {
    if (st->map) munmap(st->map, st->map_size);
    for (char **kv = st->metadata; kv && *kv; kv++) free(*kv);
    free(st->metadata);
    free(st->tensors);
    memset(st, 0, sizeof *st);
}

const StTensor *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *safetensors_metadata(const SafeTensors *st, const char *key) {
    for (char **kv = st->metadata; kv && kv[0] && kv[1]; kv += 2)
        if (strcmp(kv[0], key) == 0) return kv[1];
    return NULL;
}

int safetensors_read_f32(const SafeTensors *st, const char *name, int ndim, const int64_t *shape,
                         float *out, LfError *err) {
    const StTensor *t = safetensors_find(st, name);
    if (!t) return lf_fail(err, "%s: tensor '%s' not found", st->path, name);
    if (t->ndim != ndim || memcmp(t->shape, shape, (size_t)ndim * sizeof *shape) != 0) {
        char want[200], got[200];
        format_shape(want, sizeof want, ndim, shape);
        format_shape(got, sizeof got, t->ndim, t->shape);
        return lf_fail(err, "%s: tensor '%s' has shape %s, expected %s", st->path, name, got, want);
    }
    size_t n = (size_t)st_numel(t);
    const unsigned char *src = t->data;
    if (t->dtype == ST_F32) {
        memcpy(out, src, n * sizeof *out);
        return 0;
    }
    if (t->dtype != ST_F16 && t->dtype != ST_BF16)
        return lf_fail(err, "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", st->path,
                       name, st_dtype_name(t->dtype));
    float (*convert)(uint16_t) = t->dtype == ST_F16 ? f16_to_f32 : bf16_to_f32;
    for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, sizeof h);
        out[i] = convert(h);
    }
    return 0;
}

/* ------------------------------------------------------------------- writing
 * ---- */

/* Adds one entry's header record at byte offset *offset and advances it. */
static int add_entry(cJSON *header, const StEntry *e, uint64_t *offset, const char *path,
                     LfError *err) {
    const char *name = e->name ? e->name : "";
    if (!*name || strlen(name) >= ST_MAX_NAME || strcmp(name, "__metadata__") == 0)
        return lf_fail(err, "%s: invalid tensor name '%.40s' (empty, reserved or over %d bytes)",
                       path, name, ST_MAX_NAME - 1);
    if (cJSON_GetObjectItemCaseSensitive(header, name))
        return lf_fail(err, "%s: duplicate tensor name '%s'", path, name);
    uint64_t nbytes;
    if ((unsigned)e->dtype >= N_DTYPES || e->ndim < 0 || e->ndim > ST_MAX_DIMS ||
        shape_nbytes(e->dtype, e->ndim, e->shape, &nbytes) != 0 || (nbytes && !e->data))
        return lf_fail(err, "%s: tensor '%s': invalid dtype, shape or data", path, name);
    char shape[200], offsets[64];
    int n = snprintf(shape, sizeof shape, "[");
    for (int i = 0; i < e->ndim; i++)
        n += snprintf(shape + n, sizeof shape - (size_t)n, "%s%lld", i ? "," : "",
                      (long long)e->shape[i]);
    snprintf(shape + n, sizeof shape - (size_t)n, "]");
    snprintf(offsets, sizeof offsets, "[%llu,%llu]", (unsigned long long)*offset,
             (unsigned long long)(*offset + nbytes));
    *offset += nbytes;
    cJSON *rec = cJSON_CreateObject();
    if (!cJSON_AddItemToObject(header, name, rec) ||
        !cJSON_AddStringToObject(rec, "dtype", st_dtype_name(e->dtype)) ||
        !cJSON_AddRawToObject(rec, "shape", shape) ||
        !cJSON_AddRawToObject(rec, "data_offsets", offsets))
        return lf_fail(err, "%s: out of memory", path);
    return 0;
}

/* The header JSON (unpadded, malloc'd) for entries laid out in order; NULL on
 * error. */
static char *build_header(const char *path, const StEntry *entries, int n,
                          const char *const *metadata_kv, LfError *err) {
    cJSON *header = cJSON_CreateObject();
    int rc = header ? 0 : lf_fail(err, "%s: out of memory", path);
    if (rc == 0 && metadata_kv) {
        cJSON *meta = cJSON_AddObjectToObject(header, "__metadata__");
        for (const char *const *kv = metadata_kv; rc == 0 && *kv; kv += 2) {
            if (!kv[1])
                rc = lf_fail(err, "%s: metadata key '%s' has no value", path, kv[0]);
            else if (!cJSON_AddStringToObject(meta, kv[0], kv[1]))
                rc = lf_fail(err, "%s: out of memory", path);
        }
    }
    uint64_t offset = 0;
    for (int i = 0; rc == 0 && i < n; i++) rc = add_entry(header, &entries[i], &offset, path, err);
    char *json = rc == 0 ? cJSON_PrintUnformatted(header) : NULL;
    if (rc == 0 && !json) lf_fail(err, "%s: out of memory", path);
    cJSON_Delete(header);
    return json;
}

int safetensors_write(const char *path, const StEntry *entries, int n,
                      const char *const *metadata_kv, LfError *err) {
    char *json = build_header(path, entries, n, metadata_kv, err);
    if (!json) return -1;
    size_t len = strlen(json), padded = (len + 7) & ~(size_t)7;
    unsigned char len_field[8];
    for (int i = 0; i < 8; i++) len_field[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    AtomicFile f;
    int rc = atomic_file_open(&f, path, err);
    if (rc == 0) rc = atomic_file_write(&f, len_field, sizeof len_field, err);
    if (rc == 0) rc = atomic_file_write(&f, json, len, err);
    if (rc == 0) rc = atomic_file_write(&f, "        ", padded - len, err);
    for (int i = 0; rc == 0 && i < n; i++) {
        uint64_t nbytes = 0;
        shape_nbytes(entries[i].dtype, entries[i].ndim, entries[i].shape, &nbytes);
        rc = atomic_file_write(&f, entries[i].data, (size_t)nbytes, err);
    }
    if (rc == 0) rc = atomic_file_commit(&f, err);
    free(json);
    return rc;
}

/* ---- sharded checkpoints ---- */

/* A shard's name in the index: a plain file beside it (no directory, no "..") */
static int plain_file_name(const char *s) {
    return *s && strlen(s) < 256 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* The open shard of that file name, NULL if none */
static const SafeTensors *shard_named(const StShards *s, const char *file) {
    for (int i = 0; i < s->n; i++)
        if (!strcmp(strrchr(s->files[i].path, '/') + 1, file)) return &s->files[i];
    return NULL;
}

/* Opens every shard the weight_map names once (in order of first mention), then checks that each
 * holds its tensors. */
static int open_shards(StShards *s, const char *dir, const cJSON *map, LfError *err) {
    const cJSON *e;
    int n = cJSON_GetArraySize(map);
    if (!n) return lf_fail(err, "%s: the weight_map is empty", s->path);
    s->files = calloc((size_t)n, sizeof *s->files);
    if (!s->files) return lf_fail(err, "out of memory");
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring))
            return lf_fail(err, "%s: weight_map['%.200s'] must name a file beside the index",
                           s->path, e->string);
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, e->valuestring);
        if (!shard_named(s, e->valuestring) && safetensors_open(&s->files[s->n++], path, err))
            return -1;
    }
    cJSON_ArrayForEach(e, map) {
        if (!safetensors_find(shard_named(s, e->valuestring), e->string))
            return lf_fail(err, "%s: weight_map puts '%.200s' in %s, which does not hold it",
                           s->path, e->string, e->valuestring);
    }
    return 0;
}

int st_shards_open(StShards *s, const char *dir, LfError *err) {
    memset(s, 0, sizeof *s);
    char one[sizeof s->path];
    snprintf(one, sizeof one, "%s/model.safetensors", dir);
    snprintf(s->path, sizeof s->path, "%s/model.safetensors.index.json", dir);
    /* transformers' order: the one file where it is there (and its errors where neither is) */
    if (access(one, F_OK) == 0 || access(s->path, F_OK) != 0) {
        memcpy(s->path, one, sizeof one);
        s->files = calloc(1, sizeof *s->files);
        if (!s->files) return lf_fail(err, "out of memory");
        s->n = 1;
        if (!safetensors_open(&s->files[0], s->path, err)) return 0;
        st_shards_close(s);
        return -1;
    }
    char *text;
    size_t len;
    if (file_read_all(s->path, &text, &len, err)) return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    int rc = !root                  ? lf_fail(err, "%s: not valid JSON", s->path)
             : !cJSON_IsObject(map) ? lf_fail(err, "%s: no weight_map object", s->path)
                                    : open_shards(s, dir, map, err);
    cJSON_Delete(root);
    if (rc) st_shards_close(s);
    return rc;
}

const SafeTensors *st_shards_find(const StShards *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (safetensors_find(&s->files[i], name)) return &s->files[i];
    return NULL;
}

void st_shards_close(StShards *s) {
    for (int i = 0; i < s->n; i++) safetensors_close(&s->files[i]);
    free(s->files);
    memset(s, 0, sizeof *s);
}
