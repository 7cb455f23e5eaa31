/* The coordinator's SQLite state (see store.h). */
#include "store.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct coord_store {
  sqlite3 *db;
};

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS models(version INTEGER PRIMARY KEY, next_round INTEGER NOT NULL,"
    " rounds_done INTEGER NOT NULL, blob BLOB NOT NULL, hash BLOB NOT NULL, sig BLOB NOT NULL,"
    " opt1 BLOB NOT NULL, opt2 BLOB NOT NULL, created INTEGER NOT NULL,"
    " ledger_entries INTEGER NOT NULL DEFAULT 0, ledger_head BLOB NOT NULL DEFAULT x'',"
    " catalogue_version INTEGER NOT NULL DEFAULT 0, catalogue_hash BLOB NOT NULL DEFAULT x'');"
    "CREATE TABLE IF NOT EXISTS rounds(round INTEGER PRIMARY KEY, cohort INTEGER NOT NULL,"
    " survivors INTEGER NOT NULL, aborted INTEGER NOT NULL, reason TEXT NOT NULL,"
    " epsilon REAL NOT NULL, dropped_keys INTEGER NOT NULL, dropped_shares INTEGER NOT NULL,"
    " dropped_masked INTEGER NOT NULL, dropped_unmask INTEGER NOT NULL, bytes_in INTEGER NOT NULL,"
    " update_norm REAL NOT NULL, ended INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS clients(id INTEGER PRIMARY KEY, rounds INTEGER NOT NULL,"
    " last_round INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS participation(id INTEGER PRIMARY KEY, count INTEGER NOT NULL,"
    " last_round INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS revoked(id INTEGER PRIMARY KEY, at INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS settings(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS catalogues(version INTEGER PRIMARY KEY, hash BLOB NOT NULL, blob BLOB NOT NULL,"
    " items INTEGER NOT NULL, added INTEGER NOT NULL, withdrawn INTEGER NOT NULL, created INTEGER NOT NULL);";

static fedrec_status fail(fedrec_error *err, sqlite3 *db, const char *what) {
  return fedrec_error_set(err, FEDREC_ERR_IO, "coordinator state: %s: %s", what, sqlite3_errmsg(db));
}

static int has_column(sqlite3 *db, const char *name) {
  sqlite3_stmt *st;
  int have = 0;
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM pragma_table_info('models') WHERE name = ?", -1, &st, NULL) != SQLITE_OK)
    return -1;
  sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) have = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return have;
}

/* A state from before model signatures covered the ledger head (its models' signatures will
 * not verify: such a state needs a new start), or the catalogue (its models were signed as
 * "fedrec-model-v2": catalogue_version 0 says so): the columns added. */
static int ensure_columns(sqlite3 *db) {
  int ledger = has_column(db, "ledger_entries"), cat = has_column(db, "catalogue_version");
  if (ledger < 0 || cat < 0) return 0;
  return (ledger || sqlite3_exec(db, "ALTER TABLE models ADD COLUMN ledger_entries INTEGER NOT NULL DEFAULT 0;"
                                     "ALTER TABLE models ADD COLUMN ledger_head BLOB NOT NULL DEFAULT x''", NULL, NULL, NULL) == SQLITE_OK) &&
         (cat || sqlite3_exec(db, "ALTER TABLE models ADD COLUMN catalogue_version INTEGER NOT NULL DEFAULT 0;"
                                  "ALTER TABLE models ADD COLUMN catalogue_hash BLOB NOT NULL DEFAULT x''", NULL, NULL, NULL) == SQLITE_OK);
}

fedrec_status coord_store_open(coord_store **out, const char *path, fedrec_error *err) {
  *out = NULL;
  coord_store *s = calloc(1, sizeof *s);
  if (!s) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "coordinator state");
  if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
      sqlite3_exec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(s->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK ||
      !ensure_columns(s->db)) {
    fedrec_status st = fedrec_error_set(err, FEDREC_ERR_IO, "coordinator state %s: %s", path,
                                        s->db ? sqlite3_errmsg(s->db) : "cannot open");
    coord_store_close(s);
    return st;
  }
  sqlite3_busy_timeout(s->db, 5000);
  *out = s;
  return FEDREC_OK;
}

void coord_store_close(coord_store *s) {
  if (!s) return;
  sqlite3_close(s->db);
  free(s);
}

fedrec_status coord_store_save_model(coord_store *s, const fedrec_published *m, int keep,
                                     fedrec_error *err) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return fail(err, s->db, "begin");
  int rc = sqlite3_prepare_v2(s->db, "INSERT INTO models VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    size_t ob = (size_t)m->dim * sizeof(float);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)m->version);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)m->next_round);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)m->rounds_done);
    sqlite3_bind_blob64(st, 4, m->blob, m->len, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, m->hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 6, m->sig, FEDREC_SIG_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 7, m->opt1, ob, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 8, m->opt2, ob, SQLITE_STATIC);
    sqlite3_bind_int64(st, 9, (sqlite3_int64)time(NULL));
    sqlite3_bind_int64(st, 10, (sqlite3_int64)m->ledger_entries);
    sqlite3_bind_blob(st, 11, m->ledger_head, 32, SQLITE_STATIC);
    sqlite3_bind_int64(st, 12, m->has_catalogue ? (sqlite3_int64)m->catalogue.version : 0);
    sqlite3_bind_blob(st, 13, m->catalogue.hash, m->has_catalogue ? 32 : 0, SQLITE_STATIC);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_finalize(st);
  }
  if (rc == SQLITE_OK && keep > 0) {
    rc = sqlite3_prepare_v2(s->db, "DELETE FROM models WHERE version <= ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
      sqlite3_bind_int64(st, 1, (sqlite3_int64)m->version - keep);
      rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
      sqlite3_finalize(st);
    }
  }
  if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    fedrec_status e = fail(err, s->db, "saving a model");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return e;
  }
  return FEDREC_OK;
}

void coord_saved_model_free(coord_saved_model *m) {
  free(m->blob), free(m->opt1), free(m->opt2);
  memset(m, 0, sizeof *m);
}

static void *copy_blob(sqlite3_stmt *st, int col, size_t *len) {
  int n = sqlite3_column_bytes(st, col);
  void *p = malloc(n > 0 ? (size_t)n : 1);
  if (p && n > 0) memcpy(p, sqlite3_column_blob(st, col), (size_t)n);
  *len = (size_t)(n > 0 ? n : 0);
  return p;
}

fedrec_status coord_store_load_latest(coord_store *s, coord_saved_model *out, fedrec_error *err) {
  return coord_store_load_version(s, 0, out, err);
}

fedrec_status coord_store_load_version(coord_store *s, uint64_t version, coord_saved_model *out,
                                       fedrec_error *err) {
  memset(out, 0, sizeof *out);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT version, next_round, rounds_done, blob, hash, sig, opt1, opt2, ledger_entries,"
                                " ledger_head, catalogue_version, catalogue_hash FROM models"
                                " WHERE ?1 = 0 OR version = ?1 ORDER BY version DESC LIMIT 1",
                         -1, &st, NULL) != SQLITE_OK)
    return fail(err, s->db, "reading models");
  sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
  int rc = sqlite3_step(st);
  fedrec_status r = FEDREC_OK;
  if (rc == SQLITE_DONE)
    r = version ? fedrec_error_set(err, FEDREC_ERR_EMPTY, "coordinator state: model version %llu is not kept", (unsigned long long)version)
                : fedrec_error_set(err, FEDREC_ERR_EMPTY, "coordinator state: no model yet");
  else if (rc != SQLITE_ROW) r = fail(err, s->db, "reading models");
  else if (sqlite3_column_bytes(st, 4) != 32 || sqlite3_column_bytes(st, 5) != FEDREC_SIG_BYTES ||
           sqlite3_column_bytes(st, 6) != sqlite3_column_bytes(st, 7) || sqlite3_column_bytes(st, 6) % 4)
    r = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model row %lld is malformed", (long long)sqlite3_column_int64(st, 0));
  else {
    size_t n1, n2;
    out->version = (uint64_t)sqlite3_column_int64(st, 0);
    out->next_round = (uint64_t)sqlite3_column_int64(st, 1);
    out->rounds_done = (uint64_t)sqlite3_column_int64(st, 2);
    out->blob = copy_blob(st, 3, &out->len);
    memcpy(out->hash, sqlite3_column_blob(st, 4), 32);
    memcpy(out->sig, sqlite3_column_blob(st, 5), FEDREC_SIG_BYTES);
    out->opt1 = copy_blob(st, 6, &n1);
    out->opt2 = copy_blob(st, 7, &n2);
    out->dim = (int64_t)(n1 / 4);
    out->ledger_entries = (uint64_t)sqlite3_column_int64(st, 8);
    if (sqlite3_column_bytes(st, 9) == 32) memcpy(out->ledger_head, sqlite3_column_blob(st, 9), 32);
    out->catalogue.version = (uint64_t)sqlite3_column_int64(st, 10);
    out->has_catalogue = out->catalogue.version > 0 && sqlite3_column_bytes(st, 11) == 32;
    if (out->has_catalogue) memcpy(out->catalogue.hash, sqlite3_column_blob(st, 11), 32);
    if (!out->blob || !out->opt1 || !out->opt2) {
      coord_saved_model_free(out);
      r = fedrec_error_set(err, FEDREC_ERR_NOMEM, "coordinator state: loading the model");
    }
  }
  sqlite3_finalize(st);
  return r;
}

fedrec_status coord_store_save_round(coord_store *s, const fedrec_round_stats *r,
                                     const uint64_t *clients, uint32_t n, fedrec_error *err) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return fail(err, s->db, "begin");
  /* INSERT, not INSERT OR REPLACE: a round's record is never overwritten (round numbers are
   * never reused, coord_store_last_round; a clash is a bug to surface, not a record to erase) */
  int rc = sqlite3_prepare_v2(s->db, "INSERT INTO rounds VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->round);
    sqlite3_bind_int64(st, 2, r->cohort);
    sqlite3_bind_int64(st, 3, r->survivors);
    sqlite3_bind_int(st, 4, r->aborted);
    sqlite3_bind_text(st, 5, r->reason, -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 6, r->epsilon);
    for (int p = FEDREC_PHASE_KEYS; p <= FEDREC_PHASE_MASKED; p++) sqlite3_bind_int64(st, 6 + p, r->dropped[p]);
    /* dropped_unmask: after the masked input (the active variant's consistency phase too) */
    sqlite3_bind_int64(st, 10, r->dropped[FEDREC_PHASE_CONSISTENCY] + r->dropped[FEDREC_PHASE_UNMASK]);
    sqlite3_bind_int64(st, 11, (sqlite3_int64)r->bytes_in);
    sqlite3_bind_double(st, 12, r->update_norm);
    sqlite3_bind_int64(st, 13, (sqlite3_int64)time(NULL));
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
    sqlite3_finalize(st);
  }
  if (rc == SQLITE_OK && !r->aborted)
    rc = sqlite3_prepare_v2(s->db, "INSERT INTO clients VALUES(?, 1, ?) ON CONFLICT(id) DO UPDATE SET"
                                   " rounds = rounds + 1, last_round = excluded.last_round", -1, &st, NULL);
  for (uint32_t i = 0; rc == SQLITE_OK && !r->aborted && i < n; i++) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)clients[i]);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->round);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  }
  if (!r->aborted && st) sqlite3_finalize(st);
  if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    fedrec_status e = fail(err, s->db, "saving a round");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return e;
  }
  return FEDREC_OK;
}

fedrec_status coord_store_save_participation(coord_store *s, uint64_t round, const uint64_t *clients, uint32_t n,
                                             fedrec_error *err) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) return fail(err, s->db, "begin");
  int rc = sqlite3_prepare_v2(s->db, "INSERT INTO participation VALUES(?, 1, ?) ON CONFLICT(id) DO UPDATE SET"
                                     " count = count + 1, last_round = excluded.last_round", -1, &st, NULL);
  for (uint32_t i = 0; rc == SQLITE_OK && i < n; i++) {
    sqlite3_reset(st);
    sqlite3_bind_int64(st, 1, (sqlite3_int64)clients[i]);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)round);
    rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
  }
  sqlite3_finalize(st);
  if (rc == SQLITE_OK) rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    fedrec_status e = fail(err, s->db, "saving participation");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return e;
  }
  return FEDREC_OK;
}

fedrec_status coord_store_load_participation(coord_store *s, fedrec_engine *e, uint64_t *devices, fedrec_error *err) {
  sqlite3_stmt *st;
  *devices = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT id, count, last_round FROM participation", -1, &st, NULL) != SQLITE_OK)
    return fail(err, s->db, "reading participation");
  fedrec_status r = FEDREC_OK;
  int rc;
  while (!r && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    int64_t count = sqlite3_column_int64(st, 1), last = sqlite3_column_int64(st, 2);
    if (count < 1 || count > UINT32_MAX || last < 0)
      r = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: participation row %lld: count %lld, last round %lld (edited?)",
                           (long long)sqlite3_column_int64(st, 0), (long long)count, (long long)last);
    else r = fedrec_engine_restore_participation(e, (uint64_t)sqlite3_column_int64(st, 0), (uint32_t)count, (uint64_t)last, err);
    *devices += !r;
  }
  if (!r && rc != SQLITE_DONE) r = fail(err, s->db, "reading participation");
  sqlite3_finalize(st);
  return r;
}

int64_t coord_store_count(coord_store *s, const char *table) {
  char q[96];
  snprintf(q, sizeof q, "SELECT count(*) FROM %s", table);
  sqlite3_stmt *st;
  int64_t n = -1;
  if (sqlite3_prepare_v2(s->db, q, -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return n;
}

void coord_store_versions(coord_store *s, char *out, size_t cap) {
  sqlite3_stmt *st;
  size_t n = 0;
  out[0] = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT version FROM models ORDER BY version", -1, &st, NULL) != SQLITE_OK) return;
  while (sqlite3_step(st) == SQLITE_ROW && n + 24 < cap)
    n += (size_t)snprintf(out + n, cap - n, "%s%lld", n ? ", " : "", (long long)sqlite3_column_int64(st, 0));
  sqlite3_finalize(st);
}

size_t coord_store_epsilon_history(coord_store *s, uint64_t *round, double *eps, size_t cap) {
  int64_t total = coord_store_count(s, "rounds WHERE aborted = 0");
  sqlite3_stmt *st;
  size_t n = 0;
  if (cap < 2 || total <= 0 ||
      sqlite3_prepare_v2(s->db, "SELECT round, epsilon FROM rounds WHERE aborted = 0 ORDER BY round", -1, &st, NULL) != SQLITE_OK)
    return 0;
  int64_t step = (total + (int64_t)cap - 2) / ((int64_t)cap - 1), i = 0; /* at most cap - 1 strided points and the last */
  while (sqlite3_step(st) == SQLITE_ROW && n < cap) {
    if (i % step == 0 || i == total - 1) {
      round[n] = (uint64_t)sqlite3_column_int64(st, 0);
      eps[n++] = sqlite3_column_double(st, 1);
    }
    i++;
  }
  sqlite3_finalize(st);
  return n;
}

size_t coord_store_recent_rounds(coord_store *s, coord_round_row *rows, size_t cap) {
  sqlite3_stmt *st;
  size_t n = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT round, cohort, survivors, aborted, epsilon, ended, reason FROM rounds ORDER BY round DESC LIMIT ?",
                         -1, &st, NULL) != SQLITE_OK)
    return 0;
  sqlite3_bind_int64(st, 1, (sqlite3_int64)cap);
  while (n < cap && sqlite3_step(st) == SQLITE_ROW) {
    coord_round_row *r = &rows[n++];
    r->round = (uint64_t)sqlite3_column_int64(st, 0);
    r->cohort = (uint64_t)sqlite3_column_int64(st, 1);
    r->survivors = (uint64_t)sqlite3_column_int64(st, 2);
    r->aborted = sqlite3_column_int(st, 3);
    r->epsilon = sqlite3_column_double(st, 4);
    r->ended = sqlite3_column_int64(st, 5);
    const unsigned char *t = sqlite3_column_text(st, 6);
    snprintf(r->reason, sizeof r->reason, "%s", t ? (const char *)t : "");
  }
  sqlite3_finalize(st);
  return n;
}

uint64_t coord_store_last_round(coord_store *s) {
  sqlite3_stmt *st;
  uint64_t r = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT coalesce(max(round), 0) FROM rounds", -1, &st, NULL) == SQLITE_OK) {
    if (sqlite3_step(st) == SQLITE_ROW) r = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
  }
  return r;
}

fedrec_status coord_store_revoke(coord_store *s, uint64_t id, fedrec_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT OR IGNORE INTO revoked VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK)
    return fail(err, s->db, "revoking");
  sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
  sqlite3_bind_int64(st, 2, (sqlite3_int64)time(NULL));
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? FEDREC_OK : fail(err, s->db, "revoking");
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

fedrec_status coord_store_revoked(coord_store *s, uint64_t **ids, size_t *n, fedrec_error *err) {
  *ids = NULL;
  *n = 0;
  int64_t count = coord_store_count(s, "revoked");
  if (count < 0) return fail(err, s->db, "reading revoked tokens");
  uint64_t *v = malloc(((size_t)count + 1) * sizeof *v);
  sqlite3_stmt *st;
  if (!v) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "revoked tokens");
  if (sqlite3_prepare_v2(s->db, "SELECT id FROM revoked", -1, &st, NULL) != SQLITE_OK) {
    free(v);
    return fail(err, s->db, "reading revoked tokens");
  }
  size_t k = 0;
  while (k < (size_t)count && sqlite3_step(st) == SQLITE_ROW) v[k++] = (uint64_t)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  qsort(v, k, sizeof *v, cmp_u64);
  *ids = v;
  *n = k;
  return FEDREC_OK;
}

int coord_store_setting(coord_store *s, const char *key, char *out, size_t cap) {
  sqlite3_stmt *st;
  int found = 0;
  if (sqlite3_prepare_v2(s->db, "SELECT value FROM settings WHERE key = ?", -1, &st, NULL) != SQLITE_OK) return 0;
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0)) {
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    found = 1;
  }
  sqlite3_finalize(st);
  return found;
}

fedrec_status coord_store_set_setting(coord_store *s, const char *key, const char *value, fedrec_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO settings(key, value) VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK)
    return fail(err, s->db, "settings");
  sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, value, -1, SQLITE_STATIC);
  int rc = sqlite3_step(st);
  sqlite3_finalize(st);
  return rc == SQLITE_DONE ? FEDREC_OK : fail(err, s->db, "settings");
}

fedrec_status coord_store_save_catalogue(coord_store *s, uint64_t version, const uint8_t hash[32], const uint8_t *blob,
                                         size_t len, int32_t items, int32_t added, int32_t withdrawn, fedrec_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "INSERT INTO catalogues VALUES(?, ?, ?, ?, ?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
    return fail(err, s->db, "saving the catalogue");
  sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
  sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
  sqlite3_bind_blob64(st, 3, blob, len, SQLITE_STATIC);
  sqlite3_bind_int(st, 4, items);
  sqlite3_bind_int(st, 5, added);
  sqlite3_bind_int(st, 6, withdrawn);
  sqlite3_bind_int64(st, 7, (sqlite3_int64)time(NULL));
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? FEDREC_OK : fail(err, s->db, "saving the catalogue");
}

fedrec_status coord_store_load_catalogue(coord_store *s, uint64_t version, uint8_t **blob, size_t *len, fedrec_error *err) {
  *blob = NULL, *len = 0;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(s->db, "SELECT blob FROM catalogues WHERE ?1 = 0 OR version = ?1 ORDER BY version DESC LIMIT 1", -1,
                         &st, NULL) != SQLITE_OK)
    return fail(err, s->db, "reading the catalogue");
  sqlite3_bind_int64(st, 1, (sqlite3_int64)version);
  int rc = sqlite3_step(st);
  fedrec_status r = FEDREC_OK;
  if (rc == SQLITE_DONE) r = fedrec_error_set(err, FEDREC_ERR_EMPTY, "coordinator state: no catalogue %llu", (unsigned long long)version);
  else if (rc != SQLITE_ROW) r = fail(err, s->db, "reading the catalogue");
  else if (!(*blob = copy_blob(st, 0, len))) r = fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
  sqlite3_finalize(st);
  return r;
}
