/* model.h: DistilBERT and BERT for sequence classification, with LoRA, on any backend.
 *
 * One model code path (src/model.c) written against the op table (ops.h). Every weight
 * lives in one allocation described by a table of named tensors (HF's exact names), every
 * activation is sized once for (max_batch, max_len), and nothing is allocated inside a
 * training step. Frozen weights get no gradient and no optimizer state, and an activation
 * that only a frozen weight's gradient would need is not kept.
 *
 * Dimensions: B batch, T sequence, C hidden, F feed-forward, NH heads, L layers,
 * K classes, R LoRA rank, N = B*T. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"
#include "loraft/model_config.h"
#include "loraft/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum Strategy { STRATEGY_LORA, STRATEGY_HEAD, STRATEGY_FULL } Strategy;

#define LORA_MAX_TARGETS 16
#define LORA_MAX_SAVE 8

/* What to train, with PEFT's LoraConfig meaning. */
typedef struct TrainSpec {
    Strategy strategy;
    int r;
    float alpha, dropout;
    int use_rslora;                     /* scale = alpha / sqrt(r) instead of alpha / r */
    char targets[LORA_MAX_TARGETS][32]; /* module names, matched as PEFT does */
    int n_targets; /* 0: PEFT's default for the architecture (model_create fills it in) */
    char modules_to_save[LORA_MAX_SAVE][64]; /* none: PEFT SEQ_CLS's ["classifier", "score"] */
    int n_modules_to_save;
} TrainSpec;

/* One named tensor of the parameter table. */
typedef struct Param {
    char name[160]; /* HF name: "distilbert.transformer.layer.0.attention.q_lin.weight";
                       LoRA: "...q_lin.lora_A.weight" (PEFT's name, without base_model.model) */
    int ndim;
    int64_t shape[2];
    size_t numel;
    float *value; /* into Model.values */
    float *grad;  /* into Model.grads; NULL when frozen */
    int decay;    /* AdamW weight decay applies (HF Trainer: not biases, not LayerNorm) */
    int is_lora, in_checkpoint;
} Param;

typedef struct Lora {
    Param *A, *B; /* A [R,in], B [out,R] */
    float scale;
    float *u; /* saved drop(x) A^T per layer use [N,R] */
} Lora;

typedef struct Linear {
    Param *w, *b;
    Lora *lora; /* NULL when this module is not a LoRA target */
    int in, out;
} Linear;

typedef struct Norm {
    Param *w, *b;
} Norm;

typedef struct Layer {
    Linear q, k, v, o, ffn_in, ffn_out;
    Norm ln_attn, ln_ffn;
} Layer;

/* Activations of one layer kept for backward; pointers are NULL when not needed. */
typedef struct LayerActs {
    float *x;                     /* [N,C] layer input (kept only if q/k/v train) */
    float *q, *k, *v;             /* [N,C] */
    float *att;                   /* [B,NH,T,T] softmax probabilities */
    float *ctx;                   /* [N,C] attention output, input of o (kept only if o trains) */
    float *res_attn;              /* [N,C] o(ctx) + x, input of ln_attn */
    float *h_attn;                /* [N,C] ln_attn output */
    float *mean_attn, *rstd_attn; /* [N] */
    float *ffn_pre;               /* [N,F] ffn_in output (activation input) */
    float *ffn_act;               /* [N,F] activation output (kept only if ffn_out trains) */
    float *res_ffn;               /* [N,C] */
    float *mean_ffn, *rstd_ffn;
    float *out; /* [N,C] layer output */
} LayerActs;

/* A guard block after a planned activation buffer (debug and sanitizer builds). */
typedef struct ActGuard {
    size_t offset; /* in floats from act_mem */
    size_t floats; /* the size of the buffer it guards */
    const char *name;
} ActGuard;

typedef struct Model {
    ModelConfig cfg;
    const Ops *ops;
    TrainSpec spec;
    int max_batch, max_len; /* activation sizes */

    Param *params; /* the table, in checkpoint order, then LoRA tensors */
    int n_params;
    float *values, *grads; /* backend memory */
    size_t n_values, n_grads;
    size_t n_base;       /* parameters of the HF model (without LoRA) */
    size_t n_saved_copy; /* modules_to_save parameters (PEFT counts them twice) */

    /* embeddings */
    Param *wte, *wpe, *wtt; /* wtt NULL for DistilBERT */
    Norm ln_emb;
    Layer *layers;
    Lora *loras;
    int n_loras;
    Linear pre, cls;          /* pre_classifier (DistilBERT) or pooler (BERT), then classifier */
    Activation pre_act;       /* ReLU (DistilBERT) or tanh (BERT pooler) */
    int lowest_trained_layer; /* backward stops below it; L means "head only" */

    /* activations and gradient scratch (backend memory, one allocation) */
    float *act_mem;
    size_t n_act;
    ActGuard *guards;
    int n_guards;
    float *emb, *emb_mean, *emb_rstd, *h0; /* [N,C], [N], [N], [N,C] */
    LayerActs *acts;
    float *pooled, *pre_out, *pre_act_out, *head_in, *logits; /* [B,C] x4, [B,K] */
    float *losses, *dlogits;                                  /* [B], [B,K] */
    float *scratch;                                           /* op scratch */
    float *d_a, *d_b, *d_c, *d_q, *d_k, *d_v, *d_ffn, *d_ffn2, *d_head;
    float *d_br, *d_r, *d_ctx;
    int32_t *ids, *types, *mask, *labels; /* backend copies of the batch */
    int B, T;                             /* shape of the current batch */
    int n_valid;                          /* rows of the batch with a label (>= 0) */
    int has_labels;
    int train_mode;     /* dropout on in the last forward (backward must match) */
    float *host_losses; /* [max_batch] host copy for the mean loss */
} Model;

/* Builds the model from a config and a parameter source:
 * dir != NULL: loads dir/model.safetensors (HF names, with or without the "distilbert." /
 *   "bert." prefix); missing head tensors are initialised as HF does and listed in
 *   *missing_report (may be NULL);
 * dir == NULL: all base weights initialised from seed as HF's _init_weights does. */
int model_create(Model *m, const ModelConfig *cfg, const TrainSpec *spec, const Ops *ops,
                 const char *dir, uint64_t seed, int max_batch, int max_len, char *missing_report,
                 size_t report_cap, LfError *err);
void model_free(Model *m);

/* Copies one batch (host arrays, [B*T] ids/types/mask and [B] labels; labels may be NULL)
 * to the backend. */
int model_set_batch(Model *m, const int32_t *ids, const int32_t *types, const int32_t *mask,
                    const int32_t *labels, int B, int T, LfError *err);
/* Forward pass; train != 0 enables dropout drawn from seed. Fills m->logits and, when
 * labels were given, m->losses, the mean loss over labelled rows in *loss, and m->dlogits:
 * the gradient of loss_weight * mean loss (loss_weight = 1 / accumulation steps). */
int model_forward(Model *m, int train, uint64_t seed, float loss_weight, float *loss, LfError *err);
/* Backward pass of the last forward (same seed); accumulates into the trainable grads. */
int model_backward(Model *m, uint64_t seed, LfError *err);
void model_zero_grad(Model *m);

/* Parameters: counts as PEFT prints them. */
size_t model_trainable_count(const Model *m);
size_t model_all_count(const Model *m);
Param *model_find_param(Model *m, const char *name);

/* Strategy and names. */
int strategy_parse(const char *s, Strategy *out, LfError *err);
const char *strategy_name(Strategy s);
void train_spec_defaults(TrainSpec *s);
/* The architecture's name prefix ("distilbert" / "bert"). */
const char *model_prefix(const ModelConfig *cfg);

/* Writes every base parameter (not LoRA) to path as safetensors, HF names; with
 * merge_lora, W += scale * B A first (in the written copy only). */
int model_save_weights(Model *m, const char *path, int merge_lora, LfError *err);

#ifdef __cplusplus
}
#endif
