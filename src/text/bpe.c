/* bpe.c: byte-level and SentencePiece-style BPE (see bpe.h), exact to Hugging Face `tokenizers`.
 * The pre-tokenizer regexes are hand-written matchers over the generated Unicode classes
 * (unicode_props.c), merges are an open-addressing hash of id pairs, and each word is merged with
 * the same min-heap of (rank, position) that `tokenizers` uses, so ties and stale entries resolve
 * as there. SentencePiece-style BPE is the same engine with chars (or <0xNN> byte tokens) as the
 * first symbols, its normalizer / Metaspace / decoder steps, and for GGUF "llama" rules made from
 * the scores (llama.cpp's merge order). It is not a general `tokenizers` runtime: other
 * normalizers, models and regexes are refused at load time, and there is no word cache and no
 * offset tracking. */
#include "loraft/bpe.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "loraft/fileio.h"
#include "loraft/normalize.h"
#include "loraft/unicode.h" /* UNICODE_LAST_AT_MOST */
#include "loraft/utf8.h"
#include "loraft/unicode_props.h"
#include "loraft/utf8.h"
#include "loraft/hash.h"

enum { MAX_STAGES = 4, MAX_TEMPLATE = 8 };

/* Pre-tokenizer steps, applied in order; ByteLevel is always the last. ST_SPLIT_LLAMA3 is the
 * regex of Llama-3 (\p{N}{1,3}) and of Qwen2 (\p{N}): the same but for the digits per number.
 * ST_SPLIT_O200K is GPT-4o's (o200k_base, Phi-4-mini's: \p{N}{1,3}, contraction suffixes) and
 * Mistral's Tekken (\p{N}, no contractions). ST_SPLIT_SPACE is Gemma's
 * Split(" ", MergedWithPrevious). */
typedef enum {
    ST_DIGITS,
    ST_SPLIT_GPT2,
    ST_SPLIT_LLAMA3,
    ST_SPLIT_O200K,
    ST_SPLIT_SPACE,
    ST_BYTELEVEL,
    ST_METASPACE
} StageKind;
typedef struct Stage {
    StageKind kind;
    int flag;  /* Digits: individual_digits; ByteLevel: add_prefix_space; Llama-3, o200k: digits;
                  Metaspace: prepend_scheme (PREPEND_*) */
    int regex; /* ByteLevel: use_regex; Metaspace: split; o200k: the contraction suffixes */
} Stage;

/* Metaspace's prepend_scheme. */
enum { PREPEND_NEVER, PREPEND_FIRST, PREPEND_ALWAYS };

static const char SPACE_MARK[] = "\xE2\x96\x81"; /* U+2581, SentencePiece's "▁" */

typedef struct AddedToken {
    uint32_t off, len;     /* content in the arena */
    uint32_t pat, pat_len; /* what it matches: the content, after NFC when normalized */
    int32_t id;
    uint8_t special, normalized, lstrip, rstrip;
} AddedToken;

/* Byte strings -> id: keys live in an arena at off[id], len[id]. */
typedef struct StrTable {
    uint32_t *hash; /* 0 = empty slot */
    int32_t *id;
    size_t mask;
} StrTable;

/* (left id, right id) -> (rank, merged id); one slot is one 16-byte load. */
typedef struct PairSlot {
    uint64_t key; /* left << 32 | right, UINT64_MAX = empty */
    uint32_t rank;
    int32_t merged;
} PairSlot;
typedef struct PairTable {
    PairSlot *slot;
    size_t mask;
} PairTable;

typedef struct Arena {
    char *p;
    size_t n, cap;
} Arena;

struct Bpe {
    Arena text;                    /* model spellings and added token contents */
    Arena raw;                     /* the bytes each id decodes to */
    uint32_t *off, *len;           /* [n_ids] model spelling of id in text, off UINT32_MAX: none */
    uint32_t *name_off, *name_len; /* [n_ids] what id_to_token gives: added content first */
    uint32_t *raw_off, *raw_len;   /* [n_ids] decoded bytes, raw_off UINT32_MAX: no such id */
    uint8_t *special;              /* [n_ids] 1 when decode(skip_special) drops it */
    uint8_t *byte_tok;             /* [n_ids] SentencePiece: a <0xNN> the decoder turns to a byte */
    int32_t n_ids;
    StrTable vocab; /* model vocabulary, by spelling */
    PairTable merges;
    int32_t byte_id[256];    /* the model token of each byte's char; SentencePiece: of <0xNN> */
    char byte_spell[256][2]; /* UTF-8 of each byte's char (1 or 2 bytes) */
    AddedToken *added;
    int n_added;
    uint8_t added_first[2][256]; /* [normalized] some added token starts with this byte */
    int nfc;                     /* the normalizer is NFC (else there is none) */
    /* SentencePiece-style BPE: the model works on chars, not the byte alphabet;
     * prepend: normalizer Prepend("▁"); escape: normalizer Replace(" ", "▁"). */
    int spm, byte_fallback, prepend, escape;
    /* its decoder: ByteFallback; Strip of leading spaces after Fuse; the Metaspace decoder
     * (which drops every "▁" of the first token, PREPEND_* + 1; 0: not that decoder) */
    int dec_bytes, dec_strip, dec_metaspace;
    Stage stages[MAX_STAGES];
    int n_stages;
    int ignore_merges, fuse_unk;
    int32_t unk;
    int32_t prefix[MAX_TEMPLATE], suffix[MAX_TEMPLATE];
    int n_prefix, n_suffix;
    int32_t bos, eos;
    uint8_t ascii[128]; /* unicode_props flags of ASCII */
};

/* ---------------------------------------------------------------- small helpers */

static int arena_add(Arena *a, const void *s, size_t n, uint32_t *off, LfError *err) {
    if (a->n + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 4096;
        while (cap < a->n + n + 1) cap *= 2;
        if (cap >= UINT32_MAX) return lf_fail(err, "token strings too large");
        char *p = realloc(a->p, cap);
        if (!p) return lf_fail(err, "out of memory for token strings");
        a->p = p;
        a->cap = cap;
    }
    *off = (uint32_t)a->n;
    memcpy(a->p + a->n, s, n);
    a->p[a->n + n] = 0;
    a->n += n + 1;
    return 0;
}

static int uprops(uint32_t c) {
    return unicode_prop_ranges[UNICODE_LAST_AT_MOST(unicode_prop_ranges, unicode_prop_ranges_len,
                                                    c)]
        .flags;
}

/* GPT-2's byte alphabet: printable Latin-1 bytes stand for themselves, the other 68 bytes for
 * U+0100.. in byte order. */
static uint32_t byte_char(int b) {
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) return b;
    int n = 0;
    for (int x = 0; x < b; x++)
        n += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
    return 0x100 + n;
}

/* The byte char c stands for, -1 when c is not in the alphabet. */
static int char_byte(uint32_t c) {
    if (c < 0x100) return c == byte_char((int)c) ? (int)c : -1;
    if (c >= 0x144) return -1;
    for (int b = 0; b < 256; b++)
        if (byte_char(b) == c) return b;
    return -1;
}

/* ---------------------------------------------------------------- hash tables */

static int strtab_init(StrTable *tab, size_t n, LfError *err) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    tab->hash = calloc(cap, sizeof *tab->hash);
    tab->id = malloc(cap * sizeof *tab->id);
    tab->mask = cap - 1;
    return tab->hash && tab->id ? 0 : lf_fail(err, "out of memory for the vocabulary");
}

/* Slot of key s[0..n) in tab: its id's slot, or the empty slot where it goes. */
static size_t strtab_slot(const StrTable *tab, const char *arena, const uint32_t *off,
                          const uint32_t *len, const void *s, size_t n, uint32_t h) {
    size_t i = h & tab->mask;
    while (tab->hash[i] &&
           !(tab->hash[i] == h && len[tab->id[i]] == n && !memcmp(arena + off[tab->id[i]], s, n)))
        i = (i + 1) & tab->mask;
    return i;
}

/* Later duplicates win, as in a Python dict or Rust's HashMap::insert. */
static void strtab_put(StrTable *tab, const char *arena, const uint32_t *off, const uint32_t *len,
                       int32_t id) {
    uint32_t h = hash_bytes(arena + off[id], len[id]);
    size_t i = strtab_slot(tab, arena, off, len, arena + off[id], len[id], h);
    tab->hash[i] = h;
    tab->id[i] = id;
}

static int32_t strtab_get(const StrTable *tab, const char *arena, const uint32_t *off,
                          const uint32_t *len, const void *s, size_t n) {
    if (!tab->hash) return -1;
    size_t i = strtab_slot(tab, arena, off, len, s, n, hash_bytes(s, n));
    return tab->hash[i] ? tab->id[i] : -1;
}

static int32_t vocab_get(const Bpe *t, const void *s, size_t n) {
    return strtab_get(&t->vocab, t->text.p, t->off, t->len, s, n);
}

static PairSlot *pair_slot(const PairTable *p, uint64_t key) {
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & p->mask;
    while (p->slot[i].key != UINT64_MAX && p->slot[i].key != key) i = (i + 1) & p->mask;
    return &p->slot[i];
}

static int pair_init(PairTable *p, size_t n, LfError *err) {
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    p->slot = malloc(cap * sizeof *p->slot);
    if (!p->slot) return lf_fail(err, "out of memory for the merges");
    for (size_t i = 0; i < cap; i++) p->slot[i].key = UINT64_MAX;
    p->mask = cap - 1;
    return 0;
}

/* A later rule for the same pair replaces the earlier one (HashMap::insert in `tokenizers`). */
static void pair_put(PairTable *p, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    *pair_slot(p, key) = (PairSlot){key, rank, merged};
}

/* The rule for (a, b): 0 with rank and merged filled, -1 when there is none. */
static int pair_get(const PairTable *p, int32_t a, int32_t b, uint32_t *rank, int32_t *merged) {
    const PairSlot *s = pair_slot(p, (uint64_t)(uint32_t)a << 32 | (uint32_t)b);
    if (s->key == UINT64_MAX) return -1;
    *rank = s->rank;
    *merged = s->merged;
    return 0;
}

/* ---------------------------------------------------------------- pre-tokenizer matchers */

/* A piece of valid UTF-8 text and the classes of its characters. */
typedef struct Scan {
    const Bpe *t;
    const unsigned char *s;
    size_t n;
} Scan;

/* The char at i (i < n): its code point, and the index after it. */
static size_t next_char(const Scan *sc, size_t i, uint32_t *c) {
    if (sc->s[i] < 0x80) return *c = sc->s[i], i + 1;
    int k = utf8_decode(sc->s + i, sc->n - i, c);
    if (!k) *c = 0xFFFD; /* never: the text was validated */
    return i + (size_t)(k ? k : 1);
}

static int flags_of(const Scan *sc, uint32_t c) {
    return c < 0x80 ? sc->t->ascii[c] : uprops(c);
}

/* Flags of the char at i, 0 at the end. */
static int flags_at(const Scan *sc, size_t i) {
    uint32_t c;
    if (i >= sc->n) return 0;
    next_char(sc, i, &c);
    return flags_of(sc, c);
}

enum { CLS_OTHER = 0x100 }; /* [^\s\p{L}\p{N}], beside the UPROP_ bits (of a uint8_t) */

static int in_class(int flags, int cls) {
    if (cls == CLS_OTHER) return !(flags & (UPROP_L | UPROP_N | UPROP_SPACE));
    return flags & cls;
}

/* End of the run of chars of class cls starting at i. */
static size_t run_end(const Scan *sc, size_t i, int cls) {
    while (i < sc->n) {
        uint32_t c;
        size_t j = next_char(sc, i, &c);
        if (!in_class(flags_of(sc, c), cls)) break;
        i = j;
    }
    return i;
}

/* 's|'t|'re|'ve|'m|'ll|'d at i: the end of the match, 0 when none. Case-insensitive as
 * (?i:...) in Oniguruma, where U+017F (long s) folds to s. */
static size_t contraction(const Scan *sc, size_t i, int icase) {
    const unsigned char *s = sc->s + i;
    size_t n = sc->n - i;
    if (n < 2 || s[0] != '\'') return 0;
    int a = icase && s[1] < 0x80 ? s[1] | 0x20 : s[1];
    int b = n < 3 ? 0 : icase && s[2] < 0x80 ? s[2] | 0x20 : s[2];
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
    if (icase && n >= 3 && s[1] == 0xC5 && s[2] == 0xBF) return i + 3;
    return 0;
}

/* \s+(?!\S)|\s+ at i (a whitespace char): the whole run when it ends the text or is one char,
 * else the run but its last char, which goes with the word after it. */
static size_t space_run(const Scan *sc, size_t i) {
    size_t end = run_end(sc, i, UPROP_SPACE), last = i, k = i;
    while (k < end) {
        uint32_t c;
        last = k;
        k = next_char(sc, k, &c);
    }
    return end == sc->n || last == i ? end : last;
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(const Scan *sc, size_t i) {
    size_t k = contraction(sc, i, 0);
    if (k) return k;
    size_t j = sc->s[i] == ' ' && i + 1 < sc->n && !(flags_at(sc, i + 1) & UPROP_SPACE) ? i + 1 : i;
    int f = flags_at(sc, j);
    if (f & UPROP_L) return run_end(sc, j, UPROP_L);
    if (f & UPROP_N) return run_end(sc, j, UPROP_N);
    if (in_class(f, CLS_OTHER)) return run_end(sc, j, CLS_OTHER);
    return space_run(sc, i);
}

/* \p{N}{1,digits} at i (a number char). */
static size_t number_run(const Scan *sc, size_t i, int digits) {
    uint32_t c;
    for (int r = 0; r < digits && i < sc->n && (flags_at(sc, i) & UPROP_N); r++)
        i = next_char(sc, i, &c);
    return i;
}

/* The alternatives after the words and numbers of Llama-3's and o200k's regexes, at i (neither
 * a letter nor a number): ` ?[^\s\p{L}\p{N}]+` then [\r\n]* (o200k: [\r\n/]*), \s*[\r\n]+,
 * \s+(?!\S), \s+. */
static size_t other_or_space(const Scan *sc, size_t i, int slash) {
    uint32_t c;
    size_t i1 = next_char(sc, i, &c);
    size_t j = c == ' ' && i1 < sc->n && in_class(flags_at(sc, i1), CLS_OTHER) ? i1 : i;
    if (in_class(flags_at(sc, j), CLS_OTHER)) {
        j = run_end(sc, j, CLS_OTHER);
        while (j < sc->n && (sc->s[j] == '\r' || sc->s[j] == '\n' || (slash && sc->s[j] == '/')))
            j++;
        return j;
    }
    size_t end = run_end(sc, i, UPROP_SPACE), nl = 0;
    for (size_t k = i; k < end; k = next_char(sc, k, &c))
        if (sc->s[k] == '\r' || sc->s[k] == '\n') nl = k + 1;
    return nl ? nl : space_run(sc, i);
}

/* [^\r\n\p{L}\p{N}], the optional first char of a word in Llama-3's and o200k's regexes. */
static int word_prefix(uint32_t c, int flags) {
    return !(flags & (UPROP_L | UPROP_N)) && c != '\r' && c != '\n';
}

/* Llama-3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 *          ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with \p{N}{1,digits}: Qwen2's regex is the same with \p{N}, one digit. */
static size_t match_llama3(const Scan *sc, size_t i, int digits) {
    size_t k = contraction(sc, i, 1);
    if (k) return k;
    uint32_t c;
    size_t i1 = next_char(sc, i, &c);
    int f = flags_of(sc, c);
    if (word_prefix(c, f) && (flags_at(sc, i1) & UPROP_L)) return run_end(sc, i1, UPROP_L);
    if (f & UPROP_L) return run_end(sc, i, UPROP_L);
    if (f & UPROP_N) return number_run(sc, i, digits);
    return other_or_space(sc, i, 0);
}

/* o200k's U*L+ at j, where U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and L = [\p{Ll}\p{Lm}\p{Lo}\p{M}]
 * overlap: its end, 0 when it fails. U* takes the run of U chars; if an L char follows, L+ takes
 * the run of L chars from there. Else Oniguruma backtracks U* to the run's last char that is also
 * L (Lm, Lo, a mark), which L+ takes alone (the U chars after it are Lu or Lt). */
static size_t upper_then_lower(const Scan *sc, size_t j) {
    size_t end = j, last_lower = 0;
    while (end < sc->n) {
        uint32_t c;
        size_t k = next_char(sc, end, &c);
        int f = flags_of(sc, c);
        if (!(f & UPROP_UPPER)) break;
        if (f & UPROP_LOWER) last_lower = k;
        end = k;
    }
    return flags_at(sc, end) & UPROP_LOWER ? run_end(sc, end, UPROP_LOWER) : last_lower;
}

/* o200k's U+L* at j: its end, 0 when it fails (L* may be empty, so U+ never backtracks). */
static size_t upper_run_then_lower(const Scan *sc, size_t j) {
    size_t end = run_end(sc, j, UPROP_UPPER);
    return end == j ? 0 : run_end(sc, end, UPROP_LOWER);
}

/* o200k (GPT-4o; Phi-4-mini): with P = [^\r\n\p{L}\p{N}] and U, L as above,
 *   P?U*L+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|P?U+L*(?i:...)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 * and with \p{N}{1,digits}, the contractions only when asked: Mistral's Tekken regex is the same
 * with \p{N} and no contractions. Each word alternative is tried with P taken, then without (a
 * mark is P, U and L at once), before the next; the contraction is optional and last, so it never
 * decides whether a word matches. */
static size_t match_o200k(const Scan *sc, size_t i, int digits, int contractions) {
    static size_t (*const word[2])(const Scan *, size_t) = {upper_then_lower, upper_run_then_lower};
    uint32_t c;
    size_t i1 = next_char(sc, i, &c);
    int f = flags_of(sc, c);
    for (int w = 0; w < 2; w++) {
        size_t end = word_prefix(c, f) ? word[w](sc, i1) : 0;
        if (!end) end = word[w](sc, i);
        if (end) {
            size_t k = contractions ? contraction(sc, end, 1) : 0;
            return k ? k : end;
        }
    }
    if (f & UPROP_N) return number_run(sc, i, digits);
    return other_or_space(sc, i, 1);
}

/* ---------------------------------------------------------------- BPE of one word */

typedef struct Sym {
    int32_t id, prev, next;
    int alive;
} Sym;

typedef struct Merge {
    uint32_t rank, pos;
    int32_t merged;
} Merge;

/* Per-call scratch: one Bpe serves many threads. */
typedef struct Enc {
    const Bpe *t;
    IdList *ids;
    LfError *err;
    Sym *sym;
    Merge *heap;
    size_t cap, n_heap;
    char *buf; /* a piece with its prefix space */
    size_t buf_cap;
    char *spell; /* a word in the byte alphabet, for ignore_merges */
    size_t spell_cap;
    Nfc nfc;    /* the normalized text of the piece being encoded */
    char *norm; /* the same, by the SentencePiece normalizer */
    size_t norm_cap;
    int at0; /* the piece being pre-tokenized starts the text (Metaspace's "first") */
} Enc;

/* e's buffer *p of *cap bytes, grown to at least n. */
static int grow(Enc *e, char **p, size_t *cap, size_t n) {
    if (n <= *cap) return 0;
    char *q = realloc(*p, n);
    if (!q) return lf_fail(e->err, "out of memory for a %zu-byte piece", n);
    *p = q;
    *cap = n;
    return 0;
}

static int merge_less(const Merge *a, const Merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(Enc *e, Merge m) {
    size_t i = e->n_heap++;
    while (i && merge_less(&m, &e->heap[(i - 1) / 2])) {
        e->heap[i] = e->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    e->heap[i] = m;
}

static Merge heap_pop(Enc *e) {
    Merge top = e->heap[0], last = e->heap[--e->n_heap];
    size_t i = 0, n = e->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_less(&e->heap[c + 1], &e->heap[c])) c++;
        if (!merge_less(&e->heap[c], &last)) break;
        e->heap[i] = e->heap[c];
        i = c;
    }
    if (n) e->heap[i] = last;
    return top;
}

static void push_pair(Enc *e, int32_t pos) {
    uint32_t rank;
    int32_t merged;
    const Sym *s = e->sym;
    if (!pair_get(&e->t->merges, s[pos].id, s[s[pos].next].id, &rank, &merged))
        heap_push(e, (Merge){rank, (uint32_t)pos, merged});
}

static int reserve(Enc *e, size_t n) {
    if (n <= e->cap) return 0;
    size_t cap = e->cap ? e->cap : 64;
    while (cap < n) cap *= 2;
    Sym *sym = realloc(e->sym, cap * sizeof *sym);
    if (sym) e->sym = sym;
    Merge *heap = realloc(e->heap, 3 * cap * sizeof *heap);
    if (heap) e->heap = heap;
    if (!sym || !heap) return lf_fail(e->err, "out of memory for a %zu-byte word", n);
    e->cap = cap;
    return 0;
}

/* The initial symbols: one per byte, a missing byte as [UNK] (fused when fuse_unk) or dropped. */
static int32_t initial_symbols(Enc *e, const unsigned char *s, size_t n) {
    const Bpe *t = e->t;
    int32_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = t->byte_id[s[i]];
        if (id < 0 && (id = t->unk) < 0) continue;
        if (id == t->unk && t->byte_id[s[i]] < 0 && t->fuse_unk && k && e->sym[k - 1].id == t->unk)
            continue;
        e->sym[k] = (Sym){id, k - 1, k + 1, 1};
        k++;
    }
    if (k) e->sym[k - 1].next = -1;
    return k;
}

/* SentencePiece-style BPE (BPE::merge_word of `tokenizers`): one symbol per char the vocabulary
 * has; another char becomes its <0xNN> tokens (byte_fallback, when all are there), else [UNK],
 * fused with a pending one when fuse_unk. As there, a pending [UNK] goes out only before the next
 * known char or at the end, so it may follow byte tokens that came after it. */
static int32_t initial_chars(Enc *e, const unsigned char *s, size_t n) {
    const Bpe *t = e->t;
    int32_t k = 0;
    int unk = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t j = i + (size_t)(s[i] < 0x80 ? 1 : utf8_decode(s + i, n - i, &c));
        int32_t id = vocab_get(t, s + i, j - i);
        size_t b = i;
        if (id < 0 && t->byte_fallback)
            while (b < j && t->byte_id[s[b]] >= 0) b++;
        if (id >= 0) {
            if (unk) e->sym[k] = (Sym){t->unk, k - 1, k + 1, 1}, k++;
            unk = 0;
            e->sym[k] = (Sym){id, k - 1, k + 1, 1}, k++;
        } else if (t->byte_fallback && b == j) {
            for (b = i; b < j; b++) e->sym[k] = (Sym){t->byte_id[s[b]], k - 1, k + 1, 1}, k++;
        } else if (t->unk >= 0) {
            if (unk && !t->fuse_unk) e->sym[k] = (Sym){t->unk, k - 1, k + 1, 1}, k++;
            unk = 1;
        }
        i = j;
    }
    if (unk) e->sym[k] = (Sym){t->unk, k - 1, k + 1, 1}, k++;
    if (k) e->sym[k - 1].next = -1;
    return k;
}

/* Word::merge_all of `tokenizers`: pop the lowest (rank, position); skip entries whose pair is
 * gone or now merges into another token; merge; queue the two new neighbouring pairs. */
static void merge_all(Enc *e, int32_t n) {
    Sym *s = e->sym;
    e->n_heap = 0;
    for (int32_t i = 0; i + 1 < n; i++) push_pair(e, i);
    while (e->n_heap) {
        Merge m = heap_pop(e);
        int32_t p = (int32_t)m.pos, q = s[p].next;
        uint32_t rank;
        int32_t merged;
        if (!s[p].alive || q < 0 || pair_get(&e->t->merges, s[p].id, s[q].id, &rank, &merged) ||
            merged != m.merged)
            continue;
        s[p].id = m.merged;
        s[p].next = s[q].next;
        s[q].alive = 0;
        if (s[q].next >= 0) s[s[q].next].prev = p;
        if (s[p].prev >= 0) push_pair(e, s[p].prev);
        if (s[p].next >= 0) push_pair(e, p);
    }
}

/* ignore_merges: the id of the whole word when the vocabulary has it, else -1. */
static int32_t whole_word(Enc *e, const unsigned char *s, size_t n) {
    if (2 * n > e->spell_cap) {
        char *p = realloc(e->spell, 2 * n);
        if (!p) return -1; /* the merges give the same ids, only slower */
        e->spell = p;
        e->spell_cap = 2 * n;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = e->t->byte_spell[s[i]];
        e->spell[k++] = c[0];
        if (c[1]) e->spell[k++] = c[1];
    }
    return vocab_get(e->t, e->spell, k);
}

static int bpe_word(Enc *e, const unsigned char *s, size_t n) {
    const Bpe *t = e->t;
    int32_t whole = !t->ignore_merges ? -1 : t->spm ? vocab_get(t, s, n) : whole_word(e, s, n);
    if (whole >= 0) return idlist_push(e->ids, whole, e->err);
    if (reserve(e, n)) return -1;
    int32_t k = t->spm ? initial_chars(e, s, n) : initial_symbols(e, s, n);
    if (k > 1) merge_all(e, k);
    for (int32_t i = 0; i < k; i++)
        if (e->sym[i].alive && idlist_push(e->ids, e->sym[i].id, e->err)) return -1;
    return 0;
}

/* ---------------------------------------------------------------- pre-tokenization */

static int pretok(Enc *e, int stage, const unsigned char *s, size_t n);

/* Isolated split by the regex of the ST_SPLIT_* step re (its digits per number and contractions
 * as it says): every match is a piece (the regexes match everywhere). */
static int split_regex(Enc *e, int stage, const unsigned char *s, size_t n, const Stage *re) {
    Scan sc = {e->t, s, n};
    for (size_t i = 0; i < n;) {
        size_t j = re->kind == ST_SPLIT_LLAMA3  ? match_llama3(&sc, i, re->flag)
                   : re->kind == ST_SPLIT_O200K ? match_o200k(&sc, i, re->flag, re->regex)
                                                : match_gpt2(&sc, i);
        if (pretok(e, stage + 1, s + i, j - i)) return -1;
        i = j;
    }
    return 0;
}

/* Digits: numeric chars apart from the rest, each alone (individual) or in runs. */
static int split_digits(Enc *e, int stage, const unsigned char *s, size_t n, int individual) {
    Scan sc = {e->t, s, n};
    size_t start = 0;
    while (start < n) {
        int numeric = flags_at(&sc, start) & UPROP_NUMERIC;
        size_t end = start;
        do {
            uint32_t c;
            end = next_char(&sc, end, &c);
        } while (end < n && !(numeric && individual) &&
                 !(flags_at(&sc, end) & UPROP_NUMERIC) == !numeric);
        if (pretok(e, stage + 1, s + start, end - start)) return -1;
        start = end;
    }
    return 0;
}

/* Split(" ", MergedWithPrevious): a piece ends after each space. Gemma's normalizer has made
 * every space a "▁" before it runs, so in its files this cuts nothing. */
static int split_spaces(Enc *e, int stage, const unsigned char *s, size_t n) {
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ') {
            if (pretok(e, stage + 1, s + start, i + 1 - start)) return -1;
            start = i + 1;
        }
    return pretok(e, stage + 1, s + start, n - start);
}

static int byte_level(Enc *e, int stage, const unsigned char *s, size_t n, const Stage *st) {
    if (st->flag && s[0] != ' ') { /* add_prefix_space */
        if (n + 1 > e->buf_cap) {
            char *p = realloc(e->buf, n + 1);
            if (!p) return lf_fail(e->err, "out of memory for a %zu-byte piece", n);
            e->buf = p;
            e->buf_cap = n + 1;
        }
        e->buf[0] = ' ';
        memcpy(e->buf + 1, s, n);
        s = (const unsigned char *)e->buf;
        n++;
    }
    static const Stage gpt2 = {ST_SPLIT_GPT2, 0, 0};
    return st->regex ? split_regex(e, stage, s, n, &gpt2) : pretok(e, stage + 1, s, n);
}

/* Metaspace: " " -> "▁", a "▁" in front (by prepend_scheme, unless one is there), then with split
 * a piece at each "▁" (MergedWithNext). */
static int metaspace(Enc *e, int stage, const unsigned char *s, size_t n, const Stage *st) {
    int mark = n && (s[0] == ' ' || (n >= 3 && !memcmp(s, SPACE_MARK, 3)));
    int add = !mark && (st->flag == PREPEND_ALWAYS || (st->flag == PREPEND_FIRST && e->at0));
    if (grow(e, &e->buf, &e->buf_cap, 3 * n + 3)) return -1;
    size_t k = 0;
    if (add) memcpy(e->buf, SPACE_MARK, 3), k = 3;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ')
            memcpy(e->buf + k, SPACE_MARK, 3), k += 3;
        else
            e->buf[k++] = (char)s[i];
    const unsigned char *b = (const unsigned char *)e->buf;
    if (!st->regex) return pretok(e, stage + 1, b, k);
    size_t start = 0;
    for (size_t i = 1; i + 3 <= k; i++)
        if (!memcmp(b + i, SPACE_MARK, 3)) {
            if (pretok(e, stage + 1, b + start, i - start)) return -1;
            start = i;
        }
    return pretok(e, stage + 1, b + start, k - start);
}

static int pretok(Enc *e, int stage, const unsigned char *s, size_t n) {
    if (!n) return 0; /* `tokenizers` drops empty splits */
    if (stage == e->t->n_stages) return bpe_word(e, s, n);
    const Stage *st = &e->t->stages[stage];
    switch (st->kind) {
    case ST_DIGITS:
        return split_digits(e, stage, s, n, st->flag);
    case ST_SPLIT_GPT2:
    case ST_SPLIT_LLAMA3:
    case ST_SPLIT_O200K:
        return split_regex(e, stage, s, n, st);
    case ST_SPLIT_SPACE:
        return split_spaces(e, stage, s, n);
    case ST_BYTELEVEL:
        return byte_level(e, stage, s, n, st);
    case ST_METASPACE:
        return metaspace(e, stage, s, n, st);
    }
    return 0;
}

/* ---------------------------------------------------------------- added tokens */

/* Added token of the given normalized set that matches longest at s[i..n), or NULL. */
static const AddedToken *match_added(const Bpe *t, const unsigned char *s, size_t n, size_t i,
                                     int normalized) {
    const AddedToken *best = NULL;
    if (!t->added_first[normalized][s[i]]) return NULL; /* never a UTF-8 continuation byte */
    for (int k = 0; k < t->n_added; k++) {
        const AddedToken *a = &t->added[k];
        if (a->normalized == normalized && a->pat_len <= n - i &&
            (!best || a->pat_len > best->pat_len) && !memcmp(s + i, t->text.p + a->pat, a->pat_len))
            best = a;
    }
    return best;
}

/* Start of the whitespace that ends s[0..start) (the regex \s*$ of lstrip). */
static size_t space_before(const Bpe *t, const unsigned char *s, size_t start) {
    Scan sc = {t, s, start};
    size_t i = start;
    while (i > 0) {
        size_t p = i - 1;
        while (p > 0 && (s[p] & 0xC0) == 0x80) p--;
        if (!(flags_at(&sc, p) & UPROP_SPACE)) break;
        i = p;
    }
    return i;
}

static int split_added(Enc *e, const unsigned char *s, size_t n, int normalized, int at0);

/* SentencePiece's normalizers into out (room for 3 n + 3 bytes): Prepend("▁") on a non-empty
 * piece, Replace(" ", "▁"). Returns the length. */
static size_t spm_normalize(const Bpe *t, const char *s, size_t n, char *out) {
    size_t k = 0;
    if (t->prepend && n) memcpy(out, SPACE_MARK, 3), k = 3;
    for (size_t i = 0; i < n; i++)
        if (s[i] == ' ' && t->escape)
            memcpy(out + k, SPACE_MARK, 3), k += 3;
        else
            out[k++] = s[i];
    return k;
}

/* Text between added tokens goes on (AddedVocabulary::extract_and_normalize): raw text through
 * the normalizer to the tokens with normalized=true, normalized text to the pre-tokenizer. at0:
 * the piece starts the text. */
static int next_step(Enc *e, const unsigned char *s, size_t n, int normalized, int at0) {
    if (normalized) {
        e->at0 = at0;
        return pretok(e, 0, s, n);
    }
    if (e->t->nfc) {
        const char *p;
        if (nfc_normalize(&e->nfc, (const char *)s, n, &p, &n, e->err)) return -1;
        s = (const unsigned char *)p;
    } else if (e->t->prepend || e->t->escape) {
        if (grow(e, &e->norm, &e->norm_cap, 3 * n + 3)) return -1;
        n = spm_normalize(e->t, (const char *)s, n, e->norm);
        s = (const unsigned char *)e->norm;
    }
    return split_added(e, s, n, 1, at0);
}

/* Splits s[0..n) on the added tokens of one set (AddedVocabulary::find_matches): those with
 * normalized=false on the raw text, then the others on each normalized piece between them. */
static int split_added(Enc *e, const unsigned char *s, size_t n, int normalized, int at0) {
    const Bpe *t = e->t;
    size_t done = 0; /* start_offset: the end of the last token, with its stripped spaces */
    for (size_t i = 0; i < n;) {
        const AddedToken *a = match_added(t, s, n, i, normalized);
        if (!a) {
            i++;
            continue;
        }
        size_t start = i, stop = i + a->pat_len;
        if (a->lstrip) start = space_before(t, s, start) > done ? space_before(t, s, start) : done;
        if (a->rstrip) stop = run_end(&(Scan){t, s, n}, stop, UPROP_SPACE);
        if (done < start && next_step(e, s + done, start - done, normalized, at0 && !done))
            return -1;
        if (idlist_push(e->ids, a->id, e->err)) return -1;
        done = stop;
        i += a->pat_len;
    }
    return done < n ? next_step(e, s + done, n - done, normalized, at0 && !done) : 0;
}

int bpe_encode(const Bpe *t, const char *text, size_t len, int add_special, IdList *ids,
               LfError *err) {
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        int k = s[i] < 0x80 ? 1 : utf8_decode(s + i, len - i, &c);
        if (!k) return lf_fail(err, "invalid UTF-8 at byte offset %zu", i);
        i += (size_t)k;
    }
    Enc e = {.t = t, .ids = ids, .err = err};
    size_t n0 = ids->n;
    int rc = 0;
    for (int i = 0; add_special && !rc && i < t->n_prefix; i++)
        rc = idlist_push(ids, t->prefix[i], err);
    if (!rc) rc = split_added(&e, s, len, 0, 1);
    for (int i = 0; add_special && !rc && i < t->n_suffix; i++)
        rc = idlist_push(ids, t->suffix[i], err);
    free(e.sym);
    free(e.heap);
    free(e.buf);
    free(e.spell);
    free(e.norm);
    nfc_free(&e.nfc);
    if (rc) ids->n = n0;
    return rc;
}

/* ---------------------------------------------------------------- decoding */

/* The SentencePiece decoders of `tokenizers`: Sequence[Replace("▁", " "), ByteFallback, Fuse,
 * Strip(" ", 1, 0)] (a run of byte tokens becomes its bytes when they are valid UTF-8, else one
 * U+FFFD per byte; the fused text loses dec_strip leading spaces), or Metaspace (each "▁" a space
 * but in the first token, which loses them all). Token texts are valid UTF-8 already. */
static int spm_decode(const Bpe *t, const int32_t *ids, size_t n, int skip_special, char **text,
                      size_t *len, LfError *err) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_ids && t->raw_off[ids[i]] != UINT32_MAX)
            total += t->raw_len[ids[i]];
    char *out = malloc(3 * total + 1);
    if (!out) return lf_fail(err, "out of memory decoding %zu ids", n);
    size_t m = 0, run = 0; /* run: bytes of byte tokens at out + m - run */
    int first = 1;
    for (size_t i = 0; i <= n; i++) {
        int32_t id = i < n ? ids[i] : -1;
        if (i < n && (id < 0 || id >= t->n_ids || t->raw_off[id] == UINT32_MAX ||
                      (skip_special && t->special[id])))
            continue;
        if (i < n && t->byte_tok[id]) {
            out[m++] = t->raw.p[t->raw_off[id]];
            run++;
            first = 0;
            continue;
        }
        if (run) { /* the run ends: valid, or one U+FFFD per byte */
            const unsigned char *r = (const unsigned char *)out + m - run;
            size_t ok = 0;
            while (ok < run) {
                int c = utf8_check(r + ok, run - ok);
                if (c < 0) break;
                ok += (size_t)c;
            }
            if (ok < run) {
                m -= run;
                for (size_t k = 0; k < run; k++) memcpy(out + m, "\xEF\xBF\xBD", 3), m += 3;
            }
            run = 0;
        }
        if (i == n) break;
        const char *raw = t->raw.p + t->raw_off[id];
        size_t rl = t->raw_len[id];
        if (first && t->dec_metaspace > PREPEND_NEVER + 1) { /* the first token drops its "▁" */
            const char *name = t->text.p + t->name_off[id];
            for (size_t k = 0; k < t->name_len[id]; k++)
                if (k + 3 <= t->name_len[id] && !memcmp(name + k, SPACE_MARK, 3))
                    k += 2;
                else
                    out[m++] = name[k];
        } else {
            memcpy(out + m, raw, rl);
            m += rl;
        }
        first = 0;
    }
    size_t cut = 0;
    while ((int)cut < t->dec_strip && cut < m && out[cut] == ' ') cut++;
    memmove(out, out + cut, m - cut);
    m -= cut;
    out[m] = 0;
    *text = out;
    *len = m;
    return 0;
}

int bpe_decode(const Bpe *t, const int32_t *ids, size_t n, int skip_special, char **text,
               size_t *len, LfError *err) {
    if (t->spm) return spm_decode(t, ids, n, skip_special, text, len, err);
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->n_ids && t->raw_off[ids[i]] != UINT32_MAX)
            total += t->raw_len[ids[i]];
    unsigned char *bytes = malloc(total + 1);
    char *out = malloc(3 * total + 1); /* U+FFFD is 3 bytes: at most 3 per input byte */
    if (!bytes || !out) {
        free(bytes);
        free(out);
        return lf_fail(err, "out of memory decoding %zu ids", n);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->n_ids || t->raw_off[id] == UINT32_MAX) continue;
        if (skip_special && t->special[id]) continue;
        memcpy(bytes + k, t->raw.p + t->raw_off[id], t->raw_len[id]);
        k += t->raw_len[id];
    }
    *len = utf8_lossy(bytes, k, out);
    free(bytes);
    *text = out;
    return 0;
}

const char *bpe_token_bytes(const Bpe *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || t->raw_off[id] == UINT32_MAX) return NULL;
    *len = t->raw_len[id];
    return t->raw.p + t->raw_off[id];
}

int bpe_vocab_size(const Bpe *t) {
    return t->n_ids;
}

const char *bpe_token(const Bpe *t, int32_t id) {
    if (id < 0 || id >= t->n_ids || t->name_off[id] == UINT32_MAX) return NULL;
    return t->text.p + t->name_off[id];
}

int32_t bpe_lookup(const Bpe *t, const char *token) {
    size_t n = strlen(token);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == n && !memcmp(t->text.p + t->added[i].off, token, n))
            return t->added[i].id;
    return vocab_get(t, token, n);
}

int bpe_is_special(const Bpe *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->special[id];
}

int32_t bpe_bos(const Bpe *t) {
    return t->bos;
}

int bpe_nfc(const Bpe *t) {
    return t->nfc;
}

int32_t bpe_eos(const Bpe *t) {
    return t->eos;
}

void bpe_free(Bpe *t) {
    if (!t) return;
    free(t->text.p);
    free(t->raw.p);
    free(t->off);
    free(t->len);
    free(t->name_off);
    free(t->name_len);
    free(t->raw_off);
    free(t->raw_len);
    free(t->special);
    free(t->byte_tok);
    free(t->vocab.hash);
    free(t->vocab.id);
    free(t->merges.slot);
    free(t->added);
    free(t);
}

/* ---------------------------------------------------------------- the core builder */

static Bpe *bpe_new(LfError *err) {
    Bpe *t = calloc(1, sizeof *t);
    if (!t) {
        lf_fail(err, "out of memory");
        return NULL;
    }
    t->unk = t->bos = t->eos = -1;
    for (int c = 0; c < 128; c++) t->ascii[c] = (uint8_t)uprops((uint32_t)c);
    for (int b = 0; b < 256; b++) {
        char u[4];
        int k = utf8_encode(byte_char(b), u);
        memcpy(t->byte_spell[b], u, (size_t)k);
    }
    return t;
}

/* Room for ids 0..n_ids-1 and a table of n_model model tokens. */
static int begin_vocab(Bpe *t, int32_t n_ids, size_t n_model, LfError *err) {
    size_t n = (size_t)n_ids;
    t->n_ids = n_ids;
    t->off = malloc(n * sizeof *t->off);
    t->len = calloc(n, sizeof *t->len);
    t->name_off = malloc(n * sizeof *t->name_off);
    t->name_len = calloc(n, sizeof *t->name_len);
    t->raw_off = malloc(n * sizeof *t->raw_off);
    t->raw_len = calloc(n, sizeof *t->raw_len);
    t->special = calloc(n, 1);
    t->byte_tok = calloc(n, 1);
    if (!t->off || !t->name_off || !t->raw_off || !t->len || !t->name_len || !t->raw_len ||
        !t->special || !t->byte_tok)
        return lf_fail(err, "out of memory for %d tokens", n_ids);
    memset(t->off, 0xFF, n * sizeof *t->off);
    memset(t->name_off, 0xFF, n * sizeof *t->name_off);
    memset(t->raw_off, 0xFF, n * sizeof *t->raw_off);
    return strtab_init(&t->vocab, n_model, err);
}

static int model_token(Bpe *t, int32_t id, const char *s, size_t n, const char *name,
                       LfError *err) {
    if (t->off[id] != UINT32_MAX) return lf_fail(err, "%s: token id %d appears twice", name, id);
    if (arena_add(&t->text, s, n, &t->off[id], err)) return -1;
    t->len[id] = (uint32_t)n;
    t->name_off[id] = t->off[id];
    t->name_len[id] = (uint32_t)n;
    strtab_put(&t->vocab, t->text.p, t->off, t->len, id);
    return 0;
}

/* Rule `rank`: a + b -> the token spelled a b; every part must be in the vocabulary. */
static int add_merge(Bpe *t, uint32_t rank, const char *a, size_t na, const char *b, size_t nb,
                     const char *name, LfError *err) {
    char stack[256], *ab = na + nb <= sizeof stack ? stack : malloc(na + nb);
    if (!ab) return lf_fail(err, "out of memory");
    memcpy(ab, a, na);
    memcpy(ab + na, b, nb);
    int32_t ia = vocab_get(t, a, na), ib = vocab_get(t, b, nb), iab = vocab_get(t, ab, na + nb);
    const char *bad = ia < 0 ? a : ib < 0 ? b : ab;
    int nbad = (int)(ia < 0 ? na : ib < 0 ? nb : na + nb);
    int rc = 0;
    if (ia < 0 || ib < 0 || iab < 0)
        rc = lf_fail(err, "%s: merge %u (\"%.*s %.*s\"): \"%.*s\" is not in the vocabulary", name,
                     rank + 1, (int)na, a, (int)nb, b, nbad, bad);
    else
        pair_put(&t->merges, ia, ib, rank, iab);
    if (ab != stack) free(ab);
    return rc;
}

static int valid_utf8(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        int c = utf8_check((const unsigned char *)s + i, n - i);
        if (c < 0) return 0;
        i += (size_t)c;
    }
    return 1;
}

static int add_added(Bpe *t, const char *s, size_t n, int32_t id, const uint8_t flags[4],
                     const char *name, LfError *err) {
    if (!n || !valid_utf8(s, n) || id < 0 || id >= t->n_ids)
        return lf_fail(err, "%s: added token \"%.*s\" (id %d) is empty, not UTF-8 or out of range",
                       name, (int)n, s, id);
    AddedToken *p = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *p);
    if (!p) return lf_fail(err, "out of memory");
    t->added = p;
    AddedToken *a = &t->added[t->n_added++];
    *a = (AddedToken){.len = (uint32_t)n,
                      .id = id,
                      .special = flags[0],
                      .normalized = flags[1],
                      .lstrip = flags[2],
                      .rstrip = flags[3]};
    if (arena_add(&t->text, s, n, &a->off, err)) return -1;
    a->pat = a->off;
    a->pat_len = (uint32_t)n;
    if (a->normalized && (t->prepend || t->escape)) { /* likewise, SentencePiece's normalizer */
        char stack[256], *p = 3 * n + 3 <= sizeof stack ? stack : malloc(3 * n + 3);
        if (!p) return lf_fail(err, "out of memory");
        size_t m = spm_normalize(t, s, n, p);
        int rc = arena_add(&t->text, p, m, &a->pat, err);
        a->pat_len = (uint32_t)m;
        if (p != stack) free(p);
        if (rc) return -1;
    }
    if (a->normalized && t->nfc) { /* found in normalized text: spelled as the normalizer does */
        Nfc z = {0};
        const char *p;
        size_t m;
        int rc = nfc_normalize(&z, s, n, &p, &m, err);
        if (!rc && p != s) {
            rc = arena_add(&t->text, p, m, &a->pat, err);
            a->pat_len = (uint32_t)m;
        }
        nfc_free(&z);
        if (rc) return -1;
    }
    /* id_to_token and the decoder see that spelling too; token_to_id the content */
    t->name_off[id] = a->pat;
    t->name_len[id] = a->pat_len;
    t->added_first[a->normalized][(unsigned char)t->text.p[a->pat]] = 1;
    return 0;
}

/* The bytes of a token spelled s[0..n): its chars through the byte alphabet, or its own UTF-8
 * when any char is outside it (the ByteLevel decoder). */
static int raw_form(Bpe *t, int32_t id, LfError *err) {
    const unsigned char *s = (const unsigned char *)t->text.p + t->name_off[id];
    size_t n = t->name_len[id], k = 0;
    unsigned char stack[256], *out = n <= sizeof stack ? stack : malloc(n);
    if (!out) return lf_fail(err, "out of memory");
    for (size_t i = 0; i < n && k != SIZE_MAX;) {
        uint32_t c = s[i];
        int len = c < 0x80 ? 1 : utf8_decode(s + i, n - i, &c);
        int b = len ? char_byte(c) : -1;
        if (b < 0)
            k = SIZE_MAX;
        else
            out[k++] = (unsigned char)b, i += (size_t)len;
    }
    int rc = k == SIZE_MAX ? arena_add(&t->raw, s, n, &t->raw_off[id], err)
                           : arena_add(&t->raw, out, k, &t->raw_off[id], err);
    t->raw_len[id] = (uint32_t)(k == SIZE_MAX ? n : k);
    if (out != stack) free(out);
    return rc;
}

/* The byte a token spelled <0xNN> stands for (the ByteFallback decoder: two hex digits as Rust's
 * u8::from_str_radix reads them, which takes a sign too), -1 for another token. */
static int fallback_byte(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = s[3] == '+' ? 4 : 3; i < 5; i++) {
        int c = s[i], d = c >= '0' && c <= '9'   ? c - '0'
                          : c >= 'a' && c <= 'f' ? c - 'a' + 10
                          : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                 : -1;
        if (d < 0) return -1;
        v = 16 * v + d;
    }
    return v;
}

/* A SentencePiece token's bytes: its one byte for <0xNN> under ByteFallback, else its text with
 * each "▁" a space (the Replace decoder). */
static int spm_raw_form(Bpe *t, int32_t id, LfError *err) {
    const char *s = t->text.p + t->name_off[id];
    size_t n = t->name_len[id], k = 0;
    int b = t->dec_bytes ? fallback_byte(s, n) : -1;
    char stack[256], *out = n <= sizeof stack ? stack : malloc(n);
    if (!out) return lf_fail(err, "out of memory");
    if (b >= 0) {
        out[k++] = (char)b;
        t->byte_tok[id] = 1;
    }
    for (size_t i = 0; b < 0 && i < n; i++)
        if (i + 3 <= n && !memcmp(s + i, SPACE_MARK, 3))
            out[k++] = ' ', i += 2;
        else
            out[k++] = s[i];
    int rc = arena_add(&t->raw, out, k, &t->raw_off[id], err);
    t->raw_len[id] = (uint32_t)k;
    if (out != stack) free(out);
    return rc;
}

/* After the vocabulary, merges and added tokens: byte ids, decoded forms, special flags. */
static int finish(Bpe *t, const char *name, LfError *err) {
    int bytelevel = 0, meta = 0, spaces = 0;
    for (int i = 0; i < t->n_stages; i++) {
        bytelevel |= t->stages[i].kind == ST_BYTELEVEL;
        meta |= t->stages[i].kind == ST_METASPACE;
        spaces |= t->stages[i].kind == ST_SPLIT_SPACE;
    }
    if (t->spm && (bytelevel || t->n_stages > meta + spaces))
        return lf_fail(err,
                       "%s: a SentencePiece-style BPE takes no pre-tokenizer but Metaspace and "
                       "Split(\" \", MergedWithPrevious)",
                       name);
    if (!t->spm && !bytelevel)
        return lf_fail(err, "%s: no ByteLevel pre-tokenizer: not a byte-level BPE", name);
    if (!t->spm && (meta || t->prepend || t->escape || t->byte_fallback))
        return lf_fail(err,
                       "%s: Metaspace, Prepend, Replace and byte_fallback need a SentencePiece "
                       "decoder, not ByteLevel",
                       name);
    for (int b = 0; b < 256; b++) {
        char hex[8];
        const char *c = t->byte_spell[b];
        snprintf(hex, sizeof hex, "<0x%02X>", b);
        t->byte_id[b] = t->spm ? vocab_get(t, hex, 6) : vocab_get(t, c, c[1] ? 2 : 1);
    }
    for (int32_t id = 0; id < t->n_ids; id++)
        if (t->name_off[id] != UINT32_MAX &&
            (t->spm ? spm_raw_form(t, id, err) : raw_form(t, id, err)))
            return -1;
    for (int i = 0; i < t->n_added; i++) {
        const AddedToken *a = &t->added[i];
        if (!a->special) continue;
        t->special[a->id] = 1;
        int32_t same = vocab_get(t, t->text.p + a->off, a->len); /* is_special_token is by name */
        if (same >= 0 && t->name_len[same] == a->len &&
            !memcmp(t->text.p + t->name_off[same], t->text.p + a->off, a->len))
            t->special[same] = 1;
    }
    return 0;
}

/* bos/eos default, when the vocabulary has one: GPT-2's <|endoftext|>; SentencePiece: Gemma's
 * <bos> and <eos>, else <s> and </s> (Gemma's vocabulary may have those as HTML tags). */
static void default_bos_eos(Bpe *t) {
    const char *bos[2] = {"<bos>", "<s>"}, *eos[2] = {"<eos>", "</s>"};
    if (!t->spm) bos[0] = bos[1] = eos[0] = eos[1] = "<|endoftext|>";
    for (int i = 0; i < 2; i++) {
        if (t->bos < 0) t->bos = bpe_lookup(t, bos[i]);
        if (t->eos < 0) t->eos = bpe_lookup(t, eos[i]);
    }
}

/* ---------------------------------------------------------------- tokenizer.json */

static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char LLAMA3_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char QWEN2_REGEX[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* GPT-4o's (tiktoken's o200k_base), as Phi-4-mini's tokenizer.json and transformers'
 * TikTokenConverter spell it; llama.cpp's "gpt-4o" pre-tokenizer quotes the same string. */
static const char O200K_REGEX[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}"
    "\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}"
    "\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* Mistral's Tekken (Mistral-Nemo, Mistral-Small-24B 2501 / 3.1): o200k's without the contraction
 * suffixes and with one digit per number, as their tokenizer.json (transformers' MistralConverter
 * copies tekken.json's pattern) and llama.cpp's "tekken" pre-tokenizer quote it. */
static const char TEKKEN_REGEX[] =
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}"
    "\\p{M}]+|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}"
    "\\p{Lo}\\p{M}]*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/* The Split regexes there is a matcher for, and its step. */
static const struct {
    const char *regex;
    Stage stage;
} SPLITS[] = {
    {GPT2_REGEX, {ST_SPLIT_GPT2, 0, 0}},
    {LLAMA3_REGEX, {ST_SPLIT_LLAMA3, 3, 0}}, /* \p{N}{1,3} */
    {QWEN2_REGEX, {ST_SPLIT_LLAMA3, 1, 0}},  /* \p{N} */
    {O200K_REGEX, {ST_SPLIT_O200K, 3, 1}},   /* \p{N}{1,3}, contractions */
    {TEKKEN_REGEX, {ST_SPLIT_O200K, 1, 0}},  /* \p{N}, none */
};

static const char *type_of(const cJSON *obj) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(type) ? type->valuestring : NULL;
}

/* A boolean member; def when absent or null; -1 with err for another type. */
static int json_flag(const cJSON *obj, const char *key, int def, const char *name, LfError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsBool(v)) return lf_fail(err, "%s: \"%s\" must be true or false", name, key);
    return cJSON_IsTrue(v);
}

static const char *json_string(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int add_stage(Bpe *t, Stage st, const char *name, LfError *err) {
    if (t->n_stages == MAX_STAGES) return lf_fail(err, "%s: too many pre-tokenizers", name);
    if (t->n_stages && t->stages[t->n_stages - 1].kind == ST_BYTELEVEL)
        return lf_fail(err, "%s: a pre-tokenizer after ByteLevel is not supported", name);
    t->stages[t->n_stages++] = st;
    return 0;
}

/* Split: Isolated on a regex there is a matcher for, or Gemma's String " " MergedWithPrevious. */
static int parse_split(Bpe *t, const cJSON *pre, const char *name, LfError *err) {
    const cJSON *pattern = cJSON_GetObjectItemCaseSensitive(pre, "pattern");
    const char *regex = json_string(pattern, "Regex"), *literal = json_string(pattern, "String");
    const char *behavior = json_string(pre, "behavior");
    int invert = json_flag(pre, "invert", 0, name, err);
    if (invert < 0) return -1;
    if (!invert && literal && !strcmp(literal, " ") && behavior &&
        !strcmp(behavior, "MergedWithPrevious"))
        return add_stage(t, (Stage){ST_SPLIT_SPACE, 0, 0}, name, err);
    if (invert || !behavior || strcmp(behavior, "Isolated"))
        return lf_fail(err,
                       "%s: Split pre-tokenizer: only behavior Isolated, not inverted (or "
                       "String \" \" MergedWithPrevious)",
                       name);
    for (size_t i = 0; regex && i < sizeof SPLITS / sizeof *SPLITS; i++)
        if (!strcmp(regex, SPLITS[i].regex)) return add_stage(t, SPLITS[i].stage, name, err);
    return lf_fail(err,
                   "%s: Split pre-tokenizer with an unsupported pattern %.200s (known: GPT-2's, "
                   "Llama-3's, Qwen2's, GPT-4o's and Tekken's regexes)",
                   name, regex ? regex : "(not a Regex)");
}

/* Metaspace's prepend_scheme ("always", "first", "never"; older files: add_prefix_space), of the
 * pre-tokenizer or the decoder: PREPEND_*, -1 with err. */
static int prepend_scheme(const cJSON *obj, const char *name, LfError *err) {
    const char *rep = json_string(obj, "replacement"), *scheme = json_string(obj, "prepend_scheme");
    if (rep && strcmp(rep, SPACE_MARK))
        return lf_fail(err, "%s: Metaspace replacement \"%s\" is not supported (only \"%s\")", name,
                       rep, SPACE_MARK);
    if (!scheme) {
        int add = json_flag(obj, "add_prefix_space", 1, name, err);
        return add < 0 ? -1 : add ? PREPEND_ALWAYS : PREPEND_NEVER;
    }
    if (!strcmp(scheme, "always")) return PREPEND_ALWAYS;
    if (!strcmp(scheme, "first")) return PREPEND_FIRST;
    if (!strcmp(scheme, "never")) return PREPEND_NEVER;
    return lf_fail(err, "%s: Metaspace prepend_scheme \"%s\" is unknown", name, scheme);
}

static int parse_metaspace(Bpe *t, const cJSON *pre, const char *name, LfError *err) {
    int scheme = prepend_scheme(pre, name, err);
    int split = scheme < 0 ? -1 : json_flag(pre, "split", 1, name, err);
    return split < 0 ? -1 : add_stage(t, (Stage){ST_METASPACE, scheme, split}, name, err);
}

static int parse_pre(Bpe *t, const cJSON *pre, int depth, const char *name, LfError *err) {
    const char *type = type_of(pre);
    if (!type) return lf_fail(err, "%s: pre_tokenizer without a type", name);
    if (!strcmp(type, "Sequence") && depth == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers"), *p;
        if (!cJSON_IsArray(list)) return lf_fail(err, "%s: Sequence without pretokenizers", name);
        cJSON_ArrayForEach(p, list) if (parse_pre(t, p, 1, name, err)) return -1;
        return 0;
    }
    if (!strcmp(type, "Split")) return parse_split(t, pre, name, err);
    if (!strcmp(type, "Digits")) {
        int individual = json_flag(pre, "individual_digits", 0, name, err);
        return individual < 0 ? -1 : add_stage(t, (Stage){ST_DIGITS, individual, 0}, name, err);
    }
    if (!strcmp(type, "ByteLevel")) {
        int prefix = json_flag(pre, "add_prefix_space", 1, name, err);
        int regex = prefix < 0 ? -1 : json_flag(pre, "use_regex", 1, name, err);
        return regex < 0 ? -1 : add_stage(t, (Stage){ST_BYTELEVEL, prefix, regex}, name, err);
    }
    if (!strcmp(type, "Metaspace")) return parse_metaspace(t, pre, name, err);
    return lf_fail(err,
                   "%s: pre-tokenizer %s is not supported (ByteLevel, Split, Digits, Metaspace, "
                   "Sequence)",
                   name, type);
}

/* TemplateProcessing's "single": special tokens before and after $A. */
static int parse_template(Bpe *t, const cJSON *post, const char *name, LfError *err) {
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single"), *item;
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    int after = 0;
    cJSON_ArrayForEach(item, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (!sp) {
            after = 1;
            continue;
        }
        const char *id = json_string(sp, "id");
        const cJSON *entry = id ? cJSON_GetObjectItemCaseSensitive(specials, id) : NULL;
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids"), *v;
        if (!cJSON_IsArray(ids))
            return lf_fail(err, "%s: TemplateProcessing names special token %s without ids", name,
                           id ? id : "(none)");
        cJSON_ArrayForEach(v, ids) {
            int *n = after ? &t->n_suffix : &t->n_prefix;
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= t->n_ids ||
                *n == MAX_TEMPLATE)
                return lf_fail(err, "%s: TemplateProcessing: bad id for %s", name, id);
            (after ? t->suffix : t->prefix)[(*n)++] = (int32_t)v->valuedouble;
        }
    }
    return 0;
}

static int parse_post(Bpe *t, const cJSON *post, int depth, const char *name, LfError *err) {
    if (!post || cJSON_IsNull(post)) return 0;
    const char *type = type_of(post);
    if (type && !strcmp(type, "ByteLevel")) return 0; /* trims offsets only */
    if (type && !strcmp(type, "TemplateProcessing")) return parse_template(t, post, name, err);
    if (type && !strcmp(type, "Sequence") && depth == 0) {
        const cJSON *p;
        cJSON_ArrayForEach(
            p, cJSON_GetObjectItemCaseSensitive(post, "processors")) if (parse_post(t, p, 1, name,
                                                                                    err)) return -1;
        return 0;
    }
    return lf_fail(err, "%s: post_processor %s is not supported", name, type ? type : "(untyped)");
}

static int parse_added(Bpe *t, const cJSON *added, const char *name, LfError *err) {
    const cJSON *a;
    cJSON_ArrayForEach(a, added) {
        const char *s = json_string(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!s || !cJSON_IsNumber(id))
            return lf_fail(err, "%s: added token without content/id", name);
        static const char *keys[4] = {"special", "normalized", "lstrip", "rstrip"};
        uint8_t flags[4];
        for (int k = 0; k < 4; k++) {
            int f = json_flag(a, keys[k], k == 1, name, err); /* AddedToken::default() */
            if (f < 0) return -1;
            flags[k] = (uint8_t)f;
        }
        int single = json_flag(a, "single_word", 0, name, err);
        if (single)
            return single < 0 ? -1
                              : lf_fail(err,
                                        "%s: added token \"%s\": single_word is "
                                        "not supported",
                                        name, s);
        if (add_added(t, s, strlen(s), (int32_t)id->valuedouble, flags, name, err)) return -1;
    }
    return 0;
}

/* The largest id of the model vocabulary and of the added tokens, checked. */
static int max_id(const cJSON *vocab, const cJSON *added, const char *name, int32_t *out,
                  LfError *err) {
    const cJSON *v;
    *out = -1;
    cJSON_ArrayForEach(v, vocab) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= INT32_MAX ||
            v->valuedouble != (int32_t)v->valuedouble)
            return lf_fail(err, "%s: vocab[\"%s\"] is not a valid token id", name, v->string);
        if ((int32_t)v->valuedouble > *out) *out = (int32_t)v->valuedouble;
    }
    cJSON_ArrayForEach(v, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(v, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= INT32_MAX ||
            id->valuedouble != (int32_t)id->valuedouble)
            return lf_fail(err, "%s: an added token has no valid id", name);
        if ((int32_t)id->valuedouble > *out) *out = (int32_t)id->valuedouble;
    }
    if (*out < 0) return lf_fail(err, "%s: empty vocabulary", name);
    /* Every id gets a table slot: a sparse id must not make a small file claim gigabytes. */
    size_t listed = (size_t)cJSON_GetArraySize(vocab) + (size_t)cJSON_GetArraySize(added);
    if ((size_t)*out >= 2 * listed + 1024)
        return lf_fail(err, "%s: token ids reach %d but only %zu tokens are listed", name, *out,
                       listed);
    return 0;
}

/* One merge rule: "a b" (exactly one space, as `tokenizers` splits it) or ["a", "b"]. */
static int parse_merge(Bpe *t, const cJSON *m, uint32_t rank, const char *name, LfError *err) {
    if (cJSON_IsString(m)) {
        const char *s = m->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' '))
            return lf_fail(err, "%s: merge %u (\"%s\") is not two tokens", name, rank + 1, s);
        return add_merge(t, rank, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), name, err);
    }
    const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
    if (!cJSON_IsArray(m) || cJSON_GetArraySize(m) != 2 || !cJSON_IsString(a) || !cJSON_IsString(b))
        return lf_fail(err, "%s: merge %u is neither \"a b\" nor [a, b]", name, rank + 1);
    return add_merge(t, rank, a->valuestring, strlen(a->valuestring), b->valuestring,
                     strlen(b->valuestring), name, err);
}

/* model.vocab and model.merges into t (vocab may be a separate vocab.json: added then NULL). */
static int load_vocab_merges(Bpe *t, const cJSON *vocab, const cJSON *merges, const cJSON *added,
                             const char *name, LfError *err) {
    int32_t top;
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges))
        return lf_fail(err, "%s: model needs a vocab object and a merges array", name);
    if (max_id(vocab, added, name, &top, err) ||
        begin_vocab(t, top + 1, (size_t)cJSON_GetArraySize(vocab), err))
        return -1;
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        if (model_token(t, (int32_t)v->valuedouble, v->string, strlen(v->string), name, err))
            return -1;
    }
    if (pair_init(&t->merges, (size_t)cJSON_GetArraySize(merges), err)) return -1;
    uint32_t rank = 0;
    cJSON_ArrayForEach(v, merges) if (parse_merge(t, v, rank++, name, err)) return -1;
    return parse_added(t, added, name, err);
}

static int parse_model(Bpe *t, const cJSON *model, const cJSON *added, const char *name,
                       LfError *err) {
    const char *type = type_of(model);
    if (!cJSON_IsObject(model)) return lf_fail(err, "%s: no model", name);
    if (type && strcmp(type, "BPE"))
        return lf_fail(err, "%s: model.type %s is not supported (byte-level BPE only)", name, type);
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    const char *prefix = json_string(model, "continuing_subword_prefix");
    const char *suffix = json_string(model, "end_of_word_suffix");
    if ((t->byte_fallback = json_flag(model, "byte_fallback", 0, name, err)) < 0) return -1;
    if ((dropout && !cJSON_IsNull(dropout)) || (prefix && *prefix) || (suffix && *suffix))
        return lf_fail(err, "%s: BPE dropout, subword prefix and word suffix are not supported",
                       name);
    if ((t->ignore_merges = json_flag(model, "ignore_merges", 0, name, err)) < 0 ||
        (t->fuse_unk = json_flag(model, "fuse_unk", 0, name, err)) < 0 ||
        load_vocab_merges(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"),
                          cJSON_GetObjectItemCaseSensitive(model, "merges"), added, name, err))
        return -1;
    const char *unk = json_string(model, "unk_token");
    if (unk && (t->unk = vocab_get(t, unk, strlen(unk))) < 0)
        return lf_fail(err, "%s: unk_token \"%s\" is not in the vocabulary", name, unk);
    return 0;
}

/* The normalizer: none, NFC, or a Sequence of those. */
static int parse_normalizer(Bpe *t, const cJSON *norm, int depth, const char *name, LfError *err) {
    if (!norm || cJSON_IsNull(norm)) return 0;
    const char *type = type_of(norm);
    if (type && !strcmp(type, "NFC")) return t->nfc = 1, 0;
    if (type && !strcmp(type, "Prepend")) {
        const char *p = json_string(norm, "prepend");
        if (!p || strcmp(p, SPACE_MARK))
            return lf_fail(err, "%s: normalizer Prepend of \"%s\" is not supported (only \"%s\")",
                           name, p ? p : "", SPACE_MARK);
        return t->prepend = 1, 0;
    }
    if (type && !strcmp(type, "Replace")) {
        const char *pat = json_string(cJSON_GetObjectItemCaseSensitive(norm, "pattern"), "String");
        const char *with = json_string(norm, "content");
        if (!pat || !with || strcmp(pat, " ") || strcmp(with, SPACE_MARK))
            return lf_fail(err, "%s: normalizer Replace is supported only as \" \" -> \"%s\"", name,
                           SPACE_MARK);
        return t->escape = 1, 0;
    }
    if (type && !strcmp(type, "Sequence") && depth == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers"), *n;
        if (!cJSON_IsArray(list)) return lf_fail(err, "%s: Sequence without normalizers", name);
        cJSON_ArrayForEach(n, list) if (parse_normalizer(t, n, 1, name, err)) return -1;
        return 0;
    }
    return lf_fail(err, "%s: normalizer %s is not supported (none, NFC, Prepend, Replace)", name,
                   type ? type : "(untyped)");
}

/* The decoder says which kind of BPE this is: ByteLevel, or SentencePiece's (t->spm): Metaspace,
 * or a Sequence of Replace("▁", " "), ByteFallback, Fuse and Strip(" ", n, 0) after Fuse. */
static int parse_decoder(Bpe *t, const cJSON *dec, const char *name, LfError *err) {
    const char *type = type_of(dec);
    if (type && !strcmp(type, "ByteLevel")) return 0;
    t->spm = 1;
    if (type && !strcmp(type, "Metaspace")) {
        int scheme = prepend_scheme(dec, name, err);
        return scheme < 0 ? -1 : (t->dec_metaspace = scheme + 1, 0);
    }
    if (!type || strcmp(type, "Sequence"))
        return lf_fail(err,
                       "%s: decoder must be ByteLevel, Metaspace or a Sequence (got %s, not "
                       "supported)",
                       name, type ? type : "none");
    const cJSON *d;
    int replace = 0, fuse = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(dec, "decoders")) {
        const char *dt = type_of(d) ? type_of(d) : "(untyped)";
        const char *pat = json_string(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String");
        const char *content = json_string(d, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!strcmp(dt, "Replace") && pat && content && !strcmp(pat, SPACE_MARK) &&
            !strcmp(content, " ") && !fuse)
            replace = 1;
        else if (!strcmp(dt, "ByteFallback") && !fuse)
            t->dec_bytes = 1;
        else if (!strcmp(dt, "Fuse"))
            fuse = 1;
        else if (!strcmp(dt, "Strip") && fuse && content && !strcmp(content, " ") &&
                 cJSON_IsNumber(start) && start->valuedouble >= 0 && start->valuedouble <= 8 &&
                 cJSON_IsNumber(stop) && stop->valuedouble == 0)
            t->dec_strip = (int)start->valuedouble;
        else
            return lf_fail(err,
                           "%s: decoder %s is not supported here (a Sequence of Replace(\"%s\", "
                           "\" \"), ByteFallback, Fuse, then Strip(\" \", n, 0))",
                           name, dt, SPACE_MARK);
    }
    if (!replace)
        return lf_fail(err, "%s: decoder Sequence without Replace(\"%s\", \" \")", name,
                       SPACE_MARK);
    return 0;
}

static int parse_tokenizer_json(Bpe *t, const cJSON *root, const char *name, LfError *err) {
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    /* first: the added tokens with normalized=true are matched as the normalizer spells them */
    if (parse_decoder(t, cJSON_GetObjectItemCaseSensitive(root, "decoder"), name, err) ||
        parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0, name, err))
        return -1;
    if (t->nfc && (t->prepend || t->escape))
        return lf_fail(err, "%s: normalizer NFC with Prepend or Replace is not supported", name);
    if ((!pre || cJSON_IsNull(pre)) && !t->spm) return lf_fail(err, "%s: no pre_tokenizer", name);
    return (pre && !cJSON_IsNull(pre) && parse_pre(t, pre, 0, name, err)) ||
           parse_model(t, cJSON_GetObjectItemCaseSensitive(root, "model"),
                       cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), name, err) ||
           parse_post(t, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0, name, err) ||
           finish(t, name, err);
}

static int parse_json(const char *text, size_t len, const char *name, cJSON **out, LfError *err) {
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*out) return 0;
    int line = 1;
    for (const char *p = text; end && p < end; p++) line += *p == '\n';
    return lf_fail(err, "%s:%d: invalid JSON", name, line);
}

int bpe_load_json(Bpe **out, const char *json, size_t len, const char *name, LfError *err) {
    cJSON *root;
    if (parse_json(json, len, name, &root, err)) return -1;
    Bpe *t = bpe_new(err);
    int rc = t ? parse_tokenizer_json(t, root, name, err) : -1;
    cJSON_Delete(root);
    if (rc) {
        bpe_free(t);
        return -1;
    }
    default_bos_eos(t);
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------- files */

static int read_json_file(const char *path, cJSON **out, LfError *err) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err)) return -1;
    int rc = parse_json(text, len, path, out, err);
    free(text);
    return rc;
}

/* merges.txt: "#version" lines skipped, then one "a b" rule per line (BPE::read_file). */
static int load_merges_txt(Bpe *t, const char *path, LfError *err) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err)) return -1;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += text[i] == '\n';
    int rc = pair_init(&t->merges, lines + 1, err);
    uint32_t rank = 0;
    for (char *p = text; !rc && p < text + len;) {
        char *nl = memchr(p, '\n', (size_t)(text + len - p)), *end = nl ? nl : text + len;
        if (end > p && end[-1] == '\r') end--;
        *end = 0;
        if (strncmp(p, "#version", 8)) {
            char *sp = strchr(p, ' ');
            if (!sp || strchr(sp + 1, ' '))
                rc = lf_fail(err, "%s: merge %u (\"%s\") is not two tokens", path, rank + 1, p);
            else
                rc = add_merge(t, rank++, p, (size_t)(sp - p), sp + 1, strlen(sp + 1), path, err);
        }
        p = nl ? nl + 1 : text + len;
    }
    free(text);
    return rc;
}

/* GPT-2's older pair: vocab.json + merges.txt, with GPT2Tokenizer's pipeline and
 * <|endoftext|> as its special token. */
static int load_pair(Bpe *t, const char *dir, LfError *err) {
    char vocab_path[4096], merges_path[4096];
    cJSON *vocab;
    if (path_join(vocab_path, sizeof vocab_path, dir, "vocab.json", err) ||
        path_join(merges_path, sizeof merges_path, dir, "merges.txt", err) ||
        read_json_file(vocab_path, &vocab, err))
        return -1;
    int32_t top;
    int rc = max_id(vocab, NULL, vocab_path, &top, err);
    if (!rc) rc = begin_vocab(t, top + 1, (size_t)cJSON_GetArraySize(vocab), err);
    const cJSON *v;
    cJSON_ArrayForEach(v, vocab) {
        if (!rc)
            rc = model_token(t, (int32_t)v->valuedouble, v->string, strlen(v->string), vocab_path,
                             err);
    }
    cJSON_Delete(vocab);
    if (rc || load_merges_txt(t, merges_path, err)) return -1;
    int32_t eot = vocab_get(t, "<|endoftext|>", 13);
    static const uint8_t special[4] = {1, 0, 0, 0};
    if (eot >= 0 && add_added(t, "<|endoftext|>", 13, eot, special, vocab_path, err)) return -1;
    t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 1};
    return finish(t, dir, err);
}

/* tokenizer_config.json beside the tokenizer may name bos_token and eos_token. */
static int load_config(Bpe *t, const char *dir, LfError *err) {
    char path[4096];
    struct stat st;
    if (path_join(path, sizeof path, dir, "tokenizer_config.json", err)) return -1;
    if (stat(path, &st)) return 0;
    cJSON *cfg;
    if (read_json_file(path, &cfg, err)) return -1;
    const char *bos = json_string(cfg, "bos_token"), *eos = json_string(cfg, "eos_token");
    int rc = 0;
    if (bos && (t->bos = bpe_lookup(t, bos)) < 0)
        rc = lf_fail(err, "%s: bos_token \"%s\" is not in the vocabulary", path, bos);
    if (!rc && eos && (t->eos = bpe_lookup(t, eos)) < 0)
        rc = lf_fail(err, "%s: eos_token \"%s\" is not in the vocabulary", path, eos);
    cJSON_Delete(cfg);
    return rc;
}

static int load_json_file(Bpe **out, const char *path, LfError *err) {
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len, err)) return -1;
    int rc = bpe_load_json(out, text, len, path, err);
    free(text);
    return rc;
}

static int load_pair_dir(Bpe **out, const char *dir, LfError *err) {
    Bpe *t = bpe_new(err);
    if (!t || load_pair(t, dir, err)) {
        bpe_free(t);
        return -1;
    }
    default_bos_eos(t);
    *out = t;
    return 0;
}

int bpe_load(Bpe **out, const char *path, LfError *err) {
    struct stat st;
    char dir[4096], json[4096];
    if (stat(path, &st)) return lf_fail(err, "%s: %s", path, strerror(errno));
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(json, sizeof json, "%s", path);
    if (S_ISDIR(st.st_mode)) {
        if (path_join(json, sizeof json, dir, "tokenizer.json", err)) return -1;
        if (stat(json, &st)) json[0] = 0; /* none: vocab.json + merges.txt */
    } else {
        char *slash = strrchr(dir, '/');
        snprintf(slash ? slash : dir, sizeof dir - (size_t)(slash ? slash - dir : 0), "%s",
                 slash ? "" : ".");
    }
    Bpe *t = NULL;
    int rc = json[0] ? load_json_file(&t, json, err) : load_pair_dir(&t, dir, err);
    if (!rc && load_config(t, dir, err)) rc = -1;
    if (rc) {
        bpe_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------- GGUF arrays */

/* GGUF strings: with a length, or NUL-terminated. */
static size_t str_len(const char *const *s, const size_t *lens, int32_t i) {
    return lens ? lens[i] : strlen(s[i]);
}

/* 1 when every char of s is in the byte alphabet. */
static int in_alphabet(const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        uint32_t c = (unsigned char)s[i];
        int k = c < 0x80 ? 1 : utf8_decode((const unsigned char *)s + i, n - i, &c);
        if (!k || char_byte(c) < 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

/* A token outside the byte alphabet is respelled byte by byte, as transformers does. */
static int gguf_token(Bpe *t, int32_t id, const char *s, size_t n, LfError *err) {
    if (in_alphabet(s, n)) return model_token(t, id, s, n, "GGUF tokens", err);
    char *spelled = malloc(2 * n + 1);
    if (!spelled) return lf_fail(err, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *c = t->byte_spell[(unsigned char)s[i]];
        spelled[k++] = c[0];
        if (c[1]) spelled[k++] = c[1];
    }
    int rc = model_token(t, id, spelled, k, "GGUF tokens", err);
    free(spelled);
    return rc;
}

/* tokenizer.ggml.pre -> the pre-tokenizer steps (see bpe.h). */
static int gguf_pre(Bpe *t, const char *pre, LfError *err) {
    if (!pre || !strcmp(pre, "gpt-2") || !strcmp(pre, "default")) {
        t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 1};
    } else if (!strcmp(pre, "llama-bpe") || !strcmp(pre, "llama3") || !strcmp(pre, "llama-v3")) {
        t->stages[t->n_stages++] = (Stage){ST_SPLIT_LLAMA3, 3, 0};
        t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 0};
        t->ignore_merges = 1;
    } else if (!strcmp(pre, "qwen2")) { /* no NFC: llama.cpp and transformers' GGUF reader */
        t->stages[t->n_stages++] = (Stage){ST_SPLIT_LLAMA3, 1, 0};
        t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 0};
    } else if (!strcmp(pre, "smollm")) {
        t->stages[t->n_stages++] = (Stage){ST_DIGITS, 1, 0};
        t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 1};
    } else if (!strcmp(pre, "gpt-4o") || !strcmp(pre, "llama4")) { /* llama.cpp: no ignore_merges */
        t->stages[t->n_stages++] = (Stage){ST_SPLIT_O200K, 3, 1};
        t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 0};
    } else if (!strcmp(pre, "tekken")) { /* ignore_merges: llama.cpp's, and MistralConverter's */
        t->stages[t->n_stages++] = (Stage){ST_SPLIT_O200K, 1, 0};
        t->stages[t->n_stages++] = (Stage){ST_BYTELEVEL, 0, 0};
        t->ignore_merges = 1;
    } else {
        return lf_fail(err,
                       "GGUF pre-tokenizer \"%s\" is not supported (gpt-2, llama-bpe, qwen2, "
                       "smollm, gpt-4o, tekken)",
                       pre);
    }
    return 0;
}

/* CONTROL tokens become special added tokens, USER_DEFINED ones plain added tokens; those
 * outside the byte alphabet are left out (transformers' add_gguf_special_tokens). SentencePiece:
 * UNKNOWN too, special, as llama.cpp matches it in text (parse_special) and transformers adds it.
 */
static int gguf_added(Bpe *t, const BpeArrays *a, LfError *err) {
    for (int32_t i = 0; a->token_types && i < a->n_tokens; i++) {
        int type = a->token_types[i];
        const char *s = a->tokens[i];
        size_t n = str_len(a->tokens, a->token_lens, i);
        int special = type == BPE_TOKEN_CONTROL || (t->spm && type == BPE_TOKEN_UNKNOWN);
        if ((!special && type != BPE_TOKEN_USER_DEFINED) || !n || (!t->spm && !in_alphabet(s, n)))
            continue;
        const uint8_t flags[4] = {(uint8_t)special, 0, 0, 0};
        if (add_added(t, s, n, vocab_get(t, s, n), flags, "GGUF tokens", err)) return -1;
    }
    return 0;
}

static int by_score(const void *x, const void *y) {
    float a = *(const float *)x, b = *(const float *)y;
    return a > b ? -1 : a < b;
}

/* llama.cpp's SPM merge (llm_tokenizer_spm): any two neighbours whose text is a token merge, the
 * token of the highest score first, leftmost on ties. As rules of the BPE engine: every cut of a
 * token into two tokens is a rule whose rank is the token's score's place among the distinct
 * scores (so equal scores tie and the queue's position order picks the leftmost). */
static int spm_score_merges(Bpe *t, const BpeArrays *a, LfError *err) {
    int32_t n = a->n_tokens;
    size_t cuts = 0;
    for (int32_t i = 0; i < n; i++) cuts += t->len[i];
    float *sorted = malloc((size_t)n * sizeof *sorted);
    if (!sorted || pair_init(&t->merges, cuts, err)) {
        free(sorted);
        return lf_fail(err, "out of memory for the GGUF merges");
    }
    memcpy(sorted, a->scores, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, by_score);
    int32_t distinct = 0;
    for (int32_t i = 0; i < n; i++)
        if (!i || sorted[i] != sorted[distinct - 1]) sorted[distinct++] = sorted[i];
    for (int32_t id = 0; id < n; id++) {
        const char *s = t->text.p + t->off[id];
        size_t len = t->len[id];
        if (vocab_get(t, s, len) != id) continue; /* a duplicate: the later one is the token */
        int32_t lo = 0, hi = distinct - 1;        /* the rank of its score */
        while (lo < hi) {
            int32_t mid = (lo + hi) / 2;
            if (sorted[mid] > a->scores[id])
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t cut = 1; cut < len; cut++) {
            if ((s[cut] & 0xC0) == 0x80) continue; /* inside a char */
            int32_t l = vocab_get(t, s, cut), r = vocab_get(t, s + cut, len - cut);
            if (l >= 0 && r >= 0) pair_put(&t->merges, l, r, (uint32_t)lo, id);
        }
    }
    free(sorted);
    return 0;
}

/* tokenizer.ggml.model "llama": llama.cpp's SPM tokenizer. The text between added tokens gets
 * " " in front (add_space_prefix) and every " " becomes "▁" (Prepend + Replace normalizers);
 * chars outside the vocabulary become <0xNN> tokens; decoding as transformers' LlamaTokenizer. */
static int gguf_build_spm(Bpe *t, const BpeArrays *a, LfError *err) {
    if (!a->scores) return lf_fail(err, "GGUF tokenizer \"llama\" without tokenizer.ggml.scores");
    t->spm = t->byte_fallback = t->fuse_unk = t->escape = t->dec_bytes = 1;
    t->prepend = t->dec_strip = !a->no_space_prefix;
    if (begin_vocab(t, a->n_tokens, (size_t)a->n_tokens, err)) return -1;
    for (int32_t i = 0; i < a->n_tokens; i++) {
        if (model_token(t, i, a->tokens[i], str_len(a->tokens, a->token_lens, i), "GGUF tokens",
                        err))
            return -1;
        if (a->token_types && a->token_types[i] == BPE_TOKEN_UNKNOWN && t->unk < 0) t->unk = i;
    }
    return spm_score_merges(t, a, err);
}

static int gguf_build(Bpe *t, const BpeArrays *a, LfError *err) {
    if (a->n_tokens <= 0 || !a->tokens || (a->n_merges && !a->merges))
        return lf_fail(err, "GGUF tokenizer: no tokens");
    if (a->model && strcmp(a->model, "gpt2") && strcmp(a->model, "llama"))
        return lf_fail(err, "GGUF tokenizer.ggml.model \"%s\" is not supported (gpt2, llama)",
                       a->model);
    int spm = a->model && !strcmp(a->model, "llama");
    if (spm && gguf_build_spm(t, a, err)) return -1;
    if (!spm &&
        (gguf_pre(t, a->pre, err) || begin_vocab(t, a->n_tokens, (size_t)a->n_tokens, err) ||
         pair_init(&t->merges, (size_t)(a->n_merges > 0 ? a->n_merges : 0), err)))
        return -1;
    for (int32_t i = 0; !spm && i < a->n_tokens; i++)
        if (gguf_token(t, i, a->tokens[i], str_len(a->tokens, a->token_lens, i), err)) return -1;
    for (int32_t i = 0; !spm && i < a->n_merges; i++) {
        const char *s = a->merges[i];
        size_t n = str_len(a->merges, a->merge_lens, i);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1)))
            return lf_fail(err, "GGUF merge %d (\"%.*s\") is not two tokens", i + 1, (int)n, s);
        if (add_merge(t, (uint32_t)i, s, (size_t)(sp - s), sp + 1, (size_t)(s + n - sp - 1),
                      "GGUF merges", err))
            return -1;
    }
    if (gguf_added(t, a, err)) return -1;
    for (int k = 0; k < 2; k++) {
        int32_t id = k ? a->eos_id : a->bos_id;
        if (id >= a->n_tokens)
            return lf_fail(err, "GGUF %s id %d is out of range", k ? "eos" : "bos", id);
        if (k ? a->add_eos : a->add_bos) {
            if (id < 0) return lf_fail(err, "GGUF: add_%s without its id", k ? "eos" : "bos");
            (k ? t->suffix : t->prefix)[0] = id;
            *(k ? &t->n_suffix : &t->n_prefix) = 1;
        }
    }
    t->bos = a->bos_id < 0 ? -1 : a->bos_id;
    t->eos = a->eos_id < 0 ? -1 : a->eos_id;
    return finish(t, "GGUF tokenizer", err);
}

int bpe_from_arrays(Bpe **out, const BpeArrays *spec, LfError *err) {
    Bpe *t = bpe_new(err);
    if (!t || gguf_build(t, spec, err)) {
        bpe_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ---------------------------------------------------------------- GGUF form */

/* The tokenizer.ggml.pre name whose steps (gguf_pre) are t's; NULL when none is. GGUF has no
 * key for the normalizer: NFC is left out, as llama.cpp's converter leaves Qwen2's out. */
static const char *gguf_pre_name(const Bpe *t) {
    static const char *const names[] = {"gpt-2",  "llama-bpe", "qwen2",
                                        "smollm", "gpt-4o",    "tekken"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        Bpe probe = {0};
        gguf_pre(&probe, names[i], NULL);
        if (probe.n_stages == t->n_stages && probe.ignore_merges == t->ignore_merges &&
            !memcmp(probe.stages, t->stages, (size_t)t->n_stages * sizeof *t->stages))
            return names[i];
    }
    return NULL;
}

static int by_rank(const void *a, const void *b) {
    uint32_t x = ((const PairSlot *)a)->rank, y = ((const PairSlot *)b)->rank;
    return x < y ? -1 : x > y;
}

/* A SentencePiece-style BPE as tokenizer.ggml.model "llama": its tokens, scores that make
 * llama.cpp's merge (highest score first) follow the rules' ranks (a token's score is minus the
 * first rank that makes it; a token no rule makes, of two or more chars, scores below them all),
 * BYTE / UNKNOWN / CONTROL (special added tokens) / USER_DEFINED (the other added tokens) /
 * NORMAL types, no merges. add_space_prefix is the normalizer's Prepend
 * or Metaspace's prepend_scheme ("first" cannot be said: llama.cpp prefixes every piece between
 * special tokens, as Prepend does). */
static int spm_to_arrays(const Bpe *t, BpeArrays *a, void **mem, LfError *err) {
    size_t n = (size_t)t->n_ids;
    char *p = *mem = malloc(n * (sizeof(char *) + sizeof(int32_t) + sizeof(float)) + 1);
    if (!p) return lf_fail(err, "out of memory for the GGUF vocabulary");
    const char **tokens = (const char **)p;
    float *scores = (float *)(tokens + n);
    int32_t *types = (int32_t *)(scores + n);
    uint32_t last = 0;
    for (size_t i = 0; t->merges.slot && i <= t->merges.mask; i++)
        if (t->merges.slot[i].key != UINT64_MAX && t->merges.slot[i].rank > last)
            last = t->merges.slot[i].rank;
    for (size_t i = 0; i < n; i++) {
        const char *tok = bpe_token(t, (int32_t)i);
        tokens[i] = tok ? tok : "";
        size_t chars = 0;
        for (const char *c = tokens[i]; *c; c++) chars += (*c & 0xC0) != 0x80;
        scores[i] = chars > 1 ? -(float)last - 1 : 0;
        types[i] = t->special[i] ? BPE_TOKEN_CONTROL : BPE_TOKEN_NORMAL;
        if ((int32_t)i == t->unk) types[i] = BPE_TOKEN_UNKNOWN;
    }
    for (size_t i = 0; t->merges.slot && i <= t->merges.mask; i++) {
        const PairSlot *s = &t->merges.slot[i];
        if (s->key != UINT64_MAX && -(float)s->rank > scores[s->merged])
            scores[s->merged] = -(float)s->rank;
    }
    for (int k = 0; k < t->n_added; k++) /* matched in text before the merges, as in llama.cpp */
        if (!t->added[k].special && t->added[k].id != t->unk)
            types[t->added[k].id] = BPE_TOKEN_USER_DEFINED;
    for (int b = 0; b < 256; b++)
        if (t->byte_id[b] >= 0) types[t->byte_id[b]] = BPE_TOKEN_BYTE;
    int meta = t->n_stages && t->stages[0].kind == ST_METASPACE;
    a->model = "llama";
    a->tokens = tokens, a->n_tokens = t->n_ids, a->token_types = types, a->scores = scores;
    a->no_space_prefix = meta ? t->stages[0].flag == PREPEND_NEVER : !t->prepend;
    a->bos_id = t->bos, a->eos_id = t->eos, a->unk_id = t->unk;
    a->add_bos = t->n_prefix > 0, a->add_eos = t->n_suffix > 0;
    return 0;
}

int bpe_to_arrays(const Bpe *t, BpeArrays *a, void **mem, LfError *err) {
    memset(a, 0, sizeof *a);
    *mem = NULL;
    a->unk_id = -1;
    if (t->spm) return spm_to_arrays(t, a, mem, err);
    a->model = "gpt2";
    if (!(a->pre = gguf_pre_name(t)))
        return lf_fail(err, "the tokenizer's pre-tokenizer has no GGUF name (gpt-2, llama-bpe, "
                            "qwen2, smollm, gpt-4o, tekken)");
    size_t n_merges = 0, text = 0, n = (size_t)t->n_ids;
    for (size_t i = 0; t->merges.slot && i <= t->merges.mask; i++)
        if (t->merges.slot[i].key != UINT64_MAX) {
            const PairSlot *s = &t->merges.slot[i];
            text += t->len[s->key >> 32] + t->len[(uint32_t)s->key] + 2;
            n_merges++;
        }
    /* tokens, types, merge pointers, the sorted rules, then the "a b" strings */
    size_t bytes = n * (sizeof(char *) + sizeof(int32_t)) +
                   n_merges * (sizeof(char *) + sizeof(PairSlot)) + text;
    char *p = *mem = malloc(bytes + 1);
    if (!p) return lf_fail(err, "out of memory for the GGUF vocabulary");
    const char **tokens = (const char **)p, **merges = tokens + n;
    PairSlot *rules = (PairSlot *)(merges + n_merges);
    int32_t *types = (int32_t *)(rules + n_merges);
    char *s = (char *)(types + n);
    for (size_t i = 0; i < n; i++) {
        const char *tok = bpe_token(t, (int32_t)i);
        tokens[i] = tok ? tok : "";
        types[i] = t->special[i] ? BPE_TOKEN_CONTROL : BPE_TOKEN_NORMAL;
    }
    size_t k = 0;
    for (size_t i = 0; t->merges.slot && i <= t->merges.mask; i++)
        if (t->merges.slot[i].key != UINT64_MAX) rules[k++] = t->merges.slot[i];
    qsort(rules, n_merges, sizeof *rules, by_rank);
    for (size_t i = 0; i < n_merges; i++) {
        uint32_t l = (uint32_t)(rules[i].key >> 32), r = (uint32_t)rules[i].key;
        merges[i] = s;
        s += sprintf(s, "%.*s %.*s", (int)t->len[l], t->text.p + t->off[l], (int)t->len[r],
                     t->text.p + t->off[r]) +
             1;
    }
    a->tokens = tokens, a->n_tokens = t->n_ids, a->token_types = types;
    a->merges = merges, a->n_merges = (int32_t)n_merges;
    a->bos_id = t->bos, a->eos_id = t->eos;
    a->add_bos = t->n_prefix > 0, a->add_eos = t->n_suffix > 0;
    return 0;
}
