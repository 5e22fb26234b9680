/* tokenizer.h: BERT WordPiece tokenization, id for id equal to Hugging Face's
 * BertTokenizerFast (the `tokenizers` BertNormalizer + BertPreTokenizer + WordPiece).
 *
 * Pipeline of tokenizer_encode, as tokenizers runs it:
 *   1. added tokens ([CLS], [SEP], [PAD], [MASK], [UNK] and any other added token of
 *      tokenizer.json) are matched in the raw text, leftmost-longest and case-sensitive,
 *      and become their own ids: "a[SEP]b" -> a [SEP] b, while "[sep]" is plain text;
 *   2. each remaining piece is normalized: drop U+0000, U+FFFD and control/format chars,
 *      other whitespace -> ' ', spaces around CJK ideographs, then (uncased) NFD with
 *      nonspacing marks removed, and full lowercasing;
 *   3. split on whitespace and around every punctuation char;
 *   4. greedy longest-match-first WordPiece with the "##" continuation prefix; a word
 *      longer than 100 chars, or one that cannot be covered, is one [UNK].
 * Unicode data follows the versions `tokenizers` uses (see scripts/gen-unicode-tables.py);
 * every code point was checked against it (bench/check_tokenizer_parity.py --codepoints).
 * The Tokenizer is read-only after loading: one may be shared by many threads. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable array of token ids; zero-initialise, push, free. */
typedef struct IdList {
    int32_t *ids;
    size_t n, cap;
} IdList;
int idlist_push(IdList *l, int32_t id, LfError *err);
void idlist_free(IdList *l);

typedef struct Tokenizer Tokenizer;
typedef enum { TOK_PAD, TOK_UNK, TOK_CLS, TOK_SEP, TOK_MASK } SpecialToken;

/* dir holds tokenizer.json (preferred when present) and/or vocab.txt. tokenizer_config.json
 * may set do_lower_case (default true), strip_accents (default: = do_lower_case) and
 * tokenize_chinese_chars (default true); where present they override tokenizer.json's
 * normalizer, as BertTokenizerFast.from_pretrained does (AutoTokenizer would not). Special
 * token names come from special_tokens_map.json / tokenizer_config.json, else "[PAD]" etc. */
int tokenizer_load(Tokenizer **out, const char *dir, LfError *err);
void tokenizer_free(Tokenizer *t);
int tokenizer_vocab_size(const Tokenizer *t); /* largest id + 1 */
/* The id of a special token, -1 when the vocabulary lacks it ([UNK] never lacks). */
int32_t tokenizer_special(const Tokenizer *t, SpecialToken which);
int32_t tokenizer_lookup(const Tokenizer *t, const char *token); /* -1 when absent */
const char *tokenizer_token(const Tokenizer *t, int32_t id);     /* NULL when out of range */

/* Appends the WordPiece ids of text[0..len) (no special tokens added) to ids. Invalid UTF-8
 * is an error naming the byte offset; ids is then left as it was. */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, IdList *ids, LfError *err);

/* Builds [CLS] a [SEP] (or [CLS] a [SEP] b [SEP] when b != NULL) into out[max_len] and the token
 * types (0 for [CLS] a [SEP], 1 for b [SEP]) into types[max_len] (may be NULL). a[na], b[nb] are
 * truncated to fit max_len as HF does, from the end (from the start when truncate_left). A pair
 * is cut "longest_first" the way `tokenizers` computes it: when the shorter fits in half the
 * room, only the longer is cut; else both get half, the longer (b on a tie) the odd token.
 * Returns the length written, or -1 when max_len cannot even hold the special tokens (HF raises
 * an error there). */
int tokenizer_build_inputs(const Tokenizer *t, const int32_t *a, int na, const int32_t *b, int nb,
                           int max_len, int truncate_left, int32_t *out, int32_t *types);

/* Copies vocab.txt, tokenizer.json, tokenizer_config.json and special_tokens_map.json, those
 * present, from src_dir to dst_dir (which must exist), each atomically (temp file, fsync,
 * rename). Fails when src_dir has neither vocab.txt nor tokenizer.json. */
int tokenizer_copy_files(const char *src_dir, const char *dst_dir, LfError *err);

#ifdef __cplusplus
}
#endif
