/* Known-answer tests and properties of the secure-aggregation primitives. */
#include <math.h>
#include <sodium.h>

#include "fedrec/crypto.h"
#include "fedrec/enrol.h"
#include "test_util.h"

static void hex(uint8_t *out, const char *h) {
  for (size_t k = 0; h[2 * k]; k++) {
    unsigned v;
    sscanf(h + 2 * k, "%2x", &v);
    out[k] = (uint8_t)v;
  }
}

static int setup(void **state) {
  (void)state;
  return fedrec_crypto_init() == FEDREC_OK ? 0 : -1;
}

/* RFC 7748 section 6.1 */
static void test_x25519_rfc7748(void **state) {
  (void)state;
  uint8_t a[32], b[32], apk[32], bpk[32], k[32], out[32];
  hex(a, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  hex(apk, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
  hex(b, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  hex(bpk, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
  hex(k, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
  fedrec_kx_keypair ka, kb;
  assert_status(fedrec_kx_keypair_from_seed(&ka, a), FEDREC_OK);
  assert_status(fedrec_kx_keypair_from_seed(&kb, b), FEDREC_OK);
  assert_memory_equal(ka.pk, apk, 32);
  assert_memory_equal(kb.pk, bpk, 32);
  assert_int_equal(crypto_scalarmult(out, a, bpk), 0);
  assert_memory_equal(out, k, 32);
  /* the derived key is symmetric, label-dependent, and never the raw point */
  uint8_t k1[32], k2[32], k3[32];
  assert_status(fedrec_kx_agree(k1, ka.sk, ka.pk, kb.pk, "fedrec-test"), FEDREC_OK);
  assert_status(fedrec_kx_agree(k2, kb.sk, kb.pk, ka.pk, "fedrec-test"), FEDREC_OK);
  assert_status(fedrec_kx_agree(k3, kb.sk, kb.pk, ka.pk, "fedrec-other"), FEDREC_OK);
  assert_memory_equal(k1, k2, 32);
  assert_true(memcmp(k1, k3, 32) != 0);
  assert_true(memcmp(k1, k, 32) != 0);
  uint8_t zero[32] = {0};
  assert_status(fedrec_kx_agree(k1, ka.sk, ka.pk, zero, "fedrec-test"), FEDREC_ERR_ARG);
  fedrec_kx_keypair_free(&ka);
  fedrec_kx_keypair_free(&kb);
}

/* RFC 8439 section 2.4.2: the keystream at block counter 1 XORed with the plaintext. */
static void test_chacha20_rfc8439(void **state) {
  (void)state;
  uint8_t key[32], nonce[12], ct[114], out[114];
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)i;
  hex(nonce, "000000000000004a00000000");
  const char *pt = "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for "
                   "the future, sunscreen would be it.";
  hex(ct, "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
          "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
          "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
          "5af90bbf74a35be6b40b8eedf2785e42874d");
  assert_int_equal(strlen(pt), 114);
  crypto_stream_chacha20_ietf_xor_ic(out, (const uint8_t *)pt, 114, nonce, 1, key);
  assert_memory_equal(out, ct, 114);
}

/* Several masks in one pass: word by word the input plus each keystream with its sign, mod
 * 2^bits, computed here from the raw keystreams; and the same added into a running sum. */
static void test_mask_many(void **state) {
  (void)state;
  enum { KEYS = 5 };
  uint8_t keys[KEYS * 32];
  int signs[KEYS] = {+1, -1, -1, +1, -1};
  randombytes_buf(keys, sizeof keys);
  size_t n = 4096 * 3 + 5;
  uint32_t *ks = malloc(KEYS * n * 4), *x = malloc(n * 4), *y = malloc(n * 4);
  assert_non_null(ks), assert_non_null(x), assert_non_null(y);
  for (int j = 0; j < KEYS; j++) fedrec_chacha20_keystream((uint8_t *)(ks + j * n), n * 4, keys + 32 * j);
  randombytes_buf(x, n * 4);
  int bits_list[] = {1, 20, 32};
  for (int bi = 0; bi < 3; bi++) {
    uint32_t m = bits_list[bi] == 32 ? 0xffffffffu : (1u << bits_list[bi]) - 1;
    for (size_t k = 0; k < n; k++) y[k] = x[k] & m;
    fedrec_mask_apply_many(y, n, keys, signs, KEYS, bits_list[bi]);
    for (size_t k = 0; k < n; k++) {
      uint32_t want = x[k];
      for (int j = 0; j < KEYS; j++) want += signs[j] > 0 ? ks[j * n + k] : -ks[j * n + k];
      assert_int_equal(y[k], want & m);
    }
    /* the same masks with x added into a running sum: sum + x + masks */
    for (size_t k = 0; k < n; k++) y[k] = (uint32_t)(k * 2654435761u) & m;
    fedrec_mask_add_many(y, x, n, keys, signs, KEYS, bits_list[bi]);
    for (size_t k = 0; k < n; k++) {
      uint32_t want = (uint32_t)(k * 2654435761u) + x[k];
      for (int j = 0; j < KEYS; j++) want += signs[j] > 0 ? ks[j * n + k] : -ks[j * n + k];
      assert_int_equal(y[k], want & m);
    }
  }
  free(ks), free(x), free(y);
}

/* The mask PRG is the ChaCha20 keystream, word by word, mod 2^bits, across chunk edges. */
static void test_mask_matches_keystream(void **state) {
  (void)state;
  uint8_t key[32];
  randombytes_buf(key, sizeof key);
  size_t n = 4096 * 2 + 37; /* odd length over two chunk boundaries */
  uint32_t *ks = malloc(n * 4), *y = calloc(n, 4);
  fedrec_chacha20_keystream((uint8_t *)ks, n * 4, key);
  int bits_list[] = {1, 13, 16, 31, 32};
  for (int bi = 0; bi < 5; bi++) {
    int bits = bits_list[bi];
    uint32_t m = bits == 32 ? 0xffffffffu : (1u << bits) - 1;
    memset(y, 0, n * 4);
    fedrec_mask_apply(y, n, key, +1, bits);
    for (size_t k = 0; k < n; k++) assert_int_equal(y[k], ks[k] & m);
    fedrec_mask_apply(y, n, key, -1, bits); /* masks cancel exactly */
    for (size_t k = 0; k < n; k++) assert_int_equal(y[k], 0);
  }
  /* domain separation: each field of the derivation changes the key */
  uint8_t base[32], other[32];
  fedrec_mask_key(base, key, 7, FEDREC_MASK_PAIR, 1, 2, 0);
  fedrec_mask_key(other, key, 8, FEDREC_MASK_PAIR, 1, 2, 0);
  assert_true(memcmp(base, other, 32) != 0);
  fedrec_mask_key(other, key, 7, FEDREC_MASK_SELF, 1, 2, 0);
  assert_true(memcmp(base, other, 32) != 0);
  fedrec_mask_key(other, key, 7, FEDREC_MASK_PAIR, 2, 1, 0);
  assert_true(memcmp(base, other, 32) != 0);
  fedrec_mask_key(other, key, 7, FEDREC_MASK_PAIR, 1, 2, 1);
  assert_true(memcmp(base, other, 32) != 0);
  free(ks), free(y);
}

static void test_seal_open(void **state) {
  (void)state;
  uint8_t key[32], box[200], m[100], back[100];
  randombytes_buf(key, sizeof key);
  randombytes_buf(m, sizeof m);
  size_t n = fedrec_seal(box, m, sizeof m, key, 9, 3, 4);
  assert_int_equal(n, sizeof m + FEDREC_AEAD_NONCE_BYTES + FEDREC_AEAD_TAG_BYTES);
  assert_status(fedrec_open(back, box, n, key, 9, 3, 4), FEDREC_OK);
  assert_memory_equal(back, m, sizeof m);
  /* bound ids and session: a share relayed to another recipient or round does not open */
  assert_status(fedrec_open(back, box, n, key, 9, 4, 3), FEDREC_ERR_PARSE);
  assert_status(fedrec_open(back, box, n, key, 10, 3, 4), FEDREC_ERR_PARSE);
  for (size_t k = 0; k < n; k += 7) { /* any flipped bit is caught */
    box[k] ^= 1;
    assert_status(fedrec_open(back, box, n, key, 9, 3, 4), FEDREC_ERR_PARSE);
    box[k] ^= 1;
  }
  assert_status(fedrec_open(back, box, 10, key, 9, 3, 4), FEDREC_ERR_PARSE);
}

static void test_signatures(void **state) {
  (void)state;
  fedrec_identity id;
  assert_status(fedrec_identity_new(&id), FEDREC_OK);
  uint8_t sig[64], msg[] = "survivors: 1 2 3";
  fedrec_sign(sig, msg, sizeof msg, &id);
  assert_int_equal(fedrec_verify(sig, msg, sizeof msg, id.pk), FEDREC_OK);
  msg[12] = '9';
  assert_int_equal(fedrec_verify(sig, msg, sizeof msg, id.pk), FEDREC_ERR_PARSE);
  msg[12] = '1';
  sig[5] ^= 0x40;
  assert_int_equal(fedrec_verify(sig, msg, sizeof msg, id.pk), FEDREC_ERR_PARSE);
  fedrec_identity_free(&id);
}

/* Every t-subset of n shares reconstructs; t - 1 shares do not. */
static void test_shamir_subsets(void **state) {
  (void)state;
  for (int n = 1; n <= 7; n++)
    for (int t = 1; t <= n; t++) {
      uint8_t secret[32], back[32];
      randombytes_buf(secret, sizeof secret);
      uint32_t xs[7];
      fedrec_share sh[7], pick[7];
      for (int k = 0; k < n; k++) xs[k] = (uint32_t)(k * 3 + 1);
      assert_status(fedrec_shamir_split(sh, xs, n, t, secret), FEDREC_OK);
      for (unsigned mask = 0; mask < (1u << n); mask++) {
        if (__builtin_popcount(mask) != t) continue;
        int m = 0;
        for (int k = 0; k < n; k++)
          if (mask & (1u << k)) pick[m++] = sh[k];
        assert_status(fedrec_shamir_combine(back, pick, t), FEDREC_OK);
        assert_memory_equal(back, secret, 32);
        if (t >= 2) { /* t - 1 of them: wrong or rejected, never the secret */
          fedrec_status st = fedrec_shamir_combine(back, pick, t - 1);
          assert_true(st != FEDREC_OK || memcmp(back, secret, 32) != 0);
        }
      }
    }
}

static void test_shamir_errors(void **state) {
  (void)state;
  uint8_t secret[32] = {1}, back[32];
  uint32_t xs[3] = {1, 2, 2};
  fedrec_share sh[3];
  assert_status(fedrec_shamir_split(sh, xs, 3, 2, secret), FEDREC_ERR_ARG); /* repeated x */
  xs[2] = 0;
  assert_status(fedrec_shamir_split(sh, xs, 3, 2, secret), FEDREC_ERR_ARG); /* x = 0 */
  xs[2] = 3;
  assert_status(fedrec_shamir_split(sh, xs, 3, 4, secret), FEDREC_ERR_ARG); /* t > n */
  assert_status(fedrec_shamir_split(sh, xs, 3, 2, secret), FEDREC_OK);
  fedrec_share bad[2] = {sh[0], sh[0]};
  assert_status(fedrec_shamir_combine(back, bad, 2), FEDREC_ERR_PARSE); /* repeated x */
  bad[1] = sh[1];
  bad[1].y[3] = UINT64_MAX; /* out of the field */
  assert_status(fedrec_shamir_combine(back, bad, 2), FEDREC_ERR_PARSE);
  bad[1] = sh[1];
  /* a share shifted by 2^40 (Lagrange coefficient -1 here) moves the chunk out of 32 bits */
  bad[1].y[0] = (bad[1].y[0] + (1ULL << 40)) % 0x1fffffffffffffffULL;
  assert_status(fedrec_shamir_combine(back, bad, 2), FEDREC_ERR_PARSE);
  /* random garbage is caught with probability 1 - 2^-29 per chunk; over 200 trials */
  fedrec_rng r;
  fedrec_rng_seed(&r, 3, 3);
  int caught = 0;
  for (int k = 0; k < 200; k++) {
    bad[1] = sh[1];
    bad[1].y[k % 8] = fedrec_rng_u64(&r) % 0x1fffffffffffffffULL;
    caught += fedrec_shamir_combine(back, bad, 2) == FEDREC_ERR_PARSE;
  }
  assert_int_equal(caught, 200);
}

/* Tokens: a minted token checks, with its id and expiry; any change to the id, expiry or
 * MAC, another secret, a malformed or non-canonical spelling (leading zeros, upper-case hex,
 * an id past 2^64 that would wrap) does not; past its expiry it is reported expired. */
static void test_tokens(void **state) {
  (void)state;
  uint8_t secret[32] = {1, 2, 3}, other[32] = {9};
  char tok[FEDREC_TOKEN_MAX];
  fedrec_token_make(tok, secret, 1234567, 2000000000);
  uint64_t id = 0, exp = 0, now = 1800000000;
  assert_int_equal(fedrec_token_check(tok, strlen(tok), secret, now, &id, &exp), FEDREC_TOKEN_VALID);
  assert_true(id == 1234567 && exp == 2000000000);
  assert_int_equal(fedrec_token_check(tok, strlen(tok), secret, 2000000000, &id, &exp), FEDREC_TOKEN_EXPIRED);
  assert_int_equal(fedrec_token_check(tok, strlen(tok), other, now, &id, &exp), FEDREC_TOKEN_INVALID);
  char bad[FEDREC_TOKEN_MAX + 8];
  strcpy(bad, tok);
  bad[0] = '2'; /* another id, same MAC */
  assert_int_equal(fedrec_token_check(bad, strlen(bad), secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  strcpy(bad, tok);
  bad[8] = '3'; /* a later expiry, same MAC */
  assert_int_equal(fedrec_token_check(bad, strlen(bad), secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  strcpy(bad, tok);
  bad[strlen(bad) - 1] ^= 1;
  assert_int_equal(fedrec_token_check(bad, strlen(bad), secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  assert_int_equal(fedrec_token_check(tok, strlen(tok) - 1, secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  assert_int_equal(fedrec_token_check("", 0, secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  /* other spellings of the same genuine token */
  snprintf(bad, sizeof bad, "0%s", tok); /* a leading zero */
  assert_int_equal(fedrec_token_check(bad, strlen(bad), secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  strcpy(bad, tok);
  for (char *p = strrchr(bad, '.'); *p; p++) *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p); /* upper case */
  assert_true(strcmp(bad, tok) != 0);
  assert_int_equal(fedrec_token_check(bad, strlen(bad), secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  /* an id of 2^64 + 1234567 would wrap to 1234567 with unchecked arithmetic */
  snprintf(bad, sizeof bad, "18446744073710786183%s", strchr(tok, '.'));
  assert_int_equal(fedrec_token_check(bad, strlen(bad), secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
  /* the largest id is fine */
  fedrec_token_make(tok, secret, UINT64_MAX, 2000000000);
  assert_int_equal(fedrec_token_check(tok, strlen(tok), secret, now, &id, &exp), FEDREC_TOKEN_VALID);
  assert_true(id == UINT64_MAX);
  /* the old format (no expiry) is not accepted */
  assert_int_equal(fedrec_token_check("12.00000000000000000000000000000000", 35, secret, now, &id, &exp), FEDREC_TOKEN_INVALID);
}

/* Device certificates: issued and checked; a flipped byte anywhere, another authority, a wrong
 * length are refused; a cohort list is refused for a repeated client id or key, or when our own
 * index holds another key. */
static void test_certificates(void **state) {
  (void)state;
  fedrec_identity auth, other, dev[3];
  uint8_t s1[32] = {1}, s2[32] = {2};
  assert_int_equal(fedrec_identity_from_seed(&auth, s1), FEDREC_OK);
  assert_int_equal(fedrec_identity_from_seed(&other, s2), FEDREC_OK);
  uint8_t certs[4 * FEDREC_CERT_BYTES], pk[32], pks[4][32];
  for (int i = 0; i < 3; i++) {
    uint8_t sd[32] = {10, (uint8_t)i};
    assert_int_equal(fedrec_identity_from_seed(&dev[i], sd), FEDREC_OK);
    fedrec_cert_issue(certs + i * FEDREC_CERT_BYTES, 100 + (uint64_t)i, dev[i].pk, &auth);
  }
  uint64_t id = 0;
  fedrec_error err = {0};
  assert_int_equal(fedrec_cert_check(certs + FEDREC_CERT_BYTES, FEDREC_CERT_BYTES, auth.pk, &id, pk, &err), FEDREC_OK);
  assert_int_equal(id, 101);
  assert_memory_equal(pk, dev[1].pk, 32);
  for (int b = 0; b < FEDREC_CERT_BYTES; b++) {
    certs[b] ^= 0x10;
    assert_int_equal(fedrec_cert_check(certs, FEDREC_CERT_BYTES, auth.pk, NULL, NULL, &err), FEDREC_ERR_PARSE);
    certs[b] ^= 0x10;
  }
  assert_int_equal(fedrec_cert_check(certs, FEDREC_CERT_BYTES, other.pk, NULL, NULL, &err), FEDREC_ERR_PARSE);
  assert_int_equal(fedrec_cert_check(certs, FEDREC_CERT_BYTES - 1, auth.pk, NULL, NULL, &err), FEDREC_ERR_PARSE);
  assert_int_equal(fedrec_cert_cohort(certs, 3 * FEDREC_CERT_BYTES, 3, 2, dev[2].pk, auth.pk, pks, &err), FEDREC_OK);
  assert_memory_equal(pks[0], dev[0].pk, 32);
  assert_int_equal(fedrec_cert_cohort(certs, 3 * FEDREC_CERT_BYTES, 3, 1, dev[2].pk, auth.pk, pks, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "not ours"));
  assert_int_equal(fedrec_cert_cohort(certs, 3 * FEDREC_CERT_BYTES, 4, 0, dev[0].pk, auth.pk, pks, &err), FEDREC_ERR_PARSE);
  fedrec_cert_issue(certs + 3 * FEDREC_CERT_BYTES, 100, dev[2].pk, &auth); /* client 100 again, another key */
  assert_int_equal(fedrec_cert_cohort(certs, 4 * FEDREC_CERT_BYTES, 4, 0, dev[0].pk, auth.pk, pks, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "client id"));
  fedrec_cert_issue(certs + 3 * FEDREC_CERT_BYTES, 103, dev[1].pk, &auth); /* a new id, a key seen */
  assert_int_equal(fedrec_cert_cohort(certs, 4 * FEDREC_CERT_BYTES, 4, 0, dev[0].pk, auth.pk, pks, &err), FEDREC_ERR_PARSE);
  assert_non_null(strstr(err.msg, "identity key"));
  for (int i = 0; i < 3; i++) fedrec_identity_free(&dev[i]);
  fedrec_identity_free(&auth), fedrec_identity_free(&other);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tokens),
      cmocka_unit_test(test_x25519_rfc7748),  cmocka_unit_test(test_chacha20_rfc8439),
      cmocka_unit_test(test_mask_matches_keystream), cmocka_unit_test(test_mask_many), cmocka_unit_test(test_seal_open),
      cmocka_unit_test(test_signatures),      cmocka_unit_test(test_certificates),      cmocka_unit_test(test_shamir_subsets),
      cmocka_unit_test(test_shamir_errors),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
