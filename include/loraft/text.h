/* text.h: the tokenizer front door. What a path holds decides the kind:
 *   FILE.gguf                        BPE from its tokenizer.ggml.* metadata (tokenizer.ggml.model
 *                                    "gpt2": GPT-2, Llama-3, SmolLM2; "llama": SentencePiece,
 *                                    Llama 2, Mistral, TinyLlama, as llama.cpp encodes it)
 *   DIR with tokenizer.json          BPE (byte-level or SentencePiece-style) or BERT WordPiece, by
 *                                    its model.type
 *   DIR with vocab.json, merges.txt  byte-level BPE (GPT-2's files)
 *   DIR with vocab.txt               BERT WordPiece
 * A tokenizer.json file path works too. The two engines stay what they are (tokenizer.h,
 * bpe.h); this only picks one and gives the CLI and the data code one encode call. Other GGUF
 * tokenizer models (t5, bert, ...) are refused. */
#pragma once
#include <stddef.h>

#include "loraft/bpe.h"
#include "loraft/error.h"
#include "loraft/gguf.h"
#include "loraft/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum TextKind { TEXT_WORDPIECE, TEXT_BPE } TextKind;

typedef struct TextTokenizer {
    TextKind kind;
    Tokenizer *wordpiece; /* TEXT_WORDPIECE */
    Bpe *bpe;             /* TEXT_BPE */
} TextTokenizer;

int text_tokenizer_open(TextTokenizer *t, const char *path, LfError *err);
void text_tokenizer_close(TextTokenizer *t); /* safe on a zeroed or closed t */

/* Appends the ids of text[0..len) to ids, without special tokens ([CLS]/[SEP] or BOS/EOS). */
int text_encode(const TextTokenizer *t, const char *text, size_t len, IdList *ids, LfError *err);

/* The BPE of a GGUF file: tokenizer.ggml.tokens, .merges ("gpt2"), .scores ("llama"),
 * .token_type, .pre, .bos_token_id, .eos_token_id, .add_bos_token (absent: true for "llama", as
 * llama.cpp), .add_eos_token, .add_space_prefix ("llama", absent: true). */
int bpe_from_gguf(Bpe **out, const Gguf *g, LfError *err);

#ifdef __cplusplus
}
#endif
