#!/usr/bin/env bash
# The Python reference tools (torch, transformers, peft, safetensors, gguf from PyPI) in one cached
# virtual environment outside the repository, created once and reused:
# ${LORAFT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/loraft/venv}. Not a dependency of loraft:
# tests/test_peft_compat.sh and the reference scripts (make-goldens.py, train-reference.py,
# make-tokenizer-goldens.py, bench-vs-pytorch) run with its python.
#
#   scripts/setup-python.sh           create or update the venv (test.sh runs this before ctest);
#                                     when PyPI cannot be reached it says so and exits 0, and
#                                     the tests that need the venv skip with that reason
#   scripts/setup-python.sh --python  the same, then print the venv's python (for scripts:
#                                     py=$(scripts/setup-python.sh --python))
#   scripts/setup-python.sh --check   print the venv's python when it is ready, else say why
#                                     not on stderr and exit 1 (no install: for tests)
#   ... --trl                         the same for a second venv, VENV-trl, with TRL
#                                     (for bench/bench-decoder-vs-pytorch.py): layered on the first
#                                     (its site-packages on the path through a .pth file, so
#                                     torch is not installed twice), trl pinned, the first
#                                     venv's packages held at their versions
#
# PyPI's torch wheel for Linux brings the CUDA libraries (about 5 GB installed): PyPI has no
# CPU-only build, and the torch wheel does not import without them.
set -euo pipefail
venv=${LORAFT_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/loraft/venv}
requirements="torch==2.15.0 transformers==5.24.0 peft==0.21.2 safetensors==0.8.0 gguf==0.19.0"
requirements+=" bitsandbytes==0.50.2" # NF4's reference (tests/test_quant_bnb.sh); runs on the CPU
# What the venv was made with: a change of the list or of python3 rebuilds it.
stamp="$requirements; $(python3 -c 'import sys; print(sys.version.split()[0])' 2>/dev/null || echo none)"
status=$venv.status # why the venv is missing, for --check

mode= trl=0
for arg; do
  case $arg in
    --check | --python) mode=$arg ;;
    --trl) trl=1 ;;
    *) echo "usage: scripts/setup-python.sh [--check | --python] [--trl]" >&2; exit 2 ;;
  esac
done
trl_venv=$venv-trl
trl_stamp="trl==1.16.0 gguf==0.19.0 on $stamp"

ready() { [ -f "$venv/.loraft-stamp" ] && [ "$(cat "$venv/.loraft-stamp")" = "$stamp" ]; }
trl_ready() { [ -f "$trl_venv/.loraft-stamp" ] && [ "$(cat "$trl_venv/.loraft-stamp")" = "$trl_stamp" ]; }

if [ "$mode" = --check ]; then
  if [ $trl = 1 ] && ready && trl_ready; then echo "$trl_venv/bin/python"; exit 0; fi
  if [ $trl = 0 ] && ready; then echo "$venv/bin/python"; exit 0; fi
  if [ -f "$status" ]; then cat "$status" >&2
  elif [ $trl = 1 ] && ready; then echo "no TRL venv at $trl_venv: run scripts/setup-python.sh --trl" >&2
  else echo "no Python reference venv at $venv: run scripts/setup-python.sh" >&2; fi
  exit 1
fi

say() { echo "setup-python: $*" >&2; }
if ! ready; then
  mkdir -p "$(dirname "$venv")"
  probe=$(mktemp -d)
  reached=0 # one small download tells an unreachable registry from a failed install
  python3 -m pip download --no-deps --no-cache-dir --retries 1 --timeout 20 -q -d "$probe" \
    six==1.16.0 >/dev/null 2>&1 && reached=1
  rm -rf "$probe"
  if [ $reached = 0 ]; then
    echo "PyPI cannot be reached: the Python reference venv ($venv) was not created" >"$status"
    say "SKIP: $(cat "$status"); tests that need torch/transformers/peft will skip"
    exit 0
  fi
  say "creating $venv ($requirements): a few minutes, once"
  start=$(date +%s)
  rm -rf "$venv" "$status"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --no-cache-dir -q --upgrade pip >&2
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install --no-cache-dir -q $requirements >&2
  "$venv/bin/python" -c 'import torch, transformers, peft, safetensors, gguf, bitsandbytes' >&2
  echo "$stamp" >"$venv/.loraft-stamp"
  say "ready in $(($(date +%s) - start)) s, $(du -sh "$venv" | cut -f1)"
fi
if [ $trl = 1 ] && ready && ! trl_ready; then
  say "creating $trl_venv ($trl_stamp)"
  rm -rf "$trl_venv"
  python3 -m venv "$trl_venv"
  "$venv/bin/python" -c 'import site; print(site.getsitepackages()[0])' \
    >"$("$trl_venv/bin/python" -c 'import site; print(site.getsitepackages()[0])')/loraft-base.pth"
  pins=$(mktemp)
  echo "$requirements" | tr ' ' '\n' >"$pins"
  "$trl_venv/bin/python" -m pip install --no-cache-dir -q -c "$pins" trl==1.16.0 gguf==0.19.0 >&2
  rm -f "$pins"
  "$trl_venv/bin/python" -c 'import trl, gguf, torch, peft' >&2
  echo "$trl_stamp" >"$trl_venv/.loraft-stamp"
fi
if [ "$mode" = --python ]; then
  if [ $trl = 1 ]; then echo "$trl_venv/bin/python"; else echo "$venv/bin/python"; fi
fi
