# Sourced first by every benchmark: strict mode, the repository root as the
# working directory, and the target directory (shared by default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/ringfence/target}

# CPU ticks (user + system) a process has used; CLK_TCK of them a second.
HZ=$(getconf CLK_TCK)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Wait until process $1 is idle: under 5 % of a core for 3 s in a row (at
# most 10 min).
until_idle() {
  local quiet=0 prev now
  prev=$(ticks "$1")
  for _ in $(seq 1 600); do
    sleep 1; now=$(ticks "$1")
    if [ $((now - prev)) -le $((HZ / 20)) ]; then quiet=$((quiet + 1)); [ $quiet -ge 3 ] && return; else quiet=0; fi
    prev=$now
  done
}
