#!/usr/bin/env bash
# The whole test suite. Run it as root: the enforcement tests build clusters
# out of network namespaces and load real nftables rulesets.
#
#   sudo ./tests/run.sh
#
# Steps: build, every crate's tests (unit, integration, end to end), the
# plugins' own tests, a check that plugins/dist/ is what plugins/ builds, a
# short fuzz run of the intent front end.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
    echo "tests/run.sh: run as root (the enforcement tests create network namespaces)" >&2
    exit 2
fi
for tool in nft ip clickhouse-server clickhouse-client; do
    command -v "$tool" >/dev/null || { echo "tests/run.sh: $tool is missing (apt-get install nftables iproute2 clickhouse-server clickhouse-client)" >&2; exit 2; }
done

step "build"
cargo build --release --workspace --bins

step "tests"
cargo test --release --workspace

step "plugins: unit tests (native)"
(cd plugins && CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}/plugins-native" cargo test --release --quiet)

step "plugins: dist/ is what plugins/ builds"
status=0
plugins/build.sh --check || status=$?
if [ $status = 2 ] && [ -z "${RINGFENCE_CI:-}" ]; then
    echo "(skipped: no wasm32 toolchain here; .ci/run installs one)"
elif [ $status != 0 ]; then
    exit $status
fi

step "fuzz: the intent front end (30 s)"
if cargo +nightly --version >/dev/null 2>&1 && cargo fuzz --version >/dev/null 2>&1; then
    fuzz_target="${CARGO_TARGET_DIR:-$PWD/target}/fuzz"
    cargo +nightly fuzz run --target-dir "$fuzz_target" parse_validate -- -max_total_time=30 -max_len=4096
elif [ -n "${RINGFENCE_CI:-}" ]; then
    echo "fuzzing needs the nightly toolchain and cargo-fuzz" >&2
    exit 2
else
    echo "(skipped: needs the nightly toolchain and cargo-fuzz)"
fi

step "all tests passed"
