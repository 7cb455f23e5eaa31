#include "fedrec/model.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/rng.h"

fedrec_status fedrec_model_init(fedrec_model *m, int32_t n_items, int32_t d, const float *C,
                                int32_t p, int use_head, const int32_t *free_items,
                                int32_t n_free, uint64_t seed, float init_std,
                                fedrec_error *err) {
  memset(m, 0, sizeof *m);
  if (n_items < 1 || d < 1 || d > 4096 || n_free < 0 || n_free > n_items)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: n_items=%d d=%d n_free=%d out of range",
                            n_items, d, n_free);
  if (use_head && (!C || p < 1))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: a content head needs content embeddings");
  if (!use_head && n_free == 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: needs a head or free embeddings");
  m->n_items = n_items;
  m->d = d;
  m->p = use_head ? p : 0;
  m->C = use_head ? C : NULL;
  m->n_free = n_free;
  fedrec_rng r;
  fedrec_rng_seed(&r, seed, 0x6d6f64656cULL);
  if (use_head) {
    m->H = malloc((size_t)d * (size_t)p * sizeof *m->H);
    if (!m->H) goto nomem;
    float s = init_std / sqrtf((float)p);
    for (int64_t k = 0; k < (int64_t)d * p; k++) m->H[k] = s * (float)fedrec_rng_normal(&r);
  }
  m->free_row = malloc((size_t)n_items * sizeof *m->free_row);
  if (!m->free_row) goto nomem;
  for (int32_t i = 0; i < n_items; i++) m->free_row[i] = -1;
  if (n_free) {
    m->E = malloc((size_t)n_free * (size_t)d * sizeof *m->E);
    m->free_items = malloc((size_t)n_free * sizeof *m->free_items);
    if (!m->E || !m->free_items) goto nomem;
    for (int32_t r0 = 0; r0 < n_free; r0++) {
      int32_t i = free_items[r0];
      if (i < 0 || i >= n_items || m->free_row[i] >= 0) {
        fedrec_model_free(m);
        return fedrec_error_set(err, FEDREC_ERR_ARG, "model: free item %d invalid or repeated", i);
      }
      m->free_items[r0] = i;
      m->free_row[i] = r0;
    }
    for (int64_t k = 0; k < (int64_t)n_free * d; k++) m->E[k] = init_std * (float)fedrec_rng_normal(&r);
  }
  return FEDREC_OK;
nomem:
  fedrec_model_free(m);
  return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model with %d items, d=%d, p=%d", n_items, d, p);
}

fedrec_status fedrec_model_grow(fedrec_model *m, int32_t n_items, const float *C, const int32_t *add_free, int32_t n_add,
                                fedrec_error *err) {
  if (n_items < m->n_items)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: a catalogue only grows (%d items, the model has %d)", n_items, m->n_items);
  if (n_add < 0 || n_add > n_items - m->n_free)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: %d free embeddings to add, at most %d items have none", n_add, n_items - m->n_free);
  int32_t nf = m->n_free + n_add, d = m->d;
  int32_t *fr = malloc((size_t)n_items * sizeof *fr), *fi = n_add ? malloc((size_t)nf * sizeof *fi) : NULL;
  float *E = n_add ? malloc((size_t)nf * d * sizeof *E) : NULL;
  if (!fr || (n_add && (!fi || !E))) {
    free(fr), free(fi), free(E);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model with %d items, %d free embeddings", n_items, nf);
  }
  memcpy(fr, m->free_row, (size_t)m->n_items * sizeof *fr);
  for (int32_t i = m->n_items; i < n_items; i++) fr[i] = -1;
  for (int32_t k = 0; k < n_add; k++) { /* into the copies: an error changes nothing */
    int32_t i = add_free[k];
    if (i < 0 || i >= n_items || fr[i] >= 0) {
      free(fr), free(fi), free(E);
      return fedrec_error_set(err, FEDREC_ERR_ARG, "model: item %d cannot get a free embedding (out of range, listed twice or has one)", i);
    }
    fr[i] = m->n_free + k, fi[m->n_free + k] = i;
  }
  if (m->pop && n_items > m->n_items) { /* new items have no count yet */
    float *pp = realloc(m->pop, (size_t)n_items * sizeof *pp);
    if (!pp) {
      free(fr), free(fi), free(E);
      return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model: popularity of %d items", n_items);
    }
    memset(pp + m->n_items, 0, (size_t)(n_items - m->n_items) * sizeof *pp);
    m->pop = pp;
  }
  if (n_add) {
    if (m->n_free) memcpy(fi, m->free_items, (size_t)m->n_free * sizeof *fi), memcpy(E, m->E, (size_t)m->n_free * d * sizeof *E);
    memset(E + (size_t)m->n_free * d, 0, (size_t)n_add * d * sizeof *E); /* the item's vector stays H c_i */
    free(m->free_items), free(m->E);
    m->free_items = fi, m->E = E, m->n_free = nf;
  }
  free(m->free_row);
  m->free_row = fr;
  m->n_items = n_items;
  if (m->H) m->C = C;
  return FEDREC_OK;
}

void fedrec_model_free(fedrec_model *m) {
  if (!m) return;
  free(m->H);
  free(m->E);
  free(m->pop);
  free(m->free_items);
  free(m->free_row);
  memset(m, 0, sizeof *m);
}

int64_t fedrec_model_params(const fedrec_model *m) {
  return (int64_t)m->d * m->p + (int64_t)m->n_free * m->d;
}

int32_t fedrec_model_vdim(const fedrec_model *m) { return m->d + (m->pop != NULL); }

fedrec_status fedrec_model_add_popularity(fedrec_model *m, fedrec_error *err) {
  if (m->pop) return FEDREC_OK;
  if (!(m->pop = calloc((size_t)m->n_items, sizeof *m->pop)))
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model: popularity of %d items", m->n_items);
  return FEDREC_OK;
}

void fedrec_model_item_vectors(float *V, const fedrec_model *m) {
  int32_t n = m->n_items, d = m->d, w = fedrec_model_vdim(m);
  if (m->H) /* V (n, d) = C (n, p) H^T (p, d), rows w apart */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, d, m->p, 1.0f, m->C, m->p, m->H,
                m->p, 0.0f, V, w);
  else
    memset(V, 0, (size_t)n * (size_t)w * sizeof *V);
  for (int32_t r = 0; r < m->n_free; r++)
    cblas_saxpy(d, 1.0f, m->E + (size_t)r * d, 1, V + (size_t)m->free_items[r] * w, 1);
  if (!m->pop) return;
  float top = 0;
  for (int32_t i = 0; i < n; i++) top = m->pop[i] > top ? m->pop[i] : top;
  for (int32_t i = 0; i < n; i++) V[(size_t)i * w + d] = top > 0 && m->pop[i] > 0 ? m->pop[i] / top : 0.0f;
}

void fedrec_gramian(float *G, const float *X, int64_t n, int32_t d) {
  /* Upper triangle in column-major = lower in row-major; mirror to full. */
  cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, d, (int)n, 1.0f, X, d, 0.0f, G, d);
  for (int32_t j = 0; j < d; j++)
    for (int32_t i = j + 1; i < d; i++) G[(size_t)j * d + i] = G[(size_t)i * d + j];
}

size_t fedrec_user_solve_work(int32_t d, int32_t max_n) {
  return (size_t)d * d + (size_t)max_n * d + (size_t)max_n;
}

fedrec_status fedrec_user_solve(float *u, const float *V, const float *G, int32_t n_items,
                                int32_t d, const int32_t *items, const float *w, int32_t n,
                                float alpha0, float reg, float *work) {
  float *A = work;                   /* (d, d) */
  float *X = A + (size_t)d * d;      /* (n, d): sqrt(w_i) v_i */
  float *sw = X + (size_t)n * d;     /* (n): sqrt(w_i) */
  for (int32_t k = 0; k < n; k++) {
    sw[k] = sqrtf(w ? w[k] : 1.0f);
    const float *v = V + (size_t)items[k] * d;
    for (int32_t j = 0; j < d; j++) X[(size_t)k * d + j] = sw[k] * v[j];
  }
  for (size_t k = 0; k < (size_t)d * d; k++) A[k] = alpha0 * G[k];
  /* A += X^T X (upper, column-major); u = X^T sqrt(w) = sum_i w_i v_i */
  if (n > 0) {
    cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, d, n, 1.0f, X, d, 1.0f, A, d);
    cblas_sgemv(CblasColMajor, CblasNoTrans, d, n, 1.0f, X, d, sw, 1, 0.0f, u, 1);
  } else {
    memset(u, 0, (size_t)d * sizeof *u);
  }
  float lambda = reg * ((float)n + alpha0 * (float)n_items);
  for (int32_t j = 0; j < d; j++) A[(size_t)j * d + j] += lambda;
  lapack_int info = LAPACKE_sposv_work(LAPACK_COL_MAJOR, 'U', d, 1, A, d, u, d);
  return info == 0 ? FEDREC_OK : FEDREC_ERR_NUMERIC;
}

size_t fedrec_user_explain_work(int32_t d, int32_t max_n) { return fedrec_user_solve_work(d, max_n) + (size_t)d; }

fedrec_status fedrec_user_explain(float *contrib, float *u, const float *V, const float *G, int32_t n_items, int32_t d,
                                  const int32_t *items, const float *w, int32_t n, float alpha0, float reg,
                                  const int32_t *targets, int32_t nt, float *work) {
  fedrec_status st = fedrec_user_solve(u, V, G, n_items, d, items, w, n, alpha0, reg, work);
  if (st) return st;
  /* work holds the Cholesky factor of the user's system A (sposv leaves it there) */
  float *x = work + fedrec_user_solve_work(d, n);
  for (int32_t t = 0; t < nt; t++) {
    memcpy(x, V + (size_t)targets[t] * d, (size_t)d * sizeof *x);
    if (LAPACKE_spotrs_work(LAPACK_COL_MAJOR, 'U', d, 1, work, d, x, d)) return FEDREC_ERR_NUMERIC;
    for (int32_t k = 0; k < n; k++)
      contrib[(size_t)t * n + k] = (w ? w[k] : 1.0f) * cblas_sdot(d, x, 1, V + (size_t)items[k] * d, 1);
  }
  return FEDREC_OK;
}

size_t fedrec_user_grad_work(const fedrec_model *m, int32_t max_n) {
  return (size_t)m->n_items + (size_t)m->n_free + (size_t)m->p + (size_t)max_n + 1;
}

void fedrec_user_loss_grad(double *loss, float *gE, float *gH, const fedrec_model *m,
                           const float *V, const float *u, const int32_t *items, const float *w,
                           int32_t n, float alpha0, float reg, float *work) {
  int32_t N = m->n_items, d = m->d, p = m->p, vd = fedrec_model_vdim(m);
  float *s = work;              /* (N): scores, then gamma */
  float *gf = s + N;            /* (n_free): gamma of free items */
  float *ctg = gf + m->n_free;  /* (p): C^T gamma */
  cblas_sgemv(CblasRowMajor, CblasNoTrans, N, vd, 1.0f, V, vd, u, 1, 0.0f, s, 1);
  double uu = cblas_sdot(vd, u, 1, u, 1);
  double L = (double)reg * ((double)n + (double)alpha0 * N) * uu;
  double ss = 0;
  for (int32_t i = 0; i < N; i++) ss += (double)s[i] * s[i];
  L += alpha0 * ss;
  /* gamma = 2 alpha0 s, plus the observed terms */
  for (int32_t k = 0; k < n; k++) {
    float wk = w ? w[k] : 1.0f, r = 1.0f - s[items[k]];
    L += (double)wk * r * r;
  }
  float *obs = ctg + p; /* (n): observed scores, saved before s is scaled into gamma */
  for (int32_t k = 0; k < n; k++) obs[k] = s[items[k]];
  cblas_sscal(N, 2.0f * alpha0, s, 1);
  for (int32_t k = 0; k < n; k++) s[items[k]] -= 2.0f * (w ? w[k] : 1.0f) * (1.0f - obs[k]);
  if (loss) *loss = L;
  if (gE && m->n_free) {
    for (int32_t r = 0; r < m->n_free; r++) gf[r] = s[m->free_items[r]];
    memset(gE, 0, (size_t)m->n_free * d * sizeof *gE);
    cblas_sger(CblasRowMajor, m->n_free, d, 1.0f, gf, 1, u, 1, gE, d);
  }
  if (gH && m->H) {
    cblas_sgemv(CblasRowMajor, CblasTrans, N, p, 1.0f, m->C, p, s, 1, 0.0f, ctg, 1);
    memset(gH, 0, (size_t)d * p * sizeof *gH);
    cblas_sger(CblasRowMajor, d, p, 1.0f, u, 1, ctg, 1, gH, p);
  }
}

void fedrec_user_loss_grad_ref(double *loss, float *gE, float *gH, const fedrec_model *m,
                               const float *u, const int32_t *items, const float *w, int32_t n,
                               float alpha0, float reg) {
  int32_t N = m->n_items, d = m->d, p = m->p, vd = fedrec_model_vdim(m);
  double L = 0, uu = 0, top = 0;
  for (int32_t j = 0; j < vd; j++) uu += (double)u[j] * u[j];
  for (int32_t i = 0; m->pop && i < N; i++) top = m->pop[i] > top ? m->pop[i] : top;
  L += (double)reg * ((double)n + (double)alpha0 * N) * uu;
  if (gE) memset(gE, 0, (size_t)m->n_free * d * sizeof *gE);
  if (gH && m->H) memset(gH, 0, (size_t)d * p * sizeof *gH);
  for (int32_t i = 0; i < N; i++) {
    /* v_i = H c_i + e_i, computed directly */
    double s = 0;
    for (int32_t a = 0; a < d; a++) {
      double x = 0;
      if (m->H)
        for (int32_t b = 0; b < p; b++) x += (double)m->H[a * p + b] * m->C[(size_t)i * p + b];
      if (m->free_row[i] >= 0) x += m->E[(size_t)m->free_row[i] * d + a];
      s += x * u[a];
    }
    if (m->pop && top > 0 && m->pop[i] > 0) s += (double)u[d] * (float)(m->pop[i] / top);
    double wi = 0;
    for (int32_t k = 0; k < n; k++)
      if (items[k] == i) wi = w ? w[k] : 1.0;
    L += alpha0 * s * s + (wi > 0 ? wi * (1 - s) * (1 - s) : 0);
    double g = 2.0 * alpha0 * s - (wi > 0 ? 2.0 * wi * (1 - s) : 0);
    if (gE && m->free_row[i] >= 0)
      for (int32_t a = 0; a < d; a++) gE[(size_t)m->free_row[i] * d + a] = (float)(g * u[a]);
    if (gH && m->H)
      for (int32_t a = 0; a < d; a++)
        for (int32_t b = 0; b < p; b++) gH[a * p + b] += (float)(g * u[a] * m->C[(size_t)i * p + b]);
  }
  if (loss) *loss = L;
}

fedrec_status fedrec_model_set_modalities(fedrec_model *m, const fedrec_dataset *ds, fedrec_error *err) {
  int32_t p = 0;
  for (int32_t k = 0; k < ds->n_modalities; k++) p += ds->modalities[k].dim;
  if (ds->n_modalities && (!m->H || p != m->p))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: modalities of %d dimensions for a head over %d", p, m->H ? m->p : 0);
  m->n_modalities = m->H ? ds->n_modalities : 0;
  memcpy(m->modalities, ds->modalities, sizeof m->modalities);
  return FEDREC_OK;
}

/* "a:3,b:4" (or "one unnamed source") into buf, for messages. */
static const char *list_modalities(char *buf, size_t cap, int32_t n, const fedrec_modality *md) {
  snprintf(buf, cap, "%s", n ? "" : "one unnamed source");
  for (int32_t k = 0; k < n; k++) {
    size_t at = strlen(buf);
    snprintf(buf + at, cap - at, "%s%.31s:%d", k ? "," : "", md[k].name, md[k].dim);
  }
  return buf;
}

fedrec_status fedrec_model_check_modalities(const fedrec_model *m, const fedrec_dataset *ds, fedrec_error *err) {
  if (!m->H) return FEDREC_OK;
  int ok = m->n_modalities == ds->n_modalities;
  for (int32_t k = 0; ok && k < m->n_modalities; k++)
    ok = !strcmp(m->modalities[k].name, ds->modalities[k].name) && m->modalities[k].dim == ds->modalities[k].dim;
  if (ok) return FEDREC_OK;
  char a[300], b[300];
  return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: its head's modalities are [%s], the catalogue's [%s]",
                          list_modalities(a, sizeof a, m->n_modalities, m->modalities),
                          list_modalities(b, sizeof b, ds->n_modalities, ds->modalities));
}

fedrec_status fedrec_model_add_modalities(fedrec_model *m, const fedrec_dataset *ds, fedrec_error *err) {
  int ok = m->H && m->n_modalities && ds->n_modalities > m->n_modalities && ds->content_dim <= 65536;
  for (int32_t k = 0; ok && k < m->n_modalities; k++)
    ok = !strcmp(m->modalities[k].name, ds->modalities[k].name) && m->modalities[k].dim == ds->modalities[k].dim;
  if (!ok) {
    char a[300], b[300];
    return fedrec_error_set(err, FEDREC_ERR_ARG, "model: modalities [%s] cannot become [%s] (only new ones after the head's, which "
                            "must be named)", list_modalities(a, sizeof a, m->n_modalities, m->modalities),
                            list_modalities(b, sizeof b, ds->n_modalities, ds->modalities));
  }
  int32_t d = m->d, p = m->p, q = ds->content_dim;
  float *H = calloc((size_t)d * q, sizeof *H);
  if (!H) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model: head of %d x %d", d, q);
  for (int32_t r = 0; r < d; r++) memcpy(H + (size_t)r * q, m->H + (size_t)r * p, (size_t)p * sizeof *H);
  free(m->H);
  m->H = H, m->p = q, m->C = ds->content, m->n_modalities = ds->n_modalities;
  memcpy(m->modalities, ds->modalities, sizeof m->modalities);
  return FEDREC_OK;
}
