/* bench_gpu.h: what the GPU benchmarks need from the CUDA runtime beside ops_cuda: event
 * timing, a device-to-device copy, a bare cuBLAS GEMM to compare the ops with, and the
 * device's memory in use. C callers, implemented in bench_gpu.cu (built only with CUDA; the
 * emulated-GPU build compiles it too, so the benchmarks' smoke runs there). Errors are kept
 * until bench_gpu_status. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The device's name ("NVIDIA H200") into buf. */
void bench_gpu_name(char *buf, size_t cap);
/* Starts the stopwatch on the default stream; bench_gpu_elapsed_ms waits for the work queued
 * since and returns its milliseconds (CUDA events). */
void bench_gpu_mark(void);
float bench_gpu_elapsed_ms(void);
/* dst = src, device to device, queued (cudaMemcpyAsync on the default stream). */
void bench_gpu_copy(void *dst, const void *src, size_t bytes);
/* For b < batch: C_b[M,N] = A_b[M,K] @ B_b[N,K]^T, row-major, strides M*K, N*K and M*N floats:
 * matmul_forward's product without its bias, on cuBLAS directly, in strict FP32 or, after
 * bench_gpu_set_tf32(1), on TF32 tensor cores (as ops_cuda's GEMMs in that mode). */
void bench_gpu_gemm(float *C, const float *A, const float *B, int M, int N, int K, int batch);
void bench_gpu_set_tf32(int on);
/* C[M,N] = A[M,K] @ B[N,K]^T with A and B in bf16 (uint16_t: the upper half of an f32), f32
 * accumulation and output: the bare GEMM of model.precision bf16 (matmul_forward_bf16). */
void bench_gpu_gemm_bf16(float *C, const uint16_t *A, const uint16_t *B, int M, int N, int K);
/* Device memory in use, all processes and the CUDA context included (cudaMemGetInfo: total
 * minus free). */
size_t bench_gpu_used_bytes(void);
/* 0 when every call above succeeded since the last check; else -1 and the first error in msg. */
int bench_gpu_status(char *msg, size_t cap);

#ifdef __cplusplus
}
#endif
