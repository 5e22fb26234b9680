#!/usr/bin/env python3
"""PyTorch's attention at bench_kernels' attention shapes: the rate loraft's flash kernels
must beat (issue 10). torch.nn.functional.scaled_dot_product_attention in bf16, forward and
forward + backward, over B*T = 16384 tokens at T = 512 and 2048:

    causal  SmolLM2-135M's heads: NH 9, 3 KV heads (GQA), HS 64, is_causal (the flash kernel)
    padded  DistilBERT's heads: NH 12, HS 64, sequence b keeping T - (b % 4) * T / 8 keys
            (a boolean mask, as HF's SDPA path passes one: the memory-efficient kernel)
    causal128  Llama-3.1-8B's heads: NH 32, 8 KV heads, HS 128, is_causal (the longer T only)
    causal256  Gemma 3 1B's heads: NH 4, 1 KV head, HS 256, is_causal (the longer T only)

FLOPs count only the allowed query-key pairs, as bench_kernels does: 4 * NH * HS * pairs
forward, twice that backward (backward's time is forward + backward minus forward).

    bench/bench-attention-torch.py [--device cuda] [--reps 20] [--smoke]

--smoke: tiny shapes on the CPU, one rep (checks that the script runs). Informative only:
speed lives in bench/, never in tests. Prints one row per case:

    attn  <kind> T=<T> NH=<NH>  fwd <ms> <TFLOP/s>  bwd <ms> <TFLOP/s>
"""
import argparse
import sys
import time


def timed(fn, reps, sync):
    for _ in range(3):
        fn()
    sync()
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    sync()
    return (time.perf_counter() - t0) / reps * 1e3


def case(torch, kind, T, tokens, reps, device):
    F = torch.nn.functional
    NH, NKV, HS = {"causal": (9, 3, 64), "padded": (12, 12, 64), "causal128": (32, 8, 128),
                 "causal256": (4, 1, 256)}[kind]
    B = max(1, tokens // T)
    dt = torch.bfloat16
    q = torch.randn(B, NH, T, HS, device=device, dtype=dt, requires_grad=True)
    k = torch.randn(B, NKV, T, HS, device=device, dtype=dt, requires_grad=True)
    v = torch.randn(B, NKV, T, HS, device=device, dtype=dt, requires_grad=True)
    pairs = 0.0
    if kind.startswith("causal"):
        pairs = B * 0.5 * T * (T + 1.0)
        args = dict(is_causal=True, enable_gqa=NH != NKV)
    else:
        keep = torch.zeros(B, 1, 1, T, dtype=torch.bool, device=device)
        for b in range(B):
            n = T - (b % 4) * T // 8
            keep[b, :, :, :n] = True
            pairs += float(T) * n
        args = dict(attn_mask=keep)
    dout = torch.randn(B, NH, T, HS, device=device, dtype=dt)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def fwd():
        with torch.no_grad():
            F.scaled_dot_product_attention(q, k, v, **args)

    def fwd_bwd():
        out = F.scaled_dot_product_attention(q, k, v, **args)
        out.backward(dout)

    t_fwd = timed(fwd, reps, sync)
    t_both = timed(fwd_bwd, reps, sync)
    t_bwd = max(t_both - t_fwd, 1e-9)
    flops = 4.0 * NH * HS * pairs
    print(f"attn  {kind:<9} T={T:<5} NH={NH:<3} fwd {t_fwd:8.3f} ms {flops / t_fwd * 1e-9:7.1f} "
          f"TFLOP/s  bwd {t_bwd:8.3f} ms {2 * flops / t_bwd * 1e-9:7.1f} TFLOP/s", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.reps < 1:
        sys.exit("bench-attention-torch: --reps must be at least 1")
    try:
        import torch
    except ImportError:
        sys.exit("bench-attention-torch: needs torch (scripts/setup-python.sh makes a venv with it)")
    if a.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench-attention-torch: no CUDA device (use --device cpu --smoke to check it runs)")
    tokens, Ts, reps = (64, (16, 32), 1) if a.smoke else (16384, (512, 2048), a.reps)
    print(f"# PyTorch {torch.__version__} scaled_dot_product_attention, bf16, {a.device}, "
          f"{tokens} tokens a case", flush=True)
    for T in Ts:
        for kind in ("causal", "padded"):
            case(torch, kind, T, tokens, reps, a.device)
    case(torch, "causal128", Ts[-1], tokens, reps, a.device)
    case(torch, "causal256", Ts[-1], tokens, reps, a.device)


if __name__ == "__main__":
    main()
