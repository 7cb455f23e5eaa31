#!/usr/bin/env bash
# The status page on the metrics port ("/"): after three rounds of four clients it shows the
# round, phase, survivors, the published model and the epsilon burn-down (an inline SVG whose
# points rise with every round, under the budget line), served as HTML with a restrictive
# Content-Security-Policy; /metrics still answers. Headless Chromium loads the page: its DOM is
# checked and a screenshot taken (skipped with a message without chromium).
#   tests/e2e/status_page.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" status_page
CAT="synthetic:users=500,items=100,dim=8,seed=3"
e2e_serve --catalogue "$CAT" --cohort 4 --min-cohort 4 --min-survivors 3 --rounds 3 --phase-ms 10000 --retry-ms 300 \
  --noise-multiplier 0.5 --budget 50 --workers 2 --dropout 0 --dishonest 0
mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users 4 --quiet)
pids=()
for i in 1 2 3 4; do
  e2e_client "$i" --catalogue "$CAT"
  "$CLIENT" import --store "$W/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null
  "$CLIENT" sync --store "$W/c$i.db" --rounds 3 > "$W/c$i.out" 2>&1 &
  pids+=($!)
done
for _ in $(seq 600); do
  [[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 3 ]] && break
  sleep 0.1
done
[[ $(grep -c '"event": "round_done"' "$W/coord.log") -ge 3 ]] || fail "three rounds did not finish"
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
curl -sf -D "$W/headers.txt" "http://127.0.0.1:$mport/" > "$W/page.html" || fail "no status page"
grep -qi '^content-type: text/html' "$W/headers.txt" || fail "the page is not text/html: $(cat "$W/headers.txt")"
grep -qi "^content-security-policy: default-src 'none'" "$W/headers.txt" || fail "no Content-Security-Policy"
curl -sf "http://127.0.0.1:$mport/metrics" | grep -q '^fedrec_rounds_total{outcome="published"} 3' || fail "/metrics"
check_dom() { # FILE: the page's DOM, as served or as Chromium rendered it
  $PY - "$1" <<'PY'
import re, sys
from html.parser import HTMLParser
class P(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids = {}; self.cur = None; self.rows = 0; self.in_recent = False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids[a["id"]] = {"tag": tag, "attrs": a, "text": ""}; self.cur = a["id"]
        if a.get("id") == "recent": self.in_recent = True
        if tag == "tr" and self.in_recent: self.rows += 1
    def handle_endtag(self, tag):
        if tag == "table": self.in_recent = False
        if tag in ("dd", "svg"): self.cur = None
    def handle_data(self, d):
        if self.cur in self.ids: self.ids[self.cur]["text"] += d
p = P(); p.feed(open(sys.argv[1]).read())
ids = p.ids
def need(cond, what):
    if not cond: print("FAIL", what); sys.exit(1)
for k in ("round", "phase", "survivors", "model", "epsilon", "burndown", "spent", "budget", "recent"):
    need(k in ids, f"no #{k}")
need(ids["round"]["text"].strip() == "4", f"round {ids['round']['text']!r}, want 4 (three done)")
need(re.fullmatch(r"\d of 4 \(min-survivors 3\)", ids["survivors"]["text"].strip()), f"survivors {ids['survivors']['text']!r}")
need(ids["model"]["text"].startswith("version 4,"), f"model {ids['model']['text']!r}")
pts = [tuple(map(float, q.split(","))) for q in ids["spent"]["attrs"]["points"].split()]
need(len(pts) == 3, f"{len(pts)} burn-down points, want 3")
need(all(pts[i][0] < pts[i + 1][0] and pts[i][1] > pts[i + 1][1] for i in range(2)), f"points do not rise round by round: {pts}")
yb = float(ids["budget"]["attrs"]["y1"])
need(all(y > yb for _, y in pts), "a point above the budget line")
need(p.rows == 4, f"{p.rows - 1} rows in the last rounds' table, want 3")
print(f"dom ok: round {ids['round']['text']}, phase {ids['phase']['text']}, survivors {ids['survivors']['text']}, points {pts}")
PY
}
check_dom "$W/page.html" || fail "the served page"
chrome=$(command -v chromium || command -v chromium-browser || true)
if [[ -z "$chrome" ]]; then
  echo "status page: no chromium, the page was checked as served only"
else
  timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$W/chromium" --virtual-time-budget=3000 \
    --dump-dom "http://127.0.0.1:$mport/" > "$W/dom.html" 2>/dev/null || fail "chromium --dump-dom"
  check_dom "$W/dom.html" || fail "the page as Chromium rendered it"
  timeout 120 "$chrome" --headless --no-sandbox --disable-gpu --user-data-dir="$W/chromium" --hide-scrollbars \
    --window-size=900,1000 --screenshot="$W/status.png" "http://127.0.0.1:$mport/" > /dev/null 2>&1 || fail "chromium --screenshot"
  $PY - "$W/status.png" <<'PY' || fail "the screenshot"
import struct, sys, zlib
b = open(sys.argv[1], "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", b[16:24])
assert (w, h) == (900, 1000), (w, h)
assert len(b) > 10000, f"{len(b)} bytes: an empty page?"
print(f"screenshot {w}x{h}, {len(b)} bytes")
PY
  [[ -n "${STATUS_PNG:-}" ]] && cp "$W/status.png" "$STATUS_PNG"
fi
e2e_stop
echo "status page: PASS"
