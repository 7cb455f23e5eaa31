/* The coordinator's initial model from a file (initial-model MODEL[,IDS]): a model blob as
 * fedrec-sim --save-model or export-model writes, its rows matched to the served catalogue by
 * the item ids in IDS (default MODEL.ids, which --save-model writes next to the model): a
 * catalogue item the model lacks has the head alone, a model item the catalogue lacks is
 * dropped. Only a new state starts from it, and only when the operator declares it public. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fedrec/content.h"
#include "fedrec/internal/tool.h"
#include "server.h"

/* The model file and its id list, read and checked against each other and the catalogue. */
static fedrec_status read_source(server *s, const char *mpath, const char *ipath, fedrec_model *src, fedrec_idmap **ids,
                                 uint8_t hash[32], fedrec_error *err) {
  char *buf = NULL, msg[sizeof err->msg];
  int64_t len;
  fedrec_status st = fedrec_read_file(mpath, &buf, &len, err);
  if (!st) {
    crypto_generichash(hash, 32, (const uint8_t *)buf, (unsigned long long)len, NULL, 0);
    st = fedrec_model_decode(src, NULL, (const uint8_t *)buf, (size_t)len, s->cat.ds.content, s->cat.ds.content_dim, err);
    if (!st && (st = fedrec_model_check_modalities(src, &s->cat.ds, err))) fedrec_model_free(src);
  }
  free(buf);
  if (st) {
    snprintf(msg, sizeof msg, "%s", err->msg);
    return fedrec_error_set(err, st, "initial-model %s: %s", mpath, msg);
  }
  *ids = fedrec_idmap_new();
  st = fedrec_read_file(ipath, &buf, &len, err);
  if (!st) {
    st = *ids ? fedrec_parse_id_list(*ids, buf, len, ipath, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "ids");
    free(buf);
  }
  if (!st && fedrec_idmap_size(*ids) != src->n_items)
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "initial-model: %s names %d items, the model %s has %d rows", ipath,
                          fedrec_idmap_size(*ids), mpath, src->n_items);
  if (st) {
    snprintf(msg, sizeof msg, "%s", err->msg);
    fedrec_model_free(src);
    fedrec_idmap_free(*ids);
    *ids = NULL;
    return fedrec_error_set(err, st, "%s%s", strncmp(msg, "initial-model", 13) ? "initial-model: " : "", msg);
  }
  return FEDREC_OK;
}

fedrec_status initial_model_load(server *s, fedrec_model *out, fedrec_error *err) {
  config *c = &s->cfg;
  memset(out, 0, sizeof *out);
  if (strcmp(c->initial_model_privacy, "public"))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "initial-model %s needs initial-model-privacy public: the operator's word that it was "
                            "trained without data of this deployment's users (the ledger accounts for the rounds only; docs/PRIVACY.md)",
                            c->initial_model);
  char mpath[512], ipath[600];
  const char *comma = strchr(c->initial_model, ',');
  snprintf(mpath, sizeof mpath, "%.*s", comma ? (int)(comma - c->initial_model) : (int)strlen(c->initial_model), c->initial_model);
  snprintf(ipath, sizeof ipath, comma ? "%s" : "%s.ids", comma ? comma + 1 : mpath);
  fedrec_model src;
  fedrec_idmap *ids;
  uint8_t hash[32];
  fedrec_status st = read_source(s, mpath, ipath, &src, &ids, hash, err);
  if (st) return st;
  if (config_given(c, "dim") && c->dim != src.d)
    st = fedrec_error_set(err, FEDREC_ERR_ARG, "initial-model %s has d = %d, the setting dim %d: drop the setting", mpath, src.d, c->dim);
  int32_t ni = fedrec_catalogue_items(&s->cat), matched = 0, k = 0;
  int32_t *items = malloc(((size_t)src.n_free + 1) * sizeof *items), *rows = malloc(((size_t)src.n_free + 1) * sizeof *rows);
  if (!st && (!items || !rows)) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "initial-model");
  for (int32_t j = 0; !st && j < src.n_items; j++) {
    const char *id = fedrec_idmap_name(ids, j);
    matched += fedrec_idmap_get(s->cat.ds.items, id, strlen(id), 0) >= 0;
  }
  for (int32_t r = 0; !st && r < src.n_free; r++) { /* the free rows of items the catalogue has */
    const char *id = fedrec_idmap_name(ids, src.free_items[r]);
    int32_t i = fedrec_idmap_get(s->cat.ds.items, id, strlen(id), 0);
    if (i >= 0) items[k] = i, rows[k++] = r;
  }
  if (!st) st = fedrec_model_init(out, ni, src.d, s->cat.ds.content, s->cat.ds.content_dim, src.H != NULL, items, k, 1, 0.1f, err);
  if (!st) st = fedrec_model_set_modalities(out, &s->cat.ds, err);
  if (!st) {
    if (src.H) memcpy(out->H, src.H, (size_t)src.d * src.p * sizeof *out->H);
    for (int32_t r = 0; r < k; r++) memcpy(out->E + (size_t)r * src.d, src.E + (size_t)rows[r] * src.d, (size_t)src.d * sizeof *out->E);
    /* a popularity it has (public, as the rest of it) goes with the items, by id; others get 0 */
    if (src.pop && !(st = fedrec_model_add_popularity(out, err)))
      for (int32_t j = 0; j < src.n_items; j++) {
        const char *id = fedrec_idmap_name(ids, j);
        int32_t i = fedrec_idmap_get(s->cat.ds.items, id, strlen(id), 0);
        if (i >= 0) out->pop[i] = src.pop[j];
      }
    c->dim = src.d;
    char hex[65], js[sizeof mpath * 6];
    sodium_bin2hex(hex, sizeof hex, hash, 32);
    fedrec_json_escape(js, sizeof js, mpath);
    logj("info", "initial_model", "\"file\": \"%s\", \"blake2b\": \"%s\", \"rows\": %d, \"matched\": %d, \"dropped\": %d, "
         "\"not_in_model\": %d, \"free_embeddings\": %d, \"d\": %d, \"head\": %s, \"privacy\": \"public\"", js, hex, src.n_items, matched,
         src.n_items - matched, ni - matched, k, src.d, src.H ? "true" : "false");
  }
  free(items), free(rows);
  fedrec_model_free(&src);
  fedrec_idmap_free(ids);
  return st;
}
