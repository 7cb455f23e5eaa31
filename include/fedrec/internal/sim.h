/* Entry points for the simulator and tests only, not for deployments and not installed:
 * shortcuts that run many clients in one process (shared item vectors, sums added in place,
 * unmasked inputs), and a fast approximate noise sampler. Each says why it is not for a device
 * or a coordinator. */
#ifndef FEDREC_INTERNAL_SIM_H
#define FEDREC_INTERNAL_SIM_H

#include "fedrec/engine.h"
#include "fedrec/noise.h"
#include "fedrec/participant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- engine (fedrec/engine.h) ---- */
/* For simulators that add inputs up on several machines (fedrec-sim-mpi): in the masked phase,
 * `sum` is the sum mod 2^bits of the masked (with --plain, unmasked) inputs of `clients`, as if
 * each had been submitted (the modular sum is associative); `bytes` is what they took on the
 * wire. Rejected as a whole, changing nothing, if a client is not waiting to send its input,
 * is named twice, or a value is out of range. */
fedrec_status fedrec_engine_submit_sum(fedrec_engine *e, uint64_t round, const uint64_t *clients, uint32_t n,
                                       const uint32_t *sum, uint32_t dim, uint64_t bytes, uint64_t now,
                                       fedrec_error *err);

/* ---- participant (fedrec/participant.h) ---- */
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

/* ---- noise (fedrec/noise.h) ---- */
/* NOT exact: for simulation only, never for noise that protects anyone. Poisson(lambda) by
 * Hormann's transformed rejection with squeeze (PTRS, 1993) in double precision, O(1) per
 * sample at any lambda (lambda < 10: the exact sampler above). Its distribution equals
 * Poisson(lambda) up to floating-point rounding in the acceptance test. */
int64_t fedrec_poisson_fast(const fedrec_entropy *e, double lambda);
int64_t fedrec_skellam_fast(const fedrec_entropy *e, double lambda);

#ifdef __cplusplus
}
#endif
#endif
