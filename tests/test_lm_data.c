/* test_lm_data.c: the causal-LM data path (lm_data.h): corpus reading and its errors, chapter
 * hold-out, packing arithmetic, evaluation rows and batches, the epoch shuffle, and the token
 * count of the whole Austen corpus against Hugging Face's GPT-2 tokenizer.
 *
 * Most tests use a byte tokenizer written here (a byte-level BPE with no merges: one token per
 * byte, <|endoftext|> = 256), so every count is the byte count of a text the test writes. Not a
 * tokenizer test: test_bpe.c checks the ids themselves. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "loraft/lm_data.h"

static char tmp[256];

/* tmp/name with the given contents. */
static const char *write_file(const char *name, const char *text) {
    static char path[8][512];
    static int k;
    char *p = path[k++ % 8];
    snprintf(p, 512, "%s/%s", tmp, name);
    FILE *f = fopen(p, "wb");
    CHECK(f != NULL);
    if (f) fputs(text, f), fclose(f);
    return p;
}

/* The GPT-2 byte alphabet's spelling of byte b, as UTF-8 into u[3]. */
static void byte_char(int b, char *u) {
    int c = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE ? b : -1;
    if (c < 0) { /* the 68 others: U+0100.. in order */
        c = 0x100;
        for (int x = 0; x < b; x++)
            c += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    }
    memset(u, 0, 3);
    if (c < 0x80)
        u[0] = (char)c;
    else
        u[0] = (char)(0xC0 | c >> 6), u[1] = (char)(0x80 | (c & 0x3F));
}

/* One token per byte; <|endoftext|> = 256 (EOS), <s> = 257; post is the post_processor. */
static TextTokenizer byte_tokenizer(const char *post) {
    static char json[1 << 16];
    int n = snprintf(json, sizeof json, "{\"model\": {\"type\": \"BPE\", \"vocab\": {");
    for (int b = 0; b < 256; b++) {
        char u[3];
        byte_char(b, u);
        n += snprintf(json + n, sizeof json - n, "\"%s%s\": %d, ",
                      u[0] == '"' || u[0] == '\\' ? "\\" : "", u, b);
    }
    snprintf(json + n, sizeof json - n,
             "\"<|endoftext|>\": 256, \"<s>\": 257}, \"merges\": []}, \"added_tokens\": ["
             "{\"id\": 256, \"content\": \"<|endoftext|>\", \"special\": true},"
             "{\"id\": 257, \"content\": \"<s>\", \"special\": true}],"
             "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
             "\"decoder\": {\"type\": \"ByteLevel\"}, \"post_processor\": %s}",
             post);
    TextTokenizer t = {.kind = TEXT_BPE};
    LfError err;
    CHECK_OK(bpe_load_json(&t.bpe, json, strlen(json), "bytes", &err), &err);
    if (!t.bpe) exit(check_report());
    return t;
}

static int same_ids(const int32_t *a, const int32_t *b, int n) {
    return !memcmp(a, b, (size_t)n * sizeof *a);
}

/* Loads src (must succeed) and packs or makes rows. */
static int load_set(LmSet *s, const LmSource *src, const TextTokenizer *tok, int pack, int size,
                    LfError *err) {
    LmTexts t;
    LmSpecials sp;
    if (lm_texts_load(&t, src, err)) return -1;
    int rc = lm_specials(&sp, tok, err) ? -1
             : pack                     ? lm_pack(s, &t, tok, &sp, size, err)
                                        : lm_rows(s, &t, tok, &sp, size, err);
    lm_texts_free(&t);
    return rc;
}

static void expect_error(int rc, const LfError *err, const char *want) {
    CHECK(rc == -1);
    if (rc == -1 && !strstr(err->msg, want)) {
        fprintf(stderr, "error \"%s\" does not contain \"%s\"\n", err->msg, want);
        CHECK(0);
    }
}

/* ---- packing ---- */

static void test_pack(void) {
    TextTokenizer tok = byte_tokenizer("null");
    char dir[300];
    snprintf(dir, sizeof dir, "%s/pack", tmp);
    mkdir(dir, 0755);
    write_file("pack/b.txt", "defgh");
    write_file("pack/a.txt", "abc");
    write_file("pack/c.txt", " \n\n");           /* blank: no document, no EOS */
    write_file("pack/d.txt", "xy<|endoftext|>"); /* ends with EOS: none added after it */
    write_file("pack/e.txt", "z");
    write_file("pack/notes.md", "ignored");
    LmSource src = {.path = dir};
    LmSet s;
    LfError err;
    /* stream: a b c EOS d e f g h EOS x y EOS z = 14 tokens */
    CHECK_OK(load_set(&s, &src, &tok, 1, 4, &err), &err);
    int32_t want[12] = {'a', 'b', 'c', 256, 'd', 'e', 'f', 'g', 'h', 256, 'x', 'y'};
    CHECK(s.rows.n == 3 && s.rows.max_len == 4 && s.n_texts == 4);
    CHECK(s.n_tokens == 12 && s.n_dropped == 2 && s.n_predicted == 3 * 3);
    CHECK(s.rows.offsets[3] == 12 && same_ids(s.rows.ids, want, 12));

    LmLoader l;
    LmBatch b;
    CHECK_OK(lm_loader_init(&l, &s, 2, 256, &err), &err);
    CHECK(lm_loader_num_batches(&l) == 2);
    CHECK(lm_loader_next(&l, &b) == 1 && b.B == 2 && b.T == 4 && b.n_predicted == 6);
    CHECK(same_ids(b.ids, want, 8) && same_ids(b.labels, want, 8));
    int ones = 0;
    for (int i = 0; i < 8; i++) ones += b.mask[i];
    CHECK(ones == 8);
    CHECK(lm_loader_next(&l, &b) == 1 && b.B == 1 && same_ids(b.labels, want + 8, 4));
    CHECK(lm_loader_next(&l, &b) == 0);
    lm_loader_free(&l);
    lm_set_free(&s);

    CHECK_OK(load_set(&s, &src, &tok, 1, 14, &err), &err); /* exactly one block, none dropped */
    CHECK(s.rows.n == 1 && s.n_dropped == 0 && s.rows.ids[13] == 'z');
    lm_set_free(&s);
    expect_error(load_set(&s, &src, &tok, 1, 15, &err), &err,
                 "14 tokens in all, fewer than one block of 15");
    expect_error(load_set(&s, &src, &tok, 1, 1, &err), &err, "block size 1");
    text_tokenizer_close(&tok);
}

/* A template that adds BOS: every document starts with it, as tokenizer(text) gives. */
static void test_pack_bos(void) {
    TextTokenizer tok = byte_tokenizer(
        "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", "
        "\"type_id\": 0}}, {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"pair\": [], "
        "\"special_tokens\": {\"<s>\": {\"id\": \"<s>\", \"ids\": [257], \"tokens\": [\"<s>\"]}}}");
    LmSpecials sp;
    LfError err;
    CHECK_OK(lm_specials(&sp, &tok, &err), &err);
    CHECK(sp.n_prefix == 1 && sp.prefix[0] == 257 && sp.n_suffix == 0 && sp.eos == 256);
    LmSource src = {.path = write_file("docs.jsonl", "{\"text\": \"ab\"}\n\n{\"text\": \"cd\"}\n")};
    LmSet s;
    CHECK_OK(load_set(&s, &src, &tok, 1, 7, &err), &err);
    CHECK(s.rows.n == 1 && same_ids(s.rows.ids, (int32_t[]){257, 'a', 'b', 256, 257, 'c', 'd'}, 7));
    lm_set_free(&s);
    text_tokenizer_close(&tok);
}

/* WordPiece adds [CLS] ... [SEP]; [SEP] is the EOS, so none is added between documents. */
static void test_wordpiece(void) {
    char dir[300];
    snprintf(dir, sizeof dir, "%s/wp", tmp);
    mkdir(dir, 0755);
    write_file("wp/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nw0\nw1\nw2\nw3\nw4\nw5\n");
    TextTokenizer tok;
    LfError err;
    CHECK_OK(text_tokenizer_open(&tok, dir, &err), &err);
    LmSource src = {
        .path = write_file("wp.jsonl", "{\"text\": \"w0 w1\"}\n{\"text\": \"w2 w3 w4 w5\"}\n")};
    LmSet s;
    CHECK_OK(load_set(&s, &src, &tok, 1, 5, &err), &err);
    CHECK(s.rows.n == 2 && s.n_dropped == 0 &&
          same_ids(s.rows.ids, (int32_t[]){2, 5, 6, 3, 2, 7, 8, 9, 10, 3}, 10));
    lm_set_free(&s);
    CHECK_OK(load_set(&s, &src, &tok, 0, 4, &err), &err); /* truncated rows keep [SEP] */
    CHECK(s.rows.n == 2 && s.n_dropped == 2 &&
          same_ids(s.rows.ids, (int32_t[]){2, 5, 6, 3, 2, 7, 8, 3}, 8));
    lm_set_free(&s);
    text_tokenizer_close(&tok);
}

/* ---- evaluation rows ---- */

static void test_rows(void) {
    TextTokenizer tok = byte_tokenizer("null");
    LmSource src = {.path = write_file("eval.jsonl", "{\"text\": \"abcdef\"}\n{\"text\": \"ab\"}\n"
                                                     "{\"text\": \"a\"}\n{\"text\": \"\"}\n"
                                                     "{\"text\": \"abcdefghijkl\"}\n")};
    LmSet s;
    LfError err;
    CHECK_OK(load_set(&s, &src, &tok, 0, 8, &err), &err);
    CHECK(s.n_texts == 5 && s.rows.n == 3 && s.n_skipped == 2 && s.rows.max_len == 8);
    CHECK(s.n_tokens == 16 && s.n_dropped == 4 + 1 && s.n_predicted == 5 + 1 + 7);

    LmLoader l;
    LmBatch b;
    CHECK_OK(lm_loader_init(&l, &s, 2, 0, &err), &err);
    CHECK(lm_loader_next(&l, &b) == 1 && b.B == 2 && b.T == 6);
    CHECK(b.n_tokens == 8 && b.n_predicted == 6);
    int32_t ids[12] = {'a', 'b', 'c', 'd', 'e', 'f', 'a', 'b', 0, 0, 0, 0};
    int32_t mask[12] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0};
    int32_t labels[12] = {'a', 'b', 'c', 'd', 'e', 'f', 'a', 'b', -100, -100, -100, -100};
    CHECK(same_ids(b.ids, ids, 12) && same_ids(b.mask, mask, 12) && same_ids(b.labels, labels, 12));
    CHECK(lm_loader_next(&l, &b) == 1 && b.B == 1 && b.T == 8 && b.n_predicted == 7);
    CHECK(b.ids[7] == 'h' && b.labels[7] == 'h');
    CHECK(lm_loader_next(&l, &b) == 0);
    lm_loader_free(&l);
    lm_set_free(&s);

    LmSource one = {.path = write_file("short.jsonl", "{\"text\": \"a\"}\n")};
    expect_error(load_set(&s, &one, &tok, 0, 8, &err), &err, "no text of 2 tokens");
    expect_error(load_set(&s, &src, &tok, 0, 1, &err), &err, "max_length 1");
    text_tokenizer_close(&tok);
}

/* Lines and paragraphs of a .txt: blank lines start nothing, newlines are not kept. */
static void test_units(void) {
    const char *path = write_file("units.txt", "one\r\ntwo\n\n  \nthree\nfour\n\n\nfive");
    LmTexts t;
    LfError err;
    LmSource src = {.path = path, .unit = LM_UNIT_LINE};
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 5 && !strcmp(t.buf + t.offsets[0], "one") &&
          !strcmp(t.buf + t.offsets[4], "five"));
    lm_texts_free(&t);
    src.unit = LM_UNIT_PARAGRAPH;
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 3 && !strcmp(t.buf + t.offsets[0], "one\r\ntwo") &&
          !strcmp(t.buf + t.offsets[1], "three\nfour") && t.lens[2] == 4);
    lm_texts_free(&t);
    src.unit = LM_UNIT_FILE;
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 1 && t.lens[0] == strlen("one\r\ntwo\n\n  \nthree\nfour\n\n\nfive"));
    lm_texts_free(&t);
}

/* ---- errors ---- */

static void test_errors(void) {
    LmTexts t;
    LfError err;
    LmSource src = {.path = write_file("bad.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": \"x\",}\n")};
    expect_error(lm_texts_load(&t, &src, &err), &err, "bad.jsonl:3: malformed JSON");
    src.path = write_file("nokey.jsonl", "{\"body\": \"x\"}\n");
    expect_error(lm_texts_load(&t, &src, &err), &err, "nokey.jsonl:1: no key 'text'");
    src.text_column = "body";
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 1 && !strcmp(t.buf, "x"));
    lm_texts_free(&t);
    src = (LmSource){.path = write_file("utf8.txt", "fine\nbad \xC3( here\n")};
    expect_error(lm_texts_load(&t, &src, &err), &err, "utf8.txt:2:5: invalid UTF-8");
    src.path = "/nonexistent/corpus.txt";
    expect_error(lm_texts_load(&t, &src, &err), &err, "/nonexistent/corpus.txt: cannot open");
    src.path = write_file("empty.jsonl", "\n  \n");
    expect_error(lm_texts_load(&t, &src, &err), &err, "empty.jsonl: no text in it");
    src.path = write_file("empty.txt", "\n\n");
    expect_error(lm_texts_load(&t, &src, &err), &err, "empty.txt: no text in it");
    char dir[300];
    snprintf(dir, sizeof dir, "%s/none", tmp);
    mkdir(dir, 0755);
    src.path = dir;
    expect_error(lm_texts_load(&t, &src, &err), &err, "none: no text in it");
    src = (LmSource){.path = write_file("x.txt", "a"), .format = "csv"};
    expect_error(lm_texts_load(&t, &src, &err), &err, "unknown corpus format 'csv'");
    src = (LmSource){.path = write_file("x.csv", "a")};
    expect_error(lm_texts_load(&t, &src, &err), &err, "x.csv: cannot tell the corpus format");
    src.format = "txt";
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 1 && !strcmp(t.buf, "a"));
    lm_texts_free(&t);
}

/* ---- chapter hold-out ---- */

static const char NOVEL[] = "A NOVEL\n\nCHAPTER I\n\nFirst line.\nSecond line.\n\n"
                            "CHAPTER II.\n\nThird line.\nChapters 4 and 5 are not headings,\n"
                            "CHAPTER IV: nor this, nor\nChapter\nChapter did.\n\nVOLUME II\n\n"
                            "Chapter 3  \n\nLast line.\n";

static void test_chapters(void) {
    size_t *starts;
    int n;
    LfError err;
    CHECK_OK(lm_chapters(NOVEL, strlen(NOVEL), &starts, &n, &err), &err);
    const char *c2 = strstr(NOVEL, "CHAPTER II."), *c3 = strstr(NOVEL, "Chapter 3");
    CHECK(n == 3 && starts[0] == 9 && starts[1] == (size_t)(c2 - NOVEL));
    CHECK(starts[2] == (size_t)(c3 - NOVEL) && starts[3] == strlen(NOVEL));
    free(starts);

    char dir[300];
    snprintf(dir, sizeof dir, "%s/novels", tmp);
    mkdir(dir, 0755);
    write_file("novels/a.txt", "Another book.\n");
    const char *novel = write_file("novels/b.txt", NOVEL);
    char spelled[600]; /* the same file by another path: matched by inode */
    snprintf(spelled, sizeof spelled, "%s/./novels/../novels/b.txt", tmp);
    LmTexts t;
    LmSource src = {
        .path = dir, .unit = LM_UNIT_LINE, .holdout = {spelled, 2}, .part = LM_PART_HELDOUT};
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 7 && !strcmp(t.buf + t.offsets[0], "CHAPTER II.") &&
          !strcmp(t.buf + t.offsets[6], "VOLUME II"));
    lm_texts_free(&t);

    src.part = LM_PART_TRAIN;
    src.unit = LM_UNIT_FILE;
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    size_t head = (size_t)(c2 - NOVEL), tail = strlen(c3);
    CHECK(t.n == 2 && !strcmp(t.buf, "Another book.\n") && t.lens[1] == head + tail);
    CHECK(!memcmp(t.buf + t.offsets[1], NOVEL, head) && !strcmp(t.buf + t.offsets[1] + head, c3));
    lm_texts_free(&t);

    src.part = LM_PART_ALL; /* the holdout is ignored */
    CHECK_OK(lm_texts_load(&t, &src, &err), &err);
    CHECK(t.n == 2 && t.lens[1] == strlen(NOVEL));
    lm_texts_free(&t);

    src = (LmSource){.path = novel, .holdout = {novel, 4}, .part = LM_PART_HELDOUT};
    expect_error(lm_texts_load(&t, &src, &err), &err, "b.txt: no chapter 4: the file has 3");
    src.holdout.chapter = 0;
    expect_error(lm_texts_load(&t, &src, &err), &err, "no chapter 0");
    src = (LmSource){
        .path = write_file("other.txt", NOVEL), .holdout = {novel, 1}, .part = LM_PART_TRAIN};
    expect_error(lm_texts_load(&t, &src, &err), &err, "is not a .txt file of it");
    src.holdout.file = "/nonexistent/b.txt";
    expect_error(lm_texts_load(&t, &src, &err), &err, "held-out file /nonexistent/b.txt");
}

/* ---- the epoch order ---- */

/* The block order of one epoch (first ids of each block). */
static void epoch_order(LmLoader *l, uint64_t seed, int epoch, int32_t *out) {
    LmBatch b;
    int k = 0;
    lm_loader_start_epoch(l, seed, epoch, 1, 0);
    while (lm_loader_next(l, &b))
        for (int i = 0; i < b.B; i++) out[k++] = b.ids[i * b.T];
}

static void test_shuffle(void) {
    TextTokenizer tok = byte_tokenizer("null");
    char text[41];
    for (int i = 0; i < 40; i++) text[i] = (char)('A' + i); /* 20 blocks of 2, distinct first ids */
    text[40] = '\0';
    LmSource src = {.path = write_file("shuffle.txt", text)};
    LmSet s;
    LfError err;
    CHECK_OK(load_set(&s, &src, &tok, 1, 2, &err), &err);
    LmLoader l;
    CHECK_OK(lm_loader_init(&l, &s, 3, 256, &err), &err);
    int32_t a[20], b[20], c[20], d[20];
    epoch_order(&l, 7, 0, a);
    epoch_order(&l, 7, 0, b);
    epoch_order(&l, 7, 1, c);
    epoch_order(&l, 8, 0, d);
    CHECK(same_ids(a, b, 20) && !same_ids(a, c, 20) && !same_ids(a, d, 20));
    int seen[20] = {0}, ok = 1;
    for (int i = 0; i < 20; i++) seen[(a[i] - 'A') / 2]++;
    for (int i = 0; i < 20; i++) ok &= seen[i] == 1;
    CHECK(ok); /* a permutation of the blocks */
    int32_t first[20] = {'A', 'C', 'E', 'G', 'I', 'K', 'M', 'O', 'Q', 'S',
                         'U', 'W', 'Y', '[', ']', '_', 'a', 'c', 'e', 'g'};
    LmBatch batch;
    lm_loader_start_epoch(&l, 7, 0, 0, 0); /* no shuffle: row order */
    for (int k = 0; lm_loader_next(&l, &batch); k += batch.B)
        for (int i = 0; i < batch.B; i++) CHECK(batch.ids[i * batch.T] == first[k + i]);
    lm_loader_free(&l);
    lm_set_free(&s);
    text_tokenizer_close(&tok);
}

/* ---- the Austen corpus ---- */

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The packed stream of the six novels under one tokenizer equals the golden count. */
static void austen_tokens(const char *corpus, const char *tok_dir, long long golden) {
    struct stat st;
    if (stat(tok_dir, &st)) {
        printf("SKIP austen with %s: not found\n", tok_dir);
        return;
    }
    TextTokenizer tok;
    LfError err;
    CHECK_OK(text_tokenizer_open(&tok, tok_dir, &err), &err);
    double t0 = seconds(), c0 = (double)clock() / CLOCKS_PER_SEC;
    LmSource src = {.path = corpus};
    LmSet s = {0};
    CHECK_OK(load_set(&s, &src, &tok, 1, 1024, &err), &err);
    double dt = seconds() - t0, cpu = (double)clock() / CLOCKS_PER_SEC - c0;
    long long stream = s.n_tokens + s.n_dropped;
    CHECK(s.n_texts == 6 && stream == golden);
    CHECK(s.rows.n == golden / 1024 && s.n_dropped == golden % 1024);
    printf("austen, %s: %lld tokens (%d blocks of 1024, %lld dropped), read and packed in %.3f s "
           "(%.3f s of CPU)\n",
           tok_dir, stream, s.rows.n, (long long)s.n_dropped, dt, cpu);
    lm_set_free(&s);
    text_tokenizer_close(&tok);
}

/* scripts/count-austen-tokens.py [DIR] [TOKENIZER]: Hugging Face's count of the packed stream
 * (transformers 5.24, tokenizers 0.23). */
enum {
    AUSTEN_GPT2_TOKENS = 1012769,   /* ../shared/data/tokenizers/gpt2 */
    AUSTEN_BERT_TOKENS = 919518,    /* ../shared/data/tokenizers/bert-base-uncased */
    AUSTEN_SMOLLM2_TOKENS = 995454, /* models/smollm2-tokenizer */
};

static void test_austen(void) {
    char corpus[4200], gpt2[4200], bert[4200], emma[4300];
    snprintf(corpus, sizeof corpus, "%s/austen", shared_data_dir());
    snprintf(gpt2, sizeof gpt2, "%s/tokenizers/gpt2", shared_data_dir());
    snprintf(bert, sizeof bert, "%s/tokenizers/bert-base-uncased", shared_data_dir());
    snprintf(emma, sizeof emma, "%s/emma.txt", corpus);
    struct stat st;
    if (stat(corpus, &st)) {
        printf("SKIP test_austen: no %s (set LORAFT_SHARED_DATA)\n", corpus);
        return;
    }
    austen_tokens(corpus, gpt2, AUSTEN_GPT2_TOKENS);
    austen_tokens(corpus, bert, AUSTEN_BERT_TOKENS);
    austen_tokens(corpus, "models/smollm2-tokenizer", AUSTEN_SMOLLM2_TOKENS);

    /* Emma's chapter 1 held out: train + held-out bytes are the corpus's */
    LfError err;
    LmTexts all, train, held;
    LmSource a = {.path = corpus},
             tr = {.path = corpus, .holdout = {emma, 1}, .part = LM_PART_TRAIN};
    LmSource he = tr;
    he.part = LM_PART_HELDOUT;
    CHECK_OK(lm_texts_load(&all, &a, &err), &err);
    CHECK_OK(lm_texts_load(&train, &tr, &err), &err);
    CHECK_OK(lm_texts_load(&held, &he, &err), &err);
    CHECK(train.n == 6 && held.n == 1 && !strncmp(held.buf, "CHAPTER I\n", 10));
    CHECK(all.lens[0] == train.lens[0] + held.lens[0] && all.lens[1] == train.lens[1]);
    lm_texts_free(&all);
    lm_texts_free(&train);
    lm_texts_free(&held);
}

int main(void) {
    snprintf(tmp, sizeof tmp, "/tmp/test_lm_data.XXXXXX");
    if (!mkdtemp(tmp)) return 1;
    test_pack();
    test_pack_bos();
    test_wordpiece();
    test_rows();
    test_units();
    test_errors();
    test_chapters();
    test_shuffle();
    test_austen();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", tmp);
    return check_report();
}
