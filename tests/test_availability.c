/* Availability sets and the block list (protos/catalogue.h, docs/CATALOGUE.md "Availability"):
 * the operator's files with clear errors, the rules inside the signed catalogue (canonical,
 * hostile encodings refused) and what a device in some groups may be recommended. */
#include "catalogue.h"
#include "catalogue_util.h"
#include "test_util.h"

static const char CSV[] = "item,f1,f2\na,1,0\nb,0,1\nc,1,1\nd,2,0\ne,0,2\n";

static void catalogue(fedrec_catalogue *c) {
  char path[64], spec[128];
  fedrec_error err = {0};
  write_temp(path, sizeof path, ".csv", CSV, strlen(CSV));
  snprintf(spec, sizeof spec, "csv:%s", path);
  assert_status(fedrec_catalogue_load(c, spec, &err), FEDREC_OK);
  unlink(path);
}

static fedrec_status parse(fedrec_catalogue_rules *r, const char *avail, const char *blocked, char *msg, size_t cap) {
  fedrec_error err = {0};
  fedrec_status st = fedrec_catalogue_rules_parse(r, avail, avail ? (int64_t)strlen(avail) : 0, "avail.tsv", blocked,
                                                  blocked ? (int64_t)strlen(blocked) : 0, "blocked.txt", &err);
  snprintf(msg, cap, "%s", err.msg);
  return st;
}

static void refused(const char *avail, const char *blocked, const char *want) {
  fedrec_catalogue_rules r;
  char msg[600];
  if (parse(&r, avail, blocked, msg, sizeof msg) != FEDREC_ERR_PARSE) fail_msg("'%s' was accepted", avail ? avail : blocked);
  if (!strstr(msg, want)) fail_msg("'%s': message '%s' lacks '%s'", avail ? avail : blocked, msg, want);
}

static void test_files(void **state) {
  (void)state;
  refused("a\tDE\nb DE\n", NULL, "avail.tsv:2: expected 'item<TAB>group");
  refused("a\tDE,\n", NULL, "avail.tsv:1: '' is not a group name");
  refused("a\tD E\n", NULL, "avail.tsv:1: 'D E' is not a group name");
  refused("a\tDE\nc\tUS\na\tFR\n", NULL, "avail.tsv:3: item 'a' appears twice");
  refused("a\tDE\tUS\n", NULL, "avail.tsv:1: expected");
  refused(NULL, "a\n\nb\n", "blocked.txt:2");
  refused(NULL, "a\na\n", "blocked.txt:2: item id 'a' appears twice");
  fedrec_catalogue_rules r;
  char msg[600];
  assert_status(parse(&r, "a\tUS,DE,US\nd\tpremium\n", "e\n", msg, sizeof msg), FEDREC_OK);
  assert_int_equal(fedrec_idmap_size(r.items), 2);
  assert_int_equal(r.start[1] - r.start[0], 2); /* US twice is one group */
  fedrec_catalogue_rules_free(&r);
}

/* allowed for a device in groups, as a string of 0/1 per item. */
static void expect_allowed(const fedrec_catalogue *c, const char *groups, const char *want) {
  uint8_t allowed[8];
  char got[9];
  int32_t n = fedrec_catalogue_allowed(c, groups, allowed), count = 0;
  for (int32_t i = 0; i < fedrec_catalogue_items(c); i++) got[i] = (char)('0' + allowed[i]), count += allowed[i];
  got[fedrec_catalogue_items(c)] = 0;
  if (strcmp(got, want)) fail_msg("groups '%s': allowed %s, wanted %s", groups, got, want);
  assert_int_equal(n, count);
}

static void test_allowed(void **state) {
  (void)state;
  fedrec_catalogue c, d;
  fedrec_catalogue_rules r;
  fedrec_error err = {0};
  char msg[600], first[64];
  int32_t unknown;
  catalogue(&c);
  /* a: DE and US; b: premium; d: US; e blocked; c everywhere; zz unknown (skipped, counted) */
  assert_status(parse(&r, "a\tUS,DE\nzz\tFR\nb\tpremium\nd\tUS\n", "e\nyy\n", msg, sizeof msg), FEDREC_OK);
  assert_status(fedrec_catalogue_apply_rules(&c, &r, &unknown, first, sizeof first, &err), FEDREC_OK);
  assert_int_equal(unknown, 2);
  assert_string_equal(first, "zz");
  assert_int_equal(c.n_groups, 3); /* DE US premium, by name (bytewise); FR lists no item of c */
  assert_string_equal(c.groups[0], "DE");
  assert_string_equal(c.groups[2], "premium");
  assert_int_equal(fedrec_catalogue_blocked_count(&c), 1);
  assert_int_equal(fedrec_catalogue_restricted_count(&c), 3);
  expect_allowed(&c, "", "00100");
  expect_allowed(&c, "DE", "10100");
  expect_allowed(&c, "US", "10110");
  expect_allowed(&c, "DE,premium", "11100");
  expect_allowed(&c, "FR", "00100"); /* FR's only item is not in the catalogue */
  expect_allowed(&c, "D", "00100");  /* a prefix of a group is not the group */
  expect_allowed(&c, "DEX", "00100");
  /* the rules travel in the signed encoding, and decode to the same answers */
  assert_status(fedrec_catalogue_encode(&c, &err), FEDREC_OK);
  assert_status(fedrec_catalogue_decode(&d, c.blob, c.len, &err), FEDREC_OK);
  expect_allowed(&d, "US", "10110");
  expect_allowed(&d, "DE,premium", "11100");
  assert_int_equal(fedrec_catalogue_blocked_count(&d), 1);
  /* withdrawn items stay out whatever the groups */
  d.withdrawn = calloc(5, 1);
  d.withdrawn[2] = 1;
  expect_allowed(&d, "US", "10010");
  fedrec_catalogue_free(&d);
  /* canonical: the same rules in another order give the same hash; no rules, the old encoding */
  uint8_t h[32];
  memcpy(h, c.hash, 32);
  fedrec_catalogue_rules_free(&r);
  assert_status(parse(&r, "d\tUS\nb\tpremium\na\tDE,US\n", "e\n", msg, sizeof msg), FEDREC_OK);
  assert_status(fedrec_catalogue_apply_rules(&c, &r, &unknown, first, sizeof first, &err), FEDREC_OK);
  assert_status(fedrec_catalogue_encode(&c, &err), FEDREC_OK);
  assert_memory_equal(h, c.hash, 32);
  fedrec_catalogue_rules_free(&r);
  assert_status(parse(&r, NULL, NULL, msg, sizeof msg), FEDREC_OK);
  assert_status(fedrec_catalogue_apply_rules(&c, &r, &unknown, first, sizeof first, &err), FEDREC_OK);
  assert_status(fedrec_catalogue_encode(&c, &err), FEDREC_OK);
  catalogue(&d);
  memcpy(d.source, c.source, sizeof d.source); /* each load's temporary file has its own name */
  assert_status(fedrec_catalogue_encode(&d, &err), FEDREC_OK);
  assert_memory_equal(d.hash, c.hash, 32);
  expect_allowed(&c, "", "11111");
  fedrec_catalogue_free(&c), fedrec_catalogue_free(&d);
  assert_true(fedrec_catalogue_groups_valid("DE,premium") && fedrec_catalogue_groups_valid(""));
  assert_false(fedrec_catalogue_groups_valid("DE,") || fedrec_catalogue_groups_valid(",DE") || fedrec_catalogue_groups_valid("D E"));
}

static void test_hostile(void **state) {
  (void)state;
  char *ids[3] = {"a", "b", "c"}, msg[600];
  float content[3] = {1, 2, 3};
  uint32_t up[2] = {0, 2}, down[2] = {2, 0}, out[1] = {3};
  uint8_t flags[3] = {0, 2, 0};
  Fedrec__V1__Catalogue m = FEDREC__V1__CATALOGUE__INIT;
  Fedrec__V1__Availability g1 = FEDREC__V1__AVAILABILITY__INIT, g2 = FEDREC__V1__AVAILABILITY__INIT, *sets[2] = {&g1, &g2};
  m.version = 1, m.dim = 1, m.n_ids = 3, m.ids = ids;
  m.content.data = (uint8_t *)content, m.content.len = sizeof content;
  g1.group = "DE", g1.items = up, g1.n_items = 2;
  g2.group = "US", g2.items = up, g2.n_items = 2;
  m.availability = sets, m.n_availability = 2;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_OK);
  g2.group = "DE"; /* a group twice */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "out of order or repeats"));
  g2.group = "AT"; /* out of order */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  g2.group = "US", g2.items = down; /* items not increasing */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "group 'US' lists item 0"));
  g2.items = out, g2.n_items = 1; /* an item the catalogue does not have */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "lists item 3 (3 items"));
  g2.items = up, g2.n_items = 2, g2.group = "U S";
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "group name is not valid"));
  g2.group = "US";
  m.blocked.data = flags, m.blocked.len = 3; /* a flag of 2 */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "item 1's blocked flag"));
  m.blocked.len = 2; /* not one per item */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "2 blocked flags for 3 items"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_files),
      cmocka_unit_test(test_allowed),
      cmocka_unit_test(test_hostile),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
