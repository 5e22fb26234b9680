/* cross_entropy.cu: softmax cross-entropy, forward and backward in one kernel.
 * One block per row (V is 2 for classification, ~50k for a vocabulary): the
 * max and the sum of exponentials in one online pass (the sum rescaled when the
 * max grows, as flash attention does), then the gradient pass, so the logits are
 * read twice and the second read finds the row in L2 (1024-thread blocks keep
 * few rows in flight). In both passes each thread loads CE_UNROLL values before
 * using them: eight, so that an SM's two blocks (sm_80, sm_90) keep 32 KB of
 * bf16 logits in flight (64 KB of f32), where the H200's latency at its bandwidth
 * asks about 25 KB (four left 16 KB), in 32 registers. An exponential is one
 * MUFU instruction (ex2_approx of the difference to the max in log2 units:
 * relative error about 2^-22 where a term is not negligible; nvcc's expf is about
 * eight instructions) and the softmax multiplies by 1 / sum rather than dividing.
 * In place (dlogits == logits) works: each thread writes only the gradients of
 * the logits it read, and the label's logit, which all read, is read before the
 * block's barriers. The logits and their gradient may be bf16 (the LM head's
 * bf16 path), and the logits soft-capped as they are read (the LM head's softcap:
 * Gemma 2's final logits; a kernel of its own, CAP, so that the plain one keeps
 * to 32 registers, two 1024-thread blocks an SM). A label >= V raises a fault
 * bit that status() reports. */
#include "cuda_common.cuh"
#include "loraft/activation.h" /* soft_cap */
#include "mma_bf16.cuh"        /* ex2_approx */

#include <type_traits>

enum { CE_UNROLL = 8, CE_THREADS = 1024 };
/* Blocks an SM holds (__launch_bounds__'s minimum): two where an SM takes 2,048 threads (sm_80,
 * sm_90), one on sm_86, 87 and 89 (1,536). */
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 890)
#define CE_BLOCKS_PER_SM 1
#else
#define CE_BLOCKS_PER_SM 2
#endif

/* v[u] = x[j0 + u * blockDim.x] for u < CE_UNROLL (CAP: soft-capped at cap), `fill` past V: all
 * loads issued before any value is used (or stored over, in place) */
template <bool CAP, typename T>
__device__ inline void load_unrolled(float v[CE_UNROLL], const T *x, int j0, int V, float fill,
                                     float cap) {
#pragma unroll
    for (int u = 0; u < CE_UNROLL; u++) {
        int j = j0 + u * blockDim.x;
        v[u] = j < V ? as_f32(x[j]) : fill;
    }
#pragma unroll
    for (int u = 0; u < CE_UNROLL && CAP; u++)
        if (j0 + u * (int)blockDim.x < V) v[u] = soft_cap(v[u], cap);
}

/* losses[N], dlogits [N,V] (may be NULL, or the logits: in place) from logits [N,V] (CAP:
 * soft-capped at softcap, their gradient times the cap's slope), labels [N]; row_scale [N] or
 * NULL. T: float, or bf16 (the LM head's bf16 path), logits and gradients alike, so that a thread
 * writes each gradient over the logit it read itself. */
template <typename T, bool CAP>
__global__ void __launch_bounds__(CE_THREADS, CAP ? 1 : CE_BLOCKS_PER_SM)
    cross_entropy_kernel(float *losses, T *dlogits, const T *logits, const int32_t *labels,
                         float grad_scale, const float *row_scale, float softcap,
                         const OpsStep *step, int N, int V, int *fault) {
    for (int n = blockIdx.x; n < N; n += gridDim.x) {
        const T *x = logits + (size_t)n * V;
        T *dx = dlogits ? dlogits + (size_t)n * V : NULL;
        int label = labels[n];
        if (label >= V && fault && threadIdx.x == 0) atomicOr(fault, FAULT_LABEL);
        if (label < 0 || label >= V) { /* ignored row (HF's -100), or a faulted one */
            if (threadIdx.x == 0) losses[n] = 0.0f;
            if (dx)
                for (int j = threadIdx.x; j < V; j += blockDim.x) store_as(dx + j, 0.0f);
            continue;
        }
        /* at_label read before dx is written */
        float at = as_f32(x[label]), mx = -INFINITY, sum = 0.0f;
        float at_label = CAP ? soft_cap(at, softcap) : at;
        for (int j0 = threadIdx.x; j0 < V; j0 += CE_UNROLL * blockDim.x) {
            float v[CE_UNROLL], vmax = mx;
            load_unrolled<CAP>(v, x, j0, V, -INFINITY, softcap);
#pragma unroll
            for (int u = 0; u < CE_UNROLL; u++) vmax = fmaxf(vmax, v[u]);
            if (vmax == -INFINITY) continue; /* nothing yet: keep sum 0, not exp(nan) */
            sum *= ex2_approx((mx - vmax) * LOG2E);
#pragma unroll
            for (int u = 0; u < CE_UNROLL; u++) sum += ex2_approx((v[u] - vmax) * LOG2E);
            mx = vmax;
        }
        float row_max = block_max(mx);
        sum = block_sum(mx == -INFINITY ? 0.0f : sum * ex2_approx((mx - row_max) * LOG2E));
        mx = row_max;
        /* the exact difference first, as torch: at large logits mx + log(sum) rounds */
        if (threadIdx.x == 0) losses[n] = (mx - at_label) + logf(sum);
        float g = (row_scale ? grad_scale * row_scale[n] : grad_scale) * step_grad_scale(step);
        float inv_sum = 1.0f / sum;
        for (int j0 = threadIdx.x; dx && j0 < V; j0 += CE_UNROLL * blockDim.x) {
            float v[CE_UNROLL];
            load_unrolled<CAP>(v, x, j0, V, 0.0f, softcap);
#pragma unroll
            for (int u = 0, j = j0; u < CE_UNROLL && j < V; u++, j += blockDim.x) {
                float d = (ex2_approx((v[u] - mx) * LOG2E) * inv_sum - (j == label)) * g;
                store_as(dx + j, CAP ? d * soft_cap_slope(v[u], softcap) : d);
            }
        }
    }
}

template <typename T>
static void cross_entropy_launch(float *losses, T *dlogits, const T *logits, const int32_t *labels,
                                 float grad_scale, const float *row_scale, float softcap, int N,
                                 int V) {
    if (N <= 0 || V <= 0) return;
    unsigned threads = V >= CE_THREADS ? (unsigned)CE_THREADS : (unsigned)(V + 31) / 32 * 32;
    unsigned blocks = N < (int)CUDA_MAX_BLOCKS ? (unsigned)N : CUDA_MAX_BLOCKS;
    auto launch = [&](auto cap) {
        constexpr bool CAP = decltype(cap)::value;
        cross_entropy_kernel<T, CAP><<<blocks, threads>>>(losses, dlogits, logits, labels,
                                                          grad_scale, row_scale, softcap,
                                                          cuda_step(), N, V, cuda_fault_word());
    };
    if (softcap > 0.0f)
        launch(std::true_type());
    else
        launch(std::false_type());
    CUDA_LAUNCHED("cross_entropy");
}

void cuda_cross_entropy_rows(float *losses, float *dlogits, const float *logits,
                             const int32_t *labels, float grad_scale, const float *row_scale,
                             float softcap, int N, int V) {
    cross_entropy_launch(losses, dlogits, logits, labels, grad_scale, row_scale, softcap, N, V);
}

void cuda_cross_entropy_rows_bf16(float *losses, __nv_bfloat16 *logits, int grads,
                                  const int32_t *labels, float grad_scale, const float *row_scale,
                                  float softcap, int N, int V) {
    cross_entropy_launch(losses, grads ? logits : NULL, logits, labels, grad_scale, row_scale,
                         softcap, N, V);
}

void cuda_cross_entropy(float *losses, float *dlogits, const float *logits, const int32_t *labels,
                        float grad_scale, int N, int V) {
    cuda_cross_entropy_rows(losses, dlogits, logits, labels, grad_scale, NULL, 0.0f, N, V);
}
