#!/usr/bin/env bash
# The coordinator's peak memory under request floods (issue 13, A5): JSON lines with the
# coordinator's peak resident set (VmHWM) after start, and after each flood of NCALLS calls,
# 16 at a time, from a Python gRPC client over TLS:
#   unauth_16mib   16 MiB CheckIn messages of 2-byte unknown fields, with no token
#   auth_16mib     the same with a valid token (more than any method takes)
#   auth_at_cap    a valid token, messages just under SubmitMaskedInput's cap, all unknown fields
# The coordinator runs with its defaults (receive cap derived from the model). At 61d538e one
# 16 MiB CheckIn of unknown fields cost +740 MiB.
#   bench/bench_flood.sh BUILD_DIR [NCALLS (64)]
set -euo pipefail
NCALLS=${2:-64}
source "$(dirname "$0")/../tests/e2e/lib.sh" "$1" flood
e2e_python_stubs > /dev/null
serve() { e2e_serve --catalogue "synthetic:users=2000,items=500,dim=16,seed=42" --budget 1000 ${FLOOD_FLAGS:-}; }
serve
tok=$("$COORD" token --state-dir "$W/state" --id 9)
cap=$(grep -o '"max_message_bytes": [0-9]*' "$W/coord.log" | grep -o '[0-9]*$')
hwm() { grep VmHWM "/proc/$cpid/status" | awk '{printf "%.1f", $2 / 1024}'; }
e2e_stop
flood() { # NAME TOKEN BYTES METHOD
  $PY - "$W/gen" "127.0.0.1:$port" "$W/certs/ca.pem" "$2" "$3" "$4" "$NCALLS" <<'PY'
import sys, threading
sys.path.insert(0, sys.argv[1])
import grpc
target, ca, token, size, method, ncalls = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], int(sys.argv[7])
ch = grpc.secure_channel(target, grpc.ssl_channel_credentials(open(ca, "rb").read()),
                         options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)])
call = ch.unary_unary(method, request_serializer=None, response_deserializer=None)
body = bytes([15 << 3, 0]) * (size // 2)  # field 15, varint 0: unknown to every request
md = (("authorization", "Bearer " + token),) if token != "-" else None
codes = {}
lock = threading.Lock()
def one(n):
    for _ in range(n):
        try:
            call(body, metadata=md, timeout=30)
            c = "OK"
        except grpc.RpcError as e:
            c = e.code().name
        with lock:
            codes[c] = codes.get(c, 0) + 1
threads = [threading.Thread(target=one, args=(ncalls // 16,)) for _ in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print(" ".join("%s=%d" % kv for kv in sorted(codes.items())))
PY
}
for c in "unauth_16mib - 16777216 /fedrec.v1.CoordinatorService/CheckIn" \
         "auth_16mib $tok 16777216 /fedrec.v1.CoordinatorService/CheckIn" \
         "auth_at_cap $tok $((cap - 1024)) /fedrec.v1.CoordinatorService/SubmitMaskedInput"; do
  read -r name token bytes method <<< "$c"
  serve # a fresh coordinator per case: its own peak
  base=$(hwm)
  codes=$(flood "$name" "$token" "$bytes" "$method")
  kill -0 "$cpid" || fail "the coordinator died during $name"
  echo "{\"bench\": \"flood\", \"case\": \"$name\", \"calls\": $NCALLS, \"concurrent\": 16, \"bytes_each\": $bytes, \"peak_rss_mib_before\": $base, \"peak_rss_mib\": $(hwm), \"max_message_bytes\": $cap, \"statuses\": \"$codes\"}"
  e2e_stop
done
