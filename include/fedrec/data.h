/* Interaction data: id maps, sparse matrices, datasets and their loaders.
 *
 * Ownership: a fedrec_dataset owns everything it points to; fedrec_dataset_free releases it.
 * Every loader validates its input at the boundary and reports bad input as
 * "FILE:LINE: what was expected" in the fedrec_error; nothing behind it re-checks. */
#ifndef FEDREC_DATA_H
#define FEDREC_DATA_H

#include <stdint.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Caps on untrusted input, checked before anything is allocated for it. */
#define FEDREC_MAX_FILE_BYTES ((int64_t)4 << 30) /* one input file */
#define FEDREC_MAX_ID_LEN 256                     /* one user or item id */
#define FEDREC_MAX_ENTITIES ((int64_t)INT32_MAX - 1)
#define FEDREC_MAX_CONTENT_DIM 65536

/* String id -> dense index in [0, size), in order of first appearance. */
typedef struct fedrec_idmap fedrec_idmap;
fedrec_idmap *fedrec_idmap_new(void);
void fedrec_idmap_free(fedrec_idmap *m);
/* Index of key; with create, adds it if absent. Returns -1 if absent (and !create),
 * -2 when out of memory or the map is full. */
int32_t fedrec_idmap_get(fedrec_idmap *m, const char *key, size_t len, int create);
int32_t fedrec_idmap_size(const fedrec_idmap *m);
const char *fedrec_idmap_name(const fedrec_idmap *m, int32_t idx);

/* Compressed sparse rows. Column indices are sorted and unique within a row. */
typedef struct fedrec_csr {
  int32_t rows, cols;
  int64_t *indptr;  /* rows + 1 */
  int32_t *indices; /* nnz */
  float *values;    /* nnz */
} fedrec_csr;

static inline int64_t fedrec_csr_nnz(const fedrec_csr *m) {
  return m->indptr ? m->indptr[m->rows] : 0;
}
void fedrec_csr_free(fedrec_csr *m);
fedrec_status fedrec_csr_transpose(fedrec_csr *out, const fedrec_csr *in, fedrec_error *err);

/* A growable list of (row, col, value) triplets. */
typedef struct fedrec_triplets {
  int32_t *r, *c;
  float *v;
  int64_t n, cap;
} fedrec_triplets;
fedrec_status fedrec_triplets_push(fedrec_triplets *t, int32_t r, int32_t c, float v,
                                   fedrec_error *err);
void fedrec_triplets_free(fedrec_triplets *t);
/* Builds a CSR; a duplicated (row, col) keeps the largest value. */
fedrec_status fedrec_csr_from_triplets(fedrec_csr *out, int32_t rows, int32_t cols,
                                       const fedrec_triplets *t, fedrec_error *err);

/* One content source of a multimodal catalogue (a video, an audio or a text encoder's
 * embedding; a data set's genres or tags): columns offset .. offset + dim of the content. */
#define FEDREC_MAX_MODALITIES 8
#define FEDREC_MAX_MODALITY_NAME 31
typedef struct fedrec_modality {
  char name[FEDREC_MAX_MODALITY_NAME + 1];
  int32_t offset, dim;
} fedrec_modality;

typedef struct fedrec_dataset {
  char name[64];
  fedrec_idmap *users, *items;
  fedrec_csr R;          /* users x items; values are confidence weights (>= 1 by default) */
  float *content;        /* (n_items, content_dim) row-major, or NULL */
  int32_t content_dim;
  uint8_t *has_content;  /* n_items flags: 1 when the item has a content embedding */
  /* 0: content is one source; else its named blocks, in column order (docs/MODEL.md
   * "Multimodal content"), and modality_mask (n_items x n_modalities) says which an item has
   * (a missing one is a zero block) */
  int32_t n_modalities;
  fedrec_modality modalities[FEDREC_MAX_MODALITIES];
  uint8_t *modality_mask;
} fedrec_dataset;

void fedrec_dataset_free(fedrec_dataset *ds);

/* Generic CSV with header `user,item` or `user,item,weight` (weight > 0, finite).
 * If `users`/`items` are given they are shared (for a split given as several files). */
fedrec_status fedrec_parse_interactions_csv(fedrec_triplets *out, fedrec_idmap *users,
                                            fedrec_idmap *items, const char *buf, int64_t len,
                                            const char *name, fedrec_error *err);
/* MovieLens ratings.csv: header userId,movieId,rating,timestamp; keeps rating >= threshold
 * as an implicit positive of weight 1. */
fedrec_status fedrec_parse_movielens_ratings(fedrec_triplets *out, fedrec_idmap *users,
                                             fedrec_idmap *items, double threshold,
                                             const char *buf, int64_t len, const char *name,
                                             fedrec_error *err);
/* Last.fm HetRec user_artists.dat: header userID\tartistID\tweight, CRLF or LF;
 * the play count is kept raw (see fedrec_confidence_log). */
fedrec_status fedrec_parse_lastfm_user_artists(fedrec_triplets *out, fedrec_idmap *users,
                                               fedrec_idmap *items, const char *buf,
                                               int64_t len, const char *name,
                                               fedrec_error *err);

/* Turns raw counts into confidence weights w = 1 + alpha * log(1 + count / eps). */
void fedrec_confidence_log(fedrec_csr *R, float alpha, float eps);

/* How the weights of an interaction file become iALS confidences (`--weights`):
 *   raw     as given (already confidences);
 *   binary  1 for every interaction;
 *   log:S   1 + log(1 + w / S) (play counts; S = 10 when not given, as the Last.fm loader);
 *   auto    log:10 when the weights look like counts (fedrec_weights_look_like_counts), else raw.
 * Raw play counts used as confidences let heavy listening drown the rest: on Last.fm, Recall@20
 * falls from 0.30 to 0.18 (docs/DATA.md). */
typedef enum { FEDREC_WEIGHTS_AUTO, FEDREC_WEIGHTS_RAW, FEDREC_WEIGHTS_BINARY, FEDREC_WEIGHTS_LOG } fedrec_weights_kind;
typedef struct fedrec_weights {
  fedrec_weights_kind kind;
  float scale; /* log: S */
} fedrec_weights;
/* "raw", "binary", "log", "log:S" (S > 0), "auto"; FEDREC_ERR_ARG says what is wrong. */
fedrec_status fedrec_weights_parse(fedrec_weights *w, const char *spec, fedrec_error *err);
/* 1 when the values look like raw counts: some above 1, every one a whole number. */
int fedrec_weights_look_like_counts(const fedrec_csr *R);
/* Applies w to R's values (auto decided on R itself); returns what was applied (never AUTO). */
fedrec_weights fedrec_weights_apply(fedrec_csr *R, const fedrec_weights *w);

/* Reads a whole file into memory (NUL-terminated, size capped by FEDREC_MAX_FILE_BYTES). */
fedrec_status fedrec_read_file(const char *path, char **buf, int64_t *len, fedrec_error *err);

/* Dataset loaders. content_dim > 0 derives hashed TF-IDF content features from what the
 * dataset ships (MovieLens genres, tags and release decade; Last.fm artist tags). */
fedrec_status fedrec_load_movielens(fedrec_dataset *ds, const char *dir, double threshold,
                                    int32_t content_dim, fedrec_error *err);
fedrec_status fedrec_load_lastfm(fedrec_dataset *ds, const char *dir, int32_t content_dim,
                                 fedrec_error *err);
fedrec_status fedrec_load_csv(fedrec_dataset *ds, const char *path, fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
