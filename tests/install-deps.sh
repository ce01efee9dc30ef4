#!/usr/bin/env bash
# Install what the test suite needs on Debian, as root. Both `tests/run.sh` (the
# README's test command) and `.ci/run` call this one script, so a fresh machine
# and CI install the same things. Only missing packages are installed: on a
# machine that has them all, it runs no apt-get at all.
#
#   tests/install-deps.sh          install what is missing
#   tests/install-deps.sh --list   print the packages, install nothing
set -euo pipefail

# Debian package and why the tests need it.
packages=(
    nftables          # enforcement tests: real rulesets in network namespaces
    iproute2          # `ip netns`, veth pairs
    conntrack         # flow capture tests (conntrack -o extended)
    git               # hooks and watch tests drive real repositories
    libssl-dev        # git2's https transport (build)
    pkg-config        # finds libssl (build)
    openssl           # keygen interop test: PKCS#8 keys read and written by the openssl binary
    chromium          # the analysis report's headless-browser screenshot test
    clickhouse-server # flow tables: the tests start their own servers
    clickhouse-client
    buildah           # the container images, built FROM scratch
    busybox-static    #   and the shell in the CLI image (CI job scripts)
    rustc-web         # the wasm32 toolchain for the plugins'
    cargo-web         #   reproducibility check (plugins/build.sh)
    rust-web-src
    rust-web-llvm
    lld-22
)
# kubectl renders deploy/kubernetes (any recent kubectl has kustomize built in);
# Debian's is in kubernetes-client, but a kubectl from elsewhere is fine.
command -v kubectl >/dev/null || packages+=(kubernetes-client)

if [ "${1:-}" = --list ]; then
    printf '%s\n' "${packages[@]}"
    exit 0
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: missing ${missing[*]}; run as root to install them" >&2
        exit 2
    fi
    echo "install-deps: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "install-deps: all ${#packages[@]} Debian packages present"
fi

# The fuzz step: cargo-fuzz (the nightly toolchain comes with rustup).
if ! command -v cargo-fuzz >/dev/null; then
    echo "install-deps: cargo install cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
