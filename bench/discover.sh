#!/usr/bin/env bash
# Discovery benchmark: 10 million flow records over 5,000 workloads -> KDL.
#
#   bench/discover.sh [DIR] [RECORDS] [WORKLOADS]
#
# Generates the inventory and the flows once into DIR (default
# /tmp/ringfence-discover-bench; kept between runs), then times
# `ringfence discover` on them with /usr/bin/time -v and prints records per
# second and the peak resident memory (VmHWM).
. "$(dirname "$0")/lib.sh"
DIR=${1:-/tmp/ringfence-discover-bench}
RECORDS=${2:-10000000}
WORKLOADS=${3:-5000}

# The target directory is shared by several worktrees, whose builds of the
# same crates replace each other: build until the binary is this worktree's
# (it holds discovery's file header), and keep a private copy.
mkdir -p "$DIR"
BIN=$(mktemp -d)
for attempt in 1 2 3 4 5; do
    touch compiler/cli/src/cmd/discover.rs compiler/cli/src/main.rs compiler/discover/src/*.rs compiler/flows/src/*.rs
    cargo build --release -q -p ringfence-cli -p ringfence-testkit --bin ringfence --bin ringfence-synth
    cp "$CARGO_TARGET_DIR/release/ringfence" "$CARGO_TARGET_DIR/release/ringfence-synth" "$BIN/"
    if grep -q "Discovered by" "$BIN/ringfence"; then break; fi
    echo "the shared target held another worktree's build; rebuilding ($attempt)" >&2
done
if [[ ! -f "$DIR/.done-$RECORDS-$WORKLOADS" ]]; then
    rm -rf "$DIR"/*
    "$BIN/ringfence-synth" callgraph "$DIR" --records "$RECORDS" --workloads "$WORKLOADS"
    touch "$DIR/.done-$RECORDS-$WORKLOADS"
fi
du -sh "$DIR"/flows.jsonl "$DIR"/hubble.json "$DIR"/conntrack.txt

for granularity in ${GRANULARITIES:-coarse fine}; do
    OUT=$(mktemp -d)
    /usr/bin/time -v -o "$OUT.time" "$BIN/ringfence" discover \
        --inventory "$DIR/bench.json" \
        --flows "$DIR/flows.jsonl" --flows "$DIR/hubble.json" --flows "$DIR/conntrack.txt" \
        --exclude "$DIR/exclude.kdl" --granularity "$granularity" --min-flows 2 \
        --out "$OUT/intent" --format json > "$OUT.json"
    python3 - "$OUT.json" "$OUT.time" "$granularity" "$OUT/intent" <<'PY'
import json, sys, pathlib
sys.path.insert(0, "bench")
from timev import measured
s = json.load(open(sys.argv[1]))
wall = s["elapsed_seconds"]
_, cpu, rss, load = measured(sys.argv[2])
files = list(pathlib.Path(sys.argv[4]).rglob("*.kdl"))
size = sum(f.stat().st_size for f in files)
print(f"granularity {sys.argv[3]}: {s['flows']['read']} records in {wall:.2f} s "
      f"= {s['flows']['read'] / wall / 1e6:.2f} M records/s (CPU {cpu:.1f} s, load {load}); peak RSS (VmHWM) {rss:.0f} MiB; "
      f"{len(s['groups'])} groups, {len(s['policies'])} policies, {len(files)} files ({size / 1e6:.1f} MB); "
      f"covered {s['flows']['covered']}, excluded {s['flows']['excluded']}, below min-flows {s['flows']['below_min_flows']}")
PY
    rm -rf "$OUT" "$OUT.json" "$OUT.time"
done
rm -rf "$BIN"
