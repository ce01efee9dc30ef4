#!/usr/bin/env bash
# Issue 13's churn benchmark: the synthetic cluster with Linux nodes
# (ringfence-synth churn: 1,000 nodes, 30,000 pods, one Deployment scaled to
# 300) fed as watch events to `ringfence watch --serve`, followed by one
# client per node: REAL real `ringfence-agent run` processes (20), each
# applying to the kernel of its own network namespace, and the others
# simulated in one process (runtime-agent/examples/churn_clients.rs: the
# agent's fetch and verify code, applied in memory). Then the trace (60 s
# at 50 pod events/s: creates, deletes, reschedules, a rolling update) is
# appended to the file watch follows at its rate by bench/churn.py, which
# stamps each line's send time. Documents are matched to events by the pod
# addresses they change (each address belongs to one event of the trace).
# Prints the issue's table and `uptime`. Run as root.
#
#   bench/churn.sh [--small] [REAL]   --small: 4 nodes (2 real), 20 s at 10/s
#                                     port 24700; keeps nothing (KEEP=DIR keeps the run)
. "$(dirname "$0")/lib.sh"
small=""; [ "${1:-}" = --small ] && { small=--small; shift; }
REAL=${1:-20}; [ -n "$small" ] && REAL=${1:-2}
PORT=${PORT:-24700}
# RF_BIN=DIR: the `ringfence` binary from DIR instead of this build, and
# `ringfence-agent` and `churn_clients` from DIR too where DIR has them.
cargo build --release -q $([ -z "${RF_BIN:-}" ] && echo -p ringfence-cli --bin ringfence) \
  -p ringfence-testkit --bin ringfence-synth -p ringfence-agent --bin ringfence-agent --example churn_clients
B=$CARGO_TARGET_DIR/release; RF=${RF_BIN:-$B}/ringfence
AGENT=$B/ringfence-agent; SIM_BIN=$B/examples/churn_clients
[ -x "${RF_BIN:-/nonexistent}/ringfence-agent" ] && AGENT=$RF_BIN/ringfence-agent
[ -x "${RF_BIN:-/nonexistent}/churn_clients" ] && SIM_BIN=$RF_BIN/churn_clients
T=${KEEP:-$(mktemp -d)}; mkdir -p "$T"
PIDS=(); NSS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] || rm -rf "$T"
}
trap cleanup EXIT
log() { echo "churn: $*" >&2; }

"$B/ringfence-synth" churn "$T/c" $small
RATE=$([ -n "$small" ] && echo 10 || echo 50)
git init -q "$T/repo" && cp "$T"/c/intent/*.kdl "$T/repo/" && \
  git -C "$T/repo" add -A && git -C "$T/repo" -c user.name=b -c user.email=b@example.invalid commit -qm base
"$RF" keygen --out "$T/k" >/dev/null 2>&1
cp "$T/c/list.jsonl" "$T/ev.jsonl"
log "compiling the first list ($(wc -l <"$T/c/list.jsonl") objects)"
/usr/bin/time -v -o "$T/time.txt" "$RF" watch --repo "$T/repo" \
  --branch "$(git -C "$T/repo" branch --show-current)" --inventory-events "$T/ev.jsonl" \
  --events-cluster cluster-0 --key "$T/k.key" --out "$T/pub" --serve 127.0.0.1:$PORT \
  --interval 5 2>"$T/watch.log" &
W=$!; PIDS+=("$W")
for _ in $(seq 1 1200); do [ -e "$T/pub/current/index.json" ] && break; sleep 0.5; done
[ -e "$T/pub/current/index.json" ] || { tail -n 5 "$T/watch.log"; log "nothing published"; exit 2; }
WPID=$(pgrep -P $W -x ringfence || echo $W); PIDS+=("$WPID")
ls "$T/pub/membership" | sort >"$T/nodes.txt"
N=$(wc -l <"$T/nodes.txt")
# Real agents on REAL nodes spread over the cluster, simulated clients on the rest.
awk -v n="$N" -v r="$REAL" 'NR % int(n / r) == 1 && c < r { print; c++ }' "$T/nodes.txt" >"$T/real.txt"
grep -vxFf "$T/real.txt" "$T/nodes.txt" >"$T/sim.txt"
status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
rss_before=$(status "$WPID" VmRSS)

log "starting $(wc -l <"$T/real.txt") real agents and $(wc -l <"$T/sim.txt") simulated clients"
mkdir -p "$T/agents" "$T/copy"
APIDS=()
while read -r node; do
  ns="rfchurn-$$-${node##*-}"; ip netns add "$ns"; NSS+=("$ns")
  "$AGENT" run --node "$node" --netns "$ns" --trust "$T/k.pub" --state "$T/agents/$node" \
    --source "http://127.0.0.1:$PORT" 2>"$T/agents/$node.log" &
  PIDS+=($!); APIDS+=($!)
done <"$T/real.txt"
"$SIM_BIN" "http://127.0.0.1:$PORT" "$T/k.pub" "$T/sim.txt" "$T/sim.jsonl" "$T/stop" \
  2>"$T/sim.log" &
SIM=$!; PIDS+=("$SIM")
want=$(wc -l <"$T/sim.txt")
for _ in $(seq 1 600); do
  real_ready=$(cat "$T"/agents/*.log | grep -c "membership snapshot .* applied" || true)
  grep -qx "ready $want" "$T/sim.log" && [ "$real_ready" -eq "$REAL" ] && break
  sleep 0.5
done
grep -qx "ready $want" "$T/sim.log" || { tail -n 3 "$T/sim.log"; log "simulated clients not ready"; exit 2; }
[ "$real_ready" -eq "$REAL" ] || { tail -n 3 "$T"/agents/*.log; log "real agents not ready"; exit 2; }
sleep 2

w0=$(ticks "$WPID"); s0=$(ticks "$SIM"); t0=$(date +%s.%N)
log "pacing the trace ($(wc -l <"$T/c/churn.jsonl") events at $RATE/s)"
# Peak RSS of watch and of the real agents while the trace runs.
( while :; do
    echo "w $(status "$WPID" VmRSS)"; for p in "${APIDS[@]}"; do echo "a $(status "$p" VmRSS)"; done
    sleep 1
  done ) >"$T/rss.txt" 2>/dev/null &
SAMPLER=$!; PIDS+=("$SAMPLER")
python3 bench/churn.py pace "$T/c/churn.jsonl" "$T/ev.jsonl" "$T/stamps" "$RATE" "$T/pub" "$T/real.txt" "$T/copy"
t1=$(date +%s.%N); w1=$(ticks "$WPID"); s1=$(ticks "$SIM")
# Steady state: wait until watch has drained the trace (idle, under 5 % of
# a core, for 3 s in a row; at most 10 min), then let the clients fetch
# what it published last.
until_idle "$WPID"
t2=$(date +%s.%N); w2=$(ticks "$WPID")
log "watch drained $(echo "$t2 - $t1 - 3" | bc) s after the trace"
kill "$SAMPLER"
sleep 3
sim_hwm=$(status "$SIM" VmHWM); watch_threads=$(status "$WPID" Threads); watch_hwm=$(status "$WPID" VmHWM)
touch "$T/stop"
for _ in $(seq 1 100); do kill -0 "$SIM" 2>/dev/null || break; sleep 0.2; done
agent_hwm=$(for p in "${APIDS[@]}"; do status "$p" VmHWM; done | sort -n | tail -n 1)
python3 - "$T" <<PY
import json, re, sys
d = sys.argv[1]
log = open(f"{d}/watch.log").read()
gens = re.findall(r"published \S+ as generation \d+ \(a pod needs new rules\): \d+ node\(s\), (\d+) with new rules", log)
rss = [l.split() for l in open(f"{d}/rss.txt") if len(l.split()) == 2]
json.dump({
    "trace_s": $t1 - $t0,
    "drain_s": max(0.0, $t2 - $t1 - 3),
    "watch_cpu_drain_s": ($w2 - $w0) / $HZ,
    "watch_cpu_s": ($w1 - $w0) / $HZ,
    "sim_cpu_s": ($s1 - $s0) / $HZ,
    "clients": $N,
    "rerenders": len(gens),
    "rerendered_nodes": sum(int(g) for g in gens),
    "watch_rss_kib": max(int(x) for k, x in rss if k == "w"),
    "watch_rss_before_kib": $rss_before,
    "watch_hwm_kib": $watch_hwm,
    "watch_threads": $watch_threads,
    "agent_rss_kib": max(int(x) for k, x in rss if k == "a"),
    "agent_hwm_kib": $agent_hwm,
    "sim_rss_kib": $sim_hwm,
}, open(f"{d}/meta.json", "w"))
PY
python3 bench/churn.py table "$T"
uptime
