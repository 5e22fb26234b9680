/* layernorm.cu: layer norm and RMS norm (Llama) over the last dimension,
 * forward and backward. RMS norm is layer norm without centring and bias, so
 * both run the same kernels with `rms` set (mean taken as 0). One warp per row
 * (C is a few hundred to a few thousand: the row stays in L1 across the passes), forward
 * four columns a lane at a time; the backward adds up the weight/bias gradients in its dinp
 * pass, per block in shared memory, a column a lane (distinct banks for its shared atomics). The
 * forward also takes the residual stream's dropout and add (residual_norm_forward): its first
 * pass forms x = drop(a) + b and leaves it in sum (or out) for the other two. */
#include "cuda_common.cuh"

/* warps a block (a row each at a time); rows a warp when the backward sums columns, so that
 * fewer blocks meet in global atomics */
enum { LN_WARPS = 8, LN_ROWS_PER_WARP = 4 };

/* out[N,C] = (x - mean) * rstd * weight + bias with x = inp, or (res not NULL) x = drop(inp; p,
 * seed) + res, kept in sum (or out) for the later passes; mean[N], rstd[N] and xh [N,C] =
 * bf16((x - mean) * rstd) saved (if not NULL). rms: mean is 0 (not computed). A lane takes four
 * columns at a time (one float4 where aligned), the same in every pass; the two statistics
 * passes and the output pass find the row in L1. */
__global__ void layernorm_forward_kernel(float *out, float *sum, float *mean, float *rstd,
                                         uint16_t *xh, const float *inp, const float *res, float p,
                                         uint64_t seed, const float *weight, const float *bias,
                                         float eps, int N, int C, bool rms) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(n, N) {
        const float *x = inp + n * C;
        float s = 0.0f, ss = 0.0f, v[4];
        if (res) { /* x = drop(inp) + res, into sum or out (the lane's own columns) */
            float *keep = (sum ? sum : out) + n * C;
            for (int c = 4 * lane; c < C; c += 128) {
                float r[4];
                load4(v, x, c, C), load4(r, res + n * C, c, C);
                for (int k = 0; k < 4; k++)
                    v[k] = v[k] * rng_dropout_scale(seed, (size_t)n * C + c + k, p) + r[k];
                store4(keep, v, c, C);
                s += (v[0] + v[1]) + (v[2] + v[3]);
            }
            x = keep;
        } else {
            for (int c = 4 * lane; c < C; c += 128) {
                load4(v, x, c, C); /* zero past C */
                s += (v[0] + v[1]) + (v[2] + v[3]);
            }
        }
        float m = rms ? 0.0f : warp_sum(s) / C;
        for (int c = 4 * lane; c < C; c += 128) {
            load4(v, x, c, C);
            for (int k = 0; k < 4 && c + k < C; k++) ss += (v[k] - m) * (v[k] - m);
        }
        float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);
        for (int c = 4 * lane; c < C; c += 128) {
            float w[4] = {1.0f, 1.0f, 1.0f, 1.0f}, b[4] = {0.0f, 0.0f, 0.0f, 0.0f}, y[4];
            load4(v, x, c, C);
            if (weight) load4(w, weight, c, C);
            if (bias) load4(b, bias, c, C);
            for (int k = 0; k < 4; k++) v[k] = (v[k] - m) * r, y[k] = v[k] * w[k] + b[k];
            store4(out + n * C, y, c, C);
            if (xh) store4_bf16(xh + n * C, v, c, C);
        }
        if (lane == 0 && mean) mean[n] = m;
        if (lane == 0 && rstd) rstd[n] = r;
    }
}

/* dinp[N,C] (+)= rstd * (g - mean(g) - norm * mean(g * norm)) (add 0: =), g = weight * dout, and
 * dweight[c] += sum_n dout * norm, dbias[c] += sum_n dout in the same pass over dout and inp
 * (norm = (inp - mean) * rstd), or over dout and xh (inp NULL: norm = xh's values):
 * the block's column sums gather in dynamic shared memory (sums[0..C) for dweight, [C..2C) for
 * dbias; the lanes of a warp own distinct columns, the warps meet in shared atomics) and reach
 * the outputs in one global atomic per column per block. Any output may be NULL; mean NULL:
 * RMS norm (no centring, no mean(g) term). */
__global__ void layernorm_backward_kernel(float *dinp, float *dweight, float *dbias,
                                          const float *dout, const float *inp, const uint16_t *xh,
                                          const float *weight, const float *mean, const float *rstd,
                                          int N, int C, int add) {
    extern __shared__ float sums[];
    bool params = dweight || dbias;
    if (params)
        for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) sums[c] = 0.0f;
    __syncthreads();
    int lane = threadIdx.x & 31;
    WARP_ROWS(n, N) {
        const float *x = inp ? inp + n * C : NULL, *dy = dout + n * C;
        const uint16_t *h = x ? NULL : xh + n * C;
        float m = mean && x ? mean[n] : 0.0f, r = rstd[n], sg = 0.0f, sgn = 0.0f;
        if (dinp) {
#pragma unroll 4
            for (int c = lane; c < C; c += 32) {
                float g = dy[c] * (weight ? weight[c] : 1.0f);
                sg += g;
                sgn += g * (x ? (x[c] - m) * r : qb_bf16(h[c]));
            }
            sg = mean ? warp_sum(sg) / C : 0.0f;
            sgn = warp_sum(sgn) / C;
        }
        for (int c = lane; c < C; c += 32) {
            float norm = x ? (x[c] - m) * r : qb_bf16(h[c]);
            if (dinp)
                put_grad(dinp + n * C + c,
                         r * (dy[c] * (weight ? weight[c] : 1.0f) - sg - norm * sgn), add);
            if (dweight) atomicAdd(&sums[c], dy[c] * norm);
            if (dbias) atomicAdd(&sums[C + c], dy[c]);
        }
    }
    __syncthreads();
    if (params)
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            if (dweight) atomicAdd(&dweight[c], sums[c]);
            if (dbias) atomicAdd(&dbias[c], sums[C + c]);
        }
}

static unsigned warp_row_blocks(int N) {
    return cuda_blocks((size_t)N, LN_WARPS);
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, uint16_t *xh, const float *inp,
                            const float *weight, const float *bias, float eps, int N, int C) {
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<<<warp_row_blocks(N), LN_WARPS * 32>>>(
        out, NULL, mean, rstd, xh, inp, NULL, 0.0f, 0, weight, bias, eps, N, C, false);
    CUDA_LAUNCHED("layernorm_forward");
}

/* x = drop(a) + b (sum = x), out = its layer norm, or RMS norm when mean is NULL */
void cuda_residual_norm_forward(float *out, float *sum, float *mean, float *rstd, uint16_t *xh,
                                const float *a, const float *b, float p, uint64_t seed,
                                const float *weight, const float *bias, float eps, int N, int C) {
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<<<warp_row_blocks(N), LN_WARPS * 32>>>(
        out, sum, mean, rstd, xh, a, b, p, seed, weight, bias, eps, N, C, mean == NULL);
    CUDA_LAUNCHED("residual_norm_forward");
}

void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const uint16_t *xh, const float *weight,
                             const float *mean, const float *rstd, int N, int C, int acc) {
    if (N <= 0 || C <= 0) return;
    bool params = dweight || dbias;
    unsigned blocks = cuda_blocks((size_t)N, LN_WARPS * (params ? LN_ROWS_PER_WARP : 1));
    size_t shared = params ? 2 * (size_t)C * sizeof(float) : 0;
    if (shared > (48 << 10) &&
        cudaFuncSetAttribute(layernorm_backward_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)shared) != cudaSuccess) {
        CUDA_FAIL("layernorm_backward: C too large for the column sums in shared memory");
        return;
    }
    layernorm_backward_kernel<<<blocks, LN_WARPS * 32, shared>>>(dinp, dweight, dbias, dout, inp,
                                                                 xh, weight, mean, rstd, N, C, acc);
    CUDA_LAUNCHED("layernorm_backward");
}

void cuda_rmsnorm_forward(float *out, float *rstd, uint16_t *xh, const float *inp,
                          const float *weight, float eps, int N, int C) {
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<<<warp_row_blocks(N), LN_WARPS * 32>>>(
        out, NULL, NULL, rstd, xh, inp, NULL, 0.0f, 0, weight, NULL, eps, N, C, true);
    CUDA_LAUNCHED("rmsnorm_forward");
}

void cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const uint16_t *xh, const float *weight, const float *rstd, int N, int C,
                           int acc) {
    cuda_layernorm_backward(dinp, dweight, NULL, dout, inp, xh, weight, NULL, rstd, N, C, acc);
}
