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

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS settings(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, item TEXT NOT NULL, weight REAL NOT NULL, ts INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS model(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, blob BLOB NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS download(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, size INTEGER NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL, data BLOB NOT NULL);"
    /* a partial download: its chunks, each appended once (the download row's data stays empty) */
    "CREATE TABLE IF NOT EXISTS download_chunk(offset INTEGER PRIMARY KEY, data BLOB NOT NULL);";

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
  if (!c->catalogue[0]) return fedrec_error_set(err, FEDREC_ERR_ARG, "client: no catalogue configured");
  if (strncmp(c->catalogue, "synthetic", 9) || (c->catalogue[9] && c->catalogue[9] != ':'))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client: catalogue '%s': only synthetic:... catalogues are supported so far", c->catalogue);
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  sc.threads = 1;
  fedrec_status s = c->catalogue[9] == ':' ? fedrec_synth_parse(&sc, c->catalogue + 10, err) : FEDREC_OK;
  if (!s) s = fedrec_synth_generate(&c->cat, &sc, err);
  if (!s) c->have_cat = 1;
  return s;
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
      sqlite3_exec(c->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL) != SQLITE_OK ||
      sqlite3_exec(c->db, SCHEMA, NULL, NULL, NULL) != SQLITE_OK)
    s = fedrec_error_set(err, FEDREC_ERR_IO, "client store %s: %s", cfg->store, c->db ? sqlite3_errmsg(c->db) : "cannot open");
  if (!s) sqlite3_busy_timeout(c->db, 5000);
  char ins[8] = "";
  if (!s && !(setting(c, "target", cfg->target, c->target, sizeof c->target) &&
              setting(c, "ca_file", cfg->ca_file, c->ca_file, sizeof c->ca_file) &&
              setting(c, "cert_file", cfg->cert_file, c->cert_file, sizeof c->cert_file) &&
              setting(c, "key_file", cfg->key_file, c->key_file, sizeof c->key_file) &&
              setting(c, "token", cfg->token, c->token, sizeof c->token) &&
              setting(c, "coordinator_key", cfg->coordinator_key, c->keyhex, sizeof c->keyhex) &&
              setting(c, "catalogue", cfg->catalogue, c->catalogue, sizeof c->catalogue) &&
              setting(c, "insecure", cfg->insecure ? "1" : NULL, ins, sizeof ins)))
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "client: a setting is too long, or the store cannot be written");
  c->insecure = ins[0] == '1';
  c->call_ms = cfg->call_timeout_ms ? cfg->call_timeout_ms : 15000;
  c->sync_ms = cfg->sync_timeout_ms ? cfg->sync_timeout_ms : 600000;
  if (!s && c->keyhex[0]) {
    size_t n = 0;
    if (sodium_hex2bin(c->pk, 32, c->keyhex, strlen(c->keyhex), NULL, &n, NULL) || n != 32)
      s = fedrec_error_set(err, FEDREC_ERR_ARG, "client: coordinator key must be 64 hex digits");
  }
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
  if (c->have_cat) fedrec_dataset_free(&c->cat);
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
  fedrec_status s = fedrec__client_load_catalogue(c, err);
  if (s) return s;
  if (!(weight > 0 && weight < 1e6))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "record: weight %g must be in (0, 1e6)", weight);
  if (fedrec_idmap_get(c->cat.items, item, strlen(item), 0) < 0)
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
  int32_t ni = c->cat.R.cols;
  float *acc = calloc((size_t)ni, sizeof *acc);
  if (!acc) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "history");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT item, weight FROM events", -1, &st, NULL) != SQLITE_OK) {
    free(acc);
    return fedrec__client_dberr(err, c, "history");
  }
  while (sqlite3_step(st) == SQLITE_ROW) {
    const char *name = (const char *)sqlite3_column_text(st, 0);
    int32_t i = name ? fedrec_idmap_get(c->cat.items, name, strlen(name), 0) : -1;
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

fedrec_status fedrec_client_recommend(fedrec_client *c, int32_t k, char (*names)[64], float *scores, int32_t *n,
                                      fedrec_error *err) {
  *n = 0;
  if (k < 1) return fedrec_error_set(err, FEDREC_ERR_ARG, "recommend: k must be >= 1");
  fedrec_model m;
  fedrec_status s = fedrec__client_cached_model(c, &m, err);
  if (s) return s;
  int32_t *items = NULL, nh = 0;
  float *w = NULL;
  if ((s = fedrec__client_history(c, &items, &w, &nh, err))) {
    fedrec_model_free(&m);
    return s;
  }
  int32_t ni = m.n_items, d = m.d;
  float *V = malloc((size_t)ni * d * sizeof *V), *G = malloc((size_t)d * d * sizeof *G), *u = calloc((size_t)d, sizeof *u);
  float *work = malloc(fedrec_user_solve_work(d, nh > 0 ? nh : 1) * sizeof *work), *sc = malloc((size_t)ni * sizeof *sc);
  uint8_t *allowed = malloc((size_t)ni);
  int32_t *top = malloc((size_t)k * sizeof *top);
  if (!V || !G || !u || !work || !sc || !allowed || !top) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "recommend");
  if (!s) {
    fedrec_model_item_vectors(V, &m);
    fedrec_gramian(G, V, ni, d);
    if (nh > 0) s = fedrec_user_solve(u, V, G, ni, d, items, w, nh, 0.3f, 0.003f, work);
    if (s) fedrec_error_set(err, s, "recommend: the user's system is not positive definite");
  }
  if (!s) {
    for (int32_t i = 0; i < ni; i++) {
      double v = 0;
      for (int32_t j = 0; j < d; j++) v += (double)V[(size_t)i * d + j] * u[j];
      sc[i] = nh > 0 ? (float)v : 0.0f;
      allowed[i] = 1;
    }
    for (int32_t j = 0; j < nh; j++) allowed[items[j]] = 0;
    *n = fedrec_topk(top, sc, ni, k, allowed);
    for (int32_t r = 0; r < *n; r++) {
      snprintf(names[r], 64, "%s", fedrec_idmap_name(c->cat.items, top[r]));
      scores[r] = sc[top[r]];
    }
  }
  if (u) sodium_memzero(u, (size_t)d * sizeof *u);
  free(V), free(G), free(u), free(work), free(sc), free(allowed), free(top), free(items), free(w);
  fedrec_model_free(&m);
  return s;
}
