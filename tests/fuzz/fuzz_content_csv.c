/* Fuzz target: content CSV, item-id lists and the synthetic-data spec. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "fedrec/synth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *buf = (const char *)data + 1;
  int64_t len = (int64_t)size - 1;
  fedrec_error err;
  if (data[0] % 3 == 0) {
    fedrec_dataset ds = {0};
    ds.items = fedrec_idmap_new();
    if (ds.items) {
      fedrec_idmap_get(ds.items, "a", 1, 1);
      fedrec_idmap_get(ds.items, "b", 1, 1);
      int32_t skipped;
      fedrec_parse_content_csv(&ds, buf, len, "fuzz", &skipped, &err);
    }
    fedrec_dataset_free(&ds);
  } else if (data[0] % 3 == 1) {
    fedrec_idmap *ids = fedrec_idmap_new();
    if (ids) fedrec_parse_id_list(ids, buf, len, "fuzz", &err);
    fedrec_idmap_free(ids);
  } else if (len < 600) {
    char spec[600];
    memcpy(spec, buf, (size_t)len);
    spec[len] = '\0';
    fedrec_synth_config c;
    fedrec_synth_defaults(&c);
    fedrec_synth_parse(&c, spec, &err);
  }
  return 0;
}
