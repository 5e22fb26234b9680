#!/usr/bin/env python3
"""check_tokenizer_parity.py: compares `loraft tokenize` with Hugging Face `tokenizers`
id for id, and prints the count of equal texts and the first differences. Run by hand:

  python3 bench/check_tokenizer_parity.py --bin build/loraft \
      --tokenizer ../shared/data/tokenizers/bert-base-uncased ../shared/data/imdb/train_full.jsonl
  python3 bench/check_tokenizer_parity.py --bin build/loraft --tokenizer DIR --codepoints

--codepoints checks every Unicode scalar value but U+0000 (which the CLI's JSON input
cannot carry; the goldens cover it), alone and between letters and accents, instead of a
file. Exit status 1 when anything differs.
"""
import argparse
import json
import subprocess
import sys

from tokenizers import Tokenizer


def codepoint_texts():
    for c in range(0x110000):
        if c == 0 or 0xD800 <= c <= 0xDFFF:
            continue
        ch = chr(c)
        yield f"{ch} a{ch}b É{ch}\u0301{ch}x {ch}{ch}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="the loraft executable")
    ap.add_argument("--tokenizer", required=True)
    ap.add_argument("--codepoints", action="store_true")
    ap.add_argument("file", nargs="?")
    a = ap.parse_args()
    if a.codepoints:
        texts = list(codepoint_texts())
    else:
        texts = [json.loads(line)["text"] for line in open(a.file, encoding="utf-8")]
    inp = "".join(json.dumps({"text": t}) + "\n" for t in texts)
    run = subprocess.run([a.bin, "tokenize", "--tokenizer", a.tokenizer, "--no-special"],
                         input=inp.encode(), capture_output=True)
    if run.returncode:
        sys.exit(f"{a.bin} failed: {run.stderr.decode()}")
    ours = [json.loads(line)["ids"] for line in run.stdout.decode().splitlines()]
    tk = Tokenizer.from_file(f"{a.tokenizer}/tokenizer.json")
    theirs = [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]
    assert len(ours) == len(texts), (len(ours), len(texts))
    bad = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    print(f"{len(texts) - len(bad)} of {len(texts)} texts id-identical")
    for i in bad[:20]:
        t = texts[i]
        print(f"  text {i} {t[:80]!r} (U+{ord(t[0]):04X})\n    loraft {ours[i][:30]}\n"
              f"    hf     {theirs[i][:30]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
