/* cli_init.c: `loraft init` writes a complete HF-format checkpoint directory with seeded
 * random weights (config.json, model.safetensors with HF's exact names, the vocab). Tests
 * build their tiny models this way instead of downloading anything. */
#include <stdio.h>
#include <string.h>

#include "loraft/cli.h"
#include "loraft/fileio.h"
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
        cfg->pad_token_id = cfg->arch == ARCH_LLAMA ? -1 : cfg->eos_token_id;
    } else {
        cfg->vocab_size = tokenizer_vocab_size(tok.wordpiece);
        cfg->pad_token_id = tokenizer_special(tok.wordpiece, TOK_PAD);
    }
    text_tokenizer_close(&tok);
    return 0;
}

static int init_checkpoint(const char *arch, int layers, int hidden, int heads, int kv_heads,
                           int ffn, int max_pos, int num_labels, int untied, const char *vocab_from,
                           int seed, const char *out, LfError *err) {
    ModelConfig cfg;
    if (!strcmp(arch, "distilbert"))
        model_config_defaults(&cfg, ARCH_DISTILBERT);
    else if (!strcmp(arch, "bert"))
        model_config_defaults(&cfg, ARCH_BERT);
    else if (!strcmp(arch, "llama"))
        model_config_defaults(&cfg, ARCH_LLAMA), cfg.tie_word_embeddings = !untied;
    else
        return lf_fail(err, "--arch '%s': expected distilbert, bert or llama", arch);
    if (take_vocab(&cfg, vocab_from, err)) return -1;
    if (layers > 0) cfg.num_layers = layers;
    if (hidden > 0) cfg.hidden_size = hidden;
    if (heads > 0) cfg.num_heads = heads;
    cfg.num_kv_heads = kv_heads > 0 ? kv_heads : cfg.num_heads;
    cfg.ffn_size = ffn > 0 ? ffn : 4 * cfg.hidden_size;
    if (max_pos > 0) cfg.max_positions = max_pos;
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
    spec.strategy = STRATEGY_HEAD;
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
    if (!rc)
        printf("wrote %s: %s, %d layers, hidden %d, %d heads, ffn %d, vocab %d, %zu parameters\n",
               out, arch, cfg.num_layers, cfg.hidden_size, cfg.num_heads, cfg.ffn_size,
               cfg.vocab_size, m.n_base);
    model_free(&m);
    return rc;
}

int cmd_init(int argc, char **argv) {
    const char *arch = "distilbert", *vocab = NULL, *out = NULL;
    int layers = 0, hidden = 0, heads = 0, kv_heads = 0, ffn = 0, max_pos = 0, labels = 0;
    int seed = 0, untied = 0;
    const CliOpt opts[] = {
        {"arch", OPT_STR, &arch, "distilbert (default), bert or llama"},
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
        {"seed", OPT_INT, &seed, "random seed (default 0)"},
        {"out", OPT_STR, &out, "output directory [required]"},
    };
    int rc = cli_parse("loraft init --vocab-from DIR --out DIR [options]", opts,
                       sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!vocab || !out) {
        fprintf(stderr, "loraft init: --vocab-from and --out are required\n");
        return 2;
    }
    LfError err;
    if (init_checkpoint(arch, layers, hidden, heads, kv_heads, ffn, max_pos, labels, untied, vocab,
                        seed, out, &err)) {
        fprintf(stderr, "loraft init: %s\n", err.msg);
        return 1;
    }
    return 0;
}
