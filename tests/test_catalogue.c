/* The catalogue artefact (protos/catalogue.h): loading from files with clear errors, the
 * encoding and its hostile-input checks, and following an updated catalogue. */
#include <math.h>

#include "catalogue.h"
#include "catalogue_util.h"
#include "test_util.h"

static void load_csv(fedrec_catalogue *c, const char *text, fedrec_status want, const char *msg) {
  char path[64], spec[128];
  write_temp(path, sizeof path, ".csv", text, strlen(text));
  snprintf(spec, sizeof spec, "csv:%s", path);
  fedrec_error err = {0};
  fedrec_status st = fedrec_catalogue_load(c, spec, &err);
  if (st != want) fail_msg("'%s': status %d (%s), wanted %d", text, st, err.msg, want);
  if (msg && !strstr(err.msg, msg)) fail_msg("'%s': message '%s' lacks '%s'", text, err.msg, msg);
  unlink(path);
}

static void test_load_errors(void **state) {
  (void)state;
  fedrec_catalogue c;
  load_csv(&c, "item,f1,f2\nb,1,2\na,3,4\n", FEDREC_OK, NULL);
  assert_int_equal(fedrec_catalogue_items(&c), 2);
  assert_string_equal(fedrec_idmap_name(c.ds.items, 0), "b"); /* the file's order */
  assert_int_equal(c.ds.content_dim, 2);
  assert_true(c.ds.content[2] == 3.0f);
  fedrec_catalogue_free(&c);
  load_csv(&c, "item,f1,f2\na,1,2\na,3,4\n", FEDREC_ERR_PARSE, ":3: item 'a' appears twice");
  load_csv(&c, "item,f1,f2\na,1,nan\n", FEDREC_ERR_PARSE, "not a finite number");
  load_csv(&c, "item,f1,f2\na,1\n", FEDREC_ERR_PARSE, NULL);
  load_csv(&c, "item,f1\n", FEDREC_ERR_EMPTY, "no items");
  fedrec_error err = {0};
  assert_status(fedrec_catalogue_load(&c, "npy:/nonexistent.npy", &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "the matrix and the id list"));
  assert_status(fedrec_catalogue_load(&c, "parquet:x", &err), FEDREC_ERR_ARG);
  /* a .npy whose rows and ids disagree */
  char ids[64], spec[300];
  write_temp(ids, sizeof ids, ".txt", "a\nb\nc\nd\ne\nf\ng\n", 14);
  snprintf(spec, sizeof spec, "npy:%s/tests/fuzz/corpus/npy/f4.npy,%s", FEDREC_SOURCE_DIR, ids);
  fedrec_status st = fedrec_catalogue_load(&c, spec, &err);
  assert_status(st, FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "ids but"));
  unlink(ids);
}

static void encode_ok(fedrec_catalogue *c) {
  fedrec_error err;
  assert_status(fedrec_catalogue_encode(c, &err), FEDREC_OK);
}

static void test_encoding(void **state) {
  (void)state;
  fedrec_catalogue c, d;
  fedrec_error err;
  load_csv(&c, "item,f1,f2\nb,1,2\na,3,4\nz,0,0.5\n", FEDREC_OK, NULL);
  encode_ok(&c);
  assert_status(fedrec_catalogue_decode(&d, c.blob, c.len, &err), FEDREC_OK);
  assert_memory_equal(c.hash, d.hash, 32);
  assert_int_equal(fedrec_catalogue_items(&d), 3);
  assert_string_equal(fedrec_idmap_name(d.ds.items, 2), "z");
  assert_memory_equal(c.ds.content, d.ds.content, 6 * sizeof(float));
  /* the encoding is canonical: decoding and encoding again gives the same bytes */
  encode_ok(&d);
  assert_int_equal(c.len, d.len);
  assert_memory_equal(c.blob, d.blob, c.len);
  fedrec_catalogue_free(&d);
  /* bytes the caller keeps (a device's store): the same catalogue and hash, no copy */
  assert_status(fedrec_catalogue_decode_stored(&d, c.blob, c.len, &err), FEDREC_OK);
  assert_null(d.blob);
  assert_int_equal(d.len, c.len);
  assert_memory_equal(d.hash, c.hash, 32);
  assert_memory_equal(c.ds.content, d.ds.content, 6 * sizeof(float));
  assert_string_equal(fedrec_idmap_name(d.ds.items, 1), "a");
  fedrec_catalogue_free(&d);
  assert_status(fedrec_catalogue_decode_stored(&d, c.blob, c.len - 1, &err), FEDREC_ERR_PARSE);
  /* every truncation is refused or decodes to something that passes the checks */
  for (size_t n = 0; n < c.len; n++)
    if (!fedrec_catalogue_decode(&d, c.blob, n, &err)) fedrec_catalogue_free(&d);
  fedrec_catalogue_free(&c);
}

static void test_hostile(void **state) {
  (void)state;
  char *ids[2] = {"a", "b"}, *dup[2] = {"a", "a"}, *empty[2] = {"a", ""};
  float content[4] = {1, 2, 3, 4};
  uint8_t flags[2] = {0, 2};
  char msg[sizeof(fedrec_error)];
  Fedrec__V1__Catalogue m = FEDREC__V1__CATALOGUE__INIT;
  m.version = 1, m.dim = 2, m.n_ids = 2, m.ids = ids;
  m.content.data = (uint8_t *)content, m.content.len = sizeof content;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_OK);
  m.ids = dup;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "appears twice"));
  m.ids = empty;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  m.ids = ids;
  m.content.len = 12; /* rows and ids disagree */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "bytes of content"));
  m.content.len = sizeof content;
  content[3] = NAN;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "not finite"));
  content[3] = 4;
  m.withdrawn.data = flags, m.withdrawn.len = 2;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  m.withdrawn.len = 1;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  m.withdrawn.len = 0;
  m.dim = 0;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  m.dim = 2, m.version = 0;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  m.version = 1;
  /* int8 content: each step a power of two (a found input had a step just under 2^122 and
   * q = 64, finite, whose canonical re-encoding 64 * 2^122 overflowed) */
  int8_t q[4] = {28, 127, -3, 64};
  float steps[2] = {0.25f, 0x1.fp121f};
  m.content.data = (uint8_t *)q, m.content.len = sizeof q, m.content_bits = 8;
  m.scales.data = (uint8_t *)steps, m.scales.len = sizeof steps;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "item 1's step is not 0 or a finite power of two"));
  steps[1] = 0x1p121f;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_OK);
  steps[1] = 0;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_OK);
  uint8_t junk[7] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  fedrec_catalogue c;
  fedrec_error err;
  assert_status(fedrec_catalogue_decode(&c, junk, sizeof junk, &err), FEDREC_ERR_PARSE);
}

static void test_follow(void **state) {
  (void)state;
  fedrec_catalogue prev, next;
  fedrec_error err;
  int32_t added, gone;
  load_csv(&prev, "item,f1,f2\na,1,0\nb,0,1\nc,1,1\n", FEDREC_OK, NULL);
  encode_ok(&prev);
  /* b withdrawn, c's content re-encoded, d and e new (in the file before a: order is kept) */
  load_csv(&next, "item,f1,f2\nd,5,5\na,1,0\nc,2,2\ne,6,6\n", FEDREC_OK, NULL);
  assert_status(fedrec_catalogue_follow(&next, &prev, &added, &gone, &err), FEDREC_OK);
  assert_int_equal(added, 2);
  assert_int_equal(gone, 1);
  assert_int_equal(next.version, 2);
  assert_int_equal(fedrec_catalogue_items(&next), 5);
  const char *order[5] = {"a", "b", "c", "d", "e"};
  for (int i = 0; i < 5; i++) assert_string_equal(fedrec_idmap_name(next.ds.items, i), order[i]);
  assert_int_equal(next.withdrawn[1], 1);
  assert_int_equal(next.withdrawn[0] + next.withdrawn[2] + next.withdrawn[3] + next.withdrawn[4], 0);
  assert_true(next.ds.content[1 * 2] == 0.0f && next.ds.content[1 * 2 + 1] == 1.0f); /* b keeps its content */
  assert_true(next.ds.content[2 * 2] == 2.0f);                                       /* c's new content */
  assert_true(next.ds.content[3 * 2] == 5.0f && next.ds.content[4 * 2] == 6.0f);
  encode_ok(&next);
  fedrec_catalogue back;
  assert_status(fedrec_catalogue_decode(&back, next.blob, next.len, &err), FEDREC_OK);
  assert_int_equal(back.withdrawn[1], 1);
  fedrec_catalogue_free(&back);
  fedrec_catalogue_free(&next);
  /* the same files again: nothing added or withdrawn, the same encoding at the same version */
  load_csv(&next, "item,f1,f2\na,1,0\nb,0,1\nc,1,1\n", FEDREC_OK, NULL);
  assert_status(fedrec_catalogue_follow(&next, &prev, &added, &gone, &err), FEDREC_OK);
  assert_int_equal(added + gone, 0);
  next.version = prev.version;
  snprintf(next.source, sizeof next.source, "%s", prev.source); /* the same setting (here: another temporary file) */
  encode_ok(&next);
  assert_memory_equal(next.hash, prev.hash, 32);
  fedrec_catalogue_free(&next);
  /* another encoder's dimension is refused, saying why */
  load_csv(&next, "item,f1,f2,f3\na,1,0,0\n", FEDREC_OK, NULL);
  assert_status(fedrec_catalogue_follow(&next, &prev, &added, &gone, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "content dimension 3"));
  fedrec_catalogue_free(&next);
  fedrec_catalogue_free(&prev);
}

/* Half and int8 storage: what the device decodes is exactly what the coordinator trains on,
 * encoding again changes nothing, and the bytes shrink. */
static void test_precision(void **state) {
  (void)state;
  fedrec_error err;
  size_t full = 0;
  for (int bits = 32; bits >= 8; bits /= 2) {
    fedrec_catalogue c, d;
    load_csv(&c, "item,f1,f2,f3\na,1.1,-2.7,0.0031\nb,300.5,0.2,-0.7\nz,0,0,0\n", FEDREC_OK, NULL);
    assert_status(fedrec_catalogue_set_precision(&c, bits, &err), FEDREC_OK);
    encode_ok(&c);
    if (bits == 32) full = c.len;
    else assert_true(c.len < full);
    assert_status(fedrec_catalogue_decode(&d, c.blob, c.len, &err), FEDREC_OK);
    assert_int_equal(d.bits, bits);
    assert_memory_equal(c.ds.content, d.ds.content, 9 * sizeof(float));
    assert_near(d.ds.content[3], 300.5, bits == 8 ? 2.0 : 0.5);
    encode_ok(&d);
    assert_int_equal(c.len, d.len);
    assert_memory_equal(c.blob, d.blob, c.len);
    fedrec_catalogue_free(&c), fedrec_catalogue_free(&d);
  }
  fedrec_catalogue c;
  load_csv(&c, "item,f1\na,70000\n", FEDREC_OK, NULL);
  assert_status(fedrec_catalogue_set_precision(&c, 16, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "beyond half precision"));
  fedrec_catalogue_free(&c);
}

static void test_titles(void **state) {
  (void)state;
  fedrec_catalogue c;
  char content[64], titles[64], spec[4200];
  const char *ct = "item,f1\nm1,1\nm2,2\n", *tt = "m2\tThe \"Second\"\nm9\tnot in the catalogue\nm1\tFirst\x01\n";
  write_temp(content, sizeof content, ".csv", ct, strlen(ct));
  write_temp(titles, sizeof titles, ".tsv", tt, strlen(tt));
  snprintf(spec, sizeof spec, "csv:%s,%s", content, titles);
  fedrec_error err;
  assert_status(fedrec_catalogue_load(&c, spec, &err), FEDREC_OK);
  assert_string_equal(c.titles[0], "First ");
  assert_string_equal(c.titles[1], "The \"Second\"");
  encode_ok(&c);
  fedrec_catalogue d;
  assert_status(fedrec_catalogue_decode(&d, c.blob, c.len, &err), FEDREC_OK);
  assert_string_equal(d.titles[1], "The \"Second\"");
  fedrec_catalogue_free(&d);
  fedrec_catalogue_free(&c);
  /* MovieLens titles, when the data is here */
  const char *dir = shared_data_dir();
  if (!dir) {
    printf("skipped: MovieLens titles (no ../shared/data)\n");
  } else {
    snprintf(spec, sizeof spec, "movielens:%s/ml-latest-small,dim=16", dir);
    assert_status(fedrec_catalogue_load(&c, spec, &err), FEDREC_OK);
    int32_t i = fedrec_idmap_get(c.ds.items, "1", 1, 0);
    assert_true(i >= 0);
    assert_string_equal(c.titles[i], "Toy Story (1995)");
    assert_null(c.ds.users);
    fedrec_catalogue_free(&c);
  }
  unlink(content), unlink(titles);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_load_errors), cmocka_unit_test(test_encoding), cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_follow), cmocka_unit_test(test_titles), cmocka_unit_test(test_precision),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
