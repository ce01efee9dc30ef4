#!/usr/bin/env bash
# Push to published bundles with `ringfence watch` for the 1,000-node
# synthetic cluster (30,000 pods, 500 policies, Linux nodes): the first
# publication renders every node; then one policy changes per push and the
# time until the new generation is current is measured, with the nodes
# re-rendered; then the same after a restart. See compiler/gitops/benches/watch.rs.
#
#   bench/watch.sh            (release build; uses $CARGO_TARGET_DIR if set)
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo bench -p ringfence-gitops --bench watch
