/* RDP accountant for the (subsampled) Gaussian mechanism. All sums in log space. */
#include "fedrec/accountant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void fedrec_orders_default(fedrec_orders *o) {
  o->n = 0;
  for (int x = 1; x <= 99; x++) o->a[o->n++] = 1.0 + x / 10.0;
  for (int x = 11; x <= 63; x++) o->a[o->n++] = x;
  o->a[o->n++] = 128;
  o->a[o->n++] = 256;
  o->a[o->n++] = 512;
  o->a[o->n++] = 1024;
}

fedrec_status fedrec_orders_parse(fedrec_orders *o, const char *s, fedrec_error *err) {
  o->n = 0;
  const char *p = s;
  while (*p) {
    char *end;
    double a = strtod(p, &end);
    if (end == p) return fedrec_error_set(err, FEDREC_ERR_ARG, "orders: '%s' is not a number at '%s'", s, p);
    double b = a;
    if (*end == ':') {
      const char *q = end + 1;
      b = strtod(q, &end);
      if (end == q || b < a || a != floor(a) || b != floor(b))
        return fedrec_error_set(err, FEDREC_ERR_ARG, "orders: range in '%s' must be integers a:b with a <= b", s);
    }
    for (double x = a; x <= b; x += 1) {
      if (!(x > 1) || !isfinite(x)) return fedrec_error_set(err, FEDREC_ERR_ARG, "orders: %g is not > 1", x);
      if (o->n == FEDREC_MAX_ORDERS) return fedrec_error_set(err, FEDREC_ERR_LIMIT, "orders: more than %d", FEDREC_MAX_ORDERS);
      o->a[o->n++] = x;
    }
    if (*end == ',') end++;
    else if (*end) return fedrec_error_set(err, FEDREC_ERR_ARG, "orders: unexpected '%c' in '%s'", *end, s);
    p = end;
  }
  if (o->n == 0) return fedrec_error_set(err, FEDREC_ERR_ARG, "orders: empty list");
  return FEDREC_OK;
}

static double log_add(double a, double b) {
  if (a == -INFINITY) return b;
  if (b == -INFINITY) return a;
  double m = fmax(a, b);
  return m + log1p(exp(-fabs(a - b)));
}

/* log(exp(a) - exp(b)), a >= b */
static double log_sub(double a, double b) {
  if (b == -INFINITY) return a;
  if (a <= b) return -INFINITY; /* the exact series never goes negative; rounding can touch 0 */
  return a + log1p(-exp(b - a));
}

/* log(erfc(x)), with the asymptotic expansion where erfc underflows. */
static double log_erfc(double x) {
  if (x < 25) return log(erfc(x));
  double r = 1.0 / (x * x);
  /* erfc(x) = exp(-x^2) / (x sqrt(pi)) * (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + 105/(16x^8)) */
  double series = 1 - r / 2 + 3 * r * r / 4 - 15 * r * r * r / 8 + 105 * r * r * r * r / 16;
  return -x * x - log(x) - 0.5 * log(M_PI) + log(series);
}

/* log(expm1(y)), y > 0, without overflow. */
static double log_expm1(double y) { return y < 30 ? log(expm1(y)) : y + log1p(-exp(-y)); }

/* log(1 + exp(x)): log A from log(A - 1). */
static double log1p_exp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* Integer order: A = sum_i C(a,i) (1-q)^(a-i) q^i exp((i^2 - i) / (2 z^2)). The binomial
 * weights sum to 1, so A - 1 = sum_{i >= 2} C(a,i) (1-q)^(a-i) q^i expm1((i^2 - i) / (2 z^2)):
 * positive terms only. Summing A itself adds O(1) terms whose excess over 1 can be 1e-12 (tiny
 * q, large z), losing that excess to rounding; over 1e10 steps the loss under-reported epsilon. */
static double log_a_int(double q, double z, int a) {
  double lam1 = -INFINITY; /* log(A - 1) */
  for (int i = 2; i <= a; i++) {
    double lc = lgamma(a + 1.0) - lgamma(i + 1.0) - lgamma(a - i + 1.0);
    double t = lc + i * log(q) + (a - i) * log1p(-q) + log_expm1((double)(i * (double)i - i) / (2 * z * z));
    lam1 = log_add(lam1, t);
  }
  return log1p_exp(lam1);
}

/* Fractional order: the exact signed series of Mironov, Talwar, Zhang 2019 (as Opacus). */
static double log_a_frac(double q, double z, double a, int *terms) {
  double la0 = -INFINITY, la1 = -INFINITY;
  double z0 = z * z * log(1 / q - 1) + 0.5;
  double lc = 0; /* log |C(a, i)| */
  int sign = 1;  /* sign of C(a, i) */
  for (int i = 0; i < 100000; i++) {
    if (i > 0) { /* C(a, i) = C(a, i-1) (a - i + 1) / i */
      double f = (a - i + 1) / i;
      if (f < 0) sign = -sign;
      lc += log(fabs(f));
    }
    double j = a - i;
    double lt0 = lc + i * log(q) + j * log1p(-q);
    double lt1 = lc + j * log(q) + i * log1p(-q);
    double le0 = log(0.5) + log_erfc((i - z0) / (M_SQRT2 * z));
    double le1 = log(0.5) + log_erfc((z0 - j) / (M_SQRT2 * z));
    double ls0 = lt0 + (i * (double)i - i) / (2 * z * z) + le0;
    double ls1 = lt1 + (j * j - j) / (2 * z * z) + le1;
    if (sign > 0) {
      la0 = log_add(la0, ls0);
      la1 = log_add(la1, ls1);
    } else {
      la0 = log_sub(la0, ls0);
      la1 = log_sub(la1, ls1);
    }
    *terms = i + 1;
    if (fmax(ls0, ls1) < -30) break;
  }
  return log_add(la0, la1);
}

double fedrec_rdp_subsampled_gaussian(double q, double z, double a) {
  if (q <= 0) return 0;
  if (z <= 0) return INFINITY;
  if (q >= 1) return a / (2 * z * z);
  if (a == floor(a)) return log_a_int(q, z, (int)a) / (a - 1);
  /* The fractional series is signed, and its terms of size 1 cancel down to log A, which can
   * be 1e-12: rounding is then a visible part of it, in either direction. Two upper bounds,
   * the smaller taken: the series plus a bound on its rounding (a few ulps of 1 per term), and
   * the chord between the neighbouring integer orders (log A is convex in the order, log A(1)
   * = 0), which log_a_int sums without cancellation. */
  int terms = 0;
  double la = log_a_frac(q, z, a, &terms) + 16.0 * terms * DBL_EPSILON;
  double lo = floor(a), hi = lo + 1, f = a - lo;
  double chord = (1 - f) * (lo >= 2 ? log_a_int(q, z, (int)lo) : 0) + f * log_a_int(q, z, (int)hi);
  return fmin(la, chord) / (a - 1);
}

double fedrec_rdp_to_epsilon(const double *r, const fedrec_orders *o, double delta,
                             double *best_order) {
  double best = INFINITY, ba = NAN;
  for (size_t k = 0; k < o->n; k++) {
    double a = o->a[k];
    if (!isfinite(r[k])) continue;
    double e = r[k] + log((a - 1) / a) - (log(delta) + log(a)) / (a - 1);
    if (e < best) best = e, ba = a;
  }
  if (best_order) *best_order = ba;
  return best < 0 ? 0 : best;
}

double fedrec_rdp_to_delta(const double *r, const fedrec_orders *o, double epsilon) {
  double best = 1;
  for (size_t k = 0; k < o->n; k++) {
    double a = o->a[k];
    if (!isfinite(r[k])) continue;
    /* from the conversion: log delta = (a - 1)(r - eps + log((a-1)/a)) - log a */
    double ld = (a - 1) * (r[k] - epsilon + log((a - 1) / a)) - log(a);
    if (ld < log(best)) best = exp(ld);
  }
  return best;
}

double fedrec_epsilon_gaussian(double q, double z, uint64_t steps, double delta,
                               const fedrec_orders *o, double *best_order) {
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o->n; k++) r[k] = (double)steps * fedrec_rdp_subsampled_gaussian(q, z, o->a[k]);
  return fedrec_rdp_to_epsilon(r, o, delta, best_order);
}

fedrec_status fedrec_calibrate_gaussian(double *z, double target_epsilon, double delta, double q,
                                        uint64_t steps, const fedrec_orders *o,
                                        fedrec_error *err) {
  if (!(target_epsilon > 0) || !(delta > 0 && delta < 1) || !(q > 0 && q <= 1) || steps == 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "calibrate: need epsilon > 0, 0 < delta < 1, 0 < q <= 1, steps >= 1");
  double lo = 1e-3, hi = 1e4;
  if (fedrec_epsilon_gaussian(q, hi, steps, delta, o, NULL) > target_epsilon)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "calibrate: epsilon %g is out of reach even at noise multiplier %g",
                            target_epsilon, hi);
  /* the answer can lie below the usual bracket (a large target, a tiny q): widen it down, so
   * that the bisection always has epsilon(lo) > target (61d538e returned 1e-3 then) */
  while (lo > 1e-12 && fedrec_epsilon_gaussian(q, lo, steps, delta, o, NULL) <= target_epsilon) hi = lo, lo /= 16;
  if (fedrec_epsilon_gaussian(q, lo, steps, delta, o, NULL) <= target_epsilon) {
    *z = lo; /* even this little noise meets the target */
    return FEDREC_OK;
  }
  /* epsilon decreases in z: bisect on a log scale */
  while (hi / lo > 1 + 1e-7) {
    double mid = sqrt(lo * hi);
    if (fedrec_epsilon_gaussian(q, mid, steps, delta, o, NULL) > target_epsilon) lo = mid;
    else hi = mid;
  }
  *z = hi;
  return FEDREC_OK;
}

static double norm_cdf(double x) { return 0.5 * erfc(-x / M_SQRT2); }

double fedrec_gaussian_exact_delta(double z, double epsilon) {
  return norm_cdf(-epsilon * z + 1 / (2 * z)) - exp(epsilon) * norm_cdf(-epsilon * z - 1 / (2 * z));
}

double fedrec_rdp_skellam(double a, double d2, double d1, double var) {
  if (!(var > 0)) return INFINITY;
  double t1 = ((2 * a - 1) * d2 * d2 + 6 * d1) / (4 * var * var), t2 = 3 * d1 / (2 * var);
  return a * d2 * d2 / (2 * var) + fmin(t1, t2);
}

double fedrec_rdp_poisson_subsampled(double q, double a, double (*rdp)(const void *ctx, double l),
                                     const void *ctx) {
  if (a != floor(a) || a < 2) return NAN;
  if (q <= 0) return 0;
  if (q >= 1) return rdp(ctx, a);
  int m = (int)a;
  double lq = log(q), l1q = log1p(-q);
  /* The bound is (1-q)^(a-1)(aq - q + 1) + C(a,2) q^2 (1-q)^(a-2) e^eps(2)
   * + 3 sum_{l>=3} C(a,l) (1-q)^(a-l) q^l e^((l-1) eps(l)). Its binomial weights sum to 1, so
   * minus 1 it is C(a,2) q^2 (1-q)^(a-2) expm1(eps(2)) + sum_{l>=3} C(a,l) (1-q)^(a-l) q^l
   * (3 e^((l-1) eps(l)) - 1): positive terms, no cancellation (as in log_a_int). */
  double e2 = rdp(ctx, 2);
  double acc = log(a * (a - 1) / 2) + 2 * lq + (a - 2) * l1q + (e2 > 0 ? log_expm1(e2) : -INFINITY);
  for (int l = 3; l <= m; l++) {
    double lc = lgamma(a + 1.0) - lgamma(l + 1.0) - lgamma(a - l + 1.0), x = (l - 1) * rdp(ctx, l);
    acc = log_add(acc, lc + (a - l) * l1q + l * lq + x + log(3 - exp(-x)));
  }
  return log1p_exp(acc) / (a - 1);
}

typedef struct {
  double d2, d1, var;
} skellam_ctx;

static double skellam_curve(const void *ctx, double l) {
  const skellam_ctx *c = ctx;
  return fedrec_rdp_skellam(l, c->d2, c->d1, c->var);
}

double fedrec_rdp_skellam_subsampled(double q, double a, double d2, double d1, double var) {
  skellam_ctx c = {d2, d1, var};
  return q >= 1 ? fedrec_rdp_skellam(a, d2, d1, var)
                : fedrec_rdp_poisson_subsampled(q, a, skellam_curve, &c);
}

double fedrec_epsilon_skellam(double q, double d2, double d1, double var, uint64_t steps,
                              double delta, const fedrec_orders *o, double *best_order) {
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o->n; k++) {
    double v = fedrec_rdp_skellam_subsampled(q, o->a[k], d2, d1, var);
    r[k] = isnan(v) ? INFINITY : (double)steps * v; /* fractional orders skipped when q < 1 */
  }
  return fedrec_rdp_to_epsilon(r, o, delta, best_order);
}

/* ---- distributed discrete Gaussian (Kairouz, Liu, Steinke 2021, Theorem 1 / Prop. 14) ---- */

double fedrec_ddgauss_tau(uint32_t n, double sigma) {
  double t = 0, s2 = 2 * M_PI * M_PI * sigma * sigma;
  for (uint32_t k = 1; k < n; k++) {
    double term = exp(-s2 * (double)k / (k + 1.0));
    t += term;
    /* terms grow towards exp(-s2) with k: once they no longer change the sum, the rest is
     * (n - 1 - k) times the limit to within rounding */
    if (k > 64 && term < 1e-300) break;
  }
  return 10 * t;
}

double fedrec_rdp_ddgauss(double a, double d2, double d1, double sigma, uint32_t n, uint64_t dim) {
  if (!(sigma > 0) || n == 0) return INFINITY;
  double tau = fedrec_ddgauss_tau(n, sigma), sd = sqrt((double)n) * sigma, D = (double)dim;
  double l2 = d2 / sd, l1 = d1 / sd;
  double t1 = a / 2 * l2 * l2 + tau * D;
  double t2 = a / 2 * (l2 * l2 + 2 * l1 * tau + tau * tau * D);
  double t3 = a / 2 * (l2 + sqrt(D) * tau) * (l2 + sqrt(D) * tau);
  return fmin(t1, fmin(t2, t3));
}

typedef struct {
  double d2, d1, sigma;
  uint32_t n;
  uint64_t dim;
} ddg_ctx;

static double ddg_curve(const void *ctx, double l) {
  const ddg_ctx *c = ctx;
  return fedrec_rdp_ddgauss(l, c->d2, c->d1, c->sigma, c->n, c->dim);
}

double fedrec_rdp_ddgauss_subsampled(double q, double a, double d2, double d1, double sigma,
                                     uint32_t n, uint64_t dim) {
  if (a != floor(a) || a < 2) return NAN;
  ddg_ctx c = {d2, d1, sigma, n, dim};
  double full = fedrec_rdp_ddgauss(a, d2, d1, sigma, n, dim);
  if (q >= 1) return full;
  return fmin(full, fedrec_rdp_poisson_subsampled(q, a, ddg_curve, &c));
}

double fedrec_epsilon_ddgauss(double q, double d2, double d1, double sigma, uint32_t n,
                              uint64_t dim, uint64_t steps, double delta, const fedrec_orders *o,
                              double *best_order) {
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o->n; k++) {
    double v = fedrec_rdp_ddgauss_subsampled(q, o->a[k], d2, d1, sigma, n, dim);
    r[k] = isnan(v) ? INFINITY : (double)steps * v;
  }
  return fedrec_rdp_to_epsilon(r, o, delta, best_order);
}

/* ---- DP-FTRL tree aggregation (Kairouz et al. 2021, Appendix D) ---- */

double fedrec_tree_restart_sensitivity2(const uint64_t *steps, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; i++) {
    if (steps[i] == 0) continue;
    int depth = 0;
    for (uint64_t x = steps[i]; x > 1; x >>= 1) depth++;
    s += depth + 1; /* a leaf and its ancestors in a tree of steps[i] leaves */
  }
  return s;
}

/* Worst case over where a user's (at most max_part) contributions fall among `steps` leaves,
 * at least min_sep leaves apart, of the sum over tree nodes of (contributions under the node)^2.
 * Dynamic programme over (participations, start, end, size) as in Appendix D.2: start is how
 * many leaves at the left edge cannot hold a contribution (the separation still owed to the
 * left neighbour), end the same at the right edge. The sizes met are few: powers of two and the
 * successive remainders of `steps`. */
typedef struct {
  uint32_t P, S;
  uint64_t sizes[130];
  int nsizes;
  double *memo; /* NAN: not computed */
} tree_dp;

static int size_index(tree_dp *t, uint64_t size) {
  for (int i = 0; i < t->nsizes; i++)
    if (t->sizes[i] == size) return i;
  return -1;
}

static double tree_sum(tree_dp *t, uint32_t part, uint32_t start, uint32_t end, uint64_t size) {
  if ((uint64_t)start + (uint64_t)(t->S + 1) * part > size + end) return -INFINITY;
  if (part == 0) return 0;
  if (part == 1 && size == 1) return 1;
  int si = size_index(t, size);
  size_t key = (((size_t)si * (t->P + 1) + part) * (t->S + 1) + start) * (t->S + 1) + end;
  if (!isnan(t->memo[key])) return t->memo[key];
  uint64_t left = 1;
  while (left * 2 <= size) left *= 2;
  double v = 0;
  if (left == size) { /* a full subtree: its root holds every contribution */
    v = (double)part * part;
    left /= 2;
  }
  double best = -INFINITY;
  for (uint32_t i = 0; i <= part; i++)     /* contributions in the right part */
    for (uint32_t j = 0; j <= t->S; j++) { /* separation carried across the split */
      double l = tree_sum(t, part - i, start, j, left);
      if (l == -INFINITY) continue;
      double r = tree_sum(t, i, j, end, size - left);
      if (l + r > best) best = l + r;
    }
  v += best;
  t->memo[key] = v;
  return v;
}

fedrec_status fedrec_tree_single_sensitivity2(double *out, uint64_t steps, uint32_t max_part,
                                              uint32_t min_sep, fedrec_error *err) {
  if (steps == 0 || max_part == 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "tree: steps and max participation must be >= 1");
  tree_dp t = {.P = max_part, .S = min_sep};
  /* collect the sizes the recursion meets */
  uint64_t todo[300];
  int ntodo = 0;
  todo[ntodo++] = steps;
  while (ntodo) {
    uint64_t s = todo[--ntodo];
    if (size_index(&t, s) >= 0) continue;
    if (t.nsizes == 130) return fedrec_error_set(err, FEDREC_ERR_LIMIT, "tree: too many subtree sizes");
    t.sizes[t.nsizes++] = s;
    if (s <= 1) continue;
    uint64_t left = 1;
    while (left * 2 <= s) left *= 2;
    if (left == s) left /= 2;
    todo[ntodo++] = left;
    if (s - left != left) todo[ntodo++] = s - left;
  }
  double cells = (double)t.nsizes * (max_part + 1.0) * (min_sep + 1.0) * (min_sep + 1.0);
  if (cells > 5e7)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT,
                            "tree: max participation %u with separation %u needs %.3g table cells (limit 5e7)",
                            max_part, min_sep, cells);
  t.memo = malloc((size_t)cells * sizeof *t.memo);
  if (!t.memo) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "tree: %.3g cells", cells);
  for (size_t i = 0; i < (size_t)cells; i++) t.memo[i] = NAN;
  /* fewer participations than max_part when the separation does not leave room */
  uint32_t p = max_part;
  while (p > 0 && (uint64_t)(min_sep + 1) * p > steps + min_sep) p--;
  double best = -INFINITY;
  for (uint32_t k = 1; k <= p; k++) {
    double v = tree_sum(&t, k, 0, min_sep, steps);
    if (v > best) best = v;
  }
  free(t.memo);
  *out = best;
  return FEDREC_OK;
}

double fedrec_epsilon_tree(double z, double sens2, double delta, const fedrec_orders *o,
                           double *best_order) {
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o->n; k++) r[k] = z > 0 ? o->a[k] * sens2 / (2 * z * z) : INFINITY;
  return fedrec_rdp_to_epsilon(r, o, delta, best_order);
}

void fedrec_rdp_topk_init(fedrec_rdp_topk *t, uint32_t k, size_t orders) {
  memset(t, 0, sizeof *t);
  t->k = k;
  t->orders = orders;
}

void fedrec_rdp_topk_free(fedrec_rdp_topk *t) {
  free(t->heap);
  t->heap = NULL;
  t->n = t->cap = 0;
}

void fedrec_rdp_topk_peek(const fedrec_rdp_topk *t, const double *one, double *out) {
  for (size_t o = 0; o < t->orders; o++) {
    double v = one[o];
    if (t->k && t->n == t->k) v = v > t->heap[o] ? v - t->heap[o] : 0; /* it replaces the smallest */
    out[o] = t->sum[o] + v;
  }
}

/* Order o's heap: element i at h[i * stride]. */
static void heap_up(double *h, size_t stride, size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!(h[p * stride] > h[i * stride])) break;
    double x = h[p * stride];
    h[p * stride] = h[i * stride], h[i * stride] = x;
    i = p;
  }
}

static void heap_down(double *h, size_t stride, size_t n) {
  for (size_t i = 0;;) {
    size_t l = 2 * i + 1, m = i;
    if (l < n && h[l * stride] < h[m * stride]) m = l;
    if (l + 1 < n && h[(l + 1) * stride] < h[m * stride]) m = l + 1;
    if (m == i) return;
    double x = h[m * stride];
    h[m * stride] = h[i * stride], h[i * stride] = x;
    i = m;
  }
}

fedrec_status fedrec_rdp_topk_reserve(fedrec_rdp_topk *t) {
  if (!t->k || t->n < t->cap || t->n == t->k) return FEDREC_OK;
  size_t cap = t->cap ? 2 * t->cap : 16;
  if (cap > t->k) cap = t->k;
  double *h = realloc(t->heap, cap * t->orders * sizeof *h);
  if (!h) return FEDREC_ERR_NOMEM;
  t->heap = h, t->cap = cap;
  return FEDREC_OK;
}

fedrec_status fedrec_rdp_topk_add(fedrec_rdp_topk *t, const double *one) {
  size_t no = t->orders;
  if (!t->k) {
    for (size_t o = 0; o < no; o++) t->sum[o] += one[o];
    return FEDREC_OK;
  }
  if (t->n < t->k) {
    if (fedrec_rdp_topk_reserve(t)) return FEDREC_ERR_NOMEM;
    for (size_t o = 0; o < no; o++) {
      t->heap[t->n * no + o] = one[o];
      heap_up(t->heap + o, no, t->n);
      t->sum[o] += one[o];
    }
    t->n++;
    return FEDREC_OK;
  }
  for (size_t o = 0; o < no; o++)
    if (one[o] > t->heap[o]) {
      t->sum[o] += one[o] - t->heap[o];
      t->heap[o] = one[o];
      heap_down(t->heap + o, no, t->n);
    }
  return FEDREC_OK;
}
