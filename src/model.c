/* model.c: DistilBERT and BERT sequence classifiers with LoRA, forward and backward.
 *
 * The two architectures share one post-LayerNorm encoder:
 *   h0  = dropout(LN(wte[ids] + wpe[t] (+ wtt[type])))
 *   per layer:  a = dropout_h(o(attention(q(x), k(x), v(x))));  h = LN(a + x)
 *               y = dropout_h(ffn_out(act(ffn_in(h))));         out = LN(y + h)
 *   head:       logits = cls(dropout_c(act_p(pre(out[:, 0]))))
 * and differ only in names, in token types, in dropout after the attention output (BERT
 * only) and in the head activation (ReLU after DistilBERT's pre_classifier, tanh in BERT's
 * pooler). Every op runs through the backend table, so this file never touches tensor data.
 * It is deliberately not a general graph: forward and backward are written out by hand,
 * side by side, in the style of llm.c. */
#include "loraft/model.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/rng.h"
#include "loraft/safetensors.h"

/* ------------------------------------------------------------------------------------ */
/* strategy and spec                                                                    */

static const char *strategy_names[] = {"lora", "head", "full"};

int strategy_parse(const char *s, Strategy *out, LfError *err) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, strategy_names[i])) {
            *out = (Strategy)i;
            return 0;
        }
    return lf_fail(err, "unknown strategy '%s' (expected lora, head or full)", s);
}

const char *strategy_name(Strategy s) {
    return strategy_names[s];
}

void train_spec_defaults(TrainSpec *s) {
    memset(s, 0, sizeof *s);
    s->strategy = STRATEGY_LORA;
    s->r = 8;
    s->alpha = 8.0f;
}

const char *model_prefix(const ModelConfig *cfg) {
    return cfg->arch == ARCH_DISTILBERT ? "distilbert" : "bert";
}

/* ------------------------------------------------------------------------------------ */
/* the parameter table                                                                  */

static Param *param_add(Model *m, int decay, int d0, int d1, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static Param *param_add(Model *m, int decay, int d0, int d1, const char *fmt, ...) {
    Param *p = &m->params[m->n_params++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = d1 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1;
    p->numel = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    p->decay = decay;
    p->in_checkpoint = 1;
    return p;
}

/* A dense layer "module.weight" [out,in] and "module.bias" [out]. */
static void linear_add(Model *m, Linear *l, const char *module, int in, int out) {
    l->w = param_add(m, 1, out, in, "%s.weight", module);
    l->b = param_add(m, 0, out, 0, "%s.bias", module);
    l->in = in;
    l->out = out;
}

static void norm_add(Model *m, Norm *n, const char *module, int C) {
    n->w = param_add(m, 0, C, 0, "%s.weight", module);
    n->b = param_add(m, 0, C, 0, "%s.bias", module);
}

/* Module names of layer l, in the order q k v o ffn_in ffn_out ln_attn ln_ffn. */
static void layer_module_names(const ModelConfig *cfg, int l, char names[8][128]) {
    static const char *distil[8] = {"attention.q_lin",   "attention.k_lin",  "attention.v_lin",
                                    "attention.out_lin", "ffn.lin1",         "ffn.lin2",
                                    "sa_layer_norm",     "output_layer_norm"};
    static const char *bert[8] = {"attention.self.query",       "attention.self.key",
                                  "attention.self.value",       "attention.output.dense",
                                  "intermediate.dense",         "output.dense",
                                  "attention.output.LayerNorm", "output.LayerNorm"};
    const char **local = cfg->arch == ARCH_DISTILBERT ? distil : bert;
    const char *stem =
        cfg->arch == ARCH_DISTILBERT ? "distilbert.transformer.layer" : "bert.encoder.layer";
    for (int i = 0; i < 8; i++) snprintf(names[i], 128, "%s.%d.%s", stem, l, local[i]);
}

static void build_table(Model *m) {
    const ModelConfig *c = &m->cfg;
    const char *p = model_prefix(c);
    int C = c->hidden_size, F = c->ffn_size;
    m->wte = param_add(m, 1, c->vocab_size, C, "%s.embeddings.word_embeddings.weight", p);
    m->wpe = param_add(m, 1, c->max_positions, C, "%s.embeddings.position_embeddings.weight", p);
    m->wtt = c->arch == ARCH_BERT ? param_add(m, 1, c->type_vocab_size, C,
                                              "%s.embeddings.token_type_embeddings.weight", p)
                                  : NULL;
    char module[160];
    snprintf(module, sizeof module, "%s.embeddings.LayerNorm", p);
    norm_add(m, &m->ln_emb, module, C);
    for (int l = 0; l < c->num_layers; l++) {
        char names[8][128];
        layer_module_names(c, l, names);
        Layer *L = &m->layers[l];
        linear_add(m, &L->q, names[0], C, C);
        linear_add(m, &L->k, names[1], C, C);
        linear_add(m, &L->v, names[2], C, C);
        linear_add(m, &L->o, names[3], C, C);
        norm_add(m, &L->ln_attn, names[6], C);
        linear_add(m, &L->ffn_in, names[4], C, F);
        linear_add(m, &L->ffn_out, names[5], F, C);
        norm_add(m, &L->ln_ffn, names[7], C);
    }
    if (c->arch == ARCH_DISTILBERT) {
        linear_add(m, &m->pre, "pre_classifier", C, C);
        m->pre_act = ACT_RELU;
    } else {
        linear_add(m, &m->pre, "bert.pooler.dense", C, C);
        m->pre_act = ACT_TANH;
    }
    linear_add(m, &m->cls, "classifier", C, c->num_labels);
}

/* "a.b.weight" -> module "a.b" (into out). */
static void module_of(const Param *p, char *out, size_t cap) {
    snprintf(out, cap, "%s", p->name);
    char *dot = strrchr(out, '.');
    if (dot) *dot = 0;
}

/* PEFT matches a target (list form) when the module name equals it or ends in ".target". */
static int name_matches(const char *module, const char *target) {
    size_t lm = strlen(module), lt = strlen(target);
    if (lm == lt) return !strcmp(module, target);
    return lm > lt && module[lm - lt - 1] == '.' && !strcmp(module + lm - lt, target);
}

/* PEFT's modules_to_save test is a plain suffix match (so "pre_classifier" matches
 * "classifier"). */
static int is_saved_module(const TrainSpec *s, const char *module) {
    for (int i = 0; i < s->n_modules_to_save; i++) {
        size_t lm = strlen(module), lt = strlen(s->modules_to_save[i]);
        if (lm >= lt && !strcmp(module + lm - lt, s->modules_to_save[i])) return 1;
    }
    return 0;
}

/* Empty lists mean PEFT's defaults: target_modules by architecture (q_lin, v_lin for
 * DistilBERT; query, value for BERT), modules_to_save ["classifier", "score"] for SEQ_CLS.
 * Written into the spec so that adapters record what was actually used. */
static void resolve_defaults(TrainSpec *s, Arch arch) {
    if (!s->n_targets) {
        strcpy(s->targets[0], arch == ARCH_DISTILBERT ? "q_lin" : "query");
        strcpy(s->targets[1], arch == ARCH_DISTILBERT ? "v_lin" : "value");
        s->n_targets = 2;
    }
    if (!s->n_modules_to_save) {
        strcpy(s->modules_to_save[0], "classifier");
        strcpy(s->modules_to_save[1], "score");
        s->n_modules_to_save = 2;
    }
}

/* All Linear modules in table order, for LoRA targeting. */
static int all_linears(Model *m, Linear **out) {
    int n = 0;
    for (int l = 0; l < m->cfg.num_layers; l++) {
        Layer *L = &m->layers[l];
        Linear *ls[6] = {&L->q, &L->k, &L->v, &L->o, &L->ffn_in, &L->ffn_out};
        for (int i = 0; i < 6; i++) out[n++] = ls[i];
    }
    out[n++] = &m->pre;
    out[n++] = &m->cls;
    return n;
}

/* Adds LoRA A/B beside every targeted Linear. */
static int attach_loras(Model *m, LfError *err) {
    const TrainSpec *s = &m->spec;
    int used[LORA_MAX_TARGETS] = {0};
    Linear *lins[6 * 256 + 2];
    int n = all_linears(m, lins);
    float scale = s->use_rslora ? s->alpha / sqrtf((float)s->r) : s->alpha / (float)s->r;
    for (int i = 0; i < n; i++) {
        char module[160];
        module_of(lins[i]->w, module, sizeof module);
        int hit = 0;
        for (int t = 0; t < s->n_targets; t++)
            if (name_matches(module, s->targets[t])) hit = used[t] = 1;
        if (!hit) continue;
        if (is_saved_module(s, module))
            return lf_fail(err, "LoRA target '%s' is also in modules_to_save", module);
        Lora *lo = &m->loras[m->n_loras++];
        lo->A = param_add(m, 1, s->r, lins[i]->in, "%s.lora_A.weight", module);
        lo->B = param_add(m, 1, lins[i]->out, s->r, "%s.lora_B.weight", module);
        lo->A->is_lora = lo->B->is_lora = 1;
        lo->A->in_checkpoint = lo->B->in_checkpoint = 0;
        lo->scale = scale;
        lins[i]->lora = lo;
    }
    for (int t = 0; t < s->n_targets; t++)
        if (!used[t])
            return lf_fail(err, "LoRA target module '%s' not found in the %s model", s->targets[t],
                           arch_name(m->cfg.arch));
    return 0;
}

/* Which parameters train under the strategy. */
static int param_trains(const Model *m, const Param *p) {
    char module[160];
    module_of(p, module, sizeof module);
    switch (m->spec.strategy) {
    case STRATEGY_FULL:
        return 1;
    case STRATEGY_HEAD:
        return strncmp(p->name, model_prefix(&m->cfg), strlen(model_prefix(&m->cfg))) != 0;
    case STRATEGY_LORA:
        return p->is_lora || is_saved_module(&m->spec, module);
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* initial values                                                                       */

/* Standard normal from two uniforms (Box-Muller). */
static float normal_draw(Rng *r) {
    float u1 = rng_next_uniform(r), u2 = rng_next_uniform(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}

/* HF's _init_weights: Linear and Embedding weights ~ N(0, initializer_range), biases 0,
 * LayerNorm weight 1; PEFT's LoRA: A ~ kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(in)), B = 0. */
static void param_init(const Model *m, const Param *p, float *v, Rng *r) {
    size_t len = strlen(p->name);
    int is_bias = len > 5 && !strcmp(p->name + len - 5, ".bias");
    int is_norm = strstr(p->name, "LayerNorm") || strstr(p->name, "layer_norm");
    if (p->is_lora) {
        int is_a = strstr(p->name, "lora_A") != NULL;
        float bound = 1.0f / sqrtf((float)p->shape[1]);
        for (size_t i = 0; i < p->numel; i++)
            v[i] = is_a ? (2.0f * rng_next_uniform(r) - 1.0f) * bound : 0.0f;
    } else if (is_bias) {
        memset(v, 0, p->numel * sizeof *v);
    } else if (is_norm) {
        for (size_t i = 0; i < p->numel; i++) v[i] = 1.0f;
    } else {
        for (size_t i = 0; i < p->numel; i++) v[i] = normal_draw(r) * m->cfg.initializer_range;
        if (p == m->wte && m->cfg.pad_token_id >= 0 && m->cfg.pad_token_id < m->cfg.vocab_size)
            memset(v + (size_t)m->cfg.pad_token_id * p->shape[1], 0, p->shape[1] * sizeof *v);
    }
}

/* Reads base weights from dir/model.safetensors (names with or without the model prefix);
 * missing head tensors are initialised and reported, any other missing tensor is an error. */
static int load_weights(Model *m, const char *dir, float *host, Rng *r, char *report,
                        size_t report_cap, LfError *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    SafeTensors st;
    if (safetensors_open(&st, path, err)) return -1;
    size_t plen = strlen(model_prefix(&m->cfg)) + 1;
    if (report && report_cap) report[0] = 0;
    int rc = 0;
    for (int i = 0; i < m->n_params && !rc; i++) {
        Param *p = &m->params[i];
        float *dst = host + (p->value - m->values);
        if (!p->in_checkpoint) {
            param_init(m, p, dst, r);
            continue;
        }
        const char *name = p->name;
        if (!safetensors_find(&st, name) && !strncmp(name, model_prefix(&m->cfg), plen - 1))
            name += plen; /* a bare DistilBertModel / BertModel checkpoint */
        if (safetensors_find(&st, name)) {
            rc = safetensors_read_f32(&st, name, p->ndim, p->shape, dst, err);
        } else if (strncmp(p->name, model_prefix(&m->cfg), plen - 1)) {
            param_init(m, p, dst, r); /* the classification head of a base checkpoint */
            if (report && strlen(report) + strlen(p->name) + 3 < report_cap)
                strcat(strcat(report, report[0] ? ", " : ""), p->name);
        } else {
            rc = lf_fail(err, "%s: tensor '%s' not found", path, p->name);
        }
    }
    safetensors_close(&st);
    return rc;
}

/* ------------------------------------------------------------------------------------ */
/* memory plan: every activation sized once for (max_batch, max_len)                    */

/* Debug and sanitizer builds (LORAFT_ACT_GUARDS) follow every planned buffer with a guard
 * block of a fixed NaN pattern, checked after each forward and backward: an op that writes
 * past its buffer stays inside the one activation allocation, where neither ASan nor
 * compute-sanitizer can see it, so without guards an under-sized buffer corrupts silently. */
#ifdef LORAFT_ACT_GUARDS
enum { GUARD_FLOATS = 16 };
#else
enum { GUARD_FLOATS = 0 };
#endif
static const uint32_t GUARD_BITS = 0x7fa5a5a5u; /* a NaN no op produces */

typedef struct Plan {
    float *base; /* NULL while sizing */
    size_t used;
    ActGuard *guards; /* NULL while sizing */
    int n_guards;
} Plan;

/* Assigns the next n floats to *slot when keep, else points *slot at a shared buffer. */
static void take_named(Plan *pl, float **slot, size_t n, int keep, float *shared,
                       const char *name) {
    if (!keep) {
        *slot = shared;
        return;
    }
    *slot = pl->base ? pl->base + pl->used : NULL;
    pl->used += (n + 15) & ~(size_t)15; /* 64-byte aligned slices */
    if (!GUARD_FLOATS) return;
    if (pl->guards) pl->guards[pl->n_guards] = (ActGuard){pl->used, n, name};
    pl->n_guards++;
    pl->used += GUARD_FLOATS;
}
#define take(pl, slot, n, keep, shared) take_named(pl, slot, n, keep, shared, #slot)

static size_t max_size(size_t a, size_t b) {
    return a > b ? a : b;
}

/* Scratch the LoRA branch of l needs for `rows` input rows (0 without LoRA). */
static size_t lora_scratch(const Linear *l, size_t rows, size_t R) {
    return l->lora ? ops_lora_scratch(rows, (size_t)l->in, R) : 0;
}

/* The largest op scratch any op of this model asks for (ops.h's contract). */
static size_t scratch_floats(const Model *m) {
    size_t B = m->max_batch, N = B * m->max_len, R = m->spec.r;
    size_t need = ops_attention_scratch(B, m->max_len, m->cfg.num_heads);
    need = max_size(need, max_size(lora_scratch(&m->pre, B, R), lora_scratch(&m->cls, B, R)));
    for (int l = 0; l < m->cfg.num_layers; l++) {
        const Layer *Ly = &m->layers[l];
        const Linear *ls[6] = {&Ly->q, &Ly->k, &Ly->v, &Ly->o, &Ly->ffn_in, &Ly->ffn_out};
        for (int i = 0; i < 6; i++) need = max_size(need, lora_scratch(ls[i], N, R));
    }
    return need;
}

static int linear_trains(const Linear *l) {
    return l->w->grad || l->b->grad || l->lora;
}

/* Lays out all activations; called twice (size, then assign). A buffer that backward
 * does not need shares one of a few scratch buffers, chosen so that no op ever reads and
 * writes the same one: q S1, k S2, v S3, ctx S4, res_attn S1, h_attn S2, ffn_pre F1,
 * ffn_act F2, res_ffn S3, layer outputs alternate between O0 and O1 (h0 is O1). */
static void plan_activations(Model *m, Plan *pl) {
    const ModelConfig *c = &m->cfg;
    size_t B = m->max_batch, T = m->max_len, N = B * T, C = c->hidden_size, F = c->ffn_size;
    size_t NH = c->num_heads, K = c->num_labels, L = c->num_layers, R = m->spec.r;
    int low = m->lowest_trained_layer, any = m->n_grads > 0, emb_trains = m->wte->grad != NULL;
    float *S[4], *Fs[2], *O[2], *att, *mean, *rstd;
    for (int i = 0; i < 4; i++) take(pl, &S[i], N * C, 1, NULL);
    for (int i = 0; i < 2; i++) take(pl, &Fs[i], N * F, 1, NULL);
    for (int i = 0; i < 2; i++) take(pl, &O[i], N * C, 1, NULL);
    take(pl, &att, B * NH * T * T, 1, NULL);
    take(pl, &mean, N, 1, NULL);
    take(pl, &rstd, N, 1, NULL);

    take(pl, &m->emb, N * C, emb_trains, S[0]);
    take(pl, &m->emb_mean, N, emb_trains, mean);
    take(pl, &m->emb_rstd, N, emb_trains, rstd);
    for (size_t l = 0; l < L; l++) {
        Layer *Ly = &m->layers[l];
        LayerActs *a = &m->acts[l];
        int bw = (int)l >= low; /* backward passes through this layer */
        int qkv = bw && (linear_trains(&Ly->q) || linear_trains(&Ly->k) || linear_trains(&Ly->v));
        /* the previous output (or h0) is this layer's x: kept when q/k/v train */
        float **x = l == 0 ? &m->h0 : &m->acts[l - 1].out;
        take(pl, x, N * C, qkv, O[(l + 1) % 2]);
        a->x = *x;
        take(pl, &a->q, N * C, bw, S[0]);
        take(pl, &a->k, N * C, bw, S[1]);
        take(pl, &a->v, N * C, bw, S[2]);
        take(pl, &a->att, B * NH * T * T, bw, att);
        take(pl, &a->ctx, N * C, bw && linear_trains(&Ly->o), S[3]);
        take(pl, &a->res_attn, N * C, bw, S[0]);
        take(pl, &a->mean_attn, N, bw, mean);
        take(pl, &a->rstd_attn, N, bw, rstd);
        take(pl, &a->h_attn, N * C, bw && linear_trains(&Ly->ffn_in), S[1]);
        take(pl, &a->ffn_pre, N * F, bw, Fs[0]);
        take(pl, &a->ffn_act, N * F, bw && linear_trains(&Ly->ffn_out), Fs[1]);
        take(pl, &a->res_ffn, N * C, bw, S[2]);
        take(pl, &a->mean_ffn, N, bw, mean);
        take(pl, &a->rstd_ffn, N, bw, rstd);
        Linear *ls[6] = {&Ly->q, &Ly->k, &Ly->v, &Ly->o, &Ly->ffn_in, &Ly->ffn_out};
        for (int i = 0; i < 6; i++)
            if (ls[i]->lora) take(pl, &ls[i]->lora->u, N * R, 1, NULL);
    }
    take(pl, &m->acts[L - 1].out, N * C, 0, O[(L + 1) % 2]);
    Linear *heads[2] = {&m->pre, &m->cls};
    for (int i = 0; i < 2; i++)
        if (heads[i]->lora) take(pl, &heads[i]->lora->u, B * R, 1, NULL);
    float **head[] = {&m->pooled, &m->pre_out, &m->pre_act_out, &m->head_in};
    for (int i = 0; i < 4; i++) take(pl, head[i], B * C, 1, NULL);
    take(pl, &m->logits, B * K, 1, NULL);
    take(pl, &m->losses, B, 1, NULL);
    take(pl, &m->dlogits, B * K, 1, NULL);
    take(pl, &m->scratch, scratch_floats(m), 1, NULL);
    /* gradient buffers, only when something trains */
    float **dn[] = {&m->d_a,   &m->d_b, &m->d_c, &m->d_br, &m->d_r,
                    &m->d_ctx, &m->d_q, &m->d_k, &m->d_v};
    for (size_t i = 0; i < sizeof dn / sizeof *dn; i++) take(pl, dn[i], N * C, any, NULL);
    take(pl, &m->d_ffn, N * F, any, NULL);
    take(pl, &m->d_ffn2, N * F, any, NULL);
    take(pl, &m->d_head, 4 * B * C, any, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* construction                                                                         */

static int layer_trains(const Layer *L) {
    const Linear *ls[6] = {&L->q, &L->k, &L->v, &L->o, &L->ffn_in, &L->ffn_out};
    for (int i = 0; i < 6; i++)
        if (linear_trains(ls[i])) return 1;
    return L->ln_attn.w->grad || L->ln_ffn.w->grad;
}

/* Points every trainable parameter's grad into the gradient block (table order). */
static int assign_gradients(Model *m, LfError *err) {
    int trains[m->n_params];
    m->n_grads = m->n_saved_copy = 0;
    for (int i = 0; i < m->n_params; i++) {
        trains[i] = param_trains(m, &m->params[i]);
        if (trains[i]) m->n_grads += m->params[i].numel;
        if (trains[i] && m->spec.strategy == STRATEGY_LORA && !m->params[i].is_lora)
            m->n_saved_copy += m->params[i].numel;
    }
    if (m->n_grads) {
        m->grads = m->ops->alloc(m->n_grads * sizeof(float));
        if (!m->grads) return lf_fail(err, "out of memory for %zu gradients", m->n_grads);
    }
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++)
        if (trains[i]) m->params[i].grad = m->grads + off, off += m->params[i].numel;
    int L = m->cfg.num_layers;
    m->lowest_trained_layer = m->wte->grad ? 0 : L;
    for (int l = L - 1; l >= 0; l--)
        if (layer_trains(&m->layers[l])) m->lowest_trained_layer = l;
    return 0;
}

static int check_sizes(const ModelConfig *c, const TrainSpec *s, int max_batch, int max_len,
                       LfError *err) {
    if (max_batch < 1 || max_len < 2)
        return lf_fail(err, "batch size %d and sequence length %d must be >= 1 and >= 2", max_batch,
                       max_len);
    if (c->num_layers < 1 || c->num_layers > 256)
        return lf_fail(err, "num_layers %d must be in 1..256", c->num_layers);
    if (max_len > c->max_positions)
        return lf_fail(err, "max_length %d exceeds the model's max_position_embeddings %d", max_len,
                       c->max_positions);
    if (s->strategy == STRATEGY_LORA && (s->r < 1 || s->r > LORA_MAX_R))
        return lf_fail(err, "lora.r = %d must be in 1..%d", s->r, LORA_MAX_R);
    return 0;
}

/* Sizes the plan, allocates the activations and the batch buffers, assigns the plan and
 * arms the guards. */
static int activations_create(Model *m, LfError *err) {
    const Ops *ops = m->ops;
    Plan pl = {0};
    plan_activations(m, &pl);
    m->n_act = pl.used;
    m->act_mem = ops->alloc(m->n_act * sizeof(float));
    size_t NT = (size_t)m->max_batch * m->max_len;
    m->ids = ops->alloc(3 * NT * sizeof(int32_t) + m->max_batch * sizeof(int32_t));
    m->guards = calloc(pl.n_guards ? pl.n_guards : 1, sizeof *m->guards);
    if (!m->act_mem || !m->ids || !m->guards)
        return lf_fail(err, "out of memory for %zu activations (%.1f MiB)", m->n_act,
                       m->n_act * sizeof(float) / 1048576.0);
    m->types = m->ids + NT;
    m->mask = m->types + NT;
    m->labels = m->mask + NT;
    pl = (Plan){m->act_mem, 0, m->guards, 0};
    plan_activations(m, &pl);
    m->n_guards = pl.n_guards;
    uint32_t pattern[GUARD_FLOATS + 1];
    for (int i = 0; i < GUARD_FLOATS; i++) pattern[i] = GUARD_BITS;
    for (int g = 0; g < m->n_guards; g++)
        ops->upload(m->act_mem + m->guards[g].offset, pattern, GUARD_FLOATS * sizeof(float));
    return 0;
}

/* Fails, naming the buffer, when an op wrote past a planned activation buffer. */
static int check_guards(Model *m, LfError *err) {
    uint32_t got[GUARD_FLOATS + 1];
    for (int g = 0; g < m->n_guards; g++) {
        const ActGuard *a = &m->guards[g];
        m->ops->download(got, m->act_mem + a->offset, GUARD_FLOATS * sizeof(float));
        for (int i = 0; i < GUARD_FLOATS; i++)
            if (got[i] != GUARD_BITS)
                return lf_fail(err, "activation memory: an op wrote past %s (%zu floats planned)",
                               a->name + (a->name[0] == '&'), a->floats);
    }
    return 0;
}

int model_create(Model *m, const ModelConfig *cfg, const TrainSpec *spec, const Ops *ops,
                 const char *dir, uint64_t seed, int max_batch, int max_len, char *missing_report,
                 size_t report_cap, LfError *err) {
    memset(m, 0, sizeof *m);
    if (check_sizes(cfg, spec, max_batch, max_len, err)) return -1;
    m->cfg = *cfg;
    m->spec = *spec;
    if (spec->strategy == STRATEGY_LORA) resolve_defaults(&m->spec, cfg->arch);
    m->ops = ops;
    m->max_batch = max_batch;
    m->max_len = max_len;
    int L = cfg->num_layers, max_params = 8 + 16 * L + 4 + 2 * (6 * L + 2);
    m->layers = calloc(L, sizeof *m->layers);
    m->acts = calloc(L, sizeof *m->acts);
    m->loras = calloc(6 * L + 2, sizeof *m->loras);
    m->params = calloc(max_params, sizeof *m->params);
    m->host_losses = calloc(max_batch, sizeof *m->host_losses);
    if (!m->layers || !m->acts || !m->loras || !m->params || !m->host_losses)
        return model_free(m), lf_fail(err, "out of memory");
    build_table(m);
    if (spec->strategy == STRATEGY_LORA && attach_loras(m, err)) return model_free(m), -1;
    for (int i = 0; i < m->n_params; i++) {
        m->n_values += m->params[i].numel;
        if (m->params[i].in_checkpoint) m->n_base += m->params[i].numel;
    }
    m->values = ops->alloc(m->n_values * sizeof(float));
    if (!m->values) {
        size_t n = m->n_values;
        return model_free(m), lf_fail(err, "out of memory for %zu weights", n);
    }
    size_t off = 0;
    for (int i = 0; i < m->n_params; i++)
        m->params[i].value = m->values + off, off += m->params[i].numel;
    if (assign_gradients(m, err)) return model_free(m), -1;
    if (activations_create(m, err)) return model_free(m), -1;

    float *host = malloc(m->n_values * sizeof(float));
    if (!host) return model_free(m), lf_fail(err, "out of memory");
    Rng rng = {seed, 0};
    int rc = 0;
    if (dir) {
        rc = load_weights(m, dir, host, &rng, missing_report, report_cap, err);
    } else {
        for (int i = 0; i < m->n_params; i++)
            param_init(m, &m->params[i], host + (m->params[i].value - m->values), &rng);
    }
    if (!rc) ops->upload(m->values, host, m->n_values * sizeof(float));
    free(host);
    if (rc) return model_free(m), -1;
    return ops->status(err) ? (model_free(m), -1) : 0;
}

void model_free(Model *m) {
    if (m->ops) {
        m->ops->free(m->values);
        m->ops->free(m->grads);
        m->ops->free(m->act_mem);
        m->ops->free(m->ids);
    }
    free(m->layers);
    free(m->acts);
    free(m->loras);
    free(m->params);
    free(m->host_losses);
    free(m->guards);
    memset(m, 0, sizeof *m);
}

void model_zero_grad(Model *m) {
    if (m->n_grads) m->ops->zero(m->grads, m->n_grads * sizeof(float));
}

size_t model_trainable_count(const Model *m) {
    return m->n_grads;
}

/* PEFT counts a modules_to_save module twice (the frozen original and the trained copy). */
size_t model_all_count(const Model *m) {
    size_t lora = m->n_values - m->n_base;
    return m->n_base + lora + m->n_saved_copy;
}

Param *model_find_param(Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name)) return &m->params[i];
    return NULL;
}

int model_set_batch(Model *m, const int32_t *ids, const int32_t *types, const int32_t *mask,
                    const int32_t *labels, int B, int T, LfError *err) {
    const ModelConfig *c = &m->cfg;
    if (B < 1 || B > m->max_batch || T < 1 || T > m->max_len)
        return lf_fail(err, "batch %dx%d exceeds the sizes the model was built for (%dx%d)", B, T,
                       m->max_batch, m->max_len);
    for (int i = 0; i < B * T; i++) {
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return lf_fail(err, "token id %d at position %d is outside the vocabulary (size %d)",
                           ids[i], i, c->vocab_size);
        if (types && (types[i] < 0 || types[i] >= (c->type_vocab_size ? c->type_vocab_size : 1)))
            return lf_fail(err, "token type %d at position %d is not supported", types[i], i);
    }
    m->n_valid = 0;
    for (int b = 0; labels && b < B; b++) {
        if (labels[b] >= c->num_labels)
            return lf_fail(err, "label %d of example %d is not below num_labels %d", labels[b], b,
                           c->num_labels);
        m->n_valid += labels[b] >= 0;
    }
    const Ops *o = m->ops;
    size_t n = (size_t)B * T * sizeof(int32_t);
    o->upload(m->ids, ids, n);
    if (types)
        o->upload(m->types, types, n);
    else
        o->zero(m->types, n);
    o->upload(m->mask, mask, n);
    if (labels) o->upload(m->labels, labels, B * sizeof(int32_t));
    m->B = B;
    m->T = T;
    m->has_labels = labels != NULL;
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* forward and backward, side by side                                                   */

/* Dropout sites: each (layer, site) pair draws from its own stream of the step's seed. */
enum {
    SITE_Q,
    SITE_K,
    SITE_V,
    SITE_ATT,
    SITE_O,
    SITE_O_DROP,
    SITE_FFN_IN,
    SITE_FFN_OUT,
    SITE_FFN_DROP
};
enum { SITE_EMB, SITE_HEAD_DROP, SITE_PRE, SITE_CLS };
static uint64_t site(uint64_t seed, int layer, int which) {
    return rng_hash(seed, (uint64_t)layer * 16 + (uint64_t)which);
}

/* out[N,out] = inp @ W^T + b (+ LoRA with dropout p). */
static void linear_forward(Model *m, Linear *l, float *out, const float *inp, int N, float p,
                           uint64_t seed) {
    const Ops *o = m->ops;
    o->matmul_forward(out, inp, l->w->value, l->b->value, N, l->in, l->out);
    if (l->lora)
        o->lora_forward(out, l->lora->u, inp, l->lora->A->value, l->lora->B->value, l->lora->scale,
                        p, seed, m->scratch, N, l->in, l->out, m->spec.r);
}

/* dinp (may be NULL) and the layer's trainable grads += from dout. */
static void linear_backward(Model *m, Linear *l, float *dinp, const float *dout, const float *inp,
                            int N, float p, uint64_t seed) {
    const Ops *o = m->ops;
    o->matmul_backward(dinp, l->w->grad, l->b->grad, dout, inp, l->w->value, N, l->in, l->out);
    if (l->lora)
        o->lora_backward(dinp, l->lora->A->grad, l->lora->B->grad, dout, inp, l->lora->u,
                         l->lora->A->value, l->lora->B->value, l->lora->scale, p, seed, m->scratch,
                         N, l->in, l->out, m->spec.r);
}

typedef struct Drop {
    float hidden, attention, classifier, lora;
} Drop;

static Drop dropouts(const Model *m, int train) {
    Drop d = {0, 0, 0, 0};
    if (train)
        d = (Drop){m->cfg.hidden_dropout, m->cfg.attention_dropout, m->cfg.classifier_dropout,
                   m->spec.dropout};
    return d;
}

/* BERT drops the attention output before the residual; DistilBERT does not. */
static float attn_out_dropout(const Model *m, Drop d) {
    return m->cfg.arch == ARCH_BERT ? d.hidden : 0.0f;
}

static void layer_forward(Model *m, int l, Drop d, uint64_t seed) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Layer *Ly = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, F = c->ffn_size;
    size_t NC = (size_t)N * C;
    linear_forward(m, &Ly->q, a->q, a->x, N, d.lora, site(seed, l, SITE_Q));
    linear_forward(m, &Ly->k, a->k, a->x, N, d.lora, site(seed, l, SITE_K));
    linear_forward(m, &Ly->v, a->v, a->x, N, d.lora, site(seed, l, SITE_V));
    o->attention_forward(a->ctx, a->att, a->q, a->k, a->v, m->mask, 0, d.attention,
                         site(seed, l, SITE_ATT), m->scratch, B, T, c->num_heads, c->num_heads,
                         C / c->num_heads);
    linear_forward(m, &Ly->o, a->res_attn, a->ctx, N, d.lora, site(seed, l, SITE_O));
    float po = attn_out_dropout(m, d);
    if (po > 0) o->dropout_forward(a->res_attn, a->res_attn, po, site(seed, l, SITE_O_DROP), NC);
    o->add(a->res_attn, a->res_attn, a->x, NC);
    o->layernorm_forward(a->h_attn, a->mean_attn, a->rstd_attn, a->res_attn, Ly->ln_attn.w->value,
                         Ly->ln_attn.b->value, c->layer_norm_eps, N, C);
    linear_forward(m, &Ly->ffn_in, a->ffn_pre, a->h_attn, N, d.lora, site(seed, l, SITE_FFN_IN));
    o->activation_forward(a->ffn_act, a->ffn_pre, c->activation, (size_t)N * F);
    linear_forward(m, &Ly->ffn_out, a->res_ffn, a->ffn_act, N, d.lora, site(seed, l, SITE_FFN_OUT));
    if (d.hidden > 0)
        o->dropout_forward(a->res_ffn, a->res_ffn, d.hidden, site(seed, l, SITE_FFN_DROP), NC);
    o->add(a->res_ffn, a->res_ffn, a->h_attn, NC);
    o->layernorm_forward(a->out, a->mean_ffn, a->rstd_ffn, a->res_ffn, Ly->ln_ffn.w->value,
                         Ly->ln_ffn.b->value, c->layer_norm_eps, N, C);
}

/* dout: gradient of the layer output [N,C]; dx (may be NULL) += gradient of its input. */
static void layer_backward(Model *m, int l, const float *dout, float *dx, Drop d, uint64_t seed) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Layer *Ly = &m->layers[l];
    LayerActs *a = &m->acts[l];
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, F = c->ffn_size;
    size_t NC = (size_t)N * C, NF = (size_t)N * F, bytes = NC * sizeof(float);
    /* FFN block: out = LN(drop(ffn_out(act(ffn_in(h)))) + h) */
    o->zero(m->d_c, bytes);
    o->layernorm_backward(m->d_c, Ly->ln_ffn.w->grad, Ly->ln_ffn.b->grad, dout, a->res_ffn,
                          Ly->ln_ffn.w->value, a->mean_ffn, a->rstd_ffn, N, C);
    const float *dy = m->d_c;
    if (d.hidden > 0) {
        o->zero(m->d_br, bytes);
        o->dropout_backward(m->d_br, m->d_c, d.hidden, site(seed, l, SITE_FFN_DROP), NC);
        dy = m->d_br;
    }
    o->zero(m->d_ffn, NF * sizeof(float));
    linear_backward(m, &Ly->ffn_out, m->d_ffn, dy, a->ffn_act, N, d.lora,
                    site(seed, l, SITE_FFN_OUT));
    o->zero(m->d_ffn2, NF * sizeof(float));
    o->activation_backward(m->d_ffn2, a->ffn_pre, m->d_ffn, c->activation, NF);
    /* d_c (the residual's share of dh) now also takes the FFN branch's share */
    linear_backward(m, &Ly->ffn_in, m->d_c, m->d_ffn2, a->h_attn, N, d.lora,
                    site(seed, l, SITE_FFN_IN));
    /* attention block: h = LN(drop(o(attention(q(x), k(x), v(x)))) + x) */
    o->zero(m->d_r, bytes);
    o->layernorm_backward(m->d_r, Ly->ln_attn.w->grad, Ly->ln_attn.b->grad, m->d_c, a->res_attn,
                          Ly->ln_attn.w->value, a->mean_attn, a->rstd_attn, N, C);
    const float *da = m->d_r;
    float po = attn_out_dropout(m, d);
    if (po > 0) {
        o->zero(m->d_br, bytes);
        o->dropout_backward(m->d_br, m->d_r, po, site(seed, l, SITE_O_DROP), NC);
        da = m->d_br;
    }
    o->zero(m->d_ctx, bytes);
    linear_backward(m, &Ly->o, m->d_ctx, da, a->ctx, N, d.lora, site(seed, l, SITE_O));
    o->zero(m->d_q, bytes);
    o->zero(m->d_k, bytes);
    o->zero(m->d_v, bytes);
    o->attention_backward(m->d_q, m->d_k, m->d_v, m->d_ctx, a->q, a->k, a->v, a->att, d.attention,
                          site(seed, l, SITE_ATT), m->scratch, B, T, c->num_heads, c->num_heads,
                          C / c->num_heads);
    if (dx) o->axpy(dx, m->d_r, 1.0f, NC);
    linear_backward(m, &Ly->q, dx, m->d_q, a->x, N, d.lora, site(seed, l, SITE_Q));
    linear_backward(m, &Ly->k, dx, m->d_k, a->x, N, d.lora, site(seed, l, SITE_K));
    linear_backward(m, &Ly->v, dx, m->d_v, a->x, N, d.lora, site(seed, l, SITE_V));
}

static void head_forward(Model *m, Drop d, uint64_t seed) {
    const Ops *o = m->ops;
    int B = m->B, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    o->first_token_forward(m->pooled, m->acts[L - 1].out, B, m->T, C);
    linear_forward(m, &m->pre, m->pre_out, m->pooled, B, d.lora, site(seed, L, SITE_PRE));
    o->activation_forward(m->pre_act_out, m->pre_out, m->pre_act, (size_t)B * C);
    o->dropout_forward(m->head_in, m->pre_act_out, d.classifier, site(seed, L, SITE_HEAD_DROP),
                       (size_t)B * C);
    linear_forward(m, &m->cls, m->logits, m->head_in, B, d.lora, site(seed, L, SITE_CLS));
}

/* Returns the gradient of the last layer's output in m->d_a (when the body trains). */
static void head_backward(Model *m, Drop d, uint64_t seed) {
    const Ops *o = m->ops;
    int B = m->B, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    size_t BC = (size_t)B * C;
    float *d_in = m->d_head, *d_act = d_in + BC, *d_pre = d_act + BC, *d_pool = d_pre + BC;
    o->zero(m->d_head, 4 * BC * sizeof(float));
    linear_backward(m, &m->cls, d_in, m->dlogits, m->head_in, B, d.lora, site(seed, L, SITE_CLS));
    o->dropout_backward(d_act, d_in, d.classifier, site(seed, L, SITE_HEAD_DROP), BC);
    o->activation_backward(d_pre, m->pre_out, d_act, m->pre_act, BC);
    int body = m->lowest_trained_layer < L;
    linear_backward(m, &m->pre, body ? d_pool : NULL, d_pre, m->pooled, B, d.lora,
                    site(seed, L, SITE_PRE));
    if (!body) return;
    o->zero(m->d_a, (size_t)B * m->T * C * sizeof(float));
    o->first_token_backward(m->d_a, d_pool, B, m->T, C);
}

int model_forward(Model *m, int train, uint64_t seed, float loss_weight, float *loss,
                  LfError *err) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, L = c->num_layers;
    Drop d = dropouts(m, train);
    m->train_mode = train;
    o->embedding_forward(m->emb, m->ids, m->wtt ? m->types : NULL, m->wte->value, m->wpe->value,
                         m->wtt ? m->wtt->value : NULL, B, T, C);
    o->layernorm_forward(m->h0, m->emb_mean, m->emb_rstd, m->emb, m->ln_emb.w->value,
                         m->ln_emb.b->value, c->layer_norm_eps, N, C);
    if (d.hidden > 0)
        o->dropout_forward(m->h0, m->h0, d.hidden, site(seed, L, SITE_EMB), (size_t)N * C);
    for (int l = 0; l < L; l++) layer_forward(m, l, d, seed);
    head_forward(m, d, seed);
    *loss = 0;
    if (m->has_labels) {
        float scale = m->n_valid ? loss_weight / (float)m->n_valid : 0.0f;
        o->cross_entropy(m->losses, m->dlogits, m->logits, m->labels, scale, B, c->num_labels);
        o->download(m->host_losses, m->losses, B * sizeof(float));
        double sum = 0;
        for (int b = 0; b < B; b++) sum += m->host_losses[b];
        *loss = m->n_valid ? (float)(sum / m->n_valid) : 0.0f;
    }
    return o->status(err) ? -1 : check_guards(m, err);
}

int model_backward(Model *m, uint64_t seed, LfError *err) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, L = c->num_layers;
    size_t NC = (size_t)N * C;
    if (!m->has_labels) return lf_fail(err, "backward needs a batch with labels");
    Drop d = dropouts(m, m->train_mode);
    head_backward(m, d, seed);
    int emb_trains = m->wte->grad != NULL;
    float *dout = m->d_a, *dx = m->d_b;
    for (int l = L - 1; l >= m->lowest_trained_layer; l--) {
        int need_dx = l > m->lowest_trained_layer || emb_trains;
        if (need_dx) o->zero(dx, NC * sizeof(float));
        layer_backward(m, l, dout, need_dx ? dx : NULL, d, seed);
        float *t = dout;
        dout = dx;
        dx = t;
    }
    if (emb_trains) {
        const float *dh0 = dout;
        if (d.hidden > 0) {
            o->zero(m->d_br, NC * sizeof(float));
            o->dropout_backward(m->d_br, dout, d.hidden, site(seed, L, SITE_EMB), NC);
            dh0 = m->d_br;
        }
        o->zero(m->d_r, NC * sizeof(float));
        o->layernorm_backward(m->d_r, m->ln_emb.w->grad, m->ln_emb.b->grad, dh0, m->emb,
                              m->ln_emb.w->value, m->emb_mean, m->emb_rstd, N, C);
        o->embedding_backward(m->wte->grad, m->wpe->grad, m->wtt ? m->wtt->grad : NULL, m->d_r,
                              m->ids, m->wtt ? m->types : NULL, B, T, C);
    }
    return o->status(err) ? -1 : check_guards(m, err);
}

/* ------------------------------------------------------------------------------------ */
/* saving                                                                               */

/* W[out,in] += scale * B[out,R] @ A[R,in], on host copies. */
static void merge_lora(float *W, const float *A, const float *Bm, float scale, int out, int in,
                       int R) {
    for (int o = 0; o < out; o++)
        for (int r = 0; r < R; r++) {
            float s = scale * Bm[(size_t)o * R + r];
            const float *a = A + (size_t)r * in;
            float *w = W + (size_t)o * in;
            for (int i = 0; i < in; i++) w[i] += s * a[i];
        }
}

int model_save_weights(Model *m, const char *path, int merge, LfError *err) {
    float *host = malloc(m->n_values * sizeof(float));
    StEntry *entries = calloc(m->n_params, sizeof *entries);
    if (!host || !entries) return free(host), free(entries), lf_fail(err, "out of memory");
    m->ops->download(host, m->values, m->n_values * sizeof(float));
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        Param *p = &m->params[i];
        if (!p->in_checkpoint) continue;
        entries[n++] = (StEntry){
            p->name, ST_F32, p->ndim, {p->shape[0], p->shape[1]}, host + (p->value - m->values)};
    }
    Linear *lins[6 * 256 + 2];
    int nl = all_linears(m, lins);
    for (int i = 0; merge && i < nl; i++) {
        Linear *l = lins[i];
        if (!l->lora) continue;
        merge_lora(host + (l->w->value - m->values), host + (l->lora->A->value - m->values),
                   host + (l->lora->B->value - m->values), l->lora->scale, l->out, l->in,
                   m->spec.r);
    }
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = safetensors_write(path, entries, n, meta, err);
    free(host);
    free(entries);
    return rc;
}
