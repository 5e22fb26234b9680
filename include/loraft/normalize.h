/* normalize.h: Unicode canonical composition (NFC, UAX #15) of UTF-8 text, code point for code
 * point what Hugging Face `tokenizers`' NFC normalizer gives: its Unicode 9.0 data (unicode.h),
 * full canonical decomposition (Hangul algorithmically), canonical ordering by combining class,
 * then composition of unblocked pairs that are not composition exclusions. No stream-safe
 * format (no U+034F inserted), as there.
 *
 * Text that NFC leaves unchanged is recognised by the quick check and returned without a copy;
 * otherwise only the stretches around the chars the quick check stops at are redone. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scratch reused across calls (zero-initialise; nfc_free). Not shared between threads. */
typedef struct Nfc {
    char *text; /* the last result, when it is not the input */
    size_t text_cap;
    uint32_t *cp; /* a stretch's code points, combining class in bits 24..31 */
    size_t cp_cap;
} Nfc;

/* NFC of the valid UTF-8 s[0..n): *out is s itself when s is already NFC, else z->text, valid
 * until the next call. 0, or -1 with err when out of memory. */
int nfc_normalize(Nfc *z, const char *s, size_t n, const char **out, size_t *out_len, LfError *err);
void nfc_free(Nfc *z);

/* The full canonical decomposition of one char (its NFD, canonically ordered; Hangul
 * algorithmically) into out: 1..4 code points, returned. */
int nfd_char(uint32_t c, uint32_t out[4]);

#ifdef __cplusplus
}
#endif
