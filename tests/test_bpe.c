/* test_bpe.c: the byte-level BPE tokenizer against Hugging Face goldens
 * (tests/golden/bpe_*.jsonl, from scripts/make-bpe-goldens.py): ids without and with special
 * tokens, decoding with and without them, and decode(encode(x)) == x, for GPT-2 loaded three
 * ways (tokenizer.json, vocab.json + merges.txt, GGUF-style arrays), GPT-2 under Llama-3's
 * pre-tokenizer and under Qwen2's normalizer (NFC) and pre-tokenizer (also as GGUF's "qwen2"),
 * and SmolLM2 (tokenizer.json and arrays; skipped without its tokenizer.json, see
 * scripts/extract-smollm2-tokenizer.sh). The NFC normalizer on its own: cases worked out from the
 * UCD and `tokenizers`' NFC of every composed code point (tests/golden/bpe_nfc.txt). Then a tiny
 * tokenizer written here and the error paths. SentencePiece-style BPE (test_spm): a byte_fallback
 * BPE trained on Austen (tests/golden/spm_*, scripts/make-spm-goldens.py) in Llama 2's spelling
 * and in Metaspace's, against `tokenizers`; as GGUF arrays, a GGUF file and loraft's own
 * bpe_to_arrays, against llama.cpp's SPM encoding (SentencePiece's ids, cut at special tokens).
 * Gemma's (test_gemma): one trained with Gemma's options in Gemma's spelling, against `tokenizers`
 * (also through bpe_to_arrays and back), and the GGUF arrays llama.cpp's converter writes for it,
 * against llama.cpp's ids; Split(" ", MergedWithPrevious) on a tokenizer written here. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "loraft/bpe.h"
#include "loraft/fileio.h"
#include "loraft/gguf.h"
#include "loraft/normalize.h"
#include "loraft/text.h"
#include "loraft/utf8.h"

static cJSON *read_json(const char *path) {
    char *text;
    size_t len;
    LfError err;
    if (file_read_all(path, &text, &len, &err)) return NULL;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    return j;
}

/* tokenizer.json at path with a golden's "edit" applied, as text (caller frees). */
static char *edited_json(const char *path, const cJSON *edit) {
    cJSON *root = read_json(path);
    if (!root) return NULL;
    const cJSON *e;
    cJSON_ArrayForEach(e, edit) {
        if (!strcmp(e->string, "ignore_merges")) {
            cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
            cJSON_DeleteItemFromObjectCaseSensitive(model, "ignore_merges");
            cJSON_AddItemToObject(model, "ignore_merges", cJSON_Duplicate(e, 1));
        } else {
            cJSON_ReplaceItemInObjectCaseSensitive(root, e->string, cJSON_Duplicate(e, 1));
        }
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

/* GGUF-style arrays from a tokenizer.json: tokens by id, "a b" merges, special added tokens as
 * CONTROL. */
typedef struct Arrays {
    BpeArrays a;
    char **tokens, **merges;
    int32_t *types;
} Arrays;

static int arrays_from_json(Arrays *out, const char *path, const char *pre) {
    cJSON *root = read_json(path);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *v;
    if (!vocab || !merges) return cJSON_Delete(root), -1;
    int n = cJSON_GetArraySize(vocab), m = cJSON_GetArraySize(merges);
    *out = (Arrays){.tokens = calloc((size_t)n, sizeof(char *)),
                    .merges = calloc((size_t)m, sizeof(char *)),
                    .types = malloc((size_t)n * sizeof(int32_t))};
    cJSON_ArrayForEach(v, vocab) {
        out->tokens[v->valueint] = strdup(v->string);
        out->types[v->valueint] = BPE_TOKEN_NORMAL;
    }
    int i = 0;
    cJSON_ArrayForEach(v, merges) {
        const char *a = cJSON_IsString(v) ? v->valuestring : cJSON_GetArrayItem(v, 0)->valuestring;
        const char *b = cJSON_IsString(v) ? "" : cJSON_GetArrayItem(v, 1)->valuestring;
        size_t len = strlen(a) + strlen(b) + 2;
        out->merges[i] = malloc(len);
        snprintf(out->merges[i++], len, cJSON_IsString(v) ? "%s%s" : "%s %s", a, b);
    }
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(root, "added_tokens")) {
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(v, "special")))
            out->types[cJSON_GetObjectItemCaseSensitive(v, "id")->valueint] = BPE_TOKEN_CONTROL;
    }
    out->a = (BpeArrays){.tokens = (const char *const *)out->tokens,
                         .n_tokens = n,
                         .merges = (const char *const *)out->merges,
                         .n_merges = m,
                         .token_types = out->types,
                         .pre = pre,
                         .bos_id = -1,
                         .eos_id = -1};
    cJSON_Delete(root);
    return 0;
}

static void arrays_free(Arrays *a) {
    for (int i = 0; i < a->a.n_tokens; i++) free(a->tokens[i]);
    for (int i = 0; i < a->a.n_merges; i++) free(a->merges[i]);
    free(a->tokens);
    free(a->merges);
    free(a->types);
}

static size_t unhex(const char *hex, char *out) {
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = 0;
    return n;
}

static int same_ids(const IdList *ids, const cJSON *want) {
    if ((int)ids->n != cJSON_GetArraySize(want)) return 0;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, want) if (ids->ids[i++] != v->valueint) return 0;
    return 1;
}

static void print_ids(const char *label, const IdList *ids) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < ids->n && i < 40; i++) fprintf(stderr, " %d", ids->ids[i]);
    fprintf(stderr, "\n");
}

static void expect_ids(const Bpe *t, const char *text, const int32_t *want, size_t n) {
    IdList ids = {0};
    LfError err;
    CHECK_OK(bpe_encode(t, text, strlen(text), 0, &ids, &err), &err);
    int ok = ids.n == n && (!n || !memcmp(ids.ids, want, n * sizeof *want));
    CHECK(ok);
    if (!ok) print_ids(text, &ids);
    idlist_free(&ids);
}

/* One golden record: ids, ids with special tokens, both decodings, and the round trip
 * decode(encode(x)) == x (not with lstrip/rstrip tokens: they swallow spaces). */
static void check_record(const Bpe *t, const cJSON *rec, const char *label, int lineno,
                         int roundtrip) {
    const char *hex = cJSON_GetObjectItemCaseSensitive(rec, "hex")->valuestring;
    char *text = malloc(strlen(hex) / 2 + 1), *want = malloc(strlen(hex) + 64);
    size_t len = unhex(hex, text);
    IdList ids = {0};
    LfError err;
    static const char *keys[2] = {"ids", "ids_special"};
    for (int special = 0; special < 2; special++) {
        ids.n = 0;
        CHECK_OK(bpe_encode(t, text, len, special, &ids, &err), &err);
        int ok = same_ids(&ids, cJSON_GetObjectItemCaseSensitive(rec, keys[special]));
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "%s line %d (%s): %s differ for \"%.60s\"\n", label, lineno, hex,
                    keys[special], text);
            print_ids("loraft", &ids);
        }
    }
    static const char *dec_keys[2] = {"decoded_hex", "decoded_skip_hex"};
    for (int skip = 0; skip < 2; skip++) {
        char *out;
        size_t n;
        const char *want_hex = cJSON_GetObjectItemCaseSensitive(rec, dec_keys[skip])->valuestring;
        free(want);
        want = malloc(strlen(want_hex) / 2 + 1);
        size_t want_len = unhex(want_hex, want);
        CHECK_OK(bpe_decode(t, ids.ids, ids.n, skip, &out, &n, &err), &err);
        CHECK(n == want_len && !memcmp(out, want, n));
        free(out);
    }
    if (roundtrip) {
        ids.n = 0;
        char *back;
        size_t n;
        CHECK_OK(bpe_encode(t, text, len, 0, &ids, &err), &err);
        CHECK_OK(bpe_decode(t, ids.ids, ids.n, 0, &back, &n, &err), &err);
        CHECK(n == len && !memcmp(back, text, len));
        free(back);
    }
    free(text);
    free(want);
    idlist_free(&ids);
}

static void check_golden(const Bpe *t, const char *golden, const char *label, int roundtrip) {
    FILE *f = fopen(golden, "r");
    if (!f) {
        perror(golden);
        CHECK(0);
        return;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, failed = check_failed;
    while (getline(&line, &cap, f) > 0) {
        cJSON *rec = cJSON_Parse(line);
        if (++lineno > 1) check_record(t, rec, label, lineno, roundtrip);
        cJSON_Delete(rec);
    }
    free(line);
    fclose(f);
    printf("%s: %d texts%s\n", label, lineno - 1, check_failed > failed ? " FAILED" : "");
}

/* A golden's first line, {"tokenizer": ..., "edit": {...}}; NULL when unreadable. */
static cJSON *golden_head(const char *golden) {
    FILE *f = fopen(golden, "r");
    char *line = NULL;
    size_t cap = 0;
    cJSON *head = f && getline(&line, &cap, f) > 0 ? cJSON_Parse(line) : NULL;
    free(line);
    if (f) fclose(f);
    return head;
}

/* The golden's tokenizer from tokenizer.json with its edit applied. */
static Bpe *golden_tokenizer(const char *golden, const char *json_path) {
    cJSON *head = golden_head(golden);
    if (!head) return NULL;
    char *text = edited_json(json_path, cJSON_GetObjectItemCaseSensitive(head, "edit"));
    cJSON_Delete(head);
    Bpe *t = NULL;
    LfError err;
    if (!text || bpe_load_json(&t, text, strlen(text), json_path, &err)) {
        fprintf(stderr, "%s: %s\n", json_path, text ? err.msg : "unreadable");
        t = NULL;
    }
    free(text);
    return t;
}

static void check_json_golden(const char *golden, const char *json_path, const char *label,
                              int roundtrip) {
    Bpe *t = golden_tokenizer(golden, json_path);
    CHECK(t != NULL);
    if (t) check_golden(t, golden, label, roundtrip);
    bpe_free(t);
}

static void check_arrays_golden(const char *golden, const char *json_path, const char *pre,
                                const char *label, int roundtrip) {
    Arrays a;
    Bpe *t = NULL;
    LfError err;
    CHECK(arrays_from_json(&a, json_path, pre) == 0);
    CHECK_OK(bpe_from_arrays(&t, &a.a, &err), &err);
    if (t) check_golden(t, golden, label, roundtrip);
    bpe_free(t);
    arrays_free(&a);
}

/* The arrays as a GGUF file's tokenizer.ggml.* metadata (model "gpt2" unless told), written
 * to path; the token types are left out when types is 0. */
static int write_gguf_tokenizer(const char *path, const Arrays *a, const char *model, int types,
                                LfError *err) {
    GgufWriteKV kv[8] = {
        {.key = "general.architecture", .type = GGUF_STRING, .s = "gpt2"},
        {.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = model},
        {.key = "tokenizer.ggml.pre", .type = GGUF_STRING, .s = a->a.pre ? a->a.pre : "gpt-2"},
        {.key = "tokenizer.ggml.tokens",
         .type = GGUF_ARRAY,
         .elem_type = GGUF_STRING,
         .n = (uint64_t)a->a.n_tokens,
         .arr = a->tokens},
        {.key = "tokenizer.ggml.merges",
         .type = GGUF_ARRAY,
         .elem_type = GGUF_STRING,
         .n = (uint64_t)a->a.n_merges,
         .arr = a->merges},
        {.key = "tokenizer.ggml.bos_token_id", .type = GGUF_UINT32, .u = 50256},
        {.key = "tokenizer.ggml.add_bos_token", .type = GGUF_BOOL, .b = 0},
        {.key = "tokenizer.ggml.token_type",
         .type = GGUF_ARRAY,
         .elem_type = GGUF_INT32,
         .n = (uint64_t)a->a.n_tokens,
         .arr = a->types},
    };
    return gguf_write(path, kv, types ? 8 : 7, NULL, 0, 32, err);
}

/* text.h's front door: a GGUF file's tokenizer (bpe_from_gguf) gives GPT-2's golden ids, and
 * each kind of path picks its engine. */
static void test_front_door(const char *dir, const char *json) {
    Arrays a;
    LfError err;
    char gguf[64] = "/tmp/test_bpe_XXXXXX.gguf";
    int fd = mkstemps(gguf, 5);
    CHECK(fd >= 0 && close(fd) == 0);
    CHECK(arrays_from_json(&a, json, "gpt-2") == 0);
    CHECK_OK(write_gguf_tokenizer(gguf, &a, "gpt2", 1, &err), &err);
    TextTokenizer t;
    CHECK_OK(text_tokenizer_open(&t, gguf, &err), &err);
    if (t.bpe) check_golden(t.bpe, "tests/golden/bpe_gpt2.jsonl", "gpt2 from a GGUF file", 1);
    text_tokenizer_close(&t);
    CHECK_OK(write_gguf_tokenizer(gguf, &a, "llama", 1, &err), &err); /* no scores */
    CHECK(text_tokenizer_open(&t, gguf, &err) == -1 && strstr(err.msg, "scores") &&
          strstr(err.msg, gguf));
    CHECK_OK(write_gguf_tokenizer(gguf, &a, "bert", 1, &err), &err);
    CHECK(text_tokenizer_open(&t, gguf, &err) == -1 && strstr(err.msg, "'bert'") &&
          strstr(err.msg, gguf));
    arrays_free(&a);
    unlink(gguf);

    const char *paths[3] = {dir, json, NULL};
    char bert[600];
    snprintf(bert, sizeof bert, "%s/tokenizers/bert-base-uncased", shared_data_dir());
    paths[2] = bert;
    for (int i = 0; i < 3; i++) {
        CHECK_OK(text_tokenizer_open(&t, paths[i], &err), &err);
        CHECK(t.kind == (i < 2 ? TEXT_BPE : TEXT_WORDPIECE) && (t.bpe != NULL) == (i < 2));
        IdList ids = {0};
        CHECK_OK(text_encode(&t, "Hello, world!", 13, &ids, &err), &err);
        CHECK(ids.n == 4 && (i == 2 || (ids.ids[0] == 15496 && ids.ids[3] == 0)));
        idlist_free(&ids);
        text_tokenizer_close(&t);
    }
    CHECK(text_tokenizer_open(&t, "tests/check.h", &err) == -1 && strstr(err.msg, "check.h"));
}

/* The texts of a golden: n of them, each malloc'd, in malloc'd arrays. */
static size_t golden_texts(const char *golden, char ***texts, size_t **lens) {
    FILE *f = fopen(golden, "r");
    char *line = NULL;
    size_t cap = 0, n = 0;
    *texts = NULL;
    *lens = NULL;
    while (f && getline(&line, &cap, f) > 0) {
        cJSON *rec = cJSON_Parse(line);
        const cJSON *hex = cJSON_GetObjectItemCaseSensitive(rec, "hex");
        if (cJSON_IsString(hex)) {
            *texts = realloc(*texts, (n + 1) * sizeof **texts);
            *lens = realloc(*lens, (n + 1) * sizeof **lens);
            (*texts)[n] = malloc(strlen(hex->valuestring) / 2 + 1);
            (*lens)[n] = unhex(hex->valuestring, (*texts)[n]);
            n++;
        }
        cJSON_Delete(rec);
    }
    free(line);
    if (f) fclose(f);
    return n;
}

/* How many of texts[0..n) a and b encode differently (without special tokens). */
static int encode_mismatches(const Bpe *a, const Bpe *b, char **texts, const size_t *lens,
                             size_t n) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        IdList x = {0}, y = {0};
        LfError err;
        int ok = !bpe_encode(a, texts[i], lens[i], 0, &x, &err) &&
                 !bpe_encode(b, texts[i], lens[i], 0, &y, &err) && x.n == y.n &&
                 (!x.n || !memcmp(x.ids, y.ids, x.n * sizeof *x.ids));
        if (!ok && bad++ < 3) fprintf(stderr, "  encodes differently: \"%.60s\"\n", texts[i]);
        idlist_free(&x);
        idlist_free(&y);
    }
    return bad;
}

/* GGUF's "qwen2" is Qwen2's split without NFC (transformers' GGUF reader, llama.cpp): it encodes
 * every Qwen2 golden text as the tokenizer.json with just that pre-tokenizer does, and
 * bpe_to_arrays names it "qwen2", as it does the tokenizer.json with NFC (GGUF has no key for the
 * normalizer). */
static void test_qwen2_gguf(const char *json) {
    const char *golden = "tests/golden/bpe_gpt2_qwen2.jsonl";
    cJSON *head = golden_head(golden), *edit = cJSON_CreateObject();
    CHECK(head != NULL);
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(head, "edit"), "pre_tokenizer");
    cJSON_AddItemToObject(edit, "pre_tokenizer", cJSON_Duplicate(pre, 1));
    char *text = edited_json(json, edit);
    cJSON_Delete(head);
    cJSON_Delete(edit);
    Bpe *ref = NULL, *gguf = NULL, *back = NULL, *nfc = golden_tokenizer(golden, json);
    LfError err;
    Arrays a;
    CHECK(text && nfc);
    CHECK_OK(bpe_load_json(&ref, text, strlen(text), json, &err), &err);
    free(text);
    CHECK(arrays_from_json(&a, json, "qwen2") == 0);
    CHECK_OK(bpe_from_arrays(&gguf, &a.a, &err), &err);
    size_t *lens;
    char **texts;
    size_t n = golden_texts(golden, &texts, &lens);
    BpeArrays out;
    void *mem = NULL;
    CHECK(n > 600);
    if (ref && gguf && nfc) {
        CHECK(encode_mismatches(ref, gguf, texts, lens, n) == 0);
        expect_ids(gguf, "2024", (int32_t[]){17, 15, 17, 19}, 4); /* one digit a number */
        CHECK_OK(bpe_to_arrays(gguf, &out, &mem, &err), &err);
        CHECK(out.pre && !strcmp(out.pre, "qwen2"));
        CHECK_OK(bpe_from_arrays(&back, &out, &err), &err);
        if (back) CHECK(encode_mismatches(gguf, back, texts, lens, n) == 0);
        free(mem);
        mem = NULL;
        CHECK_OK(bpe_to_arrays(nfc, &out, &mem, &err), &err);
        CHECK(out.pre && !strcmp(out.pre, "qwen2"));
        /* an added token with normalized=true: named as NFC spells it, found as written */
        CHECK(!strcmp(bpe_token(nfc, 50259), "caf\xc3\xa9!"));
        CHECK(bpe_lookup(nfc, "cafe\xcc\x81!") == 50259 && bpe_lookup(nfc, "caf\xc3\xa9!") == -1);
        CHECK(bpe_lookup(nfc, "\xe2\x84\xab") == 50262 && bpe_lookup(nfc, "\xc3\x85") == 129);
    }
    printf("qwen2 from arrays: %zu texts\n", n);
    for (size_t i = 0; i < n; i++) free(texts[i]);
    free(texts);
    free(lens);
    free(mem);
    bpe_free(ref);
    bpe_free(gguf);
    bpe_free(back);
    bpe_free(nfc);
    arrays_free(&a);
}

/* A tiktoken-style Split, golden tests/golden/bpe_gpt2_NAME.jsonl (GPT-4o's regex: Phi-4-mini's
 * pre-tokenizer; Tekken's: Mistral-Nemo's, with ignore_merges), from tokenizer.json and from GGUF
 * arrays named pre (and alias, llama.cpp's other name for it): the same golden ids; bpe_to_arrays
 * names either pre, and its arrays load back to the same ids. */
static void test_split_golden(const char *json, const char *name, const char *pre,
                              const char *alias) {
    char golden[128], label[128];
    snprintf(golden, sizeof golden, "tests/golden/bpe_gpt2_%s.jsonl", name);
    snprintf(label, sizeof label, "gpt2 with %s pre-tokenizer", name);
    check_json_golden(golden, json, label, 1);
    snprintf(label, sizeof label, "gpt2 from arrays, %s", pre);
    check_arrays_golden(golden, json, pre, label, 1);
    Bpe *t = golden_tokenizer(golden, json), *other = NULL, *back = NULL;
    Arrays a;
    BpeArrays out;
    void *mem = NULL;
    LfError err;
    CHECK(t != NULL && arrays_from_json(&a, json, alias) == 0);
    CHECK_OK(bpe_from_arrays(&other, &a.a, &err), &err);
    for (int k = 0; t && other && k < 2; k++) {
        CHECK_OK(bpe_to_arrays(k ? other : t, &out, &mem, &err), &err);
        CHECK(out.pre && !strcmp(out.pre, pre));
        if (!k) CHECK_OK(bpe_from_arrays(&back, &out, &err), &err);
        free(mem);
    }
    snprintf(label, sizeof label, "gpt2 %s via bpe_to_arrays", name);
    if (back) check_golden(back, golden, label, 1);
    bpe_free(t);
    bpe_free(other);
    bpe_free(back);
    arrays_free(&a);
}

static void test_gpt2(void) {
    char dir[512], json[600], pair[64] = "/tmp/test_bpe_XXXXXX";
    snprintf(dir, sizeof dir, "%s/tokenizers/gpt2", shared_data_dir());
    snprintf(json, sizeof json, "%s/tokenizer.json", dir);
    if (access(json, R_OK)) {
        printf("SKIP GPT-2 goldens: %s not found (set LORAFT_SHARED_DATA)\n", json);
        return;
    }
    check_json_golden("tests/golden/bpe_gpt2.jsonl", json, "gpt2 tokenizer.json", 1);
    check_json_golden("tests/golden/bpe_gpt2_llama3.jsonl", json, "gpt2 with llama-3 pre-tokenizer",
                      0);
    /* no round trip: NFC changes text (decode gives the normalized text) */
    check_json_golden("tests/golden/bpe_gpt2_qwen2.jsonl", json, "gpt2 with qwen2 normalizer", 0);
    check_arrays_golden("tests/golden/bpe_gpt2.jsonl", json, "gpt-2", "gpt2 from arrays", 1);
    test_qwen2_gguf(json);
    test_split_golden(json, "o200k", "gpt-4o", "llama4");
    test_split_golden(json, "tekken", "tekken", "tekken");
    test_front_door(dir, json);
    /* the older pair, alone in a directory */
    CHECK(mkdtemp(pair) != NULL);
    char src[600], abs[PATH_MAX], dst[128];
    static const char *files[2] = {"vocab.json", "merges.txt"};
    for (int i = 0; i < 2; i++) {
        snprintf(src, sizeof src, "%s/%s", dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", pair, files[i]);
        CHECK(realpath(src, abs) && symlink(abs, dst) == 0);
    }
    Bpe *t = NULL;
    LfError err;
    CHECK_OK(bpe_load(&t, pair, &err), &err);
    if (t) {
        check_golden(t, "tests/golden/bpe_gpt2.jsonl", "gpt2 vocab.json + merges.txt", 1);
        CHECK(bpe_bos(t) == 50256 && bpe_eos(t) == 50256 && bpe_vocab_size(t) == 50257);
        CHECK(bpe_lookup(t, "<|endoftext|>") == 50256 && bpe_is_special(t, 50256));
        CHECK(!strcmp(bpe_token(t, 262), "Ġthe") && bpe_lookup(t, "Ġthe") == 262);
        size_t n;
        const char *b = bpe_token_bytes(t, 262, &n);
        CHECK(b && n == 4 && !memcmp(b, " the", 4) && !bpe_token_bytes(t, 50257, &n));
    }
    bpe_free(t);
    for (int i = 0; i < 2; i++) {
        snprintf(dst, sizeof dst, "%s/%s", pair, files[i]);
        unlink(dst);
    }
    rmdir(pair);
}

static void test_smollm2(void) {
    const char *path = getenv("LORAFT_SMOLLM2_TOKENIZER");
    char json[600];
    snprintf(json, sizeof json, "%s/tokenizer.json", path ? path : "models/smollm2-tokenizer");
    if (access(json, R_OK)) {
        printf("SKIP SmolLM2 goldens: %s not found (scripts/extract-smollm2-tokenizer.sh "
               "models/smollm2-tokenizer, or set LORAFT_SMOLLM2_TOKENIZER to its directory)\n",
               json);
        return;
    }
    /* no round trip: 21 byte chars (controls such as \x04, and bytes UTF-8 never uses) are not
     * in SmolLM2's vocabulary, and `tokenizers` drops them (the ids check that) */
    check_json_golden("tests/golden/bpe_smollm2.jsonl", json, "smollm2 tokenizer.json", 0);
    check_json_golden("tests/golden/bpe_smollm2_digits.jsonl", json, "smollm2 with Digits", 0);
    check_arrays_golden("tests/golden/bpe_smollm2.jsonl", json, "gpt-2",
                        "smollm2 from arrays, gpt-2", 0);
    check_arrays_golden("tests/golden/bpe_smollm2_digits.jsonl", json, "smollm",
                        "smollm2 from arrays, smollm", 0);
}

/* NFC of the code points in[0..n) is want[0..m) (both at most 64). */
static int nfc_is(const uint32_t *in, size_t n, const uint32_t *want, size_t m) {
    char s[256], w[256];
    size_t ns = 0, nw = 0, len;
    for (size_t i = 0; i < n; i++) ns += (size_t)utf8_encode(in[i], s + ns);
    for (size_t i = 0; i < m; i++) nw += (size_t)utf8_encode(want[i], w + nw);
    Nfc z = {0};
    const char *out;
    LfError err;
    int ok = !nfc_normalize(&z, s, ns, &out, &len, &err) && len == nw && !memcmp(out, w, nw);
    nfc_free(&z);
    return ok;
}

#define NFC_IS(in, want) CHECK(nfc_is(in, sizeof in / sizeof *in, want, sizeof want / sizeof *want))

/* tests/golden/bpe_nfc.txt: "in -> out" per line, code points in hex. */
static void check_nfc_table(const char *path) {
    FILE *f = fopen(path, "r");
    char line[256];
    int lines = 0, bad = 0;
    CHECK(f != NULL);
    while (f && fgets(line, sizeof line, f)) {
        uint32_t cp[2][16];
        size_t n[2] = {0, 0};
        int side = 0, k;
        unsigned v;
        for (const char *p = line; sscanf(p, " %n", &k) >= 0 && p[k];) {
            p += k;
            if (!strncmp(p, "->", 2)) {
                side = 1, p += 2;
            } else if (sscanf(p, "%x%n", &v, &k) == 1 && n[side] < 16) {
                cp[side][n[side]++] = v, p += k;
            } else {
                break;
            }
        }
        lines++;
        if (!n[0] || !n[1] || !nfc_is(cp[0], n[0], cp[1], n[1])) {
            if (bad++ < 5) fprintf(stderr, "%s:%d: NFC differs: %s", path, lines, line);
        }
    }
    if (f) fclose(f);
    CHECK(lines == 2060 && bad == 0);
    printf("NFC of every composed code point: %d cases%s\n", lines, bad ? " FAILED" : "");
}

/* The NFC normalizer: cases worked out from the UCD, as Unicode 9.0 has it. */
static void test_nfc(void) {
    NFC_IS(((uint32_t[]){'e', 0x301}), ((uint32_t[]){0xE9}));
    NFC_IS(((uint32_t[]){'A', 0x30A}), ((uint32_t[]){0xC5}));
    NFC_IS(((uint32_t[]){0x212B, 0x2126, 0x212A}),
           ((uint32_t[]){0xC5, 0x3A9, 'K'})); /* singletons */
    NFC_IS(((uint32_t[]){0x958, 0x915, 0x93C}), ((uint32_t[]){0x915, 0x93C, 0x915, 0x93C}));
    NFC_IS(((uint32_t[]){0x344, 'x', 0xF73}), ((uint32_t[]){0x308, 0x301, 'x', 0xF71, 0xF72}));
    NFC_IS(((uint32_t[]){'e', 0x302, 0x323}), ((uint32_t[]){0x1EC7})); /* reordered: e 0323 0302 */
    NFC_IS(((uint32_t[]){0x1E0A, 0x323}), ((uint32_t[]){0x1E0C, 0x307})); /* UAX #15's example */
    NFC_IS(((uint32_t[]){'a', 0x305, 0x301}), ((uint32_t[]){'a', 0x305, 0x301})); /* blocked */
    NFC_IS(((uint32_t[]){'a', 0x316, 0x301}), ((uint32_t[]){0xE1, 0x316}));       /* 220 < 230 */
    NFC_IS(((uint32_t[]){'a', 0x301, 0x301}), ((uint32_t[]){0xE1, 0x301}));
    NFC_IS(((uint32_t[]){0x301, 'e', 0x301}), ((uint32_t[]){0x301, 0xE9})); /* no starter yet */
    NFC_IS(((uint32_t[]){0x1100, 0x1161, 0x1100, 0x1161, 0x11A8}), ((uint32_t[]){0xAC00, 0xAC01}));
    NFC_IS(((uint32_t[]){0xAC00, 0x11A8, 0xAC00, 0x11A7}), ((uint32_t[]){0xAC01, 0xAC00, 0x11A7}));
    NFC_IS(((uint32_t[]){0xAC01, 0x11A8}), ((uint32_t[]){0xAC01, 0x11A8})); /* LVT + T */
    NFC_IS(((uint32_t[]){0x1100, 0x300, 0x1161}), ((uint32_t[]){0x1100, 0x300, 0x1161}));
    NFC_IS(((uint32_t[]){0x304B, 0x3099, 0xB47, 0xB3E}), ((uint32_t[]){0x304C, 0xB4B}));
    /* after 9.0, so not in `tokenizers`' data: U+1DF6 is a starter, U+11938 no composite */
    NFC_IS(((uint32_t[]){'a', 0x1DF6, 0x301}), ((uint32_t[]){'a', 0x1DF6, 0x301}));
    NFC_IS(((uint32_t[]){0x11935, 0x11930}), ((uint32_t[]){0x11935, 0x11930}));
    /* a long run of marks (the sort for long runs): 220s first, one 230 joins the a */
    uint32_t run[41] = {'a'}, want[40] = {0xE1};
    for (int i = 0; i < 40; i++) run[i + 1] = i % 2 ? 0x316 : 0x301;
    for (int i = 1; i < 40; i++) want[i] = i <= 20 ? 0x316 : 0x301;
    CHECK(nfc_is(run, 41, want, 40));
    /* text NFC leaves alone comes back as it is, without a copy */
    static const char same[] = "plain ASCII, caf\xc3\xa9, \xea\xb0\x81, \xe0\xa4\xb8\xe0\xa5\x8d"
                               "\xe0\xa4\xa4\xe0\xa5\x87 (Hindi: a virama), \xe1\xbb\x87";
    Nfc z = {0};
    const char *out;
    size_t len;
    LfError err;
    CHECK_OK(nfc_normalize(&z, same, sizeof same - 1, &out, &len, &err), &err);
    CHECK(out == same && len == sizeof same - 1);
    nfc_free(&z);
    check_nfc_table("tests/golden/bpe_nfc.txt");
}

/* A tokenizer.json over the 256 byte chars plus the given extra tokens and merges. */
static char *tiny_json(const char *extra_vocab, const char *merges, const char *rest) {
    static char buf[1 << 16];
    int n = snprintf(buf, sizeof buf, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        int c = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? b : -1;
        if (c < 0) { /* the 68 others: U+0100.. in order */
            int k = 0;
            for (int x = 0; x < b; x++)
                k += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
            c = 0x100 + k;
        }
        char u[8] = {0};
        if (c < 0x80)
            u[0] = (char)c;
        else
            u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F));
        if (c == '"' || c == '\\')
            n += snprintf(buf + n, sizeof buf - n, "\"\\%s\": %d, ", u, b);
        else
            n += snprintf(buf + n, sizeof buf - n, "\"%s\": %d, ", u, b);
    }
    n -= 2; /* the last ", " */
    snprintf(buf + n, sizeof buf - n,
             "%s%s}, \"merges\": [%s]}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", "
             "\"add_prefix_space\": false}, \"decoder\": {\"type\": \"ByteLevel\"}%s}",
             *extra_vocab ? ", " : "", extra_vocab, merges, rest);
    return buf;
}

static void test_tiny(void) {
    Bpe *t = NULL;
    LfError err;
    /* 'a' is byte 97: "aa" = 256, "aaa" = 257, "ba" = 258 (ids checked with `tokenizers`) */
    const char *json =
        tiny_json("\"aa\": 256, \"aaa\": 257, \"ba\": 258", "\"a a\", \"aa a\", \"b a\"", "");
    CHECK_OK(bpe_load_json(&t, json, strlen(json), "tiny", &err), &err);
    if (!t) return;
    expect_ids(t, "aaa", (int32_t[]){257}, 1);
    expect_ids(t, "aaaa", (int32_t[]){256, 256}, 2);
    expect_ids(t, "aaaaa", (int32_t[]){256, 257}, 2); /* the queue's order, as `tokenizers` */
    expect_ids(t, "baa", (int32_t[]){98, 256}, 2);    /* "a a" ranks before "b a" */
    expect_ids(t, "", NULL, 0);
    IdList ids = {0};
    CHECK(bpe_encode(t, "ok\xC3(", 4, 0, &ids, &err) == -1 && strstr(err.msg, "byte offset 2"));
    CHECK(ids.n == 0);
    char *out;
    size_t n;
    int32_t bad[] = {0xC3 - 0x5E /* placeholder */, -5, 1000000};
    bad[0] = 0xC3; /* the byte 0xC3 alone: invalid UTF-8, replaced by U+FFFD */
    CHECK_OK(bpe_decode(t, bad, 3, 0, &out, &n, &err), &err);
    CHECK(n == 3 && !memcmp(out, "\xEF\xBF\xBD", 3));
    free(out);
    bpe_free(t);
}

/* A tiny tokenizer (tiny_json) with the pre-tokenizer and ignore_merges of a golden's edit. */
static Bpe *tiny_golden_pre(const char *extra_vocab, const char *merges, const char *golden) {
    cJSON *root = cJSON_Parse(tiny_json(extra_vocab, merges, "")), *head = golden_head(golden);
    const cJSON *edit = cJSON_GetObjectItemCaseSensitive(head, "edit");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(edit, "pre_tokenizer");
    CHECK(root && pre);
    cJSON_ReplaceItemInObjectCaseSensitive(root, "pre_tokenizer", cJSON_Duplicate(pre, 1));
    cJSON_AddBoolToObject(cJSON_GetObjectItemCaseSensitive(root, "model"), "ignore_merges",
                          cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(edit, "ignore_merges")));
    char *json = cJSON_PrintUnformatted(root);
    Bpe *t = NULL;
    LfError err;
    CHECK_OK(bpe_load_json(&t, json, strlen(json), golden, &err), &err);
    free(json);
    cJSON_Delete(root);
    cJSON_Delete(head);
    return t;
}

/* o200k's pieces where its classes overlap, made visible by merges across them (ids checked with
 * `tokenizers`): U+0301, a mark (in [^\r\n\p{L}\p{N}] and both letter classes), is bytes CC 81,
 * "\u00cc\u0123" in the byte alphabet; U+02B0, a modifier letter (Lm: both classes), is CA B0,
 * "\u00ca\u00b0". A run of both-class and Lu chars with no Ll after it ends at its last both-class
 * char (Oniguruma backtracks U* for L+). */
static void test_o200k_pieces(void) {
    Bpe *t = tiny_golden_pre(
        "\"\\u00cc\\u0123\": 256, \"\\u00cc\\u0123A\": 257, \"\\u00ca\\u00b0\": 258, "
        "\"\\u00ca\\u00b0A\": 259, \"!\\u00cc\\u0123\": 260",
        "\"\\u00cc \\u0123\", \"\\u00cc\\u0123 A\", \"\\u00ca \\u00b0\", \"\\u00ca\\u00b0 A\", "
        "\"! \\u00cc\\u0123\"",
        "tests/golden/bpe_gpt2_o200k.jsonl");
    if (t) {
        expect_ids(t,
                   "\xcc\x81"
                   "AB ",
                   (int32_t[]){256, 65, 66, 32}, 4); /* mark | AB | " " */
        expect_ids(t,
                   "\xcc\x81"
                   "Ab",
                   (int32_t[]){257, 98}, 2); /* one word */
        expect_ids(t,
                   "x\xca\xb0"
                   "AB",
                   (int32_t[]){120, 258, 65, 66}, 4); /* xʰ | AB */
        expect_ids(t,
                   "\xca\xb0"
                   "AB!",
                   (int32_t[]){258, 65, 66, 33}, 4); /* ʰ | AB | ! */
        expect_ids(t,
                   "\xca\xb0"
                   "Ab",
                   (int32_t[]){259, 98}, 2); /* one word */
        expect_ids(t,
                   "!\xcc\x81"
                   "AB",
                   (int32_t[]){260, 65, 66}, 3); /* !+mark | AB */
        expect_ids(t,
                   " \xcc\x81"
                   "AB",
                   (int32_t[]){32, 256, 65, 66}, 4);                /* " "+mark | AB */
        expect_ids(t, "\n\xcc\x81x", (int32_t[]){10, 256, 120}, 3); /* \n | mark+x */
        expect_ids(t,
                   "\xca\xb0\xcc\x81"
                   "AB",
                   (int32_t[]){258, 256, 65, 66}, 4);
    }
    bpe_free(t);
}

/* Tekken's pieces and ignore_merges, which GPT-2's merges never exercise in the golden (ids
 * checked with `tokenizers`): "12", "t'" and "'s" merge and "abc" is a token no merge makes.
 * Tekken cuts numbers one digit each and leaves "'s" a piece of its own (o200k: "123" -> 12|3,
 * "it's" -> i|t'|s), and ignore_merges takes "abc" whole (without it: a|b|c). */
static void test_tekken_pieces(void) {
    Bpe *t = tiny_golden_pre("\"12\": 256, \"'s\": 257, \"abc\": 258, \"t'\": 259",
                             "\"t '\", \"1 2\", \"' s\"", "tests/golden/bpe_gpt2_tekken.jsonl");
    if (t) {
        expect_ids(t, "123", (int32_t[]){49, 50, 51}, 3);
        expect_ids(t, "x1234y", (int32_t[]){120, 49, 50, 51, 52, 121}, 6);
        expect_ids(t, "it's", (int32_t[]){105, 116, 257}, 3);
        expect_ids(t, "abc", (int32_t[]){258}, 1);
        expect_ids(t, "abcd", (int32_t[]){97, 98, 99, 100}, 4);
    }
    bpe_free(t);
}

static void expect_error(const char *json, const char *want) {
    Bpe *t = NULL;
    LfError err = {{0}};
    int rc = bpe_load_json(&t, json, strlen(json), "bad.json", &err);
    CHECK(rc == -1 && t == NULL);
    if (!strstr(err.msg, want)) {
        fprintf(stderr, "error \"%s\" lacks \"%s\"\n", err.msg, want);
        CHECK(0);
    }
}

static void test_errors(void) {
    expect_error("{\"model\": ", "invalid JSON");
    expect_error("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}, \"pre_tokenizer\": "
                 "{\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
                 "model.type WordPiece is not supported");
    expect_error(tiny_json("", "\"a zz\"", ""), "\"zz\" is not in the vocabulary");
    expect_error(tiny_json("", "\"a b\"", ""), "\"ab\" is not in the vocabulary");
    expect_error(tiny_json("", "\"a b c\"", ""), "is not two tokens");
    expect_error(tiny_json("", "", ", \"normalizer\": {\"type\": \"NFKC\"}"),
                 "normalizer NFKC is not supported");
    expect_error(tiny_json("", "",
                           ", \"normalizer\": {\"type\": \"Sequence\", \"normalizers\": "
                           "[{\"type\": \"NFC\"}, {\"type\": \"Lowercase\"}]}"),
                 "normalizer Lowercase is not supported");
    expect_error(tiny_json("\"x\": 3", "", ""), "appears twice");
    expect_error(tiny_json("", "",
                           ", \"added_tokens\": [{\"id\": 5, \"content\": \"<x>\", "
                           "\"single_word\": true}]"),
                 "single_word");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                 "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, "
                 "\"behavior\": \"Isolated\"}, \"decoder\": {\"type\": \"ByteLevel\"}}",
                 "unsupported pattern");
    /* between GPT-4o's and Tekken's regexes (no contractions, \p{N}{1,3}): neither */
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                 "\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": "
                 "\"[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*"
                 "[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?[\\\\p{Lu}"
                 "\\\\p{Lt}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]+[\\\\p{Ll}\\\\p{Lm}\\\\p{Lo}\\\\p{M}]*|"
                 "\\\\p{N}{1,3}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n/]*|\\\\s*[\\\\r\\\\n]+|"
                 "\\\\s+(?!\\\\S)|\\\\s+\"}, \"behavior\": \"Isolated\"}, \"decoder\": "
                 "{\"type\": \"ByteLevel\"}}",
                 "unsupported pattern");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                 "\"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"decoder\": {\"type\": "
                 "\"ByteLevel\"}}",
                 "pre-tokenizer Whitespace is not supported");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}, \"merges\": []}, "
                 "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": {\"type\": "
                 "\"ByteLevel\"}}",
                 "not a valid token id");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1000000000}, "
                 "\"merges\": []}, \"pre_tokenizer\": {\"type\": \"ByteLevel\"}, \"decoder\": "
                 "{\"type\": \"ByteLevel\"}}",
                 "token ids reach 1000000000 but only 2 tokens are listed");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
                 "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}",
                 "decoder must be ByteLevel");
    expect_error("[1, 2]", "decoder must be ByteLevel");
    Bpe *t = NULL;
    LfError err;
    const char *tokens[] = {"a", "b"}, *merges[] = {"a b"};
    BpeArrays a = {.tokens = tokens,
                   .n_tokens = 2,
                   .merges = merges,
                   .n_merges = 1,
                   .pre = "gpt-2",
                   .bos_id = -1,
                   .eos_id = -1};
    CHECK(bpe_from_arrays(&t, &a, &err) == -1 &&
          strstr(err.msg, "\"ab\" is not in the vocabulary"));
    a.n_merges = 0;
    a.pre = "command-r";
    CHECK(bpe_from_arrays(&t, &a, &err) == -1 &&
          strstr(err.msg, "\"command-r\" is not supported (gpt-2, llama-bpe, qwen2, smollm, "
                          "gpt-4o, tekken)"));
    a.pre = NULL;
    a.add_bos = 1;
    CHECK(bpe_from_arrays(&t, &a, &err) == -1 && strstr(err.msg, "add_bos without its id"));
    CHECK(bpe_load(&t, "/nonexistent/tokenizer", &err) == -1 && strstr(err.msg, "/nonexistent"));
}

/* ---------------------------------------------------------------- SentencePiece-style BPE */

/* tests/golden/spm_gguf.json or spm_gemma_gguf.json (scripts/make-spm-goldens.py) as GGUF arrays:
 * tokens, scores and types as llama.cpp's converter writes a SentencePiece model, BOS added, a " "
 * before each piece unless add_space_prefix is false (Gemma's). */
typedef struct SpmArrays {
    BpeArrays a;
    char **tokens;
    float *scores;
    int32_t *types;
} SpmArrays;

static int spm_arrays(SpmArrays *out, const char *path) {
    cJSON *root = read_json(path);
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive(root, "tokens");
    const cJSON *scores = cJSON_GetObjectItemCaseSensitive(root, "scores");
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "token_types");
    int n = cJSON_GetArraySize(tokens);
    if (!root || !n || cJSON_GetArraySize(scores) != n || cJSON_GetArraySize(types) != n)
        return cJSON_Delete(root), -1;
    *out = (SpmArrays){.tokens = calloc((size_t)n, sizeof(char *)),
                       .scores = malloc((size_t)n * sizeof(float)),
                       .types = malloc((size_t)n * sizeof(int32_t))};
    for (int i = 0; i < n; i++) {
        out->tokens[i] = strdup(cJSON_GetArrayItem(tokens, i)->valuestring);
        out->scores[i] = (float)cJSON_GetArrayItem(scores, i)->valuedouble;
        out->types[i] = cJSON_GetArrayItem(types, i)->valueint;
    }
    out->a = (BpeArrays){.tokens = (const char *const *)out->tokens,
                         .n_tokens = n,
                         .token_types = out->types,
                         .bos_id = cJSON_GetObjectItemCaseSensitive(root, "bos_id")->valueint,
                         .eos_id = cJSON_GetObjectItemCaseSensitive(root, "eos_id")->valueint,
                         .add_bos = 1,
                         .model = "llama",
                         .scores = out->scores,
                         .no_space_prefix = cJSON_IsFalse(
                             cJSON_GetObjectItemCaseSensitive(root, "add_space_prefix"))};
    cJSON_Delete(root);
    return 0;
}

static void spm_arrays_free(SpmArrays *a) {
    for (int i = 0; i < a->a.n_tokens; i++) free(a->tokens[i]);
    free(a->tokens);
    free(a->scores);
    free(a->types);
}

/* t through bpe_to_arrays and back (what a GGUF file written by loraft holds). */
static Bpe *via_arrays(const Bpe *t, const char *want_model) {
    BpeArrays a;
    void *mem = NULL;
    Bpe *back = NULL;
    LfError err;
    CHECK_OK(bpe_to_arrays(t, &a, &mem, &err), &err);
    CHECK(a.model && !strcmp(a.model, want_model));
    if (a.model) CHECK_OK(bpe_from_arrays(&back, &a, &err), &err);
    free(mem);
    return back;
}

/* The same arrays in a GGUF file, the keys as gguf_export writes them (add_space_prefix only
 * when false), read by text.h, against the golden. */
static void spm_gguf_file(const SpmArrays *s, const char *golden, const char *label) {
    char gguf[64] = "/tmp/test_bpe_spm_XXXXXX.gguf";
    int fd = mkstemps(gguf, 5);
    CHECK(fd >= 0 && close(fd) == 0);
    GgufWriteKV kv[] = {
        {.key = "general.architecture", .type = GGUF_STRING, .s = "llama"},
        {.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = "llama"},
        {.key = "tokenizer.ggml.tokens",
         .type = GGUF_ARRAY,
         .elem_type = GGUF_STRING,
         .n = (uint64_t)s->a.n_tokens,
         .arr = s->tokens},
        {.key = "tokenizer.ggml.scores",
         .type = GGUF_ARRAY,
         .elem_type = GGUF_FLOAT32,
         .n = (uint64_t)s->a.n_tokens,
         .arr = s->scores},
        {.key = "tokenizer.ggml.token_type",
         .type = GGUF_ARRAY,
         .elem_type = GGUF_INT32,
         .n = (uint64_t)s->a.n_tokens,
         .arr = s->types},
        {.key = "tokenizer.ggml.bos_token_id", .type = GGUF_UINT32, .u = (uint32_t)s->a.bos_id},
        {.key = "tokenizer.ggml.add_space_prefix", .type = GGUF_BOOL, .b = 0},
    };
    LfError err;
    TextTokenizer t;
    /* no add_bos_token key: llama.cpp adds BOS to a SentencePiece vocabulary */
    CHECK_OK(gguf_write(gguf, kv, s->a.no_space_prefix ? 7 : 6, NULL, 0, 32, &err), &err);
    CHECK_OK(text_tokenizer_open(&t, gguf, &err), &err);
    if (t.bpe) check_golden(t.bpe, golden, label, 0);
    text_tokenizer_close(&t);
    unlink(gguf);
}

/* Streaming bytes: a byte token is its byte, "▁" a space, the first token keeps it. */
static void spm_stream(const Bpe *t) {
    size_t n;
    const char *b = bpe_token_bytes(t, bpe_lookup(t, "<0xE6>"), &n);
    CHECK(b && n == 1 && (unsigned char)b[0] == 0xE6);
    b = bpe_token_bytes(t, bpe_lookup(t, "\xE2\x96\x81the"), &n);
    CHECK(b && n == 4 && !memcmp(b, " the", 4));
    b = bpe_token_bytes(t, bpe_lookup(t, "<s>"), &n);
    CHECK(b && n == 3 && !memcmp(b, "<s>", 3));
    CHECK(bpe_is_special(t, bpe_lookup(t, "<s>")) && !bpe_is_special(t, bpe_lookup(t, "<0x41>")));
    CHECK(bpe_bos(t) == 1 && bpe_eos(t) == 2);
    /* a run of byte tokens that is not UTF-8: one U+FFFD per byte (ByteFallback) */
    int32_t ids[3] = {bpe_lookup(t, "<0xE6>"), bpe_lookup(t, "<0xE6>"), bpe_lookup(t, "a")};
    char *out;
    LfError err;
    CHECK_OK(bpe_decode(t, ids, 3, 0, &out, &n, &err), &err);
    CHECK(n == 7 && !memcmp(out,
                            "\xEF\xBF\xBD\xEF\xBF\xBD"
                            "a",
                            7));
    free(out);
}

/* Small SentencePiece-style files written here: fuse_unk, a missing byte token, decoders. rest's
 * keys come before the default normalizer and pre-tokenizer, so they win (cJSON: the first). */
static char *spm_json(const char *vocab, const char *model_extra, const char *rest) {
    static char buf[4096];
    snprintf(buf, sizeof buf,
             "{\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"unk_token\": "
             "\"<unk>\", \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, "
             "\"\u2581\": 4, \"<0xC3>\": 5%s}, \"merges\": [\"a b\"]%s}%s, \"normalizer\": "
             "{\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Prepend\", \"prepend\": "
             "\"\u2581\"}, {\"type\": \"Replace\", \"pattern\": {\"String\": \" \"}, "
             "\"content\": \"\u2581\"}]}, \"pre_tokenizer\": null}",
             vocab, model_extra, rest);
    return buf;
}

static void spm_tiny(void) {
    static const char dec[] =
        ", \"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Replace\", "
        "\"pattern\": {\"String\": \"\u2581\"}, \"content\": \" \"}, {\"type\": "
        "\"ByteFallback\"}, {\"type\": \"Fuse\"}, {\"type\": \"Strip\", \"content\": \" \", "
        "\"start\": 1, \"stop\": 0}]}";
    Bpe *t = NULL;
    LfError err;
    const char *json = spm_json(", \"<0xA9>\": 6", ", \"fuse_unk\": true", dec);
    CHECK_OK(bpe_load_json(&t, json, strlen(json), "spm tiny", &err), &err);
    if (t) {
        /* "é" is C3 A9: both byte tokens; "ü" (C3 BC) lacks one: [UNK], "üü" one fused [UNK] */
        expect_ids(t, "ab\xC3\xA9", (int32_t[]){4, 3, 5, 6}, 4);
        expect_ids(t, "a\xC3\xBC\xC3\xBC b", (int32_t[]){4, 1, 0, 4, 2}, 5);
        expect_ids(t, "", NULL, 0);
        /* a pending [UNK] goes out after byte tokens that came later (as `tokenizers` does) */
        expect_ids(t, "\xC3\xBC\xC3\xA9", (int32_t[]){4, 5, 6, 0}, 4);
        expect_ids(t,
                   "\xC3\xBC\xC3\xBC\xC3\xA9"
                   "a",
                   (int32_t[]){4, 5, 6, 0, 1}, 5);
        char *out;
        size_t n;
        int32_t ids[] = {4, 3, 5, 6, 0, 4};
        CHECK_OK(bpe_decode(t, ids, 6, 0, &out, &n, &err), &err);
        CHECK(n == 10 && !memcmp(out, "ab\xC3\xA9<unk> ", 10)); /* no added tokens: none special */
        free(out);
        bpe_free(t);
    }
    t = NULL;
    json = spm_json("", ", \"fuse_unk\": false", dec);
    CHECK_OK(bpe_load_json(&t, json, strlen(json), "spm tiny", &err), &err);
    if (t) expect_ids(t, "\xC3\xBC\xC3\xBC", (int32_t[]){4, 0, 0}, 3);
    bpe_free(t);
    t = NULL;
    json = spm_json("", "",
                    ", \"decoder\": {\"type\": \"Metaspace\", \"replacement\": \"\u2581\", "
                    "\"prepend_scheme\": \"always\", \"split\": false}");
    CHECK_OK(bpe_load_json(&t, json, strlen(json), "spm tiny", &err), &err);
    if (t) { /* the Metaspace decoder: the first token loses its "▁", byte tokens stay text */
        char *out;
        size_t n;
        int32_t ids[] = {4, 3, 4, 5};
        CHECK_OK(bpe_decode(t, ids, 4, 0, &out, &n, &err), &err);
        CHECK(n == 9 && !memcmp(out, "ab <0xC3>", 9));
        free(out);
    }
    bpe_free(t);
    expect_error(spm_json("", "",
                          ", \"decoder\": {\"type\": \"Sequence\", \"decoders\": "
                          "[{\"type\": \"CTC\"}]}"),
                 "decoder CTC is not supported");
    expect_error(spm_json("", "", ", \"decoder\": {\"type\": \"WordPiece\"}"), "got WordPiece");
    expect_error(spm_json("", "",
                          ", \"decoder\": {\"type\": \"Metaspace\", \"replacement\": "
                          "\"_\"}"),
                 "Metaspace replacement \"_\" is not supported");
    expect_error(spm_json("", "",
                          ", \"decoder\": {\"type\": \"Metaspace\"}, \"pre_tokenizer\": "
                          "{\"type\": \"ByteLevel\"}"),
                 "takes no pre-tokenizer but Metaspace");
    /* the byte-level decoder with SentencePiece's normalizer or byte_fallback */
    expect_error(tiny_json("", "",
                           ", \"normalizer\": {\"type\": \"Prepend\", \"prepend\": "
                           "\"\u2581\"}"),
                 "need a SentencePiece decoder");
    expect_error(tiny_json("", "",
                           ", \"normalizer\": {\"type\": \"Prepend\", \"prepend\": "
                           "\"x\"}"),
                 "Prepend of \"x\" is not supported");
    expect_error(tiny_json("", "",
                           ", \"normalizer\": {\"type\": \"Replace\", \"pattern\": "
                           "{\"String\": \"a\"}, \"content\": \"b\"}"),
                 "normalizer Replace is supported only");
    expect_error(spm_json("", "",
                          ", \"decoder\": {\"type\": \"Metaspace\"}, \"pre_tokenizer\": "
                          "{\"type\": \"Metaspace\", \"prepend_scheme\": \"sometimes\"}"),
                 "prepend_scheme \"sometimes\" is unknown");
}

static void test_spm(void) {
    check_json_golden("tests/golden/spm_legacy.jsonl", "tests/golden/spm_legacy.json",
                      "spm legacy tokenizer.json (Prepend + Replace)", 0);
    check_json_golden("tests/golden/spm_metaspace.jsonl", "tests/golden/spm_metaspace.json",
                      "spm Metaspace tokenizer.json (first, no split)", 0);
    check_json_golden("tests/golden/spm_metaspace_split.jsonl", "tests/golden/spm_metaspace.json",
                      "spm Metaspace tokenizer.json (always, split)", 0);
    SpmArrays s;
    Bpe *t = NULL;
    LfError err;
    CHECK(spm_arrays(&s, "tests/golden/spm_gguf.json") == 0);
    CHECK_OK(bpe_from_arrays(&t, &s.a, &err), &err);
    if (t) check_golden(t, "tests/golden/spm_gguf.jsonl", "spm GGUF arrays (llama.cpp's ids)", 0);
    Bpe *back = t ? via_arrays(t, "llama") : NULL;
    if (back) check_golden(back, "tests/golden/spm_gguf.jsonl", "spm GGUF arrays, written back", 0);
    bpe_free(back);
    bpe_free(t);
    spm_gguf_file(&s, "tests/golden/spm_gguf.jsonl", "spm arrays in a GGUF file");
    s.a.scores = NULL;
    CHECK(bpe_from_arrays(&t, &s.a, &err) == -1 && strstr(err.msg, "scores"));
    s.a.model = "t5";
    CHECK(bpe_from_arrays(&t, &s.a, &err) == -1 && strstr(err.msg, "\"t5\" is not supported"));
    spm_arrays_free(&s);
    /* tokenizer.json -> GGUF arrays -> back: the legacy spelling is llama.cpp's, so its ids stay;
     * the Metaspace one becomes llama.cpp's too */
    t = golden_tokenizer("tests/golden/spm_legacy.jsonl", "tests/golden/spm_legacy.json");
    back = t ? via_arrays(t, "llama") : NULL;
    if (back) check_golden(back, "tests/golden/spm_legacy.jsonl", "spm legacy via GGUF arrays", 0);
    if (t) spm_stream(t);
    bpe_free(back);
    bpe_free(t);
    t = golden_tokenizer("tests/golden/spm_metaspace.jsonl", "tests/golden/spm_metaspace.json");
    back = t ? via_arrays(t, "llama") : NULL;
    if (back) check_golden(back, "tests/golden/spm_gguf.jsonl", "spm Metaspace via GGUF arrays", 0);
    bpe_free(back);
    bpe_free(t);
    spm_tiny();
}

/* Gemma's tokenizer.json (Replace(" ", "▁"), Split(" ", MergedWithPrevious), no prefix, no
 * strip; user-defined pieces as added tokens): the pieces a test can name. */
static void gemma_pieces(const Bpe *t) {
    CHECK(bpe_bos(t) == 2 && bpe_eos(t) == 1); /* <bos> and <eos>, without tokenizer_config.json */
    int32_t turn = bpe_lookup(t, "<start_of_turn>"), nl2 = bpe_lookup(t, "\n\n");
    int32_t spaces = bpe_lookup(t, "\xE2\x96\x81\xE2\x96\x81"), mask = bpe_lookup(t, "<mask>");
    CHECK(bpe_is_special(t, turn) && bpe_is_special(t, bpe_lookup(t, "<end_of_turn>")));
    CHECK(nl2 >= 0 && !bpe_is_special(t, nl2) && mask >= 0 && !bpe_is_special(t, mask));
    size_t n;
    const char *b = bpe_token_bytes(t, spaces, &n);
    CHECK(b && n == 2 && !memcmp(b, "  ", 2));
    /* "a  b": the two spaces are the merges' "▁▁"; "<mask>\n\n" two added tokens */
    expect_ids(t, "<mask>\n\n", (int32_t[]){mask, nl2}, 2);
    IdList ids = {0};
    LfError err;
    CHECK_OK(bpe_encode(t, "a  b", 4, 0, &ids, &err), &err);
    CHECK(ids.n == 3 && ids.ids[1] == spaces);
    idlist_free(&ids);
}

/* Split(" ", MergedWithPrevious) where no normalizer has replaced the spaces: a piece ends
 * after each (ids from `tokenizers`; without the split " a" would merge). */
static void gemma_split(void) {
    static const char json[] =
        "{\"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"String\": "
        "\" \"}, \"behavior\": \"MergedWithPrevious\", \"invert\": false}, \"decoder\": {\"type\": "
        "\"Sequence\", \"decoders\": [{\"type\": \"Replace\", \"pattern\": {\"String\": "
        "\"\u2581\"}, \"content\": \" \"}, {\"type\": \"ByteFallback\"}, {\"type\": \"Fuse\"}]}, "
        "\"model\": {\"type\": \"BPE\", \"byte_fallback\": true, \"fuse_unk\": true, "
        "\"unk_token\": \"<unk>\", \"vocab\": {\"<unk>\": 0, \"a\": 1, \"b\": 2, \"ab\": 3, \" \": "
        "4, \" a\": 5}, \"merges\": [[\"a\", \"b\"], [\" \", \"a\"]]}}";
    Bpe *t = NULL;
    LfError err;
    CHECK_OK(bpe_load_json(&t, json, strlen(json), "gemma split", &err), &err);
    if (t) {
        expect_ids(t, "b ab a", (int32_t[]){2, 4, 3, 4, 1}, 5);
        expect_ids(t, "b  a", (int32_t[]){2, 4, 4, 1}, 4);
    }
    bpe_free(t);
    expect_error(spm_json("", "",
                          ", \"decoder\": {\"type\": \"Metaspace\"}, \"pre_tokenizer\": "
                          "{\"type\": \"Split\", \"pattern\": {\"String\": \" \"}, \"behavior\": "
                          "\"MergedWithNext\"}"),
                 "String \" \" MergedWithPrevious");
}

static void test_gemma(void) {
    check_json_golden("tests/golden/spm_gemma.jsonl", "tests/golden/spm_gemma.json",
                      "spm Gemma tokenizer.json", 0);
    Bpe *t = golden_tokenizer("tests/golden/spm_gemma.jsonl", "tests/golden/spm_gemma.json");
    if (t) gemma_pieces(t);
    /* without the pre-tokenizer, which cuts nothing after Replace (`tokenizers` agrees) */
    cJSON *edit = cJSON_Parse("{\"pre_tokenizer\": null}");
    char *json = edited_json("tests/golden/spm_gemma.json", edit);
    Bpe *bare = NULL;
    LfError err;
    CHECK_OK(bpe_load_json(&bare, json, strlen(json), "spm_gemma.json", &err), &err);
    if (bare) check_golden(bare, "tests/golden/spm_gemma.jsonl", "spm Gemma, no pre-tokenizer", 0);
    bpe_free(bare);
    free(json);
    cJSON_Delete(edit);
    /* as GGUF arrays and back: USER_DEFINED pieces, no space prefix; the tokenizer.json's ids */
    Bpe *back = t ? via_arrays(t, "llama") : NULL;
    if (back) check_golden(back, "tests/golden/spm_gemma.jsonl", "spm Gemma via GGUF arrays", 0);
    bpe_free(back);
    bpe_free(t);
    SpmArrays s;
    t = NULL;
    CHECK(spm_arrays(&s, "tests/golden/spm_gemma_gguf.json") == 0 && s.a.no_space_prefix);
    CHECK_OK(bpe_from_arrays(&t, &s.a, &err), &err);
    if (t)
        check_golden(t, "tests/golden/spm_gemma_gguf.jsonl", "spm Gemma GGUF arrays (llama.cpp's)",
                     0);
    back = t ? via_arrays(t, "llama") : NULL;
    if (back)
        check_golden(back, "tests/golden/spm_gemma_gguf.jsonl",
                     "spm Gemma GGUF arrays, written back", 0);
    bpe_free(back);
    bpe_free(t);
    spm_gguf_file(&s, "tests/golden/spm_gemma_gguf.jsonl", "spm Gemma arrays in a GGUF file");
    spm_arrays_free(&s);
    gemma_split();
}

int main(void) {
    test_nfc();
    test_gpt2();
    test_smollm2();
    test_tiny();
    test_o200k_pieces();
    test_tekken_pieces();
    test_errors();
    test_spm();
    test_gemma();
    return check_report();
}
