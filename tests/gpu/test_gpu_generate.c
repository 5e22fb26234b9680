/* test_gpu_generate.c: generation with a KV cache on the CUDA backend. A tiny seeded Llama
 * (MHA, GQA, MQA; tied and untied head) or GPT-2 (with a LoRA or DoRA adapter of non-zero B) is
 * built on both backends with the same weights; the CUDA model's cached logits (a prefill, then one
 * token at a time) equal the CPU model's full recompute (model_forward over the whole sequence +
 * model_lm_logits) at every step within 1e-4 of the row's largest logit in fp32, and within
 * BF16_TOL under model.precision bf16 (the GPU's default, with which an SFT run's evaluation
 * answers are generated: frozen weights and the GEMMs' operands in bf16, the bf16 copies the
 * norms and activations write for the GEMMs after them; with or without an adapter, and then with
 * no gradients). Decode steps of one token run as one
 * recorded CUDA graph (the first op by op, the second recorded), replayed at every later
 * position: they give the very logits the same steps give op by op (Model.decode_graphs off),
 * recorded once for two generations in one cache. Batched steps of three sequences in one cache
 * (model_decode_step), graphed, against the CPU's recompute of each. */
#include <string.h>

#include "check.h"
#include "tiny_decoder.h"

enum { BF16_TOL_PERMILLE = 50 }; /* bf16 weights and operands against f32: 5e-2 of the row */

static void check_case(Arch arch, int heads, int kv_heads, int tied, int lora, Precision prec) {
    LfError err;
    Model gpu, cpu;
    CHECK_OK(tiny_decoder_in(&gpu, &ops_cuda, arch, heads, kv_heads, tied, lora, SEQ, prec, &err),
             &err);
    CHECK_OK(tiny_decoder(&cpu, &ops_cpu, arch, heads, kv_heads, tied, lora, SEQ, &err), &err);
    int32_t ids[SEQ];
    Rng r = {(uint64_t)(heads * 100 + kv_heads * 10 + tied + lora * 1000), 0};
    for (int t = 0; t < SEQ; t++) ids[t] = (int32_t)(rng_next_uniform(&r) * VOCAB) % VOCAB;
    float cached[VOCAB], full[VOCAB];
    double worst = 0;
    int ok = !model_cache_reset(&gpu, 1, SEQ, &err) && !model_decode(&gpu, 0, ids, PREFILL, &err);
    for (int t = PREFILL - 1; ok && t < SEQ; t++) {
        if (t >= PREFILL) ok = !model_decode(&gpu, 0, &ids[t], 1, &err);
        ok = ok && !model_lm_logits(&gpu, t >= PREFILL ? 0 : PREFILL - 1, 1, cached, &err) &&
             !full_logits(&cpu, ids, t + 1, t, 1, full, &err);
        worst = worse(worst, row_error(cached, full, VOCAB));
    }
    CHECK_OK(ok ? 0 : -1, &err);
    CHECK(prec != PRECISION_BF16 || gpu.n_packed_bytes > 0); /* bf16 weights, trained or not */
    CHECK(lora || gpu.n_grads == 0);                         /* nothing trains: no gradients */
    printf("%s CUDA %s cache vs CPU fp32 recompute, %d heads / %d KV, %s%s: worst relative "
           "error %.2e\n",
           arch_name(arch), precision_name(prec), heads, kv_heads, tied ? "tied" : "untied",
           lora == 1   ? ", LoRA"
           : lora == 3 ? ", DoRA"
           : lora == 4 ? ", LoRA with embed_tokens and lm_head"
           : lora == 5 ? ", LoRA and trained token rows"
           : lora == 6 ? ", LoRA and trained token rows, the head's own too"
           : lora      ? ", LoRA on the default targets"
                       : "",
           worst);
    CHECK(worst <= (prec == PRECISION_BF16 ? BF16_TOL_PERMILLE * 1e-3 : 1e-4));
    model_free(&gpu);
    model_free(&cpu);
}

/* The logits of every decode step of two generations (the second after a model_cache_reset into
 * the same cache): one token a step, from the prompt's. */
static int generate_twice(Model *m, const int32_t *ids, float logits[2][SEQ][VOCAB], LfError *err) {
    for (int run = 0; run < 2; run++) {
        if (model_cache_reset(m, 1, SEQ, err) || model_decode(m, 0, ids, PREFILL, err)) return -1;
        for (int t = PREFILL; t < SEQ; t++)
            if (model_decode(m, 0, &ids[t], 1, err) ||
                model_lm_logits(m, 0, 1, logits[run][t], err))
                return -1;
    }
    return 0;
}

static void check_graphs(Arch arch, int lora, Precision prec) {
    LfError err;
    Model ops_by_op, graphed;
    static float a[2][SEQ][VOCAB], b[2][SEQ][VOCAB];
    int32_t ids[SEQ];
    for (int t = 0; t < SEQ; t++) ids[t] = (t * 17 + 3) % VOCAB;
    CHECK_OK(tiny_decoder_in(&ops_by_op, &ops_cuda, arch, 4, 2, 0, lora, SEQ, prec, &err), &err);
    ops_by_op.decode_graphs = 0;
    CHECK_OK(generate_twice(&ops_by_op, ids, a, &err), &err);
    model_free(&ops_by_op);
    CHECK_OK(tiny_decoder_in(&graphed, &ops_cuda, arch, 4, 2, 0, lora, SEQ, prec, &err), &err);
    OpsGraphCounts g0, g1;
    ops_cuda.graph_counts(&g0);
    CHECK_OK(generate_twice(&graphed, ids, b, &err), &err);
    ops_cuda.graph_counts(&g1);
    model_free(&graphed);
    int steps = 2 * (SEQ - PREFILL);
    printf("%s %s%s: %d decode steps, %ld graph launches (%ld replays, %ld instantiated), logits "
           "%s op by op's\n",
           arch_name(arch), precision_name(prec),
           lora == 3   ? ", DoRA"
           : lora == 6 ? ", LoRA and trained token rows"
           : lora      ? ", LoRA"
                       : "",
           steps, g1.launches - g0.launches, g1.replayed - g0.replayed,
           g1.instantiated - g0.instantiated, memcmp(a, b, sizeof a) ? "DIFFER from" : "are");
    CHECK(!memcmp(a, b, sizeof a));
    CHECK(g1.launches - g0.launches == steps - 1);
    CHECK(g1.replayed - g0.replayed == steps - 2);
    CHECK(g1.instantiated - g0.instantiated == 1);
}

/* Batched decode steps on the GPU (model_decode_step): prompts of 3 and 5 tokens and a copy of
 * the first's cache (model_cache_copy), then steps of one token each for all three, recorded as
 * one graph and replayed; every row's logits against the CPU's full recompute of its sequence. */
static void check_steps(Arch arch, int lora, Precision prec) {
    enum { S = 3 };
    LfError err;
    Model gpu, cpu;
    CHECK_OK(tiny_decoder_in(&gpu, &ops_cuda, arch, 4, 2, 0, lora, PREFILL, prec, &err), &err);
    CHECK_OK(tiny_decoder(&cpu, &ops_cpu, arch, 4, 2, 0, lora, SEQ, &err), &err);
    int32_t ids[S][SEQ], seqs[S] = {2, 0, 1};
    int len[S] = {3, 5, 3};
    for (int q = 0; q < S; q++)
        for (int t = 0; t < SEQ; t++) ids[q][t] = (int32_t)((t * 13 + q * 29 + 1) % VOCAB);
    memcpy(ids[2], ids[0], 3 * sizeof **ids);
    float got[S * VOCAB], full[VOCAB];
    double worst = 0;
    OpsGraphCounts g0, g1;
    ops_cuda.graph_counts(&g0);
    int ok = !model_cache_reset(&gpu, S, SEQ, &err) && !model_decode(&gpu, 0, ids[0], 3, &err) &&
             !model_decode(&gpu, 1, ids[1], 5, &err) && !model_cache_copy(&gpu, 0, 2, &err);
    int steps = 0;
    for (; ok && len[1] < SEQ; steps++) {
        int32_t next[S];
        for (int i = 0; i < S; i++) next[i] = ids[seqs[i]][len[seqs[i]]];
        ok = !model_decode_step(&gpu, seqs, next, S, &err) &&
             !model_lm_logits(&gpu, 0, S, got, &err);
        for (int i = 0; ok && i < S; i++) {
            int n = ++len[seqs[i]];
            ok = !full_logits(&cpu, ids[seqs[i]], n, n - 1, 1, full, &err);
            worst = worse(worst, row_error(got + (size_t)i * VOCAB, full, VOCAB));
        }
    }
    ops_cuda.graph_counts(&g1);
    CHECK_OK(ok ? 0 : -1, &err);
    printf("%s CUDA %s%s: %d batched steps of 3 sequences, %ld graph launches (%ld replays), "
           "worst relative error %.2e against the CPU's recompute\n",
           arch_name(arch), precision_name(prec), lora ? ", LoRA" : "", steps,
           g1.launches - g0.launches, g1.replayed - g0.replayed, worst);
    CHECK(worst <= (prec == PRECISION_BF16 ? BF16_TOL_PERMILLE * 1e-3 : 1e-4));
    CHECK(g1.launches - g0.launches == steps - 1 && g1.replayed - g0.replayed == steps - 2);
    model_free(&gpu);
    model_free(&cpu);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_cuda_device();
    for (int lora = 0; lora < 2; lora++) {
        check_case(ARCH_LLAMA, 4, 4, 1, lora, PRECISION_FP32);
        check_case(ARCH_LLAMA, 4, 2, 0, lora, PRECISION_FP32);
        check_case(ARCH_LLAMA, 4, 1, 1, lora, PRECISION_FP32);
        check_case(ARCH_GPT2, 4, 4, 1, lora, PRECISION_FP32);
        check_case(ARCH_GEMMA2, 4, 2, 1, lora, PRECISION_FP32); /* soft-capped */
        check_case(ARCH_PHI3, 4, 2, 0, lora, PRECISION_FP32);   /* fused projections */
        tiny_rotary_dim = 4;                                    /* RoPE over half of each head */
        check_case(ARCH_PHI3, 4, 2, 0, lora, PRECISION_FP32);
        tiny_rotary_dim = 0;
    }
    for (int lora = 0; lora <= 2; lora++) { /* none; every projection; PEFT's defaults (q, v) */
        check_case(ARCH_LLAMA, 4, 2, 0, lora, PRECISION_BF16);
        check_case(ARCH_QWEN2, 4, 2, 1, lora, PRECISION_BF16);
        check_case(ARCH_QWEN3, 4, 2, 0, lora, PRECISION_BF16);
        check_case(ARCH_MISTRAL, 4, 2, 0, lora, PRECISION_BF16); /* a sliding window of 4 */
        check_case(ARCH_GEMMA3, 4, 2, 1, lora, PRECISION_BF16);  /* layer 0 windowed */
        check_case(ARCH_GEMMA2, 4, 2, 1, lora, PRECISION_BF16);  /* soft-capped */
        check_case(ARCH_PHI3, 4, 2, 0, lora, PRECISION_BF16);    /* fused projections */
        tiny_rotary_dim = 4;                                     /* RoPE over half of each head */
        check_case(ARCH_PHI3, 4, 2, 0, lora, PRECISION_BF16);
        tiny_rotary_dim = 0;
        check_case(ARCH_GPT2, 4, 4, 1, lora, PRECISION_BF16);
    }
    check_graphs(ARCH_LLAMA, 0, PRECISION_FP32);
    check_graphs(ARCH_LLAMA, 1, PRECISION_BF16);
    check_graphs(ARCH_GPT2, 2, PRECISION_BF16);
    check_case(ARCH_LLAMA, 4, 2, 0, 3, PRECISION_FP32); /* DoRA */
    check_case(ARCH_LLAMA, 4, 2, 0, 3, PRECISION_BF16);
    check_case(ARCH_GPT2, 4, 4, 1, 3, PRECISION_BF16);
    check_graphs(ARCH_LLAMA, 3, PRECISION_BF16);
    /* the adapters on the token embedding and the LM head too, tied and untied */
    check_case(ARCH_LLAMA, 4, 2, 0, 4, PRECISION_FP32);
    check_case(ARCH_LLAMA, 4, 2, 1, 4, PRECISION_BF16);
    check_case(ARCH_GPT2, 4, 4, 1, 4, PRECISION_BF16);
    check_graphs(ARCH_LLAMA, 4, PRECISION_BF16);
    /* trained token rows: the embedding's (a tied head's with them), then the head's own too */
    check_case(ARCH_LLAMA, 4, 2, 1, 5, PRECISION_FP32);
    check_case(ARCH_LLAMA, 4, 2, 1, 6, PRECISION_FP32);
    check_case(ARCH_LLAMA, 4, 2, 0, 6, PRECISION_BF16);
    check_case(ARCH_GPT2, 4, 4, 1, 6, PRECISION_BF16);
    check_graphs(ARCH_LLAMA, 6, PRECISION_BF16);
    check_steps(ARCH_LLAMA, 1, PRECISION_FP32);
    check_steps(ARCH_MISTRAL, 0, PRECISION_BF16); /* a sliding window of 4 */
    check_steps(ARCH_GPT2, 1, PRECISION_BF16);
    return check_report();
}
