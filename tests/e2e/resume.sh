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
# chunks stored so far (the store is SQLite in WAL mode: readable while the client writes)
chunks() {
  $PY -c 'import sqlite3, sys
try: print(sqlite3.connect(sys.argv[1], timeout=1).execute("SELECT count(*) FROM download_chunk").fetchone()[0])
except Exception: print(0)' "$W/c9.db"
}
# kill -9 the sync once some chunks are stored (not at a fixed delay: on a loaded machine the
# catalogue alone can take seconds, and a kill before the first chunk tests nothing)
"$CLIENT" sync --store "$W/c9.db" --max-syncs 1 > "$W/out" 2> "$W/err" &
p=$!
for _ in $(seq 1500); do
  [[ $(chunks) -ge 3 ]] && break
  kill -0 "$p" 2>/dev/null || break
  sleep 0.02
done
kill -9 "$p" 2>/dev/null || true
wait "$p" 2>/dev/null || true
grep -q "model 1" "$W/err" && fail "the download finished before it could be interrupted (3 chunks of 1 KiB)"
[[ $(chunks) -ge 1 ]] || fail "no chunk was stored before the client was killed"
resumed=0
out=$("$CLIENT" sync --store "$W/c9.db" --max-syncs 1 2>&1)
grep -q "resumed the model download at byte" <<< "$out" && resumed=1
grep -q "model 1" <<< "$out" || fail "no verified model after resuming: $out"
[[ $resumed -eq 1 ]] || fail "no download was interrupted and resumed (the model downloaded too fast?)"
"$CLIENT" record --store "$W/c9.db" i5 >/dev/null 2>&1 || fail "record"
"$CLIENT" recommend --store "$W/c9.db" --k 3 > /dev/null || fail "recommend after a resumed download"
e2e_stop
echo "resume: PASS ($( (cat "$W/err"; echo "$out") | grep -o 'resumed the model download at byte [0-9]*' | head -1))"
