#!/usr/bin/env bash
# The SDK as an app developer gets it: `cmake --install` into a fresh prefix, then a small app
# (tests/sdk/app.c) compiled with nothing but `pkg-config --cflags --libs fedrec-client` and
# run against a coordinator: it syncs (fetching the signed model), records plays and
# recommends. Also: every pkg-config file resolves, no internal header is installed, and every
# global symbol of the installed libraries is fedrec_-prefixed (fedrec__: internal).
source "$(dirname "$0")/lib.sh" "$1" install_sdk
P=$W/prefix
cmake --install "$B" --prefix "$P" >/dev/null || fail "cmake --install failed"
export PKG_CONFIG_PATH=$P/lib/pkgconfig
for pc in fedrec fedrec-core fedrec-crypto fedrec-ledger fedrec-engine fedrec-participant fedrec-client; do
  pkg-config --exists "$pc" || fail "pkg-config $pc: $(pkg-config --print-errors --exists "$pc" 2>&1)"
done
[ -e "$P/include/fedrec/client.h" ] || fail "fedrec/client.h not installed"
[ ! -e "$P/include/fedrec/internal" ] || fail "the internal headers were installed"
for lib in "$P"/lib/libfedrec_*.a; do
  bad=$(nm -g --defined-only "$lib" | awk 'NF == 3 && $3 !~ /^(fedrec_|grpc__health__v1__)/ {print $3}' | sort -u | head -5)
  [ -z "$bad" ] || fail "$(basename "$lib") exports symbols outside the fedrec_ namespace: $bad"
done
${CC:-cc} ${CC_FLAGS:-} -o "$W/app" "$SRC/tests/sdk/app.c" $(pkg-config --cflags --libs fedrec-client) ||
  fail "the app does not build with pkg-config --cflags --libs fedrec-client"
e2e_serve
"$COORD" token --state-dir "$W/state" --id 5 > "$W/token"
out=$("$W/app" "$W/app.db" "127.0.0.1:$port" "$W/certs/ca.pem" "$W/token" "$W/state/identity.pub" \
  "synthetic:users=2000,items=500,dim=16,seed=42" 2>&1) || fail "the app failed: $out"
grep -q "synced: model version 1" <<< "$out" || fail "the app did not sync the model: $out"
[ "$(grep -c '^recommended i[0-9]* ' <<< "$out")" = 5 ] || fail "the app did not recommend 5 items: $out"
grep -q "^recommended i3 " <<< "$out" && fail "the app recommended an item already played: $out"
e2e_stop
echo "OK: installed to a prefix, the app built with pkg-config fedrec-client synced, recorded and recommended"
