#!/usr/bin/env bash
# Interop with another gRPC implementation: Python stubs generated from protos/ at test time
# (Debian's protoc + grpc_python_plugin), a Python client against fedrec-coordinator over TLS.
# Skips (exit 77) when python3-grpcio, python3-cryptography or the compilers are missing.
#   tests/e2e/interop.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" interop
e2e_python_stubs
e2e_serve --catalogue "synthetic:users=500,items=200,dim=8,seed=1" --budget 1000
tok=$("$COORD" token --state-dir "$W/state" --id 5)
$PY "$SRC/tests/e2e/interop_client.py" "$W/gen" "127.0.0.1:$port" "$W/certs/ca.pem" "$tok" "$(cat "$W/state/identity.pub")" ||
  fail "the Python client"
e2e_stop
