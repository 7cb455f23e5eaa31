/* Train/test splits: strong generalisation over users, with optional cold items. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/eval.h"
#include "fedrec/rng.h"

void fedrec_split_defaults(fedrec_split_config *c) {
  c->test_users = 0.2;
  c->holdout = 0.2;
  c->cold_items = 0.0;
  c->min_items = 5;
  c->seed = 42;
}

void fedrec_split_free(fedrec_split *s) {
  if (!s) return;
  fedrec_csr_free(&s->train);
  fedrec_csr_free(&s->foldin);
  fedrec_csr_free(&s->holdout);
  fedrec_csr_free(&s->cold_holdout);
  free(s->is_cold);
  free(s->train_user);
  memset(s, 0, sizeof *s);
}

static void shuffle(int32_t *a, int32_t n, fedrec_rng *r) {
  for (int32_t i = n - 1; i > 0; i--) {
    int32_t j = (int32_t)fedrec_rng_below(r, (uint64_t)i + 1);
    int32_t t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

/* Splits one test user's warm items into fold-in and held-out parts. */
static fedrec_status split_user(fedrec_triplets *fo, fedrec_triplets *ho, fedrec_triplets *co,
                                const fedrec_csr *R, const uint8_t *cold, int32_t u, int32_t row,
                                double frac, fedrec_rng *r, int32_t *tmp, fedrec_error *err) {
  int32_t nw = 0;
  fedrec_status st = FEDREC_OK;
  for (int64_t k = R->indptr[u]; k < R->indptr[u + 1] && !st; k++) {
    if (cold[R->indices[k]]) st = fedrec_triplets_push(co, row, R->indices[k], R->values[k], err);
    else tmp[nw++] = (int32_t)(k - R->indptr[u]);
  }
  shuffle(tmp, nw, r);
  int32_t nh = nw >= 2 ? (int32_t)lround(frac * nw) : 0;
  if (nw >= 2 && nh < 1) nh = 1;
  if (nh > nw - 1) nh = nw > 0 ? nw - 1 : 0;
  for (int32_t k = 0; k < nw && !st; k++) {
    int64_t o = R->indptr[u] + tmp[k];
    st = fedrec_triplets_push(k < nh ? ho : fo, row, R->indices[o], R->values[o], err);
  }
  return st;
}

/* Marks round(frac * |items with content|) random items with content as cold. */
static int32_t pick_cold(uint8_t *cold, const fedrec_dataset *ds, double frac, fedrec_rng *r,
                         int32_t *tmp) {
  int32_t ni = ds->R.cols, nc = 0;
  if (!(frac > 0) || !ds->has_content) return 0;
  for (int32_t i = 0; i < ni; i++)
    if (ds->has_content[i]) tmp[nc++] = i;
  shuffle(tmp, nc, r);
  int32_t want = (int32_t)lround(frac * nc);
  for (int32_t k = 0; k < want; k++) cold[tmp[k]] = 1;
  return want;
}

fedrec_status fedrec_split_users(fedrec_split *s, const fedrec_dataset *ds,
                                 const fedrec_split_config *c, fedrec_error *err) {
  memset(s, 0, sizeof *s);
  const fedrec_csr *R = &ds->R;
  int32_t nu = R->rows, ni = R->cols;
  if (!(c->test_users > 0 && c->test_users < 1) || !(c->holdout > 0 && c->holdout < 1) ||
      !(c->cold_items >= 0 && c->cold_items < 1))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "split: fractions must be in (0, 1)");
  if (c->cold_items > 0 && !ds->has_content)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "split: cold items need content embeddings");
  int32_t maxlen = ni > nu ? ni : nu;
  int32_t *order = malloc(((size_t)maxlen + 1) * sizeof *order);
  uint8_t *is_test = calloc((size_t)nu + 1, 1);
  s->is_cold = calloc((size_t)ni + 1, 1);
  fedrec_triplets tr = {0}, fo = {0}, ho = {0}, co = {0};
  fedrec_status st = FEDREC_OK;
  if (!order || !is_test || !s->is_cold) {
    st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "split");
    goto done;
  }
  fedrec_rng r;
  fedrec_rng_seed(&r, c->seed, 0x73706c6974ULL);
  s->n_cold = pick_cold(s->is_cold, ds, c->cold_items, &r, order);
  for (int32_t u = 0; u < nu; u++) order[u] = u;
  shuffle(order, nu, &r);
  int32_t want = (int32_t)lround(c->test_users * nu), nt = 0;
  for (int32_t k = 0; k < nu && nt < want; k++) {
    int32_t u = order[k];
    if (R->indptr[u + 1] - R->indptr[u] >= c->min_items) is_test[u] = 1, nt++;
  }
  if (nt == 0 || nt == nu) {
    st = fedrec_error_set(err, FEDREC_ERR_EMPTY, "split: %d users, %d eligible test users (min %d items): need train and test users",
                          nu, nt, c->min_items);
    goto done;
  }
  int32_t trow = 0, srow = 0;
  s->train_user = malloc(((size_t)(nu - nt) + 1) * sizeof *s->train_user);
  if (!s->train_user) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "split");
  for (int32_t u = 0; u < nu && !st; u++) {
    if (is_test[u]) {
      fedrec_rng ur;
      fedrec_rng_seed(&ur, c->seed, (uint64_t)u + 1);
      st = split_user(&fo, &ho, &co, R, s->is_cold, u, srow++, c->holdout, &ur, order, err);
    } else {
      s->train_user[trow] = u;
      for (int64_t k = R->indptr[u]; k < R->indptr[u + 1] && !st; k++)
        if (!s->is_cold[R->indices[k]])
          st = fedrec_triplets_push(&tr, trow, R->indices[k], R->values[k], err);
      trow++;
    }
  }
  if (!st) st = fedrec_csr_from_triplets(&s->train, trow, ni, &tr, err);
  if (!st) st = fedrec_csr_from_triplets(&s->foldin, srow, ni, &fo, err);
  if (!st) st = fedrec_csr_from_triplets(&s->holdout, srow, ni, &ho, err);
  if (!st) st = fedrec_csr_from_triplets(&s->cold_holdout, srow, ni, &co, err);
done:
  free(order);
  free(is_test);
  fedrec_triplets_free(&tr);
  fedrec_triplets_free(&fo);
  fedrec_triplets_free(&ho);
  fedrec_triplets_free(&co);
  if (st) fedrec_split_free(s);
  return st;
}

static fedrec_status parse_into(fedrec_triplets *t, fedrec_idmap *users, fedrec_idmap *items,
                                const char *path, fedrec_error *err) {
  char *buf;
  int64_t len;
  fedrec_status st = fedrec_read_file(path, &buf, &len, err);
  if (st) return st;
  st = fedrec_parse_interactions_csv(t, users, items, buf, len, path, err);
  free(buf);
  return st;
}

fedrec_status fedrec_split_files(fedrec_split *s, fedrec_dataset *ds, const char *train,
                                 const char *foldin, const char *holdout, fedrec_error *err) {
  memset(s, 0, sizeof *s);
  memset(ds, 0, sizeof *ds);
  strcpy(ds->name, "files");
  fedrec_triplets tr = {0}, fo = {0}, ho = {0};
  fedrec_idmap *test_users = fedrec_idmap_new();
  ds->users = fedrec_idmap_new();
  ds->items = fedrec_idmap_new();
  fedrec_status st = test_users && ds->users && ds->items
                         ? FEDREC_OK
                         : fedrec_error_set(err, FEDREC_ERR_NOMEM, "split files");
  if (!st) st = parse_into(&tr, ds->users, ds->items, train, err);
  if (!st) st = parse_into(&fo, test_users, ds->items, foldin, err);
  if (!st) st = parse_into(&ho, test_users, ds->items, holdout, err);
  int32_t ni = fedrec_idmap_size(ds->items), nt = fedrec_idmap_size(test_users);
  if (!st && (tr.n == 0 || nt == 0))
    st = fedrec_error_set(err, FEDREC_ERR_EMPTY, "split files: need training and test interactions");
  if (!st) st = fedrec_csr_from_triplets(&ds->R, fedrec_idmap_size(ds->users), ni, &tr, err);
  if (!st) st = fedrec_csr_from_triplets(&s->train, fedrec_idmap_size(ds->users), ni, &tr, err);
  if (!st) st = fedrec_csr_from_triplets(&s->foldin, nt, ni, &fo, err);
  if (!st) st = fedrec_csr_from_triplets(&s->holdout, nt, ni, &ho, err);
  fedrec_triplets empty = {0};
  if (!st) st = fedrec_csr_from_triplets(&s->cold_holdout, nt, ni, &empty, err);
  if (!st && !(s->is_cold = calloc((size_t)ni + 1, 1)))
    st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "split files");
  fedrec_triplets_free(&tr);
  fedrec_triplets_free(&fo);
  fedrec_triplets_free(&ho);
  fedrec_idmap_free(test_users);
  if (st) {
    fedrec_split_free(s);
    fedrec_dataset_free(ds);
  }
  return st;
}
