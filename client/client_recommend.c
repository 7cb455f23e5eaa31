/* Recommendations and their explanations, on the device (see include/fedrec/client.h).
 *
 * Every call solves the user's vector from the history as it is now, so an event recorded a
 * moment ago counts at once. What does not depend on the history (the item vectors V = C H^T
 * + E and their Gramian G) is computed once per model and kept in the handle: a call then
 * costs one d x d solve and one pass over the items. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fedrec/eval.h"
#include "client_internal.h"

/* The model's item vectors and Gramian, for the cached model (recomputed when it changed). */
static fedrec_status item_vectors(fedrec_client *c, fedrec_error *err) {
  fedrec_status s = fedrec__client_load_catalogue(c, err);
  if (s) return s;
  if (c->V && c->V_model == c->model_version && c->V_cat == c->cat.version) return FEDREC_OK;
  fedrec_model m;
  if ((s = fedrec__client_cached_model(c, &m, err))) return s;
  if (m.n_items > fedrec_catalogue_items(&c->cat)) {
    fedrec_model_free(&m);
    return fedrec_error_set(err, FEDREC_ERR_STATE, "the cached model has more items than the catalogue: sync first");
  }
  free(c->V), free(c->G);
  int32_t d = fedrec_model_vdim(&m);
  c->V = malloc((size_t)m.n_items * d * sizeof *c->V);
  c->G = malloc((size_t)d * d * sizeof *c->G);
  if (!c->V || !c->G) {
    free(c->V), free(c->G);
    c->V = c->G = NULL;
    fedrec_model_free(&m);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "item vectors of %d items", m.n_items);
  }
  fedrec_model_item_vectors(c->V, &m);
  fedrec_gramian(c->G, c->V, m.n_items, d);
  c->V_items = m.n_items, c->V_d = d, c->V_pop = m.pop != NULL, c->V_model = c->model_version, c->V_cat = c->cat.version;
  fedrec_model_free(&m);
  return FEDREC_OK;
}

/* The history restricted to the model's items (a catalogue newer than the model may hold more). */
static fedrec_status model_history(fedrec_client *c, int32_t **items, float **w, int32_t *n, fedrec_error *err) {
  fedrec_status s = fedrec__client_history(c, items, w, n, err);
  int32_t k = 0;
  for (int32_t j = 0; !s && j < *n; j++)
    if ((*items)[j] < c->V_items) (*items)[k] = (*items)[j], (*w)[k++] = (*w)[j];
  if (!s) *n = k;
  return s;
}

fedrec_status fedrec_client_recommend(fedrec_client *c, int32_t k, char (*names)[64], float *scores, int32_t *n,
                                      fedrec_error *err) {
  *n = 0;
  if (k < 1) return fedrec_error_set(err, FEDREC_ERR_ARG, "recommend: k must be >= 1");
  fedrec_status s = item_vectors(c, err);
  if (s) return s;
  int32_t *items = NULL, nh = 0, ni = c->V_items, d = c->V_d;
  float *w = NULL;
  if ((s = model_history(c, &items, &w, &nh, err))) return s;
  float *u = calloc((size_t)d, sizeof *u), *work = malloc(fedrec_user_solve_work(d, nh > 0 ? nh : 1) * sizeof *work);
  float *sc = malloc((size_t)ni * sizeof *sc);
  uint8_t *allowed = malloc((size_t)fedrec_catalogue_items(&c->cat) + 1);
  int32_t *top = malloc((size_t)k * sizeof *top);
  if (!u || !work || !sc || !allowed || !top) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "recommend");
  if (!s && nh > 0 && (s = fedrec_user_solve(u, c->V, c->G, ni, d, items, w, nh, 0.3f, 0.003f, work)))
    fedrec_error_set(err, s, "recommend: the user's system is not positive definite");
  if (!s) {
    for (int32_t i = 0; i < ni; i++) {
      double v = 0;
      for (int32_t j = 0; j < d; j++) v += (double)c->V[(size_t)i * d + j] * u[j];
      /* no history: the model's popularity if it has one (its last coordinate), else nothing */
      sc[i] = nh > 0 ? (float)v : c->V_pop ? c->V[(size_t)i * d + d - 1] : 0.0f;
    }
    /* not withdrawn, not blocked, available in this device's region (a catalogue newer than
     * the model may hold more items: allowed has room for them) */
    fedrec_catalogue_allowed(&c->cat, c->region, allowed);
    for (int32_t j = 0; j < nh; j++) allowed[items[j]] = 0;
    *n = fedrec_topk(top, sc, ni, k, allowed);
    for (int32_t r = 0; r < *n; r++) {
      snprintf(names[r], 64, "%s", fedrec_idmap_name(c->cat.ds.items, top[r]));
      scores[r] = sc[top[r]];
    }
  }
  if (u) sodium_memzero(u, (size_t)d * sizeof *u);
  if (work) sodium_memzero(work, fedrec_user_solve_work(d, nh > 0 ? nh : 1) * sizeof *work);
  free(u), free(work), free(sc), free(allowed), free(top), free(items), free(w);
  return s;
}

/* Cosine similarity of two items' content embeddings (0 when either has none). */
static float content_cosine(const fedrec_client *c, int32_t a, int32_t b) {
  int32_t p = c->cat.ds.content_dim;
  const float *x = c->cat.ds.content + (size_t)a * p, *y = c->cat.ds.content + (size_t)b * p;
  double xy = 0, xx = 0, yy = 0;
  for (int32_t j = 0; j < p; j++) xy += (double)x[j] * y[j], xx += (double)x[j] * x[j], yy += (double)y[j] * y[j];
  return xx > 0 && yy > 0 ? (float)(xy / sqrt(xx * yy)) : 0.0f;
}

/* The k largest of v[0..n) by value, as indices, best first (n small: a history). */
static int32_t largest(int32_t *out, const float *v, int32_t n, int32_t k) {
  int32_t m = 0;
  for (int32_t j = 0; j < n; j++) {
    if (m == k && !(v[j] > v[out[k - 1]])) continue; /* not above the least kept */
    int32_t at = m < k ? m++ : k - 1;                /* a new slot, or the least kept's */
    while (at > 0 && v[j] > v[out[at - 1]]) out[at] = out[at - 1], at--;
    out[at] = j;
  }
  return m;
}

fedrec_status fedrec_client_explain(fedrec_client *c, const char *item, fedrec_explanation *out, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  fedrec_status s = item_vectors(c, err);
  if (s) return s;
  int32_t t = fedrec_idmap_get(c->cat.ds.items, item, strlen(item), 0);
  if (t < 0 || t >= c->V_items) return fedrec_error_set(err, FEDREC_ERR_ARG, "explain: '%s' is not an item of the model's catalogue", item);
  snprintf(out->item, sizeof out->item, "%s", item);
  int32_t *items = NULL, nh = 0, d = c->V_d;
  float *w = NULL;
  if ((s = model_history(c, &items, &w, &nh, err))) return s;
  if (nh == 0) {
    free(items), free(w);
    return fedrec_error_set(err, FEDREC_ERR_EMPTY, "explain: the history is empty (nothing to explain a score by)");
  }
  size_t nw = fedrec_user_explain_work(d, nh);
  float *u = malloc((size_t)d * sizeof *u), *work = malloc(nw * sizeof *work), *contrib = malloc((size_t)nh * sizeof *contrib);
  float *cos = malloc((size_t)nh * sizeof *cos);
  if (!u || !work || !contrib || !cos) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "explain");
  if (!s && (s = fedrec_user_explain(contrib, u, c->V, c->G, c->V_items, d, items, w, nh, 0.3f, 0.003f, &t, 1, work)))
    fedrec_error_set(err, s, "explain: the user's system is not positive definite");
  if (!s) {
    double score = 0, sum = 0;
    for (int32_t j = 0; j < d; j++) score += (double)c->V[(size_t)t * d + j] * u[j];
    int32_t top[FEDREC_EXPLAIN_MAX];
    out->n = largest(top, contrib, nh, FEDREC_EXPLAIN_MAX);
    for (int32_t r = 0; r < out->n; r++) {
      snprintf(out->by[r].item, sizeof out->by[r].item, "%s", fedrec_idmap_name(c->cat.ds.items, items[top[r]]));
      out->by[r].contribution = contrib[top[r]];
    }
    for (int32_t j = 0; j < nh; j++) sum += contrib[j];
    for (int32_t r = 0; r < out->n; r++) sum -= contrib[top[r]];
    out->score = (float)score;
    out->rest = (float)sum;
    out->history = nh;
    /* the content side: the history items whose content is nearest (for items nobody has seen) */
    for (int32_t j = 0; j < nh; j++) cos[j] = content_cosine(c, t, items[j]);
    out->n_similar = largest(top, cos, nh, FEDREC_EXPLAIN_MAX);
    for (int32_t r = 0; r < out->n_similar; r++) {
      snprintf(out->similar[r].item, sizeof out->similar[r].item, "%s", fedrec_idmap_name(c->cat.ds.items, items[top[r]]));
      out->similar[r].contribution = cos[top[r]];
    }
  }
  if (u) sodium_memzero(u, (size_t)d * sizeof *u);
  if (work) sodium_memzero(work, nw * sizeof *work);
  if (contrib) sodium_memzero(contrib, (size_t)nh * sizeof *contrib);
  free(u), free(work), free(contrib), free(cos), free(items), free(w);
  return s;
}

int fedrec_client_title(fedrec_client *c, const char *item, char *out, size_t cap) {
  fedrec_error err;
  if (cap) out[0] = 0;
  if (fedrec__client_load_catalogue(c, &err)) return 1;
  int32_t i = fedrec_idmap_get(c->cat.ds.items, item, strlen(item), 0);
  if (i < 0 || !c->cat.titles || !c->cat.titles[i]) return 1;
  snprintf(out, cap, "%s", c->cat.titles[i]);
  return 0;
}
