/* Fuzz target: the model blob decoder. A decoded model must re-encode to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static float C[8 * 4096];
  fedrec_model m;
  uint64_t version;
  fedrec_error err;
  /* the catalogue the fuzzer decodes against: up to 4096 items with 8 content dimensions */
  if (size >= 20 && (data[16] | data[17] << 8 | data[18] << 16 | (uint32_t)data[19] << 24) > 4096) return 0;
  if (fedrec_model_decode(&m, &version, data, size, C, 8, &err) == FEDREC_OK) {
    size_t n = fedrec_model_encoded_size(&m);
    uint8_t *back = malloc(n);
    if (n != size || !back) abort();
    fedrec_model_encode(back, &m, version);
    if (memcmp(back, data, size)) abort();
    free(back);
    fedrec_model_free(&m);
  }
  return 0;
}
