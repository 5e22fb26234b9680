#!/usr/bin/env python3
"""check_sft_parity.py: loraft's SFT held-out answer loss against transformers on the same model.

    bench/check_sft_parity.py models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        [--data ../shared/data/instructions/dolly_open_qa.jsonl] [--holdout 24] \\
        [--max-length 256] [--loraft build/loraft] [--threads N]

loraft: `loraft eval` of an SFT config holding out the last --holdout records (no adapter: the
LoRA branches start at zero, so this is the base model). transformers: the same records rendered
by the model's chat template (apply_chat_template, tokenize=True), labels -100 on the prompt (the
tokens that end within the rendering with the generation prompt) and after the answer's first
<|im_end|> / EOS, rows cut at --max-length, and the mean cross-entropy over the labelled tokens
(shifted, as the causal-LM loss is). Prints both and their difference. Needs torch,
transformers and, for a .gguf, gguf (pip). A check to run by hand, not a test.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile


def loraft_loss(a):
    cfg = {"model": {"model": a.model, "task": "sft"},
           "data": {"train_file": a.data, "holdout_examples": a.holdout, "max_length": a.max_length},
           "train": {"eval_answers": 0, "threads": a.threads}}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cfg.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        out = subprocess.run([a.loraft, "eval", "--config", path], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"loraft eval failed: {out.stderr.strip() or out.stdout.strip()[-500:]}")
    m = re.search(r"^eval: eval_loss ([0-9.]+) .*\((\d+) tokens predicted\)", out.stdout, re.M)
    return float(m.group(1)), int(m.group(2))


def transformers_loss(a):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(a.threads)
    d, f = os.path.split(a.model) if a.model.endswith(".gguf") else (a.model, None)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32).eval()
    stops = {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")}
    records = [json.loads(l) for l in open(a.data) if l.strip()][-a.holdout:]
    total, count = 0.0, 0
    for r in records:
        user = r["instruction"] + ("\n\n" + r["input"] if r.get("input") else "")
        msgs = [{"role": "user", "content": user}, {"role": "assistant", "content": r["output"]}]
        text = tok.apply_chat_template(msgs, tokenize=False)
        prompt = tok.apply_chat_template(msgs[:1], tokenize=False, add_generation_prompt=True)
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = enc["input_ids"]
        n_prompt = sum(1 for _, end in enc["offset_mapping"] if end <= len(prompt))
        labels, ended = [-100] * n_prompt, False
        for t in ids[n_prompt:]:
            labels.append(-100 if ended else t)
            ended = ended or t in stops
        ids, labels = ids[: a.max_length], labels[: a.max_length]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, :-1]
        y = torch.tensor(labels[1:])
        losses = torch.nn.functional.cross_entropy(logits, y, ignore_index=-100, reduction="sum")
        total += losses.item()
        count += int((y >= 0).sum())
    return total / count, count


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--data", default="../shared/data/instructions/dolly_open_qa.jsonl")
    ap.add_argument("--holdout", type=int, default=24)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--loraft", default="build/loraft")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    ours, n_ours = loraft_loss(a)
    ref, n_ref = transformers_loss(a)
    print(f"loraft       eval_loss {ours:.4f} over {n_ours} answer tokens")
    print(f"transformers eval_loss {ref:.4f} over {n_ref} answer tokens")
    print(f"difference   {ours - ref:+.2e}")


if __name__ == "__main__":
    main()
