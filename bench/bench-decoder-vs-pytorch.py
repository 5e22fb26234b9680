#!/usr/bin/env python3
"""Causal-LM or SFT LoRA training speed and peak memory of a decoder: loraft vs PyTorch + PEFT,
same model (a Llama-family .gguf or HF directory, or a GPT-2 directory), batch, block length,
LoRA config (r 8 on every linear layer: Llama's seven projections, GPT-2's c_attn, c_proj and
c_fc; dropout 0.05), AdamW, thread count; each side in its own process.

    bench/bench-decoder-vs-pytorch.py models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        [--loraft build/loraft] [--task causal-lm|sft] [--corpus FILE] \\
        [--batch 4] [--seq 256] [--steps 6] [--threads 2]

causal-lm: loraft trains on the corpus (default Persuasion) packed into blocks. sft: loraft
trains on instruction data (default Dolly) rendered with the model's chat template and packed
into rows of up to --seq tokens (data.packing), the loss on the answers only; its tokens/s
counts the real tokens of those rows (a row is rarely filled to the last token, so the padded
batch computes a little more than it counts). PyTorch runs on random ids of the full shape
[batch, seq], with labels -100 on the first half of every row for sft (the speed of a step
does not depend on the ids, nor on which labels are ignored). Needs torch, transformers, peft and, for a .gguf,
gguf (pip). Informative only: speed lives in bench/, never in tests.
"""
import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

TARGETS = {"llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
           "gpt2": ["c_attn", "c_proj", "c_fc"]}


def targets(model):
    """Every linear layer of the model's architecture (a .gguf is taken for a Llama)."""
    if model.endswith(".gguf"):
        return TARGETS["llama"]
    with open(os.path.join(model, "config.json")) as f:
        return TARGETS[json.load(f)["model_type"]]


def default_corpus(a):
    if a.corpus:
        return a.corpus
    return ("../shared/data/instructions/dolly_open_qa.jsonl" if a.task == "sft"
            else "../shared/data/austen/persuasion.txt")


def pytorch_side(a):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    d, f = (os.path.split(a.model) if a.model.endswith(".gguf") else (a.model, None))
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                             lora_dropout=0.05,
                                             target_modules=targets(a.model)))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    ids = torch.randint(100, 20000, (a.batch, a.seq), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    if a.task == "sft":
        labels[:, : a.seq // 2] = -100
    for s in range(a.steps + 1):
        if s == 1:
            t0 = time.time()
        model(input_ids=ids, labels=labels).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
    dt = (time.time() - t0) / a.steps
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"tokens_per_s": a.batch * a.seq / dt, "peak_rss_mib": rss}))


def loraft_side(a):
    data = ({"train_file": default_corpus(a), "max_length": a.seq, "packing": True}
            if a.task == "sft" else
            {"train_file": default_corpus(a), "max_length": a.seq, "text_unit": "paragraph"})
    cfg = {"model": {"model": a.model, "task": a.task},
           "data": data,
           "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": targets(a.model)},
           "train": {"max_steps": a.steps, "batch_size": a.batch, "learning_rate": 5e-4,
                     "eval_strategy": "no", "save_strategy": "no", "threads": a.threads}}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "cfg.json")
        cfg["train"]["output_dir"] = os.path.join(d, "out")
        with open(path, "w") as f:
            json.dump(cfg, f)
        out = subprocess.run([a.loraft, "train", "--config", path], capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"loraft train failed: {out.stderr.strip()}")
    tok = re.search(r"epoch 1: train loss \S+, (\d+) tokens/s", out.stdout)
    mem = re.search(r"peak memory (\d+) MiB", out.stdout)
    return {"tokens_per_s": float(tok.group(1)), "peak_rss_mib": float(mem.group(1))}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--loraft", default="build/loraft")
    ap.add_argument("--task", choices=["causal-lm", "sft"], default="causal-lm")
    ap.add_argument("--corpus", help="default: Persuasion (causal-lm), Dolly open QA (sft)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--pytorch-side", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.pytorch_side:
        return pytorch_side(a)
    ours = loraft_side(a)
    theirs = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--pytorch-side"],
                            capture_output=True, text=True)
    if theirs.returncode:
        sys.exit(f"PyTorch side failed: {theirs.stderr.strip()[-500:]}")
    ref = json.loads(theirs.stdout.strip().splitlines()[-1])
    print(f"{'':16}{'tokens/s':>10}{'peak RSS MiB':>14}")
    for name, r in (("loraft", ours), ("pytorch + peft", ref)):
        print(f"{name:16}{r['tokens_per_s']:10.0f}{r['peak_rss_mib']:14.0f}")


if __name__ == "__main__":
    main()
