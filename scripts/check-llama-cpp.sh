#!/usr/bin/env bash
# scripts/check-llama-cpp.sh LLAMA_CPP_SRC_DIR [ADAPTER_DIR]
#
# Checks loraft's llama.cpp exports with llama.cpp itself: builds libllama from a llama.cpp
# source tree (outside the repository, in ~/.cache/loraft/llama.cpp-build), exports a LoRA
# adapter of SmolLM2-135M-Instruct (ADAPTER_DIR, else one trained here for 10 steps on
# Persuasion with configs/austen-smollm2-lora.json) with `loraft export-gguf`, merges it with
# `loraft merge --format gguf` (F16 and Q8_0), and compares llama.cpp's logits with loraft's
# on a few prompts (scripts/llama-cpp-compare.c): the base GGUF, base + adapter (llama.cpp's
# --lora), and each merged file. Fails when llama.cpp refuses a file, when its argmax differs
# from loraft's at more than 10% of the positions, or when the adapter or merged rows differ by
# more than twice the base row plus 0.5 (the base row is the floor: llama.cpp's Q4_1 kernels
# round activations to 8 bits, loraft computes in f32).
#
# A llama.cpp source tree comes with the PyPI package llama-cpp-python:
#   pip download --no-deps --no-binary :all: -d /tmp/lcp llama-cpp-python==0.3.36
#   tar xzf /tmp/lcp/llama_cpp_python-0.3.36.tar.gz -C /tmp/lcp
#   scripts/check-llama-cpp.sh /tmp/lcp/llama_cpp_python-0.3.36/vendor/llama.cpp
# Building libllama takes 10-20 minutes on 2 cores the first time. Environment: LORAFT_BUILD
# (default build), LLAMA_CPP_BUILD (default ~/.cache/loraft/llama.cpp-build).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-}
if [ -z "$src" ] || [ ! -f "$src/include/llama.h" ] || [ ! -f "$src/CMakeLists.txt" ]; then
  echo "check-llama-cpp: '${src}' is not a llama.cpp source tree (no include/llama.h)." >&2
  echo "usage: scripts/check-llama-cpp.sh LLAMA_CPP_SRC_DIR [ADAPTER_DIR]; see the top of this script" >&2
  echo "for getting one from the llama-cpp-python package." >&2
  exit 2
fi
src=$(cd "$src" && pwd)
base=models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$base" ] || { echo "check-llama-cpp: $base is absent: scripts/fetch-model.sh smollm2-135m-instruct models/smollm2" >&2; exit 2; }
build=${LORAFT_BUILD:-build}
lbuild=${LLAMA_CPP_BUILD:-$HOME/.cache/loraft/llama.cpp-build}
work=$(mktemp -d /tmp/loraft-llama-cpp-XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== building loraft ($build) and libllama ($lbuild)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j2 --target loraft loraft_lib >/dev/null
cmake -S "$src" -B "$lbuild" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=ON \
  -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF >/dev/null
cmake --build "$lbuild" -j2 --target llama >/dev/null
libdir=$(dirname "$(find "$lbuild" -name 'libllama.so' | head -1)")
blas=$(find /usr/lib -path '*openblas-openmp*' -name libopenblas.so | head -1)
cc -O2 -std=c11 -D_GNU_SOURCE -Iinclude -I"$src/include" -I"$src/ggml/include" \
  scripts/llama-cpp-compare.c "$build/libloraft.a" -L"$libdir" -lllama -Wl,-rpath,"$libdir" \
  -lcjson "${blas:--lopenblas}" -fopenmp -lm -o "$work/compare"

adapter=${2:-}
if [ -z "$adapter" ]; then
  echo "== training a LoRA adapter for 10 steps (configs/austen-smollm2-lora.json)"
  "$build/loraft" train --config configs/austen-smollm2-lora.json --set train.max_steps=10 \
    --set train.learning_rate=2e-3 --set train.warmup_steps=0 --set data.max_length=128 \
    --set train.batch_size=2 --set train.eval_strategy=no --set train.save_strategy=no \
    --set train.output_dir="$work/run" >"$work/train.log" 2>&1 || { tail "$work/train.log"; exit 1; }
  adapter=$work/run/last
fi

echo "== exporting"
"$build/loraft" export-gguf --model "$base" --adapter "$adapter" --out "$work/adapter.gguf"
for t in f16 q8_0; do
  "$build/loraft" merge --model "$base" --adapter "$adapter" --format gguf --type $t \
    --out "$work/merged.$t.gguf"
done

prompts=("It is a truth universally acknowledged, that a single man in possession of a good fortune"
  "Sir Walter Elliot, of Kellynch Hall, in Somersetshire, was a man who"
  "<|im_start|>user
Who is Anne Elliot?<|im_end|>
<|im_start|>assistant
")
status=0
for t in f16 q8_0; do
  echo "== llama.cpp vs loraft, merged $t"
  "$work/compare" "$base" "$adapter" "$work/adapter.gguf" "$work/merged.$t.gguf" "${prompts[@]}" \
    | tee "$work/cmp.$t" || { status=1; continue; }
  python3 - "$work/cmp.$t" <<'EOF' || status=1
import re, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"(\w+)\s+max \|logit loraft - llama.cpp\| = (\S+)\s+argmax agrees at (\d+)/(\d+)", line)
    if m:
        rows[m.group(1)] = (float(m.group(2)), int(m.group(3)), int(m.group(4)))
floor = rows["base"][0]
for name in ("base", "adapter", "merged"):
    d, agree, total = rows[name]
    assert agree >= 0.9 * total, "%s: argmax agrees at only %d/%d positions" % (name, agree, total)
    assert name == "base" or d <= 2 * floor + 0.5, "%s: max |diff| %g > 2 x base %g + 0.5" % (name, d, floor)
print("ok")
EOF
done
exit $status
