/* Internal to crypto/: the neighbourhood graph shared by client and server. */
#ifndef FEDREC_CRYPTO_SECAGG_INTERNAL_H
#define FEDREC_CRYPTO_SECAGG_INTERNAL_H

#include "fedrec/secagg.h"

typedef struct {
  uint32_t n, k;
  uint32_t *perm; /* ring position -> client */
  uint32_t *inv;  /* client -> ring position */
} sa_graph;

fedrec_status sa_graph_init(sa_graph *g, const fedrec_secagg_params *p);
void sa_graph_free(sa_graph *g);
/* k neighbours of u, sorted */
void sa_graph_neighbours(const sa_graph *g, uint32_t u, uint32_t *out);
int sa_graph_adjacent(const sa_graph *g, uint32_t u, uint32_t v);

#define SA_LABEL_SHARE "fedrec-secagg-share-v1"
#define SA_LABEL_MASK "fedrec-secagg-mask-v1"

#endif
