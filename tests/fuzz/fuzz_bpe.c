/* fuzz_bpe.c: libFuzzer target for the byte-level BPE tokenizer (src/bpe.c). The first input
 * byte picks what the rest is:
 *   0..3  text, encoded by one of four small tokenizers built here once (GPT-2's pipeline;
 *         Llama-3's split with ignore_merges and a BOS template; Digits + ByteLevel with
 *         add_prefix_space; added tokens with lstrip/rstrip/normalized), then decoded: valid UTF-8
 *         must come back unchanged where no step drops or adds text (the first two);
 *   4     token ids (4 bytes each, any value), decoded: the text must be valid UTF-8;
 *   5     a tokenizer.json, loaded (most fail; one that loads encodes a fixed text).
 * Not a test of agreement with Hugging Face: the goldens and bench/check_bpe_parity.py do that. */
#include "loraft/bpe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *PRE[4] = {
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}",
    ("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
     "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
     "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
     "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
     "\"add_prefix_space\": false, \"use_regex\": false}]}"),
    ("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": "
     "true}, {\"type\": \"ByteLevel\", \"add_prefix_space\": true}]}"),
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}",
};

static const char *EXTRA[4] = {"", ", \"ignore_merges\": true", "", ""};

static const char *ADDED[4] = {
    "[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}]",
    "[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true, \"normalized\": false}]",
    "[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}]",
    ("[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}, {\"id\": 271, "
     "\"content\": "
     "\"<m>\", \"lstrip\": true, \"rstrip\": true, \"normalized\": false}, {\"id\": 272, "
     "\"content\": \"é \", \"rstrip\": true}, {\"id\": 273, \"content\": \" x\", \"lstrip\": "
     "true}]"),
};

static const char *POST[4] = {"null",
                              ("{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
                               "{\"id\": \"<|endoftext|>\"}}, "
                               "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": "
                               "{\"<|endoftext|>\": {\"ids\": [270]}}}"),
                              "null", "null"};

/* Tokens 256.. and the merges that make them, in rank order. */
static const char *MERGED[][2] = {{"Ġ", "t"},  {"h", "e"}, {"Ġt", "he"}, {"a", "a"}, {"aa", "a"},
                                  {"1", "2"},  {"Ġ", "Ġ"}, {"Ċ", "Ċ"},   {"Ã", "©"}, {"i", "n"},
                                  {"Ġ", "in"}, {"'", "s"}, {"ĠĠ", "ĠĠ"}, {"Ġ", "1"}};

static Bpe *build(int k) {
    enum { CAP = 1 << 15 };
    char *json = malloc(CAP), c[3];
    int n = snprintf(json, CAP, "{\"model\": {\"type\": \"BPE\"%s, \"vocab\": {", EXTRA[k]);
    for (int b = 0; b < 256; b++) {
        fuzz_byte_char(b, c);
        n += snprintf(json + n, CAP - n, "\"%s%s\": %d, ", c[0] == '"' || c[0] == '\\' ? "\\" : "",
                      c, b);
    }
    int nm = (int)(sizeof MERGED / sizeof *MERGED);
    for (int i = 0; i < nm; i++)
        n += snprintf(json + n, CAP - n, "\"%s%s\": %d%s", MERGED[i][0], MERGED[i][1], 256 + i,
                      i + 1 < nm ? ", " : "}, \"merges\": [");
    for (int i = 0; i < nm; i++)
        n += snprintf(json + n, CAP - n, "[\"%s\", \"%s\"]%s", MERGED[i][0], MERGED[i][1],
                      i + 1 < nm ? ", " : "]}, ");
    snprintf(json + n, CAP - n,
             "\"added_tokens\": %s, \"pre_tokenizer\": %s, \"post_processor\": %s, "
             "\"decoder\": {\"type\": \"ByteLevel\"}}",
             ADDED[k], PRE[k], POST[k]);
    Bpe *t;
    LfError err;
    if (bpe_load_json(&t, json, strlen(json), "fuzz", &err)) {
        fprintf(stderr, "fuzz_bpe: tokenizer %d: %s\n", k, err.msg);
        abort();
    }
    free(json);
    return t;
}

static int valid_utf8(const char *s, size_t n) {
    IdList ids = {0};
    LfError err;
    static Bpe *probe;
    if (!probe) probe = build(0);
    int ok = bpe_encode(probe, s, n, 0, &ids, &err) == 0; /* encode validates UTF-8 first */
    free(ids.ids);
    return ok;
}

static void encode_decode(int k, const char *text, size_t n) {
    static Bpe *tok[4];
    if (!tok[k]) tok[k] = build(k);
    IdList ids = {0};
    LfError err;
    if (bpe_encode(tok[k], text, n, k == 1, &ids, &err) == 0) {
        char *out;
        size_t len;
        size_t bos = k == 1; /* the template's BOS comes first */
        if (ids.n < bos ||
            bpe_decode(tok[k], ids.n ? ids.ids + bos : NULL, ids.n - bos, 0, &out, &len, &err))
            abort();
        if (k < 2 && (len != n || memcmp(out, text, n))) abort(); /* round trip */
        free(out);
    }
    free(ids.ids);
}

static void decode_ids(const uint8_t *data, size_t size) {
    static Bpe *tok;
    if (!tok) tok = build(3);
    size_t n = size / 4;
    int32_t *ids = malloc(n ? n * sizeof *ids : 1);
    memcpy(ids, data, n * 4);
    char *out;
    size_t len;
    LfError err;
    for (int skip = 0; skip < 2; skip++) {
        if (bpe_decode(tok, ids, n, skip, &out, &len, &err) || strlen(out) > len ||
            !valid_utf8(out, len))
            abort();
        free(out);
    }
    free(ids);
}

static void load_json(const uint8_t *data, size_t size) {
    Bpe *t;
    LfError err;
    if (bpe_load_json(&t, (const char *)data, size, "fuzz-input", &err)) return;
    IdList ids = {0};
    static const char text[] = "Hello  world 123 <|endoftext|> 'll\n\n";
    bpe_encode(t, text, sizeof text - 1, 1, &ids, &err);
    free(ids.ids);
    bpe_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    int mode = data[0] % 6;
    /* an exact-size copy, so ASan catches reads one past the end */
    char *rest = malloc(size - 1 ? size - 1 : 1);
    memcpy(rest, data + 1, size - 1);
    if (mode < 4) encode_decode(mode, rest, size - 1);
    if (mode == 4) decode_ids((const uint8_t *)rest, size - 1);
    if (mode == 5) load_json((const uint8_t *)rest, size - 1);
    free(rest);
    return 0;
}
