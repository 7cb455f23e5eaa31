/* Secure aggregation: SecAgg (Bonawitz et al. CCS 2017) over the sparse SecAgg+ graph
 * (Bell et al. CCS 2020), as explicit client and server state machines over message structs,
 * with no I/O, so that the coordinator, the client library and the simulator run the same code.
 *
 * Rounds:  0 advertise keys -> 1 share keys -> 2 masked input -> 3 consistency check
 *          (active variant only) -> 4 unmasking.
 * Each client u has k neighbours N(u) from a public per-session seed (a Harary graph over a
 * seeded permutation; the complete graph when k >= n - 1). u Shamir-shares its self-mask seed
 * b_u and its mask secret key t-of-k among N(u), and sends
 *     y_u = x_u + PRG(b_u) + sum_{v in N(u) alive at round 2} (+1 if u < v else -1) PRG(s_uv)
 * mod 2^bits. The server adds the y_u as they arrive (memory O(dim + n k)) and, at the end,
 * removes the masks using the shares that survivors reveal: b_u for every u that sent y_u,
 * the mask key of every neighbour that dropped after sharing. A client never reveals both
 * for one neighbour.
 *
 * Client ids are 0 .. n-1 (the cohort index); the Shamir evaluation point of client u is u+1. */
#ifndef FEDREC_SECAGG_H
#define FEDREC_SECAGG_H

#include <stdint.h>

#include "fedrec/crypto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FEDREC_SECAGG_MAX_CLIENTS (1u << 20)

typedef struct fedrec_secagg_params {
  uint64_t session;        /* bound into every derived key, box and signature */
  uint32_t n;              /* cohort size */
  uint32_t k;              /* neighbours per client (even, or >= n - 1: complete graph) */
  uint32_t t;              /* Shamir threshold among a client's neighbours, k/2 < t <= k */
  uint32_t bits;           /* arithmetic mod 2^bits, 1..32 */
  uint32_t dim;            /* vector length */
  int active;              /* signed keys and signed survivor lists (active adversary) */
  uint8_t graph_seed[32];  /* public, per session */
} fedrec_secagg_params;

/* Checks the parameters; the message says which is wrong. */
fedrec_status fedrec_secagg_check_params(const fedrec_secagg_params *p, fedrec_error *err);
/* The effective degree: min(k, n - 1). */
uint32_t fedrec_secagg_degree(const fedrec_secagg_params *p);
/* Neighbours of u, sorted ascending; out holds fedrec_secagg_degree(p) ids. */
void fedrec_secagg_neighbours(const fedrec_secagg_params *p, uint32_t u, uint32_t *out);

/* Chooses (k, t) for a cohort of n clients, an expected dropout rate and an assumed
 * fraction of dishonest clients colluding with the server: the smallest even k such that
 * (union bounds over clients, binomial tails)
 *   P(some client keeps fewer than t live neighbours) <= 2^-fail_bits        (correctness)
 *   P(some client has t or more dishonest neighbours) <= 2^-sec_bits         (privacy)
 * with k/2 < t. Falls back to the complete graph when that is smaller.
 * Reports the two probabilities actually reached (log2). */
typedef struct fedrec_secagg_choice {
  uint32_t k, t;
  double log2_fail, log2_insecure;
  int complete;
} fedrec_secagg_choice;
fedrec_status fedrec_secagg_choose(fedrec_secagg_choice *out, uint32_t n, double dropout,
                                   double dishonest, double fail_bits, double sec_bits,
                                   fedrec_error *err);
/* The two bounds (log2, capped at 0) for a given degree k (< n) and threshold t. */
void fedrec_secagg_bounds(uint32_t n, uint32_t k, uint32_t t, double dropout, double dishonest,
                          double *log2_fail, double *log2_insecure);

/* ---- messages ---- */

typedef struct fedrec_sa_keys { /* round 0, client -> server -> neighbours */
  uint32_t id;
  uint8_t c_pk[FEDREC_PK_BYTES]; /* encrypts shares */
  uint8_t s_pk[FEDREC_PK_BYTES]; /* pairwise masks */
  uint8_t sig[FEDREC_SIG_BYTES]; /* active: over (session, id, c_pk, s_pk) */
} fedrec_sa_keys;

typedef struct fedrec_sa_keylist { /* round 1 input: the keys of u's neighbours and u */
  uint32_t count;
  fedrec_sa_keys *keys;
} fedrec_sa_keylist;

#define FEDREC_SA_SHARE_PLAIN (4 + 4 + 2 * (4 + 8 * FEDREC_SHAMIR_CHUNKS))
#define FEDREC_SA_BOX_BYTES (FEDREC_SA_SHARE_PLAIN + FEDREC_AEAD_NONCE_BYTES + FEDREC_AEAD_TAG_BYTES)

typedef struct fedrec_sa_box { /* an encrypted pair of shares, from -> to */
  uint32_t from, to;
  uint8_t data[FEDREC_SA_BOX_BYTES];
} fedrec_sa_box;

typedef struct fedrec_sa_boxes { /* round 1 output (from u) and round 2 input (to u) */
  uint32_t count;
  fedrec_sa_box *boxes;
} fedrec_sa_boxes;

typedef struct fedrec_sa_masked { /* round 2 output */
  uint32_t id;
  uint32_t dim;
  uint32_t *y; /* dim values mod 2^bits, owned by the producer */
} fedrec_sa_masked;

typedef struct fedrec_sa_survivors { /* round 3/4 input: who sent a masked input */
  uint32_t count;
  uint32_t *ids;                   /* sorted ascending */
  struct fedrec_sa_signature *sigs; /* active, round 4: survivors' signatures over the list */
  uint32_t nsigs;
} fedrec_sa_survivors;

typedef struct fedrec_sa_signature { /* round 3 output, active variant */
  uint32_t id;
  uint8_t sig[FEDREC_SIG_BYTES];
} fedrec_sa_signature;

/* FEDREC_SA_REVEAL_EXCLUDED: the sender could not open of's share box, so it treated of as
 * dropped: it left their pairwise mask out of its input and holds no share of of. share.x is
 * the sender's point; share.y[0..3] carry the pair's 32-byte mask key (little endian), so the
 * server can remove of's half of that mask when of's input is in the sum. */
enum { FEDREC_SA_REVEAL_SELF = 1, FEDREC_SA_REVEAL_KEY = 2, FEDREC_SA_REVEAL_EXCLUDED = 3 };
typedef struct fedrec_sa_reveal {
  uint32_t of;  /* whose secret */
  int kind;     /* FEDREC_SA_REVEAL_SELF (b_of), FEDREC_SA_REVEAL_KEY (mask key of of) or _EXCLUDED */
  fedrec_share share;
} fedrec_sa_reveal;

typedef struct fedrec_sa_reveals { /* round 4 output */
  uint32_t id;
  uint32_t count;
  fedrec_sa_reveal *items;
} fedrec_sa_reveals;

/* ---- client ---- */

typedef struct fedrec_secagg_client fedrec_secagg_client;

/* identity and identity_pks (n public keys, indexed by id) are needed in the active variant
 * and borrowed for the client's lifetime. */
fedrec_secagg_client *fedrec_secagg_client_new(const fedrec_secagg_params *p, uint32_t id,
                                               const fedrec_identity *identity,
                                               const uint8_t (*identity_pks)[FEDREC_SIGN_PK_BYTES],
                                               fedrec_error *err);
void fedrec_secagg_client_free(fedrec_secagg_client *c);

fedrec_status fedrec_secagg_client_advertise(fedrec_secagg_client *c, fedrec_sa_keys *out,
                                             fedrec_error *err);
/* Checks the key list (threshold, itself present with its own keys, only neighbours, no
 * duplicates, signatures), then shares b_u and the mask key. out->boxes is owned by c. */
fedrec_status fedrec_secagg_client_share(fedrec_secagg_client *c, const fedrec_sa_keylist *in,
                                         fedrec_sa_boxes *out, fedrec_error *err);
/* Opens the boxes addressed to it (from neighbours that completed round 1), checks the
 * threshold, and masks x (dim values mod 2^bits). out->y is owned by c. */
fedrec_status fedrec_secagg_client_mask(fedrec_secagg_client *c, const fedrec_sa_boxes *in,
                                        const uint32_t *x, fedrec_sa_masked *out,
                                        fedrec_error *err);
/* The same masking, with the masked x added into sum (dim values mod 2^bits) instead of kept:
 * for a simulator that sums its clients' masked inputs itself (no masked vector is made). */
fedrec_status fedrec_secagg_client_mask_add(fedrec_secagg_client *c, const fedrec_sa_boxes *in,
                                            const uint32_t *x, uint32_t *sum, fedrec_error *err);
/* Frees the masked vector once it has been sent (it is dim x 4 bytes). */
void fedrec_secagg_client_release_masked(fedrec_secagg_client *c);
/* Active variant: checks the survivor list and signs it. */
fedrec_status fedrec_secagg_client_consistency(fedrec_secagg_client *c,
                                               const fedrec_sa_survivors *in,
                                               fedrec_sa_signature *out, fedrec_error *err);
/* Checks the survivor list (and, active, every survivor's signature on it), then reveals
 * b shares of live neighbours and mask-key shares of dead ones. out->items owned by c. */
fedrec_status fedrec_secagg_client_unmask(fedrec_secagg_client *c, const fedrec_sa_survivors *in,
                                          fedrec_sa_reveals *out, fedrec_error *err);

/* ---- server ---- */

typedef struct fedrec_secagg_server fedrec_secagg_server;

fedrec_secagg_server *fedrec_secagg_server_new(const fedrec_secagg_params *p,
                                               const uint8_t (*identity_pks)[FEDREC_SIGN_PK_BYTES],
                                               fedrec_error *err);
void fedrec_secagg_server_free(fedrec_secagg_server *s);

/* Each receive validates the message against the phase and the sender's history; a bad or
 * duplicate message is rejected with FEDREC_ERR_PARSE or FEDREC_ERR_ARG and changes nothing. */
fedrec_status fedrec_secagg_server_on_keys(fedrec_secagg_server *s, const fedrec_sa_keys *m,
                                           fedrec_error *err);
/* Closes round 0: needs, for every client that advertised, enough advertised neighbours. */
fedrec_status fedrec_secagg_server_close_keys(fedrec_secagg_server *s, fedrec_error *err);
/* The key list for client u (its advertised neighbours and itself); owned by s until the
 * next call. */
fedrec_status fedrec_secagg_server_keylist(fedrec_secagg_server *s, uint32_t u,
                                           fedrec_sa_keylist *out, fedrec_error *err);
fedrec_status fedrec_secagg_server_on_boxes(fedrec_secagg_server *s, uint32_t from,
                                            const fedrec_sa_boxes *m, fedrec_error *err);
fedrec_status fedrec_secagg_server_close_shares(fedrec_secagg_server *s, fedrec_error *err);
/* The boxes addressed to u; owned by s until the next call. */
fedrec_status fedrec_secagg_server_inbox(fedrec_secagg_server *s, uint32_t u,
                                         fedrec_sa_boxes *out, fedrec_error *err);
/* Adds y into the running sum. */
fedrec_status fedrec_secagg_server_on_masked(fedrec_secagg_server *s, const fedrec_sa_masked *m,
                                             fedrec_error *err);
/* Adds y, the sum mod 2^bits of the masked inputs of clients ids[0..n), as if each had been
 * given to fedrec_secagg_server_on_masked (the modular sum is associative): for simulators
 * that add inputs up on several machines. Rejected as a whole, changing nothing, if any id
 * did not share or was already counted, or a value is out of range. */
fedrec_status fedrec_secagg_server_on_masked_sum(fedrec_secagg_server *s, const uint32_t *ids, uint32_t n,
                                                 const uint32_t *y, uint32_t dim, fedrec_error *err);
fedrec_status fedrec_secagg_server_close_masked(fedrec_secagg_server *s, fedrec_error *err);
/* The survivor list (with signatures after round 3 in the active variant). */
fedrec_status fedrec_secagg_server_survivors(fedrec_secagg_server *s, fedrec_sa_survivors *out,
                                             fedrec_error *err);
fedrec_status fedrec_secagg_server_on_signature(fedrec_secagg_server *s,
                                                const fedrec_sa_signature *m, fedrec_error *err);
fedrec_status fedrec_secagg_server_close_consistency(fedrec_secagg_server *s, fedrec_error *err);
fedrec_status fedrec_secagg_server_on_reveals(fedrec_secagg_server *s, const fedrec_sa_reveals *m,
                                              fedrec_error *err);
/* Bytes the server holds now (sum, keys, boxes, shares, index), for capacity planning. */
size_t fedrec_secagg_server_memory(const fedrec_secagg_server *s);
/* Threads fedrec_secagg_server_finish uses to remove the masks (default 1: the caller's own),
 * each over its own range of coordinates; at most FEDREC_SECAGG_MAX_THREADS. */
#define FEDREC_SECAGG_MAX_THREADS 64
void fedrec_secagg_server_set_threads(fedrec_secagg_server *s, int threads);
/* Reconstructs the secrets and removes every mask: sum (dim) = sum of the survivors' x
 * mod 2^bits. Fails with a reason when some secret has fewer than t shares. */
fedrec_status fedrec_secagg_server_finish(fedrec_secagg_server *s, uint32_t *sum,
                                          uint32_t *n_summed, fedrec_error *err);
/* After a failed finish: the member (index + 1) whose secret could not be rebuilt because more
 * of its share boxes failed to open than the threshold allows (reported by the recipients in
 * round 4), or 0. */
uint32_t fedrec_secagg_server_culprit(const fedrec_secagg_server *s);

#ifdef __cplusplus
}
#endif
#endif

#ifndef FEDREC_SECAGG_WIRE_H
#define FEDREC_SECAGG_WIRE_H
#ifdef __cplusplus
extern "C" {
#endif
/* ---- wire encoding ----
 * A compact, versioned encoding (later carried in protobuf bytes fields): 4-byte header
 * 'F' 'S' version type, then little-endian fields; masked vectors bit-packed at `bits` bits
 * per value, LSB first, zero padding. Encoders return the encoded size; the message is
 * complete in out only when that size <= cap (call with out = NULL to size a buffer).
 * The encoding is canonical: decode then encode gives back the same bytes. Decoders check every length and count against
 * max_clients before allocating; the decoded message owns its arrays: release it with
 * fedrec_sa_msg_free. A decoded message is well-formed, not yet trusted: the state
 * machines above check its contents. */
enum {
  FEDREC_SA_WIRE_VERSION = 1,
  FEDREC_SA_MSG_KEYS = 1,
  FEDREC_SA_MSG_KEYLIST = 2,
  FEDREC_SA_MSG_BOXES = 3,
  FEDREC_SA_MSG_MASKED = 4,
  FEDREC_SA_MSG_SURVIVORS = 5,
  FEDREC_SA_MSG_SIGNATURE = 6,
  FEDREC_SA_MSG_REVEALS = 7,
};

typedef struct fedrec_sa_msg {
  int type;
  uint32_t bits; /* FEDREC_SA_MSG_MASKED */
  union {
    fedrec_sa_keys keys;
    fedrec_sa_keylist keylist;
    fedrec_sa_boxes boxes;
    fedrec_sa_masked masked;
    fedrec_sa_survivors survivors;
    fedrec_sa_signature signature;
    fedrec_sa_reveals reveals;
  } u;
} fedrec_sa_msg;

size_t fedrec_sa_encode_keys(uint8_t *out, size_t cap, const fedrec_sa_keys *m);
size_t fedrec_sa_encode_keylist(uint8_t *out, size_t cap, const fedrec_sa_keylist *m);
size_t fedrec_sa_encode_boxes(uint8_t *out, size_t cap, const fedrec_sa_boxes *m);
size_t fedrec_sa_encode_masked(uint8_t *out, size_t cap, const fedrec_sa_masked *m,
                               uint32_t bits);
size_t fedrec_sa_encode_survivors(uint8_t *out, size_t cap, const fedrec_sa_survivors *m);
size_t fedrec_sa_encode_signature(uint8_t *out, size_t cap, const fedrec_sa_signature *m);
size_t fedrec_sa_encode_reveals(uint8_t *out, size_t cap, const fedrec_sa_reveals *m);

fedrec_status fedrec_sa_decode(fedrec_sa_msg *m, const uint8_t *buf, size_t len,
                               uint32_t max_clients, uint32_t max_dim, fedrec_error *err);
void fedrec_sa_msg_free(fedrec_sa_msg *m);

/* Bit-packing of values < 2^bits (1 <= bits <= 32): out holds (n * bits + 7) / 8 bytes. */
void fedrec_pack_bits(uint8_t *out, const uint32_t *in, size_t n, uint32_t bits);
void fedrec_unpack_bits(uint32_t *out, const uint8_t *in, size_t n, uint32_t bits);

#ifdef __cplusplus
}
#endif
#endif
