#!/usr/bin/env python3
"""Goldens for `loraft generate`: transformers' greedy continuation (generate(do_sample=False))
- of SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantised to f32) for a plain prompt and a chat
  prompt, written to tests/golden/smollm2_greedy.json: the prompt ids (the plain one as the
  tokenizer encodes it with its special tokens, the chat one as apply_chat_template renders and
  tokenizes it with the generation prompt) and the new ids;
- with --tiny-gpt2 LORAFT, of the tiny GPT-2 that `loraft init` writes from TINY_GPT2 (the GPT-2
  tokenizer of ../shared/data) for a few prompts, with the prompt's last logits, written to
  tests/golden/gpt2_tiny_greedy.json.
tests/test_generate.c checks loraft's KV-cache generation against them token for token (SmolLM2
when the model has been fetched; the tiny GPT-2 rebuilt with `loraft init`).

    /tmp/venv-bpe/bin/python scripts/make-generate-golden.py \\
        models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
    ~/.cache/loraft/venv/bin/python scripts/make-generate-golden.py --tiny-gpt2 build/loraft
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as e:
    sys.exit(f"make-generate-golden: {e}; needs torch and transformers (and gguf for SmolLM2)")

PLAIN = "It is a truth universally acknowledged, that a single man in possession of"
CHAT = "What is the capital of France? Answer in one sentence."
NEW_TOKENS = 32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_GPT2 = ["--arch", "gpt2", "--layers", "2", "--hidden", "64", "--heads", "4",
             "--max-positions", "64", "--seed", "11"]
GPT2_PROMPTS = ["It is a truth universally acknowledged", "Anne walked to the garden",
                "The quick brown fox jumps over the lazy dog."]


def greedy(model, ids, new_tokens=NEW_TOKENS):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                             dtype=torch.long), do_sample=False, max_new_tokens=new_tokens,
                             pad_token_id=model.config.eos_token_id)
    return out[0, len(ids):].tolist()


def tiny_gpt2(loraft):
    vocab = os.path.join(ROOT, "..", "shared", "data", "tokenizers", "gpt2")
    d = tempfile.mkdtemp(prefix="loraft-gpt2-")
    subprocess.run([loraft, "init", *TINY_GPT2, "--vocab-from", vocab, "--out", d], check=True,
                   stdout=subprocess.DEVNULL)
    tok = AutoTokenizer.from_pretrained(d)
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    cases = []
    for p in GPT2_PROMPTS:
        ids = tok(p)["input_ids"]
        with torch.no_grad():
            last = model(input_ids=torch.tensor([ids])).logits[0, -1, :64]
        cases.append({"prompt": p, "ids": ids, "last_logits": [float("%.7g" % v) for v in last],
                      "new_ids": greedy(model, ids, 16)})
    path = os.path.join(ROOT, "tests", "golden", "gpt2_tiny_greedy.json")
    with open(path, "w") as fh:
        json.dump({"init": TINY_GPT2, "cases": cases}, fh, indent=1)
        fh.write("\n")
    for c in cases:
        print(f"{c['prompt']!r} -> {tok.decode(c['new_ids'])!r}")
    print(f"wrote {path}")


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--tiny-gpt2":
        return tiny_gpt2(sys.argv[2])
    if len(sys.argv) != 2:
        sys.exit("usage: make-generate-golden.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf")
    d, f = os.path.split(os.path.abspath(sys.argv[1]))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    plain = tok(PLAIN)["input_ids"]
    chat = tok.apply_chat_template([{"role": "user", "content": CHAT}], tokenize=True,
                                   add_generation_prompt=True)
    if isinstance(chat, dict) or hasattr(chat, "keys"):
        chat = chat["input_ids"]
    cases = [{"name": "plain", "prompt": PLAIN, "ids": plain, "new_ids": greedy(model, plain)},
             {"name": "chat", "prompt": CHAT, "ids": list(chat), "new_ids": greedy(model, chat)}]
    for c in cases:
        c["new_text"] = tok.decode(c["new_ids"])
    path = os.path.join(ROOT, "tests", "golden", "smollm2_greedy.json")
    with open(path, "w") as fh:
        json.dump({"cases": cases}, fh, indent=1)
        fh.write("\n")
    for c in cases:
        print(f"{c['name']}: {c['new_text']!r}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
