/* cli_generate.c: `loraft generate` continues prompts with a decoder (plus a LoRA adapter): the
 * prompt is run through the model filling its KV cache (model_decode, in chunks of at most
 * GEN_PREFILL_ROWS tokens), then one token per
 * step is sampled (sample.h) and fed back (generate.h). --chat renders the model's chat template
 * (chat.h) with the generation prompt and stops at its end of turn. The continuation streams to
 * stdout as it is generated, whole UTF-8 characters only; nothing else goes to stdout. --batch
 * decodes every prompt side by side (gen_texts) and prints each continuation once all are done;
 * either way prompt i draws with --seed + i. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/chat.h"
#include "loraft/checkpoint.h"
#include "loraft/cli.h"
#include "loraft/generate.h"
#include "loraft/text.h"

typedef struct GenOpts {
    const char *model, *adapter, *system, *template_name;
    CliRuntime rt;
    int chat, top_k, seed, max_new, no_graphs, batch;
    float temperature, top_p, min_p, repetition_penalty;
} GenOpts;

/* Decoded bytes not yet printed: a UTF-8 character's first bytes, or what may be the start of
 * the text stop. */
typedef struct Stream {
    char buf[256];
    size_t len;
} Stream;

/* --template NAME, else the built-in template the model's own template stands for; with the
 * tokenizer's BOS / EOS text for the templates that render them. */
static int resolve_template(const GenOpts *o, const Bpe *bpe, ChatTemplate *t, LfError *err) {
    if (!chat_template_for_model(o->model, o->template_name, t, err)) {
        chat_template_set_vocab_specials(t, bpe);
        return 0;
    }
    return o->template_name ? lf_wrap(err, "--template")
                            : lf_wrap(err, "%s (use --template NAME)", o->model);
}

/* ---- prompts ---- */

/* Plain text with the tokenizer's special tokens (BOS when it adds one), or the chat rendering
 * of [system,] user with the generation prompt, tokenized without adding any. */
static int encode_prompt(const GenOpts *o, const ChatTemplate *t, const Bpe *bpe, const char *text,
                         IdList *ids, LfError *err) {
    if (!o->chat) return bpe_encode(bpe, text, strlen(text), 1, ids, err);
    ChatMessage msgs[2] = {{"system", o->system}, {"user", text}};
    int first = o->system ? 0 : 1;
    char *rendered;
    size_t len;
    if (chat_render(t, msgs + first, 2 - first, 1, &rendered, &len, err)) return -1;
    int rc = bpe_encode(bpe, rendered, len, 0, ids, err);
    free(rendered);
    return rc;
}

/* ---- streaming ---- */

/* Bytes at the end of s[0..n) that begin a UTF-8 character not yet complete. */
static size_t utf8_incomplete_tail(const char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = (unsigned char)s[n - k];
        if ((c & 0xC0) == 0x80) continue; /* a continuation byte */
        size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

/* The longest proper prefix of stop that s[0..n) ends with. */
static size_t stop_prefix_tail(const char *s, size_t n, const char *stop) {
    size_t ls = stop ? strlen(stop) : 0;
    for (size_t k = ls ? ls - 1 : 0; k > 0; k--)
        if (k <= n && !memcmp(s + n - k, stop, k)) return k;
    return 0;
}

static void stream_print(Stream *s, size_t n) {
    fwrite(s->buf, 1, n, stdout);
    fflush(stdout);
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
}

/* Appends one token's bytes and prints what is certain; returns 1 at the text stop (what came
 * before it printed, the rest dropped). The buffer keeps at least half its bytes, more than a
 * stop or a UTF-8 character can span. */
static int stream_push(Stream *s, const char *bytes, size_t n, const char *stop) {
    size_t ls = stop ? strlen(stop) : 0;
    for (size_t i = 0; i < n; i++) {
        if (s->len == sizeof s->buf) stream_print(s, s->len / 2);
        s->buf[s->len++] = bytes[i];
        if (ls && s->len >= ls && !memcmp(s->buf + s->len - ls, stop, ls)) {
            stream_print(s, s->len - ls);
            s->len = 0;
            return 1;
        }
    }
    size_t hold = utf8_incomplete_tail(s->buf, s->len);
    size_t hold_stop = stop_prefix_tail(s->buf, s->len, stop);
    stream_print(s, s->len - (hold > hold_stop ? hold : hold_stop));
    return 0;
}

/* The end: what was held back for a stop is text; an unfinished UTF-8 character is U+FFFD, as
 * decoding the whole continuation would give. */
static void stream_finish(Stream *s) {
    size_t bad = utf8_incomplete_tail(s->buf, s->len);
    stream_print(s, s->len - bad);
    if (bad) fputs("\xEF\xBF\xBD", stdout);
    putchar('\n');
    fflush(stdout);
}

/* ---- generation ---- */

typedef struct StreamSink {
    Stream out;
    const Bpe *bpe;
    const char *stop;
} StreamSink;

static int stream_emit(void *ctx, int32_t id) {
    StreamSink *s = ctx;
    size_t len;
    const char *bytes = bpe_token_bytes(s->bpe, id, &len);
    return bytes && stream_push(&s->out, bytes, len, s->stop);
}

/* Streams the continuation of prompt i to stdout (its draws seeded --seed + i); timings on
 * stderr. */
static int generate_one(Model *m, const Bpe *bpe, const GenOpts *o, const GenStops *st,
                        const IdList *prompt, int i, LfError *err) {
    SampleConfig sc = {o->temperature,
                       o->top_k,
                       o->top_p,
                       o->min_p,
                       o->repetition_penalty,
                       (uint64_t)o->seed + (uint64_t)i};
    Sampler *s;
    StreamSink sink = {.out = {.len = 0}, .bpe = bpe, .stop = st->text};
    GenStats gs;
    if (sampler_create(&s, &sc, m->cfg.vocab_size, err)) return -1;
    int rc =
        gen_run(m, s, st, prompt->ids, (int)prompt->n, o->max_new, stream_emit, &sink, &gs, err);
    stream_finish(&sink.out);
    sampler_free(s);
    if (!rc)
        fprintf(stderr,
                "loraft generate: %d prompt tokens in %.2f s, %d new in %.2f s (%.1f tokens/s)\n",
                (int)prompt->n, gs.prefill_s, gs.new_tokens, gs.decode_s,
                gs.new_tokens / (gs.decode_s > 0 ? gs.decode_s : 1e-9));
    return rc;
}

/* Tokenizes every prompt; *longest gets the longest. */
static int encode_all(const GenOpts *o, const ChatTemplate *t, const Bpe *bpe, const CliList *texts,
                      IdList *ids, int *longest, LfError *err) {
    *longest = 0;
    for (int i = 0; i < texts->n; i++) {
        if (encode_prompt(o, t, bpe, texts->items[i], &ids[i], err)) return -1;
        if (!ids[i].n) return lf_fail(err, "prompt %d is empty: nothing to continue", i + 1);
        if ((int)ids[i].n > *longest) *longest = (int)ids[i].n;
    }
    return 0;
}

/* The model's rows: the longest prompt's, up to a prefill chunk (GEN_PREFILL_ROWS); the cache's
 * positions: that prompt and max-new-tokens after it, within the model's positions. */
static int model_length(const GenOpts *o, int longest, int *max_len, int *cache_len, LfError *err) {
    ModelConfig cfg;
    if (model_config_load(&cfg, o->model, err)) return -1;
    if (longest >= cfg.max_positions)
        return lf_fail(err, "a prompt of %d tokens leaves no room in the model's %d positions",
                       longest, cfg.max_positions);
    *max_len = gen_model_rows(longest);
    *cache_len =
        o->max_new < cfg.max_positions - longest ? longest + o->max_new : cfg.max_positions;
    return 0;
}

/* --batch: every prompt side by side (gen_texts), each continuation printed once all are done. */
static int generate_batch(Model *m, const Bpe *bpe, const GenOpts *o, const GenStops *st,
                          const IdList *ids, int n, LfError *err) {
    SampleConfig sc = {o->temperature,        o->top_k,         o->top_p, o->min_p,
                       o->repetition_penalty, (uint64_t)o->seed};
    GenPrompt p[64];
    GenStats gs[64];
    char *out[64];
    long prompt_tokens = 0, new_tokens = 0;
    for (int i = 0; i < n; i++) p[i] = (GenPrompt){ids[i].ids, (int)ids[i].n};
    if (gen_texts(m, &sc, bpe, st, p, n, o->max_new, out, gs, err)) return -1;
    for (int i = 0; i < n; i++) {
        printf("%s\n", out[i]);
        free(out[i]);
        prompt_tokens += p[i].n, new_tokens += gs[i].new_tokens;
    }
    fflush(stdout);
    fprintf(stderr,
            "loraft generate: %d prompts side by side, %ld prompt tokens in %.2f s, %ld new in "
            "%.2f s (%.1f tokens/s)\n",
            n, prompt_tokens, gs[0].prefill_s, new_tokens, gs[0].decode_s,
            new_tokens / (gs[0].decode_s > 0 ? gs[0].decode_s : 1e-9));
    return 0;
}

static int run(const GenOpts *o, const CliList *texts, LfError *err) {
    TextTokenizer tok = {0};
    ChatTemplate t = {0};
    IdList ids[64] = {{0}};
    Model m = {0};
    int longest = 0, max_len = 0, cache_len = 0, n = texts->n;
    const Ops *ops;
    BaseDtype dtype;
    Precision prec;
    int rc =
        cli_runtime(&o->rt, &ops, &dtype, &prec, err) || text_tokenizer_open(&tok, o->model, err);
    if (!rc && tok.kind != TEXT_BPE)
        rc = lf_fail(err, "%s: the tokenizer is not byte-level BPE: not a decoder", o->model);
    rc = rc || (o->chat && resolve_template(o, tok.bpe, &t, err)) ||
         encode_all(o, &t, tok.bpe, texts, ids, &longest, err) ||
         model_length(o, longest, &max_len, &cache_len, err);
    /* --batch: a decode step holds every prompt's row (max_batch x max_len rows) */
    int max_batch = o->batch && max_len ? (n + max_len - 1) / max_len : 1;
    rc = rc || model_open(&m, o->model, o->adapter, dtype, prec, ops, max_batch, max_len, err) ||
         (!o->batch && model_cache_reset(&m, 1, cache_len, err));
    m.decode_graphs = !o->no_graphs;
    GenStops st = rc ? (GenStops){.n_ids = 0} : gen_stops(o->chat ? &t : NULL, tok.bpe);
    if (!rc && o->batch) rc = generate_batch(&m, tok.bpe, o, &st, ids, n, err);
    for (int i = 0; !rc && !o->batch && i < n; i++)
        rc = generate_one(&m, tok.bpe, o, &st, &ids[i], i, err);
    if (m.ops) model_free(&m);
    for (int i = 0; i < texts->n; i++) idlist_free(&ids[i]);
    text_tokenizer_close(&tok);
    return rc ? -1 : 0;
}

/* Usage errors: ranges the sampler would refuse, checked before any file is read. */
static const char *bad_option(const GenOpts *o, const CliList *texts) {
    if (!o->model) return "--model DIR|FILE.gguf is required";
    if (!texts->n) return "give at least one prompt";
    if (!(o->temperature >= 0)) return "--temperature must be >= 0";
    if (o->top_k < 0) return "--top-k must be >= 0";
    if (!(o->top_p >= 0 && o->top_p <= 1)) return "--top-p must be in [0, 1]";
    if (!(o->min_p >= 0 && o->min_p <= 1)) return "--min-p must be in [0, 1]";
    if (!(o->repetition_penalty > 0 && !isinf(o->repetition_penalty)))
        return "--repetition-penalty must be finite and > 0";
    if (o->max_new < 1) return "--max-new-tokens must be >= 1";
    if ((o->system || o->template_name) && !o->chat) return "--system and --template need --chat";
    return NULL;
}

int cmd_generate(int argc, char **argv) {
    GenOpts o = {
        .rt = CLI_RUNTIME_DEFAULTS, .top_p = 1.0f, .repetition_penalty = 1.0f, .max_new = 128};
    CliList texts = {0};
    const CliOpt opts[] = {
        {"model", OPT_STR, &o.model, "HF model directory or .gguf file (a decoder) [required]"},
        {"adapter", OPT_STR, &o.adapter,
         "PEFT adapter directory (LoRA, or TrainableTokens; from loraft train)"},
        {"chat", OPT_FLAG, &o.chat,
         "render each prompt as a user turn with the chat template; stop at end of turn"},
        {"system", OPT_STR, &o.system, "the system message (replaces the template's default)"},
        {"template", OPT_STR, &o.template_name,
         "chat template instead of the model's: chatml, smollm2, qwen2, qwen2.5, qwen3, "
         "qwen3-nothink (Qwen3 without thinking), smollm3, smollm3-nothink (SmolLM3 without "
         "thinking), llama3, llama3.1, llama3.2, llama2, mistral, mistral-v0.3, mistral-legacy, "
         "mistral-nemo, zephyr, gemma (Gemma 3's), gemma2 (Gemma 1's and 2's), phi3 "
         "(Phi-3.5-mini's), phi4-mini (Phi-4-mini's) or plain"},
        {"temperature", OPT_FLOAT, &o.temperature, "0 (default): greedy; else sample"},
        {"top-k", OPT_INT, &o.top_k, "keep the k most probable tokens (default 0: off)"},
        {"top-p", OPT_FLOAT, &o.top_p, "nucleus sampling in [0, 1] (default 1: off)"},
        {"min-p", OPT_FLOAT, &o.min_p,
         "keep the tokens at least this share of the most probable one's probability, in [0, "
         "1] (default 0: off)"},
        {"repetition-penalty", OPT_FLOAT, &o.repetition_penalty,
         "divide the positive logits of the tokens already in the prompt or the continuation by "
         "this, multiply the negative ones (transformers'; default 1: off)"},
        {"seed", OPT_INT, &o.seed, "sampling seed (default 0); prompt i draws with seed + i"},
        {"max-new-tokens", OPT_INT, &o.max_new, "at most this many new tokens (default 128)"},
        {"batch", OPT_FLAG, &o.batch,
         "decode every prompt side by side (one step for all), each continuation printed once "
         "all are done, not streamed"},
        {"no-cuda-graphs", OPT_FLAG, &o.no_graphs,
         "CUDA: decode op by op, not as one recorded CUDA graph replayed a token"},
        CLI_RUNTIME_OPTS(o.rt),
    };
    int rc = cli_parse("loraft generate --model DIR|FILE.gguf [options] \"prompt\" ...", opts,
                       sizeof opts / sizeof *opts, &texts, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    const char *bad = bad_option(&o, &texts);
    if (bad) return fprintf(stderr, "loraft generate: %s\n", bad), 2;
    LfError err;
    if (run(&o, &texts, &err)) {
        fflush(stdout);
        fprintf(stderr, "loraft generate: %s\n", err.msg);
        return 1;
    }
    return 0;
}
