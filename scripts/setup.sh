#!/usr/bin/env bash
# Installs loraft's build dependencies from Debian packages when they are missing.
# The CUDA toolkit is optional: without nvcc the build is CPU-only.
set -euo pipefail
need=()
for pkg in build-essential cmake libcjson-dev libopenblas-openmp-dev clang libclang-rt-14-dev python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}"
fi
# With the CUDA toolkit: cudnn-frontend's headers for model.attention cudnn (optional).
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  "$(dirname "$0")/setup-cudnn-frontend.sh"
fi
