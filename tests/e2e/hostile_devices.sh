#!/usr/bin/env bash
# Hostile devices (the device side of docs/SECURITY.md), over gRPC with TLS. tests/hostile_client
# is fedrec-client built from the library with an attack compiled in (-DFEDREC_HOSTILE), as
# someone holding one device token would build it.
#  1. Three such devices in the first cohort, beside honest ones: a share box addressed past
#     the cohort (the 61d538e heap overflow), equal advertised keys, a low-order key. Each is
#     refused at once, dropped and banned ("client_banned"); the coordinator never crashes and
#     the honest devices publish every round.
#  2. A device that skips clipping (an update of 1000 clips): the round it joins is discarded,
#     nothing is published from it, and its release is in the ledger, which verifies.
#  3. A device whose share boxes open for nobody, sending its masked input anyway: its
#     neighbours treat it as dropped; at most the one round it was in aborts (its self mask
#     cannot be removed), it is banned, and the next rounds publish.
#   tests/e2e/hostile_devices.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" hostile
HOSTILE=$B/tests/hostile_client
CAT="synthetic:users=1000,items=300,dim=16,seed=7"
step() { echo "[hostile] $*" >&2; }
device() { # device ID [ATTACK]: a store with a token and a history, syncing in the background
  local i=$1 attack=${2:-}
  e2e_client "$i" --catalogue "$CAT"
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "$i" 2>/dev/null
  if [[ -n "$attack" ]]; then
    (FEDREC_HOSTILE=$attack "$HOSTILE" sync --store "$W/c$i.db" --rounds 1000 --max-syncs 1000 > "$W/c$i.out" 2> "$W/c$i.err" &)
  else
    ("$CLIENT" sync --store "$W/c$i.db" --rounds 1000 > "$W/c$i.out" 2> "$W/c$i.err" &)
  fi
}
count() { grep -c "$1" "$W/coord.log" || true; }
serve() { # ROUNDS: cohorts of 10 on the current state
  e2e_serve --catalogue "$CAT" --cohort 10 --min-cohort 10 --min-survivors 6 --dropout 0.001 --dishonest 0.001 \
    --rounds "$1" --phase-ms 10000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --budget 1000
}
fresh_serve() { # ROUNDS: the same on a new state (the devices of before stopped)
  pkill -9 -f "sync --store $W/" 2>/dev/null || true
  rm -rf "$W/state" "$W"/c*.db* "$W/coord.log"
  "$COORD" init --state-dir "$W/state" >/dev/null 2>&1
  serve "$1"
}

step "part 1: three protocol attackers and 12 honest devices, cohort 10, 4 rounds"
serve 4
device 101 box-index
device 102 equal-keys
device 103 low-order
sleep 1 # the attackers check in first: they are in the first cohort
for i in $(seq 1 12); do device "$i"; done
published() { [[ $(count '"event": "round_done"') -ge $1 ]]; }
discarded() { grep -q 'an input was not clipped' "$W/coord.log"; }
wait_for() { # CHECK [ARGS]: up to 5 minutes, the coordinator alive all along
  for _ in $(seq 1200); do
    "$@" && return 0
    kill -0 "$cpid" 2>/dev/null || fail "the coordinator died"
    sleep 0.25
  done
  return 1
}
wait_for published 4 || true
kill -0 "$cpid" 2>/dev/null || fail "the coordinator died"
[[ $(count '"event": "round_done"') -ge 4 ]] || fail "the honest devices did not publish 4 rounds"
banned=$(count '"event": "client_banned"')
grep '"event": "client_banned"' "$W/coord.log" | cut -c1-220 >&2 || true
[[ $banned -ge 3 ]] || fail "expected the 3 attackers banned, saw $banned"
grep -q '"event": "round_aborted"' "$W/coord.log" && fail "a round aborted: one hostile member cost more than its own contribution"
e2e_stop
st=$("$COORD" status --state-dir "$W/state") || fail "state does not verify"
step "part 1: $st"
step "part 2: a device that skips clipping, with 10 honest ones"
fresh_serve 3
device 201 no-clip
sleep 1
for i in $(seq 21 30); do device "$i"; done
wait_for discarded || true
grep -q 'an input was not clipped' "$W/coord.log" || fail "the poisoned round was not discarded"
grep '"event": "round_aborted"' "$W/coord.log" | head -1 | cut -c1-300 >&2
e2e_stop
st=$("$COORD" status --state-dir "$W/state") || fail "state does not verify"
step "part 2: $st"
grep -q '"model_versions": \[1\]' <<< "$st" || fail "a model was published from a poisoned round: $st"
"$AUDIT" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" > "$W/audit.txt" || fail "ledger"
entries=$(grep -o 'verified: [0-9]* entries' "$W/audit.txt" | grep -o '[0-9]*')
[[ $entries -ge 1 ]] || fail "the discarded round's release is not in the ledger"
step "part 3: a device whose share boxes open for nobody, with 10 honest ones"
fresh_serve 3
device 301 spoil-boxes
sleep 1
for i in $(seq 31 40); do device "$i"; done
wait_for published 3 || true
[[ $(count '"event": "round_done"') -ge 3 ]] || fail "rounds stopped publishing after a member spoiled its boxes"
spoiled=$(count '"event": "round_aborted"')
[[ $spoiled -le 1 ]] || fail "$spoiled rounds aborted: the spoiler was not left out after the first"
e2e_stop
echo "hostile devices: PASS ($banned attackers banned, 4 honest rounds published; the poisoned round discarded, its release recorded: $entries ledger entries, model still version 1; a box spoiler cost $spoiled round)"
