/* layernorm.cu: layer norm and RMS norm (Llama) over the last dimension,
 * forward and backward. RMS norm is layer norm without centring and bias, so
 * both run the same kernels with `rms` set (mean taken as 0). One warp per row
 * (C is a few hundred to a few thousand: the row stays in L1 across the
 * passes); the weight/bias gradients are column sums done by 32-column tiles
 * with atomics. Not fused with the residual add: the model calls add then the
 * norm. */
#include "cuda_common.cuh"

enum { LN_WARPS = 8 }; /* rows per block */

/* out[N,C] = (inp - mean) * rstd * weight + bias; mean[N], rstd[N] saved (if
 * not NULL). rms: mean is 0 (not computed). */
__global__ void layernorm_forward_kernel(float *out, float *mean, float *rstd, const float *inp,
                                         const float *weight, const float *bias, float eps, int N,
                                         int C, bool rms) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(n, N) {
        const float *x = inp + n * C;
        float s = 0.0f, ss = 0.0f;
        for (int c = lane; c < C; c += 32) s += x[c];
        float m = rms ? 0.0f : warp_sum(s) / C;
        for (int c = lane; c < C; c += 32) ss += (x[c] - m) * (x[c] - m);
        float r = 1.0f / sqrtf(warp_sum(ss) / C + eps);
        for (int c = lane; c < C; c += 32) {
            float y = (x[c] - m) * r;
            out[n * C + c] = y * (weight ? weight[c] : 1.0f) + (bias ? bias[c] : 0.0f);
        }
        if (lane == 0 && mean) mean[n] = m;
        if (lane == 0 && rstd) rstd[n] = r;
    }
}

/* dinp[N,C] += rstd * (g - mean(g) - norm * mean(g * norm)), g = weight * dout;
 * mean NULL: RMS norm (no centring, no mean(g) term). */
__global__ void layernorm_dinp_kernel(float *dinp, const float *dout, const float *inp,
                                      const float *weight, const float *mean, const float *rstd,
                                      int N, int C) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(n, N) {
        const float *x = inp + n * C, *dy = dout + n * C;
        float m = mean ? mean[n] : 0.0f, r = rstd[n], sg = 0.0f, sgn = 0.0f;
        for (int c = lane; c < C; c += 32) {
            float g = dy[c] * (weight ? weight[c] : 1.0f);
            sg += g;
            sgn += g * (x[c] - m) * r;
        }
        sg = mean ? warp_sum(sg) / C : 0.0f;
        sgn = warp_sum(sgn) / C;
        for (int c = lane; c < C; c += 32) {
            float g = dy[c] * (weight ? weight[c] : 1.0f);
            dinp[n * C + c] += r * (g - sg - (x[c] - m) * r * sgn);
        }
    }
}

/* dweight[c] += sum_n dout * norm, dbias[c] += sum_n dout (mean NULL: RMS
 * norm). Block (32, 8): 32 columns, the 8 thread rows and the grid's y
 * dimension split the rows; partial sums meet in atomics. */
__global__ void layernorm_dparams_kernel(float *dweight, float *dbias, const float *dout,
                                         const float *inp, const float *mean, const float *rstd,
                                         int N, int C) {
    __shared__ float sw[8][33], sb[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float w = 0.0f, b = 0.0f;
    if (c < C)
        for (int n = blockIdx.y * 8 + threadIdx.y; n < N; n += gridDim.y * 8) {
            float dy = dout[(size_t)n * C + c];
            w += dy * (inp[(size_t)n * C + c] - (mean ? mean[n] : 0.0f)) * rstd[n];
            b += dy;
        }
    sw[threadIdx.y][threadIdx.x] = w;
    sb[threadIdx.y][threadIdx.x] = b;
    __syncthreads();
    if (threadIdx.y || c >= C) return;
    for (int y = 1; y < 8; y++) w += sw[y][threadIdx.x], b += sb[y][threadIdx.x];
    if (dweight) atomicAdd(&dweight[c], w);
    if (dbias) atomicAdd(&dbias[c], b);
}

static unsigned warp_row_blocks(int N) {
    return cuda_blocks((size_t)N, LN_WARPS);
}

void cuda_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                            const float *weight, const float *bias, float eps, int N, int C) {
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<<<warp_row_blocks(N), LN_WARPS * 32>>>(out, mean, rstd, inp, weight,
                                                                    bias, eps, N, C, false);
    CUDA_LAUNCHED("layernorm_forward");
}

void cuda_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, const float *mean,
                             const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    if (dinp) {
        layernorm_dinp_kernel<<<warp_row_blocks(N), LN_WARPS * 32>>>(dinp, dout, inp, weight, mean,
                                                                     rstd, N, C);
        CUDA_LAUNCHED("layernorm_backward (dinp)");
    }
    if (dweight || dbias) {
        dim3 grid((C + 31) / 32, cuda_row_groups(N)), block(32, 8);
        layernorm_dparams_kernel<<<grid, block>>>(dweight, dbias, dout, inp, mean, rstd, N, C);
        CUDA_LAUNCHED("layernorm_backward (dweight, dbias)");
    }
}

void cuda_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, float eps,
                          int N, int C) {
    if (N <= 0 || C <= 0) return;
    layernorm_forward_kernel<<<warp_row_blocks(N), LN_WARPS * 32>>>(out, NULL, rstd, inp, weight,
                                                                    NULL, eps, N, C, true);
    CUDA_LAUNCHED("rmsnorm_forward");
}

void cuda_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                           const float *weight, const float *rstd, int N, int C) {
    cuda_layernorm_backward(dinp, dweight, NULL, dout, inp, weight, NULL, rstd, N, C);
}
