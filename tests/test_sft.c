/* test_sft.c: SFT data (sft_data.h) and its loss through the causal-LM objective.
 *
 * - Rendering and answer labels equal transformers' (tests/golden/sft_render.json, from
 *   scripts/make-sft-goldens.py), token for token: SmolLM2-Instruct's tokenizer with its own
 *   chat template (when models/smollm2-tokenizer is there), and a tiny `loraft init --arch
 *   llama` model's GPT-2 tokenizer with the plain template and an Alpaca prompt template (when
 *   ../shared/data/tokenizers/gpt2 is there), and a SentencePiece-style BPE's (Llama 2's
 *   spelling) with both, and Gemma's (tests/golden/spm_gemma.json) with Gemma 3's chat template
 *   from its tokenizer_config.json, and SmolLM2-Instruct's with SmolLM3's chat template (smollm3,
 *   recognised in chat_template.jinja, and smollm3-nothink). Right truncation, packing and
 *   holding out are checked against the same golden rows; malformed records are errors naming
 *   file and line.
 * - The loader's labels are the set's labels, -100 on padding, and n_predicted counts them.
 * - On a tiny random Llama with LoRA on every projection: the objective's loss over a batch of
 *   SFT rows is the mean answer-token cross-entropy computed here in double from the logits
 *   (tolerance 1e-5 relative), and its LoRA gradients match central finite differences in one
 *   random direction per tensor (2% of the directional derivative + 2e-4). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "gradcheck.h"
#include "loraft/cli.h"
#include "loraft/fileio.h"
#include "loraft/model.h"
#include "loraft/rng.h"
#include "loraft/sft_data.h"

static char tmpdir[] = "/tmp/loraft-sft-XXXXXX";

/* Writes lines[0..n) to tmpdir/name; returns the path (static buffer per call site). */
static const char *write_jsonl(const char *name, char **lines, int n, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    for (int i = 0; f && i < n; i++) fprintf(f, "%s\n", lines[i]);
    if (f) fclose(f);
    return path;
}

typedef struct Case {
    const cJSON *ids, *labels;
    char *record;
} Case;

/* The golden's cases for one tokenizer and one format (template name or prompt template). */
static int golden_cases(const cJSON *g, const char *tokenizer, const char *tmpl, int prompt_tmpl,
                        Case *out) {
    int n = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        const cJSON *t = cJSON_GetObjectItem(c, "tokenizer");
        const cJSON *f = cJSON_GetObjectItem(c, prompt_tmpl ? "prompt_template" : "template");
        if (strcmp(t->valuestring, tokenizer) || !f ||
            (!prompt_tmpl && strcmp(f->valuestring, tmpl)))
            continue;
        out[n++] = (Case){cJSON_GetObjectItem(c, "ids"), cJSON_GetObjectItem(c, "labels"),
                          cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "record"))};
    }
    return n;
}

/* The set's tokens at[0..n) are the golden's first n ids and labels. */
static int tokens_equal(const LmSet *s, int64_t at, const cJSON *ids, const cJSON *labels, int n) {
    int ok = 1;
    for (int t = 0; t < n; t++) {
        ok &= s->rows.ids[at + t] == cJSON_GetArrayItem(ids, t)->valueint;
        ok &= s->token_labels[at + t] == cJSON_GetArrayItem(labels, t)->valueint;
    }
    return ok;
}

/* Every case of one format: one row each, equal to the golden; then truncated, packed and
 * held out. */
static void check_format(const cJSON *g, const TextTokenizer *tok, const SftFormat *f,
                         const char *tokenizer, const char *tmpl, int prompt_tmpl) {
    Case cs[16];
    int n = golden_cases(g, tokenizer, tmpl, prompt_tmpl, cs);
    CHECK(n >= 5);
    char *lines[16], path[600];
    for (int i = 0; i < n; i++) lines[i] = cs[i].record;
    SftSource src = {.path = write_jsonl("golden.jsonl", lines, n, path, sizeof path)};
    LmSet s;
    LfError err;
    CHECK_OK(sft_load(&s, &src, tok, f, 4096, 0, &err), &err);
    CHECK(s.rows.n == n && s.n_texts == n && s.n_skipped == 0 && s.n_dropped == 0);
    int equal = 0;
    for (int i = 0; i < n && i < s.rows.n; i++) {
        int len = cJSON_GetArraySize(cs[i].ids);
        int ok = s.rows.offsets[i + 1] - s.rows.offsets[i] == len &&
                 tokens_equal(&s, s.rows.offsets[i], cs[i].ids, cs[i].labels, len);
        if (!ok)
            fprintf(stderr, "%s %s: example %d differs from transformers\n", tokenizer, tmpl, i);
        equal += ok;
    }
    CHECK(equal == n);
    printf("%s, %s: %d examples equal transformers' ids and labels\n", tokenizer,
           prompt_tmpl ? "prompt template" : tmpl, equal);
    int prompt_len;
    sft_row_prompt(&s, 0, &prompt_len);
    int first = 0;
    while (cJSON_GetArrayItem(cs[0].labels, first)->valueint < 0) first++;
    CHECK(prompt_len == first);
    lm_set_free(&s);

    /* right truncation 3 tokens into the first answer: a prefix of each row; rows without an
     * answer token left are skipped */
    const int L = first + 3;
    CHECK_OK(sft_load(&s, &src, tok, f, L, 0, &err), &err);
    int row = 0, skipped = 0;
    for (int i = 0; i < n; i++) {
        int len = cJSON_GetArraySize(cs[i].ids), keep = len < L ? len : L, answer = 0;
        for (int t = 1; t < keep; t++) answer |= cJSON_GetArrayItem(cs[i].labels, t)->valueint >= 0;
        if (!answer) {
            skipped++;
            continue;
        }
        CHECK(s.rows.offsets[row + 1] - s.rows.offsets[row] == keep);
        CHECK(tokens_equal(&s, s.rows.offsets[row], cs[i].ids, cs[i].labels, keep));
        row++;
    }
    CHECK(s.rows.n == row && s.n_skipped == skipped && s.rows.max_len <= L && row > 0);
    printf("  truncated at %d tokens: %d rows, %d examples skipped\n", L, row, skipped);
    lm_set_free(&s);

    /* packing into rows of 128: examples in order, a new row when the next does not fit */
    const int P = 128;
    CHECK_OK(sft_load(&s, &src, tok, f, P, 1, &err), &err);
    row = 0;
    int used = 0;
    for (int i = 0; i < n; i++) {
        int len = cJSON_GetArraySize(cs[i].ids), keep = len < P ? len : P;
        if (used && used + keep > P) row++, used = 0;
        CHECK(row < s.rows.n &&
              tokens_equal(&s, s.rows.offsets[row] + used, cs[i].ids, cs[i].labels, keep));
        used += keep;
    }
    CHECK(s.rows.n == row + 1 && s.rows.max_len <= P);
    printf("  packed %d examples into %d rows of up to %d tokens\n", n, s.rows.n, P);
    lm_set_free(&s);

    /* the last 2 examples held out; the rest for training */
    src.holdout = 2;
    src.part = LM_PART_HELDOUT;
    CHECK_OK(sft_load(&s, &src, tok, f, 4096, 0, &err), &err);
    CHECK(s.rows.n == 2 && tokens_equal(&s, s.rows.offsets[0], cs[n - 2].ids, cs[n - 2].labels, 4));
    lm_set_free(&s);
    src.part = LM_PART_TRAIN;
    CHECK_OK(sft_load(&s, &src, tok, f, 4096, 0, &err), &err);
    CHECK(s.rows.n == n - 2 && tokens_equal(&s, s.rows.offsets[0], cs[0].ids, cs[0].labels, 4));
    lm_set_free(&s);
    src.limit = 2; /* the first 2 of those */
    CHECK_OK(sft_load(&s, &src, tok, f, 4096, 0, &err), &err);
    CHECK(s.rows.n == 2 && s.n_texts == 2 &&
          tokens_equal(&s, s.rows.offsets[1], cs[1].ids, cs[1].labels, 4));
    lm_set_free(&s);
    for (int i = 0; i < n; i++) free(cs[i].record);
}

static void expect_error(const TextTokenizer *tok, const SftFormat *f, const char *record,
                         int holdout, const char *want) {
    char path[600], *lines[] = {(char *)record};
    SftSource src = {.path = write_jsonl("bad.jsonl", lines, 1, path, sizeof path),
                     .holdout = holdout,
                     .part = holdout ? LM_PART_TRAIN : LM_PART_ALL};
    LmSet s;
    LfError err = {{0}};
    int rc = sft_load(&s, &src, tok, f, 64, 0, &err);
    CHECK(rc == -1 && strstr(err.msg, want) != NULL);
    if (rc == 0 || !strstr(err.msg, want))
        fprintf(stderr, "record %s: error \"%s\", wanted \"%s\"\n", record, err.msg, want);
}

static void check_errors(const TextTokenizer *tok, const SftFormat *f) {
    expect_error(tok, f, "{\"instruction\": \"x\"}", 0, "bad.jsonl:1: field \"output\" is missing");
    expect_error(tok, f, "{\"instruction\": 3, \"output\": \"y\"}", 0, "is not a string");
    expect_error(tok, f, "[1, 2]", 0, "bad.jsonl:1: not a JSON object");
    expect_error(tok, f, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}", 0,
                 "a prompt and an answer");
    expect_error(tok, f,
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": "
                 "\"user\", \"content\": \"b\"}]}",
                 0, "the last message must be the assistant's");
    expect_error(tok, f,
                 "{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}, {\"role\": "
                 "\"assistant\", \"content\": \"b\"}]}",
                 0, "role \"tool\"");
    expect_error(tok, f, "{\"instruction\": \"x\", \"output\": \"y\"}", 1, "leaves none");
    SftFormat bad;
    LfError err;
    CHECK(sft_format_init(&bad, &f->chat, "{instruction} no output", tok, -1, &err) == -1 &&
          strstr(err.msg, "has no {output}"));
    CHECK(sft_format_init(&bad, &f->chat, "{output} {input}", tok, -1, &err) == -1 &&
          strstr(err.msg, "before {output}"));
}

/* The loader's labels are the rows' labels, -100 on padding. */
static void check_loader(const TextTokenizer *tok, const SftFormat *f, const cJSON *g) {
    Case cs[16];
    int n = golden_cases(g, "gpt2", "plain", 0, cs);
    char *lines[16], path[600];
    for (int i = 0; i < n; i++) lines[i] = cs[i].record;
    SftSource src = {.path = write_jsonl("loader.jsonl", lines, n, path, sizeof path)};
    LmSet s;
    LmLoader l;
    LmBatch b;
    LfError err;
    CHECK_OK(sft_load(&s, &src, tok, f, 4096, 0, &err), &err);
    CHECK_OK(lm_loader_init(&l, &s, 4, 0, &err), &err);
    int64_t predicted = 0;
    int ok = 1;
    while (lm_loader_next(&l, &b)) {
        for (int r = 0; r < b.B; r++) {
            const Case *c = &cs[b.index[r]];
            int len = cJSON_GetArraySize(c->ids);
            for (int t = 0; t < b.T; t++) {
                int32_t want = t < len ? cJSON_GetArrayItem(c->labels, t)->valueint : LM_IGNORE;
                ok &= b.labels[r * b.T + t] == want;
            }
        }
        predicted += b.n_predicted;
    }
    CHECK(ok && predicted == s.n_predicted && s.n_predicted > 0);
    lm_loader_free(&l);
    lm_set_free(&s);
    for (int i = 0; i < n; i++) free(cs[i].record);
}

/* The golden's Alpaca-style prompt template. */
static const char *golden_alpaca(const cJSON *g) {
    const char *alpaca = NULL;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(g, "cases")) {
        const cJSON *p = cJSON_GetObjectItem(c, "prompt_template");
        if (p) alpaca = p->valuestring;
    }
    return alpaca;
}

/* The golden's cases of tokenizer `name` with the plain template and the prompt template: tok's
 * ids and labels, eos its EOS. */
static void check_plain_and_alpaca(const cJSON *g, const TextTokenizer *tok, const char *name,
                                   int32_t eos) {
    ChatTemplate plain;
    SftFormat f;
    LfError err;
    CHECK_OK(chat_template_by_name("plain", &plain, &err), &err);
    CHECK_OK(sft_format_init(&f, &plain, NULL, tok, eos, &err), &err);
    check_format(g, tok, &f, name, "plain", 0);
    const char *alpaca = golden_alpaca(g);
    CHECK_OK(sft_format_init(&f, NULL, alpaca, tok, eos, &err), &err);
    check_format(g, tok, &f, name, alpaca, 1);
}

static void check_smollm2(const cJSON *g) {
    const char *dir = "models/smollm2-tokenizer";
    if (access(dir, R_OK)) {
        printf("SKIP: %s is absent (scripts/extract-smollm2-tokenizer.sh makes it)\n", dir);
        return;
    }
    TextTokenizer tok;
    ChatTemplate chat;
    SftFormat f;
    LfError err;
    CHECK_OK(text_tokenizer_open(&tok, dir, &err), &err);
    CHECK_OK(chat_template_for_model(dir, NULL, &chat, &err), &err);
    CHECK(!strcmp(chat.name, "smollm2"));
    CHECK_OK(sft_format_init(&f, &chat, NULL, &tok, -1, &err), &err);
    check_format(g, &tok, &f, "smollm2", "smollm2", 0);
    text_tokenizer_close(&tok);
}

static void check_tiny_llama(const cJSON *g) {
    char vocab[4200], model[700];
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2", shared_data_dir());
    if (access(vocab, R_OK)) {
        printf("SKIP: %s is absent\n", vocab);
        return;
    }
    snprintf(model, sizeof model, "%s/tiny-llama", tmpdir);
    char *argv[] = {"--arch",  "llama", "--layers",     "1",   "--hidden", "16",
                    "--heads", "2",     "--vocab-from", vocab, "--out",    model};
    CHECK(cmd_init(sizeof argv / sizeof *argv, argv) == 0);
    TextTokenizer tok;
    ModelConfig cfg;
    ChatTemplate plain;
    SftFormat f;
    LfError err;
    CHECK_OK(text_tokenizer_open(&tok, model, &err), &err);
    CHECK_OK(model_config_load(&cfg, model, &err), &err);
    /* GPT-2's files carry no chat template */
    CHECK(chat_template_for_model(model, NULL, &plain, &err) == -1);
    CHECK_OK(chat_template_for_model(model, "plain", &plain, &err), &err);
    CHECK_OK(sft_format_init(&f, &plain, NULL, &tok, cfg.eos_token_id, &err), &err);
    check_format(g, &tok, &f, "gpt2", "plain", 0);
    check_loader(&tok, &f, g);
    check_errors(&tok, &f);
    const char *alpaca = golden_alpaca(g);
    CHECK_OK(sft_format_init(&f, NULL, alpaca, &tok, cfg.eos_token_id, &err), &err);
    check_format(g, &tok, &f, "gpt2", alpaca, 1);
    expect_error(&tok, &f,
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": "
                 "\"assistant\", \"content\": \"b\"}]}",
                 0, "needs instruction / output records");
    text_tokenizer_close(&tok);
}

/* Writes text[0..len) to dir/name. */
static void write_to(const char *dir, const char *name, const char *text, size_t len) {
    char path[300];
    LfError err;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    CHECK_OK(file_write_atomic(path, text, len, &err), &err);
}

/* Copies the file from to dir/name. */
static void copy_to(const char *from, const char *dir, const char *name) {
    char *text = NULL;
    size_t len = 0;
    LfError err;
    CHECK_OK(file_read_all(from, &text, &len, &err), &err);
    if (text) write_to(dir, name, text, len);
    free(text);
}

/* A SentencePiece-style BPE (tests/golden/spm_legacy.json, Llama 2's spelling: a "▁" before each
 * piece that the text lacks, <s> added by its post-processor) with the plain template and the
 * Alpaca prompt template: the prompt ends where transformers' offsets say, not one token early. */
static void check_spm(const cJSON *g) {
    char dir[200];
    snprintf(dir, sizeof dir, "%s/spm", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    copy_to("tests/golden/spm_legacy.json", dir, "tokenizer.json");
    LfError err;
    TextTokenizer tok;
    CHECK_OK(text_tokenizer_open(&tok, dir, &err), &err);
    int32_t eos = bpe_lookup(tok.bpe, "</s>");
    CHECK(eos >= 0);
    check_plain_and_alpaca(g, &tok, "spm", eos);
    text_tokenizer_close(&tok);
}

/* The model directory dir's tokenizer with its chat template (detected, or pick by name), which
 * must be `template`: the golden's ids and labels of tokenizer tok_name and that template. */
static void check_model_dir(const cJSON *g, const char *dir, const char *pick, const char *tok_name,
                            const char *template) {
    TextTokenizer tok;
    ChatTemplate t;
    SftFormat f;
    LfError err;
    CHECK_OK(text_tokenizer_open(&tok, dir, &err), &err);
    CHECK_OK(chat_template_for_model(dir, pick, &t, &err), &err);
    CHECK(t.name && !strcmp(t.name, template));
    CHECK_OK(sft_format_init(&f, &t, NULL, &tok, -1, &err), &err);
    check_format(g, &tok, &f, tok_name, template, 0);
    text_tokenizer_close(&tok);
}

/* Gemma's tokenizer.json (tests/golden/spm_gemma.json) with Gemma 3's chat template, found in
 * its tokenizer_config.json as a model directory carries it: BOS is text the template renders,
 * <end_of_turn> ends the answer. */
static void check_gemma(const cJSON *g, const cJSON *templates) {
    char dir[200];
    snprintf(dir, sizeof dir, "%s/gemma", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    copy_to("tests/golden/spm_gemma.json", dir, "tokenizer.json");
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "bos_token", "<bos>");
    cJSON_AddStringToObject(cfg, "eos_token", "<eos>");
    cJSON_AddItemToObject(cfg, "chat_template",
                          cJSON_Duplicate(cJSON_GetObjectItem(templates, "gemma"), 0));
    char *cfg_text = cJSON_Print(cfg);
    write_to(dir, "tokenizer_config.json", cfg_text, strlen(cfg_text));
    free(cfg_text);
    cJSON_Delete(cfg);
    check_model_dir(g, dir, NULL, "gemma", "gemma");
}

/* SmolLM2-Instruct's tokenizer (the same ChatML special tokens) with SmolLM3's chat template in
 * chat_template.jinja, as SmolLM3-3B ships it: recognised as smollm3, dated as the golden (loraft's
 * default), the answer after the reasoning mode's head; then smollm3-nothink, picked by name. */
static void check_smollm3(const cJSON *g, const cJSON *templates) {
    const char *src = "models/smollm2-tokenizer";
    if (access(src, R_OK)) {
        printf("SKIP: %s is absent (scripts/extract-smollm2-tokenizer.sh makes it)\n", src);
        return;
    }
    char dir[200], from[300];
    snprintf(dir, sizeof dir, "%s/smollm3", tmpdir);
    CHECK(mkdir(dir, 0700) == 0);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "tokenizer_config.json" : "tokenizer.json";
        snprintf(from, sizeof from, "%s/%s", src, name);
        copy_to(from, dir, name);
    }
    const char *jinja = cJSON_GetObjectItem(templates, "smollm3")->valuestring;
    write_to(dir, "chat_template.jinja", jinja, strlen(jinja));
    check_model_dir(g, dir, NULL, "smollm2", "smollm3");
    check_model_dir(g, dir, "smollm3-nothink", "smollm2", "smollm3-nothink");
}

/* GPT-2's tokenizer under Qwen2's NFC normalizer (the golden's nfc_edit) with the plain template
 * and the Alpaca prompt template, on text that NFC changes at the prompt's end and the answer's
 * start: the prompt ends where transformers' offsets (into the text before NFC) say. */
static void check_nfc(const cJSON *g) {
    char src[4200], dir[200], path[300];
    snprintf(src, sizeof src, "%s/tokenizers/gpt2/tokenizer.json", shared_data_dir());
    if (access(src, R_OK)) {
        printf("SKIP: %s is absent\n", src);
        return;
    }
    char *text;
    size_t len;
    LfError err;
    CHECK_OK(file_read_all(src, &text, &len, &err), &err);
    cJSON *json = cJSON_Parse(text), *e;
    free(text);
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(g, "nfc_edit")) {
        cJSON_DeleteItemFromObject(json, e->string);
        cJSON_AddItemToObject(json, e->string, cJSON_Duplicate(e, 1));
    }
    text = cJSON_PrintUnformatted(json);
    cJSON_Delete(json);
    snprintf(dir, sizeof dir, "%s/nfc", tmpdir);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK(mkdir(dir, 0700) == 0);
    CHECK_OK(file_write_atomic(path, text, strlen(text), &err), &err);
    free(text);
    TextTokenizer tok;
    CHECK_OK(text_tokenizer_open(&tok, dir, &err), &err);
    CHECK(bpe_nfc(tok.bpe));
    int32_t eos = bpe_lookup(tok.bpe, "<|endoftext|>");
    check_plain_and_alpaca(g, &tok, "gpt2-nfc", eos);
    text_tokenizer_close(&tok);
}

/* ---- the loss through the objective ---- */

enum { VOCAB = 29, B = 2, T = 9 };

static void check_objective(void) {
    ModelConfig c;
    TrainSpec s;
    LfError err;
    model_config_defaults(&c, ARCH_LLAMA);
    c.vocab_size = VOCAB, c.hidden_size = 16, c.num_layers = 2, c.num_heads = 4;
    c.num_kv_heads = 2, c.ffn_size = 24, c.max_positions = 32, c.initializer_range = 0.2f;
    c.pad_token_id = -1;
    train_spec_defaults(&s);
    s.task = TASK_CAUSAL_LM;
    s.r = 2, s.alpha = 4, s.dropout = 0.1f;
    const char *t[] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
    for (int i = 0; i < 7; i++) strcpy(s.targets[s.n_targets++], t[i]);
    Model m;
    CHECK_OK(model_create(&m, &c, &s, &ops_cpu, NULL, 5, B, T, NULL, 0, &err), &err);
    Rng rng = {21, 0};
    for (int i = 0; i < m.n_params; i++)
        if (m.params[i].is_lora)
            for (size_t j = 0; j < m.params[i].numel; j++)
                m.params[i].value[j] = 0.4f * (rng_next_uniform(&rng) - 0.5f);
    /* two SFT rows: a prompt (-100), an answer ending in EOS (28), then masking / padding */
    int32_t ids[B * T] = {3, 7, 9, 11, 4, 5, 28, 1, 2, /**/ 6, 8, 10, 12, 13, 28, 0, 0, 0};
    int32_t mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 1, /**/ 1, 1, 1, 1, 1, 1, 0, 0, 0};
    int32_t labels[B * T] = {-100, -100, -100, 11,   4,  5,  28,   -100, -100, /**/
                             -100, -100, -100, -100, 13, 28, -100, -100, -100};
    CHECK_OK(model_set_batch(&m, ids, NULL, mask, labels, B, T, &err), &err);
    float loss;
    CHECK_OK(model_forward(&m, 0, &loss, &err), &err);
    float *logits = malloc((size_t)B * T * VOCAB * sizeof *logits);
    CHECK_OK(model_lm_logits(&m, 0, B * T, logits, &err), &err);
    double sum = 0;
    int n = 0;
    for (int i = 0; i < B * T; i++) {
        if (i % T == T - 1 || labels[i + 1] < 0) continue; /* position i predicts label i + 1 */
        const float *z = logits + (size_t)i * VOCAB;
        double mx = z[0], se = 0;
        for (int v = 1; v < VOCAB; v++) mx = fmax(mx, z[v]);
        for (int v = 0; v < VOCAB; v++) se += exp(z[v] - mx);
        sum += mx + log(se) - z[labels[i + 1]];
        n++;
    }
    free(logits);
    CHECK(n == 6 && m.n_valid == 6);
    CHECK_CLOSE(loss, sum / n, 0, 1e-5);
    printf("answer-token loss %.6f = mean over %d answer tokens %.6f\n", loss, n, sum / n);

    /* finite differences in train mode (LoRA dropout on; masks follow the seed) */
    int checked, failed = gradcheck_tensors(&m, 99, &rng, "SFT", &checked);
    CHECK(checked == 2 * 7 * 2 && failed == 0);
    printf("SFT loss: %d LoRA tensors against finite differences, %d off\n", checked, failed);
    model_free(&m);
}

/* The JSON in path; NULL when it cannot be read or parsed. */
static cJSON *read_json(const char *path) {
    char *text = NULL;
    size_t len = 0;
    LfError err;
    CHECK_OK(file_read_all(path, &text, &len, &err), &err);
    cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    CHECK(j != NULL);
    return j;
}

int main(void) {
    CHECK(mkdtemp(tmpdir) != NULL);
    cJSON *g = read_json("tests/golden/sft_render.json");
    cJSON *chat = read_json("tests/golden/chat_templates.json");
    const cJSON *templates = cJSON_GetObjectItem(chat, "templates");
    check_smollm2(g);
    check_tiny_llama(g);
    check_spm(g);
    check_gemma(g, templates);
    check_smollm3(g, templates);
    check_nfc(g);
    check_objective();
    cJSON_Delete(chat);
    cJSON_Delete(g);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    CHECK(system(cmd) == 0);
    return check_report();
}
