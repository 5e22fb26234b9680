#!/usr/bin/env python3
"""Static instruction counts of a CUDA kernel's main loop, from its SASS: what one tile costs.

Without a GPU no kernel can be timed, but the instructions a warp issues per tile can be
counted. This compiles a .cu file for one architecture, disassembles it (cuobjdump), finds in each
kernel the loop that holds its tensor-core instructions (HMMA: the tile loop) and walks it as
a graph of basic blocks, back edges cut (an inner loop counts once). Two paths
from the loop's head to a back edge, both through the most HMMA:
  lean: the fewest instructions (no masking, no dropout: the common tile);
  full: the most (every mask and dropout branch taken).
Per path the instructions by class: HMMA (tensor core), LDSM (ldmatrix), MUFU (exp2 and
the other special functions, 1/4 the rate of an FP32 op), FP32, INT, CVT, MEM (other
shared or global accesses), CTRL, OTHER. A kernel bound by issue slots rather than by its
tensor cores shows it as many instructions per HMMA. Counts, not timings.

  bench/sass-paths.py [--arch sm_90] [--kernel REGEX] [--marker OP] [FILE.cu]
Defaults: kernels/cuda/attention.cu, the tensor-core attention kernels compiled for HP 64
and 128 (--kernel matches the demangled name), HMMA. --marker FFMA counts a CUDA-core
kernel's loop instead, per FFMA (LoRA's down-projection: kernels/cuda/lora_matmul.cu
--kernel 'lora_down_kernel<8, 4' --marker FFMA). Needs nvcc and
cuobjdump (the CUDA toolkit's, or the one PyTorch's triton wheel ships in the venv of
scripts/setup-python.sh); without one it says SKIP and exits 77.
"""
import argparse
import collections
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = "HMMA"  # the instruction whose loop is counted (--marker)
CLASSES = [
    ("HMMA", ("HMMA",)),
    ("LDSM", ("LDSM",)),
    ("MUFU", ("MUFU",)),
    ("FP32", ("FADD", "FMUL", "FFMA", "FMNMX", "FSETP", "FSEL", "FSET", "FCHK", "FRND")),
    ("CVT", ("F2F", "F2FP", "I2F", "F2I", "I2FP", "F2IP")),
    ("MEM", ("LDS", "STS", "LDG", "STG", "LDGSTS", "LD", "ST", "ATOM", "RED", "LDC", "ULDC")),
    ("CTRL", ("BRA", "BAR", "BSSY", "BSYNC", "WARPSYNC", "EXIT", "CALL", "RET", "DEPBAR",
              "LDGDEPBAR", "VOTE", "SHFL", "NOP", "YIELD")),
    ("INT", ("IMAD", "IADD3", "IADD", "LOP3", "SHF", "ISETP", "IMNMX", "SEL", "LEA", "PRMT",
             "MOV", "IABS", "POPC", "FLO", "BREV", "P2R", "R2P", "PLOP3", "S2R", "S2UR", "CS2R",
             "UMOV", "UIADD3", "ULOP3", "USHF", "UISETP", "USEL", "ULEA", "UIMAD", "UPRMT",
             "IMNMX", "VIMNMX", "R2UR", "UFLO", "UPOPC", "USGXT", "SGXT", "BMSK", "UBMSK")),
]
LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)\s*([^;]*);")


def cls(op):
    base = op.split(".")[0]
    for name, ops in CLASSES:
        if base in ops:
            return name
    return "OTHER"


def find_cuobjdump():
    exe = shutil.which("cuobjdump")
    if exe:
        return exe
    venv = os.environ.get("LORAFT_VENV", os.path.expanduser("~/.cache/loraft/venv"))
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "triton", "backends",
                                   "nvidia", "bin", "cuobjdump"))
    if found:
        return found[0]
    print("SKIP sass-paths: no cuobjdump (neither on PATH nor in triton's wheel in %s; "
          "scripts/setup-python.sh installs it)" % venv)
    sys.exit(77)


def parse(sass):
    """{kernel: [(addr, predicated, opcode, operands)]} from cuobjdump -sass output."""
    kernels, cur = {}, None
    for line in sass.splitlines():
        m = re.match(r"\s*Function : (\S+)", line)
        if m:
            cur = kernels.setdefault(m.group(1), [])
            continue
        m = LINE.search(line)
        if m and cur is not None:
            cur.append((int(m.group(1), 16), bool(m.group(2)), m.group(3), m.group(4)))
    return kernels


def blocks_of(ins):
    """Basic blocks as {start: (instructions, successors)}."""
    target = {}
    for a, pred, op, args in ins:
        if op.startswith("BRA"):
            t = re.findall(r"0x([0-9a-f]+)", args)
            if t:
                target[a] = int(t[-1], 16)
    leaders = {ins[0][0]} | set(target.values())
    for k, (a, pred, op, args) in enumerate(ins):
        if (op.startswith(("BRA", "EXIT", "RET"))) and k + 1 < len(ins):
            leaders.add(ins[k + 1][0])
    blocks, cur = {}, None
    for k, (a, pred, op, args) in enumerate(ins):
        if a in leaders:
            cur = a
            blocks[cur] = [[], []]
        blocks[cur][0].append(op)
        nxt = ins[k + 1][0] if k + 1 < len(ins) else None
        last = nxt is None or nxt in leaders
        if not last:
            continue
        succ = blocks[cur][1]
        if op.startswith("BRA") and a in target:
            succ.append(target[a])
            if pred and nxt is not None:
                succ.append(nxt)
        elif op.startswith(("EXIT", "RET")):
            if pred and nxt is not None:
                succ.append(nxt)
        elif nxt is not None:
            succ.append(nxt)
    return blocks


def loops(blocks, nodes):
    """The strongly connected components of the control-flow graph restricted to nodes that
    are loops (more than one block, or a block branching to itself): Tarjan's algorithm."""
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v), on.add(v)
        for w in blocks[v][1]:
            if w not in nodes:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on.discard(w), comp.add(w)
                if w == v:
                    break
            if len(comp) > 1 or v in blocks[v][1]:
                comps.append(comp)

    sys.setrecursionlimit(10000 + 4 * len(blocks))
    for v in sorted(nodes):
        if v not in index:
            strong(v)
    return comps


def tile_loop(blocks, marker):
    """(head, order, dag) of the loop of the marker instruction: the strongly connected
    component of the control-flow graph holding the most of them (the compiler lays a loop's
    blocks out in any order; of equals, the fewest instructions: a kernel compiled with a
    variant of its loop beside it, as one that also writes a copy), or the loop inside it that
    holds at least half of those (the column loop inside a kernel's loop over rows), entered at
    head; its edges less those a
    depth-first walk from head finds going back (to head: the next tile; to an inner loop's
    head: that loop counted once), in topological order."""
    marks = lambda comp: sum(op.split(".")[0] == marker for b in comp for op in blocks[b][0])
    nodes, comp, head = set(blocks), None, None
    while True:
        size = lambda comp: sum(len(blocks[b][0]) for b in comp)
        inner = max(loops(blocks, nodes), key=lambda c: (marks(c), -size(c)), default=set())
        if not marks(inner) or (comp and 2 * marks(inner) < marks(comp)):
            break
        comp = inner
        entries = [b for b in sorted(comp) if any(b in blocks[p][1] for p in blocks
                                                  if p not in comp)]
        head = entries[0] if entries else min(comp)
        nodes = comp - {head}
    if comp is None:
        return None, [], {}
    dag, order, state = {}, [], {}

    def walk(v):
        state[v] = 1
        dag[v] = []
        for w in blocks[v][1]:
            if w not in comp:
                continue
            if w == head:
                dag[v].append(None)  # the next tile
            elif state.get(w) != 1:
                dag[v].append(w)
                if w not in state:
                    walk(w)
        state[v] = 2
        order.append(v)

    walk(head)
    return head, order[::-1], dag


def paths(blocks, head, order, dag):
    """The lean and full paths from head back to it, as Counters of classes: the best path to
    each block of the DAG, in topological order."""
    count = {b: collections.Counter(cls(op) for op in blocks[b][0]) for b in order}
    for b in order:  # the marker's own count, under its name in quotes
        count[b]["'%s'" % MARKER] = sum(op.split(".")[0] == MARKER for op in blocks[b][0])
    best = {sign: {head: count[head]} for sign in (-1, 1)}
    done = {-1: [], 1: []}
    for b in order:
        for sign, reach in best.items():
            if b not in reach:
                continue
            for s in dag[b]:
                if s is None:
                    done[sign].append(reach[b])
                    continue
                cand = reach[b] + count[s]
                if s not in reach or key(cand, sign) > key(reach[s], sign):
                    reach[s] = cand
    if not done[-1]:
        return None, None
    return (max(done[-1], key=lambda c: key(c, -1)), max(done[1], key=lambda c: key(c, 1)))


def key(c, sign):
    return (c["'%s'" % MARKER], sign * total(c))


def total(c):
    return sum(v for k, v in c.items() if not k.startswith("'"))


def show(name, c):
    parts = " ".join("%s %d" % (n, c[n]) for n, _ in CLASSES + [("OTHER", ())] if c[n])
    marks = c["'%s'" % MARKER]
    per = total(c) / marks if marks else float("nan")
    return "  %-5s %5d instructions, %.2f per %s: %s" % (name, total(c), per, MARKER, parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("file", nargs="?", default=os.path.join(ROOT, "kernels/cuda/attention.cu"))
    ap.add_argument("--arch", default="sm_90")
    ap.add_argument("--kernel", default=r"_tc_kernel<(64|128),")
    ap.add_argument("--marker", default="HMMA", help="the instruction whose loop is counted "
                    "(FFMA for the CUDA-core kernels)")
    a = ap.parse_args()
    global MARKER
    MARKER = a.marker
    try:
        kernel = re.compile(a.kernel)
    except re.error as e:
        sys.exit("sass-paths: --kernel %r is not a regular expression: %s" % (a.kernel, e))
    if not os.path.isfile(a.file):
        sys.exit("sass-paths: no file %s" % a.file)
    with tempfile.TemporaryDirectory() as tmp:
        cubin = os.path.join(tmp, "k.cubin")
        try:
            subprocess.run(["nvcc", "-std=c++17", "-O3", "-arch=" + a.arch, "-cubin", "-I",
                            os.path.join(ROOT, "include"), "-o", cubin, a.file], check=True)
        except (OSError, subprocess.CalledProcessError) as e:
            sys.exit("sass-paths: nvcc could not compile %s for %s (%s)" % (a.file, a.arch, e))
        sass = subprocess.run([find_cuobjdump(), "-sass", cubin], check=True,
                              capture_output=True, text=True).stdout
    demangle = shutil.which("c++filt")
    for name, ins in sorted(parse(sass).items()):
        pretty = name
        if demangle:
            pretty = subprocess.run([demangle, name], capture_output=True, text=True).stdout
            pretty = pretty.strip().split("(")[0]
        if not kernel.search(pretty):
            continue
        blocks = blocks_of(ins)
        head, order, dag = tile_loop(blocks, MARKER)
        lean, full = paths(blocks, head, order, dag) if head is not None else (None, None)
        if lean is None:
            print("%s: no loop with %s" % (pretty, MARKER))
            continue
        print("%s (%s): the tile loop at 0x%x, %d blocks" % (pretty, a.arch, head, len(order)))
        print(show("lean", lean))
        print(show("full", full))


if __name__ == "__main__":
    main()
