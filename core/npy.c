/* .npy reader, item-id lists and content CSV: attaching an encoder's embeddings to items. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "text.h"

/* Finds `'key':` in the header dict and returns a pointer just after the colon. */
static const char *dict_value(const char *h, size_t n, const char *key) {
  size_t kn = strlen(key);
  for (size_t i = 0; i + kn + 2 < n; i++)
    if (h[i] == '\'' && memcmp(h + i + 1, key, kn) == 0 && h[i + 1 + kn] == '\'') {
      size_t j = i + kn + 2;
      while (j < n && h[j] == ' ') j++;
      if (j < n && h[j] == ':') return h + j + 1;
    }
  return NULL;
}

static const char *skip_sp(const char *p, const char *end) {
  while (p < end && *p == ' ') p++;
  return p;
}

static int parse_shape(const char *p, const char *end, int64_t *rows, int64_t *cols) {
  p = skip_sp(p, end);
  if (p >= end || *p != '(') return 0;
  p++;
  int64_t dims[2];
  int nd = 0;
  for (;;) {
    p = skip_sp(p, end);
    if (p < end && *p == ')') break;
    if (nd == 2 || p >= end || *p < '0' || *p > '9') return 0;
    int64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9') {
      if (v > ((int64_t)1 << 40)) return 0;
      v = v * 10 + (*p++ - '0');
    }
    dims[nd++] = v;
    p = skip_sp(p, end);
    if (p < end && *p == ',') p++;
  }
  if (nd != 2) return 0;
  *rows = dims[0];
  *cols = dims[1];
  return 1;
}

fedrec_status fedrec_parse_npy(const char *buf, int64_t len, const char *name, int64_t *rows,
                               int64_t *cols, float **data, fedrec_error *err) {
  *data = NULL;
  if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: not a .npy file (missing \\x93NUMPY magic)",
                            name);
  int major = (unsigned char)buf[6];
  int64_t hlen, hoff;
  if (major == 1) {
    hlen = (unsigned char)buf[8] | (unsigned char)buf[9] << 8;
    hoff = 10;
  } else if (major == 2 || major == 3) {
    if (len < 12) return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: truncated .npy header", name);
    hlen = (int64_t)((uint32_t)(unsigned char)buf[8] | (uint32_t)(unsigned char)buf[9] << 8 |
                     (uint32_t)(unsigned char)buf[10] << 16 | (uint32_t)(unsigned char)buf[11] << 24);
    hoff = 12;
  } else {
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: unsupported .npy format version %d", name,
                            major);
  }
  if (hlen > 1 << 20 || hoff + hlen > len)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: .npy header of %lld bytes runs past the file",
                            name, (long long)hlen);
  const char *h = buf + hoff, *hend = h + hlen;
  const char *descr = dict_value(h, (size_t)hlen, "descr");
  const char *fo = dict_value(h, (size_t)hlen, "fortran_order");
  const char *shape = dict_value(h, (size_t)hlen, "shape");
  if (!descr || !fo || !shape)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: .npy header lacks descr, fortran_order or shape",
                            name);
  descr = skip_sp(descr, hend);
  int esize;
  if (hend - descr >= 5 && memcmp(descr, "'<f4'", 5) == 0) esize = 4;
  else if (hend - descr >= 5 && memcmp(descr, "'<f8'", 5) == 0) esize = 8;
  else
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: dtype must be '<f4' or '<f8' (float32/float64, little-endian)",
                            name);
  fo = skip_sp(fo, hend);
  if (hend - fo < 5 || memcmp(fo, "False", 5) != 0)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: array must be in C order (fortran_order False)",
                            name);
  if (!parse_shape(shape, hend, rows, cols))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: shape must be a 2-D tuple (rows, cols)", name);
  if (*cols < 1 || *cols > FEDREC_MAX_CONTENT_DIM || *rows < 1 || *rows > FEDREC_MAX_ENTITIES)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s: shape (%lld, %lld) out of range (cols 1..%d)",
                            name, (long long)*rows, (long long)*cols, FEDREC_MAX_CONTENT_DIM);
  int64_t count = *rows * *cols;
  int64_t avail = len - hoff - hlen;
  if (count > avail / esize)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: truncated: shape needs %lld bytes of data, file has %lld",
                            name, (long long)(count * esize), (long long)avail);
  float *out = malloc((size_t)count * sizeof *out);
  if (!out) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: %lld values", name, (long long)count);
  const char *d = buf + hoff + hlen;
  for (int64_t k = 0; k < count; k++) {
    double v;
    if (esize == 4) {
      float f;
      memcpy(&f, d + 4 * k, 4);
      v = f;
    } else {
      memcpy(&v, d + 8 * k, 8);
    }
    if (!isfinite(v) || fabs(v) > 3e38) {
      free(out);
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: value at row %lld, column %lld is not finite",
                              name, (long long)(k / *cols), (long long)(k % *cols));
    }
    out[k] = (float)v;
  }
  *data = out;
  return FEDREC_OK;
}

fedrec_status fedrec_parse_id_list(fedrec_idmap *ids, const char *buf, int64_t len,
                                   const char *name, fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line;
  char show[200];
  fedrec_lines_init(&L, buf, len, name);
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0 && L.p >= L.end) break; /* final newline */
    if (!fedrec_field_is_id(line))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected one item id per line, found '%s'",
                              name, (long long)L.line, fedrec_field_show(line, show, sizeof show));
    int32_t before = fedrec_idmap_size(ids);
    int32_t i = fedrec_idmap_get(ids, line.s, line.n, 1);
    if (i == -2) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: id list", name);
    if (i < before)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: item id '%s' appears twice", name,
                              (long long)L.line, fedrec_field_show(line, show, sizeof show));
  }
  return FEDREC_OK;
}

/* Allocates zeroed content storage for ds. */
static fedrec_status content_alloc(fedrec_dataset *ds, int64_t p, fedrec_error *err) {
  int32_t n = fedrec_idmap_size(ds->items);
  free(ds->content);
  free(ds->has_content);
  ds->content = calloc((size_t)n * (size_t)p + 1, sizeof(float));
  ds->has_content = calloc((size_t)n + 1, 1);
  ds->content_dim = (int32_t)p;
  if (!ds->content || !ds->has_content)
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "content matrix %d x %lld", n, (long long)p);
  return FEDREC_OK;
}

fedrec_status fedrec_attach_npy(fedrec_dataset *ds, const char *npy_path, const char *ids_path,
                                fedrec_error *err) {
  char *nb = NULL, *ib = NULL;
  int64_t nlen = 0, ilen = 0, rows = 0, cols = 0;
  float *x = NULL;
  fedrec_idmap *ids = fedrec_idmap_new();
  fedrec_status st = ids ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "id list");
  if (!st) st = fedrec_read_file(npy_path, &nb, &nlen, err);
  if (!st) st = fedrec_parse_npy(nb, nlen, npy_path, &rows, &cols, &x, err);
  free(nb);
  if (!st) st = fedrec_read_file(ids_path, &ib, &ilen, err);
  if (!st) st = fedrec_parse_id_list(ids, ib, ilen, ids_path, err);
  free(ib);
  if (!st && fedrec_idmap_size(ids) != rows)
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s has %d ids but %s has %lld rows", ids_path,
                          fedrec_idmap_size(ids), npy_path, (long long)rows);
  if (!st) st = content_alloc(ds, cols, err);
  for (int64_t r = 0; !st && r < rows; r++) {
    const char *id = fedrec_idmap_name(ids, (int32_t)r);
    int32_t i = fedrec_idmap_get(ds->items, id, strlen(id), 0);
    if (i < 0) continue;
    memcpy(ds->content + (size_t)i * (size_t)cols, x + r * cols, (size_t)cols * sizeof(float));
    ds->has_content[i] = 1;
  }
  free(x);
  fedrec_idmap_free(ids);
  return st;
}

fedrec_status fedrec_parse_content_csv(fedrec_dataset *ds, const char *buf, int64_t len,
                                       const char *name, int32_t *skipped, fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line;
  char show[200];
  *skipped = 0;
  fedrec_lines_init(&L, buf, len, name);
  if (!fedrec_lines_next(&L, &line))
    return fedrec_error_set(err, FEDREC_ERR_EMPTY, "%s: empty, expected header item,f1,...", name);
  int64_t ncols = 1;
  for (size_t k = 0; k < line.n; k++) ncols += line.s[k] == ',';
  if (line.n < 4 || memcmp(line.s, "item", 4) != 0 || (line.n > 4 && line.s[4] != ',') || ncols < 2)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:1: expected header 'item,f1,...,fp', found '%s'",
                            name, fedrec_field_show(line, show, sizeof show));
  int64_t p = ncols - 1;
  if (p > FEDREC_MAX_CONTENT_DIM)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s:1: %lld features, more than %d", name,
                            (long long)p, FEDREC_MAX_CONTENT_DIM);
  fedrec_status st = content_alloc(ds, p, err);
  if (st) return st;
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    fedrec_field id, f;
    const char *s = line.s, *end = line.s + line.n;
    const char *c = memchr(s, ',', line.n);
    id.s = s;
    id.n = c ? (size_t)(c - s) : line.n;
    if (!fedrec_field_is_id(id))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: bad item id '%s'", name,
                              (long long)L.line, fedrec_field_show(id, show, sizeof show));
    int32_t i = fedrec_idmap_get(ds->items, id.s, id.n, 0);
    float *row = i >= 0 ? ds->content + (size_t)i * (size_t)p : NULL;
    int64_t k = 0;
    while (c && c < end) {
      s = c + 1;
      c = memchr(s, ',', (size_t)(end - s));
      f.s = s;
      f.n = c ? (size_t)(c - s) : (size_t)(end - s);
      double v;
      if (k >= p || !fedrec_field_double(f, &v) || fabs(v) > 3e38)
        return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: feature %lld '%s' is not a finite number (expected %lld features)",
                                name, (long long)L.line, (long long)k + 1,
                                fedrec_field_show(f, show, sizeof show), (long long)p);
      if (row) row[k] = (float)v;
      k++;
    }
    if (k != p)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected %lld features, found %lld",
                              name, (long long)L.line, (long long)p, (long long)k);
    if (row) ds->has_content[i] = 1;
    else (*skipped)++;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_attach_content_csv(fedrec_dataset *ds, const char *path, fedrec_error *err) {
  char *buf;
  int64_t len;
  int32_t skipped;
  fedrec_status st = fedrec_read_file(path, &buf, &len, err);
  if (st) return st;
  st = fedrec_parse_content_csv(ds, buf, len, path, &skipped, err);
  free(buf);
  return st;
}

int fedrec_group_name_valid(const char *s, size_t n) {
  if (n < 1 || n > FEDREC_MAX_GROUP_LEN) return 0;
  for (size_t k = 0; k < n; k++) {
    char ch = s[k];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-'))
      return 0;
  }
  return 1;
}

static int cmp_i32(const void *a, const void *b) {
  int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
  return (x > y) - (x < y);
}

/* One line's groups, appended to *group (grown as needed), sorted and unique. */
static fedrec_status availability_groups(fedrec_idmap *groups, fedrec_field f, int32_t **group, int64_t *n, int64_t *cap,
                                         const fedrec_lines *L, fedrec_error *err) {
  char show[200];
  int64_t first = *n;
  for (size_t a = 0; a <= f.n;) {
    size_t b = a;
    while (b < f.n && f.s[b] != ',') b++;
    fedrec_field g = {f.s + a, b - a};
    if (!fedrec_group_name_valid(g.s, g.n))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: '%s' is not a group name (1 to %d bytes of A-Z a-z 0-9 _ . -)", L->name,
                              (long long)L->line, fedrec_field_show(g, show, sizeof show), FEDREC_MAX_GROUP_LEN);
    if (*n == *cap) {
      int32_t *more = realloc(*group, (size_t)(*cap = *cap * 2 + 16) * sizeof *more);
      if (!more) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: availability", L->name);
      *group = more;
    }
    int32_t gi = fedrec_idmap_get(groups, g.s, g.n, 1);
    if (gi < 0) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: availability groups", L->name);
    (*group)[(*n)++] = gi;
    a = b + 1;
  }
  qsort(*group + first, (size_t)(*n - first), sizeof **group, cmp_i32);
  int64_t k = first;
  for (int64_t j = first; j < *n; j++)
    if (j == first || (*group)[j] != (*group)[k - 1]) (*group)[k++] = (*group)[j];
  *n = k;
  return FEDREC_OK;
}

fedrec_status fedrec_parse_availability(fedrec_idmap *items, fedrec_idmap *groups, int32_t **start, int32_t **group,
                                        const char *buf, int64_t len, const char *name, fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line, f[2];
  char show[200];
  int64_t n = 0, cap = 0, lines = 0, lcap = 16;
  *group = NULL;
  *start = malloc((size_t)lcap * sizeof **start);
  fedrec_status st = *start ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: availability", name);
  if (!st) (*start)[0] = 0;
  fedrec_lines_init(&L, buf, len, name);
  while (!st && fedrec_lines_next(&L, &line)) {
    if (line.n == 0 && L.p >= L.end) break; /* final newline */
    if (fedrec_split(line, '\t', f, 2) != 2 || !fedrec_field_is_id(f[0])) {
      st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected 'item<TAB>group[,group...]', found '%s'", name, (long long)L.line,
                            fedrec_field_show(line, show, sizeof show));
      break;
    }
    int32_t before = fedrec_idmap_size(items), i = fedrec_idmap_get(items, f[0].s, f[0].n, 1);
    if (i < 0) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: availability", name);
    else if (i < before)
      st = fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: item '%s' appears twice", name, (long long)L.line,
                            fedrec_field_show(f[0], show, sizeof show));
    if (!st) st = availability_groups(groups, f[1], group, &n, &cap, &L, err);
    if (!st && n > INT32_MAX) st = fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s: more than 2^31 availability entries", name);
    if (!st && lines + 2 > lcap) {
      int32_t *more = realloc(*start, (size_t)(lcap *= 2) * sizeof *more);
      if (!more) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: availability", name);
      else *start = more;
    }
    if (!st) (*start)[++lines] = (int32_t)n;
  }
  if (st) {
    free(*start), free(*group);
    *start = *group = NULL;
  }
  return st;
}
