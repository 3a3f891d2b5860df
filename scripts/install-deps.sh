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
  chromium                    # the browser tests of the web UI (driven by playwright-core)
  fonts-dejavu-core           # text in the UI's screenshots
  dataset-fashion-mnist       # /usr/share/datasets/fashion-mnist
  fortunes                    # /usr/share/games/fortunes: the text corpus of the recurrent models
  openmpi-bin libopenmpi-dev  # data-parallel training over MPI (CPU) and rank bootstrap (NCCL)
  slurmctld slurmd slurm-client munge  # myelin serve --scheduler slurm; tests start a one-node cluster
  libonnx-dev libprotobuf-dev  # myelin export/import: the ONNX protobuf schema
  python3-onnx                # onnx.checker on exported models (tests)
  python3-torch               # tests: PyTorch exports the ONNX models Myelin imports, and loads Myelin's weights
  pybind11-dev python3-dev python3-numpy  # the myelin Python module
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all packages present"
fi

# The web UI (web/) builds with Node.js 20 or newer; its npm packages come from package-lock.json.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "install-deps: installing nodejs npm"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "install-deps: Node.js $(node -v) is too old for the web UI (Vite needs 20.19 or newer)" >&2
  exit 1
fi
web="$(dirname "$0")/../web"
if [ ! "$web/node_modules/.package-lock.json" -nt "$web/package-lock.json" ]; then
  echo "install-deps: npm ci (web/)"
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error)
fi
# onnxruntime (CPU) for the ONNX export tests (tests/onnx/). --ignore-scripts: its postinstall
# fetches CUDA libraries from NuGet; the CPU binaries come in the package itself.
onnx_check="$(dirname "$0")/../tests/onnx"
if [ ! "$onnx_check/node_modules/.package-lock.json" -nt "$onnx_check/package-lock.json" ]; then
  echo "install-deps: npm ci (tests/onnx/)"
  (cd "$onnx_check" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
