/* cli_train.c: `loraft train` and `loraft eval`, both driven by a JSON config. */
#include <stdio.h>

#include "loraft/cli.h"
#include "loraft/trainer.h"

/* Loads --config and applies every --set override. */
static int load_config(TrainConfig *c, const char *path, const CliList *sets, const char *cmd) {
    LfError err;
    train_config_defaults(c);
    if (!path) {
        fprintf(stderr, "loraft %s: --config FILE is required\n", cmd);
        return 2;
    }
    if (train_config_load(c, path, &err)) {
        fprintf(stderr, "loraft %s: %s\n", cmd, err.msg);
        return 1;
    }
    for (int i = 0; i < sets->n; i++)
        if (train_config_set(c, sets->items[i], &err)) {
            fprintf(stderr, "loraft %s: --set %s: %s\n", cmd, sets->items[i], err.msg);
            return 1;
        }
    if (train_config_check(c, &err)) {
        fprintf(stderr, "loraft %s: %s\n", cmd, err.msg);
        return 1;
    }
    return 0;
}

int cmd_train(int argc, char **argv) {
    const char *config = NULL;
    RunOptions ro = {NULL, 0};
    CliList sets = {0};
    const CliOpt opts[] = {
        {"config", OPT_STR, &config, "JSON training config (see docs/CONFIG.md) [required]"},
        {"set", OPT_LIST, &sets, "override one key, e.g. --set train.num_epochs=1 (repeatable)"},
        {"resume", OPT_STR, &ro.resume, "continue from a checkpoint directory (OUT/last)"},
        {"overwrite", OPT_FLAG, &ro.overwrite,
         "start again in a non-empty output_dir, removing its earlier run"},
    };
    int rc = cli_parse("loraft train --config FILE [--set section.key=value ...] "
                       "[--resume DIR | --overwrite]",
                       opts, sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (ro.resume && ro.overwrite)
        return fprintf(stderr, "loraft train: --resume and --overwrite exclude each other\n"), 2;
    static TrainConfig c;
    if ((rc = load_config(&c, config, &sets, "train"))) return rc;
    LfError err;
    if (trainer_run(&c, &ro, stdout, &err)) {
        fflush(stdout);
        fprintf(stderr, "loraft train: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *config = NULL, *adapter = NULL;
    CliList sets = {0};
    const CliOpt opts[] = {
        {"config", OPT_STR, &config, "JSON config naming the model and validation file [required]"},
        {"set", OPT_LIST, &sets, "override one key (repeatable)"},
        {"adapter", OPT_STR, &adapter,
         "a PEFT adapter directory to apply (LoRA, or TrainableTokens)"},
    };
    int rc = cli_parse("loraft eval --config FILE [--adapter DIR] [--set section.key=value ...]",
                       opts, sizeof opts / sizeof *opts, NULL, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    static TrainConfig c;
    if ((rc = load_config(&c, config, &sets, "eval"))) return rc;
    LfError err;
    if (trainer_evaluate(&c, adapter, stdout, &err)) {
        fflush(stdout);
        fprintf(stderr, "loraft eval: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int cmd_config_docs(int argc, char **argv) {
    (void)argv;
    if (argc) return fprintf(stderr, "usage: loraft config-docs > docs/CONFIG.md\n"), 2;
    train_config_write_docs(stdout);
    return 0;
}
