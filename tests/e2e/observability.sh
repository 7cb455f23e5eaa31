#!/usr/bin/env bash
# deploy/prometheus and deploy/grafana against a running coordinator: every metric the alert
# rules, the Kubernetes scrape job and the dashboard's queries name is one the coordinator
# exports (scraped from its /metrics); the dashboard is valid JSON with a query in every panel;
# promtool checks the rules and the scrape config and runs the rules' unit tests
# (deploy/prometheus/fedrec-rules.test.yml). Skips without python3-yaml; the promtool part
# says so and is left out without promtool (Debian's prometheus package).
#   tests/e2e/observability.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" observability
$PY -c 'import yaml' 2>/dev/null || { echo "SKIPPED (needs python3-yaml; scripts/install-deps installs it)"; exit 77; }
e2e_serve --catalogue "synthetic:users=200,items=50,dim=4,seed=1" --budget 1000
curl -sf "http://127.0.0.1:$mport/metrics" > "$W/metrics.txt" || fail "no metrics"
e2e_stop
$PY - "$SRC" "$W/metrics.txt" <<'PY' || fail "the observability files name what the coordinator does not export"
import json, re, sys, yaml
src, metrics = sys.argv[1], sys.argv[2]
exported = {l.split()[2] for l in open(metrics) if l.startswith("# TYPE ")}
fails = 0
def bad(msg):
    global fails
    fails += 1
    print("FAIL", msg)
PROM_FUNCS = {"up"}  # series Prometheus makes itself
def names(expr):
    return set(re.findall(r"\b(fedrec_[a-z_]+)\b", expr))
rules = yaml.safe_load(open(f"{src}/deploy/prometheus/fedrec-rules.yml"))
n_rules = 0
for g in rules["groups"]:
    for r in g["rules"]:
        n_rules += 1
        for m in names(r["expr"]) - exported:
            bad(f"alert {r['alert']}: {m} is not exported")
        if not r.get("annotations", {}).get("runbook", "").startswith("docs/DEPLOY.md#"):
            bad(f"alert {r['alert']}: no runbook annotation")
        anchor = r["annotations"]["runbook"].split("#", 1)[1]
        if anchor != r["alert"].lower():
            bad(f"alert {r['alert']}: runbook anchor #{anchor} is not its section's (#{r['alert'].lower()})")
        if f"### {r['alert']}" not in open(f"{src}/docs/DEPLOY.md").read():
            bad(f"alert {r['alert']}: docs/DEPLOY.md has no section '### {r['alert']}' (runbook #{anchor})")
dash = json.load(open(f"{src}/deploy/grafana/fedrec-dashboard.json"))
n_q = 0
for p in dash["panels"]:
    if not p.get("targets"):
        bad(f"panel {p.get('title')}: no query")
    for t in p.get("targets", []):
        n_q += 1
        found = names(t["expr"])
        if not found:
            bad(f"panel {p['title']}: query {t['expr']} names no fedrec metric")
        for m in found - exported:
            bad(f"panel {p['title']}: {m} is not exported")
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    bad("dashboard panel ids repeat")
job = yaml.safe_load(open(f"{src}/deploy/prometheus/scrape-kubernetes.yml"))["scrape_configs"][0]
svc = [d for d in yaml.safe_load_all(open(f"{src}/deploy/k8s/base/service.yaml")) if d]
headless = [s for s in svc if (s["metadata"].get("labels") or {}).get("fedrec.dev/scrape") == "true"]
if job["kubernetes_sd_configs"][0]["role"] != "endpoints" or len(headless) != 1:
    bad("the scrape job must discover endpoints of the one Service labelled fedrec.dev/scrape=true")
else:
    keep_ports = [r["regex"] for r in job["relabel_configs"] if r.get("source_labels") == ["__meta_kubernetes_endpoint_port_name"]]
    if keep_ports != [p["name"] for p in headless[0]["spec"]["ports"] if p["name"] == "metrics"]:
        bad(f"the scrape job keeps ports {keep_ports}, not the Service's metrics port")
print(f"{len(exported)} metrics exported; {n_rules} alert rules and {n_q} dashboard queries name only those")
sys.exit(1 if fails else 0)
PY
if command -v promtool > /dev/null; then
  (cd "$SRC/deploy/prometheus" && promtool check config prometheus.yml && promtool test rules fedrec-rules.test.yml) ||
    fail "promtool"
else
  echo "promtool not found (Debian: prometheus): the rules were not checked by it"
fi
echo "observability: PASS"
