/* fedrec-sim --algorithm fedavg: federated training in one process, with the coordinator's
 * round engine and the clients' participant code (the same code fedrec-coordinator and
 * libfedrec_client run) joined by an in-process transport, and a thread pool for the clients'
 * work. Every training user of the split is a client. */
#include "fedrec/internal/sim.h"
#include "fedrec/internal/parallel.h"
#include "fedrec/internal/tool.h"
#include "fedsim.h"
#include "fedrec/enrol.h"
#include "fedsim_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fedrec/audit.h"
#include "fedrec/engine.h"
#include "fedrec/participant.h"


/* Canary j's secret direction: a uniformly random unit vector of dim (from the seed). */
void fedsim_canary_direction(float *x, int64_t dim, uint64_t seed, uint32_t j) {
  fedrec_rng r;
  fedrec_rng_seed(&r, seed ^ 0x63616e617279ULL, j);
  double n2 = 0;
  for (int64_t i = 0; i < dim; i++) x[i] = (float)fedrec_rng_normal(&r), n2 += (double)x[i] * x[i];
  float s = (float)(1 / sqrt(n2));
  for (int64_t i = 0; i < dim; i++) x[i] *= s;
}

/* A user with history, or an included canary: may be sampled. */
int fedsim_eligible(const sim *m, uint32_t u) {
  if (u < m->rows) return m->sp->train.indptr[u + 1] > m->sp->train.indptr[u];
  return m->canary_in[u - m->rows];
}

/* A reproducible byte source per (seed, round, user) for the clients' rounding and noise, so
 * that runs repeat exactly and --secagg full and plain see the same encodings. A simulation
 * device: deployments use the CSPRNG. */
void fedsim_rng_bytes(void *ctx, void *buf, uint64_t n) { fedrec_rng_fill(ctx, buf, n); }


void fedsim_fail(sim *m, const char *what, const fedrec_error *err) {
  if (atomic_exchange(&m->failed, 1) == 0) snprintf(m->why, sizeof m->why, "%s: %s", what, err->msg);
}

int fedsim_client_compute(sim *m, uint32_t i, const fedrec_round_info *info, const uint8_t *in, size_t inlen,
                          uint32_t *sum, uint8_t **out, size_t *outlen) {
  fedrec_error err = {0};
  uint64_t id = m->users[i];
  fedrec_status s;
  if (info) {
    const fedrec_csr *R = &m->sp->train;
    fedrec_rng r;
    fedrec_rng_seed(&r, m->c->seed ^ (m->round * 0x9e3779b97f4a7c15ULL), id + 1);
    fedrec_entropy ent = {fedsim_rng_bytes, &r, m->c->exact_noise ? 0 : 1}; /* a simulation device */
    if (id >= m->rows) { /* a canary: its direction at full clip norm, through the same pipeline */
      float *x = malloc((size_t)m->dim * sizeof *x);
      if (!x) {
        fedrec_error_set(&err, FEDREC_ERR_NOMEM, "%lld floats", (long long)m->dim);
        fedsim_fail(m, "canary", &err);
        return -1;
      }
      fedsim_canary_direction(x, m->dim, m->c->seed, (uint32_t)(id - m->rows));
      for (int64_t k = 0; k < m->dim; k++) x[k] *= (float)m->c->engine.clip;
      s = fedrec_participant_new_update(&m->part[i], info, x, m->dim, &ent, &err);
      free(x);
    } else {
      int64_t a = R->indptr[id], b = R->indptr[id + 1];
      s = fedrec_participant_new_shared(&m->part[i], info, &m->model, m->V, m->G, R->indices + a, R->values + a, (int32_t)(b - a),
                                        &ent, &err);
    }
    uint32_t *y = NULL;
    if (!s && m->c->engine.plain) { /* the vector itself into the sum: no wire round trip */
      if (!(s = fedrec_participant_plain_vector(m->part[i], &y, outlen, &err))) {
        uint32_t lim = info->secagg.bits >= 32 ? 0xffffffffu : (1u << info->secagg.bits) - 1;
        for (uint32_t k = 0; k < info->secagg.dim; k++) sum[k] = (sum[k] + y[k]) & lim;
        free(y);
        *out = NULL;
      }
    } else if (!s) {
      if (m->c->engine.active && !(s = fedsim_identity(m, i, id, NULL, &err)))
        s = fedrec_participant_set_identity(m->part[i], &m->ids[i], m->authority.pk, &err);
      if (!s) s = fedrec_participant_keys(m->part[i], out, outlen, &err);
    }
    if (s) {
      fedsim_fail(m, "participant", &err);
      return -1;
    }
    return 0;
  }
  *out = NULL;
  s = m->phase == FEDREC_PHASE_SHARES        ? fedrec_participant_shares(m->part[i], in, inlen, out, outlen, &err)
      : m->phase == FEDREC_PHASE_MASKED      ? fedrec_participant_masked_add(m->part[i], in, inlen, sum, outlen, &err)
      : m->phase == FEDREC_PHASE_CONSISTENCY ? fedrec_participant_consistency(m->part[i], in, inlen, out, outlen, &err)
                                             : fedrec_participant_unmask(m->part[i], in, inlen, out, outlen, &err);
  return s ? 1 : 0; /* a client-side check failed: it stops answering (a dropout) */
}

fedrec_status fedsim_identity(sim *m, uint32_t slot, uint64_t user, uint8_t *cert, fedrec_error *err) {
  uint8_t in[24], seed[32];
  memcpy(in, "fedsimid", 8);
  memcpy(in + 8, &m->c->seed, 8);
  memcpy(in + 16, &user, 8);
  fedrec_hash2(seed, in, sizeof in, NULL, 0);
  fedrec_identity tmp = {0}, *id = slot < m->cap ? &m->ids[slot] : &tmp;
  fedrec_identity_free(id);
  if (fedrec_identity_from_seed(id, seed)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "identity");
  if (cert) fedrec_cert_issue(cert, user, id->pk, &m->authority);
  fedrec_identity_free(&tmp);
  return FEDREC_OK;
}

fedrec_status fedsim_shared_vectors(sim *m, fedrec_error *err) {
  const fedrec_model *md = &m->model;
  free(m->V), free(m->G);
  int32_t d = fedrec_model_vdim(md);
  m->V = malloc((size_t)md->n_items * d * sizeof *m->V);
  m->G = malloc((size_t)d * d * sizeof *m->G);
  if (!m->V || !m->G) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "item vectors: %d x %d", md->n_items, d);
  fedrec_model_item_vectors(m->V, md);
  fedrec_blas_threads(1); /* as inside a client: the same bits as the participant's own */
  fedrec_gramian(m->G, m->V, md->n_items, d);
  fedrec_blas_threads(m->nthreads > 0 ? m->nthreads : 1);
  return FEDREC_OK;
}











/* A pool of `threads` threads over the n clients of a phase: core's parallel loop, one client
 * at a time; t is the thread's index. The pool owns the cores: BLAS inside a client runs on
 * its own thread. */
typedef struct pool {
  void (*fn)(void *ctx, uint32_t j, int t);
  void *ctx;
} pool;

static fedrec_status pool_range(void *arg, int tid, int64_t b, int64_t e) {
  pool *p = arg;
  for (int64_t j = b; j < e; j++) p->fn(p->ctx, (uint32_t)j, tid);
  return FEDREC_OK;
}

void fedsim_pool(int threads, void (*fn)(void *ctx, uint32_t j, int t), void *ctx, uint32_t n) {
  pool p = {fn, ctx};
  int t = threads < 1 ? 1 : threads > FEDSIM_MAX_THREADS ? FEDSIM_MAX_THREADS : threads;
  fedrec_blas_threads(1);
  fedrec_parallel_for(t, n, 1, pool_range, &p);
  fedrec_blas_threads(t);
}

/* The coordinator's side: the engine, the round loop and the clients (all of them, or with
 * MPI those of rank 0 and, through fedsim_mpi.c, the other ranks'). */
static fedrec_status coordinate(fedsim_result *res, const fedsim_config *c, const fedrec_dataset *ds,
                                const fedrec_split *sp, FILE *log, int ranks, fedrec_error *err) {
  memset(res, 0, sizeof *res);
  if (fedrec_crypto_init()) return fedrec_error_set(err, FEDREC_ERR_IO, "libsodium failed to initialise");
  sim m = {.c = c, .sp = sp, .ds = ds, .now = 1000, .mpi_size = ranks};
  pthread_mutex_init(&m.mu, NULL);
  fedrec_status s = fedsim_setup(&m, res, err);
  m.t_start = fedrec_clock_s();
  if (!s && log) {
    if (!(s = fedsim_evaluate(&m, &m.met, NULL, err))) {
      fprintf(log, "{\"round\": 0, \"epsilon\": 0, \"recall@%d\": %.6f, \"ndcg@%d\": %.6f, \"coverage@%d\": %.6f}\n", c->k,
              m.met.recall, c->k, m.met.ndcg, c->k, m.met.coverage);
      fflush(log);
    }
  }
  for (uint32_t r = 0; !s && r < c->rounds; r++) {
    double t0 = fedrec_clock_s();
    int over;
    if ((s = fedsim_round(&m, &over, err)) || over) break;
    s = fedsim_report_round(&m, res, log, r, fedrec_clock_s() - t0, err);
  }
  if (!s) s = fedsim_report_end(&m, res, err);
  fedsim_teardown(&m);
  pthread_mutex_destroy(&m.mu);
  return s;
}

#ifdef FEDREC_SIM_MPI
int fedsim_rank(void) { return fedsim_mpi_rank(); }
int fedsim_ranks(void) { return fedsim_mpi_size(); }
int fedsim_agree(int ok) { return fedsim_mpi_agree(ok); }
#else
int fedsim_rank(void) { return 0; }
int fedsim_ranks(void) { return 1; }
int fedsim_agree(int ok) { return ok; }
#endif

fedrec_status fedsim_run(fedsim_result *res, const fedsim_config *c, const fedrec_dataset *ds,
                         const fedrec_split *sp, FILE *log, fedrec_error *err) {
#ifdef FEDREC_SIM_MPI
  if (fedsim_mpi_rank() != 0) {
    memset(res, 0, sizeof *res);
    return fedsim_mpi_serve(c, sp, ds, err);
  }
  fedrec_status s = coordinate(res, c, ds, sp, log, fedsim_mpi_size(), err);
  fedsim_mpi_stop();
  return s;
#else
  return coordinate(res, c, ds, sp, log, 1, err);
#endif
}

