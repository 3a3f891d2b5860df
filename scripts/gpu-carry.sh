#!/usr/bin/env bash
# Packs programs of a local CUDA build, and the shared libraries they load that a stock CUDA
# machine lacks (oneDNN, yaml-cpp, libarchive, protobuf/onnx, SQLite, ...), into one archive, so
# a GPU machine runs them without building: compiling here costs no GPU time.
#
#   scripts/gpu-carry.sh [BUILD_DIR] [PROGRAM...]    # default: build, myelin and the GPU tests
#   -> .carry/gpu.tar.xz holding bin/ and lib/
#
# On the GPU machine:
#   mkdir -p /tmp/gpu && tar -xJf .carry/gpu.tar.xz -C /tmp/gpu
#   ln -sfn "$PWD/models" /tmp/gpu/models   # standard networks by name, beside bin/
#   export LD_LIBRARY_PATH=/tmp/gpu/lib; /tmp/gpu/bin/myelin device-query
# (run PyTorch peers with `env -u LD_LIBRARY_PATH`: they bring their own libraries).
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
shift || true
programs=("$@")
if [ ${#programs[@]} -eq 0 ]; then
  programs=(myelin ops_cuda_test cuda_engine_test cuda_session_test cuda_dist_test serve_load)
fi

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/bin" "$stage/lib" .carry
for p in "${programs[@]}"; do
  if [ -x "$build/$p" ]; then cp "$build/$p" "$stage/bin/"; else echo "gpu-carry: no $build/$p" >&2; fi
done
# Symbols stay behind: they would double the archive, which travels within the call's 64 MiB.
strip --strip-unneeded "$stage"/bin/*

# Libraries a CUDA machine has (the C library, the driver, the CUDA toolkit's) stay behind.
system='^(linux-vdso|ld-linux|libc|libm|libdl|libpthread|librt|libresolv|libcuda|libcudart|libcublas|libcublasLt|libcudnn[a-z_]*|libnccl|libnvrtc|libnvJitLink)\.so'
for f in "$stage"/bin/*; do
  ldd "$f" | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  name=$(basename "$lib")
  [[ "$name" =~ $system ]] || cp -L "$lib" "$stage/lib/$name"
done

tar -C "$stage" -cf - bin lib | xz -T0 -9 > .carry/gpu.tar.xz
echo "gpu-carry: .carry/gpu.tar.xz $(du -h .carry/gpu.tar.xz | cut -f1):" \
  "$(ls "$stage/bin" | tr '\n' ' ')+ $(ls "$stage/lib" | wc -l) libraries"
