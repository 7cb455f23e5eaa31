/* A client's part in one round (see include/fedrec/participant.h). */
#include "fedrec/internal/sim.h"
#include "fedrec/participant.h"
#include "fedrec/enrol.h"

#include <math.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

struct fedrec_participant {
  fedrec_round_info info;
  uint8_t *certs;                       /* a copy of info.certs (active variant) */
  const fedrec_identity *identity;      /* set_identity: borrowed */
  uint8_t authority[FEDREC_SIGN_PK_BYTES];
  uint8_t (*ipks)[FEDREC_SIGN_PK_BYTES]; /* the cohort's identity keys, checked at keys() */
  fedrec_secagg_client *sa;
  uint32_t *encoded; /* padded, mod 2^bits: the only form of the update that is kept */
  double loss;
};

static void wipe_free(void *p, size_t n) {
  if (!p) return;
  sodium_memzero(p, n);
  free(p);
}

/* The round info, with its own copy of the cohort's certificates (the caller's may go). */
static fedrec_status take_info(fedrec_participant *p, const fedrec_round_info *info, fedrec_error *err) {
  p->info = *info;
  p->info.certs = NULL;
  if (!info->certs || !info->certs_len) {
    p->info.certs_len = 0;
    return FEDREC_OK;
  }
  if (!(p->certs = malloc(info->certs_len))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: certificates");
  memcpy(p->certs, info->certs, info->certs_len);
  p->info.certs = p->certs;
  return FEDREC_OK;
}

/* Clip, rotate, round, noise and wrap the update into p->encoded. */
static fedrec_status encode(fedrec_participant *p, const float *update, const fedrec_entropy *entropy, double *dwork,
                            fedrec_error *err) {
  fedrec_entropy e;
  if (entropy) e = *entropy;
  else fedrec_csprng(&e);
  return fedrec_ddp_encode(p->encoded, update, &p->info.ddp, &e, dwork, err);
}

fedrec_status fedrec_participant_new_update(fedrec_participant **out, const fedrec_round_info *info,
                                            const float *update, int64_t dim, const fedrec_entropy *entropy,
                                            fedrec_error *err) {
  *out = NULL;
  if (dim != (int64_t)info->ddp.dim)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "participant: an update of %lld parameters, the round expects %u",
                            (long long)dim, info->ddp.dim);
  fedrec_participant *p = calloc(1, sizeof *p);
  if (!p) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant");
  fedrec_status s = take_info(p, info, err);
  uint32_t padded = fedrec_ddp_padded(info->ddp.dim);
  double *dwork = malloc((size_t)padded * sizeof *dwork);
  p->encoded = malloc((size_t)padded * sizeof *p->encoded);
  if (!s) s = !dwork || !p->encoded ? fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: %u", padded)
                                    : encode(p, update, entropy, dwork, err);
  wipe_free(dwork, (size_t)padded * sizeof *dwork);
  if (s) {
    fedrec_participant_free(p);
    return s;
  }
  *out = p;
  return FEDREC_OK;
}

fedrec_status fedrec_participant_new(fedrec_participant **out, const fedrec_round_info *info,
                                     const fedrec_model *model, const int32_t *items,
                                     const float *w, int32_t n, const fedrec_entropy *entropy,
                                     fedrec_error *err) {
  return fedrec_participant_new_shared(out, info, model, NULL, NULL, items, w, n, entropy, err);
}

/* M with M (M + 1) / 2 = dim, or -1. */
static int32_t gram_items(uint32_t dim) {
  int64_t M = (int64_t)floor((sqrt(8.0 * dim + 1) - 1) / 2);
  while (M > 0 && fedrec_gram_dim((int32_t)M) > dim) M--;
  while (fedrec_gram_dim((int32_t)M + 1) <= dim) M++;
  return fedrec_gram_dim((int32_t)M) == dim ? (int32_t)M : -1;
}

/* The round and the history against the model: update length (the parameter count, or the
 * catalogue's size in a count round), a history, its items. */
static fedrec_status check_inputs(const fedrec_round_info *info, const fedrec_model *model, const int32_t *items, int32_t n,
                                  fedrec_error *err) {
  int64_t dim = fedrec_model_params(model);
  if (info->kind != FEDREC_ROUND_MODEL && info->kind != FEDREC_ROUND_COUNT && info->kind != FEDREC_ROUND_GRAM)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "participant: round kind %d unknown", (int)info->kind);
  int32_t M = info->kind == FEDREC_ROUND_GRAM ? gram_items(info->ddp.dim) : 0;
  if (info->kind == FEDREC_ROUND_GRAM && (!model->pop || M < 1 || M > model->n_items || M > FEDREC_MAX_SPECTRAL_ITEMS))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "participant: a spectral round of %u numbers: not M (M + 1) / 2 for M up to "
                            "the model's %d items and %d, or the model has no popularity", info->ddp.dim, model->n_items,
                            FEDREC_MAX_SPECTRAL_ITEMS);
  if (info->kind == FEDREC_ROUND_COUNT && (int64_t)info->ddp.dim != model->n_items)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "participant: a count round over %u items, the model has %d",
                            info->ddp.dim, model->n_items);
  if (info->kind == FEDREC_ROUND_MODEL && dim != (int64_t)info->ddp.dim)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "participant: the model has %lld parameters, the round expects %u",
                            (long long)dim, info->ddp.dim);
  if (n < 1) return fedrec_error_set(err, FEDREC_ERR_EMPTY, "participant: no history");
  for (int32_t j = 0; j < n; j++)
    if (items[j] < 0 || items[j] >= model->n_items)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "participant: history item %d not in the model's %d items", items[j], model->n_items);
  return FEDREC_OK;
}

/* The update sent: after K > 1 local steps the total move x_0 - x_K (into grad); after one,
 * lr times the gradient. */
static void total_move(float *grad, const fedrec_model *model, const float *x, uint32_t K, float lr, int64_t dim) {
  if (K > 1) {
    fedrec_model_get_params(grad, model);
    for (int64_t i = 0; i < dim; i++) grad[i] -= x[i];
  } else if (lr != 1.0f) {
    for (int64_t i = 0; i < dim; i++) grad[i] *= lr;
  }
}

/* A count round: the 0/1 vector of the history's items (the pipeline clips it to the clip norm:
 * with clip 1 each of the user's n items counts 1/sqrt(n)). It reveals the history as much as a
 * gradient does, and is protected the same way: noise, masks, the ledger. */
static fedrec_status count_update(fedrec_participant **out, const fedrec_round_info *info, int32_t ni, const int32_t *items,
                                  int32_t n, const fedrec_entropy *entropy, fedrec_error *err) {
  float *x = calloc((size_t)ni, sizeof *x);
  if (!x) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: counts of %d items", ni);
  for (int32_t j = 0; j < n; j++) x[items[j]] = 1.0f;
  fedrec_status s = fedrec_participant_new_update(out, info, x, ni, entropy, err);
  wipe_free(x, (size_t)ni * sizeof *x);
  return s;
}

/* A spectral round: the co-occurrence of the history's items among the published model's M most
 * popular (the list derived from the model, as the coordinator derives it). */
static fedrec_status gram_update(fedrec_participant **out, const fedrec_round_info *info, const fedrec_model *model,
                                 const int32_t *items, int32_t n, const fedrec_entropy *entropy, fedrec_error *err) {
  int32_t M = gram_items(info->ddp.dim);
  int32_t *top = malloc((size_t)M * sizeof *top);
  float *x = malloc((size_t)info->ddp.dim * sizeof *x);
  fedrec_status s = !top || !x ? fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: co-occurrence over %d items", M)
                               : fedrec_model_top_popular(top, model, M, err);
  if (!s) s = fedrec_gram_update(x, top, M, model->n_items, items, n, err);
  if (!s) s = fedrec_participant_new_update(out, info, x, info->ddp.dim, entropy, err);
  if (x) wipe_free(x, (size_t)info->ddp.dim * sizeof *x);
  free(top);
  return s;
}

fedrec_status fedrec_participant_new_shared(fedrec_participant **out, const fedrec_round_info *info,
                                            const fedrec_model *model, const float *V0, const float *G0,
                                            const int32_t *items, const float *w, int32_t n,
                                            const fedrec_entropy *entropy, fedrec_error *err) {
  *out = NULL;
  int64_t dim = fedrec_model_params(model);
  fedrec_status s = check_inputs(info, model, items, n, err);
  if (s) return s;
  if (info->kind == FEDREC_ROUND_COUNT) return count_update(out, info, model->n_items, items, n, entropy, err);
  if (info->kind == FEDREC_ROUND_GRAM) return gram_update(out, info, model, items, n, entropy, err);
  fedrec_participant *p = calloc(1, sizeof *p);
  if (!p) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant");
  if ((s = take_info(p, info, err))) return fedrec_participant_free(p), s;
  int32_t d = fedrec_model_vdim(model), ni = model->n_items; /* item and user vectors' width */
  uint32_t padded = fedrec_ddp_padded(info->ddp.dim);
  size_t nv = (size_t)ni * d, swork = fedrec_user_solve_work(d, n), gwork = fedrec_user_grad_work(model, n);
  float *V = malloc(nv * sizeof *V), *G = malloc((size_t)d * d * sizeof *G), *u = malloc((size_t)d * sizeof *u);
  float *work = malloc((swork > gwork ? swork : gwork) * sizeof *work);
  float *grad = calloc((size_t)dim, sizeof *grad);
  double *dwork = malloc((size_t)padded * sizeof *dwork);
  p->encoded = malloc((size_t)padded * sizeof *p->encoded);
  if (!V || !G || !u || !work || !grad || !dwork || !p->encoded)
    s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: %d items x %d", ni, d);
  /* local training: K gradient steps of size lr on a private copy x of the parameters; the
   * update is the total move x_0 - x_K. K = 1 sends lr times the gradient (lr = 1: the gradient
   * itself, as before local steps existed). */
  uint32_t K = info->local_steps > 1 ? info->local_steps : 1;
  float lr = info->client_lr > 0 ? info->client_lr : 1.0f;
  size_t ne = (size_t)model->n_free * model->d;
  float *x = NULL;
  fedrec_model local = *model;
  if (!s && K > 1) {
    if (!(x = malloc((size_t)dim * sizeof *x))) s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: local copy");
    else {
      fedrec_model_get_params(x, model);
      local.E = ne ? x : NULL;
      local.H = model->H ? x + ne : NULL;
    }
  }
  for (uint32_t step = 0; step < K && !s; step++) {
    const float *Vs = V, *Gs = G; /* step 0 on the model as published: the caller's, if given */
    if (step == 0 && V0 && G0) Vs = V0, Gs = G0;
    else {
      fedrec_model_item_vectors(V, &local);
      fedrec_gramian(G, V, ni, d);
    }
    s = fedrec_user_solve(u, Vs, Gs, ni, d, items, w, n, info->alpha0, info->reg, work);
    if (s) {
      fedrec_error_set(err, s, "participant: the user's system is not positive definite");
      break;
    }
    double loss;
    fedrec_user_loss_grad(&loss, ne ? grad : NULL, model->H ? grad + ne : NULL, &local, Vs, u, items, w, n,
                          info->alpha0, info->reg, work);
    if (step == 0) p->loss = loss;
    if (K > 1)
      for (int64_t i = 0; i < dim; i++) x[i] -= lr * grad[i];
  }
  if (!s) {
    total_move(grad, model, x, K, lr, dim);
    s = encode(p, grad, entropy, dwork, err);
  }
  if (x) { /* the locally trained parameters, and item vectors derived from them, are private */
    wipe_free(x, (size_t)dim * sizeof *x);
    sodium_memzero(V, nv * sizeof *V);
    sodium_memzero(G, (size_t)d * d * sizeof *G);
  }
  /* the user vector and the raw gradient are private: wipe them */
  wipe_free(u, (size_t)d * sizeof *u);
  wipe_free(grad, (size_t)dim * sizeof *grad);
  wipe_free(work, (swork > gwork ? swork : gwork) * sizeof *work);
  wipe_free(dwork, (size_t)padded * sizeof *dwork);
  free(V), free(G);
  if (s) {
    fedrec_participant_free(p);
    return s;
  }
  *out = p;
  return FEDREC_OK;
}

static void drop_encoded(fedrec_participant *p) {
  wipe_free(p->encoded, (size_t)fedrec_ddp_padded(p->info.ddp.dim) * sizeof *p->encoded);
  p->encoded = NULL;
}

void fedrec_participant_free(fedrec_participant *p) {
  if (!p) return;
  fedrec_secagg_client_free(p->sa);
  wipe_free(p->encoded, (size_t)fedrec_ddp_padded(p->info.ddp.dim) * sizeof *p->encoded);
  free(p->certs), free(p->ipks);
  free(p);
}

double fedrec_participant_loss(const fedrec_participant *p) { return p->loss; }

/* Allocates and fills a wire message with an encoder of the given shape. */
#define ENCODE(fn, msg, ...)                                                        \
  do {                                                                              \
    size_t n_ = fn(NULL, 0, msg, ##__VA_ARGS__);                                    \
    uint8_t *b_ = malloc(n_);                                                       \
    if (!b_) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: %zu bytes", n_); \
    fn(b_, n_, msg, ##__VA_ARGS__);                                                 \
    *out = b_;                                                                      \
    *len = n_;                                                                      \
  } while (0)

static fedrec_status decode_as(fedrec_sa_msg *m, int type, const fedrec_participant *p,
                               const uint8_t *b, size_t n, fedrec_error *err) {
  if (!p->sa) return fedrec_error_set(err, FEDREC_ERR_STATE, "participant: keys must be advertised first");
  fedrec_status s = fedrec_sa_decode(m, b, n, p->info.secagg.n, p->info.secagg.dim, err);
  if (s) return s;
  if (m->type != type) {
    fedrec_sa_msg_free(m);
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "participant: expected message type %d, got %d", type, m->type);
  }
  return FEDREC_OK;
}

fedrec_status fedrec_participant_set_identity(fedrec_participant *p, const fedrec_identity *identity,
                                              const uint8_t authority_pk[FEDREC_SIGN_PK_BYTES], fedrec_error *err) {
  if (p->sa) return fedrec_error_set(err, FEDREC_ERR_STATE, "participant: the identity must be set before the keys");
  p->identity = identity;
  memcpy(p->authority, authority_pk, FEDREC_SIGN_PK_BYTES);
  return FEDREC_OK;
}

/* The active variant's preconditions, checked before any key leaves: a device with an
 * identity takes part in active rounds only, and trusts only the authority's certificates. */
static fedrec_status check_variant(fedrec_participant *p, fedrec_error *err) {
  const fedrec_round_info *in = &p->info;
  if (p->identity && !in->secagg.active)
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "round %llu: the coordinator offered the passive secure-aggregation "
                            "variant; this device is enrolled for the active one and refuses to downgrade",
                            (unsigned long long)in->round);
  if (!in->secagg.active) return FEDREC_OK;
  if (!p->identity)
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "round %llu runs the active secure-aggregation variant: this device has "
                            "no enrolled identity (fedrec-client enrol)", (unsigned long long)in->round);
  if (!(p->ipks = malloc((size_t)in->secagg.n * sizeof *p->ipks)))
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "participant: %u identity keys", in->secagg.n);
  fedrec_error e2 = {0};
  if (fedrec_cert_cohort(in->certs, in->certs_len, in->secagg.n, in->cohort_index, p->identity->pk, p->authority, p->ipks, &e2))
    return fedrec_error_set(err, FEDREC_ERR_AUTH, "round %llu: %s", (unsigned long long)in->round, e2.msg);
  return FEDREC_OK;
}

fedrec_status fedrec_participant_keys(fedrec_participant *p, uint8_t **out, size_t *len,
                                      fedrec_error *err) {
  if (p->sa) return fedrec_error_set(err, FEDREC_ERR_STATE, "participant: keys were already advertised");
  fedrec_status s = check_variant(p, err);
  if (s) return s;
  /* the SecAgg client (its secrets in locked memory) exists only in secure-aggregation rounds */
  p->sa = fedrec_secagg_client_new(&p->info.secagg, p->info.cohort_index, p->identity,
                                   (const uint8_t(*)[FEDREC_SIGN_PK_BYTES])p->ipks, err);
  if (!p->sa) return err ? err->status : FEDREC_ERR_ARG;
  fedrec_sa_keys k;
  s = fedrec_secagg_client_advertise(p->sa, &k, err);
  if (s) return s;
  ENCODE(fedrec_sa_encode_keys, &k);
  return FEDREC_OK;
}

fedrec_status fedrec_participant_shares(fedrec_participant *p, const uint8_t *keylist, size_t n,
                                        uint8_t **out, size_t *len, fedrec_error *err) {
  fedrec_sa_msg m;
  fedrec_status s = decode_as(&m, FEDREC_SA_MSG_KEYLIST, p, keylist, n, err);
  if (s) return s;
  fedrec_sa_boxes bx;
  s = fedrec_secagg_client_share(p->sa, &m.u.keylist, &bx, err);
  fedrec_sa_msg_free(&m);
  if (s) return s;
  ENCODE(fedrec_sa_encode_boxes, &bx);
  return FEDREC_OK;
}

/* Opens the inbox and masks the encoded update: into *y (owned by the SecAgg client until
 * fedrec_secagg_client_release_masked), or, given sum, straight into that running sum. */
static fedrec_status mask_update(fedrec_participant *p, const uint8_t *inbox, size_t n, fedrec_sa_masked *y,
                                 uint32_t *sum, fedrec_error *err) {
  fedrec_sa_msg m;
  fedrec_status s = decode_as(&m, FEDREC_SA_MSG_BOXES, p, inbox, n, err);
  if (s) return s;
  if (!p->encoded) {
    fedrec_sa_msg_free(&m);
    return fedrec_error_set(err, FEDREC_ERR_STATE, "participant: the masked update was already sent");
  }
  s = sum ? fedrec_secagg_client_mask_add(p->sa, &m.u.boxes, p->encoded, sum, err)
          : fedrec_secagg_client_mask(p->sa, &m.u.boxes, p->encoded, y, err);
  fedrec_sa_msg_free(&m);
  return s;
}

fedrec_status fedrec_participant_masked(fedrec_participant *p, const uint8_t *inbox, size_t n,
                                        uint8_t **out, size_t *len, fedrec_error *err) {
  fedrec_sa_masked y;
  fedrec_status s = mask_update(p, inbox, n, &y, NULL, err);
  if (s) return s;
  ENCODE(fedrec_sa_encode_masked, &y, p->info.secagg.bits);
  fedrec_secagg_client_release_masked(p->sa);
  drop_encoded(p); /* sent: a cohort's worth of update copies need not stay in memory */
  return FEDREC_OK;
}

fedrec_status fedrec_participant_masked_add(fedrec_participant *p, const uint8_t *inbox, size_t n, uint32_t *sum,
                                            size_t *wire_len, fedrec_error *err) {
  fedrec_status s = mask_update(p, inbox, n, NULL, sum, err);
  if (s) return s;
  fedrec_sa_masked y = {.id = 0, .dim = p->info.secagg.dim, .y = NULL}; /* the size it would have had */
  *wire_len = fedrec_sa_encode_masked(NULL, 0, &y, p->info.secagg.bits);
  drop_encoded(p);
  return FEDREC_OK;
}

/* A survivor list, decoded, no shorter than the inputs the round's noise was planned for: with
 * fewer, this device's update would carry less noise than the ledger records. */
static fedrec_status decode_survivors(fedrec_sa_msg *m, const fedrec_participant *p, const uint8_t *b, size_t n,
                                      fedrec_error *err) {
  fedrec_status s = decode_as(m, FEDREC_SA_MSG_SURVIVORS, p, b, n, err);
  if (s || m->u.survivors.count >= p->info.min_survivors) return s;
  uint32_t have = m->u.survivors.count;
  fedrec_sa_msg_free(m);
  return fedrec_error_set(err, FEDREC_ERR_AUTH, "round %llu: a survivor list of %u, fewer than the %u inputs the noise was "
                          "planned for: no share revealed", (unsigned long long)p->info.round, have, p->info.min_survivors);
}

fedrec_status fedrec_participant_consistency(fedrec_participant *p, const uint8_t *survivors, size_t n,
                                             uint8_t **out, size_t *len, fedrec_error *err) {
  fedrec_sa_msg m;
  fedrec_status s = decode_survivors(&m, p, survivors, n, err);
  if (s) return s;
  fedrec_sa_signature sg;
  s = fedrec_secagg_client_consistency(p->sa, &m.u.survivors, &sg, err);
  fedrec_sa_msg_free(&m);
  if (s) return s;
  ENCODE(fedrec_sa_encode_signature, &sg);
  return FEDREC_OK;
}

fedrec_status fedrec_participant_unmask(fedrec_participant *p, const uint8_t *survivors,
                                        size_t n, uint8_t **out, size_t *len, fedrec_error *err) {
  fedrec_sa_msg m;
  fedrec_status s = decode_survivors(&m, p, survivors, n, err);
  if (s) return s;
  fedrec_sa_reveals r;
  s = fedrec_secagg_client_unmask(p->sa, &m.u.survivors, &r, err);
  fedrec_sa_msg_free(&m);
  if (s) return s;
  ENCODE(fedrec_sa_encode_reveals, &r);
  return FEDREC_OK;
}

fedrec_status fedrec_participant_plain(fedrec_participant *p, uint8_t **out, size_t *len,
                                       fedrec_error *err) {
  if (!p->encoded) return fedrec_error_set(err, FEDREC_ERR_STATE, "participant: the update was already sent");
  fedrec_sa_masked y = {.id = p->info.cohort_index, .dim = p->info.secagg.dim, .y = p->encoded};
  ENCODE(fedrec_sa_encode_masked, &y, p->info.secagg.bits);
  drop_encoded(p);
  return FEDREC_OK;
}

fedrec_status fedrec_participant_plain_vector(fedrec_participant *p, uint32_t **y, size_t *wire_len,
                                              fedrec_error *err) {
  if (!p->encoded) return fedrec_error_set(err, FEDREC_ERR_STATE, "participant: the update was already sent");
  fedrec_sa_masked m = {.id = p->info.cohort_index, .dim = p->info.secagg.dim, .y = p->encoded};
  *wire_len = fedrec_sa_encode_masked(NULL, 0, &m, p->info.secagg.bits);
  *y = p->encoded; /* handed over: the caller frees it */
  p->encoded = NULL;
  return FEDREC_OK;
}
