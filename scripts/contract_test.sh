#!/usr/bin/env bash
# scripts/contract_test.sh — the contract (docs/openapi.json) against a live server.
#
# Starts target/debug/sse-server (embedded: no Kafka, no DynamoDB, authorization off)
# on a free loopback port and runs schemathesis against its /openapi.json with every
# check on: no 5xx, every status, content type, header and body as documented, invalid
# input refused, valid input accepted, undocumented methods answered 405 with Allow.
# The event streams (`GET /vN/sse`) never end, so schemathesis leaves them out;
# tests/openapi.rs covers them. scripts/test.sh runs this after the Rust tests; it
# also runs alone (it builds the binary first).
#
#   SSE_SERVER_BIN          the server to test (scripts/test.sh passes the one it built;
#                           default: cargo build --bin sse-server)
#   SSE_CONTRACT_EXAMPLES   test cases per operation and phase (default 50: about 15 s)
#   SSE_CONTRACT_SEED       schemathesis's seed (default: random, printed)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh
prereqs_curl
prereqs_python
# A virtual environment made before schemathesis joined scripts/requirements.txt.
if ! "$SSE_PYTHON" -c 'import schemathesis' >/dev/null 2>&1; then
    prereqs_say "installing scripts/requirements.txt (schemathesis) into .local/venv ..."
    "$SSE_PYTHON" -m pip install --quiet --disable-pip-version-check -r scripts/requirements.txt
fi
SCHEMATHESIS=$(dirname "$SSE_PYTHON")/schemathesis

# `cargo build --bin sse-server` after scripts/test.sh's `cargo build --all-targets`
# would compile dozens of dependencies again (without the dev-dependencies' features),
# so test.sh names its binary instead.
server_bin=${SSE_SERVER_BIN:-}
if [ -z "$server_bin" ]; then
    cargo build --quiet --bin sse-server
    server_bin=target/debug/sse-server
fi

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$("$SSE_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
env -u SSE_KAFKA_BROKERS -u SSE_DYNAMODB_ENDPOINT -u SSE_AUTH_SECRET -u SSE_AUTH_PUBLIC_KEY \
    -u SSE_AUTH_AUDIENCE -u SSE_CORS_ORIGINS -u SSE_MAX_STREAMS -u SSE_MAX_STREAMS_PER_USER \
    -u SSE_MAX_REPORTS_PER_USER -u SSE_BIND SSE_LOG=warn \
"$server_bin" --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
    curl -fsS "$base/healthz" >/dev/null 2>&1 && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.2
done
if ! curl -fsS "$base/healthz" >/dev/null 2>&1; then
    echo "contract_test.sh: the server did not come up on $base:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

# Valid requests may get, besides the check's defaults, 422 from the six routes that
# take an Idempotency-Key: schemathesis repeats keys with other bodies. (Per-operation
# [[operations]] overrides of this check leak to other operations in schemathesis 4.32,
# so the list is global.)
cat >"$work/schemathesis.toml" <<'EOF'
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
EOF

seed=${SSE_CONTRACT_SEED:-$RANDOM$RANDOM}
examples=${SSE_CONTRACT_EXAMPLES:-50}
echo "schemathesis $("$SCHEMATHESIS" --version 2>/dev/null | awk '{print $NF}') against $base/openapi.json (seed $seed, $examples examples per operation)"
# schemathesis leaves /openapi.json itself out. ASCII strings only: the username
# pattern counts characters and the server 128 bytes, the same thing in ASCII.
status=0
timeout 300 "$SCHEMATHESIS" --config-file "$work/schemathesis.toml" run "$base/openapi.json" \
    --checks all \
    --exclude-path-regex '/sse$' \
    --max-examples "$examples" \
    --seed "$seed" \
    --generation-codec ascii \
    --request-timeout 10 \
    --no-color \
    --report ndjson --report-ndjson-path "$work/events.ndjson" ||
    status=$?

"$SSE_PYTHON" - "$work/events.ndjson" <<'PY' || true
import json, re, sys
operations, kinds, checks, failed = set(), set(), 0, 0
with open(sys.argv[1]) as events:
    for line in events:
        finished = json.loads(line).get("ScenarioFinished")
        if not isinstance(finished, dict):
            continue
        recorder = finished.get("recorder") or {}
        if re.match(r"^[A-Z]+ /", recorder.get("label") or ""):
            operations.add(recorder["label"])
        for per_case in (recorder.get("checks") or {}).values():
            for check in per_case:
                checks += 1
                kinds.add(check.get("name"))
                failed += check.get("status") == "failure"
print(f"contract: {len(operations)} operations, {checks} checks of {len(kinds)} kinds run, {failed} failed")
PY

if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "contract_test.sh: the server exited during the run:" >&2
    cat "$work/server.log" >&2
    exit 1
fi
if [ "$status" -ne 0 ]; then
    echo "contract_test.sh: schemathesis found the server and docs/openapi.json disagreeing (exit $status); server log:" >&2
    tail -n 50 "$work/server.log" >&2
    exit 1
fi
echo "contract test passed"
