/* Internal helpers shared between core/ files; not part of the public API. */
#ifndef FEDREC_CORE_INTERNAL_H
#define FEDREC_CORE_INTERNAL_H

#include "fedrec/data.h"

/* fedrec_csr_from_triplets, with duplicates summed instead of maxed when sum_dups. */
fedrec_status fedrec_csr__build(fedrec_csr *out, int32_t rows, int32_t cols,
                                const fedrec_triplets *t, int sum_dups, fedrec_error *err);

/* 64-bit hash of a byte string (FNV-1a with a final avalanche); not cryptographic. */
uint64_t fedrec__hash(const char *s, size_t n);

/* Each word (letters and digits, 2 bytes or more, lowercased) of f as a "word:" token
 * (content.c; title and name words for the modalities). */
#include "fedrec/content.h"
#include "text.h"
fedrec_status fedrec__add_words(fedrec_tokens *t, int32_t item, fedrec_field f, fedrec_error *err);
/* Runs each parser over dir/files[k], adding the tokens of the items in items to t. */
typedef fedrec_status (*fedrec_tok_parser)(fedrec_tokens *, fedrec_idmap *, const char *, int64_t, const char *, fedrec_error *);
fedrec_status fedrec__tokens_read(fedrec_tokens *t, fedrec_idmap *items, const char *dir, const char *const *files,
                                 const fedrec_tok_parser *parsers, int n, fedrec_error *err);
/* has[i] = 1 for every item with a token. */
void fedrec__tokens_mark(const fedrec_tokens *t, uint8_t *has);

#endif
