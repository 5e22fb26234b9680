/* test_ops.c: the CPU backend (ops_cpu) against finite differences and naive references.
 *
 * Every op with a backward goes through gradcheck(): L = sum(out * w) for a random w, the
 * analytic gradient from the op's backward (dout = w) is compared per element with central
 * differences of the float forward evaluated in double, and along one random direction.
 * The same driver checks that backward accumulates (+=, twice = double) and that a NULL
 * gradient skips only that gradient. Forward values are compared with naive double loops
 * written here. Shapes are small (B=2, T=5, C=8, NH=2, R=2) so this stays fast under ASan.
 * The chunked LM head is also checked against the unchunked matmul + cross_entropy path.
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "grpo_cases.h"
#include "loraft/activation.h"
#include "loraft/ops.h"
#include "loraft/quant.h"
#include "loraft/rng.h"
#include "loraft/safetensors.h" /* f32_to_bf16, bf16_to_f32 */

static const Ops *ops = &ops_cpu;
static Rng rng = {20240601, 0};

/* Uniform in [lo, hi). */
static float urand(float lo, float hi) {
    return lo + (hi - lo) * rng_next_uniform(&rng);
}

static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = urand(lo, hi);
}

/* A malloc'ed vector of n uniform values in [lo, hi) (all lo when lo == hi). */
static float *rand_vec(size_t n, float lo, float hi) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    fill(x, n, lo, hi);
    return x;
}

static float *copy_vec(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}

static float max_abs(const float *x, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
    return m;
}

/* Counts elements with |a - b| > atol + rtol * |b|, printing the first few. */
static int count_mismatch(const char *what, const float *a, const double *b, size_t n, double atol,
                          double rtol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i] - b[i]) <= atol + rtol * fabs(b[i])) continue;
        if (bad++ < 5) fprintf(stderr, "  %s[%zu] = %.8g, expected %.8g\n", what, i, a[i], b[i]);
    }
    return bad;
}

/* ---- the gradient-check driver ---- */

typedef struct Param {
    const char *name;
    float *x, *g; /* input and its gradient buffer, n elements */
    size_t n;
} Param;

typedef struct GradCase {
    const char *name;
    void *ctx;
    void (*forward)(void *ctx); /* fills out from the params' x */
    /* += into params[k].g where bit k of use is set, NULL for the others */
    void (*backward)(void *ctx, const float *dout, unsigned use);
    float *out, *w;
    size_t nout;
    Param p[4];
    int np;
    float eps;  /* finite-difference step */
    int keep_w; /* use the w set by the caller instead of a random one */
} GradCase;

/* A case with no params yet and a malloc'ed w[nout]; gradcheck() frees w. */
static GradCase grad_case(const char *name, void *ctx, void (*forward)(void *),
                          void (*backward)(void *, const float *, unsigned), float *out,
                          size_t nout, float eps) {
    GradCase gc = {.name = name,
                   .ctx = ctx,
                   .forward = forward,
                   .backward = backward,
                   .out = out,
                   .w = rand_vec(nout, 0, 0),
                   .nout = nout,
                   .eps = eps};
    return gc;
}

static void case_param(GradCase *gc, const char *name, float *x, float *g, size_t n) {
    gc->p[gc->np++] = (Param){name, x, g, n};
}

static double case_loss(GradCase *gc) {
    gc->forward(gc->ctx);
    double L = 0.0;
    for (size_t i = 0; i < gc->nout; i++) L += (double)gc->out[i] * gc->w[i];
    return L;
}

/* Runs backward with the gradients in `use` starting from random values and returns, per
 * param, what was added (g_after - g_before) in an[k] (NULL when not in use). */
static void backward_delta(GradCase *gc, unsigned use, float *an[4]) {
    float *before[4];
    for (int k = 0; k < gc->np; k++) {
        float *g = gc->p[k].g;
        for (size_t i = 0; i < gc->p[k].n; i++) g[i] = urand(-1.0f, 1.0f);
        before[k] = copy_vec(g, gc->p[k].n);
    }
    gc->backward(gc->ctx, gc->w, use);
    for (int k = 0; k < gc->np; k++) {
        an[k] = NULL;
        if (use >> k & 1) {
            an[k] = copy_vec(gc->p[k].g, gc->p[k].n);
            for (size_t i = 0; i < gc->p[k].n; i++) an[k][i] -= before[k][i];
        } else {
            /* not requested: the buffer must be untouched (it was passed as NULL) */
            CHECK(!memcmp(before[k], gc->p[k].g, sizeof(float) * gc->p[k].n));
        }
        free(before[k]);
    }
}

/* Central difference of L along x[i] (dir == NULL) or along direction dir (all of x). */
static double fd_derivative(GradCase *gc, Param *p, size_t i, const float *dir) {
    float *save = copy_vec(p->x, p->n);
    double L[2], h = 2.0 * gc->eps;
    for (int s = 0; s < 2; s++) {
        float step = s ? -gc->eps : gc->eps;
        if (dir)
            for (size_t j = 0; j < p->n; j++) p->x[j] = save[j] + step * dir[j];
        else
            p->x[i] = save[i] + step;
        L[s] = case_loss(gc);
    }
    if (!dir) h = (double)(save[i] + gc->eps) - (double)(save[i] - gc->eps); /* float steps */
    memcpy(p->x, save, sizeof(float) * p->n);
    free(save);
    return (L[0] - L[1]) / h;
}

/* Per element: |fd - an| <= 3e-3 * max|an| + 1e-2 * |an|. Projected on a random direction d
 * with an's signs (so that sum(an * d) does not cancel to near 0, where the difference's
 * truncation error would dominate): relative error of sum(an * d) vs the directional
 * difference < 1e-2. */
static void check_param_fd(GradCase *gc, Param *p, const float *an) {
    float scale = max_abs(an, p->n);
    double *fd = malloc(sizeof(double) * p->n), worst = 0.0;
    for (size_t i = 0; i < p->n; i++) {
        fd[i] = fd_derivative(gc, p, i, NULL);
        double e = fabs(fd[i] - an[i]) / (scale + 1e-30);
        worst = e > worst ? e : worst;
    }
    char what[128];
    snprintf(what, sizeof what, "%s d%s (analytic vs finite difference)", gc->name, p->name);
    int bad = count_mismatch(what, an, fd, p->n, 3e-3 * scale + 1e-6, 1e-2);
    if (bad) fprintf(stderr, "%s: %d of %zu elements off\n", what, bad, p->n);
    CHECK(bad == 0);
    CHECK(scale > 0.0f); /* a zero gradient would make this check vacuous */

    float *dir = rand_vec(p->n, 0.5f, 1.0f);
    for (size_t i = 0; i < p->n; i++) dir[i] = an[i] < 0.0f ? -dir[i] : dir[i];
    double proj = 0.0;
    for (size_t i = 0; i < p->n; i++) proj += (double)an[i] * dir[i];
    double fd_dir = fd_derivative(gc, p, 0, dir);
    double rel = fabs(fd_dir - proj) / (fabs(proj) + 1e-6);
    if (rel >= 1e-2) fprintf(stderr, "%s: projected %.8g vs %.8g\n", what, proj, fd_dir);
    CHECK(rel < 1e-2);
    printf("  %-28s d%-7s max elem err %.1e (of max|g|), projected rel err %.1e\n", gc->name,
           p->name, worst, rel);
    free(dir);
    free(fd);
}

static void gradcheck(GradCase *gc) {
    unsigned all = (1u << gc->np) - 1;
    if (!gc->keep_w)
        for (size_t i = 0; i < gc->nout; i++) gc->w[i] = urand(-1.0f, 1.0f);
    case_loss(gc); /* forward at the base point: saves what backward reads */
    float *an[4], *again[4];
    backward_delta(gc, all, an);

    /* accumulate: a second backward on top of the first adds the same again */
    for (int k = 0; k < gc->np; k++) again[k] = copy_vec(gc->p[k].g, gc->p[k].n);
    gc->backward(gc->ctx, gc->w, all);
    for (int k = 0; k < gc->np; k++) {
        int bad = 0;
        for (size_t i = 0; i < gc->p[k].n; i++)
            bad += fabsf(gc->p[k].g[i] - again[k][i] - an[k][i]) > 1e-5f * (1 + fabsf(an[k][i]));
        if (bad) fprintf(stderr, "%s d%s: second backward did not add\n", gc->name, gc->p[k].name);
        CHECK(bad == 0);
        free(again[k]);
    }

    /* NULL gradients: each one alone gives the same as with all; none at all is a no-op */
    for (int k = 0; k < gc->np && gc->np > 1; k++) {
        float *one[4];
        backward_delta(gc, 1u << k, one);
        int bad = 0;
        for (size_t i = 0; i < gc->p[k].n; i++)
            bad += fabsf(one[k][i] - an[k][i]) > 1e-5f * (1 + fabsf(an[k][i]));
        if (bad) fprintf(stderr, "%s d%s: differs when computed alone\n", gc->name, gc->p[k].name);
        CHECK(bad == 0);
        free(one[k]);
    }
    if (gc->np > 1) {
        float *none[4]; /* all NULL on return */
        backward_delta(gc, 0, none);
    }

    for (int k = 0; k < gc->np; k++) {
        check_param_fd(gc, &gc->p[k], an[k]);
        free(an[k]);
    }
    free(gc->w);
    gc->w = NULL;
}

#define USE(k, g) ((use >> (k)&1) ? (g) : NULL)

/* ---- embedding ---- */

enum { B = 2, T = 5, C = 8, NH = 2, R = 2, V = 7, N = B * T, OC = 6 };

typedef struct EmbCtx {
    int32_t ids[N], types[N];
    float wte[V * C], wpe[(T + 1) * C], wtt[2 * C], out[N * C];
    float dwte[V * C], dwpe[(T + 1) * C], dwtt[2 * C];
} EmbCtx;

static void emb_fwd(void *p) {
    EmbCtx *c = p;
    ops->embedding_forward(c->out, c->ids, c->types, NULL, c->wte, NULL, c->wpe, c->wtt, B, T, C);
}
static void emb_bwd(void *p, const float *dout, unsigned use) {
    EmbCtx *c = p;
    ops->embedding_backward(USE(0, c->dwte), USE(1, c->dwpe), USE(2, c->dwtt), dout, c->ids,
                            c->types, -1, B, T, C);
}

static void test_embedding(void) {
    EmbCtx c;
    for (int i = 0; i < N; i++) c.ids[i] = i % 3 == 0 ? 2 : (int32_t)(rng_next(&rng) % V);
    for (int i = 0; i < N; i++) c.types[i] = (int32_t)(rng_next(&rng) % 2);
    fill(c.wte, V * C, -1, 1), fill(c.wpe, (T + 1) * C, -1, 1), fill(c.wtt, 2 * C, -1, 1);
    GradCase gc = grad_case("embedding", &c, emb_fwd, emb_bwd, c.out, N * C, 1e-2f);
    case_param(&gc, "wte", c.wte, c.dwte, V * C);
    case_param(&gc, "wpe", c.wpe, c.dwpe, (T + 1) * C);
    case_param(&gc, "wtt", c.wtt, c.dwtt, 2 * C);
    gradcheck(&gc);

    /* forward vs naive, and without token types (DistilBERT): wtt NULL, types NULL */
    double ref[N * C];
    for (int bt = 0; bt < N; bt++)
        for (int k = 0; k < C; k++)
            ref[bt * C + k] = (double)c.wte[c.ids[bt] * C + k] + c.wpe[(bt % T) * C + k] +
                              c.wtt[c.types[bt] * C + k];
    emb_fwd(&c);
    CHECK(count_mismatch("embedding out", c.out, ref, N * C, 1e-6, 1e-6) == 0);
    for (int bt = 0; bt < N; bt++)
        for (int k = 0; k < C; k++) ref[bt * C + k] -= c.wtt[c.types[bt] * C + k];
    ops->embedding_forward(c.out, c.ids, NULL, NULL, c.wte, NULL, c.wpe, NULL, B, T, C);
    CHECK(count_mismatch("embedding out (no types)", c.out, ref, N * C, 1e-6, 1e-6) == 0);
    /* given positions (generation's cached ones): wpe's rows at pos, not at t */
    int32_t pos[N];
    for (int bt = 0; bt < N; bt++) {
        pos[bt] = T - bt % T;
        for (int k = 0; k < C; k++)
            ref[bt * C + k] = (double)c.wte[c.ids[bt] * C + k] + c.wpe[pos[bt] * C + k];
    }
    ops->embedding_forward(c.out, c.ids, NULL, pos, c.wte, NULL, c.wpe, NULL, B, T, C);
    CHECK(count_mismatch("embedding out (positions)", c.out, ref, N * C, 1e-6, 1e-6) == 0);
    /* padding_idx: the rows of id 2 (a third of them) add nothing to its row, the others as
     * without it */
    float dout[N * C], with_pad[V * C] = {0}, without[V * C] = {0};
    fill(dout, N * C, -1, 1);
    ops->embedding_backward(with_pad, NULL, NULL, dout, c.ids, NULL, 2, B, T, C);
    ops->embedding_backward(without, NULL, NULL, dout, c.ids, NULL, -1, B, T, C);
    double pad_row = 0, others = 0;
    int moved = 0;
    for (int k = 0; k < V * C; k++)
        if (k / C == 2)
            pad_row += fabsf(with_pad[k]), moved += without[k] != 0.0f;
        else
            others += fabsf(with_pad[k] - without[k]);
    CHECK(pad_row == 0 && others == 0 && moved == C);
}

/* ---- LoRA beside the token embedding ---- */

typedef struct EmbLoraCtx {
    int32_t ids[N];
    float AT[V * R], Bm[C * R], u[N * R], out[N * C], scratch[N * R];
    float dAT[V * R], dB[C * R];
} EmbLoraCtx;

static void emb_lora_fwd(void *p) {
    EmbLoraCtx *c = p;
    memset(c->out, 0, sizeof c->out);
    ops->embedding_lora_forward(c->out, c->u, c->ids, c->AT, c->Bm, 1.5f, N, C, R);
}
static void emb_lora_bwd(void *p, const float *dout, unsigned use) {
    EmbLoraCtx *c = p;
    ops->embedding_lora_backward(USE(0, c->dAT), USE(1, c->dB), dout, c->u, c->ids, c->Bm, 1.5f, -1,
                                 c->scratch, N, C, R);
}

static void test_embedding_lora(void) {
    EmbLoraCtx c;
    for (int i = 0; i < N; i++) c.ids[i] = i % 3 == 0 ? 2 : (int32_t)(rng_next(&rng) % V);
    fill(c.AT, V * R, -1, 1), fill(c.Bm, C * R, -1, 1);
    GradCase gc = grad_case("embedding_lora", &c, emb_lora_fwd, emb_lora_bwd, c.out, N * C, 1e-2f);
    case_param(&gc, "AT", c.AT, c.dAT, V * R);
    case_param(&gc, "B", c.Bm, c.dB, C * R);
    gradcheck(&gc);
    /* out adds to what it holds: 1.5 * AT[id] @ B^T on top of 1 */
    for (int i = 0; i < N * C; i++) c.out[i] = 1.0f;
    ops->embedding_lora_forward(c.out, c.u, c.ids, c.AT, c.Bm, 1.5f, N, C, R);
    double ref[N * C];
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) {
            double sum = 0;
            for (int r = 0; r < R; r++) sum += (double)c.AT[c.ids[n] * R + r] * c.Bm[k * R + r];
            ref[n * C + k] = 1.0 + 1.5 * sum;
        }
    CHECK(count_mismatch("embedding_lora out", c.out, ref, N * C, 1e-6, 1e-6) == 0);
    /* the padding row's A gets nothing */
    float dout[N * C];
    fill(dout, N * C, -1, 1);
    memset(c.dAT, 0, sizeof c.dAT);
    ops->embedding_lora_backward(c.dAT, NULL, dout, c.u, c.ids, c.Bm, 1.5f, 2, c.scratch, N, C, R);
    CHECK(c.dAT[2 * R] == 0.0f && c.dAT[2 * R + 1] == 0.0f);
}

/* ---- layer norm ---- */

typedef struct LnCtx {
    float inp[N * C], weight[C], bias[C], out[N * C], mean[N], rstd[N];
    float dinp[N * C], dweight[C], dbias[C];
} LnCtx;

static void ln_fwd(void *p) {
    LnCtx *c = p;
    ops->layernorm_forward(c->out, c->mean, c->rstd, NULL, c->inp, c->weight, c->bias, 1e-5f, N, C);
}
static void ln_bwd(void *p, const float *dout, unsigned use) {
    LnCtx *c = p;
    ops->layernorm_backward(USE(0, c->dinp), NULL, USE(1, c->dweight), USE(2, c->dbias), dout,
                            c->inp, NULL, c->weight, c->mean, c->rstd, N, C, OPS_ADD);
}

static void test_layernorm(void) {
    LnCtx c;
    fill(c.inp, N * C, -1, 1), fill(c.weight, C, 0.5f, 1.5f), fill(c.bias, C, -1, 1);
    GradCase gc = grad_case("layernorm", &c, ln_fwd, ln_bwd, c.out, N * C, 1e-3f);
    case_param(&gc, "inp", c.inp, c.dinp, N * C);
    case_param(&gc, "weight", c.weight, c.dweight, C);
    case_param(&gc, "bias", c.bias, c.dbias, C);
    gradcheck(&gc);

    for (int k = 0; k < C; k++) c.inp[C + k] += 100.0f; /* a row far from zero: two-pass */
    double mean[N], rstd[N], out[N * C];
    for (int n = 0; n < N; n++) {
        double s = 0, v = 0;
        for (int k = 0; k < C; k++) s += c.inp[n * C + k];
        mean[n] = s / C;
        for (int k = 0; k < C; k++)
            v += (c.inp[n * C + k] - mean[n]) * (c.inp[n * C + k] - mean[n]);
        rstd[n] = 1.0 / sqrt(v / C + 1e-5);
        for (int k = 0; k < C; k++)
            out[n * C + k] = (c.inp[n * C + k] - mean[n]) * rstd[n] * c.weight[k] + c.bias[k];
    }
    ln_fwd(&c);
    CHECK(count_mismatch("layernorm mean", c.mean, mean, N, 1e-6, 1e-6) == 0);
    CHECK(count_mismatch("layernorm rstd", c.rstd, rstd, N, 0, 1e-4) == 0);
    CHECK(count_mismatch("layernorm out", c.out, out, N * C, 1e-4, 1e-4) == 0);
}

/* ---- RMS norm ---- */

typedef struct RmsCtx {
    float inp[N * C], weight[C], out[N * C], rstd[N], dinp[N * C], dweight[C];
} RmsCtx;

static void rms_fwd(void *p) {
    RmsCtx *c = p;
    ops->residual_norm_forward(c->out, NULL, C, NULL, NULL, c->rstd, NULL, c->inp, NULL, 0.0f, 0,
                               c->weight, NULL, 1e-6f, N, C);
}
static void rms_bwd(void *p, const float *dout, unsigned use) {
    RmsCtx *c = p;
    ops->rmsnorm_backward(USE(0, c->dinp), NULL, USE(1, c->dweight), dout, c->inp, NULL, c->weight,
                          c->rstd, N, C, OPS_ADD);
}

static void test_rmsnorm(void) {
    RmsCtx c;
    fill(c.inp, N * C, -1, 1), fill(c.weight, C, 0.5f, 1.5f);
    GradCase gc = grad_case("rmsnorm", &c, rms_fwd, rms_bwd, c.out, N * C, 1e-3f);
    case_param(&gc, "inp", c.inp, c.dinp, N * C);
    case_param(&gc, "weight", c.weight, c.dweight, C);
    gradcheck(&gc);

    double rstd[N], out[N * C];
    for (int n = 0; n < N; n++) {
        double ss = 0;
        for (int k = 0; k < C; k++) ss += (double)c.inp[n * C + k] * c.inp[n * C + k];
        rstd[n] = 1.0 / sqrt(ss / C + 1e-6);
        for (int k = 0; k < C; k++) out[n * C + k] = c.inp[n * C + k] * rstd[n] * c.weight[k];
    }
    rms_fwd(&c);
    CHECK(count_mismatch("rmsnorm rstd", c.rstd, rstd, N, 0, 1e-5) == 0);
    CHECK(count_mismatch("rmsnorm out", c.out, out, N * C, 1e-6, 1e-5) == 0);
}

/* Qwen3's norm over each head, in place in rows of [q | k | v] (3 rows of H heads of HS and 5
 * more values, which stay): each head against the double RMS norm (1e-5), its values before it in
 * raw, its rstd; then rmsnorm_backward over raw's N * H rows of HS is the whole backward, checked
 * by rmsnorm's own gradient check above. */
static void test_head_norm(void) {
    enum { HN = 3, H = 4, HS = 6, LD = H * HS + 5 };
    float x[HN * LD], before[HN * LD], raw[HN * H * HS], rstd[HN * H], w[HS];
    double want[HN * LD], want_rstd[HN * H];
    fill(x, HN * LD, -2, 2), fill(w, HS, 0.5f, 1.5f);
    memcpy(before, x, sizeof x);
    for (int i = 0; i < HN * LD; i++) want[i] = x[i];
    for (int r = 0; r < HN * H; r++) {
        double *h = want + r / H * LD + r % H * HS, ss = 0;
        for (int k = 0; k < HS; k++) ss += h[k] * h[k];
        want_rstd[r] = 1.0 / sqrt(ss / HS + 1e-6);
        for (int k = 0; k < HS; k++) h[k] *= want_rstd[r] * w[k];
    }
    ops->head_norm_forward(x, LD, raw, rstd, w, 1e-6f, HN, H, HS);
    CHECK(count_mismatch("head_norm out", x, want, HN * LD, 1e-6, 1e-5) == 0);
    CHECK(count_mismatch("head_norm rstd", rstd, want_rstd, HN * H, 0, 1e-5) == 0);
    int copied = 1;
    for (int r = 0; r < HN * H; r++)
        copied &= !memcmp(raw + r * HS, before + r / H * LD + r % H * HS, HS * sizeof *raw);
    CHECK(copied);
}

/* ---- rotary position embedding (inside attention_forward / backward and cache_write) ---- */

/* The factor of cos and sin of every rope of the attention tests (YaRN's attention factor), and
 * the share of each head they turn (partial rotary embeddings, Phi-4-mini's 0.75; 1: all). */
static float rope_scale = 1.0f, rope_share = 1.0f;

/* The rotary dims of head size HS under rope_share: even, the rest of the head passes through. */
static int rope_dims(int HS) {
    return 2 * (int)(HS * rope_share / 2);
}

/* The rope ops' frequencies for head size HS under rope_share, scaled by scale. */
static const RopeFreqs *rope_test(float theta, int HS, float scale) {
    return rope_partial(theta, rope_dims(HS), scale);
}

/* HF's rotate_half in double on x [rows, H*HS] in place, at position pos[r] (pos NULL: r % T):
 * over the first D = rope_dims(HS) of each head, x cos + rotate_half(x) sin, rotate_half = [-x2,
 * x1], cos and sin times scale, the rest kept; dir -1 the transpose. The angle is HF's float
 * product of the position and inv_freq = 1 / theta^(2i / D). */
static void rope_reference(double *x, size_t rows, int T, int H, int HS, const int32_t *pos,
                           float theta, double scale, double dir) {
    int D = rope_dims(HS), half = D / 2;
    for (size_t r = 0; r < rows; r++)
        for (int h = 0; h < H; h++) {
            double *xh = x + (r * H + h) * HS;
            for (int i = 0; i < half; i++) {
                float inv_freq = (float)(1.0 / pow(theta, 2.0 * i / D)); /* HF's, to an ulp */
                float angle = (float)(pos ? pos[r] : (int32_t)(r % T)) * inv_freq;
                double c = cos(angle) * scale, sn = dir * sin(angle) * scale;
                double u = xh[i], v = xh[i + half];
                xh[i] = u * c - v * sn, xh[i + half] = v * c + u * sn;
            }
        }
}

static double *to_double(const float *x, size_t n) {
    double *d = malloc(n * sizeof *d);
    for (size_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* cache_write's rope at long positions (pos0 ..), cos and sin times scale: q turned in place, k
 * into the cache, v copied; theta 0 leaves q alone. Tolerance: float sin and cos of the same
 * float angle, 1e-6. */
static void test_rope_cache_write(int n, int pos0, int nh, int nkv, int hs, float scale) {
    int QC = nh * hs, KC = nkv * hs, L = pos0 + n;
    int32_t pos[16];
    for (int i = 0; i < n; i++) pos[i] = pos0 + i;
    float *q = rand_vec((size_t)n * QC, -1, 1), *k = rand_vec((size_t)n * KC, -1, 1);
    float *v = rand_vec((size_t)n * KC, -1, 1), *kc = rand_vec((size_t)L * KC, 0, 0);
    float *vc = rand_vec((size_t)L * KC, 0, 0), *q0 = malloc(sizeof(float) * n * QC);
    double *rq = to_double(q, (size_t)n * QC), *rk = to_double(k, (size_t)n * KC);
    memcpy(q0, q, sizeof(float) * n * QC);
    rope_reference(rq, n, 1, nh, hs, pos, 1e5f, scale, 1.0);
    rope_reference(rk, n, 1, nkv, hs, pos, 1e5f, scale, 1.0);
    ops->cache_write(kc, vc, q, QC, k, v, KC, pos, NULL, 0, rope_test(1e5f, hs, scale), n, nh, nkv,
                     hs);
    printf(
        "  rope in cache_write: %d positions from %d, NH=%d NKV=%d HS=%d (%d rotary), scale %g\n",
        n, pos0, nh, nkv, hs, rope_dims(hs), scale);
    CHECK(count_mismatch("rope q", q, rq, (size_t)n * QC, 1e-6, 1e-5) == 0);
    CHECK(count_mismatch("rope k", kc + (size_t)pos0 * KC, rk, (size_t)n * KC, 1e-6, 1e-5) == 0);
    CHECK(!memcmp(vc + (size_t)pos0 * KC, v, sizeof(float) * n * KC));
    memcpy(q, q0, sizeof(float) * n * QC);
    ops->cache_write(kc, vc, q, QC, k, v, KC, pos, NULL, 0, NULL, n, nh, nkv, hs);
    CHECK(!memcmp(q, q0, sizeof(float) * n * QC));
    CHECK(!memcmp(kc + (size_t)pos0 * KC, k, sizeof(float) * n * KC));
    free(q), free(k), free(v), free(kc), free(vc), free(q0), free(rq), free(rk);
}

/* ---- gated activations: SwiGLU (Llama), GeGLU (Gemma) ---- */

typedef struct GluCtx {
    Activation act;
    float gate[N * C], up[N * C], out[N * C], dgate[N * C], dup[N * C];
} GluCtx;

static void glu_fwd(void *p) {
    GluCtx *c = p;
    ops->glu_forward(c->act, c->out, NULL, C, NULL, c->gate, c->up, N * C, C, C);
}
static void glu_bwd(void *p, const float *dout, unsigned use) {
    GluCtx *c = p;
    ops->glu_backward(c->act, USE(0, c->dgate), USE(1, c->dup), NULL, dout, NULL, c->gate, c->up,
                      NULL, N * C, C, C, OPS_ADD);
}

/* act(g) in double: SiLU, or PyTorch's tanh GELU (Gemma's gelu_pytorch_tanh) */
static double act_ref(double g, Activation act) {
    if (act == ACT_SILU) return g / (1.0 + exp(-g));
    return 0.5 * g * (1.0 + tanh(sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
}

static void test_glu(Activation act, const char *name) {
    GluCtx c = {.act = act};
    fill(c.gate, N * C, -6, 6), fill(c.up, N * C, -2, 2);
    GradCase gc = grad_case(name, &c, glu_fwd, glu_bwd, c.out, N * C, 1e-2f);
    case_param(&gc, "gate", c.gate, c.dgate, N * C);
    case_param(&gc, "up", c.up, c.dup, N * C);
    gradcheck(&gc);
    double ref[N * C];
    for (int i = 0; i < N * C; i++) ref[i] = act_ref(c.gate[i], act) * c.up[i];
    glu_fwd(&c);
    CHECK(count_mismatch(name, c.out, ref, N * C, 1e-6, 1e-6) == 0);
    float nan_gate = NAN, one = 1.0f, out;
    ops->glu_forward(act, &out, NULL, 1, NULL, &nan_gate, &one, 1, 1, 1);
    CHECK(isnan(out));
    /* gate and up side by side, rows [gate | up] (one GEMM's outputs): the same values */
    float gu[N * 2 * C], rows[N * C];
    for (int i = 0; i < N * C; i++) gu[i / C * 2 * C + i % C] = c.gate[i];
    for (int i = 0; i < N * C; i++) gu[i / C * 2 * C + C + i % C] = c.up[i];
    ops->glu_forward(act, rows, NULL, C, NULL, gu, gu + C, N * C, C, 2 * C);
    CHECK(memcmp(rows, c.out, sizeof rows) == 0);
}

/* ---- dense layer ---- */

typedef struct MmCtx {
    float *inp, *weight, *bias, *out, *dinp, *dweight, *dbias;
    int n, c, oc;
} MmCtx;

static void mm_fwd(void *p) {
    MmCtx *m = p;
    ops->matmul_forward(m->out, m->inp, m->weight, m->bias, m->n, m->c, m->oc);
}
static void mm_bwd(void *p, const float *dout, unsigned use) {
    MmCtx *m = p;
    ops->matmul_backward(USE(0, m->dinp), USE(1, m->dweight), dout, m->inp, m->weight, m->n, m->c,
                         m->oc, OPS_ADD);
    if (USE(2, m->dbias)) ops->bias_backward(m->dbias, dout, NULL, m->oc, NULL, m->n, m->oc);
}

static MmCtx mm_make(int n, int c, int oc) {
    MmCtx m = {rand_vec((size_t)n * c, -1, 1),
               rand_vec((size_t)oc * c, -1, 1),
               rand_vec(oc, -1, 1),
               rand_vec((size_t)n * oc, 0, 0),
               rand_vec((size_t)n * c, 0, 0),
               rand_vec((size_t)oc * c, 0, 0),
               rand_vec(oc, 0, 0),
               n,
               c,
               oc};
    return m;
}
static void mm_free(MmCtx *m) {
    free(m->inp), free(m->weight), free(m->bias), free(m->out);
    free(m->dinp), free(m->dweight), free(m->dbias);
}

/* Forward and backward at a ragged shape against double loops (OpenBLAS's blocked paths). */
static void test_matmul_reference(int n, int c, int oc) {
    MmCtx m = mm_make(n, c, oc);
    float *dout = rand_vec((size_t)n * oc, -1, 1);
    double *ref = malloc(sizeof(double) * n * c * oc); /* big enough for every ref below */
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            double s = m.bias[o];
            for (int k = 0; k < c; k++) s += (double)m.inp[i * c + k] * m.weight[o * c + k];
            ref[i * oc + o] = s;
        }
    mm_fwd(&m);
    CHECK(count_mismatch("matmul out", m.out, ref, (size_t)n * oc, 1e-5, 1e-5) == 0);
    memset(m.dinp, 0, sizeof(float) * n * c), memset(m.dweight, 0, sizeof(float) * oc * c);
    memset(m.dbias, 0, sizeof(float) * oc);
    mm_bwd(&m, dout, 7);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int o = 0; o < oc; o++) s += (double)dout[i * oc + o] * m.weight[o * c + k];
            ref[i * c + k] = s;
        }
    CHECK(count_mismatch("matmul dinp", m.dinp, ref, (size_t)n * c, 1e-5, 1e-5) == 0);
    for (int o = 0; o < oc; o++)
        for (int k = 0; k < c; k++) {
            double s = 0;
            for (int i = 0; i < n; i++) s += (double)dout[i * oc + o] * m.inp[i * c + k];
            ref[o * c + k] = s;
        }
    CHECK(count_mismatch("matmul dweight", m.dweight, ref, (size_t)oc * c, 1e-5, 1e-5) == 0);
    for (int o = 0; o < oc; o++) {
        double s = 0;
        for (int i = 0; i < n; i++) s += dout[i * oc + o];
        ref[o] = s;
    }
    CHECK(count_mismatch("matmul dbias", m.dbias, ref, oc, 1e-5, 1e-5) == 0);
    /* without bias */
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            double s = 0;
            for (int k = 0; k < c; k++) s += (double)m.inp[i * c + k] * m.weight[o * c + k];
            ref[i * oc + o] = s;
        }
    ops->matmul_forward(m.out, m.inp, m.weight, NULL, n, c, oc);
    CHECK(count_mismatch("matmul out (no bias)", m.out, ref, (size_t)n * oc, 1e-5, 1e-5) == 0);
    free(ref), free(dout);
    mm_free(&m);
}

static void test_matmul(void) {
    MmCtx m = mm_make(N, C, OC);
    GradCase gc = grad_case("matmul", &m, mm_fwd, mm_bwd, m.out, N * OC, 1e-2f);
    case_param(&gc, "inp", m.inp, m.dinp, N * C);
    case_param(&gc, "weight", m.weight, m.dweight, OC * C);
    case_param(&gc, "bias", m.bias, m.dbias, OC);
    gradcheck(&gc);
    mm_free(&m);
    test_matmul_reference(37, 53, 29);
    test_matmul_reference(130, 70, 257);
}

/* ---- bf16 GEMMs of frozen weights (model.precision bf16) ---- */

static double bf16_value(float x) {
    return bf16_to_f32(f32_to_bf16(x));
}

/* Against double loops over the bf16-rounded operands: the products are exact in f32, so only
 * the f32 summation differs (1e-5). Rows of out, x and w lie ldo = oc + 2 (a group's outputs side
 * by side: the two columns past oc untouched), ldx = c + 2 and ldw = c + 3 apart, and
 * w has r = 3 rows more, which backward multiplies with du [n,r] beside dout in dd = [bf16(dout) |
 * bf16(du)], rows ldd = oc + r + 1 apart (a weight with room for LoRA's B and A: the fused
 * GEMMs). */
static void test_matmul_bf16(int n, int c, int oc) {
    int ldo = oc + 2, ldx = c + 2, ldw = c + 3, r = 3;
    float *x = rand_vec((size_t)n * c, -1, 1), *w = rand_vec((size_t)(oc + r) * c, -1, 1);
    float *bias = rand_vec(oc, -1, 1), *dout = rand_vec((size_t)n * oc, -1, 1);
    float *du = rand_vec((size_t)n * r, -1, 1);
    float *out = rand_vec((size_t)n * ldo, 7, 7), *dinp = rand_vec((size_t)n * c, 0.5f, 0.5f);
    float *scratch = malloc(sizeof(float) * ops->matmul_bf16_scratch(n, c, oc + r));
    uint16_t *w16 = malloc(sizeof(uint16_t) * (oc + r) * ldw);
    uint16_t *x16 = malloc(sizeof(uint16_t) * n * ldx);
    int ldd = oc + r + 1;
    uint16_t *dd = malloc(sizeof(uint16_t) * n * ldd);
    double *ref = malloc(sizeof(double) * (size_t)n * (c > oc ? c : oc));
    ops->dequantize_rows_bf16(w16, w, GGML_F32, 0, oc + r, c, ldw);
    ops->dequantize_rows_bf16(x16, x, GGML_F32, 0, n, c, ldx);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < oc; o++) {
            double s = bias[o];
            for (int k = 0; k < c; k++) s += bf16_value(x[i * c + k]) * bf16_value(w[o * c + k]);
            ref[i * oc + o] = s;
        }
    ops->matmul_forward_bf16(out, NULL, ldo, x16, ldx, w16, ldw, bias, scratch, n, c, oc);
    int untouched = 1;
    for (int i = 0; i < n; i++) {
        untouched = untouched && out[i * ldo + oc] == 7 && out[i * ldo + oc + 1] == 7;
        memmove(out + i * oc, out + i * ldo, sizeof(float) * oc); /* rows together */
    }
    CHECK(untouched);
    CHECK(count_mismatch("matmul_bf16 out", out, ref, (size_t)n * oc, 1e-5, 1e-5) == 0);
    /* the bf16 output (no bias: its reader adds it): the sums rounded once, within half a bf16
     * step of the exact ones, the gap columns untouched */
    uint16_t *ob = malloc(sizeof(uint16_t) * n * ldo);
    for (size_t i = 0; i < (size_t)n * ldo; i++) ob[i] = 0x7fc1;
    ops->matmul_forward_bf16(NULL, ob, ldo, x16, ldx, w16, ldw, NULL, scratch, n, c, oc);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        bad += ob[i * ldo + oc] != 0x7fc1 || ob[i * ldo + oc + 1] != 0x7fc1;
        for (int o = 0; o < oc; o++) {
            double want = ref[i * oc + o] - bias[o], got = bf16_to_f32(ob[i * ldo + o]);
            bad += fabs(got - want) > fabs(want) / 256 + 1e-6;
        }
    }
    CHECK(bad == 0);
    free(ob);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < c; k++) {
            double s = 0.5;
            for (int o = 0; o < oc; o++)
                s += bf16_value(dout[i * oc + o]) * bf16_value(w[o * c + k]);
            for (int j = 0; j < r; j++)
                s += bf16_value(du[i * r + j]) * bf16_value(w[(oc + j) * c + k]);
            ref[i * c + k] = s;
        }
    ops->dequantize_rows_bf16(dd, dout, GGML_F32, 0, n, oc, ldd);
    ops->dequantize_rows_bf16(dd + oc, du, GGML_F32, 0, n, r, ldd);
    ops->matmul_backward_bf16(dinp, NULL, dd, ldd, w16, ldw, scratch, n, c, oc + r, OPS_ADD);
    CHECK(count_mismatch("matmul_bf16 dinp", dinp, ref, (size_t)n * c, 1e-5, 1e-5) == 0);
    uint16_t *db = malloc(sizeof(uint16_t) * n * c); /* in bf16 (OPS_SET): the sums rounded */
    ops->matmul_backward_bf16(NULL, db, dd, ldd, w16, ldw, scratch, n, c, oc + r, OPS_SET);
    bad = 0;
    for (size_t i = 0; i < (size_t)n * c; i++) {
        double want = ref[i] - 0.5, got = bf16_to_f32(db[i]);
        bad += fabs(got - want) > fabs(want) / 256 + 1e-6;
    }
    CHECK(bad == 0);
    free(db);
    /* f32 rows are rounded to nearest even: 1 + 2^-8 is a tie and goes down to 1 */
    float one_and_tie = 1.00390625f;
    uint16_t got;
    ops->dequantize_rows_bf16(&got, &one_and_tie, GGML_F32, 0, 1, 1, 1);
    CHECK(got == f32_to_bf16(1.0f));
    free(x), free(w), free(bias), free(dout), free(out), free(dinp), free(scratch), free(w16);
    free(x16), free(du), free(ref), free(dd);
}

/* Rows from the middle of a packed matrix, as bf16 rows ld = cols + 5 apart: quant.c's decode
 * rounded to nearest even. */
static void test_dequantize_bf16(int type, int rows, int cols, int row0, int n_rows) {
    size_t n = (size_t)rows * cols, ld = (size_t)cols + 5;
    size_t bytes = n / quant_block_elems(type) * quant_block_bytes(type);
    float *x = rand_vec(n, -3, 3), *dec = malloc(sizeof(float) * n);
    uint8_t *packed = malloc(bytes);
    uint16_t *out = malloc(sizeof(uint16_t) * rows * ld);
    LfError err;
    CHECK_OK(quant_quantize(type, x, n, packed, &err), &err);
    CHECK_OK(quant_dequantize(type, packed, dec, (int64_t)n), &err);
    ops->dequantize_rows_bf16(out, packed, type, row0, n_rows, cols, (int)ld);
    int bad = 0;
    for (size_t i = 0; i < (size_t)n_rows * cols; i++)
        bad += out[i / cols * ld + i % cols] != f32_to_bf16(dec[(size_t)row0 * cols + i]);
    if (bad)
        fprintf(stderr, "dequantize_rows_bf16 %s: %d values off\n", quant_type_name(type), bad);
    CHECK(bad == 0);
    free(x), free(dec), free(packed), free(out);
}

/* round_bf16_many: two copies into rows ld > cols apart, the same bits as f32_to_bf16 (round to
 * nearest even), the values between the rows untouched. */
static void test_round_bf16_many(void) {
    enum { ROWS0 = 3, COLS0 = 5, ROWS1 = 4, COLS1 = 2, LD = 7 };
    float *a = rand_vec(ROWS0 * COLS0, -3, 3), *b = rand_vec(ROWS1 * COLS1, -3, 3);
    uint16_t dst[(ROWS0 + ROWS1) * LD];
    for (size_t i = 0; i < sizeof dst / sizeof *dst; i++) dst[i] = 0x7fc1;
    OpsBf16Copy copies[2] = {{a, dst, ROWS0, COLS0, LD}, {b, dst + ROWS0 * LD, ROWS1, COLS1, LD}};
    ops->round_bf16_many(copies, 2);
    int bad = 0;
    for (int i = 0; i < ROWS0 + ROWS1; i++)
        for (int c = 0; c < LD; c++) {
            const float *src = i < ROWS0 ? a + i * COLS0 : b + (i - ROWS0) * COLS1;
            int cols = i < ROWS0 ? COLS0 : COLS1;
            bad += dst[i * LD + c] != (c < cols ? f32_to_bf16(src[c]) : 0x7fc1);
        }
    CHECK(bad == 0);
    free(a), free(b);
}

/* ---- LoRA ---- */

typedef struct LoraCtx {
    float inp[N * C], A[R * C], Bm[OC * R], base[N * OC], out[N * OC], u[N * R];
    float dinp[N * C], dA[R * C], dB[OC * R], scratch[N * C + N * R];
    float p;
} LoraCtx;

static const float lora_scale = 2.0f;
static const uint64_t lora_seed = 42;

static void lora_fwd(void *p) {
    LoraCtx *c = p;
    memcpy(c->out, c->base, sizeof c->out); /* the branch adds onto the base output */
    ops->lora_forward(c->out, c->u, c->inp, c->A, c->Bm, lora_scale, c->p, lora_seed, c->scratch, N,
                      C, OC, R);
}
static void lora_bwd(void *p, const float *dout, unsigned use) {
    LoraCtx *c = p;
    ops->lora_backward(USE(0, c->dinp), USE(1, c->dA), USE(2, c->dB), dout, c->inp, c->u, c->A,
                       c->Bm, lora_scale, c->p, lora_seed, c->scratch, N, C, OC, R);
}

/* lora_backward_bf16 (from inp, and from its bf16 copy xb: lora_down_bf16's of two, OPS_ADD)
 * against double sums of the bf16 operands it defines: du = scale * dout @ B (1e-5) and dd =
 * [bf16(dout) | gap | bf16(du)] (du's bf16 one step apart at most: a rounding boundary between
 * the f32 and the double sum; the gap's columns untouched), dB = scale * bf16(dout)^T bf16(u), dA =
 * bf16(du)^T bf16(drop(x)) with the op's own bf16(du); then lora_dinp_bf16 of two linears (this du
 * and A under two seeds) over dinp: dinp + drop_1'(du @ A) + drop_2'(du @ A), 1e-5. */
static void test_lora_backward_bf16(LoraCtx *c, const uint16_t *xb) {
    enum { GAP = 3, DU_COL = OC + GAP, LDD = DU_COL + R };
    float dout[N * OC], du[N * R], dinp0[N * C];
    double rdu[N * R];
    fill(dout, N * OC, -1, 1), fill(dinp0, N * C, -1, 1);
    for (int n = 0; n < N; n++)
        for (int r = 0; r < R; r++) {
            double s = 0;
            for (int o = 0; o < OC; o++) s += (double)dout[n * OC + o] * c->Bm[o * R + r];
            rdu[n * R + r] = lora_scale * s, du[n * R + r] = (float)rdu[n * R + r];
        }
    const uint64_t seeds[2] = {lora_seed, lora_seed + 1};
    for (int from_copy = 0; from_copy < 2; from_copy++) {
        float dinp[N * C], gdu[N * R], dA[R * C] = {0}, dB[OC * R] = {0};
        float *scratch = malloc(sizeof(float) * ops_lora_bf16_scratch(N, C, OC, R));
        uint16_t dd[N * LDD];
        memset(dd, 0xff, sizeof dd);
        memcpy(dinp, dinp0, sizeof dinp);
        OpsLoraBackward lin = {.dout = dout,
                               .u = c->u,
                               .B = c->Bm,
                               .du = gdu,
                               .dA = dA,
                               .dB = dB,
                               .seed = lora_seed,
                               .OC = OC,
                               .dout_col = 0,
                               .du_col = DU_COL};
        ops->lora_backward_bf16(dd, LDD, &lin, 1, from_copy ? NULL : c->inp, from_copy ? xb : NULL,
                                C + 2 * R, lora_scale, c->p, scratch, N, C, R);
        ops->lora_dinp_bf16(dinp, NULL, (const float *const[]){gdu, gdu},
                            (const float *const[]){c->A, c->A}, seeds, 2, c->p, N, C, R, OPS_ADD);
        /* into a bf16 dinp (matmul_backward_bf16's): as from its values in f32, rounded */
        float wide[N * C];
        uint16_t half[N * C];
        for (int i = 0; i < N * C; i++)
            half[i] = f32_to_bf16(dinp0[i]), wide[i] = bf16_value(dinp0[i]);
        ops->lora_dinp_bf16(wide, NULL, (const float *const[]){gdu, gdu},
                            (const float *const[]){c->A, c->A}, seeds, 2, c->p, N, C, R, OPS_ADD);
        ops->lora_dinp_bf16(NULL, half, (const float *const[]){gdu, gdu},
                            (const float *const[]){c->A, c->A}, seeds, 2, c->p, N, C, R, OPS_ADD);
        int rounded = 1;
        for (int i = 0; i < N * C; i++) rounded = rounded && half[i] == f32_to_bf16(wide[i]);
        CHECK(rounded);
        CHECK(count_mismatch("lora_bf16 du", gdu, rdu, N * R, 1e-6, 1e-5) == 0);
        int bad = 0;
        for (int n = 0; n < N; n++)
            for (int k = 0; k < LDD; k++) {
                if (k >= OC && k < DU_COL) {
                    bad += dd[n * LDD + k] != 0xffff;
                    continue;
                }
                float want = k < OC ? dout[n * OC + k] : du[n * R + k - DU_COL];
                float got = bf16_to_f32(dd[n * LDD + k]);
                bad += k < OC ? got != bf16_value(want)
                              : fabsf(got - want) > fabsf(want) * 0x1p-8f + 1e-6f;
            }
        CHECK(bad == 0);
        double rdA[R * C], rdB[OC * R], rdinp[N * C];
        for (int o = 0; o < OC; o++)
            for (int r = 0; r < R; r++) {
                double s = 0;
                for (int n = 0; n < N; n++)
                    s += bf16_value(dout[n * OC + o]) * bf16_value(c->u[n * R + r]);
                rdB[o * R + r] = lora_scale * s;
            }
        for (int r = 0; r < R; r++)
            for (int k = 0; k < C; k++) {
                double s = 0;
                for (int n = 0; n < N; n++) {
                    float x = from_copy ? bf16_to_f32(xb[n * (C + 2 * R) + k]) : c->inp[n * C + k];
                    x *= rng_row_dropout(lora_seed, (uint64_t)n, (uint32_t)k, c->p);
                    s += (double)bf16_to_f32(dd[n * LDD + DU_COL + r]) * bf16_value(x);
                }
                rdA[r * C + k] = s;
            }
        for (int n = 0; n < N; n++)
            for (int k = 0; k < C; k++) {
                double s = 0;
                for (int r = 0; r < R; r++) s += (double)du[n * R + r] * c->A[r * C + k];
                rdinp[n * C + k] = dinp0[n * C + k];
                for (int j = 0; j < 2; j++)
                    rdinp[n * C + k] +=
                        s * rng_row_dropout(seeds[j], (uint64_t)n, (uint32_t)k, c->p);
            }
        CHECK(count_mismatch("lora_bf16 dB", dB, rdB, OC * R, 1e-6, 1e-5) == 0);
        CHECK(count_mismatch("lora_bf16 dA", dA, rdA, R * C, 1e-6, 1e-5) == 0);
        CHECK(count_mismatch("lora_bf16 dinp", dinp, rdinp, N * C, 1e-6, 1e-5) == 0);
        free(scratch);
    }
}

static void test_lora(float p) {
    LoraCtx c;
    c.p = p;
    fill(c.inp, N * C, -1, 1), fill(c.A, R * C, -1, 1), fill(c.Bm, OC * R, -1, 1);
    fill(c.base, N * OC, -1, 1);
    GradCase gc = grad_case(p > 0 ? "lora (p=0.3)" : "lora (p=0)", &c, lora_fwd, lora_bwd, c.out,
                            N * OC, 1e-2f);
    case_param(&gc, "inp", c.inp, c.dinp, N * C);
    case_param(&gc, "A", c.A, c.dA, R * C);
    case_param(&gc, "B", c.Bm, c.dB, OC * R);
    gradcheck(&gc);

    /* forward vs naive: out = base + scale * (drop(inp) A^T) B^T */
    double ref[N * OC];
    lora_fwd(&c);
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = 0;
            for (int r = 0; r < R; r++) {
                double u = 0;
                for (int k = 0; k < C; k++)
                    u += (double)c.inp[n * C + k] *
                         rng_row_dropout(lora_seed, (uint64_t)n, (uint32_t)k, p) * c.A[r * C + k];
                s += u * c.Bm[o * R + r];
            }
            ref[n * OC + o] = c.base[n * OC + o] + lora_scale * s;
        }
    CHECK(count_mismatch("lora out", c.out, ref, N * OC, 1e-5, 1e-5) == 0);

    /* lora_down_bf16 of two linears of this input (the second one's A reversed, its own seed):
     * u as lora_forward's, bit for bit, and the copy [bf16(inp) | bf16(scale * u) | bf16(scale *
     * u2)] */
    enum { LDX = C + 2 * R };
    float A2[R * C], u2[N * R], u_ref[N * R];
    for (int i = 0; i < R * C; i++) A2[i] = c.A[R * C - 1 - i];
    uint16_t xb[N * LDX];
    ops->lora_down_bf16(xb, (float *const[]){c.u, u2}, (const float *const[]){c.A, A2},
                        (const uint64_t[]){lora_seed, lora_seed + 1}, 2, c.inp, lora_scale, p,
                        c.scratch, N, C, R);
    int bad = 0;
    for (int j = 0; j < 2; j++) {
        ops->lora_forward(c.out, u_ref, c.inp, j ? A2 : c.A, c.Bm, lora_scale, p, lora_seed + j,
                          c.scratch, N, C, OC, R);
        const float *u = j ? u2 : c.u;
        for (int n = 0; n < N; n++) {
            const uint16_t *row = xb + (size_t)n * LDX;
            for (int k = 0; k < C; k++) bad += row[k] != f32_to_bf16(c.inp[n * C + k]);
            for (int r = 0; r < R; r++)
                bad += u[n * R + r] != u_ref[n * R + r] ||
                       row[C + j * R + r] != f32_to_bf16(lora_scale * u_ref[n * R + r]);
        }
    }
    CHECK(bad == 0);
    /* inp NULL: x from the copy's own bf16 columns, as a norm writes them: the same u and copy as
     * from inp's bf16 values widened, bit for bit (the u columns overwritten) */
    float xw[N * C], uw[2][N * R], uc[2][N * R];
    uint16_t want[N * LDX], got[N * LDX];
    for (int i = 0; i < N * C; i++) xw[i] = bf16_to_f32(f32_to_bf16(c.inp[i]));
    const float *As[2] = {c.A, A2};
    const uint64_t seeds[2] = {lora_seed, lora_seed + 1};
    ops->lora_down_bf16(want, (float *const[]){uw[0], uw[1]}, As, seeds, 2, xw, lora_scale, p,
                        c.scratch, N, C, R);
    memcpy(got, xb, sizeof got);
    for (int n = 0; n < N; n++) memset(got + n * LDX + C, 0xff, 2 * R * sizeof *got);
    ops->lora_down_bf16(got, (float *const[]){uc[0], uc[1]}, As, seeds, 2, NULL, lora_scale, p,
                        c.scratch, N, C, R);
    CHECK(memcmp(got, want, sizeof got) == 0);
    CHECK(memcmp(uc, uw, sizeof uc) == 0);
    test_lora_backward_bf16(&c, xb);
}

/* ---- attention ---- */

/* One attention problem: q [B,T,NH*HS], k, v [B,T,NKV*HS], mask [B,T] (NULL: none). */
typedef struct AttShape {
    int B, T, NH, NKV, HS, causal;
    float p;
    const int32_t *mask;
    float rope; /* rope_theta, 0: none */
    int window; /* the sliding window (causal), 0: none */
} AttShape;

static const uint64_t att_seed = 7;
/* How the attention tests score (ops.h AttnScore): scale 0 is 1 / sqrt(HS); Gemma's scalar and
 * soft-capping are set around a second run of some cases, as rope_scale is. */
static float att_scale = 0.0f, att_softcap = 0.0f;

static AttnScore att_score(int HS) {
    AttnScore s = attn_score_plain(HS);
    if (att_scale > 0.0f) s.scale = att_scale;
    s.softcap = att_softcap;
    return s;
}

/* ops.h's definition in double, naively: lse [B,NH,T] (+INFINITY for a row with no allowed
 * key) and out; with dout, the gradients dq, dk, dv (overwritten). */
static void attention_naive(const AttShape *a, const float *q, const float *k, const float *v,
                            const float *dout, double *lse, double *out, double *dq, double *dk,
                            double *dv) {
    int T = a->T, HS = a->HS, QC = a->NH * HS, KC = a->NKV * HS, G = a->NH / a->NKV;
    size_t nq = (size_t)a->B * T * QC, nk = (size_t)a->B * T * KC;
    double *P = malloc(sizeof(double) * T), *keep = malloc(sizeof(double) * T);
    double *dP = malloc(sizeof(double) * T), *slope = malloc(sizeof(double) * T);
    AttnScore sc = att_score(HS);
    double scale = sc.scale, cap = sc.softcap;
    for (size_t i = 0; i < nq; i++) out[i] = dout ? (dq[i] = 0) : 0;
    for (size_t i = 0; dout && i < nk; i++) dk[i] = dv[i] = 0;
    for (int b = 0; b < a->B; b++)
        for (int h = 0; h < a->NH; h++)
            for (int i = 0; i < T; i++) {
                size_t row = ((size_t)b * a->NH + h) * T + i,
                       qi = ((size_t)b * T + i) * QC + h * HS;
                double maxv = -INFINITY, sum = 0, D = 0;
                for (int j = 0; j < T; j++) {
                    const float *kj = k + ((size_t)b * T + j) * KC + h / G * HS;
                    double s = 0;
                    for (int d = 0; d < HS; d++) s += (double)q[qi + d] * kj[d];
                    s *= scale, slope[j] = 1;
                    if (cap > 0) s = cap * tanh(s / cap), slope[j] = 1 - (s / cap) * (s / cap);
                    int allowed = (!a->mask || a->mask[b * T + j]) &&
                                  (!a->causal || (j <= i && (!a->window || i - j < a->window)));
                    P[j] = allowed ? s : -INFINITY;
                    maxv = P[j] > maxv ? P[j] : maxv;
                }
                for (int j = 0; j < T; j++) sum += P[j] > -INFINITY ? exp(P[j] - maxv) : 0;
                lse[row] = sum > 0 ? maxv + log(sum) : INFINITY;
                for (int j = 0; j < T; j++) {
                    const float *vj = v + ((size_t)b * T + j) * KC + h / G * HS;
                    P[j] = sum > 0 && P[j] > -INFINITY ? exp(P[j] - lse[row]) : 0;
                    keep[j] = rng_row_dropout(att_seed, row, (uint32_t)j, a->p);
                    dP[j] = 0;
                    for (int d = 0; d < HS; d++) {
                        out[qi + d] += P[j] * keep[j] * vj[d];
                        if (dout) dP[j] += keep[j] * dout[qi + d] * vj[d];
                    }
                    D += P[j] * dP[j];
                }
                for (int j = 0; dout && j < T; j++) {
                    size_t kj = ((size_t)b * T + j) * KC + h / G * HS;
                    double dS = P[j] * (dP[j] - D) * slope[j] * scale;
                    for (int d = 0; d < HS; d++) {
                        dq[qi + d] += dS * k[kj + d];
                        dk[kj + d] += dS * q[qi + d];
                        dv[kj + d] += P[j] * keep[j] * dout[qi + d];
                    }
                }
            }
    free(P), free(keep), free(dP), free(slope);
}

/* Counts lse elements off the reference: rows with no allowed key must be exactly +INFINITY. */
static int lse_mismatch(const float *lse, const double *ref, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        int ok =
            isinf(ref[i]) ? lse[i] == INFINITY : fabs(lse[i] - ref[i]) <= 1e-5 * (1 + fabs(ref[i]));
        if (!ok && bad++ < 5)
            fprintf(stderr, "  lse[%zu] = %.8g, expected %.8g\n", i, lse[i], ref[i]);
    }
    return bad;
}

/* q and k turned by rope_reference (a->rope), back in float: attention_naive's inputs. */
static float *rope_input(const AttShape *a, const float *x, int H) {
    size_t rows = (size_t)a->B * a->T, n = rows * H * a->HS;
    double *d = to_double(x, n);
    float *out = malloc(n * sizeof *out);
    if (a->rope > 0.0f) rope_reference(d, rows, a->T, H, a->HS, NULL, a->rope, rope_scale, 1.0);
    for (size_t i = 0; i < n; i++) out[i] = (float)d[i];
    free(d);
    return out;
}

/* The op in float against attention_naive: forward (lse, out) and backward into zeroed
 * gradients; with rope, naive attention of the turned q and k, whose gradients are turned back,
 * and the op's own in-place turn checked too. Tolerances: float sums over T keys and HS dims,
 * 1e-5 relative + 2e-6 absolute. */
static void attention_reference_check(const AttShape *a, const float *q_in, const float *k_in,
                                      const float *v) {
    size_t nq = (size_t)a->B * a->T * a->NH * a->HS, nk = (size_t)a->B * a->T * a->NKV * a->HS;
    size_t nl = (size_t)a->B * a->NH * a->T, rows = (size_t)a->B * a->T;
    float *q = malloc(nq * sizeof *q), *k = malloc(nk * sizeof *k);
    float *qr = rope_input(a, q_in, a->NH), *kr = rope_input(a, k_in, a->NKV);
    memcpy(q, q_in, nq * sizeof *q), memcpy(k, k_in, nk * sizeof *k);
    float *out = rand_vec(nq, 0, 0), *lse = rand_vec(nl, 0, 0), *dout = rand_vec(nq, -1, 1);
    float *dq = rand_vec(nq, 0, 0), *dk = rand_vec(nk, 0, 0), *dv = rand_vec(nk, 0, 0);
    float *scratch = rand_vec(ops->attention_scratch(a->B, a->T, a->NH, a->NKV, a->HS), 0, 0);
    double *rout = malloc(sizeof(double) * nq), *rlse = malloc(sizeof(double) * nl);
    double *rdq = malloc(sizeof(double) * nq), *rdk = malloc(sizeof(double) * nk);
    double *rdv = malloc(sizeof(double) * nk);
    attention_naive(a, qr, kr, v, dout, rlse, rout, rdq, rdk, rdv);
    if (a->rope > 0.0f) {
        rope_reference(rdq, rows, a->T, a->NH, a->HS, NULL, a->rope, rope_scale, -1.0);
        rope_reference(rdk, rows, a->T, a->NKV, a->HS, NULL, a->rope, rope_scale, -1.0);
    }
    ops->attention_forward(out, NULL, 0, lse, NULL, q, a->NH * a->HS, k, v, a->NKV * a->HS, a->mask,
                           a->causal, a->window, rope_test(a->rope, a->HS, rope_scale),
                           att_score(a->HS), a->p, att_seed, scratch, a->B, a->T, a->NH, a->NKV,
                           a->HS);
    ops->attention_backward(dq, dk, dv, dout, q, k, v, a->NH * a->HS, a->NKV * a->HS, out, NULL, 0,
                            lse, NULL, a->mask, a->causal, a->window,
                            rope_test(a->rope, a->HS, rope_scale), att_score(a->HS), a->p, att_seed,
                            scratch, a->B, a->T, a->NH, a->NKV, a->HS, OPS_ADD);
    if (a->rope > 0.0f) { /* the op's turn of q and k in place */
        double *tq = to_double(qr, nq), *tk = to_double(kr, nk);
        CHECK(count_mismatch("attention's rope q", q, tq, nq, 1e-6, 1e-5) == 0);
        CHECK(count_mismatch("attention's rope k", k, tk, nk, 1e-6, 1e-5) == 0);
        free(tq), free(tk);
    }
    CHECK(lse_mismatch(lse, rlse, nl) == 0);
    CHECK(count_mismatch("attention out", out, rout, nq, 2e-6, 1e-5) == 0);
    CHECK(count_mismatch("attention dq", dq, rdq, nq, 2e-6, 1e-5) == 0);
    CHECK(count_mismatch("attention dk", dk, rdk, nk, 2e-6, 1e-5) == 0);
    CHECK(count_mismatch("attention dv", dv, rdv, nk, 2e-6, 1e-5) == 0);
    free(out), free(lse), free(dout), free(dq), free(dk), free(dv), free(scratch);
    free(rout), free(rlse), free(rdq), free(rdk), free(rdv), free(q), free(k), free(qr), free(kr);
}

/* q, out [B,T,NH*HS]; k, v [B,T,NKV*HS] (the first N * nkv * HS floats of their arrays); qr, kr:
 * the copies of q and k forward turns in place (rope) and backward reads */
typedef struct AttCtx {
    float q[N * C], k[N * C], v[N * C], out[N * C], lse[B * NH * T], qr[N * C], kr[N * C];
    float dq[N * C], dk[N * C], dv[N * C], *scratch;
    int32_t mask[N];
    AttShape shape;
} AttCtx;

static void att_fwd(void *p) {
    AttCtx *c = p;
    const AttShape *a = &c->shape;
    memcpy(c->qr, c->q, sizeof c->qr), memcpy(c->kr, c->k, sizeof c->kr);
    ops->attention_forward(c->out, NULL, 0, c->lse, NULL, c->qr, C, c->kr, c->v, a->NKV * (C / NH),
                           c->mask, a->causal, a->window, rope_test(a->rope, C / NH, rope_scale),
                           att_score(C / NH), a->p, att_seed, c->scratch, B, T, NH, a->NKV, C / NH);
}
static void att_bwd(void *p, const float *dout, unsigned use) {
    AttCtx *c = p;
    const AttShape *a = &c->shape;
    ops->attention_backward(USE(0, c->dq), USE(1, c->dk), USE(2, c->dv), dout, c->qr, c->kr, c->v,
                            C, a->NKV * (C / NH), c->out, NULL, 0, c->lse, NULL, c->mask, a->causal,
                            a->window, rope_test(a->rope, C / NH, rope_scale), att_score(C / NH),
                            a->p, att_seed, c->scratch, B, T, NH, a->NKV, C / NH, OPS_ADD);
}

/* causal: decoder masking (window > 0: sliding); nkv < NH: grouped-query attention (KV heads
 * shared); rope: its theta. Finite differences through forward and backward, then the naive
 * reference. */
static void test_attention(float p, int causal, int window, int nkv, float rope) {
    AttCtx c = {.shape = {B, T, NH, nkv, C / NH, causal, p, NULL, rope, window}};
    c.shape.mask = c.mask;
    c.scratch = rand_vec(ops->attention_scratch(B, T, NH, nkv, C / NH), 0, 0);
    int KN = N * nkv * (C / NH);
    fill(c.q, N * C, -1, 1), fill(c.k, KN, -1, 1), fill(c.v, KN, -1, 1);
    for (int i = 0; i < N; i++) c.mask[i] = i < T || i % T < 3; /* batch 1: 2 padding keys */
    char name[112];
    snprintf(name, sizeof name, "attention (p=%.1f%s, window %d, NKV=%d%s%s%s)", p,
             causal ? ", causal" : "", window, nkv,
             rope > 0.0f ? rope_scale != 1.0f ? ", rope scaled" : ", rope" : "",
             rope > 0.0f && rope_share < 1.0f ? " partial" : "",
             att_softcap > 0.0f ? ", soft-capped" : "");
    GradCase gc = grad_case(name, &c, att_fwd, att_bwd, c.out, N * C, 1e-2f);
    case_param(&gc, "q", c.q, c.dq, N * C);
    case_param(&gc, "k", c.k, c.dk, KN);
    case_param(&gc, "v", c.v, c.dv, KN);
    gradcheck(&gc);
    attention_reference_check(&c.shape, c.q, c.k, c.v);

    /* a fully masked sequence: lse +INFINITY, zero output, no NaN; its gradients 0 */
    for (int j = 0; j < T; j++) c.mask[T + j] = 0;
    attention_reference_check(&c.shape, c.q, c.k, c.v);
    att_fwd(&c);
    memset(c.dq, 0, sizeof c.dq), memset(c.dk, 0, sizeof c.dk), memset(c.dv, 0, sizeof c.dv);
    float dout[N * C];
    fill(dout, N * C, -1, 1);
    att_bwd(&c, dout, 7);
    int finite = 1, zero = 1;
    for (int i = 0; i < N * C; i++) {
        finite &= isfinite(c.dq[i]) && isfinite(c.dk[i]) && isfinite(c.dv[i]);
        if (i >= T * C) zero &= c.dq[i] == 0 && c.out[i] == 0;
        if (i >= KN / B && i < KN) zero &= c.dk[i] == 0 && c.dv[i] == 0;
    }
    CHECK(finite);
    CHECK(zero);
    free(c.scratch);
}

/* Shapes past the CPU's row blocks (T > 64, T not a multiple of 64): forward and backward
 * against the naive reference, with padding, causal masking (and a sliding window), GQA and
 * dropout. */
static void test_attention_long(int Bn, int Tn, int nh, int nkv, int hs, int causal, int window,
                                float p, float rope) {
    size_t nq = (size_t)Bn * Tn * nh * hs, nk = (size_t)Bn * Tn * nkv * hs;
    float *q = rand_vec(nq, -2, 2), *k = rand_vec(nk, -2, 2), *v = rand_vec(nk, -1, 1);
    int32_t *mask = malloc(sizeof(int32_t) * Bn * Tn);
    for (int i = 0; i < Bn * Tn; i++) mask[i] = i % Tn < Tn - 13 * (i / Tn); /* b pads 13b */
    AttShape a = {Bn, Tn, nh, nkv, hs, causal, p, mask, rope, window};
    printf("  attention B=%d T=%d NH=%d NKV=%d HS=%d%s window %d%s (over %d dims)%s p=%.1f "
           "against the naive reference\n",
           Bn, Tn, nh, nkv, hs, causal ? " causal" : "", window,
           rope > 0.0f ? rope_scale != 1.0f ? " rope scaled" : " rope" : " no rope",
           rope > 0.0f ? rope_dims(hs) : 0, att_softcap > 0.0f ? " soft-capped" : "", p);
    attention_reference_check(&a, q, k, v);
    free(q), free(k), free(v), free(mask);
}

/* ---- element-wise ---- */

typedef struct EwCtx {
    float a[N * C], b[N * C], out[N * C], da[N * C], db[N * C];
    Activation act;
    float p;
} EwCtx;

static void act_fwd(void *p) {
    EwCtx *c = p;
    ops->activation_forward(c->out, NULL, C, NULL, c->a, NULL, c->act, N * C, C);
}
static void act_bwd(void *p, const float *dout, unsigned use) {
    EwCtx *c = p;
    if (use)
        ops->activation_backward(c->da, NULL, c->a, NULL, NULL, dout, NULL, c->act, N * C, C,
                                 OPS_ADD);
}

static double act_reference(double x, Activation act) {
    switch (act) {
    case ACT_GELU:
        return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case ACT_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case ACT_RELU:
        return x > 0 ? x : 0;
    case ACT_TANH:
        return tanh(x);
    case ACT_SILU:
        return x / (1 + exp(-x));
    }
    return NAN;
}

/* q, k, v as one GEMM writes them, rows [q | k | v] (linear_outputs_join): attention_forward,
 * attention_backward (reading them and writing dq, dk, dv so, rows [dq | dk | dv] as one linear's
 * backward reads them), cache_write (turning q and k by rope) and attention_cached read them as
 * from buffers of their own, bit for bit (T tokens of one sequence; the cache holds them at
 * positions 0..T-1). */
/* qkv's rows [q | k | v] from q [T,QC], k and v [T,KC]. */
static void join_rows(float *qkv, const float *q, const float *k, const float *v, int T, int QC,
                      int KC) {
    int ld = QC + 2 * KC;
    for (int t = 0; t < T; t++) {
        memcpy(qkv + (size_t)t * ld, q + (size_t)t * QC, sizeof(float) * QC);
        memcpy(qkv + (size_t)t * ld + QC, k + (size_t)t * KC, sizeof(float) * KC);
        memcpy(qkv + (size_t)t * ld + QC + KC, v + (size_t)t * KC, sizeof(float) * KC);
    }
}

/* Whether the rows [q | k | v] of qkv hold q, k and v. */
static int joined_same(const float *qkv, const float *q, const float *k, const float *v, int T,
                       int QC, int KC) {
    int same = 1, ld = QC + 2 * KC;
    for (int t = 0; t < T; t++) {
        const float *row = qkv + (size_t)t * ld;
        same = same && !memcmp(row, q + (size_t)t * QC, sizeof(float) * QC);
        same = same && !memcmp(row + QC, k + (size_t)t * KC, sizeof(float) * KC);
        same = same && !memcmp(row + QC + KC, v + (size_t)t * KC, sizeof(float) * KC);
    }
    return same;
}

static void test_attention_joined(int T, int nh, int nkv, int hs) {
    int QC = nh * hs, KC = nkv * hs, ld = QC + 2 * KC;
    float *q = rand_vec((size_t)T * QC, -1, 1), *k = rand_vec((size_t)T * KC, -1, 1);
    float *v = rand_vec((size_t)T * KC, -1, 1), *qkv = malloc(sizeof(float) * T * ld);
    join_rows(qkv, q, k, v, T, QC, KC);
    float *out[2], *lse[2], *scratch = rand_vec(ops->attention_scratch(1, T, nh, nkv, hs), 0, 0);
    for (int j = 0; j < 2; j++) {
        out[j] = rand_vec((size_t)T * QC, 0, 0), lse[j] = rand_vec((size_t)nh * T, 0, 0);
        ops->attention_forward(out[j], NULL, 0, lse[j], NULL, j ? qkv : q, j ? ld : QC,
                               j ? qkv + QC : k, j ? qkv + QC + KC : v, j ? ld : KC, NULL, 1, 0,
                               rope_plain(1e4f, hs), att_score(hs), 0.1f, att_seed, scratch, 1, T,
                               nh, nkv, hs);
    }
    CHECK(!memcmp(out[0], out[1], sizeof(float) * T * QC));
    CHECK(!memcmp(lse[0], lse[1], sizeof(float) * nh * T));
    CHECK(joined_same(qkv, q, k, v, T, QC, KC)); /* turned alike */
    /* backward, adding to gradients that hold the same values in both layouts, then writing */
    float *dout = rand_vec((size_t)T * QC, -1, 1), *dq = rand_vec((size_t)T * QC, -1, 1);
    float *dk = rand_vec((size_t)T * KC, -1, 1), *dv = rand_vec((size_t)T * KC, -1, 1);
    float *dqkv = malloc(sizeof(float) * T * ld);
    join_rows(dqkv, dq, dk, dv, T, QC, KC);
    for (int acc = OPS_ADD; acc >= OPS_SET; acc--) {
        for (int j = 0; j < 2; j++)
            ops->attention_backward(j ? dqkv : dq, j ? dqkv + QC : dk, j ? dqkv + QC + KC : dv,
                                    dout, j ? qkv : q, j ? qkv + QC : k, j ? qkv + QC + KC : v,
                                    j ? ld : QC, j ? ld : KC, out[j], NULL, 0, lse[j], NULL, NULL,
                                    1, 0, rope_plain(1e4f, hs), att_score(hs), 0.1f, att_seed,
                                    scratch, 1, T, nh, nkv, hs, acc);
        CHECK(joined_same(dqkv, dq, dk, dv, T, QC, KC));
    }
    float *kc[2], *vc[2], *cs = rand_vec(ops->attention_cached_scratch(T, T, nh, hs), 0, 0);
    int32_t pos[64];
    for (int t = 0; t < T; t++) pos[t] = t;
    for (int j = 0; j < 2; j++) {
        kc[j] = rand_vec((size_t)T * KC, 0, 0), vc[j] = rand_vec((size_t)T * KC, 0, 0);
        ops->cache_write(kc[j], vc[j], j ? qkv : q, j ? ld : QC, j ? qkv + QC : k,
                         j ? qkv + QC + KC : v, j ? ld : KC, pos, NULL, 0, rope_plain(1e4f, hs), T,
                         nh, nkv, hs);
        ops->attention_cached(out[j], NULL, QC, j ? qkv : q, j ? ld : QC, kc[j], vc[j], pos, NULL,
                              0, 0, att_score(hs), cs, T, T, nh, nkv, hs);
    }
    CHECK(!memcmp(kc[0], kc[1], sizeof(float) * T * KC));
    CHECK(joined_same(qkv, q, k, v, T, QC, KC));
    CHECK(!memcmp(vc[0], vc[1], sizeof(float) * T * KC) &&
          !memcmp(vc[0], v, sizeof(float) * T * KC));
    CHECK(!memcmp(out[0], out[1], sizeof(float) * T * QC));
    free(q), free(k), free(v), free(qkv), free(scratch), free(cs);
    free(dout), free(dq), free(dk), free(dv), free(dqkv);
    for (int j = 0; j < 2; j++) free(out[j]), free(lse[j]), free(kc[j]), free(vc[j]);
}

/* bf16(out) into rows ldo apart (an adapted o's input copy) beside out: bf16 of that out, bit for
 * bit, the columns past it untouched, and out and lse as without the copy (the CPU always writes
 * out: its backward reads it; the GPU's reading of the rows is test_gpu_parity's). */
static void test_attention_out_bf16(int T, int nh, int nkv, int hs) {
    int QC = nh * hs, KC = nkv * hs, ldo = QC + 3;
    float *q = rand_vec((size_t)T * QC, -1, 1), *k = rand_vec((size_t)T * KC, -1, 1);
    float *v = rand_vec((size_t)T * KC, -1, 1), *out[2], *lse[2];
    float *scratch = rand_vec(ops->attention_scratch(1, T, nh, nkv, hs), 0, 0);
    uint16_t *rows = malloc(sizeof(uint16_t) * T * ldo);
    memset(rows, 0xab, sizeof(uint16_t) * T * ldo);
    for (int j = 0; j < 2; j++) {
        out[j] = rand_vec((size_t)T * QC, 0, 0), lse[j] = rand_vec((size_t)nh * T, 0, 0);
        ops->attention_forward(out[j], j ? rows : NULL, ldo, lse[j], NULL, q, QC, k, v, KC, NULL, 1,
                               0, NULL, att_score(hs), 0.1f, att_seed, scratch, 1, T, nh, nkv, hs);
    }
    int bad = 0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < ldo; c++)
            bad += rows[t * ldo + c] != (c < QC ? f32_to_bf16(out[0][t * QC + c]) : 0xabab);
    CHECK(bad == 0);
    CHECK(!memcmp(out[0], out[1], sizeof(float) * T * QC));
    CHECK(!memcmp(lse[0], lse[1], sizeof(float) * nh * T));
    free(q), free(k), free(v), free(scratch), free(rows);
    for (int j = 0; j < 2; j++) free(out[j]), free(lse[j]);
}

/* Naive double attention of one query qi [NH*HS] at position pos over keys and values k, v [pos +
 * 1, NKV*HS] (the window's), into ref [NH*HS]; p: [pos + 1] scratch. */
static void naive_cached(double *ref, const float *qi, const float *k, const float *v, int pos,
                         int window, AttnScore sc, double *p, int nh, int nkv, int hs) {
    int KC = nkv * hs, keys = pos + 1;
    int first = window && keys > window ? keys - window : 0; /* the window's first key */
    for (int h = 0; h < nh; h++) {
        int kvh = h / (nh / nkv);
        double mx = -INFINITY, z = 0;
        for (int j = first; j < keys; j++) {
            p[j] = 0;
            for (int d = 0; d < hs; d++)
                p[j] += (double)qi[h * hs + d] * k[(size_t)j * KC + kvh * hs + d];
            p[j] *= sc.scale;
            if (sc.softcap > 0) p[j] = sc.softcap * tanh(p[j] / sc.softcap);
            mx = fmax(mx, p[j]);
        }
        for (int j = first; j < keys; j++) z += p[j] = exp(p[j] - mx);
        for (int j = first; j < keys; j++)
            for (int d = 0; d < hs; d++)
                ref[h * hs + d] += p[j] / z * v[(size_t)j * KC + kvh * hs + d];
    }
}

/* Generation: n queries at positions pos0.. over L = pos0 + n + later cached keys (GQA; the
 * later ones 1e4 times larger, to be hidden), against naive double attention with query i
 * allowed keys j <= pos0 + i; then cache_write puts new rows at the positions. */
static void test_attention_cached(int n, int pos0, int later, int window, int nh, int nkv, int hs) {
    int L = pos0 + n + later, QC = nh * hs, KC = nkv * hs, pos[16];
    for (int i = 0; i < n; i++) pos[i] = pos0 + i;
    float *q = rand_vec((size_t)n * QC, -1, 1), *k = rand_vec((size_t)L * KC, -1, 1);
    float *v = rand_vec((size_t)L * KC, -1, 1), *out = calloc((size_t)n * QC, sizeof *out);
    for (size_t e = (size_t)(pos0 + n) * KC; e < (size_t)L * KC; e++) k[e] *= 1e4f, v[e] *= 1e4f;
    float *scratch = rand_vec(ops->attention_cached_scratch(n, L, nh, hs), -1, 1);
    double *ref = calloc((size_t)n * QC, sizeof *ref), *p = calloc(L, sizeof *p);
    uint16_t *out_bf16 = calloc((size_t)n * QC, sizeof *out_bf16);
    AttnScore sc = att_score(hs);
    ops->attention_cached(out, out_bf16, QC, q, QC, k, v, pos, NULL, 0, window, sc, scratch, n, L,
                          nh, nkv, hs);
    for (int i = 0; i < n; i++)
        naive_cached(ref + (size_t)i * QC, q + (size_t)i * QC, k, v, pos[i], window, sc, p, nh, nkv,
                     hs);
    CHECK(count_mismatch("attention_cached out", out, ref, (size_t)n * QC, 1e-6, 1e-5) == 0);
    int rounded = 1; /* out_bf16: bf16(out) */
    for (size_t e = 0; e < (size_t)n * QC; e++)
        rounded = rounded && out_bf16[e] == f32_to_bf16(out[e]);
    CHECK(rounded);
    float *k_new = rand_vec((size_t)n * KC, -1, 1), *v_new = rand_vec((size_t)n * KC, -1, 1);
    ops->cache_write(k, v, NULL, 0, k_new, v_new, KC, pos, NULL, 0, NULL, n, nh, nkv, hs);
    for (int i = 0; i < n; i++) {
        CHECK(!memcmp(k + (size_t)(pos0 + i) * KC, k_new + (size_t)i * KC, KC * sizeof *k));
        CHECK(!memcmp(v + (size_t)(pos0 + i) * KC, v_new + (size_t)i * KC, KC * sizeof *v));
    }
    free(q), free(k), free(v), free(out), free(scratch), free(ref), free(p), free(k_new);
    free(v_new), free(out_bf16);
}

/* A batched decode step: one query each of n of S sequences (in the order seq[], not sorted) at
 * positions pos[i] of caches of `stride` rows (the rows past each position 1e4 times larger, to be
 * hidden), against naive double attention over its own sequence's keys; cache_write with rope
 * puts each new row at its sequence's position turned as a one-sequence write of it alone does,
 * bit for bit, q too. */
static void test_attention_cached_seqs(int n, int S, int stride, int window, int nh, int nkv,
                                       int hs) {
    int QC = nh * hs, KC = nkv * hs, seq[8], pos[8];
    for (int i = 0; i < n; i++) seq[i] = (3 * i + 1) % S, pos[i] = (5 * i + 2) % (stride - 1);
    size_t cells = (size_t)S * stride * KC;
    float *q = rand_vec((size_t)n * QC, -1, 1), *k = rand_vec(cells, -1, 1);
    float *v = rand_vec(cells, -1, 1), *out = calloc((size_t)n * QC, sizeof *out);
    for (int s = 0; s < S; s++)
        for (size_t e = 0; e < (size_t)stride * KC; e++) {
            int row = (int)(e / KC), later = 1;
            for (int i = 0; i < n; i++) later &= seq[i] != s || row > pos[i];
            if (later)
                k[(size_t)s * stride * KC + e] *= 1e4f, v[(size_t)s * stride * KC + e] *= 1e4f;
        }
    float *scratch = rand_vec(ops->attention_cached_scratch(n, stride, nh, hs), -1, 1);
    double *ref = calloc((size_t)n * QC, sizeof *ref), *p = calloc(stride, sizeof *p);
    AttnScore sc = att_score(hs);
    ops->attention_cached(out, NULL, QC, q, QC, k, v, pos, seq, stride, window, sc, scratch, n,
                          stride, nh, nkv, hs);
    for (int i = 0; i < n; i++) {
        size_t at = (size_t)seq[i] * stride * KC;
        naive_cached(ref + (size_t)i * QC, q + (size_t)i * QC, k + at, v + at, pos[i], window, sc,
                     p, nh, nkv, hs);
    }
    CHECK(count_mismatch("attention_cached of sequences", out, ref, (size_t)n * QC, 1e-6, 1e-5) ==
          0);
    float *k_new = rand_vec((size_t)n * KC, -1, 1), *v_new = rand_vec((size_t)n * KC, -1, 1);
    float *q_one = malloc((size_t)n * QC * sizeof *q_one),
          *one = rand_vec((size_t)stride * KC, 0, 0);
    float *one_v = rand_vec((size_t)stride * KC, 0, 0); /* one sequence's cache */
    memcpy(q_one, q, (size_t)n * QC * sizeof *q);
    const RopeFreqs *rope = rope_plain(1e4f, hs);
    ops->cache_write(k, v, q, QC, k_new, v_new, KC, pos, seq, stride, rope, n, nh, nkv, hs);
    for (int i = 0; i < n; i++) {
        size_t at = ((size_t)seq[i] * stride + pos[i]) * KC, row = (size_t)pos[i] * KC;
        float *qi = q_one + (size_t)i * QC;
        ops->cache_write(one, one_v, qi, QC, k_new + (size_t)i * KC, v_new + (size_t)i * KC, KC,
                         pos + i, NULL, 0, rope, 1, nh, nkv, hs);
        CHECK(!memcmp(k + at, one + row, KC * sizeof *k) &&
              !memcmp(v + at, one_v + row, KC * sizeof *v));
        CHECK(!memcmp(q + (size_t)i * QC, qi, QC * sizeof *q));
    }
    free(q), free(k), free(v), free(out), free(scratch), free(ref), free(p), free(k_new);
    free(v_new), free(q_one), free(one), free(one_v);
}

static void test_activations(void) {
    const char *names[] = {"gelu", "gelu_tanh", "relu", "tanh", "silu"};
    for (int act = ACT_GELU; act <= ACT_SILU; act++) {
        EwCtx c;
        c.act = (Activation)act;
        fill(c.a, N * C, -3, 3);
        for (int i = 0; i < N * C; i++) /* keep away from relu's kink */
            if (fabsf(c.a[i]) < 0.1f) c.a[i] += c.a[i] < 0 ? -0.1f : 0.1f;
        GradCase gc = grad_case(names[act], &c, act_fwd, act_bwd, c.out, N * C, 1e-2f);
        case_param(&gc, "inp", c.a, c.da, N * C);
        gradcheck(&gc);
        double ref[N * C];
        for (int i = 0; i < N * C; i++) ref[i] = act_reference(c.a[i], c.act);
        act_fwd(&c);
        CHECK(count_mismatch(names[act], c.out, ref, N * C, 1e-6, 1e-5) == 0);
    }
}

/* tanh_approx (GELU-tanh's and tanh's) against tanh in double: every float step of 1e-5 over
 * [-12, 12] and the small ones down to 1e-30 (relative error where the polynomial alone works) */
static void test_tanh_approx(void) {
    double worst_abs = 0, worst_rel = 0;
    for (double x = -12; x <= 12; x += 1e-5) {
        double ref = tanh((double)(float)x), d = fabs(tanh_approx((float)x) - ref);
        worst_abs = fmax(worst_abs, d);
        if (ref != 0) worst_rel = fmax(worst_rel, d / fabs(ref));
    }
    for (float x = 1e-30f; x < 1; x *= 1.001f)
        worst_rel = fmax(worst_rel, fabs(tanh_approx(-x) + tanh((double)x)) / tanh((double)x));
    if (worst_abs > 1e-7 || worst_rel > 4e-7)
        fprintf(stderr, "tanh_approx: worst %.3g absolute, %.3g relative\n", worst_abs, worst_rel);
    CHECK(worst_abs <= 1e-7 && worst_rel <= 4e-7);
    CHECK(tanh_approx(INFINITY) == 1 && tanh_approx(-INFINITY) == -1 && isnan(tanh_approx(NAN)));
}

/* torch propagates NaN through every activation (relu(nan) = nan): a NaN weight must not
 * turn into a finite loss. Infinities keep their limits. */
static void test_activations_non_finite(void) {
    const char *names[] = {"gelu", "gelu_tanh", "relu", "tanh", "silu"};
    float in[3] = {NAN, INFINITY, -INFINITY}, out[3];
    for (int act = ACT_GELU; act <= ACT_SILU; act++) {
        ops->activation_forward(out, NULL, 3, NULL, in, NULL, (Activation)act, 3, 3);
        if (!isnan(out[0])) {
            fprintf(stderr, "%s(nan) = %g, expected nan\n", names[act], out[0]);
            CHECK(0);
        }
        CHECK(out[1] == (act == ACT_TANH ? 1.0f : INFINITY));
    }
}

static void drop_fwd(void *p) {
    EwCtx *c = p;
    ops->dropout_forward(c->out, c->a, c->p, 99, N * C);
}
static void drop_bwd(void *p, const float *dout, unsigned use) {
    EwCtx *c = p;
    if (use) ops->dropout_backward(c->da, NULL, dout, c->p, 99, N * C, OPS_ADD);
}

static void add_fwd(void *p) {
    EwCtx *c = p;
    ops->add(c->out, c->a, c->b, N * C);
}
/* add's backward in the model is axpy of dout into both inputs */
static void add_bwd(void *p, const float *dout, unsigned use) {
    EwCtx *c = p;
    if (use & 1) ops->axpy(c->da, dout, 1.0f, N * C);
    if (use & 2) ops->axpy(c->db, dout, 1.0f, N * C);
}

static void ft_fwd(void *p) {
    EwCtx *c = p;
    ops->first_token_forward(c->out, c->a, B, T, C);
}
static void ft_bwd(void *p, const float *dout, unsigned use) {
    EwCtx *c = p;
    if (use) ops->first_token_backward(c->da, dout, B, T, C);
}

static void test_elementwise_grads(void) {
    EwCtx c;
    c.p = 0.3f;
    fill(c.a, N * C, -1, 1), fill(c.b, N * C, -1, 1);
    GradCase drop = grad_case("dropout (p=0.3)", &c, drop_fwd, drop_bwd, c.out, N * C, 1e-2f);
    case_param(&drop, "inp", c.a, c.da, N * C);
    gradcheck(&drop);
    GradCase add = grad_case("add/axpy", &c, add_fwd, add_bwd, c.out, N * C, 1e-2f);
    case_param(&add, "a", c.a, c.da, N * C);
    case_param(&add, "b", c.b, c.db, N * C);
    gradcheck(&add);
    GradCase ft = grad_case("first_token", &c, ft_fwd, ft_bwd, c.out, B * C, 1e-2f);
    case_param(&ft, "inp", c.a, c.da, N * C);
    gradcheck(&ft);

    /* forward values of the vector helpers */
    double ref[N * C];
    for (int i = 0; i < N * C; i++) ref[i] = (double)c.a[i] + c.b[i];
    add_fwd(&c);
    CHECK(count_mismatch("add", c.out, ref, N * C, 0, 1e-7) == 0);
    for (int i = 0; i < N * C; i++) ref[i] = (double)c.out[i] + 0.5 * c.b[i];
    ops->axpy(c.out, c.b, 0.5f, N * C);
    CHECK(count_mismatch("axpy", c.out, ref, N * C, 1e-7, 1e-7) == 0);
    for (int i = 0; i < N * C; i++) ref[i] = -3.0 * c.out[i];
    ops->scale(c.out, -3.0f, N * C);
    CHECK(count_mismatch("scale", c.out, ref, N * C, 0, 1e-7) == 0);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < C; k++) ref[b * C + k] = c.a[b * T * C + k];
    ft_fwd(&c);
    CHECK(count_mismatch("first_token", c.out, ref, B * C, 0, 0) == 0);
}

/* ---- dropout statistics ---- */

static void test_dropout_stats(void) {
    enum { n = 100000 };
    const float p = 0.3f;
    float *x = rand_vec(n, 0.5f, 1.5f), *y = malloc(sizeof(float) * n), *z = copy_vec(x, n);
    ops->dropout_forward(y, x, p, 1234, n);
    int dropped = 0, kept_ok = 1;
    for (int i = 0; i < n; i++) {
        dropped += y[i] == 0.0f;
        if (y[i] != 0.0f) kept_ok &= y[i] == x[i] * (1.0f / (1.0f - p));
    }
    double frac = (double)dropped / n, sigma = sqrt(p * (1 - p) / n);
    printf("  dropout: dropped %.4f (p %.2f, 4 sigma %.4f)\n", frac, p, 4 * sigma);
    CHECK(fabs(frac - p) < 4 * sigma);
    CHECK(kept_ok);
    ops->dropout_forward(z, z, p, 1234, n); /* in place, same seed: the same mask */
    CHECK(!memcmp(y, z, sizeof(float) * n));
    memcpy(z, x, sizeof(float) * n);
    ops->dropout_forward(z, z, p, 1235, n);
    int differ = 0;
    for (int i = 0; i < n; i++) differ += (z[i] == 0.0f) != (y[i] == 0.0f);
    CHECK(differ > n / 10); /* another seed, another mask */
    ops->dropout_forward(z, x, 0.0f, 1234, n);
    CHECK(!memcmp(z, x, sizeof(float) * n)); /* p = 0 is the identity */
    free(x), free(y), free(z);
}

/* NEFTune's noise (uniform_noise): added in place, within [-bound, bound), mean 0 and variance
 * bound^2 / 3 within 4 sigma over 100,000 draws, the same for the same seed and another for
 * another. */
static void test_uniform_noise_stats(void) {
    enum { n = 100000 };
    const float bound = 0.25f;
    float *x = rand_vec(n, -1.0f, 1.0f), *y = copy_vec(x, n), *z = copy_vec(x, n);
    ops->uniform_noise(y, bound, 99, n);
    double sum = 0, sq = 0;
    int inside = 1, differ = 0;
    for (int i = 0; i < n; i++) {
        double e = (double)y[i] - x[i]; /* the noise, up to y's rounding */
        inside &= fabs(e) <= bound * (1 + 1e-6) + 1e-6;
        sum += e, sq += e * e;
    }
    double mean = sum / n, var = sq / n - mean * mean, want = bound * bound / 3.0;
    double mean_sigma = sqrt(want / n), var_sigma = sqrt((4.0 / 45.0) * pow(bound, 4) / n);
    printf("  uniform noise: mean %.2e (4 sigma %.2e), variance %.5f (bound^2 / 3 %.5f)\n", mean,
           4 * mean_sigma, var, want);
    CHECK(inside);
    CHECK(fabs(mean) < 4 * mean_sigma && fabs(var - want) < 4 * var_sigma);
    ops->uniform_noise(z, bound, 99, n);
    CHECK(!memcmp(y, z, sizeof(float) * n)); /* the same seed: the same noise */
    memcpy(z, x, sizeof(float) * n);
    ops->uniform_noise(z, bound, 100, n);
    for (int i = 0; i < n; i++) differ += z[i] != y[i];
    CHECK(differ > n / 2);
    free(x), free(y), free(z);
}

/* The row draws of attention's and LoRA's dropout (rng.h rng_row_*): a 16-bit half of a draw
 * per column. Over 2^21 columns at p = 0.1: the dropped fraction, and how often two columns are
 * both dropped when they share a draw (2u, 2u+1), are neighbours in consecutive draws (2u+1,
 * 2u+2) or in consecutive rows (same column), or differ only in the seed's upper half:
 * independent ones give p^2 each, within 4 sigma of the binomial spread. Every multiplier is 0
 * or 1 / (1 - p); p = 0 keeps every column. */
static void test_row_dropout_stats(void) {
    enum { ROWS = 4096, KEYS = 512 };
    const float p = 0.1f;
    const uint64_t seed = 0x0123456789abcdefull, other = seed + (1ull << 32);
    double n = (double)ROWS * KEYS, pairs = n / 2, dropped = 0, share = 0, next = 0, rows = 0;
    double seeds = 0, values_ok = 1;
    for (uint64_t r = 0; r < ROWS; r++)
        for (uint32_t j = 0; j < KEYS; j++) {
            float m = rng_row_dropout(seed, r, j, p);
            int d = m == 0.0f;
            values_ok *= d || m == 1.0f / (1.0f - p);
            dropped += d;
            if (j & 1) share += d && rng_row_dropout(seed, r, j - 1, p) == 0.0f;
            if ((j & 1) && j + 1 < KEYS) next += d && rng_row_dropout(seed, r, j + 1, p) == 0.0f;
            if (r & 1) rows += d && rng_row_dropout(seed, r - 1, j, p) == 0.0f;
            seeds += d && rng_row_dropout(other, r, j, p) == 0.0f;
        }
    double q = (double)p * p, frac = dropped / n, sigma = sqrt(p * (1 - p) / n);
    double cases[4][2] = {{share, pairs}, {next, ROWS * (KEYS / 2 - 1)}, {rows, n / 2}, {seeds, n}};
    printf("  row dropout draws: dropped %.5f (p %.2f, 4 sigma %.5f); both dropped %.5f %.5f %.5f "
           "%.5f (p^2 %.4f)\n",
           frac, p, 4 * sigma, share / pairs, cases[1][0] / cases[1][1], rows / (n / 2), seeds / n,
           q);
    CHECK(fabs(frac - p) < 4 * sigma);
    for (int c = 0; c < 4; c++)
        CHECK(fabs(cases[c][0] / cases[c][1] - q) < 4 * sqrt(q * (1 - q) / cases[c][1]));
    CHECK(values_ok);
    CHECK(rng_row_dropout(seed, 7, 3, 0.0f) == 1.0f && rng_row_scale(0, 0, 0.0f) == 1.0f);
}

/* ---- cross-entropy ---- */

typedef struct CeCtx {
    float logits[N * V], losses[N], dlogits[N * V], scaled[N];
    int32_t labels[N];
    float grad_scale;
} CeCtx;

/* out = losses * grad_scale, so L = grad_scale * sum(losses) with w = 1 */
static void ce_fwd(void *p) {
    CeCtx *c = p;
    ops->cross_entropy(c->losses, NULL, c->logits, c->labels, c->grad_scale, N, V);
    for (int n = 0; n < N; n++) c->scaled[n] = c->losses[n] * c->grad_scale;
}
static void ce_bwd(void *p, const float *dout, unsigned use) {
    CeCtx *c = p;
    (void)dout; /* w is all ones: see ce_fwd */
    float losses[N], d[N * V];
    ops->cross_entropy(losses, d, c->logits, c->labels, c->grad_scale, N, V);
    if (use)
        for (int i = 0; i < N * V; i++) c->dlogits[i] += d[i];
}

static void test_cross_entropy(void) {
    CeCtx c;
    fill(c.logits, N * V, -2, 2);
    for (int n = 0; n < N; n++) c.labels[n] = (int32_t)(rng_next(&rng) % V);
    c.labels[3] = -100;  /* ignored, like HF */
    c.labels[6] = V + 5; /* out of range: treated as ignored, never read */
    c.grad_scale = 1.0f / 8;
    GradCase gc = grad_case("cross_entropy", &c, ce_fwd, ce_bwd, c.scaled, N, 1e-2f);
    case_param(&gc, "logits", c.logits, c.dlogits, N * V);
    for (int n = 0; n < N; n++) gc.w[n] = 1.0f; /* ce_fwd already scales by grad_scale */
    gc.keep_w = 1;
    gradcheck(&gc);

    /* values vs a double log-sum-exp, with one row of huge logits (stability) */
    for (int k = 0; k < V; k++) c.logits[V + k] = 1000.0f + 10.0f * k;
    double ref[N];
    for (int n = 0; n < N; n++) {
        double maxv = -INFINITY, s = 0;
        for (int k = 0; k < V; k++) maxv = fmax(maxv, c.logits[n * V + k]);
        for (int k = 0; k < V; k++) s += exp(c.logits[n * V + k] - maxv);
        int ok = c.labels[n] >= 0 && c.labels[n] < V;
        ref[n] = ok ? maxv + log(s) - c.logits[n * V + c.labels[n]] : 0.0;
    }
    for (int i = 0; i < N * V; i++) c.dlogits[i] = NAN; /* overwritten, not accumulated */
    ops->cross_entropy(c.losses, c.dlogits, c.logits, c.labels, c.grad_scale, N, V);
    CHECK(count_mismatch("cross_entropy loss", c.losses, ref, N, 1e-5, 1e-5) == 0);
    int finite = 1, ignored_zero = 1;
    double row1 = 0;
    for (int i = 0; i < N * V; i++) finite &= isfinite(c.dlogits[i]);
    for (int k = 0; k < V; k++) {
        ignored_zero &= c.dlogits[3 * V + k] == 0.0f && c.dlogits[6 * V + k] == 0.0f;
        row1 += c.dlogits[V + k]; /* softmax - onehot sums to 0 */
    }
    CHECK(finite);
    CHECK(ignored_zero);
    CHECK_CLOSE(row1, 0.0, 1e-6, 0);
}

/* ---- LM head + cross-entropy in chunks ---- */

typedef struct LmCtx {
    float *h, *W, *dh, *dW, *losses, *scaled, *scratch;
    int32_t *labels;
    float grad_scale;
    int n, c, v, chunk;
    float *row_scale; /* NULL, or [n] in [-2, 2) (lm_rows) */
    OpsLogitMap map;  /* soft-capping (lm_make_capped; 0: none), temperature (lm_make_tempered) */
    /* an adapter on the head (lm_make_lora; R 0: none): u [n,R], B [v,R] in [-1, 1), scale 0.7 */
    int R;
    float *u, *B, *du, *dB;
    /* the rows' entropies (lm_make_entropy; NULL: none) and the weights of their term, in [-2, 2)
     */
    float *entropy, *entropy_scale;
} LmCtx;

/* The entropy as the op takes it in a forward (its values) or a backward (its term too). */
static OpsEntropy *lm_entropy(LmCtx *m, OpsEntropy *e, int backward) {
    *e = (OpsEntropy){m->entropy, backward ? m->entropy_scale : NULL};
    return m->entropy ? e : NULL;
}

/* The adapter as the op takes it: its gradients where asked (grads), else none. */
static OpsHeadLora *lm_lora(LmCtx *m, OpsHeadLora *l, float *du, float *dB) {
    *l = (OpsHeadLora){m->u, m->B, du, dB, 0.7f, m->R};
    return m->R ? l : NULL;
}

/* h [n,c], W [v,c] in [-1, 1); labels in [0, v) except row 1 ignored (-100) and row 4 >= v. */
static LmCtx lm_make(int n, int c, int v, int chunk) {
    LmCtx m = {rand_vec((size_t)n * c, -1, 1),
               rand_vec((size_t)v * c, -1, 1),
               rand_vec((size_t)n * c, 0, 0),
               rand_vec((size_t)v * c, 0, 0),
               rand_vec(n, 0, 0),
               rand_vec(n, 0, 0),
               rand_vec(ops_lm_head_scratch(n, c, v, chunk, 0, 0), 0, 0), /* exact: ASan's bound */
               malloc(sizeof(int32_t) * n),
               1.0f / 5,
               n,
               c,
               v,
               chunk,
               NULL,
               {0.0f, 1.0f},
               0,
               NULL,
               NULL,
               NULL,
               NULL,
               NULL,
               NULL};
    for (int i = 0; i < n; i++) m.labels[i] = (int32_t)(rng_next(&rng) % v);
    if (n > 1) m.labels[1] = -100;
    if (n > 4) m.labels[4] = v + 2;
    return m;
}
/* lm_make with a weight per row, negative ones included (DPO's rejected sequences) */
static LmCtx lm_make_rows(int n, int c, int v, int chunk) {
    LmCtx m = lm_make(n, c, v, chunk);
    m.row_scale = rand_vec(n, -2, 2);
    return m;
}
/* lm_make with Gemma 2's final soft-capping, at 1.5 where the logits reach about 3 */
static LmCtx lm_make_capped(int n, int c, int v, int chunk) {
    LmCtx m = lm_make(n, c, v, chunk);
    m.map.softcap = 1.5f;
    return m;
}
/* lm_make_rows with RL's sampling temperature, 0.7 */
static LmCtx lm_make_tempered(int n, int c, int v, int chunk) {
    LmCtx m = lm_make_rows(n, c, v, chunk);
    m.map.temperature = 0.7f;
    return m;
}
/* lm_make_capped with a temperature of 1.6 too: the logits capped, then divided */
static LmCtx lm_make_capped_tempered(int n, int c, int v, int chunk) {
    LmCtx m = lm_make_capped(n, c, v, chunk);
    m.map.temperature = 1.6f;
    return m;
}
/* lm_make with an adapter of rank 3 on the head (peft's lm_head target), and a weight per row */
static LmCtx lm_make_lora(int n, int c, int v, int chunk) {
    LmCtx m = lm_make_rows(n, c, v, chunk);
    m.R = 3;
    m.u = rand_vec((size_t)n * 3, -1, 1), m.B = rand_vec((size_t)v * 3, -1, 1);
    m.du = rand_vec((size_t)n * 3, 0, 0), m.dB = rand_vec((size_t)v * 3, 0, 0);
    size_t f32 = ops_lm_head_scratch(n, c, v, chunk, 0, 3),
           bf16 = ops_lm_head_scratch(n, c, v, chunk, 1, 3);
    free(m.scratch);
    m.scratch = rand_vec(f32 > bf16 ? f32 : bf16, 0, 0); /* the f32 or the bf16 head's */
    return m;
}
/* lm_make_tempered with the rows' entropies and a weight of each (GRPO's entropy bonus) */
static LmCtx lm_make_entropy(int n, int c, int v, int chunk) {
    LmCtx m = lm_make_tempered(n, c, v, chunk);
    m.entropy = rand_vec(n, 0, 0), m.entropy_scale = rand_vec(n, -2, 2);
    return m;
}
/* lm_make_entropy over soft-capped logits */
static LmCtx lm_make_entropy_capped(int n, int c, int v, int chunk) {
    LmCtx m = lm_make_entropy(n, c, v, chunk);
    m.map.softcap = 1.5f;
    return m;
}
static void lm_free(LmCtx *m) {
    free(m->h), free(m->W), free(m->dh), free(m->dW), free(m->losses), free(m->scaled);
    free(m->scratch), free(m->labels), free(m->row_scale);
    free(m->u), free(m->B), free(m->du), free(m->dB), free(m->entropy), free(m->entropy_scale);
}
static float lm_row_weight(const LmCtx *m, int i) {
    return m->grad_scale * (m->row_scale ? m->row_scale[i] : 1.0f);
}

/* out = losses * grad_scale * row_scale (+ entropy * grad_scale * entropy_scale), so L = sum(out)
 * with w = 1 (as cross_entropy's) */
static void lm_fwd(void *p) {
    LmCtx *m = p;
    OpsHeadLora l;
    OpsEntropy e;
    ops->lm_head_cross_entropy(m->losses, NULL, NULL, m->h, m->W, NULL, lm_lora(m, &l, NULL, NULL),
                               m->labels, NULL, m->grad_scale, m->row_scale, lm_entropy(m, &e, 0),
                               m->map, m->scratch, m->n, m->c, m->v, m->chunk);
    for (int i = 0; i < m->n; i++) {
        m->scaled[i] = m->losses[i] * lm_row_weight(m, i);
        if (m->entropy) m->scaled[i] += m->entropy[i] * m->grad_scale * m->entropy_scale[i];
    }
}
static void lm_bwd(void *p, const float *dout, unsigned use) {
    LmCtx *m = p;
    (void)dout; /* w is all ones: see lm_fwd */
    OpsHeadLora l;
    OpsEntropy e;
    ops->lm_head_cross_entropy(m->losses, USE(0, m->dh), USE(1, m->dW), m->h, m->W, NULL,
                               lm_lora(m, &l, USE(2, m->du), USE(3, m->dB)), m->labels, NULL,
                               m->grad_scale, m->row_scale, lm_entropy(m, &e, 1), m->map,
                               m->scratch, m->n, m->c, m->v, m->chunk);
}

static void lm_gradcheck(LmCtx (*make)(int, int, int, int), int n, int c, int v, int chunk) {
    LmCtx m = make(n, c, v, chunk);
    char name[128];
    snprintf(name, sizeof name, "lm_head N=%d V=%d chunk=%d%s%s T=%g%s%s", n, v, chunk,
             m.row_scale ? " row_scale" : "", m.map.softcap > 0 ? " soft-capped" : "",
             (double)m.map.temperature, m.R ? " lora" : "", m.entropy ? " entropy" : "");
    GradCase gc = grad_case(name, &m, lm_fwd, lm_bwd, m.scaled, n, 1e-2f);
    case_param(&gc, "h", m.h, m.dh, (size_t)n * c);
    case_param(&gc, "W", m.W, m.dW, (size_t)v * c);
    if (m.R) case_param(&gc, "u", m.u, m.du, (size_t)n * m.R);
    if (m.R) case_param(&gc, "B", m.B, m.dB, (size_t)v * m.R);
    for (int i = 0; i < n; i++) gc.w[i] = 1.0f;
    gc.keep_w = 1;
    gradcheck(&gc);
    lm_free(&m);
}

/* losses, dh, dW (from zero) against double loops over the whole [n,v] logits. */
static void lm_reference_check(LmCtx (*make)(int, int, int, int), int n, int c, int v, int chunk) {
    LmCtx m = make(n, c, v, chunk);
    double *loss = calloc(n, sizeof(double)), *dlog = calloc((size_t)n * v, sizeof(double));
    double *dh = calloc((size_t)n * c, sizeof(double)), *dW = calloc((size_t)v * c, sizeof(double));
    int R = m.R;
    double cap = m.map.softcap, temp = m.map.temperature; /* capped, then divided */
    double *du = calloc((size_t)n * R + 1, sizeof(double)),
           *dB = calloc((size_t)v * R + 1, sizeof(double)), *ent = calloc(n, sizeof(double));
    for (int i = 0; i < n; i++) {
        int y = m.labels[i];
        if (y < 0 || y >= v) continue;
        double *x = dlog + (size_t)i * v, mx = -INFINITY, s = 0;
        for (int j = 0; j < v; j++) {
            x[j] = 0;
            for (int k = 0; k < c; k++) x[j] += (double)m.h[i * c + k] * m.W[j * c + k];
            for (int r = 0; r < R; r++) x[j] += 0.7 * m.u[i * R + r] * m.B[j * R + r];
            if (cap > 0) x[j] = cap * tanh(x[j] / cap);
            x[j] /= temp;
            mx = fmax(mx, x[j]);
        }
        for (int j = 0; j < v; j++) s += exp(x[j] - mx);
        loss[i] = mx + log(s) - x[y];
        double mean = 0; /* the softmax's mean of the logits: H = log-sum-exp - mean */
        for (int j = 0; j < v; j++) mean += exp(x[j] - mx) / s * x[j];
        ent[i] = mx + log(s) - mean;
        double ge = m.entropy ? (double)m.grad_scale * m.entropy_scale[i] : 0.0;
        for (int j = 0; j < v; j++) {
            double capped = x[j] * temp, p = exp(x[j] - mx) / s;
            double slope = (cap > 0 ? 1 - (capped / cap) * (capped / cap) : 1) / temp;
            x[j] = ((p - (j == y)) * lm_row_weight(&m, i) - ge * p * (x[j] - mean)) * slope;
        }
        for (int j = 0; j < v; j++) {
            for (int k = 0; k < c; k++) {
                dh[i * c + k] += x[j] * m.W[j * c + k];
                dW[j * c + k] += x[j] * m.h[i * c + k];
            }
            for (int r = 0; r < R; r++) {
                du[i * R + r] += 0.7 * x[j] * m.B[j * R + r];
                dB[j * R + r] += 0.7 * x[j] * m.u[i * R + r];
            }
        }
    }
    OpsHeadLora l;
    OpsEntropy e;
    ops->lm_head_cross_entropy(m.losses, m.dh, m.dW, m.h, m.W, NULL, lm_lora(&m, &l, m.du, m.dB),
                               m.labels, NULL, m.grad_scale, m.row_scale, lm_entropy(&m, &e, 1),
                               m.map, m.scratch, n, c, v, chunk);
    char what[96];
    snprintf(what, sizeof what, "lm_head N=%d C=%d V=%d chunk=%d%s%s T=%g%s%s", n, c, v, chunk,
             m.row_scale ? " row_scale" : "", cap > 0 ? " soft-capped" : "", temp, R ? " lora" : "",
             m.entropy ? " entropy" : "");
    int bad = count_mismatch(what, m.losses, loss, n, 1e-5, 1e-5);
    if (m.entropy) bad += count_mismatch(what, m.entropy, ent, n, 1e-6, 1e-5);
    bad += count_mismatch(what, m.dh, dh, (size_t)n * c, 1e-6, 1e-5);
    bad += count_mismatch(what, m.dW, dW, (size_t)v * c, 1e-6, 1e-5);
    bad += count_mismatch(what, m.du, du, (size_t)n * R, 1e-6, 1e-5);
    bad += count_mismatch(what, m.dB, dB, (size_t)v * R, 1e-6, 1e-5);
    if (bad) fprintf(stderr, "%s: %d elements off the double reference\n", what, bad);
    CHECK(bad == 0);
    free(loss), free(dlog), free(dh), free(dW), free(du), free(dB), free(ent);
    lm_free(&m);
}

/* count_mismatch of a against float b */
static int float_mismatch(const char *what, const float *a, const float *b, size_t n, double atol,
                          double rtol) {
    double *ref = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) ref[i] = b[i];
    int bad = count_mismatch(what, a, ref, n, atol, rtol);
    free(ref);
    return bad;
}

/* The chunked op gives what the unchunked path gives (matmul_forward over all rows,
 * cross_entropy, matmul_backward) to float rounding: OpenBLAS may sum a GEMM of fewer rows in
 * another order, and the chunks add into dW one after the other. */
static void lm_matches_unchunked(int n, int c, int v, int chunk) {
    LmCtx m = lm_make(n, c, v, chunk);
    float *logits = rand_vec((size_t)n * v, 0, 0), *dlogits = rand_vec((size_t)n * v, 0, 0);
    float *losses = rand_vec(n, 0, 0), *dh = rand_vec((size_t)n * c, 0, 0);
    float *dW = rand_vec((size_t)v * c, 0, 0);
    ops->matmul_forward(logits, m.h, m.W, NULL, n, c, v);
    ops->cross_entropy(losses, dlogits, logits, m.labels, m.grad_scale, n, v);
    ops->matmul_backward(dh, dW, dlogits, m.h, m.W, n, c, v, OPS_ADD);
    ops->lm_head_cross_entropy(m.losses, m.dh, m.dW, m.h, m.W, NULL, NULL, m.labels, NULL,
                               m.grad_scale, NULL, NULL, OPS_LOGITS_PLAIN, m.scratch, n, c, v,
                               chunk);
    CHECK(float_mismatch("lm_head loss vs unchunked", m.losses, losses, n, 1e-6, 1e-6) == 0);
    CHECK(float_mismatch("lm_head dh vs unchunked", m.dh, dh, (size_t)n * c, 1e-6, 1e-5) == 0);
    CHECK(float_mismatch("lm_head dW vs unchunked", m.dW, dW, (size_t)v * c, 1e-6, 1e-5) == 0);
    free(logits), free(dlogits), free(losses), free(dh), free(dW);
    lm_free(&m);
}

/* The rows that count alone, through a row list (ops.h rows: SFT's, DPO's), give what the whole
 * batch gives them: every third row ignored besides lm_make's two, the listed rows gathered across
 * chunk boundaries; the unlisted keep their losses and dh (dW sums rows in other chunks: float
 * rounding). bf16: the CPU's reference of the bf16 head (no dW). */
static void lm_listed_matches_all(LmCtx (*make)(int, int, int, int), int n, int c, int v, int chunk,
                                  int bf16) {
    LmCtx m = make(n, c, v, chunk);
    uint16_t *wb = bf16 ? malloc((size_t)v * c * sizeof *wb) : NULL;
    for (size_t i = 0; bf16 && i < (size_t)v * c; i++) wb[i] = f32_to_bf16(m.W[i]);
    int32_t *rows = malloc(sizeof(int32_t) * n), listed = 0;
    for (int i = 0; i < n; i++) {
        if (i % 3 == 2) m.labels[i] = -100;
        if (m.labels[i] >= 0 && m.labels[i] < v) rows[listed++] = i;
    }
    fill(m.dh, (size_t)n * c, -1, 1), fill(m.dW, (size_t)v * c, -1, 1);
    float *losses = rand_vec(n, 5, 6), *dh = copy_vec(m.dh, (size_t)n * c);
    float *dW = copy_vec(m.dW, (size_t)v * c), *was = copy_vec(losses, n);
    float *dW_all = bf16 ? NULL : m.dW, *dW_listed = bf16 ? NULL : dW;
    size_t nu = (size_t)n * m.R, nb = (size_t)v * m.R;
    if (m.R) fill(m.du, nu, -1, 1), fill(m.dB, nb, -1, 1);
    float *du = m.R ? copy_vec(m.du, nu) : NULL, *dB = m.R ? copy_vec(m.dB, nb) : NULL;
    OpsHeadLora la, ll;
    ops->lm_head_cross_entropy(m.losses, m.dh, dW_all, m.h, m.W, wb, lm_lora(&m, &la, m.du, m.dB),
                               m.labels, NULL, m.grad_scale, m.row_scale, NULL, m.map, m.scratch, n,
                               c, v, chunk);
    ops->lm_head_cross_entropy(losses, dh, dW_listed, m.h, m.W, wb, lm_lora(&m, &ll, du, dB),
                               m.labels, rows, m.grad_scale, m.row_scale, NULL, m.map, m.scratch,
                               listed, c, v, chunk);
    int moved = 0;
    for (int i = 0, k = 0; i < n; i++) {
        int on = k < listed && rows[k] == i;
        k += on;
        moved += on ? losses[i] != m.losses[i] : losses[i] != was[i];
    }
    CHECK(listed > 0 && listed < n && moved == 0);
    CHECK(float_mismatch("lm_head listed dh", dh, m.dh, (size_t)n * c, 1e-6, 1e-5) == 0);
    if (!bf16) CHECK(float_mismatch("lm_head listed dW", dW, m.dW, (size_t)v * c, 1e-6, 1e-5) == 0);
    if (m.R) CHECK(float_mismatch("lm_head listed du", du, m.du, nu, 1e-6, 1e-5) == 0);
    if (m.R) CHECK(float_mismatch("lm_head listed dB", dB, m.dB, nb, 1e-6, 1e-5) == 0);
    free(wb), free(rows), free(losses), free(dh), free(dW), free(was), free(du), free(dB);
    lm_free(&m);
}

/* In place (dlogits == logits) gives what separate buffers give: the LM head relies on it. */
static void test_cross_entropy_in_place(void) {
    enum { n = 9, v = 37 };
    float *x = rand_vec(n * v, -3, 3), *d = rand_vec(n * v, 0, 0), *l1 = rand_vec(n, 0, 0);
    float *l2 = rand_vec(n, 0, 0);
    int32_t labels[n];
    for (int i = 0; i < n; i++) labels[i] = i == 2 ? -100 : (int32_t)(rng_next(&rng) % v);
    ops->cross_entropy(l1, d, x, labels, 0.5f, n, v);
    ops->cross_entropy(l2, x, x, labels, 0.5f, n, v);
    CHECK(!memcmp(l1, l2, sizeof(float) * n));
    CHECK(!memcmp(d, x, sizeof(float) * n * v));
    free(x), free(d), free(l1), free(l2);
}

static void test_lm_head(void) {
    lm_gradcheck(lm_make, 7, 5, 11, 3);                 /* chunks 3 + 3 + 1; ignored, >= V rows */
    lm_gradcheck(lm_make, 1, 5, 11, OPS_LM_HEAD_CHUNK); /* one row */
    lm_gradcheck(lm_make_rows, 7, 5, 11, 3);            /* a weight per row */
    lm_reference_check(lm_make, 7, 5, 11, 3);
    lm_reference_check(lm_make, 1, 8, 13, OPS_LM_HEAD_CHUNK);
    lm_reference_check(lm_make, 37, 53, 301, 8); /* a boundary inside N, N not a chunk multiple */
    lm_reference_check(lm_make, 64, 16, 50, 16); /* N a multiple of the chunk */
    lm_reference_check(lm_make, 20, 8, 30, 1);   /* one row per chunk */
    lm_reference_check(lm_make, 20, 8, 30, 20);  /* chunk == N */
    lm_reference_check(lm_make_rows, 37, 53, 301, 8); /* row weights cross chunk boundaries */
    lm_gradcheck(lm_make_capped, 7, 5, 11, 3);        /* Gemma 2's final soft-capping */
    lm_reference_check(lm_make_capped, 37, 53, 301, 8);
    lm_gradcheck(lm_make_tempered, 7, 5, 11, 3); /* RL's temperature, alone and after a cap */
    lm_gradcheck(lm_make_capped_tempered, 7, 5, 11, 3);
    lm_reference_check(lm_make_tempered, 37, 53, 301, 8);
    lm_reference_check(lm_make_capped_tempered, 37, 53, 301, 8);
    lm_matches_unchunked(37, 53, 301, 8);
    lm_matches_unchunked(130, 70, 1000, 32);
    lm_matches_unchunked(5, 16, 50, OPS_LM_HEAD_CHUNK); /* one chunk */
    lm_listed_matches_all(lm_make_rows, 37, 53, 301, 8, 0);
    lm_listed_matches_all(lm_make_rows, 37, 53, 301, 8, 1);
    lm_listed_matches_all(lm_make_rows, 5, 16, 50, OPS_LM_HEAD_CHUNK, 0); /* one chunk */
    /* an adapter on the head: its up-projection in each chunk's logits, du and dB */
    lm_gradcheck(lm_make_lora, 7, 5, 11, 3);
    lm_gradcheck(lm_make_entropy, 7, 5, 11, 3); /* RL's entropies and their term */
    lm_gradcheck(lm_make_entropy_capped, 7, 5, 11, 3);
    lm_reference_check(lm_make_entropy, 37, 53, 301, 8);
    lm_reference_check(lm_make_entropy_capped, 37, 53, 301, 8);
    lm_reference_check(lm_make_lora, 37, 53, 301, 8);
    lm_listed_matches_all(lm_make_lora, 37, 53, 301, 8, 0);
    lm_listed_matches_all(lm_make_lora, 37, 53, 301, 8, 1); /* bf16: on bf16 u and B */

    /* every row ignored: losses 0, gradients untouched, no label read out of range */
    LmCtx m = lm_make(6, 4, 9, 4);
    for (int i = 0; i < 6; i++) m.labels[i] = i % 2 ? -100 : 9 + i;
    fill(m.losses, 6, 1, 2), fill(m.dh, 6 * 4, 1, 2), fill(m.dW, 9 * 4, 1, 2);
    float *dh = copy_vec(m.dh, 6 * 4), *dW = copy_vec(m.dW, 9 * 4);
    ops->lm_head_cross_entropy(m.losses, m.dh, m.dW, m.h, m.W, NULL, NULL, m.labels, NULL, 1.0f,
                               NULL, NULL, OPS_LOGITS_PLAIN, m.scratch, 6, 4, 9, 4);
    CHECK(max_abs(m.losses, 6) == 0.0f);
    CHECK(!memcmp(dh, m.dh, sizeof(float) * 6 * 4) && !memcmp(dW, m.dW, sizeof(float) * 9 * 4));
    free(dh), free(dW);
    lm_free(&m);
}

/* ---- optimizer and reductions ---- */

static void test_adamw(void) {
    enum { n = 1000 };
    const float lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f;
    float *param = rand_vec(n, -1, 1), *m = rand_vec(n, 0, 0), *v = rand_vec(n, 0, 0);
    double rp[n], rm[n] = {0}, rv[n] = {0};
    for (int i = 0; i < n; i++) rp[i] = param[i];
    for (int step = 1; step <= 3; step++) {
        float *g = rand_vec(n, -1, 1);
        g[0] = 0.0f; /* a zero gradient: only decay and momentum move it */
        AdamWTensor t = {param, 0, n, 1, 1.0f};
        AdamWHyper h = {lr, b1, b2, eps, wd, 0.0f, step};
        double norm, scratch[OPS_ADAMW_SCRATCH];
        ops->adamw_step(&t, 1, g, m, v, n, h, &norm, scratch);
        for (int i = 0; i < n; i++) {
            rp[i] *= 1 - (double)lr * wd;
            rm[i] = b1 * rm[i] + (1 - (double)b1) * g[i];
            rv[i] = b2 * rv[i] + (1 - (double)b2) * g[i] * g[i];
            rp[i] -=
                lr / (1 - pow(b1, step)) * rm[i] / (sqrt(rv[i]) / sqrt(1 - pow(b2, step)) + eps);
        }
        free(g);
    }
    CHECK(count_mismatch("adamw param", param, rp, n, 1e-6, 1e-5) == 0);
    CHECK(count_mismatch("adamw m", m, rm, n, 1e-7, 1e-5) == 0);
    CHECK(count_mismatch("adamw v", v, rv, n, 1e-9, 1e-5) == 0);
    free(param), free(m), free(v);
}

static void test_norm_and_memory(void) {
    enum { n = 100003 };
    float *x = ops->alloc(sizeof(float) * n);
    CHECK(x != NULL && ((uintptr_t)x % 64) == 0);
    int zeroed = 1;
    for (int i = 0; i < n; i++) zeroed &= x[i] == 0.0f;
    CHECK(zeroed);
    float *h = rand_vec(n, -100, 100), *back = malloc(sizeof(float) * n);
    ops->upload(x, h, sizeof(float) * n);
    ops->download(back, x, sizeof(float) * n);
    CHECK(!memcmp(h, back, sizeof(float) * n));
    double ref = 0;
    for (int i = 0; i < n; i++) ref += (double)h[i] * h[i];
    double norm, scratch[OPS_ADAMW_SCRATCH];
    AdamWHyper hyper = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1.0f, 1};
    ops->adamw_step(NULL, 0, x, NULL, NULL, n, hyper, &norm, scratch); /* the norm alone */
    CHECK_CLOSE(norm, sqrt(ref), 0, 1e-12);
    ops->zero(x, sizeof(float) * n);
    ops->adamw_step(NULL, 0, x, NULL, NULL, n, hyper, &norm, scratch);
    CHECK(norm == 0.0);
    LfError err;
    CHECK(ops->status(&err) == 0);
    ops->free(x);
    void *empty = ops->alloc(0); /* a valid pointer that free accepts */
    CHECK(empty != NULL);
    ops->free(empty);
    free(h), free(back);
}

/* ---- threads: the parallel paths give what one thread gives ---- */

enum { LB = 2, LT = 128, LC = 256, LNH = 4, LV = 300, LN = LB * LT };

/* Runs every op with a parallel loop at a shape above the serial threshold, from inputs drawn
 * from a fixed seed, and writes everything it produced to res (filled in a fixed order). */
static size_t large_pass(float *res) {
    Rng saved = rng;
    rng = (Rng){777, 0};
    size_t n = (size_t)LN * LC, nl = (size_t)LB * LNH * LT, at = 0;
    float *x = rand_vec(n, -1, 1), *y = rand_vec(n, -1, 1), *z = rand_vec(n, -1, 1);
    float *g = rand_vec(n, -1, 1), *wte = rand_vec((size_t)LV * LC, -1, 1);
    float *wpe = rand_vec((size_t)LT * LC, -1, 1), *wtt = rand_vec(2 * LC, -1, 1);
    float *lnw = rand_vec(LC, 0.5f, 1.5f), *lnb = rand_vec(LC, -1, 1), *mean = rand_vec(LN, 0, 0);
    float *rstd = rand_vec(LN, 0, 0), *lse = rand_vec(nl, 0, 0);
    float *scratch = rand_vec(ops->attention_scratch(LB, LT, LNH, LNH, LC / LNH), 0, 0);
    float *logits = rand_vec((size_t)LN * LV, -3, 3), *losses = rand_vec(LN, 0, 0);
    /* gradients: never aliasing an input */
    float *d1 = rand_vec(n, -1, 1), *d2 = rand_vec(n, -1, 1), *d3 = rand_vec(n, -1, 1);
    float *dwte = rand_vec((size_t)LV * LC, 0, 0), *dwpe = rand_vec((size_t)LT * LC, 0, 0);
    float *dwtt = rand_vec(2 * LC, 0, 0), *dlnw = rand_vec(LC, 0, 0), *dlnb = rand_vec(LC, 0, 0);
    float *dlogits = rand_vec((size_t)LN * LV, 0, 0);
    int32_t ids[LN], types[LN], mask[LN], labels[LN];
    for (int i = 0; i < LN; i++) {
        ids[i] = (int32_t)(rng_next(&rng) % LV), types[i] = i % 2;
        mask[i] = i % LT < LT - 7, labels[i] = i % 11 ? (int32_t)(rng_next(&rng) % LV) : -100;
    }
#define SAVE(p, cnt) (memcpy(res + at, p, sizeof(float) * (cnt)), at += (cnt))
    ops->embedding_forward(z, ids, types, NULL, wte, NULL, wpe, wtt, LB, LT, LC);
    SAVE(z, n);
    ops->embedding_backward(dwte, dwpe, dwtt, g, ids, types, -1, LB, LT, LC);
    SAVE(dwte, (size_t)LV * LC), SAVE(dwpe, (size_t)LT * LC), SAVE(dwtt, 2 * LC);
    ops->layernorm_forward(z, mean, rstd, NULL, x, lnw, lnb, 1e-5f, LN, LC);
    SAVE(z, n), SAVE(mean, LN), SAVE(rstd, LN);
    ops->layernorm_backward(d1, NULL, dlnw, dlnb, g, x, NULL, lnw, mean, rstd, LN, LC, OPS_ADD);
    SAVE(d1, n), SAVE(dlnw, LC), SAVE(dlnb, LC);
    ops->attention_forward(z, NULL, 0, lse, NULL, x, LC, y, g, LC, mask, 0, 0, NULL,
                           attn_score_plain(LC / LNH), 0.1f, 5, scratch, LB, LT, LNH, LNH,
                           LC / LNH);
    SAVE(z, n), SAVE(lse, nl);
    ops->attention_backward(d1, d2, d3, g, x, y, g, LC, LC, z, NULL, 0, lse, NULL, mask, 0, 0, NULL,
                            attn_score_plain(LC / LNH), 0.1f, 5, scratch, LB, LT, LNH, LNH,
                            LC / LNH, OPS_ADD);
    SAVE(d1, n), SAVE(d2, n), SAVE(d3, n);
    ops->cross_entropy(losses, dlogits, logits, labels, 0.01f, LN, LV);
    SAVE(losses, LN), SAVE(dlogits, (size_t)LN * LV);
    ops->activation_backward(d1, NULL, x, NULL, NULL, g, NULL, ACT_GELU, n, LC, OPS_ADD);
    ops->dropout_backward(d1, NULL, y, 0.2f, 9, n, OPS_ADD);
    SAVE(d1, n);
#undef SAVE
    free(x), free(y), free(z), free(g), free(wte), free(wpe), free(wtt), free(lnw), free(lnb);
    free(mean), free(rstd), free(lse), free(scratch), free(logits), free(losses);
    free(d1), free(d2), free(d3), free(dwte), free(dwpe), free(dwtt), free(dlnw), free(dlnb);
    free(dlogits);
    rng = saved;
    return at;
}

static void test_parallel_matches_serial(void) {
    size_t cap = 16 * (size_t)LN * LC + 2 * (size_t)LB * LNH * LT * LT + (size_t)LN * LV * 3;
    float *serial = malloc(sizeof(float) * cap), *parallel = malloc(sizeof(float) * cap);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    size_t n = large_pass(serial);
    omp_set_num_threads(threads > 1 ? threads : 2);
    CHECK(large_pass(parallel) == n);
    CHECK(!memcmp(serial, parallel, sizeof(float) * n)); /* same per-element order: bitwise */
    omp_set_num_threads(threads);
    free(serial), free(parallel);
}

/* ---- preference pairs (dpo_loss, reward_loss) ----
 * The stats against the formulas evaluated directly (log of the sigmoid, not pair_loss.h's
 * stable forms), and the gradient weights against central differences of the op's own loss:
 * d (grad_scale * mean loss) / d token loss (DPO) or / d score (reward). Two pairs of 7 tokens,
 * the first 2 a prompt (label -100, loss 0). */
enum { PB = 4, PT = 7 };
static const float pair_beta = 0.3f, pair_scale = 0.5f;

static double dpo_op(const float *losses, const int32_t *labels, const float *ref, int ipo,
                     float *row_scale, float *logps, double *stats) {
    ops->dpo_loss(stats, logps, row_scale, losses, labels, ref, pair_beta, ipo ? 0.0f : 0.2f, ipo,
                  pair_scale, PB, PT);
    return pair_scale * stats[0] / (PB / 2);
}

static void test_dpo_loss(int ipo) {
    float losses[PB * PT], ref[PB], row_scale[PB * PT], logps[PB], scratch[PB * PT];
    int32_t labels[PB * PT];
    double stats[4], want[4] = {0, 0, 0, 0}, eps = ipo ? 0.0 : 0.2;
    for (int i = 0; i < PB * PT; i++) {
        labels[i] = i % PT < 2 || (i / PT == 3 && i % PT == 6) ? -100 : 9;
        losses[i] = labels[i] < 0 ? 0.0f : urand(0.1f, 3.0f);
    }
    fill(ref, PB, -12.0f, -4.0f);
    dpo_op(losses, labels, ref, ipo, row_scale, logps, stats);
    for (int p = 0; p < PB / 2; p++) {
        double lp[2], n[2];
        for (int k = 0; k < 2; k++) {
            int row = 2 * p + k;
            lp[k] = n[k] = 0;
            for (int t = 0; t < PT; t++)
                lp[k] -= losses[row * PT + t], n[k] += labels[row * PT + t] >= 0;
            CHECK_CLOSE(logps[row], lp[k], 1e-5, 1e-6);
            if (!ipo) n[k] = 1;
            lp[k] /= n[k];
        }
        double x = (lp[0] - lp[1]) - (ref[2 * p] / n[0] - ref[2 * p + 1] / n[1]);
        double sig = 1.0 / (1.0 + exp(-pair_beta * x)), c = pair_beta * (lp[0] - ref[2 * p] / n[0]);
        double r = pair_beta * (lp[1] - ref[2 * p + 1] / n[1]);
        want[0] +=
            ipo ? pow(x - 1.0 / (2.0 * pair_beta), 2) : -(1 - eps) * log(sig) - eps * log(1 - sig);
        want[1] += c, want[2] += r, want[3] += c > r;
    }
    /* the margins are differences of f32 sums of log-probabilities near 10: 1e-6 absolute */
    for (int k = 0; k < 4; k++) CHECK_CLOSE(stats[k], want[k], 1e-6, 1e-6);
    int bad = 0;
    for (int i = 0; i < PB * PT; i++) {
        if (labels[i] < 0) continue; /* a labelled token: an ignored one's loss is 0 */
        float *l = memcpy(scratch, losses, sizeof losses), h = 1e-2f, keep = l[i];
        double s[4];
        float unused[PB * PT], lp[PB];
        l[i] = keep + h;
        double up = dpo_op(l, labels, ref, ipo, unused, lp, s);
        l[i] = keep - h;
        double down = dpo_op(l, labels, ref, ipo, unused, lp, s);
        double fd = (up - down) / (2.0 * h);
        if (fabs(row_scale[i] - fd) > 1e-5 + 2e-3 * fabs(fd)) {
            if (bad++ < 5)
                fprintf(stderr, "  row_scale[%d] = %.8g, fd %.8g\n", i, row_scale[i], fd);
        }
    }
    CHECK(bad == 0);
    printf("dpo_loss %s: stats and row_scale match (loss %.6f)\n", ipo ? "ipo" : "sigmoid",
           stats[0] / (PB / 2));
}

static double reward_op(const float *scores, const int32_t *pos, float *dscores, float *rewards,
                        double *stats) {
    ops->reward_loss(stats, rewards, dscores, scores, pos, pair_scale, PB, PT);
    return pair_scale * stats[0] / (PB / 2);
}

static void test_reward_loss(void) {
    float scores[PB * PT], dscores[PB * PT], rewards[PB], scratch[PB * PT];
    int32_t pos[PB] = {6, 3, 0, 6};
    double stats[4], want[4] = {0, 0, 0, 0};
    fill(scores, PB * PT, -3.0f, 3.0f);
    fill(dscores, PB * PT, 5.0f, 6.0f); /* overwritten */
    reward_op(scores, pos, dscores, rewards, stats);
    for (int p = 0; p < PB / 2; p++) {
        double c = scores[2 * p * PT + pos[2 * p]], r = scores[(2 * p + 1) * PT + pos[2 * p + 1]];
        CHECK(rewards[2 * p] == c && rewards[2 * p + 1] == r);
        want[0] -= log(1.0 / (1.0 + exp(r - c)));
        want[1] += c, want[2] += r, want[3] += c > r;
    }
    for (int k = 0; k < 4; k++) CHECK_CLOSE(stats[k], want[k], 1e-9, 1e-6);
    int bad = 0;
    for (int i = 0; i < PB * PT; i++) { /* zero but at the pooled tokens */
        float *x = memcpy(scratch, scores, sizeof scores), h = 1e-2f, keep = x[i], d[PB * PT],
              rw[PB];
        double s[4];
        x[i] = keep + h;
        double up = reward_op(x, pos, d, rw, s);
        x[i] = keep - h;
        double fd = (up - reward_op(x, pos, d, rw, s)) / (2.0 * h);
        if (fabs(dscores[i] - fd) > 1e-6 + 1e-3 * fabs(fd)) {
            if (bad++ < 5) fprintf(stderr, "  dscores[%d] = %.8g, fd %.8g\n", i, dscores[i], fd);
        }
    }
    CHECK(bad == 0);
    printf("reward_loss: stats and dscores match (loss %.6f)\n", stats[0] / (PB / 2));
}

/* TRL's policy term at ratio c (its coef_1; cispo's cap reads cd, the ratio detached; vespo's
 * gamma weight cd, its row's detached weight), advantage a and log-prob lp; low, high as TRL's
 * clip metrics (cispo's cispo_clip_ratio in high). */
static double trl_policy(const OpsGrpoTerms *t, double c, double cd, double a, double lp, int *low,
                         int *high) {
    *low = *high = 0;
    if (t->policy == OPS_GRPO_CISPO) {
        *high = cd > t->eps_high && a > 0;
        return -fmin(cd, t->eps_high) * a * lp;
    }
    if (t->policy == OPS_GRPO_VESPO) { /* TRL's get_gamma_weights */
        double k = a >= 0 ? t->vespo_k[0] : t->vespo_k[1];
        double lambda = fmax(a >= 0 ? t->vespo_lambda[0] : t->vespo_lambda[1], 1e-4);
        return -exp(lambda + k * log(cd) - lambda * cd) * a * lp;
    }
    if (t->policy == OPS_GRPO_SAPO) {
        double tau = a > 0 ? t->sapo_pos : t->sapo_neg;
        return -1.0 / (1.0 + exp(-tau * (c - 1))) * 4 / tau * a;
    }
    double lo = 1.0 - t->eps_low, hi = 1.0 + t->eps_high; /* in double, as the op */
    double c2 = fmin(fmax(c, lo), hi), c1 = t->delta ? fmin(c, t->delta) : c;
    *low = c1 < lo && a < 0;
    *high = c1 > hi && a > 0;
    return -fmin(c1 * a, c2 * a);
}

/* GRPO's loss over GB rows of GT tokens as TRL writes it (GRPOTrainer._compute_loss), in double:
 * lp the policy's log-probs (-loss), old and ref the sampling policy's and the reference's losses
 * (NULL: none). Without old log-probs TRL's are lp detached: old then is the losses the
 * derivative is taken at (at). At sequence level one ratio a row, the exp of the mean (GSPO) or
 * the sum (RLOOTrainer's) of its log-ratios over its completion tokens (share > 0). Under the
 * off-policy mask (t->off_policy > 0, TRL's get_off_policy_mask) a row whose advantage is
 * negative and whose mean of lp_old - lp (detached: at) is above it has no policy term; *masked
 * counts such rows. clipped[2] gets the tokens (rows) clipped low, high. */
enum { GB = 6, GT = 10 };
static int by_value(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* TRL's get_high_entropy_mask: kept[i] whether completion token i's entropy is at least the
 * quantile q of the completion tokens' (torch.quantile in float: sorted, linear between the
 * neighbours of rank q (n - 1), torch.lerp's form), 1 everywhere at q 0; returns their count. */
static int high_entropy(int *kept, const float *entropy, const float *share, float q, int n) {
    float *sorted = malloc(sizeof(float) * n);
    int count = 0, n_kept = 0;
    for (int i = 0; i < n; i++)
        if (share[i] != 0) sorted[count++] = entropy[i];
    qsort(sorted, count, sizeof *sorted, by_value);
    float cut = 0, rank = q * (float)(count - 1);
    if (count) {
        float lo = sorted[(int)rank], hi = sorted[(int)ceilf(rank)], w = rank - (float)(int)rank;
        cut = w < 0.5f ? lo + w * (hi - lo) : hi - (hi - lo) * (1.0f - w);
    }
    for (int i = 0; i < n; i++) n_kept += kept[i] = share[i] != 0 && (q == 0 || entropy[i] >= cut);
    free(sorted);
    return n_kept;
}

/* TRL's loss as grpo_weights's op computes it (above), with the entropy mask and bonus where
 * entropy is given (the policy term at the kept tokens alone; less entropy_coef times their mean
 * entropy). */
static double grpo_trl_loss(const float *share, const float *adv, const double *loss,
                            const float *ref, const float *old, const double *at,
                            const float *entropy, const OpsGrpoTerms *t, double *clipped,
                            int *masked) {
    double total = 0;
    int ent_kept[GB * GT], n_kept = 0;
    for (int i = 0; i < GB * GT; i++) ent_kept[i] = 1;
    if (entropy) n_kept = high_entropy(ent_kept, entropy, share, t->entropy_quantile, GB * GT);
    for (int i = 0; entropy && i < GB * GT; i++)
        if (ent_kept[i]) total -= (double)t->entropy_coef * entropy[i] / fmax(n_kept, 1);
    clipped[0] = clipped[1] = 0;
    *masked = 0;
    for (int b = 0; b < GB; b++) {
        double row_log = 0, row_at = 0, n = 0, vespo_log = 0, drift = 0;
        for (int k = 0; k < GT; k++) {
            int i = b * GT + k;
            if (share[i] == 0) continue;
            row_log += (old ? old[i] : at[i]) - loss[i], n++;
            row_at += (old ? old[i] : at[i]) - at[i];
            vespo_log += fmin(fmax((old ? old[i] : at[i]) - at[i], -20.0), 20.0);
            drift += at[i] - (old ? old[i] : at[i]);
        }
        int keep = !(t->off_policy > 0 && adv[b * GT] < 0 && drift / fmax(n, 1) > t->off_policy);
        *masked += !keep;
        double m = t->level == OPS_GRPO_SEQUENCE_SUM ? 1.0 : fmax(n, 1);
        double row_c = exp(row_log / m), row_cd = exp(row_at / m);
        double vespo_w = exp(fmin(fmax(vespo_log, log(1e-8)), 20.0)); /* detached */
        int counted = 0; /* at sequence level a row counts once */
        for (int k = 0; k < GT; k++) {
            int i = b * GT + k, low, high;
            if (share[i] == 0) continue;
            double lp = -loss[i], a = adv[i];
            int by_row = t->level != OPS_GRPO_TOKEN;
            double c = by_row ? row_c : exp(lp + (old ? old[i] : at[i]));
            double cd = t->policy == OPS_GRPO_VESPO ? vespo_w
                        : by_row                    ? row_cd
                                                    : exp(-at[i] + (old ? old[i] : at[i]));
            double kl = ref ? exp(-ref[i] - lp) - (-ref[i] - lp) - 1 : 0.0;
            double kc = t->kl_corrected ? c : 1.0; /* use_bias_correction_kl */
            double policy = trl_policy(t, c, cd, a, lp, &low, &high);
            total += share[i] * ((keep && ent_kept[i] ? policy : 0.0) + t->beta * kl * kc);
            if (!by_row || !counted++) clipped[0] += low, clipped[1] += high;
        }
    }
    return total;
}

/* GRPO's token weights (ops.h grpo_weights) against TRL's loss written out in double: the loss
 * and clip counts summed, each token's weight the loss's derivative by central differences (away
 * from the clipping bounds), the KL's mean; with and without a reference and old log-probs, by
 * token and by sequence (GSPO's mean, RLOO's sum), for each policy term: the clipped ratio over
 * [0.51, 1.81] against the range [0.8, 1.28] (and delta's cap), cispo's cap at 1.2, sapo's
 * sigmoid. */
/* The masks and the bonus of a grpo_weights case: none, the off-policy mask's threshold, the
 * entropy mask's quantile, the bonus's coefficient (the last two: the op given entropies). */
typedef struct GrpoMasks {
    float off_policy, entropy_quantile, entropy_coef;
} GrpoMasks;

static void grpo_weights_case(int with_ref, int with_old, OpsGrpoLevel level, OpsGrpoPolicy policy,
                              float delta, int kl_corrected, GrpoMasks mk) {
    enum { NK = GB * GT, ROW_TOKENS = GT - GT / 5 }; /* a row's tokens with a share */
    OpsGrpoTerms t = grpo_test_terms(with_ref, level, policy, delta);
    float off_policy = mk.off_policy;
    t.kl_corrected = kl_corrected, t.off_policy = off_policy;
    t.entropy_quantile = mk.entropy_quantile, t.entropy_coef = mk.entropy_coef;
    int sequence = level != OPS_GRPO_TOKEN, sum = level == OPS_GRPO_SEQUENCE_SUM;
    int with_entropy = mk.entropy_quantile > 0 || mk.entropy_coef != 0;
    float share[NK], adv[NK], loss[NK], ref[NK], old[NK], row_scale[NK], entropy[NK], ent_scale[NK];
    double stats[7], loss_d[NK], want_clipped[2], dummy[2];
    for (int i = 0; i < NK; i++) {
        int b = i / GT;
        entropy[i] = 0.1f * (float)(i * 13 % 17); /* ties among them: the threshold's >= */
        share[i] = i % 5 == 4 ? 0.0f : 0.01f * (float)(1 + b % 3);
        adv[i] = 0.4f * (float)(b * 3 % 7) - 1.2f;
        loss[i] = 2.0f + 0.1f * (float)(i % 11), loss_d[i] = loss[i];
        ref[i] = loss[i] + 0.1f * (float)(i % 41 - 20);
        /* c = exp(old - loss); at sequence level a row's tokens share a log-ratio around its own
         * (by the sum, a root of it each) */
        float row = 0.51f + 1.3f * (float)(b * 5 % GB) / GB + 0.05f * (float)(i % 3);
        float ratio = sum        ? powf(row, 1.0f / ROW_TOKENS)
                      : sequence ? row
                                 : 0.51f + 1.3f * (float)((i * 7) % NK) / NK;
        old[i] = loss[i] + (off_policy > 0 ? -1.0f : 1.0f) * logf(ratio); /* the mask's: drift */
    }
    const float *r = with_ref ? ref : NULL, *o = with_old ? old : NULL;
    const float *e = with_entropy ? entropy : NULL;
    ops->grpo_weights(stats, row_scale, mk.entropy_coef != 0 ? ent_scale : NULL, share, adv, loss,
                      e, r, o, t, GB, GT);
    /* the derivative: old (or at, the detached log-probs) held at the unperturbed losses */
    double at[NK];
    memcpy(at, loss_d, sizeof at);
    int masked, none;
    double want = grpo_trl_loss(share, adv, loss_d, r, o, at, e, &t, want_clipped, &masked), kl = 0;
    int bad = 0, tokens = 0;
    for (int i = 0; i < NK; i++) {
        double h = 1e-4, keep = loss_d[i];
        loss_d[i] = keep + h;
        double up = grpo_trl_loss(share, adv, loss_d, r, o, at, e, &t, dummy, &none);
        loss_d[i] = keep - h;
        double fd =
            (up - grpo_trl_loss(share, adv, loss_d, r, o, at, e, &t, dummy, &none)) / (2 * h);
        loss_d[i] = keep;
        if (share[i] > 0) {
            tokens++;
            int b = i / GT;
            double row_log = 0, n = 0;
            for (int k = b * GT; k < (b + 1) * GT; k++)
                if (share[k] > 0) row_log += (with_old ? old[k] : loss[k]) - (double)loss[k], n++;
            double c = sequence   ? exp(row_log / (sum ? 1.0 : n))
                       : with_old ? exp((double)old[i] - loss[i])
                                  : 1.0;
            double x = with_ref ? (double)loss[i] - ref[i] : 0.0;
            kl += (kl_corrected ? c : 1.0) * (exp(x) - x - 1);
        }
        if (fabs(row_scale[i] - fd) > 1e-7 + 1e-5 * fabs(fd)) {
            if (bad++ < 5)
                fprintf(stderr, "  row_scale[%d] = %.8g, fd %.8g\n", i, row_scale[i], fd);
        }
    }
    CHECK(bad == 0);
    CHECK_CLOSE(stats[0], want, 1e-12, 1e-12);
    CHECK_CLOSE(stats[1], kl, 1e-12, 1e-12);
    CHECK(stats[2] == tokens && stats[3] == want_clipped[0] && stats[4] == want_clipped[1]);
    if (with_old && policy == OPS_GRPO_CLIP && !off_policy) /* the mask's ratios are others */
        CHECK(want_clipped[0] > 0 && want_clipped[1] > 0);
    if (with_old && policy == OPS_GRPO_CISPO) CHECK(want_clipped[1] > 0); /* some capped */
    if (off_policy > 0) CHECK(masked > 0 && masked < 3); /* of the 3 rows whose advantage is < 0 */
    int ent_kept[NK],
        n_kept = with_entropy ? high_entropy(ent_kept, entropy, share, mk.entropy_quantile, NK) : 0;
    if (with_entropy) { /* the kept tokens' sums, and the bonus's weights: -coef / their count */
        double kept_sum = 0;
        int scale_bad = 0;
        for (int i = 0; i < NK; i++) {
            kept_sum += ent_kept[i] ? entropy[i] : 0.0;
            float want_scale = ent_kept[i] ? (float)(-mk.entropy_coef / fmax(n_kept, 1)) : 0.0f;
            scale_bad += mk.entropy_coef != 0 && ent_kept[i] != (ent_scale[i] != 0.0f);
            scale_bad += mk.entropy_coef != 0 && fabsf(ent_scale[i] - want_scale) > 1e-9f;
        }
        CHECK(scale_bad == 0);
        CHECK(stats[6] == n_kept);
        CHECK_CLOSE(stats[5], kept_sum, 1e-12, 1e-12);
        if (mk.entropy_quantile > 0) CHECK(n_kept > 0 && n_kept < tokens); /* some masked */
    }
    static const char *const names[] = {"clip", "cispo", "sapo", "vespo"};
    char masks[96];
    snprintf(masks, sizeof masks, "%s%s%s", off_policy > 0 ? " under the off-policy mask" : "",
             mk.entropy_quantile > 0 ? " under the entropy mask" : "",
             mk.entropy_coef != 0 ? " with the entropy bonus" : "");
    printf("grpo_weights %s%s%s%s%s%s%s: weights and sums match (loss %.6f, %g low and %g high of "
           "%d %s clipped)\n",
           names[policy], delta ? " with delta" : "", kl_corrected ? "" : " (plain KL)", masks,
           sum        ? " by sequence (sum)"
           : sequence ? " by sequence"
                      : "",
           with_ref ? " with a reference" : "", with_old ? " with old log-probs" : "", want,
           want_clipped[0], want_clipped[1], sequence ? GB : tokens, sequence ? "rows" : "tokens");
}

static void test_grpo_weights(int with_ref, int with_old, OpsGrpoLevel level, OpsGrpoPolicy policy,
                              float delta, int kl_corrected) {
    grpo_weights_case(with_ref, with_old, level, policy, delta, kl_corrected, (GrpoMasks){0});
}

/* ---- activations kept in bf16 for backward (ops.h; model.precision bf16) ----
 * Backward from the copies forward saves, against backward from the f32 inputs. The inputs are
 * bf16 values here, so the activations' and SwiGLU's copies are the inputs themselves and the
 * gradients are equal; a norm's copy is xhat rounded (2^-9 relative), so its gradients are
 * within 1e-2 of their largest value. */
static float *bf16_vec(size_t n, float lo, float hi) {
    float *x = rand_vec(n, lo, hi);
    for (size_t i = 0; i < n; i++) x[i] = bf16_to_f32(f32_to_bf16(x[i]));
    return x;
}

/* 0 when every a[i] is within tol * max|b| of b[i] */
static int off_by(const char *what, const float *a, const float *b, size_t n, double tol) {
    double *wide = malloc(n * sizeof *wide);
    for (size_t i = 0; i < n; i++) wide[i] = b[i];
    int bad = count_mismatch(what, a, wide, n, tol * max_abs(b, n), 0.0);
    free(wide);
    return bad;
}

/* The bf16 head (Wb) against the f32 path on bf16-valued h and W: the logits are the same
 * products, rounded to bf16 (half a step each), so a loss (logsumexp less the label's logit) is
 * within one bf16 step at the largest logit; dh differs by that and by dlogits' bf16 rounding
 * (2^-9 relative each), within 1e-2 of its largest value. */
static void lm_bf16_matches_f32(LmCtx (*make)(int, int, int, int), int n, int c, int v, int chunk) {
    LmCtx m = make(n, c, v, chunk);
    uint16_t *wb = malloc((size_t)v * c * sizeof *wb);
    for (size_t i = 0; i < (size_t)n * c; i++) m.h[i] = bf16_to_f32(f32_to_bf16(m.h[i]));
    for (size_t i = 0; i < (size_t)v * c; i++)
        wb[i] = f32_to_bf16(m.W[i]), m.W[i] = bf16_to_f32(wb[i]);
    float *losses = rand_vec(n, 0, 0), *dh = rand_vec((size_t)n * c, 0, 0);
    float *half = rand_vec(ops_lm_head_scratch(n, c, v, chunk, 1, 0), 0, 0); /* bf16 logits' room */
    ops->lm_head_cross_entropy(losses, dh, NULL, m.h, m.W, NULL, NULL, m.labels, NULL, m.grad_scale,
                               m.row_scale, NULL, m.map, m.scratch, n, c, v, chunk);
    ops->lm_head_cross_entropy(m.losses, m.dh, NULL, m.h, m.W, wb, NULL, m.labels, NULL,
                               m.grad_scale, m.row_scale, NULL, m.map, half, n, c, v, chunk);
    double top = 0.0; /* the largest |logit| */
    for (size_t r = 0; r < (size_t)n; r++)
        for (size_t j = 0; j < (size_t)v; j++) {
            double z = 0.0;
            for (size_t k = 0; k < (size_t)c; k++) z += (double)m.h[r * c + k] * m.W[j * c + k];
            top = fabs(z) > top ? fabs(z) : top;
        }
    CHECK(float_mismatch("lm_head bf16 loss", m.losses, losses, n, ldexp(1.0, ilogb(top) - 7),
                         0.0) == 0);
    double most = 0.0; /* and rounded they were: f32 logits agree to about 1e-6 */
    for (int r = 0; r < n; r++) most = fmax(most, fabs((double)m.losses[r] - losses[r]));
    CHECK(most > 1e-4);
    CHECK(off_by("lm_head bf16 dh", m.dh, dh, (size_t)n * c, 1e-2) == 0);
    CHECK(max_abs(dh, (size_t)n * c) > 0.0f);
    free(wb), free(losses), free(dh), free(half);
    lm_free(&m);
}

static void test_lm_head_bf16(void) {
    lm_bf16_matches_f32(lm_make, 37, 53, 301, 8); /* f32 logits in half chunks: 4 rows at a time */
    lm_bf16_matches_f32(lm_make, 7, 53, 301, OPS_LM_HEAD_CHUNK); /* 4 + 3 */
    lm_bf16_matches_f32(lm_make_rows, 20, 16, 50, OPS_LM_HEAD_CHUNK);
    lm_bf16_matches_f32(lm_make_capped, 37, 53, 301, 8);
    lm_bf16_matches_f32(lm_make_capped_tempered, 37, 53, 301, 8);
}

/* ---- first writers: an op given OPS_SET and a gradient buffer of NaNs writes what OPS_ADD adds to
 * a zeroed one (never reading the buffer): equal values, for each op with an acc flag. ---- */
static int set_matches_add(const char *what, const float *set, const float *add, size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += !(set[i] == add[i]);
    if (bad) fprintf(stderr, "%s: %d of %zu values differ (first NaN read?)\n", what, bad, n);
    return bad;
}

static void test_first_writers(void) {
    enum { N = 19, C = 24, OC = 13, R = 4, K = OC + R };
    size_t NC = (size_t)N * C;
    float *dout = rand_vec((size_t)N * OC, -1, 1), *w = rand_vec((size_t)OC * C, -1, 1);
    float *x = rand_vec(NC, -3, 3), *g = rand_vec(NC, -1, 1), *A = rand_vec((size_t)R * C, -1, 1);
    float *B = rand_vec((size_t)OC * R, -1, 1), *d[2][10];
    float *lw = rand_vec(C, 0.5f, 1.5f), *mean = rand_vec(N, -1, 1), *rstd = rand_vec(N, 0.5f, 2);
    uint16_t *wb = malloc((size_t)K * C * 2), *dd = malloc((size_t)N * K * 2);
    uint16_t *ddo = malloc((size_t)N * K * 2);
    for (size_t i = 0; i < (size_t)K * C; i++) wb[i] = f32_to_bf16(x[i % NC]);
    for (size_t i = 0; i < (size_t)N * K; i++) dd[i] = f32_to_bf16(g[i % NC]);
    float *scratch = malloc(sizeof(float) * ops->matmul_bf16_scratch(N, C, K));
    float *lora_scratch = malloc(sizeof(float) * ops_lora_bf16_scratch(N, C, OC, R));
    float *du = malloc(sizeof(float) * (size_t)N * R);
    const uint64_t seed = 7;
    OpsLoraBackward lin = {.dout = dout, .B = B, .du = du, .seed = seed, .OC = OC, .du_col = OC};
    ops->lora_backward_bf16(ddo, OC + R, &lin, 1, x, NULL, 0, 0.5f, 0.3f, lora_scratch, N, C, R);
    for (int acc = 0; acc < 2; acc++) { /* OPS_SET over NaNs, OPS_ADD over zeros */
        for (int i = 0; i < 10; i++) d[acc][i] = rand_vec(NC, 0, 0);
        for (int i = 0; i < 10 && !acc; i++)
            for (size_t k = 0; k < NC; k++) d[acc][i][k] = NAN;
        ops->matmul_backward(d[acc][0], NULL, dout, NULL, w, N, C, OC, acc);
        ops->matmul_backward_bf16(d[acc][1], NULL, dd, K, wb, C, scratch, N, C, K, acc);
        ops->lora_dinp_bf16(d[acc][2], NULL, (const float *const[]){du}, (const float *const[]){A},
                            &seed, 1, 0.3f, N, C, R, acc);
        ops->activation_backward(d[acc][3], NULL, x, NULL, NULL, g, NULL, ACT_GELU, NC, C, acc);
        ops->activation_backward(d[acc][4], NULL, x, NULL, NULL, g, NULL, ACT_RELU, NC, C, acc);
        ops->glu_backward(ACT_SILU, d[acc][5], d[acc][6], NULL, g, NULL, x, x, NULL, NC, C, C, acc);
        ops->layernorm_backward(d[acc][7], NULL, NULL, NULL, g, x, NULL, lw, mean, rstd, N, C, acc);
        ops->rmsnorm_backward(d[acc][8], NULL, NULL, g, x, NULL, lw, rstd, N, C, acc);
        ops->dropout_backward(d[acc][9], NULL, g, 0.3f, 9, NC, acc);
    }
    static const char *names[10] = {"matmul_backward",          "matmul_backward_bf16",
                                    "lora_dinp_bf16",           "activation_backward gelu",
                                    "activation_backward relu", "swiglu_backward dgate",
                                    "swiglu_backward dup",      "layernorm_backward",
                                    "rmsnorm_backward",         "dropout_backward"};
    for (int i = 0; i < 10; i++) CHECK(set_matches_add(names[i], d[0][i], d[1][i], NC) == 0);
    for (int acc = 0; acc < 2; acc++)
        for (int i = 0; i < 10; i++) free(d[acc][i]);
    free(lw), free(mean), free(rstd);
    free(dout), free(w), free(x), free(g), free(A), free(B), free(wb), free(dd), free(ddo);
    free(scratch), free(lora_scratch), free(du);
}

static void test_saved_bf16(void) {
    size_t n = (size_t)N * C;
    float *x = bf16_vec(n, -3, 3), *u = bf16_vec(n, -2, 2), *dout = rand_vec(n, -1, 1);
    float *w = rand_vec(C, 0.5f, 1.5f), *b = rand_vec(C, -1, 1), *out = rand_vec(n, 0, 0);
    float *mean = rand_vec(N, 0, 0), *rstd = rand_vec(N, 0, 0);
    uint16_t *saved = malloc(2 * n * sizeof *saved);
    float *g[2][3]; /* [from f32, from the copies][dinp, dweight, dbias] */
    for (int k = 0; k < 2; k++)
        g[k][0] = rand_vec(n, 0, 0), g[k][1] = rand_vec(C, 0, 0), g[k][2] = rand_vec(C, 0, 0);
    ops->layernorm_forward(out, mean, rstd, saved, x, w, b, 1e-5f, N, C);
    ops->layernorm_backward(g[0][0], NULL, g[0][1], g[0][2], dout, x, NULL, w, mean, rstd, N, C,
                            OPS_ADD);
    ops->layernorm_backward(g[1][0], NULL, g[1][1], g[1][2], dout, NULL, saved, w, mean, rstd, N, C,
                            OPS_ADD);
    CHECK(off_by("layernorm dinp", g[1][0], g[0][0], n, 1e-2) == 0);
    CHECK(off_by("layernorm dweight", g[1][1], g[0][1], C, 1e-2) == 0);
    CHECK(off_by("layernorm dbias", g[1][2], g[0][2], C, 0.0) == 0);
    for (int k = 0; k < 2; k++) memset(g[k][0], 0, n * sizeof(float));
    ops->residual_norm_forward(out, NULL, C, NULL, NULL, rstd, saved, x, NULL, 0.0f, 0, w, NULL,
                               1e-5f, N, C);
    ops->rmsnorm_backward(g[0][0], NULL, NULL, dout, x, NULL, w, rstd, N, C, OPS_ADD);
    ops->rmsnorm_backward(g[1][0], NULL, NULL, dout, NULL, saved, w, rstd, N, C, OPS_ADD);
    CHECK(off_by("rmsnorm dinp", g[1][0], g[0][0], n, 1e-2) == 0);
    for (int a = ACT_GELU; a <= ACT_SILU; a++) {
        for (int k = 0; k < 2; k++) memset(g[k][0], 0, n * sizeof(float));
        ops->activation_forward(out, NULL, C, saved, x, NULL, (Activation)a, n, C);
        ops->activation_backward(g[0][0], NULL, x, NULL, NULL, dout, NULL, (Activation)a, n, C,
                                 OPS_ADD);
        ops->activation_backward(g[1][0], NULL, NULL, saved, NULL, dout, NULL, (Activation)a, n, C,
                                 OPS_ADD);
        CHECK(off_by("activation dinp", g[1][0], g[0][0], n, 0.0) == 0);
    }
    /* a bf16 GEMM's output in saved, its bias b added by the activation: as from x + b in f32 */
    float *xb = rand_vec(n, 0, 0), *out2 = rand_vec(n, 0, 0);
    for (size_t i = 0; i < n; i++) xb[i] = x[i] + b[i % C];
    for (int a = ACT_GELU; a <= ACT_SILU; a++) {
        ops->activation_forward(out2, NULL, C, saved, x, NULL, (Activation)a, n, C);
        ops->activation_forward(out, NULL, C, NULL, xb, NULL, (Activation)a, n, C);
        ops->activation_forward(out2, NULL, C, saved, NULL, b, (Activation)a, n, C);
        CHECK(off_by("activation from saved + bias", out2, out, n, 0.0) == 0);
        ops->activation_backward(g[0][0], NULL, xb, NULL, NULL, dout, NULL, (Activation)a, n, C,
                                 OPS_SET);
        ops->activation_backward(g[1][0], NULL, NULL, saved, b, dout, NULL, (Activation)a, n, C,
                                 OPS_SET);
        CHECK(off_by("activation dinp from saved + bias", g[1][0], g[0][0], n, 0.0) == 0);
    }
    float *gu[2] = {rand_vec(n, 0, 0), rand_vec(n, 0, 0)};
    for (int k = 0; k < 2; k++) memset(g[k][0], 0, n * sizeof(float));
    ops->glu_forward(ACT_SILU, out, NULL, C, saved, x, u, n, C, C);
    int rows_ok = 1; /* saved: rows [bf16(gate) | bf16(up)], as one GEMM writes them */
    for (size_t i = 0; i < n; i++) {
        size_t r = i / C, c = i % C;
        rows_ok = rows_ok && saved[r * 2 * C + c] == f32_to_bf16(x[i]) &&
                  saved[r * 2 * C + C + c] == f32_to_bf16(u[i]);
    }
    CHECK(rows_ok);
    ops->glu_forward(ACT_SILU, out2, NULL, C, saved, NULL, NULL, n, C, C); /* from those rows */
    CHECK(off_by("swiglu from saved", out2, out, n, 0.0) == 0);
    ops->glu_backward(ACT_SILU, g[0][0], gu[0], NULL, dout, NULL, x, u, NULL, n, C, C, OPS_ADD);
    ops->glu_backward(ACT_SILU, g[1][0], gu[1], NULL, dout, NULL, NULL, NULL, saved, n, C, C,
                      OPS_ADD);
    CHECK(off_by("swiglu dgate", g[1][0], g[0][0], n, 0.0) == 0);
    CHECK(off_by("swiglu dup", gu[1], gu[0], n, 0.0) == 0);
    /* dout as the GEMM after wrote it in bf16: as from those values in f32 */
    uint16_t *d16 = malloc(n * sizeof *d16);
    for (size_t i = 0; i < n; i++) d16[i] = f32_to_bf16(dout[i]), dout[i] = bf16_to_f32(d16[i]);
    ops->glu_backward(ACT_SILU, g[0][0], gu[0], NULL, dout, NULL, x, u, NULL, n, C, C, OPS_SET);
    ops->glu_backward(ACT_SILU, g[1][0], gu[1], NULL, NULL, d16, x, u, NULL, n, C, C, OPS_SET);
    CHECK(off_by("swiglu dgate from bf16 dout", g[1][0], g[0][0], n, 0.0) == 0);
    CHECK(off_by("swiglu dup from bf16 dout", gu[1], gu[0], n, 0.0) == 0);
    ops->activation_backward(g[0][0], NULL, x, NULL, NULL, dout, NULL, ACT_GELU, n, C, OPS_SET);
    ops->activation_backward(g[1][0], NULL, x, NULL, NULL, NULL, d16, ACT_GELU, n, C, OPS_SET);
    CHECK(off_by("activation dinp from bf16 dout", g[1][0], g[0][0], n, 0.0) == 0);
    free(d16);
    free(x), free(u), free(dout), free(w), free(b), free(out), free(mean), free(rstd), free(saved);
    free(gu[0]), free(gu[1]), free(xb), free(out2);
    for (int k = 0; k < 2; k++) free(g[k][0]), free(g[k][1]), free(g[k][2]);
}

/* Elements where h is not f rounded to bf16 (round to nearest even). */
static size_t not_rounded(const char *what, const uint16_t *h, const float *f, size_t n) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += h[i] != f32_to_bf16(f[i]);
    if (bad) fprintf(stderr, "%s: %zu of %zu bf16 outputs not the f32 rounded\n", what, bad, n);
    return bad;
}

/* The bf16 outputs a bf16 GEMM reads next: alone (no f32 output) or beside the f32 one, the f32
 * result rounded, bit for bit. */
static void test_bf16_outputs(void) {
    size_t n = (size_t)N * C;
    float *x = rand_vec(n, -3, 3), *u = rand_vec(n, -2, 2), *dout = rand_vec(n, -1, 1);
    float *f[2] = {rand_vec(n, 0, 0), rand_vec(n, 0, 0)};
    uint16_t *h[2] = {malloc(n * sizeof(uint16_t)), malloc(n * sizeof(uint16_t))};
    for (int a = ACT_GELU; a <= ACT_SILU; a++) {
        ops->activation_forward(f[0], h[0], C, NULL, x, NULL, (Activation)a, n, C);
        ops->activation_forward(NULL, h[1], C, NULL, x, NULL, (Activation)a, n, C);
        CHECK(not_rounded("activation out", h[0], f[0], n) == 0);
        CHECK(not_rounded("activation out alone", h[1], f[0], n) == 0);
        ops->activation_backward(f[0], h[0], x, NULL, NULL, dout, NULL, (Activation)a, n, C,
                                 OPS_SET);
        ops->activation_backward(NULL, h[1], x, NULL, NULL, dout, NULL, (Activation)a, n, C,
                                 OPS_SET);
        CHECK(not_rounded("activation dinp", h[0], f[0], n) == 0);
        CHECK(not_rounded("activation dinp alone", h[1], f[0], n) == 0);
    }
    ops->dropout_backward(f[0], h[0], dout, 0.3f, 5, n, OPS_SET);
    ops->dropout_backward(NULL, h[1], dout, 0.3f, 5, n, OPS_SET);
    CHECK(not_rounded("dropout dinp", h[0], f[0], n) == 0);
    CHECK(not_rounded("dropout dinp alone", h[1], f[0], n) == 0);
    ops->glu_forward(ACT_SILU, f[0], h[0], C, NULL, x, u, n, C, C);
    ops->glu_forward(ACT_SILU, NULL, h[1], C, NULL, x, u, n, C, C);
    CHECK(not_rounded("swiglu out", h[0], f[0], n) == 0);
    CHECK(not_rounded("swiglu out alone", h[1], f[0], n) == 0);
    uint16_t *dgu = malloc(2 * n * sizeof *dgu); /* [dgate | dup] rows of 2C */
    for (int alone = 0; alone < 2; alone++) {
        memset(dgu, 0xff, 2 * n * sizeof *dgu);
        ops->glu_backward(ACT_SILU, alone ? NULL : f[0], alone ? NULL : f[1], dgu, dout, NULL, x, u,
                          NULL, n, C, C, OPS_SET);
        for (size_t i = 0; i < n; i++) /* row i / C of each, side by side */
            h[0][i] = dgu[i / C * 2 * C + i % C], h[1][i] = dgu[i / C * 2 * C + C + i % C];
        CHECK(not_rounded(alone ? "swiglu dgate alone" : "swiglu dgate", h[0], f[0], n) == 0);
        CHECK(not_rounded(alone ? "swiglu dup alone" : "swiglu dup", h[1], f[1], n) == 0);
    }
    free(dgu);
    float *w = rand_vec(C, 0.5f, 1.5f), *mean = rand_vec(N, -1, 1), *rstd = rand_vec(N, 0.5f, 2);
    ops->layernorm_backward(f[0], h[0], NULL, NULL, dout, x, NULL, w, mean, rstd, N, C, OPS_SET);
    ops->layernorm_backward(NULL, h[1], NULL, NULL, dout, x, NULL, w, mean, rstd, N, C, OPS_SET);
    CHECK(not_rounded("layernorm dinp", h[0], f[0], n) == 0);
    CHECK(not_rounded("layernorm dinp alone", h[1], f[0], n) == 0);
    memcpy(f[1], f[0], n * sizeof(float)); /* accumulated: the copy is of the sum */
    ops->rmsnorm_backward(f[1], h[1], NULL, dout, x, NULL, w, rstd, N, C, OPS_ADD);
    CHECK(not_rounded("rmsnorm dinp (added to)", h[1], f[1], n) == 0);
    ops->residual_norm_forward(f[0], h[0], C, NULL, mean, rstd, NULL, x, u, 0.3f, 5, w, NULL, 1e-5f,
                               N, C);
    CHECK(not_rounded("residual_norm out", h[0], f[0], n) == 0);
    free(w), free(mean), free(rstd);
    free(x), free(u), free(dout), free(f[0]), free(f[1]), free(h[0]), free(h[1]);
}

/* residual_norm_forward against the passes it replaces (dropout_forward, add, the norm), for
 * layer and RMS norm, with the sum kept in place of a and not kept: the same values up to one
 * rounding of the dropped a plus b (which a fused multiply-add may skip). */
static void test_residual_norm(void) {
    size_t n = (size_t)N * C;
    float *a = rand_vec(n, -2, 2), *b = rand_vec(n, -2, 2), *w = rand_vec(C, 0.5f, 1.5f);
    float *bias = rand_vec(C, -1, 1), *x = rand_vec(n, 0, 0), *sum = rand_vec(n, 0, 0);
    float *want = rand_vec(n, 0, 0), *got = rand_vec(n, 0, 0), st[4][N];
    uint16_t *xh[2] = {malloc(n * sizeof(uint16_t)), malloc(n * sizeof(uint16_t))};
    for (int rms = 0; rms < 2; rms++)
        for (int keep = 0; keep < 2; keep++) {
            float p = keep ? 0.3f : 0.0f, *mean = rms ? NULL : st[0];
            ops->dropout_forward(x, a, p, 11, n);
            ops->add(x, x, b, n);
            if (rms)
                ops->residual_norm_forward(want, NULL, C, NULL, NULL, st[1], xh[0], x, NULL, 0.0f,
                                           0, w, NULL, 1e-5f, N, C);
            else
                ops->layernorm_forward(want, st[0], st[1], xh[0], x, w, bias, 1e-5f, N, C);
            memcpy(sum, a, n * sizeof *a); /* the sum over a, in place */
            ops->residual_norm_forward(got, NULL, C, keep ? sum : NULL, rms ? NULL : st[2], st[3],
                                       xh[1], keep ? sum : a, b, p, 11, w, rms ? NULL : bias, 1e-5f,
                                       N, C);
            CHECK(off_by("residual_norm out", got, want, n, 1e-5) == 0);
            CHECK(off_by("residual_norm rstd", st[3], st[1], N, 1e-5) == 0);
            if (mean) CHECK(off_by("residual_norm mean", st[2], mean, N, 1e-5) == 0);
            if (keep) CHECK(off_by("residual_norm sum", sum, x, n, 1e-6) == 0);
            size_t steps = 0;
            for (size_t i = 0; i < n; i++) steps += xh[0][i] != xh[1][i];
            CHECK(steps <= n / 100); /* xhat's bf16: a step apart where the sums round apart */
        }
    free(a), free(b), free(w), free(bias), free(x), free(sum), free(want), free(got);
    free(xh[0]), free(xh[1]);
}

/* The norm's, SwiGLU's and an activation's bf16 outputs into a wider matrix (an adapted group's
 * input copy), out NULL: each row's C values bf16 of the f32 output that a call with out writes,
 * bit for bit, and the columns past them untouched. */
static void test_bf16_out_rows(void) {
    enum { LDB = C + 5 }; /* odd: rows misaligned for 8-byte stores */
    size_t n = (size_t)N * C;
    float *a = rand_vec(n, -2, 2), *b = rand_vec(n, -2, 2), *w = rand_vec(C, 0.5f, 1.5f);
    float *bias = rand_vec(C, -1, 1), *out = rand_vec(n, 0, 0), *sum = rand_vec(n, 0, 0);
    float st[2][N];
    uint16_t rows[N * LDB];
    for (int kind = 0; kind < 4;
         kind++) { /* layer norm with its residual, RMS norm, SwiGLU, GELU */
        memset(rows, 0xab, sizeof rows);
        if (kind == 3) {
            ops->activation_forward(out, NULL, C, NULL, a, NULL, ACT_GELU, n, C);
            ops->activation_forward(NULL, rows, LDB, NULL, a, NULL, ACT_GELU, n, C);
        } else if (kind == 2) {
            ops->glu_forward(ACT_SILU, out, NULL, C, NULL, a, b, n, C, C);
            ops->glu_forward(ACT_SILU, NULL, rows, LDB, NULL, a, b, n, C, C);
        } else {
            const float *res = kind ? NULL : b, *bs = kind ? NULL : bias;
            float *mean = kind ? NULL : st[0];
            ops->residual_norm_forward(out, NULL, C, sum, mean, st[1], NULL, a, res, 0.2f, 3, w, bs,
                                       1e-5f, N, C);
            ops->residual_norm_forward(NULL, rows, LDB, sum, mean, st[1], NULL, a, res, 0.2f, 3, w,
                                       bs, 1e-5f, N, C);
        }
        int bad = 0;
        for (int r = 0; r < N; r++)
            for (int k = 0; k < LDB; k++)
                bad += rows[r * LDB + k] != (k < C ? f32_to_bf16(out[r * C + k]) : 0xabab);
        CHECK(bad == 0);
    }
    free(a), free(b), free(w), free(bias), free(out), free(sum);
}

int main(void) {
    CHECK(!strcmp(ops->name, "cpu"));
    test_embedding();
    test_embedding_lora();
    test_layernorm();
    test_rmsnorm();
    test_head_norm();
    test_rope_cache_write(5, 2990, 3, 1, 8, 1.0f);
    test_rope_cache_write(3, 700, 2, 2, 16, 1.25f); /* YaRN's attention factor */
    test_glu(ACT_SILU, "swiglu");
    test_glu(ACT_GELU_TANH, "geglu");
    test_saved_bf16();
    test_bf16_outputs();
    test_matmul();
    test_matmul_bf16(37, 53, 29);
    test_matmul_bf16(130, 70, 257);
    static const int types[] = {GGML_F32, GGML_F16, GGML_BF16, GGML_Q8_0, GGML_Q4_1, GGML_Q5_0};
    for (int t = 0; t < 6; t++)
        test_dequantize_bf16(types[t], 7, 576, 2, 4); /* 2 full chunks + 64 */
    test_round_bf16_many();
    test_lora(0.0f);
    test_lora(0.3f);
    test_attention(0.0f, 0, 0, NH, 0.0f);
    test_attention(0.3f, 0, 0, NH, 0.0f);
    test_attention(0.0f, 1, 0, NH, 0.0f);
    test_attention(0.3f, 1, 0, 1, 0.0f);
    test_attention(0.0f, 1, 0, 1, 0.0f);
    test_attention(0.3f, 1, 0, 1, 1e4f);
    test_attention(0.0f, 1, 0, NH, 1e4f);
    test_attention(0.0f, 1, 2, 1, 1e4f); /* a sliding window of 2 over T = 5 */
    test_attention(0.3f, 1, 3, NH, 0.0f);
    test_attention_long(2, 150, 4, 2, 16, 1, 0, 0.1f, 1e4f);
    test_attention_long(3, 70, 3, 3, 8, 0, 0, 0.2f, 0.0f);
    test_attention_long(1, 129, 2, 1, 64, 1, 0, 0.0f, 5e5f);
    test_attention_long(2, 150, 4, 2, 16, 1, 37, 0.1f, 1e4f); /* windows across row blocks */
    test_attention_long(1, 200, 2, 1, 8, 1, 64, 0.0f, 0.0f);
    test_attention_long(2, 70, 2, 2, 8, 1, 1, 0.2f, 0.0f); /* each query sees only itself */
    rope_scale = 1.3f; /* YaRN's attention factor, forward and backward */
    test_attention(0.3f, 1, 0, 1, 1e4f);
    test_attention_long(2, 150, 4, 2, 16, 1, 0, 0.1f, 1e4f);
    rope_scale = 1.0f;
    /* Gemma's scores: another scale than 1 / sqrt(HS) (27B's query_pre_attn_scalar), soft-capped
     * where it bites (|scores| up to a few times the cap) */
    att_scale = 0.9f, att_softcap = 0.7f;
    test_attention(0.3f, 1, 0, 1, 1e4f);
    test_attention(0.0f, 0, 0, NH, 0.0f);
    test_attention(0.0f, 1, 2, 1, 1e4f);
    test_attention_long(2, 150, 4, 2, 16, 1, 37, 0.1f, 1e4f);
    test_attention_long(1, 129, 2, 1, 64, 1, 0, 0.0f, 5e5f);
    test_attention_cached(6, 9, 3, 4, 4, 2, 8);
    test_attention_cached(1, 17, 11, 0, 6, 2, 16);
    att_scale = 0.0f, att_softcap = 0.0f;
    rope_share = 0.75f; /* Phi-4-mini's partial rotary: each head's last quarter passes through */
    test_rope_cache_write(5, 2990, 3, 1, 16, 1.0f);
    test_attention(0.3f, 1, 0, 1, 1e4f); /* HS 4: one pair turns */
    test_attention_long(2, 150, 4, 2, 16, 1, 0, 0.1f, 1e4f);
    test_attention_long(1, 129, 2, 1, 64, 1, 0, 0.0f, 5e5f);
    rope_share = 1.0f;
    test_attention_joined(9, 6, 2, 8);
    test_attention_joined(5, 2, 2, 6);
    test_attention_out_bf16(13, 4, 2, 8);
    test_attention_cached(1, 0, 0, 0, 2, 2, 8);    /* the first token */
    test_attention_cached(6, 0, 0, 0, 4, 2, 8);    /* a prefill */
    test_attention_cached(1, 17, 0, 0, 6, 2, 16);  /* a decode step */
    test_attention_cached(1, 17, 11, 0, 6, 2, 16); /* the same over the whole cache (a graph's) */
    test_attention_cached(3, 9, 0, 0, 4, 1, 8);    /* a chunk after a cached prefix, MQA */
    test_attention_cached(6, 9, 3, 4, 4, 2, 8);    /* a sliding window of 4 */
    test_attention_cached(1, 17, 11, 1, 6, 2, 16); /* a window of the query alone */
    test_attention_cached_seqs(5, 7, 19, 0, 4, 2, 8);  /* a batched step, GQA */
    test_attention_cached_seqs(3, 3, 12, 4, 6, 1, 16); /* every sequence, MQA, a window of 4 */
    test_activations();
    test_activations_non_finite();
    test_tanh_approx();
    test_elementwise_grads();
    test_dropout_stats();
    test_uniform_noise_stats();
    test_row_dropout_stats();
    test_cross_entropy();
    test_cross_entropy_in_place();
    test_lm_head();
    test_lm_head_bf16();
    test_first_writers();
    test_dpo_loss(0);
    test_dpo_loss(1);
    test_reward_loss();
    for (int level = OPS_GRPO_TOKEN; level <= OPS_GRPO_SEQUENCE_MEAN; level++) {
        test_grpo_weights(1, 0, level, OPS_GRPO_CLIP, 0.0f, 1);
        test_grpo_weights(0, 1, level, OPS_GRPO_CLIP, 0.0f, 1);
        test_grpo_weights(1, 1, level, OPS_GRPO_CLIP, 0.0f, 1);
        test_grpo_weights(1, 1, level, OPS_GRPO_CLIP, 1.5f, 1);
        test_grpo_weights(1, 1, level, OPS_GRPO_CISPO, 0.0f, 1);
        test_grpo_weights(0, 1, level, OPS_GRPO_SAPO, 0.0f, 1);
        test_grpo_weights(1, 1, level, OPS_GRPO_SAPO, 0.0f, 1);
    }
    test_grpo_weights(0, 1, OPS_GRPO_SEQUENCE_SUM, OPS_GRPO_CLIP, 0.0f, 1); /* RLOO's */
    test_grpo_weights(1, 1, OPS_GRPO_SEQUENCE_SUM, OPS_GRPO_CLIP, 0.0f, 1);
    test_grpo_weights(0, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1); /* a row's gamma weight */
    test_grpo_weights(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1); /* the KL's ratio a token's */
    test_grpo_weights(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 0);
    /* the off-policy mask: rows of token ratios, a row's ratio (GSPO), vespo's, cispo's */
    GrpoMasks off_policy = {.off_policy = 0.05f};
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, off_policy);
    grpo_weights_case(0, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CLIP, 0.0f, 1, off_policy);
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1, off_policy);
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CISPO, 0.0f, 0, off_policy);
    /* the entropy mask (TRL's top_entropy_quantile 0.8 and 0.2) and bonus */
    GrpoMasks high = {.entropy_quantile = 0.2f},
              top = {.entropy_quantile = 0.8f, .entropy_coef = 0.01f};
    GrpoMasks bonus = {.entropy_coef = -0.03f}, both = {0.05f, 0.5f, 0.02f};
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, high);
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, top);
    grpo_weights_case(0, 0, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, bonus);
    grpo_weights_case(1, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CLIP, 0.0f, 1, top);
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1, top);
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CISPO, 0.0f, 1, high);
    grpo_weights_case(1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, both);
    for (int level = OPS_GRPO_TOKEN; level <= OPS_GRPO_SEQUENCE_MEAN; level++) /* without it */
        test_grpo_weights(1, 1, level, OPS_GRPO_CLIP, 0.0f, 0);
    test_adamw();
    test_norm_and_memory();
    test_parallel_matches_serial();
    test_residual_norm();
    test_bf16_out_rows();
    return check_report();
}
