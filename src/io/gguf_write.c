/* gguf_write.c: atomic GGUF v3 writer (see gguf_write in gguf.h), for tests and for
 * exporting to llama.cpp. The header (KVs and tensor infos) is built in memory, then it and
 * the tensor data stream through src/fileio.c's AtomicFile, each tensor (the last one too,
 * as llama.cpp expects) padded to the alignment. It writes what it is given: no quantisation, no
 * nested arrays, and it does not know which keys an architecture needs. */
#include "loraft/gguf.h"

#include "loraft/fileio.h"

#include <stdlib.h>
#include <string.h>

/* A growing byte buffer; after a failed allocation it stays failed and writes nothing. */
typedef struct Buf {
    unsigned char *p;
    size_t len, cap;
    int oom;
} Buf;

static void put(Buf *b, const void *data, size_t n) {
    if (b->oom || n == 0) return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_le(Buf *b, uint64_t v, int bytes) {
    unsigned char le[8];
    for (int i = 0; i < bytes; i++) le[i] = (unsigned char)(v >> (8 * i));
    put(b, le, (size_t)bytes);
}

static void put_strn(Buf *b, const char *s, size_t len) {
    put_le(b, len, 8);
    put(b, s, len);
}

static void put_str(Buf *b, const char *s) {
    put_strn(b, s, strlen(s));
}

/* One scalar value of kv's type (not ARRAY). */
static void put_scalar(Buf *b, const GgufWriteKV *kv) {
    switch (kv->type) {
    case GGUF_UINT8:
    case GGUF_UINT16:
    case GGUF_UINT32:
    case GGUF_UINT64:
        put_le(b, kv->u, (int)gguf_type_size(kv->type));
        break;
    case GGUF_INT8:
    case GGUF_INT16:
    case GGUF_INT32:
    case GGUF_INT64:
        put_le(b, (uint64_t)kv->i, (int)gguf_type_size(kv->type));
        break;
    case GGUF_FLOAT32: {
        float f = (float)kv->f;
        uint32_t u;
        memcpy(&u, &f, sizeof u);
        put_le(b, u, 4);
        break;
    }
    case GGUF_FLOAT64: {
        uint64_t u;
        memcpy(&u, &kv->f, sizeof u);
        put_le(b, u, 8);
        break;
    }
    case GGUF_BOOL:
        put_le(b, kv->b != 0, 1);
        break;
    default:
        put_str(b, kv->s);
        break; /* STRING */
    }
}

static int check_kv(const char *path, const GgufWriteKV *kvs, int i, LfError *err) {
    const GgufWriteKV *kv = &kvs[i];
    if (!kv->key || !*kv->key || strcmp(kv->key, "general.alignment") == 0)
        return lf_fail(err,
                       "%s: key %d is empty or general.alignment (pass the alignment "
                       "to gguf_write instead)",
                       path, i);
    for (int j = 0; j < i; j++)
        if (strcmp(kvs[j].key, kv->key) == 0)
            return lf_fail(err, "%s: duplicate key '%s'", path, kv->key);
    if (kv->copy) return 0; /* validated by the reader */
    int bad_type = (unsigned)kv->type > GGUF_FLOAT64 || (kv->type == GGUF_STRING && !kv->s) ||
                   (kv->type == GGUF_ARRAY && ((unsigned)kv->elem_type > GGUF_FLOAT64 ||
                                               kv->elem_type == GGUF_ARRAY || (kv->n && !kv->arr)));
    if (bad_type)
        return lf_fail(err, "%s: key '%s': invalid type, element type or missing value", path,
                       kv->key);
    if (kv->type == GGUF_ARRAY && kv->elem_type == GGUF_STRING)
        for (uint64_t j = 0; j < kv->n; j++)
            if (!((const char *const *)kv->arr)[j])
                return lf_fail(err, "%s: key '%s': string %llu is NULL", path, kv->key,
                               (unsigned long long)j);
    return 0;
}

/* The type and value of a KV read from a file, byte for byte. */
static void put_copy(Buf *b, const GgufKV *src) {
    put_le(b, src->type, 4);
    if (src->type == GGUF_ARRAY) {
        put_le(b, src->elem_type, 4);
        put_le(b, src->n, 8);
    }
    if (src->elem_type == GGUF_STRING)
        for (uint64_t j = 0; j < src->n; j++) put_strn(b, src->strs[j].s, src->strs[j].len);
    else
        put(b, src->raw, (size_t)src->n * gguf_type_size(src->elem_type));
}

static void put_kv(Buf *b, const GgufWriteKV *kv) {
    put_str(b, kv->key);
    if (kv->copy) {
        put_copy(b, kv->copy);
        return;
    }
    put_le(b, kv->type, 4);
    if (kv->type != GGUF_ARRAY) {
        put_scalar(b, kv);
        return;
    }
    put_le(b, kv->elem_type, 4);
    put_le(b, kv->n, 8);
    if (kv->elem_type == GGUF_STRING)
        for (uint64_t j = 0; j < kv->n; j++) put_str(b, ((const char *const *)kv->arr)[j]);
    else
        put(b, kv->arr, (size_t)kv->n * gguf_type_size(kv->elem_type));
}

/* Checks tensor i and gives its size in bytes. */
static int tensor_size(const char *path, const GgufWriteTensor *ts, int i, size_t *nbytes,
                       LfError *err) {
    const GgufWriteTensor *t = &ts[i];
    const char *name = t->name ? t->name : "";
    if (!*name || strlen(name) >= GGUF_MAX_NAME)
        return lf_fail(err, "%s: tensor %d: name is empty or over %d bytes", path, i,
                       GGUF_MAX_NAME - 1);
    for (int j = 0; j < i; j++)
        if (strcmp(ts[j].name, name) == 0)
            return lf_fail(err, "%s: duplicate tensor name '%s'", path, name);
    int be = quant_block_elems(t->type);
    uint64_t n = (uint64_t)quant_block_bytes(t->type);
    int ok = quant_is_ggml(t->type) && t->n_dims >= 1 && t->n_dims <= GGUF_MAX_DIMS &&
             t->ne[0] % be == 0;
    for (int d = 0; ok && d < t->n_dims; d++)
        ok = t->ne[d] >= 0 &&
             !__builtin_mul_overflow(n, (uint64_t)(d ? t->ne[d] : t->ne[d] / be), &n);
    if (!ok || n > SIZE_MAX || (n && !t->data))
        return lf_fail(err,
                       "%s: tensor '%s': invalid type, dims or data (ne[0] must be a "
                       "multiple of the block size)",
                       path, name);
    *nbytes = (size_t)n;
    return 0;
}

static size_t pad_to(size_t pos, uint32_t alignment) {
    return (pos + alignment - 1) / alignment * alignment;
}

/* The whole header, padded to the alignment; sizes[i] gets tensor i's bytes. */
static int build_header(Buf *b, const char *path, const GgufWriteKV *kvs, int n_kvs,
                        const GgufWriteTensor *ts, int n, uint32_t alignment, size_t *sizes,
                        LfError *err) {
    put(b, "GGUF", 4);
    put_le(b, 3, 4);
    put_le(b, (uint64_t)n, 8);
    put_le(b, (uint64_t)n_kvs + (alignment != GGUF_DEFAULT_ALIGNMENT), 8);
    if (alignment != GGUF_DEFAULT_ALIGNMENT) {
        put_str(b, "general.alignment");
        put_le(b, GGUF_UINT32, 4);
        put_le(b, alignment, 4);
    }
    for (int i = 0; i < n_kvs; i++) {
        if (check_kv(path, kvs, i, err)) return -1;
        put_kv(b, &kvs[i]);
    }
    uint64_t offset = 0;
    for (int i = 0; i < n; i++) {
        if (tensor_size(path, ts, i, &sizes[i], err)) return -1;
        put_str(b, ts[i].name);
        put_le(b, (uint64_t)ts[i].n_dims, 4);
        for (int d = 0; d < ts[i].n_dims; d++) put_le(b, (uint64_t)ts[i].ne[d], 8);
        put_le(b, ts[i].type, 4);
        put_le(b, offset, 8);
        offset = pad_to(offset + sizes[i], alignment);
    }
    for (size_t pad = pad_to(b->len, alignment) - b->len; pad; pad--) put_le(b, 0, 1);
    return b->oom ? lf_fail(err, "%s: out of memory", path) : 0;
}

/* Writes len zero bytes. */
static int write_zeros(AtomicFile *f, size_t len, LfError *err) {
    static const unsigned char zeros[4096];
    for (size_t n; len; len -= n) {
        n = len < sizeof zeros ? len : sizeof zeros;
        if (atomic_file_write(f, zeros, n, err)) return -1;
    }
    return 0;
}

int gguf_write(const char *path, const GgufWriteKV *kvs, int n_kvs, const GgufWriteTensor *ts,
               int n, uint32_t alignment, LfError *err) {
    if (alignment == 0 || (alignment & (alignment - 1)) || n < 0 || n_kvs < 0)
        return lf_fail(err, "%s: alignment %u is not a power of two, or a count is negative", path,
                       alignment);
    Buf b = {0};
    size_t *sizes = calloc((size_t)n + 1, sizeof *sizes);
    int rc = sizes ? build_header(&b, path, kvs, n_kvs, ts, n, alignment, sizes, err)
                   : lf_fail(err, "%s: out of memory", path);
    AtomicFile f;
    if (rc == 0) rc = atomic_file_open(&f, path, err);
    if (rc == 0) {
        rc = atomic_file_write(&f, b.p, b.len, err);
        for (int i = 0; rc == 0 && i < n; i++) {
            rc = atomic_file_write(&f, ts[i].data, sizes[i], err);
            if (rc == 0) /* llama.cpp reads the last tensor's padding too */
                rc = write_zeros(&f, pad_to(sizes[i], alignment) - sizes[i], err);
        }
        rc = rc == 0 ? atomic_file_commit(&f, err) : (atomic_file_abort(&f), -1);
    }
    free(sizes);
    free(b.p);
    return rc;
}
