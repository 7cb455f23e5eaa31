#include "fedrec/internal/parallel.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct {
  fedrec_range_fn fn;
  void *ctx;
  int64_t n, chunk;
  atomic_llong next;
  atomic_int status;
} pf_shared;

typedef struct {
  pf_shared *sh;
  int tid;
} pf_arg;

static void *pf_worker(void *p) {
  pf_arg *a = p;
  pf_shared *sh = a->sh;
  for (;;) {
    if (atomic_load(&sh->status) != FEDREC_OK) break;
    int64_t b = atomic_fetch_add(&sh->next, sh->chunk);
    if (b >= sh->n) break;
    int64_t e = b + sh->chunk < sh->n ? b + sh->chunk : sh->n;
    fedrec_status st = sh->fn(sh->ctx, a->tid, b, e);
    if (st != FEDREC_OK) {
      int ok = FEDREC_OK;
      atomic_compare_exchange_strong(&sh->status, &ok, (int)st);
      break;
    }
  }
  return NULL;
}

fedrec_status fedrec_parallel_for(int threads, int64_t n, int64_t chunk, fedrec_range_fn fn,
                                  void *ctx) {
  if (n <= 0) return FEDREC_OK;
  if (chunk < 1) chunk = 1;
  if (threads < 1) threads = 1;
  if (threads > 256) threads = 256;
  int64_t chunks = (n + chunk - 1) / chunk;
  if (threads > chunks) threads = (int)chunks;
  if (threads == 1) return fn(ctx, 0, 0, n);

  pf_shared sh = {.fn = fn, .ctx = ctx, .n = n, .chunk = chunk};
  atomic_init(&sh.next, 0);
  atomic_init(&sh.status, FEDREC_OK);
  pthread_t tids[256];
  pf_arg args[256];
  int started = 0;
  for (int t = 1; t < threads; t++) {
    args[t] = (pf_arg){&sh, t};
    if (pthread_create(&tids[t], NULL, pf_worker, &args[t]) != 0) break;
    started = t;
  }
  args[0] = (pf_arg){&sh, 0};
  pf_worker(&args[0]); /* the caller works too; it also finishes if no thread started */
  for (int t = 1; t <= started; t++) pthread_join(tids[t], NULL);
  return (fedrec_status)atomic_load(&sh.status);
}

int fedrec_cpu_count(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

void fedrec_blas_threads(int n) { openblas_set_num_threads(n < 1 ? 1 : n); }
