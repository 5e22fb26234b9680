#!/usr/bin/env bash
# setup-cudnn-frontend.sh: cudnn-frontend's headers (NVIDIA's header-only C++ API over cuDNN's
# graph backend), which model.attention cudnn is built with, from PyPI's nvidia-cudnn-frontend
# wheel into ${LORAFT_CUDNN_FRONTEND_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/loraft/cudnn-frontend}
# /include, where CMake looks (LORAFT_CUDNN_FRONTEND). Once; nothing is installed. Offline it
# says so and exits 0: the build then leaves cuDNN attention out and says so.
set -euo pipefail
version=1.32.0
home=${LORAFT_CUDNN_FRONTEND_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/loraft/cudnn-frontend}
if [ -f "$home/include/cudnn_frontend.h" ] && [ "$(cat "$home/version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pip=(python3 -m pip) # or, where the system's python3 has none, a throwaway venv's
if ! python3 -m pip --version >/dev/null 2>&1; then
  if ! python3 -m venv "$tmp/venv" >/dev/null 2>&1; then
    echo "setup: no pip to fetch cudnn-frontend with: the build leaves model.attention cudnn out" >&2
    exit 0
  fi
  pip=("$tmp/venv/bin/python" -m pip)
fi
if ! "${pip[@]}" download -q --no-deps --only-binary=:all: "nvidia-cudnn-frontend==$version" \
  -d "$tmp" >"$tmp/log" 2>&1; then
  echo "setup: cudnn-frontend $version not fetched (PyPI unreachable?): the build leaves" \
    "model.attention cudnn out" >&2
  tail -n 3 "$tmp/log" >&2
  exit 0
fi
rm -rf "$home" && mkdir -p "$home"
python3 - "$tmp"/nvidia_cudnn_frontend-*.whl "$home" <<'PY'
import sys, zipfile
wheel, home = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    z.extractall(home, [n for n in z.namelist() if n.startswith("include/")])
PY
echo "$version" >"$home/version"
echo "setup: cudnn-frontend $version headers in $home/include"
