#!/usr/bin/env python3
"""Dequantisation goldens for the GGUF reader, computed by the PyPI `gguf` package.

Writes a GGUF file (about 90 KB) with the gguf package's own writer and commits it as text:
tests/golden/gguf_quant.json holds the file's bytes in hex (no binary model-like file in the
repository); tests/test_gguf.c parses them from memory. For
every type loraft dequantises (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K,
Q6_K) it holds a tensor `<type>` of 3 x 512 values and `<type>.expected`, the F32 values
`gguf.quants.dequantize` gives for it. tests/test_gguf.c dequantises each tensor with loraft
and compares every value bit for bit.

How the blocks are made (seeded, so reruns give the same file):
  - F32 / F16 / BF16 and the 32-value formats Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: rows 0 and 1 are
    `gguf.quants.quantize` of normal data at a different scale per block; row 2 is random
    bytes, with each block's f16 scale fields (d, m) replaced by finite random halves, so
    every nibble and high-bit pattern occurs. The F16/BF16 rows also hold +-0, +-inf, NaN,
    subnormals and the largest finite values.
  - Q4_K, Q5_K, Q6_K (the package dequantises but cannot quantise them): every block is
    random bytes with finite random f16 super-block scales, so all packed 6-bit scale/min
    combinations and high bits occur.
For F16, BF16 and the 32-value formats it also holds `<type>.source`, the F32 values the
first rows were quantised from (row 0 starts with edge blocks: zero, constant, rounding ties),
which tests/test_gguf.c quantises with loraft's quant_quantize and compares byte for byte.
The file also carries one key of each GGUF value type and three arrays, which the C test
reads back: a file written by the reference writer, parsed by loraft.

Setup (once) and run:
    python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install gguf numpy
    /tmp/venv-gguf/bin/python scripts/make-gguf-goldens.py [--out tests/golden/gguf_quant.json]
"""
import argparse
import json
import os
import sys
import tempfile

try:
    import numpy as np
    import gguf
    from gguf import GGMLQuantizationType as T
    from gguf.quants import dequantize, quantize
except ImportError as e:
    sys.exit(f"make-gguf-goldens.py needs the PyPI packages gguf and numpy ({e}).\n"
             "Set up: python3 -m venv /tmp/venv-gguf && /tmp/venv-gguf/bin/pip install gguf numpy\n"
             "then run this script with /tmp/venv-gguf/bin/python.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROWS, COLS = 3, 512
QUANTISABLE = [T.Q8_0, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1]
K_TYPES = [T.Q4_K, T.Q5_K, T.Q6_K]
# Byte offsets of the f16 scale fields in each block.
HALF_FIELDS = {T.Q8_0: [0], T.Q4_0: [0], T.Q4_1: [0, 2], T.Q5_0: [0], T.Q5_1: [0, 2],
               T.Q4_K: [0, 2], T.Q5_K: [0, 2], T.Q6_K: [208]}
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, -65504.0, 6e-8, -6e-8, 1e-5,
                    3.0e38, -3.0e38, 1e-40, 1.0, -2.5, 0.1], dtype=np.float32)


def normal_rows(rng, rows):
    """rows x COLS normal values, each 32-value block at its own scale."""
    scale = np.exp(rng.uniform(-6, 3, size=(rows, COLS // 32, 1))).astype(np.float32)
    x = rng.standard_normal((rows, COLS // 32, 32)).astype(np.float32) * scale
    return x.reshape(rows, COLS)


def random_blocks(rng, qtype, rows):
    """rows x (bytes per row) random bytes with finite random f16 scales."""
    block_elems, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
    n_blocks = rows * COLS // block_elems
    raw = rng.integers(0, 256, size=(n_blocks, block_bytes), dtype=np.uint8)
    for off in HALF_FIELDS[qtype]:
        halves = (rng.uniform(-1, 1, n_blocks) * np.exp(rng.uniform(-12, 2, n_blocks)))
        raw[:, off:off + 2] = halves.astype(np.float16).view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(rows, -1)


def with_edge_blocks(x):
    """Row 0's first blocks made hard for a quantiser: all zero, constant, values on the
    rounding ties of every 4- and 5-bit code, a negative extreme larger than the positive."""
    x[0, 0:32] = 0
    x[0, 32:64] = 0.75
    x[0, 64:96] = np.arange(32, dtype=np.float32) / 2 - 8
    x[0, 96:128] = np.linspace(-3, 1, 32, dtype=np.float32)
    return x


def make_tensor(rng, qtype):
    """The raw bytes (rows x bytes per row) of one tensor of qtype, and the F32 values its
    first rows quantise (None for the K types, whose blocks are random bytes)."""
    if qtype in K_TYPES:
        return random_blocks(rng, qtype, ROWS), None
    if qtype in QUANTISABLE:
        x = with_edge_blocks(normal_rows(rng, ROWS - 1))
        q = quantize(x, qtype)
        return np.concatenate([q, random_blocks(rng, qtype, 1)]), x
    x = normal_rows(rng, ROWS)
    x[2, :len(SPECIAL)] = SPECIAL
    if qtype == T.F32:
        return x.view(np.uint8), None
    if qtype == T.F16:
        with np.errstate(over="ignore"):
            return x.astype(np.float16).view(np.uint8), x
    return quantize(x, T.BF16), x


def add_metadata(w):
    """One key of every value type and three arrays, for the C reader to check."""
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4000000000)
    w.add_int32("test.i32", -2000000000)
    w.add_float32("test.f32", 0.25)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "h\u00e9llo")
    w.add_uint64("test.u64", 1 << 40)
    w.add_int64("test.i64", -(1 << 40))
    w.add_float64("test.f64", 1e-300)
    w.add_array("test.strings", ["a", "", "\u0120the"])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.5])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "golden", "gguf_quant.json"))
    args = ap.parse_args()
    rng = np.random.default_rng(20240808)
    fd, gguf_path = tempfile.mkstemp(suffix=".gguf")
    os.close(fd)
    w = gguf.GGUFWriter(gguf_path, arch="loraft-golden")
    add_metadata(w)
    for qtype in [T.F32, T.F16, T.BF16] + QUANTISABLE + K_TYPES:
        raw, source = make_tensor(rng, qtype)
        expected = dequantize(raw, qtype).astype(np.float32).reshape(ROWS, COLS)
        w.add_tensor(qtype.name, raw, raw_dtype=qtype)
        w.add_tensor(qtype.name + ".expected", expected)
        if source is not None:
            w.add_tensor(qtype.name + ".source", source)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with open(gguf_path, "rb") as f:
        data = f.read()
    os.unlink(gguf_path)
    with open(args.out, "w") as f:
        json.dump({"made_by": f"scripts/make-gguf-goldens.py, gguf {gguf.__version__}"
                   if hasattr(gguf, "__version__") else "scripts/make-gguf-goldens.py",
                   "gguf_hex": data.hex()}, f)
        f.write("\n")
    print(f"wrote {args.out} ({os.path.getsize(args.out)} bytes; a {len(data)}-byte GGUF)")


if __name__ == "__main__":
    main()
