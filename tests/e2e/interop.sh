#!/usr/bin/env bash
# Interop with another gRPC implementation: Python stubs generated from protos/ at test time
# (Debian's protoc + grpc_python_plugin), a Python client against fedrec-coordinator over TLS.
# Skips (exit 77) when python3-grpcio, python3-cryptography or the compilers are missing.
#   tests/e2e/interop.sh BUILD_DIR
PY=/usr/bin/python3
if ! [[ -x /usr/bin/protoc && -x /usr/bin/grpc_python_plugin ]] || ! $PY -c 'import grpc, google.protobuf, cryptography' 2>/dev/null; then
  echo "interop: SKIPPED (needs python3-grpcio python3-protobuf python3-cryptography protobuf-compiler protobuf-compiler-grpc; scripts/install-deps installs them)"
  exit 77
fi
source "$(dirname "$0")/lib.sh" "$1" interop
mkdir -p "$W/gen"
/usr/bin/protoc -I"$SRC/protos" --python_out="$W/gen" --grpc_python_out="$W/gen" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin \
  "$SRC/protos/fedrec/v1/coordinator.proto" "$SRC/protos/grpc/health/v1/health.proto"
# the package name grpc.health would shadow the grpc module: move it aside
mkdir -p "$W/gen/grpc_health" && mv "$W/gen/grpc/health/v1" "$W/gen/grpc_health/v1" && rm -rf "$W/gen/grpc"
sed -i 's/from grpc.health.v1 import/from grpc_health.v1 import/' "$W/gen/grpc_health/v1/health_pb2_grpc.py"
e2e_serve --catalogue "synthetic:users=500,items=200,dim=8,seed=1" --budget 1000
tok=$("$COORD" token --state-dir "$W/state" --id 5)
$PY "$SRC/tests/e2e/interop_client.py" "$W/gen" "127.0.0.1:$port" "$W/certs/ca.pem" "$tok" "$(cat "$W/state/identity.pub")" ||
  fail "the Python client"
e2e_stop
