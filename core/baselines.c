/* EASE and popularity baselines, item popularity, and the scorers used by evaluation. */
#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/train.h"
#include "fedrec/internal/parallel.h"

void fedrec_item_counts(double *out, const fedrec_csr *R) {
  memset(out, 0, (size_t)R->cols * sizeof *out);
  for (int64_t k = 0; k < fedrec_csr_nnz(R); k++) out[R->indices[k]] += 1.0;
}

typedef struct {
  double count;
  int32_t item;
} item_count;

static int by_count(const void *a, const void *b) {
  const item_count *x = a, *y = b;
  if (x->count != y->count) return x->count > y->count ? -1 : 1;
  return (x->item > y->item) - (x->item < y->item);
}

void fedrec_items_by_popularity(int32_t *out, const fedrec_csr *R) {
  item_count *c = malloc(((size_t)R->cols + 1) * sizeof *c);
  if (!c) { /* falls back to index order */
    for (int32_t i = 0; i < R->cols; i++) out[i] = i;
    return;
  }
  for (int32_t i = 0; i < R->cols; i++) c[i] = (item_count){0, i};
  for (int64_t k = 0; k < fedrec_csr_nnz(R); k++) c[R->indices[k]].count += 1.0;
  qsort(c, (size_t)R->cols, sizeof *c, by_count);
  for (int32_t i = 0; i < R->cols; i++) out[i] = c[i].item;
  free(c);
}

static size_t mf_work(const void *ctx, int32_t max_n) {
  const fedrec_mf_scorer *s = ctx;
  return fedrec_user_solve_work(s->d, max_n) + (size_t)s->d;
}

static fedrec_status mf_score(const void *ctx, float *scores, const int32_t *items,
                              const float *w, int32_t n, float *work) {
  const fedrec_mf_scorer *s = ctx;
  float *u = work;
  fedrec_status st = fedrec_user_solve(u, s->V, s->G, s->n_items, s->d, items, w, n, s->alpha0,
                                       s->reg, work + s->d);
  if (st) return st;
  cblas_sgemv(CblasRowMajor, CblasNoTrans, s->n_items, s->d, 1.0f, s->V, s->d, u, 1, 0.0f,
              scores, 1);
  return FEDREC_OK;
}

fedrec_scorer fedrec_mf_scorer_make(const fedrec_mf_scorer *ctx) {
  return (fedrec_scorer){.score = mf_score, .work_floats = mf_work, .ctx = ctx};
}

/* EASE over the m items that have training interactions (the others score 0 anyway):
 * P = (X^T X + lambda I)^-1 by Cholesky, then B = -P diag(1/diag P), diag B = 0. */
fedrec_status fedrec_ease_fit(fedrec_ease_model *e, const fedrec_csr *R, float lambda,
                              fedrec_error *err) {
  memset(e, 0, sizeof *e);
  if (!(lambda > 0)) return fedrec_error_set(err, FEDREC_ERR_ARG, "EASE: lambda must be > 0");
  e->n_items = R->cols;
  e->col = malloc(((size_t)R->cols + 1) * sizeof *e->col);
  if (!e->col) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "EASE");
  for (int32_t i = 0; i < R->cols; i++) e->col[i] = -1;
  for (int64_t k = 0; k < fedrec_csr_nnz(R); k++) e->col[R->indices[k]] = 0;
  int32_t m = 0;
  for (int32_t i = 0; i < R->cols; i++)
    if (e->col[i] == 0) e->col[i] = m++;
  e->m = m;
  if (m > 40000) {
    fedrec_ease_free(e);
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "EASE: %d items with interactions; the dense inverse is capped at 40000",
                            m);
  }
  float *P = calloc((size_t)m * m + 1, sizeof *P);
  float *inv = malloc(((size_t)m + 1) * sizeof *inv);
  if (!P || !inv) {
    free(P), free(inv), fedrec_ease_free(e);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "EASE: %d x %d matrix", m, m);
  }
  /* Gram matrix of the binary interactions: one rank-1 update per user's item pairs. */
  for (int32_t u = 0; u < R->rows; u++)
    for (int64_t a = R->indptr[u]; a < R->indptr[u + 1]; a++) {
      float *row = P + (size_t)e->col[R->indices[a]] * m;
      for (int64_t b = R->indptr[u]; b < R->indptr[u + 1]; b++) row[e->col[R->indices[b]]] += 1.0f;
    }
  for (int32_t i = 0; i < m; i++) P[(size_t)i * m + i] += lambda;
  lapack_int info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', m, P, m);
  if (!info) info = LAPACKE_spotri(LAPACK_COL_MAJOR, 'U', m, P, m);
  if (info) {
    free(P), free(inv), fedrec_ease_free(e);
    return fedrec_error_set(err, FEDREC_ERR_NUMERIC, "EASE: inversion failed (LAPACK info %d)", (int)info);
  }
  /* Column-major upper = row-major lower: mirror into a full symmetric matrix. */
  for (int32_t i = 0; i < m; i++)
    for (int32_t j = i + 1; j < m; j++) P[(size_t)i * m + j] = P[(size_t)j * m + i];
  for (int32_t j = 0; j < m; j++) inv[j] = -1.0f / P[(size_t)j * m + j];
  for (int32_t i = 0; i < m; i++) {
    float *row = P + (size_t)i * m;
    for (int32_t j = 0; j < m; j++) row[j] *= inv[j];
    row[i] = 0.0f;
  }
  free(inv);
  e->B = P;
  return FEDREC_OK;
}

void fedrec_ease_free(fedrec_ease_model *e) {
  if (!e) return;
  free(e->B);
  free(e->col);
  memset(e, 0, sizeof *e);
}

static size_t no_work(const void *ctx, int32_t max_n) {
  (void)ctx;
  (void)max_n;
  return 1;
}

static size_t ease_work(const void *ctx, int32_t max_n) {
  (void)max_n;
  return (size_t)((const fedrec_ease_model *)ctx)->m + 1;
}

static fedrec_status ease_score(const void *ctx, float *scores, const int32_t *items,
                                const float *w, int32_t n, float *work) {
  const fedrec_ease_model *e = ctx;
  (void)w;
  memset(work, 0, (size_t)e->m * sizeof *work);
  for (int32_t k = 0; k < n; k++)
    if (e->col[items[k]] >= 0)
      cblas_saxpy(e->m, 1.0f, e->B + (size_t)e->col[items[k]] * e->m, 1, work, 1);
  for (int32_t i = 0; i < e->n_items; i++) scores[i] = e->col[i] >= 0 ? work[e->col[i]] : 0.0f;
  return FEDREC_OK;
}

fedrec_scorer fedrec_ease_scorer_make(const fedrec_ease_model *ctx) {
  return (fedrec_scorer){.score = ease_score, .work_floats = ease_work, .ctx = ctx};
}

/* Popularity with a fixed pseudo-random tie-break in [0, 0.5): counts are integers, so the
 * order of items with different counts is unchanged, while items with equal counts (cold
 * items: all 0) are not ranked by their index, which follows first appearance in the data
 * file and so leaks popularity. */
static fedrec_status pop_score(const void *ctx, float *scores, const int32_t *items,
                               const float *w, int32_t n, float *work) {
  const fedrec_pop_scorer *s = ctx;
  (void)items, (void)w, (void)n, (void)work;
  for (int32_t i = 0; i < s->n_items; i++) {
    uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 32;
    scores[i] = (float)(s->counts[i] + 0.5 * (double)(h >> 40) / (double)(1u << 24));
  }
  return FEDREC_OK;
}

fedrec_scorer fedrec_pop_scorer_make(const fedrec_pop_scorer *ctx) {
  return (fedrec_scorer){.score = pop_score, .work_floats = no_work, .ctx = ctx};
}
