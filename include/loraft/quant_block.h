/* quant_block.h: one block of each ggml type decoded to f32, written once for both backends:
 * src/io/quant.c (host C, load and the CPU's frozen GEMMs) and kernels/cuda/dequantize.cu (one
 * device thread per block) include it, so the GPU's dequantisation is the CPU's bit for bit.
 *
 * Byte layouts in the comments (offsets, little-endian, no alignment assumed). The float
 * arithmetic mirrors the PyPI `gguf` reference operation for operation (Q4_K: (d * sc) * q -
 * (dmin * m)) and is never contracted into fused multiply-adds, which round once where numpy
 * rounds twice: on the device every product and sum goes through __fmul_rn / __fadd_rn (nvcc
 * never contracts those), on the host quant.c switches contraction off. */
#pragma once
#include <stdint.h>

#include "loraft/hostdevice.h"
#include "loraft/quant.h"

#ifdef __CUDA_ARCH__
#define QB_MUL(a, b) __fmul_rn((a), (b))
#define QB_ADD(a, b) __fadd_rn((a), (b))
#else
#define QB_MUL(a, b) ((a) * (b))
#define QB_ADD(a, b) ((a) + (b))
#endif

static inline LF_HOST_DEVICE float qb_bits_to_float(uint32_t x) {
    union {
        uint32_t u;
        float f;
    } v = {x};
    return v.f;
}

/* IEEE half -> float, exact (subnormals as m * 2^-24). */
static inline LF_HOST_DEVICE float qb_f16(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) {
        float v = QB_MUL((float)m, 5.9604644775390625e-8f); /* 2^-24 */
        return sign ? -v : v;
    }
    if (e == 0x1f) return qb_bits_to_float(sign | 0x7f800000u | (m << 13));
    return qb_bits_to_float(sign | ((e + 112) << 23) | (m << 13));
}

static inline LF_HOST_DEVICE float qb_bf16(uint16_t h) {
    return qb_bits_to_float((uint32_t)h << 16);
}

static inline LF_HOST_DEVICE float qb_half(const uint8_t *p) {
    return qb_f16((uint16_t)(p[0] | p[1] << 8));
}

static inline LF_HOST_DEVICE uint32_t qb_u32le(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ----------------------------------------------------------- 32-value blocks ---- */

/* Q4_0, 18 bytes: d f16 @0, qs[16] @2. Value j < 16 is the low nibble of qs[j], value
 * j + 16 its high nibble; y = d * (q - 8). */
static inline LF_HOST_DEVICE void block_q4_0(const uint8_t *b, float *y) {
    float d = qb_half(b);
    for (int j = 0; j < 16; j++) {
        y[j] = QB_MUL(d, (float)((b[2 + j] & 0xF) - 8));
        y[j + 16] = QB_MUL(d, (float)((b[2 + j] >> 4) - 8));
    }
}

/* Q4_1, 20 bytes: d f16 @0, m f16 @2, qs[16] @4; y = d * q + m. */
static inline LF_HOST_DEVICE void block_q4_1(const uint8_t *b, float *y) {
    float d = qb_half(b), m = qb_half(b + 2);
    for (int j = 0; j < 16; j++) {
        y[j] = QB_ADD(QB_MUL(d, (float)(b[4 + j] & 0xF)), m);
        y[j + 16] = QB_ADD(QB_MUL(d, (float)(b[4 + j] >> 4)), m);
    }
}

/* The 5-bit value j of a Q5 block: low nibble from qs (as Q4), bit j of qh as bit 4. */
static inline LF_HOST_DEVICE int q5_value(const uint8_t *qs, uint32_t qh, int j) {
    int lo = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
    return lo | (int)((qh >> j) & 1) << 4;
}

/* Q5_0, 22 bytes: d f16 @0, qh u32 @2, qs[16] @6; y = d * (q - 16). */
static inline LF_HOST_DEVICE void block_q5_0(const uint8_t *b, float *y) {
    float d = qb_half(b);
    uint32_t qh = qb_u32le(b + 2);
    for (int j = 0; j < 32; j++) y[j] = QB_MUL(d, (float)(q5_value(b + 6, qh, j) - 16));
}

/* Q5_1, 24 bytes: d f16 @0, m f16 @2, qh u32 @4, qs[16] @8; y = d * q + m. */
static inline LF_HOST_DEVICE void block_q5_1(const uint8_t *b, float *y) {
    float d = qb_half(b), m = qb_half(b + 2);
    uint32_t qh = qb_u32le(b + 4);
    for (int j = 0; j < 32; j++) y[j] = QB_ADD(QB_MUL(d, (float)q5_value(b + 8, qh, j)), m);
}

/* Q8_0, 34 bytes: d f16 @0, qs int8[32] @2; y = q * d. */
static inline LF_HOST_DEVICE void block_q8_0(const uint8_t *b, float *y) {
    float d = qb_half(b);
    for (int j = 0; j < 32; j++) y[j] = QB_MUL((float)(int8_t)b[2 + j], d);
}

/* ----------------------------------------------------------- 256-value K blocks ---- */

/* Scale and min (6 bits each) of sub-block s (0..7, 32 values each) of Q4_K / Q5_K, packed
 * in 12 bytes: s < 4 uses the low 6 bits of sc[s] and sc[s + 4]; s >= 4 takes its low 4
 * bits from the nibbles of sc[s + 4] and its top 2 bits from the spare top bits of
 * sc[s - 4] (scale) and sc[s] (min). */
static inline LF_HOST_DEVICE void k_scale_min(const uint8_t *sc, int s, int *scale, int *min) {
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
static inline LF_HOST_DEVICE void block_q4_k(const uint8_t *b, float *y) {
    float d = qb_half(b), dmin = qb_half(b + 2);
    for (int s = 0; s < 8; s++) {
        int scale, min;
        k_scale_min(b + 4, s, &scale, &min);
        float ds = QB_MUL(d, (float)scale), dm = QB_MUL(dmin, (float)min);
        const uint8_t *qs = b + 16 + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            int q = s % 2 ? qs[l] >> 4 : qs[l] & 0xF;
            y[32 * s + l] = QB_ADD(QB_MUL(ds, (float)q), -dm);
        }
    }
}

/* Q5_K, 176 bytes: d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48. As
 * Q4_K, plus bit s of qh[l] as bit 4 of value l of sub-block s. */
static inline LF_HOST_DEVICE void block_q5_k(const uint8_t *b, float *y) {
    float d = qb_half(b), dmin = qb_half(b + 2);
    const uint8_t *qh = b + 16;
    for (int s = 0; s < 8; s++) {
        int scale, min;
        k_scale_min(b + 4, s, &scale, &min);
        float ds = QB_MUL(d, (float)scale), dm = QB_MUL(dmin, (float)min);
        const uint8_t *qs = b + 48 + 32 * (s / 2);
        for (int l = 0; l < 32; l++) {
            int q = (s % 2 ? qs[l] >> 4 : qs[l] & 0xF) | ((qh[l] >> s) & 1) << 4;
            y[32 * s + l] = QB_ADD(QB_MUL(ds, (float)q), -dm);
        }
    }
}

/* Q6_K, 210 bytes: ql[128] @0, qh[64] @128, scales int8[16] @192, d f16 @208. Each half
 * h of 128 values uses ql[64h..], qh[32h..]: value 32 * k + l (k = 0..3, l < 32) takes its
 * low nibble from ql[l + 32 * (k % 2)] (low nibble for k < 2, high for k >= 2) and its top
 * two bits from bits 2k, 2k+1 of qh[l]; value e of the block has scale scales[e / 16];
 * y = (d * scale) * (q - 32). */
static inline LF_HOST_DEVICE void block_q6_k(const uint8_t *b, float *y) {
    float d = qb_half(b + 208);
    for (int h = 0; h < 2; h++) {
        const uint8_t *ql = b + 64 * h, *qh = b + 128 + 32 * h;
        for (int k = 0; k < 4; k++)
            for (int l = 0; l < 32; l++) {
                int e = 128 * h + 32 * k + l;
                uint8_t lo = ql[l + 32 * (k % 2)];
                int q = (k < 2 ? lo & 0xF : lo >> 4) | ((qh[l] >> (2 * k)) & 3) << 4;
                float ds = QB_MUL(d, (float)(int8_t)b[192 + e / 16]);
                y[e] = QB_MUL(ds, (float)(q - 32));
            }
    }
}

/* F16 and BF16 as blocks of one value. */
static inline LF_HOST_DEVICE void block_f16(const uint8_t *b, float *y) {
    y[0] = qb_half(b);
}
static inline LF_HOST_DEVICE void block_bf16(const uint8_t *b, float *y) {
    y[0] = qb_bf16((uint16_t)(b[0] | b[1] << 8));
}

/* Decodes one block of ggml type `type` (F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K,
 * Q6_K); returns 0 for any other type, writing nothing. */
static inline LF_HOST_DEVICE int quant_block_decode(uint32_t type, const uint8_t *b, float *y) {
    switch (type) {
    case GGML_F16:
        return block_f16(b, y), 1;
    case GGML_Q4_0:
        return block_q4_0(b, y), 1;
    case GGML_Q4_1:
        return block_q4_1(b, y), 1;
    case GGML_Q5_0:
        return block_q5_0(b, y), 1;
    case GGML_Q5_1:
        return block_q5_1(b, y), 1;
    case GGML_Q8_0:
        return block_q8_0(b, y), 1;
    case GGML_Q4_K:
        return block_q4_k(b, y), 1;
    case GGML_Q5_K:
        return block_q5_k(b, y), 1;
    case GGML_Q6_K:
        return block_q6_k(b, y), 1;
    case GGML_BF16:
        return block_bf16(b, y), 1;
    default:
        return 0;
    }
}
