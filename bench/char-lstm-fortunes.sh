#!/usr/bin/env bash
# char-lstm on Debian's fortunes beside its PyTorch peer (bench/torch_char_lstm.py: the same model,
# recipe, batches and number of steps): held-out bits per character, training time and a sample
# of each, as JSON lines in OUT/fortunes.jsonl and a table on stdout.
#
#   bench/char-lstm-fortunes.sh DATASET ITERATIONS [DEVICE=cpu]
#
# DATASET: a text dataset, e.g. `myelin dataset create --source /usr/share/games/fortunes --text
# char --out data/fortunes`. Environment: BUILD (directory holding myelin, default build), OUT
# (default fortunes-out), PY (python with torch: /usr/bin/python3 on the CPU, python3 on GPUs).
set -uo pipefail
cd "$(dirname "$0")/.."
DATA=$1
ITERS=$2
DEVICE=${3:-cpu}
BUILD=${BUILD:-build}
OUT=${OUT:-fortunes-out}
PY=${PY:-$([ "$DEVICE" = cpu ] && echo /usr/bin/python3 || echo python3)}
mkdir -p "$OUT"
rm -rf "$OUT/fortunes"
t0=$(date +%s.%N)
"$BUILD/myelin" train --model models/char-lstm.yaml --data "$DATA" --out "$OUT/fortunes" \
  --device "$DEVICE" --iterations "$ITERS" --eval-batch 100 --eval-every 1000000 \
  --snapshot-every -1 --quiet > "$OUT/fortunes-train.log" 2>&1
t1=$(date +%s.%N)
"$BUILD/myelin" sample --weights "$OUT/fortunes" --prime "The " --length 300 --temperature 0.8 \
  --device "$DEVICE" > "$OUT/fortunes-sample.txt" 2>&1
python3 - "$OUT/fortunes/metrics.jsonl" "$t0" "$t1" "$ITERS" > "$OUT/fortunes.jsonl" <<'PY'
import json, sys
events = [json.loads(l) for l in open(sys.argv[1])]
test = [e for e in events if e.get("event") == "test"][-1]
print(json.dumps({"who": "myelin", "iterations": int(sys.argv[4]),
                  "seconds": float(sys.argv[3]) - float(sys.argv[2]),
                  "bits_per_char": test["bits_per_symbol"], "tokens": test["examples"]}))
PY
env -u LD_LIBRARY_PATH "$PY" bench/torch_char_lstm.py "$DATA" "$ITERS" "$DEVICE" 100 >> "$OUT/fortunes.jsonl" 2> "$OUT/fortunes-torch.log"
python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print("char-lstm on fortunes (fp32): held-out bits per character after the same steps")
for l in open(os.path.join(out, "fortunes.jsonl")):
    r = json.loads(l)
    where = "whole process" if r["who"] == "myelin" else "training loop"
    print(f"  {r['who']:7} {r['iterations']} steps  {r['bits_per_char']:.3f} bits/char over "
          f"{r['tokens']} tokens  {r['seconds']:.1f} s ({where})")
    if r.get("sample"): print("    torch sample: " + r["sample"].replace("\n", " / ")[:200])
s = os.path.join(out, "fortunes-sample.txt")
if os.path.exists(s): print("    myelin sample: " + open(s).read().replace("\n", " / ")[:200])
PY
