#!/usr/bin/env bash
# The same simulations timed with two build trees, alternately (A B A B ...), so that a
# restructuring can show it costs nothing: median wall seconds of each and the median of the
# pairwise ratios NEW/OLD. Workloads: the full SecAgg+ round path (masks, shares, unmasking on
# the client pool and the engine) and the plain path at a larger cohort.
# Usage: bench/bench_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [RUNS]   (default 5 runs each)
set -euo pipefail
old=${1:?usage: bench/bench_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [RUNS]}
new=${2:?usage: bench/bench_builds.sh OLD_BUILD_DIR NEW_BUILD_DIR [RUNS]}
runs=${3:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
workloads=(
  "full|--dataset synthetic:users=20000,items=2000,dim=16 --dim 16 --rounds 3 --cohort 200 --secagg full"
  "plain|--dataset synthetic:users=100000,items=2000,dim=16 --dim 16 --rounds 5 --cohort 2000 --secagg plain"
)
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
secs() { # one timed run: wall seconds
  local t0 t1
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$1/sim/fedrec-sim" --algorithm fedavg $2 --seed 3 --threads 2 --quiet --json > "$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f\n", b - a}'
}
printf '%-6s %10s %10s %12s\n' workload old_s new_s "new/old"
for w in "${workloads[@]}"; do
  name=${w%%|*}; args=${w#*|}
  secs "$old" "$args" > /dev/null # warm-up (page cache, CPU frequency)
  : > "$work/o"; : > "$work/n"; : > "$work/r"
  for _ in $(seq "$runs"); do
    a=$(secs "$old" "$args"); b=$(secs "$new" "$args")
    echo "$a" >> "$work/o"; echo "$b" >> "$work/n"
    awk -v a="$a" -v b="$b" 'BEGIN {printf "%.4f\n", b / a}' >> "$work/r"
  done
  printf '%-6s %10s %10s %12s\n' "$name" "$(median < "$work/o")" "$(median < "$work/n")" "$(median < "$work/r")"
done
