#!/usr/bin/env bash
# Fusion where the truth is known (docs/MODEL.md "Multimodal content"): the synthetic generator's
# three modalities carry 90%, 50% and none of the items' true factors (strong, weak, noise; 30%
# and 10% of items lack the first two). Central iALS with the head alone on each modality and on
# all three: cold-item Recall@20 must order strong > weak > noise, the fusion must keep at least
# 95% of the strong modality's, and in the fusion the head must lean on them in that order
# (each modality's mean |H_m c_i^m|).
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
echo "sim_modalities: PASS"
