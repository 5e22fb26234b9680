/* cli_generate.c: `loraft generate` continues prompts with a decoder (plus a LoRA adapter): the
 * prompt is run once through the model filling its KV cache (model_decode), then one token per
 * step is sampled (sample.h) and fed back. --chat renders the model's chat template (chat.h)
 * with the generation prompt and stops at its end of turn. The continuation streams to stdout
 * as it is generated, whole UTF-8 characters only; nothing else goes to stdout. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loraft/chat.h"
#include "loraft/checkpoint.h"
#include "loraft/cli.h"
#include "loraft/fileio.h"
#include "loraft/sample.h"
#include "loraft/text.h"

typedef struct GenOpts {
    const char *model, *adapter, *system, *template_name, *device;
    int chat, top_k, seed, max_new;
    float temperature, top_p;
} GenOpts;

/* What ends a continuation besides max-new-tokens: token ids (EOS, a template's end-of-turn
 * special tokens) and a text (the plain template's "\nUser:"), cut off where it starts. */
typedef struct Stops {
    int32_t ids[CHAT_MAX_STOPS + 1];
    int n_ids;
    const char *text; /* NULL: none */
} Stops;

/* Decoded bytes not yet printed: a UTF-8 character's first bytes, or what may be the start of
 * the text stop. */
typedef struct Stream {
    char buf[256];
    size_t len;
} Stream;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- the chat template ---- */

/* A directory's chat template: tokenizer_config.json's chat_template (a string), else the
 * file chat_template.jinja; *out NULL when there is neither. */
static int dir_jinja(const char *dir, char **out, LfError *err) {
    char path[4200], *text;
    size_t len;
    LfError ignore;
    *out = NULL;
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (!file_read_all(path, &text, &len, &ignore)) {
        cJSON *c = cJSON_Parse(text);
        free(text);
        const cJSON *t = cJSON_GetObjectItem(c, "chat_template");
        if (cJSON_IsString(t) && !(*out = strdup(t->valuestring)))
            return cJSON_Delete(c), lf_fail(err, "out of memory");
        cJSON_Delete(c);
        if (*out) return 0;
    }
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    if (!file_read_all(path, &text, &len, &ignore)) *out = text;
    return 0;
}

/* A GGUF file's tokenizer.chat_template; *out NULL when absent. */
static int gguf_jinja(const char *path, char **out, LfError *err) {
    Gguf g;
    *out = NULL;
    if (gguf_open(&g, path, err)) return -1;
    const GgufStr *s;
    LfError ignore;
    int rc = 0;
    if (!gguf_get_str(&g, "tokenizer.chat_template", &s, &ignore) &&
        !(*out = strndup(s->s, s->len)))
        rc = lf_fail(err, "out of memory");
    gguf_close(&g);
    return rc;
}

/* --template NAME, else the built-in template the model's own template stands for. */
static int resolve_template(const GenOpts *o, ChatTemplate *t, LfError *err) {
    if (o->template_name)
        return chat_template_by_name(o->template_name, t, err) ? lf_wrap(err, "--template") : 0;
    size_t n = strlen(o->model);
    char *jinja;
    int gguf = n > 5 && !strcmp(o->model + n - 5, ".gguf");
    if (gguf ? gguf_jinja(o->model, &jinja, err) : dir_jinja(o->model, &jinja, err)) return -1;
    int rc = chat_template_detect(jinja, t, err);
    free(jinja);
    return rc ? lf_wrap(err, "%s (use --template NAME)", o->model) : 0;
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

/* EOS, and each end-of-turn string of the template: a special token's id, or a text. */
static Stops stops_for(const GenOpts *o, const ChatTemplate *t, const Bpe *bpe) {
    Stops st = {.n_ids = 0};
    if (bpe_eos(bpe) >= 0) st.ids[st.n_ids++] = bpe_eos(bpe);
    for (int i = 0; o->chat && t->stops[i]; i++) {
        int32_t id = bpe_lookup(bpe, t->stops[i]);
        if (id >= 0 && bpe_is_special(bpe, id))
            st.ids[st.n_ids++] = id;
        else
            st.text = t->stops[i];
    }
    return st;
}

static int is_stop_id(const Stops *st, int32_t id) {
    for (int i = 0; i < st->n_ids; i++)
        if (st->ids[i] == id) return 1;
    return 0;
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

/* Streams the continuation of one prompt to stdout; timings on stderr. */
static int generate_one(Model *m, const Bpe *bpe, const GenOpts *o, const Stops *st,
                        const IdList *prompt, float *logits, LfError *err) {
    SampleConfig sc = {o->temperature, o->top_k, o->top_p, (uint64_t)o->seed};
    Sampler *s;
    Stream out = {.len = 0};
    int P = (int)prompt->n, room = m->cache_len - P,
        max_new = o->max_new < room ? o->max_new : room;
    if (sampler_create(&s, &sc, m->cfg.vocab_size, err)) return -1;
    double t0 = now_s();
    int rc = model_cache_reset(m, m->cache_len, err) || model_decode(m, prompt->ids, P, err) ||
             model_lm_logits(m, P - 1, 1, logits, err);
    double t1 = now_s();
    int n = 0, done = 0;
    for (; !rc && !done && n < max_new; n++) {
        int32_t id;
        size_t len;
        rc = sampler_next(s, logits, &id, err);
        if (rc || is_stop_id(st, id)) break;
        const char *bytes = bpe_token_bytes(bpe, id, &len);
        done = bytes && stream_push(&out, bytes, len, st->text);
        if (!done && n + 1 < max_new)
            rc = model_decode(m, &id, 1, err) || model_lm_logits(m, 0, 1, logits, err);
    }
    stream_finish(&out);
    sampler_free(s);
    double t2 = now_s();
    if (!rc)
        fprintf(stderr,
                "loraft generate: %d prompt tokens in %.2f s, %d new in %.2f s (%.1f tokens/s)\n",
                P, t1 - t0, n, t2 - t1, n / (t2 - t1 > 0 ? t2 - t1 : 1e-9));
    return rc ? -1 : 0;
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

/* The model's rows: the longest prompt (its prefill); the cache's positions: that prompt and
 * max-new-tokens after it, within the model's positions. */
static int model_length(const GenOpts *o, int longest, int *max_len, int *cache_len, LfError *err) {
    ModelConfig cfg;
    if (model_config_load(&cfg, o->model, err)) return -1;
    if (longest >= cfg.max_positions)
        return lf_fail(err, "a prompt of %d tokens leaves no room in the model's %d positions",
                       longest, cfg.max_positions);
    *max_len = longest < 2 ? 2 : longest;
    *cache_len =
        o->max_new < cfg.max_positions - longest ? longest + o->max_new : cfg.max_positions;
    return 0;
}

static int run(const GenOpts *o, const CliList *texts, LfError *err) {
    TextTokenizer tok = {0};
    ChatTemplate t = {0};
    IdList ids[64] = {{0}};
    Model m = {0};
    float *logits = NULL;
    int longest = 0, max_len = 0, cache_len = 0;
    const Ops *ops = ops_by_name(o->device, err);
    int rc = !ops || text_tokenizer_open(&tok, o->model, err);
    if (!rc && tok.kind != TEXT_BPE)
        rc = lf_fail(err, "%s: the tokenizer is not byte-level BPE: not a decoder", o->model);
    rc = rc || (o->chat && resolve_template(o, &t, err)) ||
         encode_all(o, &t, tok.bpe, texts, ids, &longest, err) ||
         model_length(o, longest, &max_len, &cache_len, err) ||
         model_open(&m, o->model, o->adapter, ops, 1, max_len, err) ||
         model_cache_reset(&m, cache_len, err);
    if (!rc && !(logits = malloc((size_t)m.cfg.vocab_size * sizeof *logits)))
        rc = lf_fail(err, "out of memory");
    Stops st = rc ? (Stops){.n_ids = 0} : stops_for(o, &t, tok.bpe);
    for (int i = 0; !rc && i < texts->n; i++)
        rc = generate_one(&m, tok.bpe, o, &st, &ids[i], logits, err);
    free(logits);
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
    if (o->max_new < 1) return "--max-new-tokens must be >= 1";
    if ((o->system || o->template_name) && !o->chat) return "--system and --template need --chat";
    return NULL;
}

int cmd_generate(int argc, char **argv) {
    GenOpts o = {.device = "auto", .top_p = 1.0f, .max_new = 128};
    CliList texts = {0};
    const CliOpt opts[] = {
        {"model", OPT_STR, &o.model, "HF model directory or .gguf file (a decoder) [required]"},
        {"adapter", OPT_STR, &o.adapter, "PEFT LoRA adapter directory (from loraft train)"},
        {"chat", OPT_FLAG, &o.chat,
         "render each prompt as a user turn with the chat template; stop at end of turn"},
        {"system", OPT_STR, &o.system, "the system message (replaces the template's default)"},
        {"template", OPT_STR, &o.template_name,
         "chat template instead of the model's: chatml, smollm2, llama3 or plain"},
        {"temperature", OPT_FLOAT, &o.temperature, "0 (default): greedy; else sample"},
        {"top-k", OPT_INT, &o.top_k, "keep the k most probable tokens (default 0: off)"},
        {"top-p", OPT_FLOAT, &o.top_p, "nucleus sampling in [0, 1] (default 1: off)"},
        {"seed", OPT_INT, &o.seed, "sampling seed (default 0)"},
        {"max-new-tokens", OPT_INT, &o.max_new, "at most this many new tokens (default 128)"},
        {"device", OPT_STR, &o.device, "auto (default), cpu or cuda"},
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
