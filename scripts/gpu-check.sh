#!/usr/bin/env bash
# gpu-check.sh: the one command a session with an NVIDIA GPU runs. Builds a Release tree with
# the CUDA backend, runs the GPU-vs-CPU parity tests and the whole CTest suite on the device,
# the kernel benchmarks (FP32 GEMMs, then TF32) and, when torch + transformers + peft are
# importable, the end-to-end comparison with PyTorch + PEFT.
#
# Usage: scripts/gpu-check.sh [OUT]   (default build-gpu/gpu-check)
# Every log and summary.txt go to OUT (emptied first, so nothing stale is read), which a
# remote caller can bring back whole. The summary is always written and printed, also when
# a step fails, times out or cannot run (it then says why). Exit 0 only if nothing failed;
# skipped steps do not fail the check. All steps together stop at LORAFT_GPU_CHECK_BUDGET
# seconds (default 540); the build tree is $LORAFT_GPU_BUILD (default build-gpu).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-gpu/gpu-check}
build=${LORAFT_GPU_BUILD:-build-gpu}
rm -rf "$out" && mkdir -p "$out" || { echo "gpu-check: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
summary=$out/summary.txt
deadline=$((SECONDS + ${LORAFT_GPU_CHECK_BUDGET:-540}))
failed=0
note() { echo "$*" | tee -a "$summary"; }
trap 'note "== result: $([ $failed -eq 0 ] && echo "no step failed" || echo "$failed step(s) failed") (logs in $out)"' EXIT

# step NAME TIMEOUT_S CMD...: runs CMD with a timeout into $out/NAME.log; one summary line.
step() {
  local name=$1 limit=$2 start=$SECONDS rc=0 left=$((deadline - SECONDS)) verdict
  shift 2
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -lt 5 ]; then
    note "$(printf '  %-22s SKIPPED: time budget spent' "$name")"
    return 1
  fi
  timeout "$limit" "$@" >"$out/$name.log" 2>&1 || rc=$?
  case $rc in
    0) verdict=ok ;;
    77) verdict="SKIPPED: $(grep -m1 -E 'SKIP' "$out/$name.log" || echo 'exit 77')" ;;
    124) verdict="FAILED: timed out after ${limit}s" ;;
    *) verdict="FAILED: exit $rc" ;;
  esac
  note "$(printf '  %-22s %s (%ds)' "$name" "$verdict" $((SECONDS - start)))"
  [ $rc -eq 0 ] || [ $rc -eq 77 ] || { failed=$((failed + 1)); return 1; }
  [ $rc -eq 0 ]
}
skip() { note "$(printf '  %-22s SKIPPED: %s' "$1" "$2")"; }
# Lines of a step's log that matter, indented into the summary.
show() { [ -f "$out/$1.log" ] && grep -E "$2" "$out/$1.log" | head -"${3:-20}" | sed 's/^/    /' | tee -a "$summary"; }

nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
note "== gpu-check $(date -u +%FT%TZ) on $(hostname), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
if [ ! -x "$nvcc" ]; then
  note "  nvcc not found: install the CUDA toolkit or put nvcc on PATH"
  failed=1
  exit 1
fi
note "  $("$nvcc" --version | tail -1)"
if ! nvidia-smi -L >/dev/null 2>&1; then
  note "  no NVIDIA GPU visible (nvidia-smi missing or failing): the GPU steps would only skip"
  failed=1
  exit 1
fi
note "  $(nvidia-smi -L | head -1); driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"

note "== build ($build, Release, CUDA on)"
step configure 120 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLORAFT_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES=native &&
  step build 300 cmake --build "$build" -j"$(nproc)"
if [ ! -x "$build/test_gpu_parity" ]; then
  show configure "Error|error" 10
  show build "error" 20
  note "  the build did not finish: nothing else can run"
  exit 1
fi

note "== GPU tests (CUDA ops vs the CPU reference)"
step test_gpu_parity 150 "$build/test_gpu_parity"
show test_gpu_parity "passed, .* failed|off, first|CHECK failed|status:|tf32|TF32" 25
step test_gpu_model 120 "$build/test_gpu_model"
show test_gpu_model "passed, .* failed|CHECK failed|max" 12
step ctest 240 ctest --test-dir "$build" -j"$(nproc)" --timeout 200 --output-on-failure
show ctest "tests passed|tests failed|\*\*\*Failed|Skipped" 20

note "== kernel benchmarks"
step bench_fp32 120 "$build/bench_kernels" && show bench_fp32 "." 60
step bench_tf32 120 env LORAFT_CUDA_TF32=1 "$build/bench_kernels" &&
  show bench_tf32 "matmul|lora|attention" 30

note "== end to end vs PyTorch + PEFT"
if ! python3 -c "import torch, transformers, peft" >/dev/null 2>&1; then
  skip bench_vs_pytorch "python3 cannot import torch, transformers and peft"
elif [ ! -d ../shared/data/tokenizers/bert-base-uncased ]; then
  skip bench_vs_pytorch "../shared/data/tokenizers/bert-base-uncased is absent (vocabulary)"
else
  step bench_vs_pytorch 240 env LORAFT_BUILD_DIR="$build" bash scripts/bench-vs-pytorch.sh
  show bench_vs_pytorch "." 25
fi
[ $failed -eq 0 ]
