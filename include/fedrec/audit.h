/* Empirical privacy lower bounds from one training run (Steinke, Nasr, Jagielski 2023,
 * "Privacy Auditing with One (1) Training Run"): m canaries are each included independently
 * with probability 1/2; after training the auditor guesses inclusion for r of them (abstaining
 * on the rest) and gets v right. An (eps, delta)-DP mechanism makes many correct guesses
 * unlikely: the number of correct guesses is dominated by Binomial(r, e^eps / (1 + e^eps)),
 * up to a term in delta (their Theorem 5.2). */
#ifndef FEDREC_AUDIT_H
#define FEDREC_AUDIT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The probability of at least v correct guesses out of r (of m canaries) under (eps, delta)-DP:
 * P[Binomial(r, q) >= v] + 2 m delta max_{1 <= i <= v} P[v - i <= Binomial(r, q) < v] / i,
 * q = 1 / (1 + e^-eps); at most 1. */
double fedrec_audit_p_value(uint64_t m, uint64_t r, uint64_t v, double eps, double delta);

/* The largest eps (to 1e-6, at most 100) that v correct guesses of r reject at significance
 * alpha (e.g. 0.05: a 95%-confidence lower bound on the mechanism's epsilon at delta); 0 when
 * even eps = 0 is not rejected. */
double fedrec_audit_epsilon_lower(uint64_t m, uint64_t r, uint64_t v, double delta, double alpha);

#ifdef __cplusplus
}
#endif
#endif
