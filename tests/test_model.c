/* The model's per-user computations and the central trainers. */
#include <math.h>
#include <string.h>

#include "fedrec/optimizer.h"
#include "test_util.h"

typedef struct {
  fedrec_model m;
  float *C, *V, *u, *w;
  int32_t *items;
  int32_t n;
} fixture;

static void make_fixture(fixture *f, int32_t ni, int32_t d, int32_t p, int32_t n_free, int head) {
  fedrec_rng r;
  fedrec_rng_seed(&r, 7, 1);
  f->C = malloc((size_t)ni * p * sizeof(float));
  for (int32_t k = 0; k < ni * p; k++) f->C[k] = (float)fedrec_rng_normal(&r);
  int32_t *free_items = malloc((size_t)ni * sizeof(int32_t));
  for (int32_t i = 0; i < n_free; i++) free_items[i] = (i * 7) % ni; /* ni prime to 7 */
  fedrec_error err;
  assert_status(fedrec_model_init(&f->m, ni, d, f->C, p, head, free_items, n_free, 3, 0.5f, &err), FEDREC_OK);
  free(free_items);
  f->V = malloc((size_t)ni * d * sizeof(float));
  fedrec_model_item_vectors(f->V, &f->m);
  f->u = malloc((size_t)d * sizeof(float));
  for (int32_t j = 0; j < d; j++) f->u[j] = (float)fedrec_rng_normal(&r);
  f->n = 6;
  f->items = malloc((size_t)f->n * sizeof(int32_t));
  f->w = malloc((size_t)f->n * sizeof(float));
  for (int32_t k = 0; k < f->n; k++) f->items[k] = k * 4 + 1, f->w[k] = 1.0f + (float)k * 0.5f;
}

static void free_fixture(fixture *f) {
  fedrec_model_free(&f->m);
  free(f->C), free(f->V), free(f->u), free(f->w), free(f->items);
}

static double ref_loss(fixture *f, float alpha0, float reg) {
  double L;
  fedrec_user_loss_grad_ref(&L, NULL, NULL, &f->m, f->u, f->items, f->w, f->n, alpha0, reg);
  return L;
}

/* The BLAS gradient equals the reference, and the reference equals finite differences. */
static void test_gradient(void **state) {
  (void)state;
  fixture f;
  make_fixture(&f, 31, 4, 5, 20, 1);
  float alpha0 = 0.3f, reg = 0.01f;
  size_t nE = (size_t)f.m.n_free * f.m.d, nH = (size_t)f.m.d * f.m.p;
  float *gE = malloc(nE * 4), *gH = malloc(nH * 4), *rE = malloc(nE * 4), *rH = malloc(nH * 4);
  float *work = malloc(fedrec_user_grad_work(&f.m, f.n) * 4);
  double L, Lr;
  fedrec_user_loss_grad(&L, gE, gH, &f.m, f.V, f.u, f.items, f.w, f.n, alpha0, reg, work);
  fedrec_user_loss_grad_ref(&Lr, rE, rH, &f.m, f.u, f.items, f.w, f.n, alpha0, reg);
  assert_near(L, Lr, 1e-4 * fabs(Lr));
  for (size_t k = 0; k < nE; k++) assert_near(gE[k], rE[k], 1e-3 * (1 + fabs(rE[k])));
  for (size_t k = 0; k < nH; k++) assert_near(gH[k], rH[k], 1e-3 * (1 + fabs(rH[k])));
  /* central differences on a sample of parameters (the loss is quadratic in each) */
  const float eps = 1e-2f;
  for (size_t k = 0; k < nE; k += 3) {
    float keep = f.m.E[k];
    f.m.E[k] = keep + eps;
    double lp = ref_loss(&f, alpha0, reg);
    f.m.E[k] = keep - eps;
    double lm = ref_loss(&f, alpha0, reg);
    f.m.E[k] = keep;
    assert_near((lp - lm) / (2 * eps), rE[k], 2e-3 * (1 + fabs(rE[k])));
  }
  for (size_t k = 0; k < nH; k++) {
    float keep = f.m.H[k];
    f.m.H[k] = keep + eps;
    double lp = ref_loss(&f, alpha0, reg);
    f.m.H[k] = keep - eps;
    double lm = ref_loss(&f, alpha0, reg);
    f.m.H[k] = keep;
    assert_near((lp - lm) / (2 * eps), rH[k], 2e-3 * (1 + fabs(rH[k])));
  }
  free(gE), free(gH), free(rE), free(rH), free(work);
  free_fixture(&f);
}

/* Naive solver: Gaussian elimination with partial pivoting in double. */
static void naive_solve(double *x, double *A, double *b, int n) {
  for (int c = 0; c < n; c++) {
    int piv = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(A[r * n + c]) > fabs(A[piv * n + c])) piv = r;
    for (int j = 0; j < n; j++) {
      double t = A[c * n + j];
      A[c * n + j] = A[piv * n + j];
      A[piv * n + j] = t;
    }
    double t = b[c];
    b[c] = b[piv];
    b[piv] = t;
    for (int r = c + 1; r < n; r++) {
      double m = A[r * n + c] / A[c * n + c];
      for (int j = c; j < n; j++) A[r * n + j] -= m * A[c * n + j];
      b[r] -= m * b[c];
    }
  }
  for (int r = n - 1; r >= 0; r--) {
    double s = b[r];
    for (int j = r + 1; j < n; j++) s -= A[r * n + j] * x[j];
    x[r] = s / A[r * n + r];
  }
}

static void test_user_solve(void **state) {
  (void)state;
  fixture f;
  make_fixture(&f, 37, 8, 6, 37, 1);
  int32_t d = 8, ni = 37;
  float alpha0 = 0.2f, reg = 0.05f;
  float *G = malloc((size_t)d * d * 4), *u = malloc((size_t)d * 4);
  fedrec_gramian(G, f.V, ni, d);
  float *work = malloc(fedrec_user_solve_work(d, f.n) * 4);
  assert_status(fedrec_user_solve(u, f.V, G, ni, d, f.items, f.w, f.n, alpha0, reg, work), FEDREC_OK);
  double A[64] = {0}, b[8] = {0}, x[8];
  for (int32_t i = 0; i < ni; i++)
    for (int a = 0; a < d; a++)
      for (int c = 0; c < d; c++) A[a * d + c] += alpha0 * (double)f.V[i * d + a] * f.V[i * d + c];
  for (int k = 0; k < f.n; k++) {
    const float *v = f.V + f.items[k] * d;
    for (int a = 0; a < d; a++) {
      b[a] += f.w[k] * (double)v[a];
      for (int c = 0; c < d; c++) A[a * d + c] += f.w[k] * (double)v[a] * v[c];
    }
  }
  for (int a = 0; a < d; a++) A[a * d + a] += reg * (f.n + alpha0 * ni);
  naive_solve(x, A, b, d);
  for (int a = 0; a < d; a++) assert_near(u[a], x[a], 1e-4 * (1 + fabs(x[a])));
  /* the solution is the minimiser: the BLAS gradient of L_u w.r.t. u vanishes there,
   * checked via the loss being lower than at nearby points */
  double L0 = ref_loss(&(fixture){.m = f.m, .u = u, .items = f.items, .w = f.w, .n = f.n}, alpha0, reg);
  for (int a = 0; a < d; a++) {
    u[a] += 0.01f;
    double L1 = ref_loss(&(fixture){.m = f.m, .u = u, .items = f.items, .w = f.w, .n = f.n}, alpha0, reg);
    u[a] -= 0.01f;
    assert_true(L1 >= L0 - 1e-6);
  }
  /* an empty history gives the zero vector */
  assert_status(fedrec_user_solve(u, f.V, G, ni, d, NULL, NULL, 0, alpha0, reg, work), FEDREC_OK);
  for (int a = 0; a < d; a++) assert_true(u[a] == 0.0f);
  free(G), free(u), free(work);
  free_fixture(&f);
}

/* The explanation is exact: each target's contributions add up to its score v_t . u (with u
 * the same solve as fedrec_user_solve), and the top contributor follows the history. */
static void test_explain(void **state) {
  (void)state;
  fixture f;
  make_fixture(&f, 37, 8, 6, 37, 1);
  int32_t d = 8, ni = 37, targets[3] = {0, 2, 30};
  float alpha0 = 0.2f, reg = 0.05f;
  float *G = malloc((size_t)d * d * 4), *u = malloc((size_t)d * 4), *u2 = malloc((size_t)d * 4);
  float *contrib = malloc(3 * 8 * sizeof(float)), *work = malloc(fedrec_user_explain_work(d, 8) * 4);
  fedrec_gramian(G, f.V, ni, d);
  assert_status(fedrec_user_explain(contrib, u, f.V, G, ni, d, f.items, f.w, f.n, alpha0, reg, targets, 3, work), FEDREC_OK);
  assert_status(fedrec_user_solve(u2, f.V, G, ni, d, f.items, f.w, f.n, alpha0, reg, work), FEDREC_OK);
  for (int a = 0; a < d; a++) assert_near(u[a], u2[a], 1e-6 * (1 + fabs(u2[a])));
  int top = 0;
  for (int t = 0; t < 3; t++) {
    double score = 0, sum = 0, mag = 0;
    for (int a = 0; a < d; a++) score += (double)f.V[targets[t] * d + a] * u[a];
    for (int k = 0; k < f.n; k++) sum += contrib[t * f.n + k], mag += fabs(contrib[t * f.n + k]);
    assert_near(sum, score, 1e-4 * (1 + mag));
    if (t == 0)
      for (int k = 1; k < f.n; k++) top = contrib[k] > contrib[top] ? k : top;
  }
  /* give the target's own nearest neighbour a heavy weight: it becomes the top contributor */
  int32_t items[7];
  float w[7];
  memcpy(items, f.items, (size_t)f.n * sizeof *items);
  memcpy(w, f.w, (size_t)f.n * sizeof *w);
  int32_t best = -1;
  double best_cos = -2;
  for (int32_t i = 0; i < ni; i++) {
    int in = i == targets[0];
    for (int k = 0; k < f.n; k++) in |= items[k] == i;
    if (in) continue;
    double xy = 0, xx = 0, yy = 0;
    for (int a = 0; a < d; a++) {
      double x = f.V[targets[0] * d + a], y = f.V[i * d + a];
      xy += x * y, xx += x * x, yy += y * y;
    }
    if (xy / sqrt(xx * yy) > best_cos) best_cos = xy / sqrt(xx * yy), best = i;
  }
  items[f.n] = best, w[f.n] = 40.0f;
  assert_status(fedrec_user_explain(contrib, u, f.V, G, ni, d, items, w, f.n + 1, alpha0, reg, targets, 1, work), FEDREC_OK);
  int top2 = 0;
  for (int k = 1; k < f.n + 1; k++) top2 = contrib[k] > contrib[top2] ? k : top2;
  assert_int_equal(top2, f.n);
  assert_int_not_equal(top2, top);
  free(G), free(u), free(u2), free(contrib), free(work);
  free_fixture(&f);
}

static void small_synth(fedrec_dataset *ds, int32_t users, int32_t items, int threads) {
  fedrec_synth_config c;
  fedrec_error err = {0};
  fedrec_synth_defaults(&c);
  c.users = users;
  c.items = items;
  c.content_dim = 16;
  c.median_len = 12;
  c.threads = threads;
  assert_status(fedrec_synth_generate(ds, &c, &err), FEDREC_OK);
}

typedef struct {
  double obj[64];
  int n;
} trace;

static void record(void *ctx, int32_t epoch, int32_t epochs, double obj, double secs) {
  trace *t = ctx;
  (void)epoch, (void)epochs, (void)secs;
  if (t->n < 64) t->obj[t->n++] = obj;
}

/* Every block step minimises the objective, so it never rises, with or without a head. */
static void test_ials_monotone(void **state) {
  (void)state;
  fedrec_dataset ds;
  small_synth(&ds, 400, 150, 2);
  for (int variant = 0; variant < 3; variant++) {
    fedrec_ials_config c;
    fedrec_ials_defaults(&c);
    c.dim = 8;
    c.epochs = 6;
    c.threads = 2;
    c.use_head = variant > 0;
    c.n_free = variant == 0 ? -1 : variant == 1 ? 40 : 0;
    trace t = {.n = 0};
    fedrec_model m;
    fedrec_error err = {0};
    assert_status(fedrec_ials_fit(&m, &ds.R, ds.content, ds.content_dim, &c, record, &t, &err), FEDREC_OK);
    assert_int_equal(t.n, 6);
    for (int k = 1; k < t.n; k++)
      if (t.obj[k] > t.obj[k - 1] * (1 + 1e-5))
        fail_msg("variant %d: objective rose from %.8g to %.8g at epoch %d", variant, t.obj[k - 1], t.obj[k], k + 1);
    assert_true(t.obj[t.n - 1] < t.obj[0]);
    fedrec_model_free(&m);
  }
  fedrec_dataset_free(&ds);
}

static void test_determinism(void **state) {
  (void)state;
  fedrec_dataset a, b;
  small_synth(&a, 3000, 400, 1);
  small_synth(&b, 3000, 400, 2);
  /* same data whatever the thread count */
  assert_int_equal(fedrec_csr_nnz(&a.R), fedrec_csr_nnz(&b.R));
  assert_memory_equal(a.R.indptr, b.R.indptr, (size_t)(a.R.rows + 1) * 8);
  assert_memory_equal(a.R.indices, b.R.indices, (size_t)fedrec_csr_nnz(&a.R) * 4);
  assert_memory_equal(a.content, b.content, (size_t)a.R.cols * a.content_dim * 4);
  fedrec_ials_config c;
  fedrec_ials_defaults(&c);
  c.dim = 8, c.epochs = 2, c.threads = 2, c.use_head = 1, c.n_free = 100;
  fedrec_model m1, m2, m3;
  fedrec_error err;
  assert_status(fedrec_ials_fit(&m1, &a.R, a.content, a.content_dim, &c, NULL, NULL, &err), FEDREC_OK);
  assert_status(fedrec_ials_fit(&m2, &a.R, a.content, a.content_dim, &c, NULL, NULL, &err), FEDREC_OK);
  assert_memory_equal(m1.H, m2.H, (size_t)8 * a.content_dim * 4);
  assert_memory_equal(m1.E, m2.E, (size_t)100 * 8 * 4);
  c.seed = 43;
  assert_status(fedrec_ials_fit(&m3, &a.R, a.content, a.content_dim, &c, NULL, NULL, &err), FEDREC_OK);
  assert_true(memcmp(m1.E, m3.E, (size_t)100 * 8 * 4) != 0);
  fedrec_model_free(&m1), fedrec_model_free(&m2), fedrec_model_free(&m3);
  fedrec_dataset_free(&a);
  fedrec_dataset_free(&b);
}

static void test_synth_shape(void **state) {
  (void)state;
  fedrec_dataset ds;
  small_synth(&ds, 20000, 2000, 2);
  double *cnt = malloc(2000 * sizeof(double));
  fedrec_item_counts(cnt, &ds.R);
  int32_t *order = malloc(2000 * sizeof(int32_t));
  fedrec_items_by_popularity(order, &ds.R);
  /* power law: the head item is far more popular than the median item */
  assert_true(cnt[order[0]] > 20 * (cnt[order[1000]] + 1));
  /* histories: median near the configured 12, every user has at least 2 items */
  int32_t shorter = 0;
  for (int32_t u = 0; u < ds.R.rows; u++) {
    int64_t n = ds.R.indptr[u + 1] - ds.R.indptr[u];
    assert_true(n >= 2);
    shorter += n < 12;
  }
  assert_true(shorter > ds.R.rows / 3 && shorter < ds.R.rows * 2 / 3);
  free(cnt), free(order);
  fedrec_dataset_free(&ds);
}

/* EASE's B satisfies (G + lambda I)(I - B) = diagonal. */
static void test_ease(void **state) {
  (void)state;
  fedrec_dataset ds;
  small_synth(&ds, 300, 40, 1);
  fedrec_ease_model em;
  fedrec_error err;
  float lambda = 5.0f;
  assert_status(fedrec_ease_fit(&em, &ds.R, lambda, &err), FEDREC_OK);
  int n = 40;
  assert_int_equal(em.m, 40); /* every item has interactions here */
  const float *B = em.B;
  double G[40 * 40] = {0};
  for (int32_t u = 0; u < ds.R.rows; u++)
    for (int64_t a = ds.R.indptr[u]; a < ds.R.indptr[u + 1]; a++)
      for (int64_t b = ds.R.indptr[u]; b < ds.R.indptr[u + 1]; b++)
        G[ds.R.indices[a] * n + ds.R.indices[b]] += 1;
  for (int i = 0; i < n; i++) G[i * n + i] += lambda;
  for (int i = 0; i < n; i++) {
    assert_true(B[i * n + i] == 0.0f);
    for (int j = 0; j < n; j++) {
      if (i == j) continue;
      double s = 0;
      for (int k = 0; k < n; k++) s += G[i * n + k] * ((k == j) - (double)B[k * n + j]);
      assert_near(s, 0.0, 1e-3);
    }
  }
  fedrec_ease_free(&em);
  fedrec_dataset_free(&ds);
}

/* A catalogue grows: new items read the head; listed items get zero free rows appended (no
 * item's vector moves), the parameters grow in fedrec_model_get_params' order; a bad list
 * changes nothing. */
static void test_model_grow(void **state) {
  (void)state;
  enum { N = 40, D = 4, P = 3, N2 = 45 };
  static float C[N2 * P];
  for (int i = 0; i < N2 * P; i++) C[i] = (float)((i * 13) % 11) - 5;
  int32_t free_items[] = {7, 2};
  fedrec_model m;
  fedrec_error err;
  assert_status(fedrec_model_init(&m, N, D, C, P, 1, free_items, 2, 9, 0.1f, &err), FEDREC_OK);
  float V0[N2 * D], V1[N2 * D], x0[2 * D + D * P], x1[5 * D + D * P];
  fedrec_model_item_vectors(V0, &m);
  fedrec_model_get_params(x0, &m);
  int32_t bad[][3] = {{3, 3, 1}, {7, 1, 4}, {1, 45, 2}, {1, -1, 2}}; /* twice, has one, out of range (twice) */
  for (int k = 0; k < 4; k++) {
    assert_status(fedrec_model_grow(&m, N2, C, bad[k], 3, &err), FEDREC_ERR_ARG);
    assert_int_equal(m.n_items, N), assert_int_equal(m.n_free, 2);
  }
  assert_status(fedrec_model_grow(&m, N - 1, C, NULL, 0, &err), FEDREC_ERR_ARG);
  int32_t add[] = {42, 0, 11};
  assert_status(fedrec_model_grow(&m, N2, C, add, 3, &err), FEDREC_OK);
  assert_int_equal(m.n_items, N2), assert_int_equal(m.n_free, 5);
  assert_int_equal(fedrec_model_params(&m), 5 * D + D * P);
  assert_int_equal(m.free_row[42], 2), assert_int_equal(m.free_row[11], 4), assert_int_equal(m.free_row[44], -1);
  assert_int_equal(m.free_items[3], 0);
  fedrec_model_item_vectors(V1, &m);
  assert_memory_equal(V1, V0, sizeof(float) * N * D); /* the old items' vectors */
  fedrec_model_get_params(x1, &m);
  assert_memory_equal(x1, x0, sizeof(float) * 2 * D);                        /* old rows first */
  for (int k = 2 * D; k < 5 * D; k++) assert_true(x1[k] == 0);                /* then the new */
  assert_memory_equal(x1 + 5 * D, x0 + 2 * D, sizeof(float) * D * P);       /* then the head */
  for (int j = 0; j < D; j++) { /* a new item's vector is H c_i */
    float v = 0;
    for (int k = 0; k < P; k++) v += m.H[j * P + k] * C[43 * P + k];
    assert_float_equal(V1[43 * D + j], v, 1e-5);
  }
  size_t n = fedrec_model_encoded_size(&m);
  uint8_t *b = malloc(n);
  fedrec_model_encode(b, &m, 2);
  fedrec_model back;
  assert_status(fedrec_model_decode(&back, NULL, b, n, C, P, &err), FEDREC_OK);
  assert_int_equal(back.free_row[42], 2);
  fedrec_model_free(&back);
  free(b);
  fedrec_model_free(&m);
}

/* The model blob round-trips exactly, and every malformed variant is refused with a reason. */
static void test_model_blob(void **state) {
  (void)state;
  enum { N = 50, D = 6, P = 5 };
  static float C[N * P];
  for (int i = 0; i < N * P; i++) C[i] = (float)(i % 7) - 3;
  int32_t free_items[] = {3, 17, 42};
  fedrec_model m, back;
  fedrec_error err;
  assert_status(fedrec_model_init(&m, N, D, C, P, 1, free_items, 3, 9, 0.1f, &err), FEDREC_OK);
  size_t n = fedrec_model_encoded_size(&m);
  assert_int_equal(n, 32 + 4 * (3 + D * P + 3 * D));
  uint8_t *b = malloc(n), *b2 = malloc(n);
  fedrec_model_encode(b, &m, 0x100000007ULL);
  uint64_t ver;
  assert_status(fedrec_model_decode(&back, &ver, b, n, C, P, &err), FEDREC_OK);
  assert_true(ver == 0x100000007ULL);
  assert_memory_equal(back.H, m.H, sizeof(float) * D * P);
  assert_memory_equal(back.E, m.E, sizeof(float) * 3 * D);
  assert_int_equal(back.free_row[42], 2);
  fedrec_model_encode(b2, &back, ver);
  assert_memory_equal(b, b2, n);
  float x[3 * D + D * P];
  fedrec_model_get_params(x, &m);
  assert_memory_equal(x, m.E, sizeof(float) * 3 * D);
  x[0] = 123;
  fedrec_model_set_params(&back, x);
  assert_true(back.E[0] == 123);
  fedrec_model_free(&back);
  /* malformed variants */
  assert_status(fedrec_model_decode(&back, &ver, b, n - 1, C, P, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "the header implies"));
  assert_status(fedrec_model_decode(&back, &ver, b, 10, C, P, &err), FEDREC_ERR_PARSE);
  assert_status(fedrec_model_decode(&back, &ver, b, n, C, P + 1, &err), FEDREC_ERR_PARSE);
  memcpy(b2, b, n);
  b2[0] = 'X';
  assert_status(fedrec_model_decode(&back, &ver, b2, n, C, P, &err), FEDREC_ERR_PARSE);
  memcpy(b2, b, n);
  b2[32 + 4] = 3; /* second free item repeats the first */
  b2[32 + 5] = b2[32 + 6] = b2[32 + 7] = 0;
  assert_status(fedrec_model_decode(&back, &ver, b2, n, C, P, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "repeated"));
  memcpy(b2, b, n);
  memset(b2 + n - 4, 0xff, 4); /* a NaN parameter */
  assert_status(fedrec_model_decode(&back, &ver, b2, n, C, P, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "not finite"));
  free(b), free(b2);
  fedrec_model_free(&m);
}

/* Popularity: format 2 carries it (and format 1 stays what it was without it); the item
 * vectors get the normalised popularity as coordinate d; the BLAS gradient with it equals the
 * reference, and moving the popularity coordinate's user weight changes the loss as the
 * reference says; grow gives new items zero popularity; bad flags and lengths are refused. */
static void test_model_popularity(void **state) {
  (void)state;
  fixture f;
  make_fixture(&f, 31, 4, 5, 20, 1);
  size_t n1 = fedrec_model_encoded_size(&f.m);
  fedrec_error err;
  assert_status(fedrec_model_add_popularity(&f.m, &err), FEDREC_OK);
  int32_t ni = f.m.n_items, d = f.m.d, vd = fedrec_model_vdim(&f.m);
  assert_int_equal(vd, d + 1);
  for (int32_t i = 0; i < ni; i++) f.m.pop[i] = (float)((i * 5) % 11) - 2; /* some negative: noisy counts */
  size_t n = fedrec_model_encoded_size(&f.m);
  assert_int_equal(n, n1 + 4 + 4 * (size_t)ni);
  uint8_t *b = malloc(n), *b2 = malloc(n);
  fedrec_model_encode(b, &f.m, 5);
  assert_int_equal(b[4], 2);
  fedrec_model back;
  assert_status(fedrec_model_decode(&back, NULL, b, n, f.C, 5, &err), FEDREC_OK);
  assert_memory_equal(back.pop, f.m.pop, (size_t)ni * sizeof(float));
  fedrec_model_encode(b2, &back, 5);
  assert_memory_equal(b, b2, n);
  fedrec_model_free(&back);
  memcpy(b2, b, n);
  b2[32] = 4; /* an unknown flag (1 popularity, 2 modalities) */
  assert_status(fedrec_model_decode(&back, NULL, b2, n, f.C, 5, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "flags"));
  assert_status(fedrec_model_decode(&back, NULL, b, n - 4, f.C, 5, &err), FEDREC_ERR_PARSE);
  memcpy(b2, b, n);
  memset(b2 + n - 4, 0xff, 4); /* a NaN popularity */
  assert_status(fedrec_model_decode(&back, NULL, b2, n, f.C, 5, &err), FEDREC_ERR_PARSE);
  /* item vectors: the first d coordinates as without popularity, then pop_i / max pop (>= 0) */
  float *V = malloc((size_t)ni * vd * sizeof *V), *u = malloc((size_t)vd * sizeof *u);
  fedrec_model_item_vectors(V, &f.m);
  for (int32_t i = 0; i < ni; i++) {
    for (int32_t j = 0; j < d; j++) assert_near(V[(size_t)i * vd + j], f.V[(size_t)i * d + j], 1e-5);
    assert_near(V[(size_t)i * vd + d], f.m.pop[i] > 0 ? f.m.pop[i] / 8.0f : 0.0f, 1e-6);
  }
  memcpy(u, f.u, (size_t)d * sizeof *u);
  u[d] = 0.7f;
  size_t nE = (size_t)f.m.n_free * d, nH = (size_t)d * f.m.p;
  float *gE = malloc(nE * 4), *gH = malloc(nH * 4), *rE = malloc(nE * 4), *rH = malloc(nH * 4);
  float *work = malloc(fedrec_user_grad_work(&f.m, f.n) * 4);
  double L, Lr, L0;
  fedrec_user_loss_grad(&L, gE, gH, &f.m, V, u, f.items, f.w, f.n, 0.3f, 0.01f, work);
  fedrec_user_loss_grad_ref(&Lr, rE, rH, &f.m, u, f.items, f.w, f.n, 0.3f, 0.01f);
  assert_near(L, Lr, 1e-4 * fabs(Lr));
  for (size_t k = 0; k < nE; k++) assert_near(gE[k], rE[k], 1e-3 * (1 + fabs(rE[k])));
  for (size_t k = 0; k < nH; k++) assert_near(gH[k], rH[k], 1e-3 * (1 + fabs(rH[k])));
  u[d] = 0;
  fedrec_user_loss_grad_ref(&L0, NULL, NULL, &f.m, u, f.items, f.w, f.n, 0.3f, 0.01f);
  assert_true(fabs(L0 - Lr) > 1e-3); /* the popularity coordinate takes part in the scores */
  /* a grown catalogue: the new items' popularity is zero, the old ones' kept */
  float *C2 = malloc((size_t)(ni + 4) * 5 * sizeof *C2);
  memcpy(C2, f.C, (size_t)ni * 5 * sizeof *C2);
  memset(C2 + (size_t)ni * 5, 0, 4 * 5 * sizeof *C2);
  assert_status(fedrec_model_grow(&f.m, ni + 4, C2, NULL, 0, &err), FEDREC_OK);
  for (int32_t i = 0; i < 4; i++) assert_true(f.m.pop[ni + i] == 0);
  assert_true(f.m.pop[1] == 3);
  free(C2), free(b), free(b2), free(V), free(u), free(gE), free(gH), free(rE), free(rH), free(work);
  free_fixture(&f);
}

/* The spectral pieces: the top-M list by popularity (ties by index), a device's packed
 * co-occurrence vector (entries 1/|S| at the documented places, items outside the list and
 * repeats ignored, norm <= 1), and the embedding of a planted rank-2 sum with noise: two
 * directions above the edge, recovered up to sign, and none from noise alone. */
static void test_spectral(void **state) {
  (void)state;
  fixture f;
  make_fixture(&f, 31, 4, 5, 31, 0);
  fedrec_error err;
  int32_t top[5];
  assert_status(fedrec_model_top_popular(top, &f.m, 5, &err), FEDREC_ERR_ARG); /* no popularity */
  assert_status(fedrec_model_add_popularity(&f.m, &err), FEDREC_OK);
  for (int32_t i = 0; i < 31; i++) f.m.pop[i] = (float)(i % 10);
  assert_status(fedrec_model_top_popular(top, &f.m, 5, &err), FEDREC_OK);
  int32_t want[5] = {9, 19, 29, 8, 18};
  assert_memory_equal(top, want, sizeof want);
  assert_int_equal(fedrec_gram_dim(5), 15);
  float x[15];
  int32_t hist[] = {29, 3, 9, 29, 8};
  assert_status(fedrec_gram_update(x, top, 5, 31, hist, 5, &err), FEDREC_OK);
  /* S = {29, 9, 8} at positions {2, 0, 3}: entries (0,0) (0,2) (0,3) (2,2) (2,3) (3,3) */
  int on[15] = {[0] = 1, [2] = 1, [3] = 1, [9] = 1, [10] = 1, [12] = 1};
  double norm = 0;
  for (int k = 0; k < 15; k++) {
    assert_near(x[k], on[k] ? 1.0 / 3 : 0, 1e-7);
    norm += (double)x[k] * x[k];
  }
  assert_true(norm <= 1 + 1e-6);
  /* a planted sum: 40 a a^T + 20 b b^T, a and b orthonormal over M = 30, plus noise */
  enum { M = 30 };
  float sum[M * (M + 1) / 2], V[M * 4];
  double a[M], b[M];
  for (int i = 0; i < M; i++) a[i] = 1 / sqrt(M), b[i] = (i < M / 2 ? 1 : -1) / sqrt(M);
  fedrec_rng r;
  fedrec_rng_seed(&r, 3, 3);
  for (int i = 0, at = 0; i < M; i++)
    for (int j = i; j < M; j++, at++) sum[at] = (float)(40 * a[i] * a[j] + 20 * b[i] * b[j] + 0.3 * fedrec_rng_normal(&r));
  int32_t rank;
  assert_status(fedrec_spectral_embed(V, sum, M, 4, 0.3, &rank, &err), FEDREC_OK);
  assert_int_equal(rank, 2); /* the edge 2 * 0.3 * sqrt(30) = 3.3 */
  double ca = 0, cb = 0, n0 = 0, n1 = 0;
  for (int i = 0; i < M; i++) {
    ca += V[i * 4] * a[i], cb += V[i * 4 + 1] * b[i];
    n0 += V[i * 4] * V[i * 4], n1 += V[i * 4 + 1] * V[i * 4 + 1];
    assert_true(V[i * 4 + 2] == 0 && V[i * 4 + 3] == 0);
  }
  assert_true(fabs(ca) / sqrt(n0) > 0.99 && fabs(cb) / sqrt(n1) > 0.98);
  assert_near(n0, 40 - 3.3, 1.0); /* scaled by sqrt(eigenvalue - edge) */
  for (int i = 0, at = 0; i < M; i++)
    for (int j = i; j < M; j++, at++) sum[at] = (float)(0.3 * fedrec_rng_normal(&r));
  assert_status(fedrec_spectral_embed(V, sum, M, 4, 0.3, &rank, &err), FEDREC_OK);
  assert_int_equal(rank, 0);
  free_fixture(&f);
}

/* The optimizer list: names both ways, and each step against its textbook formula. */
static void test_optimizers(void **state) {
  (void)state;
  for (int k = 0; k < FEDREC_OPTIMIZERS; k++) {
    int back;
    assert_int_equal(fedrec_optimizer_parse(fedrec_optimizer_name(k), &back), FEDREC_OK);
    assert_int_equal(back, k);
    assert_non_null(strstr(fedrec_optimizer_names(), fedrec_optimizer_name(k)));
  }
  int o;
  assert_int_equal(fedrec_optimizer_parse("sgd", &o), FEDREC_ERR_ARG);
  fedrec_optimizer_params p = {.lr = 0.5, .momentum = 0.9, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-3};
  float x[2] = {1, -1}, m1[2] = {0, 0}, m2[2] = {0, 0}, g[2] = {0.2f, -0.4f};
  fedrec_optimizer_step(FEDREC_OPT_FEDAVG, &p, 1, x, m1, m2, g, 2);
  fedrec_optimizer_step(FEDREC_OPT_FEDAVG, &p, 2, x, m1, m2, g, 2);
  /* m = 0.2, then 0.9 * 0.2 + 0.2 = 0.38; x = 1 - 0.5 (0.2 + 0.38) */
  assert_float_equal(x[0], 1 - 0.5 * (0.2 + 0.38), 1e-6);
  assert_float_equal(m1[1], -0.76, 1e-6);
  float y[1] = {0}, a1[1] = {0}, a2[1] = {0}, h[1] = {0.3f};
  fedrec_optimizer_step(FEDREC_OPT_FEDADAM, &p, 1, y, a1, a2, h, 1);
  /* first step: bias-corrected moments are g and g^2: x -= lr g / (|g| + eps) */
  assert_float_equal(y[0], -0.5 * 0.3 / (0.3 + 1e-3), 1e-6);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_gradient),     cmocka_unit_test(test_user_solve),
      cmocka_unit_test(test_ials_monotone), cmocka_unit_test(test_determinism),
      cmocka_unit_test(test_synth_shape),  cmocka_unit_test(test_ease),
      cmocka_unit_test(test_model_blob), cmocka_unit_test(test_model_grow), cmocka_unit_test(test_optimizers),
      cmocka_unit_test(test_explain),      cmocka_unit_test(test_model_popularity),
      cmocka_unit_test(test_spectral),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
