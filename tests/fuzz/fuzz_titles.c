/* Fuzz target: the title parsers (MovieLens movies.csv, Last.fm artists.dat, id<TAB>title);
 * the first byte picks the format. Every title kept is NUL-terminated, without control bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  fedrec_idmap *items = fedrec_idmap_new();
  static const char *IDS[] = {"1", "2", "10", "a"};
  for (int i = 0; i < 4; i++) fedrec_idmap_get(items, IDS[i], strlen(IDS[i]), 1);
  char *titles[4] = {0};
  fedrec_error err;
  fedrec_parse_titles(titles, items, (fedrec_titles_format)(data[0] % 3), (const char *)data + 1, (int64_t)size - 1, "fuzz", &err);
  for (int i = 0; i < 4; i++) {
    if (titles[i] && strlen(titles[i]) > FEDREC_MAX_TITLE_LEN) abort();
    for (const char *t = titles[i]; t && *t; t++)
      if ((unsigned char)*t < 0x20) abort();
    free(titles[i]);
  }
  fedrec_idmap_free(items);
  return 0;
}
