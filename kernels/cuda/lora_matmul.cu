/* lora_matmul.cu: the dense layer (frozen base GEMM on cuBLAS, or on cuBLASLt with the bias in
 * its epilogue; bias gradient) and the LoRA branch beside it. Under fp32 / tf32 the branch's
 * rank-R products are cuBLAS GEMMs: the up-projection accumulates into out (beta 1), du = s dout
 * B, dA, dB, and dinp += du A. Kernels remain where they move fewer bytes than a GEMM would: dinp
 * under dropout (the mask applied to du A as it is added: one pass over dinp), the down-projection
 * u = drop(x) A^T under dropout (the mask applied as x is loaded: no drop(x) in memory), and
 * under model.precision bf16 lora_down_bf16, which reads the input once for every linear of a
 * group (q, k, v), writes each one's u and [bf16(x) | bf16(scale u)], and the base GEMM runs over
 * K + R columns, [x | scale u] [W | B]^T (DESIGN.md's fusion), so out is written once; backward,
 * lora_backward_bf16 runs the same kernel over dout with B for A^T (read as stored), for du and
 * [bf16(dout) | bf16(du)] from one read of dout, dA and dB are lora_grads' sums (below), and
 * the dinp GEMM runs over [W ; A]. The down kernel is meant to run at memory speed: a warp takes
 * four rows at once (float4 loads where aligned), so each A value it loads feeds four rows' sums
 * (R x 4 of them in registers), and the warp reduces 32 sums in 31 shuffles.
 *
 * Row-major X[r,c] is column-major X^T, so every cuBLAS call below computes the
 * transpose of the row-major formula in its comment. */
#include "cuda_common.cuh"
#include "mma_bf16.cuh" /* pack_bf16x2 */

enum { ROW_WARPS = 8 };
/* Rows per warp in lora_down_kernel at RMAX outputs a pass: 32 sums a lane either way (four rows
 * at RMAX 8, two at 16), which keeps the kernel within 128 registers. */
__host__ __device__ constexpr int down_rows(int RMAX) {
    return 32 / RMAX;
}

/* out[N,OC] += bias[OC], out's rows ldo apart */
__global__ void bias_add_kernel(float *out, int ldo, const float *bias, size_t N, int OC) {
    GRID_STRIDE(i, N * OC) {
        size_t r = index_div(i, OC), c = i - r * OC;
        out[r * ldo + c] += bias[c];
    }
}

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC], rows ldo, ldi and ldw apart, FP32 or BF16
 * operands: out^T[OC,N] = W[OC,C] inp^T[C,N]; weight column-major is W^T: OP_T. The bias rides
 * in cuBLASLt's epilogue; one it declines (under-aligned, or no cuBLASLt algorithm for the
 * shape) takes a pass of its own. */
static void dense_forward(float *out, int ldo, cudaDataType type, const void *inp, int ldi,
                          const void *weight, int ldw, const float *bias, int N, int C, int OC) {
    if (cuda_gemm_bias(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, type, weight, ldw, inp, ldi, out, ldo,
                       bias))
        return;
    if (type == CUDA_R_16BF)
        cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, (const __nv_bfloat16 *)weight, ldw,
                       (const __nv_bfloat16 *)inp, ldi, 0.0f, out, CUDA_R_32F, ldo);
    else
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, (const float *)weight, ldw, 0,
                  (const float *)inp, ldi, 0, 0.0f, out, ldo, 0, 1);
    if (!bias) return;
    bias_add_kernel<<<cuda_blocks((size_t)N * OC, CUDA_THREADS), CUDA_THREADS>>>(out, ldo, bias, N,
                                                                                 OC);
    CUDA_LAUNCHED("matmul_forward (bias)");
}

/* partial[s][c] = sum over split s's rows of dout[n,c] (dout, or NULL: its bf16 values in
 * dout_bf16; rows ld apart): 32-column tiles, a split's rows over 8 thread rows, joined in
 * shared memory in thread-row order. */
__global__ void bias_partial_kernel(float *partial, const float *dout, const uint16_t *dout_bf16,
                                    int ld, int N, int OC, int split_rows) {
    __shared__ float part[8][33];
    int c = blockIdx.x * 32 + threadIdx.x, end = min(N, (int)(blockIdx.y + 1) * split_rows);
    float s = 0.0f;
    if (c < OC)
        for (int n = blockIdx.y * split_rows + threadIdx.y; n < end; n += 8) {
            size_t i = (size_t)n * ld + c;
            s += dout ? dout[i] : qb_bf16(dout_bf16[i]);
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y || c >= OC) return;
    for (int y = 1; y < 8; y++) s += part[y][threadIdx.x];
    partial[(size_t)blockIdx.y * OC + c] = s;
}

/* dbias[c] += the splits' partials, added in split order */
__global__ void bias_sum_kernel(float *dbias, const float *partial, int OC, int splits) {
    GRID_STRIDE(c, OC) {
        float sum = 0.0f;
        for (int s = 0; s < splits; s++) sum += partial[(size_t)s * OC + c];
        dbias[c] += sum;
    }
}

/* At most ops_lora_grad_splits(N) splits (the scratch's rows), none empty: the same bits every
 * run, where atomics would add the splits in the order they finish. */
void cuda_bias_backward(float *dbias, const float *dout, const uint16_t *dout_bf16, int ld,
                        float *scratch, int N, int OC) {
    if (N <= 0 || OC <= 0) return;
    int splits = (int)ops_lora_grad_splits((size_t)N);
    int split_rows = (N + splits - 1) / splits;
    splits = (N + split_rows - 1) / split_rows;
    bias_partial_kernel<<<dim3((OC + 31) / 32, (unsigned)splits), dim3(32, 8)>>>(
        scratch, dout, dout_bf16, ld, N, OC, split_rows);
    CUDA_LAUNCHED("bias_backward");
    bias_sum_kernel<<<cuda_blocks((size_t)OC, CUDA_THREADS), CUDA_THREADS>>>(dbias, scratch, OC,
                                                                             splits);
    CUDA_LAUNCHED("bias_backward (sum)");
}

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] */
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    dense_forward(out, OC, CUDA_R_32F, inp, C, weight, C, bias, N, C, OC);
}

/* dinp[N,C] (+)= dout[N,OC] @ weight[OC,C] (acc 0: =); dweight[OC,C] += dout^T @ inp */
void cuda_matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                          const float *weight, int N, int C, int OC, int acc) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    /* dinp^T[C,N] (+)= W^T[C,OC] dout^T[OC,N]: both are their buffers' column-major
     * views */
    if (dinp)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, 1.0f, weight, C, 0, dout, OC, 0,
                  acc ? 1.0f : 0.0f, dinp, C, 0, 1);
    /* dweight^T[C,OC] += inp^T[C,N] dout[N,OC]; dout's column-major view is
     * dout^T: OP_T */
    if (dweight)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, 1.0f, inp, C, 0, dout, OC, 0, 1.0f, dweight,
                  C, 0, 1);
}

/* model.precision bf16: the same products on tensor cores, on operands already in bf16 (the
 * model rounds the activation once per group, lora_down_bf16 or dequantize_rows_bf16); the
 * scratch is the CPU's. */
void cuda_matmul_forward_bf16(float *out, uint16_t *out_bf16, int ldo, const uint16_t *inp, int ldi,
                              const uint16_t *weight, int ldw, const float *bias, float *scratch,
                              int N, int C, int OC) {
    (void)scratch;
    if (N <= 0 || OC <= 0) return;
    if (out) return dense_forward(out, ldo, CUDA_R_16BF, inp, ldi, weight, ldw, bias, N, C, OC);
    if (bias) { /* a double rounding here would differ from the CPU's */
        CUDA_FAIL("matmul_forward_bf16: a bf16 output leaves its bias to the op that reads it");
        return;
    }
    cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, (const __nv_bfloat16 *)weight, ldw,
                   (const __nv_bfloat16 *)inp, ldi, 0.0f, out_bf16, CUDA_R_16BF, ldo);
}

/* VEC values of a row from src (16-byte aligned when VEC is 4: one float4 load), or zeros. */
template <int VEC>
__device__ inline void load_row_slice(float (&x)[VEC], const float *src, bool in) {
    if (VEC == 4 && in) {
        float4 q = *(const float4 *)src;
        x[0] = q.x, x[1] = q.y, x[2] = q.z, x[3] = q.w;
        return;
    }
#pragma unroll
    for (int e = 0; e < VEC; e++) x[e] = in ? src[e] : 0.0f;
}

/* load_row_slice of bf16 values, widened: one 8-byte load when VEC is 4 (src 8-byte aligned) */
template <int VEC>
__device__ inline void load_row_slice(float (&x)[VEC], const __nv_bfloat16 *src, bool in) {
    if (VEC == 4 && in) {
        uint2 q = *(const uint2 *)src;
        widen_bf16x2(x, q.x), widen_bf16x2(x + 2, q.y);
        return;
    }
#pragma unroll
    for (int e = 0; e < VEC; e++) x[e] = in ? __bfloat162float(src[e]) : 0.0f;
}

/* dst[0..VEC) = bf16 of x: one 8-byte store when VEC is 4 (dst 8-byte aligned). */
template <int VEC>
__device__ inline void store_bf16_slice(__nv_bfloat16 *dst, const float (&x)[VEC]) {
    if constexpr (VEC == 4) {
        *(uint2 *)dst = make_uint2(pack_bf16x2(x[0], x[1]), pack_bf16x2(x[2], x[3]));
    } else {
#pragma unroll
        for (int e = 0; e < VEC; e++) dst[e] = __float2bfloat16(x[e]);
    }
}

/* The bf16 GEMMs round nothing themselves (their operands come as bf16): no scratch. */
size_t cuda_matmul_bf16_scratch(int N, int C, int OC) {
    (void)N, (void)C, (void)OC;
    return 0;
}

/* dinp[N,C] (+)= dd[N,K] W[K,C]: dinp^T[C,N] (+)= W^T[C,K] dd^T[K,N], both their buffers' views */
void cuda_matmul_backward_bf16(float *dinp, uint16_t *dinp_bf16, const uint16_t *dd, int ldd,
                               const uint16_t *weight, int ldw, float *scratch, int N, int C, int K,
                               int acc) {
    (void)scratch;
    if (N <= 0 || C <= 0 || K <= 0) return;
    if (!dinp && acc) { /* bf16 sums added to would be rounded twice */
        CUDA_FAIL("matmul_backward_bf16: a bf16 dinp is its first writer's (OPS_SET)");
        return;
    }
    cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, N, K, 1.0f, (const __nv_bfloat16 *)weight, ldw,
                   (const __nv_bfloat16 *)dd, ldd, acc ? 1.0f : 0.0f,
                   dinp ? (void *)dinp : (void *)dinp_bf16, dinp ? CUDA_R_32F : CUDA_R_16BF, C);
}

/* The down-projections of n linears that read one input, by value: each one's A [R,K], u [N,R] =
 * u_scale x the sums, and dropout seed (XOR the step's); when xb[0] is not NULL, bf16(x) goes to
 * xb[0] (rows ld apart) and bf16(scale x the sums of j) to xu[j]: forward's one copy [bf16(x) |
 * bf16(scale u_0) | ..] (xu[j] = xb[0] + K + j R). With the kernels' TRANS (backward: a group's
 * du over its B), each linear j has an input of its own, X[j] [N, K[j]], and A^T stored as [K,R]
 * (B), and writes [douts | dus]: its x at xb[j]. */
struct LoraDown {
    const float *A[OPS_LORA_GROUP_MAX];
    float *u[OPS_LORA_GROUP_MAX];
    uint64_t seed[OPS_LORA_GROUP_MAX];
    __nv_bfloat16 *xb[OPS_LORA_GROUP_MAX], *xu[OPS_LORA_GROUP_MAX];
    const float *X[OPS_LORA_GROUP_MAX]; /* TRANS */
    int K[OPS_LORA_GROUP_MAX];
    int n, ld;
    float u_scale;
    const OpsStep *step;
};

/* One step of warp_sum_transposed: lanes W apart swap half of their first 2W values of each 32. */
template <int W, int V> __device__ inline void warp_sum_half(float (&v)[V], int lane) {
    bool upper = lane & W;
#pragma unroll
    for (int b = 0; b < V; b += 32)
#pragma unroll
        for (int i = 0; i < W; i++) {
            float lo = v[b + i], hi = v[b + i + W];
            v[b + i] = (upper ? hi : lo) + __shfl_xor_sync(0xffffffffu, upper ? lo : hi, W);
        }
}

/* V values per lane (V a multiple of 32) summed over the warp: afterwards v[32 b] of lane l holds
 * the total of value 32 b + l. Each step swaps half the live values with the partner lane, so
 * 32 values take 31 shuffles (warp_sum of each, 160). */
template <int V> __device__ inline void warp_sum_transposed(float (&v)[V], int lane) {
    warp_sum_half<16>(v, lane);
    warp_sum_half<8>(v, lane);
    warp_sum_half<4>(v, lane);
    warp_sum_half<2>(v, lane);
    warp_sum_half<1>(v, lane);
}

/* x[0..VEC) *= LoRA's dropout of columns k.. of the row whose rng_row_key is key: a draw per
 * pair of columns (VEC 4: k a multiple of 4, two draws). */
template <int VEC>
__device__ inline void drop_slice(float (&x)[VEC], uint32_t key, int k, float p) {
    if constexpr (VEC == 1) {
        x[0] *= rng_row_scale(rng_row_pair(key, (uint32_t)k >> 1), k & 1, p);
    } else {
#pragma unroll
        for (int e = 0; e < VEC; e += 2) {
            uint32_t draw = rng_row_pair(key, (uint32_t)(k + e) >> 1);
            x[e] *= rng_row_scale(draw, 0, p), x[e + 1] *= rng_row_scale(draw, 1, p);
        }
    }
}

/* How down_pass reads A: its rows [R,K] (forward), or A^T stored [K,R] (backward's B), a row's
 * ranks r0.. together: A_T_WHOLE as float4 (ranks r0.. r0 + RMAX all below R, rows 16-byte
 * aligned), A_T_CLAMPED one by one, min(r0 + r, R - 1). */
enum { A_ROWS, A_T_WHOLE, A_T_CLAMPED };

/* b[r] = At[k][r0 + r] for r < RMAX, of At [K,R], as AT says. */
template <int RMAX, int AT>
__device__ inline void load_ranks(float (&b)[RMAX], const float *At, int k, int r0, int R) {
    const float *row = At + (size_t)k * R;
    if constexpr (AT == A_T_WHOLE) {
#pragma unroll
        for (int r = 0; r < RMAX; r += 4) {
            float4 q = *(const float4 *)(row + r0 + r);
            b[r] = q.x, b[r + 1] = q.y, b[r + 2] = q.z, b[r + 3] = q.w;
        }
    } else {
#pragma unroll
        for (int r = 0; r < RMAX; r++) b[r] = row[min(r0 + r, R - 1)];
    }
}

/* One pass of lora_down_kernel over the columns of its ROWS rows x_i = x0[ri_i] (f32 rows K
 * apart, or bf16 ones of the copy, ld apart): acc[i * RMAX + r] += the lane's part of drop(x_i) .
 * a_r, a_r row min(r0 + r, R - 1) of A (or that column of A^T, as AT says: the same sums in the
 * same order); COPY: bf16(x_i) also into g.xb[0] (rows ld apart; with A^T into g.xb[j]: X is
 * linear j's), before the mask. Every row is whole (rows past N or R repeat a real one, whose
 * sums are not stored), so nothing in the loop is predicated and the compiler keeps a running
 * pointer per row. */
template <int RMAX, int VEC, bool COPY, bool DROP, int AT, typename XT, int ROWS = down_rows(RMAX)>
__device__ inline void down_pass(float (&acc)[ROWS * RMAX], const LoraDown &g, const XT *x0,
                                 const int (&ri)[ROWS], size_t n0, size_t ld, int j, int r0, int R,
                                 const uint32_t (&key)[ROWS], float p, int K, int lane) {
    const float *A = g.A[j];
    size_t xld = sizeof(XT) == 2 ? ld : (size_t)K;
    for (int k = lane * VEC; k < K; k += 32 * VEC) {
        float x[ROWS][VEC];
#pragma unroll
        for (int i = 0; i < ROWS; i++) load_row_slice<VEC>(x[i], x0 + ri[i] * xld + k, true);
            /* the copies after every row's load: a store between two rows' loads kept the later
             * one waiting (the compiler cannot move a load past a store it may alias) */
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            if (COPY)
                store_bf16_slice<VEC>(g.xb[AT == A_ROWS ? 0 : j] + (n0 + ri[i]) * ld + k, x[i]);
            if (DROP) drop_slice<VEC>(x[i], key[i], k, p);
        }
        if constexpr (AT != A_ROWS) {
#pragma unroll
            for (int e = 0; e < VEC; e++) {
                float b[RMAX];
                load_ranks<RMAX, AT>(b, A, k + e, r0, R);
#pragma unroll
                for (int r = 0; r < RMAX; r++)
#pragma unroll
                    for (int i = 0; i < ROWS; i++) acc[i * RMAX + r] += x[i][e] * b[r];
            }
        } else {
#pragma unroll
            for (int r = 0; r < RMAX; r++) {
                float a[VEC];
                load_row_slice<VEC>(a, A + (size_t)min(r0 + r, R - 1) * K + k, true);
#pragma unroll
                for (int e = 0; e < VEC; e++)
#pragma unroll
                    for (int i = 0; i < ROWS; i++) acc[i * RMAX + r] += x[i][e] * a[e];
            }
        }
    }
}

/* bf16 of the warp's rows (n0 + i, i < rows) into xb (rows ld apart), and nothing else: the copy
 * of a group member without LoRA (lora_backward_bf16's TRANS launch). Not inlined, so that it
 * costs the kernel's hot loops no registers. Four column steps load before any stores (a store
 * between two loads kept the later one waiting: a round trip a step). */
template <int VEC>
__device__ __noinline__ void copy_rows(__nv_bfloat16 *xb, const float *x0, int rows, size_t n0,
                                       size_t ld, int K, int lane) {
    enum { STEP = 32 * VEC, STEPS = 4 };
    for (int i = 0; i < rows; i++) {
        const float *x = x0 + (size_t)i * K;
        __nv_bfloat16 *y = xb + (n0 + i) * ld;
        int k = lane * VEC;
        for (; k + (STEPS - 1) * STEP < K; k += STEPS * STEP) {
            float v[STEPS][VEC];
#pragma unroll
            for (int t = 0; t < STEPS; t++) load_row_slice<VEC>(v[t], x + k + t * STEP, true);
#pragma unroll
            for (int t = 0; t < STEPS; t++) store_bf16_slice<VEC>(y + k + t * STEP, v[t]);
        }
        for (; k < K; k += STEP) {
            float v[VEC];
            load_row_slice<VEC>(v, x + k, true);
            store_bf16_slice<VEC>(y + k, v);
        }
    }
}

/* down_pass over rank chunk r0.. of linear j, the copies written when copy (a template parameter
 * of down_pass, so that neither loop tests it; never from the copy itself). */
template <int RMAX, int VEC, bool DROP, int AT, typename XT, int ROWS = down_rows(RMAX)>
__device__ inline void down_chunk(bool copy, float (&acc)[ROWS * RMAX], const LoraDown &g,
                                  const XT *x0, const int (&ri)[ROWS], size_t n0, size_t ld, int j,
                                  int r0, int R, const uint32_t (&key)[ROWS], float p, int K,
                                  int lane) {
    if constexpr (sizeof(XT) == 4)
        if (copy)
            return down_pass<RMAX, VEC, true, DROP, AT>(acc, g, x0, ri, n0, ld, j, r0, R, key, p, K,
                                                        lane);
    down_pass<RMAX, VEC, false, DROP, AT>(acc, g, x0, ri, n0, ld, j, r0, R, key, p, K, lane);
}

/* For each linear j of g: u_j = drop_j(X) A_j^T [N,R], in chunks of RMAX outputs. A warp takes
 * ROWS rows: lanes stride over k (coalesced), each A value loaded feeds ROWS rows' sums,
 * kept in registers and reduced once. With g.xb the first pass also writes bf16(x) into the copy
 * and each output its bf16(scale u) after it. Later passes (other linears, chunks) find the rows
 * in cache. DROP: p > 0 (the masks' code only there). TRANS: A_j given as A_j^T [K,R] (backward's
 * du over B, read as it is stored instead of transposed by a launch of its own), and linear j of
 * the grid's row y = j alone, over its own input g.X[j] [N, g.K[j]] (a group's members in one
 * launch; a member with A_j NULL has no LoRA: its copy alone). XB: X is NULL, the rows are the
 * copy's bf16 values, which the op before wrote. */
template <int RMAX, int VEC, bool DROP, bool TRANS, bool XB = false>
__global__ void __launch_bounds__(ROW_WARPS * 32, 2)
    lora_down_kernel(LoraDown g, const float *X, float scale, float p, int N, int K, int R) {
    enum { ROWS = down_rows(RMAX), V = ROWS * RMAX };
    int lane = threadIdx.x & 31;
    int j0 = TRANS ? (int)blockIdx.y : 0, j1 = TRANS ? j0 + 1 : g.n;
    if (TRANS) X = g.X[j0], K = g.K[j0];
    size_t ld = g.ld;
    WARP_ROWS(group, ((size_t)N + ROWS - 1) / ROWS) {
        size_t n0 = group * ROWS;
        size_t left = N - n0;
        int rows = left < (size_t)ROWS ? (int)left : ROWS, ri[ROWS];
#pragma unroll
        for (int i = 0; i < ROWS; i++) ri[i] = i < rows ? i : rows - 1; /* past N: the last again */
        const float *x0 = XB ? NULL : X + n0 * K; /* XB: the rows at g.xb[0] + n0 * ld */
        for (int j = j0; j < j1; j++) {
            if (TRANS && !g.A[j]) {
                copy_rows<VEC>(g.xb[j], x0, rows, n0, ld, K, lane);
                continue;
            }
            uint32_t key[ROWS]; /* the rows' rng_row_key */
#pragma unroll
            for (int i = 0; i < ROWS; i++)
                key[i] = DROP ? rng_row_key(g.seed[j] ^ step_seed(g.step), n0 + i) : 0;
            for (int r0 = 0; r0 < R; r0 += RMAX) {
                float acc[V];
#pragma unroll
                for (int v = 0; v < V; v++) acc[v] = 0.0f;
                bool copy = g.xb[0] && j == j0 && r0 == 0;
                if constexpr (XB) {
                    down_chunk<RMAX, VEC, DROP, A_ROWS>(false, acc, g, g.xb[0] + n0 * ld, ri, n0,
                                                        ld, j, r0, R, key, p, K, lane);
                } else if constexpr (!TRANS) {
                    down_chunk<RMAX, VEC, DROP, A_ROWS>(copy, acc, g, x0, ri, n0, ld, j, r0, R, key,
                                                        p, K, lane);
                } else if (R % 4 == 0 && r0 + RMAX <= R && (uintptr_t)g.A[j] % 16 == 0) {
                    down_chunk<RMAX, VEC, DROP, A_T_WHOLE>(copy, acc, g, x0, ri, n0, ld, j, r0, R,
                                                           key, p, K, lane);
                } else {
                    down_chunk<RMAX, VEC, DROP, A_T_CLAMPED>(copy, acc, g, x0, ri, n0, ld, j, r0, R,
                                                             key, p, K, lane);
                }
                warp_sum_transposed(acc, lane);
#pragma unroll
                for (int b = 0; b < V; b += 32) {
                    int i = (b + lane) / RMAX, r = r0 + (b + lane) % RMAX;
                    if (i >= rows || r >= R) continue;
                    size_t n = n0 + i;
                    g.u[j][n * R + r] = g.u_scale * acc[b];
                    if (g.xb[0]) g.xu[j][n * ld + r] = __float2bfloat16(scale * acc[b]);
                }
            }
        }
    }
}

/* VEC 4 (float4 loads of X and A, 8-byte stores of xb) where every row allows it (TRANS loads
 * A's ranks apart, so only X and xb ask, each linear's X its own). */
template <bool TRANS> static bool lora_down_vec4(const LoraDown &g, const float *X, int K) {
    bool ok = !g.xb[0] || g.ld % 4 == 0;
    for (int j = 0; j < g.n; j++) {
        const float *x = TRANS ? g.X[j] : X;
        ok = ok && (TRANS ? g.K[j] : K) % 4 == 0 && (uintptr_t)x % 16 == 0;
        ok = ok && (TRANS || (uintptr_t)g.A[j] % 16 == 0) && (uintptr_t)g.xb[j] % 8 == 0;
    }
    return ok;
}

template <int RMAX, bool DROP, bool TRANS, bool XB = false>
static void launch_lora_down(const LoraDown &g, const float *X, float scale, float p, int N, int K,
                             int R) {
    constexpr int ROWS = down_rows(RMAX);
    dim3 grid(cuda_blocks(((size_t)N + ROWS - 1) / ROWS, ROW_WARPS), TRANS ? g.n : 1);
    if (lora_down_vec4<TRANS>(g, X, K))
        lora_down_kernel<RMAX, 4, DROP, TRANS, XB>
            <<<grid, ROW_WARPS * 32>>>(g, X, scale, p, N, K, R);
    else
        lora_down_kernel<RMAX, 1, DROP, TRANS, XB>
            <<<grid, ROW_WARPS * 32>>>(g, X, scale, p, N, K, R);
}

/* The forward kernel over X, or (X NULL) over the copy's bf16 rows */
template <int RMAX, bool DROP>
static void launch_lora_down_rows(const LoraDown &g, const float *X, float scale, float p, int N,
                                  int K, int R) {
    if (X)
        launch_lora_down<RMAX, DROP, false>(g, X, scale, p, N, K, R);
    else
        launch_lora_down<RMAX, DROP, false, true>(g, X, scale, p, N, K, R);
}

/* RMAX 8 up to rank 8, else chunks of 16 (two rows a warp then): more would spill or starve the
 * SM of warps; DROP p > 0. X NULL: g.xb[0]'s first K columns, bf16, rows g.ld apart. */
static void lora_down(LoraDown g, const float *X, float scale, float p, int N, int K, int R) {
    g.step = p > 0.0f ? cuda_step() : NULL;
    g.u_scale = 1.0f;
    if (R <= 8 && p > 0.0f)
        launch_lora_down_rows<8, true>(g, X, scale, p, N, K, R);
    else if (R <= 8)
        launch_lora_down_rows<8, false>(g, X, scale, p, N, K, R);
    else if (p > 0.0f)
        launch_lora_down_rows<16, true>(g, X, scale, p, N, K, R);
    else
        launch_lora_down_rows<16, false>(g, X, scale, p, N, K, R);
    CUDA_LAUNCHED("lora_down");
}

/* For each linear j of g: du_j = scale * X_j B_j [N,R] of its X_j [N,K_j] and B_j [K_j,R], and
 * its bf16 copy beside X_j's: lora_down with A = B^T read as B is stored, all in one launch. */
static void lora_down_transposed(LoraDown g, float scale, int N, int R) {
    g.u_scale = scale;
    if (R <= 8)
        launch_lora_down<8, false, true>(g, NULL, scale, 0.0f, N, 0, R);
    else
        launch_lora_down<16, false, true>(g, NULL, scale, 0.0f, N, 0, R);
    CUDA_LAUNCHED("lora_down (transposed)");
}

/* A group of n linears fits the kernels' arrays; else the error is noted. */
static bool group_fits(int n, const char *too_many) {
    if (n <= OPS_LORA_GROUP_MAX) return true;
    CUDA_FAIL(too_many);
    return false;
}

/* The scratch is the CPU's (its dropped input). inp NULL: the rows in xb already. */
void cuda_lora_down_bf16(uint16_t *xb, float *const *u, const float *const *A,
                         const uint64_t *seeds, int n, const float *inp, float scale, float p,
                         float *scratch, int N, int C, int R) {
    (void)scratch;
    if (N <= 0 || n <= 0 || R <= 0 ||
        !group_fits(n, "lora_down_bf16: more linears than OPS_LORA_GROUP_MAX"))
        return;
    LoraDown g = {};
    g.n = n, g.ld = C + n * R, g.xb[0] = (__nv_bfloat16 *)xb;
    for (int j = 0; j < n; j++) {
        g.A[j] = A[j], g.u[j] = u[j], g.seed[j] = seeds[j];
        g.xu[j] = g.xb[0] + C + j * R;
    }
    lora_down(g, inp, scale, p, N, C, R);
}

/* out[N,OC] += scale * u @ B^T (out not NULL), u[N,R] = drop(inp)[N,C] @ A[R,C]^T (saved). At p = 0
 * u is a GEMM (u^T[R,N] = A inp^T: A's column-major view is A^T, OP_T); at p > 0 the kernel masks
 * inp as it reads it, instead of writing and reading drop(inp). The scratch is the CPU's. */
void cuda_lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                       float scale, float p, uint64_t seed, float *scratch, int N, int C, int OC,
                       int R) {
    (void)scratch;
    if (N <= 0 || R <= 0) return;
    if (p > 0.0f) {
        LoraDown g = {};
        g.n = 1, g.A[0] = A, g.u[0] = u, g.seed[0] = seed;
        lora_down(g, inp, 1.0f, p, N, C, R);
    } else
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, R, N, C, 1.0f, A, C, 0, inp, C, 0, 0.0f, u, R, 0, 1);
    /* out^T[OC,N] += scale B[OC,R] u^T[R,N]: B's column-major view is B^T, OP_T */
    if (OC > 0 && out)
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, R, scale, B, R, 0, u, R, 0, 1.0f, out, OC, 0, 1);
}

/* u = AT's rows of ids (the embedding's gather); out^T[C,N] += scale B[C,R] u^T[R,N]. */
void cuda_embedding_lora_forward(float *out, float *u, const int32_t *ids, const float *AT,
                                 const float *B, float scale, int N, int C, int R) {
    if (N <= 0 || R <= 0) return;
    cuda_embedding_forward(u, ids, NULL, NULL, AT, NULL, NULL, NULL, 1, N, R);
    cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, C, N, R, scale, B, R, 0, u, R, 0, 1.0f, out, C, 0, 1);
}

/* dB^T[R,C] += scale u^T[R,N] dout[N,C]; du^T[R,N] = scale B^T[R,C] dout^T[C,N]; du scattered into
 * AT's rows as the embedding's gradient (in a fixed order: the same bits every run). */
void cuda_embedding_lora_backward(float *dAT, float *dB, const float *dout, const float *u,
                                  const int32_t *ids, const float *B, float scale, int pad,
                                  float *scratch, int N, int C, int R) {
    if (N <= 0 || C <= 0 || R <= 0) return;
    if (dB)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, R, C, N, scale, u, R, 0, dout, C, 0, 1.0f, dB, R, 0, 1);
    if (!dAT) return;
    cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, R, N, C, scale, B, R, 0, dout, C, 0, 0.0f, scratch, R, 0,
              1);
    cuda_embedding_backward(dAT, NULL, NULL, scratch, ids, NULL, pad, 1, N, R);
}

/* The input-gradient terms of up to OPS_LORA_GROUP_MAX adapted linears of one input, by value:
 * each one's du [N,R], A [R,C] and dropout seed (XOR the step's). */
struct LoraUp {
    const float *du[OPS_LORA_GROUP_MAX];
    const float *A[OPS_LORA_GROUP_MAX];
    uint64_t seed[OPS_LORA_GROUP_MAX];
    int n;
};

/* dinp[N,C] (+)= sum over j of drop_j'(du_j[N,R] A_j[R,C]) (add 0: =), each mask at inp's
 * element index: the up-projections of backward under dropout in one pass over dinp (a GEMM into
 * scratch, then the mask, would write and read [N,C] once more, and once a linear). A block takes
 * UP_ROWS rows at a time and a thread a column of them: it walks each A down the column
 * (coalesced across the block; A stays in cache) and each A value feeds UP_ROWS sums, with du's
 * values, the same for the whole block, staged in shared memory UP_RANKS ranks at a time and read
 * as broadcasts. A linear's sums are masked and added to the total in linear order. */
enum { UP_ROWS = 8, UP_RANKS = 128 };
__global__ void lora_dinp_masked_kernel(float *dinp, uint16_t *dinp_bf16, LoraUp g, float p,
                                        const OpsStep *step, int N, int C, int R, int add) {
    __shared__ float du_rows[UP_ROWS][UP_RANKS];           /* zeros past row N */
    __shared__ uint32_t keys[OPS_LORA_GROUP_MAX][UP_ROWS]; /* the rows' rng_row_key a linear */
    uint64_t step_bits = step_seed(step);
    for (size_t n0 = (size_t)blockIdx.x * UP_ROWS; n0 < (size_t)N;
         n0 += (size_t)gridDim.x * UP_ROWS) {
        size_t left = N - n0;
        int rows = left < (size_t)UP_ROWS ? (int)left : UP_ROWS;
        for (int c0 = 0; c0 < C; c0 += blockDim.x) { /* block-uniform: barriers inside */
            int c = c0 + threadIdx.x;
            /* old: what dinp holds (add), loaded here, in flight under the sums (read row by
             * row between the stores, each load waited for the store before it) */
            float total[UP_ROWS], old[UP_ROWS];
#pragma unroll
            for (int i = 0; i < UP_ROWS; i++) {
                size_t at = (n0 + i) * C + c;
                total[i] = 0.0f;
                old[i] = !add || i >= rows || c >= C ? 0.0f
                         : dinp                      ? dinp[at]
                                                     : qb_bf16(dinp_bf16[at]);
            }
            for (int j = 0; j < g.n; j++) {
                const float *du = g.du[j], *A = g.A[j];
                float acc[UP_ROWS];
#pragma unroll
                for (int i = 0; i < UP_ROWS; i++) acc[i] = 0.0f;
                for (int r0 = 0; r0 < R; r0 += UP_RANKS) {
                    int ranks = R - r0 < UP_RANKS ? R - r0 : UP_RANKS;
                    __syncthreads(); /* the previous ranks' (and rows', linear's) readers done */
                    for (int t = threadIdx.x; t < UP_ROWS * ranks; t += blockDim.x) {
                        int i = t / ranks, r = t % ranks;
                        du_rows[i][r] = i < rows ? du[(n0 + i) * R + r0 + r] : 0.0f;
                    }
                    /* the rows' keys for the masks below, written with each staging (the same
                     * values) between the barriers, where no thread reads them: the next rows'
                     * keys never overwrite ones a slower thread still reads */
                    if (threadIdx.x < UP_ROWS)
                        keys[j][threadIdx.x] = rng_row_key(g.seed[j] ^ step_bits, n0 + threadIdx.x);
                    __syncthreads();
                    for (int r = 0; c < C && r < ranks; r++) {
                        float a = A[(size_t)(r0 + r) * C + c];
#pragma unroll
                        for (int i = 0; i < UP_ROWS; i++) acc[i] += du_rows[i][r] * a;
                    }
                }
#pragma unroll
                for (int i = 0; i < UP_ROWS; i++) /* keys[j]: written before the barrier above */
                    total[i] +=
                        rng_row_scale(rng_row_pair(keys[j][i], (uint32_t)c >> 1), c & 1, p) *
                        acc[i];
            }
#pragma unroll
            for (int i = 0; i < UP_ROWS; i++) {
                if (i >= rows || c >= C) continue;
                size_t at = (n0 + i) * C + c;
                float v = add ? old[i] + total[i] : total[i];
                if (dinp)
                    dinp[at] = v;
                else
                    dinp_bf16[at] = __bfloat16_as_ushort(__float2bfloat16(v));
            }
        }
    }
}

/* Threads of a lora_dinp_masked_kernel block: a multiple of 32, at most CUDA_THREADS, that
 * gives every thread the same number of the C columns where it can (C = 576: 192 threads of 3). */
static unsigned dinp_masked_threads(int C) {
    int per_thread = (C + (int)CUDA_THREADS - 1) / (int)CUDA_THREADS;
    int threads = (C + per_thread - 1) / per_thread;
    return (unsigned)((threads + 31) / 32 * 32);
}

static void lora_dinp_masked(float *dinp, uint16_t *dinp_bf16, const LoraUp &g, float p, int N,
                             int C, int R, int acc) {
    unsigned blocks = cuda_blocks(((size_t)N + UP_ROWS - 1) / UP_ROWS, 1);
    lora_dinp_masked_kernel<<<blocks, dinp_masked_threads(C)>>>(dinp, dinp_bf16, g, p, cuda_step(),
                                                                N, C, R, acc);
    CUDA_LAUNCHED("lora backward (masked dinp)");
}

/* dinp[N,C] (+)= drop'(du @ A) at p > 0 (the masked kernel), du @ A (a GEMM) at p = 0 */
static void lora_dinp(float *dinp, const float *du, const float *A, float p, uint64_t seed, int N,
                      int C, int R, int acc) {
    if (p > 0.0f) {
        LoraUp g = {};
        g.n = 1, g.du[0] = du, g.A[0] = A, g.seed[0] = seed;
        return lora_dinp_masked(dinp, NULL, g, p, N, C, R, acc);
    }
    /* dinp^T[C,N] += A^T[C,R] du^T[R,N]: both their buffers' column-major views */
    cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, R, 1.0f, A, C, 0, du, R, 0, acc ? 1.0f : 0.0f, dinp,
              C, 0, 1);
}

void cuda_lora_dinp_bf16(float *dinp, uint16_t *dinp_bf16, const float *const *du,
                         const float *const *A, const uint64_t *seeds, int n, float p, int N, int C,
                         int R, int acc) {
    if (N <= 0 || C <= 0 || n <= 0 ||
        !group_fits(n, "lora_dinp_bf16: more linears than OPS_LORA_GROUP_MAX"))
        return;
    LoraUp g = {};
    g.n = n;
    for (int j = 0; j < n; j++) g.du[j] = du[j], g.A[j] = A[j], g.seed[j] = seeds[j];
    lora_dinp_masked(dinp, dinp_bf16, g, p, N, C, R, acc);
}

/* out [N,C] = drop(x) of x [N,C] with lora_down's masks (rest 0: fp32 / tf32's dA operand), or
 * out (+)= x - drop(x) (rest 1, acc: lora_dropout_rest's); x f32, or (NULL) xb's bf16 values rows
 * ldx apart. A warp a row, its key made once, a lane a pair of columns at a time; the product x *
 * scale rounded apart (__fmul_rn: no fma), as the CPU rounds it. */
__global__ void lora_drop_kernel(float *out, const float *x, const uint16_t *xb, int ldx, float p,
                                 uint64_t seed, const OpsStep *step, int N, int C, int rest,
                                 int acc) {
    int lane = threadIdx.x & 31;
    seed ^= step_seed(step);
    WARP_ROWS(n, N) {
        uint32_t key = rng_row_key(seed, n);
        for (int u = lane; 2 * u < C; u += 32) {
            uint32_t draw = rng_row_pair(key, (uint32_t)u);
            for (int h = 0; h < 2 && 2 * u + h < C; h++) {
                size_t k = 2 * (size_t)u + h;
                float v = x ? x[n * C + k] : as_f32(xb[n * ldx + k]);
                float kept = __fmul_rn(v, rng_row_scale(draw, h, p));
                put_grad(out + n * C + k, rest ? v - kept : kept, acc);
            }
        }
    }
}
static void lora_drop(float *out, const float *x, const uint16_t *xb, int ldx, float p,
                      uint64_t seed, int N, int C, int rest, int acc) {
    if (N <= 0 || C <= 0) return;
    lora_drop_kernel<<<cuda_blocks((size_t)N, CUDA_THREADS / 32), CUDA_THREADS>>>(
        out, x, xb, ldx, p, seed, cuda_step(), N, C, rest, acc);
    CUDA_LAUNCHED("lora_drop (lora_backward's dropped input, lora_dropout_rest)");
}

void cuda_lora_dropout_rest(float *out, const float *x, const uint16_t *xb, int ldx, float p,
                            uint64_t seed, int N, int C, int acc) {
    lora_drop(out, x, xb, ldx, p, seed, N, C, 1, acc);
}

/* ---- LoRA's weight gradients under bf16 (lora_backward_bf16's dA and dB) ----
 * out[r,c] += alpha * sum over n of bf16(a[n,r]) bf16(drop(b[n,c])), a [N,R] and b [N,C] rows
 * lda and ldb apart, bf16 or f32 (rounded as they load; b masked by lora dropout first when
 * p > 0): products of bf16 values, exact in f32, as the CPU's reference forms them. R is the
 * rank and N the tokens, a shape a GEMM tiles poorly (this was cuBLAS's bf16 GEMM, after a pass
 * writing drop(x)). Here a thread keeps GRAD_VEC columns x GRAD_RC ranks of sums over its
 * warp's rows of one split of N, the block's warps add theirs in shared memory, and the block
 * writes one partial [R,C] of its split; the last block of a tile to finish (a counter a tile)
 * adds the splits' partials in order (the same bits every run) into out, rows rs and columns cs
 * apart (dA [R,C], dB [OC,R]). A warp loads GRAD_ROWS rows before it adds any: a row's loads are
 * a round trip to memory, and the kernel holds two blocks an SM (128 registers) whatever the
 * shape, so the rows a warp has in flight are what sets its bandwidth. 4 columns x 4 rows a
 * thread keep 16 KB of b in flight an SM where 8 columns x 1 row (until the twenty-ninth
 * session) kept 8 KB; 8 x 2 would take 176 registers, one block. */
enum { GRAD_WARPS = 8, GRAD_VEC = 4, GRAD_RC = 8, GRAD_COLS = 32 * GRAD_VEC, GRAD_ROWS = 4 };

/* x rounded to bf16, as f32 */
__device__ inline float bf16_value(float x) {
    return __bfloat162float(__float2bfloat16(x));
}

/* x[e] = row[c + e] as f32 (0 past C), VEC (a multiple of 4) of them: 8-byte loads of 4 bf16,
 * or 16-byte loads of 4 f32, when vec (the row and c 16-byte aligned) and whole */
template <int VEC>
__device__ inline void load_cols(float (&x)[VEC], const __nv_bfloat16 *row, int c, int C,
                                 bool vec) {
    if (vec && c + VEC <= C) {
#pragma unroll
        for (int e = 0; e < VEC; e += 4) {
            uint2 q = *(const uint2 *)(row + c + e);
            widen_bf16x2(x + e, q.x), widen_bf16x2(x + e + 2, q.y);
        }
        return;
    }
#pragma unroll
    for (int e = 0; e < VEC; e++) x[e] = c + e < C ? __bfloat162float(row[c + e]) : 0.0f;
}
template <int VEC>
__device__ inline void load_cols(float (&x)[VEC], const float *row, int c, int C, bool vec) {
    if (vec && c + VEC <= C) {
#pragma unroll
        for (int e = 0; e < VEC; e += 4) {
            float4 q = *(const float4 *)(row + c + e);
            x[e] = q.x, x[e + 1] = q.y, x[e + 2] = q.z, x[e + 3] = q.w;
        }
        return;
    }
#pragma unroll
    for (int e = 0; e < VEC; e++) x[e] = c + e < C ? row[c + e] : 0.0f;
}

/* One weight gradient: its operands (avec, bvec: rows and base 16-byte aligned, for vector loads),
 * b's dropout, its partials and where the sum goes (out[r * rs + c * cs], times alpha); C 0 when
 * there is none (grad_args). */
template <typename TA, typename TB> struct GradArgs {
    float *partial;
    const TA *a;
    const TB *b;
    int lda, ldb, C;
    bool avec, bvec;
    float p;
    uint64_t seed; /* XOR the step's */
    float *out;
    int rs, cs;
    float alpha;
};

/* A row's N values (a multiple of 4) of b's columns or a's ranks as loaded, bf16 bits or f32, not
 * yet widened: the fast path loads every row of a step into these before it widens any, so that
 * no use of a value waits on its load while later rows' loads are still to be issued. */
template <typename T, int N> struct Raw;
template <int N> struct Raw<__nv_bfloat16, N> { uint2 q[N / 4]; };
template <int N> struct Raw<float, N> { float4 q[N / 4]; };
/* r = row[0..N) (16-byte aligned), or zeros where !in */
template <int N>
__device__ inline void load_raw(Raw<__nv_bfloat16, N> &r, const __nv_bfloat16 *row, bool in) {
#pragma unroll
    for (int e = 0; e < N / 4; e++) r.q[e] = in ? *(const uint2 *)(row + 4 * e) : make_uint2(0, 0);
}
template <int N> __device__ inline void load_raw(Raw<float, N> &r, const float *row, bool in) {
#pragma unroll
    for (int e = 0; e < N / 4; e++)
        r.q[e] = in ? *(const float4 *)(row + 4 * e) : float4{0.0f, 0.0f, 0.0f, 0.0f};
}
template <int N> __device__ inline void widen(float (&x)[N], const Raw<__nv_bfloat16, N> &r) {
#pragma unroll
    for (int e = 0; e < N / 4; e++)
        widen_bf16x2(x + 4 * e, r.q[e].x), widen_bf16x2(x + 4 * e + 2, r.q[e].y);
}
template <int N> __device__ inline void widen(float (&x)[N], const Raw<float, N> &r) {
#pragma unroll
    for (int e = 0; e < N / 4; e++)
        x[4 * e] = r.q[e].x, x[4 * e + 1] = r.q[e].y, x[4 * e + 2] = r.q[e].z,
              x[4 * e + 3] = r.q[e].w;
}

/* acc += the products of ROWS rows n, n + GRAD_WARPS, .. (all in the split) at the thread's
 * columns and ranks: every row's loads before any row's sums, which are added in row order.
 * FAST: whole vectors (b's rows and a's aligned, C a multiple of GRAD_VEC, the chunk's ranks
 * all below R), loaded raw; else load_cols value by value where it must. */
template <int ROWS, bool FAST, bool DROP, bool B_EXACT, typename TA, typename TB>
__device__ inline void grad_rows(float (&acc)[GRAD_RC * GRAD_VEC], const GradArgs<TA, TB> &g, int n,
                                 int c, int r0, int R, uint64_t seed) {
    float x[ROWS][GRAD_VEC], w[ROWS][GRAD_RC];
    if constexpr (FAST) {
        Raw<TB, GRAD_VEC> rb[ROWS];
        Raw<TA, GRAD_RC> ra[ROWS];
        bool in = c < g.C; /* all the lane's columns or none: C is a multiple of GRAD_VEC */
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            size_t m = (size_t)n + i * GRAD_WARPS;
            load_raw(rb[i], g.b + m * g.ldb + (in ? c : 0), in);
            load_raw(ra[i], g.a + m * g.lda + r0, true);
        }
#pragma unroll
        for (int i = 0; i < ROWS; i++) widen(x[i], rb[i]), widen(w[i], ra[i]);
    } else {
#pragma unroll
        for (int i = 0; i < ROWS; i++) {
            size_t m = (size_t)n + i * GRAD_WARPS;
            load_cols(x[i], g.b + m * g.ldb, c, g.C, g.bvec);
            load_cols(w[i], g.a + m * g.lda, r0, R, g.avec);
        }
    }
#pragma unroll
    for (int i = 0; i < ROWS; i++) {
        if (DROP)
            drop_slice<GRAD_VEC>(x[i], rng_row_key(seed, (uint64_t)n + i * GRAD_WARPS), c, g.p);
#pragma unroll
        for (int e = 0; e < GRAD_VEC && !B_EXACT; e++) x[i][e] = bf16_value(x[i][e]);
#pragma unroll
        for (int k = 0; k < GRAD_RC && sizeof(TA) > 2; k++) w[i][k] = bf16_value(w[i][k]);
#pragma unroll
        for (int k = 0; k < GRAD_RC; k++)
#pragma unroll
            for (int e = 0; e < GRAD_VEC; e++) acc[k * GRAD_VEC + e] += w[i][k] * x[i][e];
    }
}

/* A warp's rows n.. (GRAD_WARPS apart) below n1 into acc, GRAD_ROWS at a time, then the rest */
template <bool FAST, bool DROP, bool B_EXACT, typename TA, typename TB>
__device__ inline void grad_loop(float (&acc)[GRAD_RC * GRAD_VEC], const GradArgs<TA, TB> &g, int n,
                                 int n1, int c, int r0, int R, uint64_t seed) {
    for (; n + (GRAD_ROWS - 1) * GRAD_WARPS < n1; n += GRAD_ROWS * GRAD_WARPS)
        grad_rows<GRAD_ROWS, FAST, DROP, B_EXACT>(acc, g, n, c, r0, R, seed);
    for (; n < n1; n += GRAD_WARPS) grad_rows<1, FAST, DROP, B_EXACT>(acc, g, n, c, r0, R, seed);
}

/* A block's work (column tile `tile`, split y, rank chunk z): partial[y][r][c] = the split's
 * sums for ranks r0.. r0 + GRAD_RC and the tile's columns. B_EXACT: b's values are bf16 already
 * (a bf16 b at p = 0), so they need no rounding. */
template <typename TA, typename TB, bool DROP, bool B_EXACT>
__device__ inline void grad_partial(const GradArgs<TA, TB> &g, int tile, int N, int R,
                                    int split_rows, const OpsStep *step, float *red) {
    enum { V = GRAD_RC * GRAD_VEC };
    int C = g.C;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int c = tile * GRAD_COLS + lane * GRAD_VEC, r0 = blockIdx.z * GRAD_RC;
    int n0 = blockIdx.y * split_rows, n1 = min(N, n0 + split_rows);
    uint64_t seed = DROP ? g.seed ^ step_seed(step) : 0;
    float acc[V];
#pragma unroll
    for (int v = 0; v < V; v++) acc[v] = 0.0f;
    if (g.avec && g.bvec && C % GRAD_VEC == 0 && r0 + GRAD_RC <= R) /* block-uniform */
        grad_loop<true, DROP, B_EXACT>(acc, g, n0 + warp, n1, c, r0, R, seed);
    else
        grad_loop<false, DROP, B_EXACT>(acc, g, n0 + warp, n1, c, r0, R, seed);
    for (int half = GRAD_WARPS / 2; half >= 1; half /= 2) { /* the warps' sums into warp 0's */
        if (warp >= half && warp < 2 * half)
#pragma unroll
            for (int v = 0; v < V; v++) red[((warp - half) * V + v) * 32 + lane] = acc[v];
        __syncthreads();
        if (warp < half)
#pragma unroll
            for (int v = 0; v < V; v++) acc[v] += red[(warp * V + v) * 32 + lane];
        __syncthreads();
    }
    if (warp) return;
    float *out = g.partial + (size_t)blockIdx.y * R * C;
#pragma unroll
    for (int k = 0; k < GRAD_RC; k++)
#pragma unroll
        for (int e = 0; e < GRAD_VEC; e++)
            if (r0 + k < R && c + e < C) out[(size_t)(r0 + k) * C + c + e] = acc[k * GRAD_VEC + e];
    __threadfence(); /* the partial seen by every block before this one's count (grad_last) */
}

/* Whether this block is the last of its tile's splits (grid.y) to finish: its counter (a tile
 * and rank chunk) counts the blocks done, and the last puts it back to 0 for the next launch. */
__device__ inline bool grad_last(unsigned *counters) {
    __shared__ bool last;
    __syncthreads();        /* every partial of this block written and fenced */
    if (threadIdx.x == 0) { /* fences either side of the count: release, then acquire */
        unsigned *n = counters + (size_t)blockIdx.z * gridDim.x + blockIdx.x;
        __threadfence();
        last = atomicAdd(n, 1u) == gridDim.y - 1;
        __threadfence();
        if (last) *n = 0;
    }
    __syncthreads();
    return last;
}

/* The last block's sum of a tile's partials over the splits, in split order, into out: a thread
 * a column and SUM_RANKS of its rank chunk's ranks (the block's threads cover the tile's columns
 * and the chunk's ranks), those ranks side by side and 8 splits at once, so that 32 loads are in
 * flight together (a rank at a time, volatile, was a round trip to L2 every 16 splits of each
 * rank: 48 in a row at SmolLM2's 85 splits, this block alone, at the end of the kernel). The
 * loads read past L1 (__ldcg): other blocks wrote the partials. */
enum { SUM_RANKS = GRAD_RC * GRAD_COLS / (GRAD_WARPS * 32) };
static_assert(SUM_RANKS * GRAD_WARPS * 32 == GRAD_RC * GRAD_COLS, "grad_sum: the block's threads");
template <typename TA, typename TB>
__device__ inline void grad_sum(const GradArgs<TA, TB> &g, int tile, int R) {
    int C = g.C, c = tile * GRAD_COLS + (int)threadIdx.x % GRAD_COLS;
    int r0 = blockIdx.z * GRAD_RC + (int)threadIdx.x / GRAD_COLS * SUM_RANKS;
    if (c >= C || r0 >= R) return;
    int ranks = min(SUM_RANKS, R - r0);
    size_t RC = (size_t)R * C;
    const float *p = g.partial + (size_t)r0 * C + c;
    float sum[SUM_RANKS] = {};
#pragma unroll 8
    for (unsigned t = 0; t < gridDim.y; t++, p += RC)
#pragma unroll
        for (int k = 0; k < SUM_RANKS; k++)
            if (k < ranks) sum[k] += __ldcg(p + (size_t)k * C);
    for (int k = 0; k < ranks; k++)
        g.out[(size_t)(r0 + k) * g.rs + (size_t)c * g.cs] += g.alpha * sum[k];
}

/* The weight gradients of a group's n adapted linears, by value: each one's dB (from u in f32
 * and dout's bf16 copy) and dA (from du's bf16 copy and the input, f32 or its bf16 copy TB, under
 * lora dropout when the kernel's DROP); gradient k is b[k] for k < n, else a[k - n], and its
 * column tiles are the grid's blocks first[k] .. first[k + 1]. */
template <typename TB> struct GradGroup {
    GradArgs<float, __nv_bfloat16> b[OPS_LORA_GROUP_MAX];
    GradArgs<__nv_bfloat16, TB> a[OPS_LORA_GROUP_MAX];
    int first[2 * OPS_LORA_GROUP_MAX + 1];
    int n;
};

/* Every gradient of a group in one launch: a block finds its gradient by its x, writes its
 * split's partial, and the last of a tile's splits sums them. */
template <typename TB, bool DROP>
__global__ void __launch_bounds__(GRAD_WARPS * 32, 2)
    lora_grads_kernel(GradGroup<TB> g, int N, int R, int split_rows, const OpsStep *step,
                      unsigned *counters) {
    __shared__ float red[GRAD_WARPS / 2 * GRAD_RC * GRAD_VEC * 32]; /* [warp][v][lane] */
    int t = (int)blockIdx.x, k = 0;
    while (k + 1 < 2 * g.n && t >= g.first[k + 1]) k++;
    if (k < g.n) {
        const GradArgs<float, __nv_bfloat16> b = g.b[k]; /* in registers: the loop reloads none */
        grad_partial<float, __nv_bfloat16, false, true>(b, t - g.first[k], N, R, split_rows, step,
                                                        red);
        if (grad_last(counters)) grad_sum(b, t - g.first[k], R);
    } else {
        const GradArgs<__nv_bfloat16, TB> a = g.a[k - g.n];
        grad_partial<__nv_bfloat16, TB, DROP, !DROP && sizeof(TB) == 2>(a, t - g.first[k], N, R,
                                                                        split_rows, step, red);
        if (grad_last(counters)) grad_sum(a, t - g.first[k], R);
    }
}

/* The gradient out[r * rs + c * cs] (+)= alpha * sum_n bf16(a[n,r]) bf16(drop(b[n,c])) of R x C
 * values, none when out is NULL; lora_grads fills in the rest. */
template <typename TA, typename TB>
static GradArgs<TA, TB> grad_args(float *out, int rs, int cs, float alpha, const TA *a, int lda,
                                  const TB *b, int ldb, int C, float p, uint64_t seed) {
    GradArgs<TA, TB> g = {};
    g.out = out, g.rs = rs, g.cs = cs, g.alpha = alpha, g.a = a, g.lda = lda, g.b = b;
    g.ldb = ldb, g.C = out ? C : 0, g.p = p, g.seed = seed;
    return g;
}
/* Rows of x, ld elements apart from x, all start 16-byte aligned */
template <typename T> static bool aligned16(const T *x, int ld) {
    return (uintptr_t)x % 16 == 0 && (size_t)ld * sizeof(T) % 16 == 0;
}

/* A group's dB and dA (a gradient's C 0: none; the dA's lora dropout p) in one launch: the
 * partials, in partial, and their sums. The splits: about GRAD_BLOCKS blocks in all, at least
 * 64 rows and at most ops_lora_grad_splits(N) of them (the partials' scratch holds that many of
 * each gradient). */
enum { GRAD_BLOCKS = 512 };
template <typename TB>
static void lora_grads(GradGroup<TB> g, float p, float *partial, int N, int R) {
    int tiles = 0, chunks = (R + GRAD_RC - 1) / GRAD_RC;
    for (int k = 0; k < 2 * g.n; k++) {
        int C = k < g.n ? g.b[k].C : g.a[k - g.n].C;
        g.first[k] = tiles, tiles += (C + GRAD_COLS - 1) / GRAD_COLS;
    }
    g.first[2 * g.n] = tiles;
    if (!tiles) return;
    if ((size_t)tiles * chunks > CUDA_COUNTERS) {
        CUDA_FAIL("lora_backward_bf16: more weight-gradient tiles than CUDA_COUNTERS");
        return;
    }
    unsigned *counters = cuda_counters();
    if (!counters) return; /* the allocation's error noted */
    int splits = GRAD_BLOCKS / (tiles * chunks), most = (int)ops_lora_grad_splits((size_t)N);
    splits = splits < 1 ? 1 : splits > most ? most : splits;
    int split_rows = (N + splits - 1) / splits;
    splits = (N + split_rows - 1) / split_rows;
    for (int k = 0; k < 2 * g.n; k++) {
        if (k < g.n) {
            auto &b = g.b[k];
            b.partial = partial, b.avec = aligned16(b.a, b.lda), b.bvec = aligned16(b.b, b.ldb);
            partial += (size_t)splits * R * b.C;
        } else {
            auto &a = g.a[k - g.n];
            a.partial = partial, a.avec = aligned16(a.a, a.lda), a.bvec = aligned16(a.b, a.ldb);
            partial += (size_t)splits * R * a.C;
        }
    }
    dim3 grid((unsigned)tiles, (unsigned)splits, (unsigned)chunks);
    if (p > 0.0f)
        lora_grads_kernel<TB, true>
            <<<grid, GRAD_WARPS * 32>>>(g, N, R, split_rows, cuda_step(), counters);
    else
        lora_grads_kernel<TB, false>
            <<<grid, GRAD_WARPS * 32>>>(g, N, R, split_rows, NULL, counters);
    CUDA_LAUNCHED("lora_backward_bf16 (weight gradients)");
}

/* du[N,R] = scale * dout @ B (in scratch after N*C floats); dB[OC,R] += scale *
 * dout^T @ u; dA[R,C] += du^T @ drop(inp); dinp[N,C] += drop'(du @ A). GEMMs, but for dinp at
 * p > 0 (the masked kernel above); at p > 0 dA reads drop(inp) from scratch, as on the CPU. */
void cuda_lora_backward(float *dinp, float *dA, float *dB, const float *dout, const float *inp,
                        const float *u, const float *A, const float *B, float scale, float p,
                        uint64_t seed, float *scratch, int N, int C, int OC, int R) {
    if (N <= 0 || C <= 0 || OC <= 0 || R <= 0) return;
    /* dB^T[R,OC] += scale * u^T[R,N] dout[N,OC]; dout's column-major view is
     * dout^T: OP_T */
    if (dB)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, R, OC, N, scale, u, R, 0, dout, OC, 0, 1.0f, dB, R, 0,
                  1);
    if (!dA && !dinp) return;
    const float *du = B ? scratch + (size_t)N * C : dout; /* B NULL: dout is du */
    /* du^T[R,N] = scale B^T[R,OC] dout^T[OC,N]: both are their buffers' column-major views */
    if (B)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, R, N, OC, scale, B, R, 0, dout, OC, 0, 0.0f,
                  scratch + (size_t)N * C, R, 0, 1);
    if (dA) {
        const float *x = inp;
        if (p > 0.0f) {
            lora_drop(scratch, inp, NULL, C, p, seed, N, C, 0, OPS_SET);
            x = scratch;
        }
        /* dA^T[C,R] += drop(inp)^T[C,N] du[N,R]; du's column-major view is du^T:
         * OP_T */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, R, N, 1.0f, x, C, 0, du, R, 0, 1.0f, dA, C, 0, 1);
    }
    if (dinp) lora_dinp(dinp, du, A, p, seed, N, C, R, 1);
}

/* A group's dB and dA: each linear's from its columns of dd and x (inp f32, or its bf16 copy
 * xb, rows ldx apart). */
template <typename TB>
static void group_grads(const OpsLoraBackward *lin, int n, const __nv_bfloat16 *d, int ldd,
                        const TB *x, int ldx, float scale, float p, float *partial, int N, int C,
                        int R) {
    GradGroup<TB> g = {};
    for (int j = 0; j < n; j++) { /* dB[c,r] += scale sum_n bf16(u)[n,r] dout[n,c]; dA[r,c] +=
                                     sum_n du[n,r] drop(x)[n,c]; of the adapted */
        const OpsLoraBackward *l = &lin[j];
        if (!l->B) continue;
        g.b[g.n] = grad_args(l->dB, 1, R, scale, l->u, R, d + l->dout_col, ldd, l->OC, 0.0f, 0);
        g.a[g.n++] = grad_args(l->dA, C, 1, 1.0f, d + l->du_col, ldd, x, ldx, C, p, l->seed);
    }
    lora_grads(g, p, partial, N, R);
}

/* The down kernel over each dout with its B for A^T writes its du (its u) and dd's columns (its
 * copy [bf16(dout) .. bf16(du)]) from one read of dout, the group in one launch (a member
 * without LoRA: the copy of its dout alone); dB and dA are
 * lora_grads' sums over dd's parts, their partials in the scratch, the group in one launch. */
void cuda_lora_backward_bf16(uint16_t *dd, int ldd, const OpsLoraBackward *lin, int n,
                             const float *inp, const uint16_t *xb, int ldx, float scale, float p,
                             float *scratch, int N, int C, int R) {
    if (N <= 0 || C <= 0 || R <= 0 || n <= 0 ||
        !group_fits(n, "lora_backward_bf16: more linears than OPS_LORA_GROUP_MAX"))
        return;
    LoraDown g = {};
    g.n = n, g.ld = ldd;
    for (int j = 0; j < n; j++) {
        g.A[j] = lin[j].B, g.u[j] = lin[j].du, g.X[j] = lin[j].dout, g.K[j] = lin[j].OC;
        g.xb[j] = (__nv_bfloat16 *)dd + lin[j].dout_col;
        g.xu[j] = (__nv_bfloat16 *)dd + lin[j].du_col;
    }
    lora_down_transposed(g, scale, N, R);
    const __nv_bfloat16 *d = (const __nv_bfloat16 *)dd;
    if (inp)
        group_grads(lin, n, d, ldd, inp, C, scale, p, scratch, N, C, R);
    else
        group_grads(lin, n, d, ldd, (const __nv_bfloat16 *)xb, ldx, scale, p, scratch, N, C, R);
}
