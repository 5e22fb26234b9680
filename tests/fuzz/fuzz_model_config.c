/* fuzz_model_config.c: libFuzzer target for a Hugging Face config.json (model_config_load),
 * RoPE's scaling included. The input is the file. A config that loads must be valid
 * (model_config_validate), give RoPE frequencies in [0, ROPE_NUMBER_MAX] (short and long, global
 * and local), one for each turned pair of a head (partial rotary: of its first rotary_dim) for the
 * Llama family and none for the others, and survive model_config_save -> load unchanged (a
 * multimodal Gemma 3's is refused instead). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_util.h"
#include "loraft/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ModelConfig cfg, back;
    const char *path = fuzz_write("config.json", data, size);
    char saved[128];
    snprintf(saved, sizeof saved, "%s", path);
    LfError err;
    int rc = model_config_load(&cfg, saved, &err);
    if (rc) {
        remove(saved);
        FUZZ_ASSERT(err.msg[0]);
        return 0;
    }
    FUZZ_ASSERT(model_config_validate(&cfg, "fuzz", &err) == 0);
    RopeFreqs r[3];
    model_rope_freqs(&cfg, &r[0]);
    model_rope_freqs_long(&cfg, &r[1]);
    model_rope_freqs_local(&cfg, &r[2]);
    FUZZ_ASSERT(r[0].half == (arch_is_llama(cfg.arch) ? model_rotary_dim(&cfg) / 2 : 0));
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < r[k].half; i++)
            FUZZ_ASSERT(r[k].inv_freq[i] >= 0.0f && r[k].inv_freq[i] <= (float)ROPE_NUMBER_MAX);
    if (cfg.multimodal) { /* Gemma 3's multimodal checkpoints: their config is never written */
        FUZZ_ASSERT(model_config_save(&cfg, saved, &err) == -1 && err.msg[0]);
        remove(saved);
        return 0;
    }
    FUZZ_ASSERT(model_config_save(&cfg, saved, &err) == 0);
    FUZZ_ASSERT(model_config_load(&back, saved, &err) == 0);
    remove(saved);
    FUZZ_ASSERT(memcmp(&cfg, &back, offsetof(ModelConfig, labels)) == 0);
    for (int i = 0; i < cfg.num_labels; i++) FUZZ_ASSERT(!strcmp(cfg.labels[i], back.labels[i]));
    return 0;
}
