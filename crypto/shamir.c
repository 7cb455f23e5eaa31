/* Shamir secret sharing over GF(p), p = 2^61 - 1 (a Mersenne prime: reduction is a shift and
 * an add). A 32-byte secret is 8 chunks of 32 bits, each the constant term of its own random
 * polynomial of degree t - 1 whose other coefficients are uniform in the field. */
#include <sodium.h>
#include <string.h>

#include "fedrec/crypto.h"

#define P61 ((uint64_t)0x1fffffffffffffffULL)

static uint64_t reduce(unsigned __int128 x) {
  uint64_t lo = (uint64_t)x & P61, hi = (uint64_t)(x >> 61);
  uint64_t r = lo + (hi & P61) + (uint64_t)(hi >> 61);
  r = (r & P61) + (r >> 61);
  return r >= P61 ? r - P61 : r;
}

static uint64_t fmul(uint64_t a, uint64_t b) { return reduce((unsigned __int128)a * b); }
static uint64_t fadd(uint64_t a, uint64_t b) {
  uint64_t r = a + b;
  return r >= P61 ? r - P61 : r;
}
static uint64_t fsub(uint64_t a, uint64_t b) { return a >= b ? a - b : a + P61 - b; }

static uint64_t fpow(uint64_t a, uint64_t e) {
  uint64_t r = 1;
  for (; e; e >>= 1, a = fmul(a, a))
    if (e & 1) r = fmul(r, a);
  return r;
}
static uint64_t finv(uint64_t a) { return fpow(a, P61 - 2); } /* Fermat; a != 0 */

/* Uniform field element from the CSPRNG (rejection of the single value 2^61 - 1). */
static uint64_t frandom(void) {
  uint64_t v;
  do {
    randombytes_buf(&v, sizeof v);
    v &= P61;
  } while (v == P61);
  return v;
}

fedrec_status fedrec_shamir_split(fedrec_share *shares, const uint32_t *xs, int n, int t,
                                  const uint8_t secret[32]) {
  if (t < 1 || t > n || n > 65535) return FEDREC_ERR_ARG;
  for (int a = 0; a < n; a++) {
    if (xs[a] == 0) return FEDREC_ERR_ARG;
    for (int b = a + 1; b < n; b++)
      if (xs[a] == xs[b]) return FEDREC_ERR_ARG;
  }
  /* coefficients of the 8 polynomials: secret material, in guarded memory */
  uint64_t *coef = (uint64_t *)fedrec_secret_alloc((size_t)t * FEDREC_SHAMIR_CHUNKS * 8);
  if (!coef) return FEDREC_ERR_NOMEM;
  for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) {
    uint32_t chunk;
    memcpy(&chunk, secret + 4 * c, 4);
    coef[c * t] = chunk;
    for (int k = 1; k < t; k++) coef[c * t + k] = frandom();
  }
  for (int a = 0; a < n; a++) {
    shares[a].x = xs[a];
    for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) { /* Horner */
      uint64_t y = 0;
      for (int k = t - 1; k >= 0; k--) y = fadd(fmul(y, xs[a]), coef[c * t + k]);
      shares[a].y[c] = y;
    }
  }
  fedrec_secret_free((uint8_t *)coef);
  return FEDREC_OK;
}

fedrec_status fedrec_shamir_combine(uint8_t secret[32], const fedrec_share *shares, int t) {
  if (t < 1) return FEDREC_ERR_ARG;
  for (int a = 0; a < t; a++) {
    if (shares[a].x == 0) return FEDREC_ERR_PARSE;
    for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++)
      if (shares[a].y[c] >= P61) return FEDREC_ERR_PARSE;
    for (int b = a + 1; b < t; b++)
      if (shares[a].x == shares[b].x) return FEDREC_ERR_PARSE;
  }
  uint64_t acc[FEDREC_SHAMIR_CHUNKS] = {0};
  for (int a = 0; a < t; a++) {
    /* Lagrange basis at 0: prod_{b != a} x_b / (x_b - x_a) */
    uint64_t num = 1, den = 1;
    for (int b = 0; b < t; b++) {
      if (b == a) continue;
      num = fmul(num, shares[b].x);
      den = fmul(den, fsub(shares[b].x, shares[a].x));
    }
    uint64_t l = fmul(num, finv(den));
    for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) acc[c] = fadd(acc[c], fmul(l, shares[a].y[c]));
  }
  int ok = 1;
  for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) {
    ok &= acc[c] <= 0xffffffffULL; /* a true secret chunk has 32 bits */
    uint32_t chunk = (uint32_t)acc[c];
    memcpy(secret + 4 * c, &chunk, 4);
  }
  sodium_memzero(acc, sizeof acc);
  if (!ok) {
    sodium_memzero(secret, 32);
    return FEDREC_ERR_PARSE;
  }
  return FEDREC_OK;
}
