#!/usr/bin/env bash
# scripts/services.sh — start and stop sse-server's local backing services, without Docker:
#   kafka     Apache Kafka 4.4.0, one KRaft node (broker + controller) on 127.0.0.1:9092
#             (controller :9093); config in scripts/kafka/, data in .local/kafka/data
#   dynamodb  dynalite 4.0.0 (DynamoDB's API on LevelDB) on 127.0.0.1:8111, data in
#             .local/dynamodb/data
# Usage: scripts/services.sh up|down|status|pause|resume [kafka|dynamodb]   (none = both)
#   up      install what is missing (scripts/install_services.sh), start what is not
#           running (a running one is left alone, a foreign one answering on the port is
#           used), wait until it answers; then `sse-server init` creates the topics / the
#           table, which are defined in the server only.
#   down    stop what `up` started (pid files in .local/run/). Data is kept: Kafka gets 30 s
#           for its controlled shutdown, so topics and committed offsets survive.
#   status  what runs; exit 0 when every asked-for service answers, 3 otherwise.
#   pause   SIGSTOP a service `up` started: it hangs, as a stuck broker or database would
#           (for tests); resume: SIGCONT.
# State: .local/ (gitignored): logs/, run/, kafka/, dynamodb/, venv/ (tests/kafka_tool.py
# checks that Kafka answers); `rm -rf .local` after `down` resets it. The engines are cached
# in ${XDG_CACHE_HOME:-~/.cache}/sse-server/. Knobs: SSE_SERVICES_WAIT_SECS (default 60);
# SSE_SERVER_BIN (what runs `init`; default the newer of target/{release,debug}/sse-server).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

STATE=.local LOG_DIR=.local/logs RUN_DIR=.local/run
WAIT_SECS=${SSE_SERVICES_WAIT_SECS:-60}
# The same versions and cache paths as in scripts/install_services.sh.
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/sse-server
KAFKA_LIBS=$CACHE_DIR/kafka-4.4.0/libs
DYNALITE_CLI=$CACHE_DIR/dynalite-4.0.0/node_modules/dynalite/cli.js

KAFKA_HOST=127.0.0.1 KAFKA_PORT=9092
KAFKA_BROKERS=$KAFKA_HOST:$KAFKA_PORT
KAFKA_DIR=$ROOT/$STATE/kafka
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_LOG4J=-Dlog4j2.configurationFile=$ROOT/scripts/kafka/log4j2.xml
KAFKA_TOOL=$ROOT/tests/kafka_tool.py

DDB_HOST=127.0.0.1 DDB_PORT=8111
DDB_ENDPOINT=http://$DDB_HOST:$DDB_PORT

say() { printf '%s\n' "$*"; }
warn() { printf 'services.sh: %s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n 's/^# \{0,1\}//; 7,16p' "$0" >&2; exit 2; } # the header's usage lines

# port_open HOST PORT: a TCP connection succeeds.
port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# pid_alive NAME: prints the pid in .local/run/NAME.pid when that process runs and is the
# program we started (not a recycled pid).
pid_alive() {
    local pidfile=$RUN_DIR/$1.pid pid pattern=kafka.Kafka
    [ "$1" = dynamodb ] && pattern=dynalite
    pid=$(cat "$pidfile" 2>/dev/null) && [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$pattern" || return 1
    printf '%s\n' "$pid"
}

# paused PID: the process is stopped (SIGSTOP): state T, after the ")" of its name.
paused() { [ "$(sed -E 's/.*\) (.).*/\1/' "/proc/$1/stat" 2>/dev/null)" = T ]; }

# start_detached NAME WORKDIR LOGFILE CMD...: CMD in WORKDIR, in its own session, output
# appended to LOGFILE; the pid file holds CMD's pid (the inner bash writes it, then execs).
start_detached() {
    local name=$1 workdir=$2 logfile=$3 pidfile=$ROOT/$RUN_DIR/$1.pid
    shift 3
    rm -f "$pidfile"
    printf '\n=== %s: services.sh starting %s\n' "$(date -u +%FT%TZ)" "$name" >>"$logfile"
    # shellcheck disable=SC2016 # expanded by the inner bash
    # 9>&- : the service must not inherit the lock held on fd 9.
    setsid bash -c 'echo $$ >"$0" && cd "$1" && shift && exec "$@"' "$pidfile" "$workdir" "$@" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    for _ in $(seq 50); do [ -s "$pidfile" ] && return 0; sleep 0.1; done
    die "$name did not start (no pid file); see $logfile"
}

# fail NAME MESSAGE: the last lines of NAME's log, then MESSAGE.
fail() {
    warn "last lines of $LOG_DIR/$1.log:"
    tail -n 20 "$LOG_DIR/$1.log" >&2 || true
    die "$2; see $LOG_DIR/$1.log"
}

# wait_answers NAME PID CHECK WHERE: until CHECK succeeds (or the process ends, or time is up).
wait_answers() {
    local name=$1 pid=$2 check=$3 where=$4 deadline=$((SECONDS + WAIT_SECS))
    while [ "$SECONDS" -lt "$deadline" ]; do
        kill -0 "$pid" 2>/dev/null || { rm -f "$RUN_DIR/$name.pid" && fail "$name" "$name (pid $pid) exited during start-up"; }
        "$check" && { say "$name: answers on $where"; return 0; }
        sleep 0.5
    done
    fail "$name" "$name (pid $pid) did not answer on $where within ${WAIT_SECS}s"
}

# svc_up NAME CHECK WHERE START: leaves a running service alone (resuming it when
# paused), uses a foreign one already answering on the port, or runs START.
svc_up() {
    local name=$1 check=$2 where=$3 start=$4 pid
    if pid=$(pid_alive "$name"); then
        paused "$pid" && kill -CONT "$pid" && say "$name: was paused (pid $pid); resumed"
        "$check" && say "$name: already running (pid $pid)" && return 0
        say "$name: running (pid $pid), waiting for it to answer ..."
        wait_answers "$name" "$pid" "$check" "$where"
    elif port_open "${where%:*}" "${where##*:}"; then
        "$check" ||
            die "port $where is taken by a process that services.sh did not start and that does not answer as $name; stop it first"
        say "$name: a server not started by services.sh already answers on $where; using it"
    else
        scripts/install_services.sh "$name"
        "$start"
        pid=$(cat "$RUN_DIR/$name.pid")
        say "$name: started (pid $pid), waiting for it to answer ..."
        wait_answers "$name" "$pid" "$check" "$where"
    fi
}

# init_server NAME WHAT FLAGS...: `sse-server FLAGS init` creates what is missing of its
# topics / its table. Without a built binary the server does it itself at start-up.
init_server() {
    local name=$1 what=$2 bin=${SSE_SERVER_BIN:-} b
    shift 2
    if [ -z "$bin" ]; then
        for b in target/release/sse-server target/debug/sse-server; do
            if [ -x "$b" ] && { [ -z "$bin" ] || [ "$b" -nt "$bin" ]; }; then bin=$b; fi
        done
    fi
    [ -n "$bin" ] || { say "$name: no sse-server built yet; the server creates its $what at start-up" && return 0; }
    env -u SSE_KAFKA_BROKERS -u SSE_DYNAMODB_ENDPOINT SSE_LOG="${SSE_LOG:-error}" NO_COLOR=1 \
        "$bin" "$@" init 2>&1 | sed "s/^/$name: /" ||
        die "$bin $* init could not create the $what (an older binary without \`init\`? cargo build)"
}

# --- Kafka ------------------------------------------------------------------------
kafka_answers() {
    port_open "$KAFKA_HOST" "$KAFKA_PORT" || return 1
    "$SSE_PYTHON" "$KAFKA_TOOL" wait "$KAFKA_BROKERS" 3 >/dev/null 2>&1
}

kafka_start() {
    local java=(java -cp "$KAFKA_LIBS/*" "$KAFKA_LOG4J")
    mkdir -p "$KAFKA_DIR/data"
    sed "s|@LOG_DIRS@|$KAFKA_DIR/data|" scripts/kafka/server.properties >"$KAFKA_PROPS"
    if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
        if [ ! -s "$KAFKA_DIR/cluster-id" ]; then
            "${java[@]}" kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka.log" |
                grep -E '^[A-Za-z0-9_-]{22}$' >"$KAFKA_DIR/cluster-id" ||
                fail kafka "kafka: StorageTool random-uuid printed no cluster id"
        fi
        "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$KAFKA_DIR/cluster-id")" \
            -c "$KAFKA_PROPS" >>"$LOG_DIR/kafka.log" 2>&1 || fail kafka "kafka: could not format $KAFKA_DIR/data"
        say "kafka: formatted $KAFKA_DIR/data (cluster id $(cat "$KAFKA_DIR/cluster-id"))"
    fi
    start_detached kafka "$KAFKA_DIR" "$LOG_DIR/kafka.log" \
        java -Xms256m -Xmx512m -cp "$KAFKA_LIBS/*" "$KAFKA_LOG4J" kafka.Kafka "$KAFKA_PROPS"
}

kafka_up() {
    prereqs_python # tests/kafka_tool.py runs in .local/venv
    svc_up kafka kafka_answers "$KAFKA_BROKERS" kafka_start
    init_server kafka topics --kafka-brokers "$KAFKA_BROKERS"
}

# --- DynamoDB (dynalite) ----------------------------------------------------------
# ddb_call TARGET BODY: one DynamoDB JSON-protocol request. dynalite checks that the
# signature headers have the right shape, not their values.
ddb_call() {
    curl -sS --max-time 3 -X POST "$DDB_ENDPOINT/" \
        -H 'Content-Type: application/x-amz-json-1.0' \
        -H "X-Amz-Target: DynamoDB_20120810.$1" \
        -H "X-Amz-Date: 20240101T000000Z" \
        -H 'Authorization: AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0' \
        --data "$2" 2>/dev/null
}

ddb_answers() {
    port_open "$DDB_HOST" "$DDB_PORT" || return 1
    ddb_call ListTables '{}' | grep -q '"TableNames"'
}

dynamodb_start() {
    mkdir -p "$STATE/dynamodb/data"
    start_detached dynamodb "$ROOT/$STATE/dynamodb" "$LOG_DIR/dynamodb.log" \
        node "$DYNALITE_CLI" --host "$DDB_HOST" --port "$DDB_PORT" --path "$ROOT/$STATE/dynamodb/data"
}

dynamodb_up() {
    svc_up dynamodb ddb_answers "$DDB_HOST:$DDB_PORT" dynamodb_start
    init_server dynamodb table --dynamodb-endpoint "$DDB_ENDPOINT"
}

# --- commands -----------------------------------------------------------------------
# svc_down NAME: TERM (and CONT, in case it is paused), wait, then KILL. Kafka gets 30 s
# for its controlled shutdown, so that a restart loses nothing.
svc_down() {
    local name=$1 pid secs=15
    [ "$name" = kafka ] && secs=30
    if pid=$(pid_alive "$name"); then
        kill -TERM "$pid" 2>/dev/null || true
        kill -CONT "$pid" 2>/dev/null || true
        for _ in $(seq $((secs * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            warn "$name (pid $pid) did not stop within ${secs}s of SIGTERM; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
        rm -f "$RUN_DIR/$name.pid"
        say "$name: stopped (pid $pid)"
    elif [ -e "$RUN_DIR/$name.pid" ]; then
        rm -f "$RUN_DIR/$name.pid"
        say "$name: not running (removed a stale pid file)"
    else
        say "$name: not running (nothing started by services.sh)"
    fi
}

# svc_signal NAME pause|resume: only to a process services.sh started.
svc_signal() {
    local name=$1 pid sig=STOP
    [ "$2" = resume ] && sig=CONT
    pid=$(pid_alive "$name") ||
        die "$name: no process started by services.sh runs (pid file $RUN_DIR/$name.pid); $2 acts only on those"
    kill -"$sig" "$pid" && say "$name: $2d (pid $pid, SIG$sig)"
}

# svc_status NAME: prints one line; returns 0 when the service answers.
svc_status() {
    local name=$1 pid answers=1 where
    case $name in
        kafka) # status installs nothing; without confluent-kafka an open port has to do
            where=$KAFKA_BROKERS SSE_PYTHON=$ROOT/.local/venv/bin/python
            port_open "$KAFKA_HOST" "$KAFKA_PORT" && { kafka_answers ||
                ! "$SSE_PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; } && answers=0
            ;;
        dynamodb) where=$DDB_ENDPOINT && ddb_answers && answers=0 ;;
    esac
    if pid=$(pid_alive "$name"); then
        local state="runs (pid $pid) but does NOT answer on $where"
        [ "$answers" = 0 ] && state="running (pid $pid), answers on $where"
        paused "$pid" && state="$state: PAUSED (SIGSTOP; scripts/services.sh resume $name)"
        say "$name: $state; log $LOG_DIR/$name.log"
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

# lock SECS: one up/down at a time (fd 9, which the services do not inherit).
lock() {
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    exec 9>"$RUN_DIR/services.lock"
    flock -w "$1" 9 || die "another services.sh is running (lock $RUN_DIR/services.lock)"
}

case $action in
    up)
        lock 900
        hint=""
        for s in "${services[@]}"; do
            "${s}_up"
            case $s in kafka) hint+=" SSE_KAFKA_BROKERS=$KAFKA_BROKERS" ;; *) hint+=" SSE_DYNAMODB_ENDPOINT=$DDB_ENDPOINT" ;; esac
        done
        printf '%s\n' "" "for sse-server:$hint" "logs in $ROOT/$LOG_DIR/; stop with: scripts/services.sh down"
        ;;
    down)
        lock 120
        for s in "${services[@]}"; do svc_down "$s"; done
        ;;
    pause | resume) for s in "${services[@]}"; do svc_signal "$s" "$action"; done ;;
    status)
        rc=0
        for s in "${services[@]}"; do svc_status "$s" || rc=3; done
        exit "$rc"
        ;;
    *) usage ;;
esac
