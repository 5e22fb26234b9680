/* model_config.h: the Hugging Face config.json of a DistilBERT, BERT (BERT-derived
 * ones such as all-MiniLM-L6-v2 included), Llama-family (Llama, Qwen2, Qwen3, Mistral, SmolLM3,
 * Gemma 2 and 3, Phi-3) or GPT-2 checkpoint, read into one flat struct and written back in a form
 * transformers' AutoConfig loads. Keys absent from the file keep HF's defaults; keys of the wrong
 * JSON type, unsupported options and inconsistent sizes are errors naming the file and the key. Not
 * a general HF config parser: only what classification with the encoders and causal language
 * modelling with the decoders need. */
#pragma once

#include "loraft/error.h"
#include "loraft/ops.h" /* Activation */

#ifdef __cplusplus
extern "C" {
#endif

/* The most classes a model may have (config.json, train config, adapters). */
#define MAX_LABELS 4096
/* The largest LoRA rank (lora.r, adapter_config.json's r). */
#define LORA_MAX_R 4096
/* The most layers a model may have (Llama 3.1 405B has 126). */
#define MODEL_MAX_LAYERS 1024
/* SmolLM3's NoPE layers by default: every fourth (SmolLM3Config, and llama.cpp's only pattern) */
#define SMOLLM3_NOPE_STEP 4
/* Gemma 3's full-attention layers by default: every sixth (Gemma3TextConfig's
 * sliding_window_pattern, and llama.cpp's only pattern); Gemma 2's every second */
#define GEMMA3_FULL_STEP 6
#define GEMMA2_FULL_STEP 2
/* The most end-of-sequence ids a config.json's eos_token_id list may give (Llama 3.1 Instruct's 3,
 * Gemma 3 instruct's 2) */
#define MODEL_MAX_EOS 8

/* ARCH_QWEN2 (Qwen2, Qwen2.5) is Llama with biases on q, k and v, ARCH_QWEN3 Llama with an RMS
 * norm over each head of q and k (q_norm, k_norm: before RoPE); each has its own model_type, class
 * names and GGUF architecture. ARCH_MISTRAL (Mistral 7B v0.1 to v0.3, Mistral-Nemo's config) is
 * Llama's network under its own model_type and class names, with a sliding_window (v0.1: 4096) and
 * GGUF architecture "llama", as llama.cpp's converter writes it. ARCH_SMOLLM3 (SmolLM3) is Llama
 * without RoPE in some layers (no_rope: every fourth by default), GGUF architecture "smollm3".
 * ARCH_GEMMA3 (Gemma 3's text models, Gemma3ForCausalLM) is Llama with Qwen3's head norms, every
 * RMS norm multiplying by 1 + its weight, norms after attention and the MLP too (before their
 * residual adds), GeGLU, embeddings times sqrt(hidden), and sliding windows in five layers of six
 * with a RoPE base of their own. ARCH_GEMMA2 (Gemma 2, Gemma2ForCausalLM) is Gemma 3 without the
 * head norms and the windowed layers' RoPE base, windowed every other layer, with its attention
 * scores and final logits soft-capped. Gemma's attention scales by 1 / sqrt(query_pre_attn_scalar)
 * (27B's: not the head size). ARCH_PHI3 (Phi-3 and Phi-3.5 mini / medium, Phi3ForCausalLM) is
 * Llama with q, k and v stored as one linear (qkv_proj, rows [q | k | v]) and gate and up as one
 * (gate_up_proj, rows [gate | up]): arch_fuses_projections; PEFT's adapters target those, one A
 * each. arch_is_llama covers all eight (src/model/llama.c). */
typedef enum Arch {
    ARCH_DISTILBERT,
    ARCH_BERT,
    ARCH_LLAMA,
    ARCH_GPT2,
    ARCH_QWEN2,
    ARCH_QWEN3,
    ARCH_MISTRAL,
    ARCH_SMOLLM3,
    ARCH_GEMMA3,
    ARCH_GEMMA2,
    ARCH_PHI3
} Arch;
#define ARCH_LAST ARCH_PHI3

static inline int arch_is_gemma(Arch a) {
    return a == ARCH_GEMMA2 || a == ARCH_GEMMA3;
}
static inline int arch_is_llama(Arch a) {
    return a == ARCH_LLAMA || a == ARCH_QWEN2 || a == ARCH_QWEN3 || a == ARCH_MISTRAL ||
           a == ARCH_SMOLLM3 || arch_is_gemma(a) || a == ARCH_PHI3;
}
/* Whether the checkpoint stores q, k, v as one linear and gate, up as one (Phi-3) */
static inline int arch_fuses_projections(Arch a) {
    return a == ARCH_PHI3;
}

/* RoPE's frequency scaling, as transformers computes it (config.json's rope_scaling, or
 * rope_parameters since transformers 5; rope_type or the older key type): default (none), linear
 * (every inverse frequency / factor), llama3 (Llama 3.1's: wavelengths above
 * original_max_positions / low_freq_factor divided by factor, below original_max_positions /
 * high_freq_factor kept, a smooth blend between), yarn (YaRN, Qwen2.5's long-context variants:
 * the frequencies that turn fewer than beta_slow times over original_max_positions divided by
 * factor, those that turn more than beta_fast times kept, a linear ramp between; cos and sin times
 * attention_factor) or dynamic (dynamic NTK: the default frequencies for every sequence up to
 * max_position_embeddings, the only ones loraft runs), longrope (Phi-3's: each pair's frequency
 * divided by short_factor's value, or by long_factor's for a sequence longer than
 * original_max_position_embeddings; cos and sin times attention_factor, by default
 * sqrt(1 + ln(max_positions / original) / ln(original))); or a divisor of each pair's frequency, a
 * GGUF's rope_freqs tensor (what llama.cpp's converter writes for llama3). The others are
 * refused. */
typedef enum RopeType {
    ROPE_DEFAULT,
    ROPE_LINEAR,
    ROPE_LLAMA3,
    ROPE_YARN,
    ROPE_DYNAMIC,
    ROPE_DIVISORS,
    ROPE_LONGROPE
} RopeType;
typedef struct RopeScaling {
    RopeType type;
    float factor;                            /* linear, llama3, yarn, dynamic */
    float low_freq_factor, high_freq_factor; /* llama3 */
    int original_max_positions; /* llama3, yarn, longrope; phi3: always (its config's, which
                                   transformers derives longrope's factor from) */
    float beta_fast, beta_slow; /* yarn: 32 and 1 by default */
    float attention_factor;     /* yarn: given, else from factor (and mscale); longrope: given, else
                                   from max_positions / original_max_positions */
    int untruncated; /* yarn: truncate false (the ramp's ends not rounded to whole pairs) */
    int n_divisors;  /* divisors, longrope: HS/2 of them */
    float divisors[ROPE_MAX_PAIRS];      /* divisors; longrope: short_factor */
    float long_divisors[ROPE_MAX_PAIRS]; /* longrope: long_factor */
} RopeScaling;

typedef struct ModelConfig {
    Arch arch;
    int vocab_size, hidden_size, num_layers, num_heads, ffn_size, max_positions;
    int num_kv_heads;   /* Llama's grouped KV heads (num_key_value_heads); BERT: num_heads */
    int head_dim;       /* Llama family: config.json's head_dim (Qwen3's 128, whatever the
                           hidden size); 0: hidden / heads (model_head_size) */
    int rotary_dim;     /* phi3: RoPE turns only the first rotary_dim of each head (its
                           partial_rotary_factor's: Phi-4-mini's 96 of 128), the rest passes
                           through; 0: the whole head (model_rotary_dim) */
    int sliding_window; /* each position attends to the last sliding_window ones (itself
                           included: Ops.attention_forward's window) in every layer but
                           those of full_attention; 0: all of them (config.json's null).
                           Mistral: every layer; Qwen2 / Qwen3: use_sliding_window's;
                           Gemma 3: its sliding_window, always used */
    unsigned char no_rope[MODEL_MAX_LAYERS];        /* SmolLM3: the layers without RoPE (NoPE; its
                                                       no_rope_layers' 0s) */
    unsigned char full_attention[MODEL_MAX_LAYERS]; /* Qwen: the layers without the window
                                                       (layer_types' "full_attention", or
                                                       those below max_window_layers) */
    float rope_theta;                               /* Llama's RoPE base; 0 for BERT */
    float rope_local_theta;                         /* Gemma 3: the windowed layers' RoPE base
                                                       (rope_local_base_freq; no scaling) */
    RopeScaling rope_scaling;                       /* Llama's */
    float query_pre_attn_scalar;    /* Gemma: scores times 1 / sqrt(this); 0: the head size's */
    float attn_softcap;             /* Gemma's attn_logit_softcapping (ops.h AttnScore); 0: none */
    float final_softcap;            /* Gemma's final_logit_softcapping of the LM head; 0: none */
    int tie_word_embeddings;        /* Llama: lm_head shares embed_tokens' weight (GPT-2: always) */
    int bos_token_id, eos_token_id; /* -1 when unset */
    int n_eos_more;                 /* a list eos_token_id's ids after its first */
    int eos_more[MODEL_MAX_EOS - 1];
    int type_vocab_size;   /* BERT token types; 0 for DistilBERT */
    Activation activation; /* "gelu" -> ACT_GELU, "gelu_new"/"gelu_pytorch_tanh"
                              -> ACT_GELU_TANH, "relu" -> ACT_RELU, "silu" -> ACT_SILU
                              (Llama's gated MLP); anything else is an error */
    float layer_norm_eps;  /* DistilBERT: 1e-12 (hard-coded in HF); Llama: rms_norm_eps */
    float hidden_dropout, attention_dropout; /* GPT-2: resid_pdrop, attn_pdrop */
    float embedding_dropout;                 /* GPT-2's embd_pdrop; 0 for the others */
    float classifier_dropout;                /* DistilBERT seq_classif_dropout; BERT
                                                classifier_dropout or, when null or absent,
                                                hidden_dropout_prob */
    float initializer_range;
    int pad_token_id;            /* -1 when unset (Llama's null) */
    int num_labels;              /* id2label's size, else the num_labels key, else 2 */
    int score_head;              /* Llama: LlamaForSequenceClassification (a merged reward
                                    model: one label, the `score` head) in 'architectures' */
    int multimodal;              /* Gemma 3: the language model of a multimodal checkpoint
                                    (model_type gemma3, Gemma3ForConditionalGeneration): its
                                    tensors and PEFT's names lie under language_model, and
                                    no config.json of its own is written */
    char labels[MAX_LABELS][64]; /* id2label in id order; default "LABEL_<i>" */
} ModelConfig;

/* HF's defaults: distilbert-base-uncased / bert-base-uncased, 2 labels. */
void model_config_defaults(ModelConfig *cfg, Arch arch);

/* path: a config.json, a directory containing one, or a decoder's .gguf file (Llama family, GPT-2:
 * its metadata read as transformers reads it). A multimodal Gemma 3 config (model_type gemma3,
 * Gemma3ForConditionalGeneration) gives its text_config as a gemma3_text one, multimodal set. */
int model_config_load(ModelConfig *cfg, const char *path, LfError *err);

/* Writes an HF-loadable config.json (atomically) to path: model_type,
 * architectures (DistilBertForSequenceClassification, BertForSequenceClassification,
 * LlamaForCausalLM or, with score_head, LlamaForSequenceClassification, GPT2LMHeadModel,
 * Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, SmolLM3ForCausalLM, Gemma3ForCausalLM,
 * Gemma2ForCausalLM, Phi3ForCausalLM or their ForSequenceClassification),
 * every size, dropout and activation key,
 * id2label and label2id. Fails on an invalid cfg. */
int model_config_save(const ModelConfig *cfg, const char *path, LfError *err);

/* model_config_save's checks alone: valid, and with a config.json form (a GGUF's own RoPE
 * divisors have none; a multimodal checkpoint's language model is not written as one). */
int model_config_savable(const ModelConfig *cfg, const char *where, LfError *err);

/* Checks sizes and ranges (positive sizes, hidden divisible by
 * heads, 1..MAX_LABELS labels, dropouts in [0, 1), ...). `where` names the
 * source in the message. */
int model_config_validate(const ModelConfig *cfg, const char *where, LfError *err);

/* HF's model_type: "distilbert" / "bert" / "llama" / "gpt2" / "qwen2" / "qwen3" / "mistral" /
 * "smollm3" / "gemma3_text" / "gemma2" */
const char *arch_name(Arch arch);
/* A decoder's GGUF general.architecture (and the prefix of its keys), as llama.cpp's converter
 * writes it: its model_type, but "llama" for mistral. */
const char *arch_gguf_name(Arch arch);

/* cfg's rope_scaling from the text of a config.json's rope_scaling object (json), read as
 * config.json's; errors say what is wrong with it. */
int model_config_rope_scaling(ModelConfig *cfg, const char *json, LfError *err);

/* RoPE's inverse frequencies for head size HS (even, at most 2 * ROPE_MAX_PAIRS): 1 / theta^(2i /
 * HS), scaled by s (NULL: none), worked out in double and rounded once to float, so within an ulp
 * of transformers' float32 ones and the same on every backend (libm's and CUDA's powf differ by an
 * ulp on some inputs, which a position of thousands turns into 1e-5 of the angle). theta <= 0: half
 * 0, no rotation. */
void rope_freqs_init(RopeFreqs *r, float theta, int HS, const RopeScaling *s);
/* The size of one attention head: head_dim, else hidden / heads. */
int model_head_size(const ModelConfig *cfg);
/* How much of each head RoPE turns: rotary_dim, else the head size. */
int model_rotary_dim(const ModelConfig *cfg);
/* How the attention scores (ops.h AttnScore): 1 / sqrt(query_pre_attn_scalar or the head size),
 * soft-capped by attn_softcap. */
AttnScore model_attn_score(const ModelConfig *cfg);
/* Layer l's sliding window (Ops.attention_forward's window); 0: none. */
int model_layer_window(const ModelConfig *cfg, int l);
/* Whether layer l turns q and k by RoPE (all but SmolLM3's NoPE layers). */
int model_layer_rope(const ModelConfig *cfg, int l);
/* cfg's NoPE layers: every step-th of its num_layers (SmolLM3's pattern), none past them. */
void model_config_nope_every(ModelConfig *cfg, int step);
/* cfg's full-attention layers, with a window: every step-th of its num_layers (Gemma 3's pattern);
 * the others windowed. */
void model_config_full_every(ModelConfig *cfg, int step);

/* cfg's: its rotary dims (model_rotary_dim), rope_theta and rope_scaling (half 0 for the encoders
 * and GPT-2); under longrope, its short factors'. */
void model_rope_freqs(const ModelConfig *cfg, RopeFreqs *r);
/* longrope's for sequences longer than original_max_position_embeddings: its long factors' (half 0
 * under any other scaling). */
void model_rope_freqs_long(const ModelConfig *cfg, RopeFreqs *r);
/* Gemma 3's windowed layers': its head size and rope_local_theta, unscaled (half 0 without, and
 * for Gemma 2, whose layers share one base). */
void model_rope_freqs_local(const ModelConfig *cfg, RopeFreqs *r);
/* The divisor of each pair's frequency that a GGUF's rope_freqs tensor holds for cfg's llama3
 * scaling (or its own divisors) into d[HS/2]; returns HS/2, or 0 for other scalings. */
int model_rope_divisors(const ModelConfig *cfg, float *d);

#ifdef __cplusplus
}
#endif
