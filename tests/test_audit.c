/* One-run privacy auditing: the p-value of Steinke, Nasr, Jagielski (2023) and the epsilon
 * lower bound it gives. */
#include <math.h>

#include "fedrec/audit.h"
#include "test_util.h"

/* Two canaries, both guessed right, under eps = ln 3 (q = 3/4): P[Bin(2, q) >= 2] = 9/16; the
 * delta term's max over i: i = 1 gives P[Bin = 1] = 3/8, i = 2 gives (3/8 + 1/16) / 2 < 3/8. */
static void test_p_value_by_hand(void **state) {
  (void)state;
  assert_near(fedrec_audit_p_value(2, 2, 2, log(3.0), 0), 9.0 / 16, 1e-12);
  assert_near(fedrec_audit_p_value(2, 2, 2, log(3.0), 0.01), 9.0 / 16 + 3.0 / 8 * 0.01 * 2 * 2, 1e-12);
  assert_near(fedrec_audit_p_value(10, 4, 0, 1.0, 0), 1.0, 0);         /* nothing right: no evidence */
  assert_near(fedrec_audit_p_value(10, 4, 4, 0.0, 0), 1.0 / 16, 1e-12); /* coin flips */
  assert_near(fedrec_audit_p_value(1000, 1000, 1000, 0.0, 0.5), 1.0, 0); /* capped at 1 */
  assert_true(isnan(fedrec_audit_p_value(3, 4, 2, 1.0, 0)));            /* r > m */
}

/* delta = 0 and all r guesses right: p = q^r, so the bound is logit(alpha^(1/r)). */
static void test_all_correct_closed_form(void **state) {
  (void)state;
  uint64_t rs[] = {5, 20, 100, 1000};
  for (int i = 0; i < 4; i++) {
    double q = pow(0.05, 1.0 / (double)rs[i]), want = log(q / (1 - q));
    assert_near(fedrec_audit_epsilon_lower(2 * rs[i], rs[i], rs[i], 0, 0.05), want, 1e-5);
  }
}

static void test_monotone_and_conservative(void **state) {
  (void)state;
  /* a chance-level result bounds nothing */
  assert_near(fedrec_audit_epsilon_lower(1000, 200, 100, 1e-6, 0.05), 0, 0);
  assert_near(fedrec_audit_epsilon_lower(1000, 200, 110, 1e-6, 0.05), 0, 0);
  /* more right answers: a larger bound; delta > 0 and more confidence: a smaller one */
  double prev = 0;
  for (uint64_t v = 120; v <= 200; v += 10) {
    double e = fedrec_audit_epsilon_lower(1000, 200, v, 1e-6, 0.05);
    assert_true(e >= prev);
    prev = e;
  }
  assert_true(prev > 3);
  assert_true(fedrec_audit_epsilon_lower(1000, 200, 190, 1e-3, 0.05) < fedrec_audit_epsilon_lower(1000, 200, 190, 0, 0.05));
  assert_true(fedrec_audit_epsilon_lower(1000, 200, 190, 1e-6, 0.01) < fedrec_audit_epsilon_lower(1000, 200, 190, 1e-6, 0.05));
  /* the p-value grows with eps */
  double p = 0;
  for (double eps = 0; eps < 6; eps += 0.5) {
    double x = fedrec_audit_p_value(1000, 200, 180, eps, 1e-6);
    assert_true(x >= p);
    p = x;
  }
}

/* Soundness check by simulation: randomized response with eps = 1 on each canary (the
 * mechanism that is exactly 1-DP per canary) never yields a 95% bound above 1 in 200 trials
 * more than ~5% of the time. */
static void test_randomized_response_is_not_overclaimed(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 9, 9);
  double q = exp(1.0) / (1 + exp(1.0));
  int over = 0;
  for (int t = 0; t < 200; t++) {
    uint64_t v = 0;
    for (int i = 0; i < 300; i++) v += fedrec_rng_uniform(&r) < q;
    over += fedrec_audit_epsilon_lower(300, 300, v, 0, 0.05) > 1.0;
  }
  assert_true(over <= 20);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_p_value_by_hand),
      cmocka_unit_test(test_all_correct_closed_form),
      cmocka_unit_test(test_monotone_and_conservative),
      cmocka_unit_test(test_randomized_response_is_not_overclaimed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
