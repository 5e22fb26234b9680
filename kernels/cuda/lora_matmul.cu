/* lora_matmul.cu: the dense layer (frozen base GEMM on cuBLAS, or on cuBLASLt with the bias in
 * its epilogue; bias gradient) and the LoRA branch beside it. LoRA's rank R is small (<= 64), so
 * its two thin products are custom kernels: a warp per row computes all R outputs of drop(x) A^T
 * with dropout applied on load, and an epilogue adds scale * u B^T into out. The bigger-K
 * reductions of backward (dA, dB) go to cuBLAS. Under model.precision bf16 the up-projection has
 * no kernel of its own: lora_down_bf16 reads the input once for every linear of a group (q, k, v)
 * and writes each one's [bf16(x) | bf16(scale u)], and the base GEMM runs over K + R columns,
 * [x | scale u] [W | B]^T (DESIGN.md's fusion), so out is written once.
 *
 * Row-major X[r,c] is column-major X^T, so every cuBLAS call below computes the
 * transpose of the row-major formula in its comment. */
#include "cuda_common.cuh"

enum { ROW_WARPS = 8 };

/* out[N,R] = scale * drop(X)[N,K] @ W'^T with W'[r,k] = W[r*sr + k*sk]; one
 * warp per row, each lane keeps RMAX partial sums in registers and reduces them
 * once at the end. */
template <int RMAX>
__global__ void __launch_bounds__(ROW_WARPS * 32)
    lora_down_kernel(float *out, const float *X, const float *W, int sr, int sk, float scale,
                     float p, uint64_t seed, int N, int K, int R) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(n, N) {
        float acc[RMAX];
#pragma unroll
        for (int r = 0; r < RMAX; r++) acc[r] = 0.0f;
        for (int k = lane; k < K; k += 32) {
            size_t idx = n * K + k;
            float x = X[idx] * rng_dropout_scale(seed, idx, p);
#pragma unroll
            for (int r = 0; r < RMAX; r++)
                if (r < R) acc[r] += x * W[(size_t)r * sr + (size_t)k * sk];
        }
#pragma unroll
        for (int r = 0; r < RMAX; r++)
            if (r < R) {
                float s = warp_sum(acc[r]);
                if (lane == 0) out[n * R + r] = scale * s;
            }
    }
}

/* out[N,M] += scale * drop(u[N,R] @ W'^T) with W'[m,r] = W[m*sm + r*sr]; one
 * thread per output element, dropout index = element index of out. */
__global__ void lora_up_kernel(float *out, const float *u, const float *W, int sm, int sr,
                               float scale, float p, uint64_t seed, int N, int M, int R) {
    GRID_STRIDE(i, (size_t)N * M) {
        size_t n = i / M, m = i % M;
        float s = 0.0f;
        for (int r = 0; r < R; r++) s += u[n * R + r] * W[m * sm + (size_t)r * sr];
        out[i] += scale * rng_dropout_scale(seed, i, p) * s;
    }
}

/* out[N,R] = scale * drop(X) W'^T as above. R > 64 (beyond the register kernel)
 * falls back to cuBLAS, materialising drop(X) in scratch [N,K] when p > 0. W'
 * is either A [R,K] (sr = K, sk = 1) or B^T for B [K,R] (sr = 1, sk = R). */
static void lora_down(float *out, const float *X, const float *W, int sr, int sk, float scale,
                      float p, uint64_t seed, float *scratch, int N, int K, int R) {
    unsigned blocks = cuda_blocks((size_t)N, ROW_WARPS), threads = ROW_WARPS * 32;
    if (R <= 8)
        lora_down_kernel<8><<<blocks, threads>>>(out, X, W, sr, sk, scale, p, seed, N, K, R);
    else if (R <= 16)
        lora_down_kernel<16><<<blocks, threads>>>(out, X, W, sr, sk, scale, p, seed, N, K, R);
    else if (R <= 32)
        lora_down_kernel<32><<<blocks, threads>>>(out, X, W, sr, sk, scale, p, seed, N, K, R);
    else if (R <= 64)
        lora_down_kernel<64><<<blocks, threads>>>(out, X, W, sr, sk, scale, p, seed, N, K, R);
    else {
        if (p > 0.0f) {
            cuda_dropout_forward(scratch, X, p, seed, (size_t)N * K);
            X = scratch;
        }
        /* out^T[R,N] = W' X^T: W' column-major is W with ld R (sr == 1) or W^T with
         * ld K */
        cuda_gemm(sr == 1 ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N, R, N, K, scale, W,
                  sr == 1 ? R : K, 0, X, K, 0, 0.0f, out, R, 0, 1);
        return;
    }
    CUDA_LAUNCHED("lora_down");
}

static void lora_up(float *out, const float *u, const float *W, int sm, int sr, float scale,
                    float p, uint64_t seed, int N, int M, int R) {
    lora_up_kernel<<<cuda_blocks((size_t)N * M, CUDA_THREADS), CUDA_THREADS>>>(
        out, u, W, sm, sr, scale, p, seed, N, M, R);
    CUDA_LAUNCHED("lora_up");
}

/* out[N,OC] += bias[OC] */
__global__ void bias_add_kernel(float *out, const float *bias, size_t N, int OC) {
    GRID_STRIDE(i, N * OC) out[i] += bias[i % OC];
}

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC], rows ldi and ldw apart, FP32 or BF16
 * operands: out^T[OC,N] = W[OC,C] inp^T[C,N]; weight column-major is W^T: OP_T. The bias rides
 * in cuBLASLt's epilogue; one it declines (under-aligned) takes a pass of its own. */
static void dense_forward(float *out, cudaDataType type, const void *inp, int ldi,
                          const void *weight, int ldw, const float *bias, int N, int C, int OC) {
    if (cuda_gemm_bias(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, type, weight, ldw, inp, ldi, out, OC,
                       bias))
        return;
    if (type == CUDA_R_16BF)
        cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, (const __nv_bfloat16 *)weight, ldw,
                       (const __nv_bfloat16 *)inp, ldi, 0.0f, out, OC);
    else
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, (const float *)weight, ldw, 0,
                  (const float *)inp, ldi, 0, 0.0f, out, OC, 0, 1);
    if (!bias) return;
    bias_add_kernel<<<cuda_blocks((size_t)N * OC, CUDA_THREADS), CUDA_THREADS>>>(out, bias, N, OC);
    CUDA_LAUNCHED("matmul_forward (bias)");
}

/* dbias[OC] += sum_n dout[n,:]: 32-column tiles, rows split over 8 thread rows
 * and the grid's y dimension, partial sums joined with atomics. */
__global__ void bias_grad_kernel(float *dbias, const float *dout, int N, int OC) {
    __shared__ float part[8][33];
    int c = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < OC)
        for (int n = blockIdx.y * 8 + threadIdx.y; n < N; n += gridDim.y * 8)
            s += dout[(size_t)n * OC + c];
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y || c >= OC) return;
    for (int y = 1; y < 8; y++) s += part[y][threadIdx.x];
    atomicAdd(&dbias[c], s);
}

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] */
void cuda_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                         int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    dense_forward(out, CUDA_R_32F, inp, C, weight, C, bias, N, C, OC);
}

/* dinp[N,C] += dout[N,OC] @ weight[OC,C]; dweight[OC,C] += dout^T @ inp; dbias
 * += sum_n dout */
void cuda_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                          const float *inp, const float *weight, int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    /* dinp^T[C,N] += W^T[C,OC] dout^T[OC,N]: both are their buffers' column-major
     * views */
    if (dinp)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, 1.0f, weight, C, 0, dout, OC, 0, 1.0f, dinp,
                  C, 0, 1);
    /* dweight^T[C,OC] += inp^T[C,N] dout[N,OC]; dout's column-major view is
     * dout^T: OP_T */
    if (dweight)
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, 1.0f, inp, C, 0, dout, OC, 0, 1.0f, dweight,
                  C, 0, 1);
    if (dbias) {
        bias_grad_kernel<<<dim3((OC + 31) / 32, cuda_row_groups(N)), dim3(32, 8)>>>(dbias, dout, N,
                                                                                    OC);
        CUDA_LAUNCHED("matmul_backward (dbias)");
    }
}

/* model.precision bf16: the same products on tensor cores, on operands already in bf16 (the
 * model rounds the activation once per group, lora_down_bf16 or dequantize_rows_bf16); the
 * scratch is the CPU's. */
void cuda_matmul_forward_bf16(float *out, const uint16_t *inp, int ldi, const uint16_t *weight,
                              int ldw, const float *bias, float *scratch, int N, int C, int OC) {
    (void)scratch;
    if (N <= 0 || OC <= 0) return;
    dense_forward(out, CUDA_R_16BF, inp, ldi, weight, ldw, bias, N, C, OC);
}

/* out[N, M+R] = bf16([a | b]) of a [N,M] and b [N,R]: one pass for both */
__global__ void round_concat_bf16_kernel(__nv_bfloat16 *out, const float *a, int M, const float *b,
                                         int R, size_t n) {
    GRID_STRIDE(i, n) {
        size_t row = i / (M + R);
        int c = (int)(i % (M + R));
        out[i] = __float2bfloat16(c < M ? a[row * M + c] : b[row * R + c - M]);
    }
}

/* [dout | du] rounded to bf16 into scratch first (A and B of cublasGemmEx share one type). */
void cuda_matmul_backward_bf16(float *dinp, const float *dout, const float *du, int R,
                               const uint16_t *weight, int ldw, float *scratch, int N, int C,
                               int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    int K = OC + (du ? R : 0);
    __nv_bfloat16 *d = (__nv_bfloat16 *)scratch;
    size_t n = (size_t)N * K;
    round_concat_bf16_kernel<<<cuda_blocks(n, CUDA_THREADS), CUDA_THREADS>>>(d, dout, OC, du,
                                                                             K - OC, n);
    CUDA_LAUNCHED("matmul_backward_bf16 (round)");
    cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, N, K, 1.0f, (const __nv_bfloat16 *)weight, ldw, d,
                   K, 1.0f, dinp, C);
}

/* lora_down_bf16's linears, by value: each one's A [R,K], saved u [N,R] and dropout seed. */
struct LoraGroup {
    const float *A[OPS_LORA_GROUP_MAX];
    float *u[OPS_LORA_GROUP_MAX];
    uint64_t seed[OPS_LORA_GROUP_MAX];
    int n;
};

/* One warp per row x of X [N,K]: for each linear j of g, u_j = drop_j(x) A_j^T in chunks of RMAX
 * outputs (registers, reduced once), saved in f32 and appended to copy j of xb [N, K+R] as
 * bf16(scale u_j); the first chunk also writes bf16(x) into every copy. Only that first pass
 * reads the row from memory: the others find it in cache. */
template <int RMAX>
__global__ void __launch_bounds__(ROW_WARPS * 32)
    lora_down_bf16_kernel(__nv_bfloat16 *xb, LoraGroup g, const float *X, float scale, float p,
                          int N, int K, int R) {
    int lane = threadIdx.x & 31;
    size_t ld = (size_t)K + R;
    WARP_ROWS(n, N) {
        for (int j = 0; j < g.n; j++)
            for (int r0 = 0; r0 < R; r0 += RMAX) {
                float acc[RMAX];
#pragma unroll
                for (int r = 0; r < RMAX; r++) acc[r] = 0.0f;
                for (int k = lane; k < K; k += 32) {
                    size_t idx = n * K + k;
                    float x = X[idx];
                    if (j == 0 && r0 == 0)
                        for (int c = 0; c < g.n; c++)
                            xb[(c * (size_t)N + n) * ld + k] = __float2bfloat16(x);
                    x *= rng_dropout_scale(g.seed[j], idx, p);
                    const float *a = g.A[j] + (size_t)r0 * K + k;
#pragma unroll
                    for (int r = 0; r < RMAX; r++)
                        if (r0 + r < R) acc[r] += x * a[(size_t)r * K];
                }
#pragma unroll
                for (int r = 0; r < RMAX; r++)
                    if (r0 + r < R) {
                        float s = warp_sum(acc[r]);
                        if (lane != (r & 31)) continue;
                        g.u[j][n * R + r0 + r] = s;
                        xb[(j * (size_t)N + n) * ld + K + r0 + r] = __float2bfloat16(scale * s);
                    }
            }
    }
}

template <int RMAX>
static void launch_lora_down_bf16(__nv_bfloat16 *xb, const LoraGroup &g, const float *X,
                                  float scale, float p, int N, int K, int R) {
    lora_down_bf16_kernel<RMAX>
        <<<cuda_blocks((size_t)N, ROW_WARPS), ROW_WARPS * 32>>>(xb, g, X, scale, p, N, K, R);
}

/* The scratch is the CPU's (its dropped input). */
void cuda_lora_down_bf16(uint16_t *xb, float *const *u, const float *const *A,
                         const uint64_t *seeds, int n, const float *inp, float scale, float p,
                         float *scratch, int N, int C, int R) {
    (void)scratch;
    if (N <= 0 || n <= 0 || R <= 0) return;
    if (n > OPS_LORA_GROUP_MAX) {
        CUDA_FAIL("lora_down_bf16: more linears than OPS_LORA_GROUP_MAX");
        return;
    }
    LoraGroup g = {};
    g.n = n;
    for (int j = 0; j < n; j++) g.A[j] = A[j], g.u[j] = u[j], g.seed[j] = seeds[j];
    __nv_bfloat16 *x = (__nv_bfloat16 *)xb;
    if (R <= 8)
        launch_lora_down_bf16<8>(x, g, inp, scale, p, N, C, R);
    else if (R <= 16)
        launch_lora_down_bf16<16>(x, g, inp, scale, p, N, C, R);
    else if (R <= 32)
        launch_lora_down_bf16<32>(x, g, inp, scale, p, N, C, R);
    else
        launch_lora_down_bf16<64>(x, g, inp, scale, p, N, C, R);
    CUDA_LAUNCHED("lora_down_bf16");
}

/* out[N,OC] += scale * u @ B^T, u[N,R] = drop(inp)[N,C] @ A[R,C]^T (saved) */
void cuda_lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                       float scale, float p, uint64_t seed, float *scratch, int N, int C, int OC,
                       int R) {
    if (N <= 0 || R <= 0) return;
    lora_down(u, inp, A, C, 1, 1.0f, p, seed, scratch, N, C, R);
    if (OC > 0) lora_up(out, u, B, R, 1, scale, 0.0f, 0, N, OC, R);
}

/* du[N,R] = scale * dout @ B (in scratch after N*C floats); dB[OC,R] += scale *
 * dout^T @ u; dA[R,C] += du^T @ drop(inp); dinp[N,C] += drop'(du @ A). */
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
    float *du = scratch + (size_t)N * C;
    lora_down(du, dout, B, 1, R, scale, 0.0f, 0, NULL, N, OC, R);
    if (dA) {
        const float *x = inp;
        if (p > 0.0f) {
            cuda_dropout_forward(scratch, inp, p, seed, (size_t)N * C);
            x = scratch;
        }
        /* dA^T[C,R] += drop(inp)^T[C,N] du[N,R]; du's column-major view is du^T:
         * OP_T */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, C, R, N, 1.0f, x, C, 0, du, R, 0, 1.0f, dA, C, 0, 1);
    }
    if (dinp) lora_up(dinp, du, A, 1, C, 1.0f, p, seed, N, C, R);
}
