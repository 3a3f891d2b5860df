#!/usr/bin/env bash
# The small ResNet (models/resnet.yaml) on the CPU: Myelin's training step against PyTorch's,
# measured in one invocation.
#
#   bench/cpu-resnet-bench.sh [ROUNDS=5] [BUILD...]
#
# Each round runs, back to back: `myelin time --model resnet` (training step, batch 128, 10
# iterations, 2 threads) from each build directory given (default: build; give two to compare
# trees in the same run), then the PyTorch peer (../shared/bench/torch_small_resnet_time.py: the
# same network, SGD with Nesterov momentum). The machine is shared, so the summary quotes medians
# over the rounds, and ratios are medians of the per-round ratios (runs seconds apart).
#
# Environment: PEER (peer script), BATCH (128), ITERS (10), THREADS (2). Needs /usr/bin/python3
# with Debian's python3-torch and libopenblas0-pthread (scripts/install-bench-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
shift || true
BUILDS=("${@:-build}")
PEER=${PEER:-../shared/bench/torch_small_resnet_time.py}
BATCH=${BATCH:-128}
ITERS=${ITERS:-10}
THREADS=${THREADS:-2}
PY=/usr/bin/python3

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "cpu-resnet-bench: $PY has no torch; run scripts/install-bench-deps.sh (as root)" >&2
  exit 1
fi
[ -f "$PEER" ] || { echo "cpu-resnet-bench: peer script $PEER not found (set PEER)" >&2; exit 1; }
for b in "${BUILDS[@]}"; do
  [ -x "$b/myelin" ] || { echo "cpu-resnet-bench: no $b/myelin" >&2; exit 1; }
done
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "cpu-resnet-bench: $ROUNDS rounds, batch $BATCH, $ITERS iterations, $THREADS threads"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for i in "${!BUILDS[@]}"; do
    "${BUILDS[$i]}/myelin" time --model resnet --batch "$BATCH" --iterations "$ITERS" \
      --device cpu --threads "$THREADS" --json >"$out/myelin.$i.$r.json"
    line+=" ${BUILDS[$i]} $("$PY" -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["images_per_second"]))' "$out/myelin.$i.$r.json") |"
  done
  "$PY" "$PEER" "$THREADS" "$BATCH" "$ITERS" | grep -o '[0-9]* img/s' | cut -d' ' -f1 >"$out/peer.$r"
  echo "$line peer $(cat "$out/peer.$r") img/s"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$out" "$ROUNDS" "${BUILDS[@]}" <<'PYEOF'
import json, statistics, sys
d, n, builds = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
med = statistics.median
peer = [float(open(f"{d}/peer.{r}").read()) for r in range(1, n + 1)]
print(f"peer (PyTorch): median {med(peer):.0f} img/s")
for i, b in enumerate(builds):
    m = [json.load(open(f"{d}/myelin.{i}.{r}.json"))["images_per_second"] for r in range(1, n + 1)]
    ratio = med(x / p for x, p in zip(m, peer))
    print(f"{b}: median {med(m):.0f} img/s (range {min(m):.0f}-{max(m):.0f}), "
          f"median per-round ratio to the peer {ratio:.2f}x")
PYEOF
