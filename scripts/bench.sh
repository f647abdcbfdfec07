#!/usr/bin/env bash
# scripts/bench.sh — load-test sse-server with the sse-bench tool (bench/) and write
# docs/BENCHMARKS.md plus the PNG charts in docs/.
#
#   scripts/bench.sh           every scenario (about 10 minutes): idle 1k/10k/19k,
#                              fan-out to 1k and 10k at rising rates until p99 > 100 ms,
#                              unicast 1,000 users, 1 % stalled readers, Kafka ingest
#   scripts/bench.sh --smoke   one short unicast run (300 streams, 3 s) against a freshly
#                              started server (embedded default); exits non-zero on any
#                              lost or duplicated event (scripts/test.sh calls this)
#
# It builds what is missing or stale (the server with `cargo build --release`, the tool
# in bench/ with its own Cargo.lock and bench/target), starts its own
# `target/release/sse-server --bind 127.0.0.1:$BENCH_PORT --queue $BENCH_QUEUE`, records
# its pid (for VmRSS), and stops it again. Raw results (JSON per run, charts, the server
# log, the exact commands) go to bench/target/results/.
#
# Environment knobs (all optional):
#   BENCH_PORT            port of the server started here (default 3990)
#   BENCH_QUEUE           --queue of that server (default 1024, the server's default)
#   BENCH_KAFKA_BROKERS   broker for the Kafka scenario (default 127.0.0.1:9092)
#   BENCH_SKIP_KAFKA=1    leave out the Kafka scenario
#   BENCH_QUICK=1         fewer, shorter runs (to try the script out)
#   BENCH_SERVER_BIN      measure this server binary instead of building target/release/sse-server
#   CARGO_BUILD_JOBS      passed to cargo as usual
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

MODE=full
case "${1:-}" in
    --smoke) MODE=smoke ;;
    "") ;;
    -h | --help)
        sed -n '2,27p' "$0"
        exit 0
        ;;
    *)
        echo "usage: scripts/bench.sh [--smoke]" >&2
        exit 2
        ;;
esac

PORT=${BENCH_PORT:-3990}
QUEUE=${BENCH_QUEUE:-1024}
KAFKA=${BENCH_KAFKA_BROKERS:-127.0.0.1:9092}
QUICK=${BENCH_QUICK:-0}
OUT=bench/target/results
BENCH=bench/target/release/sse-bench
URL=http://127.0.0.1:$PORT
SERVER_PID=""
SERVER_BIN=""

log() { printf '\n=== %s\n' "$*" >&2; }

# True when the binary is missing or older than the server's sources.
stale() {
    [ -x "$1" ] || return 0
    [ -n "$(find src Cargo.toml Cargo.lock -newer "$1" -print -quit 2>/dev/null)" ]
}

build_bench() {
    log "building the load tool (bench/, release)"
    (cd bench && cargo build --release --locked --quiet)
}

stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
}
trap stop_server EXIT

# start_server [extra server flags...]: a fresh server on $PORT, ready when this returns.
start_server() {
    stop_server
    if curl -s -o /dev/null --max-time 1 "$URL/healthz"; then
        echo "bench.sh: something already listens on $URL; set BENCH_PORT" >&2
        exit 1
    fi
    SSE_LOG=${BENCH_SERVER_LOG:-warn} "$SERVER_BIN" --bind "127.0.0.1:$PORT" --queue "$QUEUE" "$@" \
        >>"$OUT/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 150); do
        if curl -fs -o /dev/null --max-time 1 "$URL/readyz"; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench.sh: the server exited at start-up; last lines of $OUT/server.log:" >&2
            tail -20 "$OUT/server.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "bench.sh: the server did not become ready within 30 s" >&2
    exit 1
}

# run NAME SSE-BENCH-ARGS...: one run, JSON to $OUT/NAME.json, chart to $OUT/NAME.png.
run() {
    local name=$1
    shift
    local args=("$@" --url "$URL" --label "$name" --plot "$OUT/$name.png")
    local cmdline
    printf -v cmdline '%q ' "$BENCH" "${args[@]}"
    printf '%s\t%s--server-pid $SERVER_PID\n' "$name" "$cmdline" >>"$OUT/commands.tsv"
    log "$name: $cmdline"
    local rc=0
    "$BENCH" "${args[@]}" --server-pid "$SERVER_PID" >"$OUT/$name.json" || rc=$?
    if [ $rc -ne 0 ]; then
        echo "bench.sh: $name exited with $rc" >&2
        echo "{\"label\": \"$name\", \"failed_exit\": $rc}" >"$OUT/$name.json"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "bench.sh: the server died during $name; last lines of $OUT/server.log:" >&2
        tail -20 "$OUT/server.log" >&2
        start_server "${SERVER_ARGS[@]}"
    fi
}

# field NAME PYTHON-EXPR: a value from a run's JSON (d is the parsed object).
field() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$OUT/$1.json" "$2"
}

mkdir -p "$OUT"

if [ "$MODE" = smoke ]; then
    # The freshest server binary there is; tests just built the debug one.
    if ! stale target/release/sse-server; then
        SERVER_BIN=target/release/sse-server
    else
        if stale target/debug/sse-server; then
            log "building the server (debug)"
            cargo build --quiet --bin sse-server
        fi
        SERVER_BIN=target/debug/sse-server
    fi
    build_bench
    : >"$OUT/server.log"
    SERVER_ARGS=()
    start_server
    log "smoke run against $SERVER_BIN (pid $SERVER_PID)"
    rc=0
    "$BENCH" --smoke --url "$URL" --server-pid "$SERVER_PID" >"$OUT/smoke.json" || rc=$?
    python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print("smoke: %d streams, %d events expected, %d received, lost %d, duplicated %d, p99 %.2f ms"
      % (d["connections"]["connected"], d["deliveries"]["expected"], d["deliveries"]["received"],
         d["lost"], d["duplicated"], d["latency"]["p99_ms"]))
' "$OUT/smoke.json" >&2 || true
    exit $rc
fi

# ---------------------------------------------------------------- full run
if [ -n "${BENCH_SERVER_BIN:-}" ]; then
    SERVER_BIN=$BENCH_SERVER_BIN
else
    if stale target/release/sse-server; then
        log "building the server (release)"
        cargo build --release --bin sse-server
    fi
    SERVER_BIN=target/release/sse-server
fi
build_bench
rm -f "$OUT"/*.json "$OUT"/*.png "$OUT/commands.tsv"
: >"$OUT/server.log"
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/started"
SERVER_ARGS=()

# Idle streams: RSS per stream, and RSS after they all closed. A fresh server each.
IDLE_SIZES=(1000 10000 19000)
[ "$QUICK" = 1 ] && IDLE_SIZES=(1000 5000)
for n in "${IDLE_SIZES[@]}"; do
    start_server
    run "idle-$((n / 1000))k" idle -n "$n" --hold 3 --settle 3
done

# Fan-out: rising broadcast rates until p99 > 100 ms, events go missing, or the
# publishers cannot reach the rate any more.
fanout_series() { # SUBSCRIBERS LABEL RATES...
    local n=$1 label=$2
    shift 2
    start_server
    for rate in "$@"; do
        run "fanout-$label-$rate" fanout -n "$n" --rate "$rate" --duration 4 --grace 5 --settle 0.5
        local verdict=stop
        verdict=$(field "fanout-$label-$rate" \
            '"stop" if d.get("failed_exit") or d["latency"]["p99_ms"] > 100 or d["lost"] > 0 or d["publish"]["achieved_rate"] < 0.8 * d["publish"]["target_rate"] else "go"')
        if [ "$verdict" = stop ]; then
            break
        fi
    done
}
if [ "$QUICK" = 1 ]; then
    fanout_series 1000 1k 200 1000
    fanout_series 10000 10k 20 50
else
    fanout_series 1000 1k 100 300 1000 2000 4000 8000
    fanout_series 10000 10k 10 25 50 75 100 150 200 300
fi

# Unicast to 1,000 users: a fixed rate for latency, then as fast as 8 publishers go;
# the same flat-out run with 1 % of the streams never reading. Then 1 % stalled
# readers in a fan-out, where their queues do overflow.
start_server
run unicast-1000-r5000 unicast -n 1000 --users 1000 --rate 5000 --duration 5 --settle 0.5
run unicast-1000-max unicast -n 1000 --users 1000 --rate 0 --duration 5 --settle 0.5
run stalled-1pct-max stalled -n 1000 --users 1000 --rate 0 --duration 5 --stalled-percent 1 --settle 0.5
start_server
# 2 KB messages: each stalled stream is sent ~5 MB, more than the kernel's socket
# buffers take, so its queue overflows and the server closes it.
run fanout-1k-1000-base fanout -n 1000 --rate 500 --pad 2000 --duration 5 --settle 0.5
run fanout-1k-1000-stalled fanout -n 1000 --rate 500 --pad 2000 --duration 5 --stalled-percent 1 --settle 0.5

# Kafka ingest: records `user:payload` through the broker, subscribers on /v3/sse.
if [ "${BENCH_SKIP_KAFKA:-0}" != 1 ]; then
    if ! scripts/services.sh status kafka >/dev/null 2>&1; then
        log "starting the Kafka broker (scripts/services.sh up kafka)"
        scripts/services.sh up kafka || true
    fi
    if scripts/services.sh status kafka >/dev/null 2>&1; then
        SERVER_ARGS=(--kafka-brokers "$KAFKA")
        start_server "${SERVER_ARGS[@]}"
        # kafka_tool.py needs confluent-kafka: the virtual environment's Python.
        prereqs_python
        produce="$SSE_PYTHON tests/kafka_tool.py produce $KAFKA v3_messages --key sse-bench"
        run kafka-1k kafka -n 1000 --users 1000 --rate 1000 --duration 5 --grace 10 --settle 0.5 \
            --kafka-produce "$produce"
        [ "$QUICK" = 1 ] || run kafka-10k kafka -n 1000 --users 1000 --rate 10000 --duration 5 --grace 10 \
            --settle 0.5 --kafka-produce "$produce"
        SERVER_ARGS=()
    else
        echo "bench.sh: no Kafka broker on $KAFKA; the Kafka scenario is left out" >&2
        echo "no broker" >"$OUT/kafka-skipped"
    fi
fi
stop_server

log "writing docs/BENCHMARKS.md"
mkdir -p docs
python3 scripts/bench_report.py "$OUT" docs
echo "docs/BENCHMARKS.md written; raw results in $OUT" >&2
