/* Exact samplers against their exact distributions, on a million CSPRNG samples each (every
 * tolerance scales with N: the emulated aarch64 build, FEDREC_DEVICE_ONLY, uses 200 000, since
 * qemu runs them 8x slower; tests/e2e/aarch64.sh). */
#include <math.h>

#include "fedrec/internal/sim.h"
#include "fedrec/crypto.h"
#include "fedrec/noise.h"
#include "test_util.h"

#ifdef FEDREC_NOISE_SAMPLES
#define N FEDREC_NOISE_SAMPLES
#else
#define N 1000000
#endif

/* Chi-square statistic of counts over [-m, m] (tails pooled into the end bins) against pmf. */
static double chi_square(const int64_t *x, double (*pmf)(double, int64_t), double par, int m,
                         int *dof) {
  double *obs = calloc((size_t)(2 * m + 1), sizeof *obs), chi = 0;
  for (int64_t i = 0; i < N; i++) {
    int64_t v = x[i] < -m ? -m : x[i] > m ? m : x[i];
    obs[v + m] += 1;
  }
  for (int k = -m; k <= m; k++) {
    double p = 0;
    if (k == -m || k == m)
      for (int64_t j = (k < 0 ? -m - 2000 : m); j <= (k < 0 ? -m : m + 2000); j++) p += pmf(par, j);
    else
      p = pmf(par, k);
    double expct = p * N;
    chi += (obs[k + m] - expct) * (obs[k + m] - expct) / expct;
  }
  free(obs);
  *dof = 2 * m;
  return chi;
}

static double dgauss_norm(double s2) {
  double z = 0;
  for (int64_t k = -4000; k <= 4000; k++) z += exp(-(double)k * k / (2 * s2));
  return z;
}
static double g_norm;
static double dgauss_pmf(double s2, int64_t k) { return exp(-(double)k * k / (2 * s2)) / g_norm; }
static double dlap_pmf(double t, int64_t k) {
  return (1 - exp(-1 / t)) / (1 + exp(-1 / t)) * exp(-fabs((double)k) / t);
}

static void check_moments(const int64_t *x, double var, double tail_p, int64_t tail_at) {
  double mean = 0, m2 = 0, tail = 0;
  for (int64_t i = 0; i < N; i++) {
    mean += (double)x[i];
    m2 += (double)x[i] * (double)x[i];
    tail += llabs(x[i]) >= tail_at;
  }
  mean /= N, m2 /= N, tail /= N;
  assert_near(mean, 0, 5 * sqrt(var / N));
  assert_near(m2, var, 5 * var * sqrt(2.0 / N) * 1.5);
  assert_near(tail, tail_p, 5 * sqrt(tail_p / N) + 1e-6);
}

static void test_discrete_gaussian(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  int64_t *x = malloc(N * sizeof *x);
  uint64_t sn = 9, sd = 2; /* sigma^2 = 4.5: a non-integer sigma */
  double s2 = 4.5;
  for (int64_t i = 0; i < N; i++) assert_status(fedrec_discrete_gaussian(&x[i], &e, sn, sd), FEDREC_OK);
  g_norm = dgauss_norm(s2);
  double var = 0, tail = 0;
  for (int64_t k = -4000; k <= 4000; k++) {
    var += (double)k * k * dgauss_pmf(s2, k);
    if (llabs(k) >= 6) tail += dgauss_pmf(s2, k);
  }
  check_moments(x, var, tail, 6);
  int dof;
  double chi = chi_square(x, dgauss_pmf, s2, 9, &dof);
  print_message("discrete Gaussian sigma^2=4.5: chi-square %.1f on %d dof\n", chi, dof);
  assert_true(chi < dof + 5 * sqrt(2.0 * dof)); /* far beyond the 99.99th percentile otherwise */
  int64_t v;
  assert_status(fedrec_discrete_gaussian(&v, &e, 0, 1), FEDREC_ERR_ARG);
  assert_status(fedrec_discrete_gaussian(&v, &e, 1ULL << 32, 1), FEDREC_ERR_ARG);
  free(x);
}

static void test_discrete_laplace(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  int64_t *x = malloc(N * sizeof *x);
  uint64_t t = 3;
  for (int64_t i = 0; i < N; i++) x[i] = fedrec_discrete_laplace(&e, t);
  double var = 0, tail = 0;
  for (int64_t k = -2000; k <= 2000; k++) {
    var += (double)k * k * dlap_pmf(3, k);
    if (llabs(k) >= 10) tail += dlap_pmf(3, k);
  }
  check_moments(x, var, tail, 10);
  int dof;
  double chi = chi_square(x, dlap_pmf, 3, 12, &dof);
  print_message("discrete Laplace t=3: chi-square %.1f on %d dof\n", chi, dof);
  assert_true(chi < dof + 5 * sqrt(2.0 * dof));
  free(x);
}

static void test_bernoulli_exp(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  double gs[][2] = {{0, 1}, {1, 3}, {5, 2}, {7, 7}};
  for (int a = 0; a < 4; a++) {
    int64_t hits = 0;
    for (int64_t i = 0; i < N; i++) hits += fedrec_bernoulli_exp(&e, (unsigned)gs[a][0], (unsigned)gs[a][1]);
    double p = exp(-gs[a][0] / gs[a][1]);
    assert_near((double)hits / N, p, 5 * sqrt(p * (1 - p) / N) + 1e-9);
  }
}

static double poisson_pmf(double lam, int64_t k) {
  if (k < 0) return 0;
  return exp(-lam + k * log(lam) - lgamma(k + 1.0));
}

static double skellam_pmf(double lam, int64_t k) { /* sum_j P(j + |k|) P(j) */
  double p = 0;
  for (int64_t j = 0; j < 200; j++) p += poisson_pmf(lam, j + llabs(k)) * poisson_pmf(lam, j);
  return p;
}

static void test_poisson_skellam(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  int64_t *x = malloc(N * sizeof *x);
  /* Poisson(2.5): chi-square over 0..12 (shifted so the helper's symmetric bins fit) */
  for (int64_t i = 0; i < N; i++) x[i] = fedrec_poisson(&e, 5, 2) - 6;
  double chi = 0;
  double obs[13] = {0};
  for (int64_t i = 0; i < N; i++) obs[x[i] + 6 > 12 ? 12 : x[i] + 6] += 1;
  for (int k = 0; k <= 12; k++) {
    double p = 0;
    if (k < 12) p = poisson_pmf(2.5, k);
    else for (int j = 12; j < 100; j++) p += poisson_pmf(2.5, j);
    chi += (obs[k] - p * N) * (obs[k] - p * N) / (p * N);
  }
  print_message("Poisson(2.5): chi-square %.1f on 12 dof\n", chi);
  assert_true(chi < 12 + 5 * sqrt(24.0));
  /* Skellam, lambda = 4.5 per side: moments, tail and chi-square against the exact pmf */
  for (int64_t i = 0; i < N; i++) x[i] = fedrec_skellam(&e, 9, 2);
  double tail = 0;
  for (int64_t k = 8; k < 200; k++) tail += 2 * skellam_pmf(4.5, k);
  check_moments(x, 9.0, tail, 8);
  int dof;
  chi = chi_square(x, skellam_pmf, 4.5, 9, &dof);
  print_message("Skellam(4.5): chi-square %.1f on %d dof\n", chi, dof);
  assert_true(chi < dof + 5 * sqrt(2.0 * dof));
  free(x);
}

static int64_t g_shift;
static double poisson_pmf_shifted(double lam, int64_t k) { return poisson_pmf(lam, k + g_shift); }

/* The O(sqrt(lambda)) rejection sampler (lambda >= 8) on both sides of the mode, at the
 * switch-over (8), a fractional mean (50.5) and a large one (1234.5); Skellam at variance 100. */
static void test_poisson_large(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  int64_t *x = malloc(N * sizeof *x);
  const uint64_t nums[] = {16, 101, 2469};
  for (int c = 0; c < 3; c++) {
    double lam = nums[c] / 2.0;
    g_shift = (int64_t)floor(lam);
    double mean = 0, m2 = 0;
    for (int64_t i = 0; i < N; i++) {
      x[i] = fedrec_poisson(&e, nums[c], 2) - g_shift;
      mean += (double)x[i] + (double)g_shift;
      m2 += ((double)x[i] + (double)g_shift - lam) * ((double)x[i] + (double)g_shift - lam);
    }
    mean /= N, m2 /= N;
    assert_near(mean, lam, 5 * sqrt(lam / N));
    assert_near(m2, lam, 5 * lam * sqrt(2.0 / N) * 1.5);
    int dof, half = (int)(4 * sqrt(lam)) < g_shift ? (int)(4 * sqrt(lam)) : (int)g_shift;
    double chi = chi_square(x, poisson_pmf_shifted, lam, half, &dof);
    print_message("Poisson(%g): mean %.4f, variance %.4f, chi-square %.1f on %d dof\n", lam, mean, m2, chi, dof);
    assert_true(chi < dof + 5 * sqrt(2.0 * dof));
  }
  for (int64_t i = 0; i < N; i++) x[i] = fedrec_skellam(&e, 50, 1);
  double tail = 0;
  for (int64_t k = 25; k < 200; k++) tail += 2 * skellam_pmf(50, k);
  check_moments(x, 100.0, tail, 25);
  int dof;
  double chi = chi_square(x, skellam_pmf, 50, 30, &dof);
  print_message("Skellam(50): chi-square %.1f on %d dof\n", chi, dof);
  assert_true(chi < dof + 5 * sqrt(2.0 * dof));
  free(x);
}

/* The simulation-only PTRS sampler: chi-square against the pmf at lambda 50.5 and 1234.5,
 * mean and variance at 1e9 (where the exact sampler would take ~10^5 coins per draw). */
static void test_poisson_fast(void **state) {
  (void)state;
  fedrec_entropy e;
  fedrec_csprng(&e);
  int64_t *x = malloc(N * sizeof *x);
  const double lams[] = {50.5, 1234.5};
  for (int c = 0; c < 2; c++) {
    double lam = lams[c];
    g_shift = (int64_t)floor(lam);
    for (int64_t i = 0; i < N; i++) x[i] = fedrec_poisson_fast(&e, lam) - g_shift;
    int dof;
    double chi = chi_square(x, poisson_pmf_shifted, lam, (int)(4 * sqrt(lam)), &dof);
    print_message("fast Poisson(%g): chi-square %.1f on %d dof\n", lam, chi, dof);
    assert_true(chi < dof + 5 * sqrt(2.0 * dof));
  }
  double lam = 1e9, mean = 0, m2 = 0;
  for (int64_t i = 0; i < N; i++) {
    double v = (double)fedrec_poisson_fast(&e, lam) - lam;
    mean += v, m2 += v * v;
  }
  mean /= N, m2 /= N;
  assert_near(mean, 0, 5 * sqrt(lam / N));
  assert_near(m2, lam, 5 * lam * sqrt(2.0 / N));
  for (int64_t i = 0; i < N; i++) x[i] = fedrec_skellam_fast(&e, 50);
  int dof;
  double chi = chi_square(x, skellam_pmf, 50, 30, &dof);
  print_message("fast Skellam(50): chi-square %.1f on %d dof\n", chi, dof);
  assert_true(chi < dof + 5 * sqrt(2.0 * dof));
  free(x);
}

int main(void) {
  assert_status(fedrec_crypto_init(), FEDREC_OK);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bernoulli_exp),
      cmocka_unit_test(test_discrete_laplace),
      cmocka_unit_test(test_discrete_gaussian),
      cmocka_unit_test(test_poisson_skellam),
      cmocka_unit_test(test_poisson_large),
      cmocka_unit_test(test_poisson_fast),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
