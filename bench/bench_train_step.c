/* bench_train_step.c: throughput and peak memory of LoRA training steps.
 *
 *   bench_train_step MODEL_DIR [--device cpu|cuda] [--batch B] [--seq T] [--steps N]
 *                    [--r R] [--targets q_lin,v_lin] [--strategy lora|head|full]
 *
 * Random token ids (fixed seed), every sequence T tokens long; forward + backward + AdamW
 * per step, dropout on as in training. Prints tokens/s (after one warm-up step) and the
 * peak resident memory. bench/bench-vs-pytorch.py runs the same step in PyTorch + PEFT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "loraft/model.h"
#include "loraft/optimizer.h"
#include "loraft/rng.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    ops_cpu_select_blas_kernels(argv);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train_step MODEL_DIR [--device D] [--batch B] [--seq T] "
                        "[--steps N] [--r R] [--targets a,b] [--strategy S]\n");
        return 2;
    }
    const char *dir = argv[1], *device = "cpu", *targets = NULL, *strategy = "lora";
    int B = 8, T = 128, steps = 5, r = 8;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--batch"))
            B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seq"))
            T = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--steps"))
            steps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--r"))
            r = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--targets"))
            targets = argv[i + 1];
        else if (!strcmp(argv[i], "--strategy"))
            strategy = argv[i + 1];
        else
            return fprintf(stderr, "unknown option %s\n", argv[i]), 2;
    }
    LfError err;
    const Ops *ops = ops_by_name(device, &err);
    ModelConfig cfg;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = r;
    spec.alpha = 2.0f * r;
    spec.dropout = 0.1f;
    if (!ops || model_config_load(&cfg, dir, &err) ||
        strategy_parse(strategy, &spec.strategy, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    char list[512];
    snprintf(list, sizeof list, "%s", targets ? targets : "");
    for (char *t = strtok(list, ","); t && spec.n_targets < LORA_MAX_TARGETS; t = strtok(NULL, ","))
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s", t);
    Model m;
    AdamW opt;
    if (model_create(&m, &cfg, &spec, ops, dir, 1, B, T, NULL, 0, &err) ||
        adamw_create(&opt, &m, 0.9f, 0.999f, 1e-8f, 0.01f, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    int32_t *ids = malloc((size_t)B * T * sizeof *ids),
            *mask = malloc((size_t)B * T * sizeof *mask);
    int32_t labels[B];
    Rng rng = {42, 0};
    for (int i = 0; i < B * T; i++) ids[i] = 1000 + (int32_t)(rng_next(&rng) % 20000), mask[i] = 1;
    for (int b = 0; b < B; b++) labels[b] = b % cfg.num_labels;
    if (model_set_batch(&m, ids, NULL, mask, labels, B, T, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    double t0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = now(); /* step 0 warms up */
        float loss;
        double norm;
        model_zero_grad(&m);
        if (model_forward(&m, 1, (uint64_t)s, 1.0f, NULL, &err) ||
            model_backward(&m, (uint64_t)s, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        adamw_update(&opt, &m, 1e-4f, 1.0f);
        if (model_read_loss(&m, &loss, &norm, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    }
    double dt = now() - t0;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("loraft %s %s: batch %d x %d, %d steps: %.1f ms/step, %.0f tokens/s, peak RSS %.0f MiB, "
           "trainable %zu\n",
           ops->name, strategy, B, T, steps, 1e3 * dt / steps, (double)B * T * steps / dt,
           ru.ru_maxrss / 1024.0, model_trainable_count(&m));
    adamw_free(&opt, &m);
    model_free(&m);
    free(ids);
    free(mask);
    return 0;
}
