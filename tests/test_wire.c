/* Golden wire bytes: every message format we encode ourselves (the SecAgg messages, the round
 * info a device receives, the model blob, the message a model signature covers), built from
 * fixed contents and compared byte for byte with tests/data/wire_golden.txt. A change to any
 * encoding fails here; if the change is meant (a new wire version), regenerate the file with
 * `test_wire --print > tests/data/wire_golden.txt` and say so in the commit.
 * Sizes are fixed so that the file stays small: short vectors, a three-member cohort. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"
#include "fedrec/model.h"
#include "fedrec/round.h"
#include "fedrec/secagg.h"

#ifndef FEDREC_SOURCE_DIR
#define FEDREC_SOURCE_DIR "."
#endif

static char *out_text;
static size_t out_len, out_cap;

static void emit(const char *name, const uint8_t *b, size_t n) {
  size_t need = out_len + strlen(name) + 2 * n + 3;
  if (need > out_cap) {
    out_cap = need * 2;
    char *p = realloc(out_text, out_cap);
    if (!p) abort();
    out_text = p;
  }
  out_len += (size_t)sprintf(out_text + out_len, "%s ", name);
  for (size_t i = 0; i < n; i++) out_len += (size_t)sprintf(out_text + out_len, "%02x", b[i]);
  out_len += (size_t)sprintf(out_text + out_len, "\n");
}

static void fill(uint8_t *b, size_t n, uint8_t start) {
  for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(start + 7 * i);
}

static void emit_encoded(const char *name, size_t (*size_of)(uint8_t *, size_t, const void *), const void *m) {
  size_t n = size_of(NULL, 0, m);
  uint8_t *b = malloc(n ? n : 1);
  if (!b || size_of(b, n, m) != n) abort();
  emit(name, b, n);
  free(b);
}

#define ENC(fn, type) \
  static size_t fn##_any(uint8_t *o, size_t c, const void *m) { return fn(o, c, (const type *)m); }
ENC(fedrec_sa_encode_keys, fedrec_sa_keys)
ENC(fedrec_sa_encode_keylist, fedrec_sa_keylist)
ENC(fedrec_sa_encode_boxes, fedrec_sa_boxes)
ENC(fedrec_sa_encode_survivors, fedrec_sa_survivors)
ENC(fedrec_sa_encode_signature, fedrec_sa_signature)
ENC(fedrec_sa_encode_reveals, fedrec_sa_reveals)
static uint32_t masked_bits;
static size_t masked_any(uint8_t *o, size_t c, const void *m) {
  return fedrec_sa_encode_masked(o, c, (const fedrec_sa_masked *)m, masked_bits);
}

static void secagg_messages(void) {
  fedrec_sa_keys keys[3];
  for (uint32_t i = 0; i < 3; i++) {
    keys[i].id = i;
    fill(keys[i].c_pk, sizeof keys[i].c_pk, (uint8_t)(1 + i));
    fill(keys[i].s_pk, sizeof keys[i].s_pk, (uint8_t)(50 + i));
    fill(keys[i].sig, sizeof keys[i].sig, (uint8_t)(100 + i));
  }
  emit_encoded("sa_keys", fedrec_sa_encode_keys_any, &keys[1]);
  fedrec_sa_keylist kl = {3, keys};
  emit_encoded("sa_keylist", fedrec_sa_encode_keylist_any, &kl);
  fedrec_sa_box box[2] = {{0, 1, {0}}, {0, 2, {0}}};
  fill(box[0].data, sizeof box[0].data, 3);
  fill(box[1].data, sizeof box[1].data, 9);
  fedrec_sa_boxes bx = {2, box};
  emit_encoded("sa_boxes", fedrec_sa_encode_boxes_any, &bx);
  uint32_t y[11];
  for (uint32_t i = 0; i < 11; i++) y[i] = (i * 2654435761u) & 0xfffffu;
  fedrec_sa_masked mk = {2, 11, y};
  masked_bits = 20;
  emit_encoded("sa_masked_20", masked_any, &mk);
  for (uint32_t i = 0; i < 11; i++) y[i] = i * 2654435761u;
  masked_bits = 32;
  emit_encoded("sa_masked_32", masked_any, &mk);
  fedrec_sa_signature sg[2] = {{0, {0}}, {2, {0}}};
  fill(sg[0].sig, sizeof sg[0].sig, 11);
  fill(sg[1].sig, sizeof sg[1].sig, 13);
  emit_encoded("sa_signature", fedrec_sa_encode_signature_any, &sg[1]);
  uint32_t ids[2] = {0, 2};
  fedrec_sa_survivors sv = {2, ids, NULL, 0};
  emit_encoded("sa_survivors", fedrec_sa_encode_survivors_any, &sv);
  sv.sigs = sg;
  sv.nsigs = 2;
  emit_encoded("sa_survivors_signed", fedrec_sa_encode_survivors_any, &sv);
  fedrec_sa_reveal rv[3];
  int kinds[3] = {FEDREC_SA_REVEAL_SELF, FEDREC_SA_REVEAL_KEY, FEDREC_SA_REVEAL_EXCLUDED};
  for (int i = 0; i < 3; i++) {
    rv[i].of = (uint32_t)i;
    rv[i].kind = kinds[i];
    rv[i].share.x = (uint32_t)(i + 1);
    for (int c = 0; c < FEDREC_SHAMIR_CHUNKS; c++) rv[i].share.y[c] = 0x0123456789abcdefull * (uint64_t)(i + c + 1);
  }
  fedrec_sa_reveals rs = {1, 3, rv};
  emit_encoded("sa_reveals", fedrec_sa_encode_reveals_any, &rs);
}

static void round_info(void) {
  fedrec_round_info ri;
  memset(&ri, 0, sizeof ri);
  ri.round = 17;
  ri.model_version = 16;
  ri.cohort_index = 5;
  ri.secagg = (fedrec_secagg_params){0x1122334455667788ull, 60, 20, 11, 20, 4096, 1, {0}};
  fill(ri.secagg.graph_seed, 32, 77);
  ri.ddp = (fedrec_ddp_params){3000, 1.0, 0.0625, 20, 0.6065306597126334, 0xfeedfacecafebeefull, 1, 123456789, 1000};
  ri.alpha0 = 0.3f;
  ri.reg = 0.003f;
  ri.local_steps = 2;
  ri.client_lr = 0.5f;
  ri.deadline_ms = 987654;
  Fedrec__V1__RoundInfo pb;
  Fedrec__V1__SecAggParams sa;
  Fedrec__V1__DdpParams dp;
  fedrec_rpc_round_info_to_pb(&pb, &sa, &dp, &ri, 4321);
  size_t n = protobuf_c_message_get_packed_size(&pb.base);
  uint8_t *b = malloc(n);
  if (!b || protobuf_c_message_pack(&pb.base, b) != n) abort();
  emit("round_info", b, n);
  free(b);
}

static void model_blob(void) {
  enum { ITEMS = 5, D = 3, P = 4 };
  float C[ITEMS * P];
  for (int i = 0; i < ITEMS * P; i++) C[i] = (float)i / 8.0f - 1.0f;
  int32_t free_items[2] = {4, 1};
  fedrec_model m;
  fedrec_error err;
  if (fedrec_model_init(&m, ITEMS, D, C, P, 1, free_items, 2, 99, 0.1f, &err)) abort();
  size_t n = fedrec_model_encoded_size(&m);
  uint8_t *b = malloc(n);
  if (!b) abort();
  fedrec_model_encode(b, &m, 42);
  emit("model_blob", b, n);
  uint8_t hash[32], head[32], msg[FEDREC_MODEL_SIGNED_BYTES];
  fill(hash, 32, 5);
  fill(head, 32, 200);
  emit("model_signed_message", msg, fedrec_model_signed_message(msg, 42, hash, 9, head, NULL));
  fedrec_catalogue_ref cat = {7, {0}};
  fill(cat.hash, 32, 77);
  emit("model_signed_message_v3", msg, fedrec_model_signed_message(msg, 42, hash, 9, head, &cat));
  free(b);
  fedrec_model_free(&m);
}

int main(int argc, char **argv) {
  secagg_messages();
  round_info();
  model_blob();
  if (argc > 1 && !strcmp(argv[1], "--print")) {
    fwrite(out_text, 1, out_len, stdout);
    free(out_text);
    return 0;
  }
  const char *path = FEDREC_SOURCE_DIR "/tests/data/wire_golden.txt";
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "test_wire: cannot open %s\n", path);
    return 1;
  }
  char *want = malloc(out_len + 2);
  size_t got = want ? fread(want, 1, out_len + 1, f) : 0;
  fclose(f);
  int ok = want && got == out_len && memcmp(want, out_text, out_len) == 0;
  if (!ok) {
    /* name the first message that differs */
    const char *a = out_text, *b = want ? want : "";
    size_t i = 0;
    while (i < out_len && i < got && a[i] == b[i]) i++;
    size_t s = i;
    while (s > 0 && a[s - 1] != '\n') s--;
    fprintf(stderr, "test_wire: encodings differ from %s at byte %zu, in the line starting \"%.40s\"\n", path, i,
            a + s);
  } else {
    printf("test_wire: %zu bytes of encodings as in %s\n", out_len, path);
  }
  free(want);
  free(out_text);
  return ok ? 0 : 1;
}
