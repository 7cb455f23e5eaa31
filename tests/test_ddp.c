/* The distributed-DP pipeline: rotation, round trip of the modular sum, clipping, noise. */
#include <math.h>
#include <string.h>

#include "fedrec/crypto.h"
#include "fedrec/ddp.h"
#include "test_util.h"

static void test_fwht(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 1, 1);
  double x[256], y[256], nx = 0, ny = 0;
  for (int i = 0; i < 256; i++) x[i] = y[i] = fedrec_rng_normal(&r), nx += x[i] * x[i];
  fedrec_fwht(y, 256);
  for (int i = 0; i < 256; i++) ny += y[i] * y[i];
  assert_near(ny, nx, 1e-9 * nx); /* orthonormal */
  fedrec_fwht(y, 256);
  for (int i = 0; i < 256; i++) assert_near(y[i], x[i], 1e-12); /* its own inverse */
  double e[4] = {1, 0, 0, 0};
  fedrec_fwht(e, 4);
  for (int i = 0; i < 4; i++) assert_near(e[i], 0.5, 1e-15);
}

/* The cache-blocked transform does the textbook butterflies in another order: the same bits. */
static void test_fwht_blocked_matches_textbook(void **state) {
  (void)state;
  uint32_t n = 1u << 17;
  double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
  fedrec_rng r;
  fedrec_rng_seed(&r, 2, 2);
  for (uint32_t i = 0; i < n; i++) x[i] = y[i] = fedrec_rng_normal(&r);
  for (uint32_t h = 1; h < n; h <<= 1)
    for (uint32_t i = 0; i < n; i += 2 * h)
      for (uint32_t j = i; j < i + h; j++) {
        double a = x[j], b = x[j + h];
        x[j] = a + b, x[j + h] = a - b;
      }
  double s = 1 / sqrt((double)n);
  for (uint32_t i = 0; i < n; i++) x[i] *= s;
  fedrec_fwht(y, n);
  assert_memory_equal(x, y, n * sizeof *x);
  free(x), free(y);
}

static fedrec_ddp_params params(uint32_t dim) {
  return (fedrec_ddp_params){.dim = dim, .clip = 1.0, .gamma = 1e-3, .bits = 20,
                             .beta = exp(-0.5), .round_seed = 77, .noise = FEDREC_NOISE_NONE};
}

/* decode(sum of encodings mod 2^b) equals the sum of clipped updates within the rounding
 * error: each client's rounding moves each integer coordinate by less than 1. */
static void test_roundtrip(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  fedrec_rng r;
  fedrec_rng_seed(&r, 2, 2);
  uint32_t d = 1000, n = fedrec_ddp_padded(d), clients = 20;
  assert_int_equal(n, 1024);
  fedrec_ddp_params p = params(d);
  float *u = malloc(d * 4), *out = malloc(d * 4);
  double *want = calloc(d, 8), *work = malloc(n * 8);
  uint32_t *enc = malloc(n * 4), *sum = calloc(n, 4);
  fedrec_error err = {0};
  for (uint32_t c = 0; c < clients; c++) {
    double norm = 0;
    for (uint32_t i = 0; i < d; i++) u[i] = (float)(fedrec_rng_normal(&r) * 0.02), norm += (double)u[i] * u[i];
    norm = sqrt(norm);
    double s = norm > p.clip ? p.clip / norm : 1; /* some clients exceed the clip norm */
    for (uint32_t i = 0; i < d; i++) want[i] += u[i] * s;
    assert_status(fedrec_ddp_encode(enc, u, &p, &e, work, &err), FEDREC_OK);
    for (uint32_t i = 0; i < n; i++) sum[i] = (sum[i] + enc[i]) & ((1u << p.bits) - 1);
  }
  fedrec_ddp_decode(out, sum, &p, work);
  double e2 = 0, w2 = 0;
  for (uint32_t i = 0; i < d; i++) e2 += (out[i] - want[i]) * (out[i] - want[i]), w2 += want[i] * want[i];
  double bound = clients * p.gamma * sqrt((double)n);
  print_message("round trip: |error| %.4g, bound %.4g, |sum| %.4g\n", sqrt(e2), bound, sqrt(w2));
  assert_true(sqrt(e2) <= bound);
  assert_true(sqrt(e2) < 0.05 * sqrt(w2)); /* and small against the signal */
  free(u), free(out), free(want), free(work), free(enc), free(sum);
}

static void test_clip_and_noise(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  uint32_t d = 512, n = 512;
  fedrec_ddp_params p = params(d);
  float u[512], out[512];
  double work[512];
  uint32_t enc[512];
  fedrec_error err = {0};
  for (uint32_t i = 0; i < d; i++) u[i] = (i % 2 ? 1.0f : -1.0f) * 0.5f; /* norm 0.5 sqrt(512) = 11.3 */
  assert_status(fedrec_ddp_encode(enc, u, &p, &e, work, &err), FEDREC_OK);
  fedrec_ddp_decode(out, enc, &p, work);
  double norm = 0;
  for (uint32_t i = 0; i < d; i++) norm += (double)out[i] * out[i];
  assert_near(sqrt(norm), p.clip, p.gamma * sqrt((double)n)); /* clipped to 1 */
  /* noise only: each decoded coordinate has variance gamma^2 sigma^2 (rotation keeps it) */
  memset(u, 0, sizeof u);
  p.noise = FEDREC_NOISE_DGAUSS;
  p.sigma2_num = 400, p.sigma2_den = 1;
  double s2 = 0;
  int reps = 40;
  for (int k = 0; k < reps; k++) {
    assert_status(fedrec_ddp_encode(enc, u, &p, &e, work, &err), FEDREC_OK);
    fedrec_ddp_decode(out, enc, &p, work);
    for (uint32_t i = 0; i < d; i++) s2 += (double)out[i] * out[i];
  }
  s2 /= (double)reps * d;
  assert_near(s2 / (p.gamma * p.gamma * 400), 1.0, 0.05);
  /* the same with Skellam noise of variance 16 */
  p.noise = FEDREC_NOISE_SKELLAM;
  p.sigma2_num = 16, p.sigma2_den = 1;
  s2 = 0;
  for (int k = 0; k < reps; k++) {
    assert_status(fedrec_ddp_encode(enc, u, &p, &e, work, &err), FEDREC_OK);
    fedrec_ddp_decode(out, enc, &p, work);
    for (uint32_t i = 0; i < d; i++) s2 += (double)out[i] * out[i];
  }
  s2 /= (double)reps * d;
  assert_near(s2 / (p.gamma * p.gamma * 16), 1.0, 0.05);
  p.bits = 1;
  assert_status(fedrec_ddp_encode(enc, u, &p, &e, work, &err), FEDREC_ERR_ARG);
}

/* gamma from the helper: the simulated modular sums never wrap, and sum error stays small. */
static void test_choose_gamma(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  fedrec_error err = {0};
  uint32_t d = 1000, n = 50, D = fedrec_ddp_padded(d);
  double gamma;
  assert_status(fedrec_ddp_choose_gamma(&gamma, 1.0, d, n, 0.5, 16, 1e-6, &err), FEDREC_OK);
  fedrec_ddp_params p = {.dim = d, .clip = 1, .gamma = gamma, .bits = 16, .beta = exp(-0.5),
                         .round_seed = 5, .noise = FEDREC_NOISE_DGAUSS};
  double s2 = 0.25 / n / (gamma * gamma); /* per-client share of (z c / gamma)^2, z = 0.5 */
  p.sigma2_num = (uint64_t)ceil(s2 * 64), p.sigma2_den = 64;
  fedrec_rng r;
  fedrec_rng_seed(&r, 9, 9);
  float *u = malloc(d * 4);
  double *work = malloc(D * 8);
  uint32_t *enc = malloc(D * 4);
  int64_t *plain = calloc(D, 8);
  /* independent directions, then the worst case: every client the same vector (a sum of
   * length n c, as count rounds' item vectors come near) */
  for (int aligned = 0; aligned < 2; aligned++) {
    int64_t maxabs = 0;
    memset(plain, 0, D * 8);
    for (uint32_t c = 0; c < n; c++) {
      double norm = 0;
      if (!aligned || c == 0) {
        for (uint32_t i = 0; i < d; i++) u[i] = (float)fedrec_rng_normal(&r), norm += (double)u[i] * u[i];
        for (uint32_t i = 0; i < d; i++) u[i] = (float)(u[i] / sqrt(norm)); /* at the clip norm */
      }
      assert_status(fedrec_ddp_encode(enc, u, &p, &e, work, &err), FEDREC_OK);
      for (uint32_t i = 0; i < D; i++) {
        int64_t v = enc[i] >= (1u << 15) ? (int64_t)enc[i] - (1 << 16) : enc[i];
        plain[i] += v;
      }
    }
    for (uint32_t i = 0; i < D; i++) maxabs = llabs(plain[i]) > maxabs ? llabs(plain[i]) : maxabs;
    print_message("gamma %.4g, %s: largest |coordinate| of the plain sum %lld of %d\n", gamma,
                  aligned ? "one direction" : "independent directions", (long long)maxabs, 1 << 15);
    assert_true(maxabs < (1 << 15)); /* no wrap */
  }
  assert_status(fedrec_ddp_choose_gamma(&gamma, 1.0, d, 100000, 0.5, 8, 1e-6, &err), FEDREC_ERR_ARG);
  /* central DP noise: variance (z c / gamma)^2 in the integer domain */
  int64_t agg[4096] = {0};
  assert_status(fedrec_central_dp_noise(agg, 4096, 1.0, 1.0, 0.05, &e, &err), FEDREC_OK);
  double v = 0;
  for (int i = 0; i < 4096; i++) v += (double)agg[i] * agg[i];
  assert_near(v / 4096 / 400, 1.0, 0.1);
  free(u), free(work), free(enc), free(plain);
}

/* The bits chooser: the fewest bits whose gamma keeps rounding below the ratio, and one bit
 * fewer does not; sensitivities follow the rounding bound. */
static void test_choose_bits(void **state) {
  (void)state;
  fedrec_error err = {0};
  uint32_t bits, d = 100000, n = 1000;
  double gamma, g2, z = 1.0, c = 1.0;
  assert_status(fedrec_ddp_choose_bits(&bits, &gamma, c, d, n, z, 1e-6, 0.01, 0, &err), FEDREC_OK);
  print_message("d %u, n %u, z %g: %u bits, gamma %.4g\n", d, n, z, bits, gamma);
  assert_true(bits > 2 && bits <= 32);
  assert_true(n * gamma * gamma / 4 <= 0.01 * z * z * c * c);
  assert_status(fedrec_ddp_choose_gamma(&g2, c, d, n, z, bits, 1e-6, &err), FEDREC_OK);
  assert_near(g2, gamma, 0);
  if (fedrec_ddp_choose_gamma(&g2, c, d, n, z, bits - 1, 1e-6, NULL) == FEDREC_OK)
    assert_true(n * g2 * g2 / 4 > 0.01 * z * z * c * c);
  /* a stricter ratio needs at least as many bits */
  uint32_t bits2;
  assert_status(fedrec_ddp_choose_bits(&bits2, &g2, c, d, n, z, 1e-6, 1e-4, 0, &err), FEDREC_OK);
  assert_true(bits2 >= bits);
  assert_status(fedrec_ddp_choose_bits(&bits2, &g2, c, d, n, z, 1e-6, 1e-30, 0, &err), FEDREC_ERR_ARG);
  assert_status(fedrec_ddp_choose_bits(&bits2, &g2, c, d, n, z, 1e-6, 0, 0, &err), FEDREC_ERR_ARG);
  /* with a bound on the sensitivity inflation: more bits, a finer grid, and the bound holds */
  assert_status(fedrec_ddp_choose_bits(&bits2, &g2, c, d, n, z, 1e-6, 0.01, 0.05, &err), FEDREC_OK);
  fedrec_ddp_params q = {.dim = d, .clip = c, .gamma = g2, .beta = exp(-0.5)};
  print_message("with at most 5%% inflation: %u bits, gamma %.4g, bound %.1f vs c/gamma %.1f\n", bits2, g2,
                fedrec_ddp_rounding_bound(&q), c / g2);
  assert_true(bits2 > bits && g2 < gamma);
  assert_true(fedrec_ddp_rounding_bound(&q) <= 1.05 * c / g2);

  fedrec_ddp_params p = {.dim = 1000, .clip = 1, .gamma = 0.01, .bits = 16, .beta = exp(-0.5)};
  double d2, d1;
  fedrec_ddp_sensitivity(&p, &d2, &d1);
  assert_near(d2, fedrec_ddp_rounding_bound(&p), 0);
  assert_true(d2 >= 100); /* at least c / gamma */
  assert_near(d1, d2 * sqrt(1024.0), 1e-9 * d1);
  p.gamma = 1; /* coarse grid: few non-zero coordinates, L1 <= L2^2 binds */
  fedrec_ddp_sensitivity(&p, &d2, &d1);
  assert_near(d1, d2 * d2, 1e-12 * d1);
}

/* The rounding kernel against the plain loop it replaced (floor, one coin per value, the
 * squared length summed in double in order): the same output bit for bit, including values
 * past 2^26 and totals past 2^53, where the fast path hands over to the double sum. */
static void ref_bytes(void *ctx, void *buf, uint64_t n) { fedrec_rng_fill(ctx, buf, n); }
static int ref_round(uint32_t *out, const double *x, uint32_t n, uint32_t bits, double bound, fedrec_rng *r) {
  int64_t mask = bits == 32 ? 0xffffffffLL : ((1LL << bits) - 1);
  for (int tries = 0; tries < 1000; tries++) {
    double len2 = 0;
    for (uint32_t i = 0; i < n; i++) {
      uint64_t coin = fedrec_rng_u64(r);
      double f = floor(x[i]);
      int64_t v = (int64_t)f + ((double)(coin >> 11) * 0x1.0p-53 < x[i] - f);
      out[i] = (uint32_t)(v & mask);
      len2 += (double)v * (double)v;
    }
    if (len2 <= bound * bound) return tries + 1;
  }
  return 0;
}

static void test_round_matches_reference(void **state) {
  (void)state;
  enum { N = 1000 };
  double *x = malloc(N * sizeof *x);
  uint32_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
  const double scales[] = {0.7, 300, 3e6, 1e8, 4e9};
  for (int k = 0; k < 5; k++) {
    fedrec_rng g;
    fedrec_rng_seed(&g, 5, (uint64_t)k);
    double len2 = 0;
    for (int i = 0; i < N; i++) x[i] = scales[k] * (fedrec_rng_normal(&g) + (i % 7 == 0 ? 0.5 : 0)), len2 += x[i] * x[i];
    x[N - 1] = -x[N - 1];
    for (int tight = 0; tight < 2; tight++) { /* a bound that makes it draw again, and one that does not */
      double bound = tight ? sqrt(len2) + 0.2 * sqrt((double)N) : 1e300;
      fedrec_rng r1, r2;
      fedrec_rng_seed(&r1, 9, (uint64_t)(10 * k + tight));
      r2 = r1;
      fedrec_entropy ent = {ref_bytes, &r1, 0};
      fedrec_error err = {0};
      fedrec_status st = fedrec_ddp_round(a, x, N, 32, bound, &ent, &err);
      int tries = ref_round(b, x, N, 32, bound, &r2);
      assert_true(tries > 0 ? st == FEDREC_OK : st == FEDREC_ERR_NUMERIC);
      if (tries) assert_memory_equal(a, b, N * sizeof *a);
      assert_memory_equal(r1.s, r2.s, sizeof r1.s); /* the same coins consumed */
    }
  }
  /* fedrec_rng_fill gives the bytes of successive u64 draws, the last cut short */
  fedrec_rng r1, r2;
  fedrec_rng_seed(&r1, 1, 2), fedrec_rng_seed(&r2, 1, 2);
  uint8_t got[61], want[64];
  fedrec_rng_fill(&r1, got, sizeof got);
  for (int i = 0; i < 8; i++) {
    uint64_t v = fedrec_rng_u64(&r2);
    memcpy(want + 8 * i, &v, 8);
  }
  assert_memory_equal(got, want, sizeof got);
  free(x), free(a), free(b);
}

/* The padded length for every length a hostile round info can carry: past 2^31 no power of
 * two fits, and the doubling loop wrapped to 0 and never ended (a device hung on such a round:
 * found by fuzz_round_info). */
static void test_padded_edges(void **state) {
  (void)state;
  assert_int_equal(fedrec_ddp_padded(1), 1);
  assert_int_equal(fedrec_ddp_padded(1000), 1024);
  assert_int_equal(fedrec_ddp_padded(1u << 31), 1u << 31);
  assert_int_equal(fedrec_ddp_padded((1u << 31) + 1), 0);
  assert_int_equal(fedrec_ddp_padded(0xffffffffu), 0);
}

int main(void) {
  assert_status(fedrec_crypto_init(), FEDREC_OK);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_padded_edges),
      cmocka_unit_test(test_fwht),
      cmocka_unit_test(test_fwht_blocked_matches_textbook),
      cmocka_unit_test(test_roundtrip),
      cmocka_unit_test(test_clip_and_noise),
      cmocka_unit_test(test_choose_gamma),
      cmocka_unit_test(test_choose_bits),
      cmocka_unit_test(test_round_matches_reference),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
