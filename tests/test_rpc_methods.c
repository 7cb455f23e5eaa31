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

int main(void) {
  const ProtobufCServiceDescriptor *services[] = {&fedrec__v1__coordinator_service__descriptor,
                                                  &grpc__health__v1__health__descriptor};
  unsigned total = 0;
  for (int s = 0; s < 2; s++) {
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
  if (!failures) printf("test_rpc_methods: %d methods, paths and types from the service descriptors\n", FEDREC_RPC_NMETHODS);
  return failures != 0;
}
