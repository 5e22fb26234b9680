/* chat.h: chat templates, rendered byte for byte as transformers'
 * tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders
 * the Jinja templates they stand for (tests/golden/chat_templates.json, from
 * scripts/make-chat-goldens.py). Not a Jinja engine: a model's template text (chat_template of
 * tokenizer_config.json or chat_template.jinja, GGUF tokenizer.chat_template) is recognised
 * by comparison with the known texts below and mapped to a built-in renderer; anything else is
 * an error naming the built-in templates, which the user can pick by name instead.
 *
 * The built-in templates, by name:
 *   chatml   "<|im_start|>" role "\n" content "<|im_end|>\n" per message; generation prompt
 *            "<|im_start|>assistant\n". Recognised: the common ChatML template (SmolLM v1,
 *            Hermes, transformers' documentation).
 *   smollm2  chatml, plus "<|im_start|>system\nYou are a helpful AI assistant named SmolLM,
 *            trained by Hugging Face<|im_end|>\n" first when the first message is not a system
 *            turn. Recognised: SmolLM2-Instruct's template (135M, 360M, 1.7B).
 *   qwen2    chatml, plus "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n" first
 *            when the first message is not a system turn. Recognised: Qwen1.5-Chat's and
 *            Qwen2-Instruct's template.
 *   qwen2.5  the same with "You are Qwen, created by Alibaba Cloud. You are a helpful
 *            assistant." as the default system turn. Recognised: Qwen2.5-Instruct's template,
 *            which renders the same for these roles (its tools and tool calls are not rendered:
 *            roles are system, user and assistant only).
 *   llama3   "<|begin_of_text|>" (BOS is part of the rendered text: tokenize it without adding
 *            special tokens, as apply_chat_template(tokenize=True) does), then per message
 *            "<|start_header_id|>" role "<|end_header_id|>\n\n" content "<|eot_id|>", the
 *            content stripped of leading and trailing whitespace as Python's str.strip() (Jinja's
 *            trim); generation prompt "<|start_header_id|>assistant<|end_header_id|>\n\n".
 *            Recognised: Meta-Llama-3-8B/70B-Instruct's template (with the add_generation_prompt
 *            test).
 *   llama3.1 "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge
 *            Date: December 2023\nToday Date: " date "\n\n", then the first message's content
 *            when it is a system turn (stripped), "<|eot_id|>"; then the other messages as llama3
 *            renders them; generation prompt llama3's. date is "26 Jul 2024" (ChatTemplate.date).
 *            Recognised: Llama-3.1-8B/70B/405B-Instruct's and Llama-3.3-70B-Instruct's template
 *            (one text), which renders so without tools. Stops also at "<|eom_id|>".
 *   llama3.2 the same, dated today as transformers' strftime_now("%d %b %Y") dates it (local
 *            time) unless ChatTemplate.date is set. Recognised: Llama-3.2-1B/3B-Instruct's.
 *   qwen3    ChatML without a default system turn, as Qwen3's template renders system, user and
 *            assistant turns: an assistant turn before the last user turn loses its reasoning
 *            (the text up to its last "</think>", then leading newlines); one after it renders
 *            "<think>\n" reasoning "\n</think>\n\n" answer when it is the last message or has
 *            reasoning (from "<think>" .. "</think>" in its content, newlines trimmed), so the
 *            answer SFT trains on begins "<think>\n\n</think>\n\n". Generation prompt
 *            "<|im_start|>assistant\n" (thinking enabled: the model writes its own think block).
 *            Recognised: Qwen3-0.6B ... 32B's template. Two assistant turns in a row at the end
 *            break the prefix property below (the first renders as last in the prompt): SFT
 *            refuses such an example with "not a prefix".
 *   qwen3-nothink  qwen3 with thinking disabled (transformers' apply_chat_template(...,
 *            enable_thinking=False)): the generation prompt closes an empty think block,
 *            "<|im_start|>assistant\n<think>\n\n</think>\n\n", so SFT's answer is the text after
 *            it and generation answers without thinking. Qwen3's Jinja is recognised as qwen3;
 *            this one is picked by name. An answer with reasoning of its own breaks the prefix
 *            property (SFT refuses it).
 *   smollm3  SmolLM3's: always a system turn, "<|im_start|>system\n## Metadata\n\nKnowledge Cutoff
 *            Date: June 2025\nToday Date: " date "\nReasoning Mode: " mode ("/think" or
 *            "/no_think") "\n\n## Custom Instructions\n\n" instructions "\n\n", left open (no
 *            <|im_end|>: the template closes it only after tools). The instructions are the first
 *            message's content when it is a system turn, every "/no_think" then every "/think"
 *            removed and trailing whitespace stripped (Python's replace() and rstrip()); when that
 *            leaves nothing, SmolLM3's default ("You are a helpful AI assistant named SmolLM,
 *            trained by Hugging Face.", with reasoning followed by a paragraph on how to reason).
 *            "/no_think" in that message (else "/think") sets the mode, else the template's
 *            enable_thinking (true). With "/system_override" in it the turn is the instructions
 *            alone, that flag removed too, + "<|im_end|>\n". Then user turns as chatml's, system
 *            turns none, answers "<|im_start|>assistant\n" (without reasoning +
 *            "<think>\n\n</think>\n") + content without leading newlines + "<|im_end|>\n";
 *            generation prompt that answer head. date is "08 July 2025", SmolLM3's release day,
 *            where the template writes today's (its strftime_now("%d %B %Y")), so that SFT data
 *            does not change from day to day (ChatTemplate.date; NULL: today's). Recognised:
 *            SmolLM3-3B's template as it shipped (its tools are not rendered; Unsloth's edit, which
 *            llama.cpp carries, renders otherwise and is not recognised).
 *   smollm3-nothink  smollm3 with enable_thinking false: "/no_think" unless the system message
 *            says "/think". Picked by name.
 *   llama2   Llama-2-chat's [INST] format: per user turn BOS "[INST] " content " [/INST]", per
 *            assistant turn " " content " " EOS, contents stripped as Python's str.strip(); a
 *            first system turn becomes "<<SYS>>\n" content "\n<</SYS>>\n\n" at the head of the
 *            first user turn (that whole text stripped). No generation prompt. The turns after it
 *            must alternate user, assistant, ..., else the template's error "Conversation roles
 *            must alternate user/assistant/user/assistant/..."; a later system turn that the
 *            alternation lets through (at an odd place) renders nothing, as in the template.
 *            Recognised: Llama-2-7b/13b/70b-chat-hf's template.
 *   mistral  BOS, then per user turn " [INST] " content " [/INST]" (a first system turn's content
 *            + "\n\n" put before the first user turn's), per assistant turn " " content EOS; no
 *            generation prompt. Roles that do not alternate after the optional system turn, and a
 *            later system turn, are the template's errors ("After the optional system message,
 *            conversation roles must alternate user/assistant/user/assistant/...", "Only user and
 *            assistant roles are supported, with the exception of an initial optional system
 *            message!"). Recognised: Mistral-7B-Instruct-v0.2's and Mixtral-8x7B-Instruct-v0.1's
 *            template since Mistral's 2024 update ("v1" with a system prompt).
 *   mistral-v0.3  BOS, "[INST] " content "[/INST]" per user turn, " " stripped content EOS per
 *            assistant turn; a first system turn's content + "\n\n" goes into the last message
 *            when that is a user turn, and the template drops it otherwise, which would break the
 *            prefix property below: loraft refuses a system turn in a conversation that does not
 *            end with a user turn (so SFT refuses system prompts with it), rather than drop it.
 *            The same errors as mistral, the alternation of all turns checked first. Recognised:
 *            Mistral-7B-Instruct-v0.3's "v3" template (also Mistral-Large-Instruct-2407's), which
 *            renders so without tools (its tools and tool calls are not rendered).
 *   mistral-nemo  mistral-v0.3's without its spaces: "[INST]" content "[/INST]" per user turn,
 *            content (not stripped) EOS per assistant turn; the same system turn, refusal and
 *            errors. Recognised: Mistral-Nemo-Instruct-2407's "v3-tekken" template (its tools and
 *            tool calls are not rendered).
 *   mistral-legacy  BOS, "[INST] " content " [/INST]" per user turn, content EOS per assistant
 *            turn, no system turn ("Conversation roles must alternate user/assistant/user/
 *            assistant/..." for one first, "Only user and assistant roles are supported!" later).
 *            Recognised: the template Mistral-7B-Instruct-v0.2 and Mixtral-8x7B-Instruct-v0.1
 *            first shipped (GGUF files converted before 2024's update carry it).
 *   zephyr   "<|" role "|>\n" content EOS "\n" per message; generation prompt "<|assistant|>\n".
 *            Recognised: zephyr-7b-beta's and TinyLlama-1.1B-Chat-v1.0's template (the same).
 *   gemma    BOS ("<bos>"), then per turn "<start_of_turn>" role "\n" content "<end_of_turn>\n",
 *            the role "assistant" written "model", contents stripped as Python's str.strip(); a
 *            first system turn's content (not stripped) + "\n\n" goes at the head of the next
 *            turn's. Generation prompt "<start_of_turn>model\n"; stop "<end_of_turn>". The turns
 *            after the optional system turn must alternate user, assistant, ... ("Conversation
 *            roles must alternate user/assistant/user/assistant/..."); a later system turn at an
 *            odd place renders as a turn of role system, as in the template. Recognised: Gemma
 *            3's template (gemma-3-270m-it to gemma-3-27b-it), whose image and list contents are
 *            not rendered (contents are strings).
 *   gemma2   the same without a system turn: a first one is the template's error "System role
 *            not supported". Recognised: Gemma 2's template (gemma-2-*-it), which gemma-7b-it,
 *            gemma-2b-it and the gemma-1.1 ones carry too.
 *   phi3     "<|" role "|>\n" content "<|end|>\n" per message, a system turn with empty content
 *            none; generation prompt "<|assistant|>\n", else EOS ("<|endoftext|>") ends the
 *            conversation; stop "<|end|>". Recognised: Phi-3.5-mini-instruct's template.
 *   phi4-mini  "<|" role "|>" content "<|end|>" per message (no newlines, an empty system turn
 *            too); generation prompt "<|assistant|>", else EOS ("<|endoftext|>") ends the
 *            conversation; stop "<|end|>". Recognised: Phi-4-mini-instruct's template, which
 *            renders so without tools (a system message's "tools" are not rendered).
 *   plain    for base models, loraft's own: a system turn is its content + "\n\n", a user turn
 *            "User: " content "\n\n", an assistant turn "Assistant: " content "\n\n"; generation
 *            prompt "Assistant:" (the answer's leading space is then the model's first token,
 *            as BPE vocabularies prefer). As Jinja (also recognised):
 *              {% for message in messages %}{% if message['role'] == 'system' %}{{
 *              message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}{{ 'User: ' +
 *              message['content'] + '\n\n' }}{% else %}{{ 'Assistant: ' + message['content'] +
 *              '\n\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:'
 *              }}{% endif %}
 *
 * llama2 and the mistrals render the tokenizer's BOS and EOS text (transformers' bos_token /
 * eos_token), zephyr, phi3 and phi4-mini its EOS, gemma and gemma2 its BOS: "<s>", "</s>",
 * "<|endoftext|>" and "<bos>", their models' own, unless chat_template_set_specials gives another
 * tokenizer's (SFT, `loraft generate` and `loraft score` pass the model's). BOS is then part of
 * the rendered text, as llama3's "<|begin_of_text|>" is: tokenize it without adding special
 * tokens (else BOS comes twice). The turns of those that render EOS end with it, which is their
 * stop, but for phi3's and phi4-mini's. Not recognised: Mistral-7B-Instruct-v0.1's first template
 * (EOS + " " after each answer), Mistral's v7 [INST] template, Phi-3-mini's and Phi-3-small's /
 * -medium's, Llama-2-chat fine-tunes' own templates.
 *
 * Like the Jinja templates, rendering puts messages in the order given (a system turn may come
 * anywhere) and does not check that roles alternate, except where a template raises an error
 * (llama2, the mistrals and the gemmas: chat_render fails with the template's own message, as
 * transformers would). For every template, render(msgs[0..n-1), add_generation_prompt = 1) is a
 * prefix of render(msgs[0..n), 0) when msgs[n-1] is an assistant turn: the rest is the answer and
 * its end of turn, which is what SFT trains on (mistral-v0.3 and mistral-nemo refuse what would
 * break it, above).
 */
#pragma once
#include <stddef.h>

#include "loraft/error.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ChatFormat {
    CHAT_FORMAT_CHATML,
    CHAT_FORMAT_LLAMA3,
    CHAT_FORMAT_LLAMA31,
    CHAT_FORMAT_QWEN3,
    CHAT_FORMAT_QWEN3_NO_THINKING,
    CHAT_FORMAT_SMOLLM3,
    CHAT_FORMAT_SMOLLM3_NO_THINKING,
    CHAT_FORMAT_LLAMA2,
    CHAT_FORMAT_MISTRAL,
    CHAT_FORMAT_MISTRAL_V3,
    CHAT_FORMAT_MISTRAL_LEGACY,
    CHAT_FORMAT_MISTRAL_NEMO,
    CHAT_FORMAT_ZEPHYR,
    CHAT_FORMAT_GEMMA,
    CHAT_FORMAT_GEMMA2,
    CHAT_FORMAT_PHI3,
    CHAT_FORMAT_PHI4_MINI,
    CHAT_FORMAT_PLAIN
} ChatFormat;

enum { CHAT_MAX_STOPS = 3 };

typedef struct ChatTemplate {
    const char *name; /* "chatml", "smollm2", ..., "plain": the list above */
    ChatFormat format;
    const char *default_system; /* rendered when the first message is not a system turn; or NULL */
    /* End-of-turn strings generation stops at, besides the tokenizer's EOS; NULL-terminated.
     * chatml, smollm2, qwen2, qwen2.5, qwen3*, smollm3*: "<|im_end|>"; llama3: "<|eot_id|>",
     * "<|end_of_text|>" (each one special token), llama3.1 / 3.2 "<|eom_id|>" too; llama2,
     * mistral*, zephyr: the EOS text, "</s>" (their turns end with EOS); gemma, gemma2:
     * "<end_of_turn>"; phi3, phi4-mini: "<|end|>"; plain: "\nUser:" (text: match it in the decoded
     * continuation and cut it off). */
    const char *stops[CHAT_MAX_STOPS + 1];
    /* llama3.1 / 3.2, smollm3*: the system turn's "Today Date" ("26 Jul 2024", NULL, "08 July
     * 2025"); NULL: today's */
    const char *date;
    /* The BOS and EOS text they render (llama2, mistral*: both; zephyr: EOS; gemma, gemma2: BOS,
     * "<bos>"; phi3, phi4-mini: EOS, "<|endoftext|>"); NULL: "<s>", "</s>" */
    const char *bos, *eos;
} ChatTemplate;

typedef struct ChatMessage {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ChatMessage;

/* The built-in template of that name; an unknown name is an error listing the names. */
int chat_template_by_name(const char *name, ChatTemplate *out, LfError *err);

/* The built-in template a model's Jinja chat template stands for. The comparison ignores only
 * what cannot change the output: the escape "\n" versus a newline character inside the Jinja
 * text, and one trailing newline (Jinja drops it). NULL or empty jinja (a model without a chat
 * template) and unrecognised templates are errors that name the built-in templates. */
int chat_template_detect(const char *jinja, ChatTemplate *out, LfError *err);

/* Gives the templates that render BOS / EOS text (llama2, mistral*: both; zephyr: EOS; gemma,
 * gemma2: BOS) the tokenizer's: bos_token / eos_token as transformers passes them, e.g. "<s>" and
 * "</s>"; NULL keeps the default. The EOS text also becomes the stop string of those that render
 * it. Other templates, and what a template does not render, are left as they are. The strings
 * must outlive t (the tokenizer's vocabulary). */
void chat_template_set_specials(ChatTemplate *t, const char *bos, const char *eos);
/* chat_template_set_specials with the BOS and EOS tokens of a BPE vocabulary (either absent: the
 * default). */
typedef struct Bpe Bpe;
void chat_template_set_vocab_specials(ChatTemplate *t, const Bpe *bpe);

/* A comma-separated list of the built-in names, for usage messages: "chatml, smollm2, ...". */
const char *chat_template_names(void);

/* Renders msgs[0..n) (n >= 1, as transformers refuses an empty conversation) into a new
 * NUL-terminated string *out (caller frees) of *len bytes. Roles other than system, user and
 * assistant, and NULL contents, are errors; so are the conversations a template raises an error
 * on (the message names the template and the message, then quotes the template's own error). */
int chat_render(const ChatTemplate *t, const ChatMessage *msgs, int n, int add_generation_prompt,
                char **out, size_t *len, LfError *err);

#ifdef __cplusplus
}
#endif
