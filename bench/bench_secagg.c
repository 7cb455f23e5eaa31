/* Secure-aggregation benchmarks, JSON lines like bench_core. Usage:
 *   bench_secagg [--quick] [--cohort N]   (--quick skips the 10 000-client cohorts;
 *                                          --cohort runs one cohort size's rounds only)
 *   bench_secagg --variants               (the active variant against the passive one, per
 *                                          device, at 100 and 1 000 clients)
 * - mask generation rate against the raw ChaCha20 keystream rate, same run (target >= 0.8)
 * - one round's client and server cost for cohorts of 100, 1 000, 10 000 clients, d = 100 000,
 *   0%, 10%, 30% dropout (drops spread over the phases), server memory
 * - bytes a client sends, as a ratio to the masked vector alone (target <= 1.02 at 1 000
 *   clients, d = 1 000 000) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench_util.h"
#include "fedrec/enrol.h"
#include "fedrec/rng.h"
#include "fedrec/secagg.h"

static void bench_mask_rate(void) {
  size_t n = (size_t)1 << 24; /* 64 MiB */
  uint32_t *y = calloc(n, 4);
  uint8_t key[32] = {1};
  double best_ks = 1e30, best_mask = 1e30;
  for (int rep = 0; rep < 3; rep++) {
    double t = bench_now();
    fedrec_chacha20_keystream((uint8_t *)y, n * 4, key);
    t = bench_now() - t;
    if (t < best_ks) best_ks = t;
    t = bench_now();
    fedrec_mask_apply(y, n, key, +1, 20);
    t = bench_now() - t;
    if (t < best_mask) best_mask = t;
  }
  double gb = n * 4 / 1e9;
  bench_emit("chacha20_keystream_gbps", gb / best_ks, "GB/s", 0, NULL, NULL);
  bench_emit("mask_generation_gbps", gb / best_mask, "GB/s", gb / best_ks, "chacha20_keystream_gbps", NULL);
  free(y);
}

typedef struct {
  double client_s, server_s;
  size_t server_bytes;
  uint32_t survivors;
  size_t sent_keys, sent_boxes, sent_masked, sent_sig, sent_reveals; /* per client, max */
  size_t got_keylist, got_inbox, got_survivors, got_signed; /* received per client, max */
  int ok;
  double log2_fail, log2_insecure;
  uint32_t k, t;
} round_cost;

/* One full round in-process; dropouts spread evenly over the four phases. */
static round_cost run_round(uint32_t n, uint32_t dim, uint32_t bits, double dropout, int active,
                            fedrec_error *err) {
  round_cost rc = {0};
  fedrec_secagg_choice ch;
  /* 2^-20 failure, 2^-40 privacy; where no (k, t) reaches that (small cohorts, heavy
   * dropout), accept 2^-10 failure and say so in the output */
  double drop_plan = dropout > 0 ? dropout : 0.01;
  if (fedrec_secagg_choose(&ch, n, drop_plan, 0.05, 20, 40, err)) {
    /* no (k, t) with t > k/2 reaches 2^-20 (a small cohort with heavy dropout): measure the
     * complete graph with the smallest majority threshold, and report its bounds */
    ch.k = n - 1;
    ch.t = ch.k / 2 + 1;
    fedrec_secagg_bounds(n, ch.k, ch.t, drop_plan, 0.05, &ch.log2_fail, &ch.log2_insecure);
  }
  rc.k = ch.k, rc.t = ch.t, rc.log2_fail = ch.log2_fail, rc.log2_insecure = ch.log2_insecure;
  fedrec_secagg_params p = {.session = 1, .n = n, .k = ch.k, .t = ch.t, .bits = bits, .dim = dim, .active = active};
  for (int b = 0; b < 32; b++) p.graph_seed[b] = (uint8_t)(b * 7);
  fedrec_rng r;
  fedrec_rng_seed(&r, 99, n);
  fedrec_identity *ids = calloc(n, sizeof *ids);
  uint8_t (*pks)[32] = calloc(n, 32);
  for (uint32_t u = 0; active && u < n; u++) {
    if (fedrec_identity_new(&ids[u])) return rc;
    memcpy(pks[u], ids[u].pk, 32);
  }
  fedrec_secagg_client **c = calloc(n, sizeof *c);
  uint8_t *alive = malloc(n);
  uint32_t *x = malloc((size_t)dim * 4);
  for (uint32_t i = 0; i < dim; i++) x[i] = i & ((1u << (bits - 1)) - 1);
  for (uint32_t u = 0; u < n; u++) {
    c[u] = fedrec_secagg_client_new(&p, u, active ? &ids[u] : NULL, (const uint8_t(*)[32])pks, err);
    alive[u] = 1;
  }
  double t0 = bench_now();
  fedrec_secagg_server *s = fedrec_secagg_server_new(&p, (const uint8_t(*)[32])pks, err);
  rc.server_s += bench_now() - t0;
  double per_phase = dropout / 4;
  uint8_t *buf = malloc(((size_t)dim * bits + 7) / 8 + 64 + (size_t)ch.k * 300 + 4096);
#define CL(expr) (t0 = bench_now(), st = (expr), rc.client_s += bench_now() - t0, st)
#define SV(expr) (t0 = bench_now(), st = (expr), rc.server_s += bench_now() - t0, st)
#define DROP for (uint32_t u = 0; u < n; u++) if (alive[u] && fedrec_rng_uniform(&r) < per_phase) alive[u] = 0
  fedrec_status st;
  size_t len;
  for (uint32_t u = 0; u < n; u++) {
    fedrec_sa_keys k;
    if (CL(fedrec_secagg_client_advertise(c[u], &k, err))) goto out;
    len = fedrec_sa_encode_keys(NULL, 0, &k);
    if (len > rc.sent_keys) rc.sent_keys = len;
    if (SV(fedrec_secagg_server_on_keys(s, &k, err))) goto out;
  }
  if (SV(fedrec_secagg_server_close_keys(s, err))) goto out;
  DROP;
  for (uint32_t u = 0; u < n; u++) {
    if (!alive[u]) continue;
    fedrec_sa_keylist kl;
    fedrec_sa_boxes bx;
    if (SV(fedrec_secagg_server_keylist(s, u, &kl, err))) goto out;
    len = fedrec_sa_encode_keylist(NULL, 0, &kl);
    if (len > rc.got_keylist) rc.got_keylist = len;
    if (CL(fedrec_secagg_client_share(c[u], &kl, &bx, err))) { alive[u] = 0; continue; }
    len = fedrec_sa_encode_boxes(NULL, 0, &bx);
    if (len > rc.sent_boxes) rc.sent_boxes = len;
    if (SV(fedrec_secagg_server_on_boxes(s, u, &bx, err))) goto out;
  }
  if (SV(fedrec_secagg_server_close_shares(s, err))) goto out;
  DROP;
  for (uint32_t u = 0; u < n; u++) {
    if (!alive[u]) continue;
    fedrec_sa_boxes in;
    fedrec_sa_masked m;
    if (SV(fedrec_secagg_server_inbox(s, u, &in, err))) goto out;
    len = fedrec_sa_encode_boxes(NULL, 0, &in);
    if (len > rc.got_inbox) rc.got_inbox = len;
    if (CL(fedrec_secagg_client_mask(c[u], &in, x, &m, err))) { alive[u] = 0; continue; }
    t0 = bench_now();
    len = fedrec_sa_encode_masked(buf, (size_t)-1, &m, bits); /* the client packs it to send */
    rc.client_s += bench_now() - t0;
    if (len > rc.sent_masked) rc.sent_masked = len;
    if (SV(fedrec_secagg_server_on_masked(s, &m, err))) goto out;
    fedrec_secagg_client_release_masked(c[u]);
  }
  if (SV(fedrec_secagg_server_close_masked(s, err))) goto out;
  DROP;
  fedrec_sa_survivors sv;
  if (active) {
    if (SV(fedrec_secagg_server_survivors(s, &sv, err))) goto out;
    rc.got_survivors = fedrec_sa_encode_survivors(NULL, 0, &sv);
    for (uint32_t u = 0; u < n; u++) {
      fedrec_sa_signature sg;
      if (!alive[u] || CL(fedrec_secagg_client_consistency(c[u], &sv, &sg, err))) { alive[u] = 0; continue; }
      len = fedrec_sa_encode_signature(NULL, 0, &sg);
      if (len > rc.sent_sig) rc.sent_sig = len;
      if (SV(fedrec_secagg_server_on_signature(s, &sg, err))) goto out;
    }
    if (SV(fedrec_secagg_server_close_consistency(s, err))) goto out;
  }
  DROP;
  if (SV(fedrec_secagg_server_survivors(s, &sv, err))) goto out;
  rc.got_signed = fedrec_sa_encode_survivors(NULL, 0, &sv);
  for (uint32_t u = 0; u < n; u++) {
    fedrec_sa_reveals rv;
    if (!alive[u] || CL(fedrec_secagg_client_unmask(c[u], &sv, &rv, err))) continue;
    len = fedrec_sa_encode_reveals(NULL, 0, &rv);
    if (len > rc.sent_reveals) rc.sent_reveals = len;
    if (SV(fedrec_secagg_server_on_reveals(s, &rv, err))) goto out;
  }
  rc.server_bytes = fedrec_secagg_server_memory(s);
  if (SV(fedrec_secagg_server_finish(s, x, &rc.survivors, err))) goto out;
  rc.ok = 1;
  rc.client_s /= n;
out:
#undef CL
#undef SV
#undef DROP
  for (uint32_t u = 0; u < n; u++) {
    fedrec_secagg_client_free(c[u]);
    if (active) fedrec_identity_free(&ids[u]);
  }
  fedrec_secagg_server_free(s);
  free(c), free(ids), free(pks), free(alive), free(x), free(buf);
  return rc;
}

/* The active variant against the honest-but-curious one, per device, as deployed: the same
 * round (d = 100 000, 20 bits, 5% dropout) plus, for the active one, what only it costs a
 * device: checking every cohort member's certificate (fedrec_cert_cohort, timed on 20 devices)
 * and receiving them (108 B each). Bytes: sent and received per device (max). */
static void bench_variants(uint32_t n) {
  fedrec_error err = {0};
  round_cost rc[2];
  double cert_s = 0;
  for (int active = 0; active < 2; active++) rc[active] = run_round(n, 100000, 20, 0.05, active, &err);
  if (!rc[0].ok || !rc[1].ok) {
    printf("{\"name\": \"secagg_active_n%u\", \"error\": \"%s\"}\n", n, err.msg);
    return;
  }
  fedrec_identity auth, *dev = calloc(n, sizeof *dev);
  uint8_t *certs = malloc((size_t)n * FEDREC_CERT_BYTES), (*pks)[32] = malloc((size_t)n * 32);
  if (!dev || !certs || !pks || fedrec_identity_new(&auth)) return;
  for (uint32_t u = 0; u < n; u++) {
    if (fedrec_identity_new(&dev[u])) return;
    fedrec_cert_issue(certs + (size_t)u * FEDREC_CERT_BYTES, u, dev[u].pk, &auth);
  }
  uint32_t sample = n < 20 ? n : 20;
  for (uint32_t u = 0; u < sample; u++) {
    double t0 = bench_now();
    if (fedrec_cert_cohort(certs, (size_t)n * FEDREC_CERT_BYTES, n, u, dev[u].pk, auth.pk, pks, &err)) return;
    cert_s += bench_now() - t0;
  }
  cert_s /= sample;
  for (uint32_t u = 0; u < n; u++) fedrec_identity_free(&dev[u]);
  fedrec_identity_free(&auth);
  free(dev), free(certs), free(pks);
  size_t up[2], down[2];
  for (int a = 0; a < 2; a++) {
    up[a] = rc[a].sent_keys + rc[a].sent_boxes + rc[a].sent_masked + rc[a].sent_sig + rc[a].sent_reveals;
    down[a] = rc[a].got_keylist + rc[a].got_inbox + rc[a].got_survivors + rc[a].got_signed + (a ? (size_t)n * FEDREC_CERT_BYTES : 0);
  }
  double t[2] = {rc[0].client_s, rc[1].client_s + cert_s};
  char name[64], extra[400];
  snprintf(extra, sizeof extra, "\"n\": %u, \"dim\": 100000, \"bits\": 20, \"dropout\": 0.05, \"k\": %u, \"passive_up\": %zu, "
           "\"active_up\": %zu, \"passive_down\": %zu, \"active_down\": %zu, \"passive_client_s\": %.4f, "
           "\"active_client_s\": %.4f, \"of_which_certificates_s\": %.4f, \"certificates_down\": %zu, \"signed_list_down\": %zu",
           n, rc[1].k, up[0], up[1], down[0], down[1], t[0], t[1], cert_s, (size_t)n * FEDREC_CERT_BYTES, rc[1].got_signed);
  snprintf(name, sizeof name, "secagg_active_n%u_client_time_ratio", n);
  bench_emit(name, t[1] / t[0], "x", 0, NULL, extra);
  snprintf(name, sizeof name, "secagg_active_n%u_client_bytes_ratio", n);
  bench_emit(name, (double)(up[1] + down[1]) / (double)(up[0] + down[0]), "x", 0, NULL, NULL);
}

int main(int argc, char **argv) {
  int quick = 0, variants = 0;
  uint32_t only = 0; /* --cohort N: just that cohort's round costs */
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--quick")) quick = 1;
    else if (!strcmp(argv[i], "--variants")) variants = 1;
    else if (!strcmp(argv[i], "--cohort") && i + 1 < argc) only = (uint32_t)atoi(argv[++i]);
    else {
      fprintf(stderr, "usage: bench_secagg [--quick] [--cohort N] [--variants]\n");
      return 2;
    }
  }
  if (fedrec_crypto_init()) return 1;
  if (variants) { /* the active variant's cost at 100 and 1 000 clients, alone */
    bench_variants(100);
    bench_variants(1000);
    return 0;
  }
  if (!only) bench_mask_rate();
  uint32_t cohorts[] = {100, 1000, 10000};
  double drops[] = {0, 0.1, 0.3};
  fedrec_error err = {0};
  for (int a = 0; a < (quick ? 2 : 3); a++)
    for (int b = 0; b < 3 && (!only || only == cohorts[a]); b++) {
      round_cost rc = run_round(cohorts[a], 100000, 20, drops[b], 0, &err);
      char name[96], extra[256];
      if (!rc.ok) {
        printf("{\"name\": \"secagg_round_n%u_drop%.0f\", \"error\": \"%s\"}\n", cohorts[a], drops[b] * 100, err.msg);
        continue;
      }
      snprintf(extra, sizeof extra,
               "\"n\": %u, \"dim\": 100000, \"bits\": 20, \"dropout\": %.2f, \"survivors\": %u, \"k\": %u, \"t\": %u, \"log2_fail\": %.1f, \"log2_insecure\": %.1f, \"client\": \"mean per client\"",
               cohorts[a], drops[b], rc.survivors, rc.k, rc.t, rc.log2_fail, rc.log2_insecure);
      snprintf(name, sizeof name, "secagg_round_n%u_drop%.0f_client_s", cohorts[a], drops[b] * 100);
      bench_emit(name, rc.client_s, "s", 0, NULL, extra);
      snprintf(name, sizeof name, "secagg_round_n%u_drop%.0f_server_s", cohorts[a], drops[b] * 100);
      bench_emit(name, rc.server_s, "s", 0, NULL, extra);
      snprintf(name, sizeof name, "secagg_round_n%u_drop%.0f_server_mib", cohorts[a], drops[b] * 100);
      bench_emit(name, rc.server_bytes / 1048576.0, "MiB", 0, NULL, extra);
    }
  /* Bytes per client at 1 000 clients: run the active protocol at d = 1 000 (every message
   * but the masked vector is independent of d), then size the masked vector at d = 10^6. */
  for (uint32_t bits = 16; bits <= 32 && !only; bits += 16) {
    round_cost rc = run_round(1000, 1000, bits, 0.05, 1, &err);
    if (!rc.ok) continue;
    fedrec_sa_masked big = {0, 1000000, NULL};
    size_t masked = fedrec_sa_encode_masked(NULL, 0, &big, bits);
    size_t vec = ((size_t)1000000 * bits + 7) / 8;
    size_t total = rc.sent_keys + rc.sent_boxes + masked + rc.sent_sig + rc.sent_reveals;
    char name[64], extra[256];
    snprintf(extra, sizeof extra, "\"n\": 1000, \"dim\": 1000000, \"bits\": %u, \"bytes_total\": %zu, \"keys\": %zu, \"boxes\": %zu, \"masked\": %zu, \"signature\": %zu, \"reveals\": %zu, \"bonawitz_2017_ratio\": 1.73",
             bits, total, rc.sent_keys, rc.sent_boxes, masked, rc.sent_sig, rc.sent_reveals);
    snprintf(name, sizeof name, "secagg_client_bytes_ratio_b%u", bits);
    bench_emit(name, (double)total / (double)vec, "x", 0, NULL, extra);
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  bench_emit("secagg_bench_peak_rss_mib", ru.ru_maxrss / 1024.0, "MiB", 0, NULL, NULL);
  return 0;
}
