/* Metrics against hand-computed cases, top-k, splits. */
#include <math.h>

#include "test_util.h"

static void test_topk(void **state) {
  (void)state;
  float s[] = {0.5f, 0.9f, 0.1f, 0.9f, 0.7f, -1.0f};
  int32_t top[6];
  assert_int_equal(fedrec_topk(top, s, 6, 3, NULL), 3);
  assert_int_equal(top[0], 1); /* tie 0.9: lower index first */
  assert_int_equal(top[1], 3);
  assert_int_equal(top[2], 4);
  uint8_t allowed[] = {1, 0, 1, 1, 0, 1};
  assert_int_equal(fedrec_topk(top, s, 6, 2, allowed), 2);
  assert_int_equal(top[0], 3);
  assert_int_equal(top[1], 0);
  assert_int_equal(fedrec_topk(top, s, 6, 10, allowed), 4); /* fewer candidates than k */
  assert_int_equal(top[3], 5);
  /* against a full sort on random scores */
  fedrec_rng r;
  fedrec_rng_seed(&r, 1, 2);
  float big[1000];
  for (int i = 0; i < 1000; i++) big[i] = (float)fedrec_rng_below(&r, 50);
  int32_t t20[20];
  fedrec_topk(t20, big, 1000, 20, NULL);
  for (int k = 1; k < 20; k++)
    assert_true(big[t20[k - 1]] > big[t20[k]] || (big[t20[k - 1]] == big[t20[k]] && t20[k - 1] < t20[k]));
  int better = 0;
  for (int i = 0; i < 1000; i++) better += big[i] > big[t20[19]];
  assert_true(better <= 19);
}

static void test_rank_metrics(void **state) {
  (void)state;
  int32_t top[] = {5, 3, 9, 1};
  int32_t held[] = {1, 3, 7};
  double rec, ndcg;
  fedrec_rank_metrics(&rec, &ndcg, top, 4, 4, held, 3);
  /* hits at ranks 2 and 4 (1-based); min(k, |held|) = 3 */
  assert_near(rec, 2.0 / 3.0, 1e-12);
  double dcg = 1 / log2(3.0) + 1 / log2(5.0), idcg = 1 + 1 / log2(3.0) + 1 / log2(4.0);
  assert_near(ndcg, dcg / idcg, 1e-12);
  /* k smaller than the held-out set: recall normalised by k */
  fedrec_rank_metrics(&rec, &ndcg, top, 4, 2, held, 3);
  assert_near(rec, 0.5, 1e-12);
  int32_t perfect[] = {1, 3, 7};
  fedrec_rank_metrics(&rec, &ndcg, perfect, 3, 20, held, 3);
  assert_near(rec, 1.0, 1e-12);
  assert_near(ndcg, 1.0, 1e-12);
}

static void test_diversity(void **state) {
  (void)state;
  float c[] = {1, 0, 0, 1, 1, 0, 1, 1};
  int32_t orth[] = {0, 1}, same[] = {0, 2}, three[] = {0, 1, 3};
  assert_near(fedrec_list_diversity(orth, 2, c, 2), 1.0, 1e-9);
  assert_near(fedrec_list_diversity(same, 2, c, 2), 0.0, 1e-9);
  /* pairs: (0,1) cos 0; (0,3) and (1,3) cos 1/sqrt2 -> 1 - (2/sqrt2)/3 */
  assert_near(fedrec_list_diversity(three, 3, c, 2), 1.0 - (2 / sqrt(2.0)) / 3, 1e-6);
}

/* A scorer that ranks items by descending index parity trick: score = -index. */
static fedrec_status by_index(const void *ctx, float *scores, const int32_t *items, const float *w,
                              int32_t n, float *work) {
  (void)ctx, (void)items, (void)w, (void)n, (void)work;
  for (int i = 0; i < 10; i++) scores[i] = (float)-i;
  return FEDREC_OK;
}
static size_t one(const void *ctx, int32_t n) {
  (void)ctx, (void)n;
  return 1;
}

static void test_evaluate(void **state) {
  (void)state;
  /* 2 test users over 10 items. user 0 folds in {0}, holds {1, 5}; user 1 folds in
   * {1, 2}, holds {9}. With k = 2 the lists are {1, 2} and {0, 3}. */
  fedrec_triplets f = {0}, h = {0};
  fedrec_error err;
  fedrec_triplets_push(&f, 0, 0, 1, &err);
  fedrec_triplets_push(&f, 1, 1, 1, &err);
  fedrec_triplets_push(&f, 1, 2, 1, &err);
  fedrec_triplets_push(&h, 0, 1, 1, &err);
  fedrec_triplets_push(&h, 0, 5, 1, &err);
  fedrec_triplets_push(&h, 1, 9, 1, &err);
  fedrec_csr fo, ho;
  fedrec_csr_from_triplets(&fo, 2, 10, &f, &err);
  fedrec_csr_from_triplets(&ho, 2, 10, &h, &err);
  fedrec_scorer sc = {by_index, one, NULL};
  double users[10] = {4, 3, 0, 0, 0, 0, 0, 0, 0, 0};
  fedrec_eval_config c = {.k = 2, .threads = 2, .item_users = users, .train_users = 7};
  fedrec_metrics m;
  assert_status(fedrec_evaluate(&m, &sc, &fo, &ho, &c, &err), FEDREC_OK);
  assert_int_equal(m.users, 2);
  assert_near(m.recall, (0.5 + 0.0) / 2, 1e-12);
  assert_near(m.ndcg, (1.0 / (1 + 1 / log2(3.0)) + 0) / 2, 1e-12);
  assert_near(m.coverage, 4.0 / 10, 1e-12);
  double nov0 = (-log2(4.0 / 8) - log2(1.0 / 8)) / 2, nov1 = (-log2(5.0 / 8) - log2(1.0 / 8)) / 2;
  assert_near(m.novelty, (nov0 + nov1) / 2, 1e-9);
  assert_true(isnan(m.diversity));
  /* candidates restrict ranking and the coverage denominator */
  uint8_t cand[10] = {0, 0, 0, 0, 0, 1, 1, 1, 1, 1};
  c.candidates = cand;
  assert_status(fedrec_evaluate(&m, &sc, &fo, &ho, &c, &err), FEDREC_OK);
  assert_near(m.recall, (0.5 + 0.0) / 2, 1e-12); /* user 0: {5, 6} hits 5 */
  assert_int_equal(m.items, 5);
  fedrec_csr_free(&fo), fedrec_csr_free(&ho);
  fedrec_triplets_free(&f), fedrec_triplets_free(&h);
}

static void test_split(void **state) {
  (void)state;
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  sc.users = 2000, sc.items = 300, sc.content_dim = 8, sc.median_len = 10;
  fedrec_dataset ds;
  fedrec_error err = {0};
  assert_status(fedrec_synth_generate(&ds, &sc, &err), FEDREC_OK);
  fedrec_split_config c;
  fedrec_split_defaults(&c);
  c.cold_items = 0.1;
  fedrec_split a, b;
  assert_status(fedrec_split_users(&a, &ds, &c, &err), FEDREC_OK);
  assert_status(fedrec_split_users(&b, &ds, &c, &err), FEDREC_OK);
  assert_int_equal(a.foldin.rows, 400);
  assert_int_equal(a.train.rows, 1600);
  assert_int_equal(a.n_cold, 30);
  assert_memory_equal(a.foldin.indices, b.foldin.indices, (size_t)fedrec_csr_nnz(&a.foldin) * 4);
  assert_memory_equal(a.holdout.indices, b.holdout.indices, (size_t)fedrec_csr_nnz(&a.holdout) * 4);
  for (int64_t k = 0; k < fedrec_csr_nnz(&a.train); k++) assert_false(a.is_cold[a.train.indices[k]]);
  int64_t fo = fedrec_csr_nnz(&a.foldin), ho = fedrec_csr_nnz(&a.holdout), co = fedrec_csr_nnz(&a.cold_holdout);
  assert_true(co > 0);
  assert_near((double)ho / (double)(fo + ho), 0.2, 0.03);
  for (int32_t u = 0; u < a.foldin.rows; u++) {
    assert_true(a.foldin.indptr[u + 1] > a.foldin.indptr[u]);
    for (int64_t k = a.holdout.indptr[u]; k < a.holdout.indptr[u + 1]; k++) {
      assert_false(a.is_cold[a.holdout.indices[k]]);
      for (int64_t j = a.foldin.indptr[u]; j < a.foldin.indptr[u + 1]; j++)
        assert_int_not_equal(a.holdout.indices[k], a.foldin.indices[j]);
    }
    for (int64_t k = a.cold_holdout.indptr[u]; k < a.cold_holdout.indptr[u + 1]; k++)
      assert_true(a.is_cold[a.cold_holdout.indices[k]]);
  }
  c.seed = 7;
  fedrec_split_free(&b);
  assert_status(fedrec_split_users(&b, &ds, &c, &err), FEDREC_OK);
  assert_true(fedrec_csr_nnz(&b.foldin) != fo || memcmp(a.foldin.indices, b.foldin.indices, (size_t)fo * 4));
  fedrec_split_free(&a), fedrec_split_free(&b);
  c.test_users = 1.5;
  assert_status(fedrec_split_users(&a, &ds, &c, &err), FEDREC_ERR_ARG);
  fedrec_dataset_free(&ds);
}

static void test_split_files(void **state) {
  (void)state;
  char tr[256], fo[256], ho[256];
  const char *t = "user,item\na,x\na,y\nb,y\nb,z\n", *f = "user,item\nq,x\n", *h = "user,item\nq,z\nq,w\n";
  write_temp(tr, sizeof tr, ".csv", t, strlen(t));
  write_temp(fo, sizeof fo, ".csv", f, strlen(f));
  write_temp(ho, sizeof ho, ".csv", h, strlen(h));
  fedrec_split s;
  fedrec_dataset ds;
  fedrec_error err = {0};
  assert_status(fedrec_split_files(&s, &ds, tr, fo, ho, &err), FEDREC_OK);
  assert_int_equal(s.train.rows, 2);
  assert_int_equal(s.train.cols, 4); /* x y z w */
  assert_int_equal(s.foldin.rows, 1);
  assert_int_equal(fedrec_csr_nnz(&s.holdout), 2);
  fedrec_split_free(&s);
  fedrec_dataset_free(&ds);
  write_temp(ho, sizeof ho, ".csv", "user,item\nq\n", 12);
  assert_status(fedrec_split_files(&s, &ds, tr, fo, ho, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, ":2: expected 2"));
  unlink(tr), unlink(fo), unlink(ho);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_topk),     cmocka_unit_test(test_rank_metrics),
      cmocka_unit_test(test_diversity), cmocka_unit_test(test_evaluate),
      cmocka_unit_test(test_split),    cmocka_unit_test(test_split_files),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
