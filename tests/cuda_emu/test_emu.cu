/* test_emu.cu: tests of the CUDA emulation itself (tests/cuda_emu), written as CUDA and
 * pre-processed like kernels/: warp intrinsics against their documented results, barriers
 * and shared memory under permuted thread orders, dynamic shared memory, atomics, 3-D
 * indices, launch errors, cuBLAS's column-major semantics against naive loops (FP32, and BF16
 * operands with FP32 output), cuBLASLt's too (with the bias epilogue, the alignments an algorithm
 * was chosen for, capture), bf16 rounding, ldmatrix (plain and transposed) and mma.sync against
 * the fragment layouts PTX documents, cp.async's copies landing at the wait, stream capture and
 * graphs (recorded, not run; replayed with the captured arguments; updated; every call CUDA refuses
 * during a capture refused with its error and the capture invalidated); LORAFT_EMU_DEVICES and
 * NCCL (ranks as forked processes: a sum over three ranks of more than one chunk, bit for bit the
 * sum in rank order; two ranks on one device refused on every rank; nothing left in /dev/shm; a
 * captured ncclAllReduce); and, each in a child process, the aborts that make bugs visible: a
 * divergent shuffle, a shuffle against a barrier, a host pointer passed to a kernel, a GEMM operand
 * past its allocation (FP32 and BF16), data and compute types not emulated, a cuBLASLt epilogue not
 * emulated or bias past its allocation or misaligned, ldmatrix with a misaligned row or in part of
 * a warp, a misaligned cp.async, a device count out of range, an NCCL rank whose peers never come
 * (to the join or to a sum), an NCCL buffer in host memory. Not a test of kernels/ (tests/gpu does
 * that). Prints "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma_ptx.h>
#include <nccl.h>

static int passed, failed;
#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (cond)                                                                                  \
            passed++;                                                                              \
        else {                                                                                     \
            failed++;                                                                              \
            fprintf(stderr, "%s:%d: EXPECT failed: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                                          \
    } while (0)

/* ---- warp intrinsics: 2 warps, 8 results per thread ---- */
__global__ void shfl_kernel(int *out) {
    int lane = threadIdx.x & 31, v = lane * 10 + (int)(threadIdx.x >> 5) * 1000;
    int *o = out + threadIdx.x * 8;
    o[0] = __shfl_xor_sync(0xffffffffu, v, 1);
    o[1] = __shfl_up_sync(0xffffffffu, v, 3);
    o[2] = __shfl_down_sync(0xffffffffu, v, 3);
    o[3] = __shfl_sync(0xffffffffu, v, 5);
    o[4] = __shfl_down_sync(0xffffffffu, v, 4, 8); /* within groups of 8 */
    o[5] = (int)__ballot_sync(0xffffffffu, lane & 1);
    o[6] = __any_sync(0xffffffffu, lane == 7) + 2 * __all_sync(0xffffffffu, lane < 31);
    if (lane < 16)
        o[7] = __shfl_xor_sync(0x0000ffffu, v, 2); /* two independent halves */
    else
        o[7] = __shfl_sync(0xffff0000u, v, 16);
}

static void test_shuffles(void) {
    int *d, h[64 * 8];
    cudaMalloc(&d, sizeof h);
    shfl_kernel<<<1, 64>>>(d);
    EXPECT(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int t = 0; t < 64; t++) {
        int lane = t & 31, w = (t >> 5) * 1000, *o = h + t * 8;
        ok &= o[0] == (lane ^ 1) * 10 + w;
        ok &= o[1] == (lane >= 3 ? lane - 3 : lane) * 10 + w;
        ok &= o[2] == (lane + 3 < 32 ? lane + 3 : lane) * 10 + w;
        ok &= o[3] == 50 + w;
        ok &= o[4] == ((lane & 7) + 4 < 8 ? lane + 4 : lane) * 10 + w;
        ok &= (unsigned)o[5] == 0xaaaaaaaau;
        ok &= o[6] == 1;
        ok &= o[7] == (lane < 16 ? (lane ^ 2) * 10 + w : 160 + w);
        if (!ok) {
            fprintf(stderr, "shuffles: thread %d wrong\n", t);
            break;
        }
    }
    EXPECT(ok);
    cudaFree(d);
}

/* ---- barriers, static and dynamic shared memory, atomics, 3-D indices ---- */
template <bool SYNC> __global__ void reverse_kernel(int *out) {
    __shared__ int tile[256];
    tile[threadIdx.x] = (int)threadIdx.x;
    if (SYNC) __syncthreads();
    out[blockIdx.x * 256 + threadIdx.x] = tile[255 - threadIdx.x];
}

__global__ void dyn_shared_kernel(float *out) {
    extern __shared__ float buf[];
    buf[threadIdx.x] = 1.0f + threadIdx.x;
    __syncthreads();
    float s = 0.0f;
    for (unsigned i = 0; i < blockDim.x; i++) s += buf[i];
    if (threadIdx.x == 0) atomicAdd(out, s);
}

__global__ void index_kernel(int *out) {
    unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    atomicAdd(&out[b * blockDim.x * blockDim.y * blockDim.z + t], 1);
}

static void test_blocks(void) {
    int *d, h[4 * 256];
    cudaMalloc(&d, sizeof h);
    reverse_kernel<true><<<4, 256>>>(d);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int i = 0; i < 4 * 256; i++) ok &= h[i] == 255 - i % 256;
    EXPECT(ok); /* with the barrier: right in every order */
    reverse_kernel<false><<<4, 256>>>(d);
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    ok = 1;
    for (int i = 0; i < 4 * 256; i++) ok &= h[i] == 255 - i % 256;
    EXPECT(!ok); /* without: threads read the 0xff fill or each other's stale values */
    cudaFree(d);

    float *s, hs;
    cudaMalloc(&s, sizeof *s);
    cudaMemset(s, 0, sizeof *s);
    dyn_shared_kernel<<<3, 96, 96 * sizeof(float)>>>(s);
    cudaMemcpy(&hs, s, sizeof hs, cudaMemcpyDeviceToHost);
    EXPECT(hs == 3 * 96 * 97 / 2);
    cudaFree(s);

    int *c, hc[2 * 3 * 4 * 64];
    cudaMalloc(&c, sizeof hc);
    cudaMemset(c, 0, sizeof hc);
    index_kernel<<<dim3(2, 3, 4), dim3(4, 4, 4)>>>(c);
    cudaMemcpy(hc, c, sizeof hc, cudaMemcpyDeviceToHost);
    ok = 1;
    for (size_t i = 0; i < sizeof hc / sizeof *hc; i++) ok &= hc[i] == 1;
    EXPECT(ok);
    index_kernel<<<1, 1025>>>(c); /* too many threads: an error, nothing runs */
    EXPECT(cudaGetLastError() == cudaErrorInvalidConfiguration);
    EXPECT(cudaGetLastError() == cudaSuccess);
    EXPECT(cudaMemcpy(hc, hc, 4, cudaMemcpyDeviceToHost) == cudaErrorInvalidValue); /* host src */
    EXPECT(cudaGetLastError() == cudaErrorInvalidValue);

    /* device to device on the default stream (dequantize_rows' F32 and BF16 cases), checked
     * like cudaMemcpy: the copy lands, a range past the allocation is an error */
    int *c2, half = (int)(sizeof hc / sizeof *hc / 2);
    cudaMalloc(&c2, sizeof hc);
    cudaMemset(c2, 0, sizeof hc);
    EXPECT(cudaMemcpyAsync(c2 + half, c, half * sizeof *c, cudaMemcpyDeviceToDevice, 0) ==
           cudaSuccess);
    cudaMemcpy(hc, c2, sizeof hc, cudaMemcpyDeviceToHost);
    ok = 1;
    for (int i = 0; i < 2 * half; i++) ok &= hc[i] == (i >= half);
    EXPECT(ok);
    EXPECT(cudaMemcpyAsync(c2 + half, c, sizeof hc, cudaMemcpyDeviceToDevice, 0) ==
           cudaErrorInvalidValue);
    EXPECT(cudaGetLastError() == cudaErrorInvalidValue);
    cudaFree(c2);
    cudaFree(c);
}

/* ---- launch limits of real GPUs (emu_resources.cpp): rows as nvcc would report them ---- */
__global__ void bounded_kernel(int *out) {
    out[threadIdx.x] = 1;
}

static cudaError_t launch_bounded(int *d, unsigned threads, size_t shmem) {
    bounded_kernel<<<1, threads, shmem>>>(d);
    return cudaGetLastError();
}

static void test_launch_limits(void) {
    if (emu_resource_kernels())
        printf("launch limits: %zu kernel rows from nvcc\n", emu_resource_kernels());
    else
        printf("launch limits: built without nvcc, registers and __launch_bounds__ unchecked\n");
    int *d;
    cudaMalloc(&d, 1024 * sizeof *d);
    /* 255 registers round to 8192 a warp: 8 warps fill the 64 K of an SM, 9 do not */
    emu_resource_record("bounded_kernel", 86, 255, 8 * 1024, 0);
    EXPECT(launch_bounded(d, 256, 0) == cudaSuccess);
    EXPECT(launch_bounded(d, 257, 0) == cudaErrorLaunchOutOfResources);
    emu_resource_record("bounded_kernel", 90, 32, 8 * 1024, 128); /* __launch_bounds__(128) */
    EXPECT(launch_bounded(d, 128, 0) == cudaSuccess);
    EXPECT(launch_bounded(d, 160, 0) == cudaErrorLaunchOutOfResources);
    /* dynamic shared memory: 48 KB with the static 8 KB unless raised, raised per kernel, and the
     * raised limit plus the static bytes within sm_86's 99 KB */
    EXPECT(launch_bounded(d, 32, 40 * 1024) == cudaSuccess);
    EXPECT(launch_bounded(d, 32, 40 * 1024 + 4) == cudaErrorInvalidConfiguration);
    EXPECT(cudaFuncSetAttribute(index_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                64 * 1024) == cudaSuccess);
    EXPECT(launch_bounded(d, 32, 64 * 1024) == cudaErrorInvalidConfiguration);
    EXPECT(cudaFuncSetAttribute(bounded_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                64 * 1024) == cudaSuccess);
    EXPECT(launch_bounded(d, 32, 64 * 1024) == cudaSuccess);
    EXPECT(cudaFuncSetAttribute(bounded_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                96 * 1024) == cudaSuccess);
    EXPECT(launch_bounded(d, 32, 64 * 1024) == cudaErrorInvalidConfiguration); /* 8 + 96 > 99 */
    EXPECT(cudaFuncSetAttribute(bounded_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                100 * 1024) == cudaErrorInvalidValue); /* over sm_86's opt-in */
    /* the device reports the least of every target's shared memory; as sm_90
     * (LORAFT_EMU_ARCH), sm_90's, and a launch is checked against its rows alone */
    int optin = 0, per_sm = 0, reserved = 0;
    EXPECT(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) ==
               cudaSuccess &&
           optin == 101376);
    EXPECT(cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, 0) ==
               cudaSuccess &&
           per_sm == 102400);
    EXPECT(cudaDeviceGetAttribute(&reserved, cudaDevAttrReservedSharedMemoryPerBlock, 0) ==
               cudaSuccess &&
           reserved == 1024);
    setenv("LORAFT_EMU_ARCH", "90", 1);
    EXPECT(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0) ==
               cudaSuccess &&
           optin == 232448);
    EXPECT(cudaFuncSetAttribute(bounded_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                100 * 1024) == cudaSuccess);
    EXPECT(launch_bounded(d, 32, 100 * 1024) == cudaSuccess);           /* sm_86's row unchecked */
    EXPECT(launch_bounded(d, 160, 0) == cudaErrorLaunchOutOfResources); /* sm_90's bound */
    unsetenv("LORAFT_EMU_ARCH");
    EXPECT(launch_bounded(d, 32, 100 * 1024) == cudaErrorInvalidConfiguration);
    cudaFree(d);
}

/* ---- cuBLAS: column-major C = alpha op(A) op(B) + beta C against loops ---- */
static float at(const float *M, int ld, int r, int c) {
    return M[(size_t)c * ld + r];
}

static void test_gemm(void) {
    cublasHandle_t h;
    EXPECT(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    int m = 5, n = 4, k = 3, batch = 3, pad = 2;
    float alpha = 1.5f, beta = -0.5f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
            int lda = ra + pad, ldb = rb + pad, ldc = m + pad;
            long long sA = (long long)lda * ca + 1, sB = (long long)ldb * cb + 3,
                      sC = (long long)ldc * n + 2;
            size_t nA = sA * batch, nB = sB * batch, nC = sC * batch;
            float *hA = (float *)malloc(nA * 4), *hB = (float *)malloc(nB * 4);
            float *hC = (float *)malloc(nC * 4), *want = (float *)malloc(nC * 4);
            for (size_t i = 0; i < nA; i++) hA[i] = (float)((i * 7) % 11) - 5;
            for (size_t i = 0; i < nB; i++) hB[i] = (float)((i * 5) % 13) - 6;
            for (size_t i = 0; i < nC; i++) hC[i] = want[i] = (float)(i % 9) - 4;
            for (int b = 0; b < batch; b++)
                for (int c = 0; c < n; c++)
                    for (int r = 0; r < m; r++) {
                        double s = 0;
                        for (int j = 0; j < k; j++)
                            s += (double)(ta ? at(hA + b * sA, lda, j, r)
                                             : at(hA + b * sA, lda, r, j)) *
                                 (tb ? at(hB + b * sB, ldb, c, j) : at(hB + b * sB, ldb, j, c));
                        float *w = &want[b * sC + (size_t)c * ldc + r];
                        *w = (float)(alpha * s + beta * *w);
                    }
            float *A, *B, *C;
            cudaMalloc(&A, nA * 4), cudaMalloc(&B, nB * 4), cudaMalloc(&C, nC * 4);
            cudaMemcpy(A, hA, nA * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(B, hB, nB * 4, cudaMemcpyHostToDevice);
            cudaMemcpy(C, hC, nC * 4, cudaMemcpyHostToDevice);
            cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                              ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
            EXPECT(cublasGemmStridedBatchedEx(h, oa, ob, m, n, k, &alpha, A, CUDA_R_32F, lda, sA, B,
                                              CUDA_R_32F, ldb, sB, &beta, C, CUDA_R_32F, ldc, sC,
                                              batch, CUBLAS_COMPUTE_32F,
                                              CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
            cudaMemcpy(hC, C, nC * 4, cudaMemcpyDeviceToHost);
            int ok = 1;
            for (size_t i = 0; i < nC; i++)
                ok &= fabsf(hC[i] - want[i]) <= 1e-4f * (1 + fabsf(want[i]));
            if (!ok) fprintf(stderr, "gemm ta=%d tb=%d wrong\n", ta, tb);
            EXPECT(ok); /* padding between columns and batches untouched, too */
            EXPECT(cublasGemmEx(h, oa, ob, m, n, k, &alpha, A, CUDA_R_32F, ra - 1, B, CUDA_R_32F,
                                ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
            EXPECT(cublasGemmEx(h, oa, ob, m, n, -1, &alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb,
                                &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
            cudaFree(A), cudaFree(B), cudaFree(C);
            free(hA), free(hB), free(hC), free(want);
        }
    cublasDestroy(h);
}

/* ---- bf16: CUDA's rounding (nearest, ties to even; NaN -> 0x7fff) in a kernel ---- */
static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* f rounded to bf16, nearest even (finite f), as a float */
static float bf16_rounded(float f) {
    uint32_t u = to_bits(f);
    return from_bits((u + 0x7fff + (u >> 16 & 1)) & 0xffff0000u);
}

__global__ void bf16_kernel(unsigned short *out, float *back, const float *x, int n) {
    int i = threadIdx.x;
    if (i >= n) return;
    __nv_bfloat16 h = __float2bfloat16(x[i]);
    memcpy(&out[i], &h, sizeof h);
    back[i] = __bfloat162float(h);
}

static void test_bf16(void) {
    static const struct {
        uint32_t in;
        unsigned short want;
    } cases[] = {
        {0x3f800000u, 0x3f80}, /* 1: exact */
        {0x3f808000u, 0x3f80}, /* a tie below an even: down */
        {0x3f818000u, 0x3f82}, /* a tie below an odd: up */
        {0x3f808001u, 0x3f81}, /* just past the tie: up */
        {0xbf80ffffu, 0xbf81}, /* negative, rounds away from zero in magnitude */
        {0x7f7fffffu, 0x7f80}, /* FLT_MAX overflows to infinity */
        {0xff800000u, 0xff80}, /* -infinity */
        {0x7fc00001u, 0x7fff}, /* NaN: canonical */
        {0x00000001u, 0x0000}, /* the smallest subnormal: to zero */
    };
    enum { N = sizeof cases / sizeof *cases };
    float hx[N], hback[N], *x, *back;
    unsigned short hout[N], *out;
    for (int i = 0; i < N; i++) hx[i] = from_bits(cases[i].in);
    cudaMalloc(&x, sizeof hx), cudaMalloc(&back, sizeof hback), cudaMalloc(&out, sizeof hout);
    cudaMemcpy(x, hx, sizeof hx, cudaMemcpyHostToDevice);
    bf16_kernel<<<1, 32>>>(out, back, x, N);
    cudaMemcpy(hout, out, sizeof hout, cudaMemcpyDeviceToHost);
    cudaMemcpy(hback, back, sizeof hback, cudaMemcpyDeviceToHost);
    for (int i = 0; i < N; i++) {
        uint32_t b;
        memcpy(&b, &hback[i], sizeof b);
        if (hout[i] != cases[i].want || b != (uint32_t)cases[i].want << 16)
            fprintf(stderr, "bf16 of 0x%08x: 0x%04x (widened 0x%08x), want 0x%04x\n", cases[i].in,
                    hout[i], b, cases[i].want);
        EXPECT(hout[i] == cases[i].want && b == (uint32_t)cases[i].want << 16);
    }
    cudaFree(x), cudaFree(back), cudaFree(out);
}

/* cublasGemmEx with BF16 A and B, FP32 C: against loops over the bf16 values, every
 * transposition, padded leading dimensions, beta != 0; then the same into a BF16 C: under
 * CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION its f32 sums rounded once to nearest even
 * (within one bf16 step of the loops' f32, which rounding twice could leave; the padding
 * untouched), and under the default math mode as cuBLAS may split K (the first half's sums
 * rounded into C, then the rest added: within one step of that two-part sum, and not equal to
 * the single rounding everywhere). */
static void test_gemm_bf16(void) {
    cublasHandle_t h;
    EXPECT(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS);
    int m = 5, n = 4, k = 35, pad = 3, differ = 0;
    float alpha = 1.5f, beta = -0.5f;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
            int lda = ra + pad, ldb = rb + pad, ldc = m + pad;
            size_t nA = (size_t)lda * ca, nB = (size_t)ldb * cb, nC = (size_t)ldc * n;
            unsigned short *hA = (unsigned short *)malloc(nA * 2),
                           *hB = (unsigned short *)malloc(nB * 2);
            float *hC = (float *)malloc(nC * 4), *want = (float *)malloc(nC * 4);
            for (size_t i = 0; i < nA; i++) hA[i] = (unsigned short)(0x3f00 + (i * 37) % 0x1ff);
            for (size_t i = 0; i < nB; i++) hB[i] = (unsigned short)(0xbe80 + (i * 11) % 0x17f);
            for (size_t i = 0; i < nC; i++) hC[i] = want[i] = (float)(i % 9) - 4;
            for (int c = 0; c < n; c++)
                for (int r = 0; r < m; r++) {
                    double s = 0;
                    for (int j = 0; j < k; j++) {
                        unsigned short a = ta ? hA[(size_t)r * lda + j] : hA[(size_t)j * lda + r];
                        unsigned short b = tb ? hB[(size_t)j * ldb + c] : hB[(size_t)c * ldb + j];
                        s += (double)from_bits((uint32_t)a << 16) * from_bits((uint32_t)b << 16);
                    }
                    float *w = &want[(size_t)c * ldc + r];
                    *w = (float)(alpha * s + beta * *w);
                }
            void *A, *B;
            float *C;
            cudaMalloc(&A, nA * 2), cudaMalloc(&B, nB * 2), cudaMalloc(&C, nC * 4);
            cudaMemcpy(A, hA, nA * 2, cudaMemcpyHostToDevice);
            cudaMemcpy(B, hB, nB * 2, cudaMemcpyHostToDevice);
            cudaMemcpy(C, hC, nC * 4, cudaMemcpyHostToDevice);
            cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                              ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
            EXPECT(cublasGemmEx(h, oa, ob, m, n, k, &alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF,
                                ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
            cudaMemcpy(hC, C, nC * 4, cudaMemcpyDeviceToHost);
            int ok = 1;
            for (size_t i = 0; i < nC; i++)
                ok &= fabsf(hC[i] - want[i]) <= 1e-5f * (1 + fabsf(want[i]));
            if (!ok) fprintf(stderr, "bf16 gemm ta=%d tb=%d wrong\n", ta, tb);
            EXPECT(ok); /* the padding untouched, too */
            EXPECT(cublasGemmEx(h, oa, ob, m, n, k, &alpha, A, CUDA_R_16BF, ra - 1, B, CUDA_R_16BF,
                                ldb, &beta, C, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_INVALID_VALUE);
            unsigned short *once = (unsigned short *)malloc(nC * 2),
                           *split = (unsigned short *)malloc(nC * 2);
            for (int mode = 0; mode < 2; mode++) { /* DISALLOW (rounded once), then default */
                unsigned short *h16 = mode ? split : once;
                for (size_t i = 0; i < nC; i++)
                    h16[i] = (unsigned short)(to_bits((float)(i % 9) - 4) >> 16);
                cudaMemcpy(C, h16, nC * 2, cudaMemcpyHostToDevice);
                EXPECT(
                    cublasSetMathMode(h, mode ? CUBLAS_DEFAULT_MATH
                                              : CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION) ==
                    CUBLAS_STATUS_SUCCESS);
                EXPECT(cublasGemmEx(h, oa, ob, m, n, k, &alpha, A, CUDA_R_16BF, lda, B, CUDA_R_16BF,
                                    ldb, &beta, C, CUDA_R_16BF, ldc, CUBLAS_COMPUTE_32F,
                                    CUBLAS_GEMM_DEFAULT) == CUBLAS_STATUS_SUCCESS);
                cudaMemcpy(h16, C, nC * 2, cudaMemcpyDeviceToHost);
            }
            ok = 1;
            for (int c = 0; c < n; c++)
                for (int r = 0; r < m; r++) {
                    size_t i = (size_t)c * ldc + r;
                    float got = from_bits((uint32_t)once[i] << 16);
                    ok &= fabsf(got - want[i]) <= fabsf(want[i]) / 128 + 1e-6f;
                    double s1 = 0, s2 = 0; /* the two halves of K */
                    for (int j = 0; j < k; j++) {
                        unsigned short a = ta ? hA[(size_t)r * lda + j] : hA[(size_t)j * lda + r];
                        unsigned short b = tb ? hB[(size_t)j * ldb + c] : hB[(size_t)c * ldb + j];
                        double x =
                            (double)from_bits((uint32_t)a << 16) * from_bits((uint32_t)b << 16);
                        *(j < k / 2 ? &s1 : &s2) += x;
                    }
                    float part = bf16_rounded((float)(alpha * s1 + beta * ((float)(i % 9) - 4)));
                    float two = (float)(part + alpha * s2);
                    float got2 = from_bits((uint32_t)split[i] << 16);
                    ok &= fabsf(got2 - two) <= fabsf(two) / 128 + 1e-6f;
                    differ += once[i] != split[i];
                }
            for (size_t i = 0; i < nC; i++) { /* the padding untouched */
                unsigned short pad16 = (unsigned short)(to_bits((float)(i % 9) - 4) >> 16);
                if (i % ldc >= (size_t)m) ok &= once[i] == pad16 && split[i] == pad16;
            }
            if (!ok) fprintf(stderr, "bf16 gemm into bf16 ta=%d tb=%d wrong\n", ta, tb);
            EXPECT(ok);
            free(once), free(split);
            cudaFree(A), cudaFree(B), cudaFree(C);
            free(hA), free(hB), free(hC), free(want);
        }
    EXPECT(differ > 0); /* the default mode's split K shows */
    cublasDestroy(h);
}

/* ---- cuBLASLt: D = alpha op(A) op(B) + beta D (+ bias[r]) against loops ---- */
struct LtCall {
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t a, b, d;
    cublasLtMatmulAlgo_t algo;
};

/* The descriptors of one in-place GEMM and the heuristic's algorithm for an A aligned to align_a
 * bytes (the preference's default, 256, for the others). */
static cublasStatus_t lt_setup(LtCall *c, cublasLtHandle_t lt, int ta, int tb, int m, int n, int k,
                               cudaDataType type, int lda, int ldb, int ldd, const float *bias,
                               uint32_t align_a) {
    int32_t op[2] = {ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N};
    uint32_t epilogue = bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    cublasLtMatmulDescCreate(&c->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulDescSetAttribute(c->desc, CUBLASLT_MATMUL_DESC_TRANSA, &op[0], sizeof op[0]);
    cublasLtMatmulDescSetAttribute(c->desc, CUBLASLT_MATMUL_DESC_TRANSB, &op[1], sizeof op[1]);
    cublasLtMatmulDescSetAttribute(c->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue,
                                   sizeof epilogue);
    if (bias)
        cublasLtMatmulDescSetAttribute(c->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                       sizeof bias);
    cublasLtMatrixLayoutCreate(&c->a, type, ta ? k : m, ta ? m : k, lda);
    cublasLtMatrixLayoutCreate(&c->b, type, tb ? n : k, tb ? k : n, ldb);
    cublasLtMatrixLayoutCreate(&c->d, CUDA_R_32F, m, n, ldd);
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulPreferenceCreate(&pref);
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align_a,
                                         sizeof align_a);
    cublasLtMatmulHeuristicResult_t r = {};
    int got = 0;
    cublasStatus_t st =
        cublasLtMatmulAlgoGetHeuristic(lt, c->desc, c->a, c->b, c->d, c->d, pref, 1, &r, &got);
    cublasLtMatmulPreferenceDestroy(pref);
    c->algo = r.algo;
    return st == CUBLAS_STATUS_SUCCESS && got == 1 ? st : CUBLAS_STATUS_NOT_SUPPORTED;
}
static cublasStatus_t lt_run(cublasLtHandle_t lt, const LtCall *c, const void *A, const void *B,
                             float *D, void *ws, size_t ws_bytes, cudaStream_t s) {
    float alpha = 1.5f, beta = -0.5f;
    return cublasLtMatmul(lt, c->desc, &alpha, A, c->a, B, c->b, &beta, D, c->d, D, c->d, &c->algo,
                          ws, ws_bytes, s);
}
static void lt_free(LtCall *c) {
    cublasLtMatmulDescDestroy(c->desc);
    cublasLtMatrixLayoutDestroy(c->a), cublasLtMatrixLayoutDestroy(c->b);
    cublasLtMatrixLayoutDestroy(c->d);
}

/* Host values (small integers, exact in bf16) uploaded as FP32 or as BF16. */
static void *upload_as(const float *h, size_t n, cudaDataType type) {
    void *d;
    size_t es = type == CUDA_R_16BF ? 2 : 4;
    char *bytes = (char *)malloc(n * es);
    for (size_t i = 0; i < n; i++)
        memcpy(bytes + i * es, (const char *)&h[i] + 4 - es, es); /* bf16: the high half */
    cudaMalloc(&d, n * es);
    cudaMemcpy(d, bytes, n * es, cudaMemcpyHostToDevice);
    free(bytes);
    return d;
}

/* FP32 and BF16 operands, every transposition, padded leading dimensions, beta != 0, with and
 * without the bias epilogue; then the alignment an algorithm was chosen for, and capture. */
static void test_gemm_lt(void) {
    cublasLtHandle_t lt;
    EXPECT(cublasLtCreate(&lt) == CUBLAS_STATUS_SUCCESS);
    int m = 5, n = 4, k = 7, pad = 3;
    float hbias[5] = {0.5f, -1.0f, 2.0f, 0.25f, -3.0f}, *bias;
    cudaMalloc(&bias, sizeof hbias);
    cudaMemcpy(bias, hbias, sizeof hbias, cudaMemcpyHostToDevice);
    for (int bf16 = 0; bf16 < 2; bf16++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    cudaDataType type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
                    int ra = ta ? k : m, ca = ta ? m : k, rb = tb ? n : k, cb = tb ? k : n;
                    int lda = ra + pad, ldb = rb + pad, ldd = m + pad;
                    size_t nA = (size_t)lda * ca, nB = (size_t)ldb * cb, nD = (size_t)ldd * n;
                    float *hA = (float *)malloc(nA * 4), *hB = (float *)malloc(nB * 4);
                    float *hD = (float *)malloc(nD * 4), *want = (float *)malloc(nD * 4);
                    for (size_t i = 0; i < nA; i++) hA[i] = (float)((i * 7) % 11) - 5;
                    for (size_t i = 0; i < nB; i++) hB[i] = (float)((i * 5) % 13) - 6;
                    for (size_t i = 0; i < nD; i++) hD[i] = want[i] = (float)(i % 9) - 4;
                    for (int c = 0; c < n; c++)
                        for (int r = 0; r < m; r++) {
                            double s = 0;
                            for (int j = 0; j < k; j++)
                                s += (double)(ta ? at(hA, lda, j, r) : at(hA, lda, r, j)) *
                                     (tb ? at(hB, ldb, c, j) : at(hB, ldb, j, c));
                            float *w = &want[(size_t)c * ldd + r];
                            *w = (float)(1.5 * s - 0.5 * *w + (with_bias ? hbias[r] : 0.0f));
                        }
                    void *A = upload_as(hA, nA, type), *B = upload_as(hB, nB, type);
                    float *D = (float *)upload_as(hD, nD, CUDA_R_32F);
                    LtCall c;
                    EXPECT(lt_setup(&c, lt, ta, tb, m, n, k, type, lda, ldb, ldd,
                                    with_bias ? bias : NULL, 256) == CUBLAS_STATUS_SUCCESS);
                    EXPECT(lt_run(lt, &c, A, B, D, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS);
                    cudaMemcpy(hD, D, nD * 4, cudaMemcpyDeviceToHost);
                    int ok = 1;
                    for (size_t i = 0; i < nD; i++) ok &= hD[i] == want[i]; /* exact: integers */
                    if (!ok)
                        fprintf(stderr, "cublasLtMatmul bf16=%d ta=%d tb=%d bias=%d wrong\n", bf16,
                                ta, tb, with_bias);
                    EXPECT(ok); /* the padding untouched, too */
                    lt_free(&c);
                    cudaFree(A), cudaFree(B), cudaFree(D);
                    free(hA), free(hB), free(hD), free(want);
                }

    /* A 4 bytes off 256: refused by an algorithm chosen for the default alignment, run by one
     * chosen for 4; a bias less aligned than the one the heuristic saw is refused too */
    float *buf;
    void *ws;
    cudaMalloc(&buf, 256 * sizeof *buf);
    cudaMemset(buf, 0, 256 * sizeof *buf);
    cudaMalloc(&ws, 1 << 20);
    LtCall c;
    EXPECT(lt_setup(&c, lt, 0, 0, 4, 4, 4, CUDA_R_32F, 4, 4, 4, bias, 256) ==
           CUBLAS_STATUS_SUCCESS);
    EXPECT(lt_run(lt, &c, buf + 1, buf + 64, buf + 128, NULL, 0, 0) == CUBLAS_STATUS_NOT_SUPPORTED);
    EXPECT(lt_run(lt, &c, buf, buf + 64, buf + 128, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS);
    const float *moved = bias + 4; /* 16 bytes: enough for a bias, not for this algorithm */
    cublasLtMatmulDescSetAttribute(c.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &moved, sizeof moved);
    EXPECT(lt_run(lt, &c, buf, buf + 64, buf + 128, NULL, 0, 0) == CUBLAS_STATUS_NOT_SUPPORTED);
    lt_free(&c);
    EXPECT(lt_setup(&c, lt, 0, 0, 4, 4, 4, CUDA_R_32F, 4, 4, 4, NULL, 4) == CUBLAS_STATUS_SUCCESS);
    EXPECT(lt_run(lt, &c, buf + 1, buf + 64, buf + 128, NULL, 0, 0) == CUBLAS_STATUS_SUCCESS);

    /* captured: recorded, run at each launch; without a workspace refused */
    for (int i = 0; i < 16; i++) buf[64 + i] = 0.0f; /* host writes: the emulator's memory */
    buf[64] = buf[69] = buf[74] = buf[79] = 1.0f;    /* B = I */
    for (int i = 0; i < 16; i++) buf[i] = (float)i, buf[128 + i] = 0.0f;
    cudaStream_t s;
    cudaStreamCreate(&s);
    cudaGraph_t g = NULL;
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    EXPECT(lt_run(lt, &c, buf, buf + 64, buf + 128, ws, 1 << 20, s) == CUBLAS_STATUS_SUCCESS);
    EXPECT(cudaStreamEndCapture(s, &g) == cudaSuccess && g != NULL);
    EXPECT(buf[128 + 5] == 0.0f); /* not run yet */
    cudaGraphExec_t x;
    EXPECT(cudaGraphInstantiate(&x, g, 0) == cudaSuccess);
    EXPECT(cudaGraphLaunch(x, s) == cudaSuccess);
    EXPECT(buf[128 + 5] == 1.5f * 5.0f); /* D = 1.5 A I - 0.5 * 0 */
    cudaGraphExecDestroy(x), cudaGraphDestroy(g);
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    EXPECT(lt_run(lt, &c, buf, buf + 64, buf + 128, NULL, 0, s) == CUBLAS_STATUS_NOT_SUPPORTED);
    EXPECT(cudaStreamEndCapture(s, &g) == cudaErrorStreamCaptureInvalidated && g == NULL);
    cudaGetLastError();
    lt_free(&c);
    cudaStreamDestroy(s);
    cudaFree(buf), cudaFree(ws), cudaFree(bias);
    EXPECT(cublasLtDestroy(lt) == CUBLAS_STATUS_SUCCESS);
}

/* ---- aborts, each in a child: it must die by SIGABRT with `message` on stderr ---- */
__global__ void divergent_shfl_kernel(float *out) {
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

/* ---- ldmatrix and mma.sync (mma_ptx.h) against the layouts PTX documents; lane l = 4g + t ----
 * ldmatrix: a [16][24] bf16 tile in shared memory holding v(r, c) = 16 r + c; matrix i is rows
 * 8 (i & 1).., columns 8 (i >> 1).., and lane 8i + j gives its row j. */
enum { LD_STRIDE = 24 };
__global__ void ldmatrix_kernel(uint32_t *out, const __nv_bfloat16 *m, int trans) {
    extern __shared__ __align__(16) unsigned char ld_smem[];
    __nv_bfloat16 *s = (__nv_bfloat16 *)ld_smem;
    for (int e = threadIdx.x; e < 16 * LD_STRIDE; e += 32) s[e] = m[e];
    __syncthreads();
    unsigned lane = threadIdx.x, i = lane >> 3, j = lane & 7;
    const __nv_bfloat16 *row = s + (8 * (i & 1) + j) * LD_STRIDE + 8 * (i >> 1);
    uint32_t r[4];
    if (trans)
        ldmatrix_x4_trans(r, row);
    else
        ldmatrix_x4(r, row);
    for (int k = 0; k < 4; k++) out[lane * 4 + k] = r[k];
}

/* mma: each lane builds its a, b and c from A [16][16], B [16][8] (row-major) and C [16][8] as
 * documented, runs c += A B twice, and writes c back where the layout says it belongs. */
__device__ uint32_t bf16_pair(const __nv_bfloat16 *lo_at, const __nv_bfloat16 *hi_at) {
    return (uint32_t)__bfloat16_as_ushort(*lo_at) | (uint32_t)__bfloat16_as_ushort(*hi_at) << 16;
}
__global__ void mma_kernel(float *d, const __nv_bfloat16 *A, const __nv_bfloat16 *B,
                           const float *C) {
    int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    uint32_t a[4], b[2];
    for (int k = 0; k < 4; k++) { /* rows g + 8 (k & 1), columns 2t + 8 (k >> 1) */
        const __nv_bfloat16 *at = A + (g + 8 * (k & 1)) * 16 + 2 * t + 8 * (k >> 1);
        a[k] = bf16_pair(at, at + 1);
    }
    for (int k = 0; k < 2; k++) /* rows 2t + 8k and the next, column g */
        b[k] = bf16_pair(B + (2 * t + 8 * k) * 8 + g, B + (2 * t + 8 * k + 1) * 8 + g);
    float c[4];
    for (int q = 0; q < 4; q++) c[q] = C[(g + 8 * (q >> 1)) * 8 + 2 * t + (q & 1)];
    mma_bf16_16816(c, a, b);
    mma_bf16_16816(c, a, b);
    for (int q = 0; q < 4; q++) d[(g + 8 * (q >> 1)) * 8 + 2 * t + (q & 1)] = c[q];
}

static float bf16_lo(uint32_t r) {
    return __bfloat162float(__nv_bfloat16{(unsigned short)(r & 0xffffu)});
}
static float bf16_hi(uint32_t r) {
    return __bfloat162float(__nv_bfloat16{(unsigned short)(r >> 16)});
}

static void test_mma_ptx(void) {
    __nv_bfloat16 hm[16 * LD_STRIDE];
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < LD_STRIDE; c++) hm[r * LD_STRIDE + c] = __float2bfloat16(16.0f * r + c);
    __nv_bfloat16 *m;
    uint32_t *out, got[128];
    cudaMalloc(&m, sizeof hm), cudaMalloc(&out, sizeof got);
    cudaMemcpy(m, hm, sizeof hm, cudaMemcpyHostToDevice);
    for (int trans = 0; trans < 2; trans++) {
        ldmatrix_kernel<<<1, 32, sizeof hm>>>(out, m, trans);
        EXPECT(cudaGetLastError() == cudaSuccess);
        cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
        int ok = 1;
        for (int l = 0; l < 32; l++)
            for (int i = 0; i < 4; i++) {
                int g = l >> 2, t = l & 3, r0 = 8 * (i & 1), c0 = 8 * (i >> 1);
                float lo = trans ? 16.0f * (r0 + 2 * t) + c0 + g : 16.0f * (r0 + g) + c0 + 2 * t;
                float hi = trans ? lo + 16.0f : lo + 1.0f;
                ok &= bf16_lo(got[l * 4 + i]) == lo && bf16_hi(got[l * 4 + i]) == hi;
            }
        EXPECT(ok);
    }

    /* small integers: every product and sum exact, so the result is too */
    __nv_bfloat16 hA[256], hB[128];
    float hC[128], hD[128], want[128];
    for (int i = 0; i < 256; i++) hA[i] = __float2bfloat16((float)(i * 7 % 9 - 4));
    for (int i = 0; i < 128; i++) hB[i] = __float2bfloat16((float)(i * 5 % 7 - 3));
    for (int i = 0; i < 128; i++) hC[i] = (float)(i % 11);
    for (int r = 0; r < 16; r++)
        for (int n = 0; n < 8; n++) {
            float sum = 0.0f;
            for (int k = 0; k < 16; k++)
                sum += __bfloat162float(hA[r * 16 + k]) * __bfloat162float(hB[k * 8 + n]);
            want[r * 8 + n] = hC[r * 8 + n] + 2.0f * sum;
        }
    __nv_bfloat16 *A, *B;
    float *C, *D;
    cudaMalloc(&A, sizeof hA), cudaMalloc(&B, sizeof hB), cudaMalloc(&C, sizeof hC);
    cudaMalloc(&D, sizeof hD);
    cudaMemcpy(A, hA, sizeof hA, cudaMemcpyHostToDevice);
    cudaMemcpy(B, hB, sizeof hB, cudaMemcpyHostToDevice);
    cudaMemcpy(C, hC, sizeof hC, cudaMemcpyHostToDevice);
    mma_kernel<<<1, 32>>>(D, A, B, C);
    EXPECT(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(hD, D, sizeof hD, cudaMemcpyDeviceToHost);
    EXPECT(!memcmp(hD, want, sizeof hD));
    cudaFree(m), cudaFree(out), cudaFree(A), cudaFree(B), cudaFree(C), cudaFree(D);
}

/* ---- cp.async (mma_ptx.h): copies land at the thread's wait, not before; a copy not yet
 * committed stays queued; !ok fills zeros. Shared memory starts as 0xff bytes (NaN). One thread
 * queues s[0..3] = src[0..3], s[4..7] = zeros, s[8] = src[5], commits, queues s[12..15] =
 * src[8..11], waits, commits, waits; out[0..3] = s[0..3] before the first wait, out[4..13] =
 * s[0..8] and s[12] after it, out[14..15] = s[12], s[15] after the second. */
__global__ void cp_async_kernel(float *out, const float *src, int offset) {
    extern __shared__ __align__(16) unsigned char cp_smem[];
    float *s = (float *)cp_smem;
    cp_async16(s + offset, src, true);
    cp_async16(s + 4, src, false);
    cp_async4(s + 8, src + 5);
    for (int i = 0; i < 4; i++) out[i] = s[i];
    cp_async_commit();
    cp_async16(s + 12, src + 8, true);
    cp_async_wait_all();
    for (int i = 0; i < 9; i++) out[4 + i] = s[i];
    out[13] = s[12];
    cp_async_commit();
    cp_async_wait_all();
    out[14] = s[12], out[15] = s[15];
}

static void test_cp_async(void) {
    float hsrc[12], got[16];
    for (int i = 0; i < 12; i++) hsrc[i] = (float)(i + 1);
    float *src, *out;
    cudaMalloc(&src, sizeof hsrc), cudaMalloc(&out, sizeof got);
    cudaMemcpy(src, hsrc, sizeof hsrc, cudaMemcpyHostToDevice);
    cp_async_kernel<<<1, 1, 16 * sizeof(float)>>>(out, src, 0);
    EXPECT(cudaGetLastError() == cudaSuccess);
    cudaMemcpy(got, out, sizeof got, cudaMemcpyDeviceToHost);
    EXPECT(isnan(got[0]) && isnan(got[3]));                      /* not before the wait */
    EXPECT(got[4] == 1.0f && got[5] == 2.0f && got[7] == 4.0f);  /* landed */
    EXPECT(got[8] == 0.0f && got[9] == 0.0f && got[11] == 0.0f); /* zeros for !ok */
    EXPECT(got[12] == 6.0f);                                     /* the 4-byte copy */
    EXPECT(isnan(got[13]));                                      /* uncommitted: still queued */
    EXPECT(got[14] == 9.0f && got[15] == 12.0f);                 /* landed at the next wait */
    cudaFree(src), cudaFree(out);
}

__global__ void shfl_vs_barrier_kernel(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x == 3)
        __syncthreads();
    else
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

/* ---- stream capture and graphs ---- */
__global__ void add_kernel(float *x, float v, int n) {
    int i = (int)(blockIdx.x * blockDim.x + threadIdx.x);
    if (i < n) x[i] += v;
}

/* One capture on s: copy 8 pinned floats in, add v, then x[8..11] = alpha x[0..3] x[4] (a
 * cuBLAS call; alpha is read at the call), and, with extra, one more kernel. */
static cudaGraph_t record(cudaStream_t s, cublasHandle_t blas, float *d, const float *pinned,
                          float v, int m, int extra) {
    float alpha = 2.0f, beta = 0.0f;
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    cudaStreamCaptureStatus st;
    EXPECT(cudaStreamIsCapturing(s, &st) == cudaSuccess && st == cudaStreamCaptureStatusActive);
    EXPECT(cudaMemcpyAsync(d, pinned, 8 * sizeof *d, cudaMemcpyHostToDevice, s) == cudaSuccess);
    add_kernel<<<1, 8, 0, s>>>(d, v, 8);
    EXPECT(cudaGetLastError() == cudaSuccess);
    EXPECT(cublasSgemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, m, 1, 1, &alpha, d, 4, d + 4, 1, &beta,
                       d + 8, 4) == CUBLAS_STATUS_SUCCESS);
    alpha = 100.0f; /* too late: the call has read it */
    if (extra) add_kernel<<<1, 8, 0, s>>>(d, 0.0f, 8);
    cudaGraph_t g = NULL;
    EXPECT(cudaStreamEndCapture(s, &g) == cudaSuccess && g != NULL);
    return g;
}

/* d[0..7] = pinned + v, d[8..8+m) = 2 d[0..m) d[4] */
static int replayed(const float *d, const float *pinned, float v, int m) {
    float h[12];
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int ok = 1;
    for (int i = 0; i < 8; i++) ok &= h[i] == pinned[i] + v;
    for (int i = 0; i < m; i++) ok &= h[8 + i] == 2.0f * h[i] * h[4];
    return ok;
}

/* body breaks a capture of s: it returns `expected`, and the capture ends invalidated. */
static void expect_invalidated(const char *what, cudaStream_t s, cudaStreamCaptureMode mode,
                               int (*body)(cudaStream_t, float *), float *d, int expected) {
    EXPECT(cudaStreamBeginCapture(s, mode) == cudaSuccess);
    int got = body(s, d);
    cudaGraph_t g = (cudaGraph_t)1;
    cudaError_t end = cudaStreamEndCapture(s, &g);
    cudaGetLastError();
    int ok = got == expected && end == cudaErrorStreamCaptureInvalidated && g == NULL;
    if (!ok)
        fprintf(stderr, "%s: returned %d (expected %d), end capture %d\n", what, got, expected,
                (int)end);
    EXPECT(ok);
}

static void test_graphs(void) {
    float *d, *pinned;
    void *ws;
    cudaMalloc(&d, 16 * sizeof *d);
    cudaMemset(d, 0, 16 * sizeof *d);
    cudaMallocHost(&pinned, 8 * sizeof *pinned);
    cudaMalloc(&ws, 1 << 20);
    for (int i = 0; i < 8; i++) pinned[i] = (float)i;
    cudaStream_t s;
    cudaStreamCreate(&s);
    cublasHandle_t blas;
    cublasCreate(&blas);
    cublasSetStream(blas, s);
    EXPECT(cublasSetWorkspace(blas, (char *)ws + 16, 1024) == CUBLAS_STATUS_INVALID_VALUE);
    EXPECT(cublasSetWorkspace(blas, ws, 2 << 20) == CUBLAS_STATUS_INVALID_VALUE); /* too long */
    EXPECT(cublasSetWorkspace(blas, ws, 1 << 20) == CUBLAS_STATUS_SUCCESS);

    cudaGraph_t g = record(s, blas, d, pinned, 1.0f, 4, 0);
    float h[16];
    cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost);
    int zero = 1;
    for (int i = 0; i < 16; i++) zero &= h[i] == 0.0f;
    EXPECT(zero); /* recorded, not run */
    cudaGraphExec_t x;
    EXPECT(cudaGraphInstantiate(&x, g, 0) == cudaSuccess);
    cudaGraphDestroy(g);
    EXPECT(cudaGraphLaunch(x, s) == cudaSuccess);
    EXPECT(replayed(d, pinned, 1.0f, 4));
    for (int i = 0; i < 8; i++) pinned[i] = (float)(10 - i); /* the copy reads at launch */
    EXPECT(cudaGraphLaunch(x, s) == cudaSuccess);
    EXPECT(replayed(d, pinned, 1.0f, 4));

    /* an update carries new arguments; other ops or another GEMM shape are refused */
    cudaGraphExecUpdateResultInfo info;
    g = record(s, blas, d, pinned, 3.0f, 4, 0);
    EXPECT(cudaGraphExecUpdate(x, g, &info) == cudaSuccess &&
           info.result == cudaGraphExecUpdateSuccess);
    cudaGraphDestroy(g);
    EXPECT(cudaGraphLaunch(x, s) == cudaSuccess);
    EXPECT(replayed(d, pinned, 3.0f, 4));
    g = record(s, blas, d, pinned, 3.0f, 4, 1);
    EXPECT(cudaGraphExecUpdate(x, g, &info) == cudaErrorGraphExecUpdateFailure &&
           info.result == cudaGraphExecUpdateErrorTopologyChanged);
    EXPECT(cudaGetLastError() == cudaErrorGraphExecUpdateFailure);
    cudaGraphDestroy(g);
    g = record(s, blas, d, pinned, 3.0f, 3, 0);
    EXPECT(cudaGraphExecUpdate(x, g, &info) == cudaErrorGraphExecUpdateFailure &&
           info.result == cudaGraphExecUpdateErrorFunctionChanged && info.errorNode != NULL);
    cudaGetLastError();
    cudaGraphDestroy(g);
    cudaGraphExecDestroy(x);

    /* what CUDA refuses during a capture */
    EXPECT(cudaStreamBeginCapture(0, cudaStreamCaptureModeGlobal) ==
           cudaErrorStreamCaptureUnsupported); /* the legacy stream */
    cudaGetLastError();
    int unsupported = cudaErrorStreamCaptureUnsupported;
    expect_invalidated(
        "cudaMalloc", s, cudaStreamCaptureModeGlobal,
        [](cudaStream_t, float *) {
            void *p;
            return (int)cudaMalloc(&p, 64);
        },
        d, unsupported);
    expect_invalidated(
        "cudaFree", s, cudaStreamCaptureModeThreadLocal,
        [](cudaStream_t, float *p) { return (int)cudaFree(p + 1); }, d, unsupported);
    expect_invalidated(
        "cudaMemcpy", s, cudaStreamCaptureModeGlobal,
        [](cudaStream_t, float *p) {
            float v;
            return (int)cudaMemcpy(&v, p, 4, cudaMemcpyDeviceToHost);
        },
        d, unsupported);
    expect_invalidated(
        "cudaMemset", s, cudaStreamCaptureModeGlobal,
        [](cudaStream_t, float *p) { return (int)cudaMemset(p, 0, 4); }, d, unsupported);
    expect_invalidated(
        "pageable cudaMemcpyAsync", s, cudaStreamCaptureModeRelaxed,
        [](cudaStream_t c, float *p) {
            static float v;
            return (int)cudaMemcpyAsync(p, &v, 4, cudaMemcpyHostToDevice, c);
        },
        d, unsupported);
    expect_invalidated(
        "cudaStreamSynchronize", s, cudaStreamCaptureModeRelaxed,
        [](cudaStream_t c, float *) { return (int)cudaStreamSynchronize(c); }, d, unsupported);
    expect_invalidated(
        "cudaDeviceSynchronize", s, cudaStreamCaptureModeRelaxed,
        [](cudaStream_t, float *) { return (int)cudaDeviceSynchronize(); }, d, unsupported);
    expect_invalidated(
        "a launch on the legacy stream", s, cudaStreamCaptureModeGlobal,
        [](cudaStream_t, float *p) {
            add_kernel<<<1, 8>>>(p, 1.0f, 8);
            return (int)cudaGetLastError();
        },
        d, cudaErrorStreamCaptureImplicit);
    static cublasHandle_t bare; /* no workspace: cuBLAS would allocate one */
    cublasCreate(&bare);
    cublasSetStream(bare, s);
    expect_invalidated(
        "cuBLAS without a workspace", s, cudaStreamCaptureModeGlobal,
        [](cudaStream_t, float *p) {
            float one = 1.0f;
            return (int)cublasSgemm(bare, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, p, 1, p, 1, &one,
                                    p + 1, 1);
        },
        d, CUBLAS_STATUS_NOT_SUPPORTED);
    cublasDestroy(bare);

    /* relaxed mode allows allocation; an event recorded in a capture cannot be waited for */
    cudaEvent_t ev;
    cudaEventCreate(&ev);
    EXPECT(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
    void *p = NULL;
    EXPECT(cudaMalloc(&p, 64) == cudaSuccess);
    EXPECT(cudaEventRecord(ev, s) == cudaSuccess);
    EXPECT(cudaEventQuery(ev) == cudaErrorCapturedEvent);
    EXPECT(cudaEventSynchronize(ev) == cudaErrorCapturedEvent);
    EXPECT(cudaStreamEndCapture(s, &g) == cudaSuccess);
    cudaGraphDestroy(g);
    cudaGetLastError();
    cudaFree(p);

    /* a non-blocking stream's capture leaves the legacy stream free; the per-thread default
     * stream can capture */
    cudaStream_t nb;
    cudaStreamCreateWithFlags(&nb, cudaStreamNonBlocking);
    EXPECT(cudaStreamBeginCapture(nb, cudaStreamCaptureModeGlobal) == cudaSuccess);
    add_kernel<<<1, 8>>>(d, 1.0f, 8);
    EXPECT(cudaGetLastError() == cudaSuccess);
    EXPECT(cudaStreamEndCapture(nb, &g) == cudaSuccess && g != NULL);
    cudaGraphDestroy(g);
    EXPECT(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal) == cudaSuccess);
    add_kernel<<<1, 8, 0, cudaStreamPerThread>>>(d, 1.0f, 8);
    EXPECT(cudaStreamEndCapture(cudaStreamPerThread, &g) == cudaSuccess && g != NULL);
    cudaGraphDestroy(g);
    cudaStreamDestroy(nb);
    cudaEventDestroy(ev);
    cublasDestroy(blas);
    cudaStreamDestroy(s);
    cudaFree(ws);
    cudaFreeHost(pinned);
    cudaFree(d);
}

/* ---- NCCL (emu_nccl.cpp): ranks as processes, LORAFT_EMU_DEVICES devices ---- */
/* Rank r's element i: magnitudes 2^-11..2^8, so the sum's rounding depends on its order. */
static float nccl_value(int rank, size_t i) {
    uint32_t h = ((uint32_t)i * 2654435761u) ^ ((uint32_t)rank * 40503u);
    h ^= h >> 13, h *= 0x5bd1e995u, h ^= h >> 15;
    return ldexpf((float)(h & 0xffff) / 65536.0f - 0.5f, (int)(h >> 27) % 20 - 10);
}
static float nccl_sum(int ranks, size_t i) { /* in rank order, as every rank must */
    float s = nccl_value(0, i);
    for (int r = 1; r < ranks; r++) s += nccl_value(r, i);
    return s;
}
static double nccl_value_f64(int rank, size_t i) { /* a double that a float would round */
    return nccl_value(rank, i) + ldexp((double)rank + 1, -40);
}
static double nccl_sum_f64(int ranks, size_t i) {
    double s = nccl_value_f64(0, i);
    for (int r = 1; r < ranks; r++) s += nccl_value_f64(r, i);
    return s;
}
static bool nccl_ok(const char *what, int rank, ncclResult_t r) {
    if (r != ncclSuccess)
        fprintf(stderr, "nccl rank %d: %s: %s (%s)\n", rank, what, ncclGetErrorString(r),
                ncclGetLastError(NULL));
    return r == ncclSuccess;
}
/* A rank's process: more than three chunks summed in place, then a few floats out of place, then
 * doubles over two chunks. */
static int nccl_sum_rank(const ncclUniqueId *id, int ranks, int rank, int device) {
    const size_t n = 3 * (size_t)LORAFT_EMU_NCCL_CHUNK + 5;
    ncclComm_t comm;
    if (cudaSetDevice(device) != cudaSuccess) {
        fprintf(stderr, "nccl rank %d: cudaSetDevice(%d) failed\n", rank, device);
        return 1;
    }
    if (!nccl_ok("ncclCommInitRank", rank, ncclCommInitRank(&comm, ranks, *id, rank))) return 1;
    float *h = (float *)malloc(n * sizeof *h), *d, *small;
    for (size_t i = 0; i < n; i++) h[i] = nccl_value(rank, i);
    cudaMalloc(&d, n * sizeof *d);
    cudaMalloc(&small, 8 * sizeof *small);
    cudaMemcpy(d, h, n * sizeof *d, cudaMemcpyHostToDevice);
    bool ok = nccl_ok("ncclAllReduce", rank,
                      ncclAllReduce(d, d, n, ncclFloat, ncclSum, comm, cudaStreamPerThread));
    cudaMemcpy(h, d, n * sizeof *d, cudaMemcpyDeviceToHost);
    for (size_t i = 0; ok && i < n; i++)
        if (h[i] != nccl_sum(ranks, i)) {
            fprintf(stderr, "nccl rank %d: element %zu is %.9g, not %.9g\n", rank, i, h[i],
                    nccl_sum(ranks, i));
            ok = false;
        }
    ok &= nccl_ok("ncclAllReduce of 0", rank,
                  ncclAllReduce(d, d, 0, ncclFloat, ncclSum, comm, cudaStreamPerThread));
    ok &= nccl_ok("ncclAllReduce out of place", rank,
                  ncclAllReduce(d + 100, small, 8, ncclFloat, ncclSum, comm, NULL));
    float out[8];
    cudaMemcpy(out, small, sizeof out, cudaMemcpyDeviceToHost);
    for (int i = 0; i < 8; i++) { /* every rank's d holds the sums now */
        float sum = nccl_sum(ranks, 100 + (size_t)i), want = sum;
        for (int r = 1; r < ranks; r++) want += sum;
        if (out[i] != want) {
            fprintf(stderr, "nccl rank %d: out of place, element %d is %.9g, not %.9g\n", rank, i,
                    out[i], want);
            ok = false;
        }
    }
    const size_t nd = LORAFT_EMU_NCCL_CHUNK / 2 + 3; /* a chunk holds CHUNK / 2 doubles */
    double *hd = (double *)h, *dd = (double *)d;
    for (size_t i = 0; i < nd; i++) hd[i] = nccl_value_f64(rank, i);
    cudaMemcpy(dd, hd, nd * sizeof *dd, cudaMemcpyHostToDevice);
    ok &= nccl_ok("ncclAllReduce of doubles", rank,
                  ncclAllReduce(dd, dd, nd, ncclFloat64, ncclSum, comm, cudaStreamPerThread));
    cudaMemcpy(hd, dd, nd * sizeof *dd, cudaMemcpyDeviceToHost);
    for (size_t i = 0; ok && i < nd; i++) {
        double want = nccl_sum_f64(ranks, i);
        if (hd[i] != want) {
            fprintf(stderr, "nccl rank %d: double %zu is %.17g, not %.17g\n", rank, i, hd[i], want);
            ok = false;
        }
    }
    ok &= ncclCommDestroy(comm) == ncclSuccess;
    cudaFree(small), cudaFree(d), free(h);
    return ok ? 0 : 1;
}
/* Ranks 1 and 2 on one device: every rank is refused, the one on its own device too. */
static int nccl_duplicate_rank(const ncclUniqueId *id, int ranks, int rank, int device) {
    ncclComm_t comm = (ncclComm_t)&comm;
    cudaSetDevice(device);
    ncclResult_t r = ncclCommInitRank(&comm, ranks, *id, rank);
    bool ok = r == ncclInvalidUsage && comm == NULL &&
              !strcmp(ncclGetLastError(NULL),
                      "Duplicate GPU detected: rank 1 and rank 2 both on device 0");
    if (!ok)
        fprintf(stderr, "nccl rank %d: ncclCommInitRank on a shared device: %s (%s)\n", rank,
                ncclGetErrorString(r), ncclGetLastError(NULL));
    return ok ? 0 : 1;
}
/* Forks a process per rank (rank r on devices[r]); true when all exit 0. */
static bool nccl_run_ranks(int (*rank_fn)(const ncclUniqueId *, int, int, int), int ranks,
                           const int *devices, const ncclUniqueId *id) {
    pid_t pids[8];
    fflush(stdout), fflush(stderr);
    for (int r = 0; r < ranks; r++)
        if ((pids[r] = fork()) == 0) {
            int status = rank_fn(id, ranks, r, devices[r]);
            fflush(stderr);
            _exit(status);
        }
    bool ok = true;
    for (int r = 0; r < ranks; r++) {
        int status = 0;
        waitpid(pids[r], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status)) {
            fprintf(stderr, "nccl rank %d: ended with status 0x%x\n", r, status);
            ok = false;
        }
    }
    return ok;
}
static bool nccl_left_in_shm(const ncclUniqueId *id) {
    char path[sizeof id->internal + 16];
    snprintf(path, sizeof path, "/dev/shm%s", id->internal);
    struct stat st;
    return stat(path, &st) == 0;
}

static void test_nccl(void) {
    setenv("LORAFT_EMU_DEVICES", "3", 1); /* read at each call: no CUDA call cached it */
    int n = 0, dev = -1;
    EXPECT(cudaGetDeviceCount(&n) == cudaSuccess && n == 3);
    EXPECT(cudaSetDevice(2) == cudaSuccess && cudaGetDevice(&dev) == cudaSuccess && dev == 2);
    cudaDeviceProp prop;
    EXPECT(cudaGetDeviceProperties(&prop, 2) == cudaSuccess);
    EXPECT(cudaSetDevice(3) == cudaErrorInvalidDevice &&
           cudaSetDevice(-1) == cudaErrorInvalidDevice);
    EXPECT(cudaGetDeviceProperties(&prop, 3) == cudaErrorInvalidDevice);
    EXPECT(cudaGetLastError() == cudaErrorInvalidDevice);
    EXPECT(cudaGetDevice(&dev) == cudaSuccess && dev == 2); /* a refused call changes nothing */
    cudaSetDevice(0);
    EXPECT(!strcmp(ncclGetErrorString(ncclInvalidUsage), "invalid usage"));
    EXPECT(!strcmp(ncclGetErrorString(ncclRemoteError),
                   "remote process exited or there was a network error"));

    /* refused before anything is created */
    ncclUniqueId id, bad;
    ncclComm_t comm;
    EXPECT(ncclGetUniqueId(&id) == ncclSuccess && !nccl_left_in_shm(&id));
    EXPECT(ncclCommInitRank(&comm, 0, id, 0) == ncclInvalidArgument && comm == NULL);
    EXPECT(ncclCommInitRank(&comm, 65, id, 0) == ncclInvalidArgument);
    EXPECT(ncclCommInitRank(&comm, 2, id, 2) == ncclInvalidArgument);
    memset(&bad, 'x', sizeof bad);
    EXPECT(ncclCommInitRank(&comm, 1, bad, 0) == ncclInvalidArgument);
    EXPECT(!nccl_left_in_shm(&id));

    /* one rank in this process: checks, and a captured sum */
    float *d, h[8];
    cudaMalloc(&d, 16 * sizeof *d);
    for (int i = 0; i < 8; i++) h[i] = (float)i;
    cudaMemcpy(d, h, sizeof h, cudaMemcpyHostToDevice);
    cudaMemset(d + 8, 0, 8 * sizeof *d);
    EXPECT(ncclCommInitRank(&comm, 1, id, 0) == ncclSuccess && comm != NULL);
    EXPECT(!nccl_left_in_shm(&id)); /* unlinked once all joined */
    EXPECT(ncclAllReduce(d, d, 8, ncclFloat16, ncclSum, comm, NULL) == ncclInvalidArgument);
    EXPECT(strstr(ncclGetLastError(NULL), "sums floats and doubles only") != NULL);
    EXPECT(ncclAllReduce(d, d, 8, ncclFloat, ncclMax, comm, NULL) == ncclInvalidArgument);
    EXPECT(ncclAllReduce(d, d, 0, ncclFloat, ncclSum, comm, NULL) == ncclSuccess);
    cudaGraph_t g;
    cudaGraphExec_t x;
    EXPECT(cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal) == cudaSuccess);
    EXPECT(ncclAllReduce(d, d + 8, 8, ncclFloat, ncclSum, comm, cudaStreamPerThread) ==
           ncclSuccess);
    EXPECT(cudaStreamEndCapture(cudaStreamPerThread, &g) == cudaSuccess);
    float got[8];
    cudaMemcpy(got, d + 8, sizeof got, cudaMemcpyDeviceToHost);
    EXPECT(got[7] == 0.0f); /* recorded, not run */
    EXPECT(cudaGraphInstantiate(&x, g, 0) == cudaSuccess && cudaGraphLaunch(x, 0) == cudaSuccess);
    cudaMemcpy(got, d + 8, sizeof got, cudaMemcpyDeviceToHost);
    EXPECT(!memcmp(got, h, sizeof got));
    cudaGraphDestroy(g);
    cudaGraphExecUpdateResultInfo info;
    for (size_t count : {(size_t)8, (size_t)4}) { /* another count is another collective */
        cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeGlobal);
        ncclAllReduce(d + 8, d, count, ncclFloat, ncclSum, comm, cudaStreamPerThread);
        cudaStreamEndCapture(cudaStreamPerThread, &g);
        cudaError_t e = cudaGraphExecUpdate(x, g, &info);
        EXPECT(count == 8 ? e == cudaSuccess
                          : e == cudaErrorGraphExecUpdateFailure &&
                                info.result == cudaGraphExecUpdateErrorParametersChanged);
        cudaGraphDestroy(g);
    }
    cudaGetLastError();
    cudaGraphExecDestroy(x);
    EXPECT(ncclCommDestroy(comm) == ncclSuccess && ncclCommDestroy(NULL) == ncclSuccess);
    cudaFree(d);

    /* three ranks, three processes (the id made here: ncclGetUniqueId creates nothing) */
    const int devices[3] = {0, 1, 2}, shared[3] = {1, 0, 0};
    EXPECT(ncclGetUniqueId(&id) == ncclSuccess);
    EXPECT(nccl_run_ranks(nccl_sum_rank, 3, devices, &id));
    EXPECT(!nccl_left_in_shm(&id));
    EXPECT(ncclGetUniqueId(&id) == ncclSuccess);
    EXPECT(nccl_run_ranks(nccl_duplicate_rank, 3, shared, &id));
    EXPECT(!nccl_left_in_shm(&id));
    unsetenv("LORAFT_EMU_DEVICES");
}

static void expect_abort(const char *what, void (*body)(float *), const char *message) {
    char path[] = "/tmp/loraft-emu-XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout), fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd, 2);
        float *d;
        cudaMalloc(&d, 64 * sizeof(float));
        body(d);
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    char buf[8192] = {0};
    ssize_t got = pread(fd, buf, sizeof buf - 1, 0);
    close(fd), unlink(path);
    int died = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    int said = got > 0 && strstr(buf, message) != NULL;
    char *line = strstr(buf, "cuda-emu:");
    if (line && strchr(line, '\n')) *strchr(line, '\n') = 0;
    printf("%-28s %s: %s\n", what, died && said ? "aborts" : "DOES NOT ABORT AS EXPECTED",
           line ? line : buf);
    EXPECT(died && said);
}

static void run_divergent(float *d) {
    divergent_shfl_kernel<<<1, 64>>>(d);
}
static void run_vs_barrier(float *d) {
    shfl_vs_barrier_kernel<<<1, 32>>>(d);
}
static void run_host_pointer(float *) {
    static float host[64];
    divergent_shfl_kernel<<<1, 32>>>(host);
}
static void run_gemm_overrun(float *d) {
    cublasHandle_t h;
    float one = 1.0f;
    cublasCreate(&h); /* 8 x 8 operands in a 64-float buffer, but ld 9: one float too far */
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &one, d, CUDA_R_32F, 9, d, CUDA_R_32F, 8,
                 &one, d, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
static void run_gemm_half(float *d) {
    cublasHandle_t h;
    float one = 1.0f;
    cublasCreate(&h);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16F, 4, d, CUDA_R_16F, 4,
                 &one, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}

/* bf16 operands are 2 bytes an element: 8 x 8 with ld 18 spans 268 bytes of the 256 */
static void run_gemm_bf16_overrun(float *d) {
    cublasHandle_t h;
    float one = 1.0f, *c;
    cudaMalloc(&c, 64 * sizeof(float));
    cublasCreate(&h);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 8, 8, 8, &one, d, CUDA_R_16BF, 18, d, CUDA_R_16BF, 8,
                 &one, c, CUDA_R_32F, 8, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
static void run_gemm_bf16_batched(float *d) {
    cublasHandle_t h;
    float one = 1.0f;
    cublasCreate(&h);
    cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16BF, 4, 16, d,
                               CUDA_R_16BF, 4, 16, &one, d, CUDA_R_32F, 4, 16, 2,
                               CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
static void run_gemm_bf16_tf32(float *d) {
    cublasHandle_t h;
    float one = 1.0f;
    cublasCreate(&h);
    cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 4, 4, &one, d, CUDA_R_16BF, 4, d, CUDA_R_16BF, 4,
                 &one, d, CUDA_R_32F, 4, CUBLAS_COMPUTE_32F_FAST_TF32, CUBLAS_GEMM_DEFAULT);
}

static void run_lt_gelu(float *) {
    cublasLtMatmulDesc_t desc;
    uint32_t gelu = 32; /* CUBLASLT_EPILOGUE_GELU: the tanh approximation */
    cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
    cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &gelu, sizeof gelu);
}
/* a bias of m = 8 floats starting 4 floats before the end of its allocation */
static void run_lt_bias_overrun(float *d) {
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    LtCall c;
    if (lt_setup(&c, lt, 0, 0, 8, 1, 1, CUDA_R_32F, 8, 1, 8, d + 60, 4) == CUBLAS_STATUS_SUCCESS)
        lt_run(lt, &c, d, d, d, NULL, 0, 0); /* D aliases A: the check comes first */
}

/* a bias 4 bytes off: under the 16 a kernel may assume */
static void run_lt_bias_misaligned(float *d) {
    cublasLtHandle_t lt;
    cublasLtCreate(&lt);
    LtCall c;
    if (lt_setup(&c, lt, 0, 0, 4, 1, 1, CUDA_R_32F, 4, 1, 4, d + 9, 4) == CUBLAS_STATUS_SUCCESS)
        lt_run(lt, &c, d, d + 8, d + 16, NULL, 0, 0);
}

/* ldmatrix misuse: a row address 4 bytes off 16, half a warp */
__global__ void ldmatrix_misuse_kernel(const __nv_bfloat16 *m, int offset, int lanes) {
    if ((int)threadIdx.x >= lanes) return;
    uint32_t r[4];
    ldmatrix_x4(r, m + offset);
}
static void run_ldmatrix_misaligned(float *d) {
    ldmatrix_misuse_kernel<<<1, 32>>>((const __nv_bfloat16 *)d, 2, 32);
}
static void run_ldmatrix_half_warp(float *d) {
    ldmatrix_misuse_kernel<<<1, 32>>>((const __nv_bfloat16 *)d, 0, 16);
}

/* a thread that exits with a copy it never waited for */
__global__ void cp_async_unwaited_kernel(const float *src) {
    extern __shared__ __align__(16) unsigned char cp_smem[];
    cp_async16(cp_smem, src, true);
    cp_async_commit();
}
static void run_cp_async_unwaited(float *d) {
    cp_async_unwaited_kernel<<<1, 1, 16>>>(d);
}

/* a 16-byte cp.async to shared memory 4 bytes off 16 */
static void run_cp_async_misaligned(float *d) {
    cp_async_kernel<<<1, 1, 16 * sizeof(float)>>>(d, d, 1);
}

/* ---- NCCL's aborts: a bad device count, a rank that never comes, a host buffer ---- */
static ncclUniqueId nccl_abort_id;
static void run_devices_65(float *) {
    int n;
    setenv("LORAFT_EMU_DEVICES", "65", 1);
    cudaGetDeviceCount(&n);
}
static void run_nccl_alone(float *) {
    ncclComm_t comm;
    setenv("LORAFT_EMU_NCCL_TIMEOUT", "0.2", 1);
    ncclCommInitRank(&comm, 2, nccl_abort_id, 0);
}
static void run_nccl_peer_gone(float *d) {
    ncclComm_t comm;
    setenv("LORAFT_EMU_NCCL_TIMEOUT", "0.2", 1);
    setenv("LORAFT_EMU_DEVICES", "2", 1);
    if (fork() == 0) { /* joins, then exits without summing */
        cudaSetDevice(1);
        _exit(ncclCommInitRank(&comm, 2, nccl_abort_id, 1) == ncclSuccess ? 0 : 1);
    }
    if (ncclCommInitRank(&comm, 2, nccl_abort_id, 0) == ncclSuccess)
        ncclAllReduce(d, d, 64, ncclFloat, ncclSum, comm, NULL);
}
static void run_nccl_host_buffer(float *) {
    static float host[64];
    ncclComm_t comm;
    if (ncclCommInitRank(&comm, 1, nccl_abort_id, 0) == ncclSuccess)
        ncclAllReduce(host, host, 64, ncclFloat, ncclSum, comm, NULL);
}
static void test_nccl_aborts(void) {
    expect_abort("LORAFT_EMU_DEVICES 65", run_devices_65, "must be 1 to 64");
    ncclGetUniqueId(&nccl_abort_id);
    expect_abort("NCCL rank alone", run_nccl_alone,
                 "rank 0 of 2: join (ncclCommInitRank): the other ranks did not arrive");
    EXPECT(!nccl_left_in_shm(&nccl_abort_id)); /* the waiting rank unlinked it */
    ncclGetUniqueId(&nccl_abort_id);
    expect_abort("NCCL peer gone", run_nccl_peer_gone,
                 "rank 0 of 2: ncclAllReduce number 1: the other ranks did not arrive");
    EXPECT(!nccl_left_in_shm(&nccl_abort_id));
    ncclGetUniqueId(&nccl_abort_id);
    expect_abort("NCCL host buffer", run_nccl_host_buffer, "does not lie in device memory");
}

int main(void) {
    unsetenv("LORAFT_EMU_ARCH"); /* test_launch_limits starts from every target's limits */
    test_shuffles();
    test_blocks();
    test_launch_limits();
    test_gemm();
    test_bf16();
    test_gemm_bf16();
    test_gemm_lt();
    test_mma_ptx();
    test_cp_async();
    test_graphs();
    test_nccl();
    expect_abort("divergent shuffle", run_divergent, "divergent warp collective");
    expect_abort("shuffle against a barrier", run_vs_barrier, "divergent warp collective");
    expect_abort("host pointer to a kernel", run_host_pointer, "does not point into device memory");
    expect_abort("GEMM operand overrun", run_gemm_overrun, "past the end");
    expect_abort("GEMM in half precision", run_gemm_half, "only CUDA_R_32F");
    expect_abort("bf16 GEMM operand overrun", run_gemm_bf16_overrun, "past the end");
    expect_abort("batched bf16 GEMM", run_gemm_bf16_batched, "one in cublasGemmEx), are emulated");
    expect_abort("bf16 GEMM in TF32", run_gemm_bf16_tf32, "compute type 77");
    expect_abort("cuBLASLt GELU epilogue", run_lt_gelu, "only CUBLASLT_EPILOGUE_DEFAULT");
    expect_abort("cuBLASLt bias overrun", run_lt_bias_overrun, "bias of batch 0");
    expect_abort("cuBLASLt bias misaligned", run_lt_bias_misaligned, "not 16-byte aligned");
    expect_abort("ldmatrix misaligned row", run_ldmatrix_misaligned, "not 16-byte aligned");
    expect_abort("ldmatrix in half a warp", run_ldmatrix_half_warp, "divergent warp collective");
    expect_abort("cp.async misaligned", run_cp_async_misaligned, "not aligned to the copy's size");
    expect_abort("cp.async never waited for", run_cp_async_unwaited, "never waited for");
    test_nccl_aborts();
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
