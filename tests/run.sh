#!/usr/bin/env bash
# The whole test suite. Run as root (enforcement tests create network namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --workspace --bins
cargo test --release --workspace
