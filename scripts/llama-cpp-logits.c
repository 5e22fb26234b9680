/* llama-cpp-logits.c: llama.cpp's logits for scripts/check-llama-cpp.sh, which builds it against
 * libllama (beside loraft-logits.c, its loraft twin: the two cannot share a process, since
 * libloraft and ggml both define gguf_* functions).
 *
 *   llama-cpp-logits MODEL.gguf LORA.gguf|- IDS.jsonl OUT.f32
 *
 * IDS.jsonl holds one prompt a line as `loraft tokenize` prints it ({"ids":[1,2,3]}); each
 * prompt runs alone, all positions in one batch, with the LoRA adapter at scale 1 when given
 * (llama.cpp's --lora), and OUT.f32 gets the logits of every position of every prompt, f32
 * [positions, vocabulary] in prompt order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logits-ids.h"

#include "llama.h"

#define MAX_LEN 512

static void quiet(enum ggml_log_level level, const char *text, void *user) {
    (void)user;
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

/* Logits of every position of ids[0..T) into out. */
static int run(struct llama_context *ctx, const llama_token *ids, int T, int V, FILE *out) {
    struct llama_batch b = llama_batch_init(T, 0, 1);
    for (int t = 0; t < T; t++) {
        b.token[t] = ids[t];
        b.pos[t] = t;
        b.n_seq_id[t] = 1;
        b.seq_id[t][0] = 0;
        b.logits[t] = 1;
    }
    b.n_tokens = T;
    llama_memory_clear(llama_get_memory(ctx), 1);
    int rc = llama_decode(ctx, b) != 0;
    for (int t = 0; !rc && t < T; t++)
        rc = fwrite(llama_get_logits_ith(ctx, t), sizeof(float), (size_t)V, out) != (size_t)V;
    llama_batch_free(b);
    return rc ? -1 : 0;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s MODEL.gguf LORA.gguf|- IDS.jsonl OUT.f32\n", argv[0]);
        return 2;
    }
    llama_log_set(quiet, NULL);
    llama_backend_init();
    struct llama_model *model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return fprintf(stderr, "llama.cpp: cannot load %s\n", argv[1]), 1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = cp.n_batch = cp.n_ubatch = MAX_LEN;
    cp.n_threads = cp.n_threads_batch = 2;
    struct llama_context *ctx = llama_init_from_model(model, cp);
    struct llama_adapter_lora *lora =
        strcmp(argv[2], "-") ? llama_adapter_lora_init(model, argv[2]) : NULL;
    float scale = 1.0f;
    if (!ctx || (strcmp(argv[2], "-") && (!lora || llama_set_adapters_lora(ctx, &lora, 1, &scale))))
        return fprintf(stderr, "llama.cpp: cannot use %s with %s\n", argv[2], argv[1]), 1;
    FILE *in = fopen(argv[3], "r"), *out = fopen(argv[4], "wb");
    if (!in || !out) return fprintf(stderr, "cannot open %s or %s\n", argv[3], argv[4]), 1;
    int V = llama_vocab_n_tokens(llama_model_get_vocab(model)), rc = 0, T;
    char line[16384];
    int32_t ids[MAX_LEN]; /* llama_token */
    while (!rc && fgets(line, sizeof line, in))
        if ((T = parse_ids(line, ids, MAX_LEN)) <= 0 || run(ctx, ids, T, V, out))
            rc = fprintf(stderr, "llama.cpp: prompt '%.60s' failed\n", line);
    fclose(in);
    if (fclose(out)) rc = 1;
    if (lora) llama_adapter_lora_free(lora);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return rc ? 1 : 0;
}
