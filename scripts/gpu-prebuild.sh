#!/usr/bin/env bash
# gpu-prebuild.sh: builds the binaries scripts/gpu-check.sh runs (the GPU tests and the three
# benchmarks) here, for a GPU this machine does not have, and packs them into .gpu-prebuilt/
# (about 6 MB; .gitignore names it). The device tool's H200 spends 105-141 s of a 15-minute
# lease compiling the same sources; carried there with .gpu-deps, gpu-check takes these instead
# when their stamp matches: the same sources (a hash of every file the build compiles), the
# GPU's architecture and the toolkit's CUDA version, and every library they need found. Else it
# builds as before, and says why.
#
# Usage: scripts/gpu-prebuild.sh [ARCH]   (default 90: the H200's sm_90)
#        scripts/gpu-prebuild.sh --hash   (prints the sources' hash: what gpu-check compares)
set -euo pipefail
cd "$(dirname "$0")/.."

# Every file the CUDA build compiles or configures from, in a fixed order, hashed by content
# (not by git: the device's copy of the tree may carry an older .git).
sources_hash() {
  find CMakeLists.txt src kernels include tests bench -type f \( -name '*.c' -o -name '*.h' \
    -o -name '*.cu' -o -name '*.cuh' -o -name '*.cpp' -o -name CMakeLists.txt \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
if [ "${1:-}" = --hash ]; then
  sources_hash
  exit 0
fi

arch=${1:-90}
build=build-gpu-prebuild out=.gpu-prebuilt
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
[ -x "$nvcc" ] || { echo "gpu-prebuild: nvcc not found: install the CUDA toolkit" >&2; exit 1; }
# the same targets gpu-check builds
targets=(bench_kernels bench_train_step bench_generate loraft)
for src in tests/gpu/test_*.c; do targets+=("$(basename "$src" .c)"); done
fe=()
LORAFT_CUDNN_FRONTEND_HOME=$PWD/.gpu-deps/cudnn-frontend scripts/setup-cudnn-frontend.sh
[ -f .gpu-deps/cudnn-frontend/include/cudnn_frontend.h ] &&
  fe=(-DLORAFT_CUDNN_FRONTEND="$PWD/.gpu-deps/cudnn-frontend/include")
hash=$(sources_hash)
# Without NCCL: the device tool lends one GPU (data parallel's test skips there), and a machine
# without NCCL's library (hundreds of MB, too large to carry) could not take the binaries.
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DLORAFT_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" \
  -DCMAKE_CUDA_ARCHITECTURES="$arch-real" -DLORAFT_NCCL=OFF "${fe[@]}" |
  grep -E "cuDNN attention|CUDA|NCCL" || true
cmake --build "$build" -j"$(nproc)" --target "${targets[@]}"
[ "$(sources_hash)" = "$hash" ] || { echo "gpu-prebuild: sources changed during the build" >&2; exit 1; }

rm -rf "$out" && mkdir "$out"
tar cf - -C "$build" "${targets[@]}" | xz -T"$(nproc)" -9 --lzma2=dict=128MiB >"$out/binaries.tar.xz"
cudnn=$(grep -hE '^#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$(dirname "$nvcc")/../include/cudnn_version.h" 2>/dev/null |
  awk '{printf "%s%s", (NR > 1 ? "." : ""), $3}')
{
  echo "sources $hash"
  echo "arch $arch"
  echo "cuda $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')"
  echo "cudnn ${cudnn:-none}"
  echo "built $(date -u +%FT%TZ) on ${HOSTNAME:-?}"
  echo "targets ${targets[*]}"
} >"$out/stamp"
cat "$out/stamp"
echo "gpu-prebuild: $(du -h "$out/binaries.tar.xz" | cut -f1) in $out/binaries.tar.xz: carry .gpu-prebuilt (and .gpu-deps) to the GPU machine"
