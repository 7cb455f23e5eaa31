/* fedrec-coordinator's administration subcommands: init (keys), token, revoke, status and
 * export-model, on the state directory (DIR/identity.key, token.secret, coordinator.db,
 * ledger.db); authority-init and enrol, with the enrolment authority's key (kept elsewhere). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "fedrec/enrol.h"
#include "fedrec/internal/tool.h"
#include "server.h"

int read_hex32(const char *path, uint8_t out[32]) {
  char *t = fedrec_rpc_read_text(path);
  if (!t) return 0;
  size_t n = 0;
  int ok = sodium_hex2bin(out, 32, t, strlen(t), " \n\r\t", &n, NULL) == 0 && n == 32;
  sodium_memzero(t, strlen(t));
  free(t);
  return ok;
}

static int write_secret_hex(const char *path, const uint8_t *b) {
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return 0;
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, b, 32);
  hex[64] = '\n';
  int ok = write(fd, hex, 65) == 65 && fsync(fd) == 0;
  sodium_memzero(hex, sizeof hex);
  close(fd);
  return ok;
}

void state_path(char *out, size_t cap, const config *c, const char *name) {
  snprintf(out, cap, "%s/%s", c->state_dir, name);
}

int cmd_init(const config *c) {
  char p1[600], p2[600], p3[600];
  if ((mkdir(c->state_dir, 0700) && errno != EEXIST) || chmod(c->state_dir, 0700)) {
    fprintf(stderr, "fedrec-coordinator init: %s: %s\n", c->state_dir, strerror(errno));
    return 1;
  }
  state_path(p1, sizeof p1, c, "identity.key");
  state_path(p2, sizeof p2, c, "token.secret");
  state_path(p3, sizeof p3, c, "identity.pub");
  uint8_t *seed = fedrec_secret_alloc(64);
  if (!seed) return 1;
  randombytes_buf(seed, 64);
  int ok = write_secret_hex(p1, seed) && write_secret_hex(p2, seed + 32);
  if (!ok) {
    fprintf(stderr, "fedrec-coordinator init: cannot create %s and %s (do they exist already?): %s\n", p1, p2, strerror(errno));
    fedrec_secret_free(seed);
    return 1;
  }
  fedrec_identity id;
  if (fedrec_identity_from_seed(&id, seed)) return 1;
  fedrec_secret_free(seed);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, id.pk, 32);
  FILE *f = fopen(p3, "w");
  if (!f || fprintf(f, "%s\n", hex) < 0 || fclose(f)) {
    fprintf(stderr, "fedrec-coordinator init: cannot write %s\n", p3);
    return 1;
  }
  fedrec_identity_free(&id);
  printf("%s\n", hex);
  fprintf(stderr, "fedrec-coordinator: keys in %s; public key (give it to clients and auditors) in %s\n", c->state_dir, p3);
  return 0;
}

/* A JSON summary of the state: models kept, rounds, clients, and the verified ledger. */
int cmd_status(const config *c) {
  char path[600], pkfile[600], versions[8192];
  state_path(path, sizeof path, c, "coordinator.db");
  struct stat sb;
  coord_store *st;
  fedrec_error err = {0};
  if (stat(path, &sb) || coord_store_open(&st, path, &err)) {
    fprintf(stderr, "fedrec-coordinator status: %s: %s\n", path, err.msg[0] ? err.msg : "no such state");
    return 1;
  }
  coord_store_versions(st, versions, sizeof versions);
  printf("{\"model_versions\": [%s], \"rounds\": %lld, \"rounds_aborted\": %lld, \"clients\": %lld", versions,
         (long long)coord_store_count(st, "rounds WHERE aborted = 0"), (long long)coord_store_count(st, "rounds WHERE aborted = 1"),
         (long long)coord_store_count(st, "clients"));
  coord_store_close(st);
  state_path(path, sizeof path, c, "ledger.db");
  state_path(pkfile, sizeof pkfile, c, "identity.pub");
  uint8_t pk[32];
  fedrec_ledger_summary sum;
  int rc = 0;
  if (!read_hex32(pkfile, pk)) {
    printf(", \"ledger\": null}\n");
  } else if (fedrec_ledger_verify(path, pk, &sum, NULL, 0, &err)) {
    char msg[600];
    fedrec_json_escape(msg, sizeof msg, err.msg);
    printf(", \"ledger\": {\"verified\": false, \"reason\": \"%s\"}}\n", msg);
    rc = 1;
  } else {
    printf(", \"ledger\": {\"verified\": true, \"entries\": %llu, \"epsilon\": %.10g, \"budget\": %.10g}}\n",
           (unsigned long long)sum.entries, sum.epsilon, sum.budget);
  }
  return rc;
}

/* Writes a kept model blob (newest, or version v) to a file, for evaluation or archiving. */
int cmd_export(const config *c, uint64_t v, const char *out) {
  char path[600];
  state_path(path, sizeof path, c, "coordinator.db");
  struct stat sb;
  coord_store *st;
  coord_saved_model m;
  fedrec_error err = {0};
  if (stat(path, &sb) || coord_store_open(&st, path, &err)) {
    fprintf(stderr, "fedrec-coordinator export-model: %s: %s\n", path, err.msg[0] ? err.msg : "no such state");
    return 1;
  }
  int rc = 0;
  if (coord_store_load_version(st, v, &m, &err)) {
    fprintf(stderr, "fedrec-coordinator export-model: %s\n", err.msg);
    rc = 1;
  } else {
    FILE *f = fopen(out, "wb");
    if (!f || fwrite(m.blob, 1, m.len, f) != m.len || fclose(f)) {
      fprintf(stderr, "fedrec-coordinator export-model: cannot write %s\n", out);
      rc = 1;
    } else {
      char hh[65], hl[65], hs[129];
      sodium_bin2hex(hh, sizeof hh, m.hash, 32);
      sodium_bin2hex(hl, sizeof hl, m.ledger_head, 32);
      sodium_bin2hex(hs, sizeof hs, m.sig, FEDREC_SIG_BYTES);
      fprintf(stderr, "fedrec-coordinator: model version %llu (%zu bytes) written to %s\n", (unsigned long long)m.version, m.len, out);
      /* what its signature covers: an auditor checks a ledger against it (fedrec-audit verify --covers) */
      printf("{\"version\": %llu, \"blake2b\": \"%s\", \"signature\": \"%s\", \"ledger_entries\": %llu, "
             "\"ledger_head\": \"%s\", \"covers\": \"%llu:%s\"}\n",
             (unsigned long long)m.version, hh, hs, (unsigned long long)m.ledger_entries, hl,
             (unsigned long long)m.ledger_entries, hl);
    }
    coord_saved_model_free(&m);
  }
  coord_store_close(st);
  return rc;
}

int cmd_token(const config *c, uint64_t id, uint64_t days) {
  char p[600];
  state_path(p, sizeof p, c, "token.secret");
  uint8_t *secret = fedrec_secret_alloc(32);
  if (!secret || !read_hex32(p, secret)) {
    fprintf(stderr, "fedrec-coordinator token: cannot read %s (run init first)\n", p);
    return 1;
  }
  char tok[FEDREC_TOKEN_MAX];
  fedrec_token_make(tok, secret, id, (uint64_t)time(NULL) + days * 86400);
  fedrec_secret_free(secret);
  printf("%s\n", tok);
  return 0;
}

/* Adds id to the deny list in the state; a running coordinator picks it up within seconds. */
int cmd_revoke(const config *c, uint64_t id) {
  char p[600];
  state_path(p, sizeof p, c, "coordinator.db");
  coord_store *st;
  fedrec_error err = {0};
  if (coord_store_open(&st, p, &err) || coord_store_revoke(st, id, &err)) {
    fprintf(stderr, "fedrec-coordinator revoke: %s\n", err.msg);
    if (st) coord_store_close(st);
    return 1;
  }
  coord_store_close(st);
  fprintf(stderr, "fedrec-coordinator: client %llu's tokens are revoked\n", (unsigned long long)id);
  return 0;
}

/* authority-init: the enrolment authority's key pair, kept apart from the serving key: the seed
 * in FILE (0600, never overwritten), the public key in FILE.pub. */
int cmd_authority_init(const char *out) {
  char pub[600];
  snprintf(pub, sizeof pub, "%s.pub", out);
  uint8_t *seed = fedrec_secret_alloc(32);
  if (!seed) return 1;
  randombytes_buf(seed, 32);
  fedrec_identity id = {0};
  int ok = write_secret_hex(out, seed) && !fedrec_identity_from_seed(&id, seed);
  fedrec_secret_free(seed);
  if (!ok) {
    fprintf(stderr, "fedrec-coordinator authority-init: cannot create %s (does it exist already?): %s\n", out, strerror(errno));
    return 1;
  }
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, id.pk, 32);
  fedrec_identity_free(&id);
  FILE *f = fopen(pub, "w");
  if (!f || fprintf(f, "%s\n", hex) < 0 || fclose(f)) {
    fprintf(stderr, "fedrec-coordinator authority-init: cannot write %s\n", pub);
    return 1;
  }
  printf("%s\n", hex);
  fprintf(stderr, "fedrec-coordinator: authority key in %s (keep it off the coordinator); public key in %s "
                  "(enrolment-authority @%s, and fedrec-client init --authority-key @%s)\n", out, pub, pub, pub);
  return 0;
}

/* enrol: the certificate for client id's identity key (64 hex digits, or @FILE). */
int cmd_enrol(const char *authority, uint64_t id, const char *device) {
  uint8_t pk[32], *seed = fedrec_secret_alloc(32);
  size_t n = 0;
  int ok = device[0] == '@' ? read_hex32(device + 1, pk) : !sodium_hex2bin(pk, 32, device, strlen(device), " \n", &n, NULL) && n == 32;
  if (!ok) {
    fprintf(stderr, "fedrec-coordinator enrol: --device-key: %s is not 64 hex digits (fedrec-client identity prints them)\n", device);
    fedrec_secret_free(seed);
    return 2;
  }
  fedrec_identity auth = {0};
  if (!seed || !read_hex32(authority, seed) || fedrec_identity_from_seed(&auth, seed)) {
    fprintf(stderr, "fedrec-coordinator enrol: cannot read the authority key %s (authority-init makes one)\n", authority);
    fedrec_secret_free(seed);
    return 1;
  }
  fedrec_secret_free(seed);
  uint8_t cert[FEDREC_CERT_BYTES];
  fedrec_cert_issue(cert, id, pk, &auth);
  fedrec_identity_free(&auth);
  char hex[2 * FEDREC_CERT_BYTES + 1];
  printf("%s\n", sodium_bin2hex(hex, sizeof hex, cert, sizeof cert));
  return 0;
}
