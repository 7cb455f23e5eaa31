#!/usr/bin/env bash
# Every bad input of issue 5 section 3 gets its status code and changes nothing: runs
# tests/rpc_probe against a coordinator (TLS, cohort 10, 1 MiB message cap), then checks
# that no round ran, the model is still version 1 and the ledger is empty and verifies.
#   tests/e2e/bad_input.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" bad
e2e_serve --catalogue "synthetic:users=500,items=200,dim=8,seed=1" --cohort 10 --min-cohort 10 --min-survivors 6 \
  --dropout 0.001 --dishonest 0.001 --phase-ms 60000 --max-message-mb 1 --budget 1000
"$B/tests/rpc_probe" "127.0.0.1:$port" "$W/certs/ca.pem" "$W/state" || fail "the probe found a wrong status"
# a token revoked while the coordinator runs is refused within seconds, others are not
"$COORD" revoke --state-dir "$W/state" --id 7 || fail "revoke"
sleep 3
"$B/tests/rpc_probe" "127.0.0.1:$port" "$W/certs/ca.pem" "$W/state" revoked 7 || fail "a revoked token was accepted"
e2e_stop
[ "$(stat -c %a "$W/state")" = 700 ] || fail "state directory is not 0700"
[ "$(stat -c %a "$W/state/coordinator.db")" = 600 ] || fail "coordinator.db is not 0600"
st=$("$COORD" status --state-dir "$W/state")
echo "state after the probe: $st"
grep -q '"model_versions": \[1\], "rounds": 0, "rounds_aborted": 0' <<< "$st" || fail "state changed"
grep -q '"verified": true, "entries": 0' <<< "$st" || fail "ledger changed"
echo "bad input: PASS"
