#!/usr/bin/env bash
# A coordinator on a file catalogue (content CSV + titles), served to devices that were given
# no catalogue, and a catalogue update between rounds: four items appended, one withdrawn,
# the coordinator restarted on the changed files. Checks: version 1 served and used; the update
# is version 2 (4 added, 1 withdrawn) and the model follows it as the next version; devices
# download it at their next sync; the new items are recommended through the head (they have no
# free embedding and nobody has seen them) to the devices whose histories are of their kind;
# the withdrawn item never is; recommend --explain shows titles and exact contributions; a live
# update by SIGHUP (no restart) applies between rounds, one with another dimension is refused
# and changes nothing; the operator's free-items list gives listed items free embeddings (at
# the restart, and by SIGHUP alone) and names an id the catalogue lacks; a
# catalogue that changes dimension, a malformed .npy and duplicate ids are refused at start
# with the file and the reason, and nothing is served.
#   tests/e2e/catalogue.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" catalogue
step() { echo "[catalogue] $*" >&2; }
N=12
# four kinds of items (a one-hot direction each, plus a little noise), 20 of each; device i
# likes kind i % 4 and has seen 6 of its items
/usr/bin/python3 - "$W" <<'EOF'
import random, sys
w = sys.argv[1]
r = random.Random(5)
def row(k, noise):
    return [(1.0 if j == k else 0.0) + r.gauss(0, noise) for j in range(8)]
items = [(f"it{k}_{m}", k) for k in range(4) for m in range(20)]
with open(f"{w}/cat1.csv", "w") as f:
    f.write("item," + ",".join(f"f{j}" for j in range(8)) + "\n")
    for name, k in items:
        f.write(name + "," + ",".join(f"{v:.5f}" for v in row(k, 0.15)) + "\n")
with open(f"{w}/titles.tsv", "w") as f:
    for name, k in items:
        f.write(f"{name}\tTrack {name[2:]} of kind {k}\n")
    for k in range(4):
        f.write(f"new{k}\tNew release of kind {k}\n")
# version 2: it0_19 withdrawn (device 4's history does not hold it), new0..new3 appended
with open(f"{w}/cat1.csv") as f:
    lines = [l for l in f if not l.startswith("it0_19,")]
with open(f"{w}/cat2.csv", "w") as f:
    f.writelines(lines)
    for k in range(4):
        f.write(f"new{k}," + ",".join(f"{v:.5f}" for v in row(k, 0.0)) + "\n")
with open(f"{w}/cat3.csv", "w") as f:  # another encoder: 9 dimensions
    f.write("item," + ",".join(f"f{j}" for j in range(9)) + "\n")
    f.write("it0_0," + ",".join("0.1" for j in range(9)) + "\n")
for i in range(1, 13):
    k = i % 4
    with open(f"{w}/h{i}.csv", "w") as f:
        f.write("user,item,weight\n")
        for m in r.sample(range(19), 6):
            f.write(f"me,it{k}_{m},1\n")
EOF
cp "$W/cat1.csv" "$W/cat.csv"
FLAGS=(--catalogue "csv:$W/cat.csv,$W/titles.tsv" --dim 8 --free-embeddings 0 --cohort 10 --min-cohort 10 --min-survivors 8
  --dropout 0.001 --dishonest 0.001 --phase-ms 20000 --retry-ms 300 --noise-multiplier 0.3 --clip 2 --server-lr 0.5
  --budget 1000)

step "bad catalogues are refused at start, naming the file and the reason"
bad() { # bad SPEC EXPECTED
  "$COORD" serve --state-dir "$W/bad" --listen 127.0.0.1:0 --insecure 1 --catalogue "$1" --cohort 10 --min-cohort 10 --min-survivors 8 \
    --dropout 0.001 --dishonest 0.001 > "$W/o" 2>&1 && fail "catalogue $1 was served"
  grep -q "$2" "$W/o" || fail "catalogue $1: expected '$2', got: $(grep -v '^{' "$W/o" | head -3)"
}
"$COORD" init --state-dir "$W/bad" > /dev/null 2>&1
printf 'item,f1\na,1\nb,2\na,3\n' > "$W/dup.csv"
bad "csv:$W/dup.csv" "dup.csv:4: item 'a' appears twice"
printf '\x93NUMPY\x01\x00\x10\x00{garbage' > "$W/bad.npy"
printf 'a\n' > "$W/ids.txt"
bad "npy:$W/bad.npy,$W/ids.txt" "bad.npy"
printf 'item,f1\na,inf\n' > "$W/inf.csv"
bad "csv:$W/inf.csv" "not a finite number"

step "coordinator on csv:cat.csv (80 items, 8 dimensions), 2 rounds, head only"
e2e_serve "${FLAGS[@]}" --rounds 2
grep -q '"event": "catalogue_created", "version": 1, "items": 80' "$W/coord.log" || fail "no catalogue_created in the log"
for i in $(seq 1 $N); do
  e2e_client "$i" # no --catalogue: the coordinator serves it
  "$CLIENT" import --store "$W/c$i.db" --csv "$W/h$i.csv" 2>/dev/null || fail "import before any catalogue"
done
e2e_run_devices "$N" 2
grep -q '"event": "round_aborted"' "$W/coord.log" && fail "a round aborted"
out=$("$CLIENT" recommend --store "$W/c1.db" --k 5) || fail "recommend after version 1: $out"
grep -q $'\tTrack ' <<< "$out" || fail "no titles in: $out"
e2e_stop

step "the update: it0_19 withdrawn, new0..new3 appended; restart on the changed file, free embeddings for new0 and new1"
cp "$W/cat2.csv" "$W/cat.csv"
printf 'new0\nnew1\r\nnot-in-the-catalogue\n' > "$W/free.txt"
PORT=$port # the devices keep the address they were given
e2e_serve "${FLAGS[@]}" --rounds 4 --free-items "$W/free.txt"
grep -q '"event": "catalogue_updated", "version": 2, "items": 84, "added": 4, "withdrawn": 1' "$W/coord.log" ||
  fail "no catalogue_updated (2, 84 items, 4 added, 1 withdrawn): $(grep catalogue "$W/coord.log" | tail -2)"
grep -q '"event": "model_follows_catalogue", "catalogue_version": 2, "items": 84, "model_version": 4, "free_added": 2, "free_embeddings": 2, "params": 80' "$W/coord.log" ||
  fail "the model did not follow the catalogue as version 4 with 2 free embeddings (80 parameters): $(grep model_follows "$W/coord.log")"
grep -q '"event": "free_items_unknown", "count": 1, "first": "not-in-the-catalogue"' "$W/coord.log" || fail "the unknown id was not reported"
e2e_run_devices "$N" 3
grep -q '"event": "round_aborted"' "$W/coord.log" && fail "a round aborted after the free embeddings were added"

step "the new items are recommended through the head; the withdrawn one never"
hits=0
for i in $(seq 1 $N); do
  k=$((i % 4))
  out=$("$CLIENT" recommend --store "$W/c$i.db" --k 16) || fail "recommend on device $i: $out"
  grep -q $'\tit0_19\t' <<< "$out" && fail "device $i was recommended the withdrawn it0_19"
  grep -q $'\tnew'"$k"$'\t' <<< "$out" && hits=$((hits + 1))
done
step "$hits of $N devices got the new release of their kind in their top 16"
((hits >= N - 2)) || fail "only $hits of $N devices were recommended the new item of their kind"
out=$("$CLIENT" recommend --store "$W/c1.db" --k 3 --explain) || fail "recommend --explain: $out"
echo "$out" | sed 's/^/  /' >&2
grep -q "because of: Track 1_" <<< "$out" || fail "no contributions by title in: $out"
grep -q "content like: " <<< "$out" || fail "no content side in: $out"

step "a live update (SIGHUP, no restart) after training stopped: a refused one changes nothing, a good one applies"
cp "$W/cat3.csv" "$W/cat.csv"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "catalogue_refused"' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "catalogue_refused", "reason": "catalogue .*content dimension 9, but the served catalogue (version 2) has 8' \
  "$W/coord.log" || fail "a 9-dimensional reload was not refused"
{ cat "$W/cat2.csv"; printf 'live2,0,0,1,0,0,0,0,0\n'; } > "$W/cat.csv"
printf 'live2\tA live release of kind 2\n' >> "$W/titles.tsv"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "model_follows_catalogue", "catalogue_version": 3' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "catalogue_update_pending", "version": 3, "items": 85, "added": 1, "withdrawn": 0' "$W/coord.log" ||
  fail "no pending update (version 3, 85 items)"
grep -q '"event": "model_follows_catalogue", "catalogue_version": 3, "items": 85, "model_version": 7, "free_added": 0' "$W/coord.log" ||
  fail "the live update was not applied as model 7"
step "a free-items list change alone (SIGHUP): a bad list is refused, then the next model gives new2 a free embedding"
cp "$W/free.txt" "$W/free.good"
echo new0 >> "$W/free.txt"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "catalogue_refused", "reason": "free-items: .*free.txt:4: item id .new0. appears twice' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "catalogue_refused", "reason": "free-items: .*free.txt:4: item id .new0. appears twice' "$W/coord.log" ||
  fail "a free-items file with a duplicate was not refused: $(grep refused "$W/coord.log" | tail -1)"
{ cat "$W/free.good"; echo new2; } > "$W/free.txt"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "model_follows_catalogue", "catalogue_version": 3, "items": 85, "model_version": 8' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "free_items_pending", "items": 1' "$W/coord.log" || fail "no free_items_pending"
grep -q '"event": "model_follows_catalogue", "catalogue_version": 3, "items": 85, "model_version": 8, "free_added": 1, "free_embeddings": 3, "params": 88' \
  "$W/coord.log" || fail "the free-items change was not applied as model 8: $(grep model_follows "$W/coord.log" | tail -1)"
step "listing every item would outgrow the message cap fixed at start: refused, no new model"
tail -n +2 "$W/cat.csv" | cut -d, -f1 > "$W/free.txt"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "free_items_refused"' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "free_items_refused", "items": 81, "message_bytes": 8192, ' "$W/coord.log" ||
  fail "81 more free embeddings (8 KiB masked inputs) were not refused: $(grep -E 'free_items|limits' "$W/coord.log" | tail -2)"
sleep 1
grep -q '"model_version": 9' "$W/coord.log" && fail "a model was published for a refused change"
e2e_run_devices "$N" 4 # training is over: the devices fetch the catalogue and the model, and stop
hits=0
for i in 2 6 10; do
  out=$("$CLIENT" recommend --store "$W/c$i.db" --k 16) || fail "recommend on device $i: $out"
  grep -q $'\tlive2\t.*A live release of kind 2' <<< "$out" && hits=$((hits + 1))
done
((hits >= 2)) || fail "only $hits of the 3 kind-2 devices were recommended the live release"

step "a damaged store (one bit of the stored catalogue flipped) is noticed, and the next sync downloads it again"
/usr/bin/python3 - "$W/c1.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
b = bytearray(db.execute("SELECT blob FROM catalogue WHERE id = 1").fetchone()[0])
b[len(b) // 2] ^= 1  # inside the content: still a valid message, another catalogue
db.execute("UPDATE catalogue SET blob = ? WHERE id = 1", (bytes(b),))
db.commit()
PY
out=$("$CLIENT" recommend --store "$W/c1.db" --k 3 2>&1) && fail "recommended from a damaged store: $out"
grep -q "does not match its hash" <<< "$out" || fail "damaged store said: $out"
"$CLIENT" sync --store "$W/c1.db" --rounds 1 > "$W/c1.out" 2> "$W/c1.err" || true
out=$("$CLIENT" recommend --store "$W/c1.db" --k 3 2>&1) || fail "recommend after the catalogue was downloaded again: $out (sync said: $(tail -3 "$W/c1.err"))"
e2e_stop

step "a catalogue of another dimension is refused on restart, naming both"
cp "$W/cat3.csv" "$W/cat.csv"
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" \
  "${FLAGS[@]}" > "$W/o" 2>&1 && fail "a 9-dimensional catalogue was served"
grep -q "content dimension 9, but the served catalogue (version 3) has 8" "$W/o" || fail "dimension change said: $(grep -v '^{' "$W/o")"
echo "catalogue: PASS"
