/* DP-FTRL's tree in the engine (coordinator/engine_tree.c), on its own: the steps it hands to
 * the optimizer add up to the exact prefix sum of the rounded leaves plus the noise of the
 * nodes that cover it (one per set bit of the leaf number, each drawn once and reused), the
 * noise's spread is what the nodes promise, and the recorded multiplier accounts for the grid. */
#include <math.h>
#include <string.h>

#include "engine_internal.h"
#include "fedrec/rng.h"
#include "test_util.h"

static void rng_bytes(void *ctx, void *buf, uint64_t n) {
  uint64_t *s = ctx;
  uint8_t *b = buf;
  for (uint64_t i = 0; i < n; i++) b[i] = (uint8_t)(fedrec_splitmix64(s) >> 56);
}

static void test_prefix_sums(void **state) {
  (void)state;
  enum { DIM = 20000, LEAVES = 7 };
  static fedrec_engine e; /* only what the tree uses */
  static float u[LEAVES + 1][DIM];
  static double total[DIM], sent[DIM];
  uint64_t seed = 11;
  e.c.tree_noise_multiplier = 2, e.c.clip = 1, e.c.min_survivors = 40, e.c.tree_rounds = 8;
  e.dim = DIM;
  e.round = 5;
  e.ent = (fedrec_entropy){rng_bytes, &seed, 0};
  e.avg = malloc(DIM * sizeof *e.avg);
  fedrec__engine_tree_restart(&e, e.round);
  double sigma = 2.0 / 40, g = sigma / 65000;
  fedrec_error err = {0};
  int32_t first_node1[8];
  for (uint64_t t = 1; t <= LEAVES; t++) {
    assert_int_equal(fedrec__engine_tree_leaf(&e, 0.5), t);
    for (int i = 0; i < DIM; i++) u[t][i] = e.avg[i] = (float)(0.01 * sin(0.001 * i * (double)t));
    assert_status(fedrec__engine_tree_step(&e, t, 0.5, &err), FEDREC_OK);
    if (t == 2) memcpy(first_node1, e.tree.node[1], sizeof first_node1);
    if (t == 3) assert_memory_equal(first_node1, e.tree.node[1], sizeof first_node1); /* node (1, 0) reused */
    double var = 0;
    for (int i = 0; i < DIM; i++) {
      sent[i] += e.avg[i];
      total[i] += (double)llround((double)u[t][i] / g) * g;
      int64_t noise = 0;
      for (int j = 0; j < FEDREC_TREE_LEVELS; j++)
        if (t >> j & 1) noise += e.tree.node[j][i];
      /* the steps add up to the noisy prefix sum (float steps: to float precision) */
      assert_true(fabs(sent[i] - (total[i] + (double)noise * g)) <= 1e-6 * (1 + fabs(total[i])));
      double d = sent[i] - total[i];
      var += d * d;
    }
    /* popcount(t) nodes of std sigma each */
    double want = __builtin_popcountll(t) * sigma * sigma, got = var / DIM;
    print_message("leaf %llu: noise variance %.4g, %d nodes x sigma^2 = %.4g\n", (unsigned long long)t, got,
                  __builtin_popcountll(t), want);
    assert_true(fabs(got / want - 1) < 0.05);
  }
  /* a full tree or another multiplier starts a new tree */
  assert_int_equal(fedrec__engine_tree_leaf(&e, 0.5), 8);
  assert_int_equal(fedrec__engine_tree_leaf(&e, 0.25), 1);
  assert_int_equal(e.tree.start, e.round);
  fedrec__engine_tree_free(&e);
  free(e.avg);
}

/* The recorded multiplier: the nodes' std over the rounded leaf's sensitivity in grid units. */
static void test_recorded_multiplier(void **state) {
  (void)state;
  fedrec_engine_config c;
  fedrec_engine_defaults(&c);
  c.cohort = c.min_cohort = 100, c.min_survivors = 60, c.clip = 1, c.noise_multiplier = 0.5, c.tree_noise_multiplier = 3;
  fedrec_ddp_params p;
  fedrec_error err = {0};
  assert_status(fedrec_engine_round_ddp(&c, 30000, 100, &p, &err), FEDREC_OK);
  double z = fedrec__engine_tree_z(&c, &p), sens = p.gamma * fedrec_ddp_rounding_bound(&p) / 60, g = 3.0 / 60 / 65000;
  assert_near(z, 65000 / (sens / g + sqrt((double)p.dim)), 1e-12 * z);
  print_message("tree multiplier 3 over clip: recorded %.4f (rounding to the SecAgg grid and to the tree's grid)\n", z);
  assert_true(z < 3 && z > 2.8);
}

/* A round aborted after its tree entry was written (e.g. a sum an unclipped input explains)
 * uses up its leaf: the next round takes the next leaf (the ledger accepts no other), the
 * skipped leaf adds zero, and a tree whose first leaf was skipped still starts from zero. */
static void test_consumed_leaf(void **state) {
  (void)state;
  enum { DIM = 4000 };
  static fedrec_engine e;
  static double total[DIM];
  uint64_t seed = 5;
  e.c.tree_noise_multiplier = 2, e.c.clip = 1, e.c.min_survivors = 40, e.c.tree_rounds = 8;
  e.dim = DIM;
  e.round = 9;
  e.ent = (fedrec_entropy){rng_bytes, &seed, 0};
  e.avg = malloc(DIM * sizeof *e.avg);
  fedrec__engine_tree_restart(&e, e.round);
  double g = 2.0 / 40 / 65000;
  fedrec_error err = {0};
  assert_int_equal(fedrec__engine_tree_leaf(&e, 0.5), 1);
  fedrec__engine_tree_consume(&e, 1, 0.5); /* round 9 aborted after its entry */
  e.round++;
  assert_int_equal(fedrec__engine_tree_leaf(&e, 0.5), 2);
  for (int i = 0; i < DIM; i++) e.avg[i] = (float)(0.02 * cos(0.01 * i)), total[i] = (double)llround(e.avg[i] / g) * g;
  assert_status(fedrec__engine_tree_step(&e, 2, 0.5, &err), FEDREC_OK);
  for (int i = 0; i < DIM; i++) /* leaf 2 alone, plus node (1, 0) covering [1, 2] */
    assert_true(fabs(e.avg[i] - (total[i] + e.tree.node[1][i] * g)) <= 1e-6);
  assert_int_equal(fedrec__engine_tree_leaf(&e, 0.5), 3);
  fedrec__engine_tree_free(&e);
  free(e.avg);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_prefix_sums), cmocka_unit_test(test_recorded_multiplier),
                                     cmocka_unit_test(test_consumed_leaf)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
