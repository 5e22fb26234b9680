/* test_gguf_export.c: LoRA adapters and merged models written for llama.cpp (gguf_export.h),
 * read back with loraft's own GGUF reader.
 *
 * On tiny random Llamas (4 heads over 2 KV heads, so Q and K permute differently; LoRA with
 * random B on all seven projections):
 * - the adapter file has llama.cpp's metadata (general.type adapter, adapter.type lora,
 *   adapter.lora.alpha / r = loraft's scale, also with rsLoRA) and, per adapted linear,
 *   `.lora_a` equal to A and `.lora_b` equal to B once its Q/K rows are un-permuted, both F32 in
 *   ggml's dimension order; and applying it as llama.cpp does, W' = W + (alpha / r) B A on the
 *   GGUF layout, gives the merged GGUF's weight (within 1e-6 of the largest value);
 * - the merged model (F32, F16, Q8_0; tied and untied head) has the architecture metadata
 *   loraft's own reader turns back into the same config, every base tensor with its GGUF name,
 *   shape and type (1-D F32; a Q8_0 weight whose rows are not whole blocks F16), values equal to
 *   the merged weights (F32 exactly, F16 bit for bit as f32_to_f16, Q8_0 within half a
 *   quantisation step), and a model built from it gives the logits of the in-memory model
 *   with its LoRA: within 1e-5 (F32), 5e-3 (F16) and 6e-2 (Q8_0) of the largest |logit|
 *   (measured: 1.7e-6, 1.8e-3 and 2.9e-2: random weights of std 0.2 amplify the rounding);
 * - refusals: not a decoder, a reward model, no adapter, trained modules_to_save, a type other
 *   than F32 / F16 / Q8_0.
 * The same on tiny random GPT-2s (LoRA on c_attn, c_proj, c_fc): the adapter and merged files
 * use the gpt2 names (blk.N.attn_qkv, ...) and keys (gpt2.*), Conv1D weights in GGUF's [out,in]
 * layout without any permutation, the merged file a copy of token_embd as output.weight (as
 * llama.cpp's converter writes it; loraft's loader skips it), with Llama's tolerances.
 * And on tiny Gemma 3s and Gemma 2s (tied; the even layers windowed; Gemma 2's soft-caps 1.5 and
 * 2): the adapter, F32 and Q8_0 merges (norms as 1 + w, the windowed layers as flags, the soft-caps
 * as llama.cpp's converters write them: Gemma 3's final one only where it has one) read back to the
 * same config and logits, also at the 27B models' layer counts (46, 62) where llama.cpp scales
 * attention by hidden / heads, not the head size; refused: a query_pre_attn_scalar other than
 * llama.cpp's, Gemma 3 with attention soft-capping or YaRN, Gemma 2 without a soft-cap, untied, or
 * with llama3's RoPE scaling.
 * And on tiny Phi-3s (LoRA on qkv_proj, o_proj, gate_up_proj, down_proj; every layer windowed):
 * the adapter (attn_qkv, ffn_up of [gate; up], unpermuted), F32, F16 and Q8_0 merges with
 * longrope's factors as rope_factors_short / _long, its original context and attention factor as
 * llama.cpp's keys, read back to the same config and logits, with the batch past the original
 * context and within it, and without longrope; refused: heads other than hidden / heads wide. With
 * the real SmolLM2-135M-Instruct GGUF (models/smollm2, or LORAFT_SMOLLM2_GGUF), a Q8_0 merge
 * carries the source's tokenizer.* and general.* metadata byte for byte, its tokenizer encodes like
 * the source's, and its logits match the in-memory model's within 4e-2 of the largest
 * (measured 1.9e-2). */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "loraft/gguf.h"
#include "loraft/gguf_export.h"
#include "loraft/model.h"
#include "loraft/rng.h"
#include "loraft/safetensors.h" /* f32_to_f16 */
#include "loraft/text.h"

enum { VOCAB = 61, SEQ = 12, R = 4 };
static const int32_t ids[SEQ] = {1, 5, 9, 60, 2, 33, 17, 8, 44, 0, 21, 13};

static char tmpdir[] = "/tmp/loraft_export_XXXXXX";
static const char *tmp_path(const char *name) {
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

#define EXPECT_FAIL(call, phrase)                                                                  \
    do {                                                                                           \
        LfError e_ = {{0}};                                                                        \
        LfError *err_ = &e_;                                                                       \
        int ok_ = (call) == -1 && strstr(e_.msg, phrase);                                          \
        CHECK(ok_);                                                                                \
        if (!ok_) fprintf(stderr, "  expected '%s', got '%s'\n", phrase, e_.msg);                  \
        (void)err_;                                                                                \
    } while (0)

/* lora_spec's adapters are DoRA's while set; of other ranks and alphas (rank_pattern,
 * alpha_pattern) for q_proj and k_proj (GPT-2: c_attn) while tiny_patterns is */
static int tiny_dora, tiny_patterns;
/* lora_spec adapts the token embedding too (embed_tokens; GPT-2's wte) while set */
static int tiny_embed;
static int tiny_head; /* and LoRA on lm_head too */

static void lora_spec(TrainSpec *s, Arch arch, int rslora) {
    train_spec_defaults(s);
    s->task = TASK_CAUSAL_LM;
    s->r = R;
    s->alpha = 6.0f;
    s->use_rslora = rslora;
    s->use_dora = tiny_dora;
    const char *llama[] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                           "gate_proj", "up_proj", "down_proj"};
    const char *gpt2[] = {"c_attn", "c_proj", "c_fc"};
    const char *phi3[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
    const char **names = arch == ARCH_GPT2 ? gpt2 : arch == ARCH_PHI3 ? phi3 : llama;
    int n = arch == ARCH_GPT2 ? 3 : arch == ARCH_PHI3 ? 4 : 7;
    for (int i = 0; i < n; i++) strcpy(s->targets[s->n_targets++], names[i]);
    if (tiny_embed) strcpy(s->targets[s->n_targets++], arch == ARCH_GPT2 ? "wte" : "embed_tokens");
    if (tiny_head) strcpy(s->targets[s->n_targets++], "lm_head");
    if (!tiny_patterns) return;
    s->rank_pattern[s->n_rank_pattern++] = (LoraPattern){"k_proj|c_attn", 3};
    s->alpha_pattern[s->n_alpha_pattern++] = (LoraPattern){"q_proj|c_attn", 10};
}

/* hidden 64 (two Q8_0 blocks a row), head_dim 16, ffn 48 (down_proj's rows are not whole Q8_0
 * blocks); LoRA with random B so that merging changes the weights. GPT-2: tied, 4 KV heads. */
/* The tiny Llama's RoPE scaling (test_merged_rope), and Phi-3's rotary dims (0: the whole head) */
static RopeScaling tiny_rope;
static int tiny_rotary_dim;
/* The tiny Gemma's layers (0: 2), head size (0: hidden / heads), query_pre_attn_scalar (0: the
 * head size, llama.cpp's below 46 layers) and soft-caps (-1: none; 0: Gemma 2's 1.5 and 2, which
 * bite, Gemma 3's none) */
typedef struct TinyGemma {
    int layers, head_dim;
    float scalar, attn_softcap, final_softcap;
} TinyGemma;
static TinyGemma tiny_gemma;

static int tiny_model(Model *m, const TrainSpec *s, Arch arch, int tied, LfError *err) {
    ModelConfig c;
    model_config_defaults(&c, arch);
    if (arch_is_llama(arch)) c.rope_scaling = tiny_rope;
    c.vocab_size = VOCAB, c.hidden_size = 64, c.num_layers = 2, c.num_heads = 4;
    c.num_kv_heads = arch == ARCH_GPT2 ? 4 : 2, c.ffn_size = 48, c.max_positions = 64,
    c.tie_word_embeddings = tied;
    c.initializer_range = 0.2f, c.pad_token_id = -1, c.bos_token_id = 1, c.eos_token_id = 2;
    if (arch_is_gemma(arch)) { /* even layers windowed (4 of SEQ), odd ones full */
        const TinyGemma *t = &tiny_gemma;
        int g2 = arch == ARCH_GEMMA2;
        c.num_layers = t->layers ? t->layers : 2, c.head_dim = t->head_dim, c.sliding_window = 4;
        model_config_full_every(&c, 2);
        c.query_pre_attn_scalar = t->scalar ? t->scalar : (float)model_head_size(&c);
        c.attn_softcap = t->attn_softcap ? fmaxf(t->attn_softcap, 0) : g2 ? 1.5f : 0;
        c.final_softcap = t->final_softcap ? fmaxf(t->final_softcap, 0) : g2 ? 2 : 0;
    }
    if (arch == ARCH_PHI3) /* every layer's window, inside SEQ */
        c.sliding_window = 5, c.rotary_dim = tiny_rotary_dim;
    if (model_create(m, &c, s, &ops_cpu, NULL, 5, 1, SEQ, NULL, 0, err)) return -1;
    Rng r = {17, 0};
    for (int i = 0; i < m->n_params; i++) /* and Gemma's norms, 0 at initialisation (and an
                                              embedding's A) */
        if ((m->params[i].is_lora && strstr(m->params[i].name, "lora_B")) ||
            m->params[i].plus_one || strstr(m->params[i].name, "lora_embedding_A"))
            for (size_t j = 0; j < m->params[i].numel; j++)
                m->params[i].value[j] = 0.3f * (rng_next_uniform(&r) - 0.5f);
    return 0;
}

/* A plain model (no LoRA) from a GGUF file, as `loraft generate --model F.gguf` builds it. */
static int gguf_model(Model *m, const char *path, int max_len, LfError *err) {
    ModelConfig c;
    TrainSpec s;
    train_spec_defaults(&s);
    s.task = TASK_CAUSAL_LM;
    s.strategy = STRATEGY_HEAD;
    if (model_config_load(&c, path, err)) return -1;
    return model_create(m, &c, &s, &ops_cpu, path, 0, 1, max_len, NULL, 0, err);
}

/* Logits [T, V] of one sequence. */
static int logits(Model *m, const int32_t *tok, int T, float *out, LfError *err) {
    int32_t mask[64];
    float loss;
    for (int t = 0; t < T; t++) mask[t] = 1;
    if (model_set_batch(m, tok, NULL, mask, NULL, 1, T, err) || model_forward(m, 0, &loss, err))
        return -1;
    return model_lm_logits(m, 0, T, out, err);
}

/* max |a - b| / max |b| */
static double rel_error(const float *a, const float *b, size_t n) {
    double d = 0, big = 1e-30;
    for (size_t i = 0; i < n; i++) {
        d = worse(d, fabs((double)a[i] - b[i]));
        big = fmax(big, fabs((double)b[i]));
    }
    return d / big;
}

static int kv_is(const Gguf *g, const char *key, const char *want) {
    const GgufStr *s;
    LfError err;
    return gguf_get_str(g, key, &s, &err) == 0 && strcmp(s->s, want) == 0;
}

/* loraft's copy of a GGUF tensor: Q/K rows un-permuted (a GPT-2 Conv1D is [out,in] in both). */
static int read_hf(const Model *m, const Gguf *g, const char *name, const int64_t *shape,
                   GgufFix fix, float *out, LfError *err) {
    int ndim = shape[1] ? 2 : 1;
    if (fix != GGUF_FIX_UNPERMUTE_Q && fix != GGUF_FIX_UNPERMUTE_K)
        return gguf_read_f32(g, name, ndim, shape, out, err);
    float *tmp = malloc((size_t)(shape[0] * shape[1]) * sizeof *tmp);
    int rc = !tmp || gguf_read_f32(g, name, ndim, shape, tmp, err) ||
             gguf_unpermute_rows(
                 tmp, out, shape[0], shape[1],
                 fix == GGUF_FIX_UNPERMUTE_Q ? m->cfg.num_heads : m->cfg.num_kv_heads, err);
    free(tmp);
    return rc ? -1 : 0;
}

/* ---------------------------------------------------------------------- adapters ---- */

/* W + (alpha / r) B A on the GGUF side, as llama.cpp applies an adapter, for q_proj and
 * k_proj of layer 1 (GPT-2: c_attn and mlp.c_proj): the base weights come from an F32 export of
 * the model without its adapter (B zeroed), the result must be the merged F32 export. */
static void check_llama_cpp_sum(Model *m, const Gguf *adapter, float alpha, LfError *err) {
    char merged[512], base[512];
    snprintf(merged, sizeof merged, "%s", tmp_path("sum_merged.gguf"));
    snprintf(base, sizeof base, "%s", tmp_path("sum_base.gguf"));
    CHECK_OK(gguf_export_model(m, merged, GGML_F32, NULL, NULL, err), err);
    for (int i = 0; i < m->n_loras; i++)
        memset(m->loras[i].B->value, 0, m->loras[i].B->numel * sizeof(float));
    CHECK_OK(gguf_export_model(m, base, GGML_F32, NULL, NULL, err), err);
    Gguf gm, gb;
    CHECK_OK(gguf_open(&gm, merged, err), err);
    CHECK_OK(gguf_open(&gb, base, err), err);
    const char *llama[] = {"blk.1.attn_q.weight", "blk.1.attn_k.weight"};
    const char *gpt2[] = {"blk.1.attn_qkv.weight", "blk.1.ffn_down.weight"};
    const char *phi3[] = {"blk.1.attn_qkv.weight", "blk.1.ffn_up.weight"}; /* [gate; up] */
    const char **names = m->cfg.arch == ARCH_GPT2 ? gpt2 : m->cfg.arch == ARCH_PHI3 ? phi3 : llama;
    for (int k = 0; k < 2 && gm.map && gb.map; k++) {
        char an[64], bn[64];
        snprintf(an, sizeof an, "%s.lora_a", names[k]);
        snprintf(bn, sizeof bn, "%s.lora_b", names[k]);
        const GgufTensor *w = gguf_find_tensor(&gb, names[k]), *a = gguf_find_tensor(adapter, an),
                         *b = gguf_find_tensor(adapter, bn),
                         *want = gguf_find_tensor(&gm, names[k]);
        CHECK(w && a && b && want);
        if (!w || !a || !b || !want) continue;
        int64_t in = w->ne[0], out = w->ne[1];
        float *sum = malloc((size_t)(in * out) * sizeof *sum);
        const float *A = a->data, *B = b->data; /* A ne [in, R], B ne [R, out] */
        int64_t rank = a->ne[1];                /* llama.cpp's: alpha over each pair's rank */
        memcpy(sum, w->data, (size_t)(in * out) * sizeof *sum);
        for (int64_t o = 0; o < out; o++)
            for (int64_t r = 0; r < rank; r++)
                for (int64_t i = 0; i < in; i++)
                    sum[o * in + i] += alpha / rank * B[o * rank + r] * A[r * in + i];
        double e = rel_error(sum, want->data, (size_t)(in * out));
        CHECK(e < 1e-6);
        if (e >= 1e-6) fprintf(stderr, "  %s: W + s B A vs merged: %g\n", names[k], e);
        free(sum);
    }
    gguf_close(&gm);
    gguf_close(&gb);
}

/* The token embedding's adapter: token_embd.weight.lora_a ne [R, V] (A as loraft holds it, [V,R]),
 * .lora_b ne [R, C] (B times the module's scale * r / alpha); and applied as llama.cpp's
 * build_inp_embd does (row v + alpha / r * B @ lora_a's row v), the merged export's token_embd. */
static void check_embedding_adapter(Model *m, const Gguf *g, float alpha) {
    const Lora *lo = &m->embedding_lora;
    int V = m->cfg.vocab_size, C = m->cfg.hidden_size, R = lo->r;
    const GgufTensor *a = gguf_find_tensor(g, "token_embd.weight.lora_a"),
                     *b = gguf_find_tensor(g, "token_embd.weight.lora_b");
    CHECK(a && a->type == GGML_F32 && a->ne[0] == R && a->ne[1] == V && b && b->type == GGML_F32 &&
          b->ne[0] == R && b->ne[1] == C);
    if (!a || !b || a->ne[1] != V || b->ne[1] != C) return;
    CHECK(memcmp(a->data, lo->A->value, lo->A->numel * 4) == 0);
    LfError err;
    char merged[512], base[512];
    snprintf(merged, sizeof merged, "%s", tmp_path("emb_merged.gguf"));
    snprintf(base, sizeof base, "%s", tmp_path("emb_base.gguf"));
    CHECK_OK(gguf_export_model(m, merged, GGML_F32, NULL, NULL, &err), &err);
    float *keep = malloc(lo->A->numel * sizeof *keep);
    memcpy(keep, lo->A->value, lo->A->numel * sizeof *keep);
    memset(lo->A->value, 0, lo->A->numel * sizeof *keep);
    CHECK_OK(gguf_export_model(m, base, GGML_F32, NULL, NULL, &err), &err);
    memcpy(lo->A->value, keep, lo->A->numel * sizeof *keep);
    free(keep);
    Gguf gm, gb;
    CHECK_OK(gguf_open(&gm, merged, &err), &err);
    CHECK_OK(gguf_open(&gb, base, &err), &err);
    const GgufTensor *w = gguf_find_tensor(&gb, "token_embd.weight"),
                     *want = gguf_find_tensor(&gm, "token_embd.weight");
    CHECK(w && want);
    if (w && want) {
        const float *W = w->data, *A = a->data, *B = b->data;
        float *sum = malloc((size_t)V * C * sizeof *sum);
        for (int v = 0; v < V; v++)
            for (int c = 0; c < C; c++) {
                float d = 0;
                for (int r = 0; r < R; r++) d += B[c * R + r] * A[v * R + r];
                sum[v * C + c] = W[v * C + c] + alpha / R * d;
            }
        double e = rel_error(sum, want->data, (size_t)V * C);
        CHECK(e < 1e-6);
        if (e >= 1e-6) fprintf(stderr, "  token_embd: + s B A^T[v] vs merged: %g\n", e);
        free(sum);
    }
    gguf_close(&gm);
    gguf_close(&gb);
}

static void test_adapter(Arch arch, int rslora) {
    LfError err;
    TrainSpec s;
    Model m;
    lora_spec(&s, arch, rslora);
    CHECK_OK(tiny_model(&m, &s, arch, arch == ARCH_GPT2 || arch == ARCH_GEMMA2, &err), &err);
    const char *path = tmp_path("adapter.gguf");
    CHECK_OK(gguf_export_adapter(&m, path, &err), &err);
    Gguf g;
    CHECK_OK(gguf_open(&g, path, &err), &err);
    if (!g.map) {
        model_free(&m);
        return;
    }
    CHECK(kv_is(&g, "general.type", "adapter") && kv_is(&g, "adapter.type", "lora") &&
          kv_is(&g, "general.architecture", arch_gguf_name(m.cfg.arch)));
    float alpha = 0;
    CHECK_OK(gguf_get_f32(&g, "adapter.lora.alpha", &alpha, &err), &err);
    CHECK_CLOSE(alpha / m.loras[0].r, m.loras[0].scale, 0, 1e-6); /* llama.cpp's: alpha / rank */
    CHECK(g.n_tensors == 2 * model_n_adapters(&m) &&
          m.n_loras == (arch == ARCH_GPT2 || arch == ARCH_PHI3 ? 8 : 14));
    if (m.embedding_lora.A) check_embedding_adapter(&m, &g, alpha);
    float *buf = malloc(64 * 64 * sizeof *buf);
    for (int i = 0; i < m.n_loras && buf; i++) {
        const Lora *lo = &m.loras[i];
        char base[GGUF_MAX_NAME], name[GGUF_MAX_NAME + 8];
        GgufFix fix;
        CHECK_OK(gguf_name_of(arch_gguf_name(m.cfg.arch), lo->base->w->name, base, sizeof base,
                              &fix, &err),
                 &err);
        snprintf(name, sizeof name, "%s.lora_a", base);
        const GgufTensor *a = gguf_find_tensor(&g, name);
        CHECK(a && a->type == GGML_F32 && a->n_dims == 2 && a->ne[0] == lo->base->in &&
              a->ne[1] == lo->r && memcmp(a->data, lo->A->value, lo->A->numel * 4) == 0);
        snprintf(name, sizeof name, "%s.lora_b", base);
        const GgufTensor *b = gguf_find_tensor(&g, name);
        CHECK(b && b->type == GGML_F32 && b->n_dims == 2 && b->ne[0] == lo->r &&
              b->ne[1] == lo->base->out);
        CHECK_OK(read_hf(&m, &g, name, lo->B->shape, fix, buf, &err), &err);
        float f = lo->scale * lo->r / alpha; /* 1 but where a pattern changed the scale */
        size_t off = 0;
        for (size_t j = 0; j < lo->B->numel; j++)
            off += !(fabsf(buf[j] - lo->B->value[j] * f) <= 1e-6f * fabsf(lo->B->value[j] * f));
        CHECK(off == 0);
        if (tiny_patterns && strstr(lo->base->w->name, "k_proj")) CHECK(lo->r == 3 && f != 1);
        /* q and k of the GQA model: the permutation must have moved rows */
        if (fix == GGUF_FIX_UNPERMUTE_Q || fix == GGUF_FIX_UNPERMUTE_K)
            CHECK(memcmp(b->data, lo->B->value, lo->B->numel * 4) != 0);
    }
    free(buf);
    check_llama_cpp_sum(&m, &g, alpha, &err);
    gguf_close(&g);
    model_free(&m);
}

/* ----------------------------------------------------------------- merged models ---- */

/* Every base tensor: GGUF name, shape, type and values against the merged host copy. */
static void check_merged_tensors(Model *m, const Gguf *g, GgmlType type) {
    LfError err;
    float **slot, *head, *host = model_host_weights(m, 1, &slot, &head, &err);
    float *got = malloc(192 * 64 * sizeof *got); /* the largest tensor: GPT-2's c_attn */
    int n_base = 0;
    for (int i = 0; i < m->n_params && host && got; i++) {
        const Param *p = &m->params[i];
        if (!p->in_checkpoint) continue;
        n_base++;
        char name[GGUF_MAX_NAME];
        GgufFix fix;
        CHECK_OK(gguf_name_of(arch_gguf_name(m->cfg.arch), p->name, name, sizeof name, &fix, &err),
                 &err);
        const GgufTensor *t = gguf_find_tensor(g, name);
        GgmlType want = p->ndim == 1 ? GGML_F32 : type;
        if (want == GGML_Q8_0 && p->shape[1] % 32) want = GGML_F16;
        int64_t shape[2] = {p->shape[0], p->ndim == 2 ? p->shape[1] : 0};
        int ok = t && t->type == want && t->n_dims == p->ndim &&
                 t->ne[0] == (p->ndim == 2 ? p->shape[1] : p->shape[0]) &&
                 (p->ndim == 1 || t->ne[1] == p->shape[0]) &&
                 read_hf(m, g, name, shape, fix, got, &err) == 0;
        CHECK(ok);
        if (!ok) {
            fprintf(stderr, "  %s (%s): missing, wrong type or shape\n", name, p->name);
            continue;
        }
        const float *x = slot[i];
        double worst = 0, amax = 0;
        for (size_t j = 0; j < p->numel; j++) { /* Gemma's norms: what they multiply by */
            float v = x[j] + (p->plus_one ? 1.0f : 0.0f);
            float expect = want == GGML_F16 ? f16_to_f32(f32_to_f16(v)) : v;
            worst = worse(worst, fabs((double)got[j] - expect));
            amax = fmax(amax, fabs((double)x[j]));
        }
        /* Q8_0: half a step d / 2 = amax / 254 per block, plus d's rounding to f16 */
        double tol = want == GGML_Q8_0 ? amax / 230 : 0;
        CHECK(worst <= tol);
        if (worst > tol)
            fprintf(stderr, "  %s: values off by %g (tolerance %g)\n", name, worst, tol);
    }
    /* GPT-2: output.weight, token_embd's copy; a head the merge untied: output.weight, the table
     * as loaded plus the head's adapter (token_embd: plus the embedding's) */
    const GgufTensor *emb = gguf_find_tensor(g, "token_embd.weight"),
                     *out = gguf_find_tensor(g, "output.weight");
    if (m->cfg.arch == ARCH_GPT2)
        CHECK(emb && out && out->type == emb->type && out->nbytes == emb->nbytes &&
              memcmp(out->data, emb->data, emb->nbytes) == 0);
    CHECK(!head == !model_merge_unties(m));
    if (head) {
        int64_t shape[2] = {VOCAB, 64};
        CHECK(out && out->type == type && emb && memcmp(out->data, emb->data, emb->nbytes) != 0);
        CHECK_OK(read_hf(m, g, "output.weight", shape, GGUF_FIX_NONE, got, &err), &err);
        double worst = 0, amax = 0;
        for (size_t j = 0; j < VOCAB * 64; j++) {
            float expect = type == GGML_F16 ? f16_to_f32(f32_to_f16(head[j])) : head[j];
            worst = worse(worst, fabs((double)got[j] - expect));
            amax = fmax(amax, fabs((double)head[j]));
        }
        CHECK(worst <= (type == GGML_Q8_0 ? amax / 230 : 0));
    }
    /* Phi-3's longrope: its factors as rope_factors_short and _long, F32 as they are */
    const RopeScaling *r = &m->cfg.rope_scaling;
    int longrope = r->type == ROPE_LONGROPE;
    const GgufTensor *fs = gguf_find_tensor(g, GGUF_ROPE_SHORT),
                     *fl = gguf_find_tensor(g, GGUF_ROPE_LONG);
    if (longrope)
        CHECK(fs && fl && fs->type == GGML_F32 && fs->n_dims == 1 && fs->ne[0] == r->n_divisors &&
              !memcmp(fs->data, r->divisors, sizeof(float) * r->n_divisors) &&
              !memcmp(fl->data, r->long_divisors, sizeof(float) * r->n_divisors));
    CHECK(g->n_tensors == n_base + (m->cfg.arch == ARCH_GPT2) + 2 * longrope + (head != NULL));
    free(host);
    if (host) free(slot);
    free(got);
}

static void test_merged(Arch arch, GgmlType type, int tied, double tol) {
    LfError err;
    TrainSpec s;
    Model m, back;
    lora_spec(&s, arch, 0);
    CHECK_OK(tiny_model(&m, &s, arch, tied, &err), &err);
    const char *path = tmp_path("merged.gguf");
    CHECK_OK(gguf_export_model(&m, path, type, NULL, NULL, &err), &err);
    Gguf g;
    GgufArch a;
    CHECK_OK(gguf_open(&g, path, &err), &err);
    if (!g.map) {
        model_free(&m);
        return;
    }
    CHECK(kv_is(&g, "general.type", "model") && kv_is(&g, "tokenizer.ggml.model", "none"));
    uint32_t ftype = 99;
    CHECK_OK(gguf_get_u32(&g, "general.file_type", &ftype, &err), &err);
    CHECK(ftype == (type == GGML_F32 ? 0u : type == GGML_F16 ? 1u : 7u));
    CHECK_OK(gguf_arch(&g, &a, &err), &err);
    const ModelConfig *c = &m.cfg;
    int gpt2 = arch == ARCH_GPT2, untied = tied && model_merge_unties(&m); /* by the merge */
    CHECK(kv_is(&g, "general.architecture", arch_gguf_name(m.cfg.arch)));
    CHECK(a.n_layers == c->num_layers && a.hidden == c->hidden_size && a.ffn == c->ffn_size &&
          a.n_heads == c->num_heads && a.n_kv_heads == c->num_kv_heads &&
          a.vocab_size == c->vocab_size && a.context_length == c->max_positions &&
          (gpt2 || a.rope_theta == c->rope_theta) && a.norm_eps == c->layer_norm_eps &&
          a.tied_embeddings == (tied && !gpt2 && !untied) && a.bos_token_id == 1 &&
          a.eos_token_id == 2);
    CHECK(a.attn_scalar == c->query_pre_attn_scalar && a.attn_softcap == c->attn_softcap &&
          a.final_softcap == c->final_softcap);
    if (arch_is_gemma(arch)) { /* the soft-caps written as llama.cpp's converters write them */
        char key[64];
        snprintf(key, sizeof key, "%s.final_logit_softcapping", arch_gguf_name(arch));
        CHECK(!gguf_find_kv(&g, key) == !c->final_softcap);
        snprintf(key, sizeof key, "%s.attn_logit_softcapping", arch_gguf_name(arch));
        CHECK(!gguf_find_kv(&g, key) == (arch == ARCH_GEMMA3));
        for (int l = 0; l < c->num_layers; l++) CHECK(a.windowed[l] == (l % 2 == 0));
    }
    if (arch == ARCH_PHI3) /* the window, the original context, longrope's attention factor and
                              the rotary dims */
        CHECK(a.sliding_window == 5 && a.rope_orig_ctx == c->rope_scaling.original_max_positions &&
              a.rot_dims == model_rotary_dim(c) && a.n_longrope == c->rope_scaling.n_divisors &&
              a.rope_attn_factor ==
                  (c->rope_scaling.type == ROPE_LONGROPE ? c->rope_scaling.attention_factor : 1));
    check_merged_tensors(&m, &g, type);
    gguf_close(&g);

    float want[SEQ * VOCAB], got[SEQ * VOCAB];
    CHECK_OK(logits(&m, ids, SEQ, want, &err), &err);
    CHECK_OK(gguf_model(&back, path, SEQ, &err), &err);
    if (back.values) {
        CHECK(back.cfg.arch == arch && back.cfg.tie_word_embeddings == (tied && !untied) &&
              back.cfg.query_pre_attn_scalar == c->query_pre_attn_scalar &&
              back.cfg.attn_softcap == c->attn_softcap &&
              back.cfg.final_softcap == c->final_softcap &&
              back.cfg.sliding_window == c->sliding_window &&
              !memcmp(&back.cfg.rope_scaling, &c->rope_scaling, sizeof c->rope_scaling));
        CHECK_OK(logits(&back, ids, SEQ, got, &err), &err);
        double e = rel_error(got, want, SEQ * VOCAB);
        printf("merged %s %s (%s, %d layers): max |logit diff| / max |logit| = %.3g\n",
               arch_name(m.cfg.arch), quant_type_name(type),
               untied ? "a tied head untied by the merge"
               : tied ? "tied head"
                      : "untied head",
               c->num_layers, e);
        CHECK(e <= tol);
        model_free(&back);
    }
    model_free(&m);
}

/* A Llama with RoPE scaling: linear and yarn as llama.cpp's keys, llama3 as its rope_freqs
 * divisors, which load back to the same logits (within 1e-5 of their largest: F32 weights) and as
 * `back` (Meta's llama3 parameters are recognised, other divisors stay divisors); without the
 * scaling the logits differ by over 1e-2 (but for Meta's, below), so the check would see it
 * dropped. */
static void test_merged_rope(RopeScaling scaling, RopeType back_type) {
    LfError err;
    TrainSpec s;
    Model m, back, plain;
    lora_spec(&s, ARCH_LLAMA, 0);
    CHECK_OK(tiny_model(&plain, &s, ARCH_LLAMA, 1, &err), &err);
    tiny_rope = scaling;
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    tiny_rope = (RopeScaling){0};
    const char *path = tmp_path("rope.gguf");
    CHECK_OK(gguf_export_model(&m, path, GGML_F32, NULL, NULL, &err), &err);
    Gguf g;
    GgufArch a;
    CHECK_OK(gguf_open(&g, path, &err), &err);
    CHECK_OK(gguf_arch(&g, &a, &err), &err);
    float d[ROPE_MAX_PAIRS];
    int n = model_rope_divisors(&m.cfg, d);
    CHECK(a.rope_factor ==
          (scaling.type == ROPE_LINEAR || scaling.type == ROPE_YARN ? scaling.factor : 0));
    CHECK(a.n_rope_divisors == n && (!n || !memcmp(a.rope_divisors, d, sizeof(float) * n)));
    CHECK(n == 0 || (d[0] == 1 && d[n - 1] == scaling.factor)); /* the kept and the divided band */
    gguf_close(&g);
    float want[SEQ * VOCAB], got[SEQ * VOCAB], unscaled[SEQ * VOCAB];
    CHECK_OK(logits(&m, ids, SEQ, want, &err), &err);
    CHECK_OK(logits(&plain, ids, SEQ, unscaled, &err), &err);
    CHECK_OK(gguf_model(&back, path, SEQ, &err), &err);
    if (back.values) {
        const RopeScaling *b = &back.cfg.rope_scaling;
        CHECK(b->type == back_type);
        if (back_type != ROPE_DIVISORS)
            CHECK(b->factor == scaling.factor && b->beta_fast == scaling.beta_fast &&
                  b->beta_slow == scaling.beta_slow &&
                  fabsf(b->attention_factor - scaling.attention_factor) <=
                      2e-7f * scaling.attention_factor && /* through llama.cpp's attn_factor */
                  b->low_freq_factor == scaling.low_freq_factor &&
                  b->high_freq_factor == scaling.high_freq_factor &&
                  b->original_max_positions == scaling.original_max_positions);
        CHECK_OK(logits(&back, ids, SEQ, got, &err), &err);
        double e = rel_error(got, want, SEQ * VOCAB), u = rel_error(unscaled, want, SEQ * VOCAB);
        printf("merged llama, RoPE %s: max |logit diff| / max |logit| = %.3g (%.3g without it)\n",
               n                           ? "llama3"
               : scaling.type == ROPE_YARN ? "yarn"
                                           : "linear",
               e, u);
        /* Meta's scaling changes only wavelengths over 2048 positions: 12 barely see it */
        CHECK(e <= 1e-5 && (back_type == ROPE_LLAMA3 || u > 1e-2));
        model_free(&back);
    }
    model_free(&m);
    model_free(&plain);
}

/* The tiny Gemma `arch` (with tiny_gemma, tied or not, RoPE scaling rope) must not export as a
 * GGUF: the error says phrase. */
static void expect_gemma_refused(Arch arch, TinyGemma t, int tied, RopeScaling rope,
                                 const char *phrase) {
    LfError err;
    TrainSpec s;
    Model m;
    lora_spec(&s, arch, 0);
    tiny_gemma = t, tiny_rope = rope;
    CHECK_OK(tiny_model(&m, &s, arch, tied, &err), &err);
    tiny_gemma = (TinyGemma){0}, tiny_rope = (RopeScaling){0};
    EXPECT_FAIL(gguf_export_model(&m, tmp_path("refused.gguf"), GGML_F32, NULL, NULL, err_),
                phrase);
    model_free(&m);
}

/* What llama.cpp's gemma2 and gemma3 would compute otherwise. */
static void test_gemma_refusals(void) {
    const RopeScaling none = {0}, yarn = {.type = ROPE_YARN,
                                          .factor = 4,
                                          .original_max_positions = 64,
                                          .beta_fast = 32,
                                          .beta_slow = 1,
                                          .attention_factor = 1};
    const RopeScaling llama3 = {.type = ROPE_LLAMA3,
                                .factor = 8,
                                .low_freq_factor = 1,
                                .high_freq_factor = 4,
                                .original_max_positions = 32};
    expect_gemma_refused(ARCH_GEMMA2, (TinyGemma){.scalar = 20}, 1, none,
                         "query_pre_attn_scalar 20: llama.cpp's gemma2 scales attention by 1 / "
                         "sqrt(16) at 2 layers (hidden / heads at 46 layers");
    /* 27B's layer count: hidden / heads (16), not the head size (32) */
    expect_gemma_refused(ARCH_GEMMA3, (TinyGemma){.layers = 62, .head_dim = 32}, 1, none,
                         "query_pre_attn_scalar 32: llama.cpp's gemma3 scales attention by 1 / "
                         "sqrt(16) at 62 layers");
    expect_gemma_refused(ARCH_GEMMA3, (TinyGemma){.attn_softcap = 50}, 1, none,
                         "attn_logit_softcapping 50: llama.cpp's gemma3 does not soft-cap");
    expect_gemma_refused(ARCH_GEMMA3, (TinyGemma){0}, 1, yarn,
                         "Gemma 3's RoPE scaling has a llama.cpp GGUF form only when linear");
    expect_gemma_refused(
        ARCH_GEMMA2, (TinyGemma){.final_softcap = -1}, 1, none,
        "final_logit_softcapping 0 (0: none): llama.cpp's gemma2 always soft-caps");
    expect_gemma_refused(ARCH_GEMMA2, (TinyGemma){0}, 0, none,
                         "an untied head: llama.cpp's gemma2 reads token_embd as its head");
    expect_gemma_refused(ARCH_GEMMA2, (TinyGemma){0}, 1, llama3,
                         "llama3 RoPE scaling: llama.cpp's gemma2 reads no rope_freqs");
}

static void test_refusals(void) {
    LfError err;
    TrainSpec s;
    Model m;
    const char *path = tmp_path("refused.gguf");
    lora_spec(&s, ARCH_PHI3, 0);
    CHECK_OK(tiny_model(&m, &s, ARCH_PHI3, 0, &err), &err);
    m.cfg.head_dim = 32; /* as a model of heads twice hidden / heads wide has it */
    EXPECT_FAIL(gguf_export_model(&m, path, GGML_F32, NULL, NULL, err_),
                "head_dim 32: llama.cpp's phi3 needs heads of hidden_size / num_attention_heads "
                "(64 / 4)");
    model_free(&m);

    lora_spec(&s, ARCH_LLAMA, 0);
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    EXPECT_FAIL(gguf_export_model(&m, path, GGML_Q4_K, NULL, NULL, err_),
                "expected one of F32, F16, BF16, Q8_0");
    model_free(&m);

    tiny_embed = 1; /* GPT-2's head is its table: merging its adapter would move the head too */
    lora_spec(&s, ARCH_GPT2, 0);
    CHECK_OK(tiny_model(&m, &s, ARCH_GPT2, 1, &err), &err);
    EXPECT_FAIL(gguf_export_model(&m, path, GGML_F32, NULL, NULL, err_),
                "the adapter on 'transformer.wte.weight' cannot be merged: GPT-2's LM head is its "
                "token embedding");
    CHECK(access(path, F_OK) != 0);
    model_free(&m);
    tiny_embed = 0, tiny_head = 1;
    lora_spec(&s, ARCH_GPT2, 0);
    CHECK_OK(tiny_model(&m, &s, ARCH_GPT2, 1, &err), &err);
    EXPECT_FAIL(
        gguf_export_model(&m, path, GGML_F32, NULL, NULL, err_),
        "the adapter on 'lm_head' cannot be merged: GPT-2's LM head is its token embedding");
    model_free(&m);
    lora_spec(&s, ARCH_LLAMA, 0); /* an adapter on a tied lm_head: no llama.cpp form */
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    CHECK(m.head->lora && model_head_tied(&m));
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_),
                "an adapter on a tied lm_head has no llama.cpp");
    model_free(&m);
    tiny_head = 0, tiny_embed = 1; /* nor on a tied head's table: llama.cpp aborts on it */
    lora_spec(&s, ARCH_LLAMA, 0);
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_),
                "an adapter on the token embedding of a model whose head is tied to it has no "
                "llama.cpp form");
    CHECK(access(path, F_OK) != 0);
    model_free(&m);
    tiny_embed = 0;
    lora_spec(&s, ARCH_LLAMA, 0);
    strcpy(s.targets[s.n_targets++], "lm_head");
    s.use_dora = 1; /* DoRA, PiSSA on the head or the embedding: refused when built */
    EXPECT_FAIL(tiny_model(&m, &s, ARCH_LLAMA, 0, err_), "DoRA on the LM head ('lm_head')");
    s.use_dora = 0, s.init = LORA_INIT_PISSA;
    EXPECT_FAIL(tiny_model(&m, &s, ARCH_LLAMA, 0, err_), "pissa on the LM head ('lm_head')");
    s.init = LORA_INIT_DEFAULT, s.use_dora = 1, s.n_targets--;
    strcpy(s.targets[s.n_targets++], "embed_tokens");
    EXPECT_FAIL(tiny_model(&m, &s, ARCH_LLAMA, 0, err_),
                "DoRA on the embedding 'model.embed_tokens' is not supported");
    lora_spec(&s, ARCH_LLAMA, 0);

    s.use_dora = 1; /* llama.cpp's adapters are LoRA's alone */
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_), "a DoRA adapter (use_dora) has no llama.cpp");
    model_free(&m);
    s.use_dora = 0, s.init = LORA_INIT_PISSA; /* it adapts a residual llama.cpp does not load */
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_), "a PiSSA adapter (init_lora_weights pissa)");
    model_free(&m);

    tiny_rope = (RopeScaling){.type = ROPE_YARN, /* llama.cpp always truncates yarn's ramp */
                              .factor = 4,
                              .original_max_positions = 64,
                              .beta_fast = 32,
                              .beta_slow = 1,
                              .attention_factor = 1,
                              .untruncated = 1};
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    tiny_rope = (RopeScaling){0};
    EXPECT_FAIL(gguf_export_model(&m, path, GGML_F32, NULL, NULL, err_),
                "YaRN with truncate false has no llama.cpp GGUF form");
    model_free(&m);

    s.strategy = STRATEGY_HEAD;
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 1, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_), "has no LoRA adapter to export");
    model_free(&m);

    lora_spec(&s, ARCH_LLAMA, 0);
    strcpy(s.modules_to_save[s.n_modules_to_save++], "lm_head");
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 0, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_),
                "trains 'lm_head.weight' (modules_to_save or lora.bias)");
    model_free(&m);

    lora_spec(&s, ARCH_LLAMA, 0);
    s.task = TASK_REWARD;
    CHECK_OK(tiny_model(&m, &s, ARCH_LLAMA, 0, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_), "a reward model's score head has no place");
    EXPECT_FAIL(gguf_export_model(&m, path, GGML_F16, NULL, NULL, err_),
                "reward model's score head");
    model_free(&m);

    test_gemma_refusals();

    ModelConfig c;
    model_config_defaults(&c, ARCH_DISTILBERT);
    c.vocab_size = VOCAB, c.hidden_size = 32, c.num_layers = 1, c.num_heads = 2, c.ffn_size = 32;
    train_spec_defaults(&s);
    strcpy(s.targets[s.n_targets++], "q_lin");
    CHECK_OK(model_create(&m, &c, &s, &ops_cpu, NULL, 5, 1, 8, NULL, 0, &err), &err);
    EXPECT_FAIL(gguf_export_adapter(&m, path, err_),
                "for Llama-family and GPT-2 decoders (the model is distilbert)");
    EXPECT_FAIL(gguf_export_model(&m, path, GGML_F16, NULL, NULL, err_),
                "for Llama-family and GPT-2 decoders");
    model_free(&m);
    CHECK(access(path, F_OK) != 0); /* nothing written */
}

/* ------------------------------------------------------------------------ SmolLM2 ---- */

/* Every tokenizer.* and general.* key of src but the file's own is in g, byte for byte. */
static void check_copied_metadata(const Gguf *src, const Gguf *g) {
    int copied = 0;
    for (int i = 0; i < src->n_kvs; i++) {
        const GgufKV *a = &src->kvs[i];
        if (strncmp(a->key, "tokenizer.", 10) && strcmp(a->key, "general.name")) continue;
        const GgufKV *b = gguf_find_kv(g, a->key);
        int same = b && gguf_kv_equal(a, b);
        CHECK(same);
        if (!same) fprintf(stderr, "  %s: not copied unchanged\n", a->key);
        copied += same;
    }
    CHECK(copied >= 5); /* model, pre, tokens, merges, token_type at least */
}

static void test_smollm2(void) {
    const char *env = getenv("LORAFT_SMOLLM2_GGUF");
    const char *src = env ? env : "models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (access(src, R_OK)) {
        printf("SKIP SmolLM2 merge: %s absent (scripts/fetch-model.sh smollm2-135m-instruct "
               "models/smollm2)\n",
               src);
        return;
    }
    LfError err;
    ModelConfig c;
    TrainSpec s;
    Model m, back;
    lora_spec(&s, ARCH_LLAMA, 0);
    s.n_targets = 2; /* q_proj, k_proj: the permuted ones */
    CHECK_OK(model_config_load(&c, src, &err), &err);
    CHECK_OK(model_create(&m, &c, &s, &ops_cpu, src, 3, 1, SEQ, NULL, 0, &err), &err);
    if (!m.values) return;
    Rng r = {5, 0};
    for (int i = 0; i < m.n_loras; i++)
        for (size_t j = 0; j < m.loras[i].B->numel; j++)
            m.loras[i].B->value[j] = 0.05f * (rng_next_uniform(&r) - 0.5f);
    const char *path = tmp_path("smollm2.q8_0.gguf");
    CHECK_OK(gguf_export_model(&m, path, GGML_Q8_0, src, NULL, &err), &err);
    Gguf gs, g;
    CHECK_OK(gguf_open(&gs, src, &err), &err);
    CHECK_OK(gguf_open(&g, path, &err), &err);
    if (gs.map && g.map) check_copied_metadata(&gs, &g);
    gguf_close(&gs);
    gguf_close(&g);

    TextTokenizer ts, tm;
    IdList a = {0}, b = {0};
    const char *text = "It is a truth universally acknowledged, 1815.";
    CHECK_OK(text_tokenizer_open(&ts, src, &err), &err);
    CHECK_OK(text_tokenizer_open(&tm, path, &err), &err);
    CHECK_OK(text_encode(&ts, text, strlen(text), &a, &err), &err);
    CHECK_OK(text_encode(&tm, text, strlen(text), &b, &err), &err);
    CHECK(a.n == b.n && a.n > 0 && memcmp(a.ids, b.ids, a.n * sizeof *a.ids) == 0);

    float *want = malloc((size_t)SEQ * c.vocab_size * sizeof *want);
    float *got = malloc((size_t)SEQ * c.vocab_size * sizeof *got);
    int T = a.n < SEQ ? (int)a.n : SEQ;
    CHECK_OK(logits(&m, a.ids, T, want, &err), &err);
    model_free(&m);
    CHECK_OK(gguf_model(&back, path, SEQ, &err), &err);
    if (back.values && want && got) {
        CHECK_OK(logits(&back, a.ids, T, got, &err), &err);
        double e = rel_error(got, want, (size_t)T * c.vocab_size);
        printf("SmolLM2 merged Q8_0: max |logit diff| / max |logit| = %.3g\n", e);
        CHECK(e < 4e-2);
    }
    model_free(&back);
    free(want);
    free(got);
    idlist_free(&a);
    idlist_free(&b);
    text_tokenizer_close(&ts);
    text_tokenizer_close(&tm);
}

int main(void) {
    if (!mkdtemp(tmpdir)) return 1;
    test_adapter(ARCH_LLAMA, 0);
    test_adapter(ARCH_LLAMA, 1);
    test_adapter(ARCH_GPT2, 0);
    tiny_patterns = 1; /* B times the module's scale * r / alpha, for llama.cpp's one alpha */
    test_adapter(ARCH_LLAMA, 0);
    test_adapter(ARCH_LLAMA, 1);
    test_adapter(ARCH_GPT2, 0);
    tiny_patterns = 0;
    /* the token embedding adapted too: exported (untied: merged to compare), merged into the
     * untied table (the logits of the model with its adapters) */
    tiny_embed = 1;
    test_adapter(ARCH_LLAMA, 0);
    test_merged(ARCH_LLAMA, GGML_F32, 0, 1e-5);
    /* merged into a tied Llama: the head untied, output.weight its own (the table as loaded plus
     * the head's adapter, where it has one), the logits the adapted model's */
    test_merged(ARCH_LLAMA, GGML_F32, 1, 1e-5);
    tiny_head = 1;
    test_merged(ARCH_LLAMA, GGML_F32, 1, 1e-5);
    test_merged(ARCH_LLAMA, GGML_Q8_0, 1, 6e-2);
    tiny_embed = 0;
    test_merged(ARCH_LLAMA, GGML_F16, 1, 5e-3);
    tiny_head = 0;
    for (int tied = 0; tied < 3; tied++) { /* 2: GPT-2, tied */
        Arch arch = tied == 2 ? ARCH_GPT2 : ARCH_LLAMA;
        test_merged(arch, GGML_F32, tied > 0, 1e-5);
        test_merged(arch, GGML_F16, tied > 0, 5e-3);
        test_merged(arch, GGML_Q8_0, tied > 0, 6e-2);
    }
    tiny_dora = 1; /* DoRA merged: each row of W + s B A times its magnitude over its norm */
    test_merged(ARCH_LLAMA, GGML_F32, 0, 1e-5);
    test_merged(ARCH_GPT2, GGML_F32, 1, 1e-5);
    tiny_dora = 0;
    static const Arch gemmas[] = {ARCH_GEMMA3, ARCH_GEMMA2};
    for (int i = 0; i < 2; i++) {
        Arch arch = gemmas[i];
        test_adapter(arch, 0);
        test_merged(arch, GGML_F32, 1, 1e-5); /* 1 + w norms, a windowed and a full layer */
        test_merged(arch, GGML_Q8_0, 1, 6e-2);
        /* 27B's layer count: the scalar hidden / heads (16), not the head size (32); Gemma 3 with
         * a final soft-cap */
        tiny_gemma = (TinyGemma){arch == ARCH_GEMMA2 ? 46 : 62, 32, 16, 0, 3};
        test_merged(arch, GGML_F32, 1, 1e-5);
        tiny_gemma = (TinyGemma){0};
    }
    /* Phi-3: longrope with the batch past its original context (the long factors), within it
     * (the short ones), and none (Phi-3-mini-4k's) */
    tiny_rope = (RopeScaling){.type = ROPE_LONGROPE,
                              .original_max_positions = SEQ - 4,
                              .attention_factor = 1.2f,
                              .n_divisors = 8,
                              .divisors = {1, 1.1f, 1.3f, 1.6f, 2, 2.5f, 3, 4},
                              .long_divisors = {1.5f, 2, 3, 5, 8, 12, 16, 24}};
    test_adapter(ARCH_PHI3, 0);
    test_merged(ARCH_PHI3, GGML_F32, 0, 1e-5);
    test_merged(ARCH_PHI3, GGML_Q8_0, 0, 6e-2);
    tiny_rope.original_max_positions = 2 * SEQ;
    test_merged(ARCH_PHI3, GGML_F32, 1, 1e-5);
    tiny_rope = (RopeScaling){.original_max_positions = 4096};
    test_merged(ARCH_PHI3, GGML_F16, 0, 5e-3);
    /* Phi-4-mini's partial RoPE (rope.dimension_count 8 of 16), longrope's 4 factors each */
    tiny_rotary_dim = 8;
    tiny_rope = (RopeScaling){.type = ROPE_LONGROPE,
                              .original_max_positions = SEQ - 4,
                              .attention_factor = 1.2f,
                              .n_divisors = 4,
                              .divisors = {1, 1.3f, 2, 3},
                              .long_divisors = {1.5f, 3, 8, 16}};
    test_adapter(ARCH_PHI3, 0);
    test_merged(ARCH_PHI3, GGML_F32, 0, 1e-5);
    tiny_rotary_dim = 0;
    tiny_rope = (RopeScaling){0};
    test_merged_rope((RopeScaling){.type = ROPE_LINEAR, .factor = 4}, ROPE_LINEAR);
    test_merged_rope((RopeScaling){.type = ROPE_LLAMA3,
                                   .factor = 8,
                                   .low_freq_factor = 1,
                                   .high_freq_factor = 4,
                                   .original_max_positions = 32},
                     ROPE_DIVISORS);
    test_merged_rope((RopeScaling){.type = ROPE_LLAMA3, /* Llama 3.2's */
                                   .factor = 32,
                                   .low_freq_factor = 1,
                                   .high_freq_factor = 4,
                                   .original_max_positions = 8192},
                     ROPE_LLAMA3);
    test_merged_rope((RopeScaling){.type = ROPE_YARN, /* pairs 0..3 blended, 3..7 divided */
                                   .factor = 8,
                                   .original_max_positions = 64,
                                   .beta_fast = 32,
                                   .beta_slow = 1,
                                   .attention_factor = 1.25f},
                     ROPE_YARN);
    test_refusals();
    test_smollm2();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_report();
}
