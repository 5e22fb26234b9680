/* activation.h: the scalar math of the activations and of rope's frequencies, shared by the CPU
 * and CUDA backends so both compute exactly the same function. exp and erf are polynomial fits
 * rather than libm calls: the compiler vectorises them on the CPU (libm's expf/erff are opaque
 * calls), and they are as accurate as float needs (relative error < 2e-7). */
#pragma once
#include <math.h>
#include <stdint.h>

#include "loraft/ops.h"
#include "loraft/hostdevice.h"

/* e^r - 1 for |r| <= ln2/2: the degree-6 Taylor polynomial */
static inline LF_HOST_DEVICE float expm1_poly(float r) {
    return r * (1.0f +
                r * (0.5f + r * (1.6666667e-1f +
                                 r * (4.1666668e-2f + r * (8.3333338e-3f + r * 1.3888889e-3f)))));
}

/* exp(x) that the compiler can vectorise (libm's expf is a call it cannot): 2^k * e^r with
 * |r| <= ln2/2 and a degree-6 Taylor polynomial; relative error < 2e-7. Inputs are clamped
 * to [-87, 88], so exp of a very negative number is ~1e-38 rather than 0; NaN gives NaN. */
static inline LF_HOST_DEVICE float exp_approx(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x; /* NaN stays NaN */
    float k = rintf(x * 1.44269504088896341f);
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
    float p = 1.0f + expm1_poly(r);
    /* k in [-126, 127]: a normal power of two (for NaN, p is NaN whatever the bits) */
    union {
        uint32_t i;
        float f;
    } scale = {(uint32_t)((int32_t)k + 127) << 23};
    return p * scale.f;
}

/* erf(x) from the erfc fit of Numerical Recipes (fractional error < 1.2e-7), vectorisable;
 * GELU uses 1 + erf, where this is within 1.2e-7 of the exact value. */
static inline LF_HOST_DEVICE float erf_approx(float x) {
    float z = fabsf(x), t = 1.0f / (1.0f + 0.5f * z);
    float poly =
        -1.26551223f +
        t * (1.00002368f +
             t * (0.37409196f +
                  t * (0.09678418f +
                       t * (-0.18628806f +
                            t * (0.27886807f + t * (-1.13520398f +
                                                    t * (1.48851587f + t * (-0.82215223f +
                                                                            t * 0.17087277f))))))));
    float erfc = t * exp_approx(-z * z + poly);
    return x >= 0.0f ? 1.0f - erfc : erfc - 1.0f;
}

/* tanh(x) that vectorises (libm's tanhf is a call): (e^2z - 1) / (e^2z + 1) for z = |x|, odd.
 * Where z <= ln2/2, e^2z - 1 comes from p = e^(z/2) - 1, the polynomial alone, as q (q + 2) with
 * q = p (p + 2) = e^z - 1 (exp_approx(2z) - 1 would lose its digits there, and the polynomial's
 * error grows with its argument). Within 9e-8 of tanh (tanhf: 1.0e-7), relative 3.2e-7
 * (test_ops checks); NaN gives NaN, +-inf +-1. */
static inline LF_HOST_DEVICE float tanh_approx(float x) {
    float z = fabsf(x), p = expm1_poly(0.5f * z), q = p * (p + 2.0f);
    float em1 = z <= 0.34657359f ? q * (q + 2.0f) : exp_approx(2.0f * z) - 1.0f;
    return copysignf(em1 / (em1 + 2.0f), x);
}

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f
#define GELU_TANH_K 0.044715f

/* act(x) and d act(x) / dx (analytic) together, each transcendental computed once: a gated
 * activation's backward needs both. A caller that keeps one lets the compiler drop the other's
 * arithmetic. SiLU's sigmoid is 1 / (1 + exp_approx(-x)) (vectorises). */
static inline LF_HOST_DEVICE void act_both(float x, Activation act, float *value, float *slope) {
    switch (act) {
    case ACT_GELU: {
        float e = erf_approx(x * INV_SQRT_2);
        *value = 0.5f * x * (1.0f + e);
        *slope = 0.5f * (1.0f + e) + x * INV_SQRT_2PI * exp_approx(-0.5f * x * x);
        return;
    }
    case ACT_GELU_TANH: {
        float t = tanh_approx(SQRT_2_OVER_PI * (x + GELU_TANH_K * x * x * x));
        *value = 0.5f * x * (1.0f + t);
        *slope = 0.5f * (1.0f + t) +
                 0.5f * x * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_TANH_K * x * x);
        return;
    }
    case ACT_RELU:
        *value = x < 0.0f ? 0.0f : x; /* NaN stays NaN, as in torch */
        *slope = x > 0.0f ? 1.0f : 0.0f;
        return;
    case ACT_TANH: {
        float t = tanh_approx(x);
        *value = t, *slope = 1.0f - t * t;
        return;
    }
    case ACT_SILU: {
        float s = 1.0f / (1.0f + exp_approx(-x));
        *value = x * s, *slope = s * (1.0f + x * (1.0f - s));
        return;
    }
    }
    *value = x, *slope = 1.0f;
}

static inline LF_HOST_DEVICE float act_value(float x, Activation act) {
    float value, slope;
    act_both(x, act, &value, &slope);
    return value;
}

static inline LF_HOST_DEVICE float act_derivative(float x, Activation act) {
    float value, slope;
    act_both(x, act, &value, &slope);
    return slope;
}

/* Logit soft-capping (ops.h AttnScore.softcap, the LM head's final one: Gemma 2's): cap *
 * tanh(s / cap), within (-cap, cap). Its derivative, taken from the capped value so that backward
 * reuses forward's tanh: 1 - (capped / cap)^2. */
static inline LF_HOST_DEVICE float soft_cap(float s, float cap) {
    return cap * tanhf(s / cap);
}
static inline LF_HOST_DEVICE float soft_cap_slope(float capped, float cap) {
    float t = capped / cap;
    return 1.0f - t * t;
}

/* The LM head's logit z as its softmax reads it (ops.h OpsLogitMap): soft-capped where cap > 0,
 * then times inv_t, one over the temperature. Its derivative, from the mapped value: inv_t times
 * the cap's slope, whose capped value is mapped / inv_t, so 1 - (mapped / (cap inv_t))^2. With
 * inv_t 1 both are the soft-cap's own, to the bit. */
static inline LF_HOST_DEVICE float logit_map(float z, float cap, float inv_t) {
    return (cap > 0.0f ? soft_cap(z, cap) : z) * inv_t;
}
static inline LF_HOST_DEVICE float logit_map_slope(float mapped, float cap, float inv_t) {
    return cap > 0.0f ? inv_t * soft_cap_slope(mapped, cap * inv_t) : inv_t;
}
