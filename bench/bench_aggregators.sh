#!/usr/bin/env bash
# What aggregators take off the coordinator, on real processes on loopback (TLS): a coordinator
# with A aggregators (0: none), N fedrec-client devices, a model of D parameters (a synthetic
# catalogue of D/32 items, each with a free embedding at d = 32, plus the head). Round 1 brings
# every device the catalogue and the model; round 2 is measured: the coordinator's secure-
# aggregation ingress (the round's bytes_in: keys, shares, reveals and the masked inputs or the
# aggregators' sums), its CPU seconds over the round, and the round's time (the sum of its phase
# times). The DP noise is token (noise-multiplier 0.01, discrete Gaussian, 12-bit modulus): the
# exact Skellam sampler at a deployment's noise takes minutes of a device's CPU at D = 10^6
# (BENCHMARKS.md, "A round on a device") and would measure the devices, not the transport.
# Everything else as deployed.
# Everything shares this machine's cores, so the round time says what one machine carries.
#   bench/bench_aggregators.sh BUILD_DIR [D...]     (default: 1048576)
#   AGGS="0 1 3" (aggregator counts), N=12 devices, PHASE_MS=600000, Z=0.01, BITS=12, NOISE=dgauss.
# Prints one JSON line per configuration.
set -euo pipefail
B=$(cd "${1:?usage: bench/bench_aggregators.sh BUILD_DIR [D...]}" && pwd)
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
DIMS=("$@")
[[ $# -eq 0 ]] && DIMS=(1048576)
COORD=$B/coordinator/fedrec-coordinator
CLIENT=$B/client/fedrec-client
AGG=$B/coordinator/fedrec-aggregator
N=${N:-12}
W=$(mktemp -d /tmp/fedrec-bench-agg.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$W"' EXIT
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null
"$SRC/scripts/gen-aggregator-certs" "$W/certs" agg-1 agg-2 agg-3 2>/dev/null
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; } # user + system, in seconds (USER_HZ 100)
field() { grep '"event": "round_done", "round": '"$2"',' "$1" | grep -o "\"$3\": [0-9.]*" | head -1 | grep -o '[0-9.]*$'; }

for D in "${DIMS[@]}"; do
  for A in ${AGGS:-0 1 3}; do
    S=$W/d$D-a$A
    mkdir -p "$S"
    items=$((D / 32))
    CAT="synthetic:users=$((N * 10)),items=$items,dim=16,seed=5"
    "$COORD" init --state-dir "$S/state" > /dev/null 2>&1
    ports=() spec=""
    for k in $(seq 1 "$A"); do ports+=("$(free_port)"); spec+="${spec:+,}agg-$k=127.0.0.1:${ports[$((k - 1))]}"; done
    AGGFLAGS=()
    [[ $A -gt 0 ]] && AGGFLAGS=(--aggregators "$spec" --aggregator-listen 127.0.0.1:0 --aggregator-ca "$W/certs/aggregator-ca.pem")
    "$COORD" serve --state-dir "$S/state" --listen 127.0.0.1:0 --metrics-listen '' --tls-cert "$W/certs/server.pem" \
      --tls-key "$W/certs/server.key" --catalogue "$CAT" --dim 32 --free-embeddings 1 --cohort "$N" --min-cohort "$N" \
      --min-survivors $((N - 2)) --dropout 0.02 --dishonest 0 --rounds 2 --phase-ms "${PHASE_MS:-600000}" --retry-ms 300 \
      --noise "${NOISE:-dgauss}" --noise-multiplier "${Z:-0.01}" --bits "${BITS:-12}" --clip 2 --budget 1000000 "${AGGFLAGS[@]}" 2> "$S/coord.log" &
    cpid=$!
    pids=("$cpid")
    for _ in $(seq 1200); do grep -q '"event": "serving"' "$S/coord.log" && break; sleep 0.1; done
    port=$(grep -o '"port": [0-9]*' "$S/coord.log" | head -1 | grep -o '[0-9]*$')
    aport=$(grep -o '"aggregator_port": [0-9]*' "$S/coord.log" | head -1 | grep -o '[0-9]*$')
    for k in $(seq 1 "$A"); do
      "$AGG" --listen "127.0.0.1:${ports[$((k - 1))]}" --coordinator "127.0.0.1:$aport" --tls-cert "$W/certs/server.pem" \
        --tls-key "$W/certs/server.key" --client-cert "$W/certs/agg-$k.pem" --client-key "$W/certs/agg-$k.key" \
        --ca "$W/certs/ca.pem" --max-message-mb 512 2> "$S/agg-$k.log" &
      pids+=($!)
    done
    for _ in $(seq 100); do [[ $(grep -c '"event": "aggregator_live"' "$S/coord.log" || true) -ge $A ]] && break; sleep 0.1; done
    mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users "$N" --quiet)
    for i in $(seq 1 "$N"); do
      "$COORD" token --state-dir "$S/state" --id "$i" |
        "$CLIENT" init --store "$S/c$i.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token - \
          --coordinator-key "@$S/state/identity.pub" --catalogue "$CAT" 2>/dev/null
      "$CLIENT" import --store "$S/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null
    done
    echo "[bench_aggregators] D=$D, $A aggregators: round 1 (downloads)" >&2
    for i in $(seq 1 "$N"); do "$CLIENT" sync --store "$S/c$i.db" --rounds 1 > /dev/null 2>&1 & done
    wait $(jobs -p | grep -vxF -f <(printf '%s\n' "${pids[@]}")) 2>/dev/null || true
    grep -q '"event": "round_done", "round": 1,' "$S/coord.log" || { tail -3 "$S/coord.log" >&2; echo "round 1 failed" >&2; exit 1; }
    c0=$(cpu_s "$cpid")
    echo "[bench_aggregators] D=$D, $A aggregators: round 2 (measured)" >&2
    for i in $(seq 1 "$N"); do "$CLIENT" sync --store "$S/c$i.db" --rounds 1 > /dev/null 2>&1 & done
    wait $(jobs -p | grep -vxF -f <(printf '%s\n' "${pids[@]}")) 2>/dev/null || true
    grep -q '"event": "round_done", "round": 2,' "$S/coord.log" || { tail -3 "$S/coord.log" >&2; echo "round 2 failed" >&2; exit 1; }
    c1=$(cpu_s "$cpid")
    line=$(grep '"event": "round_done", "round": 2,' "$S/coord.log")
    ms=$(grep -o '"phase_ms": {[^}]*}' <<< "$line" | grep -o '[0-9]*' | awk '{s += $1} END {print s}')
    /usr/bin/python3 -c '
import json, sys
d, a, n, surv, bin_, ms, c0, c1 = sys.argv[1:]
print(json.dumps({"name": "aggregators_round", "params": int(d), "aggregators": int(a), "devices": int(n),
                  "survivors": int(surv), "coordinator_ingress_bytes": int(bin_), "round_s": round(int(ms) / 1000, 2),
                  "coordinator_cpu_s": round(float(c1) - float(c0), 2)}))' \
      "$D" "$A" "$N" "$(field "$S/coord.log" 2 survivors)" "$(field "$S/coord.log" 2 bytes_in)" "$ms" "$c0" "$c1"
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    pids=()
    rm -rf "$S"
  done
done
