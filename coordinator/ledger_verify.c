/* Replaying a privacy ledger file (see include/fedrec/ledger.h): genesis, sequence, chain,
 * hashes, signatures, both recomputed epsilons and budgets for every entry, then the head. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ledger_internal.h"

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
  fedrec_status s = fedrec__ledger_get_meta(l->db, "delta", v, sizeof v, err);
  if (!s) l->delta = strtod(v, NULL), s = fedrec__ledger_get_meta(l->db, "budget", v, sizeof v, err);
  if (!s) l->budget = strtod(v, NULL), s = fedrec__ledger_get_meta(l->db, "public_key", pkhex, sizeof pkhex, err);
  char want[65];
  fedrec__ledger_hex(want, pk, 32);
  if (!s && strcmp(pkhex, want))
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: signed for public key %.16s..., not the given key", pkhex);
  char fmt[16];
  fedrec_error none = {0};
  l->format = fedrec__ledger_get_meta(l->db, "format", fmt, sizeof fmt, &none) ? 2 : atoi(fmt); /* no key: format 2 */
  if (l->format < 2 || l->format > 4) return fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: format %d unknown (2, 3, 4)", l->format);
  l->public_budget = l->budget;
  if (!s && l->format >= 4 && !(s = fedrec__ledger_get_meta(l->db, "public_budget", v, sizeof v, err))) {
    char *end;
    l->public_budget = strtod(v, &end);
    if (end == v || *end || !(l->public_budget > 0))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: public_budget '%.20s' is not a number > 0", v);
  }
  if (!s && l->format >= 4 && !(s = fedrec__ledger_get_meta(l->db, "max_participation", v, sizeof v, err))) {
    char *end;
    unsigned long k = strtoul(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || *end || k > FEDREC_LEDGER_MAX_PARTICIPATION)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: max_participation '%.20s' is not a number up to %u", v,
                              FEDREC_LEDGER_MAX_PARTICIPATION);
    l->max_part = (uint32_t)k;
  }
  if (!s) s = fedrec__ledger_get_meta(l->db, "orders", v, sizeof v, err);
  if (s) return s;
  if (strcmp(v, "default") ? (s = fedrec_orders_parse(&l->orders, v, err)) : (fedrec_orders_default(&l->orders), 0)) return s;
  fedrec_rdp_topk_init(&l->rdp, l->max_part, l->orders.n);
  fedrec__ledger_genesis(l, v, pkhex);
  return FEDREC_OK;
}

/* One verified entry as a table row or a JSON line: every parameter, and the command that
 * recomputes its epsilon alone. */
static void print_entry(FILE *out, int json, const fedrec_ledger *l, uint64_t seq, const fedrec_release *r, const char *mech,
                        double mine, double pub) {
  char cmd[512];
  recompute_command(cmd, sizeof cmd, r, l->delta);
  if (json)
    fprintf(out, "{\"entry\": %llu, \"round\": %llu, \"mechanism\": \"%s\", \"sampling_rate\": %.17g, "
            "\"noise_multiplier\": %.17g, \"l2_sensitivity\": %.17g, \"l1_sensitivity\": %.17g, \"variance\": %.17g, "
            "\"local_sigma\": %.17g, \"dim\": %llu, \"leaf\": %llu, \"survivors\": %u, \"colluders\": %u, "
            "\"epsilon\": %.10g, \"epsilon_public\": %.10g, \"recompute\": \"%s\"}\n",
            (unsigned long long)seq, (unsigned long long)r->round, mech, r->q, r->z, r->d2, r->d1, r->var, r->sigma,
            (unsigned long long)r->dim, (unsigned long long)r->leaf, r->survivors, r->colluders, mine, pub, cmd);
  else
    fprintf(out, "%6llu %8llu %-9s %-8.4g %9u %9u  %.6f  %.6f\n         %s\n", (unsigned long long)seq,
            (unsigned long long)r->round, mech, r->q, r->survivors, r->colluders, mine, pub, cmd);
}

static fedrec_status check_head(fedrec_ledger *l, const uint8_t pk[32], fedrec_error *err);

/* One stored entry's fields (count_ok: its 32-bit counts fit). */
static fedrec_release entry_of(sqlite3_stmt *st, int *counts_ok) {
  int64_t surv64 = sqlite3_column_int64(st, 8), coll64 = sqlite3_column_int64(st, 16);
  *counts_ok = surv64 >= 0 && surv64 <= UINT32_MAX && coll64 >= 0 && coll64 <= UINT32_MAX;
  return (fedrec_release){.mechanism = FEDREC_MECHANISMS, /* unknown until parsed */
                          .round = (uint64_t)sqlite3_column_int64(st, 1),
                          .q = sqlite3_column_double(st, 3), .z = sqlite3_column_double(st, 4),
                          .d2 = sqlite3_column_double(st, 5), .d1 = sqlite3_column_double(st, 6),
                          .var = sqlite3_column_double(st, 7), .survivors = (uint32_t)surv64,
                          .sigma = sqlite3_column_double(st, 13), .dim = (uint64_t)sqlite3_column_int64(st, 14),
                          .leaf = (uint64_t)sqlite3_column_int64(st, 15), .colluders = (uint32_t)coll64};
}

static int close_enough(double mine, double recorded) {
  return fabs(mine - recorded) <= 1e-9 * fabs(mine) + 1e-12;
}

/* One entry: chained, hashed, signed, its parameters valid and both epsilons as recorded. */
static fedrec_status replay_entry(fedrec_ledger *l, const uint8_t pk[32], sqlite3_stmt *st, FILE *out, int json,
                                  fedrec_error *err) {
  uint64_t seq = (uint64_t)sqlite3_column_int64(st, 0);
  unsigned long long e = (unsigned long long)seq;
  const char *mech = (const char *)sqlite3_column_text(st, 2);
  int counts_ok;
  fedrec_release r = entry_of(st, &counts_ok);
  double eps = sqlite3_column_double(st, 9), epub = sqlite3_column_double(st, 17);
  const void *prev = sqlite3_column_blob(st, 10), *hash = sqlite3_column_blob(st, 11), *sig = sqlite3_column_blob(st, 12);
  uint8_t h[32];
  double op[FEDREC_MAX_ORDERS], tree[FEDREC_MAX_ORDERS], mine, pub;
  int has_op, has_tree;
  fedrec_error why = {0};
  if (seq != l->seq + 1)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: expected sequence number %llu (an entry was removed or reordered)", e, (unsigned long long)l->seq + 1);
  if (!mech || !counts_ok || sqlite3_column_bytes(st, 10) != 32 || sqlite3_column_bytes(st, 11) != 32 || sqlite3_column_bytes(st, 12) != 64)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: malformed", e);
  if (memcmp(prev, l->last, 32)) return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: does not chain to the previous entry", e);
  fedrec__ledger_entry_hash(h, l->format, l->last, seq, &r, mech, eps, epub);
  if (memcmp(h, hash, 32)) return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: contents do not match its hash (edited)", e);
  if (fedrec_verify(sig, hash, 32, pk)) return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: bad signature", e);
  if (fedrec_mechanism_parse(mech, &r.mechanism))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: invalid parameters: unknown mechanism '%.40s'", e, mech);
  fedrec_status s = fedrec__ledger_assess(l, &r, 1, &mine, &pub, op, &has_op, tree, &has_tree, &why);
  if (s == FEDREC_ERR_LIMIT) return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: exceeds its budget: %s", e, why.msg);
  if (s) return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: invalid parameters: %s", e, why.msg);
  if (!close_enough(mine, eps))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: recorded epsilon %.12g, recomputed %.12g", e, eps, mine);
  if (l->format >= 4 && !close_enough(pub, epub))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "entry %llu: recorded public epsilon %.12g, recomputed %.12g", e, epub, pub);
  if (fedrec_rdp_topk_reserve(&l->rdp)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "entry %llu: no memory for the composition", e);
  fedrec__ledger_add(l, &r, has_tree ? tree : op, mine, l->format >= 4 ? pub : mine);
  if (out) print_entry(out, json, l, seq, &r, fedrec_mechanism_name(r.mechanism), mine, l->epsilon_public); /* a known name */
  if (l->visit) l->visit(l->visit_ctx, &(fedrec_ledger_row){seq, &r, fedrec_mechanism_name(r.mechanism), mine, l->epsilon_public});
  l->seq = seq;
  memcpy(l->last, hash, 32);
  if (seq == l->want_seq && !memcmp(hash, l->want_hash, 32)) l->want_found = 1;
  return FEDREC_OK;
}

fedrec_status fedrec__ledger_replay(fedrec_ledger *l, const uint8_t pk[32], FILE *out, int json, fedrec_error *err) {
  fedrec_status s = read_meta(l, pk, err);
  if (s) return s;
  if (l->want_seq == 0 && !memcmp(l->last, l->want_hash, 32)) l->want_found = 1;
  sqlite3_stmt *st;
  const char *q = l->format >= 4 ? "SELECT seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon, prev, hash, sig,"
                                   " sigma, dim, leaf, colluders, epsilon_public FROM entries ORDER BY seq"
                : l->format == 3 ? "SELECT seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon, prev, hash, sig,"
                                   " sigma, dim, leaf, colluders, 0 FROM entries ORDER BY seq"
                                 : "SELECT seq, round, mechanism, q, z, d2, d1, var, survivors, epsilon, prev, hash, sig,"
                                   " sigma, dim, leaf, 0, 0 FROM entries ORDER BY seq";
  int rc = sqlite3_prepare_v2(l->db, q, -1, &st, NULL);
  if (rc != SQLITE_OK) return fedrec__ledger_sql(err, l->db, rc, "reading entries");
  while (!s && (rc = sqlite3_step(st)) == SQLITE_ROW) s = replay_entry(l, pk, st, out, json, err);
  sqlite3_finalize(st);
  if (s) return s;
  if (rc != SQLITE_DONE) return fedrec__ledger_sql(err, l->db, rc, "reading entries");
  return check_head(l, pk, err);
}

/* The signed head record names the last entry replayed. */
static fedrec_status check_head(fedrec_ledger *l, const uint8_t pk[32], fedrec_error *err) {
  sqlite3_stmt *st;
  fedrec_status s = FEDREC_OK;
  int rc = sqlite3_prepare_v2(l->db, "SELECT seq, hash, sig FROM head WHERE id = 1", -1, &st, NULL);
  if (rc != SQLITE_OK) return fedrec__ledger_sql(err, l->db, rc, "reading the head");
  rc = sqlite3_step(st);
  /* format 3 writes a head at creation: even an empty ledger has one */
  if (rc != SQLITE_ROW) s = l->seq || l->format >= 3 ? fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: the head record is missing (entries or the head deleted)") : FEDREC_OK;
  else {
    uint8_t hh[32];
    uint64_t hseq = (uint64_t)sqlite3_column_int64(st, 0);
    fedrec__ledger_head_hash(hh, hseq, l->last);
    if (hseq != l->seq || sqlite3_column_bytes(st, 1) != 32 || memcmp(sqlite3_column_blob(st, 1), l->last, 32))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: the signed head names entry %llu but the ledger ends at %llu (truncated)",
                           (unsigned long long)hseq, (unsigned long long)l->seq);
    else if (sqlite3_column_bytes(st, 2) != 64 || fedrec_verify(sqlite3_column_blob(st, 2), hh, 32, pk))
      s = fedrec_error_set(err, FEDREC_ERR_PARSE, "ledger: bad signature on the head");
  }
  sqlite3_finalize(st);
  return s;
}

/* Replays the file at path (want_seq/want_hash set: also whether it holds that entry). */
static fedrec_status verify_file(const char *path, const uint8_t pk[32], uint64_t want_seq, const uint8_t *want_hash,
                                 fedrec_ledger_summary *sum, FILE *out, int json, fedrec_ledger_visit visit, void *ctx,
                                 fedrec_error *err) {
  fedrec_ledger l = {.visit = visit, .visit_ctx = ctx};
  struct stat sb;
  if (stat(path, &sb) != 0) return fedrec_error_set(err, FEDREC_ERR_IO, "ledger %s: not found", path);
  l.want_seq = want_seq;
  if (want_hash) memcpy(l.want_hash, want_hash, 32);
  fedrec_status s = fedrec__ledger_open_db(&l.db, path, SQLITE_OPEN_READONLY, err);
  if (!s) s = fedrec__ledger_replay(&l, pk, out, json, err);
  if (!s && want_hash && !l.want_found)
    s = fedrec_error_set(err, FEDREC_ERR_PARSE, l.seq < want_seq ? "ledger: %llu entries, but the model was published after entry %llu (an older copy?)"
                                                                 : "ledger: entry %llu of %llu is not the one the model names (another ledger?)",
                         (unsigned long long)(l.seq < want_seq ? l.seq : want_seq), (unsigned long long)(l.seq < want_seq ? want_seq : l.seq));
  if (!s && sum) {
    *sum = (fedrec_ledger_summary){l.seq, l.epsilon, l.delta, l.budget, {0}, l.format, l.max_part,
                                   fedrec_ledger_epsilon_public(&l), fedrec_ledger_public_budget(&l)};
    memcpy(sum->head, l.last, 32);
  }
  sqlite3_close(l.db);
  fedrec_rdp_topk_free(&l.rdp);
  return s;
}

fedrec_status fedrec_ledger_verify(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES],
                                   fedrec_ledger_summary *sum, FILE *out, int json,
                                   fedrec_error *err) {
  return verify_file(path, pk, 0, NULL, sum, out, json, NULL, NULL, err);
}

fedrec_status fedrec_ledger_verify_rows(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES], fedrec_ledger_summary *s,
                                        fedrec_ledger_visit visit, void *ctx, fedrec_error *err) {
  return verify_file(path, pk, 0, NULL, s, NULL, 0, visit, ctx, err);
}

fedrec_status fedrec_ledger_verify_covers(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES], uint64_t entries,
                                          const uint8_t hash[32], fedrec_ledger_summary *sum, fedrec_error *err) {
  return verify_file(path, pk, entries, hash, sum, NULL, 0, NULL, NULL, err);
}
