#!/usr/bin/env bash
# Availability rules end to end (docs/CATALOGUE.md "Availability"): a coordinator with an
# availability file (some items only in DE, some only in US, some only for the group premium)
# and a block list trains 2 rounds with 8 devices whose histories include blocked items. Checks:
# the signed catalogue carries the rules (logged counts); each device is recommended only what
# is available in its own region (set locally with init --region or `fedrec-client region`,
# changed without a sync), and nothing blocked; a blocked item in a history still counts for the
# device (recommend --explain names it); the region never reaches the coordinator (its log and
# state do not hold it); a bad availability file is refused at start with the file and line and
# a bad one sent by SIGHUP changes nothing; unblocking by SIGHUP makes the next catalogue and
# model version, and the items come back after a sync.
#   tests/e2e/availability.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" availability
step() { echo "[availability] $*" >&2; }
N=8
/usr/bin/python3 - "$W" <<'PY'
import random, sys
w = sys.argv[1]
r = random.Random(7)
def row(k):
    return [(1.0 if j == k else 0.0) + r.gauss(0, 0.15) for j in range(8)]
items = [(f"it{k}_{m}", k) for k in range(4) for m in range(12)]
with open(f"{w}/cat.csv", "w") as f:
    f.write("item," + ",".join(f"f{j}" for j in range(8)) + "\n")
    for name, k in items:
        f.write(name + "," + ",".join(f"{v:.5f}" for v in row(k)) + "\n")
with open(f"{w}/titles.tsv", "w") as f:
    for name, k in items:
        f.write(f"{name}\tTrack {name[2:]}\n")
# kind 0: it0_0..5 only in DE, it0_6..8 only in US (9..11 everywhere); kind 1: it1_0..5 premium only
with open(f"{w}/avail.tsv", "w") as f:
    for m in range(6): f.write(f"it0_{m}\tDE\n")
    for m in range(6, 9): f.write(f"it0_{m}\tUS\n")
    for m in range(6): f.write(f"it1_{m}\tpremium\n")
    f.write("not-an-item\tFR\n")
with open(f"{w}/blocked.txt", "w") as f:
    for m in range(6): f.write(f"it2_{m}\n")
# device i likes kind i % 4 and has seen items 9, 10, 11 of it (kind 2: also the blocked it2_0)
for i in range(1, 9):
    k = i % 4
    with open(f"{w}/h{i}.csv", "w") as f:
        f.write("user,item,weight\n")
        for m in (9, 10, 11):
            f.write(f"me,it{k}_{m},1\n")
        if k == 2:
            f.write("me,it2_0,3\n")
PY
FLAGS=(--catalogue "csv:$W/cat.csv,$W/titles.tsv" --availability "$W/avail.tsv" --blocked "$W/blocked.txt" --dim 8
  --free-embeddings 0 --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --phase-ms 20000
  --retry-ms 300 --noise-multiplier 0.3 --clip 2 --server-lr 0.5 --budget 1000)

step "a malformed availability file is refused at start, naming the file and the line"
printf 'it0_0\tDE\nit0_1 US\n' > "$W/bad.tsv"
"$COORD" init --state-dir "$W/bad" > /dev/null 2>&1
"$COORD" serve --state-dir "$W/bad" --listen 127.0.0.1:0 --insecure 1 --catalogue "csv:$W/cat.csv" --availability "$W/bad.tsv" \
  --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 > "$W/o" 2>&1 && fail "a bad availability file was served"
grep -q "bad.tsv:2: expected 'item<TAB>group" "$W/o" || fail "bad availability file said: $(grep -v '^{' "$W/o" | head -3)"

step "coordinator with the rules, 2 rounds, $N devices"
e2e_serve "${FLAGS[@]}" --rounds 2
grep -q '"event": "catalogue_created", "version": 1, "items": 48, "added": 48, "withdrawn": 0, "blocked": 6, "restricted": 15, "groups": 3' \
  "$W/coord.log" || fail "catalogue_created does not carry the rules: $(grep catalogue_created "$W/coord.log")"
grep -q '"event": "availability_unknown", "count": 1, "first": "not-an-item"' "$W/coord.log" || fail "the unknown id was not reported"
region=("" "premium,zz-local-secret" "" "" "DE" "" "" "" "US")
for i in $(seq 1 $N); do
  if [[ -n "${region[$i]}" ]]; then e2e_client "$i" --region "${region[$i]}"; else e2e_client "$i"; fi
  "$CLIENT" import --store "$W/c$i.db" --csv "$W/h$i.csv" 2>/dev/null || fail "import on device $i"
done
e2e_run_devices "$N" 2

rec() { "$CLIENT" recommend --store "$W/c$1.db" --k 45 | cut -f2; } # every item it may get (48 less its history)
has() { grep -qx "$2" <<< "$1"; }
step "each device gets only what is available in its region, and nothing blocked"
for i in $(seq 1 $N); do
  out=$(rec "$i") || fail "recommend on device $i"
  for m in 0 1 2 3 4 5; do has "$out" "it2_$m" && fail "device $i was recommended the blocked it2_$m"; done
  for m in 0 1 2 3 4 5; do
    if [[ "${region[$i]}" == DE ]]; then has "$out" "it0_$m" || fail "device $i (DE) was not offered the DE item it0_$m"
    else has "$out" "it0_$m" && fail "device $i (${region[$i]:-no region}) was recommended the DE-only it0_$m"; fi
    if [[ "${region[$i]}" == premium* ]]; then has "$out" "it1_$m" || fail "device $i (premium) was not offered it1_$m"
    else has "$out" "it1_$m" && fail "device $i (${region[$i]:-no region}) was recommended the premium-only it1_$m"; fi
  done
  for m in 6 7 8; do
    if [[ "${region[$i]}" == US ]]; then has "$out" "it0_$m" || fail "device $i (US) was not offered the US item it0_$m"
    else has "$out" "it0_$m" && fail "device $i (${region[$i]:-no region}) was recommended the US-only it0_$m"; fi
  done
  has "$out" it3_0 || [[ $((i % 4)) == 3 ]] || fail "device $i was not offered the unrestricted it3_0"
  want=$((45 - 6)); [[ "${region[$i]}" == DE ]] || want=$((want - 6)); [[ "${region[$i]}" == US ]] || want=$((want - 3))
  [[ "${region[$i]}" == premium* ]] || want=$((want - 6))
  ((i % 4 == 2)) && want=$((want + 1)) # its history holds the blocked it2_0: no other item is taken out
  (( $(wc -l <<< "$out") <= want )) || fail "device $i got $(wc -l <<< "$out") items, at most $want are available to it"
done
step "the kind-0 device in DE has its own kind's DE items first"
top=$("$CLIENT" recommend --store "$W/c4.db" --k 6 | cut -f2 | sort | tr '\n' ' ')
[[ "$top" == "it0_0 it0_1 it0_2 it0_3 it0_4 it0_5 " ]] || fail "device 4 (DE, kind 0) top 6: $top"

step "the region is a local setting: moving device 8 from US to DE changes its recommendations without a sync"
"$CLIENT" region --store "$W/c8.db" DE 2>/dev/null || fail "fedrec-client region"
out=$(rec 8)
has "$out" it0_0 || fail "device 8 (now DE) was not offered it0_0"
has "$out" it0_6 && fail "device 8 (now DE) was still offered the US-only it0_6"
"$CLIENT" region --store "$W/c8.db" 'D E' 2>"$W/o" && fail "a malformed region was taken"
grep -q "is not a list of group names" "$W/o" || fail "a malformed region said: $(cat "$W/o")"
grep -rq "zz-local-secret" "$W/coord.log" "$W/state" && fail "device 1's region reached the coordinator"

step "a blocked item in a history still counts on the device (training and scores use the whole history)"
out=$("$CLIENT" recommend --store "$W/c2.db" --k 1 --explain) || fail "explain on device 2"
grep -q "Track 2_0" <<< "$out" || fail "device 2's explanation does not name its blocked history item it2_0: $out"

step "SIGHUP: a bad block list changes nothing; unblocking it2_1..5 makes catalogue 2 and the next model"
printf 'it2_0\n\nit2_1\n' > "$W/blocked.txt"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "catalogue_refused"' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "catalogue_refused", "reason": ".*blocked.txt:2' "$W/coord.log" || fail "a blank line in the block list was not refused"
printf 'it2_0\n' > "$W/blocked.txt"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "model_follows_catalogue", "catalogue_version": 2' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "catalogue_update_pending", "version": 2, "items": 48, "added": 0, "withdrawn": 0, "blocked": 1, "restricted": 15' \
  "$W/coord.log" || fail "no pending catalogue 2 with one blocked item: $(grep catalogue_ "$W/coord.log" | tail -2)"
grep -q '"event": "model_follows_catalogue", "catalogue_version": 2, "items": 48, "model_version": 4' "$W/coord.log" ||
  fail "the model did not follow catalogue 2 as version 4"
e2e_run_devices "$N" 2 # training is over: the devices fetch the new catalogue and model, and stop
out=$(rec 6)
for m in 1 2 3 4 5; do has "$out" "it2_$m" || fail "device 6 was not offered the unblocked it2_$m"; done
has "$out" it2_0 && fail "device 6 was recommended it2_0, still blocked"
e2e_stop
echo "availability: PASS"
