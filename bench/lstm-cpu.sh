#!/usr/bin/env bash
# LSTM training on the CPU: Myelin's char-lstm (embedding, 2x512 LSTM, per-step scores over 96
# symbols) beside PyTorch's nn.LSTM on the same model (../shared/bench/torch_lstm_bench.py), at
# batch 32, 128 steps, 2 threads, alternating the two ROUNDS times; tokens/s, medians, and
# Myelin's per-layer times last.
#
#   bench/lstm-cpu.sh [ROUNDS=3]
#
# Environment: BUILD (build directory, default build), PEER, BATCH (32), ITERS (3), THREADS (2).
# Needs /usr/bin/python3 with Debian's python3-torch (scripts/install-bench-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
BUILD=${BUILD:-build}
PEER=${PEER:-../shared/bench/torch_lstm_bench.py}
BATCH=${BATCH:-32}
ITERS=${ITERS:-3}
THREADS=${THREADS:-2}
PY=/usr/bin/python3
"$PY" -c 'import torch' 2>/dev/null || {
  echo "lstm-cpu: $PY has no torch; run scripts/install-bench-deps.sh (as root)" >&2
  exit 1
}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cmake --build "$BUILD" --target myelin > "$out/build.log" 2>&1 || { tail -20 "$out/build.log"; exit 1; }
for r in $(seq "$ROUNDS"); do
  "$BUILD/myelin" time --model models/char-lstm.yaml --batch "$BATCH" --iterations "$ITERS" \
    --warmup 1 --device cpu --threads "$THREADS" --json > "$out/myelin-$r.json"
  OMP_NUM_THREADS=$THREADS "$PY" "$PEER" cpu fp32 "$BATCH" 128 "$THREADS" > "$out/torch-$r.log"
  echo "round $r: $(python3 -c "import json; print(round(json.load(open('$out/myelin-$r.json'))['images_per_second'] * 128))") vs $(grep -o '[0-9]* tokens/s' "$out/torch-$r.log")" >&2
done
python3 - "$out" "$ROUNDS" <<'PY'
import json, re, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
m = [json.load(open(f"{out}/myelin-{r}.json"))["images_per_second"] * 128 for r in range(1, rounds + 1)]
t = [float(re.search(r"([0-9]+) tokens/s", open(f"{out}/torch-{r}.log").read()).group(1)) for r in range(1, rounds + 1)]
print(f"char-lstm training on the CPU, tokens/s (median of {rounds}): Myelin {statistics.median(m):.0f}, "
      f"PyTorch {statistics.median(t):.0f}, ratio {statistics.median(m) / statistics.median(t):.2f}")
d = json.load(open(f"{out}/myelin-1.json"))
for l in d["layers"]:
    print(f"  {l['name']:8} forward {l['forward_ms']:9.1f} ms  backward {l['backward_ms']:9.1f} ms")
PY
