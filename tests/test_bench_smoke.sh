#!/usr/bin/env bash
# test_bench_smoke.sh: the GPU benchmarks' harness on the CPU (their CUDA side runs under the
# emulation, scripts/cuda-emu-test.sh). bench_train_step --random builds the tiny DistilBERT
# and Llama of bench/tiny from their config.json alone and trains one LoRA step, reporting
# PEFT's trainable count; bench_kernels --smoke skips without a GPU (and runs its tiny shapes
# with one); with the reference venv, bench/bench-gpu-e2e.py --device cpu --smoke runs loraft
# and PyTorch + PEFT on the same tiny SmolLM2-shaped config and finds the same number of
# trainable parameters, also as DPO (--dpo), and loraft's nf4 base against QLoRA (--qlora:
# PyTorch + PEFT on bitsandbytes' NF4), and with DoRA on both sides (--dora: the magnitudes
# counted alike). bench/sass-paths.py, where nvcc and a cuobjdump are,
# counts the bf16 attention forward's tile.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LORAFT_BUILD_DIR:-build}
passed=0 failed=0
check() { # check WHAT TEXT REGEX
  if [[ $2 =~ $3 ]]; then passed=$((passed + 1)); else
    echo "FAIL: $1: expected /$3/ in:"
    echo "$2"
    failed=$((failed + 1))
  fi
}

step() {
  "$build/bench_train_step" "bench/tiny/$1" --random --batch 2 --seq 16 --steps 1 "${@:2}" 2>&1
}
# LoRA r 8 on q_lin and v_lin (64 -> 64) of 2 layers: 2 * 2 * 8 * 128 = 4096, and the
# classification head trained as PEFT's modules_to_save: 64 * 64 + 64 + 64 * 2 + 2 = 4290
check "distilbert step" "$(step distilbert --targets q_lin,v_lin)" \
  "^loraft cpu fp32 lora attention loraft: batch 2 x 16, 1 steps: [0-9.]+ ms/step, [0-9]+ tokens/s, .* trainable 8386, weights [0-9]+ MiB, activations [0-9]+ MiB$"
# Llama's default targets q_proj (192 -> 192), v_proj (192 -> 64), 2 layers: 2 * 8 * (384 + 256)
check "llama step" "$(step llama)" "tokens/s, .* trainable 10240, weights [0-9]+ MiB, activations [0-9]+ MiB$"
check "an unknown precision" "$(step llama --precision fp64 || true)" "fp64"
# --dpo: pairs of rows after a shared prompt, the reference forward before each step
check "llama dpo step" "$(step llama --dpo --prompt 4)" \
  "^loraft cpu fp32 lora dpo attention loraft: batch 2 x 16, 1 steps: [0-9.]+ ms/step, .* trainable 10240,"
check "dpo on an odd batch" "$(step llama --dpo --batch 3 || true)" "pairs of rows, not 3 rows"
# --base-dtype: the projections quantised as the model is made, fewer bytes of weights
check "llama q4_0 step" "$(step llama --base-dtype q4_0)" "^loraft cpu fp32 lora base q4_0 attention loraft: .* trainable 10240,"
check "an unknown base dtype" "$(step llama --base-dtype q9 || true)" "unknown base dtype 'q9'"
check "bench_kernels --smoke" "$("$build/bench_kernels" --smoke 2>&1)" "skipping|lora +smollm2"
check "bench_generate" \
  "$("$build/bench_generate" bench/tiny/llama --random --prompt 4 --new 4 --runs 1 2>&1)" \
  "^loraft cpu fp32: prompt 4, 4 new, 1 runs, 0 graph launches: prefill [0-9.]+ ms, decode [0-9]+ tokens/s"

py=$(scripts/setup-python.sh --check 2>/dev/null || true)
if [ -n "$py" ]; then
  e2e=$("$py" bench/bench-gpu-e2e.py --device cpu --smoke --cases smollm2-512 \
    --loraft-bench "$build/bench_train_step" 2>&1 || true)
  check "e2e loraft row" "$e2e" "smollm2 T=32 B=2 +loraft +fp32 +[0-9]+ "
  check "e2e pytorch row" "$e2e" "smollm2 T=32 B=2 +pytorch\+peft +bf16-autocast +[0-9]+ "
  check "e2e plan line" "$e2e" "smollm2 T=32 B=2 loraft fp32: of its device memory, weights [0-9]+ MiB, activation plan [0-9]+ MiB"
  if [[ $e2e =~ FAILED|differ ]]; then
    echo "FAIL: e2e: $e2e"
    failed=$((failed + 1))
  fi
  qlora=$("$py" bench/bench-gpu-e2e.py --device cpu --smoke --cases smollm2-512 --qlora \
    --precision fp32/nf4 --loraft-bench "$build/bench_train_step" 2>&1 || true)
  check "e2e qlora rows" "$qlora" "loraft +fp32/nf4 +[0-9]+ .*pytorch\+qlora +nf4-bf16-autocast +[0-9]+ "
  if [[ $qlora =~ FAILED|differ ]]; then
    echo "FAIL: e2e --qlora: $qlora"
    failed=$((failed + 1))
  fi
  dora=$("$py" bench/bench-gpu-e2e.py --device cpu --smoke --cases smollm2-512 --dora \
    --loraft-bench "$build/bench_train_step" 2>&1 || true)
  check "e2e dora rows" "$dora" "DoRA on both sides.*loraft +fp32 +[0-9]+ .*pytorch\+dora +bf16-autocast +[0-9]+ "
  if [[ $dora =~ FAILED|differ ]]; then
    echo "FAIL: e2e --dora: $dora"
    failed=$((failed + 1))
  fi
  dpo=$("$py" bench/bench-gpu-e2e.py --device cpu --smoke --cases smollm2-512 --dpo --prompt 0.5 \
    --loraft-bench "$build/bench_train_step" 2>&1 || true)
  check "e2e dpo rows" "$dpo" "DPO on pairs of rows.*loraft +fp32 +[0-9]+ .*pytorch\+peft +bf16-autocast +[0-9]+ "
  if [[ $dpo =~ FAILED|differ ]]; then
    echo "FAIL: e2e --dpo: $dpo"
    failed=$((failed + 1))
  fi
else
  echo "the reference venv is not ready: bench-gpu-e2e.py not checked"
fi

# bench/sass-paths.py on the bf16 forward at HS 64 (TcShape<64, 64>) without dropout: a warp's
# tile is two m16 tiles against 64 keys, S = Q K^T and O = P V over HP 64, 2 * 2 * (8 * 4) = 128
# HMMA
if command -v nvcc >/dev/null; then
  rc=0
  sass=$(python3 bench/sass-paths.py --kernel 'forward_tc_kernel<TcShape<64, 64>, false>' 2>&1) || rc=$?
  if [ $rc = 77 ]; then
    echo "$sass"
  else
    check "sass-paths" "$sass" "lean +[0-9]+ instructions, [0-9.]+ per HMMA: HMMA 128 LDSM 40 "
    # --marker FFMA on LoRA's down-projection at rank 8, float4 loads (or 8-byte loads of the
    # input's bf16 copy): its column loop (inside the loop over rows) multiplies 4 rows x 4
    # columns by 8 rows of A, 128 FFMA
    for xb in false true; do
      sass=$(python3 bench/sass-paths.py kernels/cuda/lora_matmul.cu --marker FFMA \
        --kernel "lora_down_kernel<8, 4, false, false, $xb>" 2>&1 || true)
      check "sass-paths --marker FFMA ($xb)" "$sass" \
        "lean +[0-9]+ instructions, [0-9.]+ per FFMA: FP32 128 "
    done
  fi
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
