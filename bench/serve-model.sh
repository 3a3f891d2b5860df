#!/bin/sh
# Inference servers under load on this machine's CPU: `myelin serve-model` beside onnxruntime
# (bench/ort_server.mjs: onnxruntime-node, the same protocol and batching policy) on the same
# ONNX export of the same weights, for LeNet and the small ResNet, with dynamic batching on and
# off. bench/serve_load sends one example per request from CLIENTS concurrent connections for
# SECONDS after a second of warm-up, and reports throughput and p50/p99 latency.
#
#   bench/serve-model.sh [BUILD_DIR]     (env: CLIENTS=16 DURATION=5 BATCH=32 DELAY_MS=2 THREADS=1)
#   DEVICE=cuda THREADS=16 ORT=python bench/serve-model.sh DIR   # Myelin on the GPU, onnxruntime's
#                                                                # CPU provider on 16 cores
#
# BUILD_DIR holds myelin and serve_load (ninja myelin serve_load); onnxruntime-node comes from
# tests/onnx (cd tests/onnx && npm ci --ignore-scripts); ORT=python runs bench/ort_server.py on
# the onnxruntime Python package instead (the default where node is missing). THREADS is the
# onnxruntime server's threads and, on the CPU, Myelin's; DEVICE is where Myelin runs.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$(dirname "$(ls -t "$here"/../build*/myelin | head -1)")}
myelin=$build/myelin
load=$build/serve_load
clients=${CLIENTS:-16}
seconds=${DURATION:-5}
batch=${BATCH:-32}
delay=${DELAY_MS:-2}
threads=${THREADS:-1}
device=${DEVICE:-cpu}
ort=${ORT:-$(command -v node >/dev/null && echo node || echo python)}
work=$(mktemp -d)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$work"' EXIT

# A short training run (throughput does not depend on how well the weights classify) and its
# ONNX export.
prepare() {
  "$myelin" train --model "$1" --data fashion-mnist --iterations 20 --batch 64 \
    --train-limit 2000 --test-limit 200 --threads "$threads" --quiet --out "$work/$1" >/dev/null
  "$myelin" export --model "$1" --weights "$work/$1" --format onnx --out "$work/$1.onnx" >/dev/null
}

# start COMMAND...: runs a server in the background and waits for its "serving at" line.
start() {
  "$@" >"$work/server.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do
    url=$(sed -n 's|.*serving at \(http://[^/]*\)/v1/.*|\1|p' "$work/server.log")
    [ -n "$url" ] && return 0
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "server did not start" >&2
  exit 1
}

stop() {
  kill "$server"
  wait "$server" 2>/dev/null || true
  server=""
}

# start_ort MODEL.onnx [FLAGS...]: the onnxruntime server on the CPU.
start_ort() {
  model=$1
  shift
  if [ "$ort" = node ]; then
    start node "$here/ort_server.mjs" "$model" --port 0 --threads "$threads" "$@"
  else  # onnxruntime's own Python package and libraries, not those on LD_LIBRARY_PATH for Myelin
    start env -u LD_LIBRARY_PATH python3 "$here/ort_server.py" "$model" --port 0 \
      --threads "$threads" "$@"
  fi
}

# point MODEL SERVER B D: one line of the table.
point() {
  if [ "$2" = myelin ]; then
    start "$myelin" serve-model "$work/$1" --port 0 --device "$device" --threads "$threads" \
      --max-batch "$3" --max-delay-ms "$4"
  else
    start_ort "$work/$1.onnx" --max-batch "$3" --max-delay-ms "$4"
  fi
  r=$("$load" --url "$url" --clients "$clients" --seconds "$seconds")
  stop
  echo "$r" | /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
model, server, b, d = sys.argv[1:]
batching = "off" if b == "1" else "B=%s D=%sms" % (b, d)
print("| %-7s | %-12s | %-12s | %8.0f | %7.2f | %7.2f | %6d |" % (model, server, batching,
      r["requests_per_second"], r["p50_ms"], r["p99_ms"], r["errors"]))' "$1" "$2" "$3" "$4"
}

# agree MODEL: both servers' probabilities for the same 4 random inputs, largest difference.
agree() {
  start "$myelin" serve-model "$work/$1" --port 0 --device "$device" --threads "$threads"
  mine=$url
  server_mine=$server
  start_ort "$work/$1.onnx"
  /usr/bin/python3 - "$mine" "$url" "$1" <<'PY'
import json, random, struct, sys, urllib.request
mine, ort, model = sys.argv[1:]
shape = json.load(urllib.request.urlopen(mine + "/v1/health"))["input"]
size = shape[0] * shape[1] * shape[2]
random.seed(1)
body = struct.pack("<%df" % (4 * size), *[random.random() for _ in range(4 * size)])
def probabilities(url):
    req = urllib.request.Request(url + "/v1/predict", body,
                                 {"Content-Type": "application/octet-stream"})
    return json.load(urllib.request.urlopen(req))["probabilities"]
a, b = probabilities(mine), probabilities(ort)
diff = max(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
print("%s: myelin and onnxruntime probabilities differ by at most %.1e" % (model, diff))
assert diff < 1e-4, "the servers disagree"
PY
  stop
  server=$server_mine
  stop
}

for m in lenet resnet; do prepare "$m" && agree "$m"; done
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores;" \
  "$clients clients, ${seconds} s per point, one example per request, $threads threads per server," \
  "myelin on $device, onnxruntime ($ort) on the CPU"
echo "| model   | server       | batching     | req/s    | p50 ms  | p99 ms  | errors |"
echo "|---------|--------------|--------------|----------|---------|---------|--------|"
for m in lenet resnet; do
  for b in "$batch $delay" "1 0"; do
    set -- $b
    point "$m" myelin "$1" "$2"
    point "$m" onnxruntime "$1" "$2"
  done
done
