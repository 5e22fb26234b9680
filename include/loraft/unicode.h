/* unicode.h: the generated Unicode tables behind the BERT normalizer and NFC
 * (src/text/unicode_tables.c, written by scripts/gen-unicode-tables.py; never edit by hand), and
 * the one search they all need: the lookups live in tokenizer.c, normalize.c and bpe.c, the users.
 * Versions follow Hugging Face `tokenizers`, see the generator: categories as of Unicode 8.0, NFD
 * and NFC as of 9.0, lowercase/White_Space 15.0. */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Flag bits of a code point. */
enum {
    UNI_OTHER = 1,      /* category Cc, Cf, Co or Cs (not Cn: tokenizers keeps those) */
    UNI_PUNCT = 2,      /* general category P* */
    UNI_MN = 4,         /* general category Mn (nonspacing mark: stripped as an accent) */
    UNI_SPACE = 8,      /* White_Space property */
    UNI_CJK = 16,       /* in the CJK ideograph blocks BERT surrounds with spaces */
    UNI_NONSTARTER = 32 /* canonical combining class != 0 */
};

/* Code points first..(next range's first - 1) have these flags; sorted, first = 0x80. */
typedef struct UnicodeFlagRange {
    uint32_t first;
    uint8_t flags;
} UnicodeFlagRange;

/* Simple lowercase: first + k*stride maps to itself + delta, for k < count. */
typedef struct UnicodeLowerRun {
    uint32_t first;
    uint16_t count;
    uint8_t stride;
    int32_t delta;
} UnicodeLowerRun;

/* Lowercase mappings to more than one code point (SpecialCasing, unconditional). */
typedef struct UnicodeLowerSpecial {
    uint32_t cp;
    uint8_t n;
    uint32_t to[3];
} UnicodeLowerSpecial;

/* Full canonical decomposition of cp: unicode_decomp_data[offset .. offset+n), n <= 4. Hangul
 * syllables are not listed: they decompose algorithmically. */
typedef struct UnicodeDecomp {
    uint32_t cp;
    uint16_t offset;
    uint8_t n;
} UnicodeDecomp;

/* Code points first..first+count-1 have canonical combining class ccc. */
typedef struct UnicodeCccRun {
    uint32_t first;
    uint8_t ccc;
    uint16_t count;
} UnicodeCccRun;

/* NFC quick check (UAX #15): NO chars never survive NFC (Full_Composition_Exclusion), MAYBE
 * ones may combine with the char before them. */
enum { UNI_NFC_NO = 1, UNI_NFC_MAYBE = 2 };

/* Code points first..(next range's first - 1) have canonical combining class ccc and these
 * UNI_NFC_ bits; sorted, the first is 0. */
typedef struct UnicodeNfcRange {
    uint32_t first;
    uint8_t ccc, qc;
} UnicodeNfcRange;

extern const UnicodeFlagRange unicode_flag_ranges[];
extern const size_t unicode_flag_ranges_len;
extern const UnicodeLowerRun unicode_lower_runs[];
extern const size_t unicode_lower_runs_len;
extern const UnicodeLowerSpecial unicode_lower_specials[];
extern const size_t unicode_lower_specials_len;
extern const UnicodeDecomp unicode_decomps[];
extern const size_t unicode_decomps_len;
extern const uint32_t unicode_decomp_data[];
extern const size_t unicode_decomp_data_len;
extern const UnicodeCccRun unicode_ccc_runs[];
extern const size_t unicode_ccc_runs_len;
extern const UnicodeNfcRange unicode_nfc_ranges[];
extern const size_t unicode_nfc_ranges_len;
/* The primary composites, first << 42 | second << 21 | composite (21 bits each), sorted: a pair
 * composes when first << 21 | second is some entry >> 21. Hangul is algorithmic. */
extern const uint64_t unicode_compositions[];
extern const size_t unicode_compositions_len;

/* Index of the last entry with first <= c in a sorted table of n structs of `size` bytes, each
 * starting with `uint32_t first` (c >= the first entry's): UNICODE_LAST_AT_MOST(table, n, c). */
static inline size_t unicode_last_at_most(const void *table, size_t n, size_t size, uint32_t c) {
    const char *base = (const char *)table;
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        uint32_t first;
        memcpy(&first, base + mid * size, sizeof first);
        if (first <= c)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}
#define UNICODE_LAST_AT_MOST(table, n, c) unicode_last_at_most(table, n, sizeof *(table), c)
