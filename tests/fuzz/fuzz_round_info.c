/* Fuzz target: the round information a device receives (a RoundInfo message from a possibly
 * hostile coordinator: protobuf-c, then fedrec_rpc_round_info_from_pb, then, in an active
 * round, the cohort's certificates as the participant checks them). Whatever the bytes, no
 * crash; what passes the checks is usable: secure-aggregation parameters the protocol accepts,
 * a DP encoding of a sane length, n certificates of the right size, an aggregator address of
 * 1-255 characters. */
#include <stdlib.h>
#include <string.h>

#include "fedrec/enrol.h"
#include "fedrec/secagg.h"
#include "rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  Fedrec__V1__RoundInfo *m = fedrec__v1__round_info__unpack(NULL, size, data);
  if (!m) return 0;
  fedrec_round_info info;
  fedrec_error err;
  if (fedrec_rpc_round_info_from_pb(&info, m, &err) == FEDREC_OK) {
    if (fedrec_secagg_check_params(&info.secagg, &err) != FEDREC_OK) abort();
    if (info.ddp.dim < 1 || info.secagg.dim < info.ddp.dim || info.secagg.bits != info.ddp.bits) abort();
    if (info.secagg.active != (info.certs != NULL) || (info.certs && info.certs_len != (size_t)info.secagg.n * FEDREC_CERT_BYTES))
      abort();
    if (info.aggregator && (!info.aggregator_addr || !info.aggregator_addr[0] || strlen(info.aggregator_addr) > 255)) abort();
    if (info.certs && info.secagg.n <= 64) { /* checked against some authority: refused, without a crash */
      uint8_t authority[FEDREC_SIGN_PK_BYTES] = {0}, self[FEDREC_SIGN_PK_BYTES] = {0}, pks[64][FEDREC_SIGN_PK_BYTES];
      memcpy(authority, info.certs, FEDREC_SIGN_PK_BYTES);
      (void)fedrec_cert_cohort(info.certs, info.certs_len, info.secagg.n, info.cohort_index, self, authority, pks, &err);
    }
  }
  fedrec__v1__round_info__free_unpacked(m, NULL);
  return 0;
}
