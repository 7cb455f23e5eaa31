/* The privacy ledger (see include/fedrec/ledger.h). */
#include "fedrec/ledger.h"

#include <math.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fedrec/accountant.h"

struct fedrec_ledger {
  sqlite3 *db;
  const fedrec_identity *id;
  fedrec_orders orders;
  double delta, budget, epsilon;
  uint32_t max_part;  /* format 4: a user takes part in at most this many releases (0: no bound) */
  fedrec_rdp_topk rdp; /* cumulative: all releases, or the max_part largest per order */
  uint64_t seq, last_round;
  uint8_t last[32];
  int format;         /* 4 (the participation bound); 3 (colluders, a signed head from genesis
                       * on); 2: older, verify only */
  uint64_t want_seq;  /* fedrec_ledger_verify_covers: this entry must have this hash */
  uint8_t want_hash[32];
  int want_found;
  uint64_t tree_leaf; /* the last tree entry's leaf (0: none yet) and noise multiplier */
  double tree_z;
  int cached;         /* the last release's per-order RDP, reused while parameters repeat */
  fedrec_release cache_key;
  double cache_rdp[FEDREC_MAX_ORDERS];
};

static const char *SCHEMA =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE entries(seq INTEGER PRIMARY KEY, round INTEGER NOT NULL, mechanism TEXT NOT NULL,"
    " q REAL NOT NULL, z REAL NOT NULL, d2 REAL NOT NULL, d1 REAL NOT NULL, var REAL NOT NULL,"
    " survivors INTEGER NOT NULL, sigma REAL NOT NULL, dim INTEGER NOT NULL, leaf INTEGER NOT NULL,"
    " epsilon REAL NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL,"
    " sig BLOB NOT NULL, colluders INTEGER NOT NULL);"
    "CREATE TABLE head(id INTEGER PRIMARY KEY CHECK(id = 1), seq INTEGER NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL);";

static void hex(char *out, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

static void genesis(uint8_t out[32], int format, double delta, double budget, const char *orders,
                    uint32_t max_part, const char *pkhex) {
  char text[2048], bound[48] = "";
  if (format >= 4) snprintf(bound, sizeof bound, "max_participation=%u\n", max_part);
  int n = snprintf(text, sizeof text, "fedrec-ledger-v%d\ndelta=%.17g\nbudget=%.17g\norders=%s\n%spk=%s\n",
                   format, delta, budget, orders, bound, pkhex);
  fedrec_hash2(out, text, (size_t)n, NULL, 0);
}

/* mech: the mechanism's name as recorded (a reader hashes the stored text, known or not). */
static void entry_hash(uint8_t out[32], int format, const uint8_t prev[32], uint64_t seq, const fedrec_release *r,
                       const char *mech, double eps) {
  char text[640];
  int n = snprintf(text, sizeof text,
                   "seq=%llu;round=%llu;mech=%s;q=%.17g;z=%.17g;d2=%.17g;d1=%.17g;var=%.17g;surv=%u;"
                   "sigma=%.17g;dim=%llu;leaf=%llu;eps=%.17g",
                   (unsigned long long)seq, (unsigned long long)r->round, mech, r->q, r->z,
                   r->d2, r->d1, r->var, r->survivors, r->sigma, (unsigned long long)r->dim,
                   (unsigned long long)r->leaf, eps);
  if (format >= 3) n += snprintf(text + n, sizeof text - (size_t)n, ";coll=%u", r->colluders);
  fedrec_hash2(out, prev, 32, text, (size_t)n);
}

static void head_hash(uint8_t out[32], uint64_t seq, const uint8_t hash[32]) {
  uint8_t b[4 + 8];
  memcpy(b, "head", 4);
  for (int i = 0; i < 8; i++) b[4 + i] = (uint8_t)(seq >> (8 * i));
  fedrec_hash2(out, b, sizeof b, hash, 32);
}

static int same_release(const fedrec_release *a, const fedrec_release *b) {
  return a->mechanism == b->mechanism && a->q == b->q && a->z == b->z && a->d2 == b->d2 &&
         a->d1 == b->d1 && a->var == b->var && a->survivors == b->survivors && a->sigma == b->sigma &&
         a->dim == b->dim && a->colluders == b->colluders;
}

/* RDP of one release at every order, given the ledger so far (tree entries depend on the
 * previous one); FEDREC_ERR_ARG names a bad parameter. */
static fedrec_status release_rdp(fedrec_ledger *l, double *r, const fedrec_release *x,
                                 fedrec_error *err) {
  const fedrec_orders *o = &l->orders;
  fedrec_status s = fedrec_release_check(x, err);
  if (s) return s;
  /* the bound replaces the sampling assumption: sampled or tree releases are accounted
   * otherwise, and not with it */
  if (l->max_part && (x->q != 1 || x->mechanism == FEDREC_MECH_TREE))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "a ledger with a participation bound (%u) accounts unsampled, non-tree "
                            "releases only (got %s, q = %g)", l->max_part, fedrec_mechanism_name(x->mechanism), x->q);
  if (x->mechanism == FEDREC_MECH_TREE) {
    if (x->leaf != 1 && (x->leaf != l->tree_leaf + 1 || l->tree_leaf == 0))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "tree leaf %llu does not follow the previous tree entry's leaf %llu (nor start a tree at 1)",
                              (unsigned long long)x->leaf, (unsigned long long)l->tree_leaf);
    if (x->leaf != 1 && x->z != l->tree_z)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "tree leaf %llu: noise multiplier %g differs from the tree's %g",
                              (unsigned long long)x->leaf, x->z, l->tree_z);
    /* a tree of k leaves costs floor(log2 k) + 1 Gaussian releases: one more at each power of 2 */
    int grows = (x->leaf & (x->leaf - 1)) == 0;
    for (size_t k = 0; k < o->n; k++) r[k] = grows ? fedrec_release_rdp(x, o->a[k], 1) : 0;
    return FEDREC_OK;
  }
  if (l->cached && same_release(&l->cache_key, x)) {
    memcpy(r, l->cache_rdp, o->n * sizeof *r);
    return FEDREC_OK;
  }
  for (size_t k = 0; k < o->n; k++) r[k] = fedrec_release_rdp(x, o->a[k], 1);
  l->cache_key = *x;
  memcpy(l->cache_rdp, r, o->n * sizeof *r);
  l->cached = 1;
  return FEDREC_OK;
}

/* Records what a tree entry changes in the ledger's state once it is accepted. */
static void release_done(fedrec_ledger *l, const fedrec_release *x) {
  if (x->mechanism == FEDREC_MECH_TREE) {
    l->tree_leaf = x->leaf;
    l->tree_z = x->z;
  }
}

static fedrec_status sql(fedrec_error *err, sqlite3 *db, int rc, const char *what) {
  if (rc == SQLITE_OK || rc == SQLITE_DONE || rc == SQLITE_ROW) return FEDREC_OK;
  return fedrec_error_set(err, FEDREC_ERR_IO, "ledger: %s: %s", what, sqlite3_errmsg(db));
}

static fedrec_status set_meta(sqlite3 *db, const char *k, const char *v, fedrec_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "INSERT INTO meta(k, v) VALUES(?, ?)", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, v, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
  }
  return sql(err, db, rc, "writing metadata");
}

static fedrec_status get_meta(sqlite3 *db, const char *k, char *v, size_t cap, fedrec_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?", -1, &st, NULL);
  if (rc != SQLITE_OK) return sql(err, db, rc, "reading metadata");
  sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  fedrec_status s = FEDREC_OK;
  if (rc != SQLITE_ROW) s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: metadata '%s' missing", k);
  else snprintf(v, cap, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return s;
}

static fedrec_status open_db(sqlite3 **db, const char *path, int flags, fedrec_error *err) {
  if (sqlite3_open_v2(path, db, flags, NULL) != SQLITE_OK) {
    fedrec_status s = fedrec_error_set(err, FEDREC_ERR_IO, "ledger %s: %s", path, *db ? sqlite3_errmsg(*db) : "cannot open");
    sqlite3_close(*db);
    *db = NULL;
    return s;
  }
  sqlite3_busy_timeout(*db, 5000);
  return FEDREC_OK;
}

fedrec_status fedrec_ledger_create(fedrec_ledger **out, const char *path, double delta,
                                   double budget, const char *orders, const fedrec_identity *id,
                                   fedrec_error *err) {
  return fedrec_ledger_create_bounded(out, path, delta, budget, orders, 0, id, err);
}

fedrec_status fedrec_ledger_create_bounded(fedrec_ledger **out, const char *path, double delta, double budget,
                                           const char *orders, uint32_t max_participation, const fedrec_identity *id,
                                           fedrec_error *err) {
  *out = NULL;
  struct stat sb;
  if (stat(path, &sb) == 0) return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger %s already exists", path);
  if (!(delta > 0 && delta < 1) || !(budget > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger: need 0 < delta < 1 and budget > 0");
  if (max_participation > FEDREC_LEDGER_MAX_PARTICIPATION)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger: max participation %u above %u", max_participation,
                            FEDREC_LEDGER_MAX_PARTICIPATION);
  fedrec_ledger *l = calloc(1, sizeof *l);
  if (!l) return FEDREC_ERR_NOMEM;
  fedrec_status s = orders ? fedrec_orders_parse(&l->orders, orders, err) : (fedrec_orders_default(&l->orders), FEDREC_OK);
  l->max_part = max_participation;
  fedrec_rdp_topk_init(&l->rdp, max_participation, l->orders.n);
  if (!s) s = open_db(&l->db, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
  char pkhex[65], num[64];
  hex(pkhex, id->pk, 32);
  if (!s) s = sql(err, l->db, sqlite3_exec(l->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL), "pragmas");
  if (!s) s = sql(err, l->db, sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL), "begin");
  if (!s) s = sql(err, l->db, sqlite3_exec(l->db, SCHEMA, NULL, NULL, NULL), "schema");
  if (!s) snprintf(num, sizeof num, "%.17g", delta), s = set_meta(l->db, "delta", num, err);
  if (!s) snprintf(num, sizeof num, "%.17g", budget), s = set_meta(l->db, "budget", num, err);
  if (!s) s = set_meta(l->db, "orders", orders ? orders : "default", err);
  if (!s) s = set_meta(l->db, "public_key", pkhex, err);
  if (!s) s = set_meta(l->db, "format", "4", err);
  if (!s) snprintf(num, sizeof num, "%u", max_participation), s = set_meta(l->db, "max_participation", num, err);
  /* a signed head from the start: an emptied ledger (rows and head deleted) fails to verify */
  l->format = 4;
  genesis(l->last, 4, delta, budget, orders ? orders : "default", max_participation, pkhex);
  uint8_t hh[32], hsig[64];
  head_hash(hh, 0, l->last);
  fedrec_sign(hsig, hh, 32, id);
  sqlite3_stmt *st;
  if (!s && sqlite3_prepare_v2(l->db, "INSERT INTO head VALUES(1, 0, ?, ?)", -1, &st, NULL) == SQLITE_OK) {
    sqlite3_bind_blob(st, 1, l->last, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, hsig, 64, SQLITE_STATIC);
    s = sql(err, l->db, sqlite3_step(st), "writing the head");
    sqlite3_finalize(st);
  }
  if (!s) s = sql(err, l->db, sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL), "commit");
  if (s) {
    fedrec_ledger_close(l);
    return s;
  }
  l->id = id;
  l->delta = delta;
  l->budget = budget;
  *out = l;
  return FEDREC_OK;
}

void fedrec_ledger_close(fedrec_ledger *l) {
  if (!l) return;
  sqlite3_close(l->db);
  fedrec_rdp_topk_free(&l->rdp);
  free(l);
}

double fedrec_ledger_epsilon(const fedrec_ledger *l) { return l->epsilon; }
double fedrec_ledger_budget(const fedrec_ledger *l) { return l->budget; }
double fedrec_ledger_delta(const fedrec_ledger *l) { return l->delta; }
uint32_t fedrec_ledger_max_participation(const fedrec_ledger *l) { return l->max_part; }

void fedrec_ledger_head(const fedrec_ledger *l, uint64_t *entries, uint8_t hash[32]) {
  *entries = l->seq;
  memcpy(hash, l->last, 32);
}
uint64_t fedrec_ledger_last_round(const fedrec_ledger *l) { return l->last_round; }

fedrec_status fedrec_ledger_check(fedrec_ledger *l, const fedrec_release *r, double *eps_after,
                                  fedrec_error *err) {
  double one[FEDREC_MAX_ORDERS], cum[FEDREC_MAX_ORDERS];
  fedrec_status s = release_rdp(l, one, r, err);
  if (s) return s;
  fedrec_rdp_topk_peek(&l->rdp, one, cum);
  double e = fedrec_rdp_to_epsilon(cum, &l->orders, l->delta, NULL);
  if (eps_after) *eps_after = e;
  if (e > l->budget)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "round %llu would bring epsilon from %.6g to %.6g, above the budget %.6g: not started",
                            (unsigned long long)r->round, l->epsilon, e, l->budget);
  return FEDREC_OK;
}

static fedrec_status write_entry(fedrec_ledger *l, const fedrec_release *r, double eps,
                                 const uint8_t hash[32], const uint8_t sig[64],
                                 const uint8_t hsig[64], fedrec_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(l->db,
                            "INSERT INTO entries(seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon,"
                            " prev, hash, sig, sigma, dim, leaf, colluders) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(l->seq + 1));
    sqlite3_bind_int64(st, 2, (sqlite3_int64)r->round);
    sqlite3_bind_text(st, 3, fedrec_mechanism_name(r->mechanism), -1, SQLITE_STATIC);
    sqlite3_bind_double(st, 4, r->q);
    sqlite3_bind_double(st, 5, r->z);
    sqlite3_bind_double(st, 6, r->d2);
    sqlite3_bind_double(st, 7, r->d1);
    sqlite3_bind_double(st, 8, r->var);
    sqlite3_bind_int64(st, 9, r->survivors);
    sqlite3_bind_double(st, 10, eps);
    sqlite3_bind_blob(st, 11, l->last, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 12, hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 13, sig, 64, SQLITE_STATIC);
    sqlite3_bind_double(st, 14, r->sigma);
    sqlite3_bind_int64(st, 15, (sqlite3_int64)r->dim);
    sqlite3_bind_int64(st, 16, (sqlite3_int64)r->leaf);
    sqlite3_bind_int64(st, 17, r->colluders);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
  }
  if (rc == SQLITE_DONE)
    rc = sqlite3_prepare_v2(l->db, "INSERT OR REPLACE INTO head VALUES(1, ?, ?, ?)", -1, &st, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_bind_int64(st, 1, (sqlite3_int64)(l->seq + 1));
    sqlite3_bind_blob(st, 2, hash, 32, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, hsig, 64, SQLITE_STATIC);
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
  }
  if (rc == SQLITE_DONE) rc = sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
  if (rc != SQLITE_OK) {
    fedrec_status s = sql(err, l->db, rc, "appending an entry");
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return s;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_ledger_append(fedrec_ledger *l, const fedrec_release *r, double *eps_after,
                                   fedrec_error *err) {
  double eps, one[FEDREC_MAX_ORDERS];
  fedrec_status s = fedrec_ledger_check(l, r, &eps, err);
  if (s) return s;
  release_rdp(l, one, r, err);
  uint8_t hash[32], sig[64], hh[32], hsig[64];
  entry_hash(hash, l->format, l->last, l->seq + 1, r, fedrec_mechanism_name(r->mechanism), eps);
  fedrec_sign(sig, hash, 32, l->id);
  head_hash(hh, l->seq + 1, hash);
  fedrec_sign(hsig, hh, 32, l->id);
  /* room for the entry's values first: a failure leaves ledger and file as they were */
  if (fedrec_rdp_topk_reserve(&l->rdp)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "ledger: no memory for the composition");
  if ((s = write_entry(l, r, eps, hash, sig, hsig, err))) return s;
  fedrec_rdp_topk_add(&l->rdp, one);
  release_done(l, r);
  l->last_round = r->round;
  l->seq++;
  l->epsilon = eps;
  memcpy(l->last, hash, 32);
  if (eps_after) *eps_after = eps;
  return FEDREC_OK;
}

/* Replays a ledger: checks genesis, sequence, chain, hashes, signatures, recomputed epsilon
 * and budget for every entry, then the head. Leaves the state in l. */
/* The shortest decimal spelling of v that reads back as v exactly. */
static const char *exact(char *buf, double v) {
  for (int prec = 6; prec <= 17; prec++) {
    snprintf(buf, 32, "%.*g", prec, v);
    if (strtod(buf, NULL) == v) break;
  }
  return buf;
}

/* The fedrec-audit epsilon command giving one entry's epsilon on its own (a tree entry's cost
 * depends on its tree: the command for the whole tree up to it). */
static void recompute_command(char *out, size_t cap, const fedrec_release *r, double delta) {
  char a[32], b[32], c[32], q[32], d[32];
  exact(q, r->q), exact(d, delta);
  if (r->mechanism == FEDREC_MECH_SKELLAM)
    snprintf(out, cap, "fedrec-audit epsilon --mechanism skellam --l2-sensitivity %s --l1-sensitivity %s "
             "--variance %s --sampling-rate %s --steps 1 --delta %s", exact(a, r->d2), exact(b, r->d1), exact(c, r->var), q, d);
  else if (r->mechanism == FEDREC_MECH_DGAUSS)
    snprintf(out, cap, "fedrec-audit epsilon --mechanism dgauss --l2-sensitivity %s --l1-sensitivity %s "
             "--local-sigma %s --clients %u --dim %llu --sampling-rate %s --steps 1 --delta %s", exact(a, r->d2), exact(b, r->d1),
             exact(c, r->sigma), r->survivors - r->colluders, (unsigned long long)r->dim, q, d);
  else if (r->mechanism == FEDREC_MECH_TREE)
    snprintf(out, cap, "fedrec-audit epsilon --mechanism tree --noise-multiplier %s --steps %llu --delta %s "
             "(the tree up to this leaf)", exact(a, r->z), (unsigned long long)r->leaf, d);
  else
    snprintf(out, cap, "fedrec-audit epsilon --mechanism gaussian --noise-multiplier %s --sampling-rate %s "
             "--steps 1 --delta %s", exact(a, r->z), q, d);
}

/* The ledger's parameters (delta, budget, key, format, orders) and its genesis hash. */
static fedrec_status read_meta(fedrec_ledger *l, const uint8_t pk[32], fedrec_error *err) {
  char v[1024], pkhex[65];
  fedrec_status s = get_meta(l->db, "delta", v, sizeof v, err);
  if (!s) l->delta = strtod(v, NULL), s = get_meta(l->db, "budget", v, sizeof v, err);
  if (!s) l->budget = strtod(v, NULL), s = get_meta(l->db, "public_key", pkhex, sizeof pkhex, err);
  char want[65];
  hex(want, pk, 32);
  if (!s && strcmp(pkhex, want))
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: signed for public key %.16s..., not the given key", pkhex);
  char fmt[16];
  fedrec_error none = {0};
  l->format = get_meta(l->db, "format", fmt, sizeof fmt, &none) ? 2 : atoi(fmt); /* no key: format 2 */
  if (l->format < 2 || l->format > 4) return fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: format %d unknown (2, 3, 4)", l->format);
  if (!s && l->format >= 4 && !(s = get_meta(l->db, "max_participation", v, sizeof v, err))) {
    char *end;
    unsigned long k = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || k > FEDREC_LEDGER_MAX_PARTICIPATION)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: max_participation '%.20s' is not a number up to %u", v,
                              FEDREC_LEDGER_MAX_PARTICIPATION);
    l->max_part = (uint32_t)k;
  }
  if (!s) s = get_meta(l->db, "orders", v, sizeof v, err);
  if (s) return s;
  if (strcmp(v, "default") ? (s = fedrec_orders_parse(&l->orders, v, err)) : (fedrec_orders_default(&l->orders), 0)) return s;
  fedrec_rdp_topk_init(&l->rdp, l->max_part, l->orders.n);
  genesis(l->last, l->format, l->delta, l->budget, v, l->max_part, pkhex);
  return FEDREC_OK;
}

/* One verified entry as a table row or a JSON line: every parameter, and the command that
 * recomputes its epsilon alone. */
static void print_entry(FILE *out, int json, const fedrec_ledger *l, uint64_t seq, const fedrec_release *r, const char *mech,
                        double mine, double best) {
  char cmd[512];
  recompute_command(cmd, sizeof cmd, r, l->delta);
  if (json)
    fprintf(out, "{\"entry\": %llu, \"round\": %llu, \"mechanism\": \"%s\", \"sampling_rate\": %.17g, "
            "\"noise_multiplier\": %.17g, \"l2_sensitivity\": %.17g, \"l1_sensitivity\": %.17g, \"variance\": %.17g, "
            "\"local_sigma\": %.17g, \"dim\": %llu, \"leaf\": %llu, \"survivors\": %u, \"colluders\": %u, "
            "\"epsilon\": %.10g, \"order\": %g, \"recompute\": \"%s\"}\n",
            (unsigned long long)seq, (unsigned long long)r->round, mech, r->q, r->z, r->d2, r->d1, r->var, r->sigma,
            (unsigned long long)r->dim, (unsigned long long)r->leaf, r->survivors, r->colluders, mine, best, cmd);
  else
    fprintf(out, "%6llu %8llu %-9s %-8.4g %9u %9u  %.6f (order %g)\n         %s\n", (unsigned long long)seq,
            (unsigned long long)r->round, mech, r->q, r->survivors, r->colluders, mine, best, cmd);
}

static fedrec_status check_head(fedrec_ledger *l, const uint8_t pk[32], fedrec_error *err);

static fedrec_status replay(fedrec_ledger *l, const uint8_t pk[32], FILE *out, int json,
                            fedrec_error *err) {
  fedrec_status s = read_meta(l, pk, err);
  if (s) return s;
  if (l->want_seq == 0 && !memcmp(l->last, l->want_hash, 32)) l->want_found = 1;
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(l->db, l->format >= 3 ? "SELECT seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon, prev, hash, sig,"
                                                      " sigma, dim, leaf, colluders FROM entries ORDER BY seq"
                                                    : "SELECT seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon, prev, hash, sig,"
                                                      " sigma, dim, leaf, 0 FROM entries ORDER BY seq", -1, &st, NULL);
  if (rc != SQLITE_OK) return sql(err, l->db, rc, "reading entries");
  while ((rc = sqlite3_step(st)) == SQLITE_ROW && !s) {
    uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
    const char *mech = (const char *)sqlite3_column_text(st, 2);
    fedrec_release r = {.mechanism = FEDREC_MECHANISMS, /* unknown until parsed below */
                        .round = (uint64_t)sqlite3_column_int64(st, 1),
                        .q = sqlite3_column_double(st, 3), .z = sqlite3_column_double(st, 4),
                        .d2 = sqlite3_column_double(st, 5), .d1 = sqlite3_column_double(st, 6),
                        .var = sqlite3_column_double(st, 7), .survivors = (uint32_t)sqlite3_column_int64(st, 8),
                        .sigma = sqlite3_column_double(st, 13), .dim = (uint64_t)sqlite3_column_int64(st, 14),
                        .leaf = (uint64_t)sqlite3_column_int64(st, 15), .colluders = (uint32_t)sqlite3_column_int64(st, 16)};
    /* counts are 32-bit: a stored value past that would be verified as its low half */
    int64_t surv64 = sqlite3_column_int64(st, 8), coll64 = sqlite3_column_int64(st, 16);
    int counts_ok = surv64 >= 0 && surv64 <= UINT32_MAX && coll64 >= 0 && coll64 <= UINT32_MAX;
    double eps = sqlite3_column_double(st, 9);
    const void *prev = sqlite3_column_blob(st, 10), *hash = sqlite3_column_blob(st, 11), *sig = sqlite3_column_blob(st, 12);
    uint8_t h[32];
    double one[FEDREC_MAX_ORDERS];
    fedrec_error why = {0};
    if (seq != l->seq + 1) s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: expected sequence number %llu (an entry was removed or reordered)", (unsigned long long)seq, (unsigned long long)l->seq + 1);
    else if (!mech || !counts_ok || sqlite3_column_bytes(st, 10) != 32 || sqlite3_column_bytes(st, 11) != 32 || sqlite3_column_bytes(st, 12) != 64)
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: malformed", (unsigned long long)seq);
    else if (memcmp(prev, l->last, 32))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: does not chain to the previous entry", (unsigned long long)seq);
    else if (entry_hash(h, l->format, l->last, seq, &r, mech, eps), memcmp(h, hash, 32))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: contents do not match its hash (edited)", (unsigned long long)seq);
    else if (fedrec_verify(sig, hash, 32, pk))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: bad signature", (unsigned long long)seq);
    else if (fedrec_mechanism_parse(mech, &r.mechanism))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: invalid parameters: unknown mechanism '%.40s'", (unsigned long long)seq, mech);
    else if (release_rdp(l, one, &r, &why))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: invalid parameters: %s", (unsigned long long)seq, why.msg);
    if (s) break;
    if (fedrec_rdp_topk_add(&l->rdp, one)) {
      s = fedrec_error_set(err, FEDREC_ERR_NOMEM, "entry %llu: no memory for the composition", (unsigned long long)seq);
      break;
    }
    double best, mine = fedrec_rdp_to_epsilon(l->rdp.sum, &l->orders, l->delta, &best);
    if (!(fabs(mine - eps) <= 1e-9 * fabs(mine) + 1e-12))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: recorded epsilon %.12g, recomputed %.12g", (unsigned long long)seq, eps, mine);
    else if (mine > l->budget * (1 + 1e-12))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: epsilon %.6g exceeds the budget %.6g", (unsigned long long)seq, mine, l->budget);
    if (s) break;
    release_done(l, &r);
    l->last_round = r.round;
    if (out) print_entry(out, json, l, seq, &r, fedrec_mechanism_name(r.mechanism), mine, best); /* a known name */
    l->seq = seq;
    l->epsilon = mine;
    memcpy(l->last, hash, 32);
    if (seq == l->want_seq && !memcmp(hash, l->want_hash, 32)) l->want_found = 1;
  }
  sqlite3_finalize(st);
  if (s) return s;
  if (rc != SQLITE_DONE) return sql(err, l->db, rc, "reading entries");
  return check_head(l, pk, err);
}

/* The signed head record names the last entry replayed. */
static fedrec_status check_head(fedrec_ledger *l, const uint8_t pk[32], fedrec_error *err) {
  sqlite3_stmt *st;
  fedrec_status s = FEDREC_OK;
  int rc = sqlite3_prepare_v2(l->db, "SELECT seq, hash, sig FROM head WHERE id = 1", -1, &st, NULL);
  if (rc != SQLITE_OK) return sql(err, l->db, rc, "reading the head");
  rc = sqlite3_step(st);
  /* format 3 writes a head at creation: even an empty ledger has one */
  if (rc != SQLITE_ROW) s = l->seq || l->format >= 3 ? fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: the head record is missing (entries or the head deleted)") : FEDREC_OK;
  else {
    uint8_t hh[32];
    uint64_t hseq = (uint64_t)sqlite3_column_int64(st, 0);
    head_hash(hh, hseq, l->last);
    if (hseq != l->seq || sqlite3_column_bytes(st, 1) != 32 || memcmp(sqlite3_column_blob(st, 1), l->last, 32))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: the signed head names entry %llu but the ledger ends at %llu (truncated)",
                           (unsigned long long)hseq, (unsigned long long)l->seq);
    else if (sqlite3_column_bytes(st, 2) != 64 || fedrec_verify(sqlite3_column_blob(st, 2), hh, 32, pk))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: bad signature on the head");
  }
  sqlite3_finalize(st);
  return s;
}

fedrec_status fedrec_ledger_verify(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES],
                                   fedrec_ledger_summary *sum, FILE *out, int json,
                                   fedrec_error *err) {
  fedrec_ledger l = {0};
  struct stat sb;
  if (stat(path, &sb) != 0) return fedrec_error_set(err, FEDREC_ERR_IO, "ledger %s: not found", path);
  fedrec_status s = open_db(&l.db, path, SQLITE_OPEN_READONLY, err);
  if (!s) s = replay(&l, pk, out, json, err);
  if (!s && sum) {
    *sum = (fedrec_ledger_summary){l.seq, l.epsilon, l.delta, l.budget, {0}, l.format, l.max_part};
    memcpy(sum->head, l.last, 32);
  }
  sqlite3_close(l.db);
  fedrec_rdp_topk_free(&l.rdp);
  return s;
}

fedrec_status fedrec_ledger_verify_covers(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES], uint64_t entries,
                                          const uint8_t hash[32], fedrec_ledger_summary *sum, fedrec_error *err) {
  fedrec_ledger l = {0};
  struct stat sb;
  if (stat(path, &sb) != 0) return fedrec_error_set(err, FEDREC_ERR_IO, "ledger %s: not found", path);
  l.want_seq = entries;
  memcpy(l.want_hash, hash, 32);
  fedrec_status s = open_db(&l.db, path, SQLITE_OPEN_READONLY, err);
  if (!s) s = replay(&l, pk, NULL, 0, err);
  if (!s && !l.want_found)
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, l.seq < entries ? "ledger: %llu entries, but the model was published after entry %llu (an older copy?)"
                                                                : "ledger: entry %llu of %llu is not the one the model names (another ledger?)",
                         (unsigned long long)(l.seq < entries ? l.seq : entries), (unsigned long long)(l.seq < entries ? entries : l.seq));
  if (!s && sum) {
    *sum = (fedrec_ledger_summary){l.seq, l.epsilon, l.delta, l.budget, {0}, l.format, l.max_part};
    memcpy(sum->head, l.last, 32);
  }
  sqlite3_close(l.db);
  fedrec_rdp_topk_free(&l.rdp);
  return s;
}

fedrec_status fedrec_ledger_open(fedrec_ledger **out, const char *path, const fedrec_identity *id,
                                 fedrec_error *err) {
  *out = NULL;
  fedrec_ledger *l = calloc(1, sizeof *l);
  if (!l) return FEDREC_ERR_NOMEM;
  fedrec_status s = open_db(&l->db, path, SQLITE_OPEN_READWRITE, err);
  if (!s) s = sql(err, l->db, sqlite3_exec(l->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL), "pragmas");
  if (!s) s = replay(l, id->pk, NULL, 0, err);
  if (!s && l->format < 3)
    s = fedrec_error_set(err, FEDREC_ERR_ARG, "ledger %s is format %d: this version verifies it (fedrec-audit verify) but "
                         "appends only to formats 3 and 4; start a new state for training", path, l->format);
  if (s) {
    fedrec_ledger_close(l);
    return s;
  }
  l->id = id;
  *out = l;
  return FEDREC_OK;
}
