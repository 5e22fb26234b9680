/* adamw.cu: the optimizer step (torch.optim.AdamW, one thread per element) and
 * the sum of squares behind gradient-norm clipping (per-block double partials,
 * summed on the host in a fixed order so the result does not depend on
 * scheduling). */
#include <math.h>

#include "cuda_common.cuh"

/* param, grad, m, v [n]. The same float expression order as the CPU reference:
 * decay, m as torch's lerp, then the bias-corrected step (bias corrections from
 * the host). */
__global__ void adamw_kernel(float *param, const float *grad, float *m, float *v, float beta1,
                             float beta2, float eps, float decay, float step_size, float bc2_sqrt,
                             size_t n) {
    GRID_STRIDE(i, n) {
        float g = grad[i];
        float mi = m[i] + (1.0f - beta1) * (g - m[i]);
        float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] * decay - step_size * (mi / (sqrtf(vi) / bc2_sqrt + eps));
    }
}

/* torch.optim.AdamW, step counted from 1; bias corrections in double like
 * torch's Python scalars */
void cuda_adamw_step(float *param, const float *grad, float *m, float *v, float lr, float beta1,
                     float beta2, float eps, float weight_decay, int step, size_t n) {
    if (!n) return;
    double bc1 = 1.0 - pow((double)beta1, step), bc2 = 1.0 - pow((double)beta2, step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - (double)lr * weight_decay);
    adamw_kernel<<<cuda_blocks(n, CUDA_THREADS), CUDA_THREADS>>>(
        param, grad, m, v, beta1, beta2, eps, decay, step_size, bc2_sqrt, n);
    CUDA_LAUNCHED("adamw_step");
}

enum { SUMSQ_BLOCKS = 1024 };
static double *sumsq_partials; /* device [SUMSQ_BLOCKS], allocated on first use */

/* partial[blockIdx.x] = sum of x[i]^2 over the block's grid-stride share, in
 * double */
__global__ void sum_squares_kernel(double *partial, const float *x, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* sum x[i]^2; NaN (error noted) on failure */
double cuda_sum_squares(const float *x, size_t n) {
    if (!n) return 0.0;
    if (!sumsq_partials &&
        cudaMalloc(&sumsq_partials, SUMSQ_BLOCKS * sizeof(double)) != cudaSuccess) {
        CUDA_CHECK(cudaGetLastError());
        sumsq_partials = NULL;
        return NAN;
    }
    unsigned blocks = cuda_blocks(n, CUDA_THREADS);
    if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
    sum_squares_kernel<<<blocks, CUDA_THREADS>>>(sumsq_partials, x, n);
    CUDA_LAUNCHED("sum_squares");
    double host[SUMSQ_BLOCKS], total = 0.0;
    cudaError_t e =
        cudaMemcpy(host, sumsq_partials, blocks * sizeof(double), cudaMemcpyDeviceToHost);
    CUDA_CHECK(e);
    if (e != cudaSuccess) return NAN;
    for (unsigned b = 0; b < blocks; b++) total += host[b];
    return total;
}
