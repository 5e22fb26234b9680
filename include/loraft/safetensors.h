/* safetensors.h: reader and writer for the Hugging Face safetensors format.
 *
 * File layout: 8-byte little-endian header length N, N bytes of JSON header
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
 * ...,
 *    "__metadata__": {"key": "value", ...}}
 * then the data block; offsets are relative to its start. The reader maps the
 * file and validates the header completely (see docs/FORMATS.md for the rules),
 * so that every StTensor it hands out lies inside the file and has exactly
 * shape x dtype-size bytes. Tensor data is little-endian and may be unaligned:
 * copy it, don't cast it. Not a general tensor library: conversion is to f32
 * only, from F32, F16 and BF16. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_MAX_DIMS 8
#define ST_MAX_NAME 256

typedef enum StDtype {
    ST_F32,
    ST_F16,
    ST_BF16,
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U8,
    ST_BOOL
} StDtype;

const char *st_dtype_name(StDtype dtype); /* "F32", "BF16", ... */
size_t st_dtype_size(StDtype dtype);      /* bytes per element */

typedef struct StTensor {
    char name[ST_MAX_NAME];
    StDtype dtype;
    int ndim; /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data; /* inside the mapping; valid until safetensors_close */
} StTensor;

typedef struct SafeTensors {
    char path[4096]; /* for error messages */
    void *map;       /* NULL when parsed from a caller's buffer */
    size_t map_size;
    StTensor *tensors;
    int n_tensors;
    char **metadata; /* NULL-terminated key, value, key, value, ...; NULL if none */
} SafeTensors;

/* Maps and validates path. On failure st is left closed (safe to close again).
 */
int safetensors_open(SafeTensors *st, const char *path, LfError *err);
/* Validates a whole file image held in buf (len bytes); st points into buf,
 * which must outlive it. name_for_errors stands in for the path in messages. */
int safetensors_parse(SafeTensors *st, const void *buf, size_t len, const char *name_for_errors,
                      LfError *err);
/* Frees everything and zeroes st; a zeroed or already closed st is fine. */
void safetensors_close(SafeTensors *st);

const StTensor *safetensors_find(const SafeTensors *st, const char *name); /* NULL if absent */
const char *safetensors_metadata(const SafeTensors *st, const char *key);  /* NULL if absent */
int64_t st_numel(const StTensor *t); /* product of shape; 1 for a scalar */

/* The weights of a Hugging Face checkpoint directory: dir/model.safetensors where it is there (as
 * transformers reads them), else the shards that dir/model.safetensors.index.json's weight_map
 * names (transformers' sharded save, for
 * models over its max_shard_size). Opening checks that the index is well formed, names plain
 * files beside it and that each shard holds the tensors the map puts there. */
typedef struct StShards {
    char path[4200]; /* the file or the index, for error messages */
    SafeTensors *files;
    int n;
} StShards;
int st_shards_open(StShards *s, const char *dir, LfError *err);
const SafeTensors *st_shards_find(const StShards *s, const char *name); /* the file holding name,
                                                                           NULL if none does */
void st_shards_close(StShards *s); /* a zeroed or closed one is fine */

/* Copies tensor `name` into out[numel] as f32, converting F16/BF16, after
 * checking that it exists and has exactly shape[ndim]. Errors name the file,
 * the tensor and both shapes. */
int safetensors_read_f32(const SafeTensors *st, const char *name, int ndim, const int64_t *shape,
                         float *out, LfError *err);

/* One tensor to write: data holds numel x st_dtype_size(dtype) little-endian
 * bytes. */
typedef struct StEntry {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StEntry;

/* Writes entries[n] in the given order, atomically. metadata_kv: NULL, or a
 * NULL-terminated list key, value, key, value, ... stored as "__metadata__".
 * The header is padded with spaces to a multiple of 8 bytes, so tensor data is
 * 8-byte aligned in the file. */
int safetensors_write(const char *path, const StEntry *entries, int n,
                      const char *const *metadata_kv, LfError *err);

/* Scalar conversions; f32 -> 16-bit rounds to nearest, ties to even; NaN stays
 * NaN. */
float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
uint16_t f32_to_f16(float f);

#ifdef __cplusplus
}
#endif
