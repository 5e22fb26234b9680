#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS [NAME...]]: runs every libFuzzer target (tests/fuzz/fuzz_*.c:
# safetensors header, tokenizer, JSONL and CSV readers, training config with overrides,
# adapter_config.json, a model's config.json, SFT and preference records), or the NAMEs given, for SECONDS each (default 10) under
# AddressSanitizer + UBSan, one after the other, each from its seed corpus
# tests/fuzz/corpus/NAME/ with the dictionary tests/fuzz/corpus/NAME.dict when there is one.
# Skips (exit 0) when clang is absent. Fails when a fuzzer finds a crash, leak, sanitizer
# report or broken property; the reproducer is left in build-fuzz/artifacts/ (replay:
# build-fuzz/fuzz_NAME FILE).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz: clang not found, skipping"
  exit 0
fi
targets=${*:2}
[ -n "$targets" ] || targets=$(basename -s .c tests/fuzz/fuzz_*.c | sed 's/^fuzz_//')
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DLORAFT_FUZZ=ON -DLORAFT_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
# shellcheck disable=SC2046
cmake --build build-fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' $targets) >/dev/null
mkdir -p build-fuzz/artifacts
failed=0
for name in $targets; do
  # Work on a copy: the fuzzer adds every interesting input to its corpus directory.
  corpus=build-fuzz/corpus/$name
  mkdir -p "$corpus"
  cp tests/fuzz/corpus/"$name"/* "$corpus"/
  dict=(); [ -f tests/fuzz/corpus/"$name".dict ] && dict=(-dict=tests/fuzz/corpus/"$name".dict)
  log=build-fuzz/fuzz_$name.log
  if UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 build-fuzz/fuzz_"$name" \
      -max_total_time="$seconds" -max_len=4096 -timeout=10 -print_final_stats=1 \
      "${dict[@]}" \
      -artifact_prefix=build-fuzz/artifacts/"$name"- "$corpus" >"$log" 2>&1; then
    runs=$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
    echo "fuzz: $name ok, $runs runs in ${seconds}s, corpus $(ls "$corpus" | wc -l) inputs"
  else
    tail -n 60 "$log"
    echo "fuzz: $name FAILED: see $log; reproducer in build-fuzz/artifacts/$name-*"
    failed=1
  fi
done
exit $failed
