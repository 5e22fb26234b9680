/* llama.c: the Llama family of decoders (Llama 2/3, SmolLM2, Qwen2/2.5, Qwen3, Gemma 2/3, Phi-3,
 * ...) as HF's LlamaForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM, Gemma3ForCausalLM and
 * Phi3ForCausalLM compute it (arch.h):
 *   h0 = wte[ids]                                                      (Gemma: * sqrt(C))
 *   per layer:  a = x + o(attention(rope(q(n1)), rope(k(n1)), v(n1)))   n1 = rmsnorm(x)
 *               (Qwen3, Gemma: rope(q_norm(q(n1))), rope(k_norm(k(n1))), an RMS norm over each
 *               head; Gemma: a = x + rmsnorm(o(..)))
 *               out = a + down(silu(gate(n2)) * up(n2))                n2 = rmsnorm(a)
 *               (Gemma: out = a + rmsnorm(down(gelu(gate(n2)) * up(n2))), its GeGLU)
 *   hidden = rmsnorm(out_L); the objective applies lm_head (tied to wte or its own weight), or
 *   a reward model's score (LlamaForSequenceClassification, one label). Gemma's RMS norms
 *   multiply by 1 + their weights (model_norm_plus_one)
 * with causal attention over grouped KV heads (NKV <= NH) of head_dim values (hidden / heads, or
 * the config's: NH * HS need not be the width), RoPE on q and k, a sliding window in some layers
 * (Mistral: every layer; Qwen2 / Qwen3 / SmolLM3 / Gemma: per layer; model_layer_window), RoPE in
 * all layers but SmolLM3's NoPE ones (layer_rope; Gemma's windowed layers with a base of their
 * own), no biases (Qwen2: q's,
 * k's and v's) and no dropout but attention's (and LoRA's). Phi-3 stores q, k, v as one linear
 * and gate, up as one (arch_fuses_projections): the same products, one GEMM each, which the other
 * models run too where their members lie side by side (linear_outputs_join). RoPE's longrope
 * (Phi-3) has frequencies of its own for sequences past the original context (layer_rope). Forward,
 * backward and the cached
 * decode (generation: one token at a time against each layer's cached keys and values) side by
 * side, as in bert.c; every dense layer goes through the core's LoRA-aware linear. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/arch.h"

/* Phi-3's q is its qkv_proj [q | k | v] and gate its gate_up_proj [gate | up]; its k, v and up
 * unused (the groups qkv and gate_up one member each) */
typedef struct Layer {
    Norm ln_attn;
    Linear q, k, v, o;
    Norm q_norm, k_norm;              /* Qwen3's and Gemma's, over each head (else w NULL) */
    Norm attn_out_norm, mlp_out_norm; /* Gemma's, before the residual adds (else w NULL) */
    Norm ln_ffn;
    Linear gate, up, down;
    Linear *qkv[3], *gate_up[2]; /* the linears that read one input (linear_forward_group) */
    int n_qkv, n_gate_up;        /* 3 and 2, or 1 each where fused */
} Layer;

/* What one layer keeps for backward (when backward reaches it). q and k hold the rotated
 * values attention saw. */
typedef struct LayerActs {
    float *x;               /* [N,C] input (the residual stream) */
    float *n1, *rstd1;      /* [N,C] rmsnorm(x), [N] */
    float *q, *k, *v;       /* [N,NH*HS], [N,NKV*HS] x2 (kept if attention saves nothing) */
    float *q_raw, *k_raw;   /* Qwen3: [N*NH,HS], [N*NKV,HS] q and k before their head norms */
    float *rstd_q, *rstd_k; /* (q, k: after), and the norms' [N*NH], [N*NKV] */
    float *lse;             /* [B,NH,T] attention's log-sum-exp per query row */
    float *att_saved;       /* what attention saves for backward (Ops.attention_saved) */
    float *ctx;             /* [N,NH*HS] attention output */
    float *a;               /* [N,C] x + o(ctx) */
    float *n2, *rstd2;      /* [N,C] rmsnorm(a), [N] */
    float *gate, *up, *act; /* [N,F] */
    float *out;             /* [N,C] a + down(act) */
    /* Gemma: o's and down's outputs [N,C] before their norms (each may be a shared buffer
     * where its bf16 xhat is kept: xh_o, xh_d), and the norms' rstd [N] */
    float *o_raw, *rstd_o, *d_raw, *rstd_d;
    /* model_keeps_bf16: instead of x, a, gate and up, the norms' xhat and [gate | up] in bf16
     * (and the adapted linears' bf16 copies of n1, n2, act: Lora.xb) */
    uint16_t *xh1, *xh2, *gate_up_bf16, *xh_o, *xh_d;
} LayerActs;

typedef struct Llama {
    Param *wte;
    Layer *layers;
    LayerActs *acts;
    Norm ln_f;
    Linear head; /* lm_head: its own weight, or wte's (tied; then not a LoRA candidate); a
                    reward model's score [1,C] */
    int lowest_trained_layer;
    RopeFreqs rope;       /* from the config's rope_theta and rope_scaling */
    RopeFreqs rope_local; /* Gemma's windowed layers': rope_local_theta's (else half 0) */
    RopeFreqs rope_long;  /* longrope's past original_max_positions (else half 0) */
    float *hf, *rstd_f;   /* [N,C] rmsnorm(out_L), [N] */
    /* gradient scratch */
    float *d_out, *d_n, *d_ctx, *d_q, *d_k, *d_v, *d_f, *d_g, *d_u;
    uint16_t *d_out_bf16; /* d_out in bf16 for o and down without LoRA (Linear.dout_bf16) */
    /* rows apart: q's, k's and v's (NH*HS, NKV*HS; or rows [q | k | v] where one GEMM writes
     * them side by side: linear_outputs_join), gate's and up's (F, or rows [gate | up] of 2F) */
    int q_ld, kv_ld, gate_up_ld;
    int qk_norm; /* Qwen3, Gemma 3 */
    int gemma;   /* Gemma's norms after attention and the MLP, and embeddings times sqrt(C) */
    int fused;   /* Phi-3's qkv_proj and gate_up_proj */
} Llama;

static Llama *llama(const Model *m) {
    return (Llama *)m->body;
}

static int head_size(const Model *m) {
    return model_head_size(&m->cfg);
}

/* Layer l's RoPE for sequences of len positions, or NULL for a layer without (SmolLM3's NoPE
 * layers): Gemma's windowed layers have their own; longrope's long factors serve sequences past
 * original_max_positions (transformers picks by a forward's positions, llama.cpp by its context:
 * loraft by the batch's length, or the KV cache's in generation). */
static const RopeFreqs *layer_rope(const Model *m, int l, int len) {
    const Llama *b = llama(m);
    if (!model_layer_rope(&m->cfg, l)) return NULL;
    if (b->rope_long.half && len > m->cfg.rope_scaling.original_max_positions) return &b->rope_long;
    return b->rope_local.half && model_layer_window(&m->cfg, l) ? &b->rope_local : &b->rope;
}

/* ------------------------------------------------------------------------------------ */
/* tensors                                                                              */

static int llama_max_params(const ModelConfig *c) {
    return 3 + 16 * c->num_layers;
}

/* An RMS norm of the family: Gemma's multiply by 1 + their weights */
static void add_norm(Model *m, Norm *n, const char *module, int C) {
    if (llama(m)->gemma)
        model_norm_plus_one(m, n, module, C);
    else
        model_norm(m, n, module, C, 0);
}

static int llama_build(Model *m, LfError *err) {
    const ModelConfig *c = &m->cfg;
    Llama *b = m->body = calloc(1, sizeof *b);
    if (b) b->layers = calloc(c->num_layers, sizeof *b->layers);
    if (b) b->acts = calloc(c->num_layers, sizeof *b->acts);
    if (!b || !b->layers || !b->acts) return lf_fail(err, "out of memory");
    int C = c->hidden_size, F = c->ffn_size, HS = head_size(m);
    int QC = c->num_heads * HS, KC = c->num_kv_heads * HS, qkv_bias = c->arch == ARCH_QWEN2;
    b->gemma = arch_is_gemma(c->arch);
    b->qk_norm = c->arch == ARCH_QWEN3 || c->arch == ARCH_GEMMA3;
    b->fused = arch_fuses_projections(c->arch);
    model_rope_freqs(c, &b->rope);
    model_rope_freqs_local(c, &b->rope_local);
    model_rope_freqs_long(c, &b->rope_long);
    b->wte = m->embedding = m->word_embedding =
        model_param(m, 1, c->vocab_size, C, "model.embed_tokens.weight");
    b->wte->pad_row = c->pad_token_id;
    for (int l = 0; l < c->num_layers; l++) {
        Layer *L = &b->layers[l];
        char name[128];
#define MODULE(what) (snprintf(name, sizeof name, "model.layers.%d.%s", l, what), name)
        add_norm(m, &L->ln_attn, MODULE("input_layernorm"), C);
        if (b->fused) {
            model_linear(m, &L->q, MODULE("self_attn.qkv_proj"), C, QC + 2 * KC, 0);
        } else {
            model_linear(m, &L->q, MODULE("self_attn.q_proj"), C, QC, qkv_bias);
            model_linear(m, &L->k, MODULE("self_attn.k_proj"), C, KC, qkv_bias);
            model_linear(m, &L->v, MODULE("self_attn.v_proj"), C, KC, qkv_bias);
        }
        model_linear(m, &L->o, MODULE("self_attn.o_proj"), QC, C, 0);
        if (b->qk_norm) add_norm(m, &L->q_norm, MODULE("self_attn.q_norm"), HS);
        if (b->qk_norm) add_norm(m, &L->k_norm, MODULE("self_attn.k_norm"), HS);
        if (b->gemma) { /* its post_attention_layernorm follows attention, not the MLP's */
            add_norm(m, &L->attn_out_norm, MODULE("post_attention_layernorm"), C);
            add_norm(m, &L->ln_ffn, MODULE("pre_feedforward_layernorm"), C);
            add_norm(m, &L->mlp_out_norm, MODULE("post_feedforward_layernorm"), C);
        } else {
            add_norm(m, &L->ln_ffn, MODULE("post_attention_layernorm"), C);
        }
        if (b->fused) {
            model_linear(m, &L->gate, MODULE("mlp.gate_up_proj"), C, 2 * F, 0);
        } else {
            model_linear(m, &L->gate, MODULE("mlp.gate_proj"), C, F, 0);
            model_linear(m, &L->up, MODULE("mlp.up_proj"), C, F, 0);
        }
        model_linear(m, &L->down, MODULE("mlp.down_proj"), F, C, 0);
#undef MODULE
        L->qkv[0] = &L->q, L->qkv[1] = &L->k, L->qkv[2] = &L->v;
        L->gate_up[0] = &L->gate, L->gate_up[1] = &L->up;
        L->n_qkv = b->fused ? 1 : 3, L->n_gate_up = b->fused ? 1 : 2;
        model_share_input(L->qkv, L->n_qkv);
        model_share_input(L->gate_up, L->n_gate_up);
    }
    add_norm(m, &b->ln_f, "model.norm", C);
    m->cfg.score_head = m->spec.task == TASK_REWARD; /* what a merged model's config says */
    if (m->cfg.score_head) { /* LlamaForSequenceClassification with num_labels 1 */
        m->cfg.num_labels = 1;
        model_linear(m, &b->head, "score", C, 1, 0);
    } else if (c->tie_word_embeddings)
        b->head = (Linear){.w = b->wte, .in = C, .out = c->vocab_size};
    else
        model_linear(m, &b->head, "lm_head", C, c->vocab_size, 0);
    m->head = &b->head;
    return 0;
}

static void llama_free(Model *m) {
    Llama *b = llama(m);
    if (b) free(b->layers), free(b->acts);
    free(b);
    m->body = NULL;
}

/* ------------------------------------------------------------------------------------ */
/* activations                                                                          */

static int layer_trains(const Layer *L) {
    for (int i = 0; i < L->n_qkv; i++)
        if (linear_trains(L->qkv[i])) return 1;
    for (int i = 0; i < L->n_gate_up; i++)
        if (linear_trains(L->gate_up[i])) return 1;
    if (linear_trains(&L->o) || linear_trains(&L->down)) return 1;
    int heads = L->q_norm.w && (L->q_norm.w->grad || L->k_norm.w->grad);
    int outs = L->attn_out_norm.w && (L->attn_out_norm.w->grad || L->mlp_out_norm.w->grad);
    return L->ln_attn.w->grad || L->ln_ffn.w->grad || heads || outs;
}

/* Whether llama_plan's activation field i exists: the head norms' (13..16), Gemma's (17..) */
static int field_wanted(int i, int qk_norm, int gemma) {
    return i < 13 || (i < 17 ? qk_norm : gemma);
}

/* A layer that backward reaches keeps everything it computed (but what attention saves itself,
 * and under model_keeps_bf16 the bf16 copies of its norms' and the gated activation's inputs); the
 * others share one set of buffers, their outputs alternating between two (a layer reads its input
 * while it writes its output). The last layer's output is always kept: the final norm's
 * backward reads it. Under gradient checkpointing (plan_layer) a layer that backward reaches
 * keeps its output, the next one's input, and all of them share one set of the rest. */
static void llama_plan(Model *m, Plan *pl) {
    const ModelConfig *c = &m->cfg;
    Llama *b = llama(m);
    size_t B = m->max_batch, T = m->max_len, N = B * T, C = c->hidden_size, F = c->ffn_size;
    size_t HS = head_size(m), QC = c->num_heads * HS, KC = c->num_kv_heads * HS;
    size_t AC = QC > C ? QC : C; /* ctx's room: attention's output, and d_out's place */
    size_t L = c->num_layers, lse_n = B * c->num_heads * T, NQ = N * c->num_heads;
    int qkn = b->qk_norm, gemma = b->gemma;
    b->lowest_trained_layer = model_embedding_trains(m) ? 0 : (int)L;
    for (int l = (int)L - 1; l >= 0; l--)
        if (layer_trains(&b->layers[l])) b->lowest_trained_layer = l;
    int any = m->n_grads > 0, ckpt = model_recomputes(m);
    size_t saved_n = model_attention_saved(m, 0);
    int half = model_keeps_bf16(m);
    LayerActs sh; /* the shared set */
    float *O[2];
    PLAN_TAKE(pl, &O[0], N * C, 1, NULL);
    PLAN_TAKE(pl, &O[1], N * C, 1, NULL);
    /* side by side, one GEMM's outputs, where never kept in f32: gate and up under bf16 (kept
     * as bf16, below), q, k and v where attention saves its own copies; always where fused */
    int fused = b->fused, join = half || fused, join_qkv = (half && saved_n) || fused;
    for (size_t l = 0; l < L && !fused; l++) {
        join = join && linear_outputs_join(m, b->layers[l].gate_up, 2);
        join_qkv = join_qkv && linear_outputs_join(m, b->layers[l].qkv, 3);
    }
    b->q_ld = (int)(join_qkv ? QC + 2 * KC : QC), b->kv_ld = (int)(join_qkv ? QC + 2 * KC : KC);
    b->gate_up_ld = (int)(join ? 2 * F : F);
    size_t sizes[] = {N * C,
                      N,
                      N * b->q_ld,
                      KC * N,
                      KC * N,
                      lse_n,
                      N * AC,
                      N * C,
                      N * C,
                      N,
                      N * b->gate_up_ld,
                      N * F,
                      N * F,
                      N * QC,
                      N * KC,
                      NQ,
                      N * c->num_kv_heads,
                      N * C,
                      N,
                      N * C,
                      N};
    float **fields[] = {&sh.n1,     &sh.rstd1, &sh.q,     &sh.k,      &sh.v,      &sh.lse,
                        &sh.ctx,    &sh.a,     &sh.n2,    &sh.rstd2,  &sh.gate,   &sh.up,
                        &sh.act,    &sh.q_raw, &sh.k_raw, &sh.rstd_q, &sh.rstd_k, &sh.o_raw,
                        &sh.rstd_o, &sh.d_raw, &sh.rstd_d};
    int nf = (int)(sizeof sizes / sizeof *sizes);
    for (int i = 0; i < nf; i++) {
        int inside = (join_qkv && (i == 3 || i == 4)) || (join && i == 11); /* k, v; up */
        PLAN_TAKE(pl, fields[i], sizes[i], !inside && field_wanted(i, qkn, gemma), NULL);
    }
    if (join_qkv) sh.k = sh.q ? sh.q + QC : NULL, sh.v = sh.q ? sh.q + QC + KC : NULL;
    if (join) sh.up = sh.gate ? sh.gate + F : NULL;
    int unkept = b->lowest_trained_layer > 0; /* some layer keeps none of its own */
    PLAN_TAKE(pl, &sh.att_saved, saved_n, saved_n > 0 && unkept, NULL);
    for (size_t l = 0; l < L; l++) {
        LayerActs *a = &b->acts[l];
        int bw = (int)l >= b->lowest_trained_layer;
        a->x = l ? b->acts[l - 1].out : NULL; /* layer 0's input: assigned below */
        plan_layer(pl, ckpt && bw);
        float **mine[] = {&a->n1,     &a->rstd1, &a->q,     &a->k,      &a->v,      &a->lse,
                          &a->ctx,    &a->a,     &a->n2,    &a->rstd2,  &a->gate,   &a->up,
                          &a->act,    &a->q_raw, &a->k_raw, &a->rstd_q, &a->rstd_k, &a->o_raw,
                          &a->rstd_o, &a->d_raw, &a->rstd_d};
        for (int i = 0; i < nf; i++) { /* bf16 keeps a, gate, up, o_raw and d_raw otherwise */
            int qkv = i >= 2 && i <= 4;
            int as_bf16 = i == 7 || i == 10 || i == 11 || i == 17 || i == 19;
            int input = i == 0 || i == 8 || i == 12 || (i == 6 && saved_n); /* below */
            int inside = fused && (i == 3 || i == 4 || i == 11); /* k, v; up: set below */
            plan_take(pl, mine[i], sizes[i],
                      bw && !input && !inside && !(qkv && saved_n) && !(as_bf16 && half) &&
                          field_wanted(i, qkn, gemma),
                      *fields[i], "llama layer activation");
        }
        if (fused && a->q) a->k = a->q + QC, a->v = a->q + QC + KC;
        if (fused && a->gate) a->up = a->gate + F;
        Layer *Ly = &b->layers[l]; /* n1, n2 and act: only their linears read them again */
        PLAN_TAKE_INPUT(pl, m, Ly->qkv, Ly->n_qkv, &a->n1, bw, sh.n1);
        PLAN_TAKE_INPUT(pl, m, Ly->gate_up, Ly->n_gate_up, &a->n2, bw, sh.n2);
        PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->down}, 1, &a->act, bw, sh.act);
        /* the norms' and the gated activation's outputs in bf16 where q, k and v, gate and up and
         * down read them so: into an adapted group's input copy, else in act's shared place (each
         * read before the next is written) */
        uint16_t *in_bf16 = (uint16_t *)sh.act;
        linear_input_bf16(m, Ly->qkv, Ly->n_qkv, in_bf16);
        linear_input_bf16(m, Ly->gate_up, Ly->n_gate_up, in_bf16);
        linear_input_bf16(m, (Linear *const[]){&Ly->down}, 1, in_bf16);
        if (saved_n) /* attention saved its own copy: only o may read ctx again */
            PLAN_TAKE_INPUT(pl, m, (Linear *const[]){&Ly->o}, 1, &a->ctx, bw, sh.ctx);
        size_t own =
            saved_n
                ? model_attention_saved(m, linear_keeps_copy(m, (Linear *const[]){&Ly->o}, 1, bw))
                : 0;
        PLAN_TAKE(pl, &a->att_saved, own, bw && saved_n, sh.att_saved);
        linear_reads_attention_out(m, &Ly->o, a->att_saved);
        PLAN_TAKE_BF16(pl, &a->xh1, N * C, bw && half);
        PLAN_TAKE_BF16(pl, &a->xh2, N * C, bw && half);
        PLAN_TAKE_BF16(pl, &a->gate_up_bf16, 2 * N * F, bw && half);
        PLAN_TAKE_BF16(pl, &a->xh_o, N * C, bw && half && gemma);
        PLAN_TAKE_BF16(pl, &a->xh_d, N * C, bw && half && gemma);
        /* [gate | up] from their GEMM in bf16 where joined: the gated activation's saved, or
         * sh.gate */
        uint16_t *gu = a->gate_up_bf16 ? a->gate_up_bf16 : (uint16_t *)sh.gate;
        linear_output_bf16(m, Ly->gate_up, Ly->n_gate_up, gu);
        plan_layer(pl, 0);
        PLAN_TAKE(pl, &a->out, N * C, (bw && (!half || ckpt)) || l + 1 == L, O[l % 2]);
    }
    PLAN_TAKE(pl, &b->acts[0].x, N * C, 1, NULL); /* the embeddings */
    PLAN_TAKE(pl, &b->hf, N * C, 1, NULL);
    PLAN_TAKE(pl, &b->rstd_f, N, 1, NULL);
    m->hidden = b->hf;
    /* Gradient buffers. Backward never reads the shared set (no layer it reaches keeps
     * anything there), so all but one of them are its buffers of the same size; but d_out, the
     * gradient carried from layer to layer, where a recomputed forward writes ctx there. Fused
     * linears read their gradients as one GEMM wrote them: rows [dq | dk | dv] in q's place,
     * [dgate | dup] in gate's (d_f then in act's). */
    float **dn[] = {&b->d_out, &b->d_n, &b->d_q, &b->d_k, &b->d_v, &b->d_f, &b->d_g, &b->d_u};
    float *gate_end = join && sh.gate ? sh.gate + N * F : sh.up; /* past d_f where up is inside */
    float *dk_at = join_qkv ? sh.n1 : sh.k, *dv_at = join_qkv ? sh.n2 : sh.v; /* k, v inside q */
    float *reuse[] = {sh.ctx, sh.a, sh.q, dk_at, dv_at, sh.gate, gate_end, sh.act};
    if (fused) reuse[5] = sh.act, reuse[6] = sh.gate;
    for (int i = 0; i < 8; i++)
        PLAN_TAKE(pl, dn[i], N * C, any && ckpt && !i, any ? reuse[i] : NULL);
    if (fused && b->d_q) b->d_k = b->d_q + QC, b->d_v = b->d_q + QC + KC, b->d_u = b->d_g + F;
    PLAN_TAKE(pl, &b->d_ctx, N * AC, any, NULL); /* Qwen3: then q's gradient before its norm */
    /* d_out's bf16 copy, written by the norm backward that last adds to it, where o or down read
     * it so: its own buffer, as a replayed forward between two layers' backward writes the
     * shared ones */
    int reads = 0;
    for (size_t l = 0; l < L; l++)
        reads |= linear_reads_bf16(m, &b->layers[l].o) || linear_reads_bf16(m, &b->layers[l].down);
    PLAN_TAKE_BF16(pl, &b->d_out_bf16, N * C, any && reads);
    for (size_t l = 0; l < L; l++) { /* [dgate | dup] rows in bf16 where gate and up (both) read
                                        them so: their group's GEMM (in d_g, as large as both) */
        Layer *Ly = &b->layers[l];
        int plain = 1;
        for (int i = 0; i < Ly->n_gate_up; i++)
            plain = plain && linear_reads_bf16(m, Ly->gate_up[i]);
        Ly->gate.dout_bf16 = plain ? (uint16_t *)b->d_g : NULL;
        Ly->up.dout_bf16 = plain ? Ly->gate.dout_bf16 + F : NULL;
        Ly->o.dout_bf16 = linear_reads_bf16(m, &Ly->o) ? b->d_out_bf16 : NULL;
        Ly->down.dout_bf16 = linear_reads_bf16(m, &Ly->down) ? b->d_out_bf16 : NULL;
        linear_input_grad_bf16(m, &Ly->down,
                               (uint16_t *)b->d_f); /* for the gated activation's backward */
    }
}

/* The KV cache (generation): a position's rotated keys, or its values, [NKV*HS]. */
static size_t llama_cache_width(const Model *m) {
    return (size_t)m->cfg.num_kv_heads * head_size(m);
}

/* ------------------------------------------------------------------------------------ */
/* forward, backward and decode, side by side                                           */

enum { SITE_Q, SITE_K, SITE_V, SITE_ATT, SITE_O, SITE_GATE, SITE_UP, SITE_DOWN };

/* The norm of layer l's input (l = L: the final norm) over N rows, into out, or where the
 * linears next read bf16 (Linear.in_bf16) there instead, rstd and xh. The layer before left its
 * output without the residual, down(..) alone: the add joins this pass (residual_norm_forward: x =
 * down(..) + a, written in place, where backward and the next residual read it): one launch and one
 * pass over [N,C] fewer than an add of its own. Layer 0's input, and a replay's (LayerForward), is
 * x complete. */
static void input_norm(Model *m, int l, float *out, const Linear *next, float *rstd, uint16_t *xh,
                       const Norm *norm, int N, int replay) {
    const ModelConfig *c = &m->cfg;
    LayerActs *before = l ? &llama(m)->acts[l - 1] : NULL;
    int add = before && !replay;
    uint16_t *out_bf16 = next ? next->in_bf16 : NULL;
    m->ops->residual_norm_forward(out_bf16 ? NULL : out, out_bf16,
                                  next ? linear_input_ld(m, next) : 0, add ? before->out : NULL,
                                  NULL, rstd, xh, before ? before->out : llama(m)->acts[0].x,
                                  add ? before->a : NULL, 0.0f, 0, model_norm_weight(m, norm), NULL,
                                  c->layer_norm_eps, N, c->hidden_size);
}

/* Gemma's norm of o's or down's output raw [n rows] before its residual add, into out (NULL:
 * only rstd and xh, for backward) */
static void output_norm(Model *m, float *out, float *rstd, uint16_t *xh, const float *raw,
                        const Norm *norm, int n) {
    m->ops->residual_norm_forward(out, NULL, 0, NULL, NULL, rstd, xh, raw, NULL, 0.0f, 0,
                                  model_norm_weight(m, norm), NULL, m->cfg.layer_norm_eps, n,
                                  m->cfg.hidden_size);
}

/* The rest of layer l once attention has written a->ctx [N rows]: a = x + o(ctx), then
 * out = down(act(gate(n2)) * up(n2)), n2 = rmsnorm(a), without the residual a, which the next
 * norm adds (input_norm); Gemma's norms of o(ctx) and down(..) on the way. A replay leaves out
 * (the next layer's complete input) alone: backward reads nothing of down's forward but its
 * LoRA branch's (and Gemma's norm's rstd and input). */
static void layer_forward_tail(Model *m, int l, int N, Drop d, int replay) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    const Llama *b = llama(m);
    Layer *Ly = &b->layers[l];
    LayerActs *a = &b->acts[l];
    size_t NF = (size_t)N * c->ffn_size;
    linear_forward(m, &Ly->o, b->gemma ? a->o_raw : a->a, a->ctx, N, d.lora, model_site(l, SITE_O));
    if (b->gemma) output_norm(m, a->a, a->rstd_o, a->xh_o, a->o_raw, &Ly->attn_out_norm, N);
    uint16_t *n2_bf16 = Ly->gate.in_bf16; /* else gate and up read n2 */
    o->residual_norm_forward(n2_bf16 ? NULL : a->n2, n2_bf16, linear_input_ld(m, &Ly->gate), a->a,
                             NULL, a->rstd2, a->xh2, a->a, a->x, 0.0f, 0,
                             model_norm_weight(m, &Ly->ln_ffn), NULL, c->layer_norm_eps, N,
                             c->hidden_size);
    uint64_t s[2];
    linear_forward_group(m, Ly->gate_up, (float *const[]){a->gate, a->up}, Ly->n_gate_up, a->n2, N,
                         d.lora, model_sites(s, Ly->n_gate_up, l, SITE_GATE));
    uint16_t *act_bf16 = Ly->down.in_bf16, *gu = Ly->gate.out_bf16; /* else act; gate, up */
    o->glu_forward(c->activation, act_bf16 ? NULL : a->act, act_bf16, linear_input_ld(m, &Ly->down),
                   gu ? gu : a->gate_up_bf16, gu ? NULL : a->gate, gu ? NULL : a->up, NF,
                   c->ffn_size, b->gate_up_ld);
    float *down_out = b->gemma ? a->d_raw : replay ? NULL : a->out;
    linear_forward(m, &Ly->down, down_out, a->act, N, d.lora, model_site(l, SITE_DOWN));
    if (b->gemma)
        output_norm(m, replay ? NULL : a->out, a->rstd_d, a->xh_d, a->d_raw, &Ly->mlp_out_norm, N);
}

/* Qwen3, Gemma: q's and k's heads [n rows] through their RMS norms, in place (where the group's
 * GEMM wrote them, rows q_ld and kv_ld apart), their values before it kept for backward. */
static void head_norms_forward(Model *m, const Layer *Ly, LayerActs *a, int n) {
    const ModelConfig *c = &m->cfg;
    const Llama *b = llama(m);
    if (!b->qk_norm) return;
    m->ops->head_norm_forward(a->q, b->q_ld, a->q_raw, a->rstd_q, model_norm_weight(m, &Ly->q_norm),
                              c->layer_norm_eps, n, c->num_heads, head_size(m));
    m->ops->head_norm_forward(a->k, b->kv_ld, a->k_raw, a->rstd_k,
                              model_norm_weight(m, &Ly->k_norm), c->layer_norm_eps, n,
                              c->num_kv_heads, head_size(m));
}

static void layer_forward(Model *m, int l, Drop d, int replay) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Llama *b = llama(m);
    Layer *Ly = &b->layers[l];
    LayerActs *a = &b->acts[l];
    int B = m->B, T = m->T, N = B * T, HS = head_size(m);
    int NH = c->num_heads, NKV = c->num_kv_heads;
    input_norm(m, l, a->n1, &Ly->q, a->rstd1, a->xh1, &Ly->ln_attn, N, replay);
    uint64_t s[3];
    linear_forward_group(m, Ly->qkv, (float *const[]){a->q, a->k, a->v}, Ly->n_qkv, a->n1, N,
                         d.lora, model_sites(s, Ly->n_qkv, l, SITE_Q));
    head_norms_forward(m, Ly, a, N);
    uint16_t *ob = Ly->o.in_bf16; /* else o reads ctx */
    o->attention_forward(ob ? NULL : a->ctx, ob, linear_input_ld(m, &Ly->o), a->lse, a->att_saved,
                         a->q, b->q_ld, a->k, a->v, b->kv_ld, model_attention_mask(m), 1,
                         model_layer_window(&m->cfg, l), layer_rope(m, l, T), model_attn_score(c),
                         d.attention, model_site(l, SITE_ATT), m->scratch, B, T, NH, NKV, HS);
    layer_forward_tail(m, l, N, d, replay);
}

/* Generation: layer l on the n new tokens at positions m->positions (rows 0..n-1 of a->x),
 * read on the device: their rotated keys and values go into the layer's cache, their queries
 * attend to its first m->cache_keys positions up to their own; the rest as layer_forward in
 * eval mode. */
static void layer_decode(Model *m, int l, int n) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    const Llama *b = llama(m);
    Layer *Ly = &b->layers[l];
    LayerActs *a = &b->acts[l];
    int HS = head_size(m), NH = c->num_heads, NKV = c->num_kv_heads;
    CacheLayer kv = model_cache_layer(m, l);
    input_norm(m, l, a->n1, &Ly->q, a->rstd1, NULL, &Ly->ln_attn, n, 0);
    linear_forward_group(m, Ly->qkv, (float *const[]){a->q, a->k, a->v}, Ly->n_qkv, a->n1, n, 0.0f,
                         (const uint64_t[]){0, 0, 0});
    head_norms_forward(m, Ly, a, n);
    o->cache_write(kv.k, kv.v, a->q, b->q_ld, a->k, a->v, b->kv_ld, m->positions, kv.seq, kv.stride,
                   layer_rope(m, l, m->cache_len), n, NH, NKV, HS);
    o->attention_cached(a->ctx, Ly->o.in_bf16, linear_input_ld(m, &Ly->o), a->q, b->q_ld, kv.k,
                        kv.v, m->positions, kv.seq, kv.stride, model_layer_window(&m->cfg, l),
                        model_attn_score(c), m->cache_scratch, n, m->cache_keys, NH, NKV, HS);
    layer_forward_tail(m, l, n, (Drop){0}, 0);
}

/* Where layer l's down reads the gradient of its output in bf16 (Linear.dout_bf16), which the
 * norm backward that writes that gradient rounds it into: the stream's (the norm above, so not
 * Gemma's, whose norm of down's output writes it) */
static uint16_t *below_dout_bf16(const Model *m, int l) {
    return llama(m)->gemma ? NULL : llama(m)->layers[l].down.dout_bf16;
}

/* Gemma: the gradient of a norm's input raw [n rows] (o's or down's output) into dinp (and the
 * bf16 copy that linear reads it as) from dout, the residual stream's */
static void output_norm_backward(Model *m, float *dinp, const Linear *linear, const float *dout,
                                 const float *raw, const uint16_t *xh, const float *rstd,
                                 const Norm *norm, int n) {
    m->ops->rmsnorm_backward(dinp, linear->dout_bf16, norm->w->grad, dout, xh ? NULL : raw, xh,
                             model_norm_weight(m, norm), rstd, n, m->cfg.hidden_size, OPS_SET);
}

/* grad: the gradient of the layer's output [N,C], then of the residual stream a, then (when
 * need_input) of its input x (LayerBackward). */
static void layer_backward(Model *m, int l, float *grad, int need_input, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Llama *b = llama(m);
    Layer *Ly = &b->layers[l];
    LayerActs *a = &b->acts[l];
    int B = m->B, T = m->T, N = B * T, C = c->hidden_size, HS = head_size(m);
    int NH = c->num_heads, NKV = c->num_kv_heads;
    size_t NF = (size_t)N * c->ffn_size;
    /* MLP: out = a + down(act(gate(n2)) * up(n2)), n2 = rmsnorm(a); Gemma: a + rmsnorm(down(..)),
     * whose gradient goes to d_n (free until gate and up's backward) */
    const float *d_down = b->gemma ? b->d_n : grad;
    if (b->gemma)
        output_norm_backward(m, b->d_n, &Ly->down, grad, a->d_raw, a->xh_d, a->rstd_d,
                             &Ly->mlp_out_norm, N);
    linear_backward(m, &Ly->down, b->d_f, d_down, a->act, N, d.lora, model_site(l, SITE_DOWN),
                    OPS_SET);
    const uint16_t *gu = a->gate_up_bf16;    /* else gate and up were kept */
    uint16_t *dgu_bf16 = Ly->gate.dout_bf16; /* [dgate | dup] rows, else rounded */
    const uint16_t *df = Ly->down.din_bf16;  /* else d_f in f32 */
    o->glu_backward(c->activation, dgu_bf16 ? NULL : b->d_g, dgu_bf16 ? NULL : b->d_u, dgu_bf16,
                    df ? NULL : b->d_f, df, gu ? NULL : a->gate, gu ? NULL : a->up, gu, NF,
                    c->ffn_size, b->fused ? 2 * c->ffn_size : c->ffn_size, OPS_SET);
    uint64_t s[3];
    linear_backward_group(m, Ly->gate_up, b->d_n, (const float *const[]){b->d_g, b->d_u},
                          Ly->n_gate_up, a->n2, N, d.lora,
                          model_sites(s, Ly->n_gate_up, l, SITE_GATE), OPS_SET);
    o->rmsnorm_backward(grad, b->gemma ? NULL : Ly->o.dout_bf16, Ly->ln_ffn.w->grad, b->d_n,
                        a->xh2 ? NULL : a->a, a->xh2, model_norm_weight(m, &Ly->ln_ffn), a->rstd2,
                        N, C, OPS_ADD); /* + the residual's */
    /* attention: a = x + o(attention(rope(q(n1)), rope(k(n1)), v(n1))), n1 = rmsnorm(x); Gemma:
     * x + rmsnorm(o(..)), its gradient in d_n again */
    const float *d_o = b->gemma ? b->d_n : grad;
    if (b->gemma)
        output_norm_backward(m, b->d_n, &Ly->o, grad, a->o_raw, a->xh_o, a->rstd_o,
                             &Ly->attn_out_norm, N);
    linear_backward(m, &Ly->o, b->d_ctx, d_o, a->ctx, N, d.lora, model_site(l, SITE_O), OPS_SET);
    /* else q, k, v and ctx were saved by attention (q, k and v kept lie apart, or fused: in
     * qkv_proj's rows, as their gradients then) */
    int kept = a->att_saved == NULL;
    o->attention_backward(b->d_q, b->d_k, b->d_v, b->d_ctx, kept ? a->q : NULL, kept ? a->k : NULL,
                          kept ? a->v : NULL, b->fused ? b->q_ld : NH * HS,
                          b->fused ? b->kv_ld : NKV * HS, kept ? a->ctx : NULL, Ly->o.in_bf16,
                          linear_input_ld(m, &Ly->o), a->lse, a->att_saved, model_attention_mask(m),
                          1, model_layer_window(&m->cfg, l), layer_rope(m, l, T),
                          model_attn_score(c), d.attention, model_site(l, SITE_ATT), m->scratch, B,
                          T, NH, NKV, HS, OPS_SET);
    const float *dq = b->d_q, *dk = b->d_k;
    if (b->qk_norm) { /* through the head norms: q's into d_ctx (read by now), k's into d_q */
        o->rmsnorm_backward(b->d_ctx, NULL, Ly->q_norm.w->grad, b->d_q, a->q_raw, NULL,
                            model_norm_weight(m, &Ly->q_norm), a->rstd_q, N * NH, HS, OPS_SET);
        o->rmsnorm_backward(b->d_q, NULL, Ly->k_norm.w->grad, b->d_k, a->k_raw, NULL,
                            model_norm_weight(m, &Ly->k_norm), a->rstd_k, N * NKV, HS, OPS_SET);
        dq = b->d_ctx, dk = b->d_q;
    }
    linear_backward_group(m, Ly->qkv, b->d_n, (const float *const[]){dq, dk, b->d_v}, Ly->n_qkv,
                          a->n1, N, d.lora, model_sites(s, Ly->n_qkv, l, SITE_Q), OPS_SET);
    uint16_t *below = need_input && l ? below_dout_bf16(m, l - 1) : NULL;
    o->rmsnorm_backward(need_input ? grad : NULL, below, Ly->ln_attn.w->grad, b->d_n,
                        a->xh1 ? NULL : a->x, a->xh1, model_norm_weight(m, &Ly->ln_attn), a->rstd1,
                        N, C, OPS_ADD); /* + the residual's */
}

/* Gemma's embeddings are wte's rows times sqrt(C), in float as its ScaledWordEmbedding's */
static float embed_scale(const Model *m) {
    return (float)sqrt((double)m->cfg.hidden_size);
}

static void llama_forward(Model *m, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Llama *b = llama(m);
    int N = m->B * m->T, C = c->hidden_size, L = c->num_layers;
    o->embedding_forward(b->acts[0].x, m->ids, NULL, NULL, b->wte->value, b->wte->packed, NULL,
                         NULL, m->B, m->T, C);
    model_embedding_lora(m, b->acts[0].x, N);
    if (b->gemma) o->scale(b->acts[0].x, embed_scale(m), (size_t)N * C);
    model_embedding_noise(m, b->acts[0].x, d);
    for (int l = 0; l < L; l++) layer_forward(m, l, d, 0);
    input_norm(m, L, b->hf, NULL, b->rstd_f, NULL, &b->ln_f, N, 0);
}

static void llama_backward(Model *m, Drop d) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Llama *b = llama(m);
    int N = m->B * m->T, C = c->hidden_size, L = c->num_layers;
    int body = b->lowest_trained_layer < L;
    if (!body && !b->ln_f.w->grad) return; /* the head's own gradient came with the loss */
    o->rmsnorm_backward(b->d_out, body ? below_dout_bf16(m, L - 1) : NULL, b->ln_f.w->grad,
                        m->dhidden, b->acts[L - 1].out, NULL, model_norm_weight(m, &b->ln_f),
                        b->rstd_f, N, C, OPS_SET);
    int emb_trains = model_embedding_trains(m);
    layers_backward(m, layer_forward, layer_backward, b->lowest_trained_layer, emb_trains, b->d_out,
                    d);
    if (!emb_trains) return;
    if (b->gemma) o->scale(b->d_out, embed_scale(m), (size_t)N * C);
    o->embedding_backward(b->wte->grad, NULL, NULL, b->d_out, m->ids, NULL, b->wte->pad_row, m->B,
                          m->T, C);
    model_embedding_lora_backward(m, b->d_out);
}

static void llama_decode(Model *m, int n) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    Llama *b = llama(m);
    int C = c->hidden_size, L = c->num_layers;
    o->embedding_forward(b->acts[0].x, m->ids, NULL, NULL, b->wte->value, b->wte->packed, NULL,
                         NULL, 1, n, C);
    model_embedding_lora(m, b->acts[0].x, n);
    if (b->gemma) o->scale(b->acts[0].x, embed_scale(m), (size_t)n * C);
    for (int l = 0; l < L; l++) layer_decode(m, l, n);
    input_norm(m, L, b->hf, NULL, b->rstd_f, NULL, &b->ln_f, n, 0);
}

#define LLAMA_FAMILY                                                                               \
    .prefix = "model", .task = TASK_CAUSAL_LM,                                                     \
    .tasks = 1u << TASK_CAUSAL_LM | 1u << TASK_DPO | 1u << TASK_RLOO | 1u << TASK_GRPO |           \
             1u << TASK_REWARD,                                                                    \
    .max_params = llama_max_params, .build = llama_build, .free = llama_free, .plan = llama_plan,  \
    .forward = llama_forward, .backward = llama_backward, .cache_width = llama_cache_width,        \
    .decode = llama_decode

const ArchImpl arch_llama = {LLAMA_FAMILY, .default_targets = {"q_proj", "v_proj"}};
/* PEFT names no default for Phi-3: its fused q, k, v, as GPT-2's c_attn */
const ArchImpl arch_phi3 = {LLAMA_FAMILY, .default_targets = {"qkv_proj", NULL}};
