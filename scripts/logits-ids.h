/* logits-ids.h: the one input format of scripts/llama-cpp-logits.c and scripts/loraft-logits.c
 * (two programs that cannot share a library): a prompt's ids as `loraft tokenize` prints
 * them, {"ids":[1,2,3]}. */
#pragma once
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The ids of one line into ids[0..max); returns their count, -1 when there are more. */
static int parse_ids(const char *line, int32_t *ids, int max) {
    const char *p = strchr(line, '[');
    int n = 0;
    for (char *end; p && *p && *p != ']'; p = end) {
        long v = strtol(p + 1, &end, 10);
        if (end == p + 1) break;
        if (n == max) return -1;
        ids[n++] = (int32_t)v;
    }
    return n;
}
