/* The round engine's state and what its parts share (internal to coordinator/):
 *   engine.c         lifecycle: configuration checks, the model sealed and published
 *   engine_cohort.c  the cohort's members (a hash table), the Poisson coin, the ban list
 *   engine_dp.c      DP round planning: the DP parameters of a round, its ledger release
 *   engine_calls.c   what a device asks: check in, round info, submissions, phase inputs
 *   engine_aggregators.c  aggregators: assignments, tickets, the sums they (and simulators) submit
 *   engine_participation.c  the participation bound: who took part how often, and when last
 *   engine_tree.c    DP-FTRL: the tree's exact prefix sums and node noise
 *   engine_round.c   the phase machine: selection, phases and deadlines, the round's end
 * The optimizer is in core/optimizer.c. */
#ifndef FEDREC_ENGINE_INTERNAL_H
#define FEDREC_ENGINE_INTERNAL_H

#include "fedrec/engine.h"

enum { DROPPED = -1 };

/* DP-FTRL's tree (engine_tree.c): the exact prefix sum of the current tree's rounded leaves,
 * the last noisy prefix sum, and each level's current node noise (grid units) */
enum { FEDREC_TREE_LEVELS = 32 };
typedef struct fedrec_tree {
  uint64_t start;  /* the round the current tree started at: a device that took part in it since is not selected */
  uint64_t leaf;   /* its leaves so far */
  double z;        /* its noise multiplier (what its ledger entries record) */
  int fresh;       /* no step taken in it yet: the sums are zeroed at the first */
  int64_t dim;
  int64_t *sum, *prev;
  int32_t *node[FEDREC_TREE_LEVELS];
  uint64_t node_k[FEDREC_TREE_LEVELS];
  size_t node_dim[FEDREC_TREE_LEVELS]; /* each node's length (to wipe it) */
} fedrec_tree;

typedef struct member {
  uint64_t client;
  int done;       /* the last phase it answered (0: none yet), or DROPPED */
  int dropped_at; /* the phase whose deadline it missed; BANNED_AT: left out for a bad message */
  uint32_t agg;   /* the aggregator its masked input goes to (1-based; 0: this engine) */
} member;

enum { BANNED_AT = FEDREC_PHASES };

/* A device that took part: how often, and in which round last (count 0: an empty slot). */
typedef struct participation {
  uint64_t client;
  uint32_t count;
  uint64_t last;
} participation;

struct fedrec_engine {
  fedrec_engine_config c;
  fedrec_model model;
  uint64_t version;
  uint8_t *blob;
  size_t len;
  uint8_t hash[32], sig[FEDREC_SIG_BYTES];
  uint64_t ledger_entries; /* the ledger head the served model's signature covers */
  uint8_t ledger_head[32];
  const fedrec_identity *id;
  fedrec_ledger *ledger;
  fedrec_engine_callbacks cb;
  fedrec_entropy ent;
  int64_t dim;            /* parameters */
  int64_t rdim;           /* the current round's update length: dim, or n_items in a count round */
  int64_t bufdim;         /* what avg, modsum and work hold (padded): at least rdim */
  float *x, *m1, *m2;     /* parameters and optimiser state */
  uint32_t *modsum;       /* padded */
  double *work;           /* padded */
  float *avg;             /* bufdim */
  fedrec_phase phase;
  uint64_t round, rounds_done, deadline, phase_start;
  member *members;
  uint32_t n, cap;
  uint32_t *slots; /* open addressing: client -> member index + 1 (0: empty) */
  uint32_t nslots; /* a power of two >= 2 cap */
  fedrec_secagg_server *sa;
  fedrec_round_info info; /* shared part; cohort_index is filled per client */
  fedrec_round_stats stats;
  char stop[640];
  /* members caught sending what no honest client sends: left out of later selections
   * (open addressing on client id + 1; 0: empty; at most MAX_BANNED, then no more) */
  uint64_t *banned;
  uint32_t nbanned, bslots;
  /* Poisson selection: one coin per (device, round), a keyed PRF of both, so checking in
   * again never draws again; the key is drawn once from the engine's entropy */
  uint8_t coin_key[FEDREC_KEY_BYTES];
  int overflow; /* more devices sampled than the cohort cap: the round will not run */
  /* adaptive deadlines: each phase's current one, in [phase_ms, max_phase_ms] */
  uint64_t phase_dl[FEDREC_PHASES];
  uint32_t aborts;       /* consecutive aborted rounds (releases at selection not counted) */
  uint32_t late_aborts;  /* of those, how many ended at a deadline the devices did not meet */
  uint64_t last_join;     /* when the last device joined the selection (fixed cohorts) */
  uint64_t aborted_round; /* the last aborted round (+1; 0: none) and why, for its members */
  char aborted_why[400];
  /* the participation bound's table (engine_participation.c): open addressing, at most half full */
  participation *part;
  uint32_t npart, pslots;
  /* DP-FTRL: the tree, and the current round's leaf in it and multiplier */
  fedrec_tree tree;
  uint64_t round_leaf;
  double round_tree_z;
  /* active variant: the members' certificates and identity keys, by member index (cap each) */
  uint8_t *certs;
  uint8_t (*ipks)[FEDREC_SIGN_PK_BYTES];
  /* aggregators (engine_aggregators.c): how many are configured, which are live, and each
   * member's ticket for its aggregator (cap x FEDREC_TICKET_BYTES, secure memory) */
  uint32_t naggs;
  uint8_t agg_live[FEDREC_MAX_AGGREGATORS];
  uint8_t *tickets;
  uint64_t last_answer; /* when the current phase's latest answer came (adaptive deadlines) */
};

enum { MAX_BANNED = 1u << 20 };

/* How a round ended without a publication (engine_abort). */
enum { ABORT_OTHER = 0, ABORT_LATE = 1, ABORT_ATTACK = 2 };

/* engine.c */
uint64_t fedrec__engine_random_u64(fedrec_engine *e);
/* ms jittered to [ms/2, 3ms/2] */
uint32_t fedrec__engine_jitter(fedrec_engine *e, uint32_t ms);
fedrec_status fedrec__engine_seal_model(fedrec_engine *e, uint64_t version, fedrec_error *err);
int fedrec__engine_publish(fedrec_engine *e);

/* engine_cohort.c */
int fedrec__engine_coin(const fedrec_engine *e, uint64_t client);
member *fedrec__engine_find(fedrec_engine *e, uint64_t client, uint32_t *idx);
void fedrec__engine_add_member(fedrec_engine *e, uint64_t client);
void fedrec__engine_clear_members(fedrec_engine *e);
void fedrec__engine_ban(fedrec_engine *e, member *m);

/* engine_participation.c */
/* 1 when a bound is configured (participation is tracked) */
int fedrec__engine_bounded(const fedrec_engine *e);
/* 1 when client may join the current round under the bound */
int fedrec__engine_may_join(const fedrec_engine *e, uint64_t client);
/* The masked inputs are in: their senders' participation persisted (callback) and counted;
 * 0 (with why): it could not be, and nothing may be unmasked */
int fedrec__engine_count_participation(fedrec_engine *e, char *why, size_t cap);

/* engine_tree.c */
/* the noise multiplier a round's tree entry records, for these DP parameters */
double fedrec__engine_tree_z(const fedrec_engine_config *c, const fedrec_ddp_params *p);
void fedrec__engine_tree_restart(fedrec_engine *e, uint64_t start);
void fedrec__engine_tree_free(fedrec_engine *e);
/* the leaf this round (multiplier z) would be: the tree restarted first when it must */
uint64_t fedrec__engine_tree_leaf(fedrec_engine *e, double z);
/* the leaf's ledger entry is written: the leaf is used up whether or not the round gets to
 * its step (an aborted round's leaf adds zero; the next round takes the next leaf) */
void fedrec__engine_tree_consume(fedrec_engine *e, uint64_t leaf, double z);
/* e->avg (the round's average update) becomes the step of the noisy prefix sum */
fedrec_status fedrec__engine_tree_step(fedrec_engine *e, uint64_t leaf, double z, fedrec_error *err);

/* engine_dp.c */
fedrec_release fedrec__engine_release_for(const fedrec_engine *e, uint32_t survivors);
/* DP-FTRL: the round's tree entry (its leaf and multiplier set at the round's start) */
fedrec_release fedrec__engine_tree_release(const fedrec_engine *e, uint32_t survivors);
double fedrec__engine_sum_norm_bound(const fedrec_engine *e, uint32_t summed);

/* engine_aggregators.c */
/* a starting round's members assigned to the live aggregators, each with a ticket (0: no
 * memory for the tickets) */
int fedrec__engine_assign_aggregators(fedrec_engine *e);
/* the masked inputs of clients (n), added up mod 2^bits in sum, as submitted through
 * aggregator agg (0: the simulator's sums, no aggregator) */
fedrec_status fedrec__engine_take_sum(fedrec_engine *e, uint32_t agg, uint64_t round, const uint64_t *clients, uint32_t n,
                                      const uint32_t *sum, uint32_t dim, uint64_t bytes, uint64_t now, fedrec_error *err);

/* engine_round.c */
void fedrec__engine_stop(fedrec_engine *e, const char *fmt, const char *detail);
void fedrec__engine_new_selection(fedrec_engine *e);
void fedrec__engine_abort(fedrec_engine *e, const char *why, int kind);
/* sets up secure aggregation and the DP pipeline for the selected cohort (a full one starts at once) */
void fedrec__engine_start_round(fedrec_engine *e, uint64_t now);

#endif
