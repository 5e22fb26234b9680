/* fuzz_tokenizer.c: libFuzzer target for tokenizer_encode and tokenizer_build_inputs.
 * Two tokenizers are loaded once: bert-base-uncased from the shared data (uncased, with
 * cleaning; a small vocabulary written here when the shared data is absent), and a tiny cased
 * tokenizer.json written here with cleaning, accent stripping and CJK splitting off, a short
 * max_input_chars_per_word and an extra added token. Input: byte 0 picks the tokenizer,
 * truncation side and a pair; byte 1 is max_len; byte 2 where a pair splits; the rest is
 * the text. Checked: every id is a vocabulary entry, a failed encode leaves the list as it
 * was, build_inputs stays within max_len and frames the ids with [CLS]/[SEP]. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "loraft/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char small_vocab[] = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n,\n.\n#\nthe\nfilm\nun\n"
                                  "##aff\n##able\n##s\n##ing\na\nb\n##a\n##b\ncafe\n\xC3\xA9\n"
                                  "\xE4\xB8\xAD\n##\xE6\x96\x87\n";

static const char tiny_json[] =
    "{\"added_tokens\": ["
    "{\"id\": 0, \"content\": \"[PAD]\", \"special\": true, \"normalized\": false},"
    "{\"id\": 1, \"content\": \"[UNK]\", \"special\": true},"
    "{\"id\": 2, \"content\": \"[CLS]\"}, {\"id\": 3, \"content\": \"[SEP]\"},"
    "{\"id\": 4, \"content\": \"<x>\", \"lstrip\": false}],"
    "\"normalizer\": {\"type\": \"BertNormalizer\", \"clean_text\": false,"
    " \"handle_chinese_chars\": false, \"strip_accents\": false, \"lowercase\": false},"
    "\"pre_tokenizer\": {\"type\": \"BertPreTokenizer\"},"
    "\"model\": {\"type\": \"WordPiece\", \"unk_token\": \"[UNK]\","
    " \"continuing_subword_prefix\": \"##\", \"max_input_chars_per_word\": 10,"
    " \"vocab\": {\"[PAD]\": 0, \"[UNK]\": 1, \"[CLS]\": 2, \"[SEP]\": 3, \"<x>\": 4, \"A\": 5,"
    " \"##b\": 6, \"x\\u0001\": 7, \"\xC3\xA9\": 8, \"##\xCC\x81\": 9, \"e\": 11}}}";

static Tokenizer *load_dir(const char *dir) {
    Tokenizer *t = NULL;
    LfError err;
    if (tokenizer_load(&t, dir, &err)) {
        fprintf(stderr, "fuzz_tokenizer: %s\n", err.msg);
        abort();
    }
    return t;
}

/* A tokenizer from one file written under the scratch directory. */
static Tokenizer *load_written(const char *name, const char *content) {
    const char *path = fuzz_write(name, (const uint8_t *)content, strlen(content));
    Tokenizer *t = load_dir(fuzz_dir());
    remove(path);
    return t;
}

static Tokenizer *tokenizers[2];

static void load_once(void) {
    if (tokenizers[0]) return;
    const char *shared = getenv("LORAFT_SHARED_DATA");
    char dir[4096], vocab[4200];
    snprintf(dir, sizeof dir, "%s/tokenizers/bert-base-uncased",
             shared ? shared : "../shared/data");
    snprintf(vocab, sizeof vocab, "%s/vocab.txt", dir);
    FILE *f = fopen(vocab, "r");
    if (f) fclose(f);
    tokenizers[0] = f ? load_dir(dir) : load_written("vocab.txt", small_vocab);
    fprintf(stderr, "fuzz_tokenizer: %s, %d ids\n", f ? dir : "the small built-in vocabulary",
            tokenizer_vocab_size(tokenizers[0]));
    tokenizers[1] = load_written("tokenizer.json", tiny_json);
}

/* Encodes text into a list that already holds one sentinel id, checking what it appends. */
static int encode(const Tokenizer *t, const char *text, size_t len, IdList *ids) {
    LfError err;
    FUZZ_ASSERT(idlist_push(ids, -12345, &err) == 0);
    int rc = tokenizer_encode(t, text, len, ids, &err);
    FUZZ_ASSERT(rc == 0 || ids->n == 1);
    FUZZ_ASSERT(ids->ids[0] == -12345);
    for (size_t i = 1; i < ids->n; i++) FUZZ_ASSERT(tokenizer_token(t, ids->ids[i]) != NULL);
    return rc;
}

static void build(const Tokenizer *t, const IdList *a, const IdList *b, int max_len, int left) {
    int32_t *out = malloc((size_t)max_len * sizeof *out + 1),
            *types = malloc((size_t)max_len * sizeof *types + 1);
    int na = (int)a->n - 1, nb = b ? (int)b->n - 1 : 0;
    int n = tokenizer_build_inputs(t, a->ids + 1, na, b ? b->ids + 1 : NULL, nb, max_len, left, out,
                                   types);
    int specials = b ? 3 : 2;
    FUZZ_ASSERT(n <= max_len && (n >= 0 || max_len < specials));
    FUZZ_ASSERT(n < 0 ||
                n == specials + (na + nb < max_len - specials ? na + nb : max_len - specials));
    FUZZ_ASSERT(n < 0 || (out[0] == tokenizer_special(t, TOK_CLS) &&
                          out[n - 1] == tokenizer_special(t, TOK_SEP) && types[0] == 0 &&
                          types[n - 1] == (b != NULL)));
    free(out);
    free(types);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_once();
    if (size < 3) return 0;
    const Tokenizer *t = tokenizers[data[0] & 1];
    int left = data[0] >> 1 & 1, pair = data[0] >> 2 & 1, max_len = data[1];
    const char *text = (const char *)data + 3;
    size_t len = size - 3, split = pair ? len * data[2] / 255 : len;
    IdList a = {0}, b = {0};
    if (encode(t, text, split, &a) == 0 && (!pair || encode(t, text + split, len - split, &b) == 0))
        build(t, &a, pair ? &b : NULL, max_len, left);
    idlist_free(&a);
    idlist_free(&b);
    return 0;
}
