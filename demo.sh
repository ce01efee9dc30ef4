#!/usr/bin/env bash
# A tour of ringfence on policies-example/: check, matrix, explain, render,
# keys, signed bundles, verification, a plan between two commits, and — as
# root — the agent enforcing one node's bundle in a network namespace.
set -euo pipefail
cd "$(dirname "$0")"

step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; }

cargo build --release --bins -q
target="${CARGO_TARGET_DIR:-target}/release"
RF="$target/ringfence"
AGENT="$target/ringfence-agent"
EX=policies-example
INV=$EX/inventory/prod-eu1.json
TRIVY=$EX/trivy
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"; [ -n "${NS:-}" ] && ip netns del "$NS" 2>/dev/null; true' EXIT

step "Validate the intent" ringfence check $EX
"$RF" check $EX

step "Every allowed connection" ringfence matrix $EX --inventory $INV --trivy $TRIVY/*.json
"$RF" matrix $EX --inventory $INV --trivy $TRIVY/*.json

step "Why may the frontend reach the cart?" ringfence explain … --from shop/frontend --to shop/cart --port 7070
"$RF" explain $EX --inventory $INV --trivy $TRIVY/*.json --from shop/frontend --to shop/cart --proto tcp --port 7070

step "…and why may the cart not reach the database?" ringfence explain … --from shop/cart --to shop-data/postgres --port 5432
"$RF" explain $EX --inventory $INV --trivy $TRIVY/*.json --from shop/cart --to shop-data/postgres --proto tcp --port 5432 || true

step "Render every node's rules (nftables for Linux, Windows Firewall for Windows)" ringfence render …
"$RF" render $EX --inventory $INV --trivy $TRIVY/*.json --out "$OUT/render"
find "$OUT/render" -type f | sort | sed "s|$OUT/||"
head -n 40 "$OUT/render/prod-eu1-linux-a/rules.nft"

step "A signing key" ringfence keygen --out key
"$RF" keygen --out "$OUT/key"

step "Signed bundles, one per node" ringfence compile … --key key.key --out bundles
"$RF" compile $EX --inventory $INV --trivy $TRIVY/*.json --key "$OUT/key.key" --out "$OUT/bundles" --expires 30d
ls -l "$OUT/bundles"

step "Verify a bundle as the agent will" ringfence verify bundles/prod-eu1-linux-a.bundle --trust key.pub --node prod-eu1-linux-a
"$RF" verify "$OUT/bundles/prod-eu1-linux-a.bundle" --trust "$OUT/key.pub" --node prod-eu1-linux-a \
    --index "$OUT/bundles/index.json"

step "A tampered copy is refused" ringfence verify tampered.bundle …
python3 - "$OUT/bundles/prod-eu1-linux-a.bundle" "$OUT/tampered.bundle" <<'PY'
import sys
d = bytearray(open(sys.argv[1], 'rb').read()); d[len(d) // 2] ^= 1
open(sys.argv[2], 'wb').write(bytes(d))
PY
"$RF" verify "$OUT/tampered.bundle" --trust "$OUT/key.pub" --node prod-eu1-linux-a || true

step "What a change would do: plan between two commits" ringfence plan --from HEAD~1 --to HEAD …
git init -q "$OUT/repo" && cp $EX/*.kdl "$OUT/repo/"
( cd "$OUT/repo" && git add -A && git -c user.email=demo@example.com -c user.name=demo commit -qm base )
sed -i 's/allow "cart-to-cache" from="cart" to="shop-cache" proto="tcp" ports=6379/allow "cart-to-cache" from="cart" to="shop-cache" proto="tcp" ports="6379-6380"/' "$OUT/repo/20-shop.kdl"
( cd "$OUT/repo" && git -c user.email=demo@example.com -c user.name=demo commit -qam "cache: open the replica port" )
"$RF" plan --from HEAD~1 --to HEAD "$OUT/repo" --inventory $INV --trivy $TRIVY/*.json

step "Judge a day of observed flows against the policy" ringfence analyze … --flows $EX/flows/one-day.jsonl
"$RF" analyze $EX --inventory $INV --trivy $TRIVY/*.json --flows $EX/flows/one-day.jsonl || true
"$RF" analyze $EX --inventory $INV --trivy $TRIVY/*.json --flows $EX/flows/one-day.jsonl \
    --format html --out "$OUT/analysis.html" || true
echo "(HTML report: $OUT/analysis.html)"

step "Discover policy from the same flows" ringfence discover … --out discovered
"$RF" discover --inventory $INV --flows $EX/flows/one-day.jsonl --out "$OUT/discovered" --granularity coarse
head -n 30 "$OUT"/discovered/*.kdl

if [ "$(id -u)" = 0 ] && command -v nft >/dev/null; then
    NS="ringfence-demo-$$"
    ip netns add "$NS"
    step "The agent applies the node's bundle (in a network namespace)" ringfence-agent apply …
    ip netns exec "$NS" "$AGENT" apply --bundle "$OUT/bundles/prod-eu1-linux-a.bundle" \
        --trust "$OUT/key.pub" --node prod-eu1-linux-a --state "$OUT/state"
    ip netns exec "$NS" nft list tables
    step "Agent status" ringfence-agent status --state state
    "$AGENT" status --state "$OUT/state"
else
    printf '\n(run as root to see the agent apply a bundle in a network namespace)\n'
fi
