/* Starting the coordinator's engine from its state directory: the ledger (created with the
 * budget and delta, or reopened with its own), the settings the state is bound to, the
 * catalogue, and the newest saved model checked against our own key; and saving what the
 * engine publishes and every round it finishes or aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "fedrec/synth.h"
#include "server.h"

static int on_publish(void *ctx, const fedrec_published *p) {
  server *s = ctx;
  fedrec_error err = {0};
  if (coord_store_save_model(s->store, p, s->cfg.keep_models, &err)) {
    char msg[600];
    fedrec_json_escape(msg, sizeof msg, err.msg);
    logj("error", "model_not_saved", "\"version\": %llu, \"reason\": \"%s\"", (unsigned long long)p->version, msg);
    return 1;
  }
  char hash[65];
  sodium_bin2hex(hash, sizeof hash, p->hash, 32);
  logj("info", "model_published", "\"version\": %llu, \"bytes\": %zu, \"blake2b\": \"%s\"", (unsigned long long)p->version,
       p->len, hash);
  return 0;
}

static void on_round(void *ctx, const fedrec_round_stats *st) {
  server *s = ctx;
  fedrec_error err = {0};
  if (st->released) { /* no round ran: not in the rounds table or the round metrics */
    char reason[800];
    fedrec_json_escape(reason, sizeof reason, st->reason);
    logj("info", "selection_released", "\"round\": %llu, \"devices\": %u, \"reason\": \"%s\"", (unsigned long long)st->round,
         st->cohort, reason);
    return;
  }
  if (coord_store_save_round(s->store, st, st->clients, st->nclients, &err)) {
    char msg[600];
    fedrec_json_escape(msg, sizeof msg, err.msg);
    logj("error", "round_not_saved", "\"round\": %llu, \"reason\": \"%s\"", (unsigned long long)st->round, msg);
  }
  if (st->aborted) s->m.rounds_aborted++;
  else s->m.rounds_published++;
  for (int p = 0; p < FEDREC_PHASES; p++) {
    s->m.dropouts[p] += st->dropped[p];
    s->m.last_phase_ms[p] = st->phase_ms[p];
  }
  s->m.last_cohort = st->cohort;
  s->m.last_survivors = st->survivors;
  s->m.epsilon = fedrec_ledger_epsilon(s->ledger); /* from the ledger, whatever the round did */
  char reason[800];
  fedrec_json_escape(reason, sizeof reason, st->reason);
  logj(st->aborted ? "warn" : "info", st->aborted ? "round_aborted" : "round_done",
       "\"round\": %llu, \"cohort\": %u, \"survivors\": %u, \"dropped\": {\"keys\": %u, \"shares\": %u, \"masked\": %u, "
       "\"unmask\": %u}, \"phase_ms\": {\"keys\": %llu, \"shares\": %llu, \"masked\": %llu, \"unmask\": %llu}, "
       "\"bytes_in\": %llu, \"epsilon\": %.6f, \"update_norm\": %.6g%s%s%s",
       (unsigned long long)st->round, st->cohort, st->survivors, st->dropped[1], st->dropped[2], st->dropped[3], st->dropped[4],
       (unsigned long long)st->phase_ms[1], (unsigned long long)st->phase_ms[2], (unsigned long long)st->phase_ms[3],
       (unsigned long long)st->phase_ms[4], (unsigned long long)st->bytes_in, st->epsilon, st->update_norm,
       st->aborted ? ", \"reason\": \"" : "", st->aborted ? reason : "", st->aborted ? "\"" : "");
}

static fedrec_status load_catalogue(server *s, fedrec_error *err) {
  const char *spec = s->cfg.catalogue;
  if (strncmp(spec, "synthetic:", 10) && strcmp(spec, "synthetic"))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "catalogue '%s': only synthetic:... catalogues are supported so far", spec);
  fedrec_synth_config sc;
  fedrec_synth_defaults(&sc);
  fedrec_status st = spec[9] == ':' ? fedrec_synth_parse(&sc, spec + 10, err) : FEDREC_OK;
  if (!st) st = fedrec_synth_generate(&s->catalogue, &sc, err);
  if (st) {
    char msg[sizeof err->msg];
    snprintf(msg, sizeof msg, "%s", err->msg);
    return fedrec_error_set(err, st, "catalogue: %s", msg);
  }
  return FEDREC_OK;
}

/* Settings a state is bound to: its model's shape (catalogue, dim, free embeddings) cannot
 * change on a restart: one given that conflicts is refused, naming the saved value, and one
 * not given takes the saved value. The noise and clipping may change (every ledger entry
 * records its own): loudly, in the log. The first start saves them. */
static fedrec_status check_saved_settings(server *s, const char *db, fedrec_error *err) {
  static const char *BOUND[] = {"catalogue", "dim", "free-embeddings"};
  static const char *LOGGED[] = {"noise", "noise-multiplier", "clip"};
  config *c = &s->cfg;
  char now[512], saved[512];
  const char *keys[6] = {BOUND[0], BOUND[1], BOUND[2], LOGGED[0], LOGGED[1], LOGGED[2]};
  for (int i = 0; i < 6; i++) {
    const char *k = keys[i];
    if (i == 0) snprintf(now, sizeof now, "%s", c->catalogue);
    else if (i == 1) snprintf(now, sizeof now, "%d", c->dim);
    else if (i == 2) snprintf(now, sizeof now, "%d", c->free_embeddings);
    else if (i == 3) snprintf(now, sizeof now, "%s", c->noise);
    else if (i == 4) snprintf(now, sizeof now, "%.17g", c->e.noise_multiplier);
    else snprintf(now, sizeof now, "%.17g", c->e.clip);
    if (coord_store_setting(s->store, k, saved, sizeof saved) && strcmp(now, saved)) {
      if (i < 3 && config_given(c, k))
        return fedrec_error_set(err, FEDREC_ERR_ARG, "%s '%s' conflicts with the saved state's '%s' (%s): the model's shape is "
                                "fixed when training starts; drop the setting, or start a new state-dir", k, now, saved, db);
      if (i < 3) { /* not given: the state's own, through the same checks as a flag's */
        char where[600];
        snprintf(where, sizeof where, "%.560s (saved setting)", db);
        if (!config_set(c, k, saved, where))
          return fedrec_error_set(err, FEDREC_ERR_PARSE, "%s: the saved %s '%s' is not valid (edited?)", db, k, saved);
        char js[sizeof saved * 6];
        fedrec_json_escape(js, sizeof js, saved);
        logj("info", "setting_from_state", "\"key\": \"%s\", \"value\": \"%s\"", k, js);
        continue;
      }
      char js[sizeof saved * 6], jn[sizeof now * 6]; /* values from a file or a flag: escaped */
      fedrec_json_escape(js, sizeof js, saved);
      fedrec_json_escape(jn, sizeof jn, now);
      logj("warn", "setting_changed", "\"key\": \"%s\", \"saved\": \"%s\", \"now\": \"%s\", \"note\": "
           "\"rounds from now on use the new value; each ledger entry records its own\"", k, js, jn);
    }
    fedrec_status st = coord_store_set_setting(s->store, k, now, err);
    if (st) return st;
  }
  return FEDREC_OK;
}

fedrec_status start_engine(server *s, fedrec_error *err) {
  config *c = &s->cfg;
  /* noise and optimizer: checked and set from their names by main's parse_args */
  char path[600];
  state_path(path, sizeof path, c, "ledger.db");
  struct stat sb;
  int resumed = stat(path, &sb) == 0;
  fedrec_status st = resumed ? fedrec_ledger_open(&s->ledger, path, &s->id, err)
                             : fedrec_ledger_create(&s->ledger, path, c->delta, c->budget, NULL, &s->id, err);
  if (st) return st;
  if (resumed) { /* a ledger's budget and delta are fixed when it is created */
    double lb = fedrec_ledger_budget(s->ledger), ld = fedrec_ledger_delta(s->ledger);
    if ((config_given(c, "budget") && c->budget != lb) || (config_given(c, "delta") && c->delta != ld))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "%s %g conflicts with the saved ledger's %g (%s): a ledger's budget and "
                              "delta are fixed when it is created; drop the setting, or start a new state-dir",
                              config_given(c, "budget") && c->budget != lb ? "budget" : "delta",
                              config_given(c, "budget") && c->budget != lb ? c->budget : c->delta,
                              config_given(c, "budget") && c->budget != lb ? lb : ld, path);
    c->budget = lb, c->delta = ld;
  }
  state_path(path, sizeof path, c, "coordinator.db");
  if ((st = coord_store_open(&s->store, path, err))) return st;
  if ((st = check_saved_settings(s, path, err)) || (st = load_catalogue(s, err))) return st;
  fedrec_engine_callbacks cb = {s, on_publish, on_round};
  coord_saved_model saved;
  fedrec_model model;
  int32_t ni = s->catalogue.R.cols, p = s->catalogue.content_dim;
  st = coord_store_load_latest(s->store, &saved, err);
  if (st == FEDREC_ERR_EMPTY) { /* first start */
    int32_t *all = malloc((size_t)ni * sizeof *all);
    if (!all) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "items");
    for (int32_t i = 0; i < ni; i++) all[i] = i;
    st = fedrec_model_init(&model, ni, c->dim, s->catalogue.content, p, 1, all, c->free_embeddings ? ni : 0, 1, 0.1f, err);
    free(all);
    if (!st) st = fedrec_engine_new(&s->engine, &c->e, &model, 1, &s->id, s->ledger, &cb, NULL, err);
    if (!st) logj("info", "started", "\"resumed\": false, \"model_version\": 1");
    return st;
  }
  if (st) return st;
  /* resume: the newest saved model, checked against our own key, and rounds after the ledger */
  uint64_t ver;
  if (fedrec_model_verify(saved.blob, saved.len, saved.version, saved.hash, saved.ledger_entries, saved.ledger_head,
                           saved.sig, s->id.pk))
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu fails its signature check", (unsigned long long)saved.version);
  if (!st) st = fedrec_model_decode(&model, &ver, saved.blob, saved.len, s->catalogue.content, p, err);
  if (!st && (ver != saved.version || fedrec_model_params(&model) != saved.dim)) {
    fedrec_model_free(&model);
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu does not match its row", (unsigned long long)saved.version);
  }
  if (!st) {
    /* the engine re-publishes the model it starts from: that row exists, so skip saving it */
    fedrec_engine_callbacks quiet = {s, NULL, on_round};
    st = fedrec_engine_new(&s->engine, &c->e, &model, saved.version, &s->id, s->ledger, &quiet, NULL, err);
  }
  uint64_t next = saved.next_round, lr = fedrec_ledger_last_round(s->ledger), sr = coord_store_last_round(s->store);
  if (lr + 1 > next) next = lr + 1; /* a round recorded in the ledger but never published */
  if (sr + 1 > next) next = sr + 1; /* an aborted round's number is never used again */
  if (!st) st = fedrec_engine_restore(s->engine, next, saved.rounds_done, saved.opt1, saved.opt2, err);
  if (!st) {
    s->m.epsilon = fedrec_ledger_epsilon(s->ledger);
    logj("info", "started", "\"resumed\": true, \"model_version\": %llu, \"next_round\": %llu, \"epsilon\": %.6f",
         (unsigned long long)saved.version, (unsigned long long)next, s->m.epsilon);
  }
  coord_saved_model_free(&saved);
  /* from now on, new models are saved */
  if (!st) fedrec_engine_set_callbacks(s->engine, &cb);
  return st;
}
