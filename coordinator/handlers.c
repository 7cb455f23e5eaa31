/* The coordinator's RPC handlers: one function per method of FEDREC_RPC_MAP (protos/rpc.h),
 * in a table made from that list, so that a method without a handler does not compile; the
 * token check and the deny list; the request size each method can need. Each handler runs
 * with the engine locked and the request unpacked (strictly: unknown fields refused). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedrec/internal/tool.h"
#include "server.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

static int is_revoked(server *s, uint64_t client) {
  pthread_mutex_lock(&s->revoke_mu);
  int r = s->nrevoked && bsearch(&client, s->revoked, s->nrevoked, sizeof client, cmp_u64);
  pthread_mutex_unlock(&s->revoke_mu);
  return r;
}

/* Rereads the deny list (under s->mu, which guards the store). */
void reload_revoked(server *s) {
  uint64_t *ids;
  size_t n;
  fedrec_error err = {0};
  if (coord_store_revoked(s->store, &ids, &n, &err)) {
    logj("error", "revoked_unreadable", "\"reason\": \"%s\"", err.msg);
    return;
  }
  pthread_mutex_lock(&s->revoke_mu);
  free(s->revoked);
  s->revoked = ids, s->nrevoked = n;
  pthread_mutex_unlock(&s->revoke_mu);
}

/* The client id from "authorization: Bearer <token>": 1 when the token is genuine, unexpired
 * and not revoked; else 0 and why in details. */
int authenticate(server *s, call *c, uint64_t *client, char *details, size_t dcap) {
  const char *p;
  size_t n;
  uint64_t expiry = 0;
  fedrec_token_verdict t = !fedrec_rpc_bearer(&c->md, &p, &n) ? FEDREC_TOKEN_INVALID
                           : fedrec_token_check(p, n, s->token_secret, (uint64_t)time(NULL), client, &expiry);
  if (t == FEDREC_TOKEN_EXPIRED) snprintf(details, dcap, "token expired (ask the operator for a new one)");
  else if (t == FEDREC_TOKEN_VALID && is_revoked(s, *client)) snprintf(details, dcap, "token revoked");
  else if (t == FEDREC_TOKEN_VALID) return 1;
  else snprintf(details, dcap, "missing or invalid token (authorization: Bearer <token>)");
  return 0;
}

static grpc_status_code status_of(fedrec_status st) {
  switch (st) {
  case FEDREC_OK: return GRPC_STATUS_OK;
  case FEDREC_ERR_STATE: return GRPC_STATUS_FAILED_PRECONDITION;
  case FEDREC_ERR_PARSE:
  case FEDREC_ERR_ARG: return GRPC_STATUS_INVALID_ARGUMENT;
  case FEDREC_ERR_AUTH: return GRPC_STATUS_PERMISSION_DENIED;
  case FEDREC_ERR_NOMEM:
  case FEDREC_ERR_LIMIT: return GRPC_STATUS_RESOURCE_EXHAUSTED;
  default: return GRPC_STATUS_INTERNAL;
  }
}

/* The served catalogue's description (ci's hash points into s). */
static void catalogue_info(server *s, Fedrec__V1__CatalogueInfo *ci) {
  fedrec__v1__catalogue_info__init(ci);
  ci->version = s->cat.version;
  ci->size_bytes = s->cat.len;
  ci->blake2b_hash.data = s->cat.hash;
  ci->blake2b_hash.len = 32;
}

/* The served model's description, with its catalogue's in ci. */
static void model_info(server *s, Fedrec__V1__ModelInfo *mi, Fedrec__V1__CatalogueInfo *ci, fedrec_published *p) {
  fedrec_engine_model(s->engine, p);
  fedrec__v1__model_info__init(mi);
  if (p->has_catalogue) {
    catalogue_info(s, ci);
    mi->catalogue = ci;
  }
  mi->version = p->version;
  mi->size_bytes = p->len;
  mi->blake2b_hash.data = p->hash;
  mi->blake2b_hash.len = 32;
  mi->signature.data = p->sig;
  mi->signature.len = FEDREC_SIG_BYTES;
  mi->ledger_entries = p->ledger_entries;
  mi->ledger_head.data = p->ledger_head;
  mi->ledger_head.len = 32;
}

/* Runs one call's handler: the response buffer (on OK), or a status and details. */
/* The largest request each method can legitimately need: a few fields for queries, one key
 * pair, a cohort's share boxes or reveals, one masked input of the model's padded length. */
size_t method_cap(server *s, int m) {
  size_t cohort = s->cfg.e.cohort;
  switch (m) {
  case FEDREC_RPC_ADVERTISE_KEYS: return 4096;
  case FEDREC_RPC_SHARE_KEYS:
  case FEDREC_RPC_UNMASK: return 4096 + cohort * (FEDREC_SA_BOX_BYTES + 64);
  case FEDREC_RPC_SUBMIT_MASKED_INPUT:
  case FEDREC_RPC_SUBMIT_AGGREGATE: { /* a sum also names its clients (and those refused): 11 bytes each at most */
    pthread_mutex_lock(&s->mu);
    const fedrec_model *md = fedrec_engine_current_model(s->engine);
    int64_t p = fedrec_model_params(md), items = md->n_items;
    size_t d = fedrec_ddp_padded((uint32_t)(p > items ? p : items));
    pthread_mutex_unlock(&s->mu);
    return 4096 + 4 * d + (m == FEDREC_RPC_SUBMIT_AGGREGATE ? 2 * 11 * cohort : 0);
  }
  default: return 1024; /* CheckIn, GetModel, GetRoundInfo, GetPhaseInput, Health */
  }
}

typedef fedrec_status (*handler)(request *r);

static fedrec_status handle_check_in(request *r) {
  server *s = r->s;
  Fedrec__V1__CheckInResponse resp = FEDREC__V1__CHECK_IN_RESPONSE__INIT;
  Fedrec__V1__ModelInfo mi;
  Fedrec__V1__CatalogueInfo ci;
  fedrec_published p;
  int acc = 0;
  uint64_t round = fedrec_engine_round(s->engine);
  uint32_t retry = s->cfg.e.retry_ms;
  fedrec_status st = FEDREC_OK;
  /* a catalogue update waits for the selection to be empty (between rounds): none joins it
   * meanwhile, and the ticker applies the update within a tick */
  int held = s->pending && fedrec_engine_phase(s->engine) == FEDREC_PHASE_SELECTING;
  const Fedrec__V1__CheckInRequest *q = (const Fedrec__V1__CheckInRequest *)r->rq;
  if (!q->model_only && !held)
    st = fedrec_engine_checkin_cert(s->engine, r->client, q->certificate.data, q->certificate.len, r->now, &acc, &round,
                                    &retry, &r->err);
  if (st) return st;
  s->m.checkins++;
  s->m.accepted += acc != 0;
  model_info(s, &mi, &ci, &p);
  resp.accepted = acc;
  resp.round = round;
  resp.retry_after_ms = acc ? 0 : retry;
  resp.model = &mi;
  resp.stopped_reason = (char *)fedrec_engine_stop_reason(s->engine);
  r->c->resp = fedrec_rpc_pack(&resp.base);
  return FEDREC_OK;
}

/* One chunk of a served artefact (the model or the catalogue): the version asked for must be
 * the one served, the offset inside it; at most chunk-kb (or the request's max_bytes). */
static fedrec_status chunk_of(request *r, const char *what, uint64_t version, uint64_t served, const uint8_t *blob, size_t len,
                              uint64_t offset, uint32_t max_bytes, ProtobufCBinaryData *out) {
  if (version != served)
    return fedrec_error_set(&r->err, FEDREC_ERR_STATE, "%s version %llu is not served; the current one is %llu", what,
                            (unsigned long long)version, (unsigned long long)served);
  if (offset > len)
    return fedrec_error_set(&r->err, FEDREC_ERR_ARG, "offset %llu beyond the %s's %zu bytes", (unsigned long long)offset, what, len);
  size_t chunk = (size_t)r->s->cfg.chunk_kb * 1024, want = max_bytes && max_bytes < chunk ? max_bytes : chunk;
  out->data = (uint8_t *)blob + offset;
  out->len = len - (size_t)offset < want ? len - (size_t)offset : want;
  r->s->m.bytes_out += out->len;
  return FEDREC_OK;
}

static fedrec_status handle_get_model(request *r) {
  Fedrec__V1__GetModelRequest *q = (Fedrec__V1__GetModelRequest *)r->rq;
  Fedrec__V1__GetModelResponse resp = FEDREC__V1__GET_MODEL_RESPONSE__INIT;
  Fedrec__V1__ModelInfo mi;
  Fedrec__V1__CatalogueInfo ci;
  fedrec_published p;
  model_info(r->s, &mi, &ci, &p);
  fedrec_status st = chunk_of(r, "model", q->version, p.version, p.blob, p.len, q->offset, q->max_bytes, &resp.chunk);
  if (st) return st;
  resp.model = &mi;
  resp.offset = q->offset;
  r->c->resp = fedrec_rpc_pack(&resp.base);
  return FEDREC_OK;
}

static fedrec_status handle_get_catalogue(request *r) {
  server *s = r->s;
  Fedrec__V1__GetCatalogueRequest *q = (Fedrec__V1__GetCatalogueRequest *)r->rq;
  Fedrec__V1__GetCatalogueResponse resp = FEDREC__V1__GET_CATALOGUE_RESPONSE__INIT;
  Fedrec__V1__CatalogueInfo ci;
  catalogue_info(s, &ci);
  fedrec_status st = chunk_of(r, "catalogue", q->version, s->cat.version, s->cat.blob, s->cat.len, q->offset, q->max_bytes, &resp.chunk);
  if (st) return st;
  resp.catalogue = &ci;
  resp.offset = q->offset;
  r->c->resp = fedrec_rpc_pack(&resp.base);
  return FEDREC_OK;
}

static fedrec_status handle_get_round_info(request *r) {
  server *s = r->s;
  Fedrec__V1__GetRoundInfoRequest *q = (Fedrec__V1__GetRoundInfoRequest *)r->rq;
  Fedrec__V1__GetRoundInfoResponse resp = FEDREC__V1__GET_ROUND_INFO_RESPONSE__INIT;
  Fedrec__V1__RoundInfo ri;
  Fedrec__V1__SecAggParams sa;
  Fedrec__V1__DdpParams dp;
  fedrec_round_info info;
  uint32_t retry;
  fedrec_status st = fedrec_engine_round_info(s->engine, r->client, q->round, r->now, &info, &retry, &r->err);
  if (st) return st;
#ifdef FEDREC_MALICIOUS /* tests/malicious_coordinator.c only */
  if (!retry) malicious_round_info(&info, &s->id);
#endif
  resp.retry_after_ms = retry;
  if (!retry && info.aggregator && info.aggregator <= s->naggs) info.aggregator_addr = s->aggs[info.aggregator - 1].addr;
  if (!retry) {
    uint64_t dl = fedrec_engine_deadline(s->engine);
    fedrec_rpc_round_info_to_pb(&ri, &sa, &dp, &info, dl > r->now ? (uint32_t)(dl - r->now) : 0);
    resp.info = &ri;
  }
  r->c->resp = fedrec_rpc_pack(&resp.base);
  return FEDREC_OK;
}

static fedrec_status handle_get_phase_input(request *r) {
  server *s = r->s;
  Fedrec__V1__GetPhaseInputRequest *q = (Fedrec__V1__GetPhaseInputRequest *)r->rq;
  Fedrec__V1__GetPhaseInputResponse resp = FEDREC__V1__GET_PHASE_INPUT_RESPONSE__INIT;
  uint8_t *out = NULL;
  size_t len = 0;
  uint32_t retry;
  int phase = fedrec_rpc_phase_from_pb((int)q->phase);
  if (phase < FEDREC_PHASE_SHARES)
    return fedrec_error_set(&r->err, FEDREC_ERR_ARG, "phase %d has no input to fetch", (int)q->phase);
  fedrec_status st = fedrec_engine_fetch(s->engine, r->client, q->round, (fedrec_phase)phase, r->now, &out, &len, &retry, &r->err);
  if (st) return st;
#ifdef FEDREC_MALICIOUS /* tests/malicious_coordinator.c only */
  if (out) malicious_phase_input(s->engine, r->client, q->round, (fedrec_phase)phase, &out, &len);
#endif
  resp.retry_after_ms = retry;
  resp.message.data = out;
  resp.message.len = len;
  r->c->resp = fedrec_rpc_pack(&resp.base);
  s->m.bytes_out += len;
  free(out);
  return FEDREC_OK;
}

/* The five SecAgg submissions share one request layout, {round, message}, and an empty
 * response; phase: the one each belongs to. */
static fedrec_status submit(request *r, fedrec_phase phase) {
  server *s = r->s;
  const ProtobufCBinaryData *msg = &((Fedrec__V1__AdvertiseKeysRequest *)r->rq)->message;
  uint64_t round = ((Fedrec__V1__AdvertiseKeysRequest *)r->rq)->round;
  int was_banned = fedrec_engine_banned(s->engine, r->client);
  fedrec_status st = fedrec_engine_submit(s->engine, r->client, round, phase, msg->data, msg->len, r->now, &r->err);
  if (st && !was_banned && fedrec_engine_banned(s->engine, r->client)) {
    char reason[600];
    fedrec_json_escape(reason, sizeof reason, r->err.msg);
    logj("warn", "client_banned", "\"client\": %llu, \"round\": %llu, \"reason\": \"%s\"", (unsigned long long)r->client,
         (unsigned long long)round, reason);
  }
  if (st) return st;
  Fedrec__V1__AdvertiseKeysResponse resp = FEDREC__V1__ADVERTISE_KEYS_RESPONSE__INIT;
  r->c->resp = fedrec_rpc_pack(&resp.base); /* all four responses are empty messages */
  return FEDREC_OK;
}

static fedrec_status handle_advertise_keys(request *r) { return submit(r, FEDREC_PHASE_KEYS); }
static fedrec_status handle_share_keys(request *r) { return submit(r, FEDREC_PHASE_SHARES); }
static fedrec_status handle_submit_masked_input(request *r) { return submit(r, FEDREC_PHASE_MASKED); }
static fedrec_status handle_unmask(request *r) { return submit(r, FEDREC_PHASE_UNMASK); }
static fedrec_status handle_confirm_survivors(request *r) { return submit(r, FEDREC_PHASE_CONSISTENCY); }

/* Health: no token, no engine; only our own service (or the server as a whole) is known. */
static fedrec_status handle_health_check(request *r) {
  Grpc__Health__V1__HealthCheckRequest *q = (Grpc__Health__V1__HealthCheckRequest *)r->rq;
  if (q->service[0] && strcmp(q->service, "fedrec.v1.CoordinatorService"))
    return fedrec_error_set(&r->err, FEDREC_ERR_EMPTY, "unknown service");
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  r->c->resp = fedrec_rpc_pack(&resp.base);
  return FEDREC_OK;
}

/* Watch is a streaming method: answered UNIMPLEMENTED before its message is read
 * (server.c), so this never runs; it is here because every method has a handler. */
static fedrec_status handle_health_watch(request *r) {
  return fedrec_error_set(&r->err, FEDREC_ERR_STATE, "method not implemented");
}

/* GetAssignment and SubmitAggregate: aggregators.c */

static const handler HANDLERS[] = {
#define FEDREC_RPC_HANDLER(NAME, name, service, method) [FEDREC_RPC_##NAME] = handle_##name,
    FEDREC_RPC_MAP(FEDREC_RPC_HANDLER)
#undef FEDREC_RPC_HANDLER
};
_Static_assert(sizeof HANDLERS / sizeof *HANDLERS == FEDREC_RPC_NMETHODS, "one handler per RPC method");

grpc_status_code handle_call(server *s, call *c, char *details, size_t dcap) {
  int m = c->method;
  if (m < 0 || m >= FEDREC_RPC_NMETHODS || m == FEDREC_RPC_HEALTH_WATCH) {
    snprintf(details, dcap, "method not implemented");
    return GRPC_STATUS_UNIMPLEMENTED;
  }
  size_t bytes = c->req ? grpc_byte_buffer_length(c->req) : 0, cap = method_cap(s, m);
  const ProtobufCMessageDescriptor *rd = fedrec_rpc_request(m);
  if (bytes > cap) {
    snprintf(details, dcap, "a %zu-byte request; %s takes at most %zu", bytes, rd->short_name, cap);
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  const char *why;
  request r = {.s = s, .c = c, .client = c->client}; /* authenticated before the message was read */
  r.rq = fedrec_rpc_unpack_checked(rd, c->req, 1, &why);
  if (!r.rq) {
    snprintf(details, dcap, "malformed %s: %s", rd->short_name, why);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  if (m == FEDREC_RPC_HEALTH_CHECK) { /* outside the engine's lock: health never waits for a round */
    fedrec_status st = handle_health_check(&r);
    protobuf_c_message_free_unpacked(r.rq, NULL);
    if (st) snprintf(details, dcap, "%s", r.err.msg);
    return st ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_OK;
  }
  r.now = fedrec_clock_ms();
  pthread_mutex_lock(&s->mu);
  s->m.bytes_in += bytes;
  fedrec_engine_tick(s->engine, r.now);
  fedrec_status st = HANDLERS[m](&r);
  grpc_status_code code = st ? status_of(st) : GRPC_STATUS_OK;
  if (st) snprintf(details, dcap, "%s", r.err.msg);
  if (code != GRPC_STATUS_OK && (unsigned)code < 17) s->m.rpc_errors[code]++;
  pthread_mutex_unlock(&s->mu);
  protobuf_c_message_free_unpacked(r.rq, NULL);
  return code;
}
