/* fedrec-sim --algorithm fedavg, the run's set-up: who may be sampled (users with history and
 * the included audit canaries), the cohort sizes, the initial model, the coordinator's
 * identity and a fresh ledger, the engine's configuration (the flags' engine settings plus
 * what the simulation derives: cohort cap, min-cohort, min-survivors, dropout per round), the
 * noise calibrated to --target-epsilon, and the buffers of a round. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fedrec/internal/sim.h"
#include "fedsim_internal.h"

static void on_round(void *ctx, const fedrec_round_stats *s) {
  sim *m = ctx;
  m->last = *s;
  m->last.clients = NULL;
  m->have_last = 1;
}

/* The canaries' coins, who may be sampled, and the cohort cap and least cohort. Poisson: the
 * cohort is Binomial(pop, q), mean E; rounds with fewer than max(E/2, E - 4 sd) wait for more
 * (at 4 sd below the mean that is about one round in 30 000). The noise shares are sized for
 * 80% of that many survivors: the closer it is to E, the closer the ledger's epsilon comes to
 * the planned one (with E/2 alone it was about 40% of E, and the ledger ended far below a
 * calibrated target). */
static fedrec_status population(sim *m, fedrec_error *err) {
  const fedsim_config *c = m->c;
  m->rows = (uint32_t)m->sp->train.rows;
  m->ncanary = c->audit_canaries;
  m->canary_in = calloc(m->ncanary + 1, 1);
  if (!m->canary_in) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "canaries");
  /* each canary is included with probability 1/2, independently (secret from the server) */
  uint64_t cs = c->seed ^ 0x696e636c75646564ULL;
  for (uint32_t j = 0; j < m->ncanary; j++) m->canary_in[j] = fedrec_splitmix64(&cs) >> 63;
  m->everyone = m->rows + m->ncanary;
  for (uint32_t u = 0; u < m->everyone; u++) m->pop += fedsim_eligible(m, u);
  m->poisson = c->sampling_rate > 0;
  if (!m->poisson && m->pop < c->cohort)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "fedavg: cohort %u is larger than the %u training users with history", c->cohort,
                            m->pop);
  double mean = c->sampling_rate * m->pop;
  m->cap = m->poisson ? m->pop : c->cohort;
  m->least = m->poisson ? (uint32_t)fmax(2, floor(fmax(0.5 * mean, mean - 4 * sqrt(mean)))) : c->cohort;
  if (m->poisson && m->least < 10)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "fedavg: sampling rate %g of %u users gives cohorts of about %.1f: too few",
                            c->sampling_rate, m->pop, mean);
  return FEDREC_OK;
}

/* The initial model (every item with a free embedding when asked) and, for the audit, a copy
 * of its parameters. */
static fedrec_status initial_model(sim *m, fedrec_model *init, fedrec_error *err) {
  const fedsim_config *c = m->c;
  int32_t ni = m->sp->train.cols, *all = malloc((size_t)ni * sizeof *all);
  if (!all) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "items");
  for (int32_t i = 0; i < ni; i++) all[i] = i;
  int head = m->ds->content != NULL && c->use_head;
  fedrec_status s = fedrec_model_init(init, ni, c->dim, m->ds->content, m->ds->content_dim, head, all, c->free_items ? ni : 0,
                                      c->seed, 0.1f, err);
  free(all);
  if (!s && (s = fedrec_model_set_modalities(init, m->ds, err))) fedrec_model_free(init);
  if (s) return s;
  m->dim = fedrec_model_params(init);
  if (m->ncanary) {
    if (!(m->theta0 = malloc((size_t)m->dim * sizeof *m->theta0)))
      return fedrec_error_set(err, FEDREC_ERR_NOMEM, "audit: %lld parameters", (long long)m->dim);
    fedrec_model_get_params(m->theta0, init);
  }
  return FEDREC_OK;
}

/* The coordinator's identity (from the seed) and a fresh ledger for a run with noise. */
static fedrec_status identity_and_ledger(sim *m, fedrec_error *err) {
  const fedsim_config *c = m->c;
  uint8_t seed[32] = {0};
  memcpy(seed, &c->seed, sizeof c->seed);
  fedrec_status s = fedrec_identity_from_seed(&m->id, seed);
  if (s) return fedrec_error_set(err, s, "identity");
  m->have_id = 1;
  seed[31] = 0xa5; /* the enrolment authority: another key than the coordinator's */
  if (c->engine.active && fedrec_identity_from_seed(&m->authority, seed)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "identity");
  if (c->ledger) snprintf(m->ledger_path, sizeof m->ledger_path, "%s", c->ledger);
  else snprintf(m->ledger_path, sizeof m->ledger_path, "/tmp/fedrec-sim-ledger-%d.db", (int)getpid());
  unlink(m->ledger_path);
  if (c->engine.noise_multiplier > 0 || c->target_epsilon > 0)
    return fedrec_ledger_create_with(&m->ledger, m->ledger_path, &(fedrec_ledger_terms){.delta = c->delta, .budget = c->budget,
                                     .max_participation = c->engine.max_participation}, &m->id, err);
  return FEDREC_OK;
}

/* The engine's configuration: the flags' settings, and the cohort, selection, survivors and
 * dropout the simulation derives. */
static void engine_config(sim *m, fedrec_engine_config *ec) {
  const fedsim_config *c = m->c;
  *ec = c->engine;
  ec->cohort = m->cap;
  ec->min_cohort = m->least;
  ec->sampling_rate = m->poisson ? c->sampling_rate : 0;
  ec->selection_ms = 1000;
  ec->min_survivors = c->min_survivors ? c->min_survivors : (uint32_t)ceil(m->least * 0.8);
  ec->max_rounds = c->rounds;
  /* SecAgg+ sizes (k, t) for the fraction lost over the whole round: with a rate per phase,
   * a client is gone by the unmasking with probability 1 - (1 - p)^4 */
  double lost = 1 - pow(1 - c->dropout, 4);
  ec->dropout = lost > 0.01 ? lost : 0.01;
  ec->unmask_threads = (uint32_t)(c->threads > 0 ? c->threads : 1);
  ec->sum_noise = !c->client_noise;
  fedrec_rng_seed(&m->noise_rng, c->seed, 0x73756d6e6f697365ULL); /* its own stream: plain and masked runs draw alike */
  ec->sum_noise_entropy = (fedrec_entropy){fedsim_rng_bytes, &m->noise_rng, 1};
  if (ec->active) memcpy(ec->authority_pk, m->authority.pk, sizeof ec->authority_pk);
}

int64_t fedsim_longest_update(const sim *m) {
  int64_t ni = m->sp->train.cols, g = m->c->engine.spectral_items ? fedrec_gram_dim((int32_t)m->c->engine.spectral_items) : 0;
  int64_t longest = m->c->engine.popularity_rounds && ni > m->dim ? ni : m->dim;
  return g > longest ? g : longest;
}

/* What a plan is computed for: the model's length, the count rounds' (the catalogue), the
 * expected cohort, and the count rounds' share of the budget (0: the model rounds' noise). */
typedef struct plan_for {
  int64_t dim, n_items;
  uint32_t n;
  double share;
} plan_for;

/* The planned epsilon of ec's settings after c->rounds rounds; with count rounds and a share,
 * their noise multiplier is set from the model rounds' first. */
static fedrec_status planned(double *eps, fedrec_engine_config *ec, const plan_for *p, const fedsim_config *c, fedrec_error *err) {
  uint32_t P = ec->popularity_rounds + (ec->spectral_items ? 1 : 0); /* the statistics rounds */
  if (ec->popularity_rounds && c->rounds > P && p->share > 0) {
    /* the count (and spectral) rounds' share of the budget: their noise multiplier z / sqrt(k),
     * each costing about k model rounds (RDP ~ 1/z^2), k = share (R - P) / (P (1 - share)) */
    double k = p->share * (c->rounds - P) / (P * (1 - p->share));
    ec->popularity_noise_multiplier = ec->noise_multiplier / sqrt(k);
  }
  return ec->tree_noise_multiplier > 0 ? fedrec_engine_plan_public_epsilon(eps, ec, p->dim, p->n, c->rounds, c->delta, err)
                                       : fedrec_engine_plan_epsilon_items(eps, ec, p->dim, p->n_items, p->n, c->rounds, c->delta, err);
}

/* The smallest noise multiplier z (to 0.1%: the distributed one, or DP-FTRL's tree multiplier)
 * whose planned epsilon after c->rounds rounds is at most c->target_epsilon: bisection in log z
 * (epsilon falls as z grows). */
static fedrec_status calibrate(double *z, fedrec_engine_config *ec, const plan_for *p, const fedsim_config *c, fedrec_error *err) {
  double lo = 1e-2, hi = 1e4, eps;
  fedrec_status s;
  for (;;) { /* the largest multiplier (below 1e4) whose per-client noise the samplers take */
    *z = hi;
    if (!(s = planned(&eps, ec, p, c, err))) break;
    if ((hi /= 2) < lo) return s;
  }
  if (eps > c->target_epsilon)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--target-epsilon %g: even noise multiplier %g gives epsilon %g over %u rounds",
                            c->target_epsilon, hi, eps, c->rounds);
  while (hi / lo > 1.001) {
    double mid = sqrt(lo * hi);
    *z = mid;
    fedrec_error e2 = {0};
    /* a multiplier too small for the sampler's range counts as too little noise */
    if (planned(&eps, ec, p, c, &e2) || eps > c->target_epsilon) lo = mid;
    else hi = mid;
  }
  *z = hi;
  fedrec_error e2 = {0};
  planned(&eps, ec, p, c, &e2); /* the count rounds' multiplier follows z */
  return FEDREC_OK;
}

/* (fedsim.h) The budget as R rounds' worth at z_all (RDP ~ R / z_all^2); P count rounds at z_c
 * take P / z_c^2 of it. */
double fedsim_auto_share(double z_all, uint32_t rounds, uint32_t stats_rounds, uint32_t n) {
  double zc = (double)n / FEDSIM_POPULARITY_RESOLUTION;
  double s = stats_rounds * z_all * z_all / (rounds * zc * zc);
  return s < FEDSIM_SHARE_MIN ? FEDSIM_SHARE_MIN : s > FEDSIM_SHARE_MAX ? FEDSIM_SHARE_MAX : s;
}

/* The count rounds' share: given, or (auto) from the multiplier every round alike would need. */
static fedrec_status share_of(plan_for *p, fedrec_engine_config *ec, const fedsim_config *c, fedrec_error *err) {
  uint32_t P = ec->popularity_rounds + (ec->spectral_items ? 1 : 0);
  p->share = c->popularity_share;
  if (p->share >= 0 || !ec->popularity_rounds || c->rounds <= P || ec->tree_noise_multiplier > 0) {
    if (p->share < 0) p->share = 0;
    return FEDREC_OK;
  }
  p->share = 0;
  fedrec_status s;
  if (c->target_epsilon > 0 && (s = calibrate(&ec->noise_multiplier, ec, p, c, err))) return s;
  p->share = fedsim_auto_share(ec->noise_multiplier, c->rounds, P, p->n);
  return FEDREC_OK;
}

/* The plan the engine's budget checks follow, with the expected cohort: the noise multiplier
 * for --target-epsilon, and the planned epsilon. */
static fedrec_status plan(sim *m, fedrec_engine_config *ec, fedsim_result *res, fedrec_error *err) {
  const fedsim_config *c = m->c;
  res->noise_multiplier = c->engine.noise_multiplier;
  res->planned_epsilon = 0;
  if (!(c->engine.noise_multiplier > 0 || c->target_epsilon > 0)) return FEDREC_OK;
  plan_for p = {.dim = m->dim, .n_items = m->sp->train.cols, /* count rounds' length */
                .n = m->poisson ? (uint32_t)fmax(m->least, round(c->sampling_rate * m->pop)) : c->cohort};
  fedrec_status s;
  int tree = ec->tree_noise_multiplier > 0;
  if ((s = share_of(&p, ec, c, err))) return s;
  if (c->target_epsilon > 0 && (s = calibrate(tree ? &ec->tree_noise_multiplier : &ec->noise_multiplier, ec, &p, c, err)))
    return s;
  if ((s = planned(&res->planned_epsilon, ec, &p, c, err))) return s;
  res->popularity_noise_multiplier = ec->popularity_rounds ? fedrec_engine_kind_config(ec, FEDREC_ROUND_COUNT).noise_multiplier : 0;
  res->popularity_share = ec->popularity_rounds ? p.share : 0;
  res->noise_multiplier = ec->noise_multiplier;
  res->tree_noise_multiplier = ec->tree_noise_multiplier;
  return FEDREC_OK;
}

/* A round's buffers: the cohort's state, and one input sum per pool thread. */
static fedrec_status allocate(sim *m, fedrec_error *err) {
  const fedsim_config *c = m->c;
  uint32_t cap = m->cap;
  m->nthreads = c->threads < 1 ? 1 : c->threads > FEDSIM_MAX_THREADS ? FEDSIM_MAX_THREADS : c->threads;
  m->sa_dim = m->sa_cap = fedrec_ddp_padded((uint32_t)fedsim_longest_update(m)); /* the masked inputs' length */
  m->tsum = malloc((size_t)m->nthreads * m->sa_cap * sizeof *m->tsum);
  m->tids = malloc((size_t)m->nthreads * cap * sizeof *m->tids);
  if (!m->tsum || !m->tids) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "input sums");
  m->users = malloc(cap * sizeof *m->users);
  m->part = calloc(cap, sizeof *m->part);
  m->silent = calloc(cap, 1);
  m->drop_at = calloc(cap, 1);
  m->up = calloc(cap, sizeof *m->up);
  m->down = calloc(cap, sizeof *m->down);
  m->taken = calloc((size_t)m->everyone, 1);
  if (c->engine.active && !(m->ids = calloc(cap, sizeof *m->ids))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "identities");
  if (!m->users || !m->part || !m->silent || !m->drop_at || !m->up || !m->down || !m->taken)
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "cohort");
  return FEDREC_OK;
}

fedrec_status fedsim_setup(sim *m, fedsim_result *res, fedrec_error *err) {
  fedrec_model init = {0};
  int have_model = 0;
  if (m->c->engine.active && (m->c->engine.plain || m->mpi_size > 1))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--secagg-active needs --secagg full and one process (not MPI)");
  fedrec_status s = population(m, err);
  if (!s && !(s = initial_model(m, &init, err))) have_model = 1;
  if (!s) s = identity_and_ledger(m, err);
  fedrec_engine_config ec;
  if (!s) engine_config(m, &ec), s = plan(m, &ec, res, err);
  if (!s) {
    fedrec_engine_callbacks cb = {m, NULL, on_round, NULL};
    fedrec_rng_seed(&m->engine_rng, m->c->seed, 0x636f6f7264ULL);
    fedrec_entropy engine_ent = {fedsim_rng_bytes, &m->engine_rng, 0};
    s = fedrec_engine_new(&m->e, &ec, &init, 1, &m->id, m->ledger, &cb, &engine_ent, err); /* takes the model */
  }
  if (s && have_model) fedrec_model_free(&init);
  if (!s) s = allocate(m, err);
  m->cohort_rng = m->c->seed * 0x2545f4914f6cdd1dULL + 7;
  return s;
}

void fedsim_teardown(sim *m) {
  free(m->taken);
  free(m->theta0);
  free(m->canary_in);
  fedrec_engine_free(m->e);
  fedrec_model_free(&m->model);
  if (m->ledger) fedrec_ledger_close(m->ledger);
  if (!m->c->ledger && m->ledger_path[0]) {
    char p[600];
    unlink(m->ledger_path);
    snprintf(p, sizeof p, "%s-wal", m->ledger_path), unlink(p);
    snprintf(p, sizeof p, "%s-shm", m->ledger_path), unlink(p);
  }
  if (m->have_id) fedrec_identity_free(&m->id);
  fedrec_identity_free(&m->authority);
  for (uint32_t i = 0; m->ids && i < m->cap; i++) fedrec_identity_free(&m->ids[i]);
  free(m->ids);
  free(m->users), free(m->part), free(m->silent), free(m->drop_at), free(m->up), free(m->down), free(m->tsum), free(m->tids);
  free(m->V), free(m->G);
}
