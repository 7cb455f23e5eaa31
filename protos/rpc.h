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
/* The RPC methods, in one list from which the enum and the count are made:
 * X(NAME, name, service descriptor, method name in the .proto). The method paths and the
 * request and response types come from protoc-c's service descriptors (fedrec_rpc_path,
 * fedrec_rpc_request, fedrec_rpc_response), and the coordinator's handler table is made
 * from the same list (coordinator/handlers.c): a method added here without a handler does
 * not compile. */
#define FEDREC_RPC_MAP(X)                                                                        \
  X(CHECK_IN, check_in, fedrec__v1__coordinator_service__descriptor, "CheckIn")                 \
  X(GET_MODEL, get_model, fedrec__v1__coordinator_service__descriptor, "GetModel")              \
  X(GET_CATALOGUE, get_catalogue, fedrec__v1__coordinator_service__descriptor, "GetCatalogue")  \
  X(GET_ROUND_INFO, get_round_info, fedrec__v1__coordinator_service__descriptor, "GetRoundInfo") \
  X(GET_PHASE_INPUT, get_phase_input, fedrec__v1__coordinator_service__descriptor, "GetPhaseInput") \
  X(ADVERTISE_KEYS, advertise_keys, fedrec__v1__coordinator_service__descriptor, "AdvertiseKeys") \
  X(SHARE_KEYS, share_keys, fedrec__v1__coordinator_service__descriptor, "ShareKeys")           \
  X(SUBMIT_MASKED_INPUT, submit_masked_input, fedrec__v1__coordinator_service__descriptor, "SubmitMaskedInput") \
  X(UNMASK, unmask, fedrec__v1__coordinator_service__descriptor, "Unmask")                      \
  X(CONFIRM_SURVIVORS, confirm_survivors, fedrec__v1__coordinator_service__descriptor, "ConfirmSurvivors") \
  X(GET_ASSIGNMENT, get_assignment, fedrec__v1__aggregator_service__descriptor, "GetAssignment") \
  X(SUBMIT_AGGREGATE, submit_aggregate, fedrec__v1__aggregator_service__descriptor, "SubmitAggregate") \
  X(HEALTH_CHECK, health_check, grpc__health__v1__health__descriptor, "Check")                   \
  X(HEALTH_WATCH, health_watch, grpc__health__v1__health__descriptor, "Watch")

typedef enum fedrec_rpc_method {
#define FEDREC_RPC_ENUM(NAME, name, service, method) FEDREC_RPC_##NAME,
  FEDREC_RPC_MAP(FEDREC_RPC_ENUM)
#undef FEDREC_RPC_ENUM
  FEDREC_RPC_NMETHODS
} fedrec_rpc_method;
/* "/fedrec.v1.CoordinatorService/CheckIn" etc.; NULL for a value out of range. */
const char *fedrec_rpc_path(int m);
/* The method's request and response message types; NULL out of range. */
const ProtobufCMessageDescriptor *fedrec_rpc_request(int m);
const ProtobufCMessageDescriptor *fedrec_rpc_response(int m);
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
/* The wire's Phase for an engine phase (PHASE_UNSPECIFIED for one without a submission), and
 * back (-1 for a value that names none). The two numberings differ: the wire's values are
 * fixed (PHASE_CONSISTENCY came last), the engine's follow the order of a round. */
int fedrec_rpc_phase_to_pb(fedrec_phase phase);
int fedrec_rpc_phase_from_pb(int phase);
/* The submission of a phase's answer: KEYS -> AdvertiseKeys, SHARES -> ShareKeys, MASKED ->
 * SubmitMaskedInput, UNMASK -> Unmask; -1 for a phase with none. The coordinator's handlers
 * map back (coordinator/handlers.c). */
int fedrec_rpc_submission(fedrec_phase phase);
/* One of the four secure-aggregation submissions (AdvertiseKeys, ShareKeys,
 * SubmitMaskedInput, Unmask): they share one request layout, {round, message}, and an empty
 * response. */
grpc_status_code fedrec_rpc_submit(grpc_channel *ch, int method, void *handle, const char *token,
                                   uint64_t round, const uint8_t *msg, size_t len, uint32_t timeout_ms,
                                   char *details, size_t cap);
/* Aggregators (docs/DEPLOY.md): an assignment as an aggregator receives it, checked (indices
 * within the cohort, one ticket of 16 bytes per member, a sane length and modulus): FEDREC_OK,
 * else FEDREC_ERR_PARSE and why. */
fedrec_status fedrec_rpc_assignment_check(const Fedrec__V1__GetAssignmentResponse *r, fedrec_error *err);
/* The sum of a SubmitAggregate as the coordinator receives it: a masked-input message with id
 * 0 (sm: free with fedrec_sa_msg_free); a request that names no client has no sum (sm zeroed, not
 * FEDREC_SA_MSG_MASKED; FEDREC_OK). */
#include "fedrec/secagg.h"
fedrec_status fedrec_rpc_aggregate_sum(const Fedrec__V1__SubmitAggregateRequest *q, fedrec_sa_msg *sm, fedrec_error *err);
/* Server side: the one batch that answers a unary call (initial metadata, the response when
 * there is one, the status with details unless OK, and the close) under tag; the response
 * buffer stays the caller's until the batch completes. */
grpc_call_error fedrec_rpc_reply(grpc_call *call, grpc_byte_buffer *resp, grpc_status_code code, const char *details,
                                 int *cancelled, void *tag);
/* Server side: the value after "Bearer " of the call's "authorization" metadata (not
 * NUL-terminated; it belongs to the call); 0 when there is none. */
int fedrec_rpc_bearer(const grpc_metadata_array *md, const char **value, size_t *len);
/* "OK", "INVALID_ARGUMENT", ... */
const char *fedrec_rpc_code_name(grpc_status_code s);
/* Reads a whole text file (a PEM) into a NUL-terminated malloc'd string; NULL on failure. */
char *fedrec_rpc_read_text(const char *path);

#endif
