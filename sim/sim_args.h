/* fedrec-sim's command line. */
#ifndef FEDREC_SIM_ARGS_H
#define FEDREC_SIM_ARGS_H

#include "fedrec/fedrec.h"
#include "fedsim.h"

/* ALG_PRIVATE_POP is parsed into ALG_FEDAVG with fed.popularity_only (every round a count round) */
typedef enum { ALG_CENTRAL, ALG_EASE, ALG_POPULARITY, ALG_MODEL, ALG_FEDAVG, ALG_PRIVATE_POP } sim_algorithm;

typedef struct sim_args {
  sim_algorithm algorithm;
  const char *dataset;      /* movielens:DIR | lastfm:DIR | synthetic[:k=v,...] | csv:FILE */
  const char *train, *test_foldin, *test_holdout;
  const char *content, *content_ids;
  int32_t content_dim;      /* for derived features */
  const char *modalities;   /* --modalities: name[:dim],... (docs/MODEL.md "Multimodal content") */
  const char *modality_norm; /* --modality-norm: l2 (default) or standard */
  const char *modality_list; /* --modality-list: one .npy per modality (fedrec_content_modality_list) */
  double threshold;         /* MovieLens rating threshold */
  fedrec_ials_config ials;
  int head_set;             /* --head/--no-head given */
  float ease_lambda;
  fedrec_split_config split;
  int32_t k;
  int json, quiet;
  const char *model;        /* --algorithm model: a model blob to evaluate */
  int content_precision;    /* --content-precision 32, 16, 8 as 0, 1, 2: content rounded as a device storing it so would see it */
  const char *save_model;   /* central and fedavg: write the trained model here */
  const char *dump_recs;    /* central algorithms and model: each test user's top k and held-out items */
  const char *popularity_share; /* --popularity-share: a number, or auto (the default) */
  int32_t print_train_users; /* > 0: print that many training users' dataset rows and exit */
  const char *export_train;  /* with print_train_users: their histories to this CSV, their ids printed */
  fedsim_config fed;        /* --algorithm fedavg */
  const char *log;          /* per-round JSON lines */
  const char *out;          /* a directory for config.json, rounds.jsonl, summary.json */
  unsigned given;           /* SIM_GIVEN_* bits: which of the scaled defaults were set by a flag */
  int privacy;              /* --privacy: SIM_PRIVACY_* */
  const char *weights_spec; /* --weights: raw, binary, log[:S], auto (default) */
  fedrec_weights weights;   /* parsed */
} sim_args;

enum { SIM_GIVEN_DIM = 1, SIM_GIVEN_COHORT = 2, SIM_GIVEN_OPTIMIZER = 4, SIM_GIVEN_NOISE = 8, SIM_GIVEN_MODEL = 16,
       SIM_GIVEN_HEAD = 32, SIM_GIVEN_SEED = 64, SIM_GIVEN_PRIVACY = 128, SIM_GIVEN_ROUNDS = 256,
       SIM_GIVEN_POPULARITY = 512 };
enum { SIM_PRIVACY_NONE, SIM_PRIVACY_CENTRAL, SIM_PRIVACY_SKELLAM, SIM_PRIVACY_DGAUSS }; /* --privacy's choices, in order */

/* fedavg on a real dataset (not synthetic): the settings a flag did not give are scaled from
 * the data (d 32; the content head alone where there is content, else free embeddings for every
 * item; cohorts of 80% of the training users up to 400; FedAdam at 0.03 for a head alone, 0.1
 * otherwise; noise for epsilon 8; one count round for popularity); note says what was applied
 * ("" when nothing). */
void sim_real_data_defaults(sim_args *a, int32_t train_users, int has_content, char *note, size_t cap);

/* Parses argv; on a bad flag fills err (naming the flag) and returns non-OK.
 * *help is set when --help was asked for. */
fedrec_status sim_parse_args(sim_args *a, int argc, char **argv, int *help, fedrec_error *err);
void sim_usage(FILE *out);
/* --dataset fitted:SOURCE[,key=value,...]: SOURCE (movielens:DIR or lastfm:DIR) loaded, a
 * population drawn from a factor model fitted on it, and the match (popularity, history
 * lengths) written to msg (NULL: not). */
fedrec_status sim_load_fitted(fedrec_dataset *ds, const sim_args *a, const char *spec, FILE *msg, fedrec_error *err);

/* sim_files.c: --save-model F (and F.ids), --dump-recs F */
fedrec_status sim_save_model(const char *path, const fedrec_model *m, fedrec_error *err);
fedrec_status sim_save_model_ids(const char *path, const fedrec_dataset *ds, fedrec_error *err);
fedrec_status sim_dump_recs(const char *path, const int32_t *lists, const fedrec_csr *holdout, const fedrec_dataset *ds,
                            int32_t k, fedrec_error *err);
/* sim_modalities.c: --modalities applied to ds (log: progress, or NULL); what each contributes */
fedrec_status sim_modalities(fedrec_dataset *ds, const sim_args *a, FILE *log, fedrec_error *err);
void sim_say_contributions(const double *contrib, const fedrec_dataset *ds, FILE *log);

#endif
