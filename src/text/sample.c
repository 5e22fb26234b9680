/* sample.c: temperature, top-k, top-p and min-p sampling of one token (sample.h). The filters leave
 * a list of candidate tokens with unnormalised weights exp(x - max); the draw walks that list.
 * Top-p first bins the candidates by x - max in half-nat steps, so that only the tokens that can
 * be in the nucleus are sorted: all V only when the distribution is nearly flat.
 * Nothing here runs on the device or keeps state between tokens beyond the RNG counter. */
#include "loraft/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/rng.h"

typedef struct Cand {
    double d; /* max x - x >= 0, where x = logit / temperature */
    double w; /* exp(-d) */
    int32_t id;
} Cand;

enum { N_BINS = 64 }; /* top-p's bins of d, half a nat wide; the last one is open-ended */

struct Sampler {
    SampleConfig cfg;
    int vocab;
    Rng rng;
    double *x;     /* [vocab] scaled logits */
    double *heap;  /* [top_k] the k largest scaled logits, smallest at the root */
    Cand *cand;    /* [vocab] tokens the filters keep */
    uint8_t *seen; /* [vocab] the tokens sampler_penalize has penalised, all 0 between calls */
};

static int check_config(const SampleConfig *c, int vocab, LfError *err) {
    if (vocab < 1) return lf_fail(err, "sampler: vocabulary of %d tokens", vocab);
    if (!(c->temperature >= 0.0f) || isinf(c->temperature))
        return lf_fail(err, "sampler: temperature %g must be finite and >= 0 (0 is greedy)",
                       (double)c->temperature);
    if (c->top_k < 0) return lf_fail(err, "sampler: top_k %d must be >= 0 (0 is off)", c->top_k);
    if (!(c->top_p >= 0.0f && c->top_p <= 1.0f))
        return lf_fail(err, "sampler: top_p %g must be in [0, 1] (1 is off)", (double)c->top_p);
    if (!(c->min_p >= 0.0f && c->min_p <= 1.0f))
        return lf_fail(err, "sampler: min_p %g must be in [0, 1] (0 is off)", (double)c->min_p);
    if (!(c->repetition_penalty > 0.0f) || isinf(c->repetition_penalty))
        return lf_fail(err, "sampler: repetition_penalty %g must be finite and > 0 (1 is off)",
                       (double)c->repetition_penalty);
    return 0;
}

int sampler_create(Sampler **out, const SampleConfig *cfg, int vocab, LfError *err) {
    *out = NULL;
    if (check_config(cfg, vocab, err)) return -1;
    Sampler *s = calloc(1, sizeof *s);
    int k = cfg->top_k > 0 && cfg->top_k < vocab ? cfg->top_k : 1;
    if (s) {
        s->x = malloc((size_t)vocab * sizeof *s->x);
        s->heap = malloc((size_t)k * sizeof *s->heap);
        s->cand = malloc((size_t)vocab * sizeof *s->cand);
        s->seen = calloc((size_t)vocab, sizeof *s->seen);
    }
    if (!s || !s->x || !s->heap || !s->cand || !s->seen) {
        sampler_free(s);
        return lf_fail(err, "sampler: out of memory for a vocabulary of %d", vocab);
    }
    s->cfg = *cfg;
    s->vocab = vocab;
    s->rng = (Rng){cfg->seed, 0};
    *out = s;
    return 0;
}

void sampler_seed(Sampler *s, uint64_t seed, uint64_t draws) {
    s->rng = (Rng){seed, draws};
}

void sampler_free(Sampler *s) {
    if (!s) return;
    free(s->x);
    free(s->heap);
    free(s->cand);
    free(s->seen);
    free(s);
}

/* The logits of ids[0..n) not yet marked seen penalised, and marked. */
static void penalize_ids(Sampler *s, float *logits, const int32_t *ids, int n) {
    float p = s->cfg.repetition_penalty;
    for (int i = 0; i < n; i++) {
        if (s->seen[ids[i]]) continue;
        s->seen[ids[i]] = 1;
        logits[ids[i]] = logits[ids[i]] < 0.0f ? logits[ids[i]] * p : logits[ids[i]] / p;
    }
}

static void unmark_ids(Sampler *s, const int32_t *ids, int n) {
    for (int i = 0; i < n; i++) s->seen[ids[i]] = 0;
}

void sampler_penalize(Sampler *s, float *logits, const int32_t *prompt, int n_prompt,
                      const int32_t *made, int n_made) {
    if (s->cfg.repetition_penalty == 1.0f) return;
    penalize_ids(s, logits, prompt, n_prompt);
    penalize_ids(s, logits, made, n_made);
    unmark_ids(s, prompt, n_prompt);
    unmark_ids(s, made, n_made);
}

/* Index of the largest logit (the lowest such id); errors on NaN, +Inf and all -Inf. */
static int scan_logits(const float *logits, int vocab, int32_t *argmax, LfError *err) {
    int32_t best = -1;
    for (int i = 0; i < vocab; i++) {
        float v = logits[i];
        if (isnan(v) || v == INFINITY)
            return lf_fail(err, "sampler: logit of token %d is %s", i, isnan(v) ? "NaN" : "+Inf");
        if (v > -INFINITY && (best < 0 || v > logits[best])) best = i;
    }
    if (best < 0) return lf_fail(err, "sampler: all %d logits are -Inf", vocab);
    *argmax = best;
    return 0;
}

static void heap_sift_down(double *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, m = i;
        if (l < n && h[l] < h[m]) m = l;
        if (l + 1 < n && h[l + 1] < h[m]) m = l + 1;
        if (m == i) return;
        double t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

/* The k-th largest of x[0..n), 1 <= k < n, with a k-element min-heap. */
static double kth_largest(const double *x, int n, int k, double *heap) {
    memcpy(heap, x, (size_t)k * sizeof *heap);
    for (int i = k / 2 - 1; i >= 0; i--) heap_sift_down(heap, k, i);
    for (int i = k; i < n; i++) {
        if (x[i] > heap[0]) {
            heap[0] = x[i];
            heap_sift_down(heap, k, 0);
        }
    }
    return heap[0];
}

/* Least probable first; among equals the lower id first. */
static int cand_ascending(const void *pa, const void *pb) {
    const Cand *a = pa, *b = pb;
    if (a->d != b->d) return a->d > b->d ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

static int bin_of(double d) {
    return d < N_BINS / 2 ? (int)(2.0 * d) : N_BINS - 1;
}

/* Temperature and top-k: the candidates with their weights; returns their count. */
static int filter_top_k(Sampler *s, const float *logits, int32_t argmax) {
    const double t = s->cfg.temperature;
    for (int i = 0; i < s->vocab; i++) s->x[i] = (double)logits[i] / t;
    double thr = -INFINITY, max = s->x[argmax];
    if (s->cfg.top_k > 0 && s->cfg.top_k < s->vocab)
        thr = kth_largest(s->x, s->vocab, s->cfg.top_k, s->heap);
    int n = 0;
    for (int i = 0; i < s->vocab; i++) {
        if (s->x[i] >= thr && s->x[i] > -INFINITY)
            s->cand[n++] = (Cand){max - s->x[i], exp(s->x[i] - max), i};
    }
    return n;
}

/* Top-p over cand[0..n): moves the tokens of the bins that can hold nucleus tokens to the front,
 * sorts them ascending and returns their count, *first the first one kept. A token outside
 * those bins has at least p + 1e-9 of the mass above it, so HF's rule drops it whatever the
 * rounding; the mass of the tokens left out starts the cumulative sum. */
static int filter_top_p(Sampler *s, int n, int *first) {
    *first = 0;
    if (s->cfg.top_p >= 1.0f) return n;
    double z = 0.0, mass[N_BINS] = {0}, p = s->cfg.top_p;
    for (int i = 0; i < n; i++) mass[bin_of(s->cand[i].d)] += s->cand[i].w, z += s->cand[i].w;
    int last = 0;
    for (double above = mass[0]; last < N_BINS - 1 && above < (p + 1e-9) * z;)
        above += mass[++last];
    int m = 0;
    double cum = 0.0;
    for (int i = 0; i < n; i++) {
        if (bin_of(s->cand[i].d) <= last)
            s->cand[m++] = s->cand[i];
        else
            cum += s->cand[i].w;
    }
    qsort(s->cand, (size_t)m, sizeof *s->cand, cand_ascending);
    while (*first < m - 1 && (cum += s->cand[*first].w) / z <= 1.0 - p) ++*first;
    return m;
}

/* Min-p over cand[first .. first + n): the candidates whose weight exp(x - max) is below min_p
 * left out, the others kept in order; returns their count. The most probable has weight 1. */
static int filter_min_p(Sampler *s, int first, int n) {
    if (!(s->cfg.min_p > 0.0f)) return n;
    Cand *c = s->cand + first;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (c[i].w >= s->cfg.min_p) c[m++] = c[i];
    return m;
}

/* The kept candidates: cand[*first .. *first + *n), or the argmax alone when greedy. */
static int filter(Sampler *s, const float *logits, int *first, int *n, LfError *err) {
    int32_t argmax = 0; /* set by scan_logits; gcc -O3 cannot see that */
    if (scan_logits(logits, s->vocab, &argmax, err)) return -1;
    if (s->cfg.temperature == 0.0f) {
        s->cand[0] = (Cand){0.0, 1.0, argmax};
        *first = 0;
        *n = 1;
        return 0;
    }
    int total = filter_top_p(s, filter_top_k(s, logits, argmax), first);
    *n = filter_min_p(s, *first, total - *first);
    return 0;
}

int sampler_probs(Sampler *s, const float *logits, double *probs, LfError *err) {
    int first, n;
    if (filter(s, logits, &first, &n, err)) return -1;
    const Cand *c = s->cand + first;
    double z = 0.0;
    for (int i = 0; i < n; i++) z += c[i].w;
    memset(probs, 0, (size_t)s->vocab * sizeof *probs);
    for (int i = 0; i < n; i++) probs[c[i].id] = c[i].w / z;
    return 0;
}

int sampler_next(Sampler *s, const float *logits, int32_t *token, LfError *err) {
    int first, n;
    if (filter(s, logits, &first, &n, err)) return -1;
    const Cand *c = s->cand + first;
    if (s->cfg.temperature == 0.0f) {
        *token = c[0].id;
        return 0;
    }
    double z = 0.0;
    for (int i = 0; i < n; i++) z += c[i].w;
    double u = (double)(rng_next(&s->rng) >> 11) * 0x1.0p-53 * z, cum = 0.0;
    int pick = n - 1; /* where rounding leaves u past the last sum */
    for (int i = 0; i < n - 1; i++) {
        cum += c[i].w;
        if (u < cum) {
            pick = i;
            break;
        }
    }
    *token = c[pick].id;
    return 0;
}
