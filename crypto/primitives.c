/* libsodium-backed primitives: key agreement, mask PRG, share transport, signatures. */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "fedrec/crypto.h"
#include "fedrec/internal/clones.h"
#include "fedrec/noise.h"

fedrec_status fedrec_crypto_init(void) { return sodium_init() < 0 ? FEDREC_ERR_NOMEM : FEDREC_OK; }

uint8_t *fedrec_secret_alloc(size_t n) { return sodium_malloc(n); }
void fedrec_secret_free(uint8_t *p) {
  if (p) sodium_free(p); /* sodium_free wipes before releasing */
}

fedrec_status fedrec_kx_keypair_new(fedrec_kx_keypair *kp) {
  uint8_t *sk = fedrec_secret_alloc(FEDREC_KEY_BYTES);
  if (!sk) return FEDREC_ERR_NOMEM;
  fedrec_kx_keypair_new_in(kp, sk);
  kp->borrowed = 0;
  return FEDREC_OK;
}

void fedrec_kx_keypair_new_in(fedrec_kx_keypair *kp, uint8_t *sk_mem) {
  kp->sk = sk_mem;
  kp->borrowed = 1;
  randombytes_buf(kp->sk, FEDREC_KEY_BYTES);
  crypto_scalarmult_base(kp->pk, kp->sk);
}

fedrec_status fedrec_kx_keypair_from_seed(fedrec_kx_keypair *kp, const uint8_t seed[32]) {
  kp->sk = fedrec_secret_alloc(FEDREC_KEY_BYTES);
  kp->borrowed = 0;
  if (!kp->sk) return FEDREC_ERR_NOMEM;
  memcpy(kp->sk, seed, FEDREC_KEY_BYTES);
  crypto_scalarmult_base(kp->pk, kp->sk);
  return FEDREC_OK;
}

void fedrec_kx_keypair_free(fedrec_kx_keypair *kp) {
  if (!kp) return;
  if (!kp->borrowed) fedrec_secret_free(kp->sk);
  kp->sk = NULL;
}

fedrec_status fedrec_kx_agree(uint8_t key[FEDREC_KEY_BYTES], const uint8_t *sk,
                              const uint8_t my_pk[FEDREC_PK_BYTES],
                              const uint8_t peer_pk[FEDREC_PK_BYTES], const char *label) {
  uint8_t *point = fedrec_secret_alloc(crypto_scalarmult_BYTES);
  if (!point) return FEDREC_ERR_NOMEM;
  fedrec_status st = fedrec_kx_agree_in(key, sk, my_pk, peer_pk, label, point);
  fedrec_secret_free(point);
  return st;
}

int fedrec_kx_pk_valid(const uint8_t pk[FEDREC_PK_BYTES]) {
  /* the scalar is public, and so is the product: no secret memory needed */
  static const uint8_t scalar[crypto_scalarmult_SCALARBYTES] = {9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                                                16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31};
  uint8_t q[crypto_scalarmult_BYTES];
  return crypto_scalarmult(q, scalar, pk) == 0;
}

fedrec_status fedrec_kx_agree_in(uint8_t key[FEDREC_KEY_BYTES], const uint8_t *sk,
                                 const uint8_t my_pk[FEDREC_PK_BYTES],
                                 const uint8_t peer_pk[FEDREC_PK_BYTES], const char *label,
                                 uint8_t point[FEDREC_KEY_BYTES]) {
  if (crypto_scalarmult(point, sk, peer_pk) != 0) { /* low-order peer key: all-zero point */
    sodium_memzero(point, crypto_scalarmult_BYTES);
    return FEDREC_ERR_ARG;
  }
  int mine_first = memcmp(my_pk, peer_pk, FEDREC_PK_BYTES) < 0;
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, FEDREC_KEY_BYTES);
  crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
  crypto_generichash_update(&st, point, crypto_scalarmult_BYTES);
  crypto_generichash_update(&st, mine_first ? my_pk : peer_pk, FEDREC_PK_BYTES);
  crypto_generichash_update(&st, mine_first ? peer_pk : my_pk, FEDREC_PK_BYTES);
  crypto_generichash_final(&st, key, FEDREC_KEY_BYTES);
  sodium_memzero(&st, sizeof st);
  sodium_memzero(point, crypto_scalarmult_BYTES);
  return FEDREC_OK;
}

static void put_le(uint8_t *p, uint64_t v, int n) {
  for (int k = 0; k < n; k++) p[k] = (uint8_t)(v >> (8 * k));
}

void fedrec_mask_key(uint8_t out[FEDREC_KEY_BYTES], const uint8_t seed[FEDREC_KEY_BYTES],
                     uint64_t session, int kind, uint32_t a, uint32_t b, uint32_t vector) {
  uint8_t msg[14 + 8 + 1 + 4 + 4 + 4];
  memcpy(msg, "fedrec-mask-v1", 14);
  put_le(msg + 14, session, 8);
  msg[22] = (uint8_t)kind;
  put_le(msg + 23, a, 4);
  put_le(msg + 27, b, 4);
  put_le(msg + 31, vector, 4);
  crypto_generichash(out, FEDREC_KEY_BYTES, msg, sizeof msg, seed, FEDREC_KEY_BYTES);
}

void fedrec_chacha20_keystream(uint8_t *out, size_t n, const uint8_t key[FEDREC_KEY_BYTES]) {
  static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
  crypto_stream_chacha20_ietf(out, n, nonce, key);
}

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "fedrec reads the keystream as little-endian 32-bit words: a little-endian host is required"
#endif

enum { MASK_CHUNK = 4096 }; /* words per keystream block: 16 KiB stays in cache */
static const uint8_t zeros[MASK_CHUNK * 4];

/* out[k] = (out[k] +- ks[k]) & mask over one chunk; an AVX2 copy is picked at load time on
 * machines that have it (integer adds only: the same words either way). */
FEDREC_CLONES_AVX2
static void fedrec__add_chunk(uint32_t *restrict out, const uint32_t *restrict ks, size_t m, int sign, uint32_t mask) {
  if (sign > 0)
    for (size_t k = 0; k < m; k++) out[k] = (out[k] + ks[k]) & mask;
  else
    for (size_t k = 0; k < m; k++) out[k] = (out[k] - ks[k]) & mask;
}

/* y[from, to) += x[from, to) (if x) and the keystreams with their signs, mod 2^bits. */
static void mask_range(uint32_t *y, const uint32_t *x, size_t from, size_t to, const uint8_t *keys, const int *signs,
                       size_t count, int bits) {
  static const uint8_t nonce[crypto_stream_chacha20_ietf_NONCEBYTES] = {0};
  uint32_t ks[MASK_CHUNK];
  uint32_t mask = bits >= 32 ? 0xffffffffu : ((1u << bits) - 1u);
  assert(from % 16 == 0);
  /* chunk by chunk, every key on a chunk while it is in cache: one pass over y, not count */
  for (size_t off = from; off < to; off += MASK_CHUNK) {
    size_t m = to - off < MASK_CHUNK ? to - off : MASK_CHUNK;
    if (x) fedrec__add_chunk(y + off, x + off, m, +1, mask);
    for (size_t j = 0; j < count; j++) {
      /* the keystream of words [off, off + m): 64-byte block counter off / 16 (from is a
       * multiple of 16 words, and so is every chunk start) */
      crypto_stream_chacha20_ietf_xor_ic((uint8_t *)ks, zeros, m * 4, nonce, (uint32_t)(off / 16),
                                         keys + j * FEDREC_KEY_BYTES);
      fedrec__add_chunk(y + off, ks, m, signs[j], mask);
    }
  }
  sodium_memzero(ks, sizeof ks);
}

void fedrec_mask_apply_range(uint32_t *y, size_t from, size_t to, const uint8_t *keys, const int *signs,
                             size_t count, int bits) {
  mask_range(y, NULL, from, to, keys, signs, count, bits);
}

void fedrec_mask_apply_many(uint32_t *y, size_t n, const uint8_t *keys, const int *signs, size_t count,
                            int bits) {
  mask_range(y, NULL, 0, n, keys, signs, count, bits);
}

void fedrec_mask_add_many(uint32_t *sum, const uint32_t *x, size_t n, const uint8_t *keys, const int *signs,
                          size_t count, int bits) {
  mask_range(sum, x, 0, n, keys, signs, count, bits);
}

void fedrec_mask_apply(uint32_t *y, size_t n, const uint8_t key[FEDREC_KEY_BYTES], int sign,
                       int bits) {
  fedrec_mask_apply_many(y, n, key, &sign, 1, bits);
}

static void aead_ad(uint8_t ad[32], uint64_t session, uint32_t sender, uint32_t recipient) {
  memcpy(ad, "fedrec-share-v1\0", 16);
  put_le(ad + 16, session, 8);
  put_le(ad + 24, sender, 4);
  put_le(ad + 28, recipient, 4);
}

size_t fedrec_seal(uint8_t *out, const uint8_t *m, size_t mlen, const uint8_t key[32],
                   uint64_t session, uint32_t sender, uint32_t recipient) {
  uint8_t ad[32];
  unsigned long long clen;
  aead_ad(ad, session, sender, recipient);
  randombytes_buf(out, FEDREC_AEAD_NONCE_BYTES);
  crypto_aead_xchacha20poly1305_ietf_encrypt(out + FEDREC_AEAD_NONCE_BYTES, &clen, m, mlen, ad,
                                             sizeof ad, NULL, out, key);
  return FEDREC_AEAD_NONCE_BYTES + (size_t)clen;
}

fedrec_status fedrec_open(uint8_t *m, const uint8_t *box, size_t boxlen, const uint8_t key[32],
                          uint64_t session, uint32_t sender, uint32_t recipient) {
  uint8_t ad[32];
  unsigned long long mlen;
  if (boxlen < FEDREC_AEAD_NONCE_BYTES + FEDREC_AEAD_TAG_BYTES) return FEDREC_ERR_PARSE;
  aead_ad(ad, session, sender, recipient);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(m, &mlen, NULL, box + FEDREC_AEAD_NONCE_BYTES,
                                                 boxlen - FEDREC_AEAD_NONCE_BYTES, ad, sizeof ad,
                                                 box, key) != 0)
    return FEDREC_ERR_PARSE;
  return FEDREC_OK;
}

fedrec_status fedrec_identity_new(fedrec_identity *id) {
  id->sk = fedrec_secret_alloc(FEDREC_SIGN_SK_BYTES);
  if (!id->sk) return FEDREC_ERR_NOMEM;
  crypto_sign_keypair(id->pk, id->sk);
  return FEDREC_OK;
}

void fedrec_identity_free(fedrec_identity *id) {
  if (!id) return;
  fedrec_secret_free(id->sk);
  id->sk = NULL;
}

void fedrec_sign(uint8_t sig[FEDREC_SIG_BYTES], const uint8_t *m, size_t mlen,
                 const fedrec_identity *id) {
  crypto_sign_detached(sig, NULL, m, mlen, id->sk);
}

fedrec_status fedrec_verify(const uint8_t sig[FEDREC_SIG_BYTES], const uint8_t *m, size_t mlen,
                            const uint8_t pk[FEDREC_SIGN_PK_BYTES]) {
  return crypto_sign_verify_detached(sig, m, mlen, pk) == 0 ? FEDREC_OK : FEDREC_ERR_PARSE;
}

/* The samplers ask for a few bytes at a time; one getrandom-backed refill per 4 KiB keeps
 * them from spending their time in system calls. Per thread, so threads never share. */
static _Thread_local struct {
  uint8_t b[4096];
  size_t left;
} pool;

static void csprng_bytes(void *ctx, void *buf, uint64_t n) {
  (void)ctx;
  uint8_t *out = buf;
  while (n > 0) {
    if (pool.left == 0) {
      randombytes_buf(pool.b, sizeof pool.b);
      pool.left = sizeof pool.b;
    }
    size_t m = n < pool.left ? (size_t)n : pool.left;
    uint8_t *src = pool.b + sizeof pool.b - pool.left;
    memcpy(out, src, m);
    sodium_memzero(src, m); /* used bytes never linger */
    out += m, n -= m, pool.left -= m;
  }
}

void fedrec_csprng(fedrec_entropy *out) {
  *out = (fedrec_entropy){csprng_bytes, NULL, 0}; /* exact samplers */
}

void fedrec_hash2(uint8_t out[32], const void *a, size_t alen, const void *b, size_t blen) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, 32);
  if (alen) crypto_generichash_update(&st, a, alen);
  if (blen) crypto_generichash_update(&st, b, blen);
  crypto_generichash_final(&st, out, 32);
}

fedrec_status fedrec_identity_from_seed(fedrec_identity *id, const uint8_t seed[32]) {
  id->sk = fedrec_secret_alloc(FEDREC_SIGN_SK_BYTES);
  if (!id->sk) return FEDREC_ERR_NOMEM;
  crypto_sign_seed_keypair(id->pk, id->sk, seed);
  return FEDREC_OK;
}

static void token_mac(uint8_t mac[16], const uint8_t secret[32], uint64_t id, uint64_t expiry) {
  char msg[80];
  int n = snprintf(msg, sizeof msg, "fedrec-token-v2:%llu:%llu", (unsigned long long)id, (unsigned long long)expiry);
  crypto_generichash(mac, 16, (const unsigned char *)msg, (size_t)n, secret, 32);
}

void fedrec_token_make(char out[FEDREC_TOKEN_MAX], const uint8_t secret[32], uint64_t id, uint64_t expiry) {
  uint8_t mac[16];
  token_mac(mac, secret, id, expiry);
  int n = snprintf(out, FEDREC_TOKEN_MAX, "%llu.%llu.", (unsigned long long)id, (unsigned long long)expiry);
  sodium_bin2hex(out + n, (size_t)(FEDREC_TOKEN_MAX - n), mac, sizeof mac);
  sodium_memzero(mac, sizeof mac);
}

/* A canonical decimal uint64 at s[*i..]: digits, no leading zero (but "0"), no overflow. */
static int token_number(const char *s, size_t len, size_t *i, uint64_t *out) {
  size_t start = *i;
  uint64_t v = 0;
  while (*i < len && s[*i] >= '0' && s[*i] <= '9') {
    uint64_t d = (uint64_t)(s[*i] - '0');
    if (v > (UINT64_MAX - d) / 10) return 0;
    v = v * 10 + d;
    (*i)++;
  }
  if (*i == start || (s[start] == '0' && *i - start > 1)) return 0;
  *out = v;
  return 1;
}

fedrec_token_verdict fedrec_token_check(const char *token, size_t len, const uint8_t secret[32], uint64_t now,
                                        uint64_t *id, uint64_t *expiry) {
  uint64_t v, exp;
  size_t i = 0;
  if (!token_number(token, len, &i, &v) || i >= len || token[i++] != '.') return FEDREC_TOKEN_INVALID;
  if (!token_number(token, len, &i, &exp) || i >= len || token[i++] != '.') return FEDREC_TOKEN_INVALID;
  if (len - i != 32) return FEDREC_TOKEN_INVALID;
  for (size_t k = i; k < len; k++) /* lower-case hex only: one spelling */
    if (!((token[k] >= '0' && token[k] <= '9') || (token[k] >= 'a' && token[k] <= 'f'))) return FEDREC_TOKEN_INVALID;
  uint8_t mac[16], want[16];
  size_t bin_len = 0;
  if (sodium_hex2bin(mac, sizeof mac, token + i, 32, NULL, &bin_len, NULL) != 0 || bin_len != 16) return FEDREC_TOKEN_INVALID;
  token_mac(want, secret, v, exp);
  int ok = sodium_memcmp(mac, want, 16) == 0;
  sodium_memzero(want, sizeof want);
  if (!ok) return FEDREC_TOKEN_INVALID;
  *id = v;
  *expiry = exp;
  return now >= exp ? FEDREC_TOKEN_EXPIRED : FEDREC_TOKEN_VALID;
}
