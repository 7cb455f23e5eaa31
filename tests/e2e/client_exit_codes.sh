#!/usr/bin/env bash
# What a device's sync says and how it exits when retrying cannot help, against a real
# coordinator: a refused token exits 4 (authentication); a model signed by another key exits 5
# (integrity) and is not used (a device configured with another catalogue takes the one the
# signed model names, exit 0); unreadable TLS
# files exit 3 (configuration). And a device selected into a cohort that never fills is
# released at the end of the selection window with the coordinator's reason, within seconds,
# not after the 10-minute sync timeout.
#   client_exit_codes.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" exit-codes
CAT="synthetic:users=300,items=60,dim=8,seed=5"
e2e_serve --catalogue "$CAT" --dim 4 --cohort 40 --min-cohort 40 --min-survivors 30 --selection-ms 3000 --retry-ms 500
expect() { # expect CODE WHAT PATTERN -- sync of store $W/cN.db
  local code=$1 what=$2 pat=$3 store=$4 rc
  "$CLIENT" sync --store "$store" --max-syncs 3 > "$W/o" 2>&1 && rc=0 || rc=$?
  [[ $rc -eq $code ]] || fail "$what: exit $rc, expected $code: $(cat "$W/o")"
  grep -q -- "$pat" "$W/o" || fail "$what: expected '$pat' in: $(cat "$W/o")"
  echo "  $what: exit $rc: $(grep -o -- "$pat.*" "$W/o" | head -1 | cut -c1-150)"
}
echo "== refused token: exit 4"
echo 1.4102444800.0000000000000000000000000000000000000000000000000000000000000000 > "$W/forged"
"$CLIENT" init --store "$W/forged.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token "@$W/forged" \
  --coordinator-key "@$W/state/identity.pub" --catalogue "$CAT" 2>/dev/null
expect 4 "forged token" "authentication error" "$W/forged.db"

echo "== a model that fails its signature under the device's key: exit 5"
"$COORD" init --state-dir "$W/other" >/dev/null 2>&1
e2e_client 2 --catalogue "$CAT" --coordinator-key "@$W/other/identity.pub"
expect 5 "wrong coordinator key" "integrity error.*fails its hash or signature check" "$W/c2.db"
"$CLIENT" recommend --store "$W/c2.db" > /dev/null 2>&1 && fail "the refused model was used"

echo "== a device given another catalogue takes the one the signed model names: exit 0"
e2e_client 3 --catalogue "synthetic:users=300,items=20,dim=8,seed=5"
expect 0 "other catalogue" "not selected, round 1, model 1" "$W/c3.db"
/usr/bin/python3 -c 'import sqlite3, sys; r = sqlite3.connect(sys.argv[1]).execute("SELECT version FROM catalogue").fetchone(); sys.exit(r != (1,))' \
  "$W/c3.db" || fail "the served catalogue was not stored"
out=$("$CLIENT" recommend --store "$W/c3.db" --k 50 2>&1) || fail "recommend on the served catalogue: $out"
[[ $(wc -l <<< "$out") -eq 50 ]] || fail "the served catalogue (60 items) gave $(wc -l <<< "$out") recommendations"

echo "== unreadable TLS files: exit 3"
e2e_client 4 --catalogue "$CAT" --ca "$W/nosuch.pem"
expect 3 "missing CA file" "configuration error" "$W/c4.db"

echo "== one device in a cohort of 40 that never fills: released at the window's end, told why"
e2e_client 5 --catalogue "$CAT"
"$CLIENT" import --store "$W/c5.db" --synthetic-user 5 2>/dev/null
t0=$(date +%s%N)
"$CLIENT" sync --store "$W/c5.db" --max-syncs 1 > "$W/o" 2>&1 || fail "sync: $(cat "$W/o")"
ms=$((($(date +%s%N) - t0) / 1000000))
grep -q "left out, round [0-9]*, model 1: round [0-9]* aborted: selection: 1 device checked in, none more for 3000 ms, min-cohort is 40" "$W/o" ||
  fail "the device was not released with the reason: $(cat "$W/o")"
((ms < 15000)) || fail "the sync took $ms ms (the selection window is 3 s)"
echo "  released after $ms ms: $(head -1 "$W/o")"
e2e_stop
echo "PASS"
