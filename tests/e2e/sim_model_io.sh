#!/usr/bin/env bash
# fedrec-sim writes what it trained and what it recommended, so others can check it:
# --save-model from central iALS and from a federated run is read back by --algorithm model
# with the same Recall@20 (and, for central, the same lists); --dump-recs holds each test
# user's top 20 and held-out items, from which Recall@20 recomputed here (hits over
# min(20, |held out|), averaged over the users listed) equals the reported one.
#   tests/e2e/sim_model_io.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
W=$(mktemp -d /tmp/fedrec-sim-io.XXXXXX)
trap 'rm -rf "$W"' EXIT
S=$B/sim/fedrec-sim
fail() { echo "FAIL: $*" >&2; exit 1; }
CAT="synthetic:users=800,items=300,dim=8,seed=2"
recall() { grep -o '"recall@20": [0-9.]*' | head -1 | grep -o '[0-9.]*$'; }
r1=$("$S" --algorithm central --dataset "$CAT" --save-model "$W/c.bin" --dump-recs "$W/c.csv" --json --quiet | recall)
r2=$("$S" --algorithm model --model "$W/c.bin" --dataset "$CAT" --dump-recs "$W/m.csv" --json --quiet | recall)
[[ "$r1" == "$r2" ]] || fail "central Recall@20 $r1, the saved model's $r2"
cmp -s "$W/c.csv" "$W/m.csv" || fail "the saved model recommends other lists"
r3=$(/usr/bin/python3 - "$W/c.csv" <<'PY'
import collections, csv, sys
rec, held = collections.defaultdict(list), collections.defaultdict(set)
for row in csv.DictReader(open(sys.argv[1])):
    if row["list"] == "recommended":
        rec[row["test_user"]].append(row["item"])
    else:
        held[row["test_user"]].add(row["item"])
vals = [sum(i in held[u] for i in rec[u][:20]) / min(20, len(held[u])) for u in held]
print(f"{sum(vals) / len(vals):.6f}")
PY
)
/usr/bin/python3 -c "import sys; sys.exit(abs(float('$r1') - float('$r3')) > 1e-6)" || fail "Recall@20 from the dump $r3, reported $r1"
f1=$("$S" --algorithm fedavg --dataset "$CAT" --rounds 3 --cohort 100 --privacy none --secagg plain --save-model "$W/f.bin" --json --quiet | recall)
f2=$("$S" --algorithm model --model "$W/f.bin" --dataset "$CAT" --json --quiet | recall)
[[ "$f1" == "$f2" ]] || fail "fedavg Recall@20 $f1, the saved model's $f2"
echo "sim model io: PASS (central $r1 = saved $r2 = recomputed $r3; fedavg $f1 = saved $f2)"
