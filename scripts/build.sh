#!/usr/bin/env bash
# Configures and builds myelin into build/ (with the CUDA engine when nvcc is installed, so the
# GPU code compiles everywhere, even on machines with no GPU). Usage: scripts/build.sh [cpu|cuda]
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-auto}"
nvcc=/usr/local/cuda/bin/nvcc
cuda=OFF
if [ "$mode" = cuda ] || { [ "$mode" = auto ] && [ -x "$nvcc" ]; }; then cuda=ON; fi
args=(-S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMYELIN_CUDA=$cuda)
[ $cuda = ON ] && args+=(-DCMAKE_CUDA_COMPILER=$nvcc -DCMAKE_CUDA_ARCHITECTURES=90)
cmake "${args[@]}" > build.log 2>&1 || { cat build.log; exit 1; }
cmake --build build -j"$(nproc)"
