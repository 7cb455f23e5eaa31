/* The privacy ledger: an append-only SQLite log with one entry per released aggregate, each
 * hash-chained to the previous one and signed with the coordinator's Ed25519 key, written
 * durably (WAL, synchronous=FULL) before the aggregate may be used. A signed head record
 * (last sequence number and hash) makes removing trailing entries detectable. The
 * cumulative epsilon is recomputed from every entry's recorded parameters. */
#ifndef FEDREC_LEDGER_H
#define FEDREC_LEDGER_H

#include <stdint.h>
#include <stdio.h>

#include "fedrec/crypto.h"
#include "fedrec/mechanism.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_ledger fedrec_ledger;

/* fedrec_release (one released aggregate) is in fedrec/mechanism.h. */

/* Creates a new ledger (fails if path exists) for a fixed delta, epsilon budget and order
 * grid (NULL: the default grid), signed by id. */
fedrec_status fedrec_ledger_create(fedrec_ledger **out, const char *path, double delta,
                                   double budget, const char *orders, const fedrec_identity *id,
                                   fedrec_error *err);
/* A ledger's terms, fixed in its genesis (format 4).
 *  - Two accounts. Epsilon (against the operator, who sees every round's aggregate with the
 *    devices' distributed noise) composes every release except tree entries; the public
 *    epsilon (against model recipients) is the smaller of that and the composition of the tree
 *    entries alone (DP-FTRL: the coordinator's tree noise on top; recipients see a
 *    post-processing of what the operator sees, and the tree's output, so both bound it). A
 *    tree entry must follow the release of the same round it adds noise to. Without tree
 *    entries both are equal. budget bounds the first, public_budget (0: budget; at most
 *    budget) the second.
 *  - max_participation (0: no bound; at most FEDREC_LEDGER_MAX_PARTICIPATION): no user takes
 *    part in more releases, which whoever appends must enforce (the coordinator's
 *    max-participation). Epsilon then composes, at each order, the max_participation largest
 *    entries' RDP, not all of them, and sampled releases (q < 1) are refused: the bound takes
 *    the place of the sampling assumption. */
#define FEDREC_LEDGER_MAX_PARTICIPATION 1000000u
typedef struct fedrec_ledger_terms {
  double delta, budget, public_budget;
  const char *orders; /* NULL: the default grid */
  uint32_t max_participation;
} fedrec_ledger_terms;
fedrec_status fedrec_ledger_create_with(fedrec_ledger **out, const char *path, const fedrec_ledger_terms *t,
                                        const fedrec_identity *id, fedrec_error *err);
/* Opens an existing ledger for appending, after verifying it under id's public key. */
fedrec_status fedrec_ledger_open(fedrec_ledger **out, const char *path, const fedrec_identity *id,
                                 fedrec_error *err);
void fedrec_ledger_close(fedrec_ledger *l);
/* The epsilon after appending r; FEDREC_ERR_LIMIT when it would exceed the budget. */
fedrec_status fedrec_ledger_check(fedrec_ledger *l, const fedrec_release *r, double *eps_after,
                                  fedrec_error *err);
/* Both epsilons after a round's n releases (1, or 2: its release and its tree entry), and
 * both budgets checked (FEDREC_ERR_LIMIT), appending nothing. */
fedrec_status fedrec_ledger_check_round(fedrec_ledger *l, const fedrec_release *r, size_t n, double *eps_after,
                                        double *eps_public_after, fedrec_error *err);
/* Checks the budget, then appends r durably. */
fedrec_status fedrec_ledger_append(fedrec_ledger *l, const fedrec_release *r, double *eps_after,
                                   fedrec_error *err);
double fedrec_ledger_epsilon(const fedrec_ledger *l);
/* The budget and delta fixed when the ledger was created. */
double fedrec_ledger_budget(const fedrec_ledger *l);
double fedrec_ledger_delta(const fedrec_ledger *l);
/* The participation bound fixed when the ledger was created (0: none). */
uint32_t fedrec_ledger_max_participation(const fedrec_ledger *l);
/* Against model recipients (equal to the epsilon before format 4 or without tree entries). */
double fedrec_ledger_epsilon_public(const fedrec_ledger *l);
double fedrec_ledger_public_budget(const fedrec_ledger *l);
/* 2, 3 or 4 (only 4 keeps two accounts). */
int fedrec_ledger_format(const fedrec_ledger *l);
/* The round of the last entry (0 when empty): a restarted coordinator numbers rounds after it,
 * so no round is recorded twice. */
uint64_t fedrec_ledger_last_round(const fedrec_ledger *l);
/* The head: how many entries, and the hash of the last (the genesis hash when empty). Every
 * published model's signature covers it (fedrec_model_signed_message), so that whoever holds
 * a model can tell a ledger shorter than the one behind it (fedrec_ledger_verify_covers). */
void fedrec_ledger_head(const fedrec_ledger *l, uint64_t *entries, uint8_t hash[32]);

typedef struct fedrec_ledger_summary {
  uint64_t entries;
  double epsilon, delta, budget;
  uint8_t head[32]; /* hash of the last entry (genesis hash when empty) */
  int format;       /* 2, 3 or 4 */
  uint32_t max_participation; /* format 4: the bound epsilon assumes (0: none) */
  double epsilon_public, public_budget; /* against model recipients (format 4) */
} fedrec_ledger_summary;

/* Verifies a ledger file independently: genesis, chain, signatures, head, sequence numbers,
 * every recorded epsilon recomputed from the entries' parameters (1e-9 relative), and the
 * budget never exceeded. Writes a per-entry table to out (JSON lines with json) when out is
 * not NULL. The first discrepancy fails with FEDREC_ERR_PARSE naming the entry and reason. */
fedrec_status fedrec_ledger_verify(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES],
                                   fedrec_ledger_summary *s, FILE *out, int json,
                                   fedrec_error *err);
/* One verified entry, as fedrec_ledger_verify_rows hands it over: its parameters and both
 * epsilons after it (cumulative, as recomputed). Valid during the call only. */
typedef struct fedrec_ledger_row {
  uint64_t entry;
  const fedrec_release *release;
  const char *mechanism;
  double epsilon, epsilon_public;
} fedrec_ledger_row;
typedef void (*fedrec_ledger_visit)(void *ctx, const fedrec_ledger_row *row);
/* fedrec_ledger_verify, handing each entry to visit once it is verified (in order; on a
 * failure, those before the failing one have been handed over). */
fedrec_status fedrec_ledger_verify_rows(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES], fedrec_ledger_summary *s,
                                        fedrec_ledger_visit visit, void *ctx, fedrec_error *err);
/* Verifies the ledger and that it holds entry `entries` with hash `hash` (0: the genesis), as
 * a model's signature says: a ledger that is shorter, or another ledger, fails (FEDREC_ERR_PARSE). */
fedrec_status fedrec_ledger_verify_covers(const char *path, const uint8_t pk[FEDREC_SIGN_PK_BYTES], uint64_t entries,
                                          const uint8_t hash[32], fedrec_ledger_summary *s, fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
