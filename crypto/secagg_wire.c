/* Wire encoding of the SecAgg+ messages; every decoder has a fuzz target. */
#include <stdlib.h>
#include <string.h>

#include "fedrec/secagg.h"

#define HDR 4
#define KEYS_BYTES (4 + 32 + 32 + FEDREC_SIG_BYTES)
#define BOX_WIRE (4 + 4 + FEDREC_SA_BOX_BYTES)
#define SHARE_WIRE (4 + 8 * FEDREC_SHAMIR_CHUNKS)
#define REVEAL_WIRE (4 + 1 + SHARE_WIRE)
#define SIG_WIRE (4 + FEDREC_SIG_BYTES)

typedef struct {
  uint8_t *p;
  size_t n, cap;
} wr;

static void w_bytes(wr *w, const void *b, size_t n) {
  if (w->p && w->n + n <= w->cap) memcpy(w->p + w->n, b, n);
  w->n += n;
}
static void w_u32(wr *w, uint32_t v) {
  uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  w_bytes(w, b, 4);
}
static void w_u64(wr *w, uint64_t v) {
  w_u32(w, (uint32_t)v);
  w_u32(w, (uint32_t)(v >> 32));
}
static void w_hdr(wr *w, int type) {
  uint8_t h[HDR] = {'F', 'S', FEDREC_SA_WIRE_VERSION, (uint8_t)type};
  w_bytes(w, h, HDR);
}
/* Returns the size; if it did not fit, nothing useful was written (callers size first). */
static size_t w_done(wr *w) { return w->n; }

static void w_keys(wr *w, const fedrec_sa_keys *k) {
  w_u32(w, k->id);
  w_bytes(w, k->c_pk, 32);
  w_bytes(w, k->s_pk, 32);
  w_bytes(w, k->sig, FEDREC_SIG_BYTES);
}

size_t fedrec_sa_encode_keys(uint8_t *out, size_t cap, const fedrec_sa_keys *m) {
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_KEYS);
  w_keys(&w, m);
  return w_done(&w);
}

size_t fedrec_sa_encode_keylist(uint8_t *out, size_t cap, const fedrec_sa_keylist *m) {
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_KEYLIST);
  w_u32(&w, m->count);
  for (uint32_t a = 0; a < m->count; a++) w_keys(&w, &m->keys[a]);
  return w_done(&w);
}

size_t fedrec_sa_encode_boxes(uint8_t *out, size_t cap, const fedrec_sa_boxes *m) {
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_BOXES);
  w_u32(&w, m->count);
  for (uint32_t a = 0; a < m->count; a++) {
    w_u32(&w, m->boxes[a].from);
    w_u32(&w, m->boxes[a].to);
    w_bytes(&w, m->boxes[a].data, FEDREC_SA_BOX_BYTES);
  }
  return w_done(&w);
}

/* Little-endian bit stream, 32 bits at a time (bytes assembled by hand: any host order). */
static void store32(uint8_t *p, uint64_t v) {
  p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}
static uint64_t load32(const uint8_t *p) {
  return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24;
}

void fedrec_pack_bits(uint8_t *out, const uint32_t *in, size_t n, uint32_t bits) {
  uint64_t acc = 0; /* holds `have` <= 31 bits between values, so a value (<= 32 bits) fits */
  uint32_t have = 0;
  size_t o = 0;
  uint64_t mask = bits == 32 ? 0xffffffffULL : ((1ULL << bits) - 1);
  for (size_t i = 0; i < n; i++) {
    acc |= ((uint64_t)in[i] & mask) << have;
    have += bits;
    if (have >= 32) {
      store32(out + o, acc);
      o += 4, acc >>= 32, have -= 32;
    }
  }
  for (; have > 0; have = have > 8 ? have - 8 : 0) out[o++] = (uint8_t)acc, acc >>= 8;
}

void fedrec_unpack_bits(uint32_t *out, const uint8_t *in, size_t n, uint32_t bits) {
  size_t nbytes = (n * bits + 7) / 8, o = 0;
  uint64_t acc = 0, mask = bits == 32 ? 0xffffffffULL : ((1ULL << bits) - 1);
  uint32_t have = 0;
  for (size_t i = 0; i < n; i++) {
    if (have < bits) { /* have < 32: room for 32 more */
      if (o + 4 <= nbytes) acc |= load32(in + o) << have, o += 4, have += 32;
      else
        while (have < bits) acc |= (uint64_t)in[o++] << have, have += 8;
    }
    out[i] = (uint32_t)(acc & mask);
    acc >>= bits;
    have -= bits;
  }
}

size_t fedrec_sa_encode_masked(uint8_t *out, size_t cap, const fedrec_sa_masked *m,
                               uint32_t bits) {
  size_t packed = ((size_t)m->dim * bits + 7) / 8, need = HDR + 4 + 4 + 1 + packed;
  if (!out || cap < need) return need;
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_MASKED);
  w_u32(&w, m->id);
  w_u32(&w, m->dim);
  uint8_t b = (uint8_t)bits;
  w_bytes(&w, &b, 1);
  fedrec_pack_bits(out + w.n, m->y, m->dim, bits);
  return need;
}

size_t fedrec_sa_encode_survivors(uint8_t *out, size_t cap, const fedrec_sa_survivors *m) {
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_SURVIVORS);
  w_u32(&w, m->count);
  for (uint32_t a = 0; a < m->count; a++) w_u32(&w, m->ids[a]);
  w_u32(&w, m->nsigs);
  for (uint32_t a = 0; a < m->nsigs; a++) {
    w_u32(&w, m->sigs[a].id);
    w_bytes(&w, m->sigs[a].sig, FEDREC_SIG_BYTES);
  }
  return w_done(&w);
}

size_t fedrec_sa_encode_signature(uint8_t *out, size_t cap, const fedrec_sa_signature *m) {
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_SIGNATURE);
  w_u32(&w, m->id);
  w_bytes(&w, m->sig, FEDREC_SIG_BYTES);
  return w_done(&w);
}

size_t fedrec_sa_encode_reveals(uint8_t *out, size_t cap, const fedrec_sa_reveals *m) {
  wr w = {out, 0, cap};
  w_hdr(&w, FEDREC_SA_MSG_REVEALS);
  w_u32(&w, m->id);
  w_u32(&w, m->count);
  for (uint32_t a = 0; a < m->count; a++) {
    const fedrec_sa_reveal *r = &m->items[a];
    w_u32(&w, r->of);
    uint8_t k = (uint8_t)r->kind;
    w_bytes(&w, &k, 1);
    w_u32(&w, r->share.x);
    for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) w_u64(&w, r->share.y[c]);
  }
  return w_done(&w);
}

/* ---- decoding ---- */

typedef struct {
  const uint8_t *p;
  size_t n, off;
} rd;

static int r_left(const rd *r, size_t n) { return r->n - r->off >= n; }
static uint32_t r_u32(rd *r) {
  const uint8_t *b = r->p + r->off;
  r->off += 4;
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}
static uint64_t r_u64(rd *r) {
  uint64_t lo = r_u32(r);
  return lo | (uint64_t)r_u32(r) << 32;
}
static void r_bytes(rd *r, void *out, size_t n) {
  memcpy(out, r->p + r->off, n);
  r->off += n;
}
static void r_keys(rd *r, fedrec_sa_keys *k) {
  k->id = r_u32(r);
  r_bytes(r, k->c_pk, 32);
  r_bytes(r, k->s_pk, 32);
  r_bytes(r, k->sig, FEDREC_SIG_BYTES);
}

static fedrec_status bad(fedrec_error *err, const char *what, size_t off) {
  return fedrec_error_set(err, FEDREC_ERR_PARSE, "secagg message: %s at byte %zu", what, off);
}

/* Reads a count and checks that count items of `each` bytes follow within the cap. */
static fedrec_status r_count(rd *r, uint32_t *count, uint32_t cap, size_t each, fedrec_error *err) {
  if (!r_left(r, 4)) return bad(err, "truncated count", r->off);
  *count = r_u32(r);
  if (*count > cap) return bad(err, "count above the cap", r->off - 4);
  if (!r_left(r, (size_t)*count * each)) return bad(err, "truncated list", r->off);
  return FEDREC_OK;
}

/* A masked input: id, dimension, bits, then the values bit-packed with zero padding. */
static fedrec_status decode_masked(fedrec_sa_msg *m, rd *r, uint32_t max_dim, fedrec_error *err) {
  if (!r_left(r, 9)) return bad(err, "truncated masked input", r->off);
  m->u.masked.id = r_u32(r);
  uint32_t dim = r_u32(r);
  uint8_t bits;
  r_bytes(r, &bits, 1);
  if (bits < 1 || bits > 32) return bad(err, "bits out of range 1..32", r->off - 1);
  if (dim < 1 || dim > max_dim) return bad(err, "dimension out of range", r->off - 5);
  size_t packed = ((size_t)dim * bits + 7) / 8;
  if (r->n - r->off != packed) return bad(err, "packed vector of the wrong length", r->off);
  uint32_t spare = (uint32_t)(packed * 8 - (size_t)dim * bits); /* canonical: zero padding */
  if (spare && (r->p[r->n - 1] >> (8 - spare))) return bad(err, "nonzero padding bits", r->n - 1);
  if (!(m->u.masked.y = malloc((size_t)dim * 4))) return FEDREC_ERR_NOMEM;
  fedrec_unpack_bits(m->u.masked.y, r->p + r->off, dim, bits);
  r->off += packed;
  m->u.masked.dim = dim;
  m->bits = bits;
  return FEDREC_OK;
}

static fedrec_status decode_body(fedrec_sa_msg *m, rd *r, uint32_t max_clients, uint32_t max_dim,
                                 fedrec_error *err) {
  fedrec_status st = FEDREC_OK;
  uint32_t c;
  switch (m->type) {
  case FEDREC_SA_MSG_KEYS:
    if (!r_left(r, KEYS_BYTES)) return bad(err, "truncated keys", r->off);
    r_keys(r, &m->u.keys);
    return FEDREC_OK;
  case FEDREC_SA_MSG_KEYLIST:
    if ((st = r_count(r, &c, max_clients, KEYS_BYTES, err))) return st;
    if (!(m->u.keylist.keys = malloc(((size_t)c + 1) * sizeof(fedrec_sa_keys)))) return FEDREC_ERR_NOMEM;
    m->u.keylist.count = c;
    for (uint32_t a = 0; a < c; a++) r_keys(r, &m->u.keylist.keys[a]);
    return FEDREC_OK;
  case FEDREC_SA_MSG_BOXES:
    if ((st = r_count(r, &c, max_clients, BOX_WIRE, err))) return st;
    if (!(m->u.boxes.boxes = malloc(((size_t)c + 1) * sizeof(fedrec_sa_box)))) return FEDREC_ERR_NOMEM;
    m->u.boxes.count = c;
    for (uint32_t a = 0; a < c; a++) {
      m->u.boxes.boxes[a].from = r_u32(r);
      m->u.boxes.boxes[a].to = r_u32(r);
      r_bytes(r, m->u.boxes.boxes[a].data, FEDREC_SA_BOX_BYTES);
    }
    return FEDREC_OK;
  case FEDREC_SA_MSG_MASKED:
    return decode_masked(m, r, max_dim, err);
  case FEDREC_SA_MSG_SURVIVORS:
    if ((st = r_count(r, &c, max_clients, 4, err))) return st;
    if (!(m->u.survivors.ids = malloc(((size_t)c + 1) * 4))) return FEDREC_ERR_NOMEM;
    m->u.survivors.count = c;
    for (uint32_t a = 0; a < c; a++) m->u.survivors.ids[a] = r_u32(r);
    if ((st = r_count(r, &c, max_clients, SIG_WIRE, err))) return st;
    if (!(m->u.survivors.sigs = malloc(((size_t)c + 1) * sizeof(fedrec_sa_signature)))) return FEDREC_ERR_NOMEM;
    m->u.survivors.nsigs = c;
    for (uint32_t a = 0; a < c; a++) {
      m->u.survivors.sigs[a].id = r_u32(r);
      r_bytes(r, m->u.survivors.sigs[a].sig, FEDREC_SIG_BYTES);
    }
    return FEDREC_OK;
  case FEDREC_SA_MSG_SIGNATURE:
    if (!r_left(r, SIG_WIRE)) return bad(err, "truncated signature", r->off);
    m->u.signature.id = r_u32(r);
    r_bytes(r, m->u.signature.sig, FEDREC_SIG_BYTES);
    return FEDREC_OK;
  case FEDREC_SA_MSG_REVEALS:
    if (!r_left(r, 4)) return bad(err, "truncated reveals", r->off);
    m->u.reveals.id = r_u32(r);
    if ((st = r_count(r, &c, max_clients, REVEAL_WIRE, err))) return st;
    if (!(m->u.reveals.items = malloc(((size_t)c + 1) * sizeof(fedrec_sa_reveal)))) return FEDREC_ERR_NOMEM;
    m->u.reveals.count = c;
    for (uint32_t a = 0; a < c; a++) {
      fedrec_sa_reveal *x = &m->u.reveals.items[a];
      x->of = r_u32(r);
      uint8_t k;
      r_bytes(r, &k, 1);
      if (k != FEDREC_SA_REVEAL_SELF && k != FEDREC_SA_REVEAL_KEY && k != FEDREC_SA_REVEAL_EXCLUDED)
        return bad(err, "unknown reveal kind", r->off - 1);
      x->kind = k;
      x->share.x = r_u32(r);
      for (int ch = 0; ch < FEDREC_SHAMIR_CHUNKS; ch++) x->share.y[ch] = r_u64(r);
    }
    return FEDREC_OK;
  default:
    return bad(err, "unknown message type", 3);
  }
}

fedrec_status fedrec_sa_decode(fedrec_sa_msg *m, const uint8_t *buf, size_t len,
                               uint32_t max_clients, uint32_t max_dim, fedrec_error *err) {
  memset(m, 0, sizeof *m);
  if (len < HDR || buf[0] != 'F' || buf[1] != 'S') return bad(err, "not a fedrec secagg message", 0);
  if (buf[2] != FEDREC_SA_WIRE_VERSION) return bad(err, "unsupported version", 2);
  rd r = {buf, len, HDR};
  m->type = buf[3];
  fedrec_status st = decode_body(m, &r, max_clients, max_dim, err);
  if (st == FEDREC_ERR_NOMEM) fedrec_error_set(err, st, "secagg message: out of memory");
  if (!st && r.off != len) st = bad(err, "trailing bytes", r.off);
  if (st) fedrec_sa_msg_free(m);
  return st;
}

void fedrec_sa_msg_free(fedrec_sa_msg *m) {
  if (!m) return;
  switch (m->type) {
  case FEDREC_SA_MSG_KEYLIST: free(m->u.keylist.keys); break;
  case FEDREC_SA_MSG_BOXES: free(m->u.boxes.boxes); break;
  case FEDREC_SA_MSG_MASKED: free(m->u.masked.y); break;
  case FEDREC_SA_MSG_SURVIVORS: free(m->u.survivors.ids), free(m->u.survivors.sigs); break;
  case FEDREC_SA_MSG_REVEALS: free(m->u.reveals.items); break;
  default: break;
  }
  memset(m, 0, sizeof *m);
}
