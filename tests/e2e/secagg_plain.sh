#!/usr/bin/env bash
# fedrec-sim --secagg plain computes the identical sum as --secagg full: with the same seed,
# dropouts at every phase, and Skellam or discrete-Gaussian noise, the final models are
# bit-identical (same BLAKE2b hash), and so are epsilon and Recall@20.
#   tests/e2e/secagg_plain.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
for privacy in skellam dgauss; do
  run() {
    "$B/sim/fedrec-sim" --algorithm fedavg --dataset synthetic:users=800,items=100,dim=8,seed=3 --dim 8 --rounds 3 \
      --cohort 50 --privacy "$privacy" --noise-multiplier 1 --dropout 0.05 --threads 2 --json --quiet --secagg "$1" |
      grep -o '"model_hash": "[0-9a-f]*"\|"epsilon": [0-9.e+-]*\|"recall@20": [0-9.e+-]*' | tr '\n' ' '
  }
  full=$(run full)
  plain=$(run plain)
  echo "$privacy full:  $full"
  echo "$privacy plain: $plain"
  [[ -n "$full" && "$full" == "$plain" ]] || { echo "FAIL: --secagg plain differs from full ($privacy)"; exit 1; }
done
echo "secagg plain: PASS (bit-identical models)"
