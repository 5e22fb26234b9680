#!/usr/bin/env bash
# LoRA training steps, loraft vs PyTorch + PEFT, on a DistilBERT-base-shaped checkpoint with
# seeded random weights (speed does not depend on the values, and nothing is downloaded).
# DEVICE=cuda|cpu (default: cuda when nvidia-smi answers). Needs torch, transformers, peft: the
# venv of scripts/setup-python.sh when it is ready, else python3's own.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${LORAFT_BUILD_DIR:-build}
device=${DEVICE:-$(nvidia-smi >/dev/null 2>&1 && echo cuda || echo cpu)}
vocab=../shared/data/tokenizers/bert-base-uncased
[ -d "$vocab" ] || { echo "bench-vs-pytorch: $vocab not found" >&2; exit 1; }
py=$(scripts/setup-python.sh --check 2>/dev/null || command -v python3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$build/loraft" init --arch distilbert --vocab-from "$vocab" --seed 0 --out "$tmp/distilbert-base" >/dev/null
shapes=${SHAPES:-"8x128 8x512 32x128"}
[ "$device" = cpu ] && shapes=${SHAPES:-"8x128"}
for shape in $shapes; do
  "$py" bench/bench-vs-pytorch.py "$tmp/distilbert-base" --device "$device" --batch "${shape%x*}" \
    --seq "${shape#*x}" --steps "${STEPS:-10}" --threads "$(nproc)" --targets q_lin,v_lin \
    --loraft-bench "$build/bench_train_step"
done
