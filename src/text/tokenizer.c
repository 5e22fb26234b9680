/* tokenizer.c: the BERT WordPiece tokenizer (see tokenizer.h), exact to Hugging Face's
 * BertTokenizerFast. One pass over the text: added tokens, cleaning, NFD + accent stripping,
 * lowercasing and the whitespace/punctuation split are applied char by char while each word
 * collects in a fixed buffer; WordPiece then looks pieces up in an open-addressing hash table.
 * No allocation per word; ASCII skips the Unicode tables. It is not a general `tokenizers`
 * runtime: other normalizers, pre-tokenizers and models (BPE, Unigram) are refused at load time. */
#include "loraft/tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "loraft/normalize.h" /* nfd_char */
#include "loraft/unicode.h"
#include "loraft/utf8.h"
#include "loraft/hash.h"

enum { MAX_WORD_CHARS = 1024 }; /* largest max_input_chars_per_word we accept */
enum { MAX_ADDED = 64 };        /* added tokens of tokenizer.json */

/* Class of an ASCII byte after cleaning: what the pre-tokenizer does with it. */
enum { C_WORD, C_SPACE, C_PUNCT, C_DROP };

/* Maps a token (its bytes after `skip` prefix bytes) to its id. */
typedef struct VocabTable {
    uint32_t *slot_hash; /* 0 = empty (hashes are forced non-zero) */
    int32_t *slot_id;
    size_t mask;    /* capacity - 1, capacity a power of two */
    size_t max_len; /* longest key in bytes */
    size_t skip;    /* bytes of each token left out of its key: "##" for continuations */
} VocabTable;

typedef struct AddedToken {
    const char *s;
    size_t n;
    int32_t id;
} AddedToken;

struct Tokenizer {
    char *arena;   /* all tokens, NUL-terminated */
    uint32_t *off; /* [n_ids] offset of token id in arena, UINT32_MAX for a hole */
    uint32_t *len; /* [n_ids] token length in bytes */
    int32_t n_ids; /* largest id + 1 */
    VocabTable words, cont;
    char prefix[16]; /* continuing_subword_prefix */
    int32_t special[5];
    int max_chars; /* max_input_chars_per_word */
    int clean, chinese, strip_accents, lowercase;
    AddedToken added[MAX_ADDED];
    int n_added;
    uint8_t added_first[256]; /* 1 when some added token starts with this byte */
    uint8_t ascii_class[128];
    char ascii_map[128]; /* lowercased when lowercase */
};

/* ---------------------------------------------------------------- Unicode tables */

static int uni_flags(uint32_t c) {
    return unicode_flag_ranges[UNICODE_LAST_AT_MOST(unicode_flag_ranges, unicode_flag_ranges_len,
                                                    c)]
        .flags;
}

static int uni_ccc(uint32_t c) {
    if (c < unicode_ccc_runs[0].first) return 0;
    const UnicodeCccRun *r =
        &unicode_ccc_runs[UNICODE_LAST_AT_MOST(unicode_ccc_runs, unicode_ccc_runs_len, c)];
    return c - r->first < r->count ? r->ccc : 0;
}

/* Full lowercase mapping (char::to_lowercase): writes 1..3 code points, returns the count. */
static int uni_lower(uint32_t c, uint32_t out[3]) {
    for (size_t i = 0; i < unicode_lower_specials_len; i++)
        if (unicode_lower_specials[i].cp == c) {
            memcpy(out, unicode_lower_specials[i].to, sizeof unicode_lower_specials[i].to);
            return unicode_lower_specials[i].n;
        }
    out[0] = c;
    if (c < unicode_lower_runs[0].first) return 1;
    const UnicodeLowerRun *r =
        &unicode_lower_runs[UNICODE_LAST_AT_MOST(unicode_lower_runs, unicode_lower_runs_len, c)];
    uint32_t k = c - r->first;
    if (k % r->stride == 0 && k / r->stride < r->count) out[0] = (uint32_t)((int32_t)c + r->delta);
    return 1;
}

/* ---------------------------------------------------------------- vocabulary hash table */

static const char *token_at(const Tokenizer *t, int32_t id) {
    return t->arena + t->off[id];
}

static int32_t table_find(const Tokenizer *t, const VocabTable *tab, const char *s, size_t n) {
    uint32_t h = hash_bytes(s, n);
    for (size_t i = h & tab->mask;; i = (i + 1) & tab->mask) {
        if (!tab->slot_hash[i]) return -1;
        int32_t id = tab->slot_id[i];
        if (tab->slot_hash[i] == h && t->len[id] - tab->skip == n &&
            !memcmp(token_at(t, id) + tab->skip, s, n))
            return id;
    }
}

/* Inserts every token (those starting with the prefix, prefix removed, when skip > 0); a later
 * duplicate wins, as in HF's dict. */
static int table_build(Tokenizer *t, VocabTable *tab, size_t skip, LfError *err) {
    size_t n = 0;
    for (int32_t id = 0; id < t->n_ids; id++) n += t->off[id] != UINT32_MAX;
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    tab->slot_hash = calloc(cap, sizeof *tab->slot_hash);
    tab->slot_id = malloc(cap * sizeof *tab->slot_id);
    if (!tab->slot_hash || !tab->slot_id) return lf_fail(err, "out of memory for the vocabulary");
    tab->mask = cap - 1;
    tab->skip = skip;
    for (int32_t id = 0; id < t->n_ids; id++) {
        if (t->off[id] == UINT32_MAX || t->len[id] < skip) continue;
        const char *s = token_at(t, id);
        if (skip && memcmp(s, t->prefix, skip)) continue;
        size_t len = t->len[id] - skip;
        uint32_t h = hash_bytes(s + skip, len);
        size_t i = h & tab->mask;
        while (tab->slot_hash[i] &&
               !(tab->slot_hash[i] == h && t->len[tab->slot_id[i]] == t->len[id] &&
                 !memcmp(token_at(t, tab->slot_id[i]), s, t->len[id])))
            i = (i + 1) & tab->mask;
        tab->slot_hash[i] = h;
        tab->slot_id[i] = id;
        if (len > tab->max_len) tab->max_len = len;
    }
    return 0;
}

/* ---------------------------------------------------------------- encoding */

/* The word being collected: normalized UTF-8, at most max_chars chars kept. */
typedef struct Encoder {
    const Tokenizer *t;
    IdList *ids;
    LfError *err;
    size_t n, nchars;
    size_t run; /* where the trailing run of non-starters begins (for NFD order) */
    char buf[4 * MAX_WORD_CHARS + 16];
} Encoder;

/* The start of the char before s[end] (a char boundary > start). */
static size_t prev_char(const char *s, size_t start, size_t end) {
    do end--;
    while (end > start && (s[end] & 0xC0) == 0x80);
    return end;
}

/* Greedy longest-match-first WordPiece of s[0..n); a word that cannot be covered is [UNK]. */
static int wordpiece(const Tokenizer *t, const char *s, size_t n, IdList *ids, LfError *err) {
    size_t n0 = ids->n;
    for (size_t start = 0; start < n;) {
        const VocabTable *tab = start ? &t->cont : &t->words;
        size_t end = n - start > tab->max_len ? start + tab->max_len : n;
        while (end < n && (s[end] & 0xC0) == 0x80) end--; /* to a char boundary */
        int32_t id = -1;
        while (end > start && (id = table_find(t, tab, s + start, end - start)) < 0)
            end = prev_char(s, start, end);
        if (id < 0) {
            ids->n = n0;
            return idlist_push(ids, t->special[TOK_UNK], err);
        }
        if (idlist_push(ids, id, err)) return -1;
        start = end;
    }
    return 0;
}

static int word_flush(Encoder *e) {
    if (!e->nchars) return 0;
    const Tokenizer *t = e->t;
    int rc = e->nchars > (size_t)t->max_chars ? idlist_push(e->ids, t->special[TOK_UNK], e->err)
                                              : wordpiece(t, e->buf, e->n, e->ids, e->err);
    e->n = e->nchars = e->run = 0;
    return rc;
}

/* Appends c to the word. A non-starter moves before the non-starters of higher combining class
 * that precede it in its run: the canonical ordering of NFD. */
static void word_append(Encoder *e, uint32_t c, int flags) {
    if (++e->nchars > (size_t)e->t->max_chars) return; /* [UNK] anyway: stop storing */
    char enc[4];
    int k = utf8_encode(c, enc);
    size_t at = e->n;
    if (flags & UNI_NONSTARTER) {
        int ccc = uni_ccc(c);
        while (at > e->run) {
            size_t p = at - 1;
            while (p > e->run && ((unsigned char)e->buf[p] & 0xC0) == 0x80) p--;
            uint32_t prev = 0;
            utf8_decode((const unsigned char *)e->buf + p, at - p, &prev);
            if (uni_ccc(prev) <= ccc) break;
            at = p;
        }
        memmove(e->buf + at + k, e->buf + at, e->n - at);
    } else {
        e->run = e->n + k;
    }
    memcpy(e->buf + at, enc, k);
    e->n += k;
}

/* One normalized char: split on whitespace, isolate punctuation, else extend the word. */
static int emit_char(Encoder *e, uint32_t c) {
    int flags = c < 0x80 ? 0 : uni_flags(c);
    int cls = c < 0x80            ? e->t->ascii_class[c]
              : flags & UNI_SPACE ? C_SPACE
              : flags & UNI_PUNCT ? C_PUNCT
                                  : C_WORD;
    if (cls == C_DROP) return 0;
    if (cls == C_SPACE) return word_flush(e);
    if (cls == C_PUNCT) {
        if (word_flush(e)) return -1;
        word_append(e, c, 0);
        return word_flush(e);
    }
    word_append(e, c, flags);
    return 0;
}

static int emit_lowered(Encoder *e, uint32_t c) {
    if (!e->t->lowercase) return emit_char(e, c);
    uint32_t low[3];
    int n = c < 0x80 ? (low[0] = (unsigned char)e->t->ascii_map[c], 1) : uni_lower(c, low);
    for (int i = 0; i < n; i++)
        if (emit_char(e, low[i])) return -1;
    return 0;
}

/* A non-ASCII char of the raw text through the whole BertNormalizer. */
static int push_codepoint(Encoder *e, uint32_t c) {
    const Tokenizer *t = e->t;
    int flags = uni_flags(c);
    if (t->clean && (c == 0xFFFD || (flags & UNI_OTHER))) return 0;
    if (t->clean && (flags & UNI_SPACE)) return word_flush(e);
    int cjk = t->chinese && (flags & UNI_CJK);
    if (cjk && word_flush(e)) return -1;
    if (!t->strip_accents) {
        if (emit_lowered(e, c)) return -1;
    } else {
        uint32_t d[4];
        int n = nfd_char(c, d);
        for (int i = 0; i < n; i++) {
            int f = d[i] < 0x80 ? 0 : uni_flags(d[i]);
            if (f & UNI_MN) {
                if (!(f & UNI_NONSTARTER)) e->run = e->n; /* a dropped starter ends the run */
            } else if (emit_lowered(e, d[i])) {
                return -1;
            }
        }
    }
    return cjk ? word_flush(e) : 0;
}

/* Length of the longest added token at s[0..n), 0 when none; its id in *id. */
static size_t match_added(const Tokenizer *t, const char *s, size_t n, int32_t *id) {
    size_t best = 0;
    for (int i = 0; i < t->n_added; i++) {
        const AddedToken *a = &t->added[i];
        if (a->n > best && a->n <= n && !memcmp(s, a->s, a->n)) {
            best = a->n;
            *id = a->id;
        }
    }
    return best;
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, IdList *ids, LfError *err) {
    Encoder *e = &(Encoder){.t = t, .ids = ids, .err = err};
    const unsigned char *s = (const unsigned char *)text;
    size_t n0 = ids->n;
    for (size_t i = 0; i < len;) {
        unsigned char b = s[i];
        int32_t id;
        size_t k = t->added_first[b] ? match_added(t, text + i, len - i, &id) : 0;
        if (k) {
            if (word_flush(e) || idlist_push(ids, id, err)) goto fail;
            i += k;
        } else if (b < 0x80) {
            i++;
            int cls = t->ascii_class[b];
            if (cls == C_WORD) {
                if (++e->nchars <= (size_t)t->max_chars) e->buf[e->n++] = t->ascii_map[b];
                e->run = e->n;
            } else if (cls != C_DROP && emit_char(e, b)) {
                goto fail;
            }
        } else {
            uint32_t c;
            int n = utf8_decode(s + i, len - i, &c);
            if (!n) {
                lf_fail(err, "invalid UTF-8 at byte offset %zu", i);
                goto fail;
            }
            i += n;
            if (push_codepoint(e, c)) goto fail;
        }
    }
    if (word_flush(e)) goto fail;
    return 0;
fail:
    ids->n = n0;
    return -1;
}

int tokenizer_build_inputs(const Tokenizer *t, const int32_t *a, int na, const int32_t *b, int nb,
                           int max_len, int truncate_left, int32_t *out, int32_t *types) {
    int budget = max_len - (b ? 3 : 2);
    if (budget < 0) return -1;
    int ka = na < budget ? na : budget, kb = 0;
    if (b && na + nb > budget) { /* longest_first, as tokenizers' truncate_encodings */
        int swap = na > nb, shorter = swap ? nb : na, ks, kl;
        if (shorter <= budget - shorter) /* only the longer is cut */
            ks = shorter, kl = budget - shorter;
        else /* both are cut; the longer keeps the odd token */
            ks = budget / 2, kl = budget - budget / 2;
        ka = swap ? kl : ks;
        kb = swap ? ks : kl;
    } else if (b) {
        ka = na, kb = nb;
    }
    int n = 0;
    const int32_t *parts[2] = {a ? a + (truncate_left ? na - ka : 0) : NULL,
                               b ? b + (truncate_left ? nb - kb : 0) : NULL};
    int counts[2] = {ka, kb};
    out[n++] = t->special[TOK_CLS];
    for (int s = 0; s < (b ? 2 : 1); s++) {
        int start = n;
        if (counts[s]) memcpy(out + n, parts[s], counts[s] * sizeof *out);
        n += counts[s];
        out[n++] = t->special[TOK_SEP];
        if (types)
            for (int i = s ? start : 0; i < n; i++) types[i] = s;
    }
    return n;
}

/* ---------------------------------------------------------------- loading */

/* Reads path into a NUL-terminated buffer. Returns 0, 1 when the file does not exist, or -1 with
 * err. */
static int read_file(const char *path, char **data, size_t *len, LfError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 1 : lf_fail(err, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            char *p = realloc(buf, cap = 2 * cap + 65536);
            if (!p) {
                free(buf);
                fclose(f);
                return lf_fail(err, "%s: out of memory", path);
            }
            buf = p;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return lf_fail(err, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return 0;
}

/* Parses a JSON file into *out. Returns 0, 1 when the file does not exist, or
 * -1. */
static int json_load(const char *path, cJSON **out, LfError *err) {
    char *data;
    size_t len;
    int rc = read_file(path, &data, &len, err);
    if (rc) return rc;
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(data, len, &end, 0);
    if (!*out) {
        int line = 1;
        for (const char *p = data; end && p < end; p++) line += *p == '\n';
        free(data);
        return lf_fail(err, "%s:%d: invalid JSON", path, line);
    }
    free(data);
    return 0;
}

enum { UNSET = 2 }; /* strip_accents: null, i.e. "same as lowercase" */

/* A boolean member: 1/0, UNSET when null, def when absent; -1 with err for another type. */
static int json_bool(const cJSON *obj, const char *key, int def, const char *path, LfError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) return def;
    if (cJSON_IsNull(v)) return UNSET;
    if (!cJSON_IsBool(v)) return lf_fail(err, "%s: \"%s\" must be true, false or null", path, key);
    return cJSON_IsTrue(v);
}

/* A token name: "[CLS]" or {"content": "[CLS]", ...}; NULL when absent. */
static const char *json_token_name(const cJSON *obj, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int alloc_ids(Tokenizer *t, int32_t n_ids, LfError *err) {
    t->n_ids = n_ids;
    t->off = malloc((size_t)n_ids * sizeof *t->off);
    t->len = malloc((size_t)n_ids * sizeof *t->len);
    if (!t->off || !t->len) return lf_fail(err, "out of memory for %d tokens", n_ids);
    memset(t->off, 0xFF, (size_t)n_ids * sizeof *t->off);
    return 0;
}

/* vocab.txt: one token per line, the id is the 0-based line number. The file's
 * buffer becomes the arena, each '\n' (and a '\r' before it) replaced by NUL.
 */
static int load_vocab_txt(Tokenizer *t, const char *path, LfError *err) {
    size_t len;
    int rc = read_file(path, &t->arena, &len, err);
    if (rc) return rc;
    if (len == 0) return lf_fail(err, "%s: empty vocabulary", path);
    if (len >= UINT32_MAX) return lf_fail(err, "%s: too large", path);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += t->arena[i] == '\n';
    lines += t->arena[len - 1] != '\n';
    if (lines > INT32_MAX || alloc_ids(t, (int32_t)lines, err)) return -1;
    char *p = t->arena;
    for (int32_t id = 0; id < t->n_ids; id++) {
        char *nl = memchr(p, '\n', t->arena + len - p);
        char *end = nl ? nl : t->arena + len;
        *end = 0;
        if (end > p && end[-1] == '\r') *--end = 0;
        t->off[id] = (uint32_t)(p - t->arena);
        t->len[id] = (uint32_t)(end - p);
        p = nl ? nl + 1 : end;
    }
    return 0;
}

/* model.vocab of tokenizer.json: {"token": id, ...}; ids may leave holes. */
static int load_json_vocab(Tokenizer *t, const cJSON *vocab, const char *path, LfError *err) {
    if (!cJSON_IsObject(vocab) || !vocab->child)
        return lf_fail(err, "%s: model.vocab must be a non-empty object", path);
    size_t bytes = 0;
    int32_t max_id = -1;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= INT32_MAX ||
            v->valuedouble != (int32_t)v->valuedouble)
            return lf_fail(err, "%s: model.vocab[\"%s\"] is not a valid token id", path, v->string);
        if (v->valueint > max_id) max_id = v->valueint;
        bytes += strlen(v->string) + 1;
    }
    size_t listed = (size_t)cJSON_GetArraySize(vocab);
    if ((size_t)max_id >= 2 * listed + 1024) /* each id gets a slot: no sparse gigabytes */
        return lf_fail(err, "%s: token ids reach %d but only %zu tokens are listed", path, max_id,
                       listed);
    if (bytes >= UINT32_MAX || alloc_ids(t, max_id + 1, err)) return -1;
    if (!(t->arena = malloc(bytes))) return lf_fail(err, "%s: out of memory", path);
    size_t at = 0;
    for (const cJSON *v = vocab->child; v; v = v->next) {
        size_t n = strlen(v->string);
        memcpy(t->arena + at, v->string, n + 1);
        t->off[v->valueint] = (uint32_t)at;
        t->len[v->valueint] = (uint32_t)n;
        at += n + 1;
    }
    return 0;
}

static int add_token(Tokenizer *t, const char *s, int32_t id, const char *path, LfError *err) {
    size_t n = strlen(s);
    if (!n || id < 0 || id >= t->n_ids || t->off[id] == UINT32_MAX || t->len[id] != n ||
        memcmp(token_at(t, id), s, n))
        return lf_fail(err, "%s: added token \"%s\" (id %d) is not that vocabulary entry", path, s,
                       id);
    if (t->n_added == MAX_ADDED)
        return lf_fail(err, "%s: more than %d added tokens", path, MAX_ADDED);
    t->added[t->n_added++] = (AddedToken){token_at(t, id), n, id};
    t->added_first[(unsigned char)s[0]] = 1;
    return 0;
}

static int check_type(const cJSON *obj, const char *want, const char *what, const char *path,
                      LfError *err) {
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, want)) return 0;
    return lf_fail(err,
                   "%s: %s must be %s (got %s): only BERT WordPiece tokenizers "
                   "are supported",
                   path, what, want, cJSON_IsString(type) ? type->valuestring : "none");
}

/* tokenizer.json: WordPiece model, BertNormalizer, BertPreTokenizer, added tokens. */
static int load_tokenizer_json(Tokenizer *t, const cJSON *root, const char *path, LfError *err) {
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    /* older files leave model.type out; WordPiece is the one with a subword prefix */
    int untyped = cJSON_IsObject(model) && !cJSON_GetObjectItemCaseSensitive(model, "type") &&
                  cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    if ((!untyped && check_type(model, "WordPiece", "model.type", path, err)) ||
        check_type(pre, "BertPreTokenizer", "pre_tokenizer.type", path, err) ||
        (!cJSON_IsNull(norm) && check_type(norm, "BertNormalizer", "normalizer.type", path, err)) ||
        load_json_vocab(t, cJSON_GetObjectItemCaseSensitive(model, "vocab"), path, err))
        return -1;
    const char *unk = json_token_name(model, "unk_token");
    const char *prefix = json_token_name(model, "continuing_subword_prefix");
    const cJSON *max_chars = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
    if (unk) t->special[TOK_UNK] = tokenizer_lookup(t, unk);
    if (prefix && strlen(prefix) >= sizeof t->prefix)
        return lf_fail(err, "%s: continuing_subword_prefix too long", path);
    if (prefix) strcpy(t->prefix, prefix);
    if (cJSON_IsNumber(max_chars)) t->max_chars = max_chars->valueint;
    t->clean = t->chinese = t->strip_accents = t->lowercase = 0;
    if (!cJSON_IsNull(norm)) {
        if ((t->clean = json_bool(norm, "clean_text", 1, path, err)) < 0 ||
            (t->chinese = json_bool(norm, "handle_chinese_chars", 1, path, err)) < 0 ||
            (t->lowercase = json_bool(norm, "lowercase", 1, path, err)) < 0 ||
            (t->strip_accents = json_bool(norm, "strip_accents", UNSET, path, err)) < 0)
            return -1;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *a;
    cJSON_ArrayForEach(a, added) {
        const char *s = json_token_name(a, "content");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (!s || !cJSON_IsNumber(id))
            return lf_fail(err, "%s: added token without content/id", path);
        static const char *unsupported[] = {"normalized", "lstrip", "rstrip", "single_word"};
        for (int i = 0; i < 4; i++)
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a, unsupported[i])))
                return lf_fail(err, "%s: added token \"%s\": %s=true is not supported", path, s,
                               unsupported[i]);
        if (add_token(t, s, id->valueint, path, err)) return -1;
    }
    return 0;
}

/* tokenizer_config.json / special_tokens_map.json: lowercasing options and token names, as
 * BertTokenizerFast applies them over tokenizer.json. */
static int load_config(Tokenizer *t, const cJSON *cfg, const char *names[5], const char *path,
                       LfError *err) {
    if ((t->lowercase = json_bool(cfg, "do_lower_case", t->lowercase, path, err)) < 0 ||
        (t->strip_accents = json_bool(cfg, "strip_accents", t->strip_accents, path, err)) < 0 ||
        (t->chinese = json_bool(cfg, "tokenize_chinese_chars", t->chinese, path, err)) < 0)
        return -1;
    static const char *keys[5] = {"pad_token", "unk_token", "cls_token", "sep_token", "mask_token"};
    for (int i = 0; i < 5; i++)
        if (json_token_name(cfg, keys[i])) names[i] = json_token_name(cfg, keys[i]);
    return 0;
}

static void build_ascii_tables(Tokenizer *t) {
    for (int b = 0; b < 128; b++) {
        int control = b < 32 || b == 127;
        int space = b == ' ' || (b >= '\t' && b <= '\r');
        int punct = (b >= 33 && b <= 47) || (b >= 58 && b <= 64) || (b >= 91 && b <= 96) ||
                    (b >= 123 && b <= 126);
        /* cleaning drops controls other than \t \n \r (\v \f too), and NUL */
        int drop = t->clean && ((control && b != '\t' && b != '\n' && b != '\r') || b == 0);
        t->ascii_class[b] = drop ? C_DROP : space ? C_SPACE : punct ? C_PUNCT : C_WORD;
        t->ascii_map[b] = (char)(t->lowercase && b >= 'A' && b <= 'Z' ? b + 32 : b);
    }
}

static int resolve_specials(Tokenizer *t, const char *names[5], const char *dir, LfError *err) {
    for (int i = 0; i < 5; i++)
        if (!(i == TOK_UNK && t->special[TOK_UNK] >= 0))
            t->special[i] = tokenizer_lookup(t, names[i]);
    if (t->special[TOK_UNK] < 0)
        return lf_fail(err, "%s: unknown token \"%s\" is not in the vocabulary", dir,
                       names[TOK_UNK]);
    if (t->max_chars < 1 || t->max_chars > MAX_WORD_CHARS)
        return lf_fail(err, "%s: max_input_chars_per_word must be in 1..%d", dir, MAX_WORD_CHARS);
    if (t->strip_accents == UNSET) t->strip_accents = t->lowercase;
    t->clean = t->clean != 0, t->chinese = t->chinese != 0, t->lowercase = t->lowercase != 0;
    build_ascii_tables(t);
    return table_build(t, &t->words, 0, err) || table_build(t, &t->cont, strlen(t->prefix), err);
}

/* Loads the optional JSON file dir/name into *out (NULL when absent). */
static int load_optional(const char *dir, const char *name, cJSON **out, char *path,
                         size_t path_size, LfError *err) {
    snprintf(path, path_size, "%s/%s", dir, name);
    *out = NULL;
    return json_load(path, out, err) < 0 ? -1 : 0;
}

static int load_all(Tokenizer *t, const char *dir, LfError *err) {
    char path[4096];
    const char *names[5] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    cJSON *tj = NULL, *cfg = NULL, *map = NULL;
    int rc = load_optional(dir, "tokenizer.json", &tj, path, sizeof path, err);
    if (!rc && tj) rc = load_tokenizer_json(t, tj, path, err);
    if (!rc && !tj) {
        snprintf(path, sizeof path, "%s/vocab.txt", dir);
        rc = load_vocab_txt(t, path, err);
        if (rc > 0) rc = lf_fail(err, "%s: no tokenizer.json or vocab.txt", dir);
    }
    if (!rc) rc = load_optional(dir, "special_tokens_map.json", &map, path, sizeof path, err);
    if (!rc && map) rc = load_config(t, map, names, path, err);
    if (!rc) rc = load_optional(dir, "tokenizer_config.json", &cfg, path, sizeof path, err);
    if (!rc && cfg) rc = load_config(t, cfg, names, path, err);
    if (!rc) rc = resolve_specials(t, names, dir, err);
    /* without tokenizer.json, the special tokens are the added tokens (BertTokenizerFast) */
    for (int i = 0; !rc && !tj && i < 5; i++)
        if (t->special[i] >= 0) rc = add_token(t, names[i], t->special[i], dir, err);
    cJSON_Delete(tj);
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    return rc;
}

int tokenizer_load(Tokenizer **out, const char *dir, LfError *err) {
    Tokenizer *t = calloc(1, sizeof *t);
    if (!t) return lf_fail(err, "out of memory");
    strcpy(t->prefix, "##");
    t->max_chars = 100;
    t->clean = t->chinese = t->lowercase = 1;
    t->strip_accents = UNSET;
    t->special[TOK_UNK] = -1;
    if (load_all(t, dir, err)) {
        tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    free(t->arena);
    free(t->off);
    free(t->len);
    free(t->words.slot_hash);
    free(t->words.slot_id);
    free(t->cont.slot_hash);
    free(t->cont.slot_id);
    free(t);
}

int tokenizer_vocab_size(const Tokenizer *t) {
    return t->n_ids;
}

int32_t tokenizer_special(const Tokenizer *t, SpecialToken which) {
    return (unsigned)which < 5 ? t->special[which] : -1;
}

int32_t tokenizer_lookup(const Tokenizer *t, const char *token) {
    if (!t->words.slot_hash) { /* during loading, before the table exists */
        for (int32_t id = t->n_ids - 1; id >= 0; id--)
            if (t->off[id] != UINT32_MAX && !strcmp(token_at(t, id), token)) return id;
        return -1;
    }
    return table_find(t, &t->words, token, strlen(token));
}

const char *tokenizer_token(const Tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && t->off[id] != UINT32_MAX ? token_at(t, id) : NULL;
}

/* ---------------------------------------------------------------- copying the files */

static int copy_atomic(const char *src, const char *dst, LfError *err) {
    char *data, tmp[4200];
    size_t len;
    int rc = read_file(src, &data, &len, err);
    if (rc) return rc;
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", dst, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        free(data);
        return lf_fail(err, "%s: %s", tmp, strerror(errno));
    }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) break;
        done += (size_t)w;
    }
    free(data);
    int bad = done < len || fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, dst)) {
        int e = errno;
        unlink(tmp);
        return lf_fail(err, "%s: write failed: %s", dst, strerror(e));
    }
    return 0;
}

int tokenizer_copy_files(const char *src_dir, const char *dst_dir, LfError *err) {
    static const char *files[] = {"vocab.txt", "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json"};
    int copied_model = 0;
    for (int i = 0; i < 4; i++) {
        char src[4096], dst[4096];
        snprintf(src, sizeof src, "%s/%s", src_dir, files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dst_dir, files[i]);
        int rc = copy_atomic(src, dst, err);
        if (rc < 0) return -1;
        copied_model |= rc == 0 && i < 2;
    }
    return copied_model ? 0 : lf_fail(err, "%s: no vocab.txt or tokenizer.json to copy", src_dir);
}
