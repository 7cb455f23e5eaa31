/* The client library (see include/fedrec/client.h). */
#include "fedrec/internal/sim.h"
#include "fedrec/internal/tool.h"
#include "fedrec/client.h"

#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fedrec/eval.h"
#include "fedrec/participant.h"
#include "fedrec/synth.h"
#include "rpc.h"

struct fedrec_client {
  sqlite3 *db;
  char target[256], ca_file[512], cert_file[512], key_file[512], token[FEDREC_TOKEN_MAX + 8];
  char catalogue[512], keyhex[80];
  int insecure;
  uint32_t call_ms, sync_ms;
  uint8_t pk[32];
  fedrec_dataset cat; /* items and their content; no users are used */
  int have_cat;
  grpc_channel *ch;
  void *handles[16];
  uint64_t model_version;
  int drop_phase;
  uint32_t delay_ms; /* testing: a slow device */
};

static const char *SCHEMA =
    "CREATE TABLE IF NOT EXISTS settings(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS events(id INTEGER PRIMARY KEY, item TEXT NOT NULL, weight REAL NOT NULL, ts INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS model(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, blob BLOB NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL);"
    "CREATE TABLE IF NOT EXISTS download(id INTEGER PRIMARY KEY CHECK(id = 1), version INTEGER NOT NULL, size INTEGER NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL, data BLOB NOT NULL);"
    /* a partial download: its chunks, each appended once (the download row's data stays empty) */
    "CREATE TABLE IF NOT EXISTS download_chunk(offset INTEGER PRIMARY KEY, data BLOB NOT NULL);";

static fedrec_status dberr(fedrec_error *err, fedrec_client *c, const char *what) {
  return fedrec_error_set(err, FEDREC_ERR_IO, "client store: %s: %s", what, sqlite3_errmsg(c->db));
}

static int get_setting(fedrec_client *c, const char *k, char *out, size_t cap) {
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

static int put_setting(fedrec_client *c, const char *k, const char *v) {
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
    return put_setting(c, k, given);
  }
  if (!get_setting(c, k, out, cap)) out[0] = 0;
  return 1;
}

static fedrec_status load_catalogue(fedrec_client *c, fedrec_error *err) {
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
  fedrec_status s = load_catalogue(c, err);
  if (s) return s;
  if (!(weight > 0 && weight < 1e6))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "record: weight %g must be in (0, 1e6)", weight);
  if (fedrec_idmap_get(c->cat.items, item, strlen(item), 0) < 0)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "record: '%s' is not an item of the catalogue", item);
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "INSERT INTO events(item, weight, ts) VALUES(?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
    return dberr(err, c, "record");
  sqlite3_bind_text(st, 1, item, -1, SQLITE_STATIC);
  sqlite3_bind_double(st, 2, weight);
  sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
  int ok = sqlite3_step(st) == SQLITE_DONE;
  sqlite3_finalize(st);
  return ok ? FEDREC_OK : dberr(err, c, "record");
}

/* The history as sorted item indices with summed weights. */
static fedrec_status history(fedrec_client *c, int32_t **items, float **w, int32_t *n, fedrec_error *err) {
  *items = NULL, *w = NULL, *n = 0;
  fedrec_status s = load_catalogue(c, err);
  if (s) return s;
  int32_t ni = c->cat.R.cols;
  float *acc = calloc((size_t)ni, sizeof *acc);
  if (!acc) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "history");
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT item, weight FROM events", -1, &st, NULL) != SQLITE_OK) {
    free(acc);
    return dberr(err, c, "history");
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
    return dberr(err, c, "history");
  if (sqlite3_step(st) == SQLITE_ROW) *events = sqlite3_column_int64(st, 0), *items = sqlite3_column_int64(st, 1);
  sqlite3_finalize(st);
  return FEDREC_OK;
}

/* ---------------------------------------------------------------- RPC */

static fedrec_status connect_channel(fedrec_client *c, fedrec_error *err) {
  if (c->ch) return FEDREC_OK;
  if (!c->target[0] || !c->token[0] || !c->keyhex[0])
    return fedrec_error_set(err, FEDREC_ERR_ARG, "client: target, token and coordinator key must be configured");
  grpc_init();
  grpc_channel_credentials *creds;
  if (c->insecure) {
    creds = grpc_insecure_credentials_create();
  } else {
    char *ca = c->ca_file[0] ? fedrec_rpc_read_text(c->ca_file) : NULL;
    char *cert = c->cert_file[0] ? fedrec_rpc_read_text(c->cert_file) : NULL;
    char *key = c->key_file[0] ? fedrec_rpc_read_text(c->key_file) : NULL;
    if ((c->ca_file[0] && !ca) || (c->cert_file[0] && !cert) || (c->key_file[0] && !key)) {
      free(ca), free(cert), free(key);
      grpc_shutdown();
      return fedrec_error_set(err, FEDREC_ERR_IO, "client: cannot read the TLS files (%s, %s, %s)", c->ca_file, c->cert_file, c->key_file);
    }
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_credentials_create(ca, cert && key ? &pair : NULL, NULL, NULL);
    if (key) sodium_memzero(key, strlen(key));
    free(ca), free(cert), free(key);
  }
  /* one backoff: the client's own (after failed syncs, bounded, docs/CLIENT.md). gRPC's
   * reconnect backoff (up to 2 minutes by default) would stack on it after a coordinator
   * restart, so it is kept to 1-5 s. Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: it is also the
   * least time a connection attempt gets (20 s by default), and at 1 s TLS handshakes on a
   * loaded machine timed out again and again */
  grpc_arg args[3] = {{.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, .value.integer = 256 << 20},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, .value.integer = 1000},
                      {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, .value.integer = 5000}};
  grpc_channel_args ca = {3, args};
  c->ch = grpc_channel_create(c->target, creds, &ca);
  grpc_channel_credentials_release(creds);
  for (int m = 0; m < FEDREC_RPC_NMETHODS; m++) c->handles[m] = grpc_channel_register_call(c->ch, fedrec_rpc_path(m), NULL, NULL);
  return FEDREC_OK;
}

/* One blocking unary call with this client's token. */
static grpc_status_code rpc(fedrec_client *c, int m, const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                            ProtobufCMessage **resp, char *details, size_t cap) {
  return fedrec_rpc_call(c->ch, fedrec_rpc_path(m), c->handles[m], c->token, req, rd, c->call_ms, resp, details, cap);
}

#define code_name fedrec_rpc_code_name

/* A reason the coordinator gave, for the app's log: printable ASCII only (a hostile peer's
 * control characters or terminal escapes become '?'). */
static void keep_reason(char *out, size_t cap, const char *in) {
  size_t j = 0;
  for (; in && *in && j + 1 < cap; in++) out[j++] = *in >= 0x20 && *in < 0x7f ? *in : '?';
  out[j] = 0;
}

static void sleep_ms(uint32_t ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&d, NULL);
}

/* ---------------------------------------------------------------- model */

/* The exact encoded size a model header implies, or 0 when the header does not fit this
 * device's catalogue (items, content dimensions) or the decoder's limits (core/model_blob.c). */
static uint64_t implied_size(const fedrec_client *c, const uint8_t h[32]) {
  uint32_t v[4];
  for (int k = 0; k < 4; k++) v[k] = (uint32_t)h[16 + 4 * k] | (uint32_t)h[17 + 4 * k] << 8 | (uint32_t)h[18 + 4 * k] << 16 | (uint32_t)h[19 + 4 * k] << 24;
  uint32_t n_items = v[0], d = v[1], p = v[2], n_free = v[3];
  if (memcmp(h, "FRMD", 4) || (int64_t)n_items != c->cat.R.cols || d < 1 || d > 4096 || n_free > n_items ||
      (p && (int32_t)p != c->cat.content_dim) || (!p && !n_free))
    return 0;
  return 32 + 4 * ((uint64_t)n_free + (uint64_t)d * p + (uint64_t)n_free * d);
}

/* A partial download of this model (same version, size and hash) into buf: how many bytes
 * (contiguous chunks from 0); any other partial download is discarded. */
static size_t resume_download(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, uint8_t *buf, size_t size) {
  sqlite3_stmt *st;
  int same = 0;
  if (sqlite3_prepare_v2(c->db, "SELECT version, size, hash FROM download WHERE id = 1", -1, &st, NULL) == SQLITE_OK) {
    same = sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) == mi->version &&
           (uint64_t)sqlite3_column_int64(st, 1) == size && sqlite3_column_bytes(st, 2) == 32 &&
           !memcmp(sqlite3_column_blob(st, 2), mi->blake2b_hash.data, 32);
    sqlite3_finalize(st);
  }
  size_t have = 0;
  if (same && sqlite3_prepare_v2(c->db, "SELECT offset, data FROM download_chunk ORDER BY offset", -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      size_t off = (size_t)sqlite3_column_int64(st, 0), n = (size_t)sqlite3_column_bytes(st, 1);
      if (off != have || n == 0 || n > size - have) break; /* a gap or an overrun: keep what is contiguous */
      memcpy(buf + have, sqlite3_column_blob(st, 1), n);
      have += n;
    }
    sqlite3_finalize(st);
  }
  if (!same) sqlite3_exec(c->db, "DELETE FROM download; DELETE FROM download_chunk", NULL, NULL, NULL);
  return have;
}

/* Records a downloaded chunk: the first one writes the download's identity, each appends. */
static void save_chunk(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, size_t size, size_t off, const uint8_t *data,
                       size_t n) {
  sqlite3_stmt *st;
  if (off == 0 && sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO download VALUES(1, ?, ?, ?, ?, x'')", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)mi->version);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
    sqlite3_bind_blob(st, 3, mi->blake2b_hash.data, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, mi->signature.data, 64, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  if (sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO download_chunk VALUES(?, ?)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)off);
    sqlite3_bind_blob64(st, 2, data, n, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
}

/* Makes the cached model `mi`: downloads what is missing (resuming a partial download of the
 * same version), verifies hash and signature, and stores it in one transaction. Refuses a
 * version older than the cached one (a rollback), a size the catalogue's shape cannot have
 * and a header that disagrees with the size, before allocating for it; gives up at
 * `deadline` (monotonic ms). */
static fedrec_status ensure_model(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, uint64_t *resumed_at,
                                  uint64_t deadline, fedrec_error *err) {
  if (!mi) return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator sent no model information");
  if (mi->version == c->model_version) return FEDREC_OK;
  if (mi->version < c->model_version)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "coordinator offers model %llu, older than the cached %llu: refused (rollback)",
                            (unsigned long long)mi->version, (unsigned long long)c->model_version);
  if (mi->blake2b_hash.len != 32 || mi->signature.len != 64 || mi->ledger_head.len != 32 || mi->size_bytes < 32)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator sent malformed model information");
  fedrec_status s = load_catalogue(c, err);
  if (s) return s;
  /* the largest model this catalogue can have (d <= 4096, every item a free embedding) */
  uint64_t ni = (uint64_t)c->cat.R.cols, most = 32 + 4 * (ni + 4096 * ((uint64_t)c->cat.content_dim + ni));
  if (mi->size_bytes > most || mi->size_bytes > SIZE_MAX / 2)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator claims a %llu-byte model; %llu items of %d content dimensions allow %llu at most",
                            (unsigned long long)mi->size_bytes, (unsigned long long)ni, c->cat.content_dim, (unsigned long long)most);
  size_t size = (size_t)mi->size_bytes, have = 0;
  char details[512];
  uint8_t *buf = malloc(size);
  if (!buf) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model of %zu bytes", size);
  have = resume_download(c, mi, buf, size);
  if (resumed_at) *resumed_at = have;
  while (have < size) {
    /* once the header is in: the size it implies must be the size claimed */
    if (have >= 32 && implied_size(c, buf) != size) break;
    if (fedrec_clock_ms() > deadline) {
      free(buf);
      return fedrec_error_set(err, FEDREC_ERR_IO, "GetModel: download deadline passed at byte %zu of %zu (resumes next sync)", have, size);
    }
    Fedrec__V1__GetModelRequest rq = FEDREC__V1__GET_MODEL_REQUEST__INIT;
    rq.version = mi->version;
    rq.offset = have;
    rq.max_bytes = 1 << 20;
    Fedrec__V1__GetModelResponse *r;
    grpc_status_code code = rpc(c, FEDREC_RPC_GET_MODEL, &rq.base, &fedrec__v1__get_model_response__descriptor,
                                (ProtobufCMessage **)&r, details, sizeof details);
    if (code != GRPC_STATUS_OK) {
      free(buf);
      keep_reason(details, sizeof details, details);
      return fedrec_error_set(err, FEDREC_ERR_IO, "GetModel: %s: %s", code_name(code), details);
    }
    if (r->offset != have || r->chunk.len == 0 || r->chunk.len > size - have || (have == 0 && r->chunk.len < 32)) {
      protobuf_c_message_free_unpacked(&r->base, NULL);
      free(buf);
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "GetModel: chunk at %zu of %zu bytes does not fit", have, size);
    }
    memcpy(buf + have, r->chunk.data, r->chunk.len);
    save_chunk(c, mi, size, have, r->chunk.data, r->chunk.len); /* an interrupted download resumes here */
    have += r->chunk.len;
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  if (implied_size(c, buf) != size) {
    sqlite3_exec(c->db, "DELETE FROM download; DELETE FROM download_chunk", NULL, NULL, NULL);
    free(buf);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu: its header does not fit the catalogue or the %zu bytes claimed: not used",
                            (unsigned long long)mi->version, size);
  }
  if (fedrec_model_verify(buf, size, mi->version, mi->blake2b_hash.data, mi->ledger_entries, mi->ledger_head.data,
                           mi->signature.data, c->pk)) {
    sqlite3_exec(c->db, "DELETE FROM download; DELETE FROM download_chunk", NULL, NULL, NULL);
    free(buf);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu fails its hash or signature check: not used",
                            (unsigned long long)mi->version);
  }
  fedrec_model m;
  uint64_t ver = 0;
  s = fedrec_model_decode(&m, &ver, buf, size, c->cat.content, c->cat.content_dim, err);
  if (!s) {
    int bad = ver != mi->version || m.n_items != c->cat.R.cols;
    fedrec_model_free(&m);
    if (bad) s = fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu does not fit the catalogue", (unsigned long long)mi->version);
  }
  sqlite3_stmt *st;
  int ok = !s && sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
  if (ok && sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO model VALUES(1, ?, ?, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)mi->version);
    sqlite3_bind_blob64(st, 2, buf, size, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, mi->blake2b_hash.data, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, mi->signature.data, 64, SQLITE_STATIC);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
  } else {
    ok = 0;
  }
  ok = ok && sqlite3_exec(c->db, "DELETE FROM download; DELETE FROM download_chunk", NULL, NULL, NULL) == SQLITE_OK &&
       sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  free(buf);
  if (s) return s;
  if (!ok) {
    sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
    return dberr(err, c, "saving the model");
  }
  c->model_version = mi->version;
  return FEDREC_OK;
}

/* The cached model, decoded. */
static fedrec_status cached_model(fedrec_client *c, fedrec_model *m, fedrec_error *err) {
  fedrec_status s = load_catalogue(c, err);
  if (s) return s;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT blob FROM model WHERE id = 1", -1, &st, NULL) != SQLITE_OK) return dberr(err, c, "model");
  if (sqlite3_step(st) != SQLITE_ROW) s = fedrec_error_set(err, FEDREC_ERR_EMPTY, "no model yet: sync first");
  else
    s = fedrec_model_decode(m, NULL, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), c->cat.content,
                            c->cat.content_dim, err);
  sqlite3_finalize(st);
  return s;
}

/* ---------------------------------------------------------------- hostile build (tests only) */

#ifdef FEDREC_HOSTILE
/* Compiled only into tests/hostile_client (-DFEDREC_HOSTILE), never into libfedrec_client:
 * what an attacker holding one device token gets by editing this library. FEDREC_HOSTILE in
 * the environment picks the attack:
 *   box-index   a share box addressed past the cohort (the 61d538e heap overflow)
 *   spoil-boxes share boxes that open for nobody (and its masked input sent anyway)
 *   equal-keys  both advertised keys equal;  low-order  a low-order mask key
 *   no-clip     the update clipped at 40x the round's clip (a poisoned update) */
static const char *hostile(void) {
  const char *m = getenv("FEDREC_HOSTILE");
  return m ? m : "";
}

/* Rewrites an outgoing secure-aggregation message as the attack says. */
static void tamper(uint8_t *msg, size_t len, const fedrec_round_info *info) {
  fedrec_sa_msg m;
  fedrec_error err;
  if (fedrec_sa_decode(&m, msg, len, info->secagg.n, info->secagg.dim, &err)) return;
  size_t n = 0;
  if (m.type == FEDREC_SA_MSG_KEYS && !strcmp(hostile(), "equal-keys")) {
    memcpy(m.u.keys.s_pk, m.u.keys.c_pk, 32);
    n = fedrec_sa_encode_keys(msg, len, &m.u.keys);
  } else if (m.type == FEDREC_SA_MSG_KEYS && !strcmp(hostile(), "low-order")) {
    memset(m.u.keys.s_pk, 0, 32);
    n = fedrec_sa_encode_keys(msg, len, &m.u.keys);
  } else if (m.type == FEDREC_SA_MSG_BOXES && !strcmp(hostile(), "box-index") && m.u.boxes.count) {
    m.u.boxes.boxes[0].to = info->secagg.n + 7;
    n = fedrec_sa_encode_boxes(msg, len, &m.u.boxes);
  } else if (m.type == FEDREC_SA_MSG_BOXES && !strcmp(hostile(), "spoil-boxes")) {
    for (uint32_t a = 0; a < m.u.boxes.count; a++) m.u.boxes.boxes[a].data[20] ^= 1; /* opens for nobody */
    n = fedrec_sa_encode_boxes(msg, len, &m.u.boxes);
  }
  (void)n;
  fedrec_sa_msg_free(&m);
}
/* no-clip: instead of its gradient, an update of norm 1000 clips pointing one way, encoded
 * with the clip raised 10 000x (what steering the model takes) */
static fedrec_status hostile_participant(fedrec_participant **p, fedrec_round_info *info, const fedrec_model *m,
                                         fedrec_error *err) {
  int64_t dim = fedrec_model_params(m);
  float *u = malloc((size_t)dim * sizeof *u);
  if (!u) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "hostile update");
  for (int64_t i = 0; i < dim; i++) u[i] = (float)(1000 * info->ddp.clip / sqrt((double)dim));
  info->ddp.clip *= 10000;
  fedrec_status s = fedrec_participant_new_update(p, info, u, dim, NULL, err);
  free(u);
  return s;
}
#define HOSTILE_TAMPER(msg, len, info) tamper(msg, len, info)
#define HOSTILE_NEW(p, info, model, err) (!strcmp(hostile(), "no-clip") ? hostile_participant(p, info, model, err) : FEDREC_OK)
#define HOSTILE_ACTIVE() (!strcmp(hostile(), "no-clip"))
#else
#define HOSTILE_TAMPER(msg, len, info) ((void)(info))
#define HOSTILE_NEW(p, info, model, err) FEDREC_OK
#define HOSTILE_ACTIVE() 0
#endif

/* ---------------------------------------------------------------- sync */

static void backoff(fedrec_client *c, fedrec_sync_outcome *out, int failed) {
  char v[32] = "0";
  get_setting(c, "failures", v, sizeof v);
  int f = failed ? atoi(v) + 1 : 0;
  snprintf(v, sizeof v, "%d", f);
  put_setting(c, "failures", v);
  if (!failed) return;
  double base = 1000.0 * pow(2.0, f < 9 ? f : 9); /* 2 s .. 512 s (4.3 to 12.8 minutes with jitter) */
  uint32_t r = randombytes_uniform(1000);
  out->retry_after_ms = (uint32_t)(base * (0.5 + r / 1000.0));
}

static fedrec_status io_fail(fedrec_client *c, fedrec_sync_outcome *out, fedrec_error *err, const char *what,
                             grpc_status_code code, const char *details) {
  backoff(c, out, 1);
  out->failure = code == GRPC_STATUS_UNAUTHENTICATED || code == GRPC_STATUS_PERMISSION_DENIED ? FEDREC_SYNC_FAIL_AUTH
                                                                                              : FEDREC_SYNC_FAIL_NETWORK;
  char why[512];
  keep_reason(why, sizeof why, details);
  return fedrec_error_set(err, FEDREC_ERR_IO, "%s: %s: %s", what, code_name(code), why);
}

static void maybe_drop(fedrec_client *c, int phase) {
  if (c->drop_phase == phase) _exit(3); /* the simulated device vanishes mid-round */
  if (c->delay_ms) sleep_ms(c->delay_ms);
}

static grpc_status_code submit(fedrec_client *c, int method, uint64_t round, uint8_t *msg, size_t len, char *details,
                               size_t cap) {
  return fedrec_rpc_submit(c->ch, method, c->handles[method], c->token, round, msg, len, c->call_ms, details, cap);
}

fedrec_status fedrec_client_sync(fedrec_client *c, fedrec_sync_outcome *out, fedrec_error *err) {
  memset(out, 0, sizeof *out);
  fedrec_status s = connect_channel(c, err);
  if (s) {
    out->failure = FEDREC_SYNC_FAIL_CONFIG;
    return s;
  }
  int32_t *items = NULL, n = 0;
  float *w = NULL;
  if ((s = history(c, &items, &w, &n, err))) return s;
  uint64_t start = fedrec_clock_ms();
  char details[512];
  Fedrec__V1__CheckInRequest rq = FEDREC__V1__CHECK_IN_REQUEST__INIT;
  rq.model_version = c->model_version;
  rq.model_only = n == 0;
  Fedrec__V1__CheckInResponse *ci = NULL;
  grpc_status_code code = rpc(c, FEDREC_RPC_CHECK_IN, &rq.base, &fedrec__v1__check_in_response__descriptor,
                              (ProtobufCMessage **)&ci, details, sizeof details);
  if (code != GRPC_STATUS_OK) {
    free(items), free(w);
    return io_fail(c, out, err, "CheckIn", code, details);
  }
  s = ensure_model(c, ci->model, &out->resumed_at, start + c->sync_ms, err);
  out->model_version = c->model_version;
  out->round = ci->round;
  out->retry_after_ms = ci->retry_after_ms;
  int accepted = ci->accepted;
  if (ci->stopped_reason && ci->stopped_reason[0]) {
    /* unsigned: anyone on the path, or a coordinator with a full disk, can say it. So it is
     * news, not an order: the device comes back after a long, jittered wait (an hour) */
    out->result = FEDREC_SYNC_STOPPED;
    keep_reason(out->detail, sizeof out->detail, ci->stopped_reason);
    out->retry_after_ms = 1800000 + randombytes_uniform(3600000);
    accepted = 0;
  }
  protobuf_c_message_free_unpacked(&ci->base, NULL);
  if (s) {
    free(items), free(w);
    backoff(c, out, 1);
    /* a download that failed on the way is the network's; a model refused is not */
    out->failure = s == FEDREC_ERR_IO || s == FEDREC_ERR_NOMEM ? FEDREC_SYNC_FAIL_NETWORK
                 : s == FEDREC_ERR_ARG ? FEDREC_SYNC_FAIL_CONFIG : FEDREC_SYNC_FAIL_INTEGRITY;
    return s;
  }
  if (!accepted) {
    free(items), free(w);
    backoff(c, out, 0);
    return FEDREC_OK;
  }
  /* selected: wait for the round's parameters */
  fedrec_round_info info;
  fedrec_participant *p = NULL;
  fedrec_model model;
  int have_model = 0;
  out->result = FEDREC_SYNC_LEFT_OUT;
  for (;;) {
    Fedrec__V1__GetRoundInfoRequest q = FEDREC__V1__GET_ROUND_INFO_REQUEST__INIT;
    q.round = out->round;
    Fedrec__V1__GetRoundInfoResponse *r;
    code = rpc(c, FEDREC_RPC_GET_ROUND_INFO, &q.base, &fedrec__v1__get_round_info_response__descriptor,
               (ProtobufCMessage **)&r, details, sizeof details);
    if (code == GRPC_STATUS_FAILED_PRECONDITION) {
      keep_reason(out->detail, sizeof out->detail, details);
      goto left_out;
    }
    if (code != GRPC_STATUS_OK) {
      s = io_fail(c, out, err, "GetRoundInfo", code, details);
      goto done;
    }
    uint32_t retry = r->retry_after_ms;
    if (!retry) s = r->info ? fedrec_rpc_round_info_from_pb(&info, r->info, err)
                            : fedrec_error_set(err, FEDREC_ERR_PARSE, "round info missing");
    protobuf_c_message_free_unpacked(&r->base, NULL);
    if (s) goto done;
    if (!retry) break;
    if (fedrec_clock_ms() - start > c->sync_ms) goto timeout;
    sleep_ms(retry < 20 ? 20 : retry > 1000 ? 1000 : retry);
  }
  if (info.model_version != c->model_version) {
    s = fedrec_error_set(err, FEDREC_ERR_STATE, "round %llu trains model %llu, the cached one is %llu",
                         (unsigned long long)info.round, (unsigned long long)info.model_version,
                         (unsigned long long)c->model_version);
    goto done;
  }
  if ((s = cached_model(c, &model, err))) goto done;
  have_model = 1;
  maybe_drop(c, FEDREC_PHASE_KEYS);
  fedrec_round_info sent = info; /* the round as announced (the hostile build may change its copy) */
  if (HOSTILE_ACTIVE()) s = HOSTILE_NEW(&p, &info, &model, err);
  else s = fedrec_participant_new(&p, &info, &model, items, w, n, NULL, err);
  if (s) goto done;
  uint8_t *msg = NULL;
  size_t len = 0;
  if ((s = fedrec_participant_keys(p, &msg, &len, err))) goto done;
  HOSTILE_TAMPER(msg, len, &sent);
  code = submit(c, FEDREC_RPC_ADVERTISE_KEYS, info.round, msg, len, details, sizeof details);
  free(msg);
  if (code == GRPC_STATUS_FAILED_PRECONDITION) {
    keep_reason(out->detail, sizeof out->detail, details);
    goto left_out;
  }
  if (code != GRPC_STATUS_OK) {
    s = io_fail(c, out, err, "AdvertiseKeys", code, details);
    goto done;
  }
  static const int SUBMIT[] = {0, 0, FEDREC_RPC_SHARE_KEYS, FEDREC_RPC_SUBMIT_MASKED_INPUT, FEDREC_RPC_UNMASK};
  for (int ph = FEDREC_PHASE_SHARES; ph <= FEDREC_PHASE_UNMASK; ph++) {
    uint8_t *in = NULL;
    size_t inlen = 0;
    for (;;) {
      Fedrec__V1__GetPhaseInputRequest q = FEDREC__V1__GET_PHASE_INPUT_REQUEST__INIT;
      q.round = info.round;
      q.phase = (Fedrec__V1__Phase)ph;
      Fedrec__V1__GetPhaseInputResponse *r;
      code = rpc(c, FEDREC_RPC_GET_PHASE_INPUT, &q.base, &fedrec__v1__get_phase_input_response__descriptor,
                 (ProtobufCMessage **)&r, details, sizeof details);
      if (code == GRPC_STATUS_FAILED_PRECONDITION) {
        keep_reason(out->detail, sizeof out->detail, details);
        goto left_out;
      }
      if (code != GRPC_STATUS_OK) {
        s = io_fail(c, out, err, "GetPhaseInput", code, details);
        goto done;
      }
      uint32_t retry = r->retry_after_ms;
      if (!retry) {
        in = malloc(r->message.len ? r->message.len : 1);
        if (in) memcpy(in, r->message.data, r->message.len);
        inlen = r->message.len;
      }
      protobuf_c_message_free_unpacked(&r->base, NULL);
      if (!retry) break;
      if (fedrec_clock_ms() - start > c->sync_ms) goto timeout;
      sleep_ms(retry < 20 ? 20 : retry > 1000 ? 1000 : retry);
    }
    if (!in) {
      s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "phase input");
      goto done;
    }
    maybe_drop(c, ph);
    s = ph == FEDREC_PHASE_SHARES   ? fedrec_participant_shares(p, in, inlen, &msg, &len, err)
        : ph == FEDREC_PHASE_MASKED ? fedrec_participant_masked(p, in, inlen, &msg, &len, err)
                                    : fedrec_participant_unmask(p, in, inlen, &msg, &len, err);
    free(in);
    if (s) goto done; /* a check failed: this client stops answering, which is safe */
    HOSTILE_TAMPER(msg, len, &sent);
    code = submit(c, SUBMIT[ph], info.round, msg, len, details, sizeof details);
    free(msg);
    if (code == GRPC_STATUS_FAILED_PRECONDITION) {
    keep_reason(out->detail, sizeof out->detail, details);
    goto left_out;
  }
    if (code != GRPC_STATUS_OK) {
      s = io_fail(c, out, err, "submit", code, details);
      goto done;
    }
  }
  out->result = FEDREC_SYNC_PARTICIPATED;
  backoff(c, out, 0);
  goto done;
timeout:
  snprintf(out->detail, sizeof out->detail, "the round did not progress within %u ms", c->sync_ms);
left_out:
  out->result = FEDREC_SYNC_LEFT_OUT;
  backoff(c, out, 0);
done:
  if (s && !out->failure) out->failure = FEDREC_SYNC_FAIL_NETWORK; /* transient: retry after the backoff */
  fedrec_participant_free(p);
  if (have_model) fedrec_model_free(&model);
  if (items) sodium_memzero(items, (size_t)n * sizeof *items);
  free(items), free(w);
  if (!out->retry_after_ms) out->retry_after_ms = 1000 + randombytes_uniform(1000);
  return s;
}

/* ---------------------------------------------------------------- recommend */

fedrec_status fedrec_client_recommend(fedrec_client *c, int32_t k, char (*names)[64], float *scores, int32_t *n,
                                      fedrec_error *err) {
  *n = 0;
  if (k < 1) return fedrec_error_set(err, FEDREC_ERR_ARG, "recommend: k must be >= 1");
  fedrec_model m;
  fedrec_status s = cached_model(c, &m, err);
  if (s) return s;
  int32_t *items = NULL, nh = 0;
  float *w = NULL;
  if ((s = history(c, &items, &w, &nh, err))) {
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
