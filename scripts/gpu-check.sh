#!/usr/bin/env bash
# Builds the CUDA engine on a GPU machine, runs every GPU test, runs the AlexNet benchmark beside
# PyTorch's (eager and torch.compile) in the same run, the 2015 Caffe-style CPU-vs-GPU AlexNet
# table, Fashion-MNIST time-to-accuracy of the whole `myelin train` process beside
# bench/torch_fmnist_gpu.py, and prints a short table last. Results and logs go to $OUT (the
# device tool's output folder) or ./gpu-check-out.
#
#   scripts/gpu-check.sh                     # everything
#   STAGES="build fmnist" FMNIST_RUNS="fast|resnet9-fast|" TORCH_FMNIST= scripts/gpu-check.sh
#   STAGES="build tests" scripts/gpu-check.sh
#   STAGES=fmnist BUILD_DIR=/tmp/gpu/bin FMNIST_FRESH_CACHE=1 TORCH_FMNIST= \
#     FMNIST_RUNS="s1|models/resnet9-fast.yaml|--seed 1;s2|models/resnet9-fast.yaml|--seed 2" \
#     scripts/gpu-check.sh                   # prebuilt programs (scripts/gpu-carry.sh), 2 seeds
#   BENCH_ARGS="--batches 256 --precisions bf16" TORCH_MODES=bf16 TORCH_BATCHES=256 \
#     TORCH_COMPILE_MODES= BENCH_VARIANTS= scripts/gpu-check.sh
#
# Everything takes about 10 minutes on an H100/H200 (torch.compile's compilations, the CPU AlexNet
# runs and the 70-epoch Fashion-MNIST recipe are the long parts); where one call is limited to 10
# minutes, split the stages: STAGES="build tests bench torch", then "build caffe fmnist".
#
# oneDNN is not installed on the GPU machines: carry its .debs in .carry/debs (see the note at
# the end of this file); they are unpacked into a private prefix, never into /.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
STAGES="${STAGES:-build tests bench torch caffe fmnist}"
BUILD="${BUILD_DIR:-build-gpu}"
BENCH_ARGS="${BENCH_ARGS:---gemm --profile}"
TORCH_MODES="${TORCH_MODES:-fp32,tf32,bf16}"
TORCH_COMPILE_MODES="${TORCH_COMPILE_MODES-bf16compile,tf32compile}"  # empty: no torch.compile
TORCH_COMPILE_BATCHES="${TORCH_COMPILE_BATCHES-64,128,256}"
CAFFE_BATCHES="${CAFFE_BATCHES-64,128,256}"  # AlexNet, 20 iterations, CPU (all cores) vs GPU
FMNIST_DIR="${FMNIST_DIR:-.carry/fashion-mnist}"
# Fashion-MNIST recipes, "name|model|extra train flags;...", each timed as a whole process. The
# cuDNN algorithm choices are cached on disk (src/cuda/algo_cache.h): "fast" starts with an empty
# cache (MYELIN_CUDA_ALGO_CACHE points at a fresh file), "fast-again" finds the first run's choices.
FMNIST_FLAGS="--eval-batch 512 --snapshot-every -1 --loader-threads 8 --log-every 100000 --quiet"
FMNIST_RUNS="${FMNIST_RUNS-fast|models/resnet9-fast.yaml|--eval-every 100000;fast-again|models/resnet9-fast.yaml|--eval-every 100000;long|models/resnet9-long.yaml|--eval-every 819}"
# The PyTorch peer runs, "MAXLR epochs;...".
TORCH_FMNIST="${TORCH_FMNIST-0.05 20;0.1 40}"
JOBS="${JOBS:-$(nproc)}"
summary="$OUT/summary.txt"
: > "$summary"
has() { [[ " $STAGES " == *" $1 "* ]]; }
note() { echo "$*" | tee -a "$summary"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

deps=/tmp/myelin-deps
if [ -d .carry/debs ]; then
  for f in .carry/debs/*.deb; do dpkg -x "$f" "$deps"; done
  export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

if has build; then
  t0=$(date +%s)
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMYELIN_CUDA=ON \
    -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DDNNL_ROOT="$deps/usr" -DCMAKE_PREFIX_PATH="$deps/usr" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
  targets=$(ls tests/ops_cuda_test.cpp tests/cuda_*_test.cpp 2>/dev/null | xargs -n1 basename | sed 's/\.cpp$//')
  ninja -C "$BUILD" -j"$JOBS" -k 0 myelin $targets alexnet_gpu_bench > "$OUT/build.log" 2>&1
  rc=$?
  grep -E "error|FAILED" "$OUT/build.log" | head -30
  note "build: rc=$rc in $(( $(date +%s) - t0 )) s"
fi

if has tests; then
  for t in "$BUILD"/cuda_*_test "$BUILD"/ops_cuda_test; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    timeout "${TEST_TIMEOUT:-300}" "$t" > "$OUT/$name.log" 2>&1
    rc=$?
    grep -E "^\[  FAILED|Failure|error" "$OUT/$name.log" | head -40
    pass=$(grep -c "^\[       OK \]" "$OUT/$name.log")
    fail=$(grep -c "^\[  FAILED  \].*ms)" "$OUT/$name.log")
    skip=$(grep -c "^\[  SKIPPED \]" "$OUT/$name.log")
    note "$name: rc=$rc  passed $pass, failed $fail, skipped $skip (see $name.log)"
  done
  # Worst relative error per op and precision: "[cuda fp32] conv2d/x fwd 1e-7 grad0 2e-6 ..."
  grep -h "^\[cuda " "$OUT"/ops_cuda_test.log 2>/dev/null | awk '
    { prec = $2; sub(/\]/, "", prec); op = $3; sub(/\/.*/, "", op); ops[op] = 1
      if ($5 > fwd[op, prec]) fwd[op, prec] = $5
      for (i = 7; i <= NF; i += 2) if (prec == "fp32" && $i > grad[op]) grad[op] = $i }
    END { printf "%-28s %9s %9s %9s %9s %9s\n", "op (worst rel. error)", "fp32", "fp32 grad", "tf32", "bf16", "fp16"
          for (op in ops) printf "%-28s %9.2g %9.2g %9.2g %9.2g %9.2g\n", op, fwd[op, "fp32"], grad[op],
                                 fwd[op, "tf32"], fwd[op, "bf16"], fwd[op, "fp16"] }' \
    | sort > "$OUT/op_errors.txt"
fi

if has bench; then
  python3 - <<'PY' 2>&1 | tee "$OUT/ceiling.txt"
import torch, time
for name, dt, tf32 in (("fp32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(8192, 8192, device="cuda", dtype=dt); b = torch.randn(8192, 8192, device="cuda", dtype=dt)
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.perf_counter()
    for _ in range(10): a @ b
    torch.cuda.synchronize(); dt_s = (time.perf_counter() - t) / 10
    print(f"torch gemm {name} 8192^3: {2*8192**3/dt_s/1e12:.1f} TFLOP/s")
x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda"); y = torch.empty_like(x)
for _ in range(3): y.copy_(x)
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(10): y.copy_(x)
torch.cuda.synchronize(); print(f"device copy: {2 * (1 << 30) * 10 / (time.perf_counter() - t) / 1e12:.2f} TB/s (read + write)")
PY
  timeout "${BENCH_TIMEOUT:-300}" "$BUILD"/alexnet_gpu_bench $BENCH_ARGS --json "$OUT/alexnet.json" \
    2>&1 | tee "$OUT/bench.log"
  # The bf16 step at batch 64 and 256 with one of the engine's choices turned off, to show what
  # each is worth: stride folding, per-group convolutions, channels-last and 16-bit activations,
  # the convolutions' fused ReLU.
  for v in ${BENCH_VARIANTS-MYELIN_CUDA_FOLD=0 MYELIN_CUDA_SPLIT_GROUPS=0 MYELIN_CUDA_LAYOUT=nchw MYELIN_CUDA_BF16_STORAGE=0 MYELIN_CUDA_FUSE=0}; do
    env "$v" timeout 120 "$BUILD"/alexnet_gpu_bench --batches 64,256 --precisions bf16 --iters 20 \
      2>&1 | grep -E "^bf16 " | sed "s/^/[$v] /" | tee -a "$OUT/bench.log"
  done
fi

if has torch; then
  PYTHONUNBUFFERED=1 timeout "${TORCH_TIMEOUT:-240}" python3 bench/torch_alexnet_bench.py cuda \
    "$TORCH_MODES" ${TORCH_BATCHES:-} 2>&1 | grep -v Warning | tee "$OUT/torch.log"
  if [ -n "$TORCH_COMPILE_MODES" ]; then
    PYTHONUNBUFFERED=1 timeout "${TORCH_TIMEOUT:-240}" python3 bench/torch_alexnet_bench.py cuda \
      "$TORCH_COMPILE_MODES" "$TORCH_COMPILE_BATCHES" 2>&1 | grep "img/s" | tee -a "$OUT/torch.log"
  fi
fi

# The 2015 table: AlexNet, 20 iterations like `caffe time`, Myelin on this machine's CPU (all
# cores, fp32, eager) and on the GPU (fp32, CUDA graph), per batch size.
if has caffe; then
  timeout "${CAFFE_TIMEOUT:-400}" "$BUILD"/alexnet_gpu_bench --device cpu --threads "$(nproc)" \
    --precisions fp32 --batches "$CAFFE_BATCHES" --iters 20 --json "$OUT/caffe-cpu.json" \
    2>&1 | tee "$OUT/caffe-cpu.log"
  timeout 120 "$BUILD"/alexnet_gpu_bench --precisions fp32 --batches "$CAFFE_BATCHES" \
    --iters 20 --json "$OUT/caffe-gpu.json" 2>&1 | tee "$OUT/caffe-gpu.log"
fi

# Fashion-MNIST time-to-accuracy: the whole `myelin train` process (start-up, data load, training,
# evaluation, final weights) by the wall clock, beside PyTorch's ResNet-9 (start-up excluded in its
# own figures; its process wall time is printed too).
if has fmnist; then
  if [ -z "${MYELIN_CUDA_ALGO_CACHE:-}" ]; then  # a fresh cache unless one is given
    export MYELIN_CUDA_ALGO_CACHE="$OUT/cudnn-algos.tsv"
    rm -f "$MYELIN_CUDA_ALGO_CACHE"
  fi
  IFS=';' read -ra runs <<< "$FMNIST_RUNS"
  for r in "${runs[@]}"; do
    IFS='|' read -r name model flags <<< "$r"
    [ -n "$name" ] || continue
    # FMNIST_FRESH_CACHE=1: every run starts with an empty cuDNN algorithm cache, as a first run.
    [ -n "${FMNIST_FRESH_CACHE:-}" ] && rm -f "$MYELIN_CUDA_ALGO_CACHE"
    rm -rf "/tmp/fmnist-$name"
    /usr/bin/time -f "%e" -o "$OUT/fmnist-$name.wall" "$BUILD"/myelin train --model "$model" \
      --data "$FMNIST_DIR" --device cuda --precision bf16 $FMNIST_FLAGS $flags \
      --out "/tmp/fmnist-$name" > "$OUT/fmnist-$name.log" 2>&1
    cp "/tmp/fmnist-$name/metrics.jsonl" "$OUT/fmnist-$name.metrics.jsonl" 2>/dev/null
    note "fmnist myelin $name ($model $flags): wall $(cat "$OUT/fmnist-$name.wall") s; $(grep -E "test accuracy|rror" "$OUT/fmnist-$name.log" | tail -1)"
  done
  IFS=';' read -ra peers <<< "$TORCH_FMNIST"
  for p in "${peers[@]}"; do
    read -r lr ep <<< "$p"
    [ -n "$lr" ] || continue
    MAXLR=$lr /usr/bin/time -f "%e" -o "$OUT/torch-fmnist-$lr-$ep.wall" python3 bench/torch_fmnist_gpu.py \
      "$FMNIST_DIR" "$ep" > "$OUT/torch-fmnist-$lr-$ep.log" 2>&1
    best=$(grep -oE "test acc [0-9.]+" "$OUT/torch-fmnist-$lr-$ep.log" | awk '{ if ($3 > m) m = $3 } END { print m }')
    note "fmnist torch MAXLR=$lr $ep epochs: wall $(cat "$OUT/torch-fmnist-$lr-$ep.wall") s; last $(grep "^epoch" "$OUT/torch-fmnist-$lr-$ep.log" | tail -1); best $best%; $(tail -1 "$OUT/torch-fmnist-$lr-$ep.log")"
  done
fi

echo
echo "==== summary ($(head -1 "$OUT/gpu.txt")) ===="
cat "$summary"
[ -s "$OUT/op_errors.txt" ] && cat "$OUT/op_errors.txt"
[ -f "$OUT/ceiling.txt" ] && cat "$OUT/ceiling.txt"
[ -f "$OUT/bench.log" ] && grep -E "^\[" "$OUT/bench.log"
# The AlexNet table: Myelin (CUDA graph) beside PyTorch eager and torch.compile from this run, and
# the Caffe-style CPU-vs-GPU table.
OUT="$OUT" python3 - <<'PY'
import json, os, re
out = os.environ["OUT"]
def load(name):
    try: return json.load(open(os.path.join(out, name)))
    except Exception: return []
ceiling, torch = {}, {}
try:
    for line in open(os.path.join(out, "ceiling.txt")):
        m = re.match(r"torch gemm (\w+) 8192\^3: ([0-9.]+) TFLOP/s", line)
        if m: ceiling[m.group(1)] = float(m.group(2))
except OSError: pass
try:
    for line in open(os.path.join(out, "torch.log")):
        m = re.search(r"bs=(\d+) mode=(\w+) .* (\d+) img/s", line)
        if m: torch[(m.group(2), int(m.group(1)))] = float(m.group(3))
except OSError: pass
rows = load("alexnet.json")
if rows:
    print("AlexNet training, img/s (Myelin: whole step as one CUDA graph)")
    print(f"{'prec':5} {'batch':>5} {'Myelin':>8} {'TFLOP/s':>8} {'%ceil':>6} {'eager':>8} {'x eager':>8} {'compile':>8} {'x comp':>7}")
    for r in rows:
        p, b, ips = r["precision"], r["batch"], r["images_per_second"]
        e, c = torch.get((p, b)), torch.get((p + "compile", b))
        ceil = ceiling.get(p)
        print(f"{p:5} {b:5d} {ips:8.0f} {r['tflops']:8.1f} {100 * r['tflops'] / ceil if ceil else 0:6.1f}"
              f" {e or 0:8.0f} {ips / e if e else 0:8.2f} {c or 0:8.0f} {ips / c if c else 0:7.2f}")
cpu, gpu = load("caffe-cpu.json"), load("caffe-gpu.json")
if cpu and gpu:
    print(f"AlexNet, 20 iterations (caffe time): Myelin CPU ({os.cpu_count()} threads, fp32) vs GPU (fp32)")
    for c in cpu:
        g = next((x for x in gpu if x["batch"] == c["batch"]), None)
        if g:
            print(f"  batch {c['batch']:3d}: CPU {c['step_ms']:8.1f} ms/iter ({20 * c['step_ms'] / 1000:6.2f} s)"
                  f"  GPU {g['step_ms']:7.2f} ms/iter ({20 * g['step_ms'] / 1000:5.3f} s)"
                  f"  speedup {c['step_ms'] / g['step_ms']:6.1f}x")
PY
exit 0

# The .debs (run here, in the repository root, on a Debian machine with apt):
#   mkdir -p .carry/debs && cd .carry/debs && apt-get download libdnnl2 libdnnl-dev ocl-icd-libopencl1 libarchive-dev \
#     libarchive13 libb2-1 libxml2 libnettle8 libicu72
