/* bench_gpu.cu: the CUDA runtime side of the GPU benchmarks (bench_gpu.h). No kernels: one
 * pair of events, one cuBLAS handle, and the first error kept for bench_gpu_status. */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>

#include "bench_gpu.h"

static char first_error[256];
static cudaEvent_t start, stop;
static cublasHandle_t blas;
static cublasComputeType_t compute = CUBLAS_COMPUTE_32F;

static void note(const char *what, const char *why) {
    if (!first_error[0]) snprintf(first_error, sizeof first_error, "%s: %s", what, why);
}
#define CHECK(call)                                                                                \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) note(#call, cudaGetErrorString(e_));                                \
    } while (0)

void bench_gpu_name(char *buf, size_t cap) {
    cudaDeviceProp prop;
    cudaError_t e = cudaGetDeviceProperties(&prop, 0);
    snprintf(buf, cap, "%s", e == cudaSuccess ? prop.name : cudaGetErrorString(e));
}

void bench_gpu_mark(void) {
    if (!start) {
        CHECK(cudaEventCreate(&start));
        CHECK(cudaEventCreate(&stop));
    }
    CHECK(cudaEventRecord(start, 0));
}

float bench_gpu_elapsed_ms(void) {
    float ms = 0.0f;
    CHECK(cudaEventRecord(stop, 0));
    CHECK(cudaEventSynchronize(stop));
    CHECK(cudaEventElapsedTime(&ms, start, stop));
    return ms;
}

void bench_gpu_copy(void *dst, const void *src, size_t bytes) {
    CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}

/* The cuBLAS handle, created at the first GEMM; NULL (noted) if cuBLAS cannot start. */
static cublasHandle_t handle(void) {
    if (!blas && cublasCreate(&blas) != CUBLAS_STATUS_SUCCESS) {
        note("cublasCreate", "failed");
        blas = NULL;
    }
    return blas;
}

void bench_gpu_gemm(float *C, const float *A, const float *B, int M, int N, int K, int batch) {
    if (!handle()) return;
    const float one = 1.0f, zero = 0.0f;
    /* column-major: C^T [N,M] = B [N,K] (stored K x N, transposed) times A^T [K,M] */
    cublasStatus_t s = cublasGemmStridedBatchedEx(
        blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, B, CUDA_R_32F, K, (long long)N * K, A,
        CUDA_R_32F, K, (long long)M * K, &zero, C, CUDA_R_32F, N, (long long)M * N, batch, compute,
        CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) note("cublasGemmStridedBatchedEx", cublasGetStatusString(s));
}

void bench_gpu_gemm_bf16(float *C, const uint16_t *A, const uint16_t *B, int M, int N, int K) {
    if (!handle()) return;
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t s = cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, &one, B, CUDA_R_16BF,
                                    K, A, CUDA_R_16BF, K, &zero, C, CUDA_R_32F, N,
                                    CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (s != CUBLAS_STATUS_SUCCESS) note("cublasGemmEx (bf16)", cublasGetStatusString(s));
}

void bench_gpu_set_tf32(int on) {
    compute = on ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

size_t bench_gpu_used_bytes(void) {
    size_t free_bytes = 0, total = 0;
    CHECK(cudaMemGetInfo(&free_bytes, &total));
    return total - free_bytes;
}

int bench_gpu_status(char *msg, size_t cap) {
    CHECK(cudaDeviceSynchronize());
    if (!first_error[0]) return 0;
    snprintf(msg, cap, "%s", first_error);
    first_error[0] = 0;
    return -1;
}
