/* Shared by the catalogue tests: decoding a hand-built (hostile) catalogue message. */
#ifndef FEDREC_TESTS_CATALOGUE_UTIL_H
#define FEDREC_TESTS_CATALOGUE_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "catalogue.h"
#include "fedrec/v1/catalogue.pb-c.h"

/* Packs m, decodes it as a device would; the status, and the message in msg. */
static inline fedrec_status decode_built(Fedrec__V1__Catalogue *m, char *msg, size_t cap) {
  size_t len = protobuf_c_message_get_packed_size(&m->base);
  uint8_t *b = malloc(len + 1);
  protobuf_c_message_pack(&m->base, b);
  fedrec_catalogue c;
  fedrec_error err = {0};
  fedrec_status st = fedrec_catalogue_decode(&c, b, len, &err);
  if (!st) fedrec_catalogue_free(&c);
  snprintf(msg, cap, "%s", err.msg);
  free(b);
  return st;
}

#endif
