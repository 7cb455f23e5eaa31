/* fedrec-aggregator's work: the assignment polled from the coordinator, each device's masked
 * input checked and added into the round's sum mod 2^bits, and the sum sent once every
 * assigned device is in, or when the phase's deadline is near. What a device sends is
 * checked as the coordinator would check it (size, the secure-aggregation decoding, its
 * cohort index, the round's bits and length); a malformed one is refused and reported, so
 * that the coordinator leaves the device out as it would have. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "aggregator.h"
#include "fedrec/crypto.h"
#include "fedrec/internal/tool.h"
#include "fedrec/secagg.h"
#include "logj.h"

grpc_status_code agg_admit(aggregator *a, const grpc_metadata_array *md, uint32_t *slot, uint64_t *gen, char *details,
                           size_t cap) {
  const char *v;
  size_t n, bl = 0;
  uint8_t t[FEDREC_TICKET_BYTES];
  if (!fedrec_rpc_bearer(md, &v, &n) || n != 2 * FEDREC_TICKET_BYTES ||
      sodium_hex2bin(t, sizeof t, v, n, NULL, &bl, NULL) || bl != sizeof t) {
    snprintf(details, cap, "missing or malformed ticket (authorization: Bearer <the round info's aggregator_ticket, hex>)");
    return GRPC_STATUS_UNAUTHENTICATED;
  }
  grpc_status_code code = GRPC_STATUS_UNAUTHENTICATED;
  pthread_mutex_lock(&a->mu);
  uint32_t k = a->n;
  for (uint32_t i = 0; i < a->n; i++) /* every slot compared: the time says nothing of which matched */
    if (!sodium_memcmp(a->tickets + (size_t)i * FEDREC_TICKET_BYTES, t, sizeof t)) k = i;
  unsigned long long r = (unsigned long long)a->round;
  if (k == a->n) snprintf(details, cap, "this ticket is not for this aggregator's current round (%llu)", r);
  else if (a->sent && a->slots[k].state == SLOT_WAITING) {
    a->m.late++;
    code = GRPC_STATUS_FAILED_PRECONDITION;
    snprintf(details, cap, "round %llu: dropped: this aggregator sent its sum before this device's masked input came", r);
  } else if (a->slots[k].state == SLOT_WAITING) {
    a->slots[k].state = SLOT_BUSY;
    *slot = k;
    *gen = a->gen;
    code = GRPC_STATUS_OK;
  } else {
    int st = a->slots[k].state;
    code = st == SLOT_BUSY ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_FAILED_PRECONDITION;
    snprintf(details, cap, "round %llu: %s", r, st == SLOT_BUSY ? "a call with this ticket is in progress"
                                              : st == SLOT_REFUSED ? "left out: this device sent a malformed masked input"
                                                                   : "masked input already received (replay)");
  }
  pthread_mutex_unlock(&a->mu);
  sodium_memzero(t, sizeof t);
  return code;
}

/* The admitted call ends: its slot takes state st (when the assignment is still the one it
 * was admitted under). */
static void settle(aggregator *a, uint32_t slot, uint64_t gen, int st) {
  if (a->gen == gen && slot < a->n && a->slots[slot].state == SLOT_BUSY) a->slots[slot].state = st;
}

void agg_release(aggregator *a, uint32_t slot, uint64_t gen) {
  pthread_mutex_lock(&a->mu);
  settle(a, slot, gen, SLOT_WAITING);
  pthread_mutex_unlock(&a->mu);
}

grpc_status_code agg_take(aggregator *a, uint32_t slot, uint64_t gen, grpc_byte_buffer *req, char *details, size_t cap) {
  size_t bytes = req ? grpc_byte_buffer_length(req) : 0;
  pthread_mutex_lock(&a->mu);
  uint64_t round = a->round;
  uint32_t cohort = a->cohort, dim = a->dim, bits = a->bits, index = slot < a->n ? a->slots[slot].index : 0;
  pthread_mutex_unlock(&a->mu);
  grpc_status_code code = GRPC_STATUS_INVALID_ARGUMENT;
  const char *why = NULL;
  Fedrec__V1__SubmitMaskedInputRequest *q = NULL;
  fedrec_sa_msg sm;
  fedrec_error err = {0};
  memset(&sm, 0, sizeof sm);
  if (bytes > 4096 + 4 * (size_t)dim) {
    snprintf(details, cap, "a %zu-byte masked input; round %llu's takes at most %zu", bytes, (unsigned long long)round,
             4096 + 4 * (size_t)dim);
  } else if (!(q = (Fedrec__V1__SubmitMaskedInputRequest *)fedrec_rpc_unpack_checked(
                   &fedrec__v1__submit_masked_input_request__descriptor, req, 1, &why))) {
    snprintf(details, cap, "malformed SubmitMaskedInputRequest: %s", why);
  } else if (q->round != round) {
    code = GRPC_STATUS_FAILED_PRECONDITION;
    snprintf(details, cap, "round %llu: this aggregator collects round %llu", (unsigned long long)q->round, (unsigned long long)round);
  } else if (fedrec_sa_decode(&sm, q->message.data, q->message.len, cohort, dim, &err)) {
    snprintf(details, cap, "masked input: %s", err.msg);
  } else if (sm.type != FEDREC_SA_MSG_MASKED || sm.u.masked.id != index || sm.bits != bits || sm.u.masked.dim != dim) {
    snprintf(details, cap, "not this member's masked input (type %d, member %u of %u, %u values at %u bits; want member %u, "
             "%u values at %u bits)", sm.type, sm.type == FEDREC_SA_MSG_MASKED ? sm.u.masked.id : 0, cohort,
             sm.type == FEDREC_SA_MSG_MASKED ? sm.u.masked.dim : 0, sm.bits, index, dim, bits);
  } else {
    code = GRPC_STATUS_OK;
  }
  pthread_mutex_lock(&a->mu);
  if (code == GRPC_STATUS_OK && (a->gen != gen || a->sent || !a->sum)) {
    code = GRPC_STATUS_FAILED_PRECONDITION;
    a->m.late++;
    snprintf(details, cap, "round %llu: dropped: this aggregator sent its sum before this device's masked input came",
             (unsigned long long)round);
  } else if (code == GRPC_STATUS_OK) {
    uint32_t mask = bits >= 32 ? 0xffffffffu : (1u << bits) - 1;
    for (uint32_t k = 0; k < dim; k++) a->sum[k] = (a->sum[k] + sm.u.masked.y[k]) & mask;
    a->in_bytes += bytes;
    a->m.inputs++;
    a->m.bytes_in += bytes;
  } else if (code == GRPC_STATUS_INVALID_ARGUMENT) {
    a->m.refused++;
  }
  settle(a, slot, gen, code == GRPC_STATUS_OK ? SLOT_IN : code == GRPC_STATUS_INVALID_ARGUMENT ? SLOT_REFUSED : SLOT_WAITING);
  pthread_mutex_unlock(&a->mu);
  if (sm.type == FEDREC_SA_MSG_MASKED) fedrec_sa_msg_free(&sm);
  if (q) protobuf_c_message_free_unpacked(&q->base, NULL);
  return code;
}

/* Forgets the assignment (under mu). */
static void drop_assignment(aggregator *a) {
  free(a->slots), free(a->sum);
  if (a->tickets) fedrec_secret_free(a->tickets);
  a->slots = NULL, a->sum = NULL, a->tickets = NULL;
  a->round = 0, a->n = 0, a->open = 0, a->sent = 0, a->flush_at = 0, a->in_bytes = 0;
  a->gen++;
}

void agg_free(aggregator *a) {
  pthread_mutex_lock(&a->mu);
  drop_assignment(a);
  pthread_mutex_unlock(&a->mu);
}

/* A new assignment from the coordinator, checked as anything a peer sends (under mu). */
static int take_assignment(aggregator *a, const Fedrec__V1__GetAssignmentResponse *r, char *why, size_t cap) {
  size_t n = r->n_client;
  fedrec_error err = {0};
  if (fedrec_rpc_assignment_check(r, &err)) {
    snprintf(why, cap, "%.200s", err.msg);
    return 0;
  }
  if ((size_t)r->dim * r->bits / 8 > ((size_t)a->cfg.max_message_mb << 20)) { /* its devices' inputs could not arrive */
    snprintf(why, cap, "round %llu's masked inputs are %u values at %u bits, more than --max-message-mb %u",
             (unsigned long long)r->round, r->dim, r->bits, a->cfg.max_message_mb);
    return 0;
  }
  drop_assignment(a);
  a->slots = calloc(n, sizeof *a->slots);
  a->sum = calloc(r->dim, sizeof *a->sum);
  a->tickets = fedrec_secret_alloc(n * FEDREC_TICKET_BYTES);
  if (!a->slots || !a->sum || !a->tickets) {
    drop_assignment(a);
    snprintf(why, cap, "no memory for a sum of %u values", r->dim);
    return 0;
  }
  for (size_t i = 0; i < n; i++) a->slots[i] = (agg_slot){r->client[i], r->cohort_index[i], SLOT_WAITING, 0};
  memcpy(a->tickets, r->tickets.data, n * FEDREC_TICKET_BYTES);
  a->round = r->round, a->n = (uint32_t)n, a->cohort = r->cohort_size, a->dim = r->dim, a->bits = r->bits;
  a->m.rounds++;
  a->m.last_round = r->round;
  logj("info", "assignment", "\"round\": %llu, \"members\": %zu, \"cohort\": %u, \"dim\": %u, \"bits\": %u",
       (unsigned long long)r->round, n, r->cohort_size, r->dim, r->bits);
  return 1;
}

/* One GetAssignment: the current round's members, and when the masked phase ends. */
static void poll_once(aggregator *a) {
  Fedrec__V1__GetAssignmentRequest q = FEDREC__V1__GET_ASSIGNMENT_REQUEST__INIT;
  Fedrec__V1__GetAssignmentResponse *r = NULL;
  char details[512];
  grpc_status_code code = fedrec_rpc_call(a->up, fedrec_rpc_path(FEDREC_RPC_GET_ASSIGNMENT), a->up_handles[0], NULL, &q.base,
                                          &fedrec__v1__get_assignment_response__descriptor, a->cfg.call_ms, (ProtobufCMessage **)&r,
                                          details, sizeof details);
  pthread_mutex_lock(&a->mu);
  a->m.polls++;
  if (code != GRPC_STATUS_OK) {
    if (a->m.poll_failures++ % 50 == 0)
      logj("warn", "poll_failed", "\"code\": \"%s\", \"details\": \"%.200s\"", fedrec_rpc_code_name(code), details);
  } else if (!r->round) {
    if (a->round) drop_assignment(a); /* the round ended without (or after) our sum */
  } else {
    char why[256];
    if (r->round != a->round && !take_assignment(a, r, why, sizeof why)) logj("error", "bad_assignment", "\"reason\": \"%s\"", why);
    if (r->round == a->round && r->open && !a->flush_at) {
      /* send ahead of the coordinator's deadline: a fifth of the time left, 0.2 to 5 s */
      uint64_t left = r->phase_ms_left, margin = left / 5 < 200 ? 200 : left / 5 > 5000 ? 5000 : left / 5;
      a->open = 1;
      a->flush_at = fedrec_clock_ms() + (left > margin ? left - margin : 0);
    }
  }
  pthread_mutex_unlock(&a->mu);
  if (r) protobuf_c_message_free_unpacked(&r->base, NULL);
}

/* The sum to send now, if it is time (under mu): clients in it and refused ones not yet told;
 * NULL when not. The sum's buffer becomes the caller's. */
static uint32_t *take_sum(aggregator *a, uint64_t **clients, size_t *nc, uint64_t **refused, size_t *nr) {
  if (!a->round || a->sent) return NULL;
  uint32_t waiting = 0, in = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    waiting += a->slots[i].state == SLOT_WAITING || a->slots[i].state == SLOT_BUSY;
    in += a->slots[i].state == SLOT_IN;
  }
  int due = a->flush_at && fedrec_clock_ms() >= a->flush_at;
  if (waiting && !due) return NULL;
  *clients = malloc((in ? in : 1) * sizeof **clients);
  *refused = malloc(a->n * sizeof **refused);
  if (!*clients || !*refused) {
    free(*clients), free(*refused);
    return NULL;
  }
  *nc = *nr = 0;
  for (uint32_t i = 0; i < a->n; i++) {
    if (a->slots[i].state == SLOT_IN) (*clients)[(*nc)++] = a->slots[i].client, a->slots[i].state = SLOT_SENT;
    if (a->slots[i].state == SLOT_REFUSED && !a->slots[i].reported) (*refused)[(*nr)++] = a->slots[i].client, a->slots[i].reported = 1;
  }
  uint32_t *sum = a->sum;
  a->sum = NULL;
  a->sent = 1;
  return sum;
}

/* Sends the sum (the calling thread, outside the lock). */
static void send_sum(aggregator *a, uint64_t round, uint32_t *sum, uint32_t dim, uint32_t bits, uint64_t *clients, size_t nc,
                     uint64_t *refused, size_t nr) {
  fedrec_sa_masked m = {.id = 0, .dim = dim, .y = sum};
  size_t len = nc ? fedrec_sa_encode_masked(NULL, 0, &m, bits) : 0;
  uint8_t *buf = len ? malloc(len) : NULL;
  if (len && !buf) {
    logj("error", "sum_not_sent", "\"round\": %llu, \"reason\": \"no memory\"", (unsigned long long)round);
    return;
  }
  if (buf) fedrec_sa_encode_masked(buf, len, &m, bits);
  Fedrec__V1__SubmitAggregateRequest q = FEDREC__V1__SUBMIT_AGGREGATE_REQUEST__INIT;
  q.round = round;
  q.n_client = nc, q.client = clients;
  q.n_refused = nr, q.refused = refused;
  q.sum.data = buf, q.sum.len = len;
  Fedrec__V1__SubmitAggregateResponse *r = NULL;
  char details[512];
  uint64_t t0 = fedrec_clock_ms();
  grpc_status_code code = fedrec_rpc_call(a->up, fedrec_rpc_path(FEDREC_RPC_SUBMIT_AGGREGATE), a->up_handles[1], NULL, &q.base,
                                          &fedrec__v1__submit_aggregate_response__descriptor, a->cfg.call_ms, (ProtobufCMessage **)&r,
                                          details, sizeof details);
  if (r) protobuf_c_message_free_unpacked(&r->base, NULL);
  free(buf);
  pthread_mutex_lock(&a->mu);
  if (code == GRPC_STATUS_OK) a->m.sums++, a->m.bytes_out += len;
  else a->m.sum_failures++;
  pthread_mutex_unlock(&a->mu);
  if (code == GRPC_STATUS_OK)
    logj("info", "sum_sent", "\"round\": %llu, \"inputs\": %zu, \"refused\": %zu, \"bytes\": %zu, \"ms\": %llu", (unsigned long long)round,
         nc, nr, len, (unsigned long long)(fedrec_clock_ms() - t0));
  else
    logj("error", "sum_refused", "\"round\": %llu, \"inputs\": %zu, \"code\": \"%s\", \"details\": \"%.300s\"", (unsigned long long)round,
         nc, fedrec_rpc_code_name(code), details);
}

void *agg_poller(void *arg) {
  aggregator *a = arg;
  uint64_t last_poll = 0;
  while (!atomic_load(&a->stopping)) {
    if (fedrec_clock_ms() - last_poll >= a->cfg.poll_ms) {
      poll_once(a);
      last_poll = fedrec_clock_ms();
    }
    uint64_t *clients = NULL, *refused = NULL;
    size_t nc = 0, nr = 0;
    pthread_mutex_lock(&a->mu);
    uint64_t round = a->round;
    uint32_t dim = a->dim, bits = a->bits;
    uint32_t *sum = take_sum(a, &clients, &nc, &refused, &nr);
    pthread_mutex_unlock(&a->mu);
    if (sum && (nc || nr)) send_sum(a, round, sum, dim, bits, clients, nc, refused, nr);
    free(sum), free(clients), free(refused);
    struct timespec d = {0, 10 * 1000000};
    nanosleep(&d, NULL);
  }
  return NULL;
}

size_t agg_metrics_render(void *ctx, char *out, size_t cap) {
  aggregator *a = ctx;
  pthread_mutex_lock(&a->mu);
  agg_metrics m = a->m;
  uint32_t n = a->n;
  pthread_mutex_unlock(&a->mu);
  int len = snprintf(out, cap,
                     "# HELP fedrec_aggregator_inputs_total Masked inputs added into a sum.\n# TYPE fedrec_aggregator_inputs_total counter\n"
                     "fedrec_aggregator_inputs_total %llu\n"
                     "# HELP fedrec_aggregator_refused_total Malformed masked inputs refused (reported to the coordinator).\n"
                     "# TYPE fedrec_aggregator_refused_total counter\nfedrec_aggregator_refused_total %llu\n"
                     "# HELP fedrec_aggregator_late_total Masked inputs that came after the sum was sent.\n"
                     "# TYPE fedrec_aggregator_late_total counter\nfedrec_aggregator_late_total %llu\n"
                     "# HELP fedrec_aggregator_sums_total Sums the coordinator accepted.\n# TYPE fedrec_aggregator_sums_total counter\n"
                     "fedrec_aggregator_sums_total %llu\n"
                     "# HELP fedrec_aggregator_sum_failures_total Sums not accepted (their devices count as dropped).\n"
                     "# TYPE fedrec_aggregator_sum_failures_total counter\nfedrec_aggregator_sum_failures_total %llu\n"
                     "# HELP fedrec_aggregator_bytes_in_total Bytes of masked inputs received.\n"
                     "# TYPE fedrec_aggregator_bytes_in_total counter\nfedrec_aggregator_bytes_in_total %llu\n"
                     "# HELP fedrec_aggregator_bytes_out_total Bytes of sums sent to the coordinator.\n"
                     "# TYPE fedrec_aggregator_bytes_out_total counter\nfedrec_aggregator_bytes_out_total %llu\n"
                     "# HELP fedrec_aggregator_poll_failures_total Assignment polls that failed.\n"
                     "# TYPE fedrec_aggregator_poll_failures_total counter\nfedrec_aggregator_poll_failures_total %llu\n"
                     "# HELP fedrec_aggregator_round The round of the last assignment.\n# TYPE fedrec_aggregator_round gauge\n"
                     "fedrec_aggregator_round %llu\n"
                     "# HELP fedrec_aggregator_assigned Devices assigned in the current round.\n# TYPE fedrec_aggregator_assigned gauge\n"
                     "fedrec_aggregator_assigned %u\n",
                     (unsigned long long)m.inputs, (unsigned long long)m.refused, (unsigned long long)m.late,
                     (unsigned long long)m.sums, (unsigned long long)m.sum_failures, (unsigned long long)m.bytes_in,
                     (unsigned long long)m.bytes_out, (unsigned long long)m.poll_failures, (unsigned long long)m.last_round, n);
  return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
}
