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
  bpe_gpt2_qwen2.jsonl    GPT-2's vocabulary with Qwen2's normalizer (NFC), pre-tokenizer and
                          post-processor (transformers' Qwen2Converter), Qwen's chat tokens and
                          added tokens whose spelling NFC changes; the texts add NFC cases
  bpe_nfc.txt             `tokenizers`' NFC of every code point it changes and of the canonical
                          decomposition of every other composed one (not Hangul): "in -> out",
                          code points in hex. Its NFC has Unicode 9.0 data, so this is the
                          reference, not Python's unicodedata (whose version follows Python's)
  bpe_gpt2_o200k.jsonl    GPT-2's vocabulary with Phi-4-mini's pre-tokenizer: Split on GPT-4o's
                          regex (o200k_base), Isolated, then ByteLevel without its regex; the
                          texts add mixed case, marks, Lt/Lm letters, contractions and the
                          "[\r\n/]*" tail (the GGUF "gpt-4o" tests the same ids)
  bpe_gpt2_tekken.jsonl   GPT-2's vocabulary with Mistral-Nemo's pre-tokenizer: Split on the Tekken
                          regex (o200k's without contractions, one digit per number), Isolated,
                          ByteLevel without its regex, and ignore_merges as Mistral's
                          tokenizer.json files have it; o200k's texts plus digit runs (the GGUF
                          "tekken" tests the same ids)
  bpe_smollm2.jsonl       SmolLM2 as transformers converts its GGUF (ByteLevel only)
  bpe_smollm2_digits.jsonl  SmolLM2 with its own Digits + ByteLevel pre-tokenizer (the GGUF "smollm")
"""
import json
import os
import random
import sys

try:
    from tokenizers import AddedToken, Tokenizer, normalizers
except ImportError:
    sys.exit("make-bpe-goldens.py needs PyPI `tokenizers` (see the setup at the top of this script)")

SHARED = os.environ.get("LORAFT_SHARED_DATA", "../shared/data")
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# transformers' Qwen2Converter (convert_slow_tokenizer.py): Llama-3's regex, one digit per number.
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")
# GPT-4o's (tiktoken's o200k_base), as Phi-4-mini's tokenizer.json and transformers'
# TikTokenConverter have it.
O200K = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+"
         r"(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+"
         r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}"
         r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# Mistral's Tekken (tekken.json's "pattern", which transformers' MistralConverter copies into
# Mistral-Nemo's and Mistral-Small-24B's tokenizer.json): o200k's without the contraction
# suffixes, with one digit per number.
TEKKEN = O200K.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)?", "").replace(r"\p{N}{1,3}", r"\p{N}")

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


# Texts NFC changes, or must leave alone: decomposed accents (Latin, Greek, Vietnamese), marks
# out of canonical order, Hangul jamo, composition exclusions and singletons, non-starter
# decompositions, blocked marks, marks Unicode assigned after 9.0 (starters to `tokenizers`), and
# the added tokens of qwen2_edit spelled other ways.
NFC_TEXTS = [
    "cafe\u0301 nai\u0308ve re\u0301sume\u0301", "A\u030A \u212B \u00C5 \u2126 \u212A",
    "\u03B1\u0301\u03B9\u0308\u0301 \u1F00\u0345 \u03C9\u0313\u0342\u0345",
    "Tie\u0302\u0301ng Vie\u0323\u0302t", "Tie\u0301\u0302ng vie\u0302\u0323t e\u0323\u0302",
    "a\u0301\u0316\u0328\u0300", "o\u031B\u0323\u0301 u\u0301\u031B\u0323",
    "\u1E0A\u0323 \u1E0C\u0307 D\u0307\u0323",
    "\u1100\u1161 \u1100\u1161\u11A8 \uAC00\u11A8 \uAC00\u11A7 \uAC01\u11A8",
    "\u1112\u1161\u11AB\u1100\u1173\u11AF", "\u1100\u0300\u1161 \u1113\u1161 \u1100\u1176",
    "\u0958\u0959 \u0915\u093C \u09DC \u0A33 \u0B5C", "\uFB1D \uFB2C \u05E9\u05BC\u05C1",
    "\u0344 \u0308\u0301 \u0F73 \u0F71\u0F72 \u0340\u0341\u0343 \u0374 \u037E \u0387",
    "\U0001D15E\U0001D160 \U0001D1BB\U0001D1C0", "a\u0305\u0301 a\u0316\u0301 a\u0301\u0301",
    "\u304B\u3099 \u30AB\u3099 \u306F\u309A", "\u0B47\u0B3E \u0B47\u0B57 \u0DD9\u0DCF\u0DCA",
    "\U00011099\U000110BA \U00011131\U00011127", "a\u1DF6\u0301 \U00011935\U00011930 a\u0898\u0316",
    "\uF900\uF91B \U0002F800 \u2000\u2001 \u1FEE \u1FED", "e" + "\u0301\u0316" * 20,
    "\u0301\u0301start", "x\u0300" * 30, "\u00E9" * 50, "e\u0301" * 50,
    "1\u0301 23\u0308 \u0661\u0654 '\u0301s 'S\u0301",
    "cafe\u0301! caf\u00E9! <e\u0301> <\u00E9> \u1100\u1161\u11A8\u1100\u1161",
    "x cafe\u0301!y  \u212Bx\u00C5 A\u030A <|im_start|>e\u0301<|im_end|>\u0301",
    "<\u00E9>\u0301 <e\u0301>\u0301 \u1100\u1161\u11A8\u11A8 \uAC01!",
]
# Pieces for random texts that NFC changes.
NFC_FRAGMENTS = ["e", "a", "o", "A", "\u03B1", "\u1100", "\u1161", "\u11A8", "\uAC00", "\u0301",
                 "\u0300", "\u0302", "\u0308", "\u0323", "\u0316", "\u031B", "\u0345", "\u0313",
                 "\u3099", "\u212B", "\u2126", "\u0958", "\u0344", "\u093C", "\u0915", " ", "1",
                 "'s", "\n", "cafe\u0301!", "<e\u0301>", "<\u00E9>", "<|im_end|>"]


# Texts for o200k's regex: its "upper" class [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and "lower" class
# [\p{Ll}\p{Lm}\p{Lo}\p{M}] overlap (Lm, Lo, marks; a mark is also [^\r\n\p{L}\p{N}]), so
# words cut at case changes and where Oniguruma backtracks: mixed case, marks before, inside and
# after words, titlecase (Lt) and modifier (Lm) letters, contractions after either kind of word,
# digit runs, the "[\r\n/]*" tail, CR/LF mixes, trailing spaces, letters and marks of Unicode 16.0.
O200K_TEXTS = [
    "CamelCaseWord camelCase HTTPServer XMLHttpRequest iPhone eBay ABCdef abcDEF aBcDeF",
    "ALLCAPS SHOUTING WORDS A I OK", "McDonald's MCDONALD'S O'Neil's O'NEIL'S",
    "DON'T I'M we'Ve They'RE you'LL He'D it'S WE'LL ABC'd abc'D x'ſ X'ſ", "don't'll'S",
    "'s'S 'T' 'rE 'Ve 'm 'LL 'd", "A'  a' 'a '", "HTTPServer's URLs IDs's",
    "e\u0301 E\u0301 e\u0301E\u0301 E\u0301e \u0301ABC def \u0301abc \u0301 \u0301\u0301",
    "!\u0301ABC !!\u0301 \u0301! (\u0301) \n\u0301x \r\u0301X \t\u0301A",
    "A\u0301B\u0301C \u00c9COLE \u00e9cole \u00c9cole \u00e9COLE",
    "\u0928\u092e\u0938\u094d\u0924\u0947 \u0939\u093f\u0928\u094d\u0926\u0940 A\u093f",
    "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22 \u0e01\u0e34\u0e19\u0e02\u0e49\u0e32\u0e27",
    "\u0645\u064e\u0631\u0652\u062d\u064e\u0628\u064b\u0627 \u05e9\u05b8\u05c1\u05dc\u05d5\u05b9\u05dd",
    "\u01c5ungla \u01c5 \u01c8 \u01cba \u01c5AB \u01c4\u01c5\u01c6 A\u01c5b",
    "\u02b0 \u02b0\u02b0A A\u02b0 A\u02b0B AB\u02b0CD \u02b0ABC x\u02b0AB a\u02b0b",
    "\u30ab\u30bf\u30ab\u30ca\u30fc\u30c6\u30b9\u30c8 \u30fcA A\u30fc AB\u30fcCD \u65e5\u672cABC ABC\u65e5\u672c",
    "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 \u0130stanbul \u0049\u0307",
    "\u1c89\u1c8a \u1c8a\u1c89 \U00010d50\U00010d70 x\u0897Y \U00010d4eAB \U00013460A",
    "1 12 123 1234 1234567 x12345y A1B2 \u0661\u0662\u0663\u0664 \u216b\u00b2\u00b3 12ab AB12",
    "a/b//c\n/", "path/to/file\n//x", "!\r\n/", "?/\r\n", "//\n\n/", "x /\n", " /a",
    "http://a.b/c/ d// \n/ \r/ ://\r\n\r\n//x", "a\r\n\r\nb", "\r\r\n\n", " \r\n ",
    "x \r", "\r\n  y", "\n \n\t\nA", "word   ", "WORD \t ", "a\u00a0\u00a0", "Word\n ",
    " ABC", "  ABC", " \u0301ABC", "\t\u01c5X", " 'S", " ' S", "'\u0301s",
]
# Pieces for random texts against o200k's regex.
O200K_FRAGMENTS = ["A", "B", "a", "b", "Ab", "aB", "AB", "ab", "\u01c5", "\u02b0", "\u30fc", "\u65e5",
                   "\u0301", "\u093f", "\u0e34", "\u064e", "\u00c9", "\u00e9", "\u0130", "'s", "'S",
                   "'T", "'re", "'LL", "'ſ", "'", " ", "  ", "\t", "\n", "\r", "\r\n", "/", "//",
                   "!", ".", "1", "12", "1234", "\u0661", "\u00a0", "\u1c89", "\u1c8a"]
# Digit runs for Tekken's \p{N} (one digit per piece, where o200k takes three), next to letters,
# contractions and other scripts' digits.
TEKKEN_TEXTS = ["2024-07-18 3.14159 1,000,000 0x1F 007 v1.2.3 +44 20 7946 0958",
                "\u0661\u0662\u0663 \u06f1\u06f2\u06f3 \u0967\u0968\u0969 \u0e51\u0e52\u0e53 \u00bd\u2153 "
                "\u2460\u2461 \u216b12 12\u00b2", "abc123def ABC123DEF 1st 2nd 3rd 10th 99's 1990's",
                "don't I'M 12'S x'd"]


def random_texts(n, rng, fragments=FRAGMENTS):
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 14)):
            r = rng.random()
            if r < 0.7:
                parts.append(rng.choice(fragments))
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


def qwen2_edit(tk):
    """GPT-2 turned Qwen2-like (transformers' Qwen2Converter), with Qwen's chat tokens and added
    tokens whose spelling NFC changes: normalized ones match as NFC spells them, the others only
    as written in the raw text."""
    j = json.loads(tk.to_str())
    j["normalizer"] = {"type": "NFC"}
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": QWEN2}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}
    j["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False,
                           "use_regex": False}
    tk = Tokenizer.from_str(json.dumps(j))
    tk.add_special_tokens([AddedToken("<|im_start|>", normalized=False),
                           AddedToken("<|im_end|>", normalized=False)])
    tk.add_tokens([AddedToken("cafe\u0301!", normalized=True),
                   AddedToken("<e\u0301>", normalized=False),
                   AddedToken("<\u00E9>", normalized=False),
                   AddedToken("\u212B", normalized=True, lstrip=True),
                   AddedToken("\u1100\u1161\u11A8", normalized=True)])
    j = json.loads(tk.to_str())
    tk = Tokenizer.from_str(tk.to_str())  # as the test loads it: normalizer before added tokens
    return tk, {k: j[k] for k in ("normalizer", "pre_tokenizer", "post_processor", "added_tokens")}


def write_nfc_table(path):
    nfc, nfd = normalizers.NFC(), normalizers.NFD()
    def hexes(s):
        return " ".join(f"{ord(c):04X}" for c in s)
    lines = []
    for c in range(0x110000):
        if 0xD800 <= c <= 0xDFFF or 0xAC00 <= c <= 0xD7A3:
            continue
        one, d = chr(c), nfd.normalize_str(chr(c))
        if nfc.normalize_str(one) != one:
            lines.append(f"{hexes(one)} -> {hexes(nfc.normalize_str(one))}")
        elif d != one:
            lines.append(f"{hexes(d)} -> {hexes(nfc.normalize_str(d))}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{path}: {len(lines)} lines, {os.path.getsize(path)} bytes")


def split_edit(tk, regex, ignore_merges=False):
    """GPT-2's vocabulary with a tiktoken-style pre-tokenizer, Split(regex) + ByteLevel, as
    transformers' TikTokenConverter / MistralConverter write it: Phi-4-mini's (O200K) or
    Mistral-Nemo's (TEKKEN, whose tokenizer.json has ignore_merges)."""
    j = json.loads(tk.to_str())
    j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    edit = {"pre_tokenizer": j["pre_tokenizer"]}
    if ignore_merges:
        j["model"]["ignore_merges"] = edit["ignore_merges"] = True
    return Tokenizer.from_str(json.dumps(j)), edit


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
    tk, edit = qwen2_edit(Tokenizer.from_file(f"{SHARED}/tokenizers/gpt2/tokenizer.json"))
    qwen2_texts = (texts + NFC_TEXTS + [" ".join(NFC_TEXTS)] +
                   random_texts(200, random.Random(9), NFC_FRAGMENTS))
    write("tests/golden/bpe_gpt2_qwen2.jsonl", "gpt2", tk, edit, qwen2_texts)
    tk, edit = split_edit(Tokenizer.from_file(f"{SHARED}/tokenizers/gpt2/tokenizer.json"), O200K)
    o200k_texts = (texts + O200K_TEXTS + [" ".join(O200K_TEXTS)] +
                   random_texts(300, random.Random(10), O200K_FRAGMENTS))
    write("tests/golden/bpe_gpt2_o200k.jsonl", "gpt2", tk, edit, o200k_texts)
    tk, edit = split_edit(Tokenizer.from_file(f"{SHARED}/tokenizers/gpt2/tokenizer.json"), TEKKEN,
                          ignore_merges=True)
    write("tests/golden/bpe_gpt2_tekken.jsonl", "gpt2", tk, edit, o200k_texts + TEKKEN_TEXTS)
    write_nfc_table("tests/golden/bpe_nfc.txt")
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
