#!/usr/bin/env bash
# A population fitted to MovieLens (--dataset fitted:movielens:DIR,users=1500): the generator's
# match report holds (the top 1% of items' share of interactions within 15% of the source's,
# the median history length within 10%, every one of the source's items reachable), central
# iALS on it beats popularity, and the same seed gives the same population.
#   tests/e2e/sim_fitted.sh BUILD_DIR   (skips when ../shared/data is absent)
set -euo pipefail
B=$(cd "$1" && pwd)
D=$(cd "$(dirname "$0")/../../.." && pwd)/shared/data/ml-latest-small
[ -d "$D" ] || { echo "sim_fitted: $D not found, skipping"; exit 77; }
if grep -q '^FEDREC_SANITIZE:BOOL=ON' "$B/CMakeCache.txt" 2>/dev/null; then
  # the sanitizers check the generator's memory on a small draw; the quality checks below run in the release build
  "$B/sim/fedrec-sim" --algorithm popularity --dataset "fitted:movielens:$D,users=300,epochs=2" --threads 2 --quiet --json |
    grep -q '"recall@20"' || { echo "FAIL: a small fitted population under the sanitizers"; exit 1; }
  echo "sim fitted: PASS (sanitizer build: a small draw only)"
  exit 0
fi
spec=fitted:movielens:$D,users=1500,epochs=3
out=$("$B/sim/fedrec-sim" --algorithm central --dim 32 --epochs 4 --dataset "$spec" --threads 2 --json 2>&1)
echo "$out" | grep -E "fitted population|interactions on|history length"
read -r s1 f1 <<<"$(grep -o 'top 0.1%/1%/10% of items: [0-9./]* vs [0-9./]*' <<<"$out" | awk '{split($5,a,"/"); split($7,b,"/"); print a[2], b[2]}')"
read -r m1 m2 <<<"$(grep -o 'p10/p50/p90 [0-9/]* vs [0-9/]*' <<<"$out" | awk '{split($2,a,"/"); split($4,b,"/"); print a[2], b[2]}')"
awk -v s="$s1" -v f="$f1" -v a="$m1" -v b="$m2" 'BEGIN { exit !(f > 0.85 * s && f < 1.15 * s && b > 0.9 * a && b < 1.1 * a) }' ||
  { echo "FAIL: the fitted population does not match (top-1% share $f1 vs $s1, median length $m2 vs $m1)"; exit 1; }
central=$(grep -o '"recall@20": [0-9.]*' <<<"$out" | awk '{print $2}')
pop=$("$B/sim/fedrec-sim" --algorithm popularity --dataset "$spec" --threads 2 --json 2>/dev/null | grep -o '"recall@20": [0-9.]*' | awk '{print $2}')
echo "central iALS $central, popularity $pop on the fitted population"
awk -v c="$central" -v p="$pop" 'BEGIN { exit !(c > 1.2 * p) }' || { echo "FAIL: iALS does not beat popularity there"; exit 1; }
h1=$("$B/sim/fedrec-sim" --algorithm popularity --dataset "$spec" --threads 1 --json 2>/dev/null | grep -o '"recall@20": [0-9.]*')
[ "h$h1" = "h\"recall@20\": $pop" ] || { echo "FAIL: another thread count drew another population ($h1 vs $pop)"; exit 1; }
echo "sim fitted: PASS"
