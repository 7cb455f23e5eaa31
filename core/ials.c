/* Central iALS over the content head H and the free embeddings E.
 *
 * Objective (U: users, v_i = H c_i + e_i):
 *   sum_{(u,i) in R} w_ui (1 - u.v_i)^2 + alpha0 sum_u sum_i (u.v_i)^2
 *   + sum_u lambda_u |u|^2 + sum_i lambda_i (|v_i|^2 + beta |e_i|^2) + lambda_H |H|^2
 * lambda_u = reg (n_u + alpha0 n_items), lambda_i = reg (n_i + alpha0 n_users).
 * An epoch: exact user solves; conjugate gradient on H (a quadratic); exact e_i solves. */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedrec/internal/tool.h"
#include "fedrec/train.h"
#include "fedrec/internal/parallel.h"

void fedrec_ials_defaults(fedrec_ials_config *c) {
  memset(c, 0, sizeof *c);
  c->dim = 128;
  c->reg = 0.003f;
  c->alpha0 = 0.3f;
  c->epochs = 12;
  c->threads = 0;
  c->seed = 42;
  c->use_head = 0;
  c->n_free = -1;
  c->free_reg_mult = 1.0f;
  c->head_reg = 0.01f;
  c->cg_iters = 25;
  c->init_std = 0.1f;
}

typedef struct {
  const fedrec_ials_config *cfg;
  const fedrec_csr *R, *RT;
  fedrec_model *m;
  int32_t d, n_users, n_items;
  float *U, *V, *Vh, *G, *B, *X, *Y, *Efull;
  float lambda_H;
  float **work; /* per thread */
  double *part; /* per thread partial sums */
} ials;

static fedrec_status user_step(void *p, int tid, int64_t b, int64_t e) {
  ials *s = p;
  const fedrec_csr *R = s->R;
  for (int64_t u = b; u < e; u++) {
    int64_t o = R->indptr[u];
    int32_t n = (int32_t)(R->indptr[u + 1] - o);
    fedrec_status st = fedrec_user_solve(s->U + u * s->d, s->V, s->G, s->n_items, s->d,
                                         R->indices + o, R->values + o, n, s->cfg->alpha0,
                                         s->cfg->reg, s->work[tid]);
    if (st) return st;
  }
  return FEDREC_OK;
}

static float item_lambda(const ials *s, int32_t i) {
  float n = (float)(s->RT->indptr[i + 1] - s->RT->indptr[i]);
  return s->cfg->reg * (n + s->cfg->alpha0 * (float)s->n_users);
}

/* Y_i = (K_i + lambda_i I) X_i for items [b, e), K_i = alpha0 G_U + sum_u w u u^T.
 * The dense alpha0 X G_U part is done by the caller with one sgemm. */
static fedrec_status apply_sparse(void *p, int tid, int64_t b, int64_t e) {
  ials *s = p;
  (void)tid;
  int32_t d = s->d;
  for (int64_t i = b; i < e; i++) {
    const float *x = s->X + i * d;
    float *y = s->Y + i * d;
    cblas_saxpy(d, item_lambda(s, (int32_t)i), x, 1, y, 1);
    for (int64_t k = s->RT->indptr[i]; k < s->RT->indptr[i + 1]; k++) {
      const float *u = s->U + (int64_t)s->RT->indices[k] * d;
      cblas_saxpy(d, s->RT->values[k] * cblas_sdot(d, u, 1, x, 1), u, 1, y, 1);
    }
  }
  return FEDREC_OK;
}

/* A large BLAS call on all cores; our loops run BLAS single-threaded. */
#define BIG(s, call)                                                                           \
  do {                                                                                         \
    fedrec_blas_threads((s)->cfg->threads);                                                    \
    call;                                                                                      \
    fedrec_blas_threads(1);                                                                    \
  } while (0)

static fedrec_status apply_K(ials *s) {
  BIG(s, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n_items, s->d, s->d,
              s->cfg->alpha0, s->X, s->d, s->G, s->d, 0.0f, s->Y, s->d));
  return fedrec_parallel_for(s->cfg->threads, s->n_items, 256, apply_sparse, s);
}

/* out (d, p) = op(D) = sum_i (K_i + lambda_i I)(D c_i) c_i^T + lambda_H D */
static fedrec_status apply_head_op(ials *s, float *out, const float *D) {
  fedrec_model *m = s->m;
  BIG(s, cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->n_items, s->d, m->p, 1.0f,
                     m->C, m->p, D, m->p, 0.0f, s->X, s->d));
  fedrec_status st = apply_K(s);
  if (st) return st;
  BIG(s, cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->d, m->p, s->n_items, 1.0f,
                     s->Y, s->d, m->C, m->p, 0.0f, out, m->p));
  cblas_saxpy(s->d * m->p, s->lambda_H, D, 1, out, 1);
  return FEDREC_OK;
}

/* B_i = sum_{u in S_i} w_ui u */
static fedrec_status item_rhs(void *p, int tid, int64_t b, int64_t e) {
  ials *s = p;
  (void)tid;
  for (int64_t i = b; i < e; i++) {
    float *y = s->B + i * s->d;
    memset(y, 0, (size_t)s->d * sizeof *y);
    for (int64_t k = s->RT->indptr[i]; k < s->RT->indptr[i + 1]; k++)
      cblas_saxpy(s->d, s->RT->values[k], s->U + (int64_t)s->RT->indices[k] * s->d, 1, y, 1);
  }
  return FEDREC_OK;
}

/* Conjugate gradient on op(H) = sum_i (b_i - (K_i + lambda_i I) e_i) c_i^T, warm-started. */
static fedrec_status head_step(ials *s) {
  fedrec_model *m = s->m;
  int32_t n = s->d * m->p;
  float *rhs = malloc(4 * (size_t)n * sizeof *rhs);
  if (!rhs) return FEDREC_ERR_NOMEM;
  float *r = rhs + n, *q = r + n, *Aq = q + n;
  /* rhs = (B - K(E))^T C */
  memcpy(s->X, s->Efull, (size_t)s->n_items * s->d * sizeof *s->X);
  fedrec_status st = apply_K(s);
  if (!st) {
    cblas_saxpy(s->n_items * s->d, -1.0f, s->B, 1, s->Y, 1); /* Y = K(E) - B */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->d, m->p, s->n_items, -1.0f, s->Y,
                s->d, m->C, m->p, 0.0f, rhs, m->p);
    st = apply_head_op(s, r, m->H);
  }
  if (!st) {
    for (int32_t k = 0; k < n; k++) r[k] = rhs[k] - r[k];
    memcpy(q, r, (size_t)n * sizeof *q);
    double rr = cblas_dsdot(n, r, 1, r, 1), r0 = cblas_dsdot(n, rhs, 1, rhs, 1);
    for (int32_t it = 0; it < s->cfg->cg_iters && rr > 1e-10 * r0 && !st; it++) {
      if ((st = apply_head_op(s, Aq, q))) break;
      double qAq = cblas_dsdot(n, q, 1, Aq, 1);
      if (!(qAq > 0)) break;
      float alpha = (float)(rr / qAq);
      cblas_saxpy(n, alpha, q, 1, m->H, 1);
      cblas_saxpy(n, -alpha, Aq, 1, r, 1);
      double rr2 = cblas_dsdot(n, r, 1, r, 1);
      float beta = (float)(rr2 / rr);
      rr = rr2;
      for (int32_t k = 0; k < n; k++) q[k] = r[k] + beta * q[k];
    }
  }
  free(rhs);
  return st;
}

/* e_i = argmin: (K_i + (1 + beta) lambda_i I) e_i = b_i - (K_i + lambda_i I) h_i */
static fedrec_status free_step(void *p, int tid, int64_t b, int64_t e) {
  ials *s = p;
  fedrec_model *m = s->m;
  int32_t d = s->d;
  float *A = s->work[tid], *X = A + (size_t)d * d;
  for (int64_t r = b; r < e; r++) {
    int32_t i = m->free_items[r];
    const float *h = s->Vh + (int64_t)i * d;
    float *t = X; /* scratch: d floats, then the gathered rows */
    float *x = X + d;
    int64_t o = s->RT->indptr[i];
    int32_t n = (int32_t)(s->RT->indptr[i + 1] - o);
    for (size_t k = 0; k < (size_t)d * d; k++) A[k] = s->cfg->alpha0 * s->G[k];
    float *sw = x + (size_t)n * d;
    for (int32_t k = 0; k < n; k++) {
      sw[k] = sqrtf(s->RT->values[o + k]);
      const float *u = s->U + (int64_t)s->RT->indices[o + k] * d;
      for (int32_t j = 0; j < d; j++) x[(size_t)k * d + j] = sw[k] * u[j];
    }
    if (n) cblas_ssyrk(CblasColMajor, CblasUpper, CblasNoTrans, d, n, 1.0f, x, d, 1.0f, A, d);
    float lam = item_lambda(s, i);
    for (int32_t j = 0; j < d; j++) A[(size_t)j * d + j] += lam;
    /* t = b_i - (K_i + lambda_i) h */
    memcpy(t, s->B + (int64_t)i * d, (size_t)d * sizeof *t);
    cblas_ssymv(CblasColMajor, CblasUpper, d, -1.0f, A, d, h, 1, 1.0f, t, 1);
    for (int32_t j = 0; j < d; j++) A[(size_t)j * d + j] += s->cfg->free_reg_mult * lam;
    if (LAPACKE_sposv_work(LAPACK_COL_MAJOR, 'U', d, 1, A, d, t, d) != 0) return FEDREC_ERR_NUMERIC;
    memcpy(m->E + r * d, t, (size_t)d * sizeof *t);
  }
  return FEDREC_OK;
}

/* Per-user part of the objective: sum_S w (1 - s)^2 + alpha0 u^T G_V u + lambda_u |u|^2. */
static fedrec_status user_objective(void *p, int tid, int64_t b, int64_t e) {
  ials *s = p;
  int32_t d = s->d;
  float *Gu = s->work[tid];
  double acc = 0;
  for (int64_t u = b; u < e; u++) {
    const float *x = s->U + u * d;
    cblas_ssymv(CblasRowMajor, CblasUpper, d, 1.0f, s->G, d, x, 1, 0.0f, Gu, 1);
    double n = (double)(s->R->indptr[u + 1] - s->R->indptr[u]);
    acc += s->cfg->alpha0 * cblas_dsdot(d, x, 1, Gu, 1) +
           s->cfg->reg * (n + s->cfg->alpha0 * s->n_items) * cblas_dsdot(d, x, 1, x, 1);
    for (int64_t k = s->R->indptr[u]; k < s->R->indptr[u + 1]; k++) {
      double r = 1.0 - cblas_sdot(d, x, 1, s->V + (int64_t)s->R->indices[k] * d, 1);
      acc += s->R->values[k] * r * r;
    }
  }
  s->part[tid] += acc;
  return FEDREC_OK;
}

static fedrec_status objective(ials *s, double *out) {
  fedrec_model *m = s->m;
  int32_t d = s->d;
  fedrec_gramian(s->G, s->V, s->n_items, d);
  for (int t = 0; t < s->cfg->threads; t++) s->part[t] = 0;
  fedrec_status st = fedrec_parallel_for(s->cfg->threads, s->n_users, 512, user_objective, s);
  double obj = 0;
  for (int t = 0; t < s->cfg->threads; t++) obj += s->part[t];
  for (int32_t i = 0; i < s->n_items; i++) {
    const float *v = s->V + (int64_t)i * d;
    obj += item_lambda(s, i) * cblas_dsdot(d, v, 1, v, 1);
    int32_t r = m->free_row[i];
    if (r >= 0)
      obj += s->cfg->free_reg_mult * item_lambda(s, i) *
             cblas_dsdot(d, m->E + (int64_t)r * d, 1, m->E + (int64_t)r * d, 1);
  }
  if (m->H) obj += s->lambda_H * cblas_dsdot(d * m->p, m->H, 1, m->H, 1);
  *out = obj;
  return st;
}

static void refresh_vectors(ials *s) {
  fedrec_model *m = s->m;
  size_t bytes = (size_t)s->n_items * s->d * sizeof(float);
  if (m->H)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->n_items, s->d, m->p, 1.0f, m->C,
                m->p, m->H, m->p, 0.0f, s->Vh, s->d);
  else
    memset(s->Vh, 0, bytes);
  memset(s->Efull, 0, bytes);
  for (int32_t r = 0; r < m->n_free; r++)
    memcpy(s->Efull + (int64_t)m->free_items[r] * s->d, m->E + (int64_t)r * s->d,
           (size_t)s->d * sizeof(float));
  memcpy(s->V, s->Vh, bytes);
  cblas_saxpy(s->n_items * s->d, 1.0f, s->Efull, 1, s->V, 1);
}

static fedrec_status epoch(ials *s) {
  fedrec_status st;
  fedrec_gramian(s->G, s->V, s->n_items, s->d);
  if ((st = fedrec_parallel_for(s->cfg->threads, s->n_users, 64, user_step, s))) return st;
  fedrec_gramian(s->G, s->U, s->n_users, s->d); /* G_U from here on */
  if ((st = fedrec_parallel_for(s->cfg->threads, s->n_items, 256, item_rhs, s))) return st;
  if (s->m->H) {
    if ((st = head_step(s))) return st;
    refresh_vectors(s);
  }
  if (s->m->n_free &&
      (st = fedrec_parallel_for(s->cfg->threads, s->m->n_free, 32, free_step, s)))
    return st;
  refresh_vectors(s);
  return FEDREC_OK;
}

static fedrec_status fit(ials *s, fedrec_progress_fn cb, void *cb_ctx, fedrec_error *err) {
  fedrec_status st = FEDREC_OK;
  refresh_vectors(s);
  for (int32_t ep = 0; ep < s->cfg->epochs && !st; ep++) {
    double t0 = fedrec_clock_s(), obj = 0;
    st = epoch(s);
    if (!st && cb) st = objective(s, &obj);
    if (!st && cb) cb(cb_ctx, ep + 1, s->cfg->epochs, obj, fedrec_clock_s() - t0);
  }
  if (st == FEDREC_ERR_NUMERIC)
    return fedrec_error_set(err, st, "iALS: a least-squares system was not positive definite (raise --reg)");
  if (st) return fedrec_error_set(err, st, "iALS: %s", fedrec_status_str(st));
  return FEDREC_OK;
}

fedrec_status fedrec_ials_fit(fedrec_model *m, const fedrec_csr *R, const float *C, int32_t p,
                              const fedrec_ials_config *cfg_in, fedrec_progress_fn cb,
                              void *cb_ctx, fedrec_error *err) {
  fedrec_ials_config cfg = *cfg_in;
  if (cfg.threads <= 0) cfg.threads = fedrec_cpu_count();
  if (cfg.dim < 1 || cfg.dim > 1024 || !(cfg.reg > 0) || !(cfg.alpha0 >= 0) || cfg.epochs < 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "iALS: need 1 <= dim <= 1024, reg > 0, alpha0 >= 0");
  int32_t nu = R->rows, ni = R->cols, d = cfg.dim;
  int32_t n_free = cfg.n_free < 0 || cfg.n_free > ni ? ni : cfg.n_free;
  int use_head = cfg.use_head && C && p > 0;
  if (!use_head && n_free == 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "iALS: no head (no content) and no free embeddings");
  int32_t *order = malloc((size_t)ni * sizeof *order);
  if (!order) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "iALS");
  fedrec_items_by_popularity(order, R);
  fedrec_status st = fedrec_model_init(m, ni, d, C, p, use_head, order, n_free, cfg.seed,
                                       cfg.init_std, err);
  free(order);
  if (st) return st;

  ials s = {.cfg = &cfg, .R = R, .m = m, .d = d, .n_users = nu, .n_items = ni};
  fedrec_csr RT;
  if ((st = fedrec_csr_transpose(&RT, R, err))) return st;
  s.RT = &RT;
  int32_t max_n = 0;
  for (int32_t u = 0; u < nu; u++)
    if (R->indptr[u + 1] - R->indptr[u] > max_n) max_n = (int32_t)(R->indptr[u + 1] - R->indptr[u]);
  for (int32_t i = 0; i < ni; i++)
    if (RT.indptr[i + 1] - RT.indptr[i] > max_n) max_n = (int32_t)(RT.indptr[i + 1] - RT.indptr[i]);
  size_t wsz = fedrec_user_solve_work(d, max_n) + (size_t)d;
  size_t nd = (size_t)ni * d;
  s.U = calloc((size_t)nu * d, sizeof(float));
  float *block = malloc(6 * nd * sizeof(float) + (size_t)d * d * sizeof(float));
  s.work = calloc((size_t)cfg.threads, sizeof *s.work);
  s.part = calloc((size_t)cfg.threads, sizeof *s.part);
  int ok = s.U && block && s.work && s.part;
  for (int t = 0; ok && t < cfg.threads; t++) ok = (s.work[t] = malloc(wsz * sizeof(float))) != NULL;
  if (ok) {
    s.V = block;
    s.Vh = s.V + nd;
    s.B = s.Vh + nd;
    s.X = s.B + nd;
    s.Y = s.X + nd;
    s.Efull = s.Y + nd;
    s.G = s.Efull + nd;
    double mean_lambda = 0;
    for (int32_t i = 0; i < ni; i++) mean_lambda += item_lambda(&s, i) / ni;
    s.lambda_H = cfg.head_reg * (float)mean_lambda;
    fedrec_blas_threads(1); /* our threads own the cores; BLAS calls inside are small */
    st = fit(&s, cb, cb_ctx, err);
    fedrec_blas_threads(fedrec_cpu_count());
  } else {
    st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "iALS buffers for %d users x %d items", nu, ni);
  }
  for (int t = 0; s.work && t < cfg.threads; t++) free(s.work[t]);
  free(s.work);
  free(s.part);
  free(s.U);
  free(block);
  fedrec_csr_free(&RT);
  if (st) fedrec_model_free(m);
  return st;
}
