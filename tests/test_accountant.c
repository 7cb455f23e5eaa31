/* The RDP accountant against published values and the formulas' own identities. */
#include <math.h>
#include <string.h>

#include "fedrec/accountant.h"
#include "fedrec/mechanism.h"
#include "fedrec/rng.h"
#include "test_util.h"

static void grid_opacus(fedrec_orders *o) {
  o->n = 0;
  for (int x = 1; x <= 99; x++) o->a[o->n++] = 1 + x / 10.0;
  for (int x = 12; x <= 63; x++) o->a[o->n++] = x;
}

/* Opacus: q = 0.04, z = 1.5, T = 2250, delta = 1e-5 -> 7.32911117 at order 3.9 (fractional). */
static void test_published_opacus(void **state) {
  (void)state;
  fedrec_orders o;
  grid_opacus(&o);
  double a, e = fedrec_epsilon_gaussian(0.04, 1.5, 2250, 1e-5, &o, &a);
  assert_near(e, 7.32911117, 1e-6 * 7.32911117);
  assert_near(a, 3.9, 1e-12);
}

/* TF-Privacy: q = 0.0025, z = 1.3, T = 6000, delta = 1e-5 -> 0.72422340 at order 19. */
static void test_published_tfprivacy(void **state) {
  (void)state;
  fedrec_orders o;
  fedrec_error err;
  assert_status(fedrec_orders_parse(&o, "1.25,1.5,1.75,2,2.25,2.5,3,3.5,4,4.5,5:63,128,256,512", &err), FEDREC_OK);
  assert_int_equal(o.n, 72);
  double a, e = fedrec_epsilon_gaussian(0.0025, 1.3, 6000, 1e-5, &o, &a);
  assert_near(e, 0.72422340, 1e-6 * 0.72422340);
  assert_near(a, 19, 0);
}

/* q = 1 is the plain Gaussian: RDP a / (2 z^2), any order, integer or not. */
static void test_full_batch(void **state) {
  (void)state;
  double orders[] = {1.5, 2, 3.7, 10, 64.5};
  for (int k = 0; k < 5; k++)
    assert_near(fedrec_rdp_subsampled_gaussian(1.0, 0.8, orders[k]), orders[k] / (2 * 0.64), 1e-12);
  assert_true(fedrec_rdp_subsampled_gaussian(0.0, 0.8, 3) == 0);
  assert_true(isinf(fedrec_rdp_subsampled_gaussian(0.1, 0.0, 3)));
  /* epsilon of one full-batch release by hand, at the best order of the default grid */
  fedrec_orders o;
  fedrec_orders_default(&o);
  assert_int_equal(o.n, 156);
  double best = INFINITY;
  for (size_t k = 0; k < o.n; k++) {
    double a = o.a[k], r = 10 * a / (2 * 4.0);
    double e = r + log((a - 1) / a) - (log(1e-6) + log(a)) / (a - 1);
    best = fmin(best, e);
  }
  assert_near(fedrec_epsilon_gaussian(1, 2, 10, 1e-6, &o, NULL), best, 1e-12);
}

/* The fractional series is continuous with the integer one, and RDP grows with the order,
 * including for parameters where log erfc needs its asymptotic expansion. */
static void test_series_consistency(void **state) {
  (void)state;
  double qs[] = {1e-6, 1e-4, 0.01, 0.2, 0.6};
  double zs[] = {0.7, 1.1, 4, 12};
  for (int a = 0; a < 5; a++)
    for (int b = 0; b < 4; b++) {
      double q = qs[a], z = zs[b];
      for (int m = 2; m <= 40; m += 7) {
        double ri = fedrec_rdp_subsampled_gaussian(q, z, m);
        double rf = fedrec_rdp_subsampled_gaussian(q, z, m + 1e-7);
        if (!(fabs(ri - rf) <= 1e-5 * fabs(ri) + 1e-12))
          fail_msg("q=%g z=%g a=%d: integer %.12g, fractional %.12g", q, z, m, ri, rf);
      }
      double prev = 0;
      for (double al = 1.1; al < 60; al += 0.7) {
        double r = fedrec_rdp_subsampled_gaussian(q, z, al);
        assert_true(isfinite(r) && r >= 0);
        assert_true(r >= prev * (1 - 1e-9));
        prev = r;
      }
    }
}

/* Small q: the series' leading term gives RDP ~ C(a,2) q^2 (e^{1/z^2} - 1) / (a - 1)
 * = (a/2) q^2 (e^{1/z^2} - 1), for integer and fractional orders alike. */
static void test_small_q(void **state) {
  (void)state;
  double q = 1e-4, z = 2.0;
  for (double a = 2; a <= 8; a += 1.5) {
    double r = fedrec_rdp_subsampled_gaussian(q, z, a);
    assert_near(r / (a / 2 * q * q * expm1(1 / (z * z))), 1.0, 0.01);
  }
}

/* Tiny sampling rates with large noise, where the excess of A over 1 is 1e-12 or less: the
 * sums of terms near 1 lost it to rounding (61d538e: up to 4.5e-4 relative under at 1e10+
 * steps). Against 60-digit values from tests/tools/rdp_reference.py. */
static void test_extreme_corners(void **state) {
  (void)state;
  static const struct { double q, z; int a; double rdp; } g[] = {
      {1e-6, 100, 2, 1.00005000166670825e-16},  {1e-6, 100, 8, 4.00020000906715038e-16},
      {1e-6, 100, 32, 1.60008000746736833e-15}, {1e-5, 300, 2, 1.11111728397347926e-15},
      {1e-5, 300, 8, 4.44446913885689437e-15},  {1e-5, 300, 32, 1.77778766028352149e-14}};
  for (size_t k = 0; k < sizeof g / sizeof g[0]; k++) {
    double r = fedrec_rdp_subsampled_gaussian(g[k].q, g[k].z, g[k].a);
    if (!(fabs(r / g[k].rdp - 1) < 1e-9))
      fail_msg("gaussian q=%g z=%g a=%d: %.17g, reference %.17g", g[k].q, g[k].z, g[k].a, r, g[k].rdp);
    /* a fractional order between two integers stays between them, and so above the lower */
    if (g[k].a == 8) {
      double f = fedrec_rdp_subsampled_gaussian(g[k].q, g[k].z, 8.5), up = fedrec_rdp_subsampled_gaussian(g[k].q, g[k].z, 9);
      assert_true(f >= r && f <= up);
    }
  }
  static const struct { int a; double rdp; } sk[] = {
      {2, 1.00000052250018929e-16}, {8, 1.63994482174958555e-14}, {32, 3.21531368491761954e-13}};
  for (size_t k = 0; k < sizeof sk / sizeof sk[0]; k++) {
    double r = fedrec_rdp_skellam_subsampled(1e-5, sk[k].a, 10, 100, 1e8);
    if (!(fabs(r / sk[k].rdp - 1) < 1e-9)) fail_msg("skellam a=%d: %.17g, reference %.17g", sk[k].a, r, sk[k].rdp);
  }
}

/* Tens of thousands of steps: epsilon grows with T and composition is linear in RDP. */
static void test_many_steps(void **state) {
  (void)state;
  fedrec_orders o;
  fedrec_orders_default(&o);
  double e1 = fedrec_epsilon_gaussian(0.001, 1.0, 10000, 1e-6, &o, NULL);
  double e2 = fedrec_epsilon_gaussian(0.001, 1.0, 50000, 1e-6, &o, NULL);
  assert_true(e2 > e1 && e1 > 0);
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o.n; k++) r[k] = 50000 * fedrec_rdp_subsampled_gaussian(0.001, 1.0, o.a[k]);
  assert_near(fedrec_rdp_to_epsilon(r, &o, 1e-6, NULL), e2, 1e-12);
}

/* Any RDP-derived delta is at least the exact Gaussian curve (Balle & Wang 2018). */
static void test_delta_above_exact(void **state) {
  (void)state;
  fedrec_orders o;
  fedrec_orders_default(&o);
  double zs[] = {0.5, 1, 2, 5};
  for (int b = 0; b < 4; b++)
    for (double eps = 0.1; eps < 8; eps *= 1.7) {
      double r[FEDREC_MAX_ORDERS];
      for (size_t k = 0; k < o.n; k++) r[k] = fedrec_rdp_subsampled_gaussian(1, zs[b], o.a[k]);
      double d_rdp = fedrec_rdp_to_delta(r, &o, eps), d_exact = fedrec_gaussian_exact_delta(zs[b], eps);
      if (!(d_rdp >= d_exact * (1 - 1e-9)))
        fail_msg("z=%g eps=%g: RDP delta %.6g below exact %.6g", zs[b], eps, d_rdp, d_exact);
    }
}

static void test_calibrate(void **state) {
  (void)state;
  fedrec_orders o;
  fedrec_orders_default(&o);
  fedrec_error err;
  double z;
  assert_status(fedrec_calibrate_gaussian(&z, 2.0, 1e-5, 0.01, 5000, &o, &err), FEDREC_OK);
  double e = fedrec_epsilon_gaussian(0.01, z, 5000, 1e-5, &o, NULL);
  assert_true(e <= 2.0 && e > 2.0 * (1 - 1e-4));
  assert_status(fedrec_calibrate_gaussian(&z, 0, 1e-5, 0.01, 5000, &o, &err), FEDREC_ERR_ARG);
  /* an answer below the usual bracket's 1e-3 is found, not clamped to it */
  assert_status(fedrec_calibrate_gaussian(&z, 1e7, 1e-5, 1e-6, 1, &o, &err), FEDREC_OK);
  e = fedrec_epsilon_gaussian(1e-6, z, 1, 1e-5, &o, NULL);
  print_message("target 1e7 at q = 1e-6, one step: z = %.6g, epsilon %.6g\n", z, e);
  assert_true(z < 1e-3 && e <= 1e7 && e > 1e7 * (1 - 1e-4));
  fedrec_orders bad;
  assert_status(fedrec_orders_parse(&bad, "2,0.5", &err), FEDREC_ERR_ARG);
  assert_status(fedrec_orders_parse(&bad, "2,x", &err), FEDREC_ERR_ARG);
  assert_status(fedrec_orders_parse(&bad, "", &err), FEDREC_ERR_ARG);
}

static double gauss_curve(const void *ctx, double l) {
  double z = *(const double *)ctx;
  return l / (2 * z * z);
}

/* The generic subsampling bound is an upper bound: applied to the Gaussian curve it is never
 * below the exact subsampled-Gaussian RDP, and it is close for small q. */
static void test_generic_subsampling(void **state) {
  (void)state;
  double z = 1.5;
  for (double q = 0.001; q < 0.5; q *= 3)
    for (int a = 2; a <= 40; a += 3) {
      double exact = fedrec_rdp_subsampled_gaussian(q, z, a);
      double generic = fedrec_rdp_poisson_subsampled(q, a, gauss_curve, &z);
      if (!(generic >= exact * (1 - 1e-9))) fail_msg("q=%g a=%d: generic %.9g < exact %.9g", q, a, generic, exact);
    }
  assert_true(isnan(fedrec_rdp_poisson_subsampled(0.1, 2.5, gauss_curve, &z)));
  assert_near(fedrec_rdp_poisson_subsampled(1.0, 4, gauss_curve, &z), 4 / (2 * z * z), 1e-12);
}

/* Skellam: at least the Gaussian RDP of the same variance, and converging to it as the
 * variance grows relative to the sensitivity. */
static void test_skellam(void **state) {
  (void)state;
  double d2 = 100, d1 = 100 * 30;
  for (double var = 1e4; var < 1e9; var *= 10)
    for (double a = 1.5; a < 64; a *= 1.9) {
      double g = a * d2 * d2 / (2 * var), s = fedrec_rdp_skellam(a, d2, d1, var);
      assert_true(s >= g);
      if (var >= 1e8) assert_near(s / g, 1.0, 0.01);
    }
  fedrec_orders o;
  fedrec_orders_default(&o);
  double a1, a2;
  double e1 = fedrec_epsilon_skellam(1, d2, d1, 1e7, 100, 1e-6, &o, &a1);
  double e2 = fedrec_epsilon_skellam(0.01, d2, d1, 1e7, 100, 1e-6, &o, &a2);
  assert_true(e2 < e1 && e2 > 0);
  assert_true(a2 == floor(a2)); /* subsampled: integer orders only */
}

/* Distributed discrete Gaussian: tau as quoted in the references (n = 100: 5.5e-4 at sigma 1,
 * 9.7 at sigma 0.5); Proposition 14 evaluated term by term; the Gaussian limit when tau
 * vanishes; subsampling never worse than no subsampling. */
static void test_ddgauss(void **state) {
  (void)state;
  assert_near(fedrec_ddgauss_tau(100, 1.0), 5.5e-4, 0.05e-4);
  assert_near(fedrec_ddgauss_tau(100, 0.5), 9.7, 0.05);
  assert_near(fedrec_ddgauss_tau(1, 0.5), 0, 0);
  /* by hand: n = 2 -> tau = 10 exp(-pi^2 sigma^2) */
  assert_near(fedrec_ddgauss_tau(2, 0.7), 10 * exp(-M_PI * M_PI * 0.49), 1e-15);
  double d2 = 50, d1 = 50 * 20, sigma = 0.6;
  uint32_t n = 30;
  uint64_t dim = 1000;
  double tau = fedrec_ddgauss_tau(n, sigma), l2 = d2 / (sqrt(30.0) * sigma), l1 = d1 / (sqrt(30.0) * sigma);
  for (int a = 2; a <= 64; a += 7) {
    double t1 = a / 2.0 * l2 * l2 + tau * 1000, t2 = a / 2.0 * (l2 * l2 + 2 * l1 * tau + tau * tau * 1000),
           t3 = a / 2.0 * pow(l2 + sqrt(1000.0) * tau, 2);
    assert_near(fedrec_rdp_ddgauss(a, d2, d1, sigma, n, dim), fmin(t1, fmin(t2, t3)), 1e-12 * t1);
  }
  /* sigma 30: tau underflows to 0 and the sum is a Gaussian of std sqrt(n) sigma */
  assert_near(fedrec_ddgauss_tau(1000, 30), 0, 0);
  fedrec_orders o;
  fedrec_orders_default(&o);
  double ad, ag;
  double ed = fedrec_epsilon_ddgauss(1, 100, 3000, 30, 1000, 100000, 500, 1e-6, &o, &ad);
  fedrec_orders oi;
  fedrec_error err;
  assert_status(fedrec_orders_parse(&oi, "2:63,128,256,512,1024", &err), FEDREC_OK);
  double eg = fedrec_epsilon_gaussian(1, sqrt(1000.0) * 30 / 100, 500, 1e-6, &oi, &ag);
  assert_near(ed, eg, 1e-9 * eg);
  assert_true(ad == floor(ad));
  double es = fedrec_epsilon_ddgauss(0.01, 100, 3000, 30, 1000, 100000, 500, 1e-6, &o, NULL);
  assert_true(es < ed && es > 0);
  assert_true(isnan(fedrec_rdp_ddgauss_subsampled(1, 2.5, d2, d1, sigma, n, dim)));
}

/* Tree aggregation: the worst-case squared sensitivities of dp_accounting's tests (toy cases,
 * every leaf, two contributions), restart = Gaussian composition when every epoch is one step,
 * restart epochs compose additively, and the StackOverflow setting's published bounds. */
static void test_tree(void **state) {
  (void)state;
  fedrec_error err;
  double s;
  const struct { uint32_t part, sep; uint64_t steps; double want; } toy[] = {
      {1, 7, 8, 4}, {3, 3, 9, 11}, {3, 2, 7, 9}, {8, 2, 24, 88}, {11, 0, 8, 120}, {200, 0, 8, 120}};
  for (size_t i = 0; i < sizeof toy / sizeof *toy; i++) {
    assert_status(fedrec_tree_single_sensitivity2(&s, toy[i].steps, toy[i].part, toy[i].sep, &err), FEDREC_OK);
    if (s != toy[i].want) fail_msg("tree(%u, %u, %llu) = %g, want %g", toy[i].part, toy[i].sep, (unsigned long long)toy[i].steps, s, toy[i].want);
  }
  const uint64_t every[] = {3, 8, 11, 19};
  for (int i = 0; i < 4; i++) {
    double want = 0, want2;
    int top = 0;
    for (int d = 0; d < 63; d++)
      if (every[i] >> d & 1) {
        want += ldexp(1, d) * (ldexp(1, d + 1) - 1);
        top = d;
      }
    want2 = 2 + 4 * top;
    assert_status(fedrec_tree_single_sensitivity2(&s, every[i], (uint32_t)every[i], 0, &err), FEDREC_OK);
    assert_near(s, want, 0);
    assert_status(fedrec_tree_single_sensitivity2(&s, every[i], 2, 0, &err), FEDREC_OK);
    assert_near(s, want2, 0);
  }
  assert_status(fedrec_tree_single_sensitivity2(&s, 0, 1, 0, &err), FEDREC_ERR_ARG);
  assert_status(fedrec_tree_single_sensitivity2(&s, 1000000, 5000, 5000, &err), FEDREC_ERR_LIMIT);

  fedrec_orders o;
  o.n = 0;
  for (int x = 1; x <= 99; x++) o.a[o.n++] = 1 + x / 10.0;
  for (int x = 12; x <= 63; x++) o.a[o.n++] = x;
  uint64_t ones[100];
  for (int i = 0; i < 100; i++) ones[i] = 1;
  double e1 = fedrec_epsilon_tree(5, fedrec_tree_restart_sensitivity2(ones, 100), 1e-5, &o, NULL);
  assert_near(e1, fedrec_epsilon_gaussian(1, 5, 100, 1e-5, &o, NULL), 1e-12 * e1);
  const uint64_t adaptive[] = {10, 400, 400, 400, 390};
  double sum = 0;
  for (int i = 0; i < 5; i++) sum += fedrec_tree_restart_sensitivity2(&adaptive[i], 1);
  assert_near(fedrec_tree_restart_sensitivity2(adaptive, 5), sum, 0);
  assert_near(sum, 4 + 9 + 9 + 9 + 9, 0);
  uint64_t so = 1600;
  double sens = fedrec_tree_restart_sensitivity2(&so, 1);
  assert_near(sens, 11, 0);
  assert_true(fedrec_epsilon_tree(1.13, sens, 1e-6, &o, NULL) < 19.74);
  assert_true(fedrec_epsilon_tree(8.83, sens, 1e-6, &o, NULL) < 2.04);
  /* more noise, less epsilon; no noise, no privacy */
  assert_true(fedrec_epsilon_tree(2, sens, 1e-6, &o, NULL) < fedrec_epsilon_tree(1.9, sens, 1e-6, &o, NULL));
  assert_true(isinf(fedrec_epsilon_tree(0, sens, 1e-6, &o, NULL)));
}

/* The mechanism list: names both ways, and fedrec_release_epsilon (what the engine, the
 * ledger and fedrec-audit call) equal to each mechanism's own accountant function. */
static void test_mechanism_table(void **state) {
  (void)state;
  for (int m = 0; m < FEDREC_MECHANISMS; m++) {
    fedrec_mechanism back;
    assert_int_equal(fedrec_mechanism_parse(fedrec_mechanism_name(m), &back), FEDREC_OK);
    assert_int_equal(back, m);
    assert_non_null(strstr(fedrec_mechanism_names(), fedrec_mechanism_name(m)));
  }
  fedrec_mechanism x;
  assert_int_equal(fedrec_mechanism_parse("laplace", &x), FEDREC_ERR_ARG);
  assert_string_equal(fedrec_mechanism_name(FEDREC_MECHANISMS), "unknown");
  fedrec_orders o;
  fedrec_orders_default(&o);
  fedrec_release g = {.mechanism = FEDREC_MECH_GAUSSIAN, .q = 0.01, .z = 1.1, .survivors = 100};
  assert_true(fedrec_release_epsilon(&g, 1000, 1e-5, &o, NULL) == fedrec_epsilon_gaussian(0.01, 1.1, 1000, 1e-5, &o, NULL));
  fedrec_release sk = {.mechanism = FEDREC_MECH_SKELLAM, .q = 0.05, .d2 = 100, .d1 = 3000, .var = 1e6, .survivors = 100};
  assert_true(fedrec_release_epsilon(&sk, 50, 1e-6, &o, NULL) == fedrec_epsilon_skellam(0.05, 100, 3000, 1e6, 50, 1e-6, &o, NULL));
  fedrec_release dg = {.mechanism = FEDREC_MECH_DGAUSS, .q = 1, .d2 = 100, .d1 = 3000, .sigma = 40, .survivors = 50,
                       .colluders = 5, .dim = 4096};
  assert_true(fedrec_release_epsilon(&dg, 20, 1e-6, &o, NULL) ==
              fedrec_epsilon_ddgauss(1, 100, 3000, 40, 45, 4096, 20, 1e-6, &o, NULL));
  fedrec_release t = {.mechanism = FEDREC_MECH_TREE, .q = 1, .z = 3};
  assert_true(fedrec_release_epsilon(&t, 11, 1e-6, &o, NULL) == fedrec_epsilon_tree(3, 11, 1e-6, &o, NULL));
  /* the checks name what is wrong */
  fedrec_error err;
  t.q = 0.5;
  assert_int_equal(fedrec_release_check(&t, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "assumes no sampling"));
  sk.var = 0;
  assert_int_equal(fedrec_release_check(&sk, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "var > 0"));
  dg.colluders = 50;
  assert_int_equal(fedrec_release_check(&dg, &err), FEDREC_ERR_ARG);
  assert_int_equal(fedrec_release_check(&g, &err), FEDREC_OK);
}

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

/* The top-k composer against sorting: after every release, at every order, the sum of the k
 * largest values so far (and the plain sum for k = 0); peek predicts add. */
static void test_topk(void **state) {
  (void)state;
  enum { R = 200, O = 7 };
  static double v[O][R];
  uint64_t rng = 7;
  for (uint32_t k = 0; k <= 40; k += 13) {
    fedrec_rdp_topk t;
    fedrec_rdp_topk_init(&t, k, O);
    for (int r = 0; r < R; r++) {
      double one[O], peek[O];
      for (int o = 0; o < O; o++) one[o] = v[o][r] = (double)(fedrec_splitmix64(&rng) % 1000) / 7 + (r % 11 == 0 && o == 3 ? INFINITY : 0);
      fedrec_rdp_topk_peek(&t, one, peek);
      assert_int_equal(fedrec_rdp_topk_add(&t, one), FEDREC_OK);
      for (int o = 0; o < O; o++) {
        double sorted[R], want = 0;
        memcpy(sorted, v[o], (size_t)(r + 1) * sizeof *sorted);
        qsort(sorted, (size_t)r + 1, sizeof *sorted, cmp_desc);
        for (int i = 0; i < r + 1 && (k == 0 || i < (int)k); i++) want += sorted[i];
        if (isinf(want)) assert_true(isinf(t.sum[o]) && isinf(peek[o]));
        else {
          assert_near(t.sum[o], want, 1e-9 * want);
          assert_near(peek[o], t.sum[o], 1e-9 * want);
        }
      }
    }
    assert_true(t.n <= (k ? k : 0));
    fedrec_rdp_topk_free(&t);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_published_opacus), cmocka_unit_test(test_published_tfprivacy),
      cmocka_unit_test(test_full_batch),       cmocka_unit_test(test_series_consistency),
      cmocka_unit_test(test_small_q), cmocka_unit_test(test_extreme_corners),          cmocka_unit_test(test_many_steps),
      cmocka_unit_test(test_delta_above_exact), cmocka_unit_test(test_calibrate),
      cmocka_unit_test(test_generic_subsampling), cmocka_unit_test(test_skellam),
      cmocka_unit_test(test_ddgauss),          cmocka_unit_test(test_tree), cmocka_unit_test(test_mechanism_table),
      cmocka_unit_test(test_topk),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
