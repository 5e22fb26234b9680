/* optimizer.c: AdamW, learning-rate schedules and gradient clipping (see optimizer.h). */
#include "loraft/optimizer.h"

#include <math.h>
#include <string.h>

int adamw_create(AdamW *opt, const Model *m, float beta1, float beta2, float eps,
                 float weight_decay, LfError *err) {
    memset(opt, 0, sizeof *opt);
    *opt = (AdamW){beta1, beta2, eps, weight_decay, 0, NULL, NULL, m->n_grads};
    if (!opt->n) return 0;
    opt->m = m->ops->alloc(opt->n * sizeof(float));
    opt->v = m->ops->alloc(opt->n * sizeof(float));
    if (!opt->m || !opt->v) {
        adamw_free(opt, m);
        return lf_fail(err, "out of memory for optimizer state (%zu values)", m->n_grads);
    }
    return 0;
}

void adamw_free(AdamW *opt, const Model *m) {
    m->ops->free(opt->m);
    m->ops->free(opt->v);
    opt->m = opt->v = NULL;
}

void adamw_update(AdamW *opt, Model *m, float lr) {
    opt->step++;
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        if (!p->grad) continue;
        size_t off = (size_t)(p->grad - m->grads);
        m->ops->adamw_step(p->value, p->grad, opt->m + off, opt->v + off, lr, opt->beta1,
                           opt->beta2, opt->eps, p->decay ? opt->weight_decay : 0.0f, opt->step,
                           p->numel);
    }
}

double clip_grad_norm(Model *m, float max_norm) {
    if (!m->n_grads) return 0.0;
    double norm = sqrt(m->ops->sum_squares(m->grads, m->n_grads));
    double coef = max_norm / (norm + 1e-6);
    if (max_norm > 0 && coef < 1.0) m->ops->scale(m->grads, (float)coef, m->n_grads);
    return norm;
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
