#!/usr/bin/env bash
# Build the backend plugins into dist/, or with --check rebuild them and fail
# if dist/ differs. See README.md ("Building and reproducibility").
#
#   plugins/build.sh           rebuild dist/*.wasm, dist/test/*.wasm, dist/SHA256SUMS, dist/SOURCES
#   plugins/build.sh --check   rebuild into a temp dir; exit 1 if anything differs
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$here"

check=0
case "${1:-}" in
    --check) check=1 ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

target=wasm32-unknown-unknown
# rustup's wasm32 target if installed, else Debian's rustc-web with -Zbuild-std.
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    toolchain="rustup $(rustc --version)"
    sysroot=$(rustc --print sysroot)
    cargo=(cargo build --release --locked --target "$target")
elif [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
    # /usr/bin/cargo runs the first rustc on PATH; make it Debian's.
    export PATH="/usr/bin:$PATH" RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1
    toolchain="debian $(/usr/bin/rustc --version)"
    sysroot=$(/usr/bin/rustc --print sysroot)
    cargo=(/usr/bin/cargo build --release --locked -Zbuild-std=std,panic_abort --target "$target")
else
    echo "error: no wasm32 toolchain: install rustup's $target target, or Debian's rustc-web, cargo-web, rust-web-src and lld" >&2
    exit 2
fi

# Output must not depend on where the checkout, the registry or the
# toolchain live. Remapping paths is not enough: cargo hashes the absolute
# path of `schema/` (outside this workspace) into symbol names, which moves
# code around. So the working tree's sources are copied to one fixed place
# and built there (one build at a time).
build_root=/tmp/ringfence-plugin-build
mkdir -p "$build_root"
exec 9>"$build_root/lock"
flock 9
src=$build_root/src
rm -rf "$src" && mkdir -p "$src"
# Extracted with fresh times (-m): the shared target dir must never take an
# older checkout's files for already built.
(cd "$repo" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -m -C "$src" -xf -
cd "$src/plugins"
cargo_home=${CARGO_HOME:-$HOME/.cargo}
export RUSTFLAGS="--remap-path-prefix=$src=/ringfence --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$sysroot=/rustc ${PLUGIN_RUSTFLAGS:-}"
export CARGO_TARGET_DIR="${PLUGINS_TARGET_DIR:-$build_root/target}"
export SOURCE_DATE_EPOCH=0
out_dir=$CARGO_TARGET_DIR/$target/release

if [ $check = 1 ]; then
    dest=$(mktemp -d)
    trap 'rm -rf "$dest"' EXIT
else
    dest=$here/dist
fi
mkdir -p "$dest/test"

echo "building plugins with $toolchain" >&2
"${cargo[@]}" -p ringfence-nftables -p ringfence-windows-firewall -p ringfence-example-csv
cp "$out_dir/ringfence_nftables.wasm" "$dest/nftables.wasm"
cp "$out_dir/ringfence_windows_firewall.wasm" "$dest/windows-firewall.wasm"
cp "$out_dir/ringfence_example_csv.wasm" "$dest/example-csv.wasm"
for f in loop memory-bomb panic garbage wrong-shape bad-artifact escape out-of-bounds imports wrong-abi; do
    "${cargo[@]}" -p ringfence-hostile --features "$f"
    cp "$out_dir/ringfence_hostile.wasm" "$dest/test/$f.wasm"
done

(cd "$dest" && sha256sum ./*.wasm test/*.wasm | sed 's# \./# #') > "$dest/SHA256SUMS"
# The sources the modules are built from, so a test can tell (without a wasm
# toolchain) that dist/ is stale: compiler/plugin-host/tests/host.rs.
(cd "$repo" && find plugins/sdk plugins/nftables plugins/windows-firewall plugins/example-csv \
    plugins/hostile schema/src schema/nft/src -type f \( -name '*.rs' -o -name Cargo.toml \) -not -path '*/target/*' |
    LC_ALL=C sort | xargs sha256sum && sha256sum plugins/Cargo.toml plugins/Cargo.lock schema/Cargo.toml schema/nft/Cargo.toml) \
    > "$dest/SOURCES"
echo "$toolchain" > "$dest/TOOLCHAIN"

if [ $check = 1 ]; then
    if [ "$(cat "$here/dist/TOOLCHAIN")" != "$toolchain" ]; then
        echo "error: dist/ was built with '$(cat "$here/dist/TOOLCHAIN")', this machine has '$toolchain':" >&2
        echo "       byte-for-byte comparison needs the same compiler (README.md)" >&2
        exit 1
    fi
    if ! diff -u "$here/dist/SOURCES" "$dest/SOURCES" || ! diff -u "$here/dist/SHA256SUMS" "$dest/SHA256SUMS"; then
        echo "error: plugins/dist/ is out of date: run plugins/build.sh and commit dist/" >&2
        exit 1
    fi
    echo "plugins/dist/ matches a fresh build" >&2
else
    cat "$dest/SHA256SUMS"
fi
