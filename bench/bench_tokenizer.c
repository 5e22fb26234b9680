/* bench_tokenizer.c: WordPiece tokenization speed, one thread.
 *   bench_tokenizer TOKENIZER_DIR FILE.jsonl [REPEATS] Reads every "text" of the JSONL file
 *   (untimed), then times tokenizer_encode over all of them, REPEATS times (default 3), and
 *   prints the best pass in MB/s of text and tokens/s. bench/bench_tokenizer_hf.py measures
 *   Hugging Face `tokenizers` the same way. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "loraft/tokenizer.h"

typedef struct Texts {
    char **s;
    size_t *len, n, bytes;
} Texts;

static int read_texts(const char *path, Texts *t) {
    FILE *f = fopen(path, "r");
    if (!f) return perror(path), -1;
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    for (long lineno = 1; getline(&line, &cap, f) > 0; lineno++) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!cJSON_IsString(text)) {
            fprintf(stderr, "%s:%ld: no string field \"text\"\n", path, lineno);
            return -1;
        }
        if (t->n == alloc) {
            alloc = alloc ? 2 * alloc : 1024;
            t->s = realloc(t->s, alloc * sizeof *t->s);
            t->len = realloc(t->len, alloc * sizeof *t->len);
        }
        t->len[t->n] = strlen(text->valuestring);
        t->s[t->n++] = strdup(text->valuestring);
        t->bytes += strlen(text->valuestring);
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_tokenizer TOKENIZER_DIR FILE.jsonl [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 3 ? atoi(argv[3]) : 3;
    Tokenizer *tok;
    LfError err;
    Texts texts = {0};
    double t0 = now();
    if (tokenizer_load(&tok, argv[1], &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    double load_s = now() - t0;
    if (read_texts(argv[2], &texts)) return 1;
    IdList ids = {0};
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeats; r++) {
        tokens = 0;
        t0 = now();
        for (size_t i = 0; i < texts.n; i++) {
            ids.n = 0;
            if (tokenizer_encode(tok, texts.s[i], texts.len[i], &ids, &err)) {
                fprintf(stderr, "%s: text %zu: %s\n", argv[2], i + 1, err.msg);
                return 1;
            }
            tokens += ids.n;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    printf("loraft tokenizer: %zu texts, %.1f MB, %zu tokens; load %.1f ms\n", texts.n,
           texts.bytes / 1e6, tokens, 1e3 * load_s);
    printf("  best of %d: %.3f s  %.1f MB/s  %.2f M tokens/s (1 thread)\n", repeats, best,
           texts.bytes / 1e6 / best, tokens / 1e6 / best);
    idlist_free(&ids);
    tokenizer_free(tok);
    for (size_t i = 0; i < texts.n; i++) free(texts.s[i]);
    free(texts.s);
    free(texts.len);
    return 0;
}
