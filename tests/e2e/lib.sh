# Shared set-up for the end-to-end tests (sourced): a temporary folder, development
# certificates, coordinator keys, starting fedrec-coordinator and finding its ports, cleanup.
#   source lib.sh BUILD_DIR NAME
# Sets B (build), SRC (sources), W (temporary folder), COORD, CLIENT, AUDIT.
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
W=$(mktemp -d "/tmp/fedrec-$2.XXXXXX")
COORD=$B/coordinator/fedrec-coordinator
CLIENT=$B/client/fedrec-client
AUDIT=$B/sim/fedrec-audit
cpid=""
e2e_cleanup() {
  local rc=$?
  set +e # clean up whatever fails on the way
  declare -F e2e_on_exit >/dev/null && e2e_on_exit # a test's own processes
  [[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null
  pkill -9 -f "sync --store $W/" 2>/dev/null # fedrec-client, and tests/hostile_client
  if [[ $rc -ne 0 && -f "$W/coord.log" ]]; then
    echo "--- coordinator log (last 30 lines)" >&2
    tail -30 "$W/coord.log" >&2
  fi
  [[ -n "${KEEP:-}" ]] || rm -rf "$W"
  return $rc
}
trap e2e_cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null
"$COORD" init --state-dir "$W/state" >/dev/null 2>&1

# e2e_serve [flags...]: starts the coordinator (TLS, state in $W/state, log appended to
# $W/coord.log) on 127.0.0.1:${PORT:-0} with metrics on ${MPORT:-0}; waits until it serves and
# sets cpid, port and mport. E2E_COORD: another build of it (tests/malicious_coordinator).
e2e_serve() {
  local before
  before=$(grep -c '"event": "serving"' "$W/coord.log" 2>/dev/null || true)
  "${E2E_COORD:-$COORD}" serve --state-dir "$W/state" --listen "127.0.0.1:${PORT:-0}" --metrics-listen "127.0.0.1:${MPORT:-0}" \
    --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" "$@" 2>> "$W/coord.log" &
  cpid=$!
  for _ in $(seq 200); do
    [[ $(grep -c '"event": "serving"' "$W/coord.log" 2>/dev/null || true) -gt ${before:-0} ]] && break
    kill -0 "$cpid" 2>/dev/null || fail "the coordinator did not start"
    sleep 0.05
  done
  port=$(grep -o '"port": [0-9]*' "$W/coord.log" | tail -1 | grep -o '[0-9]*$') || fail "no port in the log"
  mport=$(grep -o '"metrics_port": [0-9]*' "$W/coord.log" | tail -1 | grep -o '[0-9]*$')
}

# e2e_stop: SIGTERM, and the coordinator must exit cleanly.
e2e_stop() {
  kill -TERM "$cpid"
  wait "$cpid" || fail "the coordinator exited with an error after SIGTERM"
  cpid=""
}

# e2e_run_devices N ROUNDS: devices 1..N ($W/cI.db) sync until the coordinator's log has ROUNDS
# round_done events (then they end as training stops, or after 100 rounds).
e2e_run_devices() {
  local pids=() i
  for i in $(seq 1 "$1"); do
    "$CLIENT" sync --store "$W/c$i.db" --rounds 100 > "$W/c$i.out" 2> "$W/c$i.err" &
    pids+=($!)
  done
  for _ in $(seq 600); do
    [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge $2 ]] && break
    kill -0 "$cpid" 2>/dev/null || fail "coordinator exited"
    sleep 0.25
  done
  [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge $2 ]] ||
    fail "round $2 did not finish; device 1 said: $(tail -3 "$W/c1.err"; grep -v '"event": "rpc' "$W/coord.log" | tail -5)"
  for p in "${pids[@]}"; do wait "$p" || true; done
}

# e2e_devices CAT USER...: stores $W/c1.db .. $W/cN.db (tokens 1..N, catalogue CAT), store k
# holding synthetic user USER_k; tokens are issued one by one, the stores filled two at a time
# (each is its own file: the sanitizer build spends over a second on each).
e2e_devices() {
  local cat=$1 i n pair=()
  shift
  n=$#
  local users=("$@")
  for i in $(seq 1 "$n"); do "$COORD" token --state-dir "$W/state" --id "$i" > "$W/token$i"; done
  for i in $(seq 1 "$n"); do
    { "$CLIENT" init --store "$W/c$i.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token "@$W/token$i" \
        --coordinator-key "@$W/state/identity.pub" --catalogue "$cat" 2>/dev/null &&
        "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null; } ||
      touch "$W/setup-failed-$i" &
    pair+=($!) # (a bare wait would wait for the coordinator too)
    if ((${#pair[@]} == 2 || i == n)); then
      wait "${pair[@]}"
      pair=()
    fi
  done
  ! ls "$W"/setup-failed-* > /dev/null 2>&1 || fail "device stores could not be set up: $(ls "$W"/setup-failed-* | tr '\n' ' ')"
}

# e2e_client N [init flags...]: a client store $W/cN.db with token N.
e2e_client() {
  local i=$1
  shift
  "$COORD" token --state-dir "$W/state" --id "$i" |
    "$CLIENT" init --store "$W/c$i.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token - \
      --coordinator-key "@$W/state/identity.pub" "$@" 2>/dev/null
}

# e2e_enrol N: client N's identity certified by the enrolment authority $W/authority.key
# (made at the first call; its public key in $W/authority.key.pub).
e2e_enrol() {
  [[ -f "$W/authority.key" ]] || "$COORD" authority-init --out "$W/authority.key" >/dev/null 2>&1
  local pk
  pk=$("$CLIENT" identity --store "$W/c$1.db") || fail "client $1 has no identity"
  "$COORD" enrol --authority-key "$W/authority.key" --id "$1" --device-key "$pk" |
    "$CLIENT" enrol --store "$W/c$1.db" --certificate @/dev/stdin 2>/dev/null || fail "client $1: enrol"
}

# e2e_render PAGE: opens PAGE (an HTML file) in headless Chromium inside a frame and prints
# what rendered: verdict=<the #verdict text>|img=<the #figure image's decoded size>|shown=<its
# laid-out size>|releases=<#releases rows>|assumptions=<#assumptions items>. Prints "no
# chromium" when it is not installed (scripts/install-deps installs it).
e2e_render() {
  local chrome
  chrome=$(command -v chromium || command -v chromium-browser || true)
  [[ -n "$chrome" ]] || { echo "no chromium"; return 0; }
  cat > "$W/render.html" <<HTML
<!doctype html><html><body><iframe id="f" src="file://$1" width="1000" height="1400"></iframe><pre id="out">pending</pre>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, img = d.getElementById('figure'), v = d.getElementById('verdict');
  var r = img ? img.getBoundingClientRect() : {width: 0, height: 0};
  document.getElementById('out').textContent = 'verdict=' + (v ? v.textContent : 'none') +
    '|img=' + (img ? img.naturalWidth + 'x' + img.naturalHeight : 'none') + '|shown=' + Math.round(r.width) + 'x' +
    Math.round(r.height) + '|releases=' + d.querySelectorAll('#releases tr').length +
    '|assumptions=' + d.querySelectorAll('#assumptions li').length;
});
</script></body></html>
HTML
  timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --allow-file-access-from-files --virtual-time-budget=5000 \
    --user-data-dir="$W/chromium" --dump-dom "file://$W/render.html" 2>/dev/null | grep -o 'id="out">[^<]*' | sed 's/id="out">//'
}

# e2e_python_stubs: Python gRPC stubs generated from protos/ into $W/gen (Debian's protoc and
# grpc_python_plugin); exits 77 (skipped) when python3-grpcio or the compilers are missing.
PY=/usr/bin/python3
e2e_python_stubs() {
  if ! [[ -x /usr/bin/protoc && -x /usr/bin/grpc_python_plugin ]] || ! $PY -c 'import grpc, google.protobuf, cryptography' 2>/dev/null; then
    echo "SKIPPED (needs python3-grpcio python3-protobuf python3-cryptography protobuf-compiler protobuf-compiler-grpc; scripts/install-deps installs them)"
    exit 77
  fi
  mkdir -p "$W/gen"
  /usr/bin/protoc -I"$SRC/protos" --python_out="$W/gen" --grpc_python_out="$W/gen" \
    --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
    "$SRC/protos/fedrec/v1/coordinator.proto" "$SRC/protos/fedrec/v1/catalogue.proto" "$SRC/protos/grpc/health/v1/health.proto"
  # the package name grpc.health would shadow the grpc module: move it aside
  mkdir -p "$W/gen/grpc_health" && mv "$W/gen/grpc/health/v1" "$W/gen/grpc_health/v1" && rm -rf "$W/gen/grpc"
  sed -i 's/from grpc.health.v1 import/from grpc_health.v1 import/' "$W/gen/grpc_health/v1/health_pb2_grpc.py"
}
