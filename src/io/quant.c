/* quant.c: the ggml type table, block dequantisation to f32 and the quantisers (see quant.h).
 *
 * The block decoders are include/loraft/quant_block.h's, shared with the CUDA backend. Scalar
 * and single-threaded per call: the CPU backend's dequantize_rows runs rows in parallel. */
/* No fused multiply-adds (-march=x86-64-v3 has FMA): a fused d * q + m rounds once, numpy
 * rounds twice. Before any include, so that quant_block.h's inline decoders compile this way. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "loraft/quant.h"

#include "loraft/quant_block.h"
#include "loraft/safetensors.h" /* f32_to_f16, f32_to_bf16 */

#include <float.h>
#include <math.h>
#include <string.h>

typedef struct {
    const char *name;
    int block_elems, block_bytes;
} TypeInfo;

static const TypeInfo types[] = {
    [GGML_F32] = {"F32", 1, 4},
    [GGML_F16] = {"F16", 1, 2},
    [GGML_Q4_0] = {"Q4_0", 32, 18},
    [GGML_Q4_1] = {"Q4_1", 32, 20},
    [GGML_Q5_0] = {"Q5_0", 32, 22},
    [GGML_Q5_1] = {"Q5_1", 32, 24},
    [GGML_Q8_0] = {"Q8_0", 32, 34},
    [GGML_Q8_1] = {"Q8_1", 32, 40},
    [GGML_Q2_K] = {"Q2_K", 256, 84},
    [GGML_Q3_K] = {"Q3_K", 256, 110},
    [GGML_Q4_K] = {"Q4_K", 256, 144},
    [GGML_Q5_K] = {"Q5_K", 256, 176},
    [GGML_Q6_K] = {"Q6_K", 256, 210},
    [GGML_Q8_K] = {"Q8_K", 256, 292},
    [GGML_IQ2_XXS] = {"IQ2_XXS", 256, 66},
    [GGML_IQ2_XS] = {"IQ2_XS", 256, 74},
    [GGML_IQ3_XXS] = {"IQ3_XXS", 256, 98},
    [GGML_IQ1_S] = {"IQ1_S", 256, 50},
    [GGML_IQ4_NL] = {"IQ4_NL", 32, 18},
    [GGML_IQ3_S] = {"IQ3_S", 256, 110},
    [GGML_IQ2_S] = {"IQ2_S", 256, 82},
    [GGML_IQ4_XS] = {"IQ4_XS", 256, 136},
    [GGML_I8] = {"I8", 1, 1},
    [GGML_I16] = {"I16", 1, 2},
    [GGML_I32] = {"I32", 1, 4},
    [GGML_I64] = {"I64", 1, 8},
    [GGML_F64] = {"F64", 1, 8},
    [GGML_IQ1_M] = {"IQ1_M", 256, 56},
    [GGML_BF16] = {"BF16", 1, 2},
    [GGML_TQ1_0] = {"TQ1_0", 256, 54},
    [GGML_TQ2_0] = {"TQ2_0", 256, 66},
    [GGML_MXFP4] = {"MXFP4", 32, 17},
    [GGML_NVFP4] = {"NVFP4", 64, 36},
    [GGML_Q1_0] = {"Q1_0", 128, 18},
};
#define N_TYPES (sizeof types / sizeof types[0])

int quant_is_ggml(uint32_t type) {
    return type < N_TYPES && types[type].name;
}

/* The name and block of a ggml type or NF4; {NULL, 0, 0} for any other id. */
static TypeInfo type_info(uint32_t type) {
    static const TypeInfo nf4 = {"NF4", 64, 36}, none = {NULL, 0, 0};
    return type == QUANT_NF4 ? nf4 : quant_is_ggml(type) ? types[type] : none;
}

const char *quant_type_name(uint32_t type) {
    return type_info(type).name;
}
int quant_block_elems(uint32_t type) {
    return type_info(type).block_elems;
}
int quant_block_bytes(uint32_t type) {
    return type_info(type).block_bytes;
}

const char *quant_dequantize_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, NF4";
}

int quant_can_dequantize(uint32_t type) {
    switch (type) {
    case GGML_F32:
    case GGML_F16:
    case GGML_BF16:
    case GGML_Q4_0:
    case GGML_Q4_1:
    case GGML_Q5_0:
    case GGML_Q5_1:
    case GGML_Q8_0:
    case GGML_Q4_K:
    case GGML_Q5_K:
    case GGML_Q6_K:
    case QUANT_NF4:
        return 1; /* the types quant_block_decode handles, and F32 */
    default:
        return 0;
    }
}

int quant_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    if (!quant_can_dequantize(type) || n < 0 || n % quant_block_elems(type) != 0) return -1;
    const uint8_t *p = src;
    if (type == GGML_F32) {
        memcpy(dst, p, (size_t)n * sizeof *dst);
        return 0;
    }
    if (type == GGML_BF16) { /* one value a block: a loop the compiler vectorises */
        for (int64_t i = 0; i < n; i++) dst[i] = qb_bf16((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return 0;
    }
    int be = quant_block_elems(type), bb = quant_block_bytes(type);
    for (int64_t i = 0; i < n / be; i++) quant_block_decode(type, p + i * bb, dst + i * be);
    return 0;
}

/* --------------------------------------------------------------------- quantisers ---- */

/* ggml's quantize_row_*_ref, operation for operation (f32 arithmetic, scales rounded to f16
 * to nearest even), so llama.cpp and the `gguf` package read back what ggml would write. */

/* The value of largest magnitude (the first one on a tie), sign kept: Q4_0 and Q5_0 map it to
 * the most negative code so the full code range is used. */
static float signed_absmax(const float *x) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < 32; j++)
        if (amax < fabsf(x[j])) amax = fabsf(x[j]), max = x[j];
    return max;
}

static void min_max(const float *x, float *min, float *max) {
    *min = FLT_MAX;
    *max = -FLT_MAX;
    for (int j = 0; j < 32; j++) {
        if (x[j] < *min) *min = x[j];
        if (x[j] > *max) *max = x[j];
    }
}

static void put_half(uint8_t *p, float f) {
    uint16_t h = f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void put_u32le(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t float_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static void quantize_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* Q4_0 and Q5_0: d = max / -2^(bits-1), q = trunc(x / d + 2^(bits-1) + 0.5) clamped. */
static void quantize_q4_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x) / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    for (int j = 0; j < 16; j++) {
        int lo = (int)(x[j] * id + 8.5f), hi = (int)(x[16 + j] * id + 8.5f);
        b[2 + j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
    }
}

static void quantize_q5_0(const float *x, uint8_t *b) {
    float d = signed_absmax(x) / -16.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    put_half(b, d);
    for (int j = 0; j < 16; j++) {
        int lo = (int)(x[j] * id + 16.5f), hi = (int)(x[16 + j] * id + 16.5f);
        lo = lo < 31 ? lo : 31;
        hi = hi < 31 ? hi : 31;
        b[6 + j] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
        qh |= (uint32_t)(lo >> 4) << j | (uint32_t)(hi >> 4) << (j + 16);
    }
    put_u32le(b + 2, qh);
}

/* Q4_1 and Q5_1: d = (max - min) / (2^bits - 1), m = min, q = trunc((x - min) / d + 0.5). */
static void quantize_q4_1(const float *x, uint8_t *b) {
    float min, max;
    min_max(x, &min, &max);
    float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(b, d);
    put_half(b + 2, min);
    for (int j = 0; j < 16; j++) {
        int lo = (int)((x[j] - min) * id + 0.5f), hi = (int)((x[16 + j] - min) * id + 0.5f);
        b[4 + j] = (uint8_t)((lo < 15 ? lo : 15) | (hi < 15 ? hi : 15) << 4);
    }
}

static void quantize_q5_1(const float *x, uint8_t *b) {
    float min, max;
    min_max(x, &min, &max);
    float d = (max - min) / 31.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint32_t qh = 0;
    put_half(b, d);
    put_half(b + 2, min);
    for (int j = 0; j < 16; j++) {
        int lo = (int)((x[j] - min) * id + 0.5f), hi = (int)((x[16 + j] - min) * id + 0.5f);
        b[8 + j] = (uint8_t)((lo & 0xF) | (hi & 0xF) << 4);
        qh |= (uint32_t)((lo >> 4) & 1) << j | (uint32_t)((hi >> 4) & 1) << (j + 16);
    }
    put_u32le(b + 4, qh);
}

static void quantize_f16(const float *x, uint8_t *b) {
    put_half(b, x[0]);
}

static void quantize_bf16(const float *x, uint8_t *b) {
    uint16_t h = f32_to_bf16(x[0]);
    b[0] = (uint8_t)h;
    b[1] = (uint8_t)(h >> 8);
}

/* NF4 as bitsandbytes' quantize_4bit: x * (1 / absmax) (absmax at least 1e-38), clamped to
 * [-1, 1], to the code whose interval holds it, the midpoints between codes (f32) going to the
 * lower one (torch.bucketize); absmax stored as it is. */
static void quantize_nf4(const float *x, uint8_t *b) {
    float amax = 0.0f, bound[15];
    for (int j = 0; j < 64; j++) amax = fmaxf(amax, fabsf(x[j]));
    for (int i = 0; i < 15; i++) bound[i] = (qb_nf4(i) + qb_nf4(i + 1)) / 2.0f;
    float inv = 1.0f / fmaxf(amax, 1e-38f);
    put_u32le(b, float_bits(amax));
    for (int k = 0; k < 32; k++) {
        int q[2] = {0, 0};
        for (int h = 0; h < 2; h++) {
            float v = fminf(fmaxf(x[2 * k + h] * inv, -1.0f), 1.0f);
            while (q[h] < 15 && bound[q[h]] < v) q[h]++;
        }
        b[4 + k] = (uint8_t)(q[0] << 4 | q[1]);
    }
}

typedef void (*QuantizeFn)(const float *x, uint8_t *block);

static QuantizeFn quantize_fn(GgmlType type) {
    switch (type) {
    case GGML_F16:
        return quantize_f16;
    case GGML_BF16:
        return quantize_bf16;
    case GGML_Q8_0:
        return quantize_q8_0;
    case GGML_Q4_0:
        return quantize_q4_0;
    case GGML_Q4_1:
        return quantize_q4_1;
    case GGML_Q5_0:
        return quantize_q5_0;
    case GGML_Q5_1:
        return quantize_q5_1;
    case QUANT_NF4:
        return quantize_nf4;
    default:
        return NULL;
    }
}

int quant_can_quantize(uint32_t type) {
    return type == GGML_F32 || (quant_is_ggml(type) && quantize_fn((GgmlType)type) != NULL);
}

const char *quant_quantize_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1";
}

int quant_quantize(GgmlType type, const float *src, size_t n, void *dst, LfError *err) {
    QuantizeFn fn = quantize_fn(type);
    if (type != GGML_F32 && !fn)
        return lf_fail(err, "cannot quantise to %s (loraft writes %s, NF4)",
                       quant_type_name(type) ? quant_type_name(type) : "an unknown type",
                       quant_quantize_list());
    size_t be = (size_t)quant_block_elems(type), bb = (size_t)quant_block_bytes(type);
    if (n % be)
        return lf_fail(err, "%zu values are not a whole number of %s blocks", n,
                       quant_type_name(type));
    if (type == GGML_F32) {
        memcpy(dst, src, n * sizeof *src);
        return 0;
    }
    for (size_t i = 0; be > 1 && i < n; i++) /* F16 / BF16 keep infinities and NaN */
        if (!isfinite(src[i])) return lf_fail(err, "value %zu is %g: not quantisable", i, src[i]);
    uint8_t *out = dst;
    for (size_t i = 0; i < n / be; i++) fn(src + i * be, out + i * bb);
    return 0;
}
