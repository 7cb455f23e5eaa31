/* Fuzz target: a ledger file as fedrec-audit opens it (SQLite file bytes from anyone: the
 * auditor does not trust the coordinator). The bytes go to a temporary file that
 * fedrec_ledger_verify reads: no crash whatever they are; a ledger that verifies under the
 * test key has a finite, non-negative epsilon within its budget. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fedrec/ledger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  static uint8_t pk[32];
  if (!path[0]) {
    snprintf(path, sizeof path, "/tmp/fedrec_fuzz_ledger_%d.db", (int)getpid());
    fedrec_identity id; /* the key the seed ledgers were made with (tests/fuzz/make_ledger_seed) */
    uint8_t seed[32] = {7};
    if (fedrec_crypto_init() || fedrec_identity_from_seed(&id, seed)) return 0;
    memcpy(pk, id.pk, 32);
    fedrec_identity_free(&id);
  }
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  size_t w = fwrite(data, 1, size, f);
  fclose(f);
  if (w != size) return 0;
  fedrec_ledger_summary s;
  fedrec_error err;
  if (fedrec_ledger_verify(path, pk, &s, NULL, 0, &err) == FEDREC_OK)
    if (!(s.epsilon >= 0 && isfinite(s.epsilon) && s.epsilon <= s.budget * (1 + 1e-9))) abort();
  unlink(path);
  char wal[80];
  snprintf(wal, sizeof wal, "%s-wal", path), unlink(wal);
  snprintf(wal, sizeof wal, "%s-shm", path), unlink(wal);
  snprintf(wal, sizeof wal, "%s-journal", path), unlink(wal);
  return 0;
}
