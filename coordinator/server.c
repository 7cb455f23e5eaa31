/* fedrec-coordinator: the gRPC server around the round engine.
 *
 *   fedrec-coordinator init  --state-dir DIR           keys: identity (Ed25519) and token secret
 *   fedrec-coordinator token --state-dir DIR --id N    a client token
 *   fedrec-coordinator serve [--config FILE] [--key value ...]
 *
 * gRPC C core with a completion queue drained by worker threads (see
 * ../shared/docs/GRPC-C-GUIDE.md); every RPC is unary and answered at once, so no call is
 * held. The engine is single-threaded: one mutex around it. A ticker thread advances phases
 * on deadlines. State: DIR/coordinator.db (models, rounds, clients) and DIR/ledger.db (the
 * privacy ledger), both SQLite WAL with synchronous=FULL. Prometheus text on --metrics-listen.
 * Logs: one JSON object per line on stderr. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "fedrec/engine.h"
#include "fedrec/synth.h"
#include "config.h"
#include "metrics_http.h"
#include "rpc.h"
#include "store.h"

static void usage(FILE *f) {
  fprintf(f, "usage:\n"
             "  fedrec-coordinator init  --state-dir DIR\n"
             "  fedrec-coordinator token --state-dir DIR --id N [--days D]   (a token valid D days, default 365)\n"
             "  fedrec-coordinator revoke --state-dir DIR --id N   (refused from then on, also by a running serve)\n"
             "  fedrec-coordinator serve [--config FILE] [--KEY VALUE ...]\n"
             "  fedrec-coordinator export-model --state-dir DIR [--version V] --out FILE\n"
             "  fedrec-coordinator status --state-dir DIR      (JSON: models, rounds, clients, ledger)\n"
             "settings (config file lines 'key = value', or flags --key value; flags win):\n");
  config_usage(f);
}

/* ---------------------------------------------------------------- logging */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

/* One JSON object per line: {"ts": ..., "level": ..., "event": ..., fields}. fields is a
 * preformatted JSON fragment ("\"k\": v, ..."), or NULL. */
static void logj(const char *level, const char *event, const char *fmt, ...) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char fields[2048] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof fields, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_lock(&log_mu);
  fprintf(stderr, "{\"ts\": %lld.%03ld, \"level\": \"%s\", \"event\": \"%s\"%s%s}\n", (long long)ts.tv_sec,
          ts.tv_nsec / 1000000, level, event, fields[0] ? ", " : "", fields);
  pthread_mutex_unlock(&log_mu);
}

/* A string made safe for a JSON value (quotes, backslashes and control characters). */
/* ---------------------------------------------------------------- keys */

static int read_hex32(const char *path, uint8_t out[32]) {
  char *t = fedrec_rpc_read_text(path);
  if (!t) return 0;
  size_t n = 0;
  int ok = sodium_hex2bin(out, 32, t, strlen(t), " \n\r\t", &n, NULL) == 0 && n == 32;
  sodium_memzero(t, strlen(t));
  free(t);
  return ok;
}

static int write_secret_hex(const char *path, const uint8_t *b) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return 0;
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, b, 32);
  hex[64] = '\n';
  int ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
  sodium_memzero(hex, sizeof hex);
  close(fd);
  return ok;
}

static void state_path(char *out, size_t cap, const config *c, const char *name) {
  snprintf(out, cap, "%s/%s", c->state_dir, name);
}

static int cmd_init(const config *c) {
  char p1[600], p2[600], p3[600];
  if ((mkdir(c->state_dir, 0700) && errno != EEXIST) || chmod(c->state_dir, 0700)) {
    fprintf(stderr, "fedrec-coordinator init: %s: %s\n", c->state_dir, strerror(errno));
    return 1;
  }
  state_path(p1, sizeof p1, c, "identity.key");
  state_path(p2, sizeof p2, c, "token.secret");
  state_path(p3, sizeof p3, c, "identity.pub");
  uint8_t *seed = fedrec_secret_alloc(64);
  if (!seed) return 1;
  randombytes_buf(seed, 64);
  int ok = write_secret_hex(p1, seed) && write_secret_hex(p2, seed + 32);
  if (!ok) {
    fprintf(stderr, "fedrec-coordinator init: cannot create %s and %s (do they exist already?): %s\n", p1, p2, strerror(errno));
    fedrec_secret_free(seed);
    return 1;
  }
  fedrec_identity id;
  if (fedrec_identity_from_seed(&id, seed)) return 1;
  fedrec_secret_free(seed);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, id.pk, 32);
  FILE *f = fopen(p3, "w");
  if (!f || fprintf(f, "%s\n", hex) < 0 || fclose(f)) {
    fprintf(stderr, "fedrec-coordinator init: cannot write %s\n", p3);
    return 1;
  }
  fedrec_identity_free(&id);
  printf("%s\n", hex);
  fprintf(stderr, "fedrec-coordinator: keys in %s; public key (give it to clients and auditors) in %s\n", c->state_dir, p3);
  return 0;
}

/* A JSON summary of the state: models kept, rounds, clients, and the verified ledger. */
static int cmd_status(const config *c) {
  char path[600], pkfile[600], versions[8192];
  state_path(path, sizeof path, c, "coordinator.db");
  struct stat sb;
  coord_store *st;
  fedrec_error err = {0};
  if (stat(path, &sb) || coord_store_open(&st, path, &err)) {
    fprintf(stderr, "fedrec-coordinator status: %s: %s\n", path, err.msg[0] ? err.msg : "no such state");
    return 1;
  }
  coord_store_versions(st, versions, sizeof versions);
  printf("{\"model_versions\": [%s], \"rounds\": %lld, \"rounds_aborted\": %lld, \"clients\": %lld", versions,
         (long long)coord_store_count(st, "rounds WHERE aborted = 0"), (long long)coord_store_count(st, "rounds WHERE aborted = 1"),
         (long long)coord_store_count(st, "clients"));
  coord_store_close(st);
  state_path(path, sizeof path, c, "ledger.db");
  state_path(pkfile, sizeof pkfile, c, "identity.pub");
  uint8_t pk[32];
  fedrec_ledger_summary sum;
  int rc = 0;
  if (!read_hex32(pkfile, pk)) {
    printf(", \"ledger\": null}\n");
  } else if (fedrec_ledger_verify(path, pk, &sum, NULL, 0, &err)) {
    char msg[600];
    fedrec_json_escape(msg, sizeof msg, err.msg);
    printf(", \"ledger\": {\"verified\": false, \"reason\": \"%s\"}}\n", msg);
    rc = 1;
  } else {
    printf(", \"ledger\": {\"verified\": true, \"entries\": %llu, \"epsilon\": %.10g, \"budget\": %.10g}}\n",
           (unsigned long long)sum.entries, sum.epsilon, sum.budget);
  }
  return rc;
}

/* Writes a kept model blob (newest, or version v) to a file, for evaluation or archiving. */
static int cmd_export(const config *c, uint64_t v, const char *out) {
  char path[600];
  state_path(path, sizeof path, c, "coordinator.db");
  struct stat sb;
  coord_store *st;
  coord_saved_model m;
  fedrec_error err = {0};
  if (stat(path, &sb) || coord_store_open(&st, path, &err)) {
    fprintf(stderr, "fedrec-coordinator export-model: %s: %s\n", path, err.msg[0] ? err.msg : "no such state");
    return 1;
  }
  int rc = 0;
  if (coord_store_load_version(st, v, &m, &err)) {
    fprintf(stderr, "fedrec-coordinator export-model: %s\n", err.msg);
    rc = 1;
  } else {
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(m.blob, 1, m.len, f) != m.len || fclose(f)) {
      fprintf(stderr, "fedrec-coordinator export-model: cannot write %s\n", out);
      rc = 1;
    } else {
      char hh[65], hl[65], hs[129];
      sodium_bin2hex(hh, sizeof hh, m.hash, 32);
      sodium_bin2hex(hl, sizeof hl, m.ledger_head, 32);
      sodium_bin2hex(hs, sizeof hs, m.sig, FEDREC_SIG_BYTES);
      fprintf(stderr, "fedrec-coordinator: model version %llu (%zu bytes) written to %s\n", (unsigned long long)m.version, m.len, out);
      /* what its signature covers: an auditor checks a ledger against it (fedrec-audit verify --covers) */
      printf("{\"version\": %llu, \"blake2b\": \"%s\", \"signature\": \"%s\", \"ledger_entries\": %llu, "
             "\"ledger_head\": \"%s\", \"covers\": \"%llu:%s\"}\n",
             (unsigned long long)m.version, hh, hs, (unsigned long long)m.ledger_entries, hl,
             (unsigned long long)m.ledger_entries, hl);
    }
    coord_saved_model_free(&m);
  }
  coord_store_close(st);
  return rc;
}

static int cmd_token(const config *c, uint64_t id, uint64_t days) {
  char p[600];
  state_path(p, sizeof p, c, "token.secret");
  uint8_t *secret = fedrec_secret_alloc(32);
  if (!secret || !read_hex32(p, secret)) {
    fprintf(stderr, "fedrec-coordinator token: cannot read %s (run init first)\n", p);
    return 1;
  }
  char tok[FEDREC_TOKEN_MAX];
  fedrec_token_make(tok, secret, id, (uint64_t)time(NULL) + days * 86400);
  fedrec_secret_free(secret);
  printf("%s\n", tok);
  return 0;
}

/* Adds id to the deny list in the state; a running coordinator picks it up within seconds. */
static int cmd_revoke(const config *c, uint64_t id) {
  char p[600];
  state_path(p, sizeof p, c, "coordinator.db");
  coord_store *st;
  fedrec_error err = {0};
  if (coord_store_open(&st, p, &err) || coord_store_revoke(st, id, &err)) {
    fprintf(stderr, "fedrec-coordinator revoke: %s\n", err.msg);
    if (st) coord_store_close(st);
    return 1;
  }
  coord_store_close(st);
  fprintf(stderr, "fedrec-coordinator: client %llu's tokens are revoked\n", (unsigned long long)id);
  return 0;
}

/* ---------------------------------------------------------------- server state */

typedef struct metrics {
  uint64_t rounds_published, rounds_aborted, checkins, accepted, bytes_in, bytes_out;
  uint64_t dropouts[FEDREC_PHASES], rpc_errors[17];
  uint64_t last_cohort, last_survivors, last_phase_ms[FEDREC_PHASES];
  double epsilon;
} metrics;

typedef struct server {
  config cfg;
  pthread_mutex_t mu; /* the engine, the store and the metrics */
  fedrec_engine *engine;
  coord_store *store;
  fedrec_ledger *ledger;
  fedrec_identity id;
  uint8_t *token_secret;
  fedrec_dataset catalogue;
  metrics m;
  grpc_server *gs;
  grpc_completion_queue *cq;
  void *handles[16];
  atomic_int shutting_down;
  pthread_mutex_t sd_mu;
  pthread_cond_t sd_cv;
  int shutdown_done;
  metrics_http *metrics;
  /* revoked client ids, sorted; reloaded from the state every few seconds by the ticker */
  pthread_mutex_t revoke_mu;
  /* calls in flight per client (a device makes one at a time): open addressing on the id,
   * under inflight_mu; beyond MAX_CALLS_PER_CLIENT a client's call is refused unread */
  pthread_mutex_t inflight_mu;
  struct inflight {
    uint64_t client;
    uint32_t calls;
    uint8_t used;
  } *inflight;
  uint64_t *revoked;
  size_t nrevoked;
} server;

static int on_publish(void *ctx, const fedrec_published *p) {
  server *s = ctx;
  fedrec_error err = {0};
  if (coord_store_save_model(s->store, p, s->cfg.keep_models, &err)) {
    char msg[600];
    fedrec_json_escape(msg, sizeof msg, err.msg);
    logj("error", "model_not_saved", "\"version\": %llu, \"reason\": \"%s\"", (unsigned long long)p->version, msg);
    return 1;
  }
  char hash[65];
  sodium_bin2hex(hash, sizeof hash, p->hash, 32);
  logj("info", "model_published", "\"version\": %llu, \"bytes\": %zu, \"blake2b\": \"%s\"", (unsigned long long)p->version,
       p->len, hash);
  return 0;
}

static void on_round(void *ctx, const fedrec_round_stats *st) {
  server *s = ctx;
  fedrec_error err = {0};
  if (st->released) { /* no round ran: not in the rounds table or the round metrics */
    char reason[800];
    fedrec_json_escape(reason, sizeof reason, st->reason);
    logj("info", "selection_released", "\"round\": %llu, \"devices\": %u, \"reason\": \"%s\"", (unsigned long long)st->round,
         st->cohort, reason);
    return;
  }
  if (coord_store_save_round(s->store, st, st->clients, st->nclients, &err)) {
    char msg[600];
    fedrec_json_escape(msg, sizeof msg, err.msg);
    logj("error", "round_not_saved", "\"round\": %llu, \"reason\": \"%s\"", (unsigned long long)st->round, msg);
  }
  if (st->aborted) s->m.rounds_aborted++;
  else s->m.rounds_published++;
  for (int p = 0; p < FEDREC_PHASES; p++) {
    s->m.dropouts[p] += st->dropped[p];
    s->m.last_phase_ms[p] = st->phase_ms[p];
  }
  s->m.last_cohort = st->cohort;
  s->m.last_survivors = st->survivors;
  s->m.epsilon = fedrec_ledger_epsilon(s->ledger); /* from the ledger, whatever the round did */
  char reason[800];
  fedrec_json_escape(reason, sizeof reason, st->reason);
  logj(st->aborted ? "warn" : "info", st->aborted ? "round_aborted" : "round_done",
       "\"round\": %llu, \"cohort\": %u, \"survivors\": %u, \"dropped\": {\"keys\": %u, \"shares\": %u, \"masked\": %u, "
       "\"unmask\": %u}, \"phase_ms\": {\"keys\": %llu, \"shares\": %llu, \"masked\": %llu, \"unmask\": %llu}, "
       "\"bytes_in\": %llu, \"epsilon\": %.6f, \"update_norm\": %.6g%s%s%s",
       (unsigned long long)st->round, st->cohort, st->survivors, st->dropped[1], st->dropped[2], st->dropped[3], st->dropped[4],
       (unsigned long long)st->phase_ms[1], (unsigned long long)st->phase_ms[2], (unsigned long long)st->phase_ms[3],
       (unsigned long long)st->phase_ms[4], (unsigned long long)st->bytes_in, st->epsilon, st->update_norm,
       st->aborted ? ", \"reason\": \"" : "", st->aborted ? reason : "", st->aborted ? "\"" : "");
}

/* ---------------------------------------------------------------- calls */

typedef struct call {
  server *s;
  int method; /* FEDREC_RPC_*, or -1: the catch-all for unknown methods */
  int stage;  /* 0: waiting for a call; 2: reading its message (authenticated); 1: reply sent */
  uint64_t client; /* the authenticated client id (stage 2) */
  int counted;     /* counted in the client's calls in flight */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *req, *resp;
  grpc_call_details details;
  int cancelled;
} call;

static void post(server *s, int method);

enum { MAX_CALLS_PER_CLIENT = 2, INFLIGHT_SLOTS = 1 << 16 };

/* Counts a call of client in (delta +1) or out (-1); 0 when it would pass the limit (or the
 * table is full), leaving nothing counted. */
static int inflight_add(server *s, uint64_t client, int delta) {
  pthread_mutex_lock(&s->inflight_mu);
  uint32_t h = (uint32_t)((client * 0x9e3779b97f4a7c15ULL) >> 48), free_slot = INFLIGHT_SLOTS, i = h, ok = 0;
  for (uint32_t probe = 0; probe < INFLIGHT_SLOTS; probe++, i = (i + 1) & (INFLIGHT_SLOTS - 1)) {
    struct inflight *e = &s->inflight[i];
    if (e->used && e->client == client && e->calls) { /* its live entry */
      if (delta > 0 && e->calls >= MAX_CALLS_PER_CLIENT) break;
      e->calls = (uint32_t)((int)e->calls + delta);
      ok = 1;
      break;
    }
    if (free_slot == INFLIGHT_SLOTS && (!e->used || !e->calls)) free_slot = i;
    if (!e->used) break; /* never used: the client is not further along */
  }
  if (!ok && delta > 0 && free_slot < INFLIGHT_SLOTS) {
    s->inflight[free_slot] = (struct inflight){client, 1, 1};
    ok = 1;
  }
  pthread_mutex_unlock(&s->inflight_mu);
  return ok;
}

static void call_free(call *c) {
  if (c->counted) inflight_add(c->s, c->client, -1);
  grpc_metadata_array_destroy(&c->md);
  if (c->method < 0) grpc_call_details_destroy(&c->details);
  if (c->req) grpc_byte_buffer_destroy(c->req);
  if (c->resp) grpc_byte_buffer_destroy(c->resp);
  if (c->call) grpc_call_unref(c->call);
  free(c);
}

static void post(server *s, int method) {
  call *c = calloc(1, sizeof *c);
  if (!c) return;
  c->s = s;
  c->method = method;
  grpc_metadata_array_init(&c->md);
  grpc_call_error e;
  if (method < 0) {
    grpc_call_details_init(&c->details);
    e = grpc_server_request_call(s->gs, &c->call, &c->details, &c->md, s->cq, s->cq, c);
  } else {
    e = grpc_server_request_registered_call(s->gs, s->handles[method], &c->call, &c->deadline, &c->md, NULL, s->cq,
                                            s->cq, c);
  }
  if (e != GRPC_CALL_OK) {
    logj("error", "request_call_failed", "\"method\": %d, \"code\": %d", method, (int)e);
    call_free(c);
  }
}

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
static void reload_revoked(server *s) {
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
static int authenticate(server *s, call *c, uint64_t *client, char *details, size_t dcap) {
  for (size_t i = 0; i < c->md.count; i++) {
    if (grpc_slice_str_cmp(c->md.metadata[i].key, "authorization")) continue;
    grpc_slice v = c->md.metadata[i].value;
    const char *p = (const char *)GRPC_SLICE_START_PTR(v);
    size_t n = GRPC_SLICE_LENGTH(v);
    uint64_t expiry = 0;
    fedrec_token_verdict t = n < 8 || memcmp(p, "Bearer ", 7)
                                 ? FEDREC_TOKEN_INVALID
                                 : fedrec_token_check(p + 7, n - 7, s->token_secret, (uint64_t)time(NULL), client, &expiry);
    if (t == FEDREC_TOKEN_EXPIRED) snprintf(details, dcap, "token expired (ask the operator for a new one)");
    else if (t == FEDREC_TOKEN_VALID && is_revoked(s, *client)) snprintf(details, dcap, "token revoked");
    else if (t == FEDREC_TOKEN_VALID) return 1;
    else snprintf(details, dcap, "missing or invalid token (authorization: Bearer <token>)");
    return 0;
  }
  snprintf(details, dcap, "missing or invalid token (authorization: Bearer <token>)");
  return 0;
}

static grpc_status_code status_of(fedrec_status st) {
  switch (st) {
  case FEDREC_OK: return GRPC_STATUS_OK;
  case FEDREC_ERR_STATE: return GRPC_STATUS_FAILED_PRECONDITION;
  case FEDREC_ERR_PARSE:
  case FEDREC_ERR_ARG: return GRPC_STATUS_INVALID_ARGUMENT;
  case FEDREC_ERR_NOMEM:
  case FEDREC_ERR_LIMIT: return GRPC_STATUS_RESOURCE_EXHAUSTED;
  default: return GRPC_STATUS_INTERNAL;
  }
}

static void model_info(server *s, Fedrec__V1__ModelInfo *mi, fedrec_published *p) {
  fedrec_engine_model(s->engine, p);
  fedrec__v1__model_info__init(mi);
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

static const fedrec_phase SUBMIT_PHASE[] = {
    [FEDREC_RPC_ADVERTISE_KEYS] = FEDREC_PHASE_KEYS, [FEDREC_RPC_SHARE_KEYS] = FEDREC_PHASE_SHARES,
    [FEDREC_RPC_SUBMIT_MASKED_INPUT] = FEDREC_PHASE_MASKED, [FEDREC_RPC_UNMASK] = FEDREC_PHASE_UNMASK};

/* Runs one call's handler: the response buffer (on OK), or a status and details. */
/* The largest request each method can legitimately need: a few fields for queries, one key
 * pair, a cohort's share boxes or reveals, one masked input of the model's padded length. */
static size_t method_cap(server *s, int m) {
  size_t cohort = s->cfg.e.cohort;
  switch (m) {
  case FEDREC_RPC_ADVERTISE_KEYS: return 4096;
  case FEDREC_RPC_SHARE_KEYS:
  case FEDREC_RPC_UNMASK: return 4096 + cohort * (FEDREC_SA_BOX_BYTES + 64);
  case FEDREC_RPC_SUBMIT_MASKED_INPUT: {
    pthread_mutex_lock(&s->mu);
    size_t d = fedrec_ddp_padded((uint32_t)fedrec_model_params(fedrec_engine_current_model(s->engine)));
    pthread_mutex_unlock(&s->mu);
    return 4096 + 4 * d;
  }
  default: return 1024; /* CheckIn, GetModel, GetRoundInfo, GetPhaseInput, Health */
  }
}

static grpc_status_code handle(server *s, call *c, char *details, size_t dcap) {
  int m = c->method;
  size_t bytes = c->req ? grpc_byte_buffer_length(c->req) : 0, cap = method_cap(s, m);
  const char *why;
  if (bytes > cap) {
    snprintf(details, dcap, "a %zu-byte request; %s takes at most %zu", bytes, FEDREC_RPC_REQUESTS[m]->short_name, cap);
    return GRPC_STATUS_RESOURCE_EXHAUSTED;
  }
  if (m == FEDREC_RPC_HEALTH_CHECK) {
    Grpc__Health__V1__HealthCheckRequest *rq = (Grpc__Health__V1__HealthCheckRequest *)fedrec_rpc_unpack_checked(
        &grpc__health__v1__health_check_request__descriptor, c->req, 1, &why);
    if (!rq) {
      snprintf(details, dcap, "HealthCheckRequest %s", why);
      return GRPC_STATUS_INVALID_ARGUMENT;
    }
    int known = !rq->service[0] || !strcmp(rq->service, "fedrec.v1.CoordinatorService");
    protobuf_c_message_free_unpacked(&rq->base, NULL);
    if (!known) {
      snprintf(details, dcap, "unknown service");
      return GRPC_STATUS_NOT_FOUND;
    }
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    c->resp = fedrec_rpc_pack(&r.base);
    return GRPC_STATUS_OK;
  }
  uint64_t client = c->client; /* authenticated before the message was read (on_new_call) */
  ProtobufCMessage *rq = fedrec_rpc_unpack_checked(FEDREC_RPC_REQUESTS[m], c->req, 1, &why);
  if (!rq) {
    snprintf(details, dcap, "malformed %s: %s", FEDREC_RPC_REQUESTS[m]->short_name, why);
    return GRPC_STATUS_INVALID_ARGUMENT;
  }
  if (c->req) {
    size_t n = grpc_byte_buffer_length(c->req);
    pthread_mutex_lock(&s->mu);
    s->m.bytes_in += n;
    pthread_mutex_unlock(&s->mu);
  }
  fedrec_error err = {0};
  fedrec_status st = FEDREC_OK;
  grpc_status_code code = GRPC_STATUS_OK;
  uint64_t now = fedrec_clock_ms();
  pthread_mutex_lock(&s->mu);
  fedrec_engine_tick(s->engine, now);
  switch (m) {
  case FEDREC_RPC_CHECK_IN: {
    Fedrec__V1__CheckInResponse r = FEDREC__V1__CHECK_IN_RESPONSE__INIT;
    Fedrec__V1__ModelInfo mi;
    fedrec_published p;
    int acc;
    uint64_t round;
    uint32_t retry;
    if (((Fedrec__V1__CheckInRequest *)rq)->model_only) {
      acc = 0;
      round = fedrec_engine_round(s->engine);
      retry = s->cfg.e.retry_ms;
    } else {
      st = fedrec_engine_checkin(s->engine, client, now, &acc, &round, &retry, &err);
    }
    if (!st) {
      s->m.checkins++;
      s->m.accepted += acc != 0;
      model_info(s, &mi, &p);
      r.accepted = acc;
      r.round = round;
      r.retry_after_ms = acc ? 0 : retry;
      r.model = &mi;
      r.stopped_reason = (char *)fedrec_engine_stop_reason(s->engine);
      c->resp = fedrec_rpc_pack(&r.base);
    }
    break;
  }
  case FEDREC_RPC_GET_MODEL: {
    Fedrec__V1__GetModelRequest *q = (Fedrec__V1__GetModelRequest *)rq;
    Fedrec__V1__GetModelResponse r = FEDREC__V1__GET_MODEL_RESPONSE__INIT;
    Fedrec__V1__ModelInfo mi;
    fedrec_published p;
    model_info(s, &mi, &p);
    if (q->version != p.version) {
      st = fedrec_error_set(&err, FEDREC_ERR_STATE, "model version %llu is not served; the current one is %llu",
                            (unsigned long long)q->version, (unsigned long long)p.version);
    } else if (q->offset > p.len) {
      st = fedrec_error_set(&err, FEDREC_ERR_ARG, "offset %llu beyond the model's %zu bytes", (unsigned long long)q->offset, p.len);
    } else {
      size_t want = q->max_bytes ? q->max_bytes : (size_t)s->cfg.chunk_kb * 1024;
      if (want > (size_t)s->cfg.chunk_kb * 1024) want = (size_t)s->cfg.chunk_kb * 1024;
      size_t n = p.len - (size_t)q->offset < want ? p.len - (size_t)q->offset : want;
      r.model = &mi;
      r.offset = q->offset;
      r.chunk.data = (uint8_t *)p.blob + q->offset;
      r.chunk.len = n;
      c->resp = fedrec_rpc_pack(&r.base);
      s->m.bytes_out += n;
    }
    break;
  }
  case FEDREC_RPC_GET_ROUND_INFO: {
    Fedrec__V1__GetRoundInfoRequest *q = (Fedrec__V1__GetRoundInfoRequest *)rq;
    Fedrec__V1__GetRoundInfoResponse r = FEDREC__V1__GET_ROUND_INFO_RESPONSE__INIT;
    Fedrec__V1__RoundInfo ri;
    Fedrec__V1__SecAggParams sa;
    Fedrec__V1__DdpParams dp;
    fedrec_round_info info;
    uint32_t retry;
    st = fedrec_engine_round_info(s->engine, client, q->round, now, &info, &retry, &err);
    if (!st) {
      r.retry_after_ms = retry;
      if (!retry) {
        uint64_t dl = fedrec_engine_deadline(s->engine);
        fedrec_rpc_round_info_to_pb(&ri, &sa, &dp, &info, dl > now ? (uint32_t)(dl - now) : 0);
        r.info = &ri;
      }
      c->resp = fedrec_rpc_pack(&r.base);
    }
    break;
  }
  case FEDREC_RPC_GET_PHASE_INPUT: {
    Fedrec__V1__GetPhaseInputRequest *q = (Fedrec__V1__GetPhaseInputRequest *)rq;
    Fedrec__V1__GetPhaseInputResponse r = FEDREC__V1__GET_PHASE_INPUT_RESPONSE__INIT;
    uint8_t *out = NULL;
    size_t len = 0;
    uint32_t retry;
    if (q->phase < FEDREC__V1__PHASE__PHASE_SHARE_KEYS || q->phase > FEDREC__V1__PHASE__PHASE_UNMASKING)
      st = fedrec_error_set(&err, FEDREC_ERR_ARG, "phase %d has no input to fetch", (int)q->phase);
    else
      st = fedrec_engine_fetch(s->engine, client, q->round, (fedrec_phase)q->phase, now, &out, &len, &retry, &err);
    if (!st) {
      r.retry_after_ms = retry;
      r.message.data = out;
      r.message.len = len;
      c->resp = fedrec_rpc_pack(&r.base);
      s->m.bytes_out += len;
      free(out);
    }
    break;
  }
  default: { /* the four submissions share one shape: {round, message} */
    const ProtobufCBinaryData *msg = &((Fedrec__V1__AdvertiseKeysRequest *)rq)->message;
    uint64_t round = ((Fedrec__V1__AdvertiseKeysRequest *)rq)->round;
    int was_banned = fedrec_engine_banned(s->engine, client);
    st = fedrec_engine_submit(s->engine, client, round, SUBMIT_PHASE[m], msg->data, msg->len, now, &err);
    if (st && !was_banned && fedrec_engine_banned(s->engine, client)) {
      char reason[600];
      fedrec_json_escape(reason, sizeof reason, err.msg);
      logj("warn", "client_banned", "\"client\": %llu, \"round\": %llu, \"reason\": \"%s\"", (unsigned long long)client,
           (unsigned long long)round, reason);
    }
    if (!st) {
      Fedrec__V1__AdvertiseKeysResponse r = FEDREC__V1__ADVERTISE_KEYS_RESPONSE__INIT;
      c->resp = fedrec_rpc_pack(&r.base); /* all four responses are empty messages */
    }
    break;
  }
  }
  if (st) {
    code = status_of(st);
    snprintf(details, dcap, "%s", err.msg);
  }
  if (code != GRPC_STATUS_OK && (unsigned)code < 17) s->m.rpc_errors[code]++;
  pthread_mutex_unlock(&s->mu);
  protobuf_c_message_free_unpacked(rq, NULL);
  return code;
}

static void reply(call *c, grpc_status_code code, const char *details) {
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  int n = 0;
  ops[n].op = GRPC_OP_SEND_INITIAL_METADATA; /* mandatory, even for errors (guide pitfall 1) */
  ops[n++].data.send_initial_metadata.count = 0;
  if (c->resp) {
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->resp;
  }
  grpc_slice ds = grpc_slice_from_copied_string(details);
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = code;
  ops[n].data.send_status_from_server.status_details = code == GRPC_STATUS_OK ? NULL : &ds;
  ops[n++].data.send_status_from_server.trailing_metadata_count = 0;
  ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
  ops[n++].data.recv_close_on_server.cancelled = &c->cancelled;
  c->stage = 1;
  grpc_call_error e = grpc_call_start_batch(c->call, ops, (size_t)n, c, NULL);
  grpc_slice_unref(ds);
  if (e != GRPC_CALL_OK) {
    logj("error", "start_batch_failed", "\"code\": %d", (int)e);
    call_free(c);
  }
}

/* A call arrived, with its metadata but not its message (methods are registered with
 * GRPC_SRM_PAYLOAD_NONE): the token is checked first, and only an authenticated call's
 * message is read, so that nobody without a token makes the coordinator hold a message. */
static void on_new_call(server *s, call *c) {
  if (!atomic_load(&s->shutting_down)) post(s, c->method); /* the next call of this method */
  char details[600] = "";
  int m = c->method;
  if (m < 0 || m == FEDREC_RPC_HEALTH_WATCH) {
    reply(c, GRPC_STATUS_UNIMPLEMENTED, "method not implemented");
    return;
  }
  if (m != FEDREC_RPC_HEALTH_CHECK && !authenticate(s, c, &c->client, details, sizeof details)) {
    pthread_mutex_lock(&s->mu);
    s->m.rpc_errors[GRPC_STATUS_UNAUTHENTICATED]++;
    pthread_mutex_unlock(&s->mu);
    reply(c, GRPC_STATUS_UNAUTHENTICATED, details);
    return;
  }
  /* a device makes one call at a time: more than a few at once from one token is a flood,
   * refused before its messages are read (each could be as large as the receive cap) */
  if (m != FEDREC_RPC_HEALTH_CHECK) {
    if (!inflight_add(s, c->client, +1)) {
      pthread_mutex_lock(&s->mu);
      s->m.rpc_errors[GRPC_STATUS_RESOURCE_EXHAUSTED]++;
      pthread_mutex_unlock(&s->mu);
      reply(c, GRPC_STATUS_RESOURCE_EXHAUSTED, "too many calls at once from this device");
      return;
    }
    c->counted = 1;
  }
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->req;
  c->stage = 2;
  if (grpc_call_start_batch(c->call, &op, 1, c, NULL) != GRPC_CALL_OK) {
    logj("error", "start_batch_failed", "\"stage\": \"receive\"");
    call_free(c);
  }
}

/* The authenticated call's message is in: answer it. */
static void on_message(server *s, call *c) {
  char details[600] = "";
  grpc_status_code code = handle(s, c, details, sizeof details);
  if (code != GRPC_STATUS_OK && c->resp) {
    grpc_byte_buffer_destroy(c->resp);
    c->resp = NULL;
  }
  reply(c, code, details);
}

static int SHUTDOWN_TAG;

static void *worker(void *arg) {
  server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    if (ev.tag == &SHUTDOWN_TAG) {
      pthread_mutex_lock(&s->sd_mu);
      s->shutdown_done = 1;
      pthread_cond_broadcast(&s->sd_cv);
      pthread_mutex_unlock(&s->sd_mu);
      continue;
    }
    call *c = ev.tag;
    if (c->stage == 0 && ev.success) on_new_call(s, c);
    else if (c->stage == 2 && ev.success) on_message(s, c);
    else call_free(c); /* a finished reply, a cancelled call, or a request slot cancelled by shutdown */
  }
  return NULL;
}

/* ---------------------------------------------------------------- ticker and metrics */

static void *ticker(void *arg) {
  server *s = arg;
  int told = 0;
  uint64_t reloaded = fedrec_clock_ms();
  while (!atomic_load(&s->shutting_down)) {
    struct timespec d = {0, 50 * 1000000};
    nanosleep(&d, NULL);
    pthread_mutex_lock(&s->mu);
    fedrec_engine_tick(s->engine, fedrec_clock_ms());
    if (fedrec_clock_ms() - reloaded >= 2000) { /* revocations by `fedrec-coordinator revoke` */
      reload_revoked(s);
      reloaded = fedrec_clock_ms();
    }
    if (!told && fedrec_engine_phase(s->engine) == FEDREC_PHASE_STOPPED) {
      char why[800];
      fedrec_json_escape(why, sizeof why, fedrec_engine_stop_reason(s->engine));
      logj("info", "training_stopped", "\"reason\": \"%s\", \"rounds\": %llu", why,
           (unsigned long long)fedrec_engine_rounds_done(s->engine));
      told = 1;
    }
    pthread_mutex_unlock(&s->mu);
  }
  return NULL;
}

/* ---------------------------------------------------------------- file descriptors */

static uint64_t fd_limit(void) {
  struct rlimit rl;
  return getrlimit(RLIMIT_NOFILE, &rl) ? 0 : (uint64_t)rl.rlim_cur;
}

/* Every connection takes a descriptor; the default soft limit (1024) is a few hundred idle
 * connections away. Raised to the hard limit (the unit sets LimitNOFILE). */
static void raise_fd_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* The listener watchdog. gRPC 1.51 stops accepting for good after accept4 fails with EMFILE,
 * while the process stays up and so is never restarted. A connection the kernel completed but
 * nobody accepted sits in the listen queue with no file behind it (inode 0 in /proc/net/tcp):
 * when there are such connections at three looks two seconds apart, one of them at two looks
 * in a row, the listener is stuck, and the coordinator exits (status 3) for its supervisor to
 * restart it. */
typedef struct queued {
  char remote[40];
} queued;

static size_t unaccepted(int port, queued *out, size_t cap) {
  static const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  size_t n = 0;
  for (int f = 0; f < 2; f++) {
    FILE *fp = fopen(files[f], "r");
    char line[512];
    if (!fp) continue;
    while (fgets(line, sizeof line, fp)) {
      char local[64], remote[64];
      unsigned st;
      unsigned long inode;
      if (sscanf(line, " %*d: %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st, &inode) != 4) continue;
      const char *colon = strrchr(local, ':');
      if (!colon || strtol(colon + 1, NULL, 16) != port || st != 1 || inode != 0) continue;
      if (n < cap) snprintf(out[n++].remote, sizeof out->remote, "%.39s", remote);
    }
    fclose(fp);
  }
  return n;
}

typedef struct watchdog_arg {
  server *s;
  int port;
} watchdog_arg;

static void *watchdog(void *arg) {
  watchdog_arg *w = arg;
  enum { CAP = 256 };
  queued *seen[3];
  size_t nseen[3] = {0, 0, 0};
  for (int k = 0; k < 3; k++) seen[k] = calloc(CAP, sizeof(queued));
  for (int tick = 0; seen[0] && seen[1] && seen[2] && !atomic_load(&w->s->shutting_down); tick++) {
    struct timespec d = {2, 0};
    nanosleep(&d, NULL);
    queued *now = seen[tick % 3];
    nseen[tick % 3] = unaccepted(w->port, now, CAP);
    if (tick < 2) continue;
    /* stuck: unaccepted connections at each of three looks, one of them at two in a row (a
     * working listener takes a connection within milliseconds) */
    const queued *prev = seen[(tick + 2) % 3];
    int persists = 0;
    for (size_t a = 0; a < nseen[tick % 3] && !persists; a++)
      for (size_t b = 0; b < nseen[(tick + 2) % 3] && !persists; b++) persists = !strcmp(now[a].remote, prev[b].remote);
    {
      if (persists && nseen[0] && nseen[1] && nseen[2]) {
        logj("error", "listener_stuck", "\"port\": %d, \"unaccepted\": %zu, \"open_files_limit\": %llu, \"action\": "
             "\"exit 3 for the supervisor to restart (see docs/SECURITY.md)\"", w->port, nseen[tick % 3], (unsigned long long)fd_limit());
        _exit(3);
      }
    }
  }
  for (int k = 0; k < 3; k++) free(seen[k]);
  return NULL;
}

static size_t metrics_text(server *s, char *out, size_t cap) {
  static const char *PH[] = {"selecting", "keys", "shares", "masked", "unmask", "stopped"};
  size_t n = 0;
#define PUT(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
  pthread_mutex_lock(&s->mu);
  metrics m = s->m;
  uint64_t round = fedrec_engine_round(s->engine);
  fedrec_phase ph = fedrec_engine_phase(s->engine);
  fedrec_published p;
  fedrec_engine_model(s->engine, &p);
  pthread_mutex_unlock(&s->mu);
  PUT("# HELP fedrec_rounds_total Rounds by outcome.\n# TYPE fedrec_rounds_total counter\n");
  PUT("fedrec_rounds_total{outcome=\"published\"} %llu\n", (unsigned long long)m.rounds_published);
  PUT("fedrec_rounds_total{outcome=\"aborted\"} %llu\n", (unsigned long long)m.rounds_aborted);
  PUT("# HELP fedrec_round Current round number.\n# TYPE fedrec_round gauge\nfedrec_round %llu\n", (unsigned long long)round);
  PUT("# HELP fedrec_phase Current phase (1 for the active one).\n# TYPE fedrec_phase gauge\n");
  for (int i = 0; i < FEDREC_PHASES; i++) PUT("fedrec_phase{phase=\"%s\"} %d\n", PH[i], (int)ph == i);
  PUT("# HELP fedrec_model_version Published model version.\n# TYPE fedrec_model_version gauge\nfedrec_model_version %llu\n",
      (unsigned long long)p.version);
  PUT("# HELP fedrec_checkins_total Check-ins.\n# TYPE fedrec_checkins_total counter\nfedrec_checkins_total %llu\n",
      (unsigned long long)m.checkins);
  PUT("# HELP fedrec_checkins_accepted_total Check-ins taken into a cohort.\n# TYPE fedrec_checkins_accepted_total counter\n"
      "fedrec_checkins_accepted_total %llu\n", (unsigned long long)m.accepted);
  PUT("# HELP fedrec_round_participants Cohort of the last round.\n# TYPE fedrec_round_participants gauge\n"
      "fedrec_round_participants %llu\n", (unsigned long long)m.last_cohort);
  PUT("# HELP fedrec_round_survivors Survivors of the last round.\n# TYPE fedrec_round_survivors gauge\n"
      "fedrec_round_survivors %llu\n", (unsigned long long)m.last_survivors);
  PUT("# HELP fedrec_dropouts_total Clients dropped at each phase's deadline.\n# TYPE fedrec_dropouts_total counter\n");
  for (int i = 1; i <= 4; i++) PUT("fedrec_dropouts_total{phase=\"%s\"} %llu\n", PH[i], (unsigned long long)m.dropouts[i]);
  PUT("# HELP fedrec_phase_duration_ms Duration of each phase in the last round.\n# TYPE fedrec_phase_duration_ms gauge\n");
  for (int i = 1; i <= 4; i++) PUT("fedrec_phase_duration_ms{phase=\"%s\"} %llu\n", PH[i], (unsigned long long)m.last_phase_ms[i]);
  PUT("# HELP fedrec_bytes_total Request and response payload bytes.\n# TYPE fedrec_bytes_total counter\n");
  PUT("fedrec_bytes_total{direction=\"in\"} %llu\nfedrec_bytes_total{direction=\"out\"} %llu\n", (unsigned long long)m.bytes_in,
      (unsigned long long)m.bytes_out);
  PUT("# HELP fedrec_epsilon_spent Cumulative epsilon at the ledger's delta.\n# TYPE fedrec_epsilon_spent gauge\n"
      "fedrec_epsilon_spent %.6f\n", m.epsilon);
  PUT("# HELP fedrec_epsilon_remaining Budget left.\n# TYPE fedrec_epsilon_remaining gauge\nfedrec_epsilon_remaining %.6f\n",
      s->cfg.budget - m.epsilon);
  PUT("# HELP fedrec_rpc_errors_total Failed calls by gRPC status code.\n# TYPE fedrec_rpc_errors_total counter\n");
  for (int i = 1; i < 17; i++)
    if (m.rpc_errors[i]) PUT("fedrec_rpc_errors_total{code=\"%d\"} %llu\n", i, (unsigned long long)m.rpc_errors[i]);
#undef PUT
  return n < cap ? n : cap - 1;
}

static size_t render_metrics(void *ctx, char *out, size_t cap) { return metrics_text(ctx, out, cap); }

/* ---------------------------------------------------------------- serve */

static fedrec_status load_catalogue(server *s, fedrec_error *err) {
  const char *spec = s->cfg.catalogue;
  if (strncmp(spec, "synthetic:", 10) && strcmp(spec, "synthetic"))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue '%s': only synthetic:... catalogues are supported so far", spec);
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  fedrec_status st = spec[9] == ':' ? fedrec_synth_parse(&sc, spec + 10, err) : FEDREC_OK;
  if (!st) st = fedrec_synth_generate(&s->catalogue, &sc, err);
  if (st) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return fedrec_error_set(err, st, "catalogue: %s", msg);
  }
  return FEDREC_OK;
}

/* Settings a state is bound to: its model's shape (catalogue, dim, free embeddings) cannot
 * change on a restart: one given that conflicts is refused, naming the saved value, and one
 * not given takes the saved value. The noise and clipping may change (every ledger entry
 * records its own): loudly, in the log. The first start saves them. */
static fedrec_status check_saved_settings(server *s, const char *db, fedrec_error *err) {
  static const char *BOUND[] = {"catalogue", "dim", "free-embeddings"};
  static const char *LOGGED[] = {"noise", "noise-multiplier", "clip"};
  config *c = &s->cfg;
  char now[512], saved[512];
  const char *keys[6] = {BOUND[0], BOUND[1], BOUND[2], LOGGED[0], LOGGED[1], LOGGED[2]};
  for (int i = 0; i < 6; i++) {
    const char *k = keys[i];
    if (i == 0) snprintf(now, sizeof now, "%s", c->catalogue);
    else if (i == 1) snprintf(now, sizeof now, "%d", c->dim);
    else if (i == 2) snprintf(now, sizeof now, "%d", c->free_embeddings);
    else if (i == 3) snprintf(now, sizeof now, "%s", c->noise);
    else if (i == 4) snprintf(now, sizeof now, "%.17g", c->e.noise_multiplier);
    else snprintf(now, sizeof now, "%.17g", c->e.clip);
    if (coord_store_setting(s->store, k, saved, sizeof saved) && strcmp(now, saved)) {
      if (i < 3 && config_given(c, k))
        return fedrec_error_set(err, FEDREC_ERR_ARG, "%s '%s' conflicts with the saved state's '%s' (%s): the model's shape is "
                                "fixed when training starts; drop the setting, or start a new state-dir", k, now, saved, db);
      if (i < 3) { /* not given: the state's own, through the same checks as a flag's */
        char where[600];
        snprintf(where, sizeof where, "%.560s (saved setting)", db);
        if (!config_set(c, k, saved, where))
          return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: the saved %s '%s' is not valid (edited?)", db, k, saved);
        char js[sizeof saved * 6];
        fedrec_json_escape(js, sizeof js, saved);
        logj("info", "setting_from_state", "\"key\": \"%s\", \"value\": \"%s\"", k, js);
        continue;
      }
      char js[sizeof saved * 6], jn[sizeof now * 6]; /* values from a file or a flag: escaped */
      fedrec_json_escape(js, sizeof js, saved);
      fedrec_json_escape(jn, sizeof jn, now);
      logj("warn", "setting_changed", "\"key\": \"%s\", \"saved\": \"%s\", \"now\": \"%s\", \"note\": "
           "\"rounds from now on use the new value; each ledger entry records its own\"", k, js, jn);
    }
    fedrec_status st = coord_store_set_setting(s->store, k, now, err);
    if (st) return st;
  }
  return FEDREC_OK;
}

static fedrec_status start_engine(server *s, fedrec_error *err) {
  config *c = &s->cfg;
  c->e.noise = !strcmp(c->noise, "dgauss") ? FEDREC_NOISE_DGAUSS : FEDREC_NOISE_SKELLAM;
  c->e.optimizer = !strcmp(c->optimizer, "fedadam") ? FEDREC_OPT_FEDADAM : FEDREC_OPT_FEDAVG;
  char path[600];
  state_path(path, sizeof path, c, "ledger.db");
  struct stat sb;
  int resumed = stat(path, &sb) == 0;
  fedrec_status st = resumed ? fedrec_ledger_open(&s->ledger, path, &s->id, err)
                             : fedrec_ledger_create(&s->ledger, path, c->delta, c->budget, NULL, &s->id, err);
  if (st) return st;
  if (resumed) { /* a ledger's budget and delta are fixed when it is created */
    double lb = fedrec_ledger_budget(s->ledger), ld = fedrec_ledger_delta(s->ledger);
    if ((config_given(c, "budget") && c->budget != lb) || (config_given(c, "delta") && c->delta != ld))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "%s %g conflicts with the saved ledger's %g (%s): a ledger's budget and "
                              "delta are fixed when it is created; drop the setting, or start a new state-dir",
                              config_given(c, "budget") && c->budget != lb ? "budget" : "delta",
                              config_given(c, "budget") && c->budget != lb ? c->budget : c->delta,
                              config_given(c, "budget") && c->budget != lb ? lb : ld, path);
    c->budget = lb, c->delta = ld;
  }
  state_path(path, sizeof path, c, "coordinator.db");
  if ((st = coord_store_open(&s->store, path, err))) return st;
  if ((st = check_saved_settings(s, path, err)) || (st = load_catalogue(s, err))) return st;
  fedrec_engine_callbacks cb = {s, on_publish, on_round};
  coord_saved_model saved;
  fedrec_model model;
  int32_t ni = s->catalogue.R.cols, p = s->catalogue.content_dim;
  st = coord_store_load_latest(s->store, &saved, err);
  if (st == FEDREC_ERR_EMPTY) { /* first start */
    int32_t *all = malloc((size_t)ni * sizeof *all);
    if (!all) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "items");
    for (int32_t i = 0; i < ni; i++) all[i] = i;
    st = fedrec_model_init(&model, ni, c->dim, s->catalogue.content, p, 1, all, c->free_embeddings ? ni : 0, 1, 0.1f, err);
    free(all);
    if (!st) st = fedrec_engine_new(&s->engine, &c->e, &model, 1, &s->id, s->ledger, &cb, NULL, err);
    if (!st) logj("info", "started", "\"resumed\": false, \"model_version\": 1");
    return st;
  }
  if (st) return st;
  /* resume: the newest saved model, checked against our own key, and rounds after the ledger */
  uint64_t ver;
  if (!fedrec_model_verify(saved.blob, saved.len, saved.version, saved.hash, saved.ledger_entries, saved.ledger_head,
                           saved.sig, s->id.pk))
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu fails its signature check", (unsigned long long)saved.version);
  if (!st) st = fedrec_model_decode(&model, &ver, saved.blob, saved.len, s->catalogue.content, p, err);
  if (!st && (ver != saved.version || fedrec_model_params(&model) != saved.dim)) {
    fedrec_model_free(&model);
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu does not match its row", (unsigned long long)saved.version);
  }
  if (!st) {
    /* the engine re-publishes the model it starts from: that row exists, so skip saving it */
    fedrec_engine_callbacks quiet = {s, NULL, on_round};
    st = fedrec_engine_new(&s->engine, &c->e, &model, saved.version, &s->id, s->ledger, &quiet, NULL, err);
  }
  uint64_t next = saved.next_round, lr = fedrec_ledger_last_round(s->ledger), sr = coord_store_last_round(s->store);
  if (lr + 1 > next) next = lr + 1; /* a round recorded in the ledger but never published */
  if (sr + 1 > next) next = sr + 1; /* an aborted round's number is never used again */
  if (!st) st = fedrec_engine_restore(s->engine, next, saved.rounds_done, saved.opt1, saved.opt2, err);
  if (!st) {
    s->m.epsilon = fedrec_ledger_epsilon(s->ledger);
    logj("info", "started", "\"resumed\": true, \"model_version\": %llu, \"next_round\": %llu, \"epsilon\": %.6f",
         (unsigned long long)saved.version, (unsigned long long)next, s->m.epsilon);
  }
  coord_saved_model_free(&saved);
  /* from now on, new models are saved */
  if (!st) fedrec_engine_set_callbacks(s->engine, &cb);
  return st;
}

static int serve(server *s) {
  config *c = &s->cfg;
  fedrec_error err = {0};
  char path[600];
  uint8_t *seed = fedrec_secret_alloc(32);
  s->token_secret = fedrec_secret_alloc(32);
  state_path(path, sizeof path, c, "identity.key");
  if (!seed || !s->token_secret || !read_hex32(path, seed)) {
    fprintf(stderr, "fedrec-coordinator: cannot read %s (run fedrec-coordinator init --state-dir %s)\n", path, c->state_dir);
    return 1;
  }
  state_path(path, sizeof path, c, "token.secret");
  if (!read_hex32(path, s->token_secret)) {
    fprintf(stderr, "fedrec-coordinator: cannot read %s\n", path);
    return 1;
  }
  if (fedrec_identity_from_seed(&s->id, seed)) return 1;
  fedrec_secret_free(seed);
  if (!c->insecure && (!c->tls_cert[0] || !c->tls_key[0])) {
    fprintf(stderr, "fedrec-coordinator: TLS is on by default: give --tls-cert and --tls-key (scripts/gen-dev-certs makes them), "
                    "or --insecure 1 for a plaintext test server\n");
    return 2;
  }
  if (c->e.min_survivors > c->e.cohort || c->e.min_cohort > c->e.cohort || c->e.min_survivors > c->e.min_cohort) {
    fprintf(stderr, "fedrec-coordinator: need min-survivors <= min-cohort <= cohort\n");
    return 2;
  }
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->sd_mu, NULL);
  pthread_mutex_init(&s->revoke_mu, NULL);
  pthread_mutex_init(&s->inflight_mu, NULL);
  s->inflight = calloc(INFLIGHT_SLOTS, sizeof *s->inflight);
  if (!s->inflight) return 1;
  pthread_cond_init(&s->sd_cv, NULL);
  /* the state holds keys, client ids and the ledger: owner only, whatever the umask was */
  umask(077);
  if (chmod(c->state_dir, 0700)) {
    fprintf(stderr, "fedrec-coordinator: cannot make %s owner-only (chmod 0700): %s\n", c->state_dir, strerror(errno));
    return 1;
  }
  if (start_engine(s, &err)) {
    fprintf(stderr, "fedrec-coordinator: %s\n", err.msg);
    return 1;
  }
  reload_revoked(s);
  /* block the signals in every thread; main waits for them */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);

  raise_fd_limit();
  grpc_init();
  s->cq = grpc_completion_queue_create_for_next(NULL);
  /* the largest message any method can need (a masked input of the model's padded length),
   * unless the operator says otherwise: gRPC reads a whole message before the method's own
   * cap can look at it */
  size_t need = method_cap(s, FEDREC_RPC_SUBMIT_MASKED_INPUT), share = method_cap(s, FEDREC_RPC_SHARE_KEYS);
  if (share > need) need = share;
  size_t max_msg = c->max_message_mb ? (size_t)c->max_message_mb << 20 : need;
  if (max_msg > INT32_MAX) max_msg = INT32_MAX;
  grpc_resource_quota *quota = grpc_resource_quota_create("fedrec-coordinator");
  grpc_resource_quota_resize(quota, (size_t)c->memory_quota_mb << 20);
  /* HTTP/2 flow control: gRPC grows a stream's window towards what the link can carry (the
   * BDP probe), and buffers that much of every incoming message; off, each stream holds at
   * most its 64 KiB window, so a flood of large calls costs concurrency x 64 KiB */
  grpc_arg args[9] = {
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, .value.integer = 64 * 1024},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = (int)max_msg},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, .value.integer = (int)c->handshake_ms},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONNECTION_IDLE_MS, .value.integer = (int)c->idle_ms},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONCURRENT_STREAMS, .value.integer = (int)c->max_streams},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_METADATA_SIZE, .value.integer = 16 * 1024},
      {.type = GRPC_ARG_POINTER, .key = GRPC_ARG_RESOURCE_QUOTA, .value.pointer = {quota, grpc_resource_quota_arg_vtable()}}};
  grpc_channel_args ca = {9, args};
  s->gs = grpc_server_create(&ca, NULL);
  grpc_resource_quota_unref(quota);
  logj("info", "limits", "\"max_message_bytes\": %zu, \"memory_quota_mb\": %u, \"handshake_ms\": %u, \"idle_ms\": %u, "
       "\"max_streams\": %u, \"open_files\": %llu", max_msg, c->memory_quota_mb, c->handshake_ms, c->idle_ms, c->max_streams,
       (unsigned long long)fd_limit());
  grpc_server_register_completion_queue(s->gs, s->cq, NULL);
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) {
    s->handles[m] = grpc_server_register_method(s->gs, FEDREC_RPC_METHODS[m], NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    if (!s->handles[m]) {
      fprintf(stderr, "fedrec-coordinator: cannot register %s\n", FEDREC_RPC_METHODS[m]);
      return 1;
    }
  }
  grpc_server_credentials *creds;
  if (c->insecure) {
    creds = grpc_insecure_server_credentials_create();
  } else {
    char *cert = fedrec_rpc_read_text(c->tls_cert), *key = fedrec_rpc_read_text(c->tls_key);
    char *ca_pem = c->tls_client_ca[0] ? fedrec_rpc_read_text(c->tls_client_ca) : NULL;
    if (!cert || !key || (c->tls_client_ca[0] && !ca_pem)) {
      fprintf(stderr, "fedrec-coordinator: cannot read %s\n", !cert ? c->tls_cert : !key ? c->tls_key : c->tls_client_ca);
      return 1;
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_server_credentials_create_ex(
        ca_pem, &pair, 1, ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
    sodium_memzero(key, strlen(key));
    free(cert), free(key), free(ca_pem);
  }
  int port = grpc_server_add_http2_port(s->gs, c->listen, creds);
  grpc_server_credentials_release(creds);
  if (!port) {
    fprintf(stderr, "fedrec-coordinator: cannot listen on %s (in use, or a bad address)\n", c->listen);
    return 1;
  }
  grpc_server_start(s->gs);
  static watchdog_arg wa;
  wa = (watchdog_arg){s, port};
  pthread_t wt;
  if (pthread_create(&wt, NULL, watchdog, &wa) == 0) pthread_detach(wt);
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++)
    for (int k = 0; k < 16; k++) post(s, m);
  post(s, -1);
  int metrics_port = 0;
  pthread_t tt, *workers = calloc((size_t)c->workers, sizeof *workers);
  if (c->metrics_listen[0] && metrics_http_start(&s->metrics, c->metrics_listen, 5, render_metrics, s, &metrics_port, &err)) {
    fprintf(stderr, "fedrec-coordinator: %s\n", err.msg);
    return 1;
  }
  for (int i = 0; i < c->workers; i++) pthread_create(&workers[i], NULL, worker, s);
  pthread_create(&tt, NULL, ticker, s);
  char pk[65];
  sodium_bin2hex(pk, sizeof pk, s->id.pk, 32);
  logj("info", "serving", "\"listen\": \"%s\", \"port\": %d, \"tls\": %s, \"mtls\": %s, \"metrics_port\": %d, \"public_key\": \"%s\"",
       c->listen, port, c->insecure ? "false" : "true", c->tls_client_ca[0] ? "true" : "false", metrics_port, pk);

  int sig = 0;
  sigwait(&sigs, &sig);
  logj("info", "shutting_down", "\"signal\": %d", sig);
  atomic_store(&s->shutting_down, 1);
  grpc_server_shutdown_and_notify(s->gs, s->cq, &SHUTDOWN_TAG);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&s->sd_mu);
  while (!s->shutdown_done)
    if (pthread_cond_timedwait(&s->sd_cv, &s->sd_mu, &until) == ETIMEDOUT) {
      grpc_server_cancel_all_calls(s->gs);
      until.tv_sec += 60;
    }
  pthread_mutex_unlock(&s->sd_mu);
  grpc_completion_queue_shutdown(s->cq);
  for (int i = 0; i < c->workers; i++) pthread_join(workers[i], NULL);
  pthread_join(tt, NULL);
  metrics_http_stop(s->metrics);
  free(workers);
  grpc_server_destroy(s->gs);
  grpc_completion_queue_destroy(s->cq);
  grpc_shutdown();
  fedrec_engine_free(s->engine);
  fedrec_ledger_close(s->ledger);
  coord_store_close(s->store);
  fedrec_dataset_free(&s->catalogue);
  fedrec_identity_free(&s->id);
  fedrec_secret_free(s->token_secret);
  logj("info", "stopped", NULL);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (fedrec_crypto_init()) return 1;
  static server srv;
  config *c = &srv.cfg;
  config_defaults(c);
  const char *cmd = argv[1];
  uint64_t id = 0, version = 0, days = 365;
  int have_id = 0;
  const char *out = NULL;
  /* a config file first, so that flags override it */
  for (int i = 2; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--config") && !config_file(c, argv[i + 1])) return 2;
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i];
    if (strncmp(f, "--", 2) || i + 1 >= argc) {
      fprintf(stderr, "fedrec-coordinator: '%s': expected --key value (see --help)\n", f);
      return 2;
    }
    const char *v = argv[++i];
    if (!strcmp(f, "--config")) continue;
    if (!strcmp(f, "--out")) {
      out = v;
      continue;
    }
    if (!strcmp(f, "--version")) {
      char *end;
      errno = 0;
      version = strtoull(v, &end, 10);
      if (*end || errno || !*v) {
        fprintf(stderr, "fedrec-coordinator: --version: '%s' is not a whole number\n", v);
        return 2;
      }
      continue;
    }
    if (!strcmp(f, "--days")) {
      char *end;
      errno = 0;
      days = strtoull(v, &end, 10);
      if (*end || errno || !*v || v[0] == '-' || days < 1 || days > 3650) {
        fprintf(stderr, "fedrec-coordinator: --days: '%s' is not a whole number of days in 1..3650\n", v);
        return 2;
      }
      continue;
    }
    if (!strcmp(f, "--id")) {
      char *end;
      errno = 0;
      id = strtoull(v, &end, 10);
      if (*end || errno || !(v[0] >= '0' && v[0] <= '9')) { /* strtoull takes "-1" and " 1" */
        fprintf(stderr, "fedrec-coordinator: --id: '%s' is not a whole number\n", v);
        return 2;
      }
      have_id = 1;
      continue;
    }
    if (!config_set(c, f + 2, v, "command line")) return 2;
  }
  if (strcmp(c->noise, "skellam") && strcmp(c->noise, "dgauss")) {
    fprintf(stderr, "fedrec-coordinator: noise: '%s' is not skellam or dgauss\n", c->noise);
    return 2;
  }
  if (strcmp(c->optimizer, "fedavg") && strcmp(c->optimizer, "fedadam")) {
    fprintf(stderr, "fedrec-coordinator: optimizer: '%s' is not fedavg or fedadam\n", c->optimizer);
    return 2;
  }
  if (!strcmp(cmd, "init")) return cmd_init(c);
  if (!strcmp(cmd, "token")) {
    if (!have_id) {
      fprintf(stderr, "fedrec-coordinator token: --id is required\n");
      return 2;
    }
    return cmd_token(c, id, days);
  }
  if (!strcmp(cmd, "revoke")) {
    if (!have_id) {
      fprintf(stderr, "fedrec-coordinator revoke: --id is required\n");
      return 2;
    }
    return cmd_revoke(c, id);
  }
  if (!strcmp(cmd, "serve")) return serve(&srv);
  if (!strcmp(cmd, "status")) return cmd_status(c);
  if (!strcmp(cmd, "export-model")) {
    if (!out) {
      fprintf(stderr, "fedrec-coordinator export-model: --out is required\n");
      return 2;
    }
    return cmd_export(c, version, out);
  }
  fprintf(stderr, "fedrec-coordinator: unknown command '%s' (init, token, revoke, serve, status, export-model)\n", cmd);
  return 2;
}
