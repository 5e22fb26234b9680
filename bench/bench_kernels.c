/* bench_kernels.c: the kernel lab's scoreboard. Times every CUDA op at
 * BERT-base shapes (B=8, T=512, C=768, NH=12, F=3072, R=8; the LM head at
 * SmolLM2's C=576, V=49152) with CUDA events (3 warm-up runs, then 20 timed)
 * and prints GB/s and TFLOP/s next to the H200 roofline, LoRA next to the base
 * GEMM it rides on, the chunked LM head next to the unchunked path, and the CPU
 * op where timing it is cheap.
 *
 * Not a test: it asserts nothing about speed. Without a CUDA device (or in a
 * CPU-only build) it prints "no CUDA device, skipping" and exits 0.
 * LORAFT_CUDA_TF32=1 in the environment lets cuBLAS use TF32 tensor cores for
 * the GEMMs. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "loraft/ops.h"
#include "loraft/rng.h"

#ifdef LORAFT_HAVE_CUDA
#include <cuda_runtime_api.h>

/* H200 SXM: HBM3e bandwidth and dense FP32 (non-tensor) / TF32 tensor peaks */
#define PEAK_BYTES 4.8e12
#define PEAK_FP32 60e12
#define PEAK_TF32 495e12

enum { WARMUP = 3, REPS = 20, CPU_REPS = 3 };
enum { B = 8, T = 512, C = 768, NH = 12, F = 3072, R = 8, N = B * T, V = 30522 };

static const Ops *gpu = &ops_cuda, *cpu = &ops_cpu;
static cudaEvent_t ev0, ev1;
static Rng rng = {42, 0};

/* Mean milliseconds per run of `stmt` on the GPU. */
#define TIME_GPU(ms, stmt)                                                                         \
    do {                                                                                           \
        for (int rep_ = 0; rep_ < WARMUP; rep_++) stmt;                                            \
        cudaEventRecord(ev0, 0);                                                                   \
        for (int rep_ = 0; rep_ < REPS; rep_++) stmt;                                              \
        cudaEventRecord(ev1, 0);                                                                   \
        cudaEventSynchronize(ev1);                                                                 \
        float total_ = 0.0f;                                                                       \
        cudaEventElapsedTime(&total_, ev0, ev1);                                                   \
        (ms) = total_ / REPS;                                                                      \
    } while (0)

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Mean milliseconds per run of `stmt` on the CPU (one warm-up). */
#define TIME_CPU(ms, stmt)                                                                         \
    do {                                                                                           \
        stmt;                                                                                      \
        double t0_ = now_ms();                                                                     \
        for (int rep_ = 0; rep_ < CPU_REPS; rep_++) stmt;                                          \
        (ms) = (now_ms() - t0_) / CPU_REPS;                                                        \
    } while (0)

/* ---- buffers: one set in GPU memory, a few twins in host memory for the CPU
 * rows ---- */
static void *must(void *p, size_t bytes) {
    if (!p) {
        fprintf(stderr, "bench_kernels: cannot allocate %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

/* n floats uniform in [-amp, amp) in the memory of backend o */
static float *randn(const Ops *o, size_t n, float amp) {
    float *h = must(malloc(n * sizeof *h), n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = amp * (2.0f * rng_next_uniform(&rng) - 1.0f);
    float *d = must(o->alloc(n * sizeof *h), n * sizeof *h);
    o->upload(d, h, n * sizeof *h);
    free(h);
    return d;
}

static int32_t *ints(const Ops *o, size_t n, int lo, int hi) {
    int32_t *h = must(malloc(n * sizeof *h), n * sizeof *h);
    for (size_t i = 0; i < n; i++) h[i] = lo + (int32_t)(rng_next(&rng) % (uint64_t)(hi - lo));
    int32_t *d = must(o->alloc(n * sizeof *h), n * sizeof *h);
    o->upload(d, h, n * sizeof *h);
    free(h);
    return d;
}

static float *zeros(const Ops *o, size_t n) {
    return must(o->alloc(n * sizeof(float)), n * sizeof(float));
}

/* ---- the table ---- */
static void header(void) {
    printf("%-40s %9s %9s %6s %9s %6s %7s %10s\n", "op (B=8 T=512 C=768 NH=12 F=3072 R=8)", "ms",
           "GB/s", "%HBM", "TFLOP/s", "%FP32", "%roof", "cpu ms");
}

/* One row: bytes is the minimum traffic, flops the useful arithmetic; %roof is
 * the roofline time (max of bytes/HBM, flops/FP32 peak) over the measured time.
 */
static void row(const char *op, double ms, double bytes, double flops, double cpu_ms) {
    double s = ms * 1e-3, roof = bytes / PEAK_BYTES;
    if (flops / PEAK_FP32 > roof) roof = flops / PEAK_FP32;
    printf("%-40s %9.4f %9.1f %6.1f %9.2f %6.1f %7.1f", op, ms, bytes / s * 1e-9,
           100.0 * bytes / s / PEAK_BYTES, flops / s * 1e-12, 100.0 * flops / s / PEAK_FP32,
           100.0 * roof / s);
    if (cpu_ms > 0) printf(" %10.2f", cpu_ms);
    printf("\n");
}

#define FB 4.0 /* bytes per float */

static void bench_dense_and_lora(void) {
    float *x = randn(gpu, (size_t)N * F, 1.0f), *w = randn(gpu, (size_t)F * C, 0.05f);
    float *bias = randn(gpu, F, 0.1f), *out = zeros(gpu, (size_t)N * F);
    float *dout = randn(gpu, (size_t)N * F, 1.0f), *dx = zeros(gpu, (size_t)N * F);
    float *A = randn(gpu, (size_t)R * F, 0.05f), *Bw = randn(gpu, (size_t)F * R, 0.05f);
    float *u = zeros(gpu, (size_t)N * R), *dA = zeros(gpu, (size_t)R * F);
    float *dB = zeros(gpu, (size_t)F * R), *scratch = zeros(gpu, (size_t)N * F + (size_t)N * R);
    static const int shapes[][2] = {{C, C}, {C, F}, {F, C}};
    for (int s = 0; s < 3; s++) {
        int K = shapes[s][0], M = shapes[s][1];
        double flops = 2.0 * N * K * M, io = FB * ((double)N * K + (double)M * K + (double)N * M);
        char name[64];
        float base, ms;
        TIME_GPU(base, gpu->matmul_forward(out, x, w, bias, N, K, M));
        snprintf(name, sizeof name, "matmul_forward %dx%d (cuBLAS)", K, M);
        row(name, base, io, flops, 0);
        TIME_GPU(ms, gpu->matmul_backward(dx, NULL, NULL, dout, x, w, N, K, M));
        snprintf(name, sizeof name, "matmul_backward %dx%d dinp only", K, M);
        row(name, ms, io, flops, 0);
        TIME_GPU(ms, gpu->lora_forward(out, u, x, A, Bw, 2.0f, 0.1f, 1, scratch, N, K, M, R));
        snprintf(name, sizeof name, "lora_forward %dx%d p=0.1", K, M);
        double lora_io = FB * ((double)N * K + 2.0 * N * M + (double)R * (K + M));
        row(name, ms, lora_io, 2.0 * N * R * (K + M), 0);
        printf("%-40s %9.1f%% of the base GEMM's time\n", "  lora_forward overhead",
               100.0 * ms / base);
        TIME_GPU(ms, gpu->lora_backward(dx, dA, dB, dout, x, u, A, Bw, 2.0f, 0.1f, 1, scratch, N, K,
                                        M, R));
        snprintf(name, sizeof name, "lora_backward %dx%d p=0.1", K, M);
        row(name, ms, FB * (3.0 * N * K + 2.0 * N * M), 6.0 * N * R * (K + M), 0);
    }
    float *ptrs[] = {x, w, bias, out, dout, dx, A, Bw, u, dA, dB, scratch};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) gpu->free(ptrs[i]);
}

static void bench_attention(void) {
    size_t btc = (size_t)N * C, nl = (size_t)B * NH * T;
    float *q = randn(gpu, btc, 1.0f), *k = randn(gpu, btc, 1.0f), *v = randn(gpu, btc, 1.0f);
    float *out = zeros(gpu, btc), *lse = zeros(gpu, nl);
    float *scratch = zeros(gpu, gpu->attention_scratch(B, T, NH, NH));
    float *dout = randn(gpu, btc, 1.0f), *dq = zeros(gpu, btc), *dk = zeros(gpu, btc);
    float *dv = zeros(gpu, btc);
    int32_t *mask = ints(gpu, (size_t)N, 1, 2);
    /* flash-style: P is never in memory, so the traffic is q, k, v, out and lse (forward);
     * backward reads q, k, v, out, dout, lse and writes dq, dk, dv; it runs 2.5x the forward's
     * FLOPs (S and dP recomputed, once for dq and once for dk, dv) */
    double flops = 4.0 * B * NH * (double)T * T * (C / NH), io = FB * (4.0 * btc + nl);
    float ms;
    TIME_GPU(ms, gpu->attention_forward(out, lse, q, k, v, mask, 0, 0.0f, 1, scratch, B, T, NH, NH,
                                        C / NH));
    row("attention_forward p=0", ms, io, flops, 0);
    TIME_GPU(ms, gpu->attention_forward(out, lse, q, k, v, mask, 0, 0.1f, 1, scratch, B, T, NH, NH,
                                        C / NH));
    row("attention_forward p=0.1", ms, io, flops, 0);
    TIME_GPU(ms, gpu->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, mask, 0, 0.1f, 1,
                                         scratch, B, T, NH, NH, C / NH));
    row("attention_backward p=0.1", ms, FB * (8.0 * btc + nl), 2.5 * flops, 0);
    float *ptrs[] = {q, k, v, out, lse, scratch, dout, dq, dk, dv, (float *)mask};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) gpu->free(ptrs[i]);
}

/* Element-wise and row ops, with the CPU op timed beside them. */
static void bench_rows(void) {
    size_t nc = (size_t)N * C, nf = (size_t)N * F;
    const Ops *both[2] = {gpu, cpu};
    float *x[2], *y[2], *out[2], *g[2], *mean[2], *rstd[2];
    for (int i = 0; i < 2; i++) {
        x[i] = randn(both[i], nf, 2.0f), y[i] = randn(both[i], nf, 1.0f);
        out[i] = zeros(both[i], nf), g[i] = zeros(both[i], nf);
        mean[i] = zeros(both[i], N), rstd[i] = zeros(both[i], N);
    }
    float gms, cms;
    TIME_GPU(gms,
             gpu->layernorm_forward(out[0], mean[0], rstd[0], x[0], y[0], y[0] + C, 1e-5f, N, C));
    TIME_CPU(cms,
             cpu->layernorm_forward(out[1], mean[1], rstd[1], x[1], y[1], y[1] + C, 1e-5f, N, C));
    row("layernorm_forward", gms, FB * 2.0 * nc, 8.0 * nc, cms);
    TIME_GPU(gms, gpu->layernorm_backward(g[0], g[0] + nc, g[0] + nc + C, y[0], x[0], y[0] + nc,
                                          mean[0], rstd[0], N, C));
    TIME_CPU(cms, cpu->layernorm_backward(g[1], g[1] + nc, g[1] + nc + C, y[1], x[1], y[1] + nc,
                                          mean[1], rstd[1], N, C));
    row("layernorm_backward", gms, FB * 4.0 * nc, 16.0 * nc, cms);
    TIME_GPU(gms, gpu->activation_forward(out[0], x[0], ACT_GELU, nf));
    TIME_CPU(cms, cpu->activation_forward(out[1], x[1], ACT_GELU, nf));
    row("activation_forward gelu [N,F]", gms, FB * 2.0 * nf, 0, cms);
    TIME_GPU(gms, gpu->activation_backward(g[0], x[0], y[0], ACT_GELU, nf));
    TIME_CPU(cms, cpu->activation_backward(g[1], x[1], y[1], ACT_GELU, nf));
    row("activation_backward gelu [N,F]", gms, FB * 4.0 * nf, 0, cms);
    TIME_GPU(gms, gpu->dropout_forward(out[0], x[0], 0.1f, 3, nc));
    TIME_CPU(cms, cpu->dropout_forward(out[1], x[1], 0.1f, 3, nc));
    row("dropout_forward [N,C] p=0.1", gms, FB * 2.0 * nc, 0, cms);
    TIME_GPU(gms, gpu->add(out[0], x[0], y[0], nc));
    TIME_CPU(cms, cpu->add(out[1], x[1], y[1], nc));
    row("add [N,C]", gms, FB * 3.0 * nc, nc, cms);
    TIME_GPU(gms, gpu->axpy(out[0], x[0], 0.5f, nc));
    TIME_CPU(cms, cpu->axpy(out[1], x[1], 0.5f, nc));
    row("axpy [N,C]", gms, FB * 3.0 * nc, 2.0 * nc, cms);
    for (int i = 0; i < 2; i++) {
        float *ptrs[] = {x[i], y[i], out[i], g[i], mean[i], rstd[i]};
        for (size_t j = 0; j < sizeof ptrs / sizeof *ptrs; j++) both[i]->free(ptrs[j]);
    }
}

static void bench_embedding_and_loss(void) {
    size_t nc = (size_t)N * C;
    int32_t *ids = ints(gpu, N, 0, V), *types = ints(gpu, N, 0, 2);
    float *wte = randn(gpu, (size_t)V * C, 0.1f), *wpe = randn(gpu, (size_t)T * C, 0.1f);
    float *wtt = randn(gpu, 2 * (size_t)C, 0.1f), *out = zeros(gpu, nc);
    float *dwte = zeros(gpu, (size_t)V * C), *dwpe = zeros(gpu, (size_t)T * C);
    float ms;
    TIME_GPU(ms, gpu->embedding_forward(out, ids, types, wte, wpe, wtt, B, T, C));
    row("embedding_forward", ms, FB * 4.0 * nc, 2.0 * nc, 0);
    TIME_GPU(ms, gpu->embedding_backward(dwte, dwpe, NULL, out, ids, types, B, T, C));
    row("embedding_backward (wte, wpe)", ms, FB * 4.0 * nc, 2.0 * nc, 0);
    /* masked-LM-sized loss: 512 rows over the vocabulary */
    int rows = 512;
    float *logits = randn(gpu, (size_t)rows * V, 5.0f), *dlogits = zeros(gpu, (size_t)rows * V);
    float *losses = zeros(gpu, rows);
    int32_t *labels = ints(gpu, rows, 0, V);
    TIME_GPU(ms, gpu->cross_entropy(losses, dlogits, logits, labels, 1.0f / rows, rows, V));
    row("cross_entropy N=512 V=30522", ms, FB * 2.0 * rows * V, 0, 0);
    float *ptrs[] = {(float *)ids, (float *)types, wte,    wpe,     wtt,    out,
                     dwte,         dwpe,           logits, dlogits, losses, (float *)labels};
    for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) gpu->free(ptrs[i]);
}

/* SmolLM2's LM head + cross-entropy (C = 576, V = 49,152), dh and dW both computed: the
 * chunked op against the unchunked path (matmul_forward into [N,V] logits, cross_entropy
 * into [N,V] dlogits, matmul_backward), at N = 2048 and at B*T = 8 x 2048 tokens. */
static void bench_lm_head(void) {
    enum { LC = 576, LV = 49152 };
    static const int rows[] = {2048, 8 * 2048};
    for (int r = 0; r < 2; r++) {
        int n = rows[r];
        size_t nv = (size_t)n * LV;
        float *h = randn(gpu, (size_t)n * LC, 1.0f), *w = randn(gpu, (size_t)LV * LC, 0.05f);
        float *dh = zeros(gpu, (size_t)n * LC), *dw = zeros(gpu, (size_t)LV * LC);
        float *losses = zeros(gpu, n), *logits = zeros(gpu, nv), *dlogits = zeros(gpu, nv);
        int32_t *labels = ints(gpu, n, 0, LV); /* the chunked op's scratch: logits */
        double flops = 6.0 * n * LC * LV, io = FB * 3.0 * ((double)n * LC + (double)LV * LC);
        static const int chunks[] = {256, OPS_LM_HEAD_CHUNK};
        char name[64];
        float ms;
        for (int c = 0; c < 2; c++) {
            TIME_GPU(ms, gpu->lm_head_cross_entropy(losses, dh, dw, h, w, labels, 1.0f / n, NULL,
                                                    logits, n, LC, LV, chunks[c]));
            snprintf(name, sizeof name, "lm_head_cross_entropy N=%d chunk=%d", n, chunks[c]);
            row(name, ms, io, flops, 0);
        }
        TIME_GPU(ms, (gpu->matmul_forward(logits, h, w, NULL, n, LC, LV),
                      gpu->cross_entropy(losses, dlogits, logits, labels, 1.0f / n, n, LV),
                      gpu->matmul_backward(dh, dw, NULL, dlogits, h, w, n, LC, LV)));
        snprintf(name, sizeof name, "  unchunked matmul + cross_entropy N=%d", n);
        row(name, ms, io + FB * 4.0 * nv, flops, 0);
        size_t chunked = ops_lm_head_scratch(n, LV, OPS_LM_HEAD_CHUNK);
        printf("%-40s %zu floats (%.0f MB) vs %zu floats (%.0f MB) unchunked\n",
               "  lm_head memory (chunk=1024)", chunked, FB * chunked * 1e-6, 2 * nv,
               FB * 2.0 * nv * 1e-6);
        float *ptrs[] = {h, w, dh, dw, losses, logits, dlogits, (float *)labels};
        for (size_t i = 0; i < sizeof ptrs / sizeof *ptrs; i++) gpu->free(ptrs[i]);
    }
}

/* AdamW over LoRA-sized state (q, v of 12 layers at R=8) and
 * full-fine-tune-sized state. */
static void bench_adamw(void) {
    size_t sizes[] = {(size_t)12 * 2 * R * 2 * C, (size_t)110 * 1000 * 1000};
    for (int s = 0; s < 2; s++) {
        size_t n = sizes[s];
        float *p = randn(gpu, n, 1.0f), *g = randn(gpu, n, 0.1f);
        float *m = zeros(gpu, n), *v = zeros(gpu, n), ms;
        size_t np = ops_adamw_pieces(NULL, p, 0, n, 1);
        AdamWTensor *host = malloc(np * sizeof *host), *tab = gpu->alloc(np * sizeof *tab);
        ops_adamw_pieces(host, p, 0, n, 1);
        gpu->upload(tab, host, np * sizeof *tab);
        double *norm = gpu->alloc(sizeof *norm);
        double *scratch = gpu->alloc(OPS_ADAMW_SCRATCH * sizeof *scratch);
        AdamWHyper h = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 1.0f, 1};
        TIME_GPU(ms, gpu->adamw_step(tab, (int)np, g, m, v, n, h, norm, scratch));
        char name[64];
        snprintf(name, sizeof name, "adamw_step (norm, clip) n=%zu", n);
        row(name, ms, FB * 8.0 * n, 14.0 * n, 0);
        gpu->free(p), gpu->free(g), gpu->free(m), gpu->free(v);
        gpu->free(tab), gpu->free(norm), gpu->free(scratch), free(host);
    }
}

int main(void) {
    LfError err;
    int devices = ops_cuda_device_count(&err);
    if (devices <= 0) {
        printf("bench_kernels: %s\n", devices < 0 ? err.msg : "no CUDA device, skipping");
        return devices < 0;
    }
    const char *tf32 = getenv("LORAFT_CUDA_TF32");
    printf("bench_kernels: H200 roofline %.1f TB/s HBM, %.0f TFLOP/s FP32, %.0f "
           "TFLOP/s TF32; "
           "GEMMs in %s\n",
           PEAK_BYTES * 1e-12, PEAK_FP32 * 1e-12, PEAK_TF32 * 1e-12,
           tf32 && tf32[0] == '1' ? "TF32 (LORAFT_CUDA_TF32=1)" : "FP32");
    cudaEventCreate(&ev0);
    cudaEventCreate(&ev1);
    header();
    bench_dense_and_lora();
    bench_attention();
    bench_rows();
    bench_embedding_and_loss();
    bench_lm_head();
    bench_adamw();
    if (gpu->status(&err)) {
        fprintf(stderr, "bench_kernels: %s\n", err.msg);
        return 1;
    }
    return 0;
}
#else
int main(void) {
    printf("no CUDA device, skipping (built without CUDA)\n");
    return 0;
}
#endif
