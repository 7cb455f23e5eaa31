#!/usr/bin/env bash
# fedrec-sim --out writes config.json, rounds.jsonl and summary.json; --target-epsilon picks a
# noise multiplier whose planned epsilon is at most (and within 1% of) the target, and the
# ledger's epsilon stays below it.   tests/e2e/sim_outputs.sh BUILD_DIR
set -euo pipefail
B=$(cd "$1" && pwd)
W=$(mktemp -d /tmp/fedrec-simout.XXXXXX)
trap 'rm -rf "$W"' EXIT
for privacy in skellam dgauss central; do
  "$B/sim/fedrec-sim" --algorithm fedavg --dataset synthetic:users=800,items=100,dim=8,seed=3 --dim 8 --rounds 3 \
    --cohort 50 --privacy $privacy --target-epsilon 2 --delta 1e-6 --secagg plain --threads 2 --quiet \
    --out "$W/$privacy" > "$W/$privacy.txt"
  python3 - "$W/$privacy" <<'PY'
import json, sys
d = sys.argv[1]
cfg = json.load(open(d + "/config.json"))
rounds = [json.loads(l) for l in open(d + "/rounds.jsonl")]
s = json.load(open(d + "/summary.json"))
assert cfg["target_epsilon"] == 2 and cfg["rounds"] == 3, cfg
assert [r["round"] for r in rounds] == [0, 1, 2, 3], rounds
for r in rounds[1:]:
    for k in ("epsilon", "recall@20", "ndcg@20", "coverage@20", "bytes_up_per_client", "bytes_down_per_client", "seconds"):
        assert k in r, (k, r)
    assert r["bytes_down_per_client"] > 0 and r["bytes_up_per_client"] > 0, r
assert s["rounds"] == 3 and s["delta"] == 1e-6, s
assert 1.98 <= s["planned_epsilon"] <= 2.0, s
assert 0 < s["epsilon"] <= s["planned_epsilon"], s
assert rounds[-1]["epsilon"] == round(s["epsilon"], 6) or abs(rounds[-1]["epsilon"] - s["epsilon"]) < 1e-5, (rounds[-1], s)
assert s["noise_multiplier"] > 0 and s["recall@20"] == rounds[-1]["recall@20"] or abs(s["recall@20"] - rounds[-1]["recall@20"]) < 1e-5
print(f"{d}: z = {s['noise_multiplier']:.4g}, planned epsilon {s['planned_epsilon']:.4f}, ledger {s['epsilon']:.4f}")
PY
done
# bad combinations are refused, naming the flag
if "$B/sim/fedrec-sim" --algorithm fedavg --privacy none --target-epsilon 1 2> "$W/err"; then exit 1; fi
grep -q -- "--target-epsilon needs noise" "$W/err"
if "$B/sim/fedrec-sim" --algorithm fedavg --out /proc/nonexistent/x --rounds 1 --cohort 50 2> "$W/err"; then exit 1; fi
grep -q -- "--out /proc/nonexistent/x" "$W/err"
echo "sim outputs: PASS"
