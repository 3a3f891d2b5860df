#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, AddressSanitizer) into build-fuzz/ and runs each for a
# bounded time on its corpus. Usage: scripts/fuzz.sh [SECONDS per target, default 60]
# A finding leaves a crash-* / timeout-* / leak-* file in build-fuzz/findings/ and exits 1;
# reproduce it with: build-fuzz/fuzz_NAME build-fuzz/findings/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
command -v clang++ > /dev/null || bash scripts/install-deps.sh
mkdir -p build-fuzz
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMYELIN_FUZZ=ON \
  -DMYELIN_CUDA=OFF -DMYELIN_TESTS=OFF -DMYELIN_SERVER=OFF -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  > build-fuzz/configure.log 2>&1 || { cat build-fuzz/configure.log; exit 1; }
targets=(fuzz_idx fuzz_image fuzz_store fuzz_network fuzz_checkpoint)
cmake --build build-fuzz -j"$(nproc)" --target "${targets[@]}"
mkdir -p build-fuzz/findings
status=0
for t in "${targets[@]}"; do
  name="${t#fuzz_}"
  corpus="build-fuzz/corpus/$name"  # grows from run to run; the committed seeds stay untouched
  mkdir -p "$corpus"
  seeds=()
  [ -d "fuzz/corpus/$name" ] && seeds+=("fuzz/corpus/$name")
  dict=()
  [ -f "fuzz/$name.dict" ] && dict+=("-dict=fuzz/$name.dict")
  printf '%-16s %4ss ... ' "$t" "$seconds"
  if build-fuzz/"$t" "$corpus" "${seeds[@]}" "${dict[@]}" -max_total_time="$seconds" \
      -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix=build-fuzz/findings/"$name"- > "build-fuzz/$t.log" 2>&1; then
    runs=$(grep -m1 'stat::number_of_executed_units' "build-fuzz/$t.log" | awk '{print $2}')
    echo "ok (${runs:-?} inputs)"
  else
    echo "FINDING: see build-fuzz/$t.log"
    grep -E 'ERROR|SUMMARY|Test unit written' "build-fuzz/$t.log" | head -5
    status=1
  fi
done
exit $status
