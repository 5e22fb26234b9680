/* dequantize.cu: packed frozen weights (model.base_dtype bf16 or q) back to f32 for their
 * GEMMs, or to bf16 for the tensor-core GEMMs of model.precision bf16. One thread per output
 * value, a warp on 32 consecutive values of a row, so its stores are one coalesced run
 * (128 bytes of f32, 64 of bf16), and a thread finds its value without dividing an index. Each
 * thread decodes its value with include/loraft/quant_block.h, the very code the CPU runs, so both
 * give the same bits: its sub-block's scale (the header bytes every thread of the sub-block reads,
 * one cache line) and its own quant bits. One kernel per type (a template), so the block size is a
 * constant and the type's switch is resolved at compile time. A dequantise-in-the-GEMM kernel is
 * the follow-up once this has been measured on a GPU. */
#include "cuda_common.cuh"
#include "loraft/quant.h"
#include "loraft/quant_block.h"

/* Each QB_TYPES decoder as a type: its values a block and one value of a block. */
template <int type> struct Decoder;
#define QB_DECODER(type, scale, value_of, n)                                                       \
    template <> struct Decoder<type> {                                                             \
        static const int values = n;                                                               \
        static __device__ float value(const uint8_t *b, int s, int l) {                            \
            return value_of(b, scale(b, s), s, l);                                                 \
        }                                                                                          \
    };
QB_TYPES(QB_DECODER)
#undef QB_DECODER

/* Values a thread decodes: 4 consecutive ones of a quantised block's sub-block, all decoded
 * before any is stored (a store could alias the packed bytes), so its scale is decoded once;
 * one of the one-value-a-block types (BF16). */
template <typename Q> struct Width { static const int n = Q::values % 4 ? 1 : 4; };

/* v[0..W) to out[0..W); as one float4 when `vector` (out 16-byte aligned) */
template <int W> static __device__ void store(float *out, const float *v, bool vector) {
    if constexpr (W == 4)
        if (vector) {
            *(float4 *)out = float4{v[0], v[1], v[2], v[3]};
            return;
        }
    for (int k = 0; k < W; k++) out[k] = v[k];
}
/* bf16 of the decoded values, nearest even (the CPU rounds quant.c's decode the same way). */
template <int W> static __device__ void store(__nv_bfloat16 *out, const float *v, bool) {
    for (int k = 0; k < W; k++) out[k] = __float2bfloat16(v[k]);
}

/* The grid of the [rows, cols] kernels below: blocks of (32, 8) threads, x over 32 column
 * groups (a warp stores one coalesced run of a row), y over rows, so no thread divides an
 * index. */
static const dim3 ROWS_BLOCK(32, 8);
static dim3 rows_grid(int rows, int col_groups) {
    unsigned y = (unsigned)(rows + 7) / 8;
    return dim3((unsigned)(col_groups + 31) / 32, y < 65535 ? y : 65535);
}
#define FOR_ROWS(r, rows)                                                                          \
    for (size_t r = blockIdx.y * 8 + threadIdx.y; r < (size_t)(rows); r += gridDim.y * 8)

/* Row r of the packed slice src (rows row_bytes apart, cols values each) to row r of out, rows
 * ld apart; Width<Q> values a thread. */
template <typename Q, typename Out>
__global__ void dequantize_kernel(Out *out, const uint8_t *src, int rows, int cols, int ld,
                                  int block_bytes, bool vector) {
    const int W = Width<Q>::n;
    int c = (blockIdx.x * 32 + threadIdx.x) * W, j = c % Q::values;
    size_t row_bytes = (size_t)(cols / Q::values) * block_bytes;
    if (c >= cols) return;
    FOR_ROWS(r, rows) {
        const uint8_t *block = src + r * row_bytes + c / Q::values * block_bytes;
        float v[W];
#pragma unroll
        for (int k = 0; k < W; k++) v[k] = Q::value(block, j / 32, j % 32 + k);
        store<W>(out + r * ld + c, v, vector);
    }
}

template <typename Q, typename Out>
static void launch_dequantize(Out *out, const uint8_t *src, int rows, int cols, int ld,
                              int block_bytes) {
    const int W = Width<Q>::n;
    bool vector = (uintptr_t)out % 16 == 0 && ld % 4 == 0;
    dequantize_kernel<Q, Out><<<rows_grid(rows, (cols + W - 1) / W), ROWS_BLOCK>>>(
        out, src, rows, cols, ld, block_bytes, vector);
}

/* Rows row0.. of a packed [*, cols] matrix of a QB_TYPES type to out, rows ld apart. */
template <typename Out>
static void dequantize(Out *out, const void *packed, int type, int row0, int rows, int cols,
                       int ld) {
    size_t be = (size_t)quant_block_elems(type), bb = (size_t)quant_block_bytes(type);
    const uint8_t *src = (const uint8_t *)packed + (size_t)row0 * (cols / be * bb);
    switch (type) {
#define QB_LAUNCH(type, scale, value_of, values)                                                   \
    case type:                                                                                     \
        launch_dequantize<Decoder<type>>(out, src, rows, cols, ld, (int)bb);                       \
        break;
        QB_TYPES(QB_LAUNCH)
#undef QB_LAUNCH
    }
}

void cuda_dequantize_rows(float *out, const void *packed, int type, int row0, int rows, int cols) {
    size_t n = (size_t)rows * cols;
    if (!n) return;
    if (type == GGML_F32) {
        const float *src = (const float *)packed + (size_t)row0 * cols;
        CUDA_CHECK(cudaMemcpyAsync(out, src, n * sizeof *out, cudaMemcpyDeviceToDevice, 0));
        return;
    }
    dequantize(out, packed, type, row0, rows, cols, cols);
    CUDA_LAUNCHED("dequantize_rows");
}

__global__ void round_bf16_kernel(__nv_bfloat16 *out, int ld, const float *x, int rows, int cols) {
    int c = blockIdx.x * 32 + threadIdx.x;
    if (c >= cols) return;
    FOR_ROWS(r, rows) out[r * ld + c] = __float2bfloat16(x[r * cols + c]);
}

/* out[r, c] (rows ld apart) = bf16(x[r, c]) of x [rows, cols], nearest even */
static void round_bf16(__nv_bfloat16 *out, int ld, const float *x, int rows, int cols) {
    round_bf16_kernel<<<rows_grid(rows, cols), ROWS_BLOCK>>>(out, ld, x, rows, cols);
    CUDA_LAUNCHED("round to bf16");
}

/* Copy blockIdx.y of copies, its elements strided over the blockIdx.x blocks: the copies are
 * small (a LoRA matrix, [out, R] or [R, in]), many of them in one launch. */
__global__ void round_bf16_many_kernel(const OpsBf16Copy *copies) {
    OpsBf16Copy c = copies[blockIdx.y];
    size_t n = (size_t)c.rows * c.cols;
    __nv_bfloat16 *dst = (__nv_bfloat16 *)c.dst;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = index_div(i, c.cols);
        dst[r * c.ld + i - r * c.cols] = __float2bfloat16(c.src[i]);
    }
}

enum { ROUND_MANY_BLOCKS = 8, ROUND_MANY_COPIES = 65535 /* grid.y's limit */ };
void cuda_round_bf16_many(const OpsBf16Copy *copies, int n) {
    for (int i = 0; i < n; i += ROUND_MANY_COPIES) {
        unsigned part = (unsigned)(n - i < ROUND_MANY_COPIES ? n - i : ROUND_MANY_COPIES);
        round_bf16_many_kernel<<<dim3(ROUND_MANY_BLOCKS, part), CUDA_THREADS>>>(copies + i);
        CUDA_LAUNCHED("round_bf16_many");
    }
}

/* BF16 rows are copied as they are; into rows ld != cols apart by the decoder kernel (exact). */
void cuda_dequantize_rows_bf16(uint16_t *out, const void *packed, int type, int row0, int rows,
                               int cols, int ld) {
    size_t n = (size_t)rows * cols;
    __nv_bfloat16 *dst = (__nv_bfloat16 *)out;
    if (!n) return;
    if (type == GGML_F32)
        return round_bf16(dst, ld, (const float *)packed + (size_t)row0 * cols, rows, cols);
    if (type == GGML_BF16 && ld == cols) {
        const uint16_t *src = (const uint16_t *)packed + (size_t)row0 * cols;
        CUDA_CHECK(cudaMemcpyAsync(out, src, n * sizeof *out, cudaMemcpyDeviceToDevice, 0));
        return;
    }
    dequantize(dst, packed, type, row0, rows, cols, ld);
    CUDA_LAUNCHED("dequantize_rows_bf16");
}
