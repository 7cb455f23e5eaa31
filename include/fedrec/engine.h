/* The coordinator's round engine: everything the coordinator decides, with no I/O of its own,
 * so that the gRPC server (fedrec-coordinator) and the simulator drive the same code.
 *
 * A transport calls in with what a client sent and the current time; the engine answers
 * with what to send back. Time is a caller-supplied millisecond clock; nothing here sleeps,
 * reads a socket or starts a thread. Persistence of published models goes through a
 * callback; the privacy ledger (SQLite) is the one durable store the engine writes, because
 * an entry must be durable before an aggregate is used.
 *
 * A round:
 *   selecting   clients check in; each is taken into the cohort (fixed size: the first
 *               `cohort`; Poisson: each with probability q) or told when to come back
 *   keys        cohort members fetch the round's parameters and advertise their keys
 *   shares      they fetch their neighbours' keys and send encrypted shares
 *   masked      they fetch the shares addressed to them and send their masked update
 *   unmask      they fetch the survivor list and reveal shares
 *   finish      the engine removes the masks, decodes the sum (distributed DP), appends the
 *               ledger entry durably, applies the server optimiser and publishes a signed,
 *               versioned model.
 * A phase closes when every client still in the round has answered, or at its deadline;
 * clients that miss it are dropped. Fewer than the threshold (or than min_survivors at the
 * end) aborts the round: nothing is released or recorded, and a new round starts.
 * Before a round starts, the engine checks that the round cannot push epsilon past the
 * ledger's budget (assuming the fewest survivors it would accept); when it could, training
 * stops and says why. */
#ifndef FEDREC_ENGINE_H
#define FEDREC_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/crypto.h"
#include "fedrec/ddp.h"
#include "fedrec/ledger.h"
#include "fedrec/model.h"
#include "fedrec/noise.h"
#include "fedrec/optimizer.h"
#include "fedrec/round.h"
#include "fedrec/secagg.h"

#ifdef __cplusplus
extern "C" {
#endif




typedef struct fedrec_engine_config {
  /* cohorts */
  uint32_t cohort;          /* target cohort size */
  double sampling_rate;     /* 0: fixed-size cohorts; in (0, 1]: Poisson sampling of check-ins */
  uint32_t min_cohort;      /* a Poisson round starts at the end of selection with at least this */
  uint32_t min_survivors;   /* a round with fewer survivors is aborted; the budget check uses it */
  uint64_t selection_ms;    /* selection window, from the first check-in: a Poisson cohort is
                             * drawn over it; a fixed cohort below min_cohort at its end waits
                             * while devices keep joining, and is released (its devices told
                             * why, to come back later) once none joined for this long */
  uint64_t phase_ms;        /* first deadline of each secure-aggregation phase, and the least */
  uint64_t max_phase_ms;    /* deadlines adapt per phase within [phase_ms, max_phase_ms]: twice
                             * as long after more devices than `dropout` missed one (and the
                             * later phases at least as long); otherwise 4x the time of the
                             * last answer, at most halved per round (300000; below
                             * phase_ms: fixed) */
  uint32_t max_aborts;      /* training stops after this many consecutive aborted rounds, saying
                             * what to change (10; 0: never). Released selections do not count,
                             * nor rounds a member spoiled (a banned culprit, a sum only an
                             * unclipped input explains): one token cannot stop training */
  uint32_t retry_ms;        /* clients not needed come back after this, jittered to [0.5, 1.5]x */
  uint32_t max_rounds;      /* 0: until the budget is spent */
  /* participation bound, by client id: a device takes part (sends a masked input) in at
   * most max_participation rounds (0: no bound), at least min_separation rounds apart (0 or
   * 1: any); devices past it are not selected (told to come back, as when not needed). It is
   * counted when the masked-input phase closes, persisted first through the participated
   * callback, and restored after a restart with fedrec_engine_restore_participation. With a
   * ledger that has a bound (fedrec_ledger_create_bounded) max_participation must be set and
   * at most the ledger's; it cannot be combined with Poisson sampling (sampling_rate). */
  uint32_t max_participation, min_separation;
  /* DP-FTRL (tree aggregation; docs/PRIVACY.md): > 0 turns it on. The model moves by the steps
   * of noisy prefix sums of the rounds' average updates; the coordinator adds discrete Gaussian
   * noise of std tree_noise_multiplier * clip / min_survivors to every node of a binary tree
   * over the rounds (exact, on a fine grid), on top of the devices' distributed noise. Each
   * round's ledger entry is followed by a tree entry: the public epsilon (model recipients)
   * gains from the tree, the operator's epsilon does not. A tree restarts every tree_rounds
   * rounds (and at a restart of the engine), and a device takes part at most once per tree.
   * Needs fixed-size cohorts, distributed noise and a ledger of format 4. */
  double tree_noise_multiplier;
  uint32_t tree_rounds;
  /* private popularity: the first popularity_rounds published rounds are count rounds (each
   * member sends the items of its history, clipped and noised as any update, accounted in the
   * ledger as any round); their noisy sums add up in the model's popularity, which the model
   * then has (fedrec_model_add_popularity; docs/MODEL.md). 0: none. Not with DP-FTRL. */
  uint32_t popularity_rounds;
  double popularity_noise_multiplier; /* count and spectral rounds' noise multiplier (0: noise_multiplier) */
  /* spectral round: > 0 makes the round after the count rounds one over the spectral_items
   * most popular items (by the model's popularity): members send their co-occurrence there
   * (fedrec_gram_update), and the noisy sum's leading eigenvectors, shrunk by the noise's
   * spectral edge, become those items' free embeddings (the others' are zeroed, the optimiser
   * restarts). Needs popularity_rounds >= 1 and a free embedding for every item. */
  uint32_t spectral_items;
  /* secure aggregation ((k, t) chosen per round). active: the malicious-server variant: every
   * member must present a device certificate from the enrolment authority whose public key is
   * authority_pk (include/fedrec/enrol.h) to join; keys and the survivor list are signed and
   * a consistency phase runs between the masked input and unmasking (docs/SECAGG.md). */
  int active;
  uint8_t authority_pk[FEDREC_SIGN_PK_BYTES];
  double dropout;           /* expected dropout rate, for choosing (k, t) */
  double dishonest;         /* assumed fraction of clients colluding with the server */
  double fail_bits;         /* P(a round fails for want of shares) <= 2^-fail_bits (20) */
  double sec_bits;          /* P(some client's secrets reachable by the colluders) <= 2^-sec_bits (40) */
  /* distributed DP */
  double clip;              /* L2 clip of each client's whole update */
  double noise_multiplier;  /* z: noise std in the sum of min_survivors clients is z * clip */
  int noise;                /* FEDREC_NOISE_SKELLAM (default) or FEDREC_NOISE_DGAUSS */
  uint32_t bits;            /* modulus 2^bits; 0: fewest bits for rounding_ratio */
  double p_wrap;            /* bound on the probability of a modular wrap-around */
  double rounding_ratio;    /* rounding error variance / noise variance, when choosing bits */
  double max_inflation;     /* sensitivity inflation by rounding allowed, when choosing bits (0.05) */
  /* server optimiser */
  int optimizer;            /* fedrec_optimizer: FEDREC_OPT_FEDAVG, FEDREC_OPT_FEDADAM, ... */
  double server_lr, momentum, beta1, beta2, adam_eps;
  /* what clients use to solve and differentiate (sent with the round) */
  float alpha0, reg;
  uint32_t local_steps;     /* client-side gradient steps per round (0 or 1: send the gradient) */
  float client_lr;          /* their step size (0: 1) */
  /* the catalogue the models belong to (a coordinator serving one): every model is signed
   * with its version and hash (fedrec_model_signed_message); 0: none (simulations) */
  int has_catalogue;
  fedrec_catalogue_ref catalogue;
  /* threads that remove the masks at the end of a round, each over a range of coordinates
   * (0 or 1: the thread that delivers the last message) */
  uint32_t unmask_threads;
  /* simulation only: no secure aggregation. A round goes straight to the masked-input phase,
   * where clients send their encoded update unmasked (fedrec_participant_plain); the
   * coordinator's sum mod 2^bits, and so everything after it, is bit-identical to what secure
   * aggregation of the same encodings gives. Never for deployments. */
  int plain;
  /* simulation only, with Skellam noise (plain or masked sums): clients add none and the
   * engine draws the sum's noise once per round, Skellam with the survivors' total variance
   * (a sum of independent Skellams is Skellam: the same distribution, one draw instead of one
   * per client), from sum_noise_entropy if set (so plain and masked runs draw alike), else
   * from the engine's source. Not bit-identical to the clients' own draws; discrete Gaussian
   * noise is always drawn by the clients (a sum of discrete Gaussians is not one). */
  int sum_noise;
  fedrec_entropy sum_noise_entropy;
  /* simulation only: central DP for comparison (DP-FedAvg with a trusted server). Clients add
   * no noise; the engine adds Gaussian noise of standard deviation noise_multiplier * clip to
   * each coordinate of the decoded sum (floating point: not for deployments) and the ledger
   * records a "gaussian" release whose multiplier is that over the rounded sum's sensitivity. */
  int central;
} fedrec_engine_config;

void fedrec_engine_defaults(fedrec_engine_config *c);
/* The smallest cohort for which secure aggregation meets its bounds at these assumptions
 * (0: none up to FEDREC_SECAGG_MAX_CLIENTS). */
uint32_t fedrec_engine_least_cohort(double dropout, double dishonest, double fail_bits, double sec_bits);



/* A published model: blob (fedrec_model_encode), its BLAKE2b-256 hash and the coordinator's
 * Ed25519 signature over "fedrec-model-v2" || version || hash || ledger entries || ledger head
 * (fedrec_model_signed_message; "fedrec-model-v3" with the catalogue's version and hash
 * appended, when the engine serves one): the privacy ledger as it stood when the model was
 * sealed, so that a device or an auditor shown a ledger can tell whether it is at least that
 * long, and the catalogue the model's rows belong to. */
typedef struct fedrec_published {
  uint64_t version;
  const uint8_t *blob;
  size_t len;
  uint8_t hash[32];
  uint8_t sig[FEDREC_SIG_BYTES];
  uint64_t ledger_entries; /* the ledger head the signature covers (0 and zeros: no ledger) */
  uint8_t ledger_head[32];
  int has_catalogue; /* the catalogue the signature covers, when it does */
  fedrec_catalogue_ref catalogue;
  /* what a restart needs to continue exactly: the next round's number, rounds done, and the
   * server optimiser's state (two vectors of `dim` floats) */
  uint64_t next_round, rounds_done;
  const float *opt1, *opt2;
  int64_t dim;
} fedrec_published;



typedef struct fedrec_round_stats {
  uint64_t round;
  uint32_t cohort, survivors, dropped[FEDREC_PHASES]; /* dropped at each phase's deadline */
  uint64_t bytes_in, phase_ms[FEDREC_PHASES];
  double epsilon;       /* cumulative, after this round (against the operator) */
  double epsilon_public; /* cumulative, against model recipients (DP-FTRL: lower) */
  double update_norm;   /* L2 norm of the decoded average update */
  fedrec_round_kind kind;
  uint32_t spectral_rank; /* a spectral round: directions above the noise's edge */
  int aborted;
  int released;         /* with aborted: a fixed cohort's selection that did not fill, released
                         * (nothing started; not a failed round) */
  char reason[640];     /* why a round aborted */
  const uint64_t *clients; /* the survivors' client ids (valid during the callback only) */
  uint32_t nclients;
} fedrec_round_stats;

typedef struct fedrec_engine_callbacks {
  void *ctx;
  /* A model is about to be served: persist it (return non-zero to refuse; the engine then
   * keeps serving the previous model and stops). */
  int (*publish)(void *ctx, const fedrec_published *m);
  /* A round finished or aborted. */
  void (*round_done)(void *ctx, const fedrec_round_stats *s);
  /* With a participation bound: the n clients whose masked inputs round holds took part;
   * persist it durably before returning (non-zero: it could not be, and the round is aborted
   * with nothing unmasked). */
  int (*participated)(void *ctx, uint64_t round, const uint64_t *clients, uint32_t n);
} fedrec_engine_callbacks;

typedef struct fedrec_engine fedrec_engine;

/* Takes ownership of model (its C stays borrowed). id signs models and is borrowed; ledger
 * (borrowed, may be NULL only without noise: noise_multiplier 0, for tests) records every
 * release. version: that of the initial model. entropy: NULL for the CSPRNG. */
fedrec_status fedrec_engine_new(fedrec_engine **out, const fedrec_engine_config *c,
                                 fedrec_model *model, uint64_t version, const fedrec_identity *id,
                                 fedrec_ledger *ledger, const fedrec_engine_callbacks *cb,
                                 const fedrec_entropy *entropy, fedrec_error *err);
void fedrec_engine_free(fedrec_engine *e);
/* After a restart: continue at next_round with the optimiser state saved with the model
 * (opt1/opt2 may be NULL: zeros). Only before the first check-in. */
fedrec_status fedrec_engine_restore(fedrec_engine *e, uint64_t next_round, uint64_t rounds_done,
                                    const float *opt1, const float *opt2, fedrec_error *err);

/* The catalogue changed between rounds: items appended (content: the new catalogue's items,
 * R.cols of them, and content, borrowed) or withdrawn, modalities added after the others
 * (fedrec_model_add_modalities: the head grows zero blocks), and/or the n_add items in
 * add_free get free embeddings (fedrec_model_grow: zero at first); every new parameter's
 * optimiser state starts at zero, the rest keeps its own. The model grows (new
 * items: the head alone unless listed) and is sealed and published as the next version,
 * signed with cat (after training stopped too: devices go on recommending with it). Later
 * rounds plan their DP parameters for the new parameter count. FEDREC_ERR_STATE during a
 * round or once a device has joined the next selection: try again later. An error changes
 * nothing. */
fedrec_status fedrec_engine_set_catalogue(fedrec_engine *e, const fedrec_dataset *content, const fedrec_catalogue_ref *cat,
                                          const int32_t *add_free, int32_t n_add, fedrec_error *err);
/* After a restart, before the first check-in: client took part count times, last in
 * last_round (what the participated callback persisted). */
fedrec_status fedrec_engine_restore_participation(fedrec_engine *e, uint64_t client, uint32_t count, uint64_t last_round,
                                                  fedrec_error *err);
/* How often client took part, and in which round last (0, 0: never; only tracked with a bound). */
void fedrec_engine_participation(const fedrec_engine *e, uint64_t client, uint32_t *count, uint64_t *last_round);
/* Replaces the callbacks (e.g. after a restart, once the resumed model need not be saved). */
void fedrec_engine_set_callbacks(fedrec_engine *e, const fedrec_engine_callbacks *cb);
/* The model being served. */
void fedrec_engine_model(const fedrec_engine *e, fedrec_published *out);
const fedrec_model *fedrec_engine_current_model(const fedrec_engine *e);
fedrec_phase fedrec_engine_phase(const fedrec_engine *e);
uint64_t fedrec_engine_round(const fedrec_engine *e);
uint64_t fedrec_engine_rounds_done(const fedrec_engine *e);
/* Why training stopped ("" while it runs). */
const char *fedrec_engine_stop_reason(const fedrec_engine *e);
/* The deadline of the current phase (selection: its end), or 0. */
uint64_t fedrec_engine_deadline(const fedrec_engine *e);

/* The DP parameters every round with a cohort of n uses for a model of dim parameters (all
 * but the round seed), as the engine derives them: bits, gamma, per-client noise. */
fedrec_status fedrec_engine_round_ddp(const fedrec_engine_config *c, int64_t dim, uint32_t n,
                                      fedrec_ddp_params *p, fedrec_error *err);
/* How many members of a cohort of n may collude with the server: ceil(dishonest n), the
 * assumption SecAgg+ is sized for (0 in central mode). Their noise shares are not credited:
 * the per-client noise is planned so that min_survivors minus these carry the whole noise,
 * and every ledger entry records them (fedrec_release.colluders). */
uint32_t fedrec_engine_colluders(const fedrec_engine_config *c, uint32_t n);
/* Planned epsilon at delta after `rounds` rounds with cohorts of n, each accounted as the
 * engine's budget check does (only min_survivors surviving, so only their noise): an upper
 * bound on what the ledger records when every round has at least min_survivors. INFINITY
 * without noise. With max_participation, at most that many rounds are composed (as a ledger
 * with that bound does, the costliest first). The first popularity_rounds of them are count
 * rounds over n_items (popularity_noise_multiplier). For calibrating a noise multiplier to a
 * target epsilon. */
fedrec_status fedrec_engine_plan_epsilon(double *eps, const fedrec_engine_config *c, int64_t dim,
                                         uint32_t n, uint64_t rounds, double delta, fedrec_error *err);
fedrec_status fedrec_engine_plan_epsilon_items(double *eps, const fedrec_engine_config *c, int64_t dim, int64_t n_items,
                                               uint32_t n, uint64_t rounds, double delta, fedrec_error *err);
/* The configuration a round of this kind runs with (count and spectral rounds: their own noise
 * multiplier). */
fedrec_engine_config fedrec_engine_kind_config(const fedrec_engine_config *c, fedrec_round_kind kind);
/* The kind of the round after rounds_done published ones, and its update length for a model of
 * dim parameters over n_items. */
fedrec_round_kind fedrec_engine_kind_of(const fedrec_engine_config *c, uint64_t rounds_done, int64_t dim, int64_t n_items,
                                        int64_t *len);
/* The same against model recipients: with DP-FTRL, the smaller of that and the tree's
 * (restarting every tree_rounds rounds); else equal to it. */
fedrec_status fedrec_engine_plan_public_epsilon(double *eps, const fedrec_engine_config *c, int64_t dim, uint32_t n,
                                                uint64_t rounds, double delta, fedrec_error *err);

/* A client (transport-level id, e.g. from its token) checks in. *accepted = 1: it is in the
 * cohort of *round and should fetch the round info; else come back after *retry_ms. */
fedrec_status fedrec_engine_checkin(fedrec_engine *e, uint64_t client, uint64_t now,
                                    int *accepted, uint64_t *round, uint32_t *retry_ms,
                                    fedrec_error *err);
/* The same with the device's certificate (cert, len: as received; NULL, 0: none). In active
 * mode a device joins a selection only with a certificate the authority signed for this very
 * client id (FEDREC_ERR_AUTH says what is wrong); otherwise the certificate is ignored. */
fedrec_status fedrec_engine_checkin_cert(fedrec_engine *e, uint64_t client, const uint8_t *cert, size_t len,
                                         uint64_t now, int *accepted, uint64_t *round, uint32_t *retry_ms,
                                         fedrec_error *err);
/* The round's parameters for a cohort member, once the round has started (else *retry_ms). */
fedrec_status fedrec_engine_round_info(fedrec_engine *e, uint64_t client, uint64_t round,
                                       uint64_t now, fedrec_round_info *out, uint32_t *retry_ms,
                                       fedrec_error *err);
/* A secure-aggregation message (wire encoding) for `phase` of `round`. FEDREC_ERR_STATE: not
 * this client's round, not the current phase, already answered, or dropped (nothing changes);
 * FEDREC_ERR_PARSE, FEDREC_ERR_LIMIT or FEDREC_ERR_ARG: malformed or rejected by the
 * secure-aggregation server, which no honest client causes: the member is dropped from the
 * round and left out of every later selection (fedrec_engine_banned). */
fedrec_status fedrec_engine_submit(fedrec_engine *e, uint64_t client, uint64_t round,
                                   fedrec_phase phase, const uint8_t *msg, size_t len,
                                   uint64_t now, fedrec_error *err);
/* The input of `phase` for this client (keys list, shares addressed to it, survivor list) as
 * a wire message in *out (malloc'd, the caller frees), once the phase has opened; until then
 * *out = NULL and *retry_ms says when to ask again. */
fedrec_status fedrec_engine_fetch(fedrec_engine *e, uint64_t client, uint64_t round,
                                  fedrec_phase phase, uint64_t now, uint8_t **out, size_t *len,
                                  uint32_t *retry_ms, fedrec_error *err);
/* Aggregators (docs/DEPLOY.md, "Aggregators"): processes that collect the masked inputs of a
 * share of the cohort, add them up mod 2^bits and submit one sum, so that the coordinator's
 * ingress per round is one vector per aggregator instead of one per device. Keys, shares and
 * unmasking stay here. The transport says how many are configured (n <= FEDREC_MAX_AGGREGATORS)
 * and which are live (live[k] for aggregator k + 1; NULL: none); a round that starts assigns
 * its members to the live ones in turn by cohort index, each with a random ticket
 * (FEDREC_TICKET_BYTES, in its round info) that it presents to its aggregator. A member with an
 * aggregator cannot send its masked input here (FEDREC_ERR_STATE); one its aggregator's sum does
 * not name is dropped at the phase's deadline, as any device that did not answer. */
#define FEDREC_MAX_AGGREGATORS 64
#define FEDREC_TICKET_BYTES 16
void fedrec_engine_set_aggregators(fedrec_engine *e, uint32_t n, const uint8_t *live);
/* What aggregator agg (1-based) collects in the current round: the members assigned to it, by
 * cohort index, their client ids and tickets. */
typedef struct fedrec_assignment {
  uint64_t round;
  int open;          /* the masked-input phase is open */
  uint64_t deadline; /* that phase's deadline, on the engine's clock (open only) */
  uint32_t cohort, dim, bits; /* the round's cohort size, masked-input length and modulus bits */
  uint32_t n;        /* members assigned */
  uint32_t *index;   /* malloc'd, n each */
  uint64_t *clients;
  uint8_t *tickets;  /* n x FEDREC_TICKET_BYTES, secure memory */
} fedrec_assignment;
/* FEDREC_ERR_EMPTY (out zeroed) when no round with members assigned to agg is running. Free
 * with fedrec_assignment_free. */
fedrec_status fedrec_engine_assignment(fedrec_engine *e, uint32_t agg, fedrec_assignment *out, fedrec_error *err);
void fedrec_assignment_free(fedrec_assignment *a);
/* Aggregator agg's sum (mod 2^bits, dim = the round's masked-input length) of the masked inputs
 * of clients (n), as if each had been submitted; bytes: what the coordinator received for it.
 * refused (nrefused): members whose message the aggregator found malformed, left out as
 * fedrec_engine_submit leaves out a malformed sender. Rejected as a whole, changing nothing,
 * when a client is not assigned to agg, not waiting to send its input, or named twice. An
 * aggregator may submit several sums a round (disjoint clients). */
fedrec_status fedrec_engine_submit_aggregate(fedrec_engine *e, uint32_t agg, uint64_t round, const uint64_t *clients,
                                             uint32_t n, const uint32_t *sum, uint32_t dim, uint64_t bytes,
                                             const uint64_t *refused, uint32_t nrefused, uint64_t now, fedrec_error *err);

/* 1 when the client was caught misbehaving (kept in memory: a restart forgets). */
int fedrec_engine_banned(const fedrec_engine *e, uint64_t client);
/* Advances on deadlines and completions; call it after every request and periodically. */
void fedrec_engine_tick(fedrec_engine *e, uint64_t now);

#ifdef __cplusplus
}
#endif
#endif
