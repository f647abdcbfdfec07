#!/usr/bin/env bash
# scripts/tls_cert.sh — a self-signed certificate for localhost and 127.0.0.1 (ECDSA
# P-256, 30 days), made with openssl when missing or expiring within a day, for
# `scripts/run.sh --tls` and the TLS tests. Prints the directory holding cert.pem and
# key.pem (.local/tls/). Browsers warn about it: accept it once, or use a certificate
# of your own with --tls-cert / --tls-key (docs/deploy.md).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR=$ROOT/.local/tls
mkdir -p "$DIR"
# Tests run in parallel: one makes the certificate while the others wait, so none
# reads a key or certificate half written.
exec 9>"$DIR/.lock"
flock 9
if ! [ -s "$DIR/cert.pem" ] || ! openssl x509 -checkend 86400 -noout -in "$DIR/cert.pem" >/dev/null 2>&1; then
    command -v openssl >/dev/null || { echo "tls_cert.sh: openssl is needed (Debian: apt-get install openssl)" >&2; exit 1; }
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -days 30 -nodes \
        -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
        -keyout "$DIR/key.pem" -out "$DIR/cert.pem" 2>/dev/null
    echo "tls_cert.sh: made a self-signed certificate for localhost in $DIR" >&2
fi
printf '%s\n' "$DIR"
