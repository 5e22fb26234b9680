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

Gemma's spelling (Gemma 1, 2 and 3; a vocabulary of the same size trained on the same texts with
Gemma's trainer options: ids <pad> 0, <eos> 1, <bos> 2, <unk> 3, no dummy prefix, user-defined
pieces as Gemma's model has them: <mask>, [@BOS@], <unusedN>, <start_of_turn>, <end_of_turn>,
newline and "▁" runs, HTML tags):
  spm_gemma.json          tokenizer.json as transformers' GemmaConverter writes it (normalizer
                          Replace(" ", "▁"), pre-tokenizer Split(" ", MergedWithPrevious), decoder
                          Sequence[Replace("▁", " "), ByteFallback, Fuse], BPE with byte_fallback
                          and fuse_unk, the control and user-defined pieces as added tokens with
                          normalized false, <start_of_turn> and <end_of_turn> special), with the
                          post-processor and special tokens GemmaTokenizer(add_bos_token=True) gives
                          it ("<bos> $A")
  spm_gemma.jsonl         `tokenizers` ids of the texts above plus Gemma's own (chat turns, its
                          specials, newline and space runs)
  spm_gemma_gguf.json     GGUF arrays as llama.cpp's converter writes Gemma's vocabulary
                          (_set_vocab_sentencepiece, then add_space_prefix false): the added tokens
                          of tokenizer_config.json (added_tokens_decoder) CONTROL when special or
                          named like one (<mask>, [@BOS@], <unusedN>), else USER_DEFINED with "▁"
                          written as " ", scores -1000; BOS added
  spm_gemma_gguf.jsonl    ids as llama.cpp gives them for those arrays: the text cut at every
                          CONTROL, USER_DEFINED and UNKNOWN token (longest first), no " " before
                          the pieces, llama.cpp's merge loop (spm_session); decodes by
                          spm_gemma.json, CONTROL tokens dropped when skipping special tokens, as
                          llama.cpp's detokenizer does. llama.cpp itself (libllama of
                          llama-cpp-python 0.3.36) gives the same ids for a GGUF of these arrays.
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
    from transformers import GemmaTokenizer
    from transformers.convert_slow_tokenizer import (GemmaConverter, LlamaConverter,
                                                     SentencePieceExtractor)
    from transformers.tokenization_utils_base import generate_merges
except ImportError:
    sys.exit("make-spm-goldens.py needs sentencepiece, protobuf, tokenizers, transformers (see the top)")

SHARED = os.environ.get("LORAFT_SHARED_DATA", "../shared/data")
GOLD = "tests/golden"
SPECIALS = ["<unk>", "<s>", "</s>"]
# Gemma's user-defined pieces, in the order of its vocabulary (a few of each kind)
GEMMA_USER = ["<mask>", "[@BOS@]", "<unused0>", "<unused1>", "<start_of_turn>", "<end_of_turn>",
              "\n", "\n\n", "\n\n\n", "\u2581\u2581", "\u2581\u2581\u2581",
              "\u2581\u2581\u2581\u2581", "<table>", "<tr>", "</table>"]
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>"] + GEMMA_USER
CONTROL, UNKNOWN, USER_DEFINED = 3, 2, 4  # GGUF token types

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


# Gemma's chat turns, specials and the runs its user-defined pieces cover
GEMMA_FIXED = [
    "<bos>", "<eos>", "<pad>", "<unk>", "<bos>Hello", "Hello<eos>", "<bos><bos>",
    "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n",
    "<bos><start_of_turn>user\nBe terse.\n\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n"
    "4<end_of_turn>\n", "<start_of_turn>model\n  indented answer\n<end_of_turn>",
    "<start_of_turn", "end_of_turn>", "<start_of_turn><end_of_turn>", "<mask>", "[@BOS@]",
    "<unused0><unused1>", "<unused2>", "<unused10>", "x<mask>y", "<table><tr>cell</table>",
    "<TABLE>", "\n", "\n\n", "\n\n\n", "\n\n\n\n", "\n\n\n\n\n\n\n", "a\n\nb", "\r\n\r\n",
    " \n", "\n ", "  ", "   ", "    ", "     ", "         x", "a  b   c    d", "\t\tx",
    "def f():\n    return 1\n\n\n", "\u2581\u2581", "\u2581\u2581\u2581\u2581\u2581", "a\u2581\u2581 b",
    " \u2581 \u2581", "\u2581\u2581  ", "<0x0A>", "Hello world", " Hello", "Hello ",
]


def austen_lines(n, rng):
    lines = []
    for name in sorted(os.listdir(f"{SHARED}/austen")):
        if name.endswith(".txt"):
            with open(f"{SHARED}/austen/{name}", encoding="utf-8") as f:
                lines += [l.rstrip("\n") for l in f if l.strip()]
    return rng.sample(lines, n)


# Llama's trainer options; Gemma's differ in its ids, no dummy prefix and its user-defined pieces
LLAMA_OPTIONS = dict(add_dummy_prefix=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
GEMMA_OPTIONS = dict(add_dummy_prefix=False, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
                     pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
                     user_defined_symbols=GEMMA_USER)


def train(model_prefix, options):
    files = ",".join(f"{SHARED}/austen/{n}" for n in sorted(os.listdir(f"{SHARED}/austen"))
                     if n.endswith(".txt"))
    spm.SentencePieceTrainer.train(
        input=files, model_prefix=model_prefix, model_type="bpe", vocab_size=1200,
        byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity",
        character_coverage=0.9995, input_sentence_size=200000, shuffle_input_sentence=True,
        seed_sentencepiece_size=100000, max_sentencepiece_length=16, num_threads=2, minloglevel=2,
        **options)


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


class FakeGemma:
    """What GemmaConverter reads of a slow GemmaTokenizer."""

    def __init__(self, model_file):
        self.vocab_file = model_file
        self.pad_token, self.eos_token, self.bos_token = "<pad>", "<eos>", "<bos>"
        self.add_prefix_space = False


def convert_gemma(model_file):
    """GemmaConverter's tokenizer.json, then what GemmaTokenizer(add_bos_token=True) makes of it
    (its special tokens, and the post-processor "<bos> $A")."""
    GemmaConverter.SpmExtractor = Extractor  # its own extractor is 4.x's, broken in 5.24
    tk = GemmaConverter(FakeGemma(model_file)).converted()
    tok = GemmaTokenizer(tokenizer_object=tk, add_bos_token=True)
    return json.loads(tok.backend_tokenizer.to_str())


def gemma_gguf_arrays(sp, tokenizer_json):
    """llama.cpp's converter on Gemma: _set_vocab_sentencepiece's arrays, the tokens of
    tokenizer_config.json's added_tokens_decoder (the tokenizer.json's added tokens) retyped
    (special or named like one: CONTROL; else USER_DEFINED with "▁" as " ") and scored -1000,
    then add_space_prefix false."""
    arrays = gguf_arrays(sp)
    for a in tokenizer_json["added_tokens"]:
        token, i = a["content"], a["id"]
        looks = token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]") or (
            token.startswith("<unused") and token.endswith(">"))
        if a["special"] or looks:
            arrays["token_types"][i] = CONTROL
        else:
            arrays["token_types"][i] = USER_DEFINED
            token = token.replace("\u2581", " ")
        arrays["tokens"][i], arrays["scores"][i] = token, -1000.0
    arrays["add_space_prefix"] = False
    return arrays


def gemma(texts):
    """The Gemma goldens (see the top)."""
    texts = texts + GEMMA_FIXED + bpe_goldens.random_texts(
        150, random.Random(13), bpe_goldens.FRAGMENTS + GEMMA_SPECIALS + ["\u2581", " \n"])
    with tempfile.TemporaryDirectory() as tmp:
        train(f"{tmp}/gemma", GEMMA_OPTIONS)
        sp = spm.SentencePieceProcessor(model_file=f"{tmp}/gemma.model")
        j = convert_gemma(f"{tmp}/gemma.model")
    with open(f"{GOLD}/spm_gemma.json", "w", encoding="utf-8") as f:
        json.dump(j, f, ensure_ascii=False, indent=1)
    print(f"{GOLD}/spm_gemma.json: {os.path.getsize(f'{GOLD}/spm_gemma.json')} bytes")
    tk = Tokenizer.from_str(json.dumps(j))
    write_golden(f"{GOLD}/spm_gemma.jsonl", "spm_gemma.json", tk, {}, texts)
    arrays = gemma_gguf_arrays(sp, j)
    with open(f"{GOLD}/spm_gemma_gguf.json", "w", encoding="utf-8") as f:
        json.dump(arrays, f, ensure_ascii=False)
    write_gguf_golden(f"{GOLD}/spm_gemma_gguf.jsonl", "spm_gemma_gguf.json", arrays, tk, texts)
    same = sum(tk.encode(t, add_special_tokens=False).ids == llama_cpp_ids(arrays, t, False)
               for t in texts)
    print(f"{GOLD}/spm_gemma_gguf.jsonl: {len(texts)} texts; the tokenizer.json agrees with "
          f"llama.cpp's on {same}")


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


def partition(text, specials):
    """llama.cpp's tokenizer_st_partition with parse_special: the text cut at the special tokens
    ((text, id) pairs), the longest (in bytes) first, each at all its occurrences from the left;
    the pieces are text (str) and ids (int)."""
    pieces = [text]
    for s, sid in sorted(specials, key=lambda x: len(x[0].encode()), reverse=True):
        nxt = []
        for p in pieces:
            if isinstance(p, int):
                nxt.append(p)
                continue
            parts = p.split(s)
            for k, part in enumerate(parts):
                if k:
                    nxt.append(sid)
                if part:
                    nxt.append(part)
        pieces = nxt
    return pieces


def llama_cpp_ids(arrays, text, add_bos, sp=None):
    """llama.cpp's SPM tokenize with parse_special: cut at the CONTROL, UNKNOWN and USER_DEFINED
    tokens, " " before every raw piece (add_space_prefix), " " -> "▁", its merge loop
    (spm_session); with sp, each piece's ids checked against SentencePiece's own encoding."""
    specials = [(t, i) for i, (t, ty) in enumerate(zip(arrays["tokens"], arrays["token_types"]))
                if ty in (CONTROL, UNKNOWN, USER_DEFINED)]
    prefix = " " if arrays["add_space_prefix"] else ""
    out = [arrays["bos_id"]] if add_bos else []
    for p in partition(text, specials):
        if isinstance(p, int):
            out.append(p)
            continue
        ids = spm_session(arrays, (prefix + p).replace(" ", "\u2581"))
        # encode() adds the dummy prefix itself; escaping " " -> "▁" is its normalizer's
        if sp is not None and ids != sp.encode(p):
            sys.exit(f"SentencePiece and the llama.cpp transcription differ on {p!r}")
        out += ids
    return out


def spm_session(arrays, text):
    """llama.cpp's llm_tokenizer_spm_session::tokenize, transcribed from its description (symbols
    per UTF-8 char; a queue of neighbour pairs whose text is a token, highest score first, leftmost
    on ties; stale pairs skipped by size; resegment through the merges, bytes for what is not a
    token). text is already escaped ("▁")."""
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
        train(f"{tmp}/spm", LLAMA_OPTIONS)
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
    with open(f"{GOLD}/spm_gguf.json", "w", encoding="utf-8") as f:
        json.dump(arrays, f, ensure_ascii=False)
    with tempfile.TemporaryDirectory() as tmp:  # a GGUF file for transformers' reader alone
        write_gguf(f"{tmp}/spm_gguf.gguf", arrays)
        hf = hf_gguf_tokenizer(f"{tmp}/spm_gguf.gguf")
    # decodes as `tokenizers` gives them for the legacy file: llama.cpp's own detokenizer differs
    # (it writes <unk> as U+2585), see the report in the test
    differ = write_gguf_golden(f"{GOLD}/spm_gguf.jsonl", "spm_gguf.json", arrays,
                               Tokenizer.from_str(json.dumps(legacy)), texts, sp, hf)
    legacy_tk = Tokenizer.from_str(json.dumps(legacy))
    same_legacy = sum(legacy_tk.encode(t, add_special_tokens=False).ids ==
                      llama_cpp_ids(arrays, t, False) for t in texts)
    print(f"{GOLD}/spm_gguf.jsonl: {len(texts)} texts; transformers' GGUF reader differs on {differ}; "
          f"the legacy tokenizer.json agrees with llama.cpp's on {same_legacy}")
    gemma(texts)


def write_gguf_golden(path, name, arrays, tk, texts, sp=None, hf=None):
    """llama.cpp's ids of texts for GGUF arrays (checked against SentencePiece sp when given),
    decoded by the tokenizer.json tk; skipping special tokens drops the CONTROL and UNKNOWN ones,
    as llama.cpp's detokenizer does. With hf (transformers' GGUF reader), its ids too ("hf_ids");
    returns on how many texts they differ."""
    shown = [i for i, ty in enumerate(arrays["token_types"]) if ty not in (CONTROL, UNKNOWN)]
    shown, differ = set(shown), 0
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps({"tokenizer": name, "edit": {}}) + "\n")
        for t in texts:
            ids = llama_cpp_ids(arrays, t, False, sp)
            special = llama_cpp_ids(arrays, t, True, sp)
            rec = {"hex": t.encode().hex(), "ids": ids, "ids_special": special,
                   "decoded_hex": tk.decode(special, skip_special_tokens=False).encode().hex(),
                   "decoded_skip_hex": tk.decode([i for i in special if i in shown],
                                                 skip_special_tokens=False).encode().hex()}
            if hf is not None:
                rec["hf_ids"] = hf.encode(t, add_special_tokens=False).ids
                differ += rec["hf_ids"] != ids
            f.write(json.dumps(rec) + "\n")
    return differ


if __name__ == "__main__":
    main()
