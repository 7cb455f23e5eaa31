/* DP mechanisms: what a released aggregate's privacy is accounted as. One list from which
 * the enum and the names are made, one description of a release (fedrec_release), one
 * parameter check and one RDP function, which the coordinator's engine (planning), the
 * ledger (every entry) and fedrec-audit (independent recomputation) all call. Adding one is a
 * row here, its case in core/mechanism.c (check and RDP), tests in tests/test_accountant.c,
 * and its fedrec-audit flags (docs/CONTRIBUTING.md). */
#ifndef FEDREC_MECHANISM_H
#define FEDREC_MECHANISM_H

#include <stdint.h>

#include "fedrec/accountant.h"
#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, name as recorded in ledgers) */
#define FEDREC_MECHANISM_MAP(X) \
  X(GAUSSIAN, "gaussian")       \
  X(SKELLAM, "skellam")         \
  X(DGAUSS, "dgauss")           \
  X(TREE, "tree")

typedef enum fedrec_mechanism {
#define FEDREC_MECHANISM_ENUM(NAME, name) FEDREC_MECH_##NAME,
  FEDREC_MECHANISM_MAP(FEDREC_MECHANISM_ENUM)
#undef FEDREC_MECHANISM_ENUM
  FEDREC_MECHANISMS
} fedrec_mechanism;

/* "gaussian", ...; "unknown" out of range. */
const char *fedrec_mechanism_name(int m);
/* The mechanism called name: FEDREC_OK, or FEDREC_ERR_ARG when there is none. */
fedrec_status fedrec_mechanism_parse(const char *name, fedrec_mechanism *out);
/* "gaussian, skellam, dgauss, tree": for messages and --help. */
const char *fedrec_mechanism_names(void);

/* One released aggregate; survivors: clients whose contribution is in the aggregate;
 * colluders: how many of them may collude with the server (or skip their noise), so that
 * their noise shares are not credited (format 3; 0 in older ledgers).
 *  - gaussian: noise multiplier z, Poisson sampling rate q (central DP or any Gaussian sum);
 *  - skellam: integer-domain L2/L1 sensitivities d2/d1, total variance var of the honest
 *    survivors' noise (survivors - colluders shares), sampling rate q;
 *  - dgauss: distributed discrete Gaussian: d2, d1, each survivor's integer-domain sigma,
 *    the vector length dim, sampling rate q (survivors - colluders is the n of the accountant);
 *  - tree: DP-FTRL tree aggregation with restarts: noise multiplier z on every tree node,
 *    leaf = this release's position in the current tree (1 starts a new tree; otherwise the
 *    previous tree entry's leaf + 1 with the same z); q must be 1 (no sampling assumption) and
 *    the coordinator must let a user contribute at most once per tree. */
typedef struct fedrec_release {
  fedrec_mechanism mechanism;
  uint64_t round;
  double q, z, d2, d1, var;
  uint32_t survivors;
  double sigma;
  uint64_t dim, leaf;
  uint32_t colluders;
} fedrec_release;

/* Checks the parameters the release's mechanism needs (not a tree's sequence of leaves,
 * which depends on the ledger before it); FEDREC_ERR_ARG names the bad one. */
fedrec_status fedrec_release_check(const fedrec_release *x, fedrec_error *err);
/* RDP at order a of `count` such releases composed (count 1: one release; a tree: count
 * Gaussian node releases of multiplier z). +infinity at orders the mechanism's bound does not
 * cover (Skellam and discrete Gaussian: fractional orders when subsampled). */
double fedrec_release_rdp(const fedrec_release *x, double a, double count);
/* Epsilon at delta of `count` such releases, over the orders o (the best in *best_order). */
double fedrec_release_epsilon(const fedrec_release *x, double count, double delta, const fedrec_orders *o,
                              double *best_order);

#ifdef __cplusplus
}
#endif
#endif
