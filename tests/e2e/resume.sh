#!/usr/bin/env bash
# An interrupted model download resumes: fedrec-client sync is killed (SIGKILL) while it
# downloads a model in 1 KiB chunks; the next sync continues from the stored bytes, and the
# model it ends with verifies (hash and signature) and serves recommendations.
#   tests/e2e/resume.sh BUILD_DIR
set -uo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d /tmp/fedrec-resume.XXXXXX)
COORD=$B/coordinator/fedrec-coordinator
C=$B/client/fedrec-client
cpid=""
trap '[[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null; rm -rf "$W"' EXIT
fail() { echo "FAIL: $*"; tail -5 "$W/coord.log"; exit 1; }
CAT="synthetic:users=300,items=20000,dim=16,seed=1"
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null
"$COORD" init --state-dir "$W/state" >/dev/null 2>&1
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --metrics-listen "" --catalogue "$CAT" --chunk-kb 1 \
  --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" 2> "$W/coord.log" &
cpid=$!
for _ in $(seq 100); do grep -q '"event": "serving"' "$W/coord.log" 2>/dev/null && break; sleep 0.1; done
port=$(grep -o '"port": [0-9]*' "$W/coord.log" | head -1 | grep -o '[0-9]*$')
tok=$("$COORD" token --state-dir "$W/state" --id 9)
"$C" init --store "$W/c.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token "$tok" \
  --coordinator-key "@$W/state/identity.pub" --catalogue "$CAT" 2>/dev/null
# no history: the device only fetches the model, so each sync ends after the download
resumed=0
for delay in 0.1 0.2 0.3 0.5 0.8 1.2 2; do
  "$C" sync --store "$W/c.db" --max-syncs 1 > "$W/out" 2> "$W/err" &
  p=$!
  sleep "$delay"
  kill -9 "$p" 2>/dev/null && killed=1 || killed=0
  wait "$p" 2>/dev/null
  grep -q "resumed the model download at byte" "$W/err" && resumed=1
  grep -q "model 1" "$W/err" && break
done
out=$("$C" sync --store "$W/c.db" --max-syncs 1 2>&1)
grep -q "resumed the model download at byte" <<< "$out" && resumed=1
grep -q "model 1" <<< "$out" || fail "no verified model after resuming: $out"
[[ $resumed -eq 1 ]] || fail "no download was interrupted and resumed (the model downloaded too fast?)"
"$C" record --store "$W/c.db" i5 >/dev/null 2>&1 || fail "record"
"$C" recommend --store "$W/c.db" --k 3 > /dev/null || fail "recommend after a resumed download"
echo "resume: PASS ($( (cat "$W/err"; echo "$out") | grep -o 'resumed the model download at byte [0-9]*' | head -1))"
