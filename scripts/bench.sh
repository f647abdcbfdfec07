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
# The full run then repeats the HTTP scenarios (idle, fan-out, unicast, stalled; not
# Kafka) against Nchan, the nginx pub/sub module, as a peer: installed from Debian when
# missing (nginx-light + libnginx-mod-nchan, with apt as root or through sudo), set up by
# bench/peers/nchan.conf with the same /v2 API, 1 worker process for the idle runs (so
# one process holds every stream) and 2 for the rest. Its RSS is the sum of its workers'
# VmRSS. Its results go to bench/target/results/peers/nchan/ (same file names).
#
# Environment knobs (all optional):
#   BENCH_PORT            port of the server started here (default 3990)
#   BENCH_QUEUE           --queue of that server (default 1024, the server's default)
#   BENCH_KAFKA_BROKERS   broker for the Kafka scenario (default 127.0.0.1:9092)
#   BENCH_SKIP_KAFKA=1    leave out the Kafka scenario
#   BENCH_QUICK=1         fewer, shorter runs (to try the script out)
#   BENCH_SERVER_BIN      measure this server binary instead of building target/release/sse-server
#                         (--smoke too: instead of the freshest of target/{release,debug})
#   BENCH_PEERS           peers measured beside sse-server in the full run: "nchan" (the
#                         default) or empty for none; never in --smoke
#   BENCH_NCHAN_PORT      port of the Nchan peer (default 3991)
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
        sed -n '2,36p' "$0"
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
PEERS=${BENCH_PEERS-nchan}
NCHAN_PORT=${BENCH_NCHAN_PORT:-3991}
OUT=bench/target/results
BENCH=bench/target/release/sse-bench
SSE_URL=http://127.0.0.1:$PORT
NCHAN_URL=http://127.0.0.1:$NCHAN_PORT
# What start_target starts and run measures: sse-server, or the nchan peer.
TARGET=sse-server
URL=$SSE_URL
# Where run writes its JSON and chart, and where the target's log goes.
RUN_OUT=$OUT
SERVER_LOG=$OUT/server.log
SERVER_PID=""
# Pids whose VmRSS is the server's RSS (comma-separated): sse-server itself, or
# nginx's worker processes.
SERVER_PIDS=""
SERVER_BIN=""
NCHAN_WORKERS=2
NCHAN_MODULE=/usr/lib/nginx/modules/ngx_nchan_module.so

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

# Stops the target started last (sse-server, or nginx's master, which stops its workers).
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
        SERVER_PIDS=""
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
    SERVER_PIDS=$SERVER_PID
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

# install_nchan: nginx-light and libnginx-mod-nchan from Debian, when missing.
# Fails (without exiting) when they are missing and cannot be installed.
install_nchan() {
    if nginx_bin >/dev/null && [ -f "$NCHAN_MODULE" ]; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "bench.sh: Nchan is missing and there is no apt-get to install it" >&2
        return 1
    fi
    local sudo=()
    if [ "$(id -u)" != 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo)
        else
            echo "bench.sh: Nchan is missing; installing it needs root or sudo" >&2
            return 1
        fi
    fi
    local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
        --no-install-recommends nginx-light libnginx-mod-nchan)
    log "installing Nchan: ${install[*]}"
    if ! "${install[@]}" >&2; then
        # A fresh machine may have no package lists yet.
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2 || return 1
        "${install[@]}" >&2 || return 1
    fi
    nginx_bin >/dev/null && [ -f "$NCHAN_MODULE" ]
}

# nginx_bin: the nginx executable (in /usr/sbin, which a user's PATH may lack).
nginx_bin() {
    command -v nginx 2>/dev/null || { [ -x /usr/sbin/nginx ] && echo /usr/sbin/nginx; }
}

# start_nchan WORKERS: a fresh nginx with bench/peers/nchan.conf on $NCHAN_PORT, ready
# (and its WORKERS worker processes up) when this returns. Its pid, error log and temp
# files are under $OUT/peers/nchan/nginx/.
start_nchan() {
    local workers=$1
    stop_server
    if curl -s -o /dev/null --max-time 1 "$NCHAN_URL/healthz"; then
        echo "bench.sh: something already listens on $NCHAN_URL; set BENCH_NCHAN_PORT" >&2
        exit 1
    fi
    local dir=$ROOT/$OUT/peers/nchan/nginx
    mkdir -p "$dir"
    local nofile
    nofile=$(ulimit -Hn)
    [ "$nofile" = unlimited ] && nofile=1048576
    sed -e "s|\${NCHAN_MODULE}|$NCHAN_MODULE|g" -e "s|\${NCHAN_WORKERS}|$workers|g" \
        -e "s|\${NCHAN_NOFILE}|$nofile|g" -e "s|\${NCHAN_DIR}|$dir|g" \
        -e "s|\${NCHAN_PORT}|$NCHAN_PORT|g" bench/peers/nchan.conf >"$dir/nginx.conf"
    # The config says `daemon off;`: $! is nginx's master process.
    "$(nginx_bin)" -c "$dir/nginx.conf" -p "$dir/" >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS=""
    for _ in $(seq 1 150); do
        if curl -fs -o /dev/null --max-time 1 "$NCHAN_URL/healthz"; then
            local pids
            pids=$(pgrep -P "$SERVER_PID" | paste -sd, -)
            if [ -n "$pids" ] && [ "$(tr ',' '\n' <<<"$pids" | wc -l)" -ge "$workers" ]; then
                SERVER_PIDS=$pids
                return 0
            fi
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench.sh: nginx exited at start-up; last lines of $SERVER_LOG and $dir/error.log:" >&2
            tail -20 "$SERVER_LOG" "$dir/error.log" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    echo "bench.sh: Nchan did not become ready within 30 s" >&2
    exit 1
}

# start_target [sse-server flags...]: a fresh $TARGET (Nchan: $NCHAN_WORKERS workers).
start_target() {
    if [ "$TARGET" = nchan ]; then
        start_nchan "$NCHAN_WORKERS"
    else
        start_server "$@"
    fi
}

# run NAME SSE-BENCH-ARGS...: one run against $TARGET, JSON to $RUN_OUT/NAME.json,
# chart to $RUN_OUT/NAME.png.
run() {
    local name=$1
    shift
    local args=("$@" --url "$URL" --label "$name" --plot "$RUN_OUT/$name.png")
    local cmdline tag="" pid_word='$SERVER_PID'
    if [ "$TARGET" != sse-server ]; then
        tag="$TARGET:"
        pid_word='$NGINX_WORKER_PIDS'
    fi
    printf -v cmdline '%q ' "$BENCH" "${args[@]}"
    printf '%s\t%s--server-pid %s\n' "$tag$name" "$cmdline" "$pid_word" >>"$OUT/commands.tsv"
    log "$tag$name: $cmdline"
    local rc=0
    "$BENCH" "${args[@]}" --server-pid "$SERVER_PIDS" >"$RUN_OUT/$name.json" || rc=$?
    if [ $rc -ne 0 ]; then
        echo "bench.sh: $tag$name exited with $rc" >&2
        echo "{\"label\": \"$name\", \"failed_exit\": $rc}" >"$RUN_OUT/$name.json"
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "bench.sh: $TARGET died during $name; last lines of $SERVER_LOG:" >&2
        tail -20 "$SERVER_LOG" >&2
        start_target "${SERVER_ARGS[@]}"
    fi
}

# field NAME PYTHON-EXPR: a value from a run's JSON (d is the parsed object).
field() {
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$RUN_OUT/$1.json" "$2"
}

mkdir -p "$OUT"

if [ "$MODE" = smoke ]; then
    # The freshest server binary there is; tests just built the debug one.
    if [ -n "${BENCH_SERVER_BIN:-}" ]; then
        SERVER_BIN=$BENCH_SERVER_BIN
    elif ! stale target/release/sse-server; then
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
rm -rf "$OUT/peers"
: >"$OUT/server.log"
date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/started"
SERVER_ARGS=()

# The scenarios over HTTP (/v2), run against $TARGET: sse-server, then each peer.
http_scenarios() {
# Idle streams: RSS per stream, and RSS after they all closed. A fresh server each
# (Nchan: one worker process, which then holds every stream).
IDLE_SIZES=(1000 10000 19000)
[ "$QUICK" = 1 ] && IDLE_SIZES=(1000 5000)
NCHAN_WORKERS=1
for n in "${IDLE_SIZES[@]}"; do
    start_target
    run "idle-$((n / 1000))k" idle -n "$n" --hold 3 --settle 3
done
NCHAN_WORKERS=2

# Fan-out: rising broadcast rates until p99 > 100 ms, events go missing, or the
# publishers cannot reach the rate any more.
fanout_series() { # SUBSCRIBERS LABEL RATES...
    local n=$1 label=$2
    shift 2
    start_target
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
start_target
run unicast-1000-r5000 unicast -n 1000 --users 1000 --rate 5000 --duration 5 --settle 0.5
run unicast-1000-max unicast -n 1000 --users 1000 --rate 0 --duration 5 --settle 0.5
run stalled-1pct-max stalled -n 1000 --users 1000 --rate 0 --duration 5 --stalled-percent 1 --settle 0.5
start_target
# 2 KB messages: each stalled stream is sent ~5 MB, more than the kernel's socket
# buffers take, so its queue overflows and the server closes it.
run fanout-1k-1000-base fanout -n 1000 --rate 500 --pad 2000 --duration 5 --settle 0.5
run fanout-1k-1000-stalled fanout -n 1000 --rate 500 --pad 2000 --duration 5 --stalled-percent 1 --settle 0.5
}
http_scenarios

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

# Peers: the same HTTP scenarios against each, results in $OUT/peers/NAME/.
for peer in $PEERS; do
    case "$peer" in
        nchan)
            if ! install_nchan; then
                echo "bench.sh: Nchan could not be installed; its runs are left out" >&2
                mkdir -p "$OUT/peers"
                echo "not installed" >"$OUT/peers/nchan-skipped"
                continue
            fi
            TARGET=nchan
            URL=$NCHAN_URL
            RUN_OUT=$OUT/peers/nchan
            SERVER_LOG=$RUN_OUT/server.log
            mkdir -p "$RUN_OUT"
            : >"$SERVER_LOG"
            SERVER_ARGS=()
            http_scenarios
            stop_server
            TARGET=sse-server
            URL=$SSE_URL
            RUN_OUT=$OUT
            SERVER_LOG=$OUT/server.log
            ;;
        *)
            echo "bench.sh: unknown peer '$peer' in BENCH_PEERS (known: nchan)" >&2
            exit 2
            ;;
    esac
done

log "writing docs/BENCHMARKS.md"
mkdir -p docs
python3 scripts/bench_report.py "$OUT" docs
echo "docs/BENCHMARKS.md written; raw results in $OUT" >&2
