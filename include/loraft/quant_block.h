/* quant_block.h: the values of each ggml type's blocks (and loraft's NF4) decoded to f32, written
 * once for both backends: src/io/quant.c (host C, whole blocks: load and the CPU's frozen GEMMs)
 * and kernels/cuda/dequantize.cu (one device thread per value) include it, so the GPU's
 * dequantisation is the CPU's bit for bit.
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

/* Each type's decoder is two functions (paired in QB_TYPES): a scale function (b, s), the scale
 * (and min) of the block's 32-value sub-block s (s = 0 in the 32-value types and the one-value
 * F16 and BF16), and a value function (b, scale, s, l), its value l (0..31). The GPU runs one
 * thread per value (consecutive threads, consecutive outputs), each decoding its sub-block's scale
 * (the same bytes across the warp); the CPU's quant_block_decode decodes it once per sub-block. One
 * source of the math either way, so both give the same bits. */
typedef struct {
    float d, m;
} QbScale;

static inline LF_HOST_DEVICE QbScale qb_scale(float d, float m) {
    QbScale sc = {d, m};
    return sc;
}

/* ----------------------------------------------------------- 32-value blocks ---- */

/* The 4-bit value l of 16 packed bytes: low nibble of qs[l] for l < 16, else the high nibble
 * of qs[l - 16]. */
static inline LF_HOST_DEVICE int q4_value(const uint8_t *qs, int l) {
    return l < 16 ? qs[l] & 0xF : qs[l - 16] >> 4;
}

/* The 5-bit value l of a Q5 block: low nibble from qs (as Q4), bit l of qh as bit 4. */
static inline LF_HOST_DEVICE int q5_value(const uint8_t *qs, const uint8_t *qh, int l) {
    return q4_value(qs, l) | (qh[l / 8] >> (l % 8) & 1) << 4;
}

/* d f16 @0 (and m f16 @2) of the 32-value types. */
static inline LF_HOST_DEVICE QbScale d_scale(const uint8_t *b, int s) {
    (void)s;
    return qb_scale(qb_half(b), 0.0f);
}
static inline LF_HOST_DEVICE QbScale dm_scale(const uint8_t *b, int s) {
    (void)s;
    return qb_scale(qb_half(b), qb_half(b + 2));
}

/* Q4_0, 18 bytes: d f16 @0, qs[16] @2; y = d * (q - 8). */
static inline LF_HOST_DEVICE float q4_0_value(const uint8_t *b, QbScale sc, int s, int l) {
    (void)s;
    return QB_MUL(sc.d, (float)(q4_value(b + 2, l) - 8));
}

/* Q4_1, 20 bytes: d f16 @0, m f16 @2, qs[16] @4; y = d * q + m. */
static inline LF_HOST_DEVICE float q4_1_value(const uint8_t *b, QbScale sc, int s, int l) {
    (void)s;
    return QB_ADD(QB_MUL(sc.d, (float)q4_value(b + 4, l)), sc.m);
}

/* Q5_0, 22 bytes: d f16 @0, qh u32 @2, qs[16] @6; y = d * (q - 16). */
static inline LF_HOST_DEVICE float q5_0_value(const uint8_t *b, QbScale sc, int s, int l) {
    (void)s;
    return QB_MUL(sc.d, (float)(q5_value(b + 6, b + 2, l) - 16));
}

/* Q5_1, 24 bytes: d f16 @0, m f16 @2, qh u32 @4, qs[16] @8; y = d * q + m. */
static inline LF_HOST_DEVICE float q5_1_value(const uint8_t *b, QbScale sc, int s, int l) {
    (void)s;
    return QB_ADD(QB_MUL(sc.d, (float)q5_value(b + 8, b + 4, l)), sc.m);
}

/* Q8_0, 34 bytes: d f16 @0, qs int8[32] @2; y = q * d. */
static inline LF_HOST_DEVICE float q8_0_value(const uint8_t *b, QbScale sc, int s, int l) {
    (void)s;
    return QB_MUL((float)(int8_t)b[2 + l], sc.d);
}

/* ----------------------------------------------------------- 256-value K blocks ---- */

/* Scale and min (6 bits each) of sub-block s (0..7, 32 values each) of Q4_K / Q5_K, packed
 * in 12 bytes: s < 4 uses the low 6 bits of sc[s] and sc[s + 4]; s >= 4 takes its low 4
 * bits from the nibbles of sc[s + 4] and its top 2 bits from the spare top bits of
 * sc[s - 4] (scale) and sc[s] (min). Gives d * scale and dmin * min (d f16 @0, dmin f16 @2,
 * scales[12] @4 in both types). */
static inline LF_HOST_DEVICE QbScale k_scale(const uint8_t *b, int s) {
    const uint8_t *sc = b + 4;
    int scale = s < 4 ? sc[s] & 63 : (sc[s + 4] & 0xF) | (sc[s - 4] >> 6) << 4;
    int min = s < 4 ? sc[s + 4] & 63 : (sc[s + 4] >> 4) | (sc[s] >> 6) << 4;
    return qb_scale(QB_MUL(qb_half(b), (float)scale), QB_MUL(qb_half(b + 2), (float)min));
}

/* Q4_K, 144 bytes: d f16 @0, dmin f16 @2, scales[12] @4, qs[128] @16. Sub-block s uses
 * nibble s % 2 (low first) of qs[32 * (s / 2) .. + 32]; y = (d * scale) * q - dmin * min. */
static inline LF_HOST_DEVICE float q4_k_value(const uint8_t *b, QbScale sc, int s, int l) {
    uint8_t q = b[16 + 32 * (s / 2) + l];
    return QB_ADD(QB_MUL(sc.d, (float)(s % 2 ? q >> 4 : q & 0xF)), -sc.m);
}

/* Q5_K, 176 bytes: d f16 @0, dmin f16 @2, scales[12] @4, qh[32] @16, qs[128] @48. As
 * Q4_K, plus bit s of qh[l] as bit 4 of value l of sub-block s. */
static inline LF_HOST_DEVICE float q5_k_value(const uint8_t *b, QbScale sc, int s, int l) {
    uint8_t q = b[48 + 32 * (s / 2) + l];
    int v = (s % 2 ? q >> 4 : q & 0xF) | ((b[16 + l] >> s) & 1) << 4;
    return QB_ADD(QB_MUL(sc.d, (float)v), -sc.m);
}

/* Q6_K, 210 bytes: ql[128] @0, qh[64] @128, scales int8[16] @192, d f16 @208. Each half
 * h = s / 4 of 128 values uses ql[64h..], qh[32h..]: value l of sub-block s (k = s % 4)
 * takes its low nibble from ql[l + 32 * (k % 2)] (low nibble for k < 2, high for k >= 2) and
 * its top two bits from bits 2k, 2k+1 of qh[l]; value e = 32s + l of the block has scale
 * scales[e / 16]; y = (d * scale) * (q - 32). */
static inline LF_HOST_DEVICE QbScale q6_k_scale(const uint8_t *b, int s) {
    (void)s;
    return qb_scale(qb_half(b + 208), 0.0f);
}
static inline LF_HOST_DEVICE float q6_k_value(const uint8_t *b, QbScale sc, int s, int l) {
    int h = s / 4, k = s % 4;
    uint8_t lo = b[64 * h + l + 32 * (k % 2)], hi = b[128 + 32 * h + l];
    int q = (k < 2 ? lo & 0xF : lo >> 4) | ((hi >> (2 * k)) & 3) << 4;
    float ds = QB_MUL(sc.d, (float)(int8_t)b[192 + 2 * s + l / 16]);
    return QB_MUL(ds, (float)(q - 32));
}

/* ----------------------------------------------------------- 64-value NF4 blocks ---- */

/* bitsandbytes' NF4 code (QLoRA's 4-bit NormalFloat: quantiles of a normal scaled to [-1, 1], with
 * an exact 0), its float32 values. The device's copy is in global memory, not constant memory,
 * which serialises a warp's loads of different addresses: a warp's codes differ. */
#define QB_NF4_CODE                                                                                \
    {                                                                                              \
        -0x1p+0f, -0x1.647362p-1f, -0x1.0cd66p-1f, -0x1.94654p-2f, -0x1.23449ap-2f,                \
            -0x1.7a6a7ep-3f, -0x1.74f0e2p-4f, 0.0f, 0x1.45f5fep-4f, 0x1.4995c6p-3f,                \
            0x1.f809bap-3f, 0x1.5a0674p-2f, 0x1.c3497p-2f, 0x1.200f56p-1f, 0x1.722766p-1f, 0x1p+0f \
    }
#ifdef __CUDACC__
static __device__ const float qb_nf4_device[16] = QB_NF4_CODE;
#endif
static const float qb_nf4_host[16] = QB_NF4_CODE;

static inline LF_HOST_DEVICE float qb_nf4(int q) {
#ifdef __CUDA_ARCH__
    return qb_nf4_device[q];
#else
    return qb_nf4_host[q];
#endif
}

/* NF4, 36 bytes: absmax f32 @0, qs[32] @4, values 2k and 2k + 1 in the high and low nibble of
 * qs[k] (bitsandbytes' order); y = NF4[q] * absmax. */
static inline LF_HOST_DEVICE QbScale nf4_scale(const uint8_t *b, int s) {
    (void)s;
    return qb_scale(qb_bits_to_float((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                     (uint32_t)b[3] << 24),
                    0.0f);
}
static inline LF_HOST_DEVICE float nf4_value(const uint8_t *b, QbScale sc, int s, int l) {
    int e = 32 * s + l;
    uint8_t q = b[4 + e / 2];
    return QB_MUL(qb_nf4(e % 2 ? q & 0xF : q >> 4), sc.d);
}

/* F16 and BF16 as blocks of one value: the scale function decodes it, the value function
 * returns it. */
static inline LF_HOST_DEVICE float f16_value(const uint8_t *b, QbScale sc, int s, int l) {
    (void)b, (void)s, (void)l;
    return sc.d;
}
static inline LF_HOST_DEVICE QbScale bf16_scale(const uint8_t *b, int s) {
    (void)s;
    return qb_scale(qb_bf16((uint16_t)(b[0] | b[1] << 8)), 0.0f);
}

/* Expands `X(type, scale function, value function, values a block)` for every type the
 * decoders above handle. */
#define QB_TYPES(X)                                                                                \
    X(GGML_F16, d_scale, f16_value, 1)                                                             \
    X(GGML_Q4_0, d_scale, q4_0_value, 32)                                                          \
    X(GGML_Q4_1, dm_scale, q4_1_value, 32)                                                         \
    X(GGML_Q5_0, d_scale, q5_0_value, 32)                                                          \
    X(GGML_Q5_1, dm_scale, q5_1_value, 32)                                                         \
    X(GGML_Q8_0, d_scale, q8_0_value, 32)                                                          \
    X(GGML_Q4_K, k_scale, q4_k_value, 256)                                                         \
    X(GGML_Q5_K, k_scale, q5_k_value, 256)                                                         \
    X(GGML_Q6_K, q6_k_scale, q6_k_value, 256)                                                      \
    X(QUANT_NF4, nf4_scale, nf4_value, 64)                                                         \
    X(GGML_BF16, bf16_scale, f16_value, 1)

/* Decodes one block of type `type` (the QB_TYPES) to its 1, 32, 64 or 256 floats, sub-block
 * by sub-block, values l and l + 16 (the two nibbles of a byte) together so that the compiler
 * vectorises; returns 0 for any other type, writing nothing. */
#define QB_DECODE(type, scale, value, n)                                                           \
    case type:                                                                                     \
        for (int s = 0; s < ((n) + 31) / 32; s++) {                                                \
            QbScale sc = scale(b, s);                                                              \
            for (int l = 0; l < ((n) < 16 ? (n) : 16); l++) {                                      \
                y[32 * s + l] = value(b, sc, s, l);                                                \
                if ((n) >= 32) y[32 * s + l + 16] = value(b, sc, s, l + 16);                       \
            }                                                                                      \
        }                                                                                          \
        return 1;
static inline int quant_block_decode(uint32_t type, const uint8_t *b, float *y) {
    switch (type) {
        QB_TYPES(QB_DECODE)
    default:
        return 0;
    }
}
#undef QB_DECODE
