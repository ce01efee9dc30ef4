#!/usr/bin/env bash
# watch's CPU per membership delta, without clients: `ringfence watch` fed
# the first list of a kept churn run (KEEP=DIR bench/churn.sh), then the
# first EVENTS (1,500) events of its trace at 50/s; prints watch's CPU over
# the trace, its batches, deltas and generations, and CPU per delta written.
# One line per binary of RF_BIN="DIR…" (default: this build), in that order.
# PERF=FILE also records the first binary with `perf record --call-graph
# dwarf` for 8 s of the trace.
#
#   bench/watch-follow.sh CHURN_DIR
C=$(realpath "${1:?usage: bench/watch-follow.sh CHURN_DIR (a KEEP=DIR bench/churn.sh run)}")
. "$(dirname "$0")/lib.sh"
EVENTS=${EVENTS:-1500}
[ -n "${RF_BIN:-}" ] || cargo build --release -q -p ringfence-cli --bin ringfence
for dir in ${RF_BIN:-$CARGO_TARGET_DIR/release}; do
  R=$dir/ringfence; T=$(mktemp -d)
  cp "$C/c/list.jsonl" "$T/ev.jsonl"
  "$R" watch --repo "$C/repo" --branch "$(git -C "$C/repo" branch --show-current)" \
    --inventory-events "$T/ev.jsonl" --events-cluster cluster-0 --key "$C/k.key" \
    --out "$T/pub" --interval 5 2>"$T/w.log" &
  W=$!
  for _ in $(seq 1 600); do [ -e "$T/pub/current/index.json" ] && break; sleep 0.5; done
  sleep 3
  c0=$(ticks "$W")
  if [ -n "${PERF:-}" ]; then
    (sleep 8; perf record --call-graph dwarf,16384 -F 299 -p "$W" -o "$PERF" -- sleep 8 >/dev/null 2>&1) &
    PERF=""
  fi
  python3 - "$C/c/churn.jsonl" "$T/ev.jsonl" "$EVENTS" <<'PY'
import sys, time
lines = open(sys.argv[1]).readlines()[: int(sys.argv[3])]
t0 = time.time()
with open(sys.argv[2], "a") as f:
    for i, line in enumerate(lines):
        d = t0 + i / 50 - time.time()
        if d > 0:
            time.sleep(d)
        f.write(line)
        f.flush()
PY
  sleep 2
  c1=$(ticks "$W")
  kill "$W"; wait "$W" 2>/dev/null || true
  batches=$(grep -c "membership:" "$T/w.log" || true)
  deltas=$(grep -o "[0-9]* delta(s)" "$T/w.log" | awk '{s += $1} END {print s + 0}')
  gens=$(grep -c "published" "$T/w.log" || true)
  awk -v c=$((c1 - c0)) -v hz="$HZ" -v b="$batches" -v d="$deltas" -v g="$gens" -v r="$R" \
    'BEGIN {printf "%s: %.1f s CPU, %d batches, %d deltas, %d generations: %.0f us CPU per delta\n", r, c / hz, b, d, g, c / hz / d * 1e6}'
  rm -rf "$T"
done
uptime
