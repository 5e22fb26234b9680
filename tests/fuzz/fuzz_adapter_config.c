/* fuzz_adapter_config.c: libFuzzer target for reading a PEFT adapter_config.json
 * (adapter_read_config). The input is the file; what it fills in must stay inside the
 * TrainSpec: counts within the arrays, every name NUL-terminated, the base model name too. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "loraft/checkpoint.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write("adapter_config.json", data, size);
    TrainSpec spec;
    char base[64];
    LfError err;
    int rc = adapter_read_config(&spec, base, sizeof base, fuzz_dir(), &err);
    remove(path);
    if (rc) {
        FUZZ_ASSERT(err.msg[0]);
        return 0;
    }
    FUZZ_ASSERT(spec.n_targets >= 0 && spec.n_targets <= LORA_MAX_TARGETS);
    FUZZ_ASSERT(spec.n_modules_to_save >= 0 && spec.n_modules_to_save <= LORA_MAX_SAVE);
    for (int i = 0; i < spec.n_targets; i++)
        FUZZ_ASSERT(memchr(spec.targets[i], 0, sizeof spec.targets[i]));
    for (int i = 0; i < spec.n_modules_to_save; i++)
        FUZZ_ASSERT(memchr(spec.modules_to_save[i], 0, sizeof spec.modules_to_save[i]));
    FUZZ_ASSERT(memchr(base, 0, sizeof base));
    return 0;
}
