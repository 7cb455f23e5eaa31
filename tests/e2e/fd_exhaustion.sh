#!/usr/bin/env bash
# File-descriptor exhaustion is never permanent. The coordinator runs with a 64-descriptor
# limit (prlimit); 150 idle TCP connections (no token, no TLS) exhaust it, then go away. After
# that the coordinator must either serve health checks again or have exited non-zero with
# "listener_stuck" (its watchdog: gRPC 1.51 can stop accepting for good after EMFILE), so
# that its supervisor restarts it. Alive but deaf is the failure (61d538e).
#   tests/e2e/fd_exhaustion.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" fds
e2e_python_stubs
command -v prlimit > /dev/null || { echo "SKIPPED (needs prlimit from util-linux)"; exit 77; }
e2e_serve --catalogue "synthetic:users=200,items=50,dim=4,seed=1" --budget 1000 --handshake-ms 3000
prlimit --pid "$cpid" --nofile=64:64 || fail "prlimit"
health() { # exit 0 when a health check over TLS succeeds within 3 s
  $PY - "$W/gen" "127.0.0.1:$port" "$W/certs/ca.pem" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
ch = grpc.secure_channel(sys.argv[2], grpc.ssl_channel_credentials(open(sys.argv[3], "rb").read()))
try:
    r = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
    sys.exit(0 if r.status == health_pb2.HealthCheckResponse.SERVING else 1)
except grpc.RpcError:
    sys.exit(1)
PY
}
health || fail "not serving before the flood"
$PY - "$port" <<'PY'
import socket, sys, time
socks = []
for _ in range(150):
    try:
        socks.append(socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2))
    except OSError:
        pass
time.sleep(2)  # the coordinator runs out of descriptors while these sit idle
for s in socks:
    s.close()
print("opened and closed %d idle connections" % len(socks))
PY
outcome=""
for _ in $(seq 20); do
  if ! kill -0 "$cpid" 2>/dev/null; then
    rc=0; wait "$cpid" || rc=$?
    cpid=""
    grep -q '"event": "listener_stuck"' "$W/coord.log" && [[ $rc -eq 3 ]] || fail "the coordinator exited ($rc) without saying why"
    outcome="exited with status 3 (listener_stuck): a supervisor restarts it"
    break
  fi
  if health; then outcome="serves again"; break; fi
  sleep 1
done
[[ -n "$outcome" ]] || fail "alive but not serving 30 s after the flood (the listener stopped accepting)"
[[ -n "$cpid" ]] && e2e_stop
echo "fd exhaustion: PASS ($outcome)"
