/* lora_targets.h: PEFT's rules for a LoRA module's rank and alpha, and for the modules that get
 * adapters. LoraConfig's rank_pattern and alpha_pattern map regular expressions to a rank or an
 * alpha: a module takes the value of the first key that matches the end of its name (after a
 * '.', or the whole name); layers_to_transform keeps the targets of the listed layers only;
 * target_modules and exclude_modules given as a string are a regular expression that a module's
 * whole name must match. */
#pragma once

#include "loraft/error.h"

#define LORA_MAX_PATTERNS 16
#define LORA_MAX_LAYERS 64
#define LORA_MAX_TOKENS 1024 /* trainable_token_indices */
#define LORA_PATTERN_KEY 128
#define LORA_MAX_LAYER_NAMES 4
#define LORA_REGEX_MAX 512           /* target_modules or exclude_modules as a string */
#define LORA_ALL_LINEAR "all-linear" /* PEFT's target_modules for every linear but the output's */

typedef struct LoraPattern {
    char key[LORA_PATTERN_KEY]; /* a Python regular expression, as PEFT's config holds it */
    float value;
} LoraPattern;

/* Whether key is a regular expression loraft can match (a clear error if not): POSIX extended
 * syntax, plus Python's \d \w \s, (?: and lazy quantifiers, which match the same strings. */
int lora_pattern_check(const char *key, LfError *err);

/* Whether name matches the regular expression key whole (Python's re.fullmatch: PEFT's
 * target_modules or exclude_modules as a string). key was checked. */
int lora_regex_fullmatch(const char *name, const char *key);

/* The value of the first of n patterns whose key matches module as PEFT's get_pattern_key does
 * (the expression (.*\.)?(key)$ over the whole name), or fallback. Keys were checked. */
float lora_pattern_value(const LoraPattern *p, int n, const char *module, float fallback);

/* PEFT's layer index of a module name: the first numeric segment after a segment matching one of
 * the n layer names (a regular expression each, as patterns; none: after two or more segments),
 * with more after it ("model.layers.3.self_attn.q_proj": 3); -1 where there is none. */
int lora_layer_index(const char *module, const char (*names)[32], int n);
