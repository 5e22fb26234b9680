#!/usr/bin/env python3
"""make-bpe-goldens.py: writes tests/golden/bpe_*.jsonl, Hugging Face `tokenizers` ids for a few
hundred texts this script writes itself, for tests/test_bpe.c. Run from the repository root:

  python3 -m venv /tmp/venv-bpe
  /tmp/venv-bpe/bin/pip install tokenizers transformers gguf torch   # transformers' GGUF loader imports torch
  scripts/extract-smollm2-tokenizer.sh models/smollm2-tokenizer     # SmolLM2's tokenizer.json, from its GGUF
  /tmp/venv-bpe/bin/python scripts/make-bpe-goldens.py [SMOLLM2_DIR]

(torch is already in scripts/setup-python.sh's venv: a line with its site-packages in a .pth file
of /tmp/venv-bpe saves downloading it again.) Without SMOLLM2_DIR (default
models/smollm2-tokenizer) only the GPT-2 goldens are written.

Each file's first line is {"tokenizer": ..., "edit": {...}}: the top-level tokenizer.json keys to
replace (and "ignore_merges" for model.ignore_merges) to get the tokenizer the ids come from, so
the test rebuilds it from the unmodified file. Then one line per text: {"hex": UTF-8 of the text,
"ids": without special tokens, "ids_special": with, "decoded_hex": decode(ids) of the ids with
special tokens, "decoded_skip_hex": the same with skip_special_tokens}.
  bpe_gpt2.jsonl          GPT-2 (../shared/data/tokenizers/gpt2), unmodified
  bpe_gpt2_llama3.jsonl   GPT-2's vocabulary with Llama-3's pre-tokenizer, ignore_merges, a BOS
                          template and extra added tokens (lstrip/rstrip, normalized or not)
  bpe_smollm2.jsonl       SmolLM2 as transformers converts its GGUF (ByteLevel only)
  bpe_smollm2_digits.jsonl  SmolLM2 with its own Digits + ByteLevel pre-tokenizer (the GGUF "smollm")
"""
import json
import os
import random
import sys

try:
    from tokenizers import AddedToken, Tokenizer
except ImportError:
    sys.exit("make-bpe-goldens.py needs PyPI `tokenizers` (see the setup at the top of this script)")

SHARED = os.environ.get("LORAFT_SHARED_DATA", "../shared/data")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

FIXED = [
    "", " ", "  ", "a", "Hello, world!", "The quick brown fox jumps over the lazy dog.",
    "I'm you're he's we've they'll I'd can't won't", "'s 't 're 've 'm 'll 'd", "'S 'T 'RE 'Ve 'lL 'D",
    "don't DON'T Don'T", "'ſ 'ſt x'ſ", "'x '1 ''s '''", "rock'n'roll", "O'Neil's",
    "0", "12", "123", "1234", "12345678901234567890", "3.14159", "1,000,000", " 2024", "a  1",
    "x 1 2  3   4", "v1.2.3-rc4", "\u0661\u0662\u0663 \u0966\u0967", "\u00b2\u00b3\u00bd \u2167 \u3007",
    "a   b", "  leading", "trailing  ", "\n", "\n\n\n", " \n \n ", "\r\n", "a\r\nb", "a \r\n\r\n b",
    "\t", "\t\tx", "a \t b", "x\u00a0y", "\u3000\u3000z", "a\u2028b\u2029c", "a \u0085 b", "\u200bzero",
    "end with space ", "end with newline\n", "   \n  \t  \n", "a\n\n\n\nb", "  a  \n  b  ",
    "日本語のテキストです。", "中文分词测试，很好。", "한국어 텍스트", "ไทยภาษา", "नमस्ते दुनिया",
    "Привет, мир!", "مرحبا بالعالم", "שלום עולם", "Γειά σου Κόσμε", "Ελληνικά 123",
    "👍", "👍🏽", "👨‍👩‍👧‍👦 family", "🤗 hugging face", "🇫🇷🇩🇪", "emoji🙂inside", "a😀😀😀b",
    "e\u0301", "e\u0301\u0301\u0301", "a\u0308\u0304", "\u0301start", "Z\u0351\u0352\u0353algo",
    "\x00", "a\x00b", "\x01\x02\x7f", "\x1b[31mred\x1b[0m", "bell\x07", "\x0b\x0c",
    "mixed English и русский 和中文 and ñ", "café naïve résumé", "Straße ß ẞ", "ﬁ ﬂ ﬆ", "İstanbul ı",
    "\ufeffBOM", "\ufffd", "\U0010ffff", "\ue000private", "\U00013460\U00010d40\U00011de0",
    "<|endoftext|>", "a<|endoftext|>b", "<|endoftext|><|endoftext|>", " <|endoftext|> ",
    "x  <|endoftext|>  y", "<|endoftext|", "< |endoftext|>", "<|ENDOFTEXT|>", "<<|endoftext|>>",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n", "<|im_start|><|im_end|>",
    "<mask>", "a <mask> b", "a<mask>b", "  <mask>  x", "[LSTRIP] x", "x   [LSTRIP]", "<tight>  z",
    "added word here", "addedword", "x added word", "<mask><mask>",
    "http://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Program Files\\x",
    "def f(x):\n    return x**2  # square\n", "{\"json\": [1, 2.5, null]}", "a-b_c.d/e",
    "!!!???...", "---", "====", "$$$ 100%", "(parenthetical)", "\"quoted\" 'single'",
    "x" * 300, "ab" * 200, " " * 100, "\n" * 50, "9" * 100, "é" * 100, "日" * 100,
]

FRAGMENTS = ["the", "The", " of", "and", " a", "'s", "'re", "'LL", "n't", " ", "  ", "   ", "\n",
             "\n\n", "\t", "\r\n", "1", "42", "1234", "3.5", ",", ".", "!", "?", "-", "'", '"', "(",
             ")", "...", "é", "ü", "日本", "中", "한", "ก", "я", "ש", "ع", "👍", "🏽", "\u200d",
             "\u0301", "\u00a0", "\u3000", "\x00", "\x7f", "<|endoftext|>", "<|im_start|>",
             "<|im_end|>", "<mask>", "[LSTRIP]", "<tight>", "added word", "ſ", "K", "²", "Ⅷ"]


def random_texts(n, rng):
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(FRAGMENTS))
            elif r < 0.85:
                parts.append(chr(rng.randint(0x20, 0x7E)) * rng.randint(1, 3))
            else:  # any scalar value, mostly from the BMP
                c = rng.randint(0x80, 0xFFFF if rng.random() < 0.8 else 0x10FFFF)
                parts.append(chr(c) if not 0xD800 <= c <= 0xDFFF else "x")
        texts.append("".join(parts))
    return texts


def llama3_edit(tk):
    """GPT-2 turned Llama-3-like: what tokenizer.json keys change (the test applies the same)."""
    j = json.loads(tk.to_str())
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    j["post_processor"] = {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                  {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [50256],
                                              "tokens": ["<|endoftext|>"]}}}]}
    j["model"]["ignore_merges"] = True
    tk = Tokenizer.from_str(json.dumps(j))
    tk.add_special_tokens([AddedToken("<mask>", lstrip=True, normalized=False),
                           AddedToken("[LSTRIP]", lstrip=True, rstrip=True, normalized=True)])
    tk.add_tokens([AddedToken("added word", normalized=False), AddedToken("<tight>", rstrip=True)])
    j = json.loads(tk.to_str())
    edit = {k: j[k] for k in ("pre_tokenizer", "post_processor", "added_tokens")}
    edit["ignore_merges"] = True
    return tk, edit


def digits_edit(tk):
    j = json.loads(tk.to_str())
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
    return Tokenizer.from_str(json.dumps(j)), {"pre_tokenizer": j["pre_tokenizer"]}


def write(path, tokenizer_name, tk, edit, texts):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"tokenizer": tokenizer_name, "edit": edit}) + "\n")
        for t in texts:
            ids = tk.encode(t, add_special_tokens=False).ids
            special = tk.encode(t, add_special_tokens=True).ids
            f.write(json.dumps({
                "hex": t.encode().hex(), "ids": ids, "ids_special": special,
                "decoded_hex": tk.decode(special, skip_special_tokens=False).encode().hex(),
                "decoded_skip_hex": tk.decode(special, skip_special_tokens=True).encode().hex(),
            }) + "\n")
    print(f"{path}: {len(texts)} texts, {os.path.getsize(path)} bytes")


def main():
    texts = FIXED + random_texts(300, random.Random(8))
    gpt2 = Tokenizer.from_file(f"{SHARED}/tokenizers/gpt2/tokenizer.json")
    write("tests/golden/bpe_gpt2.jsonl", "gpt2", gpt2, {}, texts)
    tk, edit = llama3_edit(Tokenizer.from_file(f"{SHARED}/tokenizers/gpt2/tokenizer.json"))
    write("tests/golden/bpe_gpt2_llama3.jsonl", "gpt2", tk, edit, texts)
    sm_dir = sys.argv[1] if len(sys.argv) > 1 else "models/smollm2-tokenizer"
    sm_json = os.path.join(sm_dir, "tokenizer.json")
    if not os.path.exists(sm_json):
        print(f"{sm_json} not found: SmolLM2 goldens not written (scripts/extract-smollm2-tokenizer.sh)")
        return
    sm = Tokenizer.from_file(sm_json)
    write("tests/golden/bpe_smollm2.jsonl", "smollm2", sm, {}, texts)
    tk, edit = digits_edit(sm)
    write("tests/golden/bpe_smollm2_digits.jsonl", "smollm2", tk, edit, texts)


if __name__ == "__main__":
    main()
