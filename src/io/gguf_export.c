/* gguf_export.c: LoRA adapters and merged models as llama.cpp GGUF files (gguf_export.h).
 *
 * Each export gathers host copies of the tensors in GGUF names, layout and type, then hands
 * them with the metadata to gguf_write in one atomic write. The names come from gguf_arch.c's
 * tables read backwards; nothing here knows a tensor name of its own but GPT-2's embedding,
 * which llama.cpp's converter also writes as the output head. */
#include "loraft/gguf_export.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/arch.h"
#include "loraft/gguf.h"

/* The most keys an export writes of its own (beside those it copies from a source file). */
#define MAX_KVS 64

/* llama.cpp's general.file_type (enum llama_ftype) of a model whose 2-D weights are `type`. */
static uint64_t file_type(GgmlType type) {
    switch (type) {
    case GGML_F16:
        return 1; /* MOSTLY_F16 */
    case GGML_Q4_0:
        return 2;
    case GGML_Q4_1:
        return 3;
    case GGML_Q8_0:
        return 7;
    case GGML_Q5_0:
        return 8;
    case GGML_Q5_1:
        return 9;
    case GGML_BF16:
        return 32;
    default:
        return 0; /* ALL_F32 */
    }
}

/* The tensors being written and the memory behind them. */
typedef struct Out {
    GgufWriteTensor *ts;
    char (*names)[GGUF_MAX_NAME];
    int n;
    unsigned char *data; /* every tensor's bytes, back to back */
    size_t used, cap;
} Out;

static int out_init(Out *o, int max_tensors, size_t bytes, LfError *err) {
    memset(o, 0, sizeof *o);
    o->ts = calloc((size_t)max_tensors, sizeof *o->ts);
    o->names = calloc((size_t)max_tensors, sizeof *o->names);
    o->data = malloc(bytes ? bytes : 1);
    o->cap = bytes;
    if (!o->ts || !o->names || !o->data) return lf_fail(err, "out of memory for the GGUF tensors");
    return 0;
}

static void out_free(Out *o) {
    free(o->ts);
    free(o->names);
    free(o->data);
}

/* Appends tensor `name`, loraft shape [rows, cols] (rows 0: 1-D of cols values) of values src,
 * in GGUF order and of type. Q/K rows (fix) are permuted for llama.cpp's RoPE with `heads`; a
 * GPT-2 Conv1D (GGUF_FIX_TRANSPOSE) is [out,in] in loraft as in GGUF and needs nothing. */
static int out_add(Out *o, const char *name, const float *src, int64_t rows, int64_t cols,
                   GgufFix fix, int heads, GgmlType type, LfError *err) {
    int64_t n = (rows ? rows : 1) * cols;
    float *tmp = NULL;
    if (fix == GGUF_FIX_UNPERMUTE_Q || fix == GGUF_FIX_UNPERMUTE_K) {
        tmp = malloc((size_t)n * sizeof *tmp);
        if (!tmp) return lf_fail(err, "out of memory");
        if (gguf_permute_rows(src, tmp, rows ? rows : cols, rows ? cols : 1, heads, err))
            return free(tmp), lf_wrap(err, "tensor '%s'", name);
        src = tmp;
    }
    size_t bytes = (size_t)(n / quant_block_elems(type)) * (size_t)quant_block_bytes(type);
    int rc = o->used + bytes > o->cap
                 ? lf_fail(err, "tensor '%s': GGUF buffer too small", name)
                 : quant_quantize(type, src, (size_t)n, o->data + o->used, err);
    free(tmp);
    if (rc) return -1;
    snprintf(o->names[o->n], GGUF_MAX_NAME, "%s", name);
    o->ts[o->n] = (GgufWriteTensor){
        o->names[o->n], type, rows ? 2 : 1, {cols, rows ? rows : 1, 1, 1}, o->data + o->used};
    o->used += bytes;
    o->n++;
    return 0;
}

/* GGUF name of HF parameter hf (suffix appended) and the fix it needs. */
static int gguf_name(const Model *m, const char *hf, const char *suffix, char *out, GgufFix *fix,
                     LfError *err) {
    char base[GGUF_MAX_NAME];
    if (gguf_name_of(arch_gguf_name(m->cfg.arch), hf, base, sizeof base, fix, err)) return -1;
    if ((size_t)snprintf(out, GGUF_MAX_NAME, "%s%s", base, suffix) >= GGUF_MAX_NAME)
        return lf_fail(err, "tensor '%s%s': name too long for GGUF", base, suffix);
    return 0;
}

static int heads_for(const Model *m, GgufFix fix) {
    return fix == GGUF_FIX_UNPERMUTE_Q ? m->cfg.num_heads : m->cfg.num_kv_heads;
}

/* A Llama-family or GPT-2 language model: llama.cpp has no place for a classifier or reward
 * head. */
static int check_decoder(const Model *m, const char *path, LfError *err) {
    if (!arch_is_llama(m->cfg.arch) && m->cfg.arch != ARCH_GPT2)
        return lf_fail(err,
                       "%s: GGUF export is for Llama-family and GPT-2 decoders (the model is %s)",
                       path, arch_name(m->cfg.arch));
    if (m->spec.task == TASK_REWARD)
        return lf_fail(err,
                       "%s: a reward model's score head has no place in a llama.cpp GGUF (loraft "
                       "writes language models); merge it as a Hugging Face directory (--format "
                       "hf): a LlamaForSequenceClassification",
                       path);
    return 0;
}

/* ------------------------------------------------------------------- adapters ---- */

/* The adapters in export order: the linears', then the token embedding's (Model.embedding_lora,
 * whose A loraft holds as llama.cpp's token_embd.weight.lora_a, [V,R]). */
static const Lora *adapter(const Model *m, int i) {
    return i < m->n_loras ? &m->loras[i] : &m->embedding_lora;
}
static const Param *adapted_weight(const Model *m, const Lora *lo) {
    return lo->base ? lo->base->w : m->word_embedding;
}

double gguf_adapter_alpha(const Model *m) {
    return (double)adapter(m, 0)->scale * adapter(m, 0)->r;
}

int gguf_export_adapter(Model *m, const char *path, LfError *err) {
    if (check_decoder(m, path, err)) return -1;
    if (m->token_rows.rows || m->head_token_rows.rows)
        return lf_fail(err,
                       "%s: trained token rows (trainable_token_indices) have no llama.cpp LoRA "
                       "form; merge them instead (loraft merge --format gguf writes them into "
                       "the table and the head)",
                       path);
    if (m->spec.strategy != STRATEGY_LORA || model_n_adapters(m) == 0)
        return lf_fail(err, "%s: the model has no LoRA adapter to export", path);
    if (init_splits(m->spec.init))
        return lf_fail(err,
                       "%s: a %s adapter (init_lora_weights %s) adapts the base weights' "
                       "residual, not the weights llama.cpp loads; merge it instead (loraft merge "
                       "--format gguf)",
                       path, m->spec.init == LORA_INIT_OLORA ? "OLoRA" : "PiSSA",
                       lora_init_name(m->spec.init));
    if (m->spec.use_dora)
        return lf_fail(err,
                       "%s: a DoRA adapter (use_dora) has no llama.cpp LoRA form; merge it instead "
                       "(loraft merge --format gguf)",
                       path);
    if (model_head_tied(m) && m->head->lora)
        return lf_fail(err,
                       "%s: an adapter on a tied lm_head has no llama.cpp form (llama.cpp's "
                       "head is token_embd itself; its converter refuses it too); merge it "
                       "instead (loraft merge --format gguf unties the head)",
                       path);
    if (model_head_tied(m) && m->embedding_lora.A)
        return lf_fail(err,
                       "%s: an adapter on the token embedding of a model whose head is tied to it "
                       "has no llama.cpp form: llama.cpp finds token_embd's adapter by name for "
                       "the tied head's matmul too and aborts there (ggml_can_mul_mat); merge it "
                       "instead (loraft merge --format gguf unties the head)",
                       path);
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].grad && !m->params[i].is_lora)
            return lf_fail(err,
                           "%s: the adapter trains '%s' (modules_to_save or lora.bias), which a "
                           "llama.cpp LoRA adapter cannot hold; merge it instead (loraft merge "
                           "--format gguf)",
                           path, m->params[i].name);
    float **slot;
    float *host = model_host_weights(m, 0, &slot, NULL, err);
    if (!host) return -1;
    size_t bytes = 0;
    for (int i = 0; i < model_n_adapters(m); i++)
        bytes += (adapter(m, i)->A->numel + adapter(m, i)->B->numel) * 4;
    Out o;
    int rc = out_init(&o, 2 * model_n_adapters(m), bytes, err);
    double alpha = gguf_adapter_alpha(m);
    for (int i = 0; rc == 0 && i < model_n_adapters(m); i++) {
        const Lora *lo = adapter(m, i);
        const char *w = adapted_weight(m, lo)->name;
        char name[GGUF_MAX_NAME];
        float *B = slot[lo->B - m->params], f = (float)((double)lo->scale * lo->r / alpha);
        for (size_t j = 0; f != 1.0f && j < lo->B->numel; j++) B[j] *= f;
        GgufFix fix;
        rc = gguf_name(m, w, ".lora_a", name, &fix, err) ||
                     out_add(&o, name, slot[lo->A - m->params], lo->A->shape[0], lo->A->shape[1],
                             GGUF_FIX_NONE, 0, GGML_F32, err) ||
                     gguf_name(m, w, ".lora_b", name, &fix, err) ||
                     out_add(&o, name, B, lo->B->shape[0], lo->B->shape[1], fix, heads_for(m, fix),
                             GGML_F32, err)
                 ? -1
                 : 0;
    }
    const GgufWriteKV kvs[] = {
        {.key = "general.architecture", .type = GGUF_STRING, .s = arch_gguf_name(m->cfg.arch)},
        {.key = "general.type", .type = GGUF_STRING, .s = "adapter"},
        {.key = "general.name", .type = GGUF_STRING, .s = "loraft LoRA adapter"},
        {.key = "adapter.type", .type = GGUF_STRING, .s = "lora"},
        {.key = "adapter.lora.alpha", .type = GGUF_FLOAT32, .f = alpha},
    };
    if (rc == 0)
        rc =
            gguf_write(path, kvs, sizeof kvs / sizeof *kvs, o.ts, o.n, GGUF_DEFAULT_ALIGNMENT, err);
    out_free(&o);
    free(host);
    free(slot);
    return rc;
}

/* --------------------------------------------------------------- merged models ---- */

/* The keys a merged file takes from its source: tokenizer.* and general.* but those that
 * describe the file itself, which the export writes. */
static int copied_key(const char *key) {
    static const char *const own[] = {"general.architecture", "general.type", "general.file_type",
                                      "general.quantization_version", "general.alignment"};
    if (strncmp(key, "tokenizer.", 10) == 0) return 1;
    if (strncmp(key, "general.", 8) != 0) return 0;
    for (size_t i = 0; i < sizeof own / sizeof *own; i++)
        if (strcmp(key, own[i]) == 0) return 0;
    return 1;
}

/* Room for the names of llama_kvs' keys, which carry the architecture's prefix, and for Gemma's
 * flags of the windowed layers. */
typedef struct KeyStore {
    char names[23][64];
    unsigned char windowed[GGUF_MAX_LAYERS];
} KeyStore;

/* Gemma's keys beyond Llama's (ks->names 19 on): the windowed layers as a flag a layer (llama.cpp's
 * gemma2 and gemma3 read one; their converters write none, for the pattern llama.cpp assumes),
 * Gemma 3's windowed layers' RoPE base as rope.freq_base_swa (read likewise), and the soft-caps as
 * the converters write them: Gemma 2's both, Gemma 3's final one where it has one. */
static int gemma_kvs(const ModelConfig *c, GgufWriteKV *kv, KeyStore *ks) {
    int n = 0, g3 = c->arch == ARCH_GEMMA3;
    for (int l = 0; l < c->num_layers && l < GGUF_MAX_LAYERS; l++)
        ks->windowed[l] = model_layer_window(c, l) > 0;
    kv[n++] = (GgufWriteKV){.key = ks->names[19],
                            .type = GGUF_ARRAY,
                            .elem_type = GGUF_BOOL,
                            .n = (uint64_t)c->num_layers,
                            .arr = ks->windowed};
    if (g3)
        kv[n++] =
            (GgufWriteKV){.key = ks->names[20], .type = GGUF_FLOAT32, .f = c->rope_local_theta};
    if (!g3)
        kv[n++] = (GgufWriteKV){.key = ks->names[21], .type = GGUF_FLOAT32, .f = c->attn_softcap};
    if (!g3 || c->final_softcap)
        kv[n++] = (GgufWriteKV){.key = ks->names[22], .type = GGUF_FLOAT32, .f = c->final_softcap};
    return n;
}

/* Phi-3's keys beyond Llama's (names in ks), as llama.cpp's converter writes them:
 * attention.sliding_window always (0: none; llama.cpp's phi3 reads it and computes without a
 * window, the same within it), the original context (past which llama.cpp takes the long factors)
 * and longrope's attention factor as rope.scaling.attn_factor, what it multiplies cos and sin by.
 */
static int phi3_kvs(const ModelConfig *c, GgufWriteKV *kv, KeyStore *ks) {
    const RopeScaling *r = &c->rope_scaling;
    int n = 0;
    kv[n++] =
        (GgufWriteKV){.key = ks->names[14], .type = GGUF_UINT32, .u = (uint64_t)c->sliding_window};
    if (r->original_max_positions > 0)
        kv[n++] = (GgufWriteKV){
            .key = ks->names[15], .type = GGUF_UINT32, .u = (uint64_t)r->original_max_positions};
    if (r->type == ROPE_LONGROPE)
        kv[n++] =
            (GgufWriteKV){.key = ks->names[18], .type = GGUF_FLOAT32, .f = r->attention_factor};
    return n;
}

/* The `llama.*` (or `qwen2.*`, `qwen3.*`, ...; a Mistral's are llama's: arch_gguf_name)
 * hyper-parameters of cfg, as convert_hf_to_gguf.py writes them (a head_dim as key_length and
 * value_length), their names in ks; Gemma's own: gemma_kvs. A Mistral's sliding_window as
 * attention.sliding_window (llama.cpp's key of the archs with one; its converter writes none for
 * Mistral, and llama.cpp reads none for llama). YaRN as llama.cpp computes it: its betas, and the
 * attention factor as attn_factor, what llama.cpp multiplies its own 0.1 ln(factor) + 1 by (it
 * ignores the converter's yarn_attn_factor); dynamic NTK as no scaling: the same frequencies up to
 * context_length; Phi-3's own: phi3_kvs. */
static int llama_kvs(const ModelConfig *c, GgufWriteKV *kv, KeyStore *ks) {
    static const char *const keys[] = {"context_length",
                                       "embedding_length",
                                       "block_count",
                                       "feed_forward_length",
                                       "attention.head_count",
                                       "attention.head_count_kv",
                                       "rope.dimension_count",
                                       "vocab_size",
                                       "rope.freq_base",
                                       "attention.layer_norm_rms_epsilon",
                                       "rope.scaling.type",
                                       "rope.scaling.factor",
                                       "attention.key_length",
                                       "attention.value_length",
                                       "attention.sliding_window",
                                       "rope.scaling.original_context_length",
                                       "rope.scaling.yarn_beta_fast",
                                       "rope.scaling.yarn_beta_slow",
                                       "rope.scaling.attn_factor",
                                       "attention.sliding_window_pattern",
                                       "rope.freq_base_swa",
                                       "attn_logit_softcapping",
                                       "final_logit_softcapping"};
    const int vals[] = {c->max_positions, c->hidden_size,  c->num_layers,       c->ffn_size,
                        c->num_heads,     c->num_kv_heads, model_rotary_dim(c), c->vocab_size};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        snprintf(ks->names[i], sizeof ks->names[i], "%s.%s", arch_gguf_name(c->arch), keys[i]);
    int n = 0;
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++)
        kv[n++] = (GgufWriteKV){.key = ks->names[i], .type = GGUF_UINT32, .u = (uint64_t)vals[i]};
    kv[n++] = (GgufWriteKV){.key = ks->names[8], .type = GGUF_FLOAT32, .f = c->rope_theta};
    kv[n++] = (GgufWriteKV){.key = ks->names[9], .type = GGUF_FLOAT32, .f = c->layer_norm_eps};
    const RopeScaling *r = &c->rope_scaling;
    if (r->type == ROPE_LINEAR || r->type == ROPE_YARN) {
        const char *type = r->type == ROPE_LINEAR ? "linear" : "yarn";
        kv[n++] = (GgufWriteKV){.key = ks->names[10], .type = GGUF_STRING, .s = type};
        kv[n++] = (GgufWriteKV){.key = ks->names[11], .type = GGUF_FLOAT32, .f = r->factor};
    }
    if (r->type == ROPE_YARN) {
        kv[n++] = (GgufWriteKV){
            .key = ks->names[15], .type = GGUF_UINT32, .u = (uint64_t)r->original_max_positions};
        /* llama.cpp multiplies its own 0.1 ln(factor) + 1 by attn_factor */
        double own = r->factor > 1 ? 0.1 * log(r->factor) + 1 : 1;
        const float yarn[] = {r->beta_fast, r->beta_slow, (float)(r->attention_factor / own)};
        for (int i = 0; i < 3; i++)
            kv[n++] = (GgufWriteKV){.key = ks->names[16 + i], .type = GGUF_FLOAT32, .f = yarn[i]};
    }
    for (int i = 12; c->head_dim && i < 14; i++)
        kv[n++] =
            (GgufWriteKV){.key = ks->names[i], .type = GGUF_UINT32, .u = (uint64_t)c->head_dim};
    if ((c->arch == ARCH_MISTRAL || arch_is_gemma(c->arch)) && c->sliding_window)
        kv[n++] = (GgufWriteKV){
            .key = ks->names[14], .type = GGUF_UINT32, .u = (uint64_t)c->sliding_window};
    return arch_is_gemma(c->arch) ? n + gemma_kvs(c, kv + n, ks)
           : c->arch == ARCH_PHI3 ? n + phi3_kvs(c, kv + n, ks)
                                  : n;
}

/* The `gpt2.*` hyper-parameters of cfg, as convert_hf_to_gguf.py's GPT2Model writes them. */
static int gpt2_kvs(const ModelConfig *c, GgufWriteKV *kv) {
    static const char *const keys[] = {"gpt2.context_length", "gpt2.embedding_length",
                                       "gpt2.feed_forward_length", "gpt2.block_count",
                                       "gpt2.attention.head_count"};
    const int vals[] = {c->max_positions, c->hidden_size, c->ffn_size, c->num_layers, c->num_heads};
    int n = 0;
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        kv[n++] = (GgufWriteKV){.key = keys[i], .type = GGUF_UINT32, .u = (uint64_t)vals[i]};
    kv[n++] = (GgufWriteKV){
        .key = "gpt2.attention.layer_norm_epsilon", .type = GGUF_FLOAT32, .f = c->layer_norm_eps};
    return n;
}

/* A BPE vocabulary's tokenizer.ggml.* keys (bpe_to_arrays): byte-level ("gpt2": pre-tokenizer
 * name and merges) or SentencePiece ("llama": scores, add_space_prefix, the unknown token, no
 * merges, as llama.cpp's converter writes them). */
static int vocab_kvs(const BpeArrays *b, GgufWriteKV *kv) {
    int spm = b->model && !strcmp(b->model, "llama"), n = 0;
    kv[n++] = (GgufWriteKV){
        .key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = spm ? "llama" : "gpt2"};
    if (!spm)
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.pre", .type = GGUF_STRING, .s = b->pre};
    kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.tokens",
                            .type = GGUF_ARRAY,
                            .elem_type = GGUF_STRING,
                            .n = (uint64_t)b->n_tokens,
                            .arr = b->tokens};
    if (spm)
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.scores",
                                .type = GGUF_ARRAY,
                                .elem_type = GGUF_FLOAT32,
                                .n = (uint64_t)b->n_tokens,
                                .arr = b->scores};
    kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.token_type",
                            .type = GGUF_ARRAY,
                            .elem_type = GGUF_INT32,
                            .n = (uint64_t)b->n_tokens,
                            .arr = b->token_types};
    if (!spm)
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.merges",
                                .type = GGUF_ARRAY,
                                .elem_type = GGUF_STRING,
                                .n = (uint64_t)b->n_merges,
                                .arr = b->merges};
    if (spm && b->unk_id >= 0)
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.unknown_token_id",
                                .type = GGUF_UINT32,
                                .u = (uint64_t)b->unk_id};
    if (spm)
        kv[n++] = (GgufWriteKV){
            .key = "tokenizer.ggml.add_space_prefix", .type = GGUF_BOOL, .b = !b->no_space_prefix};
    kv[n++] =
        (GgufWriteKV){.key = "tokenizer.ggml.add_bos_token", .type = GGUF_BOOL, .b = b->add_bos};
    return n;
}

/* Tokenizer metadata when there is no source file: vocab's (NULL: none), with the special ids
 * loraft knows. */
static int plain_tokenizer_kvs(const ModelConfig *c, const BpeArrays *vocab, GgufWriteKV *kv) {
    int n = 0;
    kv[n++] = (GgufWriteKV){.key = "general.name", .type = GGUF_STRING, .s = "loraft merged model"};
    if (vocab)
        n += vocab_kvs(vocab, kv + n);
    else
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.model", .type = GGUF_STRING, .s = "none"};
    if (c->bos_token_id >= 0)
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.bos_token_id",
                                .type = GGUF_UINT32,
                                .u = (uint64_t)c->bos_token_id};
    if (c->eos_token_id >= 0)
        kv[n++] = (GgufWriteKV){.key = "tokenizer.ggml.eos_token_id",
                                .type = GGUF_UINT32,
                                .u = (uint64_t)c->eos_token_id};
    return n;
}

/* GPT-2's tied head: llama.cpp's converter writes output.weight as a copy of token_embd (and
 * loraft's loader skips it). */
static int copies_to_output(const Model *m, const char *gguf_name) {
    return m->cfg.arch == ARCH_GPT2 && strcmp(gguf_name, "token_embd.weight") == 0;
}

/* The bytes of the merged tensors, every 2-D one as `type` (the most a Q8_0 row can take is
 * F16's 2 bytes per value, so this bounds a mix of the two), the embedding twice for GPT-2 and
 * for a head the merge unties, and room for RoPE's divisors (longrope's two sets). */
static size_t merged_bytes(const Model *m, GgmlType type) {
    size_t bytes = sizeof(float) * 2 * ROPE_MAX_PAIRS;
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].in_checkpoint)
            bytes += m->params[i].numel * (m->params[i].ndim == 2 && type != GGML_F32 ? 2 : 4);
    if (m->cfg.arch == ARCH_GPT2 || model_merge_unties(m))
        bytes += (size_t)m->cfg.vocab_size * m->cfg.hidden_size * 4;
    return bytes;
}

/* The merged file's metadata: its own keys, llama.* from the config (their names in ks), and
 * the source's tokenizer.* and general.* keys (src NULL: plain_tokenizer_kvs). Returns the
 * count. */
static int merged_kvs(const Model *m, GgmlType type, const Gguf *src, const BpeArrays *vocab,
                      GgufWriteKV *kv, KeyStore *ks) {
    int n = 0;
    kv[n++] = (GgufWriteKV){
        .key = "general.architecture", .type = GGUF_STRING, .s = arch_gguf_name(m->cfg.arch)};
    kv[n++] = (GgufWriteKV){.key = "general.type", .type = GGUF_STRING, .s = "model"};
    kv[n++] = (GgufWriteKV){.key = "general.file_type", .type = GGUF_UINT32, .u = file_type(type)};
    kv[n++] = (GgufWriteKV){.key = "general.quantization_version", .type = GGUF_UINT32, .u = 2};
    n += m->cfg.arch == ARCH_GPT2 ? gpt2_kvs(&m->cfg, kv + n) : llama_kvs(&m->cfg, kv + n, ks);
    if (!src) return n + plain_tokenizer_kvs(&m->cfg, vocab, kv + n);
    for (int i = 0; i < src->n_kvs; i++)
        if (copied_key(src->kvs[i].key))
            kv[n++] = (GgufWriteKV){.key = src->kvs[i].key, .copy = &src->kvs[i]};
    return n;
}

/* RoPE's tensors as llama.cpp's converter writes them: llama3's scaling as rope_freqs' divisors,
 * longrope's factors as rope_factors_short and _long (F32). */
static int rope_tensors(const ModelConfig *c, Out *o, LfError *err) {
    float divisors[ROPE_MAX_PAIRS];
    const RopeScaling *r = &c->rope_scaling;
    int n = model_rope_divisors(c, divisors);
    if (n && out_add(o, GGUF_ROPE_FREQS, divisors, 0, n, GGUF_FIX_NONE, 0, GGML_F32, err))
        return -1;
    if (r->type != ROPE_LONGROPE) return 0;
    return out_add(o, GGUF_ROPE_SHORT, r->divisors, 0, r->n_divisors, GGUF_FIX_NONE, 0, GGML_F32,
                   err) ||
                   out_add(o, GGUF_ROPE_LONG, r->long_divisors, 0, r->n_divisors, GGUF_FIX_NONE, 0,
                           GGML_F32, err)
               ? -1
               : 0;
}

/* Every base parameter into o from its merged host values slot[i], 2-D ones as type, after RoPE's
 * tensors; head (or NULL): the head the merge untied, as output.weight after token_embd's. */
static int merged_tensors(const Model *m, float *const *slot, float *head, GgmlType type, Out *o,
                          LfError *err) {
    if (rope_tensors(&m->cfg, o, err)) return -1;
    for (int i = 0; i < m->n_params; i++) {
        const Param *p = &m->params[i];
        if (!p->in_checkpoint) continue;
        char name[GGUF_MAX_NAME];
        GgufFix fix;
        GgmlType t = p->ndim == 1 ? GGML_F32 : type;
        if (p->shape[1] % quant_block_elems(t)) t = GGML_F16; /* as llama.cpp's converter */
        int two_d = p->ndim == 2;
        int64_t rows = two_d ? p->shape[0] : 0, cols = two_d ? p->shape[1] : p->shape[0];
        for (size_t j = 0; p->plus_one && j < p->numel; j++)
            slot[i][j] += 1.0f; /* what the norm multiplies by, as llama.cpp's converter writes
                                   Gemma's (a host copy of the model's) */
        if (gguf_name(m, p->name, "", name, &fix, err) ||
            out_add(o, name, slot[i], rows, cols, fix, heads_for(m, fix), t, err))
            return -1;
        float *output = copies_to_output(m, name) ? slot[i] : p == m->word_embedding ? head : NULL;
        if (output && (gguf_name(m, "lm_head.weight", "", name, &fix, err) ||
                       out_add(o, name, output, rows, cols, fix, 0, t, err)))
            return -1;
    }
    return 0;
}

/* What llama.cpp's gemma2 and gemma3 compute otherwise: an attention scalar other than the one
 * they derive from the layer count (gguf_gemma_attn_scalar); gemma3's RoPE scaling but linear
 * (it would turn its windowed layers by YaRN's too) and attention soft-capped (it never caps it);
 * gemma2 without both soft-caps (it always divides by them), its head untied (it reads token_embd
 * as the head: its converter drops lm_head) and llama3's RoPE scaling (it reads no rope_freqs). */
static int check_gemma(const ModelConfig *c, const char *path, LfError *err) {
    static const char *const hf = "merge it as a Hugging Face directory (--format hf)";
    const char *arch = arch_gguf_name(c->arch);
    int g2 = c->arch == ARCH_GEMMA2, layers_27b = gguf_gemma_27b_layers(arch);
    int scalar = gguf_gemma_attn_scalar(arch, c->num_layers, c->hidden_size, c->num_heads,
                                        model_head_size(c));
    RopeType rope = c->rope_scaling.type;
    if (c->query_pre_attn_scalar != (float)scalar)
        return lf_fail(
            err,
            "%s: query_pre_attn_scalar %g: llama.cpp's %s scales attention by 1 / "
            "sqrt(%d) at %d layers (hidden / heads at %d layers, else the head size); %s",
            path, c->query_pre_attn_scalar, arch, scalar, c->num_layers, layers_27b, hf);
    if (!g2 && rope != ROPE_DEFAULT && rope != ROPE_LINEAR)
        return lf_fail(err,
                       "%s: Gemma 3's RoPE scaling has a llama.cpp GGUF form only when linear; %s",
                       path, hf);
    if (!g2 && c->attn_softcap)
        return lf_fail(err,
                       "%s: attn_logit_softcapping %g: llama.cpp's gemma3 does not soft-cap "
                       "attention scores; %s",
                       path, c->attn_softcap, hf);
    if (g2 && !(c->attn_softcap > 0 && c->final_softcap > 0))
        return lf_fail(err,
                       "%s: attn_logit_softcapping %g, final_logit_softcapping %g (0: none): "
                       "llama.cpp's gemma2 always soft-caps both; %s",
                       path, c->attn_softcap, c->final_softcap, hf);
    if (g2 && !c->tie_word_embeddings)
        return lf_fail(err,
                       "%s: an untied head: llama.cpp's gemma2 reads token_embd as its head (its "
                       "converter drops lm_head); %s",
                       path, hf);
    if (g2 && (rope == ROPE_LLAMA3 || rope == ROPE_DIVISORS))
        return lf_fail(err, "%s: llama3 RoPE scaling: llama.cpp's gemma2 reads no rope_freqs; %s",
                       path, hf);
    return 0;
}

/* What a llama.cpp GGUF cannot say: per-layer sliding windows (its qwen2, qwen3 and smollm3 have
 * none; phi3's every-layer one is written, as its converter does), NoPE layers other than every
 * fourth (smollm3's fixed step), YaRN without truncate (llama.cpp always rounds the ramp's ends),
 * phi3's heads other than hidden / heads wide (it sizes attention's output [hidden, hidden]) and
 * Gemma's forms check_gemma refuses. */
static int check_gguf_form(const ModelConfig *c, const char *path, LfError *err) {
    int windows = c->arch == ARCH_MISTRAL || arch_is_gemma(c->arch) || c->arch == ARCH_PHI3;
    if (arch_is_gemma(c->arch) && check_gemma(c, path, err)) return -1;
    if (c->arch == ARCH_PHI3 && c->num_heads * model_head_size(c) != c->hidden_size)
        return lf_fail(err,
                       "%s: head_dim %d: llama.cpp's phi3 needs heads of hidden_size / "
                       "num_attention_heads (%d / %d); merge it as a Hugging Face directory "
                       "(--format hf)",
                       path, model_head_size(c), c->hidden_size, c->num_heads);
    for (int l = 0; !windows && l < c->num_layers; l++)
        if (model_layer_window(c, l))
            return lf_fail(err,
                           "%s: layer %d's sliding window (use_sliding_window) has no place in a "
                           "llama.cpp %s GGUF; merge it as a Hugging Face directory (--format hf)",
                           path, l, arch_gguf_name(c->arch));
    for (int l = 0; c->arch == ARCH_SMOLLM3 && l < c->num_layers; l++)
        if (!model_layer_rope(c, l) != ((l + 1) % SMOLLM3_NOPE_STEP == 0))
            return lf_fail(err,
                           "%s: layer %d's RoPE: llama.cpp's smollm3 leaves out RoPE in every "
                           "fourth layer only (no_rope_layers differs); merge it as a Hugging Face "
                           "directory (--format hf)",
                           path, l);
    if (c->rope_scaling.type == ROPE_YARN && c->rope_scaling.untruncated)
        return lf_fail(err,
                       "%s: YaRN with truncate false has no llama.cpp GGUF form; merge it as a "
                       "Hugging Face directory (--format hf)",
                       path);
    return 0;
}

int gguf_export_model(Model *m, const char *path, GgmlType type, const char *source_gguf,
                      const BpeArrays *vocab, LfError *err) {
    ModelConfig merged = m->cfg; /* as the merge writes it */
    merged.tie_word_embeddings = merged.tie_word_embeddings && !model_merge_unties(m);
    if (check_decoder(m, path, err) || check_gguf_form(&merged, path, err)) return -1;
    if (!quant_can_quantize(type))
        return lf_fail(err, "%s: tensor type %s: expected one of %s", path,
                       quant_type_name(type) ? quant_type_name(type) : "?", quant_quantize_list());
    Gguf src = {0};
    if (source_gguf && gguf_open(&src, source_gguf, err)) return -1;
    GgufWriteKV *kv = calloc((size_t)src.n_kvs + MAX_KVS, sizeof *kv);
    float **slot = NULL, *head;
    float *host = model_host_weights(m, 1, &slot, &head, err);
    Out o;
    int rc = !host ? -1 : out_init(&o, m->n_params + 3, merged_bytes(m, type), err);
    if (rc == 0 && !kv) rc = lf_fail(err, "out of memory");
    if (rc == 0) rc = merged_tensors(m, slot, head, type, &o, err);
    if (rc == 0) {
        KeyStore *ks = malloc(sizeof *ks);
        int n = ks ? merged_kvs(m, type, source_gguf ? &src : NULL, vocab, kv, ks) : 0;
        rc = ks ? gguf_write(path, kv, n, o.ts, o.n, GGUF_DEFAULT_ALIGNMENT, err)
                : lf_fail(err, "out of memory");
        free(ks);
    }
    if (host) out_free(&o);
    free(host);
    free(slot);
    free(kv);
    gguf_close(&src);
    return rc;
}
