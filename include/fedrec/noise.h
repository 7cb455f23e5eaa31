/* Exact integer noise for distributed DP: samplers that use only integer arithmetic on a
 * caller-supplied cryptographically secure byte source (floating-point noise leaks:
 * Mironov 2012). Algorithms of Canonne, Kamath, Steinke 2020 ("The Discrete Gaussian for
 * Differential Privacy"), with exact rational parameters and 128-bit integers.
 * core/ takes the byte source as a callback; crypto/ supplies libsodium's CSPRNG. */
#ifndef FEDREC_NOISE_H
#define FEDREC_NOISE_H

#include <stdint.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fills buf with n uniformly random bytes. */
typedef void (*fedrec_bytes_fn)(void *ctx, void *buf, uint64_t n);

typedef struct fedrec_entropy {
  fedrec_bytes_fn bytes;
  void *ctx;
  /* Simulation devices only (fedrec-sim): 1 lets the distributed-DP encoder draw Skellam noise
   * with the fast floating-point sampler (fedrec_skellam_fast) instead of the exact one, whose
   * cost grows with sqrt(lambda). Never set where the noise protects anyone; the CSPRNG source
   * (fedrec_csprng) always leaves it 0. */
  int simulation_fast_noise;
} fedrec_entropy;

/* Bernoulli(num / den), 0 <= num <= den, den > 0. */
int fedrec_bernoulli(const fedrec_entropy *e, unsigned __int128 num, unsigned __int128 den);
/* Bernoulli(exp(-num / den)), num >= 0, den > 0. */
int fedrec_bernoulli_exp(const fedrec_entropy *e, unsigned __int128 num, unsigned __int128 den);
/* Discrete Laplace with integer scale t >= 1: P(x) proportional to exp(-|x| / t). */
int64_t fedrec_discrete_laplace(const fedrec_entropy *e, uint64_t t);
/* Discrete Gaussian N_Z(0, sigma^2) into *out, sigma^2 = sigma2_num / sigma2_den with
 * 1 <= sigma2_num < 2^32 and 1 <= sigma2_den < 2^16 (so every intermediate fits in 128 bits);
 * FEDREC_ERR_ARG otherwise. */
fedrec_status fedrec_discrete_gaussian(int64_t *out, const fedrec_entropy *e,
                                       uint64_t sigma2_num, uint64_t sigma2_den);

/* Poisson(lambda), lambda = num / den (num < 2^40, 1 <= den < 2^40), exact.
 * lambda < 8: the sum of floor(lambda) exact Poisson(1) draws plus a Poisson(1) draw thinned
 * with probability frac(lambda); Poisson(1) by rejection from Geometric(1/2) (k accepted with
 * probability prod_{j=2..k} 2/j). lambda >= 8: rejection around the mode from a two-sided
 * geometric proposal, the acceptance a product of rational coins (core/noise.c explains why
 * it is exact); about 4 sqrt(2 lambda) coins per sample. */
int64_t fedrec_poisson(const fedrec_entropy *e, uint64_t num, uint64_t den);
/* Symmetric Skellam: Poisson(lambda) - Poisson(lambda), variance 2 lambda; O(sqrt(lambda)). */
int64_t fedrec_skellam(const fedrec_entropy *e, uint64_t num, uint64_t den);


#ifdef __cplusplus
}
#endif
#endif
