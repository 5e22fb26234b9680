/* cli.h: the loraft subcommands. Each takes the arguments after its name and returns
 * the process exit status; they are the only code that prints errors for the user. */
#pragma once

typedef struct Command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} Command;

int cmd_tokenize(int argc, char **argv);
