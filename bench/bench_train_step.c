/* bench_train_step.c: throughput and peak memory of LoRA training steps.
 *
 *   bench_train_step MODEL_DIR [--device cpu|cuda] [--batch B] [--seq T] [--steps N]
 *                    [--r R] [--targets q_lin,v_lin] [--strategy lora|head|full]
 *                    [--dropout P] [--random] [--precision auto|fp32|tf32|bf16]
 *                    [--graphs auto|on|off] [--attention loraft|cudnn] [--checkpointing]
 *                    [--prompt K] [--dpo] [--base-dtype f32|bf16|q|q8_0|..] [--dora]
 *                    [--tokens K]
 *
 * Random token ids (fixed seed), every sequence T tokens long; forward + backward + clipping +
 * AdamW per step, dropout on as in training. The task is the architecture's: classification
 * (DistilBERT, BERT) or causal LM (Llama, GPT-2; labels = the ids, the first K of every row -100
 * with --prompt K: SFT's prompt, which the LM head skips). --dpo trains DPO instead (decoders,
 * LoRA): rows 2i and 2i + 1 a chosen and a rejected response after a prompt of K tokens, and
 * each step first the reference policy's forward (adapters off), as the trainer's first epoch
 * runs it. --random builds the model
 * from MODEL_DIR's config.json alone with seeded random weights (speed does not depend on the
 * values), so no weight file is needed. Prints tokens/s (after one warm-up step), the peak
 * resident memory and, on CUDA, the device memory the model took: cudaMemGetInfo's bytes in
 * use after the steps minus before the model was created (loraft allocates everything in
 * model_create, so this is its peak, with cuBLAS's workspace: 32 MiB on Hopper, 4 MiB before; the
 * CUDA context is not counted), and of that the weights' and the activation plan's bytes.
 * --precision is model.precision (auto: bf16 on CUDA, fp32 on the CPU); --base-dtype is
 * model.base_dtype (q8_0 .. q4_0, nf4 quantise the frozen projections as they are made); --graphs
 * is train.cuda_graphs (auto: the first timed step records forward and backward, every later one
 * replays them as one CUDA graph launch; AdamW op by op; the step runs through the trainer's
 * train_micro_step); --attention is model.attention; --checkpointing is
 * train.gradient_checkpointing; --dora is lora.use_dora; --tokens K trains the rows of ids 0 .. K-1
 * too (lora.trainable_token_indices; a tied head's with them). --steps 0 builds the
 * model and prints its plan (weights and activations) only: on the emulated CUDA backend, the GPU's
 * plan without a GPU. bench/bench-vs-pytorch.py and bench/bench-gpu-e2e.py run the same step in
 * PyTorch + PEFT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "loraft/model.h"
#include "loraft/objective.h"
#include "loraft/optimizer.h"
#include "loraft/rng.h"
#include "loraft/trainer.h"
#ifdef LORAFT_HAVE_CUDA
#include "bench_gpu.h"
#endif

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Device memory in use (CUDA), 0 elsewhere. */
static size_t device_used(const Ops *ops) {
#ifdef LORAFT_HAVE_CUDA
    if (ops == &ops_cuda) return bench_gpu_used_bytes();
#endif
    (void)ops;
    return 0;
}

int main(int argc, char **argv) {
    ops_cpu_select_blas_kernels(argv);
    if (argc < 2) {
        fprintf(stderr, "usage: bench_train_step MODEL_DIR [--device D] [--batch B] [--seq T] "
                        "[--steps N] [--r R] [--targets a,b] [--strategy S] [--dropout P] "
                        "[--random] [--precision auto|fp32|tf32|bf16] [--graphs auto|on|off] "
                        "[--attention loraft|cudnn] [--checkpointing] [--prompt K] [--dpo] "
                        "[--base-dtype D] [--dora] [--tokens K]\n");
        return 2;
    }
    const char *dir = argv[1], *device = "cpu", *targets = NULL, *strategy = "lora";
    const char *precision = "auto", *graphs = "auto", *attention = "loraft", *base = "f32";
    int B = 8, T = 128, steps = 5, r = 8, random = 0, checkpointing = 0, prompt = 0, dpo = 0;
    int dora = 0, tokens = 0;
    float dropout = 0.1f;
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(opt, "--random") || !strcmp(opt, "--checkpointing") || !strcmp(opt, "--dpo") ||
            !strcmp(opt, "--dora")) { /* flags */
            random |= !strcmp(opt, "--random");
            checkpointing |= !strcmp(opt, "--checkpointing");
            dpo |= !strcmp(opt, "--dpo");
            dora |= !strcmp(opt, "--dora");
            continue;
        }
        if (!val) return fprintf(stderr, "%s needs a value\n", opt), 2;
        i++;
        if (!strcmp(opt, "--device"))
            device = val;
        else if (!strcmp(opt, "--batch"))
            B = atoi(val);
        else if (!strcmp(opt, "--seq"))
            T = atoi(val);
        else if (!strcmp(opt, "--steps"))
            steps = atoi(val);
        else if (!strcmp(opt, "--r"))
            r = atoi(val);
        else if (!strcmp(opt, "--targets"))
            targets = val;
        else if (!strcmp(opt, "--strategy"))
            strategy = val;
        else if (!strcmp(opt, "--dropout"))
            dropout = (float)atof(val);
        else if (!strcmp(opt, "--graphs"))
            graphs = val;
        else if (!strcmp(opt, "--precision"))
            precision = val;
        else if (!strcmp(opt, "--attention"))
            attention = val;
        else if (!strcmp(opt, "--base-dtype"))
            base = val;
        else if (!strcmp(opt, "--prompt"))
            prompt = atoi(val);
        else if (!strcmp(opt, "--tokens"))
            tokens = atoi(val);
        else
            return fprintf(stderr, "unknown option %s\n", opt), 2;
    }
    if (B < 1 || T < 2 || steps < 0 || prompt < 0 || prompt >= T || tokens < 0 ||
        tokens > LORA_MAX_TOKENS)
        return fprintf(stderr,
                       "batch, seq must be > 0, steps >= 0, 0 <= prompt < seq, 0 <= "
                       "tokens <= %d\n",
                       LORA_MAX_TOKENS),
               2;
    const char *modes[] = {"auto", "on", "off"}; /* TrainGraphs' order */
    TrainStep st = {.graphs = GRAPHS_AUTO};
    while (st.graphs <= GRAPHS_OFF && strcmp(graphs, modes[st.graphs])) st.graphs++;
    if (st.graphs > GRAPHS_OFF) return fprintf(stderr, "--graphs: auto, on or off\n"), 2;
    LfError err;
    const Ops *ops = ops_by_name(device, &err);
    ModelConfig cfg;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = r;
    spec.alpha = 2.0f * r;
    spec.dropout = dropout;
    spec.use_dora = dora;
    for (spec.n_token_indices = 0; spec.n_token_indices < tokens; spec.n_token_indices++)
        spec.token_indices[spec.n_token_indices] = spec.n_token_indices;
    spec.gradient_checkpointing = checkpointing;
    if (!ops || precision_parse(precision, &spec.precision, &err) ||
        base_dtype_parse(base, &spec.base_dtype, &err) ||
        attention_parse(attention, &spec.attention, &err) || model_config_load(&cfg, dir, &err) ||
        strategy_parse(strategy, &spec.strategy, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    spec.task = dpo ? TASK_DPO : arch_task(cfg.arch);
    if (dpo && spec.strategy != STRATEGY_LORA)
        return fprintf(stderr, "--dpo needs --strategy lora: the reference policy is the model "
                               "with its adapters off\n"),
               2;
    char list[512];
    snprintf(list, sizeof list, "%s", targets ? targets : "");
    for (char *t = strtok(list, ","); t && spec.n_targets < LORA_MAX_TARGETS; t = strtok(NULL, ","))
        snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s", t);
    char base_note[32] = ""; /* the base dtype, where not f32 */
    if (spec.base_dtype != BASE_F32) snprintf(base_note, sizeof base_note, " base %s", base);
    size_t used_before = device_used(ops);
    Model m;
    AdamW opt;
    if (model_create(&m, &cfg, &spec, ops, random ? NULL : dir, 1, B, T, NULL, 0, &err) ||
        adamw_create(&opt, &m, 0.9f, 0.999f, 1e-8f, 0.01f, 0.0f, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    if (!steps) {
        printf("loraft %s %s %s%s: batch %d x %d, weights %.0f MiB, activations %.0f MiB%s\n",
               ops->name, precision_name(m.spec.precision), strategy, base_note, B, T,
               model_weight_bytes(&m) / 1048576.0, model_activation_bytes(&m) / 1048576.0,
               checkpointing ? " (gradient checkpointing)" : "");
        adamw_free(&opt, &m);
        model_free(&m);
        return 0;
    }
    int per_token = objective_for(spec.task)->labels_per_token;
    int32_t *ids = malloc((size_t)B * T * sizeof *ids),
            *mask = malloc((size_t)B * T * sizeof *mask),
            *labels = malloc((size_t)(per_token ? B * T : B) * sizeof *ids);
    if (!ids || !mask || !labels) return fprintf(stderr, "out of memory\n"), 1;
    Rng rng = {42, 0};
    for (int i = 0; i < B * T; i++)
        ids[i] = (int32_t)(rng_next(&rng) % (uint64_t)cfg.vocab_size), mask[i] = 1;
    for (int i = 0; dpo && i < B * T; i++) /* a pair's rows share their prompt */
        if (i / T % 2 && i % T < prompt) ids[i] = ids[i - T];
    for (int i = 0; i < (per_token ? B * T : B); i++)
        labels[i] = !per_token ? i % cfg.num_labels : i % T < prompt ? -100 : ids[i];
    if (model_set_batch(&m, ids, NULL, mask, labels, B, T, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    double t0 = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = now(); /* step 0 warms up */
        float loss;
        double norm;
        model_zero_grad(&m);
        if ((dpo && reference_forward(&m, &err)) ||
            train_micro_step(&st, &m, (uint64_t)s, 1.0f, &opt, 1e-4f, 1.0f, &err) ||
            model_read_loss(&m, &loss, &norm, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
    }
    double dt = now() - t0;
    size_t used_after = device_used(ops);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    OpsGraphCounts graph = {0};
    if (ops->graph_counts) ops->graph_counts(&graph);
    printf(
        "loraft %s %s %s%s%s attention %s: batch %d x %d, %d steps: %.1f ms/step, %.0f tokens/s, "
        "%ld as CUDA graphs (%ld replayed), peak RSS %.0f MiB, device memory %.0f MiB, "
        "trainable %zu, weights %.0f MiB, "
        "activations %.0f MiB\n",
        ops->name, precision_name(m.spec.precision), strategy, base_note, dpo ? " dpo" : "",
        attention_name(m.spec.attention), B, T, steps, 1e3 * dt / steps, (double)B * T * steps / dt,
        graph.launches, graph.replayed, ru.ru_maxrss / 1024.0,
        (double)(used_after - used_before) / 1048576.0, model_trainable_count(&m),
        model_weight_bytes(&m) / 1048576.0, model_activation_bytes(&m) / 1048576.0);
    adamw_free(&opt, &m);
    model_free(&m);
    free(ids);
    free(mask);
    free(labels);
    return 0;
}
