#!/usr/bin/env bash
# cuda-emu-test.sh: runs every GPU test (tests/gpu/test_*.c: the op parity grid and the
# whole-model parity) with the CUDA kernels executed on the CPU by the emulation in
# tests/cuda_emu (ASan + UBSan build in build-emu/), and the emulation's own test
# (tests/cuda_emu/test_emu.cu), once per thread order: seed 0 runs the
# threads of a block in order, other seeds draw a random order between barriers and warp
# collectives (LORAFT_EMU_SEED). Even seeds check each launch against the limits of every
# architecture the CUDA build compiles for; odd ones emulate sm_90 (LORAFT_EMU_ARCH=90: its
# limits alone, which the device reports, so that the kernels picked by its shared memory run;
# the emulation's own test sets both itself). Two runs at a time; logs in build-emu/emu-logs/.
# Then the GPU benchmarks' smoke runs, once (seed 0; tiny shapes, one run each: they must not
# fail).
# Ends with the line "N passed, N failed" (one per test and seed); exit 0 only if none failed.
# Usage: scripts/cuda-emu-test.sh          (LORAFT_EMU_SEEDS="0 1 2 3" overrides the seeds)
set -uo pipefail
cd "$(dirname "$0")/.."
build=build-emu
logs=$build/emu-logs
seeds=${LORAFT_EMU_SEEDS:-0 1 2 3}
start=$SECONDS

echo "== build ($build: kernels/*.cu as host C++ on tests/cuda_emu, ASan + UBSan)"
mkdir -p "$logs"
if ! { cmake -S tests/cuda_emu -B "$build" >"$logs/configure.log" 2>&1 &&
       cmake --build "$build" -j2 >"$logs/build.log" 2>&1; }; then
  grep -E "error|Error" "$logs/configure.log" "$logs/build.log" | head -20
  echo "cuda-emu-test: the build failed (logs in $logs/)"
  echo "0 passed, 1 failed"
  exit 1
fi

tests=()
for src in tests/gpu/test_*.c; do
  t=$(basename "$src" .c)
  [ "$t" = test_cudnn_graphs ] && continue # host-only, in the real CUDA build (no cuDNN here)
  [ "$t" = test_gpu_parity ] && tests=("$t" "${tests[@]}") || tests+=("$t") # longest first
done
tests+=(test_emu)

run_one() { # run_one TEST SEED: runs it, leaves LOG, LOG.rc and LOG.time
  local t=$1 s=$2 log=$logs/$1.seed$2.log t0=$SECONDS rc=0 arch=
  [ $((s % 2)) = 1 ] && arch=90
  LORAFT_EMU_SEED=$s LORAFT_EMU_ARCH=$arch ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    LORAFT_SHARED_DATA="$PWD/../shared/data" timeout 400 "$build/$t" >"$log" 2>&1 || rc=$?
  echo "$rc" >"$log.rc"
  echo $((SECONDS - t0)) >"$log.time"
}

echo "== run (seeds: $seeds)"
for t in "${tests[@]}"; do
  for s in $seeds; do
    rm -f "$logs/$t.seed$s.log.rc"
    run_one "$t" "$s" &
    while [ "$(jobs -rp | wc -l)" -ge 2 ]; do wait -n; done
  done
done
wait

passed=0 failed=0
for t in "${tests[@]}"; do
  for s in $seeds; do
    log=$logs/$t.seed$s.log
    rc=$(cat "$log.rc" 2>/dev/null || echo "?")
    checks=$(grep -E "^[0-9]+ passed, [0-9]+ failed$" "$log" | tail -1)
    if [ "$rc" = 0 ]; then
      passed=$((passed + 1))
      printf '  %-18s seed %-3s ok      %-22s (%ss)\n' "$t" "$s" "$checks" "$(cat "$log.time")"
    else
      failed=$((failed + 1))
      [ "$rc" = 124 ] && why="timed out" || why="exit $rc"
      printf '  %-18s seed %-3s FAILED  %-22s (%s, %ss), see %s\n' "$t" "$s" "$checks" "$why" \
        "$(cat "$log.time" 2>/dev/null)" "$log"
      grep -E "cuda-emu:|ERROR: AddressSanitizer|runtime error|SUMMARY|CHECK failed|elements off|status:" \
        "$log" | head -8 | sed 's/^/      /'
    fi
  done
done
# The GPU benchmarks at smoke size: bench_kernels --smoke (fp32, bf16), a training step of
# bench_train_step (model.precision auto: bf16) on the tiny random DistilBERT and Llama of
# bench/tiny, bench_generate's decode (graph replays) on that Llama with LoRA, and
# bench/launch-count.sh's counts of a step's launches (about 15 s together).
smoke() { # smoke NAME CMD...: one run, counted and reported like a test
  local name=$1 log=$logs/$1.log rc=0 t0=$SECONDS
  shift
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    timeout 120 "$@" >"$log" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    passed=$((passed + 1))
    printf '  %-27s ok      (%ss)\n' "$name" $((SECONDS - t0))
  else
    failed=$((failed + 1))
    printf '  %-27s FAILED  (exit %s), see %s\n' "$name" "$rc" "$log"
    grep -E "cuda-emu:|ERROR: AddressSanitizer|runtime error|SUMMARY|bench" "$log" | head -8 |
      sed 's/^/      /'
  fi
}
smoke bench_kernels_smoke "$build/bench_kernels" --smoke
smoke bench_kernels_smoke_bf16 "$build/bench_kernels" --smoke --bf16
for arch in distilbert llama; do
  smoke "bench_train_step_$arch" "$build/bench_train_step" "bench/tiny/$arch" --random \
    --device cuda --batch 2 --seq 32 --steps 1
done
smoke bench_generate "$build/bench_generate" bench/tiny/llama --random --device cuda --prompt 8 \
  --new 8 --runs 1 --targets q_proj,v_proj
smoke launch_count bench/launch-count.sh "$build"

echo "cuda-emu-test: $((SECONDS - start)) s"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
