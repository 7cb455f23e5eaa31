#!/usr/bin/env bash
# A device's own participation bound (init --max-participation): device 1, bounded to one
# round, takes part in round 1, then only fetches models ("models only"), whatever the
# coordinator does; eight other devices run round 2 without it. Its count survives a restart of
# the device process (kept in its store), and the coordinator's clients table agrees.
#   tests/e2e/participation.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" participation
step() { echo "[participation] $*" >&2; }
CAT="synthetic:users=300,items=100,dim=8,seed=4"
N=9
e2e_serve --catalogue "$CAT" --dim 8 --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --rounds 2 \
  --phase-ms 20000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --budget 1000
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

step "round 2 runs with device 9 instead; device 1, synced again, still only fetches models"
"$CLIENT" sync --store "$W/c9.db" --rounds 1 > "$W/c9.out" 2> "$W/c9.err" &
pids+=($!)
"$CLIENT" sync --store "$W/c1.db" --rounds 1 > "$W/c1b.out" 2> "$W/c1b.err" || fail "device 1 again: $(tail -2 "$W/c1b.err")"
grep -q "participated in 0 rounds" "$W/c1b.out" || fail "device 1 took part again: $(cat "$W/c1b.out")"
for p in "${pids[@]}"; do wait "$p" || true; done
for _ in $(seq 100); do [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 2 ]] && break; sleep 0.2; done
[[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 2 ]] || fail "round 2 did not finish"
rounds=$(/usr/bin/python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT rounds FROM clients WHERE id = 1").fetchone()[0])' \
  "$W/state/coordinator.db")
[[ $rounds == 1 ]] || fail "the coordinator counts $rounds rounds for device 1"
e2e_stop
echo "participation: PASS"
