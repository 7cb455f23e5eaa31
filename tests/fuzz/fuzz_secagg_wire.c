/* Fuzz target: every SecAgg+ message decoder. A message that decodes must re-encode to the
 * same bytes (the encoding is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/secagg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fedrec_sa_msg m;
  fedrec_error err;
  if (fedrec_sa_decode(&m, data, size, 4096, 1 << 16, &err) != FEDREC_OK) return 0;
  size_t n = 0;
  uint8_t *out = malloc(size + 1);
  switch (m.type) {
  case FEDREC_SA_MSG_KEYS: n = fedrec_sa_encode_keys(out, size, &m.u.keys); break;
  case FEDREC_SA_MSG_KEYLIST: n = fedrec_sa_encode_keylist(out, size, &m.u.keylist); break;
  case FEDREC_SA_MSG_BOXES: n = fedrec_sa_encode_boxes(out, size, &m.u.boxes); break;
  case FEDREC_SA_MSG_MASKED: n = fedrec_sa_encode_masked(out, size, &m.u.masked, m.bits); break;
  case FEDREC_SA_MSG_SURVIVORS: n = fedrec_sa_encode_survivors(out, size, &m.u.survivors); break;
  case FEDREC_SA_MSG_SIGNATURE: n = fedrec_sa_encode_signature(out, size, &m.u.signature); break;
  case FEDREC_SA_MSG_REVEALS: n = fedrec_sa_encode_reveals(out, size, &m.u.reveals); break;
  }
  if (n != size || memcmp(out, data, size) != 0) abort(); /* not canonical: a bug */
  free(out);
  fedrec_sa_msg_free(&m);
  return 0;
}
