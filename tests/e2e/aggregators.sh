#!/usr/bin/env bash
# Aggregators on loopback: a coordinator, three fedrec-aggregator processes and devices. Round 1:
# every device's masked input goes through its aggregator, the coordinator takes three sums.
# Round 2: one aggregator hangs (SIGSTOP) mid-round: its devices count as dropped, the round
# completes from the other two sums. Also: a device's masked input sent to the coordinator is
# refused, an aggregator call without an aggregator certificate is refused, a device call with
# no ticket or a wrong one is refused, the ledger verifies.
#   tests/e2e/aggregators.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" aggregators
AGG=$B/coordinator/fedrec-aggregator
CAT="synthetic:users=600,items=120,dim=8,seed=3"
N=36
step() { echo "[aggregators] $*" >&2; }
"$SRC/scripts/gen-aggregator-certs" "$W/certs" agg-1 agg-2 agg-3 2>/dev/null
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ap=()
for k in 1 2 3; do ap+=("$(free_port)"); done
apids=()
agg_start() { # agg_start K: aggregator agg-K on its port
  local k=$1
  "$AGG" --listen "127.0.0.1:${ap[$((k - 1))]}" --coordinator "127.0.0.1:$aport" --tls-cert "$W/certs/server.pem" \
    --tls-key "$W/certs/server.key" --client-cert "$W/certs/agg-$k.pem" --client-key "$W/certs/agg-$k.key" \
    --ca "$W/certs/ca.pem" --poll-ms 100 2>> "$W/agg-$k.log" &
  apids[$k]=$!
}
e2e_on_exit() { for p in "${apids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -9 "$p" 2>/dev/null; done; return 0; }

step "coordinator with three aggregators"
e2e_serve --catalogue "$CAT" --cohort $N --min-cohort $N --min-survivors 20 --rounds 2 --phase-ms 4000 \
  --max-phase-ms 4000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --budget 1000 \
  --aggregators "agg-1=127.0.0.1:${ap[0]},agg-2=127.0.0.1:${ap[1]},agg-3=127.0.0.1:${ap[2]}" \
  --aggregator-listen 127.0.0.1:0 --aggregator-ca "$W/certs/aggregator-ca.pem"
aport=$(grep -o '"aggregator_port": [0-9]*' "$W/coord.log" | tail -1 | grep -o '[0-9]*$')
[[ -n "$aport" && "$aport" != 0 ]] || fail "no aggregator port in the log"
for k in 1 2 3; do agg_start $k; done
for _ in $(seq 100); do
  [[ $(grep -c '"event": "aggregator_live"' "$W/coord.log") -ge 3 ]] && break
  sleep 0.1
done
[[ $(grep -c '"event": "aggregator_live"' "$W/coord.log") -ge 3 ]] || { tail -5 "$W"/agg-*.log >&2; fail "the aggregators did not all call in"; }

step "hostile calls: aggregator methods without an aggregator's certificate, device calls without a ticket"
if $PY -c 'import grpc' 2>/dev/null && [[ -x /usr/bin/protoc && -x /usr/bin/grpc_python_plugin ]]; then
  (e2e_python_stubs) > /dev/null || fail "python stubs"
  $PY "$SRC/tests/e2e/aggregator_probe.py" "$W/gen" "$W/certs" "$port" "$aport" "${ap[0]}" \
    "$("$COORD" token --state-dir "$W/state" --id 999)" >&2 || fail "a hostile call got the wrong answer"
else
  echo "  (skipped: python3-grpcio and the protobuf compilers are not installed; scripts/install-deps installs them)" >&2
fi

step "$N devices, round 1 through three aggregators"
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users "$N" --quiet)
e2e_devices "$CAT" "${users[@]}"
pids=()
for i in $(seq 1 $N); do
  "$CLIENT" sync --store "$W/c$i.db" --max-syncs 1 --simulate-delay 300 > "$W/c$i.out" 2> "$W/c$i.err" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done
grep -q '"event": "round_done"' "$W/coord.log" || fail "round 1 did not finish: $(cat "$W"/c1.out "$W"/c1.err)"
for k in 1 2 3; do
  grep -q '"event": "sum_sent", "round": 1, "inputs": 12' "$W/agg-$k.log" || fail "agg-$k sent no sum of 12 inputs: $(tail -3 "$W/agg-$k.log")"
done
grep '"event": "round_done"' "$W/coord.log" | head -1 | grep -q '"survivors": 36' || fail "round 1: not 36 survivors"

step "round 2: agg-3 hangs once the round has started"
pids=()
for i in $(seq 1 $N); do
  "$CLIENT" sync --store "$W/c$i.db" --max-syncs 1 --simulate-delay 600 > "$W/c$i.out" 2> "$W/c$i.err" &
  pids+=($!)
done
for _ in $(seq 400); do
  grep -q '"event": "assignment", "round": 2' "$W/agg-3.log" && break
  sleep 0.05
done
kill -STOP "${apids[3]}"
grep -q '"event": "sum_sent", "round": 2' "$W/agg-3.log" && fail "agg-3 sent its round-2 sum before it could be stopped"
for p in "${pids[@]}"; do wait "$p" || true; done
kill -CONT "${apids[3]}"
[[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 2 ]] || fail "round 2 did not finish"
r2=$(grep '"event": "round_done"' "$W/coord.log" | sed -n 2p)
echo "  $r2" | cut -c1-250 >&2
grep -q '"survivors": 24' <<< "$r2" || fail "round 2: not 24 survivors (agg-3's twelve devices dropped)"

step "the ledger verifies"
"$AUDIT" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" > "$W/audit.txt" 2>&1 || fail "ledger does not verify"
e2e_on_exit
e2e_stop
echo "aggregators: PASS"
