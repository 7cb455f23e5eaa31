/* Distributed-DP encoding: clip, rotate, scale, round, add integer noise, wrap. */
#include "fedrec/internal/sim.h"
#include "fedrec/ddp.h"

#include <math.h>
#include <string.h>

#include "fedrec/internal/clones.h"
#include "fedrec/rng.h"

/* The hot loops also get an AVX2 copy, picked at load time on machines that have it (function
 * multi-versioning; about 10% of --secagg plain simulation time here). Bit for bit the same
 * results: only adds, subtracts, multiplies, divides and conversions, each rounded as in the
 * generic copy, and no fused multiply-add (-ffp-contract=off, core/CMakeLists.txt). */
/* clang gives a target_clones function's resolver external linkage (NAME.resolver), even for a
 * static one: those functions are named fedrec__... so the library exports nothing outside
 * its namespace (ctest -R install_sdk) */
#define FEDREC_CLONES FEDREC_CLONES_AVX2


uint32_t fedrec_ddp_padded(uint32_t dim) {
  if (dim > (1u << 31)) return 0; /* no power of two fits: 0, never a loop (n <<= 1 wraps to 0) */
  uint32_t n = 1;
  while (n < dim) n <<= 1;
  return n;
}

double fedrec_ddp_rounding_bound(const fedrec_ddp_params *p) {
  double D = fedrec_ddp_padded(p->dim), c = p->clip / p->gamma;
  double a = c + sqrt(D);
  double b = sqrt(c * c + D / 4 + sqrt(2 * log(1 / p->beta)) * (c + sqrt(D) / 2));
  return fmin(a, b);
}

/* Stages h = lo, 2lo, ..., < hi of the transform on x[0, n). The two smallest stages run as
 * one radix-4 step over each quadruple (the same two butterflies per element, same order). */
/* A copy for AVX2 machines, picked at load time: twice the doubles per instruction; only adds
 * and subtracts, so the same results (no FMA contraction: "avx2" does not enable FMA). */
FEDREC_CLONES
static void fedrec__fwht_stages(double *x, uint32_t n, uint32_t lo, uint32_t hi) {
  uint32_t h = lo;
  if (h == 1 && hi >= 4 && n >= 4) {
    for (uint32_t i = 0; i < n; i += 4) {
      double a = x[i] + x[i + 1], b = x[i] - x[i + 1], c = x[i + 2] + x[i + 3], d = x[i + 2] - x[i + 3];
      x[i] = a + c, x[i + 1] = b + d, x[i + 2] = a - c, x[i + 3] = b - d;
    }
    h = 4;
  }
  /* then two stages at a time (h and 2h on each quadruple j, j + h, j + 2h, j + 3h: the same
   * butterflies, half the loads and stores), and a last single stage if one is left */
  for (; 2 * h < hi && 2 * h < n; h <<= 2)
    for (uint32_t i = 0; i < n; i += 4 * h) {
      double *restrict p = x + i, *restrict q = p + h, *restrict r = q + h, *restrict t = r + h;
      for (uint32_t j = 0; j < h; j++) {
        double a = p[j] + q[j], b = p[j] - q[j], c = r[j] + t[j], d = r[j] - t[j];
        p[j] = a + c, q[j] = b + d, r[j] = a - c, t[j] = b - d;
      }
    }
  for (; h < hi && h < n; h <<= 1)
    for (uint32_t i = 0; i < n; i += 2 * h) {
      double *restrict p = x + i, *restrict q = x + i + h; /* disjoint halves: vectorises */
      for (uint32_t j = 0; j < h; j++) {
        double a = p[j], b = q[j];
        p[j] = a + b;
        q[j] = a - b;
      }
    }
}

/* Cache-blocked: the stages that stay inside a block of FWHT_BLOCK doubles (128 KiB) run block
 * by block while it is in cache, then the wider stages. Every butterfly sees the same operands
 * as in the textbook order, so the result is bit-for-bit the same. */
#define FWHT_BLOCK 16384u
static void fwht_unscaled(double *x, uint32_t n) {
  uint32_t b = n < FWHT_BLOCK ? n : FWHT_BLOCK;
  for (uint32_t i = 0; i < n; i += b) fedrec__fwht_stages(x + i, b, 1, b);
  fedrec__fwht_stages(x, n, b, n);
}

void fedrec_fwht(double *x, uint32_t n) {
  fwht_unscaled(x, n);
  double s = 1 / sqrt((double)n);
  for (uint32_t i = 0; i < n; i++) x[i] *= s;
}

/* work[0, n) = the signs applied to (update[0, dim) * scale, then zeros), in one pass: the
 * same values as scaling, padding and apply_signs one after the other. */
FEDREC_CLONES
static void fedrec__scale_signs(double *work, const float *update, uint32_t dim, uint32_t n, double scale, uint64_t seed) {
  fedrec_rng r;
  fedrec_rng_seed(&r, seed, 0x7369676e73ULL);
  for (uint32_t i = 0; i < n; i += 64) {
    uint64_t bits = fedrec_rng_u64(&r);
    if (i + 64 <= dim) { /* a whole block of the update: no bounds in the loop, it vectorises */
      for (uint32_t j = 0; j < 64; j++) {
        double x = update[i + j] * scale;
        uint64_t v;
        memcpy(&v, &x, sizeof v);
        v ^= (bits >> j & 1) << 63;
        memcpy(&work[i + j], &v, sizeof v);
      }
      continue;
    }
    for (uint32_t j = 0; j < 64 && i + j < n; j++) {
      double x = i + j < dim ? update[i + j] * scale : 0.0;
      uint64_t v;
      memcpy(&v, &x, sizeof v);
      v ^= (bits >> j & 1) << 63;
      memcpy(&work[i + j], &v, sizeof v);
    }
  }
}

/* The public random signs of the rotation, from the round seed. */
static void apply_signs(double *x, uint32_t n, uint64_t seed) {
  fedrec_rng r;
  fedrec_rng_seed(&r, seed, 0x7369676e73ULL);
  for (uint32_t i = 0; i < n; i += 64) {
    uint64_t bits = fedrec_rng_u64(&r);
    for (uint32_t j = 0; j < 64 && i + j < n; j++) { /* flip the sign bit: no branch */
      uint64_t v;
      memcpy(&v, &x[i + j], sizeof v);
      v ^= (bits >> j & 1) << 63;
      memcpy(&x[i + j], &v, sizeof v);
    }
  }
}

/* One batch of the rounding: v = floor(x) + Bernoulli(x - floor(x)) from the coins, out = v mod
 * 2^bits; returns sum v^2 (exact while *big stays 0) and ORs every |v| >> 26 into *big. Also
 * an AVX-512 copy (x86-64-v4: int64 <-> double conversions in vectors): conversions, compares
 * and a multiply by 2^-53 are exact, so every copy gives the same words. */
FEDREC_CLONES_AVX512
static uint64_t fedrec__round_batch(uint32_t *restrict out, int64_t *restrict v, const double *restrict work,
                            const uint64_t *restrict coins, uint32_t m, int64_t mask, double mul, double div,
                            uint64_t *big) {
  uint64_t sq = 0, bg = 0; /* sq <= 256 * 2^52 while bg == 0: no overflow */
  for (uint32_t j = 0; j < m; j++) {
    /* floor(x) without libm or a branch (a sign-dependent branch mispredicts half the time);
     * exact for |x| < 2^63, and at or above 2^52 x is already an integer */
    double x = work[j] * mul / div; /* the grid: x * 1 / 1 is x */
    int64_t f = (int64_t)x;
    f -= (double)f > x;
    int64_t vj = f + ((double)(coins[j] >> 11) * 0x1.0p-53 < x - (double)f);
    v[j] = vj;
    out[j] = (uint32_t)(vj & mask);
    uint64_t a = (uint64_t)(vj < 0 ? -vj : vj);
    bg |= a >> 26;
    sq += a * a;
  }
  *big = bg;
  return sq;
}

/* Rounds work[i] * mul / div (each value computed as written: the same bits as scaling first). */
static fedrec_status round_kernel(uint32_t *out, const double *work, uint32_t n, uint32_t bits, double bound,
                                  double mul, double div, const fedrec_entropy *e, fedrec_error *err) {
  double bound2 = bound * bound;
  int64_t mask = bits == 32 ? 0xffffffffLL : ((1LL << bits) - 1);
  for (int tries = 0;; tries++) {
    if (tries == 1000) return fedrec_error_set(err, FEDREC_ERR_NUMERIC, "ddp: rounding exceeded its bound 1000 times");
    /* The squared length, as the double sum len2 += v * v in order. While every |v| < 2^26 and
     * the total stays below 2^53 each term and partial sum is an exact integer, so an integer
     * sum gives the same value without a floating-point add chain (the loop's bottleneck); past
     * that it carries on in double from the exact value so far: the same sum, bit for bit. */
    uint64_t exact = 0;
    int in_double = 0;
    double len2 = 0;
    enum { BATCH = 256 };
    uint64_t coins[BATCH]; /* read in batches: the same bytes, in the same order, as one at a time */
    int64_t v[BATCH];
    for (uint32_t b = 0; b < n; b += BATCH) {
      uint32_t m = n - b < BATCH ? n - b : BATCH;
      e->bytes(e->ctx, coins, m * sizeof *coins);
      uint64_t big;
      uint64_t sq = fedrec__round_batch(out + b, v, work + b, coins, m, mask, mul, div, &big);
      if (!in_double && !big && exact + sq < (1ULL << 53)) {
        exact += sq;
        continue;
      }
      for (uint32_t j = 0; j < m; j++) { /* value by value, as the sum in order would go */
        uint64_t a = (uint64_t)(v[j] < 0 ? -v[j] : v[j]), t = exact + a * a;
        if (!in_double && a < (1u << 26) && t < (1ULL << 53)) exact = t;
        else {
          if (!in_double) len2 = (double)exact, in_double = 1;
          len2 += (double)v[j] * (double)v[j];
        }
      }
    }
    if (!in_double) len2 = (double)exact;
    if (len2 <= bound2) break;
  }
  return FEDREC_OK;
}

/* Exported without clones (clang cannot link a multi-versioned function from another file). */
fedrec_status fedrec_ddp_round(uint32_t *out, const double *x, uint32_t n, uint32_t bits, double bound,
                               const fedrec_entropy *e, fedrec_error *err) {
  return round_kernel(out, x, n, bits, bound, 1, 1, e, err);
}

fedrec_status fedrec_ddp_encode(uint32_t *out, const float *update, const fedrec_ddp_params *p,
                                const fedrec_entropy *e, double *work, fedrec_error *err) {
  uint32_t n = fedrec_ddp_padded(p->dim);
  if (p->bits < 2 || p->bits > 32 || !(p->clip > 0) || !(p->gamma > 0) || !(p->beta > 0 && p->beta < 1))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "ddp: need 2 <= bits <= 32, clip > 0, gamma > 0, 0 < beta < 1");
  double norm = 0;
  for (uint32_t i = 0; i < p->dim; i++) norm += (double)update[i] * update[i];
  norm = sqrt(norm);
  double scale = norm > p->clip ? p->clip / norm : 1.0;
  fedrec__scale_signs(work, update, p->dim, n, scale, p->round_seed);
  fwht_unscaled(work, n);
  double s = 1 / sqrt((double)n); /* fedrec_fwht's normalisation, then the grid, as it rounds */
  fedrec_status rs = round_kernel(out, work, n, p->bits, fedrec_ddp_rounding_bound(p), s, p->gamma, e, err);
  if (rs) return rs;
  int64_t mask = p->bits == 32 ? 0xffffffffLL : ((1LL << p->bits) - 1);
  if (p->noise == FEDREC_NOISE_SKELLAM) {
    if (!p->sigma2_num || !p->sigma2_den || p->sigma2_num >= (1ULL << 40) || p->sigma2_den >= (1ULL << 38))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "ddp: Skellam variance %llu/%llu out of range",
                              (unsigned long long)p->sigma2_num, (unsigned long long)p->sigma2_den);
    if (e->simulation_fast_noise) { /* fedrec-sim only: see fedrec_entropy */
      double lambda = (double)p->sigma2_num / (2.0 * (double)p->sigma2_den);
      for (uint32_t i = 0; i < n; i++) out[i] = (uint32_t)(((int64_t)out[i] + fedrec_skellam_fast(e, lambda)) & mask);
    } else
      for (uint32_t i = 0; i < n; i++) /* lambda = s2 / 2 per side */
        out[i] = (uint32_t)(((int64_t)out[i] + fedrec_skellam(e, p->sigma2_num, 2 * p->sigma2_den)) & mask);
  } else if (p->noise == FEDREC_NOISE_DGAUSS)
    for (uint32_t i = 0; i < n; i++) {
      int64_t z;
      fedrec_status st = fedrec_discrete_gaussian(&z, e, p->sigma2_num, p->sigma2_den);
      if (st) return fedrec_error_set(err, st, "ddp: noise variance %llu/%llu out of the sampler's range",
                                      (unsigned long long)p->sigma2_num, (unsigned long long)p->sigma2_den);
      out[i] = (uint32_t)(((int64_t)out[i] + z) & mask);
    }
  return FEDREC_OK;
}

void fedrec_ddp_decode(float *sum, const uint32_t *modsum, const fedrec_ddp_params *p,
                       double *work) {
  uint32_t n = fedrec_ddp_padded(p->dim);
  int64_t half = 1LL << (p->bits - 1), mod = 1LL << p->bits;
  for (uint32_t i = 0; i < n; i++) {
    int64_t v = modsum[i];
    if (v >= half) v -= mod; /* signed representative in [-2^(b-1), 2^(b-1)) */
    work[i] = (double)v * p->gamma;
  }
  fedrec_fwht(work, n); /* H is its own inverse; then undo the signs */
  apply_signs(work, n, p->round_seed);
  for (uint32_t i = 0; i < p->dim; i++) sum[i] = (float)work[i];
}

fedrec_status fedrec_ddp_choose_gamma(double *gamma, double clip, uint32_t dim, uint32_t n,
                                      double z, uint32_t bits, double p_wrap, fedrec_error *err) {
  if (!(clip > 0) || dim < 1 || n < 1 || !(z >= 0) || bits < 2 || bits > 32 ||
      !(p_wrap > 0 && p_wrap < 1))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "choose gamma: need clip > 0, dim, n >= 1, z >= 0, 2 <= bits <= 32, 0 < p_wrap < 1");
  double D = fedrec_ddp_padded(dim);
  double t2 = ldexp(1.0, 2 * (int)bits - 2) / (2 * log(2 * D / p_wrap));
  double room = t2 - n / 4.0;
  if (!(room > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "choose gamma: %u bits cannot hold the rounding of %u clients at wrap probability %g",
                            bits, n, p_wrap);
  /* the rotation is shared: the sum's coordinates have variance |sum|^2 / D <= (n c)^2 / D, all
   * of it when the updates point the same way (count rounds' item vectors do) */
  *gamma = clip * sqrt(((double)n * n / D + z * z) / room);
  return FEDREC_OK;
}

fedrec_status fedrec_central_dp_noise(int64_t *agg, uint32_t n, double z, double clip,
                                      double gamma, const fedrec_entropy *e, fedrec_error *err) {
  double s = z * clip / gamma, s2 = s * s;
  if (!(s2 > 0) || s2 * 32768 >= 4294967296.0 - 1)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "central DP: noise variance %g (integer domain) out of range (0, 131072)", s2);
  uint64_t num = (uint64_t)ceil(s2 * 32768);
  for (uint32_t i = 0; i < n; i++) {
    int64_t x;
    fedrec_status st = fedrec_discrete_gaussian(&x, e, num, 32768);
    if (st) return fedrec_error_set(err, st, "central DP: sampler");
    agg[i] += x;
  }
  return FEDREC_OK;
}

void fedrec_ddp_sensitivity(const fedrec_ddp_params *p, double *d2, double *d1) {
  double D = fedrec_ddp_padded(p->dim), b = fedrec_ddp_rounding_bound(p);
  *d2 = b;
  *d1 = b * fmin(sqrt(D), b); /* every non-zero integer coordinate has |x| >= 1: L1 <= L2^2 */
}

fedrec_status fedrec_ddp_choose_bits(uint32_t *bits, double *gamma, double clip, uint32_t dim,
                                     uint32_t n, double z, double p_wrap, double rounding_ratio,
                                     double max_inflation, fedrec_error *err) {
  if (!(rounding_ratio > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "choose bits: rounding ratio %g must be > 0", rounding_ratio);
  double D = fedrec_ddp_padded(dim);
  /* what the rounding error is compared with, per coordinate of the sum */
  double ref = z > 0 ? z * clip * z * clip : n * clip * clip / D;
  for (uint32_t b = 2; b <= 32; b++) {
    double g = 0;
    if (fedrec_ddp_choose_gamma(&g, clip, dim, n, z, b, p_wrap, NULL)) continue;
    fedrec_ddp_params q = {.dim = dim, .clip = clip, .gamma = g, .beta = exp(-0.5)};
    int inflation_ok = !(max_inflation > 0) || fedrec_ddp_rounding_bound(&q) <= (1 + max_inflation) * clip / g;
    if (n * g * g / 4 <= rounding_ratio * ref && inflation_ok) {
      *bits = b;
      *gamma = g;
      return FEDREC_OK;
    }
  }
  return fedrec_error_set(err, FEDREC_ERR_ARG,
                          "choose bits: even 32 bits leave rounding error above %g of the noise, or the sensitivity inflated by more than %g, for %u clients, d = %u",
                          rounding_ratio, max_inflation, n, dim);
}

static const char *const NOISE_NAMES[] = {[FEDREC_NOISE_NONE] = "none", [FEDREC_NOISE_DGAUSS] = "dgauss",
                                          [FEDREC_NOISE_SKELLAM] = "skellam"};

const char *fedrec_noise_name(int noise) {
  return noise >= 0 && noise < (int)(sizeof NOISE_NAMES / sizeof *NOISE_NAMES) ? NOISE_NAMES[noise] : "unknown";
}

fedrec_status fedrec_noise_parse(const char *name, int *out) {
  for (int i = 0; name && i < (int)(sizeof NOISE_NAMES / sizeof *NOISE_NAMES); i++)
    if (!strcmp(name, NOISE_NAMES[i])) {
      *out = i;
      return FEDREC_OK;
    }
  return FEDREC_ERR_ARG;
}
