/* Aggregators: which members' masked inputs each live aggregator collects, their tickets, and
 * the sums they submit (also the simulator's sums, with no aggregator). docs/DEPLOY.md,
 * "Aggregators". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/crypto.h"
#include "fedrec/internal/sim.h"
#include "engine_internal.h"

void fedrec_engine_set_aggregators(fedrec_engine *e, uint32_t n, const uint8_t *live) {
  e->naggs = n > FEDREC_MAX_AGGREGATORS ? FEDREC_MAX_AGGREGATORS : n;
  memset(e->agg_live, 0, sizeof e->agg_live);
  for (uint32_t k = 0; live && k < e->naggs; k++) e->agg_live[k] = live[k] != 0;
}

int fedrec__engine_assign_aggregators(fedrec_engine *e) {
  uint32_t live[FEDREC_MAX_AGGREGATORS], nl = 0;
  for (uint32_t k = 0; k < e->naggs; k++)
    if (e->agg_live[k]) live[nl++] = k;
  for (uint32_t i = 0; i < e->n; i++) e->members[i].agg = 0;
  if (!nl || e->c.plain) return 1;
  if (!e->tickets && !(e->tickets = fedrec_secret_alloc((size_t)e->cap * FEDREC_TICKET_BYTES))) return 0;
  /* from the CSPRNG, not the engine's entropy: tickets are credentials, and they change no
   * result (a seeded engine draws the same with aggregators or without) */
  fedrec_entropy os;
  fedrec_csprng(&os);
  os.bytes(os.ctx, e->tickets, (size_t)e->n * FEDREC_TICKET_BYTES);
  for (uint32_t i = 0; i < e->n; i++) e->members[i].agg = live[i % nl] + 1;
  return 1;
}

void fedrec_assignment_free(fedrec_assignment *a) {
  free(a->index), free(a->clients);
  if (a->tickets) fedrec_secret_free(a->tickets);
  memset(a, 0, sizeof *a);
}

fedrec_status fedrec_engine_assignment(fedrec_engine *e, uint32_t agg, fedrec_assignment *out, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  if (!agg || agg > e->naggs) return fedrec_error_set(err, FEDREC_ERR_ARG, "aggregator %u of %u configured", agg, e->naggs);
  int running = e->phase >= FEDREC_PHASE_KEYS && e->phase <= FEDREC_PHASE_MASKED;
  uint32_t n = 0;
  for (uint32_t i = 0; running && i < e->n; i++) n += e->members[i].agg == agg;
  if (!n) return fedrec_error_set(err, FEDREC_ERR_EMPTY, "no members assigned to aggregator %u", agg);
  out->index = malloc((size_t)n * sizeof *out->index);
  out->clients = malloc((size_t)n * sizeof *out->clients);
  out->tickets = fedrec_secret_alloc((size_t)n * FEDREC_TICKET_BYTES);
  if (!out->index || !out->clients || !out->tickets) {
    fedrec_assignment_free(out);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: an assignment of %u members", n);
  }
  out->round = e->round;
  out->open = e->phase == FEDREC_PHASE_MASKED;
  out->deadline = out->open ? e->deadline : 0;
  out->cohort = e->n;
  out->dim = e->info.secagg.dim;
  out->bits = e->info.secagg.bits;
  for (uint32_t i = 0; i < e->n; i++) {
    if (e->members[i].agg != agg) continue;
    out->index[out->n] = i;
    out->clients[out->n] = e->members[i].client;
    memcpy(out->tickets + (size_t)out->n * FEDREC_TICKET_BYTES, e->tickets + (size_t)i * FEDREC_TICKET_BYTES, FEDREC_TICKET_BYTES);
    out->n++;
  }
  return FEDREC_OK;
}

fedrec_status fedrec__engine_take_sum(fedrec_engine *e, uint32_t agg, uint64_t round, const uint64_t *clients, uint32_t n,
                                      const uint32_t *sum, uint32_t dim, uint64_t bytes, uint64_t now, fedrec_error *err) {
  if (round != e->round || e->phase != FEDREC_PHASE_MASKED)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: no masked phase open for a sum", (unsigned long long)round);
  if (n == 0) return FEDREC_OK; /* nothing to add (an aggregator that only refused) */
  if (dim != e->info.secagg.dim)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "a sum of %u values, the round uses %u", dim, e->info.secagg.dim);
  uint32_t *idx = malloc((size_t)n * sizeof *idx), a = 0;
  if (!idx) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: %u clients in a sum", n);
  fedrec_status s = FEDREC_OK;
  const int pending = (int)FEDREC_PHASE_MASKED + 100; /* marks who is in this sum, to catch repeats */
  for (; a < n; a++) { /* a: how many are marked */
    member *m = fedrec__engine_find(e, clients[a], &idx[a]);
    if (!m || m->done != (int)FEDREC_PHASE_MASKED - 1 || m->agg != agg) {
      s = fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: client %llu of a sum %s", (unsigned long long)round,
                           (unsigned long long)clients[a],
                           !m ? "is not in the round" : m->done == DROPPED ? "was dropped"
                           : m->done == pending ? "is named twice" : m->agg != agg ? "is not assigned to this aggregator"
                           : "has already sent its input or skipped a phase");
      break;
    }
    m->done = pending;
  }
  uint32_t mask = e->info.secagg.bits >= 32 ? 0xffffffffu : (1u << e->info.secagg.bits) - 1;
  if (!s) {
    uint32_t over = 0; /* no early exit: the loop vectorises */
    for (uint32_t k = 0; k < dim; k++) over |= sum[k] & ~mask;
    if (over) s = fedrec_error_set(err, FEDREC_ERR_ARG, "a sum value is out of the round's %u bits", e->info.secagg.bits);
  }
  if (!s && !e->c.plain) s = fedrec_secagg_server_on_masked_sum(e->sa, idx, n, sum, dim, err);
  for (uint32_t b = 0; b < a; b++) e->members[idx[b]].done = s ? (int)FEDREC_PHASE_MASKED - 1 : (int)FEDREC_PHASE_MASKED;
  free(idx);
  if (s) return s;
  if (e->c.plain)
    for (uint32_t k = 0; k < dim; k++) e->modsum[k] = (e->modsum[k] + sum[k]) & mask;
  e->stats.bytes_in += bytes;
  e->last_answer = now;
  fedrec_engine_tick(e, now);
  return FEDREC_OK;
}

fedrec_status fedrec_engine_submit_sum(fedrec_engine *e, uint64_t round, const uint64_t *clients, uint32_t n,
                                       const uint32_t *sum, uint32_t dim, uint64_t bytes, uint64_t now,
                                       fedrec_error *err) {
  return fedrec__engine_take_sum(e, 0, round, clients, n, sum, dim, bytes, now, err);
}

fedrec_status fedrec_engine_submit_aggregate(fedrec_engine *e, uint32_t agg, uint64_t round, const uint64_t *clients,
                                             uint32_t n, const uint32_t *sum, uint32_t dim, uint64_t bytes,
                                             const uint64_t *refused, uint32_t nrefused, uint64_t now, fedrec_error *err) {
  if (!agg || agg > e->naggs) return fedrec_error_set(err, FEDREC_ERR_ARG, "aggregator %u of %u configured", agg, e->naggs);
  for (uint32_t r = 0; r < nrefused; r++) { /* checked first: a bad list changes nothing */
    member *m = round == e->round && e->phase == FEDREC_PHASE_MASKED ? fedrec__engine_find(e, refused[r], NULL) : NULL;
    if (!m || m->agg != agg)
      return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: refused client %llu is not assigned to aggregator %u",
                              (unsigned long long)round, (unsigned long long)refused[r], agg);
  }
  fedrec_status s = fedrec__engine_take_sum(e, agg, round, clients, n, sum, dim, bytes, now, err);
  if (s) return s;
  for (uint32_t r = 0; r < nrefused; r++) {
    member *m = fedrec__engine_find(e, refused[r], NULL);
    if (m && m->done == (int)FEDREC_PHASE_MASKED - 1) fedrec__engine_ban(e, m);
  }
  if (nrefused) fedrec_engine_tick(e, now);
  return FEDREC_OK;
}
