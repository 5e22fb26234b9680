/* lm_head.cu: the LM head and its softmax cross-entropy in chunks of rows, so
 * the [N,V] logits of a vocabulary are never held whole. Per chunk: one cuBLAS
 * GEMM forms the logits in scratch, the cross-entropy row kernel turns them
 * into dlogits in place (soft-capped as it reads them where softcap > 0; a label
 * >= V raises FAULT_LABEL there), and up to two GEMMs accumulate dh and dW. With
 * the head in bf16, Wb, the chunk's rows of h are rounded to bf16 first, the
 * logits and dlogits are bf16 (PyTorch's autocast returns the head's logits in
 * bf16; half the bytes of the pass between the GEMMs), and both GEMMs run on bf16
 * tensor cores (TF32 at best otherwise). With a row list (ops.h `rows`) the
 * chunk's rows of h are gathered as they are rounded (or into scratch, f32), the
 * cross-entropy finds each row's label, loss and weight through the list, and dh's
 * GEMM writes the chunk's rows apart, which one pass then adds to theirs. All on
 * the default stream, so the next chunk's GEMM waits for the last one's readers
 * of scratch. */
#include "cuda_common.cuh"
#include "loraft/quant.h" /* GGML_F32 */

/* Row i of y [n,C] = row rows[i] of x (T bf16: rounded to nearest even), or (SCATTER) row
 * rows[i] of y += row i of x (the listed rows are distinct: no two warps meet); a warp a row,
 * four columns a lane at a time */
template <typename T, bool SCATTER>
__global__ void move_rows_kernel(T *y, const float *x, const int32_t *rows, int n, int C) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(i, n) {
        size_t to = SCATTER ? (size_t)rows[i] : i, from = SCATTER ? i : (size_t)rows[i];
        for (int c = 4 * lane; c < C; c += 128) {
            float v[4], old[4];
            load4(v, x + from * C, c, C);
            if constexpr (sizeof(T) == 2) {
                store4_bf16((uint16_t *)y + to * C, v, c, C);
            } else {
                if (SCATTER) {
                    load4(old, y + to * C, c, C);
                    for (int k = 0; k < 4; k++) v[k] += old[k];
                }
                store4(y + to * C, v, c, C);
            }
        }
    }
}

template <typename T, bool SCATTER>
static void move_rows(T *y, const float *x, const int32_t *rows, int n, int C) {
    move_rows_kernel<T, SCATTER>
        <<<cuda_blocks((size_t)n, CUDA_THREADS / 32), CUDA_THREADS>>>(y, x, rows, n, C);
    CUDA_LAUNCHED("lm_head_cross_entropy (rows)");
}

/* One chunk of rows on bf16 operands: hb = bf16(h) [rows,C] (idx: h's rows idx[i]) in scratch
 * after the logits' room; logits [rows,V] = bf16(hb Wb^T), its f32 sums rounded once; dlogits
 * (bf16) over them; dh [rows,C] (+)= dlogits Wb (acc 0: overwritten). */
static void lm_head_chunk_bf16(float *losses, float *dh, int acc, const float *h,
                               const __nv_bfloat16 *Wb, const int32_t *labels, const int32_t *idx,
                               float grad_scale, const float *row_scale, float softcap,
                               __nv_bfloat16 *logits, __nv_bfloat16 *hb, int rows, int C, int V) {
    if (idx)
        move_rows<__nv_bfloat16, false>(hb, h, idx, rows, C);
    else
        cuda_dequantize_rows_bf16((uint16_t *)hb, h, GGML_F32, 0, rows, C, C);
    /* logits^T[V,rows] = Wb[V,C] hb^T[C,rows]; Wb's column-major view is Wb^T: OP_T */
    cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, V, rows, C, 1.0f, Wb, C, hb, C, 0.0f, logits,
                   CUDA_R_16BF, V);
    cuda_cross_entropy_rows_bf16(losses, logits, dh != NULL, labels, idx, grad_scale, row_scale,
                                 softcap, rows, V);
    /* dh^T[C,rows] (+)= Wb^T[C,V] dlogits^T[V,rows]: both their buffers' column-major views */
    if (dh)
        cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, rows, V, 1.0f, Wb, C, logits, V,
                       acc ? 1.0f : 0.0f, dh, CUDA_R_32F, C);
}

/* losses[N]; dh[N,C] += dlogits @ W (rows weighed by row_scale, NULL: 1); dW[V,C] += dlogits^T @ h;
 * h [N,C], W [V,C], Wb its bf16 copy or NULL; the logits soft-capped where softcap > 0; rows NULL
 * or the rows of h, labels, losses, dh and row_scale that the N computed rows are (ops.h). */
void cuda_lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                                const uint16_t *Wb, const int32_t *labels, const int32_t *rows,
                                float grad_scale, const float *row_scale, float softcap,
                                float *scratch, int N, int C, int V, int chunk) {
    if (chunk < 1) return; /* the contract asks for >= 1; never loop forever */
    if (Wb && dW) {
        CUDA_FAIL("lm_head_cross_entropy: a head given in bf16 (Wb) has no weight gradient");
        return;
    }
    int grads = dh || dW;
    __nv_bfloat16 *hb =
        (__nv_bfloat16 *)(scratch + ops_lm_head_logits((size_t)N, (size_t)V, (size_t)chunk, 1));
    float *hg = scratch +
                ops_lm_head_gathered((size_t)N, (size_t)C, (size_t)V, (size_t)chunk, Wb != NULL),
          *dhg = hg + (size_t)(N < chunk ? N : chunk) * C;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int n = N - n0 < chunk ? N - n0 : chunk;
        const int32_t *idx = rows ? rows + n0 : NULL;
        float *dhc = !dh ? NULL : idx ? dhg : dh + (size_t)n0 * C;
        float *lc = idx ? losses : losses + n0;
        const int32_t *yc = idx ? labels : labels + n0;
        const float *rs = !row_scale ? NULL : idx ? row_scale : row_scale + n0;
        if (Wb) {
            lm_head_chunk_bf16(lc, dhc, !idx, idx ? h : h + (size_t)n0 * C,
                               (const __nv_bfloat16 *)Wb, yc, idx, grad_scale, rs, softcap,
                               (__nv_bfloat16 *)scratch, hb, n, C, V);
        } else {
            const float *hc = h + (size_t)n0 * C;
            if (idx) move_rows<float, false>(hg, h, idx, n, C), hc = hg;
            if (idx && dh) CUDA_CHECK(cudaMemsetAsync(dhg, 0, sizeof(float) * n * C, 0));
            cuda_matmul_forward(scratch, hc, W, NULL, n, C, V);
            cuda_cross_entropy_rows(lc, grads ? scratch : NULL, scratch, yc, idx, grad_scale, rs,
                                    softcap, n, V);
            if (grads) cuda_matmul_backward(dhc, dW, scratch, hc, W, n, C, V, 1);
        }
        if (idx && dh) move_rows<float, true>(dh, dhg, idx, n, C);
    }
}
