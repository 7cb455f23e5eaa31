#!/usr/bin/env bash
# A malicious coordinator is caught by the devices (the active secure-aggregation variant):
# tests/malicious_coordinator is fedrec-coordinator built with FEDREC_MALICIOUS, which rewrites
# what it relays as an operator who attacks would. Three enrolled devices per attack; each
# attack is refused by a device before it reveals anything it should not, with the reason,
# and the device stops (exit 5, integrity):
#   downgrade        the round offered as the passive variant
#   forge-cert       a member's certificate signed by the coordinator, not the authority
#   substitute-keys  a member's advertised keys replaced by the coordinator's own
#   equivocate       one device shown a survivor list without a survivor, at unmasking
#   shrink           one device shown a survivor list shorter than the round's min-survivors
# and, with no attack but no participation bound of its own, a device with --min-separation 3
# declines the round after the one it took part in.
#   tests/e2e/malicious_coordinator.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" malicious
step() { echo "[malicious] $*" >&2; }
CAT="synthetic:users=100,items=60,dim=4,seed=5"
"$COORD" authority-init --out "$W/authority.key" >/dev/null 2>&1
serve_evil() { # attack: the malicious build, on the same state
  FEDREC_MALICIOUS=$1 E2E_COORD=$B/tests/malicious_coordinator PORT=${port:-0} e2e_serve \
    --enrolment-authority "@$W/authority.key.pub" --catalogue "$CAT" --dim 4 --cohort 3 --min-cohort 3 --min-survivors 2 \
    --dropout 0 --dishonest 0 --phase-ms 1500 --max-phase-ms 1500 --retry-ms 200 --selection-ms 1000 --noise-multiplier 0.5 \
    --clip 1 --budget 1000
}
serve_evil none
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users 4 --quiet)
for i in 1 2 3 4; do
  sep=(); ((i == 4)) && sep=(--min-separation 3)
  e2e_client "$i" --catalogue "$CAT" --authority-key "@$W/authority.key.pub" "${sep[@]}"
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null
  e2e_enrol "$i"
done
e2e_stop

# attack expected-text: three devices sync; at least one must stop with exit 5 saying expected-text
attacked() {
  local attack=$1 want=$2 caught=0
  step "$attack: caught by the devices ($want)"
  serve_evil "$attack"
  pids=()
  for i in 1 2 3; do "$CLIENT" sync --store "$W/c$i.db" --max-syncs 2 > /dev/null 2> "$W/$attack.$i.err" & pids+=($!); done
  for i in 1 2 3; do
    rc=0; wait "${pids[$((i - 1))]}" || rc=$?
    if grep -q "$want" "$W/$attack.$i.err"; then
      [[ $rc == 5 ]] || fail "$attack: device $i said why but exited $rc"
      caught=$((caught + 1))
    fi
  done
  [[ $caught -ge 1 ]] || fail "$attack: no device caught it: $(cat "$W/$attack".*.err)"
  e2e_stop
}
attacked downgrade "offered the passive secure-aggregation variant; this device is enrolled for the active one"
attacked forge-cert "not signed by the enrolment authority"
attacked substitute-keys "bad signature on advertised keys"
attacked equivocate "the survivor list differs from the one we signed"
attacked shrink "fewer than the 2 inputs the noise was planned for: no share revealed"
step "the device's own min-separation: a coordinator that selects it again next round is declined"
serve_evil none
pids=()
for i in 2 3 4; do "$CLIENT" sync --store "$W/c$i.db" --max-syncs 3 > /dev/null 2> "$W/sep1.$i.err" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "an honest round: $(cat "$W"/sep1.*.err)"; done
pids=()
for i in 2 3 4; do "$CLIENT" sync --store "$W/c$i.db" --max-syncs 1 > /dev/null 2> "$W/sep2.$i.err" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || true; done
grep -q "min_separation is 3): declined, nothing sent" "$W/sep2.4.err" || fail "device 4 did not decline: $(cat "$W/sep2.4.err")"
e2e_stop
echo "malicious_coordinator: PASS"
