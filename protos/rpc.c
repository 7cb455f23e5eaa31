/* protobuf-c <-> gRPC byte buffers (see rpc.h). */
#include "rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const FEDREC_RPC_METHODS[] = {
    "/fedrec.v1.CoordinatorService/CheckIn",
    "/fedrec.v1.CoordinatorService/GetModel",
    "/fedrec.v1.CoordinatorService/GetRoundInfo",
    "/fedrec.v1.CoordinatorService/GetPhaseInput",
    "/fedrec.v1.CoordinatorService/AdvertiseKeys",
    "/fedrec.v1.CoordinatorService/ShareKeys",
    "/fedrec.v1.CoordinatorService/SubmitMaskedInput",
    "/fedrec.v1.CoordinatorService/Unmask",
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
};
const int FEDREC_RPC_NMETHODS = (int)(sizeof FEDREC_RPC_METHODS / sizeof *FEDREC_RPC_METHODS);

grpc_byte_buffer *fedrec_rpc_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice s = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(s));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&s, 1);
  grpc_slice_unref(s);
  return bb;
}

ProtobufCMessage *fedrec_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb) {
  if (!bb) return NULL;
  grpc_byte_buffer_reader r;
  if (!grpc_byte_buffer_reader_init(&r, bb)) return NULL;
  grpc_slice s = grpc_byte_buffer_reader_readall(&r);
  ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(s), GRPC_SLICE_START_PTR(s));
  grpc_slice_unref(s);
  grpc_byte_buffer_reader_destroy(&r);
  return m;
}

char *fedrec_rpc_read_text(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t len = 0, cap = 0;
  for (;;) {
    if (len + 4096 + 1 > cap) {
      cap = (cap ? cap * 2 : 8192);
      char *nb = realloc(buf, cap);
      if (!nb) {
        free(buf);
        fclose(f);
        return NULL;
      }
      buf = nb;
    }
    size_t got = fread(buf + len, 1, 4096, f);
    len += got;
    if (got < 4096) break;
  }
  int bad = ferror(f);
  fclose(f);
  if (bad || len > (1u << 20)) { /* a PEM larger than 1 MiB is not one */
    free(buf);
    return NULL;
  }
  buf[len] = 0;
  return buf;
}

void fedrec_rpc_round_info_to_pb(Fedrec__V1__RoundInfo *out, Fedrec__V1__SecAggParams *sa,
                                 Fedrec__V1__DdpParams *dp, const fedrec_round_info *in,
                                 uint32_t phase_ms_left) {
  fedrec__v1__round_info__init(out);
  fedrec__v1__sec_agg_params__init(sa);
  fedrec__v1__ddp_params__init(dp);
  out->round = in->round;
  out->model_version = in->model_version;
  out->cohort_index = in->cohort_index;
  out->alpha0 = in->alpha0;
  out->reg = in->reg;
  out->phase_ms_left = phase_ms_left;
  sa->session = in->secagg.session;
  sa->cohort_size = in->secagg.n;
  sa->neighbours = in->secagg.k;
  sa->threshold = in->secagg.t;
  sa->bits = in->secagg.bits;
  sa->dim = in->secagg.dim;
  sa->active = in->secagg.active;
  sa->graph_seed.data = (uint8_t *)in->secagg.graph_seed;
  sa->graph_seed.len = sizeof in->secagg.graph_seed;
  dp->dim = in->ddp.dim;
  dp->clip = in->ddp.clip;
  dp->gamma = in->ddp.gamma;
  dp->bits = in->ddp.bits;
  dp->beta = in->ddp.beta;
  dp->round_seed = in->ddp.round_seed;
  dp->noise = in->ddp.noise == FEDREC_NOISE_SKELLAM  ? FEDREC__V1__NOISE_KIND__NOISE_KIND_SKELLAM
              : in->ddp.noise == FEDREC_NOISE_DGAUSS ? FEDREC__V1__NOISE_KIND__NOISE_KIND_DISCRETE_GAUSSIAN
                                                      : FEDREC__V1__NOISE_KIND__NOISE_KIND_NONE;
  dp->sigma2_num = in->ddp.sigma2_num;
  dp->sigma2_den = in->ddp.sigma2_den;
  out->secagg = sa;
  out->ddp = dp;
}

fedrec_status fedrec_rpc_round_info_from_pb(fedrec_round_info *out, const Fedrec__V1__RoundInfo *in,
                                            fedrec_error *err) {
  memset(out, 0, sizeof *out);
  if (!in->secagg || !in->ddp) return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: parameters missing");
  const Fedrec__V1__SecAggParams *sa = in->secagg;
  const Fedrec__V1__DdpParams *dp = in->ddp;
  if (sa->graph_seed.len != sizeof out->secagg.graph_seed)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: graph seed of %zu bytes", sa->graph_seed.len);
  out->round = in->round;
  out->model_version = in->model_version;
  out->cohort_index = in->cohort_index;
  out->alpha0 = in->alpha0;
  out->reg = in->reg;
  out->secagg.session = sa->session;
  out->secagg.n = sa->cohort_size;
  out->secagg.k = sa->neighbours;
  out->secagg.t = sa->threshold;
  out->secagg.bits = sa->bits;
  out->secagg.dim = sa->dim;
  out->secagg.active = sa->active;
  memcpy(out->secagg.graph_seed, sa->graph_seed.data, sizeof out->secagg.graph_seed);
  out->ddp.dim = dp->dim;
  out->ddp.clip = dp->clip;
  out->ddp.gamma = dp->gamma;
  out->ddp.bits = dp->bits;
  out->ddp.beta = dp->beta;
  out->ddp.round_seed = dp->round_seed;
  out->ddp.noise = dp->noise == FEDREC__V1__NOISE_KIND__NOISE_KIND_SKELLAM            ? FEDREC_NOISE_SKELLAM
                   : dp->noise == FEDREC__V1__NOISE_KIND__NOISE_KIND_DISCRETE_GAUSSIAN ? FEDREC_NOISE_DGAUSS
                                                                                        : FEDREC_NOISE_NONE;
  out->ddp.sigma2_num = dp->sigma2_num;
  out->ddp.sigma2_den = dp->sigma2_den;
  fedrec_status s = fedrec_secagg_check_params(&out->secagg, err);
  if (s) return s;
  if (in->cohort_index >= sa->cohort_size)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: cohort index %u of %u", in->cohort_index, sa->cohort_size);
  if (dp->dim < 1 || fedrec_ddp_padded(dp->dim) != sa->dim || dp->bits != sa->bits || !(dp->clip > 0) ||
      !(dp->gamma > 0) || !(dp->beta > 0 && dp->beta < 1) || dp->dim > (1u << 28))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: inconsistent encoding parameters (dim %u, padded %u, bits %u/%u)",
                            dp->dim, sa->dim, dp->bits, sa->bits);
  if (out->ddp.noise != FEDREC_NOISE_NONE &&
      (dp->sigma2_den < 1 || dp->sigma2_num < 1 ||
       (out->ddp.noise == FEDREC_NOISE_SKELLAM ? dp->sigma2_num >= (1ULL << 40) || dp->sigma2_den >= (1ULL << 40)
                                               : dp->sigma2_num >= (1ULL << 32) || dp->sigma2_den >= (1u << 16))))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: noise variance %llu/%llu out of range",
                            (unsigned long long)dp->sigma2_num, (unsigned long long)dp->sigma2_den);
  if (!(in->alpha0 >= 0 && in->alpha0 < 1e6) || !(in->reg > 0 && in->reg < 1e6))
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "round info: alpha0 %g, reg %g out of range", in->alpha0, in->reg);
  return FEDREC_OK;
}
