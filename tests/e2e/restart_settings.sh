#!/usr/bin/env bash
# A coordinator restarted on an existing state with settings that conflict with it: the
# ledger's budget and delta, the model's catalogue and dimension are refused, naming the saved
# value; the same settings left out take the saved values (logged); a changed noise multiplier
# is taken and logged as a warning (every ledger entry records its own); a saved value edited
# out of range is refused. And --help shows
# defaults and ranges the way people write numbers.
#   restart_settings.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" restart-settings
CAT="synthetic:users=300,items=60,dim=8,seed=5"
e2e_serve --catalogue "$CAT" --dim 4 --cohort 40 --min-cohort 40 --min-survivors 30 --budget 12 --delta 1e-6
e2e_stop
serve() { "$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --metrics-listen '' --tls-cert "$W/certs/server.pem" \
  --tls-key "$W/certs/server.key" --cohort 40 --min-cohort 40 --min-survivors 30 "$@"; }
refused() { # refused PATTERN FLAGS...
  local pat=$1 rc
  shift
  timeout 20 bash -c "$(declare -f serve); COORD=$COORD W=$W serve $(printf '%q ' "$@")" > "$W/o" 2>&1 && rc=0 || rc=$?
  [[ $rc -ne 0 && $rc -ne 124 ]] || fail "serve $* was not refused (exit $rc)"
  grep -q -- "$pat" "$W/o" || fail "serve $*: expected '$pat' in: $(grep -v '^{' "$W/o")"
  echo "  serve $*: $(grep -v '^{' "$W/o" | head -1 | cut -c1-200)"
}
refused "budget 30 conflicts with the saved ledger's 12" --catalogue "$CAT" --dim 4 --budget 30
refused "delta 1e-05 conflicts with the saved ledger's 1e-06" --catalogue "$CAT" --dim 4 --delta 1e-5
refused "dim '8' conflicts with the saved state's '4'" --catalogue "$CAT" --dim 8
refused "catalogue 'synthetic:users=300,items=70,dim=8,seed=5' conflicts with the saved state's '$CAT'" \
  --catalogue "synthetic:users=300,items=70,dim=8,seed=5"
echo "== left out, the saved ones are taken; a new noise multiplier is logged"
: > "$W/coord.log"
e2e_serve --cohort 40 --min-cohort 40 --min-survivors 30 --noise-multiplier 2
e2e_stop
grep -q '"event": "setting_from_state", "key": "catalogue"' "$W/coord.log" || fail "the saved catalogue was not taken"
grep -q '"event": "setting_from_state", "key": "dim", "value": "4"' "$W/coord.log" || fail "the saved dim was not taken"
grep -q '"level": "warn", "event": "setting_changed", "key": "noise-multiplier", "saved": "1", "now": "2"' "$W/coord.log" ||
  fail "the changed noise multiplier was not logged"
echo "== a saved setting edited out of range is refused, not used"
sqlite3 "$W/state/coordinator.db" "UPDATE settings SET value = '99999' WHERE key = 'dim'" 2>/dev/null ||
  $PY -c "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute(\"UPDATE settings SET value = '99999' WHERE key = 'dim'\"); c.commit()" "$W/state/coordinator.db"
refused "the saved dim '99999' is not valid" --catalogue "$CAT"
echo "== --help: defaults and ranges"
"$COORD" --help > "$W/help"
grep -q "default 100, range \[2, 1048576\]" "$W/help" || fail "--help does not show cohort's default and range: $(grep -A1 '^  cohort' "$W/help")"
out=$("$COORD" serve --cohort 1e7 2>&1) && fail "cohort 1e7 accepted"
grep -q "not a whole number in \[2, 1048576\]" <<< "$out" || fail "range printed as: $out"
out=$("$COORD" serve --cohrt 5 2>&1) && fail "a misspelt setting was accepted"
grep -q "did you mean cohort" <<< "$out" || fail "no suggestion: $out"
echo "PASS"
