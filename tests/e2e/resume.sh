#!/usr/bin/env bash
# An interrupted model download resumes: fedrec-client sync is killed (SIGKILL) while it
# downloads a model in 1 KiB chunks; the next sync continues from the stored bytes, and the
# model it ends with verifies (hash and signature) and serves recommendations.
#   tests/e2e/resume.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" resume
CAT="synthetic:users=300,items=20000,dim=16,seed=1"
e2e_serve --catalogue "$CAT" --chunk-kb 1
# no history: the device only fetches the model, so each sync ends after the download
e2e_client 9 --catalogue "$CAT"
resumed=0
for delay in 0.1 0.2 0.3 0.5 0.8 1.2 2; do
  "$CLIENT" sync --store "$W/c9.db" --max-syncs 1 > "$W/out" 2> "$W/err" &
  p=$!
  sleep "$delay"
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  grep -q "resumed the model download at byte" "$W/err" && resumed=1
  grep -q "model 1" "$W/err" && break
done
out=$("$CLIENT" sync --store "$W/c9.db" --max-syncs 1 2>&1)
grep -q "resumed the model download at byte" <<< "$out" && resumed=1
grep -q "model 1" <<< "$out" || fail "no verified model after resuming: $out"
[[ $resumed -eq 1 ]] || fail "no download was interrupted and resumed (the model downloaded too fast?)"
"$CLIENT" record --store "$W/c9.db" i5 >/dev/null 2>&1 || fail "record"
"$CLIENT" recommend --store "$W/c9.db" --k 3 > /dev/null || fail "recommend after a resumed download"
e2e_stop
echo "resume: PASS ($( (cat "$W/err"; echo "$out") | grep -o 'resumed the model download at byte [0-9]*' | head -1))"
