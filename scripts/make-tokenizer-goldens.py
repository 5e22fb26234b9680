#!/usr/bin/env python3
"""make-tokenizer-goldens.py: writes tests/golden/tokenizer_bert_{uncased,cased}.jsonl, the
token ids Hugging Face gives for texts this script composes (fixed seed), for
tests/test_tokenizer.c. No network: the tokenizer comes from ../shared/data.

  $(scripts/setup-python.sh --python) scripts/make-tokenizer-goldens.py [--shared ../shared/data]

Records: {"text", "ids"} (no special tokens); {"text", "max_length", "truncation_side",
"ids"} (with [CLS]/[SEP], truncated); {"text", "text_pair", "max_length", "ids",
"type_ids"} (a pair, longest_first). A text with a NUL char also comes as "text_hex"
(/"text_pair_hex"), its UTF-8 bytes in hex, for readers whose strings end at NUL (cJSON in
tests/test_tokenizer.c; loraft's own JSONL reader keeps the NUL). Uncased: BertTokenizerFast
loaded from the shared bert-base-uncased directory (its tokenizer.json). Cased: BertTokenizerFast(vocab_file=
vocab.txt, do_lower_case=False), the vocab.txt-only path. Where transformers' slow
BertTokenizerLegacy disagrees with the fast tokenizer the golden follows the fast one;
the script prints those texts.
"""
import argparse
import json
import os
import random
import shutil
import tempfile

from transformers import BertTokenizerFast

try:
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy
except ImportError:  # transformers 4: the slow class is BertTokenizer
    from transformers import BertTokenizer as BertTokenizerLegacy

SUBJECTS = ["This movie", "The film", "The plot", "Her performance", "The soundtrack",
            "The director's cut", "The sequel", "The ending", "The cast", "This documentary"]
VERBS = ["was", "is", "felt", "seemed", "turned out to be", "wasn't", "isn't really"]
ADJS = ["absolutely brilliant", "painfully boring", "over-the-top", "mind-blowing",
        "disappointing", "a masterpiece", "unwatchable", "surprisingly touching",
        "self-indulgent", "hilarious", "predictable", "underrated", "overrated"]
TAILS = ["!", ".", "...", "!!!", "?!", " :)", " :-(", " - 10/10.", " (3/10)", ", IMHO.",
         " <br /><br />", "; I'd watch it again.", " & I loved it.", " -- not worth $12.50."]
EXTRAS = ["I can't believe it's 1999's best.", "Spielberg's \"E.T.\" it is not.",
          "Rated PG-13 for violence; runtime 2h17m.", "Watched it on 12/25/2003 @ 8:30pm",
          "Best line: \"I'll be back\"", "The <i>cinematography</i> is stunning<br />",
          "Worst. Movie. Ever.", "5 stars*****", "Grade: A+ / B-", "it's a MUST-SEE!!!",
          "e-mail me at film_fan@example.com", "visit http://www.imdb.com/title/tt0111161/",
          "don't/won't/can't/shouldn't've", "#1 #blessed @everyone", "100% pure cheese",
          "Co-starring J.R.R. Tolkien-esque elves", "...and then... nothing.",
          "unaffable counterrevolutionaries antidisestablishmentarianism"]

SPECIAL_TEXTS = [
    "", " ", "\t\n\r ", "a", "A", "[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]",
    "hello [SEP] world", "foo[SEP]bar", "[sep] [Sep] [SEP[SEP]]", "[CLS][SEP][MASK]x",
    "[ SEP ]", "[[UNK]]", "##ing ##s #hash", "<br /><br />This is <b>bold</b>&amp;&lt;",
    "café naïve Zoë ÅNGSTRÖM résumé coöperate façade jalapeño São Paulo",
    "Crème brûlée à la carte; Ærøskøbing; Łódź; Dvořák; İstanbul; ıi; ß STRASSE",
    "ﬁnancial ﬂuﬀy ﬀ ﬃ ǅ Ǆ ǆ Ⅻ ⅻ ½ ² ℃ ™ № ℡",
    "ＦＵＬＬＷＩＤＴＨ ｔｅｘｔ １２３ ！？（）", "数学 中文字幕 電影很好看 日本語のテキスト",
    "한국어 영화 정말 재미있어요", "Ελληνικά: ΟΔΥΣΣΕΥΣ Σίσυφος ΣΊΣΥΦΟΣ", "Русский фильм ЁЖ ёж",
    "العربية فيلم رائع", "हिन्दी फ़िल्म बहुत अच्छी", "ภาษาไทย ภาพยนตร์ดีมาก", "עברית סרט",
    "emoji 😀😂👍🏽 👨‍👩‍👧 ❤️ 🎬🍿 🥲 🫠", "math ∑∫∂√∞≈≠≤≥ ∀x∈ℝ: x²≥0 α+β=γ",
    "combining e\u0301 a\u0300 o\u0308 n\u0303 c\u0327 A\u030a\u0301 x\u0323\u0301",
    "zero\u200bwidth\u200cjoin\u200dnon\u2060breaks\ufeffbom \u00ad soft\u00adhyphen",
    "ctrl\x00nul\x01\x02\x07bell\x1b[0m\x7fdel\x85nel\u2028ls\u2029ps",
    "nbsp\u00a0nbsp thin\u2009space ideo\u3000space en\u2002em\u2003",
    "replacement \ufffd char \ufffd\ufffd", "private \ue000\uf8ff use \U000F0000",
    "tabs\tand\nnewlines\r\nand\rreturns", "number 3.14159 1,000,000 -42 +7 1e10 0x1F 2^10",
    "punct!!!???...,,,;;;:::---___***&&&%%%$$$###@@@~~~```|||\\\\\\///",
    "“smart quotes” ‘single’ «guillemets» „low“ — en–dash … • · ¡¿ §¶ †‡",
    "x" * 99, "y" * 100, "z" * 101, "ab" * 60, "supercalifragilisticexpialidocious" * 3,
    "é" * 100, "é" * 101, "中" * 150, ("word " * 40).strip(),
    "\u1fef\u037e\u0387\u212a\u2126\u00b5", "\u07fd\u1734\u1885\u1886\ua9bd\U000111c9\u166d",
    "Hangul jamo \u1100\u1161\u11a8 and compat \u3131\u314f",
    "Vietnamese: Tiếng Việt có dấu, phở bò, Hà Nội", "Polish: Zażółć gęślą jaźń",
    "Dutch IJsselmeer ĳ Ĳ; Kelvin K; Angstrom Å; Ohm Ω",
]

POOL = ("aAzZ09 .,!?'\"-_()[]{}<>#@/\\\t\néÉüÜßİıσςΣЁёæŒ中文한글ーｱ😀👍🏽\u0301\u0308\u0323"
        "\u200b\u200d\ufeff\u00a0\u3000\x00\x01\x7f\x85\ufffd\u2028\u1fef\u212a\ufb01[SEP]")


def compose(rng):
    texts = list(SPECIAL_TEXTS)
    for _ in range(300):
        parts = []
        for _ in range(rng.randint(1, 4)):
            parts.append(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ADJS)}"
                         f"{rng.choice(TAILS)}")
            if rng.random() < 0.3:
                parts.append(rng.choice(EXTRAS))
        text = " ".join(parts)
        if rng.random() < 0.2:
            text = text.upper()
        texts.append(text)
    for _ in range(200):  # random soup of the tricky characters
        texts.append("".join(rng.choice(POOL) for _ in range(rng.randint(1, 40))))
    return texts


def records(tok, texts, rng):
    out = [{"text": t, "ids": tok(t, add_special_tokens=False)["input_ids"]} for t in texts]
    long_texts = [t for t in texts if len(tok(t, add_special_tokens=False)["input_ids"]) > 12]
    for t in rng.sample(long_texts, 30):
        for side in ("right", "left"):
            tok.truncation_side = side
            n = rng.choice([2, 3, 5, 8, 12])
            ids = tok(t, max_length=n, truncation=True)["input_ids"]
            out.append({"text": t, "max_length": n, "truncation_side": side, "ids": ids})
    tok.truncation_side = "right"
    for _ in range(30):
        a, b = rng.sample(long_texts, 2)
        for n in (rng.choice([3, 4, 7, 10, 16]), 512):
            enc = tok(a, b, max_length=n, truncation="longest_first")
            out.append({"text": a, "text_pair": b, "max_length": n,
                        "truncation_side": "right", "ids": enc["input_ids"],
                        "type_ids": enc["token_type_ids"]})
    return out


def compare_slow(fast, slow, texts, name):
    diff = [t for t in texts if fast(t, add_special_tokens=False)["input_ids"]
            != slow(t, add_special_tokens=False)["input_ids"]]
    print(f"{name}: slow BertTokenizerLegacy differs from the fast tokenizer on "
          f"{len(diff)} of {len(texts)} texts (goldens follow the fast one)")
    for t in diff[:12]:
        print(f"  {t[:60]!r}")


def write(path, recs):
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            for k in ("text", "text_pair"):
                if "\0" in r.get(k, ""):
                    r[k + "_hex"] = r[k].encode().hex()
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{path}: {len(recs)} records, {os.path.getsize(path)} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared/data")
    ap.add_argument("--out", default="tests/golden")
    a = ap.parse_args()
    d = os.path.join(a.shared, "tokenizers", "bert-base-uncased")
    texts = compose(random.Random(1234))
    uncased = BertTokenizerFast.from_pretrained(d)
    with tempfile.TemporaryDirectory() as cased_dir:
        shutil.copy(os.path.join(d, "vocab.txt"), cased_dir)
        with open(os.path.join(cased_dir, "tokenizer_config.json"), "w") as f:
            f.write('{"do_lower_case": false}\n')
        cased = BertTokenizerFast.from_pretrained(cased_dir)
    compare_slow(uncased, BertTokenizerLegacy(os.path.join(d, "vocab.txt")), texts, "uncased")
    compare_slow(cased, BertTokenizerLegacy(os.path.join(d, "vocab.txt"), do_lower_case=False),
                 texts, "cased")
    write(os.path.join(a.out, "tokenizer_bert_uncased.jsonl"),
          records(uncased, texts, random.Random(1)))
    write(os.path.join(a.out, "tokenizer_bert_cased.jsonl"),
          records(cased, texts, random.Random(2)))


if __name__ == "__main__":
    main()
