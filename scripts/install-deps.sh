#!/usr/bin/env bash
# Installs every Debian package Myelin's build, tests and benchmarks need.
# Idempotent: packages already present are skipped. Run as root (CI is root).
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git clang clang-format
  libclang-rt-14-dev          # libFuzzer runtime for the fuzz targets
  libdnnl-dev                 # oneDNN 2.6: CPU convolution, pooling, LRN, BN, eltwise
  libopenblas-dev libopenblas0-pthread
  libyaml-cpp-dev             # network files
  nlohmann-json3-dev          # metrics, --json output, checkpoint headers
  libgtest-dev libgmock-dev
  zlib1g-dev libpng-dev libjpeg62-turbo-dev
  libarchive-dev              # dataset uploads (.zip, .tar.gz), model bundles
  libcpp-httplib-dev          # myelin serve: HTTP and Server-Sent Events
  libsqlite3-dev              # myelin serve: all server state (WAL mode)
  libsodium-dev               # myelin serve: tokens, password hashing (Argon2id)
  python3-pytest              # the server's API tests
  dataset-fashion-mnist       # /usr/share/datasets/fashion-mnist
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi
