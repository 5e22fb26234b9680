/* test_pref_data.c: preference pairs (pref_data.h) with the GPT-2 tokenizer:
 * - a row is tok(prompt) + tok(" " + response) + [eos], the prompt length recorded;
 * - a chat template renders an HH prompt turn by turn (user, assistant, user, then the
 *   generation prompt) and the response follows without the space;
 * - TRL 0.12's truncation: the prompt keeps its last max_prompt_length tokens when prompt + the
 *   longer response exceed max_length, then each response its first max_length -
 *   max_prompt_length;
 * - the held-out split and limit; records missing a field are errors naming the line;
 * - batches keep a pair's rows together under shuffling, label the responses only (DPO) or
 *   every token (reward), and pad with mask 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "loraft/pref_data.h"

static TextTokenizer tok;
static LmSpecials sp;
static char dir[] = "/tmp/loraft-pref-XXXXXX";

/* "w w w ..." of n words: n tokens with GPT-2 (" w" is one token), or n with a leading space. */
static char *words(const char *w, int n) {
    char *s = malloc((size_t)n * (strlen(w) + 1) + 1);
    s[0] = 0;
    for (int i = 0; i < n; i++) strcat(strcat(s, i ? " " : ""), w);
    return s;
}

static const char *write_file(const char *name, const char *text) {
    static char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
    return path;
}

static int encode(const char *text, int32_t *out) {
    IdList ids = {0};
    LfError err;
    CHECK_OK(text_encode(&tok, text, strlen(text), &ids, &err), &err);
    int n = (int)ids.n;
    memcpy(out, ids.ids, ids.n * sizeof *out);
    idlist_free(&ids);
    return n;
}

/* Row r of s equals prompt ids + response ids + eos (response_len -1: no eos, cut). */
static void check_row(const PrefSet *s, int r, const int32_t *prompt, int np, const int32_t *resp,
                      int nr, int eos) {
    const int32_t *row = s->rows.ids + s->rows.offsets[r];
    int len = (int)(s->rows.offsets[r + 1] - s->rows.offsets[r]);
    CHECK(s->prompt_len[r] == np && len == np + nr + eos);
    if (s->prompt_len[r] != np || len != np + nr + eos) {
        fprintf(stderr, "row %d: prompt %d (want %d), length %d (want %d)\n", r, s->prompt_len[r],
                np, len, np + nr + eos);
        return;
    }
    CHECK(!memcmp(row, prompt, (size_t)np * sizeof *row));
    CHECK(!memcmp(row + np, resp, (size_t)nr * sizeof *row));
    if (eos) CHECK(row[len - 1] == sp.eos);
}

static void plain_and_chat(void) {
    const char *path = write_file(
        "a.jsonl", "{\"prompt\": \"Human: Hi there\\n\\nAssistant: Hello!\\n\\nHuman: Bye?\\n\\n"
                   "Assistant:\", \"chosen\": \"See you.\", \"rejected\": \"No.\"}\n");
    PrefSpec spec = {
        .path = path, .kind = PREF_PAIRS, .max_length = 128, .max_prompt_length = 100, .sp = &sp};
    PrefSet s;
    LfError err;
    int32_t p[128], c[64], r[64];
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    CHECK(s.n_items == 1 && s.rows.n == 2 && s.n_truncated == 0);
    int np = encode("Human: Hi there\n\nAssistant: Hello!\n\nHuman: Bye?\n\nAssistant:", p);
    check_row(&s, 0, p, np, c, encode(" See you.", c), 1);
    check_row(&s, 1, p, np, r, encode(" No.", r), 1);
    pref_set_free(&s);

    ChatTemplate chat;
    CHECK_OK(chat_template_by_name("chatml", &chat, &err), &err);
    spec.chat = &chat;
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    np = encode("<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
                "<|im_start|>user\nBye?<|im_end|>\n<|im_start|>assistant\n",
                p);
    check_row(&s, 0, p, np, c, encode("See you.", c), 1);
    pref_set_free(&s);

    /* not HH: one user turn */
    path = write_file("b.jsonl", "{\"prompt\": \"Tell me a joke.\", \"response\": \"Why?\"}\n");
    spec = (PrefSpec){.path = path,
                      .kind = PREF_SINGLE,
                      .max_length = 128,
                      .max_prompt_length = 100,
                      .chat = &chat,
                      .sp = &sp};
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    CHECK(s.n_items == 1 && s.rows.n == 1);
    np = encode("<|im_start|>user\nTell me a joke.<|im_end|>\n<|im_start|>assistant\n", p);
    check_row(&s, 0, p, np, c, encode("Why?", c), 1);
    pref_set_free(&s);
}

/* One pair with a 30-token prompt and responses of nc and nr words under max_length 32,
 * max_prompt_length 8: the rows keep want_prompt prompt tokens and want_c, want_r response
 * tokens (EOS included while it survives). */
static void truncation(int nc, int nr, int want_prompt, int want_c, int want_r) {
    char *prompt = words("a", 30), *ch = words("b", nc), *rj = words("c", nr);
    char *line = malloc(strlen(prompt) + strlen(ch) + strlen(rj) + 64);
    sprintf(line, "{\"prompt\": \"%s\", \"chosen\": \"%s\", \"rejected\": \"%s\"}\n", prompt, ch,
            rj);
    PrefSpec spec = {.path = write_file("t.jsonl", line),
                     .kind = PREF_PAIRS,
                     .max_length = 32,
                     .max_prompt_length = 8,
                     .sp = &sp};
    PrefSet s;
    LfError err;
    int32_t p[64], c[64], r[64];
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    CHECK(encode(prompt, p) == 30);
    sprintf(line, " %s", ch);
    CHECK(encode(line, c) == nc);
    sprintf(line, " %s", rj);
    CHECK(encode(line, r) == nr);
    int ec = want_c > nc, er = want_r > nr; /* the EOS survives */
    check_row(&s, 0, p + 30 - want_prompt, want_prompt, c, want_c - ec, ec);
    check_row(&s, 1, p + 30 - want_prompt, want_prompt, r, want_r - er, er);
    CHECK(s.n_truncated == (want_prompt < 30));
    pref_set_free(&s);
    free(prompt), free(ch), free(rj), free(line);
}

static void split_limit_errors(void) {
    char text[4000] = "";
    for (int i = 0; i < 10; i++)
        sprintf(text + strlen(text),
                "{\"prompt\": \"p%d\", \"chosen\": \"c\", \"rejected\": \"r\"}\n", i);
    const char *path = write_file("s.jsonl", text);
    PrefSpec spec = {.path = path,
                     .kind = PREF_PAIRS,
                     .max_length = 16,
                     .max_prompt_length = 4,
                     .holdout = 3,
                     .sp = &sp};
    PrefSet s;
    LfError err;
    int32_t p[16];
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    CHECK(s.n_items == 7 && s.rows.n == 14);
    pref_set_free(&s);
    spec.heldout = 1, spec.limit = 2;
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    CHECK(s.n_items == 2 && s.prompt_len[0] == encode("p7", p) && s.rows.ids[0] == p[0]);
    pref_set_free(&s);
    spec = (PrefSpec){.path = write_file("e.jsonl", "{\"prompt\": \"p\", \"chosen\": \"c\"}\n"),
                      .kind = PREF_PAIRS,
                      .max_length = 16,
                      .max_prompt_length = 4,
                      .sp = &sp};
    CHECK(pref_set_load(&s, &spec, &tok, &err) == -1);
    printf("missing field: %s\n", err.msg);
    CHECK(strstr(err.msg, "e.jsonl:1") && strstr(err.msg, "rejected"));
}

static void batches(void) {
    char text[4000] = "";
    for (int i = 0; i < 5; i++)
        sprintf(text + strlen(text),
                "{\"prompt\": \"q%d q\", \"chosen\": \"%s\", \"rejected\": \"r\"}\n", i,
                i % 2 ? "long answer here" : "c");
    PrefSpec spec = {.path = write_file("l.jsonl", text),
                     .kind = PREF_PAIRS,
                     .max_length = 16,
                     .max_prompt_length = 4,
                     .sp = &sp};
    PrefSet s;
    PrefLoader l;
    LfError err;
    Batch b;
    CHECK_OK(pref_set_load(&s, &spec, &tok, &err), &err);
    for (int mask_prompt = 0; mask_prompt < 2; mask_prompt++) {
        CHECK_OK(pref_loader_init(&l, &s, 2, 0, mask_prompt, &err), &err);
        l.pad_multiple = 3 * mask_prompt; /* the second pass rounds lengths up to a multiple of 3 */
        CHECK(pref_loader_num_batches(&l) == 3);
        pref_loader_start_epoch(&l, 7, 1, 1);
        int seen = 0, rows = 0;
        while (pref_loader_next(&l, &b)) {
            CHECK(b.B % 2 == 0 && b.types == NULL);
            CHECK(!l.pad_multiple || b.T % 3 == 0 || b.T == s.rows.max_len);
            int longest = 0;
            for (int i = 0; i < b.B; i++) {
                int len = (int)(s.rows.offsets[b.index[i] + 1] - s.rows.offsets[b.index[i]]);
                longest = len > longest ? len : longest;
            }
            CHECK(b.T == padded_length(longest, l.pad_multiple, s.rows.max_len));
            for (int i = 0; i < b.B; i++) {
                int row = b.index[i], len = (int)(s.rows.offsets[row + 1] - s.rows.offsets[row]);
                if (i % 2) CHECK(row == b.index[i - 1] + 1 && row % 2 == 1); /* a pair */
                seen |= 1 << row / 2;
                rows++;
                for (int t = 0; t < b.T; t++) {
                    int32_t id = b.ids[i * b.T + t], lab = b.labels[i * b.T + t];
                    CHECK(b.mask[i * b.T + t] == (t < len));
                    int labelled = t < len && (!mask_prompt || t >= s.prompt_len[row]);
                    CHECK(lab == (labelled ? id : LM_IGNORE));
                }
            }
        }
        CHECK(seen == 31 && rows == 10);
        pref_loader_free(&l);
    }
    pref_set_free(&s);
}

int main(void) {
    char vocab[4096];
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2", shared_data_dir());
    if (access(vocab, R_OK)) skip("../shared/data/tokenizers/gpt2 is absent");
    LfError err;
    CHECK(mkdtemp(dir) != NULL);
    CHECK_OK(text_tokenizer_open(&tok, vocab, &err), &err);
    CHECK_OK(lm_specials(&sp, &tok, &err), &err);
    plain_and_chat();
    truncation(10, 20, 8, 11, 21); /* 30 + 21 > 32: the prompt keeps 8; 8 + 21 fits */
    truncation(30, 5, 8, 24, 6);   /* still too long: the longer response keeps 24, no EOS */
    truncation(1, 1, 30, 2, 2);    /* 30 + 2 fits: nothing cut */
    split_limit_errors();
    batches();
    text_tokenizer_close(&tok);
    char cmd[100];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_report();
}
