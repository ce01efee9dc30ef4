#!/usr/bin/env bash
# Live policy analysis end to end: `ringfence analyze` on the 1,000-node
# synthetic cluster (intent as KDL, inventory as kubectl JSON) and 10
# million flow records as JSON Lines, once per output format.
#
#   bench/analyze.sh [DIR] [FLOWS] [CONVERSATIONS]
#
# Generates the files once into DIR (default /tmp/ringfence-analyze-bench;
# kept between runs), then times each run with /usr/bin/time -v: wall and
# CPU time, flows per second, peak resident memory, output size. The
# verdict step alone: cargo bench -p ringfence-analyze --bench verdict.
. "$(dirname "$0")/lib.sh"
DIR=${1:-/tmp/ringfence-analyze-bench}
FLOWS=${2:-10000000}
CONVERSATIONS=${3:-200000}

cargo build --release -q -p ringfence-cli -p ringfence-testkit --bin ringfence --bin ringfence-synth
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
cp "$CARGO_TARGET_DIR/release/ringfence" "$CARGO_TARGET_DIR/release/ringfence-synth" "$BIN/"

mkdir -p "$DIR"
if [[ ! -f "$DIR/.done-$FLOWS-$CONVERSATIONS" ]]; then
    rm -rf "${DIR:?}"/*
    "$BIN/ringfence-synth" flows "$DIR" "$FLOWS" "$CONVERSATIONS"
    touch "$DIR/.done-$FLOWS-$CONVERSATIONS"
fi
du -sh "$DIR/flows.jsonl"

for format in ${FORMATS:-txt json html}; do
    OUT="$BIN/out.$format"
    status=0
    /usr/bin/time -v -o "$BIN/time" "$BIN/ringfence" analyze "$DIR/intent" \
        $(printf -- '--inventory %s ' "$DIR"/inventory/*.json) --flows "$DIR/flows.jsonl" \
        --format "$format" --out "$OUT" 2>"$BIN/stderr" || status=$?
    # Exit 1 is expected: the synthetic flows escape and are misdropped.
    if [[ $status -gt 1 ]]; then cat "$BIN/stderr" >&2; exit "$status"; fi
    python3 - "$BIN/time" "$OUT" "$format" "$FLOWS" <<'PY'
import os, sys
sys.path.insert(0, "bench")
from timev import measured
secs, cpu, rss, load = measured(sys.argv[1])
flows = int(sys.argv[4])
size = os.path.getsize(sys.argv[2]) / 1048576
print(f"--format {sys.argv[3]}: {flows} flows in {secs:.2f} s wall = {flows / secs / 1e6:.2f} M flows/s "
      f"(CPU {cpu:.1f} s; load {load}); peak RSS {rss:.0f} MiB; output {size:.1f} MiB")
PY
done
