/* EASE and popularity baselines, item popularity, and the scorers used by evaluation. */
#include <cblas.h>
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/train.h"
#include "parallel.h"

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

fedrec_status fedrec_ease_fit(float **Bout, const fedrec_csr *R, float lambda,
                              fedrec_error *err) {
  int32_t n = R->cols;
  *Bout = NULL;
  if (n > 40000)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "EASE: %d items; the dense %d x %d inverse is capped at 40000 items",
                            n, n, n);
  if (!(lambda > 0)) return fedrec_error_set(err, FEDREC_ERR_ARG, "EASE: lambda must be > 0");
  float *P = calloc((size_t)n * n, sizeof *P);
  if (!P) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "EASE: %d x %d matrix", n, n);
  /* Gram matrix of the binary interactions: one rank-1 update per user's item pairs. */
  for (int32_t u = 0; u < R->rows; u++)
    for (int64_t a = R->indptr[u]; a < R->indptr[u + 1]; a++) {
      float *row = P + (size_t)R->indices[a] * n;
      for (int64_t b = R->indptr[u]; b < R->indptr[u + 1]; b++) row[R->indices[b]] += 1.0f;
    }
  for (int32_t i = 0; i < n; i++) P[(size_t)i * n + i] += lambda;
  lapack_int info = LAPACKE_spotrf(LAPACK_COL_MAJOR, 'U', n, P, n);
  if (!info) info = LAPACKE_spotri(LAPACK_COL_MAJOR, 'U', n, P, n);
  if (info) {
    free(P);
    return fedrec_error_set(err, FEDREC_ERR_NUMERIC, "EASE: inversion failed (LAPACK info %d)", (int)info);
  }
  /* Column-major upper = row-major lower: mirror into a full symmetric matrix. */
  for (int32_t i = 0; i < n; i++)
    for (int32_t j = i + 1; j < n; j++) P[(size_t)i * n + j] = P[(size_t)j * n + i];
  /* B_ij = -P_ij / P_jj, B_jj = 0 */
  float *inv = malloc((size_t)n * sizeof *inv);
  if (!inv) {
    free(P);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "EASE");
  }
  for (int32_t j = 0; j < n; j++) inv[j] = -1.0f / P[(size_t)j * n + j];
  for (int32_t i = 0; i < n; i++) {
    float *row = P + (size_t)i * n;
    for (int32_t j = 0; j < n; j++) row[j] *= inv[j];
    row[i] = 0.0f;
  }
  free(inv);
  *Bout = P;
  return FEDREC_OK;
}

static size_t no_work(const void *ctx, int32_t max_n) {
  (void)ctx;
  (void)max_n;
  return 1;
}

static fedrec_status ease_score(const void *ctx, float *scores, const int32_t *items,
                                const float *w, int32_t n, float *work) {
  const fedrec_ease_scorer *s = ctx;
  (void)w;
  (void)work;
  memset(scores, 0, (size_t)s->n_items * sizeof *scores);
  for (int32_t k = 0; k < n; k++)
    cblas_saxpy(s->n_items, 1.0f, s->B + (size_t)items[k] * s->n_items, 1, scores, 1);
  return FEDREC_OK;
}

fedrec_scorer fedrec_ease_scorer_make(const fedrec_ease_scorer *ctx) {
  return (fedrec_scorer){.score = ease_score, .work_floats = no_work, .ctx = ctx};
}

static fedrec_status pop_score(const void *ctx, float *scores, const int32_t *items,
                               const float *w, int32_t n, float *work) {
  const fedrec_pop_scorer *s = ctx;
  (void)items, (void)w, (void)n, (void)work;
  for (int32_t i = 0; i < s->n_items; i++) scores[i] = (float)s->counts[i];
  return FEDREC_OK;
}

fedrec_scorer fedrec_pop_scorer_make(const fedrec_pop_scorer *ctx) {
  return (fedrec_scorer){.score = pop_score, .work_floats = no_work, .ctx = ctx};
}
