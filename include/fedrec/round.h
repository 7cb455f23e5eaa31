/* What the coordinator and a device share about a round, with neither's machinery: the phases
 * and their names, what a cohort member is told (the round info), and the message a published
 * model's signature covers. The device side (participant, client, protos/) includes this and
 * links no coordinator code: crypto/round.c. */
#ifndef FEDREC_ROUND_H
#define FEDREC_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/crypto.h"
#include "fedrec/ddp.h"
#include "fedrec/secagg.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The phases of a round, in order: one list, from which the enum, the names and the count
 * are made. CONSISTENCY (survivors sign the survivor list) runs in active-variant rounds only;
 * other rounds go from MASKED straight to UNMASK. */
#define FEDREC_PHASE_MAP(X) \
  X(SELECTING, "selecting")  \
  X(KEYS, "keys")            \
  X(SHARES, "shares")        \
  X(MASKED, "masked")        \
  X(CONSISTENCY, "consistency") \
  X(UNMASK, "unmask")        \
  X(STOPPED, "stopped")

typedef enum fedrec_phase {
#define FEDREC_PHASE_ENUM(name, text) FEDREC_PHASE_##name,
  FEDREC_PHASE_MAP(FEDREC_PHASE_ENUM)
#undef FEDREC_PHASE_ENUM
  FEDREC_PHASES
} fedrec_phase;
/* "keys", ...; "unknown" for a value out of range. */
const char *fedrec_phase_name(fedrec_phase p);

/* What a round asks of its members: the gradient of the model (the default), or the items in
 * their history (a count round: a 0/1 vector over the model's n_items, clipped and noised like
 * any update, whose noisy sum becomes the model's popularity), or the co-occurrence of their
 * history's items among the model's M most popular (a spectral round: M (M + 1) / 2 numbers,
 * fedrec_gram_update, whose noisy sum's leading eigenvectors become those items' free
 * embeddings); docs/MODEL.md. */
typedef enum fedrec_round_kind { FEDREC_ROUND_MODEL = 0, FEDREC_ROUND_COUNT = 1, FEDREC_ROUND_GRAM = 2 } fedrec_round_kind;

/* What a cohort member needs for one round. */
typedef struct fedrec_round_info {
  uint64_t round, model_version;
  fedrec_round_kind kind;
  uint32_t cohort_index;
  fedrec_secagg_params secagg;   /* dim = the padded update length */
  fedrec_ddp_params ddp;         /* dim = the model's parameter count */
  float alpha0, reg;
  uint32_t local_steps;          /* client gradient steps before sending the move (0, 1: one) */
  float client_lr;               /* their step size (0: 1, the update is the gradient) */
  uint64_t deadline_ms;          /* of the current phase, on the engine's clock */
  uint32_t min_survivors;        /* the fewest inputs the round's noise was planned for: a device
                                  * reveals no share for a shorter survivor list (0: not said) */
  /* active variant (secagg.active): every member's device certificate (include/fedrec/enrol.h),
   * by cohort index, secagg.n * FEDREC_CERT_BYTES bytes; borrowed (the engine's, or the decoded
   * message's); NULL otherwise */
  const uint8_t *certs;
  size_t certs_len;
  /* aggregators (fedrec/engine.h): the member's masked input goes to an aggregator, with this
   * ticket (as its bearer token, hex); engine side, aggregator is its 1-based index and
   * aggregator_addr NULL; on the wire and on the device, aggregator_addr is where to send it
   * (borrowed; NULL or "": the coordinator) */
  uint32_t aggregator;
  const char *aggregator_addr;
  uint8_t ticket[16];
} fedrec_round_info;

/* The catalogue a model belongs to: its version and the BLAKE2b-256 hash of its encoding
 * (protos/catalogue.h). */
typedef struct fedrec_catalogue_ref {
  uint64_t version;
  uint8_t hash[32];
} fedrec_catalogue_ref;

/* The message a model signature covers (for verifiers): "fedrec-model-v2" (15 bytes), the
 * version (8, little endian), the blob's hash (32), the ledger's entry count (8, little
 * endian) and the hash of its last entry (32; the genesis hash when empty). A model that
 * belongs to a served catalogue (cat != NULL) is signed as "fedrec-model-v3" with the
 * catalogue's version (8, little endian) and hash (32) appended. Returns the length. */
#define FEDREC_MODEL_SIGNED_BYTES (15 + 8 + 32 + 8 + 32 + 8 + 32)
size_t fedrec_model_signed_message(uint8_t out[FEDREC_MODEL_SIGNED_BYTES], uint64_t version, const uint8_t hash[32],
                                   uint64_t ledger_entries, const uint8_t ledger_head[32], const fedrec_catalogue_ref *cat);
/* Checks a downloaded blob against the hash and signature under the coordinator's key:
 * FEDREC_OK when both hold, FEDREC_ERR_PARSE when either does not. */
fedrec_status fedrec_model_verify(const uint8_t *blob, size_t len, uint64_t version, const uint8_t hash[32],
                                  uint64_t ledger_entries, const uint8_t ledger_head[32], const fedrec_catalogue_ref *cat,
                                  const uint8_t sig[FEDREC_SIG_BYTES], const uint8_t pk[FEDREC_SIGN_PK_BYTES]);

#ifdef __cplusplus
}
#endif
#endif
