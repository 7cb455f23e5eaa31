#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_args.h"
#include "fedrec/internal/tool.h"

static const char USAGE[] =
      "usage: fedrec-sim --algorithm central|ease|popularity|model|fedavg|private-popularity [options]\n"
      "  model: evaluate a published model blob given by --model FILE (no training)\n"
      "\n"
      "data (one of):\n"
      "  --dataset synthetic[:users=N,items=M,dim=P,...]  built-in catalogue (default)\n"
      "  --dataset movielens:DIR   MovieLens ratings.csv (+ movies.csv, tags.csv for content)\n"
      "  --dataset lastfm:DIR      Last.fm HetRec user_artists.dat (+ user_taggedartists.dat)\n"
      "  --dataset csv:FILE        CSV with header user,item[,weight]\n"
      "  --dataset fitted:movielens:DIR[,users=N,dim=D,epochs=E,tau=T,jitter=J,seed=S,offsets=1] (or fitted:lastfm:DIR)\n"
      "                            a population drawn from a factor model fitted on the real set\n"
      "  --train F --test-foldin F --test-holdout F   a given split, CSV user,item[,weight]\n"
      "  --content F.npy --content-ids F | --content F.csv   item content embeddings\n"
      "  --content-dim P           dimension of derived content features (64)\n"
      "  --modalities NAME[:DIM],...  content as named modalities, each its own block (head H_m) and\n"
      "                            normalisation: movielens genres,tags,title,year; lastfm tags,names;\n"
      "                            synthetic:...,modalities=3 strong,weak,noise (docs/MODEL.md)\n"
      "  --modality-norm l2|standard  per modality: unit rows, or centred and scaled (l2)\n"
      "  --modality-list F         content from one .npy per modality: lines NAME<TAB>EMB.npy<TAB>IDS.txt\n"
      "                            (the catalogue's modalities:F; --modalities then picks some of them)\n"
      "  --threshold R             MovieLens: rating >= R is a positive (4.0)\n"
      "  --weights raw|binary|log[:S]|auto  csv: and --train files: how weights become confidences\n"
      "                            (log:S = 1 + log(1 + w/S); auto: log:10 when they look like counts)\n"
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
      "  400), --optimizer fedadam --server-lr 0.1, --target-epsilon 8, --popularity-rounds 1\n"
      "  (docs/RESULTS.md). Recommended (add --secagg plain for the same numbers 15x faster):\n"
      "    fedrec-sim --algorithm fedavg --dataset movielens:../shared/data/ml-latest-small\n"
      "  Recall@20 0.181 at epsilon 6.98 (central iALS 0.338); Last.fm 0.112 (central 0.298)\n"
      "  --min-survivors M (80% of the least cohort) --dropout P (0, per phase)\n"
      "  --max-participation K      a user takes part in at most K rounds (fixed cohorts; the\n"
      "                             ledger then composes only K rounds per user: docs/PRIVACY.md)\n"
      "  --min-separation M         and at least M rounds apart\n"
      "  --tree-noise-multiplier Z  DP-FTRL: the coordinator adds tree noise (Z clip / min-survivors\n"
      "                             per node) to prefix sums of the rounds' updates; with\n"
      "                             --target-epsilon, Z is calibrated for the public epsilon (model\n"
      "                             recipients), the devices' --noise-multiplier kept for the operator\n"
      "  --tree-rounds E            rounds per tree (default: --rounds); each user once per tree\n"
      "  --popularity-rounds P      the first P of the rounds are count rounds: each client sends its\n"
      "                             history's items (clipped, noised, accounted like any round); the\n"
      "                             model gets their noisy sum as a popularity coordinate whose weight\n"
      "                             each user's solve chooses (docs/MODEL.md)\n"
      "  --popularity-share S|auto  the share of the privacy budget (RDP) the count rounds get,\n"
      "                             through their own, smaller noise multiplier (0: the model\n"
      "                             rounds'; auto, the default: what brings a count's noise to\n"
      "                             1/400 of the cohort, within 0.01-0.95: docs/RESULTS.md)\n"
      "  --spectral-items M         after the count rounds, a spectral round: clients send the\n"
      "                             co-occurrence of their items among the M most popular; its noisy\n"
      "                             sum's leading eigenvectors become those items' free embeddings\n"
      "                             (needs --popularity-rounds and --free-items -1; docs/MODEL.md)\n"
      "  --algorithm private-popularity   the same rounds, all counting (--rounds, default 1), ranked\n"
      "                             by the noisy counts alone: the private floor every model must beat\n"
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
      "  --secagg-active            the active (malicious-server) variant: enrolled identities, signed\n"
      "                             keys and survivor lists, a consistency phase (docs/SECAGG.md)\n"
      "  --noise-draws sum|clients (Skellam: the engine draws the sum's noise once (default: the\n"
      "  same distribution, faster), or each client draws its share as devices do)\n"
      "other: --k K (20) --seed S (42) --threads T (all cores; per rank with MPI) --json --quiet --help\n"
      "MPI: mpirun -np N fedrec-sim-mpi --algorithm fedavg ... spreads each round's clients over N ranks\n"
      "     (same flags, bit-identical results; docs/SIMULATION.md)\n"
      "       --print-train-users N   print the dataset rows of the first N training users, exit\n"
      "       --content-precision B   32 (default), 16 (half floats) or 8 (int8 per item): content rounded as a\n"
      "                               device storing it in B bits would see it (what smaller storage costs)\n"
      "       --save-model FILE       central, fedavg: write the trained model (read by --algorithm model and the\n"
      "                               coordinator's initial-model) and FILE.ids, its items in row order\n"
      "       --dump-recs FILE        central, ease, popularity, model: each evaluated test user's top K and\n"
      "                               held-out items (test_user,list,rank,item), to recompute the metrics\n"
      "       --export-train FILE     with --print-train-users: write their histories to FILE (user,item,weight,\n"
      "                               0600, for fedrec-client import --csv FILE --user ID) and print their ids\n";

void sim_usage(FILE *out) { fputs(USAGE, out); }

#define NUMBER(flag, kind, field, lo, hi, group) FEDREC_OPTION_NUMBER(flag, kind, sim_args, field, lo, hi, group, 0)
#define TEXT(flag, field) FEDREC_OPTION_STRING(flag, sim_args, field)
#define CHOICE(flag, field, choices, group) FEDREC_OPTION_CHOICE(flag, sim_args, field, choices, group)
#define SET(flag, field, value, group) FEDREC_OPTION_SET(flag, sim_args, field, value, group)
/* Every flag (the usage above says what each does). */
static const fedrec_option OPTIONS[] = {
    CHOICE("--algorithm", algorithm, "central, ease, popularity, model, fedavg, private-popularity", 0),
    TEXT("--dataset", dataset), TEXT("--train", train), TEXT("--test-foldin", test_foldin),
    TEXT("--test-holdout", test_holdout), TEXT("--content", content), TEXT("--content-ids", content_ids),
    TEXT("--modalities", modalities), TEXT("--modality-norm", modality_norm), TEXT("--modality-list", modality_list),
    NUMBER("--content-dim", FEDREC_ARG_INT32, content_dim, 1, FEDREC_MAX_CONTENT_DIM, 0),
    NUMBER("--threshold", FEDREC_ARG_DOUBLE, threshold, 0, 10, 0),
    NUMBER("--dim", FEDREC_ARG_INT32, ials.dim, 1, 1024, SIM_GIVEN_DIM),
    NUMBER("--reg", FEDREC_ARG_FLOAT, ials.reg, 1e-9, 1e6, 0),
    NUMBER("--unobserved-weight", FEDREC_ARG_FLOAT, ials.alpha0, 0, 1e6, 0),
    NUMBER("--epochs", FEDREC_ARG_INT32, ials.epochs, 0, 10000, 0),
    NUMBER("--free-items", FEDREC_ARG_INT32, ials.n_free, -1, FEDREC_MAX_ENTITIES, SIM_GIVEN_MODEL),
    NUMBER("--free-reg", FEDREC_ARG_FLOAT, ials.free_reg_mult, 0, 1e6, 0),
    SET("--head", ials.use_head, 1, SIM_GIVEN_MODEL | SIM_GIVEN_HEAD),
    SET("--no-head", ials.use_head, 0, SIM_GIVEN_MODEL | SIM_GIVEN_HEAD),
    NUMBER("--ease-lambda", FEDREC_ARG_FLOAT, ease_lambda, 1e-9, 1e9, 0),
    NUMBER("--test-users", FEDREC_ARG_DOUBLE, split.test_users, 1e-6, 0.999999, 0),
    NUMBER("--holdout", FEDREC_ARG_DOUBLE, split.holdout, 1e-6, 0.999999, 0),
    NUMBER("--cold-items", FEDREC_ARG_DOUBLE, split.cold_items, 0, 0.999999, 0),
    NUMBER("--min-items", FEDREC_ARG_INT32, split.min_items, 2, 1e9, 0),
    NUMBER("--k", FEDREC_ARG_INT32, k, 1, 100000, 0),
    NUMBER("--seed", FEDREC_ARG_UINT64, ials.seed, 0, 9007199254740992.0, SIM_GIVEN_SEED),
    NUMBER("--threads", FEDREC_ARG_INT32, ials.threads, 0, 256, 0),
    SET("--json", json, 1, 0), SET("--quiet", quiet, 1, 0), TEXT("--model", model),
    NUMBER("--rounds", FEDREC_ARG_UINT32, fed.rounds, 1, 1e7, SIM_GIVEN_ROUNDS),
    NUMBER("--popularity-rounds", FEDREC_ARG_UINT32, fed.engine.popularity_rounds, 0, 1000, SIM_GIVEN_POPULARITY),
    TEXT("--popularity-share", popularity_share),
    NUMBER("--spectral-items", FEDREC_ARG_UINT32, fed.engine.spectral_items, 2, 4096, 0),
    NUMBER("--sampling-rate", FEDREC_ARG_DOUBLE, fed.sampling_rate, 1e-9, 1, SIM_GIVEN_COHORT),
    NUMBER("--cohort", FEDREC_ARG_UINT32, fed.cohort, 2, FEDREC_SECAGG_MAX_CLIENTS, SIM_GIVEN_COHORT),
    NUMBER("--tree-noise-multiplier", FEDREC_ARG_DOUBLE, fed.engine.tree_noise_multiplier, 0.01, 1e4, 0),
    NUMBER("--tree-rounds", FEDREC_ARG_UINT32, fed.engine.tree_rounds, 1, 1048576, 0),
    NUMBER("--max-participation", FEDREC_ARG_UINT32, fed.engine.max_participation, 1, FEDREC_LEDGER_MAX_PARTICIPATION, 0),
    NUMBER("--min-separation", FEDREC_ARG_UINT32, fed.engine.min_separation, 1, 1e8, 0),
    NUMBER("--min-survivors", FEDREC_ARG_UINT32, fed.min_survivors, 1, FEDREC_SECAGG_MAX_CLIENTS, 0),
    NUMBER("--dropout", FEDREC_ARG_DOUBLE, fed.dropout, 0, 0.9, 0),
    NUMBER("--clip", FEDREC_ARG_DOUBLE, fed.engine.clip, 1e-9, 1e9, 0),
    NUMBER("--noise-multiplier", FEDREC_ARG_DOUBLE, fed.engine.noise_multiplier, 0, 1e6, SIM_GIVEN_NOISE),
    NUMBER("--target-epsilon", FEDREC_ARG_DOUBLE, fed.target_epsilon, 1e-3, 1e6, SIM_GIVEN_NOISE),
    NUMBER("--local-steps", FEDREC_ARG_UINT32, fed.engine.local_steps, 1, 1000, 0),
    NUMBER("--client-lr", FEDREC_ARG_FLOAT, fed.engine.client_lr, 1e-9, 1e6, 0),
    SET("--exact-noise", fed.exact_noise, 1, 0),
    NUMBER("--audit-canaries", FEDREC_ARG_UINT32, fed.audit_canaries, 2, 1e6, 0),
    NUMBER("--audit-guesses", FEDREC_ARG_UINT32, fed.audit_guesses, 1, 1e6, 0),
    NUMBER("--budget", FEDREC_ARG_DOUBLE, fed.budget, 1e-6, 1e12, 0),
    NUMBER("--delta", FEDREC_ARG_DOUBLE, fed.delta, 1e-300, 0.1, 0),
    NUMBER("--server-lr", FEDREC_ARG_DOUBLE, fed.engine.server_lr, 0, 1e6, SIM_GIVEN_OPTIMIZER),
    NUMBER("--momentum", FEDREC_ARG_DOUBLE, fed.engine.momentum, 0, 0.9999, SIM_GIVEN_OPTIMIZER),
    NUMBER("--eval-every", FEDREC_ARG_UINT32, fed.eval_every, 1, 1e7, 0),
    TEXT("--log", log), TEXT("--out", out), TEXT("--ledger", fed.ledger), TEXT("--weights", weights_spec),
    CHOICE("--secagg", fed.engine.plain, "full, plain", 0),
    SET("--secagg-active", fed.engine.active, 1, 0),
    CHOICE("--noise-draws", fed.client_noise, "sum, clients", 0),
    CHOICE("--privacy", privacy, "none, central, skellam, dgauss", SIM_GIVEN_NOISE | SIM_GIVEN_PRIVACY),
    CHOICE("--optimizer", fed.engine.optimizer, FEDREC_OPTIMIZER_NAMES, SIM_GIVEN_OPTIMIZER),
    NUMBER("--print-train-users", FEDREC_ARG_INT32, print_train_users, 1, 1e9, 0),
    FEDREC_OPTION_STRING("--export-train", sim_args, export_train),
    FEDREC_OPTION_STRING("--save-model", sim_args, save_model),
    CHOICE("--content-precision", content_precision, "32, 16, 8", 0),
    FEDREC_OPTION_STRING("--dump-recs", sim_args, dump_recs),
    FEDREC_OPTION_END,
};

fedrec_status sim_parse_args(sim_args *a, int argc, char **argv, int *help, fedrec_error *err) {
  memset(a, 0, sizeof *a);
  fedrec_ials_defaults(&a->ials);
  fedrec_split_defaults(&a->split);
  a->algorithm = ALG_CENTRAL;
  a->content_dim = 64;
  a->threshold = 4.0;
  a->ease_lambda = 200.0f;
  a->k = 20;
  a->fed = (fedsim_config){.rounds = 20, .cohort = 100, .budget = 1e9, .delta = 1e-6, .eval_every = 1, .popularity_share = -1};
  fedrec_engine_defaults(&a->fed.engine); /* clip 1, noise multiplier 1, Skellam, fedavg */
  a->fed.engine.server_lr = 0.5, a->fed.engine.momentum = 0.5;
  *help = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      *help = 1;
      return FEDREC_OK;
    }
    const fedrec_option *o;
    fedrec_status st = fedrec_option_parse(OPTIONS, a, argc, argv, &i, &o, err);
    if (st) return st;
    a->given |= o->group;
  }
  a->head_set = (a->given & SIM_GIVEN_HEAD) != 0;
  if (a->algorithm == ALG_PRIVATE_POP) { /* fedavg whose every round counts items (one unless --rounds says) */
    a->algorithm = ALG_FEDAVG;
    a->fed.popularity_only = 1;
    if (!(a->given & SIM_GIVEN_ROUNDS)) a->fed.rounds = 1;
    a->fed.engine.popularity_rounds = a->fed.rounds;
  }
  if (a->fed.engine.popularity_rounds && (a->fed.audit_canaries || a->fed.engine.tree_noise_multiplier > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--popularity-rounds (and private-popularity) go with neither "
                            "--audit-canaries nor DP-FTRL (--tree-noise-multiplier)");
  if (a->popularity_share && strcmp(a->popularity_share, "auto")) {
    char *end;
    double v = strtod(a->popularity_share, &end);
    if (end == a->popularity_share || *end || !(v >= 0 && v <= 0.99))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "--popularity-share '%s': a number in [0, 0.99] or auto", a->popularity_share);
    a->fed.popularity_share = v;
  }
  if (a->given & SIM_GIVEN_SEED) a->split.seed = a->ials.seed;
  if (a->given & SIM_GIVEN_PRIVACY) {
    a->fed.engine.noise = a->privacy == SIM_PRIVACY_DGAUSS ? FEDREC_NOISE_DGAUSS
                        : a->privacy == SIM_PRIVACY_NONE   ? FEDREC_NOISE_NONE
                                                           : FEDREC_NOISE_SKELLAM;
    a->fed.engine.central = a->privacy == SIM_PRIVACY_CENTRAL;
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
  if (a->fed.engine.tree_noise_multiplier > 0 && !a->fed.engine.tree_rounds) a->fed.engine.tree_rounds = a->fed.rounds;
  if (a->fed.engine.tree_rounds && !(a->fed.engine.tree_noise_multiplier > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--tree-rounds goes with --tree-noise-multiplier (DP-FTRL)");
  if (a->fed.audit_guesses > a->fed.audit_canaries)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--audit-guesses %u: more than the %u canaries", a->fed.audit_guesses,
                            a->fed.audit_canaries);
  if (a->out && a->log) return fedrec_error_set(err, FEDREC_ERR_ARG, "--out writes DIR/rounds.jsonl: not with --log");
  if (fedrec_weights_parse(&a->weights, a->weights_spec ? a->weights_spec : "auto", err)) return FEDREC_ERR_ARG;
  if (a->weights_spec && a->dataset && strncmp(a->dataset, "csv:", 4))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "--weights applies to csv: and --train/--test-foldin/--test-holdout files; "
                            "lastfm: uses log:10 and movielens: binary ratings >= --threshold");
  if (!given && !a->dataset) a->dataset = "synthetic";
  return FEDREC_OK;
}

void sim_real_data_defaults(sim_args *a, int32_t train_users, int has_content, char *note, size_t cap) {
  note[0] = 0;
  if (a->algorithm != ALG_FEDAVG || (a->dataset && !strncmp(a->dataset, "synthetic", 9))) return;
  size_t n = 0;
#define NOTE(...) (n += (size_t)snprintf(note + n, n < cap ? cap - n : 0, __VA_ARGS__))
  if (!(a->given & SIM_GIVEN_DIM)) a->ials.dim = 32, NOTE(" --dim 32");
  if (!(a->given & SIM_GIVEN_MODEL)) { /* the content head where there is content: above private popularity at every epsilon */
    if (has_content) a->ials.use_head = 1, a->ials.n_free = 0, NOTE(" --head --free-items 0");
    else a->ials.use_head = 0, a->ials.n_free = -1, NOTE(" --no-head --free-items -1");
    a->head_set = 1;
  }
  if (!(a->given & SIM_GIVEN_COHORT)) {
    int64_t c = (int64_t)train_users * 4 / 5;
    a->fed.cohort = (uint32_t)(c > 400 ? 400 : c < 2 ? 2 : c);
    NOTE(" --cohort %u", a->fed.cohort);
  }
  if (!(a->given & SIM_GIVEN_OPTIMIZER)) { /* the step the scans chose: 0.03 for a head alone, 0.1 for free embeddings */
    int head_only = a->ials.use_head && has_content && a->ials.n_free == 0;
    a->fed.engine.optimizer = FEDREC_OPT_FEDADAM, a->fed.engine.server_lr = head_only ? 0.03 : 0.1;
    NOTE(" --optimizer fedadam --server-lr %g", a->fed.engine.server_lr);
  }
  if (!(a->given & SIM_GIVEN_NOISE)) a->fed.target_epsilon = 8, NOTE(" --target-epsilon 8");
  if (!(a->given & SIM_GIVEN_POPULARITY) && !a->fed.popularity_only && !a->fed.engine.tree_noise_multiplier && !a->fed.audit_canaries)
    a->fed.engine.popularity_rounds = 1, NOTE(" --popularity-rounds 1");
#undef NOTE
}
