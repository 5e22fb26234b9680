/* sft_data.h: the data side of supervised fine-tuning (model.task "sft"): instruction/answer
 * pairs rendered into token rows whose labels are the answer only. SFT is a data layout over the
 * causal-LM objective: the rows go into an LmSet with per-token labels (lm_data.h), the same
 * LmLoader batches them, and causal_lm.c's shifted cross-entropy ignores the -100 labels, so the
 * loss is the mean over answer tokens (TRL's SFTTrainer with completion-only loss).
 *
 * Records (JSONL, one per line): either instruction / input / output fields (Dolly, Alpaca;
 * input may be absent or empty) or a messages field, [{"role", "content"}, ...] whose last
 * message is the assistant's answer (the earlier ones, system / user / assistant, are the
 * prompt). Field names are configurable (SftColumns); a record with a messages field is read as
 * messages, any other as instruction / output. A "\u0000" ends the string it is in (cJSON's
 * strings are NUL-terminated), unlike corpus texts, which keep it.
 *
 * Rendering, with a chat template (chat.h): the messages, or [user, assistant] with the user
 * turn instruction, plus "\n\n" + input when input is not empty, and the assistant turn output.
 * The ids are those of the rendered conversation tokenized without added special tokens, as
 * transformers' apply_chat_template(messages, tokenize=True) gives them. The prompt is the
 * rendering of the messages before the answer with the generation prompt (chat.h: a prefix of
 * the whole); the answer starts at the first token that does not end inside the prompt's bytes
 * (under an NFC normalizer, the bytes of NFC's text, as tokenizers' offsets map them back).
 * With a prompt template instead (base models): the text with {instruction}, {input}, {output}
 * replaced (other braces stay as they are), the tokenizer's own special tokens around it (as
 * tokenizer(text): BOS for Llama-style tokenizers), the prompt being the text before {output}.
 *
 * Labels: -100 on the prompt; the answer's ids up to and including the first stop id (EOS or
 * the template's end-of-turn token, GenStops of generate.h: ChatML's <|im_end|>, Llama-3's
 * <|eot_id|>); -100 after it (ChatML's "\n"). When the answer holds no stop id (the plain chat
 * template, prompt templates) the EOS is appended and trained on, so that generation stops.
 * Rows are right-truncated at max_length; an example with no answer token left (its prompt
 * fills max_length) is skipped and counted.
 *
 * Packing (optional, training): examples are laid into rows of at most max_length tokens in
 * file order, a new row starting when the next example does not fit. Each keeps its own
 * labels, so no token is trained to predict the next example (its first token is a prompt
 * token, -100); but attention is causal over the whole row, so an example attends to the
 * examples before it in its row and its positions continue theirs (Hugging Face's default
 * packing, without position resets or a block-diagonal mask).
 *
 * Holding out: the last `holdout` examples of the file (SftSource.part, as LmPart). */
#pragma once
#include <stdint.h>

#include "loraft/chat.h"
#include "loraft/generate.h"
#include "loraft/lm_data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct SftColumns {
    const char *instruction, *input, *output, *messages; /* NULL: the names above */
} SftColumns;

typedef struct SftSource {
    const char *path; /* JSONL */
    SftColumns columns;
    int holdout; /* the last N records are the held-out part; 0: none */
    LmPart part; /* ALL, or TRAIN / HELDOUT with holdout > 0 */
    int limit;   /* only the first N records of the part; 0: all */
} SftSource;

/* How an example becomes tokens. */
typedef struct SftFormat {
    ChatTemplate chat;           /* used when prompt_template is NULL */
    const char *prompt_template; /* "...{instruction}...{input}...{output}..." or NULL */
    GenStops stops;              /* the answer ends at the first of these ids */
    int32_t eos;                 /* appended when it has none; -1: nothing appended */
    LmSpecials specials;         /* prompt templates: the tokenizer's own special tokens */
} SftFormat;

/* A chat template, or a prompt template when prompt_template is not NULL or empty (it must
 * hold {output}, and nothing after {output} may hold {instruction} or {input}). The chat
 * template renders tok's BOS and EOS text where it renders any (chat_template_set_vocab_specials).
 * Stops from the template and tok; eos: the model's EOS (-1: the tokenizer's). tok must be
 * byte-level BPE. */
int sft_format_init(SftFormat *f, const ChatTemplate *chat, const char *prompt_template,
                    const TextTokenizer *tok, int32_t eos, LfError *err);

/* The examples of src as rows: one example per row, or packed into rows of up to max_length.
 * s->n_texts counts the examples read, s->n_skipped those left out, s->n_dropped the tokens
 * cut by truncation; s->token_labels holds the labels. Errors name the file and line: invalid
 * JSON, a missing field, a role other than system / user / assistant, messages that do not end
 * with an assistant turn, a holdout larger than the file, and no example with an answer. */
int sft_load(LmSet *s, const SftSource *src, const TextTokenizer *tok, const SftFormat *f,
             int max_length, int pack, LfError *err);

/* Row i of an unpacked set: its prompt is ids[0..*prompt_len), the first labelled position
 * (the tokens a generation continues). */
const int32_t *sft_row_prompt(const LmSet *s, int i, int *prompt_len);

#ifdef __cplusplus
}
#endif
