/* fedrec-audit report --ledger F --public-key K --out DIR: verifies the ledger as `verify`
 * does and writes what an auditor reads: DIR/index.html (the verdict, both epsilons over the
 * releases against the budgets as a figure, DIR/epsilon.svg, the mechanisms, participation
 * statistics, the assumptions under which each number holds, every release) and
 * DIR/report.json (the same as data). A ledger that fails verification still gets a report
 * that says so, and the command exits 1. Internal to fedrec-audit. */
#ifndef FEDREC_AUDIT_REPORT_H
#define FEDREC_AUDIT_REPORT_H

#include <stdint.h>

typedef struct report_in {
  const char *ledger, *out;
  uint8_t pk[32];
  char pk_hex[65];
} report_in;

/* The exit code: 0 written and verified, 1 not verified or not written. */
int fedrec_audit_report(const report_in *in);

#endif
