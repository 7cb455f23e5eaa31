/* The round's shared vocabulary (see include/fedrec/round.h). */
#include "fedrec/round.h"

#include <string.h>

static const char *PHASE_NAMES[FEDREC_PHASES] = {
#define FEDREC_PHASE_TEXT(name, text) text,
    FEDREC_PHASE_MAP(FEDREC_PHASE_TEXT)
#undef FEDREC_PHASE_TEXT
};

const char *fedrec_phase_name(fedrec_phase p) {
  return (unsigned)p < FEDREC_PHASES ? PHASE_NAMES[p] : "unknown";
}

size_t fedrec_model_signed_message(uint8_t out[FEDREC_MODEL_SIGNED_BYTES], uint64_t version, const uint8_t hash[32],
                                   uint64_t ledger_entries, const uint8_t ledger_head[32], const fedrec_catalogue_ref *cat) {
  memcpy(out, cat ? "fedrec-model-v3" : "fedrec-model-v2", 15);
  for (int i = 0; i < 8; i++) out[15 + i] = (uint8_t)(version >> (8 * i));
  memcpy(out + 23, hash, 32);
  for (int i = 0; i < 8; i++) out[55 + i] = (uint8_t)(ledger_entries >> (8 * i));
  memcpy(out + 63, ledger_head, 32);
  if (!cat) return 95;
  for (int i = 0; i < 8; i++) out[95 + i] = (uint8_t)(cat->version >> (8 * i));
  memcpy(out + 103, cat->hash, 32);
  return FEDREC_MODEL_SIGNED_BYTES;
}

fedrec_status fedrec_model_verify(const uint8_t *blob, size_t len, uint64_t version, const uint8_t hash[32],
                                  uint64_t ledger_entries, const uint8_t ledger_head[32], const fedrec_catalogue_ref *cat,
                                  const uint8_t sig[FEDREC_SIG_BYTES], const uint8_t pk[FEDREC_SIGN_PK_BYTES]) {
  uint8_t h[32], msg[FEDREC_MODEL_SIGNED_BYTES];
  fedrec_hash2(h, blob, len, NULL, 0);
  if (memcmp(h, hash, 32)) return FEDREC_ERR_PARSE;
  size_t n = fedrec_model_signed_message(msg, version, hash, ledger_entries, ledger_head, cat);
  return fedrec_verify(sig, msg, n, pk);
}
