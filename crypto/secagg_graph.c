/* The SecAgg+ neighbourhood graph and the (k, t) parameter chooser. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/secagg.h"
#include "secagg_internal.h"

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = (uint8_t)(v >> (8 * i));
}

void fedrec__sa_keys_message(uint8_t out[SA_KEYS_MSG_BYTES], uint64_t session, const fedrec_sa_keys *k) {
  put_le(out, session, 8);
  put_le(out + 8, k->id, 4);
  memcpy(out + 12, k->c_pk, 32);
  memcpy(out + 44, k->s_pk, 32);
}

size_t fedrec__sa_list_message(uint8_t **msg, uint64_t session, const uint32_t *ids, uint32_t n) {
  size_t len = 8 + 9 + 4 * (size_t)n;
  if (!(*msg = malloc(len))) return 0;
  put_le(*msg, session, 8);
  memcpy(*msg + 8, "survivors", 9);
  for (uint32_t a = 0; a < n; a++) put_le(*msg + 17 + 4 * a, ids[a], 4);
  return len;
}

fedrec_status fedrec_secagg_check_params(const fedrec_secagg_params *p, fedrec_error *err) {
  if (p->n < 2 || p->n > FEDREC_SECAGG_MAX_CLIENTS)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg: cohort of %u clients, need 2..%u", p->n,
                            FEDREC_SECAGG_MAX_CLIENTS);
  uint32_t k = fedrec_secagg_degree(p);
  if (k < p->n - 1 && (k < 2 || k % 2))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg: degree k=%u must be even and >= 2 (or >= n-1)", p->k);
  if (p->t < 1 || p->t > k || 2 * p->t <= k)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg: threshold t=%u must satisfy k/2 < t <= k (k=%u)",
                            p->t, k);
  if (p->bits < 1 || p->bits > 32)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg: bits=%u out of range 1..32", p->bits);
  if (p->dim < 1 || p->dim > (1u << 28))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg: dim=%u out of range 1..2^28", p->dim);
  return FEDREC_OK;
}

uint32_t fedrec_secagg_degree(const fedrec_secagg_params *p) {
  return p->k >= p->n - 1 ? p->n - 1 : p->k;
}

fedrec_status fedrec__sa_graph_init(sa_graph *g, const fedrec_secagg_params *p) {
  uint32_t n = p->n;
  g->n = n;
  g->k = fedrec_secagg_degree(p);
  g->perm = malloc((size_t)n * sizeof *g->perm);
  g->inv = malloc((size_t)n * sizeof *g->inv);
  uint32_t *rnd = malloc((size_t)n * sizeof *rnd);
  if (!g->perm || !g->inv || !rnd) {
    free(rnd);
    fedrec__sa_graph_free(g);
    return FEDREC_ERR_NOMEM;
  }
  /* Fisher-Yates driven by the ChaCha20 keystream of the public seed: every party derives
   * the same permutation, and nobody can steer it once the seed is fixed. */
  uint8_t key[FEDREC_KEY_BYTES];
  fedrec_mask_key(key, p->graph_seed, p->session, 3, 0, 0, 0);
  fedrec_chacha20_keystream((uint8_t *)rnd, (size_t)n * 4, key);
  for (uint32_t i = 0; i < n; i++) g->perm[i] = i;
  for (uint32_t i = n - 1; i > 0; i--) {
    uint32_t j = (uint32_t)(((uint64_t)rnd[i] * (i + 1)) >> 32); /* bias < 2^-12 for n <= 2^20 */
    uint32_t t = g->perm[i];
    g->perm[i] = g->perm[j];
    g->perm[j] = t;
  }
  for (uint32_t i = 0; i < n; i++) g->inv[g->perm[i]] = i;
  free(rnd);
  return FEDREC_OK;
}

void fedrec__sa_graph_free(sa_graph *g) {
  free(g->perm);
  free(g->inv);
  g->perm = g->inv = NULL;
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return (x > y) - (x < y);
}

void fedrec__sa_graph_neighbours(const sa_graph *g, uint32_t u, uint32_t *out) {
  if (g->k >= g->n - 1) { /* complete graph */
    for (uint32_t v = 0, m = 0; v < g->n; v++)
      if (v != u) out[m++] = v;
    return;
  }
  /* Harary graph H(k, n) on the permuted ring: positions within k/2 either side. */
  uint32_t pos = g->inv[u], m = 0;
  for (uint32_t j = 1; j <= g->k / 2; j++) {
    out[m++] = g->perm[(pos + j) % g->n];
    out[m++] = g->perm[(pos + g->n - j) % g->n];
  }
  qsort(out, m, sizeof *out, cmp_u32);
}

int fedrec__sa_graph_adjacent(const sa_graph *g, uint32_t u, uint32_t v) {
  if (u == v || u >= g->n || v >= g->n) return 0; /* ids from the wire: never index with them */
  if (g->k >= g->n - 1) return 1;
  uint32_t a = g->inv[u], b = g->inv[v];
  uint32_t d = a > b ? a - b : b - a;
  if (g->n - d < d) d = g->n - d;
  return d <= g->k / 2;
}

void fedrec_secagg_neighbours(const fedrec_secagg_params *p, uint32_t u, uint32_t *out) {
  sa_graph g;
  if (fedrec__sa_graph_init(&g, p) != FEDREC_OK) return;
  fedrec__sa_graph_neighbours(&g, u, out);
  fedrec__sa_graph_free(&g);
}

/* log P(Bin(k, q) >= t), summed in log space. */
static double log_tail_ge(uint32_t k, double q, uint32_t t) {
  if (t == 0) return 0;
  if (q <= 0) return -INFINITY;
  if (q >= 1) return 0;
  double m = -INFINITY, terms[4097];
  uint32_t nterm = 0;
  for (uint32_t i = t; i <= k && nterm < 4097; i++) {
    double l = lgamma(k + 1.0) - lgamma(i + 1.0) - lgamma(k - i + 1.0) + i * log(q) + (k - i) * log1p(-q);
    terms[nterm++] = l;
    if (l > m) m = l;
  }
  if (nterm == 0) return -INFINITY; /* t > k: impossible */
  double s = 0;
  for (uint32_t i = 0; i < nterm; i++) s += exp(terms[i] - m);
  return m + log(s);
}

void fedrec_secagg_bounds(uint32_t n, uint32_t k, uint32_t t, double dropout, double dishonest,
                          double *log2_fail, double *log2_insecure) {
  double logn = log((double)n), ln2 = log(2.0);
  /* a client fails when fewer than t of its k neighbours stay: more than k - t drop */
  *log2_fail = fmin(0, (logn + log_tail_ge(k, dropout, k - t + 1)) / ln2);
  *log2_insecure = fmin(0, (logn + log_tail_ge(k, dishonest, t)) / ln2);
}

fedrec_status fedrec_secagg_choose(fedrec_secagg_choice *out, uint32_t n, double dropout,
                                   double dishonest, double fail_bits, double sec_bits,
                                   fedrec_error *err) {
  if (n < 2 || n > FEDREC_SECAGG_MAX_CLIENTS || !(dropout >= 0 && dropout < 1) ||
      !(dishonest >= 0 && dishonest < 1))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg choose: need 2 <= n <= 2^20, dropout and dishonest in [0, 1)");
  for (uint32_t k = 2; k <= 4096; k += 2) {
    int complete = k >= n - 1;
    uint32_t kk = complete ? n - 1 : k;
    for (uint32_t t = kk / 2 + 1; t <= kk; t++) {
      double lf, ls;
      fedrec_secagg_bounds(n, kk, t, dropout, dishonest, &lf, &ls);
      if (lf <= -fail_bits && ls <= -sec_bits) {
        *out = (fedrec_secagg_choice){kk, t, lf, ls, complete};
        return FEDREC_OK;
      }
    }
    if (complete) break;
  }
  return fedrec_error_set(err, FEDREC_ERR_ARG,
                          "secagg choose: no (k, t) for n=%u, dropout %.3g, dishonest %.3g meets 2^-%g / 2^-%g",
                          n, dropout, dishonest, fail_bits, sec_bits);
}
