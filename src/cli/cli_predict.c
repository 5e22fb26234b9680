/* cli_predict.c: `loraft predict` classifies texts with a model (plus an adapter) and
 * `loraft merge` folds a LoRA adapter into the base weights as a plain HF model directory or a
 * llama.cpp GGUF file. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/checkpoint.h"
#include "loraft/cli.h"
#include "loraft/gguf.h"
#include "loraft/gguf_export.h"
#include "loraft/tokenizer.h"

/* Prints "label<TAB>probability<TAB>text" for one text. */
static int predict_one(Model *m, const Tokenizer *tok, const char *text, int max_len, int32_t *ids,
                       int32_t *types, int32_t *mask, LfError *err) {
    IdList words = {0};
    if (tokenizer_encode(tok, text, strlen(text), &words, err)) return idlist_free(&words), -1;
    int T = tokenizer_build_inputs(tok, words.ids, (int)words.n, NULL, 0, max_len, 0, ids, types);
    idlist_free(&words);
    for (int t = 0; t < T; t++) mask[t] = 1;
    float loss, logits[MAX_LABELS];
    if (model_set_batch(m, ids, types, mask, NULL, 1, T, err) || model_forward(m, 0, &loss, err))
        return -1;
    int K = m->cfg.num_labels, best = 0;
    m->ops->download(logits, m->logits, K * sizeof(float));
    double z = 0;
    for (int k = 0; k < K; k++) {
        if (!isfinite(logits[k]))
            return lf_fail(err,
                           "the model's output for \"%.40s\" is %s: the weights are not finite",
                           text, isnan(logits[k]) ? "NaN" : "infinite");
        best = logits[k] > logits[best] ? k : best;
    }
    for (int k = 0; k < K; k++) z += exp((double)logits[k] - logits[best]);
    printf("%s\t%.4f\t%.60s%s\n", m->cfg.labels[best], 1.0 / z, text,
           strlen(text) > 60 ? "..." : "");
    return 0;
}

/* "a,b,c" -> the label names, which must be as many as the model's classes. */
static int set_labels(ModelConfig *cfg, const char *list, LfError *err) {
    char names[MAX_LABELS][64];
    int n = 0;
    for (const char *p = list; *p; n++) {
        size_t len = strcspn(p, ",");
        if (n == MAX_LABELS || len == 0 || len >= sizeof names[0])
            return lf_fail(err, "'%s' is not a comma-separated list of names", list);
        memcpy(names[n], p, len);
        names[n][len] = 0;
        p += len + (p[len] == ',');
    }
    if (n != cfg->num_labels)
        return lf_fail(err, "%d names given; the model has %d classes", n, cfg->num_labels);
    memcpy(cfg->labels, names, sizeof names[0] * n);
    return 0;
}

int cmd_predict(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *labels = NULL;
    CliRuntime rt = CLI_RUNTIME_DEFAULTS;
    int max_len = 0;
    CliList texts = {0};
    const CliOpt opts[] = {
        {"model", OPT_STR, &model, "HF model directory [required]"},
        {"adapter", OPT_STR, &adapter, "PEFT adapter directory (LoRA, or TrainableTokens)"},
        {"max-length", OPT_INT, &max_len,
         "truncate to this many tokens (default: the model's limit)"},
        CLI_RUNTIME_OPTS(rt),
        {"labels", OPT_STR, &labels, "label names in id order, e.g. negative,positive"},
    };
    int rc =
        cli_parse("loraft predict --model DIR [--adapter DIR] \"text\" ... (or lines on stdin)",
                  opts, sizeof opts / sizeof *opts, &texts, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model) return fprintf(stderr, "loraft predict: --model DIR is required\n"), 2;
    LfError err;
    Model m;
    Tokenizer *tok = NULL;
    const Ops *ops;
    BaseDtype dtype;
    Precision prec;
    if (cli_runtime(&rt, &ops, &dtype, &prec, &err) || tokenizer_load(&tok, model, &err)) {
        fprintf(stderr, "loraft predict: %s\n", err.msg);
        return 1;
    }
    int32_t *buf = NULL;
    if (model_open(&m, model, adapter, dtype, prec, ops, 1, max_len, &err)) {
        fprintf(stderr, "loraft predict: %s\n", err.msg);
        tokenizer_free(tok);
        return 1;
    }
    if (labels && set_labels(&m.cfg, labels, &err)) {
        fprintf(stderr, "loraft predict: --labels: %s\n", err.msg);
        model_free(&m);
        tokenizer_free(tok);
        return 2;
    }
    max_len = m.max_len;
    buf = malloc(3 * (size_t)max_len * sizeof *buf);
    rc = buf ? 0 : 1;
    for (int i = 0; !rc && i < texts.n; i++)
        rc = predict_one(&m, tok, texts.items[i], max_len, buf, buf + max_len, buf + 2 * max_len,
                         &err);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (!rc && !texts.n && (len = getline(&line, &cap, stdin)) > 0) {
        if (line[len - 1] == '\n') line[len - 1] = 0;
        rc = predict_one(&m, tok, line, max_len, buf, buf + max_len, buf + 2 * max_len, &err);
    }
    if (rc) fprintf(stderr, "loraft predict: %s\n", buf ? err.msg : "out of memory");
    free(line);
    free(buf);
    model_free(&m);
    tokenizer_free(tok);
    return rc ? 1 : 0;
}

/* --type of a GGUF merge: f16, q8_0 or f32. */
static int gguf_type_parse(const char *s, GgmlType *out) {
    static const struct {
        const char *name;
        GgmlType type;
    } types[] = {{"f16", GGML_F16}, {"q8_0", GGML_Q8_0}, {"f32", GGML_F32}};
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strcmp(s, types[i].name)) return *out = types[i].type, 0;
    return -1;
}

/* The merged model as an HF directory (atomically replaced as a whole) or a GGUF file. */
static int merge_write(Model *m, const char *model, const char *out, int gguf, GgmlType type,
                       LfError *err) {
    if (gguf) /* the tokenizer: the source GGUF's metadata, or the HF directory's files */
        return gguf_is_path(model) ? gguf_export_model(m, out, type, model, NULL, err)
                                   : cli_write_gguf(m, out, type, model, err);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    int rc =
        dir_remove(tmp, err) || model_dir_save(m, tmp, model, 1, err) || dir_commit(tmp, out, err);
    if (rc) dir_remove(tmp, NULL); /* a failed merge leaves nothing behind; out is untouched */
    return rc ? -1 : 0;
}

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL, *format = "hf", *type_name = "f16";
    const char *base_name = "f32";
    const CliOpt opts[] = {
        {"model", OPT_STR, &model, "base HF model directory or .gguf file [required]"},
        {"adapter", OPT_STR, &adapter,
         "PEFT adapter directory (LoRA, or TrainableTokens) [required]"},
        {"out", OPT_STR, &out, "output HF model directory, or .gguf file [required]"},
        {"format", OPT_STR, &format, "hf (default: an HF model directory) or gguf (llama.cpp)"},
        {"type", OPT_STR, &type_name, "gguf: type of the 2-D weights, f16 (default), q8_0 or f32"},
        {"base-dtype", OPT_STR, &base_name,
         "merge into the frozen weights as model.base_dtype stored them in training (bf16, "
         "q8_0 .. q4_0, nf4: rounded, then dequantised); default f32, as loaded"},
    };
    int rc = cli_parse("loraft merge --model M --adapter DIR --out OUT [--format hf|gguf]", opts,
                       sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model || !adapter || !out)
        return fprintf(stderr, "loraft merge: --model, --adapter and --out are required\n"), 2;
    GgmlType type;
    if (strcmp(format, "hf") && strcmp(format, "gguf"))
        return fprintf(stderr, "loraft merge: --format '%s': expected hf or gguf\n", format), 2;
    if (gguf_type_parse(type_name, &type))
        return fprintf(stderr, "loraft merge: --type '%s': expected f16, q8_0 or f32\n", type_name),
               2;
    LfError err;
    BaseDtype base;
    Model m;
    if (base_dtype_parse(base_name, &base, &err) ||
        model_open(&m, model, adapter, base, PRECISION_FP32, &ops_cpu, 1, 2, &err)) {
        fprintf(stderr, "loraft merge: %s\n", err.msg);
        return 1;
    }
    rc = merge_write(&m, model, out, !strcmp(format, "gguf"), type, &err);
    if (rc)
        fprintf(stderr, "loraft merge: %s\n", err.msg);
    else
        printf("merged %s + %s into %s (%d LoRA modules%s)\n", model, adapter, out,
               model_n_adapters(&m),
               model_merge_unties(&m) ? "; the LM head written apart from the token embedding "
                                        "it was tied to, each with its own adapter's change"
                                      : "");
    model_free(&m);
    return rc ? 1 : 0;
}
