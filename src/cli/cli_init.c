/* cli_init.c: `loraft init` writes a complete HF-format checkpoint directory with seeded
 * random weights (config.json, model.safetensors with HF's exact names, the vocab), or with
 * --gguf the same decoder as a llama.cpp GGUF file with quantised blocks. Tests build their
 * tiny models this way instead of downloading anything. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/cli.h"
#include "loraft/fileio.h"
#include "loraft/gguf_export.h"
#include "loraft/model.h"
#include "loraft/rng.h"
#include "loraft/text.h"

/* Vocabulary size and special tokens from the tokenizer the checkpoint will carry. */
static int take_vocab(ModelConfig *cfg, const char *vocab_from, LfError *err) {
    TextTokenizer tok;
    if (text_tokenizer_open(&tok, vocab_from, err)) return lf_wrap(err, "--vocab-from");
    if (tok.kind == TEXT_BPE) {
        cfg->vocab_size = bpe_vocab_size(tok.bpe);
        cfg->bos_token_id = bpe_bos(tok.bpe);
        cfg->eos_token_id = bpe_eos(tok.bpe);
        cfg->pad_token_id = arch_task(cfg->arch) == TASK_CAUSAL_LM ? -1 : cfg->eos_token_id;
    } else {
        cfg->vocab_size = tokenizer_vocab_size(tok.wordpiece);
        cfg->pad_token_id = tokenizer_special(tok.wordpiece, TOK_PAD);
    }
    text_tokenizer_close(&tok);
    return 0;
}

/* The GGUF type named `name` ("Q8_0", "F32", ...) that quant_quantize writes. */
static int quant_by_name(const char *name, GgmlType *out, LfError *err) {
    for (uint32_t t = 0; t <= GGML_Q1_0; t++)
        if (quant_type_name(t) && !strcmp(quant_type_name(t), name)) {
            *out = (GgmlType)t;
            return 0;
        }
    return lf_fail(err, "--quant '%s': not a GGUF type (loraft writes %s)", name,
                   quant_quantize_list());
}

/* Phi-3's longrope over `original` positions, as a config.json gives it (model_config_rope_scaling,
 * so that the attention factor is the one transformers works out from max_position_embeddings /
 * original): a factor a turned pair of cfg's heads drawn from seed, the short ones in [1, 1.5), the
 * long ones from about 1 to 4 over the pairs, as Phi-3.5's grow. */
static int init_longrope(ModelConfig *cfg, int original, int seed, LfError *err) {
    char json[8192];
    int half = model_rotary_dim(cfg) / 2, n;
    if (original < 1) return lf_fail(err, "--longrope %d: an original context is > 0", original);
    n = snprintf(json, sizeof json,
                 "{\"rope_type\": \"longrope\", \"original_max_position_embeddings\": %d",
                 original);
    for (int list = 0; list < 2; list++) {
        n += snprintf(json + n, sizeof json - (size_t)n, ", \"%s_factor\": [",
                      list ? "long" : "short");
        for (int i = 0; i < half && i < ROPE_MAX_PAIRS; i++) {
            float u = rng_uniform((uint64_t)seed, (uint64_t)(list * ROPE_MAX_PAIRS + i));
            float f = list ? 1 + 3.0f * (i + u) / half : 1 + 0.5f * u;
            n += snprintf(json + n, sizeof json - (size_t)n, "%s%.4f", i ? ", " : "", f);
        }
        n += snprintf(json + n, sizeof json - (size_t)n, "]");
    }
    snprintf(json + n, sizeof json - (size_t)n, "}");
    return model_config_rope_scaling(cfg, json, err) ? lf_wrap(err, "--longrope %d", original) : 0;
}

/* loraft init's options (cmd_init) */
typedef struct InitArgs {
    const char *arch, *vocab_from, *out, *gguf, *quant, *rope_scaling;
    int layers, hidden, heads, kv_heads, head_dim, ffn, max_pos, num_labels, untied, seed;
    int sliding_window;    /* mistral: -1 keeps MistralConfig's 4096, 0 none; qwen: -1 none */
    int max_window_layers; /* qwen: layers before the first windowed one; -1: 28, Qwen2Config's */
    int full_every;        /* gemma: every full_every-th layer without the window; 0: 6 / 2 */
    int longrope;          /* phi3: longrope's original context; 0: no scaling */
    float init_std, rope_theta;
    float partial_rotary;              /* phi3: partial_rotary_factor; 0: the whole head */
    float query_scalar;                /* gemma: query_pre_attn_scalar; 0: the head size */
    float attn_softcap, final_softcap; /* gemma: soft-capping; NAN: the arch's default, 0: none */
} InitArgs;

/* The config of arch with a's sizes, RoPE and labels. */
static int init_config(ModelConfig *cfg, const InitArgs *a, LfError *err) {
    const char *arch = a->arch;
    if (!strcmp(arch, "distilbert"))
        model_config_defaults(cfg, ARCH_DISTILBERT);
    else if (!strcmp(arch, "bert"))
        model_config_defaults(cfg, ARCH_BERT);
    else if (!strcmp(arch, "llama") || !strcmp(arch, "qwen2") || !strcmp(arch, "qwen3") ||
             !strcmp(arch, "mistral") || !strcmp(arch, "smollm3") || !strcmp(arch, "gemma3") ||
             !strcmp(arch, "gemma2") || !strcmp(arch, "phi3"))
        model_config_defaults(cfg, arch[0] == 'l'   ? ARCH_LLAMA
                                   : arch[0] == 'p' ? ARCH_PHI3
                                   : arch[0] == 'm' ? ARCH_MISTRAL
                                   : arch[0] == 's' ? ARCH_SMOLLM3
                                   : arch[0] == 'g' ? arch[5] == '3' ? ARCH_GEMMA3 : ARCH_GEMMA2
                                   : arch[4] == '2' ? ARCH_QWEN2
                                                    : ARCH_QWEN3),
            cfg->tie_word_embeddings = !a->untied;
    else if (!strcmp(arch, "gpt2") && !a->untied)
        model_config_defaults(cfg, ARCH_GPT2);
    else
        return lf_fail(err,
                       "--arch '%s'%s: expected distilbert, bert, llama, qwen2, qwen3, mistral, "
                       "smollm3, gemma3, gemma2, phi3 or gpt2 (tied)",
                       arch, a->untied ? " --untied" : "");
    if (a->gguf && !arch_is_llama(cfg->arch) && cfg->arch != ARCH_GPT2)
        return lf_fail(err, "--gguf writes the llama family's and gpt2 models only (--arch %s)",
                       arch);
    if ((a->rope_theta || a->rope_scaling) && !arch_is_llama(cfg->arch))
        return lf_fail(err, "--rope-theta and --rope-scaling are the llama family's (--arch %s)",
                       arch);
    if (a->rope_theta < 0 || !isfinite(a->rope_theta))
        return lf_fail(err, "--rope-theta %g: a RoPE base is finite and > 0", a->rope_theta);
    if (a->rope_theta > 0) cfg->rope_theta = a->rope_theta;
    int qwen = cfg->arch == ARCH_QWEN2 || cfg->arch == ARCH_QWEN3, gemma = arch_is_gemma(cfg->arch);
    int phi3 = cfg->arch == ARCH_PHI3;
    if ((a->sliding_window >= 0 && cfg->arch != ARCH_MISTRAL && cfg->arch != ARCH_SMOLLM3 &&
         !qwen && !gemma && !phi3) ||
        (a->max_window_layers >= 0 && !qwen) || ((a->longrope || a->partial_rotary) && !phi3) ||
        ((a->full_every || a->query_scalar || !isnan(a->attn_softcap) ||
          !isnan(a->final_softcap)) &&
         !gemma))
        return lf_fail(err,
                       "--sliding-window is mistral's, qwen2's, qwen3's, smollm3's (its NoPE "
                       "layers), gemma's and phi3's, --max-window-layers qwen2's and qwen3's, "
                       "--full-every, --query-scalar and the soft-caps gemma's, --longrope and "
                       "--partial-rotary phi3's (--arch %s)",
                       arch);
    if (a->full_every < 0)
        return lf_fail(err, "--full-every %d: a layer pattern is >= 1", a->full_every);
    if (a->query_scalar < 0 || !isfinite(a->query_scalar))
        return lf_fail(err, "--query-scalar %g: a scalar is finite and > 0", a->query_scalar);
    if (!isnan(a->attn_softcap)) cfg->attn_softcap = a->attn_softcap;
    if (!isnan(a->final_softcap)) cfg->final_softcap = a->final_softcap;
    if (a->sliding_window >= 0) cfg->sliding_window = a->sliding_window;
    if (a->rope_scaling && model_config_rope_scaling(cfg, a->rope_scaling, err))
        return lf_wrap(err, "--rope-scaling");
    if (take_vocab(cfg, a->vocab_from, err)) return -1;
    if (a->layers > 0) cfg->num_layers = a->layers;
    if (a->hidden > 0) cfg->hidden_size = a->hidden;
    int first_windowed = a->max_window_layers >= 0 ? a->max_window_layers : 28;
    int smol = cfg->arch == ARCH_SMOLLM3;
    if (smol) model_config_nope_every(cfg, SMOLLM3_NOPE_STEP); /* of --layers */
    for (int l = 0; l < cfg->num_layers && l < MODEL_MAX_LAYERS; l++) {
        cfg->full_attention[l] =
            cfg->sliding_window && (smol ? !cfg->no_rope[l] : qwen && l < first_windowed);
    }
    int pattern = cfg->arch == ARCH_GEMMA3 ? GEMMA3_FULL_STEP : GEMMA2_FULL_STEP;
    if (gemma) model_config_full_every(cfg, a->full_every ? a->full_every : pattern);
    if (a->heads > 0) cfg->num_heads = a->heads;
    cfg->num_kv_heads = a->kv_heads > 0 ? a->kv_heads : cfg->num_heads;
    if (a->head_dim && !arch_is_llama(cfg->arch))
        return lf_fail(err, "--head-dim is the llama family's (--arch %s)", arch);
    if (a->head_dim < 0) return lf_fail(err, "--head-dim %d: a head size is > 0", a->head_dim);
    cfg->head_dim = a->head_dim ? a->head_dim
                    : cfg->arch == ARCH_QWEN3 && cfg->num_heads > 0
                        ? cfg->hidden_size / cfg->num_heads
                        : 0;
    if (gemma)
        cfg->query_pre_attn_scalar = a->query_scalar ? a->query_scalar : model_head_size(cfg);
    cfg->ffn_size = a->ffn > 0 ? a->ffn : 4 * cfg->hidden_size;
    if (a->max_pos > 0) cfg->max_positions = a->max_pos;
    if (!isfinite(a->init_std) || a->init_std < 0)
        return lf_fail(err,
                       "--init-std %g: a standard deviation is finite and >= 0 (0: the "
                       "config's initializer_range)",
                       a->init_std);
    if (a->init_std > 0) cfg->initializer_range = a->init_std;
    if (a->num_labels > 0) {
        if (a->num_labels > MAX_LABELS)
            return lf_fail(err, "--num-labels must be <= %d", MAX_LABELS);
        cfg->num_labels = a->num_labels;
        for (int i = 0; i < a->num_labels; i++)
            snprintf(cfg->labels[i], sizeof cfg->labels[i], "LABEL_%d", i);
    }
    if ((!cfg->head_dim && cfg->hidden_size % cfg->num_heads) || cfg->num_heads % cfg->num_kv_heads)
        return lf_fail(err,
                       "--hidden %d, --heads %d, --kv-heads %d: heads must divide hidden, "
                       "kv-heads heads",
                       cfg->hidden_size, cfg->num_heads, cfg->num_kv_heads);
    char partial[64]; /* as a config.json gives it, before longrope's factors (one a turned pair) */
    snprintf(partial, sizeof partial, "{\"partial_rotary_factor\": %.9g}", a->partial_rotary);
    if (a->partial_rotary && model_config_rope_scaling(cfg, partial, err))
        return lf_wrap(err, "--partial-rotary");
    if (a->longrope && init_longrope(cfg, a->longrope, a->seed, err)) return -1;
    return model_config_validate(cfg, "loraft init", err);
}

static int init_checkpoint(const InitArgs *a, LfError *err) {
    ModelConfig cfg;
    if (init_config(&cfg, a, err)) return -1;

    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.strategy = STRATEGY_NONE;
    spec.task = arch_task(cfg.arch);
    Model m;
    if (model_create(&m, &cfg, &spec, &ops_cpu, NULL, (uint64_t)a->seed, 1, 2, NULL, 0, err))
        return -1;
    char path[4200];
    const char *out = a->out;
    int rc = dir_create(out, err);
    if (!rc)
        snprintf(path, sizeof path, "%s/config.json", out), rc = model_config_save(&cfg, path, err);
    if (!rc)
        snprintf(path, sizeof path, "%s/model.safetensors", out),
            rc = model_save_weights(&m, path, 0, err);
    if (!rc) rc = tokenizer_copy_files(a->vocab_from, out, err);
    GgmlType type = GGML_F32;
    if (!rc && a->gguf && !(rc = quant_by_name(a->quant, &type, err)))
        rc = cli_write_gguf(&m, a->gguf, type, a->vocab_from, err);
    if (!rc)
        printf("wrote %s: %s, %d layers, hidden %d, %d heads, ffn %d, vocab %d, %zu parameters\n",
               out, a->arch, cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.ffn_size,
               cfg.vocab_size, m.n_base);
    model_free(&m);
    return rc;
}

int cmd_init(int argc, char **argv) {
    InitArgs a = {.arch = "distilbert",
                  .quant = "Q8_0",
                  .sliding_window = -1,
                  .max_window_layers = -1,
                  .attn_softcap = NAN,
                  .final_softcap = NAN};
    const CliOpt opts[] = {
        {"arch", OPT_STR, &a.arch,
         "distilbert (default), bert, llama, qwen2, qwen3, mistral, smollm3, gemma3, gemma2, phi3 "
         "or gpt2"},
        {"layers", OPT_INT, &a.layers, "transformer layers (default: the base model's)"},
        {"hidden", OPT_INT, &a.hidden, "hidden size C"},
        {"heads", OPT_INT, &a.heads, "attention heads (must divide hidden)"},
        {"kv-heads", OPT_INT, &a.kv_heads, "llama: key/value heads (must divide heads)"},
        {"head-dim", OPT_INT, &a.head_dim,
         "llama family: the head size, when not hidden / heads (qwen3's default: hidden / heads)"},
        {"untied", OPT_FLAG, &a.untied, "llama: lm_head gets its own weight"},
        {"ffn", OPT_INT, &a.ffn, "feed-forward size (default 4 * hidden)"},
        {"max-positions", OPT_INT, &a.max_pos, "position embeddings (default 512)"},
        {"rope-theta", OPT_FLOAT, &a.rope_theta, "llama: RoPE's base (default 10000)"},
        {"sliding-window", OPT_INT, &a.sliding_window,
         "mistral: config.json's sliding_window (default 4096, MistralConfig's; 0: null); "
         "qwen2, qwen3: the window of the layers from --max-window-layers on "
         "(use_sliding_window); smollm3: of its layers without RoPE; gemma: of all but every "
         "--full-every-th layer (default 4096); phi3: of every layer (default none)"},
        {"full-every", OPT_INT, &a.full_every,
         "gemma: every full-every-th layer attends without the window (default gemma3 6, gemma2 "
         "2)"},
        {"query-scalar", OPT_FLOAT, &a.query_scalar,
         "gemma: query_pre_attn_scalar, scores times 1 / sqrt(it) (default the head size)"},
        {"attn-softcap", OPT_FLOAT, &a.attn_softcap,
         "gemma: attn_logit_softcapping (default gemma2 50, gemma3 none; 0: none)"},
        {"final-softcap", OPT_FLOAT, &a.final_softcap,
         "gemma: final_logit_softcapping (default gemma2 30, gemma3 none; 0: none)"},
        {"max-window-layers", OPT_INT, &a.max_window_layers,
         "qwen2, qwen3: the layers before the first windowed one (default 28, Qwen2Config's)"},
        {"longrope", OPT_INT, &a.longrope,
         "phi3: RoPE longrope over this original context: factors drawn from --seed, the "
         "attention factor from --max-positions / it"},
        {"partial-rotary", OPT_FLOAT, &a.partial_rotary,
         "phi3: partial_rotary_factor, RoPE over the first int(head size x it) dims of each head "
         "(Phi-4-mini's 0.75; default 1)"},
        {"rope-scaling", OPT_STR, &a.rope_scaling,
         "llama: config.json's rope_scaling object, e.g. '{\"rope_type\": \"linear\", "
         "\"factor\": 4}' (linear or llama3)"},
        {"num-labels", OPT_INT, &a.num_labels, "classes of the classification head (default 2)"},
        {"vocab-from", OPT_STR, &a.vocab_from,
         "tokenizer directory to copy (vocab.txt or tokenizer.json) [required]"},
        {"init-std", OPT_FLOAT, &a.init_std,
         "standard deviation of the random weights (default: the config's initializer_range, "
         "0.02)"},
        {"seed", OPT_INT, &a.seed, "random seed (default 0)"},
        {"out", OPT_STR, &a.out, "output directory [required]"},
        {"gguf", OPT_STR, &a.gguf, "llama, gpt2: also write the model as this GGUF file"},
        {"quant", OPT_STR, &a.quant,
         "--gguf: type of its 2-D weights: Q8_0 (default), Q4_0, Q4_1, "
         "Q5_0, Q5_1, F16, BF16 or F32"},
    };
    int rc = cli_parse("loraft init --vocab-from DIR --out DIR [options]", opts,
                       sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!a.vocab_from || !a.out) {
        fprintf(stderr, "loraft init: --vocab-from and --out are required\n");
        return 2;
    }
    LfError err;
    if (init_checkpoint(&a, &err)) {
        fprintf(stderr, "loraft init: %s\n", err.msg);
        return 1;
    }
    return 0;
}
