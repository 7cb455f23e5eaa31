/* Internal to crypto/: the neighbourhood graph shared by client and server. */
#ifndef FEDREC_CRYPTO_SECAGG_INTERNAL_H
#define FEDREC_CRYPTO_SECAGG_INTERNAL_H

#include "fedrec/secagg.h"

typedef struct {
  uint32_t n, k;
  uint32_t *perm; /* ring position -> client */
  uint32_t *inv;  /* client -> ring position */
} sa_graph;

fedrec_status fedrec__sa_graph_init(sa_graph *g, const fedrec_secagg_params *p);
void fedrec__sa_graph_free(sa_graph *g);
/* k neighbours of u, sorted */
void fedrec__sa_graph_neighbours(const sa_graph *g, uint32_t u, uint32_t *out);
int fedrec__sa_graph_adjacent(const sa_graph *g, uint32_t u, uint32_t v);

/* The exact bytes that are signed, shared by client and server so they cannot diverge. */
#define SA_KEYS_MSG_BYTES (8 + 4 + 32 + 32)
void fedrec__sa_keys_message(uint8_t out[SA_KEYS_MSG_BYTES], uint64_t session, const fedrec_sa_keys *k);
/* (session, "survivors", ids): malloc'ed into *msg; returns its length, 0 when out of memory. */
size_t fedrec__sa_list_message(uint8_t **msg, uint64_t session, const uint32_t *ids, uint32_t n);

#define SA_LABEL_SHARE "fedrec-secagg-share-v1"
#define SA_LABEL_MASK "fedrec-secagg-mask-v1"

#endif
