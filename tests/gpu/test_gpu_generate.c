/* test_gpu_generate.c: generation with a KV cache on the CUDA backend. A tiny seeded Llama
 * (MHA, GQA, MQA; tied and untied head) or GPT-2 (with a LoRA adapter of non-zero B) is built on
 * both backends with the same weights; the CUDA model's cached logits (a prefill, then one token at
 * a time) equal the CPU model's full recompute (model_forward over the whole sequence +
 * model_lm_logits) at every step within 1e-4 of the row's largest logit. */
#include <string.h>

#include "check.h"
#include "loraft/model.h"
#include "loraft/rng.h"

enum { VOCAB = 61, SEQ = 13, PREFILL = 5 };

/* The model on ops; every LoRA B random (the same values on both backends). */
static int tiny_model(Model *m, const Ops *ops, Arch arch, int heads, int kv_heads, int tied,
                      int lora, LfError *err) {
    ModelConfig c;
    TrainSpec s;
    model_config_defaults(&c, arch);
    c.vocab_size = VOCAB, c.hidden_size = 32, c.num_layers = 2, c.ffn_size = 48;
    c.num_heads = heads, c.num_kv_heads = kv_heads, c.tie_word_embeddings = tied;
    c.max_positions = 64, c.initializer_range = 0.2f, c.pad_token_id = -1;
    c.bos_token_id = c.eos_token_id = 0;
    train_spec_defaults(&s);
    s.task = TASK_CAUSAL_LM;
    s.strategy = lora ? STRATEGY_LORA : STRATEGY_HEAD;
    s.r = 4;
    const char *t[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    const char *t2[] = {"c_attn", "c_proj", "c_fc"};
    int gpt2 = arch == ARCH_GPT2, nt = gpt2 ? 3 : 7;
    for (int i = 0; lora && i < nt; i++) strcpy(s.targets[s.n_targets++], gpt2 ? t2[i] : t[i]);
    if (model_create(m, &c, &s, ops, NULL, 7, 1, SEQ, NULL, 0, err)) return -1;
    Rng r = {11, 0};
    float host[32 * 48];
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        if (!p->is_lora || !strstr(p->name, "lora_B")) continue;
        for (size_t j = 0; j < p->numel; j++) host[j] = 0.3f * (rng_next_uniform(&r) - 0.5f);
        ops->upload(p->value, host, p->numel * sizeof(float));
    }
    return 0;
}

static double row_error(const float *a, const float *b, int n) {
    double d = 0, big = 1e-30;
    for (int i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        big = fmax(big, fabs((double)b[i]));
    }
    return d / big;
}

/* Row `row` of the logits of a full forward over ids[0..T). */
static int full_logits(Model *m, const int32_t *ids, int T, int row, float *out, LfError *err) {
    int32_t mask[SEQ];
    float loss;
    for (int t = 0; t < T; t++) mask[t] = 1;
    return model_set_batch(m, ids, NULL, mask, NULL, 1, T, err) ||
                   model_forward(m, 0, 0, 1.0f, &loss, err) || model_lm_logits(m, row, 1, out, err)
               ? -1
               : 0;
}

static void check_case(Arch arch, int heads, int kv_heads, int tied, int lora) {
    LfError err;
    Model gpu, cpu;
    CHECK_OK(tiny_model(&gpu, &ops_cuda, arch, heads, kv_heads, tied, lora, &err), &err);
    CHECK_OK(tiny_model(&cpu, &ops_cpu, arch, heads, kv_heads, tied, lora, &err), &err);
    int32_t ids[SEQ];
    Rng r = {(uint64_t)(heads * 100 + kv_heads * 10 + tied + lora * 1000), 0};
    for (int t = 0; t < SEQ; t++) ids[t] = (int32_t)(rng_next_uniform(&r) * VOCAB) % VOCAB;
    float cached[VOCAB], full[VOCAB];
    double worst = 0;
    int ok = !model_cache_reset(&gpu, SEQ, &err) && !model_decode(&gpu, ids, PREFILL, &err);
    for (int t = PREFILL - 1; ok && t < SEQ; t++) {
        if (t >= PREFILL) ok = !model_decode(&gpu, &ids[t], 1, &err);
        ok = ok && !model_lm_logits(&gpu, t >= PREFILL ? 0 : PREFILL - 1, 1, cached, &err) &&
             !full_logits(&cpu, ids, t + 1, t, full, &err);
        worst = fmax(worst, row_error(cached, full, VOCAB));
    }
    CHECK_OK(ok ? 0 : -1, &err);
    printf("%s CUDA cache vs CPU recompute, %d heads / %d KV, %s%s: worst relative error %.2e\n",
           arch_name(arch), heads, kv_heads, tied ? "tied" : "untied", lora ? ", LoRA" : "", worst);
    CHECK(worst <= 1e-4);
    model_free(&gpu);
    model_free(&cpu);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_cuda_device();
    for (int lora = 0; lora < 2; lora++) {
        check_case(ARCH_LLAMA, 4, 4, 1, lora);
        check_case(ARCH_LLAMA, 4, 2, 0, lora);
        check_case(ARCH_LLAMA, 4, 1, 1, lora);
        check_case(ARCH_GPT2, 4, 4, 1, lora);
    }
    return check_report();
}
