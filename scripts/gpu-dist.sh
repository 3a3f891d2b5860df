#!/usr/bin/env bash
# Data-parallel training on a GPU machine, in one call: builds (scripts/gpu-check.sh's build
# stage), runs the GPU data-parallel tests (tests/cuda_dist_test.cpp), then measures AlexNet bf16
# at batch 256 per GPU:
#   - one GPU: the captured step without and with the bucketed NCCL all-reduce, alternated
#     (REPEATS pairs), for the all-reduce's cost;
#   - every GPU count in COUNTS the machine has (default 1, 2 and all of them): Myelin's images/s
#     over all GPUs beside PyTorch DistributedDataParallel (torch_alexnet_ddp.py under torchrun)
#     in the same run, and the scaling from one GPU.
# Prints a table last. Carry .carry/debs (oneDNN, see gpu-check.sh), .carry/fashion-mnist (Debian's
# /usr/share/datasets/fashion-mnist) and .carry/peers/torch_alexnet_{ddp,bench}.py.
#
#   scripts/gpu-dist.sh                 # everything
#   STAGES="build bench" REPEATS=5 scripts/gpu-dist.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-dist-out}"
mkdir -p "$OUT"
STAGES="${STAGES:-build tests bench scaling}"
BUILD="${BUILD_DIR:-build-gpu}"
REPEATS="${REPEATS:-3}"
BATCH="${BATCH:-256}"
ITERS="${ITERS:-40}"
PEERS="${PEERS:-.carry/peers}"
has() { [[ " $STAGES " == *" $1 "* ]]; }
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader | wc -l)
note "GPUs: $gpus x $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
COUNTS="${COUNTS:-$(printf '%s\n' 1 2 "$gpus" | awk -v n="$gpus" '$1 <= n' | sort -nu | xargs)}"

# Fashion-MNIST where `--data fashion-mnist` looks for it (tests train on it).
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -d .carry/fashion-mnist ]; then
  mkdir -p /usr/share/datasets && ln -sfn "$PWD/.carry/fashion-mnist" /usr/share/datasets/fashion-mnist
fi

if has build; then
  STAGES=build OUT="$OUT" BUILD_DIR="$BUILD" bash scripts/gpu-check.sh > "$OUT/build-stage.log" 2>&1
  grep -E "build:|error" "$OUT/build-stage.log" | head -20 | tee -a "$summary"
  ninja -C "$BUILD" cuda_dist_test > "$OUT/build-dist.log" 2>&1 || tail -20 "$OUT/build-dist.log"
fi
deps=/tmp/myelin-deps
[ -d "$deps" ] && export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bench="$BUILD/alexnet_gpu_bench"

if has tests; then
  timeout 600 "$BUILD/cuda_dist_test" > "$OUT/cuda_dist_test.log" 2>&1
  rc=$?
  grep -E "^\[  FAILED|Failure|Fashion-MNIST" "$OUT/cuda_dist_test.log" | head -20
  note "cuda_dist_test: rc=$rc  passed $(grep -c '^\[       OK \]' "$OUT/cuda_dist_test.log")," \
    "skipped $(grep -c '^\[  SKIPPED \] .*(' "$OUT/cuda_dist_test.log")"
fi

# images/s of one bench run (the bf16 row; the "in all" line when several ranks ran).
ips() {
  local log=$1
  if grep -q "in all" "$log"; then
    grep "in all" "$log" | tail -1 | sed -E 's/.*: ([0-9]+) images.*/\1/'
  else
    awk '$1 == "bf16" { print $3 }' "$log" | tail -1
  fi
}

if has bench; then
  for i in $(seq 1 "$REPEATS"); do
    for mode in plain allreduce; do
      flag=""; [ "$mode" = allreduce ] && flag="--allreduce"
      "$bench" --precisions bf16 --batches "$BATCH" --iters "$ITERS" $flag \
        > "$OUT/one-gpu-$mode-$i.log" 2>&1
      echo "$mode $i $(ips "$OUT/one-gpu-$mode-$i.log")" >> "$OUT/one-gpu.txt"
    done
  done
  grep -h "all-reduce" "$OUT"/one-gpu-allreduce-1.log | tee -a "$summary"
  python3 - "$OUT/one-gpu.txt" <<'PY' | tee -a "$summary"
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1]) if len(l.split()) == 3 and l.split()[2] != ""]
by = {}
for mode, _, v in rows: by.setdefault(mode, []).append(float(v))
p, a = by.get("plain", []), by.get("allreduce", [])
print("one GPU, AlexNet bf16, batch 256, images/s per run:")
print("  without all-reduce:", " ".join(f"{x:.0f}" for x in p))
print("  with the all-reduce:", " ".join(f"{x:.0f}" for x in a))
if p and a:
    cost = 100 * (st.median(p) / st.median(a) - 1)
    print(f"  median {st.median(p):.0f} vs {st.median(a):.0f}: the all-reduce costs {cost:+.2f}% (goal <= 2%)")
PY
fi

if has scaling; then
  for n in $COUNTS; do
    "$bench" --gpus "$n" --precisions bf16 --batches "$BATCH" --iters "$ITERS" \
      > "$OUT/myelin-$n.log" 2>&1
    if [ -f "$PEERS/torch_alexnet_ddp.py" ]; then
      env -u LD_LIBRARY_PATH timeout 300 torchrun --standalone --nproc_per_node="$n" "$PEERS/torch_alexnet_ddp.py" \
        "$BATCH" bf16 "$ITERS" > "$OUT/ddp-$n.log" 2>&1
    fi
    m=$(ips "$OUT/myelin-$n.log")
    t=$(grep -o "[0-9]* img/s total" "$OUT/ddp-$n.log" 2>/dev/null | awk '{print $1}')
    echo "$n ${m:-?} ${t:-?}" >> "$OUT/scaling.txt"
  done
  python3 - "$OUT/scaling.txt" <<'PY' | tee -a "$summary"
import sys
rows = [l.split() for l in open(sys.argv[1])]
num = lambda s: float(s) if s not in ("?", "") else None
base_m = num(rows[0][1]); base_t = num(rows[0][2])
print(f"{'GPUs':>4} {'myelin img/s':>13} {'scaling':>8} {'DDP img/s':>10} {'scaling':>8} {'myelin/DDP':>10}")
for n, m, t in rows:
    n, m, t = int(n), num(m), num(t)
    sm = f"{m / base_m:.3f}x" if m and base_m else "?"
    st = f"{t / base_t:.3f}x" if t and base_t else "?"
    ratio = f"{m / t:.3f}" if m and t else "?"
    print(f"{n:>4} {m or 0:>13.0f} {sm:>8} {t or 0:>10.0f} {st:>8} {ratio:>10}")
PY
fi
echo
echo "== summary =="
cat "$summary"
