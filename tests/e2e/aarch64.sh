#!/usr/bin/env bash
# The device side on 64-bit ARM: cross-built with Debian's aarch64 GCC and arm64 packages
# (scripts/cross-aarch64), its unit tests run under qemu-aarch64, then a real federated run
# against this (x86-64) build's coordinator: 4 aarch64 devices (fedrec-client under qemu-user)
# and 4 x86-64 ones train 2 rounds with distributed DP and secure aggregation; every device
# takes part in both; an aarch64 device recommends, and the x86-64 fedrec-client reading the
# same store (SQLite and the model blob are portable) ranks the same items. Prints the sizes
# of the aarch64 binaries. Skips (77) with a message where the cross tools are absent.
#   tests/e2e/aarch64.sh BUILD_DIR
SKIP=77
for need in aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v "$need" >/dev/null || { echo "SKIP: $need is not installed (scripts/install-deps --cross)"; exit $SKIP; }
done
[[ -e /usr/lib/aarch64-linux-gnu/libgrpc.so ]] || { echo "SKIP: the arm64 libgrpc-dev is not installed (scripts/install-deps --cross)"; exit $SKIP; }
source "$(dirname "$0")/lib.sh" "$1" aarch64
step() { echo "[aarch64] $*" >&2; }
X=$B/aarch64
step "cross-building the device side into $X and running its unit tests under qemu-aarch64"
"$SRC/scripts/cross-aarch64" "$X" >&2 || fail "the aarch64 build failed"
[[ -n "${AARCH64_SYNC_ONLY:-}" ]] || ctest --test-dir "$X" -j2 -E "${AARCH64_SKIP_TESTS:-^$}" --output-on-failure > "$W/ctest.out" 2>&1 || { cat "$W/ctest.out" >&2; fail "a unit test failed under qemu-aarch64"; }
[[ -n "${AARCH64_SYNC_ONLY:-}" ]] || grep -E "tests passed|Total Test time" "$W/ctest.out" >&2
file -b "$X/client/fedrec-client" | grep -q "ARM aarch64" || fail "fedrec-client is not an aarch64 binary"
ACLIENT=(qemu-aarch64 "$X/client/fedrec-client")

CAT="synthetic:users=2000,items=300,dim=16,seed=42"
step "an x86-64 coordinator, cohorts of 8, 2 rounds"
e2e_serve --catalogue "$CAT" --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --rounds 2 --phase-ms 30000 --retry-ms 300 \
  --noise-multiplier 0.5 --clip 2 --server-lr 0.5 --budget 1000
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users 8 --quiet)
for i in 1 2 3 4 5 6 7 8; do
  run=("$CLIENT")
  ((i <= 4)) && run=("${ACLIENT[@]}")
  "$COORD" token --state-dir "$W/state" --id "$i" |
    "${run[@]}" init --store "$W/c$i.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token - \
      --coordinator-key "@$W/state/identity.pub" --catalogue "$CAT" 2>/dev/null || fail "init on device $i"
  "${run[@]}" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null || fail "import on device $i"
done
pids=()
for i in 1 2 3 4 5 6 7 8; do
  run=("$CLIENT")
  ((i <= 4)) && run=("${ACLIENT[@]}")
  "${run[@]}" sync --store "$W/c$i.db" --rounds 100 > "$W/c$i.out" 2> "$W/c$i.err" &
  pids+=($!)
done
for _ in $(seq 1200); do
  [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 2 ]] && break
  kill -0 "$cpid" 2>/dev/null || fail "coordinator exited"
  sleep 0.25
done
for p in "${pids[@]}"; do wait "$p" || true; done
grep '"event": "round_done"' "$W/coord.log" | grep -o '"round": [0-9]*, "cohort": [0-9]*, "survivors": [0-9]*' | sed 's/^/  /' >&2
[[ $(grep -c '"event": "round_done".*"survivors": 8' "$W/coord.log") -eq 2 ]] || fail "not every device survived both rounds"
for i in 1 2 3 4; do
  grep -q "participated in 2 round" "$W/c$i.out" "$W/c$i.err" || fail "aarch64 device $i: $(tail -3 "$W/c$i.err")"
done

step "an aarch64 device recommends; the x86-64 client on the same store ranks the same items"
a=$("${ACLIENT[@]}" recommend --store "$W/c1.db" --k 10 | cut -f2) || fail "recommend under qemu-aarch64"
h=$("$CLIENT" recommend --store "$W/c1.db" --k 10 | cut -f2) || fail "recommend (x86-64) on the aarch64 device's store"
[[ $(wc -l <<< "$a") -eq 10 ]] || fail "aarch64 recommend gave: $a"
[[ "$a" == "$h" ]] || fail "the two architectures rank differently: $(paste <(echo "$a") <(echo "$h") | tr '\n' ';')"

step "sizes of the aarch64 device side (stripped)"
for f in client/fedrec-client client/libfedrec_client.a client/libfedrec_participant.a protos/libfedrec_proto.a \
  core/libfedrec_core.a crypto/libfedrec_crypto.a; do
  aarch64-linux-gnu-strip -o "$W/stripped" "$X/$f" 2>/dev/null || cp "$X/$f" "$W/stripped"
  printf '  %-32s %8d bytes\n' "$f" "$(stat -c %s "$W/stripped")" >&2
done
"${ACLIENT[@]}" --help > /dev/null || fail "fedrec-client --help under qemu"
e2e_stop
echo "aarch64: PASS"
