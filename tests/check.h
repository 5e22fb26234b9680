/* check.h: the few assertions the C tests use. A test file includes this, calls
 * CHECK/CHECK_NEAR freely, and ends main with `return check_report();`: it prints
 * "N passed, N failed" and returns non-zero when anything failed. skip() exits 77,
 * which CTest reports as skipped. */
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "loraft/model_config.h" /* rope_freqs_init */
#include "loraft/ops.h"

static int check_passed, check_failed;

/* The rope ops' frequencies of HF's plain RoPE with base theta over the first D dims of each head
 * (partial rotary embeddings; D = HS: all), cos and sin times scale (YaRN's attention factor;
 * rope_plain: 1) (theta 0: NULL, no rotation): a table of the test's own, valid until the next
 * call. */
static inline const RopeFreqs *rope_partial(float theta, int D, float scale) {
    static RopeFreqs r;
    rope_freqs_init(&r, theta, D, NULL);
    r.scale = scale;
    return theta > 0.0f ? &r : NULL;
}
static inline const RopeFreqs *rope_scaled(float theta, int HS, float scale) {
    return rope_partial(theta, HS, scale);
}
static inline const RopeFreqs *rope_plain(float theta, int HS) {
    return rope_scaled(theta, HS, 1.0f);
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond)                                                                                  \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

/* A libloraft call that must succeed (return 0); on failure prints the LfError message. */
#define CHECK_OK(call, err)                                                                        \
    do {                                                                                           \
        if ((call) == 0)                                                                           \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: %s\n", __FILE__, __LINE__, #call,            \
                    (err)->msg);                                                                   \
        }                                                                                          \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, atol, rtol)                                                              \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (fabs(a_ - b_) <= (atol) + (rtol)*fabs(b_))                                             \
            check_passed++;                                                                        \
        else {                                                                                     \
            check_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s = %.9g, expected %s = %.9g (atol %g, rtol %g)\n", __FILE__, \
                    __LINE__, #a, a_, #b, b_, (double)(atol), (double)(rtol));                     \
        }                                                                                          \
    } while (0)

/* The larger of a running worst difference and d, a NaN d the largest: fmax passes over a NaN, so
 * a test that keeps its worst with fmax cannot fail on one. */
static inline double worse(double worst, double d) {
    return d > worst || isnan(d) ? d : worst;
}

static inline int check_report(void) {
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return check_failed ? 1 : 0;
}

static inline void skip(const char *why) {
    printf("SKIP: %s\n", why);
    exit(77);
}

/* GPU tests start here: skip (77) without a CUDA device, fail when a driver is there but
 * cannot run this build (a skip would hide that). */
static inline void require_cuda_device(void) {
    LfError err;
    int n = ops_cuda_device_count(&err);
    if (n < 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    if (n == 0) skip("no CUDA device");
}

/* ../shared/data, or $LORAFT_SHARED_DATA when CTest sets it. */
static inline const char *shared_data_dir(void) {
    const char *d = getenv("LORAFT_SHARED_DATA");
    return d ? d : "../shared/data";
}
