/* Deterministic, seedable pseudo-random numbers for simulation, data generation and
 * initialisation (xoshiro256**, seeded by splitmix64). NOT for cryptography or DP noise:
 * those use libsodium's CSPRNG in crypto/. */
#ifndef FEDREC_RNG_H
#define FEDREC_RNG_H

#include <stdint.h>

typedef struct fedrec_rng {
  uint64_t s[4];
} fedrec_rng;

/* Seeds from (seed, stream): distinct streams are independent for practical purposes,
 * so per-user streams give results that do not depend on the number of threads. */
void fedrec_rng_seed(fedrec_rng *r, uint64_t seed, uint64_t stream);
uint64_t fedrec_rng_u64(fedrec_rng *r);
/* n bytes: the in-memory bytes of successive fedrec_rng_u64 values
 * (the last one cut short), the same as n/8 calls copied out one by one, only faster. */
void fedrec_rng_fill(fedrec_rng *r, void *buf, uint64_t n);
/* Uniform in [0, 1). */
double fedrec_rng_uniform(fedrec_rng *r);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t fedrec_rng_below(fedrec_rng *r, uint64_t n);
/* Standard normal. */
double fedrec_rng_normal(fedrec_rng *r);
/* splitmix64: advances the 64-bit state *x and returns the next output (the seeder above,
 * and a one-word generator where a stream of its own is not worth four). */
uint64_t fedrec_splitmix64(uint64_t *x);

#endif
