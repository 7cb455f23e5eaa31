#!/usr/bin/env bash
# End to end on loopback with TLS: fedrec-coordinator and N fedrec-client processes train for
# three rounds with distributed DP and secure aggregation. Eight clients vanish mid-round, two
# at each phase. Checks: every round completes, each phase saw its dropouts, Recall@20 on
# held-out users improves over the initial model, the ledger verifies with fedrec-audit, the
# metrics endpoint reports the rounds, and SIGTERM stops the coordinator cleanly.
#   tests/e2e/federated.sh BUILD_DIR [CLIENTS (56)]
N=${2:-56}
source "$(dirname "$0")/lib.sh" "$1" e2e
CAT="synthetic:users=3000,items=500,dim=16,seed=42"
step() { echo "[e2e] $*" >&2; }

# phase deadlines of 10 s: honest clients must never miss one, even in the sanitizer build on 2
# shared cores (each draws Skellam noise for 16 384 coordinates); the vanishing clients make
# round 1 wait out four deadlines.
step "coordinator: cohorts of 40, at least 25 survivors, 3 rounds, Skellam noise"
e2e_serve --catalogue "$CAT" --cohort 40 --min-cohort 40 --min-survivors 25 --rounds 3 --phase-ms 10000 --retry-ms 400 \
  --noise-multiplier 0.5 --clip 2 --server-lr 0.5 --momentum 0.5 --budget 1000 --workers 4
step "coordinator on 127.0.0.1:$port (metrics $mport)"

step "$N clients: stores, tokens, histories of training users of the catalogue's split"
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users "$N" --quiet)
[[ ${#users[@]} -eq $N ]] || fail "expected $N training users"
e2e_devices "$CAT" "${users[@]}"

step "eight clients that vanish mid-round (two at each phase) check in first, then the rest"
pids=()
drop_at=(1 2 3 5) # keys, shares, masked, unmask (4, consistency, is the active variant's)
for i in $(seq 1 8); do
  "$CLIENT" sync --store "$W/c$i.db" --rounds 100 --simulate-dropout "${drop_at[$(((i - 1) % 4))]}" > "$W/c$i.out" 2> "$W/c$i.err" &
  pids+=($!)
done
sleep 1.5
for i in $(seq 9 "$N"); do
  "$CLIENT" sync --store "$W/c$i.db" --rounds 100 > "$W/c$i.out" 2> "$W/c$i.err" &
  pids+=($!)
done

step "waiting for three rounds"
for _ in $(seq 1200); do
  [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 3 ]] && break
  kill -0 "$cpid" 2>/dev/null || fail "coordinator exited"
  sleep 0.5
done
grep -q '"event": "round_aborted"' "$W/coord.log" && fail "a round aborted (a phase deadline too short for honest clients?)"
done_rounds=$(grep -c '"event": "round_done"' "$W/coord.log" || true)
[[ $done_rounds -ge 3 ]] || fail "only $done_rounds rounds finished"
grep '"event": "round_done"' "$W/coord.log" | sed 's/^/  /' | cut -c1-220 >&2

step "clients finish (training stopped)"
ok=0
bad=""
for i in "${!pids[@]}"; do
  if wait "${pids[$i]}"; then ok=$((ok + 1)); else rc=$?; ((i >= 8)) && bad+="  client $((i + 1)) exited $rc: $(tail -2 "$W/c$((i + 1)).err" | tr '\n' ' ')"$'\n'; fi
done
[[ -n "$bad" ]] && printf '%s' "$bad" >&2
participated=$(cat "$W"/c*.out 2>/dev/null | grep -o 'participated in [0-9]*' | awk '{s += $3} END {print s + 0}')
step "$ok of $N client processes exited normally; $participated participations completed"
[[ $ok -eq $((N - 8)) ]] || fail "expected the $((N - 8)) regular clients to exit normally, got $ok"

step "dropouts at every phase"
for ph in keys shares masked unmask; do
  # only the "dropped" object (phase_ms repeats the names)
  d=$(grep '"event": "round_done"' "$W/coord.log" | sed 's/.*"dropped": {\([^}]*\)}.*/\1/' | grep -o "\"$ph\": [0-9]*" | awk '{s += $2} END {print s + 0}')
  echo "  dropped at $ph: $d" >&2
  [[ $d -ge 2 ]] || fail "expected at least 2 dropouts at $ph, saw $d"
done

step "metrics endpoint"
metrics=$(exec 3<>/dev/tcp/127.0.0.1/"$mport"; printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; cat <&3 || true)
grep -q 'fedrec_rounds_total{outcome="published"} 3' <<< "$metrics" || fail "metrics do not show 3 published rounds"
grep -q 'fedrec_epsilon_spent' <<< "$metrics" || fail "metrics lack epsilon"

step "graceful shutdown on SIGTERM"
e2e_stop
grep -q '"event": "stopped"' "$W/coord.log" || fail "no clean stop logged"

step "the ledger verifies independently"
"$B/sim/fedrec-audit" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" >&2 || fail "ledger verification failed"

step "Recall@20 on held-out users: initial model against the last one"
"$COORD" export-model --state-dir "$W/state" --version 1 --out "$W/m_first.bin" 2>/dev/null
"$COORD" export-model --state-dir "$W/state" --out "$W/m_last.bin" 2>/dev/null
r0=$("$B/sim/fedrec-sim" --algorithm model --model "$W/m_first.bin" --dataset "$CAT" --json --quiet | grep -o '"recall@20": [0-9.e-]*' | grep -o '[0-9.e-]*$')
r1=$("$B/sim/fedrec-sim" --algorithm model --model "$W/m_last.bin" --dataset "$CAT" --json --quiet | grep -o '"recall@20": [0-9.e-]*' | grep -o '[0-9.e-]*$')
echo "  Recall@20: $r0 -> $r1" >&2
awk -v a="$r0" -v b="$r1" 'BEGIN { exit !(b > a + 0.02) }' || fail "Recall@20 did not improve ($r0 -> $r1)"

echo "e2e: PASS ($done_rounds rounds, $N clients, Recall@20 $r0 -> $r1)"
