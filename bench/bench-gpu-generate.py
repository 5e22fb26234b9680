#!/usr/bin/env python3
"""Generation speed on one GPU: loraft (build/bench_generate) against PyTorch + transformers
(model.generate, bf16, SDPA), greedy, one sequence, on SmolLM2-135M's config with random weights
(bench-gpu-e2e.py's CONFIGS): a prompt of --prompt random ids, then exactly --new tokens,
without and with a LoRA adapter (r 8 on q_proj and v_proj, applied unmerged on both sides).
loraft replays its recorded decode step as one CUDA graph a token; the "ops" row (base model
only) decodes op by op (bench_generate --graphs off), for what the graph saves.

    bench/bench-gpu-generate.py [--prompt 128] [--new 256] [--device cuda|cpu] [--smoke]
        [--loraft-bench build/bench_generate] [--no-pytorch] [--timeout 120]

Each side in its own process, one warm-up run, then the median of three. PyTorch's prefill is
generate with one new token; its decode rate is the rest of a full generate's time over the
other new tokens. Informative only: speed lives in bench/, never in tests.
"""
import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "bench-gpu-e2e.py"))
e2e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e2e)
TARGETS = ["q_proj", "v_proj"]


def pytorch_side(a):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(0)
    dev = torch.device(a.device)
    cfg = json.loads(a.pytorch_config)
    hf = AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = AutoModelForCausalLM.from_config(hf, attn_implementation="sdpa", dtype=dtype)
    if a.lora:
        model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", r=8, lora_alpha=16,
                                                 target_modules=TARGETS))
    model = model.to(dev).eval()
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(0, cfg["vocab_size"], (1, a.prompt), generator=g).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def timed(new):
        sync()
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=new, min_new_tokens=new, do_sample=False,
                                 pad_token_id=0)
        sync()
        assert out.shape[1] == a.prompt + new, out.shape
        return time.perf_counter() - t0

    timed(a.new)  # warm-up
    prefill = statistics.median(timed(1) for _ in range(3))
    full = statistics.median(timed(a.new) for _ in range(3))
    print(json.dumps({"prefill_ms": 1e3 * prefill,
                      "tokens_per_s": (a.new - 1) / max(full - prefill, 1e-9)}))


def run(cmd, timeout):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    if p.returncode:
        return None, (p.stderr or p.stdout).strip().splitlines()[-1:] or ["failed"]
    return p.stdout, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--loraft-bench", default="build/bench_generate")
    ap.add_argument("--no-pytorch", action="store_true")
    ap.add_argument("--timeout", type=int, default=120)
    ap.add_argument("--pytorch-config")  # internal: this script's PyTorch side
    ap.add_argument("--lora", action="store_true")
    a = ap.parse_args()
    if a.pytorch_config:
        return pytorch_side(a)
    cfg = dict(e2e.CONFIGS["smollm2"], **(e2e.SMOKE["smollm2"] if a.smoke else {}))
    if a.smoke:
        a.prompt, a.new = min(a.prompt, 8), min(a.new, 8)
    precision = "bf16" if a.device == "cuda" else "fp32"
    print(f"# generate: SmolLM2-135M config, random weights, greedy, prompt {a.prompt}, "
          f"{a.new} new tokens; loraft {precision} on {a.device}, PyTorch + transformers "
          f"{'bf16' if a.device == 'cuda' else 'fp32'} SDPA (model.generate)")
    print(f"{'gen':5} {'case':12} {'side':8} {'prefill ms':>10} {'tokens/s':>9}")
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f)
        for lora in (False, True):
            case = "lora q,v" if lora else "base"
            cmd = [a.loraft_bench, d, "--random", "--device", a.device, "--precision", precision,
                   "--prompt", str(a.prompt), "--new", str(a.new)]
            cmd += ["--targets", ",".join(TARGETS)] if lora else []
            for side, flags in [("loraft", [])] + ([] if lora else [("ops", ["--graphs", "off"])]):
                out, why = run(cmd + flags, a.timeout)
                m = out and re.search(r"prefill ([\d.]+) ms, decode (\d+) tokens/s", out)
                if m:
                    print(f"gen   {case:12} {side:8} {float(m[1]):10.2f} {int(m[2]):9d}")
                else:
                    print(f"gen   {case:12} {side:8} failed: {why or out}")
            if a.no_pytorch:
                continue
            cmd = [sys.executable, __file__, "--pytorch-config", json.dumps(cfg), "--device",
                   a.device, "--prompt", str(a.prompt), "--new", str(a.new)]
            out, why = run(cmd + (["--lora"] if lora else []), a.timeout)
            if out:
                r = json.loads(out.strip().splitlines()[-1])
                print(f"gen   {case:12} {'pytorch':8} {r['prefill_ms']:10.2f} "
                      f"{r['tokens_per_s']:9.0f}")
            else:
                print(f"gen   {case:12} {'pytorch':8} failed: {why}")
        sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
