#!/usr/bin/env bash
# `ringfence matrix` on the 1,000-node synthetic cluster (30,000 pods, 500
# policies; intent as KDL, inventory as kubectl JSON), in each format and
# with --summary, and (BEFORE=path/to/ringfence) the same runs of another
# binary in the same session, for a before/after comparison.
#
#   bench/matrix.sh [DIR]            BEFORE=/path/to/old/ringfence bench/matrix.sh
#
# Generates the files once into DIR (default /tmp/ringfence-matrix-bench;
# kept between runs) and times each run with /usr/bin/time -v: wall and CPU
# time, peak resident memory, output lines and size; `uptime` first.
. "$(dirname "$0")/lib.sh"
DIR=${1:-/tmp/ringfence-matrix-bench}

cargo build --release -q -p ringfence-cli -p ringfence-testkit --bin ringfence --bin ringfence-synth
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
cp "$CARGO_TARGET_DIR/release/ringfence" "$CARGO_TARGET_DIR/release/ringfence-synth" "$BIN/"
[[ -n ${BEFORE:-} ]] && cp "$BEFORE" "$BIN/ringfence-before"

mkdir -p "$DIR"
if [[ ! -f "$DIR/.done" ]]; then
    rm -rf "${DIR:?}"/*
    "$BIN/ringfence-synth" cluster "$DIR"
    touch "$DIR/.done"
fi
uptime

run() { # label binary args...
    local label=$1 bin=$2
    shift 2
    /usr/bin/time -v -o "$BIN/time" "$bin" matrix "$DIR/intent" \
        $(printf -- '--inventory %s ' "$DIR"/inventory/*.json) "$@" >"$BIN/out" 2>"$BIN/stderr" \
        || { cat "$BIN/stderr" >&2; exit 1; }
    python3 - "$BIN/time" "$BIN/out" "$label" <<'PY'
import os, sys
sys.path.insert(0, "bench")
from timev import measured
secs, cpu, rss, load = measured(sys.argv[1])
lines = sum(1 for _ in open(sys.argv[2], "rb"))
size = os.path.getsize(sys.argv[2]) / 1048576
print(f"{sys.argv[3]}: {secs:.2f} s wall (CPU {cpu:.1f} s; load {load}); peak RSS {rss:.0f} MiB; "
      f"{lines} lines, {size:.1f} MiB")
PY
}

for args in "-o txt" "-o json" "--summary" "-o txt --namespace ns-001"; do
    # shellcheck disable=SC2086
    run "matrix $args" "$BIN/ringfence" $args
    if [[ -n ${BEFORE:-} && $args != "--summary" ]]; then
        # shellcheck disable=SC2086
        run "before: matrix $args" "$BIN/ringfence-before" $args
    fi
done
