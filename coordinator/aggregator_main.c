/* fedrec-aggregator: takes the masked-input phase of a share of each cohort off the
 * coordinator (docs/DEPLOY.md, "Aggregators").
 *
 *   fedrec-aggregator --listen ADDR --coordinator HOST:PORT --tls-cert F --tls-key F
 *                     --client-cert F --client-key F --ca F [--KEY VALUE ...]
 *
 * Devices call SubmitMaskedInput here (TLS, the ticket from their round info as the bearer
 * token); the aggregator calls the coordinator's AggregatorService with its client
 * certificate. A call's ticket is checked before its message is read. Logs: one JSON object
 * per line on stderr. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "aggregator.h"
#include "fedrec/internal/tool.h"
#include "logj.h"
#include "metrics_http.h"

typedef struct flag {
  const char *key;
  size_t off, size; /* size 0: a uint32_t within [lo, hi] */
  uint32_t lo, hi;
  const char *help;
} flag;

#define STR(k, f, h) {k, offsetof(agg_config, f), sizeof(((agg_config *)0)->f), 0, 0, h}
#define NUM(k, f, lo, hi, h) {k, offsetof(agg_config, f), 0, lo, hi, h}
static const flag FLAGS[] = {
    STR("listen", listen, "address:port devices send their masked inputs to (TLS)"),
    STR("coordinator", coordinator, "the coordinator's aggregator-listen address (host:port)"),
    STR("tls-cert", tls_cert, "certificate served to devices (PEM; their roots must verify it)"),
    STR("tls-key", tls_key, "its private key"),
    STR("client-cert", client_cert, "certificate presented to the coordinator (from its aggregator-ca; common name: this aggregator's name there)"),
    STR("client-key", client_key, "its private key"),
    STR("ca", ca, "roots that verify the coordinator's certificate"),
    STR("health-listen", health_listen, "a plaintext address:port answering grpc.health.v1 Check only ('' off)"),
    STR("metrics-listen", metrics_listen, "address:port for Prometheus text ('' off)"),
    NUM("workers", workers, 1, 64, "completion-queue worker threads"),
    NUM("poll-ms", poll_ms, 20, 60000, "how often the assignment is asked for"),
    NUM("call-ms", call_ms, 100, 600000, "deadline of a call to the coordinator"),
    NUM("max-message-mb", max_message_mb, 1, 2047, "largest masked input accepted"),
    {NULL, 0, 0, 0, 0, NULL}};

static void usage(FILE *f) {
  fprintf(f, "usage: fedrec-aggregator --KEY VALUE ...\n");
  for (const flag *g = FLAGS; g->key; g++) fprintf(f, "  --%-16s %s\n", g->key, g->help);
}

static int parse(agg_config *c, int argc, char **argv) {
  memset(c, 0, sizeof *c);
  c->workers = 2, c->poll_ms = 200, c->call_ms = 30000, c->max_message_mb = 64;
  for (int i = 1; i < argc; i++) {
    const flag *g = FLAGS;
    while (g->key && (strncmp(argv[i], "--", 2) || strcmp(argv[i] + 2, g->key))) g++;
    if (!g->key || i + 1 >= argc) {
      fprintf(stderr, "fedrec-aggregator: %s: %s\n", argv[i], g->key ? "needs a value" : "unknown flag (--help lists them)");
      return 0;
    }
    const char *v = argv[++i];
    char *end;
    if (g->size) {
      if (strlen(v) >= g->size) {
        fprintf(stderr, "fedrec-aggregator: --%s: longer than %zu characters\n", g->key, g->size - 1);
        return 0;
      }
      memcpy((char *)c + g->off, v, strlen(v) + 1);
      continue;
    }
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || *end || !*v || x < g->lo || x > g->hi) {
      fprintf(stderr, "fedrec-aggregator: --%s %s: want a whole number in [%u, %u]\n", g->key, v, g->lo, g->hi);
      return 0;
    }
    *(uint32_t *)((char *)c + g->off) = (uint32_t)x;
  }
  const char *need[] = {c->listen, c->coordinator, c->tls_cert, c->tls_key, c->client_cert, c->client_key, c->ca};
  const char *names[] = {"listen", "coordinator", "tls-cert", "tls-key", "client-cert", "client-key", "ca"};
  for (int k = 0; k < 7; k++)
    if (!need[k][0]) {
      fprintf(stderr, "fedrec-aggregator: --%s is needed (TLS both ways: devices, and the coordinator)\n", names[k]);
      return 0;
    }
  return 1;
}

/* A device's call: admitted on its ticket (stage 0 -> 2), its message read, answered (1). */
typedef struct agg_call {
  aggregator *a;
  int method; /* 0 SubmitMaskedInput, 1 health Check, -1 anything else */
  int stage, cancelled;
  uint32_t slot;
  uint64_t gen;
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_call_details details;
  grpc_byte_buffer *req, *resp;
} agg_call;

typedef struct device_server {
  aggregator *a;
  grpc_server *gs;
  grpc_completion_queue *cq;
  void *handles[2];
  atomic_int shutting_down;
} device_server;

static device_server S;

static void call_free(agg_call *c) {
  grpc_metadata_array_destroy(&c->md);
  if (c->method < 0) grpc_call_details_destroy(&c->details);
  if (c->req) grpc_byte_buffer_destroy(c->req);
  if (c->resp) grpc_byte_buffer_destroy(c->resp);
  if (c->call) grpc_call_unref(c->call);
  free(c);
}

static void post(int method) {
  agg_call *c = calloc(1, sizeof *c);
  if (!c) return;
  c->a = S.a;
  c->method = method;
  grpc_metadata_array_init(&c->md);
  grpc_call_error e;
  if (method < 0) {
    grpc_call_details_init(&c->details);
    e = grpc_server_request_call(S.gs, &c->call, &c->details, &c->md, S.cq, S.cq, c);
  } else {
    e = grpc_server_request_registered_call(S.gs, S.handles[method], &c->call, &c->deadline, &c->md, NULL, S.cq, S.cq, c);
  }
  if (e != GRPC_CALL_OK) call_free(c);
}

static void answer(agg_call *c, grpc_status_code code, const char *details) {
  c->stage = 1;
  if (fedrec_rpc_reply(c->call, code == GRPC_STATUS_OK ? c->resp : NULL, code, details, &c->cancelled, c) != GRPC_CALL_OK) call_free(c);
}

static void on_new_call(agg_call *c) {
  if (!atomic_load(&S.shutting_down)) post(c->method);
  char details[300] = "";
  if (c->method < 0) {
    answer(c, GRPC_STATUS_UNIMPLEMENTED, "method not implemented (an aggregator takes SubmitMaskedInput only)");
    return;
  }
  if (c->method == 0) {
    grpc_status_code code = agg_admit(c->a, &c->md, &c->slot, &c->gen, details, sizeof details);
    if (code != GRPC_STATUS_OK) {
      answer(c, code, details);
      return;
    }
  }
  grpc_op op;
  memset(&op, 0, sizeof op);
  op.op = GRPC_OP_RECV_MESSAGE;
  op.data.recv_message.recv_message = &c->req;
  c->stage = 2;
  if (grpc_call_start_batch(c->call, &op, 1, c, NULL) != GRPC_CALL_OK) call_free(c);
}

static void on_message(agg_call *c) {
  char details[600] = "";
  grpc_status_code code;
  if (c->method == 0) {
    code = agg_take(c->a, c->slot, c->gen, c->req, details, sizeof details);
    Fedrec__V1__SubmitMaskedInputResponse r = FEDREC__V1__SUBMIT_MASKED_INPUT_RESPONSE__INIT;
    if (code == GRPC_STATUS_OK) c->resp = fedrec_rpc_pack(&r.base);
  } else { /* health: the server as a whole ("") */
    const char *why;
    Grpc__Health__V1__HealthCheckRequest *q =
        (Grpc__Health__V1__HealthCheckRequest *)fedrec_rpc_unpack_checked(&grpc__health__v1__health_check_request__descriptor, c->req, 1, &why);
    code = !q ? GRPC_STATUS_INVALID_ARGUMENT : q->service[0] ? GRPC_STATUS_NOT_FOUND : GRPC_STATUS_OK;
    snprintf(details, sizeof details, "%s", !q ? "malformed HealthCheckRequest" : "unknown service");
    Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
    r.status = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
    if (code == GRPC_STATUS_OK) c->resp = fedrec_rpc_pack(&r.base);
    if (q) protobuf_c_message_free_unpacked(&q->base, NULL);
  }
  answer(c, code, details);
}

static int SHUTDOWN_TAG;
static pthread_mutex_t sd_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sd_cv = PTHREAD_COND_INITIALIZER;
static int shutdown_done;

static void *worker(void *arg) {
  (void)arg;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(S.cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) break;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    if (ev.tag == &SHUTDOWN_TAG) {
      pthread_mutex_lock(&sd_mu);
      shutdown_done = 1;
      pthread_cond_broadcast(&sd_cv);
      pthread_mutex_unlock(&sd_mu);
      continue;
    }
    agg_call *c = ev.tag;
    if (c->stage == 0 && ev.success) on_new_call(c);
    else if (c->stage == 2 && ev.success) on_message(c);
    else {
      if (c->stage == 2 && c->method == 0) agg_release(c->a, c->slot, c->gen); /* gone before its message */
      call_free(c);
    }
  }
  return NULL;
}

/* The channel to the coordinator, with the aggregator's client certificate. */
static grpc_channel *upstream(const agg_config *c) {
  char *ca = fedrec_rpc_read_text(c->ca), *cert = fedrec_rpc_read_text(c->client_cert), *key = fedrec_rpc_read_text(c->client_key);
  grpc_channel *ch = NULL;
  if (ca && cert && key) {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    grpc_channel_credentials *creds = grpc_ssl_credentials_create(ca, &pair, NULL, NULL);
    grpc_arg args[2] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 500},
                        {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 2000}};
    grpc_channel_args ca_args = {2, args};
    ch = grpc_channel_create(c->coordinator, creds, &ca_args);
    grpc_channel_credentials_release(creds);
  } else {
    fprintf(stderr, "fedrec-aggregator: cannot read %s\n", !ca ? c->ca : !cert ? c->client_cert : c->client_key);
  }
  if (key) sodium_memzero(key, strlen(key));
  free(ca), free(cert), free(key);
  return ch;
}

/* The devices' server: TLS on listen, plaintext health on health-listen. */
static int device_server_start(const agg_config *c, int *port, int *health_port) {
  grpc_arg args[4] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = (int)(c->max_message_mb << 20)},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_HTTP2_BDP_PROBE, .value.integer = 0},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_METADATA_SIZE, .value.integer = 16 * 1024}};
  grpc_channel_args ca = {4, args};
  S.cq = grpc_completion_queue_create_for_next(NULL);
  S.gs = grpc_server_create(&ca, NULL);
  grpc_server_register_completion_queue(S.gs, S.cq, NULL);
  S.handles[0] = grpc_server_register_method(S.gs, fedrec_rpc_path(FEDREC_RPC_SUBMIT_MASKED_INPUT), NULL, GRPC_SRM_PAYLOAD_NONE, 0);
  S.handles[1] = grpc_server_register_method(S.gs, fedrec_rpc_path(FEDREC_RPC_HEALTH_CHECK), NULL, GRPC_SRM_PAYLOAD_NONE, 0);
  char *cert = fedrec_rpc_read_text(c->tls_cert), *key = fedrec_rpc_read_text(c->tls_key);
  grpc_server_credentials *creds = NULL;
  if (cert && key) {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_server_credentials_create_ex(NULL, &pair, 1, GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE, NULL);
  }
  if (key) sodium_memzero(key, strlen(key));
  free(cert), free(key);
  if (!creds) {
    fprintf(stderr, "fedrec-aggregator: cannot read %s or %s\n", c->tls_cert, c->tls_key);
    return 0;
  }
  *port = grpc_server_add_http2_port(S.gs, c->listen, creds);
  grpc_server_credentials_release(creds);
  *health_port = 0;
  if (*port && c->health_listen[0]) {
    grpc_server_credentials *plain = grpc_insecure_server_credentials_create();
    *health_port = grpc_server_add_http2_port(S.gs, c->health_listen, plain);
    grpc_server_credentials_release(plain);
  }
  if (!*port || (c->health_listen[0] && !*health_port)) {
    fprintf(stderr, "fedrec-aggregator: cannot listen on %s (in use, or a bad address)\n", !*port ? c->listen : c->health_listen);
    return 0;
  }
  grpc_server_start(S.gs);
  for (int m = 0; m < 2; m++)
    for (int k = 0; k < 16; k++) post(m);
  post(-1);
  return 1;
}

static void device_server_stop(pthread_t *workers, uint32_t n) {
  atomic_store(&S.shutting_down, 1);
  grpc_server_shutdown_and_notify(S.gs, S.cq, &SHUTDOWN_TAG);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += 5;
  pthread_mutex_lock(&sd_mu);
  while (!shutdown_done)
    if (pthread_cond_timedwait(&sd_cv, &sd_mu, &until) == ETIMEDOUT) {
      grpc_server_cancel_all_calls(S.gs);
      until.tv_sec += 60;
    }
  pthread_mutex_unlock(&sd_mu);
  grpc_completion_queue_shutdown(S.cq);
  for (uint32_t i = 0; i < n; i++) pthread_join(workers[i], NULL);
  grpc_server_destroy(S.gs);
  grpc_completion_queue_destroy(S.cq);
}

int main(int argc, char **argv) {
  static aggregator a;
  if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
    usage(stdout);
    return 0;
  }
  if (!parse(&a.cfg, argc, argv)) return 2;
  if (sodium_init() < 0) return 1;
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, NULL);
  signal(SIGPIPE, SIG_IGN);
  pthread_mutex_init(&a.mu, NULL);
  grpc_init();
  S.a = &a;
  int port = 0, health_port = 0, metrics_port = 0;
  if (!(a.up = upstream(&a.cfg)) || !device_server_start(&a.cfg, &port, &health_port)) return 1;
  a.up_handles[0] = grpc_channel_register_call(a.up, fedrec_rpc_path(FEDREC_RPC_GET_ASSIGNMENT), NULL, NULL);
  a.up_handles[1] = grpc_channel_register_call(a.up, fedrec_rpc_path(FEDREC_RPC_SUBMIT_AGGREGATE), NULL, NULL);
  metrics_http *mh = NULL;
  fedrec_error err = {0};
  if (a.cfg.metrics_listen[0] && metrics_http_start(&mh, a.cfg.metrics_listen, 5, agg_metrics_render, NULL, &a, &metrics_port, &err)) {
    fprintf(stderr, "fedrec-aggregator: %s\n", err.msg);
    return 1;
  }
  pthread_t *workers = calloc(a.cfg.workers, sizeof *workers), poller;
  if (!workers) return 1;
  for (uint32_t i = 0; i < a.cfg.workers; i++) pthread_create(&workers[i], NULL, worker, NULL);
  pthread_create(&poller, NULL, agg_poller, &a);
  logj("info", "serving", "\"listen\": \"%s\", \"port\": %d, \"health_port\": %d, \"metrics_port\": %d, \"coordinator\": \"%s\"",
       a.cfg.listen, port, health_port, metrics_port, a.cfg.coordinator);
  int sig = 0;
  sigwait(&sigs, &sig);
  logj("info", "shutting_down", "\"signal\": %d", sig);
  atomic_store(&a.stopping, 1);
  pthread_join(poller, NULL);
  device_server_stop(workers, a.cfg.workers);
  metrics_http_stop(mh);
  grpc_channel_destroy(a.up);
  agg_free(&a);
  grpc_shutdown();
  free(workers);
  logj("info", "stopped", NULL);
  return 0;
}
