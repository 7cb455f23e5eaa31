#!/usr/bin/env bash
# Count and spectral rounds through the real coordinator and devices over TLS: the coordinator
# runs popularity-rounds 1 and spectral-items 20 for three rounds of 8 devices: round 1 is a count
# round, round 2 a spectral round with at least one direction above the noise, round 3 trains the
# model; every round has its ledger entry and fedrec-audit verify recomputes the epsilon; a
# device with an empty history is recommended the popular items from the published model's
# popularity, and one with a history gets its own list.
#   tests/e2e/popularity_rounds.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" popularity_rounds
step() { echo "[popularity_rounds] $*" >&2; }
CAT="synthetic:users=300,items=100,dim=8,seed=4"
N=8
e2e_serve --catalogue "$CAT" --dim 8 --free-embeddings 1 --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 \
  --dishonest 0.001 --rounds 3 --phase-ms 20000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --budget 1000 \
  --popularity-rounds 1 --popularity-noise-multiplier 0.05 --spectral-items 20
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users $N --quiet)
for i in $(seq 1 $((N + 1))); do e2e_client "$i" --catalogue "$CAT"; done
for i in $(seq 1 $N); do "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null; done

step "three rounds of $N devices"
pids=()
for i in $(seq 1 $N); do "$CLIENT" sync --store "$W/c$i.db" --rounds 3 > "$W/c$i.out" 2> "$W/c$i.err" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a device failed: $(cat "$W"/c*.err | grep -v "^$" | tail -4)"; done
for _ in $(seq 100); do [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 3 ]] && break; sleep 0.2; done
kinds=$(grep '"event": "round_done"' "$W/coord.log" | grep -o '"kind": "[a-z]*"' | grep -o '[a-z]*"$' | tr -d '"' | tr '\n' ' ')
[[ "$kinds" == "count spectral model " ]] || fail "round kinds: '$kinds'"
rank=$(grep '"event": "round_done"' "$W/coord.log" | sed -n 2p | grep -o '"spectral_rank": [0-9]*' | grep -o '[0-9]*$')
((rank >= 1)) || fail "the spectral round kept no direction"
e2e_stop

step "the ledger: three entries, verified"
"$B/sim/fedrec-audit" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" > "$W/verify.out" ||
  fail "verify: $(tail -2 "$W/verify.out")"
grep -q "verified: 3 entries" "$W/verify.out" || fail "verify: $(tail -1 "$W/verify.out")"

step "recommendations: an empty history gets the popular items"
PORT=$port e2e_serve # the address the devices were given
"$CLIENT" sync --store "$W/c$((N + 1)).db" --rounds 1 --max-syncs 1 > "$W/empty.out" 2>&1 || fail "device $((N + 1)) could not fetch the model: $(tail -2 "$W/empty.out")"
e2e_stop
empty=$("$CLIENT" recommend --store "$W/c$((N + 1)).db" --k 5 2>&1) || fail "recommend (empty history): $empty; its sync: $(cat "$W/empty.out")"
own=$("$CLIENT" recommend --store "$W/c1.db" --k 5 2>&1) || fail "recommend: $own"
[[ $(grep -c . <<<"$empty") -ge 5 ]] || fail "an empty history got no popular items: $empty"
[[ "$empty" != "$own" ]] || fail "a history changed nothing: $own"
echo "popularity rounds: PASS"
