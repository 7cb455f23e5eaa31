#!/usr/bin/env bash
# Mutual TLS: with tls-client-ca set, a client with a certificate from that CA gets served;
# a client without one does not (UNAVAILABLE at the TLS handshake).
#   tests/e2e/mtls.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/fedrec-mtls.XXXXXX)
COORD=$B/coordinator/fedrec-coordinator
C=$B/client/fedrec-client
cpid=""
trap 'rc=$?; [[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null; [[ $rc -ne 0 ]] && cat "$W/coord.log"; rm -rf "$W"' EXIT
CAT="synthetic:users=200,items=60,dim=4,seed=1"
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null
"$COORD" init --state-dir "$W/state" >/dev/null 2>&1
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --metrics-listen "" --catalogue "$CAT" \
  --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" --tls-client-ca "$W/certs/ca.pem" 2> "$W/coord.log" &
cpid=$!
for _ in $(seq 100); do grep -q '"event": "serving"' "$W/coord.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o '"port": [0-9]*' "$W/coord.log" | head -1 | grep -o '[0-9]*$')
grep -q '"mtls": true' "$W/coord.log"
tok=$("$COORD" token --state-dir "$W/state" --id 3)
for who in with without; do
  extra=()
  [[ $who == with ]] && extra=(--cert "$W/certs/client.pem" --key "$W/certs/client.key")
  "$C" init --store "$W/$who.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token "$tok" \
    --coordinator-key "@$W/state/identity.pub" --catalogue "$CAT" "${extra[@]}" 2>/dev/null
done
out=$("$C" sync --store "$W/with.db" --max-syncs 1 2>&1)
grep -q "not selected, round 1, model 1" <<< "$out" || { echo "FAIL: with a certificate: $out"; exit 1; }
out=$("$C" sync --store "$W/without.db" --max-syncs 1 2>&1) || true
grep -q "CheckIn: UNAVAILABLE" <<< "$out" || { echo "FAIL: without a certificate: $out"; exit 1; }
echo "mtls: PASS"
