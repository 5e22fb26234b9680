/* main.c: the loraft command-line entry point; dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

#include "loraft/cli.h"
#include "loraft/ops.h"

static const Command commands[] = {
    {"train", cmd_train, "fine-tune a model from a JSON config (LoRA, head-only or full)"},
    {"eval", cmd_eval, "evaluate a model (and adapter) on a validation set"},
    {"predict", cmd_predict, "classify texts with a model and an optional LoRA adapter"},
    {"merge", cmd_merge, "fold a LoRA adapter into the base weights (HF directory or GGUF)"},
    {"export-gguf", cmd_export_gguf, "write a LoRA adapter as a llama.cpp LoRA GGUF (--lora)"},
    {"config-docs", cmd_config_docs, "print the reference of every config key (docs/CONFIG.md)"},
    {"init", cmd_init, "write a seeded random HF checkpoint (for tests and experiments)"},
    {"tokenize", cmd_tokenize, "encode JSONL or text lines on stdin into token ids"},
    {"generate", cmd_generate, "continue prompts with a decoder (and an adapter), streaming"},
    {"score", cmd_score, "score prompt / response records with a reward model"},
};

static void usage(FILE *out) {
    fprintf(out, "usage: loraft <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'loraft <command> --help' for the options of one command.\n");
}

int main(int argc, char **argv) {
    ops_cpu_select_blas_kernels(argv);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "loraft: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
