#!/usr/bin/env bash
# The agent's memory while following live membership (issue 13: "agent RSS
# while following the stream ≤ 15 MiB"): the churn cluster of
# bench/churn.sh (ringfence-synth churn: 1,000 Linux nodes, 30,000 pods) fed
# as watch events to `ringfence watch --serve`, and ONE real
# `ringfence-agent run` per binary under test, each in its own network
# namespace, following the same node (bundle + live membership, applied to
# its kernel). Prints each agent's VmHWM / VmRSS from /proc once its first
# pass (bundle, snapshot, drift check) is done, then, unless TRACE=0, after
# the churn trace (60 s at 50 pod events/s, paced by bench/churn.py) and the
# drift check that follows it, with the highest VmRSS sampled meanwhile.
# Run as root, holding the bench lock (`flock /work/bench.lock
# bench/agent-follow.sh`). About 30 s without the trace, 2.5 min with it.
#
#   bench/agent-follow.sh [NODE]          NODE: node-0590 (default)
#   RF_BIN="DIR1 DIR2"   agents from these directories (each holding a
#                        `ringfence-agent`), side by side in one run, so a
#                        before/after comparison shares the cluster, the
#                        trace and the machine's load; default: this build
#   WATCH_BIN=DIR        `ringfence` and `ringfence-synth` from DIR instead
#                        of building them
#   WRAP="valgrind --tool=massif"   run each agent under WRAP (massif's
#                        output goes to OUT/massif.<i>.out; /proc figures
#                        are then the tool's, not the agent's)
#   TRACE=0              no churn trace;  INTERVAL=30  the agents' --interval
#   OUT=DIR              keep the agents' logs (and massif files) there
#   PORT=24800           watch's --serve port
. "$(dirname "$0")/lib.sh"
NODE=${1:-node-0590}
PORT=${PORT:-24800}; TRACE=${TRACE:-1}; INTERVAL=${INTERVAL:-30}; WRAP=${WRAP:-}
if [ -z "${WATCH_BIN:-}" ] || [ -z "${RF_BIN:-}" ]; then
  cargo build --release -q $([ -z "${WATCH_BIN:-}" ] && echo -p ringfence-cli --bin ringfence \
    -p ringfence-testkit --bin ringfence-synth) \
    $([ -z "${RF_BIN:-}" ] && echo -p ringfence-agent --bin ringfence-agent)
fi
W_BIN=${WATCH_BIN:-$CARGO_TARGET_DIR/release}
read -r -a BINS <<<"${RF_BIN:-$CARGO_TARGET_DIR/release}"
T=$(mktemp -d); OUT=${OUT:-$T/out}; mkdir -p "$OUT"
PIDS=(); NSS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for n in "${NSS[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT
log() { echo "agent-follow: $*" >&2; }

"$W_BIN/ringfence-synth" churn "$T/c" >/dev/null
git init -q "$T/repo" && cp "$T"/c/intent/*.kdl "$T/repo/" && \
  git -C "$T/repo" add -A && git -C "$T/repo" -c user.name=b -c user.email=b@example.invalid commit -qm base
"$W_BIN/ringfence" keygen --out "$T/k" >/dev/null 2>&1
cp "$T/c/list.jsonl" "$T/ev.jsonl"
log "watch: compiling the first list ($(wc -l <"$T/c/list.jsonl") objects)"
"$W_BIN/ringfence" watch --repo "$T/repo" --branch "$(git -C "$T/repo" branch --show-current)" \
  --inventory-events "$T/ev.jsonl" --events-cluster cluster-0 --key "$T/k.key" --out "$T/pub" \
  --serve 127.0.0.1:$PORT --interval 5 2>"$T/watch.log" &
W=$!; PIDS+=("$W")
for _ in $(seq 1 1200); do [ -e "$T/pub/current/index.json" ] && break; sleep 0.5; done
[ -e "$T/pub/current/index.json" ] || { tail -n 5 "$T/watch.log"; log "nothing published"; exit 2; }
WPID=$(pgrep -P $W -x ringfence || echo $W); PIDS+=("$WPID")
[ -e "$T/pub/membership/$NODE/snapshot" ] || { log "no membership for $NODE"; exit 2; }
log "$NODE: bundle $(wc -c <"$T/pub/current/$NODE.bundle") bytes, snapshot $(wc -c <"$T/pub/membership/$NODE/snapshot") bytes"

APIDS=()
for i in "${!BINS[@]}"; do
  ns="rffollow-$$-$i"; ip netns add "$ns"; NSS+=("$ns")
  wrap=()
  [ -n "$WRAP" ] && { read -r -a wrap <<<"$WRAP"; wrap+=(--massif-out-file="$OUT/massif.$i.out"); }
  "${wrap[@]}" "${BINS[$i]}/ringfence-agent" run --node "$NODE" --netns "$ns" --trust "$T/k.pub" \
    --state "$T/state.$i" --source "http://127.0.0.1:$PORT" --interval "$INTERVAL" \
    2>"$OUT/agent.$i.log" &
  PIDS+=($!); APIDS+=($!)
done
# The first pass is over once its report is written (after the drift check).
for _ in $(seq 1 600); do
  ready=0
  for i in "${!BINS[@]}"; do
    grep -q "membership snapshot .* applied" "$OUT/agent.$i.log" 2>/dev/null \
      && [ -e "$T/state.$i/report.json" ] && ready=$((ready + 1))
  done
  [ "$ready" -eq "${#BINS[@]}" ] && break
  sleep 0.5
done
[ "$ready" -eq "${#BINS[@]}" ] || { tail -n 3 "$OUT"/agent.*.log; log "agents not ready"; exit 2; }
sleep 3
status() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
declare -A SNAP_HWM SNAP_RSS
for i in "${!BINS[@]}"; do
  p=${APIDS[$i]}
  SNAP_HWM[$i]=$(status "$p" VmHWM); SNAP_RSS[$i]=$(status "$p" VmRSS)
  log "agent $i after the first pass: VmRSS ${SNAP_RSS[$i]} kB = anon $(status "$p" RssAnon) + file $(status "$p" RssFile) (heap, stacks / the mapped binary and libraries)"
done
if [ "$TRACE" = 1 ]; then
  printf '%s\n' "$NODE" >"$T/nodes.txt"; mkdir -p "$T/copy"
  ( while :; do
      for i in "${!BINS[@]}"; do echo "$i $(status "${APIDS[$i]}" VmRSS)"; done
      sleep 1
    done ) >"$T/rss.txt" 2>/dev/null &
  SAMPLER=$!; PIDS+=("$SAMPLER")
  log "pacing the trace ($(wc -l <"$T/c/churn.jsonl") events at 50/s)"
  python3 bench/churn.py pace "$T/c/churn.jsonl" "$T/ev.jsonl" "$T/stamps" 50 "$T/pub" "$T/nodes.txt" "$T/copy"
  # Until watch is idle (3 s under 5 % of a core), then one more pass of the agents.
  until_idle "$WPID"
  sleep "$((INTERVAL + 5))"
  kill "$SAMPLER" 2>/dev/null || true
fi
head=$(cat "$T/pub/membership/$NODE/head")
printf '%-3s %-48s %10s %10s %10s %10s %10s %8s\n' "#" "binary" "snap-HWM" "snap-RSS" "trace-HWM" "trace-RSS" "max-RSS" "seq"
for i in "${!BINS[@]}"; do
  p=${APIDS[$i]}
  seq=$(grep -o "membership [a-z]* [0-9]* of" "$OUT/agent.$i.log" | tail -n 1 | awk '{print $3}')
  if [ "$TRACE" = 1 ]; then
    th=$(status "$p" VmHWM); tr=$(status "$p" VmRSS)
    mx=$(awk -v i="$i" '$1 == i && $2 > m {m = $2} END {print m}' "$T/rss.txt")
  else th=-; tr=-; mx=-; fi
  printf '%-3s %-48s %10s %10s %10s %10s %10s %8s\n' "$i" "${BINS[$i]}" "${SNAP_HWM[$i]}" "${SNAP_RSS[$i]}" "$th" "$tr" "$mx" "$seq/$head"
done
echo "(kB from /proc/PID/status; snap: after the first pass, trace: after the trace and one more pass)"
grep -h "drift:\|failed\|refused" "$OUT"/agent.*.log | head -n 5 || true
if [ -n "$WRAP" ]; then
  for i in "${!BINS[@]}"; do kill -INT "${APIDS[$i]}" 2>/dev/null || true; done
  sleep 3
  for i in "${!BINS[@]}"; do
    [ -e "$OUT/massif.$i.out" ] && echo "massif $i: peak heap $(awk -F= '/^mem_heap_B=/ {h = $2} /^mem_heap_extra_B=/ {if (h + $2 > m) m = h + $2} END {print m}' "$OUT/massif.$i.out") bytes (useful + extra)"
  done
fi
uptime
