#!/usr/bin/env bash
# gpu-check.sh: the one command a session with an NVIDIA GPU runs (issue 10). Builds a Release
# tree with the CUDA backend for the GPU it finds, then, most valuable first so that a timeout
# loses the least: the GPU-vs-CPU tests (tests/gpu), the kernel benchmarks (bench_kernels at
# model.precision bf16, PyTorch's attention at its attention shapes, and the attention kernels'
# instructions per tile from their SASS, bench/sass-paths.py), end to end loraft vs PyTorch +
# PEFT (bench/bench-gpu-e2e.py, one step per model and length), generation's prefill and decode
# against transformers (bench/bench-gpu-generate.py), a per-kernel time breakdown of a bf16 step (bench/profile-step.py,
# ncu), the kernel benchmarks' GEMM and LoRA rows in strict FP32 and TF32, the whole CTest
# suite, and last, where time remains, end to end at Llama-3.2-1B's, Qwen3-0.6B's, Gemma 3
# 270M's and Phi-4-mini's shapes, SmolLM2's with half of every row a prompt (SFT's), as DPO
# pairs after such a prompt, and with its projections quantised at load (q8_0, q4_0, nf4).
#
# The build is skipped where .gpu-prebuilt/ (scripts/gpu-prebuild.sh, run on a machine without
# the GPU) holds binaries of these sources for this GPU and CUDA version: a device lease then
# spends none of its minutes compiling.
#
# Usage: scripts/gpu-check.sh [OUT]   (default build-gpu/gpu-check)
# Every log and summary.txt go to OUT (emptied first, so nothing stale is read). summary.txt is
# always written and printed as it grows, also when a step fails, times out or cannot run (it
# says why): the benchmark tables are in it, ready for docs/BENCHMARKS.md. Exit 0 only if
# nothing failed; skipped steps do not fail the check. All steps together stop at
# LORAFT_GPU_CHECK_BUDGET seconds (default 540); the build tree is $LORAFT_GPU_BUILD (default
# build-gpu); LORAFT_PYTHON picks the Python with torch, transformers and peft (default: the
# venv of scripts/setup-python.sh when ready, else python3).
# LORAFT_GPU_CHECK_COMMIT names the commit in the summary's header (the device tool's copy of
# the tree may carry the session's first commit in .git).
# LORAFT_GPU_CHECK_SKIP is an extended regex of step names to skip (for a short device lease:
# e.g. 'profile.*|bench_kernels_(fp32|tf32)|build_all|ctest'); LORAFT_GPU_CHECK_E2E_PRECISION
# the loraft precisions of the four main e2e cases (bench-gpu-e2e.py --precision).
# LORAFT_GPU_CHECK_DRY=1 exercises the plumbing without a GPU: no GPU required, the benchmarks
# run with --smoke (e2e on the CPU), CTest only the GPU tests (they skip).
# On the device tool (carry .gpu-deps and .gpu-prebuilt): LORAFT_GPU_CHECK_COMMIT=<commit>
# scripts/gpu-check.sh build-gpu/gpu-check;
# cp build-gpu/gpu-check/summary.txt $OUT/; tar czf $OUT/gpu-check-logs.tgz -C build-gpu
# gpu-check   (8 files come back at most).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
out=${1:-build-gpu/gpu-check}
build=${LORAFT_GPU_BUILD:-build-gpu}
dry=${LORAFT_GPU_CHECK_DRY:-0}
rm -rf "$out" && mkdir -p "$out" || { echo "gpu-check: cannot create $out" >&2; exit 2; }
out=$(cd "$out" && pwd)
summary=$out/summary.txt
deadline=$((SECONDS + ${LORAFT_GPU_CHECK_BUDGET:-540}))
failed=0
note() { echo "$*" | tee -a "$summary"; }
trap 'note "== result: $([ $failed -eq 0 ] && echo "no step failed" || echo "$failed step(s) failed") (logs in $out)"' EXIT

# step NAME TIMEOUT_S CMD...: runs CMD with a timeout into $out/NAME.log; one summary line.
# A step the budget cuts short is reported as stopped, not failed: its own limit was not reached.
step() {
  local name=$1 limit=$2 start=$SECONDS rc=0 left=$((deadline - SECONDS)) verdict cut=0
  shift 2
  if [[ -n ${LORAFT_GPU_CHECK_SKIP:-} && $name =~ ^(${LORAFT_GPU_CHECK_SKIP})$ ]]; then
    note "$(printf '  %-22s SKIPPED: LORAFT_GPU_CHECK_SKIP' "$name")"
    return 1
  fi
  [ "$left" -lt "$limit" ] && limit=$left cut=1
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
  [ $rc -eq 124 ] && [ $cut -eq 1 ] && rc=77 verdict="STOPPED: the time budget ended it after ${limit}s"
  note "$(printf '  %-22s %s (%ds)' "$name" "$verdict" $((SECONDS - start)))"
  [ $rc -eq 0 ] || [ $rc -eq 77 ] || { failed=$((failed + 1)); return 1; }
  [ $rc -eq 0 ]
}
skip() { note "$(printf '  %-22s SKIPPED: %s' "$1" "$2")"; }
# Lines of a step's log that match, indented into the summary (also after a failure or a
# timeout: the rows printed so far count).
show() { [ -f "$out/$1.log" ] && grep -E "$2" "$out/$1.log" | head -"${3:-20}" | sed 's/^/    /' | tee -a "$summary"; }

nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
# The device tool's copy of the tree can carry an older .git: the caller may name the commit.
commit=${LORAFT_GPU_CHECK_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes')}
note "== gpu-check $(date -u +%FT%TZ) on ${HOSTNAME:-?}, commit $commit$([ "$dry" = 1 ] && echo ', DRY RUN (no GPU; smoke shapes)')"
if [ ! -x "$nvcc" ]; then
  note "  nvcc not found: install the CUDA toolkit or put nvcc on PATH"
  failed=1
  exit 1
fi
note "  $("$nvcc" --version | tail -1)"
smoke=() e2e_device=cuda arch=native
if [ "$dry" = 1 ]; then
  smoke=(--smoke) e2e_device=cpu arch=90
elif ! nvidia-smi -L >/dev/null 2>&1; then
  note "  no NVIDIA GPU visible (nvidia-smi missing or failing): nothing here can run"
  failed=1
  exit 1
else
  note "  $(nvidia-smi -L | head -1); driver $(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -1)"
fi
py=${LORAFT_PYTHON:-$(scripts/setup-python.sh --check 2>/dev/null || command -v python3 || echo python3)}
if pyver=$("$py" -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" 2>/dev/null); then
  note "  $py: $pyver"
else
  py=
  note "  no Python with torch, transformers and peft: the PyTorch side of e2e will be skipped"
fi
# bitsandbytes for the QLoRA row (bench-gpu-e2e.py --qlora): the machine's, else the package
# that scripts/gpu-deps.sh carries in .gpu-deps/python
if [ -n "$py" ] && [ -d .gpu-deps/python ] && ! "$py" -c "import bitsandbytes" 2>/dev/null; then
  export PYTHONPATH="$PWD/.gpu-deps/python${PYTHONPATH:+:$PYTHONPATH}"
fi

note "== build ($build, Release, CUDA on, architecture $arch)"
gpu_targets=(bench_kernels bench_train_step bench_generate loraft) # loraft: data parallel's test
for src in tests/gpu/test_*.c; do gpu_targets+=("$(basename "$src" .c)"); done
# cJSON and OpenBLAS: the system's, else the Debian packages carried in .gpu-deps/
# (scripts/gpu-deps.sh), unpacked into the build tree; LORAFT_GPU_USE_DEPS=1 takes those anyway.
deps_args=()
if [ "${LORAFT_GPU_USE_DEPS:-0}" = 1 ] || ! { [ -f /usr/include/cjson/cJSON.h ] &&
  [ -n "$(find /usr/include -name cblas.h -print -quit 2>/dev/null)" ]; }; then
  if compgen -G ".gpu-deps/*.deb" >/dev/null; then
    deps=$PWD/$build/deps lib=$PWD/$build/deps/usr/lib/x86_64-linux-gnu
    mkdir -p "$deps"
    for f in .gpu-deps/*.deb; do # dpkg -x, or by hand where there is no dpkg
      dpkg -x "$f" "$deps" 2>/dev/null || ar p "$f" data.tar.xz | tar -xJ -C "$deps"
    done
    export LD_LIBRARY_PATH=$lib/openblas-openmp:$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    deps_args=(-DCJSON_INCLUDE_DIR="$deps/usr/include" -DCJSON_LIBRARY="$lib/libcjson.so"
      -DCBLAS_INCLUDE_DIR="$deps/usr/include/x86_64-linux-gnu/openblas-openmp"
      -DOPENBLAS_LIBRARY="$lib/openblas-openmp/libopenblas.so")
    note "  cJSON, OpenBLAS: the packages of .gpu-deps/, unpacked into $deps"
  else
    note "  cJSON or OpenBLAS headers not in /usr/include and no .gpu-deps/ (scripts/gpu-deps.sh fetches them)"
  fi
fi
# model.attention cudnn: cudnn-frontend's headers (carried in .gpu-deps/, or the cache of
# scripts/setup-cudnn-frontend.sh) and cuDNN 9 (the toolkit's, else PyTorch's wheel's)
cudnn_args=()
for fe in .gpu-deps/cudnn-frontend/include "${XDG_CACHE_HOME:-$HOME/.cache}/loraft/cudnn-frontend/include"; do
  if [ -f "$fe/cudnn_frontend.h" ]; then cudnn_args+=(-DLORAFT_CUDNN_FRONTEND="$(cd "$fe" && pwd)"); break; fi
done
if [ ! -f "$(dirname "$nvcc")/../include/cudnn.h" ] && [ -n "$py" ] &&
  d=$("$py" -c "import nvidia.cudnn as c; print(list(c.__path__)[0])" 2>/dev/null) &&
  [ -f "$d/include/cudnn.h" ]; then
  cudnn_args+=(-DCUDNN_INCLUDE_DIR="$d/include" -DCUDNN_LIBRARY="$(ls "$d"/lib/libcudnn.so* | head -1)")
  export LD_LIBRARY_PATH=$d/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  note "  cuDNN: PyTorch's, $d"
fi
configure() {
  step "$1" 120 cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLORAFT_CUDA=ON \
    -DCMAKE_CUDA_COMPILER="$nvcc" -DCMAKE_CUDA_ARCHITECTURES="$arch" "${deps_args[@]}" \
    "${cudnn_args[@]}"
}
# The binaries of scripts/gpu-prebuild.sh (carried in .gpu-prebuilt/), unpacked into the build
# tree, where they were built from these very sources for this GPU's architecture and this
# CUDA version, and every library they link is found; else prints why not (and unpacks none).
take_prebuilt() {
  local stamp=.gpu-prebuilt/stamp cap cuda missing t
  [ -f "$stamp" ] && [ -f .gpu-prebuilt/binaries.tar.xz ] || { echo "none carried"; return 1; }
  grep -qx "sources $(scripts/gpu-prebuild.sh --hash)" "$stamp" || { echo "built from other sources"; return 1; }
  cap=$arch
  [ "$arch" = native ] && cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
  grep -qx "arch $cap" "$stamp" || { echo "built for $(sed -n 's/^arch //p' "$stamp"), this GPU is $cap"; return 1; }
  cuda=$("$nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
  grep -qx "cuda $cuda" "$stamp" || { echo "built with CUDA $(sed -n 's/^cuda //p' "$stamp"), this is $cuda"; return 1; }
  mkdir -p "$build" && xz -dc .gpu-prebuilt/binaries.tar.xz | tar xf - -C "$build" || { echo "unpacking failed"; return 1; }
  missing=$(for t in "${gpu_targets[@]}"; do ldd "$build/$t" 2>&1 | grep -E "not found|No such"; done | sort -u | tr -s ' \t\n' ' ')
  [ -z "$missing" ] && return 0
  (cd "$build" && rm -f "${gpu_targets[@]}")
  echo "libraries not found: $missing"
  return 1
}
prebuilt=0
if why=$(take_prebuilt); then
  prebuilt=1
  note "  prebuilt binaries taken, no build: $(sed -n 's/^built //p' .gpu-prebuilt/stamp), CUDA $(sed -n 's/^cuda //p' .gpu-prebuilt/stamp), cuDNN $(sed -n 's/^cudnn //p' .gpu-prebuilt/stamp) (scripts/gpu-prebuild.sh)"
else
  [ -d .gpu-prebuilt ] && note "  prebuilt binaries not taken: $why"
  if configure configure; then
    show configure "cuDNN attention" 1 # informative: the build goes on whatever it says
    step build 300 cmake --build "$build" -j"$(nproc)" --target "${gpu_targets[@]}"
  fi
fi
if [ ! -x "$build/bench_kernels" ]; then
  show configure "Error|error|Could NOT|not found" 10
  show build "error" 20
  note "  the build did not finish: nothing else can run"
  exit 1
fi

note "== GPU tests (CUDA ops and models vs the CPU reference)"
for src in tests/gpu/test_*.c; do
  t=$(basename "$src" .c)
  # parity's cudnn cases (last) plan a dozen cuDNN graphs, kernels compiled at run time: more room
  limit=150
  [ "$t" = test_gpu_parity ] && limit=240
  step "$t" "$limit" env LORAFT_SHARED_DATA="$PWD/../shared/data" "$build/$t"
  show "$t" "passed, .* failed|off, first|CHECK failed|status:" 12
done

note "== kernel benchmarks (model.precision bf16: frozen weights' GEMMs in bf16, the rest TF32)"
step bench_kernels_bf16 150 "$build/bench_kernels" --bf16 "${smoke[@]}"
show bench_kernels_bf16 "^(#|copy|mem|gemm|lora) " 140
if [ -n "$py" ]; then # the attention rows' target: PyTorch's SDPA at the same shapes
  step attention_torch 90 "$py" bench/bench-attention-torch.py --device "$e2e_device" "${smoke[@]}"
  show attention_torch "^(#|attn) " 9
fi
# the attention kernels' instructions per tile, from the SASS this toolkit compiles (static;
# beside the timings above, for the same commit)
step sass_paths 60 python3 bench/sass-paths.py --arch sm_90
show sass_paths "tile loop|lean|full" 36

note "== end to end: loraft (bf16 without and with CUDA Graphs, with cuDNN attention, fp32) vs PyTorch + PEFT (bf16 autocast, SDPA)"
e2e_py=${py:-python3}
no_pt=() e2e_precision=()
[ -z "$py" ] && no_pt=(--no-pytorch)
[ -n "${LORAFT_GPU_CHECK_E2E_PRECISION:-}" ] && e2e_precision=(--precision "$LORAFT_GPU_CHECK_E2E_PRECISION")
# one step per case, the MFU goal's first: a timeout loses one case, not the table (whose
# preamble and column header the summary shows once)
head_rows="^(# e2e|e2e   case)|"
for case in smollm2-2048 distilbert-512 smollm2-512 distilbert-128; do
  step "e2e_$case" 200 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py --cases "$case" \
    --device "$e2e_device" --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}" "${e2e_precision[@]}"
  show "e2e_$case" "$head_rows^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 18
  head_rows=
done

note "== generation: loraft (bf16) vs PyTorch + transformers (bf16, SDPA), greedy decode over the KV cache"
step generate 120 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-generate.py --device "$e2e_device" \
  --new 128 --timeout 50 --loraft-bench "$build/bench_generate" "${smoke[@]}" "${no_pt[@]}"
show generate "^(#|gen) " 8

if [ "$dry" != 1 ]; then # ncu needs the GPU's counters: the step skips (77) where it cannot
  note "== where a bf16 step's GPU time goes (Nsight Compute, 2 layers, graphs off)"
  step profile 150 python3 bench/profile-step.py --loraft-bench "$build/bench_train_step" \
    --timeout 55 --details 'flash_.*_tc_kernel|lora_down_kernel|lora_dinp_masked_kernel|lora_grads_kernel|cross_entropy_kernel|layernorm_.*_kernel|glu_.*_kernel|activation_.*_kernel'
  show profile "^(#|prof) " 200
  # the same with cuDNN's attention: what the rest of DistilBERT's step costs then
  step profile_cudnn 90 python3 bench/profile-step.py --loraft-bench "$build/bench_train_step" \
    --timeout 80 --cases distilbert-512 --attention cudnn
  show profile_cudnn "^(#|prof) " 30
fi

for precision in fp32 tf32; do
  note "== kernel benchmarks, $precision GEMMs: gemm and lora rows"
  step "bench_kernels_$precision" 150 "$build/bench_kernels" "--$precision" "${smoke[@]}"
  show "bench_kernels_$precision" "^(#|gemm|lora) " 60
done

note "== CTest$([ "$dry" = 1 ] && echo ' (dry run: the GPU tests only)')"
filter=()
[ "$dry" = 1 ] && filter=(-R '^test_gpu_')
# prebuilt binaries leave the tree unconfigured: configured here, the rest built
{ [ $prebuilt = 0 ] || configure configure_all; } &&
  step build_all 300 cmake --build "$build" -j"$(nproc)" &&
  step ctest 240 ctest --test-dir "$build" -j"$(nproc)" --timeout 200 --output-on-failure "${filter[@]}"
show ctest "tests passed|tests failed|\*\*\*Failed|Skipped" 20

# last, so that it takes only time left over: a 1B model at Llama 3.2's shape (head size 64,
# 128k vocabulary, llama3 RoPE), one loraft precision (the CPU's fp32 in a dry run)
note "== end to end at Llama-3.2-1B's shape, where time remains"
l3_precision=bf16/nographs
[ "$dry" = 1 ] && l3_precision=fp32
step e2e_llama3-2048 200 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases llama3-2048 --precision "$l3_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_llama3-2048 "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end at Qwen3-0.6B's shape (heads of 128 over hidden 1024, head norms), where time remains"
step e2e_qwen3-2048 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases qwen3-2048 --precision "$l3_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_qwen3-2048 "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end at Gemma 3 270M's shape (heads of 256, windows of 512, GeGLU), where time remains"
step e2e_gemma3-2048 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases gemma3-2048 --precision "$l3_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_gemma3-2048 "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end at 8 of Phi-4-mini's layers (RoPE over 96 of 128 dims, fused qkv and gate_up), where time remains"
step e2e_phi4mini-2048 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases phi4mini-2048 --precision "$l3_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_phi4mini-2048 "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end with the first half of every row a prompt (SFT's -100 labels, whose logits loraft's LM head skips), where time remains"
prompt_precision=bf16
[ "$dry" = 1 ] && prompt_precision=fp32
step e2e_smollm2-2048-prompt 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases smollm2-2048 --prompt 0.5 --precision "$prompt_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_smollm2-2048-prompt "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end DPO (pairs after a shared prompt of half the row; the reference policy's forward each step), where time remains"
step e2e_smollm2-2048-dpo 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases smollm2-2048 --dpo --prompt 0.5 --precision "$prompt_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_smollm2-2048-dpo "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end with the frozen projections quantised at load (base_dtype q8_0, q4_0, nf4) vs QLoRA (PyTorch + PEFT on bitsandbytes NF4), where time remains"
q_precision=bf16/q8_0,bf16/q4_0,bf16/nf4
[ "$dry" = 1 ] && q_precision=fp32/nf4
step e2e_smollm2-2048-q 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases smollm2-2048 --precision "$q_precision" --qlora --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_smollm2-2048-q "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
note "== end to end with DoRA on both sides (lora dropout 0), where time remains"
step e2e_smollm2-2048-dora 150 env PYTHONUNBUFFERED=1 "$e2e_py" bench/bench-gpu-e2e.py \
  --cases smollm2-2048 --dora --precision "$prompt_precision" --device "$e2e_device" \
  --loraft-bench "$build/bench_train_step" "${smoke[@]}" "${no_pt[@]}"
show e2e_smollm2-2048-dora "^(# [a-z0-9]+ T=|e2e   [a-z0-9]+ T=)" 8
[ $failed -eq 0 ]
