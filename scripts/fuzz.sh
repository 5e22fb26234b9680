#!/usr/bin/env bash
# Fuzzes the safetensors header parser for SECONDS (default 20) with libFuzzer under
# AddressSanitizer + UBSan, starting from tests/fuzz/corpus/safetensors. Skips (exit 0)
# when clang is absent. Fails when the fuzzer finds a crash, leak or sanitizer report;
# the reproducer is left in build-fuzz/artifacts/ (replay: build-fuzz/fuzz_safetensors FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang not found, skipping"
  exit 0
fi
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLORAFT_FUZZ=ON -DLORAFT_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_safetensors -j"$(nproc)" >/dev/null
# Work on a copy: the fuzzer adds every interesting input to its corpus directory.
corpus=build-fuzz/corpus/safetensors
mkdir -p "$corpus" build-fuzz/artifacts
cp tests/fuzz/corpus/safetensors/* "$corpus"/
log=build-fuzz/fuzz_safetensors.log
if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-fuzz/fuzz_safetensors \
    -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
    -dict=tests/fuzz/corpus/safetensors.dict -artifact_prefix=build-fuzz/artifacts/ \
    "$corpus" >"$log" 2>&1; then
  tail -n 60 "$log"
  echo "fuzz: FAILED: see $log; reproducer in build-fuzz/artifacts/"
  exit 1
fi
echo "fuzz: ok, $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs"
