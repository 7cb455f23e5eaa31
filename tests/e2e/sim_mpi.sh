#!/usr/bin/env bash
# fedrec-sim-mpi spreads each round's clients over MPI ranks and combines the ranks' masked
# sums with MPI_Reduce: with the same seed the result is bit-identical to one-process
# fedrec-sim (same model hash, epsilon, Recall@20, audit counts and bytes), with full SecAgg+
# and dropouts at every phase, Poisson cohorts, calibrated noise and canaries, and with plain
# sums; over 2, 3 and 4 ranks on this machine (--oversubscribe). Bad starts end every rank
# with a clear message instead of hanging.
#   tests/e2e/sim_mpi.sh BUILD_DIR        (skips, exit 77, when fedrec-sim-mpi or mpirun is missing)
set -euo pipefail
B=$(cd "$1" && pwd)
if [[ ! -x "$B/sim/fedrec-sim-mpi" ]] || ! command -v mpirun >/dev/null; then
  echo "SKIP: fedrec-sim-mpi or mpirun missing (scripts/install-deps installs libopenmpi-dev and openmpi-bin)"
  exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 # OpenMPI's own allocations outlive MPI_Finalize
mpi() { local np=$1; shift; timeout 300 mpirun -np "$np" "$B/sim/fedrec-sim-mpi" "$@"; }
strip() { sed 's/"seconds": [0-9.]*, //'; }

check() {
  local name=$1; shift
  local want got
  want=$("$B/sim/fedrec-sim" "$@" | strip)
  [[ "$want" == *model_hash* ]] || { echo "FAIL: $name: fedrec-sim gave no result"; exit 1; }
  for np in "${NPS[@]}"; do
    got=$(mpi "$np" "$@" | strip)
    if [[ "$got" != "$want" ]]; then
      echo "FAIL: $name: $np ranks differ from one process"
      echo " one process: $want"
      echo " $np ranks:    $got"
      exit 1
    fi
    echo "$name, $np ranks: identical ($(grep -o '"model_hash": "[0-9a-f]\{12\}' <<<"$got" | cut -d'"' -f4)..., $(grep -o '"recall@20": [0-9.]*' <<<"$got"))"
  done
}

S=(--algorithm fedavg --threads 2 --json --quiet)
NPS=(2 3 4)
check "full SecAgg+, fixed cohorts, dropouts, Skellam" "${S[@]}" --dataset synthetic:users=1500,items=150,dim=8,seed=3 \
  --dim 8 --rounds 3 --cohort 60 --privacy skellam --noise-multiplier 1 --dropout 0.03
NPS=(3)
check "full SecAgg+, Poisson cohorts, target epsilon, canaries" "${S[@]}" \
  --dataset synthetic:users=3000,items=200,dim=16,seed=5 --dim 16 --rounds 3 --sampling-rate 0.08 --privacy dgauss \
  --target-epsilon 8 --delta 1e-6 --dropout 0.02 --audit-canaries 20
check "plain sums, engine-drawn sum noise" "${S[@]}" --dataset synthetic:users=3000,items=200,dim=16,seed=5 --dim 16 \
  --rounds 3 --cohort 200 --privacy skellam --noise-multiplier 1 --secagg plain --dropout 0.1

# bad starts: every rank ends, with one clear message
W=$(mktemp -d /tmp/fedrec-mpi.XXXXXX)
trap 'rm -rf "$W"' EXIT
if mpi 3 --algorithm central --dataset synthetic:users=300,items=50,dim=8 --quiet 2>"$W/err"; then
  echo "FAIL: --algorithm central over 3 ranks was accepted"; exit 1
fi
grep -q "only --algorithm fedavg runs over MPI ranks" "$W/err" || { cat "$W/err"; echo "FAIL: no message for central"; exit 1; }
touch "$W/file"
if mpi 3 "${S[@]}" --dataset synthetic:users=300,items=50,dim=8 --dim 8 --rounds 1 --cohort 20 --out "$W/file/run" 2>"$W/err"; then
  echo "FAIL: --out under a file was accepted"; exit 1
fi
grep -q "\-\-out $W/file/run: cannot create $W/file: not a directory" "$W/err" || { cat "$W/err"; echo "FAIL: no message for --out"; exit 1; }
echo "sim mpi: PASS"
