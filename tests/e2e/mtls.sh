#!/usr/bin/env bash
# Mutual TLS: with tls-client-ca set, a client with a certificate from that CA gets served;
# a client without one does not (UNAVAILABLE at the TLS handshake).
#   tests/e2e/mtls.sh BUILD_DIR
source "$(dirname "$0")/lib.sh" "$1" mtls
CAT="synthetic:users=200,items=60,dim=4,seed=1"
e2e_serve --catalogue "$CAT" --tls-client-ca "$W/certs/ca.pem"
grep -q '"mtls": true' "$W/coord.log" || fail "mTLS not on"
e2e_client 1 --catalogue "$CAT" --cert "$W/certs/client.pem" --key "$W/certs/client.key"
e2e_client 2 --catalogue "$CAT"
out=$("$CLIENT" sync --store "$W/c1.db" --max-syncs 1 2>&1)
grep -q "not selected, round 1, model 1" <<< "$out" || fail "with a certificate: $out"
out=$("$CLIENT" sync --store "$W/c2.db" --max-syncs 1 2>&1) || true
grep -q "CheckIn: UNAVAILABLE" <<< "$out" || fail "without a certificate: $out"
e2e_stop
echo "mtls: PASS"
