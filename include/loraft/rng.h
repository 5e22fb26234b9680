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

/* Dropout multiplier for element `index`: 0 with probability p, else 1/(1-p). */
static inline LF_HOST_DEVICE float rng_dropout_scale(uint64_t seed, uint64_t index, float p) {
    if (p <= 0.0f) return 1.0f;
    return rng_uniform(seed, index) < p ? 0.0f : 1.0f / (1.0f - p);
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
