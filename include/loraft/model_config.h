/* model_config.h: the Hugging Face config.json of a DistilBERT, BERT (BERT-derived
 * ones such as all-MiniLM-L6-v2 included), Llama-family or GPT-2 checkpoint, read into
 * one flat struct and written back in a form transformers' AutoConfig loads.
 * Keys absent from the file keep HF's defaults; keys of the wrong JSON type,
 * unsupported options and inconsistent sizes are errors naming the file and the
 * key. Not a general HF config parser: only what classification with the encoders and
 * causal language modelling with the decoders need. */
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

typedef enum Arch { ARCH_DISTILBERT, ARCH_BERT, ARCH_LLAMA, ARCH_GPT2 } Arch;

typedef struct ModelConfig {
    Arch arch;
    int vocab_size, hidden_size, num_layers, num_heads, ffn_size, max_positions;
    int num_kv_heads;        /* Llama's grouped KV heads (num_key_value_heads); BERT: num_heads */
    float rope_theta;        /* Llama's RoPE base; 0 for BERT */
    int tie_word_embeddings; /* Llama: lm_head shares embed_tokens' weight (GPT-2: always) */
    int bos_token_id, eos_token_id; /* -1 when unset */
    int type_vocab_size;            /* BERT token types; 0 for DistilBERT */
    Activation activation;          /* "gelu" -> ACT_GELU, "gelu_new"/"gelu_pytorch_tanh"
                                       -> ACT_GELU_TANH, "relu" -> ACT_RELU, "silu" -> ACT_SILU
                                       (Llama's gated MLP); anything else is an error */
    float layer_norm_eps;           /* DistilBERT: 1e-12 (hard-coded in HF); Llama: rms_norm_eps */
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
    char labels[MAX_LABELS][64]; /* id2label in id order; default "LABEL_<i>" */
} ModelConfig;

/* HF's defaults: distilbert-base-uncased / bert-base-uncased, 2 labels. */
void model_config_defaults(ModelConfig *cfg, Arch arch);

/* path: a config.json, a directory containing one, or a Llama or GPT-2 .gguf file (its
 * metadata read as transformers reads it). */
int model_config_load(ModelConfig *cfg, const char *path, LfError *err);

/* Writes an HF-loadable config.json (atomically) to path: model_type,
 * architectures (DistilBertForSequenceClassification, BertForSequenceClassification,
 * LlamaForCausalLM or, with score_head, LlamaForSequenceClassification, GPT2LMHeadModel),
 * every size, dropout and activation key,
 * id2label and label2id. Fails on an invalid cfg. */
int model_config_save(const ModelConfig *cfg, const char *path, LfError *err);

/* Checks sizes and ranges (positive sizes, hidden divisible by
 * heads, 1..MAX_LABELS labels, dropouts in [0, 1), ...). `where` names the
 * source in the message. */
int model_config_validate(const ModelConfig *cfg, const char *where, LfError *err);

const char *arch_name(Arch arch); /* "distilbert" / "bert" / "llama" / "gpt2" */

#ifdef __cplusplus
}
#endif
