/* The privacy ledger (see include/fedrec/ledger.h): creation, the two accounts, checks and
 * appends; replaying a file is in ledger_verify.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ledger_internal.h"

static const char *SCHEMA =
    "CREATE TABLE meta(k TEXT PRIMARY KEY, v TEXT NOT NULL);"
    "CREATE TABLE entries(seq INTEGER PRIMARY KEY, round INTEGER NOT NULL, mechanism TEXT NOT NULL,"
    " q REAL NOT NULL, z REAL NOT NULL, d2 REAL NOT NULL, d1 REAL NOT NULL, var REAL NOT NULL,"
    " survivors INTEGER NOT NULL, sigma REAL NOT NULL, dim INTEGER NOT NULL, leaf INTEGER NOT NULL,"
    " epsilon REAL NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL,"
    " sig BLOB NOT NULL, colluders INTEGER NOT NULL, epsilon_public REAL NOT NULL);"
    "CREATE TABLE head(id INTEGER PRIMARY KEY CHECK(id = 1), seq INTEGER NOT NULL,"
    " hash BLOB NOT NULL, sig BLOB NOT NULL);";

void fedrec__ledger_hex(char *out, const uint8_t *b, size_t n) {
  for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", b[i]);
}

void fedrec__ledger_genesis(fedrec_ledger *l, const char *orders, const char *pkhex) {
  char text[2048], terms[128] = "";
  if (l->format >= 4)
    snprintf(terms, sizeof terms, "public_budget=%.17g\nmax_participation=%u\n", l->public_budget, l->max_part);
  int n = snprintf(text, sizeof text, "fedrec-ledger-v%d\ndelta=%.17g\nbudget=%.17g\norders=%s\n%spk=%s\n",
                   l->format, l->delta, l->budget, orders, terms, pkhex);
  fedrec_hash2(l->last, text, (size_t)n, NULL, 0);
}

/* mech: the mechanism's name as recorded (a reader hashes the stored text, known or not). */
void fedrec__ledger_entry_hash(uint8_t out[32], int format, const uint8_t prev[32], uint64_t seq, const fedrec_release *r,
                               const char *mech, double eps, double eps_public) {
  char text[700];
  int n = snprintf(text, sizeof text,
                   "seq=%llu;round=%llu;mech=%s;q=%.17g;z=%.17g;d2=%.17g;d1=%.17g;var=%.17g;surv=%u;"
                   "sigma=%.17g;dim=%llu;leaf=%llu;eps=%.17g",
                   (unsigned long long)seq, (unsigned long long)r->round, mech, r->q, r->z,
                   r->d2, r->d1, r->var, r->survivors, r->sigma, (unsigned long long)r->dim,
                   (unsigned long long)r->leaf, eps);
  if (format >= 3) n += snprintf(text + n, sizeof text - (size_t)n, ";coll=%u", r->colluders);
  if (format >= 4) n += snprintf(text + n, sizeof text - (size_t)n, ";epspub=%.17g", eps_public);
  fedrec_hash2(out, prev, 32, text, (size_t)n);
}

void fedrec__ledger_head_hash(uint8_t out[32], uint64_t seq, const uint8_t hash[32]) {
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
static fedrec_status release_rdp(fedrec_ledger *l, double *r, const fedrec_release *x, fedrec_error *err) {
  const fedrec_orders *o = &l->orders;
  fedrec_status s = fedrec_release_check(x, err);
  if (s) return s;
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

/* Format 4 keeps two accounts: a tree entry is what model recipients see of its round (the
 * tree's noise on top), the entry before it (same round) what the operator sees. */
static int public_side(const fedrec_ledger *l, const fedrec_release *x) {
  return l->format >= 4 && x->mechanism == FEDREC_MECH_TREE;
}

/* One release's place in the accounts: checked, its RDP in one_op or one_tree. */
static fedrec_status assess_one(fedrec_ledger *l, const fedrec_release *r, size_t i, double *one_op, int *has_op,
                                double *one_tree, int *has_tree, fedrec_error *err) {
  const fedrec_release *x = &r[i];
  if (public_side(l, x)) {
    int paired = i > 0 ? r[i - 1].mechanism != FEDREC_MECH_TREE && r[i - 1].round == x->round
                       : l->seq > 0 && !l->prev_tree && l->last_round == x->round;
    if (*has_tree || !paired)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "round %llu: a tree entry records what model recipients see of a round "
                              "whose release to the operator is the entry just before it (none here)", (unsigned long long)x->round);
    *has_tree = 1;
    return release_rdp(l, one_tree, x, err);
  }
  if (*has_op) return fedrec_error_set(err, FEDREC_ERR_ARG, "one release per round besides its tree entry");
  /* the bound replaces the sampling assumption: a sampled release is accounted otherwise */
  if (l->max_part && x->q != 1)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "a ledger with a participation bound (%u) accounts unsampled releases only "
                            "(got %s, q = %g)", l->max_part, fedrec_mechanism_name(x->mechanism), x->q);
  *has_op = 1;
  return release_rdp(l, one_op, x, err);
}

fedrec_status fedrec__ledger_assess(fedrec_ledger *l, const fedrec_release *r, size_t n, double *eps, double *eps_public,
                                    double *one_op, int *has_op, double *one_tree, int *has_tree, fedrec_error *err) {
  *has_op = *has_tree = 0;
  for (size_t i = 0; i < n; i++) {
    fedrec_status s = assess_one(l, r, i, one_op, has_op, one_tree, has_tree, err);
    if (s) return s;
  }
  double cum[FEDREC_MAX_ORDERS];
  if (*has_op) fedrec_rdp_topk_peek(&l->rdp, one_op, cum);
  else memcpy(cum, l->rdp.sum, l->orders.n * sizeof *cum);
  *eps = fedrec_rdp_to_epsilon(cum, &l->orders, l->delta, NULL);
  /* recipients see a post-processing of what the operator sees, and the tree's output: both
   * bound what they learn */
  *eps_public = *eps;
  if (l->format >= 4 && (l->trees || *has_tree)) {
    for (size_t k = 0; k < l->orders.n; k++) cum[k] = l->tree_rdp[k] + (*has_tree ? one_tree[k] : 0);
    double t = fedrec_rdp_to_epsilon(cum, &l->orders, l->delta, NULL);
    if (t < *eps_public) *eps_public = t;
  }
  unsigned long long round = (unsigned long long)r[0].round;
  if (*eps > l->budget)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "round %llu would bring epsilon from %.6g to %.6g, above the budget %.6g: not started",
                            round, l->epsilon, *eps, l->budget);
  if (l->format >= 4 && *eps_public > l->public_budget)
    return fedrec_error_set(err, FEDREC_ERR_LIMIT, "round %llu would bring the public epsilon (model recipients) from %.6g to %.6g, "
                            "above the public budget %.6g: not started", round, l->epsilon_public, *eps_public, l->public_budget);
  return FEDREC_OK;
}

void fedrec__ledger_add(fedrec_ledger *l, const fedrec_release *r, const double *one, double eps, double eps_public) {
  if (public_side(l, r)) {
    for (size_t k = 0; k < l->orders.n; k++) l->tree_rdp[k] += one[k];
    l->trees++;
  } else {
    fedrec_rdp_topk_add(&l->rdp, one); /* room reserved by the caller */
  }
  if (r->mechanism == FEDREC_MECH_TREE) {
    l->tree_leaf = r->leaf;
    l->tree_z = r->z;
  }
  l->prev_tree = r->mechanism == FEDREC_MECH_TREE;
  l->last_round = r->round;
  l->epsilon = eps;
  l->epsilon_public = eps_public;
}

fedrec_status fedrec__ledger_sql(fedrec_error *err, sqlite3 *db, int rc, const char *what) {
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
  return fedrec__ledger_sql(err, db, rc, "writing metadata");
}

fedrec_status fedrec__ledger_get_meta(sqlite3 *db, const char *k, char *v, size_t cap, fedrec_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?", -1, &st, NULL);
  if (rc != SQLITE_OK) return fedrec__ledger_sql(err, db, rc, "reading metadata");
  sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
  rc = sqlite3_step(st);
  fedrec_status s = FEDREC_OK;
  if (rc != SQLITE_ROW) s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: metadata '%s' missing", k);
  else snprintf(v, cap, "%s", (const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  return s;
}

fedrec_status fedrec__ledger_open_db(sqlite3 **db, const char *path, int flags, fedrec_error *err) {
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
  fedrec_ledger_terms t = {.delta = delta, .budget = budget, .orders = orders};
  return fedrec_ledger_create_with(out, path, &t, id, err);
}

/* The signed head of an empty ledger, from the start: an emptied ledger (rows and head
 * deleted) fails to verify. */
static fedrec_status write_first_head(fedrec_ledger *l, const fedrec_identity *id, fedrec_error *err) {
  uint8_t hh[32], hsig[64];
  fedrec__ledger_head_hash(hh, 0, l->last);
  fedrec_sign(hsig, hh, 32, id);
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(l->db, "INSERT INTO head VALUES(1, 0, ?, ?)", -1, &st, NULL);
  if (rc != SQLITE_OK) return fedrec__ledger_sql(err, l->db, rc, "writing the head");
  sqlite3_bind_blob(st, 1, l->last, 32, SQLITE_STATIC);
  sqlite3_bind_blob(st, 2, hsig, 64, SQLITE_STATIC);
  fedrec_status s = fedrec__ledger_sql(err, l->db, sqlite3_step(st), "writing the head");
  sqlite3_finalize(st);
  return s;
}

fedrec_status fedrec_ledger_create_with(fedrec_ledger **out, const char *path, const fedrec_ledger_terms *t,
                                        const fedrec_identity *id, fedrec_error *err) {
  *out = NULL;
  struct stat sb;
  double pb = t->public_budget > 0 ? t->public_budget : t->budget;
  if (stat(path, &sb) == 0) return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger %s already exists", path);
  if (!(t->delta > 0 && t->delta < 1) || !(t->budget > 0) || !(pb > 0 && pb <= t->budget))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger: need 0 < delta < 1, budget > 0 and 0 < public budget <= budget");
  if (t->max_participation > FEDREC_LEDGER_MAX_PARTICIPATION)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger: max participation %u above %u", t->max_participation,
                            FEDREC_LEDGER_MAX_PARTICIPATION);
  fedrec_ledger *l = calloc(1, sizeof *l);
  if (!l) return FEDREC_ERR_NOMEM;
  const char *orders = t->orders ? t->orders : "default";
  fedrec_status s = t->orders ? fedrec_orders_parse(&l->orders, t->orders, err) : (fedrec_orders_default(&l->orders), FEDREC_OK);
  *l = (fedrec_ledger){.orders = l->orders, .delta = t->delta, .budget = t->budget, .public_budget = pb,
                       .max_part = t->max_participation, .format = 4};
  fedrec_rdp_topk_init(&l->rdp, t->max_participation, l->orders.n);
  if (!s) s = fedrec__ledger_open_db(&l->db, path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, err);
  char pkhex[65], num[64];
  fedrec__ledger_hex(pkhex, id->pk, 32);
  if (!s) s = fedrec__ledger_sql(err, l->db, sqlite3_exec(l->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL), "pragmas");
  if (!s) s = fedrec__ledger_sql(err, l->db, sqlite3_exec(l->db, "BEGIN", NULL, NULL, NULL), "begin");
  if (!s) s = fedrec__ledger_sql(err, l->db, sqlite3_exec(l->db, SCHEMA, NULL, NULL, NULL), "schema");
  if (!s) snprintf(num, sizeof num, "%.17g", t->delta), s = set_meta(l->db, "delta", num, err);
  if (!s) snprintf(num, sizeof num, "%.17g", t->budget), s = set_meta(l->db, "budget", num, err);
  if (!s) snprintf(num, sizeof num, "%.17g", pb), s = set_meta(l->db, "public_budget", num, err);
  if (!s) s = set_meta(l->db, "orders", orders, err);
  if (!s) s = set_meta(l->db, "public_key", pkhex, err);
  if (!s) s = set_meta(l->db, "format", "4", err);
  if (!s) snprintf(num, sizeof num, "%u", t->max_participation), s = set_meta(l->db, "max_participation", num, err);
  fedrec__ledger_genesis(l, orders, pkhex);
  if (!s) s = write_first_head(l, id, err);
  if (!s) s = fedrec__ledger_sql(err, l->db, sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL), "commit");
  if (s) {
    fedrec_ledger_close(l);
    return s;
  }
  l->id = id;
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
double fedrec_ledger_epsilon_public(const fedrec_ledger *l) { return l->format >= 4 ? l->epsilon_public : l->epsilon; }
int fedrec_ledger_format(const fedrec_ledger *l) { return l->format; }
double fedrec_ledger_public_budget(const fedrec_ledger *l) { return l->format >= 4 ? l->public_budget : l->budget; }

void fedrec_ledger_head(const fedrec_ledger *l, uint64_t *entries, uint8_t hash[32]) {
  *entries = l->seq;
  memcpy(hash, l->last, 32);
}
uint64_t fedrec_ledger_last_round(const fedrec_ledger *l) { return l->last_round; }

fedrec_status fedrec_ledger_check_round(fedrec_ledger *l, const fedrec_release *r, size_t n, double *eps_after,
                                        double *eps_public_after, fedrec_error *err) {
  double op[FEDREC_MAX_ORDERS], tree[FEDREC_MAX_ORDERS], e, ep;
  int has_op, has_tree;
  if (n < 1 || n > 2) return fedrec_error_set(err, FEDREC_ERR_ARG, "ledger: a round has one or two releases, not %zu", n);
  fedrec_status s = fedrec__ledger_assess(l, r, n, &e, &ep, op, &has_op, tree, &has_tree, err);
  if (eps_after) *eps_after = e;
  if (eps_public_after) *eps_public_after = ep;
  return s;
}

fedrec_status fedrec_ledger_check(fedrec_ledger *l, const fedrec_release *r, double *eps_after, fedrec_error *err) {
  return fedrec_ledger_check_round(l, r, 1, eps_after, NULL, err);
}

static fedrec_status write_entry(fedrec_ledger *l, const fedrec_release *r, double eps, double eps_public,
                                 const uint8_t hash[32], const uint8_t sig[64],
                                 const uint8_t hsig[64], fedrec_error *err) {
  sqlite3_stmt *st;
  int rc = sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_prepare_v2(l->db,
                            "INSERT INTO entries(seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon,"
                            " prev, hash, sig, sigma, dim, leaf, colluders, epsilon_public) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
    sqlite3_bind_double(st, 18, eps_public);
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
    fedrec_status s = fedrec__ledger_sql(err, l->db, rc, "appending an entry");
    sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    return s;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_ledger_append(fedrec_ledger *l, const fedrec_release *r, double *eps_after,
                                   fedrec_error *err) {
  double eps, eps_public, op[FEDREC_MAX_ORDERS], tree[FEDREC_MAX_ORDERS];
  int has_op, has_tree;
  fedrec_status s = fedrec__ledger_assess(l, r, 1, &eps, &eps_public, op, &has_op, tree, &has_tree, err);
  if (s) return s;
  uint8_t hash[32], sig[64], hh[32], hsig[64];
  fedrec__ledger_entry_hash(hash, l->format, l->last, l->seq + 1, r, fedrec_mechanism_name(r->mechanism), eps, eps_public);
  fedrec_sign(sig, hash, 32, l->id);
  fedrec__ledger_head_hash(hh, l->seq + 1, hash);
  fedrec_sign(hsig, hh, 32, l->id);
  /* room for the entry's values first: a failure leaves ledger and file as they were */
  if (fedrec_rdp_topk_reserve(&l->rdp)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "ledger: no memory for the composition");
  if ((s = write_entry(l, r, eps, eps_public, hash, sig, hsig, err))) return s;
  fedrec__ledger_add(l, r, has_tree ? tree : op, eps, eps_public);
  l->seq++;
  memcpy(l->last, hash, 32);
  if (eps_after) *eps_after = eps;
  return FEDREC_OK;
}

fedrec_status fedrec_ledger_open(fedrec_ledger **out, const char *path, const fedrec_identity *id,
                                 fedrec_error *err) {
  *out = NULL;
  fedrec_ledger *l = calloc(1, sizeof *l);
  if (!l) return FEDREC_ERR_NOMEM;
  fedrec_status s = fedrec__ledger_open_db(&l->db, path, SQLITE_OPEN_READWRITE, err);
  if (!s) s = fedrec__ledger_sql(err, l->db, sqlite3_exec(l->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL, NULL), "pragmas");
  if (!s) s = fedrec__ledger_replay(l, id->pk, NULL, 0, err);
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
