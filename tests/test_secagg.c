/* SecAgg+ protocol: exact sums under dropouts at every phase, and every client-side check. */
#include <math.h>
#include <sodium.h>

#include "fedrec/secagg.h"
#include "test_util.h"

typedef struct {
  fedrec_secagg_params p;
  fedrec_identity *ids;
  uint8_t (*pks)[32];
  fedrec_secagg_client **c;
  fedrec_secagg_server *s;
  uint32_t **x;
} world;

static int g_batch; /* run_round: half the masked inputs as one sum (on_masked_sum) */
static int g_hostile; /* run_round: hostile calls before every honest one (hostile_calls) */
static uint32_t g_garbage; /* run_round: client 0 spoils its share boxes to this many neighbours */
static int g_drop0;        /* run_round: client 0 vanishes after sharing (before its masked input) */
static void hostile_calls(const void *world, int phase, fedrec_rng *r);
#define HOSTILE(ph) if (g_hostile) hostile_calls(w, ph, r)

static void world_new(world *w, const fedrec_secagg_params *p, fedrec_rng *r) {
  fedrec_error err = {0};
  w->p = *p;
  w->ids = calloc(p->n, sizeof *w->ids);
  w->pks = calloc(p->n, 32);
  w->c = calloc(p->n, sizeof *w->c);
  w->x = calloc(p->n, sizeof *w->x);
  uint32_t lim = p->bits == 32 ? 0xffffffffu : (1u << p->bits) - 1;
  for (uint32_t u = 0; u < p->n; u++) {
    if (p->active) {
      assert_status(fedrec_identity_new(&w->ids[u]), FEDREC_OK);
      memcpy(w->pks[u], w->ids[u].pk, 32);
    }
    w->x[u] = malloc(p->dim * 4);
    for (uint32_t i = 0; i < p->dim; i++) w->x[u][i] = (uint32_t)fedrec_rng_u64(r) & lim;
  }
  for (uint32_t u = 0; u < p->n; u++) {
    w->c[u] = fedrec_secagg_client_new(p, u, p->active ? &w->ids[u] : NULL,
                                       (const uint8_t(*)[32])w->pks, &err);
    assert_non_null(w->c[u]);
  }
  w->s = fedrec_secagg_server_new(p, (const uint8_t(*)[32])w->pks, &err);
  assert_non_null(w->s);
}

static void world_free(world *w) {
  for (uint32_t u = 0; u < w->p.n; u++) {
    fedrec_secagg_client_free(w->c[u]);
    if (w->p.active) fedrec_identity_free(&w->ids[u]);
    free(w->x[u]);
  }
  fedrec_secagg_server_free(w->s);
  free(w->ids), free(w->pks), free(w->c), free(w->x);
}

/* Runs a round where each client drops before phase ph with probability drop[ph].
 * Returns the server's final status; on success checks the sum against the plain sum of
 * the clients that sent masked input. */
static fedrec_status run_round(world *w, const double drop[5], fedrec_rng *r, uint32_t *summed) {
  fedrec_error err = {0};
  uint32_t n = w->p.n, dim = w->p.dim;
  uint8_t *alive = malloc(n), *masked = calloc(n, 1);
  for (uint32_t u = 0; u < n; u++) alive[u] = 1;
#define DROP(ph) for (uint32_t u = 0; u < n; u++) if (alive[u] && fedrec_rng_uniform(r) < drop[ph]) alive[u] = 0
  fedrec_status st = FEDREC_OK;
  DROP(0);
  for (uint32_t u = 0; u < n; u++) {
    if (!alive[u]) continue;
    fedrec_sa_keys k;
    assert_status(fedrec_secagg_client_advertise(w->c[u], &k, &err), FEDREC_OK);
    HOSTILE(0);
    assert_status(fedrec_secagg_server_on_keys(w->s, &k, &err), FEDREC_OK);
  }
  HOSTILE(0);
  if ((st = fedrec_secagg_server_close_keys(w->s, &err))) goto out;
  DROP(1);
  for (uint32_t u = 0; u < n; u++) {
    if (!alive[u]) continue;
    fedrec_sa_keylist kl;
    fedrec_sa_boxes bx;
    assert_status(fedrec_secagg_server_keylist(w->s, u, &kl, &err), FEDREC_OK);
    if (fedrec_secagg_client_share(w->c[u], &kl, &bx, &err)) { alive[u] = 0; continue; }
    for (uint32_t a = 0; u == 0 && a < g_garbage && a < bx.count; a++) bx.boxes[a].data[17] ^= 0x40;
    HOSTILE(1);
    assert_status(fedrec_secagg_server_on_boxes(w->s, u, &bx, &err), FEDREC_OK);
  }
  if ((st = fedrec_secagg_server_close_shares(w->s, &err))) goto out;
  DROP(2);
  /* g_batch: the upper half's masked inputs are added up here and given as one sum */
  uint32_t lim = w->p.bits == 32 ? 0xffffffffu : (1u << w->p.bits) - 1, nb = 0, single = n;
  uint32_t *bsum = calloc(dim + 1, 4), *bids = malloc((n + 1) * 4);
  if (g_drop0) alive[0] = 0;
  for (uint32_t u = 0; u < n; u++) {
    if (!alive[u]) continue;
    fedrec_sa_boxes in;
    fedrec_sa_masked m;
    assert_status(fedrec_secagg_server_inbox(w->s, u, &in, &err), FEDREC_OK);
    if (g_batch && u >= n / 2) { /* masked straight into the sum (fedrec_secagg_client_mask_add) */
      if (fedrec_secagg_client_mask_add(w->c[u], &in, w->x[u], bsum, &err)) { alive[u] = 0; continue; }
      masked[u] = 1;
      bids[nb++] = u;
      continue;
    }
    if (fedrec_secagg_client_mask(w->c[u], &in, w->x[u], &m, &err)) { alive[u] = 0; continue; }
    masked[u] = 1;
    HOSTILE(2);
    assert_status(fedrec_secagg_server_on_masked(w->s, &m, &err), FEDREC_OK);
    single = u;
  }
  if (nb) { /* refused whole, changing nothing: a repeat, one already counted, a bad length or value */
    bids[nb] = bids[0];
    assert_status(fedrec_secagg_server_on_masked_sum(w->s, bids, nb + 1, bsum, dim, &err), FEDREC_ERR_PARSE);
    if (single < n) {
      bids[nb] = single;
      assert_status(fedrec_secagg_server_on_masked_sum(w->s, bids, nb + 1, bsum, dim, &err), FEDREC_ERR_PARSE);
    }
    assert_status(fedrec_secagg_server_on_masked_sum(w->s, bids, nb, bsum, dim + 1, &err), FEDREC_ERR_PARSE);
    if (lim != 0xffffffffu) {
      uint32_t keep = bsum[0];
      bsum[0] = lim + 1;
      assert_status(fedrec_secagg_server_on_masked_sum(w->s, bids, nb, bsum, dim, &err), FEDREC_ERR_PARSE);
      bsum[0] = keep;
    }
    assert_status(fedrec_secagg_server_on_masked_sum(w->s, bids, nb, bsum, dim, &err), FEDREC_OK);
  }
  free(bsum), free(bids);
  if ((st = fedrec_secagg_server_close_masked(w->s, &err))) goto out;
  DROP(3);
  fedrec_sa_survivors sv;
  if (w->p.active) {
    assert_status(fedrec_secagg_server_survivors(w->s, &sv, &err), FEDREC_OK);
    for (uint32_t u = 0; u < n; u++) {
      if (!alive[u]) continue;
      fedrec_sa_signature sg;
      if (fedrec_secagg_client_consistency(w->c[u], &sv, &sg, &err)) { alive[u] = 0; continue; }
      HOSTILE(3);
      assert_status(fedrec_secagg_server_on_signature(w->s, &sg, &err), FEDREC_OK);
    }
    if ((st = fedrec_secagg_server_close_consistency(w->s, &err))) goto out;
  }
  DROP(4);
  assert_status(fedrec_secagg_server_survivors(w->s, &sv, &err), FEDREC_OK);
  for (uint32_t u = 0; u < n; u++) {
    if (!alive[u]) continue;
    fedrec_sa_reveals rv;
    if (fedrec_secagg_client_unmask(w->c[u], &sv, &rv, &err)) { alive[u] = 0; continue; }
    HOSTILE(4);
    assert_status(fedrec_secagg_server_on_reveals(w->s, &rv, &err), FEDREC_OK);
  }
  HOSTILE(4);
  uint32_t *sum = malloc(dim * 4), *want = calloc(dim, 4);
  st = fedrec_secagg_server_finish(w->s, sum, summed, &err);
  if (!st) {
    /* lim: as above */
    for (uint32_t u = 0; u < n; u++)
      if (masked[u])
        for (uint32_t i = 0; i < dim; i++) want[i] = (want[i] + w->x[u][i]) & lim;
    assert_memory_equal(sum, want, dim * 4);
  }
  free(sum), free(want);
out:
#undef DROP
  free(alive), free(masked);
  return st;
}

/* The unmasked sum equals the plain sum, over many random cohorts, graphs and dropouts; also
 * when half the masked inputs arrive as one sum added up elsewhere (as in fedrec-sim-mpi), and
 * bad sums are refused without changing anything; with the masks removed by 1 to 4 threads
 * (split at 16-word block edges). */
static void test_sum_property(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 2026, 1);
  int ok = 0, aborted = 0;
  for (int trial = 0; trial < 120; trial++) {
    fedrec_secagg_params p = {0};
    p.session = (uint64_t)trial + 1;
    p.n = 3 + (uint32_t)fedrec_rng_below(&r, 30);
    uint32_t kmax = p.n - 1;
    p.k = fedrec_rng_below(&r, 3) == 0 ? kmax : 2 * (1 + (uint32_t)fedrec_rng_below(&r, (kmax + 1) / 2));
    uint32_t k = p.k >= p.n - 1 ? p.n - 1 : p.k;
    p.t = k / 2 + 1 + (uint32_t)fedrec_rng_below(&r, (k - k / 2 + 1) / 2); /* lower half of (k/2, k] */
    static const uint32_t bits[] = {1, 8, 13, 16, 24, 31, 32};
    p.bits = bits[fedrec_rng_below(&r, 7)];
    p.dim = 1 + (uint32_t)fedrec_rng_below(&r, 5000) * 2; /* odd lengths */
    p.active = trial % 3 == 0;
    fedrec_rng_u64(&r);
    for (int b = 0; b < 32; b++) p.graph_seed[b] = (uint8_t)fedrec_rng_u64(&r);
    double drop[5];
    for (int ph = 0; ph < 5; ph++) drop[ph] = trial % 4 == 0 ? 0 : 0.08 * fedrec_rng_uniform(&r);
    world w;
    world_new(&w, &p, &r);
    fedrec_secagg_server_set_threads(w.s, 1 + trial % 4); /* unmasking split over 1-4 threads */
    uint32_t summed = 0;
    g_batch = trial % 2; /* every other round: the upper half's inputs summed elsewhere */
    fedrec_status st = run_round(&w, drop, &r, &summed);
    g_batch = 0;
    if (st == FEDREC_OK) ok++;
    else {
      assert_int_equal(st, FEDREC_ERR_EMPTY); /* only ever a clean below-threshold abort */
      aborted++;
    }
    world_free(&w);
  }
  print_message("%d rounds summed exactly, %d aborted below threshold\n", ok, aborted);
  assert_true(ok >= 70); /* both outcomes must occur: the test exercises recovery and abort */
  assert_true(aborted >= 1);
}

/* A cohort of nmin + [0, nspan) clients, the complete graph or a random even degree of at
 * least 2 kmin, threshold k/2 + 1, a random graph seed. */
static fedrec_secagg_params random_cohort(fedrec_rng *r, uint64_t session, uint32_t nmin, uint32_t nspan, int complete,
                                          uint32_t kmin) {
  fedrec_secagg_params p = {0};
  p.session = session;
  p.n = nmin + (uint32_t)fedrec_rng_below(r, nspan);
  uint32_t kmax = p.n - 1;
  p.k = complete ? kmax : 2 * (kmin + (uint32_t)fedrec_rng_below(r, (kmax + 2 - 2 * kmin) / 2));
  p.t = fedrec_secagg_degree(&p) / 2 + 1;
  for (int b = 0; b < 32; b++) p.graph_seed[b] = (uint8_t)fedrec_rng_u64(r);
  return p;
}

/* An id from the wire: mostly out of range (n, n + 1, 2^31, 2^32 - 1, random), sometimes in. */
static uint32_t wild_id(fedrec_rng *r, uint32_t n) {
  static const uint32_t edge[] = {0x80000000u, 0xffffffffu, 0xfffffffeu};
  switch (fedrec_rng_below(r, 5)) {
  case 0: return n + (uint32_t)fedrec_rng_below(r, 3);
  case 1: return edge[fedrec_rng_below(r, 3)];
  case 2: return (uint32_t)fedrec_rng_u64(r);
  default: return (uint32_t)fedrec_rng_below(r, n);
  }
}

/* Calls every server entry point with what a hostile member could send: ids and inner
 * indices out of range, bad keys (equal, low-order, another member's), boxes addressed past
 * the cohort. Each must be refused (ASan catches any out-of-bounds access on the way), and
 * the honest round around it must still sum exactly. Messages that an in-range id could
 * legitimately send are never made, so every refusal is required. */
static void hostile_calls(const void *world_, int phase, fedrec_rng *r) {
  const world *w = world_;
  fedrec_error err = {0};
  uint32_t n = w->p.n, out = n + (uint32_t)fedrec_rng_below(r, 1000), in = (uint32_t)fedrec_rng_below(r, n);
  fedrec_sa_keylist kl;
  fedrec_sa_boxes bx;
  fedrec_sa_survivors sv;
  uint32_t y[4] = {0}, ids[3] = {in, out, in};
  fedrec_sa_masked m = {out, w->p.dim, NULL};
  /* read-only queries with bad ids */
  assert_int_not_equal(fedrec_secagg_server_keylist(w->s, out, &kl, &err), FEDREC_OK);
  assert_int_not_equal(fedrec_secagg_server_inbox(w->s, out, &bx, &err), FEDREC_OK);
  if (phase == 0) {
    fedrec_sa_keys k = {0};
    k.id = wild_id(r, n);
    randombytes_buf(k.c_pk, 32);
    randombytes_buf(k.s_pk, 32);
    int kind = (int)fedrec_rng_below(r, 4);
    if (k.id < n || kind == 0) { /* in range: make the keys refusable whatever the id's state */
      k.id = in;
      if (kind <= 1) memcpy(k.s_pk, k.c_pk, 32);                 /* equal */
      else if (kind == 2) memset(k.s_pk, 0, 32);                 /* low-order (0) */
      else memset(k.c_pk, 0, 32), k.c_pk[0] = 1;                 /* low-order (1) */
    }
    assert_int_not_equal(fedrec_secagg_server_on_keys(w->s, &k, &err), FEDREC_OK);
  } else if (phase == 1) {
    fedrec_sa_box b[3] = {{in, out, {0}}, {in, wild_id(r, n), {0}}, {wild_id(r, n), in, {0}}};
    fedrec_sa_boxes m1 = {3, b};
    assert_int_not_equal(fedrec_secagg_server_on_boxes(w->s, in, &m1, &err), FEDREC_OK);
    b[0].to = out;
    m1.count = 1 + (uint32_t)fedrec_rng_below(r, 3);
    assert_int_not_equal(fedrec_secagg_server_on_boxes(w->s, out, &m1, &err), FEDREC_OK);
    m1.count = 0xffffffffu; /* a count the boxes array does not hold */
    assert_int_not_equal(fedrec_secagg_server_on_boxes(w->s, in, &m1, &err), FEDREC_OK);
  } else if (phase == 2) {
    m.y = y;
    m.dim = 1 + (uint32_t)fedrec_rng_below(r, 3);
    if (m.dim != w->p.dim) {
      m.id = in;
      assert_int_not_equal(fedrec_secagg_server_on_masked(w->s, &m, &err), FEDREC_OK);
    }
    m.id = out;
    assert_int_not_equal(fedrec_secagg_server_on_masked(w->s, &m, &err), FEDREC_OK);
    uint32_t *sum = calloc(w->p.dim, 4);
    assert_int_not_equal(fedrec_secagg_server_on_masked_sum(w->s, ids, 3, sum, w->p.dim, &err), FEDREC_OK);
    free(sum);
  } else if (phase == 3) {
    fedrec_sa_signature sg = {out, {0}};
    assert_int_not_equal(fedrec_secagg_server_on_signature(w->s, &sg, &err), FEDREC_OK);
  } else {
    fedrec_sa_reveal x[2] = {{wild_id(r, n), FEDREC_SA_REVEAL_SELF, {0}}, {out, FEDREC_SA_REVEAL_KEY, {0}}};
    x[0].share.x = in + 1;
    x[1].share.x = in + 1;
    fedrec_sa_reveals rv = {in, 2, x};
    assert_int_not_equal(fedrec_secagg_server_on_reveals(w->s, &rv, &err), FEDREC_OK);
    rv.id = wild_id(r, n) | n; /* >= n */
    assert_int_not_equal(fedrec_secagg_server_on_reveals(w->s, &rv, &err), FEDREC_OK);
  }
  (void)fedrec_secagg_server_survivors(w->s, &sv, &err); /* any phase: answers or refuses */
}

/* A member that spoils its share boxes (they do not open for their recipients) costs at most
 * its own contribution: recipients treat it as dropped, leave their pairwise mask with it out
 * and say so when they reveal (with that mask's key), and the sum stays exact, whether it then
 * sends its masked input or not, as long as enough neighbours hold valid shares of its self
 * mask. Spoiling every box and still sending an input leaves a self mask nobody can remove:
 * that round aborts (before anything is released), the remaining limit (docs/SECURITY.md). */
static void test_spoiled_boxes(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 31, 7);
  int exact = 0, aborted = 0;
  for (int trial = 0; trial < 36; trial++) {
    fedrec_secagg_params p = random_cohort(&r, (uint64_t)trial + 100, 5, 16, trial % 2, 2);
    uint32_t k = fedrec_secagg_degree(&p);
    p.bits = 20;
    p.dim = 1 + (uint32_t)fedrec_rng_below(&r, 300);
    p.active = trial % 6 == 5;
    int scenario = trial % 3; /* 0: some spoiled, it survives; 1: all spoiled, it drops; 2: all, survives */
    world w;
    world_new(&w, &p, &r);
    double drop[5] = {0, 0, 0, 0, 0};
    g_garbage = scenario == 0 ? 1 + (uint32_t)fedrec_rng_below(&r, k - p.t) : k;
    g_drop0 = scenario == 1;
    uint32_t summed = 0;
    fedrec_status st = run_round(&w, drop, &r, &summed); /* checks the sum when it succeeds */
    g_garbage = 0, g_drop0 = 0;
    if (scenario < 2) {
      if (st) fail_msg("trial %d (n %u, k %u, t %u, scenario %d): %d", trial, p.n, k, p.t, scenario, (int)st);
      assert_int_equal(summed, scenario == 0 ? p.n : p.n - 1);
      exact++;
    } else {
      assert_int_equal(st, FEDREC_ERR_EMPTY);
      assert_int_equal(fedrec_secagg_server_culprit(w.s), 1); /* client 0, named for the engine to ban */
      aborted++;
    }
    world_free(&w);
  }
  print_message("spoiled share boxes: %d rounds summed exactly, %d aborted (every box spoiled, input sent)\n", exact, aborted);
}

/* Hostile indices and keys at every server call, over random cohorts, graphs and dropouts:
 * all refused, no out-of-bounds access, and every round that completes sums exactly. */
static void test_hostile_indices(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 2027, 13);
  int ok = 0;
  for (int trial = 0; trial < 60; trial++) {
    fedrec_secagg_params p = random_cohort(&r, (uint64_t)trial + 1, 3, 24, trial % 2, 1); /* sparse every other */
    p.bits = 16;
    p.dim = 1 + (uint32_t)fedrec_rng_below(&r, 40);
    p.active = trial % 3 == 0;
    double drop[5] = {0, 0, 0, 0, 0};
    if (trial % 2) drop[2] = drop[4] = 0.05;
    world w;
    world_new(&w, &p, &r);
    uint32_t summed = 0;
    g_hostile = 1;
    fedrec_status st = run_round(&w, drop, &r, &summed);
    g_hostile = 0;
    if (st == FEDREC_OK) ok++;
    else assert_int_equal(st, FEDREC_ERR_EMPTY);
    world_free(&w);
  }
  assert_true(ok >= 40);
}

/* Keys every honest neighbour would refuse are refused by the server at once, so they cost
 * only the sender's place: equal keys, low-order points, a key another member advertised. */
static void test_server_refuses_bad_keys(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 8, 8);
  fedrec_secagg_params p = {.session = 5, .n = 6, .k = 5, .t = 3, .bits = 16, .dim = 9};
  world w;
  world_new(&w, &p, &r);
  fedrec_error err = {0};
  fedrec_sa_keys k0, k1;
  assert_status(fedrec_secagg_client_advertise(w.c[0], &k0, &err), FEDREC_OK);
  assert_status(fedrec_secagg_server_on_keys(w.s, &k0, &err), FEDREC_OK);
  assert_status(fedrec_secagg_client_advertise(w.c[1], &k1, &err), FEDREC_OK);
  fedrec_sa_keys bad = k1;
  memcpy(bad.s_pk, bad.c_pk, 32);
  assert_status(fedrec_secagg_server_on_keys(w.s, &bad, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "equal"));
  bad = k1;
  memcpy(bad.c_pk, k0.s_pk, 32); /* another member's mask key as our encryption key */
  assert_status(fedrec_secagg_server_on_keys(w.s, &bad, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "another member"));
  bad = k1;
  memcpy(bad.s_pk, k0.s_pk, 32);
  assert_status(fedrec_secagg_server_on_keys(w.s, &bad, &err), FEDREC_ERR_PARSE);
  /* the low-order points of Curve25519: 0, 1, and the order-8 point from the X25519 paper */
  static const uint8_t order8[32] = {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
                                     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
                                     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00};
  uint8_t low[3][32] = {{0}, {1}, {0}};
  memcpy(low[2], order8, 32);
  for (int i = 0; i < 3; i++) {
    bad = k1;
    memcpy(i % 2 ? bad.c_pk : bad.s_pk, low[i], 32);
    assert_status(fedrec_secagg_server_on_keys(w.s, &bad, &err), FEDREC_ERR_PARSE);
    assert_non_null(strstr(err.msg, "low-order"));
    assert_false(fedrec_kx_pk_valid(low[i]));
  }
  assert_true(fedrec_kx_pk_valid(k1.c_pk));
  /* none of the refusals took member 1's place: its real keys are accepted */
  assert_status(fedrec_secagg_server_on_keys(w.s, &k1, &err), FEDREC_OK);
  world_free(&w);
}

static fedrec_secagg_params small_params(int active) {
  fedrec_secagg_params p = {.session = 77, .n = 6, .k = 5, .t = 3, .bits = 16, .dim = 9, .active = active};
  for (int b = 0; b < 32; b++) p.graph_seed[b] = (uint8_t)b;
  return p;
}

/* Advances every client and the server through round 0 and gives client 0's key list. */
static void to_round1(world *w, fedrec_sa_keylist *kl) {
  fedrec_error err;
  for (uint32_t u = 0; u < w->p.n; u++) {
    fedrec_sa_keys k;
    assert_status(fedrec_secagg_client_advertise(w->c[u], &k, &err), FEDREC_OK);
    assert_status(fedrec_secagg_server_on_keys(w->s, &k, &err), FEDREC_OK);
    /* the server rejects a second copy, and changes nothing */
    assert_status(fedrec_secagg_server_on_keys(w->s, &k, &err), FEDREC_ERR_PARSE);
  }
  assert_status(fedrec_secagg_server_close_keys(w->s, &err), FEDREC_OK);
  assert_status(fedrec_secagg_server_keylist(w->s, 0, kl, &err), FEDREC_OK);
}

/* Crafts a bad key list for client 0 (mode), and checks that the client refuses to share
 * and reveals nothing afterwards. */
static void expect_share_fails(int mode, const char *why) {
  fedrec_rng r;
  fedrec_rng_seed(&r, 5, 5);
  fedrec_secagg_params p = small_params(mode != 6); /* mode 6: honest-but-curious variant */
  world w;
  world_new(&w, &p, &r);
  fedrec_sa_keylist kl;
  to_round1(&w, &kl);
  fedrec_sa_keys b[8];
  memcpy(b, kl.keys, kl.count * sizeof *b); /* itself first, then its 5 neighbours */
  fedrec_sa_keylist bad = {kl.count, b};
  switch (mode) {
  case 0: bad.keys = b + 1, bad.count--; break;             /* itself missing */
  case 1: b[2].id = b[1].id; break;                         /* duplicate client */
  case 2: memcpy(b[2].s_pk, b[1].s_pk, 32); break;          /* duplicate key */
  case 3: memcpy(b[3].s_pk, b[3].c_pk, 32); break;          /* both keys equal */
  case 4: b[2].c_pk[0] ^= 1; break;                         /* substituted key: bad signature */
  case 5: bad.count = 3; break;                             /* 2 neighbours < t = 3 */
  case 6: b[0].c_pk[5] ^= 1; break;                         /* not our keys under our id */
  default: b[4].id = 5 == b[4].id ? 4 : 5; break;
  }
  fedrec_sa_boxes out;
  fedrec_error err = {0};
  assert_int_not_equal(fedrec_secagg_client_share(w.c[0], &bad, &out, &err), FEDREC_OK);
  if (!strstr(err.msg, why)) fail_msg("mode %d: error '%s' lacks '%s'", mode, err.msg, why);
  fedrec_sa_survivors sv = {0};
  fedrec_sa_reveals rv;
  assert_int_not_equal(fedrec_secagg_client_unmask(w.c[0], &sv, &rv, &err), FEDREC_OK);
  world_free(&w);
}

/* Each check on the key list triggers on a crafted server message. */
static void test_keylist_checks(void **state) {
  (void)state;
  expect_share_fails(0, "missing from the key list");
  expect_share_fails(1, "duplicate");
  expect_share_fails(2, "duplicate");
  expect_share_fails(3, "two keys are equal");
  expect_share_fails(4, "signature");
  expect_share_fails(5, "threshold");
  expect_share_fails(6, "keys that are not ours");
}

/* A misaddressed or repeated share box (the server's relay is wrong) stops the client before
 * it sends its masked input; a box that does not open (its sender's doing) does not. */
static void test_inbox_checks(void **state) {
  (void)state;
  for (int mode = 0; mode < 3; mode++) {
    fedrec_rng r;
    fedrec_rng_seed(&r, 6, 6);
    fedrec_secagg_params p = small_params(0);
    world w;
    world_new(&w, &p, &r);
    fedrec_sa_keylist kl;
    fedrec_error err = {0};
    to_round1(&w, &kl);
    for (uint32_t u = 0; u < p.n; u++) {
      fedrec_sa_boxes bx;
      assert_status(fedrec_secagg_server_keylist(w.s, u, &kl, &err), FEDREC_OK);
      assert_status(fedrec_secagg_client_share(w.c[u], &kl, &bx, &err), FEDREC_OK);
      assert_status(fedrec_secagg_server_on_boxes(w.s, u, &bx, &err), FEDREC_OK);
    }
    assert_status(fedrec_secagg_server_close_shares(w.s, &err), FEDREC_OK);
    fedrec_sa_boxes in;
    assert_status(fedrec_secagg_server_inbox(w.s, 0, &in, &err), FEDREC_OK);
    fedrec_sa_box copy[8];
    memcpy(copy, in.boxes, in.count * sizeof *copy);
    fedrec_sa_boxes bad = {in.count, copy};
    const char *why = "repeated";
    fedrec_sa_masked m;
    if (mode == 0) { /* a box its sender spoiled: that sender is dropped for us, we carry on */
      copy[1].data[40] ^= 4;
      assert_status(fedrec_secagg_client_mask(w.c[0], &bad, w.x[0], &m, &err), FEDREC_OK);
      world_free(&w);
      continue;
    }
    if (mode == 1) copy[1] = copy[0];
    else copy[2].from = copy[3].from == 1 ? 2 : 1, why = "";
    assert_int_not_equal(fedrec_secagg_client_mask(w.c[0], &bad, w.x[0], &m, &err), FEDREC_OK);
    if (!strstr(err.msg, why)) fail_msg("mode %d: '%s' lacks '%s'", mode, err.msg, why);
    world_free(&w);
  }
}

/* Runs all six clients to the survivor list of round 3/4. */
static void to_survivors(world *w, fedrec_sa_survivors *sv) {
  fedrec_error err = {0};
  fedrec_sa_keylist kl;
  to_round1(w, &kl);
  for (uint32_t u = 0; u < w->p.n; u++) {
    fedrec_sa_boxes bx;
    assert_status(fedrec_secagg_server_keylist(w->s, u, &kl, &err), FEDREC_OK);
    assert_status(fedrec_secagg_client_share(w->c[u], &kl, &bx, &err), FEDREC_OK);
    assert_status(fedrec_secagg_server_on_boxes(w->s, u, &bx, &err), FEDREC_OK);
  }
  assert_status(fedrec_secagg_server_close_shares(w->s, &err), FEDREC_OK);
  for (uint32_t u = 0; u < w->p.n; u++) {
    fedrec_sa_boxes in;
    fedrec_sa_masked m;
    assert_status(fedrec_secagg_server_inbox(w->s, u, &in, &err), FEDREC_OK);
    assert_status(fedrec_secagg_client_mask(w->c[u], &in, w->x[u], &m, &err), FEDREC_OK);
    if (u == 0) { /* wrong length and replay are rejected without touching the sum */
      fedrec_sa_masked shortm = m;
      shortm.dim--;
      assert_status(fedrec_secagg_server_on_masked(w->s, &shortm, &err), FEDREC_ERR_PARSE);
    }
    assert_status(fedrec_secagg_server_on_masked(w->s, &m, &err), FEDREC_OK);
    if (u == 0) assert_status(fedrec_secagg_server_on_masked(w->s, &m, &err), FEDREC_ERR_PARSE);
  }
  assert_status(fedrec_secagg_server_close_masked(w->s, &err), FEDREC_OK);
  assert_status(fedrec_secagg_server_survivors(w->s, sv, &err), FEDREC_OK);
}

static void test_survivor_checks(void **state) {
  (void)state;
  const char *whys[] = {"missing from the survivor list", "unsorted, repeated", "threshold",
                        "out of range"};
  for (int mode = 0; mode < 4; mode++) {
    fedrec_rng r;
    fedrec_rng_seed(&r, 7, 7);
    fedrec_secagg_params p = small_params(0);
    world w;
    world_new(&w, &p, &r);
    fedrec_sa_survivors sv;
    to_survivors(&w, &sv);
    uint32_t ids[8];
    fedrec_sa_survivors bad = {0, ids, NULL, 0};
    if (mode == 0) { for (uint32_t u = 1; u < 6; u++) ids[bad.count++] = u; }
    else if (mode == 1) { ids[0] = 0, ids[1] = 2, ids[2] = 2, ids[3] = 3, bad.count = 4; }
    else if (mode == 2) { ids[0] = 0, ids[1] = 1, ids[2] = 2, bad.count = 3; } /* 2 live < t */
    else { ids[0] = 0, ids[1] = 1, ids[2] = 2, ids[3] = 3, ids[4] = 99, bad.count = 5; }
    fedrec_sa_reveals rv;
    fedrec_error err = {0};
    assert_int_not_equal(fedrec_secagg_client_unmask(w.c[0], &bad, &rv, &err), FEDREC_OK);
    if (!strstr(err.msg, whys[mode])) fail_msg("mode %d: '%s' lacks '%s'", mode, err.msg, whys[mode]);
    /* the honest list still works for the others, and the sum is exact */
    world_free(&w);
  }
}

/* Active variant: the unmasking list must be the signed one, with enough valid signatures;
 * a client asked to unmask twice reveals nothing more. */
static void test_active_checks(void **state) {
  (void)state;
  for (int mode = 0; mode < 4; mode++) {
    fedrec_rng r;
    fedrec_rng_seed(&r, 8, 8);
    fedrec_secagg_params p = small_params(1);
    world w;
    world_new(&w, &p, &r);
    fedrec_sa_survivors sv;
    fedrec_error err = {0};
    to_survivors(&w, &sv);
    for (uint32_t u = 0; u < p.n; u++) {
      fedrec_sa_signature sg;
      assert_status(fedrec_secagg_client_consistency(w.c[u], &sv, &sg, &err), FEDREC_OK);
      if (u == 1) { /* a forged signature is rejected by the server */
        fedrec_sa_signature forged = sg;
        forged.sig[0] ^= 1;
        assert_status(fedrec_secagg_server_on_signature(w.s, &forged, &err), FEDREC_ERR_PARSE);
      }
      assert_status(fedrec_secagg_server_on_signature(w.s, &sg, &err), FEDREC_OK);
    }
    assert_status(fedrec_secagg_server_close_consistency(w.s, &err), FEDREC_OK);
    assert_status(fedrec_secagg_server_survivors(w.s, &sv, &err), FEDREC_OK);
    fedrec_sa_signature sigs[8];
    memcpy(sigs, sv.sigs, sv.nsigs * sizeof *sigs);
    uint32_t ids[8];
    memcpy(ids, sv.ids, sv.count * 4);
    fedrec_sa_survivors bad = {sv.count, ids, sigs, sv.nsigs};
    const char *why = "";
    if (mode == 0) bad.count--, why = "differs from the one we signed";
    else if (mode == 1) sigs[2].sig[7] ^= 1, why = "signature is invalid";
    else if (mode == 2) bad.nsigs = 2, why = "fewer survivor signatures";
    fedrec_sa_reveals rv;
    if (mode < 3) {
      assert_int_not_equal(fedrec_secagg_client_unmask(w.c[0], &bad, &rv, &err), FEDREC_OK);
      if (!strstr(err.msg, why)) fail_msg("mode %d: '%s' lacks '%s'", mode, err.msg, why);
    } else {
      assert_status(fedrec_secagg_client_unmask(w.c[0], &sv, &rv, &err), FEDREC_OK);
      assert_int_equal(rv.count, 5);
      for (uint32_t a = 0; a < rv.count; a++) assert_int_equal(rv.items[a].kind, FEDREC_SA_REVEAL_SELF);
      assert_int_not_equal(fedrec_secagg_client_unmask(w.c[0], &sv, &rv, &err), FEDREC_OK);
    }
    world_free(&w);
  }
}

/* Below the threshold the round aborts cleanly, naming the reason. */
static void test_abort(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 9, 9);
  fedrec_secagg_params p = small_params(0);
  world w;
  world_new(&w, &p, &r);
  fedrec_error err = {0};
  for (uint32_t u = 0; u < 2; u++) {
    fedrec_sa_keys k;
    assert_status(fedrec_secagg_client_advertise(w.c[u], &k, &err), FEDREC_OK);
    assert_status(fedrec_secagg_server_on_keys(w.s, &k, &err), FEDREC_OK);
  }
  assert_status(fedrec_secagg_server_close_keys(w.s, &err), FEDREC_ERR_EMPTY);
  assert_non_null(strstr(err.msg, "only 2 clients advertised keys, threshold 3"));
  world_free(&w);
  /* dropouts after masking: too few left to reveal a dropped client's key */
  world_new(&w, &p, &r);
  double drop[5] = {0, 0, 0, 0, 0};
  assert_status(run_round(&w, drop, &r, NULL), FEDREC_OK);
  world_free(&w);
  world_new(&w, &p, &r);
  drop[4] = 0.9;
  fedrec_status st = run_round(&w, drop, &r, NULL);
  assert_true(st == FEDREC_OK || st == FEDREC_ERR_EMPTY);
  world_free(&w);
}

static void test_choose(void **state) {
  (void)state;
  fedrec_secagg_choice c;
  fedrec_error err = {0};
  assert_status(fedrec_secagg_choose(&c, 1000, 0.05, 0.05, 20, 40, &err), FEDREC_OK);
  print_message("n=1000, 5%% dropout, 5%% dishonest: k=%u t=%u fail 2^%.1f insecure 2^%.1f\n", c.k, c.t,
                c.log2_fail, c.log2_insecure);
  assert_false(c.complete);
  assert_true(c.k < 200 && 2 * c.t > c.k && c.log2_fail <= -20 && c.log2_insecure <= -40);
  double lf, ls;
  fedrec_secagg_bounds(1000, c.k, c.t, 0.05, 0.05, &lf, &ls);
  assert_near(lf, c.log2_fail, 1e-9);
  assert_near(ls, c.log2_insecure, 1e-9);
  fedrec_secagg_bounds(1000, c.k, c.t - 1, 0.05, 0.05, &lf, &ls); /* t - 1 was not enough */
  assert_true(lf > -20 || ls > -40);
  assert_status(fedrec_secagg_choose(&c, 10, 0.1, 0.1, 20, 40, &err), FEDREC_ERR_ARG);
  assert_status(fedrec_secagg_choose(&c, 20, 0.0, 0.0, 20, 40, &err), FEDREC_OK);
  /* the graph is symmetric and k-regular */
  fedrec_secagg_params p = {.session = 3, .n = 101, .k = 10, .t = 6, .bits = 8, .dim = 1};
  uint32_t nb[10], nb2[10];
  for (uint32_t u = 0; u < p.n; u++) {
    fedrec_secagg_neighbours(&p, u, nb);
    for (int j = 0; j < 10; j++) {
      assert_int_not_equal(nb[j], u);
      if (j) assert_true(nb[j - 1] < nb[j]);
      fedrec_secagg_neighbours(&p, nb[j], nb2);
      int back = 0;
      for (int i = 0; i < 10; i++) back |= nb2[i] == u;
      assert_true(back);
    }
  }
}

static void test_bitpack(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 11, 1);
  for (uint32_t bits = 1; bits <= 32; bits++) {
    size_t n = 1 + fedrec_rng_below(&r, 300) * 2 + 1;
    uint32_t in[700], out[700];
    uint8_t buf[700 * 4 + 8];
    uint32_t lim = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
    for (size_t i = 0; i < n; i++) in[i] = (uint32_t)fedrec_rng_u64(&r) & lim;
    fedrec_pack_bits(buf, in, n, bits);
    fedrec_unpack_bits(out, buf, n, bits);
    assert_memory_equal(in, out, n * 4);
  }
}

static void test_wire_roundtrip(void **state) {
  (void)state;
  fedrec_rng r;
  fedrec_rng_seed(&r, 12, 1);
  fedrec_error err = {0};
  uint8_t buf[8192];
  fedrec_sa_msg m;
  /* keys and key lists */
  fedrec_sa_keys k[3];
  for (int a = 0; a < 3; a++) {
    k[a].id = (uint32_t)a * 7;
    for (int b = 0; b < 32; b++) k[a].c_pk[b] = (uint8_t)fedrec_rng_u64(&r), k[a].s_pk[b] = (uint8_t)b;
    memset(k[a].sig, a, 64);
  }
  size_t n = fedrec_sa_encode_keys(buf, sizeof buf, &k[1]);
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 100, &err), FEDREC_OK);
  assert_int_equal(m.type, FEDREC_SA_MSG_KEYS);
  assert_memory_equal(&m.u.keys, &k[1], sizeof k[1]);
  fedrec_sa_msg_free(&m);
  fedrec_sa_keylist kl = {3, k};
  n = fedrec_sa_encode_keylist(buf, sizeof buf, &kl);
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 100, &err), FEDREC_OK);
  assert_int_equal(m.u.keylist.count, 3);
  assert_memory_equal(m.u.keylist.keys, k, sizeof k);
  fedrec_sa_msg_free(&m);
  assert_status(fedrec_sa_decode(&m, buf, n, 2, 100, &err), FEDREC_ERR_PARSE); /* above the cap */
  assert_non_null(strstr(err.msg, "count above the cap"));
  assert_status(fedrec_sa_decode(&m, buf, n - 1, 100, 100, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "truncated"));
  buf[2] = 9;
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 100, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "version"));
  /* a masked vector at 13 bits, odd length */
  uint32_t y[101];
  for (int i = 0; i < 101; i++) y[i] = (uint32_t)fedrec_rng_below(&r, 1u << 13);
  fedrec_sa_masked mk = {5, 101, y};
  n = fedrec_sa_encode_masked(NULL, 0, &mk, 13);
  assert_int_equal(n, 4 + 9 + (101 * 13 + 7) / 8);
  assert_int_equal(fedrec_sa_encode_masked(buf, sizeof buf, &mk, 13), n);
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 1000, &err), FEDREC_OK);
  assert_int_equal(m.bits, 13);
  assert_memory_equal(m.u.masked.y, y, sizeof y);
  fedrec_sa_msg_free(&m);
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 100, &err), FEDREC_ERR_PARSE); /* dim cap */
  buf[n - 1] |= 0x80; /* padding bit */
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 1000, &err), FEDREC_ERR_PARSE);
  /* reveals */
  fedrec_sa_reveal rv[2] = {{3, FEDREC_SA_REVEAL_SELF, {4, {1, 2, 3, 4, 5, 6, 7, 8}}},
                            {9, FEDREC_SA_REVEAL_KEY, {4, {8, 7, 6, 5, 4, 3, 2, 1}}}};
  fedrec_sa_reveals rs = {3, 2, rv};
  n = fedrec_sa_encode_reveals(buf, sizeof buf, &rs);
  assert_status(fedrec_sa_decode(&m, buf, n, 100, 100, &err), FEDREC_OK);
  assert_int_equal(m.u.reveals.count, 2);
  assert_int_equal(m.u.reveals.items[1].share.x, rv[1].share.x); /* fields: the struct has padding */
  assert_memory_equal(m.u.reveals.items[1].share.y, rv[1].share.y, sizeof rv[1].share.y);
  assert_int_equal(m.u.reveals.items[1].kind, FEDREC_SA_REVEAL_KEY);
  fedrec_sa_msg_free(&m);
  /* the fuzz seeds are valid messages */
  const char *seeds[] = {"keys", "keylist", "boxes", "masked", "survivors", "signature", "reveals"};
  for (int a = 0; a < 7; a++) {
    char path[512];
    char *b;
    int64_t len;
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/secagg_wire/%s", FEDREC_SOURCE_DIR, seeds[a]);
    assert_status(fedrec_read_file(path, &b, &len, &err), FEDREC_OK);
    assert_status(fedrec_sa_decode(&m, (uint8_t *)b, (size_t)len, 100, 100, &err), FEDREC_OK);
    assert_int_equal(m.type, a + 1);
    fedrec_sa_msg_free(&m);
    free(b);
  }
}

int main(void) {
  assert_status(fedrec_crypto_init(), FEDREC_OK);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_sum_property),   cmocka_unit_test(test_keylist_checks),
      cmocka_unit_test(test_inbox_checks),   cmocka_unit_test(test_survivor_checks),
      cmocka_unit_test(test_active_checks),  cmocka_unit_test(test_abort),
      cmocka_unit_test(test_choose),         cmocka_unit_test(test_bitpack),
      cmocka_unit_test(test_wire_roundtrip), cmocka_unit_test(test_hostile_indices),
      cmocka_unit_test(test_server_refuses_bad_keys), cmocka_unit_test(test_spoiled_boxes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
