#!/usr/bin/env bash
# bench/peers/build.sh — build a pinned peer of scripts/bench.sh into the user's cache,
# when it is not there yet, and print the path of its binary.
#
#   bench/peers/build.sh centrifugo   Centrifugo $CENTRIFUGO_VERSION (go install of the
#                                     module at that tag) -> .../centrifugo-<v>/centrifugo
#   bench/peers/build.sh mercure      Caddy with the Mercure hub module, from the small
#                                     main module in bench/peers/mercure/ (go.mod and go.sum
#                                     pin Caddy, Mercure and every dependency)
#                                     -> .../mercure-<v>/caddy
#
# Everything goes under ${XDG_CACHE_HOME:-$HOME/.cache}/sse-server/: the binaries in
# peers/<name>-<version>/, Go's module and build caches in go/ (GOPATH, GOMODCACHE,
# GOCACHE), none in the repo. A peer is built into a temporary directory beside its
# final one and renamed into place, so a build that fails or is interrupted leaves
# nothing half done; a lock keeps two builds of the same peer from racing. The Mercure
# directory also holds a stamp of the module's files (go.mod, go.sum, main.go): when
# they change, the next call rebuilds it.
#
# Needs Go 1.26 and the Go module proxy. The first build of each takes minutes (mostly
# compiling; the time is printed on stderr); later calls only print the path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CENTRIFUGO_VERSION=v6.9.1
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sse-server
PEERS=$CACHE/peers
GODIR=$CACHE/go

usage() {
    echo "usage: bench/peers/build.sh centrifugo|mercure" >&2
    exit 2
}
[ $# = 1 ] || usage

export GOPATH=$GODIR/path GOMODCACHE=$GODIR/mod GOCACHE=$GODIR/build
# The module cache stays deletable with rm -rf; the machine's own Go builds it (a
# go.mod's toolchain line fetches no other); static binaries, as both projects ship.
export GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0
command -v go >/dev/null 2>&1 || { echo "build.sh: no go command (Go 1.26 needed)" >&2; exit 1; }

# build NAME VERSION BINARY STAMP COMMAND...: run COMMAND with $OUTDIR set to a fresh
# temporary directory, which then becomes $PEERS/NAME-VERSION (with STAMP in its file
# `stamp`), unless that directory already holds BINARY with the same stamp.
build() {
    local name=$1 version=$2 binary=$3 stamp=$4
    shift 4
    local dir=$PEERS/$name-$version
    if [ -x "$dir/$binary" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "$dir/$binary"
        return 0
    fi
    mkdir -p "$PEERS" "$GOPATH" "$GOMODCACHE" "$GOCACHE"
    exec 9>"$PEERS/.$name.lock"
    flock 9
    # Another build may have finished while this one waited for the lock.
    if [ -x "$dir/$binary" ] && [ "$(cat "$dir/stamp" 2>/dev/null)" = "$stamp" ]; then
        echo "$dir/$binary"
        return 0
    fi
    OUTDIR=$(mktemp -d "$PEERS/.$name-$version.XXXXXX")
    trap 'rm -rf "$OUTDIR"' EXIT
    echo "build.sh: building $name $version into $dir" >&2
    local t0 t1
    t0=$(date +%s)
    "$@" >&2
    t1=$(date +%s)
    [ -x "$OUTDIR/$binary" ] || { echo "build.sh: $name: no $binary was built" >&2; exit 1; }
    echo "$stamp" >"$OUTDIR/stamp"
    chmod 755 "$OUTDIR" # mktemp made it 700
    echo "build.sh: built $name $version in $((t1 - t0)) s" >&2
    rm -rf "$dir"
    mv -T "$OUTDIR" "$dir"
    trap - EXIT
    echo "$dir/$binary"
}

build_centrifugo() {
    GOBIN=$OUTDIR go install -trimpath \
        -ldflags "-s -w -X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION#v}" \
        "github.com/centrifugal/centrifugo/v6@$CENTRIFUGO_VERSION"
}

build_mercure() {
    (cd "$ROOT/bench/peers/mercure" && go build -mod=readonly -trimpath -ldflags "-s -w" \
        -o "$OUTDIR/caddy" .)
}

case "$1" in
    centrifugo)
        build centrifugo "$CENTRIFUGO_VERSION" centrifugo "$CENTRIFUGO_VERSION" build_centrifugo
        ;;
    mercure)
        mod=$ROOT/bench/peers/mercure
        version=$(awk '$1 == "github.com/dunglas/mercure/caddy" { print $2 }' "$mod/go.mod")
        [ -n "$version" ] || { echo "build.sh: no dunglas/mercure/caddy in $mod/go.mod" >&2; exit 1; }
        stamp=$(cat "$mod/go.mod" "$mod/go.sum" "$mod/main.go" | sha256sum | cut -c1-16)
        build mercure "$version" caddy "$stamp" build_mercure
        ;;
    *) usage ;;
esac
