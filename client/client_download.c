/* The signed model on the device: downloaded in chunks (an interrupted download resumes where
 * it stopped), checked against the catalogue's shape, its hash and the coordinator's
 * signature before it is used, stored in one transaction; refused when older than the cached
 * one (a rollback). */
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

#define code_name fedrec_rpc_code_name

/* The exact encoded size a model header implies, or 0 when the header does not fit this
 * device's catalogue (items, content dimensions) or the decoder's limits (core/model_blob.c). */
static uint64_t implied_size(const fedrec_client *c, const uint8_t *h, size_t n) {
  uint32_t n_items = 0, p = 0;
  uint64_t size = fedrec_model_implied_size(h, n, &n_items, &p);
  if (!size || (int64_t)n_items != fedrec_catalogue_items(&c->cat) || (p && (int32_t)p != c->cat.ds.content_dim)) return 0;
  return size;
}

/* What is downloaded: the model or the catalogue, each with its own RPC and its own tables
 * for a partial download (TABLE: id 1, version, size, hash[, sig]; TABLE_chunk: offset, data). */
typedef struct artefact {
  const char *what, *table; /* "model", "download"; "catalogue", "catalogue_download" */
  int method;               /* FEDREC_RPC_GET_MODEL or FEDREC_RPC_GET_CATALOGUE */
  uint64_t version;
  const uint8_t *hash, *sig; /* sig: the model's (NULL: none) */
} artefact;

static void discard_partial(fedrec_client *c, const artefact *a) {
  char sql[200];
  snprintf(sql, sizeof sql, "DELETE FROM %s; DELETE FROM %s_chunk", a->table, a->table);
  sqlite3_exec(c->db, sql, NULL, NULL, NULL);
}

/* A partial download of this artefact (same version, size and hash) into buf: how many bytes
 * (contiguous chunks from 0); any other partial download is discarded. */
static size_t resume_download(fedrec_client *c, const artefact *a, uint8_t *buf, size_t size) {
  sqlite3_stmt *st;
  char sql[200];
  int same = 0;
  snprintf(sql, sizeof sql, "SELECT version, size, hash FROM %s WHERE id = 1", a->table);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
    same = sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) == a->version &&
           (uint64_t)sqlite3_column_int64(st, 1) == size && sqlite3_column_bytes(st, 2) == 32 &&
           !memcmp(sqlite3_column_blob(st, 2), a->hash, 32);
    sqlite3_finalize(st);
  }
  size_t have = 0;
  snprintf(sql, sizeof sql, "SELECT offset, data FROM %s_chunk ORDER BY offset", a->table);
  if (same && sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
    while (sqlite3_step(st) == SQLITE_ROW) {
      size_t off = (size_t)sqlite3_column_int64(st, 0), n = (size_t)sqlite3_column_bytes(st, 1);
      if (off != have || n == 0 || n > size - have) break; /* a gap or an overrun: keep what is contiguous */
      memcpy(buf + have, sqlite3_column_blob(st, 1), n);
      have += n;
    }
    sqlite3_finalize(st);
  }
  if (!same) discard_partial(c, a);
  return have;
}

/* Records a downloaded chunk: the first one writes the download's identity, each appends. */
static void save_chunk(fedrec_client *c, const artefact *a, size_t size, size_t off, const uint8_t *data, size_t n) {
  sqlite3_stmt *st;
  char sql[200];
  if (a->sig) snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s VALUES(1, ?, ?, ?, ?, x'')", a->table);
  else snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s VALUES(1, ?, ?, ?)", a->table);
  if (off == 0 && sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)a->version);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)size);
    sqlite3_bind_blob(st, 3, a->hash, 32, SQLITE_STATIC);
    if (a->sig) sqlite3_bind_blob(st, 4, a->sig, 64, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
  snprintf(sql, sizeof sql, "INSERT OR REPLACE INTO %s_chunk VALUES(?, ?)", a->table);
  if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)off);
    sqlite3_bind_blob64(st, 2, data, n, SQLITE_STATIC);
    sqlite3_step(st);
    sqlite3_finalize(st);
  }
}

/* One chunk from `offset`: the response (free with protobuf_c_message_free_unpacked) and
 * where its offset and bytes are. */
static grpc_status_code fetch_chunk(fedrec_client *c, const artefact *a, size_t offset, ProtobufCMessage **resp, uint64_t *roff,
                                    ProtobufCBinaryData *chunk, char *details, size_t cap) {
  grpc_status_code code;
  if (a->method == FEDREC_RPC_GET_MODEL) {
    Fedrec__V1__GetModelRequest rq = FEDREC__V1__GET_MODEL_REQUEST__INIT;
    rq.version = a->version, rq.offset = offset, rq.max_bytes = 1 << 20;
    code = fedrec__client_rpc(c, a->method, &rq.base, &fedrec__v1__get_model_response__descriptor, resp, details, cap);
    if (code == GRPC_STATUS_OK) *roff = ((Fedrec__V1__GetModelResponse *)*resp)->offset, *chunk = ((Fedrec__V1__GetModelResponse *)*resp)->chunk;
  } else {
    Fedrec__V1__GetCatalogueRequest rq = FEDREC__V1__GET_CATALOGUE_REQUEST__INIT;
    rq.version = a->version, rq.offset = offset, rq.max_bytes = 1 << 20;
    code = fedrec__client_rpc(c, a->method, &rq.base, &fedrec__v1__get_catalogue_response__descriptor, resp, details, cap);
    if (code == GRPC_STATUS_OK)
      *roff = ((Fedrec__V1__GetCatalogueResponse *)*resp)->offset, *chunk = ((Fedrec__V1__GetCatalogueResponse *)*resp)->chunk;
  }
  return code;
}

/* The missing chunks of artefact a into buf (size bytes), after what an interrupted download
 * kept (*resumed_at: from where); each chunk is saved as it comes, so a later sync resumes.
 * For the model: stops early when the header, once in, implies another size. */
static fedrec_status download(fedrec_client *c, const artefact *a, uint8_t *buf, size_t size, uint64_t *resumed_at,
                              uint64_t deadline, fedrec_error *err) {
  char details[512];
  const char *rpc = fedrec_rpc_path(a->method) + strlen("/fedrec.v1.CoordinatorService/");
  size_t have = resume_download(c, a, buf, size);
  if (resumed_at) *resumed_at = have;
  while (have < size) {
    /* once the header is in: the size it implies must be the size claimed */
    if (a->sig && have >= 36 && implied_size(c, buf, have) != size) break; /* 36: the longest header */
    if (fedrec_clock_ms() > deadline)
      return fedrec_error_set(err, FEDREC_ERR_IO, "%s: download deadline passed at byte %zu of %zu (resumes next sync)", rpc, have, size);
    ProtobufCMessage *r;
    uint64_t off = 0;
    ProtobufCBinaryData chunk;
    grpc_status_code code = fetch_chunk(c, a, have, &r, &off, &chunk, details, sizeof details);
    if (code != GRPC_STATUS_OK) {
      fedrec__client_keep_reason(details, sizeof details, details);
      return fedrec_error_set(err, FEDREC_ERR_IO, "%s: %s: %s", rpc, code_name(code), details);
    }
    if (off != have || chunk.len == 0 || chunk.len > size - have || (a->sig && have == 0 && chunk.len < 32)) {
      protobuf_c_message_free_unpacked(r, NULL);
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: chunk at %zu of %zu bytes does not fit", rpc, have, size);
    }
    memcpy(buf + have, chunk.data, chunk.len);
    save_chunk(c, a, size, have, chunk.data, chunk.len); /* an interrupted download resumes here */
    have += chunk.len;
    protobuf_c_message_free_unpacked(r, NULL);
  }
  return FEDREC_OK;
}

/* The checked catalogue becomes the device's, replacing the one it had, in one transaction. */
static fedrec_status store_catalogue(fedrec_client *c, const fedrec_catalogue *cat, const uint8_t *b, size_t n, fedrec_error *err) {
  sqlite3_stmt *st;
  int ok = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
  if (ok && sqlite3_prepare_v2(c->db, "INSERT OR REPLACE INTO catalogue VALUES(1, ?, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)cat->version);
    sqlite3_bind_blob(st, 2, cat->hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob64(st, 3, b, n, SQLITE_STATIC);
    ok = sqlite3_step(st) == SQLITE_DONE;
    sqlite3_finalize(st);
  } else {
    ok = 0;
  }
  ok = ok && sqlite3_exec(c->db, "DELETE FROM catalogue_download; DELETE FROM catalogue_download_chunk", NULL, NULL, NULL) == SQLITE_OK &&
       sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
  if (ok) return FEDREC_OK;
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return fedrec__client_dberr(err, c, "saving the catalogue");
}

/* Makes the device's catalogue the one ci names (the signed model's): kept when it is that one,
 * else downloaded (resuming a partial download), checked against the hash, decoded and
 * checked, and stored. An older version than the device's is refused (a rollback). The whole
 * file is fetched on a change: see docs/CATALOGUE.md. */
static fedrec_status ensure_catalogue(fedrec_client *c, const Fedrec__V1__CatalogueInfo *ci, uint64_t deadline, fedrec_error *err) {
  if (ci->blake2b_hash.len != 32 || ci->version < 1)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator sent malformed catalogue information");
  fedrec_error quiet;
  if (!fedrec__client_load_catalogue(c, &quiet) && c->cat_stored) {
    if (c->cat.version == ci->version && !memcmp(c->cat.hash, ci->blake2b_hash.data, 32)) return FEDREC_OK;
    if (ci->version <= c->cat.version)
      return fedrec_error_set(err, FEDREC_ERR_STATE, "coordinator offers catalogue %llu, not newer than the device's %llu: refused (rollback)",
                              (unsigned long long)ci->version, (unsigned long long)c->cat.version);
  }
  uint64_t most = c->max_catalogue < FEDREC_CATALOGUE_MAX_BYTES ? c->max_catalogue : FEDREC_CATALOGUE_MAX_BYTES;
  if (ci->size_bytes < 1 || ci->size_bytes > most || ci->size_bytes > SIZE_MAX / 2)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator claims a %llu-byte catalogue (this device takes at most %llu: "
                            "max_catalogue_mb)", (unsigned long long)ci->size_bytes, (unsigned long long)most);
  size_t size = (size_t)ci->size_bytes;
  uint8_t *buf = malloc(size), h[32];
  if (!buf) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue of %zu bytes", size);
  artefact a = {"catalogue", "catalogue_download", FEDREC_RPC_GET_CATALOGUE, ci->version, ci->blake2b_hash.data, NULL};
  fedrec_status s = download(c, &a, buf, size, NULL, deadline, err);
  if (!s) fedrec_hash2(h, buf, size, NULL, 0);
  if (!s && memcmp(h, ci->blake2b_hash.data, 32)) {
    discard_partial(c, &a);
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue %llu fails its hash check: not used", (unsigned long long)ci->version);
  }
  fedrec_catalogue cat;
  if (!s && !(s = fedrec_catalogue_decode_stored(&cat, buf, size, err))) { /* buf is what is stored */
    if (cat.version != ci->version)
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue %llu says it is version %llu: not used", (unsigned long long)ci->version,
                           (unsigned long long)cat.version);
    if (!s) s = store_catalogue(c, &cat, buf, size, err);
    /* the download's chunks are gone: give their pages back to the device (a catalogue is the
     * store's largest part, and changes rarely) */
    if (!s) sqlite3_exec(c->db, "VACUUM", NULL, NULL, NULL);
    if (!s) {
      if (c->have_cat) fedrec_catalogue_free(&c->cat);
      c->cat = cat, c->have_cat = 1, c->cat_stored = 1;
    } else {
      fedrec_catalogue_free(&cat);
    }
  }
  free(buf);
  return s;
}

/* The checked model becomes the cached one, and the partial download goes, in one
 * transaction. */
static fedrec_status store_model(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, const uint8_t *buf, size_t size,
                                 fedrec_error *err) {
  sqlite3_stmt *st;
  int ok = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK;
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
  if (ok) return FEDREC_OK;
  sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
  return fedrec__client_dberr(err, c, "saving the model");
}

/* Makes the cached model `mi`: downloads what is missing (resuming a partial download of the
 * same version), verifies hash and signature, and stores it in one transaction. Refuses a
 * version older than the cached one (a rollback), a size the catalogue's shape cannot have
 * and a header that disagrees with the size, before allocating for it; gives up at
 * `deadline` (monotonic ms). */
fedrec_status fedrec__client_ensure_model(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, uint64_t *resumed_at,
                                          uint64_t deadline, fedrec_error *err) {
  if (!mi) return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator sent no model information");
  if (mi->version == c->model_version) /* the catalogue too: the stored one may have been found damaged */
    return mi->catalogue ? ensure_catalogue(c, mi->catalogue, deadline, err) : FEDREC_OK;
  if (mi->version < c->model_version)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "coordinator offers model %llu, older than the cached %llu: refused (rollback)",
                            (unsigned long long)mi->version, (unsigned long long)c->model_version);
  if (mi->blake2b_hash.len != 32 || mi->signature.len != 64 || mi->ledger_head.len != 32 || mi->size_bytes < 32)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator sent malformed model information");
  fedrec_status s = mi->catalogue ? ensure_catalogue(c, mi->catalogue, deadline, err) : fedrec__client_load_catalogue(c, err);
  if (s) return s;
  /* the largest model this catalogue can have (d <= 4096, every item a free embedding, popularity) */
  uint64_t ni = (uint64_t)fedrec_catalogue_items(&c->cat), most = 36 + 4 * (2 * ni + 4096 * ((uint64_t)c->cat.ds.content_dim + ni));
  if (mi->size_bytes > most || mi->size_bytes > SIZE_MAX / 2)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator claims a %llu-byte model; %llu items of %d content dimensions allow %llu at most",
                            (unsigned long long)mi->size_bytes, (unsigned long long)ni, c->cat.ds.content_dim, (unsigned long long)most);
  size_t size = (size_t)mi->size_bytes;
  uint8_t *buf = malloc(size);
  if (!buf) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model of %zu bytes", size);
  artefact a = {"model", "download", FEDREC_RPC_GET_MODEL, mi->version, mi->blake2b_hash.data, mi->signature.data};
  if ((s = download(c, &a, buf, size, resumed_at, deadline, err))) {
    free(buf);
    return s;
  }
  if (implied_size(c, buf, size) != size) {
    discard_partial(c, &a);
    free(buf);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu: its header does not fit the catalogue or the %zu bytes claimed: not used",
                            (unsigned long long)mi->version, size);
  }
  fedrec_catalogue_ref cref = fedrec_catalogue_name(&c->cat);
  if (fedrec_model_verify(buf, size, mi->version, mi->blake2b_hash.data, mi->ledger_entries, mi->ledger_head.data,
                          mi->catalogue ? &cref : NULL,
                           mi->signature.data, c->pk)) {
    discard_partial(c, &a);
    free(buf);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu fails its hash or signature check: not used",
                            (unsigned long long)mi->version);
  }
  fedrec_model m;
  uint64_t ver = 0;
  s = fedrec_model_decode(&m, &ver, buf, size, c->cat.ds.content, c->cat.ds.content_dim, err);
  if (!s) {
    fedrec_error why = {0};
    int bad = ver != mi->version || m.n_items != fedrec_catalogue_items(&c->cat) || fedrec_model_check_modalities(&m, &c->cat.ds, &why);
    fedrec_model_free(&m);
    if (bad)
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu does not fit the catalogue%s%s", (unsigned long long)mi->version,
                           why.msg[0] ? ": " : "", why.msg);
  }
  if (!s) s = store_model(c, mi, buf, size, err);
  free(buf);
  if (s) return s;
  c->model_version = mi->version;
  return FEDREC_OK;
}

/* The cached model, decoded. */
fedrec_status fedrec__client_cached_model(fedrec_client *c, fedrec_model *m, fedrec_error *err) {
  fedrec_status s = fedrec__client_load_catalogue(c, err);
  if (s) return s;
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(c->db, "SELECT blob FROM model WHERE id = 1", -1, &st, NULL) != SQLITE_OK) return fedrec__client_dberr(err, c, "model");
  if (sqlite3_step(st) != SQLITE_ROW) s = fedrec_error_set(err, FEDREC_ERR_EMPTY, "no model yet: sync first");
  else
    s = fedrec_model_decode(m, NULL, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), c->cat.ds.content,
                            c->cat.ds.content_dim, err);
  sqlite3_finalize(st);
  if (!s && (s = fedrec_model_check_modalities(m, &c->cat.ds, err))) fedrec_model_free(m);
  return s;
}
