#!/usr/bin/env python3
"""bench_tokenizer_hf.py: the Hugging Face side of bench/bench_tokenizer.c, one thread.
  python3 bench/bench_tokenizer_hf.py TOKENIZER_DIR FILE.jsonl [REPEATS]
Times `tokenizers` Tokenizer.from_file(tokenizer.json).encode one text at a time (no special
tokens, as loraft's bench), and, for reference, BertTokenizerFast batch encoding; best of
REPEATS passes, in MB/s of UTF-8 text and tokens/s."""
import os

os.environ["RAYON_NUM_THREADS"] = "1"  # before importing tokenizers
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from tokenizers import Tokenizer  # noqa: E402
from transformers import BertTokenizerFast  # noqa: E402


def best_of(repeats, fn):
    best, tokens = float("inf"), 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        tokens = fn()
        best = min(best, time.perf_counter() - t0)
    return best, tokens


def main():
    d, path = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    texts = [json.loads(line)["text"] for line in open(path, encoding="utf-8")]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    tk = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))
    one, tokens = best_of(repeats, lambda: sum(
        len(tk.encode(t, add_special_tokens=False).ids) for t in texts))
    print(f"tokenizers encode one by one: {len(texts)} texts, {mb:.1f} MB, {tokens} tokens")
    print(f"  best of {repeats}: {one:.3f} s  {mb / one:.1f} MB/s  {tokens / one / 1e6:.2f} M "
          "tokens/s (1 thread)")
    fast = BertTokenizerFast.from_pretrained(d)
    batch, tokens = best_of(repeats, lambda: sum(
        len(x) for x in fast(texts, add_special_tokens=False)["input_ids"]))
    print(f"BertTokenizerFast batch: best of {repeats}: {batch:.3f} s  {mb / batch:.1f} MB/s  "
          f"{tokens / batch / 1e6:.2f} M tokens/s (RAYON_NUM_THREADS=1)")


if __name__ == "__main__":
    main()
