/* Fuzz target: the round information a device receives (a RoundInfo message from a possibly
 * hostile coordinator: protobuf-c, then fedrec_rpc_round_info_from_pb). Whatever the bytes,
 * no crash; what passes the checks is usable: secure-aggregation parameters the protocol
 * accepts, and a DP encoding of a sane length. */
#include <stdlib.h>

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
  }
  fedrec__v1__round_info__free_unpacked(m, NULL);
  return 0;
}
