#!/usr/bin/env bash
# Interop with another gRPC implementation: Python stubs generated from protos/ at test time
# (Debian's protoc + grpc_python_plugin), a Python client against fedrec-coordinator over TLS.
# Skips (exit 77) when python3-grpcio, python3-cryptography or the compilers are missing.
#   tests/e2e/interop.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
if ! [[ -x /usr/bin/protoc && -x /usr/bin/grpc_python_plugin ]] || ! $PY -c 'import grpc, google.protobuf, cryptography' 2>/dev/null; then
  echo "interop: SKIPPED (needs python3-grpcio python3-protobuf python3-cryptography protobuf-compiler protobuf-compiler-grpc; scripts/install-deps installs them)"
  exit 77
fi
W=$(mktemp -d /tmp/fedrec-interop.XXXXXX)
COORD=$B/coordinator/fedrec-coordinator
cpid=""
trap 'rc=$?; [[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null; [[ $rc -ne 0 ]] && cat "$W/coord.log" >&2; rm -rf "$W"' EXIT
mkdir -p "$W/gen"
/usr/bin/protoc -I"$SRC/protos" --python_out="$W/gen" --grpc_python_out="$W/gen" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  "$SRC/protos/fedrec/v1/coordinator.proto" "$SRC/protos/grpc/health/v1/health.proto"
# the package name grpc.health would shadow the grpc module: move it aside
mkdir -p "$W/gen/grpc_health" && mv "$W/gen/grpc/health/v1" "$W/gen/grpc_health/v1" && rm -rf "$W/gen/grpc"
sed -i 's/from grpc.health.v1 import/from grpc_health.v1 import/' "$W/gen/grpc_health/v1/health_pb2_grpc.py"
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null
"$COORD" init --state-dir "$W/state" >/dev/null 2>&1
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --metrics-listen "" \
  --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" \
  --catalogue "synthetic:users=500,items=200,dim=8,seed=1" --budget 1000 2> "$W/coord.log" &
cpid=$!
for _ in $(seq 100); do grep -q '"event": "serving"' "$W/coord.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o '"port": [0-9]*' "$W/coord.log" | head -1 | grep -o '[0-9]*$')
tok=$("$COORD" token --state-dir "$W/state" --id 5)
$PY "$SRC/tests/e2e/interop_client.py" "$W/gen" "127.0.0.1:$port" "$W/certs/ca.pem" "$tok" "$(cat "$W/state/identity.pub")"
kill -TERM "$cpid"
wait "$cpid" || true
cpid=""
