/* Benchmarks of the deployed system (issue 5), JSON lines on stdout:
 *  - one round of C clients at d ~ 100 000 on loopback with TLS: the latency of each phase as
 *    the coordinator measured it, and bytes sent and received per client;
 *  - the coordinator's peak memory against the cohort size (a fresh coordinator per size);
 *  - check-ins per second that the coordinator answers (come back later) during a round.
 * The coordinator is the real fedrec-coordinator process; the clients are threads of this
 * process, each virtual client with its own token and participant, over a few channels.
 * Clients add no noise here (noise multiplier 0): the client-side noise cost is in
 * bench_privacy; this measures the protocol, the transport and the coordinator.
 *   bench_rpc BUILD_DIR [COHORT ...]      (default cohorts: 100 300 1000) */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "bench_util.h"
#include "fedrec/participant.h"
#include "fedrec/synth.h"
#include "rpc.h"

#define ITEMS 6250 /* x d 16 free embeddings + a 16 x 16 head: 100 256 parameters */
#define THREADS 4
#define CHANNELS 4
static const char *CAT = "synthetic:users=2000,items=6250,dim=16,seed=3";

typedef struct vclient {
  char token[FEDREC_TOKEN_MAX];
  fedrec_participant *p;
  uint64_t bytes_out, bytes_in;
  int failed;
} vclient;

typedef struct bench {
  const char *build, *dir;
  grpc_channel *ch[CHANNELS];
  vclient *vc;
  uint32_t n;
  uint64_t round;
  fedrec_round_info info;
  fedrec_model model;
  fedrec_dataset cat;
  const fedrec_csr *R;
  int phase;
  atomic_uint next;
  pid_t pid;
  char log[600];
} bench;

static char *slurp(const char *path) { return fedrec_rpc_read_text(path); }

static int run(const char *cmd) {
  int rc = system(cmd);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static grpc_status_code call(bench *b, uint32_t i, int m, const ProtobufCMessage *req,
                             const ProtobufCMessageDescriptor *rd, ProtobufCMessage **resp) {
  char details[512];
  size_t n = protobuf_c_message_get_packed_size(req);
  grpc_status_code st = fedrec_rpc_call(b->ch[i % CHANNELS], fedrec_rpc_path(m), NULL, b->vc[i].token, req, rd, 120000,
                                        resp, details, sizeof details);
  b->vc[i].bytes_out += n;
  if (st == GRPC_STATUS_OK && *resp) b->vc[i].bytes_in += protobuf_c_message_get_packed_size(*resp);
  if (st != GRPC_STATUS_OK) {
    fprintf(stderr, "bench_rpc: client %u, %s: %s %s\n", i, fedrec_rpc_path(m), fedrec_rpc_code_name(st), details);
    b->vc[i].failed = 1;
  }
  return st;
}

/* One step of one client in the current phase. */
static void step(bench *b, uint32_t i) {
  vclient *v = &b->vc[i];
  if (v->failed) return;
  ProtobufCMessage *r = NULL;
  fedrec_error err = {0};
  if (b->phase == 0) { /* check in */
    Fedrec__V1__CheckInRequest q = FEDREC__V1__CHECK_IN_REQUEST__INIT;
    q.model_version = 1;
    if (call(b, i, FEDREC_RPC_CHECK_IN, &q.base, &fedrec__v1__check_in_response__descriptor, &r) == GRPC_STATUS_OK &&
        !((Fedrec__V1__CheckInResponse *)r)->accepted)
      v->failed = 1;
  } else if (b->phase == 1) { /* round info, then compute and advertise keys */
    Fedrec__V1__GetRoundInfoRequest q = FEDREC__V1__GET_ROUND_INFO_REQUEST__INIT;
    q.round = b->round;
    fedrec_round_info info;
    if (call(b, i, FEDREC_RPC_GET_ROUND_INFO, &q.base, &fedrec__v1__get_round_info_response__descriptor, &r) ||
        !((Fedrec__V1__GetRoundInfoResponse *)r)->info ||
        fedrec_rpc_round_info_from_pb(&info, ((Fedrec__V1__GetRoundInfoResponse *)r)->info, &err)) {
      v->failed = 1;
    } else {
      const fedrec_csr *R = b->R;
      uint32_t u = i % (uint32_t)R->rows;
      int64_t a = R->indptr[u], e = R->indptr[u + 1];
      uint8_t *msg = NULL;
      size_t len = 0;
      if (fedrec_participant_new(&v->p, &info, &b->model, R->indices + a, R->values + a, (int32_t)(e - a), NULL, &err) ||
          fedrec_participant_keys(v->p, &msg, &len, &err)) {
        fprintf(stderr, "bench_rpc: participant %u: %s\n", i, err.msg);
        v->failed = 1;
      } else {
        Fedrec__V1__AdvertiseKeysRequest s = FEDREC__V1__ADVERTISE_KEYS_REQUEST__INIT;
        ProtobufCMessage *r2 = NULL;
        s.round = b->round;
        s.message.data = msg;
        s.message.len = len;
        call(b, i, FEDREC_RPC_ADVERTISE_KEYS, &s.base, &fedrec__v1__advertise_keys_response__descriptor, &r2);
        if (r2) protobuf_c_message_free_unpacked(r2, NULL);
      }
      free(msg);
    }
  } else { /* shares, masked input, unmasking: fetch the input, answer */
    Fedrec__V1__GetPhaseInputRequest q = FEDREC__V1__GET_PHASE_INPUT_REQUEST__INIT;
    q.round = b->round;
    q.phase = (Fedrec__V1__Phase)b->phase;
    Fedrec__V1__GetPhaseInputResponse *in = NULL;
    for (;;) {
      if (call(b, i, FEDREC_RPC_GET_PHASE_INPUT, &q.base, &fedrec__v1__get_phase_input_response__descriptor,
               (ProtobufCMessage **)&in))
        return;
      if (!in->retry_after_ms) break;
      protobuf_c_message_free_unpacked(&in->base, NULL);
      struct timespec d = {0, 20 * 1000000};
      nanosleep(&d, NULL);
    }
    uint8_t *msg = NULL;
    size_t len = 0;
    fedrec_status s = b->phase == 2   ? fedrec_participant_shares(v->p, in->message.data, in->message.len, &msg, &len, &err)
                      : b->phase == 3 ? fedrec_participant_masked(v->p, in->message.data, in->message.len, &msg, &len, &err)
                                      : fedrec_participant_unmask(v->p, in->message.data, in->message.len, &msg, &len, &err);
    protobuf_c_message_free_unpacked(&in->base, NULL);
    if (s) {
      fprintf(stderr, "bench_rpc: participant %u phase %d: %s\n", i, b->phase, err.msg);
      v->failed = 1;
      return;
    }
    Fedrec__V1__AdvertiseKeysRequest sq = FEDREC__V1__ADVERTISE_KEYS_REQUEST__INIT;
    sq.base.descriptor = fedrec_rpc_request(fedrec_rpc_submission((fedrec_phase)b->phase)); /* the four submissions share one layout */
    sq.round = b->round;
    sq.message.data = msg;
    sq.message.len = len;
    call(b, i, fedrec_rpc_submission((fedrec_phase)b->phase), &sq.base, &fedrec__v1__advertise_keys_response__descriptor, &r);
    free(msg);
  }
  if (r) protobuf_c_message_free_unpacked(r, NULL);
}

static void *worker(void *arg) {
  bench *b = arg;
  for (;;) {
    uint32_t i = atomic_fetch_add(&b->next, 1);
    if (i >= b->n) return NULL;
    step(b, i);
  }
}

static double phase_all(bench *b, int phase) {
  b->phase = phase;
  atomic_store(&b->next, 0);
  double t = bench_now();
  pthread_t th[THREADS];
  for (int k = 0; k < THREADS; k++) pthread_create(&th[k], NULL, worker, b);
  for (int k = 0; k < THREADS; k++) pthread_join(th[k], NULL);
  return bench_now() - t;
}

static long peak_rss_kib(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kib = -1;
  while (f && fgets(line, sizeof line, f))
    if (!strncmp(line, "VmHWM:", 6)) kib = atol(line + 6);
  if (f) fclose(f);
  return kib;
}

static int start_coordinator(bench *b, uint32_t cohort, int *port) {
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "rm -rf %s/state && %s/coordinator/fedrec-coordinator init --state-dir %s/state >/dev/null 2>&1",
           b->dir, b->build, b->dir);
  if (run(cmd)) return 0;
  snprintf(b->log, sizeof b->log, "%s/coord-%u.log", b->dir, cohort);
  char cohort_s[16], minsurv[16];
  snprintf(cohort_s, sizeof cohort_s, "%u", cohort);
  snprintf(minsurv, sizeof minsurv, "%u", cohort * 9 / 10);
  char state[600], cert[600], key[600];
  snprintf(state, sizeof state, "%s/state", b->dir);
  snprintf(cert, sizeof cert, "%s/certs/server.pem", b->dir);
  snprintf(key, sizeof key, "%s/certs/server.key", b->dir);
  char exe[600];
  snprintf(exe, sizeof exe, "%s/coordinator/fedrec-coordinator", b->build);
  b->pid = fork();
  if (b->pid == 0) {
    FILE *lf = freopen(b->log, "w", stderr);
    (void)lf;
    execl(exe, exe, "serve", "--state-dir", state, "--listen", "127.0.0.1:0", "--metrics-listen", "", "--tls-cert", cert,
          "--tls-key", key, "--catalogue", CAT, "--dim", "16", "--cohort", cohort_s, "--min-cohort", cohort_s,
          "--min-survivors", minsurv, "--noise-multiplier", "0", "--phase-ms", "600000", "--retry-ms", "60000",
          "--rounds", "2", "--budget", "1000", "--workers", "4", "--max-message-mb", "256", (char *)NULL);
    _exit(127);
  }
  for (int k = 0; k < 600; k++) {
    char *t = slurp(b->log);
    char *p = t ? strstr(t, "\"port\": ") : NULL;
    if (p) *port = atoi(p + 8);
    if (t && strstr(t, "\"event\": \"serving\"")) {
      free(t);
      return 1;
    }
    if (t && strstr(t, "fedrec-coordinator:")) {
      fprintf(stderr, "%s", t);
      free(t);
      return 0;
    }
    free(t);
    struct timespec d = {0, 50 * 1000000};
    nanosleep(&d, NULL);
  }
  return 0;
}

/* The coordinator's own phase durations of the last round_done line. */
static void server_phases(bench *b, long ms[5]) {
  char *t = slurp(b->log);
  char *p = t ? strstr(t, "\"event\": \"round_done\"") : NULL;
  memset(ms, 0, 5 * sizeof *ms);
  if (p && (p = strstr(p, "\"phase_ms\": {")))
    sscanf(p, "\"phase_ms\": {\"keys\": %ld, \"shares\": %ld, \"masked\": %ld, \"unmask\": %ld", &ms[1], &ms[2], &ms[3], &ms[4]);
  free(t);
}

static int read_secret(const bench *b, uint8_t secret[32]) {
  char path[600];
  snprintf(path, sizeof path, "%s/state/token.secret", b->dir);
  char *t = slurp(path);
  size_t n = 0;
  int ok = t && sodium_hex2bin(secret, 32, t, strlen(t), "\n", &n, NULL) == 0 && n == 32;
  free(t);
  return ok;
}

static int one_cohort(bench *b, uint32_t n, int checkin_rate) {
  int port = 0;
  uint8_t secret[32];
  if (!start_coordinator(b, n, &port) || !read_secret(b, secret)) return 1;
  char target[64];
  snprintf(target, sizeof target, "127.0.0.1:%d", port);
  char capath[600];
  snprintf(capath, sizeof capath, "%s/certs/ca.pem", b->dir);
  char *ca = slurp(capath);
  grpc_arg args[2] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = 256 << 20},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, .value.integer = 1}};
  grpc_channel_args cargs = {2, args};
  for (int k = 0; k < CHANNELS; k++) {
    grpc_channel_credentials *cr = grpc_ssl_credentials_create(ca, NULL, NULL, NULL);
    b->ch[k] = grpc_channel_create(target, cr, &cargs);
    grpc_channel_credentials_release(cr);
  }
  free(ca);
  b->n = n;
  b->vc = calloc(n, sizeof *b->vc);
  for (uint32_t i = 0; i < n; i++) fedrec_token_make(b->vc[i].token, secret, i + 1, (uint64_t)time(NULL) + 86400);
  /* the model: downloaded once and shared by the virtual clients (one device, one download) */
  Fedrec__V1__CheckInRequest mq = FEDREC__V1__CHECK_IN_REQUEST__INIT;
  mq.model_only = 1;
  Fedrec__V1__CheckInResponse *ci = NULL;
  call(b, 0, FEDREC_RPC_CHECK_IN, &mq.base, &fedrec__v1__check_in_response__descriptor, (ProtobufCMessage **)&ci);
  size_t size = ci ? (size_t)ci->model->size_bytes : 0, have = 0;
  uint8_t *blob = malloc(size ? size : 1);
  double t = bench_now();
  while (ci && have < size) {
    Fedrec__V1__GetModelRequest q = FEDREC__V1__GET_MODEL_REQUEST__INIT;
    q.version = ci->model->version;
    q.offset = have;
    Fedrec__V1__GetModelResponse *r = NULL;
    if (call(b, 0, FEDREC_RPC_GET_MODEL, &q.base, &fedrec__v1__get_model_response__descriptor, (ProtobufCMessage **)&r)) break;
    memcpy(blob + have, r->chunk.data, r->chunk.len);
    have += r->chunk.len;
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  double dl = bench_now() - t;
  fedrec_error err = {0};
  if (!ci || have != size || fedrec_model_decode(&b->model, NULL, blob, size, b->cat.content, b->cat.content_dim, &err)) {
    fprintf(stderr, "bench_rpc: model download failed %s\n", err.msg);
    return 1;
  }
  protobuf_c_message_free_unpacked(&ci->base, NULL);
  free(blob);
  b->vc[0].bytes_in = b->vc[0].bytes_out = 0;
  b->round = 1;
  double ph[5];
  ph[0] = phase_all(b, 0);
  for (int p = 1; p <= 4; p++) {
    ph[p] = phase_all(b, p);
    fprintf(stderr, "bench_rpc: cohort %u: phase %d done in %.2f s (clients' wall time)\n", n, p, ph[p]);
  }
  /* wait for the coordinator to finish the round */
  for (int k = 0; k < 1200; k++) {
    char *tx = slurp(b->log);
    int done = tx && strstr(tx, "\"event\": \"round_done\"");
    free(tx);
    if (done) break;
    struct timespec d = {0, 50 * 1000000};
    nanosleep(&d, NULL);
  }
  long sms[5];
  server_phases(b, sms);
  uint64_t out = 0, in = 0;
  uint32_t failed = 0;
  for (uint32_t i = 0; i < n; i++) out += b->vc[i].bytes_out, in += b->vc[i].bytes_in, failed += b->vc[i].failed;
  char extra[512];
  snprintf(extra, sizeof extra,
           "\"cohort\": %u, \"params\": %lld, \"failed_clients\": %u, \"server_phase_ms\": {\"keys\": %ld, \"shares\": %ld, "
           "\"masked\": %ld, \"unmask\": %ld}, \"client_phase_s\": {\"checkin\": %.3f, \"keys\": %.3f, \"shares\": %.3f, "
           "\"masked\": %.3f, \"unmask\": %.3f}, \"model_download_s\": %.3f",
           n, (long long)fedrec_model_params(&b->model), failed, sms[1], sms[2], sms[3], sms[4], ph[0], ph[1], ph[2], ph[3],
           ph[4], dl);
  double raw = (double)fedrec_model_params(&b->model) * 4;
  bench_emit("rpc_round_seconds", ph[0] + ph[1] + ph[2] + ph[3] + ph[4], "s", 0, NULL, extra);
  snprintf(extra, sizeof extra, "\"cohort\": %u, \"received_per_client\": %.0f, \"raw_float_update_bytes\": %.0f", n,
           (double)in / n, raw);
  bench_emit("rpc_bytes_sent_per_client", (double)out / n, "B", raw, "raw float32 update", extra);
  snprintf(extra, sizeof extra, "\"cohort\": %u", n);
  bench_emit("coordinator_peak_rss_mib", peak_rss_kib(b->pid) / 1024.0, "MiB", 0, NULL, extra);
  if (checkin_rate) {
    /* check-ins while the next round is waiting for its cohort to act: all answered at once */
    uint32_t total = 20000;
    atomic_store(&b->next, 0);
    t = bench_now();
    pthread_t th[THREADS];
    b->phase = 0;
    uint32_t saved = b->n;
    b->n = total;
    /* every call its own slot, the tokens reused cyclically */
    vclient *many = calloc(total, sizeof *many);
    for (uint32_t i = 0; i < total; i++) memcpy(many[i].token, b->vc[i % saved].token, sizeof many[i].token);
    vclient *keep = b->vc;
    b->vc = many;
    for (int k = 0; k < THREADS; k++) pthread_create(&th[k], NULL, worker, b);
    for (int k = 0; k < THREADS; k++) pthread_join(th[k], NULL);
    double secs = bench_now() - t;
    b->vc = keep;
    b->n = saved;
    free(many);
    snprintf(extra, sizeof extra, "\"calls\": %u, \"threads\": %d, \"channels\": %d", total, THREADS, CHANNELS);
    bench_emit("checkins_per_second", total / secs, "1/s", 0, NULL, extra);
  }
  kill(b->pid, SIGTERM);
  waitpid(b->pid, NULL, 0);
  for (int k = 0; k < CHANNELS; k++) grpc_channel_destroy(b->ch[k]);
  for (uint32_t i = 0; i < n; i++) fedrec_participant_free(b->vc[i].p);
  free(b->vc);
  fedrec_model_free(&b->model);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: bench_rpc BUILD_DIR [COHORT ...]\n");
    return 2;
  }
  if (fedrec_crypto_init()) return 1;
  bench b = {.build = argv[1]};
  char dir[] = "/tmp/fedrec-bench-rpc.XXXXXX";
  if (!mkdtemp(dir)) return 1;
  b.dir = dir;
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "%s/../../scripts/gen-dev-certs %s/certs 2>/dev/null || scripts/gen-dev-certs %s/certs 2>/dev/null",
           b.build, dir, dir);
  if (run(cmd)) {
    fprintf(stderr, "bench_rpc: cannot make certificates\n");
    return 1;
  }
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  fedrec_error err = {0};
  if (fedrec_synth_parse(&sc, CAT + 10, &err) || fedrec_synth_generate(&b.cat, &sc, &err)) {
    fprintf(stderr, "bench_rpc: %s\n", err.msg);
    return 1;
  }
  b.R = &b.cat.R;
  grpc_init();
  uint32_t cohorts[16] = {100, 300, 1000};
  int nc = 3;
  if (argc > 2) {
    nc = 0;
    for (int k = 2; k < argc && nc < 16; k++) cohorts[nc++] = (uint32_t)atoi(argv[k]);
  }
  int rc = 0;
  for (int k = 0; k < nc && !rc; k++) rc = one_cohort(&b, cohorts[k], k == nc - 1);
  grpc_shutdown();
  fedrec_dataset_free(&b.cat);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  run(cmd);
  return rc;
}
