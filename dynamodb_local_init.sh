#!/usr/bin/env bash
# dynamodb_local_init.sh — (re)create the DynamoDB table `report_status` that /v4 uses
# (partition key report_id (S); GSI UserIdIndex on user_id (S), projection ALL;
# PAY_PER_REQUEST) against ${SSE_DYNAMODB_ENDPOINT:-http://localhost:8111}: the local
# dynalite of scripts/services.sh or docker-compose.yml, or any DynamoDB endpoint.
#
# Why a wrapper: the table definition lives in one place, the Rust binary
# (`sse-server init-table`), so this script needs no aws CLI. It deletes the table
# when it exists, then creates it (--recreate): all data in it is lost. (sse-server
# creates a missing table by itself at start-up; this is for starting over.)
#
# Usage: ./dynamodb_local_init.sh [sse-server flags, e.g. --table NAME --dynamodb-endpoint URL]
#        (they go before the subcommand: sse-server [FLAGS] init-table --recreate)
# Env:   SSE_DYNAMODB_ENDPOINT (default http://localhost:8111), SSE_TABLE (default report_status)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

export SSE_DYNAMODB_ENDPOINT="${SSE_DYNAMODB_ENDPOINT:-http://localhost:8111}"

if [ -x target/release/sse-server ]; then
    bin=target/release/sse-server
elif [ -x target/debug/sse-server ]; then
    bin=target/debug/sse-server
elif command -v sse-server >/dev/null 2>&1; then
    bin=$(command -v sse-server)
else
    echo "dynamodb_local_init.sh: no sse-server binary yet; building it (cargo build --release --bin sse-server) ..." >&2
    cargo build --release --bin sse-server
    bin=target/release/sse-server
fi

exec "$bin" "$@" init-table --recreate
