/* fuzz_util.h: what the fuzz targets share: a scratch directory for
 * the process (on /dev/shm when there is one: cheaper writes and fsyncs) and writing an input
 * into a file there (each target removes its files after every input), the byte alphabet
 * of byte-level BPE vocabularies, and a byte-level tokenizer of the data targets' own. */
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <unistd.h>

#include "loraft/text.h"

static char fuzz_dir_path[64];

static inline void fuzz_dir_remove(void) {
    rmdir(fuzz_dir_path);
}

/* The scratch directory, created on first use and removed at exit (when empty). */
static inline const char *fuzz_dir(void) {
    if (!fuzz_dir_path[0]) {
        struct stat st;
        const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/loraft-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir_path)) {
            perror(fuzz_dir_path);
            abort();
        }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* Writes data[0..size) to fuzz_dir()/name; returns the path (a static buffer). */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t size) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f)) {
        perror(path);
        abort();
    }
    return path;
}

/* The char GPT-2's byte alphabet writes for byte b, as UTF-8 (NUL-terminated): the vocabulary
 * of the byte-level tokenizers the targets build. */
static inline void fuzz_byte_char(int b, char out[3]) {
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE, c = b;
    if (!printable) {
        c = 0x100;
        for (int x = 0; x < b; x++)
            c += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    }
    if (c < 0x80)
        out[0] = (char)c, out[1] = 0;
    else
        out[0] = (char)(0xC0 | c >> 6), out[1] = (char)(0x80 | (c & 0x3F)), out[2] = 0;
}

/* A byte-level tokenizer built once: the 256 bytes, <|im_start|> (256), <|im_end|> (257) and
 * <|endoftext|> (258), no merges. */
static inline TextTokenizer *fuzz_byte_tokenizer(void) {
    static TextTokenizer tok;
    if (tok.bpe) return &tok;
    enum { CAP = 1 << 14 };
    char *json = malloc(CAP), c[3];
    int n = snprintf(json, CAP, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        fuzz_byte_char(b, c);
        n += snprintf(json + n, CAP - n, "\"%s%s\": %d%s", c[0] == '"' || c[0] == '\\' ? "\\" : "",
                      c, b, b < 255 ? ", " : "");
    }
    snprintf(json + n, CAP - n,
             "}, \"merges\": []}, \"added_tokens\": [{\"id\": 256, \"content\": \"<|im_start|>\", "
             "\"special\": true}, {\"id\": 257, \"content\": \"<|im_end|>\", \"special\": true}, "
             "{\"id\": 258, \"content\": \"<|endoftext|>\", \"special\": true}], "
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false}, "
             "\"post_processor\": null, \"decoder\": {\"type\": \"ByteLevel\"}}");
    LfError err;
    if (bpe_load_json(&tok.bpe, json, strlen(json), "fuzz", &err)) {
        fprintf(stderr, "fuzz_byte_tokenizer: %s\n", err.msg);
        abort();
    }
    free(json);
    tok.kind = TEXT_BPE;
    return &tok;
}

/* Stops the fuzzer with a message: a property of the API does not hold. */
#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
