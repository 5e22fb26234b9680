#!/usr/bin/env bash
# The test command: installs what the build needs (Debian packages, and the Python reference
# venv of torch/transformers/peft, cached outside the repository), then runs every suite:
#   release   optimised build (CUDA backend when nvcc is present; GPU tests skip without a
#             device), the whole CTest suite; and the CUDA backend without NCCL compiles
#   asan      the same suite built with AddressSanitizer + UBSan (and activation guards)
#   cuda-emu  every CUDA kernel executed on the CPU by tests/cuda_emu, several thread orders
#   fuzz      each libFuzzer target for a few seconds
# Every suite runs even when an earlier one failed; the last line counts them.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh || exit 1
scripts/setup-python.sh || exit 1
jobs=$(nproc)
passed=0 failed=0 failures=()
suite() { # suite NAME CMD...: runs CMD, counts it
  local name=$1
  shift
  echo "== $name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)) failures+=("$name"); fi
}
build_and_ctest() { # build_and_ctest DIR CMAKE_ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" "$@" >/dev/null && cmake --build "$dir" -j"$jobs" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

# The CUDA backend as gpu-prebuild.sh builds it for the one-GPU device machine (LORAFT_NCCL=OFF):
# only backend.cu's op table differs there, so it alone is compiled, warnings as errors.
without_nccl() {
  command -v nvcc >/dev/null || { echo "no nvcc: nothing to compile"; return 0; }
  nvcc -std=c++17 -Iinclude -Ikernels/cuda --default-stream=per-thread --Werror=all-warnings \
    -Xcompiler=-Wall,-Wextra,-Werror -c kernels/cuda/backend.cu -o /dev/null
}

suite release build_and_ctest build -DCMAKE_BUILD_TYPE=Release
suite cuda-without-nccl without_nccl
suite asan build_and_ctest build-asan -DLORAFT_SANITIZE=ON -DLORAFT_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
suite cuda-emu scripts/cuda-emu-test.sh
suite fuzz scripts/fuzz.sh 8

[ "$failed" -eq 0 ] || echo "test.sh: failed suites: ${failures[*]}"
echo "test.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
