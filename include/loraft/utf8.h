/* utf8.h: decoding and encoding one UTF-8 code point, shared by the tokenizer and the data
 * readers so that both accept exactly the same text. Inline: the tokenizer's inner loop. */
#pragma once
#include <stddef.h>
#include <stdint.h>

/* Decodes one multi-byte code point of s[0..n) as Rust's str would accept it (no overlongs, no
 * surrogates, at most U+10FFFF). Returns its length in bytes, or 0 when invalid; ASCII (a
 * one-byte char) is the caller's fast path and returns 0 too. */
static inline int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char b = s[0];
    int len = b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
    if (!len || (size_t)len > n) return 0;
    uint32_t c = b & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        c = (c << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
    *cp = c;
    return len;
}

/* Writes code point c (at most U+10FFFF) to out[0..4); returns its length in bytes. */
static inline int utf8_encode(uint32_t c, char *out) {
    if (c < 0x80) return out[0] = (char)c, 1;
    if (c < 0x800) {
        out[0] = (char)(0xC0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | c >> 12);
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | c >> 18);
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* Length of the UTF-8 sequence at s[0..n) when it is valid, else minus the length of its
 * maximal invalid prefix (at least 1): what Rust's from_utf8_lossy replaces by one U+FFFD. */
static inline int utf8_check(const unsigned char *s, size_t n) {
    int b = s[0], need = b < 0x80   ? 1
                         : b < 0xC2 ? 0
                         : b < 0xE0 ? 2
                         : b < 0xF0 ? 3
                         : b < 0xF5 ? 4
                                    : 0;
    if (need <= 1) return need ? 1 : -1;
    int lo = b == 0xE0   ? 0xA0
             : b == 0xF0 ? 0x90
                         : 0x80,
        hi = b == 0xED   ? 0x9F
             : b == 0xF4 ? 0x8F
                         : 0xBF;
    int k = 1;
    for (; k < need && (size_t)k < n && s[k] >= lo && s[k] <= hi; k++) lo = 0x80, hi = 0xBF;
    return k == need ? k : -k;
}

/* s[0..n) with each maximal invalid sequence replaced by U+FFFD, as from_utf8_lossy does, into
 * out (room for 3 n + 1 bytes), NUL-terminated; returns its length. */
static inline size_t utf8_lossy(const unsigned char *s, size_t n, char *out) {
    size_t m = 0;
    for (size_t i = 0; i < n;) {
        int c = utf8_check(s + i, n - i);
        for (int k = 0; k < c; k++) out[m++] = (char)s[i + k];
        if (c < 0) out[m++] = '\xEF', out[m++] = '\xBF', out[m++] = '\xBD';
        i += (size_t)(c > 0 ? c : -c);
    }
    out[m] = '\0';
    return m;
}
