#!/usr/bin/env bash
# The browser UI's speed goals, measured by the browser tests in web/tests against a real
# `myelin serve` and headless Chromium: a busy server's home page, the live job page and the
# chart with 5 × 100,000 points. Prints each figure beside its goal; exits 1 if one is missed.
# Usage: bench/web-ui.sh   (after a build with the web UI; see README "The web UI")
set -euo pipefail
cd "$(dirname "$0")/../web"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
node --test --test-concurrency=1 tests/home.test.mjs tests/job.test.mjs tests/perf.test.mjs \
  >"$log" 2>&1 || { cat "$log"; exit 1; }

figure() { grep -o "$1 [0-9.]*" "$log" | head -1 | awk '{print $NF}'; }
missed=0
row() { # name, value (ms), goal (ms)
  local verdict=ok
  if [ -z "$2" ] || [ "${2%.*}" -ge "$3" ]; then verdict=MISSED; missed=1; fi
  printf '%-40s %8s ms   goal < %5s ms   %s\n' "$1" "${2:-?}" "$3" "$verdict"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
row "home, 1000 jobs: first 100 rows" "$(figure 'first 100 rows')" 5000
row "home, 1000 jobs: all rows" "$(figure 'all rows')" 3000
row "home, 1000 jobs: a change shown" "$(figure 'a change shown in')" 2000
row "job page: metrics file-to-page median" "$(figure 'latency median')" 1000
row "chart 5 x 100k points: first render" "$(figure 'first render')" 1500
row "chart 5 x 100k points: worst frame" "$(figure 'worst frame')" 200
exit $missed
