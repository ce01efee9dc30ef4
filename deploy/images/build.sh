#!/usr/bin/env bash
# Build the two container images FROM scratch with Debian's buildah, from the
# release binaries already built on this machine and the shared libraries they
# load (read with ldd), so no base image is pulled:
#
#   ringfence-agent:VERSION   ringfence-agent, nft (which it drives) and their libraries
#   ringfence:VERSION         the CLI (check, compile, watch --serve, ...), its
#                             libraries and the CA certificates for https Git remotes
#
#   cargo build --release --bins && deploy/images/build.sh [--test] [--push REGISTRY]
#
# --test runs `--version` in each image (buildah run, chroot isolation: see
# deploy/README.md for why not `podman run` here). --push REGISTRY tags and
# pushes both (e.g. --push registry.example/ringfence). The binaries are
# stripped of debug info and symbols on the way in (what `cargo build --profile dist` gives).
set -euo pipefail
cd "$(dirname "$0")/../.."

test=0 push=""
while [ $# -gt 0 ]; do
    case $1 in
        --test) test=1 ;;
        --push) push=${2:?--push needs a registry}; shift ;;
        *) echo "usage: $0 [--test] [--push REGISTRY]" >&2; exit 2 ;;
    esac
    shift
done
command -v buildah >/dev/null || { echo "images: buildah is missing (apt-get install buildah)" >&2; exit 2; }
bin="${CARGO_TARGET_DIR:-target}/release"
for b in ringfence ringfence-agent; do
    [ -x "$bin/$b" ] || { echo "images: $bin/$b is not built (cargo build --release --bins)" >&2; exit 2; }
done
nft=$(command -v nft) || { echo "images: nft is missing (apt-get install nftables)" >&2; exit 2; }
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# image NAME ENTRYPOINT SRC:DEST...: a scratch image holding each SRC at DEST,
# the shared libraries the ELF ones load (at their host paths), and ENTRYPOINT.
image() {
    local name=$1 entry=$2; shift 2
    local root="$work/$name" pair src dest lib c
    mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
    for pair in "$@"; do
        src=${pair%%:*} dest=${pair#*:}
        install -D -m 0644 "$src" "$root$dest"
        [ -x "$src" ] || continue
        chmod 0755 "$root$dest"
        objcopy --strip-all "$root$dest"
        for lib in $(ldd "$src" | grep -o '/[^ ]*' | sort -u); do
            # 0755: the dynamic loader among them must be executable.
            [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
        done
    done
    c=$(buildah from scratch)
    buildah copy --quiet "$c" "$root" / >/dev/null
    buildah config --entrypoint "[\"$entry\"]" --cmd '["--help"]' \
        --label org.opencontainers.image.title="$name" \
        --label org.opencontainers.image.version="$version" \
        --label org.opencontainers.image.licenses=Apache-2.0 "$c"
    buildah commit --quiet --rm "$c" "localhost/$name:$version" >/dev/null
    printf '%-24s %4s MB  (%s)\n' "$name:$version" "$(du -sm "$root" | cut -f1)" \
        "$(cd "$root" && find . -type f ! -path './etc/*' | sed 's|^\.||' | sort | tr '\n' ' ')"
}

step() { printf -- '-- %s\n' "$*"; }
step "building FROM scratch"
image ringfence-agent /usr/local/bin/ringfence-agent \
    "$bin/ringfence-agent:/usr/local/bin/ringfence-agent" "$nft:/usr/sbin/nft" \
    /etc/protocols:/etc/protocols /etc/services:/etc/services
cli_files=("$bin/ringfence:/usr/local/bin/ringfence" /etc/protocols:/etc/protocols)
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] && cli_files+=("$certs:$certs")
image ringfence /usr/local/bin/ringfence "${cli_files[@]}"

if [ $test = 1 ]; then
    # podman run needs a runtime (crun) that can set rlimits and cgroups; a
    # container without CAP_SYS_RESOURCE, as here, cannot. buildah's chroot
    # isolation runs the image's own files with no runtime at all.
    for pair in ringfence-agent:/usr/local/bin/ringfence-agent ringfence:/usr/local/bin/ringfence; do
        name=${pair%%:*} entry=${pair#*:}
        got=$(buildah inspect --format '{{index .OCIv1.Config.Entrypoint 0}}' "localhost/$name:$version")
        [ "$got" = "$entry" ] || { echo "images: $name's entrypoint is $got, not $entry" >&2; exit 1; }
        c=$(buildah from --quiet "localhost/$name:$version")
        out=$(buildah run --isolation chroot "$c" -- "$entry" --version) || { buildah rm "$c" >/dev/null; exit 1; }
        if [ "$name" = ringfence-agent ]; then
            out="$out; $(buildah run --isolation chroot "$c" -- /usr/sbin/nft --version)" || { buildah rm "$c" >/dev/null; exit 1; }
        fi
        buildah rm "$c" >/dev/null
        step "$name:$version runs: $out"
        case $out in *"$version"*) ;; *) echo "images: $name --version did not say $version" >&2; exit 1 ;; esac
    done
fi

if [ -n "$push" ]; then
    for name in ringfence-agent ringfence; do
        buildah push "localhost/$name:$version" "docker://$push/$name:$version"
    done
fi
