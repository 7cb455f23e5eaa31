/* fedrec-sim's federated simulation, shared between fedsim.c (the round loop, one process)
 * and fedsim_mpi.c (the same clients spread over MPI ranks). Not a public interface. */
#ifndef FEDREC_FEDSIM_INTERNAL_H
#define FEDREC_FEDSIM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "fedsim.h"
#include "fedrec/participant.h"

#define FEDSIM_MAX_THREADS 64

typedef struct sim {
  const fedsim_config *c;
  const fedrec_split *sp;
  fedrec_engine *e;
  pthread_mutex_t mu; /* the engine */
  uint64_t now;       /* the engine's clock (ms), advanced by the simulation */
  uint64_t round;
  fedrec_model model; /* the published model as the clients decode it */
  uint32_t n;         /* cohort */
  uint32_t *users;    /* train rows of the cohort */
  fedrec_participant **part;
  uint8_t *silent;    /* gone from this phase on */
  uint8_t *drop_at;   /* the phase at which each client goes silent (0: never) */
  uint64_t *up, *down;
  fedrec_phase phase;
  atomic_int failed;
  char why[600];
  fedrec_round_stats last;
  int have_last;
  fedrec_rng engine_rng; /* the coordinator's randomness: seeded, so runs repeat */
  fedrec_rng noise_rng;  /* the sum's noise when the engine draws it (--noise-draws sum) */
  /* audit canaries: ids rows .. rows + ncanary - 1; only the included ones take part */
  uint32_t rows, ncanary;
  uint8_t *canary_in;
  int64_t dim;
  uint32_t secagg_k;
  uint32_t sa_dim, sa_bits; /* the round's masked-input length and bits (MPI: the reduction) */
  uint32_t sa_cap;          /* the longest masked input a round can have (count rounds: the catalogue) */
  int mpi_size;             /* > 1: fedrec-sim-mpi with this many ranks (fedsim_mpi.c) */
  /* one process: in the masked phase each pool thread adds its clients' inputs up, and the
   * engine takes the sums after the phase (fedrec_engine_submit_sum) */
  float *V, *G;              /* the published model's item vectors and Gramian, shared */
  int nthreads;
  uint32_t *tsum;           /* nthreads x sa_cap; in a round, nthreads x sa_dim */
  uint64_t *tids;           /* nthreads x cohort: the clients in each sum */
  uint32_t tn[FEDSIM_MAX_THREADS];
  uint64_t tbytes[FEDSIM_MAX_THREADS];
  /* the run (fedsim_setup.c) */
  const fedrec_dataset *ds;
  fedrec_ledger *ledger;
  fedrec_identity id;
  int have_id;
  /* --secagg-active: the enrolment authority, and each cohort slot's identity (a simulation
   * device's, derived from the seed and its user id) */
  fedrec_identity authority;
  fedrec_identity *ids;
  char ledger_path[512];
  float *theta0;            /* the initial parameters, for the canaries' scores */
  uint8_t *taken;           /* everyone: drawn into this cohort already */
  uint32_t cap, least;      /* the engine's cohort cap and min-cohort */
  uint32_t pop, everyone;   /* users who may be sampled; all ids (users and canaries) */
  int poisson;
  uint64_t cohort_rng;      /* splitmix state: fixed cohorts and dropouts */
  double t_start;
  uint64_t clients_total;
  fedrec_metrics met;       /* the last evaluation */
} sim;

/* Client i's work in the current phase, from what it received: `info` in the keys phase (and
 * the plain masked phase), else the engine's message `in`. 0: *out (malloc'd) is its answer;
 * 1: it goes silent (a check on its side failed, as a device would stop answering); -1: the
 * simulation failed (fedsim_fail recorded why). The input of the masked phase (masked, or with
 * --secagg plain the encoded update) is added into sum (secagg.dim values mod 2^bits) rather
 * than encoded for the wire, which is lossless: *out = NULL and *outlen is the length its
 * message would have. */
int fedsim_client_compute(sim *m, uint32_t i, const fedrec_round_info *info, const uint8_t *in, size_t inlen,
                          uint32_t *sum, uint8_t **out, size_t *outlen);
void fedsim_fail(sim *m, const char *what, const fedrec_error *err);
/* A user with history, or an included canary: may be sampled. */
int fedsim_eligible(const sim *m, uint32_t u);
/* Canary j's secret direction: a uniformly random unit vector of dim (from the seed). */
/* The longest update a round of this run sends: the parameters, or the catalogue's size when
 * count rounds (popularity) are asked for and it is longer. */
int64_t fedsim_longest_update(const sim *m);
void fedsim_canary_direction(float *x, int64_t dim, uint64_t seed, uint32_t j);
/* A reproducible byte source (a fedrec_rng) as a fedrec_entropy: a simulation device. */
void fedsim_rng_bytes(void *ctx, void *buf, uint64_t n);

/* fedsim_setup.c: the population, the model, identity and ledger, the engine (its noise
 * calibrated to a target epsilon) and the round's buffers; res gets the noise multiplier
 * and the planned epsilon. fedsim_teardown frees whatever was made (also after a failure). */
fedrec_status fedsim_setup(sim *m, fedsim_result *res, fedrec_error *err);
void fedsim_teardown(sim *m);
/* fedsim_round.c: one round: the cohort checks in, every phase runs over the
 * clients (a pool, or MPI ranks), the engine publishes or aborts. *over: training stopped. */
fedrec_status fedsim_round(sim *m, int *over, fedrec_error *err);
/* fedsim_report.c */
fedrec_status fedsim_evaluate(const sim *m, fedrec_metrics *out, fedrec_metrics *cold, fedrec_error *err);
/* After round r: the round's JSON line (log), the progress line (stderr), the result so far. */
fedrec_status fedsim_report_round(sim *m, fedsim_result *res, FILE *log, uint32_t r, double secs, fedrec_error *err);
/* After the last round: the stop reason, the final evaluation, the audit, the model hash. */
fedrec_status fedsim_report_end(sim *m, fedsim_result *res, fedrec_error *err);
/* The round's item vectors and Gramian (m->V, m->G) from m->model, computed once for all the
 * clients (each would compute the same). */
/* --secagg-active: user's identity, derived from the run's seed (slot < cap: kept in
 * m->ids[slot] for the round; else made and freed), and, given cert, its certificate. */
fedrec_status fedsim_identity(sim *m, uint32_t slot, uint64_t user, uint8_t *cert, fedrec_error *err);
fedrec_status fedsim_shared_vectors(sim *m, fedrec_error *err);
/* Runs fn(ctx, j, t) for j in [0, n) on `threads` threads, t the thread's index (BLAS
 * single-threaded meanwhile). */
void fedsim_pool(int threads, void (*fn)(void *ctx, uint32_t j, int t), void *ctx, uint32_t n);

/* fedsim_mpi.c (fedrec-sim-mpi only). Rank 0 runs the engine and the round loop; every rank
 * runs the clients i with i % size == rank. */
int fedsim_mpi_rank(void);
int fedsim_mpi_size(void);
int fedsim_mpi_agree(int ok);
/* Rank 0, at each round's start: the cohort and the published model to every rank. */
void fedsim_mpi_round(sim *m, const fedrec_published *pub);
/* Rank 0: one phase over all ranks (replaces the local thread pool's pass). */
void fedsim_mpi_phase(sim *m);
/* Rank 0: the run is over (sent on every exit path, so the other ranks return). */
void fedsim_mpi_stop(void);
/* The other ranks: serve rounds until rank 0 stops. */
fedrec_status fedsim_mpi_serve(const fedsim_config *c, const fedrec_split *sp, const fedrec_dataset *ds,
                               fedrec_error *err);

#endif
