/* model.h: a transformer with LoRA on any backend: the model core.
 *
 * The core knows parameters, LoRA and memory; what the network computes is an architecture's
 * (arch.h: DistilBERT and BERT in src/bert.c) and what it is trained for an objective's
 * (objective.h: classification in src/classification.c). Every weight lives in one
 * allocation described by a table of named tensors (HF's exact names), every activation is
 * sized once for (max_batch, max_len), and nothing is allocated inside a training step.
 * Frozen weights get no gradient and no optimizer state, and an activation that only a
 * frozen weight's gradient would need is not kept.
 *
 * Dimensions: B batch, T sequence, C hidden, F feed-forward, NH heads, L layers,
 * K classes, R LoRA rank, N = B*T. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"
#include "loraft/model_config.h"
#include "loraft/lora_targets.h"
#include "loraft/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What trains (train.strategy): LoRA adapters, the head, everything, or trained token rows
 * alone (peft's TrainableTokens method: TrainSpec.token_indices, no LoRA); or nothing (a model
 * opened to run, not to train: model_open without an adapter, loraft init; not a
 * train.strategy). */
typedef enum Strategy {
    STRATEGY_LORA,
    STRATEGY_HEAD,
    STRATEGY_FULL,
    STRATEGY_TOKENS,
    STRATEGY_NONE
} Strategy;
/* Whether a strategy trains a PEFT adapter beside the frozen model (saved as the adapter alone):
 * LoRA's or TrainableTokens'. */
static inline int strategy_is_adapter(Strategy s) {
    return s == STRATEGY_LORA || s == STRATEGY_TOKENS;
}
/* Which biases train beside LoRA's adapters (PEFT's bias): none; all (every parameter named
 * "bias"); those of the adapted linears. */
typedef enum LoraBias { LORA_BIAS_NONE, LORA_BIAS_ALL, LORA_BIAS_LORA_ONLY } LoraBias;
/* How LoRA's A and B start (PEFT's init_lora_weights): A ~ U(+-1/sqrt(in)) (PEFT's true), A ~
 * N(0, 1/r) (gaussian), both B 0; or from the weight, which keeps the rest (model.c
 * split_weight): PiSSA's r principal singular directions, OLoRA's first r of its QR factors. */
typedef enum LoraInit {
    LORA_INIT_DEFAULT,
    LORA_INIT_GAUSSIAN,
    LORA_INIT_PISSA,
    LORA_INIT_OLORA
} LoraInit;
/* What the model is trained for; selects the objective (and PEFT's task_type). */
typedef enum Task {
    TASK_CLASSIFICATION,
    TASK_CAUSAL_LM,
    TASK_DPO,
    TASK_REWARD,
    TASK_RLOO,
    TASK_GRPO
} Task;

/* DPO's settings (TASK_DPO; objective.h). */
typedef enum DpoLoss { DPO_SIGMOID, DPO_IPO } DpoLoss;
typedef struct DpoSpec {
    float beta;            /* 0.1 */
    DpoLoss loss;          /* sigmoid */
    float label_smoothing; /* sigmoid only: the share of pairs assumed mislabelled (cDPO) */
} DpoSpec;

/* RLOO's settings (TASK_RLOO; grpo.c): a batch holds groups of `generations` rows.
 * train_spec_defaults gives TRL's defaults. */
typedef struct RlooSpec {
    float beta;              /* the KL penalty's weight in the reward (TRL's 0.05); 0: none */
    int generations;         /* completions sampled per prompt, >= 2 */
    int normalize;           /* advantages to mean 0, std 1 over the generation */
    int iterations;          /* optimisations per generation (TRL's num_iterations, 1) */
    float eps_low, eps_high; /* the ratio's clipping range [1 - eps_low, 1 + eps_high] */
    int clip;                /* a reward clamped into [clip_lo, clip_hi] first (TRL's
                                reward_clip_range) */
    float clip_lo, clip_hi;
} RlooSpec;

/* GRPO's settings (TASK_GRPO; grpo.c, grpo_token.h): a batch holds groups of `generations` rows.
 * How the completions' token losses add up and which policy term they take (TRL's loss_type:
 * the clipped ratio's five aggregations, cispo's, sapo's and vespo's), how a group's rewards are
 * scaled into advantages (TRL's scale_rewards), and the ratio to the sampling policy on a
 * generation's later passes. train_spec_defaults gives TRL's defaults. */
typedef enum GrpoLoss {
    GRPO_DAPO,
    GRPO_GRPO,
    GRPO_BNPO,
    GRPO_DR_GRPO,
    GRPO_CISPO,
    GRPO_SAPO,
    GRPO_LUSPO,
    GRPO_VESPO
} GrpoLoss;
/* GENERATION: each reward less the generation's mean, over its std (TRL's second step of
 * multi_objective_aggregation normalize_then_sum, rewards.h). */
typedef enum GrpoScale {
    GRPO_SCALE_GROUP,
    GRPO_SCALE_BATCH,
    GRPO_SCALE_NONE,
    GRPO_SCALE_GENERATION
} GrpoScale;
typedef struct GrpoSpec {
    float beta;               /* the KL penalty's weight per token (TRL's 0); 0: no reference */
    int generations;          /* completions sampled per prompt, >= 2 */
    GrpoLoss loss;            /* dapo (TRL's default) */
    GrpoScale scale;          /* group (TRL's default) */
    int max_completion;       /* dr_grpo's constant: the longest completion sampled */
    int iterations;           /* optimisations per generation (TRL's num_iterations, 1) */
    float eps_low, eps_high;  /* the ratio's clipping range [1 - eps_low, 1 + eps_high] (cispo's
                                 cap: eps_high) */
    OpsGrpoLevel level;       /* a ratio a token, or a row's (GSPO: OPS_GRPO_SEQUENCE_MEAN) */
    float delta;              /* two-sided clipping's cap on the ratio (0: none) */
    float sapo_pos, sapo_neg; /* sapo's temperatures for advantages > 0 and the others */
    int kl_corrected;         /* the KL term times the ratio (TRL's use_bias_correction_kl, 1) */
    float vespo_k[2], vespo_lambda[2]; /* vespo's gamma weight, advantages >= 0 then < 0 */
    float off_policy; /* the off-policy sequence mask's threshold (TRL's off_policy_mask_threshold;
                         0: none) */
    float entropy_quantile; /* the entropy mask's quantile (1 - top_entropy_quantile; 0: none) */
    float entropy_coef;     /* the entropy bonus's coefficient applied (the trainer's: TRL's
                               entropy_coef, or adaptive control's at each step; 0: none) */
    int entropy_bonus;      /* the run may apply a bonus (entropy_coef or its control) */
} GrpoSpec;

/* How the frozen dense-layer weights are stored (model.base_dtype): f32; bf16 (rounded to
 * nearest even at load); q, a GGUF file's own blocks (Q4_1, Q8_0, ...; QLoRA-style); or one
 * block type from any checkpoint, quantised at load with ggml's reference rounding (q8_0 ..
 * q4_0: 8.5 to 4.5 bits a weight; a weight whose rows are not whole blocks is stored bf16), or
 * bitsandbytes' NF4 (nf4: QLoRA's type, 64-value blocks, 4.5 bits a weight). The
 * blocks are dequantised into op scratch for each GEMM. Only frozen Linear weights are packed so:
 * norms, biases, LoRA A/B and every trainable tensor stay f32, and so do the LM head and the
 * embedding but where precision bf16 keeps a decoder's frozen ones in bf16 alone. */
typedef enum BaseDtype {
    BASE_F32,
    BASE_BF16,
    BASE_Q,
    BASE_Q8_0,
    BASE_Q5_1,
    BASE_Q5_0,
    BASE_Q4_1,
    BASE_Q4_0,
    BASE_NF4
} BaseDtype;

/* How the GEMMs compute (model.precision, the enum Precision of ops.h). fp32; tf32 (the
 * backend's f32 GEMMs on TF32 tensor cores); bf16: every packed frozen weight's GEMM on bf16
 * tensor cores (activation rounded to bf16, f32 accumulation and output:
 * Ops.matmul_forward_bf16; an adapted linear's up-projection inside that GEMM), attention's
 * products on bf16 tensor cores (Ops.set_precision), the other GEMMs as tf32; under LoRA, and
 * where nothing trains, it also packs f32 frozen weights as bf16 (only the adapter is saved, or
 * nothing, so nothing saved is rounded). Norms,
 * softmax, LoRA A/B, the LM head, gradients and AdamW state stay f32 in every precision. auto: bf16
 * on the CUDA backend, fp32 on the CPU, which computes fp32 only. model_create resolves auto:
 * Model.spec.precision is never AUTO. */

#define LORA_MAX_TARGETS 1024 /* PEFT writes "all-linear" as every adapted module's full name */
#define LORA_MAX_EXCLUDE 64
#define LORA_MAX_SAVE 8

/* What to train, with PEFT's LoraConfig meaning. */
typedef struct TrainSpec {
    Strategy strategy;
    Task task;
    int r;
    float alpha, dropout;
    int use_rslora; /* scale = alpha / sqrt(r) instead of alpha / r */
    int use_dora;   /* DoRA: each adapted linear's output scaled by a trained magnitude over its
                       adapted weight's row norm (PEFT's use_dora; model.c linear_forward) */
    int ensure_weight_tying; /* a peft adapter's: its tied head's and embedding's adapters are
                                one (refused where the model would tie them: model.c) */
    LoraBias bias;           /* trained with the adapters and saved in them (model.c bias_grads) */
    LoraInit init;
    char targets[LORA_MAX_TARGETS][64]; /* module names, matched as PEFT does */
    int n_targets; /* 0 (and no target_regex): the architecture's default (model_create's) */
    /* or PEFT's target_modules as a string: a regular expression a module's whole name matches,
     * or LORA_ALL_LINEAR (every linear but the output layer: model_create writes them into
     * targets); "" for the list */
    char target_regex[LORA_REGEX_MAX];
    /* PEFT's exclude_modules: names (a module that is one or ends in "." one) or a regular
     * expression (exclude_regex) of modules that get no adapter */
    char exclude[LORA_MAX_EXCLUDE][64];
    int n_exclude;
    char exclude_regex[LORA_REGEX_MAX];
    char modules_to_save[LORA_MAX_SAVE][64]; /* none: the objective's default */
    int n_modules_to_save;
    /* PEFT's rank_pattern and alpha_pattern: a module's r and alpha where one of their keys
     * matches its name (lora_targets.h), else r and alpha */
    LoraPattern rank_pattern[LORA_MAX_PATTERNS], alpha_pattern[LORA_MAX_PATTERNS];
    int n_rank_pattern, n_alpha_pattern;
    /* PEFT's layers_to_transform (none: every layer) and layers_pattern: only the targets in
     * these layers get adapters (lora_layer_index) */
    int layers[LORA_MAX_LAYERS], n_layers;
    char layers_pattern[LORA_MAX_LAYER_NAMES][32];
    int n_layers_pattern;
    /* peft's trainable_token_indices: rows of the token embedding (and of a tied LM head) that
     * train in place of the table's; token_module the embedding's name where the adapter's config
     * named it ({name: [ids]}), else empty. head_token_indices: its {"lm_head": [ids]}, rows of
     * the LM head that train apart from the embedding's (peft's own wrapper of the head) */
    int token_indices[LORA_MAX_TOKENS];
    int n_token_indices;
    char token_module[64];
    int head_token_indices[LORA_MAX_TOKENS];
    int n_head_token_indices;
    DpoSpec dpo;             /* TASK_DPO */
    RlooSpec rloo;           /* TASK_RLOO */
    GrpoSpec grpo;           /* TASK_GRPO */
    float temperature;       /* the LM head's logits divided by it in every loss (RLOO's and GRPO's
                                sampling temperature, as TRL's trainers); 1 (the default): none */
    BaseDtype base_dtype;    /* frozen dense weights: f32, bf16, the GGUF's blocks or a type */
    Precision precision;     /* auto (the default) until model_create resolves it */
    AttentionImpl attention; /* model.attention: loraft's kernels (the default) or cuDNN's */
    int gradient_checkpointing; /* train.gradient_checkpointing: backward recomputes each layer */
    float neftune_alpha; /* train.neftune_noise_alpha: NEFTune's noise on the input embeddings
                            in training; 0: none */
} TrainSpec;

/* Preference pairs of the last forward (TASK_DPO, TASK_REWARD): sums over the batch's pairs of
 * the implicit (DPO: beta * (log-prob - reference log-prob)) or explicit rewards. */
typedef struct PairStats {
    int pairs;
    double correct;          /* pairs whose chosen reward is above the rejected one */
    double chosen, rejected; /* rewards */
} PairStats;

/* RLOO's and GRPO's last forward (TASK_RLOO, TASK_GRPO): sums over the batch's rows (grpo.c). */
typedef struct RlooStats {
    int rows;
    double kl;       /* rows x the batch's mean per-token KL (TRL's: RLOO's sampler - reference
                        log-prob, GRPO's k3) */
    double reward;   /* the rewards (RLOO's penalised: reward - beta kl) */
    double positive; /* rows whose advantage is above 0 */
    double zero_std; /* rows whose rewards' std is 0 (Model.grpo_zero_std) */
    double tokens, clipped_low, clipped_high; /* completion tokens, those clipped (the rows, at
                                                 sequence level) */
    double entropy;                           /* the completion tokens' entropies */
    /* those of the tokens the policy term trains (the entropy mask's), and their count
     * (grpo_weights' stats 5, 6) */
    double kept_entropy, kept;
} RlooStats;

/* One named tensor of the parameter table. */
typedef struct Param {
    char name[160]; /* HF name: "distilbert.transformer.layer.0.attention.q_lin.weight";
                       LoRA: "...q_lin.lora_A.weight" (PEFT's name, without base_model.model) */
    int ndim;
    int64_t shape[2];
    size_t numel;
    float *value; /* into Model.values; NULL for a packed weight */
    void *packed; /* a frozen dense weight kept packed (model.base_dtype; a frozen LM head under
                     precision bf16, in bf16): [shape[0]] rows of shape[1] values as ggml type
                     dtype, in Model.packed; else NULL */
    int dtype;    /* GgmlType of the stored values: GGML_F32 unless packed */
    size_t packed_bytes;
    int lora_room; /* columns of room for LoRA's fused GEMMs in a BF16 weight (precision bf16,
                      model.c: R per adapted member of its group, B's in its own, zeros in the
                      others'; its group's A after the weights, Lora.a_bf16); 0 otherwise */
    float *grad;   /* into Model.grads; NULL when frozen */
    int decay;     /* AdamW weight decay applies (HF Trainer: not biases, not LayerNorm) */
    int is_lora, in_checkpoint;
    int is_norm;       /* a norm's weight or bias: initialised to 1 / 0 */
    int plus_one;      /* a norm's weight that the norm multiplies by 1 + it (Gemma's:
                          model_norm_plus_one), initialised to 0 */
    int pad_row;       /* an embedding's padding_idx row, zero at initialisation; -1: none */
    float init_std;    /* std of its normal initialisation; 0: the config's initializer_range */
    int hf_transposed; /* HF checkpoints store it as [shape[1], shape[0]] (GPT-2's Conv1D):
                          transposed when loaded from and saved to safetensors */
} Param;

struct Linear;
typedef struct Lora {
    Param *A, *B;     /* A [R,in], B [out,R] */
    int r;            /* R: the spec's r, or its rank_pattern's for this module */
    float scale;      /* alpha / r, or alpha / sqrt(r) (use_rslora), alpha as r is the module's */
    float *u;         /* saved drop(x) A^T per layer use [N,R] */
    int u_in_layer;   /* plan_activations: u was planned with its layer's buffers (plan_take_input),
                         so a recomputed layer's is recomputed with them */
    uint16_t *xb;     /* or NULL: its input's bf16 copy [N, in + R x the group's adapted linears]
                         kept for backward (plan_take_input), one for the adapted linears of a
                         group (Ops.lora_down_bf16) */
    uint16_t *a_bf16; /* or NULL: A's bf16 rows [R, in] in its group's stored weight block
                         (rows as its weight's apart), which sync_adapters refreshes */
    struct Linear *base; /* the dense layer it sits beside (for merging) */
    /* DoRA (TrainSpec.use_dora), else NULL: the magnitude [out] (PEFT's lora_magnitude_vector,
     * trained); norm [out] = || W + scale B A || per output row, once a forward (sync_dora); pre
     * [N,out]: the output without its bias and before the magnitude's scale, saved for backward
     * like u */
    Param *mag;
    float *norm, *pre;
} Lora;

/* peft's trainable tokens (TrainableTokensLayer): K rows of a [V,C] table trained in place of
 * its own, the token embedding's (and so a tied LM head's) or the LM head's apart. Their values,
 * rows [K,C] (peft's trainable_tokens_delta), start as the table's; the network adds delta =
 * rows - orig to the table's rows, which needs no op of its own: the embedding gathers delta's
 * rows by slot (each token's k, or K: delta's zero row) and adds them, and a head runs delta as a
 * low-rank branch, u = h delta^T [N,K] times a one-hot B [V,K] (its 1s at (ids[k], k)). */
typedef struct TokenRows {
    Param *rows;        /* NULL where none train */
    int k;              /* K (TrainSpec.token_indices or head_token_indices: their ids) */
    float *neg_orig;    /* backend [K,C]: minus the table's rows as loaded */
    float *delta;       /* backend [K+1,C]: rows - orig (sync_adapters), then a row of zeros */
    float *onehot;      /* backend [V,K], a head's B (Model.head_branch_rows); else NULL */
    float *u, *du;      /* backend [N,K]: a head's branch, in the activations */
    int32_t *slot;      /* the embedding's: backend [max_batch * max_len], beside the batch's ids */
    int32_t *grad_slot; /* backend: slot, or where the table's padding_idx is among the ids, slot
                           with K there (torch gives that row no gradient), after it */
    int32_t *slot_of;   /* host [V + max_batch * max_len]: each id's k or K, then a batch's slots */
} TokenRows;

typedef struct Linear {
    Param *w, *b; /* b NULL for a layer without bias */
    Lora *lora;   /* NULL when this module is not a LoRA target */
    int in, out;
    int group; /* linears that read its input in one linear_forward_group (model_share_input) */
    struct Linear *const *peers; /* those linears in order (itself among them), or NULL: alone
                                    (also where their adapters' ranks or scales differ) */
    /* or NULL: under precision bf16 a linear without LoRA reads its input [N,in] forward and
     * its output's gradient [N,out] backward as bf16 that the op before (after) it wrote there
     * (linear_reads_bf16, linear_dout), instead of rounding the f32 ones in a pass of its own;
     * in_bf16 may also be an adapted group's input copy (linear_input_bf16) */
    uint16_t *in_bf16, *dout_bf16;
    /* or NULL: under precision bf16, on a group's first member (or a lone linear), where its one
     * GEMM writes the outputs in bf16 without the bias, for an activation that keeps its input
     * so (linear_output_bf16); the f32 outputs are then not written. din_bf16 likewise, where a
     * lone linear's backward writes its input gradient in bf16 for the activation before it
     * (linear_input_grad_bf16) instead of the f32 dinp */
    uint16_t *out_bf16, *din_bf16;
} Linear;

typedef struct Norm {
    Param *w, *b; /* b NULL for RMS norm */
} Norm;

/* A guard block after a planned activation buffer (debug and sanitizer builds). */
typedef struct ActGuard {
    size_t offset; /* in floats from act_mem */
    size_t floats; /* the size of the buffer it guards */
    const char *name;
} ActGuard;

typedef struct ArchImpl ArchImpl;
typedef struct Objective Objective;

typedef struct Model {
    ModelConfig cfg;
    const Ops *ops;
    const ArchImpl *arch;       /* the network: its modules, forward and backward */
    const Objective *objective; /* the loss on the network's output */
    void *body;                 /* the architecture's modules and activations */
    TrainSpec spec;
    int max_batch, max_len; /* activation sizes */

    Param *params; /* the table, in checkpoint order, then LoRA tensors */
    int n_params, max_params;
    float *values, *grads; /* backend memory: the f32 parameters (each 64-byte aligned, zeros
                              between them), the gradients */
    size_t n_values, n_grads;
    void *packed; /* backend memory: the packed frozen weights (Param.packed) */
    size_t n_packed_bytes;
    size_t n_all;        /* elements of every parameter, packed or not */
    size_t n_base;       /* parameters of the HF model (without LoRA) */
    size_t n_saved_copy; /* modules_to_save parameters (PEFT counts them twice) */
    Linear **linears;    /* every dense layer in table order: the LoRA candidates */
    int n_linears;
    Lora *loras;
    int n_loras;
    /* The token embedding table [V,C] (the word embeddings), a LoRA target as PEFT's
     * nn.Embedding, and its adapter (peft's lora_embedding_A / _B; A NULL where it has none):
     * A stored transposed, [V,R] (Param.hf_transposed), so that the forward gathers its rows as
     * the table's; B [C,R]; u [N,R] the gathered rows; base NULL. */
    Param *word_embedding;
    Lora embedding_lora;
    /* Trained token rows: the embedding's, the LM head's own (TrainSpec.head_token_indices), and
     * those the head runs as its branch (model_head_branch): its own, else a tied head's
     * embedding rows (peft ties them), else NULL */
    TokenRows token_rows, head_token_rows, *head_branch_rows;

    /* activations and op scratch (backend memory, one allocation) */
    float *act_mem;
    size_t n_act;
    ActGuard *guards;
    int n_guards;
    float *scratch;    /* op scratch */
    float *dora_grad;  /* DoRA: the scaled output gradients of a group's adapted linears [N, their
                          outputs] (linear_backward), else NULL */
    float *dora_grest; /* DoRA under lora dropout: beside dora_grad, the same members' gradients of
                          the base's term on x - drop(x) (Ops.dora_backward's grest), else NULL */
    float *logits, *losses, *dlogits; /* the network's output and the objective's */
    /* adamw_update's global gradient norm, a double directly before losses, so that
     * model_read_loss reads the loss and the norm of a step in one copy */
    double *grad_norm;
    /* Decoders end before their LM head: hidden [N,C] (the final norm's output), the head
     * (a dense layer, or the tied embedding), dhidden [N,C] the loss's gradient; the
     * objective applies the head in chunks so the [N,V] logits are never held. */
    float *hidden, *dhidden, *head_scratch;
    Linear *head; /* its adapter (PEFT's lm_head target): in loras; the LM head's [N,R] gradient
                     of its u, head_du, which lm_head_cross_entropy adds to */
    float *head_du;
    uint16_t *head_bf16; /* backend: a frozen head's bf16 table under precision bf16 (its
                            weight's Param.packed: the only copy), else NULL */
    Param *embedding;    /* a decoder's token embedding table [V,C]; frozen under precision
                            bf16, stored in bf16 alone as the head is (an encoder's, 30k rows,
                            stays f32: the saving is small, and its classifiers match PyTorch's
                            autocast, which keeps an f32 model's embedding f32) */
    /* backend: under precision bf16, the adapters that ride in their weight's bf16 storage
     * (model.c adapter_copies_create), rounded into it by one round_bf16_many a forward */
    OpsBf16Copy *adapter_copies;
    int n_adapter_copies;
    /* backend: the plus_one parameters lie first in values, n_plus_one floats; plus_one
     * [2 * n_plus_one] = 1 + them (what their norms multiply by: model_norm_weight), rewritten by
     * one add a forward, then n_plus_one 1s */
    float *plus_one;
    size_t n_plus_one;
    /* Preference tasks: a batch holds pairs, rows 2i (chosen) and 2i+1 (rejected); RL's groups
     * of a prompt's completions. The loss op leaves its results in backend memory between
     * grad_norm and losses (objective.h's pair readout), so model_read_loss's one copy brings
     * them to the host with the loss. */
    double *pair_sums; /* [PAIR_STATS] backend: ops.h dpo_loss .. grpo_weights's stats */
    float *row_scores; /* [max_batch] backend: each row's response log-prob (dpo) or reward */
    float *ref_logps;  /* dpo: [max_batch] backend, the reference policy's log-probs of the
                          batch (dpo_set_reference, reference_forward) */
    int has_ref;       /* dpo: ref_logps holds this batch's (0: the loss is 0); grpo: its
                          reference's losses are set */
    float *seq_scores, *ref_scores; /* host copies of row_scores, ref_logps (model_read_loss) */
    float
        *row_scale; /* dpo, rloo, grpo: [max_batch * max_len] backend, the LM head's row weights */
    PairStats pair_stats; /* of the last model_read_loss with labels */
    RlooStats rloo_stats; /* rloo's and grpo's, the same */
    int losses_only; /* rloo, grpo: the forward leaves the per-token losses alone (rl_row_logps) */
    /* rloo, grpo: what the host knows before the forward (grpo_set_rewards): the loss (when the
     * tokens' weights are the host's), the rewards' sum, the rows above 0, the rows whose rewards'
     * std (their group's, or under scale batch the generation's) is 0, so that their advantage is
     * 0 (TRL's frac_reward_zero_std), the completion tokens and RLOO's KL (rows x the mean per
     * token, from the rows' log-probs at sampling). Where the forward decides the
     * weights (a KL penalty, num_iterations > 1, cispo, vespo, the entropy's terms), each token's
     * share of the loss and its advantage, the reference's per-token losses (beta > 0) and the
     * sampling policy's (old_losses, has_old: set for this batch by grpo_set_old), [max_batch *
     * max_len] backend */
    double grpo_loss, grpo_reward, grpo_positive, grpo_zero_std, grpo_tokens, grpo_kl;
    float *grpo_share, *grpo_adv, *ref_losses, *old_losses;
    /* rloo, grpo: [max_batch * max_len] backend, the policy forward's entropy a token (the LM
     * head's OpsEntropy.out; the log's), and the entropy bonus's d loss / d entropy */
    float *entropy, *entropy_scale;
    int has_old;
    int adapters_off; /* linear_forward skips the LoRA branches: the base model (the reference
                         policy of DPO and RLOO, without a second copy of the weights) */
    int32_t *ids, *types, *mask, *labels; /* backend copies of the batch */
    int32_t *head_rows; /* backend: the rows the LM head computes (causal_lm_labels), */
    int n_head_rows;    /* n_head_rows of them; 0: every row, in order */
    int B, T;           /* shape of the current batch */
    int padded;         /* its mask hides a token (model_attention_mask) */
    int n_valid;        /* labels of the batch that count (>= 0) */
    int has_labels;
    int train_mode;     /* dropout on in the last forward (backward must match) */
    int dhidden_ready;  /* the last forward's loss wrote dhidden (causal LM, training) */
    int top_fresh;      /* gradient checkpointing: the recomputed layers' shared buffers hold the
                           top layer's forward (the last forward's), so backward need not
                           replay it; the next backward or a decode spends it */
    float loss_scale;   /* the LM head's gradient scale besides the step's: 1, or 0 where
                           the loss has no gradient (DPO without a reference) */
    uint64_t step_seed; /* model_step's, given to the backend at every entry */
    float step_weight;
    float *host_readout;     /* host copies of grad_norm, the pair readout and losses */
    float *host_losses;      /* in host_readout, after the pair readout */
    int32_t *host_labels;    /* [max_batch * max_len] the objective's labels before upload */
    int32_t *host_head_rows; /* [max_batch * max_len] head_rows before upload */
    float *host_weights;     /* [Objective.host_per_token * max_batch * max_len] or NULL */
    /* generation (model_cache_reset, model_decode): allocated there, for cache_seqs sequences of
     * cache_len positions */
    float *kv_cache;      /* per layer, keys then values [cache_seqs, cache_len, cache_width] */
    float *cache_scratch; /* attention over the cache: Ops.attention_cached_scratch(decode_rows,
                             cache_len, NH, HS) floats */
    int32_t *positions;   /* [decode_rows] the positions of model_decode's tokens */
    int32_t *seqs;        /* [decode_rows] their sequences, in a step over several */
    int *cached;          /* host [cache_seqs]: each sequence's positions in use */
    int cache_len, cache_seqs;
    int decode_rows;   /* the most tokens a decode call runs: max_len, or cache_seqs */
    int decode_seq;    /* the sequence the last decode ran; -1: several (m->seqs) */
    int cache_keys;    /* the cached positions a decode's attention runs over (Ops.
                          attention_cached's L): its own and those before, or for a step on a
                          backend with CUDA graphs all of the cache's (the later ones hidden by
                          the positions), so that its step replays unchanged */
    int decode_graphs; /* a decode step as a CUDA graph replay (default on) */
} Model;

/* Whether the LM head is the token embedding's table (a tied decoder): its adapter is then a
 * module of its own, and neither adapter can be merged without moving the other. */
static inline int model_head_tied(const Model *m) {
    return m->head && m->head->w == m->word_embedding;
}

/* Whether merging unties the head from the table: tied, with an adapter on either or rows of the
 * head's own (Model.head_token_rows). The merged
 * model then holds the head as a weight of its own (lm_head.weight, output.weight) and says
 * tie_word_embeddings false, so that each keeps its own adapter's change; peft's merge would move
 * the one shared table by both. */
static inline int model_merge_unties(const Model *m) {
    return model_head_tied(m) && (m->embedding_lora.A || m->head->lora || m->head_token_rows.rows);
}

/* The adapted modules: the linears' adapters and the token embedding's. */
static inline int model_n_adapters(const Model *m) {
    return m->n_loras + (m->embedding_lora.A != NULL);
}

/* Builds the model from a config and a parameter source:
 * dir != NULL: loads dir/model.safetensors (HF names, with or without the "distilbert." /
 *   "bert." prefix), or a .gguf file; missing head tensors are initialised as HF does and
 *   listed in *missing_report (may be NULL);
 * dir == NULL: all base weights initialised from seed as HF's _init_weights does. */
int model_create(Model *m, const ModelConfig *cfg, const TrainSpec *spec, const Ops *ops,
                 const char *dir, uint64_t seed, int max_batch, int max_len, char *missing_report,
                 size_t report_cap, LfError *err);
void model_free(Model *m);

/* Copies one batch (host arrays, [B*T] ids/types/mask and the objective's labels, [B] for
 * classification; labels may be NULL) to the backend. */
int model_set_batch(Model *m, const int32_t *ids, const int32_t *types, const int32_t *mask,
                    const int32_t *labels, int B, int T, LfError *err);
/* The scalars of a training step: its dropout masks drawn from seed, and its gradient that of
 * loss_weight * mean loss (loss_weight = 1 / accumulation steps). Kept in the model and given to
 * the backend (Ops.set_step, with the gradient scale of the batch set last) now and at every
 * entry: a step recorded as a CUDA graph replays with the ones set before the replay. Until the
 * first call: seed 0, weight 1. */
void model_step(Model *m, uint64_t seed, float loss_weight);
/* Forward pass; train != 0 enables dropout (model_step's seed). Fills m->logits and, when
 * labels were given, m->losses, the mean loss over labelled rows in *loss, and m->dlogits:
 * the gradient of model_step's loss_weight * mean loss.
 * loss NULL: the loss stays in backend memory and nothing waits for the device (the training
 * step); model_read_loss reads it and reports the errors of the queued work. */
int model_forward(Model *m, int train, float *loss, LfError *err);
/* Backward pass of the last forward (the same step); accumulates into the trainable grads.
 * Queues the work without waiting: device errors and activation overruns surface at the next
 * model_read_loss (or forward with a loss). */
int model_backward(Model *m, LfError *err);
/* Waits for the queued work and reads, in one copy, the mean loss of the last forward into
 * *loss (0 without labels; loss may be NULL) and, with norm non-NULL, the gradient norm of the
 * last adamw_update into *norm; fails on any error of the work since the last check. The one
 * point where a training step waits for the device. */
int model_read_loss(Model *m, float *loss, double *norm, LfError *err);
void model_zero_grad(Model *m);

/* Logits [n_rows, V] of rows row0.. of the last forward of a decoder (hidden @ head^T,
 * soft-capped by final_softcap: Gemma 2's), into host memory out; for evaluation tools and
 * generation. A reward model's head is its
 * score [1,C]: one logit per row, the reward of the sequence up to that token. */
int model_lm_logits(Model *m, int row0, int n_rows, float *out, LfError *err);

/* Generation with a KV cache (decoders), eval mode (LoRA applied through the adapted linears as
 * in training), for one sequence or several decoded side by side. model_cache_reset empties the
 * cache (zeros), allocating it for `seqs` sequences of `positions` positions each (prompt + new
 * tokens, at most max_position_embeddings) unless it already holds that many; the activations
 * stay sized for max_len rows, the most one model_decode call may run (a prompt's chunk), so a
 * long generation costs only its cache.
 *
 * model_decode runs ids[0..n) of sequence seq at its next n positions: each layer's rotated keys
 * and values are appended to the sequence's cache and each token attends to every cached
 * position of it up to its own. model_decode_step runs one token of each of n distinct sequences
 * seqs[0..n) (n <= seqs, and at most max_batch * max_len), each at its sequence's next position:
 * the batched step, whose GEMMs take the n rows at once. model_cache_copy makes sequence `to` a
 * copy of `from` (prompts that several continuations share are run once). After either decode,
 * model_lm_logits(m, i, 1, out) gives the logits after row i (a prompt's last, n - 1). Equal to
 * model_forward over each whole sequence, without recomputing the prefix. On a backend with CUDA
 * graphs (and m->decode_graphs), a step (one token of one sequence, or model_decode_step) is
 * recorded once as a graph and replayed at every later position with the same rows: one launch
 * a step instead of every op's. */
int model_cache_reset(Model *m, int seqs, int positions, LfError *err);
int model_decode(Model *m, int seq, const int32_t *ids, int n, LfError *err);
int model_decode_step(Model *m, const int32_t *seqs, const int32_t *ids, int n, LfError *err);
int model_cache_copy(Model *m, int from, int to, LfError *err);

/* Parameters: counts as PEFT prints them. */
size_t model_trainable_count(const Model *m);
size_t model_all_count(const Model *m);
/* Bytes the parameters take in backend memory: f32 values plus packed weights. */
size_t model_weight_bytes(const Model *m);
/* Bytes of the activation plan (arch.h): activations, gradients of activations, op scratch. */
size_t model_activation_bytes(const Model *m);
Param *model_find_param(Model *m, const char *name);
/* Whether p is the bias of a linear with LoRA (lora.bias lora_only's; PEFT's base_layer.bias). */
int model_adapted_bias(const Model *m, const Param *p);
/* out[cols,rows] = in[rows,cols]^T in host memory: a Conv1D weight (Param.hf_transposed)
 * between loraft's [out,in] and the checkpoint's [in,out]. */
void transpose_f32(float *out, const float *in, int64_t rows, int64_t cols);

/* Strategy and names. */
int strategy_parse(const char *s, Strategy *out, LfError *err);
const char *strategy_name(Strategy s);
int base_dtype_parse(const char *s, BaseDtype *out, LfError *err); /* "f32", .. "nf4" */
const char *base_dtype_name(BaseDtype d);
int precision_parse(const char *s, Precision *out, LfError *err); /* "auto", "fp32", ... */
const char *precision_name(Precision p);
int attention_parse(const char *s, AttentionImpl *out, LfError *err); /* "loraft", "cudnn" */
const char *attention_name(AttentionImpl a);
int lora_bias_parse(const char *s, LoraBias *out, LfError *err); /* "none", "all", "lora_only" */
const char *lora_bias_name(LoraBias b);
int lora_init_parse(const char *s, LoraInit *out,
                    LfError *err); /* "default", "gaussian", "pissa", "olora" */
const char *lora_init_name(LoraInit i);
int init_splits(LoraInit i); /* whether the start rewrites the base weights: pissa, olora */
void train_spec_defaults(TrainSpec *s);
Task arch_task(Arch arch); /* the task an architecture's head is for by default */
/* The task of an adapter whose PEFT task_type gave t, on an architecture: SEQ_CLS on a decoder
 * is a reward model. */
Task arch_adapter_task(Arch arch, Task t);

/* Host f32 copies of every parameter (packed weights dequantised): (*slot)[i] holds
 * params[i]'s values, in loraft's layout (a Conv1D's weight [out,in], as GGUF stores it); with
 * merge, W += scale * B A folded into every adapted linear of the copy, and where that unties the
 * head (model_merge_unties) *head [V,C] = the table as loaded plus the head's adapter, the table
 * plus its own in the table's slot (head NULL, or no untying: *head NULL). GPT-2's head is
 * refused untied: loraft and llama.cpp read its table as the head. Returns the one allocation
 * behind them (NULL on failure); the caller frees it and *slot. */
float *model_host_weights(Model *m, int merge, float ***slot, float **head, LfError *err);

/* Writes every base parameter (not LoRA) to path as safetensors, HF names and layouts, in f32
 * (packed weights dequantised); with merge_lora, W += scale * B A first (in the written copy
 * only), and an untied head (model_merge_unties) as lm_head.weight. */
int model_save_weights(Model *m, const char *path, int merge_lora, LfError *err);

/* A parameter's name (Param.name) where the checkpoint's class keeps it: name itself, but for
 * Gemma 3's multimodal checkpoints (ModelConfig.multimodal) its place in
 * Gemma3ForConditionalGeneration: transformers 5's module tree (model.language_model.X, lm_head),
 * by which PEFT names adapter tensors, or with `saved` the safetensors names transformers 4.50
 * saved and 5.24 still saves (language_model.model.X, language_model.lm_head). buf (cap bytes)
 * holds a mapped name. */
const char *model_tree_name(const ModelConfig *cfg, const char *name, int saved, char *buf,
                            size_t cap);

#ifdef __cplusplus
}
#endif
