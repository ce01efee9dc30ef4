#!/usr/bin/env bash
# nft check and load time of ringfence's output vs Aerleon's for the same
# policy (research/compiler.md §1.7: 50 tokens x (400 v4 + 100 v6 /32s),
# 200 terms, `nftables mixed INPUT`), side by side in one run. Needs root
# (a throwaway network namespace), python3 and network access to PyPI the
# first time (Aerleon is installed into bench/aerleon/.venv).
#
#   bench/aerleon/run.sh [RUNS]      # default 5 runs each, best reported
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
runs=${1:-5}
work=$(mktemp -d)
ns="rf-aerleon-$$"
cleanup() { ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

venv=${AERLEON_VENV:-$here/.venv}
if [ ! -x "$venv/bin/aclgen" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q aerleon
fi
aerleon_version=$("$venv/bin/pip" show aerleon | sed -n 's/^Version: //p')

now() { date +%s%N; }
secs() { python3 -c "print(f'{($2 - $1) / 1e9:.3f}')"; }

python3 "$here/gen.py" "$work/aerleon"
t0=$(now)
(cd "$work/aerleon" && "$venv/bin/aclgen" --base_directory=policies --definitions_directory=def \
    --output_directory=out >/dev/null 2>&1)
t1=$(now)
aclgen_s=$(secs "$t0" "$t1")
aer="$work/aerleon/out/bench.nft"

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/ringfence/target}
(cd "$repo" && cargo build --release -q -p ringfence-plugin-host --example aerleon_equivalent)
t0=$(now)
"$CARGO_TARGET_DIR/release/examples/aerleon_equivalent" "$work/ringfence.nft" 2>/dev/null
t1=$(now)
ours_gen_s=$(secs "$t0" "$t1")
ours="$work/ringfence.nft"

ip netns add "$ns"
best() { sort -n | head -1; }
# best-of-N time of a command in the namespace; $1 = command to run before each (untimed)
measure() {
    local setup=$1; shift
    for _ in $(seq "$runs"); do
        ip netns exec "$ns" sh -c "$setup" >/dev/null 2>&1 || true
        local a; a=$(now)
        ip netns exec "$ns" "$@" >/dev/null
        local b; b=$(now)
        secs "$a" "$b"
    done | best
}
flush="nft flush ruleset"
aer_check=$(measure "$flush" nft -c -f "$aer")
aer_load=$(measure "$flush" nft -f "$aer")
aer_rules=$(ip netns exec "$ns" nft list ruleset | grep -c ' accept$' || true)
ours_check=$(measure "$flush" nft -c -f "$ours")
ours_load=$(measure "$flush" nft -f "$ours")
ours_reload=$(measure "true" nft -f "$ours")
ours_rules=$(ip netns exec "$ns" nft -a list table inet ringfence | grep -c 'comment "t[0-9]' || true)

size() { python3 -c "import os,sys; print(f'{os.path.getsize(sys.argv[1]) / 1e6:.2f} MB')" "$1"; }
ratio() { python3 -c "print(f'{$1 / $2:.1f}x')"; }
echo "policy: 50 tokens x (400 IPv4 + 100 IPv6 addresses), 200 terms, 2 TCP port ranges each; best of $runs"
printf '%-22s %10s %12s %12s %12s %16s\n' "" "file" "generate" "nft -c -f" "nft -f" "reload (nft -f)"
printf '%-22s %10s %11ss %11ss %11ss %16s\n' "aerleon $aerleon_version" "$(size "$aer")" "$aclgen_s" "$aer_check" "$aer_load" "additive"
printf '%-22s %10s %11ss %11ss %11ss %15ss\n' "ringfence nftables" "$(size "$ours")" "$ours_gen_s" "$ours_check" "$ours_load" "$ours_reload"
printf '%-22s %10s %12s %12s %12s\n' "speed-up" "" "" "$(ratio "$aer_check" "$ours_check")" "$(ratio "$aer_load" "$ours_load")"
echo "rules loaded: aerleon $aer_rules accept rules; ringfence $ours_rules term rules (one per term and family)"
