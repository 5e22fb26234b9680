/* cli.h: the loraft subcommands. Each takes the arguments after its name and returns
 * the process exit status; they are the only code that prints errors for the user. */
#pragma once

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
