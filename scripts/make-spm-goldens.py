#!/usr/bin/env python3
"""make-spm-goldens.py: writes tests/golden/spm_*, goldens of SentencePiece-style BPE (Llama 2,
Mistral 7B, TinyLlama) for tests/test_bpe.c. Run from the repository root:

  python3 -m venv /tmp/venv-spm
  /tmp/venv-spm/bin/pip install sentencepiece protobuf tokenizers transformers gguf
  /tmp/venv-spm/bin/python scripts/make-spm-goldens.py

It trains a small SentencePiece BPE model on the Austen texts (../shared/data/austen, Llama's
trainer options: model_type bpe, byte_fallback, split_digits, allow_whitespace_only_pieces,
add_dummy_prefix, no whitespace removal, identity normalization; vocabulary 1200), converts it with
transformers' LlamaConverter and writes:
  spm_legacy.json         tokenizer.json, legacy spelling (Llama 2 / TinyLlama / Mistral v0.1):
                          normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], no pre-tokenizer,
                          TemplateProcessing "<s> $A" as LlamaTokenizerFast adds it
  spm_metaspace.json      the same vocabulary, legacy=False spelling: no normalizer,
                          Metaspace(prepend_scheme "first", split false)
  spm_legacy.jsonl, spm_metaspace.jsonl   `tokenizers` ids of the texts (same record format as
                          make-bpe-goldens.py: ids, ids_special, both decodes); the first line
                          names the tokenizer.json and an "edit" (top-level keys to replace)
  spm_metaspace_split.jsonl  Metaspace with prepend_scheme "always", split true (an edit)
  spm_gguf.json           GGUF arrays as llama.cpp's convert_hf_to_gguf _set_vocab_sentencepiece
                          writes them: tokens, scores (sp.GetScore), token types (NORMAL 1,
                          UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6), bos/eos/unk,
                          add_bos, add_space_prefix
  spm_gguf.jsonl          ids as llama.cpp's llm_tokenizer_spm gives them (parse_special true):
                          the text cut at <s>, </s>, <unk> (longest first), each raw piece with
                          " " prepended (add_space_prefix) and encoded by SentencePiece itself,
                          whose BPE encoder llama.cpp's reproduces (bigram merge by score, leftmost
                          on ties, byte fallback; checked here against a transcription of
                          llama.cpp's loop, spm_session). llama.cpp was not run. Each record also
                          has "hf_ids": what transformers' GGUF reader (5.24) gives, to show where
                          the two differ; the test checks "ids".
"""
import json
import os
import random
import sys
import tempfile
import importlib.util

try:
    import sentencepiece as spm
    from tokenizers import Tokenizer
    from transformers.convert_slow_tokenizer import LlamaConverter, SentencePieceExtractor
    from transformers.tokenization_utils_base import generate_merges
except ImportError:
    sys.exit("make-spm-goldens.py needs sentencepiece, protobuf, tokenizers, transformers (see the top)")

SHARED = os.environ.get("LORAFT_SHARED_DATA", "../shared/data")
GOLD = "tests/golden"
SPECIALS = ["<unk>", "<s>", "</s>"]
ARRAYS = None  # spm_gguf.json's arrays, for spm_session

_spec = importlib.util.spec_from_file_location("bpe_goldens", "scripts/make-bpe-goldens.py")
bpe_goldens = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bpe_goldens)

SPM_FIXED = [
    "", " ", "  ", "   ", "a", " a", "a ", " a ", "Hello world", " Hello world", "Hello  world",
    "It is a truth universally acknowledged", "  leading two", "trailing two  ", "\t tab", "a\nb",
    "\n\n", " \n ", "1234567890", "3.14159 and 2,718", "in 1811, 12 or 13",
    "<s>", "</s>", "<unk>", "<s>Hello", "<s> Hello", "Hello<s>", "Hello </s>", "Hello</s> world",
    "a<s>b</s>c", "<s><s>", "<s> <s>", "x <unk> y", "<s>  two", "</s>\n", "<<s>>", "<s<s>>",
    "▁", "▁▁x", "a▁b", "<0x41>", "<0xE6>x", "emoji 🙂 and 👨‍👩‍👧", "日本語", "中文分词测试，很好。",
    "café naïve Ångström", "Привет", "\u00a0nbsp", "tab\there", "\x00nul", "\x7f",
    "Mr. Darcy's 10,000 a year!", "\u3000\u3000", "\u200b", "🇫🇷", "e\u0301",
]


def austen_lines(n, rng):
    lines = []
    for name in sorted(os.listdir(f"{SHARED}/austen")):
        if name.endswith(".txt"):
            with open(f"{SHARED}/austen/{name}", encoding="utf-8") as f:
                lines += [l.rstrip("\n") for l in f if l.strip()]
    return rng.sample(lines, n)


def train(model_prefix):
    files = ",".join(f"{SHARED}/austen/{n}" for n in sorted(os.listdir(f"{SHARED}/austen"))
                     if n.endswith(".txt"))
    spm.SentencePieceTrainer.train(
        input=files, model_prefix=model_prefix, model_type="bpe", vocab_size=1200,
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
        add_dummy_prefix=True, remove_extra_whitespaces=False, normalization_rule_name="identity",
        character_coverage=0.9995, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        input_sentence_size=200000, shuffle_input_sentence=True, seed_sentencepiece_size=100000,
        max_sentencepiece_length=16, num_threads=2, minloglevel=2)


class FakeLlama:
    """What LlamaConverter reads of a slow LlamaTokenizer."""

    def __init__(self, model_file, legacy):
        self.vocab_file = model_file
        self.legacy = legacy
        self.add_prefix_space = True
        self.sp = spm.SentencePieceProcessor(model_file=model_file)

    def convert_ids_to_tokens(self, i):
        return self.sp.id_to_piece(i)


class Extractor(SentencePieceExtractor):
    """transformers 4.x's extract(vocab_scores): 5.24's LlamaConverter still calls it so, but its
    SentencePieceExtractor.extract takes a model type now."""

    def extract(self, vocab_scores=None):
        vocab = {p.piece: i for i, p in enumerate(self.proto.pieces)}
        return vocab, generate_merges(vocab, vocab_scores)


def convert(model_file, legacy):
    LlamaConverter.SpmExtractor = Extractor
    tk = LlamaConverter(FakeLlama(model_file, legacy)).converted()
    j = json.loads(tk.to_str())
    # LlamaTokenizerFast's post-processor: BOS, then the text
    j["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    names = {a["content"] for a in j.get("added_tokens", [])}
    for i, s in enumerate(SPECIALS):
        if s not in names:
            j.setdefault("added_tokens", []).append({
                "id": i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
                "normalized": False, "special": True})
    j["added_tokens"].sort(key=lambda a: a["id"])
    return j


def write_golden(path, name, tk, edit, texts):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"tokenizer": name, "edit": edit}) + "\n")
        for t in texts:
            ids = tk.encode(t, add_special_tokens=False).ids
            special = tk.encode(t, add_special_tokens=True).ids
            rec = {"hex": t.encode().hex(), "ids": ids, "ids_special": special,
                   "decoded_hex": tk.decode(special, skip_special_tokens=False).encode().hex(),
                   "decoded_skip_hex": tk.decode(special, skip_special_tokens=True).encode().hex()}
            f.write(json.dumps(rec) + "\n")
    print(f"{path}: {len(texts)} texts, {os.path.getsize(path)} bytes")


def gguf_arrays(sp):
    """convert_hf_to_gguf's _set_vocab_sentencepiece: pieces, sp scores, token types."""
    tokens, scores, types = [], [], []
    for i in range(sp.get_piece_size()):
        tokens.append(sp.id_to_piece(i))
        scores.append(sp.get_score(i))
        t = 1
        if sp.is_unknown(i):
            t = 2
        elif sp.is_control(i):
            t = 3
        elif sp.is_unused(i):
            t = 5
        elif sp.is_byte(i):
            t = 6
        types.append(t)
    return {"tokens": tokens, "scores": scores, "token_types": types, "bos_id": sp.bos_id(),
            "eos_id": sp.eos_id(), "unk_id": sp.unk_id(), "add_bos": True, "add_eos": False,
            "add_space_prefix": True}


def llama_cpp_ids(sp, text, add_bos):
    """llama.cpp's SPM tokenize with parse_special: cut at the special tokens (longest first,
    leftmost), " " before every raw piece, SentencePiece's BPE on it."""
    out = [sp.bos_id()] if add_bos else []
    pieces = [text]
    for s in sorted(SPECIALS, key=len, reverse=True):
        nxt = []
        for p in pieces:
            if isinstance(p, int):
                nxt.append(p)
                continue
            parts = p.split(s)
            for k, part in enumerate(parts):
                if k:
                    nxt.append(sp.piece_to_id(s))
                if part:
                    nxt.append(part)
        pieces = nxt
    for p in pieces:
        # encode() adds the dummy prefix itself; escaping " " -> "▁" is its normalizer's
        ids = [p] if isinstance(p, int) else sp.encode(p)
        if not isinstance(p, int) and ids != spm_session(ARRAYS, "\u2581" + p.replace(" ", "\u2581")):
            sys.exit(f"SentencePiece and the llama.cpp transcription differ on {p!r}")
        out += ids
    return out


def spm_session(arrays, text):
    """llama.cpp's llm_tokenizer_spm_session::tokenize, transcribed from its description (symbols
    per UTF-8 char; a queue of neighbour pairs whose text is a token, highest score first, leftmost
    on ties; stale pairs skipped by size; resegment through the merges, bytes for what is not a
    token), as a cross-check of SentencePiece's ids. text is already escaped ("▁")."""
    import heapq
    ids = {}
    for i, t in enumerate(arrays["tokens"]):
        ids[t] = i
    sym = [[c, i - 1, i + 1] for i, c in enumerate(text)]
    if sym:
        sym[-1][2] = -1
    queue = []

    def add(l, r):
        if l < 0 or r < 0:
            return
        t = sym[l][0] + sym[r][0]
        if t in ids:
            heapq.heappush(queue, (-arrays["scores"][ids[t]], l, r, len(t)))

    for i in range(1, len(sym)):
        add(i - 1, i)
    while queue:
        _, l, r, size = heapq.heappop(queue)
        if not sym[l][0] or not sym[r][0] or len(sym[l][0]) + len(sym[r][0]) != size:
            continue
        sym[l][0] += sym[r][0]
        sym[r][0] = ""
        sym[l][2] = sym[r][2]
        if sym[r][2] >= 0:
            sym[sym[r][2]][1] = l
        add(sym[l][1], l)
        add(l, sym[l][2])
    out = []  # resegment: a merged symbol is always a token, a lone char may not be: its bytes
    i = 0 if sym else -1
    while i != -1:
        t = sym[i][0]
        out.extend([ids[t]] if t in ids else [ids["<0x%02X>" % b] for b in t.encode()])
        i = sym[i][2]
    return out


def write_gguf(path, arrays):
    import gguf
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(arrays["tokens"])
    w.add_token_scores(arrays["scores"])
    w.add_token_types(arrays["token_types"])
    w.add_bos_token_id(arrays["bos_id"])
    w.add_eos_token_id(arrays["eos_id"])
    w.add_unk_token_id(arrays["unk_id"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(True)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{path}: {os.path.getsize(path)} bytes")


def hf_gguf_tokenizer(path):
    """transformers' GGUF reader (convert_gguf_tokenizer), fed the metadata get_gguf_tokenizer
    would give (read here with the `gguf` package: transformers' own reader imports torch)."""
    from gguf import GGUFReader
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (GGUF_TOKENIZER_MAPPING,
                                                                       convert_gguf_tokenizer)
    r = GGUFReader(path)

    def value(key):
        f = r.fields[key]
        v = [f.parts[i].tolist() for i in f.data]
        v = [bytes(x).decode() if f.types[-1].name == "STRING" else x[0] for x in v]
        return v if f.types[0].name == "ARRAY" else v[0]

    tdict = {name: value(f"tokenizer.{key}") for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items()
             if f"tokenizer.{key}" in r.fields}
    backend, _ = convert_gguf_tokenizer(value("general.architecture"), tdict)
    return backend


def main():
    rng = random.Random(11)
    texts = (SPM_FIXED + bpe_goldens.FIXED + austen_lines(150, rng) +
             bpe_goldens.random_texts(150, random.Random(12),
                                      bpe_goldens.FRAGMENTS + SPECIALS + [" ▁", "▁"]))
    with tempfile.TemporaryDirectory() as tmp:
        train(f"{tmp}/spm")
        model = f"{tmp}/spm.model"
        sp = spm.SentencePieceProcessor(model_file=model)
        legacy = convert(model, True)
        meta = convert(model, False)
    for name, j in (("spm_legacy.json", legacy), ("spm_metaspace.json", meta)):
        with open(f"{GOLD}/{name}", "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, indent=1)
        print(f"{GOLD}/{name}: {os.path.getsize(f'{GOLD}/{name}')} bytes")
    write_golden(f"{GOLD}/spm_legacy.jsonl", "spm_legacy.json",
                 Tokenizer.from_str(json.dumps(legacy)), {}, texts)
    write_golden(f"{GOLD}/spm_metaspace.jsonl", "spm_metaspace.json",
                 Tokenizer.from_str(json.dumps(meta)), {}, texts)
    split = dict(meta)
    split["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always",
                              "split": True}
    write_golden(f"{GOLD}/spm_metaspace_split.jsonl", "spm_metaspace.json",
                 Tokenizer.from_str(json.dumps(split)), {"pre_tokenizer": split["pre_tokenizer"]},
                 texts)
    arrays = gguf_arrays(sp)
    global ARRAYS
    ARRAYS = arrays
    with open(f"{GOLD}/spm_gguf.json", "w", encoding="utf-8") as f:
        json.dump(arrays, f, ensure_ascii=False)
    with tempfile.TemporaryDirectory() as tmp:  # a GGUF file for transformers' reader alone
        write_gguf(f"{tmp}/spm_gguf.gguf", arrays)
        hf = hf_gguf_tokenizer(f"{tmp}/spm_gguf.gguf")
    # decodes as `tokenizers` gives them for the legacy file: llama.cpp's own detokenizer differs
    # (it writes <unk> as U+2585), see the report in the test
    tk = Tokenizer.from_str(json.dumps(legacy))
    differ = 0
    with open(f"{GOLD}/spm_gguf.jsonl", "w", encoding="utf-8") as f:
        f.write(json.dumps({"tokenizer": "spm_gguf.json", "edit": {}}) + "\n")
        for t in texts:
            ids = llama_cpp_ids(sp, t, False)
            special = llama_cpp_ids(sp, t, True)
            hf_ids = hf.encode(t, add_special_tokens=False).ids
            differ += hf_ids != ids
            f.write(json.dumps({
                "hex": t.encode().hex(), "ids": ids, "ids_special": special,
                "decoded_hex": tk.decode(special, skip_special_tokens=False).encode().hex(),
                "decoded_skip_hex": tk.decode(special, skip_special_tokens=True).encode().hex(),
                "hf_ids": hf_ids}) + "\n")
    legacy_tk = Tokenizer.from_str(json.dumps(legacy))
    same_legacy = sum(legacy_tk.encode(t, add_special_tokens=False).ids == llama_cpp_ids(sp, t, False)
                      for t in texts)
    print(f"{GOLD}/spm_gguf.jsonl: {len(texts)} texts; transformers' GGUF reader differs on {differ}; "
          f"the legacy tokenizer.json agrees with llama.cpp's on {same_legacy}")


if __name__ == "__main__":
    main()
