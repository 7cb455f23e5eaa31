/* The coordinator's round engine (see include/fedrec/engine.h): its lifecycle, the
 * configuration checks, and the model sealed (hashed, signed over the ledger head) and
 * published. The parts are listed in engine_internal.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/accountant.h"
#include "fedrec/enrol.h"
#include "engine_internal.h"

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

uint64_t fedrec__engine_random_u64(fedrec_engine *e) {
  uint64_t v;
  e->ent.bytes(e->ent.ctx, &v, sizeof v);
  return v;
}

uint32_t fedrec__engine_jitter(fedrec_engine *e, uint32_t ms) {
  return (uint32_t)(ms / 2 + fedrec__engine_random_u64(e) % ((uint64_t)ms + 1));
}

/* Encodes, hashes and signs the current model as `version`. */
fedrec_status fedrec__engine_seal_model(fedrec_engine *e, uint64_t version, fedrec_error *err) {
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
  size_t n = fedrec_model_signed_message(msg, version, e->hash, e->ledger_entries, e->ledger_head,
                                         e->c.has_catalogue ? &e->c.catalogue : NULL);
  fedrec_sign(e->sig, msg, n, e->id);
  return FEDREC_OK;
}

int fedrec__engine_publish(fedrec_engine *e) {
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

/* Settings that cannot work together, and cohorts for which secure aggregation cannot meet
 * its bounds (with the smallest that can, and what this one would tolerate). */
static fedrec_status check_config(const fedrec_engine_config *c, const fedrec_ledger *ledger, fedrec_error *err) {
  if (c->cohort < 2 || c->cohort > FEDREC_SECAGG_MAX_CLIENTS || c->min_survivors < 1 ||
      c->min_survivors > c->cohort || c->min_cohort < c->min_survivors || c->min_cohort > c->cohort)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: need 1 <= min_survivors <= min_cohort <= cohort (%u, %u, %u), cohort >= 2",
                            c->min_survivors, c->min_cohort, c->cohort);
  if (!(c->sampling_rate >= 0 && c->sampling_rate <= 1) || !(c->clip > 0) || !(c->noise_multiplier >= 0) ||
      c->phase_ms == 0 || c->retry_ms == 0 || c->bits > 32 || (c->bits && c->bits < 2))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: sampling rate in [0, 1], clip > 0, noise >= 0, phase and retry times > 0, bits 0 or 2..32");
  if (c->noise_multiplier > 0 && !ledger)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: noisy releases need a privacy ledger");
  static const uint8_t none[FEDREC_SIGN_PK_BYTES];
  if (c->active && (c->plain || !memcmp(c->authority_pk, none, sizeof none)))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: the active secure-aggregation variant needs secure aggregation "
                            "(not plain) and an enrolment authority's public key");
  /* a ledger promises that every release is accounted: a noiseless one cannot be (its epsilon
   * is unbounded), so a state with a ledger never trains without noise (61d538e published
   * noiseless models with no entry after a restart with noise 0) */
  if (ledger && !(c->noise_multiplier > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: noise multiplier 0 with a privacy ledger: noiseless releases "
                            "have unbounded epsilon and cannot be recorded; set a noise multiplier > 0");
  if ((c->max_participation || c->min_separation > 1) && c->sampling_rate > 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: a participation bound replaces the sampling assumption: "
                            "use it with fixed-size cohorts (sampling rate 0)");
  uint32_t lk = ledger ? fedrec_ledger_max_participation(ledger) : 0;
  if (lk && !(c->max_participation >= 1 && c->max_participation <= lk))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: the ledger's epsilon assumes at most %u participations per device: "
                            "max participation must be set to at most that (is %u)", lk, c->max_participation);
  if (c->tree_noise_multiplier > 0 &&
      (c->sampling_rate > 0 || c->central || !(c->noise_multiplier > 0) || !ledger || fedrec_ledger_format(ledger) < 4 ||
       c->tree_rounds < 1 || c->tree_rounds > (1u << 20) || c->tree_noise_multiplier < 0.01 || c->tree_noise_multiplier > 1e4))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: DP-FTRL needs fixed-size cohorts, the devices' distributed noise "
                            "(noise multiplier > 0), a ledger of format 4, 1 <= tree rounds <= 2^20 and a tree noise multiplier "
                            "in [0.01, 10000]");
  if (!(c->popularity_noise_multiplier >= 0 && c->popularity_noise_multiplier <= 1e6))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: popularity noise multiplier in [0, 1e6] (0: the noise multiplier)");
  if (c->spectral_items && (!c->popularity_rounds || c->spectral_items > FEDREC_MAX_SPECTRAL_ITEMS))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: a spectral round needs popularity (count) rounds before it and "
                            "at most %d items (is %u)", FEDREC_MAX_SPECTRAL_ITEMS, c->spectral_items);
  if (c->popularity_rounds && c->tree_noise_multiplier > 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: popularity (count) rounds do not go into DP-FTRL's tree: "
                            "use them without a tree noise multiplier");
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
  return FEDREC_OK;
}

/* The engine's per-parameter state for dim parameters (all or nothing). */
typedef struct state_buffers {
  float *x, *m1, *m2, *avg;
  uint32_t *modsum;
  double *work;
} state_buffers;

static void buffers_free(state_buffers *b) {
  free(b->x), free(b->m1), free(b->m2), free(b->avg), free(b->modsum), free(b->work);
  memset(b, 0, sizeof *b);
}

static int buffers_new(state_buffers *b, int64_t dim) {
  uint32_t padded = fedrec_ddp_padded((uint32_t)dim);
  b->x = malloc((size_t)dim * sizeof *b->x);
  b->m1 = calloc((size_t)dim, sizeof *b->m1);
  b->m2 = calloc((size_t)dim, sizeof *b->m2);
  b->avg = malloc((size_t)dim * sizeof *b->avg);
  b->modsum = malloc((size_t)padded * sizeof *b->modsum);
  b->work = malloc((size_t)padded * sizeof *b->work);
  if (b->x && b->m1 && b->m2 && b->avg && b->modsum && b->work) return 1;
  buffers_free(b);
  return 0;
}

fedrec_status fedrec_engine_new(fedrec_engine **out, const fedrec_engine_config *c,
                                fedrec_model *model, uint64_t version, const fedrec_identity *id,
                                fedrec_ledger *ledger, const fedrec_engine_callbacks *cb,
                                const fedrec_entropy *entropy, fedrec_error *err) {
  *out = NULL;
  fedrec_status st = check_config(c, ledger, err);
  if (st) return st;
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
  if (c->popularity_rounds && fedrec_model_add_popularity(&e->model, err)) {
    fedrec_engine_free(e);
    return FEDREC_ERR_NOMEM;
  }
  e->bufdim = e->dim;
  if (c->spectral_items && (e->model.n_free != e->model.n_items || (int64_t)c->spectral_items > e->model.n_items)) {
    fedrec_error_set(err, FEDREC_ERR_ARG, "engine: a spectral round over %u items needs a model with a free embedding for "
                     "every item (%d of %d)", c->spectral_items, e->model.n_free, e->model.n_items);
    fedrec_engine_free(e);
    return FEDREC_ERR_ARG;
  }
  state_buffers b;
  if (buffers_new(&b, e->dim)) e->x = b.x, e->m1 = b.m1, e->m2 = b.m2, e->avg = b.avg, e->modsum = b.modsum, e->work = b.work;
  e->cap = c->cohort;
  e->members = calloc(e->cap, sizeof *e->members);
  for (e->nslots = 4; e->nslots < 2 * e->cap; e->nslots <<= 1) {
  }
  e->slots = calloc(e->nslots, sizeof *e->slots);
  if (c->active) {
    e->certs = malloc((size_t)e->cap * FEDREC_CERT_BYTES);
    e->ipks = malloc((size_t)e->cap * sizeof *e->ipks);
  }
  fedrec_status s = FEDREC_OK;
  if (!e->x || !e->m1 || !e->m2 || !e->avg || !e->modsum || !e->work || !e->members || !e->slots ||
      (c->active && (!e->certs || !e->ipks)))
    s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: state for %lld parameters", (long long)e->dim);
  if (!s) {
    fedrec_model_get_params(e->x, &e->model);
    s = fedrec__engine_seal_model(e, version, err);
  }
  if (!s && fedrec__engine_publish(e)) s = fedrec_error_set(err, FEDREC_ERR_IO, "engine: could not persist the initial model");
  if (s) {
    fedrec_engine_free(e);
    return s;
  }
  e->ent.bytes(e->ent.ctx, e->coin_key, sizeof e->coin_key);
  e->phase = FEDREC_PHASE_SELECTING;
  e->round = 1;
  fedrec__engine_tree_restart(e, 1);
  *out = e;
  return FEDREC_OK;
}

void fedrec_engine_free(fedrec_engine *e) {
  if (!e) return;
  fedrec_secagg_server_free(e->sa);
  fedrec_model_free(&e->model);
  free(e->blob), free(e->x), free(e->m1), free(e->m2), free(e->avg), free(e->modsum);
  free(e->work), free(e->members), free(e->slots), free(e->banned), free(e->part), free(e->certs), free(e->ipks);
  if (e->tickets) fedrec_secret_free(e->tickets);
  fedrec__engine_tree_free(e);
  free(e);
}

fedrec_status fedrec_engine_restore(fedrec_engine *e, uint64_t next_round, uint64_t rounds_done,
                                    const float *opt1, const float *opt2, fedrec_error *err) {
  if (e->phase != FEDREC_PHASE_SELECTING || e->n || next_round < 1)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "engine: restore only before the first check-in, with a round >= 1");
  e->round = next_round;
  e->rounds_done = rounds_done;
  fedrec__engine_tree_restart(e, next_round); /* the node noise was not kept: a new tree */
  size_t bytes = (size_t)e->dim * sizeof *e->m1;
  if (opt1) memcpy(e->m1, opt1, bytes);
  if (opt2) memcpy(e->m2, opt2, bytes);
  if (e->c.max_rounds && e->rounds_done >= e->c.max_rounds) {
    char what[32];
    snprintf(what, sizeof what, "%llu", (unsigned long long)e->rounds_done);
    fedrec__engine_stop(e, "all %s rounds done", what);
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
  out->has_catalogue = e->c.has_catalogue;
  out->catalogue = e->c.catalogue;
}

/* src (the state of the old parameters, [E (ne0) | H (d x p0)]) into dst (the new ones,
 * [E (ne1) | H (d x p1)]): every old parameter at its new place, the new ones zero. */
static void remap(float *dst, const float *src, int64_t ne0, int64_t ne1, int32_t d, int32_t p0, int32_t p1) {
  memset(dst, 0, (size_t)(ne1 + (int64_t)d * p1) * sizeof *dst);
  memcpy(dst, src, (size_t)ne0 * sizeof *dst);
  for (int32_t r = 0; p0 && r < d; r++) memcpy(dst + ne1 + (int64_t)r * p1, src + ne0 + (int64_t)r * p0, (size_t)p0 * sizeof *dst);
}

fedrec_status fedrec_engine_set_catalogue(fedrec_engine *e, const fedrec_dataset *content, const fedrec_catalogue_ref *cat,
                                          const int32_t *add_free, int32_t n_add, fedrec_error *err) {
  /* between rounds, or once training is over (devices still recommend with the model) */
  if ((e->phase != FEDREC_PHASE_SELECTING || e->n) && e->phase != FEDREC_PHASE_STOPPED)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "engine: the catalogue changes between rounds only (round %llu is %s)",
                            (unsigned long long)e->round, fedrec_phase_name(e->phase));
  fedrec_model *m = &e->model;
  int grows = m->H && content->n_modalities > m->n_modalities; /* a modality added: the head grows */
  int32_t p0 = m->H ? m->p : 0, p1 = grows ? content->content_dim : p0;
  if (!grows && m->H && content->content_dim != m->p)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: content of %d dimensions for a head over %d", content->content_dim, m->p);
  if (n_add < 0 || (int64_t)n_add * m->d + (int64_t)(p1 - p0) * m->d > ((int64_t)1 << 31) - e->dim)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "engine: %d more free embeddings of %d dimensions and %d more content dimensions: "
                            "too many parameters", n_add, m->d, p1 - p0);
  state_buffers b = {0};
  int64_t ne0 = (int64_t)m->n_free * m->d, ne1 = ne0 + (int64_t)n_add * m->d, dim = ne1 + (int64_t)m->d * p1;
  if (dim != e->dim && !buffers_new(&b, dim)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: state for %lld parameters", (long long)dim);
  fedrec_model grown = *m; /* the head's copy first: an error changes nothing */
  fedrec_status st = grows ? FEDREC_OK : fedrec_model_check_modalities(m, content, err);
  if (!st && grows) {
    grown.H = NULL;
    if (!(grown.H = malloc((size_t)m->d * p0 * sizeof *grown.H))) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: head");
    else memcpy(grown.H, m->H, (size_t)m->d * p0 * sizeof *grown.H), st = fedrec_model_add_modalities(&grown, content, err);
  }
  if (!st) st = fedrec_model_grow(&grown, content->R.cols, content->content, add_free, n_add, err);
  if (st) {
    if (grown.H != m->H) free(grown.H);
    buffers_free(&b);
    return st;
  }
  if (grown.H != m->H) free(m->H);
  *m = grown;
  if (dim != e->dim) { /* the optimiser state follows the parameters; the new ones' starts at zero */
    remap(b.m1, e->m1, ne0, ne1, m->d, p0, p1);
    remap(b.m2, e->m2, ne0, ne1, m->d, p0, p1);
    fedrec_model_get_params(b.x, m);
    state_buffers old = {e->x, e->m1, e->m2, e->avg, e->modsum, e->work};
    buffers_free(&old);
    e->x = b.x, e->m1 = b.m1, e->m2 = b.m2, e->avg = b.avg, e->modsum = b.modsum, e->work = b.work;
    e->dim = e->bufdim = dim;
  }
  e->c.has_catalogue = 1;
  e->c.catalogue = *cat;
  if ((st = fedrec__engine_seal_model(e, e->version + 1, err))) return st;
  if (fedrec__engine_publish(e)) return fedrec_error_set(err, FEDREC_ERR_IO, "engine: could not persist model %llu", (unsigned long long)e->version);
  return FEDREC_OK;
}

void fedrec_engine_set_callbacks(fedrec_engine *e, const fedrec_engine_callbacks *cb) { e->cb = *cb; }

const fedrec_model *fedrec_engine_current_model(const fedrec_engine *e) { return &e->model; }

fedrec_phase fedrec_engine_phase(const fedrec_engine *e) { return e->phase; }

uint64_t fedrec_engine_round(const fedrec_engine *e) { return e->round; }

uint64_t fedrec_engine_rounds_done(const fedrec_engine *e) { return e->rounds_done; }

const char *fedrec_engine_stop_reason(const fedrec_engine *e) { return e->stop; }

uint64_t fedrec_engine_deadline(const fedrec_engine *e) { return e->deadline; }
