#!/usr/bin/env bash
# Agent figures: verify + stage + apply of a bundle for a node with 200 local
# pods and 5,000 peer addresses (agent time split from nft time), idle RSS
# and CPU of a running `run` loop, release binary size. Run as root.
#
#   sudo bench/agent.sh            # PODS=200 PEERS=5000 RUNS=5 IDLE=60 [AGENT_BIN=FILE]
. "$(dirname "$0")/lib.sh"
PODS="${PODS:-200}" PEERS="${PEERS:-5000}" RUNS="${RUNS:-5}" IDLE="${IDLE:-60}"

cargo build --release -q -p ringfence-agent --bin ringfence-agent --example gen_bundle
# AGENT_BIN=FILE: measure that agent binary (before/after) instead of this build's.
BIN="${AGENT_BIN:-$CARGO_TARGET_DIR/release/ringfence-agent}"
GEN="$CARGO_TARGET_DIR/release/examples/gen_bundle"

WORK="$(mktemp -d)"
NS="rf-bench-$$"
AGENT_PID=""
cleanup() {
    [ -n "$AGENT_PID" ] && kill "$AGENT_PID" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
ip netns add "$NS"

echo "== apply: $PODS pods, $PEERS peers, $RUNS generations"
"$GEN" "$WORK/src" 1 "$PODS" "$PEERS"
echo "rules.nft: $(wc -c <"$WORK/src/rules.nft") bytes, $(wc -l <"$WORK/src/rules.nft") lines; bundle: $(wc -c <"$WORK/src/n1.bundle") bytes"
for g in $(seq 1 "$RUNS"); do
    "$GEN" "$WORK/src" "$g" "$PODS" "$PEERS"
    "$BIN" apply --node n1 --netns "$NS" --trust "$WORK/src/k.pub" --state "$WORK/state" \
        --bundle "$WORK/src/n1.bundle" --format json 2>/dev/null
done | python3 -c '
import json, statistics, sys
rows = [json.loads(l) for l in sys.stdin]
assert all(r["outcome"] == "applied" for r in rows), rows
for k in ("total_ms", "tool_ms", "agent_ms"):
    v = [r["timings"][k] for r in rows]
    print(f"{k:9} median {statistics.median(v):8.1f}  min {min(v):8.1f}  max {max(v):8.1f}")
'
echo "== nft alone on the same file (check + load), for comparison"
python3 - "$NS" "$WORK/src/rules.nft" <<'PY'
import subprocess, sys, time
ns, f = sys.argv[1], sys.argv[2]
for label, args in (("nft -c -f", ["-c", "-f", f]), ("nft -f", ["-f", f]), ("nft -j list", ["-j", "list", "table", "inet", "ringfence"])):
    t = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "nft", *args], check=True, stdout=subprocess.DEVNULL)
        t.append((time.perf_counter() - t0) * 1e3)
    print(f"{label:12} {min(t):8.1f} ms (best of 3, incl. ip netns exec)")
PY

echo "== idle run loop (interval 10 s, bundle unchanged) for ${IDLE}s"
"$BIN" run --node n1 --netns "$NS" --trust "$WORK/src/k.pub" --state "$WORK/state" \
    --source "$WORK/src" --interval 10 2>"$WORK/run.log" &
AGENT_PID=$!
sleep 3
ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }
T0=$(ticks)
sleep "$IDLE"
T1=$(ticks)
HZ=$(getconf CLK_TCK)
grep -E 'VmRSS|VmHWM' "/proc/$AGENT_PID/status"
python3 -c "print(f'idle CPU: {($T1 - $T0) / $HZ:.2f} s over $IDLE s = {100 * ($T1 - $T0) / $HZ / $IDLE:.3f} %')"

echo "== release binary"
ls -l "$BIN" | awk '{print "size: " $5 " bytes"}'
strip -o "$WORK/stripped" "$BIN" && ls -l "$WORK/stripped" | awk '{print "stripped: " $5 " bytes"}'
