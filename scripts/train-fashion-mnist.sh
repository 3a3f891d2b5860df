#!/usr/bin/env bash
# The main job on a fresh Debian machine: install, build, train LeNet on Fashion-MNIST on the CPU.
# Extra arguments go to `myelin train` (e.g. --model resnet --epochs 5).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh  # the same configuration as scripts/test.sh, so neither rebuilds the other
threads="$(nproc)"
exec build/myelin train --model lenet --data fashion-mnist --device cpu --threads "$threads" \
  --out runs/lenet "$@"
