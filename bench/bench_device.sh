#!/usr/bin/env bash
# What a round costs one device, measured on real processes: a coordinator on loopback (TLS)
# with a synthetic catalogue of ITEMS items with 256-dimensional content, d = 32, head only or
# head + a free embedding per item, cohorts of 10; 10 fedrec-client processes each take part
# in round 1 (the first sync: catalogue and model downloaded) and then round 2 (the model
# only). For each device process: CPU seconds (user + system), peak RSS, and the store's size;
# bytes down (catalogue, model) from the coordinator's log, bytes up per device from the
# round's bytes_in. The two cores are shared by the 10 devices and the coordinator, so
# wall-clock times are not reported; CPU seconds are each process's own.
#   bench/bench_device.sh BUILD_DIR [ITEMS...]   (default: 10000 100000)
#   FREE="0 1000 all": head only (0), head + free embeddings for the first M items (a number:
#   the coordinator's free-items list, as an operator would list the top M), or for every
#   item (all). The update has 8 192 + 32 M coordinates, and each device draws its exact
#   Skellam share for every one: minutes of CPU for all of 10 000 items (see BENCHMARKS.md),
#   so phases get 15 minutes. Default: "0 1000".
# Prints one JSON line per configuration and round.
set -euo pipefail
B=$(cd "${1:?usage: bench/bench_device.sh BUILD_DIR [ITEMS...]}" && pwd)
shift
SRC=$(cd "$(dirname "$0")/.." && pwd)
ITEMS=("${@:-10000 100000}")
[[ $# -eq 0 ]] && ITEMS=(10000 100000)
COORD=$B/coordinator/fedrec-coordinator
CLIENT=$B/client/fedrec-client
N=10
W=$(mktemp -d /tmp/fedrec-bench-device.XXXXXX)
cpid=""
trap '[[ -n "$cpid" ]] && kill -9 "$cpid" 2>/dev/null; rm -rf "$W"' EXIT
"$SRC/scripts/gen-dev-certs" "$W/certs" 2>/dev/null

# runs "$@" and prints "user+sys seconds, peak RSS in KiB" of that process (python3's rusage)
measured() {
  /usr/bin/python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{r.ru_utime + r.ru_stime:.3f} {r.ru_maxrss} {rc}")' "$@"
}

for items in "${ITEMS[@]}"; do
  for free in ${FREE:-0 1000}; do
    S=$W/s-$items-$free
    rm -rf "$S" && mkdir -p "$S"
    CAT="synthetic:users=300,items=$items,dim=256,seed=3"
    "$COORD" init --state-dir "$S/state" > /dev/null 2>&1
    FREEFLAGS=(--free-embeddings 0)
    if [[ $free == all ]]; then
      FREEFLAGS=(--free-embeddings 1)
    elif [[ $free != 0 ]]; then # the synthetic catalogue's ids are i0, i1, ...
      seq 0 $((free - 1)) | sed 's/^/i/' > "$S/free.txt"
      FREEFLAGS=(--free-embeddings 0 --free-items "$S/free.txt")
    fi
    "$COORD" serve --state-dir "$S/state" --listen 127.0.0.1:0 --tls-cert "$W/certs/server.pem" --tls-key "$W/certs/server.key" \
      --catalogue "$CAT" --dim 32 "${FREEFLAGS[@]}" --cohort $N --min-cohort $N --min-survivors 8 --dropout 0.001 \
      --dishonest 0.001 --rounds 2 --phase-ms 900000 --retry-ms 300 --noise-multiplier 1 --clip 2 --budget 1000 \
      --chunk-kb 1024 2> "$S/coord.log" &
    cpid=$!
    for _ in $(seq 600); do grep -q '"event": "serving"' "$S/coord.log" && break; sleep 0.1; done
    port=$(grep -o '"port": [0-9]*' "$S/coord.log" | head -1 | grep -o '[0-9]*$')
    mapfile -t users < <("$B/sim/fedrec-sim" --dataset "$CAT" --print-train-users $N --quiet)
    for i in $(seq 1 $N); do
      "$COORD" token --state-dir "$S/state" --id "$i" |
        "$CLIENT" init --store "$S/c$i.db" --target "127.0.0.1:$port" --ca "$W/certs/ca.pem" --token - \
          --coordinator-key "@$S/state/identity.pub" --catalogue "$CAT" 2>/dev/null
      "$CLIENT" import --store "$S/c$i.db" --synthetic-user "${users[$((i - 1))]}" 2>/dev/null
      # the catalogue the device will use is the served one: drop the local generator's
      /usr/bin/python3 -c 'import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute("DELETE FROM settings WHERE k = ?", ("catalogue",)); db.commit()' "$S/c$i.db"
    done
    for round in 1 2; do
      for i in $(seq 1 $N); do measured "$CLIENT" sync --store "$S/c$i.db" --rounds 1 > "$S/m$i.$round" & done
      wait $(jobs -p | grep -v "^$cpid$") 2>/dev/null || true
      cat_bytes=$(grep -o '"event": "catalogue_created", [^}]*"bytes": [0-9]*' "$S/coord.log" | grep -o '[0-9]*$')
      model_bytes=$(grep -o '"event": "model_published", "version": '"$round"', "bytes": [0-9]*' "$S/coord.log" | grep -o '[0-9]*$')
      bytes_in=$(grep '"event": "round_done", "round": '"$round"',' "$S/coord.log" | grep -o '"bytes_in": [0-9]*' | grep -o '[0-9]*$')
      survivors=$(grep '"event": "round_done", "round": '"$round"',' "$S/coord.log" | grep -o '"survivors": [0-9]*' | grep -o '[0-9]*$')
      store=$(du -k "$S/c1.db" | cut -f1)
      /usr/bin/python3 - "$S" "$round" "$items" "$free" "${cat_bytes:-0}" "${model_bytes:-0}" "${bytes_in:-0}" "${survivors:-0}" "$store" <<'EOF'
import json, statistics, sys
s, rnd, items, free, cat, model, bin_, surv, store = sys.argv[1:]
rows = [open(f"{s}/m{i}.{rnd}").read().split() for i in range(1, 11)]
cpu = [float(r[0]) for r in rows]; rss = [int(r[1]) for r in rows]; ok = sum(r[2] == "0" for r in rows)
print(json.dumps({"name": "device_round", "items": int(items), "p": 256, "d": 32,
                  "free_embeddings": int(items) if free == "all" else int(free), "round": int(rnd), "devices_ok": ok,
                  "cpu_s_median": round(statistics.median(cpu), 3), "cpu_s_max": round(max(cpu), 3),
                  "peak_rss_mb_max": round(max(rss) / 1024, 1),
                  "down_bytes": (int(cat) if rnd == "1" else 0) + int(model),
                  "catalogue_bytes": int(cat), "model_bytes": int(model),
                  "up_bytes": int(bin_) // max(int(surv), 1), "store_kb": int(store)}))
EOF
    done
    kill -TERM "$cpid"
    wait "$cpid" 2>/dev/null || true
    cpid=""
  done
done
