/* fedrec-sim's multimodal content (docs/MODEL.md "Multimodal content"): --modalities and
 * what each modality contributes to the trained item vectors. */
#include <stdio.h>
#include <string.h>

#include "fedrec/content.h"
#include "sim_args.h"

/* --modalities: the data set's metadata as named modalities, or a subset of the generator's. */
fedrec_status sim_modalities(fedrec_dataset *ds, const sim_args *a, FILE *log, fedrec_error *err) {
  fedrec_norm norm = FEDREC_NORM_L2;
  fedrec_status st = a->modality_norm ? fedrec_norm_parse(&norm, a->modality_norm, err) : FEDREC_OK;
  const char *d = a->dataset ? a->dataset : "";
  if (st) return st;
  if (a->content) return fedrec_error_set(err, FEDREC_ERR_ARG, "--modalities or --modality-list, and --content: give one");
  if (a->modality_list) {
    if ((st = fedrec_content_modality_list(ds, a->modality_list, 0, NULL, 0, err))) return st;
    if (!st && a->modalities) st = fedrec_modalities_select(ds, a->modalities, norm, err);
  } else if (!strncmp(d, "movielens:", 10)) st = fedrec_content_modalities(ds, "movielens", d + 10, a->modalities, norm, err);
  else if (!strncmp(d, "lastfm:", 7)) st = fedrec_content_modalities(ds, "lastfm", d + 7, a->modalities, norm, err);
  else if (ds->n_modalities) st = fedrec_modalities_select(ds, a->modalities, norm, err);
  else return fedrec_error_set(err, FEDREC_ERR_ARG, "--modalities: %s has no named modalities (movielens:, lastfm:, "
                               "synthetic:...,modalities=K)", d[0] ? d : "the given split");
  for (int32_t m = 0; !st && m < ds->n_modalities; m++) {
    int32_t n = fedrec_idmap_size(ds->items), have = 0;
    for (int32_t i = 0; i < n; i++) have += ds->modality_mask[(size_t)i * ds->n_modalities + m];
    if (log) fprintf(log, "modality %s: %d dimensions, %d of %d items have it\n", ds->modalities[m].name, ds->modalities[m].dim, have, n);
  }
  return st;
}

void sim_say_contributions(const double *contrib, const fedrec_dataset *ds, FILE *log) {
  if (!log || !ds->n_modalities) return;
  fprintf(log, "modality contributions (mean |H_m c_i^m| over the items that have it):");
  for (int32_t m = 0; m < ds->n_modalities; m++) fprintf(log, " %s %.4f", ds->modalities[m].name, contrib[m]);
  fprintf(log, "\n");
}
