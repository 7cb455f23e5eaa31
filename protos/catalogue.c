/* The catalogue artefact (see catalogue.h): building it from files, its wire form, and its
 * successor when the files change. */
#include "catalogue.h"
#include "catalogue_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "fedrec/crypto.h"
#include "fedrec/synth.h"

_Static_assert(sizeof(float) == 4, "content is sent as IEEE float32");

void fedrec_catalogue_free(fedrec_catalogue *c) {
  if (!c) return;
  int32_t n = fedrec_catalogue_items(c);
  if (c->titles)
    for (int32_t i = 0; i < n; i++) free(c->titles[i]);
  free(c->titles);
  free(c->withdrawn);
  fedrec__catalogue_rules_clear(c);
  free(c->blob);
  fedrec_dataset_free(&c->ds);
  memset(c, 0, sizeof *c);
}

/* The interactions a data set's loader read are not the catalogue's: only items stay. */
static void keep_items_only(fedrec_dataset *ds) {
  int32_t n = fedrec_idmap_size(ds->items);
  fedrec_csr_free(&ds->R);
  fedrec_idmap_free(ds->users);
  ds->users = NULL;
  memset(&ds->R, 0, sizeof ds->R);
  ds->R.cols = n;
}

static fedrec_status read_titles(fedrec_catalogue *c, const char *path, fedrec_titles_format f, fedrec_error *err) {
  int32_t n = fedrec_catalogue_items(c);
  c->titles = calloc((size_t)n + 1, sizeof *c->titles);
  if (!c->titles) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "titles");
  char *buf = NULL;
  int64_t len = 0;
  fedrec_status st = fedrec_read_file(path, &buf, &len, err);
  if (!st) st = fedrec_parse_titles(c->titles, c->ds.items, f, buf, len, path, err);
  free(buf);
  return st;
}

/* "PATH[,PATH2[,PATH3]]" into up to three parts (paths may not hold commas). */
static int split_paths(const char *s, char parts[3][512]) {
  int k = 0;
  for (const char *p = s; k < 3;) {
    const char *c = strchr(p, ',');
    size_t n = c ? (size_t)(c - p) : strlen(p);
    if (n == 0 || n >= 512) return -1;
    memcpy(parts[k], p, n);
    parts[k++][n] = 0;
    if (!c) return k;
    p = c + 1;
  }
  return -1;
}

/* The ids of a content CSV's rows, in order (the first field of each line after the header). */
static fedrec_status csv_ids(fedrec_dataset *ds, const char *path, fedrec_error *err) {
  char *buf = NULL;
  int64_t len = 0;
  fedrec_status st = fedrec_read_file(path, &buf, &len, err);
  if (st) return st;
  long long line = 1;
  const char *p = memchr(buf, '\n', (size_t)len), *end = buf + len;
  while (!st && p && ++p < end) {
    line++;
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end;
    const char *comma = memchr(p, ',', (size_t)(e - p));
    size_t n = (size_t)((comma ? comma : e) - p);
    if (n && p[n - 1] == '\r') n--;
    if (e > p && !(e - p == 1 && *p == '\r')) {
      if (n == 0 || n > FEDREC_MAX_ID_LEN)
        st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: an item id of 1 to %d bytes first", path, line, FEDREC_MAX_ID_LEN);
      else if (fedrec_idmap_get(ds->items, p, n, 0) >= 0)
        st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: item '%.*s' appears twice", path, line, (int)n, p);
      else if (fedrec_idmap_get(ds->items, p, n, 1) < 0)
        st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: item ids", path);
    }
    p = nl;
  }
  free(buf);
  if (!st && fedrec_idmap_size(ds->items) == 0) st = fedrec_error_set(err, FEDREC_ERR_EMPTY, "%s: no items", path);
  ds->R.cols = fedrec_idmap_size(ds->items);
  return st;
}

static fedrec_status load_files(fedrec_catalogue *c, const char *kind, const char *rest, fedrec_error *err) {
  char parts[3][512];
  int np = split_paths(rest, parts);
  fedrec_status st;
  if (!strcmp(kind, "npy")) {
    if (np < 2) return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue npy:EMB.npy,IDS.txt[,TITLES.tsv]: give the matrix and the id list");
    char *ib = NULL;
    int64_t ilen = 0;
    st = fedrec_read_file(parts[1], &ib, &ilen, err);
    if (!st) st = fedrec_parse_id_list(c->ds.items, ib, ilen, parts[1], err);
    free(ib);
    c->ds.R.cols = fedrec_idmap_size(c->ds.items);
    if (!st) st = fedrec_attach_npy(&c->ds, parts[0], parts[1], err);
  } else {
    if (np < 1 || np > 2) return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue csv:CONTENT.csv[,TITLES.tsv]: give the content file");
    st = csv_ids(&c->ds, parts[0], err);
    if (!st) st = fedrec_attach_content_csv(&c->ds, parts[0], err);
  }
  int titles = !strcmp(kind, "npy") ? 2 : 1;
  if (!st && np > titles) st = read_titles(c, parts[titles], FEDREC_TITLES_TSV, err);
  return st;
}

/* movielens:DIR[,dim=P][,modalities=A+B...][,norm=l2|standard] and lastfm:DIR[,...] */
static fedrec_status load_dataset(fedrec_catalogue *c, int movielens, const char *rest, fedrec_error *err) {
  char dir[512], mods[256] = "", norm_s[16] = "l2";
  int32_t p = 64;
  const char *opt = strchr(rest, ',');
  size_t n = opt ? (size_t)(opt - rest) : strlen(rest);
  if (n == 0 || n >= sizeof dir) return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue %s:DIR: give the folder", movielens ? "movielens" : "lastfm");
  memcpy(dir, rest, n);
  dir[n] = 0;
  for (const char *o = opt; o;) {
    const char *e = strchr(o + 1, ','), *end = e ? e : o + strlen(o);
    size_t len = (size_t)(end - o - 1);
    char *stop;
    if (len > 4 && !strncmp(o + 1, "dim=", 4)) {
      long v = strtol(o + 5, &stop, 10);
      if (stop != end || v < 1 || v > FEDREC_MAX_CONTENT_DIM)
        return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue: dim '%.*s' is not a whole number in [1, %d]", (int)(len - 4), o + 5, FEDREC_MAX_CONTENT_DIM);
      p = (int32_t)v;
    } else if (len > 11 && !strncmp(o + 1, "modalities=", 11) && len - 11 < sizeof mods) {
      memcpy(mods, o + 12, len - 11), mods[len - 11] = 0;
      for (char *q = mods; *q; q++) *q = *q == '+' ? ',' : *q; /* fedrec_content_modalities' list */
    } else if (len > 5 && !strncmp(o + 1, "norm=", 5) && len - 5 < sizeof norm_s) {
      memcpy(norm_s, o + 6, len - 5), norm_s[len - 5] = 0;
    } else {
      return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue %s: unknown option '%.*s' (dim=P, modalities=A+B..., norm=l2|standard)",
                              movielens ? "movielens" : "lastfm", (int)len, o + 1);
    }
    o = e;
  }
  fedrec_norm norm;
  fedrec_status st = fedrec_norm_parse(&norm, norm_s, err);
  if (st) return st;
  fedrec_dataset_free(&c->ds);
  st = movielens ? fedrec_load_movielens(&c->ds, dir, 4.0, mods[0] ? 0 : p, err) : fedrec_load_lastfm(&c->ds, dir, mods[0] ? 0 : p, err);
  if (!st && mods[0]) st = fedrec_content_modalities(&c->ds, movielens ? "movielens" : "lastfm", dir, mods, norm, err);
  if (st) return st;
  keep_items_only(&c->ds);
  char path[600];
  snprintf(path, sizeof path, "%s/%s", dir, movielens ? "movies.csv" : "artists.dat");
  return read_titles(c, path, movielens ? FEDREC_TITLES_MOVIELENS : FEDREC_TITLES_LASTFM, err);
}

fedrec_status fedrec_catalogue_load(fedrec_catalogue *c, const char *spec, fedrec_error *err) {
  memset(c, 0, sizeof *c);
  c->version = 1;
  snprintf(c->source, sizeof c->source, "%s", spec);
  const char *colon = strchr(spec, ':');
  char kind[16];
  size_t kn = colon ? (size_t)(colon - spec) : strlen(spec);
  if (kn >= sizeof kind) kn = sizeof kind - 1;
  memcpy(kind, spec, kn);
  kind[kn] = 0;
  const char *rest = colon ? colon + 1 : "";
  fedrec_status st;
  if (!strcmp(kind, "synthetic")) {
    fedrec_synth_config sc;
    fedrec_synth_defaults(&sc);
    sc.threads = 1;
    st = colon ? fedrec_synth_parse(&sc, rest, err) : FEDREC_OK;
    if (!st) st = fedrec_synth_generate(&c->ds, &sc, err);
    if (!st) keep_items_only(&c->ds);
  } else if (!strcmp(kind, "npy") || !strcmp(kind, "csv")) {
    c->ds.items = fedrec_idmap_new();
    st = c->ds.items ? load_files(c, kind, rest, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
  } else if (!strcmp(kind, "movielens") || !strcmp(kind, "lastfm")) {
    st = load_dataset(c, kind[0] == 'm', rest, err);
  } else if (!strcmp(kind, "modalities")) {
    c->ds.items = fedrec_idmap_new();
    st = c->ds.items ? fedrec__catalogue_load_modalities(c, rest, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
  } else {
    st = fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue '%s': give synthetic[:...], npy:EMB.npy,IDS.txt[,TITLES.tsv], "
                          "csv:CONTENT.csv[,TITLES.tsv], movielens:DIR, lastfm:DIR or modalities:LIST", spec);
  }
  if (!st && (!c->ds.content || c->ds.content_dim < 1))
    st = fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue '%s' has no content embeddings", spec);
  if (!st && fedrec_catalogue_items(c) < 1) st = fedrec_error_set(err, FEDREC_ERR_EMPTY, "catalogue '%s' has no items", spec);
  if (st) fedrec_catalogue_free(c);
  return st;
}

fedrec_status fedrec_catalogue_set_precision(fedrec_catalogue *c, int bits, fedrec_error *err) {
  size_t cells = (size_t)fedrec_catalogue_items(c) * (size_t)c->ds.content_dim;
  for (size_t k = 0; bits == 16 && k < cells; k++)
    if (fabsf(c->ds.content[k]) > 65504.0f)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue: item %zu's embedding holds %g, beyond half precision (65504): "
                              "use catalogue-precision 8 or 32", k / (size_t)c->ds.content_dim, c->ds.content[k]);
  c->bits = bits == 16 || bits == 8 ? bits : 32;
  return fedrec_content_quantize(c->ds.content, fedrec_catalogue_items(c), c->ds.content_dim, c->bits, err);
}

/* The content in its compact form (bits 16 or 8; the content is already rounded to it),
 * malloc'd; for 8, the per-item steps too. */
static uint8_t *compact_content(const fedrec_catalogue *c, float **steps) {
  size_t n = (size_t)fedrec_catalogue_items(c), p = (size_t)c->ds.content_dim, cells = n * p;
  const float *x = c->ds.content;
  *steps = NULL;
  if (c->bits == 16) { /* CPU support was checked when the content was rounded to it */
    fedrec_error err;
    uint16_t *h = malloc(cells * sizeof *h + 1);
    if (h && fedrec_half_from_float(h, x, cells, &err)) free(h), h = NULL;
    return (uint8_t *)h;
  }
  int8_t *q = malloc(cells + 1);
  *steps = malloc(n * sizeof **steps + 1);
  if (!q || !*steps) {
    free(q), free(*steps);
    *steps = NULL;
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    float most = 0;
    for (size_t j = 0; j < p; j++) most = fabsf(x[i * p + j]) > most ? fabsf(x[i * p + j]) : most;
    float step = (*steps)[i] = fedrec_int8_step(most);
    for (size_t j = 0; j < p; j++) q[i * p + j] = step > 0 ? (int8_t)nearbyintf(x[i * p + j] / step) : 0;
  }
  return (uint8_t *)q;
}

/* 1 when any of n bytes differs from v (a flag column worth sending). */
static int any_but(const uint8_t *f, int32_t n, uint8_t v) {
  for (int32_t i = 0; f && i < n; i++)
    if (f[i] != v) return 1;
  return 0;
}

/* One encoding per catalogue (the hash names it): flags that say nothing (no item withdrawn,
 * every item with content) and titles no item has are left out. */
fedrec_status fedrec_catalogue_encode(fedrec_catalogue *c, fedrec_error *err) {
  int32_t n = fedrec_catalogue_items(c), p = c->ds.content_dim;
  int any_title = 0;
  for (int32_t i = 0; c->titles && i < n && !any_title; i++) any_title = c->titles[i] && c->titles[i][0];
  Fedrec__V1__Catalogue m = FEDREC__V1__CATALOGUE__INIT;
  m.version = c->version;
  m.dim = (uint32_t)p;
  m.n_ids = (size_t)n;
  m.ids = malloc(((size_t)n + 1) * sizeof *m.ids);
  char *empty = "";
  m.n_titles = any_title ? (size_t)n : 0;
  m.titles = any_title ? malloc(((size_t)n + 1) * sizeof *m.titles) : NULL;
  if (!m.ids || (any_title && !m.titles)) {
    free(m.ids), free(m.titles);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue encoding");
  }
  for (int32_t i = 0; i < n; i++) {
    m.ids[i] = (char *)fedrec_idmap_name(c->ds.items, i);
    if (m.titles) m.titles[i] = c->titles[i] ? c->titles[i] : empty;
  }
  float *scales = NULL; /* bits 8: the steps */
  uint8_t *compact = c->bits == 16 || c->bits == 8 ? compact_content(c, &scales) : NULL;
  if ((c->bits == 16 || c->bits == 8) && !compact) {
    free(m.ids), free(m.titles);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue encoding");
  }
  m.content_bits = compact ? (uint32_t)c->bits : 0;
  m.content.data = compact ? compact : (uint8_t *)c->ds.content;
  m.content.len = (size_t)n * (size_t)p * (compact ? (size_t)c->bits / 8 : sizeof(float));
  if (scales) m.scales.data = (uint8_t *)scales, m.scales.len = (size_t)n * sizeof *scales;
  if (any_but(c->withdrawn, n, 0)) m.withdrawn.data = c->withdrawn, m.withdrawn.len = (size_t)n;
  if (any_but(c->ds.has_content, n, 1)) m.has_content.data = c->ds.has_content, m.has_content.len = (size_t)n;
  m.source = c->source;
  fedrec_status st = fedrec__catalogue_rules_wire(c, &m, err);
  if (!st) st = fedrec__catalogue_modalities_wire(c, &m, err);
  size_t len = st ? 0 : protobuf_c_message_get_packed_size(&m.base);
  uint8_t *b = st ? NULL : malloc(len ? len : 1);
  if (b) protobuf_c_message_pack(&m.base, b);
  fedrec__catalogue_rules_wire_free(&m);
  fedrec__catalogue_modalities_wire_free(&m);
  free(m.ids), free(m.titles), free(compact), free(scales);
  if (st) return st;
  if (!b) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue encoding of %zu bytes", len);
  free(c->blob);
  c->blob = b;
  c->len = len;
  fedrec_hash2(c->hash, b, len, NULL, 0);
  return FEDREC_OK;
}

/* The checks a decoded message must pass before anything is built from it. */
static fedrec_status check_message(const Fedrec__V1__Catalogue *m, fedrec_error *err) {
  size_t n = m->n_ids;
  if (m->version < 1) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: version 0");
  if (m->dim < 1 || m->dim > FEDREC_MAX_CONTENT_DIM)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: content dimension %u outside [1, %d]", m->dim, FEDREC_MAX_CONTENT_DIM);
  if (n < 1 || n > (size_t)FEDREC_MAX_ENTITIES) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu items", n);
  if (m->content_bits != 0 && m->content_bits != 32 && m->content_bits != 16 && m->content_bits != 8)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: content in %u bits (32, 16 or 8)", m->content_bits);
  size_t bytes = m->content_bits == 16 ? 2 : m->content_bits == 8 ? 1 : 4;
  if (m->content.len / bytes / m->dim != n || m->content.len != n * m->dim * bytes)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu bytes of content for %zu items of %u dimensions in %zu-byte values",
                            m->content.len, n, m->dim, bytes);
  if ((m->content_bits == 8) != (m->scales.len != 0) || (m->scales.len && m->scales.len != n * 4))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu bytes of scales for %zu items in %u bits", m->scales.len, n, m->content_bits);
  if ((m->n_titles && m->n_titles != n) || (m->withdrawn.len && m->withdrawn.len != n) ||
      (m->has_content.len && m->has_content.len != n))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: titles or flags do not have one entry per item (%zu)", n);
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(m->ids[i]);
    if (l < 1 || l > FEDREC_MAX_ID_LEN) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's id has %zu bytes", i, l);
    if (m->n_titles && strlen(m->titles[i]) > FEDREC_MAX_TITLE_LEN)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's title is longer than %d bytes", i, FEDREC_MAX_TITLE_LEN);
    if ((m->withdrawn.len && m->withdrawn.data[i] > 1) || (m->has_content.len && m->has_content.data[i] > 1))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's flags are not 0 or 1", i);
  }
  fedrec_status st = fedrec__catalogue_rules_check(m, err);
  return st ? st : fedrec__catalogue_modalities_check(m, err);
}

/* c from the checked message m. float32 content is taken from m, not copied (m's bytes were
 * malloc'ed by protobuf-c's default allocator, so they are aligned for floats and free()d
 * with the catalogue; m is left without them). */
static fedrec_status build_from(fedrec_catalogue *c, Fedrec__V1__Catalogue *m, fedrec_error *err) {
  size_t n = m->n_ids, cells = n * m->dim;
  c->version = m->version;
  snprintf(c->source, sizeof c->source, "%s", m->source ? m->source : "");
  c->ds.items = fedrec_idmap_new();
  c->bits = m->content_bits == 16 || m->content_bits == 8 ? (int)m->content_bits : 32;
  if (c->bits == 32) {
    c->ds.content = (float *)m->content.data;
    m->content.data = NULL, m->content.len = 0;
  } else {
    c->ds.content = malloc(cells * sizeof(float));
  }
  c->ds.has_content = malloc(n);
  c->titles = m->n_titles ? calloc(n, sizeof *c->titles) : NULL;
  c->withdrawn = m->withdrawn.len ? malloc(n) : NULL;
  c->ds.content_dim = (int32_t)m->dim;
  c->ds.R.cols = (int32_t)n;
  if (!c->ds.items || !c->ds.content || !c->ds.has_content || (m->n_titles && !c->titles) || (m->withdrawn.len && !c->withdrawn))
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue of %zu items", n);
  if (c->bits == 16) {
    uint16_t *h = malloc(cells * sizeof *h + 1); /* the bytes may not be 2-aligned */
    if (!h) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
    memcpy(h, m->content.data, cells * 2);
    fedrec_status st = fedrec_half_to_float(c->ds.content, h, cells, err);
    free(h);
    if (st) return st;
  }
  for (size_t k = 0; c->bits == 8 && k < cells; k++) {
    float step;
    memcpy(&step, m->scales.data + 4 * (k / m->dim), 4);
    int e;
    if (!(step >= 0) || !isfinite(step) || (step > 0 && frexpf(step, &e) != 0.5f))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's step is not 0 or a finite power of two", k / m->dim);
    c->ds.content[k] = (float)(int8_t)m->content.data[k] * step;
  }
  for (size_t k = 0; k < cells; k++)
    if (!isfinite(c->ds.content[k]))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's embedding is not finite (dimension %zu)", k / m->dim, k % m->dim);
  if (m->has_content.len) memcpy(c->ds.has_content, m->has_content.data, n);
  else memset(c->ds.has_content, 1, n);
  if (c->withdrawn) memcpy(c->withdrawn, m->withdrawn.data, n);
  fedrec_status st = fedrec__catalogue_rules_build(c, m, err);
  if (!st) st = fedrec__catalogue_modalities_build(c, m, err);
  if (st) return st;
  for (size_t i = 0; i < n; i++) {
    size_t l = strlen(m->ids[i]);
    if (fedrec_idmap_get(c->ds.items, m->ids[i], l, 0) >= 0)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item id '%s' appears twice", m->ids[i]);
    if (fedrec_idmap_get(c->ds.items, m->ids[i], l, 1) < 0) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue ids");
    if (c->titles && m->titles[i][0] && !(c->titles[i] = strdup(m->titles[i])))
      return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue titles");
  }
  return FEDREC_OK;
}

static fedrec_status decode(fedrec_catalogue *c, const uint8_t *b, size_t n, int keep, fedrec_error *err) {
  memset(c, 0, sizeof *c);
  if (n > FEDREC_CATALOGUE_MAX_BYTES) return fedrec_error_set(err, FEDREC_ERR_LIMIT, "catalogue: %zu bytes, more than allowed", n);
  Fedrec__V1__Catalogue *m = fedrec__v1__catalogue__unpack(NULL, n, b);
  if (!m) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: not a fedrec.v1.Catalogue message (%zu bytes)", n);
  fedrec_status st = check_message(m, err);
  if (!st) st = build_from(c, m, err);
  fedrec__v1__catalogue__free_unpacked(m, NULL);
  if (!st && keep && !(c->blob = malloc(n ? n : 1))) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
  if (st) {
    fedrec_catalogue_free(c);
    return st;
  }
  c->len = n;
  if (keep) memcpy(c->blob, b, n);
  fedrec_hash2(c->hash, b, n, NULL, 0);
  return FEDREC_OK;
}

fedrec_status fedrec_catalogue_decode(fedrec_catalogue *c, const uint8_t *b, size_t n, fedrec_error *err) {
  return decode(c, b, n, 1, err);
}

fedrec_status fedrec_catalogue_decode_stored(fedrec_catalogue *c, const uint8_t *b, size_t n, fedrec_error *err) {
  return decode(c, b, n, 0, err);
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* next may follow prev: the same content dimension, or, with named modalities, prev's
 * modalities (names and dimensions, in order) followed by new ones (added later: the head
 * grows a block for each, the others keep theirs). */
static fedrec_status same_modalities(const fedrec_catalogue *next, const fedrec_catalogue *prev, fedrec_error *err) {
  const fedrec_dataset *a = &prev->ds, *b = &next->ds;
  int ok = a->n_modalities ? b->n_modalities >= a->n_modalities : !b->n_modalities && b->content_dim == a->content_dim;
  for (int32_t k = 0; ok && k < a->n_modalities; k++)
    ok = !strcmp(a->modalities[k].name, b->modalities[k].name) && a->modalities[k].dim == b->modalities[k].dim;
  if (ok) return FEDREC_OK;
  if (!a->n_modalities && !b->n_modalities)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue '%s': content dimension %d, but the served catalogue (version %llu) has %d: "
                            "embeddings from another encoder need a new state-dir (the head maps exactly %d dimensions)",
                            next->source, b->content_dim, (unsigned long long)prev->version, a->content_dim, a->content_dim);
  char have[300] = "", want[300] = "";
  for (int32_t k = 0; k < a->n_modalities; k++)
    snprintf(have + strlen(have), sizeof have - strlen(have), "%s%.31s:%d", k ? "," : "", a->modalities[k].name, a->modalities[k].dim);
  for (int32_t k = 0; k < b->n_modalities; k++)
    snprintf(want + strlen(want), sizeof want - strlen(want), "%s%.31s:%d", k ? "," : "", b->modalities[k].name, b->modalities[k].dim);
  return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue '%s': modalities [%s], but the served catalogue (version %llu) has [%s]: "
                          "a modality may be added after the others, never changed, removed or reordered (a new encoder "
                          "is a new modality)", next->source, want, (unsigned long long)prev->version,
                          a->n_modalities ? have : "one unnamed source");
}

fedrec_status fedrec_catalogue_follow(fedrec_catalogue *next, const fedrec_catalogue *prev, int32_t *added,
                                      int32_t *withdrawn, fedrec_error *err) {
  int32_t p = next->ds.content_dim, np = fedrec_catalogue_items(prev), nn = fedrec_catalogue_items(next);
  fedrec_status st = same_modalities(next, prev, err);
  if (st) return st;
  *added = *withdrawn = 0;
  for (int32_t j = 0; j < nn; j++) {
    const char *id = fedrec_idmap_name(next->ds.items, j);
    *added += fedrec_idmap_get(prev->ds.items, id, strlen(id), 0) < 0;
  }
  int64_t total = (int64_t)np + *added;
  if (total > FEDREC_MAX_ENTITIES) return fedrec_error_set(err, FEDREC_ERR_LIMIT, "catalogue: %lld items", (long long)total);
  fedrec_catalogue out = {.version = prev->version + 1};
  snprintf(out.source, sizeof out.source, "%s", next->source);
  out.ds.items = fedrec_idmap_new();
  out.ds.content = malloc((size_t)total * (size_t)p * sizeof(float));
  out.ds.has_content = calloc((size_t)total, 1);
  out.withdrawn = calloc((size_t)total, 1);
  out.titles = calloc((size_t)total, sizeof *out.titles);
  out.ds.content_dim = p;
  out.ds.R.cols = (int32_t)total;
  int32_t M = next->ds.n_modalities;
  out.ds.n_modalities = M;
  memcpy(out.ds.modalities, next->ds.modalities, sizeof out.ds.modalities);
  out.ds.modality_mask = M ? calloc((size_t)total * M + 1, 1) : NULL;
  st = out.ds.items && out.ds.content && out.ds.has_content && out.withdrawn && out.titles && (!M || out.ds.modality_mask)
           ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue of %lld items", (long long)total);
  /* prev's items at their indices, then next's new ones (k: the next of next's to look at) */
  int32_t k = 0;
  for (int64_t i = 0; !st && i < total; i++) {
    const fedrec_catalogue *from = next;
    int32_t j;
    const char *id;
    if (i < np) {
      id = fedrec_idmap_name(prev->ds.items, (int32_t)i);
      j = fedrec_idmap_get(next->ds.items, id, strlen(id), 0);
      if (j < 0) { /* counted when newly withdrawn */
        *withdrawn += !(prev->withdrawn && prev->withdrawn[i]);
        from = prev, j = (int32_t)i, out.withdrawn[i] = 1;
      }
    } else {
      while (id = fedrec_idmap_name(next->ds.items, k), fedrec_idmap_get(prev->ds.items, id, strlen(id), 0) >= 0) k++;
      j = k++;
    }
    if (fedrec_idmap_get(out.ds.items, id, strlen(id), 1) != (int32_t)i) {
      st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue ids");
      break;
    }
    /* a withdrawn item (from prev) has no block of a modality added since: zero, masked */
    int32_t fp = from->ds.content_dim, fM = from->ds.n_modalities;
    memcpy(out.ds.content + i * p, from->ds.content + (size_t)j * fp, (size_t)fp * sizeof(float));
    memset(out.ds.content + i * p + fp, 0, (size_t)(p - fp) * sizeof(float));
    for (int32_t q = 0; q < fM; q++) out.ds.modality_mask[i * M + q] = from->ds.modality_mask[(size_t)j * fM + q];
    out.ds.has_content[i] = from->ds.has_content ? from->ds.has_content[j] : 1;
    const char *t = from->titles ? from->titles[j] : NULL;
    if (!t && i < np && prev->titles) t = prev->titles[i]; /* a title the update did not repeat */
    if (t && !(out.titles[i] = dup_or_null(t))) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue titles");
  }
  if (st) {
    fedrec_catalogue_free(&out);
    return st;
  }
  fedrec_catalogue_free(next);
  *next = out;
  return FEDREC_OK;
}
