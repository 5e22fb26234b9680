/* cpu_ops.c: the CPU backend, every op of ops.h forward and backward (`ops_cpu`).
 *
 * This is the reference every CUDA kernel is tested against and the CPU trainer's engine: plain f32
 * C, GEMMs on OpenBLAS, OpenMP on the outer loops (rows, heads, channel blocks), `omp simd` on
 * inner loops. It deliberately has no intrinsics, no allocation inside an op (scratch comes from
 * the caller) and no mutable static state.
 *
 * Ops cannot fail, so they cannot report bad indices: callers validate token ids (ids < V, token
 * types < 2, T <= maxT) before embedding_forward. cross_entropy and the LM head treat a label >= V
 * like an ignored one (loss 0, gradient 0) rather than reading out of bounds. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/activation.h"
#include "loraft/grpo_token.h"
#include "loraft/ops.h"
#include "loraft/pair_loss.h"
#include "loraft/quant.h"
#include "loraft/quant_block.h" /* qb_bf16 */
#include "loraft/rng.h"
#include "loraft/safetensors.h" /* f32_to_bf16 */

/* Element-wise loops below this size run on one thread: forking costs more than it saves. */
#define CPU_PAR_MIN 32768

/* The step's scalars (set_step): XORed into every dropout seed an op is given, multiplied into
 * every loss's gradient scale. */
static OpsStep cpu_step = {0, 1.0f};

/* The slice [*lo, *hi) of n items owned by the calling thread of a parallel region. Used where
 * gradients are reduced over rows: threads split the columns and never race. */
static void thread_slice(int n, int *lo, int *hi) {
    int nth = omp_get_num_threads(), th = omp_get_thread_num();
    *lo = (int)((long long)n * th / nth);
    *hi = (int)((long long)n * (th + 1) / nth);
}

/* ---- memory: host memory, 64-byte aligned for vector loads ---- */

static void *cpu_alloc(size_t bytes) {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded < bytes) return NULL; /* overflow */
    if (rounded == 0) rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) {
    free(p);
}
static void cpu_copy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}
static int cpu_status(LfError *err) {
    (void)err; /* CPU ops run synchronously and cannot fail */
    return 0;
}

/* ---- embeddings ---- */

/* out[B,T,C] = wte[ids] + wpe[t] + wtt[types]; ids, types [B,T]; wte, or (NULL) wte_bf16
 * widened; wpe (Llama: no learned positions), types and wtt may be NULL. */
static void cpu_embedding_forward(float *out, const int32_t *ids, const int32_t *types,
                                  const int32_t *pos, const float *wte, const uint16_t *wte_bf16,
                                  const float *wpe, const float *wtt, int B, int T, int C) {
#pragma omp parallel for if ((size_t)B * T * C > CPU_PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        size_t row = (size_t)ids[bt] * C;
        float *o = out + (size_t)bt * C;
        if (wte)
            memcpy(o, wte + row, sizeof(float) * C);
        else
            for (int c = 0; c < C; c++) o[c] = qb_bf16(wte_bf16[row + c]);
        if (wpe) {
            const float *pe = wpe + (size_t)(pos ? pos[bt] : bt % T) * C;
            for (int c = 0; c < C; c++) o[c] += pe[c];
        }
        if (wtt) {
            const float *tt = wtt + (size_t)(types ? types[bt] : 0) * C;
            for (int c = 0; c < C; c++) o[c] += tt[c];
        }
    }
}

/* dwte[V,C], dwpe[maxT,C], dwtt[2,C] += dout[B,T,C] scattered back; each may be NULL; rows of
 * id pad add nothing to dwte. */
static void cpu_embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout,
                                   const int32_t *ids, const int32_t *types, int pad, int B, int T,
                                   int C) {
    if (!dwte && !dwpe && !dwtt) return;
#pragma omp parallel if ((size_t)B * T * C > CPU_PAR_MIN)
    {
        int lo, hi;
        thread_slice(C, &lo, &hi);
        for (int bt = 0; bt < B * T; bt++) {
            const float *d = dout + (size_t)bt * C;
            float *te = dwte && ids[bt] != pad ? dwte + (size_t)ids[bt] * C : NULL;
            float *pe = dwpe ? dwpe + (size_t)(bt % T) * C : NULL;
            float *tt = dwtt ? dwtt + (size_t)(types ? types[bt] : 0) * C : NULL;
            if (te)
                for (int c = lo; c < hi; c++) te[c] += d[c];
            if (pe)
                for (int c = lo; c < hi; c++) pe[c] += d[c];
            if (tt)
                for (int c = lo; c < hi; c++) tt[c] += d[c];
        }
    }
}

/* u[N,R] = AT[ids]; out[N,C] += scale * u @ B^T. */
static void cpu_embedding_lora_forward(float *out, float *u, const int32_t *ids, const float *AT,
                                       const float *B, float scale, int N, int C, int R) {
    cpu_embedding_forward(u, ids, NULL, NULL, AT, NULL, NULL, NULL, 1, N, R);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, C, R, scale, u, R, B, R, 1.0f, out, C);
}

/* du = scale * dout @ B (scratch [N,R]); dB += scale * dout^T @ u; dAT[ids] += du but at pad. */
static void cpu_embedding_lora_backward(float *dAT, float *dB, const float *dout, const float *u,
                                        const int32_t *ids, const float *B, float scale, int pad,
                                        float *scratch, int N, int C, int R) {
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, C, R, N, scale, dout, C, u, R, 1.0f,
                    dB, R);
    if (!dAT) return;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, C, scale, dout, C, B, R, 0.0f,
                scratch, R);
    cpu_embedding_backward(dAT, NULL, NULL, scratch, ids, NULL, pad, 1, N, R);
}

/* ---- bf16 copies: written for a bf16 GEMM; saved inputs read as f32, or (f32 pointer NULL)
 * from their bf16 copies ---- */

/* dst[n] = bf16(src): an output that a bf16 GEMM reads next */
static void round_bf16(uint16_t *dst, const float *src, size_t n) {
    if (!dst) return;
#pragma omp parallel for if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] = f32_to_bf16(src[i]);
}

/* A norm's xhat at i of row n: (x - mean) * rstd from x, or its bf16 copy xh. */
static inline float xhat_at(const float *x, const uint16_t *xh, size_t i, float m, float s) {
    return x ? (x[i] - m) * s : qb_bf16(xh[i]);
}

/* xh[0..C) = bf16((x - m) * s) of one row (xh NULL: nothing). */
static void save_xhat(uint16_t *xh, const float *x, float m, float s, int C) {
    if (xh)
        for (int c = 0; c < C; c++) xh[c] = f32_to_bf16((x[c] - m) * s);
}

/* ---- layer norm ---- */

/* One row of layer norm (mean != NULL) or RMS norm: o = (x - m) * s * weight (+ bias), with
 * *mean (not NULL) = m and *rstd = s; xh (not NULL) = bf16((x - m) * s). o == x allowed. Two-pass
 * statistics in float, biased variance (like torch). */
static void norm_row(float *o, float *mean, float *rstd, uint16_t *xh, const float *x,
                     const float *weight, const float *bias, float eps, int C) {
    float m = 0.0f, var = 0.0f;
    if (mean) {
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < C; c++) sum += x[c];
        m = sum / (float)C;
    }
#pragma omp simd reduction(+ : var)
    for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);
    float s = 1.0f / sqrtf(var / (float)C + eps);
    save_xhat(xh, x, m, s, C); /* before o, which may be x */
    for (int c = 0; c < C; c++) o[c] = (x[c] - m) * s * weight[c] + (bias ? bias[c] : 0.0f);
    if (mean) *mean = m;
    *rstd = s;
}

/* out[N,C] = (inp - mean) * rstd * weight + bias; mean[N], rstd[N] (and xhat's bf16 copy) saved. */
static void cpu_layernorm_forward(float *out, float *mean, float *rstd, uint16_t *xh,
                                  const float *inp, const float *weight, const float *bias,
                                  float eps, int N, int C) {
#pragma omp parallel for if ((size_t)N * C > CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        size_t row = (size_t)n * C;
        norm_row(out + row, mean + n, rstd + n, xh ? xh + row : NULL, inp + row, weight, bias, eps,
                 C);
    }
}

/* With xhat = (inp - mean) * rstd (or xh's) and g = dout * weight, per row of [N,C]:
 * dinp (+)= rstd * (g - mean_c(g) - xhat * mean_c(g * xhat)) (acc 0: =); dweight[C] += sum_n dout *
 * xhat; dbias[C] += sum_n dout. Each may be NULL. Also RMS norm's (mean NULL: no mean_c(g) term).
 */
static void cpu_layernorm_backward(float *dinp, uint16_t *dinp_bf16, float *dweight, float *dbias,
                                   const float *dout, const float *inp, const uint16_t *xh,
                                   const float *weight, const float *mean, const float *rstd, int N,
                                   int C, int acc) {
    int centred = mean != NULL;
    if (dinp || dinp_bf16) {
#pragma omp parallel for if ((size_t)N * C > CPU_PAR_MIN)
        for (int n = 0; n < N; n++) {
            size_t row = (size_t)n * C;
            const float *x = inp ? inp + row : NULL, *d = dout + row;
            const uint16_t *h = inp ? NULL : xh + row;
            float m = inp && centred ? mean[n] : 0.0f, s = rstd[n], g_mean = 0.0f, gx_mean = 0.0f;
#pragma omp simd reduction(+ : g_mean, gx_mean)
            for (int c = 0; c < C; c++) {
                float g = d[c] * weight[c];
                g_mean += g;
                gx_mean += g * xhat_at(x, h, c, m, s);
            }
            g_mean = centred ? g_mean / (float)C : 0.0f;
            gx_mean /= (float)C;
            float *dx = dinp ? dinp + row : NULL;
            uint16_t *dxb = dinp_bf16 ? dinp_bf16 + row : NULL;
            for (int c = 0; c < C; c++) {
                float g = (d[c] * weight[c] - g_mean - xhat_at(x, h, c, m, s) * gx_mean) * s;
                if (dx) g = dx[c] = acc ? dx[c] + g : g;
                if (dxb) dxb[c] = f32_to_bf16(g);
            }
        }
    }
    if (!dweight && !dbias) return;
#pragma omp parallel if ((size_t)N * C > CPU_PAR_MIN)
    {
        int lo, hi;
        thread_slice(C, &lo, &hi);
        for (int n = 0; n < N; n++) {
            size_t row = (size_t)n * C;
            const float *x = inp ? inp + row : NULL, *d = dout + row;
            const uint16_t *h = inp ? NULL : xh + row;
            float m = inp && centred ? mean[n] : 0.0f, s = rstd[n];
            if (dweight)
                for (int c = lo; c < hi; c++) dweight[c] += d[c] * xhat_at(x, h, c, m, s);
            if (dbias)
                for (int c = lo; c < hi; c++) dbias[c] += d[c];
        }
    }
}

/* ---- RMS norm ---- */

/* x = drop(a) + b into sum (or out), or x = a (b NULL), then its norm a row at a time, and
 * out_bf16 (not NULL) = bf16(out): RMS norm when mean is NULL, out = x * rstd * weight with
 * rstd[N] = 1 / sqrt(mean(x^2) + eps) saved; float sums, as HF's LlamaRMSNorm computes in
 * float32. */
static void cpu_residual_norm_forward(float *out, uint16_t *out_bf16, int ldb, float *sum,
                                      float *mean, float *rstd, uint16_t *xh, const float *a,
                                      const float *b, float p, uint64_t seed, const float *weight,
                                      const float *bias, float eps, int N, int C) {
    seed ^= cpu_step.seed;
#pragma omp parallel for if ((size_t)N * C > CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        size_t row = (size_t)n * C;
        float own[out ? 1 : C]; /* the row's output where out is NULL */
        float *y = out ? out + row : own, *added = sum ? sum + row : y;
        for (int c = 0; c < C && b; c++)
            added[c] = a[row + c] * rng_dropout_scale(seed, row + c, p) + b[row + c];
        const float *x = b ? added : a + row;
        norm_row(y, mean ? mean + n : NULL, rstd + n, xh ? xh + row : NULL, x, weight, bias, eps,
                 C);
        for (int c = 0; c < C && out_bf16; c++) out_bf16[(size_t)n * ldb + c] = f32_to_bf16(y[c]);
    }
}

/* Each head of x's N rows (ld apart) normalised in place, copied first into raw [N*H, HS]. */
static void cpu_head_norm_forward(float *x, int ld, float *raw, float *rstd, const float *weight,
                                  float eps, int N, int H, int HS) {
#pragma omp parallel for if ((size_t)N * H * HS > CPU_PAR_MIN)
    for (int r = 0; r < N * H; r++) {
        float *head = x + (size_t)(r / H) * ld + (size_t)(r % H) * HS;
        memcpy(raw + (size_t)r * HS, head, HS * sizeof *head);
        norm_row(head, NULL, rstd + r, NULL, raw + (size_t)r * HS, weight, NULL, eps, HS);
    }
}

/* dinp[N,C] (+)= rstd * (g - xhat * mean_c(g * xhat)) (acc 0: =), g = dout * weight, xhat = inp *
 * rstd (or xh's); dweight[C] += sum_n dout * xhat. Either may be NULL. */
static void cpu_rmsnorm_backward(float *dinp, uint16_t *dinp_bf16, float *dweight,
                                 const float *dout, const float *inp, const uint16_t *xh,
                                 const float *weight, const float *rstd, int N, int C, int acc) {
    cpu_layernorm_backward(dinp, dinp_bf16, dweight, NULL, dout, inp, xh, weight, NULL, rstd, N, C,
                           acc);
}

/* ---- rotary position embedding ---- */

/* Rotates every head of x [B,T,NH*HS] (rows ld apart) in place by its position's angles; dir =
 * -1 applies the transposed rotation (backward). The angles follow HF's: angle = position *
 * inv_freq[i] in float, r's half frequencies (rope_freqs_init), cos and sin times r->scale; pair
 * i is (i, i + half), and a head's dims from 2 half on (partial rotary) pass through. */
static void rope_apply(float *x, int ld, const int32_t *pos, const RopeFreqs *r, int B, int T,
                       int NH, int HS, float dir) {
    int half = r->half;
#pragma omp parallel for if ((size_t)B * T * NH * HS > CPU_PAR_MIN)
    for (int bt = 0; bt < B * T; bt++) {
        float cs[half], sn[half];
        float p = (float)(pos ? pos[bt] : bt % T);
        for (int i = 0; i < half; i++) {
            float angle = p * r->inv_freq[i];
            cs[i] = cosf(angle) * r->scale;
            sn[i] = dir * (sinf(angle) * r->scale);
        }
        for (int h = 0; h < NH; h++) {
            float *a = x + (size_t)bt * ld + (size_t)h * HS, *b = a + half;
            for (int i = 0; i < half; i++) {
                float u = a[i], v = b[i];
                a[i] = u * cs[i] - v * sn[i];
                b[i] = v * cs[i] + u * sn[i];
            }
        }
    }
}

/* rope_apply on q [B,T,NH heads] and k [B,T,NKV heads] (rows ldq and ldk apart), each may be
 * NULL; r NULL or without frequencies: nothing. */
static void rope_qk(float *q, int ldq, float *k, int ldk, const int32_t *pos, const RopeFreqs *r,
                    int B, int T, int NH, int NKV, int HS, float dir) {
    if (!r || !r->half) return;
    if (q) rope_apply(q, ldq, pos, r, B, T, NH, HS, dir);
    if (k) rope_apply(k, ldk, pos, r, B, T, NKV, HS, dir);
}

/* ---- dense layer ---- */

/* out[N,OC] = inp[N,C] @ weight[OC,C]^T + bias[OC] (bias may be NULL), out's rows ldo apart. */
static void dense_forward(float *out, int ldo, const float *inp, const float *weight,
                          const float *bias, int N, int C, int OC) {
    if (bias) {
#pragma omp parallel for if ((size_t)N * OC > CPU_PAR_MIN)
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * ldo, bias, sizeof(float) * OC);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, weight, C,
                bias ? 1.0f : 0.0f, out, ldo);
}

static void cpu_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                               int N, int C, int OC) {
    dense_forward(out, OC, inp, weight, bias, N, C, OC);
}

/* dinp[N,C] += dout[N,OC] @ weight[OC,C]; dweight[OC,C] += dout^T @ inp[N,C];
 * dbias[OC] += sum_n dout. Each may be NULL, and is then not computed at all. */
/* dout[i], or its bf16 copy's */
static inline float grad_at(const float *dout, const uint16_t *dout_bf16, size_t i) {
    return dout ? dout[i] : qb_bf16(dout_bf16[i]);
}

/* dbias[OC] += sum_n dout[n,:] (or its bf16 values), each thread its own columns, in row order. */
static void cpu_bias_backward(float *dbias, const float *dout, const uint16_t *dout_bf16, int ld,
                              float *scratch, int N, int OC) {
    (void)scratch;
#pragma omp parallel if ((size_t)N * OC > CPU_PAR_MIN)
    {
        int lo, hi;
        thread_slice(OC, &lo, &hi);
        for (int n = 0; n < N; n++) {
            size_t row = (size_t)n * ld;
            for (int o = lo; o < hi; o++) dbias[o] += grad_at(dout, dout_bf16, row + o);
        }
    }
}

static void cpu_matmul_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                                const float *weight, int N, int C, int OC, int acc) {
    if (dinp)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, weight, C,
                    acc ? 1.0f : 0.0f, dinp, C);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                    dweight, C);
}

/* out[rows,cols] = rows row0.. of a packed [*, cols] matrix of ggml type `type`, row by row in
 * parallel (quant.c's decoders: the f32 the GGUF reader gives at load). */
static void cpu_dequantize_rows(float *out, const void *packed, int type, int row0, int rows,
                                int cols) {
    size_t row_bytes = (size_t)cols / quant_block_elems(type) * quant_block_bytes(type);
    const uint8_t *src = (const uint8_t *)packed + (size_t)row0 * row_bytes;
#pragma omp parallel for if ((size_t)rows * cols > CPU_PAR_MIN)
    for (int r = 0; r < rows; r++)
        quant_dequantize(type, src + (size_t)r * row_bytes, out + (size_t)r * cols, cols);
}

/* ---- frozen weights in bf16: the reference of the GPU's tensor-core GEMMs ---- */

/* Rows row0.. of a packed matrix as bf16, ld apart: chunks of 256 values (a whole number of
 * blocks of every type, as cols is) decoded by quant.c and rounded to nearest even. */
static void cpu_dequantize_rows_bf16(uint16_t *out, const void *packed, int type, int row0,
                                     int rows, int cols, int ld) {
    size_t be = (size_t)quant_block_elems(type), bb = (size_t)quant_block_bytes(type);
    size_t row_bytes = (size_t)cols / be * bb;
    const uint8_t *src = (const uint8_t *)packed + (size_t)row0 * row_bytes;
#pragma omp parallel for if ((size_t)rows * cols > CPU_PAR_MIN)
    for (int r = 0; r < rows; r++) {
        float y[256];
        for (int c = 0; c < cols; c += 256) {
            int n = cols - c < 256 ? cols - c : 256;
            quant_dequantize(type, src + (size_t)r * row_bytes + (size_t)c / be * bb, y, n);
            for (int j = 0; j < n; j++) out[(size_t)r * ld + c + j] = f32_to_bf16(y[j]);
        }
    }
}

static void cpu_round_bf16_many(const OpsBf16Copy *copies, int n) {
    for (int i = 0; i < n; i++) {
        const OpsBf16Copy *c = &copies[i];
        for (size_t r = 0; r < (size_t)c->rows; r++)
            for (size_t k = 0; k < (size_t)c->cols; k++)
                c->dst[r * c->ld + k] = f32_to_bf16(c->src[r * c->cols + k]);
    }
}

/* out[rows,cols] = the bf16 h, rows ld apart, as f32 */
static void widen_bf16(float *out, const uint16_t *h, size_t rows, size_t cols, size_t ld) {
#pragma omp parallel for if (rows * cols > CPU_PAR_MIN)
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) out[r * cols + c] = qb_bf16(h[r * ld + c]);
}

/* out[r * ld + c] = bf16(y[r * cols + c]): a bf16 GEMM output's f32 sums, rounded once */
static void round_rows_bf16(uint16_t *out, int ld, const float *y, int rows, int cols) {
#pragma omp parallel for if ((size_t)rows * cols > CPU_PAR_MIN)
    for (size_t r = 0; r < (size_t)rows; r++)
        for (size_t c = 0; c < (size_t)cols; c++) out[r * ld + c] = f32_to_bf16(y[r * cols + c]);
}

/* scratch: the widened weight [OC,C], the widened input [N,C], then a bf16 output's f32 sums */
static void cpu_matmul_forward_bf16(float *out, uint16_t *out_bf16, int ldo, const uint16_t *inp,
                                    int ldi, const uint16_t *weight, int ldw, const float *bias,
                                    float *scratch, int N, int C, int OC) {
    float *w = scratch, *x = scratch + (size_t)OC * C;
    widen_bf16(w, weight, OC, C, ldw);
    widen_bf16(x, inp, N, C, ldi);
    if (out) return dense_forward(out, ldo, x, w, bias, N, C, OC);
    float *y = x + (size_t)N * (C > OC ? C : OC);
    dense_forward(y, OC, x, w, bias, N, C, OC);
    round_rows_bf16(out_bf16, ldo, y, N, OC);
}

/* the weight and the activation ([N, C] forward, dd backward) widened to f32, and a bf16
 * output's sums */
static size_t cpu_matmul_bf16_scratch(int N, int C, int OC) {
    return (size_t)OC * C + 2 * (size_t)N * (C > OC ? C : OC);
}

/* scratch: the widened weight [K,C], the widened dd [N,K], then a bf16 dinp's f32 sums */
static void cpu_matmul_backward_bf16(float *dinp, uint16_t *dinp_bf16, const uint16_t *dd, int ldd,
                                     const uint16_t *weight, int ldw, float *scratch, int N, int C,
                                     int K, int acc) {
    float *w = scratch, *d = scratch + (size_t)K * C;
    widen_bf16(w, weight, K, C, ldw);
    widen_bf16(d, dd, N, K, ldd);
    if (dinp) return cpu_matmul_backward(dinp, NULL, d, NULL, w, N, C, K, acc);
    float *y = d + (size_t)N * (C > K ? C : K);
    cpu_matmul_backward(y, NULL, d, NULL, w, N, C, K, OPS_SET);
    round_rows_bf16(dinp_bf16, C, y, N, C);
}

/* The CPU computes f32 only. */
static void cpu_set_precision(Precision p) {
    (void)p;
}

static Precision cpu_best_precision(void) {
    return PRECISION_FP32;
}

static void cpu_set_step(const OpsStep *s) {
    cpu_step = *s;
}

static int cpu_set_attention(AttentionImpl a, LfError *err) {
    if (a == ATTENTION_LORAFT) return 0;
    return lf_fail(err, "model.attention cudnn: cuDNN runs on the cuda device only (the CPU has "
                        "loraft's attention)");
}

/* ---- element-wise (dropout first) ---- */

/* out[n] = inp * rng_dropout_scale(seed, i, p); out == inp allowed. */
static void cpu_dropout_forward(float *out, const float *inp, float p, uint64_t seed, size_t n) {
    seed ^= cpu_step.seed;
#pragma omp parallel for if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = inp[i] * rng_dropout_scale(seed, i, p);
}

static void cpu_uniform_noise(float *x, float bound, uint64_t seed, size_t n) {
    seed ^= cpu_step.seed;
#pragma omp parallel for if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] += bound * rng_symmetric(seed, i);
}

/* dinp[n] (+)= dout * rng_dropout_scale(seed, i, p) (acc 0: =), and dinp_bf16 = bf16(dinp)
 * (dinp NULL: that alone, acc OPS_SET) */
static void cpu_dropout_backward(float *dinp, uint16_t *dinp_bf16, const float *dout, float p,
                                 uint64_t seed, size_t n, int acc) {
    seed ^= cpu_step.seed;
#pragma omp parallel for if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = dout[i] * rng_dropout_scale(seed, i, p);
        if (dinp) g = dinp[i] = acc ? dinp[i] + g : g;
        if (dinp_bf16) dinp_bf16[i] = f32_to_bf16(g);
    }
}

/* ---- LoRA branch ---- */

/* Elements k0 .. k0+n-1 of a row whose LoRA dropout key is key (x and o point at element k0):
 * o = drop(x), or (rest) what the dropout removed, x - drop(x); with add o += that. */
static inline void dropout_span(float *o, const float *x, uint32_t key, float p, int k0, int n,
                                int add, int rest) {
#pragma omp simd
    for (int i = 0; i < n; i++) {
        int k = k0 + i;
        float d = x[i] * rng_row_scale(rng_row_pair(key, (uint32_t)k >> 1), k & 1, p);
        float v = rest ? x[i] - d : d;
        o[i] = add ? o[i] + v : v;
    }
}

/* LoRA's dropout of x [N,C] (ops.h): out = x * rng_row_dropout(seed, n, k, p), or with add
 * out += that; each row's key made once. */
static void lora_dropout(float *out, const float *x, float p, uint64_t seed, int N, int C,
                         int add) {
#pragma omp parallel for if ((size_t)N * C > CPU_PAR_MIN)
    for (int n = 0; n < N; n++)
        dropout_span(out + (size_t)n * C, x + (size_t)n * C, rng_row_key(seed, (uint64_t)n), p, 0,
                     C, add, 0);
}

/* out[N,OC] += scale * u @ B^T (out not NULL), u[N,R] = drop(inp[N,C]) @ A[R,C]^T; B [OC,R];
 * scratch: N*C floats (the dropped input; unused when p == 0). */
static void cpu_lora_forward(float *out, float *u, const float *inp, const float *A, const float *B,
                             float scale, float p, uint64_t seed, float *scratch, int N, int C,
                             int OC, int R) {
    seed ^= cpu_step.seed;
    const float *x = inp;
    if (p > 0.0f) {
        lora_dropout(scratch, inp, p, seed, N, C, 0);
        x = scratch;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, x, C, A, C, 0.0f, u, R);
    if (out)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, R, scale, u, R, B, R, 1.0f, out,
                    OC);
}

/* With du[N,R] = scale * dout[N,OC] @ B[OC,R] and x = drop(inp): dB[OC,R] += scale * dout^T @ u;
 * dA[R,C] += du^T @ x; dinp[N,C] += drop'(du @ A). Any gradient may be NULL.
 * scratch: N*C (x, then du @ A) + N*R (du) floats. */
static void cpu_lora_backward(float *dinp, float *dA, float *dB, const float *dout,
                              const float *inp, const float *u, const float *A, const float *B,
                              float scale, float p, uint64_t seed, float *scratch, int N, int C,
                              int OC, int R) {
    seed ^= cpu_step.seed;
    if (dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, R, N, scale, dout, OC, u, R, 1.0f,
                    dB, R);
    if (!dA && !dinp) return;
    float *x_drop = scratch, *du_room = scratch + (size_t)N * C;
    const float *du = B ? du_room : dout; /* B NULL: dout is du */
    if (B)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, OC, scale, dout, OC, B, R,
                    0.0f, du_room, R);
    if (dA) {
        const float *x = inp;
        if (p > 0.0f) {
            lora_dropout(x_drop, inp, p, seed, N, C, 0);
            x = x_drop;
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, C, N, 1.0f, du, R, x, C, 1.0f, dA,
                    C);
    }
    if (!dinp) return;
    if (p <= 0.0f) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, du, R, A, C, 1.0f,
                    dinp, C);
        return;
    }
    /* Dropout sits between inp and A: route du @ A through its mask. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, R, 1.0f, du, R, A, C, 0.0f, x_drop,
                C);
    lora_dropout(dinp, x_drop, p, seed, N, C, 1);
}

/* The bf16 value of x as f32 */
static float bf16_round(float x) {
    return qb_bf16(f32_to_bf16(x));
}

/* One linear of cpu_lora_backward_bf16's group: du = scale * dout @ B by sgemm, its columns of
 * dd (d: its dout's first), then the bf16 products in loops: the operands of the GPU's bf16
 * GEMMs, summed in f32 (this reference runs in the tests only). Without LoRA: its dout's
 * columns alone. */
static void lora_backward_one(uint16_t *d, int ldd, const OpsLoraBackward *l, const float *inp,
                              const uint16_t *xb, int ldx, float scale, float p, int N, int C,
                              int R) {
    uint64_t seed = l->seed ^ cpu_step.seed;
    int OC = l->OC, du_col = l->du_col - l->dout_col, ranks = l->B ? R : 0;
    if (l->B)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, R, OC, scale, l->dout, OC, l->B,
                    R, 0.0f, l->du, R);
#pragma omp parallel for if ((size_t)N * (OC + R) > CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        uint16_t *row = d + (size_t)n * ldd;
        for (int k = 0; k < OC; k++) row[k] = f32_to_bf16(l->dout[(size_t)n * OC + k]);
        for (int r = 0; r < ranks; r++) row[du_col + r] = f32_to_bf16(l->du[(size_t)n * R + r]);
    }
#pragma omp parallel for if (l->dB && (size_t)N * OC * R > CPU_PAR_MIN)
    for (int o = 0; o < (l->dB ? OC : 0); o++)
        for (int r = 0; r < R; r++) {
            float s = 0.0f;
            for (int n = 0; n < N; n++)
                s += qb_bf16(d[(size_t)n * ldd + o]) * bf16_round(l->u[(size_t)n * R + r]);
            l->dB[(size_t)o * R + r] += scale * s;
        }
#pragma omp parallel for if (l->dA && (size_t)N * C * R > CPU_PAR_MIN)
    for (int c = 0; c < (l->dA ? C : 0); c++)
        for (int r = 0; r < R; r++) {
            float s = 0.0f;
            for (int n = 0; n < N; n++) {
                float x = inp ? inp[(size_t)n * C + c] : qb_bf16(xb[(size_t)n * ldx + c]);
                s += qb_bf16(d[(size_t)n * ldd + du_col + r]) *
                     bf16_round(x * rng_row_dropout(seed, (uint64_t)n, (uint32_t)c, p));
            }
            l->dA[(size_t)r * C + c] += s;
        }
}

/* The group's linears one after the other. No scratch. */
static void cpu_lora_backward_bf16(uint16_t *dd, int ldd, const OpsLoraBackward *lin, int n,
                                   const float *inp, const uint16_t *xb, int ldx, float scale,
                                   float p, float *scratch, int N, int C, int R) {
    (void)scratch;
    for (int j = 0; j < n; j++)
        lora_backward_one(dd + lin[j].dout_col, ldd, &lin[j], inp, xb, ldx, scale, p, N, C, R);
}

/* Each linear's term summed over its ranks in f32, masked, then added to the others' in order. */
static void cpu_lora_dinp_bf16(float *dinp, uint16_t *dinp_bf16, const float *const *du,
                               const float *const *A, const uint64_t *seeds, int n, float p, int N,
                               int C, int R, int acc) {
#pragma omp parallel for if ((size_t)N * C * R * n > CPU_PAR_MIN)
    for (int t = 0; t < N; t++)
        for (int c = 0; c < C; c++) {
            size_t at = (size_t)t * C + c;
            float total = !acc ? 0.0f : dinp ? dinp[at] : qb_bf16(dinp_bf16[at]);
            for (int j = 0; j < n; j++) {
                float s = 0.0f;
                for (int r = 0; r < R; r++) s += du[j][(size_t)t * R + r] * A[j][(size_t)r * C + c];
                uint64_t seed = seeds[j] ^ cpu_step.seed;
                total += s * rng_row_dropout(seed, (uint64_t)t, (uint32_t)c, p);
            }
            if (dinp)
                dinp[at] = total;
            else
                dinp_bf16[at] = f32_to_bf16(total);
        }
}

/* ---- DoRA ---- */

/* norm[j] = || W[j] + scale * B[j] @ A ||: each term of B[j] @ A summed in f32 in k order, the
 * squares in double (ops.h). */
static void cpu_dora_norm(float *norm, const float *W, int ldw, const float *A, const float *B,
                          float scale, int rows, int C, int R) {
#pragma omp parallel for if ((size_t)rows * C * R > CPU_PAR_MIN)
    for (int j = 0; j < rows; j++) {
        const float *w = W + (size_t)j * ldw, *b = B + (size_t)j * R;
        double sum = 0;
        for (int i = 0; i < C; i++) {
            float t = 0.0f;
            for (int k = 0; k < R; k++) t += b[k] * A[(size_t)k * C + i];
            float v = w[i] + scale * t;
            sum += (double)v * v;
        }
        norm[j] = (float)sqrt(sum);
    }
}

/* pre = y - bias; out = mag / norm * pre + bias (out NULL: pre alone). */
static void cpu_dora_forward(float *out, float *pre, const float *y, int ldy, const float *mag,
                             const float *norm, const float *bias, const float *rest, int N,
                             int OC) {
#pragma omp parallel for if ((size_t)N * OC > CPU_PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int j = 0; j < OC; j++) {
            float b = bias ? bias[j] : 0.0f, r = rest ? rest[(size_t)n * OC + j] : 0.0f;
            float v = y[(size_t)n * ldy + j] - b - r;
            pre[(size_t)n * OC + j] = v;
            if (out) out[(size_t)n * ldy + j] = mag[j] / norm[j] * v + b + r;
        }
}

/* gs = mag / norm * g, grest = g - gs; dmag += sum_n g * pre / norm (in double, each column's
 * in row order). A thread takes blocks of DORA_COLS columns and walks their rows in order, so
 * that it reads each row's piece whole (a column at a time strides a row apart: 9 % of a MiniLM
 * DoRA step went there). */
enum { DORA_COLS = 64 };
static void cpu_dora_backward(float *gs, float *grest, float *dmag, const float *g, int ldg,
                              const float *pre, const float *mag, const float *norm, float *scratch,
                              int N, int OC) {
    (void)scratch;
#pragma omp parallel for if ((size_t)N * OC > CPU_PAR_MIN)
    for (int j0 = 0; j0 < OC; j0 += DORA_COLS) {
        int w = OC - j0 < DORA_COLS ? OC - j0 : DORA_COLS;
        float c[DORA_COLS];
        double dm[DORA_COLS] = {0};
        for (int j = 0; j < w; j++) c[j] = mag[j0 + j] / norm[j0 + j];
        for (int n = 0; n < N; n++) {
            const float *gn = g + (size_t)n * ldg + j0, *pn = pre + (size_t)n * OC + j0;
            float *sn = gs + (size_t)n * OC + j0, *rn = grest ? grest + (size_t)n * OC + j0 : NULL;
            for (int j = 0; j < w; j++) {
                float d = gn[j], v = c[j] * d;
                sn[j] = v;
                if (rn) rn[j] = d - v;
                dm[j] += (double)d * pn[j];
            }
        }
        for (int j = 0; j < w; j++) dmag[j0 + j] += (float)(dm[j] / norm[j0 + j]);
    }
}

/* out (+)= x - drop(x), lora_dropout's mask; x f32 or (NULL) xb's bf16 values, rows ldx apart,
 * widened a span at a time */
static void cpu_lora_dropout_rest(float *out, const float *x, const uint16_t *xb, int ldx, float p,
                                  uint64_t seed, int N, int C, int acc) {
    enum { SPAN = 256 };
    seed ^= cpu_step.seed;
#pragma omp parallel for if ((size_t)N * C > CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        uint32_t key = rng_row_key(seed, (uint64_t)n);
        float *o = out + (size_t)n * C, wide[SPAN];
        for (int k0 = 0; k0 < C; k0 += SPAN) {
            int w = C - k0 < SPAN ? C - k0 : SPAN;
            for (int i = 0; x == NULL && i < w; i++)
                wide[i] = qb_bf16(xb[(size_t)n * ldx + k0 + i]);
            dropout_span(o + k0, x ? x + (size_t)n * C + k0 : wide, key, p, k0, w, acc, 1);
        }
    }
}

/* Per linear j: u[j] = drop_j(x) @ A[j]^T as lora_forward computes it, into the copy xb =
 * [bf16(x) | bf16(scale * u[0]) | ..], x = inp, or (inp NULL) the copy's bf16 values.
 * scratch: x (inp NULL) dropped, [N,C]. */
static void cpu_lora_down_bf16(uint16_t *xb, float *const *u, const float *const *A,
                               const uint64_t *seeds, int n, const float *inp, float scale, float p,
                               float *scratch, int N, int C, int R) {
    size_t ld = (size_t)C + (size_t)n * R;
#pragma omp parallel for if (inp && (size_t)N * C > CPU_PAR_MIN)
    for (int r = 0; r < (inp ? N : 0); r++)
        for (int c = 0; c < C; c++) xb[r * ld + c] = f32_to_bf16(inp[(size_t)r * C + c]);
    for (int j = 0; j < n; j++) {
        const float *x = inp;
        if (!inp) { /* widened again for each linear's mask */
#pragma omp parallel for if ((size_t)N * C > CPU_PAR_MIN)
            for (int r = 0; r < N; r++)
                for (int c = 0; c < C; c++) scratch[(size_t)r * C + c] = qb_bf16(xb[r * ld + c]);
            x = scratch;
        }
        if (p > 0.0f) {
            lora_dropout(scratch, x, p, seeds[j] ^ cpu_step.seed, N, C, 0);
            x = scratch;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, R, C, 1.0f, x, C, A[j], C, 0.0f,
                    u[j], R);
        uint16_t *us = xb + C + (size_t)j * R;
#pragma omp parallel for if ((size_t)N * R > CPU_PAR_MIN)
        for (int r = 0; r < N; r++)
            for (int k = 0; k < R; k++)
                us[r * ld + k] = f32_to_bf16(scale * u[j][(size_t)r * R + k]);
    }
}

/* ---- attention ---- */

/* y[n] += a * x[n] */
static void axpy_row(float *y, const float *x, float a, int n) {
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* In place over one row of scores a[n]: the softmax over the keys first <= j < limit with
 * mask[j] != 0 (mask NULL: all), the other keys exactly 0; a row with no allowed key
 * becomes all zeros. Returns the row's log-sum-exp (+INFINITY when no key is allowed). */
static float softmax_row(float *a, const int32_t *mask, int first, int limit, int n) {
    float maxv = -INFINITY, sum = 0.0f;
    for (int j = first; j < limit; j++)
        if ((!mask || mask[j]) && a[j] > maxv) maxv = a[j];
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        int keep = j >= first && j < limit && (!mask || mask[j]);
        a[j] = keep ? exp_approx(a[j] - maxv) : 0.0f; /* none kept: maxv unused */
        sum += a[j];
    }
    if (sum == 0.0f) return INFINITY;
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) a[j] *= inv;
    return maxv + logf(sum);
}

/* Attention runs in units of one KV head of one sequence, (b, kvh): its G = NH/NKV query
 * heads one after another, each in blocks of up to ATT_ROWS query rows, so the unit is the
 * only writer of its dk, dv and every result is independent of the thread count. Units run
 * on parallel threads (OpenBLAS is single-threaded inside them; a lone unit gets threaded
 * GEMMs instead), each thread in its own slot of scratch: the scores of one row block and
 * their gradient, 2 * min(T, ATT_ROWS) * T floats. At most ATT_SLOTS threads run units. */
enum { ATT_ROWS = 64, ATT_SLOTS = 64 };

static int att_slots(int B, int NKV) {
    return B * NKV < ATT_SLOTS ? B * NKV : ATT_SLOTS;
}
static size_t att_slot_floats(int T) {
    return 2 * (size_t)(T < ATT_ROWS ? T : ATT_ROWS) * T;
}
static size_t cpu_attention_scratch(int B, int T, int NH, int NKV, int HS) {
    (void)NH, (void)HS;
    return (size_t)att_slots(B, NKV) * att_slot_floats(T);
}
static size_t cpu_attention_saved(Precision p, int B, int T, int NH, int NKV, int HS,
                                  int out_apart) {
    (void)p, (void)B, (void)T, (void)NH, (void)NKV, (void)HS, (void)out_apart;
    return 0;
}
static uint16_t *cpu_attention_saved_out(Precision p, float *saved) {
    (void)p, (void)saved;
    return NULL; /* saves nothing: out is always written */
}

/* One attention call: shapes, masks and tensors (the gradients NULL in forward; out and lse
 * only read in backward); q's and dq's rows ldq apart, k's, v's, dk's and dv's ldkv (NH*HS and
 * NKV*HS, or one GEMM's outputs side by side). */
typedef struct AttArgs {
    int B, T, NH, NKV, HS, causal, window, ldq, ldkv;
    const int32_t *mask;
    AttnScore score;
    float p;
    uint64_t seed;
    const float *q, *k, *v, *dout;
    float *out, *lse, *dq, *dk, *dv;
} AttArgs;

/* The first key query i may see (0, or the start of its window). */
static int first_key(const AttArgs *a, int i) {
    return a->window && i >= a->window ? i - a->window + 1 : 0;
}

/* Query rows i0 .. i0+rows-1 of head h in sequence b, and the keys k0 .. k0+keys-1 they may see
 * (causal: none past the block's last row; with a window none before its first row's). q:
 * offset of row i0 of head h in out and dout [B,T,NH*HS]; qin: the same in q and dq (rows ldq
 * apart), kvin: of row k0 of its KV head in k, v, dk and dv (rows ldkv apart); lse: of row i0 in
 * lse [B,NH,T]; mask: from key k0. */
typedef struct RowBlock {
    int i0, rows, k0, keys;
    size_t q, qin, kvin, lse;
    const int32_t *mask; /* sequence b's, or NULL */
} RowBlock;

static RowBlock row_block(const AttArgs *a, int b, int h, int i0) {
    int T = a->T, HS = a->HS, rows = T - i0 < ATT_ROWS ? T - i0 : ATT_ROWS, k0 = first_key(a, i0);
    size_t kvh = (size_t)(h / (a->NH / a->NKV)) * HS;
    RowBlock r = {i0, rows, k0, (a->causal ? i0 + rows : T) - k0, 0, 0, 0, 0, NULL};
    r.q = ((size_t)b * T + i0) * a->NH * HS + (size_t)h * HS;
    r.qin = ((size_t)b * T + i0) * a->ldq + (size_t)h * HS;
    r.kvin = ((size_t)b * T + k0) * a->ldkv + kvh;
    r.lse = ((size_t)b * a->NH + h) * T + i0;
    r.mask = a->mask ? a->mask + (size_t)b * T + k0 : NULL;
    return r;
}

/* The keys row ii of block r may see, from the block's first: [*first, *limit). */
static void row_keys(const AttArgs *a, const RowBlock *r, int ii, int *first, int *limit) {
    int i = r->i0 + ii;
    *first = first_key(a, i) - r->k0;
    *limit = a->causal ? i + 1 - r->k0 : r->keys;
}

/* s[rows,keys] = alpha * x_block @ y^T, x the block's rows (ldx apart), y its keys (ldy) */
static void block_abt(float *s, const float *x, int ldx, const float *y, int ldy, float alpha,
                      const AttArgs *a, const RowBlock *r) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, r->rows, r->keys, a->HS, alpha, x, ldx, y,
                ldy, 0.0f, s, r->keys);
}

/* The block's scores, scaled and (softcap > 0) soft-capped, into s. */
static void block_scores(float *s, const AttArgs *a, const RowBlock *r) {
    block_abt(s, a->q + r->qin, a->ldq, a->k + r->kvin, a->ldkv, a->score.scale, a, r);
    float cap = a->score.softcap;
    size_t n = (size_t)r->rows * r->keys;
    if (cap > 0.0f)
        for (size_t e = 0; e < n; e++) s[e] = soft_cap(s[e], cap);
}

/* P[b,h,i,j]'s dropout is rng_row_dropout's of row lse_row = (b*NH + h)*T + i and key j. */
static void forward_block(const AttArgs *a, const RowBlock *r, float *s) {
    block_scores(s, a, r);
    for (int ii = 0; ii < r->rows; ii++) {
        float *row = s + (size_t)ii * r->keys;
        size_t at = r->lse + ii;
        int first, limit;
        row_keys(a, r, ii, &first, &limit);
        a->lse[at] = softmax_row(row, r->mask, first, limit, r->keys);
        if (a->p > 0.0f) {
            uint32_t key = rng_row_key(a->seed, at);
#pragma omp simd
            for (int jj = 0; jj < r->keys; jj++) {
                uint32_t j = (uint32_t)(r->k0 + jj);
                row[jj] *= rng_row_scale(rng_row_pair(key, j >> 1), j & 1, a->p);
            }
        }
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r->rows, a->HS, r->keys, 1.0f, s,
                r->keys, a->v + r->kvin, a->ldkv, 0.0f, a->out + r->q, a->NH * a->HS);
}

/* s <- dropout(P) and, when dq or dk is wanted, g <- scale * dS for the block, from the
 * scores in s, dP = dout v^T in g and D = rowsum(dout * out); then the three GEMMs. */
static void backward_block(const AttArgs *a, const RowBlock *r, float *s) {
    int HS = a->HS, ldo = a->NH * HS, ldq = a->ldq, ldkv = a->ldkv, want_ds = a->dq || a->dk;
    float *g = s + (size_t)r->rows * r->keys, scale = a->score.scale, cap = a->score.softcap;
    block_scores(s, a, r);
    if (want_ds) block_abt(g, a->dout + r->q, ldo, a->v + r->kvin, ldkv, 1.0f, a, r);
    for (int ii = 0; ii < r->rows; ii++) {
        float *sr = s + (size_t)ii * r->keys, *gr = g + (size_t)ii * r->keys, D = 0.0f;
        const float *dout = a->dout + r->q + (size_t)ii * ldo,
                    *out = a->out + r->q + (size_t)ii * ldo;
        size_t at = r->lse + ii;
        float lse = a->lse[at];
        int first, limit;
        row_keys(a, r, ii, &first, &limit);
        uint32_t key = rng_row_key(a->seed, at);
        if (want_ds)
            for (int d = 0; d < HS; d++) D += dout[d] * out[d];
#pragma omp simd
        for (int jj = 0; jj < r->keys; jj++) {
            uint32_t j = (uint32_t)(r->k0 + jj);
            float P = jj >= first && jj < limit && (!r->mask || r->mask[jj])
                          ? exp_approx(sr[jj] - lse)
                          : 0.0f;
            float keep = a->p > 0.0f ? rng_row_scale(rng_row_pair(key, j >> 1), j & 1, a->p) : 1.0f;
            float slope = cap > 0.0f ? soft_cap_slope(sr[jj], cap) : 1.0f;
            if (want_ds) gr[jj] = P * (gr[jj] * keep - D) * slope * scale;
            sr[jj] = P * keep;
        }
    }
    if (a->dv) /* dv_kv += dropout(P)^T dout_block */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r->keys, HS, r->rows, 1.0f, s, r->keys,
                    a->dout + r->q, ldo, 1.0f, a->dv + r->kvin, ldkv);
    if (a->dq) /* dq_block += scale dS k */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r->rows, HS, r->keys, 1.0f, g,
                    r->keys, a->k + r->kvin, ldkv, 1.0f, a->dq + r->qin, ldq);
    if (a->dk) /* dk_kv += scale dS^T q_block */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r->keys, HS, r->rows, 1.0f, g, r->keys,
                    a->q + r->qin, ldq, 1.0f, a->dk + r->kvin, ldkv);
}

/* Runs fn on every row block, unit by unit (see ATT_ROWS above). */
static void att_run(const AttArgs *a, float *scratch,
                    void (*fn)(const AttArgs *, const RowBlock *, float *)) {
    int units = a->B * a->NKV, G = a->NH / a->NKV, slots = att_slots(a->B, a->NKV);
    int threads = slots < omp_get_max_threads() ? slots : omp_get_max_threads();
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
        float *slot = scratch + (size_t)omp_get_thread_num() * att_slot_floats(a->T);
#pragma omp for schedule(dynamic)
        for (int u = 0; u < units; u++)
            for (int h = u % a->NKV * G; h < (u % a->NKV + 1) * G; h++)
                for (int i0 = 0; i0 < a->T; i0 += ATT_ROWS) {
                    RowBlock r = row_block(a, u / a->NKV, h, i0);
                    fn(a, &r, slot);
                }
    }
}

/* A call's shapes, strides and masks (seed XORed with the step's). */
static AttArgs att_args(int B, int T, int NH, int NKV, int HS, int ldq, int ldkv, int causal,
                        int window, const int32_t *mask, AttnScore score, float p, uint64_t seed) {
    return (AttArgs){.B = B,
                     .T = T,
                     .NH = NH,
                     .NKV = NKV,
                     .HS = HS,
                     .causal = causal,
                     .window = window,
                     .ldq = ldq,
                     .ldkv = ldkv,
                     .mask = mask,
                     .score = score,
                     .p = p,
                     .seed = seed ^ cpu_step.seed};
}

/* n rows of C floats into bf16 rows ld apart */
static void round_rows(uint16_t *dst, int ld, const float *src, size_t n, int C) {
    for (size_t r = 0; r < n; r++)
        for (int c = 0; c < C; c++) dst[r * ld + c] = f32_to_bf16(src[r * C + c]);
}

/* out, lse from q, k, v (rotated first by rope): see ops.h for the shapes and masks. The
 * CPU saves nothing, so out is always written (backward reads it), and out_bf16 rounded from it. */
static void cpu_attention_forward(float *out, uint16_t *out_bf16, int ldo, float *lse, float *saved,
                                  float *q, int ldq, float *k, const float *v, int ldkv,
                                  const int32_t *mask, int causal, int window,
                                  const RopeFreqs *rope, AttnScore score, float p, uint64_t seed,
                                  float *scratch, int B, int T, int NH, int NKV, int HS) {
    (void)saved; /* the CPU saves nothing: backward reads q, k, v and out */
    rope_qk(q, ldq, k, ldkv, NULL, rope, B, T, NH, NKV, HS, 1.0f);
    AttArgs a = att_args(B, T, NH, NKV, HS, ldq, ldkv, causal, window, mask, score, p, seed);
    a.q = q, a.k = k, a.v = v, a.out = out, a.lse = lse;
    att_run(&a, scratch, forward_block);
    if (out_bf16) round_rows(out_bf16, ldo, out, (size_t)B * T, NH * HS);
}

/* The first C floats of n rows ld apart (x NULL: none) set to 0. */
static void zero_rows(float *x, int ld, size_t n, int C) {
    for (size_t r = 0; x && r < n; r++) memset(x + r * ld, 0, sizeof(float) * C);
}

/* dq, dk, dv += gradients, each may be NULL; P recomputed from q, k and lse. Rope's: the
 * transposed rotation of dq and dk after the blocks; with acc preceded by its inverse (the
 * rotation, cos and sin over the scale) on what they held, which it puts back (to float
 * rounding). */
static void cpu_attention_backward(float *dq, float *dk, float *dv, const float *dout,
                                   const float *q, const float *k, const float *v, int ldq,
                                   int ldkv, const float *out, const uint16_t *out_bf16, int ldo,
                                   const float *lse, const float *saved, const int32_t *mask,
                                   int causal, int window, const RopeFreqs *rope, AttnScore score,
                                   float p, uint64_t seed, float *scratch, int B, int T, int NH,
                                   int NKV, int HS, int acc) {
    (void)saved, (void)out_bf16, (void)ldo; /* the CPU reads forward's f32 out */
    if (!dq && !dk && !dv) return;
    size_t rows = (size_t)B * T;
    if (!acc) /* the blocks below add, head by head */
        zero_rows(dq, ldq, rows, NH * HS), zero_rows(dk, ldkv, rows, NKV * HS),
            zero_rows(dv, ldkv, rows, NKV * HS);
    if (acc && rope && rope->half) {
        RopeFreqs undo = *rope;
        undo.scale = 1.0f / rope->scale;
        rope_qk(dq, ldq, dk, ldkv, NULL, &undo, B, T, NH, NKV, HS, 1.0f);
    }
    AttArgs a = att_args(B, T, NH, NKV, HS, ldq, ldkv, causal, window, mask, score, p, seed);
    a.q = q, a.k = k, a.v = v, a.dout = dout, a.out = (float *)out, a.lse = (float *)lse;
    a.dq = dq, a.dk = dk, a.dv = dv;
    att_run(&a, scratch, backward_block);
    rope_qk(dq, ldq, dk, ldkv, NULL, rope, B, T, NH, NKV, HS, -1.0f);
}

/* Generation: n queries at positions pos[i] over the first L cached keys, per head h (KV head
 * h / (NH/NKV)): scores [n,L] in scratch, causal softmax (within the window), then out_h = P @
 * v. */
/* Queries q[0..n) of one sequence over its cache k, v [L, NKV*HS]: scores [NH,n,L] in scratch. */
static void attend_cached(float *out, int ldo, const float *q, int ldq, const float *k,
                          const float *v, const int32_t *pos, int window, AttnScore score,
                          float *scratch, int n, int L, int NH, int NKV, int HS) {
    int ldkv = NKV * HS, G = NH / NKV;
    for (int h = 0; h < NH; h++) {
        float *s = scratch + (size_t)h * n * L;
        const float *kh = k + (size_t)(h / G) * HS, *vh = v + (size_t)(h / G) * HS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, L, HS, score.scale,
                    q + (size_t)h * HS, ldq, kh, ldkv, 0.0f, s, L);
#pragma omp parallel for if ((size_t)n * L > CPU_PAR_MIN)
        for (int i = 0; i < n; i++) {
            int first = window && pos[i] >= window ? pos[i] - window + 1 : 0;
            if (score.softcap > 0.0f)
                for (int j = first; j <= pos[i]; j++)
                    s[(size_t)i * L + j] = soft_cap(s[(size_t)i * L + j], score.softcap);
            softmax_row(s + (size_t)i * L, NULL, first, pos[i] + 1, L);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HS, L, 1.0f, s, L, vh, ldkv, 0.0f,
                    out + (size_t)h * HS, ldo);
    }
}

/* Several sequences: each query over its own sequence's first pos[i] + 1 keys. */
static void cpu_attention_cached(float *out, uint16_t *out_bf16, int ldb, const float *q, int ldq,
                                 const float *k, const float *v, const int32_t *pos,
                                 const int32_t *seq, int stride, int window, AttnScore score,
                                 float *scratch, int n, int L, int NH, int NKV, int HS) {
    int ldo = NH * HS;
    size_t per_seq = (size_t)stride * NKV * HS;
    if (!seq) attend_cached(out, ldo, q, ldq, k, v, pos, window, score, scratch, n, L, NH, NKV, HS);
    for (int i = 0; seq && i < n; i++)
        attend_cached(out + (size_t)i * ldo, ldo, q + (size_t)i * ldq, ldq, k + seq[i] * per_seq,
                      v + seq[i] * per_seq, pos + i, window, score, scratch, 1, pos[i] + 1, NH, NKV,
                      HS);
    if (out_bf16) round_rows(out_bf16, ldb, out, (size_t)n, ldo);
}

static size_t cpu_attention_cached_scratch(int n, int L, int NH, int HS) {
    (void)HS;
    return (size_t)NH * n * L;
}

/* The new rows to the cache, then rope on q and on the cache's new rows: one block of rows for
 * one sequence (its positions are consecutive), else row by row. */
static void cpu_cache_write(float *kc, float *vc, float *q, int ldq, const float *k, const float *v,
                            int ld, const int32_t *pos, const int32_t *seq, int stride,
                            const RopeFreqs *rope, int n, int NH, int NKV, int HS) {
    size_t W = (size_t)NKV * HS;
    for (int i = 0; i < n; i++) {
        size_t row = (seq ? (size_t)seq[i] * stride : 0) + pos[i];
        memcpy(kc + row * W, k + (size_t)i * ld, W * sizeof(float));
        memcpy(vc + row * W, v + (size_t)i * ld, W * sizeof(float));
        if (seq)
            rope_qk(q ? q + (size_t)i * ldq : NULL, ldq, kc + row * W, (int)W, pos + i, rope, 1, 1,
                    NH, NKV, HS, 1.0f);
    }
    if (!seq && n > 0) rope_qk(q, ldq, kc + pos[0] * W, (int)W, pos, rope, 1, n, NH, NKV, HS, 1.0f);
}

/* ---- activations and vector arithmetic ---- */

/* for (j < n) BODY with ACT the activation act as a constant: a loop of its own for each, which
 * vectorises (one that switches over the activation at every element stays scalar: GCC 12 does
 * not unswitch a switch) */
#define ACT_LOOP_(A, n, BODY)                                                                      \
    {                                                                                              \
        const Activation ACT = A;                                                                  \
        _Pragma("omp simd") for (size_t j = 0; j < (size_t)(n); j++) {                             \
            BODY;                                                                                  \
        }                                                                                          \
    }                                                                                              \
    break
#define ACT_SIMD_LOOP(act, n, BODY)                                                                \
    switch (act) {                                                                                 \
    case ACT_GELU:                                                                                 \
        ACT_LOOP_(ACT_GELU, n, BODY);                                                              \
    case ACT_GELU_TANH:                                                                            \
        ACT_LOOP_(ACT_GELU_TANH, n, BODY);                                                         \
    case ACT_RELU:                                                                                 \
        ACT_LOOP_(ACT_RELU, n, BODY);                                                              \
    case ACT_TANH:                                                                                 \
        ACT_LOOP_(ACT_TANH, n, BODY);                                                              \
    case ACT_SILU:                                                                                 \
        ACT_LOOP_(ACT_SILU, n, BODY);                                                              \
    }

/* An activation's input at i of [n/F, F]: inp, or its bf16 copy in saved + bias (if any). */
static inline float act_input(const float *inp, const uint16_t *saved, const float *bias, size_t i,
                              int F) {
    return inp ? inp[i] : qb_bf16(saved[i]) + (bias ? bias[i % F] : 0.0f);
}

/* out[n] = act(x) (and saved = bf16(inp), out_bf16 = bf16(out)); an f32 input has loops of its
 * own, which vectorise (act_input's choice of source and its i % F keep the shared loop scalar:
 * GELU's was a fifth of a MiniLM step) */
static void cpu_activation_forward(float *out, uint16_t *out_bf16, int ldb, uint16_t *saved,
                                   const float *inp, const float *bias, Activation act, size_t n,
                                   int F) {
    if (saved && inp)
        for (size_t i = 0; i < n; i++) saved[i] = f32_to_bf16(inp[i]);
    if (!out) { /* the bf16 copy alone */
#pragma omp parallel for if (n > CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++)
            out_bf16[i / F * ldb + i % F] =
                f32_to_bf16(act_value(act_input(inp, saved, bias, i, F), act));
        return;
    }
    if (inp) {
#pragma omp parallel for if (n > CPU_PAR_MIN)
        for (size_t r = 0; r < n / F; r++) {
            float *o = out + r * F;
            const float *x = inp + r * F;
            ACT_SIMD_LOOP(act, F, o[j] = act_value(x[j], ACT));
        }
    } else {
#pragma omp parallel for if (n > CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) out[i] = act_value(act_input(inp, saved, bias, i, F), act);
    }
    for (size_t i = 0; i < n && out_bf16; i++) out_bf16[i / F * ldb + i % F] = f32_to_bf16(out[i]);
}

/* dinp[n] (+)= act'(x) * dout (x: inp, or its copy in saved + bias; dout, or its bf16 copy; and
 * dinp_bf16 = bf16(dinp)) */
static void cpu_activation_backward(float *dinp, uint16_t *dinp_bf16, const float *inp,
                                    const uint16_t *saved, const float *bias, const float *dout,
                                    const uint16_t *dout_bf16, Activation act, size_t n, int F,
                                    int acc) {
    if (!dinp) { /* the bf16 copy alone (acc OPS_SET) */
#pragma omp parallel for if (n > CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++)
            dinp_bf16[i] = f32_to_bf16(act_derivative(act_input(inp, saved, bias, i, F), act) *
                                       grad_at(dout, dout_bf16, i));
        return;
    }
    if (inp && dout) { /* f32 in and out: loops of their own, which vectorise */
#pragma omp parallel for if (n > CPU_PAR_MIN)
        for (size_t r = 0; r < n / F; r++) {
            float *di = dinp + r * F;
            const float *x = inp + r * F, *d = dout + r * F;
            ACT_SIMD_LOOP(act, F, float g = act_derivative(x[j], ACT) * d[j];
                          di[j] = acc ? di[j] + g : g);
        }
    } else {
#pragma omp parallel for if (n > CPU_PAR_MIN)
        for (size_t i = 0; i < n; i++) {
            float g = act_derivative(act_input(inp, saved, bias, i, F), act) *
                      grad_at(dout, dout_bf16, i);
            dinp[i] = acc ? dinp[i] + g : g;
        }
    }
    round_bf16(dinp_bf16, dinp, n);
}

/* One row of glu_forward: F values of gate and up (or of their copies in saved's row [gate | up]).
 * An f32 row has loops of its own, which vectorise (the shared loop's choice of source keeps it
 * scalar). */
static void glu_forward_row(Activation act, float *out, uint16_t *out_bf16, uint16_t *saved,
                            const float *gate, const float *up, int F) {
    if (gate && up && out) {
        ACT_SIMD_LOOP(act, F, out[j] = act_value(gate[j], ACT) * up[j]);
        for (int j = 0; out_bf16 && j < F; j++) out_bf16[j] = f32_to_bf16(out[j]);
    } else {
        for (int j = 0; j < F; j++) {
            float g = gate ? gate[j] : qb_bf16(saved[j]), u = up ? up[j] : qb_bf16(saved[F + j]);
            float v = act_value(g, act) * u;
            if (out) out[j] = v;
            if (out_bf16) out_bf16[j] = f32_to_bf16(v);
        }
    }
    for (int j = 0; saved && gate && up && j < F; j++)
        saved[j] = f32_to_bf16(gate[j]), saved[F + j] = f32_to_bf16(up[j]);
}

/* out[n] = act(gate) * up (and saved = rows [bf16(gate) | bf16(up)], out_bf16 = bf16(out));
 * gate and up [n/F, F] rows ld apart, or (NULL) saved's */
static void cpu_glu_forward(Activation act, float *out, uint16_t *out_bf16, int ldb,
                            uint16_t *saved, const float *gate, const float *up, size_t n, int F,
                            int ld) {
#pragma omp parallel for if (n > CPU_PAR_MIN)
    for (size_t r = 0; r < n / F; r++)
        glu_forward_row(act, out ? out + r * F : NULL, out_bf16 ? out_bf16 + r * ldb : NULL,
                        saved ? saved + r * 2 * F : NULL, gate ? gate + r * ld : NULL,
                        up ? up + r * ld : NULL, F);
}

/* dgate (+)= d * u * act'(g), dup (+)= d * act(g): one element of an f32 row of glu_backward */
static inline void glu_grad(Activation act, float g, float u, float d, float *dgate, float *dup,
                            int acc) {
    float value, slope;
    act_both(g, act, &value, &slope);
    float dg = d * u * slope, du = d * value;
    *dgate = acc ? *dgate + dg : dg;
    *dup = acc ? *dup + du : du;
}

/* One row of glu_backward (F values; dgu_bf16 and saved: their rows of 2F). An f32 row with both
 * gradients has loops of its own, which vectorise. */
static void glu_backward_row(Activation act, float *dgate, float *dup, uint16_t *dgu_bf16,
                             const float *dout, const uint16_t *dout_bf16, const float *gate,
                             const float *up, const uint16_t *saved, int F, int acc) {
    if (dgate && dup && dout && gate && up) {
        ACT_SIMD_LOOP(act, F, glu_grad(ACT, gate[j], up[j], dout[j], &dgate[j], &dup[j], acc));
        for (int j = 0; dgu_bf16 && j < F; j++)
            dgu_bf16[j] = f32_to_bf16(dgate[j]), dgu_bf16[F + j] = f32_to_bf16(dup[j]);
        return;
    }
    for (int j = 0; j < F; j++) {
        float g = gate ? gate[j] : qb_bf16(saved[j]), u = up ? up[j] : qb_bf16(saved[F + j]);
        float d = grad_at(dout, dout_bf16, j);
        float value, slope;
        act_both(g, act, &value, &slope);
        float dg = d * u * slope, du = d * value;
        if (dgate) dg = dgate[j] = acc ? dgate[j] + dg : dg;
        if (dup) du = dup[j] = acc ? dup[j] + du : du;
        if (dgu_bf16) dgu_bf16[j] = f32_to_bf16(dg), dgu_bf16[F + j] = f32_to_bf16(du);
    }
}

/* dgate[n] (+)= dout * up * act'(gate); dup[n] (+)= dout * act(gate) and / or their bf16
 * copies (of this op's gradient alone where the f32 one is NULL: acc OPS_SET); any may be NULL;
 * gate and up, or their copies in saved's rows; dout, or its bf16 copy; gate's, up's and the
 * gradients' rows ld apart */
static void cpu_glu_backward(Activation act, float *dgate, float *dup, uint16_t *dgu_bf16,
                             const float *dout, const uint16_t *dout_bf16, const float *gate,
                             const float *up, const uint16_t *saved, size_t n, int F, int ld,
                             int acc) {
#pragma omp parallel for if (n > CPU_PAR_MIN)
    for (size_t r = 0; r < n / F; r++)
        glu_backward_row(act, dgate ? dgate + r * ld : NULL, dup ? dup + r * ld : NULL,
                         dgu_bf16 ? dgu_bf16 + r * 2 * F : NULL, dout ? dout + r * F : NULL,
                         dout_bf16 ? dout_bf16 + r * F : NULL, gate ? gate + r * ld : NULL,
                         up ? up + r * ld : NULL, saved ? saved + r * 2 * F : NULL, F, acc);
}

static void cpu_add(float *out, const float *a, const float *b, size_t n) {
#pragma omp parallel for simd if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

static void cpu_axpy(float *dst, const float *src, float alpha, size_t n) {
#pragma omp parallel for simd if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) dst[i] += alpha * src[i];
}

static void cpu_scale(float *x, float s, size_t n) {
#pragma omp parallel for simd if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= s;
}

/* ---- pooling ---- */

/* out[B,C] = inp[b,0,:] of inp [B,T,C] */
static void cpu_first_token_forward(float *out, const float *inp, int B, int T, int C) {
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * C, inp + (size_t)b * T * C, sizeof(float) * C);
}

/* dinp[b,0,:] += dout[b,:] */
static void cpu_first_token_backward(float *dinp, const float *dout, int B, int T, int C) {
    for (int b = 0; b < B; b++) axpy_row(dinp + (size_t)b * T * C, dout + (size_t)b * C, 1.0f, C);
}

/* ---- softmax cross-entropy ---- */

/* losses[N] = logsumexp(logits[n]) - logits[n][label]; dlogits[N,V] (may be NULL) = (softmax -
 * onehot) * grad_scale * row_scale[n] (row_scale NULL: 1), plus the entropy term (ent: ops.h
 * OpsEntropy, NULL: none), times logit_map_slope of the logit (the logits already mapped by map:
 * logit_map_all), overwritten; dlogits == logits allowed (each row is read before it is written).
 * Rows with label < 0 or >= V: 0 and 0. rows (not NULL): row n's label, loss, row_scale and
 * entropy are at rows[n] (its logits at n). */
static void cross_entropy_rows(float *losses, float *dlogits, const float *logits,
                               const int32_t *labels, const int32_t *rows, float grad_scale,
                               const float *row_scale, const OpsEntropy *ent, OpsLogitMap map,
                               int N, int V) {
    float cap = map.softcap, inv_t = 1.0f / map.temperature;
    int mapped = cap > 0.0f || inv_t != 1.0f;
#pragma omp parallel for if ((size_t)N * V > CPU_PAR_MIN)
    for (int i = 0; i < N; i++) {
        const float *x = logits + (size_t)i * V;
        float *d = dlogits ? dlogits + (size_t)i * V : NULL;
        int n = rows ? rows[i] : i, label = labels[n];
        if (label < 0 || label >= V) {
            losses[n] = 0.0f;
            if (ent && ent->out) ent->out[n] = 0.0f;
            if (d) memset(d, 0, sizeof(float) * V);
            continue;
        }
        float maxv = -INFINITY;
        for (int j = 0; j < V; j++) maxv = x[j] > maxv ? x[j] : maxv;
        /* the exponentials (exp_approx vectorises; the GPU's ex2.approx is as close) kept in the
         * gradient's row where the logits are not needed after (d is x, the logits' own row,
         * under a soft-cap, whose slope reads them, or with the entropy's term, which reads them
         * too; a temperature's slope is constant); summed in double:
         * a float sum of a vocabulary's 50k terms, one after the other, drifts by 1e-4 of the total
         * (torch's reductions, and the GPU's, sum in a tree) */
        float at_label = x[label];
        int kept = d && (d != x || (!(cap > 0.0f) && !ent));
        double sum = 0.0, lifted = 0.0; /* the sums of e_j and (with ent) of e_j (x_j - maxv) */
        if (kept) {
#pragma omp simd
            for (int j = 0; j < V; j++) d[j] = exp_approx(x[j] - maxv);
            for (int j = 0; j < V; j++) sum += d[j];
        } else if (ent) {
            for (int j = 0; j < V; j++) {
                float e = exp_approx(x[j] - maxv);
                sum += e, lifted += e > 0.0f ? (double)e * (x[j] - maxv) : 0.0; /* -inf: 0 */
            }
        } else {
            for (int j = 0; j < V; j++) sum += exp_approx(x[j] - maxv);
        }
        for (int j = 0; ent && kept && j < V; j++)
            lifted += d[j] > 0.0f ? (double)d[j] * (x[j] - maxv) : 0.0;
        losses[n] = (maxv - at_label) + (float)log(sum); /* exact difference first, as torch */
        /* H = log sum - E[x - maxv], the softmax's mean of the logits less their max */
        double mean_lift = lifted / sum;
        if (ent && ent->out) ent->out[n] = (float)fmax(log(sum) - mean_lift, 0.0);
        if (!d) continue;
        float step = cpu_step.grad_scale;
        float g = (row_scale ? grad_scale * row_scale[n] : grad_scale) * step;
        /* the entropy term: -ge p_j (x_j - E[x]), E[x] = maxv + mean_lift */
        float ge = ent && ent->scale ? grad_scale * ent->scale[n] * step : 0.0f;
        float inv = (float)(1.0 / sum), mean = (float)(maxv + mean_lift);
#pragma omp simd
        for (int j = 0; j < V; j++) {
            float e = kept ? d[j] : exp_approx(x[j] - maxv);
            float by = ge != 0.0f ? g - ge * (x[j] - mean) : g; /* no term: -inf logits stay 0 */
            float dj = e * inv * by - (j == label ? g : 0.0f);
            d[j] = mapped ? dj * logit_map_slope(x[j], cap, inv_t) : dj;
        }
    }
}

/* logits <- logit_map(logits), n of them (the LM head's OpsLogitMap); nothing where it is none */
static void logit_map_all(float *logits, size_t n, OpsLogitMap map) {
    float cap = map.softcap, inv_t = 1.0f / map.temperature;
    if (!(cap > 0.0f) && inv_t == 1.0f) return;
#pragma omp parallel for if (n > CPU_PAR_MIN) /* tanhf: a call, no simd loop */
    for (size_t i = 0; i < n; i++) logits[i] = logit_map(logits[i], cap, inv_t);
}

static void cpu_cross_entropy(float *losses, float *dlogits, const float *logits,
                              const int32_t *labels, float grad_scale, int N, int V) {
    cross_entropy_rows(losses, dlogits, logits, labels, NULL, grad_scale, NULL, NULL,
                       OPS_LOGITS_PLAIN, N, V);
}

/* ---- LM head + cross-entropy, in chunks of rows ---- */

/* A chunk's view of the head's adapter (OpsHeadLora): its rows of u and du (the listed rows
 * gathered apart), and B; under bf16 u's rows and B rounded to bf16 values, in f32 (their
 * products are exact: f32 GEMMs over them sum the GPU's bf16 products). */
typedef struct HeadLoraChunk {
    const OpsHeadLora *l;
    const float *u, *B;
    float *du;
} HeadLoraChunk;

/* One chunk of rows on bf16 operands, the reference of the GPU's tensor-core GEMMs (tests only):
 * hb = bf16(h) [rows,C], logits [rows,V] = bf16(hb Wb^T) (with an adapter then rounded again
 * after + scale u B^T on its bf16 values, as the GPU's second GEMM into them) and dh +=
 * bf16(dlogits) Wb in loops over bf16 values, summed in f32; with lora_grads the dlogits left
 * rounded to bf16, for head_lora_backward. */
static void lm_head_chunk_bf16(float *losses, float *dh, int lora_grads, const float *h,
                               const uint16_t *Wb, const HeadLoraChunk *lora, const int32_t *labels,
                               const int32_t *idx, float grad_scale, const float *row_scale,
                               const OpsEntropy *ent, OpsLogitMap map, float *logits, uint16_t *hb,
                               int rows, int C, int V) {
    size_t n_logits = (size_t)rows * V;
    for (size_t i = 0; i < (size_t)rows * C; i++) hb[i] = f32_to_bf16(h[i]);
    for (size_t n = 0; n < (size_t)rows; n++)
        for (size_t v = 0; v < (size_t)V; v++) {
            float s = 0.0f;
            for (size_t c = 0; c < (size_t)C; c++)
                s += qb_bf16(hb[n * C + c]) * qb_bf16(Wb[v * C + c]);
            logits[n * V + v] = bf16_round(s);
        }
    if (lora) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, V, lora->l->R, lora->l->scale,
                    lora->u, lora->l->R, lora->B, lora->l->R, 1.0f, logits, V);
        for (size_t i = 0; i < n_logits; i++) logits[i] = bf16_round(logits[i]);
    }
    logit_map_all(logits, n_logits, map);
    cross_entropy_rows(losses, dh || lora_grads ? logits : NULL, logits, labels, idx, grad_scale,
                       row_scale, ent, map, rows, V);
    for (size_t n = 0; dh && n < (size_t)rows; n++)
        for (size_t v = 0; v < (size_t)V; v++) {
            float d = bf16_round(logits[n * V + v]);
            for (size_t c = 0; d != 0.0f && c < (size_t)C; c++)
                dh[n * C + c] += d * qb_bf16(Wb[v * C + c]);
        }
    for (size_t i = 0; lora_grads && i < n_logits; i++) logits[i] = bf16_round(logits[i]);
}

/* Row i of y [n,C] (+)= row rows[i] of x, or (scatter) row rows[i] of y += row i of x */
static void move_rows(float *y, const float *x, const int32_t *rows, int scatter, int n, int C) {
    for (size_t i = 0; i < (size_t)n; i++) {
        float *to = y + (scatter ? (size_t)rows[i] : i) * C;
        const float *from = x + (scatter ? i : (size_t)rows[i]) * C;
        if (scatter)
            axpy_row(to, from, 1.0f, C);
        else
            memcpy(to, from, sizeof(float) * C);
    }
}

/* The chunk of rows n0.. (n of them; idx: the listed rows) in la's rooms: u's rows gathered where
 * listed, du's room after them (zeroed), and under bf16 (Bb: B's rounded copy) the rows rounded
 * after those. */
static HeadLoraChunk head_lora_chunk(const OpsHeadLora *l, float *la, const float *Bb,
                                     const int32_t *idx, int n0, int n) {
    int R = l->R;
    size_t most = (size_t)n * R;
    float *ug = la, *dug = la + most, *ub = la + 2 * most;
    HeadLoraChunk c = {l, idx ? ug : l->u + (size_t)n0 * R, Bb ? Bb : l->B, NULL};
    if (idx) move_rows(ug, l->u, idx, 0, n, R);
    if (l->du) c.du = idx ? dug : l->du + (size_t)n0 * R;
    if (idx && l->du) memset(dug, 0, most * sizeof *dug);
    if (!Bb) return c;
    for (size_t i = 0; i < most; i++) ub[i] = bf16_round(c.u[i]);
    c.u = ub;
    return c;
}

/* du += scale * dlogits @ B and dB += scale * dlogits^T @ u from a chunk's dlogits (under bf16
 * its bf16 values); listed rows' du then added to theirs. */
static void head_lora_backward(const HeadLoraChunk *c, const float *dlogits, const int32_t *idx,
                               int n, int V) {
    const OpsHeadLora *l = c->l;
    int R = l->R;
    if (c->du)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, R, V, l->scale, dlogits, V, c->B,
                    R, 1.0f, c->du, R);
    if (l->dB)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, V, R, n, l->scale, dlogits, V, c->u, R,
                    1.0f, l->dB, R);
    if (idx && c->du) move_rows(l->du, c->du, idx, 1, n, R);
}

/* Per chunk of rows of h [N,C]: logits [rows,V] = h @ W[V,C]^T in scratch (mapped by map), losses
 * and dlogits in place (cross_entropy_rows), then dh[rows,C] += dlogits @ W and dW += dlogits^T @ h
 * (NULL: skipped); with Wb, lm_head_chunk_bf16 (hb after the logits, as on the GPU). Rows are
 * independent, so a scratch sized for bf16 logits takes f32 ones in half chunks (ops_lm_head_rows).
 * With rows, the chunk's rows of h are gathered first and its dh computed apart, then added to
 * theirs. */
static void cpu_lm_head_cross_entropy(float *losses, float *dh, float *dW, const float *h,
                                      const float *W, const uint16_t *Wb, const OpsHeadLora *lora,
                                      const int32_t *labels, const int32_t *rows, float grad_scale,
                                      const float *row_scale, const OpsEntropy *entropy,
                                      OpsLogitMap map, float *scratch, int N, int C, int V,
                                      int chunk) {
    if (chunk < 1) return; /* the contract asks for >= 1; never loop forever */
    int bf16 = Wb != NULL, lora_grads = lora && (lora->du || lora->dB);
    int grads = dh || dW || lora_grads;
    int held = (int)ops_lm_head_rows((size_t)N, (size_t)chunk, bf16);
    uint16_t *hb =
        (uint16_t *)(scratch + ops_lm_head_logits((size_t)N, (size_t)V, (size_t)chunk, bf16));
    float *hg =
              scratch + ops_lm_head_gathered((size_t)N, (size_t)C, (size_t)V, (size_t)chunk, bf16),
          *dhg = hg + (size_t)(N < chunk ? N : chunk) * C;
    if (dW) Wb = NULL; /* a head given in bf16 has no weight gradient: f32 then */
    float *la = scratch + ops_lm_head_lora_at((size_t)N, (size_t)C, (size_t)V, (size_t)chunk, bf16);
    /* B rounded to bf16 values, after a chunk's rows of u, du and u rounded */
    float *Bb = lora && Wb ? la + 3 * (size_t)(N < chunk ? N : chunk) * lora->R : NULL;
    for (size_t i = 0; Bb && i < (size_t)V * lora->R; i++) Bb[i] = bf16_round(lora->B[i]);
    for (int n0 = 0; n0 < N; n0 += held) {
        int n = N - n0 < held ? N - n0 : held;
        const int32_t *idx = rows ? rows + n0 : NULL;
        const float *hc = idx ? hg : h + (size_t)n0 * C;
        float *dhc = !dh ? NULL : idx ? dhg : dh + (size_t)n0 * C;
        if (idx) move_rows(hg, h, idx, 0, n, C);
        if (idx && dh) memset(dhg, 0, sizeof(float) * n * C);
        float *lc = idx ? losses : losses + n0;
        const int32_t *yc = idx ? labels : labels + n0;
        const float *rs = !row_scale ? NULL : idx ? row_scale : row_scale + n0;
        OpsEntropy ec = {0}; /* the chunk's rows of entropy's (listed: all, as rs) */
        if (entropy && !idx)
            ec = (OpsEntropy){entropy->out ? entropy->out + n0 : NULL,
                              entropy->scale ? entropy->scale + n0 : NULL};
        const OpsEntropy *ent = !entropy ? NULL : idx ? entropy : &ec;
        HeadLoraChunk lo = lora ? head_lora_chunk(lora, la, Bb, idx, n0, n) : (HeadLoraChunk){0};
        const HeadLoraChunk *lop = lora ? &lo : NULL;
        if (Wb) {
            lm_head_chunk_bf16(lc, dhc, lora_grads, hc, Wb, lop, yc, idx, grad_scale, rs, ent, map,
                               scratch, hb, n, C, V);
        } else {
            cpu_matmul_forward(scratch, hc, W, NULL, n, C, V);
            if (lora)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, lora->R, lora->scale,
                            lo.u, lora->R, lora->B, lora->R, 1.0f, scratch, V);
            logit_map_all(scratch, (size_t)n * V, map);
            cross_entropy_rows(lc, grads ? scratch : NULL, scratch, yc, idx, grad_scale, rs, ent,
                               map, n, V);
            if (grads) cpu_matmul_backward(dhc, dW, scratch, hc, W, n, C, V, 1);
        }
        if (lora_grads) head_lora_backward(&lo, scratch, idx, n, V);
        if (idx && dh) move_rows(dh, dhg, idx, 1, n, C);
    }
}

/* ---- preference pairs: pair_loss.h's terms, summed in pair order ---- */

static void pairs_add(double *stats, const PairTerms *t) {
    for (int k = 0; k < 4; k++) stats[k] += t->stats[k];
}

static void cpu_dpo_loss(double *stats, float *logps, float *row_scale, const float *losses,
                         const int32_t *labels, const float *ref, float beta, float label_smoothing,
                         int ipo, float grad_scale, int B, int T) {
    int P = B / 2;
    memset(stats, 0, 4 * sizeof *stats);
    for (int p = 0; p < P; p++) {
        float logp[2];
        double n[2];
        for (int k = 0; k < 2; k++) {
            size_t row = (size_t)(2 * p + k) * T;
            double sum = 0.0;
            int count = 0;
            for (int t = 0; t < T; t++) {
                sum += losses[row + t];
                count += labels[row + t] >= 0;
            }
            logps[2 * p + k] = logp[k] = (float)-sum;
            n[k] = ipo && count ? count : 1;
        }
        if (!ref) continue;
        /* no step scale: the head's backward applies it to row_scale */
        PairTerms t =
            dpo_pair(logp, ref + 2 * p, n, beta, label_smoothing, ipo, grad_scale / (double)P);
        pairs_add(stats, &t);
        if (!row_scale) continue;
        for (int i = 0; i < T; i++) {
            row_scale[(size_t)2 * p * T + i] = t.grad_chosen;
            row_scale[(size_t)(2 * p + 1) * T + i] = t.grad_rejected;
        }
    }
}

static void cpu_reward_loss(double *stats, float *rewards, float *dscores, const float *scores,
                            const int32_t *pos, float grad_scale, int B, int T) {
    int P = B / 2;
    memset(stats, 0, 4 * sizeof *stats);
    if (dscores) memset(dscores, 0, (size_t)B * T * sizeof *dscores);
    for (int p = 0; p < P; p++) {
        size_t c = (size_t)2 * p * T + pos[2 * p], r = (size_t)(2 * p + 1) * T + pos[2 * p + 1];
        rewards[2 * p] = scores[c];
        rewards[2 * p + 1] = scores[r];
        PairTerms t =
            reward_pair(scores[c], scores[r], grad_scale / (double)P * cpu_step.grad_scale);
        pairs_add(stats, &t);
        if (!dscores) continue;
        dscores[c] = t.grad_chosen;
        dscores[r] = t.grad_rejected;
    }
}

/* ---- GRPO's and RLOO's token weights ---- */

/* The k-th smallest (from 0) of the completion tokens' entropies (share not 0), by their bits
 * (entropies are at least 0, so their bits order as they do), a bit at a time from the top: the
 * GPU's selection, one thread's. */
static float kth_entropy(const float *entropy, const float *share, size_t n, long k) {
    uint32_t prefix = 0;
    long below = 0; /* the values under the prefix found so far */
    for (int bit = 31; bit >= 0; bit--) {
        long zeros = 0;
        for (size_t i = 0; i < n; i++)
            zeros += share[i] != 0.0f && grpo_select_zero(grpo_bits(entropy[i]), prefix, bit);
        if (below + zeros <= k) prefix |= 1u << bit, below += zeros;
    }
    return grpo_float(prefix);
}

/* The entropy mask's threshold (grpo_token.h); 0 where there is no mask or no completion token. */
static float entropy_threshold(const float *entropy, const float *share, float q, size_t n) {
    if (!(q > 0.0f)) return 0.0f;
    long count = 0, below, above;
    for (size_t i = 0; i < n; i++) count += share[i] != 0.0f;
    if (!count) return 0.0f;
    float w;
    grpo_quantile_ranks(count, q, &below, &above, &w);
    return grpo_lerp(kth_entropy(entropy, share, n, below), kth_entropy(entropy, share, n, above),
                     w);
}

static void cpu_grpo_weights(double *stats, float *row_scale, float *entropy_scale,
                             const float *share, const float *adv, const float *losses,
                             const float *entropy, const float *ref, const float *old,
                             OpsGrpoTerms t, int B, int T) {
    double sums[7] = {0, 0, 0, 0, 0, 0, 0};
    size_t n = (size_t)B * T;
    int by_row = grpo_by_row(&t);
    float cut = entropy ? entropy_threshold(entropy, share, t.entropy_quantile, n) : 0.0f;
#define KEPT(i) (!entropy || grpo_entropy_kept(&t, entropy, cut, i))
    for (size_t i = 0; !by_row && i < n; i++)
        row_scale[i] = grpo_token(sums, share[i], adv[i], losses, ref, old, i, &t, KEPT(i));
    for (int b = 0; by_row && b < B; b++) {
        size_t at = (size_t)b * T;
        GrpoRow r = {0};
        for (size_t i = at; i < at + T; i++)
            grpo_row_add(&r, share[i], losses, ref, old, i, &t, KEPT(i));
        if (grpo_row_of_tokens(&t)) { /* the off-policy mask's row of token ratios */
            int keep = grpo_row_kept(&r, adv[at], &t);
            for (size_t i = at; i < at + T; i++)
                row_scale[i] =
                    grpo_token(sums, share[i], adv[i], losses, ref, old, i, &t, keep && KEPT(i));
            continue;
        }
        grpo_row_finish(&r, sums, adv[at], &t);
        for (size_t i = at; i < at + T; i++)
            row_scale[i] = grpo_row_token(&r, share[i], losses, ref, old, i, &t, KEPT(i));
    }
    for (size_t i = 0; entropy && i < n; i++)
        if (share[i] != 0.0f && KEPT(i)) sums[5] += entropy[i], sums[6] += 1.0;
    sums[0] -= t.entropy_coef * sums[5] / (sums[6] > 1.0 ? sums[6] : 1.0);
    for (size_t i = 0; entropy_scale && i < n; i++)
        entropy_scale[i] = grpo_entropy_scale(&t, share[i], KEPT(i), sums[6]);
#undef KEPT
    memcpy(stats, sums, sizeof sums);
}

/* ---- optimizer ---- */

/* torch.optim.AdamW (foreach=False) on param, grad, m, v [n] at learning rate lr, each g = grad *
 * clip when clip (else grad): bias corrections in double on the host like torch's Python
 * scalars, the moment update as torch's lerp. */
static void adamw_tensor(float *param, const float *grad, float *m, float *v, const AdamWHyper *h,
                         float lr, float weight_decay, int clip, float coef, size_t n) {
    double bc1 = 1.0 - pow((double)h->beta1, h->step), bc2 = 1.0 - pow((double)h->beta2, h->step);
    float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = (float)(1.0 - (double)lr * weight_decay);
    float beta1 = h->beta1, beta2 = h->beta2, eps = h->eps;
#pragma omp parallel for simd if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        float g = clip ? grad[i] * coef : grad[i];
        param[i] *= decay;
        m[i] += (1.0f - beta1) * (g - m[i]);
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        param[i] -= step_size * (m[i] / (sqrtf(v[i]) / bc2_sqrt + eps));
    }
}

/* The reference of every backend's step: the norm in double, the clip coefficient as torch
 * computes it, then each tensor in turn. */
static void cpu_adamw_step(const AdamWTensor *tensors, int n_tensors, const float *grads, float *m,
                           float *v, size_t n, AdamWHyper h, double *norm, double *scratch) {
    (void)scratch;
    double s = 0.0;
#pragma omp parallel for simd reduction(+ : s) if (n > CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) s += (double)grads[i] * grads[i];
    *norm = sqrt(s);
    if (!isfinite(*norm)) return;
    double coef = h.max_norm / (*norm + 1e-6);
    int clip = h.max_norm > 0 && coef < 1.0;
    for (int t = 0; t < n_tensors; t++) {
        const AdamWTensor *x = &tensors[t];
        adamw_tensor(x->param, grads + x->offset, m + x->offset, v + x->offset, &h,
                     h.lr * x->lr_scale, x->decay ? h.weight_decay : 0.0f, clip, (float)coef, x->n);
    }
}

const Ops ops_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .status = cpu_status,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .embedding_lora_forward = cpu_embedding_lora_forward,
    .embedding_lora_backward = cpu_embedding_lora_backward,
    .layernorm_forward = cpu_layernorm_forward,
    .layernorm_backward = cpu_layernorm_backward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .residual_norm_forward = cpu_residual_norm_forward,
    .head_norm_forward = cpu_head_norm_forward,
    .glu_forward = cpu_glu_forward,
    .glu_backward = cpu_glu_backward,
    .matmul_forward = cpu_matmul_forward,
    .matmul_backward = cpu_matmul_backward,
    .bias_backward = cpu_bias_backward,
    .dequantize_rows = cpu_dequantize_rows,
    .dequantize_rows_bf16 = cpu_dequantize_rows_bf16,
    .round_bf16_many = cpu_round_bf16_many,
    .matmul_forward_bf16 = cpu_matmul_forward_bf16,
    .matmul_backward_bf16 = cpu_matmul_backward_bf16,
    .matmul_bf16_scratch = cpu_matmul_bf16_scratch,
    .lora_down_bf16 = cpu_lora_down_bf16,
    .set_precision = cpu_set_precision,
    .best_precision = cpu_best_precision,
    .set_attention = cpu_set_attention,
    .set_step = cpu_set_step,
    .lora_forward = cpu_lora_forward,
    .lora_backward = cpu_lora_backward,
    .lora_backward_bf16 = cpu_lora_backward_bf16,
    .lora_dinp_bf16 = cpu_lora_dinp_bf16,
    .dora_norm = cpu_dora_norm,
    .dora_forward = cpu_dora_forward,
    .dora_backward = cpu_dora_backward,
    .lora_dropout_rest = cpu_lora_dropout_rest,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .attention_scratch = cpu_attention_scratch,
    .attention_saved = cpu_attention_saved,
    .attention_saved_out = cpu_attention_saved_out,
    .attention_cached = cpu_attention_cached,
    .attention_cached_scratch = cpu_attention_cached_scratch,
    .cache_write = cpu_cache_write,
    .activation_forward = cpu_activation_forward,
    .activation_backward = cpu_activation_backward,
    .dropout_forward = cpu_dropout_forward,
    .uniform_noise = cpu_uniform_noise,
    .dropout_backward = cpu_dropout_backward,
    .add = cpu_add,
    .axpy = cpu_axpy,
    .scale = cpu_scale,
    .first_token_forward = cpu_first_token_forward,
    .first_token_backward = cpu_first_token_backward,
    .cross_entropy = cpu_cross_entropy,
    .lm_head_cross_entropy = cpu_lm_head_cross_entropy,
    .dpo_loss = cpu_dpo_loss,
    .reward_loss = cpu_reward_loss,
    .grpo_weights = cpu_grpo_weights,
    .adamw_step = cpu_adamw_step,
};
