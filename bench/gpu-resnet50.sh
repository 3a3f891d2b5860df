#!/usr/bin/env bash
# ResNet-50 training throughput on one GPU, Myelin beside PyTorch in the same call:
# models/resnet50.yaml timed by `myelin time` (whole step as one CUDA graph; random inputs) in
# bf16 and tf32, and the PyTorch peer bench/torch_resnet50_bench.py (the same network, synthetic
# data, SGD with momentum) under torch.compile: bf16 autocast with channels_last, and tf32 in both
# layouts (the faster one counts). Myelin and the peer alternate REPEATS times; the table gives medians of
# images/s and Myelin's ratio to the peer, per precision and batch. Results and logs go to $OUT.
#
# Myelin comes from a build (scripts/gpu-check.sh's build stage, which needs .carry/debs) or,
# with MYELIN_BIN, from a prebuilt binary (its libraries in MYELIN_LIB, e.g. .carry/gpu/lib).
#
#   bench/gpu-resnet50.sh
#   MYELIN_BIN=.carry/gpu/bin/myelin MYELIN_LIB=.carry/gpu/lib bench/gpu-resnet50.sh
#   BATCHES=256 PRECISIONS=bf16 PEER_MODES=bf16clcompile REPEATS=1 bench/gpu-resnet50.sh
#   VARIANTS="new;nchw32|MYELIN_CUDA_LAYOUT=nchw MYELIN_CUDA_BF16_STORAGE=0" bench/gpu-resnet50.sh
#
# VARIANTS ("label|ENV=VALUE ...;...") times Myelin once per variant with those environment
# settings (the first is the one compared with the peer; the default runs Myelin as it is).
# MYELIN_ARGS are `myelin time`'s extra flags: --conv-search tune by default, Myelin's
# counterpart of the peer's torch.backends.cudnn.benchmark = True (MYELIN_CUDA_ALGO_SEARCH=heuristic
# as a variant's setting gives the default's cuDNN heuristic instead).
#
# torch.compile compiles once per mode, batch and repeat (tens of seconds to a minute each): the
# defaults (2 batches, 3 peer modes, 1 repeat) are meant to fit one 10-minute call; for more
# repeats, split the call by BATCHES.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu-resnet50-out}"
mkdir -p "$OUT"
BUILD="${BUILD_DIR:-build-gpu}"
BATCHES="${BATCHES:-128 256}"
PRECISIONS="${PRECISIONS:-bf16 tf32}"
PEER_MODES="${PEER_MODES-bf16clcompile,tf32compile,tf32clcompile}"  # empty: Myelin only
REPEATS="${REPEATS:-1}"
ITERS="${ITERS:-30}"
VARIANTS="${VARIANTS:-default}"
MYELIN_ARGS="${MYELIN_ARGS---conv-search tune}"
MODEL=models/resnet50.yaml
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

if [ -n "${MYELIN_BIN:-}" ]; then
  myelin="$MYELIN_BIN"
  [ -n "${MYELIN_LIB:-}" ] && export LD_LIBRARY_PATH="$MYELIN_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  STAGES=build OUT="$OUT" BUILD_DIR="$BUILD" bash scripts/gpu-check.sh > "$OUT/build-stage.log" 2>&1
  grep -E "build:|error" "$OUT/build-stage.log" | head -20 | tee -a "$summary"
  myelin="$BUILD/myelin"
  deps=/tmp/myelin-deps
  [ -d "$deps" ] && export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
[ -x "$myelin" ] || { note "no myelin binary at $myelin"; exit 1; }

# Rows of bench.jsonl: {"who", "precision", "batch", "images_per_second"}.
: > "$OUT/bench.jsonl"
for r in $(seq "$REPEATS"); do
  for b in $BATCHES; do
    for p in $PRECISIONS; do
      IFS=';' read -ra variants <<< "$VARIANTS"
      for v in "${variants[@]}"; do
        label="${v%%|*}"
        settings=""
        [[ "$v" == *"|"* ]] && settings="${v#*|}"
        who=myelin
        [ "$label" = "${VARIANTS%%[;|]*}" ] || who="myelin-$label"
        log="$OUT/$who-$p-b$b-$r"
        # shellcheck disable=SC2086  # settings are words of ENV=VALUE
        env $settings timeout 300 "$myelin" time --model "$MODEL" --device cuda --precision "$p" \
          --batch "$b" --iterations "$ITERS" $MYELIN_ARGS --json > "$log.json" 2> "$log.err" &&
          python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({'who':sys.argv[3],'precision':sys.argv[2],'batch':d['batch'],'images_per_second':d['images_per_second']}))" \
            "$log.json" "$p" "$who" >> "$OUT/bench.jsonl" || note "$who $p batch $b failed: $(tail -2 "$log.err")"
      done
    done
    # The peer runs on its own PyTorch bundles, not the libraries on LD_LIBRARY_PATH for Myelin.
    [ -n "$PEER_MODES" ] || continue
    env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 timeout 400 python3 bench/torch_resnet50_bench.py \
      "$PEER_MODES" "$b" > "$OUT/torch-b$b-$r.log" 2>&1 || note "torch batch $b: rc=$? (see torch-b$b-$r.log)"
    sed -nE 's/^resnet50 bs=([0-9]+) mode=([a-z0-9]+): ([0-9]+) img\/s/{"who":"torch","mode":"\2","batch":\1,"images_per_second":\3}/p' \
      "$OUT/torch-b$b-$r.log" >> "$OUT/bench.jsonl"
  done
done

# Where Myelin's step goes (the first bf16 run at the first batch, per variant): time per kind of
# layer (by torchvision's names: *bn*, conv*/*_down, *_sum, relu*, pools, fc), then the slowest.
: > "$OUT/layers.txt"
for first in "$OUT"/myelin*-bf16-b"${BATCHES%% *}"-1.json; do
  [ -e "$first" ] || continue
  python3 - "$first" >> "$OUT/layers.txt" <<'PY'
import json, os, re, sys
d = json.load(open(sys.argv[1]))
who = os.path.basename(sys.argv[1]).split("-bf16")[0]
print(f"{who} bf16 batch {d['batch']}: forward {d['forward_ms']:.2f} ms, backward {d['backward_ms']:.2f} ms, "
      f"update {d['update_ms']:.2f} ms, step {d['step_ms']:.2f} ms")
def kind(n):
    if re.search(r"bn\d*$", n): return "batch norm"
    if "conv" in n or n.endswith("_down"): return "convolution"
    if n.endswith("_sum"): return "add"
    if "relu" in n: return "relu"
    if "pool" in n: return "pool"
    return "other"
kinds = {}
for l in d["layers"]:
    k = kinds.setdefault(kind(l["name"]), [0.0, 0.0])
    k[0] += l["forward_ms"]; k[1] += l["backward_ms"]
for k, (f, b) in sorted(kinds.items(), key=lambda kv: -sum(kv[1])):
    print(f"  {k:12} forward {f:7.2f} ms  backward {b:7.2f} ms")
others = sorted((l for l in d["layers"] if kind(l["name"]) == "other"),
                key=lambda l: -(l["forward_ms"] + l["backward_ms"]))
print("  other: " + ", ".join(f"{l['name']} {l['forward_ms'] + l['backward_ms']:.2f}" for l in others[:6]))
print("  slowest layers (forward + backward):")
for l in sorted(d["layers"], key=lambda l: -(l["forward_ms"] + l["backward_ms"]))[:8]:
    print(f"    {l['name']:18} forward {l['forward_ms']:7.3f} ms  backward {l['backward_ms']:7.3f} ms")
PY
done

echo
echo "==== summary ($(head -1 "$OUT/gpu.txt")) ===="
cat "$summary"
python3 - "$OUT" <<'PY'
import json, os, statistics, sys
out = sys.argv[1]
rows = [json.loads(l) for l in open(os.path.join(out, "bench.jsonl"))]
def median(xs): return statistics.median(xs) if xs else 0
print("ResNet-50 training, 3x224x224, images/s (medians); peer: PyTorch torch.compile")
print(f"{'precision':9} {'batch':>5} {'Myelin':>8} {'peer mode':>14} {'PyTorch':>8} {'ratio':>6}")
for p in ("bf16", "tf32"):
    for b in sorted({r["batch"] for r in rows}):
        m = median([r["images_per_second"] for r in rows if r["who"] == "myelin" and r["precision"] == p and r["batch"] == b])
        # The fastest of the peer's modes in this precision.
        peers = {}
        for r in rows:
            if r["who"] == "torch" and r["batch"] == b and r["mode"].startswith(p):
                peers.setdefault(r["mode"], []).append(r["images_per_second"])
        mode, t = max(((k, median(v)) for k, v in peers.items()), key=lambda kv: kv[1], default=("-", 0))
        if m or t:
            print(f"{p:9} {b:5d} {m:8.0f} {mode:>14} {t:8.0f} {m / t if t else 0:6.2f}")
        for who in sorted({r["who"] for r in rows if r["who"].startswith("myelin-")}):
            v = median([r["images_per_second"] for r in rows if r["who"] == who and r["precision"] == p and r["batch"] == b])
            if v:
                print(f"  {who}: {v:.0f} img/s; the first variant is {m / v:.2f}x this")
all_modes = sorted({(r["mode"], r["batch"]) for r in rows if r["who"] == "torch"})
if all_modes:
    print("every peer mode: " + ", ".join(
        f"{m} b{b} {median([r['images_per_second'] for r in rows if r['who'] == 'torch' and r['mode'] == m and r['batch'] == b]):.0f}"
        for m, b in all_modes))
layers = os.path.join(out, "layers.txt")
if os.path.exists(layers):
    print(open(layers).read().rstrip())
PY
