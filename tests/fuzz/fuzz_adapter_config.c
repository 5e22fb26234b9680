/* fuzz_adapter_config.c: libFuzzer target for reading a PEFT adapter_config.json
 * (adapter_read_config). The input is the file; what it fills in must stay inside the
 * TrainSpec: counts within the arrays, every name NUL-terminated, the base model name too,
 * PEFT's patterns within their ranges, of keys that compile, and token ids not negative. */
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
    FUZZ_ASSERT(spec.n_exclude >= 0 && spec.n_exclude <= LORA_MAX_EXCLUDE);
    for (int i = 0; i < spec.n_exclude; i++)
        FUZZ_ASSERT(memchr(spec.exclude[i], 0, sizeof spec.exclude[i]));
    FUZZ_ASSERT(memchr(spec.target_regex, 0, sizeof spec.target_regex));
    FUZZ_ASSERT(memchr(spec.exclude_regex, 0, sizeof spec.exclude_regex));
    FUZZ_ASSERT(!spec.target_regex[0] || !spec.n_targets); /* a string or a list */
    FUZZ_ASSERT(spec.n_rank_pattern >= 0 && spec.n_rank_pattern <= LORA_MAX_PATTERNS);
    FUZZ_ASSERT(spec.n_alpha_pattern >= 0 && spec.n_alpha_pattern <= LORA_MAX_PATTERNS);
    for (int i = 0; i < spec.n_rank_pattern; i++) { /* a rank, of a key that compiles */
        const LoraPattern *p = &spec.rank_pattern[i];
        FUZZ_ASSERT(memchr(p->key, 0, sizeof p->key) && lora_pattern_check(p->key, &err) == 0);
        FUZZ_ASSERT(p->value >= 1 && p->value <= LORA_MAX_R && p->value == (float)(int)p->value);
    }
    for (int i = 0; i < spec.n_alpha_pattern; i++) {
        const LoraPattern *p = &spec.alpha_pattern[i];
        FUZZ_ASSERT(memchr(p->key, 0, sizeof p->key) && lora_pattern_check(p->key, &err) == 0);
        FUZZ_ASSERT(p->value > 0 && p->value <= 3.4e38f);
    }
    FUZZ_ASSERT(spec.n_layers >= 0 && spec.n_layers <= LORA_MAX_LAYERS);
    for (int i = 0; i < spec.n_layers; i++) FUZZ_ASSERT(spec.layers[i] >= 0);
    FUZZ_ASSERT(spec.n_layers_pattern >= 0 && spec.n_layers_pattern <= LORA_MAX_LAYER_NAMES);
    FUZZ_ASSERT(!spec.n_layers_pattern || spec.n_layers);
    for (int i = 0; i < spec.n_layers_pattern; i++)
        FUZZ_ASSERT(memchr(spec.layers_pattern[i], 0, sizeof spec.layers_pattern[i]));
    FUZZ_ASSERT(spec.n_token_indices >= 0 && spec.n_token_indices <= LORA_MAX_TOKENS);
    for (int i = 0; i < spec.n_token_indices; i++) FUZZ_ASSERT(spec.token_indices[i] >= 0);
    FUZZ_ASSERT(spec.n_head_token_indices >= 0 && spec.n_head_token_indices <= LORA_MAX_TOKENS);
    for (int i = 0; i < spec.n_head_token_indices; i++)
        FUZZ_ASSERT(spec.head_token_indices[i] >= 0);
    FUZZ_ASSERT(memchr(spec.token_module, 0, sizeof spec.token_module));
    FUZZ_ASSERT(spec.strategy == STRATEGY_LORA || spec.strategy == STRATEGY_TOKENS);
    if (spec.strategy == STRATEGY_TOKENS) /* TrainableTokens: its rows alone, one list of ids */
        FUZZ_ASSERT(!spec.n_targets && !spec.n_modules_to_save &&
                    (!spec.n_token_indices || !spec.n_head_token_indices ||
                     spec.n_token_indices == spec.n_head_token_indices));
    return 0;
}
