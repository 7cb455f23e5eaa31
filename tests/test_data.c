/* Loaders, id maps and sparse matrices, including malformed input. */
#include <math.h>

#include "test_util.h"

static void test_idmap(void **state) {
  (void)state;
  fedrec_idmap *m = fedrec_idmap_new();
  char key[32];
  for (int i = 0; i < 5000; i++) {
    int n = snprintf(key, sizeof key, "id-%d", i * 7);
    assert_int_equal(fedrec_idmap_get(m, key, (size_t)n, 1), i);
  }
  assert_int_equal(fedrec_idmap_size(m), 5000);
  assert_int_equal(fedrec_idmap_get(m, "id-0", 4, 0), 0);
  assert_int_equal(fedrec_idmap_get(m, "id-70", 5, 1), 10);
  assert_int_equal(fedrec_idmap_get(m, "nope", 4, 0), -1);
  assert_string_equal(fedrec_idmap_name(m, 3), "id-21");
  assert_null(fedrec_idmap_name(m, 5000));
  fedrec_idmap_free(m);
  fedrec_idmap_free(NULL);
}

static void test_csr_dups_and_transpose(void **state) {
  (void)state;
  fedrec_triplets t = {0};
  fedrec_error err;
  int32_t r[] = {1, 0, 1, 1, 2};
  int32_t c[] = {2, 1, 0, 2, 1};
  float v[] = {1, 2, 3, 5, 4};
  for (int k = 0; k < 5; k++) assert_status(fedrec_triplets_push(&t, r[k], c[k], v[k], &err), FEDREC_OK);
  fedrec_csr m, mt;
  assert_status(fedrec_csr_from_triplets(&m, 3, 3, &t, &err), FEDREC_OK);
  assert_int_equal(fedrec_csr_nnz(&m), 4); /* (1,2) appears twice: keeps max 5 */
  assert_int_equal(m.indptr[1], 1);
  assert_int_equal(m.indices[1], 0);
  assert_int_equal(m.indices[2], 2);
  assert_true(m.values[2] == 5.0f);
  assert_status(fedrec_csr_transpose(&mt, &m, &err), FEDREC_OK);
  assert_int_equal(mt.rows, 3);
  assert_int_equal(mt.indptr[2] - mt.indptr[1], 2); /* column 1: users 0 and 2 */
  assert_int_equal(mt.indices[mt.indptr[1]], 0);
  assert_int_equal(mt.indices[mt.indptr[1] + 1], 2);
  fedrec_csr_free(&m);
  fedrec_csr_free(&mt);
  fedrec_triplets_free(&t);
}

static void test_csv_loader(void **state) {
  (void)state;
  const char *csv = "user,item,weight\nalice,song1,2\r\nbob,song2,1.5\nalice,song2,1\n\n";
  char path[256];
  write_temp(path, sizeof path, ".csv", csv, strlen(csv));
  fedrec_dataset ds;
  fedrec_error err = {0};
  assert_status(fedrec_load_csv(&ds, path, &err), FEDREC_OK);
  assert_int_equal(ds.R.rows, 2);
  assert_int_equal(ds.R.cols, 2);
  assert_int_equal(fedrec_csr_nnz(&ds.R), 3);
  assert_string_equal(fedrec_idmap_name(ds.users, 1), "bob");
  assert_true(ds.R.values[0] == 2.0f);
  fedrec_dataset_free(&ds);
  unlink(path);
}

/* Each malformed file must fail with a message naming file:line and the problem. */
static void expect_csv_error(const char *csv, const char *where, const char *what) {
  char path[256], want[512];
  write_temp(path, sizeof path, ".csv", csv, strlen(csv));
  fedrec_dataset ds;
  fedrec_error err = {0};
  assert_int_not_equal(fedrec_load_csv(&ds, path, &err), FEDREC_OK);
  snprintf(want, sizeof want, "%s:%s", path, where);
  if (!strstr(err.msg, want) || !strstr(err.msg, what))
    fail_msg("error '%s' lacks '%s' or '%s'", err.msg, want, what);
  unlink(path);
}

static void test_csv_malformed(void **state) {
  (void)state;
  expect_csv_error("usr,item\na,b\n", "1:", "expected header");
  expect_csv_error("user,item\na,b\nc\n", "3:", "expected 2 comma-separated fields");
  expect_csv_error("user,item,weight\na,b,1\nc,d,-1\n", "3:", "weight '-1'");
  expect_csv_error("user,item,weight\na,b,nan\n", "2:", "not a finite number");
  expect_csv_error("user,item,weight\na,b,1,2\n", "2:", "found 4");
  expect_csv_error("user,item\n,b\n", "2:", "user id ''");
  expect_csv_error("user,item\na,b\x01x\n", "2:", "item id");
  expect_csv_error("", "", "empty file");
  fedrec_dataset ds;
  fedrec_error err = {0};
  assert_status(fedrec_load_csv(&ds, "/nonexistent/x.csv", &err), FEDREC_ERR_IO);
  assert_non_null(strstr(err.msg, "/nonexistent/x.csv"));
}

static void test_movielens_and_lastfm(void **state) {
  (void)state;
  const char *ml = "userId,movieId,rating,timestamp\n1,10,4.0,1\n1,20,3.5,2\n2,20,5.0,3\n3,30,1,4\n";
  fedrec_triplets t = {0};
  fedrec_idmap *u = fedrec_idmap_new(), *i = fedrec_idmap_new();
  fedrec_error err = {0};
  assert_status(fedrec_parse_movielens_ratings(&t, u, i, 4.0, ml, (int64_t)strlen(ml), "r.csv", &err), FEDREC_OK);
  assert_int_equal(t.n, 2); /* 4.0 and 5.0 kept */
  const char *bad = "userId,movieId,rating,timestamp\n1,10,x,1\n";
  assert_status(fedrec_parse_movielens_ratings(&t, u, i, 4.0, bad, (int64_t)strlen(bad), "r.csv", &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "r.csv:2: rating 'x'"));
  fedrec_triplets_free(&t);
  fedrec_idmap_free(u);
  fedrec_idmap_free(i);

  const char *lf = "userID\tartistID\tweight\r\n2\t51\t13883\r\n2\t52\t11690\r\n3\t51\t1\r\n";
  u = fedrec_idmap_new(), i = fedrec_idmap_new();
  assert_status(fedrec_parse_lastfm_user_artists(&t, u, i, lf, (int64_t)strlen(lf), "ua.dat", &err), FEDREC_OK);
  assert_int_equal(t.n, 3);
  assert_true(t.v[0] == 13883.0f);
  assert_int_equal(fedrec_idmap_size(i), 2);
  const char *lbad = "userID\tartistID\tweight\r\n2\t51\r\n";
  assert_status(fedrec_parse_lastfm_user_artists(&t, u, i, lbad, (int64_t)strlen(lbad), "ua.dat", &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "ua.dat:2: expected 3 tab-separated fields"));
  fedrec_triplets_free(&t);
  fedrec_idmap_free(u);
  fedrec_idmap_free(i);
}

static void test_confidence(void **state) {
  (void)state;
  float vals[] = {0, 10, 1000};
  int64_t ptr[] = {0, 3};
  int32_t idx[] = {0, 1, 2};
  fedrec_csr R = {1, 3, ptr, idx, vals};
  fedrec_confidence_log(&R, 1.0f, 10.0f);
  assert_near(vals[0], 1.0, 1e-6);
  assert_near(vals[1], 1.0 + log(2.0), 1e-6);
  assert_near(vals[2], 1.0 + log(101.0), 1e-5);
}

/* Builds a .npy image with the given header dict and payload. */
static size_t make_npy(char *buf, const char *dict, const void *data, size_t dlen) {
  size_t hl = strlen(dict);
  size_t total = 10 + hl + 1;
  size_t pad = (64 - total % 64) % 64;
  memcpy(buf, "\x93NUMPY\x01\x00", 8);
  buf[8] = (char)((hl + pad + 1) & 0xff);
  buf[9] = (char)((hl + pad + 1) >> 8);
  memcpy(buf + 10, dict, hl);
  memset(buf + 10 + hl, ' ', pad);
  buf[10 + hl + pad] = '\n';
  memcpy(buf + total + pad, data, dlen);
  return total + pad + dlen;
}

static void test_npy(void **state) {
  (void)state;
  char buf[1024];
  float f[6] = {1, 2, 3, 4, 5, 6};
  double d[6] = {1, 2, 3, 4, 5, 6.5};
  int64_t rows, cols;
  float *x;
  fedrec_error err = {0};
  size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f, sizeof f);
  assert_status(fedrec_parse_npy(buf, (int64_t)n, "a.npy", &rows, &cols, &x, &err), FEDREC_OK);
  assert_int_equal(rows, 3);
  assert_int_equal(cols, 2);
  assert_true(x[5] == 6.0f);
  free(x);
  n = make_npy(buf, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d, sizeof d);
  assert_status(fedrec_parse_npy(buf, (int64_t)n, "a.npy", &rows, &cols, &x, &err), FEDREC_OK);
  assert_true(x[5] == 6.5f);
  free(x);
  /* truncated payload */
  assert_status(fedrec_parse_npy(buf, (int64_t)n - 1, "a.npy", &rows, &cols, &x, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "truncated"));
  n = make_npy(buf, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", f, sizeof f);
  assert_status(fedrec_parse_npy(buf, (int64_t)n, "a.npy", &rows, &cols, &x, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "dtype"));
  n = make_npy(buf, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", f, sizeof f);
  assert_status(fedrec_parse_npy(buf, (int64_t)n, "a.npy", &rows, &cols, &x, &err), FEDREC_ERR_PARSE);
  n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", f, sizeof f);
  assert_status(fedrec_parse_npy(buf, (int64_t)n, "a.npy", &rows, &cols, &x, &err), FEDREC_ERR_PARSE);
  assert_status(fedrec_parse_npy("hello world", 11, "a.npy", &rows, &cols, &x, &err), FEDREC_ERR_PARSE);
}

static void test_attach_content(void **state) {
  (void)state;
  const char *csv = "user,item\nu1,a\nu1,b\nu2,c\n";
  char path[256], npy[256], ids[256], ccsv[256], buf[1024];
  write_temp(path, sizeof path, ".csv", csv, strlen(csv));
  fedrec_dataset ds;
  fedrec_error err = {0};
  assert_status(fedrec_load_csv(&ds, path, &err), FEDREC_OK);
  float f[6] = {1, 2, 3, 4, 5, 6};
  size_t n = make_npy(buf, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", f, sizeof f);
  write_temp(npy, sizeof npy, ".npy", buf, n);
  write_temp(ids, sizeof ids, ".txt", "c\nzz\na\n", 7);
  assert_status(fedrec_attach_npy(&ds, npy, ids, &err), FEDREC_OK);
  assert_int_equal(ds.content_dim, 2);
  assert_true(ds.content[0] == 5.0f && ds.content[1] == 6.0f); /* item a = row 2 */
  assert_int_equal(ds.has_content[1], 0);                       /* b has no row */
  assert_true(ds.content[4] == 1.0f);                           /* c = row 0 */
  write_temp(ids, sizeof ids, ".txt", "c\na\n", 4);
  assert_status(fedrec_attach_npy(&ds, npy, ids, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "has 2 ids but"));
  const char *cc = "item,f1,f2,f3\nb,1,2,3\nq,0,0,0\n";
  write_temp(ccsv, sizeof ccsv, ".csv", cc, strlen(cc));
  assert_status(fedrec_attach_content_csv(&ds, ccsv, &err), FEDREC_OK);
  assert_int_equal(ds.content_dim, 3);
  assert_int_equal(ds.has_content[1], 1);
  assert_int_equal(ds.has_content[0], 0);
  const char *bad = "item,f1,f2\nb,1\n";
  write_temp(ccsv, sizeof ccsv, ".csv", bad, strlen(bad));
  assert_status(fedrec_attach_content_csv(&ds, ccsv, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, ":2: expected 2 features, found 1"));
  fedrec_dataset_free(&ds);
  unlink(path), unlink(npy), unlink(ids), unlink(ccsv);
}

static void test_tfidf(void **state) {
  (void)state;
  fedrec_tokens *t = fedrec_tokens_new();
  fedrec_error err;
  /* item 0: rare + common; item 1: common only; item 2: nothing */
  assert_status(fedrec_tokens_add(t, 0, "rare", 4, &err), FEDREC_OK);
  assert_status(fedrec_tokens_add(t, 0, "common", 6, &err), FEDREC_OK);
  assert_status(fedrec_tokens_add(t, 1, "common", 6, &err), FEDREC_OK);
  assert_status(fedrec_tokens_add(t, 3, "common", 6, &err), FEDREC_OK);
  assert_status(fedrec_tokens_add(t, 3, "other", 5, &err), FEDREC_OK);
  float out[4 * 256];
  uint8_t has[4];
  assert_status(fedrec_tokens_tfidf(t, 4, 256, out, has, &err), FEDREC_OK);
  assert_int_equal(has[0], 1);
  assert_int_equal(has[1], 0); /* "common" is in every document with tokens: idf 0 */
  assert_int_equal(has[2], 0);
  double norm = 0;
  for (int j = 0; j < 256; j++) norm += out[j] * out[j];
  assert_near(norm, 1.0, 1e-5);
  fedrec_tokens_free(t);
}

static void test_movielens_content_parsers(void **state) {
  (void)state;
  fedrec_idmap *items = fedrec_idmap_new();
  fedrec_idmap_get(items, "1", 1, 1);
  fedrec_idmap_get(items, "2", 1, 1);
  fedrec_tokens *t = fedrec_tokens_new();
  fedrec_error err = {0};
  const char *mv = "movieId,title,genres\n1,\"Toy Story, The (1995)\",Animation|Comedy\n2,Heat (1995),Action\n3,X (2001),Drama\n";
  assert_status(fedrec_parse_movielens_movies(t, items, mv, (int64_t)strlen(mv), "m.csv", &err), FEDREC_OK);
  const char *badq = "movieId,title,genres\n1,\"unterminated,Comedy\n";
  assert_status(fedrec_parse_movielens_movies(t, items, badq, (int64_t)strlen(badq), "m.csv", &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "m.csv:2: expected 3 fields"));
  float out[2 * 32];
  uint8_t has[2];
  assert_status(fedrec_tokens_tfidf(t, 2, 32, out, has, &err), FEDREC_OK);
  assert_int_equal(has[0], 1);
  assert_int_equal(has[1], 1);
  fedrec_tokens_free(t);
  fedrec_idmap_free(items);
}

static void test_real_loaders(void **state) {
  (void)state;
  const char *dir = shared_data_dir();
  if (!dir) {
    print_message("skipped: ../shared/data is absent\n");
    skip();
  }
  char p[8192];
  fedrec_dataset ds;
  fedrec_error err = {0};
  snprintf(p, sizeof p, "%s/ml-latest-small", dir);
  assert_status(fedrec_load_movielens(&ds, p, 4.0, 64, &err), FEDREC_OK);
  assert_int_equal(fedrec_csr_nnz(&ds.R), 48580); /* ratings >= 4.0 in the 2018 release */
  assert_int_equal(ds.R.rows, 609);
  int32_t with = 0;
  for (int32_t i = 0; i < ds.R.cols; i++) with += ds.has_content[i];
  assert_true(with > ds.R.cols * 9 / 10);
  fedrec_dataset_free(&ds);
  snprintf(p, sizeof p, "%s/hetrec2011-lastfm-2k", dir);
  assert_status(fedrec_load_lastfm(&ds, p, 64, &err), FEDREC_OK);
  assert_int_equal(fedrec_csr_nnz(&ds.R), 92834);
  assert_int_equal(ds.R.rows, 1892);
  assert_int_equal(ds.R.cols, 17632);
  fedrec_dataset_free(&ds);
}

/* --weights: parsing, the counts test, and each transform's values. */
static void test_weights(void **state) {
  (void)state;
  fedrec_weights w;
  fedrec_error err;
  assert_int_equal(fedrec_weights_parse(&w, "auto", &err), FEDREC_OK);
  assert_int_equal(w.kind, FEDREC_WEIGHTS_AUTO);
  assert_int_equal(fedrec_weights_parse(&w, "log:2.5", &err), FEDREC_OK);
  assert_int_equal(w.kind, FEDREC_WEIGHTS_LOG);
  assert_float_equal(w.scale, 2.5, 0);
  assert_int_equal(fedrec_weights_parse(&w, "log", &err), FEDREC_OK);
  assert_float_equal(w.scale, 10, 0);
  assert_int_equal(fedrec_weights_parse(&w, "log:0", &err), FEDREC_ERR_ARG);
  assert_int_equal(fedrec_weights_parse(&w, "log:x", &err), FEDREC_ERR_ARG);
  assert_int_equal(fedrec_weights_parse(&w, "sqrt", &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "expected raw, binary, log[:S] or auto"));
  float counts[4] = {1, 3, 40, 250}, ones[4] = {1, 1, 1, 1}, conf[4] = {1.5f, 2, 1, 3};
  int64_t indptr[2] = {0, 4};
  int32_t idx[4] = {0, 1, 2, 3};
  fedrec_csr R = {1, 4, indptr, idx, counts};
  assert_true(fedrec_weights_look_like_counts(&R));
  R.values = ones;
  assert_false(fedrec_weights_look_like_counts(&R)); /* nothing above 1 */
  R.values = conf;
  assert_false(fedrec_weights_look_like_counts(&R)); /* 1.5 is not a count */
  /* auto on counts: log:10, the Last.fm loader's transform */
  R.values = counts;
  fedrec_weights a = {FEDREC_WEIGHTS_AUTO, 10};
  fedrec_weights done = fedrec_weights_apply(&R, &a);
  assert_int_equal(done.kind, FEDREC_WEIGHTS_LOG);
  assert_float_equal(counts[2], 1 + log1pf(4.0f), 1e-6);
  /* auto on confidences: unchanged */
  done = fedrec_weights_apply(&(fedrec_csr){1, 4, indptr, idx, conf}, &a);
  assert_int_equal(done.kind, FEDREC_WEIGHTS_RAW);
  assert_float_equal(conf[0], 1.5, 0);
  fedrec_weights b = {FEDREC_WEIGHTS_BINARY, 10};
  fedrec_weights_apply(&(fedrec_csr){1, 4, indptr, idx, conf}, &b);
  assert_float_equal(conf[3], 1, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_idmap),       cmocka_unit_test(test_csr_dups_and_transpose),
      cmocka_unit_test(test_csv_loader),  cmocka_unit_test(test_csv_malformed),
      cmocka_unit_test(test_movielens_and_lastfm), cmocka_unit_test(test_confidence),
      cmocka_unit_test(test_npy),         cmocka_unit_test(test_attach_content),
      cmocka_unit_test(test_tfidf),       cmocka_unit_test(test_movielens_content_parsers),
      cmocka_unit_test(test_real_loaders), cmocka_unit_test(test_weights),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
