/* fedrec-sim's federated algorithm (see fedsim.c). */
#ifndef FEDREC_FEDSIM_H
#define FEDREC_FEDSIM_H

#include <stdio.h>

#include "fedrec/engine.h"
#include "fedrec/fedrec.h"

typedef struct fedsim_config {
  /* the engine's settings as the simulation's flags set them (clip, noise, optimizer, client
   * steps, plain, central, ...); the cohort, selection and dropout fields are derived from the
   * ones below when the run starts (fedsim_setup.c) */
  fedrec_engine_config engine;
  uint32_t rounds, cohort, min_survivors; /* min_survivors 0: 80% of the cohort */
  double sampling_rate;                    /* > 0: Poisson cohorts (each user with this
                                            * probability, accounted with it); else fixed */
  double dropout;                          /* per phase, for each remaining client */
  int32_t dim;
  int use_head, free_items;
  double target_epsilon;                   /* > 0: choose noise_multiplier so that the planned
                                            * epsilon after `rounds` rounds is at most this
                                            * (DP-FTRL: the tree's multiplier, for the public
                                            * epsilon) */
  double budget, delta;
  uint64_t seed;
  int threads, k, progress;
  uint32_t eval_every;
  const char *ledger;                      /* keep the ledger here (NULL: a temporary file) */
  const char *save_model;                  /* write the final model's blob here (NULL: not) */
  int client_noise;                        /* Skellam: clients draw their shares as devices do
                                            * (1), or the engine draws the sum's noise once (0,
                                            * faster, the same distribution) */
  int exact_noise;                         /* clients draw Skellam noise with the exact sampler
                                            * (as devices do; slow at large lambda) rather than
                                            * the fast floating-point one (default) */
  uint32_t audit_canaries, audit_guesses;  /* --audit-canaries N: one-run audit (0: none) */
  double popularity_share;                 /* with count rounds: the budget share (RDP) they get
                                            * (0: their noise is the model rounds'; < 0: auto,
                                            * fedsim_auto_share) */
  int popularity_only;                     /* --algorithm private-popularity: every round is a count
                                            * round and the model is evaluated by its popularity
                                            * alone */
} fedsim_config;

typedef struct fedsim_result {
  fedrec_metrics metrics;
  fedrec_metrics cold; /* with --cold-items: the withheld items, ranked among themselves */
  int has_cold;
  double epsilon, seconds, bytes_up, bytes_down;
  double noise_multiplier, planned_epsilon; /* as used (calibrated or given); the plan's bound */
  double epsilon_public;                   /* against model recipients (DP-FTRL: the tree's) */
  double tree_noise_multiplier;            /* DP-FTRL: as used (calibrated or given) */
  double popularity_noise_multiplier;      /* count rounds': as used (0: no count rounds) */
  double popularity_share;                 /* their share of the budget, as used */
  uint32_t rounds_done;
  int64_t params;
  uint32_t secagg_k;                       /* neighbours per client in the last round */
  uint64_t clients;                        /* cohort members over all rounds */
  /* the audit: canaries, how many were included, guesses made, right ones, and the
   * 95%-confidence empirical lower bound on epsilon at delta */
  uint32_t audit_canaries, audit_included, audit_guesses, audit_correct;
  double audit_epsilon_lower;
  char stop_reason[640];
  char model_hash[65];                     /* BLAKE2b-256 of the final model blob, hex */
} fedsim_result;

/* fedrec-sim-mpi: this process's MPI rank and the number of ranks (0 and 1 in fedrec-sim). */
int fedsim_rank(void);
int fedsim_ranks(void);
/* fedrec-sim-mpi: every rank learns whether rank 0 is ready (ok != 0) to start; returns it. */
int fedsim_agree(int ok);

/* --popularity-share auto: the count rounds' share of the budget is the one that brings their
 * noise multiplier to (cohort / FEDSIM_POPULARITY_RESOLUTION) - a count's noise is 1/400 of the
 * cohort's clipped mass, where popularity stopped gaining on both real sets (docs/RESULTS.md) -
 * within [FEDSIM_SHARE_MIN, FEDSIM_SHARE_MAX]: z_all is the multiplier that spends the budget
 * on every round alike, rounds the run's, stats_rounds its count (and spectral) rounds, n the
 * expected cohort. A choice of noise, not of accounting: the ledger composes what is run. */
#define FEDSIM_POPULARITY_RESOLUTION 400.0
#define FEDSIM_SHARE_MIN 0.01
#define FEDSIM_SHARE_MAX 0.95
double fedsim_auto_share(double z_all, uint32_t rounds, uint32_t stats_rounds, uint32_t n);

/* Runs the rounds (fedrec-sim-mpi: on every rank; rank 0 coordinates and reports); per-round JSON lines go to log (NULL: none). */
fedrec_status fedsim_run(fedsim_result *res, const fedsim_config *c, const fedrec_dataset *ds,
                         const fedrec_split *sp, FILE *log, fedrec_error *err);

#endif
