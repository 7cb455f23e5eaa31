/* Sends hostile and out-of-place requests to a running fedrec-coordinator and checks that each
 * gets its status code, then that nothing changed: the coordinator is still selecting round
 * 1 with model version 1, no round ran, the ledger is empty.
 *   rpc_probe HOST:PORT CA_PEM STATE_DIR
 * (STATE_DIR: the coordinator's, to mint tokens; the coordinator runs with cohort 10.) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "fedrec/secagg.h"
#include "rpc.h"

static grpc_channel *ch;
static int failures;
static uint64_t g_expiry; /* token_for: this expiry instead of a day from now */

static grpc_status_code call_raw(const char *method, const char *token, const void *req, size_t len,
                                 grpc_byte_buffer **resp, char *details, size_t cap) {
  grpc_byte_buffer *r = NULL;
  grpc_status_code st = fedrec_rpc_call_raw(ch, method, NULL, token, req, len, 10000, &r, details, cap);
  if (resp) *resp = r;
  else if (r) grpc_byte_buffer_destroy(r);
  return st;
}

static grpc_byte_buffer *expect(const char *what, const char *method, const char *token, const void *req, size_t len,
                                grpc_status_code want) {
  char details[512];
  grpc_byte_buffer *resp = NULL;
  grpc_status_code got = call_raw(method, token, req, len, &resp, details, sizeof details);
  int ok = got == want;
  printf("%-4s %-52s status %2d (want %2d) %s\n", ok ? "ok" : "FAIL", what, (int)got, (int)want, details);
  if (!ok) failures++;
  if (resp && got != GRPC_STATUS_OK) {
    grpc_byte_buffer_destroy(resp);
    resp = NULL;
  }
  return resp;
}

/* expect() for calls whose response is not needed. */
static void check(const char *what, const char *method, const char *token, const void *req, size_t len,
                  grpc_status_code want) {
  grpc_byte_buffer *r = expect(what, method, token, req, len, want);
  if (r) grpc_byte_buffer_destroy(r);
}

static size_t pack(const ProtobufCMessage *m, uint8_t *buf) {
  return protobuf_c_message_pack(m, buf);
}

static void token_for(const char *state, uint64_t id, char *out) {
  char path[600], hex[80] = "";
  snprintf(path, sizeof path, "%s/token.secret", state);
  FILE *f = fopen(path, "r");
  uint8_t secret[32];
  size_t n = 0;
  if (!f || !fgets(hex, sizeof hex, f) || sodium_hex2bin(secret, 32, hex, strlen(hex), "\n", &n, NULL) || n != 32) {
    fprintf(stderr, "rpc_probe: cannot read %s\n", path);
    exit(2);
  }
  fclose(f);
  fedrec_token_make(out, secret, id, g_expiry ? g_expiry : (uint64_t)time(NULL) + 86400);
  sodium_memzero(secret, sizeof secret);
}

int main(int argc, char **argv) {
  if (argc != 4 && !(argc == 6 && !strcmp(argv[4], "revoked"))) {
    fprintf(stderr, "usage: rpc_probe HOST:PORT CA_PEM STATE_DIR [revoked ID]\n");
    return 2;
  }
  if (fedrec_crypto_init()) return 2;
  grpc_init();
  char *ca = fedrec_rpc_read_text(argv[2]);
  grpc_channel_credentials *creds = grpc_ssl_credentials_create(ca, NULL, NULL, NULL);
  free(ca);
  ch = grpc_channel_create(argv[1], creds, NULL);
  grpc_channel_credentials_release(creds);
  char tok[16][FEDREC_TOKEN_MAX];
  for (int i = 1; i <= 11; i++) token_for(argv[3], (uint64_t)i, tok[i]);
  uint8_t buf[4096];
  size_t n;
  const char *CHECK_IN = fedrec_rpc_path(FEDREC_RPC_CHECK_IN);
  if (argc == 6) { /* after `fedrec-coordinator revoke --id ID`: that id's fresh token is refused */
    char t[FEDREC_TOKEN_MAX];
    token_for(argv[3], strtoull(argv[5], NULL, 10), t);
    Fedrec__V1__CheckInRequest q = FEDREC__V1__CHECK_IN_REQUEST__INIT;
    q.model_only = 1;
    n = pack(&q.base, buf);
    check("check-in with a revoked id's token", CHECK_IN, t, buf, n, GRPC_STATUS_UNAUTHENTICATED);
    check("check-in with another id's token", CHECK_IN, tok[1], buf, n, GRPC_STATUS_OK);
    grpc_channel_destroy(ch);
    grpc_shutdown();
    printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
  }

  /* health: no token needed */
  Grpc__Health__V1__HealthCheckRequest hq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  n = pack(&hq.base, buf);
  grpc_byte_buffer *r = expect("health check", fedrec_rpc_path(FEDREC_RPC_HEALTH_CHECK), NULL, buf, n, GRPC_STATUS_OK);
  Grpc__Health__V1__HealthCheckResponse *hr =
      (Grpc__Health__V1__HealthCheckResponse *)fedrec_rpc_unpack(&grpc__health__v1__health_check_response__descriptor, r);
  if (!hr || hr->status != GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
    printf("FAIL health: not SERVING\n");
    failures++;
  }
  if (hr) protobuf_c_message_free_unpacked(&hr->base, NULL);
  if (r) grpc_byte_buffer_destroy(r);
  hq.service = "no.such.Service";
  n = pack(&hq.base, buf);
  check("health check of an unknown service", fedrec_rpc_path(FEDREC_RPC_HEALTH_CHECK), NULL, buf, n, GRPC_STATUS_NOT_FOUND);

  /* authentication */
  Fedrec__V1__CheckInRequest cq = FEDREC__V1__CHECK_IN_REQUEST__INIT;
  cq.model_only = 1;
  n = pack(&cq.base, buf);
  check("check-in without a token", CHECK_IN, NULL, buf, n, GRPC_STATUS_UNAUTHENTICATED);
  check("check-in with a forged token", CHECK_IN, "1.00000000000000000000000000000000", buf, n, GRPC_STATUS_UNAUTHENTICATED);
  char other[FEDREC_TOKEN_MAX + 8];
  snprintf(other, sizeof other, "2%s", strchr(tok[1], '.'));
  check("check-in with another id's MAC", CHECK_IN, other, buf, n, GRPC_STATUS_UNAUTHENTICATED);
  check("check-in with garbage for a token", CHECK_IN, "x", buf, n, GRPC_STATUS_UNAUTHENTICATED);
  /* one spelling per token: a leading zero or upper-case hex is another string, refused */
  snprintf(other, sizeof other, "0%s", tok[1]);
  check("check-in with a leading zero on the id", CHECK_IN, other, buf, n, GRPC_STATUS_UNAUTHENTICATED);
  snprintf(other, sizeof other, "%s", tok[1]);
  for (char *q = strrchr(other, '.'); *q; q++) *q = (char)(*q >= 'a' && *q <= 'f' ? *q - 32 : *q);
  check("check-in with upper-case hex", CHECK_IN, other, buf, n, GRPC_STATUS_UNAUTHENTICATED);
  g_expiry = (uint64_t)time(NULL) - 1;
  token_for(argv[3], 1, other);
  g_expiry = 0;
  check("check-in with an expired token", CHECK_IN, other, buf, n, GRPC_STATUS_UNAUTHENTICATED);

  /* malformed messages and unknown methods */
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x08};
  check("malformed CheckInRequest", CHECK_IN, tok[1], junk, sizeof junk, GRPC_STATUS_INVALID_ARGUMENT);
  check("malformed GetPhaseInputRequest", fedrec_rpc_path(FEDREC_RPC_GET_PHASE_INPUT), tok[1], junk, sizeof junk,
         GRPC_STATUS_INVALID_ARGUMENT);
  check("unknown method", "/fedrec.v1.CoordinatorService/DropTables", tok[1], buf, 0, GRPC_STATUS_UNIMPLEMENTED);
  check("health Watch (not implemented)", fedrec_rpc_path(FEDREC_RPC_HEALTH_WATCH), NULL, buf, 0, GRPC_STATUS_UNIMPLEMENTED);

  /* wrong round or phase, before any round */
  Fedrec__V1__AdvertiseKeysRequest aq = FEDREC__V1__ADVERTISE_KEYS_REQUEST__INIT;
  aq.round = 1;
  aq.message.data = (uint8_t *)junk;
  aq.message.len = sizeof junk;
  n = pack(&aq.base, buf);
  check("advertise keys outside any round", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[1], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  Fedrec__V1__GetRoundInfoRequest rq = FEDREC__V1__GET_ROUND_INFO_REQUEST__INIT;
  rq.round = 7;
  n = pack(&rq.base, buf);
  check("round info for a round the client is not in", fedrec_rpc_path(FEDREC_RPC_GET_ROUND_INFO), tok[1], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  Fedrec__V1__GetPhaseInputRequest pq = FEDREC__V1__GET_PHASE_INPUT_REQUEST__INIT;
  pq.round = 1;
  pq.phase = FEDREC__V1__PHASE__PHASE_UNSPECIFIED;
  n = pack(&pq.base, buf);
  check("phase input of an unspecified phase", fedrec_rpc_path(FEDREC_RPC_GET_PHASE_INPUT), tok[1], buf, n,
         GRPC_STATUS_INVALID_ARGUMENT);
  Fedrec__V1__GetModelRequest mq = FEDREC__V1__GET_MODEL_REQUEST__INIT;
  mq.version = 99;
  n = pack(&mq.base, buf);
  check("a model version that is not served", fedrec_rpc_path(FEDREC_RPC_GET_MODEL), tok[1], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  mq.version = 1;
  mq.offset = 1ULL << 40;
  n = pack(&mq.base, buf);
  check("a model offset beyond its end", fedrec_rpc_path(FEDREC_RPC_GET_MODEL), tok[1], buf, n, GRPC_STATUS_INVALID_ARGUMENT);
  Fedrec__V1__GetCatalogueRequest gq = FEDREC__V1__GET_CATALOGUE_REQUEST__INIT;
  gq.version = 99;
  n = pack(&gq.base, buf);
  check("a catalogue version that is not served", fedrec_rpc_path(FEDREC_RPC_GET_CATALOGUE), tok[1], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  gq.version = 1;
  gq.offset = 1ULL << 40;
  n = pack(&gq.base, buf);
  check("a catalogue offset beyond its end", fedrec_rpc_path(FEDREC_RPC_GET_CATALOGUE), tok[1], buf, n,
         GRPC_STATUS_INVALID_ARGUMENT);
  gq.offset = 0;
  gq.max_bytes = 100;
  n = pack(&gq.base, buf);
  check("the first 100 bytes of the catalogue", fedrec_rpc_path(FEDREC_RPC_GET_CATALOGUE), tok[1], buf, n, GRPC_STATUS_OK);

  /* a message above the size cap (the coordinator runs with --max-message-mb 1) */
  size_t big = (size_t)2 << 20;
  uint8_t *huge = calloc(1, big + 16);
  aq.message.data = huge;
  aq.message.len = big;
  size_t hn = protobuf_c_message_get_packed_size(&aq.base);
  uint8_t *hb = malloc(hn);
  pack(&aq.base, hb);
  check("a 2 MiB message to a 1 MiB cap", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[1], hb, hn,
         GRPC_STATUS_RESOURCE_EXHAUSTED);
  /* without a token the message is never read: the same call is refused for its token */
  check("a 2 MiB message without a token", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), NULL, hb, hn,
         GRPC_STATUS_UNAUTHENTICATED);
  free(hb), free(huge);
  /* each method's own cap: a check-in needs a few bytes, not 100 KiB */
  uint8_t *unk = malloc(100 << 10);
  for (size_t k = 0; k + 2 <= (100 << 10); k += 2) unk[k] = 15 << 3, unk[k + 1] = 0; /* field 15, varint 0: unknown to every request */
  check("a 100 KiB CheckIn (cap 1 KiB)", CHECK_IN, tok[1], unk, 100 << 10, GRPC_STATUS_RESOURCE_EXHAUSTED);
  /* fields the method has no use for: refused, not kept (protobuf-c keeps unknown fields) */
  check("a CheckIn with an unknown field", CHECK_IN, tok[1], unk, 2, GRPC_STATUS_INVALID_ARGUMENT);
  check("a 3 KiB AdvertiseKeys of unknown fields", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[1], unk, 3 << 10,
         GRPC_STATUS_INVALID_ARGUMENT);
  free(unk);

  /* inside a round: ten clients check in (cohort 10), clients 2 and 3 misbehave, client 1
   * sends its messages out of place */
  cq.model_only = 0;
  n = pack(&cq.base, buf);
  for (int i = 1; i <= 10; i++) {
    r = expect("check-in", CHECK_IN, tok[i], buf, n, GRPC_STATUS_OK);
    if (r) grpc_byte_buffer_destroy(r);
  }
  rq.round = 1;
  n = pack(&rq.base, buf);
  r = expect("round info", fedrec_rpc_path(FEDREC_RPC_GET_ROUND_INFO), tok[1], buf, n, GRPC_STATUS_OK);
  Fedrec__V1__GetRoundInfoResponse *ri =
      (Fedrec__V1__GetRoundInfoResponse *)fedrec_rpc_unpack(&fedrec__v1__get_round_info_response__descriptor, r);
  if (r) grpc_byte_buffer_destroy(r);
  fedrec_round_info info;
  fedrec_error err = {0};
  if (!ri || !ri->info || fedrec_rpc_round_info_from_pb(&info, ri->info, &err)) {
    printf("FAIL round info: %s\n", err.msg);
    return 1;
  }
  protobuf_c_message_free_unpacked(&ri->base, NULL);
  aq.round = 1;
  aq.message.data = (uint8_t *)junk;
  aq.message.len = sizeof junk;
  n = pack(&aq.base, buf);
  check("malformed secure-aggregation keys", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[3], buf, n,
         GRPC_STATUS_INVALID_ARGUMENT);
  /* no honest client sends that: its sender is out of this round and of later selections */
  check("anything more from the member that sent it", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[3], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  fedrec_secagg_client *sc = fedrec_secagg_client_new(&info.secagg, info.cohort_index, NULL, NULL, &err);
  fedrec_sa_keys k;
  if (!sc || fedrec_secagg_client_advertise(sc, &k, &err)) {
    printf("FAIL secagg client: %s\n", err.msg);
    return 1;
  }
  uint8_t km[512];
  aq.message.data = km;
  aq.message.len = fedrec_sa_encode_keys(km, sizeof km, &k);
  n = pack(&aq.base, buf);
  check("keys sent with another member's token", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[2], buf, n,
         GRPC_STATUS_INVALID_ARGUMENT);
  check("keys from an outsider", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[11], buf, n, GRPC_STATUS_FAILED_PRECONDITION);
  check("keys for the wrong phase (masked input)", fedrec_rpc_path(FEDREC_RPC_SUBMIT_MASKED_INPUT), tok[1], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  check("keys", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[1], buf, n, GRPC_STATUS_OK);
  check("the same keys again (a replay)", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[1], buf, n,
         GRPC_STATUS_FAILED_PRECONDITION);
  aq.round = 2;
  n = pack(&aq.base, buf);
  check("keys for the wrong round", fedrec_rpc_path(FEDREC_RPC_ADVERTISE_KEYS), tok[1], buf, n, GRPC_STATUS_FAILED_PRECONDITION);
  fedrec_secagg_client_free(sc);
  grpc_channel_destroy(ch);
  grpc_shutdown();
  printf("%s: %d failure%s\n", failures ? "FAIL" : "PASS", failures, failures == 1 ? "" : "s");
  return failures ? 1 : 0;
}
