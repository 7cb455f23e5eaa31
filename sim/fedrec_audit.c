/* fedrec-audit: recompute privacy claims independently of the coordinator.
 *   fedrec-audit epsilon --mechanism gaussian --noise-multiplier Z [--sampling-rate Q]
 *                --steps T --delta D [--orders LIST] [--json]
 *   fedrec-audit epsilon --mechanism skellam|dgauss|tree ... (see usage)
 *   fedrec-audit calibrate [--mechanism gaussian|tree] --target-epsilon E --delta D
 *                [--sampling-rate Q] --steps T [--orders LIST] [--json]
 *   fedrec-audit verify --ledger FILE --public-key FILE [--covers N:HEX] [--json]
 *   fedrec-audit canaries --canaries M --guesses R --correct V --delta D [--alpha A] [--json]
 *   fedrec-audit report --ledger FILE --public-key FILE --out DIR
 * It links no network code, so an auditor can build it alone. */
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "fedrec/accountant.h"
#include "fedrec/audit.h"
#include "fedrec/crypto.h"
#include "fedrec/ledger.h"
#include "audit_report.h"

static void usage(FILE *f) {
  fputs("usage:\n"
        "  fedrec-audit epsilon --mechanism gaussian --noise-multiplier Z [--sampling-rate Q]\n"
        "               --steps T --delta D [--orders LIST] [--json]\n"
        "  fedrec-audit epsilon --mechanism skellam --l2-sensitivity D2 --l1-sensitivity D1\n"
        "               --variance V [--sampling-rate Q] --steps T --delta D [--orders LIST] [--json]\n"
        "               (integer domain; V = total noise variance of the sum over survivors)\n"
        "  fedrec-audit epsilon --mechanism dgauss --l2-sensitivity D2 --l1-sensitivity D1\n"
        "               --local-sigma S --clients N --dim D [--sampling-rate Q] --steps T --delta D\n"
        "               [--orders LIST] [--json]\n"
        "               (distributed discrete Gaussian: N surviving clients each add N_Z(0, S^2);\n"
        "                integer domain; only the integer orders of the grid are used)\n"
        "  fedrec-audit epsilon --mechanism tree --noise-multiplier Z --steps T\n"
        "               [--epoch-steps S | --max-participation K --min-separation M] --delta D\n"
        "               [--orders LIST] [--json]\n"
        "               (DP-FTRL tree aggregation, no sampling: with --epoch-steps the tree restarts\n"
        "                every S steps and a user contributes at most once per epoch (default S = T);\n"
        "                otherwise one tree, at most K contributions at least M steps apart)\n"
        "  (gaussian, skellam, dgauss without sampling: --max-participation K composes K of the T\n"
        "   steps, as a ledger with that bound does: a user takes part in at most K)\n"
        "  fedrec-audit calibrate [--mechanism gaussian|tree] --target-epsilon E --delta D\n"
        "               [--sampling-rate Q] --steps T [tree flags] [--orders LIST] [--json]\n"
        "  fedrec-audit verify --ledger FILE --public-key FILE [--covers N:HEX] [--json]\n"
        "      (--covers: the ledger entries and head a model's signature names, e.g. from\n"
        "       fedrec-coordinator export-model: the ledger must hold that entry)\n"
        "               (FILE: the coordinator's Ed25519 public key, 64 hex digits)\n"
        "  fedrec-audit report --ledger FILE --public-key FILE --out DIR\n"
        "               (verifies as verify does, and writes DIR/index.html with the figure DIR/epsilon.svg\n"
        "                and DIR/report.json: both epsilons over the releases, the mechanisms, participation,\n"
        "                the assumptions each number needs, every release)\n"
        "  fedrec-audit canaries --canaries M --guesses R --correct V --delta D [--alpha A] [--json]\n"
        "               (one-run audit, Steinke-Nasr-Jagielski 2023: M canaries each included with\n"
        "                probability 1/2, V of R guesses right; prints the (1 - A)-confidence lower\n"
        "                bound on epsilon at delta, A = 0.05 by default)\n"
        "LIST: comma-separated orders > 1, 'a:b' for every integer from a to b\n"
        "      (default: 1.1, 1.2, ..., 10.9, 11..63, 128, 256, 512, 1024)\n",
        f);
}

typedef struct {
  const char *mechanism, *orders;
  fedrec_mechanism mech;
  double z, q, delta, target, d2, d1, var, sigma, clients, dim, epoch_steps, max_part, min_sep;
  double steps;
  int json, have_z, have_steps, have_delta, have_target, have_d2, have_d1, have_var, have_sigma,
      have_clients, have_dim, have_epoch, have_part, have_sep;
} args;

/* which flags were given (fedrec_option.group), for the checks of what a mechanism needs */
enum { G_Z = 1 << 0, G_STEPS = 1 << 1, G_DELTA = 1 << 2, G_TARGET = 1 << 3, G_D2 = 1 << 4, G_D1 = 1 << 5, G_VAR = 1 << 6,
       G_SIGMA = 1 << 7, G_CLIENTS = 1 << 8, G_DIM = 1 << 9, G_EPOCH = 1 << 10, G_PART = 1 << 11, G_SEP = 1 << 12 };

#define REAL(flag, field, lo, hi, open, group) FEDREC_OPTION_NUMBER(flag, FEDREC_ARG_DOUBLE, args, field, lo, hi, group, open)
#define WHOLE(flag, field, lo, hi, group) FEDREC_OPTION_NUMBER(flag, FEDREC_ARG_WHOLE, args, field, lo, hi, group, 0)
/* epsilon and calibrate */
static const fedrec_option OPTIONS[] = {
    FEDREC_OPTION_STRING("--mechanism", args, mechanism), FEDREC_OPTION_STRING("--orders", args, orders),
    FEDREC_OPTION_SET("--json", args, json, 1, 0),
    REAL("--noise-multiplier", z, 0, 1e6, FEDREC_OPEN_LO, G_Z),
    REAL("--sampling-rate", q, 0, 1, FEDREC_OPEN_LO, 0),
    REAL("--l2-sensitivity", d2, 0, 1e15, FEDREC_OPEN_LO, G_D2),
    REAL("--l1-sensitivity", d1, 0, 1e18, FEDREC_OPEN_LO, G_D1),
    REAL("--variance", var, 0, 1e30, FEDREC_OPEN_LO, G_VAR),
    REAL("--local-sigma", sigma, 0, 1e9, FEDREC_OPEN_LO, G_SIGMA),
    WHOLE("--clients", clients, 1, 4294967295.0, G_CLIENTS),
    WHOLE("--dim", dim, 1, 1e12, G_DIM),
    WHOLE("--epoch-steps", epoch_steps, 1, 1e12, G_EPOCH),
    WHOLE("--max-participation", max_part, 1, 1e6, G_PART),
    WHOLE("--min-separation", min_sep, 0, 1e6, G_SEP),
    WHOLE("--steps", steps, 1, 1e12, G_STEPS),
    REAL("--delta", delta, 0, 1, FEDREC_OPEN_LO | FEDREC_OPEN_HI, G_DELTA),
    REAL("--target-epsilon", target, 0, 1e6, FEDREC_OPEN_LO, G_TARGET),
    FEDREC_OPTION_END,
};

/* Every flag from argv[2] on against table, into dest; the groups of those given in *given.
 * 0 after saying what was wrong (who: "fedrec-audit verify", ...). */
static int parse_flags(const fedrec_option *table, void *dest, int argc, char **argv, const char *who, unsigned *given) {
  for (int i = 2; i < argc; i++) {
    if (!strcmp(argv[i], "--help")) {
      usage(stdout);
      exit(0);
    }
    const fedrec_option *o;
    fedrec_error err;
    if (fedrec_option_parse(table, dest, argc, argv, &i, &o, &err)) {
      fprintf(stderr, "%s: %s\n", who, err.msg);
      return 0;
    }
    if (given) *given |= o->group;
  }
  return 1;
}

static int parse(args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->q = 1;
  a->mechanism = "gaussian";
  unsigned given = 0;
  if (!parse_flags(OPTIONS, a, argc, argv, "fedrec-audit", &given)) return 0;
  a->have_z = !!(given & G_Z), a->have_steps = !!(given & G_STEPS), a->have_delta = !!(given & G_DELTA);
  a->have_target = !!(given & G_TARGET), a->have_d2 = !!(given & G_D2), a->have_d1 = !!(given & G_D1);
  a->have_var = !!(given & G_VAR), a->have_sigma = !!(given & G_SIGMA), a->have_clients = !!(given & G_CLIENTS);
  a->have_dim = !!(given & G_DIM), a->have_epoch = !!(given & G_EPOCH), a->have_part = !!(given & G_PART);
  a->have_sep = !!(given & G_SEP);
  return 1;
}

static const char *need(const args *a, int epsilon) {
  if (!a->have_steps) return "--steps";
  if (!a->have_delta) return "--delta";
  if (!epsilon && !a->have_target) return "--target-epsilon";
  fedrec_mechanism m = a->mech;
  if (m == FEDREC_MECH_SKELLAM || m == FEDREC_MECH_DGAUSS) {
    if (!a->have_d2) return "--l2-sensitivity";
    if (!a->have_d1) return "--l1-sensitivity";
  }
  if (m == FEDREC_MECH_SKELLAM && !a->have_var) return "--variance";
  if (m == FEDREC_MECH_DGAUSS) {
    if (!a->have_sigma) return "--local-sigma";
    if (!a->have_clients) return "--clients";
    if (!a->have_dim) return "--dim";
  }
  if ((m == FEDREC_MECH_GAUSSIAN || m == FEDREC_MECH_TREE) && epsilon && !a->have_z) return "--noise-multiplier";
  if (m == FEDREC_MECH_TREE && a->have_part != a->have_sep) return a->have_part ? "--min-separation" : "--max-participation";
  return NULL;
}

/* Reads an Ed25519 public key: 64 hex digits and an optional newline, nothing else. A file of
 * another kind is named, never shown: a private key given by mistake must not reach the
 * terminal (or a log), so no byte of the file is printed. */
static int read_public_key(const char *path, uint8_t pk[32]) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "fedrec-audit verify: --public-key %s: %s\n", path, strerror(errno));
    return 0;
  }
  unsigned char buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  size_t len = n && buf[n - 1] == '\n' ? n - 1 : n;
  int hex = len == 64;
  for (size_t i = 0; hex && i < 64; i++) hex = isxdigit(buf[i]) != 0;
  if (hex) {
    for (int i = 0; i < 32; i++) {
      unsigned v;
      char two[3] = {(char)buf[2 * i], (char)buf[2 * i + 1], 0};
      sscanf(two, "%2x", &v);
      pk[i] = (uint8_t)v;
    }
    sodium_memzero(buf, sizeof buf);
    return 1;
  }
  int allhex = len > 0;
  for (size_t i = 0; allhex && i < len; i++) allhex = isxdigit(buf[i]) != 0;
  const char *kind = n == 0 ? "an empty file"
                   : len == 128 && allhex ? "128 hex digits: looks like a PRIVATE key (identity.key); give the public one (identity.pub)"
                   : n == 64 || n == 32 ? "raw bytes of a key (maybe the PRIVATE key): give identity.pub, 64 hex digits"
                   : n >= 16 && !memcmp(buf, "SQLite format 3", 15) ? "an SQLite database (the ledger itself?)"
                   : n >= 10 && !memcmp(buf, "-----BEGIN", 10) ? "a PEM file (a TLS certificate or key, not the coordinator's signing key)"
                   : allhex ? "hex digits, but not 64 of them"
                   : "not a public key file";
  sodium_memzero(buf, sizeof buf);
  fprintf(stderr, "fedrec-audit verify: --public-key %s: %s; expected 64 hex digits (the coordinator's Ed25519 public "
          "key, identity.pub in its state directory)\n", path, kind);
  return 0;
}

/* fedrec-audit verify: exit 0 only when every check passes. */
typedef struct verify_args {
  const char *ledger, *keyfile, *covers;
  int json;
} verify_args;

static const fedrec_option VERIFY_OPTIONS[] = {
    FEDREC_OPTION_STRING("--ledger", verify_args, ledger), FEDREC_OPTION_STRING("--public-key", verify_args, keyfile),
    FEDREC_OPTION_STRING("--covers", verify_args, covers), FEDREC_OPTION_SET("--json", verify_args, json, 1, 0),
    FEDREC_OPTION_END,
};

/* --covers N:HEX (N decimal, HEX 64 hex digits): 1 when well-formed. */
static int parse_covers(const char *covers, uint64_t *want, uint8_t head[32]) {
  char *end;
  int okc = covers[0] >= '0' && covers[0] <= '9';
  errno = 0;
  *want = strtoull(covers, &end, 10);
  okc = okc && !errno && *end == ':' && strlen(end + 1) == 64;
  for (int i = 0; okc && i < 32; i++) {
    unsigned v = 0;
    okc = isxdigit((unsigned char)end[1 + 2 * i]) && isxdigit((unsigned char)end[2 + 2 * i]) &&
          sscanf(end + 1 + 2 * i, "%2x", &v) == 1;
    head[i] = (uint8_t)v;
  }
  if (!okc) fprintf(stderr, "fedrec-audit verify: --covers: '%s' is not ENTRIES:HEAD (a number, a colon, 64 hex digits)\n", covers);
  return okc;
}

/* A key file that fails as the public key may hold the signer's PRIVATE key (its seed, also 64
 * hex digits): 1 when it does (said so, none of it shown). */
static int is_private_key(const char *ledger, const char *keyfile, uint8_t pk[32]) {
  fedrec_identity id;
  fedrec_ledger_summary s2;
  fedrec_error e2 = {0};
  if (fedrec_identity_from_seed(&id, pk)) return 0;
  int is_seed = !fedrec_ledger_verify(ledger, id.pk, &s2, NULL, 0, &e2) || !strstr(e2.msg, "not the given key");
  fedrec_identity_free(&id);
  if (!is_seed) return 0;
  sodium_memzero(pk, 32);
  fprintf(stderr, "fedrec-audit verify: --public-key %s is the coordinator's PRIVATE signing key (identity.key): keep it "
          "secret; give identity.pub\n", keyfile);
  return 1;
}

/* fedrec-audit verify: exit 0 only when every check passes. */
static int verify(int argc, char **argv) {
  verify_args va = {0};
  if (!parse_flags(VERIFY_OPTIONS, &va, argc, argv, "fedrec-audit verify", NULL)) return 2;
  const char *ledger = va.ledger, *keyfile = va.keyfile, *covers = va.covers;
  int json = va.json;
  if (!ledger || !keyfile) {
    fprintf(stderr, "fedrec-audit verify: --ledger and --public-key are required\n");
    return 2;
  }
  uint8_t pk[32];
  if (!read_public_key(keyfile, pk)) return 2;
  uint64_t want = 0;
  uint8_t head[32];
  if (covers && !parse_covers(covers, &want, head)) return 2;
  if (fedrec_crypto_init()) return 1;
  fedrec_ledger_summary s;
  fedrec_error err = {0};
  if (!json)
    printf(" entry    round mechanism q        survivors colluders  epsilon   public (cumulative: against the operator, "
           "against model recipients)\n"
           "         (under each: the command that recomputes that entry's epsilon alone, from every parameter it records)\n");
  fedrec_status st = fedrec_ledger_verify(ledger, pk, &s, stdout, json, &err);
  if (!st && covers) st = fedrec_ledger_verify_covers(ledger, pk, want, head, &s, &err);
  if (st && strstr(err.msg, "not the given key") && is_private_key(ledger, keyfile, pk)) return 2;
  if (st) {
    fprintf(stderr, "fedrec-audit verify: %s: FAILED: %s\n", ledger, err.msg);
    if (json) {
      printf("{\"verified\": false, \"reason\": ");
      fedrec_json_string(stdout, err.msg);
      printf("}\n");
    }
    return 1;
  }
  char bound[320] = "";
  if (s.max_participation)
    snprintf(bound, sizeof bound, ", composing the %u costliest entries per order (each user takes part in at most %u)",
             s.max_participation, s.max_participation);
  if (s.epsilon_public < s.epsilon)
    snprintf(bound + strlen(bound), sizeof bound - strlen(bound), "; against model recipients %.6f (public budget %g)",
             s.epsilon_public, s.public_budget);
  if (json)
    printf("{\"verified\": true, \"entries\": %llu, \"epsilon\": %.10g, \"delta\": %.10g, \"budget\": %.10g, "
           "\"format\": %d, \"max_participation\": %u, \"epsilon_public\": %.10g, \"public_budget\": %.10g}\n",
           (unsigned long long)s.entries, s.epsilon, s.delta, s.budget, s.format, s.max_participation, s.epsilon_public,
           s.public_budget);
  else
    printf("verified: %llu entries, epsilon %.6f at delta %g (budget %g)%s, chain and signatures intact%s\n",
           (unsigned long long)s.entries, s.epsilon, s.delta, s.budget, bound,
           covers ? "; it holds the entry the model's signature names" : "");
  return 0;
}

/* fedrec-audit canaries: the empirical lower bound from a canary count, recomputed. */
typedef struct canary_args {
  double m, r, v, delta, alpha;
  int json;
} canary_args;

static const fedrec_option CANARY_OPTIONS[] = {
    FEDREC_OPTION_NUMBER("--canaries", FEDREC_ARG_WHOLE, canary_args, m, 1, 1e9, 0, 0),
    FEDREC_OPTION_NUMBER("--guesses", FEDREC_ARG_WHOLE, canary_args, r, 0, 1e9, 0, 0),
    FEDREC_OPTION_NUMBER("--correct", FEDREC_ARG_WHOLE, canary_args, v, 0, 1e9, 0, 0),
    FEDREC_OPTION_NUMBER("--delta", FEDREC_ARG_DOUBLE, canary_args, delta, 0, 1, 0, 0),
    FEDREC_OPTION_NUMBER("--alpha", FEDREC_ARG_DOUBLE, canary_args, alpha, 0, 1, 0, FEDREC_OPEN_LO),
    FEDREC_OPTION_SET("--json", canary_args, json, 1, 0),
    FEDREC_OPTION_END,
};

static int canaries(int argc, char **argv) {
  canary_args ca = {-1, -1, -1, -1, 0.05, 0};
  if (!parse_flags(CANARY_OPTIONS, &ca, argc, argv, "fedrec-audit canaries", NULL)) return 2;
  double m = ca.m, r = ca.r, v = ca.v, delta = ca.delta, alpha = ca.alpha;
  int json = ca.json;
  if (m < 0 || r < 0 || v < 0 || delta < 0) {
    fprintf(stderr, "fedrec-audit canaries: --canaries, --guesses, --correct and --delta are required\n");
    return 2;
  }
  if (v > r || r > m || alpha >= 1) {
    fprintf(stderr, "fedrec-audit canaries: need correct <= guesses <= canaries and alpha < 1 (got %g, %g, %g, %g)\n", v, r, m, alpha);
    return 2;
  }
  double lo = fedrec_audit_epsilon_lower((uint64_t)m, (uint64_t)r, (uint64_t)v, delta, alpha);
  if (json)
    printf("{\"canaries\": %.0f, \"guesses\": %.0f, \"correct\": %.0f, \"delta\": %g, \"confidence\": %g, \"epsilon_lower\": %.6f}\n",
           m, r, v, delta, 1 - alpha, lo);
  else
    printf("%.0f of %.0f guesses right (%.0f canaries): epsilon >= %.6f at delta %g with %g%% confidence\n", v, r, m, lo,
           delta, 100 * (1 - alpha));
  return 0;
}

/* The flags against the mechanism: 0, or the exit status after saying what is wrong. */
static int check(args *a, int epsilon, const char *cmd) {
  const char *m = a->mechanism;
  if (fedrec_mechanism_parse(m, &a->mech)) {
    fprintf(stderr, "fedrec-audit: --mechanism '%s' is not one of %s\n", m, fedrec_mechanism_names());
    return 2;
  }
  if (!epsilon && (a->mech == FEDREC_MECH_SKELLAM || a->mech == FEDREC_MECH_DGAUSS)) {
    fprintf(stderr, "fedrec-audit calibrate: --mechanism %s is not supported (gaussian, tree); "
                    "for %s, run epsilon over a range of noise levels\n", m, m);
    return 2;
  }
  const char *missing = need(a, epsilon);
  if (missing) {
    fprintf(stderr, "fedrec-audit %s: %s is required\n", cmd, missing);
    return 2;
  }
  if (a->mech == FEDREC_MECH_TREE && a->q != 1) {
    fprintf(stderr, "fedrec-audit: --mechanism tree assumes no sampling: drop --sampling-rate\n");
    return 2;
  }
  if (a->mech != FEDREC_MECH_TREE && a->have_part && a->q != 1) {
    fprintf(stderr, "fedrec-audit: --max-participation replaces the sampling assumption (as in a ledger with a bound): "
            "drop --sampling-rate\n");
    return 2;
  }
  if (a->mech == FEDREC_MECH_TREE && a->have_part && a->have_epoch) {
    fprintf(stderr, "fedrec-audit: --epoch-steps (tree restarts) and --max-participation (one tree) exclude each other\n");
    return 2;
  }
  return 0;
}

/* A tree's sum of squared sensitivities over the steps: one tree with a participation limit,
 * or trees restarting every --epoch-steps. */
static fedrec_status tree_sensitivity(const args *a, double *sens2, fedrec_error *err) {
  uint64_t steps = (uint64_t)a->steps;
  if (a->have_part) return fedrec_tree_single_sensitivity2(sens2, steps, (uint32_t)a->max_part, (uint32_t)a->min_sep, err);
  uint64_t epoch = a->have_epoch ? (uint64_t)a->epoch_steps : steps, rem = steps % epoch;
  *sens2 = (double)(steps / epoch) * fedrec_tree_restart_sensitivity2(&epoch, 1) + fedrec_tree_restart_sensitivity2(&rem, 1);
  return FEDREC_OK;
}

static const char *CONVERSION = "improved (Canonne, Kamath, Steinke 2020)";

/* Skellam and the distributed discrete Gaussian: every parameter, as a table line or JSON. */
static void print_distributed(const args *a, double eps, double order) {
  int skellam = a->mech == FEDREC_MECH_SKELLAM;
  double tau = fedrec_ddgauss_tau((uint32_t)a->clients, a->sigma);
  if (!a->json && skellam)
    printf("epsilon %.8f at delta %g (best order %g): Skellam, L2 %g, L1 %g, variance %g, sampling rate %g, %.0f steps\n",
           eps, a->delta, order, a->d2, a->d1, a->var, a->q, a->steps);
  else if (!a->json)
    printf("epsilon %.8f at delta %g (best order %g): distributed discrete Gaussian, L2 %g, L1 %g, "
           "%.0f clients x sigma %g (tau %.3g), dim %.0f, sampling rate %g, %.0f steps\n",
           eps, a->delta, order, a->d2, a->d1, a->clients, a->sigma, tau, a->dim, a->q, a->steps);
  if (!a->json) return;
  printf("{\"epsilon\": %.10g, \"delta\": %.10g, \"order\": %.10g, \"mechanism\": \"%s\", "
         "\"l2_sensitivity\": %.10g, \"l1_sensitivity\": %.10g, ",
         eps, a->delta, order, fedrec_mechanism_name(a->mech), a->d2, a->d1);
  if (skellam) printf("\"variance\": %.10g, ", a->var);
  else printf("\"local_sigma\": %.10g, \"clients\": %.0f, \"dim\": %.0f, \"tau\": %.10g, ", a->sigma, a->clients, a->dim, tau);
  printf("\"sampling_rate\": %.10g, \"steps\": %.0f, \"orders\": ", a->q, a->steps);
  fedrec_json_string(stdout, a->orders ? a->orders : "default");
  printf(", \"subsampling\": \"%s\", \"conversion\": \"%s\"}\n", a->q < 1 ? "Zhu and Wang 2019, integer orders" : "none",
         CONVERSION);
}

/* The Gaussian mechanism and DP-FTRL's tree (calibrate: with the multiplier z found). */
static void print_gaussian(const args *a, int calibrate, double z, double eps, double order, double sens2) {
  int tree = a->mech == FEDREC_MECH_TREE;
  if (a->json) {
    printf("{");
    if (calibrate) printf("\"noise_multiplier\": %.10g, \"target_epsilon\": %.10g, ", z, a->target);
    printf("\"epsilon\": %.10g, \"delta\": %.10g, \"order\": %.10g, \"mechanism\": \"%s\", "
           "\"noise_multiplier_used\": %.10g, ", eps, a->delta, order, fedrec_mechanism_name(a->mech), z);
    if (tree) printf("\"tree\": \"%s\", \"sensitivity_squared_sum\": %.0f, ", a->have_part ? "single" : "restart", sens2);
    else printf("\"sampling_rate\": %.10g, ", a->q);
    printf("\"steps\": %.0f, \"orders\": ", a->steps);
    fedrec_json_string(stdout, a->orders ? a->orders : "default");
    printf(", \"conversion\": \"%s\"%s}\n", CONVERSION, tree ? "" : ", \"fractional_orders\": \"exact signed series\"");
    return;
  }
  char what[160];
  if (tree)
    snprintf(what, sizeof what, "tree aggregation (%s, squared sensitivity sum %.0f)", a->have_part ? "one tree" : "restarting",
             sens2);
  else snprintf(what, sizeof what, "sampling rate %g", a->q);
  if (calibrate)
    printf("noise multiplier %.6f reaches epsilon %.6f (target %.6f) at delta %g after %.0f steps, %s (best order %g)\n", z, eps,
           a->target, a->delta, a->steps, what, order);
  else
    printf("epsilon %.8f at delta %g (best order %g): %s, noise multiplier %g, %s, %.0f steps\n", eps, a->delta, order,
           tree ? "DP-FTRL" : "Gaussian", z, what, a->steps);
}

/* fedrec-audit report: the page an auditor reads (audit_report.c). */
typedef struct report_args {
  const char *ledger, *keyfile, *out;
} report_args;
static const fedrec_option REPORT_OPTIONS[] = {
    FEDREC_OPTION_STRING("--ledger", report_args, ledger), FEDREC_OPTION_STRING("--public-key", report_args, keyfile),
    FEDREC_OPTION_STRING("--out", report_args, out), FEDREC_OPTION_END,
};

static int report(int argc, char **argv) {
  report_args ra = {0};
  if (!parse_flags(REPORT_OPTIONS, &ra, argc, argv, "fedrec-audit report", NULL)) return 2;
  if (!ra.ledger || !ra.keyfile || !ra.out) {
    fprintf(stderr, "fedrec-audit report: --ledger, --public-key and --out are required\n");
    return 2;
  }
  report_in in = {.ledger = ra.ledger, .out = ra.out};
  if (!read_public_key(ra.keyfile, in.pk)) return 2;
  if (fedrec_crypto_init()) return 1;
  sodium_bin2hex(in.pk_hex, sizeof in.pk_hex, in.pk, sizeof in.pk);
  return fedrec_audit_report(&in);
}

int main(int argc, char **argv) {
  if (argc >= 2 && !strcmp(argv[1], "verify")) return verify(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "report")) return report(argc, argv);
  if (argc >= 2 && !strcmp(argv[1], "canaries")) return canaries(argc, argv);
  if (argc < 2 || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  int epsilon = !strcmp(argv[1], "epsilon"), calibrate = !strcmp(argv[1], "calibrate");
  if (!epsilon && !calibrate) {
    fprintf(stderr, "fedrec-audit: unknown command '%s' (epsilon, calibrate, verify, report, canaries)\n", argv[1]);
    return 2;
  }
  args a;
  if (!parse(&a, argc, argv)) return 2;
  int rc = check(&a, epsilon, argv[1]);
  if (rc) return rc;
  int tree = a.mech == FEDREC_MECH_TREE;
  fedrec_orders o;
  fedrec_error err = {0};
  if (a.orders && fedrec_orders_parse(&o, a.orders, &err)) {
    fprintf(stderr, "fedrec-audit: --orders: %s\n", err.msg);
    return 2;
  }
  if (!a.orders) fedrec_orders_default(&o);
  double order, z = a.z, sens2 = 0;
  if (tree && tree_sensitivity(&a, &sens2, &err)) {
    fprintf(stderr, "fedrec-audit: %s\n", err.msg);
    return 1;
  }
  /* tree: RDP a sens2 / (2 z^2) is the Gaussian mechanism composed sens2 times (an integer);
   * otherwise, with --max-participation K, a user is in at most K of the steps (q = 1) */
  uint64_t steps = a.have_part && !tree && a.max_part < a.steps ? (uint64_t)a.max_part : (uint64_t)a.steps;
  uint64_t gsteps = tree ? (uint64_t)sens2 : steps;
  if (calibrate && fedrec_calibrate_gaussian(&z, a.target, a.delta, a.q, gsteps, &o, &err)) {
    fprintf(stderr, "fedrec-audit calibrate: %s\n", err.msg);
    return 1;
  }
  /* the release the ledger would record (dgauss: --clients honest survivors), composed steps
   * times (a tree: sens2 Gaussian node releases) */
  fedrec_release rel = {.mechanism = a.mech, .q = a.q, .z = z, .d2 = a.d2, .d1 = a.d1, .var = a.var, .sigma = a.sigma,
                        .survivors = (uint32_t)a.clients, .dim = (uint64_t)a.dim};
  double eps = fedrec_release_epsilon(&rel, tree ? sens2 : (double)steps, a.delta, &o, &order);
  if (!isfinite(eps)) {
    fprintf(stderr, "fedrec-audit: epsilon is infinite: no order of the grid gives a finite bound%s\n",
            a.mech == FEDREC_MECH_DGAUSS || (a.mech == FEDREC_MECH_SKELLAM && a.q < 1) ? " (only integer orders count here)" : "");
    return 1;
  }
  if (a.mech == FEDREC_MECH_SKELLAM || a.mech == FEDREC_MECH_DGAUSS) print_distributed(&a, eps, order);
  else print_gaussian(&a, calibrate, z, eps, order, sens2);
  return 0;
}
