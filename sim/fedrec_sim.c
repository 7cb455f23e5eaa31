/* fedrec-sim: train and evaluate recommenders on a dataset (central baselines for now;
 * the federated algorithms join this same command). */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fedrec/internal/tool.h"
#include "sim_args.h"

#ifdef FEDREC_SIM_MPI
#include <mpi.h>
#endif

static const sim_args *g_args; /* for progress output only */

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
  if (g_args && g_args->quiet) return;
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
}

/* --weights on a CSV's weights (a given split: decided on the training file, applied to all
 * three): what was applied is said; raw weights that look like play counts are warned about. */
static void confidences(fedrec_dataset *ds, fedrec_split *sp, const sim_args *a, int split) {
  fedrec_csr *R = split ? &sp->train : &ds->R;
  int counts = fedrec_weights_look_like_counts(R);
  fedrec_weights done = fedrec_weights_apply(R, &a->weights);
  if (split) {
    fedrec_weights_apply(&sp->foldin, &done);
    fedrec_weights_apply(&sp->holdout, &done);
    fedrec_weights_apply(&ds->R, &done);
  }
  if (counts && done.kind == FEDREC_WEIGHTS_RAW)
    fprintf(stderr, "fedrec-sim: warning: the weights look like raw counts (whole numbers above 1) and are used as "
                    "confidences unchanged (--weights raw); --weights log gives 1 + log(1 + w/10)\n");
  else if (counts && !a->weights_spec)
    say("weights look like counts: confidence 1 + log(1 + w/%g) (--weights raw keeps them as given)\n", done.scale);
}

static fedrec_status load(fedrec_dataset *ds, fedrec_split *sp, const sim_args *a,
                          fedrec_error *err) {
  fedrec_status st;
  const char *d = a->dataset;
  if (!d) {
    st = fedrec_split_files(sp, ds, a->train, a->test_foldin, a->test_holdout, err);
  } else if (!strncmp(d, "movielens:", 10)) {
    st = fedrec_load_movielens(ds, d + 10, a->threshold, a->content || a->modalities || a->modality_list ? 0 : a->content_dim, err);
  } else if (!strncmp(d, "lastfm:", 7)) {
    st = fedrec_load_lastfm(ds, d + 7, a->content || a->modalities || a->modality_list ? 0 : a->content_dim, err);
  } else if (!strncmp(d, "csv:", 4)) {
    st = fedrec_load_csv(ds, d + 4, err);
  } else if (!strncmp(d, "fitted:", 7)) {
    st = sim_load_fitted(ds, a, d + 7, a->quiet ? NULL : stderr, err);
  } else if (!strncmp(d, "synthetic", 9) && (d[9] == '\0' || d[9] == ':')) {
    fedrec_synth_config sc;
    fedrec_synth_defaults(&sc);
    sc.seed = a->ials.seed;
    sc.threads = a->ials.threads;
    st = d[9] == ':' ? fedrec_synth_parse(&sc, d + 10, err) : FEDREC_OK;
    if (!st) st = fedrec_synth_generate(ds, &sc, err);
  } else {
    return fedrec_error_set(err, FEDREC_ERR_ARG,
                            "--dataset '%s': expected movielens:DIR, lastfm:DIR, csv:FILE, synthetic[:k=v,...] or "
                            "fitted:movielens:DIR[,k=v,...] / fitted:lastfm:DIR[,...]", d);
  }
  if (st) return st;
  if ((a->modalities || a->modality_list) && (st = sim_modalities(ds, a, a->quiet ? NULL : stderr, err))) return st;
  if (a->content) {
    size_t n = strlen(a->content);
    st = n > 4 && !strcmp(a->content + n - 4, ".csv")
             ? fedrec_attach_content_csv(ds, a->content, err)
             : fedrec_attach_npy(ds, a->content, a->content_ids, err);
    if (st) return st;
  }
  if (a->content_precision) { /* the choice's index: 32, 16, 8 */
    int bits = a->content_precision == 1 ? 16 : 8;
    if ((st = fedrec_content_quantize(ds->content, fedrec_idmap_size(ds->items), ds->content_dim, bits, err))) return st;
    say("content embeddings rounded to %d bits (as a device storing them so would see them)\n", bits);
  }
  if (!d || !strncmp(d, "csv:", 4)) confidences(ds, sp, a, !d);
  if (d) st = fedrec_split_users(sp, ds, &a->split, err);
  return st;
}

static void progress(void *ctx, int32_t epoch, int32_t epochs, double obj, double secs) {
  (void)ctx;
  say("  epoch %3d/%d  objective %.6g  %.2fs\n", epoch, epochs, obj, secs);
}

typedef struct {
  fedrec_metrics warm, cold;
  int has_cold;
  double train_s, eval_s;
  int64_t params;
  double contrib[FEDREC_MAX_MODALITIES]; /* each modality's mean |H_m c_i^m| (central, model) */
} result;

/* The item vectors and Gramian of m (*V, *G malloc'd: the caller frees them) and a scorer
 * over them. */
static fedrec_status mf_scorer_of(const fedrec_model *m, float alpha0, float reg, float **V, float **G, fedrec_mf_scorer *mf,
                                  fedrec_scorer *sc, fedrec_error *err) {
  int32_t ni = m->n_items, d = fedrec_model_vdim(m);
  *V = malloc((size_t)ni * d * sizeof **V);
  *G = malloc((size_t)d * d * sizeof **G);
  if (!*V || !*G) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "item vectors");
  fedrec_model_item_vectors(*V, m);
  fedrec_gramian(*G, *V, ni, d);
  *mf = (fedrec_mf_scorer){*V, *G, ni, d, alpha0, reg};
  *sc = fedrec_mf_scorer_make(mf);
  return FEDREC_OK;
}

/* --algorithm model: the blob --model names, checked against the data set. */
static fedrec_status load_model(fedrec_model *m, const sim_args *a, const fedrec_dataset *ds, int32_t ni, fedrec_error *err) {
  char *buf = NULL;
  int64_t len = 0;
  uint64_t version = 0;
  fedrec_status st = fedrec_read_file(a->model, &buf, &len, err);
  if (!st) st = fedrec_model_decode(m, &version, (const uint8_t *)buf, (size_t)len, ds->content, ds->content_dim, err);
  free(buf);
  if (!st && (st = fedrec_model_check_modalities(m, ds, err))) fedrec_model_free(m);
  if (!st && m->n_items != ni) {
    st = fedrec_error_set(err, FEDREC_ERR_ARG, "--model %s: %d items, the dataset has %d", a->model, m->n_items, ni);
    fedrec_model_free(m);
  }
  if (!st) say("evaluating model %s (version %llu, d=%d)\n", a->model, (unsigned long long)version, m->d);
  return st;
}

static fedrec_status run(result *res, const sim_args *a, const fedrec_dataset *ds,
                         const fedrec_split *sp, fedrec_error *err) {
  int32_t ni = sp->train.cols;
  double *counts = malloc((size_t)ni * sizeof *counts);
  uint8_t *cold = sp->n_cold ? sp->is_cold : NULL;
  fedrec_model m = {0};
  float *V = NULL, *G = NULL;
  fedrec_ease_model ease = {0};
  fedrec_scorer sc;
  fedrec_mf_scorer mf;
  fedrec_pop_scorer ps = {counts, ni};
  if (!counts) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "counts");
  fedrec_status st = FEDREC_OK;
  fedrec_item_counts(counts, &sp->train);
  double t0 = fedrec_clock_s();
  if (a->algorithm == ALG_CENTRAL) {
    fedrec_ials_config c = a->ials;
    if (!a->head_set) c.use_head = ds->content != NULL;
    say("training iALS: d=%d reg=%g alpha0=%g epochs=%d head=%s free=%d\n", c.dim, c.reg,
        c.alpha0, c.epochs, c.use_head && ds->content ? "yes" : "no", c.n_free);
    st = fedrec_ials_fit(&m, &sp->train, ds->content, ds->content_dim, &c, progress, NULL, err);
    if (!st) st = fedrec_model_set_modalities(&m, ds, err);
    if (!st) st = mf_scorer_of(&m, c.alpha0, c.reg, &V, &G, &mf, &sc, err);
  } else if (a->algorithm == ALG_MODEL) {
    st = load_model(&m, a, ds, ni, err);
    if (!st) st = mf_scorer_of(&m, a->ials.alpha0, a->ials.reg, &V, &G, &mf, &sc, err);
  } else if (a->algorithm == ALG_EASE) {
    say("training EASE: lambda=%g over %d items\n", a->ease_lambda, ni);
    st = fedrec_ease_fit(&ease, &sp->train, a->ease_lambda, err);
    sc = fedrec_ease_scorer_make(&ease);
    res->params = (int64_t)ease.m * ease.m;
  } else {
    sc = fedrec_pop_scorer_make(&ps);
    res->params = ni;
  }
  if (!st && (a->algorithm == ALG_CENTRAL || a->algorithm == ALG_MODEL)) res->params = fedrec_model_params(&m);
  if (!st && (a->algorithm == ALG_CENTRAL || a->algorithm == ALG_MODEL) && m.H)
    fedrec_modality_contributions(res->contrib, &m, ds), sim_say_contributions(res->contrib, ds, a->quiet ? NULL : stderr);
  res->train_s = fedrec_clock_s() - t0;
  uint8_t *warm = NULL;
  if (!st && cold) {
    warm = malloc((size_t)ni);
    if (!warm) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "candidates");
    for (int32_t i = 0; warm && i < ni; i++) warm[i] = !cold[i];
  }
  int32_t *lists = a->dump_recs ? malloc((size_t)sp->foldin.rows * a->k * sizeof *lists + 1) : NULL;
  if (a->dump_recs && !lists) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "--dump-recs");
  fedrec_eval_config ec = {.k = a->k, .threads = a->ials.threads, .candidates = warm,
                           .content = ds->content, .content_dim = ds->content_dim,
                           .item_users = counts, .train_users = sp->train.rows, .lists = lists};
  t0 = fedrec_clock_s();
  if (!st) {
    say("evaluating %d test users over %d items\n", sp->foldin.rows, ni);
    st = fedrec_evaluate(&res->warm, &sc, &sp->foldin, &sp->holdout, &ec, err);
  }
  if (!st && lists) st = sim_dump_recs(a->dump_recs, lists, &sp->holdout, ds, a->k, err);
  if (!st && a->save_model && a->algorithm == ALG_CENTRAL) st = sim_save_model(a->save_model, &m, err);
  ec.lists = NULL;
  free(lists);
  if (!st && cold) {
    ec.candidates = cold;
    st = fedrec_evaluate(&res->cold, &sc, &sp->foldin, &sp->cold_holdout, &ec, err);
    res->has_cold = 1;
  }
  res->eval_s = fedrec_clock_s() - t0;
  free(warm);
  free(counts);
  free(V);
  free(G);
  fedrec_ease_free(&ease);
  fedrec_model_free(&m);
  return st;
}

static const char *alg_name(sim_algorithm a) {
  return a == ALG_CENTRAL ? "central" : a == ALG_EASE ? "ease" : a == ALG_MODEL ? "model" : "popularity";
}

static void json_num(const char *key, double v, int last) {
  if (isfinite(v)) printf("\"%s\": %.6g%s", key, v, last ? "" : ", ");
  else printf("\"%s\": null%s", key, last ? "" : ", ");
}

static void print_json(const result *r, const sim_args *a, const fedrec_dataset *ds,
                       const fedrec_split *sp) {
  char key[64];
  int k = a->k;
  printf("{\"algorithm\": \"%s\", \"dataset\": ", alg_name(a->algorithm));
  fedrec_json_string(stdout, ds->name);
  printf(", ");
  json_num("users", r->warm.users, 0);
  json_num("items", sp->train.cols, 0);
  json_num("train_users", sp->train.rows, 0);
  json_num("train_interactions", (double)fedrec_csr_nnz(&sp->train), 0);
  snprintf(key, sizeof key, "recall@%d", k), json_num(key, r->warm.recall, 0);
  snprintf(key, sizeof key, "ndcg@%d", k), json_num(key, r->warm.ndcg, 0);
  snprintf(key, sizeof key, "coverage@%d", k), json_num(key, r->warm.coverage, 0);
  snprintf(key, sizeof key, "diversity@%d", k), json_num(key, r->warm.diversity, 0);
  snprintf(key, sizeof key, "novelty@%d", k), json_num(key, r->warm.novelty, 0);
  if (r->has_cold) {
    json_num("cold_items", sp->n_cold, 0);
    json_num("cold_users", r->cold.users, 0);
    snprintf(key, sizeof key, "cold_recall@%d", k), json_num(key, r->cold.recall, 0);
    snprintf(key, sizeof key, "cold_ndcg@%d", k), json_num(key, r->cold.ndcg, 0);
  }
  json_num("params", (double)r->params, 0);
  for (int32_t m = 0; m < ds->n_modalities; m++) {
    snprintf(key, sizeof key, "contribution:%s", ds->modalities[m].name);
    json_num(key, r->contrib[m], 0);
  }
  json_num("seconds_train", r->train_s, 0);
  json_num("seconds_eval", r->eval_s, 1);
  printf("}\n");
}

static void print_table(const result *r, const sim_args *a, const fedrec_dataset *ds,
                        const fedrec_split *sp) {
  int k = a->k;
  printf("fedrec-sim  algorithm=%s  dataset=%s\n", alg_name(a->algorithm), ds->name);
  printf("  train: %d users, %d items, %lld interactions; test: %d users evaluated\n",
         sp->train.rows, sp->train.cols, (long long)fedrec_csr_nnz(&sp->train), r->warm.users);
  printf("  Recall@%-6d %8.4f\n", k, r->warm.recall);
  printf("  NDCG@%-8d %8.4f\n", k, r->warm.ndcg);
  printf("  Coverage@%-4d %8.4f\n", k, r->warm.coverage);
  if (isfinite(r->warm.diversity)) printf("  Diversity@%-3d %8.4f\n", k, r->warm.diversity);
  printf("  Novelty@%-5d %8.4f\n", k, r->warm.novelty);
  if (r->has_cold)
    printf("  cold start (%d items, %d users): Recall@%d %.4f  NDCG@%d %.4f\n", sp->n_cold,
           r->cold.users, k, r->cold.recall, k, r->cold.ndcg);
  printf("  train %.2fs  eval %.2fs\n", r->train_s, r->eval_s);
}

static const char *noise_name(const fedsim_config *c) {
  return c->engine.noise_multiplier <= 0 && c->target_epsilon <= 0 ? "none"
         : c->engine.central                                       ? "central"
         : c->engine.noise == FEDREC_NOISE_DGAUSS                  ? "dgauss"
                                                            : "skellam";
}

static const char *fed_name(const fedsim_config *c) { return c->popularity_only ? "private-popularity" : "fedavg"; }

/* The run's full configuration, as JSON (config.json of --out). */
static void write_config(FILE *f, const sim_args *a, const fedsim_config *c, const fedrec_dataset *ds, int argc,
                         char **argv) {
  fprintf(f, "{\"command\": [");
  for (int i = 0; i < argc; i++) {
    fedrec_json_string(f, argv[i]);
    fprintf(f, "%s", i + 1 < argc ? ", " : "");
  }
  fprintf(f, "], \"fedrec_version\": \"%s\", \"algorithm\": \"%s\", \"dataset\": ", FEDREC_VERSION, fed_name(c));
  fedrec_json_string(f, ds->name);
  fprintf(f, ", \"items\": %d, \"users\": %d,\n", ds->R.cols, ds->R.rows);
  fprintf(f, " \"split\": {\"test_users\": %g, \"holdout\": %g, \"cold_items\": %g, \"min_items\": %d, \"seed\": %llu},\n",
          a->split.test_users, a->split.holdout, a->split.cold_items, a->split.min_items, (unsigned long long)a->split.seed);
  fprintf(f, " \"model\": {\"dim\": %d, \"head\": %s, \"free_items\": %s, \"unobserved_weight\": %g, \"reg\": %g},\n", c->dim,
          c->use_head && ds->content ? "true" : "false", c->free_items ? "true" : "false", c->engine.alpha0, c->engine.reg);
  fprintf(f, " \"rounds\": %u, \"cohort\": %u, \"sampling_rate\": %g, \"min_survivors\": %u, \"dropout\": %g,\n", c->rounds,
          c->sampling_rate > 0 ? 0 : c->cohort, c->sampling_rate, c->min_survivors, c->dropout);
  fprintf(f, " \"max_participation\": %u, \"min_separation\": %u, \"tree_noise_multiplier\": %g, \"tree_rounds\": %u,\n",
          c->engine.max_participation, c->engine.min_separation, c->target_epsilon > 0 ? 0 : c->engine.tree_noise_multiplier,
          c->engine.tree_rounds);
  fprintf(f, " \"popularity_rounds\": %u, \"spectral_items\": %u,", c->engine.popularity_rounds, c->engine.spectral_items);
  if (c->popularity_share < 0) fprintf(f, " \"popularity_share\": \"auto\",\n");
  else fprintf(f, " \"popularity_share\": %g,\n", c->popularity_share);
  fprintf(f, " \"privacy\": \"%s\", \"clip\": %g, \"noise_multiplier\": %g, \"target_epsilon\": %g, \"delta\": %g, \"budget\": %g,\n",
          noise_name(c), c->engine.clip, c->target_epsilon > 0 ? 0 : c->engine.noise_multiplier, c->target_epsilon, c->delta, c->budget);
  fprintf(f, " \"local_steps\": %u, \"client_lr\": %g,", c->engine.local_steps ? c->engine.local_steps : 1, c->engine.client_lr > 0 ? c->engine.client_lr : 1);
  fprintf(f, " \"optimizer\": \"%s\", \"server_lr\": %g, \"momentum\": %g, \"secagg\": \"%s\", \"noise_draws\": \"%s\",\n",
          fedrec_optimizer_name(c->engine.optimizer), c->engine.server_lr, c->engine.momentum,
          c->engine.plain ? "plain" : c->engine.active ? "active" : "full",
          c->client_noise ? "clients" : "sum");
  fprintf(f, " \"exact_noise\": %s,", c->exact_noise ? "true" : "false");
  fprintf(f, " \"audit_canaries\": %u, \"audit_guesses\": %u,\n", c->audit_canaries, c->audit_guesses);
  fprintf(f, " \"k\": %d, \"eval_every\": %u, \"seed\": %llu, \"threads\": %d}\n", c->k, c->eval_every,
          (unsigned long long)c->seed, c->threads);
}

/* The final object: the central algorithms' keys plus epsilon, delta, rounds and the run's. */
static void write_summary(FILE *f, const fedsim_result *fr, const fedsim_config *fc, const sim_args *a,
                          const fedrec_dataset *ds, const fedrec_split *sp) {
  int k = a->k;
  char eps[32] = "null", planned[32] = "null"; /* without privacy no epsilon holds */
  if (strcmp(noise_name(fc), "none")) {
    snprintf(eps, sizeof eps, "%.6g", fr->epsilon);
    snprintf(planned, sizeof planned, "%.6g", fr->planned_epsilon);
  }
  fprintf(f, "{\"algorithm\": \"%s\", \"dataset\": ", fed_name(fc));
  fedrec_json_string(f, ds->name);
  fprintf(f,
          ", \"users\": %d, \"items\": %d, \"train_users\": %d, "
          "\"train_interactions\": %lld, \"recall@%d\": %.6g, \"ndcg@%d\": %.6g, \"coverage@%d\": %.6g, \"params\": %lld, "
          "\"epsilon\": %s, \"delta\": %.6g, \"rounds\": %u, \"planned_epsilon\": %s, \"privacy\": \"%s\", "
          "\"cohort\": %u, \"sampling_rate\": %g, \"noise_multiplier\": %.6g, \"clip\": %g, "
          "\"bytes_up_per_client\": %.0f, \"bytes_down_per_client\": %.0f, \"seconds\": %.3f, \"secagg\": \"%s\", "
          "\"stop_reason\": ",
          fr->metrics.users, sp->train.cols, sp->train.rows, (long long)fedrec_csr_nnz(&sp->train), k,
          fr->metrics.recall, k, fr->metrics.ndcg, k, fr->metrics.coverage, (long long)fr->params, eps, fc->delta,
          fr->rounds_done, planned, noise_name(fc), fc->sampling_rate > 0 ? 0 : fc->cohort, fc->sampling_rate,
          fr->noise_multiplier, fc->engine.clip, fr->bytes_up, fr->bytes_down, fr->seconds,
          fc->engine.plain ? "plain" : fc->engine.active ? "active" : "full");
  fedrec_json_string(f, fr->stop_reason);
  fprintf(f, ", \"model_hash\": \"%s\", \"max_participation\": %u, \"popularity_rounds\": %u", fr->model_hash,
          fc->engine.max_participation, fc->engine.popularity_rounds);
  if (fc->engine.popularity_rounds)
    fprintf(f, ", \"popularity_noise_multiplier\": %.6g, \"popularity_share\": %.4g", fr->popularity_noise_multiplier,
            fr->popularity_share);
  if (fr->has_cold)
    fprintf(f, ", \"cold_recall@%d\": %.6g, \"cold_ndcg@%d\": %.6g, \"cold_users\": %d", k, fr->cold.recall, k, fr->cold.ndcg,
            fr->cold.users);
  if (fc->engine.tree_noise_multiplier > 0)
    fprintf(f, ", \"epsilon_public\": %.6g, \"tree_noise_multiplier\": %.6g, \"tree_rounds\": %u", fr->epsilon_public,
            fr->tree_noise_multiplier, fc->engine.tree_rounds);
  if (fr->audit_canaries)
    fprintf(f, ", \"audit\": {\"canaries\": %u, \"included\": %u, \"guesses\": %u, \"correct\": %u, "
               "\"epsilon_lower\": %.6g, \"confidence\": 0.95}",
            fr->audit_canaries, fr->audit_included, fr->audit_guesses, fr->audit_correct, fr->audit_epsilon_lower);
  fprintf(f, "}\n");
}

/* mkdir -p: DIR and its missing parents, so that --out fails (or not) before the data loads. */
static fedrec_status make_dirs(const char *dir, fedrec_error *err) {
  char p[4096];
  if (snprintf(p, sizeof p, "%s", dir) >= (int)sizeof p) return fedrec_error_set(err, FEDREC_ERR_ARG, "--out: path too long");
  for (char *q = p + 1;; q++) {
    if (*q != '/' && *q) continue;
    char c = *q;
    *q = 0;
    struct stat st;
    if (mkdir(p, 0755) && (errno != EEXIST || stat(p, &st) || !S_ISDIR(st.st_mode)))
      return fedrec_error_set(err, FEDREC_ERR_IO, "--out %s: cannot create %s: %s", dir, p, errno == EEXIST ? "not a directory" : strerror(errno));
    if (!(*q = c)) break;
  }
  if (access(dir, W_OK)) return fedrec_error_set(err, FEDREC_ERR_IO, "--out %s: not writable: %s", dir, strerror(errno));
  return FEDREC_OK;
}

static FILE *open_in(const char *dir, const char *name, fedrec_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) fedrec_error_set(err, FEDREC_ERR_IO, "--out: cannot create %s: %s", path, strerror(errno));
  return f;
}

static fedrec_status run_fedavg(const sim_args *a, const fedrec_dataset *ds, const fedrec_split *sp, int argc, char **argv,
                                fedrec_error *err) {
  fedsim_config fc = a->fed;
  fc.save_model = a->save_model;
  if (fc.engine.noise == FEDREC_NOISE_NONE) fc.engine.noise_multiplier = 0, fc.engine.noise = FEDREC_NOISE_SKELLAM;
  fc.dim = a->ials.dim;
  fc.use_head = a->head_set ? a->ials.use_head : 1;
  fc.free_items = a->ials.n_free != 0;
  fc.engine.alpha0 = a->ials.alpha0;
  fc.engine.reg = a->ials.reg;
  fc.seed = a->ials.seed;
  fc.threads = a->ials.threads > 0 ? a->ials.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
  fc.k = a->k;
  fc.progress = !a->quiet && isatty(2);
  FILE *log = NULL, *cfg = NULL, *sum = NULL;
  fedrec_status st = FEDREC_OK;
  if (fedsim_rank() != 0) { /* fedrec-sim-mpi: another rank's clients; rank 0 reports */
    fedsim_result fr;
    if (!fedsim_agree(1)) return fedrec_error_set(err, FEDREC_ERR_STATE, "rank 0 stopped before the run");
    return fedsim_run(&fr, &fc, ds, sp, NULL, err);
  }
  if (a->out) {
    if (!(cfg = open_in(a->out, "config.json", err))) st = FEDREC_ERR_IO;
    else {
      write_config(cfg, a, &fc, ds, argc, argv);
      if (fclose(cfg)) st = fedrec_error_set(err, FEDREC_ERR_IO, "--out %s: writing config.json failed", a->out);
      else if (!(log = open_in(a->out, "rounds.jsonl", err))) st = FEDREC_ERR_IO;
    }
  } else if (a->log && !(log = fopen(a->log, "w")))
    st = fedrec_error_set(err, FEDREC_ERR_IO, "--log %s: cannot create: %s", a->log, strerror(errno));
  if (!fedsim_agree(st == FEDREC_OK)) return st;
  say("federated: %u rounds, %s, d=%d, %s, %s, clip %g, %s\n", fc.rounds, fc.sampling_rate > 0 ? "Poisson cohorts" : "fixed cohorts",
      fc.dim, noise_name(&fc),
      fc.target_epsilon > 0 ? "noise calibrated to the target epsilon" : fc.engine.noise_multiplier > 0 ? "noise multiplier given" : "no noise",
      fc.engine.clip, fc.engine.plain ? "plain sums (no masks)" : "SecAgg+ (full cryptography)");
  fedsim_result fr;
  st = fedsim_run(&fr, &fc, ds, sp, log, err);
  if (log && fclose(log) && !st) st = fedrec_error_set(err, FEDREC_ERR_IO, "writing the per-round log failed");
  if (st) return st;
  if (fr.stop_reason[0]) say("stopped: %s\n", fr.stop_reason);
  if (a->out) {
    if (!(sum = open_in(a->out, "summary.json", err))) return FEDREC_ERR_IO;
    write_summary(sum, &fr, &fc, a, ds, sp);
    if (fclose(sum)) return fedrec_error_set(err, FEDREC_ERR_IO, "--out %s: writing summary.json failed", a->out);
  }
  char bound[200] = "";
  if (fc.engine.max_participation)
    snprintf(bound, sizeof bound, ", each user in at most %u of them", fc.engine.max_participation);
  if (fc.engine.tree_noise_multiplier > 0)
    snprintf(bound + strlen(bound), sizeof bound - strlen(bound), "; DP-FTRL (trees of %u rounds, tree multiplier %.4g): "
             "epsilon %.4f against model recipients", fc.engine.tree_rounds, fr.tree_noise_multiplier, fr.epsilon_public);
  if (a->json) {
    write_summary(stdout, &fr, &fc, a, ds, sp);
  } else {
    printf("fedrec-sim  algorithm=%s  dataset=%s\n", fed_name(&fc), ds->name);
    if (fc.target_epsilon > 0)
      printf("  %s %.4g calibrated for epsilon %g%s at delta %g over %u rounds (planned %.4f)\n",
             fc.engine.tree_noise_multiplier > 0 ? "tree noise multiplier" : "noise multiplier",
             fc.engine.tree_noise_multiplier > 0 ? fr.tree_noise_multiplier : fr.noise_multiplier, fc.target_epsilon,
             fc.engine.tree_noise_multiplier > 0 ? " against model recipients" : "", fc.delta, fc.rounds, fr.planned_epsilon);
    if (fc.engine.popularity_rounds && !fc.popularity_only && fr.popularity_noise_multiplier > 0)
      printf("  count rounds: %u, noise multiplier %.4g (%.0f%% of the budget%s)\n", fc.engine.popularity_rounds,
             fr.popularity_noise_multiplier, 100 * fr.popularity_share, fc.popularity_share < 0 ? ", --popularity-share auto" : "");
    if (!strcmp(noise_name(&fc), "none"))
      printf("  %u rounds of %s, no differential privacy\n", fr.rounds_done, fc.sampling_rate > 0 ? "Poisson cohorts" : "fixed cohorts");
    else
      printf("  %u rounds of %s, epsilon %.4f at delta %g (noise multiplier %.4g)%s\n", fr.rounds_done,
             fc.sampling_rate > 0 ? "Poisson cohorts" : "fixed cohorts", fr.epsilon, fc.delta, fr.noise_multiplier, bound);
    printf("  Recall@%-6d %8.4f\n  NDCG@%-8d %8.4f\n  Coverage@%-4d %8.4f\n", a->k, fr.metrics.recall, a->k, fr.metrics.ndcg,
           a->k, fr.metrics.coverage);
    printf("  per client and round: %.0f bytes up, %.0f bytes down; %.1f s in all\n", fr.bytes_up, fr.bytes_down, fr.seconds);
    if (fr.audit_canaries)
      printf("  audit: %u canaries (%u included), %u of %u guesses right: epsilon >= %.3f (95%% confidence) against the "
             "accountant's %.3f\n",
             fr.audit_canaries, fr.audit_included, fr.audit_correct, fr.audit_guesses, fr.audit_epsilon_lower, fr.epsilon);
    if (a->out) printf("  written: %s/config.json, rounds.jsonl, summary.json\n", a->out);
  }
  return FEDREC_OK;
}

/* --export-train FILE: the first n training users' histories as user,item,weight rows (the
 * dataset's ids; weights as the loader made them), one device's each, for fedrec-client
 * import; their ids on standard output. Histories: created 0600. */
static fedrec_status export_train(const fedrec_dataset *ds, const fedrec_split *sp, int32_t n, const char *path, fedrec_error *err) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
  if (!f) {
    if (fd >= 0) close(fd);
    return fedrec_error_set(err, FEDREC_ERR_IO, "--export-train %s: %s", path, strerror(errno));
  }
  fprintf(f, "user,item,weight\n");
  for (int32_t i = 0; i < n && i < sp->train.rows; i++) {
    const char *user = fedrec_idmap_name(ds->users, sp->train_user[i]);
    for (int64_t k = sp->train.indptr[i]; k < sp->train.indptr[i + 1]; k++)
      fprintf(f, "%s,%s,%.6g\n", user, fedrec_idmap_name(ds->items, sp->train.indices[k]), sp->train.values[k]);
    printf("%s\n", user);
  }
  int bad = ferror(f) | fclose(f);
  return bad ? fedrec_error_set(err, FEDREC_ERR_IO, "--export-train %s: write failed", path) : FEDREC_OK;
}


static int sim_main(int argc, char **argv) {
  sim_args a;
  fedrec_error err = {0};
  int help;
  if (sim_parse_args(&a, argc, argv, &help, &err)) {
    if (fedsim_rank() == 0) fprintf(stderr, "fedrec-sim: %s\n", err.msg);
    return 2;
  }
  if (help) {
    if (fedsim_rank() == 0) sim_usage(stdout);
    return 0;
  }
  if (fedsim_ranks() > 1 && a.algorithm != ALG_FEDAVG) {
    if (fedsim_rank() == 0) fprintf(stderr, "fedrec-sim-mpi: only --algorithm fedavg runs over MPI ranks (use fedrec-sim)\n");
    return 2;
  }
  if (fedsim_rank() != 0) a.quiet = 1, a.json = 0, a.out = NULL, a.log = NULL;
  /* --out before the data loads, to fail early (on every rank: it is decided on rank 0) */
  if (!fedsim_agree(!(a.algorithm == ALG_FEDAVG && a.out && make_dirs(a.out, &err)))) {
    if (fedsim_rank() == 0) fprintf(stderr, "fedrec-sim: %s\n", err.msg);
    return 1;
  }
  g_args = &a;
  fedrec_dataset ds = {0};
  fedrec_split sp = {0};
  result res = {0};
  double t0 = fedrec_clock_s();
  say("loading %s\n", a.dataset ? a.dataset : a.train);
  fedrec_status st = load(&ds, &sp, &a, &err);
  if (!st) {
    say("loaded %d users x %d items, %lld interactions%s in %.2fs\n", ds.R.rows, ds.R.cols,
        (long long)fedrec_csr_nnz(&ds.R), ds.content ? " with content" : "", fedrec_clock_s() - t0);
    if (a.print_train_users) {
      if (!sp.train_user) st = fedrec_error_set(&err, FEDREC_ERR_ARG, "--print-train-users needs a built-in split");
      if (!st && a.export_train) st = export_train(&ds, &sp, a.print_train_users, a.export_train, &err);
      for (int32_t i = 0; !st && !a.export_train && i < a.print_train_users && i < sp.train.rows; i++) printf("%d\n", sp.train_user[i]);
      fedrec_split_free(&sp);
      fedrec_dataset_free(&ds);
      if (st) fprintf(stderr, "fedrec-sim: %s\n", err.msg);
      return st ? 1 : 0;
    }
    if (a.algorithm == ALG_FEDAVG) {
      char note[200];
      sim_real_data_defaults(&a, sp.train.rows, ds.content != NULL, note, sizeof note);
      if (note[0]) say("real data: settings no flag gave, scaled from the data:%s\n", note);
      st = run_fedavg(&a, &ds, &sp, argc, argv, &err);
      if (!st && a.save_model && fedsim_rank() == 0) st = sim_save_model_ids(a.save_model, &ds, &err);
      fedrec_split_free(&sp);
      fedrec_dataset_free(&ds);
      if (st && fedsim_rank() == 0) fprintf(stderr, "fedrec-sim: %s\n", err.msg);
      return st ? 1 : 0;
    }
    st = run(&res, &a, &ds, &sp, &err);
    if (!st && a.save_model && a.algorithm == ALG_CENTRAL) st = sim_save_model_ids(a.save_model, &ds, &err);
  }
  if (st) {
    fprintf(stderr, "fedrec-sim: %s\n", err.msg[0] ? err.msg : fedrec_status_str(st));
  } else if (a.json) {
    print_json(&res, &a, &ds, &sp);
  } else {
    print_table(&res, &a, &ds, &sp);
  }
  fedrec_split_free(&sp);
  fedrec_dataset_free(&ds);
  return st ? 1 : 0;
}

int main(int argc, char **argv) {
#ifdef FEDREC_SIM_MPI
  int provided;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided); /* MPI calls come from the main thread */
  int rc = sim_main(argc, argv);
  MPI_Finalize();
  return rc;
#else
  return sim_main(argc, argv);
#endif
}
