/* tiny_decoder.h: the seeded tiny decoders the generation tests share (tests/test_generate.c on
 * the CPU, tests/gpu/test_gpu_generate.c on both backends): a 2-layer Llama, Qwen2, Qwen3,
 * Mistral, SmolLM3, Gemma 3 or GPT-2 of VOCAB tokens (Qwen3's and Gemma's heads twice hidden /
 * heads wide, Mistral's sliding window 4), its biases, head norms and Gemma's norms random (not
 * the 0 and 1 of their init), optionally with a LoRA (or DoRA) adapter of random B on every
 * projection so the branch changes the logits, and the full-recompute logits the KV cache is
 * checked against. */
#ifndef LORAFT_TESTS_TINY_DECODER_H
#define LORAFT_TESTS_TINY_DECODER_H

#include <math.h>
#include <string.h>

#include "check.h"
#include "loraft/model.h"
#include "loraft/rng.h"

enum { VOCAB = 61, SEQ = 13, PREFILL = 5 };

/* Phi-3's rotary dims: 0 the whole head, else RoPE over that many of each (Phi-4-mini's partial
 * rotary embeddings) */
static int tiny_rotary_dim;

/* The model on ops for batches of one sequence of up to max_len tokens, in precision prec. GPT-2
 * (arch) ties its head and has as many KV heads as heads. lora 1: LoRA on every projection, 2: on
 * PEFT's default targets (q and v; c_attn), 3: DoRA on every projection, 4: LoRA on every
 * projection, the token embedding and the LM head (its A random too), 5: LoRA on every projection
 * and trained rows of every third token (lora.trainable_token_indices), 6: those and rows of the
 * LM head's own, every fourth token from 1 (lora.lm_head_token_indices), 0: none (nothing trains: a
 * model opened to run, as model_open's without an adapter). Every LoRA B, trained row, bias and
 * head norm is random (the same values on any ops). */
static inline int tiny_decoder_in(Model *m, const Ops *ops, Arch arch, int heads, int kv_heads,
                                  int tied, int lora, int max_len, Precision prec, LfError *err) {
    ModelConfig c;
    TrainSpec s;
    model_config_defaults(&c, arch);
    c.vocab_size = VOCAB, c.hidden_size = 32, c.num_layers = 2, c.ffn_size = 48;
    c.num_heads = heads, c.num_kv_heads = kv_heads, c.tie_word_embeddings = tied;
    int gemma = arch_is_gemma(arch);
    c.head_dim = arch == ARCH_QWEN3 || gemma ? 2 * 32 / heads : 0; /* twice hidden / heads wide */
    /* Gemma 3 scaled by its head size; Gemma 2 by a scalar of its own, its scores (about 1 here)
     * and logits soft-capped where they bite */
    c.query_pre_attn_scalar = arch == ARCH_GEMMA2 ? 12 : gemma ? (float)c.head_dim : 0;
    if (arch == ARCH_GEMMA2) c.attn_softcap = 1.0f, c.final_softcap = 2.0f;
    /* a window well inside SEQ: Mistral's and Phi-3's in every layer, Qwen2's in layer 1 alone,
     * Gemma's in layer 0 alone (with its own RoPE base) */
    int phi3 = arch == ARCH_PHI3;
    c.sliding_window = arch == ARCH_MISTRAL || arch == ARCH_QWEN2 || gemma || phi3 ? 4 : 0;
    c.full_attention[0] = arch == ARCH_QWEN2, c.full_attention[1] = gemma;
    c.no_rope[0] = 0, c.no_rope[1] = arch == ARCH_SMOLLM3; /* SmolLM3: layer 1 without RoPE */
    c.max_positions = 64, c.pad_token_id = -1, c.bos_token_id = c.eos_token_id = 0;
    c.initializer_range = 0.2f; /* logits far from zero, so relative errors mean something */
    if (phi3) /* longrope inside its original context of 32: the short factors, cos and sin scaled
               */
        c.rope_scaling = (RopeScaling){.type = ROPE_LONGROPE,
                                       .original_max_positions = 32,
                                       .attention_factor = 1.1f,
                                       .n_divisors = 4,
                                       .divisors = {1.0f, 1.2f, 1.7f, 2.5f},
                                       .long_divisors = {2, 3, 4, 5}};
    if (phi3 && tiny_rotary_dim)
        c.rotary_dim = tiny_rotary_dim, c.rope_scaling.n_divisors = tiny_rotary_dim / 2;
    train_spec_defaults(&s);
    s.task = TASK_CAUSAL_LM;
    s.strategy = lora ? STRATEGY_LORA : STRATEGY_NONE;
    s.r = 4, s.use_dora = lora == 3;
    s.precision = prec;
    const char *t[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    const char *t2[] = {"c_attn", "c_proj", "c_fc"};
    const char *t3[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
    int gpt2 = arch == ARCH_GPT2, nt = gpt2 ? 3 : phi3 ? 4 : 7;
    const char *const *names = gpt2 ? t2 : phi3 ? t3 : t;
    for (int i = 0; lora != 2 && lora && i < nt; i++) strcpy(s.targets[s.n_targets++], names[i]);
    if (lora == 4) strcpy(s.targets[s.n_targets++], gpt2 ? "wte" : "embed_tokens");
    if (lora == 4) strcpy(s.targets[s.n_targets++], "lm_head");
    for (int id = 0; lora >= 5 && id < VOCAB; id += 3) s.token_indices[s.n_token_indices++] = id;
    for (int id = 1; lora == 6 && id < VOCAB; id += 4)
        s.head_token_indices[s.n_head_token_indices++] = id;
    if (model_create(m, &c, &s, ops, NULL, 7, 1, max_len, NULL, 0, err)) return -1;
    Rng r = {11, 0};
    float host[32 * 48]; /* the largest B: [ffn or 3 * hidden, r] (Phi-3: 2 * ffn) */
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        size_t len = strlen(p->name);
        int bias = len > 5 && !strcmp(p->name + len - 5, ".bias");
        int head_norm = strstr(p->name, "self_attn.q_norm") || strstr(p->name, "self_attn.k_norm");
        int lora_b = p->is_lora && (strstr(p->name, "lora_B") || strstr(p->name, "embedding_A") ||
                                    strstr(p->name, "trainable_tokens"));
        if (!bias && !head_norm && !p->plus_one && !lora_b) continue;
        for (size_t j = 0; j < p->numel; j++) host[j] = 0.3f * (rng_next_uniform(&r) - 0.5f);
        ops->upload(p->value, host, p->numel * sizeof(float));
    }
    return 0;
}

/* The same in fp32, on the GPU too (its default is bf16): compared at f32. */
static inline int tiny_decoder(Model *m, const Ops *ops, Arch arch, int heads, int kv_heads,
                               int tied, int lora, int max_len, LfError *err) {
    return tiny_decoder_in(m, ops, arch, heads, kv_heads, tied, lora, max_len, PRECISION_FP32, err);
}

/* max |a - b| over the row, relative to the row's largest |b| (NaN if either has one) */
static inline double row_error(const float *a, const float *b, int n) {
    double d = 0, big = 1e-30;
    for (int i = 0; i < n; i++) {
        d = worse(d, fabs((double)a[i] - b[i]));
        big = fmax(big, fabs((double)b[i]));
    }
    return d / big;
}

/* The logits of rows row0..row0+n-1 of a full forward over ids[0..T). */
static inline int full_logits(Model *m, const int32_t *ids, int T, int row0, int n, float *out,
                              LfError *err) {
    int32_t mask[SEQ];
    float loss;
    for (int t = 0; t < T; t++) mask[t] = 1;
    if (model_set_batch(m, ids, NULL, mask, NULL, 1, T, err) || model_forward(m, 0, &loss, err))
        return -1;
    return model_lm_logits(m, row0, n, out, err);
}

#endif
