/* gpt2.c: GPT-2 as HF's GPT2LMHeadModel computes it (arch.h):
 *   h0 = drop_e(wte[ids] + wpe[t])
 *   per layer:  a = x + drop_r(c_proj(attention(q, k, v)))   q|k|v = c_attn(ln_1(x))
 *               out = a + drop_r(mlp.c_proj(gelu_tanh(c_fc(ln_2(a)))))
 *   hidden = ln_f(out_L); the objective applies the LM head, always tied to wte
 * with causal multi-head attention (dropout on its probabilities), biases everywhere and
 * pre-LayerNorm blocks. HF stores c_attn / c_proj / c_fc as Conv1D ([in,out] weights): they are
 * ordinary [out,in] linears here (model_conv1d), transposed only in checkpoints. Forward,
 * backward and the cached decode (generation; wpe at the cached positions) side by side, as in
 * llama.c; every dense layer goes through the core's LoRA-aware linear. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/arch.h"

typedef struct Layer {
    Norm ln_1;
    Linear c_attn, c_proj; /* attn.c_attn [C -> 3C], attn.c_proj */
    Norm ln_2;
    Linear c_fc, mlp_proj; /* mlp.c_fc [C -> F], mlp.c_proj [F -> C] */
} Layer;

/* What one layer keeps for backward (when backward reaches it). */
typedef struct LayerActs {
    float *x;                  /* [N,C] input (the residual stream) */
    float *n1, *mean1, *rstd1; /* [N,C] ln_1(x), [N], [N] */
    float *qkv;                /* [N,3C] c_attn(n1), rows [q | k | v] (kept if attention saves
                                  nothing) */
    float *lse;                /* [B,NH,T] attention's log-sum-exp per query row */
    float *att_saved;          /* what attention saves for backward (Ops.attention_saved) */
    float *ctx;                /* [N,C] attention output */
    float *a;                  /* [N,C] x + drop(c_proj(ctx)) */
    float *n2, *mean2, *rstd2; /* [N,C] ln_2(a), [N], [N] */
    float *fc, *act;           /* [N,F] c_fc(n2), gelu_tanh(fc) */
    /* model_keeps_bf16: instead of x, a and fc, the norms' xhat and fc in bf16 (and the
     * adapted linears' bf16 copies of n1, n2, act: Lora.xb) */
    uint16_t *xh1, *xh2, *fc_bf16;
    float *out; /* [N,C] a + drop(mlp.c_proj(act)) */
} LayerActs;

typedef struct Gpt2 {
    Param *wte, *wpe;
    Layer *layers;
    LayerActs *acts;
    Norm ln_f;
    Linear head; /* wte, tied (not a LoRA candidate) */
    int lowest_trained_layer;
    float *hf, *mean_f, *rstd_f; /* [N,C] ln_f(out_L), [N], [N] */
    /* gradient scratch; d_qkv [N,3C] rows [dq | dk | dv], as attention writes them */
    float *d_out, *d_n, *d_r, *d_ctx, *d_qkv, *d_fc, *d_act;
} Gpt2;

static Gpt2 *gpt2(const Model *m) {
    return (Gpt2 *)m->body;
}

static int head_size(const Model *m) {
    return m->cfg.hidden_size / m->cfg.num_heads;
}

/* ------------------------------------------------------------------------------------ */
/* tensors                                                                              */

static int gpt2_max_params(const ModelConfig *c) {
    return 4 + 12 * c->num_layers;
}

static int gpt2_build(Model *m, LfError *err) {
    const ModelConfig *c = &m->cfg;
    Gpt2 *b = m->body = calloc(1, sizeof *b);
    if (b) b->layers = calloc(c->num_layers, sizeof *b->layers);
    if (b) b->acts = calloc(c->num_layers, sizeof *b->acts);
    if (!b || !b->layers || !b->acts) return lf_fail(err, "out of memory");
    int C = c->hidden_size, F = c->ffn_size;
    /* HF's GPT-2 init: the residual branches' output projections at std / sqrt(2 L) */
    float proj_std = c->initializer_range / sqrtf(2.0f * c->num_layers);
    b->wte = m->embedding = m->word_embedding =
        model_param(m, 1, c->vocab_size, C, "transformer.wte.weight");
    b->wpe = model_param(m, 1, c->max_positions, C, "transformer.wpe.weight");
    for (int l = 0; l < c->num_layers; l++) {
        Layer *L = &b->layers[l];
        char name[128];
#define MODULE(what) (snprintf(name, sizeof name, "transformer.h.%d.%s", l, what), name)
        model_norm(m, &L->ln_1, MODULE("ln_1"), C, 1);
        model_conv1d(m, &L->c_attn, MODULE("attn.c_attn"), C, 3 * C);
        model_conv1d(m, &L->c_proj, MODULE("attn.c_proj"), C, C);
        model_norm(m, &L->ln_2, MODULE("ln_2"), C, 1);
        model_conv1d(m, &L->c_fc, MODULE("mlp.c_fc"), C, F);
        model_conv1d(m, &L->mlp_proj, MODULE("mlp.c_proj"), F, C);
        L->c_proj.w->init_std = L->mlp_proj.w->init_std = proj_std;
#undef MODULE
    }
    model_norm(m, &b->ln_f, "transformer.ln_f", C, 1);
    b->head = (Linear){.w = b->wte, .in = C, .out = c->vocab_size};
    m->head = &b->head;
    return 0;
}

static void gpt2_free(Model *m) {
    Gpt2 *b = gpt2(m);
    if (b) free(b->layers), free(b->acts);
    free(b);
    m->body = NULL;
}

/* ------------------------------------------------------------------------------------ */
/* activations                                                                          */

static int layer_trains(const Layer *L) {
    const Linear *ls[4] = {&L->c_attn, &L->c_proj, &L->c_fc, &L->mlp_proj};
    for (int i = 0; i < 4; i++)
        if (linear_trains(ls[i])) return 1;
    return L->ln_1.w->grad || L->ln_2.w->grad || L->ln_1.b->grad || L->ln_2.b->grad;
}

/* As llama_plan: a layer that backward reaches keeps everything it computed (but what attention
 * saves itself, and under model_keeps_bf16 the bf16 copies of its norms' and GELU's inputs); the
 * others share one set, their outputs alternating between two buffers; the last output is
 * always kept. Under gradient checkpointing as there too. */
static void gpt2_plan(Model *m, Plan *pl) {
    const ModelConfig *c = &m->cfg;
    Gpt2 *b = gpt2(m);
    size_t B = m->max_batch, T = m->max_len, N = B * T, C = c->hidden_size, F = c->ffn_size;
    size_t L = c->num_layers, lse_n = B * c->num_heads * T;
    b->lowest_trained_layer = model_embedding_trains(m) || b->wpe->grad ? 0 : (int)L;
    for (int l = (int)L - 1; l >= 0; l--)
        if (layer_trains(&b->layers[l])) b->lowest_trained_layer = l;
    int any = m->n_grads > 0, ckpt = model_recomputes(m);
    size_t saved_n = model_attention_saved(m, 0);
    int half = model_keeps_bf16(m);
    LayerActs sh; /* the shared set */
    float *O[2];
    PLAN_TAKE(pl, &O[0], N * C, 1, NULL);
    PLAN_TAKE(pl, &O[1], N * C, 1, NULL);
    size_t sizes[] = {N * C, N, N, 3 * N * C, lse_n, N * C, N * C, N * C, N, N, N * F, N * F};
    float **fields[] = {&sh.n1, &sh.mean1, &sh.rstd1, &sh.qkv,   &sh.lse, &sh.ctx,
                        &sh.a,  &sh.n2,    &sh.mean2, &sh.rstd2, &sh.fc,  &sh.act};
    int nf = (int)(sizeof sizes / sizeof *sizes);
    for (int i = 0; i < nf; i++) PLAN_TAKE(pl, fields[i], sizes[i], 1, NULL);
    int unkept = b->lowest_trained_layer > 0; /* some layer keeps none of its own */
    PLAN_TAKE(pl, &sh.att_saved, saved_n, saved_n > 0 && unkept, NULL);
    for (size_t l = 0; l < L; l++) {
        LayerActs *a = &b->acts[l];
        int bw = (int)l >= b->lowest_trained_layer;
        a->x = l ? b->acts[l - 1].out : NULL; /* layer 0's input: assigned below */
        plan_layer(pl, ckpt && bw);
        float **mine[] = {&a->n1, &a->mean1, &a->rstd1, &a->qkv,   &a->lse, &a->ctx,
                          &a->a,  &a->n2,    &a->mean2, &a->rstd2, &a->fc,  &a->act};
        for (int i = 0; i < nf; i++) {
            int qkv = i == 3, as_bf16 = i == 6 || i == 10;                  /* a, fc */
            int input = i == 0 || i == 7 || i == 11 || (i == 5 && saved_n); /* below */
            plan_take(pl, mine[i], sizes[i],
                      bw && !input && !(qkv && saved_n) && !(as_bf16 && half), *fields[i],
                      "gpt2 layer activation");
        }
        Layer *Ly = &b->layers[l]; /* n1, n2 and act: only their linears read them again */
        PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->c_attn}, 1, &a->n1, bw, sh.n1);
        PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->c_fc}, 1, &a->n2, bw, sh.n2);
        PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->mlp_proj}, 1, &a->act, bw, sh.act);
        /* ln_1's, ln_2's and the activation's outputs in bf16 where c_attn, c_fc and mlp_proj
         * read them so: the norms' into an adapted one's input copy, else in act's shared place
         * (each read before the next is written) */
        linear_input_bf16(m, (Linear *const[]){&Ly->c_attn}, 1, (uint16_t *)sh.act);
        linear_input_bf16(m, (Linear *const[]){&Ly->c_fc}, 1, (uint16_t *)sh.act);
        linear_input_bf16(m, (Linear *const[]){&Ly->mlp_proj}, 1, (uint16_t *)sh.act);
        if (saved_n) /* attention saved its own copy: only c_proj may read ctx again */
            PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->c_proj}, 1, &a->ctx, bw, sh.ctx);
        size_t own = saved_n ? model_attention_saved(
                                   m, linear_keeps_copy(m, (Linear *const[]){&Ly->c_proj}, 1, bw))
                             : 0;
        PLAN_TAKE(pl, &a->att_saved, own, bw && saved_n, sh.att_saved);
        linear_reads_attention_out(m, &Ly->c_proj, a->att_saved);
        PLAN_TAKE_BF16(pl, &a->xh1, N * C, bw && half);
        PLAN_TAKE_BF16(pl, &a->xh2, N * C, bw && half);
        PLAN_TAKE_BF16(pl, &a->fc_bf16, N * F, bw && half);
        /* c_fc's output from its GEMM in bf16: the activation's saved, or fc's shared place */
        uint16_t *fc = a->fc_bf16 ? a->fc_bf16 : (uint16_t *)sh.fc;
        linear_output_bf16(m, (Linear *const[]){&Ly->c_fc}, 1, fc);
        plan_layer(pl, 0);
        PLAN_TAKE(pl, &a->out, N * C, (bw && (!half || ckpt)) || l + 1 == L, O[l % 2]);
    }
    PLAN_TAKE(pl, &b->acts[0].x, N * C, 1, NULL); /* the embeddings */
    PLAN_TAKE(pl, &b->hf, N * C, 1, NULL);
    PLAN_TAKE(pl, &b->mean_f, N, 1, NULL);
    PLAN_TAKE(pl, &b->rstd_f, N, 1, NULL);
    m->hidden = b->hf;
    /* Gradient buffers. Backward never reads the shared set (no layer it reaches keeps
     * anything there), so four of them are its buffers (of the same size); but d_out, the
     * gradient carried from layer to layer, where a recomputed forward writes ctx. */
    float **dn[] = {&b->d_out, &b->d_n, &b->d_qkv, &b->d_fc, &b->d_act};
    float *reuse[] = {sh.ctx, sh.a, sh.qkv, sh.fc, sh.act};
    for (int i = 0; i < 5; i++)
        PLAN_TAKE(pl, dn[i], N * C, any && ckpt && !i, any ? reuse[i] : NULL);
    PLAN_TAKE(pl, &b->d_r, N * C, any, NULL);
    PLAN_TAKE(pl, &b->d_ctx, N * C, any, NULL);
    for (size_t l = 0; l < L; l++) { /* output gradients in bf16 where their linears read them so */
        Layer *Ly = &b->layers[l];
        Ly->c_fc.dout_bf16 = linear_reads_bf16(m, &Ly->c_fc) ? (uint16_t *)b->d_fc : NULL;
        Ly->c_proj.dout_bf16 = linear_reads_bf16(m, &Ly->c_proj) ? (uint16_t *)b->d_r : NULL;
        Ly->mlp_proj.dout_bf16 = linear_reads_bf16(m, &Ly->mlp_proj) ? (uint16_t *)b->d_r : NULL;
        linear_input_grad_bf16(m, &Ly->mlp_proj, (uint16_t *)b->d_act); /* for the activation's */
    }
}

/* The KV cache (generation): a position's keys, or its values, [C]. */
static size_t gpt2_cache_width(const Model *m) {
    return (size_t)m->cfg.hidden_size;
}

/* ------------------------------------------------------------------------------------ */
/* forward, backward and decode, side by side                                           */

enum { SITE_QKV, SITE_ATT, SITE_PROJ, SITE_PROJ_DROP, SITE_FC, SITE_MLP, SITE_MLP_DROP };
enum { SITE_EMB = 0 }; /* at layer L */

/* The norm of layer l's input (l = L: the final norm) over N rows, into out, or where the
 * linear next reads bf16 (Linear.in_bf16) there instead, mean, rstd and xh. The layer before left
 * its output as mlp.c_proj(..) alone: its dropout (p, the layer's mask) and residual join this pass
 * (residual_norm_forward: x = drop(mlp.c_proj(..)) + a, written in place, where backward and the
 * next residual read it): two launches and three passes over [N,C] fewer than a dropout and an add
 * of their own. Layer 0's input, and a replay's (LayerForward), is x complete. */
static void input_norm(Model *m, int l, float *out, const Linear *next, float *mean, float *rstd,
                       uint16_t *xh, const Norm *norm, int N, float p, int replay) {
    const ModelConfig *c = &m->cfg;
    LayerActs *before = l ? &gpt2(m)->acts[l - 1] : NULL;
    int add = before && !replay;
    uint16_t *out_bf16 = next ? next->in_bf16 : NULL;
    m->ops->residual_norm_forward(
        out_bf16 ? NULL : out, out_bf16, next ? linear_input_ld(m, next) : 0,
        add ? before->out : NULL, mean, rstd, xh, before ? before->out : gpt2(m)->acts[0].x,
        add ? before->a : NULL, p, model_site(l - 1, SITE_MLP_DROP), norm->w->value, norm->b->value,
        c->layer_norm_eps, N, c->hidden_size);
}

/* The rest of layer l once attention has written a->ctx [N rows]: a = x + drop(c_proj(ctx)),
 * then out = mlp.c_proj(gelu_tanh(c_fc(n2))), n2 = ln_2(a), without its dropout and residual,
 * which the next norm applies (input_norm). A replay leaves out (the next layer's complete
 * input) alone: backward reads nothing of mlp.c_proj's forward but its LoRA branch's. */
static void layer_forward_tail(Model *m, int l, int N, Drop d, int replay) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Layer *Ly = &gpt2(m)->layers[l];
    LayerActs *a = &gpt2(m)->acts[l];
    linear_forward(m, &Ly->c_proj, a->a, a->ctx, N, d.lora, model_site(l, SITE_PROJ));
    uint16_t *n2_bf16 = Ly->c_fc.in_bf16; /* else c_fc reads n2 */
    o->residual_norm_forward(n2_bf16 ? NULL : a->n2, n2_bf16, linear_input_ld(m, &Ly->c_fc), a->a,
                             a->mean2, a->rstd2, a->xh2, a->a, a->x, d.hidden,
                             model_site(l, SITE_PROJ_DROP), Ly->ln_2.w->value, Ly->ln_2.b->value,
                             c->layer_norm_eps, N, c->hidden_size);
    linear_forward(m, &Ly->c_fc, a->fc, a->n2, N, d.lora, model_site(l, SITE_FC));
    uint16_t *act_bf16 = Ly->mlp_proj.in_bf16, *fc = Ly->c_fc.out_bf16; /* else act; fc */
    o->activation_forward(act_bf16 ? NULL : a->act, act_bf16, linear_input_ld(m, &Ly->mlp_proj),
                          fc ? fc : a->fc_bf16, fc ? NULL : a->fc, linear_output_bias(&Ly->c_fc),
                          c->activation, (size_t)N * c->ffn_size, c->ffn_size);
    linear_forward(m, &Ly->mlp_proj, replay ? NULL : a->out, a->act, N, d.lora,
                   model_site(l, SITE_MLP));
}

/* The attention's inputs of layer l's N rows, a->qkv = c_attn(ln_1(x)): rows [q | k | v], 3C
 * apart, which attention reads (and backward writes the gradients of) as they lie. */
static float *layer_forward_qkv(Model *m, int l, int N, Drop d, int replay) {
    Layer *Ly = &gpt2(m)->layers[l];
    LayerActs *a = &gpt2(m)->acts[l];
    input_norm(m, l, a->n1, &Ly->c_attn, a->mean1, a->rstd1, a->xh1, &Ly->ln_1, N, d.hidden,
               replay);
    linear_forward(m, &Ly->c_attn, a->qkv, a->n1, N, d.lora, model_site(l, SITE_QKV));
    return a->qkv;
}

static void layer_forward(Model *m, int l, Drop d, int replay) {
    LayerActs *a = &gpt2(m)->acts[l];
    int B = m->B, T = m->T, N = B * T, NH = m->cfg.num_heads, C = m->cfg.hidden_size;
    float *qkv = layer_forward_qkv(m, l, N, d, replay);
    const Linear *proj = &gpt2(m)->layers[l].c_proj;
    uint16_t *ob = proj->in_bf16; /* else c_proj reads ctx */
    m->ops->attention_forward(
        ob ? NULL : a->ctx, ob, linear_input_ld(m, proj), a->lse, a->att_saved, qkv, 3 * C, qkv + C,
        qkv + 2 * C, 3 * C, model_attention_mask(m), 1, 0, NULL, model_attn_score(&m->cfg),
        d.attention, model_site(l, SITE_ATT), m->scratch, B, T, NH, NH, head_size(m));
    layer_forward_tail(m, l, N, d, replay);
}

/* Generation: layer l on the n new tokens at positions m->positions (rows 0..n-1 of a->x),
 * read on the device: their keys and values go into the layer's cache, their queries attend to
 * its first m->cache_keys positions up to their own; the rest as layer_forward in eval mode. */
static void layer_decode(Model *m, int l, int n) {
    const Ops *o = m->ops;
    LayerActs *a = &gpt2(m)->acts[l];
    int NH = m->cfg.num_heads, C = m->cfg.hidden_size;
    CacheLayer kv = model_cache_layer(m, l);
    float *qkv = layer_forward_qkv(m, l, n, (Drop){0}, 0);
    o->cache_write(kv.k, kv.v, NULL, 0, qkv + C, qkv + 2 * C, 3 * C, m->positions, kv.seq,
                   kv.stride, NULL, n, NH, NH, head_size(m));
    const Linear *proj = &gpt2(m)->layers[l].c_proj;
    o->attention_cached(a->ctx, proj->in_bf16, linear_input_ld(m, proj), qkv, 3 * C, kv.k, kv.v,
                        m->positions, kv.seq, kv.stride, 0, model_attn_score(&m->cfg),
                        m->cache_scratch, n, m->cache_keys, NH, NH, head_size(m));
    layer_forward_tail(m, l, n, (Drop){0}, 0);
}

/* grad: the gradient of the layer's output [N,C], then of the residual stream a, then (when
 * need_input) of its input x (LayerBackward). */
static void layer_backward(Model *m, int l, float *grad, int need_input, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Gpt2 *b = gpt2(m);
    Layer *Ly = &b->layers[l];
    LayerActs *a = &b->acts[l];
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, NH = c->num_heads;
    size_t NC = (size_t)N * C, NF = (size_t)N * c->ffn_size;
    /* MLP: out = a + drop(mlp.c_proj(gelu_tanh(c_fc(n2)))), n2 = ln_2(a) */
    const float *dy =
        linear_dout(m, &Ly->mlp_proj, b->d_r, grad, d.hidden, model_site(l, SITE_MLP_DROP), NC);
    linear_backward(m, &Ly->mlp_proj, b->d_act, dy, a->act, N, d.lora, model_site(l, SITE_MLP),
                    OPS_SET);
    uint16_t *d_bf16 = Ly->c_fc.dout_bf16;        /* else c_fc rounds d_fc */
    const uint16_t *dact = Ly->mlp_proj.din_bf16; /* else d_act in f32 */
    o->activation_backward(d_bf16 ? NULL : b->d_fc, d_bf16, a->fc_bf16 ? NULL : a->fc, a->fc_bf16,
                           linear_output_bias(&Ly->c_fc), dact ? NULL : b->d_act, dact,
                           c->activation, NF, c->ffn_size, OPS_SET);
    linear_backward(m, &Ly->c_fc, b->d_n, b->d_fc, a->n2, N, d.lora, model_site(l, SITE_FC),
                    OPS_SET);
    o->layernorm_backward(grad, NULL, Ly->ln_2.w->grad, Ly->ln_2.b->grad, b->d_n,
                          a->xh2 ? NULL : a->a, a->xh2, Ly->ln_2.w->value, a->mean2, a->rstd2, N, C,
                          OPS_ADD); /* + the residual's */
    /* attention: a = x + drop(c_proj(attention(q, k, v))), q|k|v = c_attn(n1), n1 = ln_1(x) */
    dy = linear_dout(m, &Ly->c_proj, b->d_r, grad, d.hidden, model_site(l, SITE_PROJ_DROP), NC);
    linear_backward(m, &Ly->c_proj, b->d_ctx, dy, a->ctx, N, d.lora, model_site(l, SITE_PROJ),
                    OPS_SET);
    int kept = a->att_saved == NULL; /* else q, k, v and ctx were saved by attention */
    float *qkv = kept ? a->qkv : NULL, *dqkv = b->d_qkv;
    o->attention_backward(dqkv, dqkv + C, dqkv + 2 * C, b->d_ctx, qkv, kept ? qkv + C : NULL,
                          kept ? qkv + 2 * C : NULL, 3 * C, 3 * C, kept ? a->ctx : NULL,
                          Ly->c_proj.in_bf16, linear_input_ld(m, &Ly->c_proj), a->lse, a->att_saved,
                          model_attention_mask(m), 1, 0, NULL, model_attn_score(c), d.attention,
                          model_site(l, SITE_ATT), m->scratch, B, T, NH, NH, head_size(m), OPS_SET);
    linear_backward(m, &Ly->c_attn, b->d_n, b->d_qkv, a->n1, N, d.lora, model_site(l, SITE_QKV),
                    OPS_SET);
    o->layernorm_backward(need_input ? grad : NULL, NULL, Ly->ln_1.w->grad, Ly->ln_1.b->grad,
                          b->d_n, a->xh1 ? NULL : a->x, a->xh1, Ly->ln_1.w->value, a->mean1,
                          a->rstd1, N, C, OPS_ADD); /* + the residual's */
}

static void gpt2_forward(Model *m, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Gpt2 *b = gpt2(m);
    int N = m->B * m->T, C = c->hidden_size, L = c->num_layers;
    float *x = b->acts[0].x;
    o->embedding_forward(x, m->ids, NULL, NULL, b->wte->value, b->wte->packed, b->wpe->value, NULL,
                         m->B, m->T, C);
    model_embedding_lora(m, x, N);
    model_embedding_noise(m, x, d); /* HF's on wte's output: the same sum */
    if (d.embedding > 0)
        o->dropout_forward(x, x, d.embedding, model_site(L, SITE_EMB), (size_t)N * C);
    for (int l = 0; l < L; l++) layer_forward(m, l, d, 0);
    input_norm(m, L, b->hf, NULL, b->mean_f, b->rstd_f, NULL, &b->ln_f, N, d.hidden, 0);
}

static void gpt2_backward(Model *m, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Gpt2 *b = gpt2(m);
    int N = m->B * m->T, C = c->hidden_size, L = c->num_layers;
    size_t NC = (size_t)N * C;
    int body = b->lowest_trained_layer < L;
    if (!body && !b->ln_f.w->grad) return; /* the head's own gradient came with the loss */
    o->layernorm_backward(b->d_out, NULL, b->ln_f.w->grad, b->ln_f.b->grad, m->dhidden,
                          b->acts[L - 1].out, NULL, b->ln_f.w->value, b->mean_f, b->rstd_f, N, C,
                          OPS_SET);
    int emb_trains = model_embedding_trains(m) || b->wpe->grad;
    layers_backward(m, layer_forward, layer_backward, b->lowest_trained_layer, emb_trains, b->d_out,
                    d);
    if (!emb_trains) return;
    const float *de = dropout_grad(m, b->d_r, b->d_out, d.embedding, model_site(L, SITE_EMB), NC);
    o->embedding_backward(b->wte->grad, b->wpe->grad, NULL, de, m->ids, NULL, -1, m->B, m->T, C);
    model_embedding_lora_backward(m, de);
}

/* The new tokens' embeddings: wte[ids] + wpe at their positions (m->positions). */
static void gpt2_decode(Model *m, int n) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Gpt2 *b = gpt2(m);
    int C = c->hidden_size, L = c->num_layers;
    o->embedding_forward(b->acts[0].x, m->ids, NULL, m->positions, b->wte->value, b->wte->packed,
                         b->wpe->value, NULL, 1, n, C);
    model_embedding_lora(m, b->acts[0].x, n);
    for (int l = 0; l < L; l++) layer_decode(m, l, n);
    input_norm(m, L, b->hf, NULL, b->mean_f, b->rstd_f, NULL, &b->ln_f, n, 0.0f, 0);
}

const ArchImpl arch_gpt2 = {
    .prefix = "transformer",
    .default_targets = {"c_attn", NULL},
    .task = TASK_CAUSAL_LM,
    .tasks = 1u << TASK_CAUSAL_LM | 1u << TASK_DPO | 1u << TASK_RLOO | 1u << TASK_GRPO,
    .max_params = gpt2_max_params,
    .build = gpt2_build,
    .free = gpt2_free,
    .plan = gpt2_plan,
    .forward = gpt2_forward,
    .backward = gpt2_backward,
    .cache_width = gpt2_cache_width,
    .decode = gpt2_decode,
};
