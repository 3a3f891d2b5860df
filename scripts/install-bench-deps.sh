#!/usr/bin/env bash
# Installs the CPU peers for bench/: Debian's PyTorch (for /usr/bin/python3) with OpenBLAS.
set -euo pipefail
need=()
for p in python3-torch libopenblas0-pthread python3-numpy hyperfine; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
