#!/usr/bin/env bash
# scripts/run.sh — build what is missing or stale, then serve sse-server with the
# dashboard at / :
#   * the release binary: `cargo build --release` when target/release/sse-server is
#     missing or older than any file in src/, Cargo.toml or Cargo.lock;
#   * frontend/dist (when frontend/package.json exists): `npm ci` when
#     frontend/node_modules is missing, then `npm run build` when dist is missing or
#     older than the front-end sources.
# Tools are checked up front (scripts/prereqs.sh): Rust when the binary must be built,
# Node.js >= 20.19 when the dashboard must be built; a missing one is installed from the
# usual package sources or named in one sentence.
# Then: exec target/release/sse-server --bind "${SSE_BIND:-127.0.0.1:3000}"
#       --static-dir frontend/dist "$@"   (extra arguments go to the binary).
# `scripts/run.sh --tls` (first argument) serves https with a self-signed certificate
# for localhost made by scripts/tls_cert.sh: browsers then use HTTP/2.
#
# With no --kafka-brokers / --dynamodb-endpoint (or SSE_KAFKA_BROKERS /
# SSE_DYNAMODB_ENDPOINT) the server runs on its in-process bus and in-memory store; for
# the real services: scripts/services.sh up, then
#   SSE_KAFKA_BROKERS=127.0.0.1:9092 SSE_DYNAMODB_ENDPOINT=http://127.0.0.1:8111 scripts/run.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

bin=target/release/sse-server

# --- the binary -----------------------------------------------------------------
stale_inputs=()
[ -d src ] && stale_inputs+=(src)
[ -f build.rs ] && stale_inputs+=(build.rs)
stale_inputs+=(Cargo.toml)
[ -f Cargo.lock ] && stale_inputs+=(Cargo.lock)
if [ ! -x "$bin" ]; then
    prereqs_rust
    echo "run.sh: building the release binary (cargo build --release) ..." >&2
    cargo build --release
elif [ -n "$(find "${stale_inputs[@]}" -newer "$bin" -print -quit)" ]; then
    prereqs_rust
    echo "run.sh: sources changed since the last build; rebuilding (cargo build --release) ..." >&2
    cargo build --release
fi

# --- the dashboard ----------------------------------------------------------------
static_args=()
if [ -f frontend/package.json ]; then
    need_build=0
    if [ ! -f frontend/dist/index.html ]; then
        need_build=1
    elif [ -n "$(find frontend -path frontend/node_modules -prune -o -path frontend/dist -prune \
        -o -path frontend/e2e -prune -o -path 'frontend/playwright.config.*' -prune \
        -o -type f -newer frontend/dist/index.html -print -quit)" ]; then
        need_build=1
    fi
    if [ "$need_build" = 1 ]; then
        prereqs_node
        if [ ! -d frontend/node_modules ]; then
            echo "run.sh: installing front-end packages (npm ci) ..." >&2
            if [ -f frontend/package-lock.json ]; then
                (cd frontend && npm ci --no-audit --no-fund)
            else
                (cd frontend && npm install --no-audit --no-fund)
            fi
        fi
        echo "run.sh: building the dashboard (npm run build) ..." >&2
        (cd frontend && npm run build)
    fi
fi
if [ -d frontend/dist ]; then
    static_args=(--static-dir frontend/dist)
else
    echo "run.sh: no frontend/dist (no frontend/package.json); serving the API without the dashboard" >&2
fi

# --tls: https (HTTP/2 and HTTP/1.1) with a self-signed certificate for localhost.
tls_args=()
if [ "${1:-}" = --tls ]; then
    shift
    tls=$(scripts/tls_cert.sh)
    tls_args=(--tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem")
    echo "run.sh: serving https://localhost:${SSE_BIND##*:} with a self-signed certificate ($tls); the browser asks to accept it once" >&2
fi

exec "$bin" --bind "${SSE_BIND:-127.0.0.1:3000}" "${static_args[@]}" "${tls_args[@]}" "$@"
