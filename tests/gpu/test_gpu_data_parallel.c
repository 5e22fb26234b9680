/* test_gpu_data_parallel.c: model.devices 2 (a process a device, gradients summed over NCCL
 * before each optimizer step, evaluation batches dealt to the devices in turn) trains and
 * evaluates as one device with twice the gradient accumulation.
 *
 * The pairs of `loraft train` runs, from the same tiny checkpoint on the same data (an epoch's
 * last step is one batch: device 1 has none and steps all the same; evaluation batches of 3, so
 * the devices evaluate unequal shares):
 * - a DistilBERT classifier on 26 lines (7 batches of 4) with LoRA (dropout 0.1: each batch must
 *   draw the masks one device would), precision fp32, 2 epochs, an evaluation before and after
 *   each (8 lines: 3 batches);
 * - the same with full fine-tuning (every weight's gradient summed), 1 epoch;
 * - where the GPT-2 tokenizer is in ../shared/data, a tiny Llama with LoRA: causal-lm on a
 *   corpus (7 steps; 10 held-out rows, 4 batches), and dpo on preference pairs (each device keeps
 *   the reference log-probs of its own batches; 7 held-out pairs, 3 batches).
 * Compared: every logged training loss and gradient norm (each step's: logging_steps 1), every
 * evaluation (its loss, and its accuracy and f1 or reward accuracy exactly: they are counts), and
 * every weight of the last checkpoint. The only difference allowed is the order of the sums
 * (one device adds the second batch's gradient into the first's inside its GEMMs, two devices
 * add two finished gradients; an evaluation's loss sum is added up in another order): losses
 * within 2e-6 relative, norms 2e-5, DPO's margin 1e-5 of its scale, weights within 1e-5 of their
 * tensor's largest (or of 1e-2, the initial weights' scale, for a tensor that is all rounding
 * noise: a key bias, which softmax ignores). The decoders' adapters within 1e-4: AdamW moves a
 * weight by up to the learning rate whatever its gradient's size, so the rounding of a gradient
 * small beside its history grows (the causal-lm run's q_proj B 7.3e-6 off after 5 steps at lr
 * 1e-2, its losses 2.6e-8). The differences are printed; under the emulation the classifier's
 * LoRA run has the same losses and adapter to the bit.
 * `loraft eval` of the LoRA classifier's adapter on 2 devices prints what it prints on one.
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

/* `loraft VERB --config tmp/cfg ARGS` (the loraft beside this test's executable), then `sets`;
 * its output (stdout and stderr) in tmp/name.log and *log (caller frees). A process of its own,
 * as a data-parallel run must start: dp_run forks before any other thread runs, and this test's
 * own process has run OpenMP loops by then. Returns the exit status. */
static int loraft_cmd(const char *verb, const char *cfg, const char *args, const char *name,
                      const char *const *sets, int n, char **log) {
    char cmd[8192], logpath[800];
    snprintf(logpath, sizeof logpath, "%s/%s.log", tmp, name);
    int len =
        snprintf(cmd, sizeof cmd, "'%s' %s --config '%s/%s' %s", loraft, verb, tmp, cfg, args);
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

/* `loraft train` of cfg into tmp/name. */
static int run(const char *cfg, const char *name, const char *const *sets, int n, char **log) {
    char out[800];
    snprintf(out, sizeof out, "--set train.output_dir='%s/%s'", tmp, name);
    return loraft_cmd("train", cfg, out, name, sets, n, log);
}

/* The run's metrics.jsonl: training losses and gradient norms, then evaluations: the loss,
 * accuracy (a classifier's, or DPO's reward accuracy), f1 and DPO's margin (NAN where absent). */
typedef struct Metrics {
    double loss[64], norm[64], eval[8], acc[8], f1[8], margin[8];
    int steps, evals;
} Metrics;

static double number_or_nan(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItem(o, key);
    return cJSON_IsNumber(v) ? cJSON_GetNumberValue(v) : NAN;
}

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
            int e = m->evals++;
            m->eval[e] = number_or_nan(o, "eval_loss");
            m->acc[e] = number_or_nan(o, cJSON_GetObjectItem(o, "accuracy") ? "accuracy"
                                                                            : "reward_accuracy");
            m->f1[e] = number_or_nan(o, "f1");
            m->margin[e] = number_or_nan(o, "margin");
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
            diff = worse(diff, fabs((double)u[k] - v[k]));
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

/* The optimizer steps an epoch that a run's log names; 0 if none. */
static int per_epoch(const char *log) {
    const char *at = log ? strstr(log, "optimizer steps (") : NULL;
    int n = 0;
    return at && sscanf(at, "optimizer steps (%d per epoch", &n) == 1 ? n : 0;
}

/* The counts that a log's evaluation lines end with ("(8 examples)", "(90 tokens predicted)"),
 * at most 8, into n; returns how many. */
static int eval_counts(const char *log, long *n) {
    int k = 0;
    for (const char *at = log; at && k < 8 && (at = strstr(at, ": eval_loss "));) {
        const char *end = at + strcspn(at, "\n"), *open = NULL;
        for (; at < end; at++)
            if (*at == '(') open = at;
        if (open && sscanf(open, "(%ld", &n[k]) == 1) k++;
    }
    return k;
}

/* a and b the same number, or both NAN (absent) */
static int same_or_absent(double a, double b) {
    return a == b || (isnan(a) && isnan(b));
}

/* One device with accumulation 2 against two devices with accumulation 1, both of cfg. */
static void check_pair(const char *cfg, const char *what, const char *const *sets, int n,
                       const char *weights, double weight_tol) {
    const char *one[8], *two[8];
    for (int k = 0; k < n; k++) one[k] = two[k] = sets[k];
    one[n] = "train.gradient_accumulation_steps=2";
    two[n] = "model.devices=2";
    char name1[64], name2[64], *log1 = NULL, *log2 = NULL;
    snprintf(name1, sizeof name1, "%s-1", what);
    snprintf(name2, sizeof name2, "%s-2", what);
    CHECK(run(cfg, name1, one, n + 1, &log1) == 0);
    CHECK(run(cfg, name2, two, n + 1, &log2) == 0);
    CHECK(log2 && strstr(log2, "batch 4 x 2 devices x 1 accumulation"));
    CHECK(per_epoch(log1) > 1 && per_epoch(log1) == per_epoch(log2));
    long counted1[8], counted2[8]; /* examples, tokens or pairs each evaluation counted */
    int k1 = eval_counts(log1, counted1), k2 = eval_counts(log2, counted2);
    CHECK(k1 > 1 && k1 == k2 && !memcmp(counted1, counted2, (size_t)k1 * sizeof *counted1));
    if (log2 && !strstr(log2, "x 2 devices")) fprintf(stderr, "%s\n", log2);
    if (log1 && !strstr(log1, "x 2 accumulation")) fprintf(stderr, "%s\n", log1);
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
        CHECK(same_or_absent(b.acc[i], a.acc[i]) && same_or_absent(b.f1[i], a.f1[i]));
        CHECK(same_or_absent(b.margin[i], a.margin[i]) ||
              fabs(b.margin[i] - a.margin[i]) <= 1e-5 * fmax(fabs(a.margin[i]), 1.0));
        worst_loss = fmax(worst_loss, fabs(b.eval[i] - a.eval[i]) / a.eval[i]);
    }
    CHECK(!isnan(a.acc[0]) || !strcmp(what, "causal-lm")); /* an accuracy where there is one */
    double worst_w = compare_weights(name1, name2, weights, weight_tol);
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
    CHECK(run("cfg.json", what, sets, 2, &log) != 0);
    const char *msg = log ? strstr(log, "loraft train: ") : NULL;
    CHECK(msg && strstr(msg, needle));
    printf("%s: %s", what, msg ? msg : "(no message)\n");
    free(log);
}

/* `loraft eval` of run/last's adapter on one device and on two: the same evaluation line. */
static void check_eval(const char *run_name) {
    char args[800], *log1 = NULL, *log2 = NULL;
    snprintf(args, sizeof args, "--adapter '%s/%s/last'", tmp, run_name);
    const char *one[] = {"model.devices=1"}, *two[] = {"model.devices=2"};
    CHECK(loraft_cmd("eval", "cfg.json", args, "eval-1", one, 1, &log1) == 0);
    CHECK(loraft_cmd("eval", "cfg.json", args, "eval-2", two, 1, &log2) == 0);
    const char *a = log1 ? strstr(log1, "eval: eval_loss") : NULL;
    const char *b = log2 ? strstr(log2, "eval: eval_loss") : NULL;
    size_t len = a ? strcspn(a, "\n") : 0;
    CHECK(a && b && strcspn(b, "\n") == len && !strncmp(a, b, len));
    printf("loraft eval on 2 devices: %.*s\n", (int)len, a ? a : "");
    if (!a || !b) fprintf(stderr, "%s\n%s\n", log1 ? log1 : "", log2 ? log2 : "");
    free(log1);
    free(log2);
}

/* A text of n paragraphs of two short sentences drawn from seed. */
static void write_corpus(const char *path, int n, uint64_t seed) {
    static const char *who[] = {"Emma", "Jane", "Harriet", "Frank"},
                      *did[] = {"walked to", "spoke of", "looked at", "wrote to"},
                      *what[] = {"the garden.", "the house.", "her friend.", "the letter."};
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    Rng rng = {seed, 0};
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            const char *a = who[rng_next(&rng) % 4], *b = did[rng_next(&rng) % 4];
            fprintf(f, "%s%s %s %s", k ? " " : "", a, b, what[rng_next(&rng) % 4]);
        }
        fputs("\n\n", f);
    }
    fclose(f);
}

/* n preference pairs {prompt, chosen (polite), rejected (rude)} drawn from seed. */
static void write_pairs(const char *path, int n, uint64_t seed) {
    static const char *topic[] = {"the garden", "my letter", "the weather", "the train"};
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    Rng rng = {seed, 0};
    for (int i = 0; i < n; i++) {
        const char *t = topic[rng_next(&rng) % 4];
        const char *polite =
            rng_next(&rng) % 2 ? "Gladly, here is what I know about" : "Of course! A word on";
        fprintf(
            f,
            "{\"prompt\": \"Human: Tell me about %s.\\n\\nAssistant:\", \"chosen\": \"%s %s.\", "
            "\"rejected\": \"No. Ask someone else about %s.\"}\n",
            t, polite, t, t);
    }
    fclose(f);
}

/* tmp/NAME: a config of the tiny Llama for task on train and validation files, LoRA on q and v. */
static void write_decoder_config(const char *name, const char *model, const char *task,
                                 const char *train, const char *val, const char *data_extra) {
    char path[800];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f,
            "{\"model\": {\"model\": \"%s\", \"device\": \"cuda\", \"precision\": \"fp32\", "
            "\"task\": \"%s\"},\n"
            " \"data\": {\"train_file\": \"%s\", \"validation_file\": \"%s\", %s},\n"
            " \"lora\": {\"dropout\": 0.1, \"target_modules\": [\"q_proj\", \"v_proj\"]},\n"
            " \"train\": {\"batch_size\": 4, \"eval_batch_size\": 3, \"logging_steps\": 1, "
            "\"learning_rate\": 1e-2, \"num_epochs\": 1}}\n",
            model, task, train, val, data_extra);
    fclose(f);
}

/* The tiny Llama trained for task on n_train records that write draws, evaluated on n_val more:
 * one device against two. */
static void check_decoder(const char *model, const char *task,
                          void (*write)(const char *path, int n, uint64_t seed), const char *ext,
                          int n_train, int n_val, const char *data_extra) {
    char train[800], val[800], cfg[64];
    snprintf(train, sizeof train, "%s/%s-train.%s", tmp, task, ext);
    snprintf(val, sizeof val, "%s/%s-val.%s", tmp, task, ext);
    snprintf(cfg, sizeof cfg, "cfg-%s.json", task);
    write(train, n_train, 11);
    write(val, n_val, 12);
    write_decoder_config(cfg, model, task, train, val, data_extra);
    check_pair(cfg, task, NULL, 0, "adapter_model.safetensors", 1e-4);
}

/* The decoder runs: a tiny Llama with the GPT-2 tokenizer, causal-lm on a corpus, then dpo. */
static void check_decoders(void) {
    char gpt2[600], model[700];
    snprintf(gpt2, sizeof gpt2, "%s/tokenizers/gpt2", shared_data_dir());
    struct stat st;
    if (stat(gpt2, &st)) {
        printf("skip: the decoder runs: %s (the tiny Llama's tokenizer) is absent\n", gpt2);
        return;
    }
    snprintf(model, sizeof model, "%s/llama", tmp);
    char *argv[] = {"--arch",          "llama", "--layers",   "2", "--hidden",     "32",
                    "--heads",         "4",     "--kv-heads", "2", "--ffn",        "48",
                    "--max-positions", "64",    "--seed",     "1", "--vocab-from", gpt2,
                    "--out",           model};
    CHECK(cmd_init(sizeof argv / sizeof *argv, argv) == 0);

    check_decoder(model, "causal-lm", write_corpus, "txt", 40, 10,
                  "\"text_unit\": \"paragraph\", \"max_length\": 16");
    check_decoder(model, "dpo", write_pairs, "jsonl", 26, 7,
                  "\"max_length\": 48, \"max_prompt_length\": 16");
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
                " \"train\": {\"batch_size\": 4, \"eval_batch_size\": 3, \"logging_steps\": 1, "
                "\"learning_rate\": 1e-2, \"lr_scheduler\": \"linear\"}}\n",
                model, train_file, val_file);
        fclose(f);
    }

    const char *lora[] = {"train.num_epochs=2"};
    check_pair("cfg.json", "lora", lora, 1, "adapter_model.safetensors", 1e-5);
    check_eval("lora-1");
    const char *full[] = {"lora.strategy=full", "train.num_epochs=1", "train.learning_rate=1e-3"};
    check_pair("cfg.json", "full", full, 3, "model.safetensors", 1e-5);
    check_decoders();

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
