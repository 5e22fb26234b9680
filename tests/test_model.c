/* test_model.c: the whole model on the CPU backend.
 *
 * - finite-difference check of the gradient of a tiny DistilBERT and a tiny BERT, in train
 *   mode with every dropout on (masks are a pure function of the seed, so the loss is a
 *   deterministic function of the weights), for LoRA, head-only and full fine-tuning: one
 *   random direction per trainable tensor, tolerance 2% of the directional derivative
 *   (float32 forward, central differences); the same for a tiny GPT-2 and a tiny Llama with
 *   the causal-LM loss on right-padded rows (GPT-2 with its embedding, attention and residual
 *   dropouts on), for LoRA on every linear layer and full fine-tuning;
 * - frozen weights have no gradient, and less trains means fewer activations kept;
 * - PEFT's parameter counts for the seed's DistilBERT config (628,994 of 67,584,004);
 * - gradient accumulation: two half batches with loss weight 1/2 give the gradient of the
 *   whole batch (eval mode, tolerance 1e-5 of the largest gradient);
 * - bad batches (token id outside the vocabulary, label out of range) are errors;
 * - the preference objectives on a tiny Llama with LoRA on every projection, in train mode
 *   with attention and LoRA dropout: DPO (sigmoid with label smoothing, IPO) against a fixed
 *   reference (the adapters-off forward), and the reward model (LoRA + its score head, the
 *   pad rule pooling a row whose last token is the pad id), and DPO on a tiny GPT-2; the same
 *   finite differences, and the adapters-off forward equals a model without adapters;
 * - GPT-2's default LoRA targets are PEFT's (c_attn); a tiny GPT-2 written as a GGUF file the
 *   way llama.cpp's converter writes one (Conv1D weights [out,in], token_embd copied as
 *   output.weight) loads with the same config and weights;
 * - gradient checkpointing (every dropout on; LoRA on every linear, on layer 1's only, full
 *   fine-tuning, the encoders' head alone; the four architectures, DPO with its reference
 *   forward, the reward model): the loss and every gradient are the same bits as without it, and
 *   fewer activations are kept where two layers are recomputed; and with DoRA on every linear
 *   (its saved outputs recomputed with their layer);
 * - DoRA starts as LoRA does (its magnitude the rows' norms), and the norms it computes of a
 *   q8_0 base (in chunks of rows) are the stored weights'. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "gradcheck.h"
#include "tiny.h"
#include "loraft/gguf.h"
#include "loraft/model.h"
#include "loraft/objective.h"
#include "loraft/rng.h"

enum { B = 2, T = 6 };

static void set_batch(Model *m) {
    int32_t ids[B * T] = {2, 7, 9, 11, 3, 0, 2, 12, 30, 14, 22, 3};
    int32_t types[B * T] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
    int32_t mask[B * T] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1};
    int32_t labels[B] = {2, 0};
    LfError err;
    CHECK(model_set_batch(m, ids, m->cfg.arch == ARCH_BERT ? types : NULL, mask, labels, B, T,
                          &err) == 0);
}

/* target, or (layer1) its module in layer 1 only: "layer.1." prefix[0] target */
static void target_name(char out[32], int layer1, const char *prefix, const char *target) {
    snprintf(out, 32, "%s%s%s", layer1 ? prefix : "", layer1 ? "." : "", target);
}

/* encoder() and decoder() build DoRA models (TrainSpec.use_dora) while set, under lora dropout
 * as the others (the base's term on what the dropout removed outside the magnitude's scale), with
 * every bias trained (lora.bias all): gradcheck_tensors checks DoRA's magnitudes and the biases,
 * not A and B. */
static int with_dora;

/* The trainable tensors gradcheck_tensors checks under LoRA: A and B (DoRA: the magnitude and
 * the biases), and an encoder's classifier. */
static int lora_checked(const Model *m) {
    int n = with_dora ? model_n_adapters(m) : 2 * model_n_adapters(m);
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        n += p->grad && !p->is_lora; /* biases, the classifier */
    }
    return n;
}

/* The encoder of the checkpoint in dir with every dropout on, LoRA r=2 on every linear layer
 * (or, layer1, on those of layer 1 of 2 only: backward stops above layer 0) or another strategy,
 * LoRA's B random (its zero start hides errors in dA); gradient checkpointing when ckpt. */
static void encoder(Model *m, const char *dir, Strategy strategy, int layer1, int ckpt, Rng *rng) {
    ModelConfig cfg;
    LfError err;
    CHECK(model_config_load(&cfg, dir, &err) == 0);
    cfg.hidden_dropout = 0.1f, cfg.attention_dropout = 0.1f, cfg.classifier_dropout = 0.2f;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.strategy = strategy, spec.gradient_checkpointing = ckpt;
    spec.r = 2, spec.alpha = 4, spec.dropout = 0.1f, spec.use_dora = with_dora;
    spec.bias = with_dora ? LORA_BIAS_ALL : LORA_BIAS_NONE;
    const char *all_distil[] = {"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"};
    const char *all_bert[] = {"query", "key", "value", "dense"};
    int nt = cfg.arch == ARCH_DISTILBERT ? 6 : 4;
    for (int i = 0; i < nt; i++) /* layer 1's: DistilBERT's q_lin .. out_lin, BERT's q, k, v */
        if (!layer1 || i < 3 + (cfg.arch == ARCH_DISTILBERT))
            target_name(spec.targets[spec.n_targets++], layer1,
                        cfg.arch == ARCH_DISTILBERT ? "layer.1.attention"
                                                    : "layer.1.attention.self",
                        cfg.arch == ARCH_DISTILBERT ? all_distil[i] : all_bert[i]);
    CHECK_OK(model_create(m, &cfg, &spec, &ops_cpu, dir, 9, B, T, NULL, 0, &err), &err);
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].is_lora)
            for (size_t j = 0; j < m->params[i].numel; j++)
                m->params[i].value[j] = 0.2f * (rng_next_uniform(rng) - 0.5f);
    /* ReLU has a kink at 0 that finite differences cannot step over: keep DistilBERT's
     * pre_classifier outputs positive */
    Param *pre_bias = model_find_param(m, "pre_classifier.bias");
    for (size_t j = 0; pre_bias && j < pre_bias->numel; j++) pre_bias->value[j] = 1.0f;
}

static void gradcheck(const char *dir, Strategy strategy) {
    Rng rng = {77, 0};
    Model m;
    encoder(&m, dir, strategy, 0, 0, &rng);
    const ModelConfig cfg = m.cfg;
    set_batch(&m);
    int checked, failed = gradcheck_tensors(&m, 1234, &rng, strategy_name(strategy), &checked);
    CHECK(failed == 0 && (strategy != STRATEGY_LORA || checked == lora_checked(&m)));
    printf("%s %s: %d tensors checked, %d off\n", arch_name(cfg.arch), strategy_name(strategy),
           checked, failed);
    /* frozen means no gradient: under LoRA only A, B and the head modules train */
    for (int i = 0; i < m.n_params; i++) {
        const Param *p = &m.params[i];
        int bias = with_dora && strstr(p->name, "bias"); /* lora.bias all */
        if (strategy == STRATEGY_LORA && !p->is_lora && !strstr(p->name, "classifier") && !bias)
            CHECK(p->grad == NULL);
        if (strategy == STRATEGY_FULL) CHECK(p->grad != NULL);
        if (strategy == STRATEGY_HEAD)
            CHECK((p->grad != NULL) == (strncmp(p->name, arch_name(cfg.arch), 4) != 0));
    }
    model_free(&m);
}

/* A model of the checkpoint in dir with PEFT's default LoRA spec (or another strategy). */
static void open_model(Model *m, const char *dir, Strategy strategy, int max_batch) {
    ModelConfig cfg;
    LfError err;
    CHECK(model_config_load(&cfg, dir, &err) == 0);
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.strategy = strategy;
    CHECK(model_create(m, &cfg, &spec, &ops_cpu, dir, 1, max_batch, T, NULL, 0, &err) == 0);
}

/* Activations kept: head-only < LoRA on q < full. */
static size_t activations(const char *dir, Strategy s) {
    Model m;
    open_model(&m, dir, s, B);
    size_t n = m.n_act;
    model_free(&m);
    return n;
}

static void bad_batches(const char *dir) {
    Model m;
    LfError err;
    open_model(&m, dir, STRATEGY_LORA, B);
    int32_t ids[T] = {2, 5, 999, 3, 0, 0}, mask[T] = {1, 1, 1, 1, 0, 0}, label = 1, bad_label = 3;
    CHECK(model_set_batch(&m, ids, NULL, mask, &label, 1, T, &err) != 0);
    CHECK(strstr(err.msg, "outside the vocabulary") != NULL);
    ids[2] = 7;
    CHECK(model_set_batch(&m, ids, NULL, mask, &bad_label, 1, T, &err) != 0);
    CHECK(strstr(err.msg, "num_labels") != NULL);
    CHECK(model_set_batch(&m, ids, NULL, mask, &label, 1, T + 1, &err) != 0);
    /* a LoRA target that matches nothing is PEFT's error too */
    ModelConfig cfg = m.cfg;
    TrainSpec spec;
    train_spec_defaults(&spec);
    strcpy(spec.targets[0], "no_such_module");
    spec.n_targets = 1;
    model_free(&m);
    CHECK(model_create(&m, &cfg, &spec, &ops_cpu, dir, 1, B, T, NULL, 0, &err) != 0);
    CHECK(strstr(err.msg, "no_such_module") != NULL);
}

/* The step's seed draws the dropout masks (model_step): a training forward with dropout gives
 * another loss under another seed and the same loss, bit for bit, under the same seed again. */
static void step_seed_draws_masks(const char *dir) {
    Model m;
    LfError err;
    ModelConfig cfg;
    CHECK(model_config_load(&cfg, dir, &err) == 0);
    cfg.hidden_dropout = cfg.attention_dropout = 0.3f;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.dropout = 0.3f;
    CHECK(model_create(&m, &cfg, &spec, &ops_cpu, dir, 1, B, T, NULL, 0, &err) == 0);
    set_batch(&m);
    float loss[3];
    uint64_t seeds[3] = {11, 12, 11};
    for (int i = 0; i < 3; i++) {
        model_step(&m, seeds[i], 1.0f);
        CHECK(model_forward(&m, 1, &loss[i], &err) == 0);
    }
    printf("dropout by the step's seed: losses %.6f, %.6f, %.6f (seeds 11, 12, 11)\n", loss[0],
           loss[1], loss[2]);
    CHECK(loss[1] != loss[0]);
    CHECK(memcmp(&loss[2], &loss[0], sizeof loss[0]) == 0);
    model_free(&m);
}

/* NEFTune (TrainSpec.neftune_alpha) without dropout: evaluation is the plain model's, bit for
 * bit; a training forward adds the step seed's noise to the embeddings (another loss, the same
 * again under the same seed), and a model without it trains as it evaluates. */
static void neftune_noise(const char *dir) {
    Model m[2];
    LfError err;
    ModelConfig cfg;
    CHECK(model_config_load(&cfg, dir, &err) == 0);
    cfg.hidden_dropout = cfg.attention_dropout = cfg.classifier_dropout = 0.0f;
    float eval[2], train[2][3];
    uint64_t seeds[3] = {11, 12, 11};
    for (int k = 0; k < 2; k++) {
        TrainSpec spec;
        train_spec_defaults(&spec);
        spec.neftune_alpha = k ? 5.0f : 0.0f;
        CHECK(model_create(&m[k], &cfg, &spec, &ops_cpu, dir, 1, B, T, NULL, 0, &err) == 0);
        set_batch(&m[k]);
        CHECK(model_forward(&m[k], 0, &eval[k], &err) == 0);
        for (int i = 0; i < 3; i++) {
            model_step(&m[k], seeds[i], 1.0f);
            CHECK(model_forward(&m[k], 1, &train[k][i], &err) == 0);
        }
        model_free(&m[k]);
    }
    printf("neftune alpha 5: eval loss %.6f (without %.6f), training %.6f, %.6f, %.6f (seeds 11, "
           "12, 11; without %.6f)\n",
           eval[1], eval[0], train[1][0], train[1][1], train[1][2], train[0][0]);
    CHECK(!memcmp(&eval[1], &eval[0], sizeof eval[0]));
    CHECK(!memcmp(&train[0][0], &eval[0], sizeof eval[0]) && train[0][1] == train[0][0]);
    CHECK(train[1][0] != train[0][0] && train[1][1] != train[1][0]);
    CHECK(!memcmp(&train[1][2], &train[1][0], sizeof train[1][0]));
}

/* Gradient of a batch of 4 == sum of two batches of 2, each weighted 1/2. */
static void accumulation(const char *dir) {
    Model m;
    LfError err;
    open_model(&m, dir, STRATEGY_LORA, 4);
    for (int i = 0; i < m.n_params; i++) /* non-zero LoRA B, so every gradient is non-zero */
        if (m.params[i].is_lora)
            for (size_t j = 0; j < m.params[i].numel; j++)
                m.params[i].value[j] = 0.01f * (float)(j % 7);
    int32_t ids[4 * T] = {2, 7, 9, 11, 3, 0, 2, 12, 30, 14, 22, 3,
                          2, 5, 3, 0,  0, 0, 2, 8,  8,  9,  10, 3};
    int32_t mask[4 * T], labels[4] = {2, 0, 1, 1};
    for (int i = 0; i < 4 * T; i++) mask[i] = ids[i] != 0;
    float loss, *whole = malloc(m.n_grads * sizeof *whole);
    model_zero_grad(&m);
    CHECK(model_set_batch(&m, ids, NULL, mask, labels, 4, T, &err) == 0);
    CHECK(model_forward(&m, 0, &loss, &err) == 0 && model_backward(&m, &err) == 0);
    memcpy(whole, m.grads, m.n_grads * sizeof *whole);
    model_zero_grad(&m);
    for (int half = 0; half < 2; half++) {
        CHECK(model_set_batch(&m, ids + half * 2 * T, NULL, mask + half * 2 * T, labels + half * 2,
                              2, T, &err) == 0);
        model_step(&m, 1, 0.5f);
        CHECK(model_forward(&m, 0, &loss, &err) == 0 && model_backward(&m, &err) == 0);
    }
    double scale = 0, worst = 0;
    for (size_t i = 0; i < m.n_grads; i++) {
        scale = fabs(whole[i]) > scale ? fabs(whole[i]) : scale;
        worst = fabs(whole[i] - m.grads[i]) > worst ? fabs(whole[i] - m.grads[i]) : worst;
    }
    CHECK(scale > 0);
    CHECK(worst <= 1e-5 * scale);
    free(whole);
    model_free(&m);
}

/* A tiny Llama (4 heads over 2 KV heads) or GPT-2 (initialised from a seed) for task, with LoRA
 * r=2 on every linear layer (or, layer1, on the attention's of layer 1 of 2 only), B random
 * (LoRA's zero B hides errors in dA), or full fine-tuning; attention, LoRA and (GPT-2) residual
 * and embedding dropout on; gradient checkpointing when ckpt. */
/* decoder's LoRA adapts the token embedding (its padding_idx 3, a token of the batches) and
 * the LM head too, while set */
static int embed_and_head;
static RlooSpec rloo_spec = {.beta = 0.5f,
                             .generations = 2,
                             .iterations = 1,
                             .eps_low = 0.2f,
                             .eps_high = 0.2f}; /* TASK_RLOO's */
static GrpoSpec grpo_spec;                      /* TASK_GRPO's (tiny_grpo) */
static float tiny_temperature = 1.0f;           /* TrainSpec.temperature (RL's, in every loss) */

static void decoder(Model *m, Arch arch, Task task, DpoSpec dpo, Strategy strategy, int layer1,
                    int ckpt, Rng *rng) {
    ModelConfig cfg;
    model_config_defaults(&cfg, arch);
    cfg.vocab_size = 40, cfg.hidden_size = 16, cfg.num_layers = 2, cfg.num_heads = 4;
    int llama = arch_is_llama(arch);
    cfg.num_kv_heads = llama ? 2 : 4, cfg.ffn_size = 24, cfg.max_positions = 16;
    int gemma = arch_is_gemma(arch), phi3 = arch == ARCH_PHI3;
    cfg.head_dim =
        arch == ARCH_QWEN3 || gemma || phi3 ? 8 : 0; /* heads twice hidden / heads wide */
    cfg.rotary_dim = phi3 ? 4 : 0; /* Phi-4-mini's partial RoPE: half of each head passes */
    /* Gemma 3 scaled by its head size, Gemma 2 by a scalar of its own (27B's way), with
     * soft-capping where the scores and logits (about 1 here) reach it */
    cfg.query_pre_attn_scalar = arch == ARCH_GEMMA2 ? 4 : gemma ? 8 : 0;
    if (arch == ARCH_GEMMA2) cfg.attn_softcap = 1.0f, cfg.final_softcap = 1.5f;
    /* a window inside the sequences: Mistral's and Phi-3's in every layer, Qwen2's in layer 1
     * alone, Gemma's in layer 0 alone (with its own RoPE base) */
    cfg.sliding_window = arch == ARCH_MISTRAL || arch == ARCH_QWEN2 || gemma || phi3 ? 3 : 0;
    cfg.full_attention[0] = arch == ARCH_QWEN2, cfg.full_attention[1] = gemma;
    cfg.no_rope[0] = 0, cfg.no_rope[1] = arch == ARCH_SMOLLM3; /* layer 1 without RoPE */
    if (arch == ARCH_QWEN3) /* YaRN: pairs 0..2 blended, pair 3 divided, cos and sin scaled */
        cfg.rope_scaling = (RopeScaling){.type = ROPE_YARN,
                                         .factor = 4,
                                         .original_max_positions = 8,
                                         .beta_fast = 32,
                                         .beta_slow = 1,
                                         .attention_factor = 1.2f};
    if (phi3) /* longrope, the batch's T past the original 4: the long factors */
        cfg.rope_scaling = (RopeScaling){.type = ROPE_LONGROPE,
                                         .original_max_positions = T - 2,
                                         .attention_factor = 1.1f,
                                         .n_divisors = 2,
                                         .divisors = {1.0f, 1.5f},
                                         .long_divisors = {1.3f, 3.0f}};
    cfg.attention_dropout = 0.1f, cfg.pad_token_id = 3, cfg.initializer_range = 0.2f;
    cfg.bos_token_id = cfg.eos_token_id = 1;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = task, spec.dpo = dpo, spec.rloo = rloo_spec, spec.grpo = grpo_spec;
    spec.temperature = tiny_temperature;
    spec.strategy = strategy;
    spec.r = 2, spec.alpha = 4, spec.dropout = 0.1f, spec.use_dora = with_dora;
    spec.bias = with_dora ? LORA_BIAS_ALL : LORA_BIAS_NONE;
    spec.gradient_checkpointing = ckpt;
    const char *targets[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                             "gate_proj", "up_proj", "down_proj"};
    const char *gpt2[] = {"c_attn", "c_proj", "c_fc"},
               *fused[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
    const char *const *names = phi3 ? fused : llama ? targets : gpt2;
    int n = phi3 ? layer1 ? 2 : 4 : layer1 ? llama ? 4 : 2 : llama ? 7 : 3;
    for (int i = 0; i < n; i++)
        target_name(spec.targets[spec.n_targets++], layer1,
                    llama ? "layers.1.self_attn" : "h.1.attn", names[i]);
    if (embed_and_head) {
        strcpy(spec.targets[spec.n_targets++], llama ? "embed_tokens" : "wte");
        strcpy(spec.targets[spec.n_targets++], "lm_head");
    }
    LfError err;
    CHECK_OK(model_create(m, &cfg, &spec, &ops_cpu, NULL, 5, 4, T, NULL, 0, &err), &err);
    for (int i = 0; i < m->n_params; i++) { /* and Qwen's biases and head norms, Gemma's norms
                                                 (1 + w), not 0 and 1 */
        const Param *p = &m->params[i];
        int qwen =
            strstr(p->name, "_proj.bias") || strstr(p->name, "q_norm") || strstr(p->name, "k_norm");
        int one = qwen && !strstr(p->name, "bias") && !p->plus_one;
        if (p->is_lora || qwen || p->plus_one)
            for (size_t j = 0; j < p->numel; j++)
                p->value[j] = 0.4f * (rng_next_uniform(rng) - 0.5f) + one;
    }
}

static void tiny_decoder(Model *m, Arch arch, Task task, DpoSpec dpo, Strategy strategy, Rng *rng) {
    decoder(m, arch, task, dpo, strategy, 0, 0, rng);
}

/* Two right-padded rows, labelled for the causal-LM loss. */
static void decoder_batch(Model *m) {
    int32_t ids[B * T] = {5, 7, 9, 11, 3, 0, 2, 12, 30, 14, 22, 39};
    int32_t mask[B * T] = {1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1}, labels[B * T];
    for (int i = 0; i < B * T; i++) labels[i] = mask[i] ? ids[i] : -100;
    LfError err;
    CHECK_OK(model_set_batch(m, ids, NULL, mask, labels, B, T, &err), &err);
}

/* The causal-LM loss on right-padded rows, LoRA on every linear layer or full fine-tuning. */
static void gradcheck_decoder(Arch arch, Strategy strategy) {
    Rng rng = {78, 0};
    Model m;
    tiny_decoder(&m, arch, TASK_CAUSAL_LM, (DpoSpec){0}, strategy, &rng);
    decoder_batch(&m);
    int checked, failed = gradcheck_tensors(&m, 4321, &rng, strategy_name(strategy), &checked);
    CHECK(failed == 0 && checked == (strategy == STRATEGY_LORA ? lora_checked(&m) : m.n_params));
    printf("%s %s: %d tensors checked, %d off\n", arch_name(arch), strategy_name(strategy), checked,
           failed);
    model_free(&m);
}

/* Two pairs of rows; labels on the responses (DPO: after a 2-token prompt) or on every token
 * (reward: row 1 ends with the pad id 3, so its score is read one token earlier). */
static void pairs_rows(int32_t ids[4 * T], int32_t mask[4 * T], int32_t labels[4 * T],
                       int mask_prompt) {
    static const int32_t rows[4 * T] = {5, 9,  11, 17, 2, 0, 5, 9,  21, 3, 0, 0,
                                        8, 30, 14, 22, 6, 2, 8, 30, 7,  2, 0, 0};
    for (int i = 0; i < 4 * T; i++) {
        ids[i] = rows[i];
        mask[i] = i % T == 0 || ids[i] != 0;
        labels[i] = !mask[i] || (mask_prompt && i % T < 2) ? -100 : ids[i];
    }
}

static void set_pairs(Model *m, int mask_prompt) {
    int32_t ids[4 * T], mask[4 * T], labels[4 * T];
    pairs_rows(ids, mask, labels, mask_prompt);
    LfError err;
    CHECK_OK(model_set_batch(m, ids, NULL, mask, labels, 4, T, &err), &err);
}

static void preference_gradcheck(Arch arch, Task task, DpoSpec dpo, const char *what) {
    Rng rng = {31, 0};
    Model m;
    tiny_decoder(&m, arch, task, dpo, STRATEGY_LORA, &rng);
    set_pairs(&m, task == TASK_DPO);
    LfError err;
    /* DPO's reference: the same model with its adapters off, eval mode; it stays for the batch */
    if (task == TASK_DPO) CHECK_OK(reference_forward(&m, &err), &err);
    int checked, failed = gradcheck_tensors(&m, 99, &rng, what, &checked);
    CHECK(failed == 0 && checked == lora_checked(&m));
    printf("%s %s: %d tensors checked, %d off, loss %.4f\n", arch_name(arch), what, checked, failed,
           gradcheck_loss(&m, 99));
    if (task == TASK_REWARD) CHECK(model_find_param(&m, "score.weight")->grad != NULL);
    model_free(&m);
}

/* want[n] = sum over set_pairs' 4 rows (their completions: mask_prompt's labels) of weight[b]
 * times the gradient of row b's summed token losses, each row alone in lm (the causal-LM loss in
 * eval mode, the weights of the model compared); logp[b] its log-prob (NULL: not needed). */
static double *row_gradients(Model *lm, const double *weight, double *logp) {
    LfError err;
    float loss;
    size_t n = 0;
    for (int i = 0; i < lm->n_params; i++) n += lm->params[i].grad ? lm->params[i].numel : 0;
    double *want = calloc(n, sizeof *want);
    int32_t ids[4 * T], mask[4 * T], labels[4 * T];
    pairs_rows(ids, mask, labels, 1);
    for (int b = 0; b < 4; b++) {
        CHECK_OK(model_set_batch(lm, ids + b * T, NULL, mask + b * T, labels + b * T, 1, T, &err),
                 &err);
        model_zero_grad(lm);
        model_step(lm, 7, 1.0f);
        CHECK_OK(model_forward(lm, 0, &loss, &err), &err);
        CHECK_OK(model_backward(lm, &err), &err);
        if (logp) CHECK_CLOSE(-loss * lm->n_valid, logp[b], 1e-5, 1e-5);
        for (int i = 0, at = 0; i < lm->n_params; i++) {
            const Param *p = &lm->params[i];
            for (size_t j = 0; p->grad && j < p->numel; j++)
                want[at++] += weight[b] * lm->n_valid * p->grad[j];
        }
    }
    return want;
}

/* The largest |want| and |grad - want| over m's gradients, into *top and *off. */
static void gradient_off(const Model *m, const double *want, double *top, double *off) {
    *top = *off = 0;
    for (int i = 0, at = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        for (size_t j = 0; p->grad && j < p->numel; j++, at++) {
            *top = fmax(*top, fabs(want[at]));
            *off = fmax(*off, fabs(p->grad[j] - want[at]));
        }
    }
}

/* RLOO (grpo.c) on a tiny Llama, set_pairs' rows as two groups of two completions (k = 2, beta
 * 0.5), in eval mode: the rows' log-probs at sampling (rl_row_logps) are each row's summed token
 * log-probs, the policy's and the reference's (the adapters off); the gradient must be the sum
 * over rows of (A_b / B) times the gradient of row b's summed token losses, with A_b from the
 * rewards and those log-probs (leave-one-out: A_0 = r_0 - r_1 for a group of two, r = reward -
 * beta (logp - ref)). Built here from the causal-LM gradient of each row alone in a model with the
 * same weights (its mean loss times its token count is the row's summed loss, -logp). Relative
 * 1e-4 of the largest gradient. Also with the advantages normalised (mean 0, std 1 with Bessel's
 * correction, + 1e-4); the KL as TRL logs it, per completion token; and the refusals (no
 * log-probs for the KL, a batch or a generation not of whole groups). */
static void rloo_gradient(int normalize) {
    Model m, lm;
    Rng rng = {41, 0}, rng2 = {41, 0};
    LfError err;
    float rewards[4] = {0.3f, -0.2f, 1.0f, 0.4f}, logps[4], refs[4], rloo_loss;
    rloo_spec.normalize = normalize;
    tiny_decoder(&m, ARCH_LLAMA, TASK_RLOO, (DpoSpec){0}, STRATEGY_LORA, &rng);
    tiny_decoder(&lm, ARCH_LLAMA, TASK_CAUSAL_LM, (DpoSpec){0}, STRATEGY_LORA, &rng2);
    set_pairs(&m, 1);
    CHECK(grpo_set_rewards(&m, rewards, NULL, &err) != 0 && strstr(err.msg, "rl_row_logps"));
    CHECK_OK(rl_row_logps(&m, logps, refs, &err), &err);
    GrpoGeneration gen = {rewards, logps, refs, 4, 1, 0, 1}; /* a batch at row 1: refused */
    CHECK(grpo_set_rewards(&m, rewards, &gen, &err) != 0 && strstr(err.msg, "groups of 2"));
    gen.first = 0, gen.rows = 5; /* a generation not of whole groups: refused */
    CHECK(grpo_set_rewards(&m, rewards, &gen, &err) != 0 && strstr(err.msg, "groups of 2"));
    gen.rows = 4;
    CHECK_OK(grpo_set_rewards(&m, rewards, &gen, &err), &err);
    model_step(&m, 7, 1.0f);
    model_zero_grad(&m);
    CHECK_OK(model_forward(&m, 0, &rloo_loss, &err), &err);
    CHECK_OK(model_backward(&m, &err), &err);
    int32_t ids[4 * T], mask[4 * T], labels[4 * T], tokens = 0;
    pairs_rows(ids, mask, labels, 1);
    for (int i = 0; i < 4 * T; i++) tokens += i % T && labels[i] >= 0; /* the predicted */
    double r[4], a[4], w[4], mean = 0, var = 0, kl = 0, logp[4], top, off;
    for (int b = 0; b < 4; b++) {
        logp[b] = logps[b];
        kl += logp[b] - refs[b];
        r[b] = rewards[b] - 0.5 * (logp[b] - refs[b]);
        CHECK(fabs(logp[b] - refs[b]) > 1e-3); /* LoRA moves the policy */
    }
    for (int b = 0; b < 4; b++) mean += (a[b] = r[b] - r[b ^ 1]) / 4;
    for (int b = 0; b < 4; b++) var += (a[b] - mean) * (a[b] - mean) / 3;
    for (int b = 0; normalize && b < 4; b++) a[b] = (a[b] - mean) / (sqrt(var) + 1e-4);
    for (int b = 0; b < 4; b++) w[b] = a[b] / 4;
    CHECK_CLOSE(m.rloo_stats.kl, 4 * kl / tokens, 1e-5, 1e-6);
    CHECK_CLOSE(m.rloo_stats.reward, r[0] + r[1] + r[2] + r[3], 1e-5, 1e-6);
    CHECK_CLOSE(rloo_loss, -(a[0] + a[1] + a[2] + a[3]) / 4, 1e-5, 1e-6);
    double *want = row_gradients(&lm, w, logp);
    gradient_off(&m, want, &top, &off);
    printf("rloo%s: gradient off by %.2e of %.2e, loss %.6f, kl %.4f\n",
           normalize ? " normalised" : "", off, top, (double)rloo_loss, kl);
    CHECK(top > 1e-3 && off <= 1e-4 * top);
    CHECK(model_set_batch(&m, ids, NULL, mask, labels, 3, T, &err) != 0 &&
          strstr(err.msg, "groups of 2 completions"));
    free(want);
    model_free(&m);
    model_free(&lm);
    rloo_spec.normalize = 0;
}

/* GRPO (grpo.c) on the same rows as two groups of two (k = 2), in eval mode: the gradient must be
 * sum over rows of w_b A_b times the gradient of row b's summed token losses, A_b the reward less
 * its group's mean, divided by the group's or the batch's sample std + 1e-4 or by nothing, w_b
 * 1 / the batch's tokens (dapo, bnpo), 1 / (B n_b) (grpo), 1 / (B max_completion) (dr_grpo),
 * worked out here from the rows' token counts; the loss -sum_b w_b n_b A_b and the reward sum
 * as the readout gives them. Relative 1e-4 of the largest gradient. */
/* TASK_GRPO's settings for set_pairs' rows: TRL's defaults (train_spec_defaults) but groups of
 * two, the loss and scale given, completions of up to 6 tokens. */
static GrpoSpec tiny_grpo(GrpoLoss loss, GrpoScale scale) {
    TrainSpec s;
    train_spec_defaults(&s);
    s.grpo.loss = loss, s.grpo.scale = scale, s.grpo.max_completion = 6;
    return s.grpo;
}

static void grpo_gradient(GrpoLoss loss_type, GrpoScale scale, const char *what) {
    Model m, lm;
    Rng rng = {43, 0}, rng2 = {43, 0};
    LfError err;
    float rewards[4] = {0.3f, -0.2f, 1.0f, 0.4f}, loss;
    grpo_spec = tiny_grpo(loss_type, scale);
    tiny_decoder(&m, ARCH_LLAMA, TASK_GRPO, (DpoSpec){0}, STRATEGY_LORA, &rng);
    tiny_decoder(&lm, ARCH_LLAMA, TASK_CAUSAL_LM, (DpoSpec){0}, STRATEGY_LORA, &rng2);
    set_pairs(&m, 1);
    CHECK_OK(grpo_set_rewards(&m, rewards, NULL, &err), &err);
    model_step(&m, 7, 1.0f);
    model_zero_grad(&m);
    CHECK_OK(model_forward(&m, 0, &loss, &err), &err);
    CHECK_OK(model_backward(&m, &err), &err);
    int32_t ids[4 * T], mask[4 * T], labels[4 * T], n[4] = {0, 0, 0, 0}, tokens = 0;
    pairs_rows(ids, mask, labels, 1);
    for (int i = 0; i < 4 * T; i++) /* the predicted tokens: labels after the first of a row */
        if (i % T && labels[i] >= 0) n[i / T]++, tokens++;
    double a[4], w[4], all = 0, sq = 0, want_loss = 0, top, off;
    for (int b = 0; b < 4; b++) all += rewards[b] / 4.0;
    for (int b = 0; b < 4; b++) sq += (rewards[b] - all) * (rewards[b] - all) / 3;
    for (int b = 0; b < 4; b++) {
        double mean = (rewards[b] + rewards[b ^ 1]) / 2.0, d = rewards[b] - mean;
        double group_std = fabs(rewards[b] - rewards[b ^ 1]) / sqrt(2.0); /* two: Bessel's */
        a[b] = scale == GRPO_SCALE_NONE
                   ? d
                   : d / ((scale == GRPO_SCALE_GROUP ? group_std : sqrt(sq)) + 1e-4);
        double share = loss_type == GRPO_GRPO      ? 1.0 / (4.0 * n[b])
                       : loss_type == GRPO_DR_GRPO ? 1.0 / (4.0 * 6)
                                                   : 1.0 / tokens;
        w[b] = share * a[b];
        want_loss -= share * n[b] * a[b];
    }
    CHECK_CLOSE(loss, want_loss, 1e-5, 1e-6);
    CHECK_CLOSE(m.rloo_stats.reward, 1.5, 1e-6, 1e-6);
    CHECK(m.rloo_stats.zero_std == 0);
    float tied[4] = {0.5f, 0.5f, 1.0f, 0.4f}; /* group 0's std 0: its rows (not the batch's) */
    CHECK_OK(grpo_set_rewards(&m, tied, NULL, &err), &err);
    CHECK(m.grpo_zero_std == (scale == GRPO_SCALE_BATCH ? 0 : 2));
    CHECK_OK(grpo_set_rewards(&m, rewards, NULL, &err), &err);
    double *want = row_gradients(&lm, w, NULL);
    gradient_off(&m, want, &top, &off);
    printf("grpo %s: gradient off by %.2e of %.2e, loss %.6f\n", what, off, top, (double)loss);
    CHECK(top > 1e-3 && off <= 1e-4 * top);
    CHECK(model_set_batch(&m, ids, NULL, mask, labels, 3, T, &err) != 0 &&
          strstr(err.msg, "groups of 2 completions"));
    free(want);
    model_free(&m);
    model_free(&lm);
}

/* GRPO's later passes over a generation (num_iterations 2, beta 0.5, in training mode): the
 * reference's per-token losses a reference forward left, kept on the host and given back
 * (grpo_set_reference), train as the reference forward does, to the bit; with the first pass's
 * losses as the old ones (grpo_set_old) the ratio is 1 and the gradient the first pass's, within
 * float rounding; neither without a reference refused. */
static void grpo_later_pass(void) {
    Model m;
    Rng rng = {53, 0};
    LfError err;
    float rewards[4] = {0.3f, -0.2f, 1.0f, 0.4f}, loss[3];
    grpo_spec = tiny_grpo(GRPO_DAPO, GRPO_SCALE_GROUP);
    grpo_spec.beta = 0.5f, grpo_spec.iterations = 2;
    tiny_decoder(&m, ARCH_LLAMA, TASK_GRPO, (DpoSpec){0}, STRATEGY_LORA, &rng);
    size_t N = 4 * T;
    float *ref = malloc(N * sizeof *ref), *old = malloc(N * sizeof *old);
    float *grads[3] = {malloc(m.n_grads * sizeof(float)), malloc(m.n_grads * sizeof(float)),
                       malloc(m.n_grads * sizeof(float))};
    for (int pass = 0; pass < 3; pass++) { /* the reference's forward, then its losses kept */
        set_pairs(&m, 1);
        CHECK_OK(grpo_set_rewards(&m, rewards, NULL, &err), &err);
        if (pass == 0) CHECK_OK(reference_forward(&m, &err), &err);
        if (pass > 0) CHECK_OK(grpo_set_reference(&m, ref, &err), &err);
        if (pass == 2) CHECK_OK(grpo_set_old(&m, old, &err), &err);
        model_step(&m, 7, 1.0f);
        model_zero_grad(&m);
        CHECK_OK(model_forward(&m, 1, &loss[pass], &err), &err);
        CHECK_OK(model_backward(&m, &err), &err);
        memcpy(grads[pass], m.grads, m.n_grads * sizeof(float));
        if (pass == 0)
            memcpy(ref, m.ref_losses, N * sizeof *ref), memcpy(old, m.losses, N * sizeof *old);
    }
    double worst = 0, top = 0;
    for (size_t i = 0; i < m.n_grads; i++) {
        top = fmax(top, fabs(grads[0][i]));
        worst = fmax(worst, fabs(grads[2][i] - grads[0][i]));
    }
    printf("grpo, a later pass: the kept reference trains as its forward (loss %.6f), the ratio "
           "to the first pass's losses 1 (gradient off by %.2e of %.2e)\n",
           (double)loss[1], worst, top);
    CHECK(loss[1] == loss[0] && !memcmp(grads[1], grads[0], m.n_grads * sizeof(float)));
    CHECK(top > 1e-3 && worst <= 1e-6 * top);
    CHECK_CLOSE(loss[2], loss[0], 1e-7, 1e-6);
    set_pairs(&m, 1);
    CHECK(model_forward(&m, 1, loss, &err) != 0 && strstr(err.msg, "reference forward first"));
    for (int k = 0; k < 3; k++) free(grads[k]);
    free(ref), free(old);
    model_free(&m);
}

/* Gradient accumulation for the objectives whose loss op weighs the LM head's rows (DPO) and
 * RL's host weights: set_pairs' 4 rows in two halves with loss weight 1/2 give the gradient of
 * the whole batch (eval mode; a pair each, or a group of two). RL's halves are one generation
 * (GrpoGeneration: TRL's generation batch), which dapo's normaliser, scale batch's std and RLOO's
 * normalised advantages (with their KL penalty, the rows' log-probs taken before) span; loss_type
 * grpo and scale group need none of it. Within 1e-5 of the largest gradient. */
static void objective_accumulation(Task task, GrpoLoss loss_type, GrpoScale scale_type) {
    Model m;
    Rng rng = {47, 0};
    LfError err;
    float rewards[4] = {0.3f, -0.2f, 1.0f, 0.4f}, loss;
    grpo_spec = tiny_grpo(loss_type, scale_type);
    tiny_decoder(&m, ARCH_LLAMA, task, (DpoSpec){0.5f, DPO_SIGMOID, 0.0f}, STRATEGY_LORA, &rng);
    int32_t ids[4 * T], mask[4 * T], labels[4 * T];
    pairs_rows(ids, mask, labels, 1);
    float logps[4], refs[4];
    GrpoGeneration gen = {rewards, logps, refs, 4, 0, 0, 2};
    for (int i = 0; i < 4 * T; i++) gen.tokens += i % T && labels[i] >= 0; /* the predicted */
    CHECK_OK(model_set_batch(&m, ids, NULL, mask, labels, 4, T, &err), &err);
    if (task == TASK_RLOO) CHECK_OK(rl_row_logps(&m, logps, refs, &err), &err);
    float *whole = malloc(m.n_grads * sizeof *whole);
    for (int half = -1; half < 2; half++) { /* -1: the whole batch */
        int at = half < 0 ? 0 : 2 * half, rows = half < 0 ? 4 : 2;
        if (half <= 0) model_zero_grad(&m);
        CHECK_OK(
            model_set_batch(&m, ids + at * T, NULL, mask + at * T, labels + at * T, rows, T, &err),
            &err);
        GrpoGeneration whole_batch = {rewards, logps, refs, 4, 0, gen.tokens, 1};
        gen.first = at;
        if (task != TASK_DPO)
            CHECK_OK(grpo_set_rewards(&m, rewards + at, half < 0 ? &whole_batch : &gen, &err),
                     &err);
        model_step(&m, 7, half < 0 ? 1.0f : 0.5f);
        if (task == TASK_DPO) CHECK_OK(reference_forward(&m, &err), &err);
        CHECK_OK(model_forward(&m, 0, &loss, &err), &err);
        CHECK_OK(model_backward(&m, &err), &err);
        if (half < 0) memcpy(whole, m.grads, m.n_grads * sizeof *whole);
    }
    double scale = 0, worst = 0;
    for (size_t i = 0; i < m.n_grads; i++) {
        scale = fmax(scale, fabs(whole[i]));
        worst = fmax(worst, fabs(whole[i] - m.grads[i]));
    }
    printf("%s%s: two half batches of loss weight 1/2 off the whole batch's gradient by %.2e of "
           "%.2e\n",
           m.objective->name,
           task == TASK_GRPO && loss_type == GRPO_DAPO ? " (dapo, scale batch)"
           : task == TASK_RLOO                         ? " (normalised, beta 0.5)"
                                                       : "",
           worst, scale);
    CHECK(scale > 0 && worst <= 1e-5 * scale);
    free(whole);
    model_free(&m);
}

/* The adapters-off forward is the base model's: equal log-probs to a model built without LoRA
 * from the same weights (same seed, LoRA tensors drawn after the base ones). */
static void adapters_off_is_base(void) {
    Rng rng = {31, 0};
    Model m, base;
    DpoSpec dpo = {0.1f, DPO_SIGMOID, 0};
    tiny_decoder(&m, ARCH_LLAMA, TASK_DPO, dpo, STRATEGY_LORA, &rng);
    tiny_decoder(&base, ARCH_LLAMA, TASK_DPO, dpo, STRATEGY_LORA, &rng);
    LfError err;
    float loss, with_lora[4];
    set_pairs(&m, 1);
    CHECK_OK(model_forward(&m, 0, &loss, &err), &err);
    memcpy(with_lora, m.seq_scores, sizeof with_lora);
    CHECK_OK(reference_forward(&m, &err), &err);
    CHECK_OK(model_read_loss(&m, NULL, NULL, &err), &err);
    for (int i = 0; i < base.n_loras; i++) { /* B = 0: the base model */
        Param *B = base.loras[i].B;
        memset(B->value, 0, B->numel * sizeof(float));
    }
    set_pairs(&base, 1);
    CHECK_OK(model_forward(&base, 0, &loss, &err), &err);
    for (int i = 0; i < 4; i++) {
        CHECK_CLOSE(m.ref_scores[i], base.seq_scores[i], 1e-5, 1e-6);
        CHECK(fabsf(m.ref_scores[i] - with_lora[i]) > 1e-3f); /* LoRA does change them */
    }
    model_free(&m);
    model_free(&base);
}

/* DoRA (TrainSpec.use_dora) on a tiny Llama whose base is q8_0 (gate and up: 300 rows, two of
 * sync_dora's 256-row chunks; down's 300 inputs are no whole blocks, so it is stored bf16): the
 * magnitude starts as each row's norm, so the model starts as LoRA's does (B = 0: the base's loss,
 * within float rounding); with B random, the norms a forward computes are those of the stored
 * weights + s B A, summed here on the host in double (relative 1e-6). */
static void dora_norms(void) {
    ModelConfig cfg;
    model_config_defaults(&cfg, ARCH_LLAMA);
    cfg.vocab_size = 40, cfg.hidden_size = 32, cfg.num_layers = 1, cfg.num_heads = 4;
    cfg.num_kv_heads = 2, cfg.ffn_size = 300, cfg.max_positions = 16, cfg.initializer_range = 0.2f;
    cfg.pad_token_id = 3;
    Model m[2];
    float loss[2];
    LfError err;
    for (int k = 0; k < 2; k++) {
        TrainSpec spec;
        train_spec_defaults(&spec);
        spec.task = TASK_CAUSAL_LM, spec.r = 4, spec.alpha = 8, spec.use_dora = k;
        spec.base_dtype = BASE_Q8_0;
        const char *targets[] = {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"};
        for (int i = 0; i < 5; i++) strcpy(spec.targets[spec.n_targets++], targets[i]);
        CHECK_OK(model_create(&m[k], &cfg, &spec, &ops_cpu, NULL, 5, 4, T, NULL, 0, &err), &err);
        decoder_batch(&m[k]);
        CHECK_OK(model_forward(&m[k], 0, &loss[k], &err), &err);
    }
    printf("dora at its start: loss %.7f, lora's %.7f\n", loss[1], loss[0]);
    CHECK(m[1].n_loras == 5 && m[0].n_loras == 5 && !m[0].loras[0].mag);
    CHECK(m[1].n_grads == m[0].n_grads + 2 * 32 + 16 + 2 * 300); /* q, v, gate, up, down rows */
    CHECK_CLOSE(loss[1], loss[0], 1e-6, 1e-7);
    Model *d = &m[1];
    Rng rng = {3, 0};
    for (int i = 0; i < d->n_loras; i++)
        for (size_t j = 0; j < d->loras[i].B->numel; j++)
            d->loras[i].B->value[j] = 0.4f * (rng_next_uniform(&rng) - 0.5f);
    CHECK_OK(model_forward(d, 0, &loss[1], &err), &err);
    float **slot;
    float *host = model_host_weights(d, 0, &slot, NULL, &err);
    CHECK(host != NULL);
    double worst_norm = 0, worst_mag = 0;
    for (int i = 0; host && i < d->n_loras; i++) {
        const Lora *lo = &d->loras[i];
        const float *W = slot[lo->base->w - d->params], *A = lo->A->value, *Bm = lo->B->value;
        int in = lo->base->in, R = d->spec.r;
        for (int o = 0; o < lo->base->out; o++) {
            double w2 = 0, v2 = 0;
            for (int c = 0; c < in; c++) {
                double ba = 0, w = W[(size_t)o * in + c];
                for (int k = 0; k < R; k++) ba += (double)Bm[o * R + k] * A[(size_t)k * in + c];
                w2 += w * w, v2 += (w + lo->scale * ba) * (w + lo->scale * ba);
            }
            worst_norm = worse(worst_norm, fabs(lo->norm[o] - sqrt(v2)) / sqrt(v2));
            worst_mag = worse(worst_mag, fabs(lo->mag->value[o] - sqrt(w2)) / sqrt(w2));
        }
    }
    printf("dora norms of a q8_0 base: worst relative difference %.2e (magnitudes at the start "
           "%.2e)\n",
           worst_norm, worst_mag);
    CHECK(worst_norm < 1e-6 && worst_mag < 1e-6);
    free(host);
    free(slot);
    model_free(&m[0]);
    model_free(&m[1]);
}

/* GPT-2's GGUF tensor names: the global ones, then each layer's. */
static const char *gpt2_gguf_global[] = {"token_embd.weight", "position_embd.weight",
                                         "output_norm.weight", "output_norm.bias"};
static const char *gpt2_gguf_layer[] = {"attn_norm", "attn_qkv", "attn_output",
                                        "ffn_norm",  "ffn_up",   "ffn_down"};

static void gguf_gpt2(const char *tmp) {
    ModelConfig cfg, back;
    TrainSpec spec;
    Model m, g;
    LfError err;
    model_config_defaults(&cfg, ARCH_GPT2);
    cfg.vocab_size = 40, cfg.hidden_size = 8, cfg.num_heads = 2, cfg.num_layers = 2;
    cfg.ffn_size = 12, cfg.max_positions = 16, cfg.bos_token_id = cfg.eos_token_id = 1;
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM;
    /* PEFT's default LoRA targets for gpt2: c_attn only */
    CHECK_OK(model_create(&m, &cfg, &spec, &ops_cpu, NULL, 3, 1, 4, NULL, 0, &err), &err);
    CHECK(m.n_loras == 2 && m.spec.n_targets == 1 && !strcmp(m.spec.targets[0], "c_attn"));
    CHECK(strstr(m.loras[1].A->name, "h.1.attn.c_attn.lora_A") != NULL);
    model_free(&m);
    spec.init = LORA_INIT_OLORA; /* the QR of a Conv1D weight fits no adapter of its layer */
    CHECK(model_create(&m, &cfg, &spec, &ops_cpu, NULL, 3, 1, 4, NULL, 0, &err) == -1);
    CHECK(strstr(err.msg, "OLoRA: transformer.h.0.attn.c_attn.weight is a Conv1D weight") != NULL);
    spec.init = LORA_INIT_DEFAULT;
    spec.strategy = STRATEGY_FULL;
    CHECK_OK(model_create(&m, &cfg, &spec, &ops_cpu, NULL, 3, 1, 4, NULL, 0, &err), &err);
    const GgufWriteKV kvs[] = {
        {.key = "general.architecture", .type = GGUF_STRING, .s = "gpt2"},
        {.key = "gpt2.block_count", .type = GGUF_UINT32, .u = 2},
        {.key = "gpt2.embedding_length", .type = GGUF_UINT32, .u = 8},
        {.key = "gpt2.feed_forward_length", .type = GGUF_UINT32, .u = 12},
        {.key = "gpt2.attention.head_count", .type = GGUF_UINT32, .u = 2},
        {.key = "gpt2.context_length", .type = GGUF_UINT32, .u = 16},
        {.key = "gpt2.attention.layer_norm_epsilon", .type = GGUF_FLOAT32, .f = 1e-5},
    };
    char names[64][64];
    int n = 0;
    for (int i = 0; i < 4; i++) snprintf(names[n++], 64, "%s", gpt2_gguf_global[i]);
    for (int l = 0; l < 2; l++)
        for (int i = 0; i < 6; i++)
            for (int bias = 0; bias < 2; bias++)
                snprintf(names[n++], 64, "blk.%d.%s.%s", l, gpt2_gguf_layer[i],
                         bias ? "bias" : "weight");
    GgufWriteTensor t[64];
    for (int i = 0; i < n; i++) {
        char hf[160];
        GgufFix fix;
        CHECK_OK(gguf_hf_name("gpt2", names[i], hf, sizeof hf, &fix, &err), &err);
        const Param *p = model_find_param(&m, hf);
        CHECK(p && p->hf_transposed == (fix == GGUF_FIX_TRANSPOSE));
        if (!p) return;
        /* loraft's [out,in] is GGUF's: ne[0] the columns */
        t[i] = (GgufWriteTensor){names[i],
                                 GGML_F32,
                                 p->ndim,
                                 {p->ndim == 2 ? p->shape[1] : p->shape[0], p->shape[0], 1, 1},
                                 p->value};
        if (p->ndim == 1) t[i].ne[1] = 1;
    }
    t[n] = t[0]; /* the converter's copy of the tied wte */
    t[n++].name = "output.weight";
    char path[600];
    snprintf(path, sizeof path, "%s/gpt2.gguf", tmp);
    CHECK_OK(gguf_write(path, kvs, sizeof kvs / sizeof *kvs, t, n, 32, &err), &err);
    CHECK_OK(model_config_load(&back, path, &err), &err);
    CHECK(back.arch == ARCH_GPT2 && back.vocab_size == 40 && back.hidden_size == 8);
    CHECK(back.num_layers == 2 && back.num_heads == 2 && back.ffn_size == 12);
    CHECK(back.max_positions == 16 && back.layer_norm_eps == 1e-5f && back.tie_word_embeddings);
    CHECK_OK(model_create(&g, &back, &spec, &ops_cpu, path, 4, 1, 4, NULL, 0, &err), &err);
    CHECK(g.n_values == m.n_values && !memcmp(g.values, m.values, m.n_values * sizeof(float)));
    printf("gpt2 from GGUF: %d tensors, the same config and weights\n", n);
    model_free(&g);
    model_free(&m);
}

/* The seed experiment's counts, as PEFT prints them. */
static void peft_counts(const char *vocab_dir) {
    ModelConfig cfg;
    model_config_defaults(&cfg, ARCH_DISTILBERT);
    cfg.num_labels = 2;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = 4, spec.alpha = 32;
    strcpy(spec.targets[0], "q_lin");
    spec.n_targets = 1;
    Model m;
    LfError err;
    (void)vocab_dir;
    CHECK(model_create(&m, &cfg, &spec, &ops_cpu, NULL, 1, 1, 2, NULL, 0, &err) == 0);
    CHECK(model_trainable_count(&m) == 628994);
    CHECK(model_all_count(&m) == 67584004);
    CHECK(m.n_base == 66955010);
    /* every tensor 64-byte aligned (the GPU loads LoRA's A as float4), though the classifier's
     * bias before the LoRA tensors holds 2 values */
    int misaligned = 0;
    for (int i = 0; i < m.n_params; i++)
        misaligned += m.params[i].value && (m.params[i].value - m.values) % 16 != 0;
    CHECK(misaligned == 0);
    model_free(&m);
}

/* A one-layer DistilBERT with LoRA r 4 on q_lin, started as init says. */
static void start_lora(Model *m, LoraInit init) {
    ModelConfig cfg;
    model_config_defaults(&cfg, ARCH_DISTILBERT);
    cfg.num_labels = 2, cfg.num_layers = 1;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = 4, spec.alpha = 8, spec.init = init;
    strcpy(spec.targets[spec.n_targets++], "q_lin");
    LfError err;
    CHECK_OK(model_create(m, &cfg, &spec, &ops_cpu, NULL, 1, 1, 2, NULL, 0, &err), &err);
}

/* max |W_res + scale B A - W0| over max |W0|: a split start against the default start's weight
 * W0 (the same seed). */
static double split_off(const Lora *p, const float *W0) {
    int R = p->r, C = p->base->in, O = p->base->out;
    const float *W = p->base->w->value;
    double off = 0, wmax = 0;
    for (int o = 0; o < O; o++)
        for (int c = 0; c < C; c++) {
            double ba = 0;
            for (int r = 0; r < R; r++)
                ba += (double)p->B->value[o * R + r] * p->A->value[r * C + c];
            off = worse(off, fabs(W[o * C + c] + p->scale * ba - W0[o * C + c]));
            wmax = fmax(wmax, fabs(W0[o * C + c]));
        }
    return off / wmax;
}

/* OLoRA: B's columns orthonormal (Q's), A upper triangular (R's rows: zeros left of the
 * diagonal, none on it), W_res + scale B A = W within float rounding. */
static void olora_start(const float *W0) {
    Model m;
    start_lora(&m, LORA_INIT_OLORA);
    const Lora *p = &m.loras[0];
    int R = p->r, C = p->base->in, O = p->base->out, triangular = 1;
    double worst = 0;
    for (int i = 0; i < R; i++) {
        for (int j = 0; j < R; j++) {
            double bb = 0;
            for (int o = 0; o < O; o++)
                bb += (double)p->B->value[o * R + i] * p->B->value[o * R + j];
            worst = worse(worst, fabs(bb - (i == j)));
        }
        for (int c = 0; c <= i; c++)
            triangular = triangular && (p->A->value[i * C + c] == 0) == (c < i);
    }
    double off = split_off(p, W0);
    printf("OLoRA: B^T B = I within %.1e; A upper triangular: %s; W_res + s B A = W within %.1e of "
           "max |W|\n",
           worst, triangular ? "yes" : "no", off);
    CHECK(worst < 1e-5 && triangular && off <= 1e-5);
    model_free(&m);
}

/* lora.init_lora_weights: PEFT's default A ~ U(+-1/sqrt(768)); gaussian A ~ N(0, 1/4) (mean and
 * standard deviation of its 3,072 values within 5 % of 1/4: 4 standard errors); B 0 both; PiSSA:
 * A A^T = B^T B = diag(S_r / scale), descending, and W_res + scale B A is the default start's
 * weight (the same seed) within float rounding; OLoRA's (olora_start). */
static void lora_starts(void) {
    Model m[3];
    for (int k = 0; k < 3; k++) start_lora(&m[k], (LoraInit)k);
    const Lora *lo[3] = {&m[0].loras[0], &m[1].loras[0], &m[2].loras[0]};
    size_t n = lo[0]->A->numel;
    double big = 0, sum = 0, sq = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        big = fmax(big, fabs(lo[0]->A->value[i]));
        sum += lo[1]->A->value[i], sq += (double)lo[1]->A->value[i] * lo[1]->A->value[i];
    }
    for (size_t i = 0; i < lo[0]->B->numel; i++)
        b = fmax(b, fabs(lo[0]->B->value[i]) + fabs(lo[1]->B->value[i]));
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    CHECK(big <= 1 / sqrt(768.0) && big > 0.9 / sqrt(768.0) && b == 0);
    CHECK(fabs(mean) < 0.05 * 0.25 && fabs(sd - 0.25) < 0.05 * 0.25);
    printf("LoRA starts: default max |A| %.5f (bound %.5f); gaussian A mean %.4f, sd %.4f (0.25)\n",
           big, 1 / sqrt(768.0), mean, sd);
    const Lora *p = lo[2];
    int R = p->r, C = p->base->in, O = p->base->out;
    double worst = 0, prev = INFINITY;
    for (int i = 0; i < R; i++)
        for (int j = 0; j < R; j++) {
            double aa = 0, bb = 0;
            for (int c = 0; c < C; c++)
                aa += (double)p->A->value[i * C + c] * p->A->value[j * C + c];
            for (int o = 0; o < O; o++)
                bb += (double)p->B->value[o * R + i] * p->B->value[o * R + j];
            if (i == j) { /* S descending */
                CHECK(aa <= prev * (1 + 1e-5));
                prev = aa;
            }
            worst = worse(worst, fabs(aa - bb) / prev);
            if (i != j) worst = worse(worst, fabs(aa) / prev);
        }
    CHECK(worst < 1e-4);
    double off = split_off(p, lo[0]->base->w->value);
    CHECK(off <= 1e-5);
    printf("PiSSA: A A^T = B^T B diagonal within %.1e; W_res + s B A = W within %.1e of max |W|\n",
           worst, off);
    olora_start(lo[0]->base->w->value);
    for (int k = 0; k < 3; k++) model_free(&m[k]);
    /* a spec built in code gets the readers' checks: a key POSIX cannot match is refused */
    ModelConfig cfg;
    model_config_defaults(&cfg, ARCH_DISTILBERT);
    cfg.num_labels = 2, cfg.num_layers = 1;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.rank_pattern[spec.n_rank_pattern++] = (LoraPattern){"(?=q)_lin", 2};
    Model bad;
    LfError err;
    CHECK(model_create(&bad, &cfg, &spec, &ops_cpu, NULL, 1, 1, 2, NULL, 0, &err) == -1);
    CHECK(strstr(err.msg, "rank_pattern") && strstr(err.msg, "(?= is not supported"));
}

static void reward_batch(Model *m) {
    set_pairs(m, 0);
}

static void dpo_batch(Model *m) {
    set_pairs(m, 1);
    LfError err;
    CHECK_OK(reference_forward(m, &err), &err);
}

/* Gradient checkpointing replays each layer's forward before its backward, from the same input
 * and the same dropout seeds (every dropout on here): the loss and every gradient are the same
 * bits as without it (the CPU's ops are deterministic), from fewer activations where more than
 * one layer is recomputed (with one, at most `own` floats more: a buffer of its own for the
 * gradient between layers). plain and ckpt: the same model but for that. */
static void checkpointing_is_exact(Model *plain, Model *ckpt, void (*batch)(Model *),
                                   const char *what, size_t own) {
    Model *ms[2] = {plain, ckpt};
    float loss[2];
    LfError err;
    for (int i = 0; i < 2; i++) {
        batch(ms[i]);
        model_zero_grad(ms[i]);
        model_step(ms[i], 7, 1.0f);
        CHECK_OK(model_forward(ms[i], 1, &loss[i], &err), &err);
        CHECK_OK(model_backward(ms[i], &err), &err);
    }
    size_t n = plain->n_grads, nonzero = 0;
    CHECK(n > 0 && ckpt->n_grads == n);
    for (size_t i = 0; i < n; i++) nonzero += plain->grads[i] != 0;
    int same = memcmp(&loss[0], &loss[1], sizeof *loss) == 0 &&
               memcmp(plain->grads, ckpt->grads, n * sizeof *plain->grads) == 0;
    CHECK(same);
    CHECK(nonzero > n / 2);
    CHECK(own ? ckpt->n_act <= plain->n_act + own : ckpt->n_act < plain->n_act);
    /* a second backward adds the same again (2 g, exact): the top layer, which the first took as
     * the forward left it, is replayed this time */
    for (int i = 0; i < 2; i++) CHECK_OK(model_backward(ms[i], &err), &err);
    int twice = memcmp(plain->grads, ckpt->grads, n * sizeof *plain->grads) == 0;
    CHECK(twice);
    printf("gradient checkpointing, %s: loss %.6f, %zu gradients (%zu nonzero) %s (a second "
           "backward: %s); activations %zu -> %zu floats\n",
           what, loss[1], n, nonzero, same ? "the same bits" : "DIFFER", twice ? "same" : "DIFFER",
           plain->n_act, ckpt->n_act);
    model_free(plain);
    model_free(ckpt);
}

static void checkpointing(const char *distil, const char *bert) {
    const char *archs[] = {"distilbert", "bert",    "gpt2",   "llama",  "qwen2", "qwen3",
                           "mistral",    "smollm3", "gemma3", "gemma2", "phi3"};
    const Arch decoders[] = {ARCH_GPT2,    ARCH_LLAMA,  ARCH_QWEN2,  ARCH_QWEN3, ARCH_MISTRAL,
                             ARCH_SMOLLM3, ARCH_GEMMA3, ARCH_GEMMA2, ARCH_PHI3};
    const char *cases[] = {"lora", "full", "lora layer 1", "dora", "head"};
    Model m[2];
    for (int a = 0; a < 11; a++)
        for (int c = 0; c < 5 - (a >= 2); c++) { /* head: the encoders' classifier alone */
            Strategy s = c == 1 ? STRATEGY_FULL : c == 4 ? STRATEGY_HEAD : STRATEGY_LORA;
            with_dora = c == 3;
            for (int ckpt = 0; ckpt < 2; ckpt++) {
                Rng rng = {5, 0};
                if (a < 2)
                    encoder(&m[ckpt], a ? bert : distil, s, c == 2, ckpt, &rng);
                else
                    decoder(&m[ckpt], decoders[a - 2], TASK_CAUSAL_LM, (DpoSpec){0}, s, c == 2,
                            ckpt, &rng);
            }
            /* one layer recomputed: nothing saved; a decoder's d_out of its own costs [N,C] (and
             * the 16 floats of its guard block under LORAFT_ACT_GUARDS); none (head): the same */
            size_t NC = (size_t)m[0].max_batch * m[0].max_len * m[0].cfg.hidden_size;
            char what[64];
            snprintf(what, sizeof what, "%s %s", archs[a], cases[c]);
            size_t own = c < 2 || c == 3 ? 0 : a < 2 ? 1 : NC + 16;
            checkpointing_is_exact(&m[0], &m[1], a < 2 ? set_batch : decoder_batch, what, own);
        }
    with_dora = 0;
    for (int ckpt = 0; ckpt < 2; ckpt++) { /* the reference forward between batch and step */
        Rng rng = {7, 0};
        decoder(&m[ckpt], ARCH_LLAMA, TASK_DPO, (DpoSpec){0.5f, DPO_SIGMOID, 0.1f}, STRATEGY_LORA,
                0, ckpt, &rng);
    }
    checkpointing_is_exact(&m[0], &m[1], dpo_batch, "llama dpo", 0);
    for (int ckpt = 0; ckpt < 2; ckpt++) {
        Rng rng = {8, 0};
        decoder(&m[ckpt], ARCH_LLAMA, TASK_REWARD, (DpoSpec){0}, STRATEGY_LORA, 0, ckpt, &rng);
    }
    checkpointing_is_exact(&m[0], &m[1], reward_batch, "llama reward", 0);
}

static int records_graphs(void) {
    return 0;
}

/* causal_lm_labels' list of rows for the LM head (Model.head_rows): the rows that count, in
 * order; on a backend that records CUDA graphs, filled with distinct ignored rows to whole chunks
 * of OPS_LM_HEAD_CHUNK rows; no list where it would spare under one row in 16. B rows of T
 * tokens, the first `prompt` of rows 1 and 2 labelled -100 (row 0 counts whole, so that the
 * ignored rows come after rows that count). */
static void head_rows_list(void) {
    enum { B = 3, T = 1400, N = B * T, V = 50 };
    int32_t *labels = malloc(N * sizeof *labels), *out = malloc(N * sizeof *out);
    int32_t *rows = malloc(N * sizeof *rows);
    Ops graphs = ops_cpu;
    graphs.graph_begin = records_graphs;
    LfError err;
    for (int prompt = 0; prompt <= 1000; prompt += 1000)
        for (int g = 0; g < 2; g++) {
            Model m = {0};
            m.ops = g ? &graphs : &ops_cpu, m.cfg.vocab_size = V, m.host_head_rows = rows;
            for (int i = 0; i < N; i++) labels[i] = i >= T && i % T < prompt ? -100 : i % V;
            CHECK(causal_lm_labels(&m, labels, B, T, out, &err) == 0);
            int valid = prompt ? (T - 1) + 2 * (T - prompt) : B * (T - 1);
            int listed = g ? 3 * OPS_LM_HEAD_CHUNK : valid;
            CHECK(m.n_valid == valid);
            CHECK(m.n_head_rows == (prompt ? listed : 0));
            if (!prompt) continue;
            char *seen = calloc(N, 1);
            int bad = 0;
            for (int k = 0; k < m.n_head_rows; k++) {
                int r = rows[k];
                bad += r < 0 || r >= N || seen[r] || (out[r] >= 0) != (k < valid);
                bad += k > 0 && k < valid && r <= rows[k - 1]; /* the rows that count, in order */
                if (r >= 0 && r < N) seen[r] = 1;
            }
            CHECK(bad == 0);
            free(seen);
        }
    free(labels), free(out), free(rows);
}

/* Whether model_create refuses spec on a tiny tied Llama (or untied, or a reward model), with
 * an error that says want; NULL: accepts it. */
static void token_rows_spec(TrainSpec s, int tied, Task task, const char *want) {
    Strategy strategy = s.strategy == STRATEGY_TOKENS ? STRATEGY_TOKENS : STRATEGY_LORA;
    ModelConfig cfg;
    model_config_defaults(&cfg, ARCH_LLAMA);
    cfg.vocab_size = 40, cfg.hidden_size = 16, cfg.num_layers = 1, cfg.num_heads = 4;
    cfg.num_kv_heads = 2, cfg.ffn_size = 24, cfg.max_positions = 16;
    cfg.tie_word_embeddings = tied;
    s.task = task, s.strategy = strategy, s.r = 2, s.alpha = 4;
    if (!s.n_targets) strcpy(s.targets[s.n_targets++], "q_proj");
    Model m;
    LfError err;
    int rc = model_create(&m, &cfg, &s, &ops_cpu, NULL, 5, 2, T, NULL, 0, &err);
    if (!rc) model_free(&m);
    CHECK(rc == (want ? -1 : 0));
    if (rc && (!want || !strstr(err.msg, want))) fprintf(stderr, "unexpected: %s\n", err.msg);
    CHECK(!rc || (want && strstr(err.msg, want)));
}

/* Trained token rows (trainable_token_indices, lm_head_token_indices) that loraft would not
 * compute as peft does are refused, saying why; the combinations peft runs are accepted. */
static void token_rows_refusals(void) {
    TrainSpec s, rows, head;
    train_spec_defaults(&s);
    rows = s, rows.n_token_indices = 2, rows.token_indices[0] = 1, rows.token_indices[1] = 2;
    head = s, head.n_head_token_indices = 2;
    head.head_token_indices[0] = 2, head.head_token_indices[1] = 39;
    token_rows_spec(head, 1, TASK_CAUSAL_LM, NULL);
    token_rows_spec(head, 0, TASK_CAUSAL_LM, NULL);
    TrainSpec t = head;
    t.head_token_indices[1] = 40;
    token_rows_spec(t, 0, TASK_CAUSAL_LM,
                    "trainable_token_indices of lm_head: token id 40 is outside the vocabulary "
                    "(size 40)");
    t = head, t.head_token_indices[1] = 2;
    token_rows_spec(t, 1, TASK_CAUSAL_LM, "lm_head: token id 2 is listed twice");
    token_rows_spec(head, 1, TASK_REWARD, "names lm_head, which this model does not have");
    t = head, strcpy(t.targets[t.n_targets++], "lm_head");
    token_rows_spec(t, 0, TASK_CAUSAL_LM, "beside LoRA on 'lm_head': both would change the head");
    t = head, strcpy(t.modules_to_save[t.n_modules_to_save++], "lm_head");
    token_rows_spec(t, 0, TASK_CAUSAL_LM, "on 'lm_head', which modules_to_save trains whole");
    /* the embedding's rows and LoRA on a tied head (the rows' as well) */
    t = rows, strcpy(t.targets[t.n_targets++], "lm_head");
    token_rows_spec(t, 1, TASK_CAUSAL_LM, "beside LoRA on 'lm_head': both would change the same");
    token_rows_spec(t, 0, TASK_CAUSAL_LM, NULL); /* untied: the head keeps its own rows */
    /* both lists on a tied model: the same list (in the same order) is the embedding's alone */
    t = rows, t.n_head_token_indices = 2;
    t.head_token_indices[0] = 1, t.head_token_indices[1] = 2;
    strcpy(t.targets[t.n_targets++], "lm_head");
    token_rows_spec(t, 1, TASK_CAUSAL_LM, "beside LoRA on 'lm_head': both would change the same");
    t.n_targets--, t.ensure_weight_tying = 1;
    token_rows_spec(t, 1, TASK_CAUSAL_LM, NULL);
    t.head_token_indices[0] = 2, t.head_token_indices[1] = 1; /* other order: apart */
    token_rows_spec(t, 1, TASK_CAUSAL_LM, "ensure_weight_tying with other trainable_token_indices");
    t.ensure_weight_tying = 0;
    token_rows_spec(t, 1, TASK_CAUSAL_LM, NULL);
    /* LoRA on the embedding beside rows of the head alone: peft runs both */
    t = head, strcpy(t.targets[t.n_targets++], "embed_tokens");
    token_rows_spec(t, 1, TASK_CAUSAL_LM, NULL);
    /* peft's TrainableTokens (strategy tokens): one list, for the embedding (a tied head's with
     * it) or an untied head, or both; on a language model */
    t = rows, t.strategy = STRATEGY_TOKENS;
    token_rows_spec(t, 1, TASK_CAUSAL_LM, NULL);
    token_rows_spec(t, 1, TASK_REWARD, "strategy tokens (peft's TrainableTokens) trains no head");
    t.n_token_indices = 0;
    token_rows_spec(t, 1, TASK_CAUSAL_LM, "give their token ids");
    t = head, t.strategy = STRATEGY_TOKENS;
    token_rows_spec(t, 0, TASK_CAUSAL_LM, NULL);
    token_rows_spec(t, 1, TASK_CAUSAL_LM, "trains one list of token ids");
    t.n_token_indices = 2, t.token_indices[0] = 2, t.token_indices[1] = 39;
    token_rows_spec(t, 0, TASK_CAUSAL_LM, NULL);
    t.token_indices[1] = 38;
    token_rows_spec(t, 0, TASK_CAUSAL_LM, "trains one list of token ids");
}

int main(void) {
    char tmp[] = "/tmp/loraft-model-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    char vocab[512], distil[512], bert[512];
    snprintf(vocab, sizeof vocab, "%s/vocab", tmp);
    snprintf(distil, sizeof distil, "%s/distilbert", tmp);
    snprintf(bert, sizeof bert, "%s/bert", tmp);
    mkdir(vocab, 0700);
    tiny_write_vocab(vocab);
    tiny_checkpoint("distilbert", 8, 3, vocab, distil);
    tiny_checkpoint("bert", 8, 3, vocab, bert);
    for (int s = 0; s < 3; s++) {
        gradcheck(distil, (Strategy)s);
        gradcheck(bert, (Strategy)s);
    }
    for (int full = 0; full < 2; full++) {
        gradcheck_decoder(ARCH_GPT2, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_LLAMA, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_QWEN2, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_QWEN3, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_MISTRAL, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_SMOLLM3, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_GEMMA3, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_GEMMA2, full ? STRATEGY_FULL : STRATEGY_LORA);
        gradcheck_decoder(ARCH_PHI3, full ? STRATEGY_FULL : STRATEGY_LORA);
    }
    size_t head = activations(distil, STRATEGY_HEAD), lora = activations(distil, STRATEGY_LORA),
           full = activations(distil, STRATEGY_FULL);
    printf("activations kept (floats): head %zu, lora %zu, full %zu\n", head, lora, full);
    CHECK(head < lora && lora < full);
    bad_batches(distil);
    step_seed_draws_masks(distil);
    neftune_noise(distil);
    accumulation(distil);
    accumulation(bert);
    peft_counts(vocab);
    lora_starts();
    token_rows_refusals();
    preference_gradcheck(ARCH_LLAMA, TASK_DPO, (DpoSpec){0.5f, DPO_SIGMOID, 0.1f}, "dpo sigmoid");
    preference_gradcheck(ARCH_LLAMA, TASK_DPO, (DpoSpec){0.5f, DPO_IPO, 0.0f}, "dpo ipo");
    preference_gradcheck(ARCH_LLAMA, TASK_REWARD, (DpoSpec){0.1f, DPO_SIGMOID, 0.0f}, "reward");
    preference_gradcheck(ARCH_GPT2, TASK_DPO, (DpoSpec){0.5f, DPO_SIGMOID, 0.1f}, "dpo sigmoid");
    /* LoRA on embed_tokens (wte) and lm_head too, under lora dropout: untied and tied Llama,
     * GPT-2 (tied), Gemma 3 (the embedding scaled after the adapter's term), and DPO through the
     * adapted head */
    embed_and_head = 1;
    gradcheck_decoder(ARCH_LLAMA, STRATEGY_LORA);
    gradcheck_decoder(ARCH_GPT2, STRATEGY_LORA);
    gradcheck_decoder(ARCH_GEMMA3, STRATEGY_LORA);
    preference_gradcheck(ARCH_LLAMA, TASK_DPO, (DpoSpec){0.5f, DPO_SIGMOID, 0.1f}, "dpo sigmoid");
    embed_and_head = 0;
    with_dora =
        1; /* DoRA under lora dropout: biases (BERT, GPT-2's Conv1D, Qwen2), fused (Phi-3) */
    gradcheck(distil, STRATEGY_LORA);
    gradcheck(bert, STRATEGY_LORA);
    gradcheck_decoder(ARCH_GPT2, STRATEGY_LORA);
    gradcheck_decoder(ARCH_LLAMA, STRATEGY_LORA);
    gradcheck_decoder(ARCH_QWEN2, STRATEGY_LORA);
    gradcheck_decoder(ARCH_PHI3, STRATEGY_LORA);
    preference_gradcheck(ARCH_LLAMA, TASK_DPO, (DpoSpec){0.5f, DPO_SIGMOID, 0.1f}, "dpo sigmoid");
    with_dora = 0;
    adapters_off_is_base();
    rloo_gradient(0);
    rloo_gradient(1);
    objective_accumulation(TASK_DPO, GRPO_GRPO, GRPO_SCALE_GROUP);
    rloo_spec.normalize = 1;
    objective_accumulation(TASK_RLOO, GRPO_GRPO, GRPO_SCALE_GROUP);
    rloo_spec.normalize = 0;
    objective_accumulation(TASK_GRPO, GRPO_GRPO, GRPO_SCALE_GROUP);
    objective_accumulation(TASK_GRPO, GRPO_DAPO, GRPO_SCALE_BATCH);
    grpo_later_pass();
    grpo_gradient(GRPO_DAPO, GRPO_SCALE_GROUP, "dapo, scaled by the group");
    grpo_gradient(GRPO_GRPO, GRPO_SCALE_BATCH, "grpo, scaled by the batch");
    grpo_gradient(GRPO_BNPO, GRPO_SCALE_NONE, "bnpo, not scaled");
    grpo_gradient(GRPO_DR_GRPO, GRPO_SCALE_GROUP, "dr_grpo, scaled by the group");
    tiny_temperature = 0.7f; /* the one-pass head's weights on tempered logits, both models' */
    grpo_gradient(GRPO_DAPO, GRPO_SCALE_GROUP, "dapo, scaled by the group, temperature 0.7");
    tiny_temperature = 1.0f;
    dora_norms();
    head_rows_list();
    checkpointing(distil, bert);
    gguf_gpt2(tmp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return check_report();
}
