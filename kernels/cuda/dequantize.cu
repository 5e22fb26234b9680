/* dequantize.cu: packed frozen weights (model.base_dtype bf16 or q) back to f32 for their
 * GEMMs. One thread per block of the ggml type, decoding it with include/loraft/quant_block.h,
 * the very code the CPU runs, so both give the same bits. Simple rather than fast: a thread
 * writes its block's 32 or 256 floats alone (no coalescing across a warp); a fused
 * dequantise-in-the-GEMM kernel is the follow-up once it has been measured on a GPU. */
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
