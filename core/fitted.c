/* Populations fitted to a real data set (see include/fedrec/fitted.h). */
#include "fedrec/fitted.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/eval.h"
#include "fedrec/internal/parallel.h"
#include "fedrec/internal/tool.h"
#include "fedrec/rng.h"
#include "fedrec/train.h"

void fedrec_fitted_defaults(fedrec_fitted_config *c) {
  *c = (fedrec_fitted_config){.users = 100000, .dim = 32, .epochs = 8, .tau = 0, .jitter = 0.1, .seed = 42};
}

fedrec_status fedrec_fitted_parse(fedrec_fitted_config *c, const char *spec, fedrec_error *err) {
  const fedrec_spec_key keys[] = {
      {"users", 2, 1e8, FEDREC_SPEC_INT32, &c->users}, {"dim", 1, 256, FEDREC_SPEC_INT32, &c->dim},
      {"epochs", 1, 100, FEDREC_SPEC_INT32, &c->epochs}, {"tau", 0, 1e4, FEDREC_SPEC_DOUBLE, &c->tau},
      {"jitter", 0, 10, FEDREC_SPEC_DOUBLE, &c->jitter}, {"seed", 0, 9e15, FEDREC_SPEC_UINT64, &c->seed},
      {"offsets", 0, 1, FEDREC_SPEC_INT32, &c->match_items}};
  return fedrec_spec_parse("fitted", spec, keys, sizeof keys / sizeof keys[0], err);
}

typedef struct {
  const fedrec_csr *R;  /* the source */
  const float *V, *U;   /* fitted item (n x d) and user (rows x d) vectors */
  float *offset;        /* match_items: per-item logit offsets (n), else NULL */
  const int32_t *who;   /* source users with history */
  int32_t nwho, d, n;
  double tau, jitter_sd;
  uint64_t seed;
  int64_t *indptr;      /* (users + 1): each synthetic user's slots, from their source's length */
  int32_t *src;         /* (users) the source user drawn */
  int32_t *indices;     /* filled */
  float *values;
  float **keys, **u;    /* per thread: n scores, d taste */
  int32_t **top;        /* per thread: the longest history */
} gen;

/* The source user of synthetic user j (a draw of its own stream, so any thread order agrees). */
static int32_t source_of(const gen *g, int64_t j) {
  fedrec_rng r;
  fedrec_rng_seed(&r, g->seed, 0x7372630000000000ULL ^ (uint64_t)j);
  return g->who[fedrec_rng_below(&r, (uint64_t)g->nwho)];
}

static fedrec_status draw_users(void *ctx, int tid, int64_t b, int64_t e) {
  gen *g = ctx;
  float *keys = g->keys[tid], *u = g->u[tid];
  int32_t *top = g->top[tid], d = g->d;
  for (int64_t j = b; j < e; j++) {
    int32_t s = g->src[j];
    int64_t at = g->indptr[j], len = g->indptr[j + 1] - at, sb = g->R->indptr[s];
    fedrec_rng r;
    fedrec_rng_seed(&r, g->seed, (uint64_t)j + 1);
    for (int32_t k = 0; k < d; k++) u[k] = g->U[(size_t)s * d + k] + (float)(g->jitter_sd * fedrec_rng_normal(&r));
    cblas_sgemv(CblasRowMajor, CblasNoTrans, g->n, d, (float)g->tau, g->V, d, u, 1, 0.0f, keys, 1);
    if (g->offset) cblas_saxpy(g->n, 1.0f, g->offset, 1, keys, 1);
    for (int32_t i = 0; i < g->n; i++) { /* Gumbel top-len: sampling without replacement ~ exp(tau u.v) */
      float x = (float)((fedrec_rng_u64(&r) >> 40) + 1) * 0x1.0p-24f; /* in (0, 1] */
      keys[i] -= logf(-logf(x) + 1e-30f);
    }
    int32_t got = fedrec_topk(top, keys, g->n, (int32_t)len, NULL);
    for (int32_t k = 0; k < got; k++) g->indices[at + k] = top[k], g->values[at + k] = g->R->values[sb + k];
    for (int64_t k = got; k < len; k++) g->indices[at + k] = -1;
  }
  return FEDREC_OK;
}

static int by_count_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x < y) - (x > y);
}

static int by_int(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Shares of interactions on the top 0.1/1/10% of items, length quantiles and mean, items used. */
static void describe(const fedrec_csr *R, double share[3], double q[3], double *mean, int32_t *used) {
  double *c = calloc((size_t)R->cols, sizeof *c), total = 0;
  int64_t *len = malloc((size_t)(R->rows ? R->rows : 1) * sizeof *len);
  if (!c || !len) {
    free(c), free(len);
    return;
  }
  for (int64_t k = 0; k < R->indptr[R->rows]; k++)
    if (R->indices[k] >= 0 && R->indices[k] < R->cols) c[R->indices[k]] += 1, total += 1;
  qsort(c, (size_t)R->cols, sizeof *c, by_count_desc);
  static const double frac[3] = {0.001, 0.01, 0.1};
  *used = 0;
  for (int32_t i = 0; i < R->cols; i++) *used += c[i] > 0;
  for (int f = 0; f < 3; f++) {
    int32_t m = (int32_t)ceil(frac[f] * R->cols);
    double s = 0;
    for (int32_t i = 0; i < m; i++) s += c[i];
    share[f] = total > 0 ? s / total : 0;
  }
  for (int32_t u = 0; u < R->rows; u++) len[u] = R->indptr[u + 1] - R->indptr[u];
  qsort(len, (size_t)R->rows, sizeof *len, by_int);
  static const double qs[3] = {0.1, 0.5, 0.9};
  for (int k = 0; k < 3; k++) q[k] = R->rows ? (double)len[(int64_t)(qs[k] * (R->rows - 1))] : 0;
  *mean = R->rows ? total / R->rows : 0;
  free(c), free(len);
}

/* Fills g->indices/values for users [0, n) (indptr, src set); the top-1% share of the result. */
static fedrec_status draw(gen *g, int32_t n, int threads, double *share1, fedrec_error *err) {
  fedrec_status s = fedrec_parallel_for(threads, n, 64, draw_users, g);
  if (s) return fedrec_error_set(err, s, "fitted: drawing users");
  fedrec_csr R = {.rows = n, .cols = g->n, .indptr = g->indptr, .indices = g->indices, .values = g->values};
  double share[3], q[3], mean;
  int32_t used;
  describe(&R, share, q, &mean, &used);
  *share1 = share[1];
  return FEDREC_OK;
}

/* The fitted factor model's item vectors V (n x d) and every source user's vector U (rows x d). */
static fedrec_status fit(float **V, float **U, const fedrec_dataset *src, const fedrec_fitted_config *c, fedrec_error *err) {
  fedrec_ials_config ic;
  fedrec_ials_defaults(&ic);
  ic.dim = c->dim, ic.epochs = c->epochs, ic.use_head = 0, ic.n_free = -1, ic.threads = c->threads, ic.seed = c->seed;
  fedrec_model m;
  fedrec_status s = fedrec_ials_fit(&m, &src->R, NULL, 0, &ic, NULL, NULL, err);
  if (s) return s;
  int32_t n = src->R.cols, d = c->dim, rows = src->R.rows, maxn = 1;
  for (int32_t u = 0; u < rows; u++)
    if (src->R.indptr[u + 1] - src->R.indptr[u] > maxn) maxn = (int32_t)(src->R.indptr[u + 1] - src->R.indptr[u]);
  *V = malloc((size_t)n * d * sizeof **V);
  *U = calloc((size_t)rows * d, sizeof **U);
  float *G = malloc((size_t)d * d * sizeof *G), *work = malloc(fedrec_user_solve_work(d, maxn) * sizeof *work);
  if (!*V || !*U || !G || !work) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: %d users x %d", rows, d);
  if (!s) {
    fedrec_model_item_vectors(*V, &m);
    fedrec_gramian(G, *V, n, d);
  }
  for (int32_t u = 0; !s && u < rows; u++) {
    int64_t a = src->R.indptr[u], b = src->R.indptr[u + 1];
    if (b > a && fedrec_user_solve(*U + (size_t)u * d, *V, G, n, d, src->R.indices + a, src->R.values + a, (int32_t)(b - a),
                                   ic.alpha0, ic.reg, work))
      s = fedrec_error_set(err, FEDREC_ERR_NUMERIC, "fitted: user %d's system is not positive definite", u);
  }
  free(G), free(work);
  fedrec_model_free(&m);
  return s;
}

/* tau whose top-1% share on a sample of users is the source's (bisection in log tau). */
static fedrec_status calibrate(gen *g, int32_t sample, int threads, double want, fedrec_error *err) {
  double lo = log(0.1), hi = log(1e4), got = 0;
  for (int it = 0; it < 12; it++) {
    g->tau = exp((lo + hi) / 2);
    fedrec_status s = draw(g, sample, threads, &got, err);
    if (s) return s;
    if (got < want) lo = log(g->tau);
    else hi = log(g->tau);
  }
  g->tau = exp((lo + hi) / 2);
  return FEDREC_OK;
}

/* match_items: per-item offsets b_i such that each item's share of a sample's interactions is
 * its share in the source (b_i += log(want_i / got_i), a few passes; items the source never saw
 * are never drawn). Returns the last pass's total variation between the two shares. */
#define FITTED_OFFSET_PASSES 8
#define FITTED_OFFSET_SAMPLE 20000
static fedrec_status fit_offsets(gen *g, int32_t sample, int threads, double *tv, fedrec_error *err) {
  double *want = calloc((size_t)g->n, sizeof *want), *got = calloc((size_t)g->n, sizeof *got), share1;
  g->offset = calloc((size_t)g->n, sizeof *g->offset);
  fedrec_status s = want && got && g->offset ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: offsets");
  double wsum = 0;
  for (int64_t k = 0; !s && k < g->R->indptr[g->R->rows]; k++)
    if (g->R->indices[k] >= 0 && g->R->indices[k] < g->n) want[g->R->indices[k]] += 1, wsum += 1;
  for (int32_t i = 0; !s && i < g->n; i++)
    if (want[i] == 0) g->offset[i] = -1e4f; /* far below any tau u.v + Gumbel noise */
  for (int pass = 0; !s && pass < FITTED_OFFSET_PASSES; pass++) {
    s = draw(g, sample, threads, &share1, err);
    memset(got, 0, (size_t)g->n * sizeof *got);
    double gsum = 0;
    for (int64_t k = 0; !s && k < g->indptr[sample]; k++)
      if (g->indices[k] >= 0) got[g->indices[k]] += 1, gsum += 1;
    *tv = 0;
    for (int32_t i = 0; !s && i < g->n; i++) {
      *tv += 0.5 * fabs(want[i] / wsum - got[i] / (gsum > 0 ? gsum : 1));
      if (want[i] > 0) g->offset[i] += (float)log((want[i] / wsum * gsum + 0.5) / (got[i] + 0.5));
    }
  }
  free(want), free(got);
  return s;
}

/* out's catalogue (ids, content) from src, users f0, f1, ..., R from g's slots sorted by item. */
static fedrec_status assemble(fedrec_dataset *out, const fedrec_dataset *src, gen *g, int32_t users, fedrec_error *err) {
  snprintf(out->name, sizeof out->name, "fitted:%.50s", src->name);
  out->users = fedrec_idmap_new();
  out->items = fedrec_idmap_new();
  if (!out->users || !out->items) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: ids");
  char id[24];
  for (int32_t u = 0; u < users; u++) {
    int len = snprintf(id, sizeof id, "f%d", u);
    if (fedrec_idmap_get(out->users, id, (size_t)len, 1) != u) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: ids");
  }
  for (int32_t i = 0; i < g->n; i++) {
    const char *name = fedrec_idmap_name(src->items, i);
    if (fedrec_idmap_get(out->items, name, strlen(name), 1) != i) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: ids");
  }
  if (src->content) {
    out->content = malloc((size_t)g->n * src->content_dim * sizeof *out->content);
    out->has_content = malloc((size_t)g->n);
    if (!out->content || !out->has_content) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: content");
    memcpy(out->content, src->content, (size_t)g->n * src->content_dim * sizeof *out->content);
    memcpy(out->has_content, src->has_content, (size_t)g->n);
    out->content_dim = src->content_dim;
  }
  fedrec_csr R = {.rows = users, .cols = g->n, .indptr = g->indptr, .indices = g->indices, .values = g->values}, t;
  fedrec_status s = fedrec_csr_transpose(&t, &R, err); /* twice: rows sorted by item */
  if (!s) s = fedrec_csr_transpose(&out->R, &t, err);
  if (!s) fedrec_csr_free(&t);
  return s;
}

fedrec_status fedrec_fitted_generate(fedrec_dataset *out, fedrec_fitted_stats *stats, const fedrec_dataset *src,
                                     const fedrec_fitted_config *c, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  memset(stats, 0, sizeof *stats);
  if (c->users < 2 || c->dim < 1 || c->epochs < 1 || !(c->tau >= 0) || !(c->jitter >= 0) || src->R.rows < 2)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "fitted: users >= 2, dim and epochs >= 1, tau and jitter >= 0, a source with users");
  int T = c->threads > 0 ? c->threads : fedrec_cpu_count();
  gen g = {.R = &src->R, .d = c->dim, .n = src->R.cols, .seed = c->seed};
  float *V = NULL, *U = NULL;
  fedrec_status s = fit(&V, &U, src, c, err);
  g.V = V, g.U = U;
  int32_t *who = malloc((size_t)src->R.rows * sizeof *who), maxlen = 1;
  double ss = 0;
  for (int32_t u = 0; who && u < src->R.rows; u++) {
    int64_t len = src->R.indptr[u + 1] - src->R.indptr[u];
    if (len > 0) who[g.nwho++] = u;
    if (len > maxlen) maxlen = (int32_t)len;
  }
  for (int64_t k = 0; !s && U && k < (int64_t)src->R.rows * c->dim; k++) ss += (double)U[k] * U[k];
  g.who = who;
  g.jitter_sd = c->jitter * sqrt(ss / ((double)(g.nwho ? g.nwho : 1) * c->dim));
  g.indptr = malloc(((size_t)c->users + 1) * sizeof *g.indptr);
  g.src = malloc((size_t)c->users * sizeof *g.src);
  g.keys = calloc((size_t)T, sizeof *g.keys), g.u = calloc((size_t)T, sizeof *g.u), g.top = calloc((size_t)T, sizeof *g.top);
  if (!s && (!who || !g.nwho || !g.indptr || !g.src || !g.keys || !g.u || !g.top))
    s = fedrec_error_set(err, who && !g.nwho ? FEDREC_ERR_EMPTY : FEDREC_ERR_NOMEM, "fitted: %d users", c->users);
  for (int t = 0; !s && t < T; t++) {
    g.keys[t] = malloc((size_t)g.n * sizeof **g.keys), g.u[t] = malloc((size_t)c->dim * sizeof **g.u);
    g.top[t] = malloc((size_t)maxlen * sizeof **g.top);
    if (!g.keys[t] || !g.u[t] || !g.top[t]) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: buffers");
  }
  if (!s) {
    g.indptr[0] = 0;
    for (int64_t j = 0; j < c->users; j++) {
      g.src[j] = source_of(&g, j);
      g.indptr[j + 1] = g.indptr[j] + (src->R.indptr[g.src[j] + 1] - src->R.indptr[g.src[j]]);
    }
    g.indices = malloc((size_t)g.indptr[c->users] * sizeof *g.indices);
    g.values = malloc((size_t)g.indptr[c->users] * sizeof *g.values);
    if (!g.indices || !g.values) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "fitted: %lld interactions", (long long)g.indptr[c->users]);
  }
  describe(&src->R, stats->share[0], stats->len_q[0], &stats->len_mean[0], &stats->items_used[0]);
  g.tau = c->tau;
  if (!s && !(c->tau > 0)) s = calibrate(&g, c->users < 2000 ? c->users : 2000, T, stats->share[0][1], err);
  if (!s && c->match_items)
    s = fit_offsets(&g, c->users < FITTED_OFFSET_SAMPLE ? c->users : FITTED_OFFSET_SAMPLE, T, &stats->offset_tv, err);
  double share1;
  if (!s) s = draw(&g, c->users, T, &share1, err);
  if (!s) s = assemble(out, src, &g, c->users, err);
  if (!s) describe(&out->R, stats->share[1], stats->len_q[1], &stats->len_mean[1], &stats->items_used[1]);
  stats->tau = g.tau;
  for (int t = 0; t < T && g.keys; t++) free(g.keys[t]), free(g.u[t]), free(g.top[t]);
  free(g.keys), free(g.u), free(g.top), free(g.indptr), free(g.src), free(g.indices), free(g.values), free(who), free(V), free(U);
  free(g.offset);
  if (s) fedrec_dataset_free(out);
  return s;
}
