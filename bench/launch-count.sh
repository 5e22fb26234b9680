#!/usr/bin/env bash
# launch-count.sh: the GPU work a LoRA training step launches, counted without a GPU.
#
#   bench/launch-count.sh [BUILD_EMU_DIR]   (default build-emu; scripts/cuda-emu-test.sh builds it)
#
# Runs bench_train_step of the emulated CUDA backend (model.precision bf16, CUDA graphs off) on
# random models shaped like the end-to-end cases of bench/bench-gpu-e2e.py, but small: SmolLM2's
# structure (Llama, grouped KV heads, tied head, LoRA r 8 on all seven projections, lora dropout
# 0.05; and on PEFT's default targets, q_proj and v_proj; and all seven with gradient
# checkpointing, whose replayed forwards count with the layers, but the top layer's, which is not
# replayed: "outside" is one replay less), DistilBERT's (LoRA on q_lin and v_lin, lora dropout
# 0.1, hidden and attention dropout 0.1) and GPT-2's (LoRA on c_attn, PEFT's default, lora dropout
# 0.05, GPT-2's dropouts 0.1). The emulator counts every kernel launch, cuBLAS / cuBLASLt call and
# async copy or set by name (LORAFT_EMU_COUNTS); runs of one and two steps with one and two layers
# give the launches of one step per layer and those outside the layers. The counts depend on the
# structure and on Llama's head size (bench/tiny's is SmolLM2's, 64: attention turns rope's
# gradients as it stores them at head sizes 64 and 128, in a pass of its own elsewhere), not on
# the other sizes, so they are the full-size models' too. Then generation's decode steps (`loraft
# generate`, bf16, greedy) on a random Llama with SmolLM2's grouping of heads (three query heads a
# KV head): runs of 4 and 8 new tokens with one and two layers give the launches of one generated
# token per layer and outside them (needs the GPT-2 tokenizer of ../shared/data; skipped without
# it). Informative: prints numbers, asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-emu}
[ -x "$build/bench_train_step" ] || {
  echo "launch-count: no $build/bench_train_step (run scripts/cuda-emu-test.sh first)" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# counts ARCH LAYERS STEPS: the emulator's counts of bench_train_step, in $work/ARCH-L-S
counts() {
  local arch=$1 layers=$2 steps=$3 dir=$work/$1-$2 base=llama targets dropout=0.05
  local key=num_hidden_layers ckpt=()
  mkdir -p "$dir"
  case $arch in
  llama) targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj ;;
  llama-checkpointing)
    targets=q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj ckpt=(--checkpointing) ;;
  llama-default-targets) targets=q_proj,v_proj ;;
  distilbert) base=distilbert key=n_layers targets=q_lin,v_lin dropout=0.1 ;;
  gpt2) base=gpt2 key=n_layer targets=c_attn ;;
  esac
  sed -E "s/\"$key\": [0-9]+/\"$key\": $layers/" "bench/tiny/$base/config.json" >"$dir/config.json"
  ASAN_OPTIONS=detect_leaks=0 LORAFT_EMU_COUNTS="$work/$arch-$layers-$steps" \
    "$build/bench_train_step" "$dir" --random --device cuda --precision bf16 --graphs off \
    --batch 2 --seq 32 --steps "$steps" --r 8 --targets "$targets" --dropout "$dropout" \
    "${ckpt[@]}" >"$work/$arch-$layers-$steps.log" 2>&1 || {
    echo "launch-count: bench_train_step failed:" >&2
    tail -5 "$work/$arch-$layers-$steps.log" >&2
    exit 1
  }
}

# by_name TITLE PER F1 F2 F3 F4: the counts of one unit of work (PER of them in the runs) by name,
# per layer and outside the layers, from runs of fewer units with one layer (F1), more with one
# layer (F2), and the same with two layers (F3, F4); then the total the GPU ran and, where a
# graph ran some, the calls the host made (a replay is one cudaGraphLaunch).
by_name() {
  awk -v title="$1" -v per="$2" '
    { n[FILENAME, $2] = $1; names[$2] = 1 }
    END {
      split(ARGV[1] " " ARGV[2] " " ARGV[3] " " ARGV[4], f, " ")
      print title ", by name (per layer, outside the layers)"
      for (k in names) {
        one = (n[f[2], k] - n[f[1], k]) / per; two = (n[f[4], k] - n[f[3], k]) / per
        layer = two - one; rest = one - layer
        if (k == "graph_nodes") { gl = layer; gr = rest; continue }
        if (k == "cudaGraphLaunch") { cl = layer; cr = rest; continue }
        if (layer == 0 && rest == 0) continue
        printf "  %6g %6g  %s\n", layer, rest, k | "sort -k1,1nr -k2,2nr"
        tl += layer; tr += rest
      }
      close("sort -k1,1nr -k2,2nr")
      printf "  %6g %6g  all (per layer, outside)\n", tl, tr
      if (cl + cr)
        printf "  %6g %6g  the host calls: %g cudaGraphLaunch, and what no graph ran\n", \
          tl - gl + cl, tr - gr + cr, cl + cr
      print ""
    }' "${@:3}"
}

for arch in llama llama-default-targets llama-checkpointing distilbert gpt2; do
  for layers in 1 2; do
    for steps in 1 2; do counts $arch $layers $steps; done
  done
  by_name "$arch: one training step" 1 "$work/$arch-1-1" "$work/$arch-1-2" "$work/$arch-2-1" \
    "$work/$arch-2-2"
done

# Decode: one generated token's launches, per layer and outside the layers: the nodes the GPU
# runs, and the calls the host makes (a recorded step's replay is one cudaGraphLaunch).
vocab=../shared/data/tokenizers/gpt2
if [ ! -d "$vocab" ]; then
  echo "llama decode: skipped ($vocab is absent)"
  exit 0
fi
for layers in 1 2; do
  "$build/loraft" init --arch llama --layers "$layers" --hidden 48 --heads 6 --kv-heads 2 \
    --vocab-from "$vocab" --out "$work/decode-$layers" >/dev/null
  for new in 4 8; do
    ASAN_OPTIONS=detect_leaks=0 LORAFT_EMU_COUNTS="$work/decode-$layers-$new" \
      "$build/loraft" generate --model "$work/decode-$layers" --device cuda --precision bf16 \
      --max-new-tokens "$new" "It is a truth universally acknowledged" \
      >"$work/decode-$layers-$new.log" 2>&1
    grep -q " $new new in " "$work/decode-$layers-$new.log" || {
      echo "launch-count: generate stopped before $new tokens:" >&2
      tail -3 "$work/decode-$layers-$new.log" >&2
      exit 1
    }
  done
done
by_name "llama decode (three query heads a KV head): one generated token" 4 \
  "$work/decode-1-4" "$work/decode-1-8" "$work/decode-2-4" "$work/decode-2-8"
