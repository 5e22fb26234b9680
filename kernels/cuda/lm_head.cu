/* lm_head.cu: the LM head and its softmax cross-entropy in chunks of rows, so
 * the [N,V] logits of a vocabulary are never held whole. Per chunk: one cuBLAS
 * GEMM forms the logits in scratch, the cross-entropy row kernel turns them
 * into dlogits in place (a label >= V raises FAULT_LABEL there), and up to two
 * GEMMs accumulate dh and dW. All on the default stream, so the next chunk's
 * GEMM waits for the last one's readers of scratch. */
#include "cuda_common.cuh"

/* losses[N]; dh[N,C] += dlogits @ W (rows weighed by row_scale, NULL: 1); dW[V,C] += dlogits^T @ h;
 * h [N,C], W [V,C] */
void cuda_lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                                const int32_t *labels, float grad_scale, const float *row_scale,
                                float *scratch, int N, int C, int V, int chunk) {
    if (chunk < 1) return; /* the contract asks for >= 1; never loop forever */
    int grads = dh || dW;
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int rows = N - n0 < chunk ? N - n0 : chunk;
        const float *hc = h + (size_t)n0 * C;
        cuda_matmul_forward(scratch, hc, W, NULL, rows, C, V);
        cuda_cross_entropy_rows(losses + n0, grads ? scratch : NULL, scratch, labels + n0,
                                grad_scale, row_scale ? row_scale + n0 : NULL, rows, V);
        if (grads)
            cuda_matmul_backward(dh ? dh + (size_t)n0 * C : NULL, dW, NULL, scratch, hc, W, rows, C,
                                 V);
    }
}
