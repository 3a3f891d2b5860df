#!/usr/bin/env bash
# Fashion-MNIST on the CPU, the whole `myelin train` process per shipped recipe (data load,
# training, test passes, checkpoints), then the PyTorch LeNet peer in the same run.
# Usage: bench/fmnist-cpu.sh [threads, default 2] [models, default "lenet resnet"]
# Prints one row per run: test accuracy, best accuracy, wall seconds, training images/s.
set -euo pipefail
cd "$(dirname "$0")/.."
threads="${1:-2}"
models="${2:-lenet resnet}"
[ -x build/myelin ] || bash scripts/build.sh
out=$(mktemp -d /tmp/myelin-fmnist-XXXXXX)
rows=()
for m in $models; do
  start=$(date +%s.%N)
  build/myelin train --model "$m" --data fashion-mnist --device cpu --threads "$threads" \
    --out "$out/$m" --quiet > "$out/$m.log" 2>&1 || { cat "$out/$m.log"; exit 1; }
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  rows+=("$(python3 - "$out/$m/metrics.jsonl" "$m" "$wall" <<'EOF'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
end = events[-1]
speeds = [e["images_per_second"] for e in events if e.get("event") == "train" and "images_per_second" in e]
ips = sorted(speeds)[len(speeds) // 2] if speeds else float("nan")
print(f"| myelin {sys.argv[2]} | {100*end['test_accuracy']:.2f}% | {100*end['best_accuracy']:.2f}% "
      f"| {float(sys.argv[3]):.0f} s | {ips:,.0f} |")
EOF
)")
done
peer=""
if /usr/bin/python3 -c 'import torch' 2> /dev/null; then
  start=$(date +%s.%N)
  /usr/bin/python3 ../shared/bench/torch_fmnist_cpu.py 4 "$threads" > "$out/torch.log" 2>&1 || true
  wall=$(echo "$(date +%s.%N) - $start" | bc)
  peer=$(awk -v w="$wall" '/epoch/ {acc=$9; ips=$5} END {gsub(/\(/,"",ips); printf "| PyTorch LeNet, 4 epochs (SGD 0.01) | %s | - | %.0f s | %s |", acc, w, ips}' "$out/torch.log")
fi
echo
echo "Fashion-MNIST, CPU, $threads threads, $(date -u +%F), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "| run | test accuracy | best | wall (whole process) | train images/s |"
echo "|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
[ -n "$peer" ] && echo "$peer"
echo "(runs kept in $out)"
