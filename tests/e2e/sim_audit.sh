#!/usr/bin/env bash
# fedrec-sim --audit-canaries: with privacy off the canaries are found (a 95% lower bound on
# epsilon of at least 1); with noise calibrated to epsilon 2 the empirical lower bound stays at
# or below the accountant's upper bound.   tests/e2e/sim_audit.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
if grep -q '^FEDREC_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
  # a statistical figure, not a memory check (46 s under ASan): the release build runs it, and
  # test_audit covers the audit's code under the sanitizers
  echo "sim audit: SKIPPED in the sanitizer build"
  exit 0
fi
run() {
  "$B/sim/fedrec-sim" --algorithm fedavg --dataset synthetic:users=3000,items=500,dim=16,seed=42 --dim 16 --rounds 30 \
    --cohort 300 --clip 20 --secagg plain --audit-canaries 200 --audit-guesses 40 --threads 2 --eval-every 100 --quiet \
    --json "$@"
}
get() { grep -o "\"$1\": [0-9.e+-]*" <<<"$2" | head -1 | awk '{print $2}'; }
off=$(run --privacy none)
lo=$(get epsilon_lower "$off")
echo "privacy off: $(get correct "$off") of 40 guesses right, epsilon >= $lo"
awk -v l="$lo" 'BEGIN { exit !(l >= 1) }' || { echo "FAIL: the audit did not detect canaries without privacy"; exit 1; }
on=$(run --target-epsilon 2 --delta 1e-6)
lo=$(get epsilon_lower "$on") up=$(get epsilon "$on")
echo "epsilon 2: $(get correct "$on") of 40 guesses right, epsilon >= $lo; accountant: $up"
awk -v l="$lo" -v u="$up" 'BEGIN { exit !(u > 0 && u <= 2 && l <= u) }' || { echo "FAIL: lower bound above the upper bound"; exit 1; }
echo "sim audit: PASS"
