/* What a device asks of the engine: to check in, its round info, to take its SecAgg
 * submission, and the input of the next phase (sums of inputs: engine_aggregators.c). Every
 * call is checked against the round, the phase and the member's own state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/internal/sim.h"
#include "fedrec/accountant.h"
#include "fedrec/enrol.h"
#include "engine_internal.h"

fedrec_status fedrec_engine_checkin(fedrec_engine *e, uint64_t client, uint64_t now,
                                    int *accepted, uint64_t *round, uint32_t *retry_ms,
                                    fedrec_error *err) {
  return fedrec_engine_checkin_cert(e, client, NULL, 0, now, accepted, round, retry_ms, err);
}

/* Active variant: the certificate a device that is about to join presents, checked against
 * the authority and the client id its token gave; kept by member index. */
static fedrec_status join_identity(fedrec_engine *e, uint64_t client, const uint8_t *cert, size_t len, fedrec_error *err) {
  if (!cert || !len)
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "this coordinator runs the active secure-aggregation variant: a device "
                            "joins rounds only with a certificate from the enrolment authority (fedrec-client enrol)");
  uint64_t id;
  fedrec_error e2 = {0};
  if (fedrec_cert_check(cert, len, e->c.authority_pk, &id, e->ipks[e->n], &e2))
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "%s", e2.msg);
  if (id != client)
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "the device certificate is for client %llu, the token for client %llu",
                            (unsigned long long)id, (unsigned long long)client);
  /* one identity key at two cohort indices would make every honest member refuse the round
   * (fedrec_cert_cohort): an authority that certified one key for two tokens gets one seat */
  for (uint32_t i = 0; i < e->n; i++)
    if (!memcmp(e->ipks[i], e->ipks[e->n], FEDREC_SIGN_PK_BYTES))
      return fedrec_error_set(err, FEDREC_ERR_AUTH, "this identity key is already in the cohort under client %llu",
                              (unsigned long long)e->members[i].client);
  memcpy(e->certs + (size_t)e->n * FEDREC_CERT_BYTES, cert, FEDREC_CERT_BYTES);
  return FEDREC_OK;
}

fedrec_status fedrec_engine_checkin_cert(fedrec_engine *e, uint64_t client, const uint8_t *cert, size_t len,
                                         uint64_t now, int *accepted, uint64_t *round, uint32_t *retry_ms,
                                         fedrec_error *err) {
  *accepted = 0;
  *round = e->round;
  *retry_ms = fedrec__engine_jitter(e, e->c.retry_ms);
  if (fedrec_engine_banned(e, client))
    return fedrec_error_set(err, FEDREC_ERR_STATE, "left out: this device sent a secure-aggregation message that no honest client sends");
  if (e->phase != FEDREC_PHASE_SELECTING) {
    if (e->phase != FEDREC_PHASE_STOPPED && fedrec__engine_find(e, client, NULL)) *accepted = 1; /* already in */
    return FEDREC_OK;
  }
  if (fedrec__engine_find(e, client, NULL)) {
    *accepted = 1;
    return FEDREC_OK;
  }
  if (fedrec__engine_bounded(e) && !fedrec__engine_may_join(e, client)) return FEDREC_OK; /* spent, or too soon */
  if (!e->deadline) e->deadline = now + e->c.selection_ms; /* the window opens */
  if (e->c.sampling_rate > 0) {
    /* Poisson sampling: every device whose coin says yes, none other, no cap. The round
     * starts when the window closes; a cohort past the cap cannot run (see fedrec_engine_tick) */
    if (!fedrec__engine_coin(e, client)) return FEDREC_OK;
    if (e->n == e->cap) {
      e->overflow = 1;
      return FEDREC_OK;
    }
    fedrec_status s = e->c.active ? join_identity(e, client, cert, len, err) : FEDREC_OK;
    if (s) return s;
    fedrec__engine_add_member(e, client);
    *accepted = 1;
    return FEDREC_OK;
  }
  fedrec_status s = e->c.active ? join_identity(e, client, cert, len, err) : FEDREC_OK;
  if (s) return s;
  fedrec__engine_add_member(e, client);
  *accepted = 1;
  e->last_join = now;
  if (e->n == e->cap) fedrec__engine_start_round(e, now);
  return FEDREC_OK;
}

/* Why client cannot go on with round: the most specific reason the engine knows. */
static fedrec_status left_out(const fedrec_engine *e, const member *m, uint64_t round, fedrec_error *err) {
  unsigned long long r = (unsigned long long)round;
  if (m && m->done == DROPPED && m->dropped_at == BANNED_AT)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: left out: this device sent a message no honest client sends", r);
  if (m && m->done == DROPPED)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: dropped: the %s deadline passed before this device answered",
                            r, fedrec_phase_name((fedrec_phase)m->dropped_at));
  if (e->aborted_round && round == e->aborted_round - 1)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu aborted: %s", r, e->aborted_why);
  if (e->phase == FEDREC_PHASE_STOPPED)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: training stopped: %s", r, e->stop);
  return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: this device is not in the current round (%llu)", r,
                          (unsigned long long)e->round);
}

fedrec_status fedrec_engine_round_info(fedrec_engine *e, uint64_t client, uint64_t round,
                                       uint64_t now, fedrec_round_info *out, uint32_t *retry_ms,
                                       fedrec_error *err) {
  (void)now;
  uint32_t idx;
  member *m = round == e->round ? fedrec__engine_find(e, client, &idx) : NULL;
  *retry_ms = 0;
  if (!m || e->phase == FEDREC_PHASE_STOPPED || m->done == DROPPED) return left_out(e, m, round, err);
  if (e->phase == FEDREC_PHASE_SELECTING) {
    *retry_ms = fedrec__engine_jitter(e, 200);
    return FEDREC_OK;
  }
  *out = e->info;
  out->cohort_index = idx;
  if (e->c.sum_noise && e->info.ddp.noise == FEDREC_NOISE_SKELLAM)
    out->ddp.noise = FEDREC_NOISE_NONE; /* the engine draws the sum's noise itself */
  out->deadline_ms = e->deadline;
  out->aggregator = m->agg;
  if (m->agg) memcpy(out->ticket, e->tickets + (size_t)idx * FEDREC_TICKET_BYTES, FEDREC_TICKET_BYTES);
  return FEDREC_OK;
}

static const int WANT[FEDREC_PHASES] = {
    [FEDREC_PHASE_KEYS] = FEDREC_SA_MSG_KEYS,          [FEDREC_PHASE_SHARES] = FEDREC_SA_MSG_BOXES,
    [FEDREC_PHASE_MASKED] = FEDREC_SA_MSG_MASKED,      [FEDREC_PHASE_CONSISTENCY] = FEDREC_SA_MSG_SIGNATURE,
    [FEDREC_PHASE_UNMASK] = FEDREC_SA_MSG_REVEALS};

fedrec_status fedrec_engine_submit(fedrec_engine *e, uint64_t client, uint64_t round,
                                   fedrec_phase phase, const uint8_t *msg, size_t len,
                                   uint64_t now, fedrec_error *err) {
  uint32_t idx;
  member *m = round == e->round && e->phase != FEDREC_PHASE_SELECTING ? fedrec__engine_find(e, client, &idx) : NULL;
  if (!m || m->done == DROPPED) return left_out(e, m, round, err);
  if (phase != e->phase || phase < FEDREC_PHASE_KEYS || phase > FEDREC_PHASE_UNMASK)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu is in phase %s, not %s", (unsigned long long)round,
                            fedrec_phase_name(e->phase), fedrec_phase_name(phase));
  if (m->done >= (int)phase)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: %s already received from this client (replay)",
                            (unsigned long long)round, fedrec_phase_name(phase));
  if (m->done != (int)phase - 1)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: client skipped a phase", (unsigned long long)round);
  if (phase == FEDREC_PHASE_MASKED && m->agg)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: this device's masked input goes to its aggregator (%u), not here",
                            (unsigned long long)round, m->agg);
  fedrec_sa_msg sm;
  fedrec_status s = fedrec_sa_decode(&sm, msg, len, e->n, e->info.secagg.dim, err);
  if (s) {
    if (s == FEDREC_ERR_PARSE || s == FEDREC_ERR_LIMIT) fedrec__engine_ban(e, m);
    return s;
  }
  uint32_t id = sm.type == FEDREC_SA_MSG_KEYS ? sm.u.keys.id : sm.type == FEDREC_SA_MSG_MASKED ? sm.u.masked.id
              : sm.type == FEDREC_SA_MSG_REVEALS ? sm.u.reveals.id : sm.type == FEDREC_SA_MSG_SIGNATURE ? sm.u.signature.id : idx;
  if (sm.type != WANT[phase])
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "phase %s: unexpected message type %d", fedrec_phase_name(phase), sm.type);
  else if (id != idx)
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "message names cohort member %u, the sender is %u", id, idx);
  else if (phase == FEDREC_PHASE_MASKED && sm.bits != e->info.secagg.bits)
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "masked input at %u bits, the round uses %u", sm.bits, e->info.secagg.bits);
  else if (phase == FEDREC_PHASE_KEYS) s = fedrec_secagg_server_on_keys(e->sa, &sm.u.keys, err);
  else if (phase == FEDREC_PHASE_SHARES) s = fedrec_secagg_server_on_boxes(e->sa, idx, &sm.u.boxes, err);
  else if (phase == FEDREC_PHASE_MASKED && e->c.plain) {
    uint32_t mask = e->info.secagg.bits >= 32 ? 0xffffffffu : (1u << e->info.secagg.bits) - 1;
    if (sm.u.masked.dim != e->info.secagg.dim)
      s = fedrec_error_set(err, FEDREC_ERR_ARG, "input of %u values, the round uses %u", sm.u.masked.dim, e->info.secagg.dim);
    for (uint32_t k = 0; !s && k < sm.u.masked.dim; k++) e->modsum[k] = (e->modsum[k] + sm.u.masked.y[k]) & mask;
  } else if (phase == FEDREC_PHASE_MASKED) s = fedrec_secagg_server_on_masked(e->sa, &sm.u.masked, err);
  else if (phase == FEDREC_PHASE_CONSISTENCY) s = fedrec_secagg_server_on_signature(e->sa, &sm.u.signature, err);
  else s = fedrec_secagg_server_on_reveals(e->sa, &sm.u.reveals, err);
  fedrec_sa_msg_free(&sm);
  if (s) {
    /* a malformed message, or one the secure-aggregation server refused (bad keys, boxes
     * to anyone but its neighbours, indices past the cohort, ...): no honest client sends it */
    if (s == FEDREC_ERR_PARSE || s == FEDREC_ERR_ARG) fedrec__engine_ban(e, m);
    return s;
  }
  m->done = (int)phase;
  e->stats.bytes_in += len;
  e->last_answer = now;
  fedrec_engine_tick(e, now);
  return FEDREC_OK;
}

fedrec_status fedrec_engine_fetch(fedrec_engine *e, uint64_t client, uint64_t round,
                                  fedrec_phase phase, uint64_t now, uint8_t **out, size_t *len,
                                  uint32_t *retry_ms, fedrec_error *err) {
  (void)now;
  *out = NULL;
  *len = 0;
  *retry_ms = 0;
  uint32_t idx;
  member *m = round == e->round && e->phase != FEDREC_PHASE_SELECTING ? fedrec__engine_find(e, client, &idx) : NULL;
  if (!m || m->done == DROPPED) return left_out(e, m, round, err);
  if (phase < FEDREC_PHASE_SHARES || phase > FEDREC_PHASE_UNMASK)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "phase %s has no input to fetch", fedrec_phase_name(phase));
  if (e->phase < phase) { /* not open yet */
    *retry_ms = fedrec__engine_jitter(e, 100);
    return FEDREC_OK;
  }
  if (e->phase > phase)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: phase %s is over", (unsigned long long)round, fedrec_phase_name(phase));
  fedrec_status s;
  size_t n = 0;
  uint8_t *buf = NULL;
  if (phase == FEDREC_PHASE_SHARES) {
    fedrec_sa_keylist kl;
    if ((s = fedrec_secagg_server_keylist(e->sa, idx, &kl, err))) return s;
    n = fedrec_sa_encode_keylist(NULL, 0, &kl);
    if ((buf = malloc(n))) fedrec_sa_encode_keylist(buf, n, &kl);
  } else if (phase == FEDREC_PHASE_MASKED) {
    fedrec_sa_boxes bx;
    if ((s = fedrec_secagg_server_inbox(e->sa, idx, &bx, err))) return s;
    n = fedrec_sa_encode_boxes(NULL, 0, &bx);
    if ((buf = malloc(n))) fedrec_sa_encode_boxes(buf, n, &bx);
  } else {
    fedrec_sa_survivors sv;
    if ((s = fedrec_secagg_server_survivors(e->sa, &sv, err))) return s;
    n = fedrec_sa_encode_survivors(NULL, 0, &sv);
    if ((buf = malloc(n))) fedrec_sa_encode_survivors(buf, n, &sv);
  }
  if (!buf) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: %zu-byte message", n);
  *out = buf;
  *len = n;
  return FEDREC_OK;
}
