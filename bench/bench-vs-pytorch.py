#!/usr/bin/env python3
"""LoRA training-step throughput and peak memory: loraft vs PyTorch + PEFT, same model,
batch, sequence length, LoRA config and thread count; each side in its own process.

    bench/bench-vs-pytorch.py MODEL_DIR [--batch 8] [--seq 128] [--steps 5] [--threads 2]
                              [--device cpu|cuda] [--loraft-bench build/bench_train_step]

Informative only (speed lives in bench/, never in tests).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time


def pytorch_side(a):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    dev = torch.device(a.device)
    model = AutoModelForSequenceClassification.from_pretrained(a.model, dtype=torch.float32)
    targets = a.targets.split(",")
    model = get_peft_model(model, LoraConfig(task_type="SEQ_CLS", r=a.r, lora_alpha=2 * a.r,
                                             lora_dropout=0.1, target_modules=targets)).to(dev)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                            weight_decay=0.01)
    g = torch.Generator().manual_seed(42)
    ids = torch.randint(1000, 21000, (a.batch, a.seq), generator=g).to(dev)
    mask = torch.ones_like(ids)
    labels = (torch.arange(a.batch) % model.config.num_labels).to(dev)
    t0 = 0.0
    for s in range(a.steps + 1):
        if s == 1:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        out = model(input_ids=ids, attention_mask=mask, labels=labels)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else 0
    print(json.dumps({"ms_per_step": 1e3 * dt / a.steps, "tokens_per_s": a.batch * a.seq * a.steps / dt,
                      "peak_rss_mib": peak, "gpu_peak_mib": gpu}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--targets", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--loraft-bench", default="build/bench_train_step")
    ap.add_argument("--pytorch-only", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.targets is None:
        with open(os.path.join(a.model, "config.json")) as f:
            a.targets = "q_lin,v_lin" if json.load(f)["model_type"] == "distilbert" else "query,value"
    if a.pytorch_only:
        return pytorch_side(a)
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), OPENBLAS_NUM_THREADS=str(a.threads))
    ours = subprocess.run([a.loraft_bench, a.model, "--device", a.device, "--batch", str(a.batch),
                           "--seq", str(a.seq), "--steps", str(a.steps), "--r", str(a.r),
                           "--targets", a.targets], env=env, capture_output=True, text=True)
    if ours.returncode:
        sys.exit(f"loraft bench failed: {ours.stderr}")
    theirs = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--pytorch-only"], env=env,
                            capture_output=True, text=True)
    if theirs.returncode:
        sys.exit(f"pytorch side failed: {theirs.stderr[-2000:]}")
    pt = json.loads(theirs.stdout.strip().splitlines()[-1])
    print(ours.stdout.strip())
    print(f"pytorch+peft {a.device}: batch {a.batch} x {a.seq}, {a.steps} steps: "
          f"{pt['ms_per_step']:.1f} ms/step, {pt['tokens_per_s']:.0f} tokens/s, "
          f"peak RSS {pt['peak_rss_mib']:.0f} MiB" +
          (f", GPU peak {pt['gpu_peak_mib']:.0f} MiB" if pt["gpu_peak_mib"] else ""))


if __name__ == "__main__":
    main()
