#!/usr/bin/env python3
"""Where a loraft training step spends its GPU time: every kernel of bench_train_step timed by
Nsight Compute (ncu), summed by kernel name (issue 10).

    bench/profile-step.py [--cases smollm2-2048,distilbert-512] [--layers 2] [--top 20]
        [--precision bf16] [--attention loraft|cudnn] [--loraft-bench build/bench_train_step]
        [--timeout 120] [--details REGEX]

The cases, models and LoRA settings are bench/bench-gpu-e2e.py's (random weights, 8,192 tokens
per step), with --layers layers (default 2: a layer's kernels repeat, and ncu costs
milliseconds per kernel) and CUDA Graphs off, so that ncu sees each launch. Both steps
(warm-up and one timed) are profiled; rows give calls, total ms and the share of the summed
kernel time, so launch gaps are not in it. ncu runs with --clock-control none and
--cache-control none, which METHOD.md advises for timings.
--details REGEX adds, for the first case, Nsight Compute's throughput, occupancy, launch and
issue figures of the first launch of each kernel whose name matches, and its largest warp stall
reasons (why a kernel is slow).
Exit 77 with a SKIP line where ncu is missing or cannot read the GPU (gVisor machines).
"""
import argparse
import csv
import glob
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("e2e", os.path.join(here, "bench-gpu-e2e.py"))
e2e = importlib.util.module_from_spec(spec)
spec.loader.exec_module(e2e)
LAYER_KEY = {"distilbert": "n_layers", "smollm2": "num_hidden_layers"}


def kernel_times(log):
    """{kernel name: (calls, ns)} from ncu's raw CSV page."""
    lines = [ln for ln in log.splitlines() if ln.startswith('"')]
    rows = list(csv.reader(io.StringIO("\n".join(lines))))
    if not rows or "Kernel Name" not in rows[0] or "gpu__time_duration.sum" not in rows[0]:
        return None
    name_col, time_col = rows[0].index("Kernel Name"), rows[0].index("gpu__time_duration.sum")
    times = {}
    for row in rows[1:]:
        try:
            ns = float(row[time_col].replace(",", ""))
        except (ValueError, IndexError):
            continue  # the units row
        calls, total = times.get(row[name_col], (0, 0.0))
        times[row[name_col]] = (calls + 1, total + ns)
    return times


def profiled_step(a, name, T, tmp):
    """bench_train_step's command line for the case, its config.json written into tmp."""
    cfg = dict(e2e.CONFIGS[name], **{LAYER_KEY[name]: a.layers})
    model_dir = os.path.join(tmp, name)
    os.makedirs(model_dir, exist_ok=True)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(cfg, f)
    targets, dropout = e2e.LORA[name]
    return [a.loraft_bench, model_dir, "--random", "--device", "cuda", "--batch",
            str(max(1, 8192 // T)), "--seq", str(T), "--steps", "1", "--r", "8", "--targets",
            ",".join(targets), "--dropout", str(dropout), "--precision", a.precision, "--graphs",
            "off", "--attention", a.attention]


def profile(a, ncu, name, T, tmp):
    log = os.path.join(tmp, f"{name}-{T}.csv")
    cmd = [ncu, "--clock-control", "none", "--cache-control", "none", "--metrics",
           "gpu__time_duration.sum", "--csv", "--page", "raw", "--print-units", "base",
           "--print-kernel-base", "function", "--log-file", log]
    cmd += profiled_step(a, name, T, tmp)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    text = open(log).read() if os.path.exists(log) else ""
    times = kernel_times(text)
    if p.returncode or not times:
        why = (p.stderr.strip() or p.stdout.strip() or text.strip()).splitlines()
        return None, why[-1][:200] if why else f"exit {p.returncode}"
    return times, None


# The metrics the details print, from Nsight Compute's sections (names as its details page
# spells them); all rows of the first kernel where none of them is found.
DETAIL_METRICS = ("Duration", "Compute (SM) Throughput", "Memory Throughput", "DRAM Throughput",
                  "L1/TEX Cache Throughput", "L2 Cache Throughput", "Registers Per Thread",
                  "Dynamic Shared Memory Per Block", "Theoretical Occupancy",
                  "Achieved Occupancy", "Block Limit Registers", "Block Limit Shared Mem",
                  "Executed Ipc Active", "Issue Slots Busy",
                  "Warp Cycles Per Issued Instruction")
# Why warps did not issue: the share of active warp cycles stalled for each reason. A regex, so
# that a reason this GPU's ncu does not count is left out instead of failing the run.
STALL_PREFIX, STALL_SUFFIX = "smsp__warp_issue_stalled_", "_per_warp_active.pct"
STALL_REGEX = "regex:^" + STALL_PREFIX + ".*" + re.escape(STALL_SUFFIX) + "$"
STALLS_SHOWN = 5


def details(a, ncu, name, T, tmp):
    """Nsight Compute's sections for the first launch of each kernel matching --details, and a
    line of its largest stall reasons."""
    log = os.path.join(tmp, f"{name}-{T}-details.csv")
    cmd = [ncu, "--clock-control", "none", "--kernel-name", "regex:" + a.details,
           "--launch-count", "40", "--section", "SpeedOfLight", "--section", "Occupancy",
           "--section", "LaunchStats", "--section", "ComputeWorkloadAnalysis", "--section",
           "WarpStateStats", "--metrics", STALL_REGEX, "--csv", "--print-kernel-base",
           "function", "--log-file", log]
    cmd += profiled_step(a, name, T, tmp)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.timeout)
    text = open(log).read() if os.path.exists(log) else ""
    rows = list(csv.reader(io.StringIO("\n".join(
        ln for ln in text.splitlines() if ln.startswith('"')))))
    head = rows[0] if rows else []
    need = ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value")
    if p.returncode or not all(c in head for c in need):
        why = (p.stderr.strip() or p.stdout.strip() or text.strip()).splitlines()
        print(f"prof  {name}-{T} details FAILED: {why[-1][:200] if why else p.returncode}")
        return 1
    i, k, m, u, v = (head.index(c) for c in need)
    first_id = {}  # kernel name -> the ID of its first launch, whose rows are printed
    rows = [r for r in rows[1:] if first_id.setdefault(r[k], r[i]) == r[i]]
    first = rows[0][k] if rows else ""
    picked = [r for r in rows if r[m] in DETAIL_METRICS] or [r for r in rows if r[k] == first]
    stalls = {}
    for r in rows:
        if r[m].startswith(STALL_PREFIX) and r[m].endswith(STALL_SUFFIX):
            try:
                share = float(r[v].replace(",", ""))
            except ValueError:
                continue
            stalls.setdefault(r[k], []).append((share, r[m][len(STALL_PREFIX):-len(STALL_SUFFIX)]))
    for kernel in first_id:  # each kernel's rows, then its stalls
        for r in picked:
            if r[k] == kernel:
                print(f"prof  {name}-{T} {r[k][:28]:28} {r[m][:36]:36} {r[v]:>12} {r[u]}")
        top = sorted(stalls.get(kernel, []))[::-1][:STALLS_SHOWN]
        if top:
            print(f"prof  {name}-{T} {kernel[:28]:28} stalls, % of active warp cycles: " +
                  ", ".join(f"{why} {share:.1f}" for share, why in top))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default="smollm2-2048,distilbert-512")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--precision", default="bf16")
    ap.add_argument("--attention", default="loraft", help="model.attention")
    ap.add_argument("--loraft-bench", default="build/bench_train_step")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per case")
    ap.add_argument("--details", metavar="REGEX", help="also Nsight Compute's sections "
                    "(throughput, occupancy, launch, issue) for the first case's kernels whose "
                    "name matches, e.g. 'flash_.*_tc_kernel'")
    a = ap.parse_args()
    if a.layers < 1 or a.top < 1:
        return print("--layers and --top must be at least 1", file=sys.stderr) or 2
    ncu = shutil.which("ncu") or next(iter(sorted(glob.glob("/usr/local/cuda/bin/ncu") +
                                                  glob.glob("/opt/nvidia/nsight-compute/*/ncu"))),
                                      None)
    if not ncu:
        print("SKIP: ncu (Nsight Compute) not found")
        return 77
    print(f"# prof: {a.precision}, attention {a.attention}, {a.layers} layers, CUDA Graphs off, "
          f"2 steps (warm-up + 1) under ncu; ms = kernel time summed over both steps")
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in a.cases.split(","):
            name, T = case.rsplit("-", 1)
            try:
                times, why = profile(a, ncu, name, int(T), tmp)
            except subprocess.TimeoutExpired:
                times, why = None, f"timed out after {a.timeout} s"
            if why:
                print(f"prof  {case:14} FAILED: {why}")
                failed += 1
                continue
            total = sum(ns for _, ns in times.values())
            print(f"prof  {case:14} {'kernel':60} {'calls':>6} {'ms':>8} {'%':>6}  "
                  f"(all kernels: {len(times)} names, {total * 1e-6:.2f} ms)")
            ranked = sorted(times.items(), key=lambda kv: -kv[1][1])[:a.top]
            for kernel, (calls, ns) in ranked:
                print(f"prof  {case:14} {kernel[:60]:60} {calls:6d} {ns * 1e-6:8.3f} "
                      f"{100 * ns / total:6.1f}", flush=True)
    if a.details and failed < len(a.cases.split(",")):
        name, T = a.cases.split(",")[0].rsplit("-", 1)
        with tempfile.TemporaryDirectory() as tmp:
            try:
                failed += details(a, ncu, name, int(T), tmp)
            except subprocess.TimeoutExpired:
                print(f"prof  details FAILED: timed out after {a.timeout} s")
                failed += 1
    if failed == len(a.cases.split(",")):
        print("SKIP: ncu could not profile any case (no hardware counters on this machine?)")
        return 77
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
