/* The model's wire and storage form (see fedrec_model_encode in include/fedrec/model.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "fedrec/model.h"

#define MAGIC "FRMD"
#define HEADER 32 /* magic, format, version (8), n_items, d, p, n_free; format 2: then flags */

static void put32(uint8_t *b, uint32_t v) {
  for (int i = 0; i < 4; i++) b[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *b) {
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

#define FLAG_POPULARITY 1u
#define FLAG_MODALITIES 2u
#define MODALITY_RECORD 36 /* dimension, 32-byte name */

static uint32_t flags_of(const fedrec_model *m) {
  return (m->pop ? FLAG_POPULARITY : 0) | (m->H && m->n_modalities ? FLAG_MODALITIES : 0);
}
/* Format 1 without flags (what every earlier model is), 2 with them. */
static size_t header_of(const fedrec_model *m) {
  uint32_t f = flags_of(m);
  return !f ? HEADER : HEADER + 4 + (f & FLAG_MODALITIES ? 4 + MODALITY_RECORD * (size_t)m->n_modalities : 0);
}

size_t fedrec_model_encoded_size(const fedrec_model *m) {
  return header_of(m) + 4 * ((size_t)m->n_free + (m->H ? (size_t)m->d * m->p : 0) + (size_t)m->n_free * m->d +
                             (m->pop ? (size_t)m->n_items : 0));
}

static uint8_t *put_floats(uint8_t *q, const float *x, size_t n) {
  for (size_t k = 0; k < n; k++, q += 4) {
    uint32_t v;
    memcpy(&v, &x[k], 4);
    put32(q, v);
  }
  return q;
}

void fedrec_model_encode(uint8_t *out, const fedrec_model *m, uint64_t version) {
  memcpy(out, MAGIC, 4);
  put32(out + 4, flags_of(m) ? 2 : 1);
  put32(out + 8, (uint32_t)version);
  put32(out + 12, (uint32_t)(version >> 32));
  put32(out + 16, (uint32_t)m->n_items);
  put32(out + 20, (uint32_t)m->d);
  put32(out + 24, (uint32_t)(m->H ? m->p : 0));
  put32(out + 28, (uint32_t)m->n_free);
  if (flags_of(m)) put32(out + HEADER, flags_of(m));
  if (flags_of(m) & FLAG_MODALITIES) {
    put32(out + HEADER + 4, (uint32_t)m->n_modalities);
    for (int32_t k = 0; k < m->n_modalities; k++) {
      uint8_t *r = out + HEADER + 8 + MODALITY_RECORD * k;
      put32(r, (uint32_t)m->modalities[k].dim);
      memset(r + 4, 0, 32);
      memcpy(r + 4, m->modalities[k].name, strlen(m->modalities[k].name));
    }
  }
  uint8_t *q = out + header_of(m);
  for (int32_t r = 0; r < m->n_free; r++, q += 4) put32(q, (uint32_t)m->free_items[r]);
  q = put_floats(q, m->H, m->H ? (size_t)m->d * m->p : 0);
  q = put_floats(q, m->E, (size_t)m->n_free * m->d);
  if (m->pop) put_floats(q, m->pop, (size_t)m->n_items);
}

/* The header's length, flags and modalities from b (n bytes): 0 and a reason when it is not
 * one this code writes (magic, format, flags, the modality records). */
static uint32_t read_header(const uint8_t *b, size_t n, uint32_t *flags, fedrec_model *m, const char **why) {
  *flags = 0, *why = "shorter than the 32-byte header";
  if (n < HEADER) return 0;
  if (memcmp(b, MAGIC, 4)) return *why = "bad magic (not a fedrec model)", 0;
  uint32_t format = get32(b + 4), header = HEADER;
  if (format != 1 && format != 2) return *why = "a format other than 1 or 2", 0;
  if (format == 1) return header;
  if (n < HEADER + 4) return 0;
  *flags = get32(b + HEADER), header += 4;
  if (!*flags || (*flags & ~(FLAG_POPULARITY | FLAG_MODALITIES))) return *why = "format 2 with unknown flags", 0;
  if (!(*flags & FLAG_MODALITIES)) return header;
  if (n < header + 4) return 0;
  uint32_t M = get32(b + header), p = 0;
  if (M < 1 || M > FEDREC_MAX_MODALITIES) return *why = "1 to 8 modalities expected", 0;
  header += 4 + MODALITY_RECORD * M;
  if (n < header) return *why = "shorter than its modality records", 0;
  for (uint32_t k = 0; k < M; k++) {
    const uint8_t *r = b + HEADER + 8 + MODALITY_RECORD * k;
    char name[33];
    memcpy(name, r + 4, 32), name[32] = 0;
    size_t len = strlen(name);
    uint32_t dim = get32(r);
    for (size_t j = len; j < 32; j++)
      if (r[4 + j]) return *why = "a modality name not padded with zeros", 0;
    if (!fedrec_modality_name_valid(name) || dim < 1 || dim > 65536) return *why = "a modality with a bad name or dimension", 0;
    for (uint32_t j = 0; m && j < k; j++)
      if (!strcmp(m->modalities[j].name, name)) return *why = "a modality named twice", 0;
    p += dim;
    if (m) snprintf(m->modalities[k].name, sizeof m->modalities[k].name, "%.31s", name), m->modalities[k].dim = (int32_t)dim;
    if (m) m->modalities[k].offset = (int32_t)(p - dim);
  }
  if (p != get32(b + 24)) return *why = "modalities that do not add up to the head's dimension", 0;
  if (m) m->n_modalities = (int32_t)M;
  return header;
}

uint64_t fedrec_model_implied_size(const uint8_t *b, size_t n, uint32_t *n_items, uint32_t *p) {
  uint32_t flags;
  const char *why;
  uint32_t header = read_header(b, n, &flags, NULL, &why);
  if (!header) return 0;
  uint32_t ni = get32(b + 16), d = get32(b + 20), pp = get32(b + 24), n_free = get32(b + 28);
  if (ni < 1 || ni > (1u << 26) || d < 1 || d > 4096 || pp > 65536 || n_free > ni || (!pp && !n_free)) return 0;
  *n_items = ni, *p = pp;
  return header + 4 * ((uint64_t)n_free + (uint64_t)d * pp + (uint64_t)n_free * d + (flags & FLAG_POPULARITY ? ni : 0));
}

fedrec_status fedrec_model_decode(fedrec_model *m, uint64_t *version, const uint8_t *b, size_t n,
                                  const float *C, int32_t expect_p, fedrec_error *err) {
  memset(m, 0, sizeof *m);
  uint32_t flags;
  const char *why;
  uint32_t header = read_header(b, n, &flags, m, &why);
  if (!header) {
    memset(m, 0, sizeof *m);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: %zu bytes: %s", n, why);
  }
  uint64_t ver = (uint64_t)get32(b + 8) | (uint64_t)get32(b + 12) << 32;
  uint32_t n_items = get32(b + 16), d = get32(b + 20), p = get32(b + 24), n_free = get32(b + 28);
  if (n_items < 1 || n_items > (1u << 26) || d < 1 || d > 4096 || p > 65536 || n_free > n_items)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: n_items %u, d %u, p %u, n_free %u out of range", n_items, d, p, n_free);
  if (p == 0 && n_free == 0) return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: neither a head nor free embeddings");
  if (p && (int32_t)p != expect_p)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: head over %u content dimensions, the catalogue has %d", p, expect_p);
  if (p && !C) return fedrec_error_set(err, FEDREC_ERR_ARG, "model: has a head but no content embeddings were given");
  uint64_t npop = flags & FLAG_POPULARITY ? n_items : 0;
  uint64_t want = header + 4 * ((uint64_t)n_free + (uint64_t)d * p + (uint64_t)n_free * d + npop);
  if (n != want) return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: %zu bytes, the header implies %llu", n, (unsigned long long)want);
  m->n_items = (int32_t)n_items, m->d = (int32_t)d, m->p = (int32_t)p, m->n_free = (int32_t)n_free;
  m->C = p ? C : NULL;
  m->free_row = malloc((size_t)n_items * sizeof *m->free_row);
  if (p) m->H = malloc((size_t)d * p * sizeof *m->H);
  if (n_free) {
    m->E = malloc((size_t)n_free * d * sizeof *m->E);
    m->free_items = malloc((size_t)n_free * sizeof *m->free_items);
  }
  if (npop) m->pop = malloc((size_t)npop * sizeof *m->pop);
  if (!m->free_row || (p && !m->H) || (n_free && (!m->E || !m->free_items)) || (npop && !m->pop)) {
    fedrec_model_free(m);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "model: %u items, d %u", n_items, d);
  }
  for (uint32_t i = 0; i < n_items; i++) m->free_row[i] = -1;
  const uint8_t *q = b + header;
  for (uint32_t r = 0; r < n_free; r++, q += 4) {
    uint32_t i = get32(q);
    if (i >= n_items || m->free_row[i] >= 0) {
      fedrec_model_free(m);
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: free item %u (row %u) out of range or repeated", i, r);
    }
    m->free_items[r] = (int32_t)i;
    m->free_row[i] = (int32_t)r;
  }
  size_t nh = (size_t)d * p, ne = (size_t)n_free * d;
  for (size_t k = 0; k < nh + ne + npop; k++, q += 4) {
    uint32_t v = get32(q);
    float f;
    memcpy(&f, &v, 4);
    if (!(f == f) || f > 3.4e38f || f < -3.4e38f) {
      fedrec_model_free(m);
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: parameter %zu is not finite", k);
    }
    if (k < nh) m->H[k] = f;
    else if (k < nh + ne) m->E[k - nh] = f;
    else m->pop[k - nh - ne] = f;
  }
  if (version) *version = ver;
  return FEDREC_OK;
}

void fedrec_model_get_params(float *x, const fedrec_model *m) {
  size_t ne = (size_t)m->n_free * m->d;
  if (ne) memcpy(x, m->E, ne * sizeof *x);
  if (m->H) memcpy(x + ne, m->H, (size_t)m->d * m->p * sizeof *x);
}

void fedrec_model_set_params(fedrec_model *m, const float *x) {
  size_t ne = (size_t)m->n_free * m->d;
  if (ne) memcpy(m->E, x, ne * sizeof *x);
  if (m->H) memcpy(m->H, x + ne, (size_t)m->d * m->p * sizeof *x);
}
