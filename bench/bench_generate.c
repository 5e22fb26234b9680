/* bench_generate.c: generation speed, the prompt's prefill and the decode steps over the KV
 * cache, as `loraft generate` runs them (gen_run, greedy, one sequence).
 *
 *   bench_generate MODEL_DIR [--device cpu|cuda] [--prompt P] [--new N] [--runs K]
 *                  [--precision auto|fp32|tf32|bf16] [--base-dtype f32|bf16]
 *                  [--targets a,b] [--r R] [--graphs on|off] [--random]
 *
 * P random prompt ids (fixed seed), then exactly N new tokens: nothing stops a run early (no
 * stop ids). --random builds the model from MODEL_DIR's config.json alone with seeded random
 * weights (speed does not depend on the values); --targets puts a LoRA adapter of rank R on
 * those linears, applied unmerged as `loraft generate --adapter` does; --graphs off decodes op by
 * op instead of replaying the recorded step (Model.decode_graphs). One warm-up run, then K
 * timed ones; prints the median prefill time and decode tokens/s. bench/bench-gpu-generate.py
 * runs the same generation in PyTorch + transformers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/generate.h"
#include "loraft/model.h"
#include "loraft/rng.h"
#include "loraft/sample.h"

static int emit_all(void *ctx, int32_t id) {
    (void)ctx, (void)id;
    return 0; /* never done: exactly N tokens */
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int main(int argc, char **argv) {
    ops_cpu_select_blas_kernels(argv);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_generate MODEL_DIR [--device D] [--prompt P] [--new N] "
                        "[--runs K] [--precision auto|fp32|tf32|bf16] [--base-dtype f32|bf16] "
                        "[--targets a,b] [--r R] [--graphs on|off] [--random]\n");
        return 2;
    }
    const char *dir = argv[1], *device = "cpu", *precision = "auto", *base = "f32";
    const char *targets = NULL;
    int P = 32, N = 128, runs = 3, r = 8, random = 0, graphs = 1;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--random")) {
            random = 1;
            continue;
        }
        if (!val) return fprintf(stderr, "%s needs a value\n", opt), 2;
        i++;
        if (!strcmp(opt, "--device"))
            device = val;
        else if (!strcmp(opt, "--prompt"))
            P = atoi(val);
        else if (!strcmp(opt, "--new"))
            N = atoi(val);
        else if (!strcmp(opt, "--runs"))
            runs = atoi(val);
        else if (!strcmp(opt, "--precision"))
            precision = val;
        else if (!strcmp(opt, "--base-dtype"))
            base = val;
        else if (!strcmp(opt, "--targets"))
            targets = val;
        else if (!strcmp(opt, "--r"))
            r = atoi(val);
        else if (!strcmp(opt, "--graphs") && (!strcmp(val, "on") || !strcmp(val, "off")))
            graphs = !strcmp(val, "on");
        else if (!strcmp(opt, "--graphs"))
            return fprintf(stderr, "--graphs: on or off\n"), 2;
        else
            return fprintf(stderr, "unknown option %s\n", opt), 2;
    }
    if (P < 1 || N < 1 || runs < 1 || runs > 64 || r < 1)
        return fprintf(stderr, "prompt, new, r must be > 0; runs 1 to 64\n"), 2;
    LfError err;
    const Ops *ops = ops_by_name(device, &err);
    ModelConfig cfg;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.strategy = targets ? STRATEGY_LORA : STRATEGY_NONE; /* as model_open */
    spec.r = r;
    spec.alpha = 2.0f * r;
    if (!ops || precision_parse(precision, &spec.precision, &err) ||
        base_dtype_parse(base, &spec.base_dtype, &err) || model_config_load(&cfg, dir, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    if (P + N > cfg.max_positions)
        return fprintf(stderr, "prompt + new = %d exceeds the model's %d positions\n", P + N,
                       cfg.max_positions),
               2;
    spec.task = arch_task(cfg.arch);
    char list[512];
    snprintf(list, sizeof list, "%s", targets ? targets : "");
    for (char *t = strtok(list, ","); t && spec.n_targets < LORA_MAX_TARGETS; t = strtok(NULL, ","))
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s", t);
    Model m;
    if (model_create(&m, &cfg, &spec, ops, random ? NULL : dir, 1, 1, gen_model_rows(P), NULL, 0,
                     &err)) /* as loraft generate */
        return fprintf(stderr, "%s\n", err.msg), 1;
    m.decode_graphs = graphs;
    int32_t *prompt = malloc((size_t)P * sizeof *prompt);
    Sampler *s = NULL;
    SampleConfig sc = {.temperature = 0.0f, .top_p = 1.0f, .repetition_penalty = 1.0f};
    GenStops none = {.n_ids = 0};
    if (!prompt || sampler_create(&s, &sc, cfg.vocab_size, &err))
        return fprintf(stderr, "%s\n", prompt ? err.msg : "out of memory"), 1;
    Rng rng = {42, 0};
    for (int i = 0; i < P; i++) prompt[i] = (int32_t)(rng_next(&rng) % (uint64_t)cfg.vocab_size);
    double prefill[64], decode[64];
    for (int k = 0; k <= runs; k++) { /* run 0 warms up */
        GenStats st;
        if (gen_run(&m, s, &none, prompt, P, N, emit_all, NULL, &st, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        if (st.new_tokens != N)
            return fprintf(stderr, "generated %d tokens, not %d\n", st.new_tokens, N), 1;
        if (k) prefill[k - 1] = st.prefill_s, decode[k - 1] = st.decode_s;
    }
    OpsGraphCounts g = {0};
    if (ops->graph_counts) ops->graph_counts(&g);
    printf("loraft %s %s%s: prompt %d, %d new, %d runs, %ld graph launches: prefill %.2f ms, "
           "decode %.0f tokens/s (%.3f ms/token)\n",
           ops->name, precision_name(m.spec.precision), targets ? " lora" : "", P, N, runs,
           g.launches, 1e3 * median(prefill, runs), N / median(decode, runs),
           1e3 * median(decode, runs) / N);
    sampler_free(s);
    free(prompt);
    model_free(&m);
    return 0;
}
