/* The client library's parts (internal to client/):
 *   client.c           the store (settings, history), the catalogue
 *   client_recommend.c recommendations and their explanations
 *   client_download.c  the signed model: resumable download, checks, the cached copy
 *   client_sync.c      the channel, and one sync: check in, the round's phases, backoff */
#ifndef FEDREC_CLIENT_INTERNAL_H
#define FEDREC_CLIENT_INTERNAL_H

#include <sqlite3.h>

#include "fedrec/client.h"
#include "fedrec/data.h"
#include "fedrec/model.h"
#include "catalogue.h"
#include "rpc.h"

struct fedrec_client {
  sqlite3 *db;
  char target[256], ca_file[512], cert_file[512], key_file[512], token[FEDREC_TOKEN_MAX + 8];
  char catalogue[512], keyhex[80], weights[32];
  char region[512];  /* the device's groups ("" none): local only, never sent (the region setting) */
  fedrec_weights wt; /* how summed plays become confidences (the weights setting) */
  int insecure;
  uint32_t call_ms, sync_ms;
  uint64_t max_catalogue; /* bytes */
  uint32_t max_participation; /* 0: no limit (the max_participation setting) */
  uint32_t min_separation;    /* 0, 1: any (the min_separation setting) */
  uint8_t pk[32];
  int has_authority;        /* active variant: an identity, and the authority's key */
  uint8_t authority[32];
  fedrec_catalogue cat; /* items, their content and titles: downloaded, or from the local setting */
  int have_cat, cat_stored; /* loaded; and from the store (served by the coordinator) */
  float *V, *G;             /* the cached model's item vectors (V_items x V_d) and Gramian */
  uint64_t V_model, V_cat;  /* the model and catalogue versions they were computed for */
  int32_t V_items, V_d;     /* V_d: the model's vdim (d, +1 with popularity) */
  int V_pop;                /* the last coordinate is the popularity */
  grpc_channel *ch;
  void *handles[FEDREC_RPC_NMETHODS];
  char agg_target[256]; /* the current round's aggregator (round info), if any */
  uint64_t model_version;
  int drop_phase;
  uint32_t delay_ms; /* testing: a slow device */
};

/* client.c (the catalogue: the one the coordinator served, else one the local setting names;
 * FEDREC_ERR_EMPTY when there is none yet) */
fedrec_status fedrec__client_dberr(fedrec_error *err, fedrec_client *c, const char *what);
int fedrec__client_get_setting(fedrec_client *c, const char *k, char *out, size_t cap);
int fedrec__client_put_setting(fedrec_client *c, const char *k, const char *v);
fedrec_status fedrec__client_load_catalogue(fedrec_client *c, fedrec_error *err);
/* The history as sorted item indices with summed weights (malloc'd; wipe items after use). */
fedrec_status fedrec__client_history(fedrec_client *c, int32_t **items, float **w, int32_t *n, fedrec_error *err);

/* client_download.c: makes the cached model the one mi describes (see there); the cached one. */
fedrec_status fedrec__client_ensure_model(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, uint64_t *resumed_at,
                                          uint64_t deadline, fedrec_error *err);
fedrec_status fedrec__client_cached_model(fedrec_client *c, fedrec_model *m, fedrec_error *err);

/* client.c: the device's identity (from the store, into guarded memory; free with
 * fedrec_identity_free) and its certificate (*len 0: not enrolled yet) */
fedrec_status fedrec__client_identity(fedrec_client *c, fedrec_identity *id, fedrec_error *err);
void fedrec__client_certificate(fedrec_client *c, uint8_t *cert, size_t *len);

/* client_sync.c */
/* One blocking unary call with this client's token. */
grpc_status_code fedrec__client_rpc(fedrec_client *c, int m, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                                    ProtobufCMessage **resp, char *details, size_t cap);
/* A reason the coordinator gave, for the app's log: printable ASCII only. */
void fedrec__client_keep_reason(char *out, size_t cap, const char *in);

#endif
