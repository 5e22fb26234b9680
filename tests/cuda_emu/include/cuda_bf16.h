/* cuda_bf16.h (emulation): __nv_bfloat16 and the conversions the kernels use, with CUDA's
 * semantics: __float2bfloat16 rounds to nearest, ties to even, and turns every NaN into the
 * canonical 0x7fff; __bfloat162float is exact; __bfloat16_as_ushort gives the bits. No
 * arithmetic on __nv_bfloat16: a kernel that computes in bf16 stops the emulated build here
 * rather than compute in another type. */
#pragma once
#include <stdint.h>
#include <string.h>

struct __nv_bfloat16 {
    unsigned short __x;
};

static inline __nv_bfloat16 __float2bfloat16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return __nv_bfloat16{0x7fff};
    return __nv_bfloat16{(unsigned short)((u + 0x7fffu + ((u >> 16) & 1)) >> 16)};
}

static inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) {
    return h.__x;
}

static inline float __bfloat162float(__nv_bfloat16 h) {
    uint32_t u = (uint32_t)h.__x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
