/* test_emu.cu: tests of the CUDA emulation itself (tests/cuda_emu), written as CUDA and
 * pre-processed like kernels/: warp intrinsics against their documented results, barriers
 * and shared memory under permuted thread orders, dynamic shared memory, atomics, 3-D
 * indices, launch errors, cuBLAS's column-major semantics against naive loops; and, each in
 * a child process, the aborts that make bugs visible: a divergent shuffle, a shuffle
 * against a barrier, a host pointer passed to a kernel, a GEMM operand past its allocation.
 * Not a test of kernels/ (tests/gpu does that). Prints "N passed, N failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

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
    cudaFree(c);
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

/* ---- aborts, each in a child: it must die by SIGABRT with `message` on stderr ---- */
__global__ void divergent_shfl_kernel(float *out) {
    float v = (float)threadIdx.x;
    if ((threadIdx.x & 31) < 16) v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
}

__global__ void shfl_vs_barrier_kernel(float *out) {
    float v = (float)threadIdx.x;
    if (threadIdx.x == 3)
        __syncthreads();
    else
        v = __shfl_xor_sync(0xffffffffu, v, 1);
    out[threadIdx.x] = v;
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

int main(void) {
    test_shuffles();
    test_blocks();
    test_gemm();
    expect_abort("divergent shuffle", run_divergent, "divergent warp collective");
    expect_abort("shuffle against a barrier", run_vs_barrier, "divergent warp collective");
    expect_abort("host pointer to a kernel", run_host_pointer, "does not point into device memory");
    expect_abort("GEMM operand overrun", run_gemm_overrun, "past the end");
    expect_abort("GEMM in half precision", run_gemm_half, "only CUDA_R_32F");
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
