/* bert.c: the DistilBERT and BERT architectures for sequence classification (arch.h).
 *
 * The two share one post-LayerNorm encoder:
 *   h0  = dropout(LN(wte[ids] + wpe[t] (+ wtt[type])))
 *   per layer:  a = dropout_h(o(attention(q(x), k(x), v(x))));  h = LN(a + x)
 *               y = dropout_h(ffn_out(act(ffn_in(h))));         out = LN(y + h)
 *   head:       logits = cls(dropout_c(act_p(pre(out[:, 0]))))
 * and differ only in names, in token types, in dropout after the attention output (BERT
 * only) and in the head activation (ReLU after DistilBERT's pre_classifier, tanh in BERT's
 * pooler): data, not code. Forward and backward are written out by hand, side by side, in
 * the style of llm.c; every dense layer goes through the core's LoRA-aware linear. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/arch.h"

typedef struct Layer {
    Linear q, k, v, o, ffn_in, ffn_out;
    Norm ln_attn, ln_ffn;
    Linear *qkv[3]; /* q, k, v: they read the same x (linear_forward_group) */
} Layer;

/* Activations of one layer kept for backward; a buffer backward does not need points at a
 * shared one. */
typedef struct LayerActs {
    float *x;                     /* [N,C] layer input (kept only if q/k/v read it again) */
    float *q, *k, *v;             /* [N,C] (kept only if attention saves nothing) */
    float *lse;                   /* [B,NH,T] attention's log-sum-exp per query row */
    float *att_saved;             /* what attention saves for backward (Ops.attention_saved) */
    float *ctx;                   /* [N,C] attention output, input of o and of attention backward */
    float *res_attn;              /* [N,C] o(ctx) + x, input of ln_attn */
    float *h_attn;                /* [N,C] ln_attn output (kept only if ffn_in reads it again) */
    float *mean_attn, *rstd_attn; /* [N] */
    float *ffn_pre;               /* [N,F] ffn_in output (activation input) */
    float *ffn_act;               /* [N,F] activation output (kept only if ffn_out reads it) */
    float *res_ffn;               /* [N,C] */
    float *mean_ffn, *rstd_ffn;
    /* model_keeps_bf16: instead of res_attn, ffn_pre and res_ffn, ln_attn's xhat, ffn_pre's
     * bf16 copy and ln_ffn's xhat (NULL otherwise) */
    uint16_t *xh_attn, *ffn_pre_bf16, *xh_ffn;
    float *out; /* [N,C] layer output */
} LayerActs;

typedef struct Bert {
    Param *wte, *wpe, *wtt; /* wtt NULL for DistilBERT */
    Norm ln_emb;
    Layer *layers;
    LayerActs *acts;
    Linear pre, cls;          /* pre_classifier (DistilBERT) or pooler (BERT), then classifier */
    Activation pre_act;       /* ReLU (DistilBERT) or tanh (BERT pooler) */
    int lowest_trained_layer; /* backward stops below it; L means "head only" */
    int qkv_ld; /* q's, k's and v's rows apart: C, or 3C where one GEMM writes them side by side
                   (linear_outputs_join), rows [q | k | v] */
    float *emb, *emb_mean, *emb_rstd, *h0;               /* [N,C], [N], [N], [N,C] */
    float *pooled, *pre_out, *pre_act_out, *head_in;     /* [B,C] */
    float *d_a, *d_c, *d_q, *d_k, *d_v, *d_ffn, *d_ffn2; /* gradient scratch */
    float *d_head, *d_br, *d_r, *d_ctx;
} Bert;

static Bert *bert(const Model *m) {
    return (Bert *)m->body;
}

/* ------------------------------------------------------------------------------------ */
/* names and tensors                                                                    */

static int is_distilbert(const Model *m) {
    return m->cfg.arch == ARCH_DISTILBERT;
}

/* Module names of layer l, in the order q k v o ffn_in ffn_out ln_attn ln_ffn. */
static void layer_module_names(const Model *m, int l, char names[8][128]) {
    static const char *distil[8] = {"attention.q_lin",   "attention.k_lin",  "attention.v_lin",
                                    "attention.out_lin", "ffn.lin1",         "ffn.lin2",
                                    "sa_layer_norm",     "output_layer_norm"};
    static const char *bert_names[8] = {"attention.self.query",       "attention.self.key",
                                        "attention.self.value",       "attention.output.dense",
                                        "intermediate.dense",         "output.dense",
                                        "attention.output.LayerNorm", "output.LayerNorm"};
    const char **local = is_distilbert(m) ? distil : bert_names;
    const char *stem = is_distilbert(m) ? "distilbert.transformer.layer" : "bert.encoder.layer";
    for (int i = 0; i < 8; i++) snprintf(names[i], 128, "%s.%d.%s", stem, l, local[i]);
}

static int bert_max_params(const ModelConfig *c) {
    return 8 + 16 * c->num_layers + 4;
}

static int bert_build(Model *m, LfError *err) {
    const ModelConfig *c = &m->cfg;
    Bert *b = m->body = calloc(1, sizeof *b);
    if (b) b->layers = calloc(c->num_layers, sizeof *b->layers);
    if (b) b->acts = calloc(c->num_layers, sizeof *b->acts);
    if (!b || !b->layers || !b->acts) return lf_fail(err, "out of memory");
    const char *p = m->arch->prefix;
    int C = c->hidden_size, F = c->ffn_size;
    b->wte = m->word_embedding =
        model_param(m, 1, c->vocab_size, C, "%s.embeddings.word_embeddings.weight", p);
    b->wte->pad_row = c->pad_token_id;
    b->wpe = model_param(m, 1, c->max_positions, C, "%s.embeddings.position_embeddings.weight", p);
    b->wtt = is_distilbert(m) ? NULL
                              : model_param(m, 1, c->type_vocab_size, C,
                                            "%s.embeddings.token_type_embeddings.weight", p);
    char module[160];
    snprintf(module, sizeof module, "%s.embeddings.LayerNorm", p);
    model_norm(m, &b->ln_emb, module, C, 1);
    for (int l = 0; l < c->num_layers; l++) {
        char names[8][128];
        layer_module_names(m, l, names);
        Layer *L = &b->layers[l];
        model_linear(m, &L->q, names[0], C, C, 1);
        model_linear(m, &L->k, names[1], C, C, 1);
        model_linear(m, &L->v, names[2], C, C, 1);
        L->qkv[0] = &L->q, L->qkv[1] = &L->k, L->qkv[2] = &L->v;
        model_share_input(L->qkv, 3);
        model_linear(m, &L->o, names[3], C, C, 1);
        model_norm(m, &L->ln_attn, names[6], C, 1);
        model_linear(m, &L->ffn_in, names[4], C, F, 1);
        model_linear(m, &L->ffn_out, names[5], F, C, 1);
        model_norm(m, &L->ln_ffn, names[7], C, 1);
    }
    model_linear(m, &b->pre, is_distilbert(m) ? "pre_classifier" : "bert.pooler.dense", C, C, 1);
    b->pre_act = is_distilbert(m) ? ACT_RELU : ACT_TANH;
    model_linear(m, &b->cls, "classifier", C, c->num_labels, 1);
    return 0;
}

static void bert_free(Model *m) {
    Bert *b = bert(m);
    if (b) free(b->layers), free(b->acts);
    free(b);
    m->body = NULL;
}

/* ------------------------------------------------------------------------------------ */
/* activations                                                                          */

static int layer_trains(const Layer *L) {
    const Linear *ls[6] = {&L->q, &L->k, &L->v, &L->o, &L->ffn_in, &L->ffn_out};
    for (int i = 0; i < 6; i++)
        if (linear_trains(ls[i])) return 1;
    return L->ln_attn.w->grad || L->ln_ffn.w->grad || L->ln_attn.b->grad || L->ln_ffn.b->grad;
}

/* Whether backward reaches the embeddings: their tables, or their norm's bias alone (lora.bias
 * all). */
static int embeddings_train(const Model *m, const Bert *b) {
    return model_embedding_trains(m) || b->ln_emb.b->grad;
}

/* A buffer that backward does not need (q, k and v too when attention saves copies of its
 * own; res_attn, ffn_pre and res_ffn under model_keeps_bf16, whose bf16 copies backward reads)
 * shares one of a few scratch buffers, chosen so that no op ever reads and writes the same one
 * (but the activation, in place): q S0, k S1, v S2, ctx S3, res_attn S0, h_attn S1, ffn_pre and
 * ffn_act F, res_ffn S0, layer outputs alternate between O0 and O1 (h0 is O1). S0..S3 are one
 * block of at least [N,F] floats, which backward also uses whole as an [N,F] buffer. Where
 * ffn_out reads the activation's output in bf16 (linear_reads_bf16), that is from S2 on, and
 * ffn_in's gradient from the block's start. Backward stops at the lowest layer that trains.
 * Under gradient checkpointing (plan_layer) a layer that backward reaches keeps its input x in
 * a buffer of its own, and all of them share one set of the rest. */
static void bert_plan(Model *m, Plan *pl) {
    const ModelConfig *c = &m->cfg;
    Bert *b = bert(m);
    size_t B = m->max_batch, T = m->max_len, N = B * T, C = c->hidden_size, F = c->ffn_size;
    size_t NH = c->num_heads, L = c->num_layers;
    b->lowest_trained_layer = embeddings_train(m, b) ? 0 : (int)L;
    for (int l = (int)L - 1; l >= 0; l--)
        if (layer_trains(&b->layers[l])) b->lowest_trained_layer = l;
    int low = b->lowest_trained_layer, any = m->n_grads > 0, emb_trains = embeddings_train(m, b);
    int ckpt = model_recomputes(m);
    size_t saved_n = model_attention_saved(m, 0);
    int half = model_keeps_bf16(m);
    float *block, *S[4], *Fs, *O[2], *lse, *saved, *mean, *rstd;
    PLAN_TAKE(pl, &block, 4 * N * C > N * F ? 4 * N * C : N * F, 1, NULL);
    for (int i = 0; i < 4; i++) S[i] = block ? block + i * N * C : NULL;
    PLAN_TAKE(pl, &Fs, N * F, 1, NULL);
    for (int i = 0; i < 2; i++) PLAN_TAKE(pl, &O[i], N * C, 1, NULL);
    PLAN_TAKE(pl, &lse, B * NH * T, 1, NULL);
    PLAN_TAKE(pl, &saved, saved_n, saved_n > 0 && low > 0, NULL); /* for layers that keep none */
    PLAN_TAKE(pl, &mean, N, 1, NULL);
    PLAN_TAKE(pl, &rstd, N, 1, NULL);

    int join = saved_n > 0; /* q, k, v side by side in S[0..2] where never kept */
    for (size_t l = 0; l < L; l++) join = join && linear_outputs_join(m, b->layers[l].qkv, 3);
    b->qkv_ld = (int)(join ? 3 * C : C);
    PLAN_TAKE(pl, &b->emb, N * C, emb_trains, S[0]);
    PLAN_TAKE(pl, &b->emb_mean, N, emb_trains, mean);
    PLAN_TAKE(pl, &b->emb_rstd, N, emb_trains, rstd);
    for (size_t l = 0; l < L; l++) {
        Layer *Ly = &b->layers[l];
        LayerActs *a = &b->acts[l];
        int bw = (int)l >= low; /* backward passes through this layer */
        /* the previous output (or h0) is this layer's x: kept when q/k/v train */
        float **x = l == 0 ? &b->h0 : &b->acts[l - 1].out;
        if (ckpt && bw) PLAN_TAKE(pl, x, N * C, 1, NULL); /* the checkpoint */
        plan_layer(pl, ckpt && bw);
        PLAN_TAKE_INPUT(pl, m, Ly->qkv, 3, ckpt && bw ? NULL : x, bw, O[(l + 1) % 2]);
        a->x = *x;
        PLAN_TAKE(pl, &a->q, N * C, bw && !saved_n, S[0]);
        PLAN_TAKE(pl, &a->k, N * C, bw && !saved_n, S[1]);
        PLAN_TAKE(pl, &a->v, N * C, bw && !saved_n, S[2]);
        if (join && a->q) a->k = a->q + C, a->v = a->q + 2 * C;
        PLAN_TAKE(pl, &a->lse, B * NH * T, bw, lse);
        size_t own =
            saved_n
                ? model_attention_saved(m, linear_keeps_copy(m, (Linear *const[]){&Ly->o}, 1, bw))
                : 0;
        PLAN_TAKE(pl, &a->att_saved, own, bw && saved_n, saved);
        if (saved_n) /* attention saved its own copy: only o may read ctx again */
            PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->o}, 1, &a->ctx, bw, S[3]);
        else
            PLAN_TAKE(pl, &a->ctx, N * C, bw, S[3]);
        linear_reads_attention_out(m, &Ly->o, a->att_saved);
        PLAN_TAKE(pl, &a->res_attn, N * C, bw && !half, S[0]);
        PLAN_TAKE_BF16(pl, &a->xh_attn, N * C, bw && half);
        PLAN_TAKE(pl, &a->mean_attn, N, bw, mean);
        PLAN_TAKE(pl, &a->rstd_attn, N, bw, rstd);
        PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->ffn_in}, 1, &a->h_attn, bw, S[1]);
        PLAN_TAKE(pl, &a->ffn_pre, N * F, bw && !half, Fs);
        PLAN_TAKE_BF16(pl, &a->ffn_pre_bf16, N * F, bw && half);
        PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->ffn_out}, 1, &a->ffn_act, bw, Fs);
        /* S[2] is free from the norm before ffn_in to the activation after it */
        linear_input_bf16(m, (Linear *const[]){&Ly->ffn_in}, 1, (uint16_t *)S[2]);
        linear_input_bf16(m, (Linear *const[]){&Ly->ffn_out}, 1, (uint16_t *)S[2]);
        Ly->ffn_in.dout_bf16 = linear_reads_bf16(m, &Ly->ffn_in) ? (uint16_t *)block : NULL;
        /* ffn_in's output from its GEMM in bf16: the activation's saved, or S[2], where the
         * activation's bf16 output goes in place if anywhere (its f32 one goes to F) */
        uint16_t *pre = a->ffn_pre_bf16 ? a->ffn_pre_bf16 : (uint16_t *)S[2];
        linear_output_bf16(m, (Linear *const[]){&Ly->ffn_in}, 1, pre);
        PLAN_TAKE(pl, &a->res_ffn, N * C, bw && !half, S[0]);
        PLAN_TAKE_BF16(pl, &a->xh_ffn, N * C, bw && half);
        PLAN_TAKE(pl, &a->mean_ffn, N, bw, mean);
        PLAN_TAKE(pl, &a->rstd_ffn, N, bw, rstd);
        plan_layer(pl, 0);
    }
    PLAN_TAKE(pl, &b->acts[L - 1].out, N * C, 0, O[(L + 1) % 2]);
    float **head[] = {&b->pooled, &b->pre_out, &b->pre_act_out, &b->head_in};
    for (int i = 0; i < 4; i++) PLAN_TAKE(pl, head[i], B * C, 1, NULL);
    /* Gradient buffers, only when something trains. Backward never reads the shared buffers (no
     * layer it reaches keeps anything there), so all but the layers' gradient d_a (in place:
     * LayerBackward) are those, each free while it is live: d_c O0 (ln_ffn to ln_attn), d_br O1
     * (a dropout's gradient), d_ffn F, d_ffn2 the block (until ffn_in), then d_ctx S1, d_q S2,
     * d_k S3, d_v O0, and after the layers d_r S0 (the embeddings' norm's input gradient). */
    float **dn[] = {&b->d_c,   &b->d_br, &b->d_ffn, &b->d_ffn2, &b->d_r,
                    &b->d_ctx, &b->d_q,  &b->d_k,   &b->d_v};
    float *reuse[] = {O[0], O[1], Fs, block, S[0], S[1], S[2], S[3], O[0]};
    for (int i = 0; i < 9; i++) PLAN_TAKE(pl, dn[i], 0, 0, any ? reuse[i] : NULL);
    for (size_t l = 0; l < L; l++) { /* o's and ffn_out's output gradients in bf16, if read so */
        Layer *Ly = &b->layers[l];
        Ly->o.dout_bf16 = linear_reads_bf16(m, &Ly->o) ? (uint16_t *)b->d_br : NULL;
        Ly->ffn_out.dout_bf16 = linear_reads_bf16(m, &Ly->ffn_out) ? (uint16_t *)b->d_br : NULL;
        linear_input_grad_bf16(m, &Ly->ffn_out, (uint16_t *)b->d_ffn); /* for the activation's */
    }
    PLAN_TAKE(pl, &b->d_a, N * C, any, NULL);
    PLAN_TAKE(pl, &b->d_head, 4 * B * C, any, NULL);
}

/* ------------------------------------------------------------------------------------ */
/* forward and backward, side by side                                                   */

/* Dropout sites: each (layer, site) pair draws from its own stream (model_site). */
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

/* BERT drops the attention output before the residual; DistilBERT does not. */
static float attn_out_dropout(const Model *m, Drop d) {
    return is_distilbert(m) ? 0.0f : d.hidden;
}

static void attention_forward(Model *m, const Layer *Ly, LayerActs *a, Drop d, uint64_t seed) {
    int NH = m->cfg.num_heads, HS = m->cfg.hidden_size / NH, ld = bert(m)->qkv_ld;
    uint16_t *ob = Ly->o.in_bf16; /* else o reads ctx */
    m->ops->attention_forward(ob ? NULL : a->ctx, ob, linear_input_ld(m, &Ly->o), a->lse,
                              a->att_saved, a->q, ld, a->k, a->v, ld, model_attention_mask(m), 0, 0,
                              NULL, model_attn_score(&m->cfg), d.attention, seed, m->scratch, m->B,
                              m->T, NH, NH, HS);
}

static void attention_backward(Model *m, const Layer *Ly, LayerActs *a, Drop d, uint64_t seed) {
    Bert *b = bert(m);
    int NH = m->cfg.num_heads, HS = m->cfg.hidden_size / NH;
    /* else q, k, v and ctx were saved by attention (q, k and v kept lie apart: C a row) */
    int kept = a->att_saved == NULL, C = NH * HS;
    m->ops->attention_backward(b->d_q, b->d_k, b->d_v, b->d_ctx, kept ? a->q : NULL,
                               kept ? a->k : NULL, kept ? a->v : NULL, C, C, kept ? a->ctx : NULL,
                               Ly->o.in_bf16, linear_input_ld(m, &Ly->o), a->lse, a->att_saved,
                               model_attention_mask(m), 0, 0, NULL, model_attn_score(&m->cfg),
                               d.attention, seed, m->scratch, m->B, m->T, NH, NH, HS, OPS_SET);
}

static void layer_forward(Model *m, int l, Drop d, int replay) {
    (void)replay; /* the same: no residual is left to this layer's ops */
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Layer *Ly = &bert(m)->layers[l];
    LayerActs *a = &bert(m)->acts[l];
    int N = m->B * m->T, F = c->ffn_size;
    uint64_t sites[3];
    linear_forward_group(m, Ly->qkv, (float *const[]){a->q, a->k, a->v}, 3, a->x, N, d.lora,
                         model_sites(sites, 3, l, SITE_Q));
    attention_forward(m, Ly, a, d, model_site(l, SITE_ATT));
    linear_forward(m, &Ly->o, a->res_attn, a->ctx, N, d.lora, model_site(l, SITE_O));
    /* h = LN(drop(o) + x); the sum stays where backward reads it instead of xhat */
    o->residual_norm_forward(a->h_attn, Ly->ffn_in.in_bf16, linear_input_ld(m, &Ly->ffn_in),
                             a->xh_attn ? NULL : a->res_attn, a->mean_attn, a->rstd_attn,
                             a->xh_attn, a->res_attn, a->x, attn_out_dropout(m, d),
                             model_site(l, SITE_O_DROP), Ly->ln_attn.w->value, Ly->ln_attn.b->value,
                             c->layer_norm_eps, N, c->hidden_size);
    linear_forward(m, &Ly->ffn_in, a->ffn_pre, a->h_attn, N, d.lora, model_site(l, SITE_FFN_IN));
    uint16_t *act_bf16 = Ly->ffn_out.in_bf16, *pre = Ly->ffn_in.out_bf16; /* else f32 */
    o->activation_forward(act_bf16 ? NULL : a->ffn_act, act_bf16, linear_input_ld(m, &Ly->ffn_out),
                          pre ? pre : a->ffn_pre_bf16, pre ? NULL : a->ffn_pre,
                          linear_output_bias(&Ly->ffn_in), c->activation, (size_t)N * F, F);
    linear_forward(m, &Ly->ffn_out, a->res_ffn, a->ffn_act, N, d.lora, model_site(l, SITE_FFN_OUT));
    o->residual_norm_forward(a->out, NULL, 0, a->xh_ffn ? NULL : a->res_ffn, a->mean_ffn,
                             a->rstd_ffn, a->xh_ffn, a->res_ffn, a->h_attn, d.hidden,
                             model_site(l, SITE_FFN_DROP), Ly->ln_ffn.w->value, Ly->ln_ffn.b->value,
                             c->layer_norm_eps, N, c->hidden_size);
}

/* grad: the gradient of the layer's output [N,C], then of the residual stream x + drop(o(..))
 * (the attention block's norm's input), then (when need_input) of its input x
 * (LayerBackward). */
static void layer_backward(Model *m, int l, float *grad, int need_input, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Bert *b = bert(m);
    Layer *Ly = &b->layers[l];
    LayerActs *a = &b->acts[l];
    int N = m->B * m->T, C = c->hidden_size, F = c->ffn_size;
    size_t NC = (size_t)N * C, NF = (size_t)N * F;
    /* FFN block: out = LN(drop(ffn_out(act(ffn_in(h)))) + h) */
    o->layernorm_backward(b->d_c, NULL, Ly->ln_ffn.w->grad, Ly->ln_ffn.b->grad, grad,
                          a->xh_ffn ? NULL : a->res_ffn, a->xh_ffn, Ly->ln_ffn.w->value,
                          a->mean_ffn, a->rstd_ffn, N, C, OPS_SET);
    const float *dy =
        linear_dout(m, &Ly->ffn_out, b->d_br, b->d_c, d.hidden, model_site(l, SITE_FFN_DROP), NC);
    linear_backward(m, &Ly->ffn_out, b->d_ffn, dy, a->ffn_act, N, d.lora,
                    model_site(l, SITE_FFN_OUT), OPS_SET);
    uint16_t *d_bf16 = Ly->ffn_in.dout_bf16;     /* else ffn_in rounds d_ffn2 */
    const uint16_t *dact = Ly->ffn_out.din_bf16; /* else d_ffn in f32 */
    o->activation_backward(d_bf16 ? NULL : b->d_ffn2, d_bf16, a->ffn_pre_bf16 ? NULL : a->ffn_pre,
                           a->ffn_pre_bf16, linear_output_bias(&Ly->ffn_in), dact ? NULL : b->d_ffn,
                           dact, c->activation, NF, F, OPS_SET);
    /* d_c (the residual's share of dh) now also takes the FFN branch's share */
    linear_backward(m, &Ly->ffn_in, b->d_c, b->d_ffn2, a->h_attn, N, d.lora,
                    model_site(l, SITE_FFN_IN), OPS_ADD);
    /* attention block: h = LN(drop(o(attention(q(x), k(x), v(x)))) + x) */
    /* without a dropout before the residual (DistilBERT) o's output gradient is the norm's input
     * gradient: written in bf16 by the norm, when o reads it so */
    float p_o = attn_out_dropout(m, d);
    uint16_t *o_bf16 = p_o <= 0 ? Ly->o.dout_bf16 : NULL;
    o->layernorm_backward(grad, o_bf16, Ly->ln_attn.w->grad, Ly->ln_attn.b->grad, b->d_c,
                          a->xh_attn ? NULL : a->res_attn, a->xh_attn, Ly->ln_attn.w->value,
                          a->mean_attn, a->rstd_attn, N, C, OPS_SET);
    const float *da =
        o_bf16 ? NULL : linear_dout(m, &Ly->o, b->d_br, grad, p_o, model_site(l, SITE_O_DROP), NC);
    linear_backward(m, &Ly->o, b->d_ctx, da, a->ctx, N, d.lora, model_site(l, SITE_O), OPS_SET);
    attention_backward(m, Ly, a, d, model_site(l, SITE_ATT));
    uint64_t sites[3];
    /* the input's gradient: the residual's, in grad, + the q, k, v GEMMs' */
    linear_backward_group(m, Ly->qkv, need_input ? grad : NULL,
                          (const float *const[]){b->d_q, b->d_k, b->d_v}, 3, a->x, N, d.lora,
                          model_sites(sites, 3, l, SITE_Q), OPS_ADD);
}

static void head_forward(Model *m, Drop d) {
    const Ops *o = m->ops;
    Bert *b = bert(m);
    int B = m->B, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    o->first_token_forward(b->pooled, b->acts[L - 1].out, B, m->T, C);
    linear_forward(m, &b->pre, b->pre_out, b->pooled, B, d.lora, model_site(L, SITE_PRE));
    o->activation_forward(b->pre_act_out, NULL, C, NULL, b->pre_out, NULL, b->pre_act,
                          (size_t)B * C, C);
    o->dropout_forward(b->head_in, b->pre_act_out, d.classifier, model_site(L, SITE_HEAD_DROP),
                       (size_t)B * C);
    linear_forward(m, &b->cls, m->logits, b->head_in, B, d.lora, model_site(L, SITE_CLS));
}

/* Returns the gradient of the last layer's output in d_a (when the body trains). */
static void head_backward(Model *m, Drop d) {
    const Ops *o = m->ops;
    Bert *b = bert(m);
    int B = m->B, C = m->cfg.hidden_size, L = m->cfg.num_layers;
    size_t BC = (size_t)B * C;
    float *d_in = b->d_head, *d_act = d_in + BC, *d_pre = d_act + BC, *d_pool = d_pre + BC;
    o->zero(b->d_head, 4 * BC * sizeof(float));
    linear_backward(m, &b->cls, d_in, m->dlogits, b->head_in, B, d.lora, model_site(L, SITE_CLS),
                    OPS_ADD);
    o->dropout_backward(d_act, NULL, d_in, d.classifier, model_site(L, SITE_HEAD_DROP), BC,
                        OPS_ADD);
    o->activation_backward(d_pre, NULL, b->pre_out, NULL, NULL, d_act, NULL, b->pre_act, BC, C,
                           OPS_ADD);
    int body = b->lowest_trained_layer < L;
    linear_backward(m, &b->pre, body ? d_pool : NULL, d_pre, b->pooled, B, d.lora,
                    model_site(L, SITE_PRE), OPS_ADD);
    if (!body) return;
    o->zero(b->d_a, (size_t)B * m->T * C * sizeof(float));
    o->first_token_backward(b->d_a, d_pool, B, m->T, C);
}

static void bert_forward(Model *m, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Bert *b = bert(m);
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, L = c->num_layers;
    o->embedding_forward(b->emb, m->ids, b->wtt ? m->types : NULL, NULL, b->wte->value, NULL,
                         b->wpe->value, b->wtt ? b->wtt->value : NULL, B, T, C);
    model_embedding_lora(m, b->emb, N);
    model_embedding_noise(m, b->emb, d); /* HF's on the word embeddings: the same sum */
    o->layernorm_forward(b->h0, b->emb_mean, b->emb_rstd, NULL, b->emb, b->ln_emb.w->value,
                         b->ln_emb.b->value, c->layer_norm_eps, N, C);
    if (d.hidden > 0)
        o->dropout_forward(b->h0, b->h0, d.hidden, model_site(L, SITE_EMB), (size_t)N * C);
    for (int l = 0; l < L; l++) layer_forward(m, l, d, 0);
    head_forward(m, d);
}

static void bert_backward(Model *m, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Bert *b = bert(m);
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, L = c->num_layers;
    size_t NC = (size_t)N * C;
    head_backward(m, d);
    int emb_trains = embeddings_train(m, b);
    layers_backward(m, layer_forward, layer_backward, b->lowest_trained_layer, emb_trains, b->d_a,
                    d);
    if (!emb_trains) return;
    const float *dh0 = dropout_grad(m, b->d_br, b->d_a, d.hidden, model_site(L, SITE_EMB), NC);
    /* the tables' and the adapter's gradient, or the norm's bias alone */
    float *d_r = model_embedding_trains(m) ? b->d_r : NULL;
    o->layernorm_backward(d_r, NULL, b->ln_emb.w->grad, b->ln_emb.b->grad, dh0, b->emb, NULL,
                          b->ln_emb.w->value, b->emb_mean, b->emb_rstd, N, C, OPS_SET);
    if (!d_r) return;
    o->embedding_backward(b->wte->grad, b->wpe->grad, b->wtt ? b->wtt->grad : NULL, d_r, m->ids,
                          b->wtt ? m->types : NULL, b->wte->pad_row, B, T, C);
    model_embedding_lora_backward(m, d_r);
}

const ArchImpl arch_distilbert = {
    .prefix = "distilbert",
    .default_targets = {"q_lin", "v_lin"},
    .task = TASK_CLASSIFICATION,
    .tasks = 1u << TASK_CLASSIFICATION,
    .max_params = bert_max_params,
    .build = bert_build,
    .free = bert_free,
    .plan = bert_plan,
    .forward = bert_forward,
    .backward = bert_backward,
};

const ArchImpl arch_bert = {
    .prefix = "bert",
    .default_targets = {"query", "value"},
    .task = TASK_CLASSIFICATION,
    .tasks = 1u << TASK_CLASSIFICATION,
    .max_params = bert_max_params,
    .build = bert_build,
    .free = bert_free,
    .plan = bert_plan,
    .forward = bert_forward,
    .backward = bert_backward,
};
