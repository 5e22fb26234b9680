/* test_tokenizer.c: the WordPiece tokenizer against Hugging Face goldens
 * (tests/golden/tokenizer_bert_*.jsonl, from scripts/make-tokenizer-goldens.py) on the shared
 * bert-base-uncased files, plus hand-checked cases on a tiny vocabulary the test writes itself,
 * and the error paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "loraft/tokenizer.h"

static char tmpdir[] = "/tmp/test_tokenizer_XXXXXX";

static void write_text(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

static void remove_files(const char *dir) {
    static const char *names[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json"};
    for (int i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
}

/* A fresh subdirectory of tmpdir holding the given vocab.txt (NULL: none). */
static const char *make_dir(const char *name, const char *vocab) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmpdir, name);
    if (mkdir(dir, 0700)) {
        perror(dir);
        exit(1);
    }
    if (vocab) write_text(dir, "vocab.txt", vocab);
    return dir;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "  %s (%d):", label, n);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

/* ids[] of a JSON array into out; returns the count. */
static int json_ids(const cJSON *arr, IdList *out) {
    out->n = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) idlist_push(out, v->valueint, NULL);
    return (int)out->n;
}

static int encode_n(const Tokenizer *t, const char *text, size_t len, IdList *ids) {
    ids->n = 0;
    LfError err;
    if (tokenizer_encode(t, text, len, ids, &err)) {
        fprintf(stderr, "encode \"%s\": %s\n", text, err.msg);
        return -1;
    }
    return 0;
}

static int encode(const Tokenizer *t, const char *text, IdList *ids) {
    return encode_n(t, text, strlen(text), ids);
}

/* A record's text: "<key>_hex" (UTF-8 bytes in hex, for texts with NUL) when present, else
 * "<key>"; malloc'd, NULL when absent. */
static char *record_text(const cJSON *rec, const char *key, size_t *len) {
    char hex_key[32];
    snprintf(hex_key, sizeof hex_key, "%s_hex", key);
    const cJSON *hex = cJSON_GetObjectItem(rec, hex_key), *plain = cJSON_GetObjectItem(rec, key);
    if (!plain) return NULL;
    const char *src = hex ? hex->valuestring : plain->valuestring;
    *len = hex ? strlen(src) / 2 : strlen(src);
    char *out = malloc(*len + 1);
    for (size_t i = 0; i < *len; i++) {
        unsigned byte = 0;
        if (hex) sscanf(src + 2 * i, "%2x", &byte);
        out[i] = hex ? (char)byte : src[i];
    }
    out[*len] = 0;
    return out;
}

/* One golden record: returns 1 when equal, else prints the first differences. */
static int check_record(const Tokenizer *t, const cJSON *rec, int *printed) {
    size_t len, pair_len = 0;
    char *text = record_text(rec, "text", &len), *pair = record_text(rec, "text_pair", &pair_len);
    const cJSON *max = cJSON_GetObjectItem(rec, "max_length");
    const cJSON *side = cJSON_GetObjectItem(rec, "truncation_side");
    IdList a = {0}, b = {0}, want = {0}, want_types = {0};
    int n_want = json_ids(cJSON_GetObjectItem(rec, "ids"), &want);
    json_ids(cJSON_GetObjectItem(rec, "type_ids"), &want_types);
    int ok = !encode_n(t, text, len, &a) && (!pair || !encode_n(t, pair, pair_len, &b));
    int32_t *got = a.ids, out[600], types[600];
    int n_got = (int)a.n;
    if (ok && max) {
        n_got =
            tokenizer_build_inputs(t, a.ids, (int)a.n, pair ? b.ids : NULL, (int)b.n, max->valueint,
                                   !strcmp(side->valuestring, "left"), out, types);
        got = out;
    }
    ok = ok && n_got == n_want && (n_got == 0 || !memcmp(got, want.ids, n_got * sizeof *got));
    if (ok && pair) ok = !memcmp(types, want_types.ids, n_got * sizeof *types);
    if (!ok && (*printed)++ < 3) {
        fprintf(stderr, "golden mismatch on text \"%s\"%s%s\n", text, pair ? " + pair " : "",
                pair ? pair : "");
        print_ids("loraft", got, n_got);
        print_ids("hf    ", want.ids, n_want);
    }
    free(text);
    free(pair);
    idlist_free(&a);
    idlist_free(&b);
    idlist_free(&want);
    idlist_free(&want_types);
    return ok;
}

static void check_golden(const char *tokenizer_dir, const char *golden) {
    Tokenizer *t;
    LfError err;
    if (tokenizer_load(&t, tokenizer_dir, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(!"tokenizer loads");
        return;
    }
    FILE *f = fopen(golden, "r");
    CHECK(f != NULL);
    if (!f) return tokenizer_free(t);
    char *line = NULL;
    size_t cap = 0;
    int n = 0, good = 0, printed = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *rec = cJSON_Parse(line);
        n++;
        good += rec && check_record(t, rec, &printed);
        cJSON_Delete(rec);
    }
    free(line);
    fclose(f);
    printf("%s: %d of %d records id-identical\n", golden, good, n);
    CHECK(n > 600 && good == n);
    tokenizer_free(t);
}

/* Encodes text and compares with the expected tokens, spelled out. */
static void check_tokens(const Tokenizer *t, const char *text, const char *const *want, int n) {
    IdList ids = {0};
    int ok = !encode(t, text, &ids) && (int)ids.n == n;
    for (int i = 0; ok && i < n; i++) ok = !strcmp(tokenizer_token(t, ids.ids[i]), want[i]);
    if (!ok) {
        fprintf(stderr, "tokens of \"%s\":", text);
        for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %s", tokenizer_token(t, ids.ids[i]));
        fprintf(stderr, "\n");
    }
    CHECK(ok);
    idlist_free(&ids);
}
#define TOKENS(t, text, ...)                                                                       \
    check_tokens(t, text, (const char *const[]){__VA_ARGS__},                                      \
                 sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void test_invalid_utf8(const Tokenizer *t);
static void test_build_inputs(const Tokenizer *t);

/* The last entry is x U+1D165 U+1D16D (musical stem, ccc 216; flag, ccc 226). */
static const char *tiny_vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\naff\n"
                                "a\nab\n##b\n##bc\n##c\n,\n!\n##a\ncafe\n"
                                "x\xf0\x9d\x85\xa5\xf0\x9d\x85\xad\n";

/* WordPiece rules on a vocabulary small enough to check by hand. */
static void test_tiny_vocab(void) {
    const char *dir = make_dir("tiny", tiny_vocab);
    Tokenizer *t;
    LfError err;
    CHECK(tokenizer_load(&t, dir, &err) == 0);
    CHECK(tokenizer_vocab_size(t) == 19);
    CHECK(tokenizer_special(t, TOK_PAD) == 0 && tokenizer_special(t, TOK_UNK) == 1);
    CHECK(tokenizer_special(t, TOK_CLS) == 2 && tokenizer_special(t, TOK_SEP) == 3);
    CHECK(tokenizer_special(t, TOK_MASK) == 4);
    CHECK(tokenizer_lookup(t, "##aff") == 6 && tokenizer_lookup(t, "nope") == -1);
    CHECK(!strcmp(tokenizer_token(t, 17), "cafe") && tokenizer_token(t, 19) == NULL);
    CHECK(tokenizer_token(t, -1) == NULL);
    TOKENS(t, "unaffable", "un", "##aff", "##able");
    TOKENS(t, "UnAffable aff", "un", "##aff", "##able", "aff"); /* lowercased */
    TOKENS(t, "abc", "ab", "##c");                              /* longest first, not a ##bc */
    TOKENS(t, "abbc", "ab", "##bc");
    TOKENS(t, "unaffablex ab", "[UNK]", "ab"); /* one unmatched piece: whole word [UNK] */
    TOKENS(t, "a,b!", "a", ",", "[UNK]", "!"); /* punctuation splits */
    TOKENS(t, "Café\tCAFE\n", "cafe", "cafe"); /* accents stripped, whitespace */
    TOKENS(t, "a[SEP]b [CLS]", "a", "[SEP]", "[UNK]", "[CLS]");
    TOKENS(t, "[sep]", "[UNK]", "[UNK]", "[UNK]"); /* added tokens are case-sensitive */
    TOKENS(t,
           "a\x01\xe2\x80\x8b"
           "b",
           "ab"); /* control and zero-width chars are dropped inside a word */
    IdList ids = {0};
    /* NFD puts the two non-starters in combining-class order (Unicode canonical ordering) */
    CHECK(encode(t, "X\xf0\x9d\x85\xad\xf0\x9d\x85\xa5", &ids) == 0 && ids.n == 1 &&
          ids.ids[0] == 18);
    char word[160];
    memset(word, 'a', 100);
    word[100] = 0;
    CHECK(encode(t, word, &ids) == 0 && ids.n == 100); /* a ##a ##a ... */
    word[100] = 'a', word[101] = 0;
    CHECK(encode(t, word, &ids) == 0 && ids.n == 1 && ids.ids[0] == 1); /* > 100 chars */
    CHECK(encode(t, "", &ids) == 0 && ids.n == 0);
    idlist_free(&ids);
    test_invalid_utf8(t);
    test_build_inputs(t);
    tokenizer_free(t);
    remove_files(dir);
    rmdir(dir);
}

static void test_invalid_utf8(const Tokenizer *t) {
    static const struct {
        const char *text;
        const char *offset;
    } cases[] = {{"ab\xff"
                  "cd",
                  "offset 2"},
                 {"hello \xe4\xb8", "offset 6"},      /* truncated */
                 {"\xc0\x80", "offset 0"},            /* overlong NUL */
                 {"x\xed\xa0\x80", "offset 1"},       /* surrogate */
                 {"ok \xf4\x90\x80\x80", "offset 3"}, /* > U+10FFFF */
                 {"caf\xc3\xa9 \x80", "offset 6"}};   /* stray continuation */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        IdList ids = {0};
        idlist_push(&ids, 42, NULL);
        LfError err = {{0}};
        CHECK(tokenizer_encode(t, cases[i].text, strlen(cases[i].text), &ids, &err) == -1);
        CHECK(strstr(err.msg, "invalid UTF-8") && strstr(err.msg, cases[i].offset));
        CHECK(ids.n == 1 && ids.ids[0] == 42); /* left as it was */
        idlist_free(&ids);
    }
}

static void test_build_inputs(const Tokenizer *t) {
    int32_t a[] = {10, 11, 12, 13, 14}, b[] = {20, 21}, out[16], types[16];
    /* single, right and left truncation */
    CHECK(tokenizer_build_inputs(t, a, 5, NULL, 0, 5, 0, out, types) == 5);
    CHECK(out[0] == 2 && out[1] == 10 && out[3] == 12 && out[4] == 3 && types[4] == 0);
    CHECK(tokenizer_build_inputs(t, a, 5, NULL, 0, 4, 1, out, NULL) == 4);
    CHECK(out[1] == 13 && out[2] == 14);
    CHECK(tokenizer_build_inputs(t, a, 0, NULL, 0, 2, 0, out, NULL) == 2);
    CHECK(tokenizer_build_inputs(t, a, 5, NULL, 0, 1, 0, out, NULL) == -1);
    /* pair, longest first: 5 + 2 into 6 - 3 = 3 slots -> 2 + 1 */
    CHECK(tokenizer_build_inputs(t, a, 5, b, 2, 6, 0, out, types) == 6);
    CHECK(out[1] == 10 && out[2] == 11 && out[3] == 3 && out[4] == 20 && out[5] == 3);
    CHECK(types[3] == 0 && types[4] == 1 && types[5] == 1);
    CHECK(tokenizer_build_inputs(t, a, 5, b, 2, 2, 0, out, types) == -1);
}

static void expect_load_error(const char *dir, const char *what) {
    Tokenizer *t = NULL;
    LfError err = {{0}};
    CHECK(tokenizer_load(&t, dir, &err) == -1 && t == NULL);
    if (!strstr(err.msg, what)) fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err.msg, what);
    CHECK(strstr(err.msg, what) != NULL);
}

static void test_load_errors(void) {
    expect_load_error("/nonexistent/tokenizer", "no tokenizer.json or vocab.txt");
    const char *dir = make_dir("empty", "");
    expect_load_error(dir, "empty vocabulary");
    remove_files(dir);
    rmdir(dir);
    dir = make_dir("nounk", "a\nb\n");
    expect_load_error(dir, "\"[UNK]\" is not in the vocabulary");
    remove_files(dir);
    rmdir(dir);
    dir = make_dir("badjson", NULL);
    write_text(dir, "tokenizer.json", "{\n  \"model\": {\n    \"type\": }\n}\n");
    expect_load_error(dir, "tokenizer.json:3: invalid JSON");
    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}");
    expect_load_error(dir, "only BERT WordPiece");
    write_text(
        dir, "tokenizer.json",
        "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"[UNK]\": 0, \"a\": 900000000}}, "
        "\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"}}");
    expect_load_error(dir, "token ids reach 900000000 but only 2 tokens are listed");
    remove_files(dir);
    rmdir(dir);
}

static void test_copy_files(void) {
    const char *src = make_dir("copy_src", tiny_vocab);
    write_text(src, "tokenizer_config.json", "{\"do_lower_case\": false}");
    char src_dir[512];
    snprintf(src_dir, sizeof src_dir, "%s", src);
    const char *dst = make_dir("copy_dst", NULL);
    LfError err;
    CHECK(tokenizer_copy_files(src_dir, dst, &err) == 0);
    Tokenizer *t;
    CHECK(tokenizer_load(&t, dst, &err) == 0);
    CHECK(tokenizer_vocab_size(t) == 19);
    TOKENS(t, "UN un", "[UNK]", "un"); /* the copied config: cased */
    tokenizer_free(t);
    CHECK(tokenizer_copy_files("/nonexistent", dst, &err) == -1);
    remove_files(src_dir);
    remove_files(dst);
    rmdir(src_dir);
    rmdir(dst);
}

int main(void) {
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_tiny_vocab();
    test_load_errors();
    test_copy_files();

    char dir[512], vocab_src[600];
    snprintf(dir, sizeof dir, "%s/tokenizers/bert-base-uncased", shared_data_dir());
    snprintf(vocab_src, sizeof vocab_src, "%s/vocab.txt", dir);
    if (access(vocab_src, R_OK)) {
        rmdir(tmpdir);
        printf("%d passed, %d failed before the goldens\n", check_passed, check_failed);
        if (check_failed) return 1;
        skip("../shared/data/tokenizers/bert-base-uncased is absent: golden parity not checked");
    }
    check_golden(dir, "tests/golden/tokenizer_bert_uncased.jsonl");

    /* cased: the same vocab.txt alone, with do_lower_case false */
    const char *cased = make_dir("cased", NULL);
    char cased_dir[512], path[600];
    snprintf(cased_dir, sizeof cased_dir, "%s", cased);
    LfError err;
    CHECK(tokenizer_copy_files(dir, cased_dir, &err) == 0);
    snprintf(path, sizeof path, "%s/tokenizer.json", cased_dir);
    CHECK(unlink(path) == 0);
    write_text(cased_dir, "tokenizer_config.json", "{\"do_lower_case\": false}\n");
    check_golden(cased_dir, "tests/golden/tokenizer_bert_cased.jsonl");
    remove_files(cased_dir);
    rmdir(cased_dir);
    rmdir(tmpdir);
    return check_report();
}
