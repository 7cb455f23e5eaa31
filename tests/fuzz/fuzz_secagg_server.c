/* Fuzz target: the SecAgg+ server state machine under hostile messages. A small cohort of
 * honest clients runs a round; before each phase's honest messages, the input's records for
 * that phase are decoded (as the engine decodes what a device sends) and handed to the
 * server's entry point for the phase. The server must never read or write out of bounds
 * (the sanitizers check), and when it refused every hostile message, a round that finishes
 * must give the exact sum of the honest inputs it counted.
 *
 * Input: byte 0 (cohort size 3..8), byte 1 (bit 0: sparse graph), then records
 * [phase: 1 byte][length: 2 bytes LE][a wire message of that length]. Phase 3 records are
 * queries instead: their first byte is a client id for keylist/inbox. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/crypto.h"
#include "fedrec/secagg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { MAX_N = 8, DIM = 5 };

typedef struct {
  const uint8_t *data;
  size_t size;
  int accepted; /* a hostile message the server took */
} hostile;

/* Feeds every record of phase ph to the server. */
static void feed(fedrec_secagg_server *s, hostile *h, int ph, uint32_t n) {
  fedrec_error err;
  for (size_t at = 2; at + 3 <= h->size;) {
    int rph = h->data[at] % 5;
    size_t len = (size_t)h->data[at + 1] | (size_t)h->data[at + 2] << 8;
    const uint8_t *msg = h->data + at + 3;
    if (len > h->size - at - 3) len = h->size - at - 3;
    at += 3 + len;
    if (rph != ph) continue;
    if (ph == 3) { /* queries with an id from the input */
      uint32_t u = len ? msg[0] : n;
      fedrec_sa_keylist kl;
      fedrec_sa_boxes bx;
      fedrec_sa_survivors sv;
      (void)fedrec_secagg_server_keylist(s, u, &kl, &err);
      (void)fedrec_secagg_server_inbox(s, u, &bx, &err);
      (void)fedrec_secagg_server_survivors(s, &sv, &err);
      continue;
    }
    fedrec_sa_msg m;
    if (fedrec_sa_decode(&m, msg, len, 64, 64, &err) != FEDREC_OK) continue;
    fedrec_status st = FEDREC_ERR_PARSE;
    if (m.type == FEDREC_SA_MSG_KEYS) st = fedrec_secagg_server_on_keys(s, &m.u.keys, &err);
    else if (m.type == FEDREC_SA_MSG_BOXES)
      st = fedrec_secagg_server_on_boxes(s, m.u.boxes.count ? m.u.boxes.boxes[0].from : 0, &m.u.boxes, &err);
    else if (m.type == FEDREC_SA_MSG_MASKED) st = fedrec_secagg_server_on_masked(s, &m.u.masked, &err);
    else if (m.type == FEDREC_SA_MSG_REVEALS) st = fedrec_secagg_server_on_reveals(s, &m.u.reveals, &err);
    else if (m.type == FEDREC_SA_MSG_SIGNATURE) st = fedrec_secagg_server_on_signature(s, &m.u.signature, &err);
    if (st == FEDREC_OK) h->accepted = 1;
    fedrec_sa_msg_free(&m);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2 || fedrec_crypto_init() != FEDREC_OK) return 0;
  fedrec_secagg_params p = {.session = 9, .n = 3 + data[0] % 6, .bits = 16, .dim = DIM};
  p.k = (data[1] & 1) && p.n >= 5 ? 2 : p.n - 1;
  p.t = fedrec_secagg_degree(&p) / 2 + 1;
  for (int b = 0; b < 32; b++) p.graph_seed[b] = (uint8_t)(b * 7);
  hostile h = {data, size, 0};
  fedrec_error err;
  fedrec_secagg_server *s = fedrec_secagg_server_new(&p, NULL, &err);
  fedrec_secagg_client *c[MAX_N] = {0};
  uint32_t x[MAX_N][DIM], n = p.n, sum[DIM], want[DIM] = {0};
  int alive[MAX_N], masked[MAX_N] = {0};
  for (uint32_t u = 0; u < n; u++) {
    c[u] = fedrec_secagg_client_new(&p, u, NULL, NULL, &err);
    alive[u] = c[u] != NULL;
    for (int i = 0; i < DIM; i++) x[u][i] = (u * 31 + (uint32_t)i * 7) & 0xffff;
  }
  feed(s, &h, 0, n);
  for (uint32_t u = 0; u < n; u++) {
    fedrec_sa_keys k;
    if (alive[u] && (fedrec_secagg_client_advertise(c[u], &k, &err) || fedrec_secagg_server_on_keys(s, &k, &err)))
      alive[u] = 0;
  }
  if (fedrec_secagg_server_close_keys(s, &err)) goto done;
  feed(s, &h, 1, n);
  feed(s, &h, 3, n);
  for (uint32_t u = 0; u < n; u++) {
    fedrec_sa_keylist kl;
    fedrec_sa_boxes bx;
    if (alive[u] && (fedrec_secagg_server_keylist(s, u, &kl, &err) || fedrec_secagg_client_share(c[u], &kl, &bx, &err) ||
                     fedrec_secagg_server_on_boxes(s, u, &bx, &err)))
      alive[u] = 0;
  }
  if (fedrec_secagg_server_close_shares(s, &err)) goto done;
  feed(s, &h, 2, n);
  feed(s, &h, 3, n);
  for (uint32_t u = 0; u < n; u++) {
    fedrec_sa_boxes in;
    fedrec_sa_masked m;
    if (alive[u] && (fedrec_secagg_server_inbox(s, u, &in, &err) || fedrec_secagg_client_mask(c[u], &in, x[u], &m, &err) ||
                     fedrec_secagg_server_on_masked(s, &m, &err)))
      alive[u] = 0;
    else if (alive[u]) masked[u] = 1;
  }
  if (fedrec_secagg_server_close_masked(s, &err)) goto done;
  feed(s, &h, 4, n);
  feed(s, &h, 3, n);
  fedrec_sa_survivors sv;
  if (fedrec_secagg_server_survivors(s, &sv, &err)) goto done;
  for (uint32_t u = 0; u < n; u++) {
    fedrec_sa_reveals rv;
    if (alive[u] && (fedrec_secagg_client_unmask(c[u], &sv, &rv, &err) || fedrec_secagg_server_on_reveals(s, &rv, &err)))
      alive[u] = 0;
  }
  uint32_t summed = 0;
  if (fedrec_secagg_server_finish(s, sum, &summed, &err) == FEDREC_OK && !h.accepted) {
    for (uint32_t u = 0; u < n; u++)
      if (masked[u])
        for (int i = 0; i < DIM; i++) want[i] = (want[i] + x[u][i]) & 0xffff;
    if (memcmp(sum, want, sizeof want) != 0) abort(); /* a refused message changed the sum */
  }
done:
  for (uint32_t u = 0; u < n; u++) fedrec_secagg_client_free(c[u]);
  fedrec_secagg_server_free(s);
  return 0;
}
