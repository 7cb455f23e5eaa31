#include "fedrec/synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/rng.h"
#include "fedrec/internal/parallel.h"
#include "fedrec/internal/tool.h"

void fedrec_synth_defaults(fedrec_synth_config *c) {
  *c = (fedrec_synth_config){.users = 100000, .items = 20000, .content_dim = 64, .factors = 16,
                             .topics = 24, .zipf = 0.9, .median_len = 24, .content_share = 0.7,
                             .tau = 5.0, .seed = 42, .threads = 0};
}

fedrec_status fedrec_synth_parse(fedrec_synth_config *c, const char *spec, fedrec_error *err) {
  const fedrec_spec_key keys[] = {
      {"users", 2, 1e8, FEDREC_SPEC_INT32, &c->users},        {"items", 2, 1e7, FEDREC_SPEC_INT32, &c->items},
      {"dim", 1, 4096, FEDREC_SPEC_INT32, &c->content_dim},   {"factors", 1, 256, FEDREC_SPEC_INT32, &c->factors},
      {"topics", 1, 10000, FEDREC_SPEC_INT32, &c->topics},    {"zipf", 0, 3, FEDREC_SPEC_DOUBLE, &c->zipf},
      {"len", 1, 10000, FEDREC_SPEC_DOUBLE, &c->median_len},  {"content_share", 0, 1, FEDREC_SPEC_DOUBLE, &c->content_share},
      {"tau", 0, 100, FEDREC_SPEC_DOUBLE, &c->tau},           {"seed", 0, 9e15, FEDREC_SPEC_UINT64, &c->seed},
      {"modalities", 0, 3, FEDREC_SPEC_INT32, &c->modalities}};
  return fedrec_spec_parse("synthetic", spec, keys, sizeof keys / sizeof keys[0], err);
}

typedef struct {
  const fedrec_synth_config *c;
  float *F;            /* (items, f) true item factors, unit norm */
  double *alias_p;     /* Vose alias table over popularity */
  int32_t *alias_i;
  int32_t *topic;      /* (items) primary topic */
  int32_t *t_off;      /* (topics + 1) segment of t_items per topic */
  int32_t *t_items;    /* items grouped by topic */
  double *t_alias_p;   /* per-topic alias tables, positions local to the segment */
  int32_t *t_alias_i;
  int64_t *indptr;
  int32_t *indices;
  float *values;
  uint8_t **mark;      /* per thread (items) */
} gen;

static void normalise(float *x, int32_t n) {
  double s = 0;
  for (int32_t j = 0; j < n; j++) s += (double)x[j] * x[j];
  if (s > 0)
    for (int32_t j = 0; j < n; j++) x[j] = (float)(x[j] / sqrt(s));
}

/* The modalities' content (replacing the single source): modality m of item i is
 * share_m normalise(A_m f_i) + (1 - share_m) noise, normalised, for the true factor f_i and
 * a random A_m (dim x factors); missing (zero, masked) for a fraction of the items. */
static fedrec_status synth_modalities(const gen *g, fedrec_dataset *ds, fedrec_error *err) {
  static const char *const NAMES[3] = {"strong", "weak", "noise"};
  static const double SHARE[3] = {0.9, 0.5, 0.0}, MISSING[3] = {0.3, 0.1, 0.0};
  const fedrec_synth_config *c = g->c;
  int32_t n = c->items, M = c->modalities, d = c->content_dim, f = c->factors, p = M * d;
  float *C = malloc((size_t)n * p * sizeof *C), *A = malloc((size_t)d * f * sizeof *A), *z = malloc((size_t)d * sizeof *z);
  uint8_t *mask = malloc((size_t)n * M);
  fedrec_rng r;
  fedrec_rng_seed(&r, c->seed, 0x6d6f6461ULL);
  if (!C || !A || !z || !mask) {
    free(C), free(A), free(z), free(mask);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "synthetic modalities");
  }
  for (int32_t m = 0; m < M; m++) {
    for (int64_t k = 0; k < (int64_t)d * f; k++) A[k] = (float)fedrec_rng_normal(&r);
    for (int32_t i = 0; i < n; i++) {
      float *x = C + (size_t)i * p + (size_t)m * d;
      const float *v = g->F + (int64_t)i * f;
      for (int32_t j = 0; j < d; j++) {
        double s = 0;
        for (int32_t a = 0; a < f; a++) s += (double)A[(int64_t)j * f + a] * v[a];
        x[j] = (float)s;
        z[j] = (float)fedrec_rng_normal(&r);
      }
      normalise(x, d), normalise(z, d);
      for (int32_t j = 0; j < d; j++) x[j] = (float)(SHARE[m] * x[j] + (1 - SHARE[m]) * z[j]);
      normalise(x, d);
      mask[(size_t)i * M + m] = fedrec_rng_uniform(&r) >= MISSING[m];
      if (!mask[(size_t)i * M + m]) memset(x, 0, (size_t)d * sizeof *x);
    }
    snprintf(ds->modalities[m].name, sizeof ds->modalities[m].name, "%.31s", NAMES[m]);
    ds->modalities[m].offset = m * d, ds->modalities[m].dim = d;
  }
  free(ds->content), free(A), free(z);
  ds->content = C, ds->content_dim = p, ds->modality_mask = mask, ds->n_modalities = M;
  for (int32_t i = 0; i < n; i++) {
    ds->has_content[i] = 0;
    for (int32_t m = 0; m < M; m++) ds->has_content[i] |= mask[(size_t)i * M + m];
  }
  return FEDREC_OK;
}

static int32_t history_len(const fedrec_synth_config *c, uint64_t u) {
  fedrec_rng r;
  fedrec_rng_seed(&r, c->seed, 0x6c656e00ULL + u * 2);
  double len = exp(log(c->median_len) + 0.9 * fedrec_rng_normal(&r));
  int32_t cap = c->items / 4 < 2000 ? c->items / 4 : 2000;
  if (cap < 2) cap = 2;
  return len < 2 ? 2 : len > cap ? cap : (int32_t)len;
}

static int32_t draw_item(const gen *g, fedrec_rng *r) {
  int32_t i = (int32_t)fedrec_rng_below(r, (uint64_t)g->c->items);
  return fedrec_rng_uniform(r) < g->alias_p[i] ? i : g->alias_i[i];
}

/* An item of topic t, by popularity. */
static int32_t draw_in_topic(const gen *g, int32_t t, fedrec_rng *r) {
  int32_t b = g->t_off[t], n = g->t_off[t + 1] - b;
  if (n == 0) return draw_item(g, r);
  int32_t k = (int32_t)fedrec_rng_below(r, (uint64_t)n);
  return g->t_items[b + (fedrec_rng_uniform(r) < g->t_alias_p[b + k] ? k : g->t_alias_i[b + k])];
}

/* Vose's alias method over weights w (destroyed); small/large are n-int scratch. */
static void build_alias(double *w, int32_t n, double *prob, int32_t *alias, int32_t *small,
                        int32_t *large) {
  double total = 0;
  int32_t ns = 0, nl = 0;
  for (int32_t i = 0; i < n; i++) total += w[i];
  for (int32_t i = 0; i < n; i++) {
    w[i] = w[i] * n / total;
    if (w[i] < 1) small[ns++] = i;
    else large[nl++] = i;
  }
  while (ns && nl) {
    int32_t s = small[--ns], l = large[--nl];
    prob[s] = w[s];
    alias[s] = l;
    w[l] -= 1 - w[s];
    if (w[l] < 1) small[ns++] = l;
    else large[nl++] = l;
  }
  while (nl) nl--, prob[large[nl]] = 1, alias[large[nl]] = large[nl];
  while (ns) ns--, prob[small[ns]] = 1, alias[small[ns]] = small[ns];
}

static fedrec_status gen_users(void *p, int tid, int64_t b, int64_t e) {
  gen *g = p;
  const fedrec_synth_config *c = g->c;
  int32_t f = c->factors;
  float taste[256];
  uint8_t *mark = g->mark[tid];
  for (int64_t u = b; u < e; u++) {
    fedrec_rng r;
    fedrec_rng_seed(&r, c->seed, 0x75736572ULL + (uint64_t)u * 2 + 1);
    /* A taste near one item's factor: users cluster around what exists in the catalogue. */
    int32_t a = draw_item(g, &r);
    const float *anchor = g->F + (int64_t)a * f;
    /* Favourite genres: the anchor's topic, a second one; 10% of draws from everything. */
    int32_t t1 = g->topic[a], t2 = (int32_t)fedrec_rng_below(&r, (uint64_t)c->topics);
    for (int32_t j = 0; j < f; j++) taste[j] = anchor[j] + 0.8f * (float)fedrec_rng_normal(&r) / sqrtf((float)f);
    normalise(taste, f);
    int64_t o = g->indptr[u];
    int32_t want = (int32_t)(g->indptr[u + 1] - o), got = 0;
    for (int64_t tries = 0; got < want && tries < 2000LL * want; tries++) {
      double x = fedrec_rng_uniform(&r);
      int32_t i = x < 0.7 ? draw_in_topic(g, t1, &r) : x < 0.9 ? draw_in_topic(g, t2, &r) : draw_item(g, &r);
      if (mark[i]) continue;
      double s = 0;
      for (int32_t j = 0; j < f; j++) s += (double)taste[j] * g->F[(int64_t)i * f + j];
      /* preference saturates at s = 0.5: fewer rejections, same ordering below it */
      if (s < 0.5 && fedrec_rng_uniform(&r) >= exp(c->tau * (s - 0.5))) continue;
      mark[i] = 1;
      g->indices[o + got++] = i;
    }
    for (int32_t k = 0; k < got; k++) mark[g->indices[o + k]] = 0;
    for (int32_t k = got; k < want; k++) g->indices[o + k] = -1; /* compacted by the caller */
  }
  return FEDREC_OK;
}

static fedrec_status item_side(gen *g, float *content, fedrec_error *err) {
  const fedrec_synth_config *c = g->c;
  int32_t n = c->items, p = c->content_dim, f = c->factors, T = c->topics;
  fedrec_rng r;
  fedrec_rng_seed(&r, c->seed, 0x6974656dULL);
  float *mu = malloc((size_t)T * p * sizeof *mu), *W = malloc((size_t)f * p * sizeof *W);
  double *w = malloc((size_t)n * sizeof *w);
  int32_t *rank = malloc((size_t)n * sizeof *rank), *small = malloc((size_t)n * sizeof *small);
  fedrec_status st = FEDREC_OK;
  if (!mu || !W || !w || !rank || !small) {
    st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "synthetic catalogue of %d items", n);
    goto done;
  }
  for (int64_t k = 0; k < (int64_t)T * p; k++) mu[k] = (float)fedrec_rng_normal(&r);
  for (int32_t t = 0; t < T; t++) normalise(mu + (int64_t)t * p, p);
  for (int64_t k = 0; k < (int64_t)f * p; k++) W[k] = (float)fedrec_rng_normal(&r);
  for (int32_t i = 0; i < n; i++) {
    float *x = content + (int64_t)i * p, *v = g->F + (int64_t)i * f;
    int32_t t1 = (int32_t)fedrec_rng_below(&r, (uint64_t)T), t2 = (int32_t)fedrec_rng_below(&r, (uint64_t)T);
    g->topic[i] = t1;
    for (int32_t j = 0; j < p; j++)
      x[j] = 0.8f * mu[(int64_t)t1 * p + j] + 0.3f * mu[(int64_t)t2 * p + j] +
             0.5f * (float)fedrec_rng_normal(&r) / sqrtf((float)p);
    normalise(x, p);
    /* factor = share * normalise(W x) + (1 - share) * item-specific noise */
    for (int32_t a = 0; a < f; a++) {
      double s = 0;
      for (int32_t j = 0; j < p; j++) s += (double)W[(int64_t)a * p + j] * x[j];
      v[a] = (float)s;
    }
    normalise(v, f);
    for (int32_t a = 0; a < f; a++)
      v[a] = (float)(c->content_share * v[a] +
                     (1 - c->content_share) * fedrec_rng_normal(&r) / sqrt((double)f));
    normalise(v, f);
    rank[i] = i;
  }
  /* Power-law popularity over a random permutation of ranks, then alias tables: one over
   * all items, one per topic. */
  for (int32_t i = n - 1; i > 0; i--) {
    int32_t j = (int32_t)fedrec_rng_below(&r, (uint64_t)i + 1), t = rank[i];
    rank[i] = rank[j], rank[j] = t;
  }
  for (int32_t i = 0; i < n; i++) w[i] = pow(rank[i] + 1.0, -c->zipf);
  memset(g->t_off, 0, ((size_t)T + 1) * sizeof *g->t_off);
  for (int32_t i = 0; i < n; i++) g->t_off[g->topic[i] + 1]++;
  for (int32_t t = 0; t < T; t++) g->t_off[t + 1] += g->t_off[t];
  {
    int32_t *cur = malloc(((size_t)T + 1) * sizeof *cur);
    double *tw = malloc((size_t)n * sizeof *tw);
    int32_t *large = malloc((size_t)n * sizeof *large);
    if (!cur || !tw || !large) {
      free(cur), free(tw), free(large);
      st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "synthetic alias tables");
      goto done;
    }
    for (int32_t t = 0; t < T; t++) cur[t] = g->t_off[t];
    for (int32_t i = 0; i < n; i++) g->t_items[cur[g->topic[i]]++] = i;
    free(cur);
    for (int32_t k = 0; k < n; k++) tw[k] = w[g->t_items[k]];
    for (int32_t t = 0; t < T; t++) {
      int32_t b0 = g->t_off[t], nt = g->t_off[t + 1] - b0;
      if (nt) build_alias(tw + b0, nt, g->t_alias_p + b0, g->t_alias_i + b0, small, large);
    }
    build_alias(w, n, g->alias_p, g->alias_i, small, large);
    free(tw), free(large);
  }
done:
  free(mu), free(W), free(w), free(rank), free(small);
  return st;
}

static fedrec_status name_all(fedrec_idmap *m, char prefix, int32_t n, fedrec_error *err) {
  char id[16];
  for (int32_t i = 0; i < n; i++) {
    int len = snprintf(id, sizeof id, "%c%d", prefix, i);
    if (fedrec_idmap_get(m, id, (size_t)len, 1) != i)
      return fedrec_error_set(err, FEDREC_ERR_NOMEM, "synthetic ids");
  }
  return FEDREC_OK;
}

fedrec_status fedrec_synth_generate(fedrec_dataset *ds, const fedrec_synth_config *c,
                                    fedrec_error *err) {
  memset(ds, 0, sizeof *ds);
  if (c->users < 2 || c->items < 8 || c->content_dim < 1 || c->factors < 1 || c->factors > 256 ||
      c->topics < 1 || c->median_len < 1)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "synthetic: users >= 2, items >= 8, 1 <= factors <= 256 required");
  int T = c->threads > 0 ? c->threads : fedrec_cpu_count();
  int32_t n = c->items, nu = c->users;
  snprintf(ds->name, sizeof ds->name, "synthetic");
  gen g = {.c = c};
  g.F = malloc((size_t)n * c->factors * sizeof *g.F);
  g.alias_p = malloc((size_t)n * sizeof *g.alias_p);
  g.alias_i = malloc((size_t)n * sizeof *g.alias_i);
  g.topic = malloc((size_t)n * sizeof *g.topic);
  g.t_off = malloc(((size_t)c->topics + 1) * sizeof *g.t_off);
  g.t_items = malloc((size_t)n * sizeof *g.t_items);
  g.t_alias_p = malloc((size_t)n * sizeof *g.t_alias_p);
  g.t_alias_i = malloc((size_t)n * sizeof *g.t_alias_i);
  g.mark = calloc((size_t)T, sizeof *g.mark);
  ds->content = malloc((size_t)n * c->content_dim * sizeof *ds->content);
  ds->has_content = malloc((size_t)n);
  ds->R.indptr = malloc(((size_t)nu + 1) * sizeof *ds->R.indptr);
  ds->users = fedrec_idmap_new();
  ds->items = fedrec_idmap_new();
  int ok = g.F && g.alias_p && g.alias_i && g.topic && g.t_off && g.t_items && g.t_alias_p &&
           g.t_alias_i && g.mark && ds->content && ds->has_content &&
           ds->R.indptr && ds->users && ds->items;
  for (int t = 0; ok && t < T; t++) ok = (g.mark[t] = calloc((size_t)n, 1)) != NULL;
  fedrec_status st = ok ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "synthetic data");
  if (!st) st = item_side(&g, ds->content, err);
  if (!st) {
    ds->content_dim = c->content_dim;
    memset(ds->has_content, 1, (size_t)n);
    ds->R.indptr[0] = 0;
    for (int32_t u = 0; u < nu; u++) ds->R.indptr[u + 1] = ds->R.indptr[u] + history_len(c, (uint64_t)u);
    int64_t nnz = ds->R.indptr[nu];
    ds->R.indices = malloc((size_t)nnz * sizeof *ds->R.indices);
    if (!ds->R.indices) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "%lld interactions", (long long)nnz);
  }
  if (!st) {
    g.indptr = ds->R.indptr;
    g.indices = ds->R.indices;
    st = fedrec_parallel_for(T, nu, 1024, gen_users, &g);
  }
  if (!st) { /* drop unfilled slots (users whose taste found too few items), sort rows */
    int64_t w = 0;
    for (int32_t u = 0; u < nu; u++) {
      int64_t b = ds->R.indptr[u], e = ds->R.indptr[u + 1];
      ds->R.indptr[u] = w;
      for (int64_t k = b; k < e; k++)
        if (ds->R.indices[k] >= 0) ds->R.indices[w++] = ds->R.indices[k];
    }
    ds->R.indptr[nu] = w;
    ds->R.rows = nu;
    ds->R.cols = n;
    ds->R.values = malloc((size_t)(w ? w : 1) * sizeof *ds->R.values);
    if (!ds->R.values) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "synthetic weights");
    for (int64_t k = 0; !st && k < w; k++) ds->R.values[k] = 1.0f;
  }
  if (!st) { /* rows sorted by item: a transpose twice is a stable, linear way */
    fedrec_csr t1, t2;
    st = fedrec_csr_transpose(&t1, &ds->R, err);
    if (!st) {
      st = fedrec_csr_transpose(&t2, &t1, err);
      fedrec_csr_free(&t1);
      if (!st) {
        fedrec_csr_free(&ds->R);
        ds->R = t2;
      }
    }
  }
  if (!st && c->modalities) st = synth_modalities(&g, ds, err);
  if (!st) st = name_all(ds->users, 'u', nu, err);
  if (!st) st = name_all(ds->items, 'i', n, err);
  for (int t = 0; g.mark && t < T; t++) free(g.mark[t]);
  free(g.mark), free(g.F), free(g.alias_p), free(g.alias_i);
  free(g.topic), free(g.t_off), free(g.t_items), free(g.t_alias_p), free(g.t_alias_i);
  if (st) fedrec_dataset_free(ds);
  return st;
}
