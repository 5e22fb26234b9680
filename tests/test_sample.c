/* test_sample.c: the token sampler (sample.h). The distribution it draws from (sampler_probs)
 * against a reference written here the slow way (full sorts; top-p as "the smallest set, most
 * probable first, whose probability reaches p"); draws against that distribution over many
 * samples; greedy; same seed, same tokens; the top-k/top-p/min-p edges and ties as transformers
 * resolves them; the repetition penalty (sampler_penalize); and the errors. The statistical checks
 * are deterministic (fixed seeds) and their bounds are 4 standard deviations, so a correct sampler
 * fails one with a chance of about 6e-5 per token checked for a new seed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "loraft/rng.h"
#include "loraft/sample.h"

/* Normal-ish logits of scale `scale` from a seeded generator (sum of 4 uniforms). */
static void random_logits(float *l, int v, uint64_t seed, float scale) {
    Rng r = {seed, 0};
    for (int i = 0; i < v; i++) {
        float s = 0;
        for (int j = 0; j < 4; j++) s += rng_next_uniform(&r);
        l[i] = scale * (s - 2.0f) * 1.7f;
    }
}

static int desc_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x > y ? -1 : x < y;
}

typedef struct {
    double x;
    int id;
} Ref;

/* most probable first; among equals the higher id first (the lower id is dropped first) */
static int ref_order(const void *pa, const void *pb) {
    const Ref *a = pa, *b = pb;
    if (a->x != b->x) return a->x > b->x ? -1 : 1;
    return b->id - a->id;
}

/* The filtered distribution, computed the obvious way: min-p last, on the weights top-p kept. */
static void reference_probs(const float *logits, int v, const SampleConfig *c, double *p) {
    double *x = malloc((size_t)v * sizeof *x), *sorted = malloc((size_t)v * sizeof *x);
    Ref *r = malloc((size_t)v * sizeof *r);
    for (int i = 0; i < v; i++) x[i] = (double)logits[i] / c->temperature;
    memcpy(sorted, x, (size_t)v * sizeof *x);
    qsort(sorted, (size_t)v, sizeof *sorted, desc_double);
    double thr = c->top_k > 0 && c->top_k < v ? sorted[c->top_k - 1] : -INFINITY, z = 0;
    int n = 0;
    for (int i = 0; i < v; i++) {
        p[i] = 0;
        if (x[i] >= thr && x[i] > -INFINITY) r[n++] = (Ref){x[i], i}, z += exp(x[i] - sorted[0]);
    }
    qsort(r, (size_t)n, sizeof *r, ref_order);
    double cum = 0, kept = 0;
    for (int i = 0; i < n; i++) {
        double q = exp(r[i].x - sorted[0]);
        p[r[i].id] = q, kept += q;
        cum += q / z;
        if (c->top_p < 1.0f && cum >= c->top_p) break;
    }
    for (int i = 0; i < v; i++)
        if (p[i] > 0 && p[i] < c->min_p) kept -= p[i], p[i] = 0; /* p[i] = exp(x - max) still */
    for (int i = 0; i < v; i++) p[i] /= kept;
    free(x);
    free(sorted);
    free(r);
}

/* The min_p of the samplers the checks below make (0: off), set by the min-p ones. */
static float min_p;

static Sampler *make(float t, int k, float p, uint64_t seed, int v) {
    SampleConfig c = {t, k, p, min_p, 1.0f, seed};
    Sampler *s = NULL;
    LfError err;
    CHECK_OK(sampler_create(&s, &c, v, &err), &err);
    return s;
}

/* One draw; only a failure is counted (a test makes thousands). */
static int32_t next(Sampler *s, const float *logits) {
    int32_t tok = -1;
    LfError err;
    if (sampler_next(s, logits, &tok, &err)) {
        check_failed++;
        fprintf(stderr, "sampler_next: %s\n", err.msg);
    }
    return tok;
}

/* sampler_probs equals the reference to 1e-12 and sums to 1. */
static void check_probs(const float *logits, int v, float t, int k, float p) {
    SampleConfig c = {t, k, p, min_p, 1.0f, 1};
    Sampler *s = make(t, k, p, 1, v);
    double *got = malloc((size_t)v * sizeof *got), *want = malloc((size_t)v * sizeof *want);
    LfError err;
    CHECK_OK(sampler_probs(s, logits, got, &err), &err);
    reference_probs(logits, v, &c, want);
    double maxdiff = 0, sum = 0;
    for (int i = 0; i < v; i++) {
        maxdiff = worse(maxdiff, fabs(got[i] - want[i]));
        sum += got[i];
    }
    CHECK_CLOSE(maxdiff, 0.0, 1e-12, 0);
    CHECK_CLOSE(sum, 1.0, 1e-12, 0);
    free(got);
    free(want);
    sampler_free(s);
}

static void test_greedy(void) {
    float l[] = {0.5f, 3.0f, 3.0f, -1.0f, -INFINITY};
    Sampler *s = make(0.0f, 0, 1.0f, 7, 5);
    for (int i = 0; i < 3; i++) CHECK(next(s, l) == 1); /* lowest id among equal maxima */
    sampler_free(s);
    s = make(0.0f, 1, 0.01f, 7, 5); /* top-k and top-p cannot change the argmax */
    CHECK(next(s, l) == 1);
    float masked[] = {-INFINITY, -INFINITY, -5.0f};
    sampler_free(s);
    s = make(0.0f, 0, 1.0f, 7, 3);
    CHECK(next(s, masked) == 2);
    double p[3];
    LfError err;
    CHECK_OK(sampler_probs(s, masked, p, &err), &err);
    CHECK(p[0] == 0 && p[1] == 0 && p[2] == 1);
    sampler_free(s);
}

static void test_determinism(void) {
    enum { V = 1000, N = 500 };
    static float l[V];
    random_logits(l, V, 3, 2.0f);
    Sampler *a = make(0.8f, 0, 0.95f, 42, V), *b = make(0.8f, 0, 0.95f, 42, V);
    Sampler *c = make(0.8f, 0, 0.95f, 43, V);
    static double p[V];
    LfError err;
    int same = 1, differs = 0;
    for (int i = 0; i < N; i++) {
        int32_t ta = next(a, l);
        if (i % 7 == 0) CHECK_OK(sampler_probs(a, l, p, &err), &err); /* draws nothing */
        same &= ta == next(b, l);
        differs |= ta != next(c, l);
    }
    CHECK(same);
    CHECK(differs);
    sampler_free(a);
    sampler_free(b);
    sampler_free(c);
}

static void test_against_reference(void) {
    enum { V = 49152 };
    static float l[V];
    random_logits(l, 1000, 11, 3.0f);
    check_probs(l, 1000, 1.0f, 0, 1.0f);
    check_probs(l, 1000, 0.7f, 0, 0.9f);
    check_probs(l, 1000, 1.3f, 200, 0.5f);
    check_probs(l, 1000, 1.0f, 1, 1.0f);
    check_probs(l, 1000, 0.5f, 999, 0.99f);
    check_probs(l, 1000, 2.0f, 37, 0.0f);
    random_logits(l, V, 12, 4.0f); /* SmolLM2's vocabulary size */
    check_probs(l, V, 1.0f, 50, 1.0f);
    check_probs(l, V, 0.7f, 50, 0.9f);
    check_probs(l, V, 1.0f, 0, 0.95f);
    check_probs(l, V, 1e-3f, 0, 1.0f);
    check_probs(l, V, 30.0f, 0, 0.5f);       /* nearly flat: every token in top-p's first bin */
    check_probs(l, V, 0.05f, 0, 0.9999999f); /* spread over all bins, p next to 1 */
    check_probs(l, V, 0.3f, 0, 0.97f);
    min_p = 0.05f; /* min-p, alone and after top-k and top-p */
    check_probs(l, V, 1.0f, 0, 1.0f);
    check_probs(l, V, 0.7f, 50, 0.9f);
    check_probs(l, V, 1.5f, 0, 0.99f);
    min_p = 1.0f; /* the most probable token alone */
    check_probs(l, V, 1.0f, 0, 1.0f);
    min_p = 0.0f;
}

/* Empirical frequencies of n draws against sampler_probs, within 4 sigma; filtered-out tokens
 * are never drawn. */
static void check_frequencies(const float *l, int v, float t, int k, float p, int n) {
    Sampler *s = make(t, k, p, 1234 + (uint64_t)k, v);
    double *q = malloc((size_t)v * sizeof *q);
    long *count = calloc((size_t)v, sizeof *count);
    LfError err;
    CHECK_OK(sampler_probs(s, l, q, &err), &err);
    for (int i = 0; i < n; i++) {
        int32_t tok = next(s, l);
        if (tok >= 0 && tok < v) count[tok]++;
    }
    int bad = 0;
    for (int i = 0; i < v; i++) {
        double mean = n * q[i], sd = sqrt(n * q[i] * (1 - q[i]));
        if (q[i] == 0 ? count[i] != 0 : fabs(count[i] - mean) > 4 * sd + 1) {
            bad++;
            fprintf(stderr, "  token %d: %ld draws of %d, expected %.1f +- %.1f\n", i, count[i], n,
                    mean, sd);
        }
    }
    CHECK(bad == 0);
    free(q);
    free(count);
    sampler_free(s);
}

static void test_statistics(void) {
    float l[16] = {2.0f,  1.5f,  1.5f, 1.0f, 0.3f,      0.0f, -0.5f, -1.0f,
                   -2.0f, -3.0f, 0.7f, 1.2f, -INFINITY, 0.1f, -0.2f, 2.2f};
    check_frequencies(l, 16, 1.0f, 0, 1.0f, 200000);
    check_frequencies(l, 16, 0.7f, 6, 1.0f, 200000);
    check_frequencies(l, 16, 1.5f, 0, 0.8f, 200000);
    check_frequencies(l, 16, 1.0f, 8, 0.6f, 200000);
    check_frequencies(l, 16, 1.0f, 2, 1.0f, 200000);
    float tie[5] = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
    check_frequencies(tie, 5, 1.0f, 1, 1.0f, 60000); /* top-1 keeps all three maxima */
    min_p = 0.2f; /* the tokens within ln 5 = 1.61 of the largest logit, 2.2, alone */
    check_frequencies(l, 16, 1.0f, 0, 1.0f, 200000);
    min_p = 0.0f;
}

static void expect_probs(const float *l, int v, float t, int k, float p, const double *want) {
    Sampler *s = make(t, k, p, 5, v);
    double got[8];
    LfError err;
    CHECK_OK(sampler_probs(s, l, got, &err), &err);
    for (int i = 0; i < v; i++) CHECK_CLOSE(got[i], want[i], 1e-15, 0);
    sampler_free(s);
}

static void test_edges(void) {
    float l[5] = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
    double z = exp(-1.0) + 3 + exp(-2.0);
    double full[5] = {exp(-1.0) / z, 1 / z, 1 / z, 1 / z, exp(-2.0) / z};
    expect_probs(l, 5, 1.0f, 5, 1.0f, full);  /* k = V is off */
    expect_probs(l, 5, 1.0f, 50, 1.0f, full); /* k > V too */
    expect_probs(l, 5, 1.0f, 0, 1.0f, full);  /* p = 1 keeps everything */
    double third[5] = {0, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0};
    expect_probs(l, 5, 1.0f, 2, 1.0f, third); /* top-k keeps ties at its boundary */
    expect_probs(l, 5, 1.0f, 4, 1e-7f, (double[5]){0, 0, 0, 1, 0}); /* p tiny: one token, */
    expect_probs(l, 5, 1.0f, 0, 0.0f, (double[5]){0, 0, 0, 1, 0});  /* the highest id of ties */
    min_p = 0.5f; /* exp(-1) < 0.5: the three maxima alone; at 1 too (ties are kept) */
    expect_probs(l, 5, 1.0f, 0, 1.0f, third);
    min_p = 1.0f;
    expect_probs(l, 5, 1.0f, 0, 1.0f, third);
    min_p = 0.0f;
    float flat[4] = {0, 0, 0, 0}; /* HF: cumulative .25 .5 <= 1 - .5 drop ids 0 and 1 */
    expect_probs(flat, 4, 1.0f, 0, 0.5f, (double[4]){0, 0, 0.5, 0.5});
    expect_probs(flat, 4, 1.0f, 0, 0.51f, (double[4]){0, 1.0 / 3, 1.0 / 3, 1.0 / 3});
    float one[1] = {-3.0f};
    expect_probs(one, 1, 0.9f, 1, 0.5f, (double[1]){1});
    float huge[3] = {3e38f, -3e38f, 1e38f}; /* tiny temperature: no overflow to NaN */
    expect_probs(huge, 3, 1e-30f, 0, 1.0f, (double[3]){1, 0, 0});
    Sampler *s = make(1.0f, 0, 1.0f, 9, 3);
    float masked[3] = {-INFINITY, 0.0f, -INFINITY};
    int only = 1;
    for (int i = 0; i < 100; i++) only &= next(s, masked) == 1;
    CHECK(only);
    sampler_free(s);
}

/* sampler_penalize against transformers' rule written out: each distinct token of the prompt
 * and the continuation (repeats within and across them) once, positive logits divided, negative
 * ones multiplied, 0 kept; the others untouched; the same again on a fresh copy (the marks
 * cleared); a penalty of 1 changes nothing. */
static void test_repetition_penalty(void) {
    enum { V = 12 };
    float l[V] = {2.0f, -1.5f, 0.0f, 3.0f, -0.25f, 1.0f, 0.5f, -2.0f, 4.0f, 0.1f, -0.1f, 2.5f};
    int32_t prompt[5] = {1, 3, 3, 8, 1}, made[4] = {8, 2, 10, 0};
    float want[V], got[V], again[V];
    memcpy(want, l, sizeof l);
    int seen[V] = {0};
    for (int i = 0; i < 5; i++) seen[prompt[i]] = 1;
    for (int i = 0; i < 4; i++) seen[made[i]] = 1;
    for (int v = 0; v < V; v++)
        if (seen[v]) want[v] = want[v] < 0 ? want[v] * 1.3f : want[v] / 1.3f;
    SampleConfig c = {1.0f, 0, 1.0f, 0.0f, 1.3f, 0};
    Sampler *s = NULL;
    LfError err;
    CHECK_OK(sampler_create(&s, &c, V, &err), &err);
    memcpy(got, l, sizeof l), memcpy(again, l, sizeof l);
    sampler_penalize(s, got, prompt, 5, made, 4);
    sampler_penalize(s, again, prompt, 5, made, 4);
    CHECK(!memcmp(got, want, sizeof want) && !memcmp(again, want, sizeof want));
    sampler_free(s);
    c.repetition_penalty = 1.0f;
    CHECK_OK(sampler_create(&s, &c, V, &err), &err);
    memcpy(got, l, sizeof l);
    sampler_penalize(s, got, prompt, 5, made, 4);
    CHECK(!memcmp(got, l, sizeof l));
    sampler_free(s);
}

static void expect_config_error(float t, int k, float p, int v, const char *what) {
    SampleConfig c = {t, k, p, min_p, 1.0f, 0};
    Sampler *s = (Sampler *)&c;
    LfError err = {{0}};
    CHECK(sampler_create(&s, &c, v, &err) == -1 && s == NULL);
    CHECK(strstr(err.msg, what) != NULL);
}

static void expect_logit_error(float bad, int at, const char *what) {
    float l[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    l[at] = bad;
    double p[4];
    LfError err = {{0}};
    for (int greedy = 0; greedy < 2; greedy++) {
        Sampler *s = make(greedy ? 0.0f : 1.0f, 2, 0.9f, 1, 4);
        int32_t tok = 77;
        CHECK(sampler_next(s, l, &tok, &err) == -1 && tok == 77 && strstr(err.msg, what));
        CHECK(sampler_probs(s, l, p, &err) == -1);
        sampler_free(s);
    }
}

static void test_errors(void) {
    expect_config_error(-0.1f, 0, 1.0f, 10, "temperature");
    expect_config_error(NAN, 0, 1.0f, 10, "temperature");
    expect_config_error(INFINITY, 0, 1.0f, 10, "temperature");
    expect_config_error(1.0f, -1, 1.0f, 10, "top_k");
    expect_config_error(1.0f, 0, 1.5f, 10, "top_p");
    expect_config_error(1.0f, 0, -0.1f, 10, "top_p");
    expect_config_error(1.0f, 0, NAN, 10, "top_p");
    expect_config_error(1.0f, 0, 1.0f, 0, "vocabulary");
    SampleConfig bad = {1.0f, 0, 1.0f, 0.0f, 0.0f, 0}; /* penalty 0, then infinite */
    Sampler *sb = NULL;
    LfError eb = {{0}};
    CHECK(sampler_create(&sb, &bad, 10, &eb) == -1 && strstr(eb.msg, "repetition_penalty"));
    bad.repetition_penalty = INFINITY;
    CHECK(sampler_create(&sb, &bad, 10, &eb) == -1 && sb == NULL);
    min_p = 1.5f;
    expect_config_error(1.0f, 0, 1.0f, 10, "min_p");
    min_p = NAN;
    expect_config_error(1.0f, 0, 1.0f, 10, "min_p");
    min_p = 0.0f;
    expect_logit_error(NAN, 2, "token 2 is NaN");
    expect_logit_error(INFINITY, 0, "token 0 is +Inf");
    float all[3] = {-INFINITY, -INFINITY, -INFINITY};
    Sampler *s = make(1.0f, 0, 1.0f, 1, 3);
    int32_t tok;
    LfError err = {{0}};
    CHECK(sampler_next(s, all, &tok, &err) == -1 && strstr(err.msg, "all 3 logits are -Inf"));
    sampler_free(s);
    sampler_free(NULL);
}

int main(void) {
    test_greedy();
    test_determinism();
    test_against_reference();
    test_statistics();
    test_edges();
    test_repetition_penalty();
    test_errors();
    return check_report();
}
