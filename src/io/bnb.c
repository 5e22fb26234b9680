/* bnb.c: bitsandbytes 4-bit weights of a Hugging Face checkpoint (see bnb.h). */
/* No fused multiply-adds: bitsandbytes rounds code * absmax2 and + offset apart. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "loraft/bnb.h"

#include "loraft/quant.h"
#include "loraft/quant_block.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { NAME_CAP = ST_MAX_NAME + 64 };

/* Tensor name + suffix of st, NULL when absent. */
static const StTensor *find(const StShards *st, const char *name, const char *suffix) {
    char full[NAME_CAP];
    snprintf(full, sizeof full, "%s%s", name, suffix);
    const SafeTensors *file = st_shards_find(st, full);
    return file ? safetensors_find(file, full) : NULL;
}

int bnb_is_quantised(const StShards *st, const char *name) {
    return find(st, name, ".quant_state.bitsandbytes__nf4") ||
           find(st, name, ".quant_state.bitsandbytes__fp4");
}

/* Tensor name + suffix, which must be of dtype and hold n values. */
static const StTensor *part(const StShards *st, const char *name, const char *suffix, StDtype dtype,
                            int64_t n, LfError *err) {
    const StTensor *t = find(st, name, suffix);
    if (!t)
        lf_fail(err, "%s: bitsandbytes weight '%s' has no tensor '%s%s'", st->path, name, name,
                suffix);
    else if (t->dtype != dtype || st_numel(t) != n)
        lf_fail(err, "%s: '%s%s' is %s of %lld values, expected %s of %lld", st->path, name, suffix,
                st_dtype_name(t->dtype), (long long)st_numel(t), st_dtype_name(dtype),
                (long long)n);
    else
        return t;
    return NULL;
}

/* An integer of the quant_state in [lo, hi]; -1 (err set) when absent or out of range. */
static int64_t state_int(const cJSON *state, const char *key, int64_t lo, int64_t hi,
                         const char *where, LfError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(state, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        lf_fail(err, "%s: quant_state \"%s\" is missing or not an integer in [%lld, %lld]", where,
                key, (long long)lo, (long long)hi);
        return -1;
    }
    return (int64_t)v->valuedouble;
}

/* The quant_state JSON: NF4, the shape [rows, cols], its blocksize and, where the absmax is double
 * quantised, nested_blocksize and nested_offset. */
static int read_state(BnbWeight *w, const StShards *st, const char *name, int64_t *nested_bs,
                      float *offset, LfError *err) {
    char where[NAME_CAP + 4200];
    snprintf(where, sizeof where, "%s: '%s'", st->path, name);
    if (find(st, name, ".quant_state.bitsandbytes__fp4"))
        return lf_fail(err, "%s is bitsandbytes FP4: loraft reads NF4 4-bit weights only", where);
    const StTensor *t = find(st, name, ".quant_state.bitsandbytes__nf4");
    if (!t || t->dtype != ST_U8)
        return lf_fail(err, "%s: no quant_state of U8 bytes (not a bitsandbytes 4-bit weight)",
                       where);
    cJSON *state = cJSON_ParseWithLength(t->data, t->nbytes);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(state, "quant_type");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(state, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(state, "nested_offset");
    int rc = 0;
    if (!cJSON_IsObject(state) || !cJSON_IsString(type) || strcmp(type->valuestring, "nf4"))
        rc = lf_fail(err, "%s: its quant_state is not a JSON object with \"quant_type\": \"nf4\"",
                     where);
    else if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) != 2 ||
             cJSON_GetArrayItem(shape, 0)->valuedouble != (double)w->rows ||
             cJSON_GetArrayItem(shape, 1)->valuedouble != (double)w->cols)
        rc = lf_fail(err, "%s: quant_state \"shape\" is not [%lld, %lld]", where,
                     (long long)w->rows, (long long)w->cols);
    else if ((w->blocksize = state_int(state, "blocksize", 2, 1 << 20, where, err)) < 0)
        rc = -1;
    else if (off && !(cJSON_IsNumber(off) && isfinite(off->valuedouble)))
        rc = lf_fail(err, "%s: quant_state \"nested_offset\" is not a finite number", where);
    else if (off && (*nested_bs = state_int(state, "nested_blocksize", 1, 1 << 20, where, err)) < 0)
        rc = -1;
    if (!rc && off) *offset = (float)off->valuedouble;
    cJSON_Delete(state);
    return rc;
}

/* Each block's absmax: F32 as stored, or U8 codes of the nested quantisation undone as
 * bitsandbytes' dequantize_4bit does (nested_quant_map[q] * nested_absmax[b / nbs], then +
 * offset, in f32). */
static int read_absmax(BnbWeight *w, const StShards *st, const char *name, int64_t nested_bs,
                       float offset, LfError *err) {
    int nested = nested_bs > 0;
    const StTensor *a;
    if (!(a = part(st, name, ".absmax", nested ? ST_U8 : ST_F32, w->n_blocks, err))) return -1;
    if (!(w->absmax = malloc((size_t)w->n_blocks * sizeof *w->absmax)))
        return lf_fail(err, "out of memory");
    if (!nested) {
        memcpy(w->absmax, a->data, (size_t)w->n_blocks * sizeof *w->absmax);
    } else {
        int64_t n2 = (w->n_blocks + nested_bs - 1) / nested_bs;
        const StTensor *scale = part(st, name, ".nested_absmax", ST_F32, n2, err);
        const StTensor *map = scale ? part(st, name, ".nested_quant_map", ST_F32, 256, err) : NULL;
        if (!map) return -1;
        float code[256], *s = malloc((size_t)n2 * sizeof *s);
        if (!s) return lf_fail(err, "out of memory");
        memcpy(code, map->data, sizeof code);
        memcpy(s, scale->data, (size_t)n2 * sizeof *s);
        const uint8_t *q = a->data;
        for (int64_t b = 0; b < w->n_blocks; b++)
            w->absmax[b] = code[q[b]] * s[b / nested_bs] + offset;
        free(s);
    }
    for (int64_t b = 0; b < w->n_blocks; b++)
        if (!isfinite(w->absmax[b]))
            return lf_fail(err, "%s: '%s': the absmax of block %lld is %g", st->path, name,
                           (long long)b, w->absmax[b]);
    return 0;
}

int bnb_open(BnbWeight *w, const StShards *st, const char *name, int64_t rows, int64_t cols,
             LfError *err) {
    *w = (BnbWeight){.rows = rows, .cols = cols};
    int64_t numel = rows * cols, nested_bs = 0;
    float offset = 0;
    const StTensor *packed = NULL, *map = NULL;
    int rc = read_state(w, st, name, &nested_bs, &offset, err);
    if (!rc) {
        w->n_blocks = (numel + w->blocksize - 1) / w->blocksize;
        packed = part(st, name, "", ST_U8, (numel + 1) / 2, err);
        map = packed ? part(st, name, ".quant_map", ST_F32, 16, err) : NULL;
        rc = map ? 0 : -1;
    }
    for (int i = 0; !rc && i < 16; i++) {
        float c;
        memcpy(&c, (const uint8_t *)map->data + 4 * i, 4);
        if (c != qb_nf4(i))
            rc = lf_fail(err, "%s: '%s.quant_map' is not bitsandbytes' NF4 code (value %d is %g)",
                         st->path, name, i, c);
    }
    if (!rc) rc = read_absmax(w, st, name, nested_bs, offset, err);
    if (rc) return bnb_close(w), -1;
    w->packed = packed->data;
    return 0;
}

void bnb_close(BnbWeight *w) {
    free(w->absmax);
    *w = (BnbWeight){0};
}

static int nibble(const uint8_t *packed, int64_t i) {
    return i % 2 ? packed[i / 2] & 0xF : packed[i / 2] >> 4;
}

void bnb_dequantize(const BnbWeight *w, float *out) {
    int64_t n = w->rows * w->cols;
    for (int64_t i = 0; i < n; i++)
        out[i] = qb_nf4(nibble(w->packed, i)) * w->absmax[i / w->blocksize];
}

static int whole_nf4_blocks(int64_t blocksize, int64_t cols) {
    return blocksize == 64 && cols % 64 == 0;
}

int bnb_has_nf4_blocks(const BnbWeight *w) {
    return whole_nf4_blocks(w->blocksize, w->cols);
}

int bnb_keeps_blocks(const StShards *st, const char *name, int64_t rows, int64_t cols,
                     LfError *err) {
    BnbWeight w = {.rows = rows, .cols = cols};
    int64_t nested_bs = 0;
    float offset = 0;
    if (read_state(&w, st, name, &nested_bs, &offset, err)) return -1;
    return whole_nf4_blocks(w.blocksize, cols);
}

void bnb_nf4_blocks(const BnbWeight *w, uint8_t *out) {
    for (int64_t b = 0; b < w->n_blocks; b++) {
        memcpy(out + 36 * b, &w->absmax[b], 4); /* little-endian host */
        memcpy(out + 36 * b + 4, w->packed + 32 * b, 32);
    }
}
