#!/usr/bin/env bash
# fedrec-sim --secagg plain computes the identical sum as --secagg full: with the same seed,
# dropouts at every phase, and Skellam or discrete-Gaussian noise drawn by the clients, or
# Skellam noise drawn once for the sum, the final models are bit-identical (same BLAKE2b
# hash), and so are epsilon and Recall@20.
#   tests/e2e/secagg_plain.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
for setting in "skellam clients" "dgauss clients" "skellam sum"; do
  read -r privacy draws <<<"$setting"
  run() {
    "$B/sim/fedrec-sim" --algorithm fedavg --dataset synthetic:users=800,items=100,dim=8,seed=3 --dim 8 --rounds 3 \
      --cohort 50 --privacy "$privacy" --noise-multiplier 1 --dropout 0.03 --threads 2 --json --quiet --secagg "$1" \
      --noise-draws "$draws" |
      grep -o '"model_hash": "[0-9a-f]*"\|"epsilon": [0-9.e+-]*\|"recall@20": [0-9.e+-]*' | tr '\n' ' '
  }
  full=$(run full)
  plain=$(run plain)
  echo "$privacy, noise drawn by $draws, full:  $full"
  echo "$privacy, noise drawn by $draws, plain: $plain"
  [[ -n "$full" && "$full" == "$plain" ]] || { echo "FAIL: --secagg plain differs from full ($setting)"; exit 1; }
done
echo "secagg plain: PASS (bit-identical models)"
# --noise-draws sum (the engine draws the survivors' Skellam noise once) has the same
# distribution: with noise dominating (z = 20) the decoded update's norm matches the clients'
# own draws to a few percent, and epsilon is identical.
W=$(mktemp -d /tmp/fedrec-plain.XXXXXX)
trap 'rm -rf "$W"' EXIT
for draws in clients sum; do
  "$B/sim/fedrec-sim" --algorithm fedavg --dataset synthetic:users=800,items=100,dim=8,seed=3 --dim 8 --rounds 4 \
    --cohort 50 --privacy skellam --noise-multiplier 20 --threads 2 --quiet --secagg plain --noise-draws "$draws" \
    --eval-every 100 --log "$W/$draws.jsonl" > /dev/null
done
norm() { grep -o '"update_norm": [0-9.e+-]*' "$W/$1.jsonl" | awk '{s += $2; n++} END {print s / n}'; }
eps() { grep -o '"epsilon": [0-9.e+-]*' "$W/$1.jsonl" | tail -1 | awk '{print $2}'; }
a=$(norm clients) b=$(norm sum)
echo "noise drawn by clients: mean |update| $a, epsilon $(eps clients); drawn once: $b, epsilon $(eps sum)"
awk -v a="$a" -v b="$b" 'BEGIN { r = b / a; exit !(r > 0.95 && r < 1.05) }' || { echo "FAIL: noise norms differ"; exit 1; }
[[ "$(eps clients)" == "$(eps sum)" ]] || { echo "FAIL: epsilon differs"; exit 1; }
echo "sum-noise draws: PASS"
