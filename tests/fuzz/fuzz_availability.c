/* Fuzz target: the operator's availability rules (an availability file, then after the first
 * NUL byte a block list) applied to a small catalogue. Whatever is accepted gives every
 * group's items increasing and in range, and encodes to a catalogue that decodes to the same
 * answers for a device in any of the groups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "catalogue.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *text = (const char *)data, *nul = memchr(data, 0, size);
  int64_t alen = nul ? nul - text : (int64_t)size;
  fedrec_catalogue_rules r;
  fedrec_error err;
  if (fedrec_catalogue_rules_parse(&r, text, alen, "fuzz", nul ? nul + 1 : NULL, nul ? (int64_t)size - alen - 1 : 0, "fuzz",
                                   &err))
    return 0;
  fedrec_catalogue c, d;
  if (fedrec_catalogue_load(&c, "synthetic:users=2,items=12,dim=2,seed=1", &err)) abort();
  int32_t unknown, n = fedrec_catalogue_items(&c);
  char first[300];
  if (fedrec_catalogue_apply_rules(&c, &r, &unknown, first, sizeof first, &err) || fedrec_catalogue_encode(&c, &err) ||
      fedrec_catalogue_decode(&d, c.blob, c.len, &err))
    abort();
  uint8_t a[64], b[64];
  for (int32_t g = 0; g < c.n_groups; g++) {
    for (int32_t j = c.gstart[g]; j < c.gstart[g + 1]; j++)
      if (c.gitems[j] < 0 || c.gitems[j] >= n || (j > c.gstart[g] && c.gitems[j] <= c.gitems[j - 1])) abort();
    if (fedrec_catalogue_allowed(&c, c.groups[g], a) != fedrec_catalogue_allowed(&d, c.groups[g], b) || memcmp(a, b, (size_t)n))
      abort();
  }
  fedrec_catalogue_free(&c), fedrec_catalogue_free(&d);
  fedrec_catalogue_rules_free(&r);
  return 0;
}
