/* fuzz_config.c: libFuzzer target for the training config: train_config_load of a JSON file,
 * then "section.key=value" overrides (train_config_set, as --set gives them), then
 * train_config_check. Input: the file's bytes, then, after the first NUL byte, one override
 * per line. A config that passes must round-trip as train_config_save promises: saving it,
 * loading that and saving again writes the same bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "loraft/train_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    FUZZ_ASSERT(f != NULL);
    static char buf[1 << 20];
    *n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    char *copy = malloc(*n + 1);
    memcpy(copy, buf, *n);
    return copy;
}

static void round_trip(const TrainConfig *c) {
    static TrainConfig back;
    char a[128], b[128];
    LfError err;
    snprintf(a, sizeof a, "%s/a.json", fuzz_dir());
    snprintf(b, sizeof b, "%s/b.json", fuzz_dir());
    FUZZ_ASSERT(train_config_save(c, a, &err) == 0);
    if (train_config_load(&back, a, &err)) {
        fprintf(stderr, "reloading the saved config failed: %s\n", err.msg);
        FUZZ_ASSERT(!"a saved config loads");
    }
    FUZZ_ASSERT(train_config_save(&back, b, &err) == 0);
    size_t na, nb;
    char *sa = slurp(a, &na), *sb = slurp(b, &nb);
    FUZZ_ASSERT(na == nb && !memcmp(sa, sb, na));
    free(sa);
    free(sb);
    remove(a);
    remove(b);
}

/* Applies each line of s[0..n) as an override; 0 when all applied. */
static int apply_overrides(TrainConfig *c, const char *s, size_t n) {
    char line[4096];
    LfError err;
    while (n) {
        const char *nl = memchr(s, '\n', n);
        size_t k = nl ? (size_t)(nl - s) : n;
        snprintf(line, sizeof line, "%.*s", (int)(k < sizeof line ? k : sizeof line - 1), s);
        if (train_config_set(c, line, &err)) return -1;
        s += k + (nl != NULL);
        n -= k + (nl != NULL);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static TrainConfig c;
    const uint8_t *nul = memchr(data, 0, size);
    size_t file = nul ? (size_t)(nul - data) : size;
    const char *path = fuzz_write("in.json", data, file);
    LfError err;
    int rc = train_config_load(&c, path, &err);
    remove(path);
    if (rc) return 0;
    if (nul && apply_overrides(&c, (const char *)nul + 1, size - file - 1)) return 0;
    if (train_config_check(&c, &err) == 0) round_trip(&c);
    return 0;
}
