/* bench_kernels.c: the CUDA ops' scoreboard (issue 10). Four sections, each one aligned table
 * whose rows begin with the section's tag, so `grep '^mem '` (or copy, gemm, lora) lifts it:
 *
 *   copy  the device's copy bandwidth: cudaMemcpy device to device of a large buffer, bytes
 *         read + written over the time. The ceiling of every memory-bound op.
 *   mem   each memory-bound op at a DistilBERT-base or SmolLM2-135M shape: the bytes it must
 *         move (every input read once, every output written once; an output accumulated
 *         with += is read and written), GB/s and % of the copy bandwidth.
 *   gemm  matmul_forward and matmul_backward (dinp only: frozen weights, OPS_ADD) at every dense
 * shape of both models, under --bf16 the groups' forward GEMMs apart and joined (SmolLM2's q, k, v
 * and gate, up; DistilBERT's q, k, v with their biases: linear_outputs_join), the LM head with
 * its loss, and attention forward / backward at T = 512 and
 * 2048, causal (SmolLM2's heads) and padded (DistilBERT's): TFLOP/s next to bare cuBLAS GEMMs of
 * the same shapes (bench_gpu_gemm), and ours in % of theirs. lora  the LoRA linear, matmul +
 * lora_forward and matmul_backward + lora_backward (lora dropout p = 0.1, and p = 0 at r = 8),
 * against the bare base GEMM at r = 8, 16 and 64: the overhead in %. Under --bf16 the model's fused
 * linear at p = 0 (lora.dropout's default), its input's bf16 columns written by the op before
 * (a norm's out_bf16) as for the base GEMM: forward lora_down_bf16 from them (s u into the copy
 * [x | s u]), B into the weight's last r columns, one GEMM over in + r columns; backward
 * lora_backward without dinp, A into the weight's last r rows, one dinp GEMM over [dout | du].
 *
 * Each row is the mean of REPS runs after WARMUP runs, timed with CUDA events. FLOPs are the
 * model's useful ones (2 per multiply-add; attention counts only the query-key pairs the mask
 * allows; backward without the flash kernels' recomputation). --smoke: tiny shapes, one run
 * each: the emulated-GPU CI runs that to prove the program works, its numbers mean nothing.
 * The precision is model.precision's: strict FP32 by default (--fp32); --tf32 puts ops_cuda's f32
 * GEMMs and the bare ones on TF32 tensor cores; --bf16 runs the frozen weights' GEMMs (gemm and
 * lora tables) as matmul_forward_bf16 / matmul_backward_bf16 against a bare bf16 cuBLAS GEMM, and
 * the other GEMMs (LoRA, LM head) as TF32, as the model does.
 * Not a test: nothing is asserted. Without a CUDA device it says so and exits 0. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/model.h"
#include "loraft/model_config.h"
#include "loraft/ops.h"
#include "loraft/quant.h"
#include "loraft/rng.h"

#ifdef LORAFT_HAVE_CUDA
#include "bench_gpu.h"

/* A model's dimensions: hidden C, feed-forward F, heads NH (KV heads NKV), head size HS,
 * vocabulary V, and its dense layers (in, out) with a bias or not. */
typedef struct Dims {
    const char *name;
    int C, F, NH, NKV, HS, V, bias;
    int n_dense, dense[4][2];
} Dims;

/* The sizes of one run: tokens per GEMM, rows of the memory-bound ops, sequence lengths. */
typedef struct Sizes {
    Dims distilbert, smollm2;
    Dims llama8b; /* Llama-3.1-8B's heads: attention at head size 128 only */
    Dims gemma3;  /* Gemma 3 1B's heads: attention at head size 256 only */
    Dims llama1b; /* Llama-3.2-1B's LM head: a vocabulary whose rows of logits outgrow L2 */
    int rows, mem_rows, ce_rows, attn_tokens, T[2], warmup, reps;
    size_t copy_bytes, adam_small, adam_large;
} Sizes;

static const Sizes full = {
    .distilbert = {.name = "distilbert",
                   .C = 768,
                   .F = 3072,
                   .NH = 12,
                   .NKV = 12,
                   .HS = 64,
                   .V = 30522,
                   .bias = 1,
                   .n_dense = 3,
                   .dense = {{768, 768}, {768, 3072}, {3072, 768}}},
    .smollm2 = {.name = "smollm2",
                .C = 576,
                .F = 1536,
                .NH = 9,
                .NKV = 3,
                .HS = 64,
                .V = 49152,
                .n_dense = 4,
                .dense = {{576, 576}, {576, 192}, {576, 1536}, {1536, 576}}},
    .llama8b = {.name = "llama8b", .C = 4096, .NH = 32, .NKV = 8, .HS = 128},
    .gemma3 = {.name = "gemma3-1b", .C = 1152, .NH = 4, .NKV = 1, .HS = 256},
    .llama1b = {.name = "llama3.2-1b", .C = 2048, .V = 128256},
    .rows = 8192,
    .mem_rows = 16384,
    .ce_rows = 2048,
    .attn_tokens = 16384,
    .T = {512, 2048},
    .warmup = 3,
    .reps = 20,
    .copy_bytes = (size_t)1 << 30,
    .adam_small = 2442240, /* SmolLM2's LoRA at r 8 on all seven projections */
    .adam_large = (size_t)64 << 20,
};
static const Sizes smoke = {
    .distilbert = {.name = "distilbert",
                   .C = 64,
                   .F = 128,
                   .NH = 2,
                   .NKV = 2,
                   .HS = 32,
                   .V = 300,
                   .bias = 1,
                   .n_dense = 3,
                   .dense = {{64, 64}, {64, 128}, {128, 64}}},
    .smollm2 = {.name = "smollm2",
                .C = 64,
                .F = 128,
                .NH = 4,
                .NKV = 2,
                .HS = 16,
                .V = 500,
                .n_dense = 4,
                .dense = {{64, 64}, {64, 32}, {64, 128}, {128, 64}}},
    .llama8b = {.name = "llama8b", .C = 256, .NH = 2, .NKV = 1, .HS = 128},
    .gemma3 = {.name = "gemma3-1b", .C = 512, .NH = 2, .NKV = 1, .HS = 256},
    .llama1b = {.name = "llama3.2-1b", .C = 64, .V = 1001}, /* rows off 16-byte boundaries */
    .rows = 64,
    .mem_rows = 64,
    .ce_rows = 16,
    .attn_tokens = 64,
    .T = {16, 32},
    .warmup = 0,
    .reps = 1,
    .copy_bytes = (size_t)1 << 16,
    .adam_small = 1000,
    .adam_large = 5000,
};
static const Sizes *sz = &full;
static const Ops *gpu = &ops_cuda;
static Precision precision = PRECISION_FP32;
static Rng rng = {42, 0};
static double copy_gbs; /* the copy section's measurement */

/* Mean milliseconds per run of `stmt`. */
#define TIME(ms, stmt)                                                                             \
    do {                                                                                           \
        for (int rep_ = 0; rep_ < sz->warmup; rep_++) stmt;                                        \
        bench_gpu_mark();                                                                          \
        for (int rep_ = 0; rep_ < sz->reps; rep_++) stmt;                                          \
        (ms) = bench_gpu_elapsed_ms() / (float)sz->reps;                                           \
    } while (0)

static void *must(void *p, size_t bytes) {
    if (!p) {
        fprintf(stderr, "bench_kernels: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static float *zeros(size_t n) {
    return must(gpu->alloc(n * sizeof(float)), n * sizeof(float));
}

/* n floats uniform in [-amp, amp) on the device */
static float *randu(size_t n, float amp) {
    float *h = must(malloc(n * sizeof *h), n * sizeof *h), *d = zeros(n);
    for (size_t i = 0; i < n; i++) h[i] = amp * (2.0f * rng_next_uniform(&rng) - 1.0f);
    gpu->upload(d, h, n * sizeof *h);
    free(h);
    return d;
}

/* n int32 uniform in [lo, hi) on the device */
static int32_t *ints(size_t n, int lo, int hi) {
    int32_t *h = must(malloc(n * sizeof *h), n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = lo + (int32_t)(rng_next(&rng) % (uint64_t)(hi - lo));
    int32_t *d = must(gpu->alloc(n * sizeof *h), n * sizeof *h);
    gpu->upload(d, h, n * sizeof *h);
    free(h);
    return d;
}

static void free_all(void **p, size_t n) {
    for (size_t i = 0; i < n; i++) gpu->free(p[i]);
}
#define FREE_ALL(...)                                                                              \
    do {                                                                                           \
        void *p_[] = {__VA_ARGS__};                                                                \
        free_all(p_, sizeof p_ / sizeof *p_);                                                      \
    } while (0)

static double tflops(double flops, double ms) {
    return flops / (ms * 1e-3) * 1e-12;
}

/* ---- copy ---- */
static void bench_copy(void) {
    size_t n = sz->copy_bytes / sizeof(float);
    float *a = zeros(n), *b = zeros(n), ms;
    TIME(ms, bench_gpu_copy(b, a, n * sizeof(float)));
    copy_gbs = 2.0 * (double)sz->copy_bytes / (ms * 1e-3) * 1e-9;
    printf("%-5s %-48s %10s %9s %9s\n", "copy", "what", "MB", "ms", "GB/s");
    printf("%-5s %-48s %10.1f %9.4f %9.1f\n", "copy", "cudaMemcpy D2D (read + write)",
           2e-6 * (double)sz->copy_bytes, ms, copy_gbs);
    FREE_ALL(a, b);
}

/* ---- mem: one row per op; floats = the values it must move ---- */
static void mem_header(void) {
    printf("%-5s %-48s %10s %9s %9s %7s\n", "mem", "op [shape]", "MB", "ms", "GB/s", "%copy");
}

static void mem_row(const char *op, double floats, double ms) {
    double gbs = 4.0 * floats / (ms * 1e-3) * 1e-9;
    printf("%-5s %-48s %10.1f %9.4f %9.1f %7.1f\n", "mem", op, 4e-6 * floats, ms, gbs,
           100.0 * gbs / copy_gbs);
}

static void bench_norms_and_elementwise(void) {
    const Dims *db = &sz->distilbert, *sm = &sz->smollm2;
    size_t N = sz->mem_rows, nc = N * db->C, nf = N * db->F, ns = N * sm->F;
    float *x = randu(nf, 2.0f), *y = randu(nf, 1.0f), *z = randu(nf, 1.0f);
    float *out = zeros(nf), *g1 = zeros(nf), *g2 = zeros(nf), *mean = zeros(N), *rstd = zeros(N);
    char name[64];
    float ms;
    int C = db->C;
    snprintf(name, sizeof name, "layernorm_forward [%zu,%d]", N, C);
    TIME(ms, gpu->layernorm_forward(out, mean, rstd, NULL, x, y, y + C, 1e-5f, (int)N, C));
    mem_row(name, 2.0 * nc + 2.0 * N, ms);
    snprintf(name, sizeof name, "residual_norm_forward p=0.1 [%zu,%d]", N, C);
    TIME(ms, gpu->residual_norm_forward(out, NULL, C, NULL, mean, rstd, NULL, x, z, 0.1f, 3, y,
                                        y + C, 1e-5f, (int)N, C));
    mem_row(name, 3.0 * nc + 2.0 * N, ms);
    snprintf(name, sizeof name, "layernorm_backward [%zu,%d]", N, C);
    TIME(ms, gpu->layernorm_backward(g1, NULL, g2, g2 + C, z, x, NULL, y, mean, rstd, (int)N, C,
                                     OPS_ADD));
    mem_row(name, 4.0 * nc + 2.0 * N, ms);
    C = sm->C;
    size_t sc = N * C;
    snprintf(name, sizeof name, "rmsnorm_forward [%zu,%d]", N, C);
    TIME(ms, gpu->residual_norm_forward(out, NULL, C, NULL, NULL, rstd, NULL, x, NULL, 0.0f, 0, y,
                                        NULL, 1e-5f, (int)N, C));
    mem_row(name, 2.0 * sc + N, ms);
    snprintf(name, sizeof name, "rmsnorm_backward [%zu,%d]", N, C);
    TIME(ms, gpu->rmsnorm_backward(g1, NULL, g2, z, x, NULL, y, rstd, (int)N, C, OPS_ADD));
    mem_row(name, 4.0 * sc + N, ms);
    snprintf(name, sizeof name, "dropout_forward p=0.1 [%zu,%d]", N, db->C);
    TIME(ms, gpu->dropout_forward(out, x, 0.1f, 3, nc));
    mem_row(name, 2.0 * nc, ms);
    snprintf(name, sizeof name, "dropout_backward p=0.1 [%zu,%d]", N, db->C);
    TIME(ms, gpu->dropout_backward(g1, NULL, y, 0.1f, 3, nc, OPS_ADD));
    mem_row(name, 3.0 * nc, ms);
    snprintf(name, sizeof name, "lora_dropout_rest p=0.1 [%zu,%d]", N, db->C); /* DoRA's */
    TIME(ms, gpu->lora_dropout_rest(out, x, NULL, db->C, 0.1f, 3, (int)N, db->C, OPS_SET));
    mem_row(name, 2.0 * nc, ms);
    /* the rows "bf16 out" and "bf16 in/out" as the model calls the ops under bf16 next to a
     * linear without LoRA: the input kept in bf16 (hb; forward, where the GEMM before wrote it
     * so, without its bias), the output gradient as the GEMM after wrote it (zb: bf16), the
     * output or input gradient written in bf16 only (ob) */
    uint16_t *hb = (uint16_t *)g2, *ob = (uint16_t *)out, *zb = (uint16_t *)z;
    /* RMS norm as a decoder layer under LoRA runs it: the residual add joined (x = a + b over a),
     * the output in bf16 for the next GEMM and xhat kept in bf16; backward from xhat, the frozen
     * weight's gradient not asked, dinp added to and rounded for the GEMM below */
    snprintf(name, sizeof name, "rmsnorm_forward, residual, bf16 out [%zu,%d]", N, C);
    TIME(ms, gpu->residual_norm_forward(NULL, ob, C, x, NULL, rstd, hb, x, z, 0.0f, 0, y, NULL,
                                        1e-5f, (int)N, C));
    mem_row(name, 4.0 * sc + N, ms);
    snprintf(name, sizeof name, "rmsnorm_backward, frozen, from xhat [%zu,%d]", N, C);
    TIME(ms, gpu->rmsnorm_backward(g1, ob, NULL, z, NULL, hb, y, rstd, (int)N, C, OPS_ADD));
    mem_row(name, 4.0 * sc + N, ms);
    snprintf(name, sizeof name, "dropout_backward p=0.1, bf16 out [%zu,%d]", N, db->C);
    TIME(ms, gpu->dropout_backward(NULL, ob, y, 0.1f, 3, nc, OPS_SET));
    mem_row(name, 1.5 * nc, ms);
    snprintf(name, sizeof name, "activation_forward gelu [%zu,%d]", N, db->F);
    TIME(ms, gpu->activation_forward(out, NULL, db->F, NULL, x, NULL, ACT_GELU, nf, db->F));
    mem_row(name, 2.0 * nf, ms);
    snprintf(name, sizeof name, "activation_backward gelu [%zu,%d]", N, db->F);
    TIME(ms,
         gpu->activation_backward(g1, NULL, x, NULL, NULL, y, NULL, ACT_GELU, nf, db->F, OPS_ADD));
    mem_row(name, 4.0 * nf, ms);
    snprintf(name, sizeof name, "activation_forward gelu, bf16 in/out [%zu,%d]", N, db->F);
    TIME(ms, gpu->activation_forward(NULL, ob, db->F, hb, NULL, x, ACT_GELU, nf, db->F));
    mem_row(name, 1.0 * nf, ms);
    snprintf(name, sizeof name, "activation_backward gelu, bf16 in/out [%zu,%d]", N, db->F);
    TIME(ms,
         gpu->activation_backward(NULL, ob, NULL, hb, x, NULL, zb, ACT_GELU, nf, db->F, OPS_SET));
    mem_row(name, 1.5 * nf, ms);
    snprintf(name, sizeof name, "swiglu_forward [%zu,%d]", N, sm->F);
    TIME(ms, gpu->glu_forward(ACT_SILU, out, NULL, sm->F, NULL, x, y, ns, sm->F, sm->F));
    mem_row(name, 3.0 * ns, ms);
    snprintf(name, sizeof name, "swiglu_backward [%zu,%d]", N, sm->F);
    TIME(ms,
         gpu->glu_backward(ACT_SILU, g1, g2, NULL, z, NULL, x, y, NULL, ns, sm->F, sm->F, OPS_ADD));
    mem_row(name, 7.0 * ns, ms);
    snprintf(name, sizeof name, "swiglu_forward, bf16 in/out [%zu,%d]", N, sm->F);
    TIME(ms, gpu->glu_forward(ACT_SILU, NULL, ob, sm->F, hb, NULL, NULL, ns, sm->F, sm->F));
    mem_row(name, 1.5 * ns, ms);
    snprintf(name, sizeof name, "swiglu_backward, bf16 in/out [%zu,%d]", N, sm->F);
    TIME(ms, gpu->glu_backward(ACT_SILU, NULL, NULL, ob, NULL, zb, NULL, NULL, hb, ns, sm->F, sm->F,
                               OPS_SET));
    mem_row(name, 2.5 * ns, ms);
    snprintf(name, sizeof name, "add [%zu,%d]", N, db->C);
    TIME(ms, gpu->add(out, x, y, nc));
    mem_row(name, 3.0 * nc, ms);
    /* a trained bias's gradient (lora.bias) beside the bf16 GEMMs: from the f32 output
     * gradient, and from its bf16 copy (an activation's backward wrote it so) */
    snprintf(name, sizeof name, "bias_backward [%zu,%d]", N, db->F);
    float *partials = zeros(ops_bias_scratch(N, (size_t)db->F));
    TIME(ms, gpu->bias_backward(g2, y, NULL, db->F, partials, (int)N, db->F));
    mem_row(name, 1.0 * nf, ms);
    snprintf(name, sizeof name, "bias_backward, bf16 in [%zu,%d]", N, db->F);
    TIME(ms, gpu->bias_backward(g2, NULL, zb, db->F, partials, (int)N, db->F));
    mem_row(name, 0.5 * nf, ms);
    FREE_ALL(x, y, z, out, g1, g2, mean, rstd, partials);
}

/* lora_down_bf16 at SmolLM2's q, k, v (three linears, r 8, lora dropout 0): from the f32 input
 * (x read, its bf16 copy written), and from the copy's x columns as the norm before writes them
 * (bf16 x read); both write each u in f32 and s u into the copy. */
static void bench_lora_down(void) {
    enum { R = 8, LINEARS = 3 };
    size_t N = sz->mem_rows, C = (size_t)sz->smollm2.C, ld = C + LINEARS * R, nu = N * R;
    float *x = randu(N * C, 1.0f), *A = randu(LINEARS * R * C, 0.05f), *u = zeros(LINEARS * nu);
    float *scratch = zeros(ops_lora_scratch(N, C, R));
    uint16_t *xb = must(gpu->alloc(N * ld * 2), N * ld * 2);
    float *us[LINEARS] = {u, u + nu, u + 2 * nu};
    const float *As[LINEARS] = {A, A + R * C, A + 2 * R * C};
    const uint64_t seeds[LINEARS] = {1, 2, 3};
    double written = LINEARS * nu * 1.5; /* floats: u, and s u in bf16 */
    char name[64];
    float ms;
    snprintf(name, sizeof name, "lora_down_bf16 q,k,v r=8 [%zu,%zu]", N, C);
    TIME(ms, gpu->lora_down_bf16(xb, us, As, seeds, LINEARS, x, 0.5f, 0.0f, scratch, (int)N, (int)C,
                                 R));
    mem_row(name, 1.5 * N * C + written, ms);
    snprintf(name, sizeof name, "lora_down_bf16 q,k,v r=8, from the copy [%zu,%zu]", N, C);
    TIME(ms, gpu->lora_down_bf16(xb, us, As, seeds, LINEARS, NULL, 0.5f, 0.0f, scratch, (int)N,
                                 (int)C, R));
    mem_row(name, 0.5 * N * C + written, ms);
    FREE_ALL(x, A, u, scratch, xb);
}

/* DistilBERT's embedding (word + position rows gathered, no token types) and its gradient,
 * the classification-sized cross-entropy, AdamW at LoRA and full-model sizes. */
static void bench_embedding_loss_adamw(void) {
    const Dims *db = &sz->distilbert;
    int N = sz->mem_rows, T = sz->T[0], B = N / T, C = db->C, V = db->V, R = sz->ce_rows;
    int32_t *ids = ints((size_t)N, 0, V), *labels = ints((size_t)R, 0, V);
    float *wte = randu((size_t)V * C, 0.1f), *wpe = randu((size_t)T * C, 0.1f);
    float *out = zeros((size_t)N * C), *dwte = zeros((size_t)V * C);
    float *logits = randu((size_t)R * V, 5.0f), *dlogits = zeros((size_t)R * V), *losses = zeros(R);
    double nc = (double)N * C;
    char name[64];
    float ms;
    snprintf(name, sizeof name, "embedding_forward [%d,%d]", N, C);
    TIME(ms, gpu->embedding_forward(out, ids, NULL, NULL, wte, NULL, wpe, NULL, B, T, C));
    mem_row(name, 3.0 * nc + N, ms); /* wte and wpe rows read, out written */
    snprintf(name, sizeof name, "embedding_backward dwte [%d,%d]", N, C);
    TIME(ms, gpu->embedding_backward(dwte, NULL, NULL, out, ids, NULL, -1, B, T, C));
    mem_row(name, 3.0 * nc + N, ms); /* dout read, dwte rows read and written */
    /* LoRA of rank 8 beside the table (embed_tokens' target): A's rows gathered and B's GEMM
     * added to out; backward B's gradient, du and its rows scattered into A's */
    enum { ER = 8 };
    float *AT = randu((size_t)V * ER, 0.1f), *Bm = randu((size_t)C * ER, 0.1f);
    float *u = zeros((size_t)N * ER), *dAT = zeros((size_t)V * ER), *dB = zeros((size_t)C * ER);
    float *escratch = zeros((size_t)N * ER);
    snprintf(name, sizeof name, "embedding_lora_forward r%d [%d,%d]", ER, N, C);
    TIME(ms, gpu->embedding_lora_forward(out, u, ids, AT, Bm, 2.0f, N, C, ER));
    mem_row(name, 2.0 * nc + 2.0 * N * ER + N, ms); /* out read and written, u */
    snprintf(name, sizeof name, "embedding_lora_backward r%d [%d,%d]", ER, N, C);
    TIME(ms, gpu->embedding_lora_backward(dAT, dB, out, u, ids, Bm, 2.0f, -1, escratch, N, C, ER));
    mem_row(name, 2.0 * nc + 4.0 * N * ER + N, ms); /* dout read twice, u, du and A's rows */
    snprintf(name, sizeof name, "cross_entropy [%d,%d]", R, V);
    TIME(ms, gpu->cross_entropy(losses, dlogits, logits, labels, 1.0f / R, R, V));
    mem_row(name, 2.0 * R * V, ms);
    FREE_ALL(ids, labels, wte, wpe, out, dwte, logits, dlogits, losses, AT, Bm, u, dAT, dB,
             escratch);
    size_t sizes[2] = {sz->adam_small, sz->adam_large};
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s], pieces = ops_adamw_pieces(NULL, NULL, 0, n, 1, 1.0f);
        float *p = randu(n, 1.0f), *g = randu(n, 0.1f), *m = zeros(n), *v = zeros(n);
        AdamWTensor *host = must(malloc(pieces * sizeof *host), pieces * sizeof *host);
        AdamWTensor *tab = must(gpu->alloc(pieces * sizeof *tab), pieces * sizeof *tab);
        ops_adamw_pieces(host, p, 0, n, 1, 1.0f);
        gpu->upload(tab, host, pieces * sizeof *tab);
        free(host);
        double *norm = must(gpu->alloc(sizeof *norm), sizeof *norm);
        double *scratch = must(gpu->alloc(OPS_ADAMW_SCRATCH * sizeof *scratch), sizeof *scratch);
        AdamWHyper h = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 1};
        snprintf(name, sizeof name, "adamw_step (norm, clip) n=%zu", n);
        TIME(ms, gpu->adamw_step(tab, (int)pieces, g, m, v, n, h, norm, scratch));
        mem_row(name, 8.0 * (double)n, ms); /* g read by the norm and the update; p, m, v r+w */
        FREE_ALL(p, g, m, v, tab, norm, scratch);
    }
}

/* dequantize_rows of a SmolLM2-embedding-sized matrix [V,C] from each packed type. */
static void bench_dequantize(void) {
    const Dims *sm = &sz->smollm2;
    size_t n = (size_t)sm->V * sm->C;
    float *h = must(malloc(n * sizeof *h), n * sizeof *h), *out = zeros(n);
    for (size_t i = 0; i < n; i++) h[i] = 2.0f * rng_next_uniform(&rng) - 1.0f;
    static const GgmlType types[] = {GGML_BF16, GGML_Q8_0, GGML_Q4_1, QUANT_NF4};
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        size_t bytes = n / quant_block_elems(types[t]) * quant_block_bytes(types[t]);
        void *hp = must(malloc(bytes), bytes), *dp = must(gpu->alloc(bytes), bytes);
        LfError err;
        if (quant_quantize(types[t], h, n, hp, &err)) {
            fprintf(stderr, "bench_kernels: %s\n", err.msg);
            exit(1);
        }
        gpu->upload(dp, hp, bytes);
        char name[64];
        float ms;
        snprintf(name, sizeof name, "dequantize_rows %s [%d,%d]", quant_type_name(types[t]), sm->V,
                 sm->C);
        TIME(ms, gpu->dequantize_rows(out, dp, types[t], 0, sm->V, sm->C));
        mem_row(name, (double)n + bytes / 4.0, ms);
        snprintf(name, sizeof name, "dequantize_rows_bf16 %s [%d,%d]", quant_type_name(types[t]),
                 sm->V, sm->C);
        TIME(ms, gpu->dequantize_rows_bf16((uint16_t *)out, dp, types[t], 0, sm->V, sm->C, sm->C));
        mem_row(name, n / 2.0 + bytes / 4.0, ms);
        free(hp);
        gpu->free(dp);
    }
    free(h);
    gpu->free(out);
}

/* ---- gemm: ours against bare cuBLAS on the same shape ---- */
static void gemm_header(void) {
    printf("%-5s %-48s %10s %9s %9s %9s %8s\n", "gemm", "op [N x in -> out]", "GFLOP", "ms",
           "TFLOP/s", "cuBLAS", "%cuBLAS");
}

static void gemm_row(const char *op, double flops, double ms, double bare_ms) {
    double ours = tflops(flops, ms), theirs = tflops(flops, bare_ms);
    printf("%-5s %-48s %10.2f %9.4f %9.2f %9.2f %8.1f\n", "gemm", op, flops * 1e-9, ms, ours,
           theirs, 100.0 * ours / theirs);
}

/* A frozen dense layer of up to maxk x maxk: an input x [N,maxk], the f32 weight and its bf16
 * copy, and the base GEMMs of the precision on a [M,K] slice of it (base_shape). */
typedef struct Base {
    int N, K, M, ld; /* ld: the bf16 weight's row stride, K + r for an adapted linear */
    float *x, *w, *scratch;
    uint16_t *xb, *wb; /* bf16 copies of x and w (room for LoRA's u and B beside them) */
    uint16_t *dd;      /* backward's bf16 dout (room for LoRA's du beside it) */
} Base;

enum { MAX_R = 64 }; /* the largest LoRA rank of the lora table */

static Base base_create(int N, int maxk) {
    size_t nk = (size_t)N * (maxk + MAX_R), kk = (size_t)(maxk + MAX_R) * (maxk + MAX_R);
    Base b = {.N = N, .x = randu((size_t)N * maxk, 1.0f), .w = randu((size_t)maxk * maxk, 0.05f)};
    b.scratch = zeros(gpu->matmul_bf16_scratch(N, maxk + MAX_R, maxk + MAX_R));
    b.xb = must(gpu->alloc(nk * 2), nk * 2), b.wb = must(gpu->alloc(kk * 2), kk * 2);
    b.dd = must(gpu->alloc(nk * 2), nk * 2);
    return b;
}

/* The layer [M,K]; its bf16 weight's rows and the input's bf16 copy's ld apart (the copy written
 * as the op before the linear writes it: a norm's out_bf16). */
static void base_shape(Base *b, int K, int M, int ld) {
    b->K = K, b->M = M, b->ld = ld;
    gpu->dequantize_rows_bf16(b->wb, b->w, GGML_F32, 0, M, K, ld);
    gpu->dequantize_rows_bf16(b->xb, b->x, GGML_F32, 0, b->N, K, ld);
}

/* bf16: the GEMM on the input's bf16 copy, as the model runs a linear without LoRA. */
static void base_forward(const Base *b, float *out, const float *bias) {
    if (precision == PRECISION_BF16) {
        gpu->matmul_forward_bf16(out, NULL, b->M, b->xb, b->K, b->wb, b->ld, bias, b->scratch, b->N,
                                 b->K, b->M);
    } else
        gpu->matmul_forward(out, b->x, b->w, bias, b->N, b->K, b->M);
}

/* bf16: dout rounded, then the GEMM, as the model runs a linear without LoRA. */
static void base_backward(const Base *b, float *dx, const float *dout) {
    if (precision == PRECISION_BF16) {
        gpu->dequantize_rows_bf16(b->dd, dout, GGML_F32, 0, b->N, b->M, b->M);
        gpu->matmul_backward_bf16(dx, NULL, b->dd, b->M, b->wb, b->ld, b->scratch, b->N, b->K, b->M,
                                  OPS_ADD);
    } else
        gpu->matmul_backward(dx, NULL, dout, b->x, b->w, b->N, b->K, b->M, OPS_ADD);
}

/* The bare cuBLAS GEMM of the base layer's shape, in its precision. */
static void base_bare(const Base *b, float *out) {
    if (precision == PRECISION_BF16)
        bench_gpu_gemm_bf16(out, b->xb, b->wb, b->N, b->M, b->K);
    else
        bench_gpu_gemm(out, b->x, b->w, b->N, b->M, b->K, 1);
}

static void base_free(Base *b) {
    FREE_ALL(b->x, b->w, b->scratch, b->xb, b->wb, b->dd);
}

static void bench_dense(const Dims *d) {
    int N = sz->rows, maxk = d->F > d->C ? d->F : d->C;
    Base b = base_create(N, maxk);
    float *bias = randu(maxk, 0.1f), *out = zeros((size_t)N * maxk), *dx = zeros((size_t)N * maxk);
    const char *sfx = precision == PRECISION_BF16 ? "_bf16" : "";
    for (int s = 0; s < d->n_dense; s++) {
        int K = d->dense[s][0], M = d->dense[s][1];
        double flops = 2.0 * N * K * M;
        char name[64];
        float ms, bare;
        base_shape(&b, K, M, K);
        TIME(bare, base_bare(&b, out));
        snprintf(name, sizeof name, "%s matmul_forward%s %dx%d->%d", d->name, sfx, N, K, M);
        TIME(ms, base_forward(&b, out, d->bias ? bias : NULL));
        gemm_row(name, flops, ms, bare);
        snprintf(name, sizeof name, "%s matmul_backward%s dinp %dx%d->%d", d->name, sfx, N, K, M);
        TIME(ms, base_backward(&b, dx, out));
        gemm_row(name, flops, ms, bare);
        if (precision != PRECISION_BF16) continue;
        /* the input-gradient GEMM alone (cuBLAS's NN layout, beta 0), from a bf16 dout as the
         * op after a linear without LoRA writes it: the row above less dout's rounding pass and
         * the f32 add */
        snprintf(name, sizeof name, "%s dinp GEMM alone (NN, =) %dx%d->%d", d->name, N, K, M);
        TIME(ms,
             gpu->matmul_backward_bf16(dx, NULL, b.dd, M, b.wb, b.ld, b.scratch, N, K, M, OPS_SET));
        gemm_row(name, flops, ms, bare);
    }
    base_free(&b);
    FREE_ALL(bias, out, dx);
}

/* A group of n linears of one input xb [N,C] apart: a GEMM each, out[j] wide, into a matrix of
 * its own in y, its weight rows and bias (if any) at its place in the group's w and bias. */
static void group_apart(float *y, const uint16_t *xb, const uint16_t *wb, const float *bias,
                        float *scratch, int n, const int *out, int N, int C) {
    for (int j = 0, at = 0; j < n; at += out[j++])
        gpu->matmul_forward_bf16(y + (size_t)N * at, NULL, out[j], xb, C, wb + (size_t)at * C, C,
                                 bias ? bias + at : NULL, scratch, N, C, out[j]);
}

/* A group's forward under bf16 (linear_outputs_join): its GEMMs apart, and joined (one GEMM into
 * the outputs side by side, the weights one block, the biases one vector: cuBLASLt's epilogue),
 * and joined writing bf16 (the bias left to the activation after it: linear_output_bf16), each
 * against one bare GEMM of the joined shape. */
static void bench_group(const Dims *d, const char *what, int n, const int *out, int with_bias) {
    int N = sz->rows, C = d->C, M = 0;
    for (int j = 0; j < n; j++) M += out[j];
    uint16_t *xb = must(gpu->alloc((size_t)N * C * 2), (size_t)N * C * 2);
    uint16_t *wb = must(gpu->alloc((size_t)M * C * 2), (size_t)M * C * 2);
    float *x = randu((size_t)N * C, 1.0f), *w = randu((size_t)M * C, 0.05f);
    float *bias = with_bias ? randu(M, 0.1f) : NULL, *y = zeros((size_t)N * M);
    float *scratch = zeros(gpu->matmul_bf16_scratch(N, C, M));
    gpu->dequantize_rows_bf16(xb, x, GGML_F32, 0, N, C, C);
    gpu->dequantize_rows_bf16(wb, w, GGML_F32, 0, M, C, C);
    float bare, apart, joined, half;
    TIME(bare, bench_gpu_gemm_bf16(y, xb, wb, N, M, C));
    TIME(apart, group_apart(y, xb, wb, bias, scratch, n, out, N, C));
    TIME(joined, gpu->matmul_forward_bf16(y, NULL, M, xb, C, wb, C, bias, scratch, N, C, M));
    TIME(half,
         gpu->matmul_forward_bf16(NULL, (uint16_t *)y, M, xb, C, wb, C, NULL, scratch, N, C, M));
    char name[64];
    double flops = 2.0 * N * C * M;
    snprintf(name, sizeof name, "%s %s apart %dx%d->%d", d->name, what, N, C, M);
    gemm_row(name, flops, apart, bare);
    snprintf(name, sizeof name, "%s %s joined %dx%d->%d", d->name, what, N, C, M);
    gemm_row(name, flops, joined, bare);
    snprintf(name, sizeof name, "%s %s joined, bf16 out %dx%d->%d", d->name, what, N, C, M);
    gemm_row(name, flops, half, bare);
    FREE_ALL(xb, wb, x, w, bias, y, scratch);
}

/* A tied LM head with its loss, as causal-LM LoRA training runs it: the forward (losses only)
 * and the training forward (losses and dh in one pass; the head is frozen, so backward does
 * nothing more); the same with RL's entropy and its bonus's gradient; then with an adapter of rank
 * 8 on the head (lm_head's target), whose du and dB the backward pass adds. Under --bf16 on the
 * head's bf16 copy, against a bare bf16 GEMM. */
static void bench_lm_head(const Dims *d) {
    enum { R = 8 };
    int N = sz->rows, C = d->C, V = d->V, bf16 = precision == PRECISION_BF16;
    float *h = randu((size_t)N * C, 1.0f), *w = randu((size_t)V * C, 0.05f);
    float *dh = zeros((size_t)N * C), *losses = zeros(N), *logits = zeros((size_t)N * V);
    float *entropy = zeros(N), *escale = randu(N, 0.01f); /* RL's entropy and its bonus */
    float *scratch = zeros(ops_lm_head_scratch(N, C, V, OPS_LM_HEAD_CHUNK, bf16, R));
    float *u = randu((size_t)N * R, 0.1f), *B = randu((size_t)V * R, 0.01f);
    float *du = zeros((size_t)N * R), *dB = zeros((size_t)V * R);
    uint16_t *hb = (uint16_t *)zeros((size_t)N * C), *wb = (uint16_t *)zeros((size_t)V * C);
    int32_t *labels = ints(N, 0, V);
    double flops = 2.0 * N * C * V;
    char name[64];
    float ms, bare;
    gpu->dequantize_rows_bf16(hb, h, GGML_F32, 0, N, C, C);
    gpu->dequantize_rows_bf16(wb, w, GGML_F32, 0, V, C, C);
    const uint16_t *Wb = bf16 ? wb : NULL;
    if (bf16)
        TIME(bare, bench_gpu_gemm_bf16(logits, hb, wb, N, V, C));
    else
        TIME(bare, bench_gpu_gemm(logits, h, w, N, V, C, 1));
    snprintf(name, sizeof name, "%s lm_head+loss fwd %dx%d->%d", d->name, N, C, V);
    TIME(ms, gpu->lm_head_cross_entropy(losses, NULL, NULL, h, w, Wb, NULL, labels, NULL, 1.0f / N,
                                        NULL, NULL, OPS_LOGITS_PLAIN, scratch, N, C, V,
                                        OPS_LM_HEAD_CHUNK));
    gemm_row(name, flops, ms, bare);
    snprintf(name, sizeof name, "%s lm_head+loss fwd+dh %dx%d->%d", d->name, N, C, V);
    TIME(ms,
         gpu->lm_head_cross_entropy(losses, dh, NULL, h, w, Wb, NULL, labels, NULL, 1.0f / N, NULL,
                                    NULL, OPS_LOGITS_PLAIN, scratch, N, C, V, OPS_LM_HEAD_CHUNK));
    gemm_row(name, 2.0 * flops, ms, 2.0 * bare);
    OpsEntropy ent = {entropy, escale};
    snprintf(name, sizeof name, "%s lm_head+loss+entropy fwd+dh %dx%d->%d", d->name, N, C, V);
    TIME(ms,
         gpu->lm_head_cross_entropy(losses, dh, NULL, h, w, Wb, NULL, labels, NULL, 1.0f / N, NULL,
                                    &ent, OPS_LOGITS_PLAIN, scratch, N, C, V, OPS_LM_HEAD_CHUNK));
    gemm_row(name, 2.0 * flops, ms, 2.0 * bare);
    OpsHeadLora lora = {u, B, du, dB, 2.0f, R};
    snprintf(name, sizeof name, "%s lm_head+loss+LoRA r%d fwd+dh %dx%d->%d", d->name, R, N, C, V);
    TIME(ms,
         gpu->lm_head_cross_entropy(losses, dh, NULL, h, w, Wb, &lora, labels, NULL, 1.0f / N, NULL,
                                    NULL, OPS_LOGITS_PLAIN, scratch, N, C, V, OPS_LM_HEAD_CHUNK));
    gemm_row(name, 2.0 * flops, ms, 2.0 * bare);
    FREE_ALL(h, w, dh, losses, entropy, escale, logits, scratch, hb, wb, labels, u, B, du, dB);
}

/* Attention over B*T = attn_tokens tokens. causal: SmolLM2's heads (GQA) or Llama-3.1-8B's (head
 * size 128) and rope, which the ops turn q and k by, over a sliding window of `window` keys where
 * window > 0 (Mistral's: its heads are Llama-3.1-8B's); padded: DistilBERT's, sequence b keeping
 * T - (b % 4) * T / 8 tokens. The
 * bare comparison is the dense [T,T]
 * attention as cuBLAS GEMMs over the B*NH heads (S = Q K^T and O = P V forward; dP, dV, dQ,
 * dK backward), without softmax or masking; ours counts only the allowed pairs. */
static void bench_attention(const Dims *d, int T, int causal, int window, const char *impl) {
    int B = sz->attn_tokens / T, NH = d->NH, HS = d->HS, C = NH * HS, KC = d->NKV * HS;
    RopeFreqs freqs;
    rope_freqs_init(&freqs, 1e5f, HS, NULL);
    const RopeFreqs *rope = causal ? &freqs : NULL;
    AttnScore score = attn_score_plain(HS);
    size_t btc = (size_t)B * T * C, bth = (size_t)B * NH * T;
    float *q = randu(btc, 1.0f), *k = randu((size_t)B * T * KC, 1.0f);
    float *v = randu((size_t)B * T * KC, 1.0f), *out = zeros(btc), *lse = zeros(bth);
    float *dout = randu(btc, 1.0f), *dq = zeros(btc), *dk = zeros((size_t)B * T * KC);
    float *dv = zeros((size_t)B * T * KC);
    float *scratch = zeros(gpu->attention_scratch(B, T, NH, d->NKV, HS) + 1);
    float *saved = zeros(gpu->attention_saved(precision, B, T, NH, d->NKV, HS, 0) + 1);
    int32_t *hmask = must(malloc((size_t)B * T * sizeof *hmask), (size_t)B * T * sizeof *hmask);
    double pairs = 0;
    for (int b = 0; b < B; b++) {
        int len = causal ? T : T - (b % 4) * T / 8;
        for (int t = 0; t < T; t++) hmask[(size_t)b * T + t] = t < len;
        for (int i = 0; i < T; i++) /* the pairs each query row sees */
            pairs += !causal ? len : window && i >= window ? window : i + 1;
    }
    int32_t *mask = must(gpu->alloc((size_t)B * T * sizeof *mask), (size_t)B * T * sizeof *mask);
    gpu->upload(mask, hmask, (size_t)B * T * sizeof *mask);
    free(hmask);
    /* the bare GEMMs, B*NH of each: S [T,T] = X [T,HS] Y^T and O [T,HS] = S X^T, X and Y
     * taken from q (its values do not matter, its size fits both) */
    float *S = zeros(bth * T), *O = zeros(btc);
    float mm_tt, mm_th, fwd, bwd;
    TIME(mm_tt, bench_gpu_gemm(S, q, q, T, T, HS, B * NH));
    TIME(mm_th, bench_gpu_gemm(O, S, q, T, HS, T, B * NH));
    /* under bf16 the model keeps only bf16(out) (in saved), as SDPA returns it: no f32 out */
    float *fout = precision == PRECISION_BF16 ? NULL : out;
    float first = 0; /* cuDNN plans a shape on its first call: that call timed alone */
    if (*impl) {
        bench_gpu_mark();
        gpu->attention_forward(fout, NULL, 0, lse, saved, q, NH * HS, k, v, d->NKV * HS, mask,
                               causal, window, rope, score, 0.0f, 1, scratch, B, T, NH, d->NKV, HS);
        gpu->attention_backward(dq, dk, dv, dout, q, k, v, NH * HS, d->NKV * HS, fout, NULL, 0, lse,
                                saved, mask, causal, window, rope, score, 0.0f, 1, scratch, B, T,
                                NH, d->NKV, HS, OPS_ADD);
        first = bench_gpu_elapsed_ms();
    }
    TIME(fwd, gpu->attention_forward(fout, NULL, 0, lse, saved, q, NH * HS, k, v, d->NKV * HS, mask,
                                     causal, window, rope, score, 0.0f, 1, scratch, B, T, NH,
                                     d->NKV, HS));
    TIME(bwd, gpu->attention_backward(dq, dk, dv, dout, q, k, v, NH * HS, d->NKV * HS, fout, NULL,
                                      0, lse, saved, mask, causal, window, rope, score, 0.0f, 1,
                                      scratch, B, T, NH, d->NKV, HS, OPS_ADD));
    double flops = 4.0 * NH * HS * pairs, dense = 4.0 * B * NH * (double)T * T * HS;
    char name[64];
    char kind[32];
    snprintf(kind, sizeof kind,
             !causal  ? "padded"
             : window ? "causal window %d"
                      : "causal",
             window);
    snprintf(name, sizeof name, "%sattention_forward %s B=%d T=%d NH=%d", impl, kind, B, T, NH);
    gemm_row(name, flops, fwd, (mm_tt + mm_th) * flops / dense);
    snprintf(name, sizeof name, "%sattention_backward %s B=%d T=%d NH=%d", impl, kind, B, T, NH);
    gemm_row(name, 2.0 * flops, bwd, (mm_tt + 3.0 * mm_th) * flops / dense);
    if (*impl)
        printf("# %sattention %s B=%d T=%d NH=%d: first forward + backward, planning included, "
               "%.0f ms\n",
               impl, kind, B, T, NH, first);
    FREE_ALL(q, k, v, out, lse, dout, dq, dk, dv, scratch, saved, mask, S, O);
}

/* ---- lora: the adapted linear against its bare base GEMM ---- */
static void lora_header(void) {
    printf("%-5s %-48s %10s %9s %9s %9s %9s %8s\n", "lora", "layer [N x in -> out] rank", "fwd ms",
           "+lora ms", "fwd %", "bwd ms", "+lora ms", "bwd %");
}

/* The adapted linear as the model runs it at dropout p, or under bf16 fused (p = 0). Forward: s u
 * into the input's copy [x | s u] by lora_down_bf16 from its x columns (base_shape's), B rounded
 * into the weight's last R columns (b->ld = K + R), one GEMM over K + R columns; backward:
 * lora_backward_bf16 from dout and that copy (dd = [bf16(dout) | bf16(du)], du, dA, dB), A rounded
 * into the weight's last R rows, one dinp GEMM over dd. scratch: ops_lora_scratch floats, or du
 * [N,R] and ops_lora_bf16_scratch floats, the larger.
 */
static void lora_linear_forward(const Base *b, float *out, float *u, const float *A,
                                const float *Bw, float *scratch, int R, float p) {
    const float *x = b->x;
    int N = b->N, K = b->K, M = b->M;
    if (precision != PRECISION_BF16) {
        base_forward(b, out, NULL);
        gpu->lora_forward(out, u, x, A, Bw, 2.0f, p, 1, scratch, N, K, M, R);
        return;
    }
    uint64_t seed = 1;
    gpu->lora_down_bf16(b->xb, &u, &A, &seed, 1, NULL, 2.0f, 0.0f, scratch, N, K, R);
    gpu->dequantize_rows_bf16(b->wb + K, Bw, GGML_F32, 0, M, R, b->ld);
    gpu->matmul_forward_bf16(out, NULL, M, b->xb, K + R, b->wb, b->ld, NULL, b->scratch, N, K + R,
                             M);
}

static void lora_linear_backward(const Base *b, float *dx, float *dA, float *dB, const float *dout,
                                 const float *u, const float *A, const float *Bw, float *scratch,
                                 int R, float p) {
    const float *x = b->x;
    int N = b->N, K = b->K, M = b->M;
    if (precision != PRECISION_BF16) {
        base_backward(b, dx, dout);
        gpu->lora_backward(dx, dA, dB, dout, x, u, A, Bw, 2.0f, p, 1, scratch, N, K, M, R);
        return;
    }
    float *du = scratch; /* then lora_backward_bf16's scratch */
    OpsLoraBackward lin = {.dout = dout,
                           .u = u,
                           .B = Bw,
                           .du = du,
                           .dA = dA,
                           .dB = dB,
                           .seed = 1,
                           .OC = M,
                           .dout_col = 0,
                           .du_col = M};
    gpu->lora_backward_bf16(b->dd, M + R, &lin, 1, NULL, b->xb, K + R, 2.0f, 0.0f,
                            scratch + ops_floats64((size_t)N * R), N, K, R);
    gpu->dequantize_rows_bf16(b->wb + (size_t)M * b->ld, A, GGML_F32, 0, R, K, b->ld);
    gpu->matmul_backward_bf16(dx, NULL, b->dd, M + R, b->wb, b->ld, b->scratch, N, K, M + R,
                              OPS_ADD);
}

/* The ranks and dropouts timed: under f32 GEMMs p = 0.1 at every rank (the down-projection's
 * masking kernel, dA's drop(x), the masked dinp) and p = 0 at r = 8 (lora.dropout's default: every
 * product a cuBLAS GEMM); under bf16 the fused linear at p = 0. */
typedef struct LoraRun {
    int r;
    float p;
} LoraRun;
static const LoraRun lora_runs_f32[] = {{8, 0.1f}, {8, 0.0f}, {16, 0.1f}, {MAX_R, 0.1f}};
static const LoraRun lora_runs_bf16[] = {{8, 0.0f}, {16, 0.0f}, {MAX_R, 0.0f}};

static void bench_lora(const Dims *d) {
    int bf16 = precision == PRECISION_BF16;
    const LoraRun *runs = bf16 ? lora_runs_bf16 : lora_runs_f32;
    int n_runs = bf16 ? 3 : 4;
    int N = sz->rows, maxk = d->F > d->C ? d->F : d->C, maxr = MAX_R;
    size_t nk = (size_t)N * maxk;
    Base b = base_create(N, maxk);
    float *out = zeros(nk), *dout = randu(nk, 1.0f), *dx = zeros(nk), *u = zeros((size_t)N * maxr);
    float *A = randu((size_t)maxr * maxk, 0.05f), *Bw = randu((size_t)maxk * maxr, 0.05f);
    float *dA = zeros((size_t)maxr * maxk), *dB = zeros((size_t)maxk * maxr);
    size_t f32_scratch = ops_lora_scratch(N, maxk, maxr);
    size_t bf16_scratch = ops_floats64(N * maxr) + ops_lora_bf16_scratch(N, maxk, maxk, maxr);
    float *scratch = zeros(f32_scratch > bf16_scratch ? f32_scratch : bf16_scratch);
    for (int s = 0; s < d->n_dense; s++) {
        int K = d->dense[s][0], M = d->dense[s][1];
        float base_f, base_b, lora_f, lora_b;
        base_shape(&b, K, M, K);
        TIME(base_f, base_forward(&b, out, NULL));
        TIME(base_b, base_backward(&b, dx, dout));
        for (int r = 0; r < n_runs; r++) {
            int R = runs[r].r;
            float p = runs[r].p;
            base_shape(&b, K, M, K + R);
            TIME(lora_f, lora_linear_forward(&b, out, u, A, Bw, scratch, R, p));
            TIME(lora_b, lora_linear_backward(&b, dx, dA, dB, dout, u, A, Bw, scratch, R, p));
            char name[64];
            snprintf(name, sizeof name, "%s %dx%d->%d r=%d p=%g", d->name, N, K, M, R, p);
            printf("%-5s %-48s %10.4f %9.4f %9.1f %9.4f %9.4f %8.1f\n", "lora", name, base_f,
                   lora_f, 100.0 * (lora_f / base_f - 1.0), base_b, lora_b,
                   100.0 * (lora_b / base_b - 1.0));
        }
    }
    base_free(&b);
    FREE_ALL(out, dout, dx, u, A, Bw, dA, dB, scratch);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* rows survive a timeout's kill */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--smoke"))
            sz = &smoke;
        else if (!strcmp(argv[i], "--fp32"))
            precision = PRECISION_FP32;
        else if (!strcmp(argv[i], "--tf32"))
            precision = PRECISION_TF32;
        else if (!strcmp(argv[i], "--bf16"))
            precision = PRECISION_BF16;
        else
            return fprintf(stderr, "usage: bench_kernels [--smoke] [--fp32 | --tf32 | --bf16]\n"),
                   2;
    }
    LfError err;
    int devices = ops_cuda_device_count(&err);
    if (devices <= 0) {
        printf("bench_kernels: %s\n", devices < 0 ? err.msg : "no CUDA device, skipping");
        return devices < 0;
    }
    gpu->set_precision(precision); /* as the model: bf16 also runs attention on tensor cores */
    bench_gpu_set_tf32(precision != PRECISION_FP32);
    char name[256];
    bench_gpu_name(name, sizeof name);
    printf("# bench_kernels on %s, precision %s, %s, mean of %d runs after %d warm-up\n", name,
           precision_name(precision),
           sz == &smoke ? "SMOKE SHAPES (numbers meaningless)" : "full shapes", sz->reps,
           sz->warmup);
    bench_copy();
    mem_header();
    bench_norms_and_elementwise();
    bench_lora_down();
    bench_embedding_loss_adamw();
    bench_dequantize();
    gemm_header();
    bench_dense(&sz->distilbert);
    bench_dense(&sz->smollm2);
    if (precision == PRECISION_BF16) { /* the groups' forward, apart and joined */
        const Dims *sm = &sz->smollm2, *db = &sz->distilbert;
        bench_group(sm, "q,k,v", 3,
                    (const int[]){sm->NH * sm->HS, sm->NKV * sm->HS, sm->NKV * sm->HS}, 0);
        bench_group(sm, "gate,up", 2, (const int[]){sm->F, sm->F}, 0);
        bench_group(db, "q,k,v", 3, (const int[]){db->C, db->C, db->C}, 1);
    }
    bench_lm_head(&sz->smollm2);
    bench_lm_head(&sz->llama1b);
    for (int t = 0; t < 2; t++) {
        bench_attention(&sz->smollm2, sz->T[t], 1, 0, "");
        bench_attention(&sz->distilbert, sz->T[t], 0, 0, "");
    }
    bench_attention(&sz->llama8b, sz->T[1], 1, 0, "");            /* head size 128's kernels */
    bench_attention(&sz->llama8b, sz->T[1], 1, sz->T[1] / 4, ""); /* a window: Mistral's heads */
    bench_attention(&sz->gemma3, sz->T[1], 1, 0, "");             /* head size 256's kernels */
    bench_attention(&sz->gemma3, sz->T[1], 1, sz->T[1] / 4, "");  /* its windowed layers' */
    /* model.attention cudnn at the same shapes (bf16, in a build with it; its warm-up plans) */
    if (precision == PRECISION_BF16 && !gpu->set_attention(ATTENTION_CUDNN, &err)) {
        for (int t = 0; t < 2; t++) {
            bench_attention(&sz->smollm2, sz->T[t], 1, 0, "cudnn ");
            bench_attention(&sz->distilbert, sz->T[t], 0, 0, "cudnn ");
        }
        bench_attention(&sz->llama8b, sz->T[1], 1, 0, "cudnn ");
        bench_attention(&sz->gemma3, sz->T[1], 1, 0, "cudnn ");
        gpu->set_attention(ATTENTION_LORAFT, NULL);
    } else if (precision == PRECISION_BF16) {
        printf("# no cudnn attention rows: %s\n", err.msg);
    }
    lora_header();
    bench_lora(&sz->distilbert);
    bench_lora(&sz->smollm2);
    char msg[256];
    if (gpu->status(&err)) return fprintf(stderr, "bench_kernels: %s\n", err.msg), 1;
    if (bench_gpu_status(msg, sizeof msg)) return fprintf(stderr, "bench_kernels: %s\n", msg), 1;
    return 0;
}
#else
int main(void) {
    printf("bench_kernels: no CUDA device, skipping (built without CUDA)\n");
    return 0;
}
#endif
