/* fedrec-sim --algorithm fedavg, one round: the cohort checks in (Poisson coins drawn by the
 * engine, or a fixed-size cohort drawn here), every client decodes the published model, the
 * dropouts are drawn, and each phase runs over the clients on a thread pool (or, with MPI,
 * over the ranks), straight against the engine as the gRPC handlers would call it. */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/internal/sim.h"
#include "fedrec/enrol.h"
#include "fedsim_internal.h"

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
  if (m->phase == FEDREC_PHASE_KEYS || (m->c->engine.plain && m->phase == FEDREC_PHASE_MASKED)) {
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

/* Poisson: every user with history checks in; the engine takes each with probability q, and
 * the selection closes when its window passes (again, until a round starts). */
static fedrec_status poisson_cohort(sim *m, fedrec_error *err) {
  fedrec_status s = FEDREC_OK;
  while (fedrec_engine_phase(m->e) == FEDREC_PHASE_SELECTING) {
    m->n = 0; /* each pass lists the whole cohort: members are accepted again, coins do not change */
    for (uint32_t u = 0; u < m->everyone && !s; u++) {
      if (!fedsim_eligible(m, u)) continue;
      int acc;
      uint64_t round;
      uint32_t retry;
      s = fedrec_engine_checkin(m->e, u, m->now, &acc, &round, &retry, err);
      if (s == FEDREC_ERR_AUTH && m->c->engine.active) { /* sampled: joins with its certificate */
        uint8_t cert[FEDREC_CERT_BYTES];
        if (!(s = fedsim_identity(m, UINT32_MAX, u, cert, err)))
          s = fedrec_engine_checkin_cert(m->e, u, cert, sizeof cert, m->now, &acc, &round, &retry, err);
      }
      if (acc) m->users[m->n++] = u, m->round = round;
    }
    if (s) break;
    m->now += 1000; /* the selection window closes */
    fedrec_engine_tick(m->e, m->now);
  }
  return s;
}

/* Fixed size: distinct users with history, uniformly, who check in; under a participation
 * bound, those the engine turns away (spent, or too soon) are passed over. */
static fedrec_status fixed_cohort(sim *m, fedrec_error *err) {
  fedrec_status s = FEDREC_OK;
  uint32_t want = m->c->cohort, tried = 0, refused = 0;
  m->n = 0;
  while (m->n < want && !s) {
    uint32_t u = (uint32_t)(fedrec_splitmix64(&m->cohort_rng) % (uint64_t)m->everyone);
    if (m->taken[u] || !fedsim_eligible(m, u)) continue;
    m->taken[u] = 1;
    tried++;
    int acc;
    uint64_t round;
    uint32_t retry;
    uint8_t cert[FEDREC_CERT_BYTES];
    int active = m->c->engine.active; /* the certificate a real device would send */
    if (!active || !(s = fedsim_identity(m, UINT32_MAX, u, cert, err)))
      s = fedrec_engine_checkin_cert(m->e, u, active ? cert : NULL, active ? sizeof cert : 0, m->now, &acc, &round, &retry, err);
    if (s) break;
    if (!s && acc) m->users[m->n++] = u, m->round = round;
    else if (!s) refused++;
    if (!s && m->n < want && tried == m->pop)
      s = fedrec_error_set(err, FEDREC_ERR_LIMIT, "round %llu: only %u of the %u users may take part (max participation %u, "
                           "min separation %u), fewer than the cohort %u", (unsigned long long)fedrec_engine_round(m->e), m->n,
                           m->pop, m->c->engine.max_participation, m->c->engine.min_separation, want);
  }
  if (refused) memset(m->taken, 0, m->everyone);
  else for (uint32_t i = 0; i < m->n; i++) m->taken[m->users[i]] = 0;
  return s;
}

/* The round's start for the clients: the published model decoded (and its item vectors), the
 * model download counted, and each client's dropout phase drawn: the first phase at which a
 * Bernoulli(dropout) hits, whatever the secure-aggregation mode. Without masks a client that
 * vanishes only at unmasking has still sent its input, as with masks: both modes sum the same
 * clients. */
static fedrec_status begin_round(sim *m, fedrec_error *err) {
  fedrec_published pub;
  fedrec_engine_model(m->e, &pub);
  fedrec_model_free(&m->model);
  fedrec_status s = fedrec_model_decode(&m->model, NULL, pub.blob, pub.len, m->ds->content, m->ds->content_dim, err);
  if (s || (s = fedsim_shared_vectors(m, err))) return s;
  int64_t len; /* as the engine decides */
  fedrec_engine_kind_of(&m->c->engine, fedrec_engine_rounds_done(m->e), m->dim, m->model.n_items, &len);
  m->sa_dim = fedrec_ddp_padded((uint32_t)len);
  for (uint32_t i = 0; i < m->n; i++) m->down[i] = pub.len; /* each client downloads the model */
#ifdef FEDREC_SIM_MPI
  if (m->mpi_size > 1) fedsim_mpi_round(m, &pub);
#endif
  m->have_last = 0;
  double p = m->c->dropout;
  for (uint32_t i = 0; i < m->n; i++) {
    m->drop_at[i] = 0;
    for (int ph = FEDREC_PHASE_KEYS; ph <= FEDREC_PHASE_UNMASK && !m->drop_at[i] && p > 0; ph++)
      if ((ph != FEDREC_PHASE_CONSISTENCY || m->c->engine.active) &&
          (double)(fedrec_splitmix64(&m->cohort_rng) >> 11) * 0x1.0p-53 < p)
        m->drop_at[i] = (uint8_t)ph;
  }
  return FEDREC_OK;
}

/* One phase over this process's clients: the pool runs them; in the masked phase each pool
 * thread adds its clients' inputs up, and the sums go to the engine after the phase. */
static void local_phase(sim *m) {
  int sums = m->phase == FEDREC_PHASE_MASKED;
  if (sums) {
    memset(m->tsum, 0, (size_t)m->nthreads * m->sa_dim * sizeof *m->tsum);
    memset(m->tn, 0, sizeof m->tn), memset(m->tbytes, 0, sizeof m->tbytes);
  }
  fedsim_pool(m->nthreads, client_step, m, m->n);
  for (int t = 0; sums && t < m->nthreads && !atomic_load(&m->failed); t++) {
    fedrec_error e2 = {0};
    if (m->tn[t] && fedrec_engine_submit_sum(m->e, m->round, m->tids + (size_t)t * m->n, m->tn[t], m->tsum + (size_t)t * m->sa_dim,
                                            m->sa_dim, m->tbytes[t], m->now, &e2))
      fedsim_fail(m, "input sums", &e2);
  }
}

/* The phases, each over every client; a phase the silent ones hold open ends at its deadline
 * (the engine's clock jumps there). */
static fedrec_status run_phases(sim *m, fedrec_error *err) {
  int plain = m->c->engine.plain;
  for (fedrec_phase ph = plain ? FEDREC_PHASE_MASKED : FEDREC_PHASE_KEYS; ph <= FEDREC_PHASE_UNMASK; ph++) {
    if (ph == FEDREC_PHASE_CONSISTENCY && !m->c->engine.active) continue; /* the active variant's phase */
    for (uint32_t i = 0; i < m->n; i++)
      if (m->drop_at[i] && (plain ? m->drop_at[i] <= FEDREC_PHASE_MASKED && ph == FEDREC_PHASE_MASKED : m->drop_at[i] == ph))
        m->silent[i] = 1;
    m->phase = ph;
#ifdef FEDREC_SIM_MPI
    if (m->mpi_size > 1) fedsim_mpi_phase(m);
    else
#endif
      local_phase(m);
    if (atomic_load(&m->failed)) return fedrec_error_set(err, FEDREC_ERR_STATE, "fedavg: %s", m->why);
    pthread_mutex_lock(&m->mu);
    if (fedrec_engine_phase(m->e) == ph) { /* the silent ones hold it open: their deadline passes */
      m->now = fedrec_engine_deadline(m->e);
      fedrec_engine_tick(m->e, m->now);
    }
    m->now += 10;
    pthread_mutex_unlock(&m->mu);
    if (fedrec_engine_phase(m->e) == FEDREC_PHASE_SELECTING || fedrec_engine_phase(m->e) == FEDREC_PHASE_STOPPED) break;
  }
  return FEDREC_OK;
}

fedrec_status fedsim_round(sim *m, int *over, fedrec_error *err) {
  *over = 0;
  if (fedrec_engine_phase(m->e) == FEDREC_PHASE_STOPPED) return *over = 1, FEDREC_OK;
  fedrec_status s = m->poisson ? poisson_cohort(m, err) : fixed_cohort(m, err);
  memset(m->silent, 0, m->n);
  memset(m->up, 0, m->n * sizeof *m->up);
  memset(m->down, 0, m->n * sizeof *m->down);
  if (s) return s;
  if (fedrec_engine_phase(m->e) == FEDREC_PHASE_STOPPED) return *over = 1, FEDREC_OK;
  if ((s = begin_round(m, err)) || (s = run_phases(m, err))) return s;
  for (uint32_t i = 0; i < m->n; i++) {
    fedrec_participant_free(m->part[i]);
    m->part[i] = NULL;
  }
  return FEDREC_OK;
}
