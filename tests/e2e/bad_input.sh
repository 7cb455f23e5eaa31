#!/usr/bin/env bash
# Every bad input of issue 5 section 3 gets its status code and changes nothing: runs
# tests/rpc_probe against a coordinator (TLS, cohort 10, 1 MiB message cap), then checks
# that no round ran, the model is still version 1 and the ledger is empty and verifies.
#   tests/e2e/bad_input.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/fedrec-bad.XXXXXX)
COORD=$B/coordinator/fedrec-coordinator
cpid=""
trap '[[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null; rm -rf "$W"' EXIT
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null
"$COORD" init --state-dir "$W/state" >/dev/null 2>&1
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --metrics-listen "" \
  --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" \
  --catalogue "synthetic:users=500,items=200,dim=8,seed=1" --cohort 10 --min-cohort 10 --min-survivors 6 \
  --dropout 0.001 --dishonest 0.001 --phase-ms 60000 --max-message-mb 1 --budget 1000 2> "$W/coord.log" &
cpid=$!
for _ in $(seq 100); do grep -q '"event": "serving"' "$W/coord.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o '"port": [0-9]*' "$W/coord.log" | head -1 | grep -o '[0-9]*$')
"$B/tests/rpc_probe" "127.0.0.1:$port" "$W/certs/ca.pem" "$W/state"
kill -TERM "$cpid"
wait "$cpid"
cpid=""
st=$("$COORD" status --state-dir "$W/state")
echo "state after the probe: $st"
grep -q '"model_versions": \[1\], "rounds": 0, "rounds_aborted": 0' <<< "$st" || { echo "FAIL: state changed"; exit 1; }
grep -q '"verified": true, "entries": 0' <<< "$st" || { echo "FAIL: ledger changed"; exit 1; }
echo "bad input: PASS"
