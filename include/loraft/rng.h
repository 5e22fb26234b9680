/* rng.h: counter-based random numbers, identical on CPU and GPU.
 * Dropout masks are a pure function of (seed, element index), so backward regenerates the
 * mask instead of storing it, and a CUDA kernel draws exactly the CPU reference's mask. */
#pragma once
#include <stdint.h>

#include "loraft/hostdevice.h"

/* splitmix64 finaliser of (seed, index): a well-mixed 64-bit value. */
static inline LF_HOST_DEVICE uint64_t rng_hash(uint64_t seed, uint64_t index) {
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (index + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform float in [0, 1) with 24 random bits. */
static inline LF_HOST_DEVICE float rng_uniform(uint64_t seed, uint64_t index) {
    return (float)(rng_hash(seed, index) >> 40) * (1.0f / 16777216.0f);
}

/* Uniform float in [-1, 1), exactly 2 rng_uniform - 1 (NEFTune's noise, scaled). */
static inline LF_HOST_DEVICE float rng_symmetric(uint64_t seed, uint64_t index) {
    return 2.0f * rng_uniform(seed, index) - 1.0f;
}

/* 32-bit integer mix ("lowbias32", C. Wellons): two multiplies, so the per-element mask
 * loops vectorise with 32-bit vector multiplies (splitmix64's 64-bit products do not on
 * AVX2). */
static inline LF_HOST_DEVICE uint32_t rng_mix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    return x ^ (x >> 16);
}

/* Dropout multiplier for element `index`: 0 with probability p, else 1/(1-p). The seed is
 * already a well-mixed 64-bit value (rng_hash of the run seed, step and site); its two
 * halves key two rounds of the 32-bit mix. */
static inline LF_HOST_DEVICE float rng_dropout_scale(uint64_t seed, uint64_t index, float p) {
    if (p <= 0.0f) return 1.0f;
    uint32_t h = rng_mix32((uint32_t)index * 0x9E3779B9u + (uint32_t)seed);
    h = rng_mix32(h ^ (uint32_t)(seed >> 32) ^ (uint32_t)(index >> 32));
    float u = (float)(h >> 8) * (1.0f / 16777216.0f);
    return u < p ? 0.0f : 1.0f / (1.0f - p);
}

/* Dropout on a matrix of long rows, cheaper per element than rng_dropout_scale: attention's
 * probabilities P (row (b*NH + h)*T + i, column key j) and LoRA's input x [N,C] (row n, column
 * k), where the masks, drawn again by every kernel that needs them (forward, backward, each
 * adapted linear), are what bounds the kernels. One 32-bit draw per pair of columns (2u, 2u+1)
 * of a row, 16 bits a column (column 2u the low half), from a key per row made once:
 *   rng_row_key(seed, row)          the row's key (two rounds of the mix, once per row)
 *   rng_row_pair(row_key, u)        the draw of columns 2u, 2u+1 (one round per two elements)
 *   rng_row_scale(draw, half, p)    the multiplier of column 2u + half: 0 when its 16 bits are
 *                                   below p rounded to 1/65536 (a keep probability within 2^-17
 *                                   of 1 - p), else 1 / (1 - p)
 *   rng_row_dropout(seed, row, j, p)  the three for column j (1 when p <= 0). */
static inline LF_HOST_DEVICE uint32_t rng_row_key(uint64_t seed, uint64_t row) {
    uint32_t h = rng_mix32((uint32_t)row * 0x9E3779B9u + (uint32_t)seed);
    return rng_mix32(h ^ (uint32_t)(seed >> 32) ^ (uint32_t)(row >> 32));
}
static inline LF_HOST_DEVICE uint32_t rng_row_pair(uint32_t row_key, uint32_t u) {
    return rng_mix32(row_key + u * 0x9E3779B9u);
}
static inline LF_HOST_DEVICE float rng_row_scale(uint32_t draw, int half, float p) {
    uint32_t bits = half ? draw >> 16 : draw & 0xffffu;
    return bits < (uint32_t)(p * 65536.0f + 0.5f) ? 0.0f : 1.0f / (1.0f - p);
}
static inline LF_HOST_DEVICE float rng_row_dropout(uint64_t seed, uint64_t row, uint32_t j,
                                                   float p) {
    if (p <= 0.0f) return 1.0f;
    return rng_row_scale(rng_row_pair(rng_row_key(seed, row), j >> 1), (int)(j & 1), p);
}

/* A sequential generator for host-side use (init, shuffling): state advances by one. */
typedef struct Rng {
    uint64_t seed, counter;
} Rng;

static inline uint64_t rng_next(Rng *r) {
    return rng_hash(r->seed, r->counter++);
}
static inline float rng_next_uniform(Rng *r) {
    return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* Fisher-Yates over v[0..n), drawing from r: the same order on every machine. */
static inline void rng_shuffle(int *v, int n, Rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_next(r) % (uint64_t)(i + 1)), t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}
