#!/usr/bin/env bash
# DP-FTRL and the active secure-aggregation variant over TLS: a coordinator with an enrolment
# authority (signed keys, a consistency phase, signed survivor lists), tree-noise-multiplier and
# tree-rounds 2, 16 enrolled devices each wanting two rounds, three rounds. A device without a
# certificate is turned away with the reason. fedrec-audit report writes the auditor's page,
# which headless Chromium renders (the figure decoded, the tables laid out); for a ledger edited
# afterwards the page says NOT VERIFIED. Round 2 is in round 1's tree, so none of round 1's devices
# is in it; round 3 starts a new tree. Each round's ledger entry is followed by its tree entry,
# fedrec-audit verify recomputes both epsilons, and the public one (model recipients) stays
# below the operator's; the round log and the metrics carry it.
#   tests/e2e/dp_ftrl.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" dp_ftrl
step() { echo "[dp_ftrl] $*" >&2; }
CAT="synthetic:users=300,items=100,dim=8,seed=4"
N=16
"$COORD" authority-init --out "$W/authority.key" >/dev/null 2>&1
e2e_serve --enrolment-authority "@$W/authority.key.pub" --catalogue "$CAT" --dim 8 --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --rounds 3 \
  --phase-ms 20000 --retry-ms 300 --noise-multiplier 0.3 --clip 2 --budget 1000 --public-budget 50 \
  --tree-noise-multiplier 3 --tree-rounds 2
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users $((N + 1)) --quiet)
for i in $(seq 1 $((N + 1))); do
  e2e_client "$i" --catalogue "$CAT" --authority-key "@$W/authority.key.pub"
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null
  [[ $i -le $N ]] && e2e_enrol "$i"
done
grep -q '"event": "secagg_variant", "active": 1' "$W/coord.log" || fail "the coordinator did not log the active variant"

step "a device without a certificate is turned away (exit 4, the reason)"
rc=0; "$CLIENT" sync --store "$W/c$((N + 1)).db" --max-syncs 1 > /dev/null 2> "$W/noenrol.err" || rc=$?
[[ $rc == 4 ]] && grep -q "active secure-aggregation variant: a device joins rounds only with a certificate" "$W/noenrol.err" ||
  fail "unenrolled device: rc $rc, $(cat "$W/noenrol.err")"

step "16 devices, three rounds of 8 in trees of 2 rounds"
pids=()
for i in $(seq 1 $N); do "$CLIENT" sync --store "$W/c$i.db" --rounds 2 > "$W/c$i.out" 2> "$W/c$i.err" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || true; done
for _ in $(seq 100); do [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 3 ]] && break; sleep 0.2; done
[[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 3 ]] || fail "three rounds did not finish: $(grep round_ "$W/coord.log" | tail -2)"
/usr/bin/python3 - "$W/state/coordinator.db" "$W/coord.log" <<'PY' || fail "participation"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
rows = dict(db.execute("SELECT id, count FROM participation"))
last = dict(db.execute("SELECT id, last_round FROM participation"))
assert len(rows) == 16 and sum(rows.values()) == 24, rows
# the devices of round 3 took part once before, in round 1 or 2 (the other tree)
assert all(c <= 2 for c in rows.values()), rows
rounds = [json.loads(l) for l in open(sys.argv[2]) if '"round_done"' in l]
eps = [(r["epsilon"], r["epsilon_public"]) for r in rounds]
assert all(p < e for e, p in eps), eps
print("rounds: epsilon (operator, public):", eps)
PY
curl -s "http://127.0.0.1:$mport/metrics" | grep -q '^fedrec_epsilon_public [0-9.]*$' || fail "no fedrec_epsilon_public metric"
e2e_stop

step "fedrec-audit verify: six entries, both epsilons recomputed"
"$B/sim/fedrec-audit" verify --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" > "$W/verify.out" ||
  fail "verify: $(tail -2 "$W/verify.out")"
grep -q "verified: 6 entries, epsilon .*; against model recipients [0-9.]* (public budget 50)" "$W/verify.out" ||
  fail "verify: $(tail -1 "$W/verify.out")"
[[ $(grep -cE '^ +[0-9]+ +[0-9]+ tree ' "$W/verify.out") == 3 ]] || fail "three tree entries expected: $(cat "$W/verify.out")"
step "fedrec-audit report: the auditor's page renders (headless Chromium), with both epsilons and six releases"
"$AUDIT" report --ledger "$W/state/ledger.db" --public-key "$W/state/identity.pub" --out "$W/report" > "$W/report.out" ||
  fail "report: $(cat "$W/report.out")"
/usr/bin/python3 - "$W/report/report.json" <<'PY' || fail "report.json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["verified"] and d["entries"] == 6 and len(d["releases"]) == 6, d
assert d["mechanisms"] == {"skellam": 3, "tree": 3}, d["mechanisms"]
assert d["epsilon_public"] < d["epsilon"] and d["public_budget"] == 50, d
assert d["participation"]["tree_entries"] == 3 and d["participation"]["releases"] == 3, d["participation"]
assert any("model recipients" in a["for"] for a in d["assumptions"]), d["assumptions"]
PY
seen=$(e2e_render "$W/report/index.html")
echo "rendered: $seen" >&2
if [[ "$seen" != "no chromium" ]]; then
  [[ "$seen" == "verdict=Verified: 6 entries"*"|img=760x380|shown=760x380|releases=7|assumptions="* ]] || fail "report render: $seen"
fi
step "a ledger edited after the fact: the report says NOT VERIFIED, and exits 1"
cp "$W/state/ledger.db" "$W/edited.db"
/usr/bin/python3 -c "import sqlite3,sys; d=sqlite3.connect(sys.argv[1]); d.execute('UPDATE entries SET epsilon = epsilon / 2 WHERE seq = 3'); d.commit()" "$W/edited.db"
rc=0; "$AUDIT" report --ledger "$W/edited.db" --public-key "$W/state/identity.pub" --out "$W/report2" > /dev/null 2>&1 || rc=$?
[[ $rc == 1 ]] && grep -q '"verified": false, "reason": "entry 3: contents do not match its hash' "$W/report2/report.json" ||
  fail "edited ledger: rc $rc, $(head -c 300 "$W/report2/report.json")"
seen=$(e2e_render "$W/report2/index.html")
[[ "$seen" == "no chromium" || "$seen" == "verdict=NOT VERIFIED: entry 3"* ]] || fail "edited ledger's report: $seen"
echo "dp_ftrl: PASS"
