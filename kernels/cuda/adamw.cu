/* adamw.cu: the optimizer step over every trainable tensor (ops.h adamw_step) in two
 * launches and no copy to the host: the gradients' sum of squares as per-block double
 * partials, then one AdamW kernel whose every block adds those partials up in the same fixed
 * order (so each gets the same norm, and the result does not depend on scheduling), derives
 * the clip coefficient and updates the table's pieces, a piece per block. */
#include <math.h>

#include "cuda_common.cuh"

/* threads a piece (OPS_ADAMW_PIECE values), 4 values a thread at a time: a LoRA's few pieces
 * still keep enough loads in flight */
enum { ADAMW_THREADS = 1024 };

/* partial[blockIdx.x] = sum of x[i]^2 over the block's grid-stride share, in double */
__global__ void sum_squares_kernel(double *partial, const float *x, size_t n) {
    double s = 0.0;
    GRID_STRIDE(i, n) s += (double)x[i] * x[i];
    s = block_sum(s);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

/* The global norm from the partials; every thread of every block gets the same value. */
__device__ double norm_of_partials(const double *partial, unsigned count) {
    double s = 0.0;
    for (unsigned i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
    return sqrt(block_sum(s));
}

/* The bias corrections come from the host, and each tensor's decay factor and step size are
 * worked out in the CPU reference's expressions (its learning rate is the step's times its
 * lr_scale), so that the float expression order is the reference's: decay, m as torch's lerp,
 * then the step. */
struct AdamWFactors {
    float beta1, beta2, eps, bc2_sqrt, lr, weight_decay, max_norm;
    double bc1;
};

__global__ void adamw_kernel(const AdamWTensor *tensors, int n_tensors, const float *grads,
                             float *m, float *v, AdamWFactors f, const double *partial,
                             unsigned n_partials, double *norm_out) {
    double norm = norm_of_partials(partial, n_partials);
    if (blockIdx.x == 0 && threadIdx.x == 0) *norm_out = norm;
    if (!isfinite(norm)) return; /* the caller stops; no update made of NaNs */
    double coef = f.max_norm / (norm + 1e-6);
    bool clip = f.max_norm > 0 && coef < 1.0;
    float c = (float)coef;
    for (int t = blockIdx.x; t < n_tensors; t += gridDim.x) {
        AdamWTensor x = tensors[t];
        float lr = f.lr * x.lr_scale, step_size = (float)((double)lr / f.bc1);
        float decay = x.decay ? (float)(1.0 - (double)lr * f.weight_decay) : 1.0f;
        const float *gx = grads + x.offset;
        float *mx = m + x.offset, *vx = v + x.offset;
        for (size_t i = 4 * threadIdx.x; i < x.n; i += 4 * blockDim.x) {
            float g[4], mi[4], vi[4], p[4];
            load4(g, gx, i, x.n), load4(mi, mx, i, x.n), load4(vi, vx, i, x.n);
            load4(p, x.param, i, x.n);
            for (int k = 0; k < 4; k++) {
                float gk = clip ? __fmul_rn(g[k], c) : g[k]; /* rounded as a separate scale */
                mi[k] = mi[k] + (1.0f - f.beta1) * (gk - mi[k]);
                vi[k] = f.beta2 * vi[k] + (1.0f - f.beta2) * gk * gk;
                p[k] = p[k] * decay - step_size * (mi[k] / (sqrtf(vi[k]) / f.bc2_sqrt + f.eps));
            }
            store4(mx, mi, i, x.n), store4(vx, vi, i, x.n), store4(x.param, p, i, x.n);
        }
    }
}

/* torch.optim.AdamW with clip_grad_norm_ folded in; bias corrections in double like torch's
 * Python scalars. */
void cuda_adamw_step(const AdamWTensor *tensors, int n_tensors, const float *grads, float *m,
                     float *v, size_t n, AdamWHyper h, double *norm, double *scratch) {
    double bc1 = 1.0 - pow((double)h.beta1, h.step), bc2 = 1.0 - pow((double)h.beta2, h.step);
    AdamWFactors f = {
        h.beta1, h.beta2, h.eps, (float)sqrt(bc2), h.lr, h.weight_decay, h.max_norm, bc1,
    };
    unsigned partials = cuda_blocks(n, CUDA_THREADS);
    if (partials > OPS_ADAMW_SCRATCH) partials = OPS_ADAMW_SCRATCH;
    sum_squares_kernel<<<partials, CUDA_THREADS>>>(scratch, grads, n);
    CUDA_LAUNCHED("adamw_step (norm)");
    unsigned blocks = n_tensors < 1 ? 1u : (unsigned)n_tensors;
    if (blocks > CUDA_MAX_BLOCKS) blocks = CUDA_MAX_BLOCKS;
    adamw_kernel<<<blocks, ADAMW_THREADS>>>(tensors, n_tensors, grads, m, v, f, scratch, partials,
                                            norm);
    CUDA_LAUNCHED("adamw_step");
}
