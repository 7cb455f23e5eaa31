/* One-run privacy auditing (see include/fedrec/audit.h). */
#include "fedrec/audit.h"

#include <math.h>

static double log_binom_pmf(uint64_t r, uint64_t k, double lq, double l1q) {
  return lgamma((double)r + 1) - lgamma((double)k + 1) - lgamma((double)(r - k) + 1) + (double)k * lq +
         (double)(r - k) * l1q;
}

double fedrec_audit_p_value(uint64_t m, uint64_t r, uint64_t v, double eps, double delta) {
  if (v > r || r > m || !(eps >= 0) || !(delta >= 0)) return NAN;
  if (v == 0) return 1;
  /* q = e^eps / (1 + e^eps), in logs without overflow */
  double lq = -log1p(exp(-eps)), l1q = -eps - log1p(exp(-eps));
  double tail = 0; /* P[Binomial(r, q) >= v] */
  for (uint64_t k = v; k <= r; k++) tail += exp(log_binom_pmf(r, k, lq, l1q));
  double alpha = 0, below = 0; /* below: P[v - i <= Binomial(r, q) < v] */
  for (uint64_t i = 1; i <= v; i++) {
    below += exp(log_binom_pmf(r, v - i, lq, l1q));
    if (below > (double)i * alpha) alpha = below / (double)i;
  }
  double p = tail + alpha * delta * 2.0 * (double)m;
  return p < 1 ? p : 1;
}

double fedrec_audit_epsilon_lower(uint64_t m, uint64_t r, uint64_t v, double delta, double alpha) {
  if (v > r || r > m || !(alpha > 0 && alpha < 1)) return NAN;
  if (fedrec_audit_p_value(m, r, v, 0, delta) >= alpha) return 0;
  double lo = 0, hi = 100; /* p-value grows with eps: the largest eps still rejected */
  while (hi - lo > 1e-6) {
    double mid = 0.5 * (lo + hi);
    if (fedrec_audit_p_value(m, r, v, mid, delta) < alpha) lo = mid;
    else hi = mid;
  }
  return lo;
}
