#!/usr/bin/env bash
# scripts/update_report_status.sh — ask sse-server to move one report to a new status,
# the way a back-office job would: PUT $SSE_URL/v4/report?user_id=<userID> with the JSON
# body {"id": "<reportID>", "status": "<new-status>"}.
#
# Usage: scripts/update_report_status.sh <userID> <reportID> <new-status>
# Env:   SSE_URL (default http://localhost:3000)
#        SSE_TOKEN: when set, sent as `Authorization: Bearer $SSE_TOKEN` (for a server
#        with authorization on; read from stdin by curl, so it never shows in `ps`)
#
# Prints the server's answer body on stdout and "HTTP <code>" on stderr.
# Exit: 0 on 2xx/3xx; 1 on any 4xx/5xx; curl's own exit code (e.g. 7 connection
# refused, 28 timeout) when the server cannot be reached; 2 on wrong usage.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 <userID> <reportID> <new-status>" >&2
    echo "  e.g. $0 3f0e...-uuid 9a1c...-uuid queued    (status: pending|queued|processing|canceled|failed|completed)" >&2
    exit 2
fi

base="${SSE_URL:-http://localhost:3000}"
base="${base%/}"

# JSON body and query string built by python3, so any quote, backslash or non-ASCII
# character in the arguments is escaped properly (the server validates the values).
body=$(python3 -c 'import json, sys; print(json.dumps({"id": sys.argv[1], "status": sys.argv[2]}))' "$2" "$3")
user_q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")

out=$(mktemp)
trap 'rm -f "$out"' EXIT

rc=0
code=$(printf 'Authorization: Bearer %s\n' "${SSE_TOKEN:-}" |
    curl -sS --max-time 10 -X PUT \
        -H 'Content-Type: application/json' \
        ${SSE_TOKEN:+-H @-} \
        --data-binary "$body" \
        -o "$out" -w '%{http_code}' \
        "$base/v4/report?user_id=$user_q") || rc=$?

if [ "$rc" -ne 0 ]; then
    echo "update_report_status.sh: could not reach $base (curl exit code $rc)" >&2
    exit "$rc"
fi

cat "$out"
# end the answer with a newline when the server did not
[ -s "$out" ] && [ "$(tail -c 1 "$out" | od -An -c | tr -d ' ')" != '\n' ] && echo
echo "HTTP $code" >&2

if [ "$code" -ge 400 ] || [ "$code" -lt 100 ]; then
    exit 1
fi
