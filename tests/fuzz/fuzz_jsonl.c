/* fuzz_jsonl.c: libFuzzer target for the JSONL reader. The input is read twice: as one line by
 * jsonl_record (labels by name), whose length-aware text must equal what cJSON decodes
 * wherever cJSON can tell (no \u0000 in the line: cJSON ends strings at a NUL), and as a
 * whole file by dataset_load (unlabeled, then labels 0..2), whose examples must be
 * NUL-terminated texts of the lengths given. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fuzz_util.h"
#include "loraft/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {"neg", "pos"};

/* The decoded text against cJSON's, where cJSON keeps the whole string. */
static void check_record(const char *line, size_t size) {
    DatasetSpec spec = {
        .path = "fuzz", .label_column = "label", .num_labels = 2, .label_names = names};
    char *text;
    size_t len;
    int label;
    LfError err;
    if (jsonl_record(&spec, line, size, 1, &text, &len, &label, &err)) {
        FUZZ_ASSERT(text == NULL && err.msg[0]);
        return;
    }
    FUZZ_ASSERT(len <= size && text[len] == '\0' && (label == 0 || label == 1));
    cJSON *obj = cJSON_ParseWithLength(line, size);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "text");
    if (!memmem(line, size, "\\u0000", 6) && !memchr(line, 0, size)) /* NUL: cJSON cuts */
        FUZZ_ASSERT(cJSON_IsString(t) && strlen(t->valuestring) == len &&
                    !memcmp(t->valuestring, text, len));
    cJSON_Delete(obj);
    free(text);
}

static void check_file(const char *path, const char *label_column, int num_labels) {
    DatasetSpec spec = {
        .path = path, .format = "jsonl", .label_column = label_column, .num_labels = num_labels};
    Dataset ds;
    LfError err;
    if (dataset_load(&ds, &spec, &err)) {
        FUZZ_ASSERT(ds.n == 0 && ds.examples == NULL && err.msg[0]);
        return;
    }
    for (int i = 0; i < ds.n; i++) {
        const Example *e = &ds.examples[i];
        FUZZ_ASSERT(e->text[e->len] == '\0' && e->label >= -1 && e->label < 3);
    }
    dataset_free(&ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    check_record((const char *)data, size);
    const char *path = fuzz_write("in.jsonl", data, size);
    check_file(path, NULL, 0);
    check_file(path, "label", 3);
    remove(path);
    return 0;
}
