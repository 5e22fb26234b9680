#!/usr/bin/env python3
"""gen-unicode-tables.py: writes src/unicode_tables.c, the character tables the BERT
tokenizer needs, from the Unicode Character Database of the Debian package `unicode-data`
(/usr/share/unicode). Run from the repo root: python3 scripts/gen-unicode-tables.py

Hugging Face `tokenizers` (whose output loraft matches) does not use one Unicode version:
- categories (control/format, punctuation, nonspacing marks) come from the Rust crate
  `unicode_categories`, which has Unicode 8.0 tables, and it does not count unassigned
  code points (Cn) as "other", so they are kept;
- NFD (decompositions and combining classes) comes from `unicode-normalization-alignments`,
  which has Unicode 9.0 tables;
- lowercase and White_Space come from Rust's std, which is newer than our data (15.0).
So categories and decompositions are cut back to the characters assigned by those versions
(DerivedAge.txt), plus the few characters whose category changed since 8.0, below.
bench/check_tokenizer_parity.py --codepoints checks every code point against `tokenizers`.
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
    cat, ccc, dec, lower = {}, {}, {}, {}
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
    print(f"{out_path}: {len(flag_ranges)} flag ranges, {len(lower_runs)} lowercase runs, "
          f"{len(special)} special, {len(decomp)} decompositions, {len(ccc_runs)} ccc runs")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "src/unicode_tables.c")
