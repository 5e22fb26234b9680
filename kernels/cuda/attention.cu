/* attention.cu: multi-head softmax attention with a padding mask, an optional
 * causal mask and grouped KV heads (GQA), forward and backward. The products
 * QK^T, PV and their gradients are cuBLAS strided-batched GEMMs reading q/k/v in
 * place (q-shaped [B,T,NH*HS], KV-shaped [B,T,NKV*HS], head h at columns h*HS),
 * so no permute copies are needed. With G = NH/NKV query heads per KV head, one
 * call per (sequence, member j of a group) batches the NKV groups: query heads
 * j, j+G, ... at a constant stride, each with its own KV head. A warp-per-row
 * kernel does mask + softmax (and its backward). Not flash attention: att
 * [B,NH,T,T] is materialised because the op contract saves it for backward.
 *
 * Dropout on att uses index ((b*NH + h)*T + i)*T + j, the element index in att,
 * as the CPU does. Row-major X is column-major X^T, so each GEMM computes the
 * transpose of the row-major formula in its comment. */
#include "cuda_common.cuh"

enum { SM_WARPS = 8 };

/* In place on the B*NH*T rows of att [B,NH,T,T]: scores -> softmax over the
 * allowed keys j (mask[b,j] != 0, and j <= i when causal); other keys get
 * exactly 0, and a row with no allowed key is all 0. */
__global__ void softmax_forward_kernel(float *att, const int32_t *mask, int causal, int B, int NH,
                                       int T) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, (size_t)B * NH * T) {
        float *s = att + row * T;
        const int32_t *keep = mask ? mask + row / ((size_t)NH * T) * T : NULL;
        int limit = causal ? (int)(row % T) + 1 : T;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = lane; j < limit; j += 32)
            if (!keep || keep[j]) mx = fmaxf(mx, s[j]);
        mx = warp_max(mx);
        for (int j = lane; j < limit; j += 32)
            if (!keep || keep[j]) sum += expf(s[j] - mx);
        sum = warp_sum(sum);
        float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
        for (int j = lane; j < T; j += 32)
            s[j] = j < limit && (!keep || keep[j]) ? expf(s[j] - mx) * inv : 0.0f;
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

/* The shape of one attention call; ok is 0 (error noted) if it cannot be served. */
typedef struct Heads {
    int B, T, NH, NKV, HS, ok;
} Heads;

static Heads heads(int B, int T, int NH, int NKV, int HS) {
    Heads g = {B, T, NH, NKV, HS, B > 0 && T > 0 && NH > 0 && NKV > 0 && HS > 0};
    if (g.ok && NH % NKV) {
        CUDA_FAIL("attention: NH is not a multiple of NKV");
        g.ok = 0;
    }
    return g;
}

/* The GEMM operands of one batched call: sequence b, group member j. q-shaped
 * tensors advance G heads per batch, KV-shaped ones one head, att G*T*T. */
typedef struct Slice {
    size_t q, kv, att; /* element offsets of the first batch */
    long long sq, skv, satt;
    int ldq, ldkv, batch;
} Slice;

static Slice slice(const Heads *g, int b, int j) {
    int G = g->NH / g->NKV;
    long long TT = (long long)g->T * g->T;
    Slice s;
    s.q = (size_t)b * g->T * g->NH * g->HS + (size_t)j * g->HS;
    s.kv = (size_t)b * g->T * g->NKV * g->HS;
    s.att = ((size_t)b * g->NH + j) * TT;
    s.sq = (long long)G * g->HS, s.skv = g->HS, s.satt = G * TT;
    s.ldq = g->NH * g->HS, s.ldkv = g->NKV * g->HS, s.batch = g->NKV;
    return s;
}

/* scores: att_h (T x T) = alpha * x_h y_kv^T (x q-shaped, y KV-shaped) */
static void attention_scores(float *att, const float *x, const float *y, float alpha,
                             const Heads *g) {
    int T = g->T, G = g->NH / g->NKV;
    for (int b = 0; b < g->B; b++)
        for (int j = 0; j < G; j++) {
            Slice s = slice(g, b, j);
            /* row-major att_h = x_h y^T -> column-major att_h^T = y x_h^T; y's
             * column-major view is y^T (HS x T): OP_T; x_h's is x_h^T: OP_N */
            cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, T, T, g->HS, alpha, y + s.kv, s.ldkv, s.skv,
                      x + s.q, s.ldq, s.sq, 0.0f, att + s.att, T, s.satt, s.batch);
        }
}

/* out_h (T x HS, q-shaped) = alpha * P_h (T x T) @ v_kv (T x HS) + beta * out_h */
static void attention_pv(float *out, const float *P, const float *v, float alpha, float beta,
                         const Heads *g) {
    int T = g->T, G = g->NH / g->NKV;
    for (int b = 0; b < g->B; b++)
        for (int j = 0; j < G; j++) {
            Slice s = slice(g, b, j);
            /* out_h^T (HS x T) = v^T P_h^T: both are their buffers' column-major views */
            cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, g->HS, T, T, alpha, v + s.kv, s.ldkv, s.skv,
                      P + s.att, T, s.satt, beta, out + s.q, s.ldq, s.sq, s.batch);
        }
}

/* dx_kv (T x HS, KV-shaped) += alpha * G_h^T (T x T) @ y_h (T x HS, q-shaped); the
 * G query heads of a group add up, one call after another */
static void attention_gtv(float *dx, const float *Gm, const float *y, float alpha, const Heads *g) {
    int T = g->T, G = g->NH / g->NKV;
    for (int b = 0; b < g->B; b++)
        for (int j = 0; j < G; j++) {
            Slice s = slice(g, b, j);
            /* dx^T (HS x T) += y_h^T G_h: G's column-major view is G^T, so OP_T */
            cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_T, g->HS, T, T, alpha, y + s.q, s.ldq, s.sq,
                      Gm + s.att, T, s.satt, 1.0f, dx + s.kv, s.ldkv, s.skv, s.batch);
        }
}

/* q, out [B,T,NH*HS]; k, v [B,T,NKV*HS]; mask [B,T] or NULL; att [B,NH,T,T]
 * saved (before dropout) */
void cuda_attention_forward(float *out, float *att, const float *q, const float *k, const float *v,
                            const int32_t *mask, int causal, float p, uint64_t seed, float *scratch,
                            int B, int T, int NH, int NKV, int HS) {
    Heads g = heads(B, T, NH, NKV, HS);
    if (!g.ok) return;
    attention_scores(att, q, k, 1.0f / sqrtf((float)HS), &g);
    size_t rows = (size_t)B * NH * T;
    softmax_forward_kernel<<<cuda_blocks(rows, SM_WARPS), SM_WARPS * 32>>>(att, mask, causal, B, NH,
                                                                           T);
    CUDA_LAUNCHED("attention_forward (softmax)");
    if (p > 0.0f) { /* the dropout index of att[b,h,i,j] is its flat index */
        cuda_dropout_forward(scratch, att, p, seed, rows * T);
        attention_pv(out, scratch, v, 1.0f, 0.0f, &g);
        return;
    }
    attention_pv(out, att, v, 1.0f, 0.0f, &g);
}

/* dq [B,T,NH*HS], dk, dv [B,T,NKV*HS] += gradients; scratch [B,NH,T,T] */
void cuda_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                             const float *k, const float *v, const float *att, float p,
                             uint64_t seed, float *scratch, int B, int T, int NH, int NKV, int HS) {
    Heads g = heads(B, T, NH, NKV, HS);
    if (!g.ok || (!dq && !dk && !dv)) return;
    size_t rows = (size_t)B * NH * T;
    if (dv) { /* dv_kv += drop(att_h)^T dout_h */
        const float *Pd = att;
        if (p > 0.0f) {
            cuda_dropout_forward(scratch, att, p, seed, rows * T);
            Pd = scratch;
        }
        attention_gtv(dv, Pd, dout, 1.0f, &g);
    }
    if (!dq && !dk) return;
    /* d(drop(att))_h = dout_h v_kv^T: the same product shape as the scores */
    attention_scores(scratch, dout, v, 1.0f, &g);
    softmax_backward_kernel<<<cuda_blocks(rows, SM_WARPS), SM_WARPS * 32>>>(scratch, att, p, seed,
                                                                            rows, T);
    CUDA_LAUNCHED("attention_backward (softmax)");
    float alpha = 1.0f / sqrtf((float)HS);
    if (dq) attention_pv(dq, scratch, k, alpha, 1.0f, &g); /* += alpha dS_h k_kv */
    if (dk) attention_gtv(dk, scratch, q, alpha, &g);      /* += alpha dS_h^T q_h */
}

/* In place on the NH*n rows of scores [NH,n,L] (row = h*n + i, query position pos0 + i): the
 * softmax over keys j <= pos0 + i, later keys exactly 0. */
__global__ void softmax_cached_kernel(float *s, int rows, int n, int pos0, int L) {
    int lane = threadIdx.x & 31;
    WARP_ROWS(row, rows) {
        float *a = s + row * L;
        int limit = pos0 + (int)(row % n) + 1;
        float mx = -INFINITY, sum = 0.0f;
        for (int j = lane; j < limit; j += 32) mx = fmaxf(mx, a[j]);
        mx = warp_max(mx);
        for (int j = lane; j < limit; j += 32) sum += expf(a[j] - mx);
        float inv = 1.0f / warp_sum(sum);
        for (int j = lane; j < L; j += 32) a[j] = j < limit ? expf(a[j] - mx) * inv : 0.0f;
    }
}

/* Generation: q, out [n,NH*HS] at positions pos0..; k, v [L,NKV*HS], L = pos0 + n; scratch
 * [NH,n,L]. As attention_forward, one batched GEMM per member j of a group: query heads j,
 * j+G, ... each with its own KV head. */
void cuda_attention_cached(float *out, const float *q, const float *k, const float *v,
                           float *scratch, int n, int pos0, int NH, int NKV, int HS) {
    Heads g = heads(1, n, NH, NKV, HS);
    if (!g.ok || pos0 < 0) return;
    int L = pos0 + n, G = NH / NKV, ldq = NH * HS, ldkv = NKV * HS;
    long long nL = (long long)n * L;
    for (int j = 0; j < G; j++) /* s_h^T (L x n) = k_kv q_h^T */
        cuda_gemm(CUBLAS_OP_T, CUBLAS_OP_N, L, n, HS, 1.0f / sqrtf((float)HS), k, ldkv, HS,
                  q + (size_t)j * HS, ldq, (long long)G * HS, 0.0f, scratch + j * nL, L, G * nL,
                  NKV);
    softmax_cached_kernel<<<cuda_blocks((size_t)NH * n, SM_WARPS), SM_WARPS * 32>>>(scratch, NH * n,
                                                                                    n, pos0, L);
    CUDA_LAUNCHED("attention_cached (softmax)");
    for (int j = 0; j < G; j++) /* out_h^T (HS x n) = v_kv^T P_h^T */
        cuda_gemm(CUBLAS_OP_N, CUBLAS_OP_N, HS, n, L, 1.0f, v, ldkv, HS, scratch + j * nL, L,
                  G * nL, 0.0f, out + (size_t)j * HS, ldq, (long long)G * HS, NKV);
}
