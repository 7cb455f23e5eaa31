/* The coordinator's round engine (see include/fedrec/engine.h). */
#include "fedrec/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/accountant.h"

enum { DROPPED = -1 };

typedef struct member {
  uint64_t client;
  int done;       /* the last phase it answered (0: none yet), or DROPPED */
  int dropped_at; /* the phase whose deadline it missed; BANNED_AT: left out for a bad message */
} member;

enum { BANNED_AT = FEDREC_PHASES };

struct fedrec_engine {
  fedrec_engine_config c;
  fedrec_model model;
  uint64_t version;
  uint8_t *blob;
  size_t len;
  uint8_t hash[32], sig[FEDREC_SIG_BYTES];
  uint64_t ledger_entries; /* the ledger head the served model's signature covers */
  uint8_t ledger_head[32];
  const fedrec_identity *id;
  fedrec_ledger *ledger;
  fedrec_engine_callbacks cb;
  fedrec_entropy ent;
  int64_t dim;            /* parameters */
  float *x, *m1, *m2;     /* parameters and optimiser state */
  uint32_t *modsum;       /* padded */
  double *work;           /* padded */
  float *avg;             /* dim */
  fedrec_phase phase;
  uint64_t round, rounds_done, deadline, phase_start;
  member *members;
  uint32_t n, cap;
  uint32_t *slots; /* open addressing: client -> member index + 1 (0: empty) */
  uint32_t nslots; /* a power of two >= 2 cap */
  fedrec_secagg_server *sa;
  fedrec_round_info info; /* shared part; cohort_index is filled per client */
  fedrec_round_stats stats;
  char stop[640];
  /* members caught sending what no honest client sends: left out of later selections
   * (open addressing on client id + 1; 0: empty; at most MAX_BANNED, then no more) */
  uint64_t *banned;
  uint32_t nbanned, bslots;
  /* Poisson selection: one coin per (device, round), a keyed PRF of both, so checking in
   * again never draws again; the key is drawn once from the engine's entropy */
  uint8_t coin_key[FEDREC_KEY_BYTES];
  int overflow; /* more devices sampled than the cohort cap: the round will not run */
  /* adaptive deadlines: each phase's current one, in [phase_ms, max_phase_ms] */
  uint64_t phase_dl[FEDREC_PHASES];
  uint32_t aborts;       /* consecutive aborted rounds (releases at selection not counted) */
  uint32_t late_aborts;  /* of those, how many ended at a deadline the devices did not meet */
  uint64_t last_join;     /* when the last device joined the selection (fixed cohorts) */
  uint64_t aborted_round; /* the last aborted round (+1; 0: none) and why, for its members */
  char aborted_why[400];
};

enum { MAX_BANNED = 1u << 20 };

static void stop(fedrec_engine *e, const char *fmt, const char *detail);

void fedrec_engine_defaults(fedrec_engine_config *c) {
  memset(c, 0, sizeof *c);
  c->cohort = 100;
  c->min_cohort = 50;
  c->min_survivors = 40;
  c->selection_ms = 10000;
  c->phase_ms = 30000;
  c->max_phase_ms = 300000;
  c->max_aborts = 10;
  c->retry_ms = 5000;
  c->dropout = 0.1;
  c->dishonest = 0.05;
  c->fail_bits = 20;
  c->sec_bits = 40;
  c->clip = 1.0;
  c->noise_multiplier = 1.0;
  c->noise = FEDREC_NOISE_SKELLAM;
  c->bits = 0;
  c->p_wrap = 1e-6;
  c->rounding_ratio = 0.01;
  c->max_inflation = 0.05;
  c->optimizer = FEDREC_OPT_FEDAVG;
  c->server_lr = 1.0;
  c->momentum = 0.9;
  c->beta1 = 0.9;
  c->beta2 = 0.99;
  c->adam_eps = 1e-3;
  c->alpha0 = 0.3f;
  c->reg = 0.003f;
}

static uint64_t random_u64(fedrec_engine *e) {
  uint64_t v;
  e->ent.bytes(e->ent.ctx, &v, sizeof v);
  return v;
}

static uint32_t jitter(fedrec_engine *e, uint32_t ms) {
  return (uint32_t)(ms / 2 + random_u64(e) % ((uint64_t)ms + 1));
}

/* Encodes, hashes and signs the current model as `version`. */
static fedrec_status seal_model(fedrec_engine *e, uint64_t version, fedrec_error *err) {
  size_t len = fedrec_model_encoded_size(&e->model);
  uint8_t *blob = malloc(len);
  if (!blob) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: model blob of %zu bytes", len);
  fedrec_model_encode(blob, &e->model, version);
  free(e->blob);
  e->blob = blob;
  e->len = len;
  e->version = version;
  fedrec_hash2(e->hash, blob, len, NULL, 0);
  /* the ledger as it stands behind this model (every release it used is in it) */
  if (e->ledger) fedrec_ledger_head(e->ledger, &e->ledger_entries, e->ledger_head);
  else e->ledger_entries = 0, memset(e->ledger_head, 0, 32);
  uint8_t msg[FEDREC_MODEL_SIGNED_BYTES];
  fedrec_model_signed_message(msg, version, e->hash, e->ledger_entries, e->ledger_head);
  fedrec_sign(e->sig, msg, sizeof msg, e->id);
  return FEDREC_OK;
}

static int publish(fedrec_engine *e) {
  if (!e->cb.publish) return 0;
  fedrec_published p;
  fedrec_engine_model(e, &p);
  return e->cb.publish(e->cb.ctx, &p);
}

static int secagg_possible(uint32_t n, double dropout, double dishonest, double fail_bits, double sec_bits) {
  fedrec_secagg_choice ch;
  fedrec_error e;
  return !fedrec_secagg_choose(&ch, n, dropout, dishonest, fail_bits, sec_bits, &e);
}

uint32_t fedrec_engine_least_cohort(double dropout, double dishonest, double fail_bits, double sec_bits) {
  uint32_t hi = 2; /* doubling, then bisection (larger cohorts only make the bounds easier) */
  while (hi < FEDREC_SECAGG_MAX_CLIENTS && !secagg_possible(hi, dropout, dishonest, fail_bits, sec_bits)) hi *= 2;
  if (!secagg_possible(hi, dropout, dishonest, fail_bits, sec_bits)) return 0;
  uint32_t lo = hi / 2; /* infeasible (or 1) */
  while (hi - lo > 1) {
    uint32_t mid = lo + (hi - lo) / 2;
    if (secagg_possible(mid, dropout, dishonest, fail_bits, sec_bits)) hi = mid;
    else lo = mid;
  }
  return hi;
}

/* The largest dropout (which 0) or dishonest fraction (1) a cohort of n tolerates with the
 * other as configured; -1: none. */
static double most_tolerated(uint32_t n, const fedrec_engine_config *c, int which) {
  double lo = 0, hi = 0.99;
  if (!secagg_possible(n, which ? c->dropout : 0, which ? 0 : c->dishonest, c->fail_bits, c->sec_bits)) return -1;
  for (int i = 0; i < 30; i++) {
    double mid = (lo + hi) / 2;
    if (secagg_possible(n, which ? c->dropout : mid, which ? mid : c->dishonest, c->fail_bits, c->sec_bits)) lo = mid;
    else hi = mid;
  }
  return lo;
}

fedrec_status fedrec_engine_new(fedrec_engine **out, const fedrec_engine_config *c,
                                fedrec_model *model, uint64_t version, const fedrec_identity *id,
                                fedrec_ledger *ledger, const fedrec_engine_callbacks *cb,
                                const fedrec_entropy *entropy, fedrec_error *err) {
  *out = NULL;
  if (c->cohort < 2 || c->cohort > FEDREC_SECAGG_MAX_CLIENTS || c->min_survivors < 1 ||
      c->min_survivors > c->cohort || c->min_cohort < c->min_survivors || c->min_cohort > c->cohort)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: need 1 <= min_survivors <= min_cohort <= cohort (%u, %u, %u), cohort >= 2",
                            c->min_survivors, c->min_cohort, c->cohort);
  if (!(c->sampling_rate >= 0 && c->sampling_rate <= 1) || !(c->clip > 0) || !(c->noise_multiplier >= 0) ||
      c->phase_ms == 0 || c->retry_ms == 0 || c->bits > 32 || (c->bits && c->bits < 2))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: sampling rate in [0, 1], clip > 0, noise >= 0, phase and retry times > 0, bits 0 or 2..32");
  if (c->noise_multiplier > 0 && !ledger)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: noisy releases need a privacy ledger");
  /* a ledger promises that every release is accounted: a noiseless one cannot be (its epsilon
   * is unbounded), so a state with a ledger never trains without noise (61d538e published
   * noiseless models with no entry after a restart with noise 0) */
  if (ledger && !(c->noise_multiplier > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: noise multiplier 0 with a privacy ledger: noiseless releases "
                            "have unbounded epsilon and cannot be recorded; set a noise multiplier > 0");
  if (c->noise_multiplier > 0 && c->noise != FEDREC_NOISE_SKELLAM && c->noise != FEDREC_NOISE_DGAUSS)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: noise must be Skellam or discrete Gaussian");
  /* secure aggregation must be possible at both ends of the cohort sizes a round may have */
  fedrec_secagg_choice ch;
  uint32_t sizes[2] = {c->min_cohort, c->cohort};
  for (int i = 0; i < 2 && !c->plain; i++)
    if (fedrec_secagg_choose(&ch, sizes[i], c->dropout, c->dishonest, c->fail_bits, c->sec_bits, err)) {
      uint32_t least = fedrec_engine_least_cohort(c->dropout, c->dishonest, c->fail_bits, c->sec_bits);
      double d = most_tolerated(sizes[i], c, 0), h = most_tolerated(sizes[i], c, 1);
      char other[200] = "";
      if (d >= 0) snprintf(other, sizeof other, "; a cohort of %u meets them with dropout <= %.3g at dishonest %g", sizes[i], d, c->dishonest);
      if (h >= 0) snprintf(other + strlen(other), sizeof other - strlen(other), "%s dishonest <= %.3g at dropout %g",
                           d >= 0 ? ", or" : "; a cohort of %u meets them with", h, c->dropout);
      return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: a %s of %u cannot meet the secure-aggregation bounds "
                              "(dropout %g, dishonest %g, 2^-%g failure, 2^-%g insecurity): the smallest cohort that does "
                              "is %u (set cohort and min-cohort to at least that)%s",
                              i ? "cohort" : "min-cohort", sizes[i], c->dropout, c->dishonest, c->fail_bits, c->sec_bits, least, other);
    }
  fedrec_engine *e = calloc(1, sizeof *e);
  if (!e) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine");
  e->c = *c;
  if (e->c.max_phase_ms < e->c.phase_ms) e->c.max_phase_ms = e->c.phase_ms; /* 0: fixed deadlines */
  for (int ph = 0; ph < FEDREC_PHASES; ph++) e->phase_dl[ph] = e->c.phase_ms;
  e->model = *model;
  memset(model, 0, sizeof *model);
  e->id = id;
  e->ledger = ledger;
  if (cb) e->cb = *cb;
  if (entropy) e->ent = *entropy;
  else fedrec_csprng(&e->ent);
  e->dim = fedrec_model_params(&e->model);
  uint32_t padded = fedrec_ddp_padded((uint32_t)e->dim);
  e->x = malloc((size_t)e->dim * sizeof *e->x);
  e->m1 = calloc((size_t)e->dim, sizeof *e->m1);
  e->m2 = calloc((size_t)e->dim, sizeof *e->m2);
  e->avg = malloc((size_t)e->dim * sizeof *e->avg);
  e->modsum = malloc((size_t)padded * sizeof *e->modsum);
  e->work = malloc((size_t)padded * sizeof *e->work);
  e->cap = c->cohort;
  e->members = calloc(e->cap, sizeof *e->members);
  for (e->nslots = 4; e->nslots < 2 * e->cap; e->nslots <<= 1) {
  }
  e->slots = calloc(e->nslots, sizeof *e->slots);
  fedrec_status s = FEDREC_OK;
  if (!e->x || !e->m1 || !e->m2 || !e->avg || !e->modsum || !e->work || !e->members || !e->slots)
    s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: state for %lld parameters", (long long)e->dim);
  if (!s) {
    fedrec_model_get_params(e->x, &e->model);
    s = seal_model(e, version, err);
  }
  if (!s && publish(e)) s = fedrec_error_set(err, FEDREC_ERR_IO, "engine: could not persist the initial model");
  if (s) {
    fedrec_engine_free(e);
    return s;
  }
  e->ent.bytes(e->ent.ctx, e->coin_key, sizeof e->coin_key);
  e->phase = FEDREC_PHASE_SELECTING;
  e->round = 1;
  *out = e;
  return FEDREC_OK;
}

/* The device's selection coin for this round: heads with probability sampling_rate (a
 * 2^-53 multiple), the same however often it checks in. */
static int coin(const fedrec_engine *e, uint64_t client) {
  uint8_t h[FEDREC_KEY_BYTES];
  fedrec_mask_key(h, e->coin_key, e->round, FEDREC_PRF_COIN, (uint32_t)client, (uint32_t)(client >> 32), 0);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)h[i] << (8 * i);
  uint64_t q = (uint64_t)(e->c.sampling_rate * 9007199254740992.0);
  return (v >> 11) < q;
}

void fedrec_engine_free(fedrec_engine *e) {
  if (!e) return;
  fedrec_secagg_server_free(e->sa);
  fedrec_model_free(&e->model);
  free(e->blob), free(e->x), free(e->m1), free(e->m2), free(e->avg), free(e->modsum);
  free(e->work), free(e->members), free(e->slots), free(e->banned);
  free(e);
}

fedrec_status fedrec_engine_restore(fedrec_engine *e, uint64_t next_round, uint64_t rounds_done,
                                    const float *opt1, const float *opt2, fedrec_error *err) {
  if (e->phase != FEDREC_PHASE_SELECTING || e->n || next_round < 1)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "engine: restore only before the first check-in, with a round >= 1");
  e->round = next_round;
  e->rounds_done = rounds_done;
  size_t bytes = (size_t)e->dim * sizeof *e->m1;
  if (opt1) memcpy(e->m1, opt1, bytes);
  if (opt2) memcpy(e->m2, opt2, bytes);
  if (e->c.max_rounds && e->rounds_done >= e->c.max_rounds) {
    char what[32];
    snprintf(what, sizeof what, "%llu", (unsigned long long)e->rounds_done);
    stop(e, "all %s rounds done", what);
  }
  return FEDREC_OK;
}

void fedrec_engine_model(const fedrec_engine *e, fedrec_published *out) {
  out->next_round = e->round;
  out->rounds_done = e->rounds_done;
  out->opt1 = e->m1;
  out->opt2 = e->m2;
  out->dim = e->dim;
  out->version = e->version;
  out->blob = e->blob;
  out->len = e->len;
  memcpy(out->hash, e->hash, 32);
  memcpy(out->sig, e->sig, sizeof out->sig);
  out->ledger_entries = e->ledger_entries;
  memcpy(out->ledger_head, e->ledger_head, 32);
}

void fedrec_engine_set_callbacks(fedrec_engine *e, const fedrec_engine_callbacks *cb) { e->cb = *cb; }
const fedrec_model *fedrec_engine_current_model(const fedrec_engine *e) { return &e->model; }
fedrec_phase fedrec_engine_phase(const fedrec_engine *e) { return e->phase; }
uint64_t fedrec_engine_round(const fedrec_engine *e) { return e->round; }
uint64_t fedrec_engine_rounds_done(const fedrec_engine *e) { return e->rounds_done; }
const char *fedrec_engine_stop_reason(const fedrec_engine *e) { return e->stop; }
uint64_t fedrec_engine_deadline(const fedrec_engine *e) { return e->deadline; }

static uint32_t slot_of(const fedrec_engine *e, uint64_t client) {
  uint64_t h = client * 0x9e3779b97f4a7c15ULL;
  return (uint32_t)(h >> 32) & (e->nslots - 1);
}

static member *find(fedrec_engine *e, uint64_t client, uint32_t *idx) {
  for (uint32_t s = slot_of(e, client);; s = (s + 1) & (e->nslots - 1)) {
    uint32_t v = e->slots[s];
    if (!v) return NULL;
    if (e->members[v - 1].client == client) {
      if (idx) *idx = v - 1;
      return &e->members[v - 1];
    }
  }
}

/* The ban-list slot of client: where it is, or the empty slot where it would go. */
static uint32_t ban_slot(const fedrec_engine *e, uint64_t client) {
  uint32_t s = (uint32_t)((client * 0x9e3779b97f4a7c15ULL) >> 32) & (e->bslots - 1);
  while (e->banned[s] && e->banned[s] != client + 1) s = (s + 1) & (e->bslots - 1);
  return s;
}

int fedrec_engine_banned(const fedrec_engine *e, uint64_t client) {
  return e->bslots && e->banned[ban_slot(e, client)] == client + 1;
}

/* Leaves a misbehaving member out of this round (dropped) and of every later selection. */
static void ban(fedrec_engine *e, member *m) {
  m->done = DROPPED;
  m->dropped_at = BANNED_AT;
  if (fedrec_engine_banned(e, m->client) || e->nbanned >= MAX_BANNED) return;
  if (2 * (e->nbanned + 1) > e->bslots) { /* grow: at most half full */
    uint32_t ns = e->bslots ? 2 * e->bslots : 64, os = e->bslots;
    uint64_t *old = e->banned, *nb = calloc(ns, sizeof *nb);
    if (!nb) return;
    e->banned = nb, e->bslots = ns;
    for (uint32_t i = 0; i < os; i++)
      if (old[i]) e->banned[ban_slot(e, old[i] - 1)] = old[i];
    free(old);
  }
  e->banned[ban_slot(e, m->client)] = m->client + 1;
  e->nbanned++;
}

static void add_member(fedrec_engine *e, uint64_t client) {
  uint32_t s = slot_of(e, client);
  while (e->slots[s]) s = (s + 1) & (e->nslots - 1);
  e->members[e->n] = (member){client, 0, 0};
  e->slots[s] = ++e->n;
}

static void clear_members(fedrec_engine *e) {
  if (e->n) memset(e->slots, 0, (size_t)e->nslots * sizeof *e->slots);
  e->n = 0;
}

static double unit_open(fedrec_engine *e) { /* uniform in (0, 1) */
  uint64_t v = random_u64(e);
  return ((double)(v >> 11) + 0.5) * 0x1.0p-53;
}

/* Central mode: the noise multiplier relative to the rounded sum's L2 sensitivity. */
static double central_z(const fedrec_engine_config *c, const fedrec_ddp_params *p) {
  return c->noise_multiplier * c->clip / (p->gamma * fedrec_ddp_rounding_bound(p));
}

uint32_t fedrec_engine_colluders(const fedrec_engine_config *c, uint32_t n) {
  if (c->central || !(c->dishonest > 0)) return 0;
  double k = ceil(c->dishonest * n - 1e-9);
  return k >= n ? n : (uint32_t)k;
}

/* The ledger release of a round of a cohort of n with these DP parameters and `survivors`
 * clients: the noise of up to fedrec_engine_colluders(n) of them is not credited (they may
 * collude with the server, who then subtracts it, or skip it). */
static fedrec_release release_of(const fedrec_engine_config *c, const fedrec_ddp_params *p, uint64_t round,
                                 uint32_t survivors, uint32_t n) {
  double d2, d1;
  fedrec_ddp_sensitivity(p, &d2, &d1);
  double s2 = (double)p->sigma2_num / (double)p->sigma2_den;
  uint32_t col = fedrec_engine_colluders(c, n);
  if (col > survivors) col = survivors;
  fedrec_release r = {.round = round, .q = c->sampling_rate > 0 ? c->sampling_rate : 1.0,
                      .d2 = d2, .d1 = d1, .survivors = survivors, .colluders = col};
  if (c->central) { /* Gaussian noise z c on the sum, whose sensitivity is gamma times the rounded bound */
    r = (fedrec_release){.mechanism = FEDREC_MECH_GAUSSIAN, .round = round, .q = r.q, .z = central_z(c, p), .survivors = survivors};
  } else if (p->noise == FEDREC_NOISE_SKELLAM) {
    r.mechanism = FEDREC_MECH_SKELLAM;
    r.var = (survivors - col) * s2;
  } else {
    r.mechanism = FEDREC_MECH_DGAUSS;
    r.sigma = sqrt(s2);
    r.dim = fedrec_ddp_padded(p->dim);
  }
  return r;
}

static fedrec_release release_for(const fedrec_engine *e, uint32_t survivors) {
  return release_of(&e->c, &e->info.ddp, e->round, survivors, e->n);
}

fedrec_status fedrec_engine_round_ddp(const fedrec_engine_config *c, int64_t dim, uint32_t n,
                                      fedrec_ddp_params *p, fedrec_error *err) {
  if (dim < 1 || dim > (int64_t)1 << 31 || n < 1 || c->min_survivors < 1)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "round parameters: need 1 <= dim <= 2^31, a cohort and min_survivors >= 1");
  memset(p, 0, sizeof *p);
  p->dim = (uint32_t)dim;
  p->clip = c->clip;
  p->beta = exp(-0.5);
  p->noise = c->noise_multiplier > 0 && !c->central ? c->noise : FEDREC_NOISE_NONE;
  /* the noise of the honest ones among min_survivors clients (all but the colluders a cohort
   * of n may hold) has std z c; with all n surviving it is sqrt(n / honest) times that, which
   * the wrap-around bound must allow for */
  uint32_t col = fedrec_engine_colluders(c, n);
  if (col >= c->min_survivors)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "round parameters: a cohort of %u may hold %u colluders (dishonest %g), "
                            "as many as min_survivors %u: no noise could be credited", n, col, c->dishonest, c->min_survivors);
  uint32_t honest = c->min_survivors - col;
  double z = c->central ? 0 : c->noise_multiplier, zwrap = z * sqrt((double)n / honest);
  fedrec_error e2 = {0};
  fedrec_status s = c->bits ? fedrec_ddp_choose_gamma(&p->gamma, p->clip, p->dim, n, zwrap, c->bits, c->p_wrap, &e2)
                            : fedrec_ddp_choose_bits(&p->bits, &p->gamma, p->clip, p->dim, n, zwrap, c->p_wrap,
                                                     c->rounding_ratio, c->max_inflation, &e2);
  if (c->bits) p->bits = c->bits;
  if (s) return fedrec_error_set(err, s, "cannot encode updates: %s", e2.msg);
  if (z > 0) {
    double s2 = (z * p->clip / p->gamma) * (z * p->clip / p->gamma) / honest;
    uint64_t den = p->noise == FEDREC_NOISE_SKELLAM ? 1024 : 256;
    double num = ceil(s2 * (double)den);
    if (!(num >= 1 && num < (p->noise == FEDREC_NOISE_SKELLAM ? 1099511627776.0 : 4294967296.0)))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "per-client noise variance %.4g out of the sampler's range", s2);
    p->sigma2_num = (uint64_t)num;
    p->sigma2_den = den;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_engine_plan_epsilon(double *eps, const fedrec_engine_config *c, int64_t dim,
                                         uint32_t n, uint64_t rounds, double delta, fedrec_error *err) {
  fedrec_ddp_params p;
  fedrec_status s = fedrec_engine_round_ddp(c, dim, n, &p, err);
  if (s) return s;
  fedrec_orders o;
  fedrec_orders_default(&o);
  if (c->central && c->noise_multiplier > 0) {
    fedrec_release r = release_of(c, &p, 1, c->min_survivors, n);
    *eps = fedrec_release_epsilon(&r, (double)rounds, delta, &o, NULL);
    return FEDREC_OK;
  }
  if (p.noise == FEDREC_NOISE_NONE) {
    *eps = INFINITY;
    return FEDREC_OK;
  }
  fedrec_release r = release_of(c, &p, 1, c->min_survivors, n);
  *eps = fedrec_release_epsilon(&r, (double)rounds, delta, &o, NULL);
  return FEDREC_OK;
}

static void stop(fedrec_engine *e, const char *fmt, const char *detail) {
  snprintf(e->stop, sizeof e->stop, fmt, detail);
  e->phase = FEDREC_PHASE_STOPPED;
  fedrec_secagg_server_free(e->sa);
  e->sa = NULL;
  clear_members(e);
}

static void new_selection(fedrec_engine *e) {
  fedrec_secagg_server_free(e->sa);
  e->sa = NULL;
  clear_members(e);
  e->deadline = 0;
  e->overflow = 0;
  e->phase = FEDREC_PHASE_SELECTING;
  memset(&e->stats, 0, sizeof e->stats);
}

enum { ABORT_OTHER = 0, ABORT_LATE = 1, ABORT_ATTACK = 2 };

/* Ends the round without a publication. kind: ABORT_LATE, it ended at a deadline too few
 * devices met; ABORT_ATTACK, a member's doing (a named culprit, or a sum that only an
 * unclipped input explains). Towards max_aborts count neither rounds that never started (a
 * selection that did not fill: waiting for devices is not a failure of the round) nor
 * attacks: one token must not be able to stop training by spoiling rounds in a row. */
static void abort_round_as(fedrec_engine *e, const char *why, int kind) {
  int started = e->phase != FEDREC_PHASE_SELECTING;
  e->stats.round = e->round;
  e->stats.cohort = e->n;
  e->stats.aborted = 1;
  snprintf(e->stats.reason, sizeof e->stats.reason, "%s", why);
  if (e->cb.round_done) e->cb.round_done(e->cb.ctx, &e->stats);
  e->aborted_round = e->round + 1;
  snprintf(e->aborted_why, sizeof e->aborted_why, "%s", why);
  uint64_t round = e->round++;
  new_selection(e);
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
    stop(e, "%s", msg);
  }
}

static void abort_round(fedrec_engine *e, const char *why) { abort_round_as(e, why, ABORT_OTHER); }

/* Sets up secure aggregation and the DP pipeline for the selected cohort; checks the budget. */
static void start_round(fedrec_engine *e, uint64_t now) {
  fedrec_error err = {0};
  uint32_t n = e->n;
  fedrec_secagg_choice ch = {.k = n - 1, .t = n / 2 + 1, .complete = 1};
  if (!e->c.plain && fedrec_secagg_choose(&ch, n, e->c.dropout, e->c.dishonest, e->c.fail_bits, e->c.sec_bits, &err)) {
    abort_round(e, err.msg);
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
  fedrec_ddp_params *p = &in->ddp;
  if (fedrec_engine_round_ddp(&e->c, e->dim, n, p, &err)) {
    stop(e, "%s", err.msg);
    return;
  }
  p->round_seed = random_u64(e);
  if (p->noise != FEDREC_NOISE_NONE || (e->c.central && e->c.noise_multiplier > 0)) {
    fedrec_release r = release_for(e, e->c.min_survivors);
    if (fedrec_ledger_check(e->ledger, &r, NULL, &err)) {
      stop(e, "privacy budget: %s", err.msg);
      return;
    }
  }
  fedrec_secagg_params *sp = &in->secagg;
  sp->session = random_u64(e);
  sp->n = n;
  sp->k = ch.complete ? n - 1 : ch.k;
  sp->t = ch.t;
  sp->bits = p->bits;
  sp->dim = fedrec_ddp_padded(p->dim);
  sp->active = 0;
  e->ent.bytes(e->ent.ctx, sp->graph_seed, sizeof sp->graph_seed);
  e->stats.round = e->round;
  e->stats.cohort = n;
  if (e->c.plain) { /* straight to the (unmasked) input */
    memset(e->modsum, 0, (size_t)sp->dim * sizeof *e->modsum);
    for (uint32_t i = 0; i < n; i++) e->members[i].done = FEDREC_PHASE_SHARES;
    e->phase = FEDREC_PHASE_MASKED;
    e->phase_start = now;
    e->deadline = now + e->phase_dl[FEDREC_PHASE_MASKED];
    in->deadline_ms = e->deadline;
    return;
  }
  e->sa = fedrec_secagg_server_new(sp, NULL, &err);
  if (!e->sa) {
    abort_round(e, err.msg);
    return;
  }
  fedrec_secagg_server_set_threads(e->sa, (int)e->c.unmask_threads);
  e->phase = FEDREC_PHASE_KEYS;
  e->phase_start = now;
  e->deadline = now + e->phase_dl[FEDREC_PHASE_KEYS];
  in->deadline_ms = e->deadline;
}

fedrec_status fedrec_engine_checkin(fedrec_engine *e, uint64_t client, uint64_t now,
                                    int *accepted, uint64_t *round, uint32_t *retry_ms,
                                    fedrec_error *err) {
  *accepted = 0;
  *round = e->round;
  *retry_ms = jitter(e, e->c.retry_ms);
  if (fedrec_engine_banned(e, client))
    return fedrec_error_set(err, FEDREC_ERR_STATE, "left out: this device sent a secure-aggregation message that no honest client sends");
  if (e->phase != FEDREC_PHASE_SELECTING) {
    if (e->phase != FEDREC_PHASE_STOPPED && find(e, client, NULL)) *accepted = 1; /* already in */
    return FEDREC_OK;
  }
  if (find(e, client, NULL)) {
    *accepted = 1;
    return FEDREC_OK;
  }
  if (!e->deadline) e->deadline = now + e->c.selection_ms; /* the window opens */
  if (e->c.sampling_rate > 0) {
    /* Poisson sampling: every device whose coin says yes, none other, no cap. The round
     * starts when the window closes; a cohort past the cap cannot run (see fedrec_engine_tick) */
    if (!coin(e, client)) return FEDREC_OK;
    if (e->n == e->cap) {
      e->overflow = 1;
      return FEDREC_OK;
    }
    add_member(e, client);
    *accepted = 1;
    return FEDREC_OK;
  }
  add_member(e, client);
  *accepted = 1;
  e->last_join = now;
  if (e->n == e->cap) start_round(e, now);
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
  member *m = round == e->round ? find(e, client, &idx) : NULL;
  *retry_ms = 0;
  if (!m || e->phase == FEDREC_PHASE_STOPPED || m->done == DROPPED) return left_out(e, m, round, err);
  if (e->phase == FEDREC_PHASE_SELECTING) {
    *retry_ms = jitter(e, 200);
    return FEDREC_OK;
  }
  *out = e->info;
  out->cohort_index = idx;
  if (e->c.sum_noise && e->info.ddp.noise == FEDREC_NOISE_SKELLAM)
    out->ddp.noise = FEDREC_NOISE_NONE; /* the engine draws the sum's noise itself */
  out->deadline_ms = e->deadline;
  return FEDREC_OK;
}

static const int WANT[FEDREC_PHASES] = {0, FEDREC_SA_MSG_KEYS, FEDREC_SA_MSG_BOXES, FEDREC_SA_MSG_MASKED,
                                        FEDREC_SA_MSG_REVEALS, 0};

fedrec_status fedrec_engine_submit(fedrec_engine *e, uint64_t client, uint64_t round,
                                   fedrec_phase phase, const uint8_t *msg, size_t len,
                                   uint64_t now, fedrec_error *err) {
  uint32_t idx;
  member *m = round == e->round && e->phase != FEDREC_PHASE_SELECTING ? find(e, client, &idx) : NULL;
  if (!m || m->done == DROPPED) return left_out(e, m, round, err);
  if (phase != e->phase || phase < FEDREC_PHASE_KEYS || phase > FEDREC_PHASE_UNMASK)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu is in phase %s, not %s", (unsigned long long)round,
                            fedrec_phase_name(e->phase), fedrec_phase_name(phase));
  if (m->done >= (int)phase)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: %s already received from this client (replay)",
                            (unsigned long long)round, fedrec_phase_name(phase));
  if (m->done != (int)phase - 1)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: client skipped a phase", (unsigned long long)round);
  fedrec_sa_msg sm;
  fedrec_status s = fedrec_sa_decode(&sm, msg, len, e->n, e->info.secagg.dim, err);
  if (s) {
    if (s == FEDREC_ERR_PARSE || s == FEDREC_ERR_LIMIT) ban(e, m);
    return s;
  }
  uint32_t id = sm.type == FEDREC_SA_MSG_KEYS ? sm.u.keys.id : sm.type == FEDREC_SA_MSG_MASKED ? sm.u.masked.id
              : sm.type == FEDREC_SA_MSG_REVEALS ? sm.u.reveals.id : idx;
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
  else s = fedrec_secagg_server_on_reveals(e->sa, &sm.u.reveals, err);
  fedrec_sa_msg_free(&sm);
  if (s) {
    /* a malformed message, or one the secure-aggregation server refused (bad keys, boxes
     * to anyone but its neighbours, indices past the cohort, ...): no honest client sends it */
    if (s == FEDREC_ERR_PARSE || s == FEDREC_ERR_ARG) ban(e, m);
    return s;
  }
  m->done = (int)phase;
  e->stats.bytes_in += len;
  fedrec_engine_tick(e, now);
  return FEDREC_OK;
}

fedrec_status fedrec_engine_submit_sum(fedrec_engine *e, uint64_t round, const uint64_t *clients, uint32_t n,
                                       const uint32_t *sum, uint32_t dim, uint64_t bytes, uint64_t now,
                                       fedrec_error *err) {
  if (round != e->round || e->phase != FEDREC_PHASE_MASKED)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: no masked phase open for a sum", (unsigned long long)round);
  if (dim != e->info.secagg.dim)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "a sum of %u values, the round uses %u", dim, e->info.secagg.dim);
  if (n == 0) return FEDREC_OK;
  uint32_t *idx = malloc((size_t)n * sizeof *idx), a = 0;
  if (!idx) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: %u clients in a sum", n);
  fedrec_status s = FEDREC_OK;
  const int pending = (int)FEDREC_PHASE_MASKED + 100; /* marks who is in this sum, to catch repeats */
  for (; a < n; a++) { /* a: how many are marked */
    member *m = find(e, clients[a], &idx[a]);
    if (!m || m->done != (int)FEDREC_PHASE_MASKED - 1) {
      s = fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu: client %llu of a sum %s", (unsigned long long)round,
                           (unsigned long long)clients[a],
                           !m ? "is not in the round" : m->done == DROPPED ? "was dropped"
                           : m->done == pending ? "is named twice" : "has already sent its input or skipped a phase");
      break;
    }
    m->done = pending;
  }
  uint32_t mask = e->info.secagg.bits >= 32 ? 0xffffffffu : (1u << e->info.secagg.bits) - 1;
  if (!s && e->c.plain) {
    uint32_t over = 0; /* no early exit: the loop vectorises */
    for (uint32_t k = 0; k < dim; k++) over |= sum[k] & ~mask;
    if (over) s = fedrec_error_set(err, FEDREC_ERR_ARG, "a sum value is out of the round's %u bits", e->info.secagg.bits);
  } else if (!s) s = fedrec_secagg_server_on_masked_sum(e->sa, idx, n, sum, dim, err);
  for (uint32_t b = 0; b < a; b++) e->members[idx[b]].done = s ? (int)FEDREC_PHASE_MASKED - 1 : (int)FEDREC_PHASE_MASKED;
  free(idx);
  if (s) return s;
  if (e->c.plain)
    for (uint32_t k = 0; k < dim; k++) e->modsum[k] = (e->modsum[k] + sum[k]) & mask;
  e->stats.bytes_in += bytes;
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
  member *m = round == e->round && e->phase != FEDREC_PHASE_SELECTING ? find(e, client, &idx) : NULL;
  if (!m || m->done == DROPPED) return left_out(e, m, round, err);
  if (phase < FEDREC_PHASE_SHARES || phase > FEDREC_PHASE_UNMASK)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "phase %s has no input to fetch", fedrec_phase_name(phase));
  if (e->phase < phase) { /* not open yet */
    *retry_ms = jitter(e, 100);
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

static void optimise(fedrec_engine *e) {
  const fedrec_engine_config *c = &e->c;
  fedrec_optimizer_params p = {c->server_lr, c->momentum, c->beta1, c->beta2, c->adam_eps};
  fedrec_optimizer_step(c->optimizer, &p, e->rounds_done + 1, e->x, e->m1, e->m2, e->avg, e->dim);
  fedrec_model_set_params(&e->model, e->x);
}

/* A bound on the L2 norm of the decoded sum of `summed` honest inputs, exceeded with
 * probability below 1e-13: each input's rounded encoding is at most gamma times
 * fedrec_ddp_rounding_bound (the encoder enforces it), and the noise in the sum, iid per
 * coordinate with the survivors' total variance v (integer units), has squared norm at most
 * v (D + 2 sqrt(D x) + 2 x) with x = 30 for a Gaussian (Laurent and Massart 2000); Skellam
 * and discrete Gaussian noise get 10% on top for their lattice and tails. */
static double sum_norm_bound(const fedrec_engine *e, uint32_t summed) {
  const fedrec_ddp_params *p = &e->info.ddp;
  double D = (double)e->info.secagg.dim, x = 30, v = 0;
  if (p->noise != FEDREC_NOISE_NONE) v = (double)summed * (double)p->sigma2_num / (double)p->sigma2_den;
  double noise = 1.1 * p->gamma * sqrt(v * (D + 2 * sqrt(D * x) + 2 * x));
  return summed * p->gamma * fedrec_ddp_rounding_bound(p) + noise;
}

static void finish_round(fedrec_engine *e, uint64_t now) {
  fedrec_error err = {0};
  uint32_t summed = 0;
  if (e->c.plain) {
    for (uint32_t i = 0; i < e->n; i++) summed += e->members[i].done >= (int)FEDREC_PHASE_MASKED;
  } else if (fedrec_secagg_server_finish(e->sa, e->modsum, &summed, &err)) {
    uint32_t culprit = fedrec_secagg_server_culprit(e->sa); /* its boxes did not open: banned */
    if (culprit && culprit <= e->n) ban(e, &e->members[culprit - 1]);
    abort_round_as(e, err.msg, culprit && culprit <= e->n ? ABORT_ATTACK : ABORT_OTHER);
    return;
  }
  const fedrec_ddp_params *p = &e->info.ddp;
  if (e->c.sum_noise && p->noise == FEDREC_NOISE_SKELLAM && summed > 0) {
    /* Skellam(summed lambda): the distribution of the survivors' shares added up. Simulation
     * only: a fast floating-point Poisson sampler, O(1) at any lambda; the clients' own draws
     * (and everything deployed) use the exact one */
    double lambda = (double)p->sigma2_num * summed / (2.0 * (double)p->sigma2_den);
    uint32_t mask = e->info.secagg.bits >= 32 ? 0xffffffffu : (1u << e->info.secagg.bits) - 1;
    const fedrec_entropy *src = e->c.sum_noise_entropy.bytes ? &e->c.sum_noise_entropy : &e->ent;
    for (uint32_t k = 0; k < e->info.secagg.dim; k++)
      e->modsum[k] = (uint32_t)(((int64_t)e->modsum[k] + fedrec_skellam_fast(src, lambda)) & mask);
  }
  /* The sum is unmasked: from here on it is a release, recorded before anything else,
   * whatever happens to the round afterwards (discarded rounds included) */
  double eps = 0;
  int central = e->c.central && e->c.noise_multiplier > 0;
  if (e->info.ddp.noise != FEDREC_NOISE_NONE || central) {
    fedrec_release r = release_for(e, summed);
    fedrec_status s = fedrec_ledger_append(e->ledger, &r, &eps, &err);
    if (s) { /* not recorded: the aggregate must not be used */
      e->stats.aborted = 1;
      snprintf(e->stats.reason, sizeof e->stats.reason, "ledger: %s", err.msg);
      if (e->cb.round_done) e->cb.round_done(e->cb.ctx, &e->stats);
      stop(e, "ledger refused the release: %s", err.msg);
      return;
    }
  }
  if (summed < e->c.min_survivors) { /* cannot happen (checked before unmasking); recorded above */
    char why[128];
    snprintf(why, sizeof why, "%u survivors, fewer than the %u required (released and recorded)", summed, e->c.min_survivors);
    e->stats.epsilon = eps;
    abort_round(e, why);
    return;
  }
  fedrec_ddp_decode(e->avg, e->modsum, &e->info.ddp, e->work);
  /* SecAgg cannot check what a client put in its input: one that skipped clipping can steer
   * the sum. The sum cannot be longer than summed clipped (and rounded) updates plus the
   * noise; longer, it is discarded (its release is recorded above). */
  double sum2 = 0, bound = sum_norm_bound(e, summed);
  for (int64_t i = 0; i < e->dim; i++) sum2 += (double)e->avg[i] * e->avg[i];
  if (!(sqrt(sum2) <= bound)) {
    char why[240];
    snprintf(why, sizeof why, "the decoded sum's norm %.4g exceeds %.4g (%u clipped updates and the noise): "
             "an input was not clipped; discarded, the release is recorded", sqrt(sum2), bound, summed);
    e->stats.epsilon = eps;
    e->stats.survivors = summed;
    abort_round_as(e, why, ABORT_ATTACK);
    return;
  }
  if (central) { /* simulation only: N(0, (z c)^2) per coordinate, Box-Muller from the engine's source */
    double sd = e->c.noise_multiplier * e->c.clip;
    for (int64_t i = 0; i < e->dim; i += 2) {
      double u = unit_open(e), v = unit_open(e), rad = sd * sqrt(-2 * log(u));
      e->avg[i] += (float)(rad * cos(6.283185307179586 * v));
      if (i + 1 < e->dim) e->avg[i + 1] += (float)(rad * sin(6.283185307179586 * v));
    }
  }
  double norm = 0;
  for (int64_t i = 0; i < e->dim; i++) {
    e->avg[i] /= (float)summed;
    norm += (double)e->avg[i] * e->avg[i];
  }
  float *saved = malloc((size_t)e->dim * sizeof *saved), *s1 = malloc((size_t)e->dim * sizeof *s1),
        *s2 = malloc((size_t)e->dim * sizeof *s2);
  if (saved && s1 && s2) {
    memcpy(saved, e->x, (size_t)e->dim * sizeof *saved);
    memcpy(s1, e->m1, (size_t)e->dim * sizeof *s1);
    memcpy(s2, e->m2, (size_t)e->dim * sizeof *s2);
  }
  optimise(e);
  uint64_t old = e->version;
  e->round++, e->rounds_done++; /* what the published state says comes next */
  int failed = !saved || !s1 || !s2 || seal_model(e, old + 1, &err) || publish(e);
  e->round--, e->rounds_done--;
  if (failed) {
    /* keep serving the previous model; the ledger entry stands (the aggregate was released
     * to the coordinator) */
    if (saved && s1 && s2) {
      memcpy(e->x, saved, (size_t)e->dim * sizeof *saved);
      memcpy(e->m1, s1, (size_t)e->dim * sizeof *s1);
      memcpy(e->m2, s2, (size_t)e->dim * sizeof *s2);
    }
    fedrec_model_set_params(&e->model, e->x);
    seal_model(e, old, &err);
    free(saved), free(s1), free(s2);
    stop(e, "%s", "the new model could not be persisted");
    return;
  }
  free(saved), free(s1), free(s2);
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
  e->rounds_done++;
  e->round++;
  e->aborts = e->late_aborts = 0;
  new_selection(e);
  if (e->c.max_rounds && e->rounds_done >= e->c.max_rounds) {
    char what[32];
    snprintf(what, sizeof what, "%llu", (unsigned long long)e->rounds_done);
    stop(e, "all %s rounds done", what);
  }
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
   * than it: the next round gets twice the time, here and in the phases after it. Everyone
   * answered: 4x the time it took, but at most halved per round and never below phase_ms. */
  int late = 0;
  uint64_t *dl = &e->phase_dl[ph];
  if (missed && (double)missed > e->c.dropout * (missed + answered)) {
    late = 1;
    *dl = *dl > e->c.max_phase_ms / 2 ? e->c.max_phase_ms : 2 * *dl;
    /* devices slow at one phase are slow at the next ones too: they get at least as long */
    for (int q = (int)ph + 1; q <= FEDREC_PHASE_UNMASK; q++)
      if (e->phase_dl[q] < *dl) e->phase_dl[q] = *dl;
  } else if (!missed) { /* down gently: at most halved per round */
    uint64_t want = 4 * (took ? took : 1);
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
      abort_round_as(e, why, late ? ABORT_LATE : ABORT_OTHER);
      return;
    }
  }
  if (ph == FEDREC_PHASE_KEYS) s = fedrec_secagg_server_close_keys(e->sa, &err);
  else if (ph == FEDREC_PHASE_SHARES) s = fedrec_secagg_server_close_shares(e->sa, &err);
  else if (ph == FEDREC_PHASE_MASKED && !e->c.plain) s = fedrec_secagg_server_close_masked(e->sa, &err);
  else {
    finish_round(e, now);
    return;
  }
  if (s) {
    char why[sizeof err.msg + 96];
    if (late) snprintf(why, sizeof why, "%s (%u of %u devices missed the %s deadline)", err.msg, missed, missed + answered,
                       fedrec_phase_name(ph));
    else snprintf(why, sizeof why, "%s", err.msg);
    abort_round_as(e, why, late ? ABORT_LATE : ABORT_OTHER);
    return;
  }
  e->phase = ph + 1;
  e->phase_start = now;
  e->deadline = now + e->phase_dl[ph + 1];
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
        if (e->overflow || e->n < e->c.min_cohort) abort_round(e, why);
        else start_round(e, now);
      } else if (e->n >= e->c.min_cohort) {
        start_round(e, now);
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
        abort_round(e, why);
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
