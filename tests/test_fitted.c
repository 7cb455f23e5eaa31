/* Populations fitted to a source (core/fitted.c): the spec, determinism across thread counts,
 * and the per-item offsets' match of the source's popularity curve. The source here is a small
 * built-in synthetic population, so the test needs no data set. */
#include <math.h>
#include <stdlib.h>

#include "fedrec/fitted.h"
#include "fedrec/synth.h"
#include "test_util.h"

static void source(fedrec_dataset *ds) {
  fedrec_synth_config sc;
  fedrec_error err;
  fedrec_synth_defaults(&sc);
  sc.users = 400, sc.items = 300, sc.content_dim = 8, sc.threads = 2;
  assert_status(fedrec_synth_generate(ds, &sc, &err), FEDREC_OK);
}

static fedrec_status generate(fedrec_dataset *out, fedrec_fitted_stats *st, const fedrec_dataset *src, const char *spec,
                              int threads) {
  fedrec_fitted_config c;
  fedrec_error err;
  fedrec_fitted_defaults(&c);
  c.dim = 8, c.epochs = 3, c.threads = threads;
  fedrec_status s = fedrec_fitted_parse(&c, spec, &err);
  return s ? s : fedrec_fitted_generate(out, st, src, &c, &err);
}

/* Total variation between the item shares of a and b (same catalogue). */
static double item_tv(const fedrec_csr *a, const fedrec_csr *b) {
  double *ca = calloc((size_t)a->cols, sizeof *ca), *cb = calloc((size_t)a->cols, sizeof *cb), na = 0, nb = 0, tv = 0;
  assert_non_null(ca);
  assert_non_null(cb);
  for (int64_t k = 0; k < a->indptr[a->rows]; k++) ca[a->indices[k]] += 1, na += 1;
  for (int64_t k = 0; k < b->indptr[b->rows]; k++) cb[b->indices[k]] += 1, nb += 1;
  for (int32_t i = 0; i < a->cols; i++) tv += 0.5 * fabs(ca[i] / na - cb[i] / nb);
  free(ca), free(cb);
  return tv;
}

static void test_spec(void **state) {
  (void)state;
  fedrec_fitted_config c;
  fedrec_error err;
  fedrec_fitted_defaults(&c);
  assert_int_equal(c.match_items, 0);
  assert_status(fedrec_fitted_parse(&c, "users=1000,offsets=1,jitter=0.2", &err), FEDREC_OK);
  assert_int_equal(c.users, 1000);
  assert_int_equal(c.match_items, 1);
  assert_status(fedrec_fitted_parse(&c, "offsets=2", &err), FEDREC_ERR_ARG);
  assert_status(fedrec_fitted_parse(&c, "offsets=0.5", &err), FEDREC_ERR_ARG);
  assert_status(fedrec_fitted_parse(&c, "users=1", &err), FEDREC_ERR_ARG);
  assert_status(fedrec_fitted_parse(&c, "colour=1", &err), FEDREC_ERR_ARG);
}

/* The same population whatever the number of threads; with offsets too. */
static void test_threads(void **state) {
  (void)state;
  fedrec_dataset src, a, b;
  fedrec_fitted_stats sa, sb;
  source(&src);
  assert_status(generate(&a, &sa, &src, "users=1500,offsets=1", 1), FEDREC_OK);
  assert_status(generate(&b, &sb, &src, "users=1500,offsets=1", 2), FEDREC_OK);
  assert_int_equal(a.R.rows, 1500);
  assert_int_equal(a.R.cols, src.R.cols);
  assert_memory_equal(a.R.indptr, b.R.indptr, (a.R.rows + 1) * sizeof *a.R.indptr);
  assert_memory_equal(a.R.indices, b.R.indices, a.R.indptr[a.R.rows] * sizeof *a.R.indices);
  assert_true(sa.tau == sb.tau);
  fedrec_dataset_free(&a), fedrec_dataset_free(&b), fedrec_dataset_free(&src);
}

/* The offsets bring each item's share to the source's: closer than tau alone, and close. */
static void test_offsets_match_items(void **state) {
  (void)state;
  fedrec_dataset src, plain, off;
  fedrec_fitted_stats sp, so;
  source(&src);
  assert_status(generate(&plain, &sp, &src, "users=6000", 2), FEDREC_OK);
  assert_status(generate(&off, &so, &src, "users=6000,offsets=1", 2), FEDREC_OK);
  double tv_plain = item_tv(&src.R, &plain.R), tv_off = item_tv(&src.R, &off.R);
  print_message("item shares' total variation to the source: tau alone %.4f, with offsets %.4f (fit %.4f)\n", tv_plain,
                tv_off, so.offset_tv);
  assert_true(tv_off < 0.5 * tv_plain);
  assert_true(tv_off < 0.05);
  /* the offsets change which items, never how many a user has */
  assert_memory_equal(plain.R.indptr, off.R.indptr, (plain.R.rows + 1) * sizeof *plain.R.indptr);
  fedrec_dataset_free(&plain), fedrec_dataset_free(&off), fedrec_dataset_free(&src);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_spec),
      cmocka_unit_test(test_threads),
      cmocka_unit_test(test_offsets_match_items),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
