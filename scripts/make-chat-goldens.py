#!/usr/bin/env python3
"""make-chat-goldens.py: writes tests/golden/chat_templates.json, what transformers'
tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders for a
set of conversations this script writes, for tests/test_chat.c. Run from the repository root:

  scripts/extract-smollm2-tokenizer.sh models/smollm2-tokenizer   # SmolLM2's tokenizer, from its GGUF
  $(scripts/setup-python.sh --python) scripts/make-chat-goldens.py [SMOLLM2_DIR [LLAMA_CPP_SRC]]

The models' own templates of Qwen2.5, Qwen3 and Llama 3.1 to 3.3 are read from llama.cpp's
models/templates (copies of their tokenizer_config.json's chat_template), in LLAMA_CPP_SRC or, by
default, in the llama-cpp-python 0.3.36 source package from PyPI (downloaded once into
~/.cache/loraft/llama-cpp-python; only its models/templates are extracted).

Templates (the JSON's "templates": name -> Jinja text, which test_chat.c also detects):
  smollm2  SmolLM2-Instruct's own template, as the tokenizer in SMOLLM2_DIR (default
           models/smollm2-tokenizer) carries it: ChatML with a default system turn
  chatml   the common ChatML template (SmolLM v1, Hermes, transformers' docs), given below
  qwen2    Qwen1.5-Chat's and Qwen2-Instruct's template, given below: SmolLM2's with another
           default system turn
  qwen2.5  Qwen2.5-Instruct's template (tools and tool calls, which loraft does not render):
           Qwen-Qwen2.5-7B-Instruct.jinja
  qwen3    Qwen3's (0.6B to 32B): Qwen-Qwen3-0.6B.jinja
  llama3.1 Llama-3.1-8B-Instruct's, the same text as Llama-3.3-70B-Instruct's:
           meta-llama-Llama-3.1-8B-Instruct.jinja; rendered with bos_token as llama3
  llama3.2 Llama-3.2-3B-Instruct's: meta-llama-Llama-3.2-3B-Instruct.jinja; rendered with
           date_string="09 Mar 2031" (else transformers' strftime_now dates it today), which the
           case records as "date"
  llama3   Meta-Llama-3-8B-Instruct's template, given below; rendered with
           bos_token="<|begin_of_text|>" (it puts BOS in the text)
  plain    loraft's template for base models (src/chat.c), written as Jinja below
transformers refuses an empty conversation, and so does chat_render. Every template renders every
conversation with and without the generation prompt; "cases" holds
{"template", "messages", "add_generation_prompt", "rendered"}.
"""
import json
import os
import subprocess
import sys
import tarfile

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
                   "llama3.2": "meta-llama-Llama-3.2-3B-Instruct.jinja"}
LLAMA32_DATE = "09 Mar 2031"


def model_templates(src):
    """name -> Jinja text of MODEL_TEMPLATES, from llama.cpp's tree src or its PyPI package."""
    if src:
        folder = os.path.join(src, "models", "templates")
        return {n: open(os.path.join(folder, f), encoding="utf-8").read()
                for n, f in MODEL_TEMPLATES.items()}
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
    ]
    return [[{"role": r, "content": c} for r, c in conv] for conv in convs]


def main():
    smol_dir = sys.argv[1] if len(sys.argv) > 1 else "models/smollm2-tokenizer"
    tok = AutoTokenizer.from_pretrained(smol_dir)
    models = model_templates(sys.argv[2] if len(sys.argv) > 2 else None)
    templates = {"smollm2": tok.chat_template, "chatml": CHATML, "qwen2": QWEN2,
                 "qwen2.5": models["qwen2.5"], "qwen3": models["qwen3"], "llama3": LLAMA3,
                 "llama3.1": models["llama3.1"], "llama3.2": models["llama3.2"], "plain": PLAIN}
    bos = {"bos_token": "<|begin_of_text|>"}
    extra = {"llama3": bos, "llama3.1": bos, "llama3.2": {**bos, "date_string": LLAMA32_DATE}}
    cases = []
    for name, template in templates.items():
        for messages in conversations():
            for gen in (False, True):
                rendered = tok.apply_chat_template(messages, chat_template=template, tokenize=False,
                                                   add_generation_prompt=gen, **extra.get(name, {}))
                case = {"template": name, "messages": messages, "add_generation_prompt": gen,
                        "rendered": rendered}
                if "date_string" in extra.get(name, {}):
                    case["date"] = extra[name]["date_string"]
                cases.append(case)
    out = "tests/golden/chat_templates.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"templates": templates, "cases": cases}, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"{out}: {len(cases)} renderings of {len(templates)} templates")


if __name__ == "__main__":
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    main()
