/* The catalogue as a served artefact (docs/CATALOGUE.md): the items in model order, their
 * frozen content embeddings, optional titles and withdrawn flags, encoded as one packed
 * fedrec.v1.Catalogue message and named by its BLAKE2b-256 hash, which every model signed
 * for it covers. The coordinator builds it from files and serves it; devices download it and
 * check it against the signed model before using it. Shared by the client library and the
 * coordinator (internal: not installed). */
#ifndef FEDREC_CATALOGUE_H
#define FEDREC_CATALOGUE_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/data.h"
#include "fedrec/round.h"

/* The largest encoding accepted (a 1 000 000-item catalogue at p = 1024 fits). */
#define FEDREC_CATALOGUE_MAX_BYTES ((uint64_t)6 << 30)

typedef struct fedrec_catalogue {
  uint64_t version;
  fedrec_dataset ds;  /* items (ids, in order), content (n x p), has_content; R.cols = n, no users */
  char **titles;      /* n strings (NULL: none), or NULL */
  uint8_t *withdrawn; /* n flags, or NULL */
  uint8_t *blocked;   /* n flags (the operator's block list), or NULL */
  int32_t n_groups;   /* availability sets: group g (name groups[g], names increasing) holds */
  char **groups;      /* items gitems[gstart[g] .. gstart[g + 1]), increasing */
  int32_t *gstart, *gitems;
  uint8_t *restricted; /* n flags: the item is in some availability set (derived, not encoded), or NULL */
  char source[512];
  int bits;           /* how the encoding stores content: 32 (0), 16 or 8 (see catalogue.proto) */
  uint8_t *blob;      /* the encoding (after fedrec_catalogue_encode or _decode) */
  size_t len;
  uint8_t hash[32];
} fedrec_catalogue;

static inline int32_t fedrec_catalogue_items(const fedrec_catalogue *c) { return c->ds.R.cols; }
static inline fedrec_catalogue_ref fedrec_catalogue_name(const fedrec_catalogue *c) {
  fedrec_catalogue_ref r;
  r.version = c->version;
  for (int i = 0; i < 32; i++) r.hash[i] = c->hash[i];
  return r;
}

/* Builds a catalogue (version 1, not yet encoded) from a setting:
 *   synthetic[:k=v,...]          the built-in generator's items (fedrec_synth_parse)
 *   npy:EMB.npy,IDS.txt[,TITLES] a float32/float64 .npy matrix, one id per line (row k is
 *                                line k), titles as lines "id<TAB>title"
 *   csv:CONTENT.csv[,TITLES]     a content CSV item,f1,...,fp (its rows in order)
 *   movielens:DIR[,dim=P]        the items fedrec-sim's movielens: loader keeps (ratings >= 4),
 *                                their derived content (P = 64) and movies.csv titles
 *   lastfm:DIR[,dim=P]           likewise for Last.fm (artists.dat names)
 * Every embedding is checked finite, every id unique; errors name the file and line. */
fedrec_status fedrec_catalogue_load(fedrec_catalogue *c, const char *spec, fedrec_error *err);

/* Stores the content in `bits` (32, 16 or 8): rounds it in memory to exactly what a device
 * decoding the compact form gets (fedrec_content_quantize), so the coordinator trains on the
 * values devices see. Half or a quarter of the bytes to download and keep; no Recall@20 lost
 * on MovieLens or Last.fm (docs/CATALOGUE.md). */
fedrec_status fedrec_catalogue_set_precision(fedrec_catalogue *c, int bits, fedrec_error *err);

/* Encodes c into c->blob and hashes it. */
fedrec_status fedrec_catalogue_encode(fedrec_catalogue *c, fedrec_error *err);

/* Decodes and checks an encoding (hostile input: sizes against the length before allocating,
 * ids unique and 1..FEDREC_MAX_ID_LEN bytes, embeddings finite, flags 0 or 1); c keeps a
 * copy of the bytes and their hash. */
fedrec_status fedrec_catalogue_decode(fedrec_catalogue *c, const uint8_t *b, size_t n, fedrec_error *err);
/* The same, for bytes the caller keeps (a device's store, a download buffer): c keeps no copy
 * of them (blob NULL, len n), only their hash. */
fedrec_status fedrec_catalogue_decode_stored(fedrec_catalogue *c, const uint8_t *b, size_t n, fedrec_error *err);

/* Makes `next` (loaded from the updated files) the successor of `prev`: prev's items keep
 * their indices (those next lacks become withdrawn, with their old content), then next's new
 * items are appended in next's order. The content dimension may not change. *added and
 * *withdrawn count what changed (items withdrawn before are not counted again); next->version is prev's + 1 (the caller keeps prev when the
 * encodings are equal). */
fedrec_status fedrec_catalogue_follow(fedrec_catalogue *next, const fedrec_catalogue *prev, int32_t *added,
                                      int32_t *withdrawn, fedrec_error *err);

void fedrec_catalogue_free(fedrec_catalogue *c);

/* The operator's availability rules (docs/CATALOGUE.md "Availability"), read from files: the
 * groups each listed item is available in, and the blocked items. */
typedef struct fedrec_catalogue_rules {
  fedrec_idmap *items, *groups; /* the availability file's items (line order) and group names */
  int32_t *start, *group;       /* item k's groups: group[start[k] .. start[k + 1]) */
  fedrec_idmap *blocked;        /* the block list's ids */
} fedrec_catalogue_rules;

/* Reads the availability file (lines "item<TAB>group[,group...]") and the block list (one id
 * per line); "" for either: none. Errors name the file and line. */
fedrec_status fedrec_catalogue_rules_read(fedrec_catalogue_rules *r, const char *availability, const char *blocked,
                                          fedrec_error *err);
/* The same from file images (tests, fuzzing); NULL buffers: none. */
fedrec_status fedrec_catalogue_rules_parse(fedrec_catalogue_rules *r, const char *avail, int64_t alen, const char *aname,
                                           const char *blocked, int64_t blen, const char *bname, fedrec_error *err);
void fedrec_catalogue_rules_free(fedrec_catalogue_rules *r);

/* Makes r the rules of c's items (replacing any c had; encode again afterwards). Ids r names
 * that c lacks are skipped: *unknown counts them, the first is copied to first (cap bytes). */
fedrec_status fedrec_catalogue_apply_rules(fedrec_catalogue *c, const fedrec_catalogue_rules *r, int32_t *unknown,
                                           char *first, size_t cap, fedrec_error *err);

/* A device's groups: "" (none) or names separated by commas; 1 when well-formed. */
int fedrec_catalogue_groups_valid(const char *groups);
/* allowed[i] (n flags) = 1 when item i may be recommended on a device in `groups` (checked
 * well-formed): not withdrawn, not blocked, and listed in no availability set or in one of
 * the device's groups. Returns how many are allowed. */
int32_t fedrec_catalogue_allowed(const fedrec_catalogue *c, const char *groups, uint8_t *allowed);
/* Items blocked; items with any availability restriction (for logs). */
int32_t fedrec_catalogue_blocked_count(const fedrec_catalogue *c);
int32_t fedrec_catalogue_restricted_count(const fedrec_catalogue *c);

#endif
