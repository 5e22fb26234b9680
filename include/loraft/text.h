/* text.h: the tokenizer front door. What a path holds decides the kind:
 *   FILE.gguf                        byte-level BPE from its tokenizer.ggml.* metadata
 *                                    (tokenizer.ggml.model "gpt2": GPT-2, Llama-3, SmolLM2)
 *   DIR with tokenizer.json          byte-level BPE or BERT WordPiece, by its model.type
 *   DIR with vocab.json, merges.txt  byte-level BPE (GPT-2's files)
 *   DIR with vocab.txt               BERT WordPiece
 * A tokenizer.json file path works too. The two engines stay what they are (tokenizer.h,
 * bpe.h); this only picks one and gives the CLI and the data code one encode call. Not a
 * SentencePiece reader: GGUF files with tokenizer.ggml.model "llama" are refused. */
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

/* The byte-level BPE of a GGUF file: tokenizer.ggml.tokens, .merges, .token_type, .pre,
 * .bos_token_id, .eos_token_id, .add_bos_token, .add_eos_token. */
int bpe_from_gguf(Bpe **out, const Gguf *g, LfError *err);

#ifdef __cplusplus
}
#endif
