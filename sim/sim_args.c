#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_args.h"
#include "fedrec/internal/tool.h"

static const char USAGE[] =
      "usage: fedrec-sim --algorithm central|ease|popularity|model|fedavg [options]\n"
      "  model: evaluate a published model blob given by --model FILE (no training)\n"
      "\n"
      "data (one of):\n"
      "  --dataset synthetic[:users=N,items=M,dim=P,...]  built-in catalogue (default)\n"
      "  --dataset movielens:DIR   MovieLens ratings.csv (+ movies.csv, tags.csv for content)\n"
      "  --dataset lastfm:DIR      Last.fm HetRec user_artists.dat (+ user_taggedartists.dat)\n"
      "  --dataset csv:FILE        CSV with header user,item[,weight]\n"
      "  --train F --test-foldin F --test-holdout F   a given split, CSV user,item[,weight]\n"
      "  --content F.npy --content-ids F | --content F.csv   item content embeddings\n"
      "  --content-dim P           dimension of derived content features (64)\n"
      "  --threshold R             MovieLens: rating >= R is a positive (4.0)\n"
      "\n"
      "split (built-in): --test-users F (0.2) --holdout F (0.2) --cold-items F (0)\n"
      "                  --min-items N (5)\n"
      "model (central iALS):\n"
      "  --dim D (128) --reg L (0.003) --unobserved-weight A (0.3) --epochs E (12)\n"
      "  --head | --no-head        train the content head (default: on when content exists)\n"
      "  --free-items M            free embeddings for the M most popular items (-1 = all)\n"
      "  --free-reg X (1.0)        extra ridge on free embeddings, so the head explains more\n"
      "EASE: --ease-lambda L (200)\n"
      "federated (fedavg: the coordinator's round engine and the client code in one process,\n"
      "  with SecAgg+ and distributed DP; every training user is a client):\n"
      "  --rounds R (20) --cohort N (100) | --sampling-rate Q (Poisson cohorts, accounted with Q)\n"
      "  real data (movielens, lastfm, csv, a given split): what no flag sets is scaled from the\n"
      "  data: --dim 32 --no-head --free-items -1, --cohort 80% of the training users (at most\n"
      "  400), --optimizer fedadam --server-lr 0.1, --target-epsilon 8 (docs/RESULTS.md).\n"
      "  Recommended (add --secagg plain for the same numbers 15x faster):\n"
      "    fedrec-sim --algorithm fedavg --dataset movielens:../shared/data/ml-latest-small\n"
      "  Recall@20 0.183 at epsilon 6.98 (central iALS 0.338); Last.fm 0.109 (central 0.298)\n"
      "  --min-survivors M (80% of the least cohort) --dropout P (0, per phase)\n"
      "  --privacy skellam|dgauss|central|none (skellam; central: the server adds Gaussian noise)\n"
      "            --noise-multiplier Z (1) --clip C (1)\n"
      "  --target-epsilon E         choose the noise multiplier for epsilon E at --delta after\n"
      "                             --rounds rounds (planned as the coordinator's budget check)\n"
      "  --budget E (1e9) --delta D (1e-6) --optimizer fedavg|fedadam --server-lr L (0.5)\n"
      "  --momentum M (0.5) --log FILE (per-round JSON lines) --eval-every K (1) --ledger FILE\n"
      "  --local-steps K (1) --client-lr L (1)   K gradient steps of size L on each client; it\n"
      "                             sends the total move (K = 1: L times the gradient)\n"
      "  --exact-noise              clients draw Skellam noise with the exact sampler devices use\n"
      "                             (slow at large variance); default: a fast floating-point one\n"
      "  --audit-canaries N         one-run privacy audit: N canary clients, each included with\n"
      "                             probability 1/2, send a secret random direction at full clip\n"
      "                             norm; reports a 95%-confidence lower bound on epsilon\n"
      "  --audit-guesses G          guesses made (half top, half bottom score; default N/5)\n"
      "  --out DIR                  write DIR/config.json, rounds.jsonl (per round) and summary.json\n"
      "  --secagg full|plain (full: the real cryptography; plain: the same sum without masks)\n"
      "  --noise-draws sum|clients (Skellam: the engine draws the sum's noise once (default: the\n"
      "  same distribution, faster), or each client draws its share as devices do)\n"
      "other: --k K (20) --seed S (42) --threads T (all cores; per rank with MPI) --json --quiet --help\n"
      "MPI: mpirun -np N fedrec-sim-mpi --algorithm fedavg ... spreads each round's clients over N ranks\n"
      "     (same flags, bit-identical results; docs/SIMULATION.md)\n"
      "       --print-train-users N   print the dataset rows of the first N training users, exit\n";

void sim_usage(FILE *out) { fputs(USAGE, out); }

static fedrec_status unknown_flag(const char *f, fedrec_error *err) {
  char near[64];
  if (fedrec_nearest_flag(f, USAGE, near, sizeof near))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "unknown option '%s': did you mean %s? (see --help)", f, near);
  return fedrec_error_set(err, FEDREC_ERR_ARG, "unknown option '%s' (see --help)", f);
}

static fedrec_status num(const char *flag, const char *v, double lo, double hi, int integer,
                         double *out, fedrec_error *err) {
  return fedrec_parse_number(flag, v, lo, hi, integer, out, err);
}

fedrec_status sim_parse_args(sim_args *a, int argc, char **argv, int *help, fedrec_error *err) {
  memset(a, 0, sizeof *a);
  fedrec_ials_defaults(&a->ials);
  fedrec_split_defaults(&a->split);
  a->algorithm = ALG_CENTRAL;
  a->dataset = NULL;
  a->content_dim = 64;
  a->threshold = 4.0;
  a->ease_lambda = 200.0f;
  a->k = 20;
  a->fed = (fedsim_config){.rounds = 20, .cohort = 100, .budget = 1e9, .delta = 1e-6, .eval_every = 1};
  fedrec_engine_defaults(&a->fed.engine); /* clip 1, noise multiplier 1, Skellam, fedavg */
  a->fed.engine.server_lr = 0.5, a->fed.engine.momentum = 0.5;
  *help = 0;
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    double x = 0;
    fedrec_status st = FEDREC_OK;
#define FLAG(name) (strcmp(f, name) == 0)
#define NUM(lo, hi, integer) (st = num(f, v, lo, hi, integer, &x, err), i++, st)
#define STR(dst) (v ? (dst = v, i++, 0) : (st = fedrec_error_set(err, FEDREC_ERR_ARG, "%s needs a value", f)))
    if (FLAG("--help") || FLAG("-h")) {
      *help = 1;
      return FEDREC_OK;
    } else if (FLAG("--algorithm")) {
      if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "--algorithm needs a value");
      if (!strcmp(v, "central")) a->algorithm = ALG_CENTRAL;
      else if (!strcmp(v, "ease")) a->algorithm = ALG_EASE;
      else if (!strcmp(v, "popularity")) a->algorithm = ALG_POPULARITY;
      else if (!strcmp(v, "model")) a->algorithm = ALG_MODEL;
      else if (!strcmp(v, "fedavg")) a->algorithm = ALG_FEDAVG;
      else
        return fedrec_error_set(err, FEDREC_ERR_ARG, "--algorithm: '%s' is not one of central, ease, popularity, model, fedavg", v);
      i++;
    } else if (FLAG("--dataset")) STR(a->dataset);
    else if (FLAG("--train")) STR(a->train);
    else if (FLAG("--test-foldin")) STR(a->test_foldin);
    else if (FLAG("--test-holdout")) STR(a->test_holdout);
    else if (FLAG("--content")) STR(a->content);
    else if (FLAG("--content-ids")) STR(a->content_ids);
    else if (FLAG("--content-dim")) { if (!NUM(1, FEDREC_MAX_CONTENT_DIM, 1)) a->content_dim = (int32_t)x; }
    else if (FLAG("--threshold")) { if (!NUM(0, 10, 0)) a->threshold = x; }
    else if (FLAG("--dim")) { if (!NUM(1, 1024, 1)) a->ials.dim = (int32_t)x; }
    else if (FLAG("--reg")) { if (!NUM(1e-9, 1e6, 0)) a->ials.reg = (float)x; }
    else if (FLAG("--unobserved-weight")) { if (!NUM(0, 1e6, 0)) a->ials.alpha0 = (float)x; }
    else if (FLAG("--epochs")) { if (!NUM(0, 10000, 1)) a->ials.epochs = (int32_t)x; }
    else if (FLAG("--free-items")) { if (!NUM(-1, FEDREC_MAX_ENTITIES, 1)) a->ials.n_free = (int32_t)x; }
    else if (FLAG("--free-reg")) { if (!NUM(0, 1e6, 0)) a->ials.free_reg_mult = (float)x; }
    else if (FLAG("--head")) a->ials.use_head = 1, a->head_set = 1;
    else if (FLAG("--no-head")) a->ials.use_head = 0, a->head_set = 1;
    else if (FLAG("--ease-lambda")) { if (!NUM(1e-9, 1e9, 0)) a->ease_lambda = (float)x; }
    else if (FLAG("--test-users")) { if (!NUM(1e-6, 0.999999, 0)) a->split.test_users = x; }
    else if (FLAG("--holdout")) { if (!NUM(1e-6, 0.999999, 0)) a->split.holdout = x; }
    else if (FLAG("--cold-items")) { if (!NUM(0, 0.999999, 0)) a->split.cold_items = x; }
    else if (FLAG("--min-items")) { if (!NUM(2, 1e9, 1)) a->split.min_items = (int32_t)x; }
    else if (FLAG("--k")) { if (!NUM(1, 100000, 1)) a->k = (int32_t)x; }
    else if (FLAG("--seed")) {
      if (!NUM(0, 9007199254740992.0, 1)) a->ials.seed = a->split.seed = (uint64_t)x;
    } else if (FLAG("--threads")) { if (!NUM(0, 256, 1)) a->ials.threads = (int32_t)x; }
    else if (FLAG("--json")) a->json = 1;
    else if (FLAG("--quiet")) a->quiet = 1;
    else if (FLAG("--model")) STR(a->model);
    else if (FLAG("--rounds")) { if (!NUM(1, 1e7, 1)) a->fed.rounds = (uint32_t)x; }
    else if (FLAG("--sampling-rate")) { if (!NUM(1e-9, 1, 0)) a->fed.sampling_rate = x; }
    else if (FLAG("--cohort")) { if (!NUM(2, FEDREC_SECAGG_MAX_CLIENTS, 1)) a->fed.cohort = (uint32_t)x; }
    else if (FLAG("--min-survivors")) { if (!NUM(1, FEDREC_SECAGG_MAX_CLIENTS, 1)) a->fed.min_survivors = (uint32_t)x; }
    else if (FLAG("--dropout")) { if (!NUM(0, 0.9, 0)) a->fed.dropout = x; }
    else if (FLAG("--clip")) { if (!NUM(1e-9, 1e9, 0)) a->fed.engine.clip = x; }
    else if (FLAG("--noise-multiplier")) { if (!NUM(0, 1e6, 0)) a->fed.engine.noise_multiplier = x; }
    else if (FLAG("--target-epsilon")) { if (!NUM(1e-3, 1e6, 0)) a->fed.target_epsilon = x; }
    else if (FLAG("--local-steps")) { if (!NUM(1, 1000, 1)) a->fed.engine.local_steps = (uint32_t)x; }
    else if (FLAG("--client-lr")) { if (!NUM(1e-9, 1e6, 0)) a->fed.engine.client_lr = x; }
    else if (FLAG("--exact-noise")) a->fed.exact_noise = 1;
    else if (FLAG("--audit-canaries")) { if (!NUM(2, 1e6, 1)) a->fed.audit_canaries = (uint32_t)x; }
    else if (FLAG("--audit-guesses")) { if (!NUM(1, 1e6, 1)) a->fed.audit_guesses = (uint32_t)x; }
    else if (FLAG("--budget")) { if (!NUM(1e-6, 1e12, 0)) a->fed.budget = x; }
    else if (FLAG("--delta")) { if (!NUM(1e-300, 0.1, 0)) a->fed.delta = x; }
    else if (FLAG("--server-lr")) { if (!NUM(0, 1e6, 0)) a->fed.engine.server_lr = x; }
    else if (FLAG("--momentum")) { if (!NUM(0, 0.9999, 0)) a->fed.engine.momentum = x; }
    else if (FLAG("--eval-every")) { if (!NUM(1, 1e7, 1)) a->fed.eval_every = (uint32_t)x; }
    else if (FLAG("--log")) STR(a->log);
    else if (FLAG("--out")) STR(a->out);
    else if (FLAG("--ledger")) STR(a->fed.ledger);
    else if (FLAG("--secagg")) {
      if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "--secagg needs a value");
      if (!strcmp(v, "full")) a->fed.engine.plain = 0;
      else if (!strcmp(v, "plain")) a->fed.engine.plain = 1;
      else return fedrec_error_set(err, FEDREC_ERR_ARG, "--secagg: '%s' is not full or plain", v);
      i++;
    } else if (FLAG("--noise-draws")) {
      if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "--noise-draws needs a value");
      if (!strcmp(v, "clients")) a->fed.client_noise = 1;
      else if (!strcmp(v, "sum")) a->fed.client_noise = 0;
      else return fedrec_error_set(err, FEDREC_ERR_ARG, "--noise-draws: '%s' is not clients or sum", v);
      i++;
    } else if (FLAG("--privacy")) {
      if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "--privacy needs a value");
      if (!strcmp(v, "skellam")) a->fed.engine.noise = FEDREC_NOISE_SKELLAM;
      else if (!strcmp(v, "dgauss")) a->fed.engine.noise = FEDREC_NOISE_DGAUSS;
      else if (!strcmp(v, "none")) a->fed.engine.noise = FEDREC_NOISE_NONE;
      else if (!strcmp(v, "central")) a->fed.engine.noise = FEDREC_NOISE_SKELLAM, a->fed.engine.central = 1;
      else return fedrec_error_set(err, FEDREC_ERR_ARG, "--privacy: '%s' is not one of none, central, skellam, dgauss", v);
      i++;
    } else if (FLAG("--optimizer")) {
      if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "--optimizer needs a value");
      if (fedrec_optimizer_parse(v, &a->fed.engine.optimizer))
        return fedrec_error_set(err, FEDREC_ERR_ARG, "--optimizer: '%s' is not one of %s", v, fedrec_optimizer_names());
      i++;
    }
    else if (FLAG("--print-train-users")) { if (!NUM(1, 1e9, 1)) a->print_train_users = (int32_t)x; }
    else return unknown_flag(f, err);
    if (st) return st;
#undef FLAG
#undef NUM
#undef STR
  }
  for (int i = 1; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--dim")) a->given |= SIM_GIVEN_DIM;
    if (!strcmp(f, "--head") || !strcmp(f, "--no-head") || !strcmp(f, "--free-items")) a->given |= SIM_GIVEN_MODEL;
    if (!strcmp(f, "--cohort") || !strcmp(f, "--sampling-rate")) a->given |= SIM_GIVEN_COHORT;
    if (!strcmp(f, "--optimizer") || !strcmp(f, "--server-lr") || !strcmp(f, "--momentum")) a->given |= SIM_GIVEN_OPTIMIZER;
    if (!strcmp(f, "--noise-multiplier") || !strcmp(f, "--target-epsilon") || !strcmp(f, "--privacy")) a->given |= SIM_GIVEN_NOISE;
  }
  int given = (a->train != NULL) + (a->test_foldin != NULL) + (a->test_holdout != NULL);
  if (given != 0 && given != 3)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--train, --test-foldin and --test-holdout go together");
  if (given && a->dataset)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "use either --dataset or --train/--test-foldin/--test-holdout");
  if (a->content && !a->content_ids && !(strlen(a->content) > 4 && !strcmp(a->content + strlen(a->content) - 4, ".csv")))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--content F.npy needs --content-ids (or give a .csv)");
  if ((a->algorithm == ALG_MODEL) != (a->model != NULL))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--algorithm model and --model FILE go together");
  if (a->fed.target_epsilon > 0 && a->fed.engine.noise == FEDREC_NOISE_NONE)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--target-epsilon needs noise: not with --privacy none");
  if (a->fed.audit_guesses > a->fed.audit_canaries)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--audit-guesses %u: more than the %u canaries", a->fed.audit_guesses,
                            a->fed.audit_canaries);
  if (a->out && a->log) return fedrec_error_set(err, FEDREC_ERR_ARG, "--out writes DIR/rounds.jsonl: not with --log");
  if (!given && !a->dataset) a->dataset = "synthetic";
  return FEDREC_OK;
}

void sim_real_data_defaults(sim_args *a, int32_t train_users, char *note, size_t cap) {
  note[0] = 0;
  if (a->algorithm != ALG_FEDAVG || (a->dataset && !strncmp(a->dataset, "synthetic", 9))) return;
  size_t n = 0;
#define NOTE(...) (n += (size_t)snprintf(note + n, n < cap ? cap - n : 0, __VA_ARGS__))
  if (!(a->given & SIM_GIVEN_DIM)) a->ials.dim = 32, NOTE(" --dim 32");
  if (!(a->given & SIM_GIVEN_MODEL)) a->ials.use_head = 0, a->ials.n_free = -1, a->head_set = 1, NOTE(" --no-head --free-items -1");
  if (!(a->given & SIM_GIVEN_COHORT)) {
    int64_t c = (int64_t)train_users * 4 / 5;
    a->fed.cohort = (uint32_t)(c > 400 ? 400 : c < 2 ? 2 : c);
    NOTE(" --cohort %u", a->fed.cohort);
  }
  if (!(a->given & SIM_GIVEN_OPTIMIZER)) a->fed.engine.optimizer = FEDREC_OPT_FEDADAM, a->fed.engine.server_lr = 0.1, NOTE(" --optimizer fedadam --server-lr 0.1");
  if (!(a->given & SIM_GIVEN_NOISE)) a->fed.target_epsilon = 8, NOTE(" --target-epsilon 8");
#undef NOTE
}
