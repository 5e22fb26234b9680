#!/usr/bin/env python3
"""make-chat-goldens.py: writes tests/golden/chat_templates.json, what transformers'
tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders for a
set of conversations this script writes, for tests/test_chat.c. Run from the repository root:

  scripts/extract-smollm2-tokenizer.sh models/smollm2-tokenizer   # SmolLM2's tokenizer, from its GGUF
  $(scripts/setup-python.sh --python) scripts/make-chat-goldens.py [SMOLLM2_DIR [LLAMA_CPP_SRC]]

The models' own templates of Qwen2.5, Qwen3 and Llama 3.1 to 3.3 are read from llama.cpp's
models/templates (copies of their tokenizer_config.json's chat_template), Mistral's from
llama.cpp's tests/test-chat-template.cpp (entries by name, C string literals decoded), in
LLAMA_CPP_SRC or, by default, in the llama-cpp-python 0.3.36 source package from PyPI
(downloaded once into ~/.cache/loraft/llama-cpp-python; only those files are extracted).

Templates (the JSON's "templates": name -> Jinja text, which test_chat.c also detects):
  smollm2  SmolLM2-Instruct's own template, as the tokenizer in SMOLLM2_DIR (default
           models/smollm2-tokenizer) carries it: ChatML with a default system turn
  chatml   the common ChatML template (SmolLM v1, Hermes, transformers' docs), given below
  qwen2    Qwen1.5-Chat's and Qwen2-Instruct's template, given below: SmolLM2's with another
           default system turn
  qwen2.5  Qwen2.5-Instruct's template (tools and tool calls, which loraft does not render):
           Qwen-Qwen2.5-7B-Instruct.jinja
  qwen3    Qwen3's (0.6B to 32B): Qwen-Qwen3-0.6B.jinja; also rendered with
           enable_thinking=False as the cases of "qwen3-nothink" (the same Jinja, picked by name)
  smollm3  SmolLM3-3B's template, given below (SMOLLM3): a metadata system turn dated today by
           strftime_now, which this script fixes at SMOLLM3_DATE (loraft's default date for it),
           /think and /no_think in the system message; also rendered with enable_thinking=False
           as the cases of "smollm3-nothink" (picked by name); both also over
           smollm3_conversations(), which try its system message
  llama3.1 Llama-3.1-8B-Instruct's, the same text as Llama-3.3-70B-Instruct's:
           meta-llama-Llama-3.1-8B-Instruct.jinja; rendered with bos_token as llama3
  llama3.2 Llama-3.2-3B-Instruct's: meta-llama-Llama-3.2-3B-Instruct.jinja; rendered with
           date_string="09 Mar 2031" (else transformers' strftime_now dates it today), which the
           case records as "date"
  llama3   Meta-Llama-3-8B-Instruct's template, given below; rendered with
           bos_token="<|begin_of_text|>" (it puts BOS in the text)
  llama2   Llama-2-7b/13b/70b-chat-hf's template, given below (LLAMA2)
  mistral  Mistral-7B-Instruct-v0.2's (and Mixtral-8x7B-Instruct-v0.1's) template since Mistral's
           2024 update, "v1" with a system prompt: test-chat-template.cpp's entry
           "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)"
  mistral-legacy
           the template Mistral-7B-Instruct-v0.2 and Mixtral-8x7B-Instruct-v0.1 first shipped
           (and GGUF files converted then carry): the entry "mistralai/Mistral-7B-Instruct-v0.2
           (NOTE: Old pre-v1 without a system prompt)"
  mistral-v0.3
           Mistral-7B-Instruct-v0.3's "v3" template (tools and tool calls, which loraft does not
           render): the entry "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to
           have system prompt at start)"
  mistral-nemo
           Mistral-Nemo-Instruct-2407's "v3-tekken" template (tools and tool calls, which loraft
           does not render): mistralai-Mistral-Nemo-Instruct-2407.jinja, the same text as the
           test entry "Mistral-Nemo-Instruct-2407 (mistralai 'v3-tekken' template; ...)"
  zephyr   zephyr-7b-beta's and TinyLlama-1.1B-Chat-v1.0's template, given below (ZEPHYR)
  gemma    Gemma 3's instruct template (gemma-3-270m-it to gemma-3-27b-it), given below (GEMMA3):
           a first system turn's content + "\n\n" at the head of the first user turn
  gemma2   Gemma 1's and 2's (gemma-7b-it, gemma-1.1-*-it, gemma-2-*-it; one text, which raises
           on a system turn): google-gemma-2-2b-it.jinja
  phi3     Phi-3.5-mini-instruct's: microsoft-Phi-3.5-mini-instruct.jinja; rendered with
           eos_token="<|endoftext|>", its tokenizer's, which ends a conversation without the
           generation prompt
  phi4-mini
           Phi-4-mini-instruct's, given below (PHI4_MINI); rendered with
           eos_token="<|endoftext|>", its tokenizer's, which ends a conversation without the
           generation prompt
  plain    loraft's template for base models (src/chat.c), written as Jinja below
llama2, mistral* and zephyr are rendered with bos_token="<s>" and eos_token="</s>", their
tokenizers'; gemma and gemma2 with "<bos>" and "<eos>", Gemma's; phi3 with "<s>" and
"<|endoftext|>", Phi-3.5-mini's; phi4-mini with "<|endoftext|>", Phi-4-mini's; a few of their
cases also with
other BOS / EOS text (the case records "bos" and "eos"), which loraft takes from the tokenizer
(chat_template_set_specials).

Where the texts come from, and why they are trusted:
  - test-chat-template.cpp's entries are llama.cpp's tests of its Jinja engine against the
    models' own templates. Its Mistral entries named "modified" are so named for the output of
    llama.cpp's own non-Jinja renderer, which moves the system prompt to the start; their
    template_str is Mistral's text as published: their expected_output_jinja puts the system
    prompt in the last user turn, as Mistral's v3 template does. Mistral-7B-Instruct-v0.3 carries
    that same v3 text: the tokenizer.chat_template of its lmstudio-community GGUF, as public code
    copies it, is identical byte for byte. The old v0.2 text is also,
    byte for byte, llama-cpp-python's MIXTRAL_INSTRUCT_CHAT_TEMPLATE, which it matches against
    GGUF metadata; the v1 text is what vLLM logs as Mistral-7B-Instruct-v0.2's default template.
  - Gemma 3's template is not in llama.cpp's files either: it is given below as public copies of
    gemma-3-*-it's tokenizer_config.json agree on it (Berkeley's function-calling leaderboard's
    Gemma handler quotes the file, a Zig Jinja engine's "gemma3 tokenizer_config" test); GGUF
    files converted by others carry variants (a system turn + "\n", lines joined), which are not
    recognised. Gemma 1's template is Gemma 2's, byte for byte (public copies of gemma-7b-it's and
    gemma-2b-it's; llama.cpp's test entry "google/gemma-7b-it" leaves its bos_token out).
  - SmolLM3-3B's chat_template.jinja is not in llama.cpp's files as published: its
    HuggingFaceTB-SmolLM3-3B.jinja is Unsloth's edit (no date, the system turn always closed, no
    /system_override), which renders otherwise and is not recognised. SMOLLM3 below is the text
    as mistral.rs's chat_templates/smollm3.jinja copies it, byte for byte; the fragments other
    public code matches in the model's own file with str.replace (its flags block, the end of its
    tools block, the strftime_now line) agree with it, indentation included, and so do
    transformers' renderings others quote (the system turn left open without tools). Other
    revisions that public copies show (a {% generation %} block around the answers, tools= taken
    as xml_tools) render the same without tools but are other texts, not recognised.
  - Neither Llama 2's nor Zephyr's template is in llama.cpp's files, so they are given below as
    published in meta-llama/Llama-2-7b-chat-hf's and HuggingFaceH4/zephyr-7b-beta's
    tokenizer_config.json (TinyLlama-1.1B-Chat-v1.0 copied Zephyr's), checked against several
    independent public copies that cite those files (Hugging Face's own Jinja tests and
    alignment-handbook, which trained Zephyr, among them).
  - Phi-4-mini-instruct's template is not in llama.cpp's files as published (its
    llama-cpp-microsoft-Phi-4-mini-instruct.jinja is llama.cpp's own tool-calling edit): PHI4_MINI
    below is the chat_template of its tokenizer_config.json as independent public code quotes it,
    byte for byte (guidance's chat-template table citing the file, Berkeley's function-calling
    leaderboard's Phi handler, onnxruntime-genai's test of it against transformers' output); the
    model card's chat format agrees ("<|system|>...<|end|><|user|>...<|end|><|assistant|>").
  - Not rendered here: Mistral-7B-Instruct-v0.1's first template (eos_token + ' ' after each
    answer; its later texts were not available offline to confirm); Phi-3-mini-4k-instruct's
    (Phi-3.5's without its skip of an empty system turn) and Phi-3-small's / -medium's.

Errors: these templates raise_exception (roles that do not alternate, system turns they do not
place); such a case holds "error" (transformers' message, the template's own) and no rendering.
mistral-v0.3 and mistral-nemo drop the system message from a conversation that does not end with a
user turn (they put it in that turn only): loraft refuses that rather than render it, so such a
case holds "error" (loraft's message) beside "transformers_rendered".

transformers refuses an empty conversation, and so does chat_render. Every template renders every
conversation with and without the generation prompt; "cases" holds
{"template", "messages", "add_generation_prompt", "rendered"}.
"""
import datetime
import json
import os
import re
import subprocess
import sys
import tarfile

import transformers.utils.chat_template_utils as chat_template_utils
from jinja2.exceptions import TemplateError
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
# Llama-2-7b-chat-hf's chat_template (13b and 70b carry the same). Its "\\n" are Jinja escapes
# inside string literals, as in the file; note the two spaces in "' '  + content".
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}"
    "{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
    "{% set system_message = false %}{% endif %}{% for message in loop_messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}{% if loop.index0 == 0 and system_message != false %}"
    "{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}"
    "{% endif %}{% endfor %}"
)
# zephyr-7b-beta's chat_template, TinyLlama-1.1B-Chat-v1.0's too: newlines between the tags
# (trim_blocks removes those after block tags), a newline character inside the literals.
ZEPHYR = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n"
    "{{ '<|system|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'assistant' %}\n"
    "{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"
)
# Gemma 3's chat_template (gemma-3-*-it): Jinja's "\\n" escapes inside the literals, newlines
# between the lines, one at the end
GEMMA3 = """{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- if messages[0]['content'] is string -%}
        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- else -%}
        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}
    {%- endif -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = "" -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if (message['role'] == 'assistant') -%}
        {%- set role = "model" -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else "") }}
    {%- if message['content'] is string -%}
        {{ message['content'] | trim }}
    {%- elif message['content'] is iterable -%}
        {%- for item in message['content'] -%}
            {%- if item['type'] == 'image' -%}
                {{ '<start_of_image>' }}
            {%- elif item['type'] == 'text' -%}
                {{ item['text'] | trim }}
            {%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{ raise_exception("Invalid content type") }}
    {%- endif -%}
    {{ '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{'<start_of_turn>model\\n'}}
{%- endif -%}
"""
# SmolLM3-3B's chat_template.jinja (see above): Jinja's "\\n" escapes inside the literals
SMOLLM3 = """{# ───── defaults ───── #}
{%- if enable_thinking is not defined -%}
{%- set enable_thinking = true -%}
{%- endif -%}

{# ───── reasoning mode ───── #}
{%- if enable_thinking -%}
  {%- set reasoning_mode = "/think" -%}
{%- else -%}
  {%- set reasoning_mode = "/no_think" -%}
{%- endif -%}

{# ───── header (system message) ───── #}
{{- "<|im_start|>system\\n" -}}

{%- if messages[0].role == "system" -%}
  {%- set system_message = messages[0].content -%}
  {%- if "/no_think" in system_message -%}
    {%- set reasoning_mode = "/no_think" -%}
  {%- elif "/think" in system_message -%}
    {%- set reasoning_mode = "/think" -%}
  {%- endif -%}
  {%- set custom_instructions = system_message.replace("/no_think", "").replace("/think", "").rstrip() -%}
{%- endif -%}

{%- if "/system_override" in system_message -%}
  {{- custom_instructions.replace("/system_override", "").rstrip() -}}
  {{- "<|im_end|>\\n" -}}
{%- else -%}
  {{- "## Metadata\\n\\n" -}}
  {{- "Knowledge Cutoff Date: June 2025\\n" -}}
  {%- set today = strftime_now("%d %B %Y") -%}
  {{- "Today Date: " ~ today ~ "\\n" -}}
  {{- "Reasoning Mode: " + reasoning_mode + "\\n\\n" -}}
  
  {{- "## Custom Instructions\\n\\n" -}}
  {%- if custom_instructions -%}
    {{- custom_instructions + "\\n\\n" -}}
  {%- elif reasoning_mode == "/think" -%}
    {{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face. Your role as an assistant involves thoroughly exploring questions through a systematic thinking process before providing the final precise and accurate solutions. This requires engaging in a comprehensive cycle of analysis, summarizing, exploration, reassessment, reflection, backtracking, and iteration to develop well-considered thinking process. Please structure your response into two main sections: Thought and Solution using the specified format: <think> Thought section </think> Solution section. In the Thought section, detail your reasoning process in steps. Each step should include detailed considerations such as analysing questions, summarizing relevant findings, brainstorming new ideas, verifying the accuracy of the current steps, refining any errors, and revisiting previous steps. In the Solution section, based on various attempts, explorations, and reflections from the Thought section, systematically present the final solution that you deem correct. The Solution section should be logical, accurate, and concise and detail necessary steps needed to reach the conclusion.\\n\\n" -}}
  {%- else -%}
    {{- "You are a helpful AI assistant named SmolLM, trained by Hugging Face.\\n\\n" -}}
  {%- endif -%}

  {%- if xml_tools or python_tools -%}
    {{- "### Tools\\n\\n" -}}
    {%- if xml_tools -%}
      {%- set ns = namespace(xml_tool_string="You may call one or more functions to assist with the user query.\\nYou are provided with function signatures within <tools></tools> XML tags:\\n\\n<tools>\\n") -%}
      {%- for tool in xml_tools[:] -%} {# The slicing makes sure that xml_tools is a list #}
        {%- set ns.xml_tool_string = ns.xml_tool_string ~ (tool | string) ~ "\\n" -%}
      {%- endfor -%}
      {%- set xml_tool_string = ns.xml_tool_string + "</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call>" -%}
      {{- xml_tool_string -}}
    {%- endif -%}
    {%- if python_tools -%}
      {%- set ns = namespace(python_tool_string="When you send a message containing Python code between '<code>' and '</code>' tags, it will be executed in a stateful Jupyter notebook environment, and you will then be given the output to continued reasoning in an agentic loop.\\n\\nYou can use the following tools in your python code like regular functions:\\n<tools>\\n") -%}
      {%- for tool in python_tools[:] -%} {# The slicing makes sure that python_tools is a list #}
        {%- set ns.python_tool_string = ns.python_tool_string ~ (tool | string) ~ "\\n" -%}
      {%- endfor -%}
      {%- set python_tool_string = ns.python_tool_string + "</tools>\\n\\nThe state persists between code executions: so variables that you define in one step are still available thereafter." -%}
      {{- python_tool_string -}}
    {%- endif -%}
    {{- "\\n\\n" -}}
    {{- "<|im_end|>\\n" -}}
  {%- endif -%}
{%- endif -%}
{# ───── main loop ───── #}
{%- for message in messages -%}
    {%- set content = message.content if message.content is string else "" -%}
    {%- if message.role == "user" -%}
        {{ "<|im_start|>" + message.role + "\\n"  + content + "<|im_end|>\\n" }}
    {%- elif message.role == "assistant" -%}
        {%- if reasoning_mode == "/think" -%}
            {{ "<|im_start|>assistant\\n" + content.lstrip("\\n") + "<|im_end|>\\n" }}
        {%- else -%}
            {{ "<|im_start|>assistant\\n" + "<think>\\n\\n</think>\\n" + content.lstrip("\\n") + "<|im_end|>\\n" }}
        {%- endif -%}
    {%- elif message.role == "tool" -%}
    {{ "<|im_start|>" + "user\\n"  + content + "<|im_end|>\\n" }}
    {%- endif -%}
{%- endfor -%}
{# ───── generation prompt ───── #}
{%- if add_generation_prompt -%}
    {%- if reasoning_mode == "/think" -%}
        {{ "<|im_start|>assistant\\n" }}
    {%- else -%}
        {{ "<|im_start|>assistant\\n" + "<think>\\n\\n</think>\\n"  }}
    {%- endif -%}
{%- endif -%}"""
PHI4_MINI = (
    "{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and "
    "message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + "
    "'<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + "
    "message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if "
    "add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)
PLAIN = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ message['content'] + '\n\n' }}{% elif message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\n\n' }}{% else %}"
    "{{ 'Assistant: ' + message['content'] + '\n\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


LLAMA_CPP_PYTHON = "llama-cpp-python==0.3.36"
MODEL_TEMPLATES = {"qwen2.5": "Qwen-Qwen2.5-7B-Instruct.jinja", "qwen3": "Qwen-Qwen3-0.6B.jinja",
                   "llama3.1": "meta-llama-Llama-3.1-8B-Instruct.jinja",
                   "llama3.2": "meta-llama-Llama-3.2-3B-Instruct.jinja",
                   "gemma2": "google-gemma-2-2b-it.jinja",
                   "mistral-nemo": "mistralai-Mistral-Nemo-Instruct-2407.jinja",
                   "phi3": "microsoft-Phi-3.5-mini-instruct.jinja"}
TEST_TEMPLATES = {  # name -> test-chat-template.cpp's entry
    "mistral": "mistralai/Mistral-7B-Instruct-v0.2 (mistralai 'v1' template with a system prompt)",
    "mistral-legacy":
        "mistralai/Mistral-7B-Instruct-v0.2 (NOTE: Old pre-v1 without a system prompt)",
    "mistral-v0.3":
        "Mistral-Large-Instruct-2407 (mistralai 'v3' template; modified to have system prompt at "
        "start)"}
TEST_FILE = "tests/test-chat-template.cpp"
LLAMA32_DATE = "09 Mar 2031"
SMOLLM3_DATE = datetime.datetime(2025, 7, 8, 12)  # "08 July 2025": chat.c's SMOLLM3_DATE
SPECIALS = {"bos_token": "<s>", "eos_token": "</s>"}  # Llama 2's, Mistral's, TinyLlama's
GEMMA_SPECIALS = {"bos_token": "<bos>", "eos_token": "<eos>"}
PHI3_SPECIALS = {"bos_token": "<s>", "eos_token": "<|endoftext|>"}  # Phi-3.5-mini's
PHI4_MINI_SPECIALS = {"eos_token": "<|endoftext|>"}  # Phi-4-mini's (it renders no BOS)
OTHER_SPECIALS = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}
# loraft's refusal (chat.c), for what Mistral's v3 templates would render without the system
MISTRAL_V3_REFUSAL = "renders the system message only in a conversation that ends with a user turn"


def test_entries(text):
    """test-chat-template.cpp's test cases: name -> template_str, C escapes decoded."""
    pairs = re.findall(r'/\* \.name= \*/ "((?:[^"\\]|\\.)*)",\s*'
                       r'/\* \.template_str= \*/ (?:U8C\()?"((?:[^"\\]|\\.)*)"', text)
    escapes = {"n": "\n", "t": "\t", "r": "\r"}
    return {name: re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), t)
            for name, t in pairs}


def pick_tests(text):
    entries = test_entries(text)
    missing = [e for e in TEST_TEMPLATES.values() if e not in entries]
    if missing:
        sys.exit(f"{TEST_FILE}: no entry {missing}")
    return {name: entries[e] for name, e in TEST_TEMPLATES.items()}


def model_templates(src):
    """name -> Jinja text of MODEL_TEMPLATES and TEST_TEMPLATES, from llama.cpp's tree src or
    its PyPI package."""
    if src:
        folder = os.path.join(src, "models", "templates")
        out = {n: open(os.path.join(folder, f), encoding="utf-8").read()
               for n, f in MODEL_TEMPLATES.items()}
        with open(os.path.join(src, TEST_FILE), encoding="utf-8") as f:
            return {**out, **pick_tests(f.read())}
    cache = os.path.expanduser("~/.cache/loraft/llama-cpp-python")
    os.makedirs(cache, exist_ok=True)
    sdists = [f for f in os.listdir(cache) if f.endswith(".tar.gz")]
    if not sdists:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary",
                        ":all:", "-d", cache, LLAMA_CPP_PYTHON], check=True)
        sdists = [f for f in os.listdir(cache) if f.endswith(".tar.gz")]
    out = {}
    with tarfile.open(os.path.join(cache, sdists[0])) as tar:
        for member in tar.getmembers():
            for name, f in MODEL_TEMPLATES.items():
                if member.name.endswith("/vendor/llama.cpp/models/templates/" + f):
                    out[name] = tar.extractfile(member).read().decode("utf-8")
            if member.name.endswith("/vendor/llama.cpp/" + TEST_FILE):
                out.update(pick_tests(tar.extractfile(member).read().decode("utf-8")))
    return out


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
        # reasoning in assistant turns (Qwen3 keeps it only after the last user turn)
        [(u, "Why?"), (a, "<think>\nBecause.\n</think>\n\nIt is so.")],
        [(s, "Think."), (u, "One"), (a, "<think>\nfirst\n</think>\n\nAnswer one"), (u, "Two"),
         (a, "\n\n<think>\n\nsecond <think> nested\n\n</think>\n\n\nAnswer two</think>tail")],
        [(u, "<tool_response>\n42\n</tool_response>"), (a, "no query before me")],
        [(u, "Q"), (a, "</think>only a closing tag")],
        # the [INST] templates: alternation, where a system turn may stand, what is stripped
        [(s, "Be brief."), (u, "One"), (a, "First answer."), (u, "Two"), (a, " Second answer ")],
        [(u, "Q1"), (a, "A1"), (u, "Q2"), (a, "A2")],
        [(s, "  padded system \n"), (u, " \n ")],
        [(u, "a"), (u, "b")],
        [(s, "Only a system turn.")],
        [(s, "S"), (a, "An assistant right after the system turn.")],
        [(u, "Q"), (a, "A"), (s, "a system turn after an answer")],
        [(u, "Q"), (s, "a system turn between"), (u, "Q again")],
        [(s, ""), (u, "An empty system turn"), (a, "A")],
    ]
    return as_messages(convs)


def smollm3_conversations():
    """SmolLM3's system message: its flags (/no_think before /think, each removed in one pass),
    /system_override, what rstrip() takes, the default instructions when nothing is left."""
    s, u, a = "system", "user", "assistant"
    return as_messages([
        [(s, "Be brief. /no_think"), (u, "Hi"), (a, "\n\nHello.\n")],
        [(s, "/think Reason first.  \n"), (u, "2+2?"), (a, "<think>\nfour\n</think>\n4")],
        [(s, "/no_think beats /think"), (u, "Q")],
        [(s, "/no_think"), (u, "Only a flag: the default instructions")],
        [(s, " \t\n"), (u, "Only whitespace")],
        [(s, "/thi/thinknk: one pass leaves a /think\u3000\u2003\n"), (u, "Q"), (a, "A")],
        [(s, "Custom alone. /system_override /no_think \n"), (u, "Q"), (a, "A")],
        [(s, "/system_override"), (u, "Q")],
        [(s, "/system_/thinkoverride is no override"), (u, "Q")],
        [(u, "Q"), (s, "a later system turn, /no_think"), (u, "Q2"), (a, "\n")],
    ])


def as_messages(convs):
    return [[{"role": r, "content": c} for r, c in conv] for conv in convs]


def refused(name, messages):
    """loraft's own refusal: Mistral's v3 templates without a last user turn to put the system
    into."""
    return (name in ("mistral-v0.3", "mistral-nemo") and messages[0]["role"] == "system"
            and messages[-1]["role"] != "user")


def render(tok, name, template, messages, gen, extra):
    """The case: transformers' rendering, or the error it (or loraft) gives."""
    case = {"template": name, "messages": messages, "add_generation_prompt": gen}
    try:
        rendered = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                           add_generation_prompt=gen, **extra)
    except TemplateError as e:
        return {**case, "error": str(e)}
    if refused(name, messages):
        return {**case, "error": MISTRAL_V3_REFUSAL, "transformers_rendered": rendered}
    return {**case, "rendered": rendered}


class Clock(datetime.datetime):
    """transformers' strftime_now reads datetime.now(): SmolLM3's date, fixed."""

    @classmethod
    def now(cls, tz=None):
        return SMOLLM3_DATE


def main():
    chat_template_utils.datetime = Clock
    smol_dir = sys.argv[1] if len(sys.argv) > 1 else "models/smollm2-tokenizer"
    tok = AutoTokenizer.from_pretrained(smol_dir)
    models = model_templates(sys.argv[2] if len(sys.argv) > 2 else None)
    templates = {"smollm2": tok.chat_template, "chatml": CHATML, "qwen2": QWEN2,
                 "qwen2.5": models["qwen2.5"], "qwen3": models["qwen3"], "smollm3": SMOLLM3,
                 "llama3": LLAMA3,
                 "llama3.1": models["llama3.1"], "llama3.2": models["llama3.2"],
                 "llama2": LLAMA2, "mistral": models["mistral"],
                 "mistral-legacy": models["mistral-legacy"],
                 "mistral-v0.3": models["mistral-v0.3"], "mistral-nemo": models["mistral-nemo"],
                 "zephyr": ZEPHYR, "gemma": GEMMA3, "gemma2": models["gemma2"],
                 "phi3": models["phi3"], "phi4-mini": PHI4_MINI, "plain": PLAIN}
    bos = {"bos_token": "<|begin_of_text|>"}
    extra = {"llama3": bos, "llama3.1": bos, "llama3.2": {**bos, "date_string": LLAMA32_DATE},
             "llama2": SPECIALS, "mistral": SPECIALS, "mistral-legacy": SPECIALS,
             "mistral-v0.3": SPECIALS, "mistral-nemo": SPECIALS, "zephyr": SPECIALS,
             "gemma": GEMMA_SPECIALS, "gemma2": GEMMA_SPECIALS, "phi3": PHI3_SPECIALS,
             "phi4-mini": PHI4_MINI_SPECIALS}
    cases = []
    for name, template in templates.items():
        for messages in conversations() + (smollm3_conversations() if name == "smollm3" else []):
            for gen in (False, True):
                case = render(tok, name, template, messages, gen, extra.get(name, {}))
                if "date_string" in extra.get(name, {}):
                    case["date"] = extra[name]["date_string"]
                cases.append(case)
        if extra.get(name) in (SPECIALS, GEMMA_SPECIALS):  # another tokenizer's BOS / EOS text
            for messages in (conversations()[2], conversations()[15]):
                case = render(tok, name, template, messages, False, OTHER_SPECIALS)
                cases.append({**case, "bos": OTHER_SPECIALS["bos_token"],
                              "eos": OTHER_SPECIALS["eos_token"]})
    # Qwen3's and SmolLM3's templates with thinking disabled: the same Jinja, another name (not
    # detected)
    for name, base in (("qwen3-nothink", "qwen3"), ("smollm3-nothink", "smollm3")):
        extra_convs = smollm3_conversations() if base == "smollm3" else []
        for messages in conversations() + extra_convs:
            for gen in (False, True):
                case = render(tok, base, templates[base], messages, gen, {"enable_thinking": False})
                cases.append({**case, "template": name})
    out = "tests/golden/chat_templates.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"templates": templates, "cases": cases}, f, ensure_ascii=True, indent=1)
        f.write("\n")
    errors = sum("error" in c for c in cases)
    print(f"{out}: {len(cases)} cases of {len(templates)} templates ({errors} errors)")


if __name__ == "__main__":
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    main()
