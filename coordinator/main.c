/* fedrec-coordinator: the command line.
 *
 *   fedrec-coordinator init  --state-dir DIR           keys: identity (Ed25519) and token secret
 *   fedrec-coordinator token --state-dir DIR --id N    a client token
 *   fedrec-coordinator serve [--config FILE] [--key value ...]
 *
 * State: DIR/coordinator.db (models, rounds, clients) and DIR/ledger.db (the privacy ledger),
 * both SQLite WAL with synchronous=FULL. Prometheus text on --metrics-listen. Logs: one JSON
 * object per line on stderr. The parts are listed in server.h. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedrec/internal/tool.h"
#include "server.h"

static void usage(FILE *f) {
  fprintf(f, "usage:\n"
             "  fedrec-coordinator init  --state-dir DIR\n"
             "  fedrec-coordinator token --state-dir DIR --id N [--days D]   (a token valid D days, default 365)\n"
             "  fedrec-coordinator revoke --state-dir DIR --id N   (refused from then on, also by a running serve)\n"
             "  fedrec-coordinator serve [--config FILE] [--KEY VALUE ...]\n"
             "  fedrec-coordinator check-config [--config FILE] [--KEY VALUE ...]   (keys, values and combinations; exit 0 when serve would take them)\n"
             "  fedrec-coordinator export-model --state-dir DIR [--version V] --out FILE\n"
             "  fedrec-coordinator status --state-dir DIR      (JSON: models, rounds, clients, ledger)\n"
             "  fedrec-coordinator authority-init --out FILE   (the enrolment authority's key: FILE, FILE.pub)\n"
             "  fedrec-coordinator enrol --authority-key FILE --id N --device-key HEX|@FILE\n"
             "                     (prints the certificate for client N's identity key: fedrec-client enrol)\n"
             "settings (config file lines 'key = value', or flags --key value; flags win):\n");
  config_usage(f);
}

/* The subcommands' own flags (--id, --days, --version, --out); 1 when f is one of them. */
typedef struct admin_args {
  uint64_t id, version, days;
  int have_id;
  const char *out, *authority, *device;
} admin_args;

static int admin_flag(admin_args *a, const char *f, const char *v, int *bad) {
  fedrec_error err;
  fedrec_status st = FEDREC_OK;
  if (!strcmp(f, "--out")) a->out = v;
  else if (!strcmp(f, "--authority-key")) a->authority = v;
  else if (!strcmp(f, "--device-key")) a->device = v;
  else if (!strcmp(f, "--version")) st = fedrec_parse_u64("--version", v, 0, UINT64_MAX, &a->version, &err);
  else if (!strcmp(f, "--days")) st = fedrec_parse_u64("--days", v, 1, 3650, &a->days, &err);
  else if (!strcmp(f, "--id")) st = fedrec_parse_u64("--id", v, 0, UINT64_MAX, &a->id, &err), a->have_id = 1;
  else return 0;
  if (st) fprintf(stderr, "fedrec-coordinator: %s\n", err.msg), *bad = 1;
  return 1;
}

/* --config FILE first (so that flags override it), then every --key value. 1 when all good. */
static int parse_args(config *c, admin_args *a, int argc, char **argv) {
  for (int i = 2; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--config") && !config_file(c, argv[i + 1])) return 0;
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i];
    if (strncmp(f, "--", 2) || i + 1 >= argc) {
      fprintf(stderr, "fedrec-coordinator: '%s': expected --key value (see --help)\n", f);
      return 0;
    }
    const char *v = argv[++i];
    int bad = 0;
    if (!strcmp(f, "--config")) continue;
    if (admin_flag(a, f, v, &bad)) {
      if (bad) return 0;
      continue;
    }
    if (!config_set(c, f + 2, v, "command line")) return 0;
  }
  if (fedrec_noise_parse(c->noise, &c->e.noise) || c->e.noise == FEDREC_NOISE_NONE) {
    fprintf(stderr, "fedrec-coordinator: noise: '%s' is not skellam or dgauss\n", c->noise);
    return 0;
  }
  if (fedrec_optimizer_parse(c->optimizer, &c->e.optimizer)) {
    fprintf(stderr, "fedrec-coordinator: optimizer: '%s' is not one of %s\n", c->optimizer, fedrec_optimizer_names());
    return 0;
  }
  return 1;
}

static int need(int have, const char *cmd, const char *flag) {
  if (!have) fprintf(stderr, "fedrec-coordinator %s: %s is required\n", cmd, flag);
  return have;
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (fedrec_crypto_init()) return 1;
  static server srv;
  config *c = &srv.cfg;
  config_defaults(c);
  const char *cmd = argv[1];
  admin_args a = {.days = 365};
  if (!parse_args(c, &a, argc, argv)) return 2;
  if (!strcmp(cmd, "init")) return cmd_init(c);
  if (!strcmp(cmd, "token")) return need(a.have_id, cmd, "--id") ? cmd_token(c, a.id, a.days) : 2;
  if (!strcmp(cmd, "revoke")) return need(a.have_id, cmd, "--id") ? cmd_revoke(c, a.id) : 2;
  if (!strcmp(cmd, "serve")) return serve(&srv);
  if (!strcmp(cmd, "check-config")) { /* what serve would refuse before it opens anything */
    if (!check_settings(c)) return 2;
    printf("fedrec-coordinator: the settings are valid (files are not opened)\n");
    return 0;
  }
  if (!strcmp(cmd, "status")) return cmd_status(c);
  if (!strcmp(cmd, "authority-init")) return need(a.out != NULL, cmd, "--out") ? cmd_authority_init(a.out) : 2;
  if (!strcmp(cmd, "enrol"))
    return need(a.authority != NULL, cmd, "--authority-key") && need(a.have_id, cmd, "--id") && need(a.device != NULL, cmd, "--device-key")
               ? cmd_enrol(a.authority, a.id, a.device) : 2;
  if (!strcmp(cmd, "export-model")) return need(a.out != NULL, cmd, "--out") ? cmd_export(c, a.version, a.out) : 2;
  fprintf(stderr, "fedrec-coordinator: unknown command '%s' (init, token, revoke, serve, check-config, status, export-model, authority-init, enrol)\n", cmd);
  return 2;
}
