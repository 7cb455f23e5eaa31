/* Cryptographic building blocks of secure aggregation. crypto/ is the only module that
 * calls libsodium; secrets live in libsodium's guarded memory and are wiped after use.
 *
 *   key agreement   X25519; the shared point is hashed (BLAKE2b-256) with both public keys
 *                   and a protocol label into a key: the raw point is never a key
 *   mask PRG        ChaCha20 (IETF) keystream under a key derived per (session, mask kind,
 *                   pair or client, vector), expanded to integers mod 2^b, b <= 32
 *   share transport XChaCha20-Poly1305, the sender and recipient ids bound in as data
 *   identities      Ed25519 signatures
 *   secret sharing  Shamir t-of-n over GF(2^61 - 1) for 32-byte secrets (crypto/shamir.c) */
#ifndef FEDREC_CRYPTO_H
#define FEDREC_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FEDREC_KEY_BYTES 32
#define FEDREC_PK_BYTES 32
#define FEDREC_SIGN_PK_BYTES 32
#define FEDREC_SIGN_SK_BYTES 64
#define FEDREC_SIG_BYTES 64
#define FEDREC_AEAD_NONCE_BYTES 24
#define FEDREC_AEAD_TAG_BYTES 16

/* Initialises libsodium; call once before anything else here (safe to call again). */
fedrec_status fedrec_crypto_init(void) __attribute__((warn_unused_result));

/* BLAKE2b-256 of the concatenation of two byte strings (either may be empty). */
void fedrec_hash2(uint8_t out[32], const void *a, size_t alen, const void *b, size_t blen);
/* Client tokens: "<id>.<expiry>.<32 hex digits>", the digits a BLAKE2b-128 MAC keyed with
 * the coordinator's 32-byte token secret over "fedrec-token-v2:<id>:<expiry>"; expiry in Unix
 * seconds. The coordinator checks tokens without storing them (revocation: a deny list of
 * ids). One spelling only: decimal numbers without leading zeros or overflow, lower-case hex,
 * so that no two strings name the same token. */
#define FEDREC_TOKEN_MAX 80
void fedrec_token_make(char out[FEDREC_TOKEN_MAX], const uint8_t secret[32], uint64_t id, uint64_t expiry);
typedef enum fedrec_token_verdict {
  FEDREC_TOKEN_VALID = 0,
  FEDREC_TOKEN_INVALID = 1, /* malformed, not canonical, or the MAC does not match */
  FEDREC_TOKEN_EXPIRED = 2, /* genuine, but now >= its expiry */
} fedrec_token_verdict;
/* Checks a token at time now (Unix seconds); *id and *expiry are set when it is genuine
 * (valid or expired). The MAC is compared in constant time. */
fedrec_token_verdict fedrec_token_check(const char *token, size_t len, const uint8_t secret[32], uint64_t now,
                                        uint64_t *id, uint64_t *expiry);
/* Ed25519 identity from a 32-byte seed (deterministic), sk in guarded memory. */
struct fedrec_identity;
fedrec_status fedrec_identity_from_seed(struct fedrec_identity *id, const uint8_t seed[32])
    __attribute__((warn_unused_result));

/* libsodium's CSPRNG as the byte source of the exact noise samplers (fedrec/noise.h). */
struct fedrec_entropy;
void fedrec_csprng(struct fedrec_entropy *out);

/* Key material in guarded memory (sodium_malloc): wiped and released by fedrec_secret_free. */
uint8_t *fedrec_secret_alloc(size_t n) __attribute__((warn_unused_result));
void fedrec_secret_free(uint8_t *p);

/* An X25519 key pair; sk points into guarded memory. */
typedef struct fedrec_kx_keypair {
  uint8_t pk[FEDREC_PK_BYTES];
  uint8_t *sk;  /* FEDREC_KEY_BYTES */
  int borrowed; /* sk lives in the caller's guarded memory: not freed here */
} fedrec_kx_keypair;

fedrec_status fedrec_kx_keypair_new(fedrec_kx_keypair *kp) __attribute__((warn_unused_result));
/* Derives the key pair from a 32-byte seed (deterministic; for tests and for the
 * mask key that is Shamir-shared and must be reconstructible). */
fedrec_status fedrec_kx_keypair_from_seed(fedrec_kx_keypair *kp, const uint8_t seed[32])
    __attribute__((warn_unused_result));
/* A fresh key pair whose secret key is written to sk_mem (FEDREC_KEY_BYTES of the caller's
 * guarded memory). Each guarded allocation costs the process several memory mappings, so
 * an object that holds many secrets (a secure-aggregation client) keeps them in one. */
void fedrec_kx_keypair_new_in(fedrec_kx_keypair *kp, uint8_t *sk_mem);
void fedrec_kx_keypair_free(fedrec_kx_keypair *kp);

/* key = BLAKE2b-256(label || X25519(sk, peer_pk) || min(pk_a, pk_b) || max(pk_a, pk_b)), so
 * both sides derive the same key. Fails (FEDREC_ERR_ARG) on a low-order peer key. */
fedrec_status fedrec_kx_agree(uint8_t key[FEDREC_KEY_BYTES], const uint8_t *sk,
                              const uint8_t my_pk[FEDREC_PK_BYTES],
                              const uint8_t peer_pk[FEDREC_PK_BYTES], const char *label)
    __attribute__((warn_unused_result));
/* The same, with the shared point computed in `point` (32 bytes of the caller's secure memory,
 * wiped before return): for callers that agree many keys, to save a guarded allocation each. */
fedrec_status fedrec_kx_agree_in(uint8_t key[FEDREC_KEY_BYTES], const uint8_t *sk,
                                 const uint8_t my_pk[FEDREC_PK_BYTES],
                                 const uint8_t peer_pk[FEDREC_PK_BYTES], const char *label,
                                 uint8_t point[FEDREC_KEY_BYTES]) __attribute__((warn_unused_result));

/* 1 when an X25519 public key is usable by fedrec_kx_agree: not of small order, so that
 * every agreement with it gives a non-zero point (checked by one scalar multiplication with
 * a fixed scalar: every clamped scalar is a multiple of the cofactor). 0 otherwise. */
int fedrec_kx_pk_valid(const uint8_t pk[FEDREC_PK_BYTES]) __attribute__((warn_unused_result));

/* Mask kinds for domain separation (3: the SecAgg+ graph; FEDREC_PRF_COIN: the engine's
 * Poisson selection coins, one per device and round). */
enum { FEDREC_MASK_PAIR = 1, FEDREC_MASK_SELF = 2, FEDREC_PRF_COIN = 4 };

/* Derives the per-use mask key: BLAKE2b-256 keyed with seed over
 * ("fedrec-mask-v1", session, kind, a, b, vector). */
void fedrec_mask_key(uint8_t out[FEDREC_KEY_BYTES], const uint8_t seed[FEDREC_KEY_BYTES],
                     uint64_t session, int kind, uint32_t a, uint32_t b, uint32_t vector);

/* y[i] = (y[i] + sign * m[i]) mod 2^bits for the ChaCha20-IETF keystream m under key
 * (nonce 0; the key is single-use), read as little-endian 32-bit words reduced mod 2^bits.
 * sign is +1 or -1; 1 <= bits <= 32. */
void fedrec_mask_apply(uint32_t *y, size_t n, const uint8_t key[FEDREC_KEY_BYTES], int sign,
                       int bits);

/* The same as fedrec_mask_apply with each of count keys (keys: count x 32 bytes) and its sign
 * in turn, in one pass over y: each chunk of y stays in cache while every keystream is added.
 * The sum mod 2^bits does not depend on the order. */
void fedrec_mask_apply_many(uint32_t *y, size_t n, const uint8_t *keys, const int *signs, size_t count,
                            int bits);

/* fedrec_mask_apply_many on words [from, to) of y only (the keystreams' words [from, to)):
 * disjoint ranges can be masked on different threads. from must be a multiple of 16 (one
 * ChaCha20 block). */
void fedrec_mask_apply_range(uint32_t *y, size_t from, size_t to, const uint8_t *keys, const int *signs,
                             size_t count, int bits);

/* sum = sum + x + the masks of fedrec_mask_apply_many, mod 2^bits, in one pass: adds the masked
 * x to a running sum without making the masked vector (the simulator's per-thread sums). */
void fedrec_mask_add_many(uint32_t *sum, const uint32_t *x, size_t n, const uint8_t *keys, const int *signs,
                          size_t count, int bits);

/* Raw ChaCha20-IETF keystream (for the benchmark's limit). */
void fedrec_chacha20_keystream(uint8_t *out, size_t n, const uint8_t key[FEDREC_KEY_BYTES]);

/* XChaCha20-Poly1305 with associated data (label, session, sender, recipient).
 * out must hold mlen + FEDREC_AEAD_NONCE_BYTES + FEDREC_AEAD_TAG_BYTES bytes
 * (nonce || ciphertext || tag); a random nonce is drawn. */
size_t fedrec_seal(uint8_t *out, const uint8_t *m, size_t mlen, const uint8_t key[32],
                   uint64_t session, uint32_t sender, uint32_t recipient);
/* Returns FEDREC_ERR_PARSE when the box is malformed, tampered with, or bound to other ids. */
fedrec_status fedrec_open(uint8_t *m, const uint8_t *box, size_t boxlen, const uint8_t key[32],
                          uint64_t session, uint32_t sender, uint32_t recipient)
    __attribute__((warn_unused_result));

/* Ed25519 identities; sk in guarded memory. */
typedef struct fedrec_identity {
  uint8_t pk[FEDREC_SIGN_PK_BYTES];
  uint8_t *sk; /* FEDREC_SIGN_SK_BYTES */
} fedrec_identity;
fedrec_status fedrec_identity_new(fedrec_identity *id) __attribute__((warn_unused_result));
void fedrec_identity_free(fedrec_identity *id);
void fedrec_sign(uint8_t sig[FEDREC_SIG_BYTES], const uint8_t *m, size_t mlen,
                 const fedrec_identity *id);
/* FEDREC_OK when sig is pk's signature of m; FEDREC_ERR_PARSE when it is not. */
fedrec_status fedrec_verify(const uint8_t sig[FEDREC_SIG_BYTES], const uint8_t *m, size_t mlen,
                  const uint8_t pk[FEDREC_SIGN_PK_BYTES]) __attribute__((warn_unused_result));

/* Shamir t-of-n over GF(p), p = 2^61 - 1: a 32-byte secret is 8 little-endian 32-bit chunks,
 * each the constant term of its own random polynomial of degree t - 1. */
#define FEDREC_SHAMIR_CHUNKS 8
typedef struct fedrec_share {
  uint32_t x; /* evaluation point, nonzero (client index + 1) */
  uint64_t y[FEDREC_SHAMIR_CHUNKS];
} fedrec_share;

/* shares[k] gets the share for xs[k] (n distinct nonzero points), 1 <= t <= n. */
fedrec_status fedrec_shamir_split(fedrec_share *shares, const uint32_t *xs, int n, int t,
                                  const uint8_t secret[32]) __attribute__((warn_unused_result));
/* Reconstructs from exactly t shares with distinct x. Fails (FEDREC_ERR_PARSE) when a
 * share is out of the field, x repeats, or a reconstructed chunk exceeds 32 bits. That last
 * check catches a share replaced by garbage (probability 1 - 2^-29 per chunk) but is not an
 * authenticity check: a small, targeted change can pass. Below t shares the result is
 * unrelated to the secret. */
fedrec_status fedrec_shamir_combine(uint8_t secret[32], const fedrec_share *shares, int t)
    __attribute__((warn_unused_result));

#ifdef __cplusplus
}
#endif
#endif
