/* attention.cu: multi-head softmax attention with a padding mask, forward and
 * backward. The products QK^T, PV and their gradients are cuBLAS
 * strided-batched GEMMs over the heads of one sequence, reading q/k/v in place
 * ([B,T,C] with head h at columns h*HS, leading dimension C), so no permute
 * copies are needed; a warp-per-row kernel does mask + softmax (and its
 * backward). Not flash attention: att [B,NH,T,T] is materialised because the op
 * contract saves it for backward.
 *
 * Dropout on att uses index ((b*NH + h)*T + i)*T + j, the element index in att,
 * as the CPU does. Row-major X is column-major X^T, so each GEMM computes the
 * transpose of the row-major formula in its comment. */
#include "cuda_common.cuh"

enum { SM_WARPS = 8 };

/* In place on the B*NH*T rows of att [B,NH,T,T]: scores -> softmax over the
 * keys j with mask[b,j] != 0; masked keys get exactly 0, and a row with no key
 * at all is all 0. */
__global__ void softmax_forward_kernel(float *att, const int32_t *mask, int B, int NH, int T) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, (size_t)B * NH * T) {
        float *s = att + row * T;
        const int32_t *keep = mask ? mask + row / ((size_t)NH * T) * T : NULL;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = lane; j < T; j += 32)
            if (!keep || keep[j]) mx = fmaxf(mx, s[j]);
        mx = warp_max(mx);
        for (int j = lane; j < T; j += 32)
            if (!keep || keep[j]) sum += expf(s[j] - mx);
        sum = warp_sum(sum);
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int j = lane; j < T; j += 32) s[j] = !keep || keep[j] ? expf(s[j] - mx) * inv : 0.0f;
    }
}

/* In place on g [B,NH,T,T] holding d(dropped att): g <- dS = P * (dP - sum_j P
 * dP), with dP = g * mask and P = att. */
__global__ void softmax_backward_kernel(float *g, const float *att, float p, uint64_t seed,
                                        size_t rows, int T) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, rows) {
        const float *P = att + row * T;
        float *d = g + row * T, dot = 0.0f;
        for (int j = lane; j < T; j += 32)
            dot += P[j] * d[j] * rng_dropout_scale(seed, row * T + j, p);
        dot = warp_sum(dot);
        for (int j = lane; j < T; j += 32)
            d[j] = P[j] * (d[j] * rng_dropout_scale(seed, row * T + j, p) - dot);
    }
}

/* Shapes the attention GEMMs need; 0 (error noted) if the call cannot be
 * served. */
static int attention_shape_ok(int B, int T, int C, int NH) {
    if (B <= 0 || T <= 0 || C <= 0 || NH <= 0) return 0;
    if (C % NH) {
        CUDA_FAIL("attention: C is not a multiple of NH");
        return 0;
    }
    return 1;
}

/* Per sequence b, batched over heads h (strides HS in q/k/v, T*T in att):
 * scores: att[h] (T x T) = scale * q_h k_h^T, i.e. att^T = k_h q_h^T in
 * column-major. */
static void attention_scores(float *att, const float *x, const float *y, float alpha, int B, int T,
                             int C, int NH) {
    int HS = C / NH;
    long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        size_t tok = (size_t)b * T * C;
        /* row-major att_h = x_h y_h^T -> column-major att_h^T = y_h x_h^T; y_h's
         * column-major view is y_h^T (HS x T, ld C): OP_T; x_h's is x_h^T: OP_N */
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, T, T, HS, alpha, y + tok, C, HS, x + tok, C, HS, 0.0f,
                  att + b * NH * TT, T, TT, NH);
    }
}

/* out[b,:,h] (T x HS) = alpha * P_h (T x T) @ v_h (T x HS) + beta * out */
static void attention_pv(float *out, const float *P, const float *v, float alpha, float beta, int B,
                         int T, int C, int NH) {
    int HS = C / NH;
    long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        size_t tok = (size_t)b * T * C;
        /* out_h^T (HS x T) = v_h^T P_h^T: both are their buffers' column-major
         * views */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, HS, T, T, alpha, v + tok, C, HS, P + b * NH * TT, T, TT,
                  beta, out + tok, C, HS, NH);
    }
}

/* dx[b,:,h] (T x HS) += alpha * G_h^T (T x T) @ y_h (T x HS) */
static void attention_gtv(float *dx, const float *G, const float *y, float alpha, int B, int T,
                          int C, int NH) {
    int HS = C / NH;
    long long TT = (long long)T * T;
    for (int b = 0; b < B; b++) {
        size_t tok = (size_t)b * T * C;
        /* dx_h^T (HS x T) += y_h^T G_h: G's column-major view is G^T, so OP_T */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, HS, T, T, alpha, y + tok, C, HS, G + b * NH * TT, T, TT,
                  1.0f, dx + tok, C, HS, NH);
    }
}

/* q, k, v, out [B,T,C]; mask [B,T]; att [B,NH,T,T] saved (before dropout) */
void cuda_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                            const int32_t *mask, float p, uint64_t seed, float *scratch, int B,
                            int T, int C, int NH) {
    if (!attention_shape_ok(B, T, C, NH)) return;
    int HS = C / NH;
    attention_scores(att, q, k, 1.0f / sqrtf((float)HS), B, T, C, NH);
    size_t rows = (size_t)B * NH * T;
    softmax_forward_kernel<<<cuda_blocks(rows, SM_WARPS), SM_WARPS * 32>>>(att, mask, B, NH, T);
    CUDA_LAUNCHED("attention_forward (softmax)");
    if (p > 0.0f) { /* the dropout index of att[b,h,i,j] is its flat index */
        cuda_dropout_forward(scratch, att, p, seed, rows * T);
        attention_pv(out, scratch, v, 1.0f, 0.0f, B, T, C, NH);
        return;
    }
    attention_pv(out, att, v, 1.0f, 0.0f, B, T, C, NH);
}

/* dq, dk, dv [B,T,C] += gradients; scratch [B,NH,T,T] */
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *att, float p,
                             uint64_t seed, float *scratch, int B, int T, int C, int NH) {
    if (!attention_shape_ok(B, T, C, NH) || (!dq && !dk && !dv)) return;
    int HS = C / NH;
    size_t rows = (size_t)B * NH * T;
    if (dv) { /* dv_h += drop(att_h)^T dout_h */
        const float *Pd = att;
        if (p > 0.0f) {
            cuda_dropout_forward(scratch, att, p, seed, rows * T);
            Pd = scratch;
        }
        attention_gtv(dv, Pd, dout, 1.0f, B, T, C, NH);
    }
    if (!dq && !dk) return;
    /* d(drop(att))_h = dout_h v_h^T: the same product shape as the scores */
    attention_scores(scratch, dout, v, 1.0f, B, T, C, NH);
    softmax_backward_kernel<<<cuda_blocks(rows, SM_WARPS), SM_WARPS * 32>>>(scratch, att, p, seed,
                                                                            rows, T);
    CUDA_LAUNCHED("attention_backward (softmax)");
    float alpha = 1.0f / sqrtf((float)HS);
    if (dq) attention_pv(dq, scratch, k, alpha, 1.0f, B, T, C, NH); /* += alpha dS_h k_h */
    if (dk) attention_gtv(dk, scratch, q, alpha, B, T, C, NH);      /* += alpha dS_h^T q_h */
}
