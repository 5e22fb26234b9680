/* test_gpu_model.c: the whole model on the CUDA backend against the CPU reference.
 *
 * A tiny DistilBERT and a tiny BERT (`loraft init`, a 40-token vocabulary written here) are
 * built on both backends with identical weights (LoRA B made non-zero); one training-mode
 * step with every dropout on (the masks are the same function of the seed on both sides; under
 * fp32 NEFTune's embedding noise too) must give the same loss, logits and gradients, and three
 * AdamW steps the same weights.
 * Each model runs twice: LoRA on PEFT's default targets, and LoRA on every linear layer of
 * the encoder including the FFN ones (whose input width, the FFN size, exceeds the hidden
 * size: the op scratch must follow ops_lora_scratch for the widest input).
 * A tiny Llama decoder (GQA: 4 heads, 2 KV heads; a 300-token vocabulary; tied and untied
 * LM head) and a tiny GPT-2 (4 heads, tied head, embedding and residual dropout too) are built
 * in memory from a seed for the causal-LM objective, and trained the same way with LoRA on
 * every linear layer (Llama's seven projections; GPT-2's c_attn, c_proj, c_fc) and with full
 * fine-tuning, on right-padded random ids (labels -100 on padding), LoRA and attention dropout
 * on: losses, every gradient and the model_lm_logits of every row must agree, and the weights
 * after three AdamW steps; the Llama once more with model.base_dtype bf16 (the frozen
 * projections packed, dequantize_rows before each GEMM on both backends). Every run above sets
 * model.precision fp32 on the GPU (its default is bf16). The preference objectives
 * run the same way on two pairs of rows with LoRA: DPO (its reference log-probs from each backend's
 * adapters-off forward; Llama and GPT-2) and the reward model (the score head's per-token scores as
 * the logits). Tolerance: 1e-4 * max|ref| + 1e-3 * |ref| per element (float32, different summation
 * orders, compounded over 2 layers); the decoder's gradients are compared tensor by tensor,
 * each against its own max|ref|, its weights after the steps as one table (AdamW moves every
 * weight by about lr whatever its size, so a small tensor gets no tighter bound).
 *
 * The LM head over a list of rows (SFT's prompts ignored; 160 rows of 16 tokens): the GPU pads
 * its list to whole chunks of 1,024 rows, the CPU's is exact; losses row by row, and every
 * ignored row's 0, after a batch whose list leaves out rows the one before counted.
 *
 * model.precision bf16 on the GPU against fp32 on the CPU (Llama LoRA on the seven projections,
 * from its seed and from a GGUF with base_dtype q, Q8_0 and F16 blocks dequantised to bf16 on the
 * GPU and to f32 on the CPU, and from its seed with base_dtype q4_1, quantised at load on both;
 * BERT LoRA on every linear; GPT-2 LoRA on its three): the frozen projections are rounded to bf16
 * at load (q: for each GEMM) and every activation entering their GEMMs to bf16, attention's q, k,
 * v, dout, P and dS as its tensor-core operands, and what backward reads of the norms and
 * activations (xhat, the inputs of GELU and SwiGLU) is kept in bf16: a relative error of up to 2^-9
 * (0.2 %) per operand, which partly averages out in the sums. llm.c-style bounds, stated: the loss
 * within 2e-3 relative at each step (measured: under 1.5e-4; a tiny model's loss sits near log V
 * and moves little), and every gradient tensor and the logits within 5e-2 in relative norm (|gpu -
 * cpu| / |cpu| over the tensor; measured: at most 1.6e-2, the Llama's near-zero logits, 1.2e-2 for
 * BERT's gradients). The test prints the worst of each run. The weights after the AdamW steps are
 * not compared: AdamW's first steps move each weight by about lr * sign(g), so gradient elements
 * near zero flip whole steps. With gradient checkpointing (Llama, Qwen3, GPT-2 and BERT with LoRA,
 * fp32 and bf16) the loss and every gradient are the same bits as without it on the GPU. Skips (77)
 * without a CUDA device. DoRA as dora_runs says. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tiny.h"
#include "loraft/gguf_export.h"
#include "loraft/model.h"
#include "loraft/objective.h"
#include "loraft/optimizer.h"
#include "loraft/quant.h"
#include "loraft/rng.h"
#include "loraft/safetensors.h" /* f32_to_bf16, bf16_to_f32 */

enum { B = 3, T = 7 };

/* Host values h against the host reference. */
static void compare_host(const char *what, const float *h, const float *ref, size_t n) {
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    int bad = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(h[i] - ref[i]);
        bad += d > 1e-4 * scale + 1e-3 * fabs(ref[i]);
        if (d > fabs(h[worst] - ref[worst])) worst = i;
    }
    if (bad)
        fprintf(stderr, "%s: %d of %zu elements off; worst [%zu] %.9g, cpu %.9g (max|cpu| %.3g)\n",
                what, bad, n, worst, h[worst], ref[worst], scale);
    CHECK(bad == 0);
}

static double bf16_worst; /* the largest relative error of a bf16 run, and where */
static char bf16_worst_what[256];

/* model.precision bf16: |h - ref| / |ref| over the tensor, the llm.c-style bound; |ref| taken
 * as at least floor. */
static void compare_host_rel(const char *what, const float *h, const float *ref, size_t n,
                             double tol, double floor) {
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < n; i++)
        d2 += ((double)h[i] - ref[i]) * ((double)h[i] - ref[i]), r2 += (double)ref[i] * ref[i];
    double norm = fmax(sqrt(r2), floor);
    double rel = norm > 0 ? sqrt(d2) / norm : sqrt(d2);
    if (rel > bf16_worst)
        bf16_worst = rel, snprintf(bf16_worst_what, sizeof bf16_worst_what, "%s", what);
    if (!(rel <= tol))
        fprintf(stderr, "%s: relative error %.3g over %zu elements (bound %.3g)\n", what, rel, n,
                tol);
    CHECK(rel <= tol);
}

/* Device values against the host reference. */
static void compare(const char *what, const Ops *ops, const float *dev, const float *ref,
                    size_t n) {
    float *h = malloc(n * sizeof *h);
    ops->download(h, dev, n * sizeof *h);
    compare_host(what, h, ref, n);
    free(h);
}

/* The bounds of a run: fp32 on both backends, or bf16 on the GPU (see the top). */
static const double bf16_loss_rel = 2e-3;
static double bf16_tensor_rel = 5e-2; /* gemma3_runs widens it for one model, lora.bias all too */
static float adam_eps = 1e-6f;        /* run_decoder's AdamW (why: there); gemma3_runs' too */

static void compare_floored(Precision prec, const char *what, const float *h, const float *ref,
                            size_t n, double floor) {
    if (prec == PRECISION_BF16)
        compare_host_rel(what, h, ref, n, bf16_tensor_rel, floor);
    else
        compare_host(what, h, ref, n);
}

static void compare_as(Precision prec, const char *what, const float *h, const float *ref,
                       size_t n) {
    compare_floored(prec, what, h, ref, n, 0);
}

static void compare_dev_as(Precision prec, const char *what, const float *dev, const float *ref,
                           size_t n) {
    float *h = malloc(n * sizeof *h);
    ops_cuda.download(h, dev, n * sizeof *h);
    compare_as(prec, what, h, ref, n);
    free(h);
}

static void check_loss(Precision prec, float gpu, float cpu) {
    if (prec == PRECISION_BF16) {
        printf("    loss: cuda bf16 %.6f, cpu fp32 %.6f (rel %.2e)\n", gpu, cpu,
               fabs(gpu - cpu) / fabs(cpu));
        CHECK_CLOSE(gpu, cpu, 0, bf16_loss_rel);
    } else
        CHECK_CLOSE(gpu, cpu, 1e-5, 1e-4);
}

/* The gradient norms adamw_update left: no further apart than the gradients (bf16: their
 * relative L2 error bounds the norms'). */
static void check_norm(Precision prec, double gpu, double cpu) {
    if (prec == PRECISION_BF16)
        CHECK_CLOSE(gpu, cpu, 0, bf16_tensor_rel);
    else
        CHECK_CLOSE(gpu, cpu, 1e-7, 1e-4);
}

/* The CPU model's f32 values onto the GPU model, parameter by parameter: under bf16 the GPU
 * keeps its frozen projections packed (loaded from the same source), so only the f32 ones
 * travel. */
static void copy_values(Model *gpu, const Model *cpu) {
    for (int i = 0; i < cpu->n_params; i++)
        if (gpu->params[i].value)
            ops_cuda.upload(gpu->params[i].value, cpu->params[i].value,
                            cpu->params[i].numel * sizeof(float));
}

/* LoRA on every linear layer of the encoder (BERT's "dense" also takes the pooler). */
static const char *all_linear[2][6] = {{"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"},
                                       {"query", "key", "value", "dense"}};

/* The largest root mean square of a gradient tensor of m. */
static double largest_grad_rms(const Model *m) {
    double largest = 0;
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        double s2 = 0;
        for (size_t j = 0; p->grad && j < p->numel; j++) s2 += (double)p->grad[j] * p->grad[j];
        largest = fmax(largest, sqrt(s2 / (double)p->numel));
    }
    return largest;
}

/* Every gradient, tensor by tensor (each against its own max|ref|, or its own norm). Under bf16
 * the norm is taken as at least 2^-8 (bf16's rounding) of the model's largest gradient RMS times
 * sqrt(numel): a gradient that cancels to near 0 in exact arithmetic (q's and k's biases under
 * RoPE: softmax ignores a shift of a query's scores) keeps the rounding of the terms it sums. */
static void compare_grads(const Model *gpu, const Model *cpu, Precision prec) {
    double rms = largest_grad_rms(cpu);
    for (int i = 0; i < cpu->n_params; i++) {
        const Param *c = &cpu->params[i];
        if (!c->grad) continue;
        char name[256];
        snprintf(name, sizeof name, "gradient of %s", c->name);
        float *h = malloc(c->numel * sizeof *h);
        ops_cuda.download(h, gpu->params[i].grad, c->numel * sizeof *h);
        compare_floored(prec, name, h, c->grad, c->numel, 0x1p-8 * rms * sqrt((double)c->numel));
        free(h);
    }
}

/* model.attention of the GPU model in run and run_decoder: under cudnn the attention's dropout is
 * off on both sides (cuDNN's masks are its own; test_gpu_parity checks them). */
static AttentionImpl gpu_attention = ATTENTION_LORAFT;
static int gpu_dora;                 /* run_decoder and checkpointing_same_bits adapt with DoRA */
static float gpu_grpo_beta;          /* run_decoder's GRPO KL penalty */
static float gpu_temperature = 1.0f; /* and its RL sampling temperature (TrainSpec.temperature) */
static int gpu_grpo_iterations = 1;  /* and its num_iterations: the steps after the first on the
                                        ratio to the first's log-probs, clipped at 0.98, 1.03 in
                                        fp32; in bf16 at TRL's 0.8, 1.2, for a token whose ratio
                                        its rounding moves across a bound changes the gradient
                                        by a step of its own */
static int gpu_grpo_sequence;        /* and GSPO's ratio, a row's (RLOO's always a row's) */
static GrpoLoss gpu_grpo_loss;       /* and its loss type (cispo's cap: 1 + the fp32 epsilon) */
static int gpu_grpo_plain_kl;        /* and its KL term without the ratio */
static float gpu_grpo_off_policy;    /* and its off-policy sequence mask's threshold */
/* run_decoder's LoRA takes other ranks and alphas (PEFT's rank_pattern, alpha_pattern) for q,
 * v and gate, so that q, k, v and gate, up run apart */
static int gpu_patterns;
static LoraBias gpu_bias; /* run_decoder's lora.bias */
static LoraInit gpu_init; /* run_decoder's lora.init_lora_weights */
/* run_decoder's targets take the token embedding (its padding_idx a token of the batch) and the
 * LM head too: Unsloth's continued-pretraining targets */
static int gpu_embed;
/* run_decoder's adapter trains token rows too (trainable_token_indices): every third id, the
 * padding's 0 (the table's padding_idx then) among them; 2: and rows of the LM head's own
 * (lm_head_token_indices), every fourth id from 1 */
static int gpu_tokens;

static void run(const char *dir, int arch, int every_linear, Precision prec, float lora_p) {
    ModelConfig cfg;
    LfError err;
    CHECK(model_config_load(&cfg, dir, &err) == 0);
    cfg.hidden_dropout = cfg.attention_dropout = 0.1f;
    if (gpu_attention == ATTENTION_CUDNN) cfg.attention_dropout = 0.0f;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = 4, spec.alpha = 8, spec.dropout = lora_p;
    spec.neftune_alpha = prec == PRECISION_FP32 ? 5.0f : 0.0f; /* NEFTune's noise: one draw */
    if (every_linear) {
        spec.n_targets = 0;
        for (int i = 0; i < 6 && all_linear[arch][i]; i++)
            snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s",
                     all_linear[arch][i]);
    }
    Model cpu, gpu;
    spec.precision = PRECISION_FP32;
    CHECK(model_create(&cpu, &cfg, &spec, &ops_cpu, dir, 5, B, T, NULL, 0, &err) == 0);
    spec.precision = prec;
    spec.attention = gpu_attention;
    int ok = model_create(&gpu, &cfg, &spec, &ops_cuda, dir, 5, B, T, NULL, 0, &err) == 0;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    CHECK(ok);
    if (!ok) return;
    Rng rng = {3, 0};
    for (int i = 0; i < cpu.n_params; i++)
        if (cpu.params[i].is_lora)
            for (size_t j = 0; j < cpu.params[i].numel; j++)
                cpu.params[i].value[j] = 0.1f * (rng_next_uniform(&rng) - 0.5f);
    int n_lora = 0;
    for (int i = 0; i < cpu.n_params; i++) n_lora += cpu.params[i].is_lora;
    printf("  LoRA on %s: %d adapted linear layers\n", every_linear ? "every linear" : "defaults",
           n_lora / 2);
    if (every_linear) CHECK(n_lora / 2 >= 6 * cfg.num_layers);
    copy_values(&gpu, &cpu);
    int32_t ids[B * T], mask[B * T], types[B * T] = {0}, labels[B] = {1, 0, 1};
    for (int i = 0; i < B * T; i++)
        ids[i] = 5 + (int32_t)(rng_next(&rng) % 35), mask[i] = i % T < T - i / T;
    Model *ms[2] = {&cpu, &gpu};
    AdamW opt[2];
    for (int k = 0; k < 2; k++) {
        CHECK(model_set_batch(ms[k], ids, cfg.arch == ARCH_BERT ? types : NULL, mask, labels, B, T,
                              &err) == 0);
        CHECK(adamw_create(&opt[k], ms[k], 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f, &err) == 0);
    }
    for (int step = 0; step < 3; step++) {
        float loss[2];
        for (int k = 0; k < 2; k++) {
            model_zero_grad(ms[k]);
            model_step(ms[k], 77 + (uint64_t)step, 1.0f);
            CHECK(model_forward(ms[k], 1, &loss[k], &err) == 0);
            CHECK(model_backward(ms[k], &err) == 0);
        }
        check_loss(prec, loss[1], loss[0]);
        if (step == 0) {
            compare_dev_as(prec, "logits", gpu.logits, cpu.logits, (size_t)B * cfg.num_labels);
            compare_grads(&gpu, &cpu, prec);
        }
        double norm[2];
        for (int k = 0; k < 2; k++) {
            adamw_update(&opt[k], ms[k], 1e-2f, 1.0f);
            CHECK_OK(model_read_loss(ms[k], NULL, &norm[k], &err), &err);
        }
        check_norm(prec, norm[1], norm[0]);
    }
    /* a smaller batch than the model was built for (a last batch; dynamic padding): the buffers
     * whose layout follows the batch's shape (attention's saved copies) move with it */
    enum { SB = B - 1, ST = T - 2 };
    int32_t sids[SB * ST], smask[SB * ST];
    for (int i = 0; i < SB * ST; i++)
        sids[i] = ids[i / ST * T + i % ST], smask[i] = i % ST < ST - i / ST;
    for (int k = 0; k < 2; k++) {
        float loss;
        CHECK(model_set_batch(ms[k], sids, cfg.arch == ARCH_BERT ? types : NULL, smask, labels, SB,
                              ST, &err) == 0);
        CHECK(model_forward(ms[k], 0, &loss, &err) == 0);
    }
    compare_dev_as(prec, "logits of a smaller batch", gpu.logits, cpu.logits,
                   (size_t)SB * cfg.num_labels);
    if (prec != PRECISION_BF16)
        compare("weights after 3 steps", &ops_cuda, gpu.values, cpu.values, cpu.n_values);
    CHECK(ops_cuda.status(&err) == 0);
    for (int k = 0; k < 2; k++) adamw_free(&opt[k], ms[k]), model_free(ms[k]);
}

/* The tiny decoders: vocabulary 300, hidden 32 (head size 8), 4 heads (Llama: over 2 KV heads),
 * FFN 48 (wider than hidden: the MLP's output projection has the widest input), 2 layers. The
 * untied Llama's RoPE has Llama 3.1's scaling (at head size 8 one frequency kept, one blended, two
 * divided; from a GGUF its divisors). */
enum { LB = 4, LT = 8, LV = 300 };

/* Phi-3 as Phi-4-mini: heads of 32, RoPE over their first 16 (8 pairs: whole chunks the bf16
 * copies turn; the gradients a pass) */
static int phi3_partial;

static void decoder_config(ModelConfig *cfg, Arch arch, int tied) {
    model_config_defaults(cfg, arch);
    cfg->vocab_size = LV, cfg->hidden_size = 32, cfg->num_layers = 2, cfg->num_heads = 4;
    cfg->num_kv_heads = arch_is_llama(arch) ? 2 : 4, cfg->ffn_size = 48, cfg->max_positions = 16;
    cfg->tie_word_embeddings = tied;
    int gemma = arch_is_gemma(arch);
    cfg->head_dim = arch == ARCH_QWEN3 || gemma ? 16 : 0; /* heads twice hidden / heads wide */
    /* Gemma 3 scaled by its head size; Gemma 2 by a scalar of its own, soft-capped where its
     * scores and logits (about 1 here) reach the caps */
    cfg->query_pre_attn_scalar = arch == ARCH_GEMMA2 ? 12 : gemma ? 16 : 0;
    if (arch == ARCH_GEMMA2) cfg->attn_softcap = 1.0f, cfg->final_softcap = 2.0f;
    /* a window inside LT: Mistral's and Phi-3's in every layer, Qwen2's in layer 1 alone,
     * Gemma's in layer 0 alone (with its own RoPE base) */
    int phi3 = arch == ARCH_PHI3;
    cfg->sliding_window = arch == ARCH_MISTRAL || arch == ARCH_QWEN2 || gemma || phi3 ? 3 : 0;
    cfg->full_attention[0] = arch == ARCH_QWEN2, cfg->full_attention[1] = gemma;
    cfg->no_rope[0] = 0, cfg->no_rope[1] = arch == ARCH_SMOLLM3; /* SmolLM3: layer 1 NoPE */
    if (arch == ARCH_QWEN3)                                      /* YaRN: cos and sin scaled */
        cfg->rope_scaling = (RopeScaling){.type = ROPE_YARN,
                                          .factor = 4,
                                          .original_max_positions = 8,
                                          .beta_fast = 32,
                                          .beta_slow = 1,
                                          .attention_factor = 1.2f};
    if (phi3) /* longrope, LT past its original context: the long factors, cos and sin scaled */
        cfg->rope_scaling = (RopeScaling){.type = ROPE_LONGROPE,
                                          .original_max_positions = LT - 2,
                                          .attention_factor = 1.2f,
                                          .n_divisors = 4,
                                          .divisors = {1.0f, 1.2f, 1.7f, 2.5f, 1, 2, 3, 4},
                                          .long_divisors = {1.5f, 2.0f, 4.0f, 9.0f, 2, 4, 8, 16}};
    if (phi3 && phi3_partial)
        cfg->head_dim = 32, cfg->rotary_dim = 16, cfg->rope_scaling.n_divisors = 8;
    if (arch == ARCH_LLAMA && !tied)
        cfg->rope_scaling = (RopeScaling){.type = ROPE_LLAMA3,
                                          .factor = 8,
                                          .low_freq_factor = 1,
                                          .high_freq_factor = 4,
                                          .original_max_positions = 64};
    cfg->attention_dropout = 0.1f;
    cfg->bos_token_id = cfg->eos_token_id = 0, cfg->pad_token_id = -1; /* SmolLM3's is 128004 */
    LfError err;
    CHECK_OK(model_config_validate(cfg, "tiny decoder", &err), &err);
}

__attribute__((weak)) long long loraft_cuda_emu_count(const char *what);

/* Launches of one bf16 eval forward of arch's tiny decoder (LoRA on the seven projections) under
 * the emulator's count (-1 without it). */
static long long forward_launches(Arch arch) {
    ModelConfig cfg;
    decoder_config(&cfg, arch, 0);
    cfg.head_dim = 16; /* all alike (Phi-3 without its longrope, whose factors were for 8) */
    if (arch == ARCH_PHI3) cfg.rope_scaling = (RopeScaling){.type = ROPE_DEFAULT};
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM, spec.precision = PRECISION_BF16, spec.base_dtype = BASE_BF16;
    spec.r = 4, spec.alpha = 8;
    const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
    const char *fused[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
    int phi3 = arch == ARCH_PHI3;
    for (int i = 0; i < (phi3 ? 4 : 7); i++)
        snprintf(spec.targets[spec.n_targets++], 32, "%s", phi3 ? fused[i] : proj[i]);
    int32_t ids[LT] = {1, 2, 3, 4, 5, 6, 7, 8}, mask[LT] = {1, 1, 1, 1, 1, 1, 1, 1};
    Model m;
    LfError err;
    float loss;
    CHECK_OK(model_create(&m, &cfg, &spec, &ops_cuda, NULL, 5, LB, LT, NULL, 0, &err), &err);
    CHECK_OK(model_set_batch(&m, ids, NULL, mask, ids, 1, LT, &err), &err);
    CHECK_OK(model_forward(&m, 0, &loss, &err), &err); /* the first one rounds the adapters */
    long long before = loraft_cuda_emu_count("launches");
    CHECK_OK(model_forward(&m, 0, &loss, &err), &err);
    long long n = loraft_cuda_emu_count("launches") - before;
    model_free(&m);
    return n;
}

/* Qwen2's biases and Qwen3's head norms keep q, k and v one bf16 GEMM a layer: a forward takes
 * Llama's launches, Qwen3's two head norms a layer more (two more GEMMs a layer if they split);
 * Phi-3's fused linears run as Llama's joined groups do, Llama's launches too. */
static void check_qkv_joined(void) {
    if (!loraft_cuda_emu_count) return; /* a real GPU: the count is the emulator's */
    long long llama = forward_launches(ARCH_LLAMA), qwen2 = forward_launches(ARCH_QWEN2);
    long long qwen3 = forward_launches(ARCH_QWEN3), phi3 = forward_launches(ARCH_PHI3);
    printf("bf16 forward launches: llama %lld, qwen2 %lld, qwen3 %lld, phi3 %lld (2 layers)\n",
           llama, qwen2, qwen3, phi3);
    CHECK(qwen2 == llama && qwen3 == llama + 2 * 2 && phi3 == llama);
}

/* The untied tiny Llama from its seed as a GGUF of Q8_0 projections (down_proj's 48 columns are
 * not whole blocks: F16) for base_dtype q. */
/* Every op's scratch fits the model's (its guard stays whole) where a group's LoRA backward is
 * its largest user: a tiny Llama with all seven projections adapted at rank 64 over 128 x 8
 * tokens under bf16 (gate and up's du, [douts | dus] and their weight gradients' partials, 16
 * splits of the rows; at the other tests' sizes the forward's copies or the head lead). */
static void check_group_scratch(void) {
    enum { SB = 128 };
    static const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                 "gate_proj", "up_proj", "down_proj"};
    ModelConfig cfg;
    LfError err;
    decoder_config(&cfg, ARCH_LLAMA, 1);
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM;
    spec.r = 64, spec.alpha = 128, spec.dropout = 0.1f, spec.precision = PRECISION_BF16;
    spec.n_targets = 7;
    for (int i = 0; i < 7; i++) snprintf(spec.targets[i], sizeof spec.targets[0], "%s", proj[i]);
    Model m;
    int rc = model_create(&m, &cfg, &spec, &ops_cuda, NULL, 5, SB, LT, NULL, 0, &err);
    CHECK_OK(rc, &err);
    if (rc) return;
    static int32_t ids[SB * LT], mask[SB * LT];
    for (int i = 0; i < SB * LT; i++) ids[i] = (int32_t)(i * 7 % LV), mask[i] = 1;
    float loss;
    CHECK_OK(model_set_batch(&m, ids, NULL, mask, ids, SB, LT, &err), &err);
    model_zero_grad(&m);
    model_step(&m, 9, 1.0f);
    CHECK_OK(model_forward(&m, 1, &loss, &err), &err);
    CHECK_OK(model_backward(&m, &err), &err); /* fails naming the buffer written past */
    model_free(&m);
}

static void write_decoder_gguf(const char *path) {
    ModelConfig cfg;
    TrainSpec spec;
    Model m;
    LfError err;
    decoder_config(&cfg, ARCH_LLAMA, 0);
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM, spec.strategy = STRATEGY_HEAD;
    CHECK_OK(model_create(&m, &cfg, &spec, &ops_cpu, NULL, 5, 1, 2, NULL, 0, &err), &err);
    CHECK_OK(gguf_export_model(&m, path, GGML_Q8_0, NULL, NULL, &err), &err);
    model_free(&m);
}

/* auto is bf16 on the GPU and packs the frozen projections under LoRA; under head (the whole
 * model is saved) bf16 leaves every weight as loaded. */
static void check_precision_storage(void) {
    ModelConfig cfg;
    TrainSpec spec;
    Model m;
    LfError err;
    decoder_config(&cfg, ARCH_LLAMA, 0);
    for (int head = 0; head < 2; head++) {
        train_spec_defaults(&spec);
        spec.task = TASK_CAUSAL_LM;
        spec.strategy = head ? STRATEGY_HEAD : STRATEGY_LORA;
        spec.precision = head ? PRECISION_BF16 : PRECISION_AUTO;
        CHECK_OK(model_create(&m, &cfg, &spec, &ops_cuda, NULL, 5, 1, 2, NULL, 0, &err), &err);
        CHECK(m.spec.precision == PRECISION_BF16);
        CHECK(head ? m.n_packed_bytes == 0 : m.n_packed_bytes > 0);
        model_free(&m);
    }
}

/* precision bf16 keeps the frozen projections in bf16, with room for B in the rows of every
 * linear of a group with an adapted one, R columns an adapted member (Param.lora_room; the
 * group's rows share a stride): read
 * back (model_host_weights), each is the CPU's weight rounded to bf16, exactly. */
static void check_packed_weights(Model *gpu, Model *cpu) {
    LfError err;
    float **slot[2];
    float *host[2] = {model_host_weights(gpu, 0, &slot[0], NULL, &err),
                      model_host_weights(cpu, 0, &slot[1], NULL, &err)};
    CHECK_OK(host[0] && host[1] ? 0 : -1, &err);
    int bad = 0, rooms = 0;
    for (int i = 0; host[0] && host[1] && i < gpu->n_params; i++) {
        const Param *p = &gpu->params[i];
        if (!p->packed) continue;
        for (size_t j = 0; j < p->numel; j++)
            bad += slot[0][i][j] != bf16_to_f32(f32_to_bf16(slot[1][i][j]));
    }
    for (int i = 0; i < gpu->n_linears; i++) {
        const Linear *l = gpu->linears[i];
        /* the ranks of its group's adapted (the head's adapter rides in lm_head_cross_entropy) */
        int cols = l->peers || !l->lora || l == gpu->head ? 0 : l->lora->r;
        for (int j = 0; l->peers && j < l->group; j++)
            cols += l->peers[j]->lora ? l->peers[j]->lora->r : 0;
        rooms += l->w->packed && l->w->lora_room == cols;
        rooms -= l->w->packed != NULL;
    }
    CHECK(bad == 0);
    CHECK(rooms == 0);
    for (int k = 0; k < 2; k++) free(host[k]), free(slot[k]);
}

/* The adapters' share of the eval-mode logits [n] of the batch's rows: with them minus without
 * (Model.adapters_off). */
static void lora_share(Model *m, int rows, float *out, float *tmp, size_t n) {
    LfError err;
    float loss;
    for (int off = 0; off < 2; off++) {
        m->adapters_off = off;
        CHECK_OK(model_forward(m, 0, &loss, &err), &err);
        CHECK_OK(model_lm_logits(m, 0, rows * LT, off ? tmp : out, &err), &err);
    }
    m->adapters_off = 0;
    for (size_t i = 0; i < n; i++) out[i] -= tmp[i];
}

/* |a - b| / |b| */
static double rel_diff(const float *a, const float *b, size_t n) {
    double d2 = 0, r2 = 0;
    for (size_t i = 0; i < n; i++)
        d2 += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), r2 += (double)b[i] * b[i];
    return sqrt(d2 / r2);
}

/* A decoder from its seed (gguf NULL) or from gguf, trained on both backends. Under precision
 * bf16 with LoRA (the up-projection inside the base GEMM, over bf16 copies of B that must follow
 * every optimizer step), the adapters' share of the eval logits after the steps is compared on
 * its own: those steps moved it by more than 4 x the bound, so copies left behind would fail. */
static void run_decoder(Arch arch, int tied, Strategy strategy, Task task, BaseDtype dtype,
                        Precision prec, float lora_p, int all_targets, const char *gguf) {
    ModelConfig cfg;
    decoder_config(&cfg, arch, tied);
    if (gpu_attention == ATTENTION_CUDNN) cfg.attention_dropout = 0.0f;
    LfError err;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = task;
    spec.dpo = (DpoSpec){0.5f, DPO_SIGMOID, 0.1f};
    float eps = prec == PRECISION_BF16 ? 0.2f : 0.02f;
    /* two groups of two, the advantages normalised */
    spec.rloo = (RlooSpec){.beta = 0.5f,
                           .generations = 2,
                           .normalize = 1,
                           .iterations = gpu_grpo_iterations,
                           .eps_low = eps,
                           .eps_high = 1.5f * eps};
    spec.grpo.beta = gpu_grpo_beta, spec.grpo.max_completion = LT;
    spec.grpo.iterations = gpu_grpo_iterations;
    spec.grpo.level = gpu_grpo_sequence ? OPS_GRPO_SEQUENCE_MEAN : OPS_GRPO_TOKEN;
    spec.grpo.kl_corrected = !gpu_grpo_plain_kl, spec.grpo.off_policy = gpu_grpo_off_policy;
    spec.grpo.eps_low = eps, spec.grpo.eps_high = 1.5f * eps, spec.grpo.loss = gpu_grpo_loss;
    if (gpu_grpo_loss == GRPO_CISPO) spec.grpo.eps_high = 1.0f + eps;
    spec.temperature = gpu_temperature;
    spec.strategy = strategy;
    spec.r = 4, spec.alpha = 8, spec.dropout = lora_p, spec.use_dora = gpu_dora;
    spec.neftune_alpha = prec == PRECISION_FP32 ? 5.0f : 0.0f;
    spec.base_dtype = dtype;
    spec.bias = gpu_bias;
    spec.init = gpu_init;
    if (gpu_patterns) {
        spec.rank_pattern[spec.n_rank_pattern++] = (LoraPattern){"q_proj", 6};
        spec.rank_pattern[spec.n_rank_pattern++] = (LoraPattern){"gate_proj", 2};
        spec.alpha_pattern[spec.n_alpha_pattern++] = (LoraPattern){"v_proj", 20};
    }
    int rows = task == TASK_CAUSAL_LM ? 3 : 4; /* the preference tasks (and RL): two pairs */
    int rl = task == TASK_RLOO || task == TASK_GRPO;
    int prompt = task == TASK_DPO || rl; /* a prompt */
    const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
    const char *conv[] = {"c_attn", "c_proj", "c_fc"}; /* c_proj: attn's and mlp's */
    const char *phi3_proj[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
    int gpt2 = arch == ARCH_GPT2, phi3 = arch == ARCH_PHI3;
    int per_layer = !all_targets ? (gpt2 || phi3 ? 1 : 2) : gpt2 || phi3 ? 4 : 7;
    /* 0: PEFT's defaults (Llama: q, v; Phi-3: qkv_proj) */
    spec.n_targets = !all_targets ? 0 : gpt2 ? 3 : phi3 ? 4 : 7;
    const char *const *names = gpt2 ? conv : phi3 ? phi3_proj : proj;
    for (int i = 0; i < spec.n_targets; i++)
        snprintf(spec.targets[i], sizeof spec.targets[0], "%s", names[i]);
    if (gpu_embed) {
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s",
                 gpt2 ? "wte" : "embed_tokens");
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "lm_head");
    }
    if (gpu_embed) cfg.pad_token_id = 5;
    if (gpu_tokens) cfg.pad_token_id = 0;
    for (int id = 0; gpu_tokens && id < LV; id += 3)
        spec.token_indices[spec.n_token_indices++] = id;
    for (int id = 1; gpu_tokens == 2 && id < LV; id += 4)
        spec.head_token_indices[spec.n_head_token_indices++] = id;
    Model cpu, gpu;
    spec.precision = PRECISION_FP32;
    CHECK_OK(model_create(&cpu, &cfg, &spec, &ops_cpu, gguf, 5, LB, LT, NULL, 0, &err), &err);
    spec.precision = prec;
    spec.attention = gpu_attention;
    int ok = model_create(&gpu, &cfg, &spec, &ops_cuda, gguf, 5, LB, LT, NULL, 0, &err) == 0;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    CHECK(ok);
    if (!ok) return;
    for (int i = 0; gpu_patterns && i < gpu.n_linears; i++) /* the adapted run apart */
        CHECK(!gpu.linears[i]->peers || !gpu.linears[i]->lora);
    Rng rng = {11, 0};
    int n_lora = 0;
    for (int i = 0; i < cpu.n_params; i++) {
        const char *name = cpu.params[i].name;
        size_t len = strlen(name);
        int bias = len > 5 && !strcmp(name + len - 5, ".bias"); /* 0 at init: they would hide */
        int head_norm = strstr(name, "self_attn.q_norm") || strstr(name, "self_attn.k_norm");
        n_lora += cpu.params[i].is_lora; /* B non-zero, so A has a gradient too */
        if (cpu.params[i].is_lora || bias || head_norm || cpu.params[i].plus_one)
            for (size_t j = 0; j < cpu.params[i].numel; j++)
                cpu.params[i].value[j] = 0.2f * (rng_next_uniform(&rng) - 0.5f);
    }
    int n_rows = (gpu_tokens > 0) + (gpu_tokens > 1);
    CHECK(n_lora == (strategy == STRATEGY_LORA
                         ? (gpu_dora ? 3 : 2) * per_layer * cfg.num_layers + 4 * gpu_embed + n_rows
                     : strategy == STRATEGY_TOKENS ? n_rows
                                                   : 0));
    CHECK(model_trainable_count(&cpu) > 0);
    /* the seven projections of each layer packed: bf16, the GGUF's Q8_0 (F16 for rows of 48) or
     * Q4_1 quantised at load (bf16 for rows of 48, not whole blocks); a frozen LM head, its own
     * weight or the tied embedding, and the embedding in bf16 alone, the tables their ops read */
    int quantised = dtype >= BASE_Q;
    int packed = dtype == BASE_Q ? GGML_Q8_0 : quantised ? GGML_Q4_1 : GGML_BF16;
    int rows_of_48 = dtype == BASE_Q ? GGML_F16 : GGML_BF16;
    if (prec == PRECISION_BF16) {
        for (int i = 0; i < gpu.n_linears; i++) {
            const Linear *l = gpu.linears[i];
            if (l != gpu.head) /* a trained bias's too (lora.bias) */
                CHECK(l->w->dtype == (l->in == 48 ? rows_of_48 : packed));
        }
        const Param *h = gpu.head->w, *e = gpu.embedding;
        int frozen = task != TASK_REWARD && strategy_is_adapter(strategy);
        CHECK(frozen ? h->dtype == GGML_BF16 && !h->value && (void *)gpu.head_bf16 == h->packed
                     : h->dtype == GGML_F32 && h->value && !gpu.head_bf16);
        CHECK(strategy_is_adapter(strategy) ? e->dtype == GGML_BF16 && e->packed && !e->value
                                            : e->dtype == GGML_F32 && e->value);
    }
    copy_values(&gpu, &cpu);
    int fused = prec == PRECISION_BF16 && strategy == STRATEGY_LORA && task == TASK_CAUSAL_LM;
    if (fused && !quantised) check_packed_weights(&gpu, &cpu);
    /* Row b has LT - 2b tokens, then padding (any id; masked, labels -100); the prompt of DPO and
     * RLOO is the first 2 tokens. */
    int32_t ids[LB * LT], mask[LB * LT], labels[LB * LT];
    for (int i = 0; i < rows * LT; i++) {
        ids[i] = (int32_t)(rng_next(&rng) % LV);
        mask[i] = i % LT < LT - 2 * (i / LT);
        labels[i] = mask[i] && !(prompt && i % LT < 2) ? ids[i] : -100;
        if (!mask[i]) ids[i] = 0;
    }
    Model *ms[2] = {&cpu, &gpu};
    AdamW opt[2];
    float row_logps[2][2 * LB]; /* RLOO's: cpu, gpu */
    for (int k = 0; k < 2; k++) {
        CHECK_OK(model_set_batch(ms[k], ids, NULL, mask, labels, rows, LT, &err), &err);
        /* eps 1e-6, not 1e-8: AdamW's first steps move every weight by about lr * g / (|g| +
         * eps), so a gradient element near 1e-8 turns the backends' 1e-10-level rounding
         * differences (attention's reductions run in another order on each) into weight
         * differences of 1e-4 and more; with eps 1e-6 the same test stays sensitive to any
         * gradient that is wrong. */
        CHECK_OK(adamw_create(&opt[k], ms[k], 0.9f, 0.999f, adam_eps, 0.01f, 0.0f, &err), &err);
        float rewards[4] = {0.7f, -0.3f, 1.2f, 0.1f};
        GrpoGeneration gen = {rewards, row_logps[k], row_logps[k] + rows, rows, 0, 0, 1};
        if (task == TASK_RLOO) /* its KL from the rows' log-probs as it samples */
            CHECK_OK(rl_row_logps(ms[k], row_logps[k], row_logps[k] + rows, &err), &err);
        if (rl) CHECK_OK(grpo_set_rewards(ms[k], rewards, &gen, &err), &err);
        if (task != TASK_DPO && !(task == TASK_GRPO && gpu_grpo_beta > 0)) continue;
        CHECK_OK(reference_forward(ms[k], &err), &err); /* the reference stays on the device */
        CHECK_OK(model_read_loss(ms[k], NULL, NULL, &err), &err);
    }
    if (task == TASK_CAUSAL_LM) /* a row predicts its length - 1 */
        CHECK(cpu.n_valid == (LT - 1) + (LT - 3) + (LT - 5));
    if (task == TASK_DPO)
        compare_as(prec, "reference log-probs", gpu.ref_scores, cpu.ref_scores, rows);
    if (task == TASK_RLOO) /* the policy's and the reference's */
        compare_as(prec, "RLOO's row log-probs", row_logps[1], row_logps[0], 2 * rows);
    size_t n_logits = (size_t)rows * LT * (task == TASK_REWARD ? 1 : LV);
    float *lg[2] = {malloc(n_logits * sizeof(float)), malloc(n_logits * sizeof(float))};
    float *share[3] = {malloc(n_logits * sizeof(float)), malloc(n_logits * sizeof(float)),
                       malloc(n_logits * sizeof(float))}; /* cpu, gpu; cpu before the steps */
    if (fused) lora_share(&cpu, rows, share[2], lg[0], n_logits);
    for (int step = 0; step < 3; step++) {
        float loss[2];
        for (int k = 0; k < 2; k++) {
            model_zero_grad(ms[k]);
            model_step(ms[k], 77 + (uint64_t)step, 1.0f);
            CHECK_OK(model_forward(ms[k], 1, &loss[k], &err), &err);
            CHECK_OK(model_backward(ms[k], &err), &err);
            CHECK_OK(model_lm_logits(ms[k], 0, rows * LT, lg[k], &err), &err);
        }
        check_loss(prec, loss[1], loss[0]);
        compare_as(prec, "lm logits", lg[1], lg[0], n_logits);
        if (task == TASK_DPO || task == TASK_REWARD)
            compare_as(prec, "sequence scores", gpu.seq_scores, cpu.seq_scores, rows);
        if (step == 0) compare_grads(&gpu, &cpu, prec);
        double norm[2];
        for (int k = 0; k < 2; k++) {
            adamw_update(&opt[k], ms[k], 1e-2f, 1.0f);
            CHECK_OK(model_read_loss(ms[k], NULL, &norm[k], &err), &err);
        }
        check_norm(prec, norm[1], norm[0]);
        for (int k = 0; rl && gpu_grpo_iterations > 1 && step == 0 && k < 2; k++) {
            float old[LB * LT]; /* the generation's first step's: the sampling policy's */
            ms[k]->ops->download(old, ms[k]->losses, (size_t)rows * LT * sizeof *old);
            CHECK_OK(grpo_set_old(ms[k], old, &err), &err);
        }
        if (rl && gpu_grpo_iterations > 1 && step > 0) {
            const RlooStats *c = &cpu.rloo_stats, *g = &gpu.rloo_stats;
            printf("    step %d: %s clipped low %g, high %g (cuda %g, %g)\n", step + 1,
                   task == TASK_RLOO || gpu_grpo_sequence ? "rows" : "tokens", c->clipped_low,
                   c->clipped_high, g->clipped_low, g->clipped_high);
            CHECK(c->clipped_low == g->clipped_low && c->clipped_high == g->clipped_high);
            /* sapo and vespo clip none */
            if (prec != PRECISION_BF16 && gpu_grpo_loss != GRPO_SAPO && gpu_grpo_loss != GRPO_VESPO)
                CHECK(c->clipped_low + c->clipped_high > 0);
        }
    }
    if (prec != PRECISION_BF16)
        compare("weights after 3 steps", &ops_cuda, gpu.values, cpu.values, cpu.n_values);
    /* and an eval-mode forward of the trained weights (no dropout) */
    float loss[2];
    for (int k = 0; k < 2; k++) {
        CHECK_OK(model_forward(ms[k], 0, &loss[k], &err), &err);
        CHECK_OK(model_lm_logits(ms[k], 0, rows * LT, lg[k], &err), &err);
    }
    check_loss(prec, loss[1], loss[0]);
    compare_as(prec, "eval lm logits after 3 steps", lg[1], lg[0], n_logits);
    if (fused) {
        for (int k = 0; k < 2; k++) lora_share(ms[k], rows, share[k], lg[k], n_logits);
        compare_as(prec, "LoRA's share of the eval logits after 3 steps", share[1], share[0],
                   n_logits);
        double moved = rel_diff(share[0], share[2], n_logits);
        printf("    LoRA's share of the logits: moved %.2e by 3 steps, cuda bf16 off by %.2e\n",
               moved, rel_diff(share[1], share[0], n_logits));
        CHECK(moved > 4 * bf16_tensor_rel);
    }
    CHECK(ops_cuda.status(&err) == 0);
    free(lg[0]), free(lg[1]), free(share[0]), free(share[1]), free(share[2]);
    for (int k = 0; k < 2; k++) adamw_free(&opt[k], ms[k]), model_free(ms[k]);
}

/* The LM head over a list of rows (Model.head_rows), as SFT's masked prompts make it: 160 rows
 * of 16 tokens, the first 5 of each a prompt (-100), so 1,760 of the 2,560 positions count. The
 * CPU lists those; the GPU (which records CUDA graphs) pads its list with ignored rows to whole
 * chunks of OPS_LM_HEAD_CHUNK, 2,048 rows in two chunks, the second part padding. A training
 * step of the untied Llama must give the same per-row losses, loss and gradients on both: LoRA
 * under bf16 (the head's dh through the list) and full fine-tuning under fp32 (the head's dW
 * too). A second batch with prompts of 7 lists 1,440 rows (2,048 again on the GPU): every row it
 * ignores, two of each row counted in the first, must have a loss of exactly 0 on both. */
static void listed_head_rows(Strategy strategy, Precision prec) {
    enum { ROWS = 160, LEN = 16, N = ROWS * LEN };
    ModelConfig cfg;
    decoder_config(&cfg, ARCH_LLAMA, 0);
    LfError err;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM, spec.strategy = strategy;
    spec.r = 4, spec.alpha = 8, spec.dropout = 0.1f;
    spec.n_targets = 7;
    const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
    for (int i = 0; i < 7; i++) snprintf(spec.targets[i], sizeof spec.targets[0], "%s", proj[i]);
    Model cpu, gpu;
    spec.precision = PRECISION_FP32;
    CHECK_OK(model_create(&cpu, &cfg, &spec, &ops_cpu, NULL, 5, ROWS, LEN, NULL, 0, &err), &err);
    spec.precision = prec;
    CHECK_OK(model_create(&gpu, &cfg, &spec, &ops_cuda, NULL, 5, ROWS, LEN, NULL, 0, &err), &err);
    Rng rng = {13, 0};
    for (int i = 0; i < cpu.n_params; i++)
        if (cpu.params[i].is_lora) /* B non-zero */
            for (size_t j = 0; j < cpu.params[i].numel; j++)
                cpu.params[i].value[j] = 0.2f * (rng_next_uniform(&rng) - 0.5f);
    copy_values(&gpu, &cpu);
    int32_t *ids = malloc(N * sizeof *ids), *labels = malloc(N * sizeof *labels);
    int32_t *mask = malloc(N * sizeof *mask);
    Model *ms[2] = {&cpu, &gpu};
    float loss[2], *losses[2] = {malloc(N * sizeof(float)), malloc(N * sizeof(float))};
    for (int prompt = 5; prompt <= 7; prompt += 2) {
        for (int i = 0; i < N; i++) {
            ids[i] = (int32_t)(rng_next(&rng) % LV);
            labels[i] = i % LEN < prompt ? -100 : ids[i];
            mask[i] = 1;
        }
        for (int k = 0; k < 2; k++) {
            CHECK_OK(model_set_batch(ms[k], ids, NULL, mask, labels, ROWS, LEN, &err), &err);
            model_zero_grad(ms[k]);
            model_step(ms[k], (uint64_t)prompt, 1.0f);
            CHECK_OK(model_forward(ms[k], 1, &loss[k], &err), &err);
            CHECK_OK(model_backward(ms[k], &err), &err);
            ms[k]->ops->download(losses[k], ms[k]->losses, N * sizeof(float));
        }
        int counted = ROWS * (LEN - prompt), ignored_nonzero = 0;
        CHECK(cpu.n_valid == counted && gpu.n_valid == counted);
        CHECK(cpu.n_head_rows == counted);
        CHECK(gpu.n_head_rows ==
              (counted + OPS_LM_HEAD_CHUNK - 1) / OPS_LM_HEAD_CHUNK * OPS_LM_HEAD_CHUNK);
        for (int i = 0; i < N; i++) /* position t predicts label t + 1 */
            if (i % LEN < prompt - 1 || i % LEN == LEN - 1)
                ignored_nonzero += losses[0][i] != 0 || losses[1][i] != 0;
        CHECK(ignored_nonzero == 0);
        check_loss(prec, loss[1], loss[0]);
        compare_as(prec, "per-row losses over a listed head", losses[1], losses[0], N);
        compare_grads(&gpu, &cpu, prec);
    }
    CHECK(ops_cuda.status(&err) == 0);
    free(ids), free(labels), free(mask), free(losses[0]), free(losses[1]);
    model_free(&cpu), model_free(&gpu);
}

/* A reward model opened to score (nothing trains, `loraft score`) under bf16: its score head
 * keeps its f32 weight (reward.c's GEMM reads it; one row gains nothing from bf16), its embedding
 * is stored in bf16 alone; the per-token scores within the bf16 bounds of the CPU's fp32 ones. */
static void reward_scores_bf16(void) {
    ModelConfig cfg;
    decoder_config(&cfg, ARCH_LLAMA, 0);
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = TASK_REWARD, spec.strategy = STRATEGY_NONE;
    LfError err;
    Model m[2];
    for (int k = 0; k < 2; k++) {
        spec.precision = k ? PRECISION_BF16 : PRECISION_FP32;
        CHECK_OK(model_create(&m[k], &cfg, &spec, k ? &ops_cuda : &ops_cpu, NULL, 5, LB, LT, NULL,
                              0, &err),
                 &err);
        if (!m[k].params) return;
    }
    const Param *h = m[1].head->w;
    CHECK(h->dtype == GGML_F32 && h->value && !m[1].head_bf16);
    CHECK(m[1].embedding->dtype == GGML_BF16 && !m[1].embedding->value);
    int32_t ids[LB * LT], mask[LB * LT];
    Rng rng = {17, 0};
    for (int i = 0; i < LB * LT; i++) ids[i] = (int32_t)(rng_next(&rng) % LV), mask[i] = 1;
    float scores[2][LB * LT];
    for (int k = 0; k < 2; k++) {
        CHECK_OK(model_set_batch(&m[k], ids, NULL, mask, NULL, LB, LT, &err), &err);
        CHECK_OK(model_forward(&m[k], 0, NULL, &err), &err);
        CHECK_OK(model_lm_logits(&m[k], 0, LB * LT, scores[k], &err), &err);
    }
    compare_as(PRECISION_BF16, "reward scores (score head f32, embedding bf16)", scores[1],
               scores[0], LB * LT);
    for (int k = 0; k < 2; k++) model_free(&m[k]);
}

/* Gradient checkpointing on the GPU: the same model with and without it (config cfg, from dir
 * or its seed; spec's LoRA r 4 on targets, lora dropout 0.1, every dropout of cfg on) makes one
 * training step from the same weights (B random) on right-padded rows: the loss and every
 * gradient must be the same bits, since the recomputed forward runs the same kernels on the
 * same inputs and masks (loraft's attention is deterministic; cuDNN's backward is not, so this
 * runs loraft's), from a smaller activation plan (both layers recompute); and again after a
 * second backward. */
static void checkpointing_same_bits(const ModelConfig *cfg, const char *dir, Precision prec,
                                    const char *const *targets, int n_targets, const char *what) {
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = arch_task(cfg->arch), spec.precision = prec;
    spec.r = 4, spec.alpha = 8, spec.dropout = 0.1f, spec.use_dora = gpu_dora;
    for (int i = 0; i < n_targets; i++)
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s", targets[i]);
    if (gpu_patterns) /* q, k, v apart, each recomputed with its own input copy */
        spec.rank_pattern[spec.n_rank_pattern++] = (LoraPattern){"q_proj", 6};
    int causal = spec.task == TASK_CAUSAL_LM, rows = 3;
    int32_t ids[LB * LT], mask[LB * LT], labels[LB * LT];
    Rng rng = {21, 0};
    for (int i = 0; i < rows * LT; i++) {
        mask[i] = i % LT < LT - 2 * (i / LT);
        ids[i] = mask[i] ? (int32_t)(rng_next(&rng) % (uint64_t)cfg->vocab_size) : 0;
        labels[i] = !causal ? i % 2 : mask[i] ? ids[i] : -100;
    }
    Model m[2];
    float loss[2], *grads[2] = {NULL, NULL};
    LfError err;
    for (int k = 0; k < 2; k++) {
        spec.gradient_checkpointing = k;
        CHECK_OK(model_create(&m[k], cfg, &spec, &ops_cuda, dir, 5, LB, LT, NULL, 0, &err), &err);
        Rng lora = {12, 0};
        for (int i = 0; i < m[k].n_params; i++) {
            const Param *p = &m[k].params[i];
            if (!p->is_lora) continue;
            float *h = malloc(p->numel * sizeof *h);
            for (size_t j = 0; j < p->numel; j++) h[j] = 0.2f * (rng_next_uniform(&lora) - 0.5f);
            ops_cuda.upload(p->value, h, p->numel * sizeof *h);
            free(h);
        }
        CHECK_OK(model_set_batch(&m[k], ids, NULL, mask, labels, rows, LT, &err), &err);
        model_zero_grad(&m[k]);
        model_step(&m[k], 31, 1.0f);
        CHECK_OK(model_forward(&m[k], 1, &loss[k], &err), &err);
        CHECK_OK(model_backward(&m[k], &err), &err);
        grads[k] = malloc(m[k].n_grads * sizeof(float));
        ops_cuda.download(grads[k], m[k].grads, m[k].n_grads * sizeof(float));
    }
    size_t n = m[0].n_grads, nonzero = 0;
    CHECK(n > 0 && m[1].n_grads == n);
    for (size_t i = 0; i < n; i++) nonzero += grads[0][i] != 0;
    int same = memcmp(&loss[0], &loss[1], sizeof *loss) == 0 &&
               memcmp(grads[0], grads[1], n * sizeof(float)) == 0;
    CHECK(same);
    CHECK(nonzero > n / 2);
    CHECK(m[1].n_act < m[0].n_act);
    /* a second backward adds the same again (2 g): the top layer, which the first took as the
     * forward left it, is replayed this time */
    for (int k = 0; k < 2; k++) {
        CHECK_OK(model_backward(&m[k], &err), &err);
        ops_cuda.download(grads[k], m[k].grads, n * sizeof(float));
    }
    CHECK(memcmp(grads[0], grads[1], n * sizeof(float)) == 0);
    printf("%s %s with gradient checkpointing: loss and %zu gradients (%zu nonzero) %s; activation "
           "plan %zu -> %zu floats\n",
           what, precision_name(prec), n, nonzero, same ? "the same bits" : "DIFFER", m[0].n_act,
           m[1].n_act);
    for (int k = 0; k < 2; k++) free(grads[k]), model_free(&m[k]);
}

/* ---- the host waits of a preference training step (issue 10: none but the loss read) ----
 * ops_cuda with its host transfers counted: download (a cudaMemcpy to the host) and status
 * (cudaDeviceSynchronize) block; upload goes through pinned staging (cudaMemcpyAsync) and zero
 * is a cudaMemset, queued like a kernel. */
static int n_download, n_status, n_upload, n_zero;
static void counted_download(void *h, const void *d, size_t n) {
    n_download++;
    ops_cuda.download(h, d, n);
}
static int counted_status(LfError *err) {
    n_status++;
    return ops_cuda.status(err);
}
static void counted_upload(void *d, const void *h, size_t n) {
    n_upload++;
    ops_cuda.upload(d, h, n);
}
static void counted_zero(void *d, size_t n) {
    n_zero++;
    ops_cuda.zero(d, n);
}

/* Two steps as the trainer runs them: the first computes DPO's reference (the first epoch), the
 * second uploads the one kept from it. Each waits once: model_read_loss's copy and status. */
static void step_waits(Task task) {
    static Ops counted;
    counted = ops_cuda;
    counted.download = counted_download, counted.status = counted_status;
    counted.upload = counted_upload, counted.zero = counted_zero;
    ModelConfig cfg;
    decoder_config(&cfg, ARCH_LLAMA, 0);
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.task = task, spec.dpo = (DpoSpec){0.1f, DPO_SIGMOID, 0.0f};
    spec.r = 4, spec.alpha = 8, spec.dropout = 0.1f, spec.precision = PRECISION_FP32;
    Model m;
    AdamW opt;
    LfError err;
    CHECK_OK(model_create(&m, &cfg, &spec, &counted, NULL, 5, LB, LT, NULL, 0, &err), &err);
    CHECK_OK(adamw_create(&opt, &m, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, &err), &err);
    int32_t ids[LB * LT], mask[LB * LT], labels[LB * LT];
    for (int i = 0; i < LB * LT; i++)
        ids[i] = 1 + i * 7 % (LV - 1), mask[i] = 1, labels[i] = ids[i];
    float kept[LB];
    for (int step = 0; step < 2; step++) {
        n_download = n_status = n_upload = n_zero = 0;
        CHECK_OK(model_set_batch(&m, ids, NULL, mask, labels, LB, LT, &err), &err);
        if (task == TASK_DPO && step == 0) CHECK_OK(reference_forward(&m, &err), &err);
        if (task == TASK_DPO && step == 1) dpo_set_reference(&m, kept);
        float loss;
        double norm;
        model_zero_grad(&m);
        model_step(&m, 9 + (uint64_t)step, 1.0f);
        CHECK_OK(model_forward(&m, 1, NULL, &err), &err);
        CHECK_OK(model_backward(&m, &err), &err);
        adamw_update(&opt, &m, 1e-3f, 1.0f);
        CHECK_OK(model_read_loss(&m, &loss, &norm, &err), &err);
        if (task == TASK_DPO) memcpy(kept, m.ref_scores, sizeof kept);
        printf("%s step %d%s: %d download + %d status (blocking), %d upload (staged), %d zero; "
               "loss %.4f\n",
               task == TASK_DPO ? "DPO" : "reward", step + 1,
               task != TASK_DPO ? ""
               : step           ? " (reference uploaded)"
                                : " (reference forward)",
               n_download, n_status, n_upload, n_zero, loss);
        CHECK(n_download == 1 && n_status == 1);
        CHECK(isfinite(loss) && isfinite(norm) && m.pair_stats.pairs == LB / 2);
    }
    adamw_free(&opt, &m);
    model_free(&m);
}

/* checkpointing_same_bits on the tiny Llama with LoRA on its seven projections, under bf16. */
static void llama_checkpointing_same_bits(const char *what) {
    const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
    ModelConfig cfg;
    decoder_config(&cfg, ARCH_LLAMA, 0);
    checkpointing_same_bits(&cfg, NULL, PRECISION_BF16, proj, 7, what);
}

/* One bf16 run of llama_runs: the projections' storage, lora dropout, LoRA on all seven or on
 * PEFT's default (q and v). */
typedef struct Bf16Run {
    BaseDtype dtype;
    float lora_p;
    int all_targets;
} Bf16Run;

/* The untied Llama with LoRA on its seven projections under an option the caller set (what):
 * fp32 against the CPU at lora dropout p, then each bf16 run (runs_what) within the bf16 bounds. */
static void llama_runs(const char *what, float p, const Bf16Run *runs, int n,
                       const char *runs_what) {
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, p, 1, NULL);
    printf("llama (%s): cuda model matches cpu\n", what);
    bf16_worst = 0;
    for (int i = 0; i < n; i++)
        run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, runs[i].dtype, PRECISION_BF16,
                    runs[i].lora_p, runs[i].all_targets, NULL);
    printf("llama (%s; %s): cuda bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n", what,
           runs_what, bf16_worst, bf16_worst_what);
}

/* DoRA under lora dropout 0.1 (the base's term on what it removed: one more GEMM each way) on
 * the Llama's seven projections: fp32 against the CPU; bf16 with them stored in bf16 (B riding in
 * each weight's rows: the norms read the stored rows past that room; the rest's GEMM reads the
 * input copy the norm wrote) and, on q and v, quantised q4_1 (the norms from rows dequantised in
 * chunks, the rest's GEMMs over rows dequantised to bf16); GPT-2's Conv1D under bf16; and gradient
 * checkpointing's same bits on the GPU. Qwen2's runs with lora.bias (in main) have DoRA at
 * lora dropout 0. */
static void dora_runs(void) {
    gpu_dora = 1;
    llama_runs("DoRA", 0.1f, (const Bf16Run[]){{BASE_BF16, 0.1f, 1}, {BASE_Q4_1, 0.1f, 0}}, 2,
               "base bf16, and q4_1 on q and v");
    bf16_worst = 0;
    run_decoder(ARCH_GPT2, 1, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.1f, 1,
                NULL);
    printf("gpt2 DoRA: cuda bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n", bf16_worst,
           bf16_worst_what);
    llama_checkpointing_same_bits("llama (DoRA on the seven projections)");
    gpu_dora = 0;
}

/* PEFT's rank_pattern and alpha_pattern on the Llama's seven projections: q, k and v of three
 * scales (q of rank 6), gate and up of two ranks, so that each runs apart from its group, in its
 * own input copy; fp32 and bf16 (B's room in each stored weight its own rank's width), with
 * lora dropout and without (A's rows inside the input gradient's GEMM), q4_1 on q and v. */
static void pattern_runs(void) {
    gpu_patterns = 1;
    llama_runs("rank_pattern, alpha_pattern", 0.1f,
               (const Bf16Run[]){{BASE_BF16, 0.1f, 1}, {BASE_BF16, 0.0f, 1}, {BASE_Q4_1, 0.0f, 0}},
               3, "base bf16 with and without lora dropout, q4_1 on q and v");
    llama_checkpointing_same_bits("llama (q_proj of rank 6)");
    gpu_patterns = 0;
}

/* PiSSA on the Llama's seven projections: each model splits its weights at load, the GPU's
 * packing the residual (bf16, q4_1 quantised at load); A and B then get run_decoder's random
 * values, so the runs compare the residual bases. */
static void pissa_runs(void) {
    gpu_init = LORA_INIT_PISSA;
    llama_runs("PiSSA", 0.1f, (const Bf16Run[]){{BASE_BF16, 0.1f, 1}, {BASE_Q4_1, 0.0f, 1}}, 2,
               "its residual packed in bf16, and quantised to q4_1 at load");
    gpu_init = LORA_INIT_DEFAULT;
}

/* A causal LM with LoRA on arch in fp32 (matching the CPU) and in bf16 (within its bounds). */
static void lora_fp32_and_bf16(Arch arch, int tied, const char *what) {
    run_decoder(arch, tied, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    printf("%s: cuda model matches cpu\n", what);
    bf16_worst = 0;
    run_decoder(arch, tied, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.1f, 1,
                NULL);
    printf("%s in bf16: cuda bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n", what,
           bf16_worst, bf16_worst_what);
}

/* LoRA on the token embedding (the table's padding_idx a token of the batch) and the LM head
 * beside the projections, lora dropout on the head's input too: Llama untied and tied (the table
 * then the head's bf16 copy too, its adapter apart), Gemma 3 (its rows scaled by sqrt(C) after the
 * embedding adapter's term), GPT-2 (wte, no padding_idx: pad_token_id only decides the id of
 * padding; its tied lm_head). */
static void embed_runs(void) {
    gpu_embed = 1;
    lora_fp32_and_bf16(ARCH_LLAMA, 0, "llama (LoRA on embed_tokens and lm_head too)");
    lora_fp32_and_bf16(ARCH_LLAMA, 1, "llama (tied; LoRA on embed_tokens and lm_head too)");
    bf16_tensor_rel = 8e-2; /* gemma3_runs' bound */
    lora_fp32_and_bf16(ARCH_GEMMA3, 1, "gemma3 (LoRA on embed_tokens and lm_head too)");
    bf16_tensor_rel = 5e-2;
    lora_fp32_and_bf16(ARCH_GPT2, 1, "gpt2 (LoRA on wte and lm_head too)");
    gpu_embed = 0;
}

/* Trained token rows beside the projections' LoRA: Llama tied (the rows the head's too, a branch of
 * the head's chunks) and untied, GPT-2 (wte beside its learned positions, tied head). */
static void token_runs(void) {
    gpu_tokens = 1;
    lora_fp32_and_bf16(ARCH_LLAMA, 1, "llama (tied; trained token rows)");
    lora_fp32_and_bf16(ARCH_LLAMA, 0, "llama (untied; trained token rows)");
    lora_fp32_and_bf16(ARCH_GPT2, 1, "gpt2 (trained token rows of wte and its tied head)");
    gpu_tokens = 2;
    lora_fp32_and_bf16(ARCH_LLAMA, 0, "llama (untied; token rows of the embedding and the head)");
    lora_fp32_and_bf16(ARCH_GPT2, 1, "gpt2 (token rows of wte, other rows of its tied head)");
    gpu_tokens = 1; /* peft's TrainableTokens: the rows alone, no LoRA */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_TOKENS, TASK_DPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    printf("llama (tied; token rows alone, dpo): cuda model matches cpu\n");
    bf16_worst = 0;
    run_decoder(ARCH_GPT2, 1, STRATEGY_TOKENS, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.0f, 1,
                NULL);
    printf("gpt2 (token rows alone) in bf16: cuda bf16 within the bf16 bounds of cpu fp32 (worst "
           "%.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    gpu_tokens = 0;
}

/* Gemma 3: LoRA in fp32 and bf16, and full fine-tuning in fp32 (its norms train). Its norms
 * after attention and the MLP bring each branch to the residual stream's size, so the branches'
 * bf16 rounding (0.4 % a GEMM) reaches the logits undamped, where a Llama's small random
 * branches hide it under the embedding: 0.78 % at the first forward against the others'
 * 0.23-0.34 %, growing alike over the 3 steps (to 5.2 %, the others' to 1.4-1.8 %); the bound
 * is 8 % for it. The full fine-tuning's first step has a gradient element of 1.3e-6, which
 * AdamW's eps of 1e-6 turns from the backends' 4e-8 rounding difference into a weight 2 %
 * apart after 3 steps: eps 1e-4 there (the gradients themselves are compared at step 0). */
static void gemma3_runs(void) {
    bf16_tensor_rel = 8e-2;
    lora_fp32_and_bf16(ARCH_GEMMA3, 1,
                       "gemma3 (layer 0 windowed, its own RoPE base, 1 + w norms, GeGLU, LoRA)");
    bf16_tensor_rel = 5e-2;
    adam_eps = 1e-4f;
    run_decoder(ARCH_GEMMA3, 0, STRATEGY_FULL, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.1f, 1,
                NULL);
    adam_eps = 1e-6f;
    printf("gemma3 (untied, full fine-tuning: its norms train): cuda model matches cpu\n");
}

/* Gemma 2: LoRA in fp32 and bf16 (Gemma 3's network and so its bf16 bound, without the head
 * norms), its attention scores and final logits soft-capped, scaled by a scalar of its own. */
static void gemma2_runs(void) {
    bf16_tensor_rel = 8e-2;
    lora_fp32_and_bf16(ARCH_GEMMA2, 1, "gemma2 (soft-capped scores and logits, LoRA)");
    bf16_tensor_rel = 5e-2;
}

/* Phi-3: its fused qkv_proj and gate_up_proj (one linear each, one A), LoRA in fp32 and bf16 and
 * on PEFT's default target (qkv_proj) in bf16 without LoRA dropout, full fine-tuning in fp32 */
static void phi3_runs(void) {
    lora_fp32_and_bf16(ARCH_PHI3, 0, "phi3 (fused projections, longrope's long factors, LoRA)");
    run_decoder(ARCH_PHI3, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.0f, 0,
                NULL);
    printf("phi3 (LoRA on qkv_proj alone, no dropout): cuda bf16 within the bf16 bounds of cpu "
           "fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    run_decoder(ARCH_PHI3, 1, STRATEGY_FULL, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.1f, 1,
                NULL);
    printf("phi3 (tied, full fine-tuning): cuda model matches cpu\n");
    phi3_partial = 1;
    lora_fp32_and_bf16(ARCH_PHI3, 0, "phi3 (RoPE over 16 of 32, Phi-4-mini's partial, LoRA)");
    phi3_partial = 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_cuda_device();
    char tmp[] = "/tmp/loraft-gpu-model-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    const char *archs[] = {"distilbert", "bert"};
    char vocab[600];
    snprintf(vocab, sizeof vocab, "%s/vocab", tmp);
    mkdir(vocab, 0700);
    tiny_write_vocab(vocab);
    for (int a = 0; a < 2; a++) {
        char out[700];
        snprintf(out, sizeof out, "%s/%s", tmp, archs[a]);
        tiny_checkpoint(archs[a], 32, 2, vocab, out);
        for (int every = 0; every < 2; every++) {
            run(out, a, every, PRECISION_FP32, 0.1f);
            printf("%s (LoRA on %s): cuda model matches cpu\n", archs[a],
                   every ? "every linear" : "the default targets");
        }
        /* bf16 on weights of a real model's scale (0.02 over 768 inputs is 0.55 an output;
         * over the tiny 32, 0.11), so that every sublayer moves the logits: key unadapted
         * beside query and value; DistilBERT has no dropout before its norms, BERT has */
        snprintf(out, sizeof out, "%s/%s-scaled", tmp, archs[a]);
        tiny_checkpoint_std(archs[a], 32, 2, 0.1f, vocab, out);
        run(out, a, 1, PRECISION_BF16, 0.1f);
        run(out, a, 0, PRECISION_BF16, 0.0f);
        printf("%s (LoRA on every linear, lora dropout 0.1; on query and value, none): cuda "
               "bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
               archs[a], bf16_worst, bf16_worst_what);
        bf16_worst = 0;
    }
    /* hidden 40: q's, k's and v's biases lie apart (each f32 tensor starts 16 floats aligned),
     * so their outputs do not join and each runs a GEMM of its own from the group's block */
    char apart[700];
    snprintf(apart, sizeof apart, "%s/distilbert-40", tmp);
    tiny_checkpoint_std("distilbert", 40, 2, 0.1f, vocab, apart);
    run(apart, 0, 1, PRECISION_BF16, 0.1f);
    printf("distilbert (hidden 40, LoRA on every linear, lora dropout 0.1): cuda bf16 within the "
           "bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    bf16_worst = 0;
    check_group_scratch();
    printf("llama (LoRA r 64 on the seven projections, 128 x 8 tokens): every op within the "
           "model's scratch\n");
    for (int tied = 1; tied >= 0; tied--)
        for (int full = 0; full < 2; full++) {
            run_decoder(ARCH_LLAMA, tied, full ? STRATEGY_FULL : STRATEGY_LORA, TASK_CAUSAL_LM,
                        BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
            printf("llama (%s, %s): cuda model matches cpu\n", tied ? "tied" : "untied",
                   full ? "full fine-tuning" : "LoRA on the seven projections");
        }
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_FP32, 0.1f, 1,
                NULL); /* packed projections */
    printf("llama (untied, LoRA, base_dtype bf16): cuda model matches cpu\n");
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.1f, 1,
                NULL);
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.0f, 0,
                NULL); /* q and v adapted beside k, gate and up not at all; no LoRA dropout */
    printf("llama (untied, LoRA on the seven projections, lora dropout 0.1; on q and v, none): "
           "cuda bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    check_precision_storage();
    bf16_worst = 0;
    char gguf[700];
    snprintf(gguf, sizeof gguf, "%s/llama-q8_0.gguf", tmp);
    write_decoder_gguf(gguf);
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_Q, PRECISION_BF16, 0.1f, 1,
                gguf);
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_Q, PRECISION_BF16, 0.0f, 0,
                gguf);
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_Q4_1, PRECISION_BF16, 0.1f, 1,
                NULL); /* from the seed, quantised at load on both backends */
    printf("llama (untied, base_dtype q: Q8_0 and F16 dequantised to bf16; LoRA on the seven "
           "projections, lora dropout 0.1; on q and v, none; base_dtype q4_1, quantised at load): "
           "cuda bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    run_decoder(ARCH_QWEN2, 1, STRATEGY_FULL, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.1f, 1,
                NULL);
    printf("qwen2 (tied, layer 1 windowed, full fine-tuning: q, k, v biases train): cuda model "
           "matches cpu\n");
    bf16_worst = 0;
    run_decoder(ARCH_QWEN2, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.1f, 1,
                NULL); /* q, k, v and their biases side by side: one GEMM */
    printf("qwen2 (untied, layer 1 windowed, LoRA on the seven projections): cuda bf16 within the "
           "bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    gpu_bias = LORA_BIAS_LORA_ONLY; /* q's and v's biases train */
    run_decoder(ARCH_QWEN2, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.1f, 0,
                NULL);
    gpu_dora = 1; /* the biases' gradients unscaled by DoRA's magnitudes: bias_backward's */
    run_decoder(ARCH_QWEN2, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.0f, 1,
                NULL);
    gpu_dora = 0;
    printf("qwen2 (lora.bias lora_only on q and v; with DoRA on the seven projections): cuda model "
           "matches cpu\n");
    bf16_worst = 0;
    run_decoder(ARCH_QWEN2, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.1f, 1,
                NULL);
    gpu_dora = 1;
    run_decoder(ARCH_QWEN2, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.0f, 1,
                NULL);
    gpu_dora = 0;
    /* lora.bias all: c_proj's, c_fc's and mlp's c_proj's gradients from their dout's bf16 copy.
     * LoRA's share (with the adapters minus without) is then of two forwards through every bias,
     * each element of which AdamW's first steps move by about lr, sign-like: its error grows from
     * the 4.8e-2 of the same run without them to 7.2e-2 (the gradients and logits stay within
     * 1e-2): the bound is 1e-1 for it. */
    gpu_bias = LORA_BIAS_ALL;
    bf16_tensor_rel = 1e-1;
    run_decoder(ARCH_GPT2, 1, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.1f, 0,
                NULL);
    bf16_tensor_rel = 5e-2;
    printf("qwen2 (lora.bias lora_only, LoRA on the seven projections, and with DoRA: q's, k's and "
           "v's biases train, their weights bf16) and gpt2 (lora.bias all, LoRA on c_attn): cuda "
           "bf16 within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    gpu_bias = LORA_BIAS_NONE;
    run_decoder(ARCH_QWEN3, 1, STRATEGY_FULL, TASK_CAUSAL_LM, BASE_F32, PRECISION_FP32, 0.1f, 1,
                NULL);
    printf(
        "qwen3 (tied, heads of 16 over hidden 32, YaRN, full fine-tuning: the head norms train): "
        "cuda model matches cpu\n");
    bf16_worst = 0;
    run_decoder(ARCH_QWEN3, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_BF16, PRECISION_BF16, 0.1f, 1,
                NULL);
    printf("qwen3 (untied, YaRN, LoRA on the seven projections): cuda bf16 within the bf16 bounds "
           "of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    lora_fp32_and_bf16(ARCH_MISTRAL, 0, "mistral (a sliding window of 3 over 8 tokens, LoRA)");
    lora_fp32_and_bf16(ARCH_SMOLLM3, 1, "smollm3 (layer 1 without RoPE, LoRA)");
    gemma3_runs();
    gemma2_runs();
    phi3_runs();
    check_qkv_joined();
    listed_head_rows(STRATEGY_LORA, PRECISION_BF16);
    listed_head_rows(STRATEGY_FULL, PRECISION_FP32);
    printf("llama (160 rows of 16 tokens, prompts of 5 ignored; LoRA bf16, full fine-tuning fp32): "
           "the GPU's head over 2,048 listed rows matches the CPU's over 1,760 and 1,440\n");
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_DPO, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    printf("llama DPO (LoRA): cuda model matches cpu\n");
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_RLOO, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_RLOO, BASE_F32, PRECISION_BF16, 0.0f, 1, NULL);
    gpu_grpo_iterations = 3; /* the steps after the first on a clipped ratio a row */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_RLOO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_RLOO, BASE_F32, PRECISION_BF16, 0.0f, 1, NULL);
    gpu_grpo_iterations = 1;
    printf("llama RLOO (LoRA, fp32 and bf16; num_iterations 3): cuda model matches cpu\n");
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_BF16, 0.0f, 1, NULL);
    gpu_grpo_beta = 0.5f;   /* its KL penalty: the reference's losses, the weights on the device, */
    gpu_temperature = 0.7f; /* every log-prob's logits divided by the sampling temperature */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_BF16, 0.0f, 1, NULL);
    gpu_grpo_iterations = 3; /* the steps after the first on a clipped ratio (with the KL) */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_BF16, 0.0f, 1, NULL);
    gpu_grpo_off_policy = 1e-4f; /* the off-policy mask: rows taken whole, their tokens' ratios */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    gpu_grpo_off_policy = 0.0f;
    gpu_grpo_beta = 0.0f, gpu_temperature = 1.0f;
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    gpu_grpo_sequence = 1, gpu_grpo_beta = 0.5f; /* GSPO, with the KL */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_BF16, 0.0f, 1, NULL);
    gpu_grpo_loss = GRPO_LUSPO, gpu_grpo_plain_kl = 1; /* a completion's sum, the plain KL */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    gpu_grpo_loss = GRPO_DAPO, gpu_grpo_plain_kl = 0;
    gpu_grpo_sequence = 0, gpu_grpo_beta = 0.0f;
    gpu_grpo_loss = GRPO_CISPO; /* the ratio capped and detached, times the log-prob */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    gpu_grpo_loss = GRPO_SAPO; /* its sigmoid */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    gpu_grpo_loss = GRPO_VESPO, gpu_grpo_beta = 0.5f; /* a row's gamma weight, a token's KL */
    run_decoder(ARCH_LLAMA, 1, STRATEGY_LORA, TASK_GRPO, BASE_F32, PRECISION_FP32, 0.0f, 1, NULL);
    gpu_grpo_beta = 0.0f;
    gpu_grpo_iterations = 1, gpu_grpo_loss = GRPO_DAPO;
    printf("llama GRPO (LoRA, fp32 and bf16; beta 0 and 0.5 at temperature 0.7; num_iterations "
           "3, by token and by sequence, the off-policy mask; cispo, sapo, luspo, vespo): cuda "
           "model matches cpu\n");
    run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_REWARD, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    printf("llama reward model (LoRA): cuda model matches cpu\n");
    bf16_worst = 0;
    reward_scores_bf16();
    printf("llama reward model scoring under bf16: score head f32, embedding bf16, scores within "
           "the bf16 bounds (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    step_waits(TASK_DPO);
    step_waits(TASK_REWARD);
    for (int full = 0; full < 2; full++) {
        run_decoder(ARCH_GPT2, 1, full ? STRATEGY_FULL : STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32,
                    PRECISION_FP32, 0.1f, 1, NULL);
        printf("gpt2 (%s): cuda model matches cpu\n",
               full ? "full fine-tuning" : "LoRA on c_attn, c_proj, c_fc");
    }
    bf16_worst = 0;
    run_decoder(ARCH_GPT2, 1, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.1f, 1,
                NULL);
    run_decoder(ARCH_GPT2, 1, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.0f, 0,
                NULL); /* c_attn alone: the MLP's GEMMs read GELU's bf16 output and gradient */
    printf("gpt2 (LoRA on c_attn, c_proj, c_fc, lora dropout 0.1; on c_attn, none): cuda bf16 "
           "within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
           bf16_worst, bf16_worst_what);
    run_decoder(ARCH_GPT2, 1, STRATEGY_LORA, TASK_DPO, BASE_F32, PRECISION_FP32, 0.1f, 1, NULL);
    printf("gpt2 DPO (LoRA): cuda model matches cpu\n");
    dora_runs();
    pattern_runs();
    pissa_runs();
    embed_runs();
    token_runs();
    const char *proj[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                          "gate_proj", "up_proj", "down_proj"};
    const char *conv[] = {"c_attn", "c_proj", "c_fc"};
    ModelConfig cfg;
    LfError err;
    for (int prec = 0; prec < 2; prec++) {
        Precision p = prec ? PRECISION_BF16 : PRECISION_FP32;
        decoder_config(&cfg, ARCH_LLAMA, 0);
        checkpointing_same_bits(&cfg, NULL, p, proj, 7, "llama (LoRA on the seven projections)");
        decoder_config(&cfg, ARCH_QWEN3, 0);
        checkpointing_same_bits(&cfg, NULL, p, proj, 7, "qwen3 (LoRA on the seven projections)");
        decoder_config(&cfg, ARCH_GPT2, 1);
        checkpointing_same_bits(&cfg, NULL, p, conv, 3, "gpt2 (LoRA on its three)");
        char dir[700];
        snprintf(dir, sizeof dir, "%s/bert-scaled", tmp);
        CHECK_OK(model_config_load(&cfg, dir, &err), &err);
        cfg.hidden_dropout = cfg.attention_dropout = 0.1f;
        checkpointing_same_bits(&cfg, dir, p, all_linear[1], 4, "bert (LoRA on every linear)");
    }
    /* model.attention cudnn, in a build with it (last, as in test_gpu_parity) */
    if (!ops_cuda.set_attention(ATTENTION_CUDNN, &err)) {
        ops_cuda.set_attention(ATTENTION_LORAFT, NULL);
        gpu_attention = ATTENTION_CUDNN;
        bf16_worst = 0;
        char bert[700];
        snprintf(bert, sizeof bert, "%s/bert", tmp);
        run(bert, 1, 1, PRECISION_BF16, 0.1f);
        run_decoder(ARCH_LLAMA, 0, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.1f, 1,
                    NULL);
        run_decoder(ARCH_GPT2, 1, STRATEGY_LORA, TASK_CAUSAL_LM, BASE_F32, PRECISION_BF16, 0.0f, 0,
                    NULL);
        printf("cudnn attention (bert, llama and gpt2 with LoRA, attention dropout off): cuda bf16 "
               "within the bf16 bounds of cpu fp32 (worst %.2e: %s)\n",
               bf16_worst, bf16_worst_what);
        gpu_attention = ATTENTION_LORAFT;
    } else {
        printf("cudnn attention cases skipped: %s\n", err.msg);
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return check_report();
}
