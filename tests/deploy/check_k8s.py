#!/usr/bin/env python3
"""Structural checks of rendered Kubernetes manifests for fedrec-coordinator (deploy/k8s/).

    check_k8s.py RENDERED.yaml COORDINATOR_BINARY [--external-secret NAME ...]

RENDERED.yaml: `kubectl kustomize OVERLAY` output (or base's files, concatenated). Checks what a
schema cannot: that the pieces fit together (selectors, named ports, the config's ports and
paths against the probes and mounts, every Secret either rendered or declared external) and
that the pod is locked down (non-root, read-only root, no privilege escalation, capabilities
dropped, requests and limits). The coordinator's own config parser judges the ConfigMap's
coordinator.conf (`fedrec-coordinator check-config`). Prints one line per failure; exit 1 if any.
"""
import os, re, subprocess, sys, tempfile

import yaml

KNOWN = {("v1", "ServiceAccount"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "Service"), ("v1", "Namespace"),
         ("v1", "PersistentVolumeClaim"), ("apps/v1", "StatefulSet"), ("networking.k8s.io/v1", "NetworkPolicy"),
         ("policy/v1", "PodDisruptionBudget")}
fails = []


def fail(msg):
    fails.append(msg)
    print("FAIL", msg)


def qty(s, cpu):
    """A resource quantity in base units (cores, bytes)."""
    s = str(s)
    m = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?", s)
    if not m:
        fail(f"quantity {s!r} does not parse")
        return 0
    v, u = float(m.group(1)), m.group(2) or ""
    return v * {"": 1, "m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9}[u]


def matches(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


def conf_of(text):
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v.strip()
    return out


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def check_container(pod_name, c, restricted_ok=True):
    sc = c.get("securityContext") or {}
    name = f"{pod_name}/{c['name']}"
    if sc.get("allowPrivilegeEscalation") is not False:
        fail(f"{name}: allowPrivilegeEscalation must be false")
    if sc.get("readOnlyRootFilesystem") is not True:
        fail(f"{name}: readOnlyRootFilesystem must be true")
    if sc.get("privileged"):
        fail(f"{name}: privileged")
    if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
        fail(f"{name}: capabilities must drop ALL")
    res = c.get("resources") or {}
    for kind in ("cpu", "memory"):
        req, lim = (res.get("requests") or {}).get(kind), (res.get("limits") or {}).get(kind)
        if req is None or lim is None:
            fail(f"{name}: resources.requests and limits of {kind} are required")
        elif qty(lim, kind == "cpu") < qty(req, kind == "cpu"):
            fail(f"{name}: {kind} limit {lim} below request {req}")
    if not c.get("image"):
        fail(f"{name}: no image")


def main():
    rendered, coord = sys.argv[1], sys.argv[2]
    external = set()
    args = sys.argv[3:]
    while args:
        if args[0] == "--external-secret" and len(args) > 1:
            external.add(args[1])
            args = args[2:]
        else:
            sys.exit(f"check_k8s: unknown argument {args[0]}")
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                fail(f"a document without {key}: {str(d)[:80]}")
        if (d.get("apiVersion"), d.get("kind")) not in KNOWN:
            fail(f"unexpected apiVersion/kind {d.get('apiVersion')}/{d.get('kind')}")
        if not (d.get("metadata") or {}).get("name"):
            fail(f"a {d.get('kind')} without metadata.name")
        by_kind.setdefault(d.get("kind"), []).append(d)
    names = {k: {d["metadata"]["name"]: d for d in v} for k, v in by_kind.items()}
    namespaces = {(d["metadata"].get("namespace")) for d in docs if d.get("kind") != "Namespace"}
    if len(namespaces) != 1:
        fail(f"objects in several namespaces: {namespaces}")

    sts = by_kind.get("StatefulSet", [])
    if len(sts) != 1:
        fail(f"want one StatefulSet, got {len(sts)}")
        return
    st = sts[0]
    spec, tpl = st["spec"], st["spec"]["template"]
    pod, labels = tpl["spec"], tpl["metadata"].get("labels") or {}
    if spec.get("replicas") != 1:
        fail("replicas must be 1 (SQLite has one writer)")
    if not matches(spec["selector"].get("matchLabels"), labels):
        fail("the StatefulSet's selector does not match its pod labels")
    if spec.get("serviceName") not in names.get("Service", {}):
        fail(f"serviceName {spec.get('serviceName')} is not a rendered Service")
    claims = {t["metadata"]["name"] for t in spec.get("volumeClaimTemplates") or []}
    if "state" not in claims:
        fail("no volumeClaimTemplate 'state'")
    psc = pod.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or not psc.get("runAsUser"):
        fail("the pod must run as a non-root user (runAsNonRoot, runAsUser)")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        fail("seccompProfile RuntimeDefault")
    if pod.get("automountServiceAccountToken") is not False:
        fail("automountServiceAccountToken must be false")
    if pod.get("serviceAccountName") not in names.get("ServiceAccount", {}):
        fail("serviceAccountName is not a rendered ServiceAccount")

    # volumes: every Secret rendered or declared external, every ConfigMap and claim rendered
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    secrets_used = set()
    for v in vols.values():
        if "secret" in v:
            secrets_used.add(v["secret"]["secretName"])
            mode = v["secret"].get("defaultMode", 0o644)
            if mode & 0o007:
                fail(f"volume {v['name']}: secret files readable by others (defaultMode {oct(mode)})")
        if "configMap" in v and v["configMap"]["name"] not in names.get("ConfigMap", {}):
            fail(f"volume {v['name']}: ConfigMap {v['configMap']['name']} is not rendered")
        if "persistentVolumeClaim" in v and v["persistentVolumeClaim"]["claimName"] not in names.get("PersistentVolumeClaim", {}):
            fail(f"volume {v['name']}: claim {v['persistentVolumeClaim']['claimName']} is not rendered")
    rendered_secrets = set(names.get("Secret", {}))
    for sname in secrets_used:
        if sname not in rendered_secrets and not any(sname == e for e in external):
            fail(f"Secret {sname} is neither rendered nor declared external")
    for e in external:
        if e not in secrets_used:
            fail(f"external Secret {e} is not used")

    containers = pod.get("containers") or []
    coordc = [c for c in containers if c["name"] == "coordinator"]
    if len(coordc) != 1:
        fail("no container 'coordinator'")
        return
    c = coordc[0]
    for x in containers + (pod.get("initContainers") or []):
        check_container("pod", x)
        for m in x.get("volumeMounts") or []:
            if m["name"] not in vols and m["name"] not in claims:
                fail(f"{x['name']}: mount of unknown volume {m['name']}")
    ports = {p["name"]: p["containerPort"] for p in c.get("ports") or []}
    for need in ("grpc", "health", "metrics"):
        if need not in ports:
            fail(f"the coordinator has no port named {need}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        g = (c.get(probe) or {}).get("grpc")
        if not g:
            fail(f"{probe}: a grpc probe is required")
        elif g.get("port") != ports.get("health"):
            fail(f"{probe}: port {g.get('port')} is not the health port {ports.get('health')}")

    # the config the pod reads: its ports and paths against the pod, and the coordinator's own judgement
    mounts = {m["mountPath"]: m for m in c.get("volumeMounts") or []}
    args = c.get("args") or []
    conf_path = args[args.index("--config") + 1] if "--config" in args else None
    cm_mount = mounts.get(conf_path)
    if not cm_mount:
        fail(f"--config {conf_path} is not mounted")
        return
    cm = names["ConfigMap"].get(vols[cm_mount["name"]]["configMap"]["name"])
    key = cm_mount.get("subPath") or os.path.basename(conf_path)
    text = (cm.get("data") or {}).get(key) if cm else None
    if text is None:
        fail(f"the ConfigMap has no {key}")
        return
    conf = conf_of(text)
    for k, want in (("listen", "grpc"), ("health-listen", "health"), ("metrics-listen", "metrics")):
        if k not in conf or port_of(conf[k]) != ports.get(want):
            fail(f"config {k} = {conf.get(k)} is not the container's {want} port {ports.get(want)}")
        elif not conf[k].startswith("0.0.0.0:") and not conf[k].startswith("[::]:"):
            fail(f"config {k} = {conf[k]} listens on one address only: the pod's must be reachable")

    def under_mount(path, what):
        for mp, m in mounts.items():
            if path == mp or path.startswith(mp.rstrip("/") + "/"):
                return m
        fail(f"config {what} = {path} is under no mount of the coordinator")
        return None

    sd = under_mount(conf.get("state-dir", ""), "state-dir")
    if sd and sd["name"] != "state":
        fail(f"state-dir is on volume {sd['name']}, not the PersistentVolumeClaim 'state'")
    for k in ("tls-cert", "tls-key"):
        m = under_mount(conf.get(k, ""), k)
        if m and "secret" not in vols.get(m["name"], {}):
            fail(f"{k} is not read from a Secret")
    for k in ("enrolment-authority",):
        if k in conf:
            under_mount(conf[k].lstrip("@"), k)
    if conf.get("catalogue", "").startswith(("npy:", "csv:")):
        for f in conf["catalogue"].split(":", 1)[1].split(","):
            under_mount(f, "catalogue")
    if conf.get("insecure") == "1":
        fail("insecure = 1 in a deployment")
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as f:
        f.write(text)
        f.flush()
        r = subprocess.run([coord, "check-config", "--config", f.name], capture_output=True, text=True)
        if r.returncode != 0:
            fail(f"fedrec-coordinator check-config refuses the ConfigMap's {key}: {r.stderr.strip()}")

    # Services, NetworkPolicy, PodDisruptionBudget select the pod and name its ports
    for svc in by_kind.get("Service", []):
        if not matches(svc["spec"].get("selector"), labels):
            fail(f"Service {svc['metadata']['name']} does not select the pod")
        for p in svc["spec"].get("ports") or []:
            tp = p.get("targetPort")
            if isinstance(tp, str) and tp not in ports:
                fail(f"Service {svc['metadata']['name']}: targetPort {tp} is not a container port")
    for np in by_kind.get("NetworkPolicy", []):
        if not matches(np["spec"]["podSelector"].get("matchLabels"), labels):
            fail("the NetworkPolicy does not select the pod")
        if set(np["spec"].get("policyTypes") or []) != {"Ingress", "Egress"}:
            fail("the NetworkPolicy must govern Ingress and Egress")
        for rule in np["spec"].get("ingress") or []:
            for p in rule.get("ports") or []:
                if isinstance(p.get("port"), str) and p["port"] not in ports:
                    fail(f"NetworkPolicy: port {p['port']} is not a container port")
                if p.get("port") in ("health", ports.get("health")):
                    fail("NetworkPolicy: the plaintext health port must not be open to other pods")
    pdbs = by_kind.get("PodDisruptionBudget", [])
    if len(pdbs) != 1 or not matches(pdbs[0]["spec"]["selector"].get("matchLabels"), labels):
        fail("one PodDisruptionBudget selecting the pod is required")
    elif ("minAvailable" in pdbs[0]["spec"]) == ("maxUnavailable" in pdbs[0]["spec"]):
        fail("the PodDisruptionBudget needs exactly one of minAvailable and maxUnavailable")
    print(f"check_k8s: {len(docs)} objects, {len(fails)} failures")
    sys.exit(1 if fails else 0)


if __name__ == "__main__":
    main()
