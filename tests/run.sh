#!/usr/bin/env bash
# The whole test suite, as a fresh Debian machine or CI runs it:
#
#   sudo ./tests/run.sh
#
# Root is needed: it installs missing Debian packages (tests/install-deps.sh,
# the same installer .ci/run uses) and the enforcement tests build clusters out
# of network namespaces and load real nftables rulesets. Every step runs even
# when an earlier one fails; the script fails at the end, naming the steps.
set -uo pipefail
cd "$(dirname "$0")/.."

cat <<'EOF'
tests/run.sh will:
  1. install missing test dependencies (tests/install-deps.sh --list shows them)
  2. build the release binaries
  3. run every crate's tests (cargo test --no-fail-fast: all crates run, then it fails)
  4. run the plugins' own tests and check plugins/dist/ is what plugins/ builds
  5. build the container images FROM scratch and run --version in each
  6. fuzz the intent front end for 30 s
EOF

step() { printf '\n== %s\n' "$*"; }
failed=()
run() { # run NAME CMD...: run a step, remember it if it fails
    local name=$1; shift
    step "$name"
    "$@" || { echo "FAILED: $name" >&2; failed+=("$name"); }
}

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (it installs packages and creates network namespaces)" >&2
    exit 2
fi
step "dependencies"
tests/install-deps.sh || exit 2

step "build"
cargo build --release --workspace --bins || exit 2

run "tests (every crate)" cargo test --release --workspace --no-fail-fast

run "plugins: unit tests (native)" bash -c \
    'cd plugins && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/../target}/plugins-native" cargo test --release --quiet'

plugins_dist() {
    local status=0
    plugins/build.sh --check || status=$?
    if [ $status = 2 ] && [ -z "${RINGFENCE_CI:-}" ]; then
        echo "(skipped: no wasm32 toolchain here; tests/install-deps.sh installs one)"
    else
        return $status
    fi
}
run "plugins: dist/ is what plugins/ builds" plugins_dist

run "images: build FROM scratch, run --version" deploy/images/build.sh --test

fuzz() {
    if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
        local fuzz_target="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
        cargo +nightly fuzz run --target-dir "$fuzz_target" parse_validate -- -max_total_time=30 -max_len=4096
    elif [ -n "${RINGFENCE_CI:-}" ]; then
        echo "fuzzing needs the nightly toolchain and cargo-fuzz" >&2
        return 2
    else
        echo "(skipped: needs the nightly toolchain and cargo-fuzz)"
    fi
}
run "fuzz: the intent front end (30 s)" fuzz

if [ ${#failed[@]} -gt 0 ]; then
    step "FAILED: ${failed[*]}"
    exit 1
fi
step "all tests passed"
