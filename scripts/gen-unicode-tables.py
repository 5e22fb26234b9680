#!/usr/bin/env python3
"""gen-unicode-tables.py: writes src/text/unicode_tables.c, the character tables the BERT
tokenizer and the NFC normalizer (src/text/normalize.c) need, from the Unicode Character Database
of the Debian package `unicode-data` (/usr/share/unicode). Run from the repo root:
python3 scripts/gen-unicode-tables.py

Hugging Face `tokenizers` (whose output loraft matches) does not use one Unicode version:
- categories (control/format, punctuation, nonspacing marks) come from the Rust crate
  `unicode_categories`, which has Unicode 8.0 tables, and it does not count unassigned
  code points (Cn) as "other", so they are kept;
- NFD and NFC (decompositions, combining classes, compositions) come from
  `unicode-normalization-alignments`, which has Unicode 9.0 tables (U+11935 U+11930, Unicode
  13.0's pair, does not compose there, and U+1DF6, a 10.0 mark, is a starter);
- lowercase and White_Space come from Rust's std, which is newer than our data (15.0).
So categories and decompositions are cut back to the characters assigned by those versions
(DerivedAge.txt), plus the few characters whose category changed since 8.0, below. Normalization
data is stable for assigned characters, so 15.0's data cut back to 9.0's characters is 9.0's;
the composition exclusions come from CompositionExclusions.txt the same way, and the
Full_Composition_Exclusion derived here is checked against DerivedNormalizationProps.txt.
bench/check_tokenizer_parity.py --codepoints checks every code point against `tokenizers`, and
tests/golden/bpe_nfc.txt (scripts/make-bpe-goldens.py) its NFC of every composed code point.

It also writes src/text/unicode_props.c, the classes the byte-level BPE pre-tokenizers need
(src/text/bpe.c): letters \p{L}, numbers \p{N}, White_Space \s, and o200k's (GPT-4o's regex)
[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}] and [\p{Ll}\p{Lm}\p{Lo}\p{M}] as the regexes of `tokenizers`
see them (Oniguruma, through the `onig` crate: Unicode 16.0), and char::is_numeric, which the
Digits pre-tokenizer calls (Rust's std: Unicode 17.0). Our data is 15.0: the letters, marks and
numbers assigned since then are listed below (with the letters' categories, from 16.0's
UnicodeData.txt); no character assigned in 15.0 changed between these classes since (U+1171E
went from Mn to Mc, a mark either way). bench/check_bpe_parity.py --codepoints checks every
code point.
"""
import sys

UCD = "/usr/share/unicode/"
CATEGORY_VERSION = (8, 0)
NORMALIZATION_VERSION = (9, 0)
# General categories that changed after Unicode 8.0 (release notes of 9.0 to 15.0):
# we need the 8.0 value.
CATEGORY_8_0_CHANGES = {0x166D: "Po", 0x1734: "Mn", 0x1885: "Lo", 0x1886: "Lo",
                        0xA9BD: "Mc", 0x111C9: "Po"}
# The CJK blocks BERT's BasicTokenizer surrounds with spaces (tokenizers' is_chinese_char).
CJK_RANGES = [(0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
              (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)]
# Flag bits; keep in sync with include/loraft/unicode.h.
OTHER, PUNCT, MN, SPACE, CJK, NONSTARTER = 1, 2, 4, 8, 16, 32
# NFC quick-check bits of unicode_nfc_ranges; keep in sync with include/loraft/unicode.h.
NFC_NO, NFC_MAYBE = 1, 2
# Hangul jamo that compose algorithmically with what precedes them: vowels (L V -> LV) and
# trailing consonants (LV T -> LVT; 0x11A7 is T's base, not a consonant).
HANGUL_V, HANGUL_T = range(0x1161, 0x1176), range(0x11A8, 0x11C3)
# Letters and numbers assigned after Unicode 15.0 (UnicodeData.txt of 15.1, 16.0, 17.0), as
# (first, last) ranges: \p{L} and \p{N} of Oniguruma (16.0), Rust's char::is_numeric (17.0).
LETTERS_16_0 = [(0x1C89, 0x1C8A), (0xA7CB, 0xA7CD), (0xA7DA, 0xA7DC), (0x105C0, 0x105F3),
                (0x10D4A, 0x10D65), (0x10D6F, 0x10D85), (0x10EC2, 0x10EC4), (0x11380, 0x11389),
                (0x1138B, 0x1138B), (0x1138E, 0x1138E), (0x11390, 0x113B5), (0x113B7, 0x113B7),
                (0x113D1, 0x113D1), (0x113D3, 0x113D3), (0x11BC0, 0x11BE0), (0x13460, 0x143FA),
                (0x16100, 0x1611D), (0x16D40, 0x16D6C), (0x18CFF, 0x18CFF), (0x1E5D0, 0x1E5ED),
                (0x1E5F0, 0x1E5F0), (0x2EBF0, 0x2EE5D)]
NUMBERS_16_0 = [(0x10D40, 0x10D49), (0x116D0, 0x116E3), (0x11BF0, 0x11BF9), (0x16130, 0x16139),
                (0x16D70, 0x16D79), (0x1CCF0, 0x1CCF9), (0x1E5F1, 0x1E5FA)]
NUMBERS_17_0 = NUMBERS_16_0 + [(0x11DE0, 0x11DE9), (0x16FF4, 0x16FF6)]
# Of LETTERS_16_0, the uppercase (Lu) and lowercase (Ll) ones; the others are Lm or Lo (no Lt
# was added). Then the marks (M*) assigned in 15.1 and 16.0.
UPPERCASE_16_0 = [(0x1C89, 0x1C89), (0xA7CB, 0xA7CC), (0xA7DA, 0xA7DA), (0xA7DC, 0xA7DC),
                  (0x10D50, 0x10D65)]
LOWERCASE_16_0 = [(0x1C8A, 0x1C8A), (0xA7CD, 0xA7CD), (0xA7DB, 0xA7DB), (0x10D70, 0x10D85)]
MARKS_16_0 = [(0x0897, 0x0897), (0x10D69, 0x10D6D), (0x10EFC, 0x10EFC), (0x113B8, 0x113C0),
              (0x113C2, 0x113C2), (0x113C5, 0x113C5), (0x113C7, 0x113CA), (0x113CC, 0x113D0),
              (0x113D2, 0x113D2), (0x113E1, 0x113E2), (0x11F5A, 0x11F5A), (0x1611E, 0x1612F),
              (0x1E5EE, 0x1E5EF)]
# Flag bits of unicode_props.c; keep in sync with include/loraft/unicode_props.h.
PROP_L, PROP_N, PROP_NUMERIC, PROP_SPACE, PROP_UPPER, PROP_LOWER = 1, 2, 4, 8, 16, 32


def ranges_of(path):
    """(first, last, fields) for each data line of a UCD property file."""
    for line in open(UCD + path, encoding="utf-8"):
        line = line.split("#")[0].strip()
        if not line:
            continue
        fields = [f.strip() for f in line.split(";")]
        a, _, b = fields[0].partition("..")
        yield int(a, 16), int(b or a, 16), fields[1:]


def load():
    age = {}
    for a, b, (v,) in ranges_of("DerivedAge.txt"):
        for c in range(a, b + 1):
            age[c] = tuple(map(int, v.split(".")))
    cat, ccc, dec, lower = {}, {}, {}, {}  # dec: one-level canonical mappings
    rows = [l.rstrip("\n").split(";") for l in open(UCD + "UnicodeData.txt", encoding="utf-8")]
    for i, f in enumerate(rows):
        c = int(f[0], 16)
        if f[1].endswith("Last>"):
            for x in range(int(rows[i - 1][0], 16), c + 1):
                cat[x] = f[2]
            continue
        cat[c], ccc[c] = f[2], int(f[3])
        if f[5] and not f[5].startswith("<"):
            dec[c] = [int(x, 16) for x in f[5].split()]
        if f[13]:
            lower[c] = [int(f[13], 16)]
    for a, _, f in ranges_of("SpecialCasing.txt"):
        if len(f) < 4 or not f[3]:  # unconditional mappings only, as char::to_lowercase
            lower[a] = [int(x, 16) for x in f[0].split()]
    space = set()
    for a, b, f in ranges_of("PropList.txt"):
        if f[0] == "White_Space":
            space.update(range(a, b + 1))
    return age, cat, ccc, dec, lower, space


def main(out_path):
    age, cat, ccc, dec, lower, space = load()
    def old(c, version):  # assigned by that Unicode version?
        return age.get(c, (99,)) <= version

    def cat8(c):  # general category as in Unicode 8.0; Cn when unassigned then
        if c in CATEGORY_8_0_CHANGES:
            return CATEGORY_8_0_CHANGES[c]
        return cat.get(c, "Cn") if old(c, CATEGORY_VERSION) else "Cn"

    def ccc9(c):  # canonical combining class as in Unicode 9.0
        return ccc.get(c, 0) if old(c, NORMALIZATION_VERSION) else 0

    def nfd(c):
        if 0xAC00 <= c <= 0xD7A3:  # Hangul syllables decompose algorithmically at run time
            return [c]
        if c in dec and old(c, NORMALIZATION_VERSION):
            return [y for x in dec[c] for y in nfd(x)]
        return [c]

    def flags(c):
        f = 0
        k = cat8(c)
        if k in ("Cc", "Cf", "Co", "Cs"):
            f |= OTHER
        if k.startswith("P"):
            f |= PUNCT
        if k == "Mn":
            f |= MN
        if c in space:
            f |= SPACE
        if any(a <= c <= b for a, b in CJK_RANGES):
            f |= CJK
        if ccc9(c):
            f |= NONSTARTER
        return f

    # Run-time reordering of non-starters (after NFD, before lowercasing) assumes that
    # lowercasing a fully decomposed character never makes or moves a non-starter.
    for c, m in lower.items():
        assert nfd(c) != [c] or (ccc9(c) == 0 and all(ccc9(x) == 0 for x in m)), hex(c)

    flag_ranges, prev = [], None
    for c in range(0x80, 0x110000):
        f = flags(c)
        if f != prev:
            flag_ranges.append((c, f))
            prev = f

    simple = sorted((c, m[0] - c) for c, m in lower.items() if len(m) == 1 and m[0] != c)
    special = sorted((c, m) for c, m in lower.items() if len(m) > 1)
    lower_runs = []  # (first, count, stride, delta)
    for c, d in simple:
        if lower_runs:
            f, n, s, dd = lower_runs[-1]
            last = f + (n - 1) * s
            if dd == d and ((n == 1 and c - last in (1, 2)) or (n > 1 and c - last == s)):
                lower_runs[-1] = (f, n + 1, c - last, d)
                continue
        lower_runs.append((c, 1, 1, d))

    decomp = sorted((c, nfd(c)) for c in dec if old(c, NORMALIZATION_VERSION) and nfd(c) != [c])
    for c, d in decomp:
        assert len(d) <= 4 and sorted(d[1:], key=ccc9) == d[1:], hex(c)
    ccc_runs, prev = [], None
    for c in range(0, 0x110000):
        k = ccc9(c)
        if k and prev and prev[1] == k and prev[0] + prev[2] == c:
            ccc_runs[-1] = prev = (prev[0], k, prev[2] + 1)
        elif k:
            ccc_runs.append((c, k, 1))
            prev = ccc_runs[-1]

    nfc_ranges, compositions = nfc_tables(dec, old, ccc9, nfd)

    def table(ctype, name, rows, per_line):
        lines = [f"const {ctype} {name}[] = {{"]
        for i in range(0, len(rows), per_line):
            lines.append("    " + " ".join(rows[i:i + per_line]))
        lines.append("};")
        lines.append(f"const size_t {name}_len = {len(rows)};\n")
        return "\n".join(lines)

    data, offsets = [], []
    for c, d in decomp:
        offsets.append(f"{{0x{c:X}, {len(data)}, {len(d)}}},")
        data += d
    o = open(out_path, "w")
    o.write("/* unicode_tables.c: GENERATED by scripts/gen-unicode-tables.py from the Unicode "
            "15.0\n * Character Database (Debian unicode-data); do not edit. See unicode.h. */\n"
            "/* clang-format off */\n"
            '#include "loraft/unicode.h"\n\n')
    o.write(table("UnicodeFlagRange", "unicode_flag_ranges",
                  [f"{{0x{c:X}, {f}}}," for c, f in flag_ranges], 6))
    o.write(table("UnicodeLowerRun", "unicode_lower_runs",
                  [f"{{0x{c:X}, {n}, {s}, {d}}}," for c, n, s, d in lower_runs], 4))
    o.write(table("UnicodeLowerSpecial", "unicode_lower_specials",
                  ["{0x%X, %d, {%s}}," % (c, len(m), ", ".join(f"0x{x:X}" for x in m))
                   for c, m in special], 2))
    o.write(table("UnicodeDecomp", "unicode_decomps", offsets, 5))
    o.write(table("uint32_t", "unicode_decomp_data", [f"0x{x:X}," for x in data], 10))
    o.write(table("UnicodeCccRun", "unicode_ccc_runs",
                  [f"{{0x{c:X}, {k}, {n}}}," for c, k, n in ccc_runs], 5))
    o.write(table("UnicodeNfcRange", "unicode_nfc_ranges",
                  [f"{{0x{c:X}, {k}, {q}}}," for c, k, q in nfc_ranges], 5))
    o.write(table("uint64_t", "unicode_compositions",
                  [f"0x{a << 42 | b << 21 | c:X}," for a, b, c in compositions], 4))
    print(f"{out_path}: {len(flag_ranges)} flag ranges, {len(lower_runs)} lowercase runs, "
          f"{len(special)} special, {len(decomp)} decompositions, {len(ccc_runs)} ccc runs, "
          f"{len(nfc_ranges)} NFC ranges, {len(compositions)} compositions")


def nfc_tables(dec, old, ccc9, nfd):
    """The NFC data as of Unicode 9.0: (first, ccc, quick-check bits) ranges over all code
    points, and the primary composites (first, second, composite), sorted."""
    v9 = NORMALIZATION_VERSION
    excluded = {a for a, b, _ in ranges_of("CompositionExclusions.txt") for a in range(a, b + 1)}
    def full_exclusion(c):  # Full_Composition_Exclusion: never the result of composing
        d = dec[c]
        return len(d) == 1 or ccc9(c) != 0 or ccc9(d[0]) != 0 or c in excluded
    no = {c for c in dec if old(c, v9) and full_exclusion(c)}
    derived = {c for a, b, f in ranges_of("DerivedNormalizationProps.txt")
               if f[0] == "Full_Composition_Exclusion" for c in range(a, b + 1) if old(c, v9)}
    assert no == derived, sorted(no ^ derived)
    compositions = sorted((dec[c][0], dec[c][1], c) for c in dec
                          if old(c, v9) and len(dec[c]) == 2 and c not in no)
    maybe = {b for _, b, _ in compositions} | set(HANGUL_V) | set(HANGUL_T)
    assert not maybe & no
    # normalize.c re-normalizes from the last starter that passed the quick check: such a
    # char must begin its decomposition with a starter that nothing before it combines with.
    for c in range(0x110000):
        if ccc9(c) == 0 and c not in no and c not in maybe:
            assert ccc9(nfd(c)[0]) == 0 and nfd(c)[0] not in maybe, hex(c)
    ranges, prev = [], None
    for c in range(0x110000):
        v = (ccc9(c), (NFC_NO if c in no else 0) | (NFC_MAYBE if c in maybe else 0))
        if v != prev:
            ranges.append((c,) + v)
            prev = v
    return ranges, compositions


def write_props(out_path):
    """src/text/unicode_props.c: (first, flags) ranges over all code points, for src/text/bpe.c."""
    _, cat, _, _, _, space = load()
    def within(c, ranges):
        return any(a <= c <= b for a, b in ranges)

    def cat16(c):  # general category as of 16.0, but a new Lm reads Lo and a new mark Mn
        for k, ranges in (("Lu", UPPERCASE_16_0), ("Ll", LOWERCASE_16_0), ("Lo", LETTERS_16_0),
                          ("Mn", MARKS_16_0)):
            if within(c, ranges):
                return k
        return cat.get(c, "Cn")

    def flags(c):
        k = cat16(c)
        f = PROP_L if k[0] == "L" else PROP_N | PROP_NUMERIC if cat.get(c, "Cn")[0] == "N" else 0
        f |= PROP_N if within(c, NUMBERS_16_0) else 0
        f |= PROP_NUMERIC if within(c, NUMBERS_17_0) else 0
        f |= PROP_UPPER if k in ("Lu", "Lt", "Lm", "Lo") or k[0] == "M" else 0
        f |= PROP_LOWER if k in ("Ll", "Lm", "Lo") or k[0] == "M" else 0
        return f | (PROP_SPACE if c in space else 0)

    ranges, prev = [], None
    for c in range(0, 0x110000):
        f = flags(c)
        if f != prev:
            ranges.append(f"{{0x{c:X}, {f}}},")
            prev = f
    with open(out_path, "w") as o:
        o.write("/* unicode_props.c: GENERATED by scripts/gen-unicode-tables.py from the Unicode "
                "15.0\n * Character Database (Debian unicode-data) and the letters, marks and "
                "numbers added up to\n * 17.0; do not edit. See unicode_props.h. */\n"
                "/* clang-format off */\n"
                '#include "loraft/unicode_props.h"\n\n'
                "const UnicodePropRange unicode_prop_ranges[] = {\n")
        for i in range(0, len(ranges), 6):
            o.write("    " + " ".join(ranges[i:i + 6]) + "\n")
        o.write(f"}};\nconst size_t unicode_prop_ranges_len = {len(ranges)};\n")
    print(f"{out_path}: {len(ranges)} property ranges")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "src/text/unicode_tables.c")
    write_props(sys.argv[2] if len(sys.argv) > 2 else "src/text/unicode_props.c")
