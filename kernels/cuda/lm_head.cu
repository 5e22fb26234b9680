/* lm_head.cu: the LM head and its softmax cross-entropy in chunks of rows, so
 * the [N,V] logits of a vocabulary are never held whole. Per chunk: one cuBLAS
 * GEMM forms the logits in scratch, the cross-entropy row kernel turns them
 * into dlogits in place (soft-capped as it reads them where softcap > 0; a label
 * >= V raises FAULT_LABEL there), and up to two GEMMs accumulate dh and dW. With
 * the head's bf16 copy Wb, the chunk's rows of h are rounded to bf16 first, the
 * logits and dlogits are bf16 (PyTorch's autocast returns the head's logits in
 * bf16; half the bytes of the pass between the GEMMs), and both GEMMs run on bf16
 * tensor cores (TF32 at best otherwise). All on the default stream, so the next
 * chunk's GEMM waits for the last one's readers of scratch. */
#include "cuda_common.cuh"
#include "loraft/quant.h" /* GGML_F32 */

/* One chunk of rows on bf16 operands: hb = bf16(h) [rows,C] in scratch after the logits' room;
 * logits [rows,V] = bf16(hb Wb^T), its f32 sums rounded once; dlogits (bf16) over them;
 * dh [rows,C] += dlogits Wb. */
static void lm_head_chunk_bf16(float *losses, float *dh, const float *h, const __nv_bfloat16 *Wb,
                               const int32_t *labels, float grad_scale, const float *row_scale,
                               float softcap, __nv_bfloat16 *logits, __nv_bfloat16 *hb, int rows,
                               int C, int V) {
    cuda_dequantize_rows_bf16((uint16_t *)hb, h, GGML_F32, 0, rows, C, C);
    /* logits^T[V,rows] = Wb[V,C] hb^T[C,rows]; Wb's column-major view is Wb^T: OP_T */
    cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, V, rows, C, 1.0f, Wb, C, hb, C, 0.0f, logits,
                   CUDA_R_16BF, V);
    cuda_cross_entropy_rows_bf16(losses, logits, dh != NULL, labels, grad_scale, row_scale, softcap,
                                 rows, V);
    /* dh^T[C,rows] += Wb^T[C,V] dlogits^T[V,rows]: both their buffers' column-major views */
    if (dh)
        cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, rows, V, 1.0f, Wb, C, logits, V, 1.0f, dh,
                       CUDA_R_32F, C);
}

/* losses[N]; dh[N,C] += dlogits @ W (rows weighed by row_scale, NULL: 1); dW[V,C] += dlogits^T @ h;
 * h [N,C], W [V,C], Wb its bf16 copy or NULL; the logits soft-capped where softcap > 0 */
void cuda_lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                                const uint16_t *Wb, const int32_t *labels, float grad_scale,
                                const float *row_scale, float softcap, float *scratch, int N, int C,
                                int V, int chunk) {
    if (chunk < 1) return; /* the contract asks for >= 1; never loop forever */
    if (Wb && dW) {
        CUDA_FAIL("lm_head_cross_entropy: a head given in bf16 (Wb) has no weight gradient");
        return;
    }
    int grads = dh || dW;
    __nv_bfloat16 *hb =
        (__nv_bfloat16 *)(scratch + ops_lm_head_logits((size_t)N, (size_t)V, (size_t)chunk, 1));
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int rows = N - n0 < chunk ? N - n0 : chunk;
        const float *hc = h + (size_t)n0 * C;
        float *dhc = dh ? dh + (size_t)n0 * C : NULL;
        const float *rs = row_scale ? row_scale + n0 : NULL;
        if (Wb) {
            lm_head_chunk_bf16(losses + n0, dhc, hc, (const __nv_bfloat16 *)Wb, labels + n0,
                               grad_scale, rs, softcap, (__nv_bfloat16 *)scratch, hb, rows, C, V);
            continue;
        }
        cuda_matmul_forward(scratch, hc, W, NULL, rows, C, V);
        cuda_cross_entropy_rows(losses + n0, grads ? scratch : NULL, scratch, labels + n0,
                                grad_scale, rs, softcap, rows, V);
        if (grads) cuda_matmul_backward(dhc, dW, NULL, scratch, hc, W, rows, C, V, 1);
    }
}
