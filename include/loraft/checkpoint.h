/* checkpoint.h: what a training run writes and reads back.
 *
 * - a PEFT adapter directory (adapter_config.json + adapter_model.safetensors with PEFT's
 *   tensor names) that PeftModel.from_pretrained loads unchanged;
 * - an HF model directory (config.json + model.safetensors + tokenizer files), with LoRA
 *   merged into the weights on request (`loraft merge`), or the fully trained model;
 * - the training state for --resume: every trainable tensor, the AdamW moments, the step.
 * Every file is written atomically; how checkpoint directories are committed is
 * rundir.h's job. */
#pragma once
#include <stddef.h>

#include "loraft/model.h"
#include "loraft/optimizer.h"

#ifdef __cplusplus
extern "C" {
#endif

int adapter_save(Model *m, const char *dir, const char *base_model, LfError *err);
/* Reads dir/adapter_config.json into spec; base_model (may be NULL) gets
 * base_model_name_or_path. */
int adapter_read_config(TrainSpec *spec, char *base_model, size_t cap, const char *dir,
                        LfError *err);
/* peft's trainable_token_indices of an adapter_config (config, read from path) into spec: a list
 * (the embedding's rows), or {module: list} where "lm_head" (or a name ending ".lm_head") gives
 * the head's own rows and one other name the embedding's (the model checks it). */
struct cJSON;
int adapter_token_indices(const struct cJSON *config, const char *path, TrainSpec *spec,
                          LfError *err);
/* peft's TrainableTokens adapter_config (TrainableTokensConfig; strategy tokens) into spec:
 * token_indices, the rows of each of target_modules (a name or a list: the token embedding's,
 * none naming the embedding, and lm_head for an untied head's), on a language model (its
 * task_type is null: causal-lm). */
int adapter_tokens_config(const struct cJSON *config, const char *path, TrainSpec *spec,
                          LfError *err);
/* Loads dir/adapter_model.safetensors into a model built with adapter_read_config's spec. */
int adapter_load_weights(Model *m, const char *dir, LfError *err);

/* Builds a model to run from an HF directory or a .gguf file plus, when adapter_dir is not NULL, a
 * PEFT adapter (nothing else trains; without one nothing does: no gradients), its frozen dense
 * weights stored as base_dtype (f32 ones as bf16 under precision bf16), computing in `precision`
 * (model.h). A directory whose config names LlamaForSequenceClassification (a
 * merged reward model) is a reward model. max_len <= 0: the model's max_position_embeddings. */
int model_open(Model *m, const char *model_dir, const char *adapter_dir, BaseDtype base_dtype,
               Precision precision, const Ops *ops, int max_batch, int max_len, LfError *err);

/* An HF model directory; merge folds LoRA into the base weights of the written copy (a reward
 * model's: a LlamaForSequenceClassification with one label and its score head). The
 * tokenizer files are copied from tokenizer_dir (NULL: none); a tokenizer_dir ending in .gguf
 * means the folder of that file, which must hold a tokenizer.json (checked before anything is
 * written: loraft does not write GGUF tokenizer metadata as a tokenizer.json). */
int model_dir_save(Model *m, const char *dir, const char *tokenizer_dir, int merge, LfError *err);

/* The metrics a best checkpoint is chosen by (train.metric_for_best's choices). */
#define CHECKPOINT_METRICS "eval_loss|accuracy|f1|reward"

typedef struct TrainState {
    int global_step, epoch; /* optimizer steps done; epochs finished */
    int evaluated;          /* an evaluation chose best_checkpoint; best_metric is its score */
    double best_metric;
    char metric[16];           /* the metric_for_best that best_metric measures */
    char best_checkpoint[256]; /* "checkpoints/step-N" inside the output dir, "" if none */
} TrainState;

/* dir/training_state.safetensors + dir/trainer_state.json. Loading checks every key's
 * type and range (errors name the file and key) and that the state is from a run with
 * the same strategy and trainable values. */
int train_state_save(Model *m, const AdamW *opt, const TrainState *ts, const char *dir,
                     LfError *err);
int train_state_load(Model *m, AdamW *opt, TrainState *ts, const char *dir, LfError *err);

/* Moves a completely written directory tmp to its final name, exchanging it with an old
 * one in a single rename (renameat2 RENAME_EXCHANGE), so final_dir is never missing. */
int dir_commit(const char *tmp, const char *final_dir, LfError *err);
/* rm -r */
int dir_remove(const char *path, LfError *err);

#ifdef __cplusplus
}
#endif
