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

/* The missing chunks of the model mi describes into buf (size bytes), after what an
 * interrupted download kept (*resumed_at: from where); each chunk is saved as it comes, so a
 * later sync resumes. Stops early when the header, once in, implies another size. */
static fedrec_status download(fedrec_client *c, const Fedrec__V1__ModelInfo *mi, uint8_t *buf, size_t size, uint64_t *resumed_at,
                              uint64_t deadline, fedrec_error *err) {
  char details[512];
  size_t have = resume_download(c, mi, buf, size);
  if (resumed_at) *resumed_at = have;
  while (have < size) {
    /* once the header is in: the size it implies must be the size claimed */
    if (have >= 32 && implied_size(c, buf) != size) break;
    if (fedrec_clock_ms() > deadline)
      return fedrec_error_set(err, FEDREC_ERR_IO, "GetModel: download deadline passed at byte %zu of %zu (resumes next sync)", have, size);
    Fedrec__V1__GetModelRequest rq = FEDREC__V1__GET_MODEL_REQUEST__INIT;
    rq.version = mi->version;
    rq.offset = have;
    rq.max_bytes = 1 << 20;
    Fedrec__V1__GetModelResponse *r;
    grpc_status_code code = fedrec__client_rpc(c, FEDREC_RPC_GET_MODEL, &rq.base, &fedrec__v1__get_model_response__descriptor,
                                               (ProtobufCMessage **)&r, details, sizeof details);
    if (code != GRPC_STATUS_OK) {
      fedrec__client_keep_reason(details, sizeof details, details);
      return fedrec_error_set(err, FEDREC_ERR_IO, "GetModel: %s: %s", code_name(code), details);
    }
    if (r->offset != have || r->chunk.len == 0 || r->chunk.len > size - have || (have == 0 && r->chunk.len < 32)) {
      protobuf_c_message_free_unpacked(&r->base, NULL);
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "GetModel: chunk at %zu of %zu bytes does not fit", have, size);
    }
    memcpy(buf + have, r->chunk.data, r->chunk.len);
    save_chunk(c, mi, size, have, r->chunk.data, r->chunk.len); /* an interrupted download resumes here */
    have += r->chunk.len;
    protobuf_c_message_free_unpacked(&r->base, NULL);
  }
  return FEDREC_OK;
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
  if (mi->version == c->model_version) return FEDREC_OK;
  if (mi->version < c->model_version)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "coordinator offers model %llu, older than the cached %llu: refused (rollback)",
                            (unsigned long long)mi->version, (unsigned long long)c->model_version);
  if (mi->blake2b_hash.len != 32 || mi->signature.len != 64 || mi->ledger_head.len != 32 || mi->size_bytes < 32)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator sent malformed model information");
  fedrec_status s = fedrec__client_load_catalogue(c, err);
  if (s) return s;
  /* the largest model this catalogue can have (d <= 4096, every item a free embedding) */
  uint64_t ni = (uint64_t)c->cat.R.cols, most = 32 + 4 * (ni + 4096 * ((uint64_t)c->cat.content_dim + ni));
  if (mi->size_bytes > most || mi->size_bytes > SIZE_MAX / 2)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator claims a %llu-byte model; %llu items of %d content dimensions allow %llu at most",
                            (unsigned long long)mi->size_bytes, (unsigned long long)ni, c->cat.content_dim, (unsigned long long)most);
  size_t size = (size_t)mi->size_bytes;
  uint8_t *buf = malloc(size);
  if (!buf) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model of %zu bytes", size);
  if ((s = download(c, mi, buf, size, resumed_at, deadline, err))) {
    free(buf);
    return s;
  }
  if (implied_size(c, buf) != size) {
    sqlite3_exec(c->db, "DELETE FROM download; DELETE FROM download_chunk", NULL, NULL, NULL);
    free(buf);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model %llu: its header does not fit the catalogue or the %zu bytes claimed: not used",
                            (unsigned long long)mi->version, size);
  }
  if (fedrec_model_verify(buf, size, mi->version, mi->blake2b_hash.data, mi->ledger_entries, mi->ledger_head.data, NULL,
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
    s = fedrec_model_decode(m, NULL, sqlite3_column_blob(st, 0), (size_t)sqlite3_column_bytes(st, 0), c->cat.content,
                            c->cat.content_dim, err);
  sqlite3_finalize(st);
  return s;
}
