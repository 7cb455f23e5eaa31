/* Device enrolment for the active (malicious-server) secure-aggregation variant.
 *
 * An enrolment authority, whose Ed25519 key is not the coordinator's serving key (an offline
 * operator key, or the service that issues tokens), certifies each device's identity key:
 *
 *   certificate = 'F' 'C' 1 0 | client id (8, LE) | identity key (32) | signature (64)
 *   signature   = Ed25519 by the authority over "fedrec-device-v1" (16) | client id | key
 *
 * 108 bytes, canonical (one encoding per certificate). The client id is the one in the device's
 * bearer token, so the coordinator can check that a device presents its own certificate. In an
 * active round every cohort member is shown every member's certificate, by cohort index; a
 * device checks them all against the authority's key before it trusts any signed message in
 * the round (docs/SECURITY.md "Who is protected against whom"). */
#ifndef FEDREC_ENROL_H
#define FEDREC_ENROL_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/crypto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FEDREC_CERT_BYTES 108

/* Signs (client, pk) with the authority's identity into out. */
void fedrec_cert_issue(uint8_t out[FEDREC_CERT_BYTES], uint64_t client, const uint8_t pk[FEDREC_SIGN_PK_BYTES],
                       const fedrec_identity *authority);
/* Checks a certificate (len bytes, hostile) against the authority's public key; on success
 * *client and pk (either may be NULL) get what it certifies. FEDREC_ERR_PARSE says what is
 * wrong: its length, its header, or its signature. */
fedrec_status fedrec_cert_check(const uint8_t *cert, size_t len, const uint8_t authority_pk[FEDREC_SIGN_PK_BYTES],
                                uint64_t *client, uint8_t pk[FEDREC_SIGN_PK_BYTES], fedrec_error *err);
/* A round's cohort certificates (n of them, by cohort index, len == n * FEDREC_CERT_BYTES)
 * as a device checks them: each valid under the authority, no client id or key twice, and the
 * one at index self certifying self_pk. pks (n entries) gets the identity keys. */
fedrec_status fedrec_cert_cohort(const uint8_t *certs, size_t len, uint32_t n, uint32_t self,
                                 const uint8_t self_pk[FEDREC_SIGN_PK_BYTES],
                                 const uint8_t authority_pk[FEDREC_SIGN_PK_BYTES],
                                 uint8_t (*pks)[FEDREC_SIGN_PK_BYTES], fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
