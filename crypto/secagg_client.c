/* The SecAgg+ client state machine. Every check a correct client makes happens before it
 * reveals anything; on a failed check it stops (the round goes on without it). A share box
 * that does not open is the sender's fault, not the server's: the client treats that sender
 * as dropped (no pairwise mask with it, no share of it) and says so when it reveals. */
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/secagg.h"
#include "secagg_internal.h"

enum { C_NEW, C_ADVERTISED, C_SHARED, C_MASKED, C_SIGNED, C_DONE, C_FAILED };

struct fedrec_secagg_client {
  fedrec_secagg_params p;
  uint32_t id, k;
  int phase;
  const fedrec_identity *identity;
  const uint8_t (*identity_pks)[FEDREC_SIGN_PK_BYTES];
  fedrec_kx_keypair ckey, skey;
  uint8_t *secrets;        /* one guarded block: b, both secret keys, the shares held */
  uint8_t *b;              /* self-mask seed (in secrets) */
  uint8_t *share_keys;     /* k x 32: the share-box key with each neighbour (in secrets) */
  /* scratch in secrets, wiped after each use (one guarded block, not one per use): our
   * secrets' shares while sharing, a share box's plaintext, a mask seed and key, a point */
  fedrec_share *tmp_b, *tmp_s;
  uint8_t *plain, *seed, *point, *mk; /* mk: k + 1 mask keys */
  int *msign;                          /* their signs */
  uint32_t *nb;            /* k neighbours, sorted */
  fedrec_sa_keys *nkeys;   /* keys of each neighbour (valid when in1) */
  uint8_t *in1, *in2;      /* neighbour advertised (round 1) / shared with us (round 2) */
  uint8_t *rejected;       /* its share box to us did not open: dropped for us (round 2) */
  fedrec_share *sh_b, *sh_s; /* shares we hold of each neighbour's b and mask key */
  uint8_t *revealed;       /* 0, FEDREC_SA_REVEAL_SELF or FEDREC_SA_REVEAL_KEY per neighbour */
  fedrec_sa_box *out_boxes;
  uint32_t *y;
  fedrec_sa_reveal *reveals;
  uint32_t *signed_ids;    /* the survivor list signed in round 3 */
  uint32_t nsigned;
};

static fedrec_status fail(fedrec_secagg_client *c, fedrec_status st, fedrec_error *err,
                          const char *what) {
  c->phase = C_FAILED;
  return fedrec_error_set(err, st, "secagg client %u: %s", c->id, what);
}

/* Index of v in the sorted neighbour list, or -1. */
static int nb_index(const fedrec_secagg_client *c, uint32_t v) {
  uint32_t lo = 0, hi = c->k;
  while (lo < hi) {
    uint32_t mid = (lo + hi) / 2;
    if (c->nb[mid] < v) lo = mid + 1;
    else hi = mid;
  }
  return lo < c->k && c->nb[lo] == v ? (int)lo : -1;
}

fedrec_secagg_client *fedrec_secagg_client_new(const fedrec_secagg_params *p, uint32_t id,
                                               const fedrec_identity *identity,
                                               const uint8_t (*identity_pks)[FEDREC_SIGN_PK_BYTES],
                                               fedrec_error *err) {
  if (fedrec_secagg_check_params(p, err)) return NULL;
  if (id >= p->n || (p->active && (!identity || !identity_pks))) {
    fedrec_error_set(err, FEDREC_ERR_ARG, "secagg client: id %u out of range or missing identity", id);
    return NULL;
  }
  fedrec_secagg_client *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->p = *p;
  c->id = id;
  c->k = fedrec_secagg_degree(p);
  c->identity = identity;
  c->identity_pks = identity_pks;
  size_t k = c->k;
  c->nb = malloc(k * sizeof *c->nb);
  c->nkeys = calloc(k, sizeof *c->nkeys);
  c->in1 = calloc(k, 1);
  c->in2 = calloc(k, 1);
  c->revealed = calloc(k, 1);
  c->rejected = calloc(k, 1);
  /* layout: shares of b (k), shares of mask keys (k), our shares of b and s_sk (2k), b, c_sk,
   * s_sk, share-box keys (k), scratch: a box's plaintext, seed, point, mask keys (k + 1) */
  c->secrets = fedrec_secret_alloc(4 * k * sizeof(fedrec_share) + 3 * 32 + k * 32 + FEDREC_SA_SHARE_PLAIN + 2 * 32 +
                                   (k + 1) * 32);
  c->msign = malloc((k + 1) * sizeof *c->msign);
  sa_graph g;
  if (!c->nb || !c->nkeys || !c->in1 || !c->in2 || !c->revealed || !c->rejected || !c->secrets || !c->msign ||
      fedrec__sa_graph_init(&g, p) != FEDREC_OK) {
    fedrec_secagg_client_free(c);
    fedrec_error_set(err, FEDREC_ERR_NOMEM, "secagg client %u", id);
    return NULL;
  }
  c->sh_b = (fedrec_share *)c->secrets;
  c->sh_s = c->sh_b + k;
  c->tmp_b = c->sh_s + k;
  c->tmp_s = c->tmp_b + k;
  c->b = (uint8_t *)(c->tmp_s + k);
  c->share_keys = c->b + 3 * 32;
  c->plain = c->share_keys + k * 32;
  c->seed = c->plain + FEDREC_SA_SHARE_PLAIN;
  c->point = c->seed + 32;
  c->mk = c->point + 32;
  fedrec__sa_graph_neighbours(&g, id, c->nb);
  fedrec__sa_graph_free(&g);
  return c;
}

void fedrec_secagg_client_free(fedrec_secagg_client *c) {
  if (!c) return;
  fedrec_kx_keypair_free(&c->ckey);
  fedrec_kx_keypair_free(&c->skey);
  fedrec_secret_free(c->secrets); /* wipes b, the secret keys and the shares */
  free(c->nb), free(c->nkeys), free(c->in1), free(c->in2), free(c->revealed), free(c->rejected), free(c->msign);
  free(c->out_boxes), free(c->y), free(c->reveals), free(c->signed_ids);
  free(c);
}

fedrec_status fedrec_secagg_client_advertise(fedrec_secagg_client *c, fedrec_sa_keys *out,
                                             fedrec_error *err) {
  if (c->phase != C_NEW) return fail(c, FEDREC_ERR_ARG, err, "advertise out of order");
  fedrec_kx_keypair_new_in(&c->ckey, c->b + 32);
  fedrec_kx_keypair_new_in(&c->skey, c->b + 64);
  memset(out, 0, sizeof *out);
  out->id = c->id;
  memcpy(out->c_pk, c->ckey.pk, 32);
  memcpy(out->s_pk, c->skey.pk, 32);
  if (c->p.active) {
    uint8_t msg[SA_KEYS_MSG_BYTES];
    fedrec__sa_keys_message(msg, c->p.session, out);
    fedrec_sign(out->sig, msg, sizeof msg, c->identity);
  }
  c->phase = C_ADVERTISED;
  return FEDREC_OK;
}

/* Validates the server's key list; fills nkeys/in1. */
static fedrec_status check_keylist(fedrec_secagg_client *c, const fedrec_sa_keylist *in,
                                   fedrec_error *err) {
  int self = 0;
  uint32_t live = 0;
  if (in->count > c->k + 1) return fail(c, FEDREC_ERR_PARSE, err, "key list longer than the neighbourhood");
  for (uint32_t a = 0; a < in->count; a++) {
    const fedrec_sa_keys *e = &in->keys[a];
    if (!memcmp(e->c_pk, e->s_pk, 32)) return fail(c, FEDREC_ERR_PARSE, err, "a client's two keys are equal");
    for (uint32_t b = 0; b < a; b++)
      if (in->keys[b].id == e->id || !memcmp(in->keys[b].c_pk, e->c_pk, 32) ||
          !memcmp(in->keys[b].s_pk, e->s_pk, 32) || !memcmp(in->keys[b].c_pk, e->s_pk, 32) ||
          !memcmp(in->keys[b].s_pk, e->c_pk, 32))
        return fail(c, FEDREC_ERR_PARSE, err, "duplicate client or key in the key list");
    if (c->p.active) {
      uint8_t msg[SA_KEYS_MSG_BYTES];
      fedrec__sa_keys_message(msg, c->p.session, e);
      if (e->id >= c->p.n || fedrec_verify(e->sig, msg, sizeof msg, c->identity_pks[e->id]))
        return fail(c, FEDREC_ERR_PARSE, err, "bad signature on advertised keys");
    }
    if (e->id == c->id) {
      if (memcmp(e->c_pk, c->ckey.pk, 32) || memcmp(e->s_pk, c->skey.pk, 32))
        return fail(c, FEDREC_ERR_PARSE, err, "the key list holds keys that are not ours under our id");
      self = 1;
      continue;
    }
    int j = nb_index(c, e->id);
    if (j < 0) return fail(c, FEDREC_ERR_PARSE, err, "the key list names a client that is not our neighbour");
    c->nkeys[j] = *e;
    c->in1[j] = 1;
    live++;
  }
  if (!self) return fail(c, FEDREC_ERR_PARSE, err, "we are missing from the key list");
  if (live < c->p.t) return fail(c, FEDREC_ERR_EMPTY, err, "fewer neighbours advertised keys than the threshold");
  return FEDREC_OK;
}

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static void put_share(uint8_t *p, const fedrec_share *s) {
  put32(p, s->x);
  for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++)
    for (int i = 0; i < 8; i++) p[4 + 8 * c + i] = (uint8_t)(s->y[c] >> (8 * i));
}
static void get_share(fedrec_share *s, const uint8_t *p) {
  s->x = get32(p);
  for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) {
    s->y[c] = 0;
    for (int i = 0; i < 8; i++) s->y[c] |= (uint64_t)p[4 + 8 * c + i] << (8 * i);
  }
}

fedrec_status fedrec_secagg_client_share(fedrec_secagg_client *c, const fedrec_sa_keylist *in,
                                         fedrec_sa_boxes *out, fedrec_error *err) {
  if (c->phase != C_ADVERTISED) return fail(c, FEDREC_ERR_ARG, err, "share out of order");
  fedrec_status st = check_keylist(c, in, err);
  if (st) return st;
  uint32_t live = 0, *xs = malloc(c->k * sizeof *xs);
  fedrec_share *sb = c->tmp_b, *ss = c->tmp_s;
  uint8_t *plain = c->plain;
  c->out_boxes = malloc(c->k * sizeof *c->out_boxes);
  if (!xs || !c->out_boxes) {
    st = fail(c, FEDREC_ERR_NOMEM, err, "sharing");
    goto done;
  }
  for (uint32_t j = 0; j < c->k; j++)
    if (c->in1[j]) xs[live++] = c->nb[j] + 1;
  randombytes_buf(c->b, 32);
  if (fedrec_shamir_split(sb, xs, (int)live, (int)c->p.t, c->b) ||
      fedrec_shamir_split(ss, xs, (int)live, (int)c->p.t, c->skey.sk)) {
    st = fail(c, FEDREC_ERR_ARG, err, "secret sharing");
    goto done;
  }
  for (uint32_t j = 0, m = 0; j < c->k; j++) {
    if (!c->in1[j]) continue;
    uint32_t v = c->nb[j];
    uint8_t *key = c->share_keys + (size_t)j * 32; /* kept: round 2 opens with the same key */
    if (fedrec_kx_agree_in(key, c->ckey.sk, c->ckey.pk, c->nkeys[j].c_pk, SA_LABEL_SHARE, c->point)) {
      st = fail(c, FEDREC_ERR_PARSE, err, "a neighbour's encryption key is invalid");
      goto done;
    }
    put32(plain, c->id);
    put32(plain + 4, v);
    put_share(plain + 8, &sb[m]);
    put_share(plain + 8 + 4 + 8 * FEDREC_SHAMIR_CHUNKS, &ss[m]);
    fedrec_sa_box *bx = &c->out_boxes[m++];
    bx->from = c->id;
    bx->to = v;
    fedrec_seal(bx->data, plain, FEDREC_SA_SHARE_PLAIN, key, c->p.session, c->id, v);
  }
  out->count = live;
  out->boxes = c->out_boxes;
  c->phase = C_SHARED;
done:
  free(xs);
  sodium_memzero(sb, c->k * sizeof *sb);
  sodium_memzero(ss, c->k * sizeof *ss);
  sodium_memzero(plain, FEDREC_SA_SHARE_PLAIN);
  return st;
}

/* Opens the boxes addressed to us; fills sh_b, sh_s, in2. */
static fedrec_status open_inbox(fedrec_secagg_client *c, const fedrec_sa_boxes *in,
                                fedrec_error *err) {
  uint8_t *plain = c->plain;
  fedrec_status st = FEDREC_OK;
  uint32_t live = 0;
  for (uint32_t a = 0; !st && a < in->count; a++) {
    const fedrec_sa_box *bx = &in->boxes[a];
    int j = nb_index(c, bx->from);
    if (bx->to != c->id || j < 0 || !c->in1[j] || c->in2[j] || c->rejected[j]) { /* the server's relay is wrong */
      st = fail(c, FEDREC_ERR_PARSE, err, "a share box from an unknown, repeated or non-neighbour sender");
      break;
    }
    /* in1[j]: we derived this key when we shared with j in round 1. A box that does not
     * open, or holds shares for another point, was made so by its sender (the key and the
     * nonce are ours and theirs only): that sender is dropped for us, the round goes on */
    if (fedrec_open(plain, bx->data, FEDREC_SA_BOX_BYTES, c->share_keys + (size_t)j * 32,
                    c->p.session, bx->from, c->id) ||
        get32(plain) != bx->from || get32(plain + 4) != c->id) {
      c->rejected[j] = 1;
      continue;
    }
    get_share(&c->sh_b[j], plain + 8);
    get_share(&c->sh_s[j], plain + 8 + 4 + 8 * FEDREC_SHAMIR_CHUNKS);
    if (c->sh_b[j].x != c->id + 1 || c->sh_s[j].x != c->id + 1) {
      sodium_memzero(&c->sh_b[j], sizeof c->sh_b[j]);
      sodium_memzero(&c->sh_s[j], sizeof c->sh_s[j]);
      c->rejected[j] = 1;
      continue;
    }
    c->in2[j] = 1;
    live++;
  }
  if (!st && live < c->p.t) st = fail(c, FEDREC_ERR_EMPTY, err, "fewer neighbours shared keys than the threshold");
  sodium_memzero(plain, FEDREC_SA_SHARE_PLAIN);
  return st;
}

/* The pairwise mask key with neighbour j into key (32 bytes of secure memory); -1 when its
 * mask public key is invalid. */
static int pair_mask_key(fedrec_secagg_client *c, uint32_t j, uint8_t *key) {
  uint32_t v = c->nb[j], lo = c->id < v ? c->id : v, hi = c->id < v ? v : c->id;
  int bad = fedrec_kx_agree_in(c->seed, c->skey.sk, c->skey.pk, c->nkeys[j].s_pk, SA_LABEL_MASK, c->point) != FEDREC_OK;
  if (!bad) fedrec_mask_key(key, c->seed, c->p.session, FEDREC_MASK_PAIR, lo, hi, 0);
  sodium_memzero(c->seed, 32);
  return bad ? -1 : 0;
}

/* The self mask's and each live neighbour's mask key into c->mk, their signs into c->msign;
 * *nk: how many. */
static fedrec_status mask_keys(fedrec_secagg_client *c, size_t *nk, fedrec_error *err) {
  uint8_t *mk = c->mk;
  fedrec_status st = FEDREC_OK;
  *nk = 1;
  fedrec_mask_key(mk, c->b, c->p.session, FEDREC_MASK_SELF, c->id, 0, 0);
  c->msign[0] = +1;
  for (uint32_t j = 0; j < c->k; j++) {
    if (!c->in2[j]) continue;
    if (pair_mask_key(c, j, mk + *nk * 32)) {
      st = fail(c, FEDREC_ERR_PARSE, err, "a neighbour's mask key is invalid");
      break;
    }
    c->msign[(*nk)++] = c->id < c->nb[j] ? +1 : -1;
  }
  return st;
}

fedrec_status fedrec_secagg_client_mask(fedrec_secagg_client *c, const fedrec_sa_boxes *in,
                                        const uint32_t *x, fedrec_sa_masked *out,
                                        fedrec_error *err) {
  if (c->phase != C_SHARED) return fail(c, FEDREC_ERR_ARG, err, "mask out of order");
  fedrec_status st = open_inbox(c, in, err);
  if (st) return st;
  uint32_t dim = c->p.dim, bits = c->p.bits;
  uint32_t lim = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
  size_t nk = 0;
  c->y = malloc((size_t)dim * sizeof *c->y);
  if (!c->y) {
    st = fail(c, FEDREC_ERR_NOMEM, err, "masking");
    goto done;
  }
  if ((st = mask_keys(c, &nk, err))) goto done;
  for (uint32_t i = 0; i < dim; i++) c->y[i] = x[i] & lim;
  /* the self mask and one pairwise mask per live neighbour, in one pass */
  fedrec_mask_apply_many(c->y, dim, c->mk, c->msign, nk, (int)bits);
  out->id = c->id;
  out->dim = dim;
  out->y = c->y;
  c->phase = C_MASKED;
done:
  sodium_memzero(c->mk, ((size_t)c->k + 1) * 32);
  return st;
}

fedrec_status fedrec_secagg_client_mask_add(fedrec_secagg_client *c, const fedrec_sa_boxes *in,
                                            const uint32_t *x, uint32_t *sum, fedrec_error *err) {
  if (c->phase != C_SHARED) return fail(c, FEDREC_ERR_ARG, err, "mask out of order");
  fedrec_status st = open_inbox(c, in, err);
  if (st) return st;
  size_t nk = 0;
  if (!(st = mask_keys(c, &nk, err))) {
    fedrec_mask_add_many(sum, x, c->p.dim, c->mk, c->msign, nk, (int)c->p.bits);
    c->phase = C_MASKED;
  }
  sodium_memzero(c->mk, ((size_t)c->k + 1) * 32);
  return st;
}

void fedrec_secagg_client_release_masked(fedrec_secagg_client *c) {
  free(c->y);
  c->y = NULL;
}

/* Survivor-list checks shared by rounds 3 and 4. */
static fedrec_status check_survivors(fedrec_secagg_client *c, const fedrec_sa_survivors *in,
                                     fedrec_error *err) {
  int self = 0;
  uint32_t live = 0;
  if (in->count > c->p.n) return fail(c, FEDREC_ERR_PARSE, err, "survivor list longer than the cohort");
  for (uint32_t a = 0; a < in->count; a++) {
    uint32_t v = in->ids[a];
    if (v >= c->p.n || (a > 0 && in->ids[a - 1] >= v))
      return fail(c, FEDREC_ERR_PARSE, err, "survivor list unsorted, repeated or out of range");
    if (v == c->id) {
      self = 1;
      continue;
    }
    int j = nb_index(c, v);
    if (j < 0) continue; /* not our neighbour: not our business */
    /* a neighbour that did not share with us cannot have survived: an unknown or dead entry
     * (one whose box did not open for us did share, with the server: it may have survived) */
    if (c->rejected[j]) continue;
    if (!c->in2[j]) return fail(c, FEDREC_ERR_PARSE, err, "survivor list names a neighbour that never shared keys with us");
    live++;
  }
  if (!self) return fail(c, FEDREC_ERR_PARSE, err, "we are missing from the survivor list");
  if (live < c->p.t) return fail(c, FEDREC_ERR_EMPTY, err, "fewer neighbours survived than the threshold");
  return FEDREC_OK;
}

fedrec_status fedrec_secagg_client_consistency(fedrec_secagg_client *c,
                                               const fedrec_sa_survivors *in,
                                               fedrec_sa_signature *out, fedrec_error *err) {
  if (c->phase != C_MASKED || !c->p.active) return fail(c, FEDREC_ERR_ARG, err, "consistency out of order");
  fedrec_status st = check_survivors(c, in, err);
  if (st) return st;
  uint8_t *msg;
  size_t len = fedrec__sa_list_message(&msg, c->p.session, in->ids, in->count);
  c->signed_ids = malloc(((size_t)in->count + 1) * sizeof *c->signed_ids);
  if (!len || !c->signed_ids) {
    free(msg);
    return fail(c, FEDREC_ERR_NOMEM, err, "consistency");
  }
  memcpy(c->signed_ids, in->ids, (size_t)in->count * sizeof *in->ids);
  c->nsigned = in->count;
  out->id = c->id;
  fedrec_sign(out->sig, msg, len, c->identity);
  free(msg);
  c->phase = C_SIGNED;
  return FEDREC_OK;
}

/* Active variant: the list is the one we signed, and at least t survivors signed it. */
static fedrec_status check_signatures(fedrec_secagg_client *c, const fedrec_sa_survivors *in,
                                      fedrec_error *err) {
  if (in->count != c->nsigned || memcmp(in->ids, c->signed_ids, (size_t)in->count * 4))
    return fail(c, FEDREC_ERR_PARSE, err, "the survivor list differs from the one we signed");
  uint8_t *msg;
  size_t len = fedrec__sa_list_message(&msg, c->p.session, in->ids, in->count);
  if (!len) return fail(c, FEDREC_ERR_NOMEM, err, "signatures");
  uint32_t good = 0;
  fedrec_status st = FEDREC_OK;
  for (uint32_t a = 0; a < in->nsigs && !st; a++) {
    const fedrec_sa_signature *sg = &in->sigs[a];
    int listed = 0;
    for (uint32_t b = 0; b < in->count && !listed; b++) listed = in->ids[b] == sg->id;
    for (uint32_t b = 0; b < a; b++)
      if (in->sigs[b].id == sg->id) listed = 0;
    if (!listed || fedrec_verify(sg->sig, msg, len, c->identity_pks[sg->id]))
      st = fail(c, FEDREC_ERR_PARSE, err, "a survivor-list signature is invalid, repeated or from a non-survivor");
    good++;
  }
  free(msg);
  if (!st && good < c->p.t) st = fail(c, FEDREC_ERR_EMPTY, err, "fewer survivor signatures than the threshold");
  return st;
}

fedrec_status fedrec_secagg_client_unmask(fedrec_secagg_client *c, const fedrec_sa_survivors *in,
                                          fedrec_sa_reveals *out, fedrec_error *err) {
  if (c->phase != (c->p.active ? C_SIGNED : C_MASKED)) return fail(c, FEDREC_ERR_ARG, err, "unmask out of order");
  fedrec_status st = c->p.active ? check_signatures(c, in, err) : check_survivors(c, in, err);
  if (st) return st;
  uint8_t *alive = calloc(c->k, 1);
  c->reveals = malloc(c->k * sizeof *c->reveals);
  if (!alive || !c->reveals) {
    free(alive);
    return fail(c, FEDREC_ERR_NOMEM, err, "unmask");
  }
  for (uint32_t a = 0; a < in->count; a++) {
    int j = nb_index(c, in->ids[a]);
    if (j >= 0) alive[j] = 1;
  }
  uint32_t m = 0;
  for (uint32_t j = 0; j < c->k; j++) {
    if (c->rejected[j]) { /* we left our pairwise mask with it out: say so, with the mask's key */
      fedrec_sa_reveal *x = &c->reveals[m++];
      memset(x, 0, sizeof *x);
      x->of = c->nb[j];
      x->kind = FEDREC_SA_REVEAL_EXCLUDED;
      x->share.x = c->id + 1;
      if (pair_mask_key(c, j, c->mk)) { /* c->mk: guarded scratch, unused by now */
        free(alive);
        return fail(c, FEDREC_ERR_PARSE, err, "a neighbour's mask key is invalid");
      }
      for (int w = 0; w < 4; w++)
        for (int b = 0; b < 8; b++) x->share.y[w] |= (uint64_t)c->mk[8 * w + b] << (8 * b);
      sodium_memzero(c->mk, 32);
      continue;
    }
    if (!c->in2[j]) continue;
    int kind = alive[j] ? FEDREC_SA_REVEAL_SELF : FEDREC_SA_REVEAL_KEY;
    if (c->revealed[j] && c->revealed[j] != kind) { /* never both shares of one neighbour */
      free(alive);
      return fail(c, FEDREC_ERR_PARSE, err, "asked for both shares of one neighbour");
    }
    c->revealed[j] = (uint8_t)kind;
    c->reveals[m++] = (fedrec_sa_reveal){c->nb[j], kind, kind == FEDREC_SA_REVEAL_SELF ? c->sh_b[j] : c->sh_s[j]};
  }
  free(alive);
  out->id = c->id;
  out->count = m;
  out->items = c->reveals;
  c->phase = C_DONE;
  return FEDREC_OK;
}
