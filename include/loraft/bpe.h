/* bpe.h: BPE tokenization for decoder LLMs, id for id equal to Hugging Face `tokenizers`:
 * byte-level (GPT-2, Llama-3, SmolLM2, Qwen2 / Qwen2.5 / Qwen3, Phi-4-mini, Mistral-Nemo and
 * Mistral-Small-24B 2501 / 3.1's Tekken) and SentencePiece-style with byte fallback (Llama 2,
 * Mistral 7B, TinyLlama, Gemma 1 / 2 / 3; and a GGUF's "llama" vocabulary, as llama.cpp encodes
 * it).
 *
 * Construction, one core behind three sources:
 *   bpe_load(PATH)             a tokenizer.json file, or a directory holding tokenizer.json, else
 *                              vocab.json + merges.txt (GPT-2's older pair, <|endoftext|> its
 *                              special token); tokenizer_config.json beside them may name
 *                              bos_token / eos_token, else both are <|endoftext|> when the
 *                              vocabulary has it (GPT-2's defaults; SentencePiece-style: <bos> /
 *                              <eos>, Gemma's, else <s> / </s>);
 *   bpe_load_json(TEXT)        tokenizer.json text in memory;
 *   bpe_from_arrays(SPEC)      GGUF metadata as plain C arrays: tokens, merges, token types and the
 *                              pre-tokenizer name (tokenizer.ggml.pre); for model "llama" the
 *                              scores instead of merges.
 * The decoder says which kind a tokenizer.json is. Byte-level: model BPE (merges as "a b" strings
 * or [a, b] pairs, no byte_fallback, no dropout, no subword prefix/suffix), normalizer none or NFC
 * (alone or in a Sequence: Qwen2's), a pre-tokenizer made of Digits, Split (with GPT-2's,
 * Llama-3's, Qwen2's, GPT-4o's o200k or Mistral's Tekken regex, behavior Isolated) and a final
 * ByteLevel, decoder ByteLevel.
 * SentencePiece-style: model BPE over chars (byte_fallback: a char outside the vocabulary becomes
 * its <0xNN> tokens, or [UNK] when one is missing; fuse_unk; unk_token), normalizer
 * Sequence[Prepend("▁"), Replace(" ", "▁")] (Llama 2's; Prepend acts on each piece between added
 * tokens), Replace(" ", "▁") alone (Gemma's) or none, pre-tokenizer none, Metaspace("▁",
 * prepend_scheme always / first / never, split; "first": only the piece that starts the text) or
 * Split(" ", MergedWithPrevious) (Gemma's: a piece ends after each space; after its Replace there
 * is none), decoder Sequence[Replace("▁", " "), ByteFallback, Fuse] with or without a final
 * Strip(" ", n, 0), or Metaspace. Both: post-processor none, ByteLevel,
 * TemplateProcessing or a Sequence of those. Anything else is refused with a message naming it.
 * Merges naming tokens outside the vocabulary are errors, as in `tokenizers`.
 *
 * Pre-tokenizer names of bpe_from_arrays, as llama.cpp reads them:
 *   "gpt-2" (and "default")        ByteLevel with GPT-2's regex;
 *   "llama-bpe", "llama3", "llama-v3"   Split on Llama-3's regex + ByteLevel, ignore_merges;
 *   "qwen2"                        Split on Qwen2's regex + ByteLevel, no normalizer: what
 *                                  transformers' GGUF reader (5.24) and llama.cpp build, so NFC
 *                                  is left out (text already NFC encodes as Qwen2's own);
 *   "gpt-4o", "llama4"             Split on GPT-4o's regex + ByteLevel (Phi-4-mini's
 *                                  tokenizer.json); bpe_to_arrays writes "gpt-4o";
 *   "tekken"                       Split on Tekken's regex + ByteLevel, ignore_merges (as
 *                                  llama.cpp reads it and Mistral-Nemo's tokenizer.json has it);
 *   "smollm"                       Digits(individual_digits) + ByteLevel with GPT-2's regex, as
 *                                  SmolLM2's own tokenizer.json. transformers' GGUF conversion
 * (5.24) leaves the Digits step out, i.e. reads "smollm" as "gpt-2"; the two differ only where
 * whitespace precedes a digit. bpe_to_arrays names Qwen2's tokenizer.json "qwen2", dropping its
 * NFC, which GGUF has no key for. Tokens of type CONTROL become special added tokens and
 * USER_DEFINED ones plain added tokens, as transformers does (a token outside the byte alphabet is
 * respelled byte by byte).
 *
 * GGUF "llama" (SentencePiece) is read as llama.cpp's llm_tokenizer_spm encodes it: the added
 * tokens (CONTROL, UNKNOWN: special; USER_DEFINED) cut out of the text (leftmost-longest, as
 * `tokenizers` does; llama.cpp cuts the longest token's occurrences first, which differs only where
 * an added token overlaps a longer one that starts after it), " " put before every piece
 * between them (add_space_prefix, default true) and " " -> "▁", chars outside the vocabulary as
 * <0xNN>, then any two neighbours whose text is a token merge, the highest score first, leftmost on
 * ties (as rules: every cut of a token into two tokens, ranked by the token's score). BOS is added
 * unless add_bos_token says otherwise; decoding is LlamaTokenizer's. transformers' GGUF reader
 * (5.24) differs: it uses Metaspace(prepend_scheme "first"), so it puts no "▁" before text after a
 * special token, and none before text that starts with a space ("  a": llama.cpp "▁▁▁a",
 * transformers "▁▁a"). llama.cpp would also merge into a token whose char is not a token by
 * itself; SentencePiece vocabularies have none. bpe_to_arrays writes a SentencePiece-style
 * tokenizer as "llama": tokens, scores minus the rank of the first rule making each token (tokens
 * no rule makes score below all of them), types BYTE / UNKNOWN / CONTROL (special added tokens) /
 * USER_DEFINED (the other added tokens, which llama.cpp also cuts out of the text first) / NORMAL,
 * add_space_prefix from Prepend or Metaspace; a Metaspace "first" tokenizer then encodes as
 * llama.cpp does, and so does Gemma's (its user-defined pieces kept as they are spelled, where
 * llama.cpp's converter writes their "▁" as " ": the two differ only on text with a "▁").
 *
 * Encoding runs the `tokenizers` pipeline (AddedVocabulary::extract_and_normalize): the added
 * tokens with normalized=false are cut out of the raw text (leftmost-longest; lstrip and rstrip
 * swallow neighbouring whitespace), each piece between them is normalized (NFC, normalize.h) and
 * the tokens with normalized=true are cut out of it, matched as NFC spells them; then each
 * remaining piece is pre-tokenized (Digits, regex split, ByteLevel with add_prefix_space), each
 * word mapped to the byte alphabet and merged by rank (a hash of pairs -> rank and merged id, the
 * same priority queue as `tokenizers`). Unicode classes and NFC data follow `tokenizers`
 * (scripts/gen-unicode-tables.py).
 * Decoding maps tokens back to bytes (ByteLevel decoder) and replaces invalid UTF-8 by U+FFFD
 * as Rust's from_utf8_lossy does; decode(encode(x)) == x for any valid UTF-8 x (with NFC: NFC(x)).
 * SentencePiece-style: each "▁" is a space, a run of <0xNN> tokens its bytes when they are valid
 * UTF-8 and else one U+FFFD per byte (ByteFallback), then Strip removes the text's leading space.
 * A Bpe is read-only after construction: one may be shared by many threads. */
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loraft/error.h"
#include "loraft/tokenizer.h" /* IdList */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct Bpe Bpe;

/* GGUF's token types (tokenizer.ggml.token_type). */
enum {
    BPE_TOKEN_NORMAL = 1,
    BPE_TOKEN_UNKNOWN = 2,
    BPE_TOKEN_CONTROL = 3,
    BPE_TOKEN_USER_DEFINED = 4,
    BPE_TOKEN_UNUSED = 5,
    BPE_TOKEN_BYTE = 6
};

/* GGUF tokenizer metadata. Strings need not be NUL-terminated when their lengths are given
 * (a NULL lengths array means NUL-terminated strings); merges are "a b". */
typedef struct BpeArrays {
    const char *const *tokens;
    const size_t *token_lens; /* may be NULL */
    int32_t n_tokens;
    const char *const *merges;
    const size_t *merge_lens; /* may be NULL */
    int32_t n_merges;
    const int32_t *token_types; /* [n_tokens], may be NULL (all normal) */
    const char *pre;            /* tokenizer.ggml.pre; NULL means "gpt-2" */
    int32_t bos_id, eos_id;     /* -1 when none */
    int add_bos, add_eos;       /* what bpe_encode(add_special = 1) adds */
    /* SentencePiece vocabularies (tokenizer.ggml.model "llama"); zero for byte-level BPE: */
    const char *model;   /* tokenizer.ggml.model: NULL or "gpt2", or "llama" */
    const float *scores; /* [n_tokens] tokenizer.ggml.scores ("llama": needed) */
    int no_space_prefix; /* tokenizer.ggml.add_space_prefix is false */
    int32_t unk_id;      /* bpe_to_arrays: the UNKNOWN token, -1 when none (read: by type) */
} BpeArrays;

int bpe_load(Bpe **out, const char *path, LfError *err);
/* name is used in error messages only. */
int bpe_load_json(Bpe **out, const char *json, size_t len, const char *name, LfError *err);
int bpe_from_arrays(Bpe **out, const BpeArrays *spec, LfError *err);
/* The reverse, for writing a GGUF file's tokenizer.ggml.* keys: tokens in id order (added
 * tokens by their content; "" for an unused id), CONTROL for special tokens and NORMAL for the
 * rest (SentencePiece-style: USER_DEFINED for the other added tokens), the merges in rank order
 * ("a b"), the pre-tokenizer's GGUF name, BOS / EOS and whether
 * encoding adds them. Token strings point into t; the types, merges and pointer arrays into
 * *mem, which the caller frees. Fails when t's pre-tokenizer has no GGUF name. */
int bpe_to_arrays(const Bpe *t, BpeArrays *a, void **mem, LfError *err);
void bpe_free(Bpe *t);

/* Appends the ids of text[0..len) to ids; with add_special, the post-processor's tokens too
 * (TemplateProcessing's BOS, or GGUF's add_bos/add_eos). Invalid UTF-8 is an error naming the
 * byte offset; ids is then left as it was. */
int bpe_encode(const Bpe *t, const char *text, size_t len, int add_special, IdList *ids,
               LfError *err);

/* The text of ids[0..n): *text is malloc'd and NUL-terminated, *len excludes the NUL. Ids outside
 * the vocabulary are left out, as are special tokens when skip_special. */
int bpe_decode(const Bpe *t, const int32_t *ids, size_t n, int skip_special, char **text,
               size_t *len, LfError *err);

/* The bytes one token decodes to (for streaming: they may end inside a UTF-8 character); NULL
 * when id is outside the vocabulary. SentencePiece-style: a <0xNN> token is its byte and "▁" a
 * space; the decoder's strip of the text's first space is not applied (a stream that starts a text
 * shows it; a continuation after a prompt wants it), nor the Metaspace decoder's first-token rule.
 */
const char *bpe_token_bytes(const Bpe *t, int32_t id, size_t *len);

int bpe_vocab_size(const Bpe *t); /* largest id + 1 */
/* Id -> token as the vocabulary spells it ("Ġthe"), an added token with normalized=true as the
 * normalizer spells it (id_to_token of `tokenizers`; bpe_decode gives its bytes). */
const char *bpe_token(const Bpe *t, int32_t id);
/* Token -> id: added tokens first, by their content as written; -1 when absent. */
int32_t bpe_lookup(const Bpe *t, const char *token);
int bpe_is_special(const Bpe *t, int32_t id);
int32_t bpe_bos(const Bpe *t); /* -1 when none */
int32_t bpe_eos(const Bpe *t); /* -1 when none */
int bpe_nfc(const Bpe *t);     /* 1 when its normalizer is NFC (the text it encodes is NFC's) */

#ifdef __cplusplus
}
#endif
