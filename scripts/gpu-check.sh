#!/usr/bin/env bash
# Builds the CUDA engine on a GPU machine, runs every GPU test, runs the AlexNet benchmark beside
# PyTorch's in the same run, and prints a short table last. Results and logs go to $OUT (the
# device tool's output folder) or ./gpu-check-out.
#
#   scripts/gpu-check.sh                     # everything
#   STAGES="build tests" scripts/gpu-check.sh
#   BENCH_ARGS="--batches 256 --precisions bf16" TORCH_MODES=bf16 TORCH_BATCHES=256 \
#     TORCH_COMPILE_BATCHES= BENCH_VARIANTS= scripts/gpu-check.sh
#
# oneDNN is not installed on the GPU machines: carry its .debs in .carry/debs (see the note at
# the end of this file); they are unpacked into a private prefix, never into /.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$OUT"
STAGES="${STAGES:-build tests bench torch}"
BUILD="${BUILD_DIR:-build-gpu}"
BENCH_ARGS="${BENCH_ARGS:---gemm --profile}"
TORCH_MODES="${TORCH_MODES:-fp32,tf32,bf16}"
TORCH_COMPILE_BATCHES="${TORCH_COMPILE_BATCHES-256}"  # empty: no torch.compile run
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
    -DDNNL_ROOT="$deps/usr" -DCMAKE_POLICY_VERSION_MINIMUM=3.5 > "$OUT/configure.log" 2>&1 || { tail -30 "$OUT/configure.log"; exit 1; }
  targets=$(ls tests/ops_cuda_test.cpp tests/cuda_*_test.cpp 2>/dev/null | xargs -n1 basename | sed 's/\.cpp$//')
  ninja -C "$BUILD" -j"$JOBS" -k 0 $targets alexnet_gpu_bench > "$OUT/build.log" 2>&1
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
  # Variants of the bf16 batch-256 step, for comparison (convolution layout, channel padding).
  for v in ${BENCH_VARIANTS-MYELIN_CUDA_CONV_PAD=1 MYELIN_CUDA_CONV_LAYOUT=nchw}; do
    env "$v" timeout 120 "$BUILD"/alexnet_gpu_bench --batches 256 --precisions bf16 --iters 20 \
      2>&1 | tail -1 | sed "s/^/[$v] /" | tee -a "$OUT/bench.log"
  done
fi

if has torch; then
  PYTHONUNBUFFERED=1 timeout "${TORCH_TIMEOUT:-240}" python3 bench/torch_alexnet_bench.py cuda \
    "$TORCH_MODES" ${TORCH_BATCHES:-} 2>&1 | grep -v Warning | tee "$OUT/torch.log"
  if [ -n "$TORCH_COMPILE_BATCHES" ]; then
    PYTHONUNBUFFERED=1 timeout "${TORCH_TIMEOUT:-240}" python3 bench/torch_alexnet_bench.py cuda \
      bf16compile "$TORCH_COMPILE_BATCHES" 2>&1 | grep "img/s" | tee -a "$OUT/torch.log"
  fi
fi

echo
echo "==== summary ($(head -1 "$OUT/gpu.txt")) ===="
cat "$summary"
[ -s "$OUT/op_errors.txt" ] && cat "$OUT/op_errors.txt"
[ -f "$OUT/ceiling.txt" ] && cat "$OUT/ceiling.txt"
[ -f "$OUT/bench.log" ] && grep -E "^(prec|fp32|tf32|bf16|fp16) |^gemm|^\[" "$OUT/bench.log"
[ -f "$OUT/torch.log" ] && grep "img/s" "$OUT/torch.log" | awk '{print "torch", $2, $3, $(NF-1), $NF}'
exit 0

# The .debs (run here, in the repository root, on a Debian machine with apt):
#   mkdir -p .carry/debs && cd .carry/debs && apt-get download libdnnl2 libdnnl-dev ocl-icd-libopencl1
