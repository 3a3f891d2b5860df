#!/usr/bin/env bash
# The largest ResNet-50 training batch that fits on this GPU, Myelin beside PyTorch, measured:
# Myelin by a binary search over `myelin time --batch N` (a batch fits when its steps run; one
# that fails for any reason but memory stops the search), PyTorch torch.compile by a run at each
# of $PEER_BATCHES (channels_last and bf16 autocast, or $PEER_MODE), since each batch compiles
# anew (about a minute). Programs as for gpu-resnet50.sh: MYELIN_BIN and MYELIN_LIB.
#
#   PRECISION=bf16 LO=1024 HI=2048 PEER_BATCHES="1536 1664 1792" bench/gpu-largest-batch.sh
#
# LO must fit and HI must not (they are checked); the search stops at a step of $STEP images
# (16 or more). DEVICE (cuda) may name another device, to try the script out.
# On a card larger than CAP_MIB (81,559: an H100's 80 GB), a PyTorch process holds the difference
# for the whole search, so both frameworks see what an 80-GB card leaves them (CAP_MIB=0: no cap).
# Results in $OUT/summary.txt, one line per probe and the answer last.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
OUT="${OUT:-$PWD/gpu-largest-batch-out}"
PRECISION="${PRECISION:-bf16}"
LO="${LO:-256}"
HI="${HI:-4096}"
STEP="${STEP:-32}"
PEER_MODE="${PEER_MODE:-${PRECISION}clcompile}"
PEER_BATCHES="${PEER_BATCHES-}"
if [ "$STEP" -lt 16 ]; then  # the probes are multiples of 8: a smaller step could loop
  echo "gpu-largest-batch: STEP must be 16 or more, got $STEP" >&2
  exit 2
fi
mkdir -p "$OUT"
summary="$OUT/summary.txt"
: > "$summary"
note() { echo "$*" | tee -a "$summary"; }
myelin="${MYELIN_BIN:-build-gpu/myelin}"
CAP_MIB="${CAP_MIB:-81559}"
[ -n "${MYELIN_LIB:-}" ] && export LD_LIBRARY_PATH="$MYELIN_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

# Exit status 0: fits; 1: out of memory; 2: failed otherwise.
myelin_fits() {
  local log="$OUT/myelin-b$1"
  if timeout 240 "$myelin" time --model models/resnet50.yaml --device "${DEVICE:-cuda}" --precision \
    "$PRECISION" --batch "$1" --iterations 2 --json > "$log.json" 2> "$log.err"; then
    note "myelin batch $1: fits, $(grep -o '"device_memory_mib": *[0-9]*' "$log.json")"
    return 0
  fi
  if grep -qiE "out of (host )?memory|cudaErrorMemoryAllocation" "$log.err"; then
    note "myelin batch $1: out of memory"
    return 1
  fi
  note "myelin batch $1: failed: $(tail -1 "$log.err")"
  return 2
}

# The largest batch between LO (must fit) and HI (must not), to within $STEP images.
myelin_search() {
  local lo=$LO hi=$HI mid
  myelin_fits "$lo" || { note "myelin: LO=$lo does not fit; nothing to search"; return; }
  myelin_fits "$hi"
  case $? in
    0) note "myelin $PRECISION: HI=$hi fits too; the largest batch is above it (raise HI)"; return ;;
    2) return ;;
  esac
  while [ $((hi - lo)) -gt "$STEP" ]; do
    mid=$(((lo + hi) / 2 / 8 * 8))
    myelin_fits "$mid"
    case $? in
      0) lo=$mid ;;
      1) hi=$mid ;;
      *) return ;;
    esac
  done
  note "myelin $PRECISION: largest batch found $lo (fails at $hi)"
}
# Holds device memory above CAP_MIB: what the card has in use now stays counted, the holder's own
# context too, so a process started after it sees the free memory of a CAP_MIB card.
hold_above_cap() {
  local total used
  [ "${DEVICE:-cuda}" = cuda ] && command -v nvidia-smi > /dev/null || return 0
  total=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits | head -1)
  used=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
  [ "$CAP_MIB" -gt 0 ] && [ "$total" -gt "$CAP_MIB" ] || return 0
  env -u LD_LIBRARY_PATH python3 -c "
import time, torch
free, _ = torch.cuda.mem_get_info()
keep = ($CAP_MIB - $used) << 20
held = torch.empty(free - keep, dtype=torch.uint8, device='cuda')
print('holding', held.numel() >> 20, 'MiB', flush=True)
time.sleep(86400)" > "$OUT/hold.log" 2>&1 &
  holder=$!
  trap 'kill $holder 2> /dev/null' EXIT
  until grep -q holding "$OUT/hold.log"; do
    kill -0 $holder 2> /dev/null || { note "holder failed: $(tail -1 "$OUT/hold.log")"; exit 1; }
    sleep 1
  done
  note "card $total MiB, capped at $CAP_MIB: $(cat "$OUT/hold.log"), free now" \
    "$(nvidia-smi --query-gpu=memory.free --format=csv,noheader | head -1)"
}
hold_above_cap
myelin_search

for b in $PEER_BATCHES; do
  log="$OUT/torch-b$b.log"
  env -u LD_LIBRARY_PATH PYTHONUNBUFFERED=1 timeout 300 python3 bench/torch_resnet50_bench.py \
    "$PEER_MODE" "$b" > "$log" 2>&1
  if grep -q "img/s" "$log"; then
    note "torch $PEER_MODE batch $b: fits, $(grep memory: "$log" | sed 's/.*memory: //')"
  elif grep -qi "out of memory" "$log"; then
    note "torch $PEER_MODE batch $b: out of memory"
  else
    note "torch $PEER_MODE batch $b: failed: $(tail -1 "$log")"
  fi
done
