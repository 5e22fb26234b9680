/* bench_bpe.c: byte-level BPE tokenization speed, one thread, and an id dump for the parity check.
 *   bench_bpe TOKENIZER FILE [REPEATS]   times bpe_encode over FILE (best of REPEATS, default 3)
 *                                        and prints MB/s of text and tokens/s;
 *   bench_bpe --ids TOKENIZER FILE       prints the ids of each text as a JSON array per line.
 * TOKENIZER is a tokenizer.json or a directory (bpe_load). FILE is JSONL with a "text" field per
 * line, or any other file, read as one text. bench/bench_bpe_hf.py measures Hugging Face
 * `tokenizers` the same way; bench/check_bpe_parity.py uses --ids. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "loraft/bpe.h"
#include "loraft/fileio.h"

typedef struct Texts {
    char **s;
    size_t *len, n, bytes;
} Texts;

static void add_text(Texts *t, const char *s, size_t len) {
    t->s = realloc(t->s, (t->n + 1) * sizeof *t->s);
    t->len = realloc(t->len, (t->n + 1) * sizeof *t->len);
    t->s[t->n] = malloc(len + 1);
    memcpy(t->s[t->n], s, len);
    t->s[t->n][len] = 0;
    t->len[t->n++] = len;
    t->bytes += len;
}

static int read_texts(const char *path, Texts *t) {
    char *data;
    size_t len;
    LfError err;
    if (file_read_all(path, &data, &len, &err)) return fprintf(stderr, "%s\n", err.msg), -1;
    size_t n = strlen(path);
    if (n < 6 || strcmp(path + n - 6, ".jsonl")) {
        add_text(t, data, len);
        free(data);
        return 0;
    }
    long lineno = 1;
    for (char *p = data, *nl; p < data + len; p = nl + 1, lineno++) {
        nl = memchr(p, '\n', (size_t)(data + len - p));
        if (!nl) nl = data + len;
        cJSON *j = cJSON_ParseWithLength(p, (size_t)(nl - p));
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!cJSON_IsString(text)) {
            fprintf(stderr, "%s:%ld: no string field \"text\"\n", path, lineno);
            return -1;
        }
        add_text(t, text->valuestring, strlen(text->valuestring));
        cJSON_Delete(j);
    }
    free(data);
    return 0;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int dump_ids(const Bpe *tok, const Texts *texts) {
    IdList ids = {0};
    LfError err;
    for (size_t i = 0; i < texts->n; i++) {
        ids.n = 0;
        if (bpe_encode(tok, texts->s[i], texts->len[i], 0, &ids, &err))
            return fprintf(stderr, "text %zu: %s\n", i + 1, err.msg), 1;
        putchar('[');
        for (size_t k = 0; k < ids.n; k++) printf(k ? ",%d" : "%d", ids.ids[k]);
        puts("]");
    }
    free(ids.ids);
    return 0;
}

static int bench(const Bpe *tok, const Texts *texts, int repeats, double load_s) {
    IdList ids = {0};
    LfError err;
    double best = 1e30;
    size_t tokens = 0;
    for (int r = 0; r < repeats; r++) {
        tokens = 0;
        double t0 = now();
        for (size_t i = 0; i < texts->n; i++) {
            ids.n = 0;
            if (bpe_encode(tok, texts->s[i], texts->len[i], 0, &ids, &err))
                return fprintf(stderr, "text %zu: %s\n", i + 1, err.msg), 1;
            tokens += ids.n;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    double mb = texts->bytes / 1e6;
    printf("loraft bpe: load %.3f s; %zu texts, %.1f MB, %zu tokens\n", load_s, texts->n, mb,
           tokens);
    printf("  best of %d: %.3f s  %.1f MB/s  %.2f M tokens/s (1 thread)\n", repeats, best,
           mb / best, tokens / best / 1e6);
    free(ids.ids);
    return 0;
}

int main(int argc, char **argv) {
    int dump = argc > 1 && !strcmp(argv[1], "--ids");
    if (argc < 3 + dump) {
        fprintf(stderr,
                "usage: bench_bpe TOKENIZER FILE [REPEATS] | bench_bpe --ids TOKENIZER FILE\n");
        return 2;
    }
    Bpe *tok;
    LfError err;
    Texts texts = {0};
    double t0 = now();
    if (bpe_load(&tok, argv[1 + dump], &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    double load_s = now() - t0;
    if (read_texts(argv[2 + dump], &texts)) return 1;
    int rc =
        dump ? dump_ids(tok, &texts) : bench(tok, &texts, argc > 3 ? atoi(argv[3]) : 3, load_s);
    for (size_t i = 0; i < texts.n; i++) free(texts.s[i]);
    free(texts.s);
    free(texts.len);
    bpe_free(tok);
    return rc;
}
