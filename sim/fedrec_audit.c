/* fedrec-audit: recompute privacy claims independently of the coordinator.
 *   fedrec-audit epsilon --mechanism gaussian --noise-multiplier Z [--sampling-rate Q]
 *                --steps T --delta D [--orders LIST] [--json]
 *   fedrec-audit calibrate --target-epsilon E --delta D [--sampling-rate Q] --steps T
 *                [--orders LIST] [--json]
 *   fedrec-audit verify --ledger FILE --public-key FILE [--json]
 * It links no network code, so an auditor can build it alone. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/accountant.h"
#include "fedrec/ledger.h"

static void usage(FILE *f) {
  fputs("usage:\n"
        "  fedrec-audit epsilon --mechanism gaussian --noise-multiplier Z [--sampling-rate Q]\n"
        "               --steps T --delta D [--orders LIST] [--json]\n"
        "  fedrec-audit epsilon --mechanism skellam --l2-sensitivity D2 --l1-sensitivity D1\n"
        "               --variance V [--sampling-rate Q] --steps T --delta D [--orders LIST] [--json]\n"
        "               (integer domain; V = total noise variance of the sum over survivors)\n"
        "  fedrec-audit calibrate --target-epsilon E --delta D [--sampling-rate Q] --steps T\n"
        "               [--orders LIST] [--json]\n"
        "  fedrec-audit verify --ledger FILE --public-key FILE [--json]\n"
        "               (FILE: the coordinator's Ed25519 public key, 64 hex digits)\n"
        "LIST: comma-separated orders > 1, 'a:b' for every integer from a to b\n"
        "      (default: 1.1, 1.2, ..., 10.9, 11..63, 128, 256, 512, 1024)\n",
        f);
}

typedef struct {
  const char *mechanism, *orders;
  double z, q, delta, target, d2, d1, var;
  double steps;
  int json, have_z, have_steps, have_delta, have_target, have_d2, have_d1, have_var;
} args;

static int number(const char *flag, const char *v, double lo, double hi, int lo_open, double *out) {
  char *end;
  if (!v) {
    fprintf(stderr, "fedrec-audit: %s needs a value\n", flag);
    return 0;
  }
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(x) || x < lo || x > hi || (lo_open && x == lo)) {
    fprintf(stderr, "fedrec-audit: %s: '%s' is not a number in %s%g, %g]\n", flag, v, lo_open ? "(" : "[", lo, hi);
    return 0;
  }
  *out = x;
  return 1;
}

static int parse(args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->q = 1;
  a->mechanism = "gaussian";
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(f, "--json")) { a->json = 1; continue; }
    if (!strcmp(f, "--help")) { usage(stdout); exit(0); }
    int ok = 1;
    if (!strcmp(f, "--mechanism")) {
      ok = v != NULL;
      if (ok) a->mechanism = v;
    } else if (!strcmp(f, "--orders")) {
      ok = v != NULL;
      if (ok) a->orders = v;
    } else if (!strcmp(f, "--noise-multiplier")) ok = (a->have_z = number(f, v, 0, 1e6, 1, &a->z));
    else if (!strcmp(f, "--sampling-rate")) ok = number(f, v, 0, 1, 1, &a->q);
    else if (!strcmp(f, "--l2-sensitivity")) ok = (a->have_d2 = number(f, v, 0, 1e15, 1, &a->d2));
    else if (!strcmp(f, "--l1-sensitivity")) ok = (a->have_d1 = number(f, v, 0, 1e18, 1, &a->d1));
    else if (!strcmp(f, "--variance")) ok = (a->have_var = number(f, v, 0, 1e30, 1, &a->var));
    else if (!strcmp(f, "--steps")) ok = (a->have_steps = number(f, v, 1, 1e12, 0, &a->steps)) && a->steps == floor(a->steps);
    else if (!strcmp(f, "--delta")) ok = (a->have_delta = number(f, v, 0, 1, 1, &a->delta)) && a->delta < 1;
    else if (!strcmp(f, "--target-epsilon")) ok = (a->have_target = number(f, v, 0, 1e6, 1, &a->target));
    else {
      fprintf(stderr, "fedrec-audit: unknown option '%s' (see --help)\n", f);
      return 0;
    }
    if (!ok) {
      if (!v) fprintf(stderr, "fedrec-audit: %s needs a value\n", f);
      else if (!strcmp(f, "--steps") || !strcmp(f, "--delta"))
        fprintf(stderr, "fedrec-audit: %s: '%s' must be %s\n", f, v, !strcmp(f, "--steps") ? "a whole number >= 1" : "in (0, 1)");
      return 0;
    }
    i++;
  }
  return 1;
}

static const char *need(const args *a, int epsilon) {
  if (!a->have_steps) return "--steps";
  if (!a->have_delta) return "--delta";
  int skellam = !strcmp(a->mechanism, "skellam");
  if (epsilon && skellam && !a->have_d2) return "--l2-sensitivity";
  if (epsilon && skellam && !a->have_d1) return "--l1-sensitivity";
  if (epsilon && skellam && !a->have_var) return "--variance";
  if (epsilon && !skellam && !a->have_z) return "--noise-multiplier";
  if (!epsilon && !a->have_target) return "--target-epsilon";
  return NULL;
}

/* fedrec-audit verify: exit 0 only when every check passes. */
static int verify(int argc, char **argv) {
  const char *ledger = NULL, *keyfile = NULL;
  int json = 0;
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) json = 1;
    else if (!strcmp(argv[i], "--ledger") && i + 1 < argc) ledger = argv[++i];
    else if (!strcmp(argv[i], "--public-key") && i + 1 < argc) keyfile = argv[++i];
    else {
      fprintf(stderr, "fedrec-audit verify: unknown or incomplete option '%s'\n", argv[i]);
      return 2;
    }
  }
  if (!ledger || !keyfile) {
    fprintf(stderr, "fedrec-audit verify: --ledger and --public-key are required\n");
    return 2;
  }
  FILE *f = fopen(keyfile, "r");
  char hexkey[80] = "";
  uint8_t pk[32];
  int ok = f && fgets(hexkey, sizeof hexkey, f) != NULL;
  if (f) fclose(f);
  for (int i = 0; ok && i < 32; i++) {
    unsigned v;
    ok = sscanf(hexkey + 2 * i, "%2x", &v) == 1;
    pk[i] = (uint8_t)v;
  }
  if (!ok || (strlen(hexkey) != 64 && !(strlen(hexkey) == 65 && hexkey[64] == '\n'))) {
    fprintf(stderr, "fedrec-audit verify: %s: expected 64 hex digits (an Ed25519 public key)\n", keyfile);
    return 2;
  }
  if (fedrec_crypto_init()) return 1;
  fedrec_ledger_summary s;
  fedrec_error err = {0};
  if (!json) printf(" entry    round mechanism  sampling  survivors  cumulative epsilon\n");
  fedrec_status st = fedrec_ledger_verify(ledger, pk, &s, stdout, json, &err);
  if (st) {
    fprintf(stderr, "fedrec-audit verify: %s: FAILED: %s\n", ledger, err.msg);
    if (json) printf("{\"verified\": false, \"reason\": \"%s\"}\n", err.msg);
    return 1;
  }
  if (json)
    printf("{\"verified\": true, \"entries\": %llu, \"epsilon\": %.10g, \"delta\": %.10g, \"budget\": %.10g}\n",
           (unsigned long long)s.entries, s.epsilon, s.delta, s.budget);
  else
    printf("verified: %llu entries, epsilon %.6f at delta %g (budget %g), chain and signatures intact\n",
           (unsigned long long)s.entries, s.epsilon, s.delta, s.budget);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "verify")) return verify(argc, argv);
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  int epsilon = !strcmp(argv[1], "epsilon"), calibrate = !strcmp(argv[1], "calibrate");
  if (!epsilon && !calibrate) {
    fprintf(stderr, "fedrec-audit: unknown command '%s' (epsilon, calibrate, verify)\n", argv[1]);
    return 2;
  }
  args a;
  if (!parse(&a, argc, argv)) return 2;
  const char *missing = need(&a, epsilon);
  if (missing) {
    fprintf(stderr, "fedrec-audit %s: %s is required\n", argv[1], missing);
    return 2;
  }
  int skellam = !strcmp(a.mechanism, "skellam");
  if ((strcmp(a.mechanism, "gaussian") && !skellam) || (skellam && calibrate)) {
    fprintf(stderr, "fedrec-audit: --mechanism '%s' is not supported %s(gaussian, skellam; dgauss and tree come with the distributed-DP pipeline)\n",
            a.mechanism, calibrate ? "by calibrate " : "");
    return 2;
  }
  fedrec_orders o;
  fedrec_error err = {0};
  if (a.orders) {
    if (fedrec_orders_parse(&o, a.orders, &err)) {
      fprintf(stderr, "fedrec-audit: --orders: %s\n", err.msg);
      return 2;
    }
  } else {
    fedrec_orders_default(&o);
  }
  double order, z = a.z;
  if (calibrate && fedrec_calibrate_gaussian(&z, a.target, a.delta, a.q, (uint64_t)a.steps, &o, &err)) {
    fprintf(stderr, "fedrec-audit calibrate: %s\n", err.msg);
    return 1;
  }
  double eps = skellam ? fedrec_epsilon_skellam(a.q, a.d2, a.d1, a.var, (uint64_t)a.steps, a.delta, &o, &order)
                       : fedrec_epsilon_gaussian(a.q, z, (uint64_t)a.steps, a.delta, &o, &order);
  const char *grid = a.orders ? a.orders : "default";
  if (skellam) {
    if (a.json)
      printf("{\"epsilon\": %.10g, \"delta\": %.10g, \"order\": %.10g, \"mechanism\": \"skellam\", "
             "\"l2_sensitivity\": %.10g, \"l1_sensitivity\": %.10g, \"variance\": %.10g, "
             "\"sampling_rate\": %.10g, \"steps\": %.0f, \"orders\": \"%s\", "
             "\"subsampling\": \"%s\", \"conversion\": \"improved (Canonne, Kamath, Steinke 2020)\"}\n",
             eps, a.delta, order, a.d2, a.d1, a.var, a.q, a.steps, grid,
             a.q < 1 ? "Zhu and Wang 2019, integer orders" : "none");
    else
      printf("epsilon %.8f at delta %g (best order %g): Skellam, L2 %g, L1 %g, variance %g, sampling rate %g, %.0f steps\n",
             eps, a.delta, order, a.d2, a.d1, a.var, a.q, a.steps);
    return 0;
  }
  if (a.json) {
    printf("{");
    if (calibrate) printf("\"noise_multiplier\": %.10g, \"target_epsilon\": %.10g, ", z, a.target);
    printf("\"epsilon\": %.10g, \"delta\": %.10g, \"order\": %.10g, \"mechanism\": \"gaussian\", "
           "\"noise_multiplier_used\": %.10g, \"sampling_rate\": %.10g, \"steps\": %.0f, "
           "\"orders\": \"%s\", \"conversion\": \"improved (Canonne, Kamath, Steinke 2020)\", "
           "\"fractional_orders\": \"exact signed series\"}\n",
           eps, a.delta, order, z, a.q, a.steps, grid);
  } else if (calibrate) {
    printf("noise multiplier %.6f reaches epsilon %.6f (target %.6f) at delta %g after %.0f steps, sampling rate %g (best order %g)\n",
           z, eps, a.target, a.delta, a.steps, a.q, order);
  } else {
    printf("epsilon %.8f at delta %g (best order %g): Gaussian, noise multiplier %g, sampling rate %g, %.0f steps\n",
           eps, a.delta, order, z, a.q, a.steps);
  }
  return 0;
}
