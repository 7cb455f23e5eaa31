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

/* modalities:LIST (fedrec_content_modality_list), its items in the lists' order, and the
 * titles it names. */
fedrec_status fedrec__catalogue_load_modalities(fedrec_catalogue *c, const char *rest, fedrec_error *err) {
  char titles[512];
  fedrec_status st = fedrec_content_modality_list(&c->ds, rest, 1, titles, sizeof titles, err);
  c->ds.R.cols = fedrec_idmap_size(c->ds.items);
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
