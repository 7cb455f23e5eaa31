/* Interaction loaders: generic CSV, MovieLens ratings.csv, Last.fm user_artists.dat,
 * and the dataset assembly around them. All parsers work on an in-memory buffer so that
 * the fuzz targets exercise exactly the code the file loaders run. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fedrec/content.h"
#include "fedrec/data.h"
#include "text.h"

fedrec_status fedrec_read_file(const char *path, char **buf, int64_t *len, fedrec_error *err) {
  *buf = NULL;
  *len = 0;
  FILE *f = fopen(path, "rb");
  if (!f) return fedrec_error_set(err, FEDREC_ERR_IO, "%s: cannot open for reading: %s", path, strerror(errno));
  struct stat st;
  if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
    fclose(f);
    return fedrec_error_set(err, FEDREC_ERR_IO, "%s: not a regular file", path);
  }
  if ((int64_t)st.st_size > FEDREC_MAX_FILE_BYTES) {
    fclose(f);
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s: %lld bytes, more than the %lld-byte cap",
                            path, (long long)st.st_size, (long long)FEDREC_MAX_FILE_BYTES);
  }
  char *b = malloc((size_t)st.st_size + 1);
  if (!b) {
    fclose(f);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: reading %lld bytes", path,
                            (long long)st.st_size);
  }
  size_t got = fread(b, 1, (size_t)st.st_size, f);
  int bad = ferror(f);
  fclose(f);
  if (bad || got != (size_t)st.st_size) {
    free(b);
    return fedrec_error_set(err, FEDREC_ERR_IO, "%s: short read (%zu of %lld bytes)", path, got,
                            (long long)st.st_size);
  }
  b[got] = '\0';
  *buf = b;
  *len = (int64_t)got;
  return FEDREC_OK;
}

/* Looks up or adds an id field; reports a bad id with file:line. */
static fedrec_status map_id(fedrec_idmap *m, fedrec_field f, const fedrec_lines *L,
                            const char *what, int32_t *out, fedrec_error *err) {
  char show[200];
  if (!fedrec_field_is_id(f))
    return fedrec_error_set(err, FEDREC_ERR_PARSE,
                            "%s:%lld: %s id '%s' must be 1 to %d bytes without control characters",
                            L->name, (long long)L->line, what, fedrec_field_show(f, show, sizeof show),
                            FEDREC_MAX_ID_LEN);
  int32_t i = fedrec_idmap_get(m, f.s, f.n, 1);
  if (i < 0)
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s:%lld: cannot add %s id", L->name,
                            (long long)L->line, what);
  *out = i;
  return FEDREC_OK;
}

static int field_eq(fedrec_field f, const char *s) {
  return f.n == strlen(s) && memcmp(f.s, s, f.n) == 0;
}

/* Checks that the first line is exactly the expected header (a UTF-8 BOM is allowed). */
static fedrec_status expect_header(fedrec_lines *L, char sep, const char *const *names,
                                   int min, int max, int *ncols, fedrec_error *err) {
  fedrec_field line, f[8];
  if (!fedrec_lines_next(L, &line))
    return fedrec_error_set(err, FEDREC_ERR_EMPTY, "%s: empty file, expected a header line",
                            L->name);
  if (line.n >= 3 && memcmp(line.s, "\xEF\xBB\xBF", 3) == 0) {
    line.s += 3;
    line.n -= 3;
  }
  int n = fedrec_split(line, sep, f, 8);
  int ok = n >= min && n <= max;
  for (int k = 0; ok && k < n; k++) ok = field_eq(f[k], names[k]);
  if (!ok) {
    char want[200] = "", show[200];
    for (int k = 0; k < max; k++) {
      if (k) strncat(want, sep == '\t' ? "\\t" : ",", sizeof want - strlen(want) - 1);
      strncat(want, names[k], sizeof want - strlen(want) - 1);
    }
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:1: expected header '%s'%s, found '%s'",
                            L->name, want, min < max ? " (last column optional)" : "",
                            fedrec_field_show(line, show, sizeof show));
  }
  *ncols = n;
  return FEDREC_OK;
}

/* One delimited interactions format: its header, columns and value rule. */
typedef struct {
  char sep;
  const char *const *header; /* column names; the value column is header[2] */
  int min_cols, max_cols;    /* min_cols == 2: no value column */
  const char *item_name;     /* for messages: "item", "movie", "artist" */
  const char *value_rule;    /* for messages */
  double lo, hi;             /* accepted value range; lo_open: lo itself is rejected */
  int lo_open, integer;
  double keep_at_least;      /* rows with a smaller value are read but not kept */
  int keep_value;            /* push the value, or 1 */
} delimited_spec;

static fedrec_status bad_value(fedrec_error *err, const fedrec_lines *L, const char *what,
                               fedrec_field f, const char *rule) {
  char show[200];
  return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: %s '%s' is not %s", L->name,
                          (long long)L->line, what, fedrec_field_show(f, show, sizeof show), rule);
}

static fedrec_status parse_delimited(fedrec_triplets *out, fedrec_idmap *users,
                                     fedrec_idmap *items, const char *buf, int64_t len,
                                     const char *name, const delimited_spec *sp,
                                     fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line, f[8];
  int ncols = 0;
  fedrec_lines_init(&L, buf, len, name);
  fedrec_status st = expect_header(&L, sp->sep, sp->header, sp->min_cols, sp->max_cols, &ncols, err);
  if (st) return st;
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    int n = fedrec_split(line, sp->sep, f, ncols);
    if (n != ncols) {
      char want[200] = "";
      for (int k = 0; k < ncols; k++) {
        if (k) strncat(want, ",", sizeof want - strlen(want) - 1);
        strncat(want, sp->header[k], sizeof want - strlen(want) - 1);
      }
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected %d %s-separated fields (%s), found %d",
                              name, (long long)L.line, ncols, sp->sep == '\t' ? "tab" : "comma",
                              want, n > ncols ? ncols + 1 : n);
    }
    double v = 1.0;
    if (ncols >= 3) {
      int64_t iv;
      int ok = sp->integer ? fedrec_field_i64(f[2], &iv) : fedrec_field_double(f[2], &v);
      if (ok && sp->integer) v = (double)iv;
      if (!ok || v < sp->lo || v > sp->hi || (sp->lo_open && v == sp->lo))
        return bad_value(err, &L, sp->header[2], f[2], sp->value_rule);
    }
    int32_t u, i;
    /* Ids are mapped even for rows that are not kept, so that they stay stable; the
     * dataset later drops users and items without interactions. */
    if ((st = map_id(users, f[0], &L, "user", &u, err))) return st;
    if ((st = map_id(items, f[1], &L, sp->item_name, &i, err))) return st;
    if (v >= sp->keep_at_least &&
        (st = fedrec_triplets_push(out, u, i, sp->keep_value ? (float)v : 1.0f, err)))
      return st;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_parse_interactions_csv(fedrec_triplets *out, fedrec_idmap *users,
                                            fedrec_idmap *items, const char *buf, int64_t len,
                                            const char *name, fedrec_error *err) {
  static const char *const hdr[] = {"user", "item", "weight"};
  static const delimited_spec sp = {',', hdr, 2, 3, "item", "a finite number > 0",
                                    0, 1e30, 1, 0, 0, 1};
  return parse_delimited(out, users, items, buf, len, name, &sp, err);
}

fedrec_status fedrec_parse_movielens_ratings(fedrec_triplets *out, fedrec_idmap *users,
                                             fedrec_idmap *items, double threshold,
                                             const char *buf, int64_t len, const char *name,
                                             fedrec_error *err) {
  static const char *const hdr[] = {"userId", "movieId", "rating", "timestamp"};
  delimited_spec sp = {',', hdr, 4, 4, "movie", "a number in [0, 10]", 0, 10, 0, 0, threshold, 0};
  return parse_delimited(out, users, items, buf, len, name, &sp, err);
}

fedrec_status fedrec_parse_lastfm_user_artists(fedrec_triplets *out, fedrec_idmap *users,
                                               fedrec_idmap *items, const char *buf,
                                               int64_t len, const char *name,
                                               fedrec_error *err) {
  static const char *const hdr[] = {"userID", "artistID", "weight"};
  static const delimited_spec sp = {'\t', hdr, 3, 3, "artist", "an integer play count >= 1",
                                    1, (double)((int64_t)1 << 40), 0, 1, 0, 1};
  return parse_delimited(out, users, items, buf, len, name, &sp, err);
}

void fedrec_confidence_log(fedrec_csr *R, float alpha, float eps) {
  int64_t nnz = fedrec_csr_nnz(R);
  for (int64_t k = 0; k < nnz; k++) R->values[k] = 1.0f + alpha * log1pf(R->values[k] / eps);
}

fedrec_status fedrec_weights_parse(fedrec_weights *w, const char *spec, fedrec_error *err) {
  *w = (fedrec_weights){FEDREC_WEIGHTS_AUTO, 10.0f};
  if (!strcmp(spec, "auto")) return FEDREC_OK;
  if (!strcmp(spec, "raw")) return w->kind = FEDREC_WEIGHTS_RAW, FEDREC_OK;
  if (!strcmp(spec, "binary")) return w->kind = FEDREC_WEIGHTS_BINARY, FEDREC_OK;
  if (!strncmp(spec, "log", 3) && (spec[3] == 0 || spec[3] == ':')) {
    w->kind = FEDREC_WEIGHTS_LOG;
    if (!spec[3]) return FEDREC_OK;
    char *end;
    double s = strtod(spec + 4, &end);
    if (end == spec + 4 || *end || !(s > 0 && s <= 1e9))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "weights 'log:%.40s': the scale must be a number in (0, 1e9]", spec + 4);
    w->scale = (float)s;
    return FEDREC_OK;
  }
  return fedrec_error_set(err, FEDREC_ERR_ARG, "weights '%.40s': expected raw, binary, log[:S] or auto", spec);
}

int fedrec_weights_look_like_counts(const fedrec_csr *R) {
  int64_t nnz = fedrec_csr_nnz(R);
  int above = 0;
  for (int64_t k = 0; k < nnz; k++) {
    float v = R->values[k];
    if (v != floorf(v)) return 0;
    above |= v > 1;
  }
  return above;
}

fedrec_weights fedrec_weights_apply(fedrec_csr *R, const fedrec_weights *w) {
  fedrec_weights done = *w;
  if (done.kind == FEDREC_WEIGHTS_AUTO)
    done.kind = fedrec_weights_look_like_counts(R) ? FEDREC_WEIGHTS_LOG : FEDREC_WEIGHTS_RAW;
  int64_t nnz = fedrec_csr_nnz(R);
  if (done.kind == FEDREC_WEIGHTS_BINARY)
    for (int64_t k = 0; k < nnz; k++) R->values[k] = 1.0f;
  else if (done.kind == FEDREC_WEIGHTS_LOG)
    fedrec_confidence_log(R, 1.0f, done.scale);
  return done;
}

void fedrec_dataset_free(fedrec_dataset *ds) {
  if (!ds) return;
  fedrec_idmap_free(ds->users);
  fedrec_idmap_free(ds->items);
  fedrec_csr_free(&ds->R);
  free(ds->content);
  free(ds->has_content);
  free(ds->modality_mask);
  memset(ds, 0, sizeof *ds);
}

/* Drops users and items without any interaction (e.g. MovieLens movies rated only below
 * the threshold) and re-numbers the rest densely, keeping their order. */
static fedrec_status compact(fedrec_dataset *ds, fedrec_triplets *t, fedrec_error *err) {
  int32_t nu = fedrec_idmap_size(ds->users), ni = fedrec_idmap_size(ds->items);
  int32_t *umap = malloc(((size_t)nu + 1) * sizeof *umap);
  int32_t *imap = malloc(((size_t)ni + 1) * sizeof *imap);
  fedrec_idmap *users = fedrec_idmap_new(), *items = fedrec_idmap_new();
  fedrec_status st = FEDREC_OK;
  if (!umap || !imap || !users || !items) {
    st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "compacting ids");
    goto done;
  }
  for (int32_t i = 0; i < nu; i++) umap[i] = -1;
  for (int32_t i = 0; i < ni; i++) imap[i] = -1;
  for (int64_t k = 0; k < t->n; k++) umap[t->r[k]] = imap[t->c[k]] = 0;
  for (int32_t i = 0; i < nu; i++)
    if (umap[i] == 0) {
      const char *s = fedrec_idmap_name(ds->users, i);
      umap[i] = fedrec_idmap_get(users, s, strlen(s), 1);
    }
  for (int32_t i = 0; i < ni; i++)
    if (imap[i] == 0) {
      const char *s = fedrec_idmap_name(ds->items, i);
      imap[i] = fedrec_idmap_get(items, s, strlen(s), 1);
    }
  for (int64_t k = 0; k < t->n; k++) {
    t->r[k] = umap[t->r[k]];
    t->c[k] = imap[t->c[k]];
  }
  fedrec_idmap_free(ds->users);
  fedrec_idmap_free(ds->items);
  ds->users = users;
  ds->items = items;
  users = items = NULL;
done:
  free(umap);
  free(imap);
  fedrec_idmap_free(users);
  fedrec_idmap_free(items);
  return st;
}

/* Finishes a dataset from its triplets: compact ids, build the CSR. */
static fedrec_status finish(fedrec_dataset *ds, fedrec_triplets *t, const char *src,
                            fedrec_error *err) {
  if (t->n == 0)
    return fedrec_error_set(err, FEDREC_ERR_EMPTY, "%s: no interactions", src);
  fedrec_status st = compact(ds, t, err);
  if (st) return st;
  return fedrec_csr_from_triplets(&ds->R, fedrec_idmap_size(ds->users),
                                  fedrec_idmap_size(ds->items), t, err);
}

static fedrec_status new_maps(fedrec_dataset *ds, const char *name, fedrec_error *err) {
  memset(ds, 0, sizeof *ds);
  snprintf(ds->name, sizeof ds->name, "%s", name);
  ds->users = fedrec_idmap_new();
  ds->items = fedrec_idmap_new();
  if (!ds->users || !ds->items) {
    fedrec_dataset_free(ds);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "allocating id maps");
  }
  return FEDREC_OK;
}

typedef fedrec_status (*parse_fn)(fedrec_triplets *, fedrec_dataset *, const char *, int64_t,
                                  const char *, const void *, fedrec_error *);

/* Reads path, parses it with fn into a new dataset called name. */
static fedrec_status load_with(fedrec_dataset *ds, const char *name, const char *path,
                               parse_fn fn, const void *arg, fedrec_error *err) {
  char *buf;
  int64_t len;
  fedrec_triplets t = {0};
  fedrec_status st = new_maps(ds, name, err);
  if (st) return st;
  if ((st = fedrec_read_file(path, &buf, &len, err))) goto fail;
  st = fn(&t, ds, buf, len, path, arg, err);
  free(buf);
  if (!st) st = finish(ds, &t, path, err);
fail:
  fedrec_triplets_free(&t);
  if (st) fedrec_dataset_free(ds);
  return st;
}

static fedrec_status p_csv(fedrec_triplets *t, fedrec_dataset *ds, const char *b, int64_t n,
                           const char *path, const void *arg, fedrec_error *err) {
  (void)arg;
  return fedrec_parse_interactions_csv(t, ds->users, ds->items, b, n, path, err);
}
static fedrec_status p_ml(fedrec_triplets *t, fedrec_dataset *ds, const char *b, int64_t n,
                          const char *path, const void *arg, fedrec_error *err) {
  return fedrec_parse_movielens_ratings(t, ds->users, ds->items, *(const double *)arg, b, n,
                                        path, err);
}
static fedrec_status p_lfm(fedrec_triplets *t, fedrec_dataset *ds, const char *b, int64_t n,
                           const char *path, const void *arg, fedrec_error *err) {
  (void)arg;
  return fedrec_parse_lastfm_user_artists(t, ds->users, ds->items, b, n, path, err);
}

fedrec_status fedrec_load_csv(fedrec_dataset *ds, const char *path, fedrec_error *err) {
  return load_with(ds, "csv", path, p_csv, NULL, err);
}

fedrec_status fedrec_load_movielens(fedrec_dataset *ds, const char *dir, double threshold,
                                    int32_t content_dim, fedrec_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/ratings.csv", dir);
  fedrec_status st = load_with(ds, "movielens", path, p_ml, &threshold, err);
  if (st || content_dim <= 0) return st;
  if ((st = fedrec_content_movielens(ds, dir, content_dim, err))) fedrec_dataset_free(ds);
  return st;
}

fedrec_status fedrec_load_lastfm(fedrec_dataset *ds, const char *dir, int32_t content_dim,
                                 fedrec_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/user_artists.dat", dir);
  fedrec_status st = load_with(ds, "lastfm", path, p_lfm, NULL, err);
  if (st) return st;
  /* Play counts span 1 to 10^5: a log keeps heavy listening from drowning the rest. */
  fedrec_confidence_log(&ds->R, 1.0f, 10.0f);
  if (content_dim <= 0) return FEDREC_OK;
  if ((st = fedrec_content_lastfm(ds, dir, content_dim, err))) fedrec_dataset_free(ds);
  return st;
}
