#!/usr/bin/env bash
# The participation bound, both halves. The coordinator runs with max-participation 1; device 1
# also has its own bound (init --max-participation 1). Round 1: devices 1-8. Round 2: devices
# 2-8 keep checking in but the coordinator does not select them again; 9-16 run it; device 1
# only fetches models ("models only"), whatever the coordinator does. The coordinator's
# participation table counts each device once, the ledger (format 4, bound 1) gives round 2
# the epsilon of round 1, fedrec-audit verify says so, a restart reloads the table, and a
# restart with another bound is refused (it is fixed with the ledger).
#   tests/e2e/participation.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" participation
step() { echo "[participation] $*" >&2; }
CAT="synthetic:users=300,items=100,dim=8,seed=4"
N=16
e2e_serve --catalogue "$CAT" --dim 8 --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --rounds 2 \
  --phase-ms 20000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --budget 1000 --max-participation 1
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users $N --quiet)
for i in $(seq 1 $N); do
  if ((i == 1)); then e2e_client 1 --catalogue "$CAT" --max-participation 1; else e2e_client "$i" --catalogue "$CAT"; fi
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null
done

step "round 1: device 1 checks in first, then seven others"
"$CLIENT" sync --store "$W/c1.db" --rounds 2 > "$W/c1.out" 2> "$W/c1.err" &
d1=$!
sleep 1
pids=()
for i in $(seq 2 8); do "$CLIENT" sync --store "$W/c$i.db" --rounds 2 > "$W/c$i.out" 2> "$W/c$i.err" & pids+=($!); done
wait "$d1" || fail "device 1: $(tail -3 "$W/c1.err")"
grep -q "participated in 1 round;" "$W/c1.out" || fail "device 1 did not take part in exactly one round: $(cat "$W/c1.out")"
grep -q "models only, .*took part in 1 rounds, its max_participation" "$W/c1.err" || fail "device 1 did not stop at its bound: $(tail -3 "$W/c1.err")"
for _ in $(seq 100); do [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 1 ]] && break; sleep 0.2; done

step "round 2: devices 2-8 still check in, 9-16 are selected; device 1 only fetches models"
sleep 1 # devices 2-8 come back (retry-ms 300) and are turned away
for i in $(seq 9 $N); do "$CLIENT" sync --store "$W/c$i.db" --rounds 1 > "$W/c$i.out" 2> "$W/c$i.err" & pids+=($!); done
"$CLIENT" sync --store "$W/c1.db" --rounds 1 > "$W/c1b.out" 2> "$W/c1b.err" || fail "device 1 again: $(tail -2 "$W/c1b.err")"
grep -q "participated in 0 rounds" "$W/c1b.out" || fail "device 1 took part again: $(cat "$W/c1b.out")"
for p in "${pids[@]}"; do wait "$p" || true; done
for _ in $(seq 100); do [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 2 ]] && break; sleep 0.2; done
[[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 2 ]] || fail "round 2 did not finish"
for i in $(seq 2 8); do
  grep -q "participated in 1 round;" "$W/c$i.out" || fail "device $i: $(cat "$W/c$i.out")"
done
counts=$(/usr/bin/python3 -c 'import sqlite3, sys; print(" ".join("%d:%d" % r for r in sqlite3.connect(sys.argv[1]).execute(
  "SELECT id, count FROM participation ORDER BY id")))' "$W/state/coordinator.db")
want=$(for i in $(seq 1 $N); do printf '%d:1 ' "$i"; done)
[[ "$counts " == "$want" ]] || fail "participation table: '$counts', want '$want'"
eps=($(grep '"event": "round_done"' "$W/coord.log" | grep -o '"epsilon": [0-9.]*' | grep -o '[0-9.]*$'))
[[ ${eps[0]} == "${eps[1]}" ]] || fail "round 2 changed epsilon from ${eps[0]} to ${eps[1]} (each device took part once)"
e2e_stop

step "fedrec-audit verify composes one round per device"
"$B/sim/fedrec-audit" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" > "$W/verify.out" ||
  fail "verify: $(tail -2 "$W/verify.out")"
grep -q "verified: 2 entries, epsilon ${eps[1]}.*composing the 1 costliest entries per order" "$W/verify.out" ||
  fail "verify: $(tail -1 "$W/verify.out")"

step "a restart reloads the table; another bound is refused"
e2e_serve --rounds 3
grep -q '"event": "participation_restored", "devices": 16, "max_participation": 1' "$W/coord.log" ||
  fail "not restored: $(grep participation "$W/coord.log" | tail -2)"
e2e_stop
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --tls-cert "$W/certs/server.pem" \
  --tls-key "$W/certs/server.key" --max-participation 2 2> "$W/bound.err" && fail "started with another bound"
grep -q "max-participation 2 conflicts with the saved ledger's 1" "$W/bound.err" || fail "refused how? $(tail -2 "$W/bound.err")"
echo "participation: PASS"
