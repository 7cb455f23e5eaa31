/* The round engine and the participant, in one process with no transport: whole rounds of
 * federated training with secure aggregation and distributed DP on synthetic data, dropouts
 * at every phase, the ledger verified, Recall@20 on held-out users improving; and every
 * out-of-place request refused without changing anything. */
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "fedrec/internal/sim.h"
#include "fedrec/engine.h"
#include "fedrec/enrol.h"
#include "fedrec/eval.h"
#include "fedrec/participant.h"
#include "fedrec/synth.h"
#include "fedrec/train.h"
#include "test_util.h"

typedef struct world {
  fedrec_dataset ds;
  fedrec_split split;
  fedrec_identity id;
  fedrec_ledger *ledger;
  char ledger_path[128];
  fedrec_engine *e;
  uint64_t now;
  int published, aborted, released;
  char last_reason[640]; /* why the last aborted round aborted */
  uint64_t last_version;
  int refuse_participation; /* on_participated fails */
  uint64_t participated_round;
  uint32_t participated_n;
  int active; /* the engine runs the active secure-aggregation variant */
  fedrec_round_kind last_kind; /* of the last finished round */
  uint32_t last_rank;          /* a spectral round's rank */
} world;

static int on_publish(void *ctx, const fedrec_published *m) {
  world *w = ctx;
  w->published++;
  w->last_version = m->version;
  return 0;
}

static void on_round(void *ctx, const fedrec_round_stats *s) {
  world *w = ctx;
  if (s->aborted) w->aborted++, snprintf(w->last_reason, sizeof w->last_reason, "%s", s->reason);
  w->released += s->released;
  w->last_kind = s->kind, w->last_rank = s->spectral_rank;
  print_message("round %llu: cohort %u, survivors %u, dropped keys/shares/masked/unmask %u/%u/%u/%u, "
                "epsilon %.4f, |update| %.4g, %llu bytes in%s%s\n",
                (unsigned long long)s->round, s->cohort, s->survivors, s->dropped[1], s->dropped[2], s->dropped[3],
                s->dropped[4], s->epsilon, s->update_norm, (unsigned long long)s->bytes_in,
                s->aborted ? ", aborted: " : "", s->aborted ? s->reason : "");
}

static fedrec_entropy *g_engine_ent; /* the engine's randomness in world_init (NULL: the CSPRNG) */
static uint32_t g_ledger_bound;      /* world_init: the ledger's participation bound */
static int g_head_only;              /* world_init: no free embeddings (else every item has one) */
static fedrec_identity g_authority;  /* run_round with an active engine: the enrolment authority */

/* A test device's identity (from its id) and, given cert, the authority's certificate of it. */
static void device_identity(fedrec_identity *id, uint64_t client, uint8_t *cert) {
  uint8_t seed[32] = {0x42};
  memcpy(seed + 8, &client, 8);
  assert_status(fedrec_identity_from_seed(id, seed), FEDREC_OK);
  if (cert) fedrec_cert_issue(cert, client, id->pk, &g_authority);
}
static uint32_t g_sum_from;          /* run_round: members from this index on send their masked
                                      * inputs as one sum (fedrec_engine_submit_sum); 0: none */
static uint32_t g_aggs;              /* run_round: aggregators (all live) that take the masked inputs */
static uint32_t g_lost_agg;          /* run_round: this aggregator's sum never comes (0: none) */
static int g_refuse_one;             /* run_round: aggregator 1 reports its first input as malformed */
static int32_t g_modalities;         /* world_init: the synthetic catalogue's modalities (0: one source) */

static void world_init(world *w, const fedrec_engine_config *c, double budget) {
  memset(w, 0, sizeof *w);
  g_aggs = g_lost_agg = 0, g_refuse_one = 0; /* run_round's aggregators: none unless a test says (after this) */
  fedrec_error err = {0};
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  sc.users = 1500, sc.items = 300, sc.content_dim = 16, sc.median_len = 20, sc.seed = 7, sc.threads = 1;
  if (g_modalities) sc.content_dim = 8, sc.modalities = g_modalities;
  assert_status(fedrec_synth_generate(&w->ds, &sc, &err), FEDREC_OK);
  fedrec_split_config spc;
  fedrec_split_defaults(&spc);
  spc.seed = 3;
  assert_status(fedrec_split_users(&w->split, &w->ds, &spc, &err), FEDREC_OK);
  uint8_t seed[32] = {42};
  assert_status(fedrec_identity_from_seed(&w->id, seed), FEDREC_OK);
  snprintf(w->ledger_path, sizeof w->ledger_path, "/tmp/fedrec_engine_%d.db", (int)getpid());
  unlink(w->ledger_path);
  fedrec_ledger_terms lt = {.delta = 1e-5, .budget = budget, .max_participation = g_ledger_bound};
  assert_status(fedrec_ledger_create_with(&w->ledger, w->ledger_path, &lt, &w->id, &err), FEDREC_OK);
  fedrec_model m;
  int32_t ni = w->ds.R.cols, *all = malloc((size_t)ni * sizeof *all);
  for (int32_t i = 0; i < ni; i++) all[i] = i;
  assert_status(fedrec_model_init(&m, ni, 8, w->ds.content, w->ds.content_dim, 1, all, g_head_only ? 0 : ni, 5, 0.1f, &err), FEDREC_OK);
  assert_status(fedrec_model_set_modalities(&m, &w->ds, &err), FEDREC_OK);
  free(all);
  fedrec_engine_callbacks cb = {w, on_publish, on_round, NULL};
  w->now = 1000;
  w->active = c->active;
  if (fedrec_engine_new(&w->e, c, &m, 1, &w->id, w->ledger, &cb, g_engine_ent, &err)) fail_msg("engine: %s", err.msg);
  assert_int_equal(w->published, 1);
}

static void world_free(world *w) {
  fedrec_engine_free(w->e);
  fedrec_ledger_close(w->ledger);
  fedrec_identity_free(&w->id);
  fedrec_split_free(&w->split);
  fedrec_dataset_free(&w->ds);
  unlink(w->ledger_path);
  char p[160];
  snprintf(p, sizeof p, "%s-wal", w->ledger_path), unlink(p);
  snprintf(p, sizeof p, "%s-shm", w->ledger_path), unlink(p);
}

static double recall(world *w) {
  const fedrec_model *m = fedrec_engine_current_model(w->e);
  int32_t ni = m->n_items, d = fedrec_model_vdim(m);
  float *V = malloc((size_t)ni * d * sizeof *V), *G = malloc((size_t)d * d * sizeof *G);
  fedrec_model_item_vectors(V, m);
  fedrec_gramian(G, V, ni, d);
  fedrec_mf_scorer mf = {V, G, ni, d, 0.3f, 0.003f};
  fedrec_scorer sc = fedrec_mf_scorer_make(&mf);
  fedrec_eval_config ec = {.k = 20, .threads = 1};
  fedrec_metrics out;
  fedrec_error err = {0};
  assert_status(fedrec_evaluate(&out, &sc, &w->split.foldin, &w->split.holdout, &ec, &err), FEDREC_OK);
  free(V), free(G);
  return out.recall;
}

/* The aggregators' sums in run_round (g_aggs): per aggregator, the masked inputs added up and
 * their senders. */
typedef struct agg_sums {
  uint32_t *sum[4], dim, bits, n[4];
  uint64_t ids[4][64], bytes[4];
} agg_sums;

static void agg_collect(agg_sums *a, uint32_t agg, uint64_t client, const uint8_t *msg, size_t len, uint32_t cohort) {
  fedrec_error err = {0};
  fedrec_sa_msg mm;
  assert_true(agg >= 1 && agg <= 4);
  assert_status(fedrec_sa_decode(&mm, msg, len, cohort, 1u << 24, &err), FEDREC_OK);
  uint32_t k = agg - 1;
  if (!a->sum[k]) a->sum[k] = calloc(mm.u.masked.dim, sizeof *a->sum[k]), a->dim = mm.u.masked.dim, a->bits = mm.bits;
  uint32_t lim = a->bits >= 32 ? 0xffffffffu : (1u << a->bits) - 1;
  int refuse = g_refuse_one && k == 0 && a->n[0] == 0 && !a->bytes[0]; /* the first: refused, not added */
  for (uint32_t j = 0; j < a->dim && !refuse; j++) a->sum[k][j] = (a->sum[k][j] + mm.u.masked.y[j]) & lim;
  fedrec_sa_msg_free(&mm);
  if (refuse) a->bytes[0] = 1, a->ids[0][63] = client;
  else a->ids[k][a->n[k]++] = client, a->bytes[k] += len;
}

/* Each aggregator's assignment checked against what its members were told, a sum from the
 * wrong aggregator refused, then every sum but the lost one's submitted. */
static void agg_submit(world *w, agg_sums *a, uint64_t round, const uint64_t *clients, const uint32_t *agg_of,
                       const uint8_t *tickets, uint32_t cohort) {
  fedrec_error err = {0};
  for (uint32_t k = 1; k <= g_aggs; k++) {
    fedrec_assignment as;
    assert_status(fedrec_engine_assignment(w->e, k, &as, &err), FEDREC_OK);
    if (!(as.open && as.round == round && as.cohort == cohort))
      fail_msg("assignment %u: open %d, round %llu (%llu), cohort %u (%u), n %u", k, as.open, (unsigned long long)as.round, (unsigned long long)round, as.cohort, cohort, as.n);
    for (uint32_t j = 0; j < as.n; j++) {
      uint32_t i = as.index[j];
      assert_true(i < cohort && agg_of[i] == k && as.clients[j] == clients[i]);
      assert_memory_equal(as.tickets + (size_t)j * FEDREC_TICKET_BYTES, tickets + (size_t)i * FEDREC_TICKET_BYTES, FEDREC_TICKET_BYTES);
    }
    fedrec_assignment_free(&as);
  }
  assert_status(fedrec_engine_assignment(w->e, g_aggs + 1, &(fedrec_assignment){0}, &err), FEDREC_ERR_ARG);
  if (g_aggs >= 2 && a->n[0]) { /* aggregator 1's members in aggregator 2's sum: refused whole */
    assert_status(fedrec_engine_submit_aggregate(w->e, 2, round, a->ids[0], a->n[0], a->sum[0], a->dim, a->bytes[0], NULL, 0,
                                                 w->now, &err), FEDREC_ERR_STATE);
    assert_non_null(strstr(err.msg, "not assigned"));
  }
  for (uint32_t k = 0; k < g_aggs; k++) {
    int refused = g_refuse_one && k == 0 && a->ids[0][63];
    if (k + 1 != g_lost_agg && (a->n[k] || refused) &&
        fedrec_engine_submit_aggregate(w->e, k + 1, round, a->ids[k], a->n[k], a->sum[k], a->dim, a->bytes[k],
                                       refused ? &a->ids[0][63] : NULL, refused, w->now, &err))
      fail_msg("aggregate %u: %s", k + 1, err.msg);
    if (refused) assert_true(fedrec_engine_banned(w->e, a->ids[0][63]));
    free(a->sum[k]);
  }
}

/* One round: `cohort` training users check in; drop[p] of them go silent at phase p.
 * Returns 0 when the engine stopped instead of starting the round. */
static int run_round(world *w, uint32_t cohort, const uint32_t drop[FEDREC_PHASES], uint64_t *user_cursor) {
  fedrec_error err = {0};
  const fedrec_csr *R = &w->split.train;
  uint64_t *clients = malloc(cohort * sizeof *clients);
  fedrec_participant **part = calloc(cohort, sizeof *part);
  fedrec_identity *ids = calloc(cohort, sizeof *ids);
  int active = w->active;
  uint64_t round = 0;
  uint8_t live[FEDREC_MAX_AGGREGATORS];
  memset(live, 1, sizeof live);
  fedrec_engine_set_aggregators(w->e, g_aggs, live);
  uint32_t *agg_of = calloc(cohort, sizeof *agg_of);
  uint8_t *tickets = calloc(cohort, FEDREC_TICKET_BYTES);
  for (uint32_t i = 0; i < cohort; i++) {
    int acc;
    uint32_t retry;
    for (;;) { /* a user with some history */
      uint64_t u = (*user_cursor)++ % (uint64_t)R->rows;
      if (R->indptr[u + 1] - R->indptr[u] >= 2) {
        clients[i] = u;
        break;
      }
    }
    uint8_t cert[FEDREC_CERT_BYTES];
    if (active) device_identity(&ids[i], clients[i], cert);
    assert_status(fedrec_engine_checkin_cert(w->e, clients[i], active ? cert : NULL, active ? sizeof cert : 0, w->now, &acc,
                                             &round, &retry, &err), FEDREC_OK);
    assert_true(acc);
  }
  if (fedrec_engine_phase(w->e) == FEDREC_PHASE_STOPPED) {
    for (uint32_t i = 0; i < cohort; i++) fedrec_identity_free(&ids[i]);
    free(part), free(clients), free(ids), free(agg_of), free(tickets);
    return 0;
  }
  assert_int_equal(fedrec_engine_phase(w->e), FEDREC_PHASE_KEYS);
  fedrec_published pub;
  fedrec_engine_model(w->e, &pub);
  /* every client verifies and decodes the published model */
  fedrec_model m;
  assert_int_equal(FEDREC_OK, fedrec_model_verify(pub.blob, pub.len, pub.version, pub.hash, pub.ledger_entries, pub.ledger_head, pub.has_catalogue ? &pub.catalogue : NULL, pub.sig, w->id.pk));
  /* the signature covers the ledger head: another head does not verify */
  uint8_t other[32];
  memcpy(other, pub.ledger_head, 32);
  other[0] ^= 1;
  assert_int_equal(FEDREC_ERR_PARSE, fedrec_model_verify(pub.blob, pub.len, pub.version, pub.hash, pub.ledger_entries, other, pub.has_catalogue ? &pub.catalogue : NULL, pub.sig, w->id.pk));
  assert_int_equal(FEDREC_ERR_PARSE, fedrec_model_verify(pub.blob, pub.len, pub.version, pub.hash, pub.ledger_entries + 1, pub.ledger_head, pub.has_catalogue ? &pub.catalogue : NULL, pub.sig, w->id.pk));
  assert_status(fedrec_model_decode(&m, NULL, pub.blob, pub.len, w->ds.content, w->ds.content_dim, &err), FEDREC_OK);
  agg_sums aggs = {0};
  uint32_t alive = cohort, nb = 0, bdim = 0, bbits = 0;
  uint64_t *bids = malloc((cohort + 1) * sizeof *bids), bbytes = 0, single = 0;
  uint32_t *bsum = NULL;
  for (fedrec_phase ph = FEDREC_PHASE_KEYS; ph <= FEDREC_PHASE_UNMASK; ph++) {
    if (ph == FEDREC_PHASE_CONSISTENCY && !active) continue;
    uint32_t silent = drop[ph], dropped_now = 0;
    for (uint32_t i = 0; i < cohort; i++) {
      if (!part[i] && ph != FEDREC_PHASE_KEYS) continue;
      if (dropped_now < silent) { /* this one goes silent from now on */
        dropped_now++;
        fedrec_participant_free(part[i]);
        part[i] = NULL;
        continue;
      }
      uint8_t *in = NULL, *out = NULL;
      size_t inlen = 0, outlen = 0;
      uint32_t retry;
      if (ph == FEDREC_PHASE_KEYS) {
        fedrec_round_info info;
        assert_status(fedrec_engine_round_info(w->e, clients[i], round, w->now, &info, &retry, &err), FEDREC_OK);
        assert_int_equal(retry, 0);
        agg_of[i] = info.aggregator;
        memcpy(tickets + (size_t)i * FEDREC_TICKET_BYTES, info.ticket, FEDREC_TICKET_BYTES);
        if (g_aggs) assert_int_equal(info.aggregator, i % g_aggs + 1); /* in turn, by cohort index */
        int32_t u = (int32_t)clients[i];
        int64_t a = R->indptr[u], b = R->indptr[u + 1];
        if (fedrec_participant_new(&part[i], &info, &m, R->indices + a, R->values + a, (int32_t)(b - a), g_engine_ent, &err))
          fail_msg("participant: %s", err.msg);
        if (active) assert_status(fedrec_participant_set_identity(part[i], &ids[i], g_authority.pk, &err), FEDREC_OK);
        if (fedrec_participant_keys(part[i], &out, &outlen, &err)) fail_msg("keys: %s", err.msg);
      } else {
        if (fedrec_engine_fetch(w->e, clients[i], round, ph, w->now, &in, &inlen, &retry, &err))
          fail_msg("fetch %s: %s", fedrec_phase_name(ph), err.msg);
        assert_non_null(in);
        fedrec_status s = ph == FEDREC_PHASE_SHARES   ? fedrec_participant_shares(part[i], in, inlen, &out, &outlen, &err)
                          : ph == FEDREC_PHASE_MASKED ? fedrec_participant_masked(part[i], in, inlen, &out, &outlen, &err)
                          : ph == FEDREC_PHASE_CONSISTENCY ? fedrec_participant_consistency(part[i], in, inlen, &out, &outlen, &err)
                                                      : fedrec_participant_unmask(part[i], in, inlen, &out, &outlen, &err);
        if (s) fail_msg("participant %s: %s", fedrec_phase_name(ph), err.msg);
      }
      if (ph == FEDREC_PHASE_MASKED && g_aggs) { /* to its aggregator; never accepted here */
        assert_status(fedrec_engine_submit(w->e, clients[i], round, ph, out, outlen, w->now, &err), FEDREC_ERR_STATE);
        assert_non_null(strstr(err.msg, "aggregator"));
        agg_collect(&aggs, agg_of[i], clients[i], out, outlen, cohort);
        free(in), free(out);
        continue;
      }
      if (ph == FEDREC_PHASE_MASKED && g_sum_from && i >= g_sum_from) { /* into the batch sum */
        fedrec_sa_msg mm;
        assert_status(fedrec_sa_decode(&mm, out, outlen, cohort, 1u << 24, &err), FEDREC_OK);
        if (!bsum) bsum = calloc(mm.u.masked.dim, sizeof *bsum), bdim = mm.u.masked.dim, bbits = mm.bits;
        uint32_t lim = bbits >= 32 ? 0xffffffffu : (1u << bbits) - 1;
        for (uint32_t k = 0; k < bdim; k++) bsum[k] = (bsum[k] + mm.u.masked.y[k]) & lim;
        fedrec_sa_msg_free(&mm);
        bids[nb++] = clients[i], bbytes += outlen;
        free(in), free(out);
        continue;
      }
      if (fedrec_engine_submit(w->e, clients[i], round, ph, out, outlen, w->now, &err))
        fail_msg("submit %s: %s", fedrec_phase_name(ph), err.msg);
      single = clients[i];
      /* a replay of the same message is refused and changes nothing */
      if (i == cohort - 1 && ph != FEDREC_PHASE_UNMASK && fedrec_engine_phase(w->e) == ph && !(g_sum_from && ph == FEDREC_PHASE_MASKED)) {
        assert_status(fedrec_engine_submit(w->e, clients[i], round, ph, out, outlen, w->now, &err), FEDREC_ERR_STATE);
        assert_non_null(strstr(err.msg, "replay"));
      }
      free(in), free(out);
    }
    if (nb) {
      /* refused as a whole, changing nothing: a member named twice, one that already sent,
       * the wrong length */
      bids[nb] = bids[0];
      assert_status(fedrec_engine_submit_sum(w->e, round, bids, nb + 1, bsum, bdim, bbytes, w->now, &err), FEDREC_ERR_STATE);
      assert_non_null(strstr(err.msg, "named twice"));
      bids[nb] = single; /* sent on its own above */
      assert_status(fedrec_engine_submit_sum(w->e, round, bids, nb + 1, bsum, bdim, bbytes, w->now, &err), FEDREC_ERR_STATE);
      assert_non_null(strstr(err.msg, "already sent"));
      assert_status(fedrec_engine_submit_sum(w->e, round, bids, nb, bsum, bdim - 1, bbytes, w->now, &err), FEDREC_ERR_ARG);
      if (fedrec_engine_submit_sum(w->e, round, bids, nb, bsum, bdim, bbytes, w->now, &err)) fail_msg("submit_sum: %s", err.msg);
      free(bsum);
      bsum = NULL, nb = 0, bbytes = 0;
    }
    if (ph == FEDREC_PHASE_MASKED && g_aggs) {
      agg_submit(w, &aggs, round, clients, agg_of, tickets, cohort);
      for (uint32_t i = 0; i < cohort; i++) /* the lost aggregator's members, and the refused one, are out */
        if (part[i] && ((g_lost_agg && agg_of[i] == g_lost_agg) || fedrec_engine_banned(w->e, clients[i]))) {
          fedrec_participant_free(part[i]);
          part[i] = NULL;
        }
    }
    alive -= dropped_now;
    if (silent || (ph == FEDREC_PHASE_MASKED && g_lost_agg)) { /* the silent ones hold the phase open until its deadline */
      assert_int_equal(fedrec_engine_phase(w->e), ph);
      w->now = fedrec_engine_deadline(w->e);
      fedrec_engine_tick(w->e, w->now);
    }
    w->now += 10;
    if (fedrec_engine_phase(w->e) == FEDREC_PHASE_SELECTING && ph < FEDREC_PHASE_UNMASK) break; /* aborted */
  }
  for (uint32_t i = 0; i < cohort; i++) fedrec_participant_free(part[i]), fedrec_identity_free(&ids[i]);
  free(part), free(clients), free(bids), free(ids), free(agg_of), free(tickets);
  fedrec_model_free(&m);
  (void)alive;
  return 1;
}

/* Ends the engine, closes the ledger, verifies it independently and returns its entries. */
static uint64_t closed_ledger_entries(world *w) {
  fedrec_ledger_summary s;
  fedrec_error err = {0};
  fedrec_engine_free(w->e);
  w->e = NULL;
  fedrec_ledger_close(w->ledger);
  w->ledger = NULL;
  assert_status(fedrec_ledger_verify(w->ledger_path, w->id.pk, &s, NULL, 0, &err), FEDREC_OK);
  return s.entries;
}

static void base_config(fedrec_engine_config *c) {
  fedrec_engine_defaults(c);
  c->cohort = 50;
  c->min_cohort = 50;
  c->min_survivors = 30;
  c->clip = 2.0;
  c->noise_multiplier = 0.3;
  c->server_lr = 0.5;
  c->momentum = 0.5;
  c->max_rounds = 0;
}

/* A world with the base configuration and an ample budget. */
static void world_start(world *w) {
  fedrec_engine_config c;
  base_config(&c);
  world_init(w, &c, 1e6);
}

static void test_rounds_with_dropouts(void **state) {
  (void)state;
  world w;
  world_start(&w);
  double r0 = recall(&w);
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0}, keys[FEDREC_PHASES] = {0, 3, 0, 0, 0}, shares[FEDREC_PHASES] = {0, 0, 3, 0, 0},
                 masked[FEDREC_PHASES] = {0, 0, 0, 3, 0}, unmask[FEDREC_PHASES] = {[FEDREC_PHASE_UNMASK] = 3};
  const uint32_t *plan[] = {keys, shares, masked, unmask, none, none, none, none};
  for (int r = 0; r < 8; r++) run_round(&w, 50, plan[r], &cursor);
  assert_int_equal(fedrec_engine_rounds_done(w.e), 8);
  assert_int_equal(w.aborted, 0);
  assert_int_equal(w.published, 9);
  assert_true(w.last_version == 9);
  double r1 = recall(&w);
  print_message("Recall@20 on held-out users: %.4f before, %.4f after 8 rounds\n", r0, r1);
  assert_true(r1 > r0 + 0.02);
  /* the ledger: one entry per round, survivors as counted, verifies independently */
  fedrec_ledger_summary s;
  fedrec_error err = {0};
  fedrec_ledger_close(w.ledger);
  w.ledger = NULL;
  assert_status(fedrec_ledger_verify(w.ledger_path, w.id.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, 8);
  assert_true(s.epsilon > 0);
  fedrec_engine_free(w.e);
  w.e = NULL;
  world_free(&w);
}

/* A world training with FedAdam (lr 0.05), head only or with every item's free embedding. */
static void adam_world(world *w, int head_only) {
  fedrec_engine_config c;
  base_config(&c);
  c.optimizer = FEDREC_OPT_FEDADAM;
  c.server_lr = 0.05;
  g_head_only = head_only;
  world_init(w, &c, 1e6);
  g_head_only = 0;
}

/* Free embeddings added between rounds (a head-only model, FedAdam so that both moments
 * matter): refused during a round and for a bad list, changing nothing; then the parameters
 * and both moments grow with zeros inserted before the head's, nothing else moves, the next
 * round plans for the new count and trains the new rows, and the ledger verifies. */
static void test_free_embeddings_added(void **state) {
  (void)state;
  world w;
  adam_world(&w, 1);
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0};
  for (int r = 0; r < 2; r++) assert_true(run_round(&w, 50, none, &cursor));
  fedrec_published pub;
  fedrec_engine_model(w.e, &pub);
  int64_t dim0 = pub.dim;
  int32_t ni = w.ds.R.cols, d = 8, add[] = {5, 17, 42}, twice[] = {5, 5};
  assert_int_equal(dim0, (int64_t)d * w.ds.content_dim);
  float *m1 = malloc((size_t)dim0 * sizeof *m1), *m2 = malloc((size_t)dim0 * sizeof *m2);
  memcpy(m1, pub.opt1, (size_t)dim0 * sizeof *m1), memcpy(m2, pub.opt2, (size_t)dim0 * sizeof *m2);
  float *V0 = malloc((size_t)ni * d * sizeof *V0), *V1 = malloc((size_t)ni * d * sizeof *V1);
  fedrec_model_item_vectors(V0, fedrec_engine_current_model(w.e));
  fedrec_catalogue_ref ref = {.version = 2};
  fedrec_error err = {0};
  int acc;
  uint64_t round;
  uint32_t retry;
  assert_status(fedrec_engine_set_catalogue(w.e, &w.ds, &ref, twice, 2, &err), FEDREC_ERR_ARG);
  assert_status(fedrec_engine_checkin(w.e, 7, w.now, &acc, &round, &retry, &err), FEDREC_OK); /* a selection began */
  assert_status(fedrec_engine_set_catalogue(w.e, &w.ds, &ref, add, 3, &err), FEDREC_ERR_STATE);
  fedrec_engine_model(w.e, &pub);
  assert_int_equal(pub.dim, dim0);
  assert_int_equal(w.published, 3);
  world_free(&w); /* again, stopping before the next selection */
  adam_world(&w, 1);
  cursor = 0;
  for (int r = 0; r < 2; r++) assert_true(run_round(&w, 50, none, &cursor));
  fedrec_engine_model(w.e, &pub);
  memcpy(m1, pub.opt1, (size_t)dim0 * sizeof *m1), memcpy(m2, pub.opt2, (size_t)dim0 * sizeof *m2);
  fedrec_model_item_vectors(V0, fedrec_engine_current_model(w.e));
  assert_status(fedrec_engine_set_catalogue(w.e, &w.ds, &ref, add, 3, &err), FEDREC_OK);
  assert_int_equal(w.published, 4);
  fedrec_engine_model(w.e, &pub);
  assert_int_equal(pub.dim, dim0 + 3 * d);
  assert_true(pub.has_catalogue && pub.catalogue.version == 2);
  for (int k = 0; k < 3 * d; k++) assert_true(pub.opt1[k] == 0 && pub.opt2[k] == 0);
  assert_memory_equal(pub.opt1 + 3 * d, m1, (size_t)dim0 * sizeof *m1);
  assert_memory_equal(pub.opt2 + 3 * d, m2, (size_t)dim0 * sizeof *m2);
  fedrec_model_item_vectors(V1, fedrec_engine_current_model(w.e));
  assert_memory_equal(V1, V0, (size_t)ni * d * sizeof *V0);
  for (int r = 0; r < 2; r++) assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(w.aborted, 0);
  const fedrec_model *m = fedrec_engine_current_model(w.e);
  double moved = 0;
  for (int k = 0; k < 3 * d; k++) moved += fabs(m->E[k]);
  print_message("free embeddings added: %lld -> %lld parameters, |E| %.4g after 2 rounds\n", (long long)dim0,
                (long long)(dim0 + 3 * d), moved);
  assert_true(moved > 0);
  assert_int_equal(closed_ledger_entries(&w), 4);
  free(m1), free(m2), free(V0), free(V1);
  world_free(&w);
}

/* A modality added between rounds (synthetic strong and weak, then noise added; head only,
 * FedAdam): a catalogue that reorders them is refused and changes nothing; then the head grows
 * a zero block, both moments follow it element by element (old (r, j) at r p' + j, new ones
 * zero), the item vectors do not move, and the next round trains the new block. */
static void test_modality_added(void **state) {
  (void)state;
  world w;
  g_modalities = 2;
  adam_world(&w, 1);
  g_modalities = 0;
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0};
  assert_true(run_round(&w, 50, none, &cursor));
  fedrec_published pub;
  fedrec_engine_model(w.e, &pub);
  int32_t d = 8, p0 = 16, p1 = 24, ni = w.ds.R.cols;
  assert_int_equal(pub.dim, (int64_t)d * p0);
  float *m1 = malloc((size_t)d * p0 * sizeof *m1), *m2 = malloc((size_t)d * p0 * sizeof *m2);
  memcpy(m1, pub.opt1, (size_t)d * p0 * sizeof *m1), memcpy(m2, pub.opt2, (size_t)d * p0 * sizeof *m2);
  float *V0 = malloc((size_t)ni * d * sizeof *V0), *V1 = malloc((size_t)ni * d * sizeof *V1);
  fedrec_model_item_vectors(V0, fedrec_engine_current_model(w.e));
  fedrec_synth_config sc; /* world_init's catalogue with a third modality: the first two blocks are the same */
  fedrec_synth_defaults(&sc);
  sc.users = 1500, sc.items = 300, sc.content_dim = 8, sc.median_len = 20, sc.seed = 7, sc.threads = 1, sc.modalities = 3;
  fedrec_dataset ds3, swapped;
  fedrec_error err = {0};
  assert_status(fedrec_synth_generate(&ds3, &sc, &err), FEDREC_OK);
  assert_memory_equal(ds3.content, w.ds.content, (size_t)p0 * sizeof(float)); /* item 0's first two blocks */
  fedrec_catalogue_ref ref = {.version = 2};
  fedrec_modality keep = ds3.modalities[0];
  ds3.modalities[0] = ds3.modalities[1], ds3.modalities[1] = keep; /* weak, strong, noise: refused */
  assert_status(fedrec_engine_set_catalogue(w.e, &ds3, &ref, NULL, 0, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "cannot become [weak:8,strong:8,noise:8]"));
  ds3.modalities[1] = ds3.modalities[0], ds3.modalities[0] = keep;
  assert_int_equal(w.published, 2);
  assert_status(fedrec_engine_set_catalogue(w.e, &ds3, &ref, NULL, 0, &err), FEDREC_OK);
  swapped = w.ds, w.ds = ds3; /* the devices read the new catalogue now */
  fedrec_dataset_free(&swapped);
  assert_int_equal(w.published, 3);
  fedrec_engine_model(w.e, &pub);
  assert_int_equal(pub.dim, (int64_t)d * p1);
  for (int32_t r = 0; r < d; r++)
    for (int32_t j = 0; j < p1; j++) {
      float want1 = j < p0 ? m1[r * p0 + j] : 0, want2 = j < p0 ? m2[r * p0 + j] : 0;
      if (pub.opt1[r * p1 + j] != want1 || pub.opt2[r * p1 + j] != want2) fail_msg("moments of H(%d, %d) did not follow", r, j);
    }
  const fedrec_model *m = fedrec_engine_current_model(w.e);
  assert_int_equal(m->n_modalities, 3);
  assert_string_equal(m->modalities[2].name, "noise");
  fedrec_model_item_vectors(V1, m);
  for (int64_t k = 0; k < (int64_t)ni * d; k++) assert_true(fabsf(V1[k] - V0[k]) <= 1e-6f * (1 + fabsf(V0[k])));
  assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(w.aborted, 0);
  double grown = 0;
  for (int32_t r = 0; r < d; r++)
    for (int32_t j = p0; j < p1; j++) grown += fabs(m->H[r * p1 + j]);
  print_message("modality added: %d -> %d parameters, |H_noise| %.4g after a round\n", d * p0, d * p1, grown);
  assert_true(grown > 0);
  assert_int_equal(closed_ledger_entries(&w), 2);
  free(m1), free(m2), free(V0), free(V1);
  world_free(&w);
}

/* Requests that do not fit the state are refused (FEDREC_ERR_STATE) and change nothing. */
static void test_bad_requests(void **state) {
  (void)state;
  world w;
  fedrec_engine_config c;
  base_config(&c);
  c.cohort = 10, c.min_cohort = 10, c.min_survivors = 6;
  c.dropout = 0.001, c.dishonest = 0.001; /* so that (k, t) exist for ten clients */
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  uint8_t junk[16] = {1, 2, 3};
  uint8_t *out;
  size_t len;
  uint32_t retry;
  int acc;
  uint64_t round;
  /* nothing to submit or fetch before a round */
  assert_status(fedrec_engine_submit(w.e, 1, 1, FEDREC_PHASE_KEYS, junk, 3, w.now, &err), FEDREC_ERR_STATE);
  assert_status(fedrec_engine_fetch(w.e, 1, 1, FEDREC_PHASE_SHARES, w.now, &out, &len, &retry, &err), FEDREC_ERR_STATE);
  for (uint64_t k = 1; k <= 10; k++) {
    assert_status(fedrec_engine_checkin(w.e, k, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    assert_true(acc);
  }
  /* an eleventh client is told to come back later, with jitter */
  assert_status(fedrec_engine_checkin(w.e, 99, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_false(acc);
  assert_true(retry >= c.retry_ms / 2 && retry <= c.retry_ms * 3 / 2);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_KEYS);
  /* an outsider, the wrong round, the wrong phase, a malformed message */
  assert_status(fedrec_engine_submit(w.e, 99, round, FEDREC_PHASE_KEYS, junk, 3, w.now, &err), FEDREC_ERR_STATE);
  assert_status(fedrec_engine_submit(w.e, 1, round + 1, FEDREC_PHASE_KEYS, junk, 3, w.now, &err), FEDREC_ERR_STATE);
  assert_status(fedrec_engine_submit(w.e, 1, round, FEDREC_PHASE_SHARES, junk, 3, w.now, &err), FEDREC_ERR_STATE);
  assert_status(fedrec_engine_submit(w.e, 3, round, FEDREC_PHASE_KEYS, junk, 3, w.now, &err), FEDREC_ERR_PARSE);
  /* a malformed message is what no honest client sends: its sender is dropped and banned */
  assert_true(fedrec_engine_banned(w.e, 3));
  assert_false(fedrec_engine_banned(w.e, 1));
  assert_status(fedrec_engine_submit(w.e, 3, round, FEDREC_PHASE_KEYS, junk, 3, w.now, &err), FEDREC_ERR_STATE);
  assert_non_null(strstr(err.msg, "left out: this device sent a message no honest client sends"));
  /* keys that name another member are refused */
  fedrec_round_info info;
  assert_status(fedrec_engine_round_info(w.e, 2, round, w.now, &info, &retry, &err), FEDREC_OK);
  fedrec_secagg_client *sc = fedrec_secagg_client_new(&info.secagg, 0, NULL, NULL, &err);
  fedrec_sa_keys k;
  assert_status(fedrec_secagg_client_advertise(sc, &k, &err), FEDREC_OK);
  uint8_t buf[256];
  size_t n = fedrec_sa_encode_keys(buf, sizeof buf, &k);
  assert_status(fedrec_engine_submit(w.e, 2, round, FEDREC_PHASE_KEYS, buf, n, w.now, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "names cohort member 0"));
  assert_true(fedrec_engine_banned(w.e, 2));
  /* ... and accepted from member 0 itself, once */
  assert_status(fedrec_engine_submit(w.e, 1, round, FEDREC_PHASE_KEYS, buf, n, w.now, &err), FEDREC_OK);
  assert_status(fedrec_engine_submit(w.e, 1, round, FEDREC_PHASE_KEYS, buf, n, w.now, &err), FEDREC_ERR_STATE);
  /* fetching the next phase's input before it opens: come back */
  assert_status(fedrec_engine_fetch(w.e, 1, round, FEDREC_PHASE_SHARES, w.now, &out, &len, &retry, &err), FEDREC_OK);
  assert_null(out);
  assert_true(retry > 0);
  /* the others stay silent: at the deadline only one advertised, below the threshold: abort */
  w.now = fedrec_engine_deadline(w.e);
  fedrec_engine_tick(w.e, w.now);
  assert_int_equal(w.aborted, 1);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING);
  assert_int_equal(fedrec_engine_round(w.e), round + 1);
  /* the two caught misbehaving are left out of later selections, with the reason */
  for (uint64_t cl = 2; cl <= 3; cl++) {
    assert_status(fedrec_engine_checkin(w.e, cl, w.now, &acc, &round, &retry, &err), FEDREC_ERR_STATE);
    assert_non_null(strstr(err.msg, "left out"));
  }
  assert_status(fedrec_engine_checkin(w.e, 1, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_true(acc);
  fedrec_ledger_summary s;
  fedrec_ledger_close(w.ledger);
  w.ledger = NULL;
  assert_status(fedrec_ledger_verify(w.ledger_path, w.id.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, 0); /* nothing released, nothing recorded */
  fedrec_secagg_client_free(sc);
  world_free(&w);
}

/* The budget: training stops before a round that could exceed it, says so, and the ledger
 * never passes the budget. */
static void test_budget_stops(void **state) {
  (void)state;
  world w;
  fedrec_engine_config c;
  base_config(&c);
  world_init(&w, &c, 60.0);
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0};
  int rounds = 0;
  while (rounds < 20 && run_round(&w, 50, none, &cursor)) rounds++;
  print_message("stopped after %d rounds: %s\n", rounds, fedrec_engine_stop_reason(w.e));
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_STOPPED);
  assert_true(rounds >= 2 && rounds < 20);
  assert_non_null(strstr(fedrec_engine_stop_reason(w.e), "privacy budget"));
  assert_non_null(strstr(fedrec_engine_stop_reason(w.e), "not started"));
  /* a stopped coordinator selects nobody */
  int acc;
  uint64_t round;
  uint32_t retry;
  fedrec_error err = {0};
  assert_status(fedrec_engine_checkin(w.e, 1, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_false(acc);
  fedrec_ledger_summary s;
  fedrec_ledger_close(w.ledger);
  w.ledger = NULL;
  assert_status(fedrec_ledger_verify(w.ledger_path, w.id.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, (uint64_t)rounds);
  assert_true(s.epsilon <= 60.0);
  world_free(&w);
}

static int contains(const uint8_t *hay, size_t n, const void *needle, size_t m) {
  for (size_t i = 0; i + m <= n; i++)
    if (!memcmp(hay + i, needle, m)) return 1;
  return 0;
}

/* What leaves a device: everything one participant sends in a full round is collected, and
 * neither its user vector, nor its history (items and weights), nor its raw gradient appears
 * in it; its masked input on its own is indistinguishable from uniform (chi-square over the
 * top four bits), so without the whole cohort's masks it says nothing about the update. */
static void test_nothing_private_leaves(void **state) {
  (void)state;
  world w;
  world_start(&w);
  fedrec_error err = {0};
  const fedrec_csr *R = &w.split.train;
  uint64_t clients[50];
  fedrec_participant *part[50];
  uint64_t round = 0;
  int32_t u0 = -1;
  for (uint32_t i = 0, u = 0; i < 50; u++) {
    if (R->indptr[u + 1] - R->indptr[u] < 8) continue;
    if (u0 < 0) u0 = (int32_t)u;
    int acc;
    uint32_t retry;
    clients[i] = u;
    assert_status(fedrec_engine_checkin(w.e, u, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    i++;
  }
  fedrec_published pub;
  fedrec_engine_model(w.e, &pub);
  fedrec_model m;
  assert_status(fedrec_model_decode(&m, NULL, pub.blob, pub.len, w.ds.content, w.ds.content_dim, &err), FEDREC_OK);
  /* what the first device would never reveal: its vector, history and gradient */
  int32_t ni = m.n_items, d = m.d, n0 = (int32_t)(R->indptr[u0 + 1] - R->indptr[u0]);
  const int32_t *items0 = R->indices + R->indptr[u0];
  const float *w0 = R->values + R->indptr[u0];
  float *V = malloc((size_t)ni * d * 4), *G = malloc((size_t)d * d * 4), u[64];
  float *work = malloc(fedrec_user_grad_work(&m, n0) * 4 + fedrec_user_solve_work(d, n0) * 4);
  int64_t dim = fedrec_model_params(&m);
  float *grad = calloc((size_t)dim, 4);
  fedrec_model_item_vectors(V, &m);
  fedrec_gramian(G, V, ni, d);
  assert_status(fedrec_user_solve(u, V, G, ni, d, items0, w0, n0, 0.3f, 0.003f, work), FEDREC_OK);
  double loss;
  fedrec_user_loss_grad(&loss, grad, grad + (size_t)m.n_free * d, &m, V, u, items0, w0, n0, 0.3f, 0.003f, work);
  size_t cap = 4 << 20, used = 0;
  uint8_t *sent = malloc(cap);
  double hist[16] = {0};
  size_t nvals = 0;
  for (fedrec_phase ph = FEDREC_PHASE_KEYS; ph <= FEDREC_PHASE_UNMASK; ph++)
    for (uint32_t i = 0; i < 50 && ph != FEDREC_PHASE_CONSISTENCY; i++) { /* passive: no consistency phase */
      uint8_t *in = NULL, *out = NULL;
      size_t inlen = 0, outlen = 0;
      uint32_t retry;
      if (ph == FEDREC_PHASE_KEYS) {
        fedrec_round_info info;
        assert_status(fedrec_engine_round_info(w.e, clients[i], round, w.now, &info, &retry, &err), FEDREC_OK);
        int32_t uu = (int32_t)clients[i];
        int64_t a = R->indptr[uu], b = R->indptr[uu + 1];
        assert_status(fedrec_participant_new(&part[i], &info, &m, R->indices + a, R->values + a, (int32_t)(b - a), NULL, &err), FEDREC_OK);
        assert_status(fedrec_participant_keys(part[i], &out, &outlen, &err), FEDREC_OK);
      } else {
        assert_status(fedrec_engine_fetch(w.e, clients[i], round, ph, w.now, &in, &inlen, &retry, &err), FEDREC_OK);
        fedrec_status s = ph == FEDREC_PHASE_SHARES   ? fedrec_participant_shares(part[i], in, inlen, &out, &outlen, &err)
                          : ph == FEDREC_PHASE_MASKED ? fedrec_participant_masked(part[i], in, inlen, &out, &outlen, &err)
                          : ph == FEDREC_PHASE_CONSISTENCY ? fedrec_participant_consistency(part[i], in, inlen, &out, &outlen, &err)
                                                      : fedrec_participant_unmask(part[i], in, inlen, &out, &outlen, &err);
        assert_status(s, FEDREC_OK);
      }
      if (i == 0) { /* the device under watch */
        assert_true(used + outlen <= cap);
        memcpy(sent + used, out, outlen);
        used += outlen;
        if (ph == FEDREC_PHASE_MASKED) {
          fedrec_sa_msg mm;
          assert_status(fedrec_sa_decode(&mm, out, outlen, 50, 1u << 24, &err), FEDREC_OK);
          uint32_t bits = mm.bits;
          for (uint32_t k = 0; k < mm.u.masked.dim; k++, nvals++) hist[mm.u.masked.y[k] >> (bits - 4)] += 1;
          fedrec_sa_msg_free(&mm);
        }
      }
      assert_status(fedrec_engine_submit(w.e, clients[i], round, ph, out, outlen, w.now, &err), FEDREC_OK);
      free(in), free(out);
    }
  assert_int_equal(fedrec_engine_rounds_done(w.e), 1);
  print_message("the watched device sent %zu bytes in the round\n", used);
  /* the user vector: not as a whole, and no 2 consecutive components */
  for (int j = 0; j + 2 <= d; j++) assert_false(contains(sent, used, u + j, 8));
  /* the history: no 3 consecutive item indices, no 3 consecutive weights */
  for (int32_t j = 0; j + 3 <= n0; j++) {
    assert_false(contains(sent, used, items0 + j, 12));
    assert_false(contains(sent, used, w0 + j, 12));
  }
  /* the raw gradient: no 2 consecutive non-zero components */
  for (int64_t j = 0; j + 2 <= dim; j++)
    if (grad[j] != 0 && grad[j + 1] != 0) assert_false(contains(sent, used, grad + j, 8));
  /* the masked input on its own: uniform */
  double chi = 0, e = (double)nvals / 16;
  for (int b = 0; b < 16; b++) chi += (hist[b] - e) * (hist[b] - e) / e;
  print_message("masked input of %zu values: chi-square %.1f on 15 dof against uniform\n", nvals, chi);
  assert_true(chi < 15 + 5 * sqrt(30.0));
  for (uint32_t i = 0; i < 50; i++) fedrec_participant_free(part[i]);
  free(V), free(G), free(work), free(grad), free(sent);
  fedrec_model_free(&m);
  world_free(&w);
}

/* Local training: with K = 2 steps of size lr the participant sends exactly the move
 * x_0 - x_2, x_{s+1} = x_s - lr g(x_s), computed here by hand, through the same encoding. */
static uint64_t g_fixed_seed;
static void fixed_bytes(void *ctx, void *buf, uint64_t n) {
  (void)ctx;
  fedrec_rng r;
  fedrec_rng_seed(&r, g_fixed_seed, 1);
  uint8_t *o = buf;
  for (uint64_t i = 0; i < n; i++) o[i] = (uint8_t)fedrec_rng_u64(&r);
  g_fixed_seed++;
}

static void test_local_steps(void **state) {
  (void)state;
  world w;
  world_start(&w);
  fedrec_error err = {0};
  fedrec_published pub;
  fedrec_engine_model(w.e, &pub);
  fedrec_model m;
  assert_status(fedrec_model_decode(&m, NULL, pub.blob, pub.len, w.ds.content, w.ds.content_dim, &err), FEDREC_OK);
  const fedrec_csr *R = &w.split.train;
  int32_t u0 = 0;
  while (R->indptr[u0 + 1] - R->indptr[u0] < 5) u0++;
  const int32_t *items = R->indices + R->indptr[u0];
  const float *wt = R->values + R->indptr[u0];
  int32_t n = (int32_t)(R->indptr[u0 + 1] - R->indptr[u0]), ni = m.n_items, d = m.d;
  int64_t dim = fedrec_model_params(&m);
  size_t ne = (size_t)m.n_free * d;
  fedrec_round_info info = {.round = 1, .model_version = 1, .alpha0 = 0.3f, .reg = 0.003f, .local_steps = 2, .client_lr = 0.05f};
  info.ddp = (fedrec_ddp_params){.dim = (uint32_t)dim, .clip = 1e3, .gamma = 1e-4, .bits = 32, .beta = exp(-0.5),
                                 .round_seed = 9, .noise = FEDREC_NOISE_NONE};
  info.secagg = (fedrec_secagg_params){.n = 2, .k = 1, .t = 2, .bits = 32, .dim = fedrec_ddp_padded((uint32_t)dim)};
  /* by hand */
  float *x = malloc((size_t)dim * 4), *x0 = malloc((size_t)dim * 4), *g = malloc((size_t)dim * 4);
  float *V = malloc((size_t)ni * d * 4), *G = malloc((size_t)d * d * 4), u[64];
  float *work = malloc((fedrec_user_grad_work(&m, n) + fedrec_user_solve_work(d, n)) * 4);
  fedrec_model_get_params(x, &m);
  memcpy(x0, x, (size_t)dim * 4);
  fedrec_model loc = m;
  loc.E = x, loc.H = x + ne;
  for (int step = 0; step < 2; step++) {
    double loss;
    fedrec_model_item_vectors(V, &loc);
    fedrec_gramian(G, V, ni, d);
    assert_status(fedrec_user_solve(u, V, G, ni, d, items, wt, n, 0.3f, 0.003f, work), FEDREC_OK);
    fedrec_user_loss_grad(&loss, g, g + ne, &loc, V, u, items, wt, n, 0.3f, 0.003f, work);
    for (int64_t i = 0; i < dim; i++) x[i] -= 0.05f * g[i];
  }
  double moved = 0;
  for (int64_t i = 0; i < dim; i++) g[i] = x0[i] - x[i], moved += (double)g[i] * g[i];
  assert_true(moved > 0);
  /* the participant, and the hand-made update through the same encoder, same coins */
  fedrec_entropy ent = {fixed_bytes, NULL, 0};
  fedrec_participant *a, *b;
  uint8_t *ma, *mb;
  size_t la, lb;
  g_fixed_seed = 100;
  assert_status(fedrec_participant_new(&a, &info, &m, items, wt, n, &ent, &err), FEDREC_OK);
  g_fixed_seed = 100;
  assert_status(fedrec_participant_new_update(&b, &info, g, dim, &ent, &err), FEDREC_OK);
  assert_status(fedrec_participant_plain(a, &ma, &la, &err), FEDREC_OK);
  assert_status(fedrec_participant_plain(b, &mb, &lb, &err), FEDREC_OK);
  assert_int_equal(la, lb);
  assert_memory_equal(ma, mb, la);
  /* with the item vectors and Gramian given (as the simulator shares them): the same message,
   * for K = 2 (step 1 recomputes them from the local copy) and K = 1 */
  for (uint32_t K = 2; K >= 1; K--) {
    fedrec_round_info ik = info;
    ik.local_steps = K;
    fedrec_participant *c1, *c2;
    uint8_t *m1, *m2;
    size_t l1, l2;
    fedrec_model_item_vectors(V, &m);
    fedrec_gramian(G, V, ni, d);
    g_fixed_seed = 200;
    assert_status(fedrec_participant_new(&c1, &ik, &m, items, wt, n, &ent, &err), FEDREC_OK);
    g_fixed_seed = 200;
    assert_status(fedrec_participant_new_shared(&c2, &ik, &m, V, G, items, wt, n, &ent, &err), FEDREC_OK);
    assert_status(fedrec_participant_plain(c1, &m1, &l1, &err), FEDREC_OK);
    assert_status(fedrec_participant_plain(c2, &m2, &l2, &err), FEDREC_OK);
    assert_int_equal(l1, l2);
    assert_memory_equal(m1, m2, l1);
    fedrec_participant_free(c1), fedrec_participant_free(c2);
    free(m1), free(m2);
  }
  /* sent once: a second send is refused */
  uint8_t *again;
  size_t lagain;
  assert_status(fedrec_participant_plain(a, &again, &lagain, &err), FEDREC_ERR_STATE);
  fedrec_participant_free(a), fedrec_participant_free(b);
  free(ma), free(mb), free(x), free(x0), free(g), free(V), free(G), free(work);
  fedrec_model_free(&m);
  world_free(&w);
}

/* Masked inputs added up elsewhere (as fedrec-sim-mpi's ranks do) and given to the engine as
 * one sum: the round ends with exactly the model of one input at a time, bit for bit, with
 * dropouts before and after the masked phase (so the server removes pairwise masks of a client
 * that left and self masks of the summed ones); bad sums are refused whole (in run_round). */
static void test_submit_sum(void **state) {
  (void)state;
  uint8_t hash[2][32];
  fedrec_entropy ent = {fixed_bytes, NULL, 0};
  const uint32_t drops[3][FEDREC_PHASES] = {{0, 0, 2, 0, 0}, {0, 0, 0, 3, 0}, {[FEDREC_PHASE_UNMASK] = 2}};
  for (int batched = 0; batched < 2; batched++) {
    world w;
    fedrec_engine_config c;
    base_config(&c);
    g_engine_ent = &ent;
    g_fixed_seed = 1000;
    world_init(&w, &c, 1e6);
    uint64_t cursor = 0;
    g_sum_from = batched ? 20 : 0;
    for (int r = 0; r < 3; r++) assert_true(run_round(&w, 50, drops[r], &cursor));
    g_sum_from = 0;
    g_engine_ent = NULL;
    assert_int_equal(fedrec_engine_rounds_done(w.e), 3);
    assert_int_equal(w.aborted, 0);
    fedrec_published pub;
    fedrec_engine_model(w.e, &pub);
    memcpy(hash[batched], pub.hash, 32);
    world_free(&w);
  }
  assert_memory_equal(hash[0], hash[1], 32);
}

/* Aggregators: the same rounds with three aggregators taking the masked inputs end with the
 * model of no aggregators, bit for bit, with dropouts before and after the masked phase; an
 * aggregator whose sum never comes leaves its members dropped and the round completes; one that
 * reports a malformed input gets its sender left out. Checked in run_round: assignments in turn,
 * tickets, a masked input sent to the engine refused, a sum from the wrong aggregator refused. */
static void test_aggregators(void **state) {
  (void)state;
  uint8_t hash[2][32];
  fedrec_entropy ent = {fixed_bytes, NULL, 0};
  const uint32_t drops[3][FEDREC_PHASES] = {{0, 0, 2, 0, 0}, {0, 0, 0, 3, 0}, {[FEDREC_PHASE_UNMASK] = 2}};
  for (int with = 0; with < 2; with++) {
    world w;
    fedrec_engine_config c;
    base_config(&c);
    g_engine_ent = &ent;
    g_fixed_seed = 2000;
    world_init(&w, &c, 1e6);
    uint64_t cursor = 0;
    g_aggs = with ? 3 : 0;
    for (int r = 0; r < 3; r++) assert_true(run_round(&w, 50, drops[r], &cursor));
    g_engine_ent = NULL;
    assert_int_equal(fedrec_engine_rounds_done(w.e), 3);
    assert_int_equal(w.aborted, 0);
    fedrec_published pub;
    fedrec_engine_model(w.e, &pub);
    memcpy(hash[with], pub.hash, 32);
    if (with) { /* a lost aggregator, a refused input */
      const uint32_t none[FEDREC_PHASES] = {0};
      g_lost_agg = 2, g_refuse_one = 1;
      assert_true(run_round(&w, 50, none, &cursor));
      g_lost_agg = 0, g_refuse_one = 0;
      assert_int_equal(fedrec_engine_rounds_done(w.e), 4);
      assert_int_equal(w.aborted, 0);
    }
    g_aggs = 0;
    world_free(&w);
  }
  assert_memory_equal(hash[0], hash[1], 32);
}

/* FedAdam trains too; Poisson sampling takes about q of the check-ins and the ledger records
 * the sampling rate. */
static void test_fedadam_and_poisson(void **state) {
  (void)state;
  world w;
  fedrec_engine_config c;
  adam_world(&w, 0);
  double r0 = recall(&w);
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0};
  for (int r = 0; r < 6; r++) assert_true(run_round(&w, 50, none, &cursor));
  double r1 = recall(&w);
  print_message("FedAdam: Recall@20 %.4f -> %.4f after 6 rounds\n", r0, r1);
  assert_true(r1 > r0 + 0.02);
  fedrec_engine_free(w.e);
  w.e = NULL;
  world_free(&w);

  base_config(&c);
  c.sampling_rate = 0.25;
  c.cohort = 200, c.min_cohort = 50, c.min_survivors = 40, c.selection_ms = 1000;
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  int acc, taken = 0;
  uint64_t round;
  uint32_t retry;
  for (uint64_t k = 0; k < 400 && fedrec_engine_phase(w.e) == FEDREC_PHASE_SELECTING; k++) {
    assert_status(fedrec_engine_checkin(w.e, 1000 + k, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    taken += acc;
  }
  print_message("Poisson sampling at q = 0.25: %d of 400 check-ins taken\n", taken);
  assert_true(taken > 100 - 40 && taken < 100 + 40); /* Binomial(400, 1/4): mean 100, sd 8.7 */
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING); /* below the cohort cap */
  w.now += c.selection_ms; /* the window closes with more than min_cohort: the round starts */
  fedrec_engine_tick(w.e, w.now);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_KEYS);
  world_free(&w);
}

/* One coin per device and round: 200 devices checking in 20 times each in one window are
 * taken with probability q, not 1 - (1 - q)^20 (61d538e took 19 of 20 at q = 0.05); a window
 * with too few sampled, or more than the cap, runs no round; the next round draws anew. */
static void test_poisson_one_coin(void **state) {
  (void)state;
  world w;
  fedrec_engine_config c;
  base_config(&c);
  c.sampling_rate = 0.05;
  c.cohort = 100, c.min_cohort = 10, c.min_survivors = 10, c.selection_ms = 1000;
  c.dropout = 0.001, c.dishonest = 0.001;
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  int acc, taken[200] = {0}, n = 0;
  uint64_t round, first = fedrec_engine_round(w.e);
  uint32_t retry;
  for (int pass = 0; pass < 20; pass++)
    for (uint64_t k = 0; k < 200; k++) {
      assert_status(fedrec_engine_checkin(w.e, 5000 + k, w.now + (uint64_t)pass, &acc, &round, &retry, &err), FEDREC_OK);
      if (pass == 0) taken[k] = acc, n += acc;
      else assert_int_equal(acc, taken[k]); /* the same answer every time */
    }
  print_message("q = 0.05, 200 devices x 20 check-ins: %d taken\n", n);
  assert_true(n >= 1 && n <= 30); /* Binomial(200, 0.05): mean 10, sd 3.1 */
  /* too few for min_cohort: the window closes without a round, the next one draws anew */
  fedrec_engine_free(w.e);
  w.e = NULL;
  world_free(&w);
  c.min_cohort = 150, c.min_survivors = 100, c.cohort = 200;
  c.sampling_rate = 0.5;
  world_init(&w, &c, 1e6);
  first = fedrec_engine_round(w.e);
  for (uint64_t k = 0; k < 200; k++) (void)fedrec_engine_checkin(w.e, 5000 + k, w.now, &acc, &round, &retry, &err);
  w.now += c.selection_ms;
  fedrec_engine_tick(w.e, w.now);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING);
  assert_int_equal(fedrec_engine_round(w.e), first + 1);
  assert_int_equal(w.aborted, 1);
  fedrec_engine_free(w.e);
  w.e = NULL;
  world_free(&w);
  /* more yes-coins than the cap: no round (a cap would take the first ones only) */
  c.min_cohort = 10, c.min_survivors = 10, c.cohort = 20, c.sampling_rate = 0.5;
  world_init(&w, &c, 1e6);
  for (uint64_t k = 0; k < 200; k++) (void)fedrec_engine_checkin(w.e, 5000 + k, w.now, &acc, &round, &retry, &err);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING); /* no early start at the cap */
  w.now += c.selection_ms;
  fedrec_engine_tick(w.e, w.now);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING);
  assert_int_equal(w.aborted, 1);
  world_free(&w);
}

/* One member of ten skips clipping (its encoded input carries a vector far longer than the
 * clip): the decoded sum is longer than ten clipped updates and the noise can be, so the round
 * is discarded, not published, and its release is in the ledger (61d538e published it). The
 * same round with honest inputs only is published. Plain inputs (no masks) stand for what a
 * device puts under its masks: SecAgg cannot see it either way. */
static void poisoned_round(world *w, int poison, uint64_t first_user) {
  fedrec_error err = {0};
  int acc;
  uint64_t round;
  uint32_t retry;
  for (uint64_t k = 0; k < 10; k++)
    assert_status(fedrec_engine_checkin(w->e, first_user + k, w->now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_int_equal(fedrec_engine_phase(w->e), FEDREC_PHASE_MASKED); /* plain: straight to the inputs */
  fedrec_round_info info;
  int64_t dim = fedrec_model_params(fedrec_engine_current_model(w->e));
  float *u = malloc((size_t)dim * sizeof *u);
  for (uint64_t k = 0; k < 10; k++) {
    assert_status(fedrec_engine_round_info(w->e, first_user + k, round, w->now, &info, &retry, &err), FEDREC_OK);
    for (int64_t i = 0; i < dim; i++) u[i] = (float)(((i * 7 + (int64_t)k) % 11) - 5) * 0.01f;
    fedrec_participant *pt;
    assert_status(fedrec_participant_new_update(&pt, &info, u, dim, NULL, &err), FEDREC_OK);
    uint8_t *msg;
    size_t len;
    assert_status(fedrec_participant_plain(pt, &msg, &len, &err), FEDREC_OK);
    if (poison && k == 3) { /* what a device that skips clipping sends: its input times 40 */
      fedrec_sa_msg m;
      assert_status(fedrec_sa_decode(&m, msg, len, 10, 1u << 24, &err), FEDREC_OK);
      uint32_t lim = m.bits >= 32 ? 0xffffffffu : (1u << m.bits) - 1;
      for (uint32_t i = 0; i < m.u.masked.dim; i++) m.u.masked.y[i] = (uint32_t)((int64_t)(int32_t)(m.u.masked.y[i] << (32 - m.bits)) / (1 << (32 - m.bits)) * 40) & lim;
      size_t n2 = fedrec_sa_encode_masked(msg, len, &m.u.masked, m.bits);
      assert_int_equal(n2, len);
      fedrec_sa_msg_free(&m);
    }
    assert_status(fedrec_engine_submit(w->e, first_user + k, round, FEDREC_PHASE_MASKED, msg, len, w->now, &err), FEDREC_OK);
    free(msg);
    fedrec_participant_free(pt);
  }
  free(u);
  fedrec_engine_tick(w->e, w->now);
  assert_int_equal(fedrec_engine_phase(w->e), FEDREC_PHASE_SELECTING);
}

static void test_poisoned_update(void **state) {
  (void)state;
  world w;
  fedrec_engine_config c;
  base_config(&c);
  c.plain = 1;
  c.cohort = 10, c.min_cohort = 10, c.min_survivors = 8;
  c.max_aborts = 2;
  world_init(&w, &c, 1e6);
  poisoned_round(&w, 0, 100);
  assert_int_equal(w.aborted, 0);
  assert_int_equal(w.published, 2);
  poisoned_round(&w, 1, 200);
  assert_int_equal(w.aborted, 1);
  assert_int_equal(w.published, 2); /* not published */
  /* a poisoner does not count towards max_aborts: rounds it spoils in a row do not stop training */
  poisoned_round(&w, 1, 300);
  poisoned_round(&w, 1, 400);
  assert_int_equal(w.aborted, 3);
  assert_int_not_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_STOPPED);
  assert_int_equal(closed_ledger_entries(&w), 4); /* the discarded rounds were released to the coordinator: recorded */
  world_free(&w);
}

/* A state with a privacy ledger never trains without noise: every release must be recorded,
 * and a noiseless one has no finite epsilon (61d538e restarted with noise 0 and published
 * models with no ledger entry). */
static void test_no_noise_with_ledger(void **state) {
  (void)state;
  world w;
  world_start(&w);
  fedrec_engine_config c;
  base_config(&c);
  c.noise_multiplier = 0;
  fedrec_model m;
  fedrec_error err = {0};
  int32_t ni = w.ds.R.cols, *all = malloc((size_t)ni * sizeof *all);
  for (int32_t i = 0; i < ni; i++) all[i] = i;
  assert_status(fedrec_model_init(&m, ni, 8, w.ds.content, w.ds.content_dim, 1, all, ni, 5, 0.1f, &err), FEDREC_OK);
  free(all);
  fedrec_engine *e2 = NULL;
  assert_status(fedrec_engine_new(&e2, &c, &m, 1, &w.id, w.ledger, NULL, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "noise multiplier 0 with a privacy ledger"));
  assert_null(e2);
  fedrec_model_free(&m);
  world_free(&w);
}

/* With fewer masked inputs than min_survivors (but at least the SecAgg threshold), nothing
 * is unmasked: the round ends before anyone is asked for a share, and the ledger has no entry
 * because nothing was released (61d538e unmasked the sum, then aborted without an entry). */
static void test_no_unmask_below_plan(void **state) {
  (void)state;
  world w;
  world_start(&w); /* cohort 50, min_survivors 30 */
  uint64_t cursor = 0;
  const uint32_t masked[FEDREC_PHASES] = {0, 0, 0, 22, 0}; /* 28 inputs */
  run_round(&w, 50, masked, &cursor);
  assert_int_equal(w.aborted, 1);
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING);
  /* ended at the close of the masked phase, before the unmasking phase (61d538e went on to
   * unmask, then aborted "28 survivors, fewer than the 30 required" without an entry) */
  if (!strstr(w.last_reason, "nothing unmasked")) fail_msg("aborted for another reason: %s", w.last_reason);
  assert_int_equal(closed_ledger_entries(&w), 0);
  world_free(&w);
}

/* A cohort whose devices are slower than the deadlines: each missed deadline doubles that
 * phase's next one (up to max_phase_ms); the members of an aborted round learn why; after
 * max_aborts consecutive aborts training stops, saying what to change. Rounds everyone
 * answers bring the deadlines back down (at most halved per round, never below phase_ms). */
static void test_deadlines_adapt(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.cohort = c.min_cohort = 10;
  c.min_survivors = 6;
  c.dropout = 0.001, c.dishonest = 0.001; /* so that (k, t) exist for ten clients */
  c.phase_ms = 1000;
  c.max_phase_ms = 4000;
  c.max_aborts = 4;
  world w;
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  int acc;
  uint64_t round, want[] = {1000, 2000, 4000, 4000};
  uint32_t retry;
  fedrec_round_info info;
  for (int a = 0; a < 4; a++) {
    for (uint64_t k = 1; k <= 10; k++)
      assert_status(fedrec_engine_checkin(w.e, 100 * (uint64_t)a + k, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_KEYS);
    assert_int_equal(fedrec_engine_deadline(w.e) - w.now, want[a]); /* 1 s, doubled twice, capped at 4 s */
    w.now = fedrec_engine_deadline(w.e) - 1;
    fedrec_engine_tick(w.e, w.now);
    assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_KEYS); /* not before its deadline */
    w.now++;
    fedrec_engine_tick(w.e, w.now);
    assert_int_equal(w.aborted, a + 1);
    if (!strstr(w.last_reason, "10 of 10 devices missed the keys deadline")) fail_msg("reason: %s", w.last_reason);
    /* a member asking about the aborted round is told why */
    assert_status(fedrec_engine_round_info(w.e, 100 * (uint64_t)a + 1, round, w.now, &info, &retry, &err), FEDREC_ERR_STATE);
    if (!strstr(err.msg, "aborted") || !strstr(err.msg, "keys deadline")) fail_msg("told: %s", err.msg);
    w.now += 10;
  }
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_STOPPED);
  const char *why = fedrec_engine_stop_reason(w.e);
  if (!strstr(why, "4 consecutive rounds aborted") || !strstr(why, "raise max-phase-ms")) fail_msg("stop: %s", why);
  world_free(&w);

  /* the deadlines come back down after rounds everyone answered in time */
  c.cohort = c.min_cohort = 50;
  c.min_survivors = 30;
  c.dropout = 0.1, c.dishonest = 0.05;
  c.max_aborts = 0; /* never stops */
  world_init(&w, &c, 1e6);
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0}, silent_keys[FEDREC_PHASES] = {0, 50, 0, 0, 0};
  run_round(&w, 50, silent_keys, &cursor);
  run_round(&w, 50, silent_keys, &cursor);
  assert_int_equal(w.aborted, 2);
  run_round(&w, 50, none, &cursor); /* keys deadline 4 s: answered at once; halved to 2 s */
  run_round(&w, 50, none, &cursor); /* and again to phase_ms */
  assert_int_equal(w.aborted, 2);
  for (uint64_t k = 1; k <= 50; k++)
    assert_status(fedrec_engine_checkin(w.e, 10000 + k, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_int_equal(fedrec_engine_deadline(w.e) - w.now, c.phase_ms);
  world_free(&w);
}

/* A fixed cohort that does not fill within its selection window, and that no device joined
 * for a whole window, releases the devices it accepted (they are told why) instead of holding
 * them; while devices keep joining it waits; releases never stop training. */
static void test_selection_releases(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.cohort = c.min_cohort = 10;
  c.min_survivors = 6;
  c.dropout = 0.001, c.dishonest = 0.001;
  c.selection_ms = 5000;
  c.max_aborts = 2;
  world w;
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  int acc;
  uint64_t round, first = fedrec_engine_round(w.e);
  uint32_t retry;
  fedrec_round_info info;
  for (int a = 0; a < 5; a++) {
    for (uint64_t k = 1; k <= 3; k++) {
      assert_status(fedrec_engine_checkin(w.e, k, w.now, &acc, &round, &retry, &err), FEDREC_OK);
      assert_true(acc);
    }
    assert_status(fedrec_engine_round_info(w.e, 1, round, w.now, &info, &retry, &err), FEDREC_OK);
    assert_true(retry > 0); /* waiting */
    w.now += c.selection_ms;
    fedrec_engine_tick(w.e, w.now);
    assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING);
    assert_int_equal(fedrec_engine_round(w.e), round + 1);
    assert_status(fedrec_engine_round_info(w.e, 2, round, w.now, &info, &retry, &err), FEDREC_ERR_STATE);
    if (!strstr(err.msg, "selection: 3 devices checked in, none more for 5000 ms, min-cohort is 10")) fail_msg("told: %s", err.msg);
    w.now += 10;
  }
  assert_int_equal(fedrec_engine_round(w.e), first + 5);
  assert_int_equal(w.aborted, 5);
  assert_int_equal(w.released, 5);
  /* while devices keep joining, the selection waits past its window */
  round = fedrec_engine_round(w.e);
  for (uint64_t k = 1; k <= 6; k++) {
    assert_status(fedrec_engine_checkin(w.e, 50 + k, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    w.now += 2000; /* one every 2 s: 12 s in all, past the 5 s window */
    fedrec_engine_tick(w.e, w.now);
    assert_int_equal(fedrec_engine_round(w.e), round);
  }
  w.now += 2999; /* 4999 ms since the last joined */
  fedrec_engine_tick(w.e, w.now);
  assert_int_equal(fedrec_engine_round(w.e), round);
  w.now += 1;
  fedrec_engine_tick(w.e, w.now);
  assert_int_equal(fedrec_engine_round(w.e), round + 1);
  if (!strstr(w.last_reason, "selection: 6 devices checked in, none more for 5000 ms")) fail_msg("released: %s", w.last_reason);
  world_free(&w);
}

static int on_participated(void *ctx, uint64_t round, const uint64_t *clients, uint32_t n) {
  world *w = ctx;
  (void)clients;
  if (w->refuse_participation) return 1;
  w->participated_round = round, w->participated_n = n;
  return 0;
}

/* The active variant: a device joins only with a certificate the authority issued for its own
 * client id; rounds run the consistency phase (members dropping there too) and publish; every
 * member's certificate reaches the members; the sum and the ledger are those of a round. */
static void test_active_variant(void **state) {
  (void)state;
  uint8_t aseed[32] = {77};
  assert_status(fedrec_identity_from_seed(&g_authority, aseed), FEDREC_OK);
  fedrec_engine_config c;
  base_config(&c);
  c.active = 1;
  world w;
  fedrec_error err = {0};
  fedrec_model m0 = {0};
  fedrec_engine_config quiet = c;
  quiet.noise_multiplier = 0;
  assert_status(fedrec_engine_new(&w.e, &quiet, &m0, 1, NULL, NULL, NULL, NULL, &err), FEDREC_ERR_ARG); /* no authority key */
  assert_non_null(strstr(err.msg, "enrolment authority"));
  memcpy(c.authority_pk, g_authority.pk, 32);
  world_init(&w, &c, 1e6);
  int acc;
  uint32_t retry;
  uint64_t round;
  fedrec_identity dev;
  uint8_t cert[FEDREC_CERT_BYTES];
  device_identity(&dev, 900, cert);
  assert_status(fedrec_engine_checkin(w.e, 900, w.now, &acc, &round, &retry, &err), FEDREC_ERR_AUTH); /* no certificate */
  assert_status(fedrec_engine_checkin_cert(w.e, 901, cert, sizeof cert, w.now, &acc, &round, &retry, &err), FEDREC_ERR_AUTH);
  assert_non_null(strstr(err.msg, "for client 900, the token for client 901"));
  assert_status(fedrec_engine_checkin_cert(w.e, 900, cert, sizeof cert - 1, w.now, &acc, &round, &retry, &err), FEDREC_ERR_AUTH);
  fedrec_cert_issue(cert, 900, dev.pk, &w.id); /* signed by the coordinator's key, not the authority's */
  assert_status(fedrec_engine_checkin_cert(w.e, 900, cert, sizeof cert, w.now, &acc, &round, &retry, &err), FEDREC_ERR_AUTH);
  assert_non_null(strstr(err.msg, "not signed by the enrolment authority"));
  assert_int_equal(fedrec_engine_phase(w.e), FEDREC_PHASE_SELECTING); /* nobody joined */
  uint64_t cursor = 0;
  const uint32_t none[FEDREC_PHASES] = {0}, late[FEDREC_PHASES] = {[FEDREC_PHASE_CONSISTENCY] = 3};
  assert_true(run_round(&w, 50, none, &cursor));
  assert_true(run_round(&w, 50, late, &cursor)); /* three sign nothing: the rest go on */
  assert_int_equal(w.published, 3);
  fedrec_ledger_summary sum;
  assert_status(fedrec_ledger_verify(w.ledger_path, w.id.pk, &sum, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(sum.entries, 2);
  /* one key certified for two clients gets one seat */
  fedrec_cert_issue(cert, 900, dev.pk, &g_authority);
  assert_status(fedrec_engine_checkin_cert(w.e, 900, cert, sizeof cert, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_true(acc);
  fedrec_cert_issue(cert, 901, dev.pk, &g_authority);
  assert_status(fedrec_engine_checkin_cert(w.e, 901, cert, sizeof cert, w.now, &acc, &round, &retry, &err), FEDREC_ERR_AUTH);
  assert_non_null(strstr(err.msg, "already in the cohort under client 900"));
  fedrec_identity_free(&dev);
  world_free(&w);
  fedrec_identity_free(&g_authority);
}

/* The participation bound: a device that took part max_participation times is not selected
 * again, one that took part recently not before min_separation rounds; the count is
 * persisted (callback) before anything is unmasked, and a failure to persist aborts the round;
 * a bounded ledger composes only K rounds per device, and the settings that would
 * under-report are refused. */
static void test_participation_bound(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.max_participation = 1;
  world w;
  fedrec_error err = {0};
  g_ledger_bound = 1;
  world_init(&w, &c, 1e6);
  g_ledger_bound = 0;
  fedrec_engine_callbacks cb = {&w, on_publish, on_round, on_participated};
  fedrec_engine_set_callbacks(w.e, &cb);
  uint32_t count, none[FEDREC_PHASES] = {0};
  uint64_t cursor = 0, last, r1 = fedrec_engine_round(w.e), round;
  assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(w.participated_round, r1);
  assert_int_equal(w.participated_n, 50);
  double eps1 = fedrec_ledger_epsilon(w.ledger);
  fedrec_engine_participation(w.e, 0, &count, &last);
  assert_int_equal(count, 1);
  assert_int_equal(last, r1);
  int acc;
  uint32_t retry;
  assert_status(fedrec_engine_checkin(w.e, 0, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_false(acc); /* spent: told to come back, as when not needed */
  assert_true(retry > 0);
  assert_true(run_round(&w, 50, none, &cursor)); /* fifty others */
  assert_int_equal(w.published, 3);
  /* two rounds, each device in one: the epsilon of one */
  assert_near(fedrec_ledger_epsilon(w.ledger), eps1, 1e-9 * eps1);
  w.refuse_participation = 1;
  uint64_t r3 = fedrec_engine_round(w.e);
  run_round(&w, 50, none, &cursor);
  assert_int_equal(w.published, 3);
  if (!strstr(w.last_reason, "could not be persisted: nothing unmasked")) fail_msg("aborted: %s", w.last_reason);
  fedrec_engine_participation(w.e, cursor - 1, &count, &last);
  assert_int_equal(count, 0); /* not counted in memory either */
  assert_int_equal(fedrec_engine_round(w.e), r3 + 1);
  assert_status(fedrec_engine_restore_participation(w.e, 7, 1, 1, &err), FEDREC_OK); /* between rounds, no one in */
  assert_status(fedrec_engine_checkin(w.e, 5000, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_status(fedrec_engine_restore_participation(w.e, 7, 1, 1, &err), FEDREC_ERR_STATE);
  world_free(&w);

  /* settings that would under-report are refused */
  fedrec_model m;
  fedrec_identity id;
  fedrec_ledger *l;
  uint8_t seed[32] = {9};
  char path[96];
  snprintf(path, sizeof path, "/tmp/fedrec_engine_bound_%d.db", (int)getpid());
  unlink(path);
  assert_status(fedrec_identity_from_seed(&id, seed), FEDREC_OK);
  assert_status(fedrec_ledger_create_with(&l, path, &(fedrec_ledger_terms){.delta = 1e-5, .budget = 1e6, .max_participation = 2}, &id, &err),
                FEDREC_OK);
  int32_t all[20];
  for (int32_t i = 0; i < 20; i++) all[i] = i;
  assert_status(fedrec_model_init(&m, 20, 4, NULL, 0, 0, all, 20, 1, 0.1f, &err), FEDREC_OK);
  fedrec_engine *e = NULL;
  c.max_participation = 0; /* the ledger assumes 2 */
  assert_status(fedrec_engine_new(&e, &c, &m, 1, &id, l, NULL, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "at most 2 participations"));
  c.max_participation = 3;
  assert_status(fedrec_engine_new(&e, &c, &m, 1, &id, l, NULL, NULL, &err), FEDREC_ERR_ARG);
  c.max_participation = 2, c.sampling_rate = 0.1;
  assert_status(fedrec_engine_new(&e, &c, &m, 1, &id, l, NULL, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "replaces the sampling assumption"));
  fedrec_model_free(&m);
  fedrec_ledger_close(l);
  fedrec_identity_free(&id);
  unlink(path);
}

/* min_separation: a device that took part in round r is next selected in round r + M. */
static void test_min_separation(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.min_separation = 3;
  world w;
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  uint32_t none[FEDREC_PHASES] = {0};
  uint64_t cursor = 0, r1 = fedrec_engine_round(w.e), round;
  assert_true(run_round(&w, 50, none, &cursor));
  int acc;
  uint32_t retry;
  for (uint64_t r = r1 + 1; r < r1 + 3; r++) { /* two selections released: the rounds pass */
    assert_int_equal(fedrec_engine_round(w.e), r);
    assert_status(fedrec_engine_checkin(w.e, 3, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    assert_false(acc);
    assert_status(fedrec_engine_checkin(w.e, 100000 + r, w.now, &acc, &round, &retry, &err), FEDREC_OK);
    assert_true(acc);
    w.now += c.selection_ms + 1;
    fedrec_engine_tick(w.e, w.now);
  }
  assert_int_equal(fedrec_engine_round(w.e), r1 + 3);
  assert_status(fedrec_engine_checkin(w.e, 3, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_true(acc);
  world_free(&w);
}

/* An engine that must not start: fedrec_engine_new with c, a 20-item model (d 4, the first
 * n_free items with free embeddings) and a fresh ledger fails with FEDREC_ERR_ARG and, when why
 * is given, a message holding it. */
static void engine_refused(const fedrec_engine_config *c, int32_t n_free, const char *why) {
  fedrec_error err = {0};
  fedrec_identity id;
  uint8_t seed[32] = {3};
  assert_status(fedrec_identity_from_seed(&id, seed), FEDREC_OK);
  int32_t all[20];
  for (int32_t i = 0; i < 20; i++) all[i] = i;
  fedrec_model m;
  assert_status(fedrec_model_init(&m, 20, 4, NULL, 0, 0, all, n_free, 1, 0.1f, &err), FEDREC_OK);
  fedrec_engine *e = NULL;
  fedrec_ledger *l;
  char path[96];
  snprintf(path, sizeof path, "/tmp/fedrec_engine_refused_%d.db", (int)getpid());
  unlink(path);
  assert_status(fedrec_ledger_create(&l, path, 1e-5, 1e6, NULL, &id, &err), FEDREC_OK);
  assert_status(fedrec_engine_new(&e, c, &m, 1, &id, l, NULL, NULL, &err), FEDREC_ERR_ARG);
  if (why && !strstr(err.msg, why)) fail_msg("refused for '%s', expected '%s'", err.msg, why);
  fedrec_ledger_close(l);
  unlink(path);
  fedrec_model_free(&m); /* the caller's still, or zeroed by an engine that took it before refusing */
  fedrec_identity_free(&id);
}

/* DP-FTRL: each round's release is followed by its tree entry; the public epsilon (the
 * tree's) is below the operator's; a device takes part once per tree (round 2, same tree:
 * round 1's devices are turned away; round 3, a new tree: all of them are taken again); the
 * ledger verifies; settings DP-FTRL cannot honour are refused. */
static void test_dp_ftrl(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.tree_noise_multiplier = 4, c.tree_rounds = 2;
  world w;
  world_init(&w, &c, 1e6);
  fedrec_error err = {0};
  uint32_t none[FEDREC_PHASES] = {0};
  uint64_t cursor = 0, round;
  double r0 = recall(&w);
  assert_true(run_round(&w, 50, none, &cursor));
  uint64_t after1 = cursor;
  int acc;
  uint32_t retry;
  assert_status(fedrec_engine_checkin(w.e, 0, w.now, &acc, &round, &retry, &err), FEDREC_OK);
  assert_false(acc); /* took part in this tree */
  assert_true(run_round(&w, 50, none, &cursor));
  cursor = 0; /* round 3 starts a new tree: round 1's devices again */
  assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(cursor, after1);
  assert_int_equal(w.published, 4);
  double eps = fedrec_ledger_epsilon(w.ledger), pub = fedrec_ledger_epsilon_public(w.ledger);
  print_message("DP-FTRL, 3 rounds: epsilon %.3f against the operator, %.3f against model recipients; Recall@20 %.4f -> %.4f\n",
                eps, pub, r0, recall(&w));
  assert_true(pub < eps);
  fedrec_ledger_summary s;
  fedrec_engine_free(w.e);
  w.e = NULL;
  fedrec_ledger_close(w.ledger);
  w.ledger = NULL;
  assert_status(fedrec_ledger_verify(w.ledger_path, w.id.pk, &s, NULL, 0, &err), FEDREC_OK);
  assert_int_equal(s.entries, 6);
  assert_near(s.epsilon_public, pub, 1e-12 * pub);
  world_free(&w);

  c.sampling_rate = 0.5; /* DP-FTRL assumes no sampling */
  engine_refused(&c, 20, "DP-FTRL needs");
  c.sampling_rate = 0, c.tree_rounds = 0; /* no tree length */
  engine_refused(&c, 20, NULL);
}

/* Count rounds (private popularity): round 1 asks its members for their items (the round info
 * says so, over n_items, with the count rounds' own noise), its noisy sum lands in the model's
 * popularity within the noise of the cohort's true clipped counts, round 2 trains the model as
 * usual with the popularity coordinate in the item vectors; the ledger verifies with both
 * entries; count rounds with DP-FTRL are refused. */
static void test_popularity_rounds(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.popularity_rounds = 1;
  c.popularity_noise_multiplier = 0.05;
  world w;
  world_init(&w, &c, 1e6);
  const fedrec_model *m = fedrec_engine_current_model(w.e);
  int32_t ni = m->n_items;
  assert_non_null(m->pop);
  assert_int_equal(fedrec_model_vdim(m), m->d + 1);
  uint32_t none[FEDREC_PHASES] = {0};
  uint64_t cursor = 0;
  assert_true(run_round(&w, 50, none, &cursor));
  /* what the 50 members sent, before noise: each history's 0/1 vector clipped to norm 2 */
  const fedrec_csr *R = &w.split.train;
  double *want = calloc((size_t)ni, sizeof *want), err2 = 0, top = 0, ss = 0;
  uint64_t u = 0;
  for (uint32_t k = 0; k < 50; u++) {
    int64_t a = R->indptr[u], b = R->indptr[u + 1];
    if (b - a < 2) continue;
    double scale = fmin(1.0, c.clip / sqrt((double)(b - a)));
    for (int64_t j = a; j < b; j++) want[R->indices[j]] += scale;
    k++;
  }
  m = fedrec_engine_current_model(w.e);
  for (int32_t i = 0; i < ni; i++) {
    err2 = fmax(err2, fabs(m->pop[i] - want[i]));
    ss += (m->pop[i] - want[i]) * (m->pop[i] - want[i]);
    top = fmax(top, want[i]);
  }
  print_message("count round: popularity within %.3f (rms %.3f) of the clipped counts (largest %.2f)\n", err2, sqrt(ss / ni), top);
  assert_true(top > 3);
  /* noise (std 0.1 at min_survivors, more with all 50) and the grid's rounding: well below the
   * counts' spread; a sum that missed members or counted items twice is off by >= 0.3 per item */
  assert_true(err2 < 1.5 && sqrt(ss / ni) < 0.4);
  assert_int_equal(w.published, 2);
  double r1 = recall(&w);
  float *pop1 = malloc((size_t)ni * sizeof *pop1);
  memcpy(pop1, m->pop, (size_t)ni * sizeof *pop1);
  assert_true(run_round(&w, 50, none, &cursor)); /* a model round: the popularity stays */
  assert_int_equal(fedrec_engine_rounds_done(w.e), 2);
  assert_memory_equal(fedrec_engine_current_model(w.e)->pop, pop1, (size_t)ni * sizeof *pop1);
  free(pop1);
  print_message("Recall@20 after the count round %.4f, after a model round %.4f\n", r1, recall(&w));
  assert_int_equal(closed_ledger_entries(&w), 2);
  world_free(&w);
  free(want);

  c.tree_noise_multiplier = 4, c.tree_rounds = 2;
  engine_refused(&c, 20, "DP-FTRL");
}

/* A spectral round after the count round: its kind and length M (M + 1) / 2 in the round info,
 * the top-M items by the model's popularity get their free embeddings from the co-occurrence
 * sum's leading eigenvectors (some directions above the noise: rank >= 1), every other item's
 * free embedding is zero, and the ledger holds three entries after a model round; engines that
 * cannot run it (no count round, or items without free embeddings) are refused. */
static void test_spectral_round(void **state) {
  (void)state;
  fedrec_engine_config c;
  base_config(&c);
  c.popularity_rounds = 1;
  c.spectral_items = 40;
  c.popularity_noise_multiplier = 0.05;
  world w;
  world_init(&w, &c, 1e6);
  uint32_t none[FEDREC_PHASES] = {0};
  uint64_t cursor = 0;
  assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(w.last_kind, FEDREC_ROUND_COUNT);
  double r1 = recall(&w);
  assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(w.last_kind, FEDREC_ROUND_GRAM);
  assert_true(w.last_rank >= 1);
  const fedrec_model *m = fedrec_engine_current_model(w.e);
  int32_t top[40], d = m->d;
  fedrec_error err = {0};
  assert_status(fedrec_model_top_popular(top, m, 40, &err), FEDREC_OK);
  uint8_t in_top[300] = {0};
  for (int a = 0; a < 40; a++) in_top[top[a]] = 1;
  double inside = 0, outside = 0;
  for (int32_t i = 0; i < m->n_items; i++)
    for (int32_t j = 0; j < d; j++) {
      float v = m->E[(size_t)m->free_row[i] * d + j];
      if (in_top[i]) inside += fabs(v);
      else outside += fabs(v);
    }
  double r2 = recall(&w);
  print_message("spectral round: rank %u of %d; Recall@20 %.4f after the count round, %.4f after the spectral one\n",
                w.last_rank, d, r1, r2);
  assert_true(inside > 0 && outside == 0);
  assert_true(run_round(&w, 50, none, &cursor));
  assert_int_equal(w.last_kind, FEDREC_ROUND_MODEL);
  assert_int_equal(closed_ledger_entries(&w), 3);
  world_free(&w);

  c.popularity_rounds = 0; /* nothing to rank the items by */
  c.spectral_items = 10;
  engine_refused(&c, 20, "count) rounds before it");
  c.popularity_rounds = 1; /* items without a free embedding */
  engine_refused(&c, 10, "free embedding for every item");
}

/* What a hostile coordinator may say about a round's kind, checked on the device before anything
 * is computed: an unknown kind, a count round not over the model's items, a spectral round whose
 * length is no M (M + 1) / 2, covers more items than the model or FEDREC_MAX_SPECTRAL_ITEMS, or
 * comes for a model without popularity; the well-formed ones are accepted. */
static void test_round_kinds_checked(void **state) {
  (void)state;
  fedrec_error err = {0};
  int32_t all[20], items[3] = {1, 4, 7};
  for (int32_t i = 0; i < 20; i++) all[i] = i;
  fedrec_model m;
  assert_status(fedrec_model_init(&m, 20, 4, NULL, 0, 0, all, 20, 1, 0.1f, &err), FEDREC_OK);
  fedrec_engine_config c;
  base_config(&c);
  fedrec_round_info info = {.alpha0 = 0.3f, .reg = 0.003f};
  fedrec_participant *p = NULL;
  struct { fedrec_round_kind kind; uint32_t dim; int pop; fedrec_status want; } cases[] = {
      {FEDREC_ROUND_MODEL, 80, 0, FEDREC_OK},        {(fedrec_round_kind)7, 80, 0, FEDREC_ERR_ARG},
      {FEDREC_ROUND_COUNT, 20, 0, FEDREC_OK},        {FEDREC_ROUND_COUNT, 80, 0, FEDREC_ERR_ARG},
      {FEDREC_ROUND_GRAM, 15, 0, FEDREC_ERR_ARG},    {FEDREC_ROUND_GRAM, 15, 1, FEDREC_OK},
      {FEDREC_ROUND_GRAM, 16, 1, FEDREC_ERR_ARG},    {FEDREC_ROUND_GRAM, 231, 1, FEDREC_ERR_ARG} /* M = 21 > 20 */};
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    if (cases[k].pop) assert_status(fedrec_model_add_popularity(&m, &err), FEDREC_OK);
    for (int32_t i = 0; m.pop && i < 20; i++) m.pop[i] = (float)i;
    info.kind = cases[k].kind;
    assert_status(fedrec_engine_round_ddp(&c, cases[k].dim, 50, &info.ddp, &err), FEDREC_OK);
    fedrec_status s = fedrec_participant_new(&p, &info, &m, items, NULL, 3, NULL, &err);
    if (s != cases[k].want) fail_msg("case %zu: %s (%s)", k, fedrec_status_str(s), err.msg);
    fedrec_participant_free(p);
    p = NULL;
  }
  fedrec_model_free(&m);
  /* the cap: a spectral round over 4097 items is refused, by the device as by the engine */
  int32_t *many = malloc(5000 * sizeof *many);
  for (int32_t i = 0; i < 5000; i++) many[i] = i;
  assert_status(fedrec_model_init(&m, 5000, 2, NULL, 0, 0, many, 5000, 1, 0.1f, &err), FEDREC_OK);
  assert_status(fedrec_model_add_popularity(&m, &err), FEDREC_OK);
  info.kind = FEDREC_ROUND_GRAM;
  info.ddp.dim = (uint32_t)fedrec_gram_dim(FEDREC_MAX_SPECTRAL_ITEMS + 1);
  assert_status(fedrec_participant_new(&p, &info, &m, items, NULL, 3, NULL, &err), FEDREC_ERR_ARG);
  assert_non_null(strstr(err.msg, "spectral round"));
  fedrec_model_free(&m);
  free(many);
}

int main(void) {
  assert_status(fedrec_crypto_init(), FEDREC_OK);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bad_requests),
      cmocka_unit_test(test_deadlines_adapt),
      cmocka_unit_test(test_selection_releases),
      cmocka_unit_test(test_rounds_with_dropouts),
      cmocka_unit_test(test_budget_stops),
      cmocka_unit_test(test_nothing_private_leaves),
      cmocka_unit_test(test_fedadam_and_poisson),
      cmocka_unit_test(test_local_steps),
      cmocka_unit_test(test_submit_sum),
      cmocka_unit_test(test_aggregators),
      cmocka_unit_test(test_poisson_one_coin),
      cmocka_unit_test(test_no_unmask_below_plan),
      cmocka_unit_test(test_no_noise_with_ledger),
      cmocka_unit_test(test_poisoned_update),
      cmocka_unit_test(test_free_embeddings_added),
      cmocka_unit_test(test_modality_added),
      cmocka_unit_test(test_participation_bound),
      cmocka_unit_test(test_active_variant),
      cmocka_unit_test(test_min_separation),
      cmocka_unit_test(test_dp_ftrl),
      cmocka_unit_test(test_popularity_rounds),
      cmocka_unit_test(test_spectral_round),
      cmocka_unit_test(test_round_kinds_checked),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
