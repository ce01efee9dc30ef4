# Sourced first by every benchmark: strict mode, the repository root as the
# working directory, and the target directory (shared by default).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/root/.cache/ringfence/target}
