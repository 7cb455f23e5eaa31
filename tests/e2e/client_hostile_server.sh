#!/usr/bin/env bash
# The client is not steered by a hostile or broken coordinator (the client's side of the
# threat model, docs/SECURITY.md):
#  - rollback: a genuine, validly signed model older than the one cached is refused, and a
#    catalogue older than the device's;
#  - a catalogue whose bytes do not hash to the name the model gives is not used (nor stored),
#    and a catalogue size claim beyond the limit is refused before any download;
#  - a size claim the catalogue's shape cannot have (2^32 bytes) is refused before any
#    download, and a header that disagrees with the claimed size after the first chunk;
#  - an unsigned "training stopped" is news, not an order: the library syncs again later.
# The first with a real fedrec-coordinator, the others against tests/e2e/hostile_server.py
# (Python gRPC, TLS). Skips (77) without python3-grpcio.
#   tests/e2e/client_hostile_server.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" hostile-server
e2e_python_stubs
CAT="synthetic:users=100,items=50,dim=4,seed=1"

# rollback: the device has seen version 5 (set in its store); the coordinator serves 1
e2e_serve --catalogue "$CAT" --budget 1000
e2e_client 3 --catalogue "$CAT"
"$CLIENT" sync --store "$W/c3.db" --max-syncs 1 2> "$W/err1" || true
grep -q "model 1" "$W/err1" || fail "no model 1 at first: $(cat "$W/err1")"
$PY -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("UPDATE model SET version = 5"); c.commit()' "$W/c3.db"
"$CLIENT" sync --store "$W/c3.db" --max-syncs 1 2> "$W/err2" || true
grep -q "older than the cached 5: refused (rollback)" "$W/err2" || fail "rollback not refused: $(cat "$W/err2")"
# the catalogue too: the device holds version 5 (its stored copy rewritten so), the coordinator
# names 1 with a model the device has not got
$PY - "$W/gen" "$W/c3.db" <<'EOF'
import hashlib, sqlite3, sys
sys.path.insert(0, sys.argv[1])
from fedrec.v1 import catalogue_pb2
db = sqlite3.connect(sys.argv[2])
c = catalogue_pb2.Catalogue.FromString(db.execute("SELECT blob FROM catalogue").fetchone()[0])
c.version = 5
b = c.SerializeToString()  # with its own hash: a genuine catalogue 5, not a damaged store
db.execute("UPDATE catalogue SET version = 5, blob = ?, hash = ?", (b, hashlib.blake2b(b, digest_size=32).digest()))
db.execute("UPDATE model SET version = 0")
db.commit()
EOF
"$CLIENT" sync --store "$W/c3.db" --max-syncs 1 2> "$W/err3" || true
grep -q "catalogue 1, not newer than the device's 5: refused (rollback)" "$W/err3" || fail "catalogue rollback not refused: $(cat "$W/err3")"
e2e_stop

serve_hostile() {
  rm -f "$W/hport"
  $PY "$SRC/tests/e2e/hostile_server.py" "$W/gen" "$W/certs/server.pem" "$W/certs/server.key" "$W/hport" "$1" 2> "$W/hostile.log" &
  hpid=$!
  for _ in $(seq 100); do [[ -s "$W/hport" ]] && break; sleep 0.05; done
  hport=$(cat "$W/hport") || fail "the hostile server did not start: $(cat "$W/hostile.log")"
  rm -f "$W/h.db"
  "$COORD" token --state-dir "$W/state" --id 4 |
    "$CLIENT" init --store "$W/h.db" --target "127.0.0.1:$hport" --ca "$W/certs/ca.pem" --token - \
      --coordinator-key "@$W/state/identity.pub" --catalogue "$CAT" 2>/dev/null
  "$CLIENT" record --store "$W/h.db" i3 >/dev/null 2>&1
}
stop_hostile() { kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null || true; }

serve_hostile huge
out=$("$CLIENT" sync --store "$W/h.db" --max-syncs 1 2>&1) || true
stop_hostile
grep -q "claims a 4294967296-byte model" <<< "$out" || fail "a 2^32-byte size claim was not refused: $out"

serve_hostile header
out=$("$CLIENT" sync --store "$W/h.db" --max-syncs 1 2>&1) || true
stop_hostile
grep -q "header does not fit the catalogue" <<< "$out" || fail "a header for another catalogue was not refused: $out"

serve_hostile cathash
out=$("$CLIENT" sync --store "$W/h.db" --max-syncs 1 2>&1) || true
stop_hostile
grep -q "catalogue 1 fails its hash check: not used" <<< "$out" || fail "a catalogue that fails its hash was not refused: $out"
$PY -c 'import sqlite3, sys; sys.exit(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM catalogue").fetchone()[0] != 0)' "$W/h.db" ||
  fail "a catalogue that failed its hash was stored"

serve_hostile cathuge
out=$("$CLIENT" sync --store "$W/h.db" --max-syncs 1 2>&1) || true
stop_hostile
grep -q "claims a 1099511627776-byte catalogue" <<< "$out" || fail "a 2^40-byte catalogue claim was not refused: $out"

serve_hostile stop
out=$("$CLIENT" sync --store "$W/h.db" --max-syncs 1 2>&1) || true
stop_hostile
grep -q "stopped" <<< "$out" || fail "no stop reported: $out"
wait_s=$(grep -o 'would sync again in [0-9]*' <<< "$out" | grep -o '[0-9]*$')
[[ -n "$wait_s" && $wait_s -ge 1800 ]] || fail "an unsigned stop did not leave a retry: $out"
echo "client against a hostile server: PASS (rollback of the model and the catalogue, size claims, header, catalogue hash, unsigned stop; retry after ${wait_s} s)"
