#!/usr/bin/env bash
# Flows at fleet scale: `ringfence analyze` and `ringfence discover` on the
# 1,000-node synthetic cluster's flows (100 million by default) read from
# two ClickHouse shards behind a Distributed table, against the same flows
# as a JSON Lines file, both in one run.
#
#   bench/clickhouse.sh [DIR] [FLOWS] [CONVERSATIONS]
#
# Generates the intent, inventory and flows once into DIR (default
# /tmp/ringfence-clickhouse-bench; kept between runs: 100 M flows are about
# 21 GB as a file plus 2.2 GB in the shards; `rm -rf DIR` after). When the
# file would not fit the free disk (or with PACK=1; PACK=0 never), the flows
# are kept as DIR/flows.jsonl.zst (about 1/8 the size) and each command that
# reads the file reads it through a named pipe fed by `zstd -dc`, which takes
# CPU beside it. Starts two clickhouse-server processes on
# 127.0.0.1:26900-26903 with their data in DIR (parts a merge replaced are
# deleted after 10 s, not 8 minutes: while 100 M flows load, those held
# several GB), each with ringfence's flow table, its conversation table and
# the view that fills it (schema/docs/flows.md), behind Distributed tables,
# loads the flows with `ringfence flows load` (once; timed), then times each
# command with /usr/bin/time: wall, CPU, peak RSS, flows per second of wall
# time, and the rows the engine returned. The results of both sides must be
# equal (analysis JSON but for the input section; discovered KDL).
#
# TABLE_ONLY=1 times only the table side (each file-side command reads the
# whole file, a minute or more at 100 M flows), RUNS times each (default 1):
# for repeated figures on an idle machine once a full run has compared them.
. "$(dirname "$0")/lib.sh"
DIR=${1:-/tmp/ringfence-clickhouse-bench}
FLOWS=${2:-100000000}
CONVERSATIONS=${3:-200000}
H1=26900 T1=26901 H2=26902 T2=26903

cargo build --release -q -p ringfence-cli -p ringfence-testkit --bin ringfence --bin ringfence-synth
BIN=$(mktemp -d)
cp "$CARGO_TARGET_DIR/release/ringfence" "$CARGO_TARGET_DIR/release/ringfence-synth" "$BIN/"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$BIN"
}
trap cleanup EXIT

mkdir -p "$DIR"
if [[ ! -f "$DIR/.done-$FLOWS-$CONVERSATIONS" ]]; then
    rm -rf "${DIR:?}"/*
    # About 210 bytes per flow as JSON Lines; keep 4 GB for the shards.
    free=$(df --output=avail -B1 "$DIR" | tail -1)
    PACK=${PACK:-$(((FLOWS * 210 + 4000000000) > free ? 1 : 0))}
    if [[ $PACK != 0 ]]; then
        mkfifo "$DIR/flows.jsonl"
        zstd -1 -q <"$DIR/flows.jsonl" >"$DIR/flows.jsonl.zst" &
        PIDS+=($!)
    fi
    /usr/bin/time -f 'generated in %e s' "$BIN/ringfence-synth" flows "$DIR" "$FLOWS" "$CONVERSATIONS"
    [[ $PACK == 0 ]] || { wait "${PIDS[-1]}"; rm "$DIR/flows.jsonl"; }
    touch "$DIR/.done-$FLOWS-$CONVERSATIONS"
fi
# The path of the flows as a file: the file itself, or a fresh named pipe
# that `zstd -dc` fills (one per command that reads it).
FEEDS=0
flows_file() {
    if [[ -f "$DIR/flows.jsonl" ]]; then
        FILE="$DIR/flows.jsonl"
    else
        FEEDS=$((FEEDS + 1))
        FILE="$BIN/flows-$FEEDS.jsonl"
        mkfifo "$FILE"
        zstd -dcq "$DIR/flows.jsonl.zst" >"$FILE" &
        PIDS+=($!)
    fi
}
du -sh "$DIR"/flows.jsonl*
INV=$(ls "$DIR"/inventory/*.json)

for s in 1 2; do
    H=$((s == 1 ? H1 : H2)) T=$((s == 1 ? T1 : T2))
    mkdir -p "$DIR/ch$s"
    cat >"$DIR/ch$s/config.xml" <<XML
<yandex><logger><level>warning</level><console>1</console></logger>
<http_port>$H</http_port><tcp_port>$T</tcp_port><listen_host>127.0.0.1</listen_host>
<path>$DIR/ch$s/data/</path><tmp_path>$DIR/ch$s/tmp/</tmp_path><users_config>users.xml</users_config>
<default_profile>default</default_profile><default_database>default</default_database>
<mark_cache_size>268435456</mark_cache_size>
<merge_tree><old_parts_lifetime>10</old_parts_lifetime></merge_tree>
<remote_servers><rf><shard><replica><host>127.0.0.1</host><port>$T1</port></replica></shard>
<shard><replica><host>127.0.0.1</host><port>$T2</port></replica></shard></rf></remote_servers></yandex>
XML
    cat >"$DIR/ch$s/users.xml" <<XML
<yandex><profiles><default/></profiles><users><default><password></password><networks><ip>127.0.0.1</ip></networks>
<profile>default</profile><quota>default</quota></default></users><quotas><default/></quotas></yandex>
XML
    (cd "$DIR/ch$s" && exec clickhouse-server --config-file=config.xml >server.log 2>&1) &
    PIDS+=($!)
done
q() { curl -sS --fail-with-body "http://127.0.0.1:$1/" --data-binary "$2"; }
for H in $H1 $H2; do
    for _ in $(seq 1 120); do q "$H" "SELECT 1" >/dev/null 2>&1 && break; sleep 0.5; done
done
DDL=$(sed -n '/^CREATE TABLE IF NOT EXISTS {table}$/,/^ORDER BY/p' schema/docs/flows.md)
CONV=$(sed -n '/^CREATE TABLE IF NOT EXISTS {conversations}$/,/^ORDER BY/p' schema/docs/flows.md)
VIEW=$(sed -n '/^CREATE MATERIALIZED VIEW IF NOT EXISTS {view}$/,/^GROUP BY/p' schema/docs/flows.md)
for H in $H1 $H2; do
    q "$H" "${DDL//\{table\}/default.shard}"
    q "$H" "${CONV//\{conversations\}/default.shard_conversations}"
    VIEW1=${VIEW//\{view\}/default.shard_conversations_view}
    VIEW1=${VIEW1//\{conversations\}/default.shard_conversations}
    q "$H" "${VIEW1//\{table\}/default.shard}"
done
q $H1 "CREATE TABLE IF NOT EXISTS default.flows_all AS default.shard ENGINE = Distributed(rf, default, shard, rand())"
q $H1 "CREATE TABLE IF NOT EXISTS default.flows_all_conversations AS default.shard_conversations ENGINE = Distributed(rf, default, shard_conversations, rand())"
URL="clickhouse://127.0.0.1:$H1/default.flows_all"

stats() { # label time-file flows
    python3 - "$@" <<'PY'
import re, sys
label, tf, flows = sys.argv[1], sys.argv[2], int(sys.argv[3])
wall, user, sys_, rss = open(tf).read().split()[-4:]
wall, cpu = float(wall), float(user) + float(sys_)
load = open("/proc/loadavg").read().split()[0]
print(f"{label}: {wall:.2f} s wall, CPU {cpu:.1f} s, peak RSS {int(rss) / 1024:.0f} MiB, "
      f"{flows / wall / 1e6:.2f} M flows/s (load {load})")
PY
}
TIME=(/usr/bin/time -f '%e %U %S %M')

loaded=$(q $H1 "SELECT count() FROM default.flows_all")
if [[ "$loaded" != "$FLOWS" ]]; then
    for H in $H1 $H2; do
        q "$H" "TRUNCATE TABLE default.shard"
        q "$H" "TRUNCATE TABLE default.shard_conversations"
    done
    flows_file
    "${TIME[@]}" -o "$BIN/load.time" "$BIN/ringfence" flows load "$FILE" --into "$URL"
    stats "flows load (into 2 shards)" "$BIN/load.time" "$FLOWS"
fi
# Merge the conversation table's parts now rather than when the server gets
# to it: each INSERT wrote a part of its own conversations. OPTIMIZE returns
# without merging when a merge is already running: repeat until each
# partition is one part.
unmerged() { q "$1" "SELECT count() - uniqExact(partition) FROM system.parts WHERE active AND database = 'default' AND table = 'shard_conversations'"; }
for H in $H1 $H2; do
    start=$(date +%s.%N)
    for _ in $(seq 1 60); do
        [[ $(unmerged "$H") == 0 ]] && break
        q "$H" "OPTIMIZE TABLE default.shard_conversations FINAL"
        sleep 1
    done
    echo "shard :$H: conversations merged in $(echo "$(date +%s.%N) - $start" | bc) s ($(unmerged "$H") extra parts left)"
done
for H in $H1 $H2; do
    for t in shard shard_conversations; do
        echo "shard :$H: $t: $(q "$H" "SELECT sum(rows), formatReadableSize(sum(bytes_on_disk)) FROM system.parts WHERE table = '$t' AND active" | tr '\t' ' ') rows, on disk"
    done
done
uptime

if [[ ${TABLE_ONLY:-0} != 0 ]]; then
    for r in $(seq 1 "${RUNS:-1}"); do
        "${TIME[@]}" -o "$BIN/a.time" "$BIN/ringfence" analyze "$DIR/intent" --inventory "$INV" \
            --flows "$URL" --format json --out "$BIN/a.json" 2>"$BIN/warnings" || [[ $? -le 1 ]]
        stats "analyze, ClickHouse (2 shards), run $r" "$BIN/a.time" "$FLOWS"
        rm -rf "$BIN/k" && mkdir "$BIN/k"
        "${TIME[@]}" -o "$BIN/d.time" "$BIN/ringfence" discover --inventory "$INV" --flows "$URL" \
            --out "$BIN/k" --format json >"$BIN/d.json" 2>"$BIN/warnings"
        stats "discover, ClickHouse (2 shards), run $r" "$BIN/d.time" "$FLOWS"
    done
    exit 0
fi
# Both sides of each comparison in one run, the table first.
# Warnings of compiling the synthetic intent go to a file.
"${TIME[@]}" -o "$BIN/a2.time" "$BIN/ringfence" analyze "$DIR/intent" --inventory "$INV" \
    --flows "$URL" --format json --out "$BIN/a2.json" 2>"$BIN/warnings" || [[ $? -le 1 ]]
stats "analyze, ClickHouse (2 shards)" "$BIN/a2.time" "$FLOWS"
# Memory does not grow with flows: the first half hour (half the flows).
"${TIME[@]}" -o "$BIN/a3.time" "$BIN/ringfence" analyze "$DIR/intent" --inventory "$INV" \
    --flows "$URL" --until 2024-05-01T12:30:00Z --format json --out "$BIN/a3.json" \
    2>"$BIN/warnings" || [[ $? -le 1 ]]
stats "analyze, ClickHouse (2 shards), first half hour (a partial hour: its flows, not conversations)" "$BIN/a3.time" "$((FLOWS / 2))"
flows_file
"${TIME[@]}" -o "$BIN/a1.time" "$BIN/ringfence" analyze "$DIR/intent" --inventory "$INV" \
    --flows "$FILE" --format json --out "$BIN/a1.json" 2>"$BIN/warnings" || [[ $? -le 1 ]]
stats "analyze, JSON Lines file" "$BIN/a1.time" "$FLOWS"
python3 - "$BIN/a1.json" "$BIN/a2.json" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
t = b["input"]["files"][0]
print(f"engine returned {t['lines']} rows (distinct conversations x network verdict) for "
      f"{t['flows']} flows; {b['totals']['conversations']} conversations")
for x in (a, b):
    x["input"].pop("files")
assert a == b, "analysis differs between the file and the table"
print("analysis: identical but for the input section")
PY
mkdir -p "$BIN/k1" "$BIN/k2"
"${TIME[@]}" -o "$BIN/d2.time" "$BIN/ringfence" discover --inventory "$INV" --flows "$URL" \
    --out "$BIN/k2" --format json >"$BIN/d2.json" 2>"$BIN/warnings"
stats "discover, ClickHouse (2 shards)" "$BIN/d2.time" "$FLOWS"
flows_file
"${TIME[@]}" -o "$BIN/d1.time" "$BIN/ringfence" discover --inventory "$INV" \
    --flows "$FILE" --out "$BIN/k1" --format json >"$BIN/d1.json" 2>"$BIN/warnings"
stats "discover, JSON Lines file" "$BIN/d1.time" "$FLOWS"
python3 - "$BIN/d2.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["inputs"]["tables"][0]
print(f"engine returned {t['rows']} rows for {t['flows']} flows")
PY
diff -r "$BIN/k1" "$BIN/k2" >/dev/null && echo "discovered intent: identical" || { echo "discovered intent differs"; exit 1; }
