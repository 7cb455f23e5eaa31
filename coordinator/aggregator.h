/* fedrec-aggregator's parts (internal to coordinator/; docs/DEPLOY.md, "Aggregators"):
 *   aggregator_main.c  the command line, the gRPC server for devices, threads, metrics
 *   aggregator.c       the round's assignment, the devices' masked inputs added up, the sum
 *                      sent to the coordinator
 * The aggregator holds no key and no state across restarts: what it has not sent when it
 * stops is lost, and its devices count as dropped. */
#ifndef FEDREC_COORD_AGGREGATOR_H
#define FEDREC_COORD_AGGREGATOR_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fedrec/engine.h"
#include "rpc.h"

typedef struct agg_config {
  char listen[128], health_listen[128], metrics_listen[128], coordinator[256];
  char tls_cert[512], tls_key[512];       /* served to devices */
  char client_cert[512], client_key[512]; /* presented to the coordinator (from its aggregator-ca) */
  char ca[512];                           /* roots that verify the coordinator */
  uint32_t workers, poll_ms, call_ms, max_message_mb;
} agg_config;

/* A member assigned to this aggregator in the current round. */
enum { SLOT_WAITING, SLOT_BUSY, SLOT_IN, SLOT_SENT, SLOT_REFUSED };
typedef struct agg_slot {
  uint64_t client;
  uint32_t index;
  int state;
  int reported; /* refused, and the coordinator told */
} agg_slot;

typedef struct agg_metrics {
  uint64_t inputs, refused, late, sums, sum_failures, bytes_in, bytes_out, rounds, last_round, polls, poll_failures;
} agg_metrics;

typedef struct aggregator {
  agg_config cfg;
  pthread_mutex_t mu; /* everything below */
  uint64_t round;     /* 0: no assignment */
  uint64_t gen;       /* assignments taken so far: a call admitted under one is not added to the next */
  uint32_t cohort, dim, bits, n;
  int open, sent;     /* the phase is open; the sum has gone (later inputs are refused) */
  uint64_t flush_at;  /* when to send what is in (local clock; 0: not known yet) */
  agg_slot *slots;
  uint8_t *tickets;   /* n x FEDREC_TICKET_BYTES, secure memory */
  uint32_t *sum;      /* dim values mod 2^bits */
  uint64_t in_bytes;  /* of the inputs in the sum */
  agg_metrics m;
  grpc_channel *up;   /* to the coordinator */
  void *up_handles[2];
  atomic_int stopping;
} aggregator;

/* aggregator.c */
/* The member whose ticket the call's bearer token is, marked busy (*slot its index); else a
 * status and why. */
grpc_status_code agg_admit(aggregator *a, const grpc_metadata_array *md, uint32_t *slot, uint64_t *gen, char *details,
                           size_t cap);
/* The admitted member's SubmitMaskedInput (its request bytes): checked and added into the sum,
 * or refused; the member is no longer busy. */
grpc_status_code agg_take(aggregator *a, uint32_t slot, uint64_t gen, grpc_byte_buffer *req, char *details, size_t cap);
/* The admitted call went away before its message came: the member may call again. */
void agg_release(aggregator *a, uint32_t slot, uint64_t gen);
/* The poller: the assignment every poll_ms, the sum sent when every member is in or the
 * deadline is near. Runs until stopping. */
void *agg_poller(void *arg);
void agg_free(aggregator *a);
/* The Prometheus text (a metrics_render_fn). */
size_t agg_metrics_render(void *ctx, char *out, size_t cap);

#endif
