/* elementwise.cu: the memory-bound ops of ops_cuda: activations, SwiGLU, dropout,
 * add/axpy/scale, [CLS] pooling and the embedding lookup. These run at HBM
 * bandwidth or not at all, so they are kept plain: grid-stride loops in which a
 * thread takes 4 consecutive elements, loaded as one float4 where aligned (a
 * thread per float keeps too few bytes in flight to cover HBM latency), 8 in the
 * activations, whose bf16 forms move half the bytes, and a warp per token row for the embedding.
 * Only the token-type gradient, a column sum over all rows, uses a shared-memory tile. */
#include "cuda_common.cuh"
#include "loraft/activation.h"

#include <type_traits>

/* ---- 4 elements a thread: i is the first of them (a multiple of 4) ---- */
#define GRID_STRIDE4(i, n)                                                                         \
    for (size_t i = 4 * (blockIdx.x * (size_t)blockDim.x + threadIdx.x); i < (size_t)(n);          \
         i += 4 * (size_t)gridDim.x * blockDim.x)

static unsigned blocks4(size_t n) {
    return cuda_blocks((n + 3) / 4, CUDA_THREADS);
}

/* ---- 8 elements a thread, as two groups of 4 (i and i + 4, G8 of them), the activations' and
 * gated activations' loop: a thread loads both groups before it computes or stores either, so
 * it has twice the bytes in flight. Their bf16 forms move 8 bytes a group, too few a thread to
 * cover HBM's latency (the H200 measured them at 25-34 % of copy bandwidth, their f32 forms at
 * 66-100 %). ---- */
enum { G8 = 2 };
#define GRID_STRIDE8(i, n)                                                                         \
    for (size_t i = 8 * (blockIdx.x * (size_t)blockDim.x + threadIdx.x); i < (size_t)(n);          \
         i += 8 * (size_t)gridDim.x * blockDim.x)

static unsigned blocks8(size_t n) {
    return cuda_blocks((n + 7) / 8, CUDA_THREADS);
}

/* One value, or four (store4), as the destination's type: f32, or bf16 bits rounded to nearest
 * even */
__device__ inline void store_one(float *dst, float x) {
    *dst = x;
}
__device__ inline void store_one(uint16_t *dst, float x) {
    *dst = __bfloat16_as_ushort(__float2bfloat16(x));
}
__device__ inline void store4(uint16_t *dst, const float v[4], size_t i, size_t n) {
    store4_bf16(dst, v, i, n);
}

/* v[k] at element i + k (< n) of [n/F, F] rows ld apart, f32 or bf16: one 16- or 8-byte store
 * when the four share a row, as they do for F a multiple of 4 (no division where the rows are
 * contiguous). */
template <typename T>
__device__ inline void store4_rows(T *dst, const float v[4], size_t i, size_t n, size_t F,
                                   size_t ld) {
    if (ld == F) return store4(dst, v, i, n);
    size_t r = index_div(i, F), c = i - r * F;
    if (c + 4 <= F && i + 4 <= n) {
        store4(dst + r * ld, v, c, F);
        return;
    }
    for (int k = 0; k < 4 && i + k < n; k++) {
        size_t e = i + k, row = index_div(e, F);
        store_one(dst + row * ld + e - row * F, v[k]);
    }
}

/* ---- activations ----
 * Each kernel is compiled per activation (ACT), so a thread's values take no switch each and
 * the compiler sees the whole of one function: with_activation launches the one for act. */
template <typename L> static void with_activation(Activation act, L launch) {
    switch (act) {
    case ACT_GELU:
        return launch(std::integral_constant<Activation, ACT_GELU>());
    case ACT_GELU_TANH:
        return launch(std::integral_constant<Activation, ACT_GELU_TANH>());
    case ACT_RELU:
        return launch(std::integral_constant<Activation, ACT_RELU>());
    case ACT_TANH:
        return launch(std::integral_constant<Activation, ACT_TANH>());
    case ACT_SILU:
        return launch(std::integral_constant<Activation, ACT_SILU>());
    }
    CUDA_FAIL("activation: unknown activation");
}

/* x[k] = the activation's input at i + k of [n/F, F]: inp, or its bf16 copy in saved plus bias
 * (if any: a bf16 GEMM's output, its bias left to the activation) */
__device__ inline void load4_act_input(float x[4], const float *inp, const uint16_t *saved,
                                       const float *bias, size_t i, size_t n, int F) {
    load4_saved(x, inp, saved, i, n);
    if (inp || !bias) return;
    for (int k = 0, c = (int)(i - index_div(i, F) * F); k < 4; k++, c = c + 1 < F ? c + 1 : 0)
        x[k] += bias[c];
}

template <Activation ACT>
__global__ void activation_forward_kernel(float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                                          const float *inp, const float *bias, size_t n, int F) {
    GRID_STRIDE8(i, n) {
        float x[G8][4];
#pragma unroll
        for (int h = 0; h < G8; h++) load4_act_input(x[h], inp, saved, bias, i + 4 * h, n, F);
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            if (saved && inp) store4_bf16(saved, x[h], at, n);
            for (int k = 0; k < 4; k++) x[h][k] = act_value(x[h][k], ACT);
            if (out) store4(out, x[h], at, n);
            if (out_bf16) store4_rows(out_bf16, x[h], at, n, F, ldb);
        }
    }
}

/* six blocks an SM (40 registers on sm_90, and an 8-byte spill store, never loaded; 43-48 left
 * five) */
template <Activation ACT>
__global__ void __launch_bounds__(CUDA_THREADS, 6)
    activation_backward_kernel(float *dinp, uint16_t *dinp_bf16, const float *inp,
                               const uint16_t *saved, const float *bias, const float *dout,
                               const uint16_t *dout_bf16, size_t n, int F, int acc) {
    GRID_STRIDE8(i, n) {
        float x[G8][4], d[G8][4], dx[G8][4] = {};
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            load4_act_input(x[h], inp, saved, bias, at, n, F);
            load4_saved(d[h], dout, dout_bf16, at, n);
            if (acc) load4(dx[h], dinp, at, n);
        }
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            for (int k = 0; k < 4; k++) dx[h][k] += act_derivative(x[h][k], ACT) * d[h][k];
            if (dinp) store4(dinp, dx[h], at, n);
            if (dinp_bf16) store4_bf16(dinp_bf16, dx[h], at, n);
        }
    }
}

/* out[n] = act(x) and / or out_bf16 = bf16(out) (rows of F, ldb apart); x = inp (saved, not
 * NULL, = bf16(inp)), or saved's values + bias */
void cuda_activation_forward(float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                             const float *inp, const float *bias, Activation act, size_t n, int F) {
    if (!n || F <= 0) return;
    with_activation(act, [&](auto a) {
        constexpr Activation ACT = decltype(a)::value;
        activation_forward_kernel<ACT>
            <<<blocks8(n), CUDA_THREADS>>>(out, out_bf16, ldb, saved, inp, bias, n, F);
    });
    CUDA_LAUNCHED("activation_forward");
}

/* dinp[n] (+)= act'(x) * dout[n] (acc 0: =) and / or dinp_bf16 = bf16(dinp); x: inp, or its
 * copy in saved plus bias; dout, or its bf16 copy */
void cuda_activation_backward(float *dinp, uint16_t *dinp_bf16, const float *inp,
                              const uint16_t *saved, const float *bias, const float *dout,
                              const uint16_t *dout_bf16, Activation act, size_t n, int F, int acc) {
    if (!n || F <= 0) return;
    with_activation(act, [&](auto a) {
        constexpr Activation ACT = decltype(a)::value;
        activation_backward_kernel<ACT><<<blocks8(n), CUDA_THREADS>>>(
            dinp, dinp_bf16, inp, saved, bias, dout, dout_bf16, n, F, acc);
    });
    CUDA_LAUNCHED("activation_backward");
}

/* v[k] = element i + k (< n, else 0) of [n/F, F] rows ld apart at src: one float4 load when the
 * four share a row (F a multiple of 4) and it is aligned (no division where the rows are
 * contiguous). */
__device__ inline void load4_rows(float v[4], const float *src, size_t i, size_t n, size_t F,
                                  size_t ld) {
    if (ld == F) return load4(v, src, i, n);
    size_t r = index_div(i, F), c = i - r * F;
    if (c + 4 <= F && i + 4 <= n) {
        load4(v, src + r * ld, c, F);
        return;
    }
    for (int k = 0; k < 4; k++) {
        size_t e = i + k, row = index_div(e, F);
        v[k] = e < n ? src[row * ld + e - row * F] : 0.0f;
    }
}

/* load4_rows of bf16 values, widened: one 8-byte load when the four share a row and align */
__device__ inline void load4_rows(float v[4], const uint16_t *src, size_t i, size_t n, size_t F,
                                  size_t ld) {
    if (ld == F) return load4_saved(v, NULL, src, i, n);
    size_t r = index_div(i, F), c = i - r * F;
    if (c + 4 <= F && i + 4 <= n) {
        load4_saved(v, NULL, src + r * ld, c, F);
        return;
    }
    for (int k = 0; k < 4; k++) {
        size_t e = i + k, row = index_div(e, F);
        v[k] = e < n ? qb_bf16(src[row * ld + e - row * F]) : 0.0f;
    }
}

/* ---- gated activations (SwiGLU, GeGLU): out = act(gate) * up; saved [n/F, 2F] = rows
 * [bf16(gate) | bf16(up)] ---- */
/* six blocks an SM (40 registers, no spills on sm_90; 42-44 left five) */
template <Activation ACT>
__global__ void __launch_bounds__(CUDA_THREADS, 6)
    glu_forward_kernel(float *out, uint16_t *out_bf16, int ldb, uint16_t *saved, const float *gate,
                       const float *up, size_t n, int F, int ld) {
    GRID_STRIDE8(i, n) {
        float g[G8][4], u[G8][4];
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            if (gate) {
                load4_rows(g[h], gate, at, n, F, ld), load4_rows(u[h], up, at, n, F, ld);
            } else { /* the GEMM's bf16 output */
                load4_rows(g[h], saved, at, n, F, 2 * (size_t)F);
                load4_rows(u[h], saved + F, at, n, F, 2 * (size_t)F);
            }
        }
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            if (gate && saved)
                store4_rows(saved, g[h], at, n, F, 2 * (size_t)F),
                    store4_rows(saved + F, u[h], at, n, F, 2 * (size_t)F);
            for (int k = 0; k < 4; k++) g[h][k] = act_value(g[h][k], ACT) * u[h][k];
            if (out) store4(out, g[h], at, n);
            if (out_bf16) store4_rows(out_bf16, g[h], at, n, F, ldb);
        }
    }
}

/* four blocks an SM (64 registers, no spills on sm_90; 70 left three) */
template <Activation ACT>
__global__ void __launch_bounds__(CUDA_THREADS, 4)
    glu_backward_kernel(float *dgate, float *dup, uint16_t *dgu_bf16, const float *dout,
                        const uint16_t *dout_bf16, const float *gate, const float *up,
                        const uint16_t *saved, size_t n, int F, int ld, int acc) {
    GRID_STRIDE8(i, n) {
        /* NULL outputs: computed, not stored */
        float g[G8][4], u[G8][4], d[G8][4], dg[G8][4] = {}, du[G8][4] = {};
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            if (gate) {
                load4_rows(g[h], gate, at, n, F, ld), load4_rows(u[h], up, at, n, F, ld);
            } else {
                load4_rows(g[h], saved, at, n, F, 2 * (size_t)F);
                load4_rows(u[h], saved + F, at, n, F, 2 * (size_t)F);
            }
            load4_saved(d[h], dout, dout_bf16, at, n);
            if (dgate && acc) load4_rows(dg[h], dgate, at, n, F, ld);
            if (dup && acc) load4_rows(du[h], dup, at, n, F, ld);
        }
#pragma unroll
        for (int h = 0; h < G8; h++) {
            size_t at = i + 4 * h;
            for (int k = 0; k < 4; k++) {
                float value, slope;
                act_both(g[h][k], ACT, &value, &slope);
                dg[h][k] += d[h][k] * u[h][k] * slope;
                du[h][k] += d[h][k] * value;
            }
            if (dgate) store4_rows(dgate, dg[h], at, n, F, ld);
            if (dup) store4_rows(dup, du[h], at, n, F, ld);
            if (dgu_bf16) {
                store4_rows(dgu_bf16, dg[h], at, n, F, 2 * (size_t)F);
                store4_rows(dgu_bf16 + F, du[h], at, n, F, 2 * (size_t)F);
            }
        }
    }
}

void cuda_glu_forward(Activation act, float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                      const float *gate, const float *up, size_t n, int F, int ld) {
    if (!n || F <= 0) return;
    with_activation(act, [&](auto a) {
        constexpr Activation ACT = decltype(a)::value;
        glu_forward_kernel<ACT>
            <<<blocks8(n), CUDA_THREADS>>>(out, out_bf16, ldb, saved, gate, up, n, F, ld);
    });
    CUDA_LAUNCHED("glu_forward");
}

/* dgate (+)= dout * up * act'(gate); dup (+)= dout * act(gate) (acc 0: =) and / or their bf16
 * copies; any may be NULL; gate and up, or their copies in saved's rows; dout, or its bf16
 * copy; gate's, up's and the gradients' rows ld apart */
void cuda_glu_backward(Activation act, float *dgate, float *dup, uint16_t *dgu_bf16,
                       const float *dout, const uint16_t *dout_bf16, const float *gate,
                       const float *up, const uint16_t *saved, size_t n, int F, int ld, int acc) {
    if (!n || F <= 0 || (!dgate && !dup && !dgu_bf16)) return;
    with_activation(act, [&](auto a) {
        constexpr Activation ACT = decltype(a)::value;
        glu_backward_kernel<ACT><<<blocks8(n), CUDA_THREADS>>>(
            dgate, dup, dgu_bf16, dout, dout_bf16, gate, up, saved, n, F, ld, acc);
    });
    CUDA_LAUNCHED("glu_backward");
}

/* ---- dropout: the mask is rng_dropout_scale(seed ^ the step's, element index), as on the
 * CPU ---- */
__global__ void dropout_forward_kernel(float *out, const float *inp, float p, uint64_t seed,
                                       const OpsStep *step, size_t n) {
    seed ^= step_seed(step);
    GRID_STRIDE4(i, n) {
        float x[4];
        load4(x, inp, i, n);
        for (int k = 0; k < 4; k++) x[k] *= rng_dropout_scale(seed, i + k, p);
        store4(out, x, i, n);
    }
}

__global__ void uniform_noise_kernel(float *x, float bound, uint64_t seed, const OpsStep *step,
                                     size_t n) {
    seed ^= step_seed(step);
    GRID_STRIDE4(i, n) {
        float v[4];
        load4(v, x, i, n);
        for (int k = 0; k < 4; k++) v[k] += __fmul_rn(bound, rng_symmetric(seed, i + k));
        store4(x, v, i, n);
    }
}

__global__ void dropout_backward_kernel(float *dinp, uint16_t *dinp_bf16, const float *dout,
                                        float p, uint64_t seed, const OpsStep *step, size_t n,
                                        int acc) {
    seed ^= step_seed(step);
    GRID_STRIDE4(i, n) {
        float d[4], dx[4] = {0};
        load4(d, dout, i, n);
        if (acc) load4(dx, dinp, i, n);
        for (int k = 0; k < 4; k++) dx[k] += d[k] * rng_dropout_scale(seed, i + k, p);
        if (dinp) store4(dinp, dx, i, n);
        if (dinp_bf16) store4_bf16(dinp_bf16, dx, i, n);
    }
}

/* out[n] = inp[n] * mask; out == inp allowed */
void cuda_dropout_forward(float *out, const float *inp, float p, uint64_t seed, size_t n) {
    if (!n) return;
    dropout_forward_kernel<<<blocks4(n), CUDA_THREADS>>>(out, inp, p, seed, cuda_step(), n);
    CUDA_LAUNCHED("dropout_forward");
}

void cuda_uniform_noise(float *x, float bound, uint64_t seed, size_t n) {
    if (!n) return;
    uniform_noise_kernel<<<blocks4(n), CUDA_THREADS>>>(x, bound, seed, cuda_step(), n);
    CUDA_LAUNCHED("uniform_noise");
}

/* dinp[n] (+)= dout[n] * mask and / or dinp_bf16 = bf16(dinp) */
void cuda_dropout_backward(float *dinp, uint16_t *dinp_bf16, const float *dout, float p,
                           uint64_t seed, size_t n, int acc) {
    if (!n) return;
    dropout_backward_kernel<<<blocks4(n), CUDA_THREADS>>>(dinp, dinp_bf16, dout, p, seed,
                                                          cuda_step(), n, acc);
    CUDA_LAUNCHED("dropout_backward");
}

/* ---- vector arithmetic ---- */
__global__ void add_kernel(float *out, const float *a, const float *b, size_t n) {
    GRID_STRIDE4(i, n) {
        float x[4], y[4];
        load4(x, a, i, n), load4(y, b, i, n);
        for (int k = 0; k < 4; k++) x[k] += y[k];
        store4(out, x, i, n);
    }
}

__global__ void axpy_kernel(float *dst, const float *src, float alpha, size_t n) {
    GRID_STRIDE4(i, n) {
        float x[4], y[4];
        load4(x, dst, i, n), load4(y, src, i, n);
        for (int k = 0; k < 4; k++) x[k] += alpha * y[k];
        store4(dst, x, i, n);
    }
}

__global__ void scale_kernel(float *x, float s, size_t n) {
    GRID_STRIDE4(i, n) {
        float v[4];
        load4(v, x, i, n);
        for (int k = 0; k < 4; k++) v[k] *= s;
        store4(x, v, i, n);
    }
}

void cuda_add(float *out, const float *a, const float *b, size_t n) {
    if (!n) return;
    add_kernel<<<blocks4(n), CUDA_THREADS>>>(out, a, b, n);
    CUDA_LAUNCHED("add");
}

void cuda_axpy(float *dst, const float *src, float alpha, size_t n) {
    if (!n) return;
    axpy_kernel<<<blocks4(n), CUDA_THREADS>>>(dst, src, alpha, n);
    CUDA_LAUNCHED("axpy");
}

void cuda_scale(float *x, float s, size_t n) {
    if (!n) return;
    scale_kernel<<<blocks4(n), CUDA_THREADS>>>(x, s, n);
    CUDA_LAUNCHED("scale");
}

/* ---- first token: out[B,C] <-> inp[B,T,C] at t = 0 ---- */
__global__ void first_token_kernel(float *dst, const float *src, int T, int C, int B,
                                   int backward) {
    GRID_STRIDE(i, (size_t)B * C) {
        size_t b = i / C, c = i % C, tok = b * T * C + c;
        if (backward)
            dst[tok] += src[i];
        else
            dst[i] = src[tok];
    }
}

void cuda_first_token_forward(float *out, const float *inp, int B, int T, int C) {
    if (B <= 0 || C <= 0) return;
    first_token_kernel<<<cuda_blocks((size_t)B * C, CUDA_THREADS), CUDA_THREADS>>>(out, inp, T, C,
                                                                                   B, 0);
    CUDA_LAUNCHED("first_token_forward");
}

void cuda_first_token_backward(float *dinp, const float *dout, int B, int T, int C) {
    if (B <= 0 || C <= 0) return;
    first_token_kernel<<<cuda_blocks((size_t)B * C, CUDA_THREADS), CUDA_THREADS>>>(dinp, dout, T, C,
                                                                                   B, 1);
    CUDA_LAUNCHED("first_token_backward");
}

/* ---- embeddings: out[B,T,C] = wte[ids] + wpe[t] + wtt[types] ---- */

/* Token id and type of row n; raises a fault bit (and returns -1) for a bad
 * one. */
__device__ inline int checked_id(const int32_t *ids, size_t n, int *fault) {
    int id = ids[n];
    if (id < 0 && fault) atomicOr(fault, FAULT_TOKEN_ID);
    return id;
}

__device__ inline int checked_type(const int32_t *types, size_t n, int *fault) {
    int ty = types ? types[n] : 0;
    if ((ty < 0 || ty > 1) && fault) atomicOr(fault, FAULT_TOKEN_TYPE);
    return ty >= 0 && ty <= 1 ? ty : -1;
}

/* A token's row of wte as f32: the table's, or (T bf16) widened */
__device__ inline float table_value(const float *row, int c) {
    return row[c];
}
__device__ inline float table_value(const __nv_bfloat16 *row, int c) {
    return __bfloat162float(row[c]);
}

/* A warp per token row n: its id and type are read once and no index is divided. out never
 * aliases the tables (__restrict__), so the loads of several columns can be in flight at once.
 * TE: wte's type, f32 or bf16 (a frozen table stored so alone). */
template <typename TE>
__global__ void embedding_forward_kernel(float *__restrict__ out, const int32_t *ids,
                                         const int32_t *types, const int32_t *pos, const TE *wte,
                                         const float *wpe, const float *wtt, int T, int C, size_t N,
                                         int *fault) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(n, N) {
        int id = checked_id(ids, n, fault), ty = wtt ? checked_type(types, n, fault) : -1;
        const TE *te = id >= 0 ? wte + (size_t)id * C : NULL;
        const float *pe = wpe ? wpe + (size_t)(pos ? pos[n] : n % T) * C : NULL;
        const float *tt = ty >= 0 ? wtt + ty * C : NULL;
        for (int c = lane; c < C; c += 32)
            out[n * C + c] =
                (pe ? pe[c] : 0.0f) + (te ? table_value(te, c) : 0.0f) + (tt ? tt[c] : 0.0f);
    }
}

/* dwte[ids[n]] += dout[n] (C values a row) for the rows n whose id is not pad, each table row's
 * additions in increasing n: the same bits every run, where atomics would add a repeated token's
 * rows in the order they arrive. A table row is cut in pieces of 128 columns; a warp owns the
 * (id, piece) pairs whose index is its own modulo the grid's warps, reads the ids 32 at a time and
 * adds its pieces of its tokens' rows in order, four columns a lane. */
enum { DWTE_PIECE = 128 };
__global__ void embedding_dwte_kernel(float *dwte, const float *dout, const int32_t *ids, int pad,
                                      int C, size_t N, int *fault) {
    int lane = threadIdx.x & 31, pieces = (C + DWTE_PIECE - 1) / DWTE_PIECE;
    size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) / 32;
    size_t warps = (size_t)gridDim.x * blockDim.x / 32;
    for (size_t n0 = 0; n0 < N; n0 += 32) {
        int id = n0 + lane < N ? checked_id(ids, n0 + lane, warp ? NULL : fault) : -1;
        int mine = id >= 0 && id != pad;
        for (int p = 0; p < pieces; p++) {
            unsigned own =
                __ballot_sync(0xffffffffu, mine && ((size_t)id * pieces + p) % warps == warp);
            for (; own; own &= own - 1) {
                int k = __ffs((int)own) - 1, row = __shfl_sync(0xffffffffu, id, k);
                size_t c = (size_t)p * DWTE_PIECE + 4 * lane;
                float *to = dwte + (size_t)row * C;
                float v[4], d[4];
                load4(v, to, c, C);
                load4(d, dout + (n0 + k) * C, c, C);
                for (int q = 0; q < 4; q++) v[q] += d[q];
                store4(to, v, c, C);
            }
        }
    }
}

/* dwpe[t,c] += sum_b dout[b,t,c]: one thread per (t, c), no atomics. */
__global__ void embedding_dwpe_kernel(float *dwpe, const float *dout, int B, int T, int C) {
    GRID_STRIDE(i, (size_t)T * C) {
        float s = 0.0f;
        for (int b = 0; b < B; b++) s += dout[(size_t)b * T * C + i];
        dwpe[i] += s;
    }
}

/* dwtt[ty,c] += sum over the rows of type ty. Block (32, 8) owns 32 channels; the
 * rows are split over threadIdx.y and the grid's y dimension, and the block's partial
 * sums for both types meet in atomics. */
__global__ void embedding_dwtt_kernel(float *dwtt, const float *dout, const int32_t *types, int C,
                                      int N, int *fault) {
    __shared__ float part[2][8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float s[2] = {0.0f, 0.0f};
    if (c < C)
        for (int n = blockIdx.y * 8 + threadIdx.y; n < N; n += gridDim.y * 8) {
            int ty = checked_type(types, n, fault);
            if (ty >= 0) s[ty] += dout[(size_t)n * C + c];
        }
    part[0][threadIdx.y][threadIdx.x] = s[0];
    part[1][threadIdx.y][threadIdx.x] = s[1];
    __syncthreads();
    if (threadIdx.y || c >= C) return;
    for (int y = 1; y < 8; y++) s[0] += part[0][y][threadIdx.x], s[1] += part[1][y][threadIdx.x];
    atomicAdd(&dwtt[c], s[0]);
    atomicAdd(&dwtt[C + c], s[1]);
}

void cuda_embedding_forward(float *out, const int32_t *ids, const int32_t *types,
                            const int32_t *pos, const float *wte, const uint16_t *wte_bf16,
                            const float *wpe, const float *wtt, int B, int T, int C) {
    size_t N = (size_t)B * T;
    if (!N || C <= 0) return;
    unsigned blocks = cuda_blocks(N, CUDA_THREADS / 32);
    if (wte)
        embedding_forward_kernel<float><<<blocks, CUDA_THREADS>>>(out, ids, types, pos, wte, wpe,
                                                                  wtt, T, C, N, cuda_fault_word());
    else
        embedding_forward_kernel<__nv_bfloat16>
            <<<blocks, CUDA_THREADS>>>(out, ids, types, pos, (const __nv_bfloat16 *)wte_bf16, wpe,
                                       wtt, T, C, N, cuda_fault_word());
    CUDA_LAUNCHED("embedding_forward");
}

void cuda_embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                             const int32_t *ids, const int32_t *types, int pad, int B, int T,
                             int C) {
    size_t N = (size_t)B * T;
    if (!N || C <= 0) return;
    if (dwte) {
        /* a warp per 16 rows at most, 2,048 at most: each reads every id */
        size_t warps = N < 32768 ? (N + 15) / 16 : 2048;
        embedding_dwte_kernel<<<cuda_blocks(warps, CUDA_THREADS / 32), CUDA_THREADS>>>(
            dwte, dout, ids, pad, C, N, cuda_fault_word());
        CUDA_LAUNCHED("embedding_backward (wte)");
    }
    if (dwpe) {
        embedding_dwpe_kernel<<<cuda_blocks((size_t)T * C, CUDA_THREADS), CUDA_THREADS>>>(
            dwpe, dout, B, T, C);
        CUDA_LAUNCHED("embedding_backward (wpe)");
    }
    if (dwtt) {
        embedding_dwtt_kernel<<<dim3((C + 31) / 32, cuda_row_groups(N)), dim3(32, 8)>>>(
            dwtt, dout, types, C, (int)N, cuda_fault_word());
        CUDA_LAUNCHED("embedding_backward (wtt)");
    }
}
