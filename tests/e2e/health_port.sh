#!/usr/bin/env bash
# health-listen: a plaintext port for probes that cannot speak TLS (Kubernetes' grpc probes).
# A plaintext client there gets SERVING from grpc.health.v1 Check and PERMISSION_DENIED for
# every other method (with a valid token: nothing else is served in the clear); the TLS port
# still serves everything, and refuses plaintext.
#   tests/e2e/health_port.sh BUILD_DIR   (skips without python3-grpcio)
source "$(dirname "$0")/lib.sh" "$1" health_port
$PY -c 'import grpc' 2>/dev/null || { echo "SKIPPED (needs python3-grpcio; scripts/install-deps installs it)"; exit 77; }
e2e_serve --catalogue "synthetic:users=500,items=200,dim=8,seed=1" --health-listen 127.0.0.1:0
hport=$(grep -o '"health_port": [0-9]*' "$W/coord.log" | tail -1 | grep -o '[0-9]*$')
[[ -n "$hport" && "$hport" != 0 ]] || fail "no health_port in the serving log"
tok=$("$COORD" token --state-dir "$W/state" --id 5)
$PY - "127.0.0.1:$hport" "127.0.0.1:$port" "$W/certs/ca.pem" "$tok" <<'PY' || fail "the health port"
import sys, grpc
plain, tls, ca, tok = sys.argv[1:]
fails = 0
def call(ch, method, body=b"", md=None):
    f = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
    try:
        return grpc.StatusCode.OK, f(body, timeout=10, metadata=md)
    except grpc.RpcError as e:
        return e.code(), e.details()
def want(what, got, code, body=None):
    global fails
    ok = got[0] == code and (body is None or got[1] == body)
    print(f"{'ok' if ok else 'FAIL'} {what}: {got[0]} {got[1]!r}")
    fails += not ok
ch = grpc.insecure_channel(plain)
# HealthCheckResponse{status: SERVING} is field 1 = 1: bytes 08 01
want("plaintext health check", call(ch, "/grpc.health.v1.Health/Check"), grpc.StatusCode.OK, b"\x08\x01")
want("plaintext health check of the service",
     call(ch, "/grpc.health.v1.Health/Check", b"\x0a\x1c" + b"fedrec.v1.CoordinatorService"), grpc.StatusCode.OK, b"\x08\x01")
md = [("authorization", "Bearer " + tok)]
for m in ("GetModel", "GetCatalogue", "CheckIn"):
    want(f"plaintext {m} with a valid token", call(ch, f"/fedrec.v1.CoordinatorService/{m}", b"", md), grpc.StatusCode.PERMISSION_DENIED)
want("plaintext unknown method", call(ch, "/x.Y/Z"), grpc.StatusCode.UNIMPLEMENTED)
creds = grpc.ssl_channel_credentials(open(ca, "rb").read())
tch = grpc.secure_channel(tls, creds)
want("TLS health check", call(tch, "/grpc.health.v1.Health/Check"), grpc.StatusCode.OK, b"\x08\x01")
# over TLS the same call passes the transport check and the token (an empty request is then
# answered on its merits: FAILED_PRECONDITION, not PERMISSION_DENIED or UNAUTHENTICATED)
got = call(tch, "/fedrec.v1.CoordinatorService/GetCatalogue", b"", md)
want("TLS GetCatalogue with a valid token", got, got[0] if got[0] not in (grpc.StatusCode.PERMISSION_DENIED,
     grpc.StatusCode.UNAUTHENTICATED) else None)
want("plaintext to the TLS port", call(grpc.insecure_channel(tls), "/grpc.health.v1.Health/Check"), grpc.StatusCode.UNAVAILABLE)
sys.exit(1 if fails else 0)
PY
curl -sf "http://127.0.0.1:$mport/metrics" | grep -q 'fedrec_rpc_errors_total{code="7"} 3' || fail "the refused plaintext calls are not counted"
e2e_stop
echo "health port: PASS"
