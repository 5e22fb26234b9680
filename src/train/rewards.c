/* rewards.c: TRL's built-in reward functions and the sum of a completion's rewards (rewards.h). */
#include "loraft/rewards.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"model", "command", "think_format_reward",
                                    "soft_overlong_punishment_reward", "repetition_penalty_reward"};

int reward_kind_named(const char *name) {
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(name, names[i])) return i;
    return -1;
}

int reward_funcs_has(const RewardFuncs *f, RewardKind kind) {
    for (int i = 0; i < f->n; i++)
        if (f->kind[i] == kind) return 1;
    return 0;
}

const char *reward_name(RewardKind kind) {
    return names[kind];
}

/* TRL's re.match(r"^<think>(?!.*<think>)(.*?)</think>.*$", text, re.DOTALL): "<think>" first,
 * no other "<think>" after it, a "</think>" somewhere after it. */
float reward_think_format(const char *text) {
    static const char open[] = "<think>";
    if (strncmp(text, open, sizeof open - 1)) return 0.0f;
    const char *rest = text + sizeof open - 1;
    return !strstr(rest, open) && strstr(rest, "</think>") ? 1.0f : 0.0f;
}

float reward_soft_overlong(int tokens, int max_completion, int soft_cache) {
    int free_len = max_completion - soft_cache;
    if (tokens <= free_len) return 0.0f;
    if (tokens <= max_completion) return (float)(free_len - tokens) / (float)soft_cache;
    return -1.0f;
}

/* qsort_r's order of the n-grams at offsets into the ids. */
typedef struct Grams {
    const int32_t *ids;
    int n;
} Grams;

static int gram_cmp(const void *a, const void *b, void *ctx) {
    const Grams *g = ctx;
    const int32_t *x = g->ids + *(const int *)a, *y = g->ids + *(const int *)b;
    for (int i = 0; i < g->n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

float reward_repetition(const int32_t *ids, int n, int ngram, float max_penalty, int *scratch) {
    if (n < ngram) return 0.0f;
    int grams = n - ngram + 1, unique = 1;
    Grams g = {ids, ngram};
    for (int i = 0; i < grams; i++) scratch[i] = i;
    qsort_r(scratch, (size_t)grams, sizeof *scratch, gram_cmp, &g);
    for (int i = 1; i < grams; i++) unique += gram_cmp(&scratch[i - 1], &scratch[i], &g) != 0;
    double scaling = 1.0 - (double)unique / grams;
    return scaling > 0 ? (float)(scaling * max_penalty) : 0.0f;
}

float reward_builtin(const RewardFuncs *f, int i, const int32_t *ids, int n, const char *text,
                     int *scratch) {
    switch (f->kind[i]) {
    case REWARD_THINK_FORMAT:
        return reward_think_format(text);
    case REWARD_SOFT_OVERLONG:
        return reward_soft_overlong(n, f->max_completion, f->soft_cache);
    case REWARD_REPETITION:
        return reward_repetition(ids, n, f->ngram, f->max_penalty, scratch);
    default:
        return NAN; /* the model and the command score whole batches (rollout.c) */
    }
}

double reward_weighted(const RewardFuncs *f, const float *row) {
    double sum = 0;
    int scored = 0;
    for (int i = 0; i < f->n; i++)
        if (!isnan(row[i])) sum += (double)f->weight[i] * row[i], scored = 1;
    return scored ? sum : NAN;
}

/* GDPO: the mean and sample std (Bessel's) of function i's rewards over the group of k rows at
 * row g, those it has; NaN where it has fewer than two (one: the std alone). */
static void group_moments(const RewardFuncs *f, const float *per_func, int g, int k, int i,
                          double *mean, double *std) {
    double sum = 0, sq = 0;
    int n = 0;
    for (int b = g; b < g + k; b++) {
        float x = per_func[(size_t)b * f->n + i];
        if (!isnan(x)) sum += x, n++;
    }
    *mean = n ? sum / n : NAN;
    for (int b = g; b < g + k; b++) {
        float x = per_func[(size_t)b * f->n + i];
        if (!isnan(x)) sq += (x - *mean) * (x - *mean);
    }
    *std = n > 1 ? sqrt(sq / (n - 1)) : NAN;
}

void reward_combine(const RewardFuncs *f, const float *per_func, int rows, int k, float *out) {
    for (int b = 0; b < rows; b++) out[b] = (float)reward_weighted(f, per_func + (size_t)b * f->n);
    if (!f->normalize_then_sum) return;
    for (int g = 0; g + k <= rows; g += k) {
        double mean[REWARD_MAX_FUNCS], std[REWARD_MAX_FUNCS];
        for (int i = 0; i < f->n; i++) group_moments(f, per_func, g, k, i, &mean[i], &std[i]);
        for (int b = g; b < g + k; b++) {
            const float *row = per_func + (size_t)b * f->n;
            double sum = 0;
            for (int i = 0; i < f->n; i++) {
                double z = (row[i] - mean[i]) / (std[i] + 1e-4);
                if (!isnan(z)) sum += f->weight[i] * z;
            }
            if (!isnan(out[b])) out[b] = (float)sum; /* unscorable rows stay NaN */
        }
    }
}
