#!/usr/bin/env bash
# deploy/check.sh - checks every file of deploy/ with the tool that reads it, and says
# which tool checked which file:
#
#   deploy/nginx/*.conf            nginx -t, on a copy with a throwaway certificate
#                                  (TLS server as written, and the plain-HTTP variant)
#   deploy/systemd/*.service       systemd-analyze verify (offline, in a scratch root),
#                                  plus the `security --offline` exposure score
#   deploy/kubernetes/*.yaml       kubernetes-validate --strict (PyPI; it bundles the
#                                  API schemas) for each version in $K8S_VERSIONS
#   deploy/Caddyfile               caddy validate, when a Caddy binary is there or with
#                                  --caddy (builds Caddy $CADDY_VERSION with Go: minutes)
#
#   deploy/check.sh [--caddy] [--no-install]
#
# Installs what is missing like scripts/prereqs.sh does: nginx-light, systemd and
# python3-venv with apt-get; kubernetes-validate into .local/deploy-venv; Caddy into
# ~/.cache/sse-server/peers/. --no-install skips a check whose tool is missing instead.
# Exit status: 0 when every check that ran passed, 1 when one failed. A skipped check
# is printed as SKIP and does not fail the run.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPLOY=$ROOT/deploy
# shellcheck source=../scripts/prereqs.sh
source "$ROOT/scripts/prereqs.sh"

CADDY_VERSION=v2.11.3
KUBERNETES_VALIDATE_VERSION=1.37.0
K8S_VERSIONS=${K8S_VERSIONS:-"1.31.0 1.37.0"}
VENV=$ROOT/.local/deploy-venv
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sse-server

build_caddy=0
install=1
for arg in "$@"; do
    case $arg in
    --caddy) build_caddy=1 ;;
    --no-install) install=0 ;;
    -h | --help)
        sed -n '2,20p' "$0"
        exit 0
        ;;
    *)
        echo "usage: deploy/check.sh [--caddy] [--no-install]" >&2
        exit 2
        ;;
    esac
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

passed=0
failed=0
skipped=0
pass() {
    printf 'PASS  %s\n' "$*"
    passed=$((passed + 1))
}
fail() {
    printf 'FAIL  %s\n' "$*"
    failed=$((failed + 1))
}
skip() {
    printf 'SKIP  %s\n' "$*"
    skipped=$((skipped + 1))
}
# indent: the tool's own output, under the line that names it.
indent() { sed 's/^/      | /'; }

# need COMMAND APT-PACKAGE: true when COMMAND is there, after installing it if allowed.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    [ "$install" = 1 ] || return 1
    prereqs_apt "$2" >/dev/null 2>&1 || true
    command -v "$1" >/dev/null 2>&1
}

# ---------------------------------------------------------------- nginx
check_nginx() {
    local files="deploy/nginx/nginx.conf, sse-server.conf, sse-server-locations.conf"
    if ! need nginx nginx-light || ! need openssl openssl; then
        skip "$files: no nginx (apt-get install nginx-light)"
        return
    fi
    local version prefix=$TMP/nginx
    version=$(nginx -v 2>&1 | sed -E 's|.*nginx/([0-9.]+).*|\1|')
    mkdir -p "$prefix/conf" "$prefix/logs" "$prefix/tmp"
    cp "$DEPLOY"/nginx/*.conf "$prefix/conf/"
    # A throwaway certificate where the config names /etc/ssl/sse-server/.
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=sse.example.com \
        -keyout "$prefix/key.pem" -out "$prefix/cert.pem" >/dev/null 2>&1
    sed -i "s#/etc/ssl/sse-server/fullchain.pem#$prefix/cert.pem#; s#/etc/ssl/sse-server/privkey.pem#$prefix/key.pem#" \
        "$prefix/conf/sse-server.conf"
    local how="nginx $version (nginx -t -p PREFIX -c nginx.conf)"
    if ! version_at_least "$version" 1.25.1; then
        # `http2 on;` is nginx 1.25.1's; older ones take `listen ... ssl http2`, the
        # rewrite the comment in sse-server.conf tells users of older nginx to make.
        sed -i -E 's/^(\s*)http2 on;/\1# http2 on; (rewritten for nginx < 1.25.1)/; s/listen (.*)443 ssl;/listen \1443 ssl http2;/' \
            "$prefix/conf/sse-server.conf"
        how="$how, after rewriting 'http2 on;' as 'listen 443 ssl http2;' (nginx < 1.25.1)"
    fi
    local out
    if out=$(nginx -t -q -e stderr -p "$prefix" -c "$prefix/conf/nginx.conf" 2>&1); then
        pass "$files (TLS server): $how"
    else
        fail "$files (TLS server): $how"
    fi
    [ -n "$out" ] && printf '%s\n' "$out" | indent
    # The variant without TLS at nginx: port 80 serves the routes instead of redirecting.
    sed -i -E 's#^(\s*)return 308 https://\$host\$request_uri;#\1include sse-server-locations.conf;#' \
        "$prefix/conf/sse-server.conf"
    if ! grep -q 'include sse-server-locations.conf;' <(sed -n '/listen 80;/,/^}/p' "$prefix/conf/sse-server.conf"); then
        fail "$files (plain-HTTP variant): the port-80 server's return line was not found"
    elif out=$(nginx -t -q -e stderr -p "$prefix" -c "$prefix/conf/nginx.conf" 2>&1); then
        pass "$files (plain-HTTP variant: port 80 serving the routes): $how"
    else
        fail "$files (plain-HTTP variant: port 80 serving the routes): $how"
    fi
    [ -n "$out" ] && printf '%s\n' "$out" | indent
}

# ---------------------------------------------------------------- systemd
check_systemd() {
    local unit=deploy/systemd/sse-server.service
    if ! need systemd-analyze systemd; then
        skip "$unit, sse-server.env: no systemd-analyze (apt-get install systemd)"
        return
    fi
    # A scratch root: the system's own units (for the targets named in the unit), the
    # unit, the env file where the unit reads it, and a stand-in for the binary
    # (verify checks that ExecStart= names an executable).
    local root=$TMP/sdroot units
    units=$( [ -d /usr/lib/systemd/system ] && echo /usr/lib/systemd/system || echo /lib/systemd/system)
    mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system" "$root/etc/sse-server" "$root/usr/local/bin"
    cp -r "$units" "$root/usr/lib/systemd/"
    cp "$DEPLOY/systemd/sse-server.service" "$root/etc/systemd/system/"
    cp "$DEPLOY/systemd/sse-server.env" "$root/etc/sse-server/env"
    printf '#!/bin/sh\n' >"$root/usr/local/bin/sse-server"
    chmod +x "$root/usr/local/bin/sse-server"
    local version out
    version=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')
    # verify exits 0 even for a line it could not parse and ignored: any output fails.
    out=$(systemd-analyze verify --root="$root" sse-server.service 2>&1)
    if [ $? = 0 ] && [ -z "$out" ]; then
        pass "$unit: systemd-analyze verify (systemd $version, offline in a scratch root)"
    else
        fail "$unit: systemd-analyze verify (systemd $version, offline in a scratch root)"
        printf '%s\n' "$out" | indent
    fi
    # The env file: VAR=value lines and comments only (systemd's EnvironmentFile).
    local bad
    bad=$(grep -nvE '^\s*(#.*)?$|^[A-Za-z_][A-Za-z0-9_]*=' "$DEPLOY/systemd/sse-server.env")
    if [ -z "$bad" ]; then
        pass "deploy/systemd/sse-server.env: every line a comment or VAR=value (grep)"
    else
        fail "deploy/systemd/sse-server.env: lines that are neither a comment nor VAR=value"
        printf '%s\n' "$bad" | indent
    fi
    if version_at_least "$version" 250; then
        out=$(systemd-analyze security --offline=yes --root="$root" sse-server.service 2>&1 | grep 'Overall exposure')
        printf '      %s\n' "systemd-analyze security --offline: ${out#→ }"
    fi
}

# ---------------------------------------------------------------- Kubernetes
check_kubernetes() {
    local validator=$VENV/bin/kubernetes-validate
    if [ ! -x "$validator" ] && [ "$install" = 1 ]; then
        need python3 python3 || true
        if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
            # Debian splits venv (and ensurepip) out of python3.
            rm -rf "$VENV"
            prereqs_apt python3-venv >/dev/null 2>&1 || true
            python3 -m venv "$VENV" >/dev/null 2>&1 || rm -rf "$VENV"
        fi
        [ -x "$VENV/bin/python" ] &&
            "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
                "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >/dev/null 2>&1
    fi
    if [ ! -x "$validator" ]; then
        skip "deploy/kubernetes/*.yaml: no kubernetes-validate (pip install kubernetes-validate==$KUBERNETES_VALIDATE_VERSION into $VENV)"
        return
    fi
    local file k8s out
    for file in "$DEPLOY"/kubernetes/*.yaml; do
        for k8s in $K8S_VERSIONS; do
            if out=$("$validator" --strict --quiet -k "$k8s" "$file" 2>&1); then
                pass "deploy/kubernetes/$(basename "$file"): kubernetes-validate $KUBERNETES_VALIDATE_VERSION --strict, Kubernetes $k8s"
            else
                fail "deploy/kubernetes/$(basename "$file"): kubernetes-validate $KUBERNETES_VALIDATE_VERSION --strict, Kubernetes $k8s"
            fi
            [ -n "$out" ] && printf '%s\n' "$out" | indent
        done
    done
}

# ---------------------------------------------------------------- Caddy
find_caddy() {
    command -v caddy 2>/dev/null && return 0
    local built=$CACHE/peers/caddy-$CADDY_VERSION/caddy
    [ -x "$built" ] && echo "$built"
}

build_caddy() {
    command -v go >/dev/null 2>&1 || return 1
    local dir=$CACHE/peers/caddy-$CADDY_VERSION godir=$CACHE/go
    mkdir -p "$dir" "$godir/path" "$godir/mod" "$godir/build"
    echo "building Caddy $CADDY_VERSION with $(go version | awk '{print $3}') (minutes the first time) ..." >&2
    GOPATH=$godir/path GOMODCACHE=$godir/mod GOCACHE=$godir/build GOFLAGS=-modcacherw \
        GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN=$dir \
        go install "github.com/caddyserver/caddy/v2/cmd/caddy@$CADDY_VERSION" >&2
}

check_caddy() {
    local caddy
    caddy=$(find_caddy)
    if [ -z "$caddy" ] && [ "$build_caddy" = 1 ]; then
        build_caddy || true
        caddy=$(find_caddy)
    fi
    if [ -z "$caddy" ]; then
        skip "deploy/Caddyfile: no Caddy binary here (run deploy/check.sh --caddy to build Caddy $CADDY_VERSION from the Go module proxy; needs Go)"
        return
    fi
    local version out
    version=$("$caddy" version 2>/dev/null | awk '{print $1}')
    # `go install` builds report "unknown"; the cached build is $CADDY_VERSION.
    [ "${version:-unknown}" = unknown ] && [ "$caddy" = "$CACHE/peers/caddy-$CADDY_VERSION/caddy" ] &&
        version="$CADDY_VERSION (go install)"
    # validate loads and provisions every module without starting the server; a
    # Caddyfile that is not in `caddy fmt` form is a warning, counted as a failure.
    out=$(cd "$TMP" && "$caddy" validate --config "$DEPLOY/Caddyfile" --adapter caddyfile 2>&1)
    if [ $? = 0 ] && ! grep -qi 'not formatted' <<<"$out"; then
        pass "deploy/Caddyfile: caddy validate (Caddy $version)"
    else
        fail "deploy/Caddyfile: caddy validate (Caddy $version)"
        printf '%s\n' "$out" | grep -vi '"level":"info"' | indent
    fi
}

check_nginx
check_systemd
check_kubernetes
check_caddy

printf '%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
[ "$failed" = 0 ]
