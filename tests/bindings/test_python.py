"""The Python binding's test (tests/e2e/bindings.sh runs it as one device of a federated job):
the ctypes layouts against the compiler's (tests/bindings/abi.c), then open, record, sync until
training stops, recommend, explain, set the region, and the errors a caller sees. Prints
"REC item" lines for the script to compare with fedrec-client on the same store.
    python3 test_python.py ABI_PROGRAM STORE TARGET CA TOKEN_FILE KEY_FILE CATALOGUE ITEMS"""
import ctypes
import subprocess
import sys
import time

import fedrec_client as f


def check(ok, what):
    if not ok:
        print("FAIL: " + what, file=sys.stderr)
        sys.exit(1)


abi, store, target, ca, token_file, key_file, catalogue, items = sys.argv[1:9]
items = items.split(",")
layout = dict(line.rsplit(" ", 1) for line in subprocess.check_output([abi], text=True).splitlines())
mirror = {"fedrec_client_config": f._Config, "fedrec_sync_outcome": f._Outcome, "fedrec_explanation": f._Explanation,
          "fedrec_error": f._Error}
for name, value in layout.items():
    struct, _, field = name.partition(".")
    got = ctypes.sizeof(mirror[struct]) if not field else getattr(mirror[struct], field).offset
    check(got == int(value), f"ctypes layout: {name} is {got}, the compiler's {value}")

with open(token_file) as t, open(key_file) as k:
    c = f.Client(store, target=target, ca_file=ca, token=t.read().strip(), coordinator_key=k.read().strip(),
                 catalogue=catalogue)
for it in items:
    c.record(it, 1.0)
check(c.history_size() == (len(items), len(items)), f"history size {c.history_size()}")
try:
    c.record("no-such-item")
    check(False, "an unknown item was recorded")
except f.FedrecError as e:
    check(e.status == 5 and "no-such-item" in str(e), f"unknown item: {e.status} {e}")
participated = 0
for _ in range(400):
    try:
        o = c.sync()
    except f.FedrecError as e:
        check(e.failure == f.FAIL_NETWORK, f"sync failed ({e.failure}): {e}")
        time.sleep(min(e.retry_after_ms, 1000) / 1000)
        continue
    participated += o.result == f.PARTICIPATED
    if o.result == f.STOPPED:
        break
    time.sleep(min(o.retry_after_ms, 500) / 1000)
check(participated >= 1, "took part in no round")
check(c.model_version() >= 2, f"model version {c.model_version()}")
r = c.recommend(5)
check(len(r) == 5, f"recommend gave {r}")
check(all(it not in items for it, _ in r), "recommended a history item")
check(all(r[i][1] <= r[i - 1][1] for i in range(1, 5)), "scores not descending")
for it, _ in r:
    print("REC " + it)
x = c.explain(r[0][0])
check(x.by and x.history == len(items), f"explanation {x}")
check(abs(sum(v for _, v in x.by) + x.rest - x.score) <= 1e-3 * max(1, abs(x.score)), "contributions do not add up")
check(abs(x.score - r[0][1]) <= 1e-4 * max(1, abs(x.score)), "explain's score differs from recommend's")
c.set_region("DE,premium")
try:
    c.set_region("D E")
    check(False, "a malformed region was taken")
except f.FedrecError as e:
    check(e.status == 5, f"malformed region: {e.status}")
c.set_region("")
print(f"PARTICIPATED {participated}")
c.close()
try:
    c.recommend(1)
    check(False, "a closed handle answered")
except f.FedrecError as e:
    check(e.status == 8, f"closed handle: {e.status}")
try:
    f.Client(store + ".missing", must_exist=True)
    check(False, "a missing store was opened")
except f.FedrecError as e:
    check("does not exist" in str(e), f"missing store: {e}")
print("python binding: PASS")
