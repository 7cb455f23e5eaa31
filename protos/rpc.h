/* Glue between protobuf-c messages and gRPC core byte buffers, shared by the client library
 * and the coordinator (see ../shared/docs/GRPC-C-GUIDE.md section 8). */
#ifndef FEDREC_RPC_H
#define FEDREC_RPC_H

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/status.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <protobuf-c/protobuf-c.h>

#include "fedrec/v1/coordinator.pb-c.h"
#include "grpc/health/v1/health.pb-c.h"

/* A new byte buffer holding m packed (the caller destroys it after the send completes). */
grpc_byte_buffer *fedrec_rpc_pack(const ProtobufCMessage *m);
/* Unpacks a received buffer (NULL buffer: an absent message); NULL when malformed. Decoding
 * may take at most twice the message's size plus FEDREC_RPC_UNPACK_SLACK bytes (unknown
 * fields cost protobuf-c many times their size); strict: a message with unknown fields is
 * refused (what a request has no use for). *why says what was wrong. Free the result with
 * protobuf_c_message_free_unpacked(m, NULL). */
#define FEDREC_RPC_UNPACK_SLACK (64 * 1024)
ProtobufCMessage *fedrec_rpc_unpack_checked(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb, int strict,
                                            const char **why);
/* The same, not strict (responses: a newer coordinator may add fields). */
ProtobufCMessage *fedrec_rpc_unpack(const ProtobufCMessageDescriptor *d, grpc_byte_buffer *bb);
/* "/fedrec.v1.CoordinatorService/CheckIn" etc.: the method paths, indexed like the service
 * descriptor's methods. */
extern const char *const FEDREC_RPC_METHODS[];
extern const int FEDREC_RPC_NMETHODS;
enum {
  FEDREC_RPC_CHECK_IN, FEDREC_RPC_GET_MODEL, FEDREC_RPC_GET_ROUND_INFO, FEDREC_RPC_GET_PHASE_INPUT,
  FEDREC_RPC_ADVERTISE_KEYS, FEDREC_RPC_SHARE_KEYS, FEDREC_RPC_SUBMIT_MASKED_INPUT, FEDREC_RPC_UNMASK,
  FEDREC_RPC_HEALTH_CHECK, FEDREC_RPC_HEALTH_WATCH
};
/* The round info between the engine's struct and the wire. to_pb points the message's
 * sub-messages at the given storage (no allocation). from_pb checks every field a hostile
 * coordinator could get wrong before the client uses it. */
#include "fedrec/round.h"
void fedrec_rpc_round_info_to_pb(Fedrec__V1__RoundInfo *out, Fedrec__V1__SecAggParams *sa,
                                 Fedrec__V1__DdpParams *dp, const fedrec_round_info *in,
                                 uint32_t phase_ms_left);
fedrec_status fedrec_rpc_round_info_from_pb(fedrec_round_info *out, const Fedrec__V1__RoundInfo *in,
                                            fedrec_error *err);
/* One blocking unary call with raw request bytes on a per-call pluck queue (guide section 7).
 * method: the path; handle: from grpc_channel_register_call for that path, or NULL. token:
 * sent as "authorization: Bearer <token>" (NULL: no metadata). On return *resp holds the
 * response (caller destroys; NULL when none) and details the status message. */
grpc_status_code fedrec_rpc_call_raw(grpc_channel *ch, const char *method, void *handle, const char *token,
                                     const void *req, size_t len, uint32_t timeout_ms,
                                     grpc_byte_buffer **resp, char *details, size_t cap);
/* The same with messages: packs req, unpacks the response with rd (INTERNAL when malformed). */
grpc_status_code fedrec_rpc_call(grpc_channel *ch, const char *method, void *handle, const char *token,
                                 const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
                                 uint32_t timeout_ms, ProtobufCMessage **resp, char *details, size_t cap);
/* The request message of each FEDREC_RPC_* method (health: the health request). */
extern const ProtobufCMessageDescriptor *const FEDREC_RPC_REQUESTS[];
/* One of the four secure-aggregation submissions (AdvertiseKeys, ShareKeys,
 * SubmitMaskedInput, Unmask): they share one request layout, {round, message}, and an empty
 * response. */
grpc_status_code fedrec_rpc_submit(grpc_channel *ch, int method, void *handle, const char *token,
                                   uint64_t round, const uint8_t *msg, size_t len, uint32_t timeout_ms,
                                   char *details, size_t cap);
/* "OK", "INVALID_ARGUMENT", ... */
const char *fedrec_rpc_code_name(grpc_status_code s);
/* Reads a whole text file (a PEM) into a NUL-terminated malloc'd string; NULL on failure. */
char *fedrec_rpc_read_text(const char *path);

#endif
