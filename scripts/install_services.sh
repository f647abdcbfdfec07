#!/usr/bin/env bash
# scripts/install_services.sh — installs what scripts/services.sh runs, when it is missing,
# into ${XDG_CACHE_HOME:-~/.cache}/sse-server/ (shared by every checkout):
#   kafka     Apache Kafka $KAFKA_VERSION's jars, with Log4j 2 for its log, copied from
#             Maven Central by Maven (scripts/kafka/pom.xml) into kafka-VERSION/libs/
#             (about 45 jars, 43 MB; about 45 s the first time)
#   dynamodb  dynalite $DYNALITE_VERSION (npm; DynamoDB's API on LevelDB) into
#             dynalite-VERSION/ (about 5 s)
#
# Usage: scripts/install_services.sh kafka|dynamodb
#
# Prints nothing but progress lines, on stderr; exit 0 when the service is installed.
# Each download goes into a NAME.partial folder that is renamed when complete, so an
# interrupted one is never used (the next run starts it again). The tools it needs
# (Java 17 and Maven; Node.js and npm) are checked and installed by scripts/prereqs.sh.
# Maven's and npm's own output goes to .local/logs/install-NAME.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/prereqs.sh
source scripts/prereqs.sh

# The same versions and cache paths as in scripts/services.sh.
KAFKA_VERSION=4.4.0
DYNALITE_VERSION=4.0.0
CACHE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/sse-server
KAFKA_POM=$ROOT/scripts/kafka/pom.xml
KAFKA_LIBS=$CACHE_DIR/kafka-$KAFKA_VERSION/libs
DYNALITE_HOME=$CACHE_DIR/dynalite-$DYNALITE_VERSION
LOG_DIR=$ROOT/.local/logs

say() { printf 'install_services.sh: %s\n' "$*" >&2; }
die() {
    printf 'install_services.sh: error: %s\n' "$*" >&2
    exit 1
}

# fail LOG MESSAGE: the log's last lines, then MESSAGE.
fail() {
    say "last lines of $1:"
    tail -n 20 "$1" >&2 || true
    die "$2"
}

install_kafka() {
    [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
    grep -q "<version>$KAFKA_VERSION</version>" "$KAFKA_POM" ||
        die "$KAFKA_POM does not name Kafka $KAFKA_VERSION; change the version in it and in both scripts together"
    prereqs_java
    prereqs_maven
    local log=$LOG_DIR/install-kafka.log partial=$KAFKA_LIBS.partial
    say "kafka: fetching Apache Kafka $KAFKA_VERSION's jars from Maven Central (about 43 MB, once; log $log) ..."
    rm -rf "$partial"
    mkdir -p "$partial"
    mvn -B -ntp -Dstyle.color=never -f "$KAFKA_POM" dependency:copy-dependencies -DincludeScope=runtime \
        "-DoutputDirectory=$partial" >>"$log" 2>&1 ||
        fail "$log" "Maven could not fetch the Kafka jars; check the network and run it again"
    [ -f "$partial/kafka_2.13-$KAFKA_VERSION.jar" ] ||
        fail "$log" "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is not in $partial"
    rm -rf "$KAFKA_LIBS"
    mv "$partial" "$KAFKA_LIBS"
    say "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
}

install_dynamodb() {
    [ -f "$DYNALITE_HOME/node_modules/dynalite/cli.js" ] && return 0
    prereqs_node
    local log=$LOG_DIR/install-dynamodb.log partial=$DYNALITE_HOME.partial
    say "dynamodb: installing dynalite $DYNALITE_VERSION with npm (once; log $log) ..."
    rm -rf "$partial"
    mkdir -p "$partial"
    # npm may warn that it skipped install scripts: dynalite's LevelDB binding ships
    # prebuilt and loads without them.
    npm install --no-audit --no-fund --prefix "$partial" "dynalite@$DYNALITE_VERSION" >>"$log" 2>&1 ||
        fail "$log" "npm could not install dynalite@$DYNALITE_VERSION; check the network and run it again"
    [ -f "$partial/node_modules/dynalite/cli.js" ] ||
        fail "$log" "npm finished but $partial/node_modules/dynalite/cli.js is missing"
    rm -rf "$DYNALITE_HOME"
    mv "$partial" "$DYNALITE_HOME"
    say "dynamodb: dynalite $DYNALITE_VERSION installed in $DYNALITE_HOME"
}

case ${1:-} in
    kafka | dynamodb) service=$1 ;;
    *)
        echo "usage: scripts/install_services.sh kafka|dynamodb" >&2
        exit 2
        ;;
esac
[ $# = 1 ] || die "one service at a time: kafka or dynamodb"

mkdir -p "$CACHE_DIR" "$LOG_DIR"
# Two checkouts (or two scripts) may install at once into the same cache.
exec 8>"$CACHE_DIR/install-$service.lock"
flock -w 900 8 || die "another install of $service holds $CACHE_DIR/install-$service.lock"
"install_$service"
