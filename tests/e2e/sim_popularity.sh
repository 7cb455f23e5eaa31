#!/usr/bin/env bash
# Private popularity in the simulator: --algorithm private-popularity at a large epsilon ranks
# as well as central popularity (within 10%), and its ledger epsilon stays under the target;
# fedavg with --popularity-rounds 1 spends the target in all (count and model rounds together,
# the count round with its own, smaller noise multiplier) and its model keeps at least 90% of
# private popularity's Recall@20 at the same epsilon.   tests/e2e/sim_popularity.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
data=synthetic:users=6000,items=300,dim=8,seed=5
run() { "$B/sim/fedrec-sim" --dataset "$data" --threads 2 --secagg plain --quiet --json "$@" | tail -1; }
get() { grep -o "\"$1\": [0-9.e+-]*" <<<"$2" | head -1 | awk '{print $2}'; }
central=$(get recall@20 "$(run --algorithm popularity)")
private=$(run --algorithm private-popularity --cohort 2000 --target-epsilon 50 --delta 1e-6)
r=$(get recall@20 "$private") e=$(get epsilon "$private")
echo "central popularity $central; private popularity $r at epsilon $e"
awk -v r="$r" -v c="$central" -v e="$e" 'BEGIN { exit !(r >= 0.9 * c && e > 0 && e <= 50) }' ||
  { echo "FAIL: private popularity below 90% of central or over its epsilon"; exit 1; }
floor=$(run --algorithm private-popularity --cohort 1000 --target-epsilon 2 --delta 1e-6)
model=$(run --algorithm fedavg --dim 8 --rounds 6 --popularity-rounds 1 --cohort 1000 --optimizer fedadam --server-lr 0.3 \
  --target-epsilon 2 --delta 1e-6 --eval-every 6)
rf=$(get recall@20 "$floor") rm=$(get recall@20 "$model") em=$(get epsilon "$model")
zc=$(get popularity_noise_multiplier "$model") zm=$(get noise_multiplier "$model")
echo "epsilon 2: private popularity $rf; model with a count round $rm (epsilon $em, count round z $zc, model rounds z $zm)"
awk -v a="$rm" -v b="$rf" -v e="$em" -v zc="$zc" -v zm="$zm" 'BEGIN { exit !(a >= 0.9 * b && e <= 2 && zc < zm) }' ||
  { echo "FAIL: the model fell below private popularity, or epsilon over 2, or the count round's noise not its own"; exit 1; }
grep -q '"popularity_rounds": 1' <<<"$model" || { echo "FAIL: summary lacks popularity_rounds"; exit 1; }
# --popularity-share: auto (the default) gives the count round more of a small budget than of a
# large one, within 0.01-0.95; a number is kept as given; anything else is refused
share() { get popularity_share "$(run --algorithm fedavg --dim 8 --rounds 6 --popularity-rounds 1 --cohort 1000 --eval-every 6 "$@")"; }
s2=$(share --target-epsilon 2) s50=$(share --target-epsilon 50) s5=$(share --target-epsilon 2 --popularity-share 0.3)
echo "count rounds' share: auto $s2 at epsilon 2, $s50 at 50; given 0.3: $s5"
awk -v a="$s2" -v b="$s50" -v c="$s5" 'BEGIN { exit !(a > b && a <= 0.95 && b >= 0.01 && c == 0.3) }' ||
  { echo "FAIL: the count rounds' share"; exit 1; }
out=$("$B/sim/fedrec-sim" --algorithm fedavg --popularity-rounds 1 --popularity-share 1.2 2>&1) && { echo "FAIL: share 1.2 taken"; exit 1; }
grep -q "popularity-share '1.2': a number in \[0, 0.99\] or auto" <<<"$out" || { echo "FAIL: no reason: $out"; exit 1; }
echo "sim popularity: PASS"
