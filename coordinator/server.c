/* fedrec-coordinator's gRPC server around the round engine.
 *
 * gRPC C core with a completion queue drained by worker threads (see
 * ../shared/docs/GRPC-C-GUIDE.md); every RPC is unary and answered at once, so no call is
 * held. A call arrives with its metadata only (methods registered without payload): its
 * token is checked before its message is read. The engine is single-threaded: one mutex
 * around it. A ticker thread advances phases on deadlines; a watchdog restarts the process
 * when the listener stops accepting. The handlers are in handlers.c. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "server.h"

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

static void reply(call *c, grpc_status_code code, const char *details) {
  c->stage = 1;
  grpc_call_error e = fedrec_rpc_reply(c->call, c->resp, code, details, &c->cancelled, c);
  if (e != GRPC_CALL_OK) {
    logj("error", "start_batch_failed", "\"code\": %d", (int)e);
    call_free(c);
  }
}

/* 1 when the call came over TLS (the listen port), 0 over plaintext (health-listen). */
static int over_tls(grpc_call *gc) {
  grpc_auth_context *ctx = grpc_call_auth_context(gc);
  int tls = 0;
  if (ctx) {
    grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME);
    const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
    tls = p && p->value && ((p->value_length == 3 && !memcmp(p->value, GRPC_SSL_TRANSPORT_SECURITY_TYPE, 3)) ||
                            (p->value_length == 3 && !memcmp(p->value, GRPC_TLS_TRANSPORT_SECURITY_TYPE, 3)));
    grpc_auth_context_release(ctx);
  }
  return tls;
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
  /* the plaintext health port answers health checks only; nothing else is read there */
  if (m != FEDREC_RPC_HEALTH_CHECK && !s->cfg.insecure && !over_tls(c->call)) {
    pthread_mutex_lock(&s->mu);
    s->m.rpc_errors[GRPC_STATUS_PERMISSION_DENIED]++;
    pthread_mutex_unlock(&s->mu);
    reply(c, GRPC_STATUS_PERMISSION_DENIED, "this port answers grpc.health.v1 Check only (plaintext): use the TLS address");
    return;
  }
  uint32_t agg = 0;
  int agg_method = m == FEDREC_RPC_GET_ASSIGNMENT || m == FEDREC_RPC_SUBMIT_AGGREGATE;
  if (agg_method && aggregator_authenticate(s, c->call, &agg, details, sizeof details)) c->client = AGGREGATOR_CLIENT_BASE + agg;
  if (m != FEDREC_RPC_HEALTH_CHECK && !agg && (agg_method || !authenticate(s, c, &c->client, details, sizeof details))) {
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
  grpc_status_code code = handle_call(s, c, details, sizeof details);
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

/* The accepting thread. gRPC accepts connections on whichever thread is polling, and the
 * workers poll only between calls: when every worker waits for the engine's mutex (a round's
 * end holds it while it unmasks), nobody accepts, and a burst of new connections sits in the
 * listen queue (the soak's 300 devices made the watchdog restart the coordinator once). This
 * thread polls a completion queue of its own that never gets a call, so it never waits for the
 * engine. */
static void *acceptor(void *arg) {
  server *s = arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(s->accept_cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
  }
  return NULL;
}

static void *ticker(void *arg) {
  server *s = arg;
  int told = 0;
  uint64_t reloaded = fedrec_clock_ms();
  while (!atomic_load(&s->shutting_down)) {
    struct timespec d = {0, 50 * 1000000};
    nanosleep(&d, NULL);
    pthread_mutex_lock(&s->mu);
    fedrec_engine_tick(s->engine, fedrec_clock_ms());
    if (s->pending) catalogue_apply_pending(s);
    aggregators_tick(s, fedrec_clock_ms());
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
 * nobody accepted sits in the listen queue with no file behind it (inode 0 in /proc/net/tcp).
 * The listener is stuck when there are such connections at three looks two seconds apart, one
 * of them at two looks in a row, and no connection was accepted between the looks (no new
 * socket inode on the port): then the coordinator exits (status 3) for its supervisor to
 * restart it. A listener that is only slow (a burst of hundreds of devices on a busy machine)
 * keeps accepting, and is left alone. */
enum { WATCH_CAP = 256, WATCH_ICAP = 8192 };
typedef struct look {
  char remote[WATCH_CAP][40]; /* unaccepted connections' remote addresses */
  size_t n;
  unsigned long inode[WATCH_ICAP]; /* accepted connections' socket inodes */
  size_t ni;
} look;

static void take_look(int port, look *l) {
  static const char *files[] = {"/proc/net/tcp", "/proc/net/tcp6"};
  l->n = l->ni = 0;
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
      if (!colon || strtol(colon + 1, NULL, 16) != port || st != 1) continue;
      if (inode && l->ni < WATCH_ICAP) l->inode[l->ni++] = inode;
      else if (!inode && l->n < WATCH_CAP) snprintf(l->remote[l->n++], sizeof l->remote[0], "%.39s", remote);
    }
    fclose(fp);
  }
}

static int cmp_ulong(const void *a, const void *b) {
  unsigned long x = *(const unsigned long *)a, y = *(const unsigned long *)b;
  return (x > y) - (x < y);
}

/* 1 when b shows a connection accepted since a (an inode a did not have; a's sorted). */
static int accepted_since(const look *a, const look *b) {
  for (size_t i = 0; i < b->ni; i++)
    if (!bsearch(&b->inode[i], a->inode, a->ni, sizeof a->inode[0], cmp_ulong)) return 1;
  return 0;
}

typedef struct watchdog_arg {
  server *s;
  int port;
} watchdog_arg;

static void *watchdog(void *arg) {
  watchdog_arg *w = arg;
  look *seen = calloc(3, sizeof *seen);
  for (int tick = 0; seen && !atomic_load(&w->s->shutting_down); tick++) {
    struct timespec d = {2, 0};
    nanosleep(&d, NULL);
    look *now = &seen[tick % 3], *prev = &seen[(tick + 2) % 3], *first = &seen[(tick + 1) % 3];
    take_look(w->port, now);
    qsort(now->inode, now->ni, sizeof now->inode[0], cmp_ulong);
    atomic_store(&w->s->listen_unaccepted, now->n);
    if (tick < 2) continue;
    int persists = 0;
    for (size_t a = 0; a < now->n && !persists; a++)
      for (size_t b = 0; b < prev->n && !persists; b++) persists = !strcmp(now->remote[a], prev->remote[b]);
    if (persists && now->n && prev->n && first->n && !accepted_since(first, prev) && !accepted_since(prev, now)) {
      logj("error", "listener_stuck", "\"port\": %d, \"unaccepted\": %zu, \"open_files_limit\": %llu, \"action\": "
           "\"exit 3 for the supervisor to restart (see docs/SECURITY.md)\"", w->port, now->n, (unsigned long long)fd_limit());
      _exit(3);
    }
  }
  free(seen);
  return NULL;
}

/* The identity key and the token secret from the state directory (secure memory). */
static int load_keys(server *s) {
  config *c = &s->cfg;
  char path[600];
  uint8_t *seed = fedrec_secret_alloc(32);
  s->token_secret = fedrec_secret_alloc(32);
  state_path(path, sizeof path, c, "identity.key");
  if (!seed || !s->token_secret || !read_hex32(path, seed)) {
    fprintf(stderr, "fedrec-coordinator: cannot read %s (run fedrec-coordinator init --state-dir %s)\n", path, c->state_dir);
    return 0;
  }
  state_path(path, sizeof path, c, "token.secret");
  if (!read_hex32(path, s->token_secret)) {
    fprintf(stderr, "fedrec-coordinator: cannot read %s\n", path);
    return 0;
  }
  int ok = fedrec_identity_from_seed(&s->id, seed) == 0;
  fedrec_secret_free(seed);
  return ok;
}

/* The gRPC server with its limits, and every method registered; the receive cap in *max_msg. */
static int create_grpc_server(server *s, size_t *max_msg) {
  config *c = &s->cfg;
  /* the largest message any method can need (a masked input of the model's padded length),
   * unless the operator says otherwise: gRPC reads a whole message before the method's own
   * cap can look at it */
  size_t need = method_cap(s, FEDREC_RPC_SUBMIT_AGGREGATE), share = method_cap(s, FEDREC_RPC_SHARE_KEYS);
  if (share > need) need = share;
  *max_msg = c->max_message_mb ? (size_t)c->max_message_mb << 20 : need;
  if (*max_msg > INT32_MAX) *max_msg = INT32_MAX;
  grpc_resource_quota *quota = grpc_resource_quota_create("fedrec-coordinator");
  grpc_resource_quota_resize(quota, (size_t)c->memory_quota_mb << 20);
  /* HTTP/2 flow control: gRPC grows a stream's window towards what the link can carry (the
   * BDP probe), and buffers that much of every incoming message; off, each stream holds at
   * most its 64 KiB window, so a flood of large calls costs concurrency x 64 KiB */
  grpc_arg args[9] = {
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, .value.integer = 64 * 1024},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = (int)*max_msg},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, .value.integer = (int)c->handshake_ms},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONNECTION_IDLE_MS, .value.integer = (int)c->idle_ms},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_CONCURRENT_STREAMS, .value.integer = (int)c->max_streams},
      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_METADATA_SIZE, .value.integer = 16 * 1024},
      {.type = GRPC_ARG_POINTER, .key = GRPC_ARG_RESOURCE_QUOTA, .value.pointer = {quota, grpc_resource_quota_arg_vtable()}}};
  grpc_channel_args ca = {9, args};
  s->gs = grpc_server_create(&ca, NULL);
  grpc_resource_quota_unref(quota);
  grpc_server_register_completion_queue(s->gs, s->cq, NULL);
  grpc_server_register_completion_queue(s->gs, s->accept_cq, NULL); /* the acceptor's: no call ever arrives on it */
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) {
    s->handles[m] = grpc_server_register_method(s->gs, fedrec_rpc_path(m), NULL, GRPC_SRM_PAYLOAD_NONE, 0);
    if (!s->handles[m]) {
      fprintf(stderr, "fedrec-coordinator: cannot register %s\n", fedrec_rpc_path(m));
      return 0;
    }
  }
  return 1;
}

/* TLS (with client certificates when tls-client-ca is set), or plaintext with --insecure 1;
 * NULL when a file cannot be read. The private key's copy is wiped. */
static grpc_server_credentials *credentials(const config *c) {
  if (c->insecure) return grpc_insecure_server_credentials_create();
  char *cert = fedrec_rpc_read_text(c->tls_cert), *key = fedrec_rpc_read_text(c->tls_key);
  char *ca_pem = c->tls_client_ca[0] ? fedrec_rpc_read_text(c->tls_client_ca) : NULL;
  grpc_server_credentials *creds = NULL;
  if (!cert || !key || (c->tls_client_ca[0] && !ca_pem)) {
    fprintf(stderr, "fedrec-coordinator: cannot read %s\n", !cert ? c->tls_cert : !key ? c->tls_key : c->tls_client_ca);
  } else {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_server_credentials_create_ex(
        ca_pem, &pair, 1, ca_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
  }
  if (key) sodium_memzero(key, strlen(key));
  free(cert), free(key), free(ca_pem);
  return creds;
}

/* Settings that cannot work together, refused before anything starts. */
int check_settings(const config *c) {
  if (!c->insecure && (!c->tls_cert[0] || !c->tls_key[0])) {
    fprintf(stderr, "fedrec-coordinator: TLS is on by default: give --tls-cert and --tls-key (scripts/gen-dev-certs makes them), "
                    "or --insecure 1 for a plaintext test server\n");
    return 0;
  }
  aggregator_entry aggs[FEDREC_MAX_AGGREGATORS];
  uint32_t naggs;
  char why[256];
  if (c->aggregators[0] && (!aggregators_parse(c->aggregators, aggs, &naggs, why, sizeof why) || c->insecure ||
                            !c->aggregator_listen[0] || !c->aggregator_ca[0])) {
    fprintf(stderr, "fedrec-coordinator: %s\n", c->insecure ? "aggregators need TLS (not --insecure): they are told apart by "
                    "their client certificates" : !c->aggregator_listen[0] || !c->aggregator_ca[0]
                    ? "aggregators need aggregator-listen and aggregator-ca" : why);
    return 0;
  }
  if (c->catalogue_precision != 32 && c->catalogue_precision != 16 && c->catalogue_precision != 8) {
    fprintf(stderr, "fedrec-coordinator: catalogue-precision %d: give 32, 16 or 8\n", c->catalogue_precision);
    return 0;
  }
  if (c->e.min_survivors > c->e.cohort || c->e.min_cohort > c->e.cohort || c->e.min_survivors > c->e.min_cohort) {
    fprintf(stderr, "fedrec-coordinator: need min-survivors <= min-cohort <= cohort\n");
    return 0;
  }
  return 1;
}

/* Locks, the in-flight table, an owner-only state directory, and the engine. */
static int prepare(server *s) {
  config *c = &s->cfg;
  fedrec_error err = {0};
  pthread_mutex_init(&s->mu, NULL);
  pthread_mutex_init(&s->sd_mu, NULL);
  pthread_mutex_init(&s->revoke_mu, NULL);
  pthread_mutex_init(&s->inflight_mu, NULL);
  pthread_cond_init(&s->sd_cv, NULL);
  s->inflight = calloc(INFLIGHT_SLOTS, sizeof *s->inflight);
  if (!s->inflight) return 0;
  /* the state holds keys, client ids and the ledger: owner only, whatever the umask was */
  umask(077);
  if (chmod(c->state_dir, 0700)) {
    fprintf(stderr, "fedrec-coordinator: cannot make %s owner-only (chmod 0700): %s\n", c->state_dir, strerror(errno));
    return 0;
  }
  if (start_engine(s, &err)) {
    fprintf(stderr, "fedrec-coordinator: %s\n", err.msg);
    return 0;
  }
  reload_revoked(s);
  return 1;
}

/* Stops taking calls, lets those in flight finish (5 s, then cancels them), joins the
 * threads and frees everything. */
static void shut_down(server *s, pthread_t *workers, pthread_t ticker_thread) {
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
  grpc_completion_queue_shutdown(s->accept_cq);
  for (int i = 0; i < s->cfg.workers; i++) pthread_join(workers[i], NULL);
  pthread_join(s->accept_thread, NULL);
  pthread_join(ticker_thread, NULL);
  metrics_http_stop(s->metrics);
  grpc_server_destroy(s->gs);
  grpc_completion_queue_destroy(s->cq);
  grpc_completion_queue_destroy(s->accept_cq);
  grpc_shutdown();
  fedrec_engine_free(s->engine);
  fedrec_ledger_close(s->ledger);
  coord_store_close(s->store);
  fedrec_catalogue_free(&s->cat);
  fedrec_catalogue_free(&s->pending_cat);
  fedrec_idmap_free(s->free_ids);
  fedrec_identity_free(&s->id);
  fedrec_secret_free(s->token_secret);
  aggregators_free(s);
}

int serve(server *s) {
  config *c = &s->cfg;
  fedrec_error err = {0};
  if (!load_keys(s)) return 1;
  if (!check_settings(c)) return 2;
  if (!prepare(s)) return 1;
  /* block the signals in every thread; this one waits for them */
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGHUP); /* reread the catalogue files */
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  raise_fd_limit();
  grpc_init();
  s->cq = grpc_completion_queue_create_for_next(NULL);
  s->accept_cq = grpc_completion_queue_create_for_next(NULL);
  size_t max_msg;
  if (!create_grpc_server(s, &max_msg)) return 1;
  pthread_mutex_lock(&s->mu);
  s->max_msg = max_msg;
  pthread_mutex_unlock(&s->mu);
  logj("info", "limits", "\"max_message_bytes\": %zu, \"memory_quota_mb\": %u, \"handshake_ms\": %u, \"idle_ms\": %u, "
       "\"max_streams\": %u, \"open_files\": %llu", max_msg, c->memory_quota_mb, c->handshake_ms, c->idle_ms, c->max_streams,
       (unsigned long long)fd_limit());
  grpc_server_credentials *creds = credentials(c);
  if (!creds) return 1;
  int port = grpc_server_add_http2_port(s->gs, c->listen, creds);
  grpc_server_credentials_release(creds);
  if (!port) {
    fprintf(stderr, "fedrec-coordinator: cannot listen on %s (in use, or a bad address)\n", c->listen);
    return 1;
  }
  int health_port = 0;
  if (c->health_listen[0]) {
    grpc_server_credentials *plain = grpc_insecure_server_credentials_create();
    health_port = grpc_server_add_http2_port(s->gs, c->health_listen, plain);
    grpc_server_credentials_release(plain);
    if (!health_port) {
      fprintf(stderr, "fedrec-coordinator: cannot listen on health-listen %s (in use, or a bad address)\n", c->health_listen);
      return 1;
    }
  }
  int agg_port = 0;
  if (!aggregators_listen(s, &agg_port)) return 1;
  grpc_server_start(s->gs);
  pthread_mutex_lock(&s->mu);
  s->m.start_time = s->m.last_round_time = (double)time(NULL);
  pthread_mutex_unlock(&s->mu);
  static watchdog_arg wa;
  wa = (watchdog_arg){s, port};
  pthread_t wt;
  if (pthread_create(&wt, NULL, watchdog, &wa) == 0) pthread_detach(wt);
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++)
    for (int k = 0; k < 16; k++) post(s, m);
  post(s, -1);
  int metrics_port = 0;
  pthread_t tt, *workers = calloc((size_t)c->workers, sizeof *workers);
  if (!workers || (c->metrics_listen[0] && metrics_http_start(&s->metrics, c->metrics_listen, 5, metrics_render, status_page_render, s,
                                                              &metrics_port, &err))) {
    fprintf(stderr, "fedrec-coordinator: %s\n", workers ? err.msg : "out of memory");
    return 1;
  }
  for (int i = 0; i < c->workers; i++) pthread_create(&workers[i], NULL, worker, s);
  pthread_create(&tt, NULL, ticker, s);
  pthread_create(&s->accept_thread, NULL, acceptor, s);
  char pk[65];
  sodium_bin2hex(pk, sizeof pk, s->id.pk, 32);
  logj("info", "serving", "\"listen\": \"%s\", \"port\": %d, \"tls\": %s, \"mtls\": %s, \"metrics_port\": %d, \"health_port\": %d, "
       "\"aggregator_port\": %d, \"aggregators\": %u, \"public_key\": \"%s\"", c->listen, port, c->insecure ? "false" : "true",
       c->tls_client_ca[0] ? "true" : "false", metrics_port, health_port, agg_port, s->naggs, pk);
  int sig = 0;
  while (!sigwait(&sigs, &sig) && sig == SIGHUP) catalogue_reload(s);
  logj("info", "shutting_down", "\"signal\": %d", sig);
  shut_down(s, workers, tt);
  free(workers);
  logj("info", "stopped", NULL);
  return 0;
}
