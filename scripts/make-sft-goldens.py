#!/usr/bin/env python3
"""make-sft-goldens.py: writes tests/golden/sft_render.json, the token ids and answer-only labels
of SFT examples as transformers makes them, for tests/test_sft.c. Run from the repository root:

  scripts/extract-smollm2-tokenizer.sh models/smollm2-tokenizer   # SmolLM2's tokenizer, from its GGUF
  $(scripts/setup-python.sh --python) scripts/make-sft-goldens.py [SMOLLM2_DIR [GPT2_DIR]]

ids: tokenizer.apply_chat_template(messages, tokenize=True) for chat templates (the user turn is
the instruction, plus "\\n\\n" + input when input is not empty; the assistant turn the output), or
tokenizer(text) for a prompt template with {instruction}, {input}, {output} replaced.
labels (the rule of include/loraft/sft_data.h, computed here with the tokenizer's offsets): -100 on
the prompt, the tokens that end within the rendering without the answer and with the generation
prompt (a prefix of the text; usually its own ids are a prefix of the ids, but a token may span
the boundary, as "\n\n" does when the answer starts with "\n"; such a token belongs to the
answer); then the answer's ids up to and including the
first stop id (EOS, or a template's end-of-turn special token); -100 after it. When the answer
has no stop id, EOS is appended and labelled.

Cases: SmolLM2-Instruct's tokenizer (SMOLLM2_DIR, default models/smollm2-tokenizer) with its own
template, and GPT-2's tokenizer (GPT2_DIR, default ../shared/data/tokenizers/gpt2: the tokenizer
`loraft init --arch llama --vocab-from` gives the tiny test models) and a SentencePiece-style one
(tests/golden/spm_legacy.json, Llama 2's spelling, whose "▁" before each piece covers no text)
with loraft's plain template and with an Alpaca-style prompt template; GPT-2's under an NFC
normalizer (Qwen2's, "gpt2-nfc": what the edit in NFC_EDIT makes of its tokenizer.json) with both;
Gemma's spelling (tests/golden/spm_gemma.json: no "▁" in front, <bos> in the rendered text) with
Gemma 3's chat template (make-chat-goldens.py's "gemma"), <end_of_turn> ending the answer;
SmolLM2-Instruct's tokenizer (the same ChatML special tokens) with SmolLM3's template
(make-chat-goldens.py's "smollm3", dated as there), the records after a short system turn (its
default instructions would fill test_sft.c's packed rows of 128 tokens): "smollm3" with /no_think
in every other system turn, "smollm3-nothink" (enable_thinking=False) without.
"""
import importlib.util
import json
import os
import sys

import transformers.utils.chat_template_utils as chat_template_utils
from tokenizers import Tokenizer
from transformers import AutoTokenizer, PreTrainedTokenizerFast

# loraft's plain template as Jinja, as make-chat-goldens.py wrote it
with open("tests/golden/chat_templates.json", encoding="utf-8") as f:
    TEMPLATES = json.load(f)["templates"]
PLAIN, GEMMA, SMOLLM3 = TEMPLATES["plain"], TEMPLATES["gemma"], TEMPLATES["smollm3"]
# GPT-2's tokenizer.json under Qwen2's normalizer: test_sft.c applies the same edit
NFC_EDIT = {"normalizer": {"type": "NFC"}}
ALPACA = ("Below is an instruction. Write a response.\n\n### Instruction:\n{instruction}\n\n"
          "### Input:\n{input}\n\n### Response:\n{output}")

RECORDS = [
    {"instruction": "Why can camels survive for long without water?", "input": "",
     "output": "Camels use the fat in their humps to keep them filled with energy."},
    {"instruction": "Summarise the text.", "input": "The cat sat on the mat.\nIt was warm.",
     "output": "A cat rested on a warm mat."},
    {"instruction": "Réponds en français : quelle heure est-il ?", "input": "",
     "output": "Il est midi. — 正午です 🙂"},
    {"instruction": "Say nothing.", "output": ""},
    {"instruction": "  Leading and trailing spaces  ", "input": "  x  ",
     "output": "\n  indented answer\n"},
    # NFC changes these (decomposed accents, the Angstrom sign), the answer's first one included:
    # under an NFC normalizer the tokens encode NFC's text, which the offsets map back
    {"instruction": "Cafe\u0301 ou the\u0301 ?", "input": "",
     "output": "e\u0301te\u0301 : un cafe\u0301 cre\u0300me."},
    {"instruction": "Spell A\u030a.", "output": "\u212b, then a\u030a."},
    {"messages": [{"role": "system", "content": "You are terse."},
                  {"role": "user", "content": "2+2?"},
                  {"role": "assistant", "content": "4"},
                  {"role": "user", "content": "And 3+3?"},
                  {"role": "assistant", "content": "6, of course."}]},
]


def as_messages(rec):
    if "messages" in rec:
        return rec["messages"]
    user = rec["instruction"] + ("\n\n" + rec["input"] if rec.get("input") else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": rec["output"]}]


def with_system(rec, system):
    """rec as messages that begin with a system turn (its own, else system)."""
    msgs = as_messages(rec)
    return {"messages": msgs if msgs[0]["role"] == "system"
            else [{"role": "system", "content": system}] + msgs}


def ids_of(x):
    return list(x["input_ids"] if hasattr(x, "keys") else x)


def eos_of(tok):
    """The EOS id; GPT-2's tokenizer_config.json names none, and its EOS is <|endoftext|>."""
    return tok.eos_token_id if tok.eos_token_id is not None else tok.convert_tokens_to_ids("<|endoftext|>")


def labelled(ids, n_prompt, stops, eos):
    assert len(ids) >= n_prompt
    labels = [-100] * n_prompt
    ended = False
    for t in ids[n_prompt:]:
        labels.append(-100 if ended else t)
        ended = ended or t in stops
    if not ended:
        ids, labels = ids + [eos], labels + [eos]
    return ids, labels


def prompt_tokens(tok, text, prompt_text, ids):
    """Tokens of text that end within prompt_text (its prefix), by the tokenizer's offsets; when
    the prompt's own ids are a prefix of ids, that is their number."""
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    assert enc["input_ids"] == ids
    n = sum(1 for _, end in enc["offset_mapping"] if end <= len(prompt_text))
    prompt = tok(prompt_text, add_special_tokens=False)["input_ids"]
    assert ids[:len(prompt)] != prompt or n == len(prompt)
    return n


def chat_case(tok, name, template, rec, stops, **extra):
    msgs = as_messages(rec)
    ids = ids_of(tok.apply_chat_template(msgs, chat_template=template, tokenize=True, **extra))
    text = tok.apply_chat_template(msgs, chat_template=template, tokenize=False, **extra)
    prompt = tok.apply_chat_template(msgs[:-1], chat_template=template, tokenize=False,
                                     add_generation_prompt=True, **extra)
    assert text.startswith(prompt)
    ids, labels = labelled(ids, prompt_tokens(tok, text, prompt, ids), stops, eos_of(tok))
    return {"tokenizer": name[0], "template": name[1], "record": rec, "ids": ids, "labels": labels}


def template_case(tok, name, rec, stops):
    head, tail = ALPACA.split("{output}")
    fill = lambda s: s.replace("{instruction}", rec["instruction"]).replace("{input}", rec.get("input", ""))
    text = fill(head) + rec["output"] + fill(tail)
    ids = tok(text)["input_ids"]  # GPT-2 adds no special tokens; the SentencePiece one <s>
    bos = len(ids) - len(tok(text, add_special_tokens=False)["input_ids"])
    n = bos + prompt_tokens(tok, text, fill(head), ids[bos:])
    ids, labels = labelled(ids, n, stops, eos_of(tok))
    return {"tokenizer": name, "prompt_template": ALPACA, "record": rec, "ids": ids,
            "labels": labels}


def chat_goldens():
    """make-chat-goldens.py as a module (its fixed clock for SmolLM3's date)."""
    spec = importlib.util.spec_from_file_location("make_chat_goldens",
                                                  "scripts/make-chat-goldens.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main():
    chat_template_utils.datetime = chat_goldens().Clock
    smol_dir = sys.argv[1] if len(sys.argv) > 1 else "models/smollm2-tokenizer"
    gpt2_dir = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/tokenizers/gpt2"
    smol, gpt2 = AutoTokenizer.from_pretrained(smol_dir), AutoTokenizer.from_pretrained(gpt2_dir)
    # a SentencePiece-style BPE (Llama 2's spelling: "▁" prepended to every piece)
    spm = PreTrainedTokenizerFast(tokenizer_file="tests/golden/spm_legacy.json", bos_token="<s>",
                                  eos_token="</s>", unk_token="<unk>")
    with open(os.path.join(gpt2_dir, "tokenizer.json"), encoding="utf-8") as f:
        nfc_json = json.load(f)
    nfc_json.update(NFC_EDIT)
    nfc = PreTrainedTokenizerFast(tokenizer_object=Tokenizer.from_str(json.dumps(nfc_json)),
                                  eos_token="<|endoftext|>")
    gemma = PreTrainedTokenizerFast(tokenizer_file="tests/golden/spm_gemma.json",
                                    bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                                    pad_token="<pad>")
    smol_stops = {smol.eos_token_id, smol.convert_tokens_to_ids("<|im_end|>")}
    gemma_stops = {gemma.eos_token_id, gemma.convert_tokens_to_ids("<end_of_turn>")}
    cases = []
    for i, rec in enumerate(RECORDS):
        cases.append(chat_case(smol, ("smollm2", "smollm2"), smol.chat_template, rec, smol_stops))
        brief = with_system(rec, "Answer briefly." + (" /no_think" if i % 2 else ""))
        cases.append(chat_case(smol, ("smollm2", "smollm3"), SMOLLM3, brief, smol_stops))
        brief = with_system(rec, "Answer briefly.")
        cases.append(chat_case(smol, ("smollm2", "smollm3-nothink"), SMOLLM3, brief, smol_stops,
                               enable_thinking=False))
        cases.append(chat_case(gemma, ("gemma", "gemma"), GEMMA, rec, gemma_stops))
        for name, tok in (("gpt2", gpt2), ("spm", spm), ("gpt2-nfc", nfc)):
            cases.append(chat_case(tok, (name, "plain"), PLAIN, rec, {eos_of(tok)}))
            if "messages" not in rec:
                cases.append(template_case(tok, name, rec, {eos_of(tok)}))
    out = "tests/golden/sft_render.json"
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases, "nfc_edit": NFC_EDIT}, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print(f"{out}: {len(cases)} examples")


if __name__ == "__main__":
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    main()
