#!/usr/bin/env bash
# deploy/k8s: the dev and production overlays rendered with kubectl kustomize (or, without
# kubectl, the base's files as they are) pass tests/deploy/check_k8s.py, and three broken
# copies of the dev render each fail it (the probe on the TLS port, a writable root filesystem,
# a misspelt config key), so the check can fail.
#   tests/e2e/k8s_manifests.sh BUILD_DIR   (skips without python3-yaml)
set -euo pipefail
B=$(cd "$1" && pwd)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PY=/usr/bin/python3
$PY -c 'import yaml' 2>/dev/null || { echo "SKIPPED (needs python3-yaml; scripts/install-deps installs it)"; exit 77; }
W=$(mktemp -d /tmp/fedrec-k8s.XXXXXX)
trap 'rm -rf "$W"' EXIT
COORD=$B/coordinator/fedrec-coordinator
CHECK="$PY $SRC/tests/deploy/check_k8s.py"
ext=(--external-secret fedrec-coordinator-tls --external-secret fedrec-coordinator-keys)
cp -r "$SRC/deploy/k8s" "$W/k8s"
rm -rf "$W/k8s/overlays/dev/secrets"
if command -v kubectl > /dev/null && kubectl kustomize "$W/k8s/base" > /dev/null 2>&1; then
  FEDREC_ROOT=$SRC "$W/k8s/overlays/dev/make-secrets" "$B" > /dev/null
  kubectl kustomize "$W/k8s/overlays/dev" > "$W/dev.yaml"
  kubectl kustomize "$W/k8s/overlays/production" > "$W/production.yaml"
  echo "== dev overlay"
  $CHECK "$W/dev.yaml" "$COORD"
  echo "== production overlay"
  $CHECK "$W/production.yaml" "$COORD" "${ext[@]}"
  broken=$W/dev.yaml
  grep -q 'fedrec-coordinator-keys-' "$W/dev.yaml" || { echo "FAIL: the dev overlay renders no keys Secret"; exit 1; }
else
  echo "== base (kubectl with kustomize not found: the overlays are not rendered)"
  $PY - "$W/k8s/base" > "$W/base.yaml" <<'PY'
import os, sys, yaml
base = sys.argv[1]
k = yaml.safe_load(open(f"{base}/kustomization.yaml"))
docs = []
for r in k["resources"]:
    docs += [d for d in yaml.safe_load_all(open(f"{base}/{r}")) if d]
for g in k.get("configMapGenerator", []):
    docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": g["name"]},
                 "data": {os.path.basename(f): open(f"{base}/{f}").read() for f in g["files"]}})
print(yaml.safe_dump_all(docs))
PY
  $CHECK "$W/base.yaml" "$COORD" "${ext[@]}"
  broken=$W/base.yaml
fi
args=()
[[ $broken == */base.yaml ]] && args=("${ext[@]}")
n=0
for edit in 's/port: 50052/port: 50051/' 's/readOnlyRootFilesystem: true/readOnlyRootFilesystem: false/' 's/^\( *\)min-cohort = /\1min-cohrt = /'; do
  sed "$edit" "$broken" > "$W/broken.yaml"
  cmp -s "$broken" "$W/broken.yaml" && { echo "FAIL: the edit $edit changed nothing"; exit 1; }
  if $CHECK "$W/broken.yaml" "$COORD" "${args[@]}" > "$W/out.txt" 2>&1; then
    echo "FAIL: a render broken by $edit passed"; cat "$W/out.txt"; exit 1
  fi
  echo "ok: broken by $edit: $(grep -m1 FAIL "$W/out.txt")"
  n=$((n + 1))
done
echo "k8s manifests: PASS ($n broken renders refused)"
