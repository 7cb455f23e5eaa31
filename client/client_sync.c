/* One sync (see fedrec_client_sync): the channel to the coordinator, the check-in, and when
 * selected the round's phases through the participant; backoff with jitter after failures.
 * The hostile build (tests only) is here too. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fedrec/enrol.h"
#include "fedrec/eval.h"
#include "fedrec/internal/sim.h"
#include "fedrec/internal/tool.h"
#include "fedrec/participant.h"
#include "fedrec/synth.h"
#include "client_internal.h"

#define code_name fedrec_rpc_code_name

/* ---------------------------------------------------------------- hostile build (tests only) */

#ifdef FEDREC_HOSTILE
/* Compiled only into tests/hostile_client (-DFEDREC_HOSTILE), never into libfedrec_client:
 * what an attacker holding one device token gets by editing this library. FEDREC_HOSTILE in
 * the environment picks the attack:
 *   box-index   a share box addressed past the cohort (the 61d538e heap overflow)
 *   spoil-boxes share boxes that open for nobody (and its masked input sent anyway)
 *   equal-keys  both advertised keys equal;  low-order  a low-order mask key
 *   no-clip     the update clipped at 40x the round's clip (a poisoned update) */
static const char *hostile(void) {
  const char *m = getenv("FEDREC_HOSTILE");
  return m ? m : "";
}

/* Rewrites an outgoing secure-aggregation message as the attack says. */
static void tamper(uint8_t *msg, size_t len, const fedrec_round_info *info) {
  fedrec_sa_msg m;
  fedrec_error err;
  if (fedrec_sa_decode(&m, msg, len, info->secagg.n, info->secagg.dim, &err)) return;
  size_t n = 0;
  if (m.type == FEDREC_SA_MSG_KEYS && !strcmp(hostile(), "equal-keys")) {
    memcpy(m.u.keys.s_pk, m.u.keys.c_pk, 32);
    n = fedrec_sa_encode_keys(msg, len, &m.u.keys);
  } else if (m.type == FEDREC_SA_MSG_KEYS && !strcmp(hostile(), "low-order")) {
    memset(m.u.keys.s_pk, 0, 32);
    n = fedrec_sa_encode_keys(msg, len, &m.u.keys);
  } else if (m.type == FEDREC_SA_MSG_BOXES && !strcmp(hostile(), "box-index") && m.u.boxes.count) {
    m.u.boxes.boxes[0].to = info->secagg.n + 7;
    n = fedrec_sa_encode_boxes(msg, len, &m.u.boxes);
  } else if (m.type == FEDREC_SA_MSG_BOXES && !strcmp(hostile(), "spoil-boxes")) {
    for (uint32_t a = 0; a < m.u.boxes.count; a++) m.u.boxes.boxes[a].data[20] ^= 1; /* opens for nobody */
    n = fedrec_sa_encode_boxes(msg, len, &m.u.boxes);
  }
  (void)n;
  fedrec_sa_msg_free(&m);
}
/* no-clip: instead of its gradient, an update of norm 1000 clips pointing one way, encoded
 * with the clip raised 10 000x (what steering the model takes) */
static fedrec_status hostile_participant(fedrec_participant **p, fedrec_round_info *info, const fedrec_model *m,
                                         fedrec_error *err) {
  int64_t dim = fedrec_model_params(m);
  float *u = malloc((size_t)dim * sizeof *u);
  if (!u) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "hostile update");
  for (int64_t i = 0; i < dim; i++) u[i] = (float)(1000 * info->ddp.clip / sqrt((double)dim));
  info->ddp.clip *= 10000;
  fedrec_status s = fedrec_participant_new_update(p, info, u, dim, NULL, err);
  free(u);
  return s;
}
#define HOSTILE_TAMPER(msg, len, info) tamper(msg, len, info)
#define HOSTILE_NEW(p, info, model, err) (!strcmp(hostile(), "no-clip") ? hostile_participant(p, info, model, err) : FEDREC_OK)
#define HOSTILE_ACTIVE() (!strcmp(hostile(), "no-clip"))
#else
#define HOSTILE_TAMPER(msg, len, info) ((void)(info))
#define HOSTILE_NEW(p, info, model, err) FEDREC_OK
#define HOSTILE_ACTIVE() 0
#endif

/* A channel to target with the client's TLS settings (the coordinator, or an aggregator it
 * names); NULL when the TLS files cannot be read. */
static grpc_channel *make_channel(fedrec_client *c, const char *target, fedrec_error *err) {
  grpc_channel_credentials *creds;
  if (c->insecure) {
    creds = grpc_insecure_credentials_create();
  } else {
    char *ca = c->ca_file[0] ? fedrec_rpc_read_text(c->ca_file) : NULL;
    char *cert = c->cert_file[0] ? fedrec_rpc_read_text(c->cert_file) : NULL;
    char *key = c->key_file[0] ? fedrec_rpc_read_text(c->key_file) : NULL;
    if ((c->ca_file[0] && !ca) || (c->cert_file[0] && !cert) || (c->key_file[0] && !key)) {
      free(ca), free(cert), free(key);
      fedrec_error_set(err, FEDREC_ERR_IO, "client: cannot read the TLS files (%s, %s, %s)", c->ca_file, c->cert_file, c->key_file);
      return NULL;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_credentials_create(ca, cert && key ? &pair : NULL, NULL, NULL);
    if (key) sodium_memzero(key, strlen(key));
    free(ca), free(cert), free(key);
  }
  /* one backoff: the client's own (after failed syncs, bounded, docs/CLIENT.md). gRPC's
   * reconnect backoff (up to 2 minutes by default) would stack on it after a coordinator
   * restart, so it is kept to 1-5 s. Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is also the
   * least time a connection attempt gets (20 s by default), and at 1 s TLS handshakes on a
   * loaded machine timed out again and again */
  grpc_arg args[3] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = 256 << 20},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 1000},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 5000}};
  grpc_channel_args ca = {3, args};
  grpc_channel *ch = grpc_channel_create(target, creds, &ca);
  grpc_channel_credentials_release(creds);
  return ch;
}

static fedrec_status connect_channel(fedrec_client *c, fedrec_error *err) {
  if (c->ch) return FEDREC_OK;
  if (!c->target[0] || !c->token[0] || !c->keyhex[0])
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client: target, token and coordinator key must be configured");
  grpc_init();
  if (!(c->ch = make_channel(c, c->target, err))) {
    grpc_shutdown();
    return FEDREC_ERR_IO;
  }
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) c->handles[m] = grpc_channel_register_call(c->ch, fedrec_rpc_path(m), NULL, NULL);
  return FEDREC_OK;
}

/* One blocking unary call with this client's token. */
grpc_status_code fedrec__client_rpc(fedrec_client *c, int m, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                            ProtobufCMessage **resp, char *details, size_t cap) {
  return fedrec_rpc_call(c->ch, fedrec_rpc_path(m), c->handles[m], c->token, req, rd, c->call_ms, resp, details, cap);
}

/* A reason the coordinator gave, for the app's log: printable ASCII only (a hostile peer's
 * control characters or terminal escapes become '?'). */
void fedrec__client_keep_reason(char *out, size_t cap, const char *in) {
  size_t j = 0;
  for (; in && *in && j + 1 < cap; in++) out[j++] = *in >= 0x20 && *in < 0x7f ? *in : '?';
  out[j] = 0;
}

static void sleep_ms(uint32_t ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&d, NULL);
}

static void backoff(fedrec_client *c, fedrec_sync_outcome *out, int failed) {
  char v[32] = "0";
  fedrec__client_get_setting(c, "failures", v, sizeof v);
  int f = failed ? atoi(v) + 1 : 0;
  snprintf(v, sizeof v, "%d", f);
  fedrec__client_put_setting(c, "failures", v);
  if (!failed) return;
  double base = 1000.0 * pow(2.0, f < 9 ? f : 9); /* 2 s .. 512 s (4.3 to 12.8 minutes with jitter) */
  uint32_t r = randombytes_uniform(1000);
  out->retry_after_ms = (uint32_t)(base * (0.5 + r / 1000.0));
}

static fedrec_status io_fail(fedrec_client *c, fedrec_sync_outcome *out, fedrec_error *err, const char *what,
                             grpc_status_code code, const char *details) {
  backoff(c, out, 1);
  out->failure = code == GRPC_STATUS_UNAUTHENTICATED || code == GRPC_STATUS_PERMISSION_DENIED ? FEDREC_SYNC_FAIL_AUTH
                                                                                              : FEDREC_SYNC_FAIL_NETWORK;
  char why[512];
  fedrec__client_keep_reason(why, sizeof why, details);
  return fedrec_error_set(err, FEDREC_ERR_IO, "%s: %s: %s", what, code_name(code), why);
}

static void maybe_drop(fedrec_client *c, int phase) {
  if (c->drop_phase == phase) _exit(3); /* the simulated device vanishes mid-round */
  if (c->delay_ms) sleep_ms(c->delay_ms);
}

static grpc_status_code submit(fedrec_client *c, int method, uint64_t round, uint8_t *msg, size_t len, char *details,
                               size_t cap) {
  return fedrec_rpc_submit(c->ch, method, c->handles[method], c->token, round, msg, len, c->call_ms, details, cap);
}

/* The masked input to the aggregator the round info named, with its ticket as the bearer
 * token (a channel for this call only). */
static grpc_status_code submit_to_aggregator(fedrec_client *c, const fedrec_round_info *info, uint8_t *msg, size_t len,
                                             char *details, size_t cap) {
  fedrec_error err = {0};
  grpc_channel *ch = make_channel(c, info->aggregator_addr, &err);
  if (!ch) {
    snprintf(details, cap, "%s", err.msg);
    return GRPC_STATUS_INTERNAL;
  }
  char ticket[2 * sizeof info->ticket + 1];
  sodium_bin2hex(ticket, sizeof ticket, info->ticket, sizeof info->ticket);
  grpc_status_code code = fedrec_rpc_submit(ch, FEDREC_RPC_SUBMIT_MASKED_INPUT, NULL, ticket, info->round, msg, len, c->call_ms,
                                            details, cap);
  sodium_memzero(ticket, sizeof ticket);
  grpc_channel_destroy(ch);
  return code;
}

/* How a step of a round ended: on to the next; left out (the coordinator said why); the round
 * did not progress in time; failed (*s says why). */
typedef enum step { STEP_ON, STEP_LEFT_OUT, STEP_TIMEOUT, STEP_FAILED } step;

/* A call's status as a step: left out on FAILED_PRECONDITION (with the reason), failed on any
 * other error. */
static step call_step(fedrec_client *c, fedrec_sync_outcome *out, grpc_status_code code, const char *what,
                      const char *details, fedrec_status *s, fedrec_error *err) {
  if (code == GRPC_STATUS_OK) return STEP_ON;
  if (code == GRPC_STATUS_FAILED_PRECONDITION) {
    fedrec__client_keep_reason(out->detail, sizeof out->detail, details);
    return STEP_LEFT_OUT;
  }
  *s = io_fail(c, out, err, what, code, details);
  return STEP_FAILED;
}

/* The coordinator said "ask again in retry ms": waits (20 ms to 1 s); 0 when the sync's time
 * is up instead. */
static int wait_retry(const fedrec_client *c, uint64_t start, uint32_t retry) {
  if (fedrec_clock_ms() - start > c->sync_ms) return 0;
  sleep_ms(retry < 20 ? 20 : retry > 1000 ? 1000 : retry);
  return 1;
}

/* Waits (at most the sync's time) for the selected round's parameters (info->certs: malloc'd,
 * the caller frees it). */
static step await_round_info(fedrec_client *c, fedrec_sync_outcome *out, uint64_t start, fedrec_round_info *info,
                             fedrec_status *s, fedrec_error *err) {
  char details[512];
  for (;;) {
    Fedrec__V1__GetRoundInfoRequest q = FEDREC__V1__GET_ROUND_INFO_REQUEST__INIT;
    q.round = out->round;
    Fedrec__V1__GetRoundInfoResponse *r;
    grpc_status_code code = fedrec__client_rpc(c, FEDREC_RPC_GET_ROUND_INFO, &q.base, &fedrec__v1__get_round_info_response__descriptor,
                                               (ProtobufCMessage **)&r, details, sizeof details);
    step st = call_step(c, out, code, "GetRoundInfo", details, s, err);
    if (st != STEP_ON) return st;
    uint32_t retry = r->retry_after_ms;
    if (!retry) *s = r->info ? fedrec_rpc_round_info_from_pb(info, r->info, err)
                             : fedrec_error_set(err, FEDREC_ERR_PARSE, "round info missing");
    if (!retry && !*s && info->certs) { /* they point into r: the caller frees the copy */
      uint8_t *copy = malloc(info->certs_len);
      if (copy) memcpy(copy, info->certs, info->certs_len);
      else *s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "round info: certificates");
      info->certs = copy;
    }
    if (!retry && !*s && info->aggregator) { /* so does the aggregator's address */
      snprintf(c->agg_target, sizeof c->agg_target, "%s", info->aggregator_addr);
      info->aggregator_addr = c->agg_target;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (*s) return STEP_FAILED;
    if (!retry) break;
    if (!wait_retry(c, start, retry)) return STEP_TIMEOUT;
  }
  if (info->model_version != c->model_version) {
    *s = fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu trains model %llu, the cached one is %llu",
                          (unsigned long long)info->round, (unsigned long long)info->model_version,
                          (unsigned long long)c->model_version);
    return STEP_FAILED;
  }
  return STEP_ON;
}

/* Waits for the input of phase ph (a copy in *in, malloc'd). */
static step await_phase_input(fedrec_client *c, fedrec_sync_outcome *out, uint64_t start, uint64_t round, int ph, uint8_t **in,
                              size_t *inlen, fedrec_status *s, fedrec_error *err) {
  char details[512];
  for (;;) {
    Fedrec__V1__GetPhaseInputRequest q = FEDREC__V1__GET_PHASE_INPUT_REQUEST__INIT;
    q.round = round;
    q.phase = (Fedrec__V1__Phase)fedrec_rpc_phase_to_pb((fedrec_phase)ph);
    Fedrec__V1__GetPhaseInputResponse *r;
    grpc_status_code code = fedrec__client_rpc(c, FEDREC_RPC_GET_PHASE_INPUT, &q.base, &fedrec__v1__get_phase_input_response__descriptor,
                                               (ProtobufCMessage **)&r, details, sizeof details);
    step st = call_step(c, out, code, "GetPhaseInput", details, s, err);
    if (st != STEP_ON) return st;
    uint32_t retry = r->retry_after_ms;
    if (!retry) {
      *in = malloc(r->message.len ? r->message.len : 1);
      if (*in) memcpy(*in, r->message.data, r->message.len);
      *inlen = r->message.len;
    }
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (!retry) break;
    if (!wait_retry(c, start, retry)) return STEP_TIMEOUT;
  }
  if (*in) return STEP_ON;
  *s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "phase input");
  return STEP_FAILED;
}

/* How many rounds this device's masked input was sent in (the participations setting), and
 * the last of them (last_round). */
static uint64_t participations(fedrec_client *c) {
  char v[24];
  return fedrec__client_get_setting(c, "participations", v, sizeof v) ? strtoull(v, NULL, 10) : 0;
}

static uint64_t last_round(fedrec_client *c) {
  char v[24];
  return fedrec__client_get_setting(c, "last_round", v, sizeof v) ? strtoull(v, NULL, 10) : 0;
}

/* Counts round as taken part in, in one transaction, before the masked input leaves: a crash
 * after it never undercounts. 0 when the store could not be written. */
static int count_round(fedrec_client *c, uint64_t round) {
  char count[24], last[24];
  snprintf(count, sizeof count, "%llu", (unsigned long long)participations(c) + 1);
  snprintf(last, sizeof last, "%llu", (unsigned long long)round);
  if (sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return 0;
  if (fedrec__client_put_setting(c, "participations", count) && fedrec__client_put_setting(c, "last_round", last) &&
      sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
    return 1;
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return 0;
}

/* The device's own min_separation: 1 (and why in out->detail) when round is too soon after
 * the last one it took part in, or not after it at all. */
static int too_soon(fedrec_client *c, uint64_t round, fedrec_sync_outcome *out) {
  if (c->min_separation <= 1) return 0; /* any round, also one whose number a restarted coordinator reuses */
  uint64_t last = last_round(c), sep = c->min_separation;
  if (!last || round >= last + sep) return 0;
  snprintf(out->detail, sizeof out->detail, "round %llu is %s the last round this device took part in (%llu; its "
           "min_separation is %llu): declined, nothing sent", (unsigned long long)round, round > last ? "too soon after" : "not after",
           (unsigned long long)last, (unsigned long long)sep);
  return 1;
}

/* The round's secure-aggregation phases with participant p: keys, then each later phase's
 * input answered. A check that fails on this side stops the device answering, which is safe. */
static step run_phases(fedrec_client *c, fedrec_sync_outcome *out, uint64_t start, const fedrec_round_info *info,
                       const fedrec_round_info *sent, fedrec_participant *p, fedrec_status *s, fedrec_error *err) {
  char details[512];
  for (int ph = FEDREC_PHASE_KEYS; ph <= FEDREC_PHASE_UNMASK; ph++) {
    if (ph == FEDREC_PHASE_CONSISTENCY && !info->secagg.active) continue; /* the active variant's phase */
    uint8_t *in = NULL, *msg = NULL;
    size_t inlen = 0, len = 0;
    step st = ph == FEDREC_PHASE_KEYS ? STEP_ON : await_phase_input(c, out, start, info->round, ph, &in, &inlen, s, err);
    if (st != STEP_ON) return st;
    if (ph != FEDREC_PHASE_KEYS) maybe_drop(c, ph);
    *s = ph == FEDREC_PHASE_KEYS     ? fedrec_participant_keys(p, &msg, &len, err)
         : ph == FEDREC_PHASE_SHARES ? fedrec_participant_shares(p, in, inlen, &msg, &len, err)
         : ph == FEDREC_PHASE_MASKED ? fedrec_participant_masked(p, in, inlen, &msg, &len, err)
         : ph == FEDREC_PHASE_CONSISTENCY ? fedrec_participant_consistency(p, in, inlen, &msg, &len, err)
                                          : fedrec_participant_unmask(p, in, inlen, &msg, &len, err);
    free(in);
    if (*s) return STEP_FAILED;
    if (ph == FEDREC_PHASE_MASKED && !count_round(c, info->round)) { /* before the masked input leaves */
      free(msg);
      *s = fedrec__client_dberr(err, c, "counting this round's participation");
      return STEP_FAILED;
    }
    HOSTILE_TAMPER(msg, len, sent);
    grpc_status_code code = ph == FEDREC_PHASE_MASKED && info->aggregator
                                ? submit_to_aggregator(c, info, msg, len, details, sizeof details)
                                : submit(c, fedrec_rpc_submission((fedrec_phase)ph), info->round, msg, len, details, sizeof details);
    free(msg);
    if ((st = call_step(c, out, code, ph == FEDREC_PHASE_KEYS ? "AdvertiseKeys" : "submit", details, s, err)) != STEP_ON)
      return st;
  }
  return STEP_ON;
}

/* Selected: the round's parameters, the participant from the cached model and the history,
 * and the phases. */
static step take_part(fedrec_client *c, fedrec_sync_outcome *out, uint64_t start, const int32_t *items, const float *w,
                      int32_t n, fedrec_status *s, fedrec_error *err) {
  fedrec_round_info info = {0};
  step st = await_round_info(c, out, start, &info, s, err);
  uint8_t *certs = (uint8_t *)info.certs;
  fedrec_model model;
  if (st == STEP_ON && too_soon(c, info.round, out)) st = STEP_LEFT_OUT;
  if (st == STEP_ON && (*s = fedrec__client_cached_model(c, &model, err))) st = STEP_FAILED;
  if (st != STEP_ON) {
    free(certs);
    return st;
  }
  maybe_drop(c, FEDREC_PHASE_KEYS);
  fedrec_round_info sent = info; /* the round as announced (the hostile build may change its copy) */
  fedrec_participant *p = NULL;
  fedrec_identity id = {0};
  if (HOSTILE_ACTIVE()) *s = HOSTILE_NEW(&p, &info, &model, err);
  else *s = fedrec_participant_new(&p, &info, &model, items, w, n, NULL, err);
  /* enrolled: the participant refuses passive rounds and checks every signed message */
  if (!*s && c->has_authority && !(*s = fedrec__client_identity(c, &id, err)))
    *s = fedrec_participant_set_identity(p, &id, c->authority, err);
  st = *s ? STEP_FAILED : run_phases(c, out, start, &info, &sent, p, s, err);
  /* a downgrade, a forged certificate, a substituted key or an equivocated survivor list: the
   * coordinator (or whoever holds its key) attacked, and the device revealed nothing more */
  if (*s == FEDREC_ERR_AUTH || (*s == FEDREC_ERR_PARSE && info.secagg.active)) out->failure = FEDREC_SYNC_FAIL_INTEGRITY;
  fedrec_participant_free(p);
  fedrec_identity_free(&id);
  fedrec_model_free(&model);
  free(certs);
  sodium_memzero(info.ticket, sizeof info.ticket), sodium_memzero(sent.ticket, sizeof sent.ticket);
  return st;
}

/* CheckIn, and the model it offers made the cached one; *accepted: selected for a round. */
static fedrec_status check_in(fedrec_client *c, fedrec_sync_outcome *out, int32_t n, uint64_t start, int *accepted,
                              fedrec_error *err) {
  char details[512];
  Fedrec__V1__CheckInRequest rq = FEDREC__V1__CHECK_IN_REQUEST__INIT;
  rq.model_version = c->model_version;
  rq.model_only = n == 0;
  uint8_t cert[FEDREC_CERT_BYTES];
  fedrec__client_certificate(c, cert, &rq.certificate.len); /* the active variant's: none until enrolled */
  rq.certificate.data = cert;
  Fedrec__V1__CheckInResponse *ci = NULL;
  grpc_status_code code = fedrec__client_rpc(c, FEDREC_RPC_CHECK_IN, &rq.base, &fedrec__v1__check_in_response__descriptor,
                                             (ProtobufCMessage **)&ci, details, sizeof details);
  if (code != GRPC_STATUS_OK) return io_fail(c, out, err, "CheckIn", code, details);
  fedrec_status s = fedrec__client_ensure_model(c, ci->model, &out->resumed_at, start + c->sync_ms, err);
  out->model_version = c->model_version;
  out->round = ci->round;
  out->retry_after_ms = ci->retry_after_ms;
  *accepted = ci->accepted;
  if (ci->stopped_reason && ci->stopped_reason[0]) {
    /* unsigned: anyone on the path, or a coordinator with a full disk, can say it. So it is
     * news, not an order: the device comes back after a long, jittered wait (an hour) */
    out->result = FEDREC_SYNC_STOPPED;
    fedrec__client_keep_reason(out->detail, sizeof out->detail, ci->stopped_reason);
    out->retry_after_ms = 1800000 + randombytes_uniform(3600000);
    *accepted = 0;
  }
  protobuf_c_message_free_unpacked(&ci->base, NULL);
  if (s) {
    backoff(c, out, 1);
    /* a download that failed on the way is the network's; a model refused is not */
    out->failure = s == FEDREC_ERR_IO || s == FEDREC_ERR_NOMEM ? FEDREC_SYNC_FAIL_NETWORK
                 : s == FEDREC_ERR_ARG ? FEDREC_SYNC_FAIL_CONFIG : FEDREC_SYNC_FAIL_INTEGRITY;
  }
  return s;
}

fedrec_status fedrec_client_sync(fedrec_client *c, fedrec_sync_outcome *out, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  fedrec_status s = connect_channel(c, err);
  if (s) {
    out->failure = FEDREC_SYNC_FAIL_CONFIG;
    return s;
  }
  int32_t *items = NULL, n = 0;
  float *w = NULL;
  uint64_t start = fedrec_clock_ms();
  int accepted = 0;
  s = fedrec__client_history(c, &items, &w, &n, err);
  if (s == FEDREC_ERR_EMPTY) { /* no catalogue yet: the model's information names the one to fetch */
    if ((s = check_in(c, out, 0, start, &accepted, err))) return s;
    s = fedrec__client_history(c, &items, &w, &n, err);
  }
  if (s) {
    out->failure = FEDREC_SYNC_FAIL_CONFIG;
    return s;
  }
  uint64_t taken = participations(c);
  int spent = c->max_participation && taken >= c->max_participation;
  if (spent) { /* the device's own bound: models only from now on, whatever the coordinator asks */
    if (items) sodium_memzero(items, (size_t)n * sizeof *items);
    n = 0;
  }
  s = check_in(c, out, n, start, &accepted, err);
  if (spent && !s && out->result == FEDREC_SYNC_NOT_SELECTED) {
    out->result = FEDREC_SYNC_SPENT;
    snprintf(out->detail, sizeof out->detail, "this device took part in %llu rounds, its max_participation: it only fetches models now",
             (unsigned long long)taken);
  }
  if (!s && !accepted) backoff(c, out, 0);
  if (!s && accepted) {
    out->result = FEDREC_SYNC_LEFT_OUT;
    step st = take_part(c, out, start, items, w, n, &s, err);
    if (st == STEP_ON) out->result = FEDREC_SYNC_PARTICIPATED;
    if (st == STEP_TIMEOUT) snprintf(out->detail, sizeof out->detail, "the round did not progress within %u ms", c->sync_ms);
    if (st != STEP_FAILED) backoff(c, out, 0);
    if (s && !out->failure) out->failure = FEDREC_SYNC_FAIL_NETWORK; /* transient: retry after the backoff */
    if (!out->retry_after_ms) out->retry_after_ms = 1000 + randombytes_uniform(1000);
  }
  if (items) sodium_memzero(items, (size_t)n * sizeof *items);
  free(items), free(w);
  return s;
}
