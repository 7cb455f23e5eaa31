/* protobuf-c <-> gRPC byte buffers (see rpc.h). */
#include "rpc.h"
#include "fedrec/enrol.h"

#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct rpc_method {
  const ProtobufCServiceDescriptor *service;
  const char *name;
} rpc_method;

static const rpc_method METHODS[] = {
#define FEDREC_RPC_ROW(NAME, name, service, method) [FEDREC_RPC_##NAME] = {&service, method},
    FEDREC_RPC_MAP(FEDREC_RPC_ROW)
#undef FEDREC_RPC_ROW
};
_Static_assert(sizeof METHODS / sizeof *METHODS == FEDREC_RPC_NMETHODS, "one row per method");

static char paths[FEDREC_RPC_NMETHODS][96];
static const ProtobufCMethodDescriptor *found[FEDREC_RPC_NMETHODS];
static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Every method of the list from the generated descriptors; a name the .proto does not have
 * is a programming error caught by the first call (test_rpc_methods checks every one). */
static void resolve(void) {
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) {
    found[m] = protobuf_c_service_descriptor_get_method_by_name(METHODS[m].service, METHODS[m].name);
    if (!found[m]) {
      fprintf(stderr, "fedrec: RPC %s is not in service %s\n", METHODS[m].name, METHODS[m].service->name);
      abort();
    }
    snprintf(paths[m], sizeof paths[m], "/%s/%s", METHODS[m].service->name, found[m]->name);
  }
}

const char *fedrec_rpc_path(int m) {
  if (m < 0 || m >= FEDREC_RPC_NMETHODS) return NULL;
  pthread_once(&once, resolve);
  return paths[m];
}

const ProtobufCMessageDescriptor *fedrec_rpc_request(int m) {
  if (m < 0 || m >= FEDREC_RPC_NMETHODS) return NULL;
  pthread_once(&once, resolve);
  return found[m]->input;
}

const ProtobufCMessageDescriptor *fedrec_rpc_response(int m) {
  if (m < 0 || m >= FEDREC_RPC_NMETHODS) return NULL;
  pthread_once(&once, resolve);
  return found[m]->output;
}

int fedrec_rpc_submission(fedrec_phase phase) {
  switch (phase) {
  case FEDREC_PHASE_KEYS: return FEDREC_RPC_ADVERTISE_KEYS;
  case FEDREC_PHASE_SHARES: return FEDREC_RPC_SHARE_KEYS;
  case FEDREC_PHASE_MASKED: return FEDREC_RPC_SUBMIT_MASKED_INPUT;
  case FEDREC_PHASE_CONSISTENCY: return FEDREC_RPC_CONFIRM_SURVIVORS;
  case FEDREC_PHASE_UNMASK: return FEDREC_RPC_UNMASK;
  default: return -1;
  }
}

int fedrec_rpc_phase_to_pb(fedrec_phase phase) {
  switch (phase) {
  case FEDREC_PHASE_KEYS: return FEDREC__V1__PHASE__PHASE_ADVERTISE_KEYS;
  case FEDREC_PHASE_SHARES: return FEDREC__V1__PHASE__PHASE_SHARE_KEYS;
  case FEDREC_PHASE_MASKED: return FEDREC__V1__PHASE__PHASE_MASKED_INPUT;
  case FEDREC_PHASE_CONSISTENCY: return FEDREC__V1__PHASE__PHASE_CONSISTENCY;
  case FEDREC_PHASE_UNMASK: return FEDREC__V1__PHASE__PHASE_UNMASKING;
  default: return FEDREC__V1__PHASE__PHASE_UNSPECIFIED;
  }
}

int fedrec_rpc_phase_from_pb(int phase) {
  for (int p = FEDREC_PHASE_KEYS; p <= FEDREC_PHASE_UNMASK; p++)
    if (fedrec_rpc_phase_to_pb((fedrec_phase)p) == phase) return p;
  return -1;
}

grpc_byte_buffer *fedrec_rpc_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

/* protobuf-c allocates through this while unpacking: plain malloc (so the message is freed
 * with the default allocator), counted against a cap. Without it, unknown fields cost far more
 * than their bytes: a 16 MiB message of 2-byte unknown fields took 740 MiB. */
typedef struct capped {
  size_t used, cap;
  int refused; /* an allocation went past the cap */
} capped;

static void *capped_alloc(void *ctx, size_t n) {
  capped *c = ctx;
  if (n > c->cap - c->used) {
    c->refused = 1;
    return NULL;
  }
  void *p = malloc(n);
  if (p) c->used += malloc_usable_size(p) < c->cap - c->used ? malloc_usable_size(p) : c->cap - c->used;
  return p;
}

static void capped_free(void *ctx, void *p) {
  capped *c = ctx;
  if (!p) return;
  size_t n = malloc_usable_size(p);
  c->used = n < c->used ? c->used - n : 0;
  free(p);
}

ProtobufCMessage *fedrec_rpc_unpack_checked(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb, int strict,
                                            const char **why) {
  *why = "absent";
  if (!bb) return NULL;
  grpc_byte_buffer_reader r;
  *why = "unreadable";
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  size_t len = GRPC_SLICE_LENGTH(s);
  capped c = {0, 2 * len + FEDREC_RPC_UNPACK_SLACK, 0};
  ProtobufCAllocator a = {capped_alloc, capped_free, &c};
  ProtobufCMessage *m = protobuf_c_message_unpack(d, &a, len, GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  grpc_byte_buffer_reader_destroy(&r);
  *why = c.refused ? "needs more memory to decode than its size allows (unknown fields?)" : "malformed";
  if (m && strict && m->n_unknown_fields) { /* a field this version does not know: no use for it */
    protobuf_c_message_free_unpacked(m, NULL);
    *why = "has fields this coordinator does not know";
    return NULL;
  }
  return m;
}

ProtobufCMessage *fedrec_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  const char *why;
  return fedrec_rpc_unpack_checked(d, bb, 0, &why);
}

char *fedrec_rpc_read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = (cap ? cap * 2 : 8192);
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, 4096, f);
    len += got;
    if (got < 4096) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad || len > (1u << 20)) { /* a PEM larger than 1 MiB is not one */
    free(buf);
    return NULL;
  }
  buf[len] = 0;
  return buf;
}

void fedrec_rpc_round_info_to_pb(Fedrec__V1__RoundInfo *out, Fedrec__V1__SecAggParams *sa,
                                 Fedrec__V1__DdpParams *dp, const fedrec_round_info *in,
                                 uint32_t phase_ms_left) {
  fedrec__v1__round_info__init(out);
  fedrec__v1__sec_agg_params__init(sa);
  fedrec__v1__ddp_params__init(dp);
  out->round = in->round;
  out->model_version = in->model_version;
  out->cohort_index = in->cohort_index;
  out->alpha0 = in->alpha0;
  out->reg = in->reg;
  out->local_steps = in->local_steps;
  out->client_lr = in->client_lr;
  out->phase_ms_left = phase_ms_left;
  out->min_survivors = in->min_survivors;
  out->kind = in->kind == FEDREC_ROUND_COUNT  ? FEDREC__V1__ROUND_KIND__ROUND_KIND_COUNT
              : in->kind == FEDREC_ROUND_GRAM ? FEDREC__V1__ROUND_KIND__ROUND_KIND_GRAM
                                              : FEDREC__V1__ROUND_KIND__ROUND_KIND_MODEL;
  out->certificates.data = (uint8_t *)in->certs;
  out->certificates.len = in->certs ? in->certs_len : 0;
  sa->session = in->secagg.session;
  sa->cohort_size = in->secagg.n;
  sa->neighbours = in->secagg.k;
  sa->threshold = in->secagg.t;
  sa->bits = in->secagg.bits;
  sa->dim = in->secagg.dim;
  sa->active = in->secagg.active;
  sa->graph_seed.data = (uint8_t *)in->secagg.graph_seed;
  sa->graph_seed.len = sizeof in->secagg.graph_seed;
  dp->dim = in->ddp.dim;
  dp->clip = in->ddp.clip;
  dp->gamma = in->ddp.gamma;
  dp->bits = in->ddp.bits;
  dp->beta = in->ddp.beta;
  dp->round_seed = in->ddp.round_seed;
  dp->noise = in->ddp.noise == FEDREC_NOISE_SKELLAM  ? FEDREC__V1__NOISE_KIND__NOISE_KIND_SKELLAM
              : in->ddp.noise == FEDREC_NOISE_DGAUSS ? FEDREC__V1__NOISE_KIND__NOISE_KIND_DISCRETE_GAUSSIAN
                                                      : FEDREC__V1__NOISE_KIND__NOISE_KIND_NONE;
  dp->sigma2_num = in->ddp.sigma2_num;
  dp->sigma2_den = in->ddp.sigma2_den;
  out->secagg = sa;
  out->ddp = dp;
  if (in->aggregator_addr && in->aggregator_addr[0]) {
    out->aggregator = (char *)in->aggregator_addr;
    out->aggregator_ticket.data = (uint8_t *)in->ticket;
    out->aggregator_ticket.len = sizeof in->ticket;
  }
}

/* An aggregator's address as a hostile coordinator could send it: at most 255 printable
 * characters, no spaces, and a ticket of its size with it (or neither). */
static fedrec_status check_aggregator(fedrec_round_info *out, const Fedrec__V1__RoundInfo *in, fedrec_error *err) {
  const char *a = in->aggregator ? in->aggregator : "";
  size_t n = strlen(a);
  if (!n && !in->aggregator_ticket.len) return FEDREC_OK;
  int bad = n == 0 || n > 255 || in->aggregator_ticket.len != sizeof out->ticket;
  for (size_t i = 0; i < n && !bad; i++) bad = a[i] <= 0x20 || a[i] >= 0x7f;
  if (bad)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: aggregator address of %zu characters or ticket of %zu bytes "
                            "(want 1-255 printable characters and %zu bytes)", n, in->aggregator_ticket.len, sizeof out->ticket);
  out->aggregator = 1;
  out->aggregator_addr = a;
  memcpy(out->ticket, in->aggregator_ticket.data, sizeof out->ticket);
  return FEDREC_OK;
}

fedrec_status fedrec_rpc_round_info_from_pb(fedrec_round_info *out, const Fedrec__V1__RoundInfo *in,
                                            fedrec_error *err) {
  memset(out, 0, sizeof *out);
  if (!in->secagg || !in->ddp) return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: parameters missing");
  const Fedrec__V1__SecAggParams *sa = in->secagg;
  const Fedrec__V1__DdpParams *dp = in->ddp;
  if (sa->graph_seed.len != sizeof out->secagg.graph_seed)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: graph seed of %zu bytes", sa->graph_seed.len);
  out->round = in->round;
  out->model_version = in->model_version;
  out->cohort_index = in->cohort_index;
  out->alpha0 = in->alpha0;
  out->reg = in->reg;
  out->local_steps = in->local_steps;
  out->client_lr = in->client_lr;
  out->secagg.session = sa->session;
  out->secagg.n = sa->cohort_size;
  out->secagg.k = sa->neighbours;
  out->secagg.t = sa->threshold;
  out->secagg.bits = sa->bits;
  out->secagg.dim = sa->dim;
  out->secagg.active = sa->active;
  memcpy(out->secagg.graph_seed, sa->graph_seed.data, sizeof out->secagg.graph_seed);
  out->ddp.dim = dp->dim;
  out->ddp.clip = dp->clip;
  out->ddp.gamma = dp->gamma;
  out->ddp.bits = dp->bits;
  out->ddp.beta = dp->beta;
  out->ddp.round_seed = dp->round_seed;
  out->ddp.noise = dp->noise == FEDREC__V1__NOISE_KIND__NOISE_KIND_SKELLAM            ? FEDREC_NOISE_SKELLAM
                   : dp->noise == FEDREC__V1__NOISE_KIND__NOISE_KIND_DISCRETE_GAUSSIAN ? FEDREC_NOISE_DGAUSS
                                                                                        : FEDREC_NOISE_NONE;
  out->ddp.sigma2_num = dp->sigma2_num;
  out->ddp.sigma2_den = dp->sigma2_den;
  fedrec_status s = fedrec_secagg_check_params(&out->secagg, err);
  if (s) return s;
  if (in->cohort_index >= sa->cohort_size)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: cohort index %u of %u", in->cohort_index, sa->cohort_size);
  /* the length's range first: a padded length is only computed for a sane one */
  if (dp->dim < 1 || dp->dim > (1u << 28) || fedrec_ddp_padded(dp->dim) != sa->dim || dp->bits != sa->bits ||
      !(dp->clip > 0) || !(dp->gamma > 0) || !(dp->beta > 0 && dp->beta < 1))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: inconsistent encoding parameters (dim %u, padded %u, bits %u/%u)",
                            dp->dim, sa->dim, dp->bits, sa->bits);
  if (out->ddp.noise != FEDREC_NOISE_NONE &&
      (dp->sigma2_den < 1 || dp->sigma2_num < 1 ||
       (out->ddp.noise == FEDREC_NOISE_SKELLAM ? dp->sigma2_num >= (1ULL << 40) || dp->sigma2_den >= (1ULL << 40)
                                               : dp->sigma2_num >= (1ULL << 32) || dp->sigma2_den >= (1u << 16))))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: noise variance %llu/%llu out of range",
                            (unsigned long long)dp->sigma2_num, (unsigned long long)dp->sigma2_den);
  if (!(in->alpha0 >= 0 && in->alpha0 < 1e6) || !(in->reg > 0 && in->reg < 1e6))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: alpha0 %g, reg %g out of range", in->alpha0, in->reg);
  if (in->local_steps > 1000 || !(in->client_lr >= 0 && in->client_lr <= 1e6))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: %u local steps of size %g out of range (<= 1000, [0, 1e6])",
                            in->local_steps, in->client_lr);
  if (in->min_survivors > sa->cohort_size)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: min_survivors %u of a cohort of %u", in->min_survivors,
                            sa->cohort_size);
  out->min_survivors = in->min_survivors;
  switch (in->kind) {
    case FEDREC__V1__ROUND_KIND__ROUND_KIND_MODEL: out->kind = FEDREC_ROUND_MODEL; break;
    case FEDREC__V1__ROUND_KIND__ROUND_KIND_COUNT: out->kind = FEDREC_ROUND_COUNT; break;
    case FEDREC__V1__ROUND_KIND__ROUND_KIND_GRAM: out->kind = FEDREC_ROUND_GRAM; break;
    default: return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: round kind %d unknown (a newer coordinator?)", (int)in->kind);
  }
  /* the certificates are checked (signatures, repeats) by the participant; here their size */
  if (sa->active ? in->certificates.len != (size_t)sa->cohort_size * FEDREC_CERT_BYTES : in->certificates.len != 0)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: %zu bytes of certificates for %u members (%s variant)",
                            in->certificates.len, sa->cohort_size, sa->active ? "active" : "passive");
  out->certs = in->certificates.len ? in->certificates.data : NULL;
  out->certs_len = in->certificates.len;
  return check_aggregator(out, in, err);
}

grpc_status_code fedrec_rpc_call_raw(grpc_channel *ch, const char *method, void *handle, const char *token,
                                     const void *req, size_t len, uint32_t timeout_ms,
                                     grpc_byte_buffer **resp, char *details, size_t cap) {
  *resp = NULL;
  details[0] = 0;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_REALTIME), gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  grpc_call *call = handle ? grpc_channel_create_registered_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, handle, deadline, NULL)
                           : grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                      grpc_slice_from_static_string(method), NULL, deadline, NULL);
  grpc_metadata md;
  memset(&md, 0, sizeof md);
  if (token) {
    char bearer[256];
    snprintf(bearer, sizeof bearer, "Bearer %s", token);
    md.key = grpc_slice_from_static_string("authorization");
    md.value = grpc_slice_from_copied_string(bearer);
    memset(bearer, 0, sizeof bearer);
  }
  grpc_slice s = grpc_slice_from_copied_buffer(req, len);
  grpc_byte_buffer *send = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  grpc_metadata_array im, tm;
  grpc_metadata_array_init(&im);
  grpc_metadata_array_init(&tm);
  grpc_status_code status = GRPC_STATUS_UNKNOWN;
  grpc_slice det = grpc_empty_slice();
  const char *error_string = NULL;
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].data.send_initial_metadata.count = token ? 1 : 0;
  ops[0].data.send_initial_metadata.metadata = &md;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &im;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = resp;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.trailing_metadata = &tm;
  ops[5].data.recv_status_on_client.status = &status;
  ops[5].data.recv_status_on_client.status_details = &det;
  ops[5].data.recv_status_on_client.error_string = &error_string;
  int tag;
  grpc_call_error ce = grpc_call_start_batch(call, ops, 6, &tag, NULL);
  if (token) grpc_slice_unref(md.value);
  if (ce == GRPC_CALL_OK) {
    grpc_completion_queue_pluck(cq, &tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    snprintf(details, cap, "%.*s", (int)GRPC_SLICE_LENGTH(det), (const char *)GRPC_SLICE_START_PTR(det));
  } else {
    status = GRPC_STATUS_INTERNAL;
    snprintf(details, cap, "start_batch failed (%d)", (int)ce);
  }
  grpc_slice_unref(det);
  gpr_free((void *)error_string);
  grpc_metadata_array_destroy(&im);
  grpc_metadata_array_destroy(&tm);
  grpc_byte_buffer_destroy(send);
  if (status != GRPC_STATUS_OK && *resp) {
    grpc_byte_buffer_destroy(*resp);
    *resp = NULL;
  }
  grpc_call_unref(call);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type != GRPC_QUEUE_SHUTDOWN) {
  }
  grpc_completion_queue_destroy(cq);
  return status;
}

grpc_status_code fedrec_rpc_call(grpc_channel *ch, const char *method, void *handle, const char *token,
                                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                                 uint32_t timeout_ms, ProtobufCMessage **resp, char *details, size_t cap) {
  *resp = NULL;
  size_t n = protobuf_c_message_get_packed_size(req);
  uint8_t stackbuf[1024], *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
  if (!buf) {
    snprintf(details, cap, "out of memory packing %zu bytes", n);
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  protobuf_c_message_pack(req, buf);
  grpc_byte_buffer *bb = NULL;
  grpc_status_code st = fedrec_rpc_call_raw(ch, method, handle, token, buf, n, timeout_ms, &bb, details, cap);
  if (buf != stackbuf) free(buf);
  if (st == GRPC_STATUS_OK) {
    *resp = fedrec_rpc_unpack(rd, bb);
    if (!*resp) {
      st = GRPC_STATUS_INTERNAL;
      snprintf(details, cap, "malformed %s from the server", rd->short_name);
    }
  }
  if (bb) grpc_byte_buffer_destroy(bb);
  return st;
}

const char *fedrec_rpc_code_name(grpc_status_code s) {
  static const char *N[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                            "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
                            "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  return (unsigned)s < 17 ? N[s] : "?";
}

grpc_status_code fedrec_rpc_submit(grpc_channel *ch, int method, void *handle, const char *token,
                                   uint64_t round, const uint8_t *msg, size_t len, uint32_t timeout_ms,
                                   char *details, size_t cap) {
  Fedrec__V1__AdvertiseKeysRequest rq = FEDREC__V1__ADVERTISE_KEYS_REQUEST__INIT;
  rq.base.descriptor = fedrec_rpc_request(method); /* same fields, same numbers */
  rq.round = round;
  rq.message.data = (uint8_t *)msg;
  rq.message.len = len;
  ProtobufCMessage *r = NULL;
  grpc_status_code st = fedrec_rpc_call(ch, fedrec_rpc_path(method), handle, token, &rq.base,
                                        fedrec_rpc_response(method), timeout_ms, &r, details, cap);
  if (r) protobuf_c_message_free_unpacked(r, NULL);
  return st;
}

grpc_call_error fedrec_rpc_reply(grpc_call *call, grpc_byte_buffer *resp, grpc_status_code code, const char *details,
                                 int *cancelled, void *tag) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  int n = 0;
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA; /* mandatory, even for errors (guide pitfall 1) */
  ops[n++].data.send_initial_metadata.count = 0;
  if (resp) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = resp;
  }
  grpc_slice ds = grpc_slice_from_copied_string(details ? details : "");
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = code == GRPC_STATUS_OK ? NULL : &ds;
  ops[n++].data.send_status_from_server.trailing_metadata_count = 0;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = cancelled;
  grpc_call_error e = grpc_call_start_batch(call, ops, (size_t)n, tag, NULL);
  grpc_slice_unref(ds);
  return e;
}

int fedrec_rpc_bearer(const grpc_metadata_array *md, const char **value, size_t *len) {
  for (size_t i = 0; i < md->count; i++) {
    if (grpc_slice_str_cmp(md->metadata[i].key, "authorization")) continue;
    const char *p = (const char *)GRPC_SLICE_START_PTR(md->metadata[i].value);
    size_t n = GRPC_SLICE_LENGTH(md->metadata[i].value);
    if (n < 8 || memcmp(p, "Bearer ", 7)) return 0;
    *value = p + 7;
    *len = n - 7;
    return 1;
  }
  return 0;
}

fedrec_status fedrec_rpc_assignment_check(const Fedrec__V1__GetAssignmentResponse *r, fedrec_error *err) {
  size_t n = r->n_client;
  if (n != r->n_cohort_index || r->tickets.len != n * 16 || !n || n > r->cohort_size || r->cohort_size > FEDREC_SECAGG_MAX_CLIENTS ||
      r->dim < 1 || r->dim > (1u << 28) || r->bits < 1 || r->bits > 32)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "an assignment of %zu members (%zu indices, %zu ticket bytes) of a cohort of "
                            "%u, %u values at %u bits", n, r->n_cohort_index, r->tickets.len, r->cohort_size, r->dim, r->bits);
  for (size_t i = 0; i < n; i++)
    if (r->cohort_index[i] >= r->cohort_size)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "an assigned cohort index %u of %u", r->cohort_index[i], r->cohort_size);
  return FEDREC_OK;
}

fedrec_status fedrec_rpc_aggregate_sum(const Fedrec__V1__SubmitAggregateRequest *q, fedrec_sa_msg *sm, fedrec_error *err) {
  memset(sm, 0, sizeof *sm);
  if (q->n_client > UINT32_MAX || q->n_refused > UINT32_MAX)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "a sum of too many clients");
  if (!q->n_client) return FEDREC_OK; /* only refusals: no sum */
  fedrec_status st = fedrec_sa_decode(sm, q->sum.data, q->sum.len, 1, 1u << 28, err);
  if (st) {
    memset(sm, 0, sizeof *sm);
    return st;
  }
  if (sm->type == FEDREC_SA_MSG_MASKED && sm->u.masked.id == 0) return FEDREC_OK;
  fedrec_sa_msg_free(sm); /* a well-formed message of another kind */
  memset(sm, 0, sizeof *sm);
  return fedrec_error_set(err, FEDREC_ERR_PARSE, "the sum is not a masked-input message with id 0");
}
