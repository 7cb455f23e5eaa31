#!/usr/bin/env bash
# The bindings for app languages, each as one real device of a federated job: an x86-64
# coordinator, 6 fedrec-client devices, one device driven through the JNI binding
# (org.fedrec.Client, tests/bindings/ClientTest.java, Debian's OpenJDK) and one through the
# Python binding (client/python/fedrec_client.py, tests/bindings/test_python.py: its ctypes
# layouts are checked against the compiler's first). Each opens its store, records a history,
# syncs until training stops (taking part in a round), recommends, explains, sets a region,
# and sees the errors a caller should; then fedrec-client reading the same store must give the
# same top 5 (the binding adds nothing to the C API). Skips (77) without a JDK or python3.
#   tests/e2e/bindings.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" bindings
step() { echo "[bindings] $*" >&2; }
JAR=$B/client/fedrec.jar
JNI=$B/client/libfedrec_jni.so
if [[ ! -f "$JAR" || ! -f "$JNI" ]] || ! command -v javac >/dev/null; then echo "SKIP: no JDK (the Java binding was not built)"; exit 77; fi
CAT="synthetic:users=2000,items=300,dim=16,seed=42"
HIST_J="i3,i17,i40,i41,i99,i120,i121,i250"
HIST_P="i5,i6,i7,i30,i31,i32,i200,i201"

step "compiling the Java test and the layout probe"
javac -cp "$JAR" -d "$W/classes" "$SRC/tests/bindings/ClientTest.java" || fail "javac"
cc -I"$SRC/include" -o "$W/abi" "$SRC/tests/bindings/abi.c" || fail "cc abi.c"

step "coordinator: cohorts of 8, 2 rounds"
e2e_serve --catalogue "$CAT" --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --rounds 2 \
  --phase-ms 30000 --retry-ms 300 --noise-multiplier 0.5 --clip 2 --server-lr 0.5 --budget 1000
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users 6 --quiet)
pids=()
for i in 1 2 3 4 5 6; do
  e2e_client "$i" --catalogue "$CAT"
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null || fail "import on device $i"
  "$CLIENT" sync --store "$W/c$i.db" --rounds 100 > "$W/c$i.out" 2> "$W/c$i.err" &
  pids+=($!)
done
"$COORD" token --state-dir "$W/state" --id 7 > "$W/token7"
"$COORD" token --state-dir "$W/state" --id 8 > "$W/token8"
chmod 600 "$W/token7" "$W/token8"
java -Dfedrec.jni="$JNI" -cp "$JAR:$W/classes" ClientTest "$W/java.db" "127.0.0.1:$port" "$W/certs/ca.pem" "$W/token7" \
  "$W/state/identity.pub" "$CAT" "$HIST_J" > "$W/java.out" 2> "$W/java.err" &
jpid=$!
PYTHONPATH="$SRC/client/python" FEDREC_CLIENT_LIB="$B/client/libfedrec-client.so" /usr/bin/python3 "$SRC/tests/bindings/test_python.py" \
  "$W/abi" "$W/py.db" "127.0.0.1:$port" "$W/certs/ca.pem" "$W/token8" "$W/state/identity.pub" "$CAT" "$HIST_P" \
  > "$W/py.out" 2> "$W/py.err" &
ppid=$!
wait "$jpid" || fail "the Java device: $(tail -5 "$W/java.err") $(tail -3 "$W/java.out")"
wait "$ppid" || fail "the Python device: $(tail -5 "$W/py.err") $(tail -3 "$W/py.out")"
for p in "${pids[@]}"; do wait "$p" || true; done
grep '"event": "round_done"' "$W/coord.log" | grep -o '"round": [0-9]*, "cohort": [0-9]*, "survivors": [0-9]*' | sed 's/^/  /' >&2
[[ $(grep -c '"event": "round_done"' "$W/coord.log") -eq 2 ]] || fail "2 rounds did not finish"
grep -h "PARTICIPATED\|PASS" "$W/java.out" "$W/py.out" | sed 's/^/  /' >&2

step "the bindings' recommendations are fedrec-client's on the same stores"
for s in java py; do
  want=$("$CLIENT" recommend --store "$W/$s.db" --k 5 | cut -f2)
  got=$(grep '^REC ' "$W/$s.out" | cut -d' ' -f2)
  [[ "$want" == "$got" ]] || fail "$s: the binding recommended $(echo $got) but fedrec-client $(echo $want)"
done
e2e_stop
echo "bindings: PASS"
