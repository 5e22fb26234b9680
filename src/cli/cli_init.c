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

/* --gguf: the model (no LoRA: nothing merges) as a GGUF file llama.cpp reads, every 2-D
 * weight quantised to quant, with the tokenizer's metadata when it is byte-level BPE. */
static int write_gguf(Model *m, const char *path, const char *quant, const char *vocab_from,
                      LfError *err) {
    GgmlType type = GGML_F32;
    if (quant_by_name(quant, &type, err)) return -1;
    TextTokenizer tok;
    BpeArrays vocab;
    void *vocab_mem = NULL;
    if (text_tokenizer_open(&tok, vocab_from, err)) return -1;
    int bpe = tok.kind == TEXT_BPE;
    int rc = bpe ? bpe_to_arrays(tok.bpe, &vocab, &vocab_mem, err) : 0;
    if (!rc) rc = gguf_export_model(m, path, type, NULL, bpe ? &vocab : NULL, err);
    free(vocab_mem);
    text_tokenizer_close(&tok);
    return rc;
}

static int init_checkpoint(const char *arch, int layers, int hidden, int heads, int kv_heads,
                           int ffn, int max_pos, int num_labels, int untied, float init_std,
                           const char *vocab_from, int seed, const char *out, const char *gguf,
                           const char *quant, LfError *err) {
    ModelConfig cfg;
    if (!strcmp(arch, "distilbert"))
        model_config_defaults(&cfg, ARCH_DISTILBERT);
    else if (!strcmp(arch, "bert"))
        model_config_defaults(&cfg, ARCH_BERT);
    else if (!strcmp(arch, "llama"))
        model_config_defaults(&cfg, ARCH_LLAMA), cfg.tie_word_embeddings = !untied;
    else if (!strcmp(arch, "gpt2") && !untied)
        model_config_defaults(&cfg, ARCH_GPT2);
    else
        return lf_fail(err, "--arch '%s'%s: expected distilbert, bert, llama or gpt2 (tied)", arch,
                       untied ? " --untied" : "");
    if (gguf && cfg.arch != ARCH_LLAMA && cfg.arch != ARCH_GPT2)
        return lf_fail(err, "--gguf writes llama and gpt2 models only (--arch %s)", arch);
    if (take_vocab(&cfg, vocab_from, err)) return -1;
    if (layers > 0) cfg.num_layers = layers;
    if (hidden > 0) cfg.hidden_size = hidden;
    if (heads > 0) cfg.num_heads = heads;
    cfg.num_kv_heads = kv_heads > 0 ? kv_heads : cfg.num_heads;
    cfg.ffn_size = ffn > 0 ? ffn : 4 * cfg.hidden_size;
    if (max_pos > 0) cfg.max_positions = max_pos;
    if (!isfinite(init_std) || init_std < 0)
        return lf_fail(err,
                       "--init-std %g: a standard deviation is finite and >= 0 (0: the "
                       "config's initializer_range)",
                       init_std);
    if (init_std > 0) cfg.initializer_range = init_std;
    if (num_labels > 0) {
        if (num_labels > MAX_LABELS) return lf_fail(err, "--num-labels must be <= %d", MAX_LABELS);
        cfg.num_labels = num_labels;
        for (int i = 0; i < num_labels; i++)
            snprintf(cfg.labels[i], sizeof cfg.labels[i], "LABEL_%d", i);
    }
    if (cfg.hidden_size % cfg.num_heads || cfg.num_heads % cfg.num_kv_heads)
        return lf_fail(err,
                       "--hidden %d, --heads %d, --kv-heads %d: heads must divide hidden, "
                       "kv-heads heads",
                       cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads);
    if (model_config_validate(&cfg, "loraft init", err)) return -1;

    TrainSpec spec;
    train_spec_defaults(&spec);
    spec.strategy = STRATEGY_NONE;
    spec.task = arch_task(cfg.arch);
    Model m;
    if (model_create(&m, &cfg, &spec, &ops_cpu, NULL, (uint64_t)seed, 1, 2, NULL, 0, err))
        return -1;
    char path[4200];
    int rc = dir_create(out, err);
    if (!rc)
        snprintf(path, sizeof path, "%s/config.json", out), rc = model_config_save(&cfg, path, err);
    if (!rc)
        snprintf(path, sizeof path, "%s/model.safetensors", out),
            rc = model_save_weights(&m, path, 0, err);
    if (!rc) rc = tokenizer_copy_files(vocab_from, out, err);
    if (!rc && gguf) rc = write_gguf(&m, gguf, quant, vocab_from, err);
    if (!rc)
        printf("wrote %s: %s, %d layers, hidden %d, %d heads, ffn %d, vocab %d, %zu parameters\n",
               out, arch, cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.ffn_size,
               cfg.vocab_size, m.n_base);
    model_free(&m);
    return rc;
}

int cmd_init(int argc, char **argv) {
    const char *arch = "distilbert", *vocab = NULL, *out = NULL, *gguf = NULL, *quant = "Q8_0";
    int layers = 0, hidden = 0, heads = 0, kv_heads = 0, ffn = 0, max_pos = 0, labels = 0;
    int seed = 0, untied = 0;
    float init_std = 0;
    const CliOpt opts[] = {
        {"arch", OPT_STR, &arch, "distilbert (default), bert, llama or gpt2"},
        {"layers", OPT_INT, &layers, "transformer layers (default: the base model's)"},
        {"hidden", OPT_INT, &hidden, "hidden size C"},
        {"heads", OPT_INT, &heads, "attention heads (must divide hidden)"},
        {"kv-heads", OPT_INT, &kv_heads, "llama: key/value heads (must divide heads)"},
        {"untied", OPT_FLAG, &untied, "llama: lm_head gets its own weight"},
        {"ffn", OPT_INT, &ffn, "feed-forward size (default 4 * hidden)"},
        {"max-positions", OPT_INT, &max_pos, "position embeddings (default 512)"},
        {"num-labels", OPT_INT, &labels, "classes of the classification head (default 2)"},
        {"vocab-from", OPT_STR, &vocab,
         "tokenizer directory to copy (vocab.txt or tokenizer.json) [required]"},
        {"init-std", OPT_FLOAT, &init_std,
         "standard deviation of the random weights (default: the config's initializer_range, "
         "0.02)"},
        {"seed", OPT_INT, &seed, "random seed (default 0)"},
        {"out", OPT_STR, &out, "output directory [required]"},
        {"gguf", OPT_STR, &gguf, "llama, gpt2: also write the model as this GGUF file"},
        {"quant", OPT_STR, &quant,
         "--gguf: type of its 2-D weights: Q8_0 (default), Q4_0, Q4_1, "
         "Q5_0, Q5_1, F16, BF16 or F32"},
    };
    int rc = cli_parse("loraft init --vocab-from DIR --out DIR [options]", opts,
                       sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!vocab || !out) {
        fprintf(stderr, "loraft init: --vocab-from and --out are required\n");
        return 2;
    }
    LfError err;
    if (init_checkpoint(arch, layers, hidden, heads, kv_heads, ffn, max_pos, labels, untied,
                        init_std, vocab, seed, out, gguf, quant, &err)) {
        fprintf(stderr, "loraft init: %s\n", err.msg);
        return 1;
    }
    return 0;
}
