/* The phase machine: a selection fills (fixed or Poisson cohorts), the round starts with its
 * secure-aggregation and DP parameters, each phase closes when every member answered or at
 * its adaptive deadline, and the round ends unmasked, recorded, checked and published (or
 * aborted, saying why). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/internal/sim.h"
#include "fedrec/accountant.h"
#include "fedrec/enrol.h"
#include "engine_internal.h"

static double unit_open(fedrec_engine *e) { /* uniform in (0, 1) */
  uint64_t v = fedrec__engine_random_u64(e);
  return ((double)(v >> 11) + 0.5) * 0x1.0p-53;
}

void fedrec__engine_stop(fedrec_engine *e, const char *fmt, const char *detail) {
  snprintf(e->stop, sizeof e->stop, fmt, detail);
  e->phase = FEDREC_PHASE_STOPPED;
  fedrec_secagg_server_free(e->sa);
  e->sa = NULL;
  fedrec__engine_clear_members(e);
}

void fedrec__engine_new_selection(fedrec_engine *e) {
  fedrec_secagg_server_free(e->sa);
  e->sa = NULL;
  fedrec__engine_clear_members(e);
  e->deadline = 0;
  e->overflow = 0;
  e->phase = FEDREC_PHASE_SELECTING;
  memset(&e->stats, 0, sizeof e->stats);
}

/* Ends the round without a publication. kind: ABORT_LATE, it ended at a deadline too few
 * devices met; ABORT_ATTACK, a member's doing (a named culprit, or a sum that only an
 * unclipped input explains). Towards max_aborts count neither rounds that never started (a
 * selection that did not fill: waiting for devices is not a failure of the round) nor
 * attacks: one token must not be able to stop training by spoiling rounds in a row. */
void fedrec__engine_abort(fedrec_engine *e, const char *why, int kind) {
  int started = e->phase != FEDREC_PHASE_SELECTING;
  e->stats.round = e->round;
  e->stats.cohort = e->n;
  e->stats.aborted = 1;
  snprintf(e->stats.reason, sizeof e->stats.reason, "%s", why);
  if (e->cb.round_done) e->cb.round_done(e->cb.ctx, &e->stats);
  e->aborted_round = e->round + 1;
  snprintf(e->aborted_why, sizeof e->aborted_why, "%s", why);
  uint64_t round = e->round++;
  fedrec__engine_new_selection(e);
  if (!started || kind == ABORT_ATTACK) return;
  e->aborts++;
  e->late_aborts += kind == ABORT_LATE;
  if (e->c.max_aborts && e->aborts >= e->c.max_aborts) {
    char msg[600];
    snprintf(msg, sizeof msg, "%u consecutive rounds aborted, the last (round %llu): %s. %s", e->aborts,
             (unsigned long long)round, why,
             e->late_aborts == e->aborts
                 ? "Devices did not answer in time although the deadlines grew up to max-phase-ms: raise max-phase-ms, "
                   "or check that the devices run and reach the coordinator (their logs say why they left)"
                 : "Fix the cause above (the log's round_aborted events), or raise max-aborts, then serve again");
    fedrec__engine_stop(e, "%s", msg);
  }
}

/* A count round's update is as long as the catalogue: the sum's buffers grow to it if they
 * must (0: no memory). */
static int round_buffers(fedrec_engine *e) {
  if (e->rdim <= e->bufdim) return 1;
  uint32_t padded = fedrec_ddp_padded((uint32_t)e->rdim);
  float *avg = malloc((size_t)e->rdim * sizeof *avg);
  uint32_t *modsum = malloc((size_t)padded * sizeof *modsum);
  double *work = malloc((size_t)padded * sizeof *work);
  if (!avg || !modsum || !work) {
    free(avg), free(modsum), free(work);
    return 0;
  }
  free(e->avg), free(e->modsum), free(e->work);
  e->avg = avg, e->modsum = modsum, e->work = work, e->bufdim = e->rdim;
  return 1;
}

/* Sets up secure aggregation and the DP pipeline for the selected cohort; checks the budget. */
void fedrec__engine_start_round(fedrec_engine *e, uint64_t now) {
  fedrec_error err = {0};
  uint32_t n = e->n;
  fedrec_secagg_choice ch = {.k = n - 1, .t = n / 2 + 1, .complete = 1};
  if (!e->c.plain && fedrec_secagg_choose(&ch, n, e->c.dropout, e->c.dishonest, e->c.fail_bits, e->c.sec_bits, &err)) {
    fedrec__engine_abort(e, err.msg, ABORT_OTHER);
    return;
  }
  fedrec_round_info *in = &e->info;
  memset(in, 0, sizeof *in);
  in->round = e->round;
  in->model_version = e->version;
  in->alpha0 = e->c.alpha0;
  in->reg = e->c.reg;
  in->local_steps = e->c.local_steps;
  in->client_lr = e->c.client_lr;
  in->min_survivors = e->c.min_survivors;
  in->kind = fedrec_engine_kind_of(&e->c, e->rounds_done, e->dim, e->model.n_items, &e->rdim);
  if (!round_buffers(e)) {
    fedrec__engine_stop(e, "%s", "no memory for a count or spectral round's sum");
    return;
  }
  fedrec_ddp_params *p = &in->ddp;
  fedrec_engine_config kc = fedrec_engine_kind_config(&e->c, in->kind);
  if (fedrec_engine_round_ddp(&kc, e->rdim, n, p, &err)) {
    fedrec__engine_stop(e, "%s", err.msg);
    return;
  }
  p->round_seed = fedrec__engine_random_u64(e);
  if (p->noise != FEDREC_NOISE_NONE || (kc.central && kc.noise_multiplier > 0)) {
    int tree = e->c.tree_noise_multiplier > 0;
    if (tree) {
      e->round_tree_z = fedrec__engine_tree_z(&e->c, p);
      e->round_leaf = fedrec__engine_tree_leaf(e, e->round_tree_z);
    }
    fedrec_release r[2] = {fedrec__engine_release_for(e, e->c.min_survivors)};
    if (tree) r[1] = fedrec__engine_tree_release(e, e->c.min_survivors);
    if (fedrec_ledger_check_round(e->ledger, r, tree ? 2 : 1, NULL, NULL, &err)) {
      fedrec__engine_stop(e, "privacy budget: %s", err.msg);
      return;
    }
  }
  fedrec_secagg_params *sp = &in->secagg;
  sp->session = fedrec__engine_random_u64(e);
  sp->n = n;
  sp->k = ch.complete ? n - 1 : ch.k;
  sp->t = ch.t;
  sp->bits = p->bits;
  sp->dim = fedrec_ddp_padded(p->dim);
  sp->active = e->c.active;
  if (sp->active) {
    in->certs = e->certs;
    in->certs_len = (size_t)n * FEDREC_CERT_BYTES;
  }
  e->ent.bytes(e->ent.ctx, sp->graph_seed, sizeof sp->graph_seed);
  e->stats.round = e->round;
  e->stats.cohort = n;
  e->stats.kind = in->kind;
  if (e->c.plain) { /* straight to the (unmasked) input */
    memset(e->modsum, 0, (size_t)sp->dim * sizeof *e->modsum);
    for (uint32_t i = 0; i < n; i++) e->members[i].done = FEDREC_PHASE_SHARES;
    e->phase = FEDREC_PHASE_MASKED;
    e->phase_start = now;
    e->deadline = now + e->phase_dl[FEDREC_PHASE_MASKED];
    in->deadline_ms = e->deadline;
    return;
  }
  if (!fedrec__engine_assign_aggregators(e)) fedrec_error_set(&err, FEDREC_ERR_NOMEM, "no memory for the aggregators' tickets");
  else e->sa = fedrec_secagg_server_new(sp, (const uint8_t(*)[FEDREC_SIGN_PK_BYTES])e->ipks, &err);
  if (!e->sa) {
    fedrec__engine_abort(e, err.msg, ABORT_OTHER);
    return;
  }
  fedrec_secagg_server_set_threads(e->sa, (int)e->c.unmask_threads);
  e->phase = FEDREC_PHASE_KEYS;
  e->phase_start = now;
  e->deadline = now + e->phase_dl[FEDREC_PHASE_KEYS];
  in->deadline_ms = e->deadline;
}

/* The survivors' sum, unmasked (secure aggregation) or added up (plain), with the sum's
 * Skellam noise drawn here when the simulator asks; 0 when the round was aborted. */
static int unmasked_sum(fedrec_engine *e, uint32_t *summed) {
  fedrec_error err = {0};
  *summed = 0;
  if (e->c.plain) {
    for (uint32_t i = 0; i < e->n; i++) *summed += e->members[i].done >= (int)FEDREC_PHASE_MASKED;
  } else if (fedrec_secagg_server_finish(e->sa, e->modsum, summed, &err)) {
    uint32_t culprit = fedrec_secagg_server_culprit(e->sa); /* its boxes did not open: banned */
    if (culprit && culprit <= e->n) fedrec__engine_ban(e, &e->members[culprit - 1]);
    fedrec__engine_abort(e, err.msg, culprit && culprit <= e->n ? ABORT_ATTACK : ABORT_OTHER);
    return 0;
  }
  const fedrec_ddp_params *p = &e->info.ddp;
  if (e->c.sum_noise && p->noise == FEDREC_NOISE_SKELLAM && *summed > 0) {
    /* Skellam(summed lambda): the distribution of the survivors' shares added up. Simulation
     * only: a fast floating-point Poisson sampler, O(1) at any lambda; the clients' own draws
     * (and everything deployed) use the exact one */
    double lambda = (double)p->sigma2_num * *summed / (2.0 * (double)p->sigma2_den);
    uint32_t mask = e->info.secagg.bits >= 32 ? 0xffffffffu : (1u << e->info.secagg.bits) - 1;
    const fedrec_entropy *src = e->c.sum_noise_entropy.bytes ? &e->c.sum_noise_entropy : &e->ent;
    for (uint32_t k = 0; k < e->info.secagg.dim; k++)
      e->modsum[k] = (uint32_t)(((int64_t)e->modsum[k] + fedrec_skellam_fast(src, lambda)) & mask);
  }
  return 1;
}

/* The sum is unmasked: from here on it is a release, recorded before anything else, whatever
 * happens to the round afterwards (discarded rounds included). 0: the ledger refused it, and
 * training stopped. */
static int record_release(fedrec_engine *e, uint32_t summed, int central, double *eps) {
  fedrec_error err = {0};
  *eps = 0;
  if (e->info.ddp.noise == FEDREC_NOISE_NONE && !central) return 1;
  fedrec_release r = fedrec__engine_release_for(e, summed), t = fedrec__engine_tree_release(e, summed);
  int tree = e->c.tree_noise_multiplier > 0, ok = !fedrec_ledger_append(e->ledger, &r, eps, &err);
  if (ok && tree && (ok = !fedrec_ledger_append(e->ledger, &t, NULL, &err)))
    fedrec__engine_tree_consume(e, t.leaf, t.z); /* recorded: used up, whatever happens to the round now */
  if (ok) {
    e->stats.epsilon_public = fedrec_ledger_epsilon_public(e->ledger);
    return 1;
  }
  /* not recorded: the aggregate must not be used */
  e->stats.aborted = 1;
  snprintf(e->stats.reason, sizeof e->stats.reason, "ledger: %s", err.msg);
  if (e->cb.round_done) e->cb.round_done(e->cb.ctx, &e->stats);
  fedrec__engine_stop(e, "ledger refused the release: %s", err.msg);
  return 0;
}

/* The average update in e->avg (decoded, checked, central noise added when simulating
 * central DP) and its norm; 0 when the round was aborted. */
static int average_update(fedrec_engine *e, uint32_t summed, int central, double eps, double *norm) {
  if (summed < e->c.min_survivors) { /* cannot happen (checked before unmasking); recorded above */
    char why[128];
    snprintf(why, sizeof why, "%u survivors, fewer than the %u required (released and recorded)", summed, e->c.min_survivors);
    e->stats.epsilon = eps;
    fedrec__engine_abort(e, why, ABORT_OTHER);
    return 0;
  }
  fedrec_ddp_decode(e->avg, e->modsum, &e->info.ddp, e->work);
  /* SecAgg cannot check what a client put in its input: one that skipped clipping can steer
   * the sum. The sum cannot be longer than summed clipped (and rounded) updates plus the
   * noise; longer, it is discarded (its release is recorded above). */
  double sum2 = 0, bound = fedrec__engine_sum_norm_bound(e, summed);
  for (int64_t i = 0; i < e->rdim; i++) sum2 += (double)e->avg[i] * e->avg[i];
  if (!(sqrt(sum2) <= bound)) {
    char why[240];
    snprintf(why, sizeof why, "the decoded sum's norm %.4g exceeds %.4g (%u clipped updates and the noise): "
             "an input was not clipped; discarded, the release is recorded", sqrt(sum2), bound, summed);
    e->stats.epsilon = eps;
    e->stats.survivors = summed;
    fedrec__engine_abort(e, why, ABORT_ATTACK);
    return 0;
  }
  if (central) { /* simulation only: N(0, (z c)^2) per coordinate, Box-Muller from the engine's source */
    double sd = fedrec_engine_kind_config(&e->c, e->info.kind).noise_multiplier * e->c.clip;
    for (int64_t i = 0; i < e->rdim; i += 2) {
      double u = unit_open(e), v = unit_open(e), rad = sd * sqrt(-2 * log(u));
      e->avg[i] += (float)(rad * cos(6.283185307179586 * v));
      if (i + 1 < e->rdim) e->avg[i + 1] += (float)(rad * sin(6.283185307179586 * v));
    }
  }
  *norm = 0;
  for (int64_t i = 0; i < e->rdim; i++) {
    e->avg[i] /= (float)summed;
    *norm += (double)e->avg[i] * e->avg[i];
  }
  return 1;
}

/* The optimizer's step, and the new model sealed and published; when it cannot be persisted
 * the previous model and optimizer state stay served (the ledger entry stands: the aggregate
 * was released to the coordinator) and training stops. 0 then. */
static int step_and_publish(fedrec_engine *e) {
  fedrec_error err = {0};
  size_t bytes = (size_t)e->dim * sizeof(float);
  float *saved = malloc(bytes), *s1 = malloc(bytes), *s2 = malloc(bytes);
  if (saved && s1 && s2) {
    memcpy(saved, e->x, bytes);
    memcpy(s1, e->m1, bytes);
    memcpy(s2, e->m2, bytes);
  }
  fedrec_optimizer_params p = {e->c.server_lr, e->c.momentum, e->c.beta1, e->c.beta2, e->c.adam_eps};
  fedrec_optimizer_step(e->c.optimizer, &p, e->rounds_done + 1, e->x, e->m1, e->m2, e->avg, e->dim);
  fedrec_model_set_params(&e->model, e->x);
  uint64_t old = e->version;
  e->round++, e->rounds_done++; /* what the published state says comes next */
  int failed = !saved || !s1 || !s2 || fedrec__engine_seal_model(e, old + 1, &err) || fedrec__engine_publish(e);
  e->round--, e->rounds_done--;
  if (failed) {
    if (saved && s1 && s2) {
      memcpy(e->x, saved, bytes);
      memcpy(e->m1, s1, bytes);
      memcpy(e->m2, s2, bytes);
    }
    fedrec_model_set_params(&e->model, e->x);
    fedrec__engine_seal_model(e, old, &err);
    fedrec__engine_stop(e, "%s", "the new model could not be persisted");
  }
  free(saved), free(s1), free(s2);
  return !failed;
}

/* A count round: the noisy sum of the members' item vectors (the average times the survivors)
 * adds to the model's popularity, and the model is sealed and published as after a step; when
 * it cannot be persisted the previous popularity stays and training stops (0). */
static int count_and_publish(fedrec_engine *e, uint32_t summed) {
  fedrec_error err = {0};
  int32_t ni = e->model.n_items;
  float *saved = malloc((size_t)ni * sizeof *saved);
  if (saved) memcpy(saved, e->model.pop, (size_t)ni * sizeof *saved);
  for (int32_t i = 0; i < ni; i++) e->model.pop[i] += e->avg[i] * (float)summed;
  uint64_t old = e->version;
  e->round++, e->rounds_done++;
  int failed = !saved || fedrec__engine_seal_model(e, old + 1, &err) || fedrec__engine_publish(e);
  e->round--, e->rounds_done--;
  if (failed) {
    if (saved) memcpy(e->model.pop, saved, (size_t)ni * sizeof *saved);
    fedrec__engine_seal_model(e, old, &err);
    fedrec__engine_stop(e, "%s", "the new model could not be persisted");
  }
  free(saved);
  return !failed;
}

/* A spectral round: the noisy co-occurrence sum over the most popular items becomes their free
 * embeddings (fedrec_spectral_embed, shrunk by the noise actually in the sum: every survivor's
 * share), every other item's free embedding is zeroed, and the optimiser starts again from
 * there. 0: training stopped (no memory, no decomposition, or the model not persisted). */
static int spectral_and_publish(fedrec_engine *e, uint32_t summed) {
  fedrec_error err = {0};
  int32_t M = (int32_t)e->c.spectral_items, d = e->model.d;
  const fedrec_ddp_params *p = &e->info.ddp;
  double noise = e->c.central ? fedrec_engine_kind_config(&e->c, FEDREC_ROUND_GRAM).noise_multiplier * e->c.clip
               : p->noise == FEDREC_NOISE_NONE ? 0
                                                : p->gamma * sqrt((double)summed * (double)p->sigma2_num / (double)p->sigma2_den);
  int32_t *top = malloc((size_t)M * sizeof *top), rank = 0;
  float *V = malloc((size_t)M * d * sizeof *V);
  size_t bytes = (size_t)e->dim * sizeof(float), ne = (size_t)e->model.n_free * d;
  float *saved = malloc(ne * sizeof *saved);
  int failed = !top || !V || !saved;
  for (int64_t i = 0; !failed && i < e->rdim; i++) e->avg[i] *= (float)summed; /* the sum, not the average */
  if (!failed) failed = fedrec_model_top_popular(top, &e->model, M, &err) || fedrec_spectral_embed(V, e->avg, M, d, noise, &rank, &err);
  if (!failed) {
    memcpy(saved, e->model.E, ne * sizeof *saved);
    memset(e->model.E, 0, ne * sizeof *e->model.E);
    for (int32_t a = 0; a < M; a++) /* an item the catalogue gained since has no free row: it keeps H c_i */
      if (e->model.free_row[top[a]] >= 0) memcpy(e->model.E + (size_t)e->model.free_row[top[a]] * d, V + (size_t)a * d, (size_t)d * sizeof *V);
    uint64_t old = e->version;
    e->round++, e->rounds_done++;
    failed = fedrec__engine_seal_model(e, old + 1, &err) || fedrec__engine_publish(e);
    e->round--, e->rounds_done--;
    if (failed) {
      memcpy(e->model.E, saved, ne * sizeof *saved);
      fedrec__engine_seal_model(e, old, &err);
    } else {
      fedrec_model_get_params(e->x, &e->model);
      memset(e->m1, 0, bytes), memset(e->m2, 0, bytes);
      e->stats.spectral_rank = (uint32_t)rank;
    }
  }
  free(top), free(V), free(saved);
  if (failed) fedrec__engine_stop(e, "spectral round: %s", err.msg[0] ? err.msg : "no memory, or the model could not be persisted");
  return !failed;
}

/* A published round: its statistics and survivors to the callback, then the next selection
 * (or the end, after max_rounds). */
static void round_published(fedrec_engine *e, uint64_t now, uint32_t summed, double eps, double norm) {
  e->stats.survivors = summed;
  e->stats.epsilon = eps;
  e->stats.update_norm = sqrt(norm);
  e->stats.phase_ms[FEDREC_PHASE_UNMASK] = now - e->phase_start;
  uint64_t *ids = malloc((size_t)e->n * sizeof *ids);
  uint32_t nid = 0;
  for (uint32_t i = 0; ids && i < e->n; i++)
    if (e->members[i].done >= (int)FEDREC_PHASE_MASKED) ids[nid++] = e->members[i].client;
  e->stats.clients = ids;
  e->stats.nclients = nid;
  if (e->cb.round_done) e->cb.round_done(e->cb.ctx, &e->stats);
  free(ids);
  e->stats.clients = NULL;
  e->stats.nclients = 0;
  if (e->c.tree_noise_multiplier > 0 && e->tree.leaf >= e->c.tree_rounds)
    fedrec__engine_tree_restart(e, e->round + 1); /* a full tree: the next round starts a new one */
  e->rounds_done++;
  e->round++;
  e->aborts = e->late_aborts = 0;
  fedrec__engine_new_selection(e);
  if (e->c.max_rounds && e->rounds_done >= e->c.max_rounds) {
    char what[32];
    snprintf(what, sizeof what, "%llu", (unsigned long long)e->rounds_done);
    fedrec__engine_stop(e, "all %s rounds done", what);
  }
}

/* DP-FTRL: the average update becomes the step of the tree's noisy prefix sum (1: done, or
 * no tree); 0: no memory or entropy for the node noise, and training stopped. */
static int tree_step(fedrec_engine *e) {
  fedrec_error err = {0};
  if (!(e->c.tree_noise_multiplier > 0) || !fedrec__engine_tree_step(e, e->round_leaf, e->round_tree_z, &err)) return 1;
  fedrec__engine_stop(e, "DP-FTRL: %s", err.msg);
  return 0;
}

/* The end of the unmasking phase: unmask, record, check, step, publish. */
static void finish_round(fedrec_engine *e, uint64_t now) {
  uint32_t summed;
  double eps, norm;
  int central = e->c.central && e->c.noise_multiplier > 0;
  if (!unmasked_sum(e, &summed) || !record_release(e, summed, central, &eps) || !average_update(e, summed, central, eps, &norm))
    return;
  if (e->info.kind == FEDREC_ROUND_COUNT  ? !count_and_publish(e, summed)
      : e->info.kind == FEDREC_ROUND_GRAM ? !spectral_and_publish(e, summed)
                                          : !tree_step(e) || !step_and_publish(e))
    return;
  round_published(e, now, summed, eps, norm);
}

/* Closes the current phase: drops who did not answer, then moves on. */
static void close_phase(fedrec_engine *e, uint64_t now) {
  fedrec_error err = {0};
  fedrec_phase ph = e->phase;
  uint32_t missed = 0, answered = 0;
  for (uint32_t i = 0; i < e->n; i++)
    if (e->members[i].done != DROPPED && e->members[i].done < (int)ph) {
      e->members[i].done = DROPPED;
      e->members[i].dropped_at = (int)ph;
      e->stats.dropped[ph]++;
      missed++;
    } else if (e->members[i].done != DROPPED) answered++;
  uint64_t took = now - e->phase_start;
  e->stats.phase_ms[ph] = took;
  /* Adaptive deadlines, per phase, within [phase_ms, max_phase_ms]: more devices missed this
   * deadline than the dropout rate the round was planned for, so the devices are slower
   * than it: the next round gets twice the time, here and in the phases after it. Otherwise
   * (no more missed than planned for): 4x the time the last answer took, but at most halved
   * per round and never below phase_ms, so that a few devices that never answer do not keep
   * the deadline where it once went. */
  int late = 0;
  uint64_t *dl = &e->phase_dl[ph];
  if (missed && (double)missed > e->c.dropout * (missed + answered)) {
    late = 1;
    *dl = *dl > e->c.max_phase_ms / 2 ? e->c.max_phase_ms : 2 * *dl;
    /* devices slow at one phase are slow at the next ones too: they get at least as long */
    for (int q = (int)ph + 1; q <= FEDREC_PHASE_UNMASK; q++)
      if (e->phase_dl[q] < *dl) e->phase_dl[q] = *dl;
  } else { /* down gently: at most halved per round */
    uint64_t last = missed ? (e->last_answer > e->phase_start ? e->last_answer - e->phase_start : took) : took;
    uint64_t want = 4 * (last ? last : 1);
    if (want < *dl / 2) want = *dl / 2;
    if (want < *dl) *dl = want < e->c.phase_ms ? e->c.phase_ms : want;
  }
  fedrec_status s = FEDREC_OK;
  if (ph == FEDREC_PHASE_MASKED) {
    /* the noise was planned for min_survivors inputs: with fewer, nothing may be unmasked
     * (nobody is asked for a share), so nothing is released */
    uint32_t inputs = 0;
    for (uint32_t i = 0; i < e->n; i++) inputs += e->members[i].done >= (int)FEDREC_PHASE_MASKED;
    if (inputs < e->c.min_survivors) {
      char why[160];
      snprintf(why, sizeof why, "%u masked inputs, fewer than the %u the noise was planned for: nothing unmasked",
               inputs, e->c.min_survivors);
      fedrec__engine_abort(e, why, late ? ABORT_LATE : ABORT_OTHER);
      return;
    }
    char why[160];
    if (fedrec__engine_bounded(e) && !fedrec__engine_count_participation(e, why, sizeof why)) {
      fedrec__engine_abort(e, why, ABORT_OTHER);
      return;
    }
  }
  fedrec_phase next = ph + 1;
  if (ph == FEDREC_PHASE_KEYS) s = fedrec_secagg_server_close_keys(e->sa, &err);
  else if (ph == FEDREC_PHASE_SHARES) s = fedrec_secagg_server_close_shares(e->sa, &err);
  else if (ph == FEDREC_PHASE_MASKED && !e->c.plain) {
    s = fedrec_secagg_server_close_masked(e->sa, &err);
    if (!e->info.secagg.active) { /* no consistency phase: the survivors answered it, as it were */
      next = FEDREC_PHASE_UNMASK;
      for (uint32_t i = 0; i < e->n; i++)
        if (e->members[i].done == (int)FEDREC_PHASE_MASKED) e->members[i].done = FEDREC_PHASE_CONSISTENCY;
    }
  } else if (ph == FEDREC_PHASE_CONSISTENCY) s = fedrec_secagg_server_close_consistency(e->sa, &err);
  else {
    finish_round(e, now);
    return;
  }
  if (s) {
    char why[sizeof err.msg + 96];
    if (late) snprintf(why, sizeof why, "%s (%u of %u devices missed the %s deadline)", err.msg, missed, missed + answered,
                       fedrec_phase_name(ph));
    else snprintf(why, sizeof why, "%s", err.msg);
    fedrec__engine_abort(e, why, late ? ABORT_LATE : ABORT_OTHER);
    return;
  }
  e->phase = next;
  e->phase_start = now;
  e->deadline = now + e->phase_dl[next];
}

void fedrec_engine_tick(fedrec_engine *e, uint64_t now) {
  for (int guard = 0; guard < 8; guard++) {
    if (e->phase == FEDREC_PHASE_STOPPED) return;
    if (e->phase == FEDREC_PHASE_SELECTING) {
      if (!e->deadline || now < e->deadline) return;
      if (e->c.sampling_rate > 0) {
        /* Poisson: the coins are spent. Too few or too many sampled: the round does not run
         * (nothing was asked of anyone, nothing is released) and the next one draws anew */
        char why[192];
        if (e->overflow)
          snprintf(why, sizeof why, "more than %u devices sampled (the cohort cap): raise cohort or lower sampling-rate", e->cap);
        else snprintf(why, sizeof why, "%u devices sampled, fewer than min-cohort %u", e->n, e->c.min_cohort);
        if (e->overflow || e->n < e->c.min_cohort) fedrec__engine_abort(e, why, ABORT_OTHER);
        else fedrec__engine_start_round(e, now);
      } else if (e->n >= e->c.min_cohort) {
        fedrec__engine_start_round(e, now);
      } else if (e->n && now - e->last_join < e->c.selection_ms) {
        e->deadline = e->last_join + e->c.selection_ms; /* devices are still arriving: wait */
      } else {
        /* the cohort did not fill, and no device joined for a whole window: the devices
         * accepted are released (they learn why and come back) rather than held for ever;
         * the next window opens at the next check-in */
        e->stats.released = 1;
        char why[192];
        snprintf(why, sizeof why, "selection: %u device%s checked in, none more for %llu ms, min-cohort is %u: released, "
                 "come back later", e->n, e->n == 1 ? "" : "s", (unsigned long long)e->c.selection_ms, e->c.min_cohort);
        fedrec__engine_abort(e, why, ABORT_OTHER);
      }
      return;
    }
    int all = 1;
    for (uint32_t i = 0; i < e->n && all; i++)
      if (e->members[i].done != DROPPED && e->members[i].done < (int)e->phase) all = 0;
    if (!all && now < e->deadline) return;
    close_phase(e, now);
  }
}
