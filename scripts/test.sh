#!/usr/bin/env bash
# scripts/test.sh — the one test command (README and .ci/run call it).
#
# On a fresh machine it installs what is missing (rustfmt/clippy, Debian's chromium,
# the Kafka broker and DynamoDB Local through scripts/services.sh, npm packages),
# starts the local services on loopback, runs every check and test, and stops the
# services it started (services that were already running are left running).
#
#   1. cargo fmt --check, cargo clippy --all-targets -D warnings
#   2. cargo test --include-ignored: the embedded tests and the ones against the real
#      Kafka broker (127.0.0.1:9092) and DynamoDB Local (127.0.0.1:8111)
#   3. the dashboard: Vitest, a production build, and the end-to-end test in headless
#      Chromium against the real server and services
#   4. a smoke run of the load tool (zero loss, no duplicates), when bench/ exists
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

step() { printf '\n=== %s\n' "$*"; }
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

step "prerequisites"
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
command -v chromium >/dev/null || apt_install chromium
python3 -c 'import confluent_kafka' 2>/dev/null || python3 -m pip install --quiet 'confluent-kafka>=2.3'

step "format and lint"
cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

step "build"
cargo build --all-targets

step "local services"
started=()
for service in kafka dynamodb; do
    if ! scripts/services.sh status "$service" >/dev/null 2>&1; then
        started+=("$service")
    fi
done
stop_started() {
    for service in "${started[@]}"; do
        scripts/services.sh down "$service" || true
    done
}
trap stop_started EXIT
scripts/services.sh up

export SSE_TEST_KAFKA=127.0.0.1:9092
export SSE_TEST_DYNAMODB=http://127.0.0.1:8111

step "Rust tests (embedded and against the real services)"
cargo test -- --include-ignored

if [ -f frontend/package.json ]; then
    step "dashboard: install, unit tests, build"
    (cd frontend && npm ci --no-audit --no-fund && npm test && npm run build)

    step "dashboard: end-to-end in headless Chromium"
    (cd frontend &&
        SSE_SERVER_BIN="$ROOT/target/debug/sse-server" \
        SSE_KAFKA_BROKERS="$SSE_TEST_KAFKA" \
        SSE_DYNAMODB_ENDPOINT="$SSE_TEST_DYNAMODB" \
        npm run e2e)
fi

if [ -f bench/Cargo.toml ]; then
    step "load tool smoke run"
    scripts/bench.sh --smoke
fi

step "all tests passed"
