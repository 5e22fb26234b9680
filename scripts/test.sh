#!/usr/bin/env bash
# The test command: installs what the build needs, then builds and runs every test twice,
# once optimised (with the CUDA backend when nvcc is present; GPU tests skip without a
# device) and once under AddressSanitizer + UBSan, then fuzzes each parser for a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/setup-python.sh # torch/transformers/peft venv for the reference tests: once, then cached
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

cmake -S . -B build-asan -DLORAFT_SANITIZE=ON -DLORAFT_CUDA=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-asan -j"$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs"
scripts/cuda-emu-test.sh # every CUDA kernel, executed on the CPU by tests/cuda_emu

if [ -x scripts/fuzz.sh ]; then scripts/fuzz.sh 8; fi
