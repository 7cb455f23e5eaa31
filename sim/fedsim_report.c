/* fedrec-sim --algorithm fedavg, reporting: the model evaluated on the held-out users, one
 * JSON line per round (rounds.jsonl), a progress line on the terminal, and at the end the
 * result: stop reason, metrics, the one-run privacy audit, the final model's hash. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/audit.h"
#include "fedrec/internal/tool.h"
#include "fedsim_internal.h"

/* Private popularity: the test users ranked by the model's noisy counts alone. */
static fedrec_status evaluate_popularity(const sim *m, const fedrec_model *md, fedrec_metrics *out, fedrec_error *err) {
  double *counts = malloc((size_t)md->n_items * sizeof *counts);
  if (!counts) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "evaluation");
  for (int32_t i = 0; i < md->n_items; i++) counts[i] = md->pop ? md->pop[i] : 0;
  fedrec_pop_scorer ps = {counts, md->n_items};
  fedrec_scorer sc = fedrec_pop_scorer_make(&ps);
  fedrec_eval_config ec = {.k = m->c->k, .threads = m->c->threads, .content = m->ds->content, .content_dim = m->ds->content_dim};
  fedrec_status s = fedrec_evaluate(out, &sc, &m->sp->foldin, &m->sp->holdout, &ec, err);
  free(counts);
  return s;
}

fedrec_status fedsim_evaluate(const sim *m, fedrec_metrics *out, fedrec_metrics *cold, fedrec_error *err) {
  const fedrec_model *md = fedrec_engine_current_model(m->e);
  if (m->c->popularity_only) return evaluate_popularity(m, md, out, err);
  int32_t ni = md->n_items, d = fedrec_model_vdim(md);
  float *V = malloc((size_t)ni * d * sizeof *V), *G = malloc((size_t)d * d * sizeof *G);
  if (!V || !G) {
    free(V), free(G);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "evaluation");
  }
  fedrec_model_item_vectors(V, md);
  fedrec_gramian(G, V, ni, d);
  fedrec_mf_scorer mf = {V, G, ni, d, m->c->engine.alpha0, m->c->engine.reg};
  fedrec_scorer sc = fedrec_mf_scorer_make(&mf);
  fedrec_eval_config ec = {.k = m->c->k, .threads = m->c->threads, .content = m->ds->content, .content_dim = m->ds->content_dim};
  /* with withheld (cold) items: warm items ranked among the warm ones, as the central runs do,
   * and, when asked, the cold ones among the cold (the head's H c_i alone) */
  const fedrec_split *sp = m->sp;
  uint8_t *warm = sp->n_cold ? malloc((size_t)ni) : NULL;
  for (int32_t i = 0; warm && i < ni; i++) warm[i] = !sp->is_cold[i];
  ec.candidates = warm;
  fedrec_status s = sp->n_cold && !warm ? fedrec_error_set(err, FEDREC_ERR_NOMEM, "evaluation")
                                        : fedrec_evaluate(out, &sc, &sp->foldin, &sp->holdout, &ec, err);
  if (!s && cold && sp->n_cold) {
    ec.candidates = sp->is_cold;
    s = fedrec_evaluate(cold, &sc, &sp->foldin, &sp->cold_holdout, &ec, err);
  }
  free(V), free(G), free(warm);
  return s;
}

typedef struct {
  double score;
  uint8_t in;
} canary_score;

static int by_score(const void *a, const void *b) {
  double x = ((const canary_score *)a)->score, y = ((const canary_score *)b)->score;
  return (x < y) - (x > y); /* descending */
}

/* The one-run audit: each canary's score is how far the model moved along its direction,
 * <c_j, theta_0 - theta_T>; the top guesses/2 are guessed included, the bottom guesses/2
 * excluded; the count of right guesses gives a 95%-confidence lower bound on epsilon. */
static fedrec_status audit(fedsim_result *res, const sim *m, fedrec_error *err) {
  int64_t dim = m->dim;
  float *x = malloc((size_t)dim * sizeof *x), *dir = malloc((size_t)dim * sizeof *dir);
  canary_score *sc = malloc((size_t)m->ncanary * sizeof *sc);
  if (!x || !dir || !sc) {
    free(x), free(dir), free(sc);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "audit");
  }
  fedrec_model_get_params(x, fedrec_engine_current_model(m->e));
  for (int64_t i = 0; i < dim; i++) x[i] = m->theta0[i] - x[i];
  uint32_t included = 0;
  for (uint32_t j = 0; j < m->ncanary; j++) {
    fedsim_canary_direction(dir, dim, m->c->seed, j);
    double d = 0;
    for (int64_t i = 0; i < dim; i++) d += (double)dir[i] * x[i];
    sc[j] = (canary_score){d, m->canary_in[j]};
    included += m->canary_in[j];
  }
  qsort(sc, m->ncanary, sizeof *sc, by_score);
  uint32_t g = m->c->audit_guesses ? m->c->audit_guesses : (m->ncanary / 5 > 2 ? m->ncanary / 5 : 2);
  if (g > m->ncanary) g = m->ncanary;
  uint32_t top = (g + 1) / 2, bottom = g - top, right = 0;
  for (uint32_t j = 0; j < top; j++) right += sc[j].in;
  for (uint32_t j = 0; j < bottom; j++) right += !sc[m->ncanary - 1 - j].in;
  res->audit_canaries = m->ncanary;
  res->audit_included = included;
  res->audit_guesses = g;
  res->audit_correct = right;
  res->audit_epsilon_lower = fedrec_audit_epsilon_lower(m->ncanary, g, right, m->c->delta, 0.05);
  free(x), free(dir), free(sc);
  return FEDREC_OK;
}

/* Round r's JSON line: outcome, survivors, epsilon (null without privacy), update norm, bytes
 * per client, seconds, why it was aborted, and the metrics when evaluated. */
static void log_round(const sim *m, const fedsim_result *res, FILE *log, uint32_t r, double secs, double up, double down,
                      int evaluated) {
  const fedsim_config *c = m->c;
  char eps[32]; /* without privacy no epsilon holds: null */
  if (c->engine.noise_multiplier > 0 || c->target_epsilon > 0) snprintf(eps, sizeof eps, "%.6f", res->epsilon);
  else snprintf(eps, sizeof eps, "null");
  int aborted = m->have_last && m->last.aborted;
  fprintf(log, "{\"round\": %u, \"aborted\": %s, \"survivors\": %u, \"epsilon\": %s, \"update_norm\": %.6g, "
               "\"bytes_up_per_client\": %.0f, \"bytes_down_per_client\": %.0f, \"seconds\": %.3f",
          r + 1, aborted ? "true" : "false", m->have_last ? m->last.survivors : 0, eps, m->have_last ? m->last.update_norm : 0.0,
          up / m->n, down / m->n, secs);
  if (m->have_last) {
    static const char *kinds[] = {"model", "count", "spectral"};
    fprintf(log, ", \"kind\": \"%s\"", kinds[m->last.kind <= FEDREC_ROUND_GRAM ? m->last.kind : 0]);
    if (m->last.kind == FEDREC_ROUND_GRAM) fprintf(log, ", \"spectral_rank\": %u", m->last.spectral_rank);
  }
  if (aborted) {
    fprintf(log, ", \"reason\": ");
    fedrec_json_string(log, m->last.reason);
  }
  if (evaluated)
    fprintf(log, ", \"recall@%d\": %.6f, \"ndcg@%d\": %.6f, \"coverage@%d\": %.6f", c->k, m->met.recall, c->k, m->met.ndcg, c->k,
            m->met.coverage);
  fprintf(log, "}\n");
  fflush(log);
}

/* A bar, the rate and the time left, on one terminal line. */
static void progress(const sim *m, const fedsim_result *res, uint32_t r, double secs, int evaluated) {
  const fedsim_config *c = m->c;
  double done = (double)(r + 1) / c->rounds, spent = fedrec_clock_s() - m->t_start, left = spent / done - spent;
  char bar[31];
  int fill = (int)(done * 30);
  for (int k = 0; k < 30; k++) bar[k] = k < fill ? '#' : '.';
  bar[30] = 0;
  fprintf(stderr, "\r  [%s] round %u/%u  %.0f clients/s  epsilon %.3f", bar, r + 1, c->rounds, m->n / secs, res->epsilon);
  if (evaluated) fprintf(stderr, "  Recall@%d %.4f", c->k, m->met.recall);
  fprintf(stderr, "  %02d:%02d left \033[K", (int)left / 60, (int)left % 60);
  fflush(stderr);
}

fedrec_status fedsim_report_round(sim *m, fedsim_result *res, FILE *log, uint32_t r, double secs, fedrec_error *err) {
  const fedsim_config *c = m->c;
  m->clients_total += m->n;
  uint64_t up = 0, down = 0;
  for (uint32_t i = 0; i < m->n; i++) up += m->up[i], down += m->down[i];
  int evaluated = log && ((r + 1) % (c->eval_every ? c->eval_every : 1) == 0 || r + 1 == c->rounds);
  fedrec_status s;
  if (evaluated && (s = fedsim_evaluate(m, &m->met, NULL, err))) return s;
  res->rounds_done += m->have_last && !m->last.aborted;
  res->epsilon = m->have_last && !m->last.aborted ? m->last.epsilon : res->epsilon;
  res->epsilon_public = m->have_last && !m->last.aborted ? m->last.epsilon_public : res->epsilon_public;
  if (log) log_round(m, res, log, r, secs, (double)up, (double)down, evaluated);
  if (c->progress) progress(m, res, r, secs, evaluated);
  res->bytes_up = (double)up / m->n;
  res->bytes_down = (double)down / m->n;
  return FEDREC_OK;
}

fedrec_status fedsim_report_end(sim *m, fedsim_result *res, fedrec_error *err) {
  if (m->c->progress) fprintf(stderr, "\n");
  res->seconds = fedrec_clock_s() - m->t_start;
  res->stop_reason[0] = 0;
  if (fedrec_engine_phase(m->e) == FEDREC_PHASE_STOPPED)
    snprintf(res->stop_reason, sizeof res->stop_reason, "%s", fedrec_engine_stop_reason(m->e));
  res->has_cold = m->sp->n_cold > 0 && !m->c->popularity_only;
  fedrec_status s = fedsim_evaluate(m, &res->metrics, res->has_cold ? &res->cold : NULL, err);
  if (s) return s;
  res->params = fedrec_model_params(fedrec_engine_current_model(m->e));
  res->secagg_k = m->secagg_k;
  res->clients = m->clients_total;
  if (m->ncanary && (s = audit(res, m, err))) return s;
  fedrec_published fin;
  fedrec_engine_model(m->e, &fin);
  for (int k = 0; k < 32; k++) snprintf(res->model_hash + 2 * k, 3, "%02x", fin.hash[k]);
  FILE *f = m->c->save_model ? fopen(m->c->save_model, "wb") : NULL;
  if (m->c->save_model && (!f || fwrite(fin.blob, 1, fin.len, f) != fin.len || fclose(f))) {
    if (f) fclose(f);
    return fedrec_error_set(err, FEDREC_ERR_IO, "--save-model %s: cannot write", m->c->save_model);
  }
  return FEDREC_OK;
}
