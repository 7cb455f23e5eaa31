/* A catalogue's modalities (docs/MODEL.md "Multimodal content"): several content sources per
 * item (a video, an audio, a text encoder's embeddings), each a named block of the content
 * with a mask of the items that have it; their wire form (catalogue.proto fields 13 and 14),
 * its checks, and the modalities:LIST setting that builds one from a .npy per modality. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue_internal.h"
#include "fedrec/content.h"

fedrec_status fedrec__catalogue_modalities_wire(const fedrec_catalogue *c, Fedrec__V1__Catalogue *m, fedrec_error *err) {
  int32_t M = c->ds.n_modalities, n = fedrec_catalogue_items(c);
  if (!M) return FEDREC_OK;
  Fedrec__V1__Modality *mods = calloc((size_t)M, sizeof *mods);
  m->modalities = calloc((size_t)M, sizeof *m->modalities);
  if (!mods || !m->modalities) {
    free(mods), free(m->modalities);
    m->modalities = NULL;
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue modalities");
  }
  for (int32_t k = 0; k < M; k++) {
    fedrec__v1__modality__init(&mods[k]);
    mods[k].name = (char *)c->ds.modalities[k].name;
    mods[k].dim = (uint32_t)c->ds.modalities[k].dim;
    m->modalities[k] = &mods[k];
  }
  m->n_modalities = (size_t)M;
  int all = 1;
  for (size_t k = 0; c->ds.modality_mask && k < (size_t)n * M && all; k++) all = c->ds.modality_mask[k] == 1;
  if (!all) m->modality_mask.data = c->ds.modality_mask, m->modality_mask.len = (size_t)n * M;
  return FEDREC_OK;
}

void fedrec__catalogue_modalities_wire_free(Fedrec__V1__Catalogue *m) {
  if (m->n_modalities) free(m->modalities[0]);
  free(m->modalities);
  m->modalities = NULL, m->n_modalities = 0;
}

fedrec_status fedrec__catalogue_modalities_check(const Fedrec__V1__Catalogue *m, fedrec_error *err) {
  size_t M = m->n_modalities, n = m->n_ids;
  uint64_t p = 0;
  if (M > FEDREC_MAX_MODALITIES) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu modalities, at most %d", M, FEDREC_MAX_MODALITIES);
  for (size_t k = 0; k < M; k++) {
    if (!fedrec_modality_name_valid(m->modalities[k]->name))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: modality %zu's name is not 1 to %d bytes of A-Z a-z 0-9 _ . -", k,
                              FEDREC_MAX_MODALITY_NAME);
    for (size_t j = 0; j < k; j++)
      if (!strcmp(m->modalities[j]->name, m->modalities[k]->name))
        return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: modality '%s' appears twice", m->modalities[k]->name);
    if (m->modalities[k]->dim < 1) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: modality '%s' has no dimension", m->modalities[k]->name);
    p += m->modalities[k]->dim;
  }
  if (M && p != m->dim)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: the modalities' dimensions add up to %llu, the content has %u",
                            (unsigned long long)p, m->dim);
  if (m->modality_mask.len && (!M || m->modality_mask.len / M != n || m->modality_mask.len % M))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu modality flags for %zu items and %zu modalities", m->modality_mask.len, n, M);
  for (size_t k = 0; k < m->modality_mask.len; k++)
    if (m->modality_mask.data[k] > 1)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's modality flags are not 0 or 1", k / M);
  return FEDREC_OK;
}

fedrec_status fedrec__catalogue_modalities_build(fedrec_catalogue *c, const Fedrec__V1__Catalogue *m, fedrec_error *err) {
  size_t M = m->n_modalities, n = m->n_ids, p = m->dim;
  if (!M) return FEDREC_OK;
  if (!(c->ds.modality_mask = malloc(n * M))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue modalities");
  if (m->modality_mask.len) memcpy(c->ds.modality_mask, m->modality_mask.data, n * M);
  else memset(c->ds.modality_mask, 1, n * M);
  for (size_t k = 0, off = 0; k < M; off += m->modalities[k++]->dim) {
    snprintf(c->ds.modalities[k].name, sizeof c->ds.modalities[k].name, "%.31s", m->modalities[k]->name);
    c->ds.modalities[k].offset = (int32_t)off, c->ds.modalities[k].dim = (int32_t)m->modalities[k]->dim;
    for (size_t i = 0; i < n; i++) /* a block the mask says the item lacks is zero */
      for (size_t j = 0; !c->ds.modality_mask[i * M + k] && j < m->modalities[k]->dim; j++)
        if (c->ds.content[i * p + off + j] != 0)
          return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu lacks modality '%s' but its block is not zero", i,
                                  m->modalities[k]->name);
  }
  c->ds.n_modalities = (int32_t)M;
  return FEDREC_OK;
}

/* path as given, or relative to the list file's folder (dir, with its '/'). */
static int resolve(char *out, size_t cap, const char *dir, const char *path, size_t n) {
  int w = path[0] == '/' ? snprintf(out, cap, "%.*s", (int)n, path) : snprintf(out, cap, "%s%.*s", dir, (int)n, path);
  return w > 0 && (size_t)w < cap;
}

/* modalities:LIST: lines "NAME<TAB>EMB.npy<TAB>IDS.txt" (one per modality, in column order),
 * "titles<TAB>TITLES.tsv", "norm<TAB>l2|standard"; paths relative to LIST's folder. Items in
 * the id lists' order (the first list's, then ids new in the next...). */
fedrec_status fedrec__catalogue_load_modalities(fedrec_catalogue *c, const char *rest, fedrec_error *err) {
  char names[FEDREC_MAX_MODALITIES][FEDREC_MAX_MODALITY_NAME + 1], npy[FEDREC_MAX_MODALITIES][512], ids[FEDREC_MAX_MODALITIES][512];
  char titles[512] = "", norm_s[16] = "l2", dir[512] = "";
  int32_t M = 0, line = 0;
  char *list = NULL;
  int64_t blen = 0;
  const char *slash = strrchr(rest, '/');
  if (slash && (size_t)(slash - rest + 1) < sizeof dir) memcpy(dir, rest, (size_t)(slash - rest + 1)), dir[slash - rest + 1] = 0;
  fedrec_status st = fedrec_read_file(rest, &list, &blen, err);
  for (const char *p = list, *end = list + blen; !st && p < end; line++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end, *f[4] = {0};
    size_t fl[4] = {0};
    int nf = 0;
    if (le > p && le[-1] == '\r') le--;
    for (const char *q = p; nf < 4;) {
      const char *t = memchr(q, '\t', (size_t)(le - q));
      f[nf] = q, fl[nf++] = (size_t)((t ? t : le) - q);
      if (!t) break;
      q = t + 1;
    }
    p = nl ? nl + 1 : end;
    if (le == f[0]) continue; /* a blank line */
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(fl[0] < 63 ? fl[0] : 63), f[0]);
    if (nf == 2 && !strcmp(key, "titles")) {
      if (!resolve(titles, sizeof titles, dir, f[1], fl[1])) st = fedrec_error_set(err, FEDREC_ERR_ARG, "%s:%d: path too long", rest, line + 1);
    } else if (nf == 2 && !strcmp(key, "norm") && fl[1] < sizeof norm_s) {
      memcpy(norm_s, f[1], fl[1]), norm_s[fl[1]] = 0;
    } else if (nf != 3 || fl[0] > FEDREC_MAX_MODALITY_NAME || !fedrec_modality_name_valid(key)) {
      st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%d: expected 'NAME<TAB>EMB.npy<TAB>IDS.txt' (a name of 1 to %d bytes of A-Z a-z 0-9 _ . -), "
                            "'titles<TAB>FILE' or 'norm<TAB>l2|standard'", rest, line + 1, FEDREC_MAX_MODALITY_NAME);
    } else if (M == FEDREC_MAX_MODALITIES) {
      st = fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s:%d: more than %d modalities", rest, line + 1, FEDREC_MAX_MODALITIES);
    } else if (!resolve(npy[M], sizeof npy[M], dir, f[1], fl[1]) || !resolve(ids[M], sizeof ids[M], dir, f[2], fl[2])) {
      st = fedrec_error_set(err, FEDREC_ERR_ARG, "%s:%d: path too long", rest, line + 1);
    } else {
      memcpy(names[M], key, strlen(key) + 1);
      for (int32_t k = 0; k < M && !st; k++)
        if (!strcmp(names[k], names[M])) st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%d: modality %s twice", rest, line + 1, key);
      M++;
    }
  }
  free(list);
  fedrec_norm norm = FEDREC_NORM_L2;
  if (!st && !M) st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: no modality (lines NAME<TAB>EMB.npy<TAB>IDS.txt)", rest);
  if (!st) st = fedrec_norm_parse(&norm, norm_s, err);
  const char *npyp[FEDREC_MAX_MODALITIES], *idsp[FEDREC_MAX_MODALITIES];
  for (int32_t m = 0; !st && m < M; m++) { /* the items: every list's ids, in order */
    char *buf = NULL;
    int64_t len = 0;
    fedrec_idmap *one = fedrec_idmap_new();
    st = one ? fedrec_read_file(ids[m], &buf, &len, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
    if (!st) st = fedrec_parse_id_list(one, buf, len, ids[m], err);
    for (int32_t k = 0; !st && k < fedrec_idmap_size(one); k++) {
      const char *id = fedrec_idmap_name(one, k);
      if (fedrec_idmap_get(c->ds.items, id, strlen(id), 1) < 0) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue ids");
    }
    free(buf), fedrec_idmap_free(one);
    npyp[m] = npy[m], idsp[m] = ids[m];
  }
  c->ds.R.cols = fedrec_idmap_size(c->ds.items);
  if (!st) st = fedrec_attach_modalities_npy(&c->ds, M, names, npyp, idsp, norm, err);
  if (!st && titles[0]) {
    char *buf = NULL;
    int64_t len = 0;
    int32_t n = fedrec_catalogue_items(c);
    if (!(c->titles = calloc((size_t)n + 1, sizeof *c->titles))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "titles");
    st = fedrec_read_file(titles, &buf, &len, err);
    if (!st) st = fedrec_parse_titles(c->titles, c->ds.items, FEDREC_TITLES_TSV, buf, len, titles, err);
    free(buf);
  }
  return st;
}
