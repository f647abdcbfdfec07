#!/usr/bin/env bash
# scripts/services.sh — start and stop sse-server's local backing services, without Docker:
#   kafka     Apache Kafka 4.4.0, one KRaft node (broker + controller) on 127.0.0.1:9092
#             (controller :9093); config in scripts/kafka/, data in .local/kafka/data;
#             or, with --kafka-nodes 3, a three-node cluster (below)
#   dynamodb  dynalite 4.0.0 (DynamoDB's API on LevelDB) on 127.0.0.1:8111, data in
#             .local/dynamodb/data
# Usage: scripts/services.sh up|down|status|pause|resume [kafka|dynamodb]   (none = both)
#        scripts/services.sh up [kafka] --kafka-nodes 3
#        scripts/services.sh node kill|pause|resume|start|cut|heal|pid N   (N: 1, 2 or 3)
#        scripts/services.sh node heal all
#        scripts/services.sh node leader TOPIC PARTITION
#        scripts/services.sh node controller
#   up      install what is missing (scripts/install_services.sh), start what is not
#           running (a running one is left alone, a foreign one answering on the port is
#           used), wait until it answers; then `sse-server init` creates the topics / the
#           table, which are defined in the server only.
#   up --kafka-nodes 3   Kafka as three KRaft nodes in combined mode, node N's broker on
#           127.0.0.1:9090+2N and its controller on :9091+2N (9092/9093, 9094/9095,
#           9096/9097), every topic with 3 replicas, 2 in sync (scripts/kafka/
#           cluster.properties); data in .local/kafka-cluster/nodeN/, pid files
#           .local/run/kafka-N.pid, logs .local/logs/kafka-N.log. It waits until 3 brokers
#           are registered. The single node and the cluster both use 9092: `up` refuses
#           to start one while the other runs.
#   down    stop what `up` started (pid files in .local/run/), the cluster's nodes too, and
#           remove the iptables rules of `node cut`. Data is kept: Kafka gets 30 s for its
#           controlled shutdown, so topics and committed offsets survive.
#   status  what runs (each cluster node); exit 0 when every asked-for service answers,
#           3 otherwise.
#   pause   SIGSTOP a service `up` started: it hangs, as a stuck broker or database would
#           (for tests); resume: SIGCONT. With the cluster up, kafka means all its nodes.
#   node    faults for tests, on one cluster node that services.sh started: kill (SIGKILL),
#           pause (SIGSTOP), resume (SIGCONT), start (again, from its data; waits until
#           its broker answers), cut (iptables drops loopback packets to and from both of
#           its ports; as root or with sudo; installs Debian's iptables when missing; the
#           node's own connections, from ephemeral ports, still pass: it stays registered
#           and keeps leading its partitions, unreachable for clients and followers),
#           heal (removes those rules; `heal all`: every node's), pid (prints its pid);
#           leader prints the node id that leads TOPIC's PARTITION now (-1: none);
#           controller prints the node id of the active controller (-1: none known).
# State: .local/ (gitignored): logs/, run/, kafka/, kafka-cluster/, dynamodb/, venv/
# (tests/kafka_tool.py checks that Kafka answers); `rm -rf .local` after `down` resets it.
# The engines are cached in ${XDG_CACHE_HOME:-~/.cache}/sse-server/. Knobs:
# SSE_SERVICES_WAIT_SECS (default 60); SSE_SERVER_BIN (what runs `init`; default the
# newer of target/{release,debug}/sse-server).
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
# The three-node cluster (up --kafka-nodes 3): node N's broker on 9090+2N, controller on
# 9091+2N; scripts/kafka/cluster.properties names the same ports in its quorum.
CLUSTER_DIR=$ROOT/$STATE/kafka-cluster
CLUSTER_NODES=(1 2 3)
CLUSTER_BROKERS=$KAFKA_HOST:9092,$KAFKA_HOST:9094,$KAFKA_HOST:9096

DDB_HOST=127.0.0.1 DDB_PORT=8111
DDB_ENDPOINT=http://$DDB_HOST:$DDB_PORT

say() { printf '%s\n' "$*"; }
warn() { printf 'services.sh: %s\n' "$*" >&2; }
die() { printf 'services.sh: error: %s\n' "$*" >&2; exit 1; }
# usage: the header's usage lines, from "# Usage:" to the line before "# State:".
usage() { sed -n '/^# Usage:/,/^# State:/{/^# State:/d; s/^# \{0,1\}//; p;}' "$0" >&2; exit 2; }

# lock SECS: one up/down/node start/cut/heal at a time (fd 9, which the services do not inherit).
lock() {
    mkdir -p "$LOG_DIR" "$RUN_DIR"
    exec 9>"$RUN_DIR/services.lock"
    flock -w "$1" 9 || die "another services.sh is running (lock $RUN_DIR/services.lock)"
}

# port_open HOST PORT: a TCP connection succeeds.
port_open() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" >/dev/null 2>&1
}

# pid_alive NAME: prints the pid in .local/run/NAME.pid when that process runs and is the
# program we started (not a recycled pid). NAME: kafka, kafka-N (cluster node N), dynamodb.
pid_alive() {
    local pidfile=$RUN_DIR/$1.pid pid pattern=kafka.Kafka
    case $1 in
        dynamodb) pattern=dynalite ;;
        kafka-[0-9]*) pattern="kafka.Kafka $CLUSTER_DIR/node${1#kafka-}/server.properties" ;;
    esac
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
    local pid
    pid=$(cluster_pid) && die "kafka: the three-node cluster (up --kafka-nodes 3; node pid $pid) runs on $KAFKA_BROKERS, where the single node would listen; stop it first (scripts/services.sh down kafka)"
    prereqs_python # tests/kafka_tool.py runs in .local/venv
    svc_up kafka kafka_answers "$KAFKA_BROKERS" kafka_start
    init_server kafka topics --kafka-brokers "$KAFKA_BROKERS"
}

# --- Kafka, three nodes (up --kafka-nodes 3) -------------------------------------
node_broker_port() { printf '%s\n' $((9090 + 2 * $1)); }
node_controller_port() { printf '%s\n' $((9091 + 2 * $1)); }

# cluster_pid: prints the pid of a running cluster node that services.sh started.
cluster_pid() {
    local n
    for n in "${CLUSTER_NODES[@]}"; do pid_alive "kafka-$n" && return 0; done
    return 1
}

# node_answers: node $NODE's broker answers a metadata request (a CHECK for wait_answers).
NODE=0
node_answers() {
    local port
    port=$(node_broker_port "$NODE")
    port_open "$KAFKA_HOST" "$port" || return 1
    "$SSE_PYTHON" "$KAFKA_TOOL" wait "$KAFKA_HOST:$port" 3 >/dev/null 2>&1
}

# cluster_id: makes .local/kafka-cluster/cluster-id once; every node is formatted with it.
cluster_id() {
    mkdir -p "$CLUSTER_DIR"
    [ -s "$CLUSTER_DIR/cluster-id" ] && return 0
    java -cp "$KAFKA_LIBS/*" "$KAFKA_LOG4J" kafka.tools.StorageTool random-uuid 2>>"$LOG_DIR/kafka-1.log" |
        grep -E '^[A-Za-z0-9_-]{22}$' >"$CLUSTER_DIR/cluster-id" ||
        { rm -f "$CLUSTER_DIR/cluster-id" && fail kafka-1 "kafka: StorageTool random-uuid printed no cluster id"; }
}

# node_start N: writes node N's server.properties from scripts/kafka/cluster.properties,
# formats its data with the cluster id when it has none, and starts it (without waiting).
node_start() {
    local n=$1 name=kafka-$1 dir=$CLUSTER_DIR/node$1 bport cport port id
    local java=(java -cp "$KAFKA_LIBS/*" "$KAFKA_LOG4J")
    bport=$(node_broker_port "$n") cport=$(node_controller_port "$n")
    for port in "$bport" "$cport"; do
        ! port_open "$KAFKA_HOST" "$port" ||
            die "port $KAFKA_HOST:$port (cluster node $n) is taken by a process that services.sh did not start; stop it first"
    done
    [ -s "$CLUSTER_DIR/cluster-id" ] || die "$name: no cluster id in $CLUSTER_DIR/cluster-id; start the cluster with scripts/services.sh up --kafka-nodes 3"
    id=$(cat "$CLUSTER_DIR/cluster-id")
    mkdir -p "$dir/data"
    sed -e "s|@NODE_ID@|$n|g" -e "s|@BROKER_PORT@|$bport|g" -e "s|@CONTROLLER_PORT@|$cport|g" \
        -e "s|@LOG_DIRS@|$dir/data|g" scripts/kafka/cluster.properties >"$dir/server.properties"
    if [ -f "$dir/data/meta.properties" ]; then
        grep -qx "cluster.id=$id" "$dir/data/meta.properties" ||
            die "$name: $dir/data belongs to another cluster than $CLUSTER_DIR/cluster-id ($id); after \`scripts/services.sh down\`, rm -rf $CLUSTER_DIR starts afresh"
    else
        "${java[@]}" kafka.tools.StorageTool format -t "$id" -c "$dir/server.properties" \
            >>"$LOG_DIR/$name.log" 2>&1 || fail "$name" "$name: could not format $dir/data"
        say "$name: formatted $dir/data (cluster id $id)"
    fi
    start_detached "$name" "$dir" "$LOG_DIR/$name.log" \
        java -Xms256m -Xmx512m -cp "$KAFKA_LIBS/*" "$KAFKA_LOG4J" kafka.Kafka "$dir/server.properties"
    say "$name: started (pid $(cat "$RUN_DIR/$name.pid")), broker $KAFKA_HOST:$bport, controller :$cport"
}

# node_wait N: until node N's broker answers (wait_answers: or it exits, or time is up).
node_wait() {
    NODE=$1
    wait_answers "kafka-$1" "$(cat "$RUN_DIR/kafka-$1.pid")" node_answers "$KAFKA_HOST:$(node_broker_port "$1")"
}

# node_running N: when services.sh's node N runs, resumes it if paused and returns 0.
node_running() {
    local pid
    pid=$(pid_alive "kafka-$1") || return 1
    if paused "$pid"; then
        kill -CONT "$pid" && say "kafka-$1: was paused (pid $pid); resumed"
    else
        say "kafka-$1: already running (pid $pid)"
    fi
}

# brokers_registered: until the cluster's metadata lists its 3 brokers.
brokers_registered() {
    local deadline=$((SECONDS + WAIT_SECS)) count=0
    while [ "$SECONDS" -lt "$deadline" ]; do
        count=$("$SSE_PYTHON" "$KAFKA_TOOL" brokers "$CLUSTER_BROKERS" --timeout 5 2>/dev/null) || count=0
        [ "$count" = 3 ] && { say "kafka: 3 brokers registered ($CLUSTER_BROKERS)"; return 0; }
        sleep 0.5
    done
    die "kafka: $count of 3 brokers registered after ${WAIT_SECS}s; see $LOG_DIR/kafka-{1,2,3}.log"
}

kafka_cluster_up() {
    local n pid
    pid=$(pid_alive kafka) && die "kafka: the single Kafka node (pid $pid) runs on $KAFKA_BROKERS, where the cluster's node 1 would listen; stop it first (scripts/services.sh down kafka)"
    prereqs_python # tests/kafka_tool.py runs in .local/venv
    scripts/install_services.sh kafka
    mkdir -p "$LOG_DIR"
    cluster_id
    # All three start before any is waited for: a node answers only once a quorum of
    # controllers (2 of 3) runs.
    for n in "${CLUSTER_NODES[@]}"; do node_running "$n" || node_start "$n"; done
    for n in "${CLUSTER_NODES[@]}"; do node_wait "$n"; done
    brokers_registered
    init_server kafka topics --kafka-brokers "$CLUSTER_BROKERS"
}

# --- iptables (node cut / heal) -------------------------------------------------------
IPTABLES=""
# iptables_found: sets IPTABLES when iptables is installed.
iptables_found() {
    IPTABLES=$(command -v iptables 2>/dev/null) && return 0
    [ -x /usr/sbin/iptables ] && IPTABLES=/usr/sbin/iptables
}

# iptables_ready: iptables installed (Debian's package when missing), and root or sudo.
iptables_ready() {
    [ "$(id -u)" = 0 ] || command -v sudo >/dev/null 2>&1 ||
        die "node cut/heal change iptables rules: run as root, or install sudo"
    iptables_found && return 0
    prereqs_apt iptables || true
    iptables_found || die "iptables is missing and could not be installed: install it (apt-get install iptables)"
}

ipt() { prereqs_as_root "$IPTABLES" -w "$@"; }

# node_rules N: node N's rules, one per line: loopback packets to (INPUT --dport) and from
# (OUTPUT --sport) its broker and its controller port are dropped. Nobody can connect to
# the node, but the connections it opens itself (to the active controller: heartbeats; to
# leaders: replica fetches) use ephemeral ports and still pass, so the controller does not
# fence it: a partition it leads keeps it as leader, unreachable (seen: 60 s, no failover).
node_rules() {
    local port
    for port in "$(node_broker_port "$1")" "$(node_controller_port "$1")"; do
        printf '%s\n' "INPUT -i lo -p tcp --dport $port -j DROP" "OUTPUT -o lo -p tcp --sport $port -j DROP"
    done
}

# node_cut N: adds node N's rules (each once: -C checks first).
node_cut() {
    local n=$1 rule added=0
    local -a r
    iptables_ready
    while read -r rule; do
        read -ra r <<<"$rule"
        ipt -C "${r[@]}" 2>/dev/null && continue
        ipt -A "${r[@]}" || die "iptables -A ${r[*]} failed"
        added=$((added + 1))
    done < <(node_rules "$n")
    touch "$RUN_DIR/kafka-$n.cut"
    say "kafka-$n: cut off ($added iptables rule(s) added): loopback packets to and from ports $(node_broker_port "$n") and $(node_controller_port "$n") are dropped; undo with: scripts/services.sh node heal $n"
}

# node_heal quiet|loud N...: removes node N's rules, each as often as it is there.
node_heal() {
    local mode=$1 n rule removed
    local -a r
    shift
    for n in "$@"; do
        removed=0
        while read -r rule; do
            read -ra r <<<"$rule"
            while ipt -C "${r[@]}" 2>/dev/null; do
                ipt -D "${r[@]}" || die "iptables -D ${r[*]} failed"
                removed=$((removed + 1))
            done
        done < <(node_rules "$n")
        rm -f "$RUN_DIR/kafka-$n.cut"
        if [ "$removed" -gt 0 ]; then
            say "kafka-$n: healed ($removed iptables rule(s) removed)"
        elif [ "$mode" = loud ]; then
            say "kafka-$n: no iptables rule of services.sh to remove"
        fi
    done
}

# heal_all quiet|loud: every rule `node cut` can add. Without iptables there are none; a
# user who is not root is asked for sudo only when a node was cut (marker files).
heal_all() {
    if ! iptables_found; then
        [ "$1" = quiet ] || say "kafka: iptables is not installed, so no rule to remove"
        return 0
    fi
    if [ "$1" = quiet ] && [ "$(id -u)" != 0 ] && ! compgen -G "$RUN_DIR/kafka-*.cut" >/dev/null; then
        return 0
    fi
    node_heal "$1" "${CLUSTER_NODES[@]}"
}

# node_pid N: the pid of services.sh's node N, or a sentence and exit 1.
node_pid() {
    pid_alive "kafka-$1" ||
        die "kafka-$1: no cluster node started by services.sh runs (pid file $RUN_DIR/kafka-$1.pid)"
}

# node_controller: the node id of the metadata quorum's leader, the active controller.
# Each node records the newest quorum epoch it knows and that epoch's leader in its
# quorum-state file (written at every election); the newest epoch with a leader wins.
# -1 when no node knows one (an election under way).
node_controller() {
    "$SSE_PYTHON" - "$CLUSTER_DIR" <<'PY'
import glob, json, sys
known = []
for path in glob.glob(sys.argv[1] + "/node*/data/__cluster_metadata-0/quorum-state"):
    with open(path) as f:
        state = json.load(f)
    known.append((state["leaderEpoch"], state["leaderId"]))
print(max(known, default=(-1, -1))[1])
PY
}

# node_cmd ARGS...: `scripts/services.sh node ...`, faults on one cluster node for tests.
node_cmd() {
    local cmd=${1:-} n=${2:-} pid
    case $cmd in
        leader)
            if [ $# != 3 ] || ! [[ $3 =~ ^[0-9]+$ ]]; then usage; fi
            prereqs_python
            exec "$SSE_PYTHON" "$KAFKA_TOOL" leader "$CLUSTER_BROKERS" "$2" "$3"
            ;;
        controller)
            [ $# = 1 ] || usage
            prereqs_python
            node_controller
            return 0
            ;;
        kill | pause | resume | start | cut | heal | pid) [ $# = 2 ] || usage ;;
        *) usage ;;
    esac
    if [ "$cmd $n" = "heal all" ]; then
        lock 120
        heal_all loud
        return 0
    fi
    [[ $n =~ ^[1-3]$ ]] || die "node $cmd: N is a cluster node id, 1, 2 or 3, not '$n'"
    case $cmd in
        kill)
            pid=$(node_pid "$n")
            kill -KILL "$pid"
            for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            rm -f "$RUN_DIR/kafka-$n.pid"
            say "kafka-$n: killed (pid $pid, SIGKILL)"
            ;;
        pause | resume) svc_signal "kafka-$n" "$cmd" ;;
        start)
            lock 900
            prereqs_python # tests/kafka_tool.py runs in .local/venv
            node_running "$n" && { node_wait "$n"; return 0; }
            pid=$(pid_alive kafka) && die "kafka: the single Kafka node (pid $pid) runs on $KAFKA_BROKERS; the cluster's nodes cannot start beside it"
            [ -f "$CLUSTER_DIR/node$n/data/meta.properties" ] ||
                die "kafka-$n: no data in $CLUSTER_DIR/node$n/data to start from; start the cluster with scripts/services.sh up --kafka-nodes 3"
            node_start "$n"
            node_wait "$n"
            ;;
        cut) lock 120 && node_cut "$n" ;;
        heal)
            lock 120
            iptables_found || { say "kafka-$n: iptables is not installed, so no rule to remove" && return 0; }
            node_heal loud "$n"
            ;;
        pid) node_pid "$n" ;;
    esac
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
# any_alive PID...: one of them runs.
any_alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && return 0; done
    return 1
}

# svc_down NAME...: TERM (and CONT, in case it is paused) to each, wait, then KILL. Kafka
# gets 30 s for its controlled shutdown, so that a restart loses nothing. The cluster's
# nodes stop together: stopped one by one, the last ones would wait for a controller
# quorum that is gone. With several names, one that never ran is not mentioned.
svc_down() {
    local name pid secs=15 i
    local -a names=() pids=()
    for name in "$@"; do
        [[ $name == kafka* ]] && secs=30
        if pid=$(pid_alive "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
            kill -CONT "$pid" 2>/dev/null || true
            names+=("$name") pids+=("$pid")
        elif [ -e "$RUN_DIR/$name.pid" ]; then
            rm -f "$RUN_DIR/$name.pid"
            say "$name: not running (removed a stale pid file)"
        elif [ $# = 1 ]; then
            say "$name: not running (nothing started by services.sh)"
        fi
    done
    [ ${#pids[@]} -gt 0 ] || return 0
    for _ in $(seq $((secs * 10))); do any_alive "${pids[@]}" || break; sleep 0.1; done
    for i in "${!pids[@]}"; do
        if kill -0 "${pids[$i]}" 2>/dev/null; then
            warn "${names[$i]} (pid ${pids[$i]}) did not stop within ${secs}s of SIGTERM; sending SIGKILL"
            kill -KILL "${pids[$i]}" 2>/dev/null || true
            sleep 0.5
        fi
    done
    for i in "${!pids[@]}"; do
        rm -f "$RUN_DIR/${names[$i]}.pid"
        say "${names[$i]}: stopped (pid ${pids[$i]})"
    done
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
    local name=$1 pid answers=1 where resume="resume $1"
    case $name in
        kafka) # status installs nothing; without confluent-kafka an open port has to do
            where=$KAFKA_BROKERS SSE_PYTHON=$ROOT/.local/venv/bin/python
            port_open "$KAFKA_HOST" "$KAFKA_PORT" && { kafka_answers ||
                ! "$SSE_PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; } && answers=0
            ;;
        kafka-[0-9]*)
            NODE=${name#kafka-} resume="node resume ${name#kafka-}" SSE_PYTHON=$ROOT/.local/venv/bin/python
            where=$KAFKA_HOST:$(node_broker_port "$NODE")
            port_open "$KAFKA_HOST" "${where##*:}" && { node_answers ||
                ! "$SSE_PYTHON" -c 'import confluent_kafka' >/dev/null 2>&1; } && answers=0
            ;;
        dynamodb) where=$DDB_ENDPOINT && ddb_answers && answers=0 ;;
    esac
    if pid=$(pid_alive "$name"); then
        local state="runs (pid $pid) but does NOT answer on $where"
        [ "$answers" = 0 ] && state="running (pid $pid), answers on $where"
        paused "$pid" && state="$state: PAUSED (SIGSTOP; scripts/services.sh $resume)"
        [ -e "$RUN_DIR/$name.cut" ] && state="$state: CUT (iptables; scripts/services.sh node heal ${name#kafka-})"
        say "$name: $state; log $LOG_DIR/$name.log"
    elif [ "$answers" = 0 ]; then
        say "$name: answers on $where (a process not started by services.sh)"
    else
        say "$name: not running"
    fi
    return "$answers"
}

# kafka_status: the single node, or each node of the cluster and how many brokers its
# metadata lists; returns 0 when every node answers.
kafka_status() {
    local n rc=0 count
    if ! compgen -G "$RUN_DIR/kafka-[0-9]*.pid" >/dev/null; then
        svc_status kafka
        return
    fi
    for n in "${CLUSTER_NODES[@]}"; do svc_status "kafka-$n" || rc=3; done
    if count=$("$ROOT/.local/venv/bin/python" "$KAFKA_TOOL" brokers "$CLUSTER_BROKERS" --timeout 5 2>/dev/null); then
        say "kafka: the cluster's metadata lists $count of 3 brokers ($CLUSTER_BROKERS)"
    fi
    [ -e "$RUN_DIR/kafka.pid" ] && { svc_status kafka || rc=3; }
    return "$rc"
}

[ $# -ge 1 ] || usage
action=$1
shift
if [ "$action" = node ]; then
    node_cmd "$@"
    exit 0
fi
services=(kafka dynamodb) kafka_nodes=1 named=""
while [ $# -gt 0 ]; do
    case $1 in
        all | kafka | dynamodb)
            [ -z "$named" ] || usage
            named=$1
            [ "$1" = all ] || services=("$1")
            ;;
        --kafka-nodes)
            if [ "$action" != up ] || [ $# -lt 2 ]; then usage; fi
            kafka_nodes=$2
            shift
            ;;
        *) usage ;;
    esac
    shift
done
case $kafka_nodes in
    1 | 3) ;;
    *) die "--kafka-nodes is 1 (the single node, the default) or 3 (the cluster), not '$kafka_nodes'" ;;
esac
[ "$kafka_nodes" = 1 ] || [ "$named" != dynamodb ] || usage

case $action in
    up)
        lock 900
        hint=""
        for s in "${services[@]}"; do
            case $s:$kafka_nodes in
                kafka:3) kafka_cluster_up && hint+=" SSE_KAFKA_BROKERS=$CLUSTER_BROKERS" ;;
                kafka:1) kafka_up && hint+=" SSE_KAFKA_BROKERS=$KAFKA_BROKERS" ;;
                *) dynamodb_up && hint+=" SSE_DYNAMODB_ENDPOINT=$DDB_ENDPOINT" ;;
            esac
        done
        printf '%s\n' "" "for sse-server:$hint" "logs in $ROOT/$LOG_DIR/; stop with: scripts/services.sh down"
        ;;
    down)
        lock 120
        for s in "${services[@]}"; do
            if [ "$s" = kafka ]; then
                # The single node, unless only the cluster was started (not to say "not running").
                if [ -e "$RUN_DIR/kafka.pid" ] || ! compgen -G "$RUN_DIR/kafka-[0-9]*.pid" >/dev/null; then
                    svc_down kafka
                fi
                svc_down kafka-1 kafka-2 kafka-3
                heal_all quiet
            else
                svc_down "$s"
            fi
        done
        ;;
    pause | resume)
        for s in "${services[@]}"; do
            if [ "$s" = kafka ] && ! pid_alive kafka >/dev/null && cluster_pid >/dev/null; then
                for n in "${CLUSTER_NODES[@]}"; do
                    if pid_alive "kafka-$n" >/dev/null; then svc_signal "kafka-$n" "$action"; fi
                done
            else
                svc_signal "$s" "$action"
            fi
        done
        ;;
    status)
        rc=0
        for s in "${services[@]}"; do
            if [ "$s" = kafka ]; then kafka_status || rc=3; else svc_status "$s" || rc=3; fi
        done
        exit "$rc"
        ;;
    *) usage ;;
esac
