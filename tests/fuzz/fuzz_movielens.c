/* Fuzz target: MovieLens ratings.csv, movies.csv and tags.csv parsers (first byte picks). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "fedrec/content.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *buf = (const char *)data + 1;
  int64_t len = (int64_t)size - 1;
  fedrec_triplets t = {0};
  fedrec_idmap *u = fedrec_idmap_new(), *i = fedrec_idmap_new();
  fedrec_tokens *tok = fedrec_tokens_new();
  fedrec_error err;
  if (u && i && tok) {
    for (int k = 1; k <= 20; k++) { /* items "1".."20" exist so that content rows attach */
      char id[4];
      int n = snprintf(id, sizeof id, "%d", k);
      fedrec_idmap_get(i, id, (size_t)n, 1);
    }
    switch (data[0] % 3) {
    case 0: fedrec_parse_movielens_ratings(&t, u, i, 4.0, buf, len, "fuzz", &err); break;
    case 1: fedrec_parse_movielens_movies(tok, i, buf, len, "fuzz", &err); break;
    default: fedrec_parse_movielens_tags(tok, i, buf, len, "fuzz", &err); break;
    }
    float out[64 * 8];
    uint8_t has[64];
    if (fedrec_idmap_size(i) <= 64) fedrec_tokens_tfidf(tok, fedrec_idmap_size(i), 8, out, has, &err);
  }
  fedrec_tokens_free(tok);
  fedrec_triplets_free(&t);
  fedrec_idmap_free(u);
  fedrec_idmap_free(i);
  return 0;
}
