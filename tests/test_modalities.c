/* Multimodal content (docs/MODEL.md "Multimodal content"): each modality normalised on its
 * own, the model blob naming the head's blocks (and refusing malformed ones), a modality added
 * to a model (a zero block: no item vector moves), and the catalogue carrying modalities and
 * their mask (canonical, hostile encodings refused, a modality appended by an update). */
#include <math.h>

#include "catalogue_util.h"
#include "fedrec/content.h"
#include "fedrec/synth.h"
#include "test_util.h"

/* 3 items, modalities a (2 dims) and b (3 dims); item 1 lacks b. */
static void small(fedrec_dataset *ds) {
  static const float C[15] = {3, 4, 1, 2, 2, /**/ 1, 0, 0, 0, 0, /**/ 0, 2, 1, 1, 0};
  memset(ds, 0, sizeof *ds);
  ds->items = fedrec_idmap_new();
  for (int i = 0; i < 3; i++) fedrec_idmap_get(ds->items, i == 0 ? "x" : i == 1 ? "y" : "z", 1, 1);
  ds->R.cols = 3;
  ds->content = malloc(sizeof C), memcpy(ds->content, C, sizeof C);
  ds->content_dim = 5;
  ds->has_content = malloc(3), memset(ds->has_content, 1, 3);
  ds->n_modalities = 2;
  ds->modalities[0] = (fedrec_modality){"a", 0, 2}, ds->modalities[1] = (fedrec_modality){"b", 2, 3};
  ds->modality_mask = malloc(6);
  memcpy(ds->modality_mask, (uint8_t[]){1, 1, 1, 0, 1, 1}, 6);
}

static void test_normalise(void **state) {
  (void)state;
  fedrec_dataset ds;
  small(&ds);
  fedrec_modalities_normalise(&ds, FEDREC_NORM_L2);
  assert_float_equal(ds.content[0], 0.6, 1e-6), assert_float_equal(ds.content[1], 0.8, 1e-6);
  assert_float_equal(ds.content[2], 1 / 3.0, 1e-6); /* (1, 2, 2) / 3 */
  for (int j = 2; j < 5; j++) assert_true(ds.content[5 + j] == 0); /* item 1 lacks b */
  fedrec_dataset_free(&ds);
  small(&ds);
  fedrec_modalities_normalise(&ds, FEDREC_NORM_STANDARD);
  for (int j = 0; j < 5; j++) { /* each column centred over the items that have the modality */
    double s = 0;
    for (int i = 0; i < 3; i++) s += ds.modality_mask[i * 2 + (j >= 2)] ? ds.content[i * 5 + j] : 0;
    assert_true(fabs(s) < 1e-5);
  }
  double norms = 0; /* b's mean norm over items 0 and 2 is 1 */
  for (int i = 0; i < 3; i += 2) norms += sqrt(pow(ds.content[i * 5 + 2], 2) + pow(ds.content[i * 5 + 3], 2) + pow(ds.content[i * 5 + 4], 2));
  assert_float_equal(norms / 2, 1.0, 1e-5);
  fedrec_error err;
  fedrec_norm n;
  assert_status(fedrec_norm_parse(&n, "cosine", &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "expected l2 or standard"));
  fedrec_dataset_free(&ds);
}

static void test_model(void **state) {
  (void)state;
  fedrec_dataset ds, big;
  small(&ds);
  fedrec_error err;
  fedrec_model m, back;
  int32_t all[3] = {0, 1, 2};
  assert_status(fedrec_model_init(&m, 3, 4, ds.content, 5, 1, all, 1, 9, 0.3f, &err), FEDREC_OK);
  assert_status(fedrec_model_set_modalities(&m, &ds, &err), FEDREC_OK);
  size_t n = fedrec_model_encoded_size(&m);
  uint8_t *b = malloc(n), *b2 = malloc(n);
  fedrec_model_encode(b, &m, 7);
  assert_int_equal(b[32], 2); /* flags: modalities */
  assert_status(fedrec_model_decode(&back, NULL, b, n, ds.content, 5, &err), FEDREC_OK);
  assert_int_equal(back.n_modalities, 2);
  assert_string_equal(back.modalities[1].name, "b");
  assert_int_equal(back.modalities[1].offset, 2);
  assert_status(fedrec_model_check_modalities(&back, &ds, &err), FEDREC_OK);
  fedrec_model_encode(b2, &back, 7);
  assert_memory_equal(b, b2, n);
  fedrec_model_free(&back);
  /* hostile headers: a name not padded, dimensions not adding up, a name twice, 9 modalities */
  struct { size_t at; uint8_t v; const char *why; } bad[] = {
      {44 + 3, 'x', "not padded"}, {40, 3, "add up"}, {80, 'a', "named twice"}, {36, 9, "1 to 8"}};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    memcpy(b2, b, n);
    b2[bad[k].at] = bad[k].v;
    assert_status(fedrec_model_decode(&back, NULL, b2, n, ds.content, 5, &err), FEDREC_ERR_PARSE);
    if (!strstr(err.msg, bad[k].why)) fail_msg("case %zu: '%s' lacks '%s'", k, err.msg, bad[k].why);
  }
  /* another catalogue's modalities: refused by name */
  strcpy(ds.modalities[1].name, "c");
  assert_status(fedrec_model_check_modalities(&m, &ds, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "[a:2,b:3], the catalogue's [a:2,c:3]"));
  strcpy(ds.modalities[1].name, "b");
  /* a third modality added: H grows a zero block, no item vector moves */
  memset(&big, 0, sizeof big);
  big.content_dim = 7, big.n_modalities = 3, big.content = calloc(21, sizeof(float));
  memcpy(big.modalities, ds.modalities, sizeof ds.modalities);
  big.modalities[2] = (fedrec_modality){"c", 5, 2};
  for (int i = 0; i < 3; i++) memcpy(big.content + i * 7, ds.content + i * 5, 5 * sizeof(float)), big.content[i * 7 + 5] = 1;
  float V0[12], V1[12];
  fedrec_model_item_vectors(V0, &m);
  big.modalities[0].dim = 3; /* not m's a:2 */
  assert_status(fedrec_model_add_modalities(&m, &big, &err), FEDREC_ERR_ARG);
  big.modalities[0].dim = 2;
  assert_int_equal(m.p, 5);
  assert_status(fedrec_model_add_modalities(&m, &big, &err), FEDREC_OK);
  assert_int_equal(m.p, 7);
  fedrec_model_item_vectors(V1, &m);
  for (int k = 0; k < 12; k++) assert_float_equal(V1[k], V0[k], 1e-6);
  for (int r = 0; r < 4; r++) assert_true(m.H[r * 7 + 5] == 0 && m.H[r * 7 + 6] == 0);
  free(b), free(b2), free(big.content);
  fedrec_model_free(&m);
  fedrec_dataset_free(&ds);
}

/* A catalogue over small()'s items, encoded. */
static void catalogue_of(fedrec_catalogue *c, fedrec_dataset *ds) {
  memset(c, 0, sizeof *c);
  c->version = 1;
  c->ds = *ds;
  memset(ds, 0, sizeof *ds);
  fedrec_error err;
  assert_status(fedrec_catalogue_encode(c, &err), FEDREC_OK);
}

static void test_catalogue(void **state) {
  (void)state;
  fedrec_dataset ds;
  fedrec_catalogue c, d;
  fedrec_error err;
  small(&ds);
  ds.content[7] = ds.content[8] = ds.content[9] = 0; /* item 1's missing block is zero */
  catalogue_of(&c, &ds);
  assert_status(fedrec_catalogue_decode(&d, c.blob, c.len, &err), FEDREC_OK);
  assert_int_equal(d.ds.n_modalities, 2);
  assert_string_equal(d.ds.modalities[1].name, "b");
  assert_memory_equal(d.ds.modality_mask, c.ds.modality_mask, 6);
  fedrec_catalogue_free(&d);
  /* the mask is left out when every item has every modality (canonical) */
  memset(c.ds.modality_mask, 1, 6);
  assert_status(fedrec_catalogue_encode(&c, &err), FEDREC_OK);
  assert_status(fedrec_catalogue_decode(&d, c.blob, c.len, &err), FEDREC_OK);
  assert_int_equal(d.ds.modality_mask[3], 1);
  fedrec_catalogue_free(&d);
  c.ds.modality_mask[3] = 0;
  /* an update that appends a modality follows; one that reorders is refused, naming both */
  fedrec_dataset more;
  small(&more);
  more.content_dim = 7, more.n_modalities = 3, more.modalities[2] = (fedrec_modality){"c", 5, 2};
  more.content = realloc(more.content, 21 * sizeof(float)), more.modality_mask = realloc(more.modality_mask, 9);
  for (int i = 2; i >= 0; i--) {
    memmove(more.content + i * 7, more.content + i * 5, 5 * sizeof(float)), more.content[i * 7 + 5] = 1, more.content[i * 7 + 6] = 0;
    memmove(more.modality_mask + i * 3, (uint8_t[]){1, 1, 1}, 3);
  }
  fedrec_catalogue next = {.version = 1};
  next.ds = more;
  int32_t added, withdrawn;
  assert_status(fedrec_catalogue_follow(&next, &c, &added, &withdrawn, &err), FEDREC_OK);
  assert_int_equal(next.ds.content_dim, 7);
  assert_int_equal(next.ds.n_modalities, 3);
  assert_status(fedrec_catalogue_encode(&next, &err), FEDREC_OK);
  assert_status(fedrec_catalogue_follow(&c, &next, &added, &withdrawn, &err), FEDREC_ERR_ARG); /* c drops one */
  assert_non_null(strstr(err.msg, "modalities [a:2,b:3], but the served catalogue (version 2) has [a:2,b:3,c:2]"));
  fedrec_catalogue_free(&next);
  fedrec_catalogue_free(&c);
}

static void test_hostile(void **state) {
  (void)state;
  char *ids[2] = {"a", "b"}, msg[600];
  float content[6] = {1, 2, 3, 4, 0, 0};
  uint8_t mask[4] = {1, 1, 1, 0};
  Fedrec__V1__Catalogue m = FEDREC__V1__CATALOGUE__INIT;
  Fedrec__V1__Modality x = FEDREC__V1__MODALITY__INIT, y = FEDREC__V1__MODALITY__INIT, *mods[2] = {&x, &y};
  m.version = 1, m.dim = 3, m.n_ids = 2, m.ids = ids;
  m.content.data = (uint8_t *)content, m.content.len = sizeof content;
  x.name = "video", x.dim = 2, y.name = "audio", y.dim = 1;
  m.modalities = mods, m.n_modalities = 2;
  m.modality_mask.data = mask, m.modality_mask.len = 4;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_OK);
  content[5] = 1; /* item 1 lacks audio, but its block is not zero */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "lacks modality 'audio' but its block is not zero"));
  content[5] = 0, y.dim = 2; /* 4 dimensions for a content of 3 */
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "add up to 4, the content has 3"));
  y.dim = 1, y.name = "video";
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "'video' appears twice"));
  y.name = "a b";
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  y.name = "audio", mask[2] = 2;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  mask[2] = 1, m.modality_mask.len = 3;
  assert_status(decode_built(&m, msg, sizeof msg), FEDREC_ERR_PARSE);
  assert_non_null(strstr(msg, "3 modality flags for 2 items and 2 modalities"));
}

static void test_list_file(void **state) {
  (void)state;
  const char *cases[][2] = {
      {"video\tv.npy\n", "list.tsv:1: expected 'NAME<TAB>EMB.npy<TAB>IDS.txt'"},
      {"vi deo\tv.npy\tv.txt\n", "list.tsv:1: expected"},
      {"v\ta.npy\ta.txt\nv\tb.npy\tb.txt\n", "list.tsv:2: modality v twice"},
      {"\n", "no modality"},
      {"v\t/nonexistent.npy\t/nonexistent.txt\n", "/nonexistent.txt"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char dir[] = "/tmp/fedrec_modal_XXXXXX", path[64], spec[80];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/list.tsv", dir);
    FILE *f = fopen(path, "w");
    fputs(cases[k][0], f), fclose(f);
    snprintf(spec, sizeof spec, "modalities:%s", path);
    fedrec_catalogue c;
    fedrec_error err = {0};
    assert_int_not_equal(fedrec_catalogue_load(&c, spec, &err), FEDREC_OK);
    if (!strstr(err.msg, cases[k][1])) fail_msg("case %zu: '%s' lacks '%s'", k, err.msg, cases[k][1]);
    unlink(path), rmdir(dir);
  }
}

/* The generator's modalities: strong, weak, noise, each of dim, missing for 30%, 10%, 0%. */
static void test_synthetic(void **state) {
  (void)state;
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  sc.users = 200, sc.items = 1000, sc.content_dim = 8, sc.modalities = 3, sc.threads = 1;
  fedrec_dataset ds;
  fedrec_error err;
  assert_status(fedrec_synth_generate(&ds, &sc, &err), FEDREC_OK);
  assert_int_equal(ds.content_dim, 24);
  int have[3] = {0};
  for (int i = 0; i < 1000; i++)
    for (int m = 0; m < 3; m++) have[m] += ds.modality_mask[i * 3 + m];
  print_message("synthetic modalities: strong %d, weak %d, noise %d of 1000 items\n", have[0], have[1], have[2]);
  assert_true(have[0] > 620 && have[0] < 780 && have[1] > 860 && have[1] < 940 && have[2] == 1000);
  assert_status(fedrec_modalities_select(&ds, "noise,strong", FEDREC_NORM_L2, &err), FEDREC_OK);
  assert_int_equal(ds.n_modalities, 2);
  assert_string_equal(ds.modalities[0].name, "strong"); /* the data set's order */
  assert_int_equal(ds.content_dim, 16);
  assert_status(fedrec_modalities_select(&ds, "weak", FEDREC_NORM_L2, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "no modality 'weak'"));
  fedrec_dataset_free(&ds);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_normalise), cmocka_unit_test(test_model),     cmocka_unit_test(test_catalogue),
      cmocka_unit_test(test_hostile),   cmocka_unit_test(test_list_file), cmocka_unit_test(test_synthetic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
