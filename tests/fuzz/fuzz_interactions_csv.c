/* Fuzz target: the generic interactions CSV parser. */
#include <stdint.h>
#include <stdlib.h>

#include "fedrec/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fedrec_triplets t = {0};
  fedrec_idmap *u = fedrec_idmap_new(), *i = fedrec_idmap_new();
  fedrec_error err;
  if (u && i &&
      fedrec_parse_interactions_csv(&t, u, i, (const char *)data, (int64_t)size, "fuzz", &err) ==
          FEDREC_OK) {
    fedrec_csr m;
    if (fedrec_csr_from_triplets(&m, fedrec_idmap_size(u), fedrec_idmap_size(i), &t, &err) == FEDREC_OK)
      fedrec_csr_free(&m);
  }
  fedrec_triplets_free(&t);
  fedrec_idmap_free(u);
  fedrec_idmap_free(i);
  return 0;
}
