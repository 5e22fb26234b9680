/* test_gpu_parity.c: every op of ops.h, forward and backward, run on the CUDA
 * backend and on the CPU reference with the same random inputs, over a grid of
 * shapes that includes ragged ones (T not a multiple of 32, C not a multiple of
 * 4, N = 1, R in {1, 4, 12, 16, 32, 64, 80}, padding in the mask, p = 0 and p > 0, GEMM operands
 * and biases 4 or 16 bytes past the alignment of their allocation). Prints
 * one line per op and tensor with the max abs/rel difference; dropout masks
 * must match exactly.
 *
 * The grid also goes past the launch caps (element-wise ops over more than 65,535
 * blocks of 256, cross-entropy over more than 65,536 rows), runs attention at BERT-base
 * shape (NH = 12, HS = 64, T = 128 and 512), logits large enough that an unshifted
 * softmax overflows, and backward calls with only some gradients requested (the skip
 * paths), and the chunked LM head at GPT-2's and SmolLM2's vocabularies. Under the CUDA
 * emulation (tests/cuda_emu, where every emulated thread is a fiber) the slowest cases are
 * left out or shrunk: T = 512, the repeated element-wise ops at the big size, and the LM
 * head past its chunk at V = 2000 instead of 49,152; LORAFT_PARITY_FULL=1 runs them anyway. The
 * bf16 GEMMs of frozen weights (model.precision bf16) compare at f32 tolerance: both backends
 * sum the same exact products of bf16 values in f32; attention on bf16 tensor cores compares at
 * stated bf16 bounds, against the CPU's f32 and against a bf16-rounding reference here. The TF32
 * check runs on a real GPU only.
 *
 * Skips (77) without a CUDA device. LORAFT_PARITY_SELF=1 compares the CPU table
 * with itself instead: that checks this harness (and must give zero
 * differences) on machines without a GPU. Not a gradient check: the CPU ops
 * have their own finite-difference tests. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "grpo_cases.h"
#include "loraft/ops.h"
#include "loraft/quant.h"
#include "loraft/quant_block.h" /* qb_bf16 */
#include "loraft/safetensors.h" /* f32_to_f16, f32_to_bf16 */
#include "loraft/rng.h"

/* The step's scalars on both backends (Ops.set_step) for every case: each dropout's seed and
 * each loss's gradient scale then go through them on both sides. */
static const OpsStep parity_step = {0x5eed0000002aull, 0.75f};

static const Ops *ref = &ops_cpu, *dut;
static Rng rng = {0x5eed, 0};

/* Defined (returning 1) only by the CUDA emulation in tests/cuda_emu; the second counts its
 * calls (emu_runtime.cpp). */
__attribute__((weak)) int loraft_cuda_emulated(void);
__attribute__((weak)) long long loraft_cuda_emu_count(const char *what);
static int emulated, full_grid; /* set in main */

/* ---- one tensor in both backends' memory ---- */
typedef struct Pair {
    void *mem[2]; /* [0] ref, [1] dut */
    size_t bytes;
} Pair;

enum { MAX_PAIRS = 64 };
static Pair pairs[MAX_PAIRS];
static int npairs;

static Pair *pair_new(size_t bytes) {
    if (npairs == MAX_PAIRS) {
        fprintf(stderr, "test_gpu_parity: more than %d live tensors\n", MAX_PAIRS);
        exit(1);
    }
    Pair *p = &pairs[npairs++];
    p->bytes = bytes;
    p->mem[0] = ref->alloc(bytes);
    p->mem[1] = dut->alloc(bytes);
    if (!p->mem[0] || !p->mem[1]) {
        fprintf(stderr, "test_gpu_parity: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static Pair *pair_upload(const void *host, size_t bytes) {
    Pair *p = pair_new(bytes);
    ref->upload(p->mem[0], host, bytes);
    dut->upload(p->mem[1], host, bytes);
    return p;
}

/* n floats uniform in [-amp, amp) */
static Pair *pair_random(size_t n, float amp) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = amp * (2.0f * rng_next_uniform(&rng) - 1.0f);
    Pair *p = pair_upload(h, n * sizeof *h);
    free(h);
    return p;
}

/* n floats, all NaN: a gradient buffer its first writer must not read */
static Pair *pair_nan(size_t n) {
    float *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    Pair *p = pair_upload(h, n * sizeof *h);
    free(h);
    return p;
}

/* n int32 uniform in [lo, hi) */
static Pair *pair_ints(size_t n, int lo, int hi) {
    int32_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = lo + (int32_t)(rng_next(&rng) % (uint64_t)(hi - lo));
    Pair *p = pair_upload(h, n * sizeof *h);
    free(h);
    return p;
}

static void pairs_free(void) {
    for (int i = 0; i < npairs; i++) {
        ref->free(pairs[i].mem[0]);
        dut->free(pairs[i].mem[1]);
    }
    npairs = 0;
}

/* Backend w's pointer of p (NULL stays NULL). */
#define F(p, w) ((float *)((p) ? (p)->mem[w] : NULL))
/* The same, `off` floats in: an operand not aligned as its allocation is (a bias inside the
 * parameter buffer), which picks other GEMM kernels on a GPU. */
#define FO(p, w, off) ((p) ? F(p, w) + (off) : NULL)
#define I(p, w) ((const int32_t *)((p) ? (p)->mem[w] : NULL))
#define BACKENDS(w, o)                                                                             \
    for (int w = 0; w < 2; w++)                                                                    \
        for (const Ops *o = w ? dut : ref; o; o = NULL)

/* ---- comparison ---- */
static char op_name[160]; /* the case being run, for the report lines */

static void status_ok(void) {
    LfError e = {{0}};
    int rc = dut->status(&e);
    if (rc) fprintf(stderr, "%s: status: %s\n", op_name, e.msg);
    CHECK(rc == 0);
}

/* Every element within atol + rtol*|ref| (rtol < 0: bitwise equal) but at most `spare`. */
static void compare_but(const char *tensor, const Pair *p, size_t spare, double atol, double rtol) {
    size_t n = p->bytes / sizeof(float), bad = 0, first = 0;
    float *a = malloc(p->bytes), *b = malloc(p->bytes);
    ref->download(a, p->mem[0], p->bytes);
    dut->download(b, p->mem[1], p->bytes);
    status_ok();
    double max_abs = 0.0, max_rel = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = a[i] == b[i] ? 0.0 : fabs((double)a[i] - b[i]); /* equal infinities: 0 */
        int ok = rtol < 0 ? !memcmp(&a[i], &b[i], sizeof a[i])
                          : d == 0.0 || d <= atol + rtol * fabs(a[i]); /* rtol 0 of an infinity */
        if (!ok && !bad++) first = i;
        if (d > max_abs || d != d) max_abs = d;
        if (fabs(a[i]) > 1e-3 && d / fabs(a[i]) > max_rel) max_rel = d / fabs(a[i]);
    }
    printf("%-58s %-6s n=%-8zu max abs %.2e  max rel %.2e%s\n", op_name, tensor, n, max_abs,
           max_rel, rtol < 0 ? "  (exact)" : "");
    if (bad > spare)
        fprintf(stderr, "  %s: %s: %zu of %zu elements off, first [%zu]: cpu %.9g cuda %.9g\n",
                op_name, tensor, bad, n, first, a[first], b[first]);
    CHECK(bad <= spare);
    free(a);
    free(b);
}

static void compare(const char *tensor, const Pair *p, double atol, double rtol) {
    compare_but(tensor, p, 0, atol, rtol);
}

#define NAME(...) snprintf(op_name, sizeof op_name, __VA_ARGS__)
/* f32 GEMM-based ops and reductions over a few hundred terms */
#define GEMM_TOL 1e-4, 1e-4
/* one transcendental per element */
#define ELEM_TOL 1e-5, 1e-5
#define EXACT 0.0, -1.0

/* ---- element-wise ---- */
/* quick: one activation and one dropout rate only (the big size under emulation) */
static void test_elementwise(size_t n, int quick) {
    static const char *acts[] = {"gelu", "gelu_tanh", "relu", "tanh", "silu"};
    Pair *x = pair_random(n, 4.0f), *dy = pair_random(n, 1.0f), *y = pair_random(n, 1.0f);
    for (int a = ACT_GELU; a <= (quick ? ACT_GELU : ACT_SILU); a++) {
        Pair *out = pair_new(n * sizeof(float)), *dx = pair_random(n, 1.0f);
        BACKENDS(w, o) {
            o->activation_forward(F(out, w), NULL, (int)n, NULL, F(x, w), NULL, (Activation)a, n,
                                  (int)n);
            o->activation_backward(F(dx, w), NULL, F(x, w), NULL, NULL, F(dy, w), NULL,
                                   (Activation)a, n, (int)n, OPS_ADD);
        }
        NAME("activation %s n=%zu", acts[a], n);
        compare("out", out, ELEM_TOL);
        compare("dinp", dx, ELEM_TOL);
    }
    for (int k = quick ? 1 : 0; k < (quick ? 2 : 3); k++) {
        float p = (float[]){0.0f, 0.1f, 0.5f}[k];
        Pair *out = pair_new(n * sizeof(float)), *dx = pair_random(n, 1.0f);
        Pair *inplace = pair_random(n, 1.0f);
        BACKENDS(w, o) {
            o->dropout_forward(F(out, w), F(x, w), p, 1234 + k, n);
            o->dropout_forward(F(inplace, w), F(inplace, w), p, 99, n);
            o->dropout_backward(F(dx, w), NULL, F(dy, w), p, 1234 + k, n, OPS_ADD);
        }
        NAME("dropout p=%.1f n=%zu", p, n);
        compare("out", out, EXACT);
        compare("inplc", inplace, EXACT);
        compare("dinp", dx, ELEM_TOL);
    }
    Pair *noisy = pair_random(n, 1.0f); /* NEFTune's noise: the same draws, the same sums */
    BACKENDS(w, o) o->uniform_noise(F(noisy, w), 0.03f, 4321, n);
    NAME("uniform_noise n=%zu", n);
    compare("x", noisy, EXACT);
    Pair *sum = pair_new(n * sizeof(float)), *acc = pair_random(n, 1.0f);
    BACKENDS(w, o) {
        o->add(F(sum, w), F(x, w), F(y, w), n);
        o->axpy(F(acc, w), F(x, w), -0.37f, n);
        o->scale(F(acc, w), 1.9f, n);
    }
    NAME("add, axpy, scale n=%zu", n);
    compare("add", sum, ELEM_TOL);
    compare("axpy", acc, ELEM_TOL);
    pairs_free();
}

/* Pointers off the 16-byte grid: the elementwise kernels' scalar path (float4 needs it) */
static void test_elementwise_unaligned(size_t n) {
    Pair *x = pair_random(n, 4.0f), *y = pair_random(n, 1.0f);
    Pair *sum = pair_random(n, 1.0f), *out = pair_random(n, 1.0f);
    BACKENDS(w, o) {
        o->add(F(sum, w) + 3, F(x, w) + 1, F(y, w) + 2, n - 3);
        o->dropout_forward(F(out, w) + 1, F(x, w) + 2, 0.1f, 7, n - 2);
        o->uniform_noise(F(y, w) + 1, 0.03f, 7, n - 1);
    }
    NAME("add, dropout, noise at unaligned offsets n=%zu", n);
    compare("add", sum, ELEM_TOL);
    compare("drop", out, EXACT);
    compare("noise", y, EXACT);
    pairs_free();
}

/* ---- embeddings and pooling ---- */
/* One sequence reads wpe at given positions (generation's), the others at t. */
static void test_embedding(int B, int T, int C, int with_types) {
    int V = 50, maxT = T + 3;
    Pair *ids = pair_ints((size_t)B * T, 0, V),
         *types = with_types ? pair_ints((size_t)B * T, 0, 2) : NULL,
         *pos = B == 1 ? pair_ints((size_t)T, 0, maxT) : NULL;
    Pair *wte = pair_random((size_t)V * C, 1.0f), *wpe = pair_random((size_t)maxT * C, 1.0f);
    Pair *wtt = with_types ? pair_random(2 * (size_t)C, 1.0f) : NULL;
    Pair *out = pair_new((size_t)B * T * C * sizeof(float)),
         *dout = pair_random((size_t)B * T * C, 1.0f);
    Pair *dwte = pair_random((size_t)V * C, 1.0f), *dwpe = pair_random((size_t)maxT * C, 1.0f);
    Pair *dwtt = with_types ? pair_random(2 * (size_t)C, 1.0f) : NULL;
    BACKENDS(w, o) {
        o->embedding_forward(F(out, w), I(ids, w), I(types, w), I(pos, w), F(wte, w), NULL,
                             F(wpe, w), F(wtt, w), B, T, C);
        o->embedding_backward(F(dwte, w), F(dwpe, w), F(dwtt, w), F(dout, w), I(ids, w),
                              I(types, w), 3, B, T, C);
    }
    NAME("embedding B=%d T=%d C=%d types=%d positions=%d", B, T, C, with_types, pos != NULL);
    compare("out", out, ELEM_TOL);
    compare("dwte", dwte, EXACT); /* each row's additions in increasing position, as the CPU's */
    compare("dwpe", dwpe, ELEM_TOL);
    if (with_types) compare("dwtt", dwtt, GEMM_TOL);

    Pair *cls = pair_new((size_t)B * C * sizeof(float)), *dcls = pair_random((size_t)B * C, 1.0f);
    BACKENDS(w, o) {
        o->first_token_forward(F(cls, w), F(out, w), B, T, C);
        o->first_token_backward(F(dout, w), F(dcls, w), B, T, C);
    }
    NAME("first_token B=%d T=%d C=%d", B, T, C);
    compare("out", cls, EXACT);
    compare("dinp", dout, ELEM_TOL);
    pairs_free();
}

/* LoRA beside the token embedding: the gather, the up-projection added to out, and the
 * gradients, padding id 3's rows adding nothing to A's row. */
static void test_embedding_lora(int N, int C, int R) {
    int V = 40;
    Pair *ids = pair_ints((size_t)N, 0, V), *AT = pair_random((size_t)V * R, 1.0f);
    Pair *Bm = pair_random((size_t)C * R, 1.0f), *out = pair_random((size_t)N * C, 1.0f);
    Pair *u = pair_new((size_t)N * R * sizeof(float)), *dout = pair_random((size_t)N * C, 1.0f);
    Pair *dAT = pair_random((size_t)V * R, 1.0f), *dB = pair_random((size_t)C * R, 1.0f);
    Pair *scratch = pair_new((size_t)N * R * sizeof(float));
    BACKENDS(w, o) {
        o->embedding_lora_forward(F(out, w), F(u, w), I(ids, w), F(AT, w), F(Bm, w), 0.75f, N, C,
                                  R);
        o->embedding_lora_backward(F(dAT, w), F(dB, w), F(dout, w), F(u, w), I(ids, w), F(Bm, w),
                                   0.75f, 3, F(scratch, w), N, C, R);
    }
    NAME("embedding_lora N=%d C=%d R=%d", N, C, R);
    compare("u", u, EXACT);
    compare("out", out, GEMM_TOL);
    compare("dAT", dAT, GEMM_TOL);
    compare("dB", dB, GEMM_TOL);
    pairs_free();
}

/* ---- layer norm ---- */
static void test_layernorm(int N, int C) {
    size_t NC = (size_t)N * C;
    Pair *x = pair_random(NC, 3.0f), *wgt = pair_random(C, 1.0f), *bias = pair_random(C, 1.0f);
    Pair *out = pair_new(NC * sizeof(float)), *mean = pair_new(N * sizeof(float));
    Pair *rstd = pair_new(N * sizeof(float)), *dout = pair_random(NC, 1.0f);
    Pair *dx = pair_random(NC, 1.0f), *dw = pair_random(C, 1.0f), *db = pair_random(C, 1.0f);
    BACKENDS(w, o) {
        o->layernorm_forward(F(out, w), F(mean, w), F(rstd, w), NULL, F(x, w), F(wgt, w),
                             F(bias, w), 1e-5f, N, C);
        o->layernorm_backward(F(dx, w), NULL, F(dw, w), F(db, w), F(dout, w), F(x, w), NULL,
                              F(wgt, w), F(mean, w), F(rstd, w), N, C, OPS_ADD);
    }
    NAME("layernorm N=%d C=%d", N, C);
    compare("out", out, GEMM_TOL);
    compare("mean", mean, GEMM_TOL);
    compare("rstd", rstd, GEMM_TOL);
    compare("dinp", dx, GEMM_TOL);
    compare("dw", dw, GEMM_TOL);
    compare("db", db, GEMM_TOL);
    pairs_free();
}

/* ---- dense layer ---- */
/* Which gradients a backward call asks for (a NULL gradient skips that work). */
enum { G_DINP = 1, G_DW = 2, G_DB = 4, G_ALL = 7 };

/* ---- decoder ops: RMS norm, rotary embedding, SwiGLU ---- */
static void test_rmsnorm(int N, int C) {
    size_t NC = (size_t)N * C;
    Pair *x = pair_random(NC, 3.0f), *wgt = pair_random(C, 1.0f), *dout = pair_random(NC, 1.0f);
    Pair *out = pair_new(NC * sizeof(float)), *rstd = pair_new(N * sizeof(float));
    Pair *dx = pair_random(NC, 1.0f), *dw = pair_random(C, 1.0f);
    BACKENDS(w, o) {
        o->residual_norm_forward(F(out, w), NULL, C, NULL, NULL, F(rstd, w), NULL, F(x, w), NULL,
                                 0.0f, 0, F(wgt, w), NULL, 1e-5f, N, C);
        o->rmsnorm_backward(F(dx, w), NULL, F(dw, w), F(dout, w), F(x, w), NULL, F(wgt, w),
                            F(rstd, w), N, C, OPS_ADD);
    }
    NAME("rmsnorm N=%d C=%d", N, C);
    compare("out", out, GEMM_TOL);
    compare("rstd", rstd, GEMM_TOL);
    compare("dinp", dx, GEMM_TOL);
    compare("dw", dw, GEMM_TOL);
    pairs_free();
}

/* Qwen3's norm over each head, in place in rows ld apart (the columns past the heads stay), its
 * values before it into raw and rstd saved. */
static void test_head_norm(int N, int H, int HS, int ld) {
    Pair *x = pair_random((size_t)N * ld, 3.0f), *wgt = pair_random(HS, 1.0f);
    Pair *raw = pair_new((size_t)N * H * HS * sizeof(float)),
         *rstd = pair_new(N * H * sizeof(float));
    BACKENDS(w, o) {
        o->head_norm_forward(F(x, w), ld, F(raw, w), F(rstd, w), F(wgt, w), 1e-6f, N, H, HS);
    }
    NAME("head_norm N=%d H=%d HS=%d ld=%d", N, H, HS, ld);
    compare("x", x, GEMM_TOL);
    compare("raw", raw, GEMM_TOL);
    compare("rstd", rstd, GEMM_TOL);
    pairs_free();
}

/* SwiGLU (act ACT_SILU) or Gemma's GeGLU (ACT_GELU_TANH) over n values in rows of F: gate and up
 * (and their gradients) apart, or (joined) one buffer of rows [gate | up], 2F apart, as Phi-3's
 * gate_up_proj writes them */
static void test_glu(Activation act, size_t n, int F, int joined, int grads) {
    size_t room = joined ? 2 * n : n, off = joined ? (size_t)F : n; /* up's place after gate's */
    int ld = joined ? 2 * F : F;
    Pair *gu = pair_random(2 * n, 4.0f), *dy = pair_random(n, 1.0f);
    Pair *out = pair_new(n * sizeof(float));
    Pair *dgu = grads ? pair_random(room + (joined ? 0 : n), 1.0f) : NULL;
    BACKENDS(w, o) {
        float *dg = grads & G_DINP ? F(dgu, w) : NULL, *du = grads & G_DW ? F(dgu, w) + off : NULL;
        o->glu_forward(act, F(out, w), NULL, F, NULL, F(gu, w), F(gu, w) + off, n, F, ld);
        o->glu_backward(act, dg, du, NULL, F(dy, w), NULL, F(gu, w), F(gu, w) + off, NULL, n, F, ld,
                        OPS_ADD);
    }
    NAME("%s n=%zu F=%d joined=%d grads=%d", act == ACT_SILU ? "swiglu" : "geglu", n, F, joined,
         grads);
    compare("out", out, ELEM_TOL);
    if (dgu) compare("dgate|dup", dgu, ELEM_TOL);
    pairs_free();
}

/* x, W, bias and out `off` floats into their buffers */
static void test_matmul(int N, int C, int OC, int with_bias, int grads, int off) {
    Pair *x = pair_random((size_t)N * C + off, 1.0f), *W = pair_random((size_t)OC * C + off, 1.0f);
    Pair *bias = with_bias ? pair_random(OC + off, 1.0f) : NULL;
    Pair *out = pair_new(((size_t)N * OC + off) * sizeof(float));
    Pair *dout = pair_random((size_t)N * OC, 1.0f);
    Pair *dx = grads & G_DINP ? pair_random((size_t)N * C, 1.0f) : NULL;
    Pair *dW = grads & G_DW ? pair_random((size_t)OC * C, 1.0f) : NULL;
    Pair *db = with_bias && grads & G_DB ? pair_random(OC, 1.0f) : NULL;
    Pair *scratch = pair_new(ops_bias_scratch(N, OC) * sizeof(float));
    BACKENDS(w, o) {
        o->matmul_forward(FO(out, w, off), FO(x, w, off), FO(W, w, off), FO(bias, w, off), N, C,
                          OC);
        o->matmul_backward(F(dx, w), F(dW, w), F(dout, w), FO(x, w, off), FO(W, w, off), N, C, OC,
                           OPS_ADD);
        if (db) o->bias_backward(F(db, w), F(dout, w), NULL, OC, F(scratch, w), N, OC);
    }
    NAME("matmul N=%d C=%d OC=%d bias=%d grads=%d off=%d", N, C, OC, with_bias, grads, off);
    compare("out", out, GEMM_TOL);
    if (dx) compare("dinp", dx, GEMM_TOL);
    if (dW) compare("dw", dW, GEMM_TOL);
    if (db) compare("db", db, GEMM_TOL);
    pairs_free();
}

/* ---- packed frozen weights ---- */

/* A [rows, cols] matrix of ggml type `type`: quant_quantize of random values where loraft
 * quantises; for the K types random bytes with finite random f16 scales (at the offsets
 * quant_block.h reads d and dmin), so every code and packed scale occurs. */
static Pair *pair_packed(int type, int rows, int cols) {
    size_t n = (size_t)rows * cols, bb = quant_block_bytes(type);
    size_t bytes = n / quant_block_elems(type) * bb;
    uint8_t *h = malloc(bytes);
    float *x = malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = 3.0f * (2.0f * rng_next_uniform(&rng) - 1.0f);
    LfError err;
    if (quant_quantize(type, x, n, h, &err)) {
        for (size_t i = 0; i < bytes; i++) h[i] = (uint8_t)rng_next(&rng);
        for (size_t b = 0; b < bytes; b += bb) {
            size_t at = type == GGML_Q6_K ? 208 : 0, count = type == GGML_Q6_K ? 1 : 2;
            for (size_t k = 0; k < count; k++) {
                uint16_t d = f32_to_f16(0.01f * rng_next_uniform(&rng));
                h[b + at + 2 * k] = (uint8_t)d, h[b + at + 2 * k + 1] = (uint8_t)(d >> 8);
            }
        }
    }
    Pair *p = pair_upload(h, bytes);
    free(h);
    free(x);
    return p;
}

/* Rows row0 .. row0+rows-1 of a [total, cols] matrix, bit for bit. */
static void test_dequantize(int type, int total, int cols, int row0, int rows) {
    Pair *w = pair_packed(type, total, cols), *out = pair_new((size_t)rows * cols * sizeof(float));
    BACKENDS(b, o) o->dequantize_rows(F(out, b), w->mem[b], type, row0, rows, cols);
    NAME("dequantize_rows %s [%d,%d] rows %d..%d", quant_type_name(type), total, cols, row0,
         row0 + rows);
    compare("out", out, EXACT);
    pairs_free();
}

/* The same rows as bf16, bit for bit (the CPU rounds quant.c's decode to nearest even), rows ld
 * apart (the gaps stay zero). The halves are compared two at a time, as floats' bits. */
static void test_dequantize_bf16(int type, int total, int cols, int row0, int rows, int ld) {
    Pair *w = pair_packed(type, total, cols);
    Pair *out = pair_new((size_t)rows * ld * sizeof(uint16_t));
    BACKENDS(b, o) o->dequantize_rows_bf16(out->mem[b], w->mem[b], type, row0, rows, cols, ld);
    NAME("dequantize_rows_bf16 %s [%d,%d] rows %d..%d ld %d", quant_type_name(type), total, cols,
         row0, row0 + rows, ld);
    compare("out", out, EXACT);
    pairs_free();
}

/* rows x ld random bf16 values in [-amp, amp) */
static Pair *pair_bf16(size_t rows, size_t ld, float amp) {
    uint16_t *h = malloc(rows * ld * sizeof *h);
    for (size_t i = 0; i < rows * ld; i++)
        h[i] = f32_to_bf16(amp * (2.0f * rng_next_uniform(&rng) - 1.0f));
    Pair *p = pair_upload(h, rows * ld * sizeof *h);
    free(h);
    return p;
}

/* A bias gradient summed from an f32 output gradient and from a bf16 one whose rows are ld
 * apart (the last column block of a group's gradient rows), onto the gradient already there; the
 * GPU's row splits' partials added in order. */
static void test_bias_backward(int N, int OC, int ld) {
    Pair *dout = pair_random((size_t)N * ld, 1.0f), *d16 = pair_bf16(N, ld, 1.0f);
    Pair *db = pair_random(OC, 1.0f), *db16 = pair_random(OC, 1.0f);
    Pair *scratch = pair_new(ops_bias_scratch(N, OC) * sizeof(float));
    BACKENDS(w, o) {
        o->bias_backward(F(db, w), F(dout, w), NULL, ld, F(scratch, w), N, OC);
        o->bias_backward(F(db16, w), NULL, (const uint16_t *)d16->mem[w] + (ld - OC), ld,
                         F(scratch, w), N, OC);
    }
    NAME("bias_backward N=%d OC=%d ld=%d", N, OC, ld);
    compare("db", db, GEMM_TOL);
    compare("db (bf16)", db16, GEMM_TOL);
    pairs_free();
}

/* The embedding from a bf16 table (a frozen tied LM head stored in bf16 alone), with learned
 * positions or given ones, and token types: its values widened, then the same sums. */
static void test_embedding_bf16(int B, int T, int C, int with_types) {
    int V = 50, maxT = T + 3;
    Pair *ids = pair_ints((size_t)B * T, 0, V),
         *types = with_types ? pair_ints((size_t)B * T, 0, 2) : NULL,
         *pos = B == 1 ? pair_ints((size_t)T, 0, maxT) : NULL;
    Pair *wte = pair_bf16((size_t)V, (size_t)C, 1.0f), *wpe = pair_random((size_t)maxT * C, 1.0f);
    Pair *wtt = with_types ? pair_random(2 * (size_t)C, 1.0f) : NULL;
    Pair *out = pair_new((size_t)B * T * C * sizeof(float));
    BACKENDS(w, o) {
        o->embedding_forward(F(out, w), I(ids, w), I(types, w), I(pos, w), NULL,
                             (const uint16_t *)wte->mem[w], F(wpe, w), F(wtt, w), B, T, C);
    }
    NAME("embedding from a bf16 table B=%d T=%d C=%d types=%d positions=%d", B, T, C, with_types,
         pos != NULL);
    compare("out", out, ELEM_TOL);
    pairs_free();
}

/* The bf16 GEMMs' scratch for both backends: the larger of their two contracts. */
static Pair *bf16_scratch(int N, int C, int OC) {
    size_t a = ref->matmul_bf16_scratch(N, C, OC), b = dut->matmul_bf16_scratch(N, C, OC);
    return pair_new((a > b ? a : b) * sizeof(float));
}

/* ---- first writers: every op with an acc flag, given OPS_SET and a gradient buffer of NaNs
 * on both backends, overwrites it (a read of the old value would leave a NaN, which compare
 * counts as off); the values at each op's usual tolerance. ---- */

static void test_first_writers(int N, int C, int OC, int R) {
    size_t NC = (size_t)N * C;
    int K = OC + R;
    Pair *dout = pair_random((size_t)N * OC, 1.0f), *W = pair_random((size_t)OC * C, 1.0f);
    Pair *Wb = pair_bf16(K, C, 1.0f), *dd = pair_bf16(N, K, 1.0f), *x = pair_random(NC, 3.0f);
    Pair *g = pair_random(NC, 1.0f), *A = pair_random((size_t)R * C, 0.5f);
    Pair *B = pair_random((size_t)OC * R, 0.5f), *ddo = pair_new((size_t)N * K * 2);
    Pair *scratch = bf16_scratch(N, C, K);
    Pair *lora_scratch = pair_new(ops_lora_bf16_scratch(N, C, OC, R) * sizeof(float));
    Pair *du = pair_new((size_t)N * R * sizeof(float));
    Pair *lw = pair_random(C, 1.0f), *lb = pair_random(C, 1.0f), *ln = pair_new(NC * 4);
    Pair *mean = pair_new((size_t)N * 4), *rstd = pair_new((size_t)N * 4), *d[11];
    for (int i = 0; i < 11; i++) d[i] = pair_nan(NC);
    BACKENDS(w, o) {
        o->layernorm_forward(F(ln, w), F(mean, w), F(rstd, w), NULL, F(x, w), F(lw, w), F(lb, w),
                             1e-5f, N, C);
        o->layernorm_backward(F(d[8], w), NULL, NULL, NULL, F(g, w), F(x, w), NULL, F(lw, w),
                              F(mean, w), F(rstd, w), N, C, OPS_SET);
        o->residual_norm_forward(F(ln, w), NULL, C, NULL, NULL, F(rstd, w), NULL, F(x, w), NULL,
                                 0.0f, 0, F(lw, w), NULL, 1e-5f, N, C);
        o->rmsnorm_backward(F(d[9], w), NULL, NULL, F(g, w), F(x, w), NULL, F(lw, w), F(rstd, w), N,
                            C, OPS_SET);
        o->dropout_backward(F(d[10], w), NULL, F(g, w), 0.3f, 9, NC, OPS_SET);
        o->matmul_backward(F(d[0], w), NULL, F(dout, w), NULL, F(W, w), N, C, OC, OPS_SET);
        o->matmul_backward_bf16(F(d[1], w), NULL, dd->mem[w], K, Wb->mem[w], C, F(scratch, w), N, C,
                                K, OPS_SET);
        OpsLoraBackward lin = {
            .dout = F(dout, w), .B = F(B, w), .du = F(du, w), .seed = 7, .OC = OC, .du_col = OC};
        o->lora_backward_bf16(ddo->mem[w], OC + R, &lin, 1, F(x, w), NULL, 0, 0.5f, 0.3f,
                              F(lora_scratch, w), N, C, R);
        const uint64_t seed = 7;
        for (int k = 0; k < 2; k++) /* at p 0.3 and 0 */
            o->lora_dinp_bf16(F(d[2 + k], w), NULL, (const float *const[]){F(du, w)},
                              (const float *const[]){F(A, w)}, &seed, 1, k ? 0.0f : 0.3f, N, C, R,
                              OPS_SET);
        o->activation_backward(F(d[4], w), NULL, F(x, w), NULL, NULL, F(g, w), NULL, ACT_GELU, NC,
                               C, OPS_SET);
        o->activation_backward(F(d[5], w), NULL, F(x, w), NULL, NULL, F(g, w), NULL, ACT_SILU, NC,
                               C, OPS_SET);
        o->glu_backward(ACT_SILU, F(d[6], w), F(d[7], w), NULL, F(g, w), NULL, F(x, w), F(x, w),
                        NULL, NC, C, C, OPS_SET);
    }
    static const char *names[11] = {"matmul", "matmul_bf16", "lora p>0", "lora p=0", "gelu", "silu",
                                    "dgate",  "dup",         "ln",       "rms",      "drop"};
    NAME("first writers (OPS_SET over NaN) N=%d C=%d OC=%d R=%d", N, C, OC, R);
    for (int i = 0; i < 4; i++) compare(names[i], d[i], GEMM_TOL);
    for (int i = 4; i < 8; i++) compare(names[i], d[i], ELEM_TOL);
    for (int i = 8; i < 11; i++) compare(names[i], d[i], GEMM_TOL);
    pairs_free();
}

/* ---- LoRA branch ---- */
/* grads: G_DINP, G_DW (dA), G_DB (dB) */
static void test_lora(int N, int C, int OC, int R, float p, int grads) {
    size_t NC = (size_t)N * C;
    Pair *x = pair_random(NC, 1.0f), *A = pair_random((size_t)R * C, 0.5f);
    Pair *Bw = pair_random((size_t)OC * R, 0.5f), *out = pair_random((size_t)N * OC, 1.0f);
    Pair *u = pair_new((size_t)N * R * sizeof(float)), *dout = pair_random((size_t)N * OC, 1.0f);
    Pair *scratch = pair_new(ops_lora_scratch(N, C, R) * sizeof(float));
    Pair *dx = grads & G_DINP ? pair_random(NC, 1.0f) : NULL;
    Pair *dA = grads & G_DW ? pair_random((size_t)R * C, 1.0f) : NULL;
    Pair *dB = grads & G_DB ? pair_random((size_t)OC * R, 1.0f) : NULL;
    float scale = 2.0f / R;
    BACKENDS(w, o) {
        o->lora_forward(F(out, w), F(u, w), F(x, w), F(A, w), F(Bw, w), scale, p, 77, F(scratch, w),
                        N, C, OC, R);
    }
    NAME("lora_forward N=%d C=%d OC=%d R=%d p=%.1f", N, C, OC, R, p);
    compare("out", out, GEMM_TOL);
    compare("u", u, GEMM_TOL);
    BACKENDS(w, o) {
        o->lora_backward(F(dx, w), F(dA, w), F(dB, w), F(dout, w), F(x, w), F(u, w), F(A, w),
                         F(Bw, w), scale, p, 77, F(scratch, w), N, C, OC, R);
    }
    NAME("lora_backward N=%d C=%d OC=%d R=%d p=%.1f grads=%d", N, C, OC, R, p, grads);
    if (dx) compare("dinp", dx, GEMM_TOL);
    if (dA) compare("dA", dA, GEMM_TOL);
    if (dB) compare("dB", dB, GEMM_TOL);
    pairs_free();
}

/* Every element within frac * the largest |cpu| value of its tensor (the bf16 and TF32 checks). */
static void compare_scaled(const char *tensor, const Pair *p, double frac) {
    size_t n = p->bytes / sizeof(float);
    float *a = malloc(p->bytes);
    ref->download(a, p->mem[0], p->bytes);
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fabs(a[i]) > mx ? fabs(a[i]) : mx;
    free(a);
    compare(tensor, p, frac * mx, 0.0);
}

/* bf16 values: equal, except that a value rounded from an f32 that the backends' summation
 * orders left a bit apart may land one bf16 step away (2^-7 relative at most), plus atol where
 * that f32 has an absolute tolerance of its own (a sum that cancels to near 0 has no relative
 * accuracy left). */
static void compare_bf16(const char *tensor, const Pair *p, double atol) {
    size_t n = p->bytes / sizeof(uint16_t), bad = 0, inexact = 0;
    uint16_t *a = malloc(p->bytes), *b = malloc(p->bytes);
    ref->download(a, p->mem[0], p->bytes);
    dut->download(b, p->mem[1], p->bytes);
    status_ok();
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue;
        inexact++;
        double x = bf16_to_f32(a[i]), y = bf16_to_f32(b[i]);
        bad += !(fabs(x - y) <= fabs(x) / 128 + atol);
    }
    printf("%-58s %-6s n=%-8zu %zu one bf16 step apart\n", op_name, tensor, n, inexact);
    if (bad) fprintf(stderr, "  %s: %s: %zu of %zu values off\n", op_name, tensor, bad, n);
    CHECK(bad == 0);
    free(a);
    free(b);
}

/* n bf16 values, every one 0xabab: rows a writer must leave alone in part */
static Pair *pair_poisoned_bf16(size_t n) {
    uint16_t *h = malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = 0xabab;
    Pair *p = pair_upload(h, n * sizeof *h);
    free(h);
    return p;
}

/* gate and up as one GEMM writes them, rows [gate | up] of 2F: out, its bf16 copy and the
 * saved [bf16(gate) | bf16(up)] as from buffers of their own; then the bf16 copy alone into rows
 * F + 3 apart (an adapted linear's input copy: the columns past F untouched) */
static void test_swiglu_rows(int N, int F) {
    size_t n = (size_t)N * F;
    Pair *gu = pair_random(2 * n, 4.0f), *out = pair_new(n * sizeof(float));
    Pair *ob = pair_new(n * 2), *sv = pair_new(2 * n * 2), *wide = pair_poisoned_bf16(n + 3 * N);
    BACKENDS(w, o) {
        o->glu_forward(ACT_SILU, F(out, w), ob->mem[w], F, sv->mem[w], F(gu, w), F(gu, w) + F, n, F,
                       2 * F);
        o->glu_forward(ACT_SILU, NULL, wide->mem[w], F + 3, NULL, F(gu, w), F(gu, w) + F, n, F,
                       2 * F);
    }
    NAME("swiglu, [gate | up] rows, N=%d F=%d", N, F);
    compare("out", out, ELEM_TOL);
    compare_bf16("out_bf16", ob, 1e-5);
    compare_bf16("saved", sv, 0.0);
    compare_bf16("out_bf16 rows F + 3 apart", wide, 1e-5);
    pairs_free();
}

/* The residual stream's norm of x = drop(a; p) + b: layer norm, or RMS norm (rms); the sum kept
 * over a (in place) or not kept. xhat's bf16 copies: compare_bf16 (the statistics' last bits). */
static void test_residual_norm(int N, int C, int rms, float p, int keep) {
    size_t NC = (size_t)N * C;
    Pair *a = pair_random(NC, 2.0f), *b = pair_random(NC, 2.0f), *wgt = pair_random(C, 1.0f);
    Pair *bias = rms ? NULL : pair_random(C, 1.0f), *out = pair_new(NC * sizeof(float));
    Pair *mean = rms ? NULL : pair_new(N * sizeof(float)), *rstd = pair_new(N * sizeof(float));
    Pair *xh = pair_new(NC * sizeof(uint16_t)), *outb = pair_new(NC * sizeof(uint16_t));
    Pair *rows = keep ? pair_poisoned_bf16(NC + 3 * N) : NULL, *sum = pair_new(NC * 4);
    BACKENDS(w, o) {
        if (rows) /* out NULL, the sum apart: bf16(out) alone, rows C + 3 apart */
            o->residual_norm_forward(NULL, rows->mem[w], C + 3, F(sum, w), F(mean, w), F(rstd, w),
                                     NULL, F(a, w), F(b, w), p, 21, F(wgt, w), F(bias, w), 1e-5f, N,
                                     C);
        o->residual_norm_forward(F(out, w), outb->mem[w], C, keep ? F(a, w) : NULL, F(mean, w),
                                 F(rstd, w), xh->mem[w], F(a, w), F(b, w), p, 21, F(wgt, w),
                                 F(bias, w), 1e-5f, N, C);
    }
    NAME("residual_norm %s N=%d C=%d p=%.1f keep=%d", rms ? "rms" : "layer", N, C, p, keep);
    compare("out", out, GEMM_TOL);
    if (mean) compare("mean", mean, GEMM_TOL);
    compare("rstd", rstd, GEMM_TOL);
    compare_bf16("xhat", xh, 1e-6);
    compare_bf16("out_bf16", outb, 1e-6);
    if (rows) compare_bf16("out_bf16 rows C + 3 apart", rows, 1e-6);
    if (keep) compare("sum", a, ELEM_TOL); /* one multiply-add apart at most */
    pairs_free();
}

/* ---- activations kept in bf16 for backward (model.precision bf16) ----
 * Forward writes bf16 copies beside its output (compare_bf16: an input's are the same rounding
 * of the same value; a norm's xhat may be a step apart where the f32 statistics differ in the
 * last bits). Backward then reads the copies, given no f32 input: both sides get the CPU's, and
 * agree at the f32 tolerances of the ops' own tests. */
/* The GPU's copy of p becomes the CPU's. */
static void take_ref(Pair *p) {
    void *h = malloc(p->bytes);
    ref->download(h, p->mem[0], p->bytes);
    dut->upload(p->mem[1], h, p->bytes);
    free(h);
}

static void test_saved_bf16(int N, int C) {
    size_t n = (size_t)N * C;
    Pair *x = pair_random(n, 3.0f), *u = pair_random(n, 2.0f), *dout = pair_random(n, 1.0f);
    Pair *wgt = pair_random(C, 1.0f), *bias = pair_random(C, 1.0f), *out = pair_new(n * 4);
    Pair *mean = pair_new(N * sizeof(float)), *rstd = pair_new(N * sizeof(float));
    Pair *xh = pair_new(n * sizeof(uint16_t)), *sv = pair_new(2 * n * sizeof(uint16_t));
    Pair *xb = pair_new(n * sizeof(uint16_t));
    Pair *dx = pair_random(n, 1.0f), *dw = pair_random(C, 1.0f), *db = pair_random(C, 1.0f);
    BACKENDS(w, o) {
        o->layernorm_forward(F(out, w), F(mean, w), F(rstd, w), xh->mem[w], F(x, w), F(wgt, w),
                             F(bias, w), 1e-5f, N, C);
    }
    NAME("layernorm, xhat saved in bf16, N=%d C=%d", N, C);
    compare("out", out, GEMM_TOL);
    compare_bf16("xhat", xh, 1e-6);
    take_ref(xh);
    BACKENDS(w, o) {
        o->layernorm_backward(F(dx, w), NULL, F(dw, w), F(db, w), F(dout, w), NULL, xh->mem[w],
                              F(wgt, w), F(mean, w), F(rstd, w), N, C, OPS_ADD);
    }
    compare("dinp", dx, GEMM_TOL);
    compare("dw", dw, GEMM_TOL);
    compare("db", db, GEMM_TOL);
    BACKENDS(w, o) { /* the norm alone (no residual), its out in bf16 too */
        o->residual_norm_forward(F(out, w), xb->mem[w], C, NULL, NULL, F(rstd, w), xh->mem[w],
                                 F(x, w), NULL, 0.0f, 0, F(wgt, w), NULL, 1e-5f, N, C);
    }
    NAME("rmsnorm, xhat saved in bf16, N=%d C=%d", N, C);
    compare("out", out, GEMM_TOL);
    compare_bf16("xhat", xh, 1e-6);
    compare_bf16("out_bf16", xb, 1e-6);
    take_ref(xh);
    BACKENDS(w, o) {
        o->rmsnorm_backward(F(dx, w), xb->mem[w], F(dw, w), F(dout, w), NULL, xh->mem[w], F(wgt, w),
                            F(rstd, w), N, C, OPS_ADD);
    }
    compare("dinp", dx, GEMM_TOL);
    compare("dw", dw, GEMM_TOL);
    compare_bf16("dinp_bf16", xb, 1e-6); /* the sum's bf16 copy, for the GEMM after it */
    for (int a = ACT_GELU; a <= ACT_GELU_TANH; a++) {
        BACKENDS(w, o) {
            o->activation_forward(F(out, w), NULL, C, xh->mem[w], F(x, w), NULL, (Activation)a, n,
                                  C);
            o->activation_backward(F(dx, w), NULL, NULL, xh->mem[w], NULL, F(dout, w), NULL,
                                   (Activation)a, n, C, OPS_ADD);
        }
        NAME("activation %d, input saved in bf16, n=%zu", a, n);
        compare("out", out, ELEM_TOL);
        compare_bf16("inp", xh, 0.0);
        compare("dinp", dx, ELEM_TOL);
    }
    for (int a = ACT_GELU; a <= ACT_GELU_TANH; a++) { /* xh as a bf16 GEMM's output, no bias */
        BACKENDS(w, o) {
            o->activation_forward(F(out, w), xb->mem[w], C, xh->mem[w], NULL, F(bias, w),
                                  (Activation)a, n, C);
            o->activation_backward(F(dx, w), NULL, NULL, xh->mem[w], F(bias, w), F(dout, w), NULL,
                                   (Activation)a, n, C, OPS_SET);
        }
        NAME("activation %d, from saved bf16 + bias, n=%zu", a, n);
        compare("out", out, ELEM_TOL);
        compare_bf16("out_bf16", xb, 1e-5);
        compare("dinp", dx, ELEM_TOL);
        take_ref(xb); /* as the gradient the GEMM after wrote in bf16 */
        BACKENDS(w, o) {
            o->activation_backward(F(dx, w), NULL, NULL, xh->mem[w], F(bias, w), NULL, xb->mem[w],
                                   (Activation)a, n, C, OPS_SET);
        }
        NAME("activation %d, its gradient in bf16, n=%zu", a, n);
        compare("dinp", dx, ELEM_TOL);
    }
    BACKENDS(w, o) {
        o->glu_forward(ACT_SILU, F(out, w), NULL, C, sv->mem[w], F(x, w), F(u, w), n, C, C);
        o->glu_backward(ACT_SILU, F(dx, w), F(u, w), NULL, F(dout, w), NULL, NULL, NULL, sv->mem[w],
                        n, C, C, OPS_ADD); /* u: dup */
    }
    NAME("swiglu, gate and up saved in bf16, n=%zu", n);
    compare("out", out, ELEM_TOL);
    compare_bf16("gate|up", sv, 0.0);
    compare("dgate", dx, ELEM_TOL);
    compare("dup", u, ELEM_TOL);
    BACKENDS(w, o)
    o->glu_forward(ACT_SILU, F(out, w), xb->mem[w], C, sv->mem[w], NULL, NULL, n, C, C);
    NAME("swiglu, from gate and up's bf16 rows, n=%zu", n);
    compare("out", out, ELEM_TOL);
    compare_bf16("out_bf16", xb, 1e-5);
    take_ref(xb); /* as the gradient the GEMM after wrote in bf16 */
    BACKENDS(w, o) {
        o->glu_backward(ACT_SILU, F(dx, w), F(u, w), NULL, NULL, xb->mem[w], NULL, NULL, sv->mem[w],
                        n, C, C, OPS_SET);
    }
    NAME("swiglu, its gradient in bf16, n=%zu", n);
    compare("dgate", dx, ELEM_TOL);
    compare("dup", u, ELEM_TOL);
    pairs_free();
}

/* ---- outputs written in bf16 for the bf16 GEMM that reads them next ----
 * The FFN's activation and SwiGLU write bf16(out) forward and bf16(dinp) backward instead of
 * f32, and dropout bf16(dinp) backward (the model's non-adapted linears then need no rounding
 * pass). Given alone, each copy is
 * the backends' f32 result rounded (compare_bf16 at ELEM_TOL's atol); given beside the f32
 * output, the GPU's copy is that output rounded, bit for bit: check_rounded, or where the
 * copy's rows of F values are ld apart from column col of b, check_rounded_rows. */
static void check_rounded_rows(const char *tensor, const Pair *f, const Pair *b, size_t n, size_t F,
                               size_t col, size_t ld) {
    float *x = malloc(n * sizeof *x);
    uint16_t *h = malloc(b->bytes);
    dut->download(x, f->mem[1], n * sizeof *x);
    dut->download(h, b->mem[1], b->bytes);
    status_ok();
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += h[i / F * ld + col + i % F] != f32_to_bf16(x[i]);
    printf("%-58s %-6s n=%-8zu bf16 = f32 rounded\n", op_name, tensor, n);
    if (bad)
        fprintf(stderr, "  %s: %s: %zu of %zu copies not the f32 rounded\n", op_name, tensor, bad,
                n);
    CHECK(bad == 0);
    free(x);
    free(h);
}
static void check_rounded(const char *tensor, const Pair *f, const Pair *b, size_t n) {
    check_rounded_rows(tensor, f, b, n, n, 0, n);
}

/* A GEMM's bf16 output b (rows of F values ld apart) against the same GEMM's f32 output f, on
 * each backend: within half a bf16 step of it (2^-8 of it at most), plus 1e-5 of f's largest value
 * where cuBLAS sums in another order for a bf16 C; the columns past F left at 0xabab. */
static void check_gemm_rounded(const char *tensor, const Pair *f, const Pair *b, size_t n, size_t F,
                               size_t ld) {
    float *x = malloc(n * sizeof *x);
    uint16_t *h = malloc(b->bytes);
    size_t bad = 0;
    for (int w = 0; w < 2; w++) {
        const Ops *o = w ? dut : ref;
        o->download(x, f->mem[w], n * sizeof *x);
        o->download(h, b->mem[w], b->bytes);
        status_ok();
        double mx = 0.0;
        for (size_t i = 0; i < n; i++) mx = fabs(x[i]) > mx ? fabs(x[i]) : mx;
        for (size_t i = 0; i < n; i++) {
            double got = bf16_to_f32(h[i / F * ld + i % F]);
            bad += !(fabs(got - x[i]) <= fabs(x[i]) / 256 + 1e-5 * mx);
        }
        for (size_t r = 0; r < n / F; r++)
            for (size_t c = F; c < ld; c++) bad += h[r * ld + c] != 0xabab;
    }
    printf("%-58s %-6s n=%-8zu bf16 = f32 rounded once\n", op_name, tensor, n);
    if (bad) fprintf(stderr, "  %s: %s: %zu values off\n", op_name, tensor, bad);
    CHECK(bad == 0);
    free(x);
    free(h);
}

/* model.precision bf16: out = x W^T + bias with bf16 x and W, dinp += bf16([dout | du]) W; rows
 * of x and W ldx and ldw apart (what lies between must not count: random values), out's OC + R
 * (a group's outputs side by side: the columns past OC keep their values), W [OC+R,C]
 * (with R > 0 a weight with LoRA's A below: dd [bf16(dout) | bf16(du)], the fused backward, rows
 * OC + R + 1 apart). */
static void test_matmul_bf16(int N, int C, int OC, int with_bias, int ldx, int ldw, int R,
                             int off) {
    Pair *W = pair_bf16(OC + R, ldw, 1.0f), *x = pair_bf16(N, ldx, 1.0f);
    Pair *bias = with_bias ? pair_random(OC + off, 1.0f) : NULL;
    Pair *out = pair_random((size_t)N * (OC + R) + off, 1.0f);
    int ldd = OC + R + 1;
    Pair *dd = pair_bf16(N, ldd, 1.0f), *dx = pair_random((size_t)N * C, 1.0f);
    Pair *scratch = bf16_scratch(N, C, OC + R);
    BACKENDS(w, o) {
        o->matmul_forward_bf16(FO(out, w, off), NULL, OC + R, x->mem[w], ldx, W->mem[w], ldw,
                               FO(bias, w, off), F(scratch, w), N, C, OC);
        o->matmul_backward_bf16(F(dx, w), NULL, dd->mem[w], ldd, W->mem[w], ldw, F(scratch, w), N,
                                C, OC + R, OPS_ADD);
    }
    NAME("matmul_bf16 N=%d C=%d OC=%d bias=%d ldx=%d ldw=%d R=%d off=%d", N, C, OC, with_bias, ldx,
         ldw, R, off);
    compare("out", out, GEMM_TOL);
    compare("dinp", dx, GEMM_TOL);
    /* dinp in bf16 (an activation's backward reads it so): the f32 one's sums rounded */
    Pair *dxb = pair_poisoned_bf16((size_t)N * C);
    BACKENDS(w, o) {
        o->matmul_backward_bf16(F(dx, w), NULL, dd->mem[w], ldd, W->mem[w], ldw, F(scratch, w), N,
                                C, OC + R, OPS_SET);
        o->matmul_backward_bf16(NULL, dxb->mem[w], dd->mem[w], ldd, W->mem[w], ldw, F(scratch, w),
                                N, C, OC + R, OPS_SET);
    }
    check_gemm_rounded("dinp_bf16", dx, dxb, (size_t)N * C, (size_t)C, (size_t)C);
    compare_bf16("dinp_bf16", dxb, 1e-5);
    pairs_free();
}

/* Under the emulation: the biased GEMMs' cuBLASLt plans (backend.cu) are kept, and cuBLASLt
 * declining a GEMM (LORAFT_EMU_LT_REFUSE, cublasLt.h: the heuristic finds no algorithm, or
 * cublasLtMatmul refuses to run) leaves the GEMM + bias pass, whose results match the CPU's at
 * GEMM_TOL as every matmul's do. Each case runs three fp32 and three bf16 biased linears of one
 * shape not used elsewhere here (so no plan exists yet) and counts cuBLASLt's calls: the heuristic
 * is asked once per type, and cublasLtMatmul runs every call (3 + 3), never (heuristic refused) or
 * once per type (refused, then remembered). */
static void test_lt_plans(const char *refuse, int N, int C, int OC, long long want_matmuls) {
    if (refuse) setenv("LORAFT_EMU_LT_REFUSE", refuse, 1);
    long long h0 = loraft_cuda_emu_count("lt_heuristics"), m0 = loraft_cuda_emu_count("lt_matmuls");
    for (int i = 0; i < 3; i++) {
        test_matmul(N, C, OC, 1, G_DB, 0);
        test_matmul_bf16(N, C, OC, 1, C, C, 0, 0);
    }
    long long h = loraft_cuda_emu_count("lt_heuristics") - h0,
              m = loraft_cuda_emu_count("lt_matmuls") - m0;
    printf(
        "cuBLASLt plans, LORAFT_EMU_LT_REFUSE=%s: 6 biased linears, %lld heuristic queries, %lld "
        "cublasLtMatmul calls\n",
        refuse ? refuse : "(unset)", h, m);
    CHECK(h == 2);
    CHECK(m == want_matmuls);
    unsetenv("LORAFT_EMU_LT_REFUSE");
}

/* The norms' bf16 copies: layernorm_backward's dinp alone (on the same statistics, mean and
 * rstd), then beside the f32 dinp it is added to; residual_norm_forward's out. */
static void test_norm_grad_bf16(int N, int C) {
    size_t NC = (size_t)N * C;
    Pair *x = pair_random(NC, 3.0f), *wgt = pair_random(C, 1.0f), *dout = pair_random(NC, 1.0f);
    Pair *mean = pair_random(N, 0.5f), *rstd = pair_random(N, 1.0f);
    Pair *dx = pair_random(NC, 1.0f), *dxb = pair_new(NC * sizeof(uint16_t));
    BACKENDS(w, o) {
        o->layernorm_backward(NULL, dxb->mem[w], NULL, NULL, F(dout, w), F(x, w), NULL, F(wgt, w),
                              F(mean, w), F(rstd, w), N, C, OPS_SET);
    }
    NAME("layernorm_backward, dinp in bf16 only, N=%d C=%d", N, C);
    compare_bf16("dinp_bf16", dxb, 1e-6);
    BACKENDS(w, o) {
        o->layernorm_backward(F(dx, w), dxb->mem[w], NULL, NULL, F(dout, w), F(x, w), NULL,
                              F(wgt, w), F(mean, w), F(rstd, w), N, C, OPS_ADD);
    }
    NAME("layernorm_backward, dinp added to and copied to bf16, N=%d C=%d", N, C);
    compare("dinp", dx, GEMM_TOL);
    check_rounded("dinp", dx, dxb, NC);
    Pair *out = pair_new(NC * sizeof(float));
    BACKENDS(w, o) {
        o->residual_norm_forward(F(out, w), dxb->mem[w], C, NULL, F(mean, w), F(rstd, w), NULL,
                                 F(x, w), F(dout, w), 0.1f, 3, F(wgt, w), NULL, 1e-5f, N, C);
    }
    NAME("residual_norm, out copied to bf16, N=%d C=%d", N, C);
    compare("out", out, GEMM_TOL);
    check_rounded("out", out, dxb, NC);
    pairs_free();
}

/* n values, rows of F (SwiGLU's input gradients: [dgate | dup] rows of 2F) */
static void test_bf16_outputs(size_t n, int F) {
    Pair *x = pair_random(n, 3.0f), *u = pair_random(n, 2.0f), *dout = pair_random(n, 1.0f);
    Pair *out = pair_new(n * sizeof(float)), *dx = pair_random(n, 1.0f), *du = pair_random(n, 1.0f);
    Pair *ob = pair_new(n * sizeof(uint16_t)), *gu = pair_new(2 * n * sizeof(uint16_t));
    Pair *wide = pair_poisoned_bf16(n + 3 * (n / F)); /* rows F + 3 apart: an input copy's */
    for (int a = ACT_GELU; a <= ACT_SILU; a++) {
        NAME("activation %d, bf16 output, n=%zu", a, n);
        BACKENDS(w, o)
        o->activation_forward(NULL, ob->mem[w], F, NULL, F(x, w), NULL, (Activation)a, n, F);
        compare_bf16("out", ob, 1e-5);
        BACKENDS(w, o) {
            o->activation_forward(NULL, wide->mem[w], F + 3, NULL, F(x, w), NULL, (Activation)a, n,
                                  F);
        }
        compare_bf16("out rows F + 3 apart", wide, 1e-5);
        BACKENDS(w, o) {
            o->activation_forward(F(out, w), ob->mem[w], F, NULL, F(x, w), NULL, (Activation)a, n,
                                  F);
        }
        check_rounded("out", out, ob, n);
        BACKENDS(w, o) {
            o->activation_backward(NULL, ob->mem[w], F(x, w), NULL, NULL, F(dout, w), NULL,
                                   (Activation)a, n, F, OPS_SET);
        }
        compare_bf16("dinp", ob, 1e-5);
        BACKENDS(w, o) {
            o->activation_backward(F(dx, w), ob->mem[w], F(x, w), NULL, NULL, F(dout, w), NULL,
                                   (Activation)a, n, F, OPS_ADD);
        }
        compare("dinp", dx, ELEM_TOL);
        check_rounded("dinp", dx, ob, n);
    }
    NAME("dropout_backward, bf16 output, n=%zu", n);
    BACKENDS(w, o) o->dropout_backward(NULL, ob->mem[w], F(dout, w), 0.1f, 9, n, OPS_SET);
    compare_bf16("dinp", ob, 0.0);
    BACKENDS(w, o) o->dropout_backward(F(dx, w), ob->mem[w], F(dout, w), 0.1f, 9, n, OPS_ADD);
    compare("dinp", dx, ELEM_TOL);
    check_rounded("dinp", dx, ob, n);
    NAME("swiglu, bf16 outputs, n=%zu", n);
    BACKENDS(w, o) o->glu_forward(ACT_SILU, NULL, ob->mem[w], F, NULL, F(x, w), F(u, w), n, F, F);
    compare_bf16("out", ob, 1e-5);
    BACKENDS(w, o)
    o->glu_forward(ACT_SILU, F(out, w), ob->mem[w], F, NULL, F(x, w), F(u, w), n, F, F);
    check_rounded("out", out, ob, n);
    BACKENDS(w, o) {
        o->glu_backward(ACT_SILU, NULL, NULL, gu->mem[w], F(dout, w), NULL, F(x, w), F(u, w), NULL,
                        n, F, F, OPS_SET);
    }
    compare_bf16("dg|du", gu, 1e-5);
    BACKENDS(w, o) {
        o->glu_backward(ACT_SILU, F(dx, w), F(du, w), gu->mem[w], F(dout, w), NULL, F(x, w),
                        F(u, w), NULL, n, F, F, OPS_ADD);
    }
    compare("dgate", dx, ELEM_TOL);
    compare("dup", du, ELEM_TOL);
    check_rounded_rows("dgate", dx, gu, n, F, 0, 2 * (size_t)F);
    check_rounded_rows("dup", du, gu, n, F, F, 2 * (size_t)F);
    pairs_free();
}

/* round_bf16_many: copies of odd shapes into rows ld > cols apart, in one call, bitwise equal,
 * the values between the rows kept; each backend's table in its own memory, as the model keeps
 * it. */
static void test_round_bf16_many(void) {
    enum { COPIES = 3 };
    static const int shape[COPIES][3] = {{5, 3, 8}, {1, 67, 72}, {37, 8, 584}}; /* rows, cols, ld */
    Pair *src[COPIES], *dst[COPIES], *table = pair_new(COPIES * sizeof(OpsBf16Copy));
    for (int i = 0; i < COPIES; i++) {
        src[i] = pair_random((size_t)shape[i][0] * shape[i][1], 3.0f);
        dst[i] = pair_bf16((size_t)shape[i][0], (size_t)shape[i][2], 1.0f);
    }
    BACKENDS(w, o) {
        OpsBf16Copy host[COPIES];
        for (int i = 0; i < COPIES; i++)
            host[i] =
                (OpsBf16Copy){F(src[i], w), dst[i]->mem[w], shape[i][0], shape[i][1], shape[i][2]};
        o->upload(table->mem[w], host, sizeof host);
        o->round_bf16_many(table->mem[w], COPIES);
    }
    NAME("round_bf16_many, %d copies", COPIES);
    for (int i = 0; i < COPIES; i++) compare("dst", dst[i], EXACT);
    pairs_free();
}

/* lora_down_bf16 with inp NULL (a norm wrote x's columns of the copy): from the CPU's copy xb,
 * its u columns poisoned, on both backends: u within GEMM_TOL, the copy as test_lora_fused's. */
static void test_lora_down_from_copy(const Pair *xb, Pair *const *A, int n, const uint64_t *seeds,
                                     float scale, float p, int N, int C, int R) {
    size_t ld = (size_t)C + (size_t)n * R;
    uint16_t *h = malloc(xb->bytes);
    ref->download(h, xb->mem[0], xb->bytes);
    for (int r = 0; r < N; r++) memset(h + r * ld + C, 0xff, (size_t)n * R * sizeof *h);
    Pair *copy = pair_upload(h, xb->bytes), *scratch = pair_new(ops_lora_scratch(N, C, R) * 4);
    free(h);
    Pair *u[OPS_LORA_GROUP_MAX];
    for (int j = 0; j < n; j++) u[j] = pair_new((size_t)N * R * sizeof(float));
    BACKENDS(w, o) {
        float *us[OPS_LORA_GROUP_MAX];
        const float *As[OPS_LORA_GROUP_MAX];
        for (int j = 0; j < n; j++) us[j] = F(u[j], w), As[j] = F(A[j], w);
        o->lora_down_bf16(copy->mem[w], us, As, seeds, n, NULL, scale, p, F(scratch, w), N, C, R);
    }
    NAME("lora_down_bf16 from the copy N=%d C=%d R=%d n=%d p=%.1f", N, C, R, n, p);
    compare_bf16("xb", copy, scale * 1e-4);
    for (int j = 0; j < n; j++) compare("u", u[j], GEMM_TOL);
}

/* ---- LoRA fused into the bf16 GEMM (model.precision bf16) ----
 * n linears of one input x [N,C], each with its own A, B and dropout seed, as linear_forward runs
 * them: lora_down_bf16 (u, and x's copy [bf16(x) | bf16(scale u_0) | ..], ld C + nR), each B
 * rounded into its R columns of the group's weight block [W_j | 0 .. B_j .. 0]
 * (dequantize_rows_bf16 of f32 rows; the others' columns zero), then one GEMM a linear over C + nR
 * columns, out_j = x W_j^T + scale u_j B_j^T, and one for the group into its outputs side by side.
 * u within GEMM_TOL, the copy as compare_bf16 says, the outputs within 1e-3 of their largest value
 * (a u value rounded one bf16 step apart on the two backends moves out by 2^-8 of that one term).
 */
static void test_lora_fused(int N, int C, int OC, int R, int n, float p) {
    int ld = C + n * R;
    float scale = 2.0f / R;
    Pair *x = pair_random((size_t)N * C, 1.0f), *xb = pair_new((size_t)N * ld * 2);
    Pair *scratch = pair_new(ops_lora_scratch(N, C, R) * sizeof(float));
    Pair *gemm_scratch = bf16_scratch(N, ld, n * OC);
    float *zeros = calloc((size_t)OC * n * R, sizeof *zeros);
    Pair *room = pair_upload(zeros, (size_t)OC * n * R * sizeof *zeros);
    free(zeros);
    Pair *A[OPS_LORA_GROUP_MAX], *u[OPS_LORA_GROUP_MAX], *Bw[OPS_LORA_GROUP_MAX];
    Pair *W = pair_bf16((size_t)n * OC, ld, 1.0f), *out[OPS_LORA_GROUP_MAX];
    Pair *outs = pair_new((size_t)N * n * OC * sizeof(float));
    uint64_t seeds[OPS_LORA_GROUP_MAX];
    for (int j = 0; j < n; j++) {
        A[j] = pair_random((size_t)R * C, 0.5f), Bw[j] = pair_random((size_t)OC * R, 0.5f);
        u[j] = pair_new((size_t)N * R * sizeof(float));
        out[j] = pair_new((size_t)N * OC * sizeof(float)), seeds[j] = 77 + 13 * j;
    }
    BACKENDS(w, o) {
        float *us[OPS_LORA_GROUP_MAX];
        const float *As[OPS_LORA_GROUP_MAX];
        for (int j = 0; j < n; j++) us[j] = F(u[j], w), As[j] = F(A[j], w);
        o->lora_down_bf16(xb->mem[w], us, As, seeds, n, F(x, w), scale, p, F(scratch, w), N, C, R);
        for (int j = 0; j < n; j++) {
            uint16_t *Wj = (uint16_t *)W->mem[w] + (size_t)j * OC * ld;
            o->dequantize_rows_bf16(Wj + C, F(room, w), GGML_F32, 0, OC, n * R, ld);
            o->dequantize_rows_bf16(Wj + C + j * R, F(Bw[j], w), GGML_F32, 0, OC, R, ld);
        }
        for (int j = 0; j < n; j++)
            o->matmul_forward_bf16(F(out[j], w), NULL, OC, xb->mem[w], ld,
                                   (uint16_t *)W->mem[w] + (size_t)j * OC * ld, ld, NULL,
                                   F(gemm_scratch, w), N, ld, OC);
        o->matmul_forward_bf16(F(outs, w), NULL, n * OC, xb->mem[w], ld, W->mem[w], ld, NULL,
                               F(gemm_scratch, w), N, ld, n * OC);
    }
    NAME("lora_down_bf16 + fused GEMM N=%d C=%d OC=%d R=%d n=%d p=%.1f", N, C, OC, R, n, p);
    compare_bf16("xb", xb, scale * 1e-4); /* scale u: u's absolute tolerance (GEMM_TOL) too */
    compare_bf16("[W|B]", W, 0.0);
    for (int j = 0; j < n; j++) {
        compare("u", u[j], GEMM_TOL);
        compare_scaled("out", out[j], 1e-3);
    }
    compare_scaled("outs side by side", outs, 1e-3);
    /* the same GEMM writing bf16 (matmul_forward_bf16's out_bf16: SwiGLU's and GELU's input),
     * rows n OC + 2 apart */
    size_t nout = (size_t)N * n * OC;
    Pair *outs_bf16 = pair_poisoned_bf16((size_t)N * (n * OC + 2));
    BACKENDS(w, o) {
        o->matmul_forward_bf16(NULL, outs_bf16->mem[w], n * OC + 2, xb->mem[w], ld, W->mem[w], ld,
                               NULL, F(gemm_scratch, w), N, ld, n * OC);
    }
    check_gemm_rounded("outs_bf16", outs, outs_bf16, nout, (size_t)n * OC, (size_t)n * OC + 2);
    test_lora_down_from_copy(xb, A, n, seeds, scale, p, N, C, R);
    /* lora_backward_bf16 of the group in one call, from x and from x's copy (Lora.xb), linear i's
     * output OC - 4i wide (the first rows of its B), then lora_dinp_bf16 of all of them into dinp:
     * du GEMM_TOL; dd as the model lays a group's out, [dout_0 .. dout_n-1 | du_0 .. du_n-1], its
     * dout parts equal, du's within one bf16 step (the sums' order); every dA and dB, bf16 GEMMs
     * over those and bf16(u), within 1e-3 of their largest value (a du or u value the backends
     * leave a bit apart may round one step apart: 2^-8 of one term); dinp, from the f32 du,
     * GEMM_TOL. Where the group has room, a member without LoRA too (second, as k between an
     * adapted q and v; OC wide): its dout's columns alone, in the same launch, bf16(dout) to the
     * bit on the GPU. */
    int plain = n < OPS_LORA_GROUP_MAX, at = n == 2 ? 1 : n, members = n + plain;
    int oc[OPS_LORA_GROUP_MAX], col[OPS_LORA_GROUP_MAX], cols = 0;
    size_t bw_floats = 0;
    for (int j = 0, i = 0; j < members; j++) { /* member j; i counts the adapted */
        int is_plain = plain && j == at;
        oc[j] = is_plain ? OC : OC - 4 * i > 0 ? OC - 4 * i : OC;
        col[j] = cols, cols += oc[j];
        if (!is_plain) bw_floats += ops_lora_bf16_scratch(N, C, oc[j], R), i++;
    }
    int ldd = cols + n * R;
    Pair *dout = pair_random((size_t)N * OC, 1.0f), *dd = pair_new((size_t)N * ldd * 2);
    Pair *bw_scratch = pair_new(bw_floats * sizeof(float));
    for (int from_copy = 0; from_copy < 2; from_copy++) {
        Pair *dx = pair_random((size_t)N * C, 1.0f), *du[OPS_LORA_GROUP_MAX];
        Pair *dA[OPS_LORA_GROUP_MAX], *dB[OPS_LORA_GROUP_MAX];
        Pair *dxh = pair_bf16((size_t)N, (size_t)C, 1.0f); /* a bf16 dinp (the base GEMM's) */
        for (int j = 0, i = 0; j < members; j++) {
            if (plain && j == at) continue;
            du[i] = pair_new((size_t)N * R * sizeof(float));
            dA[i] = pair_random((size_t)R * C, 1.0f), dB[i] = pair_random((size_t)oc[j] * R, 1.0f);
            i++;
        }
        BACKENDS(w, o) {
            const float *dus[OPS_LORA_GROUP_MAX], *As[OPS_LORA_GROUP_MAX];
            OpsLoraBackward lin[OPS_LORA_GROUP_MAX];
            for (int j = 0, i = 0; j < members; j++) {
                lin[j] = (OpsLoraBackward){.dout = F(dout, w), .OC = oc[j], .dout_col = col[j]};
                if (plain && j == at) continue;
                lin[j].u = F(u[i], w), lin[j].B = F(Bw[i], w), lin[j].du = F(du[i], w);
                lin[j].dA = F(dA[i], w), lin[j].dB = F(dB[i], w), lin[j].seed = seeds[i];
                lin[j].du_col = cols + i * R;
                dus[i] = F(du[i], w), As[i] = F(A[i], w);
                i++;
            }
            o->lora_backward_bf16(dd->mem[w], ldd, lin, members, from_copy ? NULL : F(x, w),
                                  from_copy ? xb->mem[w] : NULL, ld, scale, p, F(bw_scratch, w), N,
                                  C, R);
            o->lora_dinp_bf16(F(dx, w), NULL, dus, As, seeds, n, p, N, C, R, OPS_ADD);
            o->lora_dinp_bf16(NULL, dxh->mem[w], dus, As, seeds, n, p, N, C, R, OPS_ADD);
        }
        NAME("lora_backward_bf16 + lora_dinp_bf16 from %s N=%d C=%d OC=%d R=%d n=%d%s p=%.1f",
             from_copy ? "x's bf16 copy" : "x", N, C, OC, R, n, plain ? " + one without LoRA" : "",
             p);
        for (int i = 0; i < n; i++) compare("du", du[i], GEMM_TOL);
        compare_bf16("dd", dd, 1e-4);
        if (plain) check_rounded_rows("dd", dout, dd, (size_t)N * OC, OC, col[at], ldd);
        compare("dinp", dx, GEMM_TOL);
        compare_bf16("dinp into bf16", dxh, 1e-5);
        for (int i = 0; i < n; i++) {
            compare_scaled("dA", dA[i], 1e-3);
            compare_scaled("dB", dB[i], 1e-3);
        }
    }
    pairs_free();
}

/* ---- DoRA ---- */
/* rows x cols floats uniform in [lo, hi), rows ld apart, the columns past cols `pad`: NaN in an
 * input a kernel must not read there (a wrong row stride turns its results into NaNs); a value
 * of its own in an output whose columns past cols an exact compare shows left alone */
static Pair *pair_rows(size_t rows, size_t cols, size_t ld, float lo, float hi, float pad) {
    float *h = malloc(rows * ld * sizeof *h);
    for (size_t i = 0; i < rows * ld; i++)
        h[i] = i % ld < cols ? lo + (hi - lo) * rng_next_uniform(&rng) : pad;
    Pair *p = pair_upload(h, rows * ld * sizeof *h);
    free(h);
    return p;
}

/* norm within 1e-6 relative (the GPU's fma contractions in B[j] @ A; the squares' order): W's
 * rows ldw apart (the columns past C NaN, never read), scale not 1. */
static void test_dora_norm(int rows, int C, int ldw, int R) {
    Pair *W = pair_rows(rows, C, ldw, -1.0f, 1.0f, NAN), *A = pair_random((size_t)R * C, 1.0f);
    Pair *B = pair_random((size_t)rows * R, 1.0f), *norm = pair_nan(rows);
    BACKENDS(w, o) o->dora_norm(F(norm, w), F(W, w), ldw, F(A, w), F(B, w), 0.7f, rows, C, R);
    NAME("dora_norm rows=%d C=%d ldw=%d R=%d", rows, C, ldw, R);
    compare("norm", norm, 0.0, 1e-6);
    pairs_free();
}

enum { DORA_OUT, DORA_PRE_ALONE, DORA_IN_PLACE };
/* pre (over NaNs) and out (DORA_OUT: over NaNs; DORA_IN_PLACE: over y) bit for bit:
 * subtractions, then a product and sums rounded apart, on both; y's and out's rows ldy apart, the
 * columns past OC 7 in both (left alone). mag / norm far from 1, so that a missing factor, bias or
 * rest (lora dropout's, dense) shows. */
static void test_dora_forward(int N, int OC, int ldy, int with_bias, int with_rest, int mode) {
    Pair *y = pair_rows(N, OC, ldy, -3.0f, 3.0f, 7.0f), *pre = pair_nan((size_t)N * OC);
    Pair *out = mode == DORA_OUT        ? pair_rows(N, OC, ldy, NAN, NAN, 7.0f)
                : mode == DORA_IN_PLACE ? y
                                        : NULL;
    Pair *mag = pair_rows(1, OC, OC, -2.0f, 2.0f, 0.0f);
    Pair *norm = pair_rows(1, OC, OC, 0.5f, 4.0f, 0.0f);
    Pair *bias = with_bias ? pair_random(OC, 1.0f) : NULL;
    Pair *rest = with_rest ? pair_random((size_t)N * OC, 2.0f) : NULL;
    BACKENDS(w, o) {
        o->dora_forward(F(out, w), F(pre, w), F(y, w), ldy, F(mag, w), F(norm, w), F(bias, w),
                        F(rest, w), N, OC);
    }
    static const char *modes[] = {"out", "pre alone", "in place"};
    NAME("dora_forward N=%d OC=%d ldy=%d bias=%d rest=%d %s", N, OC, ldy, with_bias, with_rest,
         modes[mode]);
    compare("pre", pre, EXACT);
    if (out) compare("out", out, EXACT);
    pairs_free();
}

/* gs and (with_rest) grest bit for bit (a product, a difference), over NaNs; dmag after two calls
 * (the second adds to the first's), dmag[j] within 1e-6 of |dmag[j]| + its column's scale sum_n |g
 * pre| / norm over both calls (the splits' partials are f32). g's rows ldg apart (NaN past OC,
 * never read), the scratch NaNs (every partial read is written first). */
static void test_dora_backward(int N, int OC, int ldg, int with_rest) {
    Pair *g = pair_rows(N, OC, ldg, -1.0f, 1.0f, NAN), *pre = pair_random((size_t)N * OC, 3.0f);
    Pair *mag = pair_rows(1, OC, OC, -2.0f, 2.0f, 0.0f);
    Pair *norm = pair_rows(1, OC, OC, 0.5f, 4.0f, 0.0f);
    Pair *gs = pair_nan((size_t)N * OC), *dmag = pair_random(OC, 1.0f);
    Pair *grest = with_rest ? pair_nan((size_t)N * OC) : NULL;
    Pair *scratch = pair_nan(ops_dora_scratch(N, OC));
    BACKENDS(w, o) {
        for (int call = 0; call < 2; call++)
            o->dora_backward(F(gs, w), F(grest, w), F(dmag, w), F(g, w), ldg, F(pre, w), F(mag, w),
                             F(norm, w), F(scratch, w), N, OC);
    }
    NAME("dora_backward N=%d OC=%d ldg=%d rest=%d (twice)", N, OC, ldg, with_rest);
    compare("gs", gs, EXACT);
    if (grest) compare("grest", grest, EXACT);
    const float *hg = g->mem[0], *hp = pre->mem[0], *hn = norm->mem[0], *want = dmag->mem[0];
    float *got = malloc(dmag->bytes);
    dut->download(got, dmag->mem[1], dmag->bytes);
    status_ok();
    double worst = 0.0, worst_frac = 0.0;
    size_t bad = 0;
    for (int j = 0; j < OC; j++) {
        double s = 0.0;
        for (int n = 0; n < N; n++)
            s += fabs((double)hg[(size_t)n * ldg + j] * hp[(size_t)n * OC + j]);
        double tol = 1e-6 * (fabs(want[j]) + 2.0 * s / hn[j]), d = fabs((double)got[j] - want[j]);
        bad += !(d <= tol);
        worst = d > worst || d != d ? d : worst;
        worst_frac = d / tol > worst_frac || d != d ? d / tol : worst_frac;
    }
    printf("%-58s %-6s n=%-8d max abs %.2e  (%.2f of its column's tolerance)\n", op_name, "dmag",
           OC, worst, worst_frac);
    if (bad) fprintf(stderr, "  %s: dmag: %zu of %d columns off\n", op_name, bad, OC);
    CHECK(bad == 0);
    free(got);
    pairs_free();
}

/* out (+)= x - drop(x) with lora_forward's masks of the step's seed, bit for bit (a product and a
 * difference rounded apart, on both), over NaNs (acc 0) or onto values (acc): from f32 x, or
 * from bf16 copies whose rows are ldx apart; at p 0 every element is kept: 0. */
static void test_lora_dropout_rest(int N, int C, int ldx, float p, int from_bf16, int acc) {
    Pair *x = from_bf16 ? NULL : pair_random((size_t)N * C, 3.0f);
    Pair *xb = from_bf16 ? pair_bf16((size_t)N, (size_t)ldx, 3.0f) : NULL;
    Pair *out = acc ? pair_random((size_t)N * C, 1.0f) : pair_nan((size_t)N * C);
    BACKENDS(w, o) {
        o->lora_dropout_rest(F(out, w), F(x, w), xb ? (const uint16_t *)xb->mem[w] : NULL, ldx, p,
                             0x1234567890abcull, N, C, acc);
    }
    NAME("lora_dropout_rest N=%d C=%d ldx=%d p=%g %s%s", N, C, ldx, p, from_bf16 ? "bf16" : "f32",
         acc ? " acc" : "");
    compare("out", out, EXACT);
    pairs_free();
}

/* ---- attention ---- */
/* Sequence b keeps its first T - b*pad tokens (at least one unless
 * all_pad_last). */
static Pair *attention_mask(int B, int T, int pad, int all_pad_last) {
    int32_t *m = malloc((size_t)B * T * sizeof *m);
    for (int b = 0; b < B; b++) {
        int len = T - b * pad > 0 ? T - b * pad : 1;
        if (all_pad_last && b == B - 1) len = 0;
        for (int t = 0; t < T; t++) m[b * T + t] = t < len;
    }
    Pair *p = pair_upload(m, (size_t)B * T * sizeof *m);
    free(m);
    return p;
}

/* Attention scratch for both backends: the larger of their two contracts. */
static Pair *attention_scratch(int B, int T, int NH, int NKV, int HS) {
    size_t a = ref->attention_scratch(B, T, NH, NKV, HS);
    size_t b = dut->attention_scratch(B, T, NH, NKV, HS);
    return pair_new((a > b ? a : b) * sizeof(float));
}

/* What the GPU's attention saves for backward in precision p (the CPU saves nothing), or NULL. */
static Pair *attention_saved(Precision p, int B, int T, int NH, int NKV, int HS) {
    size_t n = dut->attention_saved(p, B, T, NH, NKV, HS, 0);
    CHECK(ref->attention_saved(p, B, T, NH, NKV, HS, 0) == 0);
    return n ? pair_new(n * sizeof(float)) : NULL;
}

/* ---- attention on bf16 tensor cores (set_precision(BF16): model.precision bf16) ----
 * The GPU rounds q, k, v and dout to bf16 (relative error up to 2^-9 each) and P (dropped) and
 * dS to bf16 as product operands; scores, softmax, lse, D and every sum stay f32. Against the
 * CPU's f32 attention (inputs uniform in [-1, 1)): a score is off by up to ~2^-8 of
 * sum_d |q_d k_d| / sqrt(HS), about 3e-3 at HS = 64, and so are the P it makes relative to each
 * other; out, dq, dk, dv add up P and dS rounded once more. Bound, stated: every element within
 * 2e-2 of the largest |cpu| value of its tensor, lse within 1e-2 (about 8 rounding units of
 * its inputs). Then, tighter, against a reference here that rounds the same operands the same
 * way (att_rounded, in double; the forward's P relative to the running max as the kernel's
 * online softmax has it at each of its 64-key tiles, moved only where a tile's max passes it by
 * more than 2^ATT_STALE_MAX (lazy rescaling); backward from the GPU's own out and lse):
 * what is left is the order of f32 sums (about 1e-7 of the largest |value|) and the rare P or
 * dS whose f32 score lands on the other side of a bf16 rounding boundary than the double one
 * (up to 2^-7 of that one term, a few times per 10^4 products): within 2e-3 of the largest
 * |value|, 10 times tighter, plus 2^-7 of the largest term the element adds up (add_term): where
 * a row's softmax is peaked (scores of tens of units) one term makes most of an element, and its
 * flip alone passes 2e-3 of the tensor's largest (a case whose random inputs changed showed it:
 * 6 values of one row off by 2.3e-3, one P rounded the other way). lse's error is a weighted mean
 * of the scores' errors, so it is bounded absolutely: 1e-2 against f32, 1e-5 against the reference
 * (both times att_amp^2, below). */
static int att_bf16; /* test_attention_grads compares as above */
/* model.attention cudnn: cuDNN's own kernels round and tile differently, so only the bounds
 * against the CPU's f32 hold (and its dropout masks are its own: test_dropout_readback) */
static int att_cudnn;
/* test_attention_grads' backward with OPS_SET over dq, dk, dv of NaNs (the first writer) */
static int att_set;
/* test_attention_grads with rope (its theta; 0: none): q and k turned in place compared too, and
 * the gradients against the CPU's f32 at the bounds above (not the rounded reference) */
static float att_rope;
/* cos and sin's factor of that rope and of cache_write's (YaRN's attention factor; else 1), and
 * the dims of a head both turn (partial rotary embeddings, Phi-4-mini's; 0: the whole head) */
static float att_rope_scale = 1.0f;
static int att_rope_dims;

/* The frequencies of every rope here: base theta, att_rope_scale and att_rope_dims of head size HS
 */
static const RopeFreqs *att_rope_freqs(float theta, int HS) {
    return rope_partial(theta, att_rope_dims ? att_rope_dims : HS, att_rope_scale);
}

/* A case's rope, as its name says it */
static const char *rope_name(void) {
    static char s[48];
    snprintf(s, sizeof s, "%s",
             att_rope > 0.0f ? att_rope_scale != 1.0f ? " rope scaled" : " rope" : "");
    if (att_rope > 0.0f && att_rope_dims)
        snprintf(s + strlen(s), sizeof s - strlen(s), " (%d dims)", att_rope_dims);
    return s;
}
/* test_attention_grads' sliding window (causal; 0: none), in every call and reference */
static int att_window;
/* How every attention call here scores (att_score): scale att_scale (0: 1 / sqrt(HS)) and
 * soft-capping at att_softcap (0: none), q and k uniform in [-att_amp, att_amp) (the cached
 * cases' too): at 2, scores of a few units, which a cap of 1.5 or 2 bends (slopes near 0 at the
 * largest). The scores' bf16 errors grow as |q| |k|, so the bounds against the CPU's f32 below
 * take att_amp^2 times theirs (the rounded reference's stay). */
static float att_scale, att_softcap, att_amp = 1.0f;
static AttnScore att_score(int HS) {
    AttnScore a = {att_scale > 0.0f ? att_scale : 1.0f / sqrtf((float)HS), att_softcap};
    return a;
}
/* q and k turned by rope (attention_forward, cache_write): the same float angles on both sides
 * (one RopeFreqs table); sinf and cosf of up to 8191 rad agree to a few ulp of the result */
#define ROPE_TOL 1e-5, 1e-4
#define ATT_BF16_TOL 2e-2
#define ATT_BF16_LSE_TOL 1e-2
#define ATT_ROUNDED_TOL 2e-3
/* log2 units a forward tile's max passes the running max by before it moves (attention.cu's
 * STALE_MAX) */
#define ATT_STALE_MAX 8.0
/* keys of forward's tiles (attention.cu's TcShape::FWD_KEYS): 32 at head sizes padded to 128 and
 * above, else 64 */
static int att_key_tile(int HS) {
    return (HS + 15) / 16 * 16 >= 128 ? 32 : 64;
}

static double bf(float x) {
    return bf16_to_f32(f32_to_bf16(x));
}

/* The attention of ops.h with the GPU's bf16 roundings, on host copies; fills out, lse when
 * forward, else adds the gradients into dq, dk, dv (from out, lse given). */
typedef struct AttCase {
    int B, T, NH, NKV, HS, causal;
    float p;
    const float *q, *k, *v, *dout, *out_in, *lse_in;
    const int32_t *mask;
    int window;
    AttnScore score;
} AttCase;

static int att_visible(const AttCase *c, int b, int i, int j) {
    return (!c->mask || c->mask[b * c->T + j]) &&
           (!c->causal || (j <= i && (!c->window || i - j < c->window)));
}

/* acc[i] += term; slack[i] = the largest 2^-7 |term| added there: what one P or dS rounded to
 * its other bf16 neighbour moves acc[i] by at most (an ulp of bf16 is 2^-7 of its value at most).
 * Where a row's softmax is peaked one term makes most of an element (att_amp 6), and that flip
 * alone can pass ATT_ROUNDED_TOL of the tensor's largest value. */
static void add_term(float *acc, float *slack, size_t i, double term) {
    acc[i] += (float)term;
    double flip = 0x1p-7 * fabs(term);
    if (flip > slack[i]) slack[i] = (float)flip;
}

/* want[] = out, lse (forward) or dq, dk, dv (backward; each may be NULL) by the rounded reference
 * (above), and slack[] beside out, dq, dk, dv (add_term) */
static void att_rounded(const AttCase *c, int forward, float *const want[5],
                        float *const slack[5]) {
    float *out = want[0], *lse = want[1], *dq = want[2], *dk = want[3], *dv = want[4];
    int T = c->T, HS = c->HS, G = c->NH / c->NKV, tile = att_key_tile(HS);
    size_t ldq = (size_t)c->NH * HS, ldkv = (size_t)c->NKV * HS;
    double scale = c->score.scale, cap = c->score.softcap, *s = malloc(2 * T * sizeof *s);
    double *run = s + T;
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int i = 0; i < T; i++) {
                size_t bh = (size_t)b * c->NH + h, qi = ((size_t)b * T + i) * ldq + h * HS;
                size_t kv0 = (size_t)b * T * ldkv + (size_t)(h / G) * HS;
                double mx = -INFINITY, l = 0.0, D = 0.0;
                for (int j = 0; j < T; j++) {
                    s[j] = -INFINITY;
                    if (!att_visible(c, b, i, j)) continue;
                    double dot = 0.0;
                    for (int d = 0; d < HS; d++)
                        dot += bf(c->q[qi + d]) * bf(c->k[kv0 + j * ldkv + d]);
                    s[j] = cap > 0.0 ? cap * tanh(dot * scale / cap) : dot * scale;
                    mx = s[j] > mx ? s[j] : mx;
                }
                for (int j = 0; j < T; j++) { /* run: the max as the kernel has it at j's tile */
                    double tile_max = -INFINITY;
                    l += s[j] == -INFINITY ? 0.0 : exp(s[j] - mx);
                    run[j] = j ? run[j - 1] : -INFINITY;
                    for (int t = j; j % tile == 0 && t < j + tile && t < T; t++)
                        tile_max = s[t] > tile_max ? s[t] : tile_max;
                    if (tile_max > run[j] + ATT_STALE_MAX * log(2.0)) run[j] = tile_max;
                }
                if (forward) lse[bh * T + i] = l > 0.0 ? (float)(mx + log(l)) : INFINITY;
                for (int d = 0; d < HS && !forward; d++) /* out as the GPU saved it */
                    D += c->dout[qi + d] * bf(c->out_in[qi + d]);
                for (int j = 0; j < T; j++) {
                    if (s[j] == -INFINITY) continue;
                    double M = rng_row_dropout(5 ^ parity_step.seed, bh * T + i, (uint32_t)j, c->p);
                    const float *kj = c->k + kv0 + j * ldkv, *vj = c->v + kv0 + j * ldkv;
                    if (forward) {
                        double pd = bf((float)(exp(s[j] - run[j]) * M)) * exp(run[j] - mx) / l;
                        for (int d = 0; d < HS; d++)
                            add_term(out, slack[0], qi + d, pd * bf(vj[d]));
                        continue;
                    }
                    double P = exp(s[j] - c->lse_in[bh * T + i]), dP = 0.0;
                    double slope = cap > 0.0 ? 1.0 - s[j] / cap * (s[j] / cap) : 1.0;
                    for (int d = 0; d < HS; d++) dP += bf(c->dout[qi + d]) * bf(vj[d]);
                    double ds = bf((float)(P * slope * (dP * M - D))), pd = bf((float)(P * M));
                    size_t at = kv0 + j * ldkv;
                    for (int d = 0; d < HS; d++) {
                        if (dq) add_term(dq, slack[2], qi + d, ds * bf(kj[d]) * scale);
                        if (dk) add_term(dk, slack[3], at + d, ds * bf(c->q[qi + d]) * scale);
                        if (dv) add_term(dv, slack[4], at + d, pd * bf(c->dout[qi + d]));
                    }
                }
            }
    free(s);
}

/* The GPU's tensor p against host values want: within frac of the largest |want| (frac < 0:
 * within -frac), plus slack[i] where slack is not NULL. */
static void compare_host(const char *tensor, const Pair *p, const float *want, double frac,
                         const float *slack) {
    size_t n = p->bytes / sizeof(float), bad = 0, first = 0;
    float *got = malloc(p->bytes);
    dut->download(got, p->mem[1], p->bytes);
    status_ok();
    double mx = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = isfinite(want[i]) && fabs(want[i]) > mx ? fabs(want[i]) : mx;
    for (size_t i = 0; i < n; i++) {
        double d = got[i] == want[i] ? 0.0 : fabs((double)got[i] - want[i]);
        double tol = (frac < 0 ? -frac : frac * mx) + (slack ? slack[i] : 0.0);
        if (!(d <= tol) && !bad++) first = i;
        worst = d > worst || d != d ? d : worst;
    }
    printf("%-58s %-6s n=%-8zu max abs %.2e  (%.2e of max) vs bf16-rounded reference\n", op_name,
           tensor, n, worst, mx > 0 ? worst / mx : 0.0);
    if (bad)
        fprintf(stderr,
                "  %s: %s: %zu of %zu elements off the rounded reference, first [%zu]: want %.9g "
                "cuda %.9g\n",
                op_name, tensor, bad, n, first, want[first], got[first]);
    CHECK(bad == 0);
    free(got);
}

/* A copy of p's CPU values (the reference backend's memory is host memory). */
static float *host_copy(const Pair *p) {
    if (!p) return NULL;
    float *h = malloc(p->bytes);
    memcpy(h, p->mem[0], p->bytes);
    return h;
}

/* Under bf16 the GPU turns by rope only the copies of q and k it saves where a half of the turned
 * dims is whole chunks of 8 (ops.h), leaving q and k as given: the CPU's turns them in place. */
static int gpu_turns_copies(int HS, int dims) {
    return HS % 16 == 0 && dims / 2 % 8 == 0;
}
/* The dims the case's rope turns */
static int att_turned(int HS) {
    return att_rope_dims ? att_rope_dims : HS;
}

/* The rope of a forward again over the q and k a forward with the case's rope left: the same
 * where the GPU left them as given, none where it turned them in place */
static const RopeFreqs *rope_again(int HS) {
    return att_rope > 0.0f && gpu_turns_copies(HS, att_turned(HS)) ? att_rope_freqs(att_rope, HS)
                                                                   : NULL;
}

/* The GPU's tensor p bit for bit as want, the values it was given */
static void check_as_given(const char *tensor, const Pair *p, const float *want) {
    float *got = malloc(p->bytes);
    dut->download(got, p->mem[1], p->bytes);
    status_ok();
    int same = !memcmp(got, want, p->bytes);
    printf("%-58s %-6s n=%-8zu as given: %s\n", op_name, tensor, p->bytes / sizeof(float),
           same ? "yes" : "no");
    CHECK(same);
    free(got);
}

/* A gradient buffer backward adds to (random values), or under att_set NaNs it must overwrite */
static Pair *att_grad(size_t n) {
    return att_set ? pair_nan(n) : pair_random(n, 1.0f);
}

/* The reference's starting gradient: the buffer's values, or zeros for OPS_SET */
static float *host_start(const Pair *p) {
    if (!p || !att_set) return host_copy(p);
    return calloc(p->bytes / sizeof(float), sizeof(float));
}

/* cuDNN's stats give a row with no visible key (a window over padding) -inf where ops.h's lse is
 * +inf (ops.h): the lse compared has those as +inf, counted; the GPU's buffer, which its
 * backward reads next, is put back as cuDNN wrote it. */
static void compare_cudnn_lse(const Pair *lse) {
    size_t n = lse->bytes / sizeof(float), rows = 0;
    float *a = host_copy(lse), *b = malloc(lse->bytes), *as_written = malloc(lse->bytes);
    dut->download(as_written, lse->mem[1], lse->bytes);
    memcpy(b, as_written, lse->bytes);
    for (size_t i = 0; i < n; i++)
        if (a[i] == INFINITY && b[i] == -INFINITY) b[i] = INFINITY, rows++;
    printf("%-58s lse    %zu rows without a key: cuDNN's -inf\n", op_name, rows);
    dut->upload(lse->mem[1], b, lse->bytes);
    compare("lse", lse, ATT_BF16_LSE_TOL * (double)att_amp * att_amp, 0.0);
    dut->upload(lse->mem[1], as_written, lse->bytes);
    free(a);
    free(b);
    free(as_written);
}

static void compare_attention(const char *tensor, const Pair *p) {
    double amp2 = (double)att_amp * att_amp;
    if (!att_bf16)
        compare(tensor, p, GEMM_TOL);
    else if (!strcmp(tensor, "lse") && att_cudnn)
        compare_cudnn_lse(p);
    else if (!strcmp(tensor, "lse"))
        compare(tensor, p, ATT_BF16_LSE_TOL * amp2, 0.0);
    else
        compare_scaled(tensor, p, ATT_BF16_TOL * amp2);
}

/* The GPU's bf16(out) in saved (attention_saved_out), which a bf16 GEMM reads instead of out:
 * the f32 out rounded, bit for bit, and the same when forward runs again with out NULL (the CPU
 * saves none). */
static void check_saved_out(const Pair *out, const Pair *lse, const Pair *saved, const Pair *q,
                            const Pair *k, const Pair *v, const Pair *mask, int causal, float p,
                            const Pair *scratch, int B, int T, int NH, int NKV, int HS) {
    size_t n = (size_t)B * T * NH * HS;
    CHECK(ref->attention_saved_out(PRECISION_BF16, NULL) == NULL);
    uint16_t *at = dut->attention_saved_out(PRECISION_BF16, F(saved, 1));
    size_t offset = (size_t)((char *)at - (char *)saved->mem[1]);
    CHECK(at != NULL && offset + n * sizeof *at <= saved->bytes);
    if (!at || offset + n * sizeof *at > saved->bytes) return;
    float *f = malloc(n * sizeof *f);
    uint16_t *h[2] = {malloc(n * sizeof(uint16_t)), malloc(n * sizeof(uint16_t))};
    dut->download(f, out->mem[1], n * sizeof *f);
    dut->download(h[0], at, n * sizeof(uint16_t));
    dut->attention_forward(NULL, NULL, 0, F(lse, 1), F(saved, 1), F(q, 1), NH * HS, F(k, 1),
                           F(v, 1), NKV * HS, I(mask, 1), causal, att_window, rope_again(HS),
                           att_score(HS), p, 5, F(scratch, 1), B, T, NH, NKV, HS);
    dut->download(h[1], at, n * sizeof(uint16_t));
    status_ok();
    size_t bad[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        bad[0] += h[0][i] != f32_to_bf16(f[i]), bad[1] += h[1][i] != h[0][i];
    printf("%-58s %-6s n=%-8zu saved bf16 = f32 rounded; again without out: %zu differ\n", op_name,
           "out", n, bad[1]);
    CHECK(bad[0] == 0 && bad[1] == 0);
    free(f), free(h[0]), free(h[1]);
}

/* On the GPU under bf16, forward again with bf16(out) into rows NH*HS + 3 apart (an adapted o's
 * input copy) and out NULL, with a saved buffer sized for that (attention_saved's out_apart: no
 * room for out, but under cuDNN): there the bits check_saved_out found saved, the columns past
 * them untouched; backward given those rows and that saved buffer the same gradients, bit for
 * bit, as from the full saved buffer and its copy of out (loraft's kernels: no atomics; cuDNN
 * reads its own saved copy either way, in any order). */
static void check_out_rows(const Pair *saved, const Pair *q, const Pair *k, const Pair *v,
                           const Pair *mask, const Pair *dout, int causal, float p,
                           const Pair *scratch, int B, int T, int NH, int NKV, int HS) {
    size_t rows = (size_t)B * T, QC = (size_t)NH * HS, ldo = QC + 3, KC = (size_t)NKV * HS;
    size_t bytes = rows * ldo * sizeof(uint16_t), gq = rows * QC * 4, gk = rows * KC * 4;
    uint16_t *h = malloc(bytes), *s = malloc(rows * QC * sizeof *s);
    for (size_t i = 0; i < rows * ldo; i++) h[i] = 0xabab;
    size_t full = dut->attention_saved(PRECISION_BF16, B, T, NH, NKV, HS, 0);
    size_t apart = dut->attention_saved(PRECISION_BF16, B, T, NH, NKV, HS, 1);
    CHECK(att_cudnn ? apart == full : full - apart == (rows * QC + 7) / 8 * 4); /* out's room */
    void *ext = dut->alloc(bytes), *lse = dut->alloc((size_t)B * NH * T * 4), *d[2][3];
    float *own = dut->alloc(apart * sizeof(float)); /* the saved buffer without out's room */
    dut->upload(ext, h, bytes);
    dut->download(s, dut->attention_saved_out(PRECISION_BF16, F(saved, 1)), rows * QC * sizeof *s);
    dut->attention_forward(NULL, ext, (int)ldo, lse, own, F(q, 1), NH * HS, F(k, 1), F(v, 1),
                           NKV * HS, I(mask, 1), causal, att_window, rope_again(HS), att_score(HS),
                           p, 5, F(scratch, 1), B, T, NH, NKV, HS);
    dut->download(h, ext, bytes);
    size_t bad = 0;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < ldo; c++) bad += h[r * ldo + c] != (c < QC ? s[r * QC + c] : 0xabab);
    for (int j = 0; j < 2; j++) {
        d[j][0] = dut->alloc(gq), d[j][1] = dut->alloc(gk), d[j][2] = dut->alloc(gk);
        dut->attention_backward(
            d[j][0], d[j][1], d[j][2], F(dout, 1), NULL, NULL, NULL, NH * HS, NKV * HS, NULL,
            j ? ext : NULL, (int)ldo, lse, j ? own : F(saved, 1), I(mask, 1), causal, att_window,
            rope_again(HS), att_score(HS), p, 5, F(scratch, 1), B, T, NH, NKV, HS, OPS_SET);
    }
    status_ok();
    size_t differ = 0;
    for (int t = 0; t < 3; t++) {
        size_t n = t ? gk : gq;
        char *a = malloc(n), *b = malloc(n);
        dut->download(a, d[0][t], n), dut->download(b, d[1][t], n);
        differ += !att_cudnn && memcmp(a, b, n) != 0; /* cuDNN's may sum in any order */
        free(a), free(b);
    }
    printf("%-58s %-6s n=%-8zu into rows NH*HS + 3 apart: %zu off; backward from them: %zu of 3 "
           "differ\n",
           op_name, "out", rows * QC, bad, differ);
    CHECK(bad == 0 && differ == 0);
    for (int j = 0; j < 2; j++)
        for (int t = 0; t < 3; t++) dut->free(d[j][t]);
    dut->free(ext), dut->free(lse), dut->free(own), free(h), free(s);
}

/* The case's name's part for att_score: the scale where not 1 / sqrt(HS) (as 1 / sqrt(x)), the
 * cap and q and k's amplitude where set. */
static const char *score_name(void) {
    static char name[96];
    int n = 0;
    name[0] = 0;
    if (att_scale > 0.0f)
        n += snprintf(name + n, sizeof name - n, " scale 1/sqrt(%.4g)",
                      1.0 / ((double)att_scale * att_scale));
    if (att_softcap > 0.0f) n += snprintf(name + n, sizeof name - n, " softcap %g", att_softcap);
    if (att_amp != 1.0f) snprintf(name + n, sizeof name - n, " amp %g", att_amp);
    return name;
}

/* q [B,T,NH*HS], k and v [B,T,NKV*HS]; causal: the decoder mask. grads: which of dq (G_DINP),
 * dk (G_DW), dv (G_DB) backward computes (G_ALL, or a subset: the skip paths). */
static void test_attention_grads(int B, int T, int NH, int NKV, int HS, int causal, int pad,
                                 float p, int all_pad_last, unsigned grads) {
    size_t BTQ = (size_t)B * T * NH * HS, BTK = (size_t)B * T * NKV * HS;
    Pair *q = pair_random(BTQ, att_amp), *k = pair_random(BTK, att_amp);
    Pair *v = pair_random(BTK, 1.0f), *mask = attention_mask(B, T, pad, all_pad_last);
    Pair *out = pair_new(BTQ * sizeof(float)), *lse = pair_new((size_t)B * NH * T * sizeof(float));
    Pair *dout = pair_random(BTQ, 1.0f);
    Pair *scratch = attention_scratch(B, T, NH, NKV, HS);
    /* under bf16 the GPU keeps bf16 copies of q, k, v for backward, which is then given none */
    Pair *saved = attention_saved(att_bf16 ? PRECISION_BF16 : PRECISION_FP32, B, T, NH, NKV, HS);
    CHECK(!saved == !att_bf16);
    Pair *dq = grads & G_DINP ? att_grad(BTQ) : NULL;
    Pair *dk = grads & G_DW ? att_grad(BTK) : NULL;
    Pair *dv = grads & G_DB ? att_grad(BTK) : NULL;
    int given = saved && att_rope > 0.0f && gpu_turns_copies(HS, att_turned(HS)); /* q, k as are */
    float *q0 = given ? host_copy(q) : NULL, *k0 = given ? host_copy(k) : NULL;
    BACKENDS(w, o) {
        o->attention_forward(F(out, w), NULL, 0, F(lse, w), F(saved, w), F(q, w), NH * HS, F(k, w),
                             F(v, w), NKV * HS, I(mask, w), causal, att_window,
                             att_rope_freqs(att_rope, HS), att_score(HS), p, 5, F(scratch, w), B, T,
                             NH, NKV, HS);
    }
    NAME("%sattention_forward B=%d T=%d NH=%d NKV=%d HS=%d%s window %d%s pad=%d p=%.1f%s",
         att_bf16 ? "bf16 " : "", B, T, NH, NKV, HS, causal ? " causal" : "", att_window,
         rope_name(), pad, p, score_name());
    compare_attention("lse", lse);
    compare_attention("out", out);
    if (given)
        check_as_given("q", q, q0), check_as_given("k", k, k0);
    else if (att_rope > 0.0f)
        compare("q", q, ROPE_TOL), compare("k", k, ROPE_TOL);
    free(q0), free(k0);
    if (saved) {
        check_saved_out(out, lse, saved, q, k, v, mask, causal, p, scratch, B, T, NH, NKV, HS);
        check_out_rows(saved, q, k, v, mask, dout, causal, p, scratch, B, T, NH, NKV, HS);
    }
    AttCase c = {B,       T,       NH,         NKV,  HS,   causal,     p,          F(q, 0),
                 F(k, 0), F(v, 0), F(dout, 0), NULL, NULL, I(mask, 0), att_window, att_score(HS)};
    float *want[5] = {NULL};  /* out, lse, dq, dk, dv by the rounded reference */
    float *slack[5] = {NULL}; /* beside out, dq, dk, dv (add_term) */
    int rounded = att_bf16 && !att_cudnn && att_rope == 0.0f;
    if (rounded) {
        want[0] = calloc(BTQ, sizeof(float)), want[1] = malloc(lse->bytes);
        slack[0] = calloc(BTQ, sizeof(float));
        att_rounded(&c, 1, want, slack);
        compare_host("out", out, want[0], ATT_ROUNDED_TOL, slack[0]);
        compare_host("lse", lse, want[1], -1e-5 * att_amp * att_amp, NULL); /* scores' f32 error */
        want[2] = host_start(dq), want[3] = host_start(dk), want[4] = host_start(dv);
        const Pair *grad[5] = {NULL, NULL, dq, dk, dv};
        for (int t = 2; t < 5; t++) slack[t] = grad[t] ? calloc(grad[t]->bytes, 1) : NULL;
        dut->download(want[0], out->mem[1], out->bytes); /* the GPU's own, as its backward sees */
        dut->download(want[1], lse->mem[1], lse->bytes);
        c.out_in = want[0], c.lse_in = want[1];
    }
    BACKENDS(w, o) {
        int kept = !(w && saved); /* the GPU reads what it saved */
        o->attention_backward(F(dq, w), F(dk, w), F(dv, w), F(dout, w), kept ? F(q, w) : NULL,
                              kept ? F(k, w) : NULL, kept ? F(v, w) : NULL, NH * HS, NKV * HS,
                              kept ? F(out, w) : NULL, NULL, 0, F(lse, w), F(saved, w), I(mask, w),
                              causal, att_window, att_rope_freqs(att_rope, HS), att_score(HS), p, 5,
                              F(scratch, w), B, T, NH, NKV, HS, att_set ? OPS_SET : OPS_ADD);
    }
    NAME("%sattention_backward B=%d T=%d NH=%d NKV=%d HS=%d%s window %d%s pad=%d p=%.1f%s%s",
         att_bf16 ? "bf16 " : "", B, T, NH, NKV, HS, causal ? " causal" : "", att_window,
         rope_name(), pad, p, score_name(), att_set ? " OPS_SET" : "");
    if (dq) compare_attention("dq", dq);
    if (dk) compare_attention("dk", dk);
    if (dv) compare_attention("dv", dv);
    if (rounded) {
        float *grads[5] = {NULL, NULL, want[2], want[3], want[4]};
        att_rounded(&c, 0, grads, slack);
        if (dq) compare_host("dq", dq, want[2], ATT_ROUNDED_TOL, slack[2]);
        if (dk) compare_host("dk", dk, want[3], ATT_ROUNDED_TOL, slack[3]);
        if (dv) compare_host("dv", dv, want[4], ATT_ROUNDED_TOL, slack[4]);
    }
    for (int t = 0; t < 5; t++) free(want[t]), free(slack[t]);
    pairs_free();
}

static void test_attention(int B, int T, int NH, int NKV, int HS, int causal, int pad, float p,
                           int all_pad_last) {
    test_attention_grads(B, T, NH, NKV, HS, causal, pad, p, all_pad_last, G_ALL);
}

/* q, k, v as one GEMM writes them, rows [q | k | v] (linear_outputs_join): attention_forward
 * with rope, turning q and k in place (v's columns untouched; under bf16 the GPU turns its copies
 * and leaves the rows as given, where it can), then attention_backward reading them so (where it
 * reads them: fp32) and writing rows [dq | dk | dv] (added to, and under
 * att_set over NaNs, which every column must replace), as from buffers of their own (test_ops
 * checks that on the CPU, bit for bit); fp32, or bf16 compared as att_bf16 says. */
static void test_attention_joined(int B, int T, int NH, int NKV, int HS, int causal, float p,
                                  int bf16) {
    int QC = NH * HS, KC = NKV * HS, ld = QC + 2 * KC;
    size_t rows = (size_t)B * T;
    dut->set_precision(bf16 ? PRECISION_BF16 : PRECISION_FP32);
    att_bf16 = bf16;
    Pair *qkv = pair_random(rows * ld, 1.0f), *out = pair_new(rows * QC * sizeof(float));
    Pair *lse = pair_new((size_t)B * NH * T * sizeof(float));
    Pair *scratch = attention_scratch(B, T, NH, NKV, HS);
    Pair *saved = attention_saved(bf16 ? PRECISION_BF16 : PRECISION_FP32, B, T, NH, NKV, HS);
    Pair *dout = pair_random(rows * QC, 1.0f), *dqkv = att_grad(rows * ld);
    float *given = saved && gpu_turns_copies(HS, HS) ? host_copy(qkv) : NULL;
    BACKENDS(w, o) {
        float *x = F(qkv, w);
        o->attention_forward(F(out, w), NULL, 0, F(lse, w), F(saved, w), x, ld, x + QC, x + QC + KC,
                             ld, NULL, causal, 0, rope_plain(1e4f, HS), att_score(HS), p, 5,
                             F(scratch, w), B, T, NH, NKV, HS);
    }
    NAME("%sattention_forward rope, [q | k | v] rows, B=%d T=%d NH=%d NKV=%d HS=%d%s p=%.1f",
         bf16 ? "bf16 " : "", B, T, NH, NKV, HS, causal ? " causal" : "", p);
    if (given)
        check_as_given("qkv", qkv, given);
    else
        compare("qkv", qkv, ROPE_TOL);
    free(given);
    compare_attention("lse", lse);
    compare_attention("out", out);
    BACKENDS(w, o) {
        float *x = w && saved ? NULL : F(qkv, w), *d = F(dqkv, w); /* the GPU reads its saved */
        o->attention_backward(d, d + QC, d + QC + KC, F(dout, w), x, x ? x + QC : NULL,
                              x ? x + QC + KC : NULL, ld, ld, x ? F(out, w) : NULL, NULL, 0,
                              F(lse, w), F(saved, w), NULL, causal, 0, rope_plain(1e4f, HS),
                              att_score(HS), p, 5, F(scratch, w), B, T, NH, NKV, HS,
                              att_set ? OPS_SET : OPS_ADD);
    }
    NAME("%sattention_backward rope, [dq | dk | dv] rows, B=%d T=%d NH=%d NKV=%d HS=%d%s p=%.1f%s",
         bf16 ? "bf16 " : "", B, T, NH, NKV, HS, causal ? " causal" : "", p,
         att_set ? " OPS_SET" : "");
    compare_attention("dqkv", dqkv);
    pairs_free();
    att_bf16 = 0;
    dut->set_precision(PRECISION_FP32);
}

/* The same on bf16 tensor cores, compared as att_bf16 says. */
static void test_attention_bf16(int B, int T, int NH, int NKV, int HS, int causal, int pad, float p,
                                unsigned grads) {
    dut->set_precision(PRECISION_BF16);
    att_bf16 = 1;
    test_attention_grads(B, T, NH, NKV, HS, causal, pad, p, 0, grads);
    att_bf16 = 0;
    dut->set_precision(PRECISION_FP32);
}

/* ---- model.attention cudnn (a real GPU in a build with it; elsewhere the reason is printed) ----
 * Without dropout, test_attention_grads against the CPU's f32 at the bf16 bounds. With dropout
 * cuDNN's masks are its own, so they are read back: with v = I (T <= HS keys, value j the unit
 * vector j), out row i is row i of the dropped P itself. Each of its elements must be 0
 * (dropped) or the CPU's P / (1 - p) within the bf16 bound; the dropped fraction p within 4
 * sigma; the same seed must draw the same masks and another seed others; and backward must
 * use those masks: dq, dk, dv against the gradients of ops.h's formula evaluated here in double
 * with the masks read back, within the bf16 bound (test_dropout_readback; loraft's own bf16
 * attention takes the same check, which shows it is one the reference's masks pass). */
static int use_cudnn(void) {
    LfError err;
    if (!dut->set_attention(ATTENTION_CUDNN, &err)) return 1;
    static int said;
    if (!said++) printf("cudnn attention cases skipped: %s\n", err.msg);
    return 0;
}

static void test_attention_cudnn(int B, int T, int NH, int NKV, int HS, int causal, int pad,
                                 unsigned grads) {
    if (!use_cudnn()) return;
    att_cudnn = 1;
    test_attention_bf16(B, T, NH, NKV, HS, causal, pad, 0.0f, grads);
    att_cudnn = 0;
    dut->set_attention(ATTENTION_LORAFT, NULL);
}

/* Soft-capped scores under cudnn: refused, with a message that says where to go. */
static void test_cudnn_softcap(void) {
    if (!use_cudnn()) return;
    int B = 1, T = 8, NH = 2, HS = 64;
    size_t n = (size_t)B * T * NH * HS;
    dut->set_precision(PRECISION_BF16);
    Pair *x = pair_random(n, 1.0f), *out = pair_new(n * 4), *lse = pair_new((size_t)NH * T * 4);
    Pair *scratch = attention_scratch(B, T, NH, NH, HS);
    Pair *saved = attention_saved(PRECISION_BF16, B, T, NH, NH, HS);
    AttnScore capped = {0.125f, 50.0f};
    dut->attention_forward(F(out, 1), NULL, 0, F(lse, 1), F(saved, 1), F(x, 1), NH * HS, F(x, 1),
                           F(x, 1), NH * HS, NULL, 1, 0, NULL, capped, 0.0f, 5, F(scratch, 1), B, T,
                           NH, NH, HS);
    LfError e = {{0}};
    CHECK(dut->status(&e) == -1);
    printf("cudnn, soft-capped scores: %s\n", e.msg);
    CHECK(strstr(e.msg, "soft-capped") && strstr(e.msg, "model.attention loraft"));
    pairs_free();
    dut->set_attention(ATTENTION_LORAFT, NULL);
    dut->set_precision(PRECISION_FP32);
}

/* The gradients of ops.h's attention with the dropped P given (pd [B,NH,T,T], 0 where dropped)
 * and the undropped P (P, the same layout), v = I: dP = dout_h v^T is dout's first T columns. */
static void cudnn_dropout_grads(int B, int T, int NH, int NKV, int HS, float p, const float *q,
                                const float *k, const float *dout, const float *P, const float *pd,
                                double *dq, double *dk, double *dv) {
    int G = NH / NKV;
    size_t ldq = (size_t)NH * HS, ldkv = (size_t)NKV * HS;
    double scale = 1.0 / sqrt((double)HS);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < T; i++) {
                const float *Pi = P + (((size_t)b * NH + h) * T + i) * T, *pdi = pd + (Pi - P);
                size_t qi = ((size_t)b * T + i) * ldq + (size_t)h * HS;
                double D = 0.0;
                for (int j = 0; j < T; j++) D += dout[qi + j] * (double)bf(pdi[j]);
                for (int j = 0; j < T; j++) {
                    size_t kj = ((size_t)b * T + j) * ldkv + (size_t)(h / G) * HS;
                    double M = pdi[j] != 0.0f ? 1.0 / (1.0 - p) : 0.0;
                    double ds = Pi[j] * (M * dout[qi + j] - D);
                    for (int d = 0; d < HS; d++) {
                        dq[qi + d] += ds * k[kj + d] * scale;
                        dk[kj + d] += ds * q[qi + d] * scale;
                        dv[kj + d] += pdi[j] * (double)dout[qi + d];
                    }
                }
            }
}

/* got (the GPU's, n values) within frac of the largest |want| */
static void compare_double(const char *tensor, const float *got, const double *want, size_t n,
                           double frac) {
    double mx = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(got[i] - want[i]);
        worst = d > worst || d != d ? d : worst;
    }
    printf("%-58s %-6s n=%-8zu max abs %.2e  (%.2e of max) vs the masks read back\n", op_name,
           tensor, n, worst, mx > 0 ? worst / mx : 0.0);
    CHECK(worst <= frac * mx);
}

static void test_dropout_readback(AttentionImpl impl, int B, int T, int NH, int NKV, int HS,
                                  int causal, int pad, float p) {
    if (impl == ATTENTION_CUDNN && !use_cudnn()) return;
    const char *who = impl == ATTENTION_CUDNN ? "cudnn" : "bf16";
    dut->set_precision(PRECISION_BF16);
    size_t BTQ = (size_t)B * T * NH * HS, BTK = (size_t)B * T * NKV * HS, rows = (size_t)B * NH * T;
    float *eye = calloc(BTK, sizeof *eye);
    for (size_t r = 0; r < (size_t)B * T * NKV; r++) eye[r * HS + r / NKV % T] = 1.0f;
    Pair *q = pair_random(BTQ, 1.0f), *k = pair_random(BTK, 1.0f), *v = pair_upload(eye, BTK * 4);
    Pair *mask = attention_mask(B, T, pad, 0), *dout = pair_random(BTQ, 1.0f);
    Pair *out = pair_new(BTQ * 4), *lse = pair_new(rows * 4), *dq = pair_new(BTQ * 4);
    Pair *dk = pair_new(BTK * 4), *dv = pair_new(BTK * 4),
         *scratch = attention_scratch(B, T, NH, NKV, HS);
    Pair *saved = attention_saved(PRECISION_BF16, B, T, NH, NKV, HS);
    /* the CPU's P without dropout; then the GPU's dropped P: seed 7, seed 8, seed 7 again */
    ref->attention_forward(F(out, 0), NULL, 0, F(lse, 0), NULL, F(q, 0), NH * HS, F(k, 0), F(v, 0),
                           NKV * HS, I(mask, 0), causal, 0, NULL, attn_score_plain(HS), 0.0f, 7,
                           F(scratch, 0), B, T, NH, NKV, HS);
    float *P = malloc(rows * T * 4), *pd[3];
    for (int run = 0; run < 3; run++) {
        dut->attention_forward(F(out, 1), NULL, 0, F(lse, 1), F(saved, 1), F(q, 1), NH * HS,
                               F(k, 1), F(v, 1), NKV * HS, I(mask, 1), causal, 0, NULL,
                               attn_score_plain(HS), p, run == 1 ? 8 : 7, F(scratch, 1), B, T, NH,
                               NKV, HS);
        float *o = malloc(BTQ * 4);
        dut->download(o, out->mem[1], BTQ * 4);
        status_ok();
        pd[run] = malloc(rows * T * 4);
        for (size_t r = 0; r < rows; r++) { /* row (b*NH + h)*T + i of P: out[b, i, h, 0..T) */
            size_t b = r / ((size_t)NH * T), h = r / T % NH, i = r % T;
            size_t at = ((b * T + i) * NH + h) * HS;
            memcpy(pd[run] + r * T, o + at, T * 4);
            if (!run) memcpy(P + r * T, F(out, 0) + at, T * 4);
        }
        free(o);
    }
    NAME("%s attention_forward B=%d T=%d NH=%d NKV=%d HS=%d%s pad=%d p=%.1f", who, B, T, NH, NKV,
         HS, causal ? " causal" : "", pad, p);
    size_t kept = 0, dropped = 0, off = 0, moved = 0, same = 0;
    double mx = 0.0;
    for (size_t e = 0; e < rows * T; e++) mx = P[e] > mx ? P[e] : mx;
    for (size_t e = 0; e < rows * T; e++) {
        if (P[e] == 0.0f) { /* hidden: never visible to cuDNN either */
            off += pd[0][e] != 0.0f;
            continue;
        }
        pd[0][e] == 0.0f ? dropped++ : kept++;
        if (pd[0][e] != 0.0f && fabs(pd[0][e] * (1.0 - p) - P[e]) > ATT_BF16_TOL * mx) off++;
        moved += (pd[1][e] == 0.0f) != (pd[0][e] == 0.0f);
        same += pd[2][e] == pd[0][e];
    }
    double n = (double)(kept + dropped), sigma = sqrt(n * p * (1.0 - p));
    printf("%-58s %zu of %zu visible P dropped (p n = %.0f, sigma %.1f), %zu off P / (1 - p), "
           "%zu masks moved by another seed\n",
           op_name, dropped, kept + dropped, n * p, sigma, off, moved);
    CHECK(off == 0);
    CHECK(same == kept + dropped); /* the same seed, bit for bit */
    CHECK(fabs((double)dropped - n * p) <= 4.0 * sigma);
    CHECK(moved > 0);
    /* backward of the seed-7 forward (the last) with the masks read back */
    int reads = !saved; /* a backend that saves nothing reads q, k, v and out */
    dut->attention_backward(F(dq, 1), F(dk, 1), F(dv, 1), F(dout, 1), reads ? F(q, 1) : NULL,
                            reads ? F(k, 1) : NULL, reads ? F(v, 1) : NULL, NH * HS, NKV * HS,
                            reads ? F(out, 1) : NULL, NULL, 0, F(lse, 1), F(saved, 1), I(mask, 1),
                            causal, 0, NULL, attn_score_plain(HS), p, 7, F(scratch, 1), B, T, NH,
                            NKV, HS, OPS_SET);
    NAME("%s attention_backward B=%d T=%d NH=%d NKV=%d HS=%d%s pad=%d p=%.1f", who, B, T, NH, NKV,
         HS, causal ? " causal" : "", pad, p);
    double *want = calloc(BTQ + 2 * BTK, sizeof *want);
    cudnn_dropout_grads(B, T, NH, NKV, HS, p, F(q, 0), F(k, 0), F(dout, 0), P, pd[0], want,
                        want + BTQ, want + BTQ + BTK);
    float *got = malloc((BTQ + 2 * BTK) * 4);
    dut->download(got, dq->mem[1], BTQ * 4);
    dut->download(got + BTQ, dk->mem[1], BTK * 4);
    dut->download(got + BTQ + BTK, dv->mem[1], BTK * 4);
    status_ok();
    compare_double("dq", got, want, BTQ, ATT_BF16_TOL);
    compare_double("dk", got + BTQ, want + BTQ, BTK, ATT_BF16_TOL);
    compare_double("dv", got + BTQ + BTK, want + BTQ + BTK, BTK, ATT_BF16_TOL);
    for (int run = 0; run < 3; run++) free(pd[run]);
    free(P), free(eye), free(want), free(got);
    pairs_free();
    dut->set_attention(ATTENTION_LORAFT, NULL);
    dut->set_precision(PRECISION_FP32);
}

/* generation: n queries at positions pos0.. over the L = pos0 + n + later cached keys (the
 * later ones hidden, as a decode step's over the whole cache: on the GPU the same bits as over
 * its own keys alone, so a recorded decode step gives the logits of one run op by op); then
 * the new keys and values into a cache at those positions */
/* joined: the new queries, keys and values as rows [q | k | v] (linear_outputs_join), and out's
 * bf16 copy written too. cache_write copies, then (a second cache) turns q and k by rope. */
static void test_attention_cached(int n, int pos0, int later, int NH, int NKV, int HS, int joined,
                                  int window) {
    int L = pos0 + n + later, W = NKV * HS, at[64], ldq = NH * HS + (joined ? 2 * W : 0);
    int ld = joined ? ldq : W;
    for (int i = 0; i < n; i++) at[i] = pos0 + i;
    Pair *pos = pair_upload(at, (size_t)n * sizeof *at);
    Pair *q = pair_random((size_t)n * ldq, att_amp), *out = pair_new((size_t)n * NH * HS * 4);
    Pair *k = pair_random((size_t)L * W, att_amp), *v = pair_random((size_t)L * W, 1.0f);
    size_t a = ref->attention_cached_scratch(n, L, NH, HS);
    size_t b = dut->attention_cached_scratch(n, L, NH, HS);
    Pair *scratch = pair_new((a > b ? a : b) * sizeof(float));
    int ldo = NH * HS + 3; /* bf16(out) into rows of an adapted o's input copy */
    Pair *ob = joined ? pair_poisoned_bf16((size_t)n * ldo) : NULL;
    BACKENDS(w, o) {
        o->attention_cached(F(out, w), ob ? ob->mem[w] : NULL, ldo, F(q, w), ldq, F(k, w), F(v, w),
                            I(pos, w), NULL, 0, window, att_score(HS), F(scratch, w), n, L, NH, NKV,
                            HS);
    }
    NAME("attention_cached n=%d pos0=%d later=%d NH=%d NKV=%d HS=%d joined=%d window=%d%s", n, pos0,
         later, NH, NKV, HS, joined, window, score_name());
    compare("out", out, GEMM_TOL);
    if (ob) compare_bf16("out_bf16", ob, 1e-6);
    if (later) {
        size_t bytes = (size_t)n * NH * HS * sizeof(float);
        Pair *own = pair_new(bytes);
        dut->attention_cached(F(own, 1), NULL, NH * HS, F(q, 1), ldq, F(k, 1), F(v, 1), I(pos, 1),
                              NULL, 0, window, att_score(HS), F(scratch, 1), n, L - later, NH, NKV,
                              HS);
        float *whole = malloc(bytes), *alone = malloc(bytes);
        dut->download(whole, F(out, 1), bytes);
        dut->download(alone, F(own, 1), bytes);
        CHECK(!memcmp(whole, alone, bytes));
        free(whole), free(alone);
    }
    Pair *k_new = joined ? q : pair_random((size_t)n * W, 1.0f);
    Pair *v_new = joined ? q : pair_random((size_t)n * W, 1.0f);
    size_t k0 = joined ? (size_t)NH * HS : 0, v0 = joined ? k0 + W : 0;
    Pair *kc = pair_random((size_t)L * W, 1.0f), *vc = pair_random((size_t)L * W, 1.0f);
    BACKENDS(w, o) {
        o->cache_write(F(k, w), F(v, w), NULL, 0, F(k_new, w) + k0, F(v_new, w) + v0, ld, I(pos, w),
                       NULL, 0, NULL, n, NH, NKV, HS);
        o->cache_write(F(kc, w), F(vc, w), F(q, w), ldq, F(k_new, w) + k0, F(v_new, w) + v0, ld,
                       I(pos, w), NULL, 0, att_rope_freqs(1e5f, HS), n, NH, NKV, HS);
    }
    NAME("cache_write n=%d at %d of %d W=%d ld=%d (then rope, scale %g, %d dims)", n, pos0, L, W,
         ld, att_rope_scale, att_rope_dims ? att_rope_dims : HS);
    compare("k", k, EXACT);
    compare("v", v, EXACT);
    compare("q rope", q, ROPE_TOL); /* and joined: k's and v's columns of q untouched */
    compare("k rope", kc, ROPE_TOL);
    compare("v rope", vc, EXACT);
    pairs_free();
}

/* A batched decode step: one query each of n of S sequences (seq[i], in no order) at their own
 * positions of caches of `stride` rows, L = stride keys at most (a graph's), against the CPU; then
 * the new keys and values into each sequence's row, turned by rope with q. */
static void test_attention_cached_seqs(int n, int S, int stride, int NH, int NKV, int HS,
                                       int window) {
    int W = NKV * HS, at[128], seq[128];
    for (int i = 0; i < n; i++) seq[i] = (7 * i + 3) % S, at[i] = (int)((37u * i + 5) % stride);
    Pair *pos = pair_upload(at, (size_t)n * sizeof *at), *sq = pair_upload(seq, n * sizeof *seq);
    Pair *q = pair_random((size_t)n * NH * HS, att_amp), *out = pair_new((size_t)n * NH * HS * 4);
    Pair *k = pair_random((size_t)S * stride * W, att_amp);
    Pair *v = pair_random((size_t)S * stride * W, 1.0f);
    size_t a = ref->attention_cached_scratch(n, stride, NH, HS);
    size_t b = dut->attention_cached_scratch(n, stride, NH, HS);
    Pair *scratch = pair_new((a > b ? a : b) * sizeof(float));
    BACKENDS(w, o) {
        o->attention_cached(F(out, w), NULL, 0, F(q, w), NH * HS, F(k, w), F(v, w), I(pos, w),
                            I(sq, w), stride, window, att_score(HS), F(scratch, w), n, stride, NH,
                            NKV, HS);
    }
    NAME("attention_cached of %d sequences n=%d stride=%d NH=%d NKV=%d HS=%d window=%d%s", S, n,
         stride, NH, NKV, HS, window, score_name());
    compare("out", out, GEMM_TOL);
    Pair *k_new = pair_random((size_t)n * W, 1.0f), *v_new = pair_random((size_t)n * W, 1.0f);
    BACKENDS(w, o) {
        o->cache_write(F(k, w), F(v, w), F(q, w), NH * HS, F(k_new, w), F(v_new, w), W, I(pos, w),
                       I(sq, w), stride, att_rope_freqs(1e5f, HS), n, NH, NKV, HS);
    }
    NAME("cache_write of %d sequences n=%d stride=%d W=%d (rope)", S, n, stride, W);
    compare("q rope", q, ROPE_TOL);
    compare("k rope", k, ROPE_TOL);
    compare("v", v, EXACT);
    pairs_free();
}

/* Head sizes past 128 (Gemma's 256; 160 and 200 at run time, 200 with zero columns): the f32
 * kernels' eight dimensions a lane, the tensor-core kernels' wide shapes (one m16 tile a warp,
 * 16-row backward tiles, dk and dv in warps of their own), and the cache's: causal GQA with a
 * sliding window and rope (cos and sin scaled; gradients turned as stored at 256, by a pass at
 * 160), padded non-causal with dropout, no dropout over tiles that hide no key, one gradient at a
 * time, first writers, [q | k | v] rows, then decoding over a cache (splits, window, GEMMs) and
 * the cache's write. */
static void test_attention_wide(void) {
    att_window = 17, att_rope = 1e5f, att_rope_scale = 1.3f;
    test_attention(2, 45, 4, 2, 256, 1, 7, 0.1f, 0);
    test_attention(2, 37, 4, 2, 160, 1, 5, 0.1f, 0);
    test_attention_bf16(2, 45, 4, 2, 256, 1, 7, 0.1f, G_ALL);
    test_attention_bf16(2, 37, 4, 2, 160, 1, 5, 0.1f, G_ALL);
    test_attention_cached(7, 0, 0, 4, 2, 256, 0, 0); /* cache_write's turn, scaled */
    att_window = 0, att_rope = 0.0f, att_rope_scale = 1.0f;
    test_attention(1, 40, 2, 2, 256, 0, 9, 0.1f, 0);           /* padded, dropout */
    test_attention_bf16(2, 70, 2, 2, 256, 0, 20, 0.1f, G_ALL); /* and the rounded reference */
    test_attention_bf16(2, 40, 2, 2, 200, 0, 9, 0.1f, G_ALL);  /* HP 208: 8 zero columns */
    test_attention_bf16(1, 80, 2, 1, 256, 1, 0, 0.0f, G_ALL);  /* p = 0, whole tiles visible */
    test_attention_bf16(2, 37, 4, 2, 256, 1, 5, 0.1f, G_DW);   /* dk alone: P from dv's warps */
    test_attention_bf16(2, 37, 4, 2, 256, 0, 5, 0.1f, G_DINP | G_DB); /* dq, and dv alone */
    att_set = 1;
    test_attention(2, 45, 4, 2, 256, 1, 7, 0.1f, 1);
    test_attention_bf16(2, 45, 4, 2, 256, 1, 7, 0.1f, G_ALL);
    for (int bf16 = 0; bf16 < 2; bf16++) test_attention_joined(1, 20, 2, 2, 256, 1, 0.1f, bf16);
    att_set = 0;
    for (int joined = 0; joined < 2; joined++) {
        test_attention_cached(1, 69, 30, 4, 2, 256, joined, 0);  /* a decode step, two splits */
        test_attention_cached(3, 130, 5, 4, 1, 160, joined, 17); /* MQA, a window */
        test_attention_cached(64, 0, 0, 8, 2, 256, joined, 9);   /* 512 query rows: the GEMMs */
    }
}

/* Gemma's scores (ops.h AttnScore): a scale other than 1 / sqrt(HS) (Gemma 2 27B's 1 / sqrt(144),
 * Gemma 3 27B's 1 / sqrt(168)) and Gemma 2's soft-capping, at caps that bend scores of a few
 * units (q, k in [-2, 2)): the f32 kernels (four and eight dimensions a lane), the tensor-core
 * kernels at HP 64 (two m16 tiles a warp), 128, 256 (dk and dv in warps of their own) and a
 * run-time size, with causal, window, padding and dropout, whole visible tiles (no mask at all),
 * rope's gradients turned as stored into first writers; then decoding (two splits, one, the
 * GEMMs' softmax); then uncapped scores of tens of units. */
static void test_attention_score(void) {
    att_scale = 1.0f / sqrtf(144.0f), att_window = 17; /* the scale alone */
    test_attention(2, 45, 4, 2, 128, 1, 7, 0.1f, 0);
    test_attention_bf16(2, 45, 4, 2, 128, 1, 7, 0.1f, G_ALL);
    att_scale = 0.0f, att_softcap = 1.5f, att_amp = 2.0f, att_window = 0; /* the cap alone */
    test_attention(2, 37, 4, 2, 64, 0, 5, 0.1f, 0);
    test_attention_bf16(2, 70, 4, 2, 64, 1, 20, 0.1f, G_ALL);
    test_attention_bf16(1, 130, 2, 1, 48, 1, 0, 0.0f, G_ALL);
    att_scale = 1.0f / sqrtf(168.0f), att_softcap = 2.0f; /* both */
    test_attention(1, 40, 2, 1, 256, 1, 9, 0.1f, 0);
    test_attention_bf16(2, 45, 4, 2, 256, 1, 7, 0.1f, G_ALL);
    att_window = 17;
    test_attention_bf16(2, 70, 2, 2, 128, 1, 20, 0.1f, G_ALL);
    att_window = 0, att_rope = 1e5f, att_set = 1;
    test_attention_bf16(2, 37, 4, 2, 64, 1, 5, 0.1f, G_ALL);
    att_rope = 0.0f, att_set = 0;
    for (int joined = 0; joined < 2; joined++)
        test_attention_cached(1, 69, 30, 9, 3, 64, joined, 0);
    test_attention_cached(3, 40, 5, 4, 1, 256, 0, 17);
    test_attention_cached(64, 0, 0, 8, 2, 128, 0, 9);
    att_scale = 0.0f, att_softcap = 0.0f;
    /* scores of tens of units (|q|, |k| up to 6): forward's lazy running max moves after a
     * row's first tile too, by more than STALE_MAX, and out is rescaled then */
    att_amp = 6.0f;
    test_attention_bf16(2, 150, 4, 2, 64, 1, 9, 0.0f, G_ALL);
    test_attention_bf16(2, 150, 4, 2, 128, 0, 9, 0.1f, G_ALL);
    att_amp = 1.0f;
}

/* ---- cross-entropy ----
 * shift: dlogits that many floats into their buffer, so that its rows lie against 16-byte
 * boundaries otherwise than the logits' (the kernel's path one value a load) */
static void test_cross_entropy(int N, int V, float amp, int with_grad, int shift) {
    Pair *logits = pair_random((size_t)N * V, amp), *labels = pair_ints(N, 0, V);
    if (N > 2) { /* one ignored row (HF's -100) */
        int32_t ignore = -100;
        ref->upload((int32_t *)labels->mem[0] + 1, &ignore, sizeof ignore);
        dut->upload((int32_t *)labels->mem[1] + 1, &ignore, sizeof ignore);
    }
    Pair *loss = pair_new(N * sizeof(float));
    Pair *dl = with_grad ? pair_random((size_t)N * V + shift, 1.0f) : NULL;
    BACKENDS(w, o) {
        float *d = dl ? F(dl, w) + shift : NULL;
        o->cross_entropy(F(loss, w), d, F(logits, w), I(labels, w), 1.0f / N, N, V);
    }
    NAME("cross_entropy N=%d V=%d amp=%g grad=%d shift=%d", N, V, amp, with_grad, shift);
    compare("loss", loss, GEMM_TOL);
    if (with_grad) compare("dlog", dl, ELEM_TOL);
    pairs_free();
}

/* In place (dlogits == logits): the LM head's use of the row kernel. */
static void test_cross_entropy_in_place(int N, int V) {
    Pair *x = pair_random((size_t)N * V, 5.0f), *labels = pair_ints(N, 0, V);
    Pair *loss = pair_new(N * sizeof(float));
    BACKENDS(w, o) {
        o->cross_entropy(F(loss, w), F(x, w), F(x, w), I(labels, w), 1.0f / N, N, V);
    }
    NAME("cross_entropy in place N=%d V=%d", N, V);
    compare("loss", loss, GEMM_TOL);
    compare("dlog", x, ELEM_TOL);
    pairs_free();
}

/* ---- LM head + cross-entropy in chunks ----
 * grads: G_DINP (dh), G_DW (dW); every third label ignored (-100); rows: a weight per row in
 * [-1, 1) (row_scale) or none; bf16: on W's bf16 copy, as the model runs a frozen head under
 * precision bf16 (the CPU's reference takes the same bf16 operands: f32 tolerances); softcap:
 * the logits soft-capped (0: not), then of a few units (W in [-1, 1)), which a cap of 1.5 bends
 * (slopes down to about 0.1), else about 0.3 (W in [-0.1, 0.1)). lm_listed: the head computes
 * the rows whose label counts alone, through a row list (the others' losses stay 0, their dh
 * as it was). */
static int lm_listed;
/* test_lm_head's head carries an adapter of this rank (peft's lm_head target; 0: none), u and B
 * in [-0.3, 0.3), scale 0.6, and computes its du and dB with dh */
static int lm_lora;
/* and divides its logits by this temperature after the cap (RL's: rloo, grpo) */
static float lm_temperature = 1.0f;
/* and forms each row's entropy (1: OpsEntropy.out alone; 2: with its gradient's scale in
 * [-20, 20), RL's bonus, whose term then outweighs the loss's in dh; 0: neither) */
static int lm_entropy;
static void test_lm_head(int N, int C, int V, int chunk, int grads, int rows, int bf16,
                         float softcap) {
    float wamp = softcap > 0.0f ? 1.0f : 0.1f;
    Pair *h = pair_random((size_t)N * C, 1.0f);
    Pair *W = pair_random((size_t)V * C, wamp);
    Pair *Wb = bf16 ? pair_new((size_t)V * C * sizeof(uint16_t)) : NULL;
    if (Wb) BACKENDS(w, o) o->dequantize_rows_bf16(Wb->mem[w], W->mem[w], GGML_F32, 0, V, C, C);
    int32_t *lab = malloc(N * sizeof *lab), *list = malloc(N * sizeof *list), listed = 0;
    for (int n = 0; n < N; n++) lab[n] = n % 3 == 1 ? -100 : (int32_t)(rng_next(&rng) % V);
    for (int n = 0; n < N; n++)
        if (lab[n] >= 0) list[listed++] = n;
    Pair *labels = pair_upload(lab, N * sizeof *lab), *loss = pair_new(N * sizeof(float));
    Pair *head_rows = lm_listed ? pair_upload(list, listed * sizeof *list) : NULL;
    free(lab), free(list);
    Pair *scratch = pair_new(ops_lm_head_scratch(N, C, V, chunk, bf16, 0) * sizeof(float));
    Pair *dh = grads & G_DINP ? pair_random((size_t)N * C, 1.0f) : NULL;
    Pair *dW = grads & G_DW ? pair_random((size_t)V * C, 1.0f) : NULL;
    Pair *row_scale = rows ? pair_random(N, 1.0f) : NULL;
    Pair *ent = lm_entropy ? pair_random(N, 1.0f) : NULL; /* unlisted rows: left as they are */
    Pair *ent_scale = lm_entropy == 2 ? pair_random(N, 20.0f) : NULL;
    int R = lm_lora, lg = R && (grads & G_DINP);
    Pair *u = R ? pair_random((size_t)N * R, 0.3f) : NULL,
         *B = R ? pair_random((size_t)V * R, 0.3f) : NULL;
    Pair *du = lg ? pair_random((size_t)N * R, 1.0f) : NULL,
         *dB = lg ? pair_random((size_t)V * R, 1.0f) : NULL;
    if (R) scratch = pair_new(ops_lm_head_scratch(N, C, V, chunk, bf16, R) * sizeof(float));
    BACKENDS(w, o) {
        OpsHeadLora hl = {F(u, w), F(B, w), F(du, w), F(dB, w), 0.6f, R};
        OpsEntropy oe = {F(ent, w), F(ent_scale, w)};
        o->lm_head_cross_entropy(F(loss, w), F(dh, w), F(dW, w), F(h, w), F(W, w),
                                 Wb ? Wb->mem[w] : NULL, R ? &hl : NULL, I(labels, w),
                                 I(head_rows, w), 1.0f / N, F(row_scale, w), ent ? &oe : NULL,
                                 (OpsLogitMap){softcap, lm_temperature}, F(scratch, w),
                                 lm_listed ? listed : N, C, V, chunk);
    }
    NAME("lm_head N=%d C=%d V=%d chunk=%d grads=%d rows=%d%s softcap %g T %g%s%s%s", N, C, V, chunk,
         grads, rows, bf16 ? " bf16" : "", softcap, lm_temperature, lm_listed ? " listed" : "",
         R ? " lora" : "", (const char *[]){"", " entropy", " entropy+scale"}[lm_entropy]);
    /* bf16 logits: the backends sum in other orders, so a logit may round to the next bf16
     * value on one of them, which moves its row's loss by up to that step (the others' terms by
     * about 1/V of it): one step at the largest logit, C * wamp (|h| < 1), or soft-capped at the
     * cap, above which the cap's slope shrinks faster than the steps grow. Such a label logit is
     * rare (a sum within its f32 error of a rounding boundary), so all but a few rows agree as
     * f32 does (unrounded logits on one side would move nearly every row). */
    double top = softcap > 0.0f ? softcap : C * wamp;
    double step = ldexp(1.0, ilogb(top) - 7) / lm_temperature; /* a step, then divided */
    for (int k = 0; k < (ent ? 2 : 1); k++) { /* an entropy moves as the loss does */
        const char *what = k ? "ent" : "loss";
        const Pair *p = k ? ent : loss;
        if (bf16) {
            compare(what, p, step, 1e-4);
            compare_but(what, p, (size_t)N / 32 + 1, GEMM_TOL);
        } else {
            compare(what, p, GEMM_TOL);
        }
    }
    if (dh) compare("dh", dh, GEMM_TOL);
    if (dW) compare("dW", dW, GEMM_TOL);
    if (du) compare("du", du, GEMM_TOL);
    if (dB) compare("dB", dB, GEMM_TOL);
    pairs_free();
}

/* ---- optimizer: one adamw_step over a table of tensors of odd sizes, cut in pieces as
 * optimizer.c cuts them, every other one decaying, every third at 16 times the learning rate
 * (LoRA+'s B); three steps with fresh gradients of
 * amplitude gamp, whose norm is above max_norm (the clip is active) when clips, then one with a
 * NaN gradient that must leave everything as it was. The norms: double sums in another order,
 * 1e-10 relative. ---- */
enum { MAX_PIECES = 64 };
static void test_adamw(const size_t *sizes, int count, float gamp, float max_norm, int clips) {
    size_t n = 0;
    for (int i = 0; i < count; i++) n += sizes[i];
    Pair *param = pair_random(n, 1.0f), *m = pair_new(n * sizeof(float));
    Pair *v = pair_new(n * sizeof(float)), *norm = pair_new(sizeof(double));
    Pair *scratch = pair_new(OPS_ADAMW_SCRATCH * sizeof(double));
    AdamWTensor tab[2][MAX_PIECES];
    size_t nt = 0;
    for (int i = 0, off = 0; i < count; off += (int)sizes[i++]) {
        for (int w = 0; w < 2; w++)
            ops_adamw_pieces(tab[w] + nt, F(param, w) + off, off, sizes[i], i % 2 == 0,
                             i % 3 == 1 ? 16.0f : 1.0f);
        nt += ops_adamw_pieces(NULL, NULL, off, sizes[i], 0, 1.0f);
    }
    Pair *table = pair_new(nt * sizeof(AdamWTensor));
    ref->upload(table->mem[0], tab[0], table->bytes);
    dut->upload(table->mem[1], tab[1], table->bytes);
    const char *kind = clips ? "clipped" : max_norm > 0 ? "below max_norm" : "no clip";
    NAME("adamw_step %d tensors in %zu pieces, n=%zu, %s", count, nt, n, kind);
    double got[2] = {0, 0};
    for (int step = 1; step <= 4; step++) {
        Pair *g = pair_random(n, gamp);
        float nan = NAN, *before = malloc(n * sizeof *before), *after = malloc(n * sizeof *after);
        if (step == 4) BACKENDS(w, o) o->upload(F(g, w) + n / 2, &nan, sizeof nan);
        dut->download(before, param->mem[1], n * sizeof(float));
        AdamWHyper h = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, max_norm, step};
        BACKENDS(w, o) {
            o->adamw_step(table->mem[w], (int)nt, F(g, w), F(m, w), F(v, w), n, h, norm->mem[w],
                          scratch->mem[w]);
            o->download(&got[w], norm->mem[w], sizeof(double));
        }
        status_ok();
        printf("%-58s %-6s step %d cpu %.15g cuda %.15g\n", op_name, "norm", step, got[0], got[1]);
        if (step < 4) {
            CHECK_CLOSE(got[1], got[0], 0.0, 1e-10);
            CHECK((max_norm > 0 && got[0] > max_norm) == clips);
        }
        dut->download(after, param->mem[1], n * sizeof(float));
        if (step == 4)
            CHECK(isnan(got[0]) && isnan(got[1]) && !memcmp(before, after, n * sizeof *after));
        free(before), free(after);
    }
    compare("param", param, 1e-6, 1e-5);
    compare("m", m, 1e-7, 1e-5);
    compare("v", v, 1e-9, 1e-5);
    pairs_free();
}

/* ---- preference pairs: dpo_loss and reward_loss ----
 * Both backends run pair_loss.h's math in double; the GPU sums a row in another order and has
 * its own exp / log1p. The token losses here are multiples of 1/256, so every row's sum is exact
 * in any order and the log-probs must be equal; the stats within 1e-12 relative (the device's
 * transcendentals), the float gradient weights within 1e-6. Past PAIR_THREADS (256) pairs the
 * kernel runs a second round. */
static void compare_stats(const Pair *stats, int n) {
    double a[8], b[8];
    ref->download(a, stats->mem[0], (size_t)n * sizeof *a);
    dut->download(b, stats->mem[1], (size_t)n * sizeof *b);
    status_ok();
    printf("%-58s %-6s cpu", op_name, "stats");
    for (int k = 0; k < n; k++) printf(" %.15g", a[k]);
    printf(", cuda");
    for (int k = 0; k < n; k++) printf(" %.15g", b[k]);
    printf("\n");
    for (int k = 0; k < n; k++) CHECK_CLOSE(b[k], a[k], 1e-12, 1e-12);
}

/* ipo, or sigmoid with label smoothing; with_ref 0: log-probs only; grads: row_scale too */
static void test_dpo_loss(int B, int T, int ipo, int with_ref, int grads) {
    float *loss = malloc((size_t)B * T * sizeof *loss), *lp = malloc(B * sizeof *lp);
    int32_t *lab = malloc((size_t)B * T * sizeof *lab);
    for (size_t i = 0; i < (size_t)B * T; i++) { /* row 1 has no labelled token (IPO's n = 1) */
        lab[i] = i / T == 1 || i % T < (size_t)T / 3 || rng_next(&rng) % 5 == 0 ? -100 : 7;
        loss[i] = lab[i] < 0 ? 0.0f : (float)(rng_next(&rng) % 2048) / 256.0f;
    }
    for (int b = 0; b < B; b++) lp[b] = -(float)T * (1.0f + rng_next_uniform(&rng)); /* refs */
    Pair *losses = pair_upload(loss, (size_t)B * T * sizeof *loss);
    Pair *labels = pair_upload(lab, (size_t)B * T * sizeof *lab);
    Pair *refs = with_ref ? pair_upload(lp, B * sizeof *lp) : NULL;
    free(loss), free(lab), free(lp);
    Pair *stats = pair_new(4 * sizeof(double)), *logps = pair_random(B, 1.0f);
    Pair *row_scale = grads ? pair_random((size_t)B * T, 1.0f) : NULL;
    BACKENDS(w, o) {
        o->dpo_loss(stats->mem[w], F(logps, w), F(row_scale, w), F(losses, w), I(labels, w),
                    F(refs, w), ipo ? 0.5f : 0.1f, ipo ? 0.0f : 0.1f, ipo, 0.5f, B, T);
    }
    NAME("dpo_loss B=%d T=%d %s ref=%d grads=%d", B, T, ipo ? "ipo" : "sigmoid", with_ref, grads);
    compare("logps", logps, EXACT);
    if (row_scale) compare("rowsc", row_scale, 0.0, 1e-6);
    compare_stats(stats, 4);
    pairs_free();
}

/* grads: dscores too (zero but at the pooled tokens) */
static void test_reward_loss(int B, int T, int grads) {
    int32_t *pos = malloc(B * sizeof *pos);
    for (int b = 0; b < B; b++) pos[b] = (int32_t)(rng_next(&rng) % T);
    Pair *scores = pair_random((size_t)B * T, 4.0f), *at = pair_upload(pos, B * sizeof *pos);
    free(pos);
    Pair *stats = pair_new(4 * sizeof(double)), *rewards = pair_random(B, 1.0f);
    Pair *dscores = grads ? pair_random((size_t)B * T, 1.0f) : NULL;
    BACKENDS(w, o) {
        o->reward_loss(stats->mem[w], F(rewards, w), F(dscores, w), F(scores, w), I(at, w), 0.5f, B,
                       T);
    }
    NAME("reward_loss B=%d T=%d grads=%d", B, T, grads);
    compare("reward", rewards, EXACT);
    if (dscores) compare("dscore", dscores, 0.0, 1e-6);
    compare_stats(stats, 4);
    pairs_free();
}

/* GRPO's and RLOO's token weights over B rows of T tokens, a third of them off the completions
 * (share 0): with a reference (beta 0.3) and old log-probs whose ratio spans [0.5, 1.8] (by
 * sequence, a row's about its own: by the sum, its tokens' product) against the clipping range
 * [0.8, 1.28] (cispo's cap 1.2), by token or by sequence (GSPO's mean, RLOO's sum), each policy
 * term; the entropy mask at entropy_quantile and the bonus at entropy_coef (either not 0: the
 * tokens' entropies given) */
static void grpo_weights_case(int B, int T, int with_ref, int with_old, OpsGrpoLevel level,
                              OpsGrpoPolicy policy, float delta, int kl_corrected, float off_policy,
                              float entropy_quantile, float entropy_coef) {
    int sequence = level != OPS_GRPO_TOKEN;
    size_t n = (size_t)B * T;
    float *h = malloc(n * sizeof *h), *loss = malloc(n * sizeof *loss);
    for (size_t i = 0; i < n; i++) h[i] = i % 3 ? 0.02f * (1.0f + rng_next_uniform(&rng)) : 0.0f;
    Pair *share = pair_upload(h, n * sizeof *h);
    for (size_t i = 0; i < n; i++) loss[i] = (float)(rng_next(&rng) % 2048) / 256.0f;
    Pair *losses = pair_upload(loss, n * sizeof *loss);
    for (size_t i = 0; i < n; i++) h[i] = (float)(rng_next(&rng) % 2048) / 256.0f;
    Pair *refs = pair_upload(h, n * sizeof *h);
    float row_ratio = 1.0f; /* by sequence: a row's tokens near a ratio of its own, to clip */
    for (size_t i = 0; i < n; i++) {
        if (sequence && i % T == 0) row_ratio = 0.5f + 1.3f * rng_next_uniform(&rng);
        float u = rng_next_uniform(&rng);
        float ratio = sequence ? row_ratio * (0.95f + 0.1f * u) : 0.5f + 1.3f * u;
        /* by the sum: a root, the row's tokens with a share being about 2 T / 3 */
        h[i] = loss[i] + logf(level == OPS_GRPO_SEQUENCE_SUM ? powf(ratio, 1.5f / T) : ratio);
    }
    Pair *olds = pair_upload(h, n * sizeof *h);
    for (int b = 0; b < B; b++) { /* a row's advantage */
        float a = 3.0f * rng_next_uniform(&rng) - 1.5f;
        for (int t = 0; t < T; t++) h[(size_t)b * T + t] = a;
    }
    Pair *adv = pair_upload(h, n * sizeof *h);
    /* entropies in [0, 8), half of them on a grid of 1/16 (ties at the quantile's ranks) */
    int with_entropy = entropy_quantile > 0.0f || entropy_coef != 0.0f;
    for (size_t i = 0; with_entropy && i < n; i++)
        h[i] = i % 2 ? 8.0f * rng_next_uniform(&rng) : (float)(rng_next(&rng) % 128) / 16.0f;
    Pair *entropy = with_entropy ? pair_upload(h, n * sizeof *h) : NULL;
    free(h), free(loss);
    Pair *stats = pair_new(7 * sizeof(double)), *row_scale = pair_random(n, 1.0f);
    Pair *ent_scale = entropy_coef != 0.0f ? pair_random(n, 1.0f) : NULL;
    OpsGrpoTerms t = grpo_test_terms(with_ref, level, policy, delta);
    t.kl_corrected = kl_corrected, t.off_policy = off_policy;
    t.entropy_quantile = entropy_quantile, t.entropy_coef = entropy_coef;
    BACKENDS(w, o) {
        o->grpo_weights(stats->mem[w], F(row_scale, w), F(ent_scale, w), F(share, w), F(adv, w),
                        F(losses, w), F(entropy, w), with_ref ? F(refs, w) : NULL,
                        with_old ? F(olds, w) : NULL, t, B, T);
    }
    static const char *const names[] = {"clip", "cispo", "sapo", "vespo"};
    NAME("grpo_weights %s B=%d T=%d%s%s%s%s%s%s entropy q %g coef %g", names[policy], B, T,
         with_ref ? " ref" : "", with_old ? " old" : "",
         level == OPS_GRPO_SEQUENCE_SUM ? " sum"
         : sequence                     ? " sequence"
                                        : "",
         delta ? " delta" : "", kl_corrected ? "" : " plain-kl",
         off_policy > 0 ? " off-policy-mask" : "", entropy_quantile, entropy_coef);
    compare("rowsc", row_scale, 0.0, 1e-6);
    if (ent_scale) compare("entsc", ent_scale, EXACT);
    compare_stats(stats, 7);
    if (with_entropy) { /* the mask keeps some completion tokens, not all; the bonus alone, all */
        double got[7];
        ref->download(got, stats->mem[0], sizeof got);
        CHECK(got[6] == got[2] || entropy_quantile > 0.0f);
        CHECK(entropy_quantile == 0.0f || (got[6] > 0.0 && got[6] < got[2]));
    }
    pairs_free();
}

static void test_grpo_weights(int B, int T, int with_ref, int with_old, OpsGrpoLevel level,
                              OpsGrpoPolicy policy, float delta, int kl_corrected) {
    grpo_weights_case(B, T, with_ref, with_old, level, policy, delta, kl_corrected, 0.0f, 0.0f,
                      0.0f);
}

/* ---- errors: reported by status(), never a crash ---- */
static void test_errors(void) {
    LfError e = {{0}};
    CHECK(dut->alloc((size_t)1 << 50) == NULL); /* 1 PiB */
    CHECK(dut->status(&e) == 0);                /* out of memory is not a sticky op error */

    Pair *logits = pair_random(4 * 3, 1.0f), *labels = pair_ints(4, 3, 4); /* label == V */
    Pair *loss = pair_new(4 * sizeof(float));
    dut->cross_entropy(F(loss, 1), NULL, F(logits, 1), I(labels, 1), 1.0f, 4, 3);
    CHECK(dut->status(&e) == -1);
    printf("bad label: %s\n", e.msg);
    CHECK(strstr(e.msg, "label") != NULL);
    Pair *h = pair_random(4 * 5, 1.0f), *W = pair_random(3 * 5, 1.0f);
    Pair *scratch = pair_new(ops_lm_head_scratch(4, 5, 3, 2, 0, 0) * sizeof(float));
    dut->lm_head_cross_entropy(F(loss, 1), NULL, NULL, F(h, 1), F(W, 1), NULL, NULL, I(labels, 1),
                               NULL, 1.0f, NULL, NULL, OPS_LOGITS_PLAIN, F(scratch, 1), 4, 5, 3, 2);
    CHECK(dut->status(&e) == -1);
    printf("bad label (lm head): %s\n", e.msg);
    CHECK(strstr(e.msg, "label") != NULL);
    Pair *Wb = pair_new(3 * 5 * sizeof(uint16_t)), *dW = pair_new(3 * 5 * sizeof(float));
    labels = pair_ints(4, 0, 3);
    dut->lm_head_cross_entropy(F(loss, 1), NULL, F(dW, 1), F(h, 1), F(W, 1), Wb->mem[1], NULL,
                               I(labels, 1), NULL, 1.0f, NULL, NULL, OPS_LOGITS_PLAIN,
                               F(scratch, 1), 4, 5, 3, 2);
    CHECK(dut->status(&e) == -1);
    printf("bf16 head with a weight gradient: %s\n", e.msg);
    CHECK(strstr(e.msg, "no weight gradient") != NULL);

    Pair *x = pair_random(2 * 3 * 10, 1.0f), *lse = pair_new(2 * 3 * 3 * sizeof(float));
    /* NH = 3 not a multiple of NKV = 2 */
    dut->attention_forward(F(x, 1), NULL, 0, F(lse, 1), NULL, F(x, 1), 6, F(x, 1), F(x, 1), 4, NULL,
                           0, 0, NULL, attn_score_plain(2), 0.0f, 1, F(lse, 1), 2, 3, 3, 2, 2);
    CHECK(dut->status(&e) == -1);
    printf("bad heads: %s\n", e.msg);
    CHECK(strstr(e.msg, "NKV") != NULL);
    CHECK(dut->status(&e) == 0); /* reported once, then clear */
    Pair *y = pair_random(257, 1.0f), *l1 = pair_new(sizeof(float));
    /* past the kernels' head size */
    dut->attention_forward(F(y, 1), NULL, 0, F(l1, 1), NULL, F(y, 1), 257, F(y, 1), F(y, 1), 257,
                           NULL, 1, 0, NULL, attn_score_plain(257), 0.0f, 1, F(l1, 1), 1, 1, 1, 1,
                           257);
    CHECK(dut->status(&e) == -1);
    printf("head size: %s\n", e.msg);
    CHECK(strstr(e.msg, "HS > 256") != NULL);
    /* rope turns pairs of the head: more of them than it holds are refused */
    dut->attention_forward(F(x, 1), NULL, 0, F(lse, 1), NULL, F(x, 1), 3, F(x, 1), F(x, 1), 3, NULL,
                           1, 0, rope_plain(1e4f, 4), attn_score_plain(3), 0.0f, 1, F(lse, 1), 2, 3,
                           1, 1, 3);
    CHECK(dut->status(&e) == -1);
    printf("rope, 2 pairs in a head of 3: %s\n", e.msg);
    CHECK(strstr(e.msg, "at most HS/2 frequencies") != NULL);
    dut->set_precision(PRECISION_BF16); /* bf16 without the buffer it saves q, k, v in */
    dut->attention_forward(F(x, 1), NULL, 0, F(lse, 1), NULL, F(x, 1), 6, F(x, 1), F(x, 1), 6, NULL,
                           0, 0, NULL, attn_score_plain(2), 0.0f, 1, F(x, 1), 2, 3, 3, 3, 2);
    dut->set_precision(PRECISION_FP32);
    CHECK(dut->status(&e) == -1);
    printf("no saved buffer: %s\n", e.msg);
    CHECK(strstr(e.msg, "saved buffer") != NULL);
    pairs_free();
}

/* ---- TF32 GEMMs (set_precision(TF32): model.precision tf32), real GPU only ----
 * TF32 rounds the GEMM inputs to 10 explicit mantissa bits (unit roundoff 2^-11), so
 * each product is off by up to ~1e-3 relative and a K-term sum by ~1e-3 * sqrt(K) * the
 * typical term. Tolerance, stated: every element within 4e-3 of the largest |cpu| value
 * of its tensor (FP32 parity is 1e-4 elementwise). */
static void test_tf32(void) {
    int N = 256, C = 768, OC = 768;
    dut->set_precision(PRECISION_TF32);
    Pair *x = pair_random((size_t)N * C, 1.0f), *W = pair_random((size_t)OC * C, 1.0f);
    Pair *bias = pair_random(OC, 1.0f);
    Pair *out = pair_new((size_t)N * OC * sizeof(float)), *dout = pair_random((size_t)N * OC, 1.0f);
    Pair *dx = pair_random((size_t)N * C, 1.0f), *dW = pair_random((size_t)OC * C, 1.0f);
    BACKENDS(w, o) {
        o->matmul_forward(F(out, w), F(x, w), F(W, w), F(bias, w), N, C, OC);
        o->matmul_backward(F(dx, w), F(dW, w), F(dout, w), F(x, w), F(W, w), N, C, OC, OPS_ADD);
    }
    NAME("tf32 matmul (bias) N=%d C=%d OC=%d", N, C, OC);
    compare_scaled("out", out, 4e-3);
    compare_scaled("dinp", dx, 4e-3);
    compare_scaled("dw", dW, 4e-3);
    pairs_free();
    int B = 2, T = 128, NH = 12;
    size_t BTC = (size_t)B * T * C, nl = (size_t)B * NH * T;
    Pair *q = pair_random(BTC, 1.0f), *k = pair_random(BTC, 1.0f), *v = pair_random(BTC, 1.0f);
    Pair *o_ = pair_new(BTC * sizeof(float)), *lse = pair_new(nl * sizeof(float));
    Pair *scratch = attention_scratch(B, T, NH, NH, C / NH);
    BACKENDS(w, o) {
        o->attention_forward(F(o_, w), NULL, 0, F(lse, w), NULL, F(q, w), C, F(k, w), F(v, w), C,
                             NULL, 0, 0, NULL, attn_score_plain(C / NH), 0.0f, 5, F(scratch, w), B,
                             T, NH, NH, C / NH);
    }
    NAME("tf32 attention_forward B=%d T=%d C=%d NH=%d", B, T, C, NH);
    compare_scaled("lse", lse, 4e-3);
    compare_scaled("out", o_, 4e-3);
    pairs_free();
    dut->set_precision(PRECISION_FP32);
}

int main(void) {
    const char *self = getenv("LORAFT_PARITY_SELF"), *full = getenv("LORAFT_PARITY_FULL");
    setvbuf(stdout, NULL, _IOLBF, 0); /* report lines and error lines in order in a log */
    if (self && !strcmp(self, "1"))
        dut = &ops_cpu;
    else {
#ifdef LORAFT_HAVE_CUDA
        require_cuda_device();
        dut = &ops_cuda;
#else
        skip("built without CUDA");
#endif
    }
    emulated = dut != ref && loraft_cuda_emulated && loraft_cuda_emulated();
    ref->set_step(&parity_step), dut->set_step(&parity_step);
    full_grid = !emulated || (full && !strcmp(full, "1"));
    printf("comparing %s against %s%s\n", dut->name, ref->name,
           emulated
               ? (full_grid ? " (CUDA emulation, full grid)" : " (CUDA emulation, reduced grid)")
               : "");
    /* past the grid-stride cap: cuda_blocks() stops at 65,536 blocks of 256 */
    size_t big = (size_t)65536 * 256 + 4099;
    size_t elem_sizes[] = {1, 1000, 100003};
    for (int i = 0; i < 3; i++) test_elementwise(elem_sizes[i], 0);
    test_first_writers(37, 67, 45, 4);
    test_first_writers(130, 576, 192, 8); /* aligned rows: the vector paths */
    test_elementwise(big, !full_grid);
    test_elementwise_unaligned(1003);
    test_embedding(1, 1, 5, 0);
    test_embedding(1, 9, 24, 0); /* generation: wpe at given positions */
    test_embedding(2, 7, 13, 1);
    test_embedding(3, 33, 64, 0);
    test_embedding(3, 50, 40, 1);  /* 150 rows: several row groups in the dwtt kernel */
    test_embedding(4, 64, 300, 0); /* rows of three pieces of 128 (dwte's owners), ids repeated */
    test_embedding_lora(1, 24, 4);
    test_embedding_lora(150, 64, 16);
    test_embedding_bf16(1, 9, 24, 0);
    test_embedding_bf16(3, 33, 64, 1);
    test_layernorm(1, 13);
    test_layernorm(37, 768);
    test_layernorm(5, 1030);
    test_layernorm(200, 67); /* several row groups in the dweight/dbias kernel */
    test_layernorm(9, 300);  /* four chunks a lane */
    test_layernorm(3, 2100); /* past sixteen chunks a lane: the tail read again */
    test_rmsnorm(1, 13);
    test_rmsnorm(37, 576); /* SmolLM2's hidden size */
    test_rmsnorm(200, 67);
    test_rmsnorm(9, 130); /* two chunks a lane */
    test_rmsnorm(3, 2100);
    test_head_norm(37, 16, 128, 16 * 128 + 2 * 8 * 128); /* Qwen3-0.6B's q in rows [q | k | v] */
    test_head_norm(5, 3, 30, 97);                        /* a head past a lane's first value */
    test_head_norm(4, 2, 256, 512);                      /* the largest head */
    for (int rms = 0; rms < 2; rms++)
        for (int keep = 0; keep < 2; keep++) {
            test_residual_norm(37, 768, rms, keep ? 0.1f : 0.0f, keep);
            test_residual_norm(5, 67, rms, keep ? 0.0f : 0.1f, keep); /* off the 4-value grid */
            test_residual_norm(3, 2100, rms, 0.1f, keep); /* the tail's x in sum or out */
        }
    test_glu(ACT_SILU, 1, 1, 0, G_ALL);
    test_glu(ACT_SILU, 100003, 100003, 0, G_ALL);
    test_glu(ACT_GELU_TANH, 100003, 100003, 0, G_ALL);
    test_glu(ACT_SILU, 37 * 259, 259, 1, G_ALL);
    test_glu(ACT_GELU_TANH, 64 * 96, 96, 1, G_ALL);
    test_swiglu_rows(37, 1536); /* SmolLM2's F */
    test_swiglu_rows(5, 13);    /* rows of odd length: no float4 */
    test_glu(ACT_SILU, 1000, 1000, 0, G_DINP);
    test_glu(ACT_SILU, 1000, 1000, 0, G_DW);
    test_saved_bf16(37, 768);
    test_saved_bf16(5, 67); /* rows and totals off the 4-value grid */
    test_norm_grad_bf16(37, 768);
    test_norm_grad_bf16(5, 67);
    test_bf16_outputs(37 * 768, 768);
    test_bf16_outputs(5 * 67, 67);
    test_matmul(1, 5, 3, 1, G_ALL, 0);
    test_matmul(37, 67, 45, 0, G_ALL, 0);
    test_matmul(128, 768, 64, 1, G_ALL, 0);
    test_matmul(37, 67, 45, 1, G_DW, 0); /* only some gradients: the skip paths */
    test_matmul(37, 67, 45, 1, G_DINP, 0);
    test_matmul(37, 67, 45, 1, G_DB, 0);
    test_matmul(1, 5, 3, 1, G_ALL, 1);    /* a bias under 16-byte aligned: its own pass */
    test_matmul(37, 67, 45, 1, G_ALL, 4); /* 16 bytes: cuBLASLt told each alignment */
    test_bias_backward(37, 45, 45);
    test_bias_backward(1000, 70, 97); /* row splits joined by atomics; rows wider than OC */
    if (emulated) {
        test_lt_plans(NULL, 29, 51, 33, 6);
        test_lt_plans("heuristic", 23, 41, 19, 0);
        test_lt_plans("matmul", 31, 43, 21, 2);
    } else
        printf("SKIP cuBLASLt plan counts: the emulation counts cuBLASLt's calls\n");
    static const int packed[] = {GGML_F32,  GGML_F16,  GGML_BF16, GGML_Q8_0, GGML_Q4_0, GGML_Q4_1,
                                 GGML_Q5_0, GGML_Q5_1, GGML_Q4_K, GGML_Q5_K, GGML_Q6_K, QUANT_NF4};
    for (int t = 0; t < 12; t++) {
        test_dequantize(packed[t], 3, 512, 0, 3);
        test_dequantize(packed[t], 7, 768, 2, 4);  /* rows from the middle */
        test_dequantize(packed[t], 9, 1280, 3, 5); /* an odd count from row 3: 5 K blocks a row */
        test_dequantize_bf16(packed[t], 7, 768, 2, 4, 768);
        test_dequantize_bf16(packed[t], 3, 512, 0, 3, 512 + 8); /* room for B, r 8 */
        test_dequantize_bf16(packed[t], 9, 1280, 3, 5, 1280 + 2);
    }
    test_dequantize(GGML_Q4_1, 1536, 576, 0, 1536); /* SmolLM2's MLP weight, whole */
    test_dequantize_bf16(GGML_Q4_1, 1536, 576, 0, 1536, 576 + 16);
    test_matmul_bf16(1, 6, 3, 1, 6, 6, 0, 0);
    test_matmul_bf16(37, 67, 45, 0, 67, 67, 0, 0);
    test_matmul_bf16(37, 67, 45, 1, 67, 67, 0, 0); /* ragged: C, OC odd (bf16 rows of odd length) */
    test_matmul_bf16(37, 67, 45, 1, 71, 71, 4, 0); /* room for u, B and A beside x and W */
    test_matmul_bf16(128, 768, 64, 1, 768, 768, 0, 0);
    test_matmul_bf16(1, 6, 3, 1, 6, 6, 0, 1); /* out and bias 4, then 16 bytes past alignment */
    test_matmul_bf16(37, 67, 45, 1, 71, 71, 4, 4);
    test_matmul_bf16(64, 576, 1536, 0, 584, 584, 8,
                     0); /* SmolLM2's MLP: gate / up, down backwards */
    test_round_bf16_many();
    static const int fused_ranks[] = {1, 4, 16, 32, 64, 80}; /* every kernel variant, chunks */
    for (int r = 0; r < 6; r++) {
        test_lora_fused(37, 67, 45, fused_ranks[r], 3, 0.3f);
        test_lora_fused(5, 13, 7, fused_ranks[r], 1, 0.0f);
    }
    test_lora_fused(64, 576, 192, 8, 3, 0.1f);   /* SmolLM2's q, k, v (k's shape for all three) */
    test_lora_fused(64, 576, 1536, 16, 2, 0.0f); /* gate, up */
    test_lora_fused(64, 576, 192, 64, 3, 0.0f);  /* r 64: four chunks of 16 per linear */
    test_lora_fused(38, 68, 45, 12, 2, 0.1f);    /* half a row group, half a chunk, float4 */
    /* the weight gradients' sums: many splits of N, several column tiles, 16-byte loads */
    test_lora_fused(1100, 576, 192, 8, 1, 0.1f);
    test_lora_fused(1100, 576, 1536, 16, 1, 0.0f);     /* two rank chunks; dB over six tiles */
    static const int ranks[] = {1, 4, 16, 32, 64, 80}; /* every kernel variant + cuBLAS */
    for (int r = 0; r < 6; r++) {
        test_lora(1, 13, 7, ranks[r], 0.0f, G_ALL);
        test_lora(37, 67, 45, ranks[r], 0.3f, G_ALL);
        test_lora(37, 67, 45, ranks[r], 0.3f, G_DINP); /* dA and dB NULL */
    }
    test_lora(37, 67, 45, 16, 0.3f, G_DINP | G_DB); /* dA NULL, dinp set */
    test_lora(37, 67, 45, 4, 0.3f, G_DW);           /* dA only */
    test_lora(37, 67, 45, 80, 0.3f, G_DB);          /* dB only */
    test_lora(64, 768, 768, 8, 0.1f, G_DW | G_DB);
    test_lora(38, 67, 45, 12, 0.0f, G_ALL);    /* R, N not multiples of 8, 4: cuBLAS at p = 0, */
    test_lora(38, 67, 45, 12, 0.3f, G_ALL);    /* the down kernel's partial chunk and row group */
    test_lora(64, 3072, 768, 8, 0.1f, G_ALL);  /* FFN output: input width F > OC */
    test_lora(37, 300, 45, 130, 0.3f, G_DINP); /* masked dinp: two rank chunks, C > 256 */
    static const int dora_rows[] = {1, 77, 300}, dora_cols[] = {1, 24, 100};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++) {
            int N = dora_rows[i], OC = dora_cols[k], wide = (OC + 7) / 4 * 4; /* 4 or more past */
            test_dora_forward(N, OC, OC + 3, 1, 0, DORA_OUT); /* rows off 16-byte alignment */
            test_dora_forward(N, OC, wide, 0, 1, DORA_OUT);
            test_dora_forward(N, OC, OC, 1, 1, DORA_PRE_ALONE);
            test_dora_forward(N, OC, wide, 1, 0, DORA_IN_PLACE);
            test_dora_forward(N, OC, OC + 1, 0, 1, DORA_IN_PLACE);
            test_dora_forward(N, OC, OC + 3, 1, 1, DORA_IN_PLACE);
            test_dora_backward(N, OC, OC, 0);
            test_dora_backward(N, OC, OC + 5, 1);
        }
    test_dora_forward(130, 576, 768, 1, 1, DORA_IN_PLACE); /* q's columns of rows [q | k | v] */
    test_dora_backward(1100, 300, 576, 1); /* 18 splits of 62 rows, two column blocks */
    test_dora_backward(10000, 24, 24, 0);  /* 128 splits (the most) of 79 rows: 127 used */
    test_dora_backward(130, 576, 768, 1);
    for (int acc = 0; acc < 2; acc++) {
        test_lora_dropout_rest(1, 1, 1, 0.5f, 0, acc);
        test_lora_dropout_rest(37, 67, 67, 0.1f, 0, acc); /* odd C: a lone last column */
        test_lora_dropout_rest(37, 67, 80, 0.3f, 1, acc); /* bf16 rows apart (an input copy) */
        test_lora_dropout_rest(130, 576, 576, 0.05f, acc, acc);
        test_lora_dropout_rest(20, 64, 64, 0.0f, 0, acc);
    }
    static const int norm_ranks[] = {1, 4, 16};
    for (int r = 0; r < 3; r++) {
        test_dora_norm(1, 1, 1, norm_ranks[r]);
        test_dora_norm(1, 13, 16, norm_ranks[r]);
        test_dora_norm(37, 67, 70, norm_ranks[r]);
        test_dora_norm(100, 300, 301, norm_ranks[r]); /* more columns than a block's threads */
    }
    test_dora_norm(192, 576, 576 + 8, 8); /* SmolLM2's k_proj, its rows in a wider buffer */
    test_dora_norm(5, 1030, 1030, 12);
    test_dora_norm(3, 40, 41, 300); /* B's row staged in two rounds of the block */
    test_attention(1, 1, 1, 1, 4, 0, 0, 0.0f, 0);
    test_attention(2, 7, 3, 3, 4, 0, 2, 0.0f, 0);
    test_attention(2, 7, 3, 3, 4, 0, 2, 0.2f, 1);
    test_attention(3, 33, 4, 4, 16, 0, 5, 0.0f, 0);
    test_attention(3, 33, 4, 4, 16, 0, 5, 0.1f, 0);
    test_attention(2, 70, 2, 2, 48, 0, 20, 0.1f, 0);
    test_attention(2, 128, 12, 12, 64, 0, 0, 0.0f, 0); /* BERT-base heads: NH = 12, HS = 64 */
    test_attention(2, 128, 12, 12, 64, 0, 37, 0.1f, 0);
    if (full_grid) test_attention(2, 512, 12, 12, 64, 0, 150, 0.1f, 0);
    test_attention(4097, 2, 16, 16, 4, 0, 0, 0.1f, 0); /* B*NH > 65,535 */
    test_attention(2, 7, 3, 3, 4, 1, 2, 0.2f, 0);      /* decoders: causal */
    test_attention(3, 33, 4, 1, 16, 1, 5, 0.1f, 0);    /* causal, one KV head (MQA) */
    test_attention(2, 70, 9, 3, 64, 1, 0, 0.0f, 0);    /* SmolLM2's heads: 9 q, 3 KV */
    test_attention(2, 70, 9, 3, 64, 1, 20, 0.1f, 1);
    test_attention(2, 45, 4, 2, 128, 1, 7, 0.1f, 0); /* HS = 128, the narrow kernels' largest */
    test_attention(1, 40, 2, 2, 128, 0, 3, 0.0f, 0);
    test_attention_grads(2, 37, 4, 2, 32, 1, 5, 0.1f, 0, G_DW);          /* dk only */
    test_attention_grads(2, 37, 4, 2, 32, 0, 5, 0.1f, 0, G_DINP | G_DB); /* dq, dv */
    test_attention_bf16(1, 1, 1, 1, 4, 0, 0, 0.0f, G_ALL);
    test_attention_bf16(2, 7, 3, 3, 4, 0, 2, 0.2f, G_ALL);
    test_attention_bf16(3, 33, 4, 4, 16, 0, 5, 0.1f, G_ALL);
    test_attention_bf16(2, 70, 2, 2, 48, 0, 20, 0.1f, G_ALL); /* HS not a multiple of 32 */
    test_attention_bf16(2, 128, 12, 12, 64, 0, 37, 0.1f, G_ALL);
    test_attention_bf16(3, 33, 4, 1, 16, 1, 5, 0.1f, G_ALL);  /* causal, MQA */
    test_attention_bf16(2, 70, 9, 3, 64, 1, 20, 0.1f, G_ALL); /* SmolLM2's heads */
    test_attention_bf16(2, 45, 4, 2, 128, 1, 7, 0.1f, G_ALL);
    test_attention_bf16(2, 70, 2, 2, 128, 0, 20, 0.1f, G_ALL); /* HP 128's kernels, padded */
    for (int bf16 = 0; bf16 < 2; bf16++) {
        test_attention_joined(2, 37, 9, 3, 64, 1, 0.1f, bf16); /* SmolLM2's heads */
        test_attention_joined(1, 20, 4, 4, 6, 0, 0.0f, bf16);  /* HS 6: rows of odd halves */
    }
    test_attention_bf16(2, 150, 2, 1, 6, 1, 9, 0.1f, G_ALL); /* HS 6: 10 zero columns; 3 tiles */
    test_attention_bf16(2, 37, 4, 2, 5, 1, 5, 0.1f, G_ALL);  /* HS 5: stores a column at a time */
    test_attention_bf16(2, 37, 4, 2, 32, 1, 5, 0.1f, G_DW);  /* dk only */
    test_attention_bf16(2, 37, 4, 2, 32, 0, 5, 0.1f, G_DINP | G_DB); /* dq, dv */
    /* p = 0 (kernels without dropout) over tiles that hide no key: unpadded, and causal rows
     * far enough below the diagonal that whole key tiles are visible */
    test_attention_bf16(2, 128, 4, 4, 64, 0, 0, 0.0f, G_ALL);
    test_attention_bf16(1, 200, 3, 1, 64, 1, 0, 0.0f, G_ALL);
    test_attention_bf16(1, 160, 2, 2, 128, 1, 9, 0.0f, G_ALL);
    /* HS 64's two m16 tiles a warp with one warp a block (T 20) and with mostly padding; HS
     * 128's dk/dv with one pair of warps a block */
    test_attention_bf16(3, 20, 4, 2, 64, 1, 3, 0.1f, G_ALL);
    test_attention_bf16(2, 20, 4, 2, 128, 1, 3, 0.1f, G_ALL);
    test_attention_bf16(2, 40, 2, 2, 64, 0, 30, 0.0f, G_ALL);
    /* sliding windows (Mistral's, Qwen2's): key tiles before a block's window skipped, tiles
     * across a window's edge masked, dk/dv's query tiles ending past the last key's window; f32,
     * then bf16 at HP 64 (two m16 tiles a warp), 128 and a run-time size; a window of 1 sees
     * only the query itself */
    att_window = 17;
    test_attention(2, 70, 9, 3, 64, 1, 20, 0.1f, 0);
    test_attention(3, 33, 4, 1, 16, 1, 5, 0.0f, 0);
    test_attention_bf16(2, 150, 9, 3, 64, 1, 9, 0.1f, G_ALL);
    test_attention_bf16(2, 160, 2, 2, 128, 1, 9, 0.0f, G_ALL);
    test_attention_bf16(2, 100, 4, 2, 48, 1, 5, 0.1f, G_ALL);
    att_window = 64;
    test_attention_bf16(1, 200, 3, 1, 64, 1, 0, 0.0f, G_ALL); /* whole tiles past the window */
    test_attention_bf16(1, 130, 2, 2, 128, 1, 0, 0.1f, G_ALL);
    att_window = 1;
    test_attention(2, 40, 2, 2, 32, 1, 3, 0.1f, 0);
    test_attention_bf16(2, 40, 2, 2, 32, 1, 3, 0.1f, G_ALL);
    att_window = 0;
    /* the dropout check cudnn's masks get (read back through v = I), on loraft's own: what it
     * asks holds of the masks the reference draws too */
    test_dropout_readback(ATTENTION_LORAFT, 2, 64, 4, 4, 64, 0, 9, 0.1f);
    test_dropout_readback(ATTENTION_LORAFT, 2, 40, 6, 2, 48, 1, 5, 0.2f);
    att_set = 1; /* first writers over NaNs: f32 and bf16, padded, causal GQA */
    test_attention(2, 70, 9, 3, 64, 1, 20, 0.1f, 1);
    test_attention_bf16(2, 70, 9, 3, 64, 1, 20, 0.1f, G_ALL);
    test_attention_bf16(2, 70, 2, 2, 128, 0, 20, 0.1f, G_ALL);
    for (int bf16 = 0; bf16 < 2; bf16++) { /* rows [dq | dk | dv]: stored turned, or a pass */
        test_attention_joined(2, 37, 9, 3, 64, 1, 0.1f, bf16);
        test_attention_joined(1, 20, 4, 4, 6, 0, 0.0f, bf16);
    }
    att_rope = 1e5f; /* rope's gradients turned as they are stored (bf16, HS 64), or by a pass */
    test_attention(2, 70, 9, 3, 64, 1, 20, 0.1f, 0);
    test_attention_bf16(2, 70, 9, 3, 64, 1, 20, 0.1f, G_ALL);
    test_attention_bf16(2, 37, 4, 2, 48, 1, 5, 0.1f, G_ALL);
    att_set = 0;
    /* rope, gradients added: turned as stored, or a pass after the forward turn of what was there
     */
    test_attention(2, 70, 9, 3, 64, 1, 20, 0.1f, 0);
    test_attention(1, 5, 17, 1, 16, 1, 0, 0.0f, 0);  /* more heads than rope's pass takes at once */
    test_attention(2, 45, 4, 2, 128, 1, 7, 0.1f, 0); /* more frequencies than a warp */
    test_attention_bf16(2, 70, 9, 3, 64, 1, 20, 0.1f,
                        G_ALL); /* SmolLM2's: copies and stores turn */
    test_attention_bf16(2, 45, 4, 2, 128, 1, 7, 0.1f, G_ALL); /* HS 128's */
    test_attention_bf16(3, 20, 4, 2, 64, 1, 3, 0.1f, G_ALL);  /* two m16 tiles, one warp */
    test_attention_bf16(2, 37, 4, 2, 48, 1, 5, 0.1f, G_ALL); /* copies turn; the gradients a pass */
    test_attention_bf16(2, 37, 4, 2, 36, 1, 5, 0.1f, G_ALL); /* halves of 18: a pass both ways */
    test_attention_bf16(2, 37, 4, 2, 64, 1, 5, 0.1f, G_DW);  /* dk only */
    test_attention_bf16(2, 37, 4, 2, 64, 1, 5, 0.1f, G_DINP | G_DB); /* dq, dv */
    att_rope_scale = 1.3f; /* YaRN's attention factor: turned by a pass (added to), as copied
                              and as stored */
    test_attention(2, 70, 9, 3, 64, 1, 20, 0.1f, 0);
    test_attention_bf16(2, 70, 9, 3, 64, 1, 20, 0.1f, G_ALL);
    test_attention_bf16(2, 37, 4, 2, 48, 1, 5, 0.1f, G_ALL);
    test_attention_cached(7, 0, 0, 4, 2, 16, 0, 0); /* cache_write's turn */
    att_rope_scale = 1.0f;
    /* partial rotary embeddings (Phi-4-mini's 96 of 128): copies turn 48 pairs and copy the rest,
     * gradients a pass; 36 of 64 (pairs not whole chunks): a pass both ways; the cache's write
     * copies k's dims past the turned ones, 4 floats a thread or (17 pairs) one */
    att_rope_dims = 96;
    test_attention(2, 45, 4, 2, 128, 1, 7, 0.1f, 0);
    test_attention_bf16(2, 45, 4, 2, 128, 1, 7, 0.1f, G_ALL);
    test_attention_cached(7, 0, 0, 4, 2, 128, 0, 0);
    att_rope_dims = 36;
    test_attention(2, 37, 4, 2, 64, 1, 5, 0.1f, 0);
    test_attention_bf16(2, 37, 4, 2, 64, 1, 5, 0.1f, G_ALL);
    test_attention_cached(7, 0, 0, 4, 2, 64, 0, 0);
    att_rope_dims = 34;
    test_attention_cached(3, 5, 0, 4, 2, 64, 1, 0);
    att_rope_dims = 0;
    att_window = 23; /* a window with rope's gradients turned as stored, first writers */
    att_set = 1;
    test_attention_bf16(2, 70, 9, 3, 64, 1, 20, 0.1f, G_ALL);
    test_attention(2, 45, 4, 2, 128, 1, 7, 0.1f, 0);
    att_set = 0, att_window = 0;
    att_rope = 0.0f;
    for (int joined = 0; joined < 2; joined++) {
        test_attention_cached(1, 0, 0, 1, 1, 4, joined, 0);   /* the first token */
        test_attention_cached(7, 0, 0, 4, 2, 16, joined, 0);  /* a prefill */
        test_attention_cached(1, 69, 0, 9, 3, 64, joined, 0); /* a decode step, SmolLM2's heads */
        test_attention_cached(1, 69, 30, 9, 3, 64, joined,
                              0); /* over the whole cache (a graph's) */
        test_attention_cached(1, 40, 60, 9, 3, 64, joined, 0);  /* one split used of two */
        test_attention_cached(1, 700, 99, 9, 3, 64, joined, 0); /* 11 key splits of 13 */
        test_attention_cached(3, 130, 5, 4, 1, 36, joined, 0);  /* MQA, HS not a multiple of 8 */
        test_attention_cached(64, 0, 0, 8, 2, 128, joined, 0);  /* 512 query rows: the GEMMs */
        test_attention_cached(5, 40, 0, 4, 1, 32, joined,
                              0);                           /* a chunk after a cached prefix, MQA */
        test_attention_cached(1, 3, 5, 2, 2, 6, joined, 0); /* rows of 12 floats: the float path */
        test_attention_cached(2, 8189, 0, 9, 3, 64, joined, 0); /* SmolLM2's last positions */
        /* sliding windows: splits before the window skipped, the join from its first split */
        test_attention_cached(1, 700, 99, 9, 3, 64, joined, 100);
        test_attention_cached(1, 69, 30, 9, 3, 64, joined, 64);
        test_attention_cached(5, 40, 0, 4, 1, 32, joined, 3);
        test_attention_cached(64, 0, 0, 8, 2, 128, joined, 9); /* the GEMMs' softmax */
    }
    test_attention_cached_seqs(8, 8, 112, 9, 3, 64, 0);    /* RLOO's step: 2 splits */
    test_attention_cached_seqs(5, 11, 700, 9, 3, 64, 100); /* 11 splits, a window */
    test_attention_cached_seqs(64, 64, 80, 9, 3, 64, 0);   /* 576 query rows: a warp a row */
    test_attention_cached_seqs(3, 4, 9, 4, 1, 36, 0);      /* MQA, HS not a multiple of 8 */
    test_attention_wide();
    test_attention_score();
    test_cross_entropy(1, 2, 3.0f, 1, 0);
    test_cross_entropy(37, 2, 3.0f, 1, 0);
    test_cross_entropy(16, 1000, 50.0f, 1, 0);
    test_cross_entropy(5, 30522, 10.0f, 0, 0);
    test_cross_entropy(3, 9000, 50.0f, 1, 0); /* several online-softmax chunks a thread */
    test_cross_entropy(37, 2, 200.0f, 1, 0);  /* exp(200) overflows float: the max shift matters */
    test_cross_entropy(16, 1000, 200.0f, 1, 0);
    test_cross_entropy(65536 + 100, 2, 3.0f, 1, 0); /* more rows than the 65,536 blocks */
    test_cross_entropy(9, 1001, 10.0f, 1, 0); /* rows start 0-3 floats past a 16-byte boundary */
    test_cross_entropy(9, 1001, 10.0f, 1, 1); /* dlogits a float off the logits' boundaries */
    test_cross_entropy_in_place(37, 1000);
    test_lm_head(1, 13, 7, OPS_LM_HEAD_CHUNK, G_DINP | G_DW, 0, 0, 0.0f);
    test_lm_head(3, 64, 50257, OPS_LM_HEAD_CHUNK, G_DINP | G_DW, 0, 0,
                 0.0f);                                        /* GPT-2's vocabulary */
    test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 0, 0, 0.0f); /* chunks 16 + 16 + 5 */
    test_lm_head(37, 64, 1000, 16, G_DINP, 0, 0, 0.0f); /* only dh (LoRA: the head is frozen) */
    test_lm_head(37, 64, 1000, 16, G_DW, 0, 0, 0.0f);   /* only dW */
    test_lm_head(37, 64, 1000, 16, 0, 0, 0, 0.0f);      /* neither: evaluation */
    test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 1, 0, 0.0f); /* a weight per row (DPO) */
    test_lm_head(full_grid ? 2100 : 1100, 576, full_grid ? 49152 : 2000, OPS_LM_HEAD_CHUNK,
                 G_DINP | G_DW, 1, 0,
                 0.0f); /* past the default chunk; SmolLM2's C (and V on a GPU) */
    /* the bf16 head: dh's bf16 gradient over the logits, several passes of the block a row */
    test_lm_head(37, 64, 9000, 16, G_DINP, 0, 1, 0.0f);
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 0.0f); /* DPO's row weights */
    test_lm_head(37, 64, 1000, 16, 0, 0, 1, 0.0f);      /* evaluation */
    test_lm_head(3, 64, 50257, OPS_LM_HEAD_CHUNK, G_DINP, 0, 1,
                 0.0f); /* GPT-2's vocabulary, odd V */
    test_lm_head(1030, 64, 300, OPS_LM_HEAD_CHUNK, G_DINP, 1, 1, 0.0f); /* past the default chunk */
    /* soft-capped logits (Gemma 2's final_logit_softcapping): f32 in chunks, bf16's several
     * passes a row, evaluation */
    test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 1, 0, 1.5f);
    test_lm_head(37, 64, 9000, 16, G_DINP, 1, 1, 1.5f);
    test_lm_head(37, 64, 1000, 16, 0, 0, 1, 1.5f);
    /* RL's temperature (rloo, grpo: TRL divides the logits by it), alone and after a cap, in f32
     * and bf16, over a row list */
    lm_temperature = 0.7f;
    test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 1, 0, 0.0f);
    test_lm_head(37, 64, 9000, 16, G_DINP, 1, 1, 0.0f);
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 1.5f);
    lm_listed = 1;
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 0.0f);
    lm_listed = 0;
    lm_temperature = 1.0f;
    /* the rows that count alone, through a row list (SFT's, DPO's): gathered across chunks */
    lm_listed = 1;
    test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 1, 0, 0.0f);
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 0.0f);
    test_lm_head(37, 64, 1000, 16, 0, 0, 1, 0.0f);
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 1.5f);
    lm_listed = 0;
    /* an adapter on the head: its up-projection in the logits, du and dB; f32 and bf16, with the
     * row list, and evaluation */
    lm_lora = 4;
    test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 1, 0, 0.0f);
    test_lm_head(37, 64, 9000, 16, G_DINP, 1, 1, 1.5f);
    test_lm_head(37, 64, 1000, 16, 0, 0, 1, 0.0f);
    lm_listed = 1;
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 0, 0.0f);
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 0.0f);
    lm_listed = 0;
    lm_lora = 0;
    /* RL's entropy, alone and with its gradient (the bonus's scale): f32 (dW too) and bf16, under
     * a temperature, then a cap and a temperature, through a row list, an odd V (rows off the
     * 16-byte boundaries), several passes of the block a row, evaluation; then neither map */
    lm_temperature = 0.7f;
    for (lm_entropy = 1; lm_entropy <= 2; lm_entropy++) {
        test_lm_head(37, 64, 1000, 16, G_DINP | G_DW, 1, 0, 0.0f);
        test_lm_head(37, 64, 1001, 16, G_DINP, 1, 1, 1.5f);
        test_lm_head(5, 64, 9001, 16, G_DINP, 0, 1, 0.0f);
        lm_listed = 1;
        test_lm_head(37, 64, 1001, 16, G_DINP | G_DW, 1, 0, 1.5f);
        test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 0.0f);
        lm_listed = 0;
    }
    lm_temperature = 1.0f;
    lm_entropy = 1;
    test_lm_head(37, 64, 1000, 16, 0, 0, 1, 0.0f);
    lm_entropy = 2;
    test_lm_head(37, 64, 1001, 16, G_DINP | G_DW, 0, 0, 0.0f);
    test_lm_head(37, 64, 1000, 16, G_DINP, 1, 1, 0.0f);
    lm_entropy = 0;
    test_dpo_loss(8, 37, 0, 1, 1);
    test_dpo_loss(6, 50, 1, 1, 1);   /* ipo: log-probs over each row's labelled tokens */
    test_dpo_loss(4, 1000, 0, 0, 0); /* no reference: log-probs only, stats 0 */
    test_dpo_loss(4, 20, 0, 1, 0);   /* evaluation: no row_scale */
    test_dpo_loss(518, 3, 0, 1, 1);  /* 259 pairs: two rounds of the block */
    test_reward_loss(8, 37, 1);
    test_reward_loss(4, 20, 0);
    test_reward_loss(518, 3, 1);
    /* RLOO's: a row's ratio from its tokens' summed log-ratios */
    test_grpo_weights(6, 700, 0, 1, OPS_GRPO_SEQUENCE_SUM, OPS_GRPO_CLIP, 0.0f, 1);  /* long rows */
    test_grpo_weights(1024, 3, 1, 1, OPS_GRPO_SEQUENCE_SUM, OPS_GRPO_CLIP, 0.0f, 1); /* the most */
    test_grpo_weights(1, 7, 1, 0, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1);
    /* many tokens a thread */
    test_grpo_weights(64, 250, 1, 0, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1);
    test_grpo_weights(64, 250, 0, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1);
    test_grpo_weights(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 1.5f, 1);
    test_grpo_weights(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CISPO, 0.0f, 1);
    test_grpo_weights(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_SAPO, 0.0f, 1);
    for (int p = OPS_GRPO_CLIP; p <= OPS_GRPO_SAPO; p++) /* a warp a row: rows past the block's 8 */
        test_grpo_weights(300, 45, 1, 1, OPS_GRPO_SEQUENCE_MEAN, (OpsGrpoPolicy)p,
                          p == OPS_GRPO_CLIP ? 1.5f : 0.0f, 1);
    test_grpo_weights(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 0); /* plain KL */
    /* vespo: a warp a row for its weight, the KL's ratio each token's */
    test_grpo_weights(300, 45, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1);
    test_grpo_weights(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 0);
    test_grpo_weights(300, 45, 1, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CLIP, 0.0f, 0);
    /* the off-policy mask: a warp a row, each token its own ratio or the row's (GSPO), vespo's */
    grpo_weights_case(300, 45, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, 0.05f, 0.0f, 0.0f);
    grpo_weights_case(300, 45, 1, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CLIP, 0.0f, 1, 0.05f, 0.0f,
                      0.0f);
    grpo_weights_case(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1, 0.05f, 0.0f, 0.0f);
    /* the entropy mask (the block's selection of the quantile; at 0.2 most completion tokens
     * kept, at 0.8 few), by token, sequence, vespo's row and under the off-policy mask; the bonus
     * (entropy_scale), alone and with the mask */
    grpo_weights_case(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, 0.0f, 0.2f, 0.0f);
    grpo_weights_case(64, 250, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, 0.0f, 0.8f, 0.01f);
    grpo_weights_case(300, 45, 1, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CLIP, 0.0f, 1, 0.0f, 0.2f,
                      0.01f);
    grpo_weights_case(300, 45, 1, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CISPO, 0.0f, 1, 0.0f, 0.8f,
                      0.0f);
    grpo_weights_case(6, 700, 0, 1, OPS_GRPO_SEQUENCE_SUM, OPS_GRPO_CLIP, 0.0f, 1, 0.0f, 0.8f,
                      0.01f);
    grpo_weights_case(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_VESPO, 0.0f, 1, 0.0f, 0.8f, 0.01f);
    grpo_weights_case(300, 45, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, 0.05f, 0.2f, 0.01f);
    grpo_weights_case(300, 45, 1, 1, OPS_GRPO_SEQUENCE_MEAN, OPS_GRPO_CLIP, 0.0f, 1, 0.05f, 0.8f,
                      0.0f);
    grpo_weights_case(1, 7, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, 0.0f, 0.5f, 0.01f);
    grpo_weights_case(37, 27, 1, 1, OPS_GRPO_TOKEN, OPS_GRPO_CLIP, 0.0f, 1, 0.0f, 0.0f, 0.01f);
    const size_t one[] = {1}, odd[] = {7, 10007, OPS_ADAMW_PIECE + 3, 1, 2 * OPS_ADAMW_PIECE + 5};
    test_adamw(one, 1, 0.1f, 0.0f, 0);
    test_adamw(odd, 5, 0.1f, 0.0f, 0);        /* no clipping */
    test_adamw(odd, 5, 10.0f, 1.0f, 1);       /* norm ~ 1400 */
    test_adamw(odd, 5, 1e-4f, 1.0f, 0);       /* norm ~ 0.014 */
    const size_t long_one[] = {300007, 5};    /* more blocks than the 1024 partial sums */
    test_adamw(long_one, 2, 1.0f, 100.0f, 1); /* norm ~ 316 */
    if (dut != ref) test_errors();
    if (dut != ref && !emulated)
        test_tf32();
    else
        printf("SKIP tf32: needs a real GPU (the emulation and the CPU compute TF32 as FP32)\n");
    status_ok();
    /* model.attention cudnn: a GPU, in a build with cuDNN attention; last, so that a fault in a
     * library this suite cannot see into costs no other case */
    test_attention_cudnn(2, 128, 12, 12, 64, 0, 37, G_ALL); /* DistilBERT's heads, padded */
    test_attention_cudnn(2, 70, 9, 3, 64, 1, 20, G_ALL);    /* SmolLM2's, causal, padded */
    test_attention_cudnn(1, 200, 3, 1, 64, 1, 0, G_ALL);    /* causal MQA, no mask */
    test_attention_cudnn(2, 45, 4, 2, 128, 1, 7, G_ALL);
    test_attention_cudnn(2, 70, 2, 2, 40, 0, 20, G_ALL); /* HS 40 in copies of rows of 48 */
    att_window = 17; /* a sliding window under cudnn: cuDNN's band (left bound) */
    test_attention_cudnn(2, 70, 9, 3, 64, 1, 20, G_ALL);
    att_window = 0;
    att_rope = 1e5f; /* copies turn, gradients a pass */
    test_attention_cudnn(2, 70, 9, 3, 64, 1, 20, G_ALL);
    att_rope = 0.0f;
    if (use_cudnn()) { /* rows [dq | dk | dv]: cuDNN's widened into place */
        att_cudnn = 1;
        test_attention_joined(2, 37, 9, 3, 64, 1, 0.0f, 1);
        att_cudnn = 0;
        dut->set_attention(ATTENTION_LORAFT, NULL);
    }
    test_attention_cudnn(2, 37, 4, 2, 32, 1, 5, G_DW); /* dk only */
    att_scale = 1.0f / sqrtf(168.0f);                  /* Gemma 3 27B's: cuDNN's attention scale */
    test_attention_cudnn(2, 45, 4, 2, 128, 1, 7, G_ALL);
    att_scale = 0.0f;
    test_cudnn_softcap();
    test_dropout_readback(ATTENTION_CUDNN, 2, 64, 4, 4, 64, 0, 9, 0.1f); /* an encoder's, padded */
    test_dropout_readback(ATTENTION_CUDNN, 2, 40, 6, 2, 48, 1, 5, 0.2f); /* causal, GQA, padded */
    return check_report();
}
