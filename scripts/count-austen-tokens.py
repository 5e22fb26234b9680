#!/usr/bin/env python3
"""count-austen-tokens.py: the token count of the Austen corpus as Hugging Face's GPT-2
tokenizer gives it under lm_data's packing rule: the golden of tests/test_lm_data.c
(AUSTEN_GPT2_TOKENS). Run from the repository root:

  $(scripts/setup-python.sh --check) scripts/count-austen-tokens.py [AUSTEN_DIR] [TOKENIZER_DIR]

(defaults ../shared/data/austen and ../shared/data/tokenizers/gpt2). The rule (lm_data.h):
each *.txt file, in name order, is one document, read as UTF-8 without newline translation (a
BOM dropped); a file of only whitespace is none. Each is encoded as tokenizer(text) encodes it,
with the tokenizer's own special tokens (GPT-2 adds none), and an EOS goes between consecutive
documents unless the earlier one already ends with it (a WordPiece tokenizer's EOS is [SEP]). Prints each file's count, then the
length of the packed stream (the blocks plus the dropped remainder).

Not run_clm: run_clm reads a .txt a line at a time and puts nothing between documents.
"""
import os
import sys
import time

from transformers import AutoTokenizer


def main():
    corpus = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/austen"
    tok_dir = sys.argv[2] if len(sys.argv) > 2 else "../shared/data/tokenizers/gpt2"
    tok = AutoTokenizer.from_pretrained(tok_dir)
    tok.model_max_length = sys.maxsize  # whole novels: no "longer than 1024" warning
    eos = tok.eos_token_id
    if eos is None:  # WordPiece: the token it ends a text with, [SEP]
        eos = (tok("")["input_ids"] or [None])[-1]
    names = sorted(n for n in os.listdir(corpus) if n.endswith(".txt"))
    stream, last, start = 0, None, time.perf_counter()
    for name in names:
        with open(os.path.join(corpus, name), encoding="utf-8-sig", newline="") as f:
            text = f.read()
        if not text.strip(" \t\r\n\f\v"):
            continue
        ids = tok(text)["input_ids"]
        print(f"{name}\t{len(ids)}")
        if not ids:
            continue
        if last is not None and last != eos:
            stream += 1  # the EOS between this document and the one before
        stream += len(ids)
        last = ids[-1]
    print(f"total\t{stream}\t({len(names)} files, {time.perf_counter() - start:.2f} s)")


if __name__ == "__main__":
    main()
