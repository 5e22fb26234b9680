#!/usr/bin/env python3
"""A golden for `loraft generate`: transformers' greedy continuation (generate(do_sample=False))
of SmolLM2-135M-Instruct (the Q4_1 GGUF, dequantised to f32) for a plain prompt and a chat
prompt, written to tests/golden/smollm2_greedy.json: the prompt ids (the plain one as the
tokenizer encodes it with its special tokens, the chat one as apply_chat_template renders and
tokenizes it with the generation prompt) and the new ids. tests/test_generate.c checks loraft's
KV-cache generation against it token for token when the model has been fetched.

    /tmp/venv-bpe/bin/python scripts/make-generate-golden.py \\
        models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import os
import sys

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import gguf  # noqa: F401  (transformers reads GGUF through it)
except ImportError as e:
    sys.exit(f"make-generate-golden: {e}; needs torch, transformers and gguf")

PLAIN = "It is a truth universally acknowledged, that a single man in possession of"
CHAT = "What is the capital of France? Answer in one sentence."
NEW_TOKENS = 32
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def greedy(model, ids):
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                             dtype=torch.long), do_sample=False, max_new_tokens=NEW_TOKENS)
    return out[0, len(ids):].tolist()


def main():
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
