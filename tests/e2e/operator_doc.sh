#!/usr/bin/env bash
# The operator's set-up in docs/COORDINATOR.md, run as written: the shell blocks marked
# <!-- doc-test: NAME --> are taken from the document and run in order in an empty folder that
# has the repository's scripts/ and deploy/ and this build as build/release. Two changes only:
# `scripts/build` lines are skipped (the build is the test's own) and the ports 50051 and 9464
# become free ones (in the commands and the config), so that the test runs beside anything.
# Then it checks what the document says happens: the coordinator serves, the one device is
# selected and released at the end of the selection window with the reason, the revoked
# device's sync exits with status 4, the token file is 0600.
#   operator_doc.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" operator-doc
D=$W/doc
mkdir -p "$D/deploy" "$D/build"
ln -s "$SRC/scripts" "$D/scripts"
ln -s "$B" "$D/build/release"
free_port() { $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
P1=$(free_port)
P2=$(free_port)
for f in "$SRC"/deploy/*.conf; do sed "s/50051/$P1/g; s/9464/$P2/g" "$f" > "$D/deploy/$(basename "$f")"; done
blocks() { # the sh block after each <!-- doc-test: NAME --> marker, in document order
  awk '/<!-- doc-test: / {want = 1; next} want && /^```sh/ {inb = 1; next} inb && /^```/ {inb = 0; want = 0; next} inb {print}' "$1"
}
blocks "$SRC/docs/COORDINATOR.md" | grep -v '^scripts/build' | sed "s/50051/$P1/g; s/9464/$P2/g" > "$W/walk.sh"
[[ $(grep -c . "$W/walk.sh") -ge 10 ]] || fail "the doc-test blocks of docs/COORDINATOR.md were not found"
cleanup_doc() { # the coordinator the document started, if still running (found by its folder)
  for p in $(pgrep fedrec-coordin || true); do [[ $(readlink "/proc/$p/cwd" 2>/dev/null) == "$D" ]] && kill -9 "$p"; done
  true
}
trap 'cleanup_doc; e2e_cleanup' EXIT
echo "== running the operator set-up of docs/COORDINATOR.md ($(grep -c . "$W/walk.sh") lines)"
(cd "$D" && bash -e "$W/walk.sh") > "$W/walk.out" 2>&1 || { cat "$W/walk.out"; fail "the document's commands failed"; }
sed 's/^/  | /' "$W/walk.out"
grep -q '"event": "serving"' "$W/walk.out" || fail "the coordinator did not serve"
grep -q 'left out, round 1, model 1: round 1 aborted: selection: 1 device checked in, none more for 20000 ms, min-cohort is 40' "$W/walk.out" ||
  fail "the device was not released with the reason the document gives"
grep -q 'exit status 4' "$W/walk.out" || fail "a revoked device's sync did not exit with status 4"
grep -q 'authentication error' "$W/walk.out" || fail "the revoked device did not say it was an authentication error"
[[ $(stat -c %a "$D/device17.token") == 600 ]] || fail "device17.token is not 0600"
[[ $(stat -c %a "$D/device17.db") == 600 ]] || fail "device17.db is not 0600"
grep -q '"event": "stopped"' "$D/coordinator.log" || fail "the coordinator did not stop cleanly"
echo "PASS: docs/COORDINATOR.md set-up runs as written"
