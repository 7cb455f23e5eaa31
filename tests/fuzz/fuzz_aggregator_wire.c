/* Fuzz target: what aggregators and the coordinator receive from each other (docs/DEPLOY.md,
 * "Aggregators"). The first byte picks the message: an assignment as an aggregator receives it
 * (GetAssignmentResponse, then fedrec_rpc_assignment_check), or a sum as the coordinator does
 * (SubmitAggregateRequest, then fedrec_rpc_aggregate_sum). Whatever the bytes, no crash; what
 * passes is usable: indices within the cohort, one ticket per member, a masked vector of
 * values below 2^bits with id 0. */
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fedrec_error err;
  if (data[0] & 1) {
    Fedrec__V1__GetAssignmentResponse *r = fedrec__v1__get_assignment_response__unpack(NULL, size - 1, data + 1);
    if (!r) return 0;
    if (fedrec_rpc_assignment_check(r, &err) == FEDREC_OK) {
      if (r->n_client != r->n_cohort_index || r->tickets.len != 16 * r->n_client || r->n_client > r->cohort_size) abort();
      for (size_t i = 0; i < r->n_cohort_index; i++)
        if (r->cohort_index[i] >= r->cohort_size) abort();
    }
    fedrec__v1__get_assignment_response__free_unpacked(r, NULL);
    return 0;
  }
  Fedrec__V1__SubmitAggregateRequest *q = fedrec__v1__submit_aggregate_request__unpack(NULL, size - 1, data + 1);
  if (!q) return 0;
  fedrec_sa_msg sm;
  if (fedrec_rpc_aggregate_sum(q, &sm, &err) == FEDREC_OK && sm.type == FEDREC_SA_MSG_MASKED) {
    if (!q->n_client || sm.u.masked.id != 0 || sm.bits < 1 || sm.bits > 32) abort();
    uint32_t over = 0;
    for (uint32_t k = 0; k < sm.u.masked.dim; k++) over |= sm.bits < 32 ? sm.u.masked.y[k] >> sm.bits : 0;
    if (over) abort();
    fedrec_sa_msg_free(&sm);
  } else if (sm.type == FEDREC_SA_MSG_MASKED) {
    abort(); /* a refused sum leaves nothing to free */
  }
  fedrec__v1__submit_aggregate_request__free_unpacked(q, NULL);
  return 0;
}
