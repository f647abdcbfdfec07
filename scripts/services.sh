#!/usr/bin/env bash
# scripts/services.sh — start, stop and inspect sse-server's local backing services,
# without Docker:
#   kafka     a Kafka-protocol broker (tansu, Apache-2.0, Rust) on 127.0.0.1:9092,
#             stored in SQLite under .local/kafka/
#   dynamodb  DynamoDB Local (the official jar, via the npm package
#             amplify-dynamodb-simulator) on 127.0.0.1:8111, stored under .local/dynamodb/
#
# Usage: scripts/services.sh up|down|status [kafka|dynamodb]   (no 2nd argument = both)
#
#   up      installs what is missing, starts what is not running (idempotent: a running
#           service is left alone, a dead one is restarted), waits until each answers,
#           then creates the Kafka topics (see TOPICS below).
#   down    stops only the processes `up` started (pid files under .local/run/); data is kept.
#   status  prints what runs; exit 0 when every asked-for service answers, 3 otherwise.
#
# State lives in .local/ at the repo root (gitignored): logs in .local/logs/, pid files in
# .local/run/, data in .local/kafka/ and .local/dynamodb/, the Python tools' virtual
# environment in .local/venv/ (Debian's python3 refuses pip installs, PEP 668).
# `rm -rf .local` after `down` resets everything.
# Any python3 on PATH will do, Debian's externally-managed one included:
# pip installs only into .local/venv/.
#
# `up` also creates the DynamoDB table `report_status` when it is missing (the same
# definition as `sse-server init-table`, which the server also runs at start-up);
# ./dynamodb_local_init.sh deletes and recreates it.
#
# Environment knobs (all optional):
#   SSE_SERVICES_WAIT_SECS   how long `up` waits for a service to answer (default 60)
#   TANSU_VERSION            tansu version `cargo install` uses (default 0.6.0)
#   DDB_NPM_PKG              npm package carrying DynamoDB Local
#                            (default amplify-dynamodb-simulator@2.9.30)
#   XDG_CACHE_HOME           the jar is cached in ${XDG_CACHE_HOME:-~/.cache}/sse-server/
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

STATE=.local
LOG_DIR=$STATE/logs
RUN_DIR=$STATE/run

KAFKA_HOST=127.0.0.1
KAFKA_PORT=9092
KAFKA_BROKERS=$KAFKA_HOST:$KAFKA_PORT
# Topics and partition counts.
#   v4_messages: 3 partitions, keyed by report id — commands for one report stay in
#                order on one partition while several server instances (one consumer
#                group) share the work: "one writer per report".
#   v3_messages, v4_events: 1 partition — every instance reads all of it with its own
#                consumer group anyway, so one partition gives one total order at no cost.
TOPICS=(v3_messages:1 v4_messages:3 v4_events:1)
TANSU_VERSION=${TANSU_VERSION:-0.6.0}
TANSU_CLUSTER_ID=sse-server-local
# RELATIVE on purpose: tansu resolves sqlite://HOST/PATH against its working directory
# (the repo root); an absolute path comes out doubled.
TANSU_STORAGE=sqlite://$STATE/kafka/tansu.db

DDB_HOST=127.0.0.1
DDB_PORT=8111
DDB_ENDPOINT=http://$DDB_HOST:$DDB_PORT
DDB_TABLE=report_status
# SPEC: partition key report_id (S), GSI UserIdIndex on user_id (S), projection ALL.
DDB_TABLE_DEFINITION='{"TableName":"report_status","BillingMode":"PAY_PER_REQUEST",
 "AttributeDefinitions":[{"AttributeName":"report_id","AttributeType":"S"},
                         {"AttributeName":"user_id","AttributeType":"S"}],
 "KeySchema":[{"AttributeName":"report_id","KeyType":"HASH"}],
 "GlobalSecondaryIndexes":[{"IndexName":"UserIdIndex",
   "KeySchema":[{"AttributeName":"user_id","KeyType":"HASH"}],
   "Projection":{"ProjectionType":"ALL"}}]}'
DDB_NPM_PKG=${DDB_NPM_PKG:-amplify-dynamodb-simulator@2.9.30}
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/sse-server
DDB_HOME=$CACHE_DIR/dynamodb-local
DDB_LAUNCHER_SRC=$ROOT/scripts/LoopbackDynamoDBLocal.java
DDB_LAUNCHER_DIR=$CACHE_DIR/dynamodb-launcher

WAIT_SECS=${SSE_SERVICES_WAIT_SECS:-60}
KAFKA_TOOL=$ROOT/tests/kafka_tool.py

say() { printf '%s\n' "$*"; }
warn() { printf 'services.sh: %s\n' "$*" >&2; }
die() {
    printf 'services.sh: error: %s\n' "$*" >&2
    exit 1
}

usage() {
    cat >&2 <<'EOF'
usage: scripts/services.sh up|down|status [kafka|dynamodb]
  up      start what is not running (installs tansu / DynamoDB Local when missing),
          wait until it answers, create the Kafka topics
  down    stop what `up` started (data is kept in .local/)
  status  show what runs
EOF
    exit 2
}

# --- small helpers ----------------------------------------------------------------

as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "need root to run: $*"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "missing $*, and there is no apt-get to install it; install it by hand"
    say "installing $* with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y --no-install-recommends "$@" >/dev/null ||
        { as_root apt-get update >/dev/null && as_root apt-get install -y --no-install-recommends "$@" >/dev/null; } ||
        die "apt-get could not install $*"
}

# port_open HOST PORT: a TCP connection succeeds.
port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# pid_alive NAME: prints the pid from .local/run/NAME.pid when that process still runs
# and is the program we started (guards against a recycled pid).
pid_alive() {
    local name=$1 pidfile=$RUN_DIR/$1.pid pid pattern
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    case $name in
        kafka) pattern=tansu ;;
        dynamodb) pattern=DynamoDBLocal ;;
    esac
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

# start_detached NAME WORKDIR LOGFILE CMD...: runs CMD in WORKDIR, in its own session,
# detached from this shell, stdout+stderr appended to LOGFILE; the pid file holds CMD's
# own pid (the inner bash writes its pid, then execs CMD).
start_detached() {
    local name=$1 workdir=$2 logfile=$3 pidfile=$ROOT/$RUN_DIR/$1.pid
    shift 3
    rm -f "$pidfile"
    printf '\n=== %s: services.sh starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$logfile"
    # shellcheck disable=SC2016 # expanded by the inner bash
    # 9>&- : the service must not inherit the lock held on fd 9.
    setsid bash -c 'echo $$ >"$0" && cd "$1" && shift && exec "$@"' "$pidfile" "$workdir" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    for _ in $(seq 50); do
        [ -s "$pidfile" ] && return 0
        sleep 0.1
    done
    die "$name did not start (no pid file); see $logfile"
}

# stop_pid NAME PID: TERM, wait up to 15 s, then KILL.
stop_pid() {
    local name=$1 pid=$2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) ignored SIGTERM for 15 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.5
    fi
    rm -f "$RUN_DIR/$name.pid"
    say "$name: stopped (pid $pid)"
}

log_tail() {
    warn "last lines of $1:"
    tail -n 20 "$1" >&2 || true
}

# --- Kafka (tansu) ----------------------------------------------------------------

# tests/kafka_tool.py runs in .local/venv (see scripts/prereqs.sh).
ensure_python_kafka() {
    prereqs_python
}

kafka_answers() {
    port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
    "$SSE_PYTHON" "$KAFKA_TOOL" wait "$KAFKA_BROKERS" "${1:-3}" >/dev/null 2>&1
}

find_tansu() {
    local p
    if p=$(command -v tansu 2>/dev/null); then
        printf '%s\n' "$p"
        return 0
    fi
    p=${CARGO_HOME:-$HOME/.cargo}/bin/tansu
    [ -x "$p" ] && { printf '%s\n' "$p"; return 0; }
    return 1
}

ensure_tansu() {
    find_tansu >/dev/null && return 0
    if pgrep -f 'cargo install.*tansu' >/dev/null 2>&1; then
        say "kafka: a 'cargo install tansu' is already running on this machine; waiting for it (up to 40 min) ..."
        local waited=0
        while ! find_tansu >/dev/null; do
            if ! pgrep -f 'cargo install.*tansu' >/dev/null 2>&1; then
                find_tansu >/dev/null && break
                die "the running 'cargo install tansu' ended without installing tansu; run scripts/services.sh up again"
            fi
            sleep 10
            waited=$((waited + 10))
            [ $((waited % 60)) = 0 ] && say "kafka: still waiting for tansu to be installed (${waited}s) ..."
            [ "$waited" -ge 2400 ] && die "tansu is still not installed after 40 min"
        done
        return 0
    fi
    command -v cargo >/dev/null 2>&1 || die "tansu is missing and there is no cargo to install it (install Rust from https://rustup.rs)"
    say "kafka: installing tansu $TANSU_VERSION with cargo (about 12 min on 2 cores); log: $LOG_DIR/tansu-install.log"
    cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql \
        >>"$LOG_DIR/tansu-install.log" 2>&1 ||
        { log_tail "$LOG_DIR/tansu-install.log"; die "cargo install tansu failed"; }
    find_tansu >/dev/null || die "cargo install tansu finished but no tansu binary was found"
}

kafka_up() {
    ensure_python_kafka
    local pid
    if pid=$(pid_alive kafka); then
        if kafka_answers 3; then
            say "kafka: already running (pid $pid)"
        else
            say "kafka: running (pid $pid), waiting for it to answer ..."
            kafka_wait "$pid"
        fi
    elif port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
        kafka_answers 5 ||
            die "port $KAFKA_BROKERS is taken by a process that does not answer Kafka metadata requests and that services.sh did not start; stop it first"
        say "kafka: a broker not started by services.sh already answers on $KAFKA_BROKERS; using it"
    else
        ensure_tansu
        local tansu
        tansu=$(find_tansu)
        mkdir -p "$STATE/kafka"
        start_detached kafka "$ROOT" "$LOG_DIR/kafka.log" "$tansu" broker \
            --cluster-id "$TANSU_CLUSTER_ID" \
            --listener-url "tcp://$KAFKA_BROKERS" \
            --advertised-listener-url "tcp://$KAFKA_BROKERS" \
            --storage-engine "$TANSU_STORAGE"
        pid=$(cat "$RUN_DIR/kafka.pid")
        say "kafka: started tansu (pid $pid), waiting for it to answer ..."
        kafka_wait "$pid"
    fi
    "$SSE_PYTHON" "$KAFKA_TOOL" create-topics "$KAFKA_BROKERS" "${TOPICS[@]}" | sed 's/^/kafka: /' ||
        die "could not create the Kafka topics"
}

kafka_wait() {
    local pid=$1 deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$LOG_DIR/kafka.log"
            rm -f "$RUN_DIR/kafka.pid"
            die "kafka (tansu, pid $pid) exited during start-up; see $LOG_DIR/kafka.log"
        fi
        kafka_answers 2 && { say "kafka: answers on $KAFKA_BROKERS"; return 0; }
        sleep 0.5
    done
    log_tail "$LOG_DIR/kafka.log"
    die "kafka (tansu, pid $pid) did not answer on $KAFKA_BROKERS within ${WAIT_SECS}s; see $LOG_DIR/kafka.log"
}

# --- DynamoDB Local ---------------------------------------------------------------

# ddb_call TARGET BODY: one DynamoDB JSON-protocol request (dummy SigV4-shaped header;
# DynamoDB Local does not check signatures).
ddb_call() {
    curl -sS --max-time 3 -X POST "$DDB_ENDPOINT/" \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H "X-Amz-Target: DynamoDB_20120810.$1" \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
        --data "$2" 2>/dev/null
}

ddb_answers() {
    port_open "$DDB_HOST" "$DDB_PORT" || return 1
    ddb_call ListTables '{}' | grep -q '"TableNames"'
}

# A JDK >= 17 (javac builds the loopback launcher); see scripts/prereqs.sh.
ensure_java() {
    prereqs_java
}

ensure_ddb_jar() {
    [ -f "$DDB_HOME/DynamoDBLocal.jar" ] && [ -d "$DDB_HOME/DynamoDBLocal_lib" ] && return 0
    command -v npm >/dev/null 2>&1 || apt_install npm
    say "dynamodb: fetching DynamoDB Local from the npm package $DDB_NPM_PKG (about 57 MB, once) ..."
    local tmp
    tmp=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    (cd "$tmp" && npm pack --silent "$DDB_NPM_PKG" >/dev/null) || die "npm pack $DDB_NPM_PKG failed"
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/emulator || die "the npm package has no emulator/ folder"
    [ -f "$tmp/package/emulator/DynamoDBLocal.jar" ] || die "DynamoDBLocal.jar is not in $DDB_NPM_PKG"
    mkdir -p "$(dirname "$DDB_HOME")"
    rm -rf "$DDB_HOME.partial" "$DDB_HOME"
    cp -R "$tmp/package/emulator" "$DDB_HOME.partial"
    mv "$DDB_HOME.partial" "$DDB_HOME"
    rm -rf "$tmp"
    trap - EXIT
    say "dynamodb: cached in $DDB_HOME"
}

# Prints the java command line (one argument per line) that runs DynamoDB Local:
# through the loopback launcher when it is (or can be) compiled, else the plain jar.
ddb_command() {
    local jar=$DDB_HOME/DynamoDBLocal.jar class=$DDB_LAUNCHER_DIR/LoopbackDynamoDBLocal.class
    local launcher=0
    if [ -f "$class" ] && [ "$class" -nt "$DDB_LAUNCHER_SRC" ] && [ "$class" -nt "$jar" ]; then
        launcher=1
    elif command -v javac >/dev/null 2>&1; then
        mkdir -p "$DDB_LAUNCHER_DIR"
        if javac -nowarn -cp "$jar" -d "$DDB_LAUNCHER_DIR" "$DDB_LAUNCHER_SRC" >&2; then
            launcher=1
        else
            warn "dynamodb: javac could not build $DDB_LAUNCHER_SRC"
        fi
    fi
    if [ "$launcher" = 1 ]; then
        printf '%s\n' java -Xmx1g "-Ddynamodb.host=$DDB_HOST" "-Djava.library.path=$DDB_HOME/DynamoDBLocal_lib" \
            -cp "$DDB_LAUNCHER_DIR:$jar" LoopbackDynamoDBLocal
    else
        warn "dynamodb: DynamoDB Local has no listen-address option and the loopback launcher is unavailable (needs javac: apt-get install openjdk-17-jdk-headless); it will listen on ALL interfaces, port $DDB_PORT"
        printf '%s\n' java -Xmx1g "-Djava.library.path=$DDB_HOME/DynamoDBLocal_lib" -jar "$jar"
    fi
    # runs in .local/dynamodb (see dynamodb_up), hence -dbPath .
    printf '%s\n' -sharedDb -dbPath . -port "$DDB_PORT" -disableTelemetry
}

dynamodb_up() {
    local pid
    if pid=$(pid_alive dynamodb); then
        if ddb_answers; then
            say "dynamodb: already running (pid $pid)"
        else
            say "dynamodb: running (pid $pid), waiting for it to answer ..."
            dynamodb_wait "$pid"
        fi
    elif port_open "$DDB_HOST" "$DDB_PORT"; then
        ddb_answers ||
            die "port $DDB_HOST:$DDB_PORT is taken by a process that does not answer DynamoDB requests and that services.sh did not start; stop it first"
        say "dynamodb: a DynamoDB endpoint not started by services.sh already answers on $DDB_ENDPOINT; using it"
    else
        ensure_java
        ensure_ddb_jar
        mkdir -p "$STATE/dynamodb"
        local cmd=()
        mapfile -t cmd < <(ddb_command)
        # cwd = the data folder: DynamoDB Local also drops dynamodb-local-metadata.json
        # into its working directory.
        start_detached dynamodb "$STATE/dynamodb" "$LOG_DIR/dynamodb.log" "${cmd[@]}"
        pid=$(cat "$RUN_DIR/dynamodb.pid")
        say "dynamodb: started DynamoDB Local (pid $pid), waiting for it to answer ..."
        dynamodb_wait "$pid"
    fi
    if ddb_call ListTables '{}' | grep -q "\"$DDB_TABLE\""; then
        say "dynamodb: table $DDB_TABLE exists"
    elif ddb_call CreateTable "$DDB_TABLE_DEFINITION" | grep -q '"TableDescription"'; then
        say "dynamodb: created table $DDB_TABLE (GSI UserIdIndex)"
    else
        say "dynamodb: could not create table $DDB_TABLE; sse-server creates it at start-up (or run ./dynamodb_local_init.sh)"
    fi
}

dynamodb_wait() {
    local pid=$1 deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log_tail "$LOG_DIR/dynamodb.log"
            rm -f "$RUN_DIR/dynamodb.pid"
            die "dynamodb (pid $pid) exited during start-up; see $LOG_DIR/dynamodb.log"
        fi
        ddb_answers && { say "dynamodb: answers on $DDB_ENDPOINT"; return 0; }
        sleep 0.5
    done
    log_tail "$LOG_DIR/dynamodb.log"
    die "dynamodb (pid $pid) did not answer on $DDB_ENDPOINT within ${WAIT_SECS}s; see $LOG_DIR/dynamodb.log"
}

# --- commands -----------------------------------------------------------------------

svc_down() {
    local name=$1 pid
    if pid=$(pid_alive "$name"); then
        stop_pid "$name" "$pid"
    elif [ -e "$RUN_DIR/$name.pid" ]; then
        rm -f "$RUN_DIR/$name.pid"
        say "$name: not running (removed a stale pid file)"
    else
        say "$name: not running (nothing started by services.sh)"
    fi
}

# svc_status NAME: prints one line; returns 0 when the service answers.
svc_status() {
    local name=$1 pid answers=1 where
    case $name in
        kafka)
            where=$KAFKA_BROKERS
            if port_open "$KAFKA_HOST" "$KAFKA_PORT"; then
                # status installs nothing
                SSE_PYTHON=$ROOT/.local/venv/bin/python
                if "$SSE_PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; then
                    kafka_answers 3 && answers=0
                else
                    answers=0 # port open; cannot check further without confluent-kafka
                fi
            fi
            ;;
        dynamodb)
            where=$DDB_ENDPOINT
            ddb_answers && answers=0
            ;;
    esac
    if pid=$(pid_alive "$name"); then
        if [ "$answers" = 0 ]; then
            say "$name: running (pid $pid), answers on $where; log $LOG_DIR/$name.log"
        else
            say "$name: process runs (pid $pid) but does NOT answer on $where; log $LOG_DIR/$name.log"
        fi
    elif [ "$answers" = 0 ]; then
        say "$name: answers on $where (a process not started by services.sh)"
    else
        say "$name: not running"
    fi
    return "$answers"
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
action=$1
case ${2:-all} in
    all) services=(kafka dynamodb) ;;
    kafka | dynamodb) services=("$2") ;;
    *) usage ;;
esac

mkdir -p "$LOG_DIR" "$RUN_DIR"

case $action in
    up)
        exec 9>"$RUN_DIR/services.lock"
        flock -w 900 9 || die "another services.sh is running (lock $RUN_DIR/services.lock)"
        for s in "${services[@]}"; do
            "${s}_up"
        done
        say ""
        for s in "${services[@]}"; do
            case $s in
                kafka) say "kafka     $KAFKA_BROKERS      log $ROOT/$LOG_DIR/kafka.log      (SSE_KAFKA_BROKERS=$KAFKA_BROKERS)" ;;
                dynamodb) say "dynamodb  $DDB_ENDPOINT  log $ROOT/$LOG_DIR/dynamodb.log  (SSE_DYNAMODB_ENDPOINT=$DDB_ENDPOINT)" ;;
            esac
        done
        say "stop with: scripts/services.sh down"
        ;;
    down)
        exec 9>"$RUN_DIR/services.lock"
        flock -w 120 9 || die "another services.sh is running (lock $RUN_DIR/services.lock)"
        for s in "${services[@]}"; do
            svc_down "$s"
        done
        ;;
    status)
        rc=0
        for s in "${services[@]}"; do
            svc_status "$s" || rc=3
        done
        exit "$rc"
        ;;
    *) usage ;;
esac
