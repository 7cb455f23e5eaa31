#!/usr/bin/env bash
# Fusion where the truth is known (docs/MODEL.md "Multimodal content"): the synthetic generator's
# three modalities carry 90%, 50% and none of the items' true factors (strong, weak, noise; 30%
# and 10% of items lack the first two). Central iALS with the head alone on each modality and on
# all three: cold-item Recall@20 must order strong > weak > noise, the fusion must keep at least
# 95% of the strong modality's, and in the fusion the head must lean on them in that order
# (each modality's mean |H_m c_i^m|). Then --modality-list (one .npy per modality, some items
# missing) is read, and a malformed list is refused with the file and line.
#   tests/e2e/sim_modalities.sh BUILD_DIR
set -euo pipefail
SIM=$1/sim/fedrec-sim
DATA="synthetic:users=3000,items=600,dim=16,modalities=3"
run() { "$SIM" --algorithm central --dataset "$DATA" --dim 16 --epochs 8 --free-items 0 --cold-items 0.2 --json --quiet --modalities "$1"; }
num() { grep -o "\"$1\": [0-9.e-]*" <<< "$2" | awk '{print $2}'; }
declare -A cold
for m in strong weak noise strong,weak,noise; do
  out=$(run "$m")
  cold[$m]=$(num cold_recall@20 "$out")
  echo "modalities $m: cold-item Recall@20 ${cold[$m]}, warm $(num recall@20 "$out")" >&2
done
fused=$out
cs=$(num contribution:strong "$fused") cw=$(num contribution:weak "$fused") cn=$(num contribution:noise "$fused")
echo "contributions in the fusion: strong $cs, weak $cw, noise $cn" >&2
awk -v s="${cold[strong]}" -v w="${cold[weak]}" -v n="${cold[noise]}" -v f="${cold[strong,weak,noise]}" \
  'BEGIN { exit !(s > w && w > n && f >= 0.95 * s) }' || { echo "FAIL: cold-item recall does not follow the truth" >&2; exit 1; }
awk -v s="$cs" -v w="$cw" -v n="$cn" 'BEGIN { exit !(s > w && w > n) }' ||
  { echo "FAIL: the fused head does not weigh the modalities by their information" >&2; exit 1; }
# a research engineer's own encoders: one .npy per modality (--modality-list), some items missing
W=$(mktemp -d /tmp/fedrec-sim-modalities.XXXXXX)
trap 'rm -rf "$W"' EXIT
/usr/bin/python3 - "$W" <<'PY'
import random, struct, sys
w, r = sys.argv[1], random.Random(3)
def npy(name, ids, cols):
    head = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (len(ids), cols)
    head += " " * (63 - (10 + len(head)) % 64) + "\n"
    with open(f"{w}/{name}.npy", "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(head)) + head.encode())
        for _ in ids:
            f.write(struct.pack("<%df" % cols, *[r.gauss(0, 1) for _ in range(cols)]))
    with open(f"{w}/{name}.txt", "w") as f:
        f.writelines(i + "\n" for i in ids)
npy("video", [f"i{k}" for k in range(600) if k % 5], 6)
npy("audio", [f"i{k}" for k in range(0, 600, 2)], 3)
with open(f"{w}/list.tsv", "w") as f:
    f.write("video\tvideo.npy\tvideo.txt\naudio\taudio.npy\taudio.txt\n")
PY
out=$("$SIM" --algorithm central --dataset "$DATA" --dim 16 --epochs 2 --free-items 0 --modality-list "$W/list.tsv" 2>&1) ||
  { echo "FAIL: --modality-list: $out" >&2; exit 1; }
grep -q "modality video: 6 dimensions, 480 of 600 items have it" <<< "$out" && grep -q "modality audio: 3 dimensions, 300 of 600" <<< "$out" ||
  { echo "FAIL: --modality-list did not read both modalities: $(grep modality <<< "$out")" >&2; exit 1; }
printf 'video\tvideo.npy\n' > "$W/bad.tsv"
out=$("$SIM" --algorithm central --dataset "$DATA" --modality-list "$W/bad.tsv" 2>&1) && { echo "FAIL: a bad list was taken" >&2; exit 1; }
grep -q "bad.tsv:1: expected 'NAME<TAB>EMB.npy<TAB>IDS.txt'" <<< "$out" || { echo "FAIL: a bad list said: $out" >&2; exit 1; }
echo "sim_modalities: PASS"
