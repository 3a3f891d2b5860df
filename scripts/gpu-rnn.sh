#!/usr/bin/env bash
# Recurrent networks on a GPU machine, in one call: builds (scripts/gpu-check.sh's build stage),
# runs the GPU op cases of the sequence ops (rnn, embedding, copy: cuDNN and our kernels against
# the float64 references and finite differences), then measures char-lstm's training throughput
# (embedding, 2x512 LSTM, per-step scores over 96 symbols, 128 steps, batch 64) in fp32, tf32 and bf16
# beside PyTorch's cuDNN nn.LSTM on the same model (torch_lstm_bench.py), alternating the two
# REPEATS times; and char-lstm trained on Debian's fortunes for FORTUNE_ITERS steps beside the
# PyTorch peer (bench/char-lstm-fortunes.sh): held-out bits per character, time, and a sample of
# each. Prints a table last (tokens/s, medians). Carry
# .carry/debs (oneDNN, see gpu-check.sh), .carry/peers/torch_lstm_bench.py and .carry/fortunes
# (`myelin dataset create --source /usr/share/games/fortunes --text char --out .carry/fortunes`).
#
#   scripts/gpu-rnn.sh
#   STAGES="build bench" REPEATS=5 scripts/gpu-rnn.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-rnn-out}"
mkdir -p "$OUT"
STAGES="${STAGES:-build tests bench fortunes}"
FORTUNE_ITERS="${FORTUNE_ITERS:-2000}"
FORTUNES="${FORTUNES:-.carry/fortunes}"
BUILD="${BUILD_DIR:-build-gpu}"
REPEATS="${REPEATS:-3}"
BATCH="${BATCH:-64}"
ITERS="${ITERS:-20}"
PEERS="${PEERS:-.carry/peers}"
has() { [[ " $STAGES " == *" $1 "* ]]; }
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

if has build; then
  STAGES=build OUT="$OUT" BUILD_DIR="$BUILD" bash scripts/gpu-check.sh > "$OUT/build-stage.log" 2>&1
  grep -E "build:|error" "$OUT/build-stage.log" | head -20 | tee -a "$summary"
fi
deps=/tmp/myelin-deps
[ -d "$deps" ] && export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if has tests; then
  filter='*rnn*:*embedding*:*copy*:CudaCoverage*'
  timeout 600 "$BUILD/ops_cuda_test" --gtest_filter="$filter" > "$OUT/ops_cuda_rnn.log" 2>&1
  note "ops_cuda_test ($filter): rc=$? $(grep -E '^\[  (PASSED|FAILED)' "$OUT/ops_cuda_rnn.log" | tr '\n' ' ')"
  grep -E '^\[  FAILED  \]|relative error' "$OUT/ops_cuda_rnn.log" | head -20 | tee -a "$summary"
fi

if has bench; then
  : > "$OUT/bench.jsonl"
  for r in $(seq "$REPEATS"); do
    for p in fp32 tf32 bf16; do
      "$BUILD/myelin" time --model models/char-lstm.yaml --batch "$BATCH" --iterations "$ITERS" \
        --device cuda --precision "$p" --json > "$OUT/myelin-$p-$r.json" 2> "$OUT/myelin-$p-$r.err" &&
        python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({'who':'myelin','precision':sys.argv[2],'tokens_per_second':d['images_per_second']*128}))" \
          "$OUT/myelin-$p-$r.json" "$p" >> "$OUT/bench.jsonl"
    done
    # The peer uses the cuDNN PyTorch bundles, not the one on LD_LIBRARY_PATH for Myelin.
    env -u LD_LIBRARY_PATH python3 "$PEERS/torch_lstm_bench.py" cuda fp32,bf16 "$BATCH" 128 \
      > "$OUT/torch-$r.log" 2>&1
    sed -nE 's/.* (fp32|bf16) b[0-9]+ seq[0-9]+: ([0-9]+) tokens\/s/{"who":"torch","precision":"\1","tokens_per_second":\2}/p' \
      "$OUT/torch-$r.log" >> "$OUT/bench.jsonl"
  done
  [ -f "$OUT/myelin-fp32-1.json" ] && python3 - "$OUT/myelin-fp32-1.json" > "$OUT/layers.txt" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for l in d["layers"]:
    print(f"  {l['name']:8} forward {l['forward_ms']:8.3f} ms  backward {l['backward_ms']:8.3f} ms")
PY
fi

if has fortunes; then
  OUT="$OUT" BUILD="$BUILD" bash bench/char-lstm-fortunes.sh "$FORTUNES" "$FORTUNE_ITERS" cuda \
    > "$OUT/fortunes.txt" 2>&1
fi

python3 - "$OUT" <<'PY' | tee -a "$summary"
import json, os, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "bench.jsonl"))] if os.path.exists(os.path.join(out, "bench.jsonl")) else []
print("char-lstm training (embedding, 2x512 LSTM, 96 symbols, 128 steps, batch 64), tokens/s, medians")
# PyTorch's fp32 lets cuDNN use TF32 (torch.backends.cudnn.allow_tf32 is on by default): the same
# math as Myelin's --precision tf32. Myelin's fp32 is strict (FMA).
print(f"{'Myelin':9} {'PyTorch':7} {'Myelin':>10} {'PyTorch':>10} {'ratio':>6}")
for p, peer in (("fp32", "fp32"), ("tf32", "fp32"), ("bf16", "bf16")):
    m = [r["tokens_per_second"] for r in rows if r["who"] == "myelin" and r["precision"] == p]
    t = [r["tokens_per_second"] for r in rows if r["who"] == "torch" and r["precision"] == peer]
    if m or t:
        mm, tt = (statistics.median(m) if m else 0), (statistics.median(t) if t else 0)
        print(f"{p:9} {peer:7} {mm:10.0f} {tt:10.0f} {mm / tt if tt else 0:6.2f}")
fortunes = os.path.join(out, "fortunes.txt")
if os.path.exists(fortunes):
    print(open(fortunes).read().rstrip())
layers = os.path.join(out, "layers.txt")
if os.path.exists(layers):
    print("Myelin fp32 per layer (myelin time):")
    print(open(layers).read().rstrip())
PY
