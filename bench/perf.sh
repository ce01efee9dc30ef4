#!/usr/bin/env bash
# The figures of record (issue 17): what a user sees running the binaries on
# files, both sides of each comparison in one run, one table. Run as root
# (nft loads in throwaway network namespaces `perf-*`).
#
#   bench/perf.sh [DIR]          # ROWS="aerleon nft cluster analyze discover" RUNS=3 RF_BIN=
#
# DIR (default /tmp/ringfence-perf-bench) keeps the generated inputs and the
# Aerleon virtualenv between runs (~2.5 GB with the flow files; `rm -rf DIR`
# after). Every figure is one process under /usr/bin/time: wall, CPU
# (user + sys) and peak RSS; small rows report the best wall of RUNS runs.
# Rows and inputs:
#   aerleon  `aclgen` vs `ringfence compile` on the same policy
#            (bench/aerleon/pair: 50 tokens x 500 hosts, 200 terms; for
#            ringfence 50 Deployments / 20,000 pods on one node), ringfence
#            warm and on a cold plugin cache (an empty XDG_CACHE_HOME)
#   nft      `nft -f` of both outputs, each in a fresh network namespace
#   cluster  `ringfence compile` -> signed bundles, 1,000 nodes / 30,000 pods /
#            500 policies (`ringfence-synth cluster`)
#   analyze  `ringfence analyze` of 10 M flows (`ringfence-synth flows`)
#   discover `ringfence discover` of 10 M records in three formats
#            (`ringfence-synth callgraph`, as bench/discover.sh, coarse)
# `ringfence matrix` and watch's incremental publication have their own
# scripts (bench/netpol.sh, bench/watch.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/ringfence/target}
DIR=${1:-/tmp/ringfence-perf-bench}
ROWS=${ROWS:-aerleon nft cluster analyze discover}
RUNS=${RUNS:-3}
AERLEON_VERSION=1.18.0
TIME_ISSUED=2026-01-01T00:00:00Z
want() { [[ " $ROWS " == *" $1 "* ]]; }

# RF_BIN=DIR: measure the ringfence and ringfence-synth binaries in DIR
# (e.g. a copy of another commit's build, for before/after) instead of building.
if [[ -z "${RF_BIN:-}" ]]; then
    cargo build --release -q -p ringfence-cli -p ringfence-testkit --bin ringfence --bin ringfence-synth
    RF_BIN=$CARGO_TARGET_DIR/release
fi
BIN=$(mktemp -d)
NS=""
cleanup() {
    [[ -n "$NS" ]] && ip netns del "$NS" 2>/dev/null
    rm -rf "$BIN"
}
trap cleanup EXIT
cp "$RF_BIN/ringfence" "$RF_BIN/ringfence-synth" "$BIN/"
RF=$BIN/ringfence
mkdir -p "$DIR"

# ---- inputs (generated once) ------------------------------------------------
if want aerleon || want nft; then
    if [[ ! -x "$DIR/venv/bin/aclgen" ]]; then
        python3 -m venv "$DIR/venv"
        "$DIR/venv/bin/pip" install -q "aerleon==$AERLEON_VERSION"
    fi
    if [[ ! -f "$DIR/aerleon-rf/inventory/bench.json" ]]; then
        python3 bench/aerleon/pair/gen.py "$DIR/aerleon" >/dev/null
        python3 bench/aerleon/pair/aerleon_to_ringfence.py "$DIR/aerleon/spec.json" "$DIR/aerleon-rf"
    fi
fi
if want cluster && [[ ! -f "$DIR/cluster/.done" ]]; then
    rm -rf "$DIR/cluster"
    "$BIN/ringfence-synth" cluster "$DIR/cluster" && touch "$DIR/cluster/.done"
fi
if want analyze && [[ ! -f "$DIR/flows/.done" ]]; then
    rm -rf "$DIR/flows"
    "$BIN/ringfence-synth" flows "$DIR/flows" 10000000 200000 && touch "$DIR/flows/.done"
fi
if want discover && [[ ! -f "$DIR/callgraph/.done" ]]; then
    rm -rf "$DIR/callgraph"
    "$BIN/ringfence-synth" callgraph "$DIR/callgraph" --records 10000000 --workloads 5000 2>/dev/null \
        && touch "$DIR/callgraph/.done"
fi
[[ -f "$BIN/k.key" ]] || "$RF" keygen --out "$BIN/k" >/dev/null 2>&1

# ---- measuring ---------------------------------------------------------------
# run NAME OKCODES CMD...: one timed run, "wall cpu rss_mib" appended to BIN/NAME
run() {
    local name=$1 ok=$2 status=0
    shift 2
    /usr/bin/time -f '%e %U %S %M' -o "$BIN/t" "$@" >"$BIN/$name.out" 2>"$BIN/$name.err" || status=$?
    if [[ " $ok " != *" $status "* ]]; then
        echo "$name: exit $status: $*" >&2
        tail -20 "$BIN/$name.err" >&2
        exit 2
    fi
    tail -1 "$BIN/t" | awk '{printf "%s %.2f %.0f\n", $1, $2 + $3, $4 / 1024}' >>"$BIN/$name"
}
# best NAME: the run with the lowest wall time
best() { sort -n "$BIN/$1" | head -1; }
ROWS_OUT=()
row() { ROWS_OUT+=("$*"); }
# ratio PEER OURS: of wall times and of CPU times ("wall cpu rss" cells)
ratio() { python3 -c "a, b = '$1'.split(), '$2'.split(); print(f'{float(a[0]) / float(b[0]):.1f}× wall, {float(a[1]) / float(b[1]):.1f}× CPU')"; }
cell() { awk '{printf "%.2f s (CPU %.2f s, %d MiB)", $1, $2, $3}' <<<"$1"; }

echo "== $(uptime)"

if want aerleon; then
    A=(compile "$DIR/aerleon-rf/intent" --inventory "$DIR/aerleon-rf/inventory/bench.json"
        --key "$BIN/k.key" --out "$BIN/a-out" --time "$TIME_ISSUED")
    for _ in $(seq "$RUNS"); do
        rm -rf "$DIR/aerleon/out"
        run aclgen 0 env -C "$DIR/aerleon" "$DIR/venv/bin/aclgen" --base_directory=policies \
            --definitions_directory=def --output_directory=out
        rm -rf "$BIN/cache" "$BIN/a-out"
        run rf-cold 0 env XDG_CACHE_HOME="$BIN/cache" "$RF" "${A[@]}"
        rm -rf "$BIN/a-out"
        run rf-warm 0 env XDG_CACHE_HOME="$BIN/cache" "$RF" "${A[@]}"
        rm -rf "$BIN/r-out"
        run rf-render 0 env XDG_CACHE_HOME="$BIN/cache" "$RF" render "$DIR/aerleon-rf/intent" \
            --inventory "$DIR/aerleon-rf/inventory/bench.json" --out "$BIN/r-out"
    done
    a=$(best aclgen) w=$(best rf-warm) c=$(best rf-cold) r=$(best rf-render)
    row "Aerleon pair, \`compile\` → signed bundle (warm plugin cache) vs \`aclgen\`|≥ 100×|$(cell "$w")|$(cell "$a")|$(ratio "$a" "$w")"
    row "Aerleon pair, \`compile\`, cold plugin cache (first run)|≥ 100×|$(cell "$c")|$(cell "$a")|$(ratio "$a" "$c")"
    row "Aerleon pair, \`render\` → rules.nft (warm)|≥ 100×|$(cell "$r")|$(cell "$a")|$(ratio "$a" "$r")"
fi

if want nft; then
    [[ -f "$DIR/aerleon/out/bench.nft" ]] || (cd "$DIR/aerleon" && "$DIR/venv/bin/aclgen" \
        --base_directory=policies --definitions_directory=def --output_directory=out >/dev/null 2>&1)
    rm -rf "$BIN/r-out"
    "$RF" render "$DIR/aerleon-rf/intent" --inventory "$DIR/aerleon-rf/inventory/bench.json" \
        --out "$BIN/r-out" >/dev/null 2>&1
    ours=$(find "$BIN/r-out" -name rules.nft | head -1)
    for _ in $(seq "$RUNS"); do
        for side in aerleon ringfence; do
            file=$([[ $side == aerleon ]] && echo "$DIR/aerleon/out/bench.nft" || echo "$ours")
            NS="perf-nft-$$"
            ip netns add "$NS"
            run "nft-$side" 0 ip netns exec "$NS" nft -f "$file"
            ip netns del "$NS"
            NS=""
        done
    done
    a=$(best nft-aerleon) r=$(best nft-ringfence)
    size() { python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6:.1f} MB')" "$1"; }
    row "its rules.nft, \`nft -f\` in a fresh netns ($(size "$ours") vs $(size "$DIR/aerleon/out/bench.nft"))|≥ 15×|$(cell "$r")|$(cell "$a")|$(ratio "$a" "$r")"
fi

if want cluster; then
    rm -rf "$BIN/c-out"
    run cluster 0 "$RF" compile "$DIR/cluster/intent" $(printf -- '--inventory %s ' "$DIR"/cluster/inventory/*.json) \
        --key "$BIN/k.key" --out "$BIN/c-out" --time "$TIME_ISSUED"
    written=$(du -sb "$BIN/c-out" | awk '{printf "%.0f MB written", $1 / 1e6}')
    rm -rf "$BIN/c-out"
    row "1,000 nodes / 30,000 pods / 500 policies → signed bundles ($written)|≤ 2 s, ≤ 512 MiB|$(cell "$(best cluster)")||"
fi

if want analyze; then
    run analyze "0 1" "$RF" analyze "$DIR/flows/intent" $(printf -- '--inventory %s ' "$DIR"/flows/inventory/*.json) \
        --flows "$DIR/flows/flows.jsonl" --format json --out "$BIN/analysis.json"
    r=$(best analyze)
    rate=$(python3 -c "w, c = map(float, '$r'.split()[:2]); print(f'{10e6 / c / 1e6:.1f} M flows/s/core of CPU, {10e6 / w / 1e6:.1f} M/s wall')")
    row "\`analyze\` 10 M flows ($rate)|≥ 5 M flows/s/core|$(cell "$r")||"
fi

if want discover; then
    G=$DIR/callgraph
    rm -rf "$BIN/d-out"
    run discover 0 "$RF" discover --inventory "$G/bench.json" \
        --flows "$G/flows.jsonl" --flows "$G/hubble.json" --flows "$G/conntrack.txt" \
        --exclude "$G/exclude.kdl" --granularity coarse --min-flows 2 --out "$BIN/d-out" --format json
    rm -rf "$BIN/d-out"
    row "\`discover\` 10 M records (3 formats, coarse)|≤ 5 s|$(cell "$(best discover)")||"
fi

echo "== $(uptime)"
echo
echo "| what a user runs | goal | ringfence: wall (CPU user+sys, peak RSS) | peer | ratio |"
echo "|---|---|---|---|---|"
for r in "${ROWS_OUT[@]}"; do
    IFS='|' read -r what goal ours peer ratio <<<"$r"
    echo "| $what | $goal | $ours | ${peer:-—} | ${ratio:-—} |"
done
