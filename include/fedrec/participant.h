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
/* The same with the model's item vectors V (n_items x d, fedrec_model_item_vectors) and their
 * Gramian G (d x d, fedrec_gramian) computed by the caller (NULL: here): a simulator running
 * many participants on one model computes them once per round. Same results. */
fedrec_status fedrec_participant_new_shared(fedrec_participant **out, const fedrec_round_info *info,
                                            const fedrec_model *model, const float *V, const float *G,
                                            const int32_t *items, const float *w, int32_t n,
                                            const fedrec_entropy *entropy, fedrec_error *err);
/* The same with a given update of dim parameters instead of the gradient (it is clipped and
 * encoded like one): for tests and the simulator's audit canaries. */
fedrec_status fedrec_participant_new_update(fedrec_participant **out, const fedrec_round_info *info,
                                            const float *update, int64_t dim, const fedrec_entropy *entropy,
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

/* Simulation only, in one process: fedrec_participant_masked's masked input added into sum
 * (secagg.dim values, mod 2^bits) instead of encoded for the wire (lossless), *wire_len the
 * length its message would have; the caller gives the sum to fedrec_engine_submit_sum. */
fedrec_status fedrec_participant_masked_add(fedrec_participant *p, const uint8_t *inbox, size_t n, uint32_t *sum,
                                            size_t *wire_len, fedrec_error *err);

/* Simulation only (fedrec_engine_config.plain): the encoded update as a masked-input message
 * with no masks. */
fedrec_status fedrec_participant_plain(fedrec_participant *p, uint8_t **out, size_t *len,
                                       fedrec_error *err);
/* Simulation only, plain, in one process: the same encoded update as a vector of secagg.dim
 * values mod 2^bits (malloc'd, the caller frees it), skipping the wire round trip (lossless);
 * *wire_len is the length fedrec_participant_plain's message would have. */
fedrec_status fedrec_participant_plain_vector(fedrec_participant *p, uint32_t **y, size_t *wire_len,
                                              fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
