/* The SecAgg+ server state machine: relays keys and share boxes, adds masked inputs into a
 * running sum as they arrive, and removes the masks from the revealed shares.
 * Memory: O(dim) for the sum plus O(n k) for boxes and shares; never n x dim. */
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/secagg.h"
#include "secagg_internal.h"

enum { S_KEYS, S_SHARES, S_MASKED, S_CONSISTENCY, S_UNMASK, S_DONE, S_ABORTED };
enum { F_KEYS = 1, F_SHARED = 2, F_MASKED = 4, F_SIGNED = 8, F_REVEALED = 16, F_PENDING = 32 };

struct fedrec_secagg_server {
  fedrec_secagg_params p;
  const uint8_t (*identity_pks)[FEDREC_SIGN_PK_BYTES];
  sa_graph g;
  uint32_t k;
  int phase;
  uint8_t *flags;          /* per client: F_* */
  fedrec_sa_keys *keys;    /* per client */
  fedrec_sa_box *boxes;    /* by sender: k slots each */
  uint32_t *nboxes;        /* per sender */
  int64_t *in_off;         /* inbox index by recipient (after round 1) */
  uint32_t *in_idx;
  fedrec_sa_box *inbox;    /* scratch for fedrec_secagg_server_inbox */
  fedrec_sa_keys *klist;   /* scratch for fedrec_secagg_server_keylist */
  uint32_t *nb;            /* scratch: k neighbours */
  uint32_t *sum;           /* dim */
  uint32_t *surv;          /* survivor ids */
  uint32_t nsurv;
  fedrec_sa_signature *sigs;
  uint32_t nsigs;
  fedrec_share *shares;    /* per owner: t slots */
  uint32_t *nshares;
  int threads;             /* for unmasking (1: the calling thread) */
  /* every advertised public key (both kinds), so a key used twice is refused: open
   * addressing on a keyed hash (SipHash, random key: clients cannot aim for collisions),
   * slot = 2 * client + kind + 1 (0: empty) */
  uint32_t *kset, kslots;
  uint8_t kset_key[crypto_shorthash_KEYBYTES];
  /* exclusions (round 4): survivor `by` could not open `of`'s share box, so it left their
   * pairwise mask out of its input; key: that mask's key (wiped on free) */
  struct exclusion {
    uint32_t of, by;
    uint8_t key[32];
  } *excl;
  uint32_t nexcl, excl_cap;
  uint32_t culprit; /* a member whose secret could not be rebuilt because its boxes did not open, + 1 */
};

static fedrec_status reject(fedrec_error *err, fedrec_status st, const char *what, uint32_t id) {
  return fedrec_error_set(err, st, "secagg server: %s (client %u)", what, id);
}

fedrec_secagg_server *fedrec_secagg_server_new(const fedrec_secagg_params *p,
                                               const uint8_t (*identity_pks)[FEDREC_SIGN_PK_BYTES],
                                               fedrec_error *err) {
  if (fedrec_secagg_check_params(p, err)) return NULL;
  if (p->active && !identity_pks) {
    fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: the active variant needs identity keys");
    return NULL;
  }
  fedrec_secagg_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->p = *p;
  s->identity_pks = identity_pks;
  s->k = fedrec_secagg_degree(p);
  size_t n = p->n, k = s->k;
  s->flags = calloc(n, 1);
  s->keys = calloc(n, sizeof *s->keys);
  s->nboxes = calloc(n, sizeof *s->nboxes);
  s->klist = malloc((k + 1) * sizeof *s->klist);
  s->nb = malloc(k * sizeof *s->nb);
  s->inbox = malloc(k * sizeof *s->inbox);
  s->sum = calloc(p->dim, sizeof *s->sum);
  s->nshares = calloc(n, sizeof *s->nshares);
  for (s->kslots = 8; s->kslots < 4 * n; s->kslots <<= 1) {
  }
  s->kset = calloc(s->kslots, sizeof *s->kset);
  randombytes_buf(s->kset_key, sizeof s->kset_key);
  if (!s->kset || !s->flags || !s->keys || !s->nboxes || !s->klist || !s->nb || !s->inbox || !s->sum ||
      !s->nshares || fedrec__sa_graph_init(&s->g, p)) {
    fedrec_secagg_server_free(s);
    fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg server for %u clients", p->n);
    return NULL;
  }
  return s;
}

void fedrec_secagg_server_free(fedrec_secagg_server *s) {
  if (!s) return;
  fedrec__sa_graph_free(&s->g);
  free(s->flags), free(s->keys), free(s->boxes), free(s->nboxes), free(s->in_off);
  free(s->in_idx), free(s->inbox), free(s->klist), free(s->nb), free(s->sum), free(s->surv);
  free(s->sigs), free(s->nshares), free(s->kset);
  if (s->excl) {
    sodium_memzero(s->excl, (size_t)s->excl_cap * sizeof *s->excl);
    free(s->excl);
  }
  if (s->shares) {
    sodium_memzero(s->shares, (size_t)s->p.n * s->p.t * sizeof *s->shares);
    free(s->shares);
  }
  free(s);
}

static uint32_t count_flag(const fedrec_secagg_server *s, int f) {
  uint32_t c = 0;
  for (uint32_t u = 0; u < s->p.n; u++) c += (s->flags[u] & f) != 0;
  return c;
}

static fedrec_status abort_round(fedrec_secagg_server *s, fedrec_error *err, const char *what,
                                 uint32_t have) {
  s->phase = S_ABORTED;
  return fedrec_error_set(err, FEDREC_ERR_EMPTY, "secagg server: round aborted: only %u clients %s, threshold %u",
                          have, what, s->p.t);
}

/* The advertised key equal to pk: 1 and its slot when present, else 0 and the free slot to
 * put it in. */
static int key_find(const fedrec_secagg_server *s, const uint8_t pk[FEDREC_PK_BYTES], uint32_t *slot) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, pk, FEDREC_PK_BYTES, s->kset_key);
  uint32_t i = ((uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24) & (s->kslots - 1);
  for (;; i = (i + 1) & (s->kslots - 1)) {
    uint32_t v = s->kset[i];
    if (!v) break;
    const fedrec_sa_keys *k = &s->keys[(v - 1) / 2];
    if (!memcmp((v - 1) % 2 ? k->s_pk : k->c_pk, pk, FEDREC_PK_BYTES)) {
      *slot = i;
      return 1;
    }
  }
  *slot = i;
  return 0;
}

fedrec_status fedrec_secagg_server_on_keys(fedrec_secagg_server *s, const fedrec_sa_keys *m,
                                           fedrec_error *err) {
  if (s->phase != S_KEYS) return reject(err, FEDREC_ERR_ARG, "keys outside round 0", m->id);
  if (m->id >= s->p.n) return reject(err, FEDREC_ERR_PARSE, "unknown client id", m->id);
  if (s->flags[m->id] & F_KEYS) return reject(err, FEDREC_ERR_PARSE, "keys sent twice", m->id);
  if (s->p.active) {
    uint8_t msg[SA_KEYS_MSG_BYTES];
    fedrec__sa_keys_message(msg, s->p.session, m);
    if (fedrec_verify(m->sig, msg, sizeof msg, s->identity_pks[m->id]))
      return reject(err, FEDREC_ERR_PARSE, "bad signature on keys", m->id);
  }
  /* what every honest neighbour would refuse in its key list, refused here, so that one
   * member's bad keys cost only its own place in the round */
  if (!memcmp(m->c_pk, m->s_pk, FEDREC_PK_BYTES)) return reject(err, FEDREC_ERR_PARSE, "both advertised keys are equal", m->id);
  if (!fedrec_kx_pk_valid(m->c_pk) || !fedrec_kx_pk_valid(m->s_pk))
    return reject(err, FEDREC_ERR_PARSE, "an advertised key is a low-order point", m->id);
  uint32_t slot[2];
  for (int kind = 0; kind < 2; kind++)
    if (key_find(s, kind ? m->s_pk : m->c_pk, &slot[kind]))
      return reject(err, FEDREC_ERR_PARSE, "an advertised key is already another member's", m->id);
  s->kset[slot[0]] = 2 * m->id + 1;
  s->keys[m->id] = *m;
  (void)key_find(s, m->s_pk, &slot[1]); /* absent (checked above, and c_pk != s_pk): a free slot */
  s->kset[slot[1]] = 2 * m->id + 2;
  s->flags[m->id] |= F_KEYS;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_close_keys(fedrec_secagg_server *s, fedrec_error *err) {
  if (s->phase != S_KEYS) return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: round 0 is not open");
  uint32_t c = count_flag(s, F_KEYS);
  if (c < s->p.t) return abort_round(s, err, "advertised keys", c);
  s->boxes = malloc((size_t)s->p.n * s->k * sizeof *s->boxes);
  if (!s->boxes) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg server: boxes");
  s->phase = S_SHARES;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_keylist(fedrec_secagg_server *s, uint32_t u,
                                           fedrec_sa_keylist *out, fedrec_error *err) {
  if (s->phase < S_SHARES || u >= s->p.n || !(s->flags[u] & F_KEYS))
    return reject(err, FEDREC_ERR_ARG, "no key list for this client now", u);
  fedrec__sa_graph_neighbours(&s->g, u, s->nb);
  uint32_t m = 0;
  s->klist[m++] = s->keys[u];
  for (uint32_t j = 0; j < s->k; j++)
    if (s->flags[s->nb[j]] & F_KEYS) s->klist[m++] = s->keys[s->nb[j]];
  out->count = m;
  out->keys = s->klist;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_on_boxes(fedrec_secagg_server *s, uint32_t from,
                                            const fedrec_sa_boxes *m, fedrec_error *err) {
  if (s->phase != S_SHARES) return reject(err, FEDREC_ERR_ARG, "share boxes outside round 1", from);
  if (from >= s->p.n || !(s->flags[from] & F_KEYS)) return reject(err, FEDREC_ERR_PARSE, "boxes from a client without keys", from);
  if (s->flags[from] & F_SHARED) return reject(err, FEDREC_ERR_PARSE, "boxes sent twice", from);
  if (m->count > s->k || m->count < s->p.t) return reject(err, FEDREC_ERR_PARSE, "wrong number of share boxes", from);
  for (uint32_t a = 0; a < m->count; a++) {
    const fedrec_sa_box *b = &m->boxes[a];
    int dup = 0;
    for (uint32_t c = 0; c < a; c++) dup |= m->boxes[c].to == b->to;
    if (b->from != from || b->to >= s->p.n || dup || !fedrec__sa_graph_adjacent(&s->g, from, b->to) ||
        !(s->flags[b->to] & F_KEYS))
      return reject(err, FEDREC_ERR_PARSE, "a share box with a wrong sender or recipient", from);
  }
  memcpy(s->boxes + (size_t)from * s->k, m->boxes, m->count * sizeof *m->boxes);
  s->nboxes[from] = m->count;
  s->flags[from] |= F_SHARED;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_close_shares(fedrec_secagg_server *s, fedrec_error *err) {
  if (s->phase != S_SHARES) return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: round 1 is not open");
  uint32_t c = count_flag(s, F_SHARED), n = s->p.n;
  if (c < s->p.t) return abort_round(s, err, "shared keys", c);
  /* Index the boxes of clients that shared by recipient (counting sort). */
  s->in_off = calloc((size_t)n + 1, sizeof *s->in_off);
  uint64_t total = 0;
  for (uint32_t u = 0; u < n; u++)
    if (s->flags[u] & F_SHARED) total += s->nboxes[u];
  s->in_idx = malloc((total + 1) * sizeof *s->in_idx);
  int64_t *fill = calloc((size_t)n + 1, sizeof *fill);
  if (!s->in_off || !s->in_idx || !fill) {
    free(fill);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg server: inbox index");
  }
  for (uint32_t u = 0; u < n; u++)
    if (s->flags[u] & F_SHARED)
      for (uint32_t a = 0; a < s->nboxes[u]; a++) s->in_off[s->boxes[(size_t)u * s->k + a].to + 1]++;
  for (uint32_t v = 0; v < n; v++) s->in_off[v + 1] += s->in_off[v];
  for (uint32_t u = 0; u < n; u++)
    if (s->flags[u] & F_SHARED)
      for (uint32_t a = 0; a < s->nboxes[u]; a++) {
        uint32_t v = s->boxes[(size_t)u * s->k + a].to;
        s->in_idx[s->in_off[v] + fill[v]++] = u * s->k + a;
      }
  free(fill);
  s->phase = S_MASKED;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_inbox(fedrec_secagg_server *s, uint32_t u,
                                         fedrec_sa_boxes *out, fedrec_error *err) {
  if (s->phase != S_MASKED || u >= s->p.n || !(s->flags[u] & F_SHARED))
    return reject(err, FEDREC_ERR_ARG, "no inbox for this client now", u);
  uint32_t m = 0;
  for (int64_t q = s->in_off[u]; q < s->in_off[u + 1]; q++) s->inbox[m++] = s->boxes[s->in_idx[q]];
  out->count = m;
  out->boxes = s->inbox;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_on_masked(fedrec_secagg_server *s, const fedrec_sa_masked *m,
                                             fedrec_error *err) {
  if (s->phase != S_MASKED) return reject(err, FEDREC_ERR_ARG, "masked input outside round 2", m->id);
  if (m->id >= s->p.n || !(s->flags[m->id] & F_SHARED)) return reject(err, FEDREC_ERR_PARSE, "masked input from a client that did not share", m->id);
  if (s->flags[m->id] & F_MASKED) return reject(err, FEDREC_ERR_PARSE, "masked input sent twice", m->id);
  if (m->dim != s->p.dim) return reject(err, FEDREC_ERR_PARSE, "masked input of the wrong length", m->id);
  uint32_t lim = s->p.bits == 32 ? 0xffffffffu : (1u << s->p.bits) - 1;
  for (uint32_t i = 0; i < m->dim; i++)
    if (m->y[i] > lim) return reject(err, FEDREC_ERR_PARSE, "masked value out of range", m->id);
  for (uint32_t i = 0; i < m->dim; i++) s->sum[i] = (s->sum[i] + m->y[i]) & lim;
  s->flags[m->id] |= F_MASKED;
  return FEDREC_OK;
}

/* The sum of several clients' masked inputs, added up mod 2^bits elsewhere (an MPI rank of the
 * simulator): the same checks as one input at a time, all made before anything is added, so a
 * rejected batch changes nothing. */
fedrec_status fedrec_secagg_server_on_masked_sum(fedrec_secagg_server *s, const uint32_t *ids, uint32_t n,
                                                 const uint32_t *y, uint32_t dim, fedrec_error *err) {
  if (s->phase != S_MASKED) return reject(err, FEDREC_ERR_ARG, "masked sum outside round 2", n ? ids[0] : 0);
  if (dim != s->p.dim) return reject(err, FEDREC_ERR_PARSE, "masked sum of the wrong length", n ? ids[0] : 0);
  uint32_t lim = s->p.bits == 32 ? 0xffffffffu : (1u << s->p.bits) - 1, a = 0;
  fedrec_status st = FEDREC_OK;
  for (; a < n && !st; a++) { /* F_PENDING catches a client named twice; cleared below */
    uint32_t u = ids[a];
    if (u >= s->p.n || !(s->flags[u] & F_SHARED)) st = reject(err, FEDREC_ERR_PARSE, "masked sum names a client that did not share", u);
    else if (s->flags[u] & (F_MASKED | F_PENDING)) st = reject(err, FEDREC_ERR_PARSE, "masked input sent twice (in a masked sum)", u);
    else s->flags[u] |= F_PENDING;
  }
  for (uint32_t i = 0; i < dim && !st; i++)
    if (y[i] > lim) st = reject(err, FEDREC_ERR_PARSE, "masked sum value out of range", n ? ids[0] : 0);
  for (uint32_t b = 0; b < a; b++)
    if (ids[b] < s->p.n && (s->flags[ids[b]] & F_PENDING))
      s->flags[ids[b]] = (uint8_t)((s->flags[ids[b]] & ~F_PENDING) | (st ? 0 : F_MASKED));
  if (st) return st;
  for (uint32_t i = 0; i < dim; i++) s->sum[i] = (s->sum[i] + y[i]) & lim;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_close_masked(fedrec_secagg_server *s, fedrec_error *err) {
  if (s->phase != S_MASKED) return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: round 2 is not open");
  uint32_t c = count_flag(s, F_MASKED);
  if (c < s->p.t) return abort_round(s, err, "sent masked input", c);
  s->surv = malloc(((size_t)c + 1) * sizeof *s->surv);
  s->sigs = malloc(((size_t)c + 1) * sizeof *s->sigs);
  s->shares = calloc((size_t)s->p.n * s->p.t, sizeof *s->shares);
  if (!s->surv || !s->sigs || !s->shares) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg server: survivors");
  s->nsurv = 0;
  for (uint32_t u = 0; u < s->p.n; u++)
    if (s->flags[u] & F_MASKED) s->surv[s->nsurv++] = u;
  s->phase = s->p.active ? S_CONSISTENCY : S_UNMASK;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_survivors(fedrec_secagg_server *s, fedrec_sa_survivors *out,
                                             fedrec_error *err) {
  if (s->phase != S_CONSISTENCY && s->phase != S_UNMASK)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: no survivor list now");
  out->count = s->nsurv;
  out->ids = s->surv;
  out->sigs = s->phase == S_UNMASK ? s->sigs : NULL;
  out->nsigs = s->phase == S_UNMASK ? s->nsigs : 0;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_on_signature(fedrec_secagg_server *s,
                                                const fedrec_sa_signature *m, fedrec_error *err) {
  if (s->phase != S_CONSISTENCY) return reject(err, FEDREC_ERR_ARG, "signature outside round 3", m->id);
  if (m->id >= s->p.n || !(s->flags[m->id] & F_MASKED) || (s->flags[m->id] & F_SIGNED))
    return reject(err, FEDREC_ERR_PARSE, "signature from a non-survivor or sent twice", m->id);
  uint8_t *msg;
  size_t len = fedrec__sa_list_message(&msg, s->p.session, s->surv, s->nsurv);
  if (!len) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg server");
  int ok = fedrec_verify(m->sig, msg, len, s->identity_pks[m->id]) == FEDREC_OK;
  free(msg);
  if (!ok) return reject(err, FEDREC_ERR_PARSE, "bad survivor-list signature", m->id);
  s->sigs[s->nsigs++] = *m;
  s->flags[m->id] |= F_SIGNED;
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_server_close_consistency(fedrec_secagg_server *s, fedrec_error *err) {
  if (s->phase != S_CONSISTENCY) return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: round 3 is not open");
  if (s->nsigs < s->p.t) return abort_round(s, err, "signed the survivor list", s->nsigs);
  s->phase = S_UNMASK;
  return FEDREC_OK;
}

/* 1 when client `from` sent a share box to `to` (so `to` may have failed to open it). */
static int boxed(const fedrec_secagg_server *s, uint32_t from, uint32_t to) {
  if (from >= s->p.n || !(s->flags[from] & F_SHARED)) return 0;
  for (uint32_t a = 0; a < s->nboxes[from]; a++)
    if (s->boxes[(size_t)from * s->k + a].to == to) return 1;
  return 0;
}

/* The exclusion "by left its pairwise mask with of out", or NULL. */
static const struct exclusion *excluded(const fedrec_secagg_server *s, uint32_t of, uint32_t by) {
  for (uint32_t e = 0; e < s->nexcl; e++)
    if (s->excl[e].of == of && s->excl[e].by == by) return &s->excl[e];
  return NULL;
}

fedrec_status fedrec_secagg_server_on_reveals(fedrec_secagg_server *s, const fedrec_sa_reveals *m,
                                              fedrec_error *err) {
  if (s->phase != S_UNMASK) return reject(err, FEDREC_ERR_ARG, "reveals outside round 4", m->id);
  uint32_t r = m->id;
  if (r >= s->p.n || !(s->flags[r] & F_MASKED) || (s->flags[r] & F_REVEALED) ||
      (s->p.active && !(s->flags[r] & F_SIGNED)))
    return reject(err, FEDREC_ERR_PARSE, "reveals from a non-survivor or sent twice", r);
  if (m->count > s->k) return reject(err, FEDREC_ERR_PARSE, "more reveals than neighbours", r);
  uint32_t nex = 0;
  for (uint32_t a = 0; a < m->count; a++) { /* validate everything before storing anything */
    const fedrec_sa_reveal *x = &m->items[a];
    int want = x->of < s->p.n && (s->flags[x->of] & F_MASKED) ? FEDREC_SA_REVEAL_SELF : FEDREC_SA_REVEAL_KEY;
    if (x->of >= s->p.n || !(s->flags[x->of] & F_SHARED) || !fedrec__sa_graph_adjacent(&s->g, r, x->of) ||
        (x->kind != want && !(x->kind == FEDREC_SA_REVEAL_EXCLUDED && boxed(s, x->of, r))) || x->share.x != r + 1)
      return reject(err, FEDREC_ERR_PARSE, "a revealed share of the wrong kind, owner or point", r);
    for (uint32_t b = 0; b < a; b++) /* one item per neighbour: a repeated share would spoil its reconstruction */
      if (m->items[b].of == x->of) return reject(err, FEDREC_ERR_PARSE, "two reveals about one neighbour", r);
    nex += x->kind == FEDREC_SA_REVEAL_EXCLUDED;
  }
  if (nex && s->nexcl + nex > s->excl_cap) {
    uint32_t cap = s->excl_cap ? 2 * s->excl_cap : 64;
    while (cap < s->nexcl + nex) cap *= 2;
    struct exclusion *e = calloc(cap, sizeof *e);
    if (!e) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg server: exclusions");
    if (s->excl) {
      memcpy(e, s->excl, (size_t)s->nexcl * sizeof *e);
      sodium_memzero(s->excl, (size_t)s->excl_cap * sizeof *s->excl);
      free(s->excl);
    }
    s->excl = e, s->excl_cap = cap;
  }
  for (uint32_t a = 0; a < m->count; a++) {
    const fedrec_sa_reveal *x = &m->items[a];
    if (x->kind == FEDREC_SA_REVEAL_EXCLUDED) {
      struct exclusion *e = &s->excl[s->nexcl++];
      e->of = x->of, e->by = r;
      for (int w = 0; w < 4; w++)
        for (int b = 0; b < 8; b++) e->key[8 * w + b] = (uint8_t)(x->share.y[w] >> (8 * b));
    } else if (s->nshares[x->of] < s->p.t) {
      s->shares[(size_t)x->of * s->p.t + s->nshares[x->of]++] = x->share;
    }
  }
  s->flags[r] |= F_REVEALED;
  return FEDREC_OK;
}

uint32_t fedrec_secagg_server_culprit(const fedrec_secagg_server *s) { return s->culprit; }

size_t fedrec_secagg_server_memory(const fedrec_secagg_server *s) {
  size_t n = s->p.n, k = s->k, b = sizeof *s;
  b += n * (1 + sizeof *s->keys + sizeof *s->nboxes + sizeof *s->nshares);
  b += (k + 1) * sizeof *s->klist + k * (sizeof *s->nb + sizeof *s->inbox);
  b += (size_t)s->p.dim * sizeof *s->sum + 2 * n * sizeof(uint32_t); /* sum, graph */
  b += (size_t)s->kslots * sizeof *s->kset;
  if (s->boxes) b += n * k * sizeof *s->boxes;
  if (s->in_off) b += (n + 1) * sizeof *s->in_off + n * k * sizeof *s->in_idx;
  if (s->surv) b += (n + 1) * (sizeof *s->surv + sizeof *s->sigs);
  if (s->shares) b += n * s->p.t * sizeof *s->shares;
  b += (size_t)s->excl_cap * sizeof *s->excl;
  return b;
}

/* The mask keys that undo one dropped client v's pairwise terms in the sum (one per neighbour
 * that sent a masked input), from its reconstructed key seed: appended at keys + 32 * *nk. */
static fedrec_status pair_keys(fedrec_secagg_server *s, uint32_t v, const uint8_t *seed, uint8_t *key,
                               uint8_t *keys, int *signs, size_t *nk) {
  fedrec_kx_keypair kp;
  if (fedrec_kx_keypair_from_seed(&kp, seed)) return FEDREC_ERR_NOMEM;
  fedrec_status st = memcmp(kp.pk, s->keys[v].s_pk, 32) ? FEDREC_ERR_PARSE : FEDREC_OK;
  fedrec__sa_graph_neighbours(&s->g, v, s->nb);
  for (uint32_t j = 0; j < s->k && !st; j++) {
    uint32_t u = s->nb[j];
    if (!(s->flags[u] & F_MASKED) || excluded(s, v, u)) continue; /* u left this mask out */
    if (fedrec_kx_agree(key, kp.sk, kp.pk, s->keys[u].s_pk, SA_LABEL_MASK)) {
      st = FEDREC_ERR_PARSE;
      break;
    }
    fedrec_mask_key(keys + 32 * *nk, key, s->p.session, FEDREC_MASK_PAIR, u < v ? u : v, u < v ? v : u, 0);
    signs[(*nk)++] = u < v ? -1 : +1; /* undo u's term */
  }
  fedrec_kx_keypair_free(&kp);
  return st;
}

typedef struct {
  uint32_t *y;
  size_t from, to, count;
  const uint8_t *keys;
  const int *signs;
  int bits;
} unmask_part;

static void *unmask_worker(void *arg) {
  unmask_part *u = arg;
  fedrec_mask_apply_range(u->y, u->from, u->to, u->keys, u->signs, u->count, u->bits);
  return NULL;
}

void fedrec_secagg_server_set_threads(fedrec_secagg_server *s, int threads) {
  s->threads = threads < 1 ? 1 : threads > FEDREC_SECAGG_MAX_THREADS ? FEDREC_SECAGG_MAX_THREADS : threads;
}

/* Subtracts every mask in one pass over the sum, its coordinates split over s->threads
 * threads (ranges of whole 16-word ChaCha20 blocks, as fedrec_mask_apply_range needs; the
 * calling thread takes the first range). */
static void unmask(fedrec_secagg_server *s, const uint8_t *keys, const int *signs, size_t nk) {
  size_t dim = s->p.dim, chunk = 16, chunks = (dim + chunk - 1) / chunk;
  int t = s->threads > 1 ? s->threads : 1;
  if ((size_t)t > chunks) t = chunks ? (int)chunks : 1;
  unmask_part part[FEDREC_SECAGG_MAX_THREADS];
  pthread_t th[FEDREC_SECAGG_MAX_THREADS];
  int started[FEDREC_SECAGG_MAX_THREADS] = {0};
  for (int i = 0; i < t; i++) {
    size_t a = chunks * i / t * chunk, b = chunks * (i + 1) / t * chunk;
    part[i] = (unmask_part){s->sum, a, b < dim ? b : dim, nk, keys, signs, (int)s->p.bits};
  }
  for (int i = 1; i < t; i++) started[i] = pthread_create(&th[i], NULL, unmask_worker, &part[i]) == 0;
  unmask_worker(&part[0]);
  for (int i = 1; i < t; i++) { /* a thread that could not start: its range here */
    if (started[i]) pthread_join(th[i], NULL);
    else unmask_worker(&part[i]);
  }
}

/* 1 when some survivor's input holds a pairwise mask with u: a masked neighbour that did
 * not leave it out. */
static int in_any_mask(fedrec_secagg_server *s, uint32_t u) {
  fedrec__sa_graph_neighbours(&s->g, u, s->nb);
  for (uint32_t j = 0; j < s->k; j++)
    if ((s->flags[s->nb[j]] & F_MASKED) && !excluded(s, u, s->nb[j])) return 1;
  return 0;
}

fedrec_status fedrec_secagg_server_finish(fedrec_secagg_server *s, uint32_t *sum,
                                          uint32_t *n_summed, fedrec_error *err) {
  if (s->phase != S_UNMASK) return fedrec_error_set(err, FEDREC_ERR_ARG, "secagg server: not in the unmasking round");
  /* first every secret and mask key (nothing touches the sum while a share may still fail),
   * then all masks off in one pass: a self mask per survivor, and for each client that
   * dropped after sharing, its pairwise masks with the neighbours that sent inputs */
  size_t cap = s->nexcl;
  for (uint32_t u = 0; u < s->p.n; u++)
    if (s->flags[u] & F_SHARED) cap += (s->flags[u] & F_MASKED) ? 1 : s->k;
  uint8_t *secret = fedrec_secret_alloc(32), *key = fedrec_secret_alloc(32);
  uint8_t *keys = fedrec_secret_alloc((cap ? cap : 1) * 32);
  int *signs = malloc((cap ? cap : 1) * sizeof *signs);
  size_t nk = 0;
  fedrec_status st = secret && key && keys && signs ? FEDREC_OK : FEDREC_ERR_NOMEM;
  if (st) fedrec_error_set(err, st, "secagg server: %zu mask keys", cap);
  for (uint32_t u = 0; u < s->p.n && !st; u++) {
    int masked = (s->flags[u] & F_MASKED) != 0;
    if (!(s->flags[u] & F_SHARED)) continue; /* dropped before sharing: in nobody's masks */
    if (!masked && !in_any_mask(s, u)) continue; /* dropped, and every survivor left it out */
    if (s->nshares[u] < s->p.t) {
      /* too many of its recipients could not open its boxes to rebuild it without them: its
       * own doing (a coalition that large already breaks the threshold assumption) */
      uint32_t against = 0;
      for (uint32_t e = 0; e < s->nexcl; e++) against += s->excl[e].of == u;
      if (against && s->nboxes[u] < s->p.t + against) s->culprit = u + 1;
      st = fedrec_error_set(err, FEDREC_ERR_EMPTY, "secagg server: round aborted: %u of %u shares of client %u's %s%s",
                            s->nshares[u], s->p.t, u, masked ? "self mask" : "mask key",
                            s->culprit == u + 1 ? " (its share boxes did not open for its neighbours)" : "");
      break;
    }
    if (fedrec_shamir_combine(secret, s->shares + (size_t)u * s->p.t, (int)s->p.t)) {
      st = FEDREC_ERR_PARSE;
      fedrec_error_set(err, st, "secagg server: the shares of client %u do not reconstruct", u);
      break;
    }
    if (masked) {
      fedrec_mask_key(keys + 32 * nk, secret, s->p.session, FEDREC_MASK_SELF, u, 0, 0);
      signs[nk++] = -1;
      /* survivors that left their mask with u out (u's box did not open for them): u's half of
       * each such mask is in the sum alone, removed with the key they revealed (unless u left
       * it out too: then neither half is there) */
      for (uint32_t e = 0; e < s->nexcl; e++) {
        uint32_t by = s->excl[e].by;
        if (s->excl[e].of != u || !(s->flags[by] & F_MASKED) || excluded(s, by, u)) continue;
        memcpy(keys + 32 * nk, s->excl[e].key, 32);
        signs[nk++] = u < by ? -1 : +1; /* undo u's term (+ when u is the lower id) */
      }
    } else if ((st = pair_keys(s, u, secret, key, keys, signs, &nk))) {
      fedrec_error_set(err, st, "secagg server: client %u's reconstructed mask key does not match its public key", u);
    }
  }
  if (!st) unmask(s, keys, signs, nk);
  fedrec_secret_free(secret), fedrec_secret_free(key), fedrec_secret_free(keys); /* wiped */
  free(signs);
  if (st) {
    s->phase = S_ABORTED;
    return st;
  }
  memcpy(sum, s->sum, (size_t)s->p.dim * sizeof *sum);
  if (n_summed) *n_summed = s->nsurv;
  s->phase = S_DONE;
  return FEDREC_OK;
}
