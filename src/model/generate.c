/* generate.c: the generation loop over the KV cache, its stops, and the chat template a model
 * carries (generate.h). Prints nothing: `loraft generate` streams through the emit callback. */
#include "loraft/generate.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loraft/fileio.h"
#include "loraft/gguf.h"
#include "loraft/utf8.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

GenStops gen_stops(const ChatTemplate *t, const Bpe *bpe) {
    GenStops st = {.n_ids = 0};
    if (bpe_eos(bpe) >= 0) st.ids[st.n_ids++] = bpe_eos(bpe);
    for (int i = 0; t && t->stops[i]; i++) {
        int32_t id = bpe_lookup(bpe, t->stops[i]);
        if (id >= 0 && bpe_is_special(bpe, id)) {
            if (!gen_is_stop(&st, id)) st.ids[st.n_ids++] = id;
        } else {
            st.text = t->stops[i];
        }
    }
    return st;
}

int gen_is_stop(const GenStops *st, int32_t id) {
    for (int i = 0; i < st->n_ids; i++)
        if (st->ids[i] == id) return 1;
    return 0;
}

int gen_run(Model *m, Sampler *s, const GenStops *st, const int32_t *prompt, int P, int max_new,
            GenEmit emit, void *ctx, GenStats *stats, LfError *err) {
    if (P < 1) return lf_fail(err, "an empty prompt: nothing to continue");
    int positions = max_new < m->cfg.max_positions - P ? P + max_new : m->cfg.max_positions;
    if (P >= positions)
        return lf_fail(err, "a prompt of %d tokens leaves no room in the model's %d positions", P,
                       m->cfg.max_positions);
    max_new = positions - P;
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    if (!logits) return lf_fail(err, "out of memory");
    double t0 = now_s();
    int rc = model_cache_reset(m, positions, err), rows = 0;
    for (int at = 0; !rc && at < P; at += rows) {
        rows = P - at < m->max_len ? P - at : m->max_len;
        rc = model_decode(m, prompt + at, rows, err);
    }
    rc = rc || model_lm_logits(m, rows - 1, 1, logits, err); /* the prompt's last token's */
    double t1 = now_s();
    int n = 0, done = 0;
    int32_t stop = -1;
    for (; !rc && !done && n < max_new; n++) {
        int32_t id;
        rc = sampler_next(s, logits, &id, err);
        if (rc) break;
        if (gen_is_stop(st, id)) {
            stop = id;
            break;
        }
        done = emit(ctx, id);
        if (!done && n + 1 < max_new)
            rc = model_decode(m, &id, 1, err) || model_lm_logits(m, 0, 1, logits, err);
    }
    free(logits);
    if (stats) *stats = (GenStats){n, stop, t1 - t0, now_s() - t1};
    return rc ? -1 : 0;
}

/* ---- greedy text ---- */

typedef struct TextSink {
    const Bpe *bpe;
    const char *stop;
    char *buf;
    size_t len, cap;
    int oom;
} TextSink;

/* Appends the token's bytes; ends the continuation at the stop text, cutting it off. */
static int text_emit(void *ctx, int32_t id) {
    TextSink *t = ctx;
    size_t n;
    const char *bytes = bpe_token_bytes(t->bpe, id, &n);
    if (!bytes) return 0;
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 256;
        while (cap < t->len + n + 1) cap *= 2;
        char *p = realloc(t->buf, cap);
        if (!p) return t->oom = 1;
        t->buf = p, t->cap = cap;
    }
    memcpy(t->buf + t->len, bytes, n);
    t->len += n;
    t->buf[t->len] = '\0';
    size_t ls = t->stop ? strlen(t->stop) : 0, from = t->len > n + ls ? t->len - n - ls : 0;
    char *hit = ls ? strstr(t->buf + from, t->stop) : NULL;
    if (hit) *hit = '\0', t->len = (size_t)(hit - t->buf);
    return hit != NULL;
}

int gen_greedy_text(Model *m, const Bpe *bpe, const GenStops *st, const int32_t *prompt, int P,
                    int max_new, char **out, LfError *err) {
    SampleConfig greedy = {0.0f, 0, 1.0f, 0};
    Sampler *s;
    TextSink sink = {.bpe = bpe, .stop = st->text};
    *out = NULL;
    if (sampler_create(&s, &greedy, m->cfg.vocab_size, err)) return -1;
    int rc = gen_run(m, s, st, prompt, P, max_new, text_emit, &sink, NULL, err);
    sampler_free(s);
    if (!rc && sink.oom) rc = lf_fail(err, "out of memory");
    /* tokens' bytes need not be whole characters (byte fallback, byte-level BPE): made UTF-8 as
     * decoding the continuation would, for the JSON logs it goes to */
    char *text = rc ? NULL : malloc(3 * sink.len + 1);
    if (!rc && !text) rc = lf_fail(err, "out of memory");
    if (text) utf8_lossy((const unsigned char *)(sink.buf ? sink.buf : ""), sink.len, text);
    free(sink.buf);
    *out = text;
    return rc ? -1 : 0;
}

/* ---- the model's chat template ---- */

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

int chat_template_for_model(const char *model, const char *name, ChatTemplate *t, LfError *err) {
    if (name) return chat_template_by_name(name, t, err);
    size_t n = strlen(model);
    char *jinja;
    int gguf = n > 5 && !strcmp(model + n - 5, ".gguf");
    if (gguf ? gguf_jinja(model, &jinja, err) : dir_jinja(model, &jinja, err)) return -1;
    int rc = chat_template_detect(jinja, t, err);
    free(jinja);
    return rc;
}
