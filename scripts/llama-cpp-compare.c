/* llama-cpp-compare.c: loraft's logits against llama.cpp's on the files loraft exports, for
 * scripts/check-llama-cpp.sh (which builds this against libllama and libloraft).
 *
 *   llama-cpp-compare BASE.gguf ADAPTER_DIR ADAPTER.gguf MERGED.gguf PROMPT...
 *
 * Each prompt is tokenized once (loraft's tokenizer of BASE, with its BOS) and run, all
 * positions at once, through three pairs of models:
 *   base     loraft: BASE                         llama.cpp: BASE
 *   adapter  loraft: BASE + ADAPTER_DIR (PEFT)    llama.cpp: BASE + --lora ADAPTER.gguf
 *   merged   loraft: MERGED                       llama.cpp: MERGED
 * and prints max |logit difference| over every position and the vocabulary, the share of
 * positions whose argmax agrees, and how far the adapter moves loraft's logits from the base
 * (so that a no-op adapter cannot pass). Not a test of loraft on its own: the "base" row is
 * the floor that llama.cpp's quantised kernels (activations rounded to 8 bits for Q4_1
 * weights) put under the other two. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"
#include "loraft/checkpoint.h"
#include "loraft/text.h"

#define MAX_PROMPTS 8
#define MAX_LEN 256

typedef struct Prompt {
    IdList ids;
    float *logits[3][2]; /* [base | adapter | merged][loraft | llama.cpp], T x V */
} Prompt;

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

/* loraft's logits of every position of every prompt, for model (+ adapter_dir). */
static int loraft_logits(const char *model, const char *adapter_dir, Prompt *p, int n, int V,
                         int slot) {
    Model m;
    LfError err;
    if (model_open(&m, model, adapter_dir, &ops_cpu, 1, MAX_LEN, &err))
        return fprintf(stderr, "loraft: %s\n", err.msg), -1;
    int rc = m.cfg.vocab_size == V ? 0 : -1;
    for (int i = 0; rc == 0 && i < n; i++) {
        int T = (int)p[i].ids.n;
        int32_t mask[MAX_LEN];
        float loss;
        for (int t = 0; t < T; t++) mask[t] = 1;
        p[i].logits[slot][0] = malloc((size_t)T * V * sizeof(float));
        rc = !p[i].logits[slot][0] ||
                     model_set_batch(&m, p[i].ids.ids, NULL, mask, NULL, 1, T, &err) ||
                     model_forward(&m, 0, 0, 1.0f, &loss, &err) ||
                     model_lm_logits(&m, 0, T, p[i].logits[slot][0], &err)
                 ? -1
                 : 0;
    }
    if (rc) fprintf(stderr, "loraft: %s: %s\n", model, err.msg);
    model_free(&m);
    return rc;
}

/* llama.cpp's logits of every position of every prompt, for model (+ the LoRA GGUF lora). */
static int llama_logits(const char *model, const char *lora, Prompt *p, int n, int V, int slot) {
    struct llama_model *lm = llama_model_load_from_file(model, llama_model_default_params());
    if (!lm) return fprintf(stderr, "llama.cpp: cannot load %s\n", model), -1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = MAX_LEN;
    cp.n_threads = cp.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(lm, cp);
    struct llama_adapter_lora *ad = lora ? llama_adapter_lora_init(lm, lora) : NULL;
    float scale = 1.0f;
    int rc = !ctx || (lora && (!ad || llama_set_adapters_lora(ctx, &ad, 1, &scale)));
    if (rc)
        fprintf(stderr, "llama.cpp: cannot set up %s%s%s\n", model, lora ? " + " : "",
                lora ? lora : "");
    if (!rc && llama_vocab_n_tokens(llama_model_get_vocab(lm)) != V)
        rc = fprintf(stderr, "llama.cpp: %s has another vocabulary size\n", model);
    for (int i = 0; !rc && i < n; i++) {
        int T = (int)p[i].ids.n;
        struct llama_batch b = llama_batch_init(T, 0, 1);
        for (int t = 0; t < T; t++) {
            b.token[t] = p[i].ids.ids[t];
            b.pos[t] = t;
            b.n_seq_id[t] = 1;
            b.seq_id[t][0] = 0;
            b.logits[t] = 1;
        }
        b.n_tokens = T;
        llama_memory_clear(llama_get_memory(ctx), 1);
        rc = llama_decode(ctx, b) != 0;
        float *out = p[i].logits[slot][1] = malloc((size_t)T * V * sizeof(float));
        for (int t = 0; !rc && out && t < T; t++)
            memcpy(out + (size_t)t * V, llama_get_logits_ith(ctx, t), (size_t)V * sizeof(float));
        rc = rc || !out;
        llama_batch_free(b);
        if (rc) fprintf(stderr, "llama.cpp: decoding prompt %d failed\n", i);
    }
    if (ad) llama_adapter_lora_free(ad);
    if (ctx) llama_free(ctx);
    llama_model_free(lm);
    return rc ? -1 : 0;
}

static int argmax(const float *x, int V) {
    int best = 0;
    for (int v = 1; v < V; v++) best = x[v] > x[best] ? v : best;
    return best;
}

/* max |a - b| over all prompts' positions, a and b given as logits[a / 2][a % 2]; *agree:
 * positions with the same argmax, of *total. */
static double max_diff(const Prompt *p, int n, int V, int sa, int sb, int *agree, int *total) {
    double d = 0;
    *agree = *total = 0;
    for (int i = 0; i < n; i++) {
        const float *a = p[i].logits[sa / 2][sa % 2], *b = p[i].logits[sb / 2][sb % 2];
        for (size_t t = 0; t < p[i].ids.n; t++) {
            for (int v = 0; v < V; v++) d = fmax(d, fabs((double)a[t * V + v] - b[t * V + v]));
            *agree += argmax(a + t * V, V) == argmax(b + t * V, V);
            (*total)++;
        }
    }
    return d;
}

int main(int argc, char **argv) {
    ops_cpu_select_blas_kernels(argv);
    if (argc < 6 || argc - 5 > MAX_PROMPTS) {
        fprintf(stderr,
                "usage: %s BASE.gguf ADAPTER_DIR ADAPTER.gguf MERGED.gguf PROMPT... (1-%d)\n",
                argv[0], MAX_PROMPTS);
        return 2;
    }
    const char *base = argv[1], *adapter_dir = argv[2], *adapter = argv[3], *merged = argv[4];
    int n = argc - 5;
    Prompt p[MAX_PROMPTS] = {0};
    TextTokenizer tok;
    LfError err;
    ModelConfig cfg;
    if (text_tokenizer_open(&tok, base, &err) || model_config_load(&cfg, base, &err))
        return fprintf(stderr, "%s\n", err.msg), 1;
    for (int i = 0; i < n; i++) {
        if (bpe_encode(tok.bpe, argv[5 + i], strlen(argv[5 + i]), 1, &p[i].ids, &err))
            return fprintf(stderr, "%s\n", err.msg), 1;
        if (p[i].ids.n > MAX_LEN) p[i].ids.n = MAX_LEN;
    }
    text_tokenizer_close(&tok);
    llama_log_set(quiet, NULL);
    llama_backend_init();
    int V = cfg.vocab_size;
    if (loraft_logits(base, NULL, p, n, V, 0) || llama_logits(base, NULL, p, n, V, 0) ||
        loraft_logits(base, adapter_dir, p, n, V, 1) || llama_logits(base, adapter, p, n, V, 1) ||
        loraft_logits(merged, NULL, p, n, V, 2) || llama_logits(merged, NULL, p, n, V, 2))
        return 1;
    static const char *const rows[] = {"base", "adapter", "merged"};
    int agree, total;
    printf("%d prompts, vocabulary %d\n", n, V);
    for (int r = 0; r < 3; r++) {
        double d = max_diff(p, n, V, 2 * r, 2 * r + 1, &agree, &total);
        printf("%-8s max |logit loraft - llama.cpp| = %.4g   argmax agrees at %d/%d positions\n",
               rows[r], d, agree, total);
    }
    double moved = max_diff(p, n, V, 0, 2, &agree, &total);
    printf("the adapter moves loraft's logits by up to %.4g (argmax changed at %d/%d positions)\n",
           moved, total - agree, total);
    llama_backend_free();
    return 0;
}
