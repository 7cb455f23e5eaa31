#!/usr/bin/env bash
# Crash recovery: the coordinator is killed with SIGKILL in the middle of rounds, three times,
# and restarted on the same state while the clients keep syncing. Checks: it resumes from the
# last published model; every model it announced is still there, versions 1..V without gaps;
# the ledger verifies after every crash; no round is recorded twice and epsilon never goes
# down; training completes the configured rounds.
#   tests/e2e/recovery.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" recovery
CAT="synthetic:users=1000,items=300,dim=16,seed=7"
N=14
ROUNDS=6
step() { echo "[recovery] $*" >&2; }
start() {
  e2e_serve --catalogue "$CAT" --cohort 10 --min-cohort 10 --min-survivors 6 --dropout 0.001 --dishonest 0.001 \
    --rounds $ROUNDS --phase-ms 3000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --budget 1000 --keep-models 1000
  PORT=$port MPORT=$mport # restarts listen where the clients look
}
phase_now() { # the active phase, from the metrics endpoint
  (exec 3<>/dev/tcp/127.0.0.1/"$mport" && printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3 && cat <&3 || true) |
    grep 'fedrec_phase{' | grep ' 1$' | sed 's/.*phase="\([a-z]*\)".*/\1/'
}

start
step "coordinator on 127.0.0.1:$port; $N clients"
for i in $(seq 1 $N); do
  e2e_client "$i" --catalogue "$CAT"
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "$i" 2>/dev/null
  ("$CLIENT" sync --store "$W/c$i.db" --rounds 1000 > "$W/c$i.out" 2> "$W/c$i.err" &)
done
midround=0

published() { grep -c '"event": "model_published"' "$W/coord.log" || true; }
last_eps=0
for crash in 1 2 3; do
  # wait for one more round to finish, then kill somewhere inside the next one
  target=$(( $(grep -c '"event": "round_done"' "$W/coord.log" || true) + 1 ))
  for _ in $(seq 600); do
    [[ $(grep -c '"event": "round_done"' "$W/coord.log" || true) -ge $target ]] && break
    sleep 0.1
  done
  sleep "0.$((RANDOM % 9 + 1))"
  # aim inside a round: wait (briefly) for a secure-aggregation phase to be active
  for _ in $(seq 40); do
    ph=$(phase_now)
    [[ "$ph" == keys || "$ph" == shares || "$ph" == masked || "$ph" == unmask ]] && break
    sleep 0.05
  done
  kill -9 "$cpid"
  step "crash $crash: SIGKILL during phase '$ph'"
  [[ "$ph" == keys || "$ph" == shares || "$ph" == masked || "$ph" == unmask ]] && midround=$((midround + 1))
  wait "$cpid" 2>/dev/null || true
  cpid=""
  st=$("$COORD" status --state-dir "$W/state") || fail "state does not verify after crash $crash: $st"
  eps=$(grep -o '"epsilon": [0-9.e+-]*' <<< "$st" | grep -o '[0-9.e+-]*$')
  step "crash $crash: $st"
  awk -v a="$last_eps" -v b="$eps" 'BEGIN { exit !(b >= a) }' || fail "epsilon went down: $last_eps -> $eps"
  last_eps=$eps
  # every model announced before the crash is in the state
  n_pub=$(published)
  vers=$(grep -o '"model_versions": \[[0-9, ]*\]' <<< "$st" | grep -o '[0-9][0-9, ]*' || true)
  n_kept=$(tr ',' '\n' <<< "$vers" | grep -c '[0-9]' || true)
  [[ $n_kept -ge $n_pub ]] || fail "$n_pub models announced, $n_kept in the state"
  start
  grep -q '"resumed": true' "$W/coord.log" || fail "no resume logged"
done

step "waiting for all $ROUNDS rounds"
for _ in $(seq 1200); do
  grep -q '"event": "training_stopped"' "$W/coord.log" && break
  st=$("$COORD" status --state-dir "$W/state" 2>/dev/null || true)
  [[ $(grep -o '"rounds": [0-9]*' <<< "$st" | grep -o '[0-9]*$') -ge $ROUNDS ]] && break
  sleep 0.2
done
sleep 0.5
e2e_stop
st=$("$COORD" status --state-dir "$W/state") || fail "final state does not verify"
step "final: $st"
vers=$(grep -o '"model_versions": \[[0-9, ]*\]' <<< "$st" | grep -o '[0-9][0-9, ]*')
expect=$(seq -s ', ' 1 $((ROUNDS + 1)))
[[ "$vers" == "$expect" ]] || fail "model versions [$vers], expected [$expect]: a published model was lost or duplicated"
"$AUDIT" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" --json > "$W/audit.json" || fail "ledger does not verify"
rounds=$(grep -o '"round": [0-9]*' "$W/audit.json" | grep -o '[0-9]*$')
[[ "$(sort -n <<< "$rounds" | uniq -d)" == "" ]] || fail "a round is recorded twice in the ledger: $rounds"
[[ "$(sort -n <<< "$rounds")" == "$rounds" ]] || fail "ledger rounds out of order: $rounds"
entries=$(wc -l <<< "$rounds")
[[ $entries -ge $ROUNDS ]] || fail "$entries ledger entries for $ROUNDS published rounds"
[[ $midround -ge 1 ]] || fail "no crash landed inside a round"
echo "recovery: PASS ($midround of 3 crashes inside a round; models [$vers]; ledger rounds $(tr '\n' ' ' <<< "$rounds"))"
