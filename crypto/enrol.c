/* Device certificates (see include/fedrec/enrol.h). */
#include "fedrec/enrol.h"

#include <stdlib.h>
#include <string.h>

enum { HEAD = 4, ID_AT = 4, PK_AT = 12, SIG_AT = 44, SIGNED = 16 + 8 + 32 };
static const uint8_t MAGIC[HEAD] = {'F', 'C', 1, 0};

static void signed_message(uint8_t msg[SIGNED], uint64_t client, const uint8_t pk[FEDREC_SIGN_PK_BYTES]) {
  memcpy(msg, "fedrec-device-v1", 16);
  for (int i = 0; i < 8; i++) msg[16 + i] = (uint8_t)(client >> (8 * i));
  memcpy(msg + 24, pk, FEDREC_SIGN_PK_BYTES);
}

void fedrec_cert_issue(uint8_t out[FEDREC_CERT_BYTES], uint64_t client, const uint8_t pk[FEDREC_SIGN_PK_BYTES],
                       const fedrec_identity *authority) {
  uint8_t msg[SIGNED];
  signed_message(msg, client, pk);
  memcpy(out, MAGIC, HEAD);
  memcpy(out + ID_AT, msg + 16, 8);
  memcpy(out + PK_AT, pk, FEDREC_SIGN_PK_BYTES);
  fedrec_sign(out + SIG_AT, msg, sizeof msg, authority);
}

fedrec_status fedrec_cert_check(const uint8_t *cert, size_t len, const uint8_t authority_pk[FEDREC_SIGN_PK_BYTES],
                                uint64_t *client, uint8_t pk[FEDREC_SIGN_PK_BYTES], fedrec_error *err) {
  if (len != FEDREC_CERT_BYTES)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "device certificate: %zu bytes, not %d", len, FEDREC_CERT_BYTES);
  if (memcmp(cert, MAGIC, HEAD)) return fedrec_error_set(err, FEDREC_ERR_PARSE, "device certificate: bad header (not 'FC' version 1)");
  uint64_t id = 0;
  for (int i = 0; i < 8; i++) id |= (uint64_t)cert[ID_AT + i] << (8 * i);
  uint8_t msg[SIGNED];
  signed_message(msg, id, cert + PK_AT);
  if (fedrec_verify(cert + SIG_AT, msg, sizeof msg, authority_pk))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "device certificate of client %llu: not signed by the enrolment authority",
                            (unsigned long long)id);
  if (client) *client = id;
  if (pk) memcpy(pk, cert + PK_AT, FEDREC_SIGN_PK_BYTES);
  return FEDREC_OK;
}

typedef struct {
  uint64_t id;
  const uint8_t *pk;
} entry;

static int by_id(const void *a, const void *b) {
  uint64_t x = ((const entry *)a)->id, y = ((const entry *)b)->id;
  return x < y ? -1 : x > y;
}

static int by_pk(const void *a, const void *b) {
  return memcmp(((const entry *)a)->pk, ((const entry *)b)->pk, FEDREC_SIGN_PK_BYTES);
}

/* 1 when two neighbours in sorted order are equal under cmp. */
static int repeats(entry *e, uint32_t n, int (*cmp)(const void *, const void *)) {
  qsort(e, n, sizeof *e, cmp);
  for (uint32_t i = 1; i < n; i++)
    if (!cmp(&e[i - 1], &e[i])) return 1;
  return 0;
}

fedrec_status fedrec_cert_cohort(const uint8_t *certs, size_t len, uint32_t n, uint32_t self,
                                 const uint8_t self_pk[FEDREC_SIGN_PK_BYTES],
                                 const uint8_t authority_pk[FEDREC_SIGN_PK_BYTES],
                                 uint8_t (*pks)[FEDREC_SIGN_PK_BYTES], fedrec_error *err) {
  if (!n || self >= n || len / FEDREC_CERT_BYTES != n || len % FEDREC_CERT_BYTES)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "cohort certificates: %zu bytes for %u members (cohort index %u)", len, n, self);
  entry *e = malloc((size_t)n * sizeof *e);
  if (!e) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "cohort certificates: %u", n);
  fedrec_status s = FEDREC_OK;
  for (uint32_t j = 0; j < n && !s; j++) {
    fedrec_error e2 = {0};
    if (fedrec_cert_check(certs + (size_t)j * FEDREC_CERT_BYTES, FEDREC_CERT_BYTES, authority_pk, &e[j].id, pks[j], &e2))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "cohort member %u: %s", j, e2.msg);
    e[j].pk = pks[j];
  }
  if (!s && memcmp(pks[self], self_pk, FEDREC_SIGN_PK_BYTES))
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "cohort certificates: the one at our index %u is not ours", self);
  if (!s && repeats(e, n, by_id))
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "cohort certificates: one client id certified at two cohort indices");
  if (!s && repeats(e, n, by_pk))
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "cohort certificates: one identity key at two cohort indices");
  free(e);
  return s;
}
