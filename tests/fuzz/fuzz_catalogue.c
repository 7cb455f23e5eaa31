/* Fuzz target: the catalogue decoder (what a device downloads). A decoded catalogue encodes
 * canonically: decoding that encoding and encoding again gives the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fedrec_catalogue c, d;
  fedrec_error err;
  if (fedrec_catalogue_decode(&c, data, size, &err)) return 0;
  if (fedrec_catalogue_encode(&c, &err) || fedrec_catalogue_decode(&d, c.blob, c.len, &err)) abort();
  if (fedrec_catalogue_encode(&d, &err) || d.len != c.len || memcmp(d.blob, c.blob, c.len)) abort();
  fedrec_catalogue_free(&d);
  fedrec_catalogue_free(&c);
  return 0;
}
