/* Multimodal content (docs/MODEL.md "Multimodal content"): a data set's metadata as named
 * modalities, each a block of the content with its own normalisation and a mask for the items
 * that lack it. The model needs nothing else: a head over the blocks is one block H_m per
 * modality, v_i = sum_m H_m c_i^m + e_i. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "fedrec/model.h"
#include "internal.h"
#include "text.h"

fedrec_status fedrec_norm_parse(fedrec_norm *out, const char *s, fedrec_error *err) {
  if (!strcmp(s, "l2")) *out = FEDREC_NORM_L2;
  else if (!strcmp(s, "standard")) *out = FEDREC_NORM_STANDARD;
  else return fedrec_error_set(err, FEDREC_ERR_ARG, "modality normalisation '%s': expected l2 or standard", s);
  return FEDREC_OK;
}

void fedrec_modalities_normalise(fedrec_dataset *ds, fedrec_norm norm) {
  int32_t n = fedrec_idmap_size(ds->items), M = ds->n_modalities, p = ds->content_dim;
  for (int32_t m = 0; m < M; m++) {
    const fedrec_modality *md = &ds->modalities[m];
    double *mean = calloc((size_t)md->dim, sizeof *mean), total = 0;
    int32_t have = 0;
    for (int32_t i = 0; i < n; i++) have += ds->modality_mask[(size_t)i * M + m];
    for (int32_t i = 0; mean && norm == FEDREC_NORM_STANDARD && i < n; i++)
      for (int32_t j = 0; ds->modality_mask[(size_t)i * M + m] && j < md->dim; j++)
        mean[j] += ds->content[(size_t)i * p + md->offset + j] / have;
    for (int32_t pass = 0; pass < 2; pass++) /* standard: centre, then the mean norm; l2: each row */
      for (int32_t i = 0; i < n; i++) {
        float *x = ds->content + (size_t)i * p + md->offset;
        if (!ds->modality_mask[(size_t)i * M + m]) {
          memset(x, 0, (size_t)md->dim * sizeof *x);
          continue;
        }
        double s = 0;
        for (int32_t j = 0; j < md->dim; j++) {
          if (pass == 0 && mean && norm == FEDREC_NORM_STANDARD) x[j] = (float)(x[j] - mean[j]);
          s += (double)x[j] * x[j];
        }
        if (pass == 0 && norm == FEDREC_NORM_STANDARD) total += sqrt(s) / have;
        double scale = norm == FEDREC_NORM_L2 ? (s > 0 ? 1 / sqrt(s) : 0) : (total > 0 ? 1 / total : 0);
        if (pass == 1)
          for (int32_t j = 0; j < md->dim; j++) x[j] = (float)(x[j] * scale);
      }
    free(mean);
  }
}

/* The modalities a data set's metadata offers: name, token prefix, default dimension. */
typedef struct {
  const char *name, *prefix;
  int32_t dim;
} source;
static const source MOVIELENS[] = {{"genres", "genre:", 24}, {"tags", "tag:", 64}, {"title", "word:", 32}, {"year", "decade:", 8}};
static const source LASTFM[] = {{"tags", "tag:", 64}, {"names", "word:", 32}};

/* "name[:dim],..." into names and dims (0: the default). */
static fedrec_status parse_spec(const char *spec, char names[][FEDREC_MAX_MODALITY_NAME + 1], int32_t *dims, int32_t *n,
                                fedrec_error *err) {
  *n = 0;
  for (const char *p = spec; *p;) {
    const char *e = strchr(p, ','), *end = e ? e : p + strlen(p), *colon = memchr(p, ':', (size_t)(end - p));
    size_t len = (size_t)((colon ? colon : end) - p);
    if (*n == FEDREC_MAX_MODALITIES) return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities '%s': more than %d", spec, FEDREC_MAX_MODALITIES);
    if (len < 1 || len > FEDREC_MAX_MODALITY_NAME)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities '%s': a name of 1 to %d bytes expected", spec, FEDREC_MAX_MODALITY_NAME);
    memcpy(names[*n], p, len);
    names[*n][len] = 0;
    dims[*n] = 0;
    if (colon) {
      char *stop;
      long d = strtol(colon + 1, &stop, 10);
      if (stop != end || d < 1 || d > FEDREC_MAX_CONTENT_DIM)
        return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities '%s': %s's dimension is not a whole number in [1, %d]", spec,
                                names[*n], FEDREC_MAX_CONTENT_DIM);
      dims[*n] = (int32_t)d;
    }
    for (int32_t k = 0; k < *n; k++)
      if (!strcmp(names[k], names[*n])) return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities '%s': %s twice", spec, names[k]);
    (*n)++;
    if (!e) break;
    p = e + 1;
  }
  if (!*n) return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: none named");
  return FEDREC_OK;
}

/* The tokens of kind's files (every source's). */
static fedrec_status read_tokens(fedrec_tokens *t, fedrec_dataset *ds, int movielens, const char *dir, fedrec_error *err) {
  const char *files[2] = {movielens ? "movies.csv" : "user_taggedartists.dat", movielens ? "tags.csv" : "artists.dat"};
  fedrec_tok_parser parsers[2] = {movielens ? fedrec_parse_movielens_movies : fedrec_parse_lastfm_tags,
                                  movielens ? fedrec_parse_movielens_tags : fedrec_parse_lastfm_artists};
  return fedrec__tokens_read(t, ds->items, dir, files, parsers, 2, err);
}

fedrec_status fedrec_content_modalities(fedrec_dataset *ds, const char *kind, const char *dir, const char *spec, fedrec_norm norm,
                                        fedrec_error *err) {
  char names[FEDREC_MAX_MODALITIES][FEDREC_MAX_MODALITY_NAME + 1];
  int32_t dims[FEDREC_MAX_MODALITIES], M, p = 0, n = fedrec_idmap_size(ds->items);
  int movielens = !strcmp(kind, "movielens");
  const source *src = movielens ? MOVIELENS : LASTFM;
  int nsrc = movielens ? 4 : 2, which[FEDREC_MAX_MODALITIES];
  fedrec_status st = parse_spec(spec, names, dims, &M, err);
  for (int32_t m = 0; !st && m < M; m++) {
    which[m] = -1;
    for (int k = 0; k < nsrc; k++)
      if (!strcmp(names[m], src[k].name)) which[m] = k;
    if (which[m] < 0)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: %s has no modality '%s' (%s)", kind, names[m],
                              movielens ? "genres, tags, title, year" : "tags, names");
    if (!dims[m]) dims[m] = src[which[m]].dim;
    if ((p += dims[m]) > FEDREC_MAX_CONTENT_DIM)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities '%s': %d content dimensions in all, more than %d", spec, p,
                              FEDREC_MAX_CONTENT_DIM);
  }
  if (st) return st;
  fedrec_tokens *t = fedrec_tokens_new();
  float *C = calloc((size_t)n * p + 1, sizeof *C), *block = malloc((size_t)n * p * sizeof *block + 1);
  uint8_t *mask = calloc((size_t)n * M + 1, 1), *has = malloc((size_t)n + 1), *any = calloc((size_t)n + 1, 1);
  st = t && C && block && mask && has && any ? read_tokens(t, ds, movielens, dir, err)
                                             : fedrec_error_set(err, FEDREC_ERR_NOMEM, "content of %d items", n);
  if (!st) fedrec__tokens_mark(t, any); /* items with any of kind's modalities: one cold pool for every subset */
  for (int32_t m = 0, off = 0; !st && m < M; off += dims[m++]) {
    const char *prefixes[2] = {src[which[m]].prefix, NULL};
    fedrec_tokens *sub = fedrec_tokens_subset(t, prefixes);
    st = sub ? fedrec_tokens_tfidf(sub, n, dims[m], block, has, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "tokens");
    fedrec_tokens_free(sub);
    for (int32_t i = 0; !st && i < n; i++) {
      memcpy(C + (size_t)i * p + off, block + (size_t)i * dims[m], (size_t)dims[m] * sizeof *C);
      mask[(size_t)i * M + m] = has[i];
    }
    snprintf(ds->modalities[m].name, sizeof ds->modalities[m].name, "%.31s", names[m]);
    ds->modalities[m].offset = off, ds->modalities[m].dim = dims[m];
  }
  fedrec_tokens_free(t), free(block), free(has);
  if (st) {
    free(C), free(mask), free(any);
    ds->n_modalities = 0;
    return st;
  }
  free(ds->content), free(ds->has_content), free(ds->modality_mask);
  ds->content = C, ds->content_dim = p, ds->has_content = any, ds->modality_mask = mask, ds->n_modalities = M;
  fedrec_modalities_normalise(ds, norm);
  return FEDREC_OK;
}

fedrec_status fedrec_modalities_select(fedrec_dataset *ds, const char *spec, fedrec_norm norm, fedrec_error *err) {
  char names[FEDREC_MAX_MODALITIES][FEDREC_MAX_MODALITY_NAME + 1];
  int32_t dims[FEDREC_MAX_MODALITIES], M, keep[FEDREC_MAX_MODALITIES], K = 0, p = 0, n = fedrec_idmap_size(ds->items);
  fedrec_status st = parse_spec(spec, names, dims, &M, err);
  if (st) return st;
  if (!ds->n_modalities) return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: %s has one content source, not named ones", ds->name);
  for (int32_t m = 0; m < M; m++) {
    int found = 0;
    for (int32_t k = 0; k < ds->n_modalities; k++) found |= !strcmp(names[m], ds->modalities[k].name);
    if (!found) return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: %s has no modality '%s'", ds->name, names[m]);
    if (dims[m]) return fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: %s's dimension is the data set's (drop ':%d')", names[m], dims[m]);
  }
  for (int32_t k = 0; k < ds->n_modalities; k++)
    for (int32_t m = 0; m < M; m++)
      if (!strcmp(names[m], ds->modalities[k].name)) keep[K++] = k, p += ds->modalities[k].dim;
  float *C = malloc((size_t)n * p * sizeof *C + 1);
  uint8_t *mask = malloc((size_t)n * K + 1);
  if (!C || !mask) {
    free(C), free(mask);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "content of %d items", n);
  }
  fedrec_modality md[FEDREC_MAX_MODALITIES];
  for (int32_t j = 0, off = 0; j < K; off += md[j++].dim) md[j] = ds->modalities[keep[j]], md[j].offset = off;
  for (int32_t i = 0; i < n; i++)
    for (int32_t j = 0; j < K; j++) {
      memcpy(C + (size_t)i * p + md[j].offset, ds->content + (size_t)i * ds->content_dim + ds->modalities[keep[j]].offset,
             (size_t)md[j].dim * sizeof *C);
      mask[(size_t)i * K + j] = ds->modality_mask[(size_t)i * ds->n_modalities + keep[j]];
    }
  free(ds->content), free(ds->modality_mask);
  ds->content = C, ds->content_dim = p, ds->modality_mask = mask, ds->n_modalities = K;
  memcpy(ds->modalities, md, sizeof md[0] * (size_t)K);
  fedrec_modalities_normalise(ds, norm);
  return FEDREC_OK;
}

fedrec_status fedrec_parse_lastfm_artists(fedrec_tokens *t, fedrec_idmap *items, const char *buf, int64_t len, const char *name,
                                          fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line, f[5];
  fedrec_lines_init(&L, buf, len, name);
  if (!fedrec_lines_next(&L, &line) || line.n < 7 || memcmp(line.s, "id\tname", 7))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected header 'id\\tname\\turl\\tpictureURL'", name, (long long)L.line);
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    int k = fedrec_split(line, '\t', f, 4);
    if (k < 2 || k > 4 || !fedrec_field_is_id(f[0]))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected 'id<TAB>name<TAB>url<TAB>pictureURL'", name, (long long)L.line);
    int32_t i = fedrec_idmap_get(items, f[0].s, f[0].n, 0);
    fedrec_status st = i >= 0 ? fedrec__add_words(t, i, f[1], err) : FEDREC_OK;
    if (st) return st;
  }
  return FEDREC_OK;
}

void fedrec_modality_contributions(double *out, const fedrec_model *m, const fedrec_dataset *ds) {
  int32_t n = fedrec_idmap_size(ds->items), M = ds->n_modalities, p = ds->content_dim;
  for (int32_t k = 0; k < M; k++) {
    const fedrec_modality *md = &ds->modalities[k];
    double sum = 0;
    int32_t have = 0;
    for (int32_t i = 0; m->H && m->p == p && i < n; i++) {
      if (!ds->modality_mask[(size_t)i * M + k]) continue;
      const float *c = ds->content + (size_t)i * p + md->offset;
      double s2 = 0;
      for (int32_t r = 0; r < m->d; r++) {
        double v = 0;
        for (int32_t j = 0; j < md->dim; j++) v += (double)m->H[(size_t)r * p + md->offset + j] * c[j];
        s2 += v * v;
      }
      sum += sqrt(s2), have++;
    }
    out[k] = have ? sum / have : 0;
  }
}

int fedrec_modality_name_valid(const char *s) {
  size_t n = strlen(s);
  return n <= FEDREC_MAX_MODALITY_NAME && fedrec_group_name_valid(s, n);
}

fedrec_status fedrec_attach_modalities_npy(fedrec_dataset *ds, int32_t M, const char (*names)[FEDREC_MAX_MODALITY_NAME + 1],
                                           const char *const *npy, const char *const *ids, fedrec_norm norm, fedrec_error *err) {
  int32_t n = fedrec_idmap_size(ds->items), p = 0;
  fedrec_dataset part[FEDREC_MAX_MODALITIES];
  fedrec_status st = M >= 1 && M <= FEDREC_MAX_MODALITIES ? FEDREC_OK
                     : fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: %d given, 1 to %d allowed", M, FEDREC_MAX_MODALITIES);
  memset(part, 0, sizeof part);
  for (int32_t m = 0; !st && m < M; m++) {
    part[m].items = ds->items; /* borrowed */
    st = fedrec_attach_npy(&part[m], npy[m], ids[m], err);
    if (!st && (p += part[m].content_dim) > FEDREC_MAX_CONTENT_DIM)
      st = fedrec_error_set(err, FEDREC_ERR_ARG, "modalities: %d content dimensions in all, more than %d", p, FEDREC_MAX_CONTENT_DIM);
  }
  float *C = st ? NULL : malloc((size_t)n * p * sizeof *C + 1);
  uint8_t *mask = st ? NULL : malloc((size_t)n * M + 1), *any = st ? NULL : calloc((size_t)n + 1, 1);
  if (!st && (!C || !mask || !any)) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "content of %d items", n);
  for (int32_t m = 0, off = 0; !st && m < M; off += part[m++].content_dim) {
    int32_t pm = part[m].content_dim;
    for (int32_t i = 0; i < n; i++) {
      memcpy(C + (size_t)i * p + off, part[m].content + (size_t)i * pm, (size_t)pm * sizeof *C);
      mask[(size_t)i * M + m] = part[m].has_content[i];
      any[i] |= part[m].has_content[i];
    }
    snprintf(ds->modalities[m].name, sizeof ds->modalities[m].name, "%.31s", names[m]);
    ds->modalities[m].offset = off, ds->modalities[m].dim = pm;
  }
  for (int32_t m = 0; m < M; m++) part[m].items = NULL, fedrec_dataset_free(&part[m]);
  if (st) {
    free(C), free(mask), free(any);
    return st;
  }
  free(ds->content), free(ds->has_content), free(ds->modality_mask);
  ds->content = C, ds->content_dim = p, ds->has_content = any, ds->modality_mask = mask, ds->n_modalities = M;
  fedrec_modalities_normalise(ds, norm);
  return FEDREC_OK;
}

/* path as given, or relative to the list file's folder (dir, with its '/'). */
static int resolve(char *out, size_t cap, const char *dir, const char *path, size_t n) {
  int w = path[0] == '/' ? snprintf(out, cap, "%.*s", (int)n, path) : snprintf(out, cap, "%s%.*s", dir, (int)n, path);
  return w > 0 && (size_t)w < cap;
}

fedrec_status fedrec_content_modality_list(fedrec_dataset *ds, const char *rest, int add_items, char *titles_out, size_t cap,
                                           fedrec_error *err) {
  char names[FEDREC_MAX_MODALITIES][FEDREC_MAX_MODALITY_NAME + 1], npy[FEDREC_MAX_MODALITIES][512], ids[FEDREC_MAX_MODALITIES][512];
  char titles[512] = "", norm_s[16] = "l2", dir[512] = "";
  if (cap) titles_out[0] = 0;
  int32_t M = 0, line = 0;
  char *list = NULL;
  int64_t blen = 0;
  const char *slash = strrchr(rest, '/');
  if (slash && (size_t)(slash - rest + 1) < sizeof dir) memcpy(dir, rest, (size_t)(slash - rest + 1)), dir[slash - rest + 1] = 0;
  fedrec_status st = fedrec_read_file(rest, &list, &blen, err);
  for (const char *p = list, *end = list + blen; !st && p < end; line++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p)), *le = nl ? nl : end, *f[4] = {0};
    size_t fl[4] = {0};
    int nf = 0;
    if (le > p && le[-1] == '\r') le--;
    for (const char *q = p; nf < 4;) {
      const char *t = memchr(q, '\t', (size_t)(le - q));
      f[nf] = q, fl[nf++] = (size_t)((t ? t : le) - q);
      if (!t) break;
      q = t + 1;
    }
    p = nl ? nl + 1 : end;
    if (le == f[0]) continue; /* a blank line */
    char key[64];
    snprintf(key, sizeof key, "%.*s", (int)(fl[0] < 63 ? fl[0] : 63), f[0]);
    if (nf == 2 && !strcmp(key, "titles")) {
      if (!resolve(titles, sizeof titles, dir, f[1], fl[1])) st = fedrec_error_set(err, FEDREC_ERR_ARG, "%s:%d: path too long", rest, line + 1);
    } else if (nf == 2 && !strcmp(key, "norm") && fl[1] < sizeof norm_s) {
      memcpy(norm_s, f[1], fl[1]), norm_s[fl[1]] = 0;
    } else if (nf != 3 || fl[0] > FEDREC_MAX_MODALITY_NAME || !fedrec_modality_name_valid(key)) {
      st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%d: expected 'NAME<TAB>EMB.npy<TAB>IDS.txt' (a name of 1 to %d bytes of A-Z a-z 0-9 _ . -), "
                            "'titles<TAB>FILE' or 'norm<TAB>l2|standard'", rest, line + 1, FEDREC_MAX_MODALITY_NAME);
    } else if (M == FEDREC_MAX_MODALITIES) {
      st = fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s:%d: more than %d modalities", rest, line + 1, FEDREC_MAX_MODALITIES);
    } else if (!resolve(npy[M], sizeof npy[M], dir, f[1], fl[1]) || !resolve(ids[M], sizeof ids[M], dir, f[2], fl[2])) {
      st = fedrec_error_set(err, FEDREC_ERR_ARG, "%s:%d: path too long", rest, line + 1);
    } else {
      memcpy(names[M], key, strlen(key) + 1);
      for (int32_t k = 0; k < M && !st; k++)
        if (!strcmp(names[k], names[M])) st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%d: modality %s twice", rest, line + 1, key);
      M++;
    }
  }
  free(list);
  fedrec_norm norm = FEDREC_NORM_L2;
  if (!st && !M) st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: no modality (lines NAME<TAB>EMB.npy<TAB>IDS.txt)", rest);
  if (!st) st = fedrec_norm_parse(&norm, norm_s, err);
  const char *npyp[FEDREC_MAX_MODALITIES], *idsp[FEDREC_MAX_MODALITIES];
  for (int32_t m = 0; !st && m < M; m++) { /* a catalogue's items: every list's ids, in order */
    char *buf = NULL;
    int64_t len = 0;
    fedrec_idmap *one = add_items ? fedrec_idmap_new() : NULL;
    if (add_items) st = one ? fedrec_read_file(ids[m], &buf, &len, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "modalities");
    if (add_items && !st) st = fedrec_parse_id_list(one, buf, len, ids[m], err);
    for (int32_t k = 0; add_items && !st && k < fedrec_idmap_size(one); k++) {
      const char *id = fedrec_idmap_name(one, k);
      if (fedrec_idmap_get(ds->items, id, strlen(id), 1) < 0) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "modality ids");
    }
    free(buf), fedrec_idmap_free(one);
    npyp[m] = npy[m], idsp[m] = ids[m];
  }
  if (!st) st = fedrec_attach_modalities_npy(ds, M, names, npyp, idsp, norm, err);
  if (!st && cap) snprintf(titles_out, cap, "%s", titles);
  return st;
}
