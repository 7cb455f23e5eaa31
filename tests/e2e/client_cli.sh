#!/usr/bin/env bash
# fedrec-client without a coordinator: init, import a CSV history, record, errors for unknown
# items and bad weights, recommend before any model, sync against an address with nothing
# behind it (an I/O error with backoff, nothing lost); --help, suggestions, exit code 3 for a
# missing or unconfigured store, one history per device from a CSV.
#   tests/e2e/client_cli.sh BUILD_DIR
set -uo pipefail
B=$(cd "$1" && pwd)
W=$(mktemp -d /tmp/fedrec-client-cli.XXXXXX)
trap 'rm -rf "$W"' EXIT
C=$B/client/fedrec-client
fail() { echo "FAIL: $*"; exit 1; }
CAT="synthetic:users=100,items=50,dim=4,seed=1"
# a token on the command line is refused (every user of the machine can read it)
out=$($C init --store "$W/s.db" --target 127.0.0.1:1 --insecure --token 1.2.00000000000000000000000000000000 \
  --coordinator-key 0000000000000000000000000000000000000000000000000000000000000000 --catalogue "$CAT" 2>&1) &&
  fail "a literal token was accepted"
grep -q "not the token itself" <<< "$out" || fail "no reason for refusing a literal token: $out"
echo 1.2.00000000000000000000000000000000 > "$W/token"
$C init --store "$W/s.db" --target 127.0.0.1:1 --insecure --token "@$W/token" \
  --coordinator-key 0000000000000000000000000000000000000000000000000000000000000000 --catalogue "$CAT" || fail init
[ "$(stat -c %a "$W/s.db")" = 600 ] || fail "the client store (token, history) is not 0600"
umask 022
$C init --store "$W/s2.db" --target 127.0.0.1:1 --insecure --token "@$W/token" \
  --coordinator-key 0000000000000000000000000000000000000000000000000000000000000000 --catalogue "$CAT" || fail init2
[ "$(stat -c %a "$W/s2.db")" = 600 ] || fail "a new client store is not 0600 under umask 022"
for f in "$W"/s2.db-*; do [ -e "$f" ] && { [ "$(stat -c %a "$f")" = 600 ] || fail "$f is not 0600"; }; done
# the weights setting is checked when the store opens, and saved
out=$($C init --store "$W/w.db" --target 127.0.0.1:1 --insecure --token "@$W/token" --weights log:0 \
  --coordinator-key 0000000000000000000000000000000000000000000000000000000000000000 2>&1); rc=$?
[[ $rc -eq 3 ]] || fail "--weights log:0 exited $rc: $out"
grep -q "weights: .*log:0" <<< "$out" || fail "--weights log:0 said: $out"
$C init --store "$W/w.db" --target 127.0.0.1:1 --insecure --token "@$W/token" --weights binary \
  --coordinator-key 0000000000000000000000000000000000000000000000000000000000000000 2>/dev/null || fail "init --weights binary"
/usr/bin/python3 -c 'import sqlite3, sys; v = sqlite3.connect(sys.argv[1]).execute("SELECT v FROM settings WHERE k = ?", ("weights",)).fetchone(); sys.exit(v != ("binary",))' "$W/w.db" ||
  fail "the weights setting was not saved"
# without a catalogue (none given, none served yet) any id is kept; ids are still checked
$C record --store "$W/w.db" some-future-release 2 || fail "record before any catalogue"
out=$($C record --store "$W/w.db" "$(printf 'x%.0s' $(seq 300))" 2>&1) && fail "a 300-byte id was recorded"
grep -q "an item id has 1 to 256 bytes" <<< "$out" || fail "record of a long id said: $out"
printf 'user,item,weight\nme,i3,2\nme,i7,1\nme,i3,1\n' > "$W/h.csv"
out=$($C import --store "$W/s.db" --csv "$W/h.csv" 2>&1) || fail "import: $out"
grep -q "imported 3 events" <<< "$out" || fail "import said: $out"
$C record --store "$W/s.db" i9 0.5 || fail record
out=$($C record --store "$W/s.db" nosuchitem 2>&1) && fail "unknown item accepted"
grep -q "'nosuchitem' is not an item of the catalogue" <<< "$out" || fail "record said: $out"
out=$($C record --store "$W/s.db" i9 -3 2>&1) && fail "negative weight accepted"
grep -q "weight -3 must be in (0, 1e6)" <<< "$out" || fail "record said: $out"
printf 'user,item,weight\nme,i3,x\n' > "$W/bad.csv"
out=$($C import --store "$W/s.db" --csv "$W/bad.csv" 2>&1) && fail "bad CSV accepted"
grep -q "bad.csv:2" <<< "$out" || fail "import of a bad file said: $out"
out=$($C recommend --store "$W/s.db" --k 3 2>&1) && fail "recommend without a model succeeded"
grep -q "no model yet: sync first" <<< "$out" || fail "recommend said: $out"
out=$($C sync --store "$W/s.db" --max-syncs 1 2>&1)
grep -q "CheckIn: UNAVAILABLE" <<< "$out" || fail "sync against nothing said: $out"
grep -q "retrying in [0-9]* ms" <<< "$out" || fail "no backoff: $out"
# --help after any command; unknown options suggest the nearest
out=$($C init --help) || fail "init --help exited non-zero"
grep -q "usage:" <<< "$out" || fail "init --help printed: $out"
out=$($C sync --store "$W/s.db" --round 3 2>&1) && fail "a misspelt option was accepted"
grep -q "did you mean --rounds" <<< "$out" || fail "no suggestion for --round: $out"
# a store that does not exist is refused (not created and retried for ever): configuration, 3
$C sync --store "$W/nosuch.db" --max-syncs 1 > "$W/o" 2>&1; rc=$?
[[ $rc -eq 3 ]] || fail "sync on a missing store exited $rc: $(cat "$W/o")"
grep -q "does not exist: create it with fedrec-client init" "$W/o" || fail "missing store said: $(cat "$W/o")"
[[ -e "$W/nosuch.db" ]] && fail "sync created a store"
# a store file without settings: configuration, 3
: > "$W/empty.db"
$C sync --store "$W/empty.db" --max-syncs 1 > "$W/o" 2>&1; rc=$?
[[ $rc -eq 3 ]] || fail "sync on a store without settings exited $rc: $(cat "$W/o")"
grep -q "configuration error" "$W/o" || fail "store without settings said: $(cat "$W/o")"
$C import --store "$W/empty.db" --synthetic-user 3 > "$W/o" 2>&1; rc=$?
[[ $rc -eq 3 ]] || fail "import --synthetic-user without a catalogue exited $rc"
grep -q "has no catalogue setting: run fedrec-client init first" "$W/o" || fail "import said: $(cat "$W/o")"
# a CSV with several users: refused unless --user picks one
printf 'user,item,weight\nme,i3,2\nyou,i7,1\nyou,i8,1\n' > "$W/two.csv"
$C import --store "$W/s2.db" --csv "$W/two.csv" > "$W/o" 2>&1; rc=$?
[[ $rc -eq 2 ]] || fail "a CSV of two users was imported (exit $rc)"
grep -q "holds the histories of 2 users" "$W/o" || fail "import said: $(cat "$W/o")"
out=$($C import --store "$W/s2.db" --csv "$W/two.csv" --user you 2>&1) || fail "import --user: $out"
grep -q "imported 2 events" <<< "$out" || fail "import --user said: $out"
$C import --store "$W/s2.db" --csv "$W/two.csv" --user nobody > "$W/o" 2>&1 && fail "import of an absent user succeeded"
grep -q "no rows of user 'nobody'" "$W/o" || fail "import --user nobody said: $(cat "$W/o")"
echo "client cli: PASS"
