/* Exact discrete Laplace and discrete Gaussian samplers (Canonne, Kamath, Steinke 2020,
 * Algorithms 1-3), integer arithmetic only. */
#include "fedrec/internal/sim.h"
#include "fedrec/noise.h"

#include <math.h>

typedef unsigned __int128 u128;

/* Uniform integer in [0, n), n > 0, by rejection on the smallest covering power of two. */
static u128 uniform_below(const fedrec_entropy *e, u128 n) {
  u128 mask = n - 1;
  for (int s = 1; s < 128; s <<= 1) mask |= mask >> s;
  int bytes = 0;
  for (u128 m = mask; m; m >>= 8) bytes++;
  for (;;) {
    u128 x = 0;
    e->bytes(e->ctx, &x, (uint64_t)(bytes ? bytes : 1));
    x &= mask;
    if (x < n) return x;
  }
}

int fedrec_bernoulli(const fedrec_entropy *e, u128 num, u128 den) {
  return uniform_below(e, den) < num;
}

/* Bernoulli(exp(-g)) for g = num/den in [0, 1]: K = first k with Bernoulli(g/k) = 0;
 * return K odd. */
static int bernoulli_exp_unit(const fedrec_entropy *e, u128 num, u128 den) {
  u128 k = 1;
  while (fedrec_bernoulli(e, num, den * k)) k++;
  return (int)(k & 1);
}

int fedrec_bernoulli_exp(const fedrec_entropy *e, u128 num, u128 den) {
  while (num > den) { /* exp(-g) = exp(-1)^floor(g) exp(-(g - floor g)) */
    if (!bernoulli_exp_unit(e, 1, 1)) return 0;
    num -= den;
  }
  return bernoulli_exp_unit(e, num, den);
}

int64_t fedrec_discrete_laplace(const fedrec_entropy *e, uint64_t t) {
  for (;;) {
    uint64_t u = (uint64_t)uniform_below(e, t);
    if (!fedrec_bernoulli_exp(e, u, t)) continue;
    uint64_t v = 0;
    while (fedrec_bernoulli_exp(e, 1, 1)) v++;
    uint64_t x = u + t * v;
    int neg = fedrec_bernoulli(e, 1, 2);
    if (neg && x == 0) continue;
    return neg ? -(int64_t)x : (int64_t)x;
  }
}

/* floor(sqrt(num / den)) by binary search: the largest r with r^2 den <= num. */
static uint64_t isqrt_ratio(uint64_t num, uint64_t den) {
  uint64_t lo = 0, hi = 1u << 21; /* num / den < 2^42 */
  while (lo < hi) {
    uint64_t mid = (lo + hi + 1) / 2;
    if ((u128)mid * mid * den <= num) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

fedrec_status fedrec_discrete_gaussian(int64_t *out, const fedrec_entropy *e, uint64_t sn,
                                       uint64_t sd) {
  if (sn < 1 || sn >= (1ULL << 32) || sd < 1 || sd >= (1u << 16)) return FEDREC_ERR_ARG;
  uint64_t t = isqrt_ratio(sn, sd) + 1;
  for (;;) {
    int64_t y = fedrec_discrete_laplace(e, t);
    uint64_t ay = (uint64_t)(y < 0 ? -y : y);
    /* accept with exp(-(|y| - s2/t)^2 / (2 s2)) = exp(-(|y| sd t - sn)^2 / (2 sn sd t^2)) */
    __int128 diff = (__int128)ay * sd * t - (__int128)sn;
    u128 num = (u128)(diff < 0 ? -diff : diff);
    num *= num;
    u128 den = (u128)2 * sn * sd * t * t;
    if (fedrec_bernoulli_exp(e, num, den)) {
      *out = y;
      return FEDREC_OK;
    }
  }
}

static int64_t poisson1(const fedrec_entropy *e) {
  for (;;) {
    int64_t k = 0;
    while (!fedrec_bernoulli(e, 1, 2)) k++; /* Geometric(1/2): P(k) = 2^-(k+1) */
    int accept = k == 0 ? fedrec_bernoulli(e, 1, 2) : 1;
    for (int64_t j = 2; accept && j <= k; j++) accept = fedrec_bernoulli(e, 2, (u128)j);
    if (accept) return k;
  }
}

/* The O(lambda) method: floor(lambda) Poisson(1) draws plus a thinned one. */
static int64_t poisson_small(const fedrec_entropy *e, uint64_t num, uint64_t den) {
  uint64_t m = num / den, rem = num % den;
  int64_t x = 0;
  for (uint64_t i = 0; i < m; i++) x += poisson1(e);
  if (rem) { /* thinning: each point of a Poisson(1) kept with probability rem/den */
    int64_t n = poisson1(e);
    for (int64_t i = 0; i < n; i++) x += fedrec_bernoulli(e, rem, den);
  }
  return x;
}

/* Rejection around the mode m = floor(lambda), O(sqrt(lambda)) coins per sample.
 * The ratio r(y) = P(m + y) / P(m) is a product of factors at most 1:
 *   y > 0: prod_{i=1..y} lambda / (m + i);   y < 0: prod_{i=0..|y|-1} (m - i) / lambda.
 * Proposal: two-sided geometric, P(y) proportional to rho^|y| with rho = (s - 1)/s,
 * s ~ sqrt(2 lambda). Envelope constant rho^-W, where W is the first index beyond which every
 * factor is at most rho. Then y is accepted with probability r(y) / (rho^-W rho^|y|) =
 *   prod_{i <= min(|y|, W)} f_i * rho^(W - min(|y|, W)) * prod_{i > W} (f_i / rho),
 * every factor a rational in [0, 1]: one exact coin each, stopping at the first 0. The accepted
 * y has probability proportional to r(y), so m + y is exactly Poisson(lambda). Expected cost
 * about 4 sqrt(2 lambda) coins (acceptance about 1/2). */
static int64_t poisson_large(const fedrec_entropy *e, uint64_t num, uint64_t den) {
  uint64_t m = num / den;
  uint64_t s = isqrt_ratio(2 * num, den);
  if (s < 2) s = 2;
  /* W: for i > W, lambda / (m + i) <= rho  <=>  m + i >= num s / (den (s - 1)), and
   *    for i >= W, (m - i) / lambda <= rho  <=>  m - i <= num (s - 1) / (den s) */
  u128 need = ((u128)num * s + (u128)den * (s - 1) - 1) / ((u128)den * (s - 1)); /* ceil */
  uint64_t wpos = need > (u128)m + 1 ? (uint64_t)(need - m - 1) : 0;
  uint64_t low = (uint64_t)(((u128)num * (s - 1)) / ((u128)den * s)); /* floor */
  uint64_t wneg = m > low ? m - low : 0;
  uint64_t W = wpos > wneg ? wpos : wneg;
  for (;;) {
    uint64_t g = 0;
    while (fedrec_bernoulli(e, s - 1, s)) g++;
    int neg = fedrec_bernoulli(e, 1, 2);
    if (neg && g == 0) continue;
    if (neg && g > m) continue; /* below zero: probability 0 */
    uint64_t head = g < W ? g : W;
    int ok = 1;
    for (uint64_t i = 0; ok && i < head; i++)
      ok = neg ? fedrec_bernoulli(e, (u128)(m - i) * den, num)
               : fedrec_bernoulli(e, num, (u128)den * (m + i + 1));
    for (uint64_t i = head; ok && i < W; i++) ok = fedrec_bernoulli(e, s - 1, s);
    for (uint64_t i = W; ok && i < g; i++)
      ok = neg ? fedrec_bernoulli(e, (u128)(m - i) * den * s, (u128)num * (s - 1))
               : fedrec_bernoulli(e, (u128)num * s, (u128)den * (m + i + 1) * (s - 1));
    if (ok) return neg ? (int64_t)m - (int64_t)g : (int64_t)(m + g);
  }
}

int64_t fedrec_poisson(const fedrec_entropy *e, uint64_t num, uint64_t den) {
  return num / den >= 8 ? poisson_large(e, num, den) : poisson_small(e, num, den);
}

int64_t fedrec_skellam(const fedrec_entropy *e, uint64_t num, uint64_t den) {
  return fedrec_poisson(e, num, den) - fedrec_poisson(e, num, den);
}

static double unit_open(const fedrec_entropy *e) { /* uniform in (0, 1) */
  uint64_t v;
  e->bytes(e->ctx, &v, sizeof v);
  return ((double)(v >> 11) + 0.5) * 0x1.0p-53;
}

int64_t fedrec_poisson_fast(const fedrec_entropy *e, double lambda) {
  if (lambda < 10) return fedrec_poisson(e, (uint64_t)llround(lambda * 1048576.0), 1048576);
  /* PTRS (W. Hormann, "The transformed rejection method for generating Poisson random
   * variables", Insurance: Mathematics and Economics 12, 1993), constants from the paper */
  double slam = sqrt(lambda), loglam = log(lambda);
  double b = 0.931 + 2.53 * slam, a = -0.059 + 0.02483 * b;
  double inv_alpha = 1.1239 + 1.1328 / (b - 3.4), vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    double u = unit_open(e) - 0.5, v = unit_open(e), us = 0.5 - fabs(u);
    double k = floor((2 * a / us + b) * u + lambda + 0.43);
    if (us >= 0.07 && v <= vr) return (int64_t)k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -lambda + k * loglam - lgamma(k + 1)) return (int64_t)k;
  }
}

int64_t fedrec_skellam_fast(const fedrec_entropy *e, double lambda) {
  return fedrec_poisson_fast(e, lambda) - fedrec_poisson_fast(e, lambda);
}
