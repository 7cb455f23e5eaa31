#include <stdlib.h>
#include <string.h>

#include "fedrec/data.h"
#include "internal.h"

void fedrec_csr_free(fedrec_csr *m) {
  if (!m) return;
  free(m->indptr);
  free(m->indices);
  free(m->values);
  memset(m, 0, sizeof *m);
}

void fedrec_triplets_free(fedrec_triplets *t) {
  if (!t) return;
  free(t->r);
  free(t->c);
  free(t->v);
  memset(t, 0, sizeof *t);
}

fedrec_status fedrec_triplets_push(fedrec_triplets *t, int32_t r, int32_t c, float v,
                                   fedrec_error *err) {
  if (t->n == t->cap) {
    int64_t nc = t->cap ? t->cap * 2 : 4096;
    if (nc > ((int64_t)1 << 40))
      return fedrec_error_set(err, FEDREC_ERR_LIMIT, "more than 2^40 interactions");
    int32_t *nr = realloc(t->r, (size_t)nc * sizeof *nr);
    if (nr) t->r = nr;
    int32_t *ncol = nr ? realloc(t->c, (size_t)nc * sizeof *ncol) : NULL;
    if (ncol) t->c = ncol;
    float *nv = ncol ? realloc(t->v, (size_t)nc * sizeof *nv) : NULL;
    if (!nv) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "growing interaction list");
    t->v = nv;
    t->cap = nc;
  }
  t->r[t->n] = r;
  t->c[t->n] = c;
  t->v[t->n] = v;
  t->n++;
  return FEDREC_OK;
}

/* Sorts a row's (index, value) pairs by index: insertion sort for short rows, else
 * a shell sort; rows are typically short and nearly sorted. */
static void sort_row(int32_t *idx, float *val, int64_t n) {
  static const int64_t gaps[] = {701, 301, 132, 57, 23, 10, 4, 1};
  for (size_t g = 0; g < sizeof gaps / sizeof gaps[0]; g++) {
    int64_t gap = gaps[g];
    for (int64_t i = gap; i < n; i++) {
      int32_t ti = idx[i];
      float tv = val[i];
      int64_t j = i;
      for (; j >= gap && idx[j - gap] > ti; j -= gap) {
        idx[j] = idx[j - gap];
        val[j] = val[j - gap];
      }
      idx[j] = ti;
      val[j] = tv;
    }
  }
}

fedrec_status fedrec_csr__build(fedrec_csr *out, int32_t rows, int32_t cols,
                                const fedrec_triplets *t, int sum_dups, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  out->rows = rows;
  out->cols = cols;
  out->indptr = calloc((size_t)rows + 1, sizeof *out->indptr);
  out->indices = malloc((size_t)(t->n ? t->n : 1) * sizeof *out->indices);
  out->values = malloc((size_t)(t->n ? t->n : 1) * sizeof *out->values);
  int64_t *fill = calloc((size_t)rows + 1, sizeof *fill);
  if (!out->indptr || !out->indices || !out->values || !fill) {
    free(fill);
    fedrec_csr_free(out);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "building a %d x %d sparse matrix", rows,
                            cols);
  }
  for (int64_t k = 0; k < t->n; k++) out->indptr[t->r[k] + 1]++;
  for (int32_t i = 0; i < rows; i++) out->indptr[i + 1] += out->indptr[i];
  for (int64_t k = 0; k < t->n; k++) {
    int64_t p = out->indptr[t->r[k]] + fill[t->r[k]]++;
    out->indices[p] = t->c[k];
    out->values[p] = t->v[k];
  }
  free(fill);
  /* Sort each row and merge duplicates (keep the largest value), compacting in place. */
  int64_t w = 0;
  for (int32_t i = 0; i < rows; i++) {
    int64_t b = out->indptr[i], e = out->indptr[i + 1];
    sort_row(out->indices + b, out->values + b, e - b);
    out->indptr[i] = w;
    for (int64_t k = b; k < e; k++) {
      if (w > out->indptr[i] && out->indices[w - 1] == out->indices[k]) {
        if (sum_dups) out->values[w - 1] += out->values[k];
        else if (out->values[k] > out->values[w - 1]) out->values[w - 1] = out->values[k];
      } else {
        out->indices[w] = out->indices[k];
        out->values[w] = out->values[k];
        w++;
      }
    }
  }
  out->indptr[rows] = w;
  return FEDREC_OK;
}

fedrec_status fedrec_csr_from_triplets(fedrec_csr *out, int32_t rows, int32_t cols,
                                       const fedrec_triplets *t, fedrec_error *err) {
  return fedrec_csr__build(out, rows, cols, t, 0, err);
}

fedrec_status fedrec_csr_transpose(fedrec_csr *out, const fedrec_csr *in, fedrec_error *err) {
  int64_t nnz = fedrec_csr_nnz(in);
  memset(out, 0, sizeof *out);
  out->rows = in->cols;
  out->cols = in->rows;
  out->indptr = calloc((size_t)in->cols + 1, sizeof *out->indptr);
  out->indices = malloc((size_t)(nnz ? nnz : 1) * sizeof *out->indices);
  out->values = malloc((size_t)(nnz ? nnz : 1) * sizeof *out->values);
  int64_t *fill = calloc((size_t)in->cols + 1, sizeof *fill);
  if (!out->indptr || !out->indices || !out->values || !fill) {
    free(fill);
    fedrec_csr_free(out);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "transposing a sparse matrix");
  }
  for (int64_t k = 0; k < nnz; k++) out->indptr[in->indices[k] + 1]++;
  for (int32_t j = 0; j < in->cols; j++) out->indptr[j + 1] += out->indptr[j];
  /* Rows are visited in order, so each output row comes out sorted. */
  for (int32_t i = 0; i < in->rows; i++)
    for (int64_t k = in->indptr[i]; k < in->indptr[i + 1]; k++) {
      int32_t j = in->indices[k];
      int64_t p = out->indptr[j] + fill[j]++;
      out->indices[p] = i;
      out->values[p] = in->values[k];
    }
  free(fill);
  return FEDREC_OK;
}
