#!/usr/bin/env bash
# The metrics endpoint (libmicrohttpd) cannot be blocked or ended by a client: while one
# connection sends a byte a second (slowloris) and others send garbage, scrapes keep answering
# at once; a POST gets 405; IPv6 listening works; the endpoint is still up afterwards.
# (61d538e: one HTTP/1.0 thread; the slow connection blocked every scrape.)
#   tests/e2e/metrics.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" metrics
PY=/usr/bin/python3
ipv6=127.0.0.1
if $PY -c 'import socket; s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then ipv6="[::1]"; fi
MPORT=0
e2e_serve --catalogue "synthetic:users=200,items=50,dim=4,seed=1" --budget 1000 --metrics-listen "$ipv6:0"
host=${ipv6#[}; host=${host%]}
$PY - "$host" "$mport" <<'PY' || fail "scrapes were blocked"
import socket, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def connect():
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, port))
    return s
stop = False
def slowloris():  # one byte a second, never finishing the request
    s = connect()
    for ch in b"GET /metrics HTTP/1.1\r\nHost: x\r\n":
        if stop:
            break
        try:
            s.send(bytes([ch]))
        except OSError:
            break
        time.sleep(1)
threads = [threading.Thread(target=slowloris, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
junk = [connect() for _ in range(3)]
for j in junk:
    j.send(b"\x16\x03\x01garbage\r\n\r\n")
def scrape(method="GET"):
    t0 = time.time()
    s = connect()
    s.send(("%s /metrics HTTP/1.0\r\n\r\n" % method).encode())
    data = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        data += b
    return time.time() - t0, data
time.sleep(1.5)
worst = 0
for _ in range(5):
    dt, data = scrape()
    worst = max(worst, dt)
    assert b" 200 " in data.split(b"\r\n")[0] and b"fedrec_epsilon_spent" in data, data[:200]
dt, data = scrape("POST")
assert b" 405 " in data.split(b"\r\n")[0], data[:100]
stop = True
print("5 scrapes beside 3 slow and 3 garbage connections: slowest %.3f s; POST: 405" % worst)
sys.exit(0 if worst < 1.0 else 1)
PY
e2e_stop
echo "metrics endpoint: PASS (listening on $ipv6)"
