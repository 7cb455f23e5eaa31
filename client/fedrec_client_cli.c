/* fedrec-client: a thin command line over the client library (include/fedrec/client.h).
 *
 *   fedrec-client init      --store F --target HOST:PORT --token @FILE|- --coordinator-key HEX|@FILE
 *                           [--catalogue SPEC] [--ca PEM] [--cert PEM --key PEM] [--insecure]
 *   fedrec-client import    --store F (--csv FILE [--user ID] | --synthetic-user N)
 *   fedrec-client record    --store F ITEM [WEIGHT]
 *   fedrec-client sync      --store F [--rounds N] [--max-syncs M] [--simulate-dropout PHASE] [--simulate-delay MS]
 *   fedrec-client recommend --store F [--k K] [--explain]
 *   fedrec-client identity  --store F
 *   fedrec-client enrol     --store F --certificate HEX|@FILE
 *   fedrec-client region    --store F GROUPS   (the device's availability groups; "" none)
 *
 * Exit codes: 0 done; 1 another error (I/O, a bad file); 2 usage; 3 configuration (no such
 * store, settings missing or not working); 4 authentication (the token was refused);
 * 5 integrity (a model that fails its signature, does not fit the catalogue, or rolls back).
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "fedrec/client.h"
#include "fedrec/data.h"
#include "fedrec/enrol.h"
#include "fedrec/synth.h"

enum { FEDREC_CERT_HEX_MAX = 2 * FEDREC_CERT_BYTES };
enum { EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_AUTH = 4, EXIT_INTEGRITY = 5 };

static const char USAGE[] =
    "usage:\n"
    "  fedrec-client init      --store F --target HOST:PORT --token @FILE|- --coordinator-key HEX|@FILE\n"
    "                          (the token from a file, or - for standard input: never on the command line)\n"
    "                          [--ca PEM] [--cert PEM --key PEM] [--insecure] [--catalogue SPEC]\n"
    "                          (the coordinator serves the catalogue at the first sync; --catalogue\n"
    "                          names one to use before that, e.g. for import --synthetic-user)\n"
    "                          [--weights auto|raw|binary|log[:S]] (an item's summed plays -> its\n"
    "                          confidence; auto: log:10 when they look like counts)\n"
    "                          [--max-participation K] (take part in at most K rounds, then only\n"
    "                          fetch models; counted on the device) [--min-separation M] (rounds\n"
    "                          at least M apart: a sooner one is declined, nothing sent)\n"
    "                          [--authority-key HEX|@FILE] (the enrolment authority's public key:\n"
    "                          the device makes its identity key and joins active-variant rounds only)\n"
    "  fedrec-client identity  --store F   (prints the device's identity public key, for enrolment)\n"
    "  fedrec-client enrol     --store F --certificate HEX|@FILE (the authority's certificate for it)\n"
    "  fedrec-client region    --store F GROUPS (e.g. DE or DE,premium; \"\" for none: the availability\n"
    "                          groups whose items this device may be recommended; also init --region.\n"
    "                          Kept in the store, never sent)\n"
    "  fedrec-client import    --store F (--csv FILE [--user ID] | --synthetic-user N)\n"
    "                          (a CSV of user,item[,weight] rows: one user's, or pick it with --user)\n"
    "  fedrec-client record    --store F ITEM [WEIGHT]\n"
    "  fedrec-client sync      --store F [--rounds N] [--max-syncs M] [--simulate-dropout PHASE] [--simulate-delay MS]\n"
    "  fedrec-client recommend --store F [--k K] [--explain]\n"
    "                          (rank, item, score, title; --explain: the history items each score\n"
    "                          comes from, exactly, and the nearest content in the history)\n"
    "The store keeps the settings given to init; the history never leaves it.\n"
    "sync repeats until it took part in N rounds (default 1), training stopped, or M syncs\n"
    "(default 1000) were made, waiting between syncs as the coordinator says.\n"
    "--simulate-dropout PHASE (1 keys, 2 shares, 3 masked, 4 consistency, 5 unmask): exit\n"
    "abruptly there (for tests).\n"
    "--simulate-delay MS: wait MS before each message of a round, as a slow device (for tests).\n"
    "Every command but init needs a store init created.\n"
    "Exit codes: 0 done; 1 another error; 2 usage; 3 configuration (no such store, settings\n"
    "missing or not working); 4 authentication (token refused: unknown, expired or revoked);\n"
    "5 integrity (a model failing its signature, not fitting the catalogue, or a rollback).\n";

static void usage(FILE *f) { fputs(USAGE, f); }

typedef struct args {
  const char *store, *target, *token, *key, *catalogue, *ca, *cert, *keyfile, *csv, *user, *weights, *authority,
      *certificate, *region;
  int32_t synthetic_user, k;
  uint32_t rounds, max_syncs, dropout, delay, max_participation, min_separation;
  int insecure, explain;
  const char *pos[2];
  int npos;
} args;

#define TEXT(flag, field) FEDREC_OPTION_STRING(flag, args, field)
#define WHOLE(flag, kind, field, lo, hi) FEDREC_OPTION_NUMBER(flag, kind, args, field, lo, hi, 0, 0)
static const fedrec_option OPTIONS[] = {
    TEXT("--store", store), TEXT("--target", target), TEXT("--token", token), TEXT("--coordinator-key", key),
    TEXT("--catalogue", catalogue), TEXT("--ca", ca), TEXT("--cert", cert), TEXT("--key", keyfile), TEXT("--csv", csv),
    TEXT("--user", user), TEXT("--weights", weights), TEXT("--authority-key", authority),
    TEXT("--certificate", certificate), TEXT("--region", region),
    FEDREC_OPTION_SET("--insecure", args, insecure, 1, 0),
    FEDREC_OPTION_SET("--explain", args, explain, 1, 0),
    WHOLE("--synthetic-user", FEDREC_ARG_INT32, synthetic_user, 0, 100000000),
    WHOLE("--rounds", FEDREC_ARG_UINT32, rounds, 1, 1000000),
    WHOLE("--max-participation", FEDREC_ARG_UINT32, max_participation, 1, 1000000000),
    WHOLE("--min-separation", FEDREC_ARG_UINT32, min_separation, 1, 1000000000),
    WHOLE("--max-syncs", FEDREC_ARG_UINT32, max_syncs, 1, 100000000),
    WHOLE("--k", FEDREC_ARG_INT32, k, 1, 10000),
    WHOLE("--simulate-dropout", FEDREC_ARG_UINT32, dropout, 1, 5),
    WHOLE("--simulate-delay", FEDREC_ARG_UINT32, delay, 0, 600000),
    FEDREC_OPTION_END,
};

/* Flags from the table, and up to two positional arguments (record's ITEM and WEIGHT). */
static int parse(args *a, int argc, char **argv) {
  memset(a, 0, sizeof *a);
  a->synthetic_user = -1, a->rounds = 1, a->max_syncs = 1000, a->k = 10;
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i];
    if (f[0] == '-' && f[1] == '-') {
      const fedrec_option *o;
      fedrec_error err;
      if (fedrec_option_parse(OPTIONS, a, argc, argv, &i, &o, &err)) {
        fprintf(stderr, "fedrec-client: %s\n", err.msg);
        return 0;
      }
    } else if (a->npos == 2) {
      fprintf(stderr, "fedrec-client: unexpected argument '%s'\n", f);
      return 0;
    } else {
      a->pos[a->npos++] = f;
    }
  }
  if (!a->store) {
    fprintf(stderr, "fedrec-client: --store is required\n");
    return 0;
  }
  return 1;
}

/* --coordinator-key @FILE reads the key from a file (fedrec-coordinator writes identity.pub);
 * so do --authority-key and --certificate. */
static const char *key_arg(const char *v, char *buf, size_t cap, const char *flag) {
  if (!v || v[0] != '@') return v;
  FILE *f = fopen(v + 1, "r");
  if (!f || !fgets(buf, (int)cap, f)) {
    if (f) fclose(f);
    fprintf(stderr, "fedrec-client: %s: cannot read %s\n", flag, v + 1);
    return NULL;
  }
  fclose(f);
  buf[strcspn(buf, "\r\n")] = 0;
  return buf;
}

/* --token @FILE or - (standard input): a bearer token on the command line would be readable
 * by every user of the machine (ps, /proc/PID/cmdline), so a literal one is refused. */
static const char *token_arg(const char *v, char *buf, size_t cap) {
  if (!v) return NULL;
  if (v[0] != '@' && strcmp(v, "-")) {
    fprintf(stderr, "fedrec-client: --token: give @FILE or - (standard input), not the token itself: the command line "
                    "is visible to every user of this machine\n");
    return NULL;
  }
  FILE *f = strcmp(v, "-") ? fopen(v + 1, "r") : stdin;
  int ok = f && fgets(buf, (int)cap, f);
  if (f && f != stdin) fclose(f);
  if (!ok) {
    fprintf(stderr, "fedrec-client: --token: cannot read %s\n", strcmp(v, "-") ? v + 1 : "standard input");
    return NULL;
  }
  buf[strcspn(buf, "\r\n")] = 0;
  return buf;
}

/* enrol: the certificate (hex) checked and stored; identity: the key to certify. */
static int enrol(fedrec_client *c, const args *a) {
  char buf[512];
  const char *hex = key_arg(a->certificate, buf, sizeof buf, "--certificate");
  uint8_t cert[FEDREC_CERT_HEX_MAX];
  size_t n = 0;
  fedrec_error err = {0};
  if (!hex) {
    if (!a->certificate) fprintf(stderr, "fedrec-client enrol: --certificate is required\n");
    return 2;
  }
  if (sodium_hex2bin(cert, sizeof cert, hex, strlen(hex), " \t", &n, NULL)) {
    fprintf(stderr, "fedrec-client enrol: --certificate: not hex, or too long\n");
    return 2;
  }
  if (fedrec_client_enrol(c, cert, n, &err)) {
    fprintf(stderr, "fedrec-client enrol: %s\n", err.msg);
    return err.status == FEDREC_ERR_AUTH ? EXIT_AUTH : 1;
  }
  fprintf(stderr, "fedrec-client: certificate stored; it goes with every check-in\n");
  return 0;
}

static int identity(fedrec_client *c) {
  uint8_t pk[32];
  char hex[65];
  fedrec_error err = {0};
  if (fedrec_client_identity(c, pk, &err)) {
    fprintf(stderr, "fedrec-client identity: %s\n", err.msg);
    return EXIT_CONFIG;
  }
  printf("%s\n", sodium_bin2hex(hex, sizeof hex, pk, sizeof pk));
  return 0;
}

/* region GROUPS: the device's availability groups, saved in the store ("" clears them). */
static int region(fedrec_client *c, const args *a) {
  fedrec_error err = {0};
  if (a->npos != 1) {
    fprintf(stderr, "fedrec-client region: give the groups (e.g. DE or DE,premium; \"\" for none)\n");
    return 2;
  }
  if (fedrec_client_set_region(c, a->pos[0], &err)) {
    fprintf(stderr, "fedrec-client region: %s\n", err.msg);
    return 2;
  }
  fprintf(stderr, "fedrec-client: region %s%s%s saved (local to this device)\n", a->pos[0][0] ? "'" : "", a->pos[0][0] ? a->pos[0] : "none",
          a->pos[0][0] ? "'" : "");
  return 0;
}

static const char *RESULT[] = {"not selected", "participated", "left out", "stopped", "models only"};

/* import --csv: user,item[,weight] rows: one user's history (a device holds one), or the one
 * --user names. */
static int import_csv(fedrec_client *c, const args *a) {
  char *buf;
  int64_t len;
  fedrec_error err = {0};
  fedrec_triplets t = {0};
  fedrec_idmap *users = fedrec_idmap_new(), *items = fedrec_idmap_new();
  int rc = 0;
  if (!users || !items || fedrec_read_file(a->csv, &buf, &len, &err) ||
      fedrec_parse_interactions_csv(&t, users, items, buf, len, a->csv, &err)) {
    fprintf(stderr, "fedrec-client import: %s\n", err.msg);
    rc = 1;
  } else {
    free(buf);
    int32_t nu = fedrec_idmap_size(users), want = -1;
    if (a->user && (want = fedrec_idmap_get(users, a->user, strlen(a->user), 0)) < 0) {
      fprintf(stderr, "fedrec-client import: %s: no rows of user '%s' (it holds %d users)\n", a->csv, a->user, nu);
      rc = 2;
    } else if (!a->user && nu > 1) {
      fprintf(stderr, "fedrec-client import: %s holds the histories of %d users ('%s', '%s', ...): a device keeps one; "
              "pick it with --user ID\n", a->csv, nu, fedrec_idmap_name(users, 0), fedrec_idmap_name(users, 1));
      rc = 2;
    }
    int64_t done = 0;
    for (int64_t i = 0; !rc && i < t.n; i++) {
      if (want >= 0 && t.r[i] != want) continue;
      if (fedrec_client_record(c, fedrec_idmap_name(items, t.c[i]), t.v[i], &err)) {
        fprintf(stderr, "fedrec-client import: %s: row %lld: %s\n", a->csv, (long long)i + 2, err.msg);
        rc = 1;
      }
      done++;
    }
    if (!rc) fprintf(stderr, "fedrec-client: imported %lld events from %s\n", (long long)done, a->csv);
  }
  fedrec_triplets_free(&t);
  fedrec_idmap_free(users), fedrec_idmap_free(items);
  return rc;
}

/* import --synthetic-user: the history of one user of the synthetic catalogue (demos, tests). */
static int import_synthetic(fedrec_client *c, const args *a) {
  char spec[512] = "";
  fedrec_error err = {0};
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  sc.threads = 1;
  fedrec_dataset ds;
  if (fedrec_client_catalogue_spec(c, spec, sizeof spec) || !spec[0]) {
    fprintf(stderr, "fedrec-client import: --synthetic-user needs a synthetic catalogue, and %s has no catalogue "
            "setting: run fedrec-client init first\n", a->store);
    return EXIT_CONFIG;
  }
  if (strncmp(spec, "synthetic", 9) || (spec[9] == ':' && fedrec_synth_parse(&sc, spec + 10, &err)) ||
      fedrec_synth_generate(&ds, &sc, &err)) {
    fprintf(stderr, "fedrec-client import: --synthetic-user needs a synthetic catalogue; %s has '%s'%s%s\n", a->store, spec,
            err.msg[0] ? ": " : "", err.msg);
    return EXIT_CONFIG;
  }
  int rc = 0;
  if (a->synthetic_user >= ds.R.rows) {
    fprintf(stderr, "fedrec-client import: --synthetic-user %d: the catalogue has %d users\n", a->synthetic_user, ds.R.rows);
    rc = 2;
  }
  int64_t b = rc ? 0 : ds.R.indptr[a->synthetic_user], e = rc ? 0 : ds.R.indptr[a->synthetic_user + 1];
  for (int64_t k = b; !rc && k < e; k++)
    if (fedrec_client_record(c, fedrec_idmap_name(ds.items, ds.R.indices[k]), ds.R.values[k], &err)) {
      fprintf(stderr, "fedrec-client import: %s\n", err.msg);
      rc = 1;
    }
  if (!rc) fprintf(stderr, "fedrec-client: imported %lld events of synthetic user %d\n", (long long)(e - b), a->synthetic_user);
  fedrec_dataset_free(&ds);
  return rc;
}

static int record(fedrec_client *c, const args *a) {
  fedrec_error err = {0};
  if (a->npos < 1) {
    fprintf(stderr, "fedrec-client record: ITEM is required\n");
    return 2;
  }
  char *end;
  float w = a->npos > 1 ? strtof(a->pos[1], &end) : 1.0f;
  if (a->npos > 1 && (end == a->pos[1] || *end)) {
    fprintf(stderr, "fedrec-client record: WEIGHT '%s' is not a number\n", a->pos[1]);
    return 2;
  }
  if (fedrec_client_record(c, a->pos[0], w, &err)) {
    fprintf(stderr, "fedrec-client record: %s\n", err.msg);
    return 1;
  }
  return 0;
}

/* Syncs until it took part in --rounds rounds (or --max-syncs syncs), sleeping as told in
 * between; a failure that retrying cannot help ends it with its exit code. */
static int sync_loop(fedrec_client *c, const args *a) {
  fedrec_error err = {0};
  int rc = 0;
  if (a->dropout) fedrec_client_simulate_dropout(c, (int)a->dropout);
  if (a->delay) fedrec_client_simulate_delay(c, a->delay);
  uint32_t done = 0;
  for (uint32_t s = 0; s < a->max_syncs && done < a->rounds; s++) {
    fedrec_sync_outcome o;
    fedrec_status st = fedrec_client_sync(c, &o, &err);
    if (o.resumed_at) fprintf(stderr, "fedrec-client sync: resumed the model download at byte %llu\n", (unsigned long long)o.resumed_at);
    if (st && o.failure != FEDREC_SYNC_FAIL_NETWORK) { /* retrying would not help: say so and stop */
      static const char *KIND[] = {"", "", "configuration", "authentication", "integrity"};
      static const char *WHAT[] = {"", "", "check the settings fedrec-client init saved",
                                   "the coordinator refused the token (unknown, expired or revoked): enrol again",
                                   "what the coordinator sent (a model, or a round's signed messages) was refused and not used"};
      fprintf(stderr, "fedrec-client sync: %s error: %s: %s\n", KIND[o.failure], err.msg, WHAT[o.failure]);
      rc = o.failure == FEDREC_SYNC_FAIL_CONFIG ? EXIT_CONFIG : o.failure == FEDREC_SYNC_FAIL_AUTH ? EXIT_AUTH : EXIT_INTEGRITY;
      break;
    }
    if (st) fprintf(stderr, "fedrec-client sync: %s (retrying in %u ms)\n", err.msg, o.retry_after_ms);
    else
      fprintf(stderr, "fedrec-client sync: %s, round %llu, model %llu%s%s\n", RESULT[o.result], (unsigned long long)o.round,
              (unsigned long long)o.model_version, o.detail[0] ? ": " : "", o.detail);
    if (!st && o.result == FEDREC_SYNC_PARTICIPATED) done++;
    if (!st && o.result == FEDREC_SYNC_SPENT) break; /* the device's own bound: no round to wait for */
    if (!st && o.result == FEDREC_SYNC_STOPPED) { /* unsigned news: this loop ends, the next sync asks again */
      fprintf(stderr, "fedrec-client sync: the stop is not signed: an app would sync again in %u s\n", o.retry_after_ms / 1000);
      break;
    }
    if (done < a->rounds && s + 1 < a->max_syncs) {
      struct timespec d = {o.retry_after_ms / 1000, (long)(o.retry_after_ms % 1000) * 1000000};
      nanosleep(&d, NULL);
    }
  }
  printf("participated in %u round%s; model version %llu\n", done, done == 1 ? "" : "s",
         (unsigned long long)fedrec_client_model_version(c));
  return rc;
}

/* An item as people know it: its title when the catalogue has one, else its id. */
static const char *shown(fedrec_client *c, const char *item, char *buf, size_t cap) {
  return fedrec_client_title(c, item, buf, cap) ? item : buf;
}

static void explain(fedrec_client *c, const char *item) {
  fedrec_explanation e;
  fedrec_error err = {0};
  char t[256];
  if (fedrec_client_explain(c, item, &e, &err)) {
    printf("\t  (no explanation: %s)\n", err.msg);
    return;
  }
  printf("\t  because of:");
  for (int32_t r = 0; r < e.n; r++) printf("%s %s (%+.4f)", r ? "," : "", shown(c, e.by[r].item, t, sizeof t), e.by[r].contribution);
  if (e.history > e.n) printf(", %d more (%+.4f)", e.history - e.n, e.rest);
  printf("\n\t  content like:");
  for (int32_t r = 0; r < e.n_similar && r < 3; r++)
    printf("%s %s (cosine %.2f)", r ? "," : "", shown(c, e.similar[r].item, t, sizeof t), e.similar[r].contribution);
  printf("\n");
}

static int recommend(fedrec_client *c, const args *a) {
  fedrec_error err = {0};
  char(*names)[64] = malloc((size_t)a->k * 64);
  float *scores = malloc((size_t)a->k * sizeof *scores);
  int32_t n = 0;
  int rc = 0;
  if (!names || !scores || fedrec_client_recommend(c, a->k, names, scores, &n, &err)) {
    fprintf(stderr, "fedrec-client recommend: %s\n", err.msg);
    rc = 1;
  }
  for (int32_t i = 0; i < n; i++) {
    char t[256];
    printf("%d\t%s\t%.4f%s%s\n", i + 1, names[i], scores[i], fedrec_client_title(c, names[i], t, sizeof t) ? "" : "\t", t);
    if (a->explain) explain(c, names[i]);
  }
  free(names), free(scores);
  return rc;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  for (int i = 2; i < argc; i++) /* fedrec-client init --help, like every other --help */
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      usage(stdout);
      return 0;
    }
  const char *cmd = argv[1];
  if (strcmp(cmd, "init") && strcmp(cmd, "import") && strcmp(cmd, "record") && strcmp(cmd, "sync") && strcmp(cmd, "recommend") &&
      strcmp(cmd, "identity") && strcmp(cmd, "enrol") && strcmp(cmd, "region")) {
    fprintf(stderr, "fedrec-client: unknown command '%s' (init, import, record, sync, recommend, identity, enrol, region)\n", cmd);
    return 2;
  }
  args a;
  if (!parse(&a, argc, argv)) return 2;
  char keybuf[128], tokbuf[128], authbuf[128];
  const char *key = key_arg(a.key, keybuf, sizeof keybuf, "--coordinator-key");
  const char *authority = key_arg(a.authority, authbuf, sizeof authbuf, "--authority-key");
  if ((a.key && !key) || (a.authority && !authority)) return 2;
  if (a.token && !(a.token = token_arg(a.token, tokbuf, sizeof tokbuf))) return 2;
  if (!strcmp(cmd, "init") && (!a.target || !a.token || !key || (!a.ca && !a.insecure))) {
    fprintf(stderr, "fedrec-client init: --target, --token, --coordinator-key and --ca (or --insecure) are required\n");
    return 2;
  }
  fedrec_client_config cfg = {.store = a.store, .target = a.target, .ca_file = a.ca, .cert_file = a.cert,
                              .key_file = a.keyfile, .insecure = a.insecure, .token = a.token,
                              .coordinator_key = key, .catalogue = a.catalogue, .weights = a.weights,
                              .max_participation = a.max_participation, .min_separation = a.min_separation,
                              .authority_key = authority, .region = a.region,
                              .must_exist = strcmp(cmd, "init") != 0};
  fedrec_client *c;
  fedrec_error err = {0};
  int opened = fedrec_client_open(&c, &cfg, &err);
  sodium_memzero(tokbuf, sizeof tokbuf); /* kept in the store (0600) only */
  if (opened) {
    fprintf(stderr, "fedrec-client: %s\n", err.msg);
    return opened == FEDREC_ERR_ARG ? EXIT_CONFIG : 1;
  }
  int rc = 0;
  if (!strcmp(cmd, "init")) fprintf(stderr, "fedrec-client: settings saved in %s\n", a.store);
  else if (!strcmp(cmd, "import") && (a.csv != NULL) == (a.synthetic_user >= 0)) {
    fprintf(stderr, "fedrec-client import: give exactly one of --csv and --synthetic-user\n");
    rc = 2;
  } else if (!strcmp(cmd, "import")) rc = a.csv ? import_csv(c, &a) : import_synthetic(c, &a);
  else if (!strcmp(cmd, "record")) rc = record(c, &a);
  else if (!strcmp(cmd, "sync")) rc = sync_loop(c, &a);
  else if (!strcmp(cmd, "enrol")) rc = enrol(c, &a);
  else if (!strcmp(cmd, "identity")) rc = identity(c);
  else if (!strcmp(cmd, "region")) rc = region(c, &a);
  else rc = recommend(c, &a);
  fedrec_client_close(c);
  return rc;
}
