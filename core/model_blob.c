/* The model's wire and storage form (see fedrec_model_encode in include/fedrec/model.h). */
#include <stdlib.h>
#include <string.h>

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

/* Format 1 without popularity (what every earlier model is), 2 with it. */
static size_t header_of(const fedrec_model *m) { return m->pop ? HEADER + 4 : HEADER; }

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
  put32(out + 4, m->pop ? 2 : 1);
  put32(out + 8, (uint32_t)version);
  put32(out + 12, (uint32_t)(version >> 32));
  put32(out + 16, (uint32_t)m->n_items);
  put32(out + 20, (uint32_t)m->d);
  put32(out + 24, (uint32_t)(m->H ? m->p : 0));
  put32(out + 28, (uint32_t)m->n_free);
  if (m->pop) put32(out + HEADER, FLAG_POPULARITY);
  uint8_t *q = out + header_of(m);
  for (int32_t r = 0; r < m->n_free; r++, q += 4) put32(q, (uint32_t)m->free_items[r]);
  q = put_floats(q, m->H, m->H ? (size_t)m->d * m->p : 0);
  q = put_floats(q, m->E, (size_t)m->n_free * m->d);
  if (m->pop) put_floats(q, m->pop, (size_t)m->n_items);
}

uint64_t fedrec_model_implied_size(const uint8_t *b, size_t n, uint32_t *n_items, uint32_t *p) {
  if (n < HEADER || memcmp(b, MAGIC, 4)) return 0;
  uint32_t format = get32(b + 4), header = format == 2 ? HEADER + 4 : HEADER;
  if ((format != 1 && format != 2) || n < header || (format == 2 && get32(b + HEADER) != FLAG_POPULARITY)) return 0;
  uint32_t ni = get32(b + 16), d = get32(b + 20), pp = get32(b + 24), n_free = get32(b + 28);
  if (ni < 1 || ni > (1u << 26) || d < 1 || d > 4096 || pp > 65536 || n_free > ni || (!pp && !n_free)) return 0;
  *n_items = ni, *p = pp;
  return header + 4 * ((uint64_t)n_free + (uint64_t)d * pp + (uint64_t)n_free * d + (format == 2 ? ni : 0));
}

fedrec_status fedrec_model_decode(fedrec_model *m, uint64_t *version, const uint8_t *b, size_t n,
                                  const float *C, int32_t expect_p, fedrec_error *err) {
  memset(m, 0, sizeof *m);
  if (n < HEADER) return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: %zu bytes, shorter than the %d-byte header", n, HEADER);
  if (memcmp(b, MAGIC, 4)) return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: bad magic (not a fedrec model)");
  uint32_t format = get32(b + 4), header = format == 2 ? HEADER + 4 : HEADER, flags = 0;
  if (format != 1 && format != 2) return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: format %u not supported (1, 2)", format);
  if (n < header) return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: %zu bytes, shorter than the %u-byte header", n, header);
  if (format == 2 && (flags = get32(b + HEADER)) != FLAG_POPULARITY)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "model: format 2 with flags %#x (known: %#x, popularity)", flags, FLAG_POPULARITY);
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
