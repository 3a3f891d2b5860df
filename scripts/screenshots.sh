#!/usr/bin/env bash
# Runs the browser tests, which screenshot every page they check, into out/screenshots, and
# refreshes the pictures the README shows (docs/screenshots). Needs a build (scripts/build.sh).
#   scripts/screenshots.sh            all tests
#   scripts/screenshots.sh job model  only web/tests/job.test.mjs and model.test.mjs
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --build build --target myelin web
out="$PWD/out/screenshots"
rm -rf "$out" && mkdir -p "$out"
tests=()
for name in "$@"; do tests+=("tests/$name.test.mjs"); done
[ ${#tests[@]} -eq 0 ] && tests=(tests/)
(cd web && MYELIN_BINARY=../build/myelin MYELIN_TEST_OUT="$out" \
  node --test --test-concurrency=1 "${tests[@]}")
# The README's pictures: the home page, a finished job, the new-job form and a model.
declare -A readme=([home]=home [job-done]=job [newjob-valid]=new-job [model]=model)
mkdir -p docs/screenshots
for shot in "${!readme[@]}"; do
  [ -f "$out/$shot.png" ] && cp "$out/$shot.png" "docs/screenshots/${readme[$shot]}.png"
done
ls "$out"
