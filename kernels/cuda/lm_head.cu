/* lm_head.cu: the LM head and its softmax cross-entropy in chunks of rows, so
 * the [N,V] logits of a vocabulary are never held whole. Per chunk: one cuBLAS
 * GEMM forms the logits in scratch, the cross-entropy row kernel turns them
 * into dlogits in place (mapped as it reads them, OpsLogitMap; a label
 * >= V raises FAULT_LABEL there), and up to two GEMMs accumulate dh and dW. With
 * the head in bf16, Wb, the chunk's rows of h are rounded to bf16 first, the
 * logits and dlogits are bf16 (PyTorch's autocast returns the head's logits in
 * bf16; half the bytes of the pass between the GEMMs), and both GEMMs run on bf16
 * tensor cores (TF32 at best otherwise). With a row list (ops.h `rows`) the
 * chunk's rows of h are gathered as they are rounded (or into scratch, f32), the
 * cross-entropy finds each row's label, loss, weight and entropy through the list, and dh's
 * GEMM writes the chunk's rows apart, which one pass then adds to theirs. An
 * adapter on the head (OpsHeadLora) adds its up-projection to each chunk's logits
 * with a GEMM of K = R (on bf16 u and B under Wb, into the bf16 logits), and
 * after the cross-entropy its du and dB GEMMs read the same dlogits. All on
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

/* A chunk's view of the head's adapter: its rows of u (gathered where listed) and du (NULL:
 * no gradient; the chunk's own rows where listed, zeroed), under bf16 u's rows in bf16 (ub) and
 * B's bf16 copy (Bb). */
struct HeadChunk {
    const OpsHeadLora *l;
    const float *u;
    float *du;
    __nv_bfloat16 *ub;
    const __nv_bfloat16 *Bb;
};

/* The chunk of rows n0.. (n; idx: the listed ones) of the adapter, in la's rooms (ops.h:
 * ops_lm_head_lora_at; rows a chunk's) */
static HeadChunk head_chunk(const OpsHeadLora *l, float *la, const __nv_bfloat16 *Bb,
                            const int32_t *idx, int n0, int n, int rows) {
    int R = l->R;
    float *ug = la, *dug = la + (size_t)rows * R;
    HeadChunk c = {l, idx ? ug : l->u + (size_t)n0 * R, NULL, NULL, Bb};
    if (idx) move_rows<float, false>(ug, l->u, idx, n, R);
    if (l->du) c.du = idx ? dug : l->du + (size_t)n0 * R;
    if (idx && l->du) CUDA_CHECK(cudaMemsetAsync(dug, 0, sizeof(float) * n * R, 0));
    if (!Bb) return c;
    c.ub = (__nv_bfloat16 *)(la + 2 * (size_t)rows * R);
    if (idx)
        move_rows<__nv_bfloat16, false>(c.ub, l->u, idx, n, R);
    else
        cuda_dequantize_rows_bf16((uint16_t *)c.ub, c.u, GGML_F32, 0, n, R, R);
    return c;
}

/* du^T[R,n] += scale B^T[R,V] dlogits^T[V,n] and dB^T[R,V] += scale u^T[R,n] dlogits[n,V]
 * (dlogits' column-major view is dlogits^T: OP_T), f32 or on bf16 dlogits, B and u; listed
 * rows' du then added to theirs. */
static void head_chunk_backward(const HeadChunk &c, const void *dlogits, const int32_t *idx, int n,
                                int V) {
    const OpsHeadLora *l = c.l;
    int R = l->R;
    if (c.Bb) {
        const __nv_bfloat16 *d = (const __nv_bfloat16 *)dlogits;
        if (c.du)
            cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, R, n, V, l->scale, c.Bb, R, d, V, 1.0f, c.du,
                           CUDA_R_32F, R);
        if (l->dB)
            cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_T, R, V, n, l->scale, c.ub, R, d, V, 1.0f, l->dB,
                           CUDA_R_32F, R);
    } else {
        const float *d = (const float *)dlogits;
        if (c.du)
            cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, R, n, V, l->scale, l->B, R, 0, d, V, 0, 1.0f, c.du,
                      R, 0, 1);
        if (l->dB)
            cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, R, V, n, l->scale, c.u, R, 0, d, V, 0, 1.0f, l->dB,
                      R, 0, 1);
    }
    if (idx && c.du) move_rows<float, true>(l->du, c.du, idx, n, R);
}

/* One chunk of rows on bf16 operands: hb = bf16(h) [rows,C] (idx: h's rows idx[i]) in scratch
 * after the logits' room; logits [rows,V] = bf16(hb Wb^T), its f32 sums rounded once (with an
 * adapter, + scale ub Bb^T, rounded again); dlogits (bf16) over them; dh [rows,C] (+)= dlogits
 * Wb (acc 0: overwritten). */
static void lm_head_chunk_bf16(float *losses, float *dh, int acc, int lora_grads, const float *h,
                               const __nv_bfloat16 *Wb, const HeadChunk *lora,
                               const int32_t *labels, const int32_t *idx, float grad_scale,
                               const float *row_scale, const OpsEntropy *ent, OpsLogitMap map,
                               __nv_bfloat16 *logits, __nv_bfloat16 *hb, int rows, int C, int V) {
    if (idx)
        move_rows<__nv_bfloat16, false>(hb, h, idx, rows, C);
    else
        cuda_dequantize_rows_bf16((uint16_t *)hb, h, GGML_F32, 0, rows, C, C);
    /* logits^T[V,rows] = Wb[V,C] hb^T[C,rows]; Wb's column-major view is Wb^T: OP_T */
    cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, V, rows, C, 1.0f, Wb, C, hb, C, 0.0f, logits,
                   CUDA_R_16BF, V);
    if (lora) /* logits^T += scale Bb[V,R] ub^T[R,rows] */
        cuda_gemm_bf16(CUBLAS_OP_T, CUBLAS_OP_N, V, rows, lora->l->R, lora->l->scale, lora->Bb,
                       lora->l->R, lora->ub, lora->l->R, 1.0f, logits, CUDA_R_16BF, V);
    cuda_cross_entropy_rows_bf16(losses, logits, dh || lora_grads, labels, idx, grad_scale,
                                 row_scale, ent, map, rows, V);
    /* dh^T[C,rows] (+)= Wb^T[C,V] dlogits^T[V,rows]: both their buffers' column-major views */
    if (dh)
        cuda_gemm_bf16(CUBLAS_OP_N, CUBLAS_OP_N, C, rows, V, 1.0f, Wb, C, logits, V,
                       acc ? 1.0f : 0.0f, dh, CUDA_R_32F, C);
}

/* losses[N]; dh[N,C] += dlogits @ W (rows weighed by row_scale, NULL: 1); dW[V,C] += dlogits^T @ h;
 * h [N,C], W [V,C], Wb its bf16 copy or NULL; the logits mapped by map; the entropy (NULL: none);
 * rows NULL or the rows of h, labels, losses, dh, row_scale and entropy's that the N computed rows
 * are (ops.h). */
void cuda_lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h, const float *W,
                                const uint16_t *Wb, const OpsHeadLora *lora, const int32_t *labels,
                                const int32_t *rows, float grad_scale, const float *row_scale,
                                const OpsEntropy *entropy, OpsLogitMap map, float *scratch, int N,
                                int C, int V, int chunk) {
    if (chunk < 1) return; /* the contract asks for >= 1; never loop forever */
    if (Wb && dW) {
        CUDA_FAIL("lm_head_cross_entropy: a head given in bf16 (Wb) has no weight gradient");
        return;
    }
    int lora_grads = lora && (lora->du || lora->dB), grads = dh || dW || lora_grads;
    __nv_bfloat16 *hb =
        (__nv_bfloat16 *)(scratch + ops_lm_head_logits((size_t)N, (size_t)V, (size_t)chunk, 1));
    float *hg = scratch +
                ops_lm_head_gathered((size_t)N, (size_t)C, (size_t)V, (size_t)chunk, Wb != NULL),
          *dhg = hg + (size_t)(N < chunk ? N : chunk) * C;
    int most = N < chunk ? N : chunk;
    float *la =
        scratch + ops_lm_head_lora_at((size_t)N, (size_t)C, (size_t)V, (size_t)chunk, Wb != NULL);
    __nv_bfloat16 *Bb = lora && Wb ? (__nv_bfloat16 *)(la + 3 * (size_t)most * lora->R) : NULL;
    if (Bb) cuda_dequantize_rows_bf16((uint16_t *)Bb, lora->B, GGML_F32, 0, V, lora->R, lora->R);
    for (int n0 = 0; n0 < N; n0 += chunk) {
        int n = N - n0 < chunk ? N - n0 : chunk;
        const int32_t *idx = rows ? rows + n0 : NULL;
        float *dhc = !dh ? NULL : idx ? dhg : dh + (size_t)n0 * C;
        float *lc = idx ? losses : losses + n0;
        const int32_t *yc = idx ? labels : labels + n0;
        const float *rs = !row_scale ? NULL : idx ? row_scale : row_scale + n0;
        OpsEntropy ec = {}; /* the chunk's rows of entropy's (listed: all, as rs) */
        if (entropy && !idx)
            ec = {entropy->out ? entropy->out + n0 : NULL,
                  entropy->scale ? entropy->scale + n0 : NULL};
        const OpsEntropy *ent = !entropy ? NULL : idx ? entropy : &ec;
        HeadChunk hc_lora = {};
        if (lora) hc_lora = head_chunk(lora, la, Bb, idx, n0, n, most);
        if (Wb) {
            lm_head_chunk_bf16(lc, dhc, !idx, lora_grads, idx ? h : h + (size_t)n0 * C,
                               (const __nv_bfloat16 *)Wb, lora ? &hc_lora : NULL, yc, idx,
                               grad_scale, rs, ent, map, (__nv_bfloat16 *)scratch, hb, n, C, V);
        } else {
            const float *hc = h + (size_t)n0 * C;
            if (idx) move_rows<float, false>(hg, h, idx, n, C), hc = hg;
            if (idx && dh) CUDA_CHECK(cudaMemsetAsync(dhg, 0, sizeof(float) * n * C, 0));
            cuda_matmul_forward(scratch, hc, W, NULL, n, C, V);
            if (lora) /* logits^T[V,n] += scale B[V,R] u^T[R,n] */
                cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, V, n, lora->R, lora->scale, lora->B, lora->R, 0,
                          hc_lora.u, lora->R, 0, 1.0f, scratch, V, 0, 1);
            cuda_cross_entropy_rows(lc, grads ? scratch : NULL, scratch, yc, idx, grad_scale, rs,
                                    ent, map, n, V);
            if (grads) cuda_matmul_backward(dhc, dW, scratch, hc, W, n, C, V, 1);
        }
        if (lora_grads) head_chunk_backward(hc_lora, scratch, idx, n, V);
        if (idx && dh) move_rows<float, true>(dh, dhg, idx, n, C);
    }
}
