#!/usr/bin/env python3
"""bench_bpe_hf.py: the Hugging Face side of bench/bench_bpe.c, one thread (informational).
  python3 bench/bench_bpe_hf.py TOKENIZER FILE [REPEATS]
TOKENIZER is a tokenizer.json or a directory holding one; FILE is JSONL with a "text" field per
line, or any other file, read as one text. Times `tokenizers` Tokenizer.encode one text at a
time, no special tokens, as bench_bpe does; best of REPEATS passes (default 3), in MB/s of UTF-8
text and tokens/s. `tokenizers` keeps a word cache (10,000 words per thread), loraft does not."""
import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before importing tokenizers
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from tokenizers import Tokenizer  # noqa: E402


def main():
    path, file = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    if os.path.isdir(path):
        path = os.path.join(path, "tokenizer.json")
    if file.endswith(".jsonl"):
        texts = [json.loads(line)["text"] for line in open(file, encoding="utf-8")]
    else:
        texts = [open(file, encoding="utf-8").read()]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    t0 = time.perf_counter()
    tk = Tokenizer.from_file(path)
    load = time.perf_counter() - t0
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokens = sum(len(tk.encode(t, add_special_tokens=False).ids) for t in texts)
        best = min(best, time.perf_counter() - t0)
    print(f"tokenizers: load {load:.3f} s; {len(texts)} texts, {mb:.1f} MB, {tokens} tokens")
    print(f"  best of {repeats}: {best:.3f} s  {mb / best:.1f} MB/s  {tokens / best / 1e6:.2f} M "
          "tokens/s (1 thread)")


if __name__ == "__main__":
    main()
