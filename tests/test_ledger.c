/* The privacy ledger: durable appends, budget enforcement, and tamper detection. */
#include <math.h>
#include <sqlite3.h>

#include "fedrec/accountant.h"
#include "fedrec/ledger.h"
#include "test_util.h"

static fedrec_identity key_a, key_b;

static int setup(void **state) {
  (void)state;
  uint8_t s1[32] = {1}, s2[32] = {2};
  if (fedrec_crypto_init() || fedrec_identity_from_seed(&key_a, s1) || fedrec_identity_from_seed(&key_b, s2)) return -1;
  return 0;
}

static void temp_path(char *p, size_t cap) {
  static int k;
  snprintf(p, cap, "/tmp/fedrec_ledger_%d_%d.db", (int)getpid(), k++);
  unlink(p);
}

static void make_ledger(const char *path, const fedrec_identity *id, int entries) {
  fedrec_ledger *l;
  fedrec_error err = {0};
  assert_status(fedrec_ledger_create(&l, path, 1e-6, 50.0, NULL, id, &err), FEDREC_OK);
  for (int r = 0; r < entries; r++) {
    fedrec_release g = {.mechanism = FEDREC_MECH_GAUSSIAN, .round = (uint64_t)r + 1, .q = 0.01, .z = 1.1, .survivors = (uint32_t)(100 + r)};
    fedrec_release s = {.mechanism = FEDREC_MECH_SKELLAM, .round = (uint64_t)r + 1, .q = 1.0, .d2 = 100, .d1 = 3000, .var = 1e8, .survivors = (uint32_t)(100 + r)};
    assert_status(fedrec_ledger_append(l, r % 3 == 2 ? &s : &g, NULL, &err), FEDREC_OK);
  }
  fedrec_ledger_close(l);
}

static void tamper(const char *path, const char *sqltext) {
  sqlite3 *db;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  char *msg = NULL;
  if (sqlite3_exec(db, sqltext, NULL, NULL, &msg) != SQLITE_OK) fail_msg("tamper: %s", msg);
  sqlite3_close(db);
}

static void expect_verify_fails(const char *sqltext, const char *why) {
  char path[256];
  temp_path(path, sizeof path);
  make_ledger(path, &key_a, 6);
  fedrec_error err = {0};
  assert_status(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  tamper(path, sqltext);
  assert_int_not_equal(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  if (!strstr(err.msg, why)) fail_msg("after '%s': '%s' lacks '%s'", sqltext, err.msg, why);
  unlink(path);
}

static void test_append_and_verify(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path);
  make_ledger(path, &key_a, 9);
  fedrec_ledger_summary s;
  fedrec_error err = {0};
  assert_status(fedrec_ledger_verify(path, key_a.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, 9);
  /* the recorded total equals the accountant's composition of the same releases */
  fedrec_orders o;
  fedrec_orders_default(&o);
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o.n; k++) {
    double sk = fedrec_rdp_skellam(o.a[k], 100, 3000, 1e8);
    r[k] = 6 * fedrec_rdp_subsampled_gaussian(0.01, 1.1, o.a[k]) + 3 * sk;
  }
  assert_near(s.epsilon, fedrec_rdp_to_epsilon(r, &o, 1e-6, NULL), 1e-9 * s.epsilon);
  /* reopening resumes the chain and the epsilon */
  fedrec_ledger *l;
  assert_status(fedrec_ledger_open(&l, path, &key_a, &err), FEDREC_OK);
  assert_near(fedrec_ledger_epsilon(l), s.epsilon, 1e-12);
  fedrec_release g = {.mechanism = FEDREC_MECH_GAUSSIAN, .round = 10, .q = 0.01, .z = 1.1, .survivors = 100};
  assert_status(fedrec_ledger_append(l, &g, NULL, &err), FEDREC_OK);
  fedrec_ledger_close(l);
  assert_status(fedrec_ledger_verify(path, key_a.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, 10);
  /* a ledger exists already; the wrong key cannot open it for appending */
  assert_status(fedrec_ledger_create(&l, path, 1e-6, 1, NULL, &key_a, &err), FEDREC_ERR_ARG);
  assert_int_not_equal(fedrec_ledger_open(&l, path, &key_b, &err), FEDREC_OK);
  unlink(path);
}

static void test_budget(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path);
  fedrec_ledger *l;
  fedrec_error err = {0};
  assert_status(fedrec_ledger_create(&l, path, 1e-5, 2.0, NULL, &key_a, &err), FEDREC_OK);
  fedrec_release g = {.mechanism = FEDREC_MECH_GAUSSIAN, .round = 1, .q = 1.0, .z = 5.0, .survivors = 50};
  int appended = 0;
  double eps = 0;
  for (int r = 0; r < 100; r++) {
    g.round = (uint64_t)r + 1;
    fedrec_status st = fedrec_ledger_append(l, &g, &eps, &err);
    if (st) {
      assert_int_equal(st, FEDREC_ERR_LIMIT);
      assert_non_null(strstr(err.msg, "above the budget 2: not started"));
      break;
    }
    appended++;
  }
  assert_true(appended > 0 && appended < 100);
  assert_true(fedrec_ledger_epsilon(l) <= 2.0);
  fedrec_ledger_close(l);
  fedrec_ledger_summary s;
  assert_status(fedrec_ledger_verify(path, key_a.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, (uint64_t)appended); /* the refused round left nothing */
  unlink(path);
}

static void test_tampering(void **state) {
  (void)state;
  expect_verify_fails("UPDATE entries SET epsilon = epsilon * 0.5 WHERE seq = 3", "edited");
  expect_verify_fails("UPDATE entries SET q = 0.001 WHERE seq = 2", "edited");
  expect_verify_fails("UPDATE entries SET seq = 100 WHERE seq = 2; UPDATE entries SET seq = 2 WHERE seq = 3;"
                      "UPDATE entries SET seq = 3 WHERE seq = 100", "chain");
  expect_verify_fails("DELETE FROM entries WHERE seq = 4", "sequence number");
  expect_verify_fails("DELETE FROM entries WHERE seq = 6", "truncated");
  expect_verify_fails("DELETE FROM head", "head record is missing");
  expect_verify_fails("UPDATE meta SET v = '100' WHERE k = 'budget'", "chain");
  /* every row and the head deleted: 61d538e verified that as "0 entries, epsilon 0" */
  expect_verify_fails("DELETE FROM entries; DELETE FROM head", "head record is missing");
  /* a count past 32 bits would be verified as its low half (what was signed) */
  expect_verify_fails("UPDATE entries SET survivors = survivors + 4294967296 WHERE seq = 2", "malformed");
  expect_verify_fails("UPDATE entries SET colluders = 4294967296 WHERE seq = 2", "malformed");
  expect_verify_fails("UPDATE entries SET colluders = 3 WHERE seq = 2", "edited");
  /* re-signed with another key: the whole ledger rebuilt by someone holding key b */
  char path[256];
  temp_path(path, sizeof path);
  make_ledger(path, &key_b, 4);
  fedrec_error err = {0};
  assert_int_not_equal(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  assert_non_null(strstr(err.msg, "not the given key"));
  char pkhex[65];
  for (int i = 0; i < 32; i++) sprintf(pkhex + 2 * i, "%02x", key_a.pk[i]);
  char q[200];
  snprintf(q, sizeof q, "UPDATE meta SET v = '%s' WHERE k = 'public_key'", pkhex);
  tamper(path, q); /* claims key a, signed by key b */
  assert_int_not_equal(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  unlink(path);
  assert_status(fedrec_ledger_verify("/nonexistent.db", key_a.pk, NULL, NULL, 0, &err), FEDREC_ERR_IO);
}

/* An older genuine copy of a ledger is told apart from the one behind a model: a model's
 * signature names the ledger's entry count and head, and the copy does not hold that entry. */
static void test_covers(void **state) {
  (void)state;
  char path[256], copy[300];
  temp_path(path, sizeof path);
  snprintf(copy, sizeof copy, "%s.old", path);
  make_ledger(path, &key_a, 3);
  fedrec_error err = {0};
  fedrec_ledger *l;
  uint64_t n0, n1;
  uint8_t h0[32], h1[32];
  assert_status(fedrec_ledger_open(&l, path, &key_a, &err), FEDREC_OK);
  fedrec_ledger_head(l, &n0, h0);
  assert_int_equal(n0, 3);
  char cmd[700];
  snprintf(cmd, sizeof cmd, "cp %s %s", path, copy);
  assert_int_equal(system(cmd), 0);
  fedrec_release g = {.mechanism = FEDREC_MECH_GAUSSIAN, .round = 4, .q = 0.01, .z = 1.1, .survivors = 100};
  assert_status(fedrec_ledger_append(l, &g, NULL, &err), FEDREC_OK);
  fedrec_ledger_head(l, &n1, h1);
  fedrec_ledger_close(l);
  assert_int_equal(n1, 4);
  fedrec_ledger_summary s;
  assert_status(fedrec_ledger_verify_covers(path, key_a.pk, 4, h1, &s, &err), FEDREC_OK);
  assert_status(fedrec_ledger_verify_covers(path, key_a.pk, 3, h0, &s, &err), FEDREC_OK); /* longer is fine */
  assert_status(fedrec_ledger_verify(copy, key_a.pk, &s, NULL, 0, &err), FEDREC_OK);     /* genuine on its own */
  assert_status(fedrec_ledger_verify_covers(copy, key_a.pk, 4, h1, &s, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "an older copy"));
  h0[0] ^= 1; /* the right length, another head */
  assert_status(fedrec_ledger_verify_covers(path, key_a.pk, 3, h0, &s, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "another ledger"));
  unlink(path);
  unlink(copy);
}

/* Colluders' noise is not credited: the same dgauss release with colluders costs more. */
static void test_colluders(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path);
  fedrec_ledger *l;
  fedrec_error err = {0};
  assert_status(fedrec_ledger_create(&l, path, 1e-5, 1e6, NULL, &key_a, &err), FEDREC_OK);
  fedrec_release d = {.mechanism = FEDREC_MECH_DGAUSS, .round = 1, .q = 1, .d2 = 100, .d1 = 3000, .sigma = 40, .survivors = 50, .dim = 4096};
  double e0, e1;
  assert_status(fedrec_ledger_check(l, &d, &e0, &err), FEDREC_OK);
  d.colluders = 10;
  assert_status(fedrec_ledger_check(l, &d, &e1, &err), FEDREC_OK);
  print_message("dgauss, 50 survivors: epsilon %.4f, with 10 colluders %.4f\n", e0, e1);
  assert_true(e1 > e0);
  d.colluders = 50;
  assert_status(fedrec_ledger_check(l, &d, &e1, &err), FEDREC_ERR_ARG);
  fedrec_ledger_close(l);
  unlink(path);
}

/* fedrec-audit verify on a good and a tampered ledger. */
static void test_audit_cli(void **state) {
  (void)state;
  char path[256], keyfile[300], cmd[1200];
  temp_path(path, sizeof path);
  make_ledger(path, &key_a, 5);
  snprintf(keyfile, sizeof keyfile, "%s.pub", path);
  FILE *f = fopen(keyfile, "w");
  for (int i = 0; i < 32; i++) fprintf(f, "%02x", key_a.pk[i]);
  fprintf(f, "\n");
  fclose(f);
  snprintf(cmd, sizeof cmd, "%s verify --ledger %s --public-key %s --json > %s.out", FEDREC_AUDIT, path, keyfile, path);
  assert_int_equal(system(cmd), 0);
  tamper(path, "UPDATE entries SET survivors = 1 WHERE seq = 2");
  snprintf(cmd, sizeof cmd, "%s verify --ledger %s --public-key %s > %s.out 2>&1", FEDREC_AUDIT, path, keyfile, path);
  assert_int_not_equal(system(cmd), 0);
  char out[300], *b;
  int64_t len;
  fedrec_error err;
  snprintf(out, sizeof out, "%s.out", path);
  assert_status(fedrec_read_file(out, &b, &len, &err), FEDREC_OK);
  if (!strstr(b, "FAILED: entry 2: contents do not match its hash")) fail_msg("output: %s", b);
  free(b);
  unlink(path), unlink(keyfile), unlink(out);
}

/* Two accounts (format 4): each round records its release to the operator (here distributed
 * discrete Gaussian) and, with DP-FTRL, a tree entry for what model recipients see. Epsilon
 * composes the first kind; the public epsilon is the smaller of that and the tree entries'
 * restart accounting. A tree entry with no release of its round before it, one that skips a
 * leaf, changes the noise inside a tree or claims sampling is refused; the public budget
 * stops a round; a tampered leaf or public epsilon fails verification. */
static void test_dgauss_and_tree(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path);
  fedrec_ledger *l;
  fedrec_error err = {0};
  fedrec_ledger_terms terms = {.delta = 1e-6, .budget = 1000, .public_budget = 8};
  assert_status(fedrec_ledger_create_with(&l, path, &terms, &key_a, &err), FEDREC_OK);
  fedrec_release d = {.mechanism = FEDREC_MECH_DGAUSS, .q = 1, .d2 = 300, .d1 = 9000, .survivors = 90, .sigma = 40, .dim = 100000};
  fedrec_release t = {.mechanism = FEDREC_MECH_TREE, .q = 1, .z = 6, .survivors = 90};
  t.round = 1, t.leaf = 1;
  assert_status(fedrec_ledger_append(l, &t, NULL, &err), FEDREC_ERR_ARG); /* no release of round 1 before it */
  assert_non_null(strstr(err.msg, "tree entry"));
  /* two trees: 7 leaves then 5, after two rounds without a tree */
  for (int r = 1; r <= 14; r++) {
    d.round = t.round = (uint64_t)r;
    t.leaf = r <= 2 ? 0 : r <= 9 ? (uint64_t)r - 2 : (uint64_t)r - 9;
    fedrec_release pair[2] = {d, t};
    double e1, p1;
    assert_status(fedrec_ledger_check_round(l, pair, t.leaf ? 2 : 1, &e1, &p1, &err), FEDREC_OK);
    assert_status(fedrec_ledger_append(l, &d, NULL, &err), FEDREC_OK);
    if (t.leaf) assert_status(fedrec_ledger_append(l, &t, NULL, &err), FEDREC_OK);
    assert_near(fedrec_ledger_epsilon(l), e1, 1e-12 * e1);
    assert_near(fedrec_ledger_epsilon_public(l), p1, 1e-12 * p1);
    if (r == 2) assert_near(fedrec_ledger_epsilon_public(l), fedrec_ledger_epsilon(l), 0); /* no tree yet: equal */
  }
  fedrec_release bad = t;
  bad.round = 15;
  assert_status(fedrec_ledger_append(l, &bad, NULL, &err), FEDREC_ERR_ARG); /* a tree entry after a tree entry */
  d.round = 15;
  assert_status(fedrec_ledger_append(l, &d, NULL, &err), FEDREC_OK);
  bad.leaf = 7; /* skips 6 */
  assert_status(fedrec_ledger_append(l, &bad, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "does not follow"));
  bad.leaf = 6, bad.z = 5;
  assert_status(fedrec_ledger_append(l, &bad, NULL, &err), FEDREC_ERR_ARG);
  bad.z = 6, bad.q = 0.5;
  assert_status(fedrec_ledger_append(l, &bad, NULL, &err), FEDREC_ERR_ARG);
  bad.q = 1, bad.z = 0.5; /* a new tree with little noise: past the public budget */
  bad.leaf = 1;
  assert_status(fedrec_ledger_append(l, &bad, NULL, &err), FEDREC_ERR_LIMIT);
  assert_non_null(strstr(err.msg, "public budget"));
  double total = fedrec_ledger_epsilon(l), pub = fedrec_ledger_epsilon_public(l);
  fedrec_ledger_close(l);

  fedrec_orders o;
  fedrec_orders_default(&o);
  const uint64_t epochs[] = {7, 5};
  double sens2 = fedrec_tree_restart_sensitivity2(epochs, 2), r[FEDREC_MAX_ORDERS], rt[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o.n; k++) {
    double v = fedrec_rdp_ddgauss_subsampled(1, o.a[k], 300, 9000, 40, 90, 100000);
    r[k] = isnan(v) ? INFINITY : 15 * v;
    rt[k] = o.a[k] * sens2 / 72;
  }
  double want = fedrec_rdp_to_epsilon(r, &o, 1e-6, NULL), want_tree = fedrec_rdp_to_epsilon(rt, &o, 1e-6, NULL);
  print_message("15 dgauss releases: epsilon %.4f; trees of 7 and 5 leaves at z 6: %.4f\n", want, want_tree);
  assert_true(want_tree < want);
  assert_near(total, want, 1e-9 * total);
  assert_near(pub, want_tree, 1e-9 * pub);
  fedrec_ledger_summary sum;
  assert_status(fedrec_ledger_verify(path, key_a.pk, &sum, NULL, 0, &err), FEDREC_OK);
  assert_near(sum.epsilon, total, 1e-12 * total);
  assert_near(sum.epsilon_public, pub, 1e-12 * pub);
  assert_near(sum.public_budget, 8, 0);
  assert_int_equal(sum.entries, 27);
  /* moving an entry to a later leaf of its tree is an edit, and breaks the leaf sequence */
  char q[128];
  snprintf(q, sizeof q, "UPDATE entries SET leaf = 9 WHERE seq = 12");
  tamper(path, q);
  assert_int_not_equal(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  assert_non_null(strstr(err.msg, "entry 12"));
  tamper(path, "UPDATE entries SET leaf = 5 WHERE seq = 12");
  assert_status(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  tamper(path, "UPDATE entries SET epsilon_public = epsilon_public / 2 WHERE seq = 20");
  assert_int_not_equal(fedrec_ledger_verify(path, key_a.pk, NULL, NULL, 0, &err), FEDREC_OK);
  unlink(path);
}

/* A participation bound K: epsilon composes the K costliest entries per order, verification
 * recomputes it from the genesis' K, a K edited afterwards breaks the chain, and sampled or
 * tree releases are refused (the bound replaces the sampling assumption). */
static void test_participation_bound(void **state) {
  (void)state;
  char path[256];
  temp_path(path, sizeof path);
  fedrec_ledger *l;
  fedrec_error err = {0};
  fedrec_ledger_terms t = {.delta = 1e-5, .budget = 1e6, .max_participation = FEDREC_LEDGER_MAX_PARTICIPATION + 1};
  assert_status(fedrec_ledger_create_with(&l, path, &t, &key_a, &err), FEDREC_ERR_ARG);
  t.max_participation = 2;
  assert_status(fedrec_ledger_create_with(&l, path, &t, &key_a, &err), FEDREC_OK);
  assert_int_equal(fedrec_ledger_max_participation(l), 2);
  fedrec_release sk = {.mechanism = FEDREC_MECH_SKELLAM, .q = 1, .d2 = 100, .d1 = 3000, .var = 1e7, .survivors = 100};
  double eps[6];
  for (int r = 0; r < 6; r++) {
    sk.round = (uint64_t)r + 1;
    sk.var = r == 4 ? 1e6 : 1e7; /* round 5 costs ten times as much */
    assert_status(fedrec_ledger_append(l, &sk, &eps[r], &err), FEDREC_OK);
  }
  fedrec_orders o;
  fedrec_orders_default(&o);
  double want2[FEDREC_MAX_ORDERS], wantmix[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o.n; k++) {
    want2[k] = 2 * fedrec_rdp_skellam(o.a[k], 100, 3000, 1e7);
    wantmix[k] = fedrec_rdp_skellam(o.a[k], 100, 3000, 1e7) + fedrec_rdp_skellam(o.a[k], 100, 3000, 1e6);
  }
  double e2 = fedrec_rdp_to_epsilon(want2, &o, 1e-5, NULL), emix = fedrec_rdp_to_epsilon(wantmix, &o, 1e-5, NULL);
  assert_near(eps[1], e2, 1e-9 * e2);
  assert_near(eps[3], e2, 1e-9 * e2); /* four entries, still two participations */
  assert_near(eps[5], emix, 1e-9 * emix);
  fedrec_release g = {.mechanism = FEDREC_MECH_GAUSSIAN, .round = 7, .q = 0.5, .z = 2};
  assert_status(fedrec_ledger_append(l, &g, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "participation bound"));
  g.q = 1, g.mechanism = FEDREC_MECH_TREE, g.leaf = 1, g.round = 99; /* no release of round 99 before it */
  assert_status(fedrec_ledger_append(l, &g, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "tree entry"));
  fedrec_ledger_close(l);
  fedrec_ledger_summary s;
  assert_status(fedrec_ledger_verify(path, key_a.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.format, 4);
  assert_int_equal(s.max_participation, 2);
  assert_near(s.epsilon, emix, 1e-9 * emix);
  assert_status(fedrec_ledger_open(&l, path, &key_a, &err), FEDREC_OK); /* reopened: the same composition */
  assert_near(fedrec_ledger_epsilon(l), emix, 1e-9 * emix);
  fedrec_ledger_close(l);
  tamper(path, "UPDATE meta SET v = '1' WHERE k = 'max_participation'");
  assert_status(fedrec_ledger_verify(path, key_a.pk, &s, NULL, 0, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "entry 1"));
  tamper(path, "UPDATE meta SET v = '2x' WHERE k = 'max_participation'");
  assert_status(fedrec_ledger_verify(path, key_a.pk, &s, NULL, 0, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "max_participation"));
  unlink(path);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_append_and_verify),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_tampering),
      cmocka_unit_test(test_dgauss_and_tree),
      cmocka_unit_test(test_audit_cli),
      cmocka_unit_test(test_covers),
      cmocka_unit_test(test_colluders),
      cmocka_unit_test(test_participation_bound),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
