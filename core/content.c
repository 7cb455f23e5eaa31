/* Content features derived from dataset metadata: hashed TF-IDF over genres and tags. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "internal.h"
#include "text.h"

struct fedrec_tokens {
  fedrec_idmap *vocab;
  fedrec_triplets t; /* (item, token, 1) */
};

fedrec_tokens *fedrec_tokens_new(void) {
  fedrec_tokens *t = calloc(1, sizeof *t);
  if (t && !(t->vocab = fedrec_idmap_new())) {
    free(t);
    t = NULL;
  }
  return t;
}

void fedrec_tokens_free(fedrec_tokens *t) {
  if (!t) return;
  fedrec_idmap_free(t->vocab);
  fedrec_triplets_free(&t->t);
  free(t);
}

fedrec_status fedrec_tokens_add(fedrec_tokens *t, int32_t item, const char *tok, size_t len,
                                fedrec_error *err) {
  int32_t k = fedrec_idmap_get(t->vocab, tok, len, 1);
  if (k < 0) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "token vocabulary");
  return fedrec_triplets_push(&t->t, item, k, 1.0f, err);
}

fedrec_tokens *fedrec_tokens_subset(const fedrec_tokens *t, const char *const *prefixes) {
  fedrec_tokens *o = fedrec_tokens_new();
  fedrec_error err;
  for (int64_t k = 0; o && k < t->t.n; k++) {
    const char *tok = fedrec_idmap_name(t->vocab, t->t.c[k]);
    int keep = 0;
    for (const char *const *p = prefixes; *p && !keep; p++) keep = !strncmp(tok, *p, strlen(*p));
    if (keep && fedrec_tokens_add(o, t->t.r[k], tok, strlen(tok), &err)) {
      fedrec_tokens_free(o);
      o = NULL;
    }
  }
  return o;
}

void fedrec__tokens_mark(const fedrec_tokens *t, uint8_t *has) {
  for (int64_t k = 0; k < t->t.n; k++) has[t->t.r[k]] = 1;
}

fedrec_status fedrec_tokens_tfidf(const fedrec_tokens *t, int32_t n_items, int32_t p, float *out,
                                  uint8_t *has, fedrec_error *err) {
  int32_t V = fedrec_idmap_size(t->vocab);
  fedrec_csr m;
  fedrec_status st = fedrec_csr__build(&m, n_items, V ? V : 1, &t->t, 1, err);
  if (st) return st;
  int32_t *df = calloc((size_t)V + 1, sizeof *df);
  uint64_t *h = malloc(((size_t)V + 1) * sizeof *h);
  if (!df || !h) {
    free(df);
    free(h);
    fedrec_csr_free(&m);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "TF-IDF over %d tokens", V);
  }
  int32_t docs = 0;
  for (int32_t i = 0; i < n_items; i++) docs += m.indptr[i + 1] > m.indptr[i];
  for (int64_t k = 0; k < fedrec_csr_nnz(&m); k++) df[m.indices[k]]++;
  for (int32_t v = 0; v < V; v++) {
    const char *s = fedrec_idmap_name(t->vocab, v);
    h[v] = fedrec__hash(s, strlen(s));
  }
  memset(out, 0, (size_t)n_items * (size_t)p * sizeof *out);
  for (int32_t i = 0; i < n_items; i++) {
    float *row = out + (size_t)i * (size_t)p;
    double norm = 0;
    for (int64_t k = m.indptr[i]; k < m.indptr[i + 1]; k++) {
      int32_t v = m.indices[k];
      double w = log1p(m.values[k]) * log((double)docs / df[v]);
      /* Signed hashing keeps collisions unbiased: colliding tokens cancel on average. */
      row[h[v] % (uint64_t)p] += (float)((h[v] >> 63) ? -w : w);
    }
    for (int32_t j = 0; j < p; j++) norm += (double)row[j] * row[j];
    has[i] = norm > 0;
    if (norm > 0)
      for (int32_t j = 0; j < p; j++) row[j] = (float)(row[j] / sqrt(norm));
  }
  free(df);
  free(h);
  fedrec_csr_free(&m);
  return FEDREC_OK;
}

/* Splits one CSV line with RFC 4180 quoting (no embedded newlines). Quoted fields are
 * returned without their outer quotes; doubled quotes stay doubled (harmless for tokens). */
static int split_quoted(fedrec_field line, fedrec_field *f, int max) {
  const char *s = line.s, *end = line.s + line.n;
  int k = 0;
  for (;;) {
    if (k == max) return max + 1;
    if (s < end && *s == '"') {
      const char *q = s + 1;
      for (;;) {
        q = memchr(q, '"', (size_t)(end - q));
        if (!q) return -1; /* unterminated quote */
        if (q + 1 < end && q[1] == '"') q += 2;
        else break;
      }
      f[k].s = s + 1;
      f[k].n = (size_t)(q - s - 1);
      k++;
      s = q + 1;
      if (s == end) return k;
      if (*s != ',') return -1;
      s++;
    } else {
      const char *c = memchr(s, ',', (size_t)(end - s));
      f[k].s = s;
      f[k].n = (size_t)((c ? c : end) - s);
      k++;
      if (!c) return k;
      s = c + 1;
    }
  }
}

/* Adds prefix + lowercased, trimmed text as one token. */
static fedrec_status add_norm(fedrec_tokens *t, int32_t item, const char *prefix, fedrec_field f,
                              fedrec_error *err) {
  char tok[160];
  size_t w = strlen(prefix);
  memcpy(tok, prefix, w);
  while (f.n && isspace((unsigned char)f.s[0])) f.s++, f.n--;
  while (f.n && isspace((unsigned char)f.s[f.n - 1])) f.n--;
  for (size_t i = 0; i < f.n && w + 1 < sizeof tok; i++)
    tok[w++] = (char)tolower((unsigned char)f.s[i]);
  if (w == strlen(prefix)) return FEDREC_OK;
  return fedrec_tokens_add(t, item, tok, w, err);
}

static fedrec_status bad_line(fedrec_error *err, const fedrec_lines *L, const char *want) {
  return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:%lld: expected %s", L->name,
                          (long long)L->line, want);
}

fedrec_status fedrec_parse_movielens_movies(fedrec_tokens *t, fedrec_idmap *items,
                                            const char *buf, int64_t len, const char *name,
                                            fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line, f[4];
  fedrec_status st;
  fedrec_lines_init(&L, buf, len, name);
  if (!fedrec_lines_next(&L, &line) || line.n < 20 || memcmp(line.s, "movieId,title,genres", 20))
    return bad_line(err, &L, "header 'movieId,title,genres'");
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    if (split_quoted(line, f, 3) != 3) return bad_line(err, &L, "3 fields movieId,title,genres");
    if (!fedrec_field_is_id(f[0])) return bad_line(err, &L, "a movie id in the first field");
    int32_t i = fedrec_idmap_get(items, f[0].s, f[0].n, 0);
    if (i < 0) continue; /* a movie nobody liked */
    fedrec_field g[64];
    int ng = fedrec_split(f[2], '|', g, 64);
    for (int k = 0; k < ng && k < 64; k++)
      if (!(g[k].n == 18 && !memcmp(g[k].s, "(no genres listed)", 18)) &&
          (st = add_norm(t, i, "genre:", g[k], err)))
        return st;
    /* Release decade from a trailing "(YYYY)" in the title; the title's other words */
    const char *ti = f[1].s;
    size_t n = f[1].n;
    while (n && ti[n - 1] == ' ') n--;
    if (n >= 6 && ti[n - 1] == ')' && ti[n - 6] == '(' && isdigit((unsigned char)ti[n - 5]) &&
        isdigit((unsigned char)ti[n - 2])) {
      fedrec_field dec = {ti + n - 5, 3};
      if ((st = add_norm(t, i, "decade:", dec, err))) return st;
      n -= 6;
    }
    if ((st = fedrec__add_words(t, i, (fedrec_field){ti, n}, err))) return st;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_parse_movielens_tags(fedrec_tokens *t, fedrec_idmap *items,
                                          const char *buf, int64_t len, const char *name,
                                          fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line, f[5];
  fedrec_status st;
  fedrec_lines_init(&L, buf, len, name);
  if (!fedrec_lines_next(&L, &line) || line.n < 28 ||
      memcmp(line.s, "userId,movieId,tag,timestamp", 28))
    return bad_line(err, &L, "header 'userId,movieId,tag,timestamp'");
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    if (split_quoted(line, f, 4) != 4) return bad_line(err, &L, "4 fields userId,movieId,tag,timestamp");
    if (!fedrec_field_is_id(f[1])) return bad_line(err, &L, "a movie id in the second field");
    int32_t i = fedrec_idmap_get(items, f[1].s, f[1].n, 0);
    if (i >= 0 && (st = add_norm(t, i, "tag:", f[2], err))) return st;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_parse_lastfm_tags(fedrec_tokens *t, fedrec_idmap *items, const char *buf,
                                       int64_t len, const char *name, fedrec_error *err) {
  fedrec_lines L;
  fedrec_field line, f[7];
  fedrec_status st;
  fedrec_lines_init(&L, buf, len, name);
  if (!fedrec_lines_next(&L, &line) || line.n < 24 ||
      memcmp(line.s, "userID\tartistID\ttagID", 21))
    return bad_line(err, &L, "header 'userID\\tartistID\\ttagID\\tday\\tmonth\\tyear'");
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    int64_t tag;
    if (fedrec_split(line, '\t', f, 6) != 6 || !fedrec_field_is_id(f[1]) ||
        !fedrec_field_i64(f[2], &tag))
      return bad_line(err, &L, "6 tab-separated fields userID, artistID, tagID (integer), day, month, year");
    int32_t i = fedrec_idmap_get(items, f[1].s, f[1].n, 0);
    if (i >= 0 && (st = add_norm(t, i, "tag:", f[2], err))) return st;
  }
  return FEDREC_OK;
}

fedrec_status fedrec__tokens_read(fedrec_tokens *t, fedrec_idmap *items, const char *dir, const char *const *files,
                                 const fedrec_tok_parser *parsers, int n, fedrec_error *err) {
  fedrec_status st = FEDREC_OK;
  for (int k = 0; k < n && !st; k++) {
    char path[4096], *buf;
    int64_t len;
    snprintf(path, sizeof path, "%s/%s", dir, files[k]);
    if ((st = fedrec_read_file(path, &buf, &len, err))) break;
    st = parsers[k](t, items, buf, len, path, err);
    free(buf);
  }
  return st;
}

/* Each word (letters and digits, 2 bytes or more, lowercased) of f as a "word:" token. */
fedrec_status fedrec__add_words(fedrec_tokens *t, int32_t item, fedrec_field f, fedrec_error *err) {
  for (size_t a = 0; a < f.n;) {
    while (a < f.n && !isalnum((unsigned char)f.s[a])) a++;
    size_t b = a;
    while (b < f.n && isalnum((unsigned char)f.s[b])) b++;
    fedrec_status st = b - a >= 2 ? add_norm(t, item, "word:", (fedrec_field){f.s + a, b - a}, err) : FEDREC_OK;
    if (st) return st;
    a = b;
  }
  return FEDREC_OK;
}

/* The tokens of the single-source content (title and name words are modalities only). */
static const char *const CLASSIC[] = {"genre:", "decade:", "tag:", NULL};

/* Runs each parser over dir/file and hashes the tokens into ds's content. */
static fedrec_status derive(fedrec_dataset *ds, const char *dir, const char *const *files,
                            const fedrec_tok_parser *parsers, int n, int32_t p, fedrec_error *err) {
  if (p < 1 || p > FEDREC_MAX_CONTENT_DIM)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "content dimension %d out of range 1..%d", p,
                            FEDREC_MAX_CONTENT_DIM);
  fedrec_tokens *t = fedrec_tokens_new();
  if (!t) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "token store");
  fedrec_status st = fedrec__tokens_read(t, ds->items, dir, files, parsers, n, err);
  int32_t ni = fedrec_idmap_size(ds->items);
  fedrec_tokens *sub = st ? NULL : fedrec_tokens_subset(t, CLASSIC);
  if (!st && !sub) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "token store");
  if (!st) {
    free(ds->content);
    free(ds->has_content);
    ds->content = malloc((size_t)ni * (size_t)p * sizeof(float) + 1);
    ds->has_content = malloc((size_t)ni + 1);
    ds->content_dim = p;
    st = ds->content && ds->has_content
             ? fedrec_tokens_tfidf(sub, ni, p, ds->content, ds->has_content, err)
             : fedrec_error_set(err, FEDREC_ERR_NOMEM, "content %d x %d", ni, p);
  }
  fedrec_tokens_free(sub);
  fedrec_tokens_free(t);
  return st;
}

fedrec_status fedrec_content_movielens(fedrec_dataset *ds, const char *dir, int32_t p,
                                       fedrec_error *err) {
  static const char *const files[] = {"movies.csv", "tags.csv"};
  static const fedrec_tok_parser parsers[] = {fedrec_parse_movielens_movies, fedrec_parse_movielens_tags};
  return derive(ds, dir, files, parsers, 2, p, err);
}

fedrec_status fedrec_content_lastfm(fedrec_dataset *ds, const char *dir, int32_t p,
                                    fedrec_error *err) {
  static const char *const files[] = {"user_taggedartists.dat"};
  static const fedrec_tok_parser parsers[] = {fedrec_parse_lastfm_tags};
  return derive(ds, dir, files, parsers, 1, p, err);
}

/* A title: printable text only (control bytes become spaces), at most FEDREC_MAX_TITLE_LEN
 * bytes (cut at a UTF-8 boundary), doubled CSV quotes undone. */
static char *copy_title(fedrec_field f) {
  size_t n = f.n < FEDREC_MAX_TITLE_LEN ? f.n : FEDREC_MAX_TITLE_LEN;
  while (n < f.n && n > 0 && ((unsigned char)f.s[n] & 0xC0) == 0x80) n--;
  char *t = malloc(n + 1);
  if (!t) return NULL;
  size_t w = 0;
  for (size_t k = 0; k < n; k++) {
    char ch = f.s[k];
    if (ch == '"' && k + 1 < n && f.s[k + 1] == '"') k++;
    t[w++] = (unsigned char)ch < 0x20 || ch == 0x7f ? ' ' : ch;
  }
  t[w] = 0;
  return t;
}

fedrec_status fedrec_parse_titles(char **titles, fedrec_idmap *items, fedrec_titles_format format,
                                  const char *buf, int64_t len, const char *name, fedrec_error *err) {
  static const char *HEADER[] = {"movieId,title,genres", "id\tname\turl", NULL};
  static const char *WANT[] = {"3 fields movieId,title,genres", "4 tab-separated fields id, name, url, pictureURL",
                               "id<TAB>title"};
  fedrec_lines L;
  fedrec_field line, f[5];
  fedrec_lines_init(&L, buf, len, name);
  if (HEADER[format] && (!fedrec_lines_next(&L, &line) || line.n < strlen(HEADER[format]) ||
                         memcmp(line.s, HEADER[format], strlen(HEADER[format]))))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s:1: expected header '%s'", name, HEADER[format]);
  while (fedrec_lines_next(&L, &line)) {
    if (line.n == 0) continue;
    int n = format == FEDREC_TITLES_MOVIELENS ? split_quoted(line, f, 3)
            : format == FEDREC_TITLES_LASTFM  ? fedrec_split(line, '\t', f, 4)
                                              : fedrec_split(line, '\t', f, 2);
    int want = format == FEDREC_TITLES_MOVIELENS ? 3 : format == FEDREC_TITLES_LASTFM ? 4 : 2;
    if (n != want || f[0].n == 0 || f[0].n > FEDREC_MAX_ID_LEN) return bad_line(err, &L, WANT[format]);
    int32_t i = fedrec_idmap_get(items, f[0].s, f[0].n, 0);
    if (i < 0) continue; /* not an item of the catalogue */
    char *t = copy_title(f[1]);
    if (!t) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "%s: titles", name);
    free(titles[i]);
    titles[i] = t;
  }
  return FEDREC_OK;
}

/* IEEE half floats by the CPU's own conversion instructions (F16C on x86-64, every CPU since
 * 2012; the compiler's _Float16 elsewhere), rounding to nearest even. */
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
__attribute__((target("f16c"))) static void to_half(uint16_t *out, const float *in, size_t n) {
  for (size_t k = 0; k < n; k++) out[k] = (uint16_t)_cvtss_sh(in[k], _MM_FROUND_TO_NEAREST_INT);
}
__attribute__((target("f16c"))) static void from_half(float *out, const uint16_t *in, size_t n) {
  for (size_t k = 0; k < n; k++) out[k] = _cvtsh_ss(in[k]);
}
static int have_half(void) {
  unsigned a, b, c, d;
  return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#else
static void to_half(uint16_t *out, const float *in, size_t n) {
  for (size_t k = 0; k < n; k++) {
    _Float16 h = (_Float16)in[k];
    memcpy(out + k, &h, 2);
  }
}
static void from_half(float *out, const uint16_t *in, size_t n) {
  for (size_t k = 0; k < n; k++) {
    _Float16 h;
    memcpy(&h, in + k, 2);
    out[k] = (float)h;
  }
}
static int have_half(void) { return 1; }
#endif

fedrec_status fedrec_half_from_float(uint16_t *out, const float *in, size_t n, fedrec_error *err) {
  if (!have_half()) return fedrec_error_set(err, FEDREC_ERR_ARG, "half floats: this CPU lacks F16C (use 32 or 8 bits)");
  to_half(out, in, n);
  return FEDREC_OK;
}

fedrec_status fedrec_half_to_float(float *out, const uint16_t *in, size_t n, fedrec_error *err) {
  if (!have_half()) return fedrec_error_set(err, FEDREC_ERR_ARG, "half floats: this CPU lacks F16C (use 32 or 8 bits)");
  from_half(out, in, n);
  return FEDREC_OK;
}

float fedrec_int8_step(float most) {
  if (!(most > 0)) return 0;
  int e;
  frexpf(most / 127.0f, &e); /* 2^(e-1) <= most / 127 < 2^e */
  while (e > -149 && most <= 127.0f * ldexpf(1.0f, e - 1)) e--;
  while (most > 127.0f * ldexpf(1.0f, e)) e++;
  return ldexpf(1.0f, e);
}

fedrec_status fedrec_content_quantize(float *C, int64_t n, int32_t p, int bits, fedrec_error *err) {
  if (!C || bits == 32) return FEDREC_OK;
  uint16_t h[256];
  for (int64_t i = 0; i < n; i++) {
    float *row = C + i * p;
    for (int32_t j = 0; bits == 16 && j < p; j += 256) { /* through half floats and back */
      size_t m = p - j < 256 ? (size_t)(p - j) : 256;
      fedrec_status st = fedrec_half_from_float(h, row + j, m, err);
      if (!st) st = fedrec_half_to_float(row + j, h, m, err);
      if (st) return st;
    }
    if (bits == 16) continue;
    float most = 0; /* bits == 8: one power-of-two step per item */
    for (int32_t j = 0; j < p; j++) most = fabsf(row[j]) > most ? fabsf(row[j]) : most;
    float step = fedrec_int8_step(most);
    for (int32_t j = 0; step > 0 && j < p; j++) row[j] = nearbyintf(row[j] / step) * step + 0.0f; /* -0 -> +0, as decoded */
  }
  return FEDREC_OK;
}
