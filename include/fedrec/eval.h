/* Evaluation under strong generalisation: held-out users fold in part of their history,
 * the rest is ranked against every item they have not folded in. */
#ifndef FEDREC_EVAL_H
#define FEDREC_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A scorer turns a fold-in history into scores for all items. ctx is the model. */
typedef struct fedrec_scorer {
  fedrec_status (*score)(const void *ctx, float *scores, const int32_t *items, const float *w,
                         int32_t n, float *work);
  size_t (*work_floats)(const void *ctx, int32_t max_n);
  const void *ctx;
} fedrec_scorer;

typedef struct fedrec_split {
  fedrec_csr train;        /* train users x items (cold items removed) */
  fedrec_csr foldin;       /* test users x items: the part that solves the user vector */
  fedrec_csr holdout;      /* test users x items: warm items to be found */
  fedrec_csr cold_holdout; /* test users x items: their cold items (empty without cold items) */
  uint8_t *is_cold;        /* (n_items) */
  int32_t n_cold;
  int32_t *train_user;     /* (train.rows) the dataset row of each training user (NULL for a
                            * split given as files) */
} fedrec_split;

typedef struct fedrec_split_config {
  double test_users;   /* fraction of users held out (0.2) */
  double holdout;      /* fraction of each test user's items to be found (0.2) */
  double cold_items;   /* fraction of items with content withheld from training (0) */
  int32_t min_items;   /* a test user needs at least this many items (5) */
  uint64_t seed;
} fedrec_split_config;

void fedrec_split_defaults(fedrec_split_config *c);
/* Deterministic for a given seed. Needs at least one train and one test user. */
fedrec_status fedrec_split_users(fedrec_split *s, const fedrec_dataset *ds,
                                 const fedrec_split_config *c, fedrec_error *err);
/* A split given as three CSV files (header user,item[,weight]); items are shared by id
 * and become ds's items; ds->R is set to the training matrix. */
fedrec_status fedrec_split_files(fedrec_split *s, fedrec_dataset *ds, const char *train,
                                 const char *foldin, const char *holdout, fedrec_error *err);
void fedrec_split_free(fedrec_split *s);

typedef struct fedrec_metrics {
  int32_t k;
  int32_t users;    /* users evaluated (non-empty fold-in and held-out part) */
  int32_t items;    /* candidate items */
  double recall;    /* hits / min(k, |held-out|) */
  double ndcg;      /* binary relevance, ideal DCG over min(k, |held-out|) */
  double coverage;  /* distinct recommended items / candidate items */
  double diversity; /* 1 - mean pairwise cosine of content in a list (NaN without content) */
  double novelty;   /* mean -log2((users of item + 1) / (train users + 1)) */
} fedrec_metrics;

typedef struct fedrec_eval_config {
  int32_t k;
  int32_t threads;
  const uint8_t *candidates; /* (n_items) 1 = may be ranked; NULL = all items */
  const float *content;      /* (n_items, p) for diversity, or NULL */
  int32_t content_dim;
  const double *item_users;  /* (n_items) training users per item, for novelty, or NULL */
  int32_t train_users;
  int32_t *lists;            /* (foldin rows, k) each test user's top k, -1 padded (-1 rows:
                              * not evaluated), or NULL */
} fedrec_eval_config;

fedrec_status fedrec_evaluate(fedrec_metrics *out, const fedrec_scorer *sc,
                              const fedrec_csr *foldin, const fedrec_csr *holdout,
                              const fedrec_eval_config *c, fedrec_error *err);

/* Building blocks, public for tests and other evaluators. */
/* Top-k indices by score, highest first, ties to the lower index; items with
 * allowed[i] == 0 are skipped (allowed may be NULL). Returns the number found (<= k). */
int32_t fedrec_topk(int32_t *out, const float *scores, int32_t n, int32_t k,
                    const uint8_t *allowed);
/* Recall@k and NDCG@k of a ranked list against a sorted held-out set. */
void fedrec_rank_metrics(double *recall, double *ndcg, const int32_t *top, int32_t ntop, int32_t k,
                         const int32_t *held, int32_t nheld);
/* 1 - mean pairwise cosine similarity of the listed items' content rows. */
double fedrec_list_diversity(const int32_t *top, int32_t ntop, const float *content, int32_t p);

#ifdef __cplusplus
}
#endif
#endif
