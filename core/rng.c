#include "fedrec/rng.h"

#include <math.h>
#include <string.h>

uint64_t fedrec_splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void fedrec_rng_seed(fedrec_rng *r, uint64_t seed, uint64_t stream) {
  uint64_t x = seed ^ (stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL);
  (void)fedrec_splitmix64(&x);
  for (int i = 0; i < 4; i++) r->s[i] = fedrec_splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fedrec_rng_u64(fedrec_rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

void fedrec_rng_fill(fedrec_rng *r, void *buf, uint64_t n) {
  uint8_t *o = buf;
  fedrec_rng x = *r; /* in registers for the loop */
  for (; n >= 8; n -= 8, o += 8) {
    uint64_t v = fedrec_rng_u64(&x);
    memcpy(o, &v, 8);
  }
  if (n) {
    uint64_t v = fedrec_rng_u64(&x);
    memcpy(o, &v, (size_t)n);
  }
  *r = x;
}

double fedrec_rng_uniform(fedrec_rng *r) {
  return (double)(fedrec_rng_u64(r) >> 11) * 0x1.0p-53;
}

uint64_t fedrec_rng_below(fedrec_rng *r, uint64_t n) {
  /* Rejection on the top of the range removes modulo bias. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do x = fedrec_rng_u64(r);
  while (x >= limit);
  return x % n;
}

double fedrec_rng_normal(fedrec_rng *r) {
  /* Box-Muller; 1 - u keeps the log argument in (0, 1]. */
  double u1 = 1.0 - fedrec_rng_uniform(r);
  double u2 = fedrec_rng_uniform(r);
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
