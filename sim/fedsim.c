/* fedrec-sim --algorithm fedavg: federated training in one process, with the coordinator's
 * round engine and the clients' participant code (the same code fedrec-coordinator and
 * libfedrec_client run) joined by an in-process transport, and a thread pool for the clients'
 * work. Every training user of the split is a client. */
#include "fedrec/internal/sim.h"
#include "fedrec/internal/tool.h"
#include "fedsim.h"
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
static void canary_direction(float *x, int64_t dim, uint64_t seed, uint32_t j) {
  fedrec_rng r;
  fedrec_rng_seed(&r, seed ^ 0x63616e617279ULL, j);
  double n2 = 0;
  for (int64_t i = 0; i < dim; i++) x[i] = (float)fedrec_rng_normal(&r), n2 += (double)x[i] * x[i];
  float s = (float)(1 / sqrt(n2));
  for (int64_t i = 0; i < dim; i++) x[i] *= s;
}

/* A user with history, or an included canary: may be sampled. */
static int eligible(const sim *m, uint32_t u) {
  if (u < m->rows) return m->sp->train.indptr[u + 1] > m->sp->train.indptr[u];
  return m->canary_in[u - m->rows];
}

/* A reproducible byte source per (seed, round, user) for the clients' rounding and noise, so
 * that runs repeat exactly and --secagg full and plain see the same encodings. A simulation
 * device: deployments use the CSPRNG. */
static void rng_bytes(void *ctx, void *buf, uint64_t n) { fedrec_rng_fill(ctx, buf, n); }

static void on_round(void *ctx, const fedrec_round_stats *s) {
  sim *m = ctx;
  m->last = *s;
  m->last.clients = NULL;
  m->have_last = 1;
}

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
    fedrec_entropy ent = {rng_bytes, &r, m->c->exact_noise ? 0 : 1}; /* a simulation device */
    if (id >= m->rows) { /* a canary: its direction at full clip norm, through the same pipeline */
      float *x = malloc((size_t)m->dim * sizeof *x);
      if (!x) {
        fedrec_error_set(&err, FEDREC_ERR_NOMEM, "%lld floats", (long long)m->dim);
        fedsim_fail(m, "canary", &err);
        return -1;
      }
      canary_direction(x, m->dim, m->c->seed, (uint32_t)(id - m->rows));
      for (int64_t k = 0; k < m->dim; k++) x[k] *= (float)m->c->clip;
      s = fedrec_participant_new_update(&m->part[i], info, x, m->dim, &ent, &err);
      free(x);
    } else {
      int64_t a = R->indptr[id], b = R->indptr[id + 1];
      s = fedrec_participant_new_shared(&m->part[i], info, &m->model, m->V, m->G, R->indices + a, R->values + a, (int32_t)(b - a),
                                        &ent, &err);
    }
    uint32_t *y = NULL;
    if (!s && m->c->plain) { /* the vector itself into the sum: no wire round trip */
      if (!(s = fedrec_participant_plain_vector(m->part[i], &y, outlen, &err))) {
        uint32_t lim = info->secagg.bits >= 32 ? 0xffffffffu : (1u << info->secagg.bits) - 1;
        for (uint32_t k = 0; k < info->secagg.dim; k++) sum[k] = (sum[k] + y[k]) & lim;
        free(y);
        *out = NULL;
      }
    } else if (!s) s = fedrec_participant_keys(m->part[i], out, outlen, &err);
    if (s) {
      fedsim_fail(m, "participant", &err);
      return -1;
    }
    return 0;
  }
  *out = NULL;
  s = m->phase == FEDREC_PHASE_SHARES   ? fedrec_participant_shares(m->part[i], in, inlen, out, outlen, &err)
      : m->phase == FEDREC_PHASE_MASKED ? fedrec_participant_masked_add(m->part[i], in, inlen, sum, outlen, &err)
                                        : fedrec_participant_unmask(m->part[i], in, inlen, out, outlen, &err);
  return s ? 1 : 0; /* a client-side check failed: it stops answering (a dropout) */
}

fedrec_status fedsim_shared_vectors(sim *m, fedrec_error *err) {
  const fedrec_model *md = &m->model;
  free(m->V), free(m->G);
  m->V = malloc((size_t)md->n_items * md->d * sizeof *m->V);
  m->G = malloc((size_t)md->d * md->d * sizeof *m->G);
  if (!m->V || !m->G) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "item vectors: %d x %d", md->n_items, md->d);
  fedrec_model_item_vectors(m->V, md);
  fedrec_blas_threads(1); /* as inside a client: the same bits as the participant's own */
  fedrec_gramian(m->G, m->V, md->n_items, md->d);
  fedrec_blas_threads(m->nthreads > 0 ? m->nthreads : 1);
  return FEDREC_OK;
}

/* One client's step in the current phase, straight against the engine (one process). */
static void client_step(void *ctx, uint32_t i, int t) {
  sim *m = ctx;
  if (m->silent[i]) return;
  fedrec_error err = {0};
  uint64_t id = m->users[i];
  uint8_t *in = NULL, *out = NULL;
  size_t inlen = 0, outlen = 0;
  uint32_t retry = 0;
  fedrec_status s;
  int r;
  if (m->phase == FEDREC_PHASE_KEYS || (m->c->plain && m->phase == FEDREC_PHASE_MASKED)) {
    fedrec_round_info info;
    pthread_mutex_lock(&m->mu);
    s = fedrec_engine_round_info(m->e, id, m->round, m->now, &info, &retry, &err);
    pthread_mutex_unlock(&m->mu);
    if (s || retry) {
      fedsim_fail(m, "round info", &err);
      return;
    }
    if (i == 0) m->secagg_k = info.secagg.k; /* for the report: neighbours per client */
    r = fedsim_client_compute(m, i, &info, NULL, 0, m->tsum + (size_t)t * m->sa_dim, &out, &outlen);
  } else {
    pthread_mutex_lock(&m->mu);
    s = fedrec_engine_fetch(m->e, id, m->round, m->phase, m->now, &in, &inlen, &retry, &err);
    pthread_mutex_unlock(&m->mu);
    if (s || !in) {
      /* a client whose neighbours all left can be left out of the round: drop it */
      free(in);
      m->silent[i] = 1;
      return;
    }
    m->down[i] += inlen;
    r = fedsim_client_compute(m, i, NULL, in, inlen, m->tsum + (size_t)t * m->sa_dim, &out, &outlen);
    free(in);
  }
  if (r) {
    if (r > 0) m->silent[i] = 1;
    return;
  }
  m->up[i] += outlen;
  if (m->phase == FEDREC_PHASE_MASKED) { /* in this thread's sum, given to the engine after the phase */
    m->tids[(size_t)t * m->n + m->tn[t]++] = id;
    m->tbytes[t] += outlen;
    return;
  }
  pthread_mutex_lock(&m->mu);
  s = fedrec_engine_submit(m->e, id, m->round, m->phase, out, outlen, m->now, &err);
  pthread_mutex_unlock(&m->mu);
  free(out);
  if (s) m->silent[i] = 1;
}

typedef struct pool {
  void (*fn)(void *ctx, uint32_t j, int t);
  void *ctx;
  uint32_t n;
  atomic_uint next;
  atomic_int threads;
} pool;

static void *pool_worker(void *arg) {
  pool *p = arg;
  int t = atomic_fetch_add(&p->threads, 1);
  for (;;) {
    uint32_t j = atomic_fetch_add(&p->next, 1);
    if (j >= p->n) return NULL;
    p->fn(p->ctx, j, t);
  }
}

void fedsim_pool(int threads, void (*fn)(void *ctx, uint32_t j, int t), void *ctx, uint32_t n) {
  pool p = {fn, ctx, n, 0, 0};
  pthread_t th[FEDSIM_MAX_THREADS];
  int t = threads < 1 ? 1 : threads > FEDSIM_MAX_THREADS ? FEDSIM_MAX_THREADS : threads;
  fedrec_blas_threads(1); /* the pool owns the cores: BLAS inside a client runs on its thread */
  for (int k = 0; k < t; k++) pthread_create(&th[k], NULL, pool_worker, &p);
  for (int k = 0; k < t; k++) pthread_join(th[k], NULL);
  fedrec_blas_threads(t);
}

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static fedrec_status evaluate(const sim *m, const fedrec_dataset *ds, fedrec_metrics *out, fedrec_error *err) {
  const fedrec_model *md = fedrec_engine_current_model(m->e);
  int32_t ni = md->n_items, d = md->d;
  float *V = malloc((size_t)ni * d * sizeof *V), *G = malloc((size_t)d * d * sizeof *G);
  if (!V || !G) {
    free(V), free(G);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "evaluation");
  }
  fedrec_model_item_vectors(V, md);
  fedrec_gramian(G, V, ni, d);
  fedrec_mf_scorer mf = {V, G, ni, d, m->c->alpha0, m->c->reg};
  fedrec_scorer sc = fedrec_mf_scorer_make(&mf);
  fedrec_eval_config ec = {.k = m->c->k, .threads = m->c->threads, .content = ds->content, .content_dim = ds->content_dim};
  fedrec_status s = fedrec_evaluate(out, &sc, &m->sp->foldin, &m->sp->holdout, &ec, err);
  free(V), free(G);
  return s;
}

typedef struct { double score; uint8_t in; } canary_score;
static int by_score(const void *a, const void *b) {
  double x = ((const canary_score *)a)->score, y = ((const canary_score *)b)->score;
  return (x < y) - (x > y); /* descending */
}

/* The one-run audit: each canary's score is how far the model moved along its direction,
 * <c_j, theta_0 - theta_T>; the top guesses/2 are guessed included, the bottom guesses/2
 * excluded; the count of right guesses gives a 95%-confidence lower bound on epsilon. */
static fedrec_status audit(fedsim_result *res, const sim *m, const float *theta0, fedrec_error *err) {
  int64_t dim = m->dim;
  float *x = malloc((size_t)dim * sizeof *x), *dir = malloc((size_t)dim * sizeof *dir);
  canary_score *sc = malloc((size_t)m->ncanary * sizeof *sc);
  if (!x || !dir || !sc) {
    free(x), free(dir), free(sc);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "audit");
  }
  fedrec_model_get_params(x, fedrec_engine_current_model(m->e));
  for (int64_t i = 0; i < dim; i++) x[i] = theta0[i] - x[i];
  uint32_t included = 0;
  for (uint32_t j = 0; j < m->ncanary; j++) {
    canary_direction(dir, dim, m->c->seed, j);
    double d = 0;
    for (int64_t i = 0; i < dim; i++) d += (double)dir[i] * x[i];
    sc[j] = (canary_score){d, m->canary_in[j]};
    included += m->canary_in[j];
  }
  qsort(sc, m->ncanary, sizeof *sc, by_score);
  uint32_t g = m->c->audit_guesses ? m->c->audit_guesses : (m->ncanary / 5 > 2 ? m->ncanary / 5 : 2);
  if (g > m->ncanary) g = m->ncanary;
  uint32_t top = (g + 1) / 2, bottom = g - top, right = 0;
  for (uint32_t j = 0; j < top; j++) right += sc[j].in;
  for (uint32_t j = 0; j < bottom; j++) right += !sc[m->ncanary - 1 - j].in;
  res->audit_canaries = m->ncanary;
  res->audit_included = included;
  res->audit_guesses = g;
  res->audit_correct = right;
  res->audit_epsilon_lower = fedrec_audit_epsilon_lower(m->ncanary, g, right, m->c->delta, 0.05);
  free(x), free(dir), free(sc);
  return FEDREC_OK;
}

/* The smallest noise multiplier (to 0.1%) whose planned epsilon after c->rounds rounds is at
 * most c->target_epsilon: bisection in log z (epsilon falls as z grows). */
static fedrec_status calibrate(double *z, fedrec_engine_config *ec, int64_t dim, uint32_t n, const fedsim_config *c,
                               fedrec_error *err) {
  double lo = 1e-3, hi = 1e4, eps;
  fedrec_status s;
  for (;;) { /* the largest multiplier (below 1e4) whose per-client noise the samplers take */
    ec->noise_multiplier = hi;
    if (!(s = fedrec_engine_plan_epsilon(&eps, ec, dim, n, c->rounds, c->delta, err))) break;
    if ((hi /= 2) < lo) return s;
  }
  if (eps > c->target_epsilon)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--target-epsilon %g: even noise multiplier %g gives epsilon %g over %u rounds",
                            c->target_epsilon, hi, eps, c->rounds);
  while (hi / lo > 1.001) {
    double mid = sqrt(lo * hi);
    ec->noise_multiplier = mid;
    fedrec_error e2 = {0};
    /* a multiplier too small for the sampler's range counts as too little noise */
    if (fedrec_engine_plan_epsilon(&eps, ec, dim, n, c->rounds, c->delta, &e2) || eps > c->target_epsilon) lo = mid;
    else hi = mid;
  }
  *z = hi;
  ec->noise_multiplier = hi;
  return FEDREC_OK;
}

/* The coordinator's side: the engine, the round loop and the clients (all of them, or with
 * MPI those of rank 0 and, through fedsim_mpi.c, the other ranks'). */
static fedrec_status coordinate(fedsim_result *res, const fedsim_config *c, const fedrec_dataset *ds,
                                const fedrec_split *sp, FILE *log, int ranks, fedrec_error *err) {
  memset(res, 0, sizeof *res);
  if (fedrec_crypto_init()) return fedrec_error_set(err, FEDREC_ERR_IO, "libsodium failed to initialise");
  sim m = {.c = c, .sp = sp, .now = 1000, .mpi_size = ranks};
  uint8_t *taken = NULL;
  pthread_mutex_init(&m.mu, NULL);
  const fedrec_csr *R = &sp->train;
  m.rows = (uint32_t)R->rows;
  m.ncanary = c->audit_canaries;
  m.canary_in = calloc(m.ncanary + 1, 1);
  if (!m.canary_in) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "canaries");
  { /* each canary is included with probability 1/2, independently (secret from the server) */
    uint64_t cs = c->seed ^ 0x696e636c75646564ULL;
    for (uint32_t j = 0; j < m.ncanary; j++) m.canary_in[j] = splitmix(&cs) >> 63;
  }
  uint32_t pop = 0, everyone = m.rows + m.ncanary;
  for (uint32_t u = 0; u < everyone; u++) pop += eligible(&m, u);
  int poisson = c->sampling_rate > 0;
  if (!poisson && pop < c->cohort) {
    free(m.canary_in);
    return fedrec_error_set(err, FEDREC_ERR_ARG, "fedavg: cohort %u is larger than the %u training users with history", c->cohort, pop);
  }
  /* Poisson: the cohort is Binomial(pop, q), mean E; rounds with fewer than max(E/2, E - 4 sd)
   * wait for more (at 4 sd below the mean that is about one round in 30 000). The noise shares
   * are sized for 80% of that many survivors: the closer it is to E, the closer the ledger's
   * epsilon comes to the planned one (with E/2 alone it was about 40% of E, and the ledger ended
   * far below a calibrated target). */
  uint32_t cap = poisson ? pop : c->cohort;
  double mean = c->sampling_rate * pop;
  uint32_t least = poisson ? (uint32_t)fmax(2, floor(fmax(0.5 * mean, mean - 4 * sqrt(mean)))) : c->cohort;
  if (poisson && least < 10) {
    free(m.canary_in);
    return fedrec_error_set(err, FEDREC_ERR_ARG, "fedavg: sampling rate %g of %u users gives cohorts of about %.1f: too few",
                            c->sampling_rate, pop, c->sampling_rate * pop);
  }
  /* the model */
  int32_t ni = R->cols, *all = malloc((size_t)ni * sizeof *all);
  if (!all) {
    free(m.canary_in);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "items");
  }
  for (int32_t i = 0; i < ni; i++) all[i] = i;
  fedrec_model init;
  int head = ds->content != NULL && c->use_head;
  fedrec_status s = fedrec_model_init(&init, ni, c->dim, ds->content, ds->content_dim, head, all, c->free_items ? ni : 0,
                                      c->seed, 0.1f, err);
  free(all);
  if (s) {
    free(m.canary_in);
    return s;
  }
  m.dim = fedrec_model_params(&init);
  float *theta0 = NULL; /* the initial parameters, for the canaries' scores */
  if (m.ncanary) {
    if (!(theta0 = malloc((size_t)m.dim * sizeof *theta0))) {
      fedrec_model_free(&init);
      free(m.canary_in);
      return fedrec_error_set(err, FEDREC_ERR_NOMEM, "audit: %lld parameters", (long long)m.dim);
    }
    fedrec_model_get_params(theta0, &init);
  }
  /* identity and ledger: a fresh ledger per run */
  fedrec_identity id;
  uint8_t seed[32] = {0};
  memcpy(seed, &c->seed, sizeof c->seed);
  if ((s = fedrec_identity_from_seed(&id, seed))) {
    fedrec_model_free(&init);
    return fedrec_error_set(err, s, "identity");
  }
  char ledger_path[512];
  if (c->ledger) snprintf(ledger_path, sizeof ledger_path, "%s", c->ledger);
  else snprintf(ledger_path, sizeof ledger_path, "/tmp/fedrec-sim-ledger-%d.db", (int)getpid());
  unlink(ledger_path);
  fedrec_ledger *ledger = NULL;
  if ((c->noise_multiplier > 0 || c->target_epsilon > 0) && (s = fedrec_ledger_create(&ledger, ledger_path, c->delta, c->budget, NULL, &id, err))) {
    fedrec_model_free(&init);
    fedrec_identity_free(&id);
    return s;
  }
  fedrec_engine_config ec;
  fedrec_engine_defaults(&ec);
  ec.cohort = cap;
  ec.min_cohort = least;
  ec.sampling_rate = poisson ? c->sampling_rate : 0;
  ec.selection_ms = 1000;
  ec.min_survivors = c->min_survivors ? c->min_survivors : (uint32_t)ceil(least * 0.8);
  ec.max_rounds = c->rounds;
  /* SecAgg+ sizes (k, t) for the fraction lost over the whole round: with a rate per phase,
   * a client is gone by the unmasking with probability 1 - (1 - p)^4 */
  double lost = 1 - pow(1 - c->dropout, 4);
  ec.dropout = lost > 0.01 ? lost : 0.01;
  ec.clip = c->clip;
  ec.noise_multiplier = c->noise_multiplier;
  ec.noise = c->noise;
  ec.server_lr = c->server_lr;
  ec.momentum = c->momentum;
  ec.optimizer = c->optimizer;
  ec.alpha0 = c->alpha0;
  ec.reg = c->reg;
  ec.plain = c->plain;
  ec.unmask_threads = (uint32_t)(c->threads > 0 ? c->threads : 1);
  ec.sum_noise = !c->client_noise;
  fedrec_rng_seed(&m.noise_rng, c->seed, 0x73756d6e6f697365ULL); /* its own stream: plain and masked runs draw alike */
  ec.sum_noise_entropy = (fedrec_entropy){rng_bytes, &m.noise_rng, 1};
  ec.central = c->central;
  ec.local_steps = c->local_steps;
  ec.client_lr = (float)c->client_lr;
  res->noise_multiplier = c->noise_multiplier;
  res->planned_epsilon = 0;
  if (c->noise_multiplier > 0 || c->target_epsilon > 0) {
    /* the plan the engine's budget checks follow, with the expected cohort */
    uint32_t n_plan = poisson ? (uint32_t)fmax(least, round(c->sampling_rate * pop)) : c->cohort;
    int64_t dim = fedrec_model_params(&init);
    if (c->target_epsilon > 0 && (s = calibrate(&ec.noise_multiplier, &ec, dim, n_plan, c, err))) goto done;
    if ((s = fedrec_engine_plan_epsilon(&res->planned_epsilon, &ec, dim, n_plan, c->rounds, c->delta, err))) goto done;
    res->noise_multiplier = ec.noise_multiplier;
  }
  fedrec_engine_callbacks cb = {&m, NULL, on_round};
  fedrec_rng_seed(&m.engine_rng, c->seed, 0x636f6f7264ULL);
  fedrec_entropy engine_ent = {rng_bytes, &m.engine_rng, 0};
  if ((s = fedrec_engine_new(&m.e, &ec, &init, 1, &id, ledger, &cb, &engine_ent, err))) goto done;
  m.nthreads = c->threads < 1 ? 1 : c->threads > FEDSIM_MAX_THREADS ? FEDSIM_MAX_THREADS : c->threads;
  m.sa_dim = fedrec_ddp_padded((uint32_t)m.dim); /* the masked inputs' length */
  m.tsum = malloc((size_t)m.nthreads * m.sa_dim * sizeof *m.tsum);
  m.tids = malloc((size_t)m.nthreads * cap * sizeof *m.tids);
  if (!m.tsum || !m.tids) {
    s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "input sums");
    goto done;
  }
  m.users = malloc(cap * sizeof *m.users);
  m.part = calloc(cap, sizeof *m.part);
  m.silent = calloc(cap, 1);
  m.drop_at = calloc(cap, 1);
  m.up = calloc(cap, sizeof *m.up);
  m.down = calloc(cap, sizeof *m.down);
  taken = calloc((size_t)everyone, 1);
  if (!m.users || !m.part || !m.silent || !m.drop_at || !m.up || !m.down || !taken) {
    s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "cohort");
    goto done;
  }
  uint64_t rng = c->seed * 0x2545f4914f6cdd1dULL + 7;
  double t_start = fedrec_clock_s();
  uint64_t clients_total = 0;
  fedrec_metrics met = {0};
  if (log) {
    if ((s = evaluate(&m, ds, &met, err))) goto done;
    fprintf(log, "{\"round\": 0, \"epsilon\": 0, \"recall@%d\": %.6f, \"ndcg@%d\": %.6f, \"coverage@%d\": %.6f}\n", c->k,
            met.recall, c->k, met.ndcg, c->k, met.coverage);
    fflush(log);
  }
  for (uint32_t r = 0; r < c->rounds; r++) {
    if (fedrec_engine_phase(m.e) == FEDREC_PHASE_STOPPED) break;
    double t0 = fedrec_clock_s();
    if (poisson) {
      /* every user with history checks in; the engine takes each with probability q */
      while (fedrec_engine_phase(m.e) == FEDREC_PHASE_SELECTING) {
        m.n = 0; /* each pass lists the whole cohort: members are accepted again, coins do not change */
        for (uint32_t u = 0; u < everyone && !s; u++) {
          if (!eligible(&m, u)) continue;
          int acc;
          uint64_t round;
          uint32_t retry;
          s = fedrec_engine_checkin(m.e, u, m.now, &acc, &round, &retry, err);
          if (acc) m.users[m.n++] = u, m.round = round;
        }
        if (s) break;
        m.now += 1000; /* the selection window closes */
        fedrec_engine_tick(m.e, m.now);
      }
    } else {
      /* fixed-size cohort: distinct users with history, uniformly */
      m.n = c->cohort;
      for (uint32_t i = 0; i < m.n;) {
        uint32_t u = (uint32_t)(splitmix(&rng) % (uint64_t)everyone);
        if (taken[u] || !eligible(&m, u)) continue;
        taken[u] = 1;
        m.users[i++] = u;
      }
      for (uint32_t i = 0; i < m.n; i++) taken[m.users[i]] = 0;
      for (uint32_t i = 0; i < m.n; i++) {
        int acc;
        uint64_t round;
        uint32_t retry;
        s = fedrec_engine_checkin(m.e, m.users[i], m.now, &acc, &round, &retry, err);
        if (s || !acc) break;
        m.round = round;
      }
    }
    memset(m.silent, 0, m.n);
    memset(m.up, 0, m.n * sizeof *m.up);
    memset(m.down, 0, m.n * sizeof *m.down);
    if (s) goto done;
    if (fedrec_engine_phase(m.e) == FEDREC_PHASE_STOPPED) break;
    fedrec_published pub;
    fedrec_engine_model(m.e, &pub);
    fedrec_model_free(&m.model);
    if ((s = fedrec_model_decode(&m.model, NULL, pub.blob, pub.len, ds->content, ds->content_dim, err))) goto done;
    if ((s = fedsim_shared_vectors(&m, err))) goto done;
    for (uint32_t i = 0; i < m.n; i++) m.down[i] = pub.len; /* each client downloads the model */
#ifdef FEDREC_SIM_MPI
    if (m.mpi_size > 1) fedsim_mpi_round(&m, &pub);
#endif
    m.have_last = 0;
    /* dropouts, drawn once per client and round whatever the secure-aggregation mode: the first
     * phase at which a Bernoulli(dropout) hits. Without masks a client that vanishes only at
     * unmasking has still sent its input, as with masks: both modes sum the same clients. */
    for (uint32_t i = 0; i < m.n; i++) {
      m.drop_at[i] = 0;
      for (int p = FEDREC_PHASE_KEYS; p <= FEDREC_PHASE_UNMASK && !m.drop_at[i] && c->dropout > 0; p++)
        if ((double)(splitmix(&rng) >> 11) * 0x1.0p-53 < c->dropout) m.drop_at[i] = (uint8_t)p;
    }
    for (fedrec_phase ph = c->plain ? FEDREC_PHASE_MASKED : FEDREC_PHASE_KEYS; ph <= FEDREC_PHASE_UNMASK; ph++) {
      for (uint32_t i = 0; i < m.n; i++)
        if (m.drop_at[i] && (c->plain ? m.drop_at[i] <= FEDREC_PHASE_MASKED && ph == FEDREC_PHASE_MASKED : m.drop_at[i] == ph))
          m.silent[i] = 1;
      m.phase = ph;
#ifdef FEDREC_SIM_MPI
      if (m.mpi_size > 1) fedsim_mpi_phase(&m);
      else
#endif
      {
        int sums = ph == FEDREC_PHASE_MASKED; /* per-thread sums of the (masked or plain) inputs */
        if (sums) {
          memset(m.tsum, 0, (size_t)m.nthreads * m.sa_dim * sizeof *m.tsum);
          memset(m.tn, 0, sizeof m.tn), memset(m.tbytes, 0, sizeof m.tbytes);
        }
        fedsim_pool(c->threads, client_step, &m, m.n);
        for (int t = 0; sums && t < m.nthreads && !atomic_load(&m.failed); t++) {
          fedrec_error e2 = {0};
          if (m.tn[t] && fedrec_engine_submit_sum(m.e, m.round, m.tids + (size_t)t * m.n, m.tn[t], m.tsum + (size_t)t * m.sa_dim,
                                                  m.sa_dim, m.tbytes[t], m.now, &e2))
            fedsim_fail(&m, "input sums", &e2);
        }
      }
      if (atomic_load(&m.failed)) {
        s = fedrec_error_set(err, FEDREC_ERR_STATE, "fedavg: %s", m.why);
        goto done;
      }
      pthread_mutex_lock(&m.mu);
      if (fedrec_engine_phase(m.e) == ph) { /* the silent ones hold it open: their deadline passes */
        m.now = fedrec_engine_deadline(m.e);
        fedrec_engine_tick(m.e, m.now);
      }
      m.now += 10;
      pthread_mutex_unlock(&m.mu);
      if (fedrec_engine_phase(m.e) == FEDREC_PHASE_SELECTING || fedrec_engine_phase(m.e) == FEDREC_PHASE_STOPPED) break;
    }
    for (uint32_t i = 0; i < m.n; i++) {
      fedrec_participant_free(m.part[i]);
      m.part[i] = NULL;
    }
    double secs = fedrec_clock_s() - t0;
    clients_total += m.n;
    uint64_t up = 0, down = 0;
    for (uint32_t i = 0; i < m.n; i++) up += m.up[i], down += m.down[i];
    int evaluate_now = log && ((r + 1) % (c->eval_every ? c->eval_every : 1) == 0 || r + 1 == c->rounds);
    if (evaluate_now && (s = evaluate(&m, ds, &met, err))) goto done;
    res->rounds_done += m.have_last && !m.last.aborted;
    res->epsilon = m.have_last && !m.last.aborted ? m.last.epsilon : res->epsilon;
    if (log) {
      char eps[32]; /* without privacy no epsilon holds: null */
      if (c->noise_multiplier > 0 || c->target_epsilon > 0) snprintf(eps, sizeof eps, "%.6f", res->epsilon);
      else snprintf(eps, sizeof eps, "null");
      fprintf(log, "{\"round\": %u, \"aborted\": %s, \"survivors\": %u, \"epsilon\": %s, \"update_norm\": %.6g, "
                   "\"bytes_up_per_client\": %.0f, \"bytes_down_per_client\": %.0f, \"seconds\": %.3f",
              r + 1, m.have_last && m.last.aborted ? "true" : "false", m.have_last ? m.last.survivors : 0, eps,
              m.have_last ? m.last.update_norm : 0.0,
              (double)up / m.n, (double)down / m.n, secs);
      if (m.have_last && m.last.aborted) {
        fprintf(log, ", \"reason\": \"");
        for (const char *q = m.last.reason; *q; q++) /* a JSON string */
          if (*q == '"' || *q == '\\') fprintf(log, "\\%c", *q);
          else if ((unsigned char)*q >= 0x20) fputc(*q, log);
        fprintf(log, "\"");
      }
      if (evaluate_now)
        fprintf(log, ", \"recall@%d\": %.6f, \"ndcg@%d\": %.6f, \"coverage@%d\": %.6f", c->k, met.recall, c->k, met.ndcg, c->k,
                met.coverage);
      fprintf(log, "}\n");
      fflush(log);
    }
    if (c->progress) { /* a bar, the rate and the time left, on one terminal line */
      double done = (double)(r + 1) / c->rounds, spent = fedrec_clock_s() - t_start, left = spent / done - spent;
      char bar[31];
      int fill = (int)(done * 30);
      for (int k = 0; k < 30; k++) bar[k] = k < fill ? '#' : '.';
      bar[30] = 0;
      fprintf(stderr, "\r  [%s] round %u/%u  %.0f clients/s  epsilon %.3f", bar, r + 1, c->rounds, m.n / secs, res->epsilon);
      if (evaluate_now) fprintf(stderr, "  Recall@%d %.4f", c->k, met.recall);
      fprintf(stderr, "  %02d:%02d left \033[K", (int)left / 60, (int)left % 60);
      fflush(stderr);
    }
    res->bytes_up = (double)up / m.n;
    res->bytes_down = (double)down / m.n;
  }
  if (c->progress) fprintf(stderr, "\n");
  res->seconds = fedrec_clock_s() - t_start;
  res->stop_reason[0] = 0;
  if (fedrec_engine_phase(m.e) == FEDREC_PHASE_STOPPED)
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s", fedrec_engine_stop_reason(m.e));
  if ((s = evaluate(&m, ds, &res->metrics, err))) goto done;
  res->params = fedrec_model_params(fedrec_engine_current_model(m.e));
  res->secagg_k = m.secagg_k;
  res->clients = clients_total;
  if (m.ncanary && (s = audit(res, &m, theta0, err))) goto done;
  fedrec_published fin;
  fedrec_engine_model(m.e, &fin);
  for (int k = 0; k < 32; k++) snprintf(res->model_hash + 2 * k, 3, "%02x", fin.hash[k]);
done:
  free(taken);
  free(theta0);
  free(m.canary_in);
  fedrec_engine_free(m.e);
  fedrec_model_free(&m.model);
  if (ledger) fedrec_ledger_close(ledger);
  if (!c->ledger) {
    char p[600];
    unlink(ledger_path);
    snprintf(p, sizeof p, "%s-wal", ledger_path), unlink(p);
    snprintf(p, sizeof p, "%s-shm", ledger_path), unlink(p);
  }
  fedrec_identity_free(&id);
  free(m.users), free(m.part), free(m.silent), free(m.drop_at), free(m.up), free(m.down), free(m.tsum), free(m.tids);
  free(m.V), free(m.G);
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
