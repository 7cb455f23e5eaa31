/* Populations fitted to a real data set (docs/DATA.md): a factor model fitted centrally on the
 * source (iALS, free embeddings, no head) gives every source user a taste vector u and every
 * item a vector v; each synthetic user takes a source user's taste (with jitter), that user's
 * history length and weights, and draws that many distinct items with probability proportional
 * to exp(tau u . v_i) (Gumbel top-n). tau is calibrated so that the share of interactions on
 * the source's most popular 1% of items matches. With match_items, every item also gets a logit
 * offset b_i (probability ~ exp(tau u . v_i + b_i)), fitted so that each item's share of the
 * interactions is the source's: the whole popularity curve matches, not only its head. The
 * catalogue (items, ids, content) is the source's. Deterministic for a seed, whatever the number
 * of threads. */
#ifndef FEDREC_FITTED_H
#define FEDREC_FITTED_H

#include <stdint.h>

#include "fedrec/data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_fitted_config {
  int32_t users;   /* synthetic users (100000) */
  int32_t dim;     /* the fitted model's d (32) */
  int32_t epochs;  /* its iALS epochs (8) */
  double tau;      /* 0: calibrated (default) */
  double jitter;   /* taste noise, relative to the taste vectors' mean norm per dimension (0.1) */
  uint64_t seed;   /* 42 */
  int32_t match_items; /* 1: per-item offsets fitted to the source's item counts (0: tau alone) */
  int32_t threads; /* 0: all cores */
} fedrec_fitted_config;

/* How close the population came: each side's share of interactions on its most popular 0.1%,
 * 1%, 10% of items, history-length quantiles (10, 50, 90%) and mean, items with any user. */
typedef struct fedrec_fitted_stats {
  double share[2][3], len_q[2][3], len_mean[2];
  int32_t items_used[2];
  double tau;        /* as used */
  double offset_tv;  /* match_items: total variation between the items' shares, source vs a sample drawn */
} fedrec_fitted_stats;

void fedrec_fitted_defaults(fedrec_fitted_config *c);
/* "key=value,..." (users, dim, epochs, tau, jitter, seed, offsets=1 for match_items); unknown keys and bad values are
 * errors. */
fedrec_status fedrec_fitted_parse(fedrec_fitted_config *c, const char *spec, fedrec_error *err);
/* Draws c->users users for src's catalogue into out (src's items, ids and content copied). */
fedrec_status fedrec_fitted_generate(fedrec_dataset *out, fedrec_fitted_stats *stats, const fedrec_dataset *src,
                                     const fedrec_fitted_config *c, fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
