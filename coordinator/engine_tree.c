/* DP-FTRL (Kairouz, McMahan, Song, Thakkar, Thakurta, Xu 2021): the model moves by the
 * differences of noisy prefix sums of the rounds' average updates, the noise from a binary
 * tree of Gaussian nodes added by the coordinator, so that whoever receives the models sees
 * every prefix sum with O(log t) node noises in it, not one fresh noise per round.
 *
 * Exactness. The noise is a discrete Gaussian on a grid, never a floating-point Gaussian
 * (whose low bits leak the value it was added to): each round's average update u (floats)
 * is rounded to integers in units of g = sigma / TREE_SIGMA, prefix sums are kept exactly in
 * int64, and each tree node holds integer noise N_Z(0, TREE_SIGMA^2) per coordinate drawn
 * by the exact sampler from the engine's entropy. The rounded leaf's L2 sensitivity in grid
 * units is at most D / g + sqrt(dim) (D: one user's effect on u, the rounded sum's bound over
 * min_survivors; rounding moves each coordinate by at most 1/2), so each node is a discrete
 * Gaussian mechanism with noise multiplier TREE_SIGMA / (D / g + sqrt(dim)) and satisfies
 * the Gaussian's RDP (Canonne, Kamath, Steinke 2020). That multiplier is what the ledger's
 * tree entries record.
 *
 * Trees restart every tree_rounds leaves, at a coordinator restart (the node noise lives in
 * memory only: a new tree never reuses a node), and when a round's multiplier differs from
 * its tree's (the cohort or the parameter count changed the encoding). A device takes part at
 * most once per tree (the participation table: its last round before the tree's start). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "engine_internal.h"

enum { TREE_SIGMA = 65000 }; /* node noise in grid units: sigma^2 < 2^32, the exact sampler's range */

static double tree_sigma(const fedrec_engine *e) { /* the node noise's std in update units */
  return e->c.tree_noise_multiplier * e->c.clip / e->c.min_survivors;
}

double fedrec__engine_tree_z(const fedrec_engine_config *c, const fedrec_ddp_params *p) {
  double sigma = c->tree_noise_multiplier * c->clip / c->min_survivors, g = sigma / TREE_SIGMA;
  double sens = p->gamma * fedrec_ddp_rounding_bound(p) / c->min_survivors;
  return TREE_SIGMA / (sens / g + sqrt((double)p->dim));
}

/* The node noise is the coordinator's secret towards model recipients (with it they could
 * subtract it): wiped before it is freed, as are the noisy sums that hold it. */
static void wipe_free(void *p, size_t bytes) {
  if (p) sodium_memzero(p, bytes);
  free(p);
}

/* The sums and nodes freed (wiped); the tree's bookkeeping (start, leaf, z) kept. */
static void free_buffers(fedrec_tree *t) {
  size_t n = t->dim > 0 ? (size_t)t->dim : 0;
  free(t->sum);
  wipe_free(t->prev, n * sizeof *t->prev);
  t->sum = NULL, t->prev = NULL, t->dim = 0;
  for (int j = 0; j < FEDREC_TREE_LEVELS; j++) {
    wipe_free(t->node[j], t->node_dim[j] * sizeof *t->node[j]);
    t->node[j] = NULL, t->node_dim[j] = 0, t->node_k[j] = UINT64_MAX;
  }
}

void fedrec__engine_tree_free(fedrec_engine *e) {
  free_buffers(&e->tree);
  memset(&e->tree, 0, sizeof e->tree);
}

/* A new tree from round `start` on: no leaf yet, no node drawn. */
void fedrec__engine_tree_restart(fedrec_engine *e, uint64_t start) {
  fedrec_tree *t = &e->tree;
  t->start = start;
  t->leaf = 0;
  t->z = 0;
  t->fresh = 1; /* the sums start from zero at its first step */
  for (int j = 0; j < FEDREC_TREE_LEVELS; j++) t->node_k[j] = UINT64_MAX;
}

void fedrec__engine_tree_consume(fedrec_engine *e, uint64_t leaf, double z) {
  e->tree.leaf = leaf;
  e->tree.z = z;
}

/* The tree this round's leaf goes into, restarted when full or when its multiplier would
 * change (z: this round's). Returns the leaf's number in it. */
uint64_t fedrec__engine_tree_leaf(fedrec_engine *e, double z) {
  fedrec_tree *t = &e->tree;
  if (t->leaf && (t->leaf >= e->c.tree_rounds || t->z != z || (t->dim && t->dim != e->dim))) fedrec__engine_tree_restart(e, e->round);
  return t->leaf + 1;
}

/* Buffers for dim parameters (all or nothing); 0: no memory. */
static int tree_buffers(fedrec_engine *e) {
  fedrec_tree *t = &e->tree;
  if (t->dim == e->dim && t->sum) return 1;
  free_buffers(t); /* another length only in a new tree (fedrec__engine_tree_leaf) */
  t->sum = malloc((size_t)e->dim * sizeof *t->sum);
  t->prev = malloc((size_t)e->dim * sizeof *t->prev);
  if (!t->sum || !t->prev) {
    free_buffers(t);
    return 0;
  }
  t->dim = e->dim;
  t->fresh = 1;
  return 1;
}

/* Level j's node k: drawn once, kept while it covers the prefixes that follow. */
static fedrec_status node_noise(fedrec_engine *e, int j, uint64_t k, fedrec_error *err) {
  fedrec_tree *t = &e->tree;
  if (t->node_k[j] == k) return FEDREC_OK;
  if (!t->node[j] && !(t->node[j] = malloc((size_t)e->dim * sizeof *t->node[j])))
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "tree node of %lld values", (long long)e->dim);
  t->node_dim[j] = (size_t)e->dim;
  for (int64_t i = 0; i < e->dim; i++) {
    int64_t v;
    fedrec_status s = fedrec_discrete_gaussian(&v, &e->ent, (uint64_t)TREE_SIGMA * TREE_SIGMA, 1);
    if (s) return fedrec_error_set(err, s, "tree node noise");
    t->node[j][i] = (int32_t)v; /* |v| < 2^31: 33 000 standard deviations */
  }
  t->node_k[j] = k;
  return FEDREC_OK;
}

fedrec_status fedrec__engine_tree_step(fedrec_engine *e, uint64_t leaf, double z, fedrec_error *err) {
  fedrec_tree *t = &e->tree;
  if (!tree_buffers(e)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "tree of %lld parameters", (long long)e->dim);
  if (t->fresh) { /* the tree's first step (its earlier leaves, if any, were consumed by aborted rounds: zero) */
    memset(t->sum, 0, (size_t)e->dim * sizeof *t->sum);
    memset(t->prev, 0, (size_t)e->dim * sizeof *t->prev);
    t->fresh = 0;
  }
  /* the nodes covering [1, leaf]: one per set bit j of leaf, node (j, (leaf >> j) - 1) */
  for (int j = 0; j < FEDREC_TREE_LEVELS; j++)
    if (leaf >> j & 1) {
      fedrec_status s = node_noise(e, j, (leaf >> j) - 1, err);
      if (s) return s;
    }
  double g = tree_sigma(e) / TREE_SIGMA;
  for (int64_t i = 0; i < e->dim; i++) {
    t->sum[i] += llround((double)e->avg[i] / g);
    int64_t noisy = t->sum[i];
    for (int j = 0; j < FEDREC_TREE_LEVELS; j++)
      if (leaf >> j & 1) noisy += t->node[j][i];
    e->avg[i] = (float)((double)(noisy - t->prev[i]) * g); /* the optimizer's input: the noisy prefix sum's step */
    t->prev[i] = noisy;
  }
  t->leaf = leaf;
  t->z = z;
  return FEDREC_OK;
}
