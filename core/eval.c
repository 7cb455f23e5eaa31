/* Ranking metrics under strong generalisation. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/eval.h"
#include "fedrec/internal/parallel.h"

/* a ranks worse than b: lower score, or equal score and higher index */
static int worse(float sa, int32_t a, float sb, int32_t b) {
  return sa < sb || (sa == sb && a > b);
}

static void sift_down(int32_t *h, int32_t n, int32_t i, const float *s) {
  for (;;) {
    int32_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && worse(s[h[l]], h[l], s[h[m]], h[m])) m = l;
    if (r < n && worse(s[h[r]], h[r], s[h[m]], h[m])) m = r;
    if (m == i) return;
    int32_t t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

int32_t fedrec_topk(int32_t *out, const float *scores, int32_t n, int32_t k,
                    const uint8_t *allowed) {
  /* A min-heap (by rank) of the best k so far; its root is the one to beat. */
  int32_t m = 0;
  for (int32_t i = 0; i < n && k > 0; i++) {
    if (allowed && !allowed[i]) continue;
    if (m < k) {
      out[m++] = i;
      if (m == k)
        for (int32_t j = k / 2 - 1; j >= 0; j--) sift_down(out, k, j, scores);
    } else if (worse(scores[out[0]], out[0], scores[i], i)) {
      out[0] = i;
      sift_down(out, k, 0, scores);
    }
  }
  if (m < k)
    for (int32_t j = m / 2 - 1; j >= 0; j--) sift_down(out, m, j, scores);
  /* Pop the heap from worst to best into the tail. */
  for (int32_t e = m - 1; e > 0; e--) {
    int32_t t = out[0];
    out[0] = out[e];
    out[e] = t;
    sift_down(out, e, 0, scores);
  }
  return m;
}

static int contains(const int32_t *sorted, int32_t n, int32_t x) {
  int32_t lo = 0, hi = n;
  while (lo < hi) {
    int32_t mid = lo + (hi - lo) / 2;
    if (sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo < n && sorted[lo] == x;
}

void fedrec_rank_metrics(double *recall, double *ndcg, const int32_t *top, int32_t ntop, int32_t k,
                         const int32_t *held, int32_t nheld) {
  double hits = 0, dcg = 0, idcg = 0;
  int32_t lim = nheld < k ? nheld : k;
  for (int32_t r = 0; r < ntop && r < k; r++)
    if (contains(held, nheld, top[r])) {
      hits += 1;
      dcg += 1.0 / log2(r + 2.0);
    }
  for (int32_t r = 0; r < lim; r++) idcg += 1.0 / log2(r + 2.0);
  *recall = lim ? hits / lim : 0;
  *ndcg = idcg > 0 ? dcg / idcg : 0;
}

double fedrec_list_diversity(const int32_t *top, int32_t ntop, const float *content, int32_t p) {
  if (ntop < 2) return 0;
  double sum = 0;
  int64_t pairs = 0;
  for (int32_t a = 0; a < ntop; a++)
    for (int32_t b = a + 1; b < ntop; b++) {
      const float *x = content + (size_t)top[a] * p, *y = content + (size_t)top[b] * p;
      double xy = 0, xx = 0, yy = 0;
      for (int32_t j = 0; j < p; j++) {
        xy += (double)x[j] * y[j];
        xx += (double)x[j] * x[j];
        yy += (double)y[j] * y[j];
      }
      sum += xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 0;
      pairs++;
    }
  return 1.0 - sum / (double)pairs;
}

typedef struct {
  const fedrec_scorer *sc;
  const fedrec_csr *foldin, *holdout;
  const fedrec_eval_config *c;
  int32_t n_items;
  float **scores, **work;
  uint8_t **allowed, **seen;
  int32_t **top;
  double (*acc)[5]; /* per user: evaluated (1) or not (0), recall, ndcg, diversity, novelty; added
                     * up in user order afterwards, so that the result does not depend on which
                     * thread took which users */
} ev;

static fedrec_status eval_users(void *p, int tid, int64_t b, int64_t e) {
  ev *s = p;
  const fedrec_eval_config *c = s->c;
  uint8_t *allowed = s->allowed[tid];
  for (int64_t u = b; u < e; u++) {
    int64_t fo = s->foldin->indptr[u], ho = s->holdout->indptr[u];
    int32_t nf = (int32_t)(s->foldin->indptr[u + 1] - fo);
    int32_t nh = (int32_t)(s->holdout->indptr[u + 1] - ho);
    if (c->lists)
      for (int32_t r = 0; r < c->k; r++) c->lists[u * c->k + r] = -1;
    if (nf == 0 || nh == 0) continue;
    const int32_t *fi = s->foldin->indices + fo;
    fedrec_status st = s->sc->score(s->sc->ctx, s->scores[tid], fi, s->foldin->values + fo, nf,
                                    s->work[tid]);
    if (st) return st;
    for (int32_t k = 0; k < nf; k++) allowed[fi[k]] = 0;
    int32_t nt = fedrec_topk(s->top[tid], s->scores[tid], s->n_items, c->k, allowed);
    for (int32_t k = 0; k < nf; k++) allowed[fi[k]] = c->candidates ? c->candidates[fi[k]] : 1;
    if (c->lists) memcpy(c->lists + u * c->k, s->top[tid], (size_t)nt * sizeof *c->lists);
    double rec, ndcg;
    fedrec_rank_metrics(&rec, &ndcg, s->top[tid], nt, c->k, s->holdout->indices + ho, nh);
    double *a = s->acc[u];
    a[0] = 1;
    a[1] = rec;
    a[2] = ndcg;
    if (c->content) a[3] = fedrec_list_diversity(s->top[tid], nt, c->content, c->content_dim);
    double nov = 0;
    for (int32_t r = 0; r < nt; r++) {
      int32_t i = s->top[tid][r];
      s->seen[tid][i] = 1;
      if (c->item_users)
        nov += -log2((c->item_users[i] + 1.0) / (c->train_users + 1.0));
    }
    a[4] = nt ? nov / nt : 0;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_evaluate(fedrec_metrics *out, const fedrec_scorer *sc,
                              const fedrec_csr *foldin, const fedrec_csr *holdout,
                              const fedrec_eval_config *c, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  int32_t n = foldin->cols, T = c->threads > 0 ? c->threads : fedrec_cpu_count();
  if (foldin->rows != holdout->rows || holdout->cols != n || c->k < 1)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "evaluate: fold-in and held-out shapes differ, or k < 1");
  int32_t max_n = 0;
  for (int32_t u = 0; u < foldin->rows; u++)
    if (foldin->indptr[u + 1] - foldin->indptr[u] > max_n)
      max_n = (int32_t)(foldin->indptr[u + 1] - foldin->indptr[u]);
  ev s = {.sc = sc, .foldin = foldin, .holdout = holdout, .c = c, .n_items = n};
  s.scores = calloc((size_t)T, sizeof *s.scores);
  s.work = calloc((size_t)T, sizeof *s.work);
  s.allowed = calloc((size_t)T, sizeof *s.allowed);
  s.seen = calloc((size_t)T, sizeof *s.seen);
  s.top = calloc((size_t)T, sizeof *s.top);
  s.acc = calloc((size_t)foldin->rows + 1, sizeof *s.acc);
  fedrec_status st = FEDREC_OK;
  int ok = s.scores && s.work && s.allowed && s.seen && s.top && s.acc;
  for (int t = 0; ok && t < T; t++) {
    s.scores[t] = malloc((size_t)n * sizeof(float));
    s.work[t] = malloc(sc->work_floats(sc->ctx, max_n) * sizeof(float));
    s.allowed[t] = malloc((size_t)n);
    s.seen[t] = calloc((size_t)n, 1);
    s.top[t] = malloc((size_t)c->k * sizeof(int32_t));
    ok = s.scores[t] && s.work[t] && s.allowed[t] && s.seen[t] && s.top[t];
    if (ok) {
      if (c->candidates) memcpy(s.allowed[t], c->candidates, (size_t)n);
      else memset(s.allowed[t], 1, (size_t)n);
    }
  }
  if (!ok) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "evaluation buffers");
  if (!st) {
    fedrec_blas_threads(1);
    st = fedrec_parallel_for(T, foldin->rows, 16, eval_users, &s);
    fedrec_blas_threads(fedrec_cpu_count());
    if (st) fedrec_error_set(err, st, "evaluate: scoring a user failed (%s)", fedrec_status_str(st));
  }
  if (!st) {
    double a[5] = {0};
    int32_t cand = 0, covered = 0;
    for (int32_t u = 0; u < foldin->rows; u++)
      for (int j = 0; j < 5; j++) a[j] += s.acc[u][j];
    for (int32_t i = 0; i < n; i++) {
      if (c->candidates && !c->candidates[i]) continue;
      cand++;
      int hit = 0;
      for (int t = 0; t < T && !hit; t++) hit = s.seen[t][i];
      covered += hit;
    }
    out->k = c->k;
    out->users = (int32_t)a[0];
    out->items = cand;
    if (a[0] > 0) {
      out->recall = a[1] / a[0];
      out->ndcg = a[2] / a[0];
      out->diversity = c->content ? a[3] / a[0] : NAN;
      out->novelty = c->item_users ? a[4] / a[0] : NAN;
    }
    out->coverage = cand ? (double)covered / cand : 0;
  }
  for (int t = 0; t < T; t++) {
    if (s.scores) free(s.scores[t]);
    if (s.work) free(s.work[t]);
    if (s.allowed) free(s.allowed[t]);
    if (s.seen) free(s.seen[t]);
    if (s.top) free(s.top[t]);
  }
  free(s.scores), free(s.work), free(s.allowed), free(s.seen), free(s.top), free(s.acc);
  return st;
}
