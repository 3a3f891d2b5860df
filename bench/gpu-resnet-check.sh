#!/usr/bin/env bash
# The batch-norm networks' GPU checks in one device call, on programs built on the CPU machine and
# carried (scripts/gpu-carry.sh build myelin ops_cuda_test cuda_engine_test; the call carries
# .carry, with Fashion-MNIST in .carry/fashion-mnist):
#   tests   batch-norm, residual and convolution op tests (with the batch-norm fusions, the
#           default; its ConvGraphCuda test the graph API), the engine's fusion and graph tests
#   r50     ResNet-50 bf16 per variant of $VARIANTS beside PyTorch torch.compile (gpu-resnet50.sh)
#   fmnist  resnet9-fast over seeds 1-3 for each of $FMNIST_EPOCHS epochs (14 and 13), each run
#           from an empty cuDNN algorithm cache, under $FMNIST_ENV (or the runs of $FMNIST_RUNS,
#           as scripts/gpu-check.sh takes them; $FMNIST_TIMEOUT seconds for all, 180 default)
#   long    each of $LONG_MODELS (models/resnet9-long.yaml) over seeds 1-3 at $LONG_EPOCHS epochs
#           (70, the recipe's: 35 s a run on an H100); not in the defaults
#   profile PyTorch's kernel time by kind and peak memory (torch_resnet50_profile.py), Myelin's
#           step kernel by kernel under ncu (scripts/ncu-step.py); not in the defaults
#   l2probe bench/l2_chunk_probe.cu (carried as bin/l2_chunk_probe): whether convolutions run in
#           batch chunks leave their output in L2 for batch norm's statistics; not in the defaults
#   largest the largest ResNet-50 batch in 80 GB, Myelin beside PyTorch (gpu-largest-batch.sh,
#           which reads PRECISION, LO, HI, STEP and PEER_BATCHES; $LARGEST_TIMEOUT seconds, 400
#           default); not in the defaults
# About 7 minutes on an H100 with the defaults; results and logs in $OUT, a table last. Unless
# PACK=0, the logs and per-run files end up in $OUT/results.tgz beside summary.txt: a device call
# brings back only a few files.
#
#   STEPS="tests r50 fmnist" BATCHES="128 256" bench/gpu-resnet-check.sh
# OPS_FILTER and ENGINE_FILTER narrow the tests (gtest filters).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu-resnet-check-out}"
STEPS="${STEPS:-tests r50 fmnist}"
BATCHES="${BATCHES:-256}"
VARIANTS="${VARIANTS:-default;heuristic|MYELIN_CUDA_ALGO_SEARCH=heuristic}"
FMNIST_ENV="${FMNIST_ENV-}"
mkdir -p "$OUT" /tmp/gpu
tar -xJf .carry/gpu.tar.xz -C /tmp/gpu && ln -sfn "$PWD/models" /tmp/gpu/models || exit 1
export LD_LIBRARY_PATH=/tmp/gpu/lib
t0=$(date +%s)
step() { echo "[$(($(date +%s) - t0)) s] $*" | tee -a "$OUT/summary.txt"; }
has() { [[ " $STEPS " == *" $1 "* ]]; }
: > "$OUT/summary.txt"

if has tests; then
  timeout 150 /tmp/gpu/bin/ops_cuda_test \
    --gtest_filter="${OPS_FILTER:-*batch_norm*:*add*:*relu*:*conv*:ConvGraph*}" > "$OUT/ops.log" 2>&1
  step "ops_cuda_test: rc $?, $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/ops.log" | tr '\n' ' ')"
  timeout "${ENGINE_TIMEOUT:-240}" stdbuf -oL /tmp/gpu/bin/cuda_engine_test \
    --gtest_filter="${ENGINE_FILTER:-*}" > "$OUT/engine.log" 2>&1
  step "cuda_engine_test: rc $?, $(grep -E '^\[  (PASSED|FAILED) ' "$OUT/engine.log" | tr '\n' ' ')"
  grep -E "graph API direction|genstats:" "$OUT/engine.log" | tee -a "$OUT/summary.txt"
fi
if has r50; then
  MYELIN_BIN=/tmp/gpu/bin/myelin BATCHES="$BATCHES" PRECISIONS="${PRECISIONS:-bf16}" \
    PEER_MODES="${PEER_MODES-bf16clcompile}" VARIANTS="$VARIANTS" OUT="$OUT/r50" \
    timeout "${R50_TIMEOUT:-420}" bash bench/gpu-resnet50.sh > "$OUT/r50.log" 2>&1
  step "resnet50: rc $?"
fi
# "name|model|flags;..." for seeds 1-3 of $1 (a model) at each of $2 (epochs), the warm-up over a
# quarter of the run as the recipes have it.
seed_runs() {
  local runs="" e s
  for e in $2; do
    for s in 1 2 3; do
      runs+="$(basename "$1" .yaml)-e${e}s$s|$1|--seed $s --epochs $e --warmup $((e * 117 / 4)) --eval-every 100000;"
    done
  done
  echo "${runs%;}"
}
# Fashion-MNIST runs ($2) into $OUT/$1 within $3 seconds, each from an empty algorithm cache.
fmnist_runs() {
  # shellcheck disable=SC2086  # FMNIST_ENV is words of ENV=VALUE
  env $FMNIST_ENV STAGES=fmnist BUILD_DIR=/tmp/gpu/bin FMNIST_FRESH_CACHE=1 TORCH_FMNIST= \
    FMNIST_RUNS="$2" OUT="$OUT/$1" timeout "$3" bash scripts/gpu-check.sh > "$OUT/$1.log" 2>&1
  step "$1: rc $?"
}
if has fmnist; then
  fmnist_runs fmnist "${FMNIST_RUNS:-$(seed_runs models/resnet9-fast.yaml "${FMNIST_EPOCHS:-14 13}")}" \
    "${FMNIST_TIMEOUT:-180}"
fi
if has long; then
  runs=""
  for m in ${LONG_MODELS:-models/resnet9-long.yaml}; do
    runs+="$(seed_runs "$m" "${LONG_EPOCHS:-70}");"
  done
  fmnist_runs long "${runs%;}" "${LONG_TIMEOUT:-300}"
fi
if has l2probe; then  # not in the defaults: about a minute
  timeout 240 /tmp/gpu/bin/l2_chunk_probe > "$OUT/l2probe.txt" 2>&1
  step "l2_chunk_probe: rc $?"
  cat "$OUT/l2probe.txt" >> "$OUT/summary.txt"
fi
if has largest; then
  MYELIN_BIN=/tmp/gpu/bin/myelin OUT="$OUT/largest" timeout "${LARGEST_TIMEOUT:-400}" \
    bash bench/gpu-largest-batch.sh > "$OUT/largest.log" 2>&1
  step "largest batch: rc $?"
  cat "$OUT/largest/summary.txt" >> "$OUT/summary.txt" 2> /dev/null
fi
if has profile; then  # not in the defaults: about 3 minutes more
  env -u LD_LIBRARY_PATH timeout 200 python3 bench/torch_resnet50_profile.py "${BATCHES%% *}" 5 \
    > "$OUT/torch-profile.log" 2>&1
  step "torch profile: rc $?"
  ncu="$(command -v ncu || echo /usr/local/cuda/bin/ncu)"
  if [ -x "$ncu" ]; then
    first="${VARIANTS%%;*}"
    # shellcheck disable=SC2086  # the first variant's settings are words of ENV=VALUE
    env ${first#*|} timeout 300 "$ncu" --clock-control none --metrics gpu__time_duration.sum \
      --csv --graph-profiling node /tmp/gpu/bin/myelin time --model models/resnet50.yaml \
      --device cuda --precision bf16 --batch "${BATCHES%% *}" --iterations 3 > "$OUT/ncu.csv" 2>&1
    step "ncu: rc $?"
    python3 scripts/ncu-step.py "$OUT/ncu.csv" > "$OUT/ncu.txt" 2>&1
  fi
fi
echo "==== summary"
cat "$OUT/summary.txt"
sed -n '/==== summary/,$p' "$OUT/r50.log" 2>/dev/null
grep -h "memory" "$OUT"/r50/torch-*.log 2>/dev/null
for f in "$OUT"/r50/myelin*.json; do
  [ -f "$f" ] && echo "$(basename "$f" .json): $(grep -o '"device_memory_mib": *[0-9.]*' "$f")"
done
cat "$OUT/fmnist/summary.txt" "$OUT/long/summary.txt" 2>/dev/null
head -12 "$OUT/torch-profile.log" "$OUT/ncu.txt" 2>/dev/null
if [ "${PACK:-1}" = 1 ]; then
  (cd "$OUT" && find . -mindepth 1 -maxdepth 1 ! -name summary.txt ! -name results.tgz -print0 |
    xargs -0 tar -czf results.tgz && find . -mindepth 1 -maxdepth 1 ! -name summary.txt \
    ! -name results.tgz -exec rm -rf {} +)
fi
