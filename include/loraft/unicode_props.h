/* unicode_props.h: the generated character classes behind the byte-level BPE pre-tokenizers
 * (src/unicode_props.c, written by scripts/gen-unicode-tables.py; never edit by hand). Data
 * only: the lookup lives in bpe.c, the one user. Versions follow Hugging Face `tokenizers`:
 * \p{L}, \p{N}, \s and the o200k classes of its regexes are Oniguruma's (Unicode 16.0), the
 * Digits pre-tokenizer's char::is_numeric is Rust's (17.0); see the generator. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Flag bits of a code point. */
enum {
    UPROP_L = 1,       /* general category L*: \p{L} */
    UPROP_N = 2,       /* general category N*: \p{N} */
    UPROP_NUMERIC = 4, /* general category N* as of 17.0: Rust's char::is_numeric */
    UPROP_SPACE = 8,   /* White_Space: \s, and Rust's char::is_whitespace */
    UPROP_UPPER = 16,  /* [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]: o200k's "upper" letters */
    UPROP_LOWER = 32   /* [\p{Ll}\p{Lm}\p{Lo}\p{M}]: o200k's "lower" letters */
};

/* Code points first..(next range's first - 1) have these flags; sorted, the first is 0. */
typedef struct UnicodePropRange {
    uint32_t first;
    uint8_t flags;
} UnicodePropRange;

extern const UnicodePropRange unicode_prop_ranges[];
extern const size_t unicode_prop_ranges_len;
