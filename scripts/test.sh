#!/usr/bin/env bash
# scripts/test.sh — the one test command (README and .ci/run call it).
#
# On a fresh machine it first checks the tools it needs (scripts/prereqs.sh: Rust,
# Node.js, Java, Maven, curl, Python 3 with venv) and installs what is missing or stops
# with one sentence saying what to install; then it installs the rest (rustfmt/clippy,
# Debian's chromium, the Python tools' packages in the virtual environment .local/venv,
# Apache Kafka and dynalite through scripts/services.sh, npm packages), starts the
# local services on loopback, runs every check and test, and stops the services it
# started (services that were already running are left running).
#
# Python tools (tests/kafka_tool.py) always run with .local/venv/bin/python, exported
# as SSE_TEST_PYTHON for the Rust tests, so the system's python3 may be Debian's
# externally-managed one (PEP 668): nothing is pip-installed into it.
#
#   1. cargo fmt --check, and the build with clippy's lints as errors (the same as
#      cargo clippy --all-targets -- -D warnings)
#   2. cargo test --include-ignored: the embedded tests and the ones against the real
#      services: Apache Kafka (127.0.0.1:9092) and dynalite, DynamoDB's API (127.0.0.1:8111)
#      then scripts/contract_test.sh: schemathesis checks the live server against the
#      contract, docs/openapi.json; beside it scripts/guide_test.py runs the guide's
#      pages (docs/v1.md–v4.md) and compares what they show with what the server sends
#   3. the dashboard: ESLint and Prettier (npm run lint), Vitest, a production build,
#      and the end-to-end test in headless Chromium against the real server and services
#   4. a smoke run of the load tool (zero loss, no duplicates), when bench/ exists, and
#      the report generator's checks (scripts/test_bench_report.py)
#
#   5. Kafka as a cluster: three KRaft nodes (scripts/services.sh up --kafka-nodes 3),
#      the single-fault goals (chaos/scenarios.py), a seeded nemesis run of about
#      two minutes (chaos/nemesis.py --quick, docs/RELIABILITY.md), and a rolling
#      restart of two instances behind nginx (chaos/rolling.py)
#   also: h2spec on the TLS port (scripts/h2spec.sh) and the deploy files' checks
#   (deploy/check.sh)
#
# SSE_TEST_SKIP_OUTAGES=1 leaves out tests/outages.rs, which stops and restarts the
# local services: for a machine where others use the same broker at the same time.
# SSE_TEST_SKIP_CLUSTER=1 leaves out step 5, which does the same with the cluster.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Each step's header says when it starts, in seconds since the script started.
step() { printf '\n=== %s (at %d s)\n' "$*" "$SECONDS"; }
apt_install() {
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

step "prerequisites"
prereqs_curl
prereqs_rust
prereqs_node # the dashboard, and dynalite (the local DynamoDB)
prereqs_java
prereqs_maven
prereqs_python
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
command -v chromium >/dev/null || apt_install chromium
echo "Python tools run with $SSE_TEST_PYTHON"

# The downloads run while Rust compiles (the network, not the two cores, is what they
# wait on): the services' installs and the dashboard's packages, each waited for
# before its first use, its output in .local/logs/test-NAME.log.
mkdir -p .local/logs
in_background() {
    local name=$1
    shift
    "$@" >".local/logs/test-$name.log" 2>&1
}
waited() {
    wait "$1" || {
        echo "test.sh: $2 failed (.local/logs/test-$2.log):"
        cat ".local/logs/test-$2.log"
        exit 1
    }
}
in_background kafka-install scripts/install_services.sh kafka &
kafka_install=$!
in_background dynamodb-install scripts/install_services.sh dynamodb &
dynamodb_install=$!
if [ -f frontend/package.json ]; then
    in_background npm-ci bash -c 'cd frontend && npm ci --no-audit --no-fund' &
    npm_ci=$!
fi
in_background h2spec-install scripts/h2spec.sh --install &
h2spec_install=$!

step "format"
cargo fmt --all -- --check

step "build, with clippy's lints as errors"
# clippy-driver is rustc with clippy's lints, which is all `cargo clippy` runs on this
# workspace's crates. Made the compiler of the workspace's crates for every cargo
# command below, it lints them while they are built, so this build is
# `cargo clippy --all-targets -- -D warnings` too. A separate `cargo clippy` checked
# every dependency a second time, in check mode: about 150 s of a fresh machine's run.
RUSTC_WORKSPACE_WRAPPER="$(rustc --print sysroot)/bin/clippy-driver"
export RUSTC_WORKSPACE_WRAPPER
# clippy-driver's argument list, in the encoding `cargo clippy` passes it.
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo build --all-targets
# The server every later step runs. Built with the tests, so its dependencies carry
# the dev-dependencies' features: a plain `cargo build --bin sse-server` would
# compile dozens of them a second time.
export SSE_SERVER_BIN="$ROOT/target/debug/sse-server"

step "local services"
waited "$kafka_install" kafka-install
waited "$dynamodb_install" dynamodb-install
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
# Meanwhile, at the lowest CPU priority (the tests mostly wait on Kafka and on their
# deadlines): the dashboard's lint, unit tests and build, and the load tool's build.
if [ -f frontend/package.json ]; then
    waited "$npm_ci" npm-ci
    in_background dashboard-checks nice -n 19 bash -c \
        'cd frontend && npm run lint && npm test && npm run build' &
    dashboard_checks=$!
fi
if [ -f bench/Cargo.toml ]; then
    in_background load-tool-build nice -n 19 bash -c 'cd bench && cargo build --locked --quiet' &
    load_tool_build=$!
fi
if [ "${SSE_TEST_SKIP_OUTAGES:-0}" = 1 ]; then
    echo "SSE_TEST_SKIP_OUTAGES=1: leaving out tests/outages.rs (it restarts the services)"
    cargo test -- --include-ignored --skip kafka_and_dynamodb_outages
else
    # The outages first, while the broker holds few partitions: the less a pause
    # moves, the closer the test is to a broker that just hangs (see
    # scripts/kafka/server.properties, broker.session.timeout.ms).
    cargo test --test outages -- --include-ignored
    cargo test -- --include-ignored --skip kafka_and_dynamodb_outages
fi

step "contract: docs/openapi.json against a live server (schemathesis)"
# Beside it: the guide's pages (docs/v1.md–v4.md: their commands run against servers
# of their own, their frames compared) and the deploy files' checks, which wait mostly
# on processes starting rather than on the two cores.
in_background guide "$SSE_TEST_PYTHON" scripts/guide_test.py &
guide=$!
in_background deploy-check deploy/check.sh &
deploy_check=$!
scripts/contract_test.sh

step "the guide's pages against a live server (run beside the contract)"
waited "$guide" guide
cat .local/logs/test-guide.log

step "HTTP/2 conformance of the TLS port (h2spec)"
waited "$h2spec_install" h2spec-install
scripts/h2spec.sh

step "deploy files: nginx -t, systemd-analyze verify, Kubernetes schemas (run beside the contract)"
waited "$deploy_check" deploy-check
cat .local/logs/test-deploy-check.log

if [ -f frontend/package.json ]; then
    step "dashboard: install, lint (ESLint, Prettier), unit tests, build (run beside the Rust tests)"
    waited "$dashboard_checks" dashboard-checks
    cat .local/logs/test-dashboard-checks.log

    step "dashboard: end-to-end in headless Chromium"
    (cd frontend &&
        SSE_KAFKA_BROKERS="$SSE_TEST_KAFKA" \
        SSE_DYNAMODB_ENDPOINT="$SSE_TEST_DYNAMODB" \
        npm run e2e)
fi

if [ -f bench/Cargo.toml ]; then
    step "load tool smoke run"
    waited "$load_tool_build" load-tool-build
    scripts/bench.sh --smoke
fi

if [ "${SSE_TEST_SKIP_CLUSTER:-0}" = 1 ]; then
    echo "SSE_TEST_SKIP_CLUSTER=1: leaving out the three-node Kafka cluster checks"
else
    step "Kafka as a cluster: three nodes, the single-fault goals, a short seeded nemesis run"
    # The cluster takes the single node's ports: the single node stops first, and
    # comes back after when it was running before this script.
    scripts/services.sh down kafka
    scripts/services.sh up kafka --kafka-nodes 3
    "$SSE_TEST_PYTHON" -m unittest discover -s chaos -p 'test_*.py'
    "$SSE_TEST_PYTHON" chaos/scenarios.py --out .local/chaos/test-scenarios kill pause cut two_down
    "$SSE_TEST_PYTHON" chaos/nemesis.py run --seed 1 --quick --out .local/chaos/test-quick
    # Two instances behind nginx, a rolling SIGTERM restart under keyed publishes.
    SSE_TEST_KAFKA=127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096 \
        "$SSE_TEST_PYTHON" chaos/rolling.py --out .local/chaos/test-rolling
    scripts/services.sh down kafka
    if [[ " ${started[*]} " != *" kafka "* ]]; then scripts/services.sh up kafka; fi
fi

step "benchmark report: scripts/bench_report.py on hand-made results"
python3 scripts/test_bench_report.py

step "all tests passed"
