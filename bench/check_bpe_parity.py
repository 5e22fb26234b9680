#!/usr/bin/env python3
"""check_bpe_parity.py: compares loraft's byte-level BPE (src/bpe.c, through bench_bpe --ids) with
Hugging Face `tokenizers` id for id on whole corpora, and prints the mismatch count per
tokenizer. A one-off check, run by hand (needs PyPI `tokenizers`; see scripts/make-bpe-goldens.py
for the venv):

  python3 bench/check_bpe_parity.py --bin build-bpe/bench_bpe [--smollm2 DIR] [--codepoints]

Texts: every paragraph and every whole book of ../shared/data/austen, every IMDb train_full
review, and each Dolly open-QA record's fields alone and as a ChatML conversation. Tokenizers:
GPT-2 (tokenizer.json, and the vocab.json + merges.txt pair), GPT-2's vocabulary under Llama-3's
pre-tokenizer with ignore_merges, and, with --smollm2 DIR (from
scripts/extract-smollm2-tokenizer.sh), SmolLM2 as transformers converts its GGUF and with its own
Digits + ByteLevel pre-tokenizer. --codepoints checks every Unicode scalar value instead, in a few
contexts each. Exit status 1 when anything differs.
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

SHARED = os.environ.get("LORAFT_SHARED_DATA", os.path.join(os.path.dirname(__file__), "../../shared/data"))
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def corpus_texts():
    texts = []
    for path in sorted(glob.glob(f"{SHARED}/austen/*.txt")):
        book = open(path, encoding="utf-8").read()
        texts.append(book)
        texts += [p for p in book.split("\n\n") if p.strip()]
    texts += [json.loads(line)["text"] for line in open(f"{SHARED}/imdb/train_full.jsonl", encoding="utf-8")]
    for line in open(f"{SHARED}/instructions/dolly_open_qa.jsonl", encoding="utf-8"):
        r = json.loads(line)
        texts += [r["instruction"], r["output"]] + ([r["input"]] if r["input"] else [])
        texts.append(f"<|im_start|>user\n{r['instruction']}<|im_end|>\n<|im_start|>assistant\n"
                     f"{r['output']}<|im_end|>\n")
    return texts


def codepoint_texts():
    for c in range(1, 0x110000):
        if not 0xD800 <= c <= 0xDFFF:
            ch = chr(c)
            yield f"{ch} a{ch}b 1{ch}2 {ch}{ch} '{ch} \n{ch}  {ch}1"


def variant(src, tmp, name, edit):
    """tokenizer.json of src with edit(json) applied, written to tmp/name.json."""
    j = json.load(open(src, encoding="utf-8"))
    edit(j)
    path = os.path.join(tmp, name + ".json")
    json.dump(j, open(path, "w", encoding="utf-8"), ensure_ascii=False)
    return path


def llama3_edit(j):
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    j["model"]["ignore_merges"] = True


def digits_edit(j):
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}


def check(name, binary, ours_path, hf_json, texts, tmp):
    inp = os.path.join(tmp, "texts.jsonl")
    with open(inp, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    run = subprocess.run([binary, "--ids", ours_path, inp], capture_output=True)
    if run.returncode:
        sys.exit(f"{binary} failed: {run.stderr.decode()}")
    ours = [json.loads(line) for line in run.stdout.decode().splitlines()]
    tk = Tokenizer.from_file(hf_json)
    theirs = [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]
    assert len(ours) == len(texts), (len(ours), len(texts))
    bad = [i for i in range(len(texts)) if ours[i] != theirs[i]]
    tokens = sum(len(x) for x in theirs)
    print(f"{name}: {len(bad)} mismatches in {len(texts)} texts ({tokens} tokens)")
    for i in bad[:10]:
        k = next((j for j, (a, b) in enumerate(zip(ours[i], theirs[i])) if a != b),
                 min(len(ours[i]), len(theirs[i])))
        print(f"  text {i} {texts[i][:60]!r}: first difference at token {k}\n"
              f"    loraft {ours[i][max(0, k - 3):k + 5]}\n    hf     {theirs[i][max(0, k - 3):k + 5]}")
    return len(bad)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="build dir's bench_bpe")
    ap.add_argument("--smollm2", help="directory with SmolLM2's tokenizer.json")
    ap.add_argument("--codepoints", action="store_true")
    a = ap.parse_args()
    texts = list(codepoint_texts()) if a.codepoints else corpus_texts()
    gpt2 = f"{SHARED}/tokenizers/gpt2"
    tmp = tempfile.mkdtemp(prefix="bpe_parity_")
    try:
        pair = os.path.join(tmp, "gpt2-pair")
        os.mkdir(pair)
        for f in ("vocab.json", "merges.txt"):
            shutil.copy(f"{gpt2}/{f}", pair)
        llama3 = variant(f"{gpt2}/tokenizer.json", tmp, "gpt2-llama3", llama3_edit)
        runs = [("gpt2", gpt2, f"{gpt2}/tokenizer.json"),
                ("gpt2 vocab.json+merges.txt", pair, f"{gpt2}/tokenizer.json"),
                ("gpt2 vocabulary, llama-3 pre-tokenizer", llama3, llama3)]
        if a.smollm2:
            sm = f"{a.smollm2}/tokenizer.json"
            digits = variant(sm, tmp, "smollm2-digits", digits_edit)
            runs += [("smollm2 (transformers from GGUF)", sm, sm),
                     ("smollm2 with Digits (its hub pre-tokenizer)", digits, digits)]
        bad = sum(check(name, a.bin, ours, hf, texts, tmp) for name, ours, hf in runs)
    finally:
        shutil.rmtree(tmp)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
