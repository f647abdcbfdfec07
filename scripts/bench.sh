#!/usr/bin/env bash
# scripts/bench.sh — load-test sse-server with the sse-bench tool (bench/) and write
# docs/BENCHMARKS.md plus the PNG charts in docs/.
#
#   scripts/bench.sh           every scenario (about 20 minutes): idle 1k/10k/19k,
#                              fan-out to 1k and 10k at rising rates until p99 > 100 ms,
#                              unicast 1,000 users, 1 % stalled readers (each pair 3 times),
#                              Kafka ingest beside a plain consumer (the broker floor),
#                              the broker's CPU while an instance idles, and how long a
#                              starting instance re-reads 10 minutes of history
#   scripts/bench.sh --kafka   only the Kafka scenarios (kafka-1k, kafka-10k, kafka-idle,
#                              kafka-catchup; a few minutes), then rewrites only the Kafka
#                              part of docs/BENCHMARKS.md (the "Kafka ingest" section and
#                              the Kafka goals, between their <!-- kafka...:begin/end -->
#                              markers); the other results and the rest of the page stay.
#                              Fails, leaving the page alone, when no broker can be had
#   scripts/bench.sh --quick   every scenario once, at a small size, against every target
#                              (sse-server, Nchan, Centrifugo, Mercure; a few minutes once
#                              the peers are built), results in bench/target/results-quick/
#                              and the tables in its quick/BENCHMARKS.md; exits non-zero
#                              when a run failed. For checking the tables, not the figures
#   scripts/bench.sh --failover
#                              failover (issue 26): $BENCH_FAILOVER_STREAMS /v3 streams
#                              (10,000) through nginx in front of 3 sse-server instances on
#                              the Kafka cluster, while ~100 messages/s are published
#                              through nginx (each with an Idempotency-Key, retried with it);
#                              `kill`: instance 0 gets SIGKILL and is started again 2 s
#                              later; `rolling`: each instance gets SIGTERM in turn (it
#                              drains, --drain-grace 2s), is started again and is ready
#                              before the next. Prints a table: per variant, how long the
#                              cut streams took to be back and exact (p50/p99/max), lost
#                              and duplicated messages, publishes refused at the first try
#                              and in the end, the survivors' peak RSS and CPU. Results in
#                              bench/target/results/failover/; docs/BENCHMARKS.md is left
#                              alone (its "Failover" section is written by hand)
#   scripts/bench.sh --smoke   one short unicast run (300 streams, 3 s) against a freshly
#                              started server (embedded default); exits non-zero on any
#                              lost or duplicated event (scripts/test.sh calls this)
#
# It builds what is missing or stale (the server with `cargo build --release`, the tool
# in bench/ with its own Cargo.lock and bench/target), starts its own
# `target/release/sse-server --bind 127.0.0.1:$BENCH_PORT --queue $BENCH_QUEUE`, records
# its pid (for VmRSS), and stops it again. Raw results (JSON per run, charts, the server
# log, the exact commands) go to bench/target/results/. Latency of a fixed-rate run
# counts from each message's scheduled send time (no coordinated omission); flat-out
# runs count from the actual send (each JSON says which: `latency_from`).
#
# The stalled-reader pairs (unicast-1000-max / stalled-1pct-max and
# fanout-1k-1000-base / fanout-1k-1000-stalled) run 3 times each, NAME-r1..r3, a fresh
# server per pair and the order alternating, since one run's noise is larger than the
# effect; the report shows their medians.
#
# Kafka (sse-server only; the broker is started with scripts/services.sh when it is not
# running, and stopped again afterwards): kafka-1k and kafka-10k run bench/kafka_floor.py,
# a plain confluent-kafka consumer on the same topic with the same fetch.wait.max.ms as the
# server's readers (500 ms), beside the server (`broker_floor` in their JSON: record →
# consumer latency from the same scheduled times); kafka-idle samples the broker's CPU
# (utime+stime of the Kafka JVM in /proc) for $BENCH_IDLE_SECS without and then with an
# idle sse-server --kafka-brokers, and writes kafka-idle.json. kafka-catchup creates a
# fresh topic bench-catchup-<unix time> (`sse-server init`, with fresh, empty v4 topics
# beside it), writes $BENCH_CATCHUP_RECORDS v3 records to it (bench/kafka_catchup.py
# produce: 600,000 = 10 minutes at 1,000 records/s, all within --history-window), starts
# sse-server on it and polls /readyz every 50 ms from the spawn until 200 (the seconds not
# ready; the server's VmRSS once ready), then times a plain consumer reading the same
# records from offset 0 (the broker floor), deletes the topics and writes
# kafka-catchup.json.
#
# The full run then repeats the HTTP scenarios (idle, fan-out, unicast, stalled; not
# Kafka) against Nchan, the nginx pub/sub module, as a peer: installed from Debian when
# missing (nginx-light + libnginx-mod-nchan, with apt as root or through sudo), set up by
# bench/peers/nchan.conf with the same /v2 API, 1 worker process for the idle runs (so
# one process holds every stream) and 2 for the rest. Its RSS is the sum of its workers'
# VmRSS. Its results go to bench/target/results/peers/nchan/ (same file names).
# Then against Centrifugo v6 (bench/peers/centrifugo.json: unidirectional SSE, HTTP API
# with an API key) and a Mercure hub (Caddy + the mercure module, bench/peers/Caddyfile:
# Bolt history, a publisher JWT made here), each built once into
# ~/.cache/sse-server/peers/ by bench/peers/build.sh (pinned versions, a few minutes the
# first time) and measured as one process; the load tool speaks each one's protocol
# (--protocol, --publish-header). Results in peers/centrifugo/ and peers/mercure/.
# bench/peers/README.md says what each peer is and how it is set up.
#
# Environment knobs (all optional):
#   BENCH_PORT            port of the server started here (default 3990)
#   BENCH_QUEUE           --queue of that server (default 1024, the server's default)
#   BENCH_KAFKA_BROKERS   broker for the Kafka scenario (default 127.0.0.1:9092)
#   BENCH_SKIP_KAFKA=1    leave out the Kafka scenarios (full run; --kafka runs them anyway)
#   BENCH_KAFKA_FLOOR_FETCH_WAIT_MS
#                         fetch.wait.max.ms of the broker-floor consumers (default 500, the
#                         wait of the server's readers)
#   BENCH_IDLE_SECS       length of each kafka-idle CPU sample (default 20)
#   BENCH_CATCHUP_RECORDS records kafka-catchup writes and re-reads (default 600000;
#                         60000 with BENCH_QUICK=1)
#   BENCH_CATCHUP_TIMEOUT seconds kafka-catchup waits for /readyz to answer 200 (default 600)
#   BENCH_QUICK=1         fewer, shorter runs (to try the script out)
#   BENCH_SERVER_BIN      measure this server binary instead of building target/release/sse-server
#                         (--smoke too: instead of the freshest of target/{release,debug})
#   BENCH_PEERS           peers measured beside sse-server in the full run, in order:
#                         "nchan centrifugo mercure" (the default), any of them, or empty
#                         for none; never in --smoke
#   BENCH_NCHAN_PORT      port of the Nchan peer (default 3991)
#   BENCH_CENTRIFUGO_PORT port of the Centrifugo peer (default 3992)
#   BENCH_MERCURE_PORT    port of the Mercure peer (default 3993)
#   BENCH_FAILOVER_STREAMS  --failover: streams (default 10000)
#   BENCH_FAILOVER_USERS    --failover: users the streams are spread over (default
#                           streams / 10)
#   BENCH_FAILOVER_RATE     --failover: messages per second (default 100)
#   BENCH_FAILOVER_BROKERS  --failover: the instances' --kafka-brokers (default
#                           127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096)
#   BENCH_FAILOVER_PORT     --failover: nginx's port; the instances take the 3 next
#                           (default 4000)
#   CARGO_BUILD_JOBS      passed to cargo as usual
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

MODE=full
case "${1:-}" in
    --smoke) MODE=smoke ;;
    --kafka) MODE=kafka ;;
    --quick) MODE=quick ;;
    --failover) MODE=failover ;;
    "") ;;
    -h | --help)
        sed -n '2,111p' "$0"
        exit 0
        ;;
    *)
        echo "usage: scripts/bench.sh [--smoke | --kafka | --quick | --failover]" >&2
        exit 2
        ;;
esac

PORT=${BENCH_PORT:-3990}
QUEUE=${BENCH_QUEUE:-1024}
KAFKA=${BENCH_KAFKA_BROKERS:-127.0.0.1:9092}
QUICK=${BENCH_QUICK:-0}
[ "$MODE" = quick ] && QUICK=1
PEERS=${BENCH_PEERS-nchan centrifugo mercure}
KNOWN_PEERS="nchan centrifugo mercure"
FLOOR_FETCH_WAIT_MS=${BENCH_KAFKA_FLOOR_FETCH_WAIT_MS:-500}
IDLE_SECS=${BENCH_IDLE_SECS:-20}
CATCHUP_RECORDS=${BENCH_CATCHUP_RECORDS:-600000}
[ "$QUICK" = 1 ] && CATCHUP_RECORDS=${BENCH_CATCHUP_RECORDS:-60000}
CATCHUP_TIMEOUT=${BENCH_CATCHUP_TIMEOUT:-600}
NCHAN_PORT=${BENCH_NCHAN_PORT:-3991}
CENTRIFUGO_PORT=${BENCH_CENTRIFUGO_PORT:-3992}
MERCURE_PORT=${BENCH_MERCURE_PORT:-3993}
OUT=bench/target/results
# --quick keeps its results apart, so a check never mixes with the full run's.
[ "$MODE" = quick ] && OUT=bench/target/results-quick
BENCH=bench/target/release/sse-bench
SSE_URL=http://127.0.0.1:$PORT
NCHAN_URL=http://127.0.0.1:$NCHAN_PORT
CENTRIFUGO_URL=http://127.0.0.1:$CENTRIFUGO_PORT
MERCURE_URL=http://127.0.0.1:$MERCURE_PORT
# What start_target starts and run measures: sse-server, or a peer (nchan, centrifugo,
# mercure).
TARGET=sse-server
URL=$SSE_URL
# What run adds to the load tool's arguments for $TARGET: the protocol it speaks and the
# headers its publishers send (API key, JWT).
PROTO_ARGS=()
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
# The peers built by bench/peers/build.sh (set when their turn comes), and their
# secrets: loopback only, a fresh process each time.
CENTRIFUGO_BIN=""
CENTRIFUGO_API_KEY=sse-bench-centrifugo-api-key
MERCURE_BIN=""
MERCURE_JWT_KEY=sse-bench-mercure-hs256-key-0123456789abcdef

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
# Set while a broker that bench.sh started runs: stopped again on the way out.
STARTED_KAFKA=0
stop_started_kafka() {
    if [ "$STARTED_KAFKA" = 1 ]; then
        log "stopping the Kafka broker started for the Kafka scenarios"
        scripts/services.sh down kafka || true
        STARTED_KAFKA=0
    fi
}
trap 'stop_server; stop_started_kafka' EXIT

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

# wait_peer NAME URL LOG...: waits until URL answers 200 while $SERVER_PID lives (30 s
# at most); exits with the LOGs' last lines when the peer dies or never gets ready.
wait_peer() {
    local name=$1 url=$2
    shift 2
    for _ in $(seq 1 150); do
        if curl -fs -o /dev/null --max-time 1 "$url"; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            echo "bench.sh: $name exited at start-up; last lines of $*:" >&2
            tail -20 "$@" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
    echo "bench.sh: $name did not become ready within 30 s" >&2
    exit 1
}

# refuse_busy NAME URL KNOB: exits when something already answers on URL.
refuse_busy() {
    if curl -s -o /dev/null --max-time 1 "$2"; then
        echo "bench.sh: something already listens on $2; set $3" >&2
        exit 1
    fi
}

# install_peer NAME: builds Centrifugo or the Mercure hub into the cache when missing
# (bench/peers/build.sh) and sets CENTRIFUGO_BIN / MERCURE_BIN. Fails (without exiting)
# when the build fails.
install_peer() {
    local bin
    bin=$(bench/peers/build.sh "$1") || return 1
    case "$1" in
        centrifugo) CENTRIFUGO_BIN=$bin ;;
        mercure) MERCURE_BIN=$bin ;;
    esac
}

# start_centrifugo: a fresh Centrifugo with bench/peers/centrifugo.json on
# $CENTRIFUGO_PORT, ready when this returns (GET /health answers 200). One process: its
# pid is the RSS pid. The filled config is under $OUT/peers/centrifugo/centrifugo/.
# stop_server stops it.
start_centrifugo() {
    stop_server
    refuse_busy Centrifugo "$CENTRIFUGO_URL/" BENCH_CENTRIFUGO_PORT
    local dir=$ROOT/$OUT/peers/centrifugo/centrifugo
    mkdir -p "$dir"
    sed -e '/^\/\//d' -e "s|\${CENTRIFUGO_PORT}|$CENTRIFUGO_PORT|g" \
        -e "s|\${CENTRIFUGO_API_KEY}|$CENTRIFUGO_API_KEY|g" bench/peers/centrifugo.json >"$dir/config.json"
    "$CENTRIFUGO_BIN" -c "$dir/config.json" >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS=$SERVER_PID
    wait_peer Centrifugo "$CENTRIFUGO_URL/health" "$SERVER_LOG"
}

# mercure_jwt: the publishers' JWT for the Mercure hub, HS256 over $MERCURE_JWT_KEY with
# the claims {"mercure":{"publish":["*"]}}.
mercure_jwt() {
    python3 - "$MERCURE_JWT_KEY" <<'PY'
import base64, hashlib, hmac, json, sys
def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
def part(obj):
    return b64(json.dumps(obj, separators=(",", ":")).encode())
signed = part({"alg": "HS256", "typ": "JWT"}) + "." + part({"mercure": {"publish": ["*"]}})
sig = hmac.new(sys.argv[1].encode(), signed.encode(), hashlib.sha256).digest()
print(signed + "." + b64(sig))
PY
}

# start_mercure: a fresh Mercure hub (Caddy) with bench/peers/Caddyfile on
# $MERCURE_PORT, ready when this returns (GET /healthz answers 200), with an empty
# history (its Bolt file and Caddy's own files are under $OUT/peers/mercure/caddy/, new
# each time). One process: its pid is the RSS pid. stop_server stops it.
start_mercure() {
    stop_server
    refuse_busy Mercure "$MERCURE_URL/" BENCH_MERCURE_PORT
    local dir=$ROOT/$OUT/peers/mercure/caddy
    rm -rf "$dir"
    mkdir -p "$dir"
    MERCURE_DIR=$dir MERCURE_PORT=$MERCURE_PORT MERCURE_JWT_KEY=$MERCURE_JWT_KEY \
        XDG_DATA_HOME=$dir/data XDG_CONFIG_HOME=$dir/config \
        "$MERCURE_BIN" run --config bench/peers/Caddyfile --adapter caddyfile >>"$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    SERVER_PIDS=$SERVER_PID
    wait_peer Mercure "$MERCURE_URL/healthz" "$SERVER_LOG"
}

# start_target [sse-server flags...]: a fresh $TARGET (Nchan: $NCHAN_WORKERS workers).
start_target() {
    case "$TARGET" in
        nchan) start_nchan "$NCHAN_WORKERS" ;;
        centrifugo) start_centrifugo ;;
        mercure) start_mercure ;;
        *) start_server "$@" ;;
    esac
}

# run NAME SSE-BENCH-ARGS...: one run against $TARGET, JSON to $RUN_OUT/NAME.json,
# chart to $RUN_OUT/NAME.png.
run() {
    local name=$1
    shift
    local args=("$@" --url "$URL" "${PROTO_ARGS[@]}" --label "$name" --plot "$RUN_OUT/$name.png")
    local cmdline tag="" pid_word='$SERVER_PID'
    if [ "$TARGET" != sse-server ]; then
        tag="$TARGET:"
    fi
    if [ "$TARGET" = nchan ]; then
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
    # The smoke run checks loss and duplicates, not speed: a debug build of the tool
    # does, in half the build time of a release one.
    log "building the load tool (bench/, debug)"
    (cd bench && cargo build --locked --quiet)
    BENCH=bench/target/debug/sse-bench
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

# ---------------------------------------------------------------- failover
if [ "$MODE" = failover ]; then
    FO_N=${BENCH_FAILOVER_STREAMS:-10000}
    FO_USERS=${BENCH_FAILOVER_USERS:-$((FO_N / 10))}
    FO_RATE=${BENCH_FAILOVER_RATE:-100}
    FO_BROKERS=${BENCH_FAILOVER_BROKERS:-127.0.0.1:9092,127.0.0.1:9094,127.0.0.1:9096}
    FO_PORT=${BENCH_FAILOVER_PORT:-4000}
    FO_INSTANCES=127.0.0.1:$((FO_PORT + 1)),127.0.0.1:$((FO_PORT + 2)),127.0.0.1:$((FO_PORT + 3))
    FO_OUT=$OUT/failover
    # The freshest server binary there is (a release one is built when there is none).
    if [ -n "${BENCH_SERVER_BIN:-}" ]; then
        SERVER_BIN=$BENCH_SERVER_BIN
    elif [ -x target/release/sse-server ] && ! [ target/debug/sse-server -nt target/release/sse-server ]; then
        SERVER_BIN=target/release/sse-server
    elif [ -x target/debug/sse-server ]; then
        SERVER_BIN=target/debug/sse-server
    else
        log "building the server (release)"
        cargo build --release --bin sse-server
        SERVER_BIN=target/release/sse-server
    fi
    build_bench
    NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$NGINX_BIN" ] || {
        echo "bench.sh: nginx missing (apt-get install nginx-light)" >&2
        exit 1
    }
    rm -rf "$FO_OUT"
    mkdir -p "$FO_OUT/nginx/logs" "$FO_OUT/nginx/tmp"
    # Each proxied stream is 2 connections in nginx; 2 workers with as many descriptors
    # as the hard limit allows, and reuseport so the kernel spreads the streams over both.
    NOFILE=$(ulimit -Hn)
    [ "$NOFILE" = unlimited ] && NOFILE=65536
    # The settings of deploy/nginx/sse-server.conf and sse-server-locations.conf.
    cat >"$FO_OUT/nginx/nginx.conf" <<CONF
daemon off;
worker_processes 2;
worker_rlimit_nofile $NOFILE;
pid nginx.pid;
error_log logs/error.log warn;
events { worker_connections $((NOFILE - 500)); }
http {
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    access_log off;
    upstream sse_server {
        server 127.0.0.1:$((FO_PORT + 1)) max_fails=0;
        server 127.0.0.1:$((FO_PORT + 2)) max_fails=0;
        server 127.0.0.1:$((FO_PORT + 3)) max_fails=0;
        keepalive 64;
        keepalive_timeout 5s;
    }
    server {
        listen 127.0.0.1:$FO_PORT reuseport;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host \$host;
        proxy_connect_timeout 2s;
        proxy_next_upstream error timeout non_idempotent;
        proxy_next_upstream_tries 3;
        proxy_read_timeout 30s;
        location ~ ^/v[1-4]/sse\$ {
            proxy_pass http://sse_server;
            proxy_buffering off;
            gzip off;
            proxy_read_timeout 1h;
            proxy_send_timeout 1h;
        }
        location / {
            proxy_pass http://sse_server;
        }
    }
}
CONF
    NGINX=("$NGINX_BIN" -p "$ROOT/$FO_OUT/nginx/" -c "$ROOT/$FO_OUT/nginx/nginx.conf" -e "$ROOT/$FO_OUT/nginx/logs/error.log")
    "${NGINX[@]}" -t -q
    log "nginx on 127.0.0.1:$FO_PORT in front of $FO_INSTANCES ($SERVER_BIN, Kafka $FO_BROKERS)"
    "${NGINX[@]}" &
    SERVER_PID=$!
    for _ in $(seq 50); do
        curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$FO_PORT/" && break
        sleep 0.1
    done
    FO_CMD="$SERVER_BIN --kafka-brokers $FO_BROKERS --drain-grace 2s --max-streams $FO_N"
    for fault in kill rolling; do
        log "failover-$fault: $FO_N streams over $FO_USERS users, $FO_RATE messages/s"
        args=(failover --fault "$fault" --url "http://127.0.0.1:$FO_PORT" --instance "$FO_INSTANCES"
            --server-cmd "$FO_CMD" --log-dir "$FO_OUT/logs-$fault" -n "$FO_N" --users "$FO_USERS"
            --rate "$FO_RATE" --fault-at 5 --restart-after 2 --duration 5 --grace 30
            --label "failover-$fault")
        printf 'failover-%s\t%s %s\n' "$fault" "$BENCH" "${args[*]}" >>"$FO_OUT/commands.tsv"
        SSE_LOG=${BENCH_SERVER_LOG:-warn} "$BENCH" "${args[@]}" >"$FO_OUT/failover-$fault.json" ||
            echo "bench.sh: failover-$fault exited with $?" >&2
    done
    python3 - "$FO_OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
print("| variant | streams | cut | back and exact p50 / p99 / max (ms) | never back or exact "
      "| lost | duplicated | refused first try / final (of published) | survivors' peak RSS (MiB) "
      "| survivors' CPU (% of a core) |")
print("| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | --- | --- |")
for fault in ("kill", "rolling"):
    try:
        d = json.load(open(os.path.join(out, f"failover-{fault}.json")))
    except (OSError, ValueError):
        d = {}
    if "back_and_exact" not in d:
        print(f"| {fault} | (no result: see {out}/failover-{fault}.json and the tool's stderr) |")
        continue
    b, p = d["back_and_exact"], d["publish"]
    keep = [x for x in d["processes"] if x["survivor"]] or d["processes"]
    rss = ", ".join(f'{x["peak_rss_kib"] / 1024:.0f}' for x in keep)
    cpu = ", ".join(f'{x["cpu_percent"]:.0f}' for x in keep)
    who = "" if any(x["survivor"] for x in d["processes"]) else " (every process)"
    print(f'| {fault} | {d["connections"]["connected"]} | {d["cut_streams"]} '
          f'| {b["p50_ms"]} / {b["p99_ms"]} / {b["max_ms"]} | {d["never_back"] + d["never_exact"]} '
          f'| {d["lost"]} | {d["duplicated"]} '
          f'| {p["refused_first_try"]} / {p["refused_final"]} (of {p["published"]}) '
          f'| {rss}{who} | {cpu}{who} |')
PY
    exit 0
fi

# ---------------------------------------------------------------- full run (and --kafka)
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
if [ "$MODE" = kafka ]; then
    # Only the Kafka results are replaced; those of the last full run stay beside them.
    rm -f "$OUT"/kafka-*.json "$OUT"/kafka-*.png "$OUT"/kafka-*skipped "$OUT/kafka-started"
    if [ -f "$OUT/commands.tsv" ]; then
        grep -v '^kafka-' "$OUT/commands.tsv" >"$OUT/commands.tsv.new" || true
        mv "$OUT/commands.tsv.new" "$OUT/commands.tsv"
    fi
    printf '\n--- bench.sh --kafka, %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$OUT/server.log"
else
    rm -f "$OUT"/*.json "$OUT"/*.png "$OUT"/*-skipped "$OUT/commands.tsv" "$OUT/kafka-started"
    rm -rf "$OUT/peers"
    : >"$OUT/server.log"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/started"
    if scripts/services.sh status kafka >/dev/null 2>&1; then
        echo "bench.sh: warning: a Kafka broker is running; it competes for CPU with the HTTP" \
            "scenarios. For clean figures stop it first: scripts/services.sh down kafka" >&2
    fi
fi
SERVER_ARGS=()

# The scenarios over HTTP (/v2), run against $TARGET: sse-server, then each peer.
# fanout_scenarios: the two fan-out series (1k and 10k subscribers).
fanout_scenarios() {
    if [ "$QUICK" = 1 ]; then
        fanout_series 1000 1k 200 1000
        fanout_series 10000 10k 20 50
    else
        # 1,100 and 1,300: the 1 M deliveries/s goal lies between 1,000 and 2,000.
        fanout_series 1000 1k 100 300 1000 1100 1300 2000 4000 8000
        fanout_series 10000 10k 10 25 50 75 100 150 200 300
    fi
}

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

# Fan-out: rising broadcast rates until p99 > 1 s, events go missing, or the
# publishers cannot reach the rate any more (past 100 ms, so the report shows what
# the rate a goal names costs in latency).
fanout_series() { # SUBSCRIBERS LABEL RATES...
    local n=$1 label=$2
    shift 2
    start_target
    for rate in "$@"; do
        run "fanout-$label-$rate" fanout -n "$n" --rate "$rate" --duration 4 --grace 5 --settle 0.5
        local verdict=stop
        verdict=$(field "fanout-$label-$rate" \
            '"stop" if d.get("failed_exit") or d["latency"]["p99_ms"] > 1000 or d["lost"] > 0 or d["publish"]["achieved_rate"] < 0.8 * d["publish"]["target_rate"] else "go"')
        if [ "$verdict" = stop ]; then
            break
        fi
    done
}
fanout_scenarios

# Resume: subscribers away while messages are published, back with the target's
# own recovery (Last-Event-ID, or Centrifugo's offset and epoch per channel).
start_target
run resume resume -n 100 --users 100

# Unicast to 1,000 users: a fixed rate for latency, then as fast as 8 publishers go;
# the same flat-out run with 1 % of the streams never reading. Then 1 % stalled
# readers in a fan-out, where their queues do overflow.
start_target
run unicast-1000-r5000 unicast -n 1000 --users 1000 --rate 5000 --duration 5 --settle 0.5
# The pairs, 3 times each (NAME-r1..r3), a fresh target per pair; which of the two
# goes first alternates so neither always meets the fresher server.
unicast_base() {
    run "unicast-1000-max-r$1" unicast -n 1000 --users 1000 --rate 0 --duration 5 --settle 0.5
}
unicast_stalled() {
    run "stalled-1pct-max-r$1" stalled -n 1000 --users 1000 --rate 0 --duration 5 --stalled-percent 1 \
        --settle 0.5
}
# 2 KB messages: each stalled stream is sent ~5 MB, more than the kernel's socket
# buffers take, so its queue overflows and the server closes it.
fanout_base() {
    run "fanout-1k-1000-base-r$1" fanout -n 1000 --rate 500 --pad 2000 --duration 5 --settle 0.5
}
fanout_stalled() {
    run "fanout-1k-1000-stalled-r$1" fanout -n 1000 --rate 500 --pad 2000 --duration 5 \
        --stalled-percent 1 --settle 0.5
}
PAIR_RUNS=(1 2 3)
[ "$QUICK" = 1 ] && PAIR_RUNS=(1)
for pair in unicast fanout; do
    for r in "${PAIR_RUNS[@]}"; do
        start_target
        if [ $((r % 2)) = 1 ]; then
            "${pair}_base" "$r"
            "${pair}_stalled" "$r"
        else
            "${pair}_stalled" "$r"
            "${pair}_base" "$r"
        fi
    done
done
}

# cpu_ticks PID...: their utime + stime so far, in clock ticks (/proc/PID/stat fields 14
# and 15, counted after the ")" that ends the command name); a pid that is gone adds 0.
cpu_ticks() {
    local total=0 pid stat f
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<<"${stat##*) }"
        total=$((total + f[11] + f[12]))
    done
    echo "$total"
}

# cpu_window SECONDS BROKER-PIDS [SERVER-PID]: "ELAPSED_NS BROKER_TICKS SERVER_TICKS"
# over one window of that many seconds (SERVER_TICKS 0 without a server pid).
cpu_window() {
    local secs=$1 broker=$2 server=${3:-}
    local t0 b0 s0=0 t1 b1 s1=0
    # shellcheck disable=SC2086 # one pid per word
    {
        t0=$(date +%s%N)
        b0=$(cpu_ticks $broker)
        [ -z "$server" ] || s0=$(cpu_ticks "$server")
        sleep "$secs"
        b1=$(cpu_ticks $broker)
        [ -z "$server" ] || s1=$(cpu_ticks "$server")
        t1=$(date +%s%N)
    }
    echo "$((t1 - t0)) $((b1 - b0)) $((s1 - s0))"
}

# kafka_idle: the broker's CPU over $IDLE_SECS with no sse-server, then over $IDLE_SECS
# with an idle `sse-server --kafka-brokers` (once it is ready, and 5 s more), as % of one
# core; the server's own CPU in the second window too. JSON to $OUT/kafka-idle.json.
kafka_idle() {
    local broker="" without with
    # The broker is the JVM running kafka.Kafka: the one scripts/services.sh started,
    # else any (e.g. started by hand).
    if [ -s .local/run/kafka.pid ] && grep -qF kafka.Kafka "/proc/$(cat .local/run/kafka.pid)/cmdline" 2>/dev/null; then
        broker=$(cat .local/run/kafka.pid)
    else
        broker=$({ pgrep -f kafka.Kafka || true; } | paste -sd ' ' -)
    fi
    if [ -z "$broker" ]; then
        echo "bench.sh: no Kafka broker process (kafka.Kafka) found; kafka-idle is left out" >&2
        echo "no kafka.Kafka process found (.local/run/kafka.pid, pgrep -f kafka.Kafka) whose CPU could be sampled" >"$OUT/kafka-idle-skipped"
        return 0
    fi
    stop_server
    printf '%s\t%s\n' kafka-idle "# utime+stime of the Kafka broker (kafka.Kafka, pid $broker) over ${IDLE_SECS}s without, then ${IDLE_SECS}s with an idle $SERVER_BIN --kafka-brokers $KAFKA" \
        >>"$OUT/commands.tsv"
    log "kafka-idle: the broker's CPU over ${IDLE_SECS}s without sse-server (kafka.Kafka pid $broker)"
    sleep 5 # whatever the runs before left the broker to do
    without=$(cpu_window "$IDLE_SECS" "$broker")
    start_server --kafka-brokers "$KAFKA"
    sleep 5
    log "kafka-idle: the broker's CPU over ${IDLE_SECS}s with an idle sse-server (pid $SERVER_PID)"
    with=$(cpu_window "$IDLE_SECS" "$broker" "$SERVER_PID")
    stop_server
    python3 - "$OUT/kafka-idle.json" "$(getconf CLK_TCK)" "$broker" "$without" "$with" <<'PY'
import json, sys
path, hz, broker, without, with_ = sys.argv[1:]
def pct(ticks, ns):
    return round(int(ticks) / float(hz) / (int(ns) / 1e9) * 100, 2)
ns0, b0, _ = without.split()
ns1, b1, s1 = with_.split()
json.dump({
    "scenario": "kafka-idle",
    "label": "kafka-idle",
    "window_s": [round(int(ns0) / 1e9, 2), round(int(ns1) / 1e9, 2)],
    "broker_pids": [int(p) for p in broker.split()],
    "broker_cpu_pct_without_server": pct(b0, ns0),
    "broker_cpu_pct_with_server": pct(b1, ns1),
    "broker_cpu_pct_added": round(pct(b1, ns1) - pct(b0, ns0), 2),
    "server_cpu_pct": pct(s1, ns1),
}, open(path, "w"), indent=1)
PY
}

# note_command NAME COMMAND...: one line of $OUT/commands.tsv (the report shows them).
note_command() {
    local name=$1 cmdline
    shift
    printf -v cmdline '%q ' "$@"
    printf '%s\t%s\n' "$name" "${cmdline% }" >>"$OUT/commands.tsv"
}

# kafka_catchup: how long a starting instance stays not ready (/readyz 503) while it
# re-reads $CATCHUP_RECORDS v3 records (by default 10 minutes at 1,000 records/s), all
# written just before to a fresh topic, with fresh (empty) v4 topics beside it; its
# VmRSS once ready; then how long a plain consumer takes to read the same records from
# offset 0 (the broker floor). The topics are deleted afterwards. JSON to
# $OUT/kafka-catchup.json (with failed_exit when the records could not be written or the
# server did not become ready).
kafka_catchup() {
    local n=$CATCHUP_RECORDS topic tool=bench/kafka_catchup.py rc=0 step="" t0
    local produced="" ready="" floor="" floor_rc=0
    topic=bench-catchup-$(date +%s)
    local flags=(--kafka-brokers "$KAFKA" --v3-topic "$topic" --v4-command-topic "$topic-commands"
        --v4-event-topic "$topic-events" --v4-writers-group "$topic-writers")
    stop_server
    note_command kafka-catchup "$SERVER_BIN" "${flags[@]}" init
    note_command kafka-catchup "$SSE_PYTHON" "$tool" produce "$KAFKA" "$topic" --records "$n"
    printf '%s\t%s\n' kafka-catchup "$(printf '%q ' "$SERVER_BIN" --bind "127.0.0.1:$PORT" --queue "$QUEUE" \
        "${flags[@]}")& # spawned at \$T0 (unix nanos)" >>"$OUT/commands.tsv"
    printf '%s\t%s\n' kafka-catchup "$(printf '%q ' "$SSE_PYTHON" "$tool" ready "$URL")\$SERVER_PID --since-ns \$T0 --topic $topic --timeout $CATCHUP_TIMEOUT" \
        >>"$OUT/commands.tsv"
    note_command kafka-catchup "$SSE_PYTHON" "$tool" floor "$KAFKA" "$topic" --records "$n" \
        --fetch-wait-ms "$FLOOR_FETCH_WAIT_MS"

    log "kafka-catchup: topics $topic{,-commands,-events} ($SERVER_BIN init), then $n records to $topic"
    step=init
    "$SERVER_BIN" "${flags[@]}" init >>"$OUT/server.log" 2>&1 || rc=$?
    if [ $rc = 0 ]; then
        step=produce
        produced=$("$SSE_PYTHON" "$tool" produce "$KAFKA" "$topic" --records "$n") || rc=$?
    fi
    if [ $rc = 0 ]; then
        step=ready
        if curl -s -o /dev/null --max-time 1 "$URL/healthz"; then
            echo "bench.sh: something already listens on $URL; set BENCH_PORT" >&2
            exit 1
        fi
        log "kafka-catchup: sse-server on $topic, /readyz every 50 ms until 200"
        t0=$(date +%s%N)
        SSE_LOG=${BENCH_SERVER_LOG:-warn} "$SERVER_BIN" --bind "127.0.0.1:$PORT" --queue "$QUEUE" "${flags[@]}" \
            >>"$OUT/server.log" 2>&1 &
        SERVER_PID=$!
        SERVER_PIDS=$SERVER_PID
        ready=$("$SSE_PYTHON" "$tool" ready "$URL" "$SERVER_PID" --since-ns "$t0" --topic "$topic" \
            --timeout "$CATCHUP_TIMEOUT") || rc=$?
        stop_server
    fi
    if [ $rc = 0 ]; then
        log "kafka-catchup: the broker floor, a plain consumer reading the $n records from offset 0"
        floor=$("$SSE_PYTHON" "$tool" floor "$KAFKA" "$topic" --records "$n" \
            --fetch-wait-ms "$FLOOR_FETCH_WAIT_MS") || floor_rc=$?
    else
        echo "bench.sh: kafka-catchup failed at $step (exit $rc)" >&2
    fi
    "$SSE_PYTHON" "$tool" delete "$KAFKA" "$topic" "$topic-commands" "$topic-events" || true
    python3 - "$OUT/kafka-catchup.json" "$rc" "$step" "$floor_rc" "$topic" "$n" "$produced" "$ready" "$floor" <<'PY'
import json, sys
path, rc, step, floor_rc, topic, n, produced, ready, floor = sys.argv[1:]
def parse(text):
    try:
        return json.loads(text.strip().splitlines()[-1]) if text.strip() else {}
    except ValueError:
        return {"unparsed": text[-300:]}
ready, floor = parse(ready), parse(floor)
d = {"scenario": "kafka-catchup", "label": "kafka-catchup", "topic": topic, "records": int(n),
     "produce": parse(produced), "readyz_reuse_s": 1}
d.update(ready)
if int(rc):
    d["failed_exit"] = int(rc)
    d["failed_step"] = step
elif int(floor_rc):
    d["broker_floor"] = dict(floor, error=floor.get("error") or "the floor consumer exited with %s" % floor_rc)
else:
    d["broker_floor"] = floor
json.dump(d, open(path, "w"), indent=1)
PY
}

# kafka_scenarios: Kafka ingest (records `user:payload` through the broker, subscribers on
# /v3/sse, a plain consumer beside them for the broker floor), then the broker's CPU while
# an instance idles, then an instance's catch-up. Starts the broker when it is not
# running (and stops it again). KAFKA_MEASURED=1 when a broker answered; otherwise the
# reason is in $OUT/kafka-skipped.
KAFKA_MEASURED=0
kafka_scenarios() {
    if ! scripts/services.sh status kafka >/dev/null 2>&1; then
        log "starting the Kafka broker (scripts/services.sh up kafka)"
        STARTED_KAFKA=1
        scripts/services.sh up kafka || true
    fi
    if ! scripts/services.sh status kafka >/dev/null 2>&1; then
        echo "bench.sh: no Kafka broker on $KAFKA; the Kafka scenarios are left out" >&2
        echo "no broker answered on $KAFKA (scripts/services.sh up kafka did not start one)" >"$OUT/kafka-skipped"
        stop_started_kafka
        return 0
    fi
    KAFKA_MEASURED=1
    date -u +%Y-%m-%dT%H:%M:%SZ >"$OUT/kafka-started"
    SERVER_ARGS=(--kafka-brokers "$KAFKA")
    start_server "${SERVER_ARGS[@]}"
    # kafka_tool.py, kafka_floor.py and kafka_catchup.py need confluent-kafka: the venv's Python.
    prereqs_python
    local produce="$SSE_PYTHON tests/kafka_tool.py produce $KAFKA v3_messages --key sse-bench"
    local floor="$SSE_PYTHON bench/kafka_floor.py $KAFKA v3_messages --fetch-wait-ms $FLOOR_FETCH_WAIT_MS"
    run kafka-1k kafka -n 1000 --users 1000 --rate 1000 --duration 5 --grace 10 --settle 0.5 \
        --kafka-produce "$produce" --kafka-floor "$floor"
    [ "$QUICK" = 1 ] || run kafka-10k kafka -n 1000 --users 1000 --rate 10000 --duration 5 --grace 10 \
        --settle 0.5 --kafka-produce "$produce" --kafka-floor "$floor"
    SERVER_ARGS=()
    kafka_idle
    kafka_catchup
    stop_server
    # The peers' runs that follow measure CPU-bound work: a broker left running
    # competes with them for the CPU.
    stop_started_kafka
}

if [ "$MODE" = kafka ]; then
    kafka_scenarios
    stop_server
    if [ "$KAFKA_MEASURED" != 1 ]; then
        echo "bench.sh: no Kafka results; docs/BENCHMARKS.md is left as it was" >&2
        exit 1
    fi
    log "updating the Kafka part of docs/BENCHMARKS.md"
    python3 scripts/bench_report.py --kafka-only "$OUT" docs
    echo "the Kafka part of docs/BENCHMARKS.md rewritten; raw results in $OUT" >&2
    exit 0
fi

http_scenarios
if [ "${BENCH_SKIP_KAFKA:-0}" = 1 ]; then
    echo "left out: BENCH_SKIP_KAFKA=1" >"$OUT/kafka-skipped"
else
    kafka_scenarios
fi
stop_server

# Peers: the same HTTP scenarios against each, results in $OUT/peers/NAME/.
for peer in $KNOWN_PEERS; do
    case " $PEERS " in
        *" $peer "*) ;;
        *)
            mkdir -p "$OUT/peers"
            echo "left out: BENCH_PEERS=\"$PEERS\" does not name $peer" >"$OUT/peers/$peer-skipped"
            ;;
    esac
done
for peer in $PEERS; do
    case "$peer" in
        nchan)
            if ! install_nchan; then
                echo "bench.sh: Nchan could not be installed; its runs are left out" >&2
                mkdir -p "$OUT/peers"
                echo "not installed" >"$OUT/peers/nchan-skipped"
                continue
            fi
            URL=$NCHAN_URL
            PROTO_ARGS=(--protocol nchan)
            ;;
        centrifugo | mercure)
            if ! install_peer "$peer"; then
                echo "bench.sh: $peer could not be built (bench/peers/build.sh $peer); its runs are left out" >&2
                mkdir -p "$OUT/peers"
                echo "not built (bench/peers/build.sh $peer failed)" >"$OUT/peers/$peer-skipped"
                continue
            fi
            if [ "$peer" = centrifugo ]; then
                URL=$CENTRIFUGO_URL
                PROTO_ARGS=(--protocol centrifugo --publish-header "X-API-Key: $CENTRIFUGO_API_KEY")
            else
                URL=$MERCURE_URL
                PROTO_ARGS=(--protocol mercure --publish-header "Authorization: Bearer $(mercure_jwt)")
            fi
            ;;
        *)
            echo "bench.sh: unknown peer '$peer' in BENCH_PEERS (known: $KNOWN_PEERS)" >&2
            exit 2
            ;;
    esac
    TARGET=$peer
    RUN_OUT=$OUT/peers/$peer
    SERVER_LOG=$RUN_OUT/server.log
    mkdir -p "$RUN_OUT"
    : >"$SERVER_LOG"
    SERVER_ARGS=()
    http_scenarios
    stop_server
    if [ "$peer" = nchan ]; then
        # Nchan at its best for fan-out: every subscriber on the broadcast channel
        # alone, with 2 workers (and 1, in the full run); the report takes the best.
        PROTO_ARGS=(--protocol nchan-all)
        variants=("nchan-all:2")
        [ "$QUICK" = 1 ] || variants+=("nchan-all-1w:1")
        for variant in "${variants[@]}"; do
            RUN_OUT=$OUT/peers/${variant%%:*}
            NCHAN_WORKERS=${variant##*:}
            mkdir -p "$RUN_OUT"
            SERVER_LOG=$RUN_OUT/server.log
            : >"$SERVER_LOG"
            fanout_scenarios
            stop_server
        done
        NCHAN_WORKERS=2
    fi
    TARGET=sse-server
    URL=$SSE_URL
    PROTO_ARGS=()
    RUN_OUT=$OUT
    SERVER_LOG=$OUT/server.log
done

if [ "$MODE" = quick ]; then
    # A check of the tables, not the figures: the report goes next to the results.
    log "writing $OUT/quick/BENCHMARKS.md"
    mkdir -p "$OUT/quick"
    python3 scripts/bench_report.py "$OUT" "$OUT/quick"
    failed=$(grep -l '"failed_exit"' "$OUT"/*.json "$OUT"/peers/*/*.json 2>/dev/null || true)
    if [ -n "$failed" ]; then
        echo "bench.sh --quick: these runs failed:" $failed >&2
        exit 1
    fi
    echo "bench.sh --quick: every run completed; tables in $OUT/quick/BENCHMARKS.md" >&2
    exit 0
fi

log "writing docs/BENCHMARKS.md"
mkdir -p docs
python3 scripts/bench_report.py "$OUT" docs
echo "docs/BENCHMARKS.md written; raw results in $OUT" >&2
