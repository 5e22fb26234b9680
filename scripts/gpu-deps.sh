#!/usr/bin/env bash
# gpu-deps.sh: fetches the Debian packages of loraft's build dependencies (cJSON; OpenBLAS
# built for OpenMP and its Fortran runtime) and cudnn-frontend's headers (model.attention
# cudnn) into .gpu-deps/ (about 16 MB; .gitignore names it), for a GPU machine that has the
# CUDA toolkit but not these and cannot reach a package registry (the device tool's). Carry
# .gpu-deps there: when CMake does not find the system's own, scripts/gpu-check.sh unpacks the
# packages into its build tree (dpkg -x, nothing installed) and configures against them.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps && mkdir .gpu-deps
(cd .gpu-deps && apt-get download libcjson1 libcjson-dev libopenblas0-openmp \
  libopenblas-openmp-dev libgfortran5 libquadmath0)
# cudnn-frontend's headers, for model.attention cudnn (scripts/gpu-check.sh passes them to CMake)
LORAFT_CUDNN_FRONTEND_HOME=$PWD/.gpu-deps/cudnn-frontend scripts/setup-cudnn-frontend.sh
ls .gpu-deps
