/* The distributed-DP client pipeline and its server-side inverse (Kairouz, Liu, Steinke
 * 2021; Agarwal, Kairouz, Liu 2021):
 *   client: L2 clip to c -> zero-pad to a power of two -> randomized Hadamard rotation
 *           (public per-round signs) -> scale by 1/gamma -> conditional randomized rounding
 *           (re-draw while the rounded vector's norm exceeds the bound) -> + integer noise
 *           -> mod 2^bits
 *   server: (secure sum mod 2^bits) -> signed representative -> x gamma -> inverse rotation.
 * The rotation spreads the update evenly over the coordinates so that the modular sum rarely
 * wraps; rounding keeps the integer vector's norm bounded so the noise calibrates to it. */
#ifndef FEDREC_DDP_H
#define FEDREC_DDP_H

#include <stdint.h>

#include "fedrec/noise.h"
#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Skellam: Poisson(s2/2) - Poisson(s2/2) per coordinate (exact, O(s2) per sample);
 * discrete Gaussian: N_Z(0, s2) (exact, O(1) expected). s2 = sigma2_num / sigma2_den. */
enum { FEDREC_NOISE_NONE = 0, FEDREC_NOISE_DGAUSS = 1, FEDREC_NOISE_SKELLAM = 2 };
/* "none", "dgauss", "skellam" ("unknown" out of range), and back (FEDREC_ERR_ARG: none such). */
const char *fedrec_noise_name(int noise);
fedrec_status fedrec_noise_parse(const char *name, int *out);

typedef struct fedrec_ddp_params {
  uint32_t dim;            /* update length d */
  double clip;             /* L2 clip norm c */
  double gamma;            /* grid step: one integer unit = gamma in the update's scale */
  uint32_t bits;           /* modulus 2^bits, 2..32 */
  double beta;             /* conditional rounding: P(norm above bound) target, e.g. exp(-0.5) */
  uint64_t round_seed;     /* public, per round: the rotation signs */
  int noise;               /* FEDREC_NOISE_* */
  uint64_t sigma2_num, sigma2_den; /* per-client noise variance (integer domain) */
} fedrec_ddp_params;

/* The padded length: the smallest power of two >= dim; 0 when dim > 2^31 (none fits). */
uint32_t fedrec_ddp_padded(uint32_t dim);
/* The bound on the rounded vector's L2 norm (integer domain) that conditional rounding
 * enforces: min(c/gamma + sqrt(D), sqrt((c/gamma)^2 + D/4 + sqrt(2 ln(1/beta)) (c/gamma + sqrt(D)/2))). */
double fedrec_ddp_rounding_bound(const fedrec_ddp_params *p);

/* Chooses gamma for a cohort of n clients, clip c, update length dim, total noise standard
 * deviation z c in the sum, and bits, so that the probability that any coordinate of the
 * modular sum wraps around stays below p_wrap. Model: after the randomized Hadamard
 * rotation (the same for every client) each coordinate of the clients' sum is sub-Gaussian
 * with variance |sum|^2 / D <= (n c)^2 / D (Kairouz, Liu, Steinke 2021; n^2, not n: the
 * updates may all point the same way); rounding adds at most 1/4 per client and coordinate;
 * then a union bound over the D coordinates of 2 exp(-t^2 / (2 v)) with t = 2^(bits-1):
 *   (c/gamma)^2 (n^2/D + z^2) + n/4 <= 2^(2 bits - 2) / (2 ln(2 D / p_wrap)).
 * FEDREC_ERR_ARG (with the reason) when bits are too few for any gamma. */
fedrec_status fedrec_ddp_choose_gamma(double *gamma, double clip, uint32_t dim, uint32_t n,
                                      double z, uint32_t bits, double p_wrap, fedrec_error *err);

/* Integer-domain sensitivities of one user's contribution, for the accountant: d2 = the
 * rounding bound above, d1 = d2 min(sqrt(D), d2) (a non-zero integer coordinate has |x| >= 1,
 * so L1 <= L2^2; and L1 <= sqrt(D) L2). */
void fedrec_ddp_sensitivity(const fedrec_ddp_params *p, double *d2, double *d1);

/* Chooses the fewest bits (2..32), and gamma for them by fedrec_ddp_choose_gamma, such that
 *  - the rounding error's variance in the sum, n gamma^2 / 4 per coordinate, is at most
 *    rounding_ratio times the DP noise variance (z c)^2 per coordinate (z = 0: times the
 *    clipped signal n c^2 / D), e.g. 0.01 makes rounding 1% of the noise; and
 *  - when max_inflation > 0, the rounded vector's norm bound (the sensitivity the accountant
 *    must use, conditional rounding with beta = exp(-1/2)) is at most (1 + max_inflation) c /
 *    gamma: a coarse grid inflates the sensitivity by about sqrt(D)/2 in the integer domain,
 *    which costs epsilon. */
fedrec_status fedrec_ddp_choose_bits(uint32_t *bits, double *gamma, double clip, uint32_t dim,
                                     uint32_t n, double z, double p_wrap, double rounding_ratio,
                                     double max_inflation, fedrec_error *err);

/* Central DP for deployments that trust the server: adds N_Z(0, (z c / gamma)^2) to each
 * coordinate of an aggregate in the integer domain (values = real aggregate / gamma, so the
 * real-domain noise has standard deviation z c), exactly, from e. sigma^2 is rounded up to a
 * multiple of 1/32768 (sigma^2 < 131072). */
fedrec_status fedrec_central_dp_noise(int64_t *agg, uint32_t n, double z, double clip,
                                      double gamma, const fedrec_entropy *e, fedrec_error *err);

/* In-place normalised Walsh-Hadamard transform (orthonormal, its own inverse); n a power of 2. */
void fedrec_fwht(double *x, uint32_t n);

/* Conditional randomized rounding of x[0, n) (already scaled to the integer grid): each value
 * to floor or ceil with the probability that keeps it unbiased, one 64-bit coin from e per value
 * (its top 53 bits), and the whole vector drawn again while its L2 norm is above bound.
 * out = the rounded values mod 2^bits. FEDREC_ERR_NUMERIC after 1000 draws over the bound. */
fedrec_status fedrec_ddp_round(uint32_t *out, const double *x, uint32_t n, uint32_t bits, double bound,
                               const fedrec_entropy *e, fedrec_error *err);

/* Client: encodes update (dim floats) into out (padded values mod 2^bits). work holds
 * padded doubles. Randomness (rounding, noise) from e, which must be a CSPRNG. */
fedrec_status fedrec_ddp_encode(uint32_t *out, const float *update, const fedrec_ddp_params *p,
                                const fedrec_entropy *e, double *work, fedrec_error *err);
/* Server: decodes a modular sum (padded values) into sum (dim floats), the sum of the
 * clients' clipped updates plus noise and rounding error. work holds padded doubles. */
void fedrec_ddp_decode(float *sum, const uint32_t *modsum, const fedrec_ddp_params *p,
                       double *work);

#ifdef __cplusplus
}
#endif
#endif
