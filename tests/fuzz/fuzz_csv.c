/* fuzz_csv.c: libFuzzer target for the CSV reader (RFC 4180 quoting, the header, labels as
 * integers or names). The input is one file, loaded three ways: text and label columns by
 * name with label names, with integer labels 0..2, and unlabeled with the first example
 * only. Every example must be a NUL-terminated text of the length given, inside the file's
 * size, with a label in range. */
#include <stdint.h>
#include <stdio.h>

#include "fuzz_util.h"
#include "loraft/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"neg", "pos"};

static void load(DatasetSpec spec, size_t size) {
    Dataset ds;
    LfError err;
    if (dataset_load(&ds, &spec, &err)) {
        FUZZ_ASSERT(ds.n == 0 && ds.examples == NULL && err.msg[0]);
        return;
    }
    int max = spec.num_labels ? spec.num_labels : 1;
    FUZZ_ASSERT(ds.n > 0 && (spec.limit == 0 || ds.n <= spec.limit));
    for (int i = 0; i < ds.n; i++) {
        const Example *e = &ds.examples[i];
        FUZZ_ASSERT(e->len <= size && e->text[e->len] == '\0');
        FUZZ_ASSERT(spec.label_column ? e->label >= 0 && e->label < max : e->label == -1);
    }
    dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("in.csv", data, size);
    load(
        (DatasetSpec){.path = path, .label_column = "label", .num_labels = 2, .label_names = names},
        size);
    load((DatasetSpec){.path = path, .format = "csv", .label_column = "label", .num_labels = 3},
         size);
    load((DatasetSpec){.path = path, .format = "csv", .text_column = "b", .limit = 1}, size);
    remove(path);
    return 0;
}
