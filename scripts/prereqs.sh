# shellcheck shell=bash
# scripts/prereqs.sh — sourced (not run) by scripts/test.sh, services.sh,
# install_services.sh, run.sh and bench.sh: checks the tools a machine needs, up front,
# and installs what it can from the usual package sources (apt, rustup, pip inside a
# virtual environment) or stops with one plain sentence saying what to install.
# Checking first means an old Node or a missing Java is reported at once, not deep
# inside a build.
#
# Requirements (also listed in the README):
#   Rust (cargo)  >= 1.94    the locked dependencies (aws-smithy-*) need it
#   Node.js       >= 20.19   Vite 8, and dynalite (the local DynamoDB); npm comes with it
#   Java          >= 17      the local Apache Kafka broker
#   Maven                    fetches the Kafka broker's jars from Maven Central
#   Python 3 with venv       tests/kafka_tool.py and other Python tools run in .local/venv
#   curl
#
# Python: the tools' packages (scripts/requirements.txt) go into a virtual environment,
# .local/venv, never into the system's Python: Debian's python3 is "externally managed"
# (PEP 668) and refuses `pip install`. After `prereqs_python`, $SSE_PYTHON is that
# environment's interpreter; it is exported as SSE_TEST_PYTHON for the Rust tests too.
#
# Every function returns 0 when the tool is there (after installing it if needed) and
# exits the calling script with one sentence on stderr otherwise.

PREREQS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREREQS_VENV=$PREREQS_ROOT/.local/venv
PREREQS_REQUIREMENTS=$PREREQS_ROOT/scripts/requirements.txt
MIN_RUST=1.94
MIN_NODE=20.19
MIN_JAVA=17

prereqs_die() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

prereqs_say() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# version_at_least HAVE WANT: true when dotted version HAVE >= WANT.
version_at_least() {
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

prereqs_as_root() {
    if [ "$(id -u)" = 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

# prereqs_apt PACKAGE...: installs with apt-get; false when there is no apt-get, no root
# or the packages do not exist.
prereqs_apt() {
    command -v apt-get >/dev/null 2>&1 || return 1
    prereqs_say "installing $* with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    prereqs_as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 && return 0
    prereqs_as_root apt-get update -qq >/dev/null 2>&1 || true
    prereqs_as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}

# apt_candidate PACKAGE: the version apt would install, empty when none.
apt_candidate() {
    command -v apt-cache >/dev/null 2>&1 || return 0
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }' |
        sed -E 's/^[0-9]+://; s/[-+~].*$//'
}

prereqs_curl() {
    command -v curl >/dev/null 2>&1 && return 0
    prereqs_apt curl || prereqs_die "curl is missing: install it (apt-get install curl)."
}

prereqs_rust() {
    command -v cargo >/dev/null 2>&1 ||
        prereqs_die "Rust is missing: install Rust $MIN_RUST or newer from https://rustup.rs."
    local have
    have=$(rustc --version 2>/dev/null | awk '{print $2}')
    version_at_least "${have:-0}" "$MIN_RUST" && return 0
    if command -v rustup >/dev/null 2>&1; then
        prereqs_say "Rust $have is older than $MIN_RUST; updating with rustup ..."
        rustup update stable >/dev/null 2>&1 || true
        have=$(rustc --version 2>/dev/null | awk '{print $2}')
        version_at_least "${have:-0}" "$MIN_RUST" && return 0
    fi
    prereqs_die "Rust ${have:-?} is too old: install Rust $MIN_RUST or newer (rustup update stable)."
}

prereqs_node() {
    local have=""
    command -v node >/dev/null 2>&1 && have=$(node --version 2>/dev/null | sed 's/^v//')
    if [ -n "$have" ] && version_at_least "$have" "$MIN_NODE" && command -v npm >/dev/null 2>&1; then
        return 0
    fi
    # apt only when its Node is new enough (Debian 12 ships 18, which Vite 8 refuses).
    local candidate
    candidate=$(apt_candidate nodejs)
    if [ -n "$candidate" ] && version_at_least "$candidate" "$MIN_NODE"; then
        prereqs_apt nodejs || true
        command -v npm >/dev/null 2>&1 || prereqs_apt npm || true
        have=$(node --version 2>/dev/null | sed 's/^v//')
        if [ -n "$have" ] && version_at_least "$have" "$MIN_NODE" && command -v npm >/dev/null 2>&1; then
            return 0
        fi
    fi
    prereqs_die "Node.js ${have:+$have is too old; }$MIN_NODE or newer (with npm) is needed: install it from https://nodejs.org or with nvm (nvm install 22)."
}

# Java for the local Kafka broker (a runtime is enough).
prereqs_java() {
    local have=""
    command -v java >/dev/null 2>&1 &&
        have=$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }' | sed 's/^1\.//')
    [ -n "$have" ] && version_at_least "$have" "$MIN_JAVA" && return 0
    # Debian 12 has openjdk-17; newer releases carry a newer default JRE.
    prereqs_apt openjdk-17-jre-headless || prereqs_apt default-jre-headless || true
    have=$(java -version 2>&1 | awk -F'"' '/version/ { print $2; exit }' | sed 's/^1\.//')
    [ -n "$have" ] && version_at_least "$have" "$MIN_JAVA" && return 0
    prereqs_die "Java ${have:+$have is too old; }$MIN_JAVA or newer is needed for the local Kafka broker: install it (apt-get install openjdk-17-jre-headless)."
}

# Maven copies the Kafka broker's jars (scripts/kafka/pom.xml) from Maven Central.
prereqs_maven() {
    command -v mvn >/dev/null 2>&1 && return 0
    prereqs_apt maven || true
    command -v mvn >/dev/null 2>&1 ||
        prereqs_die "Maven is missing; it fetches the local Kafka broker's jars: install it (apt-get install maven)."
}

# The virtual environment's packages all import (checked before pip is asked anything).
prereqs_venv_complete() {
    "$PREREQS_VENV/bin/python" -c 'import confluent_kafka, boto3, jwt, cryptography, schemathesis, aiohttp' >/dev/null 2>&1
}

# Creates .local/venv when missing (or broken, e.g. its base Python was removed) and
# installs scripts/requirements.txt into it. Sets and exports SSE_PYTHON and
# SSE_TEST_PYTHON. Serialised with a lock: services.sh and test.sh may both call it.
prereqs_python() {
    local python=python3
    command -v python3 >/dev/null 2>&1 || prereqs_apt python3 ||
        prereqs_die "Python 3 is missing: install it (apt-get install python3 python3-venv)."
    mkdir -p "$PREREQS_ROOT/.local/run"
    (
        flock -w 600 8 || prereqs_die "another script holds .local/run/venv.lock for over 10 minutes"
        if [ -x "$PREREQS_VENV/bin/python" ] && prereqs_venv_complete; then
            exit 0
        fi
        if ! "$PREREQS_VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
            rm -rf "$PREREQS_VENV"
            if ! "$python" -m venv "$PREREQS_VENV" >/dev/null 2>&1; then
                rm -rf "$PREREQS_VENV"
                # Debian splits venv (and ensurepip) out of python3.
                local minor
                minor=$("$python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
                prereqs_apt python3-venv "python$minor-venv" || prereqs_apt python3-venv || true
                "$python" -m venv "$PREREQS_VENV" >/dev/null 2>&1 || {
                    rm -rf "$PREREQS_VENV"
                    prereqs_die "python3 cannot create a virtual environment: install python3-venv (apt-get install python3-venv)."
                }
            fi
        fi
        prereqs_say "installing the Python tools' packages into .local/venv ($(grep -v '^#' "$PREREQS_REQUIREMENTS" | tr '\n' ' ')) ..."
        "$PREREQS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
            -r "$PREREQS_REQUIREMENTS" ||
            prereqs_die "pip could not install scripts/requirements.txt into .local/venv; check the network and run the script again."
        prereqs_venv_complete ||
            prereqs_die "the packages of scripts/requirements.txt do not import in .local/venv; remove .local/venv and run the script again."
    ) 8>"$PREREQS_ROOT/.local/run/venv.lock" || exit 1
    SSE_PYTHON=$PREREQS_VENV/bin/python
    SSE_TEST_PYTHON=$SSE_PYTHON
    export SSE_PYTHON SSE_TEST_PYTHON
}
