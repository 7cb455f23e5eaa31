/* The fedrec client library, for embedding in apps (libfedrec_client).
 *
 * The viewing history stays on the device, in a local SQLite store. `sync` takes part in one
 * federated round when the coordinator selects this device: it downloads the signed model
 * (in chunks, resumable) and verifies its hash and signature, solves the user's vector on the
 * device, computes the gradient, clips it, adds this device's share of the noise, encodes it
 * and runs secure aggregation. Only the masked, noisy encoding leaves the device; the raw
 * history and the user vector never do. `recommend` ranks items on the device with the cached
 * model, offline too.
 *
 * A handle is not thread-safe: use one per thread (or a lock). Every call may be interrupted
 * (the process killed) at any point: the store is transactional, a partial download resumes
 * from where it stopped, and a round in flight is simply dropped on the coordinator's side. */
#ifndef FEDREC_CLIENT_H
#define FEDREC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_client fedrec_client;

typedef struct fedrec_client_config {
  const char *store;           /* the local SQLite file (created if absent, unless must_exist) */
  const char *target;          /* coordinator address, host:port */
  const char *ca_file;         /* PEM of the CA that signed the coordinator's certificate */
  const char *cert_file;       /* with key_file: a client certificate for mTLS (optional) */
  const char *key_file;
  int insecure;                /* 1: plaintext (tests against --insecure coordinators only) */
  const char *token;           /* the bearer token the operator issued to this device */
  const char *coordinator_key; /* the coordinator's Ed25519 public key, 64 hex digits */
  const char *catalogue;       /* optional: a catalogue to use until the coordinator serves its own
                                * (protos/catalogue.h settings, e.g. "synthetic:items=500,seed=42") */
  const char *weights;         /* how an item's summed event weights become its confidence:
                                * "auto" (default: log:10 when they look like play counts,
                                * some above 1 and all whole; else as they are), "raw",
                                * "binary", "log[:S]" (1 + log(1 + w / S)); see docs/DATA.md */
  uint32_t max_catalogue_mb;   /* the largest catalogue this device downloads (0: 1024); a
                                * coordinator naming a larger one is refused before anything is
                                * allocated (CATALOGUE.md: 100 000 x 256 is 27-103 MB) */
  uint32_t max_participation;  /* the most rounds this device's history may take part in (0: the
                                * saved setting, none saved: no limit); once reached, sync only
                                * fetches models. Saved in the store. Counted by the device
                                * itself, before each masked input leaves (CLIENT.md) */
  uint32_t min_separation;     /* takes part in rounds at least this many apart (0: the saved
                                * setting, none saved: any); a round sooner after the last one
                                * this device took part in is declined (LEFT_OUT). Saved */
  const char *authority_key;   /* the enrolment authority's Ed25519 public key, 64 hex digits
                                * (optional; saved). Given once, the device makes its identity
                                * key pair (kept in the store), takes part only in rounds of the
                                * active secure-aggregation variant, and needs a certificate
                                * (fedrec_client_enrol) to join them (SECURITY.md) */
  uint32_t call_timeout_ms;    /* per RPC (0: 15 000) */
  uint32_t sync_timeout_ms;    /* one whole sync (0: 600 000) */
  int must_exist;              /* 1: a store that does not exist is refused, not created */
  const char *region;          /* the device's availability groups, e.g. "DE" or "DE,premium"
                                * (optional; saved; NULL or "": the saved one). Only items the
                                * catalogue makes available there (or everywhere) are
                                * recommended. Local: never sent anywhere (CATALOGUE.md) */
} fedrec_client_config;

/* Opens (or creates) the store and connects lazily. Settings given here are saved in the
 * store; a NULL or empty field is taken from the store (so later opens need only `store`). */
fedrec_status fedrec_client_open(fedrec_client **out, const fedrec_client_config *c,
                                 fedrec_error *err);
void fedrec_client_close(fedrec_client *c);

/* Records one event (an item of the catalogue, and a weight > 0, e.g. 1 per play). An item's
 * events are summed, and the sum becomes its confidence as the `weights` setting says. */
fedrec_status fedrec_client_record(fedrec_client *c, const char *item, float weight,
                                   fedrec_error *err);
/* Events stored, and distinct items among them. */
fedrec_status fedrec_client_history_size(fedrec_client *c, int64_t *events, int64_t *items,
                                         fedrec_error *err);

typedef enum fedrec_sync_result {
  FEDREC_SYNC_NOT_SELECTED = 0, /* not needed now: come back after retry_after_ms */
  FEDREC_SYNC_PARTICIPATED = 1, /* took part in `round` to the end */
  FEDREC_SYNC_LEFT_OUT = 2,     /* selected, but the round went on without this device */
  FEDREC_SYNC_STOPPED = 3,      /* training is over (detail says why) */
  FEDREC_SYNC_SPENT = 4,        /* this device reached its max_participation: the model was
                                 * fetched, and it takes part in no more rounds */
} fedrec_sync_result;

/* What kind of failure a sync that returned an error was: retrying helps only with the first. */
typedef enum fedrec_sync_failure {
  FEDREC_SYNC_FAIL_NONE = 0,
  FEDREC_SYNC_FAIL_NETWORK = 1,   /* unreachable, timed out, busy, a round that failed: retry after the backoff */
  FEDREC_SYNC_FAIL_CONFIG = 2,    /* the store lacks settings, or they do not work (catalogue, TLS files) */
  FEDREC_SYNC_FAIL_AUTH = 3,      /* the token was refused (unknown, expired or revoked): enrol again */
  FEDREC_SYNC_FAIL_INTEGRITY = 4, /* a model that fails its signature, does not fit the catalogue, or
                                   * rolls back: not used; whoever sent it is not the coordinator we trust */
} fedrec_sync_failure;

typedef struct fedrec_sync_outcome {
  fedrec_sync_result result;
  fedrec_sync_failure failure; /* when fedrec_client_sync returned an error */
  uint64_t round, model_version;
  uint32_t retry_after_ms; /* when to sync again (with jitter; backs off after failures) */
  uint64_t resumed_at;     /* > 0: a model download resumed at this byte (after an interruption) */
  char detail[600];
} fedrec_sync_outcome;

/* One sync. On an error, out->failure says what kind (only FEDREC_SYNC_FAIL_NETWORK is worth
 * retrying as is) and retry_after_ms backs off exponentially, with jitter. A sync blocks at
 * most sync_timeout_ms plus the calls in flight then (each at most call_timeout_ms); a device
 * selected into a cohort that does not fill is released by the coordinator once no device
 * joined for a selection window (selection-ms, 10 s by default) and returns LEFT_OUT with the
 * reason. */
fedrec_status fedrec_client_sync(fedrec_client *c, fedrec_sync_outcome *out, fedrec_error *err);

/* The k best items for this user that are not in the history (names from the catalogue),
 * best first, with scores; *n gets how many. Needs a synced model. The user's vector is solved
 * from the history as it is at the call (an event just recorded counts); withdrawn and blocked
 * items are never recommended, and items the catalogue restricts to availability groups only
 * where the device's region names one of them. */
fedrec_status fedrec_client_recommend(fedrec_client *c, int32_t k, char (*items)[64],
                                      float *scores, int32_t *n, fedrec_error *err);

/* Changes the device's availability groups (see fedrec_client_config.region; "" clears them:
 * only items available everywhere are recommended). Saved in the store; never sent. */
fedrec_status fedrec_client_set_region(fedrec_client *c, const char *groups, fedrec_error *err);

/* Why item got its score, computed on the device: the history items that contributed most
 * to it, exactly (the score is the sum of every history item's contribution: Hu, Koren,
 * Volinsky 2008, section 5; fedrec_user_explain), and, for the content side, the history items
 * whose content embeddings are nearest to it (cosine), which explain cold items nobody has
 * seen yet. Needs a synced model and a history. */
#define FEDREC_EXPLAIN_MAX 5
typedef struct fedrec_explanation {
  char item[64];
  float score;    /* the item's score (as recommend gives it) */
  int32_t history; /* distinct history items the score decomposes over */
  int32_t n;      /* entries in by */
  struct {
    char item[64];
    float contribution; /* in by: a share of score; in similar: the cosine of the content */
  } by[FEDREC_EXPLAIN_MAX], similar[FEDREC_EXPLAIN_MAX];
  float rest;     /* the other history items' contributions together: score = sum(by) + rest */
  int32_t n_similar;
} fedrec_explanation;
fedrec_status fedrec_client_explain(fedrec_client *c, const char *item, fedrec_explanation *out,
                                    fedrec_error *err);
/* The item's display title from the catalogue (if it has one): 0 when found. */
int fedrec_client_title(fedrec_client *c, const char *item, char *out, size_t cap);

/* The device's identity public key (for the enrolment authority to certify): FEDREC_ERR_STATE
 * when the store has no authority key (so no identity). */
fedrec_status fedrec_client_identity(fedrec_client *c, uint8_t pk[32], fedrec_error *err);
/* Stores the certificate the authority issued for this device (include/fedrec/enrol.h), after
 * checking it: signed by the configured authority, for this device's identity key. The
 * certificate is sent with every check-in; the client id in it must be the token's. */
fedrec_status fedrec_client_enrol(fedrec_client *c, const uint8_t *cert, size_t len, fedrec_error *err);

/* The catalogue setting (e.g. "synthetic:..."); non-zero when none is configured. */
int fedrec_client_catalogue_spec(const fedrec_client *c, char *out, size_t cap);
/* The cached model's version (0: none yet). */
uint64_t fedrec_client_model_version(const fedrec_client *c);

/* Testing aid: make the process exit abruptly when it reaches `phase` (1 keys .. 4 unmask)
 * of a round, as a device that loses its connection would. 0: off. */
void fedrec_client_simulate_dropout(fedrec_client *c, int phase);
/* Testing aid: wait ms before each message of a round, as a slow device would. 0: off. */
void fedrec_client_simulate_delay(fedrec_client *c, uint32_t ms);

#ifdef __cplusplus
}
#endif
#endif
