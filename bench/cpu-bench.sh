#!/usr/bin/env bash
# CPU benchmark: Myelin against PyTorch on this machine, measured in one invocation.
#
#   bench/cpu-bench.sh [ROUNDS=5]
#
# Each round runs, back to back (A B A B ...): `myelin time` on LeNet (training step and
# forward, batch 64, 2 threads), the PyTorch peer on the same network and batch
# (../shared/bench/torch_lenet_time.py: training step with SGD+momentum, then inference under
# no_grad), and bench/sgemm_ceiling (OpenBLAS and oneDNN sgemm on 2048^3, 2 threads). The
# machine is shared, so the table quotes medians over rounds, and ratios are medians of the
# per-round ratios (each from runs seconds apart); a last line repeats the training ratio over the
# rounds whose sgemm ceiling shows no interference. The table is printed last.
#
# Environment: BUILD (build directory, default build), PEER (peer script), BATCH (64),
# ITERS (50), THREADS (2), GEMM_N (2048). Needs /usr/bin/python3 with Debian's python3-torch
# and libopenblas0-pthread (scripts/install-bench-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${1:-5}
BUILD=${BUILD:-build}
PEER=${PEER:-../shared/bench/torch_lenet_time.py}
BATCH=${BATCH:-64}
ITERS=${ITERS:-50}
THREADS=${THREADS:-2}
GEMM_N=${GEMM_N:-2048}
PY=/usr/bin/python3

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "cpu-bench: $PY has no torch; run scripts/install-bench-deps.sh (as root)" >&2
  exit 1
fi
[ -f "$PEER" ] || { echo "cpu-bench: peer script $PEER not found (set PEER)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if ! cmake --build "$BUILD" --target myelin sgemm_ceiling >"$out/build.log" 2>&1; then
  tail -20 "$out/build.log" >&2
  echo "cpu-bench: building myelin and sgemm_ceiling in $BUILD failed" >&2
  exit 1
fi
echo "cpu-bench: $ROUNDS rounds, LeNet batch $BATCH, $ITERS iterations, $THREADS threads"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq "$ROUNDS"); do
  "$BUILD/myelin" time --model lenet --batch "$BATCH" --iterations "$ITERS" --device cpu \
    --threads "$THREADS" --json >"$out/myelin.$r.json"
  "$PY" "$PEER" "$BATCH" "$ITERS" "$THREADS" >"$out/peer.$r.json"
  "$BUILD/sgemm_ceiling" "$THREADS" "$GEMM_N" 5 >"$out/gemm.$r.json"
  "$PY" - "$out" "$r" <<'EOF'
import json, sys
d, r = sys.argv[1], sys.argv[2]
m = json.load(open(f"{d}/myelin.{r}.json")); p = json.load(open(f"{d}/peer.{r}.json"))
g = json.load(open(f"{d}/gemm.{r}.json"))
print(f"round {r}: myelin train {m['images_per_second']:.0f} img/s, infer "
      f"{m['inference_images_per_second']:.0f} img/s, {m['gflops']:.1f} GFLOP/s | peer train "
      f"{p['train_images_per_second']:.0f}, infer {p['inference_images_per_second']:.0f} | sgemm "
      f"OpenBLAS {g['openblas_gflops']:.1f}, oneDNN {g['onednn_gflops']:.1f} GFLOP/s")
EOF
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

"$PY" - "$out" "$ROUNDS" <<'EOF'
import json, statistics, sys
d, n = sys.argv[1], int(sys.argv[2])
rounds = [(json.load(open(f"{d}/myelin.{r}.json")), json.load(open(f"{d}/peer.{r}.json")),
           json.load(open(f"{d}/gemm.{r}.json"))) for r in range(1, n + 1)]
med = statistics.median
m_train = med(m["images_per_second"] for m, _, _ in rounds)
p_train = med(p["train_images_per_second"] for _, p, _ in rounds)
m_inf = med(m["inference_images_per_second"] for m, _, _ in rounds)
p_inf = med(p["inference_images_per_second"] for _, p, _ in rounds)
r_train = med(m["images_per_second"] / p["train_images_per_second"] for m, p, _ in rounds)
r_inf = med(m["inference_images_per_second"] / p["inference_images_per_second"]
            for m, p, _ in rounds)
gflops = med(m["gflops"] for m, _, _ in rounds)
ceiling = med(g["ceiling_gflops"] for _, _, g in rounds)
blas = med(g["openblas_gflops"] for _, _, g in rounds)
onednn = med(g["onednn_gflops"] for _, _, g in rounds)
r_ceiling = med(m["gflops"] / g["ceiling_gflops"] for m, _, g in rounds)
# Rounds that other processes slowed down show in the sgemm ceiling measured beside them: the
# "quiet" rounds are those whose ceiling is within 15% of the run's best.
best = max(g["ceiling_gflops"] for _, _, g in rounds)
quiet = [(m, p) for m, p, g in rounds if g["ceiling_gflops"] >= 0.85 * best]
peer = rounds[0][1]["peer"]
m0 = rounds[0][0]
print()
print(f"LeNet, batch {m0['batch']}, medians of {n} interleaved rounds; ratio = median of "
      f"per-round Myelin/{peer}")
print(f"{'measure':<44} {'Myelin':>10} {'PyTorch':>10} {'ratio':>7}")
print(f"{'training step, images/s':<44} {m_train:>10.0f} {p_train:>10.0f} {r_train:>6.2f}x")
print(f"{'inference (forward), images/s':<44} {m_inf:>10.0f} {p_inf:>10.0f} {r_inf:>6.2f}x")
print(f"{'training step GFLOP/s vs sgemm ceiling':<44} {gflops:>10.1f} {ceiling:>10.1f} "
      f"{100 * r_ceiling:>6.0f}%")
if quiet:
    print(f"{'training step ratio, quiet rounds only':<44} {len(quiet):>10d} {'rounds':>10} "
          f"{med(m['images_per_second'] / p['train_images_per_second'] for m, p in quiet):>6.2f}x")
print(f"  (ceiling: best of OpenBLAS {blas:.1f} and oneDNN {onednn:.1f} GFLOP/s sgemm, "
      f"{m0['gflop_per_step'] * 1000 / m0['batch']:.1f} MFLOP per image per step)")
EOF
