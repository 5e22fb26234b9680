/* cross_entropy.cu: softmax cross-entropy, forward and backward in one kernel.
 * One block per row (V is 2 for classification, ~50k-260k for a vocabulary): the
 * max and the sum of exponentials in one online pass (the sum rescaled when the
 * max grows, as flash attention does), then the gradient pass, so the logits are
 * read twice; the second read finds a row in L2 where the rows in flight fit it
 * (SmolLM2's 96 KB rows of bf16 do; 1024-thread blocks keep few rows in flight).
 * A thread loads 16-byte vectors (8 bf16 or 4 f32 logits), a whole row's between
 * the few values before its first 16-byte boundary and the few after its last,
 * and all of an iteration's before using any. An exponential is one MUFU
 * instruction (ex2_approx of the difference to the max in log2 units: relative
 * error about 2^-22 where a term is not negligible; nvcc's expf is about eight
 * instructions) and the softmax multiplies by g / sum rather than dividing; the
 * label's gradient (softmax - 1) is written over its thread's after a barrier, so
 * that no value compares its index to the label. sm_90's SASS for bf16: 7.4 and
 * 7.1 instructions a logit in the two passes (one value a load took 19 and 23).
 * In place (dlogits == logits) works: each thread writes only the gradients of
 * the logits it read, and the label's logit, which all read, is read before the
 * block's barriers. The logits and their gradient may be bf16 (the LM head's
 * bf16 path), and the logits mapped as they are read (the LM head's OpsLogitMap,
 * CeMap: RL's temperature alone, one multiply within the plain kernel's 32
 * registers; Gemma 2's final soft-cap, then the temperature, a kernel of its own,
 * CE_CAPPED, so that the others keep to 32 registers, two 1024-thread blocks an
 * SM). A label >= V raises a fault bit that status() reports. The softmax's entropy (ops.h
 * OpsEntropy: RL's metric, mask and bonus) is another kernel, ENT (within the same 32
 * registers, no spills, on sm_80 and sm_90): a thread keeps S1, the sum of e^(v - max) (v - max),
 * beside the sum S0, so H = log S0 - S1 / S0 and the mean logit max + S1 / S0 that the entropy's
 * gradient needs come from the same pass. */
#include "cuda_common.cuh"
#include "loraft/activation.h" /* logit_map */
#include "mma_bf16.cuh"        /* ex2_approx */

#include <float.h> /* FLT_MAX */
#include <type_traits>

enum { CE_THREADS = 1024 };
/* How a kernel maps the logits it reads (ops.h OpsLogitMap): not at all, times 1 / temperature,
 * or soft-capped then times 1 / temperature (logit_map) */
enum CeMap { CE_PLAIN, CE_TEMPERATURE, CE_CAPPED };
template <CeMap M> __device__ inline float ce_map(float v, float cap, float inv_t) {
    return M == CE_CAPPED ? logit_map(v, cap, inv_t) : M == CE_TEMPERATURE ? v * inv_t : v;
}
/* d mapped / d logit, from the mapped value */
template <CeMap M> __device__ inline float ce_slope(float mapped, float cap, float inv_t) {
    return M == CE_CAPPED        ? logit_map_slope(mapped, cap, inv_t)
           : M == CE_TEMPERATURE ? inv_t
                                 : 1.0f;
}
/* Blocks an SM holds (__launch_bounds__'s minimum): two where an SM takes 2,048 threads (sm_80,
 * sm_90), one on sm_86, 87 and 89 (1,536). */
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 || __CUDA_ARCH__ == 890)
#define CE_BLOCKS_PER_SM 1
#else
#define CE_BLOCKS_PER_SM 2
#endif

/* A row of V logits at x in vectors of VEC values (16 bytes; VEC 1: one value each): `head`
 * values before the first 16-byte boundary (a row starts where the one before ended), `vecs`
 * whole vectors from there, then the rest. The head and the rest are under VEC values each, so
 * thread t takes value t of each (edge 0 and 1) and vectors t, t + blockDim.x, ... */
template <int VEC> struct CeRow {
    int head, vecs, V;
    /* the thread's value of edge e (0: the head, 1: the rest), or -1 */
    __device__ int edge(int e) const {
        int j = e ? head + vecs * VEC + (int)threadIdx.x : (int)threadIdx.x;
        return j < (e ? V : head) ? j : -1;
    }
};
template <int VEC, typename T> __device__ inline CeRow<VEC> ce_row(const T *x, int V) {
    int head = VEC == 1 ? 0 : (int)((16 - (uintptr_t)x % 16) % 16 / sizeof(T));
    head = min(head, V);
    return {head, (V - head) / VEC, V};
}

/* v[0..VEC) = the vector at p, widened to f32 */
template <int VEC, typename T> __device__ inline void load_vec(float *v, const T *p) {
    if constexpr (VEC == 1) {
        v[0] = as_f32(*p);
    } else if constexpr (sizeof(T) == 2) {
        uint4 w = *(const uint4 *)p;
        widen_bf16x2(v, w.x), widen_bf16x2(v + 2, w.y);
        widen_bf16x2(v + 4, w.z), widen_bf16x2(v + 6, w.w);
    } else {
        float4 w = *(const float4 *)p;
        v[0] = w.x, v[1] = w.y, v[2] = w.z, v[3] = w.w;
    }
}
/* The vector at p = v[0..VEC), as T (bf16: rounded to nearest even) */
template <int VEC, typename T> __device__ inline void store_vec(T *p, const float *v) {
    if constexpr (VEC == 1) {
        store_as(p, v[0]);
    } else if constexpr (sizeof(T) == 2) {
        uint4 w;
        w.x = pack_bf16x2(v[0], v[1]), w.y = pack_bf16x2(v[2], v[3]);
        w.z = pack_bf16x2(v[4], v[5]), w.w = pack_bf16x2(v[6], v[7]);
        *(uint4 *)p = w;
    } else {
        *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
    }
}

/* Vectors a thread loads before it uses any: two of bf16 (16 values, 32 bytes), so that an SM's
 * two blocks (sm_80, sm_90) keep 64 KB of logits in flight, where the H200's latency at its
 * bandwidth asks about 25 KB; one of f32 (two spill within the 32 registers), eight values
 * one at a time. */
template <int VEC, typename T> __host__ __device__ constexpr int ce_unroll() {
    return VEC == 1 ? 8 : sizeof(T) == 2 ? 2 : 1;
}

/* f(q0, whole) for each of the thread's groups of U vectors q0 + u * blockDim.x (u < U) in a row
 * of `vecs`: whole (std::true_type) while all U are in the row, then (std::false_type) for the
 * group the row ends in, if any, whose vectors the callee checks */
template <int U, typename F> __device__ inline void for_vector_groups(int vecs, F f) {
    int q0 = threadIdx.x;
    for (; q0 + (U - 1) * (int)blockDim.x < vecs; q0 += U * blockDim.x) f(q0, std::true_type());
    if (q0 < vecs) f(q0, std::false_type());
}

/* v[u * VEC + e] = value e of the row's vector q0 + u * blockDim.x (x: the row's first vector;
 * mapped as M says by cap and inv_t), `fill` past its last (WHOLE: none is); every load issued
 * before a value is used */
template <CeMap M, int VEC, int U, bool WHOLE, typename T>
__device__ inline void load_vecs(float (&v)[U * VEC], const T *x, int q0, int vecs, float fill,
                                 float cap, float inv_t) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        int q = q0 + u * (int)blockDim.x;
        if (WHOLE || q < vecs)
            load_vec<VEC>(v + u * VEC, x + (size_t)q * VEC);
        else
            for (int e = 0; e < VEC; e++) v[u * VEC + e] = fill;
    }
#pragma unroll
    for (int u = 0; u < U && M != CE_PLAIN; u++)
        if (WHOLE || q0 + u * (int)blockDim.x < vecs)
            for (int e = 0; e < VEC; e++) v[u * VEC + e] = ce_map<M>(v[u * VEC + e], cap, inv_t);
}

/* (mx, sum): the running max and sum of e^(value - mx) of the values seen, joined with v's
 * (-inf: none). The sum rescaled when the max grows, as flash attention does. */
template <int K> __device__ inline void online_add(float &mx, float &sum, const float (&v)[K]) {
    float vmax = mx;
#pragma unroll
    for (int k = 0; k < K; k++) vmax = fmaxf(vmax, v[k]);
    if (vmax == -INFINITY) return; /* nothing yet: keep sum 0, not exp(nan) */
    sum *= ex2_approx((mx - vmax) * LOG2E);
#pragma unroll
    for (int k = 0; k < K; k++) sum += ex2_approx((v[k] - vmax) * LOG2E);
    mx = vmax;
}

/* online_add that also keeps s1, the sum of e^(value - mx) (value - mx): rescaled as the sum is,
 * plus the shift times the sum (S1 about a new max = f (S1 + d S0), d = old - new, f = e^d). The
 * clamp keeps a -inf value's term 0 (0 times -inf is nan): its e^ is 0. */
template <int K>
__device__ inline void online_add_ent(float &mx, float &sum, float &s1, const float (&v)[K]) {
    float vmax = mx;
#pragma unroll
    for (int k = 0; k < K; k++) vmax = fmaxf(vmax, v[k]);
    if (vmax == -INFINITY) return;
    float d = mx == -INFINITY ? 0.0f : mx - vmax, f = ex2_approx(d * LOG2E); /* none yet: 0s */
    s1 = f * (s1 + d * sum), sum *= f;
#pragma unroll
    for (int k = 0; k < K; k++) {
        float dv = fmaxf(v[k] - vmax, -FLT_MAX), e = ex2_approx(dv * LOG2E);
        sum += e, s1 += e * dv;
    }
    mx = vmax;
}

/* losses[N], dlogits [N,V] (may be NULL, or the logits: in place) from logits [N,V] (mapped as M
 * says by softcap and inv_t, their gradient times the map's slope), labels [N]; row_scale
 * [N] or NULL; rows [N] or NULL: row n's label, loss and row_scale are at rows[n] (its logits at
 * n). T: float, or bf16 (the LM head's bf16 path), logits and gradients alike, so that a thread
 * writes each gradient over the logit it read itself. VEC: values a load, 16 / sizeof(T) where
 * dlogits lie as the logits do against 16-byte boundaries, else 1. ENT: the entropy too, ent's
 * out and scale at row rows[n] as the loss (ent unused otherwise). */
template <typename T, int VEC, CeMap M, bool ENT>
__global__ void __launch_bounds__(CE_THREADS, M == CE_CAPPED ? 1 : CE_BLOCKS_PER_SM)
    cross_entropy_kernel(float *losses, T *dlogits, const T *logits, const int32_t *labels,
                         const int32_t *rows, float grad_scale, const float *row_scale,
                         OpsEntropy ent, float softcap, float inv_t, const OpsStep *step, int N,
                         int V, int *fault) {
    constexpr int U = ce_unroll<VEC, T>();
    for (int i = blockIdx.x; i < N; i += gridDim.x) {
        const T *x = logits + (size_t)i * V;
        T *dx = dlogits ? dlogits + (size_t)i * V : NULL;
        int n = rows ? rows[i] : i;
        CeRow<VEC> r = ce_row<VEC>(x, V);
        const T *xv = x + r.head; /* the row's first whole vector */
        int label = labels[n];
        if (label >= V && fault && threadIdx.x == 0) atomicOr(fault, FAULT_LABEL);
        if (label < 0 || label >= V) { /* ignored row (HF's -100), or a faulted one */
            if (threadIdx.x == 0) losses[n] = 0.0f;
            if (ENT && ent.out && threadIdx.x == 0) ent.out[n] = 0.0f;
            float zero[VEC] = {};
            for (int e = 0; dx && e < 2; e++)
                if (r.edge(e) >= 0) store_as(dx + r.edge(e), 0.0f);
            for (int q = threadIdx.x; dx && q < r.vecs; q += blockDim.x)
                store_vec<VEC>(dx + r.head + (size_t)q * VEC, zero);
            continue;
        }
        auto mapped = [&](float v) { return ce_map<M>(v, softcap, inv_t); };
        auto slope = [&](float v) { return ce_slope<M>(v, softcap, inv_t); };
        /* at_label read before dx is written */
        float at_label = mapped(as_f32(x[label])), mx = -INFINITY, sum = 0.0f, s1 = 0.0f;
        auto add = [&](const auto &v) {
            if constexpr (ENT)
                online_add_ent(mx, sum, s1, v);
            else
                online_add(mx, sum, v);
        };
        float edges[2];
        for (int e = 0; e < 2; e++)
            edges[e] = r.edge(e) >= 0 ? mapped(as_f32(x[r.edge(e)])) : -INFINITY;
        add(edges);
        for_vector_groups<U>(r.vecs, [&](int q0, auto whole) {
            constexpr bool WHOLE = decltype(whole)::value;
            float v[U * VEC];
            load_vecs<M, VEC, U, WHOLE>(v, xv, q0, r.vecs, -INFINITY, softcap, inv_t);
            add(v);
        });
        float row_max = block_max(mx);
        if constexpr (ENT) { /* each thread's sums about the row's max, as online_add_ent's */
            float d = mx == -INFINITY ? 0.0f : mx - row_max, f = ex2_approx(d * LOG2E);
            s1 = block_sum(f * (s1 + d * sum));
            sum = block_sum(f * sum);
        } else {
            sum = block_sum(mx == -INFINITY ? 0.0f : sum * ex2_approx((mx - row_max) * LOG2E));
        }
        mx = row_max;
        /* the exact difference first, as torch: at large logits mx + log(sum) rounds */
        if (threadIdx.x == 0) losses[n] = (mx - at_label) + logf(sum);
        float lift = ENT ? s1 / sum : 0.0f; /* the softmax's mean of the logits less mx */
        if (ENT && ent.out && threadIdx.x == 0) ent.out[n] = fmaxf(logf(sum) - lift, 0.0f);
        if (!dx) continue;
        float g = (row_scale ? grad_scale * row_scale[n] : grad_scale) * step_grad_scale(step);
        float inv_sum = 1.0f / sum, g_sum = g * inv_sum;
        /* the entropy's term, -ge p (v - mean): ge / sum, and the mean less mx (no term: -inf
         * logits' gradients stay 0, as the CPU's) */
        float ge_sum =
            ENT && ent.scale ? grad_scale * ent.scale[n] * step_grad_scale(step) * inv_sum : 0.0f;
        auto by = [&](float v) {
            return ENT && ge_sum != 0.0f ? g_sum - ge_sum * (v - mx - lift) : g_sum;
        };
        /* d loss / d logit off the label: its softmax times g (times the map's slope) */
        auto grad = [&](float v) { return ex2_approx((v - mx) * LOG2E) * by(v) * slope(v); };
        for (int e = 0; e < 2; e++)
            if (r.edge(e) >= 0) store_as(dx + r.edge(e), grad(mapped(as_f32(x[r.edge(e)]))));
        for_vector_groups<U>(r.vecs, [&](int q0, auto whole) {
            constexpr bool WHOLE = decltype(whole)::value;
            float v[U * VEC];
            load_vecs<M, VEC, U, WHOLE>(v, xv, q0, r.vecs, 0.0f, softcap, inv_t);
#pragma unroll
            for (int u = 0; u < U; u++) {
                if (!WHOLE && q0 + u * (int)blockDim.x >= r.vecs) break;
#pragma unroll
                for (int e = 0; e < VEC; e++) v[u * VEC + e] = grad(v[u * VEC + e]);
                store_vec<VEC>(dx + r.head + (size_t)(q0 + u * blockDim.x) * VEC, v + u * VEC);
            }
        });
        /* the label's gradient, softmax - 1, over what its thread wrote: once every thread has */
        __syncthreads();
        if (threadIdx.x == 0) {
            float e = ex2_approx((at_label - mx) * LOG2E);
            float d = ENT ? e * by(at_label) - g : (e * inv_sum - 1.0f) * g;
            store_as(dx + label, d * slope(at_label));
        }
    }
}

template <typename T>
static void cross_entropy_launch(float *losses, T *dlogits, const T *logits, const int32_t *labels,
                                 const int32_t *rows, float grad_scale, const float *row_scale,
                                 const OpsEntropy *ent, OpsLogitMap map, int N, int V) {
    if (N <= 0 || V <= 0) return;
    float inv_t = 1.0f / map.temperature;
    unsigned threads = V >= CE_THREADS ? (unsigned)CE_THREADS : (unsigned)(V + 31) / 32 * 32;
    unsigned blocks = N < (int)CUDA_MAX_BLOCKS ? (unsigned)N : CUDA_MAX_BLOCKS;
    OpsEntropy e = ent ? *ent : OpsEntropy{NULL, NULL};
    bool with_ent = e.out || e.scale;
    auto launch = [&](auto mapped, auto vec) {
        constexpr CeMap M = decltype(mapped)::value;
        constexpr int VEC = decltype(vec)::value;
        if (with_ent)
            cross_entropy_kernel<T, VEC, M, true>
                <<<blocks, threads>>>(losses, dlogits, logits, labels, rows, grad_scale, row_scale,
                                      e, map.softcap, inv_t, cuda_step(), N, V, cuda_fault_word());
        else
            cross_entropy_kernel<T, VEC, M, false>
                <<<blocks, threads>>>(losses, dlogits, logits, labels, rows, grad_scale, row_scale,
                                      e, map.softcap, inv_t, cuda_step(), N, V, cuda_fault_word());
    };
    /* vectors where each row's gradients lie as its logits do against 16-byte boundaries (in
     * place: always; the bf16 path is in place) */
    bool vectors = !dlogits || ((uintptr_t)dlogits - (uintptr_t)logits) % 16 == 0;
    auto with_vec = [&](auto mapped) {
        if constexpr (sizeof(T) == 4)
            if (!vectors) return launch(mapped, std::integral_constant<int, 1>());
        launch(mapped, std::integral_constant<int, 16 / sizeof(T)>());
    };
    if (map.softcap > 0.0f)
        with_vec(std::integral_constant<CeMap, CE_CAPPED>());
    else if (inv_t != 1.0f)
        with_vec(std::integral_constant<CeMap, CE_TEMPERATURE>());
    else
        with_vec(std::integral_constant<CeMap, CE_PLAIN>());
    CUDA_LAUNCHED("cross_entropy");
}

void cuda_cross_entropy_rows(float *losses, float *dlogits, const float *logits,
                             const int32_t *labels, const int32_t *rows, float grad_scale,
                             const float *row_scale, const OpsEntropy *ent, OpsLogitMap map, int N,
                             int V) {
    cross_entropy_launch(losses, dlogits, logits, labels, rows, grad_scale, row_scale, ent, map, N,
                         V);
}

void cuda_cross_entropy_rows_bf16(float *losses, __nv_bfloat16 *logits, int grads,
                                  const int32_t *labels, const int32_t *rows, float grad_scale,
                                  const float *row_scale, const OpsEntropy *ent, OpsLogitMap map,
                                  int N, int V) {
    cross_entropy_launch(losses, grads ? logits : NULL, logits, labels, rows, grad_scale, row_scale,
                         ent, map, N, V);
}

void cuda_cross_entropy(float *losses, float *dlogits, const float *logits, const int32_t *labels,
                        float grad_scale, int N, int V) {
    cuda_cross_entropy_rows(losses, dlogits, logits, labels, NULL, grad_scale, NULL, NULL,
                            OpsLogitMap{0.0f, 1.0f}, N, V);
}
