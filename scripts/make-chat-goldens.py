#!/usr/bin/env python3
"""make-chat-goldens.py: writes tests/golden/chat_templates.json, what transformers'
tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders for a
set of conversations this script writes, for tests/test_chat.c. Run from the repository root:

  scripts/extract-smollm2-tokenizer.sh models/smollm2-tokenizer   # SmolLM2's tokenizer, from its GGUF
  $(scripts/setup-python.sh --python) scripts/make-chat-goldens.py [SMOLLM2_DIR]

Templates (the JSON's "templates": name -> Jinja text, which test_chat.c also detects):
  smollm2  SmolLM2-Instruct's own template, as the tokenizer in SMOLLM2_DIR (default
           models/smollm2-tokenizer) carries it: ChatML with a default system turn
  chatml   the common ChatML template (SmolLM v1, Hermes, transformers' docs), given below
  qwen2    Qwen1.5-Chat's and Qwen2-Instruct's template, given below: SmolLM2's with another
           default system turn
  qwen2.5  Qwen2.5-Instruct's template (tools and tool calls, which loraft does not render),
           given below
  llama3   Meta-Llama-3-8B-Instruct's template, given below; rendered with
           bos_token="<|begin_of_text|>" (it puts BOS in the text)
  plain    loraft's template for base models (src/chat.c), written as Jinja below
transformers refuses an empty conversation, and so does chat_render. Every template renders every
conversation with and without the generation prompt; "cases" holds
{"template", "messages", "add_generation_prompt", "rendered"}.
"""
import json
import os
import sys

from transformers import AutoTokenizer

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
QWEN2 = (  # Qwen1.5-Chat's and Qwen2-Instruct's: SmolLM2's shape, another system turn
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Qwen2.5-Instruct's (0.5B to 72B), as its tokenizer_config.json carries it
QWEN25 = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}
    {%- else %}
        {{- '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\n<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- message.content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}
"""
PLAIN = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\n\n' }}{% else %}"
    "{{ 'Assistant: ' + message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def conversations():
    s, u, a = "system", "user", "assistant"
    convs = [
        [(u, "Hello!")],
        [(s, "You are terse."), (u, "What is 2+2?")],
        [(u, "Hi"), (a, "Hello! How can I help?"), (u, "Tell me a joke.")],
        [(s, "Réponds en français.\nSois bref."), (u, "Quelle heure est-il ?\n\nMerci 🙂"),
         (a, "Il est midi.\n— 正午です"), (u, "Et à Tōkyō ?")],
        [(u, "  padded on both sides \n\n"), (a, "\tanswer with a tab\n")],
        [(u, "\u3000ideographic space\u00a0and nbsp\u2003"), (a, "\u200bzero width is not space\u200b")],
        [(u, "\x1c\x1d\x1e\x1f\x85 separators count as space in Python \x0b\x0c\r")],
        [(u, "")],
        [(a, "An assistant turn alone.")],
        [(u, "A user turn before"), (s, "a system turn in the middle")],
        [(u, "<|im_start|> and <|eot_id|> inside content stay text")],
    ]
    return [[{"role": r, "content": c} for r, c in conv] for conv in convs]


def main():
    smol_dir = sys.argv[1] if len(sys.argv) > 1 else "models/smollm2-tokenizer"
    tok = AutoTokenizer.from_pretrained(smol_dir)
    templates = {"smollm2": tok.chat_template, "chatml": CHATML, "qwen2": QWEN2, "qwen2.5": QWEN25,
                 "llama3": LLAMA3, "plain": PLAIN}
    extra = {"llama3": {"bos_token": "<|begin_of_text|>"}}
    cases = []
    for name, template in templates.items():
        for messages in conversations():
            for gen in (False, True):
                rendered = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                   add_generation_prompt=gen, **extra.get(name, {}))
                cases.append({"template": name, "messages": messages,
                              "add_generation_prompt": gen, "rendered": rendered})
    out = "tests/golden/chat_templates.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"templates": templates, "cases": cases}, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"{out}: {len(cases)} renderings of {len(templates)} templates")


if __name__ == "__main__":
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    main()
