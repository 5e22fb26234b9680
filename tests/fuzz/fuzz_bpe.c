/* fuzz_bpe.c: libFuzzer target for the byte-level BPE tokenizer (src/bpe.c) and its NFC
 * normalizer (src/text/normalize.c). The first input byte picks what the rest is:
 *   0..3  text, encoded by one of four small tokenizers built here once (GPT-2's pipeline;
 *         Llama-3's split with ignore_merges and a BOS template; Digits + ByteLevel with
 *         add_prefix_space; added tokens with lstrip/rstrip/normalized), then decoded: valid UTF-8
 *         must come back unchanged where no step drops or adds text (the first two);
 *   4     token ids (4 bytes each, any value), decoded: the text must be valid UTF-8;
 *   5     a tokenizer.json, loaded (most fail; one that loads encodes a fixed text);
 *   6     text, encoded by a fifth tokenizer, Qwen2's NFC + split with added tokens that NFC
 *         respells (all normalized=true), then decoded: that must give NFC(text), and NFC of
 *         that must be itself.
 * Not a test of agreement with Hugging Face: the goldens and bench/check_bpe_parity.py do that. */
#include "loraft/bpe.h"
#include "loraft/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { N_TOK = 5 };

static const char *PRE[N_TOK] = {
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}",
    ("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
     "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
     "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
     "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
     "\"add_prefix_space\": false, \"use_regex\": false}]}"),
    ("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": "
     "true}, {\"type\": \"ByteLevel\", \"add_prefix_space\": true}]}"),
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}",
    ("{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": "
     "\"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
     "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
     "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
     "\"add_prefix_space\": false, \"use_regex\": false}]}"),
};

static const char *EXTRA[N_TOK] = {"", ", \"ignore_merges\": true", "", "", ""};

static const char *NORMALIZER[N_TOK] = {"null", "null", "null", "null", "{\"type\": \"NFC\"}"};

static const char *ADDED[N_TOK] = {
    "[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}]",
    "[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true, \"normalized\": false}]",
    "[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}]",
    ("[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}, {\"id\": 271, "
     "\"content\": "
     "\"<m>\", \"lstrip\": true, \"rstrip\": true, \"normalized\": false}, {\"id\": 272, "
     "\"content\": \"é \", \"rstrip\": true}, {\"id\": 273, \"content\": \" x\", \"lstrip\": "
     "true}]"),
    ("[{\"id\": 270, \"content\": \"<|endoftext|>\", \"special\": true}, {\"id\": 271, "
     "\"content\": \"\\u03b1\\u0301x\"}, {\"id\": 272, \"content\": \"\\u2126\"}, {\"id\": 273, "
     "\"content\": \"\\u1100\\u1161\"}]"),
};

static const char *POST[N_TOK] = {
    "null",
    ("{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": "
     "{\"id\": \"<|endoftext|>\"}}, "
     "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": "
     "{\"<|endoftext|>\": {\"ids\": [270]}}}"),
    "null", "null", "null"};

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
             "\"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s, "
             "\"post_processor\": %s, \"decoder\": {\"type\": \"ByteLevel\"}}",
             ADDED[k], NORMALIZER[k], PRE[k], POST[k]);
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
    static Bpe *tok[N_TOK];
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

/* Tokenizer 4: decode(encode(x)) is NFC(x) (its added tokens are all matched in normalized text
 * and named as NFC spells them, with chars outside the byte alphabet, which the decoder keeps as
 * they are), and NFC(NFC(x)) is NFC(x). */
static void nfc_round_trip(const char *text, size_t n) {
    static Bpe *tok;
    static Nfc z, z2;
    if (!tok) tok = build(4);
    IdList ids = {0};
    LfError err;
    if (bpe_encode(tok, text, n, 0, &ids, &err) == 0) {
        const char *norm, *again;
        size_t len, len2, back_len;
        char *back;
        if (nfc_normalize(&z, text, n, &norm, &len, &err) ||
            bpe_decode(tok, ids.ids, ids.n, 0, &back, &back_len, &err))
            abort();
        if (back_len != len || memcmp(back, norm, len)) abort();
        if (nfc_normalize(&z2, norm, len, &again, &len2, &err) || len2 != len ||
            memcmp(again, norm, len))
            abort();
        free(back);
    }
    free(ids.ids);
}

static void load_json(const uint8_t *data, size_t size) {
    Bpe *t;
    LfError err;
    if (bpe_load_json(&t, (const char *)data, size, "fuzz-input", &err)) return;
    IdList ids = {0};
    static const char text[] =
        "Hello  world 123 <|endoftext|> 'll\n\ne\xcc\x81 \xe1\x84\x80\xe1\x85\xa1";
    bpe_encode(t, text, sizeof text - 1, 1, &ids, &err);
    free(ids.ids);
    bpe_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!size) return 0;
    int mode = data[0] % 7;
    /* an exact-size copy, so ASan catches reads one past the end */
    char *rest = malloc(size - 1 ? size - 1 : 1);
    memcpy(rest, data + 1, size - 1);
    if (mode < 4) encode_decode(mode, rest, size - 1);
    if (mode == 4) decode_ids((const uint8_t *)rest, size - 1);
    if (mode == 5) load_json((const uint8_t *)rest, size - 1);
    if (mode == 6) nfc_round_trip(rest, size - 1);
    free(rest);
    return 0;
}
