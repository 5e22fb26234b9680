/* model_config.c: HF config.json <-> ModelConfig for DistilBERT, BERT, Llama, Qwen2, Qwen3,
 * Mistral, SmolLM3, Gemma 3 and GPT-2.
 * The plain numeric keys of each architecture are one table (JSON name, type,
 * field), used both to read and to write; the few keys with rules of their own
 * (activation, position embeddings, BERT's nullable classifier_dropout, GPT-2's n_inner,
 * labels)
 * are handled beside it. */
#include "loraft/model_config.h"

#include "loraft/fileio.h"
#include "loraft/gguf.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct Key {
    const char *name;
    int is_int; /* else float */
    size_t offset;
} Key;

#define INT_KEY(name, field)                                                                       \
    { name, 1, offsetof(ModelConfig, field) }
#define FLOAT_KEY(name, field)                                                                     \
    { name, 0, offsetof(ModelConfig, field) }

static const Key distilbert_keys[] = {
    INT_KEY("vocab_size", vocab_size),
    INT_KEY("max_position_embeddings", max_positions),
    INT_KEY("n_layers", num_layers),
    INT_KEY("n_heads", num_heads),
    INT_KEY("dim", hidden_size),
    INT_KEY("hidden_dim", ffn_size),
    FLOAT_KEY("dropout", hidden_dropout),
    FLOAT_KEY("attention_dropout", attention_dropout),
    FLOAT_KEY("seq_classif_dropout", classifier_dropout),
    FLOAT_KEY("initializer_range", initializer_range),
    INT_KEY("pad_token_id", pad_token_id),
    {NULL, 0, 0},
};

static const Key bert_keys[] = {
    INT_KEY("vocab_size", vocab_size),
    INT_KEY("max_position_embeddings", max_positions),
    INT_KEY("num_hidden_layers", num_layers),
    INT_KEY("num_attention_heads", num_heads),
    INT_KEY("hidden_size", hidden_size),
    INT_KEY("intermediate_size", ffn_size),
    INT_KEY("type_vocab_size", type_vocab_size),
    FLOAT_KEY("hidden_dropout_prob", hidden_dropout),
    FLOAT_KEY("attention_probs_dropout_prob", attention_dropout),
    FLOAT_KEY("initializer_range", initializer_range),
    FLOAT_KEY("layer_norm_eps", layer_norm_eps),
    INT_KEY("pad_token_id", pad_token_id),
    {NULL, 0, 0},
};

static const Key llama_keys[] = {
    INT_KEY("vocab_size", vocab_size),
    INT_KEY("max_position_embeddings", max_positions),
    INT_KEY("num_hidden_layers", num_layers),
    INT_KEY("num_attention_heads", num_heads),
    INT_KEY("num_key_value_heads", num_kv_heads),
    INT_KEY("hidden_size", hidden_size),
    INT_KEY("intermediate_size", ffn_size),
    FLOAT_KEY("rms_norm_eps", layer_norm_eps),
    FLOAT_KEY("rope_theta", rope_theta),
    FLOAT_KEY("attention_dropout", attention_dropout),
    FLOAT_KEY("initializer_range", initializer_range),
    INT_KEY("pad_token_id", pad_token_id),
    INT_KEY("bos_token_id", bos_token_id),
    INT_KEY("eos_token_id", eos_token_id),
    {NULL, 0, 0},
};

/* GPT-2's n_inner (null: 4 * n_embd) and tie_word_embeddings are read beside the table. */
static const Key gpt2_keys[] = {
    INT_KEY("vocab_size", vocab_size),
    INT_KEY("n_positions", max_positions),
    INT_KEY("n_layer", num_layers),
    INT_KEY("n_head", num_heads),
    INT_KEY("n_embd", hidden_size),
    FLOAT_KEY("layer_norm_epsilon", layer_norm_eps),
    FLOAT_KEY("resid_pdrop", hidden_dropout),
    FLOAT_KEY("attn_pdrop", attention_dropout),
    FLOAT_KEY("embd_pdrop", embedding_dropout),
    FLOAT_KEY("initializer_range", initializer_range),
    INT_KEY("pad_token_id", pad_token_id),
    INT_KEY("bos_token_id", bos_token_id),
    INT_KEY("eos_token_id", eos_token_id),
    {NULL, 0, 0},
};

/* Per architecture: HF's names for the model type, the head class (and, for a decoder, the
 * class with a one-label score head: score_head) and the activation key. */
static const struct {
    const char *model_type, *architecture, *score_architecture, *activation_key;
    const Key *keys;
} arch_info[] = {
    [ARCH_DISTILBERT] = {"distilbert", "DistilBertForSequenceClassification", NULL, "activation",
                         distilbert_keys},
    [ARCH_BERT] = {"bert", "BertForSequenceClassification", NULL, "hidden_act", bert_keys},
    [ARCH_LLAMA] = {"llama", "LlamaForCausalLM", "LlamaForSequenceClassification", "hidden_act",
                    llama_keys},
    [ARCH_GPT2] = {"gpt2", "GPT2LMHeadModel", NULL, "activation_function", gpt2_keys},
    [ARCH_QWEN2] = {"qwen2", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification", "hidden_act",
                    llama_keys},
    [ARCH_QWEN3] = {"qwen3", "Qwen3ForCausalLM", "Qwen3ForSequenceClassification", "hidden_act",
                    llama_keys},
    [ARCH_MISTRAL] = {"mistral", "MistralForCausalLM", "MistralForSequenceClassification",
                      "hidden_act", llama_keys},
    [ARCH_SMOLLM3] = {"smollm3", "SmolLM3ForCausalLM", "SmolLM3ForSequenceClassification",
                      "hidden_act", llama_keys},
    [ARCH_GEMMA3] = {"gemma3_text", "Gemma3ForCausalLM", "Gemma3TextForSequenceClassification",
                     "hidden_activation", llama_keys},
    [ARCH_GEMMA2] = {"gemma2", "Gemma2ForCausalLM", "Gemma2ForSequenceClassification",
                     "hidden_activation", llama_keys},
    [ARCH_PHI3] = {"phi3", "Phi3ForCausalLM", "Phi3ForSequenceClassification", "hidden_act",
                   llama_keys},
};

/* Phi3Config's original_max_position_embeddings (kept, whatever the RoPE, in
 * rope_scaling.original_max_positions) */
#define PHI3_ORIGINAL 4096

static const struct {
    const char *name;
    Activation act;
} activations[] = {
    {"gelu", ACT_GELU}, {"gelu_new", ACT_GELU_TANH}, {"gelu_pytorch_tanh", ACT_GELU_TANH},
    {"relu", ACT_RELU}, {"silu", ACT_SILU},
};
#define N_ACTIVATIONS ((int)(sizeof activations / sizeof activations[0]))

const char *arch_name(Arch arch) {
    return arch_info[arch].model_type;
}

const char *arch_gguf_name(Arch arch) {
    return arch == ARCH_MISTRAL  ? "llama"
           : arch == ARCH_GEMMA3 ? "gemma3"
                                 : arch_info[arch].model_type;
}

void model_config_defaults(ModelConfig *cfg, Arch arch) {
    memset(cfg, 0, sizeof *cfg);
    cfg->arch = arch;
    cfg->vocab_size = 30522;
    cfg->hidden_size = 768;
    cfg->num_layers = arch == ARCH_BERT ? 12 : 6;
    cfg->num_heads = 12;
    cfg->ffn_size = 3072;
    cfg->max_positions = 512;
    cfg->type_vocab_size = arch == ARCH_BERT ? 2 : 0;
    cfg->activation = ACT_GELU;
    cfg->layer_norm_eps = 1e-12f;
    cfg->hidden_dropout = 0.1f;
    cfg->attention_dropout = 0.1f;
    cfg->classifier_dropout = arch == ARCH_BERT ? 0.1f : 0.2f;
    cfg->initializer_range = 0.02f;
    cfg->pad_token_id = 0;
    cfg->bos_token_id = cfg->eos_token_id = -1;
    cfg->num_labels = 2;
    for (int i = 0; i < MAX_LABELS; i++)
        snprintf(cfg->labels[i], sizeof cfg->labels[i], "LABEL_%d", i);
    if (arch_is_llama(arch)) { /* transformers' LlamaConfig() */
        cfg->vocab_size = 32000, cfg->hidden_size = 4096, cfg->num_layers = 32;
        cfg->num_heads = 32, cfg->ffn_size = 11008, cfg->max_positions = 2048;
        cfg->activation = ACT_SILU, cfg->layer_norm_eps = 1e-6f, cfg->rope_theta = 10000.0f;
        cfg->hidden_dropout = cfg->attention_dropout = cfg->classifier_dropout = 0.0f;
        cfg->pad_token_id = -1, cfg->bos_token_id = 1, cfg->eos_token_id = 2;
    }
    if (arch == ARCH_QWEN2 || arch == ARCH_QWEN3) { /* Qwen2Config()'s, Qwen3Config()'s */
        cfg->vocab_size = 151936, cfg->ffn_size = 22016, cfg->max_positions = 32768;
        cfg->bos_token_id = cfg->eos_token_id = -1;
        cfg->head_dim = arch == ARCH_QWEN3 ? 128 : 0;
    }
    if (arch == ARCH_MISTRAL) { /* MistralConfig()'s */
        cfg->ffn_size = 14336, cfg->num_kv_heads = 8, cfg->max_positions = 4096 * 32;
        cfg->sliding_window = 4096;
    }
    if (arch == ARCH_SMOLLM3) { /* SmolLM3Config()'s */
        cfg->vocab_size = 128256, cfg->hidden_size = 2048, cfg->ffn_size = 11008;
        cfg->num_layers = 36, cfg->num_heads = 16, cfg->num_kv_heads = 4;
        cfg->max_positions = 32768, cfg->rope_theta = 2000000.0f, cfg->tie_word_embeddings = 1;
        cfg->pad_token_id = 128004, cfg->bos_token_id = 128000, cfg->eos_token_id = 128001;
        model_config_nope_every(cfg, SMOLLM3_NOPE_STEP);
    }
    if (arch_is_gemma(arch)) { /* Gemma3TextConfig()'s, Gemma2Config()'s */
        int g3 = arch == ARCH_GEMMA3;
        cfg->vocab_size = g3 ? 262208 : 256000, cfg->hidden_size = 2304, cfg->ffn_size = 9216;
        cfg->num_layers = 26, cfg->num_heads = 8, cfg->num_kv_heads = 4, cfg->head_dim = 256;
        cfg->max_positions = g3 ? 131072 : 8192, cfg->activation = ACT_GELU_TANH;
        cfg->tie_word_embeddings = 1, cfg->query_pre_attn_scalar = 256;
        cfg->rope_theta = g3 ? 1000000.0f : 10000.0f, cfg->rope_local_theta = g3 ? 10000.0f : 0;
        cfg->attn_softcap = g3 ? 0 : 50.0f, cfg->final_softcap = g3 ? 0 : 30.0f;
        cfg->pad_token_id = 0, cfg->bos_token_id = 2, cfg->eos_token_id = 1;
        cfg->sliding_window = 4096;
        model_config_full_every(cfg, g3 ? GEMMA3_FULL_STEP : GEMMA2_FULL_STEP);
    }
    if (arch == ARCH_PHI3) { /* Phi3Config()'s */
        cfg->vocab_size = 32064, cfg->hidden_size = 3072, cfg->ffn_size = 8192;
        cfg->max_positions = 4096, cfg->layer_norm_eps = 1e-5f;
        cfg->pad_token_id = 32000, cfg->bos_token_id = 1, cfg->eos_token_id = 32000;
        cfg->rope_scaling.original_max_positions = PHI3_ORIGINAL;
    }
    if (arch == ARCH_GPT2) { /* transformers' GPT2Config() */
        cfg->vocab_size = 50257, cfg->max_positions = 1024, cfg->num_layers = 12;
        cfg->activation = ACT_GELU_TANH;
        cfg->layer_norm_eps = 1e-5f, cfg->embedding_dropout = 0.1f, cfg->classifier_dropout = 0;
        cfg->pad_token_id = -1, cfg->bos_token_id = cfg->eos_token_id = 50256;
        cfg->tie_word_embeddings = 1;
    }
    if (arch != ARCH_MISTRAL && arch != ARCH_SMOLLM3 && !arch_is_gemma(arch))
        cfg->num_kv_heads = cfg->num_heads;
}

/* ---------------------------------------------------------------------- load
 * ---- */

static const char *json_type(const cJSON *j) {
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "a list";
    return "an object";
}

static int read_int(const cJSON *j, const char *path, const char *key, int *out, LfError *err) {
    double v = j->valuedouble;
    if (!cJSON_IsNumber(j) || v != floor(v) || v < INT_MIN || v > INT_MAX)
        return lf_fail(err, "%s: key '%s' must be an integer (got %s)", path, key,
                       cJSON_IsNumber(j) ? "a non-integer number" : json_type(j));
    *out = (int)v;
    return 0;
}

static int read_float(const cJSON *j, const char *path, const char *key, float *out, LfError *err) {
    if (!cJSON_IsNumber(j) || !isfinite((float)j->valuedouble))
        return lf_fail(err, "%s: key '%s' must be a finite number (got %s)", path, key,
                       json_type(j));
    *out = (float)j->valuedouble;
    return 0;
}

/* A list eos_token_id (Llama 3.1 Instruct's, Gemma 3 instruct's): its first id is the model's
 * end of sequence, the others kept to be written back. */
static int load_eos_list(ModelConfig *cfg, const cJSON *list, const char *path, LfError *err) {
    int n = cJSON_GetArraySize(list);
    if (n < 1 || n > MODEL_MAX_EOS)
        return lf_fail(err, "%s: key 'eos_token_id' must be an id or a list of 1 to %d ids", path,
                       MODEL_MAX_EOS);
    for (int i = 0; i < n; i++) {
        int *id = i ? &cfg->eos_more[i - 1] : &cfg->eos_token_id;
        if (read_int(cJSON_GetArrayItem(list, i), path, "eos_token_id", id, err)) return -1;
    }
    cfg->n_eos_more = n - 1;
    return 0;
}

/* Reads every key of the table that is present; HF treats a null token id as unset (a null
 * pad_token_id keeps an encoder's default: the llama family's is unset, or SmolLM3's 128004). */
static int load_keys(ModelConfig *cfg, const cJSON *root, const Key *keys, const char *path,
                     LfError *err) {
    for (const Key *k = keys; k->name; k++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, k->name);
        int *id = (int *)((char *)cfg + k->offset);
        if (j && cJSON_IsNull(j) && strstr(k->name, "_token_id") &&
            (strcmp(k->name, "pad_token_id") || arch_is_llama(cfg->arch)))
            *id = -1; /* an unset bos / eos (the llama family: pad too) */
        if (!j || (cJSON_IsNull(j) && strstr(k->name, "_token_id"))) continue;
        if (cJSON_IsArray(j) && !strcmp(k->name, "eos_token_id")) {
            if (load_eos_list(cfg, j, path, err)) return -1;
            continue;
        }
        void *field = (char *)cfg + k->offset;
        if (k->is_int ? read_int(j, path, k->name, field, err)
                      : read_float(j, path, k->name, field, err))
            return -1;
    }
    return 0;
}

/* A string-valued key: NULL when absent, error when present with another type.
 */
static int get_string(const cJSON *root, const char *key, const char *path, const char **out,
                      LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!j) return 0;
    if (!cJSON_IsString(j))
        return lf_fail(err, "%s: key '%s' must be a string (got %s)", path, key, json_type(j));
    *out = j->valuestring;
    return 0;
}

static int load_activation(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    const char *key = arch_info[cfg->arch].activation_key, *name;
    if (get_string(root, key, path, &name, err)) return -1;
    if (!name) return 0;
    for (int i = 0; i < N_ACTIVATIONS; i++)
        if (!strcmp(name, activations[i].name)) {
            cfg->activation = activations[i].act;
            return 0;
        }
    return lf_fail(err,
                   "%s: key '%s': activation '%s' is not supported (supported: "
                   "gelu, gelu_new, gelu_pytorch_tanh, relu)",
                   path, key, name);
}

/* Position embeddings must be learned absolute ones; BERT's classifier_dropout
 * defaults to hidden_dropout_prob when null or absent. */
/* A boolean key (absent: the default already in *out). */
static int get_bool(const cJSON *root, const char *key, const char *path, int *out, LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return 0;
    if (!cJSON_IsBool(j))
        return lf_fail(err, "%s: key '%s' must be a boolean (got %s)", path, key, json_type(j));
    *out = cJSON_IsTrue(j);
    return 0;
}

/* A number key of RoPE's parameters obj, which its type needs. */
static int rope_number(const cJSON *obj, const char *key, const char *path, const char *type,
                       double *out, LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!j) return lf_fail(err, "%s: RoPE scaling '%s' needs the key '%s'", path, type, key);
    if (!cJSON_IsNumber(j) || !isfinite(j->valuedouble))
        return lf_fail(err, "%s: RoPE scaling key '%s' must be a finite number (got %s)", path, key,
                       json_type(j));
    *out = j->valuedouble;
    return 0;
}

/* A number key of obj that may be absent or null (then *out keeps its default). */
static int rope_optional(const cJSON *obj, const char *key, const char *path, double *out,
                         LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, key);
    return !j || cJSON_IsNull(j) ? 0 : rope_number(obj, key, path, "yarn", out, err);
}

/* YaRN's log-scaled attention factor for a factor (transformers' get_mscale). */
static double yarn_mscale(double factor, double mscale) {
    return factor <= 1 ? 1.0 : 0.1 * mscale * log(factor) + 1.0;
}

/* llama3's numbers, factor already read. */
static int load_llama3(RopeScaling *r, const cJSON *obj, const char *path, LfError *err) {
    double low = 0, high = 0, orig = 0;
    if (rope_number(obj, "low_freq_factor", path, "llama3", &low, err) ||
        rope_number(obj, "high_freq_factor", path, "llama3", &high, err) ||
        rope_number(obj, "original_max_position_embeddings", path, "llama3", &orig, err))
        return -1;
    if (!(rope_number_ok(low) && rope_number_ok(high) && (float)low < (float)high))
        return lf_fail(err,
                       "%s: RoPE llama3 scaling needs low_freq_factor < high_freq_factor (as "
                       "floats), both in " ROPE_NUMBER_RANGE " (got %g and %g)",
                       path, low, high);
    if (orig != floor(orig) || orig < 1 || orig > INT_MAX)
        return lf_fail(err,
                       "%s: RoPE original_max_position_embeddings %g is not a positive integer",
                       path, orig);
    r->type = ROPE_LLAMA3, r->low_freq_factor = (float)low, r->high_freq_factor = (float)high;
    r->original_max_positions = (int)orig;
    return 0;
}

/* YaRN's numbers as _compute_yarn_parameters reads them: factor (null: max_positions /
 * original_max_position_embeddings, which defaults to max_positions as transformers 5
 * standardises it), beta_fast and beta_slow (null or 0: 32 and 1), attention_factor, else from
 * factor, mscale and mscale_all_dim; truncate (default true). */
static int load_yarn(RopeScaling *r, const cJSON *obj, int max_positions, const char *path,
                     LfError *err) {
    double factor = 0, orig = max_positions, fast = 0, slow = 0, attn = NAN, ms = 0, ms_all = 0;
    int truncate = 1;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, "factor");
    if ((!cJSON_IsNull(f) && rope_number(obj, "factor", path, "yarn", &factor, err)) ||
        rope_optional(obj, "original_max_position_embeddings", path, &orig, err) ||
        rope_optional(obj, "beta_fast", path, &fast, err) ||
        rope_optional(obj, "beta_slow", path, &slow, err) ||
        rope_optional(obj, "attention_factor", path, &attn, err) ||
        rope_optional(obj, "mscale", path, &ms, err) ||
        rope_optional(obj, "mscale_all_dim", path, &ms_all, err) ||
        get_bool(obj, "truncate", path, &truncate, err))
        return -1;
    if (orig != floor(orig) || orig < 1 || orig > INT_MAX)
        return lf_fail(err,
                       "%s: RoPE original_max_position_embeddings %g is not a positive integer",
                       path, orig);
    if (cJSON_IsNull(f)) factor = max_positions / orig;
    if (!rope_number_ok(factor))
        return lf_fail(err, "%s: RoPE scaling factor %g is out of range " ROPE_NUMBER_RANGE, path,
                       factor);
    fast = fast ? fast : 32, slow = slow ? slow : 1;
    if (isnan(attn)) /* not given */
        attn = ms && ms_all ? yarn_mscale(factor, ms) / yarn_mscale(factor, ms_all)
                            : yarn_mscale(factor, 1);
    if (!(rope_number_ok(fast) && rope_number_ok(slow) && attn > 0 && attn <= 1e6))
        return lf_fail(err,
                       "%s: RoPE yarn needs beta_fast and beta_slow in " ROPE_NUMBER_RANGE
                       " and attention_factor in (0, 1e6] (got %g, %g and %g)",
                       path, fast, slow, attn);
    *r = (RopeScaling){.type = ROPE_YARN,
                       .factor = (float)factor,
                       .original_max_positions = (int)orig,
                       .beta_fast = (float)fast,
                       .beta_slow = (float)slow,
                       .attention_factor = (float)attn,
                       .untruncated = !truncate};
    return 0;
}

/* partial_rotary_factor in obj (the config, or its RoPE parameters, read after it and so
 * winning, as Phi3Config's setdefault): absent or null keeps what cfg has; 1 is the whole head.
 * Phi-3's alone (Phi-4-mini): RoPE over the first int(HS * factor) of each head, worked out in
 * double as transformers does; an odd count is refused (its pairs would not be rotate_half's). */
static int load_partial_rotary(ModelConfig *cfg, const cJSON *obj, const char *path, LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(obj, "partial_rotary_factor");
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsNumber(j))
        return lf_fail(err, "%s: key 'partial_rotary_factor' must be a number (got %s)", path,
                       json_type(j));
    double f = j->valuedouble;
    if (f == 1) return cfg->rotary_dim = 0, 0;
    if (cfg->arch != ARCH_PHI3)
        return lf_fail(err,
                       "%s: partial rotary embeddings (partial_rotary_factor %g) are phi3's only "
                       "(Phi-4-mini) in loraft",
                       path, f);
    int HS = model_head_size(cfg), dims = f > 0 && f < 1 ? (int)(HS * f) : -1;
    if (dims < 2 || dims % 2)
        return lf_fail(err,
                       "%s: partial_rotary_factor %g of head size %d: RoPE needs an even number "
                       "of dims, 2 or more, and a factor in (0, 1]",
                       path, f, HS);
    cfg->rotary_dim = dims;
    return 0;
}

/* partial_rotary_factor for config.json, as cJSON prints it (15 significant digits): r / HS or a
 * few parts in 1e15 above, the first that reads back as r dims (int(HS * factor), as transformers
 * and load_partial_rotary work it out: 1 / 3 printed would give one less); 1 for the whole head. */
static double partial_rotary_factor(const ModelConfig *cfg) {
    int HS = model_head_size(cfg), r = cfg->rotary_dim;
    if (!r || r == HS) return 1;
    char text[32];
    for (int k = 0; k < 100; k++) {
        snprintf(text, sizeof text, "%.15g", (double)r / HS * (1 + k * 1e-15));
        if ((int)(HS * strtod(text, NULL)) >= r) break;
    }
    return strtod(text, NULL);
}

/* A longrope factor list obj[key] into out: exactly n finite positive numbers (one a pair of the
 * head, whose frequency they divide). */
static int load_factor_list(const cJSON *obj, const char *key, int n, float *out, const char *path,
                            LfError *err) {
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!list) return lf_fail(err, "%s: RoPE scaling 'longrope' needs the key '%s'", path, key);
    int got = cJSON_IsArray(list) ? cJSON_GetArraySize(list) : -1;
    if (got != n)
        return lf_fail(err,
                       "%s: RoPE longrope key '%s' must be a list of %d numbers, one a pair of the "
                       "head (got %s of %d)",
                       path, key, n, got < 0 ? json_type(list) : "a list", got < 0 ? 0 : got);
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetArrayItem(list, i);
        double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
        if (!rope_number_ok(d))
            return lf_fail(err, "%s: RoPE longrope %s[%d] must be a number in " ROPE_NUMBER_RANGE,
                           path, key, i);
        out[i] = (float)d;
    }
    return 0;
}

/* longrope's attention factor as _compute_longrope_parameters works it out from factor (factor <=
 * 1: none), in double. */
static double longrope_mscale(double factor, double original) {
    return factor <= 1 ? 1.0 : sqrt(1 + log(factor) / log(original));
}

/* longrope's numbers as _compute_longrope_parameters reads them: short_factor and long_factor, one
 * a rotary pair each; original_max_position_embeddings, the config's top-level key (top; 0:
 * absent), which transformers reads over obj's: the two must agree, and one is needed;
 * attention_factor, else from factor, else from max_position_embeddings /
 * original_max_position_embeddings. */
static int load_longrope(RopeScaling *r, const cJSON *obj, const ModelConfig *cfg, int top,
                         const char *path, LfError *err) {
    int D = cfg->num_heads > 0 ? model_rotary_dim(cfg) : 0;
    double orig = 0, factor = NAN, attn = NAN;
    if (D < 2 || D / 2 > ROPE_MAX_PAIRS)
        return lf_fail(err, "%s: RoPE longrope: %d rotary dims have no factors (2 to %d)", path, D,
                       2 * ROPE_MAX_PAIRS);
    *r = (RopeScaling){.type = ROPE_LONGROPE, .n_divisors = D / 2};
    if (load_factor_list(obj, "short_factor", D / 2, r->divisors, path, err) ||
        load_factor_list(obj, "long_factor", D / 2, r->long_divisors, path, err) ||
        rope_optional(obj, "original_max_position_embeddings", path, &orig, err) ||
        rope_optional(obj, "factor", path, &factor, err) ||
        rope_optional(obj, "attention_factor", path, &attn, err))
        return -1;
    if (orig && (orig != floor(orig) || orig < 1 || orig > INT_MAX))
        return lf_fail(err,
                       "%s: RoPE original_max_position_embeddings %g is not a positive integer",
                       path, orig);
    if (top && orig && top != orig)
        return lf_fail(err,
                       "%s: RoPE longrope's original_max_position_embeddings %g differs from the "
                       "top-level one, %d, which transformers reads instead",
                       path, orig, top);
    r->original_max_positions = top ? top : (int)orig;
    if (!r->original_max_positions)
        return lf_fail(err, "%s: RoPE longrope needs original_max_position_embeddings", path);
    if (isnan(factor)) factor = (double)cfg->max_positions / r->original_max_positions;
    if (isnan(attn)) attn = longrope_mscale(factor, r->original_max_positions);
    if (!(attn > 0 && attn <= 1e6))
        return lf_fail(
            err,
            "%s: RoPE longrope's attention factor %g (factor %g, original context %d) is "
            "out of range (0, 1e6]",
            path, attn, factor, r->original_max_positions);
    r->attention_factor = (float)attn;
    return 0;
}

/* RoPE's type and its numbers from obj (rope_parameters, or rope_scaling), as transformers'
 * rope init functions read them: rope_type, else the older type; default, linear, llama3, yarn
 * and dynamic, or (phi3, whose Phi3Config takes no other) default and longrope, which it also
 * calls su and yarn, into r; cfg: the config so far (yarn's defaults, longrope's rotary dims), its
 * partial_rotary_factor read here; top: phi3's top-level original_max_position_embeddings (0:
 * absent). */
static int load_rope_type(RopeScaling *r, ModelConfig *cfg, const cJSON *obj, int top,
                          const char *path, LfError *err) {
    const char *type = NULL;
    int phi3 = cfg->arch == ARCH_PHI3;
    if (get_string(obj, "rope_type", path, &type, err) ||
        (!type && get_string(obj, "type", path, &type, err)) ||
        load_partial_rotary(cfg, obj, path, err))
        return -1;
    if (!type || !strcmp(type, "default")) return 0;
    if (phi3 && (!strcmp(type, "longrope") || !strcmp(type, "su") || !strcmp(type, "yarn")))
        return load_longrope(r, obj, cfg, top, path, err);
    if (phi3)
        return lf_fail(err,
                       "%s: RoPE scaling type '%.40s' is not supported for phi3 (Phi3Config's: "
                       "default, longrope, or its older names su and yarn)",
                       path, type);
    if (!strcmp(type, "yarn")) return load_yarn(r, obj, cfg->max_positions, path, err);
    double factor = 0;
    if (strcmp(type, "linear") && strcmp(type, "llama3") && strcmp(type, "dynamic"))
        return lf_fail(err,
                       "%s: RoPE scaling type '%.40s' is not supported (default, linear, llama3, "
                       "yarn, dynamic; longrope: phi3's)",
                       path, type);
    if (rope_number(obj, "factor", path, type, &factor, err)) return -1;
    if (!rope_number_ok(factor))
        return lf_fail(err, "%s: RoPE scaling factor %g is out of range " ROPE_NUMBER_RANGE, path,
                       factor);
    r->type = type[0] == 'd' ? ROPE_DYNAMIC : ROPE_LINEAR, r->factor = (float)factor;
    return strcmp(type, "llama3") ? 0 : load_llama3(r, obj, path, err);
}

int model_config_rope_scaling(ModelConfig *cfg, const char *json, LfError *err) {
    cJSON *obj = cJSON_Parse(json);
    int rc = cJSON_IsObject(obj)
                 ? load_rope_type(&cfg->rope_scaling, cfg, obj, 0, "rope_scaling", err)
                 : lf_fail(err, "'%.80s' is not a JSON object", json);
    cJSON_Delete(obj);
    return rc;
}

/* RoPE as transformers 5 reads it: rope_parameters (its rope_theta in it), else the older
 * rope_scaling beside rope_theta (which load_keys read). top: phi3's top-level
 * original_max_position_embeddings (0: absent). */
static int load_rope(ModelConfig *cfg, const cJSON *root, int top, const char *path, LfError *err) {
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *obj = params && !cJSON_IsNull(params) ? params : scaling;
    if (!obj || cJSON_IsNull(obj)) return 0;
    const char *key = obj == params ? "rope_parameters" : "rope_scaling";
    if (!cJSON_IsObject(obj))
        return lf_fail(err, "%s: key '%s' must be an object (got %s)", path, key, json_type(obj));
    const cJSON *theta = cJSON_GetObjectItemCaseSensitive(obj, "rope_theta");
    if (obj == params && theta &&
        read_float(theta, path, "rope_parameters.rope_theta", &cfg->rope_theta, err))
        return -1;
    return load_rope_type(&cfg->rope_scaling, cfg, obj, top, path, err);
}

/* A sliding_window key: an integer, or null for none (absent: the default *window). */
static int load_window_size(int *window, const cJSON *root, const char *path, LfError *err) {
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "sliding_window");
    if (!w) return 0;
    if (cJSON_IsNull(w)) return *window = 0, 0;
    if (read_int(w, path, "sliding_window", window, err)) return -1;
    if (*window < 1)
        return lf_fail(err, "%s: key 'sliding_window' must be a positive integer or null (got %d)",
                       path, *window);
    return 0;
}

/* Per-layer sliding windows as Qwen2Config, Qwen3Config, SmolLM3Config, Gemma3TextConfig and
 * Gemma2Config read them: sliding_window (default Qwen's and Gemma's 4096, SmolLM3's none) counts
 * only under use_sliding_window (Gemma: always); a layer attends through it where layer_types says
 * "sliding_attention", or without layer_types (Qwen) from layer max_window_layers (default 28) on,
 * (SmolLM3) where it has no RoPE, (Gemma 3) but every sliding_window_pattern-th (default 6), (Gemma
 * 2) but every second. A
 * "sliding_attention" layer without a window is refused, as transformers refuses it. Without a
 * window full_attention stays all 0, so that equal configs are equal structs. */
static int load_layer_windows(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    int smol = cfg->arch == ARCH_SMOLLM3, gemma = arch_is_gemma(cfg->arch);
    int use = gemma, first_windowed = 28, window = smol ? 0 : 4096, L = cfg->num_layers;
    int pattern = cfg->arch == ARCH_GEMMA3 ? GEMMA3_FULL_STEP : GEMMA2_FULL_STEP;
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    const cJSON *mwl = cJSON_GetObjectItemCaseSensitive(root, "max_window_layers");
    const cJSON *swp = cJSON_GetObjectItemCaseSensitive(root, "sliding_window_pattern");
    if ((!gemma && get_bool(root, "use_sliding_window", path, &use, err)) ||
        load_window_size(&window, root, path, err) ||
        (!smol && !gemma && mwl &&
         read_int(mwl, path, "max_window_layers", &first_windowed, err)) ||
        (cfg->arch == ARCH_GEMMA3 && swp &&
         read_int(swp, path, "sliding_window_pattern", &pattern, err)))
        return -1;
    if (pattern < 1)
        return lf_fail(err, "%s: key 'sliding_window_pattern' must be a positive integer (got %d)",
                       path, pattern);
    cfg->sliding_window = use ? window : 0;
    if (L < 1 || L > MODEL_MAX_LAYERS) return 0; /* model_config_validate says so */
    if (types && !cJSON_IsNull(types)) {
        memset(cfg->full_attention, 0, sizeof cfg->full_attention); /* past L: the defaults' */
        if (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != L)
            return lf_fail(err, "%s: key 'layer_types' must be a list of %d layer types", path, L);
        for (int l = 0; l < L; l++) {
            const cJSON *t = cJSON_GetArrayItem(types, l);
            const char *name = cJSON_IsString(t) ? t->valuestring : "";
            int sliding = !strcmp(name, "sliding_attention");
            if (!sliding && strcmp(name, "full_attention"))
                return lf_fail(err,
                               "%s: layer_types[%d] must be \"full_attention\" or "
                               "\"sliding_attention\"",
                               path, l);
            if (sliding && !cfg->sliding_window)
                return lf_fail(err,
                               "%s: layer_types[%d] is sliding_attention, but there is no window "
                               "(use_sliding_window false or sliding_window null)",
                               path, l);
            cfg->full_attention[l] = !sliding && cfg->sliding_window;
        }
        return 0;
    }
    if (gemma) return model_config_full_every(cfg, pattern), 0;
    for (int l = 0; l < L; l++)
        cfg->full_attention[l] =
            !(smol ? cfg->no_rope[l] : l >= first_windowed) && cfg->sliding_window;
    return 0;
}

/* Gemma 3's RoPE as Gemma3TextConfig reads it: rope_parameters per layer type (transformers 5:
 * full_attention's base and scaling, sliding_attention's base, which must be unscaled), else
 * rope_theta and rope_scaling for the full-attention layers and rope_local_base_freq for the
 * windowed ones. */
static int load_gemma_rope(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    const cJSON *local = cJSON_GetObjectItemCaseSensitive(root, "rope_local_base_freq");
    if (local && read_float(local, path, "rope_local_base_freq", &cfg->rope_local_theta, err))
        return -1;
    if (!params || cJSON_IsNull(params)) return load_rope(cfg, root, 0, path, err);
    const cJSON *full = cJSON_GetObjectItemCaseSensitive(params, "full_attention");
    const cJSON *sliding = cJSON_GetObjectItemCaseSensitive(params, "sliding_attention");
    if (!cJSON_IsObject(full) || !cJSON_IsObject(sliding))
        return lf_fail(err,
                       "%s: key 'rope_parameters' must have objects 'full_attention' and "
                       "'sliding_attention'",
                       path);
    const cJSON *theta = cJSON_GetObjectItemCaseSensitive(full, "rope_theta");
    const cJSON *local_theta = cJSON_GetObjectItemCaseSensitive(sliding, "rope_theta");
    RopeScaling unscaled = {0};
    if ((theta && read_float(theta, path, "rope_parameters.full_attention.rope_theta",
                             &cfg->rope_theta, err)) ||
        (local_theta &&
         read_float(local_theta, path, "rope_parameters.sliding_attention.rope_theta",
                    &cfg->rope_local_theta, err)) ||
        load_rope_type(&cfg->rope_scaling, cfg, full, 0, path, err) ||
        load_rope_type(&unscaled, cfg, sliding, 0, path, err))
        return -1;
    if (unscaled.type != ROPE_DEFAULT)
        return lf_fail(err, "%s: RoPE scaling of the sliding_attention layers is not supported",
                       path);
    return 0;
}

/* A soft-capping key (null: none, the default's where absent), positive. */
static int load_softcap(float *cap, const cJSON *root, const char *key, const char *path,
                        LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return 0;
    if (cJSON_IsNull(j)) return *cap = 0, 0;
    if (read_float(j, path, key, cap, err)) return -1;
    if (!(*cap > 0) || !isfinite(*cap))
        return lf_fail(err, "%s: key '%s' must be a positive number or null (got %g)", path, key,
                       *cap);
    return 0;
}

/* Gemma 2 and 3: what Gemma2Config and Gemma3TextConfig read beyond Llama's: the attention's
 * query_pre_attn_scalar and logit soft-capping, the final logits' soft-capping, the windows and
 * (Gemma 3) the windowed layers' RoPE base. The bidirectional variant (EmbeddingGemma) is
 * refused. */
static int load_gemma_specials(ModelConfig *cfg, const cJSON *root, const char *path,
                               LfError *err) {
    const cJSON *bidi = cJSON_GetObjectItemCaseSensitive(root, "use_bidirectional_attention");
    const cJSON *qs = cJSON_GetObjectItemCaseSensitive(root, "query_pre_attn_scalar");
    int bidirectional = 0;
    if ((bidi && !cJSON_IsNull(bidi) &&
         get_bool(root, "use_bidirectional_attention", path, &bidirectional, err)) ||
        (qs && read_float(qs, path, "query_pre_attn_scalar", &cfg->query_pre_attn_scalar, err)) ||
        load_softcap(&cfg->attn_softcap, root, "attn_logit_softcapping", path, err) ||
        load_softcap(&cfg->final_softcap, root, "final_logit_softcapping", path, err))
        return -1;
    if (bidirectional)
        return lf_fail(err, "%s: use_bidirectional_attention true is not supported", path);
    return load_layer_windows(cfg, root, path, err) ||
           (cfg->arch == ARCH_GEMMA3 ? load_gemma_rope(cfg, root, path, err)
                                     : load_rope(cfg, root, 0, path, err));
}

/* SmolLM3's NoPE layers: no_rope_layers (one a layer: 1 RoPE, 0 none), else every
 * no_rope_layer_interval-th (default 4), as SmolLM3Config computes it. */
static int load_no_rope(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    int interval = SMOLLM3_NOPE_STEP, L = cfg->num_layers;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "no_rope_layers");
    const cJSON *iv = cJSON_GetObjectItemCaseSensitive(root, "no_rope_layer_interval");
    if (iv && read_int(iv, path, "no_rope_layer_interval", &interval, err)) return -1;
    if (interval < 1)
        return lf_fail(err, "%s: key 'no_rope_layer_interval' must be a positive integer (got %d)",
                       path, interval);
    if (L < 1 || L > MODEL_MAX_LAYERS) return 0; /* model_config_validate says so */
    model_config_nope_every(cfg, interval);
    if (!list || cJSON_IsNull(list)) return 0;
    if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != L)
        return lf_fail(err, "%s: key 'no_rope_layers' must be a list of %d 0s and 1s", path, L);
    for (int l = 0; l < L; l++) {
        const cJSON *u = cJSON_GetArrayItem(list, l);
        if (!cJSON_IsNumber(u) || (u->valuedouble != 0 && u->valuedouble != 1))
            return lf_fail(err, "%s: no_rope_layers[%d] must be 0 or 1", path, l);
        cfg->no_rope[l] = u->valuedouble == 0;
    }
    return 0;
}

/* A dropout key of a site loraft's decoders do not have (Phi-3's resid_pdrop, embd_pdrop): absent
 * or 0. */
static int load_no_dropout(const cJSON *root, const char *key, const char *path, LfError *err) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    float p = 0;
    if (j && read_float(j, path, key, &p, err)) return -1;
    if (p != 0)
        return lf_fail(err,
                       "%s: key '%s' %g: loraft's decoders have no residual or embedding dropout "
                       "(0 only)",
                       path, key, p);
    return 0;
}

/* Phi-3: what Phi3Config reads beyond Llama's: resid_pdrop and embd_pdrop (0), sliding_window
 * (every layer's, as Mistral's; absent: none), and RoPE with the top-level
 * original_max_position_embeddings (Phi3Config's 4096 where absent), which transformers reads over
 * the RoPE parameters' own: longrope with only that one, and another number, would be read
 * otherwise by transformers, and is refused. */
static int load_phi3_specials(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "original_max_position_embeddings");
    int top = 0;
    if (load_no_dropout(root, "resid_pdrop", path, err) ||
        load_no_dropout(root, "embd_pdrop", path, err) ||
        load_window_size(&cfg->sliding_window, root, path, err) ||
        (o && read_int(o, path, "original_max_position_embeddings", &top, err)))
        return -1;
    if (o && top < 1)
        return lf_fail(err, "%s: key 'original_max_position_embeddings' must be positive (got %d)",
                       path, top);
    if (load_rope(cfg, root, top, path, err)) return -1;
    RopeScaling *r = &cfg->rope_scaling;
    if (r->type == ROPE_DEFAULT && top) r->original_max_positions = top;
    if (!top && r->original_max_positions != PHI3_ORIGINAL)
        return lf_fail(err,
                       "%s: RoPE longrope's original_max_position_embeddings %d without the "
                       "top-level key, which transformers reads instead (absent: Phi3Config's %d)",
                       path, r->original_max_positions, PHI3_ORIGINAL);
    return 0;
}

/* Mistral's sliding_window (absent: MistralConfig's 4096). Like MistralConfig, layer_types and
 * use_sliding_window are not read: every layer has the window. */
static int load_mistral_window(ModelConfig *cfg, const cJSON *root, const char *path,
                               LfError *err) {
    return load_window_size(&cfg->sliding_window, root, path, err);
}

/* Llama: no biases (Qwen2: q, k and v's, whatever attention_bias says, as transformers builds
 * them; Mistral and Phi-3: none, and their configs have neither key), head_dim (null or absent:
 * hidden / heads; Qwen3: 128), RoPE over the whole head; num_key_value_heads defaults to the number
 * of heads (Mistral: 8, which load_keys kept). */
static int load_llama_specials(ModelConfig *cfg, const cJSON *root, const char *path,
                               LfError *err) {
    int attention_bias = 0, mlp_bias = 0, qwen2 = cfg->arch == ARCH_QWEN2;
    int qwen = qwen2 || cfg->arch == ARCH_QWEN3, phi3 = cfg->arch == ARCH_PHI3;
    int mistral = cfg->arch == ARCH_MISTRAL, no_bias_keys = mistral || phi3;
    int smol = cfg->arch == ARCH_SMOLLM3, gemma = arch_is_gemma(cfg->arch);
    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (!mistral && !smol && !gemma &&
        !cJSON_GetObjectItemCaseSensitive(root, "num_key_value_heads"))
        cfg->num_kv_heads = cfg->num_heads;
    if (get_bool(root, "tie_word_embeddings", path, &cfg->tie_word_embeddings, err) ||
        (!qwen2 && !no_bias_keys && get_bool(root, "attention_bias", path, &attention_bias, err)) ||
        (!qwen && !no_bias_keys && !gemma && get_bool(root, "mlp_bias", path, &mlp_bias, err)) ||
        (smol && load_no_rope(cfg, root, path, err)) ||
        ((qwen || smol) && load_layer_windows(cfg, root, path, err)) ||
        (mistral && load_mistral_window(cfg, root, path, err)) ||
        (hd && !cJSON_IsNull(hd) && read_int(hd, path, "head_dim", &cfg->head_dim, err)) ||
        load_partial_rotary(cfg, root, path, err) ||
        (gemma  ? load_gemma_specials(cfg, root, path, err)
         : phi3 ? load_phi3_specials(cfg, root, path, err)
                : load_rope(cfg, root, 0, path, err)))
        return -1;
    if (attention_bias || mlp_bias)
        return lf_fail(err, "%s: attention_bias / mlp_bias are not supported", path);
    if (hd && !cJSON_IsNull(hd) && cfg->head_dim == 0) /* 0 would read as "unset": not a size */
        return lf_fail(err,
                       "%s: head_dim 0 is no head size (null or absent: hidden_size / "
                       "num_attention_heads, or the model type's default)",
                       path);
    if (hd && cJSON_IsNull(hd)) /* hidden / heads, which a Qwen3 config.json spells out */
        cfg->head_dim =
            cfg->arch == ARCH_QWEN3 && cfg->num_heads > 0 ? cfg->hidden_size / cfg->num_heads : 0;
    return 0;
}

/* GPT-2: n_inner null or absent means 4 * n_embd; GPT2LMHeadModel ties its head, and the
 * attention variants loraft does not compute are refused. */
static int load_gpt2_specials(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    const cJSON *inner = cJSON_GetObjectItemCaseSensitive(root, "n_inner");
    int scale = 1, by_layer = 0, cross = 0;
    cfg->ffn_size = 4 * cfg->hidden_size;
    if ((inner && !cJSON_IsNull(inner) && read_int(inner, path, "n_inner", &cfg->ffn_size, err)) ||
        get_bool(root, "tie_word_embeddings", path, &cfg->tie_word_embeddings, err) ||
        get_bool(root, "scale_attn_weights", path, &scale, err) ||
        get_bool(root, "scale_attn_by_inverse_layer_idx", path, &by_layer, err) ||
        get_bool(root, "add_cross_attention", path, &cross, err))
        return -1;
    if (!cfg->tie_word_embeddings)
        return lf_fail(err, "%s: tie_word_embeddings false is not supported for gpt2", path);
    if (!scale || by_layer || cross)
        return lf_fail(err,
                       "%s: scale_attn_weights false, scale_attn_by_inverse_layer_idx and "
                       "add_cross_attention are not supported",
                       path);
    return 0;
}

static int load_arch_specials(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    if (arch_is_llama(cfg->arch)) return load_llama_specials(cfg, root, path, err);
    if (cfg->arch == ARCH_GPT2) return load_gpt2_specials(cfg, root, path, err);
    if (cfg->arch == ARCH_DISTILBERT) {
        const cJSON *sin = cJSON_GetObjectItemCaseSensitive(root, "sinusoidal_pos_embds");
        if (sin && !cJSON_IsBool(sin))
            return lf_fail(err, "%s: key 'sinusoidal_pos_embds' must be a boolean (got %s)", path,
                           json_type(sin));
        if (cJSON_IsTrue(sin))
            return lf_fail(err,
                           "%s: sinusoidal_pos_embds = true is not supported (only "
                           "learned position embeddings)",
                           path);
        return 0;
    }
    const char *pos;
    if (get_string(root, "position_embedding_type", path, &pos, err)) return -1;
    if (pos && strcmp(pos, "absolute") != 0)
        return lf_fail(err, "%s: position_embedding_type '%s' is not supported (only 'absolute')",
                       path, pos);
    const cJSON *cd = cJSON_GetObjectItemCaseSensitive(root, "classifier_dropout");
    if (!cd || cJSON_IsNull(cd)) {
        cfg->classifier_dropout = cfg->hidden_dropout;
        return 0;
    }
    return read_float(cd, path, "classifier_dropout", &cfg->classifier_dropout, err);
}

/* id2label {"0": "neg", "1": "pos"} sets the labels and their count; else
 * num_labels. */
static int load_labels(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    const cJSON *nl = cJSON_GetObjectItemCaseSensitive(root, "num_labels");
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "id2label"), *e;
    if (nl && read_int(nl, path, "num_labels", &cfg->num_labels, err)) return -1;
    if (!map || cJSON_IsNull(map)) return 0;
    int n = cJSON_GetArraySize(map);
    if (!cJSON_IsObject(map) || n < 1 || n > MAX_LABELS)
        return lf_fail(err, "%s: key 'id2label' must be an object of 1 to %d id -> name entries",
                       path, MAX_LABELS);
    if (nl && cfg->num_labels != n)
        return lf_fail(err, "%s: num_labels %d disagrees with the %d entries of id2label", path,
                       cfg->num_labels, n);
    unsigned char seen[MAX_LABELS] = {0};
    cJSON_ArrayForEach(e, map) {
        char *end;
        long id = strtol(e->string, &end, 10);
        if (!*e->string || *end || id < 0 || id >= n || seen[id])
            return lf_fail(err, "%s: id2label key '%s' is not a distinct id in 0..%d", path,
                           e->string, n - 1);
        if (!cJSON_IsString(e) || strlen(e->valuestring) >= sizeof cfg->labels[0])
            return lf_fail(err, "%s: id2label['%s'] must be a string of under %zu bytes", path,
                           e->string, sizeof cfg->labels[0]);
        seen[id] = 1;
        strcpy(cfg->labels[id], e->valuestring);
    }
    cfg->num_labels = n;
    return 0;
}

static int load_model_type(const cJSON *root, const char *path, Arch *arch, LfError *err) {
    const char *type;
    if (get_string(root, "model_type", path, &type, err)) return -1;
    if (!type) return lf_fail(err, "%s: key 'model_type' is missing", path);
    for (int a = ARCH_DISTILBERT; a <= ARCH_LAST; a++)
        if (!strcmp(type, arch_info[a].model_type)) {
            *arch = (Arch)a;
            return 0;
        }
    return lf_fail(
        err,
        "%s: model_type '%s' is not supported (supported: distilbert, bert, llama, qwen2, qwen3, "
        "mistral, smollm3, gemma3_text, gemma3 (its language model), gemma2, phi3, gpt2)",
        path, type);
}

/* score_head: 'architectures' names the architecture's score class (a merged reward model). */
static void load_score_head(ModelConfig *cfg, const cJSON *root) {
    const char *name = arch_info[cfg->arch].score_architecture;
    const cJSON *e, *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!name || !cJSON_IsArray(archs)) return;
    cJSON_ArrayForEach(e, archs) {
        if (cJSON_IsString(e) && !strcmp(e->valuestring, name)) cfg->score_head = 1;
    }
}

/* root (an object) read as a config.json of arch's model type. */
static int load_arch_json(ModelConfig *cfg, const cJSON *root, Arch arch, const char *path,
                          LfError *err) {
    model_config_defaults(cfg, arch);
    if (load_keys(cfg, root, arch_info[arch].keys, path, err)) return -1;
    if (!arch_is_llama(arch)) cfg->num_kv_heads = cfg->num_heads;
    if (load_activation(cfg, root, path, err) || load_arch_specials(cfg, root, path, err) ||
        load_labels(cfg, root, path, err))
        return -1;
    load_score_head(cfg, root);
    return model_config_validate(cfg, path, err);
}

/* The multimodal Gemma 3's top-level keys loraft reads over text_config's, as transformers 5
 * does: Gemma3ForConditionalGeneration ties its head by the top-level tie_word_embeddings
 * (Gemma3Config's default true; text_config's is not read), and the token ids the top level
 * gives (the Hub's eos_token_id [1, 106]) are the ones generation stops at. */
static const Key multimodal_token_keys[] = {
    INT_KEY("pad_token_id", pad_token_id),
    INT_KEY("bos_token_id", bos_token_id),
    INT_KEY("eos_token_id", eos_token_id),
    {NULL, 0, 0},
};

/* 'architectures', where given, must be the one class whose language model loraft trains. */
static int check_multimodal_class(const cJSON *root, const char *path, LfError *err) {
    const cJSON *e, *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!archs || cJSON_IsNull(archs)) return 0;
    if (!cJSON_IsArray(archs))
        return lf_fail(err, "%s: key 'architectures' must be a list (got %s)", path,
                       json_type(archs));
    cJSON_ArrayForEach(e, archs) {
        if (!cJSON_IsString(e) || strcmp(e->valuestring, "Gemma3ForConditionalGeneration"))
            return lf_fail(err,
                           "%s: architectures '%s' is not supported for model_type gemma3 (only "
                           "Gemma3ForConditionalGeneration, whose language model loraft trains)",
                           path, cJSON_IsString(e) ? e->valuestring : json_type(e));
    }
    return 0;
}

/* A Gemma3ForConditionalGeneration config.json (model_type gemma3): its text_config read as a
 * gemma3_text config (absent or null: Gemma3TextConfig()'s), then the top-level head tying and
 * token ids. vision_config is not read: loraft computes the language model only (text in, text
 * out), and the vision tower's tensors are never loaded. */
static int load_multimodal(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    char where[4200];
    const char *type = NULL;
    snprintf(where, sizeof where, "%s text_config", path);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (check_multimodal_class(root, path, err)) return -1;
    if (text && !cJSON_IsNull(text) && !cJSON_IsObject(text))
        return lf_fail(err, "%s: key 'text_config' must be an object (got %s)", path,
                       json_type(text));
    if (cJSON_IsObject(text) && get_string(text, "model_type", where, &type, err)) return -1;
    if (type && strcmp(type, "gemma3_text"))
        return lf_fail(err,
                       "%s: model_type '%s' is not supported (gemma3's text model is "
                       "gemma3_text)",
                       where, type);
    cJSON *none = cJSON_IsObject(text) ? NULL : cJSON_CreateObject();
    if (!cJSON_IsObject(text) && !none) return lf_fail(err, "%s: out of memory", path);
    int rc = load_arch_json(cfg, none ? none : text, ARCH_GEMMA3, where, err);
    cJSON_Delete(none);
    if (rc) return -1;
    cfg->tie_word_embeddings = 1, cfg->multimodal = 1;
    if (cJSON_GetObjectItemCaseSensitive(root, "eos_token_id")) cfg->n_eos_more = 0;
    if (get_bool(root, "tie_word_embeddings", path, &cfg->tie_word_embeddings, err) ||
        load_keys(cfg, root, multimodal_token_keys, path, err))
        return -1;
    return model_config_validate(cfg, path, err);
}

static int load_json(ModelConfig *cfg, const cJSON *root, const char *path, LfError *err) {
    if (!cJSON_IsObject(root)) return lf_fail(err, "%s: not a JSON object", path);
    const char *type;
    Arch arch = ARCH_DISTILBERT;
    if (get_string(root, "model_type", path, &type, err)) return -1;
    if (type && !strcmp(type, "gemma3")) return load_multimodal(cfg, root, path, err);
    return load_model_type(root, path, &arch, err) || load_arch_json(cfg, root, arch, path, err)
               ? -1
               : 0;
}

/* A GGUF's rope_freqs divisors: Meta's Llama 3.1 / 3.2 scaling (llama3 with low_freq_factor 1,
 * high_freq_factor 4, original_max_position_embeddings 8192 and factor the largest divisor) when
 * they are that to float rounding, so that the config has its config.json form; else the divisors
 * themselves. */
static void rope_from_divisors(ModelConfig *cfg, const float *d, int n) {
    float factor = d[0], want[ROPE_MAX_PAIRS];
    for (int i = 1; i < n; i++) factor = d[i] > factor ? d[i] : factor;
    cfg->rope_scaling = (RopeScaling){.type = ROPE_LLAMA3,
                                      .factor = factor,
                                      .low_freq_factor = 1,
                                      .high_freq_factor = 4,
                                      .original_max_positions = 8192};
    int meta =
        cfg->num_heads > 0 && n == model_rotary_dim(cfg) / 2 && model_rope_divisors(cfg, want) == n;
    for (int i = 0; i < n && meta; i++) meta = fabsf(want[i] - d[i]) <= 1e-6f * want[i];
    if (meta) return;
    cfg->rope_scaling = (RopeScaling){.type = ROPE_DIVISORS, .n_divisors = n};
    memcpy(cfg->rope_scaling.divisors, d, sizeof(float) * n);
}

/* Phi-3's RoPE from a GGUF (gguf_arch): its original context, and longrope where the file has the
 * factor tensors, with rope.scaling.attn_factor as its attention factor (what llama.cpp multiplies
 * cos and sin by; its converter writes transformers' default). */
static void rope_from_longrope(RopeScaling *r, const GgufArch *a) {
    r->original_max_positions = a->rope_orig_ctx;
    if (!a->n_longrope) return;
    r->type = ROPE_LONGROPE, r->attention_factor = a->rope_attn_factor;
    r->n_divisors = a->n_longrope;
    memcpy(r->divisors, a->rope_short, sizeof(float) * a->n_longrope);
    memcpy(r->long_divisors, a->rope_long, sizeof(float) * a->n_longrope);
}

/* A Llama, Qwen2, Qwen3, SmolLM3, Gemma 3, Gemma 2, Phi-3 or GPT-2 GGUF file's metadata (gguf_arch)
 * as the config.json it was made from: a Mistral's is llama's, as llama.cpp's converter writes it,
 * without a sliding window (as llama.cpp computes it), or with llama.attention.sliding_window (as
 * loraft writes it): then a Mistral again. Gemma 3's windowed layers and their RoPE base as
 * llama.cpp reads them. Phi-3's window as its config.json has it (the converter's copy; llama.cpp
 * runs phi3 without it, the same within the window).
 * GPT-2's head is always tied (llama.cpp's converter writes a copy of token_embd as output.weight,
 * which the loader skips). GGUF keeps no dropout rates: HF's defaults stay. */
static int load_gguf(ModelConfig *cfg, const char *path, LfError *err) {
    Gguf g;
    GgufArch a;
    if (gguf_open(&g, path, err)) return -1;
    int rc = gguf_arch(&g, &a, err);
    gguf_close(&g);
    if (rc) return -1;
    int gpt2 = !strcmp(a.arch, "gpt2"), gemma3 = !strcmp(a.arch, "gemma3");
    int gemma = gemma3 || !strcmp(a.arch, "gemma2"), phi3 = !strcmp(a.arch, "phi3");
    if (a.sliding_window && strcmp(a.arch, "llama") && !gemma && !phi3)
        return lf_fail(err,
                       "%s: %s.attention.sliding_window: sliding-window attention is not "
                       "supported for %s",
                       path, a.arch, a.arch);
    model_config_defaults(cfg, gpt2                         ? ARCH_GPT2
                               : !strcmp(a.arch, "qwen2")   ? ARCH_QWEN2
                               : !strcmp(a.arch, "qwen3")   ? ARCH_QWEN3
                               : !strcmp(a.arch, "smollm3") ? ARCH_SMOLLM3
                               : gemma3                     ? ARCH_GEMMA3
                               : gemma                      ? ARCH_GEMMA2
                               : phi3                       ? ARCH_PHI3
                               : a.sliding_window           ? ARCH_MISTRAL
                                                            : ARCH_LLAMA);
    cfg->sliding_window = a.sliding_window;
    cfg->vocab_size = a.vocab_size, cfg->hidden_size = a.hidden, cfg->num_layers = a.n_layers;
    if (cfg->arch == ARCH_SMOLLM3) /* llama.cpp's NoPE layers: every fourth */
        model_config_nope_every(cfg, SMOLLM3_NOPE_STEP);
    cfg->num_heads = a.n_heads, cfg->num_kv_heads = a.n_kv_heads, cfg->ffn_size = a.ffn;
    cfg->head_dim =
        a.head_dim * a.n_heads != a.hidden || !strcmp(a.arch, "qwen3") || gemma ? a.head_dim : 0;
    cfg->rotary_dim = a.rot_dims == a.head_dim ? 0 : a.rot_dims;
    if (gemma) memset(cfg->full_attention, 0, sizeof cfg->full_attention);
    for (int l = 0; gemma && l < cfg->num_layers && l < MODEL_MAX_LAYERS; l++)
        cfg->full_attention[l] = a.sliding_window && !a.windowed[l];
    if (gemma3) cfg->rope_local_theta = a.rope_theta_swa;
    if (gemma) cfg->query_pre_attn_scalar = a.attn_scalar;
    if (gemma) cfg->attn_softcap = a.attn_softcap, cfg->final_softcap = a.final_softcap;
    cfg->max_positions = a.context_length, cfg->rope_theta = a.rope_theta;
    if (a.rope_factor > 0 && !a.rope_yarn)
        cfg->rope_scaling = (RopeScaling){.type = ROPE_LINEAR, .factor = a.rope_factor};
    if (a.rope_yarn) /* llama.cpp's attention factor: YaRN's own times rope.scaling.attn_factor */
        cfg->rope_scaling = (RopeScaling){
            .type = ROPE_YARN,
            .factor = a.rope_factor,
            .original_max_positions = a.rope_orig_ctx,
            .beta_fast = a.yarn_beta_fast,
            .beta_slow = a.yarn_beta_slow,
            .attention_factor = (float)(yarn_mscale(a.rope_factor, 1) * a.rope_attn_factor)};
    if (a.n_rope_divisors) rope_from_divisors(cfg, a.rope_divisors, a.n_rope_divisors);
    if (phi3) rope_from_longrope(&cfg->rope_scaling, &a);
    cfg->layer_norm_eps = a.norm_eps, cfg->tie_word_embeddings = gpt2 || a.tied_embeddings;
    cfg->bos_token_id = a.bos_token_id, cfg->eos_token_id = a.eos_token_id;
    cfg->pad_token_id = a.pad_token_id; /* transformers reads it into config.json's too */
    return model_config_validate(cfg, path, err);
}

static int ends_with(const char *s, const char *suffix) {
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && !strcmp(s + ls - lx, suffix);
}

int model_config_load(ModelConfig *cfg, const char *path, LfError *err) {
    if (ends_with(path, ".gguf")) return load_gguf(cfg, path, err);
    char file[4096];
    struct stat sb;
    int is_dir = stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (path_join(file, sizeof file, is_dir ? path : NULL, is_dir ? "config.json" : path, err))
        return -1;
    char *text;
    size_t len;
    if (file_read_all(file, &text, &len, err)) return -1;
    const char *end = NULL;
    /* len + 1: the parse must end exactly on the NUL that file_read_all appends. */
    cJSON *root =
        memchr(text, '\0', len) ? NULL : cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    int rc =
        root ? load_json(cfg, root, file, err)
             : lf_fail(err, "%s: not valid JSON (error at byte %td)", file, end ? end - text : 0);
    cJSON_Delete(root);
    free(text);
    return rc;
}

static int eos_more_ok(const ModelConfig *c) {
    if (c->n_eos_more < 0 || c->n_eos_more >= MODEL_MAX_EOS) return 0;
    for (int i = 0; i < c->n_eos_more; i++)
        if (c->eos_more[i] < 0 || c->eos_more[i] >= c->vocab_size) return 0;
    return 1;
}

/* n divisors of pairs' frequencies, each in ROPE_NUMBER_RANGE */
static int divisors_ok(const float *d, int n) {
    for (int i = 0; i < n; i++)
        if (!rope_number_ok(d[i])) return 0;
    return 1;
}

static int rope_scaling_ok(const ModelConfig *c) {
    const RopeScaling *r = &c->rope_scaling;
    int phi3 = c->arch == ARCH_PHI3, longrope = r->type == ROPE_LONGROPE;
    if (r->type == ROPE_DEFAULT) return 1;
    if (!arch_is_llama(c->arch) || c->num_heads <= 0 || phi3 != longrope) return 0;
    if (r->type == ROPE_YARN)
        return rope_number_ok(r->factor) && r->original_max_positions > 0 &&
               rope_number_ok(r->beta_fast) && rope_number_ok(r->beta_slow) &&
               r->attention_factor > 0;
    if (r->type == ROPE_LLAMA3)
        return rope_number_ok(r->factor) && rope_number_ok(r->low_freq_factor) &&
               rope_number_ok(r->high_freq_factor) && r->low_freq_factor < r->high_freq_factor &&
               r->original_max_positions > 0;
    if (r->type != ROPE_DIVISORS && !longrope) return rope_number_ok(r->factor);
    if (longrope && !(r->original_max_positions > 0 && r->attention_factor > 0 &&
                      isfinite(r->attention_factor)))
        return 0;
    return r->n_divisors == model_rotary_dim(c) / 2 && divisors_ok(r->divisors, r->n_divisors) &&
           (!longrope || divisors_ok(r->long_divisors, r->n_divisors));
}

int model_config_validate(const ModelConfig *c, const char *where, LfError *err) {
    const struct {
        const char *what;
        int ok;
    } rules[] = {
        {"architecture is distilbert, bert, llama, qwen2, qwen3, mistral, smollm3, gemma3_text, "
         "gemma2, phi3 or gpt2",
         c->arch >= ARCH_DISTILBERT && c->arch <= ARCH_LAST},
        {"vocab_size > 0", c->vocab_size > 0},
        {"hidden size > 0", c->hidden_size > 0},
        {"number of layers > 0", c->num_layers > 0},
        {"number of heads > 0", c->num_heads > 0},
        {"hidden size divisible by the number of heads (or a head_dim, llama family only)",
         c->num_heads > 0 && (c->head_dim ? c->head_dim > 0 && arch_is_llama(c->arch)
                                          : c->hidden_size % c->num_heads == 0)},
        {"feed-forward size > 0", c->ffn_size > 0},
        {"max_position_embeddings > 0", c->max_positions > 0},
        {"type_vocab_size > 0 for BERT (0 for DistilBERT)",
         c->arch == ARCH_BERT ? c->type_vocab_size > 0 : c->type_vocab_size == 0},
        {"activation is gelu, gelu_new or relu (silu for the llama family, gelu_pytorch_tanh or "
         "gelu for gemma3_text and gemma2)",
         arch_is_gemma(c->arch)   ? c->activation == ACT_GELU_TANH || c->activation == ACT_GELU
         : arch_is_llama(c->arch) ? c->activation == ACT_SILU
                                  : c->activation == ACT_GELU || c->activation == ACT_GELU_TANH ||
                                        c->activation == ACT_RELU},
        {"num_key_value_heads divides the number of heads (llama family)",
         !arch_is_llama(c->arch) || (c->num_kv_heads > 0 && c->num_heads % c->num_kv_heads == 0)},
        {"head size even, at most 256, and rope_theta >= 1 (llama family)",
         !arch_is_llama(c->arch) ||
             (c->num_heads > 0 && model_head_size(c) % 2 == 0 &&
              model_head_size(c) <= 2 * ROPE_MAX_PAIRS && c->rope_theta >= 1)},
        {"rotary_dim 0, or even, at least 2 and below the head size (phi3)",
         !c->rotary_dim || (c->arch == ARCH_PHI3 && c->num_heads > 0 && c->rotary_dim >= 2 &&
                            c->rotary_dim % 2 == 0 && c->rotary_dim < model_head_size(c))},
        {"RoPE scaling only on the llama family (phi3: longrope alone, with an original context), "
         "its divisors one a pair of a head and positive",
         rope_scaling_ok(c)},
        {"rope_theta > 1 under yarn (its ramp divides by ln rope_theta)",
         c->rope_scaling.type != ROPE_YARN || c->rope_theta > 1},
        {"layer_norm_eps > 0", c->layer_norm_eps > 0},
        {"dropouts in [0, 1)", c->hidden_dropout >= 0 && c->hidden_dropout < 1 &&
                                   c->attention_dropout >= 0 && c->attention_dropout < 1 &&
                                   c->embedding_dropout >= 0 && c->embedding_dropout < 1 &&
                                   c->classifier_dropout >= 0 && c->classifier_dropout < 1},
        {"the head tied to the embedding (gpt2)", c->arch != ARCH_GPT2 || c->tie_word_embeddings},
        {"initializer_range >= 0", c->initializer_range >= 0},
        {"at most 1024 layers (MODEL_MAX_LAYERS)", c->num_layers <= MODEL_MAX_LAYERS},
        {"sliding_window >= 0, and 0 but for mistral, qwen2, qwen3, smollm3, gemma and phi3",
         c->arch == ARCH_MISTRAL || c->arch == ARCH_QWEN2 || c->arch == ARCH_QWEN3 ||
                 c->arch == ARCH_SMOLLM3 || arch_is_gemma(c->arch) || c->arch == ARCH_PHI3
             ? c->sliding_window >= 0
             : c->sliding_window == 0},
        {"query_pre_attn_scalar > 0 and soft-capping >= 0 for gemma (0 for the others)",
         arch_is_gemma(c->arch)
             ? c->query_pre_attn_scalar > 0 && c->attn_softcap >= 0 && c->final_softcap >= 0 &&
                   isfinite(c->query_pre_attn_scalar) && isfinite(c->attn_softcap) &&
                   isfinite(c->final_softcap)
             : c->query_pre_attn_scalar == 0 && c->attn_softcap == 0 && c->final_softcap == 0},
        {"rope_local_base_freq >= 1 for gemma3_text (0 for the others)",
         c->arch == ARCH_GEMMA3 ? c->rope_local_theta >= 1 : c->rope_local_theta == 0},
        {"the end-of-sequence ids in [0, vocab_size)", eos_more_ok(c)},
        {"pad_token_id in [0, vocab_size) (llama family, gpt2: or unset)",
         ((arch_is_llama(c->arch) || c->arch == ARCH_GPT2) && c->pad_token_id == -1) ||
             (c->pad_token_id >= 0 && c->pad_token_id < c->vocab_size)},
        {"a score head only on the llama family, with one label",
         !c->score_head || (arch_info[c->arch].score_architecture && c->num_labels == 1)},
        {"bos/eos token ids unset or in [0, vocab_size)",
         c->bos_token_id >= -1 && c->bos_token_id < c->vocab_size && c->eos_token_id >= -1 &&
             c->eos_token_id < c->vocab_size},
    };
    if (c->num_labels < 1 || c->num_labels > MAX_LABELS)
        return lf_fail(err, "%s: num_labels %d is out of range (1..%d)", where, c->num_labels,
                       MAX_LABELS);
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (!rules[i].ok)
            return lf_fail(err,
                           "%s: invalid model config: %s does not hold (hidden %d, heads %d, "
                           "layers %d, vocab %d, labels %d)",
                           where, rules[i].what, c->hidden_size, c->num_heads, c->num_layers,
                           c->vocab_size, c->num_labels);
    return 0;
}

/* ---------------------------------------------------------------------- save
 * ---- */

static const char *activation_name(Activation act) {
    for (int i = 0; i < N_ACTIVATIONS; i++)
        if (activations[i].act == act) return activations[i].name;
    return "?";
}

static int add_labels(cJSON *root, const ModelConfig *cfg) {
    cJSON *id2label = cJSON_AddObjectToObject(root, "id2label");
    cJSON *label2id = cJSON_AddObjectToObject(root, "label2id");
    for (int i = 0; i < cfg->num_labels; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        if (!cJSON_AddStringToObject(id2label, id, cfg->labels[i]) ||
            !cJSON_AddNumberToObject(label2id, cfg->labels[i], i))
            return -1;
    }
    return 0;
}

/* A list of n factors to o[key]; 0 when out of memory. */
static int add_factors(cJSON *o, const char *key, const float *f, int n) {
    cJSON *list = cJSON_AddArrayToObject(o, key);
    for (int i = 0; list && i < n; i++)
        if (!cJSON_AddItemToArray(list, cJSON_CreateNumber(float_shortest(f[i])))) return 0;
    return list != NULL;
}

/* longrope in o as Phi3Config reads it in transformers 4 and 5: type, short_factor and long_factor
 * (4's three fields; 5 takes in the top-level original_max_position_embeddings), and
 * attention_factor (which 5 alone reads) where it is not the one worked out from
 * max_position_embeddings / original_max_position_embeddings; -1 when out of memory. */
static int add_longrope(cJSON *o, const ModelConfig *cfg) {
    const RopeScaling *r = &cfg->rope_scaling;
    double orig = r->original_max_positions;
    float derived = (float)longrope_mscale(cfg->max_positions / orig, orig);
    return cJSON_AddStringToObject(o, "type", "longrope") &&
                   add_factors(o, "short_factor", r->divisors, r->n_divisors) &&
                   add_factors(o, "long_factor", r->long_divisors, r->n_divisors) &&
                   (r->attention_factor == derived ||
                    cJSON_AddNumberToObject(o, "attention_factor",
                                            float_shortest(r->attention_factor)))
               ? 0
               : -1;
}

/* rope_scaling in the form transformers 4 and 5 both read (null: none); -1 when out of memory.
 * YaRN's attention factor is written as worked out, whatever it came from. A GGUF's divisors have
 * no config.json form: model_config_save refuses them first. */
static int add_rope_scaling(cJSON *root, const ModelConfig *cfg) {
    static const char *const names[] = {[ROPE_LINEAR] = "linear",
                                        [ROPE_LLAMA3] = "llama3",
                                        [ROPE_YARN] = "yarn",
                                        [ROPE_DYNAMIC] = "dynamic"};
    const RopeScaling *r = &cfg->rope_scaling;
    if (r->type == ROPE_DEFAULT) return cJSON_AddNullToObject(root, "rope_scaling") ? 0 : -1;
    cJSON *o = cJSON_AddObjectToObject(root, "rope_scaling");
    if (o && r->type == ROPE_LONGROPE) return add_longrope(o, cfg);
    int ok = o && cJSON_AddStringToObject(o, "rope_type", names[r->type]) &&
             cJSON_AddNumberToObject(o, "factor", float_shortest(r->factor));
    if (ok && r->type == ROPE_LLAMA3)
        ok = cJSON_AddNumberToObject(o, "low_freq_factor", float_shortest(r->low_freq_factor)) &&
             cJSON_AddNumberToObject(o, "high_freq_factor", float_shortest(r->high_freq_factor));
    if (ok && r->type == ROPE_YARN)
        ok = cJSON_AddNumberToObject(o, "beta_fast", float_shortest(r->beta_fast)) &&
             cJSON_AddNumberToObject(o, "beta_slow", float_shortest(r->beta_slow)) &&
             cJSON_AddNumberToObject(o, "attention_factor", float_shortest(r->attention_factor)) &&
             cJSON_AddBoolToObject(o, "truncate", !r->untruncated);
    if (ok && (r->type == ROPE_LLAMA3 || r->type == ROPE_YARN))
        ok = cJSON_AddNumberToObject(o, "original_max_position_embeddings",
                                     r->original_max_positions) != NULL;
    return ok ? 0 : -1;
}

/* Per-layer windows as Qwen2Config, Qwen3Config, SmolLM3Config and Gemma's configs read them:
 * use_sliding_window (not Gemma's), and with a window (Gemma: always) its size or null, layer_types
 * and (Qwen) max_window_layers (the full-attention layers before the first windowed one, which
 * transformers 4 reads instead of layer_types); -1 when out of memory. */
static int add_layer_windows(cJSON *root, const ModelConfig *cfg) {
    int w = cfg->sliding_window, first_windowed = 0, gemma = arch_is_gemma(cfg->arch);
    if (!w && !gemma) return cJSON_AddFalseToObject(root, "use_sliding_window") ? 0 : -1;
    while (first_windowed < cfg->num_layers && cfg->full_attention[first_windowed])
        first_windowed++;
    cJSON *types = cJSON_CreateArray();
    for (int l = 0; types && l < cfg->num_layers; l++)
        if (!cJSON_AddItemToArray(types, cJSON_CreateString(model_layer_window(cfg, l)
                                                                ? "sliding_attention"
                                                                : "full_attention")))
            break;
    if (!types || cJSON_GetArraySize(types) != cfg->num_layers ||
        !cJSON_AddItemToObject(root, "layer_types", types))
        return cJSON_Delete(types), -1;
    if (gemma)
        return (w ? cJSON_AddNumberToObject(root, "sliding_window", w)
                  : cJSON_AddNullToObject(root, "sliding_window"))
                   ? 0
                   : -1;
    return cJSON_AddTrueToObject(root, "use_sliding_window") &&
                   cJSON_AddNumberToObject(root, "sliding_window", w) &&
                   (cfg->arch == ARCH_SMOLLM3 ||
                    cJSON_AddNumberToObject(root, "max_window_layers", first_windowed))
               ? 0
               : -1;
}

/* A soft-capping key: its value written as a float (30.0, not 30: transformers 5's typed configs
 * refuse an int where they declare a float), or null for none; -1 when out of memory. */
static int add_softcap(cJSON *root, const char *key, float cap) {
    char text[40];
    snprintf(text, sizeof text, "%.15g", float_shortest(cap));
    if (!strpbrk(text, ".e")) strcat(text, ".0");
    return (cap > 0 ? cJSON_AddRawToObject(root, key, text) : cJSON_AddNullToObject(root, key))
               ? 0
               : -1;
}

/* Gemma's keys beyond Llama's, as Gemma3TextConfig and Gemma2Config read them (transformers 4 and
 * 5): (Gemma 3) the windowed layers' RoPE base, the attention scalar and the soft-capping; -1 when
 * out of memory. */
static int add_gemma(cJSON *root, const ModelConfig *cfg) {
    return (cfg->arch != ARCH_GEMMA3 ||
            cJSON_AddNumberToObject(root, "rope_local_base_freq",
                                    float_shortest(cfg->rope_local_theta))) &&
                   cJSON_AddNumberToObject(root, "query_pre_attn_scalar",
                                           float_shortest(cfg->query_pre_attn_scalar)) &&
                   !add_softcap(root, "attn_logit_softcapping", cfg->attn_softcap) &&
                   !add_softcap(root, "final_logit_softcapping", cfg->final_softcap) &&
                   cJSON_AddFalseToObject(root, "use_bidirectional_attention")
               ? 0
               : -1;
}

/* A list eos_token_id in place of the table's one id, where the config had one; -1 when out of
 * memory. */
static int add_eos_list(cJSON *root, const ModelConfig *cfg) {
    if (!cfg->n_eos_more) return 0;
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i <= cfg->n_eos_more; i++)
        if (!cJSON_AddItemToArray(list,
                                  cJSON_CreateNumber(i ? cfg->eos_more[i - 1] : cfg->eos_token_id)))
            return cJSON_Delete(list), -1;
    return list && cJSON_ReplaceItemInObjectCaseSensitive(root, "eos_token_id", list)
               ? 0
               : (cJSON_Delete(list), -1);
}

/* A key of 0.0 (a float, as transformers writes it); 0 when out of memory. */
static int add_zero_float(cJSON *root, const char *key) {
    return cJSON_AddRawToObject(root, key, "0.0") != NULL;
}

/* Phi-3's keys beyond Llama's, as Phi3Config reads them: its dropouts (loraft's decoders have
 * none), every layer's window or null, and the top-level original_max_position_embeddings (not
 * written when unknown: Phi3Config's 4096), and partial_rotary_factor where RoPE turns part of each
 * head; -1 when out of memory. */
static int add_phi3(cJSON *root, const ModelConfig *cfg) {
    int w = cfg->sliding_window, orig = cfg->rope_scaling.original_max_positions;
    return add_zero_float(root, "resid_pdrop") && add_zero_float(root, "embd_pdrop") &&
                   (w ? cJSON_AddNumberToObject(root, "sliding_window", w)
                      : cJSON_AddNullToObject(root, "sliding_window")) &&
                   (!orig ||
                    cJSON_AddNumberToObject(root, "original_max_position_embeddings", orig)) &&
                   (!cfg->rotary_dim || cJSON_AddNumberToObject(root, "partial_rotary_factor",
                                                                partial_rotary_factor(cfg)))
               ? 0
               : -1;
}

/* SmolLM3's no_rope_layers, one a layer (1: RoPE, 0: none); -1 when out of memory. */
static int add_no_rope(cJSON *root, const ModelConfig *cfg) {
    cJSON *list = cJSON_AddArrayToObject(root, "no_rope_layers");
    for (int l = 0; list && l < cfg->num_layers; l++)
        if (!cJSON_AddItemToArray(list, cJSON_CreateNumber(model_layer_rope(cfg, l)))) return -1;
    return list ? 0 : -1;
}

/* Builds the config object; returns -1 only when out of memory. */
static int build_json(cJSON *root, const ModelConfig *cfg) {
    cJSON *archs = cJSON_AddArrayToObject(root, "architectures");
    if (!archs || !cJSON_AddStringToObject(root, "model_type", arch_info[cfg->arch].model_type))
        return -1;
    cJSON_AddItemToArray(archs, cJSON_CreateString(cfg->score_head
                                                       ? arch_info[cfg->arch].score_architecture
                                                       : arch_info[cfg->arch].architecture));
    for (const Key *k = arch_info[cfg->arch].keys; k->name; k++) {
        const void *field = (const char *)cfg + k->offset;
        double v = k->is_int ? *(const int *)field : float_shortest(*(const float *)field);
        if (k->is_int && v == -1 && strstr(k->name, "_token_id")) {
            if (!cJSON_AddNullToObject(root, k->name)) return -1;
        } else if (!cJSON_AddNumberToObject(root, k->name, v)) {
            return -1;
        }
    }
    /* Gemma's tanh GELU is PyTorch's, as its configs name it (GPT-2's gelu_new computes the
     * same function) */
    int torch_tanh = arch_is_gemma(cfg->arch) && cfg->activation == ACT_GELU_TANH;
    if (!cJSON_AddStringToObject(root, arch_info[cfg->arch].activation_key,
                                 torch_tanh ? "gelu_pytorch_tanh"
                                            : activation_name(cfg->activation)))
        return -1;
    if (arch_is_llama(cfg->arch)) {
        int qwen = cfg->arch == ARCH_QWEN2 || cfg->arch == ARCH_QWEN3,
            phi3 = cfg->arch == ARCH_PHI3;
        int mistral = cfg->arch == ARCH_MISTRAL, w = cfg->sliding_window;
        int smol = cfg->arch == ARCH_SMOLLM3, gemma = arch_is_gemma(cfg->arch);
        /* Qwen3Config's and Gemma's defaults are 128 and 256, not hidden / heads: always
         * written */
        int head_dim = cfg->arch == ARCH_QWEN3 || gemma ? model_head_size(cfg) : cfg->head_dim;
        if (!cJSON_AddBoolToObject(root, "tie_word_embeddings", cfg->tie_word_embeddings) ||
            add_rope_scaling(root, cfg) ||
            (head_dim && !cJSON_AddNumberToObject(root, "head_dim", head_dim)) ||
            ((qwen || smol || gemma) && add_layer_windows(root, cfg)) ||
            (smol && add_no_rope(root, cfg)) || (gemma && add_gemma(root, cfg)) ||
            (phi3 && add_phi3(root, cfg)) ||
            (mistral && !(w ? cJSON_AddNumberToObject(root, "sliding_window", w)
                            : cJSON_AddNullToObject(root, "sliding_window"))) ||
            (!mistral && !phi3 && cfg->arch != ARCH_QWEN2 &&
             !cJSON_AddFalseToObject(root, "attention_bias")) ||
            (!qwen && !mistral && !phi3 && !gemma && !cJSON_AddFalseToObject(root, "mlp_bias")))
            return -1;
    } else if (cfg->arch == ARCH_GPT2) {
        if (!cJSON_AddNumberToObject(root, "n_inner", cfg->ffn_size) ||
            !cJSON_AddTrueToObject(root, "tie_word_embeddings") ||
            !cJSON_AddTrueToObject(root, "scale_attn_weights"))
            return -1;
    } else if (cfg->arch == ARCH_DISTILBERT) {
        if (!cJSON_AddFalseToObject(root, "sinusoidal_pos_embds")) return -1;
    } else if (!cJSON_AddStringToObject(root, "position_embedding_type", "absolute") ||
               !cJSON_AddNumberToObject(root, "classifier_dropout",
                                        float_shortest(cfg->classifier_dropout))) {
        return -1;
    }
    return add_eos_list(root, cfg) || add_labels(root, cfg) ? -1 : 0;
}

int model_config_savable(const ModelConfig *cfg, const char *where, LfError *err) {
    if (model_config_validate(cfg, where, err)) return -1;
    if (cfg->multimodal) /* its config.json and vision tower would be lost (docs/FORMATS.md) */
        return lf_fail(err,
                       "%s: a model directory of Gemma 3's multimodal checkpoint (with its vision "
                       "tower) is not written: train a LoRA adapter (which PEFT loads onto "
                       "Gemma3ForConditionalGeneration), or merge to GGUF (loraft merge --format "
                       "gguf: the text model, as llama.cpp's gemma3)",
                       where);
    if (cfg->rope_scaling.type == ROPE_DIVISORS)
        return lf_fail(err,
                       "%s: the model's RoPE frequency divisors (a GGUF's rope_freqs, not Llama "
                       "3.1's llama3 scaling) have no config.json form: write a GGUF instead",
                       where);
    return 0;
}

int model_config_save(const ModelConfig *cfg, const char *path, LfError *err) {
    if (model_config_savable(cfg, path, err)) return -1;
    cJSON *root = cJSON_CreateObject();
    char *text = root && build_json(root, cfg) == 0 ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text) return lf_fail(err, "%s: out of memory building config.json", path);
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL: the file ends with a newline */
    int rc = file_write_atomic(path, text, len + 1, err);
    free(text);
    return rc;
}

/* ------------------------------------------------------------------------ RoPE
 * ---- */

/* transformers' _compute_llama3_parameters for one frequency, in double */
static double llama3_inv_freq(double inv, const RopeScaling *s) {
    double orig = s->original_max_positions, wavelen = 2 * M_PI / inv;
    if (wavelen < orig / s->high_freq_factor) return inv;
    if (wavelen > orig / s->low_freq_factor) return inv / s->factor;
    double smooth =
        (orig / wavelen - s->low_freq_factor) / ((double)s->high_freq_factor - s->low_freq_factor);
    return (1 - smooth) * inv / s->factor + smooth * inv;
}

/* transformers' _compute_yarn_parameters for frequency i of HS/2, in double: plain below the
 * ramp's first pair, divided by factor above its last, blended linearly between. */
static double yarn_inv_freq(double inv, int i, float theta, int HS, const RopeScaling *s) {
    double two_log_base = 2 * log((double)theta), orig = s->original_max_positions;
    double low = HS * log(orig / (s->beta_fast * 2 * M_PI)) / two_log_base;
    double high = HS * log(orig / (s->beta_slow * 2 * M_PI)) / two_log_base;
    if (!s->untruncated) low = floor(low), high = ceil(high);
    low = low > 0 ? low : 0, high = high < HS - 1 ? high : HS - 1;
    if (low == high) high += 0.001; /* as transformers: no division by zero */
    double ramp = (i - low) / (high - low), kept = 1 - (ramp < 0 ? 0 : ramp > 1 ? 1 : ramp);
    return inv / s->factor * (1 - kept) + inv * kept;
}

/* 1 / theta^(2i / HS) */
static double plain_inv_freq(float theta, int i, int HS) {
    return 1.0 / pow((double)theta, (double)(2 * i) / (double)HS);
}

void rope_freqs_init(RopeFreqs *r, float theta, int HS, const RopeScaling *s) {
    memset(r, 0, sizeof *r);
    if (theta <= 0.0f || HS < 2 || HS / 2 > ROPE_MAX_PAIRS) return;
    r->half = HS / 2;
    RopeType type = s ? s->type : ROPE_DEFAULT;
    r->scale = type == ROPE_YARN || type == ROPE_LONGROPE ? s->attention_factor : 1.0f;
    for (int i = 0; i < r->half; i++) {
        double inv = plain_inv_freq(theta, i, HS);
        if (type == ROPE_LINEAR) inv /= s->factor;
        if (type == ROPE_LLAMA3) inv = llama3_inv_freq(inv, s);
        if (type == ROPE_YARN) inv = yarn_inv_freq(inv, i, theta, HS, s);
        if (type == ROPE_DIVISORS || type == ROPE_LONGROPE) inv /= s->divisors[i];
        r->inv_freq[i] = (float)inv;
    }
}

void model_config_nope_every(ModelConfig *cfg, int step) {
    memset(cfg->no_rope, 0, sizeof cfg->no_rope);
    for (int l = 0; step > 0 && l < cfg->num_layers && l < MODEL_MAX_LAYERS; l++)
        cfg->no_rope[l] = (l + 1) % step == 0;
}

void model_config_full_every(ModelConfig *cfg, int step) {
    memset(cfg->full_attention, 0, sizeof cfg->full_attention);
    for (int l = 0; cfg->sliding_window && l < cfg->num_layers && l < MODEL_MAX_LAYERS; l++)
        cfg->full_attention[l] = (l + 1) % step == 0;
}

int model_layer_rope(const ModelConfig *cfg, int l) {
    return !(l >= 0 && l < MODEL_MAX_LAYERS && cfg->no_rope[l]);
}

int model_layer_window(const ModelConfig *cfg, int l) {
    return l >= 0 && l < MODEL_MAX_LAYERS && cfg->full_attention[l] ? 0 : cfg->sliding_window;
}

int model_head_size(const ModelConfig *cfg) {
    return cfg->head_dim        ? cfg->head_dim
           : cfg->num_heads > 0 ? cfg->hidden_size / cfg->num_heads
                                : 0;
}

int model_rotary_dim(const ModelConfig *cfg) {
    return cfg->rotary_dim ? cfg->rotary_dim : model_head_size(cfg);
}

AttnScore model_attn_score(const ModelConfig *cfg) {
    AttnScore s = attn_score_plain(model_head_size(cfg));
    if (cfg->query_pre_attn_scalar > 0) s.scale = 1.0f / sqrtf(cfg->query_pre_attn_scalar);
    s.softcap = cfg->attn_softcap;
    return s;
}

void model_rope_freqs(const ModelConfig *cfg, RopeFreqs *r) {
    int llama = arch_is_llama(cfg->arch) && cfg->num_heads > 0;
    rope_freqs_init(r, llama ? cfg->rope_theta : 0.0f, llama ? model_rotary_dim(cfg) : 0,
                    &cfg->rope_scaling);
}

void model_rope_freqs_long(const ModelConfig *cfg, RopeFreqs *r) {
    RopeScaling s = cfg->rope_scaling;
    memcpy(s.divisors, s.long_divisors, sizeof s.divisors);
    int longrope = arch_is_llama(cfg->arch) && cfg->num_heads > 0 && s.type == ROPE_LONGROPE;
    rope_freqs_init(r, longrope ? cfg->rope_theta : 0.0f, model_rotary_dim(cfg), &s);
}

void model_rope_freqs_local(const ModelConfig *cfg, RopeFreqs *r) {
    rope_freqs_init(r, cfg->arch == ARCH_GEMMA3 ? cfg->rope_local_theta : 0.0f,
                    model_head_size(cfg), NULL);
}

int model_rope_divisors(const ModelConfig *cfg, float *d) {
    const RopeScaling *s = &cfg->rope_scaling;
    if (!arch_is_llama(cfg->arch) || (s->type != ROPE_LLAMA3 && s->type != ROPE_DIVISORS)) return 0;
    int HS = model_rotary_dim(cfg);
    for (int i = 0; i < HS / 2 && i < ROPE_MAX_PAIRS; i++) {
        double inv = plain_inv_freq(cfg->rope_theta, i, HS);
        d[i] = s->type == ROPE_DIVISORS ? s->divisors[i] : (float)(inv / llama3_inv_freq(inv, s));
    }
    return HS / 2;
}
