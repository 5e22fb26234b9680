/* dequantize.cu: packed frozen weights (model.base_dtype bf16 or q) back to f32 for their
 * GEMMs, or to bf16 for the tensor-core GEMMs of model.precision bf16. One thread per block of the
 * ggml type, decoding it with include/loraft/quant_block.h, the very code the CPU runs, so both
 * give the same bits. Simple rather than fast: a thread writes its block's 32 or 256 floats alone
 * (no coalescing across a warp); a fused dequantise-in-the-GEMM kernel is the follow-up once it has
 * been measured on a GPU. */
#include "cuda_common.cuh"
#include "loraft/quant.h"
#include "loraft/quant_block.h"

__global__ void dequantize_kernel(float *out, const uint8_t *src, uint32_t type, size_t blocks,
                                  int block_elems, int block_bytes) {
    GRID_STRIDE(i, blocks) {
        quant_block_decode(type, src + i * block_bytes, out + i * block_elems);
    }
}

void cuda_dequantize_rows(float *out, const void *packed, int type, int row0, int rows, int cols) {
    size_t be = (size_t)quant_block_elems(type), bb = (size_t)quant_block_bytes(type);
    size_t row_bytes = (size_t)cols / be * bb, blocks = (size_t)rows * cols / be;
    const uint8_t *src = (const uint8_t *)packed + (size_t)row0 * row_bytes;
    if (!blocks) return;
    if (type == GGML_F32) {
        CUDA_CHECK(cudaMemcpy(out, src, blocks * sizeof(float), cudaMemcpyDeviceToDevice));
        return;
    }
    dequantize_kernel<<<cuda_blocks(blocks, CUDA_THREADS), CUDA_THREADS>>>(
        out, src, (uint32_t)type, blocks, (int)be, (int)bb);
    CUDA_LAUNCHED("dequantize_rows");
}

/* bf16 of the decoded block, nearest even (the CPU rounds quant.c's decode the same way). */
__global__ void dequantize_bf16_kernel(__nv_bfloat16 *out, const uint8_t *src, uint32_t type,
                                       size_t blocks, int block_elems, int block_bytes) {
    GRID_STRIDE(i, blocks) {
        float y[256]; /* the largest block: Q4_K, Q5_K, Q6_K */
        quant_block_decode(type, src + i * block_bytes, y);
        for (int j = 0; j < block_elems; j++) out[i * block_elems + j] = __float2bfloat16(y[j]);
    }
}

__global__ void round_bf16_kernel(__nv_bfloat16 *out, const float *x, size_t n) {
    GRID_STRIDE(i, n) out[i] = __float2bfloat16(x[i]);
}

void cuda_round_bf16(__nv_bfloat16 *out, const float *x, size_t n) {
    if (!n) return;
    round_bf16_kernel<<<cuda_blocks(n, CUDA_THREADS), CUDA_THREADS>>>(out, x, n);
    CUDA_LAUNCHED("round to bf16");
}

void cuda_dequantize_rows_bf16(uint16_t *out, const void *packed, int type, int row0, int rows,
                               int cols) {
    size_t be = (size_t)quant_block_elems(type), bb = (size_t)quant_block_bytes(type);
    size_t row_bytes = (size_t)cols / be * bb, blocks = (size_t)rows * cols / be;
    const uint8_t *src = (const uint8_t *)packed + (size_t)row0 * row_bytes;
    __nv_bfloat16 *dst = (__nv_bfloat16 *)out;
    if (!blocks) return;
    if (type == GGML_F32) return cuda_round_bf16(dst, (const float *)src, blocks);
    if (type == GGML_BF16) {
        CUDA_CHECK(cudaMemcpy(out, src, blocks * bb, cudaMemcpyDeviceToDevice));
        return;
    }
    dequantize_bf16_kernel<<<cuda_blocks(blocks, CUDA_THREADS), CUDA_THREADS>>>(
        dst, src, (uint32_t)type, blocks, (int)be, (int)bb);
    CUDA_LAUNCHED("dequantize_rows_bf16");
}
