/* test_optimizer.c: the learning-rate schedules against HF's formulas worked out by hand
 * (get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup,
 * get_constant_schedule_with_warmup), and adamw_update's clipping as torch's clip_grad_norm_:
 * the fused clip gives the same bits as scaling the gradients first. AdamW itself is checked
 * against torch in test_golden and against a scalar loop in test_ops. Tolerance: 1e-6
 * absolute on learning rates, 1e-12 relative on the norm, bit-equal weights. */
#include <string.h>

#include "check.h"
#include "loraft/optimizer.h"

static void schedules(void) {
    /* linear, 10 steps, 2 warm-up: 0, 0.5, then 1 decaying to 0 at step 10 */
    const double linear[] = {0, 0.5, 1, 0.875, 0.75, 0.625, 0.5, 0.375, 0.25, 0.125, 0};
    for (int s = 0; s <= 10; s++)
        CHECK_CLOSE(schedule_lr(SCHEDULE_LINEAR, 1.0f, s, 10, 2), linear[s], 1e-6, 0);
    /* cosine, no warm-up: 0.5 * (1 + cos(pi * step / total)) */
    CHECK_CLOSE(schedule_lr(SCHEDULE_COSINE, 2.0f, 0, 10, 0), 2.0, 1e-6, 0);
    CHECK_CLOSE(schedule_lr(SCHEDULE_COSINE, 2.0f, 5, 10, 0), 1.0, 1e-6, 0);
    CHECK_CLOSE(schedule_lr(SCHEDULE_COSINE, 2.0f, 10, 10, 0), 0.0, 1e-6, 0);
    /* constant with warm-up */
    CHECK_CLOSE(schedule_lr(SCHEDULE_CONSTANT, 1e-3f, 1, 10, 4), 2.5e-4, 1e-9, 0);
    CHECK_CLOSE(schedule_lr(SCHEDULE_CONSTANT, 1e-3f, 7, 10, 4), 1e-3, 1e-9, 0);
    Schedule k;
    LfError err;
    CHECK(schedule_parse("cosine", &k, &err) == 0 && k == SCHEDULE_COSINE);
    CHECK(schedule_parse("cosin", &k, &err) != 0);
}

/* A bare CPU model holding three trainable tensors of odd sizes, one without decay and one
 * longer than an adamw_step piece, gradients g scaled by gscale, fixed values. */
enum { N0 = 7, N1 = OPS_ADAMW_PIECE + 5, N2 = 3, NALL = N0 + N1 + N2 };
typedef struct Toy {
    Model m;
    Param p[3];
    float values[NALL], grads[NALL];
    double norm;
} Toy;

static void toy_init(Toy *t, float gscale) {
    const size_t numel[3] = {N0, N1, N2};
    memset(t, 0, sizeof *t);
    for (int i = 0; i < NALL; i++) {
        t->values[i] = (float)sin(0.37 * i);
        t->grads[i] = gscale * (float)cos(1.3 * i);
    }
    size_t off = 0;
    for (int i = 0; i < 3; i++) {
        t->p[i] = (Param){
            .numel = numel[i], .value = t->values + off, .grad = t->grads + off, .decay = i != 1};
        off += numel[i];
    }
    t->m = (Model){.ops = &ops_cpu,
                   .params = t->p,
                   .n_params = 3,
                   .grads = t->grads,
                   .n_grads = NALL,
                   .grad_norm = &t->norm};
}

/* adamw_update(max_norm) against clip_grad_norm_ done by hand first, then adamw_update
 * without clipping: the same bits, three steps, clipping active or not. */
static void fused_clip(float gscale, float max_norm) {
    Toy *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    AdamW oa, ob;
    LfError err;
    toy_init(a, gscale), toy_init(b, gscale);
    CHECK_OK(adamw_create(&oa, &a->m, 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f, &err), &err);
    CHECK_OK(adamw_create(&ob, &b->m, 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f, &err), &err);
    int clipped = 0;
    for (int step = 0; step < 3; step++) {
        double ss = 0;
        for (int i = 0; i < NALL; i++) ss += (double)b->grads[i] * b->grads[i];
        double norm = sqrt(ss), coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (int i = 0; i < NALL; i++) b->grads[i] *= (float)coef;
        clipped += coef < 1.0;
        adamw_update(&oa, &a->m, 1e-2f, max_norm);
        adamw_update(&ob, &b->m, 1e-2f, 0.0f);
        CHECK_CLOSE(a->norm, norm, 0, 1e-12);
        CHECK(!memcmp(a->values, b->values, sizeof a->values));
        memcpy(b->grads, a->grads,
               sizeof b->grads); /* the fused step left its grads as they were */
    }
    CHECK(clipped == (gscale > 1 ? 3 : 0));
    float ma[NALL], mb[NALL];
    memcpy(ma, oa.m, sizeof ma), memcpy(mb, ob.m, sizeof mb);
    CHECK(!memcmp(ma, mb, sizeof ma));
    adamw_free(&oa, &a->m), adamw_free(&ob, &b->m);
    free(a), free(b);
}

/* the norm as torch's clip_grad_norm_ returns it; nothing moves when it is not finite */
static void norm_and_nonfinite(void) {
    Toy *t = malloc(sizeof *t);
    AdamW o;
    LfError err;
    toy_init(t, 1.0f);
    for (int i = 0; i < NALL; i++) t->grads[i] = 0;
    t->grads[0] = 3, t->grads[NALL - 1] = 4;
    CHECK_OK(adamw_create(&o, &t->m, 0.9f, 0.999f, 1e-8f, 0.0f, 0.0f, &err), &err);
    adamw_update(&o, &t->m, 1e-2f, 1.0f);
    CHECK_CLOSE(t->norm, 5.0, 1e-12, 0);
    float before[NALL];
    memcpy(before, t->values, sizeof before);
    t->grads[5] = NAN;
    adamw_update(&o, &t->m, 1e-2f, 1.0f);
    CHECK(isnan(t->norm));
    CHECK(!memcmp(before, t->values, sizeof before));
    t->grads[5] = INFINITY;
    adamw_update(&o, &t->m, 1e-2f, 0.0f);
    CHECK(isinf(t->norm));
    CHECK(!memcmp(before, t->values, sizeof before));
    adamw_free(&o, &t->m);
    free(t);
}

int main(void) {
    schedules();
    fused_clip(100.0f, 1.0f); /* norm ~ 1e4: clipped every step */
    fused_clip(1e-3f, 1.0f);  /* below the limit: not clipped */
    norm_and_nonfinite();
    return check_report();
}
