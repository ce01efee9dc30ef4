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
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/ringfence/target}
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
import os, re, sys
t = open(sys.argv[1]).read()
def num(pattern):
    return re.search(pattern, t).group(1)
wall = num(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)")
parts = [float(p) for p in wall.split(":")]
secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
cpu = float(num(r"User time \(seconds\): ([\d.]+)")) + float(num(r"System time \(seconds\): ([\d.]+)"))
rss = int(num(r"Maximum resident set size \(kbytes\): (\d+)")) / 1024
lines = sum(1 for _ in open(sys.argv[2], "rb"))
size = os.path.getsize(sys.argv[2]) / 1048576
load = open("/proc/loadavg").read().split()[0]
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
