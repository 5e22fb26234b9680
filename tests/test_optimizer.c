/* test_optimizer.c: the learning-rate schedules against HF's formulas worked out by hand
 * (get_linear_schedule_with_warmup, get_cosine_schedule_with_warmup,
 * get_constant_schedule_with_warmup), and gradient clipping as torch's clip_grad_norm_.
 * AdamW itself is checked against torch in test_golden and against a scalar loop in
 * test_ops. Tolerance: 1e-6 absolute on learning rates and clipped gradients. */
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

static void clipping(void) {
    float g[2] = {3, 4};
    Model m = {0};
    m.ops = &ops_cpu, m.grads = g, m.n_grads = 2;
    CHECK_CLOSE(clip_grad_norm(&m, 10.0f), 5.0, 1e-6, 0); /* below the limit: untouched */
    CHECK(g[0] == 3 && g[1] == 4);
    CHECK_CLOSE(clip_grad_norm(&m, 1.0f), 5.0, 1e-6, 0); /* scaled by 1 / (5 + 1e-6) */
    CHECK_CLOSE(g[0], 0.6, 1e-6, 0);
    CHECK_CLOSE(g[1], 0.8, 1e-6, 0);
    clip_grad_norm(&m, 0.0f); /* 0: no clipping */
    CHECK_CLOSE(g[0], 0.6, 1e-6, 0);
}

int main(void) {
    schedules();
    clipping();
    return check_report();
}
