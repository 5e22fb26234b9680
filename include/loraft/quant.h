/* quant.h: ggml tensor types (the types a GGUF tensor can have) and dequantisation of their
 * blocks to f32.
 *
 * A quantised type stores a row as blocks of `block_elems` values in `block_bytes` bytes,
 * always little-endian and possibly unaligned. Dequantised here: F32, F16, BF16 (block of 1),
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (32 values), Q4_K, Q5_K, Q6_K (256 values), and loraft's NF4
 * (64 values). Every other id
 * ggml defines is known by name and size, so a file holding it still validates, but cannot
 * be dequantised. Written from the format definitions; each value is computed with the
 * same float operations in the same order as the PyPI `gguf` package's numpy reference, so
 * results are bit-identical to it (tests/test_gguf.c). The block decoders themselves are in
 * quant_block.h, shared with the CUDA backend.
 *
 * Quantisation (quant_quantize): F32, F16, BF16 and the 32-value types Q8_0, Q4_0, Q4_1, Q5_0,
 * Q5_1, with ggml's reference rounding (quantize_row_*_ref), so what loraft writes reads back
 * in llama.cpp and the `gguf` package as ggml's own quantiser would have written it; NF4 as
 * bitsandbytes' quantize_4bit rounds (its values and absmax bit for bit:
 * tests/test_quant_bnb.sh). */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ggml's type ids, as stored in GGUF tensor infos (gaps are retired ids). */
typedef enum GgmlType {
    GGML_F32 = 0,
    GGML_F16 = 1,
    GGML_Q4_0 = 2,
    GGML_Q4_1 = 3,
    GGML_Q5_0 = 6,
    GGML_Q5_1 = 7,
    GGML_Q8_0 = 8,
    GGML_Q8_1 = 9,
    GGML_Q2_K = 10,
    GGML_Q3_K = 11,
    GGML_Q4_K = 12,
    GGML_Q5_K = 13,
    GGML_Q6_K = 14,
    GGML_Q8_K = 15,
    GGML_IQ2_XXS = 16,
    GGML_IQ2_XS = 17,
    GGML_IQ3_XXS = 18,
    GGML_IQ1_S = 19,
    GGML_IQ4_NL = 20,
    GGML_IQ3_S = 21,
    GGML_IQ2_S = 22,
    GGML_IQ4_XS = 23,
    GGML_I8 = 24,
    GGML_I16 = 25,
    GGML_I32 = 26,
    GGML_I64 = 27,
    GGML_F64 = 28,
    GGML_IQ1_M = 29,
    GGML_BF16 = 30,
    GGML_TQ1_0 = 34,
    GGML_TQ2_0 = 35,
    GGML_MXFP4 = 39,
    GGML_NVFP4 = 40,
    GGML_Q1_0 = 41,
    /* loraft's own, never in a GGUF file (quant_is_ggml is 0): bitsandbytes' NF4, the 4-bit
     * NormalFloat of QLoRA, in blocks of 64 values (model.base_dtype nf4, a bitsandbytes 4-bit
     * checkpoint's weights). */
    QUANT_NF4 = 1024,
} GgmlType;

/* "Q4_K", ..., "NF4"; NULL for an id neither ggml nor loraft defines. */
const char *quant_type_name(uint32_t type);
/* 1 for a type ggml defines (one a GGUF file may hold), 0 for QUANT_NF4 or an unknown id. */
int quant_is_ggml(uint32_t type);
/* Values per block and bytes per block; 0 for an unknown id. */
int quant_block_elems(uint32_t type);
int quant_block_bytes(uint32_t type);
/* 1 when quant_dequantize handles the type. */
int quant_can_dequantize(uint32_t type);
/* A comma-separated list of the types quant_dequantize handles, for error messages. */
const char *quant_dequantize_list(void);

/* Dequantises n values (a multiple of the block size) from src, n / block_elems blocks of
 * block_bytes each, into dst[n]. Returns -1 (writing nothing) for a type it does not handle
 * or an n that is not a whole number of blocks. */
int quant_dequantize(uint32_t type, const void *src, float *dst, int64_t n);

/* Quantises n values (a multiple of the block size) from src into n / block_elems blocks of
 * type at dst (quant_block_bytes each). Fails (writing nothing) for a type it does not write,
 * an n that is not a whole number of blocks, or a non-finite value for a block type. */
int quant_quantize(GgmlType type, const float *src, size_t n, void *dst, LfError *err);
/* 1 when quant_quantize writes the ggml type (into a GGUF file; not NF4). */
int quant_can_quantize(uint32_t type);
/* A comma-separated list of those types, for error messages. */
const char *quant_quantize_list(void);

#ifdef __cplusplus
}
#endif
