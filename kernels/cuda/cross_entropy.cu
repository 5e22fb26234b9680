/* cross_entropy.cu: softmax cross-entropy, forward and backward in one pass.
 * One block per row (V is 2 for classification, ~50k for a vocabulary),
 * max-subtracted so any logits are safe. In place (dlogits == logits) works:
 * every read of another thread's element happens before the block's barriers.
 * A label >= V raises a fault bit that status() reports. */
#include "cuda_common.cuh"

/* losses[N], dlogits[N,V] (may be NULL) from logits [N,V], labels [N]; row_scale [N] or NULL */
__global__ void cross_entropy_kernel(float *losses, float *dlogits, const float *logits,
                                     const int32_t *labels, float grad_scale,
                                     const float *row_scale, int N, int V, int *fault) {
    for (int n = blockIdx.x; n < N; n += gridDim.x) {
        const float *x = logits + (size_t)n * V;
        float *dx = dlogits ? dlogits + (size_t)n * V : NULL;
        int label = labels[n];
        if (label >= V && fault && threadIdx.x == 0) atomicOr(fault, FAULT_LABEL);
        if (label < 0 || label >= V) { /* ignored row (HF's -100), or a faulted one */
            if (threadIdx.x == 0) losses[n] = 0.0f;
            if (dx)
                for (int j = threadIdx.x; j < V; j += blockDim.x) dx[j] = 0.0f;
            continue;
        }
        float mx = -INFINITY, sum = 0.0f, at_label = x[label]; /* read before dx is written */
        for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmaxf(mx, x[j]);
        mx = block_max(mx);
        for (int j = threadIdx.x; j < V; j += blockDim.x) sum += expf(x[j] - mx);
        sum = block_sum(sum);
        /* the exact difference first, as torch: at large logits mx + log(sum) rounds */
        if (threadIdx.x == 0) losses[n] = (mx - at_label) + logf(sum);
        float g = row_scale ? grad_scale * row_scale[n] : grad_scale;
        if (dx)
            for (int j = threadIdx.x; j < V; j += blockDim.x)
                dx[j] = (expf(x[j] - mx) / sum - (j == label ? 1.0f : 0.0f)) * g;
    }
}

void cuda_cross_entropy_rows(float *losses, float *dlogits, const float *logits,
                             const int32_t *labels, float grad_scale, const float *row_scale, int N,
                             int V) {
    if (N <= 0 || V <= 0) return;
    unsigned threads = V >= 256 ? 256 : (unsigned)(V + 31) / 32 * 32;
    unsigned blocks = N < (int)CUDA_MAX_BLOCKS ? (unsigned)N : CUDA_MAX_BLOCKS;
    cross_entropy_kernel<<<blocks, threads>>>(losses, dlogits, logits, labels, grad_scale,
                                              row_scale, N, V, cuda_fault_word());
    CUDA_LAUNCHED("cross_entropy");
}

void cuda_cross_entropy(float *losses, float *dlogits, const float *logits, const int32_t *labels,
                        float grad_scale, int N, int V) {
    cuda_cross_entropy_rows(losses, dlogits, logits, labels, grad_scale, NULL, N, V);
}
