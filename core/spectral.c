/* The spectral round (see include/fedrec/model.h): the top items by private popularity, a
 * device's co-occurrence vector over them, and item vectors from the noisy co-occurrence sum. */
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/model.h"

typedef struct {
  float pop;
  int32_t item;
} ranked;

static int by_pop(const void *a, const void *b) {
  const ranked *x = a, *y = b;
  if (x->pop != y->pop) return x->pop < y->pop ? 1 : -1; /* descending */
  return (x->item > y->item) - (x->item < y->item);     /* ties: lower index first */
}

fedrec_status fedrec_model_top_popular(int32_t *out, const fedrec_model *m, int32_t M, fedrec_error *err) {
  if (!m->pop || M < 1 || M > m->n_items)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "top popular: %d of %d items (the model %s popularity)", M, m->n_items,
                            m->pop ? "has" : "has no");
  ranked *r = malloc((size_t)m->n_items * sizeof *r);
  if (!r) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "top popular: %d items", m->n_items);
  for (int32_t i = 0; i < m->n_items; i++) r[i] = (ranked){m->pop[i], i};
  qsort(r, (size_t)m->n_items, sizeof *r, by_pop);
  for (int32_t k = 0; k < M; k++) out[k] = r[k].item;
  free(r);
  return FEDREC_OK;
}

int64_t fedrec_gram_dim(int32_t M) { return (int64_t)M * (M + 1) / 2; }

fedrec_status fedrec_gram_update(float *x, const int32_t *top, int32_t M, int32_t n_items, const int32_t *items, int32_t n,
                                 fedrec_error *err) {
  int32_t *pos = malloc((size_t)n_items * sizeof *pos), *mine = malloc((size_t)(n > 0 ? n : 1) * sizeof *mine), k = 0;
  if (!pos || !mine) {
    free(pos), free(mine);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "co-occurrence over %d items", M);
  }
  for (int32_t i = 0; i < n_items; i++) pos[i] = -1;
  for (int32_t a = 0; a < M; a++) pos[top[a]] = a;
  for (int32_t j = 0; j < n; j++) {
    int32_t a = items[j] >= 0 && items[j] < n_items ? pos[items[j]] : -1;
    if (a >= 0) mine[k++] = a, pos[items[j]] = -1; /* once per item, however often listed */
  }
  memset(x, 0, (size_t)fedrec_gram_dim(M) * sizeof *x);
  float w = k ? 1.0f / (float)k : 0.0f; /* x x^T of the unit vector 1_S / sqrt(k): each entry 1/k */
  for (int32_t p = 0; p < k; p++)
    for (int32_t q = 0; q < k; q++) {
      int32_t a = mine[p], b = mine[q];
      if (a <= b) x[(int64_t)a * M - (int64_t)a * (a - 1) / 2 + (b - a)] = w;
    }
  free(pos), free(mine);
  return FEDREC_OK;
}

fedrec_status fedrec_spectral_embed(float *V, const float *sum, int32_t M, int32_t d, double noise_std, int32_t *rank,
                                    fedrec_error *err) {
  *rank = 0;
  if (M < 1 || d < 1 || !(noise_std >= 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "spectral: %d items, d %d, noise %g", M, d, noise_std);
  int32_t k = d < M ? d : M;
  double *A = malloc((size_t)M * M * sizeof *A), *w = malloc((size_t)M * sizeof *w), *Z = malloc((size_t)M * k * sizeof *Z);
  lapack_int *isuppz = malloc(2 * (size_t)k * sizeof *isuppz);
  if (!A || !w || !Z || !isuppz) {
    free(A), free(w), free(Z), free(isuppz);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "spectral: %d x %d", M, M);
  }
  for (int32_t a = 0, at = 0; a < M; a++)
    for (int32_t b = a; b < M; b++, at++) A[(size_t)a * M + b] = A[(size_t)b * M + a] = sum[at];
  lapack_int found = 0;
  /* the k largest eigenpairs (ascending: il..iu = M-k+1..M) */
  lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', M, A, M, 0, 0, M - k + 1, M, 0, &found, w, Z, k, isuppz);
  fedrec_status s = FEDREC_OK;
  if (info || found != k) s = fedrec_error_set(err, FEDREC_ERR_NUMERIC, "spectral: eigen-decomposition failed (%d)", (int)info);
  /* the noise's own spectrum reaches about 2 noise_std sqrt(M) (a symmetric Gaussian matrix):
   * a direction counts by how far its eigenvalue stands above that, and none below it */
  double edge = 2 * noise_std * sqrt((double)M);
  memset(V, 0, (size_t)M * d * sizeof *V);
  for (int32_t j = 0; !s && j < k; j++) {
    int32_t col = k - 1 - j; /* largest first */
    double g = w[col] - edge;
    if (!(g > 0)) continue;
    (*rank)++;
    double sc = sqrt(g);
    for (int32_t a = 0; a < M; a++) V[(size_t)a * d + j] = (float)(Z[(size_t)a * k + col] * sc);
  }
  free(A), free(w), free(Z), free(isuppz);
  return s;
}
