/* Internal helpers shared between core/ files; not part of the public API. */
#ifndef FEDREC_CORE_INTERNAL_H
#define FEDREC_CORE_INTERNAL_H

#include "fedrec/data.h"

/* fedrec_csr_from_triplets, with duplicates summed instead of maxed when sum_dups. */
fedrec_status fedrec_csr__build(fedrec_csr *out, int32_t rows, int32_t cols,
                                const fedrec_triplets *t, int sum_dups, fedrec_error *err);

/* 64-bit hash of a byte string (FNV-1a with a final avalanche); not cryptographic. */
uint64_t fedrec__hash(const char *s, size_t n);

#endif
