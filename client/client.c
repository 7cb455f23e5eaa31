/* The client library (see include/fedrec/client.h): the local store (settings and the
 * history), the catalogue, and recommendations on the device. The parts are listed in
 * client_internal.h. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fedrec/eval.h"
#include "fedrec/internal/sim.h"
#include "fedrec/internal/tool.h"
#include "fedrec/participant.h"
#include "fedrec/synth.h"
#include "client_internal.h"
#include "fedrec/enrol.h"

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS settings(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, item TEXT NOT NULL, weight REAL NOT NULL, ts INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS model(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, blob BLOB NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS download(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, size INTEGER NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL, data BLOB NOT NULL);"
    /* a partial download: its chunks, each appended once (the download row's data stays empty) */
    "CREATE TABLE IF NOT EXISTS download_chunk(offset INTEGER PRIMARY KEY, data BLOB NOT NULL);"
    /* the catalogue the coordinator served (protos/catalogue.h), and a partial download of one */
    "CREATE TABLE IF NOT EXISTS catalogue(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, hash BLOB NOT NULL,"
    " blob BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS catalogue_download(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL,"
    " size INTEGER NOT NULL, hash BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS catalogue_download_chunk(offset INTEGER PRIMARY KEY, data BLOB NOT NULL);";

fedrec_status fedrec__client_dberr(fedrec_error *err, fedrec_client *c, const char *what) {
  return fedrec_error_set(err, FEDREC_ERR_IO, "client store: %s: %s", what, sqlite3_errmsg(c->db));
}

int fedrec__client_get_setting(fedrec_client *c, const char *k, char *out, size_t cap) {
  sqlite3_stmt *st;
  int found = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT v FROM settings WHERE k = ?", -1, &st, NULL) != SQLITE_OK) return 0;
  sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
  if (sqlite3_step(st) == SQLITE_ROW) {
    snprintf(out, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    found = 1;
  }
  sqlite3_finalize(st);
  return found;
}

int fedrec__client_put_setting(fedrec_client *c, const char *k, const char *v) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO settings VALUES(?, ?)", -1, &st, NULL) != SQLITE_OK) return 0;
  sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
  sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC);
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok;
}

/* A setting from the config (saved) or else from the store. */
static int setting(fedrec_client *c, const char *k, const char *given, char *out, size_t cap) {
  if (given && *given) {
    if (strlen(given) >= cap) return 0;
    snprintf(out, cap, "%s", given);
    return fedrec__client_put_setting(c, k, given);
  }
  if (!fedrec__client_get_setting(c, k, out, cap)) out[0] = 0;
  return 1;
}

fedrec_status fedrec__client_load_catalogue(fedrec_client *c, fedrec_error *err) {
  if (c->have_cat) return FEDREC_OK;
  sqlite3_stmt *st;
  fedrec_status s = FEDREC_ERR_EMPTY;
  if (sqlite3_prepare_v2(c->db, "SELECT blob, hash FROM catalogue WHERE id = 1", -1, &st, NULL) != SQLITE_OK)
    return fedrec__client_dberr(err, c, "catalogue");
  if (sqlite3_step(st) == SQLITE_ROW) { /* no copy kept; hashed again, so that a damaged store is downloaded anew */
    const uint8_t *b = sqlite3_column_blob(st, 0);
    s = fedrec_catalogue_decode_stored(&c->cat, b, (size_t)sqlite3_column_bytes(st, 0), err);
    if (!s && (sqlite3_column_bytes(st, 1) != 32 || memcmp(c->cat.hash, sqlite3_column_blob(st, 1), 32))) {
      fedrec_catalogue_free(&c->cat);
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "it does not match its hash");
    }
    c->cat_stored = !s;
  }
  sqlite3_finalize(st);
  if (s == FEDREC_ERR_PARSE) { /* EMPTY: as with none, a sync fetches the one its model names */
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return fedrec_error_set(err, FEDREC_ERR_EMPTY, "client: the stored catalogue is damaged (%s): the next sync downloads it again", msg);
  }
  if (s == FEDREC_ERR_EMPTY && c->catalogue[0]) s = fedrec_catalogue_load(&c->cat, c->catalogue, err);
  else if (s == FEDREC_ERR_EMPTY)
    return fedrec_error_set(err, FEDREC_ERR_EMPTY, "client: no catalogue yet: sync first (the coordinator serves it)");
  if (s) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return fedrec_error_set(err, s, "client: catalogue: %s", msg);
  }
  c->have_cat = 1;
  return FEDREC_OK;
}

/* The authority's key (given: saved; else from the store) and, with one, the device's identity
 * seed: made once, at random, and kept in the store (0600) as its only copy. */
static fedrec_status open_identity(fedrec_client *c, const char *given, fedrec_error *err) {
  char hex[80];
  if (!setting(c, "authority_key", given, hex, sizeof hex))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client: the authority key is too long, or the store cannot be written");
  if (!hex[0]) return FEDREC_OK;
  size_t n = 0;
  if (sodium_hex2bin(c->authority, 32, hex, strlen(hex), NULL, &n, NULL) || n != 32)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client: the authority key must be 64 hex digits");
  c->has_authority = 1;
  char seedhex[65];
  if (fedrec__client_get_setting(c, "identity_seed", seedhex, sizeof seedhex)) {
    sodium_memzero(seedhex, sizeof seedhex);
    return FEDREC_OK;
  }
  uint8_t seed[32];
  randombytes_buf(seed, sizeof seed);
  sodium_bin2hex(seedhex, sizeof seedhex, seed, sizeof seed);
  int ok = fedrec__client_put_setting(c, "identity_seed", seedhex);
  sodium_memzero(seed, sizeof seed);
  sodium_memzero(seedhex, sizeof seedhex);
  return ok ? FEDREC_OK : fedrec__client_dberr(err, c, "saving the identity");
}

fedrec_status fedrec__client_identity(fedrec_client *c, fedrec_identity *id, fedrec_error *err) {
  char seedhex[80];
  uint8_t seed[32];
  size_t n = 0;
  if (!c->has_authority || !fedrec__client_get_setting(c, "identity_seed", seedhex, sizeof seedhex))
    return fedrec_error_set(err, FEDREC_ERR_STATE, "client: no identity (init --authority-key makes one)");
  int bad = sodium_hex2bin(seed, 32, seedhex, strlen(seedhex), NULL, &n, NULL) || n != 32;
  sodium_memzero(seedhex, sizeof seedhex);
  fedrec_status s = bad ? fedrec_error_set(err, FEDREC_ERR_PARSE, "client: the stored identity is damaged")
                        : fedrec_identity_from_seed(id, seed);
  sodium_memzero(seed, sizeof seed);
  if (s == FEDREC_ERR_NOMEM) fedrec_error_set(err, s, "client: identity");
  return s;
}

void fedrec__client_certificate(fedrec_client *c, uint8_t *cert, size_t *len) {
  char hex[2 * FEDREC_CERT_BYTES + 8];
  *len = 0;
  if (c->has_authority && fedrec__client_get_setting(c, "certificate", hex, sizeof hex) &&
      sodium_hex2bin(cert, FEDREC_CERT_BYTES, hex, strlen(hex), NULL, len, NULL))
    *len = 0;
}

fedrec_status fedrec_client_identity(fedrec_client *c, uint8_t pk[32], fedrec_error *err) {
  fedrec_identity id;
  fedrec_status s = fedrec__client_identity(c, &id, err);
  if (s) return s;
  memcpy(pk, id.pk, 32);
  fedrec_identity_free(&id);
  return FEDREC_OK;
}

fedrec_status fedrec_client_enrol(fedrec_client *c, const uint8_t *cert, size_t len, fedrec_error *err) {
  uint8_t pk[32], certified[32];
  fedrec_status s = fedrec_client_identity(c, pk, err);
  if (s) return s;
  fedrec_error e2 = {0};
  if (fedrec_cert_check(cert, len, c->authority, NULL, certified, &e2))
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "client: %s", e2.msg);
  if (memcmp(pk, certified, 32))
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "client: the certificate is for another device's identity key");
  char hex[2 * FEDREC_CERT_BYTES + 1];
  sodium_bin2hex(hex, sizeof hex, cert, FEDREC_CERT_BYTES);
  return fedrec__client_put_setting(c, "certificate", hex) ? FEDREC_OK : fedrec__client_dberr(err, c, "saving the certificate");
}

fedrec_status fedrec_client_open(fedrec_client **out, const fedrec_client_config *cfg, fedrec_error *err) {
  *out = NULL;
  if (!cfg->store || !*cfg->store) return fedrec_error_set(err, FEDREC_ERR_ARG, "client: a store path is required");
  if (sodium_init() < 0) return fedrec_error_set(err, FEDREC_ERR_IO, "client: libsodium failed to initialise");
  fedrec_client *c = calloc(1, sizeof *c);
  if (!c) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "client");
  fedrec_status s = FEDREC_OK;
  /* the store holds the bearer token and the whole viewing history: owner only. Created here
   * 0600 before SQLite opens it (SQLite's own creation follows the umask), and its journal and
   * WAL files take the database file's mode. An existing store is narrowed to 0600 too. */
  int fd = open(cfg->store, O_RDWR | (cfg->must_exist ? 0 : O_CREAT) | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ENOENT && cfg->must_exist) {
    free(c);
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client store %s does not exist: create it with fedrec-client init", cfg->store);
  }
  if (fd < 0 || fchmod(fd, 0600)) {
    if (fd >= 0) close(fd);
    free(c);
    return fedrec_error_set(err, FEDREC_ERR_IO, "client store %s: %s", cfg->store, strerror(errno));
  }
  close(fd);
  if (sqlite3_open_v2(cfg->store, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK ||
      sqlite3_busy_timeout(c->db, 5000) != SQLITE_OK || /* another process of the app may hold the store a moment */
      sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(c->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
    s = fedrec_error_set(err, FEDREC_ERR_IO, "client store %s: %s", cfg->store, c->db ? sqlite3_errmsg(c->db) : "cannot open");
  char ins[8] = "", mp[16] = "", mpgiven[16] = "", ms[16] = "", msgiven[16] = "";
  if (cfg->max_participation) snprintf(mpgiven, sizeof mpgiven, "%u", cfg->max_participation);
  if (cfg->min_separation) snprintf(msgiven, sizeof msgiven, "%u", cfg->min_separation);
  if (!s && cfg->region && !fedrec_catalogue_groups_valid(cfg->region))
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "client: region '%.80s' is not a list of group names (A-Z a-z 0-9 _ . -, "
                         "separated by commas)", cfg->region);
  if (!s && !(setting(c, "target", cfg->target, c->target, sizeof c->target) &&
              setting(c, "region", cfg->region, c->region, sizeof c->region) &&
              setting(c, "ca_file", cfg->ca_file, c->ca_file, sizeof c->ca_file) &&
              setting(c, "cert_file", cfg->cert_file, c->cert_file, sizeof c->cert_file) &&
              setting(c, "key_file", cfg->key_file, c->key_file, sizeof c->key_file) &&
              setting(c, "token", cfg->token, c->token, sizeof c->token) &&
              setting(c, "coordinator_key", cfg->coordinator_key, c->keyhex, sizeof c->keyhex) &&
              setting(c, "catalogue", cfg->catalogue, c->catalogue, sizeof c->catalogue) &&
              setting(c, "weights", cfg->weights, c->weights, sizeof c->weights) &&
              setting(c, "insecure", cfg->insecure ? "1" : NULL, ins, sizeof ins) &&
              setting(c, "max_participation", mpgiven, mp, sizeof mp) &&
              setting(c, "min_separation", msgiven, ms, sizeof ms)))
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "client: a setting is too long, or the store cannot be written");
  c->insecure = ins[0] == '1';
  c->max_participation = (uint32_t)strtoul(mp, NULL, 10); /* "" (none saved): 0 */
  c->min_separation = (uint32_t)strtoul(ms, NULL, 10);
  if (!s && fedrec_weights_parse(&c->wt, c->weights[0] ? c->weights : "auto", err)) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "client: weights: %s", msg);
  }
  c->call_ms = cfg->call_timeout_ms ? cfg->call_timeout_ms : 15000;
  c->sync_ms = cfg->sync_timeout_ms ? cfg->sync_timeout_ms : 600000;
  c->max_catalogue = (uint64_t)(cfg->max_catalogue_mb ? cfg->max_catalogue_mb : 1024) << 20;
  if (!s && c->keyhex[0]) {
    size_t n = 0;
    if (sodium_hex2bin(c->pk, 32, c->keyhex, strlen(c->keyhex), NULL, &n, NULL) || n != 32)
      s = fedrec_error_set(err, FEDREC_ERR_ARG, "client: coordinator key must be 64 hex digits");
  }
  if (!s) s = open_identity(c, cfg->authority_key, err);
  if (!s) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, "SELECT version FROM model WHERE id = 1", -1, &st, NULL) == SQLITE_OK) {
      if (sqlite3_step(st) == SQLITE_ROW) c->model_version = (uint64_t)sqlite3_column_int64(st, 0);
      sqlite3_finalize(st);
    }
  }
  if (s) {
    fedrec_client_close(c);
    return s;
  }
  *out = c;
  return FEDREC_OK;
}

void fedrec_client_close(fedrec_client *c) {
  if (!c) return;
  if (c->ch) {
    grpc_channel_destroy(c->ch);
    grpc_shutdown();
  }
  if (c->have_cat) fedrec_catalogue_free(&c->cat);
  free(c->V), free(c->G);
  sodium_memzero(c->token, sizeof c->token);
  sqlite3_close(c->db);
  free(c);
}

int fedrec_client_catalogue_spec(const fedrec_client *c, char *out, size_t cap) {
  if (!c->catalogue[0]) return 1;
  snprintf(out, cap, "%s", c->catalogue);
  return 0;
}

uint64_t fedrec_client_model_version(const fedrec_client *c) { return c->model_version; }

void fedrec_client_simulate_dropout(fedrec_client *c, int phase) { c->drop_phase = phase; }

void fedrec_client_simulate_delay(fedrec_client *c, uint32_t ms) { c->delay_ms = ms; }

fedrec_status fedrec_client_record(fedrec_client *c, const char *item, float weight, fedrec_error *err) {
  /* without a catalogue yet (before the first sync) any id is kept; one the catalogue does
   * not have (yet) is left out of the history until it does */
  fedrec_error none;
  fedrec_status s = fedrec__client_load_catalogue(c, &none);
  if (s && s != FEDREC_ERR_EMPTY) return fedrec_error_set(err, s, "%s", none.msg);
  if (!(weight > 0 && weight < 1e6))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "record: weight %g must be in (0, 1e6)", weight);
  size_t len = strlen(item);
  if (len < 1 || len > FEDREC_MAX_ID_LEN)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "record: an item id has 1 to %d bytes, not %zu", FEDREC_MAX_ID_LEN, len);
  if (!s && fedrec_idmap_get(c->cat.ds.items, item, len, 0) < 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "record: '%s' is not an item of the catalogue", item);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "INSERT INTO events(item, weight, ts) VALUES(?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
    return fedrec__client_dberr(err, c, "record");
  sqlite3_bind_text(st, 1, item, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, weight);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? FEDREC_OK : fedrec__client_dberr(err, c, "record");
}

/* The history as sorted item indices with summed weights. */
fedrec_status fedrec__client_history(fedrec_client *c, int32_t **items, float **w, int32_t *n, fedrec_error *err) {
  *items = NULL, *w = NULL, *n = 0;
  fedrec_status s = fedrec__client_load_catalogue(c, err);
  if (s) return s;
  int32_t ni = fedrec_catalogue_items(&c->cat);
  float *acc = calloc((size_t)ni, sizeof *acc);
  if (!acc) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "history");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT item, weight FROM events", -1, &st, NULL) != SQLITE_OK) {
    free(acc);
    return fedrec__client_dberr(err, c, "history");
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int32_t i = name ? fedrec_idmap_get(c->cat.ds.items, name, strlen(name), 0) : -1;
    if (i >= 0) acc[i] += (float)sqlite3_column_double(st, 1);
  }
  sqlite3_finalize(st);
  int32_t m = 0;
  for (int32_t i = 0; i < ni; i++) m += acc[i] > 0;
  *items = malloc((size_t)(m ? m : 1) * sizeof **items);
  *w = malloc((size_t)(m ? m : 1) * sizeof **w);
  if (!*items || !*w) {
    free(acc), free(*items), free(*w);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "history");
  }
  for (int32_t i = 0; i < ni; i++)
    if (acc[i] > 0) (*items)[*n] = i, (*w)[(*n)++] = acc[i];
  sodium_memzero(acc, (size_t)ni * sizeof *acc);
  free(acc);
  /* the summed weights (plays) become confidences as the `weights` setting says (auto: log:10
   * when they look like counts), as the loaders do for a data set's files */
  int64_t ptr[2] = {0, *n};
  fedrec_csr row = {1, ni, ptr, *items, *w};
  fedrec_weights_apply(&row, &c->wt);
  return FEDREC_OK;
}

fedrec_status fedrec_client_history_size(fedrec_client *c, int64_t *events, int64_t *items, fedrec_error *err) {
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT count(*), count(DISTINCT item) FROM events", -1, &st, NULL) != SQLITE_OK)
    return fedrec__client_dberr(err, c, "history");
  if (sqlite3_step(st) == SQLITE_ROW) *events = sqlite3_column_int64(st, 0), *items = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  return FEDREC_OK;
}

fedrec_status fedrec_client_set_region(fedrec_client *c, const char *groups, fedrec_error *err) {
  if (!groups || strlen(groups) >= sizeof c->region || !fedrec_catalogue_groups_valid(groups))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client: region '%.80s' is not a list of group names (A-Z a-z 0-9 _ . -, "
                            "separated by commas, at most %zu bytes)", groups ? groups : "(null)", sizeof c->region - 1);
  if (!fedrec__client_put_setting(c, "region", groups)) return fedrec__client_dberr(err, c, "saving the region");
  snprintf(c->region, sizeof c->region, "%s", groups);
  return FEDREC_OK;
}
