/* Fuzz target: Last.fm user_artists.dat and user_taggedartists.dat parsers. */
#include <stdint.h>
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
    if (data[0] & 1) {
      fedrec_parse_lastfm_user_artists(&t, u, i, buf, len, "fuzz", &err);
    } else {
      fedrec_idmap_get(i, "51", 2, 1);
      fedrec_idmap_get(i, "52", 2, 1);
      fedrec_parse_lastfm_tags(tok, i, buf, len, "fuzz", &err);
    }
  }
  fedrec_tokens_free(tok);
  fedrec_triplets_free(&t);
  fedrec_idmap_free(u);
  fedrec_idmap_free(i);
  return 0;
}
