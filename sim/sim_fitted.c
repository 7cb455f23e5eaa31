/* fedrec-sim --dataset fitted:SOURCE[,key=value,...] (include/fedrec/fitted.h). */
#include <stdio.h>
#include <string.h>

#include "fedrec/fitted.h"
#include "sim_args.h"

/* --dataset fitted:SOURCE[,key=value,...]: a population drawn from a factor model fitted on the
 * real set SOURCE (movielens:DIR or lastfm:DIR), with how well it matches printed. */
fedrec_status sim_load_fitted(fedrec_dataset *ds, const sim_args *a, const char *spec, FILE *msg, fedrec_error *err) {
  char src_spec[4096];
  const char *comma = strchr(spec, ',');
  size_t n = comma ? (size_t)(comma - spec) : strlen(spec);
  if (n >= sizeof src_spec) return fedrec_error_set(err, FEDREC_ERR_ARG, "--dataset fitted: source too long");
  memcpy(src_spec, spec, n);
  src_spec[n] = 0;
  fedrec_fitted_config fc;
  fedrec_fitted_defaults(&fc);
  fc.seed = a->ials.seed, fc.threads = a->ials.threads;
  fedrec_status st = comma ? fedrec_fitted_parse(&fc, comma + 1, err) : FEDREC_OK;
  fedrec_dataset src;
  if (st) return st;
  if (!strncmp(src_spec, "movielens:", 10)) st = fedrec_load_movielens(&src, src_spec + 10, a->threshold, a->content ? 0 : a->content_dim, err);
  else if (!strncmp(src_spec, "lastfm:", 7)) st = fedrec_load_lastfm(&src, src_spec + 7, a->content ? 0 : a->content_dim, err);
  else return fedrec_error_set(err, FEDREC_ERR_ARG, "--dataset fitted:%s: the source must be movielens:DIR or lastfm:DIR", src_spec);
  if (st) return st;
  if (msg) fprintf(msg, "fitting a d=%d factor model on %s (%d users, %d items) and drawing %d users\n", fc.dim, src.name, src.R.rows, src.R.cols, fc.users);
  fedrec_fitted_stats fs;
  st = fedrec_fitted_generate(ds, &fs, &src, &fc, err);
  fedrec_dataset_free(&src);
  if (st) return st;
  if (msg) fprintf(msg, "fitted population (tau %.4g): source vs fitted\n"
      "  interactions on the top 0.1%%/1%%/10%% of items: %.3f/%.3f/%.3f vs %.3f/%.3f/%.3f\n"
      "  history length p10/p50/p90 %.0f/%.0f/%.0f vs %.0f/%.0f/%.0f, mean %.1f vs %.1f; items used %d vs %d\n",
      fs.tau, fs.share[0][0], fs.share[0][1], fs.share[0][2], fs.share[1][0], fs.share[1][1], fs.share[1][2], fs.len_q[0][0],
      fs.len_q[0][1], fs.len_q[0][2], fs.len_q[1][0], fs.len_q[1][1], fs.len_q[1][2], fs.len_mean[0], fs.len_mean[1],
      fs.items_used[0], fs.items_used[1]);
  if (msg && fc.match_items) fprintf(msg, "  per-item offsets: items' shares within total variation %.3f of the source's\n", fs.offset_tv);
  return FEDREC_OK;
}

