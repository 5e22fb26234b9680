/* test_gpu_model.c: the whole model on the CUDA backend against the CPU reference.
 *
 * A tiny DistilBERT and a tiny BERT (`loraft init`, a 40-token vocabulary written here) are
 * built on both backends with identical weights (LoRA B made non-zero); one training-mode
 * step with every dropout on (the masks are the same function of the seed on both sides)
 * must give the same loss, logits and gradients, and three AdamW steps the same weights.
 * Each model runs twice: LoRA on PEFT's default targets, and LoRA on every linear layer of
 * the encoder including the FFN ones (whose input width, the FFN size, exceeds the hidden
 * size: the op scratch must follow ops_lora_scratch for the widest input).
 * Tolerance: 1e-4 * max|ref| + 1e-3 * |ref| per element (float32, different summation
 * orders, compounded over 2 layers). Skips (77) without a CUDA device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "tiny.h"
#include "loraft/model.h"
#include "loraft/optimizer.h"
#include "loraft/rng.h"

enum { B = 3, T = 7 };

/* Worst element of a (device) against b (host reference). */
static void compare(const char *what, const Ops *ops, const float *dev, const float *ref,
                    size_t n) {
    float *h = malloc(n * sizeof *h);
    ops->download(h, dev, n * sizeof *h);
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fabs(ref[i]) > scale ? fabs(ref[i]) : scale;
    int bad = 0;
    for (size_t i = 0; i < n; i++) bad += fabs(h[i] - ref[i]) > 1e-4 * scale + 1e-3 * fabs(ref[i]);
    if (bad) fprintf(stderr, "%s: %d of %zu elements off\n", what, bad, n);
    CHECK(bad == 0);
    free(h);
}

/* LoRA on every linear layer of the encoder (BERT's "dense" also takes the pooler). */
static const char *all_linear[2][6] = {{"q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"},
                                       {"query", "key", "value", "dense"}};

static void run(const char *dir, int arch, int every_linear) {
    ModelConfig cfg;
    LfError err;
    CHECK(model_config_load(&cfg, dir, &err) == 0);
    cfg.hidden_dropout = cfg.attention_dropout = 0.1f;
    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.r = 4, spec.alpha = 8, spec.dropout = 0.1f;
    if (every_linear) {
        spec.n_targets = 0;
        for (int i = 0; i < 6 && all_linear[arch][i]; i++)
            snprintf(spec.targets[spec.n_targets++], sizeof spec.targets[0], "%s",
                     all_linear[arch][i]);
    }
    Model cpu, gpu;
    CHECK(model_create(&cpu, &cfg, &spec, &ops_cpu, dir, 5, B, T, NULL, 0, &err) == 0);
    int ok = model_create(&gpu, &cfg, &spec, &ops_cuda, dir, 5, B, T, NULL, 0, &err) == 0;
    if (!ok) fprintf(stderr, "%s\n", err.msg);
    CHECK(ok);
    if (!ok) return;
    Rng rng = {3, 0};
    for (int i = 0; i < cpu.n_params; i++)
        if (cpu.params[i].is_lora)
            for (size_t j = 0; j < cpu.params[i].numel; j++)
                cpu.params[i].value[j] = 0.1f * (rng_next_uniform(&rng) - 0.5f);
    int n_lora = 0;
    for (int i = 0; i < cpu.n_params; i++) n_lora += cpu.params[i].is_lora;
    printf("  LoRA on %s: %d adapted linear layers\n", every_linear ? "every linear" : "defaults",
           n_lora / 2);
    if (every_linear) CHECK(n_lora / 2 >= 6 * cfg.num_layers);
    ops_cuda.upload(gpu.values, cpu.values, cpu.n_values * sizeof(float));
    int32_t ids[B * T], mask[B * T], types[B * T] = {0}, labels[B] = {1, 0, 1};
    for (int i = 0; i < B * T; i++)
        ids[i] = 5 + (int32_t)(rng_next(&rng) % 35), mask[i] = i % T < T - i / T;
    Model *ms[2] = {&cpu, &gpu};
    AdamW opt[2];
    for (int k = 0; k < 2; k++) {
        CHECK(model_set_batch(ms[k], ids, cfg.arch == ARCH_BERT ? types : NULL, mask, labels, B, T,
                              &err) == 0);
        CHECK(adamw_create(&opt[k], ms[k], 0.9f, 0.999f, 1e-8f, 0.01f, &err) == 0);
    }
    for (int step = 0; step < 3; step++) {
        float loss[2];
        for (int k = 0; k < 2; k++) {
            model_zero_grad(ms[k]);
            CHECK(model_forward(ms[k], 1, 77 + step, 1.0f, &loss[k], &err) == 0);
            CHECK(model_backward(ms[k], 77 + step, &err) == 0);
        }
        CHECK_CLOSE(loss[1], loss[0], 1e-5, 1e-4);
        if (step == 0) {
            compare("logits", &ops_cuda, gpu.logits, cpu.logits, (size_t)B * cfg.num_labels);
            compare("gradients", &ops_cuda, gpu.grads, cpu.grads, cpu.n_grads);
        }
        for (int k = 0; k < 2; k++) {
            clip_grad_norm(ms[k], 1.0f);
            adamw_update(&opt[k], ms[k], 1e-2f);
        }
    }
    compare("weights after 3 steps", &ops_cuda, gpu.values, cpu.values, cpu.n_values);
    CHECK(ops_cuda.status(&err) == 0);
    for (int k = 0; k < 2; k++) adamw_free(&opt[k], ms[k]), model_free(ms[k]);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    require_cuda_device();
    char tmp[] = "/tmp/loraft-gpu-model-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    const char *archs[] = {"distilbert", "bert"};
    char vocab[600];
    snprintf(vocab, sizeof vocab, "%s/vocab", tmp);
    mkdir(vocab, 0700);
    tiny_write_vocab(vocab);
    for (int a = 0; a < 2; a++) {
        char out[700];
        snprintf(out, sizeof out, "%s/%s", tmp, archs[a]);
        tiny_checkpoint(archs[a], 32, 2, vocab, out);
        for (int every = 0; every < 2; every++) {
            run(out, a, every);
            printf("%s (LoRA on %s): cuda model matches cpu\n", archs[a],
                   every ? "every linear" : "the default targets");
        }
    }
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return check_report();
}
