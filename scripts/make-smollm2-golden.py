#!/usr/bin/env python3
"""A golden for the real SmolLM2-135M-Instruct (Q4_1 GGUF): transformers dequantises the file,
runs one sentence and writes its loss, the argmax of every position and the first 64 logits
of the last position to tests/golden/smollm2_sentence.json; tests/test_golden.c checks loraft
against it when the model has been fetched (scripts/fetch-model.sh smollm2-135m-instruct
models/smollm2).

    PY=$(scripts/setup-python.sh --python); $PY -m pip install gguf
    $PY scripts/make-smollm2-golden.py models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""
import json
import os
import sys

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import gguf  # noqa: F401  (transformers reads GGUF through it)
except ImportError as e:
    sys.exit(f"make-smollm2-golden: {e}; run it with the venv of scripts/setup-python.sh, "
             "plus `pip install gguf`")

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good "
        "fortune, must be in want of a wife.")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-smollm2-golden.py PATH/SmolLM2-135M-Instruct.Q4_1.gguf")
    d, f = os.path.split(os.path.abspath(sys.argv[1]))
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    ids = tok(TEXT, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids]))
    golden = {"text": TEXT, "ids": ids, "loss": out.loss.item(),
              "argmax": out.logits[0].argmax(-1).tolist(),
              "last_logits": [round(v, 6) for v in out.logits[0, -1, :64].tolist()]}
    path = os.path.join(ROOT, "tests", "golden", "smollm2_sentence.json")
    with open(path, "w") as fh:
        json.dump(golden, fh)
    print(f"wrote {path}: loss {golden['loss']:.6f}")


if __name__ == "__main__":
    main()
