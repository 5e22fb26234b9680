#!/usr/bin/env bash
# scripts/check-llama-cpp.sh LLAMA_CPP_SRC_DIR [ADAPTER_DIR]
#
# Checks loraft's llama.cpp exports with llama.cpp itself: builds libllama from a llama.cpp
# source tree (outside the repository, in ~/.cache/loraft/llama.cpp-build), exports a LoRA
# adapter of SmolLM2-135M-Instruct (or of the GGUF in LLAMA_CPP_CHECK_BASE, its tokenizer in its
# metadata: a Qwen2 or Qwen3 one, say; ADAPTER_DIR, else one trained here for 10 steps on
# Persuasion with configs/austen-smollm2-lora.json) with `loraft export-gguf`, merges it with
# `loraft merge --format gguf` (F16 and Q8_0), and compares llama.cpp's logits with loraft's
# at every position of three prompts (scripts/llama-cpp-logits.c and scripts/loraft-logits.c:
# two programs, since libloraft and ggml both define gguf_* functions): the base GGUF, base +
# adapter (llama.cpp's --lora; loraft's alone, saying why, for an adapter export-gguf refuses: one
# on a tied model's embedding or head, whose merge unties the head), and each merged file; and
# loraft's merged F16 file against loraft's base + adapter. Fails when llama.cpp refuses a file,
# when its argmax differs from loraft's at more than 10% of the positions, when the adapter or
# merged rows differ by more than twice the base row plus 0.5 (the base row is the floor:
# llama.cpp's quantised kernels round activations to 8 bits, loraft computes in f32), or when
# loraft's merged F16 logits are more than 0.5 from its base + adapter's.
# libllama is built without -march=native: that enables AMX on CPUs that advertise it, which
# a virtual machine may not let a process execute (SIGILL).
#
# A llama.cpp source tree comes with the PyPI package llama-cpp-python:
#   pip download --no-deps --no-binary :all: -d /tmp/lcp llama-cpp-python==0.3.36
#   tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
#   scripts/check-llama-cpp.sh /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp
# Building libllama takes 10-20 minutes on 2 cores the first time. Environment: LORAFT_BUILD
# (default build-cpu, configured without CUDA), LLAMA_CPP_BUILD (default
# ~/.cache/loraft/llama.cpp-build), LLAMA_CPP_CHECK_TARGETS (the adapter's lora.target_modules,
# comma-separated; default the config's Llama names; a Phi-3 base:
# qkv_proj,o_proj,gate_up_proj,down_proj).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-}
if [ -z "$src" ] || [ ! -f "$src/include/llama.h" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  echo "check-llama-cpp: '${src}' is not a llama.cpp source tree (no include/llama.h)." >&2
  echo "usage: scripts/check-llama-cpp.sh LLAMA_CPP_SRC_DIR [ADAPTER_DIR]; the top of this script" >&2
  echo "says how to get one from the llama-cpp-python package." >&2
  exit 2
fi
src=$(cd "$src" && pwd)
base=${LLAMA_CPP_CHECK_BASE:-models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$base" ] || { echo "check-llama-cpp: $base is absent: scripts/fetch-model.sh smollm2-135m-instruct models/smollm2" >&2; exit 2; }
build=${LORAFT_BUILD:-build-cpu} # without CUDA: loraft-logits links libloraft.a with cc
lbuild=${LLAMA_CPP_BUILD:-$HOME/.cache/loraft/llama.cpp-build}
work=$(mktemp -d /tmp/loraft-llama-cpp-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== building loraft ($build) and libllama ($lbuild)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLORAFT_CUDA=OFF >/dev/null
cmake --build "$build" -j2 --target loraft loraft_lib >/dev/null
cmake -S "$src" -B "$lbuild" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_OPENMP=ON \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >/dev/null
cmake --build "$lbuild" -j2 --target llama >/dev/null
libdir=$(dirname "$(find "$lbuild" -name 'libllama.so' | head -1)")
blas=$(find /usr/lib -path '*openblas-openmp*' -name libopenblas.so | head -1)
cc -O2 -std=c11 -I"$src/include" -I"$src/ggml/include" scripts/llama-cpp-logits.c \
  -L"$libdir" -lllama -Wl,-rpath,"$libdir" -o "$work/llama-cpp-logits"
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude scripts/loraft-logits.c "$build/libloraft.a" -lcjson \
  "${blas:--lopenblas}" -fopenmp -lm -o "$work/loraft-logits"

adapter=${2:-}
if [ -z "$adapter" ]; then
  echo "== training a LoRA adapter for 10 steps (configs/austen-smollm2-lora.json)"
  targets=()
  [ -z "${LLAMA_CPP_CHECK_TARGETS:-}" ] || targets=(--set lora.target_modules="$LLAMA_CPP_CHECK_TARGETS")
  "$build/loraft" train --config configs/austen-smollm2-lora.json --set model.model="$base" \
    "${targets[@]}" --set train.max_steps=10 \
    --set train.learning_rate=2e-3 --set train.warmup_steps=0 --set data.max_length=128 \
    --set train.batch_size=2 --set train.eval_strategy=no --set train.save_strategy=steps \
    --set train.save_steps=10 --set train.output_dir="$work/run" >"$work/train.log" 2>&1 ||
    { tail "$work/train.log"; exit 1; }
  adapter=$work/run/last
fi

echo "== exporting"
if ! "$build/loraft" export-gguf --model "$base" --adapter "$adapter" --out "$work/adapter.gguf" \
  2>"$work/export.err"; then
  grep -qE "ha(s|ve) no llama.cpp (LoRA )?form" "$work/export.err" || { cat "$work/export.err"; exit 1; }
  echo "(no adapter row: $(cat "$work/export.err"))"
fi
for t in f16 q8_0; do
  "$build/loraft" merge --model "$base" --adapter "$adapter" --format gguf --type $t \
    --out "$work/merged.$t.gguf"
done

echo "== logits"
{
  echo '{"text": "It is a truth universally acknowledged, that a single man in possession of a good fortune"}'
  echo '{"text": "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who"}'
  echo '{"text": "<|im_start|>user\nWho is Anne Elliot?<|im_end|>\n<|im_start|>assistant\n"}'
} | "$build/loraft" tokenize --tokenizer "$base" >"$work/ids.jsonl"
logits() {  # NAME MODEL ADAPTER_DIR|- LORA.gguf|-|none (none: loraft's alone)
  "$work/loraft-logits" "$2" "$3" "$work/ids.jsonl" "$work/$1.loraft.f32"
  [ "$4" = none ] || "$work/llama-cpp-logits" "$2" "$4" "$work/ids.jsonl" "$work/$1.llama.f32"
}
logits base "$base" - -
logits adapter "$base" "$adapter" "$([ -f "$work/adapter.gguf" ] && echo "$work/adapter.gguf" || echo none)"
logits merged-f16 "$work/merged.f16.gguf" - -
logits merged-q8_0 "$work/merged.q8_0.gguf" - -

python3 - "$work" <<'PY'
import array, json, os, sys
work = sys.argv[1]
positions = sum(len(json.loads(l)["ids"]) for l in open(os.path.join(work, "ids.jsonl")))
def load(name):
    a = array.array("f")
    with open(os.path.join(work, name), "rb") as f:
        a.frombytes(f.read())
    return a
def argmax(row):
    return max(range(len(row)), key=row.__getitem__)
base_diff, ok = None, True
names = ["base", "adapter", "merged-f16", "merged-q8_0"]
for name in [n for n in names if os.path.exists(os.path.join(work, n + ".llama.f32"))]:
    a, b = load(name + ".loraft.f32"), load(name + ".llama.f32")
    V = len(a) // positions
    assert len(a) == len(b) == positions * V, "%s: the two logit files differ in size" % name
    diff, total, agree = 0.0, 0.0, 0
    for t in range(positions):
        ra, rb = a[t * V:(t + 1) * V], b[t * V:(t + 1) * V]
        d = [abs(x - y) for x, y in zip(ra, rb)]
        diff, total = max(diff, max(d)), total + sum(d)
        agree += argmax(ra) == argmax(rb)
    base_diff = diff if base_diff is None else base_diff
    print("%-11s |logit loraft - llama.cpp|: max %.4f, mean %.4f; argmax agrees at %d/%d positions"
          % (name, diff, total / len(a), agree, positions))
    ok = ok and agree >= 0.9 * positions and (name == "base" or diff <= 2 * base_diff + 0.5)
base, adapter, merged = (load(n + ".loraft.f32") for n in ("base", "adapter", "merged-f16"))
d = [abs(x - y) for x, y in zip(base, adapter)]
print("(the adapter moves loraft's logits by up to %.4f, %.4f on average)" % (max(d), sum(d) / len(d)))
d = [abs(x - y) for x, y in zip(adapter, merged)]
print("loraft, merged F16 file vs base + adapter: max %.4f, mean %.4f" % (max(d), sum(d) / len(d)))
ok = ok and max(d) <= 0.5
print("check-llama-cpp: " + ("ok" if ok else "FAILED"))
sys.exit(0 if ok else 1)
PY
