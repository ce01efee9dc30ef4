#!/usr/bin/env bash
# A tour of ringfence on policies-example/: check, matrix, explain, render,
# keys, signed bundles, verification, a plan between two commits, flow
# analysis, discovery — and, as root, the agent enforcing one node's bundle in
# network namespaces, with one allowed and one denied connection for real.
#
#   ./demo.sh            (as root for the enforcement part: sudo ./demo.sh)
#
# Everything it writes stays in ./demo-out (or $DEMO_OUT) for you to open.
set -euo pipefail
cd "$(dirname "$0")"

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
step() { printf '\n'; bold "== $1"; printf '$ %s\n' "${*:2}"; }
# trim N: the first N lines of stdin, then how many were left out.
trim() { awk -v n="$1" 'NR <= n { print } END { if (NR > n) printf "… %d more lines\n", NR - n }'; }

bold "== Building ringfence and ringfence-agent (release; the first build takes a few minutes)"
cargo build --release --bins
target="${CARGO_TARGET_DIR:-target}/release"
RF="$target/ringfence"
AGENT="$target/ringfence-agent"
EX=policies-example
INV=$EX/inventory/prod-eu1.json
TRIVY=()  # one --trivy per report: every flag takes one value
for f in "$EX"/trivy/*.json; do TRIVY+=(--trivy "$f"); done
OUT="${DEMO_OUT:-$PWD/demo-out}"
rm -rf "$OUT" && mkdir -p "$OUT"

step "Validate the intent" ringfence check $EX
"$RF" check $EX

step "Every allowed connection (the first 15 lines)" ringfence matrix $EX --inventory $INV --trivy …
"$RF" matrix $EX --inventory $INV "${TRIVY[@]}" > "$OUT/matrix.txt"
trim 15 < "$OUT/matrix.txt"
echo "(all of it: $OUT/matrix.txt)"

step "Why may the frontend reach the cart?" ringfence explain … --from shop/frontend --to shop/cart --port 7070
"$RF" explain $EX --inventory $INV "${TRIVY[@]}" --from shop/frontend --to shop/cart --proto tcp --port 7070

step "…and why may the cart not reach the database?" ringfence explain … --from shop/cart --to shop-data/postgres --port 5432
"$RF" explain $EX --inventory $INV "${TRIVY[@]}" --from shop/cart --to shop-data/postgres --proto tcp --port 5432

step "Render every node's rules (nftables for Linux, Windows Firewall for Windows)" ringfence render … --out render
"$RF" render $EX --inventory $INV "${TRIVY[@]}" --out "$OUT/render"
find "$OUT/render" -type f | sort | sed "s|$OUT/||"
trim 25 < "$OUT/render/prod-eu1-linux-a/rules.nft"

step "A signing key" ringfence keygen --out key
"$RF" keygen --out "$OUT/key"

step "Signed bundles, one per node" ringfence compile … --key key.key --out bundles
"$RF" compile $EX --inventory $INV "${TRIVY[@]}" --key "$OUT/key.key" --out "$OUT/bundles" --expires 30d
ls -l "$OUT/bundles"

step "Verify a bundle as the agent will" ringfence verify bundles/prod-eu1-linux-a.bundle --trust key.pub --node prod-eu1-linux-a
"$RF" verify "$OUT/bundles/prod-eu1-linux-a.bundle" --trust "$OUT/key.pub" --node prod-eu1-linux-a \
    --index "$OUT/bundles/index.json"

step "A tampered copy is refused (exit 1)" ringfence verify tampered.bundle …
python3 - "$OUT/bundles/prod-eu1-linux-a.bundle" "$OUT/tampered.bundle" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); d[len(d) // 2] ^= 1
open(sys.argv[2], 'wb').write(bytes(d))
PY
"$RF" verify "$OUT/tampered.bundle" --trust "$OUT/key.pub" --node prod-eu1-linux-a || echo "(exit $?)"

step "What a change would do: plan between two commits" ringfence plan --from HEAD~1 --to HEAD …
rm -rf "$OUT/repo" && git init -q "$OUT/repo" && cp $EX/*.kdl "$OUT/repo/"
git() { command git -C "$OUT/repo" -c user.email=demo@example.com -c user.name=demo "$@"; }
git add -A && git commit -qm base
sed -i 's/allow "cart-to-cache" from="cart" to="shop-cache" proto="tcp" ports=6379/allow "cart-to-cache" from="cart" to="shop-cache" proto="tcp" ports="6379-6380"/' "$OUT/repo/20-shop.kdl"
git commit -qam "cache: open the replica port"
unset -f git
"$RF" plan --from HEAD~1 --to HEAD "$OUT/repo" --inventory $INV "${TRIVY[@]}"

step "Judge a day of observed flows against the policy" ringfence analyze … --flows $EX/flows/one-day.jsonl
"$RF" analyze $EX --inventory $INV "${TRIVY[@]}" --flows $EX/flows/one-day.jsonl > "$OUT/analysis.txt" || true
trim 30 < "$OUT/analysis.txt"
"$RF" analyze $EX --inventory $INV "${TRIVY[@]}" --flows $EX/flows/one-day.jsonl \
    --format html --out "$OUT/analysis.html" || true
echo "(all of it: $OUT/analysis.txt; the HTML report, to open in a browser: $OUT/analysis.html)"

step "Discover policy from the same flows" ringfence discover … --out discovered
"$RF" discover --inventory $INV --flows $EX/flows/one-day.jsonl --out "$OUT/discovered" --granularity coarse
# The policies written for the shop namespace (the filters come first in the file).
f="$OUT/discovered/prod-eu1/shop.kdl"
printf -- '--- %s, from its policies on\n' "${f#"$OUT"/}"
sed -n '/^policies /,$p' "$f" | trim 25
echo "(all of it: $OUT/discovered/)"

if [ "$(id -u)" = 0 ] && command -v nft >/dev/null; then
    # One node of the example (prod-eu1-linux-a) as a network namespace, three
    # of its pods as namespaces routed through it, the agent applying the
    # node's signed bundle there, and real TCP connections between the pods.
    P="${DEMO_NETNS_PREFIX:-rfdemo}$$"
    NODE=$P-node
    listeners=()
    cleanup() {
        [ ${#listeners[@]} -eq 0 ] || kill "${listeners[@]}" 2>/dev/null
        for ns in $NODE $P-frontend $P-catalog $P-postgres; do ip netns del "$ns" 2>/dev/null; done
    }
    trap cleanup EXIT
    ip netns add $NODE
    ip netns exec $NODE sysctl -qw net.ipv4.ip_forward=1
    ip -n $NODE link set lo up
    pod() { # pod NAME IP: a pod namespace behind a veth, routed by the node
        ip netns add "$P-$1"
        ip link add "v-$1" netns $NODE type veth peer name eth0 netns "$P-$1"
        ip -n "$P-$1" addr add "$2/32" dev eth0
        ip -n "$P-$1" link set lo up && ip -n "$P-$1" link set eth0 up
        ip -n "$P-$1" route add 10.244.1.1 dev eth0 && ip -n "$P-$1" route add default via 10.244.1.1
        ip -n $NODE addr add 10.244.1.1/32 dev "v-$1" && ip -n $NODE link set "v-$1" up
        ip -n $NODE route add "$2/32" dev "v-$1"
    }
    pod frontend 10.244.1.13
    pod catalog 10.244.1.14
    pod postgres 10.244.1.16
    listen() { # listen NS PORT: answer every connection with a line
        ip netns exec "$1" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen()
while True:
    c, _ = s.accept(); c.sendall(b"hello from " + sys.argv[2].encode() + b"\n"); c.close()' "$2" "$3" &
        listeners+=($!)
    }
    listen $P-catalog 3550 catalog
    listen $P-postgres 5432 postgres
    sleep 0.5
    connect() { # connect FROM-NS IP PORT
        ip netns exec "$1" python3 -c '
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    print("  connected:", s.recv(64).decode().strip())
except OSError as e:
    print("  no connection:", "dropped (no answer in 2 s)" if isinstance(e, socket.timeout) else e)' "$2" "$3"
    }

    step "The agent applies node prod-eu1-linux-a's bundle (in a network namespace)" ringfence-agent apply …
    ip netns exec $NODE "$AGENT" apply --bundle "$OUT/bundles/prod-eu1-linux-a.bundle" \
        --trust "$OUT/key.pub" --node prod-eu1-linux-a --state "$OUT/state"
    ip netns exec $NODE nft list tables

    step "Allowed: shop/frontend -> shop/catalog tcp/3550 (policy frontend-to-catalog)" connect frontend 10.244.1.14 3550
    connect $P-frontend 10.244.1.14 3550
    step "Denied: shop/frontend -> shop-data/postgres tcp/5432 (no policy allows it)" connect frontend 10.244.1.16 5432
    connect $P-frontend 10.244.1.16 5432
    step "The rules that decided, with their counters" nft list table inet ringfence "| grep …"
    ip netns exec $NODE nft list table inet ringfence |
        grep -E 'comment "(frontend-to-catalog|catch-all-egress)' | grep -v 'packets 0 ' | sed 's/^\s*/  /' | trim 8 || true

    step "Agent status" ringfence-agent status --state state
    "$AGENT" status --state "$OUT/state"
else
    printf '\n(run as root — sudo ./demo.sh — to see the agent enforce a bundle: one allowed and one denied connection between pods in network namespaces)\n'
fi
printf '\nEverything the demo wrote is in %s\n' "$OUT"
