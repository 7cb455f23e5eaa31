/* Core benchmarks: one JSON object per line (name, value, unit, and where a limit applies,
 * the limit measured in the same run and the ratio to it). Usage:
 *   bench_core [--data DIR] [--quick]
 * DIR defaults to ../shared/data beside the source tree; the MovieLens benchmark reports
 * "skipped" when it is absent. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "fedrec/fedrec.h"

static double peak_rss_mib(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss / 1024.0;
}

/* Best of several sgemm runs at n = 1024 on all cores: the limit the kernels are held to. */
static double sgemm_gflops(int n, int reps) {
  float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
  for (size_t k = 0; k < (size_t)n * n; k++) a[k] = (float)(k % 7) * 0.1f, b[k] = (float)(k % 5) * 0.1f;
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t = bench_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
    t = bench_now() - t;
    if (t < best) best = t;
  }
  free(a), free(b), free(c);
  return 2.0 * n * n * n / best / 1e9;
}

/* Single-threaded sgemm at the shapes the user solve uses (d x d systems). */
static double sgemm_gflops_1t(int n, int reps) {
  openblas_set_num_threads(1);
  double g = sgemm_gflops(n, reps);
  openblas_set_num_threads((int)sysconf(_SC_NPROCESSORS_ONLN));
  return g;
}

static void bench_user_solve(double gemm1) {
  const int32_t d = 64, ni = 20000, n = 100;
  fedrec_rng r;
  fedrec_rng_seed(&r, 1, 1);
  float *V = malloc((size_t)ni * d * 4), *G = malloc((size_t)d * d * 4), *u = malloc((size_t)d * 4);
  for (size_t k = 0; k < (size_t)ni * d; k++) V[k] = (float)fedrec_rng_normal(&r) * 0.1f;
  fedrec_gramian(G, V, ni, d);
  int32_t items[100];
  for (int k = 0; k < n; k++) items[k] = (int32_t)fedrec_rng_below(&r, (uint64_t)ni);
  float *work = malloc(fedrec_user_solve_work(d, n) * 4);
  openblas_set_num_threads(1);
  int reps = 20000;
  double t = bench_now();
  for (int k = 0; k < reps; k++) fedrec_user_solve(u, V, G, ni, d, items, NULL, n, 0.1f, 0.003f, work);
  t = (bench_now() - t) / reps;
  openblas_set_num_threads((int)sysconf(_SC_NPROCESSORS_ONLN));
  /* syrk n d^2 + Cholesky d^3/3 + solve 2 d^2 + rhs 2 n d */
  double flops = (double)n * d * d + d * d * d / 3.0 + 2.0 * d * d + 2.0 * n * d;
  bench_emit("user_solve_100_items_d64_us", t * 1e6, "us", 0, NULL, NULL);
  bench_emit("user_solve_100_items_d64_gflops", flops / t / 1e9, "GFLOP/s", gemm1,
       "sgemm_512_1thread_gflops", NULL);
  free(V), free(G), free(u), free(work);
}

static void bench_user_grad(void) {
  /* The client's per-round gradient: 20 000 items, d = 64, p = 64, all items free. */
  const int32_t ni = 20000, d = 64, p = 64, n = 100;
  fedrec_rng r;
  fedrec_rng_seed(&r, 2, 1);
  float *C = malloc((size_t)ni * p * 4);
  for (size_t k = 0; k < (size_t)ni * p; k++) C[k] = (float)fedrec_rng_normal(&r) * 0.1f;
  int32_t *fr = malloc((size_t)ni * 4);
  for (int32_t i = 0; i < ni; i++) fr[i] = i;
  fedrec_model m;
  fedrec_error err;
  if (fedrec_model_init(&m, ni, d, C, p, 1, fr, ni, 1, 0.1f, &err)) return;
  float *V = malloc((size_t)ni * d * 4), *gE = malloc((size_t)ni * d * 4), *gH = malloc((size_t)d * p * 4);
  float *u = malloc((size_t)d * 4), *work = malloc(fedrec_user_grad_work(&m, n) * 4);
  fedrec_model_item_vectors(V, &m);
  int32_t items[100];
  for (int k = 0; k < n; k++) items[k] = k * 150;
  for (int j = 0; j < d; j++) u[j] = 0.1f;
  openblas_set_num_threads(1);
  int reps = 200;
  double loss, t = bench_now();
  for (int k = 0; k < reps; k++) fedrec_user_loss_grad(&loss, gE, gH, &m, V, u, items, NULL, n, 0.1f, 0.003f, work);
  t = (bench_now() - t) / reps;
  openblas_set_num_threads((int)sysconf(_SC_NPROCESSORS_ONLN));
  /* bytes touched: V read, gE written, C read: the gradient is memory-bound */
  double bytes = 4.0 * ((double)ni * d * 2 + (double)ni * p);
  bench_emit("user_grad_20k_items_d64_p64_ms", t * 1e3, "ms", 0, NULL, NULL);
  char extra[96];
  snprintf(extra, sizeof extra, "\"bytes_per_call\": %.0f", bytes);
  bench_emit("user_grad_20k_items_d64_p64_gbps", bytes / t / 1e9, "GB/s", 0, NULL, extra);
  fedrec_model_free(&m);
  free(C), free(fr), free(V), free(gE), free(gH), free(u), free(work);
}

typedef struct {
  double t[64];
  int n;
} epochs;

static void on_epoch(void *ctx, int32_t e, int32_t n, double obj, double s) {
  epochs *x = ctx;
  (void)e, (void)n, (void)obj;
  if (x->n < 64) x->t[x->n++] = s;
}

static void bench_ials_epoch(const char *dir, double gemm) {
  char path[8192];
  snprintf(path, sizeof path, "%s/ml-latest-small", dir);
  fedrec_dataset ds;
  fedrec_error err = {0};
  if (access(path, R_OK) != 0 || fedrec_load_movielens(&ds, path, 4.0, 64, &err)) {
    printf("{\"name\": \"ials_epoch_movielens_s\", \"skipped\": \"%s not readable\"}\n", path);
    return;
  }
  for (int head = 0; head < 2; head++) {
    fedrec_ials_config c;
    fedrec_ials_defaults(&c);
    c.epochs = 5;
    c.use_head = head;
    epochs ep = {.n = 0};
    fedrec_model m;
    /* The objective is evaluated after each epoch (progress); its time is not in t[]. */
    if (fedrec_ials_fit(&m, &ds.R, ds.content, ds.content_dim, &c, on_epoch, &ep, &err)) continue;
    double best = 1e30;
    for (int k = 0; k < ep.n; k++) best = ep.t[k] < best ? ep.t[k] : best;
    /* flops: per user and per free item, the Gramian update n d^2 and Cholesky d^3/3;
     * two d x d Gramians over all rows; the head adds its CG iterations. */
    double d = c.dim, nnz = (double)fedrec_csr_nnz(&ds.R);
    double flops = 2 * nnz * d * d + (ds.R.rows + ds.R.cols) * (d * d * d / 3 + 2 * d * d);
    if (head) flops += c.cg_iters * (4.0 * ds.R.cols * d * ds.content_dim + 2.0 * ds.R.cols * d * d + 4 * nnz * d);
    char extra[64];
    snprintf(extra, sizeof extra, "\"dim\": %d, \"epochs_timed\": %d", c.dim, ep.n);
    bench_emit(head ? "ials_epoch_movielens_head_s" : "ials_epoch_movielens_s", best, "s", 0, NULL, extra);
    bench_emit(head ? "ials_epoch_movielens_head_gflops" : "ials_epoch_movielens_gflops", flops / best / 1e9,
         "GFLOP/s", gemm, "sgemm_1024_gflops", NULL);
    fedrec_model_free(&m);
  }
  fedrec_dataset_free(&ds);
}

static void bench_synth(int quick) {
  int32_t sizes[] = {100000, 1000000};
  for (int k = 0; k < (quick ? 1 : 2); k++) {
    fedrec_synth_config c;
    fedrec_synth_defaults(&c);
    c.users = sizes[k];
    fedrec_dataset ds;
    fedrec_error err;
    double t = bench_now();
    if (fedrec_synth_generate(&ds, &c, &err)) {
      fprintf(stderr, "synthetic: %s\n", err.msg);
      continue;
    }
    t = bench_now() - t;
    char name[64], extra[160];
    snprintf(name, sizeof name, "synth_generate_%dk_users_20k_items_s", sizes[k] / 1000);
    snprintf(extra, sizeof extra, "\"interactions\": %lld, \"peak_rss_mib\": %.0f",
             (long long)fedrec_csr_nnz(&ds.R), peak_rss_mib());
    bench_emit(name, t, "s", 0, NULL, extra);
    fedrec_dataset_free(&ds);
  }
}

int main(int argc, char **argv) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s/../shared/data", FEDREC_SOURCE_DIR);
  int quick = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--data") && i + 1 < argc) snprintf(dir, sizeof dir, "%s", argv[++i]);
    else if (!strcmp(argv[i], "--quick")) quick = 1;
    else {
      fprintf(stderr, "usage: bench_core [--data DIR] [--quick]\n");
      return 2;
    }
  }
  char *core = openblas_get_corename();
  fprintf(stderr, "OpenBLAS kernel: %s, %d threads\n", core, openblas_get_num_threads());
  double gemm = sgemm_gflops(1024, 5), gemm1 = sgemm_gflops_1t(512, 10);
  char extra[96];
  snprintf(extra, sizeof extra, "\"openblas_core\": \"%s\"", core);
  bench_emit("sgemm_1024_gflops", gemm, "GFLOP/s", 0, NULL, extra);
  bench_emit("sgemm_512_1thread_gflops", gemm1, "GFLOP/s", 0, NULL, NULL);
  bench_user_solve(gemm1);
  bench_user_grad();
  bench_ials_epoch(dir, gemm);
  bench_synth(quick);
  return 0;
}
