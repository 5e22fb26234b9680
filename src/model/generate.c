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

/* The new tokens row r may take: max_new, fewer where the model's positions run out. */
static int row_limit(const Model *m, const GenPrompt *p, int max_new, LfError *err) {
    if (p->n < 1) return lf_fail(err, "an empty prompt: nothing to continue");
    if (p->n >= m->cfg.max_positions)
        return lf_fail(err, "a prompt of %d tokens leaves no room in the model's %d positions",
                       p->n, m->cfg.max_positions);
    return max_new < m->cfg.max_positions - p->n ? max_new : m->cfg.max_positions - p->n;
}

/* Row r's prompt into sequence r, in chunks of max_len, and the logits after it; a prompt the
 * row before had is copied from its sequence. */
static int prefill(Model *m, const GenPrompt *p, int r, float *logits, LfError *err) {
    int V = m->cfg.vocab_size, rows = 0, rc = 0;
    if (r > 0 && p[r].ids == p[r - 1].ids && p[r].n == p[r - 1].n) {
        memcpy(logits + (size_t)r * V, logits + (size_t)(r - 1) * V, (size_t)V * sizeof *logits);
        return model_cache_copy(m, r - 1, r, err);
    }
    for (int at = 0; !rc && at < p[r].n; at += rows) {
        rows = p[r].n - at < m->max_len ? p[r].n - at : m->max_len;
        rc = model_decode(m, r, p[r].ids + at, rows, err);
    }
    return rc || model_lm_logits(m, rows - 1, 1, logits + (size_t)r * V, err) ? -1 : 0;
}

/* The generation's buffers: each row's logits, then per row its limit, new tokens, draws, stop id,
 * and the rows still going with their next tokens; the tokens each row made (row r's at
 * made_at[r], room for its limit: the repetition penalty's history). */
typedef struct GenRows {
    float *logits;
    int *limit, *made, *live;
    int32_t *stop, *next;
    uint64_t *draws;
    int32_t *made_ids;
    size_t *made_at;
} GenRows;

static void gen_rows_free(GenRows *g) {
    free(g->logits), free(g->limit), free(g->made), free(g->live);
    free(g->stop), free(g->next), free(g->draws), free(g->made_ids), free(g->made_at);
}

static int gen_rows_alloc(GenRows *g, int n, int V, LfError *err) {
    *g = (GenRows){malloc((size_t)n * V * sizeof(float)), malloc((size_t)n * sizeof(int)),
                   calloc((size_t)n, sizeof(int)),        malloc((size_t)n * sizeof(int)),
                   malloc((size_t)n * sizeof(int32_t)),   malloc((size_t)n * sizeof(int32_t)),
                   calloc((size_t)n, sizeof(uint64_t)),   NULL,
                   malloc((size_t)n * sizeof(size_t))};
    if (g->logits && g->limit && g->made && g->live && g->stop && g->next && g->draws && g->made_at)
        return 0;
    gen_rows_free(g);
    return lf_fail(err, "out of memory for the logits of %d rows", n);
}

int gen_batch(Model *m, Sampler *s, const uint64_t *seeds, const GenStops *st,
              const GenPrompt *prompts, int n, int max_new, GenRowEmit emit, void *ctx,
              GenStats *stats, LfError *err) {
    GenRows g;
    int V = m->cfg.vocab_size, positions = 0, live = 0, rc = 0;
    if (n < 1) return lf_fail(err, "a generation of %d prompts", n);
    if (gen_rows_alloc(&g, n, V, err)) return -1;
    for (int r = 0; !rc && r < n; r++) {
        rc = (g.limit[r] = row_limit(m, &prompts[r], max_new, err)) < 0;
        if (!rc && prompts[r].n + g.limit[r] > positions) positions = prompts[r].n + g.limit[r];
        g.stop[r] = -1;
    }
    size_t total = 0;
    for (int r = 0; !rc && r < n; r++) {
        if (g.limit[r] > 0) g.live[live++] = r;
        g.made_at[r] = total, total += (size_t)g.limit[r];
    }
    if (!rc && !(g.made_ids = malloc((total ? total : 1) * sizeof *g.made_ids)))
        rc = lf_fail(err, "out of memory for %zu new tokens", total);
    double t0 = now_s();
    rc = rc || model_cache_reset(m, n, positions, err);
    for (int r = 0; !rc && r < n; r++) rc = prefill(m, prompts, r, g.logits, err);
    double t1 = now_s();
    for (int step = 0; !rc && live > 0; step++) {
        int keep = 0; /* the rows that go on, in order, with their next tokens */
        for (int j = 0; !rc && j < live; j++) {
            int r = g.live[j];
            int32_t id;
            if (seeds) sampler_seed(s, seeds[r], g.draws[r]++);
            float *logits = g.logits + (size_t)(step ? j : r) * V; /* prefill's: by row */
            int32_t *made = g.made_ids + g.made_at[r];
            sampler_penalize(s, logits, prompts[r].ids, prompts[r].n, made, g.made[r]);
            if ((rc = sampler_next(s, logits, &id, err))) break;
            if (gen_is_stop(st, id)) {
                g.stop[r] = id;
                continue;
            }
            made[g.made[r]] = id;
            int done = emit(ctx, r, id);
            if (!done && ++g.made[r] < g.limit[r]) g.live[keep] = r, g.next[keep++] = id;
            g.made[r] += done; /* the token that ended it counts */
        }
        live = keep;
        rc = rc || (live && (model_decode_step(m, g.live, g.next, live, err) ||
                             model_lm_logits(m, 0, live, g.logits, err)));
    }
    for (int r = 0; stats && r < n; r++)
        stats[r] = (GenStats){g.made[r], g.stop[r], t1 - t0, now_s() - t1};
    gen_rows_free(&g);
    return rc ? -1 : 0;
}

/* gen_run's emit, through gen_batch's of one row. */
typedef struct OneRow {
    GenEmit emit;
    void *ctx;
} OneRow;

static int one_row_emit(void *ctx, int row, int32_t id) {
    (void)row;
    OneRow *o = ctx;
    return o->emit(o->ctx, id);
}

int gen_run(Model *m, Sampler *s, const GenStops *st, const int32_t *prompt, int P, int max_new,
            GenEmit emit, void *ctx, GenStats *stats, LfError *err) {
    GenPrompt p = {prompt, P};
    OneRow o = {emit, ctx};
    return gen_batch(m, s, NULL, st, &p, 1, max_new, one_row_emit, &o, stats, err);
}

/* ---- greedy text ---- */

typedef struct TextSink {
    const Bpe *bpe;
    const char *stop;
    char *buf;
    size_t len, cap;
    int oom;
} TextSink;

/* Appends the token's bytes to row's text; ends the row at the stop text, cutting it off. */
static int text_emit(void *ctx, int row, int32_t id) {
    TextSink *t = (TextSink *)ctx + row;
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

/* Row text as UTF-8 (malloc'd into *out): tokens' bytes need not be whole characters (byte
 * fallback, byte-level BPE), made so as decoding the continuation would, for the JSON logs it goes
 * to. */
static int sink_text(const TextSink *t, char **out, LfError *err) {
    if (t->oom || !(*out = malloc(3 * t->len + 1))) return lf_fail(err, "out of memory");
    utf8_lossy((const unsigned char *)(t->buf ? t->buf : ""), t->len, *out);
    return 0;
}

int gen_texts(Model *m, const SampleConfig *sc, const Bpe *bpe, const GenStops *st,
              const GenPrompt *prompts, int n, int max_new, char **out, GenStats *stats,
              LfError *err) {
    Sampler *s = NULL;
    TextSink *sinks = calloc((size_t)n, sizeof *sinks);
    uint64_t *seeds = malloc((size_t)n * sizeof *seeds);
    memset(out, 0, (size_t)n * sizeof *out);
    if (!sinks || !seeds) return free(sinks), free(seeds), lf_fail(err, "out of memory");
    for (int i = 0; i < n; i++) {
        sinks[i] = (TextSink){.bpe = bpe, .stop = st->text};
        seeds[i] = sc->seed + (uint64_t)i;
    }
    int rc = sampler_create(&s, sc, m->cfg.vocab_size, err);
    rc = rc || gen_batch(m, s, seeds, st, prompts, n, max_new, text_emit, sinks, stats, err);
    sampler_free(s);
    free(seeds);
    for (int i = 0; i < n; i++) {
        rc = rc || sink_text(&sinks[i], &out[i], err);
        free(sinks[i].buf);
    }
    free(sinks);
    for (int i = 0; rc && i < n; i++) free(out[i]), out[i] = NULL;
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
