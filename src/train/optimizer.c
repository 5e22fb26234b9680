/* optimizer.c: AdamW, learning-rate schedules and gradient clipping (see optimizer.h). */
#include "loraft/optimizer.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* LoRA+ (PEFT's create_loraplus_optimizer): B and every 1-d tensor (biases, norms) at ratio
 * times the learning rate; ratio 0: everything at the learning rate. */
static float lr_scale(const Param *p, float ratio) {
    return ratio > 0 && (strstr(p->name, "lora_B") || p->ndim == 1) ? ratio : 1.0f;
}

/* The table of trainable tensors in pieces (ops.h), in host memory (NULL when out of
 * memory); *count pieces. */
static AdamWTensor *tensor_table(const Model *m, float b_lr_ratio, int *count) {
    size_t pieces = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].grad) pieces += ops_adamw_pieces(NULL, NULL, 0, m->params[i].numel, 0, 1);
    AdamWTensor *t = pieces <= INT_MAX ? malloc((pieces ? pieces : 1) * sizeof *t) : NULL;
    if (!t) return NULL;
    *count = 0;
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (p->grad)
            *count += (int)ops_adamw_pieces(t + *count, p->value, (size_t)(p->grad - m->grads),
                                            p->numel, p->decay, lr_scale(p, b_lr_ratio));
    }
    return t;
}

int adamw_create(AdamW *opt, const Model *m, float beta1, float beta2, float eps,
                 float weight_decay, float b_lr_ratio, LfError *err) {
    const Ops *o = m->ops;
    memset(opt, 0, sizeof *opt);
    *opt = (AdamW){beta1, beta2, eps, weight_decay, 0, NULL, NULL, m->n_grads, NULL, 0, NULL, 0};
    AdamWTensor *table = tensor_table(m, b_lr_ratio, &opt->n_tensors);
    size_t bytes = (size_t)opt->n_tensors * sizeof *table;
    opt->m = o->alloc(opt->n * sizeof(float));
    opt->v = o->alloc(opt->n * sizeof(float));
    opt->tensors = o->alloc(bytes);
    opt->scratch = o->alloc(OPS_ADAMW_SCRATCH * sizeof(double));
    if (!table || !opt->m || !opt->v || !opt->tensors || !opt->scratch) {
        free(table);
        adamw_free(opt, m);
        return lf_fail(err, "out of memory for optimizer state (%zu values)", m->n_grads);
    }
    o->upload(opt->tensors, table, bytes);
    free(table);
    return 0;
}

void adamw_free(AdamW *opt, const Model *m) {
    m->ops->free(opt->m);
    m->ops->free(opt->v);
    m->ops->free(opt->tensors);
    m->ops->free(opt->scratch);
    opt->m = opt->v = NULL;
    opt->tensors = NULL;
    opt->scratch = NULL;
}

void adamw_update(AdamW *opt, Model *m, float lr, float max_norm) {
    opt->step++;
    AdamWHyper h = {lr, opt->beta1, opt->beta2, opt->eps, opt->weight_decay, max_norm, opt->step};
    if (opt->group) m->ops->group_sum(m->grads, m->n_grads);
    m->ops->adamw_step(opt->tensors, opt->n_tensors, m->grads, opt->m, opt->v, opt->n, h,
                       m->grad_norm, opt->scratch);
}

int schedule_parse(const char *s, Schedule *out, LfError *err) {
    static const char *names[] = {"linear", "constant", "cosine"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) return *out = (Schedule)i, 0;
    return lf_fail(err, "unknown lr_scheduler '%s' (expected linear, constant or cosine)", s);
}

float schedule_lr(Schedule kind, float base_lr, int step, int total, int warmup) {
    if (step < warmup) return base_lr * (float)step / (float)(warmup > 1 ? warmup : 1);
    if (kind == SCHEDULE_CONSTANT) return base_lr;
    double span = total - warmup > 1 ? total - warmup : 1;
    if (kind == SCHEDULE_LINEAR) {
        double f = (total - step) / span;
        return base_lr * (float)(f > 0 ? f : 0);
    }
    double progress = (step - warmup) / span;
    return base_lr * (float)(0.5 * (1.0 + cos(M_PI * (progress < 1 ? progress : 1))));
}
