#!/usr/bin/env python3
"""check_reward_parity.py: a reward model's scores from loraft against transformers, on one batch.

    build/loraft score --model MODEL --adapter ADAPTER --max-length 96 --max-prompt-length 48 \\
        RECORDS.jsonl >SCORES
    build/loraft merge --model MODEL --adapter ADAPTER --out MERGED
    bench/check_reward_parity.py HF_DIR ADAPTER MERGED RECORDS.jsonl SCORES \\
        [--max-length 96] [--max-prompt-length 48]

HF_DIR is the base model as a transformers directory (for a .gguf, the f32 copy that
bench/bench-decoder-vs-pytorch.py caches under ~/.cache/loraft/bench/). The rows are loraft's:
tok(prompt) + tok(" " + response) + [eos], cut as TRL 0.12 does (the prompt to its last
max_prompt_length tokens, then the response to max_length - max_prompt_length), right-padded with the config's pad_token_id in
one batch. Prints the largest difference of loraft's scores from those of
AutoModelForSequenceClassification(num_labels=1) + PeftModel, and from the merged directory
loaded on its own. Needs torch, transformers, peft (scripts/setup-python.sh). A check to run by
hand, not a test (tests/test_peft_compat_reward.sh is the test, on a tiny model).
"""
import argparse
import json

import torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def rows(tok, path, eos, max_len, max_prompt):
    out = []
    for line in open(path):
        r = json.loads(line)
        p = tok.encode(r["prompt"], add_special_tokens=False)
        a = tok.encode(" " + r["response"], add_special_tokens=False) + [eos]
        if len(p) + len(a) > max_len:
            p = p[-max_prompt:]
            a = a[: max_len - max_prompt] if len(p) + len(a) > max_len else a
        out.append(p + a)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("hf_dir", "adapter", "merged", "records", "scores"):
        ap.add_argument(name)
    ap.add_argument("--max-length", type=int, default=96)
    ap.add_argument("--max-prompt-length", type=int, default=48)
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.hf_dir)
    base = AutoModelForSequenceClassification.from_pretrained(a.hf_dir, num_labels=1,
                                                              dtype=torch.float32)
    pad, eos = base.config.pad_token_id, base.config.eos_token_id
    rs = rows(tok, a.records, eos, a.max_length, a.max_prompt_length)
    T = max(map(len, rs))
    ids = torch.tensor([r + [pad] * (T - len(r)) for r in rs])
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rs])
    peft = PeftModel.from_pretrained(base, a.adapter).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(a.merged, dtype=torch.float32)
    with torch.no_grad():
        by_peft = peft(input_ids=ids, attention_mask=mask).logits[:, 0]
        by_merged = merged.eval()(input_ids=ids, attention_mask=mask).logits[:, 0]
    ours = torch.tensor([float(x) for x in open(a.scores)])
    print(f"{len(rs)} rows of {min(map(len, rs))}-{T} tokens, pad_token_id {pad}")
    print(f"loraft vs transformers + PEFT: max |diff| {float((ours - by_peft).abs().max()):.2e}")
    print(f"loraft vs the merged model:   max |diff| {float((ours - by_merged).abs().max()):.2e}")


if __name__ == "__main__":
    main()
