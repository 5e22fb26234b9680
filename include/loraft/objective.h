/* objective.h: what a model is trained for: the layout of its labels, the loss and its
 * gradient on the network's output, and PEFT's name for the task. One file per objective
 * (src/objective/: classification.c, causal_lm.c, dpo.c, reward.c; grpo.c GRPO's and RLOO's,
 * which differ in their advantages alone); the model core
 * calls them through this table. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/arch.h" /* Plan */

#ifdef __cplusplus
extern "C" {
#endif

struct Objective {
    const char *name;               /* "classification" */
    const char *task_type;          /* PEFT's task_type: "SEQ_CLS" */
    const char *modules_to_save[2]; /* PEFT's default modules_to_save for the task */
    int labels_per_token;           /* labels [B*T] (1) or [B] (0) */
    /* Lays out the network's output and the loss buffers (m->logits, dlogits; the core lays
     * out m->losses, [max_batch * max_len]). */
    void (*plan)(Model *m, Plan *pl);
    /* Checks the host labels of a B x T batch, writes what the loss reads into out (host,
     * [B] or [B*T]) and counts the labels that count into m->n_valid. */
    int (*prepare_labels)(Model *m, const int32_t *labels, int B, int T, int32_t *out,
                          LfError *err);
    /* Batches of preference pairs: the loss is the pair readout's (below) over m->n_valid pairs;
     * 0: it is the sum of m->losses over the labels' rows ([B] or [B*T], as labels_per_token) over
     * m->n_valid. Either way it stays in backend memory until model_read_loss. */
    int pairs;
    /* Host floats per token (Model.host_weights, allocated with the model): where an objective
     * forms per-token weights before uploading them (grpo: 3); 0: none. */
    int host_per_token;
    /* The network's output and m->labels -> the loss; the gradient of the mean loss, scaled by
     * the step's gradient scale (model_step: loss_weight, over m->n_valid unless pairs), is
     * m->dlogits. Queues work and waits for none. */
    int (*loss)(Model *m, LfError *err);
    /* When the loss's gradient is not made by loss() (NULL otherwise): makes it, at the
     * start of model_backward. */
    int (*loss_backward)(Model *m, LfError *err);
    /* What the step's ops depend on beyond the batch's shape, as a key that changes with it (the
     * trainer records a CUDA graph per shape and key; NULL: nothing): RL's. */
    uint64_t (*graph_key)(const Model *m);
};

extern const Objective objective_classification, objective_causal_lm, objective_dpo,
    objective_reward, objective_rloo, objective_grpo;

/* The objective of a task. */
const Objective *objective_for(Task task);

/* ---- shared by the objectives on a decoder's LM head (causal_lm.c) ---- */
void causal_lm_plan(Model *m, Plan *pl);
/* Per-token labels shifted for next-token prediction; counts them into m->n_valid. */
int causal_lm_labels(Model *m, const int32_t *labels, int B, int T, int32_t *out, LfError *err);
/* The fused head over the batch: m->losses; with dh the gradient of hidden into m->dhidden
 * (zeroed first) and its branch's du (model_head_branch), with dw those of a trainable head or
 * of its branch (+=; with dh the branch's term of dhidden too, which without dw waits for
 * lm_head_branch_backward); each row's scaled by m->loss_scale * row_scale[row] (NULL: 1) and the
 * step's gradient scale; entropy (NULL: none) the rows' entropies and their term (ops.h). */
void lm_head_run(Model *m, int dh, int dw, const float *row_scale, const OpsEntropy *entropy);
/* The head's branch's (model_head_branch) A gradient and (dh) its term of dhidden, from the du
 * that lm_head_run wrote with dh and without dw. */
void lm_head_branch_backward(Model *m, int dh);
/* causal-lm's loss and its backward with each token's gradient weighed by row_scale [B*T] (NULL:
 * 1; GRPO's, known before the forward): a training forward writes dhidden in its one pass over
 * the head unless a trainable head or its adapter needs the pass again in backward; the forward
 * writes each token's entropy into entropy [B*T] (NULL: not formed; RL's log). */
void token_weighted_loss(Model *m, const float *row_scale, float *entropy);
void token_weighted_backward(Model *m, const float *row_scale);
/* The objectives whose gradient weighs each row's token losses (DPO; RLOO's and GRPO's where the
 * forward decides the weights): causal-lm's plan plus m->row_scale [max_batch * max_len], which
 * their loss op (or the host) writes; the backward is the fused head's with those weights. */
void row_weighted_plan(Model *m, Plan *pl);
int row_weighted_backward(Model *m, LfError *err);

/* ---- preference pairs and RL (pairs.c): the pair readout ----
 * What a pair objective's loss op leaves for model_read_loss, in backend memory directly after
 * the gradient norm, so one copy brings the step's loss, norm and pair results to the host:
 * [PAIR_STATS] doubles, ops.h's stats (m->pair_sums); [max_batch] each row's score (m->row_scores);
 * [max_batch] DPO's reference log-probs (m->ref_logps). */
#define PAIR_STATS 8 /* doubles */
static inline size_t pair_readout_floats(size_t max_batch) {
    return 2 * PAIR_STATS + 2 * max_batch;
}
/* Points the model's pair buffers into the readout: device (backend memory, NULL while the plan
 * only sizes) and its host copy. */
void pair_readout_place(Model *m, float *device, float *host);
/* After model_read_loss's copy: m->pair_stats from the readout's host copy (RLOO's and GRPO's
 * m->rloo_stats: grpo_readout_loss); the mean loss. */
float pair_readout_loss(Model *m, const float *host);

/* ---- dpo.c ---- */
/* The batch's reference log-probs from the host, ref [B] (the values a reference forward left in
 * m->ref_scores), uploaded without waiting; NULL: none (the loss is 0). */
void dpo_set_reference(Model *m, const float *ref);
/* The reference forward of DPO, RLOO and GRPO: the batch through the same model with its
 * adapters off, in eval mode; its log-probs become the batch's reference on the device (DPO's
 * m->ref_logps, m->ref_scores after the next model_read_loss; GRPO's per-token m->ref_losses).
 * Queues work without waiting. */
int reference_forward(Model *m, LfError *err);

/* ---- grpo.c: GRPO and RLOO ---- */
/* TRL's loss_type and scale_rewards by name; -1 for another name. */
GrpoLoss grpo_loss_named(const char *name);
GrpoScale grpo_scale_named(const char *name);
/* The batches of one optimizer step, sampled together (TRL's generation batch): GRPO's scale
 * batch divides by the std of all their rewards, dapo's loss is a sum over their completion tokens
 * divided by how many there are, and RLOO's advantages are normalised over them. */
typedef struct GrpoGeneration {
    const float *rewards; /* [rows]: every reward of the generation, its batches' in turn */
    const float *logps, *ref_logps; /* RLOO with a KL penalty: [rows] the rows' log-probs, the
                                       sampling policy's and the reference's (rl_row_logps) */
    int rows;
    int first;   /* the batch's first row in it */
    long tokens; /* the completion tokens its rows train on (labelled) */
    int batches; /* the micro-batches a step's loss is the mean of (gradient accumulation) */
} GrpoGeneration;
/* RLOO with a KL penalty, when a batch is sampled (model_set_batch done): each row's log-prob
 * under the policy that sampled it (eval mode) and under the reference (its adapters off), logps
 * and ref_logps [B] on the host, the sums of the forwards' per-token losses read back. */
int rl_row_logps(Model *m, float *logps, float *ref_logps, LfError *err);
/* The batch's rewards, rewards [B] on the host (the reward model's scores of its rows), after
 * model_set_batch; gen: the generation it belongs to (its rows gen->first .. + B; NULL: the batch
 * alone). Every token's share and advantage follow from them and the labels, and for a first
 * pass at beta 0 its gradient weight and the batch's loss (m->grpo_loss ..); uploaded without
 * waiting. With GRPO's KL penalty, reference_forward follows. */
int grpo_set_rewards(Model *m, const float *rewards, const GrpoGeneration *gen, LfError *err);
/* A later pass over a generation's batch (num_iterations > 1), after grpo_set_rewards: old [B*T]
 * on the host, the per-token losses of the batch's first pass (the policy that sampled it: the
 * forward's m->losses), uploaded without waiting; the ratio to them is the loss's. */
int grpo_set_old(Model *m, const float *old, LfError *err);
/* With a KL penalty, in place of reference_forward: ref [B*T] on the host, the per-token losses
 * a reference forward of this batch left (m->ref_losses), uploaded without waiting. */
int grpo_set_reference(Model *m, const float *ref, LfError *err);
/* The readout's part (pair_readout_loss): m->rloo_stats and the loss, from the host's figures
 * or, where the forward decided the weights, the device's sums[7] (ops.h grpo_weights). */
float grpo_readout_loss(Model *m, const double *sums);

/* ---- reward.c ---- */
/* The row a reward model reads its score at, by transformers' rule (LlamaForSequenceClassification
 * in transformers 4.5x: the last token that is not pad_token_id, 0 when there is none):
 * labels [T] the row's ids where it has tokens and < 0 on padding; pad_token_id < 0: none. */
int reward_last_token(const int32_t *labels, int T, int pad_token_id);

#ifdef __cplusplus
}
#endif
