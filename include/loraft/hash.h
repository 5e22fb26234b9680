/* hash.h: the byte-string hash of the tokenizers' vocabulary tables (WordPiece and BPE):
 * word-at-a-time multiplicative mixing, never 0 (0 marks an empty slot). */
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t hash_bytes(const void *data, size_t n) {
    const unsigned char *s = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (; n >= 8; s += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x94D049BB133111EBull;
    h ^= h >> 32;
    return (uint32_t)h | 1u << 31;
}
