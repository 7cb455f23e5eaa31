/* Frozen content embeddings: the output of a pretrained audio/video/text encoder for each
 * item, loaded from .npy or CSV, or derived from the metadata a dataset ships. */
#ifndef FEDREC_CONTENT_H
#define FEDREC_CONTENT_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/data.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Parses a .npy file image: format 1.0/2.0/3.0, descr '<f4' or '<f8', C order, 2-D.
 * *data is malloc'ed (rows x cols float32, row-major); the caller frees it. */
fedrec_status fedrec_parse_npy(const char *buf, int64_t len, const char *name, int64_t *rows,
                               int64_t *cols, float **data, fedrec_error *err);

/* Parses an item-id list: one id per line (blank lines not allowed). Appends to ids in
 * order; a duplicated id is an error. */
fedrec_status fedrec_parse_id_list(fedrec_idmap *ids, const char *buf, int64_t len,
                                   const char *name, fedrec_error *err);

/* Parses an availability file (docs/CATALOGUE.md "Availability"): lines
 * `item<TAB>group[,group...]`, an item at most once, each group 1..FEDREC_MAX_GROUP_LEN bytes
 * of [A-Za-z0-9_.-]. Line k's item is index k of items; its groups (indices of groups, each
 * line's sorted and unique) are group[start[k] .. start[k + 1]) (*start and *group malloc'ed).
 * Errors name the file and line. */
#define FEDREC_MAX_GROUP_LEN 64
fedrec_status fedrec_parse_availability(fedrec_idmap *items, fedrec_idmap *groups, int32_t **start,
                                        int32_t **group, const char *buf, int64_t len,
                                        const char *name, fedrec_error *err);
/* 1 when s[0..n) is a valid group name. */
int fedrec_group_name_valid(const char *s, size_t n);

/* Content CSV `item,f1,...,fp` (header line required, first column named `item`).
 * Rows are assigned to the dataset's items by id; ids the dataset lacks are skipped. */
fedrec_status fedrec_parse_content_csv(fedrec_dataset *ds, const char *buf, int64_t len,
                                       const char *name, int32_t *skipped, fedrec_error *err);

/* Attaches content embeddings to ds from a .npy matrix plus an id list (row k of the
 * matrix belongs to line k of the list), or from a content CSV. Items of ds with no row
 * get has_content = 0 and a zero vector. */
fedrec_status fedrec_attach_npy(fedrec_dataset *ds, const char *npy_path, const char *ids_path,
                                fedrec_error *err);
fedrec_status fedrec_attach_content_csv(fedrec_dataset *ds, const char *path, fedrec_error *err);

/* Hashed TF-IDF features: tokens per item -> p dimensions (signed feature hashing),
 * weight log(1 + tf) * log(N / df), rows L2-normalised. */
typedef struct fedrec_tokens fedrec_tokens;
fedrec_tokens *fedrec_tokens_new(void);
void fedrec_tokens_free(fedrec_tokens *t);
fedrec_status fedrec_tokens_add(fedrec_tokens *t, int32_t item, const char *tok, size_t len,
                                fedrec_error *err);
/* out is (n_items, p), has is n_items flags; both caller-allocated. */
fedrec_status fedrec_tokens_tfidf(const fedrec_tokens *t, int32_t n_items, int32_t p, float *out,
                                  uint8_t *has, fedrec_error *err);

/* Content features from MovieLens movies.csv (genres, release decade) and tags.csv, and
 * from Last.fm user_taggedartists.dat (artist tags); parsers on buffers for fuzzing. */
fedrec_status fedrec_parse_movielens_movies(fedrec_tokens *t, fedrec_idmap *items,
                                            const char *buf, int64_t len, const char *name,
                                            fedrec_error *err);
fedrec_status fedrec_parse_movielens_tags(fedrec_tokens *t, fedrec_idmap *items,
                                          const char *buf, int64_t len, const char *name,
                                          fedrec_error *err);
fedrec_status fedrec_parse_lastfm_tags(fedrec_tokens *t, fedrec_idmap *items, const char *buf,
                                       int64_t len, const char *name, fedrec_error *err);
fedrec_status fedrec_content_movielens(fedrec_dataset *ds, const char *dir, int32_t p,
                                       fedrec_error *err);
fedrec_status fedrec_content_lastfm(fedrec_dataset *ds, const char *dir, int32_t p,
                                    fedrec_error *err);

/* Multimodal content (docs/MODEL.md "Multimodal content"): each modality its own block of the
 * content, normalised on its own, a missing one zero and masked. */
typedef enum fedrec_norm {
  FEDREC_NORM_L2 = 0,       /* each present block scaled to unit norm */
  FEDREC_NORM_STANDARD = 1, /* each column centred over the items that have the modality, then
                             * the block scaled so that its mean norm over them is 1 */
} fedrec_norm;
/* "l2" or "standard". */
fedrec_status fedrec_norm_parse(fedrec_norm *out, const char *s, fedrec_error *err);
/* ds's content from its data set's metadata as named modalities: spec "name[:dim],..." of
 * those kind offers (movielens: genres 24, tags 64, title 32, year 8; lastfm: tags 64,
 * names 32), each a hashed TF-IDF block of its own tokens (dir holds the data set's files). */
fedrec_status fedrec_content_modalities(fedrec_dataset *ds, const char *kind, const char *dir, const char *spec,
                                        fedrec_norm norm, fedrec_error *err);
/* Keeps only the modalities spec names ("name,..." in any order; ds's order is kept), dropping
 * the others' columns; then normalises each block. */
fedrec_status fedrec_modalities_select(fedrec_dataset *ds, const char *spec, fedrec_norm norm, fedrec_error *err);
/* 1 when s is a modality name: 1 to FEDREC_MAX_MODALITY_NAME bytes of [A-Za-z0-9_.-]. */
int fedrec_modality_name_valid(const char *s);
/* ds's content (its items already named in ds->items) from one .npy matrix and id list per
 * modality (npy[m], ids[m]: row k of the matrix is line k of the list; ids ds lacks are
 * skipped, items a list lacks get a zero, masked block), normalised as norm says. */
fedrec_status fedrec_attach_modalities_npy(fedrec_dataset *ds, int32_t M, const char (*names)[FEDREC_MAX_MODALITY_NAME + 1],
                                           const char *const *npy, const char *const *ids, fedrec_norm norm, fedrec_error *err);
/* A modality list file (the catalogue's modalities:LIST, fedrec-sim --modality-list): lines
 * "NAME<TAB>EMB.npy<TAB>IDS.txt" (one per modality, in column order), "titles<TAB>FILE",
 * "norm<TAB>l2|standard"; paths relative to the list's folder; errors name the file and line.
 * ds's content from it (fedrec_attach_modalities_npy). add_items: the ids the lists name are
 * added to ds->items first (a catalogue: the first list's order, then ids new in the next);
 * else ds's items stay and ids it lacks are skipped. titles_out gets the titles path, or "". */
fedrec_status fedrec_content_modality_list(fedrec_dataset *ds, const char *path, int add_items, char *titles_out, size_t cap,
                                           fedrec_error *err);
/* Normalises each block of ds's content as norm says; missing blocks stay zero. has_content
 * stays what the data set offers (an item with any of its modalities, chosen or not), so
 * that every subset of modalities is measured on the same cold items. */
void fedrec_modalities_normalise(fedrec_dataset *ds, fedrec_norm norm);
/* out[m] = the mean over the items having modality m of |H_m c_i^m| (what the head makes of
 * each modality: large for informative ones, near 0 for one the training found useless). */
struct fedrec_model;
void fedrec_modality_contributions(double *out, const struct fedrec_model *m, const fedrec_dataset *ds);
/* Last.fm artists.dat: the words of each artist's name, as "word:" tokens. */
fedrec_status fedrec_parse_lastfm_artists(fedrec_tokens *t, fedrec_idmap *items, const char *buf, int64_t len,
                                          const char *name, fedrec_error *err);
/* A token set with only the tokens starting with one of prefixes (NULL-terminated). */
fedrec_tokens *fedrec_tokens_subset(const fedrec_tokens *t, const char *const *prefixes);

/* Rounds content embeddings (n x p) to what a device would store: bits 16 (IEEE half
 * precision), 8 (int8 times one power-of-two step per item, fedrec_int8_step of the row's
 * largest |value|: exact to decode, and rounding again changes nothing) or 32 (as they are).
 * fedrec-sim --content-precision measures what it costs; the catalogue stores it so. */
fedrec_status fedrec_content_quantize(float *C, int64_t n, int32_t p, int bits, fedrec_error *err);
/* IEEE half floats (round to nearest even) by the CPU's conversion instructions; FEDREC_ERR_ARG
 * on an x86 CPU without F16C. */
fedrec_status fedrec_half_from_float(uint16_t *out, const float *in, size_t n, fedrec_error *err);
fedrec_status fedrec_half_to_float(float *out, const uint16_t *in, size_t n, fedrec_error *err);
/* The least power of two s with most <= 127 s (0 for most <= 0). */
float fedrec_int8_step(float most);

/* Display titles, for people: MovieLens movies.csv (its title column), Last.fm artists.dat
 * (the artist's name), or lines "id<TAB>title" (no header). titles (one slot per item of
 * `items`) gets a malloc'ed copy for every listed item (control bytes become spaces; cut to
 * FEDREC_MAX_TITLE_LEN bytes); ids not in `items` are skipped. */
#define FEDREC_MAX_TITLE_LEN 200
typedef enum { FEDREC_TITLES_MOVIELENS, FEDREC_TITLES_LASTFM, FEDREC_TITLES_TSV } fedrec_titles_format;
fedrec_status fedrec_parse_titles(char **titles, fedrec_idmap *items, fedrec_titles_format format,
                                  const char *buf, int64_t len, const char *name, fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
