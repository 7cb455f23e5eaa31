/* Recommendation latency on the device, through the client library (fedrec_client_record,
 * _recommend, _explain), on one core (it re-executes itself with OPENBLAS_NUM_THREADS=1):
 * a catalogue of N items with p-dimensional content embeddings (a .npy file, as an encoder
 * would write it), a model of dimension d with a head and optionally the first M items' free
 * embeddings, and a history of 50 items.
 *   cold       the first recommend after opening the store (decodes the model, computes the
 *              item vectors V = C H^T + E and their Gramian, which later calls reuse)
 *   warm       a recommend (the user's vector solved from the history as it is, all items
 *              scored, the top 20 picked), median of 30
 *   realtime   record one event, then recommend (the event counts at once), median of 30
 *   explain    the exact decomposition of one item's score, median of 30
 * The limit each is measured against, in the same run: one pass of sgemv over V (n x d),
 * the least any call that scores every item must do.
 *   bench_recommend [N (100000)] [P (256)] [D (32)] [M (0)] */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "bench_util.h"
#include "fedrec/client.h"
#include "fedrec/model.h"
#include "fedrec/rng.h"

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return v[n / 2];
}

/* A float32 .npy of rows x cols and the id list "i0".."i{rows-1}". */
static void write_catalogue(const char *npy, const char *ids, int32_t rows, int32_t cols, float *C) {
  FILE *f = fopen(npy, "wb");
  char hdr[128];
  int n = snprintf(hdr, sizeof hdr, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }", rows, cols);
  int total = 10 + n + 1, pad = (64 - total % 64) % 64;
  fwrite("\x93NUMPY\x01\x00", 1, 8, f);
  uint16_t hl = (uint16_t)(n + pad + 1);
  fwrite(&hl, 2, 1, f);
  fwrite(hdr, 1, (size_t)n, f);
  for (int k = 0; k < pad; k++) fputc(' ', f);
  fputc('\n', f);
  fwrite(C, sizeof(float), (size_t)rows * cols, f);
  fclose(f);
  f = fopen(ids, "w");
  for (int32_t i = 0; i < rows; i++) fprintf(f, "i%d\n", i);
  fclose(f);
}

/* The model, put in the store as if it had been downloaded and verified. */
static void store_model(const char *store, const fedrec_model *m) {
  size_t len = fedrec_model_encoded_size(m);
  uint8_t *blob = malloc(len), zero[64] = {0};
  fedrec_model_encode(blob, m, 1);
  sqlite3 *db;
  sqlite3_stmt *st;
  if (sqlite3_open(store, &db) != SQLITE_OK ||
      sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO model VALUES(1, 1, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
    exit(1);
  sqlite3_bind_blob64(st, 1, blob, len, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, zero, 32, SQLITE_STATIC);
  sqlite3_bind_blob(st, 3, zero, 64, SQLITE_STATIC);
  if (sqlite3_step(st) != SQLITE_DONE) exit(1);
  sqlite3_finalize(st);
  sqlite3_close(db);
  free(blob);
}

static fedrec_client *open_store(const char *store, const char *spec) {
  fedrec_client_config cfg = {.store = store, .catalogue = spec};
  fedrec_client *c;
  fedrec_error err;
  if (fedrec_client_open(&c, &cfg, &err)) {
    fprintf(stderr, "bench_recommend: %s\n", err.msg);
    exit(1);
  }
  return c;
}

int main(int argc, char **argv) {
  if (!getenv("OPENBLAS_NUM_THREADS") || strcmp(getenv("OPENBLAS_NUM_THREADS"), "1")) {
    setenv("OPENBLAS_NUM_THREADS", "1", 1); /* a phone core: read by OpenBLAS when it loads */
    execv("/proc/self/exe", argv);
  }
  int32_t n = argc > 1 ? atoi(argv[1]) : 100000, p = argc > 2 ? atoi(argv[2]) : 256;
  int32_t d = argc > 3 ? atoi(argv[3]) : 32, nfree = argc > 4 ? atoi(argv[4]) : 0;
  if (n < 100 || p < 1 || d < 1 || nfree < 0 || nfree > n) {
    fprintf(stderr, "usage: bench_recommend [N >= 100] [P] [D] [M <= N]\n");
    return 2;
  }
  char dir[] = "/tmp/fedrec-bench-rec.XXXXXX", npy[96], ids[96], store[96], spec[256];
  if (!mkdtemp(dir)) return 1;
  snprintf(npy, sizeof npy, "%s/emb.npy", dir);
  snprintf(ids, sizeof ids, "%s/ids.txt", dir);
  snprintf(store, sizeof store, "%s/store.db", dir);
  snprintf(spec, sizeof spec, "npy:%s,%s", npy, ids);
  fedrec_rng r;
  fedrec_rng_seed(&r, 11, 0);
  float *C = malloc((size_t)n * p * sizeof *C);
  for (int64_t k = 0; k < (int64_t)n * p; k++) C[k] = (float)fedrec_rng_normal(&r) / 16.0f;
  write_catalogue(npy, ids, n, p, C);
  int32_t *free_items = malloc((size_t)(nfree ? nfree : 1) * sizeof *free_items);
  for (int32_t i = 0; i < nfree; i++) free_items[i] = i;
  fedrec_model m;
  fedrec_error err;
  if (fedrec_model_init(&m, n, d, C, p, 1, free_items, nfree, 5, 0.1f, &err)) return 1;
  fedrec_client_close(open_store(store, spec)); /* creates the store's tables */
  store_model(store, &m);
  fedrec_client *c = open_store(store, spec);
  char item[32], names[20][64];
  float scores[20];
  int32_t got;
  /* the catalogue is parsed on first use: its own time, then the cold recommend */
  double t0 = bench_now();
  fedrec_client_title(c, "i0", item, sizeof item);
  double t_cat = bench_now() - t0;
  for (int k = 0; k < 50; k++) {
    snprintf(item, sizeof item, "i%d", (int)((uint64_t)k * 7919 % (uint64_t)n));
    if (fedrec_client_record(c, item, 1.0f, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  }
  fedrec_explanation ex;
  t0 = bench_now();
  if (fedrec_client_recommend(c, 20, names, scores, &got, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
  double t_cold = bench_now() - t0, warm[30], rt[30], exp[30], gemv[30];
  float *V = malloc((size_t)n * d * sizeof *V), *u = malloc((size_t)d * sizeof *u), *s = malloc((size_t)n * sizeof *s);
  fedrec_model_item_vectors(V, &m);
  for (int32_t j = 0; j < d; j++) u[j] = 0.1f;
  for (int k = 0; k < 30; k++) {
    t0 = bench_now();
    fedrec_client_recommend(c, 20, names, scores, &got, &err);
    warm[k] = bench_now() - t0;
    snprintf(item, sizeof item, "i%d", (int)((uint64_t)(k + 100) * 104729 % (uint64_t)n));
    t0 = bench_now();
    fedrec_client_record(c, item, 1.0f, &err);
    fedrec_client_recommend(c, 20, names, scores, &got, &err);
    rt[k] = bench_now() - t0;
    t0 = bench_now();
    if (fedrec_client_explain(c, names[0], &ex, &err)) return fprintf(stderr, "%s\n", err.msg), 1;
    exp[k] = bench_now() - t0;
    t0 = bench_now();
    cblas_sgemv(CblasRowMajor, CblasNoTrans, n, d, 1.0f, V, d, u, 1, 0.0f, s, 1);
    gemv[k] = bench_now() - t0;
  }
  double lim = median(gemv, 30);
  char extra[200];
  snprintf(extra, sizeof extra, "\"items\": %d, \"p\": %d, \"d\": %d, \"free\": %d, \"history\": \"50 to 80\"", n, p, d, nfree);
  bench_emit("catalogue_parse_npy_ms", 1e3 * t_cat, "ms", 0, NULL, extra);
  bench_emit("recommend_cold_ms", 1e3 * t_cold, "ms", 1e3 * lim, "sgemv_pass_ms", extra);
  bench_emit("recommend_warm_ms", 1e3 * median(warm, 30), "ms", 1e3 * lim, "sgemv_pass_ms", extra);
  bench_emit("record_then_recommend_ms", 1e3 * median(rt, 30), "ms", 1e3 * lim, "sgemv_pass_ms", extra);
  bench_emit("explain_ms", 1e3 * median(exp, 30), "ms", 1e3 * lim, "sgemv_pass_ms", extra);
  fedrec_client_close(c);
  fedrec_model_free(&m);
  free(C), free(free_items), free(V), free(u), free(s);
  unlink(npy), unlink(ids), unlink(store);
  char wal[128];
  snprintf(wal, sizeof wal, "%s-wal", store), unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", store), unlink(wal);
  rmdir(dir);
  return 0;
}
