#!/usr/bin/env bash
# gpu-check.sh: the one command a session with an NVIDIA GPU runs. Builds a Release tree
# with the CUDA backend, runs the GPU-vs-CPU parity test and the whole CTest suite, runs
# the kernel benchmarks (FP32 GEMMs, then TF32), runs scripts/bench-vs-pytorch.sh when it
# exists, and prints a compact summary. Full logs stay in <build>/gpu-check/.
# Usage: scripts/gpu-check.sh [build-dir]   (default build-gpu). Exit 0 only if all passed.
# Budget: a few minutes on a 16-core H200 machine; every step has a timeout and all of
# them together stop at LORAFT_GPU_CHECK_BUDGET seconds (default 540).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-gpu}
logs=$build/gpu-check
jobs=$(nproc)
die() { echo "gpu-check: $*" >&2; exit 2; }

nvcc=$(command -v nvcc || true)
[ -n "$nvcc" ] || { [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc; }
[ -n "$nvcc" ] || die "nvcc not found: install the CUDA toolkit or put nvcc on PATH"
if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  die "no NVIDIA GPU visible (nvidia-smi missing or failing); the GPU tests would only skip"
fi
echo "gpu-check: $(nvidia-smi -L | head -1); $("$nvcc" --version | tail -1)"

mkdir -p "$logs"
failed=()
deadline=$((SECONDS + ${LORAFT_GPU_CHECK_BUDGET:-540}))
step() { # step NAME TIMEOUT_S LOG CMD...: runs CMD with a timeout, logs it, records failure
  local name=$1 limit=$2 log=$3; shift 3
  local start=$SECONDS rc=0 left=$((deadline - SECONDS))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    printf '  %-28s SKIPPED (time budget spent)\n' "$name"
    failed+=("$name")
    return 0
  fi
  timeout "$limit" "$@" >"$log" 2>&1 || rc=$?
  local verdict="ok"
  [ $rc -eq 77 ] && verdict="SKIPPED (exit 77: the CUDA runtime found no device), see $log"
  [ $rc -ne 0 ] && [ $rc -ne 77 ] && verdict="FAILED rc=$rc, see $log"
  printf '  %-28s %s (%ds)\n' "$name" "$verdict" $((SECONDS - start))
  [ $rc -eq 0 ] || failed+=("$name")
  return 0
}

echo "== build ($build, Release, CUDA on, -j$jobs)"
step configure 120 "$logs/configure.log" \
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLORAFT_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc"
step build 240 "$logs/build.log" cmake --build "$build" -j"$jobs"
if [ ${#failed[@]} -gt 0 ]; then
  grep -E "error|Error" "$logs"/configure.log "$logs"/build.log | head -20 || true
  die "build failed: ${failed[*]}"
fi

echo "== GPU parity (CUDA ops vs CPU reference)"
step test_gpu_parity 120 "$logs/parity.log" "$build/test_gpu_parity"
grep -E "passed, .* failed|SKIP" "$logs/parity.log" | sed 's/^/  /' || true
grep -E "off, first|CHECK failed|status:" "$logs/parity.log" | head -20 | sed 's/^/  /' || true

echo "== ctest (whole suite)"
step ctest 240 "$logs/ctest.log" ctest --test-dir "$build" -j"$jobs" --timeout 200 --output-on-failure
grep -E "^ *[0-9]+/[0-9]+ Test +#" "$logs/ctest.log" |
  sed -E 's/^ *[0-9]+\/[0-9]+ Test +#[0-9]+: ([^ ]+) [.*]*/\1 /' | awk '{printf "  %-32s %s %s\n", $1, $2, $3}' || true
grep -E "tests passed|tests failed" "$logs/ctest.log" | sed 's/^/  /' || true

echo "== kernel benchmarks (FP32 GEMMs)"
step bench_kernels 120 "$logs/bench_fp32.txt" "$build/bench_kernels"
sed 's/^/  /' "$logs/bench_fp32.txt"
echo "== kernel benchmarks (TF32 GEMMs, LORAFT_CUDA_TF32=1)"
step bench_kernels_tf32 120 "$logs/bench_tf32.txt" env LORAFT_CUDA_TF32=1 "$build/bench_kernels"
grep -E "matmul|lora|attention" "$logs/bench_tf32.txt" | sed 's/^/  /' || true

if [ -f scripts/bench-vs-pytorch.sh ]; then
  echo "== end to end vs PyTorch (scripts/bench-vs-pytorch.sh)"
  step bench-vs-pytorch 240 "$logs/bench_vs_pytorch.txt" env LORAFT_BUILD_DIR="$build" \
    bash scripts/bench-vs-pytorch.sh
  tail -25 "$logs/bench_vs_pytorch.txt" | sed 's/^/  /'
fi

echo "== summary"
if [ ${#failed[@]} -gt 0 ]; then
  echo "  FAILED: ${failed[*]} (logs in $logs/)"
  exit 1
fi
echo "  all steps passed (logs in $logs/)"
