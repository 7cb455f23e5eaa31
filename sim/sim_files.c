/* fedrec-sim's output files: the trained model and its ids, and the recommendations. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_args.h"

static fedrec_status write_file(const char *path, const void *b, size_t n, const char *flag, fedrec_error *err) {
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(b, 1, n, f) != n || fclose(f)) {
    if (f) fclose(f);
    return fedrec_error_set(err, FEDREC_ERR_IO, "%s %s: %s", flag, path, strerror(errno));
  }
  return FEDREC_OK;
}

/* --save-model F: the blob of include/fedrec/model.h (version 1), what --algorithm model and
 * fedrec-coordinator export-model read and write. */
fedrec_status sim_save_model(const char *path, const fedrec_model *m, fedrec_error *err) {
  size_t n = fedrec_model_encoded_size(m);
  uint8_t *b = malloc(n);
  if (!b) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "--save-model");
  fedrec_model_encode(b, m, 1);
  fedrec_status st = write_file(path, b, n, "--save-model", err);
  free(b);
  return st;
}

/* --save-model F also writes F.ids: the model's items in row order, one id per line, so that
 * the coordinator's initial-model matches the rows to its catalogue by id. */
fedrec_status sim_save_model_ids(const char *path, const fedrec_dataset *ds, fedrec_error *err) {
  char p[4096];
  if ((size_t)snprintf(p, sizeof p, "%s.ids", path) >= sizeof p) return fedrec_error_set(err, FEDREC_ERR_ARG, "--save-model: path too long");
  FILE *f = fopen(p, "w");
  int ok = f != NULL;
  for (int32_t i = 0; ok && i < fedrec_idmap_size(ds->items); i++) ok = fprintf(f, "%s\n", fedrec_idmap_name(ds->items, i)) > 0;
  if (f && fclose(f)) ok = 0;
  return ok ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_IO, "--save-model %s: %s", p, strerror(errno));
}

/* --dump-recs F: for every evaluated test user (t<row of the test split>), the top k in
 * order and the held-out items, so that anyone can recompute the metrics with their own code:
 *   test_user,list,rank,item      list: recommended (rank 1..k) or held_out (rank 0) */
fedrec_status sim_dump_recs(const char *path, const int32_t *lists, const fedrec_csr *holdout, const fedrec_dataset *ds,
                               int32_t k, fedrec_error *err) {
  FILE *f = fopen(path, "w");
  if (!f) return fedrec_error_set(err, FEDREC_ERR_IO, "--dump-recs %s: %s", path, strerror(errno));
  fprintf(f, "test_user,list,rank,item\n");
  for (int32_t u = 0; u < holdout->rows; u++) {
    if (lists[(size_t)u * k] < 0) continue; /* not evaluated (no fold-in or held-out part) */
    for (int32_t r = 0; r < k && lists[(size_t)u * k + r] >= 0; r++)
      fprintf(f, "t%d,recommended,%d,%s\n", u, r + 1, fedrec_idmap_name(ds->items, lists[(size_t)u * k + r]));
    for (int64_t j = holdout->indptr[u]; j < holdout->indptr[u + 1]; j++)
      fprintf(f, "t%d,held_out,0,%s\n", u, fedrec_idmap_name(ds->items, holdout->indices[j]));
  }
  int bad = ferror(f) | fclose(f);
  return bad ? fedrec_error_set(err, FEDREC_ERR_IO, "--dump-recs %s: write failed", path) : FEDREC_OK;
}

