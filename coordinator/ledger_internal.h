/* The privacy ledger's state and what its two files share (internal to coordinator/):
 *   ledger.c         creation, accounting (two accounts), checks, appends
 *   ledger_verify.c  replaying a ledger file: every hash, signature and epsilon recomputed */
#ifndef FEDREC_LEDGER_INTERNAL_H
#define FEDREC_LEDGER_INTERNAL_H

#include <sqlite3.h>

#include "fedrec/accountant.h"
#include "fedrec/ledger.h"

struct fedrec_ledger {
  sqlite3 *db;
  const fedrec_identity *id;
  fedrec_orders orders;
  double delta, budget, epsilon;
  double public_budget, epsilon_public; /* format 4: what model recipients can learn */
  uint32_t max_part;   /* format 4: a user takes part in at most this many releases (0: no bound) */
  fedrec_rdp_topk rdp; /* against the operator: every non-tree release, or the max_part largest
                        * per order (before format 4: tree entries too) */
  double tree_rdp[FEDREC_MAX_ORDERS]; /* format 4: tree entries (what recipients see) */
  int trees;           /* format 4: tree entries so far */
  int prev_tree;       /* the last entry was a tree entry (its round: last_round) */
  uint64_t seq, last_round;
  uint8_t last[32];
  int format;          /* 4 (the participation bound, two accounts); 3 (colluders, a signed head
                        * from genesis on); 2: older, verify only */
  uint64_t want_seq;   /* fedrec_ledger_verify_covers: this entry must have this hash */
  uint8_t want_hash[32];
  int want_found;
  fedrec_ledger_visit visit; /* fedrec_ledger_verify_rows: each verified entry */
  void *visit_ctx;
  uint64_t tree_leaf;  /* the last tree entry's leaf (0: none yet) and noise multiplier */
  double tree_z;
  int cached;          /* the last release's per-order RDP, reused while parameters repeat */
  fedrec_release cache_key;
  double cache_rdp[FEDREC_MAX_ORDERS];
};

void fedrec__ledger_hex(char *out, const uint8_t *b, size_t n);
void fedrec__ledger_genesis(fedrec_ledger *l, const char *orders, const char *pkhex);
void fedrec__ledger_entry_hash(uint8_t out[32], int format, const uint8_t prev[32], uint64_t seq, const fedrec_release *r,
                               const char *mech, double eps, double eps_public);
void fedrec__ledger_head_hash(uint8_t out[32], uint64_t seq, const uint8_t hash[32]);
/* Both epsilons after the n releases (at most one tree and one other) were added to l, and
 * the budgets checked (FEDREC_ERR_LIMIT); *one_op, *one_tree: their per-order RDP (unset when
 * absent). Parameters are checked against the ledger so far (FEDREC_ERR_ARG). */
fedrec_status fedrec__ledger_assess(fedrec_ledger *l, const fedrec_release *r, size_t n, double *eps, double *eps_public,
                                    double *one_op, int *has_op, double *one_tree, int *has_tree, fedrec_error *err);
/* Adds one accepted release (its RDP from fedrec__ledger_assess) to l's accounts. */
void fedrec__ledger_add(fedrec_ledger *l, const fedrec_release *r, const double *one, double eps, double eps_public);
fedrec_status fedrec__ledger_sql(fedrec_error *err, sqlite3 *db, int rc, const char *what);
fedrec_status fedrec__ledger_get_meta(sqlite3 *db, const char *k, char *v, size_t cap, fedrec_error *err);
fedrec_status fedrec__ledger_open_db(sqlite3 **db, const char *path, int flags, fedrec_error *err);
/* ledger_verify.c: replays l's file under pk (print: a table or JSON lines to out) */
fedrec_status fedrec__ledger_replay(fedrec_ledger *l, const uint8_t pk[32], FILE *out, int json, fedrec_error *err);

#endif
