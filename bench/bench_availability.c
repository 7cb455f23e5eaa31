/* What availability rules cost (docs/CATALOGUE.md "Availability"): a catalogue of N items of
 * which a share R is restricted to some of G groups (K groups each, e.g. licensed regions) and
 * 1% blocked. Measured:
 *   rules_apply_ms     the coordinator mapping the rule files onto the catalogue
 *   catalogue_bytes    the signed catalogue with the rules, against the same without them
 *   allowed_ms         a device's filter for its region (what every recommend adds), median of
 *                      30, against one sgemv pass over the item vectors (n x 32), the least
 *                      a recommend that scores every item does, in the same run
 *   bench_availability [N (100000)] [G (250)] [K (20)] [R (0.5)] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "catalogue.h"
#include "fedrec/rng.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  int32_t n = argc > 1 ? atoi(argv[1]) : 100000, G = argc > 2 ? atoi(argv[2]) : 250, K = argc > 3 ? atoi(argv[3]) : 20;
  double share = argc > 4 ? atof(argv[4]) : 0.5;
  if (n < 100 || G < 1 || K < 1 || K > G || !(share >= 0 && share <= 1)) {
    fprintf(stderr, "usage: bench_availability [N >= 100] [G >= 1] [1 <= K <= G] [0 <= R <= 1]\n");
    return 2;
  }
  char spec[128];
  snprintf(spec, sizeof spec, "synthetic:users=2,items=%d,dim=8,seed=1", n);
  fedrec_catalogue c;
  fedrec_error err;
  if (fedrec_catalogue_load(&c, spec, &err) || fedrec_catalogue_encode(&c, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  size_t plain = c.len;
  /* the rule files' text: R of the items, each in K random groups g0..g{G-1}; 1% blocked */
  size_t cap = (size_t)n * ((size_t)K * 8 + 24) + 1, at = 0, bat = 0;
  char *avail = malloc(cap), *blocked = malloc((size_t)n * 12 + 1);
  fedrec_rng r;
  fedrec_rng_seed(&r, 5, 1);
  for (int32_t i = 0; i < n; i++) {
    if (fedrec_rng_uniform(&r) < share) {
      at += (size_t)snprintf(avail + at, cap - at, "i%d\t", i);
      for (int32_t k = 0; k < K; k++)
        at += (size_t)snprintf(avail + at, cap - at, "%sg%d", k ? "," : "", (int)fedrec_rng_below(&r, (uint64_t)G));
      avail[at++] = '\n';
    }
    if (i % 100 == 7) bat += (size_t)sprintf(blocked + bat, "i%d\n", i);
  }
  fedrec_catalogue_rules rules;
  int32_t unknown;
  char first[64];
  double t0 = bench_now();
  if (fedrec_catalogue_rules_parse(&rules, avail, (int64_t)at, "availability", blocked, (int64_t)bat, "blocked", &err) ||
      fedrec_catalogue_apply_rules(&c, &rules, &unknown, first, sizeof first, &err))
    return fprintf(stderr, "%s\n", err.msg), 1;
  double t_apply = bench_now() - t0;
  if (fedrec_catalogue_encode(&c, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  /* the device's filter, and the limit: one sgemv over n x 32 item vectors */
  uint8_t *allowed = malloc((size_t)n);
  float *V = malloc((size_t)n * 32 * sizeof *V), *u = malloc(32 * sizeof *u), *s = malloc((size_t)n * sizeof *s);
  for (int64_t k = 0; k < (int64_t)n * 32; k++) V[k] = (float)fedrec_rng_normal(&r);
  for (int k = 0; k < 32; k++) u[k] = 1.0f / 32;
  double filt[30], gemv[30];
  int32_t kept = 0;
  for (int rep = 0; rep < 30; rep++) {
    t0 = bench_now();
    kept = fedrec_catalogue_allowed(&c, "g7,g42", allowed);
    filt[rep] = bench_now() - t0;
    t0 = bench_now();
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, 32, 1.0f, V, 32, u, 1, 0.0f, s, 1);
    gemv[rep] = bench_now() - t0;
  }
  qsort(filt, 30, sizeof *filt, cmp_double), qsort(gemv, 30, sizeof *gemv, cmp_double);
  char extra[200];
  snprintf(extra, sizeof extra, "\"items\": %d, \"groups\": %d, \"per_item\": %d, \"restricted\": %d, \"allowed\": %d", n, G, K,
           fedrec_catalogue_restricted_count(&c), kept);
  bench_emit("rules_apply_ms", 1e3 * t_apply, "ms", 0, NULL, extra);
  bench_emit("catalogue_bytes", (double)c.len, "bytes", (double)plain, "catalogue_without_rules_bytes", extra);
  bench_emit("allowed_ms", 1e3 * filt[15], "ms", 1e3 * gemv[15], "sgemv_pass_ms", extra);
  fedrec_catalogue_rules_free(&rules);
  fedrec_catalogue_free(&c);
  free(avail), free(blocked), free(allowed), free(V), free(u), free(s);
  return 0;
}
