#!/usr/bin/env bash
# The main job (scripts/run) as a new user meets it, on this build (FEDREC_BUILD: no install,
# no build) and in folders of the test's own (FEDREC_OUT):
# 1. too few devices for secure aggregation (scripts/run 10 2): refused at once, saying how
#    many would do, instead of waiting for ever;
# 2. slow devices (each waits FEDREC_DEVICE_DELAY_MS before every message, longer than the
#    first phase deadline): rounds abort at first, the deadlines adapt, training finishes and
#    the ledger verifies; the run ends on its own;
# 3. a second run never overwrites the first (FEDREC_OUT exists: refused).
#   main_job.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" main-job
export FEDREC_BUILD=$B
echo "== scripts/run 10 2"
t0=$(date +%s)
FEDREC_OUT=$W/small timeout 120 "$SRC/scripts/run" 10 2 > "$W/small.out" 2>&1 && fail "scripts/run 10 2 succeeded?"
sed 's/^/  | /' "$W/small.out"
grep -q "secure aggregation needs cohorts of 33 or more here: run scripts/run 33 2" "$W/small.out" ||
  fail "scripts/run 10 2 did not say how many devices would do"
(($(date +%s) - t0 < 60)) || fail "scripts/run 10 2 took $(($(date +%s) - t0)) s to refuse"

if grep -q '^FEDREC_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
  # 35 sanitizer-built processes for 2.5 minutes: the release build walks this path; the
  # sanitizers check the same code in test_engine and the other end-to-end tests
  echo "SKIPPED the slowed run in the sanitizer build"
  exit 0
fi
echo "== slow devices: scripts/run 34 2 with FEDREC_PHASE_MS=1000 FEDREC_DEVICE_DELAY_MS=1500"
t0=$(date +%s)
FEDREC_OUT=$W/slow FEDREC_PHASE_MS=1000 FEDREC_DEVICE_DELAY_MS=1500 timeout 600 "$SRC/scripts/run" 34 2 > "$W/slow.out" 2>&1 ||
  { cat "$W/slow.out"; fail "the slowed main job failed"; }
sed 's/^/  | /' "$W/slow.out"
grep -q "round [0-9]* aborted: .*missed the keys deadline" "$W/slow.out" || fail "no round missed a deadline: the test does not slow enough"
grep -q "training stopped after [0-9]* s: all 2 rounds done" "$W/slow.out" || fail "training did not finish its 2 rounds"
grep -q "ledger verified" "$W/slow.out" || grep -q "verified" "$W/slow.out" || fail "the ledger was not verified"
echo "  finished in $(($(date +%s) - t0)) s"
# only this run's processes were started, and none is left
for p in $(pgrep -f "fedrec-client sync --store $W/slow/" || true); do fail "device process $p still runs"; done

echo "== the audit of that run: every entry recomputable from what the table shows"
S=$W/slow/state
"$AUDIT" verify --ledger "$S/ledger.db" --public-key "$S/identity.pub" > "$W/audit.txt" || fail "verify"
cmd=$(grep -m1 -o 'fedrec-audit epsilon .*' "$W/audit.txt") || fail "no recompute command in the table"
first=$(awk '$2 ~ /^[0-9]+$/ && $3 == "skellam" {print $7; exit}' "$W/audit.txt")
again=$("$AUDIT" ${cmd#fedrec-audit } --json | grep -o '"epsilon": [0-9.e+-]*' | grep -o '[0-9.e+-]*$')
echo "  entry 1: epsilon $first in the table, $again recomputed with: $cmd"
awk -v a="$first" -v b="$again" 'BEGIN {d = a - b; exit !(d < 1e-6 && d > -1e-6)}' || fail "recomputed $again, the table says $first"
"$AUDIT" verify --ledger "$S/ledger.db" --public-key "$S/identity.pub" --json | grep -q '"l2_sensitivity": ' ||
  fail "the JSON does not carry the entries' parameters"
# the private key given by mistake: named, never echoed
"$AUDIT" verify --ledger "$S/ledger.db" --public-key "$S/identity.key" > "$W/o" 2>&1 && fail "verified with the private key?"
grep -q "PRIVATE signing key" "$W/o" || fail "the private key file was not recognised: $(cat "$W/o")"
secret=$(head -c 64 "$S/identity.key")
for n in 6 8 12 16; do grep -qi "${secret:0:$n}" "$W/o" && fail "the audit printed bytes of the private key"; done
echo "  --public-key identity.key: $(cat "$W/o")"

echo "== a second run into the same folder is refused"
FEDREC_OUT=$W/slow "$SRC/scripts/run" 34 2 > "$W/again.out" 2>&1 && fail "scripts/run overwrote a run"
grep -q "exists (a run's state and ledger)" "$W/again.out" || fail "the refusal said: $(cat "$W/again.out")"
[[ -f "$W/slow/state/ledger.db" ]] || fail "the first run's ledger is gone"
echo "PASS"
