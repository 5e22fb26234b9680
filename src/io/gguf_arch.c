/* gguf_arch.c: what a GGUF file's metadata and tensor names mean for the decoder families
 * loraft knows, Llama (and Qwen2, Llama with q, k, v biases; Qwen3, with q and k head norms;
 * Gemma 2 and 3, with norms of their own; Phi-3, with fused projections and longrope) and GPT-2:
 * the GgufArch config, the GGUF <-> Hugging Face tensor names (one table per architecture, read
 * both ways), and the Q/K row permutation llama.cpp's converter applies to Llama's (not Qwen2's:
 * llama.cpp rotates its halves as transformers does; see gguf.h). Names follow llama.cpp's
 * convert_hf_to_gguf.py (blk.N.attn_q, ...) and transformers' LlamaForCausalLM / Qwen2ForCausalLM /
 * GPT2LMHeadModel. Deliberately not a model loader: it reads no tensor data and does not check that
 * every layer's tensors are present. */
#include "loraft/gguf.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ GgufArch ---- */

/* `<arch>.<name>` as a positive int; absent is an error unless def > 0 (then *out = def). */
static int arch_int(const Gguf *g, const char *arch, const char *name, int def, int *out,
                    LfError *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    uint32_t v;
    if (def > 0 && !gguf_find_kv(g, key)) {
        *out = def;
        return 0;
    }
    if (gguf_get_u32(g, key, &v, err)) return -1;
    if (v == 0 || v > INT_MAX)
        return lf_fail(err, "%s: %s is %u, expected a positive int", g->path, key, v);
    *out = (int)v;
    return 0;
}

/* `<arch>.<name>` as a positive float; absent gives def when def > 0. */
static int arch_float(const Gguf *g, const char *arch, const char *name, float def, float *out,
                      LfError *err) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    if (def > 0 && !gguf_find_kv(g, key)) {
        *out = def;
        return 0;
    }
    if (gguf_get_f32(g, key, out, err)) return -1;
    if (!(*out > 0 && isfinite(*out)))
        return lf_fail(err, "%s: %s is %g, expected a finite value > 0", g->path, key, *out);
    return 0;
}

/* An optional token id: -1 when absent. */
static int token_id(const Gguf *g, const char *key, int *out, LfError *err) {
    uint32_t v;
    *out = -1;
    if (!gguf_find_kv(g, key)) return 0;
    if (gguf_get_u32(g, key, &v, err)) return -1;
    *out = v > INT_MAX ? -1 : (int)v;
    return 0;
}

/* Tensor `name` must be 2-D with HF shape [rows, cols]. */
static int check_matrix(const Gguf *g, const char *name, int64_t rows, int64_t cols,
                        const char *why, LfError *err) {
    const GgufTensor *t = gguf_find_tensor(g, name);
    if (!t) return lf_fail(err, "%s: tensor '%s' not found", g->path, name);
    if (t->n_dims != 2 || t->ne[1] != rows || t->ne[0] != cols)
        return lf_fail(err,
                       "%s: tensor '%s' has ne [%" PRId64 ", %" PRId64 "] (n_dims %d), "
                       "expected HF shape [%" PRId64 ", %" PRId64 "] (%s)",
                       g->path, name, t->ne[0], t->ne[1], t->n_dims, rows, cols, why);
    return 0;
}

/* The vocabulary: the token list, else <arch>.vocab_size, else token_embd's rows. */
static int vocab_size(const Gguf *g, GgufArch *a, LfError *err) {
    char key[64];
    snprintf(key, sizeof key, "%s.vocab_size", a->arch);
    size_t n;
    const GgufTensor *emb = gguf_find_tensor(g, "token_embd.weight");
    if (gguf_find_kv(g, "tokenizer.ggml.tokens")) {
        if (gguf_get_arr_len(g, "tokenizer.ggml.tokens", &n, err)) return -1;
        if (n == 0 || n > INT_MAX)
            return lf_fail(err, "%s: tokenizer.ggml.tokens has %zu tokens", g->path, n);
        a->vocab_size = (int)n;
    } else if (gguf_find_kv(g, key)) {
        if (arch_int(g, a->arch, "vocab_size", 0, &a->vocab_size, err)) return -1;
    } else if (emb && emb->n_dims == 2 && emb->ne[1] > 0 && emb->ne[1] <= INT_MAX) {
        a->vocab_size = (int)emb->ne[1];
    } else {
        return lf_fail(err,
                       "%s: no vocabulary size (no tokenizer.ggml.tokens, %s or 2-D "
                       "token_embd.weight)",
                       g->path, key);
    }
    return 0;
}

/* An optional `<arch>.rope.scaling.<name>` float: def when absent. */
static int scaling_float(const Gguf *g, const char *arch, const char *name, float def, float *out,
                         LfError *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.%s", arch, name);
    *out = def;
    if (!gguf_find_kv(g, key)) return 0;
    if (gguf_get_f32(g, key, out, err)) return -1;
    if (!(*out >= 0 && *out <= 1e6f))
        return lf_fail(err, "%s: %s %g is out of range [0, 1e6]", g->path, key, *out);
    return 0;
}

/* YaRN's keys beyond the factor, as llama.cpp computes them: the attention factor is its
 * 0.1 ln(factor) + 1 times rope.scaling.attn_factor; the yarn_attn_factor that llama.cpp's
 * converter writes from transformers' attention_factor, and llama.cpp then ignores, must agree
 * with it (else which one the file means is unclear). Its own variants that transformers' YaRN
 * does not compute are refused. */
static int yarn_keys(const Gguf *g, GgufArch *a, LfError *err) {
    float ext = 1, log_mul = 0, attn = 0;
    if (arch_int(g, a->arch, "rope.scaling.original_context_length", a->context_length,
                 &a->rope_orig_ctx, err) ||
        scaling_float(g, a->arch, "yarn_beta_fast", 32, &a->yarn_beta_fast, err) ||
        scaling_float(g, a->arch, "yarn_beta_slow", 1, &a->yarn_beta_slow, err) ||
        scaling_float(g, a->arch, "yarn_attn_factor", 0, &attn, err) ||
        scaling_float(g, a->arch, "yarn_ext_factor", 1, &ext, err) ||
        scaling_float(g, a->arch, "yarn_log_multiplier", 0, &log_mul, err))
        return -1;
    if (ext != 1 || log_mul != 0)
        return lf_fail(err,
                       "%s: YaRN with %s.rope.scaling.yarn_ext_factor %g or yarn_log_multiplier %g "
                       "is not supported (1 and 0: transformers' YaRN)",
                       g->path, a->arch, ext, log_mul);
    if (!(rope_number_ok(a->yarn_beta_fast) && rope_number_ok(a->yarn_beta_slow)))
        return lf_fail(err,
                       "%s: YaRN's yarn_beta_fast and yarn_beta_slow must be in " ROPE_NUMBER_RANGE,
                       g->path);
    double computed = (0.1 * log(a->rope_factor) + 1) * a->rope_attn_factor;
    if (a->rope_factor <= 1) computed = a->rope_attn_factor;
    if (attn && fabs(attn - computed) > 1e-6 * computed)
        return lf_fail(err,
                       "%s: %s.rope.scaling.yarn_attn_factor %g differs from the attention factor "
                       "llama.cpp computes (0.1 ln(factor) + 1) x rope.scaling.attn_factor = %g, "
                       "and ignores it: which one the file means is unclear",
                       g->path, a->arch, attn, computed);
    return 0;
}

int gguf_is_rope_tensor(const char *name) {
    return !strcmp(name, GGUF_ROPE_FREQS) || !strcmp(name, GGUF_ROPE_SHORT) ||
           !strcmp(name, GGUF_ROPE_LONG);
}

/* A RoPE tensor of a divisor of each pair's frequency: rot_dims / 2 positive finite values. */
static int read_divisors(const Gguf *g, const GgufArch *a, const char *name, float *out,
                         LfError *err) {
    int64_t n = a->rot_dims / 2;
    if (n > ROPE_MAX_PAIRS)
        return lf_fail(err, "%s: %s for %d rotary dims: at most %d", g->path, name, a->rot_dims,
                       2 * ROPE_MAX_PAIRS);
    if (gguf_read_f32(g, name, 1, &n, out, err)) return -1;
    for (int i = 0; i < n; i++)
        if (!rope_number_ok(out[i]))
            return lf_fail(err,
                           "%s: %s[%d] = %g: a frequency divisor must be in " ROPE_NUMBER_RANGE,
                           g->path, name, i, out[i]);
    return 0;
}

/* Phi-3's RoPE as llama.cpp's converter writes it and llama.cpp reads it: no scaling type or
 * rope_freqs, the original context (rope.scaling.original_context_length, default
 * context_length) and, for longrope, rope_factors_short and rope_factors_long (both or neither)
 * with the attention factor as rope.scaling.attn_factor (read already). */
static int phi3_rope(const Gguf *g, GgufArch *a, LfError *err) {
    const char *what = a->rope_factor > 0                     ? "rope.scaling.type (linear or yarn)"
                       : gguf_find_tensor(g, GGUF_ROPE_FREQS) ? GGUF_ROPE_FREQS
                                                              : NULL;
    if (what)
        return lf_fail(err,
                       "%s: phi3 with %s: not supported (Phi-3's RoPE scaling is longrope, "
                       "%s and %s)",
                       g->path, what, GGUF_ROPE_SHORT, GGUF_ROPE_LONG);
    if (arch_int(g, a->arch, "rope.scaling.original_context_length", a->context_length,
                 &a->rope_orig_ctx, err))
        return -1;
    int has_short = gguf_find_tensor(g, GGUF_ROPE_SHORT) != NULL;
    int has_long = gguf_find_tensor(g, GGUF_ROPE_LONG) != NULL;
    if (has_short != has_long)
        return lf_fail(err, "%s: %s without %s: longrope needs both", g->path,
                       has_short ? GGUF_ROPE_SHORT : GGUF_ROPE_LONG,
                       has_short ? GGUF_ROPE_LONG : GGUF_ROPE_SHORT);
    if (!has_short && a->rope_attn_factor != 1)
        return lf_fail(err,
                       "%s: phi3.rope.scaling.attn_factor %g without longrope's factors is not "
                       "supported (its cos and sin have no config.json form)",
                       g->path, a->rope_attn_factor);
    if (!has_short) return 0;
    if (read_divisors(g, a, GGUF_ROPE_SHORT, a->rope_short, err) ||
        read_divisors(g, a, GGUF_ROPE_LONG, a->rope_long, err))
        return -1;
    a->n_longrope = a->rot_dims / 2;
    return 0;
}

/* Llama's RoPE scaling: none, linear or yarn (a factor), or rope_freqs' divisor of each
 * frequency; Phi-3's: phi3_rope. */
static int rope_scaling(const Gguf *g, GgufArch *a, LfError *err) {
    const GgufStr *type = NULL;
    char key[64];
    snprintf(key, sizeof key, "%s.rope.scaling.type", a->arch);
    if (gguf_find_kv(g, key) && gguf_get_str(g, key, &type, err)) return -1;
    int linear = type && !strcmp(type->s, "linear");
    a->rope_yarn = type && !strcmp(type->s, "yarn");
    if (type && !linear && !a->rope_yarn && strcmp(type->s, "none") != 0)
        return lf_fail(err, "%s: RoPE scaling (%s '%.40s') is not supported (none, linear, yarn)",
                       g->path, key, type->s);
    if (linear || a->rope_yarn) {
        snprintf(key, sizeof key, "%s.rope.scaling.factor", a->arch);
        if (gguf_get_f32(g, key, &a->rope_factor, err)) return -1;
        if (!rope_number_ok(a->rope_factor))
            return lf_fail(err, "%s: %s %g is out of range " ROPE_NUMBER_RANGE, g->path, key,
                           a->rope_factor);
    }
    if (scaling_float(g, a->arch, "attn_factor", 1, &a->rope_attn_factor, err)) return -1;
    if (!(a->rope_attn_factor > 0))
        return lf_fail(err, "%s: %s.rope.scaling.attn_factor must be > 0", g->path, a->arch);
    if (!strcmp(a->arch, "phi3")) return phi3_rope(g, a, err);
    if (gguf_find_tensor(g, GGUF_ROPE_SHORT) || gguf_find_tensor(g, GGUF_ROPE_LONG))
        return lf_fail(err, "%s: %s / %s (longrope) in a %s file: they are phi3's", g->path,
                       GGUF_ROPE_SHORT, GGUF_ROPE_LONG, a->arch);
    if (a->rope_attn_factor != 1 && !a->rope_yarn)
        return lf_fail(err,
                       "%s: %s.rope.scaling.attn_factor %g without YaRN is not supported (its cos "
                       "and sin have no config.json form)",
                       g->path, a->arch, a->rope_attn_factor);
    if (a->rope_yarn && yarn_keys(g, a, err)) return -1;
    const char *name = GGUF_ROPE_FREQS;
    if (!gguf_find_tensor(g, name)) return 0;
    if (linear || a->rope_yarn)
        return lf_fail(err, "%s: both %s RoPE scaling and %s: not supported", g->path,
                       linear ? "linear" : "yarn", name);
    if (read_divisors(g, a, name, a->rope_divisors, err)) return -1;
    a->n_rope_divisors = a->rot_dims / 2;
    return 0;
}

/* `<arch>.attention.sliding_window` where present: positive (phi3's converter writes 0 for
 * none). */
static int window_key(const Gguf *g, GgufArch *a, LfError *err) {
    char key[96];
    uint32_t w = 1;
    snprintf(key, sizeof key, "%s.attention.sliding_window", a->arch);
    if (!gguf_find_kv(g, key) ||
        (!strcmp(a->arch, "phi3") && !gguf_get_u32(g, key, &w, NULL) && w == 0))
        return 0;
    return arch_int(g, a->arch, "attention.sliding_window", 0, &a->sliding_window, err);
}

/* Llama's (and Qwen's) keys beyond the common ones, and the features loraft refuses. The head
 * size: attention.key_length (Qwen3's 128 whatever the width), else hidden / heads. */
static int llama_keys(const Gguf *g, GgufArch *a, LfError *err) {
    const char *arch = a->arch;
    int vlen = 0;
    char key[64];
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    if (!a->head_dim && !gguf_find_kv(g, key))
        return lf_fail(err,
                       "%s: %s.embedding_length %d is not a multiple of head_count %d and there "
                       "is no %s",
                       g->path, arch, a->hidden, a->n_heads, key);
    if (arch_int(g, arch, "attention.key_length", a->head_dim, &a->head_dim, err) ||
        arch_int(g, arch, "attention.value_length", a->head_dim, &vlen, err))
        return -1;
    if (vlen != a->head_dim)
        return lf_fail(err, "%s: %s.attention.value_length %d differs from key_length %d", g->path,
                       arch, vlen, a->head_dim);
    if (window_key(g, a, err) ||
        arch_int(g, arch, "attention.head_count_kv", a->n_heads, &a->n_kv_heads, err) ||
        arch_float(g, arch, "rope.freq_base", 10000.0f, &a->rope_theta, err) ||
        arch_float(g, arch, "attention.layer_norm_rms_epsilon", 0, &a->norm_eps, err))
        return -1;
    if (a->n_heads % a->n_kv_heads)
        return lf_fail(err, "%s: %s.attention.head_count %d is not a multiple of head_count_kv %d",
                       g->path, arch, a->n_heads, a->n_kv_heads);
    if (arch_int(g, arch, "rope.dimension_count", a->head_dim, &a->rot_dims, err)) return -1;
    int partial_ok = !strcmp(arch, "phi3") && a->rot_dims >= 2 && a->rot_dims % 2 == 0 &&
                     a->rot_dims < a->head_dim;
    if (a->rot_dims != a->head_dim && !partial_ok)
        return lf_fail(err,
                       "%s: %s.rope.dimension_count %d differs from the head size %d: partial "
                       "rotary embeddings are phi3's only, an even count below the head size",
                       g->path, arch, a->rot_dims, a->head_dim);
    if (rope_scaling(g, a, err)) return -1;
    uint32_t experts = 0;
    snprintf(key, sizeof key, "%s.expert_count", arch);
    if (gguf_find_kv(g, key) && gguf_get_u32(g, key, &experts, err)) return -1;
    if (experts > 1)
        return lf_fail(err, "%s: mixture-of-experts models (%s %u) are not supported", g->path, key,
                       experts);
    return 0;
}

/* A logit soft-capping `<arch>.<name>`: def when absent; finite and positive, or 0 (none) where
 * zero_ok (llama.cpp's gemma2 divides by its caps whatever they are). */
static int softcap_key(const Gguf *g, const char *arch, const char *name, float def, int zero_ok,
                       float *out, LfError *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    *out = def;
    if (gguf_find_kv(g, key) && gguf_get_f32(g, key, out, err)) return -1;
    if (!(isfinite(*out) && (*out > 0 || (zero_ok && *out == 0))))
        return lf_fail(err, "%s: %s is %g, expected a finite soft-cap > 0%s", g->path, key, *out,
                       zero_ok ? " (or 0: none)" : "");
    return 0;
}

int gguf_gemma_27b_layers(const char *arch) {
    return !strcmp(arch, "gemma2") ? 46 : 62;
}

int gguf_gemma_attn_scalar(const char *arch, int n_layers, int hidden, int n_heads, int head_dim) {
    return n_layers == gguf_gemma_27b_layers(arch) ? hidden / n_heads : head_dim;
}

/* Which layers have the window: `<arch>.attention.sliding_window_pattern` as llama.cpp reads it, a
 * flag a layer, or every n-th layer full (absent: every step-th). */
static int gemma_windowed(const Gguf *g, GgufArch *a, int step, LfError *err) {
    char key[96];
    snprintf(key, sizeof key, "%s.attention.sliding_window_pattern", a->arch);
    const GgufKV *kv = gguf_find_kv(g, key);
    if (kv && kv->type == GGUF_ARRAY) {
        int32_t flags[GGUF_MAX_LAYERS];
        size_t n;
        if (gguf_get_arr_len(g, key, &n, err)) return -1;
        if (n != (size_t)a->n_layers)
            return lf_fail(err, "%s: %s has %zu entries for %d layers", g->path, key, n,
                           a->n_layers);
        if (gguf_get_arr_i32(g, key, flags, n, err)) return -1;
        for (int l = 0; l < a->n_layers; l++) a->windowed[l] = flags[l] != 0;
        return 0;
    }
    if (kv && arch_int(g, a->arch, "attention.sliding_window_pattern", 0, &step, err)) return -1;
    for (int l = 0; l < a->n_layers; l++) a->windowed[l] = l % step < step - 1;
    return 0;
}

/* Gemma's keys beyond Llama's, as llama.cpp reads them: the windowed layers (every other one by
 * default for gemma2, every sixth full for gemma3), gemma2's window (default 4096: it always has
 * one), the windowed layers' RoPE base (gemma3's rope.freq_base_swa, default 10000; gemma2's must
 * be rope.freq_base, loraft's Gemma 2 having one), the soft-capping (gemma2: attention default 50,
 * final logits 30; gemma3: the final logits' alone, default 0, an attention cap it would ignore
 * refused) and the attention scalar llama.cpp derives. */
static int gemma_keys(const Gguf *g, GgufArch *a, LfError *err) {
    int g2 = !strcmp(a->arch, "gemma2");
    float gemma3_attn_cap = 0;
    if (a->n_layers > GGUF_MAX_LAYERS)
        return lf_fail(err, "%s: %d layers: at most %d", g->path, a->n_layers, GGUF_MAX_LAYERS);
    if (g2 && !a->sliding_window) a->sliding_window = 4096;
    if (gemma_windowed(g, a, g2 ? 2 : 6, err) ||
        arch_float(g, a->arch, "rope.freq_base_swa", g2 ? a->rope_theta : 10000.0f,
                   &a->rope_theta_swa, err) ||
        softcap_key(g, a->arch, "attn_logit_softcapping", g2 ? 50 : 0, !g2,
                    g2 ? &a->attn_softcap : &gemma3_attn_cap, err) ||
        softcap_key(g, a->arch, "final_logit_softcapping", g2 ? 30 : 0, !g2, &a->final_softcap,
                    err))
        return -1;
    if (g2 && a->rope_theta_swa != a->rope_theta)
        return lf_fail(err,
                       "%s: gemma2.rope.freq_base_swa %g differs from rope.freq_base %g: a RoPE "
                       "base of the windowed layers' own is not supported (Gemma 2 has one)",
                       g->path, a->rope_theta_swa, a->rope_theta);
    if (gemma3_attn_cap != 0)
        return lf_fail(err,
                       "%s: gemma3.attn_logit_softcapping %g: llama.cpp's gemma3 ignores it and "
                       "does not soft-cap attention, so which the file means is unclear",
                       g->path, gemma3_attn_cap);
    a->attn_scalar =
        (float)gguf_gemma_attn_scalar(a->arch, a->n_layers, a->hidden, a->n_heads, a->head_dim);
    return 0;
}

/* GPT-2 keys beyond the common ones; its position table must match context_length. */
static int gpt2_keys(const Gguf *g, GgufArch *a, LfError *err) {
    a->n_kv_heads = a->n_heads;
    a->rope_theta = 0;
    if (arch_float(g, "gpt2", "attention.layer_norm_epsilon", 0, &a->norm_eps, err)) return -1;
    return check_matrix(g, "position_embd.weight", a->context_length, a->hidden,
                        "[context_length, hidden]", err);
}

int gguf_arch(const Gguf *g, GgufArch *a, LfError *err) {
    memset(a, 0, sizeof *a);
    const GgufStr *arch;
    if (gguf_get_str(g, "general.architecture", &arch, err)) return -1;
    if (strcmp(arch->s, "llama") != 0 && strcmp(arch->s, "qwen2") != 0 &&
        strcmp(arch->s, "qwen3") != 0 && strcmp(arch->s, "smollm3") != 0 &&
        strcmp(arch->s, "gemma3") != 0 && strcmp(arch->s, "gemma2") != 0 &&
        strcmp(arch->s, "phi3") != 0 && strcmp(arch->s, "gpt2") != 0)
        return lf_fail(err,
                       "%s: architecture '%.40s' is not supported (llama, qwen2, qwen3, smollm3, "
                       "gemma3, gemma2, phi3, gpt2)",
                       g->path, arch->s);
    snprintf(a->arch, sizeof a->arch, "%s", arch->s);
    if (arch_int(g, a->arch, "block_count", 0, &a->n_layers, err) ||
        arch_int(g, a->arch, "embedding_length", 0, &a->hidden, err) ||
        arch_int(g, a->arch, "feed_forward_length", 0, &a->ffn, err) ||
        arch_int(g, a->arch, "attention.head_count", 0, &a->n_heads, err) ||
        arch_int(g, a->arch, "context_length", 0, &a->context_length, err))
        return -1;
    a->head_dim = a->hidden % a->n_heads ? 0 : a->hidden / a->n_heads; /* llama: or key_length */
    if (!strcmp(a->arch, "gpt2") && !a->head_dim)
        return lf_fail(err, "%s: %s.embedding_length %d is not a multiple of head_count %d",
                       g->path, a->arch, a->hidden, a->n_heads);
    int rc = strcmp(a->arch, "gpt2") != 0 ? llama_keys(g, a, err) : gpt2_keys(g, a, err);
    if (!rc && (!strcmp(a->arch, "gemma3") || !strcmp(a->arch, "gemma2")))
        rc = gemma_keys(g, a, err);
    if (rc || vocab_size(g, a, err) ||
        check_matrix(g, "token_embd.weight", a->vocab_size, a->hidden, "[vocab, hidden]", err))
        return -1;
    a->tied_embeddings = gguf_find_tensor(g, "output.weight") == NULL;
    if (!a->tied_embeddings &&
        check_matrix(g, "output.weight", a->vocab_size, a->hidden, "[vocab, hidden]", err))
        return -1;
    if (token_id(g, "tokenizer.ggml.bos_token_id", &a->bos_token_id, err) ||
        token_id(g, "tokenizer.ggml.eos_token_id", &a->eos_token_id, err) ||
        token_id(g, "tokenizer.ggml.padding_token_id", &a->pad_token_id, err))
        return -1;
    return 0;
}

/* ----------------------------------------------------------------- HF names ---- */

typedef struct NameMap {
    const char *gguf, *hf; /* module names, without .weight / .bias */
    GgufFix fix;           /* for .weight (a permutation applies to .bias too) */
} NameMap;

static const NameMap llama_global[] = {
    {"token_embd", "model.embed_tokens", GGUF_FIX_NONE},
    {"output_norm", "model.norm", GGUF_FIX_NONE},
    {"output", "lm_head", GGUF_FIX_NONE},
    {NULL, NULL, GGUF_FIX_NONE},
};
static const NameMap llama_layer[] = {
    {"attn_norm", "input_layernorm", GGUF_FIX_NONE},
    {"attn_q", "self_attn.q_proj", GGUF_FIX_UNPERMUTE_Q},
    {"attn_k", "self_attn.k_proj", GGUF_FIX_UNPERMUTE_K},
    {"attn_v", "self_attn.v_proj", GGUF_FIX_NONE},
    {"attn_output", "self_attn.o_proj", GGUF_FIX_NONE},
    {"ffn_norm", "post_attention_layernorm", GGUF_FIX_NONE},
    {"ffn_gate", "mlp.gate_proj", GGUF_FIX_NONE},
    {"ffn_up", "mlp.up_proj", GGUF_FIX_NONE},
    {"ffn_down", "mlp.down_proj", GGUF_FIX_NONE},
    {NULL, NULL, GGUF_FIX_NONE},
};
/* Qwen3's and Gemma 3's head norms, beside their layers' other names */
static const NameMap qk_norm_layer[] = {
    {"attn_q_norm", "self_attn.q_norm", GGUF_FIX_NONE},
    {"attn_k_norm", "self_attn.k_norm", GGUF_FIX_NONE},
    {NULL, NULL, GGUF_FIX_NONE},
};
/* Gemma 2 and 3: Llama's names but for its norms (llama.cpp's converter stores every one as 1 + the
 * weight: what the norm multiplies by); q and k as HF stores them */
static const NameMap gemma_layer[] = {
    {"attn_norm", "input_layernorm", GGUF_FIX_NONE},
    {"attn_q", "self_attn.q_proj", GGUF_FIX_NONE},
    {"attn_k", "self_attn.k_proj", GGUF_FIX_NONE},
    {"attn_v", "self_attn.v_proj", GGUF_FIX_NONE},
    {"attn_output", "self_attn.o_proj", GGUF_FIX_NONE},
    {"post_attention_norm", "post_attention_layernorm", GGUF_FIX_NONE},
    {"ffn_norm", "pre_feedforward_layernorm", GGUF_FIX_NONE},
    {"ffn_gate", "mlp.gate_proj", GGUF_FIX_NONE},
    {"ffn_up", "mlp.up_proj", GGUF_FIX_NONE},
    {"ffn_down", "mlp.down_proj", GGUF_FIX_NONE},
    {"post_ffw_norm", "post_feedforward_layernorm", GGUF_FIX_NONE},
    {NULL, NULL, GGUF_FIX_NONE},
};
/* Phi-3: q, k and v one linear, gate and up one (rows [gate | up], which llama.cpp's SwiGLU splits
 * in that order), neither permuted: llama.cpp turns phi3's by NEOX RoPE, HF's halves */
static const NameMap phi3_layer[] = {
    {"attn_norm", "input_layernorm", GGUF_FIX_NONE},
    {"attn_qkv", "self_attn.qkv_proj", GGUF_FIX_NONE},
    {"attn_output", "self_attn.o_proj", GGUF_FIX_NONE},
    {"ffn_norm", "post_attention_layernorm", GGUF_FIX_NONE},
    {"ffn_up", "mlp.gate_up_proj", GGUF_FIX_NONE},
    {"ffn_down", "mlp.down_proj", GGUF_FIX_NONE},
    {NULL, NULL, GGUF_FIX_NONE},
};
static const NameMap gpt2_global[] = {
    {"token_embd", "transformer.wte", GGUF_FIX_NONE},
    {"position_embd", "transformer.wpe", GGUF_FIX_NONE},
    {"output_norm", "transformer.ln_f", GGUF_FIX_NONE},
    {"output", "lm_head", GGUF_FIX_NONE},
    {NULL, NULL, GGUF_FIX_NONE},
};
static const NameMap gpt2_layer[] = {
    {"attn_norm", "ln_1", GGUF_FIX_NONE},
    {"attn_qkv", "attn.c_attn", GGUF_FIX_TRANSPOSE},
    {"attn_output", "attn.c_proj", GGUF_FIX_TRANSPOSE},
    {"ffn_norm", "ln_2", GGUF_FIX_NONE},
    {"ffn_up", "mlp.c_fc", GGUF_FIX_TRANSPOSE},
    {"ffn_down", "mlp.c_proj", GGUF_FIX_TRANSPOSE},
    {NULL, NULL, GGUF_FIX_NONE},
};

/* One architecture's names: the GGUF layer prefix is "blk", HF's layer_prefix; a layer's modules
 * are in layer and extra (NULL: none); permuted: q's and k's rows are in llama.cpp's order (the
 * map's GGUF_FIX_UNPERMUTE_*), else as HF stores them. */
typedef struct ArchNames {
    const char *arch, *layer_prefix;
    const NameMap *global, *layer, *extra;
    int permuted;
} ArchNames;

static const ArchNames arch_names[] = {
    {"llama", "model.layers", llama_global, llama_layer, NULL, 1},
    {"qwen2", "model.layers", llama_global, llama_layer, NULL, 0},
    {"qwen3", "model.layers", llama_global, llama_layer, qk_norm_layer, 0},
    {"smollm3", "model.layers", llama_global, llama_layer, NULL, 1}, /* llama's converter */
    {"gemma3", "model.layers", llama_global, gemma_layer, qk_norm_layer, 0},
    {"gemma2", "model.layers", llama_global, gemma_layer, NULL, 0},
    {"phi3", "model.layers", llama_global, phi3_layer, NULL, 0},
    {"gpt2", "transformer.h", gpt2_global, gpt2_layer, NULL, 0},
};

static const ArchNames *find_arch(const char *arch, LfError *err) {
    for (size_t i = 0; i < sizeof arch_names / sizeof *arch_names; i++)
        if (strcmp(arch_names[i].arch, arch) == 0) return &arch_names[i];
    lf_fail(err,
            "no Hugging Face names for architecture '%.40s' (llama, qwen2, qwen3, smollm3, gemma3, "
            "gemma2, phi3, gpt2)",
            arch);
    return NULL;
}

/* The entry whose GGUF (hf == 0) or HF (hf == 1) module name is module[0..len). */
static const NameMap *lookup(const NameMap *map, int hf, const char *module, size_t len) {
    for (; map->gguf; map++) {
        const char *name = hf ? map->hf : map->gguf;
        if (strlen(name) == len && memcmp(name, module, len) == 0) return map;
    }
    return NULL;
}

/* Splits "PREFIX.N.module.param" / "module.param" into layer (-1 for none), module and param
 * ("weight" or "bias"); -1 when the name has another form. */
static int split_name(const char *name, const char *prefix, long *layer, const char **module,
                      size_t *len, const char **param) {
    *layer = -1;
    size_t plen = strlen(prefix);
    if (strncmp(name, prefix, plen) == 0 && name[plen] == '.') {
        char *end;
        if (name[plen + 1] < '0' || name[plen + 1] > '9') return -1;
        *layer = strtol(name + plen + 1, &end, 10);
        if (*end != '.' || *layer > INT_MAX) return -1;
        name = end + 1;
    }
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0)) return -1;
    *module = name;
    *len = (size_t)(dot - name);
    *param = dot + 1;
    return 0;
}

/* The name of a tensor on the other side: from GGUF to HF (to_hf), or back. */
static int translate(const char *arch, const char *name, int to_hf, char *out, size_t cap,
                     GgufFix *fix, LfError *err) {
    const ArchNames *a = find_arch(arch, err);
    if (!a) return -1;
    const char *from_prefix = to_hf ? "blk" : a->layer_prefix;
    const char *to_prefix = to_hf ? a->layer_prefix : "blk";
    long layer;
    const char *module, *param;
    size_t len;
    const NameMap *m = NULL;
    if (split_name(name, from_prefix, &layer, &module, &len, &param) == 0) {
        m = lookup(layer < 0 ? a->global : a->layer, !to_hf, module, len);
        if (!m && layer >= 0 && a->extra) m = lookup(a->extra, !to_hf, module, len);
    }
    if (!m)
        return lf_fail(err, "tensor '%s' has no %s counterpart in a %s model", name,
                       to_hf ? "Hugging Face" : "GGUF", arch);
    const char *target = to_hf ? m->hf : m->gguf;
    int n = layer < 0 ? snprintf(out, cap, "%s.%s", target, param)
                      : snprintf(out, cap, "%s.%ld.%s.%s", to_prefix, layer, target, param);
    if (n < 0 || (size_t)n >= cap)
        return lf_fail(err, "tensor '%s': the %s name does not fit in %zu bytes", name,
                       to_hf ? "Hugging Face" : "GGUF", cap);
    int unpermute = m->fix == GGUF_FIX_UNPERMUTE_Q || m->fix == GGUF_FIX_UNPERMUTE_K;
    *fix =
        (m->fix == GGUF_FIX_TRANSPOSE && strcmp(param, "bias") == 0) || (unpermute && !a->permuted)
            ? GGUF_FIX_NONE
            : m->fix;
    return 0;
}

int gguf_hf_name(const char *arch, const char *gguf_name, char *out, size_t cap, GgufFix *fix,
                 LfError *err) {
    return translate(arch, gguf_name, 1, out, cap, fix, err);
}

int gguf_name_of(const char *arch, const char *hf_name, char *out, size_t cap, GgufFix *fix,
                 LfError *err) {
    return translate(arch, hf_name, 0, out, cap, fix, err);
}

/* ------------------------------------------------------------- Q/K permutation ---- */

/* Moves rows of row_bytes bytes between the two layouts of each head: GGUF row 2i + j <-> HF
 * row j * half + i. to_hf selects the direction. */
static int permute_rows(const void *in, void *out, int64_t rows, size_t row_bytes, int n_head,
                        int to_hf, LfError *err) {
    if (n_head <= 0 || rows < 0 || rows % (2 * (int64_t)n_head) != 0)
        return lf_fail(err,
                       "Q/K permutation: %" PRId64 " rows cannot be split into %d heads "
                       "of an even number of rows",
                       rows, n_head);
    if (row_bytes == 0) return 0; /* rows of nothing: no loop over a file's 2^60 of them */
    int64_t head_dim = rows / n_head, half = head_dim / 2;
    for (int64_t h = 0; h < n_head; h++)
        for (int64_t i = 0; i < half; i++)
            for (int64_t j = 0; j < 2; j++) {
                int64_t g = h * head_dim + 2 * i + j, f = h * head_dim + j * half + i;
                int64_t src = to_hf ? g : f, dst = to_hf ? f : g;
                memcpy((char *)out + dst * row_bytes, (const char *)in + src * row_bytes,
                       row_bytes);
            }
    return 0;
}

int gguf_unpermute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head,
                        LfError *err) {
    if (cols < 0) return lf_fail(err, "Q/K permutation: %" PRId64 " columns", cols);
    return permute_rows(in, out, rows, (size_t)cols * sizeof *in, n_head, 1, err);
}

int gguf_permute_rows(const float *in, float *out, int64_t rows, int64_t cols, int n_head,
                      LfError *err) {
    if (cols < 0) return lf_fail(err, "Q/K permutation: %" PRId64 " columns", cols);
    return permute_rows(in, out, rows, (size_t)cols * sizeof *in, n_head, 0, err);
}

int gguf_unpermute_packed_rows(const void *in, void *out, int64_t rows, size_t row_bytes,
                               int n_head, LfError *err) {
    return permute_rows(in, out, rows, row_bytes, n_head, 1, err);
}
