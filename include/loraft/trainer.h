/* trainer.h: a whole fine-tuning run (or an evaluation) from a TrainConfig.
 *
 * Loads the model, tokenizer and data, tokenizes once, evaluates before training, trains
 * with AdamW, evaluates and checkpoints every epoch (or every N steps), keeps the best
 * model by the chosen metric, and stops with a clear error on a NaN/Inf loss or evaluation
 * while keeping the last good checkpoint. The output directory (locked while a run uses
 * it; layout in rundir.h):
 *   OUT/train_config.json    the effective training config
 *   OUT/metrics.jsonl        one JSON object per log step and per evaluation
 *   OUT/last                 latest checkpoint: adapter or model + training state (--resume)
 *   OUT/best                 best checkpoint so far (adapter for LoRA, model otherwise)
 * Nothing is written before the config, model, data and resumed state are validated.
 */
#pragma once
#include <stdio.h>

#include "loraft/error.h"
#include "loraft/model.h"
#include "loraft/optimizer.h"
#include "loraft/train_config.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct RunOptions {
    const char *resume; /* a checkpoint directory of an earlier run (OUT/last), or NULL */
    int overwrite;      /* a fresh run may replace the run in a non-empty output_dir */
} RunOptions;

/* Progress and results go to out. Under model.devices > 1 a process a device
 * (data_parallel.h): out must then be a file, and the calling process must run one thread. */
int trainer_run(const TrainConfig *cfg, const RunOptions *opt, FILE *out, LfError *err);

/* Evaluates cfg's model (plus the adapter in adapter_dir, may be NULL) on the validation
 * file and prints the result to out. A NaN or infinite loss or logit is an error. Under
 * model.devices > 1 each device evaluates a share of the batches, as trainer_run's
 * processes: out must be a file, and the calling process must run one thread. */
int trainer_evaluate(const TrainConfig *cfg, const char *adapter_dir, FILE *out, LfError *err);

/* A micro-batch's shape: B, T, whether its mask hides a token (attention then gets it) and the
 * rows the LM head lists (Model.n_head_rows: its chunks); B 0: none. key: the objective's
 * (Objective.graph_key), what else its ops depend on. */
typedef struct TrainShape {
    int B, T, padded, head_rows;
    uint64_t key;
} TrainShape;
/* train.cuda_graphs; the shape of the last micro-batch (auto records one when it repeats); the
 * shape whose step each of the backend's graph slots holds, recorded by this TrainStep (start
 * zeroed), and the slot a new shape takes next. One TrainStep at a time owns the slots. */
typedef enum TrainGraphs { GRAPHS_AUTO, GRAPHS_ON, GRAPHS_OFF } TrainGraphs;
typedef struct TrainStep {
    TrainGraphs graphs;
    TrainShape last, slot[OPS_GRAPH_TRAIN_SLOTS];
    int next;
} TrainStep;

/* Queues one micro-batch of training on m, whose batch model_set_batch has set: model_step(m,
 * seed, loss_weight) (loss_weight: 1 / accumulation steps), forward, backward, and at a step's
 * end (opt non-NULL) adamw_update(opt, m, lr, max_norm). Where the backend has graphs
 * (Ops.graph_begin) and s allows it, forward and backward are recorded once per shape and
 * replayed for every later micro-batch of that shape: the same ops with the same arguments in
 * the same order, the step's scalars read on the device, so the same bits. auto records a shape
 * when it repeats, on at once; under model.attention cudnn, which plans a new shape on its
 * first use and cannot inside a recording, on records repeats only, as auto. A shape's slot
 * that the backend dropped is run op by op, then recorded again. Nothing waits for the device:
 * model_read_loss does. */
int train_micro_step(TrainStep *s, Model *m, uint64_t seed, float loss_weight, AdamW *opt, float lr,
                     float max_norm, LfError *err);

#ifdef __cplusplus
}
#endif
