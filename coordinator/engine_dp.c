/* DP round planning: the distributed-DP parameters of a round (clip, grid step, bits, each
 * client's noise), the release the ledger records for it, the planned epsilon, and the bound
 * on an honest sum's norm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/accountant.h"
#include "engine_internal.h"

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

fedrec_engine_config fedrec_engine_kind_config(const fedrec_engine_config *c, fedrec_round_kind kind) {
  fedrec_engine_config k = *c;
  if (kind != FEDREC_ROUND_MODEL && c->popularity_noise_multiplier > 0) k.noise_multiplier = c->popularity_noise_multiplier;
  return k;
}

fedrec_round_kind fedrec_engine_kind_of(const fedrec_engine_config *c, uint64_t rounds_done, int64_t dim, int64_t n_items,
                                        int64_t *len) {
  if (rounds_done < c->popularity_rounds) return *len = n_items, FEDREC_ROUND_COUNT;
  if (c->spectral_items && rounds_done == c->popularity_rounds) return *len = fedrec_gram_dim((int32_t)c->spectral_items), FEDREC_ROUND_GRAM;
  return *len = dim, FEDREC_ROUND_MODEL;
}

fedrec_release fedrec__engine_release_for(const fedrec_engine *e, uint32_t survivors) {
  fedrec_engine_config k = fedrec_engine_kind_config(&e->c, e->info.kind);
  return release_of(&k, &e->info.ddp, e->round, survivors, e->n);
}

fedrec_release fedrec__engine_tree_release(const fedrec_engine *e, uint32_t survivors) {
  return (fedrec_release){.mechanism = FEDREC_MECH_TREE, .round = e->round, .q = 1, .z = e->round_tree_z,
                          .leaf = e->round_leaf, .survivors = survivors};
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

/* One planned release of a round of this kind (its RDP curve via fedrec_release_rdp); 1: none
 * (no noise: unbounded epsilon). */
static fedrec_status plan_release(fedrec_release *r, int *none, const fedrec_engine_config *c, fedrec_round_kind kind,
                                  int64_t dim, uint32_t n, fedrec_error *err) {
  fedrec_engine_config k = fedrec_engine_kind_config(c, kind);
  fedrec_ddp_params p;
  fedrec_status s = fedrec_engine_round_ddp(&k, dim, n, &p, err);
  if (s) return s;
  *none = p.noise == FEDREC_NOISE_NONE && !(k.central && k.noise_multiplier > 0);
  *r = release_of(&k, &p, 1, k.min_survivors, n);
  return FEDREC_OK;
}

fedrec_status fedrec_engine_plan_epsilon_items(double *eps, const fedrec_engine_config *c, int64_t dim, int64_t n_items,
                                               uint32_t n, uint64_t rounds, double delta, fedrec_error *err) {
  uint64_t counts = c->popularity_rounds < rounds ? c->popularity_rounds : rounds, models = rounds - counts;
  uint64_t grams = c->spectral_items && models ? 1 : 0;
  models -= grams;
  /* a device takes part in at most max_participation of them (a ledger with that bound
   * composes only as many, the costliest: count rounds, when they have less noise, first) */
  if (c->max_participation && counts + grams + models > c->max_participation) {
    if (counts > c->max_participation) counts = c->max_participation;
    if (grams > c->max_participation - counts) grams = c->max_participation - counts;
    models = c->max_participation - counts - grams;
  }
  fedrec_release rm, rc, rg;
  int none_m = 0, none_c = 0, none_g = 0;
  fedrec_status s = plan_release(&rm, &none_m, c, FEDREC_ROUND_MODEL, dim, n, err);
  if (!s && counts) s = plan_release(&rc, &none_c, c, FEDREC_ROUND_COUNT, n_items, n, err);
  if (!s && grams) s = plan_release(&rg, &none_g, c, FEDREC_ROUND_GRAM, fedrec_gram_dim((int32_t)c->spectral_items), n, err);
  if (s) return s;
  if ((models && none_m) || (counts && none_c) || (grams && none_g)) {
    *eps = INFINITY;
    return FEDREC_OK;
  }
  fedrec_orders o;
  fedrec_orders_default(&o);
  if (!counts && !grams) {
    *eps = fedrec_release_epsilon(&rm, (double)models, delta, &o, NULL);
    return FEDREC_OK;
  }
  double *rdp = malloc(o.n * sizeof *rdp);
  if (!rdp) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "plan");
  for (size_t j = 0; j < o.n; j++)
    rdp[j] = (models ? fedrec_release_rdp(&rm, o.a[j], (double)models) : 0) + (counts ? fedrec_release_rdp(&rc, o.a[j], (double)counts) : 0) +
             (grams ? fedrec_release_rdp(&rg, o.a[j], 1) : 0);
  *eps = fedrec_rdp_to_epsilon(rdp, &o, delta, NULL);
  free(rdp);
  return FEDREC_OK;
}

fedrec_status fedrec_engine_plan_epsilon(double *eps, const fedrec_engine_config *c, int64_t dim,
                                         uint32_t n, uint64_t rounds, double delta, fedrec_error *err) {
  return fedrec_engine_plan_epsilon_items(eps, c, dim, dim, n, rounds, delta, err);
}

fedrec_status fedrec_engine_plan_public_epsilon(double *eps, const fedrec_engine_config *c, int64_t dim, uint32_t n,
                                                uint64_t rounds, double delta, fedrec_error *err) {
  fedrec_status s = fedrec_engine_plan_epsilon(eps, c, dim, n, rounds, delta, err);
  if (s || !(c->tree_noise_multiplier > 0) || c->tree_rounds < 1) return s;
  fedrec_ddp_params p;
  if ((s = fedrec_engine_round_ddp(c, dim, n, &p, err))) return s;
  uint64_t full = c->tree_rounds, rest = rounds % c->tree_rounds;
  double sens2 = (double)(rounds / c->tree_rounds) * fedrec_tree_restart_sensitivity2(&full, 1) +
                 fedrec_tree_restart_sensitivity2(&rest, 1);
  fedrec_orders o;
  fedrec_orders_default(&o);
  double t = fedrec_epsilon_tree(fedrec__engine_tree_z(c, &p), sens2, delta, &o, NULL);
  if (t < *eps) *eps = t;
  return FEDREC_OK;
}

/* A bound on the L2 norm of the decoded sum of `summed` honest inputs, exceeded with
 * probability below 1e-13: each input's rounded encoding is at most gamma times
 * fedrec_ddp_rounding_bound (the encoder enforces it), and the noise in the sum, iid per
 * coordinate with the survivors' total variance v (integer units), has squared norm at most
 * v (D + 2 sqrt(D x) + 2 x) with x = 30 for a Gaussian (Laurent and Massart 2000); Skellam
 * and discrete Gaussian noise get 10% on top for their lattice and tails. */
double fedrec__engine_sum_norm_bound(const fedrec_engine *e, uint32_t summed) {
  const fedrec_ddp_params *p = &e->info.ddp;
  double D = (double)e->info.secagg.dim, x = 30, v = 0;
  if (p->noise != FEDREC_NOISE_NONE) v = (double)summed * (double)p->sigma2_num / (double)p->sigma2_den;
  double noise = 1.1 * p->gamma * sqrt(v * (D + 2 * sqrt(D * x) + 2 * x));
  return summed * p->gamma * fedrec_ddp_rounding_bound(p) + noise;
}
