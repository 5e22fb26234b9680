/* cli.h: the loraft subcommands. Each takes the arguments after its name and returns
 * the process exit status; they are the only code that prints errors for the user. */
#pragma once
#include "loraft/model.h"
#include "loraft/quant.h" /* GgmlType */

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

int cmd_init(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_export_gguf(int argc, char **argv);
int cmd_config_docs(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_score(int argc, char **argv);

/* A tiny option parser shared by the subcommands: --name value, --flag, positionals. */
typedef enum OptType { OPT_STR, OPT_INT, OPT_FLOAT, OPT_FLAG, OPT_LIST } OptType;
typedef struct CliOpt {
    const char *name; /* without the leading "--" */
    OptType type;
    void *dst; /* const char **, int *, float *, int * (flag), or CliList * */
    const char *help;
} CliOpt;

/* Repeatable string options (--set k=v --set k2=v2) and positionals. */
typedef struct CliList {
    const char *items[64];
    int n;
} CliList;

/* Parses argv into opts; extra words go to positional (NULL = none allowed). Prints usage
 * and returns 1 for --help, prints an error and returns 2 on bad usage, 0 on success. */
int cli_parse(const char *usage, const CliOpt *opts, int n_opts, CliList *positional, int argc,
              char **argv);

/* Where and how the commands that open a model (predict, generate, score) run it: --device,
 * --base-dtype and --precision, as written (CLI_RUNTIME_DEFAULTS until parsed); their option
 * rows are CLI_RUNTIME_OPTS(rt). */
typedef struct CliRuntime {
    const char *device, *base_dtype, *precision;
} CliRuntime;
/* clang-format off */
#define CLI_RUNTIME_DEFAULTS {"auto", "f32", "auto"}
#define CLI_RUNTIME_OPTS(rt)                                                                      \
    {"device", OPT_STR, &(rt).device, "auto (default), cpu or cuda"},                             \
    {"base-dtype", OPT_STR, &(rt).base_dtype,                                                     \
     "frozen weights as f32 (default), bf16, q (a .gguf's own blocks), q8_0 .. q4_0"},            \
    {"precision", OPT_STR, &(rt).precision,                                                       \
     "fp32, tf32 or bf16 GEMMs (default auto: the most the device runs)"}
/* clang-format on */

/* The model m (its LoRA merged) as a GGUF file llama.cpp reads at path, every 2-D weight as type,
 * with the metadata of the tokenizer in vocab_from (a directory or file text_tokenizer_open
 * reads) when it is byte-level BPE: loraft init --gguf, loraft merge --format gguf of an HF
 * directory. */
int cli_write_gguf(Model *m, const char *path, GgmlType type, const char *vocab_from, LfError *err);

/* The op table, base dtype and precision rt names; -1 with the error on an unknown name. */
int cli_runtime(const CliRuntime *rt, const Ops **ops, BaseDtype *dtype, Precision *precision,
                LfError *err);
