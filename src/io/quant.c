/* quant.c: the ggml type table and block dequantisation to f32 (see quant.h).
 *
 * One function per block format, each decoding exactly one block from its byte layout
 * (offsets in the comments, little-endian, no alignment assumed). The float arithmetic
 * mirrors the PyPI `gguf` reference operation for operation (for Q4_K: (d * sc) * q -
 * (dmin * m)), with contraction into fused multiply-adds switched off. Deliberately scalar and
 * single-threaded: dequantisation runs once, at load. */
#include "loraft/quant.h"

#include "loraft/safetensors.h" /* f16_to_f32, bf16_to_f32 */

#include <math.h>
#include <string.h>

/* No fused multiply-adds (-march=x86-64-v3 has FMA): a fused d * q + m rounds once, numpy
 * rounds twice. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static const struct {
    const char *name;
    int block_elems, block_bytes;
} types[] = {
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

const char *quant_type_name(uint32_t type) {
    return type < N_TYPES ? types[type].name : NULL;
}
int quant_block_elems(uint32_t type) {
    return type < N_TYPES ? types[type].block_elems : 0;
}
int quant_block_bytes(uint32_t type) {
    return type < N_TYPES ? types[type].block_bytes : 0;
}

const char *quant_dequantize_list(void) {
    return "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K";
}

/* ------------------------------------------------------------ little-endian loads ---- */

static float half(const uint8_t *p) {
    return f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

static uint32_t u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ----------------------------------------------------------- 32-value blocks ---- */

/* Q4_0, 18 bytes: d f16 @0, qs[16] @2. Value j < 16 is the low nibble of qs[j], value
 * j + 16 its high nibble; y = d * (q - 8). */
static void block_q4_0(const uint8_t *b, float *y) {
    float d = half(b);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b[2 + j] & 0xF) - 8);
        y[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
    }
}

/* Q4_1, 20 bytes: d f16 @0, m f16 @2, qs[16] @4; y = d * q + m. */
static void block_q4_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b[4 + j] & 0xF) + m;
        y[j + 16] = d * (float)(b[4 + j] >> 4) + m;
    }
}

/* The 5-bit value j of a Q5 block: low nibble from qs (as Q4), bit j of qh as bit 4. */
static int q5_value(const uint8_t *qs, uint32_t qh, int j) {
    int lo = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return lo | (int)((qh >> j) & 1) << 4;
}

/* Q5_0, 22 bytes: d f16 @0, qh u32 @2, qs[16] @6; y = d * (q - 16). */
static void block_q5_0(const uint8_t *b, float *y) {
    float d = half(b);
    uint32_t qh = u32le(b + 2);
    for (int j = 0; j < 32; j++) y[j] = d * (float)(q5_value(b + 6, qh, j) - 16);
}

/* Q5_1, 24 bytes: d f16 @0, m f16 @2, qh u32 @4, qs[16] @8; y = d * q + m. */
static void block_q5_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    uint32_t qh = u32le(b + 4);
    for (int j = 0; j < 32; j++) y[j] = d * (float)q5_value(b + 8, qh, j) + m;
}

/* Q8_0, 34 bytes: d f16 @0, qs int8[32] @2; y = q * d. */
static void block_q8_0(const uint8_t *b, float *y) {
    float d = half(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* ----------------------------------------------------------- 256-value K blocks ---- */

/* Scale and min (6 bits each) of sub-block s (0..7, 32 values each) of Q4_K / Q5_K, packed
 * in 12 bytes: s < 4 uses the low 6 bits of sc[s] and sc[s + 4]; s >= 4 takes its low 4
 * bits from the nibbles of sc[s + 4] and its top 2 bits from the spare top bits of
 * sc[s - 4] (scale) and sc[s] (min). */
static void k_scale_min(const uint8_t *sc, int s, int *scale, int *min) {
    if (s < 4) {
        *scale = sc[s] & 63;
        *min = sc[s + 4] & 63;
    } else {
        *scale = (sc[s + 4] & 0xF) | (sc[s - 4] >> 6) << 4;
        *min = (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    }
}

/* Q4_K, 144 bytes: d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16. Sub-block s uses
 * nibble s % 2 (low first) of qs[32 * (s / 2) .. + 32]; y = (d * scale) * q - dmin * min. */
static void block_q4_k(const uint8_t *b, float *y) {
    float d = half(b), dmin = half(b + 2);
    for (int s = 0; s < 8; s++) {
        int scale, min;
        k_scale_min(b + 4, s, &scale, &min);
        float ds = d * (float)scale, dm = dmin * (float)min;
        const uint8_t *qs = b + 16 + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            int q = s % 2 ? qs[l] >> 4 : qs[l] & 0xF;
            y[32 * s + l] = ds * (float)q - dm;
        }
    }
}

/* Q5_K, 176 bytes: d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48. As
 * Q4_K, plus bit s of qh[l] as bit 4 of value l of sub-block s. */
static void block_q5_k(const uint8_t *b, float *y) {
    float d = half(b), dmin = half(b + 2);
    const uint8_t *qh = b + 16;
    for (int s = 0; s < 8; s++) {
        int scale, min;
        k_scale_min(b + 4, s, &scale, &min);
        float ds = d * (float)scale, dm = dmin * (float)min;
        const uint8_t *qs = b + 48 + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            int q = (s % 2 ? qs[l] >> 4 : qs[l] & 0xF) | ((qh[l] >> s) & 1) << 4;
            y[32 * s + l] = ds * (float)q - dm;
        }
    }
}

/* Q6_K, 210 bytes: ql[128] @0, qh[64] @128, scales int8[16] @192, d f16 @208. Each half
 * h of 128 values uses ql[64h..], qh[32h..]: value 32 * k + l (k = 0..3, l < 32) takes its
 * low nibble from ql[l + 32 * (k % 2)] (low nibble for k < 2, high for k >= 2) and its top
 * two bits from bits 2k, 2k+1 of qh[l]; value e of the block has scale scales[e / 16];
 * y = (d * scale) * (q - 32). */
static void block_q6_k(const uint8_t *b, float *y) {
    float d = half(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int e = 128 * h + 32 * k + l;
                uint8_t lo = ql[l + 32 * (k % 2)];
                int q = (k < 2 ? lo & 0xF : lo >> 4) | ((qh[l] >> (2 * k)) & 3) << 4;
                float ds = d * (float)(int8_t)b[192 + e / 16];
                y[e] = ds * (float)(q - 32);
            }
    }
}

/* --------------------------------------------------------------------- dispatch ---- */

typedef void (*BlockFn)(const uint8_t *block, float *out);

static BlockFn block_fn(uint32_t type) {
    switch (type) {
    case GGML_Q4_0:
        return block_q4_0;
    case GGML_Q4_1:
        return block_q4_1;
    case GGML_Q5_0:
        return block_q5_0;
    case GGML_Q5_1:
        return block_q5_1;
    case GGML_Q8_0:
        return block_q8_0;
    case GGML_Q4_K:
        return block_q4_k;
    case GGML_Q5_K:
        return block_q5_k;
    case GGML_Q6_K:
        return block_q6_k;
    default:
        return NULL;
    }
}

int quant_can_dequantize(uint32_t type) {
    return type == GGML_F32 || type == GGML_F16 || type == GGML_BF16 || block_fn(type) != NULL;
}

static void convert_16bit(const uint8_t *src, float *dst, int64_t n, float (*cvt)(uint16_t)) {
    for (int64_t i = 0; i < n; i++) dst[i] = cvt((uint16_t)(src[2 * i] | src[2 * i + 1] << 8));
}

int quant_dequantize(uint32_t type, const void *src, float *dst, int64_t n) {
    if (!quant_can_dequantize(type) || n < 0 || n % quant_block_elems(type) != 0) return -1;
    const uint8_t *p = src;
    if (type == GGML_F32) {
        memcpy(dst, p, (size_t)n * sizeof *dst);
    } else if (type == GGML_F16 || type == GGML_BF16) {
        convert_16bit(p, dst, n, type == GGML_F16 ? f16_to_f32 : bf16_to_f32);
    } else {
        BlockFn fn = block_fn(type);
        int be = quant_block_elems(type), bb = quant_block_bytes(type);
        for (int64_t i = 0; i < n / be; i++) fn(p + i * bb, dst + i * be);
    }
    return 0;
}

/* ------------------------------------------------------------------ quantisation ---- */

/* Q8_0 as ggml's quantize_row_q8_0_ref: d = amax / 127 stored as f16, q = roundf(x * (1 / d))
 * (halves away from zero), computed with d before its rounding to f16. */
static void quantize_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++) amax = amax > fabsf(x[j]) ? amax : fabsf(x[j]);
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t h = f32_to_f16(d);
    b[0] = (uint8_t)h;
    b[1] = (uint8_t)(h >> 8);
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

int quant_quantize(GgmlType type, const float *src, size_t n, void *dst, LfError *err) {
    if (type != GGML_F32 && type != GGML_F16 && type != GGML_Q8_0)
        return lf_fail(err, "cannot quantise to %s (F32, F16, Q8_0)",
                       quant_type_name(type) ? quant_type_name(type) : "an unknown type");
    size_t be = (size_t)quant_block_elems(type);
    if (n % be)
        return lf_fail(err, "%zu values are not a whole number of %s blocks", n,
                       quant_type_name(type));
    uint8_t *out = dst;
    if (type == GGML_F32) {
        memcpy(out, src, n * sizeof *src);
    } else if (type == GGML_F16) {
        for (size_t i = 0; i < n; i++) {
            uint16_t h = f32_to_f16(src[i]);
            out[2 * i] = (uint8_t)h;
            out[2 * i + 1] = (uint8_t)(h >> 8);
        }
    } else {
        for (size_t i = 0; i < n; i++)
            if (!isfinite(src[i]))
                return lf_fail(err, "value %zu is %g: not quantisable", i, src[i]);
        for (size_t i = 0; i < n / be; i++)
            quantize_q8_0(src + i * be, out + i * (size_t)quant_block_bytes(type));
    }
    return 0;
}
