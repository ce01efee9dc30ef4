#!/usr/bin/env bash
# `ringfence watch --serve` holding long polls: the synthetic cluster
# (ringfence-synth; --small: 4 nodes) fed as watch events, published with
# --serve, then CLIENTS (1,000) long polls held open on the nodes'
# membership heads by one Python process (a thread each). Prints watch's
# RSS before and with the polls held, and its CPU time. Part of issue 13's
# churn benchmark (the churn trace itself is not generated yet).
#
#   bench/serve.sh [--small] [CLIENTS]     port 24500 (serve helper's range)
. "$(dirname "$0")/lib.sh"
small=""; [ "${1:-}" = --small ] && { small=--small; shift; }
CLIENTS=${1:-1000}; PORT=24500
cargo build --release -q -p ringfence-cli --bin ringfence -p ringfence-testkit --bin ringfence-synth
RF=$CARGO_TARGET_DIR/release/ringfence; SYNTH=$CARGO_TARGET_DIR/release/ringfence-synth
T=$(mktemp -d); trap 'kill ${WPID:-$W} 2>/dev/null || true; rm -rf "$T"' EXIT
"$SYNTH" cluster "$T/c" $small >/dev/null
INV=$(ls "$T"/c/inventory/*.json | head -n 1); CLUSTER=$(basename "$INV" .json)
python3 - "$INV" "$T/ev.jsonl" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
with open(sys.argv[2], "w") as f:
    for o in d["items"]:
        f.write(json.dumps({"type": "ADDED", "object": o}, separators=(",", ":")) + "\n")
PY
git init -q "$T/repo" && cp "$T"/c/intent/*.kdl "$T/repo/" && \
  git -C "$T/repo" add -A && git -C "$T/repo" -c user.name=b -c user.email=b@example.invalid commit -qm base
"$RF" keygen --out "$T/k" >/dev/null 2>&1
/usr/bin/time -v -o "$T/time.txt" "$RF" watch --repo "$T/repo" --branch "$(git -C "$T/repo" branch --show-current)" \
  --inventory-events "$T/ev.jsonl" --events-cluster "$CLUSTER" --key "$T/k.key" --out "$T/pub" \
  --serve 127.0.0.1:$PORT --interval 5 2>"$T/w.log" &
W=$!
for _ in $(seq 1 1200); do [ -e "$T/pub/current/index.json" ] && break; sleep 0.5; done
[ -e "$T/pub/current/index.json" ] || { tail -n 5 "$T/w.log"; echo "nothing published" >&2; exit 2; }
sleep 1
WPID=$(pgrep -P $W -x ringfence || echo $W)
rss() { awk '/VmRSS/ {print $2}' /proc/$WPID/status; }
before=$(rss)
python3 - "$PORT" "$CLIENTS" "$T/pub/membership" "$WPID" <<'PY'
import os, socket, sys, threading, time
port, n, mdir, pid = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
nodes = sorted(os.listdir(mdir))
socks = []
for i in range(n):
    node = nodes[i % len(nodes)]
    head = open(os.path.join(mdir, node, "head")).read().strip()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /membership/{node}/head?after={head}&wait=30 HTTP/1.1\r\nHost: b\r\n\r\n".encode())
    socks.append(s)
time.sleep(3)
threads = int(open(f"/proc/{pid}/status").read().split("Threads:")[1].split()[0])
rss = int(open(f"/proc/{pid}/status").read().split("VmRSS:")[1].split()[0])
print(f"long polls held: {n} over {len(nodes)} node(s); watch threads {threads}; watch RSS {rss} KiB")
for s in socks: s.close()
PY
echo "watch RSS before the polls: $before KiB"
kill $WPID; wait $W 2>/dev/null || true
grep -E "User time|System time|Maximum resident" "$T/time.txt"
uptime
