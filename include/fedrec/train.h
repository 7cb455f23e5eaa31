/* Central (non-federated, non-private) trainers: iALS over the content head and free
 * embeddings, EASE, popularity. They are the reference the federated model is measured
 * against, and each comes with a scorer for fedrec_evaluate. */
#ifndef FEDREC_TRAIN_H
#define FEDREC_TRAIN_H

#include <stdint.h>

#include "fedrec/data.h"
#include "fedrec/eval.h"
#include "fedrec/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_ials_config {
  int32_t dim;         /* d, latent dimension */
  float reg;           /* lambda; scaled by frequency: reg * (n_u + alpha0 * n_items) */
  float alpha0;        /* weight of every (user, item) pair towards a score of 0 */
  int32_t epochs;
  int32_t threads;
  uint64_t seed;
  int use_head;        /* train the content head H */
  int32_t n_free;      /* free embeddings for the n_free most popular items; -1 = all */
  float free_reg_mult; /* extra ridge on e_i, times lambda_i, so the head explains what it can */
  float head_reg;      /* ridge on H, times the mean lambda_i */
  int32_t cg_iters;    /* conjugate-gradient iterations for the head per epoch */
  float init_std;
} fedrec_ials_config;

/* Defaults tuned on MovieLens latest-small and Last.fm (docs/RESULTS.md). */
void fedrec_ials_defaults(fedrec_ials_config *c);

/* Called after each epoch; objective is the full training objective. */
typedef void (*fedrec_progress_fn)(void *ctx, int32_t epoch, int32_t epochs, double objective,
                                   double seconds);

/* Trains m (initialised here) on R (users x items, values = weights) by alternating least
 * squares: exact user solves, exact free-embedding solves, and conjugate gradient for the
 * head on its exact quadratic. Every step lowers the objective. C is (n_items, p) or NULL. */
fedrec_status fedrec_ials_fit(fedrec_model *m, const fedrec_csr *R, const float *C, int32_t p,
                              const fedrec_ials_config *cfg, fedrec_progress_fn cb, void *cb_ctx,
                              fedrec_error *err);

/* The items ordered by decreasing number of users (ties: lower index first); out: n_items. */
void fedrec_items_by_popularity(int32_t *out, const fedrec_csr *R);
/* Users per item (binary counts); out: n_items. */
void fedrec_item_counts(double *out, const fedrec_csr *R);

/* Scorer for a factorisation: solves the user vector from the fold-in, then s = V u. */
typedef struct fedrec_mf_scorer {
  const float *V; /* (n_items, d) */
  const float *G; /* (d, d) = V^T V */
  int32_t n_items, d;
  float alpha0, reg;
} fedrec_mf_scorer;
fedrec_scorer fedrec_mf_scorer_make(const fedrec_mf_scorer *ctx);

/* EASE (Steck 2019): B = I - P diag(1/diag P), P = (X^T X + lambda I)^-1, diag B = 0,
 * over the m items that have training interactions (dense m x m; m is capped at 40 000).
 * Items without any score 0. */
typedef struct fedrec_ease_model {
  float *B;       /* (m, m) */
  int32_t *col;   /* (n_items) row/column of B, or -1 */
  int32_t n_items, m;
} fedrec_ease_model;
fedrec_status fedrec_ease_fit(fedrec_ease_model *e, const fedrec_csr *R, float lambda,
                              fedrec_error *err);
void fedrec_ease_free(fedrec_ease_model *e);
fedrec_scorer fedrec_ease_scorer_make(const fedrec_ease_model *e);

/* Popularity: every user gets the items with the most training users. */
typedef struct fedrec_pop_scorer {
  const double *counts; /* (n_items) */
  int32_t n_items;
} fedrec_pop_scorer;
fedrec_scorer fedrec_pop_scorer_make(const fedrec_pop_scorer *ctx);

#ifdef __cplusplus
}
#endif
#endif
