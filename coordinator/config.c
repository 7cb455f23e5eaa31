/* The coordinator's settings table and its parsers (see config.h). */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fedrec/internal/tool.h"
#include "fedrec/status.h"

int config_quiet; /* 1: no messages (the fuzz target) */

/* Messages about bad settings go to stderr, naming where. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  if (config_quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

typedef struct opt {
  const char *key;
  char type; /* s string, i int, u uint32, d double, f float, l uint64 */
  size_t off, size;
  double lo, hi;
  const char *help;
} opt;

#define S(f, h) {#f, 's', offsetof(config, f), sizeof(((config *)0)->f), 0, 0, h}
#define OPTS_END {NULL, 0, 0, 0, 0, 0, NULL}
static const opt OPTS[] = {
    {"listen", 's', offsetof(config, listen), sizeof(((config *)0)->listen), 0, 0, "address:port to serve gRPC on"},
    {"state-dir", 's', offsetof(config, state_dir), sizeof(((config *)0)->state_dir), 0, 0, "keys, coordinator.db and ledger.db"},
    {"tls-cert", 's', offsetof(config, tls_cert), sizeof(((config *)0)->tls_cert), 0, 0, "server certificate chain (PEM)"},
    {"tls-key", 's', offsetof(config, tls_key), sizeof(((config *)0)->tls_key), 0, 0, "server private key (PEM)"},
    {"tls-client-ca", 's', offsetof(config, tls_client_ca), sizeof(((config *)0)->tls_client_ca), 0, 0, "CA for client certificates: turns on mTLS"},
    {"insecure", 'i', offsetof(config, insecure), sizeof(int), 0, 1, "1: plaintext (tests only)"},
    {"metrics-listen", 's', offsetof(config, metrics_listen), sizeof(((config *)0)->metrics_listen), 0, 0, "address:port for Prometheus text ('' off)"},
    {"health-listen", 's', offsetof(config, health_listen), sizeof(((config *)0)->health_listen), 0, 0, "a plaintext address:port that answers grpc.health.v1 Check only, for probes that cannot speak TLS (Kubernetes' grpc probes; '' off)"},
    {"aggregators", 's', offsetof(config, aggregators), sizeof(((config *)0)->aggregators), 0, 0, "NAME=HOST:PORT,...: aggregators that collect the masked inputs of a share of each cohort and submit their sum; NAME is the common name of its client certificate, HOST:PORT where devices reach it (docs/DEPLOY.md, \"Aggregators\"; '' none)"},
    {"aggregator-listen", 's', offsetof(config, aggregator_listen), sizeof(((config *)0)->aggregator_listen), 0, 0, "address:port where aggregators call in (mutual TLS: their certificates from aggregator-ca)"},
    {"aggregator-ca", 's', offsetof(config, aggregator_ca), sizeof(((config *)0)->aggregator_ca), 0, 0, "the CA that signs aggregators' client certificates (PEM; none other)"},
    {"catalogue", 's', offsetof(config, catalogue), sizeof(((config *)0)->catalogue), 0, 0, "the item catalogue: npy:EMB.npy,IDS.txt[,TITLES.tsv], csv:CONTENT.csv[,TITLES.tsv], movielens:DIR, lastfm:DIR or synthetic:k=v,... (docs/CATALOGUE.md; SIGHUP rereads it)"},
    {"catalogue-precision", 'i', offsetof(config, catalogue_precision), sizeof(int), 8, 32, "bits per content value in the served catalogue: 32, 16 (half) or 8 (int8); smaller downloads, the same quality (docs/CATALOGUE.md)"},
    {"workers", 'i', offsetof(config, workers), sizeof(int), 1, 64, "completion-queue worker threads"},
    {"unmask-threads", 'u', offsetof(config, e.unmask_threads), sizeof(uint32_t), 1, 64, "threads removing the masks at a round's end"},
    {"dim", 'i', offsetof(config, dim), sizeof(int), 1, 1024, "embedding dimension d"},
    {"free-embeddings", 'i', offsetof(config, free_embeddings), sizeof(int), 0, 1, "1: a free embedding per item of the first catalogue besides the head"},
    {"initial-model", 's', offsetof(config, initial_model), sizeof(((config *)0)->initial_model), 0, 0, "MODEL[,IDS]: a new state starts from this model blob (fedrec-sim --save-model), rows matched to the catalogue by the ids in IDS (default MODEL.ids); needs initial-model-privacy public (docs/COORDINATOR.md)"},
    {"initial-model-privacy", 's', offsetof(config, initial_model_privacy), sizeof(((config *)0)->initial_model_privacy), 0, 0, "'public': the operator's word that initial-model was trained without data of this deployment's users (the only kind accepted; docs/PRIVACY.md)"},
    {"free-items", 's', offsetof(config, free_items), sizeof(((config *)0)->free_items), 0, 0, "a file of item ids, one per line: each listed item gets a free embedding (zero at first) at start or SIGHUP; items added later are head-only until listed (docs/CATALOGUE.md)"},
    {"availability", 's', offsetof(config, availability), sizeof(((config *)0)->availability), 0, 0, "a file of lines 'item<TAB>group[,group...]': each listed item is recommended only on devices whose local region setting names one of its groups (unlisted items everywhere); read at start and SIGHUP (docs/CATALOGUE.md \"Availability\")"},
    {"blocked", 's', offsetof(config, blocked), sizeof(((config *)0)->blocked), 0, 0, "a file of item ids, one per line, never recommended on any device (still trained on; removing a line unblocks it); read at start and SIGHUP"},
    {"keep-models", 'i', offsetof(config, keep_models), sizeof(int), 1, 1000000, "model versions kept in the state"},
    {"max-message-mb", 'u', offsetof(config, max_message_mb), sizeof(uint32_t), 0, 2047, "largest request accepted (0: what the model's masked input needs)"},
    {"memory-quota-mb", 'u', offsetof(config, memory_quota_mb), sizeof(uint32_t), 16, 1048576, "memory gRPC may use for connections and messages"},
    {"handshake-ms", 'u', offsetof(config, handshake_ms), sizeof(uint32_t), 100, 600000, "a connection must finish its TLS handshake within this"},
    {"idle-ms", 'u', offsetof(config, idle_ms), sizeof(uint32_t), 1000, 86400000, "a connection with no call for this long is closed"},
    {"max-streams", 'u', offsetof(config, max_streams), sizeof(uint32_t), 1, 100000, "concurrent calls per connection"},
    {"chunk-kb", 'u', offsetof(config, chunk_kb), sizeof(uint32_t), 1, 65536, "model download chunk"},
    {"budget", 'd', offsetof(config, budget), sizeof(double), 1e-6, 1e6, "epsilon budget"},
    {"public-budget", 'd', offsetof(config, public_budget), sizeof(double), 0, 1e6, "epsilon budget against model recipients (0: budget; at most budget); DP-FTRL's tree keeps that epsilon below the operator's (docs/PRIVACY.md)"},
    {"tree-noise-multiplier", 'd', offsetof(config, e.tree_noise_multiplier), sizeof(double), 0, 1e4, "DP-FTRL: > 0 turns it on; the coordinator's noise on each tree node, std this times clip over min-survivors (docs/PRIVACY.md)"},
    {"popularity-rounds", 'u', offsetof(config, e.popularity_rounds), sizeof(uint32_t), 0, 1000, "the first N rounds are count rounds: devices send their history's items (clipped, noised, accounted as any round) and the noisy sums become the model's popularity (docs/MODEL.md)"},
    {"popularity-noise-multiplier", 'd', offsetof(config, e.popularity_noise_multiplier), sizeof(double), 0, 1e6, "count rounds' noise multiplier (0: noise-multiplier); smaller spends more of the budget on popularity"},
    {"spectral-items", 'u', offsetof(config, e.spectral_items), sizeof(uint32_t), 0, 4096, "after the count rounds, one spectral round over the M most popular items: their free embeddings from the noisy co-occurrence's leading eigenvectors (docs/MODEL.md)"},
    {"tree-rounds", 'u', offsetof(config, e.tree_rounds), sizeof(uint32_t), 1, 1048576, "DP-FTRL: rounds per tree; a device takes part at most once per tree"},
    {"delta", 'd', offsetof(config, delta), sizeof(double), 1e-300, 0.1, "delta"},
    {"cohort", 'u', offsetof(config, e.cohort), sizeof(uint32_t), 2, 1048576, "target cohort size"},
    {"sampling-rate", 'd', offsetof(config, e.sampling_rate), sizeof(double), 0, 1, "0: fixed-size cohorts; else Poisson sampling of check-ins"},
    {"min-cohort", 'u', offsetof(config, e.min_cohort), sizeof(uint32_t), 1, 1048576, "least cohort a selection window may start"},
    {"min-survivors", 'u', offsetof(config, e.min_survivors), sizeof(uint32_t), 1, 1048576, "fewer survivors abort a round"},
    {"selection-ms", 'l', offsetof(config, e.selection_ms), sizeof(uint64_t), 1, 86400000, "selection window"},
    {"phase-ms", 'l', offsetof(config, e.phase_ms), sizeof(uint64_t), 1, 86400000, "first (and least) deadline of each secure-aggregation phase"},
    {"max-phase-ms", 'l', offsetof(config, e.max_phase_ms), sizeof(uint64_t), 0, 86400000, "deadlines adapt up to this (doubling after a missed one; below phase-ms: fixed)"},
    {"max-aborts", 'u', offsetof(config, e.max_aborts), sizeof(uint32_t), 0, 1000000, "stop after this many consecutive aborted rounds (0: never)"},
    {"retry-ms", 'u', offsetof(config, e.retry_ms), sizeof(uint32_t), 1, 86400000, "come back after (jittered)"},
    {"max-participation", 'u', offsetof(config, e.max_participation), sizeof(uint32_t), 0, FEDREC_LEDGER_MAX_PARTICIPATION, "a device takes part in at most this many rounds (0: no bound); fixed with the ledger, whose epsilon then composes only this many rounds per device (docs/PRIVACY.md); fixed-size cohorts only"},
    {"min-separation", 'u', offsetof(config, e.min_separation), sizeof(uint32_t), 0, 100000000, "a device takes part at least this many rounds apart (0, 1: any)"},
    {"rounds", 'u', offsetof(config, e.max_rounds), sizeof(uint32_t), 0, 100000000, "stop after this many rounds (0: at the budget)"},
    {"dropout", 'd', offsetof(config, e.dropout), sizeof(double), 0, 0.99, "expected dropout, for (k, t)"},
    {"enrolment-authority", 's', offsetof(config, enrolment_authority), sizeof(((config *)0)->enrolment_authority), 0, 0, "the enrolment authority's public key (64 hex digits, or @FILE: authority-init writes FILE.pub): devices join rounds only with its certificate, and secure aggregation runs the active variant (docs/SECURITY.md)"},
    {"secagg-active", 'i', offsetof(config, secagg_active), sizeof(int), 0, 1, "1: the active (malicious-server) secure-aggregation variant, signed keys and survivor lists (default: 1 with enrolment-authority, else 0)"},
    {"dishonest", 'd', offsetof(config, e.dishonest), sizeof(double), 0, 0.99, "assumed colluding fraction"},
    {"clip", 'd', offsetof(config, e.clip), sizeof(double), 1e-9, 1e9, "L2 clip of each update"},
    {"noise-multiplier", 'd', offsetof(config, e.noise_multiplier), sizeof(double), 0, 1e6, "z"},
    {"noise", 's', offsetof(config, noise), sizeof(((config *)0)->noise), 0, 0, "skellam or dgauss"},
    {"bits", 'u', offsetof(config, e.bits), sizeof(uint32_t), 0, 32, "modulus bits (0: choose)"},
    {"optimizer", 's', offsetof(config, optimizer), sizeof(((config *)0)->optimizer), 0, 0, FEDREC_OPTIMIZER_NAMES},
    {"server-lr", 'd', offsetof(config, e.server_lr), sizeof(double), 0, 1e6, "server learning rate"},
    {"momentum", 'd', offsetof(config, e.momentum), sizeof(double), 0, 0.9999, "FedAvg server momentum"},
    {"local-steps", 'u', offsetof(config, e.local_steps), sizeof(uint32_t), 0, 1000, "client gradient steps per round (0, 1: one)"},
    {"client-lr", 'f', offsetof(config, e.client_lr), sizeof(float), 0, 1e6, "client step size (0: 1)"},
    {"alpha0", 'f', offsetof(config, e.alpha0), sizeof(float), 0, 1e6, "iALS unobserved weight"},
    {"reg", 'f', offsetof(config, e.reg), sizeof(float), 1e-9, 1e6, "iALS regularisation"},
    OPTS_END};
#undef S

_Static_assert(sizeof OPTS / sizeof OPTS[0] <= sizeof ((config *)0)->given, "config.given: one flag per setting");

void config_defaults(config *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->listen, sizeof c->listen, "127.0.0.1:50051");
  snprintf(c->state_dir, sizeof c->state_dir, "fedrec-state");
  snprintf(c->metrics_listen, sizeof c->metrics_listen, "127.0.0.1:9464");
  snprintf(c->catalogue, sizeof c->catalogue, "synthetic:users=2000,items=500,dim=16,seed=42");
  snprintf(c->noise, sizeof c->noise, "skellam");
  snprintf(c->optimizer, sizeof c->optimizer, "fedavg");
  c->workers = 4;
  c->dim = 16;
  c->free_embeddings = 1;
  c->keep_models = 10;
  c->catalogue_precision = 32;
  c->max_message_mb = 0;
  c->memory_quota_mb = 256;
  c->handshake_ms = 10000;
  c->idle_ms = 300000;
  c->max_streams = 32;
  c->chunk_kb = 1024;
  c->budget = 10;
  c->e.tree_rounds = 64;
  c->delta = 1e-5;
  fedrec_engine_defaults(&c->e);
  long cores = sysconf(_SC_NPROCESSORS_ONLN); /* unmasking holds the engine: use every core */
  c->e.unmask_threads = cores < 1 ? 1 : cores > 64 ? 64 : (uint32_t)cores;
}


static const opt *find_opt(const char *k) {
  for (const opt *o = OPTS; o->key; o++)
    if (!strcmp(o->key, k)) return o;
  return NULL;
}

int config_given(const config *c, const char *key) {
  const opt *o = find_opt(key);
  return o && (size_t)(o - OPTS) < sizeof c->given && c->given[o - OPTS];
}

int config_set(config *c, const char *key, const char *val, const char *where) {
  const opt *o = find_opt(key);
  if (!o) {
    char known[4096] = "", near[64];
    size_t n = 0;
    for (const opt *q = OPTS; q->key && n + 40 < sizeof known; q++) n += (size_t)snprintf(known + n, sizeof known - n, "--%s ", q->key);
    if (fedrec_nearest_flag(key, known, near, sizeof near))
      say("fedrec-coordinator: %s: unknown setting '%s': did you mean %s? (see --help)\n", where, key, near + 2);
    else say("fedrec-coordinator: %s: unknown setting '%s' (see --help)\n", where, key);
    return 0;
  }
  char *p = (char *)c + o->off;
  size_t idx = (size_t)(o - OPTS);
  if (idx < sizeof c->given) c->given[idx] = 1;
  if (o->type == 's') {
    if (strlen(val) >= o->size) {
      say("fedrec-coordinator: %s: %s: value longer than %zu characters\n", where, key, o->size - 1);
      return 0;
    }
    memcpy(p, val, strlen(val) + 1);
    return 1;
  }
  double v;
  fedrec_error err;
  if (fedrec_parse_number(key, val, o->lo, o->hi, o->type != 'd' && o->type != 'f', &v, &err)) {
    say("fedrec-coordinator: %s: %s\n", where, err.msg);
    return 0;
  }
  if (o->type == 'i') *(int *)p = (int)v;
  else if (o->type == 'u') *(uint32_t *)p = (uint32_t)v;
  else if (o->type == 'l') *(uint64_t *)p = (uint64_t)v;
  else if (o->type == 'f') *(float *)p = (float)v;
  else *(double *)p = v;
  return 1;
}

int config_parse_text(config *c, const char *text, size_t len, const char *name) {
  char line[1024], where[600];
  size_t at = 0;
  int ln = 0, ok = 1;
  while (ok && at < len) {
    size_t e = at;
    while (e < len && text[e] != '\n') e++;
    ln++;
    snprintf(where, sizeof where, "%.500s:%d", name, ln);
    if (e - at >= sizeof line) {
      say("fedrec-coordinator: %s: line longer than %zu characters\n", where, sizeof line - 1);
      return 0;
    }
    if (memchr(text + at, 0, e - at)) { /* a binary file, or worse */
      say("fedrec-coordinator: %s: a NUL byte in the line\n", where);
      return 0;
    }
    memcpy(line, text + at, e - at);
    line[e - at] = 0;
    at = e + 1;
    char *h = strchr(line, '#');
    if (h) *h = 0;
    char *s = line;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t')) s[--n] = 0;
    if (!*s) continue;
    char *eq = strchr(s, '=');
    if (!eq) {
      say("fedrec-coordinator: %s: expected 'key = value'\n", where);
      return 0;
    }
    char *k = s, *v = eq + 1;
    *eq = 0;
    for (char *t = eq - 1; t >= k && (*t == ' ' || *t == '\t'); t--) *t = 0;
    while (*v == ' ' || *v == '\t') v++;
    ok = config_set(c, k, v, where);
  }
  return ok;
}

int config_file(config *c, const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    say("fedrec-coordinator: --config %s: %s\n", path, strerror(errno));
    return 0;
  }
  enum { CAP = 1 << 20 };
  char *text = malloc(CAP + 1);
  size_t n = text ? fread(text, 1, CAP + 1, f) : 0;
  int err = ferror(f);
  fclose(f);
  if (!text || err || n > CAP) {
    say("fedrec-coordinator: --config %s: %s\n", path, !text ? "out of memory" : err ? "read error" : "larger than 1 MiB");
    free(text);
    return 0;
  }
  int ok = config_parse_text(c, text, n, path);
  free(text);
  return ok;
}

void config_usage(FILE *f) {
  config d;
  config_defaults(&d);
  for (const opt *o = OPTS; o->key; o++) {
    const char *p = (const char *)&d + o->off;
    char def[300], lo[32], hi[32];
    double v = o->type == 'i' ? *(const int *)p : o->type == 'u' ? *(const uint32_t *)p
             : o->type == 'l' ? (double)*(const uint64_t *)p : o->type == 'f' ? *(const float *)p
             : o->type == 'd' ? *(const double *)p : 0;
    if (o->type == 's') snprintf(def, sizeof def, "'%s'", p);
    else fedrec_format_bound(def, sizeof def, v);
    fprintf(f, "  %-18s %s\n  %-18s default %s", o->key, o->help, "", def);
    if (o->type != 's') fprintf(f, ", range [%s, %s]", fedrec_format_bound(lo, sizeof lo, o->lo), fedrec_format_bound(hi, sizeof hi, o->hi));
    fputc('\n', f);
  }
}
