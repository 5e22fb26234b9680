/* cli_args.c: the option parser behind every subcommand (see cli.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loraft/cli.h"

static void print_usage(FILE *out, const char *usage, const CliOpt *opts, int n) {
    fprintf(out, "usage: %s\n\noptions:\n", usage);
    for (int i = 0; i < n; i++) fprintf(out, "  --%-18s %s\n", opts[i].name, opts[i].help);
}

static int parse_value(const CliOpt *o, const char *v) {
    char *end;
    errno = 0;
    switch (o->type) {
    case OPT_STR:
        *(const char **)o->dst = v;
        return 0;
    case OPT_INT: {
        long x = strtol(v, &end, 10);
        if (errno || *end || end == v || x < -2147483647L || x > 2147483647L) return -1;
        *(int *)o->dst = (int)x;
        return 0;
    }
    case OPT_FLOAT: {
        float x = strtof(v, &end);
        if (errno || *end || end == v) return -1;
        *(float *)o->dst = x;
        return 0;
    }
    case OPT_LIST: {
        CliList *l = o->dst;
        if (l->n == (int)(sizeof l->items / sizeof *l->items)) return -1;
        l->items[l->n++] = v;
        return 0;
    }
    case OPT_FLAG:
        return -1;
    }
    return -1;
}

int cli_parse(const char *usage, const CliOpt *opts, int n_opts, CliList *positional, int argc,
              char **argv) {
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            print_usage(stdout, usage, opts, n_opts);
            return 1;
        }
        if (strncmp(a, "--", 2)) {
            if (!positional || positional->n == 64) {
                fprintf(stderr, "loraft: unexpected argument '%s'\n", a);
                print_usage(stderr, usage, opts, n_opts);
                return 2;
            }
            positional->items[positional->n++] = a;
            continue;
        }
        const CliOpt *o = NULL;
        for (int j = 0; j < n_opts && !o; j++)
            if (!strcmp(a + 2, opts[j].name)) o = &opts[j];
        if (!o) {
            fprintf(stderr, "loraft: unknown option '%s'\n", a);
            print_usage(stderr, usage, opts, n_opts);
            return 2;
        }
        if (o->type == OPT_FLAG) {
            *(int *)o->dst = 1;
            continue;
        }
        if (i + 1 >= argc || parse_value(o, argv[i + 1])) {
            fprintf(stderr, "loraft: option '%s' needs a valid %s value\n", a,
                    o->type == OPT_INT     ? "integer"
                    : o->type == OPT_FLOAT ? "number"
                                           : "string");
            return 2;
        }
        i++;
    }
    return 0;
}

int cli_runtime(const CliRuntime *rt, const Ops **ops, BaseDtype *dtype, Precision *precision,
                LfError *err) {
    *ops = ops_by_name(rt->device, err);
    return !*ops || base_dtype_parse(rt->base_dtype, dtype, err) ||
                   precision_parse(rt->precision, precision, err)
               ? -1
               : 0;
}
