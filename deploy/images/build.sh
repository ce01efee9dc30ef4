#!/usr/bin/env bash
# Build the two container images FROM scratch with Debian's buildah, from the
# release binaries already built on this machine and the shared libraries they
# load (read with ldd), so no base image is pulled:
#
#   ringfence-agent:VERSION   ringfence-agent, nft (which it drives) and their libraries
#   ringfence:VERSION         the CLI (check, compile, watch, collect, ...), its
#                             libraries, the CA certificates for https Git remotes,
#                             and a static busybox (sh) for CI job scripts
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

# stage NAME SRC:DEST...: put each SRC at DEST in NAME's root, with the
# shared libraries the ELF ones load (at their host paths), stripped.
stage() {
    local name=$1; shift
    local root="$work/$name" pair src dest lib
    mkdir -p "$root/tmp" && chmod 1777 "$root/tmp"
    for pair in "$@"; do
        src=${pair%%:*} dest=${pair#*:}
        install -D -m 0644 "$src" "$root$dest"
        [ -x "$src" ] || continue
        chmod 0755 "$root$dest"
        objcopy --strip-all "$root$dest"
        for lib in $(ldd "$src" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
            # 0755: the dynamic loader among them must be executable.
            [ -e "$root$lib" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
        done
    done
}

# commit NAME ENTRYPOINT: NAME's root as a scratch image.
commit() {
    local name=$1 entry=$2 root="$work/$1" c
    c=$(buildah from scratch)
    buildah copy --quiet "$c" "$root" / >/dev/null
    buildah config --entrypoint "[\"$entry\"]" --cmd '["--help"]' \
        --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
        --label org.opencontainers.image.title="$name" \
        --label org.opencontainers.image.version="$version" \
        --label org.opencontainers.image.licenses=Apache-2.0 "$c"
    buildah commit --quiet --rm "$c" "localhost/$name:$version" >/dev/null
    printf '%-24s %4s MB  (%s)\n' "$name:$version" "$(du -sm "$root" | cut -f1)" \
        "$(cd "$root" && find . -type f ! -path './etc/*' | sed 's|^\.||' | sort | tr '\n' ' ')"
}

step() { printf -- '-- %s\n' "$*"; }
step "building FROM scratch"
stage ringfence-agent \
    "$bin/ringfence-agent:/usr/local/bin/ringfence-agent" "$nft:/usr/sbin/nft" \
    /etc/protocols:/etc/protocols /etc/services:/etc/services
commit ringfence-agent /usr/local/bin/ringfence-agent
cli_files=("$bin/ringfence:/usr/local/bin/ringfence" /etc/protocols:/etc/protocols)
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] && cli_files+=("$certs:$certs")
stage ringfence "${cli_files[@]}"
# CI systems run job scripts with a shell inside the image (GitLab's runner
# does): a static busybox gives the CLI image sh and the usual tools.
if [ -x /bin/busybox ]; then
    install -D -m 0755 /bin/busybox "$work/ringfence/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ -e "$work/ringfence/bin/$applet" ] || ln -s busybox "$work/ringfence/bin/$applet"
    done
else
    echo "images: no /bin/busybox (apt-get install busybox-static): the CLI image has no shell" >&2
fi
commit ringfence /usr/local/bin/ringfence

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
        if [ "$name" = ringfence ]; then
            out="$out; $(buildah run --isolation chroot "$c" -- /bin/sh -c 'echo sh runs ringfence: $(ringfence --version)')" || { buildah rm "$c" >/dev/null; exit 1; }
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
