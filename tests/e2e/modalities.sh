#!/usr/bin/env bash
# Multimodal content end to end (docs/MODEL.md "Multimodal content"): a coordinator on a
# modalities:LIST catalogue (a "video" and an "audio" encoder's .npy files, each with its own id
# list and dimension, some items missing from each) trains 2 rounds with 8 devices; the
# catalogue and the signed model carry the modalities by name. Then a "text" modality is added
# (a line in the list and SIGHUP): catalogue 2, and the model follows with a zero block for it
# (params d x 18 instead of d x 12) and the same recommendations as before; 2 more rounds train
# it. Reordering or dropping a modality is refused at start, naming both lists.
#   tests/e2e/modalities.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" modalities
step() { echo "[modalities] $*" >&2; }
N=8
/usr/bin/python3 - "$W" <<'PY'
import random, struct, sys
w = sys.argv[1]
r = random.Random(11)
def npy(path, rows):
    cols = len(rows[0])
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (len(rows), cols)
    head += " " * (63 - (10 + len(head)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode())
        for row in rows:
            f.write(struct.pack("<%df" % cols, *row))
items = [(f"it{k}_{m}", k) for k in range(4) for m in range(12)]
def write(name, keep, row):
    kept = [(i, k) for i, k in items if keep(i)]
    npy(f"{w}/{name}.npy", [row(k) for _, k in kept])
    with open(f"{w}/{name}.txt", "w") as f:
        f.writelines(i + "\n" for i, _ in kept)
# video: the kind (8 dimensions), for all but the items numbered 11; audio: kind % 2 (4 dimensions), all but
# those numbered 10; text: the kind again (6 dimensions), every item
write("video", lambda i: not i.endswith("_11"), lambda k: [(1.0 if j == k else 0.0) + r.gauss(0, 0.1) for j in range(8)])
write("audio", lambda i: not i.endswith("_10"), lambda k: [(1.0 if j == k % 2 else 0.0) + r.gauss(0, 0.1) for j in range(4)])
write("text", lambda i: True, lambda k: [(1.0 if j == k else 0.0) + r.gauss(0, 0.2) for j in range(6)])
for i in range(1, 9):
    k = i % 4
    with open(f"{w}/h{i}.csv", "w") as f:
        f.write("user,item,weight\n")
        for m in r.sample(range(11), 5):
            f.write(f"me,it{k}_{m},1\n")
PY
printf 'video\tvideo.npy\tvideo.txt\naudio\taudio.npy\taudio.txt\n' > "$W/two.tsv"
{ cat "$W/two.tsv"; printf 'text\ttext.npy\ttext.txt\n'; } > "$W/three.tsv"
printf 'audio\taudio.npy\taudio.txt\nvideo\tvideo.npy\tvideo.txt\n' > "$W/reordered.tsv"
cp "$W/two.tsv" "$W/mod.tsv"
CAT="modalities:$W/mod.tsv"
FLAGS=(--dim 8 --free-embeddings 0 --cohort 8 --min-cohort 8 --min-survivors 6 --dropout 0.001 --dishonest 0.001 --phase-ms 20000
  --retry-ms 300 --noise-multiplier 0.3 --clip 2 --server-lr 0.5 --budget 1000)

step "coordinator on two modalities (video 8, audio 4; some items lack one), 2 rounds"
e2e_serve --catalogue "$CAT" "${FLAGS[@]}" --rounds 2
grep -q '"event": "catalogue_created", "version": 1, "items": 48, .*"modalities": "video:8,audio:4", .*"dim": 12' "$W/coord.log" ||
  fail "catalogue_created does not name the modalities: $(grep catalogue_created "$W/coord.log")"
for i in $(seq 1 $N); do
  e2e_client "$i"
  "$CLIENT" import --store "$W/c$i.db" --csv "$W/h$i.csv" 2>/dev/null || fail "import on device $i"
done
e2e_run_devices "$N" 2
grep -q '"event": "round_aborted"' "$W/coord.log" && fail "a round aborted"
before=$("$CLIENT" recommend --store "$W/c2.db" --k 10) || fail "recommend on device 2"
e2e_stop

step "a reordered list of modalities is refused at start, naming both"
cp "$W/reordered.tsv" "$W/mod.tsv"
"$COORD" serve --state-dir "$W/state" --listen 127.0.0.1:0 --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" \
  --catalogue "$CAT" "${FLAGS[@]}" --rounds 2 > "$W/o" 2>&1 && fail "a reordered catalogue was served"
grep -q "modalities \[audio:4,video:8\], but the served catalogue (version 1) has \[video:8,audio:4\]" "$W/o" ||
  fail "reordering said: $(grep -v '^{' "$W/o" | head -2)"

step "a text modality added (a line in the list, SIGHUP): catalogue 2, the model follows with a zero block (same recommendations)"
PORT=$port
cp "$W/two.tsv" "$W/mod.tsv"
e2e_serve --catalogue "$CAT" "${FLAGS[@]}" --rounds 2
cp "$W/three.tsv" "$W/mod.tsv"
kill -HUP "$cpid"
for _ in $(seq 100); do grep -q '"event": "model_follows_catalogue"' "$W/coord.log" && break; sleep 0.1; done
grep -q '"event": "catalogue_update_pending", "version": 2, "items": 48, "added": 0, "withdrawn": 0, .*"modalities": "video:8,audio:4,text:6", .*"dim": 18' \
  "$W/coord.log" || fail "no catalogue update with the text modality: $(grep catalogue_ "$W/coord.log" | tail -1)"
grep -q '"event": "model_follows_catalogue", "catalogue_version": 2, "items": 48, "model_version": 4, .*"params": 144' "$W/coord.log" ||
  fail "the model did not follow with 8 x 18 parameters: $(grep model_follows "$W/coord.log")"
"$CLIENT" sync --store "$W/c2.db" --rounds 1 > "$W/c2.out" 2> "$W/c2.err" || true # training is over: fetches catalogue 2, model 4
after=$("$CLIENT" recommend --store "$W/c2.db" --k 10) || fail "recommend after the text modality was added: $(tail -2 "$W/c2.err")"
[[ "$(cut -f2 <<< "$before")" == "$(cut -f2 <<< "$after")" ]] || fail "the zero block changed the recommendations: $(echo $before) / $(echo $after)"
e2e_stop

step "2 more rounds train the new block; every device takes the three-modality model"
e2e_serve --catalogue "$CAT" "${FLAGS[@]}" --rounds 4
e2e_run_devices "$N" 4
grep -q '"event": "round_aborted"' "$W/coord.log" && fail "a round aborted after the modality was added"
hits=0
for i in $(seq 1 $N); do
  out=$("$CLIENT" recommend --store "$W/c$i.db" --k 3) || fail "recommend on device $i"
  top=$(head -1 <<< "$out" | cut -f2)
  [[ "$top" == it$((i % 4))_* ]] && hits=$((hits + 1))
done
step "$hits of $N devices have an item of their own kind first"
((hits >= N - 2)) || fail "only $hits of $N devices were recommended their kind first"
e2e_stop
echo "modalities: PASS"
