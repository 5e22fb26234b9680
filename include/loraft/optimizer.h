/* optimizer.h: AdamW over a model's trainable parameters, the learning-rate schedule and
 * gradient clipping, with the semantics of torch.optim.AdamW and HF Trainer. */
#pragma once
#include <stddef.h>

#include "loraft/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AdamW {
    float beta1, beta2, eps, weight_decay;
    int step;     /* optimizer steps taken */
    float *m, *v; /* backend memory, one slot per trainable value (same layout as grads) */
    size_t n;
    AdamWTensor *tensors; /* backend memory: the trainable tensors in pieces (ops.h adamw_step) */
    int n_tensors;
    double *scratch; /* backend memory, OPS_ADAMW_SCRATCH doubles */
    int group;       /* data parallel: the gradients are summed over the devices first */
} AdamW;

/* b_lr_ratio > 0: LoRA+ (PEFT's create_loraplus_optimizer with loraplus_lr_ratio): every LoRA B
 * and every 1-d trainable tensor (biases, norm weights) steps at b_lr_ratio times the learning
 * rate, the rest at it; 0: all at it. */
int adamw_create(AdamW *opt, const Model *m, float beta1, float beta2, float eps,
                 float weight_decay, float b_lr_ratio, LfError *err);
void adamw_free(AdamW *opt, const Model *m);
/* One step at learning rate lr over every trainable parameter, in one op call (after
 * Ops.group_sum of the gradients where opt->group is set): the gradients clipped to a global L2
 * norm of max_norm first (no clipping when max_norm <= 0), as torch.nn.utils.clip_grad_norm_ then
 * torch.optim.AdamW; weight decay only on parameters with decay set. The norm before clipping is
 * left in backend memory at m->grad_norm (nothing waits for it: model_read_loss reads it with the
 * loss); when it is not finite nothing is updated. */
void adamw_update(AdamW *opt, Model *m, float lr, float max_norm);

typedef enum Schedule { SCHEDULE_LINEAR, SCHEDULE_CONSTANT, SCHEDULE_COSINE } Schedule;
int schedule_parse(const char *s, Schedule *out, LfError *err);
/* HF's schedulers: learning rate for optimizer step `step` (0-based) of `total`. */
float schedule_lr(Schedule kind, float base_lr, int step, int total, int warmup);

#ifdef __cplusplus
}
#endif
