/* Renyi-DP accounting (Mironov 2017; Mironov, Talwar, Zhang 2019) and the conversion to
 * (epsilon, delta). The unit of privacy is a user: one device's whole history.
 *
 * Conventions, recorded with every result so that an auditor can recompute it:
 *  - order grid: dp_accounting's default (1 + x/10 for x = 1..99, then 11..63, 128, 256,
 *    512, 1024) unless given;
 *  - the subsampled Gaussian at fractional orders uses the exact signed series (Opacus):
 *    generalised binomial coefficients that are negative are subtracted, not added;
 *  - RDP -> (epsilon, delta): the improved conversion of Canonne, Kamath, Steinke 2020 /
 *    Balle et al. 2020: eps = min_a r(a) + log((a-1)/a) - (log delta + log a)/(a - 1), >= 0. */
#ifndef FEDREC_ACCOUNTANT_H
#define FEDREC_ACCOUNTANT_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FEDREC_MAX_ORDERS 256

typedef struct fedrec_orders {
  size_t n;
  double a[FEDREC_MAX_ORDERS];
} fedrec_orders;

/* dp_accounting's default grid (156 orders). */
void fedrec_orders_default(fedrec_orders *o);
/* Parses a comma-separated list of orders > 1, e.g. "1.5,2,3,4:64" where "a:b" is every
 * integer from a to b. */
fedrec_status fedrec_orders_parse(fedrec_orders *o, const char *s, fedrec_error *err);

/* RDP of one release of the Gaussian mechanism with noise multiplier z (std / L2
 * sensitivity), Poisson-subsampled at rate q (q = 1: no subsampling), at order a.
 * +infinity when z = 0. */
double fedrec_rdp_subsampled_gaussian(double q, double z, double a);

/* (epsilon, order) from RDP values r[i] at orders o->a[i] and delta (improved conversion). */
double fedrec_rdp_to_epsilon(const double *r, const fedrec_orders *o, double delta,
                             double *best_order);
/* The inverse: the smallest delta for a target epsilon, over the orders. */
double fedrec_rdp_to_delta(const double *r, const fedrec_orders *o, double epsilon);

/* Epsilon after `steps` compositions of the subsampled Gaussian. */
double fedrec_epsilon_gaussian(double q, double z, uint64_t steps, double delta,
                               const fedrec_orders *o, double *best_order);

/* The smallest noise multiplier reaching at most target_epsilon (bisection to 1e-6
 * relative); FEDREC_ERR_ARG when even z = 1e4 does not reach it. */
fedrec_status fedrec_calibrate_gaussian(double *z, double target_epsilon, double delta, double q,
                                        uint64_t steps, const fedrec_orders *o,
                                        fedrec_error *err);

/* Skellam noise summed over the surviving clients (Agarwal, Kairouz, Liu 2021): total
 * variance var (integer domain, all survivors together), integer-domain sensitivities d2 (L2)
 * and d1 (L1):
 *   RDP(a) = a d2^2 / (2 var) + min(((2a - 1) d2^2 + 6 d1) / (4 var^2), 3 d1 / (2 var)). */
double fedrec_rdp_skellam(double a, double d2, double d1, double var);

/* Generic Poisson subsampling of an RDP curve at integer order a >= 2 (Zhu & Wang 2019):
 * 1/(a-1) log((1-q)^(a-1)(a q - q + 1) + C(a,2) q^2 (1-q)^(a-2) e^{r(2)}
 *             + 3 sum_{l=3..a} C(a,l) (1-q)^(a-l) q^l e^{(l-1) r(l)}).
 * rdp(ctx, l) gives the unsubsampled curve. NaN for a fractional order. */
double fedrec_rdp_poisson_subsampled(double q, double a, double (*rdp)(const void *ctx, double l),
                                     const void *ctx);

/* One Skellam release's RDP at order a, Poisson-subsampled at rate q (q = 1: none);
 * NaN when q < 1 and a is not an integer >= 2. */
double fedrec_rdp_skellam_subsampled(double q, double a, double d2, double d1, double var);

/* Epsilon after `steps` Skellam releases, Poisson-subsampled at rate q (q = 1: none; with
 * q < 1 only the integer orders of the grid are used). */
double fedrec_epsilon_skellam(double q, double d2, double d1, double var, uint64_t steps,
                              double delta, const fedrec_orders *o, double *best_order);

/* Distributed discrete Gaussian (Kairouz, Liu, Steinke 2021): n surviving clients each add
 * N_Z(0, sigma^2) (integer domain) to every coordinate of a dim-long vector; d2 and d1 are the
 * integer-domain L2 and L1 sensitivities. The sum is close to a discrete Gaussian with
 * tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k+1)); with l2 = d2 / (sqrt(n) sigma) and
 * l1 = d1 / (sqrt(n) sigma), one release satisfies (Proposition 14)
 *   RDP(a) = min(a/2 l2^2 + tau dim, a/2 (l2^2 + 2 l1 tau + tau^2 dim), a/2 (l2 + sqrt(dim) tau)^2).
 * Accounting is good only while tau dim stays small: sigma of about 1 or more. */
double fedrec_ddgauss_tau(uint32_t n, double sigma);
double fedrec_rdp_ddgauss(double a, double d2, double d1, double sigma, uint32_t n, uint64_t dim);
/* Integer orders only (NaN otherwise), as TensorFlow Federated's accountant; q < 1 takes the
 * smaller of the Zhu-Wang subsampled curve and the unsubsampled one. */
double fedrec_rdp_ddgauss_subsampled(double q, double a, double d2, double d1, double sigma,
                                     uint32_t n, uint64_t dim);
double fedrec_epsilon_ddgauss(double q, double d2, double d1, double sigma, uint32_t n,
                              uint64_t dim, uint64_t steps, double delta, const fedrec_orders *o,
                              double *best_order);

/* DP-FTRL with tree aggregation (Kairouz, McMahan, Song, Thakkar, Thakurta, Xu 2021,
 * Appendix D). No sampling assumption: the Gaussian noise (multiplier z on each tree node)
 * is accounted with the worst-case sum over tree nodes of the squared number of a user's
 * contributions under the node, RDP(a) = a * sens2 / (2 z^2).
 *  - restart: the tree restarts every epoch and a user contributes at most once per epoch;
 *    sens2 = sum over epochs of floor(log2(steps in the epoch)) + 1;
 *  - single tree: one tree of `steps` leaves, a user contributes at most max_part times with
 *    at least min_sep leaves between two contributions (dynamic programme of Appendix D.2).
 *    FEDREC_ERR_LIMIT when the table would exceed 5e7 cells. */
double fedrec_tree_restart_sensitivity2(const uint64_t *steps, size_t n);
fedrec_status fedrec_tree_single_sensitivity2(double *out, uint64_t steps, uint32_t max_part,
                                              uint32_t min_sep, fedrec_error *err);
double fedrec_epsilon_tree(double z, double sens2, double delta, const fedrec_orders *o,
                           double *best_order);

/* Composition under a participation bound: a user takes part in at most k of the releases
 * (q = 1 each, no sampling), so at each order the composed RDP is at most the sum of the k
 * largest per-release values at that order (any k of them bound the user's own; RDP
 * composes per order). One min-heap of the k largest per order; memory orders x min(k,
 * releases) doubles. k = 0: no bound, the plain sum. */
typedef struct fedrec_rdp_topk {
  uint32_t k;
  size_t orders;    /* values per release */
  size_t n, cap;    /* releases held (<= k), room */
  double *heap;     /* heap[i * orders + o]: order o's min-heap, element i */
  double sum[FEDREC_MAX_ORDERS];
} fedrec_rdp_topk;

void fedrec_rdp_topk_init(fedrec_rdp_topk *t, uint32_t k, size_t orders);
void fedrec_rdp_topk_free(fedrec_rdp_topk *t);
/* The composed RDP, per order, after adding one release (one[o]) without adding it. */
void fedrec_rdp_topk_peek(const fedrec_rdp_topk *t, const double *one, double *out);
/* Adds one release; FEDREC_ERR_NOMEM leaves t as it was. After fedrec_rdp_topk_reserve
 * succeeded, the next add cannot fail. */
fedrec_status fedrec_rdp_topk_reserve(fedrec_rdp_topk *t);
fedrec_status fedrec_rdp_topk_add(fedrec_rdp_topk *t, const double *one);

/* The exact (epsilon, delta) curve of the Gaussian mechanism (Balle & Wang 2018):
 * delta(eps) = Phi(-eps z + 1/(2z)) - e^eps Phi(-eps z - 1/(2z)), for one release with
 * sensitivity 1 and noise multiplier z. */
double fedrec_gaussian_exact_delta(double z, double epsilon);

#ifdef __cplusplus
}
#endif
#endif
