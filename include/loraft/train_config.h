/* train_config.h: the training configuration, read from a JSON file with the sections
 * model / data / lora / train, plus "section.key=value" overrides from the command line.
 * Every key is described once in a table (src/train_config.c) from which loading,
 * overrides, saving and docs/CONFIG.md all derive. This module only reads, checks and
 * writes settings; resolving defaults that depend on the model (num_labels, target
 * modules, eval batch size) is left to the code that knows the model. */
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "loraft/error.h"
#include "loraft/lora_targets.h"
#include "loraft/model_config.h" /* MAX_LABELS, LORA_MAX_R */
#include "loraft/rewards.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CFG_PATH 4096
#define CFG_MAX_TARGETS 64
#define CFG_MAX_SAVE 8

typedef struct TrainConfig {
    /* model */
    char model[CFG_PATH];        /* HF model directory (config.json + model.safetensors + vocab) */
    char tokenizer[CFG_PATH];    /* "" = same as model */
    char task[16];               /* "classification" | "causal-lm" | "sft" | "dpo" | "reward" |
                                    "rloo" */
    char reward_model[CFG_PATH]; /* rloo: the reward model (a merged one, or its base) */
    char reward_adapter[CFG_PATH]; /* rloo: its PEFT SEQ_CLS adapter; "" = none (merged) */
    char device[16];               /* "auto" | "cpu" | "cuda" */
    int devices;                   /* cuda: data-parallel processes, one a GPU; 1 */
    char base_dtype[8];            /* "f32" .. "q4_0": frozen dense weights */
    char precision[8];             /* "auto" | "fp32" | "tf32" | "bf16": how GEMMs compute */
    char attention[8];             /* "loraft" | "cudnn": whose attention kernels */
    int num_labels;                /* 0 = from the model config (or from labels) */
    char labels[MAX_LABELS][64];   /* label names in id order, e.g. ["neg","pos"] */
    int n_labels;
    /* data */
    char train_file[CFG_PATH], validation_file[CFG_PATH];
    char format[16];                   /* "auto" | "jsonl" | "csv" | "imdb" | "txt" */
    char text_unit[16];                /* causal-lm: "file" | "line" | "paragraph" */
    char holdout_file[CFG_PATH];       /* causal-lm: validation = a chapter of this file */
    int holdout_chapter;               /* its N-th chapter; 0 = none */
    char text_column[64];              /* "text" */
    char label_column[64];             /* "label" */
    int max_length;                    /* 512 */
    int truncate_left;                 /* JSON "truncation_side": "right" = 0 | "left" = 1 */
    int train_limit, validation_limit; /* 0 = all */
    int bucket_by_length;              /* 0 = off; else window size in batches */
    int pad_to_multiple_of;            /* 0 = pad to the longest; else round up to a multiple */
    int max_prompt_length;             /* dpo, reward, rloo: 128 */
    int holdout_examples;              /* sft, dpo, reward, rloo: the last N records validate */
    char chat_template[32];            /* sft: "" = the model's; dpo, reward, rloo: "" = none */
    /* sft (sft_data.h) */
    char instruction_column[64], input_column[64], output_column[64], messages_column[64];
    char prompt_template[1024]; /* "" = the chat template; else with {instruction} ... {output} */
    int packing;                /* several examples per training row */
    /* lora */
    char strategy[8];                         /* "lora" | "head" | "full" */
    int r;                                    /* 8 */
    float alpha;                              /* 8 */
    float dropout;                            /* 0 */
    char target_modules[CFG_MAX_TARGETS][64]; /* empty = the architecture's PEFT default;
                                                 ["all-linear"]: every linear but the output */
    int n_targets;
    int use_rslora;                         /* scale alpha/sqrt(r) instead of alpha/r */
    int use_dora;                           /* DoRA (PEFT's use_dora) */
    char bias[16];                          /* "none" | "all" | "lora_only" */
    char init_lora_weights[16];             /* "default" | "gaussian" | "pissa" | "olora" */
    char modules_to_save[CFG_MAX_SAVE][64]; /* empty = the classification head */
    int n_modules_to_save;
    LoraPattern rank_pattern[LORA_MAX_PATTERNS]; /* PEFT's rank_pattern: a module's r */
    int n_rank_pattern;
    LoraPattern alpha_pattern[LORA_MAX_PATTERNS]; /* PEFT's alpha_pattern: a module's alpha */
    int n_alpha_pattern;
    char exclude_modules[CFG_MAX_TARGETS][64]; /* PEFT's exclude_modules: names */
    int n_exclude;
    int layers_to_transform[LORA_MAX_LAYERS]; /* empty = every layer */
    int n_layers;
    int trainable_token_indices[LORA_MAX_TOKENS]; /* PEFT's: rows of the embedding that train */
    int n_token_indices;
    int lm_head_token_indices[LORA_MAX_TOKENS]; /* its {"lm_head": ids}: the head's own rows */
    int n_head_token_indices;
    char layers_pattern[LORA_MAX_LAYER_NAMES][32]; /* empty = PEFT's guess */
    int n_layers_pattern;
    /* train */
    float lr;                               /* "learning_rate", 5e-5 */
    int batch_size;                         /* 8 */
    int eval_batch_size;                    /* 0 = 2 * batch_size */
    int epochs;                             /* "num_epochs", 3 */
    int max_steps;                          /* 0 = epochs decide */
    float weight_decay;                     /* 0 */
    float loraplus_lr_ratio;                /* 0 = off; LoRA+: B's learning rate multiple */
    float neftune_noise_alpha;              /* 0 = off; NEFTune's embedding noise */
    float warmup_ratio;                     /* 0 */
    int warmup_steps;                       /* 0; wins over warmup_ratio when > 0 */
    char lr_scheduler[16];                  /* "linear" | "constant" | "cosine" */
    float max_grad_norm;                    /* 1; 0 = no clipping */
    int grad_accum;                         /* "gradient_accumulation_steps", 1 */
    float adam_beta1, adam_beta2, adam_eps; /* 0.9, 0.999, 1e-8 */
    uint64_t seed;                          /* 42 */
    char output_dir[CFG_PATH];              /* "" -> "runs/<config file stem>" by load */
    float dpo_beta;                         /* 0.1 */
    char dpo_loss[16];                      /* "sigmoid" | "ipo" */
    float dpo_label_smoothing;              /* 0 */
    int num_generations;                    /* rloo, grpo: completions per prompt, 2 */
    float rloo_beta;                        /* rloo: the KL penalty's weight, 0.05 */
    int normalize_advantages;               /* rloo: 0 */
    int max_completion_length;              /* rloo, grpo: 256 */
    float temperature;                      /* rloo, grpo: sampling and log-probs, 1 */
    int top_k;                              /* rloo, grpo: 0 (off) */
    float top_p;                            /* rloo, grpo: 1 (off) */
    float min_p;                            /* rloo, grpo: 0 (off) */
    float repetition_penalty;               /* rloo, grpo: 1 (off) */
    float grpo_beta;                        /* grpo: the KL penalty's weight, 0 */
    char grpo_loss_type[16];                /* grpo: "dapo" */
    char scale_rewards[16];                 /* grpo: "group" */
    int mask_truncated_completions;         /* grpo: 0 */
    int num_iterations;                     /* grpo: optimisations per generation, 1 */
    float epsilon, epsilon_high;            /* grpo: the ratio's clipping, 0.2 and -1 (epsilon) */
    char importance_sampling_level[16];     /* grpo: "token" | "sequence" (GSPO) */
    float delta;                            /* grpo: two-sided clipping's cap, 0 (none) */
    float sapo_temperature_pos, sapo_temperature_neg; /* grpo, sapo: 1, 1.05 */
    int use_bias_correction_kl;                       /* grpo: the KL term times the ratio, 1 */
    float vespo_k[2], vespo_lambda[2]; /* grpo, vespo: advantages >= 0, < 0: 2, 3; 3, 2 */
    float off_policy_mask_threshold;   /* grpo: the off-policy sequence mask's delta, 0 (none) */
    float top_entropy_quantile;        /* grpo: the entropy mask's share kept, 1 (none) */
    float entropy_coef;                /* grpo: the entropy bonus's coefficient, 0 (none) */
    int use_adaptive_entropy;          /* grpo: Skywork-OR1's control of entropy_coef, 0 */
    float entropy_coef_min, entropy_coef_max, entropy_coef_delta, entropy_target; /* 0, 1, .005,
                                                                                      .2 */
    char reward_funcs[REWARD_MAX_FUNCS][40]; /* rloo, grpo: [] = the reward model alone */
    int n_reward_funcs;
    float reward_weights[REWARD_MAX_FUNCS]; /* rloo, grpo: a weight a function; [] = 1 each */
    int n_reward_weights;
    float reward_clip_range[2]; /* rloo: [min, max] of a completion's reward; [] = none */
    int n_reward_clip_range;
    char multi_objective_aggregation[24]; /* grpo: "sum_then_normalize" | "normalize_then_sum" */
    char reward_command[CFG_PATH];        /* rloo, grpo: the "command" function's program */
    int soft_punish_cache;                /* soft_overlong_punishment_reward: 0 = unset */
    int repetition_ngram_size;            /* repetition_penalty_reward: 3 */
    float repetition_max_penalty;         /* repetition_penalty_reward: -1 */
    char eval_strategy[8];                /* "epoch" | "steps" | "no" */
    int eval_steps;                       /* used with eval_strategy "steps" */
    char save_strategy[8];                /* "epoch" | "steps" | "no" */
    int save_steps;                       /* used with save_strategy "steps" */
    char metric_for_best[16];   /* "eval_loss" (lower is better) | "accuracy" | "f1" | "reward" */
    int eval_before_training;   /* 1 */
    int logging_steps;          /* 10; 0 = no per-step log lines */
    int threads;                /* 0 = all cores */
    int eval_answers;           /* sft: greedy answers logged per evaluation */
    int max_new_tokens;         /* sft: their length limit */
    int cuda_graphs;            /* TrainGraphs: "auto" = 0 | "on" | "off" */
    int gradient_checkpointing; /* 0 */
} TrainConfig;

/* Zeroes c and fills every key's default. */
void train_config_defaults(TrainConfig *c);

/* Reads a JSON file into c on top of the defaults. Unknown sections or keys, wrong types
 * and out-of-range values are errors naming the file, line and key ("cfg.json:7:
 * train.learning_rte: unknown key (did you mean learning_rate?)"). Relative paths inside
 * the file stay relative to the current working directory, not to the file. An empty
 * train.output_dir becomes "runs/<config file stem>". Cross-key rules are not checked
 * here: call train_config_check once all overrides are applied. */
int train_config_load(TrainConfig *c, const char *path, LfError *err);

/* Applies one "section.key=value" override. The value is parsed as JSON when it parses
 * (numbers, true/false, ["q_lin","v_lin"]); otherwise, and always for string keys, it is
 * the raw text; for list keys a non-JSON value is split at commas. Same checks as load. */
int train_config_set(TrainConfig *c, const char *assignment, LfError *err);

/* Rules that span keys: model is set, labels agree with num_labels, "steps" strategies
 * have a step count. */
int train_config_check(const TrainConfig *c, LfError *err);

/* rloo, grpo: train.reward_funcs and their settings as a RewardFuncs (rewards.h), checked. */
int train_config_reward_funcs(const TrainConfig *c, RewardFuncs *f, LfError *err);

/* Writes every key of c as JSON to path, atomically (fileio.h). Loading
 * the result gives back an identical struct. */
int train_config_save(const TrainConfig *c, const char *path, LfError *err);

/* Writes the Markdown reference of every key (docs/CONFIG.md is this output). */
void train_config_write_docs(FILE *out);

#ifdef __cplusplus
}
#endif
