/* tiny.h: tiny seeded checkpoints for tests, with a 40-token vocabulary written to disk, so
 * model tests need neither downloads nor ../shared/data. */
#pragma once
#include <stdio.h>
#include <sys/stat.h>

#include "check.h"
#include "loraft/cli.h"
#include "loraft/rng.h"

/* dir/vocab.txt: the five BERT special tokens, then w0 .. w34. dir must exist. */
static inline void tiny_write_vocab(const char *dir) {
    char path[700];
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n", f);
    for (int i = 0; i < 35; i++) fprintf(f, "w%d\n", i);
    fclose(f);
}

/* `loraft init` of a 2-layer model with hidden size `hidden` into out, its random weights of
 * standard deviation std (0: the config's 0.02). */
static inline void tiny_checkpoint_std(const char *arch, int hidden, int labels, float std,
                                       const char *vocab, const char *out) {
    char h[16], ffn[16], k[16], sd[32];
    snprintf(h, sizeof h, "%d", hidden);
    snprintf(ffn, sizeof ffn, "%d", hidden * 3 / 2);
    snprintf(k, sizeof k, "%d", labels);
    snprintf(sd, sizeof sd, "%g", std);
    char *argv[] = {"--init-std",      sd,         "--arch",       (char *)arch,
                    "--layers",        "2",        "--hidden",     h,
                    "--heads",         "2",        "--ffn",        ffn,
                    "--max-positions", "16",       "--num-labels", k,
                    "--seed",          "3",        "--vocab-from", (char *)vocab,
                    "--out",           (char *)out};
    CHECK(cmd_init(sizeof argv / sizeof *argv, argv) == 0);
}

static inline void tiny_checkpoint(const char *arch, int hidden, int labels, const char *vocab,
                                   const char *out) {
    tiny_checkpoint_std(arch, hidden, labels, 0.0f, vocab, out);
}

/* A jsonl file of n lines {"text": words w0..w34 of the tiny vocabulary, "label": 0 or 1}: most
 * lines 9 words, one in four 4, so batches of 4 repeat a shape often but not always. */
static inline void tiny_write_lines(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    Rng rng = {seed, 0};
    for (int i = 0; i < n; i++) {
        int words = rng_next(&rng) % 4 ? 9 : 4;
        fputs("{\"text\": \"", f);
        for (int w = 0; w < words; w++)
            fprintf(f, "%sw%d", w ? " " : "", (int)(rng_next(&rng) % 35));
        fprintf(f, "\", \"label\": %d}\n", (int)(rng_next(&rng) % 2));
    }
    fclose(f);
}

/* A whole run's inputs in dir: a tiny DistilBERT classifier (hidden 32, 2 labels) and jsonl
 * files of 26 training and 8 validation lines; their paths into model, train and val (700
 * bytes each). */
static inline void tiny_classifier_run(const char *dir, const char *vocab, char *model, char *train,
                                       char *val) {
    snprintf(model, 700, "%s/distilbert", dir);
    snprintf(train, 700, "%s/train.jsonl", dir);
    snprintf(val, 700, "%s/val.jsonl", dir);
    tiny_checkpoint("distilbert", 32, 2, vocab, model);
    tiny_write_lines(train, 26, 5);
    tiny_write_lines(val, 8, 6);
}
