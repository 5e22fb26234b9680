/* gradcheck.h: the finite-difference check of a whole model's gradients that test_model.c and
 * test_sft.c run: for each trainable tensor one random unit direction d, the analytic
 * derivative g.d against central differences (L(w + hd) - L(w - hd)) / 2h, h = 1e-2, in train
 * mode with dropout drawn from a fixed seed (masks are a pure function of it, so the loss is a
 * deterministic function of the weights); tolerance 2% of g.d + 2e-4 (float32 forward). DoRA's
 * A and B are left out. */
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "loraft/model.h"
#include "loraft/rng.h"

static inline float gradcheck_loss(Model *m, uint64_t seed) {
    float loss;
    LfError err;
    model_step(m, seed, 1.0f);
    CHECK_OK(model_forward(m, 1, &loss, &err), &err);
    return loss;
}

/* Runs forward and backward on m's batch, then checks every trainable tensor; returns how many
 * are off (each named on stderr, after `what`) and counts the tensors checked into *checked. */
static inline int gradcheck_tensors(Model *m, uint64_t seed, Rng *rng, const char *what,
                                    int *checked) {
    LfError err;
    int failed = 0;
    *checked = 0;
    model_zero_grad(m);
    gradcheck_loss(m, seed);
    CHECK_OK(model_backward(m, &err), &err);
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        /* DoRA's weight norm is detached (PEFT's): a step of A or B moves it in the finite
         * differences and not in the gradient. Its magnitudes and the biases below it check the
         * input gradients instead; peft's goldens check A's and B's. */
        int detached = m->spec.use_dora && (strstr(p->name, "lora_A") || strstr(p->name, "lora_B"));
        if (!p->grad || detached) continue;
        float *d = malloc(p->numel * sizeof *d), *w0 = malloc(p->numel * sizeof *w0);
        double norm = 0, gd = 0;
        for (size_t j = 0; j < p->numel; j++)
            d[j] = rng_next_uniform(rng) - 0.5f, norm += (double)d[j] * d[j];
        for (size_t j = 0; j < p->numel; j++)
            d[j] /= (float)sqrt(norm), gd += (double)p->grad[j] * d[j];
        memcpy(w0, p->value, p->numel * sizeof *w0);
        const float h = 1e-2f;
        for (size_t j = 0; j < p->numel; j++) p->value[j] = w0[j] + h * d[j];
        double lp = gradcheck_loss(m, seed);
        for (size_t j = 0; j < p->numel; j++) p->value[j] = w0[j] - h * d[j];
        double lm = gradcheck_loss(m, seed);
        memcpy(p->value, w0, p->numel * sizeof *w0);
        double fd = (lp - lm) / (2 * h);
        if (!(fabs(fd - gd) <= 2e-2 * fabs(gd) + 2e-4)) {
            fprintf(stderr, "%s %s: analytic %.6g, finite difference %.6g\n", what, p->name, gd,
                    fd);
            failed++;
        }
        (*checked)++;
        free(d);
        free(w0);
    }
    return failed;
}
