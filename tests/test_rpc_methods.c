/* The RPC list (FEDREC_RPC_MAP) against the generated service descriptors: every method of
 * the .proto services is in the list once, and every entry resolves to a path and message
 * types. A method added to the .proto and not to the list fails here; one added to the list
 * without a handler fails to compile (coordinator/handlers.c). */
#include <stdio.h>
#include <string.h>

#include "rpc.h"

static int failures;
#define CHECK(cond, ...)                 \
  do {                                   \
    if (!(cond)) {                       \
      fprintf(stderr, "FAIL: " __VA_ARGS__); \
      fprintf(stderr, "\n");             \
      failures++;                        \
    }                                    \
  } while (0)

/* The round info's aggregator and ticket survive the wire; a hostile address or ticket is
 * refused before a device dials anything. */
static void aggregator_fields(void) {
  fedrec_round_info ri, back;
  memset(&ri, 0, sizeof ri);
  ri.round = 3, ri.model_version = 2, ri.cohort_index = 1, ri.min_survivors = 2;
  ri.secagg = (fedrec_secagg_params){7, 4, 3, 3, 20, 64, 0, {1}};
  ri.ddp = (fedrec_ddp_params){50, 1.0, 0.0625, 20, 0.5, 9, 1, 1000, 1};
  ri.alpha0 = 0.3f, ri.reg = 0.01f;
  ri.aggregator_addr = "agg-2.fedrec.svc:50061";
  for (int i = 0; i < 16; i++) ri.ticket[i] = (uint8_t)(i * 7 + 1);
  Fedrec__V1__RoundInfo pb;
  Fedrec__V1__SecAggParams sa;
  Fedrec__V1__DdpParams dp;
  fedrec_error err = {0};
  fedrec_rpc_round_info_to_pb(&pb, &sa, &dp, &ri, 100);
  fedrec_status st = fedrec_rpc_round_info_from_pb(&back, &pb, &err);
  CHECK(!st && back.aggregator == 1 && !strcmp(back.aggregator_addr, ri.aggregator_addr) && !memcmp(back.ticket, ri.ticket, 16),
        "aggregator fields round trip: %s", err.msg);
  const char *bad[] = {"agg 2:50061", "agg\n:1", ""};
  for (int k = 0; k < 3; k++) {
    pb.aggregator = (char *)bad[k];
    CHECK(fedrec_rpc_round_info_from_pb(&back, &pb, &err) == FEDREC_ERR_PARSE, "aggregator \"%s\" accepted", bad[k]);
  }
  pb.aggregator = (char *)ri.aggregator_addr;
  pb.aggregator_ticket.len = 15;
  CHECK(fedrec_rpc_round_info_from_pb(&back, &pb, &err) == FEDREC_ERR_PARSE, "a 15-byte ticket accepted");
  pb.aggregator = "";
  pb.aggregator_ticket.len = 0;
  CHECK(!fedrec_rpc_round_info_from_pb(&back, &pb, &err) && back.aggregator == 0, "no aggregator: %s", err.msg);
}

int main(void) {
  const ProtobufCServiceDescriptor *services[] = {&fedrec__v1__coordinator_service__descriptor,
                                                  &fedrec__v1__aggregator_service__descriptor,
                                                  &grpc__health__v1__health__descriptor};
  unsigned total = 0;
  for (int s = 0; s < 3; s++) {
    for (unsigned i = 0; i < services[s]->n_methods; i++) {
      char path[128];
      snprintf(path, sizeof path, "/%s/%s", services[s]->name, services[s]->methods[i].name);
      int found = 0;
      for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) found += !strcmp(fedrec_rpc_path(m), path);
      CHECK(found == 1, "%s is listed %d times in FEDREC_RPC_MAP", path, found);
      total++;
    }
  }
  CHECK(total == FEDREC_RPC_NMETHODS, "the services have %u methods, the list %d", total, (int)FEDREC_RPC_NMETHODS);
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) {
    CHECK(fedrec_rpc_request(m) && fedrec_rpc_response(m), "method %d has no message types", m);
    CHECK(fedrec_rpc_path(m)[0] == '/', "method %d path %s", m, fedrec_rpc_path(m));
  }
  CHECK(!strcmp(fedrec_rpc_path(FEDREC_RPC_CHECK_IN), "/fedrec.v1.CoordinatorService/CheckIn"), "CheckIn path %s",
        fedrec_rpc_path(FEDREC_RPC_CHECK_IN));
  CHECK(fedrec_rpc_request(FEDREC_RPC_UNMASK) == &fedrec__v1__unmask_request__descriptor, "Unmask request type");
  CHECK(!fedrec_rpc_path(-1) && !fedrec_rpc_path(FEDREC_RPC_NMETHODS) && !fedrec_rpc_request(FEDREC_RPC_NMETHODS),
        "out of range gives NULL");
  aggregator_fields();
  if (!failures) printf("test_rpc_methods: %d methods, paths and types from the service descriptors\n", FEDREC_RPC_NMETHODS);
  return failures != 0;
}
