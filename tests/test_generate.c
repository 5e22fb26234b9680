/* test_generate.c: generation with a KV cache (model_cache_reset / model_decode).
 *
 * On tiny random Llamas (MHA and GQA, tied and untied head) and GPT-2s (learned positions read
 * at the cached offsets), with and without a LoRA adapter of non-zero B on every linear layer
 * (and a DoRA one on a Llama, a Phi-3 and a GPT-2; trained token rows beside LoRA on Llamas tied
 * and untied and a GPT-2):
 * the cached path's logits equal the full recompute (model_forward over the whole
 * sequence + model_lm_logits) at every step, for a prefill and for each token after it, within
 * 1e-4 of the row's largest logit; greedy generation is deterministic; the cache refuses more
 * positions than the model was built for and a model that is not a decoder; gen_run's prompt in
 * chunks of the model's rows gives the tokens of the whole prompt at once. Several sequences in one
 * cache: batched steps over subsets of them in any order, a run of one among them and a copied
 * prompt give each row the logits of its own sequence's full recompute; gen_batch's rows (a shared
 * prompt, stops, an emit that ends one) are gen_run's with the same seed, token for token.
 * A tiny GPT-2 rebuilt with `loraft init` (the GPT-2 tokenizer of ../shared/data): the prompt ids,
 * the prompt's last logits (64 of them, within 1e-5 of the largest) and 16 greedy tokens equal
 * transformers' (tests/golden/gpt2_tiny_greedy.json, from scripts/make-generate-golden.py).
 * With the real SmolLM2-135M-Instruct (GGUF) when it has been fetched: the greedy continuation
 * of a plain and a chat prompt equals transformers' generate(do_sample=False) token for token
 * (tests/golden/smollm2_greedy.json, from scripts/make-generate-golden.py). */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tiny_decoder.h"
#include "loraft/chat.h"
#include "loraft/cli.h"
#include "loraft/fileio.h"
#include "loraft/generate.h"
#include "loraft/model.h"
#include "loraft/rng.h"
#include "loraft/sample.h"
#include "loraft/text.h"

/* The cached model (activations for PREFILL rows) and the full-recompute one (SEQ rows), the same
 * weights; -1 (a failed check) when either cannot be built. */
static int cached_and_full(Model *m, Model *ref, Arch arch, int heads, int kv_heads, int tied,
                           int lora) {
    LfError err;
    if (!tiny_decoder(m, &ops_cpu, arch, heads, kv_heads, tied, lora, PREFILL, &err) &&
        !tiny_decoder(ref, &ops_cpu, arch, heads, kv_heads, tied, lora, SEQ, &err))
        return 0;
    CHECK_OK(-1, &err);
    return -1;
}

/* Prefill of PREFILL tokens, then one token at a time up to SEQ: every row against the full
 * recompute by a model of the same weights. The cached model's activations hold only the
 * PREFILL rows of its largest call; its cache holds SEQ positions. */
static void check_cache_matches(Arch arch, int heads, int kv_heads, int tied, int lora) {
    LfError err;
    Model m, ref;
    if (cached_and_full(&m, &ref, arch, heads, kv_heads, tied, lora)) return;
    int32_t ids[SEQ];
    Rng r = {heads * 100 + kv_heads * 10 + tied + lora * 1000, 0};
    for (int t = 0; t < SEQ; t++) ids[t] = (int32_t)(rng_next_uniform(&r) * VOCAB) % VOCAB;
    float cached[PREFILL * VOCAB], full[PREFILL * VOCAB];
    double worst = 0;
    int ok = 1;
    CHECK_OK(model_cache_reset(&m, 1, SEQ, &err), &err);
    ok &= !model_decode(&m, 0, ids, PREFILL, &err) &&
          !model_lm_logits(&m, 0, PREFILL, cached, &err) &&
          !full_logits(&ref, ids, PREFILL, 0, PREFILL, full, &err);
    for (int t = 0; ok && t < PREFILL; t++)
        worst = worse(worst, row_error(cached + t * VOCAB, full + t * VOCAB, VOCAB));
    for (int t = PREFILL; ok && t < SEQ; t++) {
        ok &= !model_decode(&m, 0, &ids[t], 1, &err) && !model_lm_logits(&m, 0, 1, cached, &err) &&
              !full_logits(&ref, ids, t + 1, t, 1, full, &err);
        worst = worse(worst, row_error(cached, full, VOCAB));
    }
    CHECK_OK(ok ? 0 : -1, &err);
    printf("%s cache vs recompute, %d heads / %d KV, %s%s, RoPE over %d of %d: worst relative "
           "error %.2e\n",
           arch_name(arch), heads, kv_heads, tied ? "tied" : "untied",
           lora == 3   ? ", DoRA"
           : lora == 4 ? ", LoRA with embed_tokens and lm_head"
           : lora == 5 ? ", LoRA and trained token rows"
           : lora == 6 ? ", LoRA and trained token rows, the head's own too"
           : lora      ? ", LoRA"
                       : "",
           arch_is_llama(arch) ? model_rotary_dim(&m.cfg) : 0, model_head_size(&m.cfg), worst);
    CHECK(worst <= 1e-4);
    CHECK(m.cached[0] == SEQ);
    CHECK(model_decode(&m, 0, ids, 1, &err) == -1 && strstr(err.msg, "exceed") != NULL);
    model_free(&m);
    model_free(&ref);
}

/* n greedy tokens after prompt[0..P) with the cache, into out. */
static int greedy(Model *m, Sampler *s, const int32_t *prompt, int P, int n, int32_t *out,
                  LfError *err) {
    int V = m->cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    int rc = !logits ? lf_fail(err, "out of memory")
                     : model_cache_reset(m, 1, P + n, err) || model_decode(m, 0, prompt, P, err) ||
                           model_lm_logits(m, P - 1, 1, logits, err);
    for (int i = 0; !rc && i < n; i++)
        rc = sampler_next(s, logits, &out[i], err) ||
             (i + 1 < n &&
              (model_decode(m, 0, &out[i], 1, err) || model_lm_logits(m, 0, 1, logits, err)));
    free(logits);
    return rc ? -1 : 0;
}

static void check_greedy_deterministic(void) {
    LfError err;
    Model m;
    Sampler *s = NULL;
    SampleConfig sc = {0.0f, 0, 1.0f, 0.0f, 1.0f, 1};
    int32_t prompt[3] = {5, 17, 42}, a[SEQ - 3], b[SEQ - 3];
    CHECK_OK(tiny_decoder(&m, &ops_cpu, ARCH_LLAMA, 4, 2, 1, 0, SEQ, &err), &err);
    CHECK_OK(sampler_create(&s, &sc, VOCAB, &err), &err);
    CHECK_OK(greedy(&m, s, prompt, 3, SEQ - 3, a, &err), &err);
    CHECK_OK(greedy(&m, s, prompt, 3, SEQ - 3, b, &err), &err);
    CHECK(!memcmp(a, b, sizeof a));
    /* the same tokens as the argmax of the full recompute */
    int32_t seq[SEQ];
    float row[VOCAB];
    memcpy(seq, prompt, sizeof prompt);
    memcpy(seq + 3, a, sizeof a);
    int same = 1;
    for (int t = 3; t < SEQ && same; t++) {
        CHECK_OK(full_logits(&m, seq, t, t - 1, 1, row, &err), &err);
        int best = 0;
        for (int v = 1; v < VOCAB; v++) best = row[v] > row[best] ? v : best;
        same = best == seq[t];
    }
    CHECK(same);
    sampler_free(s);
    model_free(&m);
}

typedef struct IdSink {
    int32_t ids[SEQ];
    int n;
} IdSink;

static int collect(void *ctx, int32_t id) {
    IdSink *sink = ctx;
    sink->ids[sink->n++] = id;
    return 0;
}

/* gen_run with a prompt of 11 tokens on a model built for 3 rows (chunks of 3, 3, 3, 2: the
 * logits read from the last chunk's last row) and on one built for all 13: the same greedy
 * tokens, Llama with LoRA and GPT-2 (learned positions at each chunk's offset). */
static void check_chunked_prefill(Arch arch) {
    enum { P = 11 };
    LfError err;
    Model whole, chunked;
    Sampler *s = NULL;
    SampleConfig sc = {0.0f, 0, 1.0f, 0.0f, 1.0f, 1};
    GenStops none = {.n_ids = 0};
    int32_t prompt[P], want[SEQ - P];
    IdSink got = {.n = 0};
    Rng r = {77, 0};
    for (int t = 0; t < P; t++) prompt[t] = (int32_t)(rng_next(&r) % VOCAB);
    int kv = arch == ARCH_LLAMA ? 2 : 4;
    CHECK_OK(tiny_decoder(&whole, &ops_cpu, arch, 4, kv, 1, 1, SEQ, &err), &err);
    CHECK_OK(tiny_decoder(&chunked, &ops_cpu, arch, 4, kv, 1, 1, 3, &err), &err);
    CHECK_OK(sampler_create(&s, &sc, VOCAB, &err), &err);
    CHECK_OK(greedy(&whole, s, prompt, P, SEQ - P, want, &err), &err);
    CHECK_OK(gen_run(&chunked, s, &none, prompt, P, SEQ - P, collect, &got, NULL, &err), &err);
    printf("%s prompt of %d in chunks of %d: %d tokens, %s\n", arch_name(arch), P, chunked.max_len,
           got.n, !memcmp(want, got.ids, sizeof want) ? "as whole" : "DIFFER");
    CHECK(got.n == SEQ - P && !memcmp(want, got.ids, sizeof want));
    CHECK(chunked.cached[0] == SEQ - 1); /* the last token is emitted, not decoded */
    sampler_free(s);
    model_free(&whole);
    model_free(&chunked);
}

/* Three sequences side by side in one cache (model built for PREFILL rows, cache for SEQ
 * positions): prompts of 3 and 5 tokens, the third a copy of the first's cache
 * (model_cache_copy), then batched steps over subsets in any order (model_decode_step), a run of
 * two tokens of one sequence among them (model_decode), up to SEQ tokens each: every row's logits
 * against the full recompute of its own sequence, within 1e-4 of the row's largest logit. */
static void check_steps_match(Arch arch, int heads, int kv_heads, int tied, int lora) {
    enum { S = 3 };
    LfError err;
    Model m, ref;
    if (cached_and_full(&m, &ref, arch, heads, kv_heads, tied, lora)) return;
    int32_t ids[S][SEQ];
    int len[S] = {3, 5, 3};
    Rng r = {heads * 10 + kv_heads + lora * 100 + arch * 1000, 0};
    for (int q = 0; q < S; q++)
        for (int t = 0; t < SEQ; t++) ids[q][t] = (int32_t)(rng_next(&r) % VOCAB);
    memcpy(ids[2], ids[0], 3 * sizeof **ids); /* the shared prompt */
    float got[S * VOCAB], full[VOCAB];
    double worst = 0;
    int ok = !model_cache_reset(&m, S, SEQ, &err) && !model_decode(&m, 0, ids[0], 3, &err) &&
             !model_decode(&m, 1, ids[1], 5, &err) && !model_cache_copy(&m, 0, 2, &err);
    /* the calls: sequences of each step, -1 ending it; a run of two for sequence 1 at step 2 */
    static const int steps[][S + 1] = {{2, 0, 1, -1}, {1, 2, -1}, {1, -1},      {0, 2, 1, -1},
                                       {0, 1, 2, -1}, {2, 0, -1}, {0, 2, 1, -1}};
    for (int k = 0; ok && k < (int)(sizeof steps / sizeof *steps); k++) {
        int32_t seqs[S], next[S];
        int n = 0;
        for (; steps[k][n] >= 0; n++) seqs[n] = steps[k][n], next[n] = ids[seqs[n]][len[seqs[n]]];
        if (k == 2) /* a run of two tokens of sequence 1: the logits after its last */
            ok = !model_decode(&m, 1, &ids[1][len[1]], 2, &err) &&
                 !model_lm_logits(&m, 1, 1, got, &err);
        else
            ok = !model_decode_step(&m, seqs, next, n, &err) &&
                 !model_lm_logits(&m, 0, n, got, &err);
        for (int i = 0; ok && i < n; i++) {
            len[seqs[i]] += k == 2 ? 2 : 1;
            ok = !full_logits(&ref, ids[seqs[i]], len[seqs[i]], len[seqs[i]] - 1, 1, full, &err);
            worst = worse(worst, row_error(got + (size_t)i * VOCAB, full, VOCAB));
        }
    }
    CHECK_OK(ok ? 0 : -1, &err);
    printf("%s batched steps of 3 sequences (%d, %d, %d tokens), %d heads / %d KV%s: worst "
           "relative error %.2e\n",
           arch_name(arch), len[0], len[1], len[2], heads, kv_heads, lora ? ", LoRA" : "", worst);
    CHECK(worst <= 1e-4);
    CHECK(len[0] == 8 && len[1] == SEQ - 1 && len[2] == 9);
    int32_t seqs[2] = {0, 0}, two[2] = {1, 2};
    CHECK(model_decode_step(&m, seqs, two, 2, &err) == -1 && strstr(err.msg, "twice"));
    seqs[1] = S;
    CHECK(model_decode_step(&m, seqs, two, 2, &err) == -1 && strstr(err.msg, "sequence 3 of"));
    seqs[0] = 1; /* at SEQ - 1: one more position, then none */
    CHECK_OK(model_decode_step(&m, seqs, two, 1, &err), &err);
    CHECK(model_decode_step(&m, seqs, two, 1, &err) == -1 && strstr(err.msg, "used the cache"));
    CHECK(model_cache_reset(&m, PREFILL + 1, SEQ, &err) == -1 && strstr(err.msg, "hold 1 to 5"));
    model_free(&m);
    model_free(&ref);
}

/* gen_batch's row collector: row r's tokens at out[r * SEQ ..], row 4 ended by emit after 2. */
typedef struct RowSink {
    int32_t ids[5][SEQ];
    int n[5];
} RowSink;

static int row_collect(void *ctx, int row, int32_t id) {
    RowSink *s = ctx;
    s->ids[row][s->n[row]++] = id;
    return row == 4 && s->n[row] == 2;
}

static int collect_until_two(void *ctx, int32_t id) {
    IdSink *sink = ctx;
    sink->ids[sink->n++] = id;
    return sink->n == 2;
}

/* gen_batch over five rows (a prompt twice by the same pointer, once more as a copy, two others:
 * 4, 4, 7, 2 and 4 tokens; max_len 5: the 7 in two chunks), sampled at temperature 1 with a seed
 * a row, a stop id that ends some rows early (the third token row 1 draws without it) and an
 * emit that ends row 4 after two: each row's tokens, count and stop equal gen_run's with a
 * sampler of that seed alone. */
static void check_gen_batch(Arch arch) {
    enum { ROWS = 5, NEW = 6 };
    LfError err;
    Model m;
    int kv = arch == ARCH_GPT2 ? 4 : 2;
    CHECK_OK(tiny_decoder(&m, &ops_cpu, arch, 4, kv, 1, 1, PREFILL, &err), &err);
    int32_t a[4], b[7], c[2], a2[4];
    Rng r = {arch + 5, 0};
    for (int t = 0; t < 7; t++) b[t] = (int32_t)(rng_next(&r) % VOCAB);
    for (int t = 0; t < 4; t++) a[t] = a2[t] = (int32_t)(rng_next(&r) % VOCAB);
    c[0] = b[3], c[1] = a[1];
    GenPrompt p[ROWS] = {{a, 4}, {a, 4}, {b, 7}, {a2, 4}, {c, 2}};
    uint64_t seeds[ROWS] = {7, 8, 9, 10, 11};
    SampleConfig sc = {1.0f, 0, 1.0f, 0.0f, 1.0f, 0};
    Sampler *s = NULL;
    GenStops st = {.n_ids = 0};
    GenStats gs[ROWS];
    RowSink got = {.n = {0}};
    CHECK_OK(sampler_create(&s, &sc, VOCAB, &err), &err);
    CHECK_OK(gen_batch(&m, s, seeds, &st, p, ROWS, NEW, row_collect, &got, gs, &err), &err);
    st.ids[st.n_ids++] = got.ids[1][2]; /* a token some rows draw */
    memset(&got, 0, sizeof got);
    CHECK_OK(gen_batch(&m, s, seeds, &st, p, ROWS, NEW, row_collect, &got, gs, &err), &err);
    sampler_free(s);
    int same = 1, stopped = 0;
    for (int i = 0; i < ROWS; i++) {
        SampleConfig one = {1.0f, 0, 1.0f, 0.0f, 1.0f, seeds[i]};
        IdSink want = {.n = 0};
        GenStats ws;
        CHECK_OK(sampler_create(&s, &one, VOCAB, &err), &err);
        CHECK_OK(gen_run(&m, s, &st, p[i].ids, p[i].n, NEW, i == 4 ? collect_until_two : collect,
                         &want, &ws, &err),
                 &err);
        sampler_free(s);
        same &= want.n == got.n[i] && ws.new_tokens == gs[i].new_tokens && ws.stop == gs[i].stop &&
                !memcmp(want.ids, got.ids[i], want.n * sizeof *want.ids);
        stopped += gs[i].stop >= 0;
    }
    printf("%s gen_batch of %d rows: %d, %d, %d, %d, %d tokens, %d stopped: %s\n", arch_name(arch),
           ROWS, got.n[0], got.n[1], got.n[2], got.n[3], got.n[4], stopped,
           same ? "as each alone" : "DIFFER");
    CHECK(same);
    CHECK(stopped >= 1 && got.n[1] <= 2 && gs[1].stop == st.ids[0] && got.n[4] <= 2);
    model_free(&m);
}

static void check_errors(void) {
    LfError err;
    Model m;
    int32_t id = VOCAB;
    CHECK_OK(tiny_decoder(&m, &ops_cpu, ARCH_LLAMA, 4, 4, 1, 0, SEQ, &err), &err);
    CHECK(model_decode(&m, 0, &id, 1, &err) == -1 && strstr(err.msg, "model_cache_reset"));
    CHECK_OK(model_cache_reset(&m, 1, SEQ, &err), &err);
    CHECK(model_decode(&m, 0, &id, 1, &err) == -1 && strstr(err.msg, "outside the vocabulary"));
    model_free(&m);
    ModelConfig c;
    TrainSpec s;
    model_config_defaults(&c, ARCH_BERT);
    c.num_layers = 1, c.hidden_size = 16, c.num_heads = 2, c.num_kv_heads = 2, c.ffn_size = 32;
    c.vocab_size = 40;
    train_spec_defaults(&s);
    s.strategy = STRATEGY_HEAD;
    CHECK_OK(model_create(&m, &c, &s, &ops_cpu, NULL, 1, 1, 8, NULL, 0, &err), &err);
    CHECK(model_cache_reset(&m, 1, SEQ, &err) == -1 && strstr(err.msg, "decoder"));
    model_free(&m);
}

static void ids_of(const cJSON *arr, IdList *out) {
    out->n = 0;
    for (int i = 0; i < cJSON_GetArraySize(arr); i++)
        idlist_push(out, cJSON_GetArrayItem(arr, i)->valueint, NULL);
}

typedef void (*GreedyCase)(Model *m, const TextTokenizer *tok, Sampler *s, const cJSON *c);

/* Every case of golden g on the model at path (a directory or a .gguf: the model and its
 * tokenizer), greedy, activations for max_len rows. */
static void run_greedy_cases(const char *path, const cJSON *g, int max_len, GreedyCase check) {
    LfError err;
    ModelConfig cfg;
    TrainSpec spec;
    Model m;
    TextTokenizer tok;
    Sampler *s = NULL;
    SampleConfig sc = {0.0f, 0, 1.0f, 0.0f, 1.0f, 0};
    train_spec_defaults(&spec);
    spec.task = TASK_CAUSAL_LM;
    spec.strategy = STRATEGY_HEAD;
    CHECK_OK(model_config_load(&cfg, path, &err), &err);
    CHECK_OK(model_create(&m, &cfg, &spec, &ops_cpu, path, 1, 1, max_len, NULL, 0, &err), &err);
    CHECK_OK(text_tokenizer_open(&tok, path, &err), &err);
    CHECK_OK(sampler_create(&s, &sc, cfg.vocab_size, &err), &err);
    const cJSON *cases = cJSON_GetObjectItem(g, "cases");
    for (int i = 0; i < cJSON_GetArraySize(cases); i++)
        check(&m, &tok, s, cJSON_GetArrayItem(cases, i));
    sampler_free(s);
    text_tokenizer_close(&tok);
    model_free(&m);
}

/* ---- a tiny GPT-2 against transformers ---- */

static void check_gpt2_case(Model *m, const TextTokenizer *tok, Sampler *s, const cJSON *c) {
    LfError err;
    const char *prompt = cJSON_GetObjectItem(c, "prompt")->valuestring;
    IdList want = {0}, ours = {0};
    CHECK_OK(text_encode(tok, prompt, strlen(prompt), &ours, &err), &err);
    ids_of(cJSON_GetObjectItem(c, "ids"), &want);
    CHECK(ours.n == want.n && !memcmp(ours.ids, want.ids, want.n * sizeof *ours.ids));
    int P = (int)ours.n, V = m->cfg.vocab_size;
    float *logits = malloc((size_t)V * sizeof *logits);
    const cJSON *last = cJSON_GetObjectItem(c, "last_logits");
    double scale = 0, worst = 0;
    CHECK_OK(model_cache_reset(m, 1, P, &err), &err);
    CHECK_OK(model_decode(m, 0, ours.ids, P, &err), &err);
    CHECK_OK(model_lm_logits(m, P - 1, 1, logits, &err), &err);
    for (int v = 0; v < cJSON_GetArraySize(last); v++) {
        double r = cJSON_GetArrayItem(last, v)->valuedouble;
        scale = fmax(scale, fabs(r)), worst = worse(worst, fabs(logits[v] - r));
    }
    CHECK(worst <= 1e-5 * scale);
    ids_of(cJSON_GetObjectItem(c, "new_ids"), &want);
    int n = (int)want.n, same = 0;
    int32_t *got = calloc(n, sizeof *got);
    CHECK_OK(greedy(m, s, ours.ids, P, n, got, &err), &err);
    while (same < n && got[same] == want.ids[same]) same++;
    printf("tiny GPT-2 '%s': last logits within %.1e of %.3g, %d of %d greedy tokens equal "
           "transformers'\n",
           prompt, worst, scale, same, n);
    CHECK(same == n);
    free(got);
    free(logits);
    idlist_free(&want);
    idlist_free(&ours);
}

static void check_gpt2_golden(void) {
    char vocab[4096], dir[] = "/tmp/loraft-gen-gpt2-XXXXXX", *text, *argv[40];
    snprintf(vocab, sizeof vocab, "%s/tokenizers/gpt2", shared_data_dir());
    if (access(vocab, R_OK)) {
        printf("SKIP tiny GPT-2 greedy golden: %s absent\n", vocab);
        return;
    }
    size_t len;
    LfError err;
    CHECK_OK(file_read_all("tests/golden/gpt2_tiny_greedy.json", &text, &len, &err), &err);
    cJSON *g = cJSON_Parse(text);
    free(text);
    int argc = 0;
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(g, "init")) argv[argc++] = a->valuestring;
    argv[argc++] = "--vocab-from", argv[argc++] = vocab, argv[argc++] = "--out", argv[argc++] = dir;
    CHECK(mkdtemp(dir) != NULL);
    CHECK(cmd_init(argc, argv) == 0);
    run_greedy_cases(dir, g, 32, check_gpt2_case);
    cJSON_Delete(g);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
}

/* ---- SmolLM2 against transformers ---- */

/* The prompt as loraft builds it: plain (the tokenizer's special tokens) or chat (SmolLM2's
 * template with the generation prompt, no special tokens added). */
static int encode_prompt(const TextTokenizer *tok, const char *name, const char *prompt,
                         IdList *ids, LfError *err) {
    if (strcmp(name, "chat")) return bpe_encode(tok->bpe, prompt, strlen(prompt), 1, ids, err);
    ChatTemplate t;
    ChatMessage msg = {"user", prompt};
    char *text;
    size_t len;
    if (chat_template_by_name("smollm2", &t, err) || chat_render(&t, &msg, 1, 1, &text, &len, err))
        return -1;
    int rc = bpe_encode(tok->bpe, text, len, 0, ids, err);
    free(text);
    return rc;
}

static void check_smollm2_case(Model *m, const TextTokenizer *tok, Sampler *s, const cJSON *c) {
    LfError err;
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    IdList want = {0}, prompt = {0}, ours = {0};
    ids_of(cJSON_GetObjectItem(c, "ids"), &prompt);
    CHECK_OK(encode_prompt(tok, name, cJSON_GetObjectItem(c, "prompt")->valuestring, &ours, &err),
             &err);
    CHECK(ours.n == prompt.n && !memcmp(ours.ids, prompt.ids, prompt.n * sizeof *ours.ids));
    ids_of(cJSON_GetObjectItem(c, "new_ids"), &want);
    int n = (int)want.n, same = 0;
    int32_t *got = calloc(n, sizeof *got);
    CHECK_OK(greedy(m, s, prompt.ids, (int)prompt.n, n, got, &err), &err);
    while (same < n && got[same] == want.ids[same]) same++;
    printf("SmolLM2 greedy (%s): %d of %d tokens equal transformers'\n", name, same, n);
    CHECK(same == n);
    free(got);
    idlist_free(&want);
    idlist_free(&prompt);
    idlist_free(&ours);
}

static void check_smollm2(void) {
    const char *env = getenv("LORAFT_SMOLLM2_GGUF");
    const char *path = env ? env : "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(path, R_OK)) {
        printf("SKIP SmolLM2 greedy golden: %s absent (scripts/fetch-model.sh "
               "smollm2-135m-instruct models/smollm2)\n",
               path);
        return;
    }
    char *text;
    size_t len;
    LfError err;
    CHECK_OK(file_read_all("tests/golden/smollm2_greedy.json", &text, &len, &err), &err);
    cJSON *g = cJSON_Parse(text);
    free(text);
    run_greedy_cases(path, g, 128, check_smollm2_case);
    cJSON_Delete(g);
}

/* Row r's greedy continuation under repetition penalty pen: at each position the argmax of the
 * full recompute's logits, each distinct token before it penalised the way written here
 * (transformers' rule); 1 when row r's tokens are those. */
static int penalized_greedy_holds(Model *m, const int32_t *prompt, int P, const int32_t *made,
                                  int n, float pen, LfError *err) {
    int32_t seq[SEQ];
    float row[VOCAB];
    memcpy(seq, prompt, (size_t)P * sizeof *seq);
    memcpy(seq + P, made, (size_t)n * sizeof *seq);
    for (int t = P; t < P + n; t++) {
        if (full_logits(m, seq, t, t - 1, 1, row, err)) return 0;
        for (int v = 0; v < VOCAB; v++) {
            int seen = 0;
            for (int i = 0; i < t && !seen; i++) seen = seq[i] == v;
            if (seen) row[v] = row[v] < 0 ? row[v] * pen : row[v] / pen;
        }
        int best = 0;
        for (int v = 1; v < VOCAB; v++) best = row[v] > row[best] ? v : best;
        if (best != seq[t]) return 0;
    }
    return 1;
}

/* gen_batch's greedy rows under a repetition penalty of 1.8 (a prompt of repeated tokens and
 * another, side by side) are the penalised argmax of the full recompute, token for token, and
 * differ from the rows without it. */
static void check_repetition_penalty(void) {
    enum { ROWS = 2, NEW = SEQ - 5 };
    LfError err;
    Model m;
    CHECK_OK(tiny_decoder(&m, &ops_cpu, ARCH_LLAMA, 4, 2, 1, 1, SEQ, &err), &err);
    int32_t a[5] = {3, 9, 3, 3, 9}, b[4] = {11, 40, 2, 7};
    GenPrompt p[ROWS] = {{a, 5}, {b, 4}};
    GenStops st = {.n_ids = 0};
    RowSink pen = {.n = {0}}, plain = {.n = {0}};
    for (int k = 0; k < 2; k++) {
        SampleConfig sc = {0.0f, 0, 1.0f, 0.0f, k ? 1.0f : 1.8f, 0};
        Sampler *s = NULL;
        CHECK_OK(sampler_create(&s, &sc, VOCAB, &err), &err);
        CHECK_OK(
            gen_batch(&m, s, NULL, &st, p, ROWS, NEW, row_collect, k ? &plain : &pen, NULL, &err),
            &err);
        sampler_free(s);
    }
    int holds = 1, differs = 0;
    for (int r = 0; r < ROWS; r++) {
        holds &= pen.n[r] == NEW &&
                 penalized_greedy_holds(&m, p[r].ids, p[r].n, pen.ids[r], NEW, 1.8f, &err);
        differs |= memcmp(pen.ids[r], plain.ids[r], NEW * sizeof *pen.ids[r]) != 0;
    }
    printf("repetition penalty 1.8: greedy rows %s the penalised recompute's, %s the plain ones\n",
           holds ? "equal" : "DIFFER from", differs ? "not" : "SAME AS");
    CHECK(holds && differs);
    model_free(&m);
}

int main(void) {
    for (int lora = 0; lora < 2; lora++) {
        check_cache_matches(ARCH_LLAMA, 4, 4, 1, lora);   /* MHA, tied */
        check_cache_matches(ARCH_LLAMA, 4, 4, 0, lora);   /* MHA, untied */
        check_cache_matches(ARCH_LLAMA, 4, 2, 1, lora);   /* GQA, tied */
        check_cache_matches(ARCH_LLAMA, 4, 1, 0, lora);   /* MQA, untied */
        check_cache_matches(ARCH_QWEN2, 4, 2, 0, lora);   /* q, k, v biases; layer 1 windowed */
        check_cache_matches(ARCH_QWEN3, 4, 2, 1, lora);   /* head norms, heads of 16 */
        check_cache_matches(ARCH_MISTRAL, 4, 2, 0, lora); /* a sliding window of 4 */
        check_cache_matches(ARCH_SMOLLM3, 4, 2, 1, lora); /* layer 1 without RoPE */
        check_cache_matches(ARCH_GEMMA3, 4, 2, 1, lora);  /* layer 0 windowed, Gemma's norms */
        check_cache_matches(ARCH_GEMMA2, 4, 2, 1, lora);  /* soft-capped scores and logits */
        check_cache_matches(ARCH_PHI3, 4, 2, 0, lora);    /* fused projections, longrope */
        tiny_rotary_dim = 4;                              /* RoPE over half of each head */
        check_cache_matches(ARCH_PHI3, 4, 2, 0, lora);
        tiny_rotary_dim = 0;
        check_cache_matches(ARCH_GPT2, 4, 4, 1, lora);
    }
    check_cache_matches(ARCH_LLAMA, 4, 2, 1, 3); /* DoRA: its norms as of the cache's reset */
    check_cache_matches(ARCH_PHI3, 4, 2, 0, 3);
    check_cache_matches(ARCH_GPT2, 4, 4, 1, 3);
    check_cache_matches(ARCH_LLAMA, 4, 2, 1, 4); /* the adapters on the table and the head */
    check_cache_matches(ARCH_LLAMA, 4, 2, 0, 4);
    check_cache_matches(ARCH_GEMMA3, 4, 2, 1, 4);
    check_cache_matches(ARCH_GPT2, 4, 4, 1, 4);
    check_cache_matches(ARCH_LLAMA, 4, 2, 1, 5); /* trained token rows: the table's, the head's */
    check_cache_matches(ARCH_LLAMA, 4, 2, 0, 5);
    check_cache_matches(ARCH_GPT2, 4, 4, 1, 5);
    check_cache_matches(ARCH_LLAMA, 4, 2, 1, 6); /* and the head's own rows */
    check_cache_matches(ARCH_LLAMA, 4, 2, 0, 6);
    check_steps_match(ARCH_LLAMA, 4, 2, 1, 1);   /* GQA, LoRA */
    check_steps_match(ARCH_MISTRAL, 4, 2, 0, 0); /* a sliding window of 4 */
    check_steps_match(ARCH_GEMMA2, 4, 2, 1, 1);  /* soft-capped scores */
    check_steps_match(ARCH_PHI3, 4, 2, 0, 3);    /* fused projections, DoRA */
    check_steps_match(ARCH_GPT2, 4, 4, 1, 1);    /* learned positions */
    check_gen_batch(ARCH_LLAMA);
    check_gen_batch(ARCH_GPT2);
    check_repetition_penalty();
    check_greedy_deterministic();
    check_chunked_prefill(ARCH_LLAMA);
    check_chunked_prefill(ARCH_GPT2);
    check_errors();
    check_gpt2_golden();
    check_smollm2();
    return check_report();
}
