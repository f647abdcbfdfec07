#!/usr/bin/env bash
# scripts/h2spec.sh — HTTP/2 conformance of the TLS port: h2spec (145 cases of RFC 7540
# and HPACK) against sse-server serving https with a self-signed certificate.
#
# h2spec $H2SPEC_VERSION is built from the Go module proxy into the user's cache
# (${XDG_CACHE_HOME:-~/.cache}/sse-server/tools/); `scripts/h2spec.sh --install` only
# builds it. The server is $SSE_SERVER_BIN, else the
# newer of target/{release,debug}/sse-server. Runs h2spec $RUNS times.
#
# A failure is accepted only when it is h2spec's known race (summerwind/h2spec#89, open):
# a case opens a request and then sends a malformed frame on it, and the server answered
# the request first (h2spec sees the response's HEADERS or DATA where it waits for
# RST_STREAM or GOAWAY). RFC 9113 §5.4.2 allows what was sent before the error was
# detected; the server does reset the stream once it reads the frame. One case of the
# same race ends in a reset: 6.9.1's "... above 2^31-1 on a stream" opens a GET without
# ending it, and when the whole answer left first, h2 ends the request's half with
# RST_STREAM(NO_ERROR) (RFC 9113 §8.1), so h2spec meets that reset on stream 1 where it
# waits for FLOW_CONTROL_ERROR (1 run in 3 of a CI run, 2026-12-06; h2spec prints no
# error code). A path that never finishes its answer (a stream) would remove the race,
# but then h2spec's cases that wait for the stream to close never end. Any other
# failure fails this script. Exit 0 when every run has no other failure.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
H2SPEC_VERSION=v2.2.1+incompatible   # h2spec 2.x; the module has no /v2 path
RUNS=${H2SPEC_RUNS:-3}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sse-server
TOOLS=$CACHE/tools/h2spec-${H2SPEC_VERSION%%+*}
H2SPEC=$TOOLS/h2spec

if [ ! -x "$H2SPEC" ]; then
    command -v go >/dev/null || { echo "h2spec.sh: Go is needed to build h2spec" >&2; exit 1; }
    echo "h2spec.sh: building h2spec $H2SPEC_VERSION (go install; about a minute)" >&2
    mkdir -p "$TOOLS"
    GOPATH=$CACHE/go/path GOMODCACHE=$CACHE/go/mod GOCACHE=$CACHE/go/build \
        GOFLAGS=-modcacherw GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN=$TOOLS \
        go install "github.com/summerwind/h2spec/cmd/h2spec@$H2SPEC_VERSION"
fi
[ "${1:-}" != --install ] || exit 0

bin=${SSE_SERVER_BIN:-}
if [ -z "$bin" ]; then
    for b in target/release/sse-server target/debug/sse-server; do
        if [ -x "$b" ] && { [ -z "$bin" ] || [ "$b" -nt "$bin" ]; }; then bin=$b; fi
    done
fi
[ -n "$bin" ] || { echo "h2spec.sh: no sse-server built (cargo build)" >&2; exit 1; }
tls=$(scripts/tls_cert.sh)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
out=$ROOT/.local/h2spec
mkdir -p "$out"
SSE_LOG=warn NO_COLOR=1 "$bin" --bind "127.0.0.1:$port" --tls-cert "$tls/cert.pem" \
    --tls-key "$tls/key.pem" --drain-grace 0s >"$out/server.log" 2>&1 &
server=$!
trap 'kill -9 $server 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    curl -sfk "https://127.0.0.1:$port/healthz" >/dev/null 2>&1 && break
    sleep 0.1
done

status=0
for run in $(seq "$RUNS"); do
    "$H2SPEC" -h 127.0.0.1 -p "$port" -t -k -o 5 >"$out/run-$run.txt" 2>&1 || true
    summary=$(grep -E '^[0-9]+ tests' "$out/run-$run.txt" || echo "no summary")
    # Each failure of the "Failures:" part: its title line, then its Actual: line.
    failures=$(sed -n '/^Failures:/,$p' "$out/run-$run.txt" | awk '
        /×/ { title = $0 }
        /Actual:/ {
            raced = $0 ~ /Actual: (DATA|HEADERS) Frame/ ||
                (title ~ /above 2\^31-1 on a stream[[:space:]]*$/ &&
                 $0 ~ /Actual: RST_STREAM Frame \(length:4, flags:0x00, stream_id:1\)/)
            print (raced ? "raced " : "other ") title " -> " $0
        }')
    other=$(printf '%s\n' "$failures" | sed -n 's/^other //p')
    raced=$(printf '%s\n' "$failures" | grep -c '^raced ' || true)
    echo "h2spec run $run: $summary; answered before the malformed frame (h2spec#89): $raced"
    if [ -n "$other" ]; then
        echo "h2spec run $run: FAILED:"
        printf '%s\n' "$other"
        status=1
    fi
done
exit "$status"
