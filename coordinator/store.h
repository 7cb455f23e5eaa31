/* The coordinator's durable state in SQLite (WAL, synchronous=FULL): published models with
 * the optimiser state a restart needs, finished and aborted rounds, and the clients that took
 * part. The privacy ledger is a separate database (ledger.c). */
#ifndef FEDREC_COORD_STORE_H
#define FEDREC_COORD_STORE_H

#include <stdint.h>

#include "fedrec/engine.h"

typedef struct coord_store coord_store;

fedrec_status coord_store_open(coord_store **out, const char *path, fedrec_error *err);
void coord_store_close(coord_store *s);

/* Saves a model and the state to continue from it, in one transaction; keeps the newest
 * `keep` versions. */
fedrec_status coord_store_save_model(coord_store *s, const fedrec_published *m, int keep,
                                     fedrec_error *err);

typedef struct coord_saved_model {
  uint64_t version, next_round, rounds_done;
  uint8_t *blob;
  size_t len;
  uint8_t hash[32], sig[FEDREC_SIG_BYTES];
  uint64_t ledger_entries; /* the ledger head the signature covers */
  uint8_t ledger_head[32];
  int has_catalogue; /* the catalogue the signature covers (0: a model signed before catalogues were served) */
  fedrec_catalogue_ref catalogue;
  float *opt1, *opt2;
  int64_t dim;
} coord_saved_model;
/* The newest model; FEDREC_ERR_EMPTY when none was saved. */
fedrec_status coord_store_load_latest(coord_store *s, coord_saved_model *out, fedrec_error *err);
void coord_saved_model_free(coord_saved_model *m);
/* A given version (0: the newest); FEDREC_ERR_EMPTY when it is not kept. */
fedrec_status coord_store_load_version(coord_store *s, uint64_t version, coord_saved_model *out,
                                       fedrec_error *err);

/* A finished or aborted round, and its cohort's client ids. */
fedrec_status coord_store_save_round(coord_store *s, const fedrec_round_stats *st,
                                     const uint64_t *clients, uint32_t n, fedrec_error *err);
/* The participation bound's record: the n clients whose masked inputs `round` holds took
 * part (count + 1, last round), durably in one transaction; and every device's record given
 * back to the engine after a restart (*devices: how many). */
fedrec_status coord_store_save_participation(coord_store *s, uint64_t round, const uint64_t *clients, uint32_t n,
                                             fedrec_error *err);
fedrec_status coord_store_load_participation(coord_store *s, fedrec_engine *e, uint64_t *devices, fedrec_error *err);
/* Writes the kept model versions, ascending, as a JSON array body ("1, 2, 3"). */
void coord_store_versions(coord_store *s, char *out, size_t cap);
/* The highest round number recorded (0: none): a restart numbers rounds after it, so that an
 * aborted round's number is never used again. */
/* The status page's figures: the published rounds' cumulative epsilon in round order, at most
 * cap points (every k-th when there are more, and always the last); how many were written. */
size_t coord_store_epsilon_history(coord_store *s, uint64_t *round, double *eps, size_t cap);
typedef struct coord_round_row {
  uint64_t round, cohort, survivors;
  int aborted;
  double epsilon;
  int64_t ended; /* Unix seconds */
  char reason[160];
} coord_round_row;
/* The last (at most cap) rounds, newest first; how many were written. */
size_t coord_store_recent_rounds(coord_store *s, coord_round_row *rows, size_t cap);
uint64_t coord_store_last_round(coord_store *s);
/* Revoked client ids (`fedrec-coordinator revoke`): add one; read all, sorted (malloc'd). */
fedrec_status coord_store_revoke(coord_store *s, uint64_t id, fedrec_error *err);
fedrec_status coord_store_revoked(coord_store *s, uint64_t **ids, size_t *n, fedrec_error *err);
/* Counts for reports and tests. */
/* The settings a state was started with (catalogue, dim, ...), to compare a restart's with:
 * 1 and the value when saved. */
int coord_store_setting(coord_store *s, const char *key, char *out, size_t cap);
fedrec_status coord_store_set_setting(coord_store *s, const char *key, const char *value, fedrec_error *err);
int64_t coord_store_count(coord_store *s, const char *table);
/* The catalogues served, every version kept (a model names the one it belongs to): save one;
 * load one (version 0: the newest; FEDREC_ERR_EMPTY when none), malloc'd. */
fedrec_status coord_store_save_catalogue(coord_store *s, uint64_t version, const uint8_t hash[32], const uint8_t *blob,
                                         size_t len, int32_t items, int32_t added, int32_t withdrawn, fedrec_error *err);
fedrec_status coord_store_load_catalogue(coord_store *s, uint64_t version, uint8_t **blob, size_t *len, fedrec_error *err);

#endif
