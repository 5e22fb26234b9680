#!/usr/bin/env bash
# gpu-deps.sh: fetches the Debian packages of loraft's build dependencies (cJSON; OpenBLAS
# built for OpenMP and its Fortran runtime), cudnn-frontend's headers (model.attention cudnn)
# and bitsandbytes (the e2e bench's QLoRA side) into .gpu-deps/ (about 24 MB; .gitignore names
# it), for a GPU machine that has the CUDA toolkit but not these and cannot reach a package
# registry (the device tool's). Carry .gpu-deps there: when CMake does not find the system's
# own, scripts/gpu-check.sh unpacks the packages into its build tree (dpkg -x, nothing
# installed) and configures against them.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-deps && mkdir .gpu-deps
(cd .gpu-deps && apt-get download libcjson1 libcjson-dev libopenblas0-openmp \
  libopenblas-openmp-dev libgfortran5 libquadmath0)
# cudnn-frontend's headers, for model.attention cudnn (scripts/gpu-check.sh passes them to CMake)
LORAFT_CUDNN_FRONTEND_HOME=$PWD/.gpu-deps/cudnn-frontend scripts/setup-cudnn-frontend.sh
# bitsandbytes, for the QLoRA row (bench-gpu-e2e.py --qlora; gpu-check.sh puts .gpu-deps/python
# on PYTHONPATH where the machine has none): the wheel unpacked with its CUDA 13 libraries alone
# (the device machine's PyTorch is built for CUDA 13; the other libraries are 100 MB more)
bnb=bitsandbytes==0.50.2
pip download --quiet --no-deps --only-binary :all: --platform manylinux_2_24_x86_64 \
  --dest .gpu-deps/wheel "$bnb" || { echo "gpu-deps: cannot fetch $bnb from PyPI (offline?)"; exit 1; }
python3 - <<'EOF'
import glob, re, zipfile
with zipfile.ZipFile(glob.glob(".gpu-deps/wheel/bitsandbytes-*.whl")[0]) as z:
    for name in z.namelist():
        lib = re.search(r"libbitsandbytes_(\w+)\.so$", name)
        if not lib or lib[1].startswith("cuda13"):
            z.extract(name, ".gpu-deps/python")
EOF
rm -rf .gpu-deps/wheel
ls .gpu-deps
