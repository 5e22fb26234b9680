/* test_gpu_data_parallel.c: model.devices 2 (a process a device, gradients summed over NCCL
 * before each optimizer step) trains as one device with twice the gradient accumulation.
 *
 * The pairs of `loraft train` runs, from the same tiny checkpoint on the same 26 lines (7 batches
 * of 4, so an epoch's last step is one batch: device 1 has none and steps all the same):
 * - a DistilBERT classifier with LoRA (dropout 0.1: each batch must draw the masks one device
 *   would), precision fp32, 2 epochs, an evaluation before and after each;
 * - the same with full fine-tuning (every weight's gradient summed), 1 epoch.
 * Compared: every logged training loss and gradient norm (each step's: logging_steps 1), every
 * evaluation, and every weight of the last checkpoint. The only difference allowed is the order
 * of the gradient sums (one device adds the second batch's gradient into the first's inside
 * its GEMMs, two devices add two finished gradients): losses within 2e-6 relative, norms 2e-5,
 * weights within 1e-5 of their tensor's largest (or of 1e-2, the initial weights' scale, for a
 * tensor that is all rounding noise: a key bias, which softmax ignores). The differences are
 * printed; under the emulation the LoRA run's are 0.
 * Then the failures: more devices than the machine has, and device 0 failing while device 1
 * waits for it in a collective (its output directory cannot be made): both exit with a message
 * naming the cause, and nothing hangs.
 * Under the emulation (tests/cuda_emu) the devices are LORAFT_EMU_DEVICES = 2 and NCCL is
 * emulated in shared memory; on a GPU the test needs two devices and NCCL, else it skips (77). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "tiny.h"
#include "loraft/safetensors.h"
#include "loraft/fileio.h"

/* The emulation's counts (tests/cuda_emu/emu_runtime.cpp); absent on a GPU. */
__attribute__((weak)) long long loraft_cuda_emu_count(const char *what);

static char tmp[] = "/tmp/loraft-gpu-dp-XXXXXX";
static char loraft[4200]; /* the loraft executable */

/* `loraft train` (beside this test's executable) into tmp/name with the common settings, then
 * `sets`; its output (stdout and stderr) in *log (caller frees). A process of its own, as a
 * data-parallel run must start: dp_run forks before any other thread runs, and this test's own
 * process has run OpenMP loops by then. Returns the exit status. */
static int run(const char *name, const char *const *sets, int n, char **log) {
    char cmd[8192], logpath[800];
    snprintf(logpath, sizeof logpath, "%s/%s.log", tmp, name);
    int len = snprintf(cmd, sizeof cmd,
                       "'%s' train --config '%s/cfg.json' --set train.output_dir='%s/%s'", loraft,
                       tmp, tmp, name);
    for (int k = 0; k < n && len < (int)sizeof cmd; k++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " --set '%s'", sets[k]);
    if (len < (int)sizeof cmd)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " >'%s' 2>&1", logpath);
    CHECK(len < (int)sizeof cmd);
    int rc = system(cmd);
    size_t bytes = 0;
    LfError err;
    if (file_read_all(logpath, log, &bytes, &err)) *log = NULL;
    return rc;
}

/* The run's metrics.jsonl: training losses and gradient norms, then evaluation losses. */
typedef struct Metrics {
    double loss[64], norm[64], eval[8];
    int steps, evals;
} Metrics;

static void read_metrics(const char *name, Metrics *m) {
    memset(m, 0, sizeof *m);
    char path[800], line[4096];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", tmp, name);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    while (f && fgets(line, sizeof line, f)) {
        cJSON *o = cJSON_Parse(line);
        const char *ev = cJSON_GetStringValue(cJSON_GetObjectItem(o, "event"));
        if (ev && !strcmp(ev, "train") && m->steps < 64) {
            m->loss[m->steps] = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "loss"));
            m->norm[m->steps++] = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "grad_norm"));
        } else if (ev && !strcmp(ev, "eval") && m->evals < 8) {
            m->eval[m->evals++] = cJSON_GetNumberValue(cJSON_GetObjectItem(o, "eval_loss"));
        }
        cJSON_Delete(o);
    }
    if (f) fclose(f);
}

/* Every tensor of file in run a against run b: the same names and shapes, values within tol
 * of the largest; returns the largest difference. */
static double compare_weights(const char *a, const char *b, const char *file, double tol) {
    char pa[800], pb[800];
    snprintf(pa, sizeof pa, "%s/%s/last/%s", tmp, a, file);
    snprintf(pb, sizeof pb, "%s/%s/last/%s", tmp, b, file);
    SafeTensors sa, sb;
    LfError err;
    double worst = 0;
    CHECK_OK(safetensors_open(&sa, pa, &err), &err);
    CHECK_OK(safetensors_open(&sb, pb, &err), &err);
    CHECK(sa.n_tensors > 0 && sa.n_tensors == sb.n_tensors);
    for (int i = 0; i < sa.n_tensors; i++) {
        const StTensor *x = &sa.tensors[i], *y = safetensors_find(&sb, x->name);
        CHECK(y && x->dtype == ST_F32 && y->dtype == ST_F32 && x->nbytes == y->nbytes);
        if (!y || x->dtype != ST_F32 || y->dtype != ST_F32 || x->nbytes != y->nbytes) continue;
        const float *u = x->data, *v = y->data;
        double big = 0, diff = 0;
        for (size_t k = 0; k < x->nbytes / 4; k++) {
            big = fmax(big, fabs(u[k]));
            diff = fmax(diff, fabs((double)u[k] - v[k]));
        }
        double scale = fmax(big, 1e-2); /* a key bias is rounding noise: softmax ignores it */
        CHECK(diff <= tol * scale);
        if (diff > tol * scale)
            fprintf(stderr, "%s %s: %g off (largest value %g)\n", file, x->name, diff, big);
        worst = fmax(worst, diff / scale);
    }
    safetensors_close(&sa);
    safetensors_close(&sb);
    return worst;
}

/* One device with accumulation 2 against two devices with accumulation 1. */
static void check_pair(const char *what, const char *const *sets, int n, const char *weights) {
    const char *one[8], *two[8];
    for (int k = 0; k < n; k++) one[k] = two[k] = sets[k];
    one[n] = "train.gradient_accumulation_steps=2";
    two[n] = "model.devices=2";
    char name1[64], name2[64], *log1 = NULL, *log2 = NULL;
    snprintf(name1, sizeof name1, "%s-1", what);
    snprintf(name2, sizeof name2, "%s-2", what);
    CHECK(run(name1, one, n + 1, &log1) == 0);
    CHECK(run(name2, two, n + 1, &log2) == 0);
    CHECK(log2 && strstr(log2, "batch 4 x 2 devices x 1 accumulation"));
    CHECK(log1 && log2 && strstr(log1, "4 per epoch") && strstr(log2, "4 per epoch"));
    if (log2 && !strstr(log2, "x 2 devices")) fprintf(stderr, "%s\n", log2);
    if (log1 && !strstr(log1, "4 per epoch")) fprintf(stderr, "%s\n", log1);
    Metrics a, b;
    read_metrics(name1, &a);
    read_metrics(name2, &b);
    CHECK(a.steps > 0 && a.steps == b.steps && a.evals > 1 && a.evals == b.evals);
    double worst_loss = 0;
    for (int i = 0; i < a.steps && i < b.steps; i++) {
        CHECK_CLOSE(b.loss[i], a.loss[i], 0, 2e-6);
        CHECK_CLOSE(b.norm[i], a.norm[i], 0, 2e-5);
        worst_loss = fmax(worst_loss, fabs(b.loss[i] - a.loss[i]) / a.loss[i]);
    }
    for (int i = 0; i < a.evals && i < b.evals; i++) {
        CHECK_CLOSE(b.eval[i], a.eval[i], 0, 2e-6);
        worst_loss = fmax(worst_loss, fabs(b.eval[i] - a.eval[i]) / a.eval[i]);
    }
    double worst_w = compare_weights(name1, name2, weights, 1e-5);
    printf("%s: %d steps, %d evaluations: losses within %.2g, weights within %.2g of their "
           "largest (one device, accumulation 2 vs two devices)\n",
           what, a.steps, a.evals, worst_loss, worst_w);
    free(log1);
    free(log2);
}

/* A failing run returns, with a message that names the cause. */
static void check_failure(const char *what, const char *set, const char *needle) {
    const char *sets[] = {"model.devices=2", set};
    char *log = NULL;
    CHECK(run(what, sets, 2, &log) != 0);
    const char *msg = log ? strstr(log, "loraft train: ") : NULL;
    CHECK(msg && strstr(msg, needle));
    printf("%s: %s", what, msg ? msg : "(no message)\n");
    free(log);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int emulated = loraft_cuda_emu_count != NULL;
    if (emulated) setenv("LORAFT_EMU_DEVICES", "2", 1);
    require_cuda_device();
    LfError err;
    if (!ops_cuda.group_join) {
        CHECK(!emulated); /* the emulation always has its NCCL */
        if (!emulated) skip("this loraft was built without NCCL");
    }
    if (ops_cuda_device_count(&err) < 2) skip("data parallel needs two CUDA devices");
    CHECK(mkdtemp(tmp) != NULL);
    ssize_t len = readlink("/proc/self/exe", loraft, sizeof loraft - 16);
    CHECK(len > 0);
    loraft[len > 0 ? len : 0] = 0;
    char *slash = strrchr(loraft, '/');
    if (slash) strcpy(slash + 1, "loraft");
    char vocab[600], model[700], train_file[700], val_file[700], cfg[700];
    snprintf(vocab, sizeof vocab, "%s/vocab", tmp);
    mkdir(vocab, 0700);
    tiny_write_vocab(vocab);
    tiny_classifier_run(tmp, vocab, model, train_file, val_file);
    snprintf(cfg, sizeof cfg, "%s/cfg.json", tmp);
    FILE *f = fopen(cfg, "w");
    CHECK(f != NULL);
    if (f) {
        fprintf(f,
                "{\"model\": {\"model\": \"%s\", \"device\": \"cuda\", \"precision\": \"fp32\"},\n"
                " \"data\": {\"train_file\": \"%s\", \"validation_file\": \"%s\", "
                "\"format\": \"jsonl\"},\n"
                " \"lora\": {\"dropout\": 0.1, \"target_modules\": [\"q_lin\", \"v_lin\"]},\n"
                " \"train\": {\"batch_size\": 4, \"logging_steps\": 1, \"learning_rate\": 1e-2, "
                "\"lr_scheduler\": \"linear\"}}\n",
                model, train_file, val_file);
        fclose(f);
    }

    const char *lora[] = {"train.num_epochs=2"};
    check_pair("lora", lora, 1, "adapter_model.safetensors");
    const char *full[] = {"lora.strategy=full", "train.num_epochs=1", "train.learning_rate=1e-3"};
    check_pair("full", full, 3, "model.safetensors");

    int n = ops_cuda_device_count(&err);
    char more[64], says[96];
    snprintf(more, sizeof more, "model.devices=%d", n + 1);
    snprintf(says, sizeof says, "model.devices %d: this machine has %d CUDA devices", n + 1, n);
    check_failure("more devices than the machine has", more, says);
    char blocked[800];
    snprintf(blocked, sizeof blocked, "train.output_dir=%s/train.jsonl/run", tmp);
    check_failure("device 0 fails, device 1 waits", blocked, "train.jsonl/run");

    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    CHECK(system(cmd) == 0);
    return check_report();
}
