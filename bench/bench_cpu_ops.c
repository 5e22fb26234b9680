/* bench_cpu_ops.c: GFLOP/s and GB/s of the CPU backend at a BERT-base layer shape.
 *
 * Informative only (tests never assert on time): prints the median of a few repetitions
 * of the frozen GEMM, the LoRA branch, attention, layer norm and GELU, forward and backward,
 * at B=4, T=256, C=768, NH=12, R=8 (override with argv: B T C NH R); then SmolLM2's LM head
 * + cross-entropy (C=576, V=49152, N=2048 tokens), chunked against the unchunked path, with
 * the memory each holds for logits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "loraft/ops.h"

static const Ops *ops = &ops_cpu;
enum { REPS = 5 };

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Allocates n floats filled with small values; exits the benchmark when out of memory. */
static float *buf(size_t n) {
    float *p = ops->alloc(sizeof(float) * n);
    if (!p) {
        fprintf(stderr, "bench_cpu_ops: out of memory allocating %zu floats\n", n);
        exit(1);
    }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

typedef struct Bench {
    float *out, *inp, *w, *bias, *dout, *dinp, *dw, *dbias, *A, *Bm, *u, *dA, *dB, *scratch;
    float *q, *k, *v, *lse, *dq, *dk, *dv, *mean, *rstd;
    int32_t *mask;
    int B, T, C, NH, R;
    /* the LM head: h [LN,LC], head [LV,LC], logits and dlogits [LN,LV] (chunked: scratch) */
    float *h, *head, *dh, *dhead, *losses, *logits, *dlogits;
    int32_t *labels;
    int chunk;
    OpsEntropy *entropy; /* NULL, or each row's entropy and its term's weight (RL's) */
} Bench;

/* Runs op(b) REPS times after one warm-up and prints the median against flops and bytes. */
static void run(const char *name, void (*op)(Bench *), Bench *b, double flops, double bytes) {
    double t[REPS];
    op(b);
    for (int r = 0; r < REPS; r++) {
        double t0 = now();
        op(b);
        t[r] = now() - t0;
    }
    qsort(t, REPS, sizeof t[0], cmp_double);
    double med = t[REPS / 2];
    printf("%-22s %9.3f ms %9.1f GFLOP/s %8.1f GB/s\n", name, 1e3 * med, flops / med * 1e-9,
           bytes / med * 1e-9);
}

#define NT (b->B * b->T)
static void mm_fwd(Bench *b) {
    ops->matmul_forward(b->out, b->inp, b->w, b->bias, NT, b->C, b->C);
}
static void mm_bwd_frozen(Bench *b) {
    ops->matmul_backward(b->dinp, NULL, b->dout, b->inp, b->w, NT, b->C, b->C, OPS_ADD);
}
static void mm_bwd(Bench *b) {
    ops->matmul_backward(b->dinp, b->dw, b->dout, b->inp, b->w, NT, b->C, b->C, OPS_ADD);
    ops->bias_backward(b->dbias, b->dout, NULL, b->C, NULL, NT, b->C);
}
static void lora_fwd(Bench *b) {
    ops->lora_forward(b->out, b->u, b->inp, b->A, b->Bm, 2.0f, 0.1f, 1, b->scratch, NT, b->C, b->C,
                      b->R);
}
static void lora_bwd(Bench *b) {
    ops->lora_backward(b->dinp, b->dA, b->dB, b->dout, b->inp, b->u, b->A, b->Bm, 2.0f, 0.1f, 1,
                       b->scratch, NT, b->C, b->C, b->R);
}
static void att_fwd(Bench *b) {
    ops->attention_forward(b->out, NULL, 0, b->lse, NULL, b->q, b->C, b->k, b->v, b->C, b->mask, 0,
                           0, NULL, attn_score_plain(b->C / b->NH), 0.1f, 1, b->scratch, b->B, b->T,
                           b->NH, b->NH, b->C / b->NH);
}
static void att_bwd(Bench *b) {
    ops->attention_backward(b->dq, b->dk, b->dv, b->dout, b->q, b->k, b->v, b->C, b->C, b->out,
                            NULL, 0, b->lse, NULL, b->mask, 0, 0, NULL,
                            attn_score_plain(b->C / b->NH), 0.1f, 1, b->scratch, b->B, b->T, b->NH,
                            b->NH, b->C / b->NH, OPS_ADD);
}
static void ln_fwd(Bench *b) {
    ops->layernorm_forward(b->out, b->mean, b->rstd, NULL, b->inp, b->w, b->bias, 1e-12f, NT, b->C);
}
static void ln_bwd(Bench *b) {
    ops->layernorm_backward(b->dinp, NULL, b->dw, b->dbias, b->dout, b->inp, NULL, b->w, b->mean,
                            b->rstd, NT, b->C, OPS_ADD);
}
static void gelu_fwd(Bench *b) {
    ops->activation_forward(b->out, NULL, b->C, NULL, b->inp, NULL, ACT_GELU, (size_t)NT * b->C,
                            b->C);
}
static void gelu_bwd(Bench *b) {
    ops->activation_backward(b->dinp, NULL, b->inp, NULL, NULL, b->dout, NULL, ACT_GELU,
                             (size_t)NT * b->C, b->C, OPS_ADD);
}

enum { LN = 2048, LC = 576, LV = 49152 };
static void lm_head_chunked(Bench *b) {
    ops->lm_head_cross_entropy(b->losses, b->dh, b->dhead, b->h, b->head, NULL, NULL, b->labels,
                               NULL, 1.0f / LN, NULL, b->entropy, OPS_LOGITS_PLAIN, b->logits, LN,
                               LC, LV, b->chunk);
}
static void lm_head_unchunked(Bench *b) {
    ops->matmul_forward(b->logits, b->h, b->head, NULL, LN, LC, LV);
    ops->cross_entropy(b->losses, b->dlogits, b->logits, b->labels, 1.0f / LN, LN, LV);
    ops->matmul_backward(b->dh, b->dhead, b->dlogits, b->h, b->head, LN, LC, LV, OPS_ADD);
}

/* The LM head rows: dh and dW both computed, chunk 256 and the default against the unchunked
 * path (matmul_forward, cross_entropy into separate dlogits, matmul_backward). */
static void bench_lm_head(Bench *b) {
    size_t nv = (size_t)LN * LV;
    b->h = buf((size_t)LN * LC), b->head = buf((size_t)LV * LC), b->dh = buf((size_t)LN * LC);
    b->dhead = buf((size_t)LV * LC), b->losses = buf(LN), b->logits = buf(nv), b->dlogits = buf(nv);
    b->labels = ops->alloc(sizeof(int32_t) * LN);
    if (!b->labels) exit(1);
    for (int i = 0; i < LN; i++) b->labels[i] = (int32_t)((i * 2654435761u) % LV);
    double flops = 6.0 * LN * LC * LV, f = sizeof(float);
    double io = f * 3 * ((double)LN * LC + (double)LV * LC); /* h, W; dh, dW read + written */
    printf("LM head + cross-entropy N=%d C=%d V=%d, dh and dW\n", LN, LC, LV);
    static const int chunks[] = {256, OPS_LM_HEAD_CHUNK};
    for (int c = 0; c < 2; c++) {
        char name[32];
        snprintf(name, sizeof name, "lm_head chunk=%d", chunks[c]);
        b->chunk = chunks[c];
        run(name, lm_head_chunked, b, flops, io);
    }
    float *weights = buf(LN); /* RL's entropies and their bonus's weights */
    for (int i = 0; i < LN; i++) weights[i] = -1e-3f;
    OpsEntropy entropy = {buf(LN), weights};
    b->entropy = &entropy;
    run("lm_head entropy + its term", lm_head_chunked, b, flops, io);
    b->entropy = NULL;
    run("lm_head unchunked", lm_head_unchunked, b, flops, io + f * 4 * nv);
    size_t chunked = ops_lm_head_scratch(LN, LC, LV, OPS_LM_HEAD_CHUNK, 0, 0);
    printf("logits held: %zu floats (%.0f MB) chunked vs %zu (%.0f MB) unchunked\n", chunked,
           f * chunked * 1e-6, 2 * nv, f * 2 * nv * 1e-6);
}

int main(int argc, char **argv) {
    Bench bb = {.B = 4, .T = 256, .C = 768, .NH = 12, .R = 8}, *b = &bb;
    if (argc == 6)
        b->B = atoi(argv[1]), b->T = atoi(argv[2]), b->C = atoi(argv[3]), b->NH = atoi(argv[4]),
        b->R = atoi(argv[5]);
    if (b->B <= 0 || b->T <= 0 || b->C <= 0 || b->NH <= 0 || b->C % b->NH || b->R <= 0) {
        fprintf(stderr, "usage: bench_cpu_ops [B T C NH R], positive, C divisible by NH\n");
        return 2;
    }
    size_t n = (size_t)NT * b->C, cc = (size_t)b->C * b->C, nl = (size_t)b->B * b->NH * b->T;
    size_t att_scratch = ops->attention_scratch(b->B, b->T, b->NH, b->NH, b->C / b->NH);
    b->out = buf(n), b->inp = buf(n), b->w = buf(cc), b->bias = buf(b->C), b->dout = buf(n);
    b->dinp = buf(n), b->dw = buf(cc), b->dbias = buf(b->C), b->A = buf((size_t)b->R * b->C);
    b->Bm = buf((size_t)b->C * b->R), b->u = buf((size_t)NT * b->R),
    b->dA = buf((size_t)b->R * b->C);
    b->dB = buf((size_t)b->C * b->R);
    b->scratch = buf(att_scratch > n + (size_t)NT * b->R ? att_scratch : n + (size_t)NT * b->R);
    b->q = buf(n), b->k = buf(n), b->v = buf(n), b->lse = buf(nl), b->dq = buf(n), b->dk = buf(n);
    b->dv = buf(n), b->mean = buf(NT), b->rstd = buf(NT);
    b->mask = ops->alloc(sizeof(int32_t) * NT);
    if (!b->mask) return 1;
    for (int i = 0; i < NT; i++) b->mask[i] = 1;

    double N = (double)NT, C = b->C, T = b->T, R = b->R, f = sizeof(float);
    printf("B=%d T=%d C=%d NH=%d R=%d (median of %d)\n", b->B, b->T, b->C, b->NH, b->R, REPS);
    run("matmul fwd", mm_fwd, b, 2 * N * C * C, f * (2 * N * C + C * C));
    run("matmul bwd (frozen)", mm_bwd_frozen, b, 2 * N * C * C, f * (3 * N * C + C * C));
    run("matmul bwd (all)", mm_bwd, b, 4 * N * C * C, f * (4 * N * C + 2 * C * C));
    run("lora fwd (p=0.1)", lora_fwd, b, 4 * N * C * R, f * (4 * N * C));
    run("lora bwd (p=0.1)", lora_bwd, b, 8 * N * C * R, f * (5 * N * C));
    run("attention fwd (p=0.1)", att_fwd, b, 4 * N * T * C, f * (4 * N * C + nl));
    run("attention bwd (p=0.1)", att_bwd, b, 10 * N * T * C, f * (9 * N * C + nl));
    run("layernorm fwd", ln_fwd, b, 8 * N * C, f * 2 * N * C);
    run("layernorm bwd", ln_bwd, b, 12 * N * C, f * 4 * N * C);
    run("gelu fwd", gelu_fwd, b, 0, f * 2 * N * C);
    run("gelu bwd", gelu_bwd, b, 0, f * 4 * N * C);
    bench_lm_head(b);
    return 0; /* the process exits; the buffers go with it */
}
