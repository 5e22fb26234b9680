/* cli_export.c: `loraft export-gguf` writes a PEFT LoRA adapter as a llama.cpp LoRA adapter
 * (GGUF), for `llama-cli -m BASE.gguf --lora F.gguf`; and the GGUF model writer that init and
 * merge share. */
#include <stdio.h>
#include <stdlib.h>

#include "loraft/checkpoint.h"
#include "loraft/cli.h"
#include "loraft/gguf_export.h"
#include "loraft/text.h"

int cli_write_gguf(Model *m, const char *path, GgmlType type, const char *vocab_from,
                   LfError *err) {
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

int cmd_export_gguf(int argc, char **argv) {
    const char *model = NULL, *adapter = NULL, *out = NULL;
    const CliOpt opts[] = {
        {"adapter", OPT_STR, &adapter, "PEFT LoRA adapter directory [required]"},
        {"out", OPT_STR, &out, "output .gguf file [required]"},
        {"model", OPT_STR, &model,
         "base model (.gguf or HF directory; default: the adapter's base_model_name_or_path)"},
    };
    int rc = cli_parse("loraft export-gguf --adapter DIR --out FILE.gguf [--model M]", opts,
                       sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!adapter || !out)
        return fprintf(stderr, "loraft export-gguf: --adapter and --out are required\n"), 2;
    LfError err;
    char base[4096];
    if (!model) {
        TrainSpec spec;
        if (adapter_read_config(&spec, base, sizeof base, adapter, &err))
            return fprintf(stderr, "loraft export-gguf: %s\n", err.msg), 1;
        if (!*base)
            return fprintf(stderr, "loraft export-gguf: %s names no base model: pass --model\n",
                           adapter),
                   2;
        model = base;
    }
    Model m;
    if (model_open(&m, model, adapter, BASE_F32, PRECISION_FP32, &ops_cpu, 1, 2, &err)) {
        fprintf(stderr, "loraft export-gguf: %s\n", err.msg);
        return 1;
    }
    rc = gguf_export_adapter(&m, out, &err);
    if (rc)
        fprintf(stderr, "loraft export-gguf: %s\n", err.msg);
    else
        printf("wrote %s: %d LoRA modules of %s (r %d, alpha %g) for llama.cpp's --lora\n", out,
               model_n_adapters(&m), model, m.n_loras ? m.loras[0].r : m.embedding_lora.r,
               gguf_adapter_alpha(&m));
    model_free(&m);
    return rc ? 1 : 0;
}
