/* One client's part in one round, with no I/O: what the client library (and the simulator)
 * runs between the messages it exchanges with the coordinator.
 *
 * On creation it solves the user's vector on the downloaded model, computes the gradient of
 * the user's loss with respect to the model's parameters ([E | H], fedrec_model_get_params
 * order), and encodes it with the distributed-DP pipeline (clip, rotate, round, noise,
 * mod 2^bits). The user vector and the raw gradient never leave this object and are wiped
 * when it is freed; only the masked, noisy encoding is ever sent. Each step takes the
 * coordinator's message (wire encoding, include/fedrec/secagg.h) and returns the one to send
 * back, malloc'd (the caller frees it). */
#ifndef FEDREC_PARTICIPANT_H
#define FEDREC_PARTICIPANT_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/model.h"
#include "fedrec/round.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_participant fedrec_participant;

/* model: decoded from the verified blob of version info->model_version, with its content
 * embeddings; history: item indices and weights (n >= 1). entropy: NULL for the CSPRNG. */
fedrec_status fedrec_participant_new(fedrec_participant **out, const fedrec_round_info *info,
                                     const fedrec_model *model, const int32_t *items,
                                     const float *w, int32_t n, const fedrec_entropy *entropy,
                                     fedrec_error *err);
void fedrec_participant_free(fedrec_participant *p);
/* The user's loss on the model before this round's update (for progress reports). */
double fedrec_participant_loss(const fedrec_participant *p);

fedrec_status fedrec_participant_keys(fedrec_participant *p, uint8_t **out, size_t *len,
                                      fedrec_error *err);
fedrec_status fedrec_participant_shares(fedrec_participant *p, const uint8_t *keylist, size_t n,
                                        uint8_t **out, size_t *len, fedrec_error *err);
fedrec_status fedrec_participant_masked(fedrec_participant *p, const uint8_t *inbox, size_t n,
                                        uint8_t **out, size_t *len, fedrec_error *err);
fedrec_status fedrec_participant_unmask(fedrec_participant *p, const uint8_t *survivors,
                                        size_t n, uint8_t **out, size_t *len, fedrec_error *err);

/* The active (malicious-server) variant. A device enrolled with an authority sets its identity
 * (borrowed until the participant is freed) and the authority's public key before the keys;
 * from then on it takes part only in active rounds (a passive one is refused: FEDREC_ERR_AUTH,
 * a downgrade), checks every cohort member's certificate before its keys leave, verifies its
 * neighbours' signed keys, signs the survivor list in the consistency phase and reveals shares
 * only for the list it signed, signed by at least t survivors. */
fedrec_status fedrec_participant_set_identity(fedrec_participant *p, const fedrec_identity *identity,
                                              const uint8_t authority_pk[FEDREC_SIGN_PK_BYTES], fedrec_error *err);
/* Consistency phase: the survivor list in, this device's signature over it out. */
fedrec_status fedrec_participant_consistency(fedrec_participant *p, const uint8_t *survivors, size_t n,
                                             uint8_t **out, size_t *len, fedrec_error *err);


#ifdef __cplusplus
}
#endif
#endif
