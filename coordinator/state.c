/* Starting the coordinator's engine from its state directory: the ledger (created with the
 * budget and delta, or reopened with its own), the settings the state is bound to, the
 * catalogue, and the newest saved model checked against our own key; and saving what the
 * engine publishes and every round it finishes or aborts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
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

/* The participation bound: who sent a masked input, durable before anything is unmasked. */
static int on_participated(void *ctx, uint64_t round, const uint64_t *clients, uint32_t n) {
  server *s = ctx;
  fedrec_error err = {0};
  if (!coord_store_save_participation(s->store, round, clients, n, &err)) return 0;
  char msg[600];
  fedrec_json_escape(msg, sizeof msg, err.msg);
  logj("error", "participation_not_saved", "\"round\": %llu, \"devices\": %u, \"reason\": \"%s\"", (unsigned long long)round, n, msg);
  return 1;
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
  else s->m.rounds_published++, s->m.last_round_time = (double)time(NULL);
  for (int p = 0; p < FEDREC_PHASES; p++) {
    s->m.dropouts[p] += st->dropped[p];
    s->m.last_phase_ms[p] = st->phase_ms[p];
  }
  s->m.last_cohort = st->cohort;
  s->m.last_survivors = st->survivors;
  s->m.epsilon = fedrec_ledger_epsilon(s->ledger); /* from the ledger, whatever the round did */
  s->m.epsilon_public = fedrec_ledger_epsilon_public(s->ledger);
  char reason[800];
  fedrec_json_escape(reason, sizeof reason, st->reason);
  logj(st->aborted ? "warn" : "info", st->aborted ? "round_aborted" : "round_done",
       "\"round\": %llu, \"cohort\": %u, \"survivors\": %u, \"dropped\": {\"keys\": %u, \"shares\": %u, \"masked\": %u, "
       "\"consistency\": %u, \"unmask\": %u}, \"phase_ms\": {\"keys\": %llu, \"shares\": %llu, \"masked\": %llu, "
       "\"consistency\": %llu, \"unmask\": %llu}, \"bytes_in\": %llu, \"epsilon\": %.6f, \"epsilon_public\": %.6f, "
       "\"update_norm\": %.6g, \"kind\": \"%s\", \"spectral_rank\": %u%s%s%s",
       (unsigned long long)st->round, st->cohort, st->survivors, st->dropped[FEDREC_PHASE_KEYS], st->dropped[FEDREC_PHASE_SHARES],
       st->dropped[FEDREC_PHASE_MASKED], st->dropped[FEDREC_PHASE_CONSISTENCY], st->dropped[FEDREC_PHASE_UNMASK],
       (unsigned long long)st->phase_ms[FEDREC_PHASE_KEYS], (unsigned long long)st->phase_ms[FEDREC_PHASE_SHARES],
       (unsigned long long)st->phase_ms[FEDREC_PHASE_MASKED], (unsigned long long)st->phase_ms[FEDREC_PHASE_CONSISTENCY],
       (unsigned long long)st->phase_ms[FEDREC_PHASE_UNMASK], (unsigned long long)st->bytes_in, st->epsilon, s->m.epsilon_public,
       st->update_norm, st->kind == FEDREC_ROUND_COUNT ? "count" : st->kind == FEDREC_ROUND_GRAM ? "spectral" : "model",
       st->spectral_rank, st->aborted ? ", \"reason\": \"" : "", st->aborted ? reason : "", st->aborted ? "\"" : "");
}

/* Settings a state is bound to: its model's shape (catalogue, dim, free embeddings) cannot
 * change on a restart: one given that conflicts is refused, naming the saved value, and one
 * not given takes the saved value. The noise and clipping may change (every ledger entry
 * records its own): loudly, in the log. They are saved (save_settings) once the start has
 * checked everything else, so a start that fails binds the state to nothing. */
static const char *SETTINGS[] = {"catalogue", "dim", "free-embeddings", "initial-model", "initial-model-privacy",
                                 "noise", "noise-multiplier", "clip"};
enum { BOUND = 5, NSETTINGS = 8 };

static void setting_now(const config *c, int i, char *now, size_t cap) {
  if (i == 0) snprintf(now, cap, "%s", c->catalogue);
  else if (i == 1) snprintf(now, cap, "%d", c->dim);
  else if (i == 2) snprintf(now, cap, "%d", c->free_embeddings);
  else if (i == 3) snprintf(now, cap, "%s", c->initial_model);
  else if (i == 4) snprintf(now, cap, "%s", c->initial_model_privacy);
  else if (i == 5) snprintf(now, cap, "%s", c->noise);
  else if (i == 6) snprintf(now, cap, "%.17g", c->e.noise_multiplier);
  else snprintf(now, cap, "%.17g", c->e.clip);
}

static fedrec_status check_saved_settings(server *s, const char *db, fedrec_error *err) {
  config *c = &s->cfg;
  char now[512], saved[512];
  for (int i = 0; i < NSETTINGS; i++) {
    const char *k = SETTINGS[i];
    setting_now(c, i, now, sizeof now);
    if (!coord_store_setting(s->store, k, saved, sizeof saved) || !strcmp(now, saved)) continue;
    if (i < BOUND && config_given(c, k))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "%s '%s' conflicts with the saved state's '%s' (%s): the model's shape is "
                              "fixed when training starts; drop the setting, or start a new state-dir", k, now, saved, db);
    if (i < BOUND) { /* not given: the state's own, through the same checks as a flag's */
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
  return FEDREC_OK;
}

static fedrec_status save_settings(server *s, fedrec_error *err) {
  char now[512];
  for (int i = 0; i < NSETTINGS; i++) {
    setting_now(&s->cfg, i, now, sizeof now);
    fedrec_status st = coord_store_set_setting(s->store, SETTINGS[i], now, err);
    if (st) return st;
  }
  return FEDREC_OK;
}

/* The catalogue a saved model belongs to: the one served now, or an older saved version. */
static fedrec_status model_catalogue(server *s, const coord_saved_model *saved, fedrec_catalogue *old, const fedrec_catalogue **was,
                                     fedrec_error *err) {
  *was = &s->cat;
  if (!saved->has_catalogue || saved->catalogue.version == s->cat.version) return FEDREC_OK;
  uint8_t *blob;
  size_t len;
  fedrec_status st = coord_store_load_catalogue(s->store, saved->catalogue.version, &blob, &len, err);
  if (!st) st = fedrec_catalogue_decode(old, blob, len, err);
  free(blob);
  if (!st) *was = old;
  return st;
}

/* A new engine from the newest saved model (or the first one). When the catalogue changed
 * since the saved model was signed, the model grows to the new one and is published as the
 * next version, signed with it. */
/* The first start without an initial model: every item free (free-embeddings 1), or the
 * listed ones. */
static fedrec_status first_start(server *s, fedrec_engine_callbacks *cb, fedrec_error *err) {
  config *c = &s->cfg;
  fedrec_model model;
  int32_t ni = fedrec_catalogue_items(&s->cat), p = s->cat.ds.content_dim;
  fedrec_status st;
  int32_t *free_items = NULL, nf = ni;
  if (c->free_embeddings && (free_items = malloc((size_t)ni * sizeof *free_items)))
    for (int32_t i = 0; i < ni; i++) free_items[i] = i;
  st = c->free_embeddings ? (free_items ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "items"))
                          : free_initial(s, &free_items, &nf, err);
  if (!st && !(st = fedrec_model_init(&model, ni, c->dim, s->cat.ds.content, p, 1, free_items, nf, 1, 0.1f, err)) &&
      (st = fedrec_model_set_modalities(&model, &s->cat.ds, err))) fedrec_model_free(&model);
  free(free_items);
  if (!st) st = fedrec_engine_new(&s->engine, &c->e, &model, 1, &s->id, s->ledger, cb, NULL, err);
  if (!st) logj("info", "started", "\"resumed\": false, \"model_version\": 1, \"catalogue_version\": %llu",
                (unsigned long long)s->cat.version);
  return st;
}

static fedrec_status resume_engine(server *s, fedrec_model *initial, fedrec_error *err) {
  config *c = &s->cfg;
  fedrec_engine_callbacks cb = {s, on_publish, on_round, on_participated};
  coord_saved_model saved;
  fedrec_model model;
  int32_t p = s->cat.ds.content_dim;
  fedrec_status st = coord_store_load_latest(s->store, &saved, err);
  if (st == FEDREC_ERR_EMPTY && initial->n_items) { /* first start from a file, then the listed items */
    st = fedrec_engine_new(&s->engine, &c->e, initial, 1, &s->id, s->ledger, &cb, NULL, err);
    if (!st) st = catalogue_follow_now(s, 0, err);
    if (!st) logj("info", "started", "\"resumed\": false, \"initial_model\": true, \"catalogue_version\": %llu",
                  (unsigned long long)s->cat.version);
    return st;
  }
  if (st == FEDREC_ERR_EMPTY) return first_start(s, &cb, err);
  if (st) return st;
  /* resume: the newest saved model, checked against our own key and the catalogue it names
   * (a model saved before catalogues were served names none), and rounds after the ledger */
  uint64_t ver;
  fedrec_catalogue old = {0};
  const fedrec_catalogue *was;
  if ((st = model_catalogue(s, &saved, &old, &was, err))) {
    coord_saved_model_free(&saved);
    return st;
  }
  if (saved.has_catalogue && (saved.catalogue.version != was->version || memcmp(saved.catalogue.hash, was->hash, 32)))
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu names catalogue %llu, not the saved %llu",
                          (unsigned long long)saved.version, (unsigned long long)saved.catalogue.version, (unsigned long long)was->version);
  if (!st && fedrec_model_verify(saved.blob, saved.len, saved.version, saved.hash, saved.ledger_entries, saved.ledger_head,
                                 saved.has_catalogue ? &saved.catalogue : NULL, saved.sig, s->id.pk))
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu fails its signature check", (unsigned long long)saved.version);
  if (!st) st = fedrec_model_decode(&model, &ver, saved.blob, saved.len, was->ds.content, p, err);
  if (!st && (ver != saved.version || fedrec_model_params(&model) != saved.dim || model.n_items != fedrec_catalogue_items(was) ||
              fedrec_model_check_modalities(&model, &was->ds, err))) {
    fedrec_model_free(&model);
    st = fedrec_error_set(err, FEDREC_ERR_PARSE, "coordinator state: model %llu does not match its row", (unsigned long long)saved.version);
  }
  fedrec_engine_config ec = c->e; /* the engine seals the model it starts from as it was */
  ec.has_catalogue = saved.has_catalogue;
  if (saved.has_catalogue) ec.catalogue = saved.catalogue;
  if (!st) {
    /* the engine re-publishes the model it starts from: that row exists, so skip saving it */
    fedrec_engine_callbacks quiet = {s, NULL, on_round, on_participated};
    st = fedrec_engine_new(&s->engine, &ec, &model, saved.version, &s->id, s->ledger, &quiet, NULL, err);
  }
  uint64_t next = saved.next_round, lr = fedrec_ledger_last_round(s->ledger), sr = coord_store_last_round(s->store);
  if (lr + 1 > next) next = lr + 1; /* a round recorded in the ledger but never published */
  if (sr + 1 > next) next = sr + 1; /* an aborted round's number is never used again */
  if (!st) st = fedrec_engine_restore(s->engine, next, saved.rounds_done, saved.opt1, saved.opt2, err);
  coord_saved_model_free(&saved);
  if (st) {
    fedrec_catalogue_free(&old);
    return st;
  }
  /* from now on, new models are saved */
  fedrec_engine_set_callbacks(s->engine, &cb);
  fedrec_published pub;
  int changed = !ec.has_catalogue || ec.catalogue.version != s->cat.version || memcmp(ec.catalogue.hash, s->cat.hash, 32);
  st = catalogue_follow_now(s, changed, err); /* a changed catalogue, or listed items without a free embedding */
  fedrec_catalogue_free(&old); /* the engine's model reads the served catalogue's content now */
  if (st) return st;
  s->m.epsilon = fedrec_ledger_epsilon(s->ledger);
  s->m.epsilon_public = fedrec_ledger_epsilon_public(s->ledger);
  logj("info", "started", "\"resumed\": true, \"model_version\": %llu, \"next_round\": %llu, \"epsilon\": %.6f, "
       "\"catalogue_version\": %llu", (unsigned long long)(fedrec_engine_model(s->engine, &pub), pub.version), (unsigned long long)next,
       s->m.epsilon, (unsigned long long)s->cat.version);
  return FEDREC_OK;
}

/* The secure-aggregation variant: active (with the authority's key) when an authority is set,
 * unless secagg-active says 0; secagg-active 1 without an authority is refused. */
static fedrec_status secagg_variant(config *c, fedrec_error *err) {
  const char *a = c->enrolment_authority;
  c->e.active = config_given(c, "secagg-active") ? c->secagg_active : a[0] != 0;
  if (!a[0])
    return c->e.active ? fedrec_error_set(err, FEDREC_ERR_ARG, "secagg-active 1 needs enrolment-authority (the key whose "
                                          "certificates devices present: fedrec-coordinator authority-init)")
                       : FEDREC_OK;
  size_t n = 0;
  int ok = a[0] == '@' ? read_hex32(a + 1, c->e.authority_pk)
                       : !sodium_hex2bin(c->e.authority_pk, 32, a, strlen(a), NULL, &n, NULL) && n == 32;
  if (!ok)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "enrolment-authority: %s is not 64 hex digits (or @FILE holding them)", a);
  logj("info", "secagg_variant", "\"active\": %d", c->e.active);
  return FEDREC_OK;
}

fedrec_status start_engine(server *s, fedrec_error *err) {
  config *c = &s->cfg;
  fedrec_status vs = secagg_variant(c, err);
  if (vs) return vs;
  /* noise and optimizer: checked and set from their names by main's parse_args */
  char path[600];
  state_path(path, sizeof path, c, "ledger.db");
  struct stat sb;
  int resumed = stat(path, &sb) == 0;
  fedrec_status st = resumed ? fedrec_ledger_open(&s->ledger, path, &s->id, err)
                             : fedrec_ledger_create_with(&s->ledger, path, &(fedrec_ledger_terms){.delta = c->delta, .budget = c->budget,
                                                           .public_budget = c->public_budget, .max_participation = c->e.max_participation},
                                                         &s->id, err);
  if (st) return st;
  if (resumed) { /* a ledger's budget, delta and participation bound are fixed when it is created */
    double lb = fedrec_ledger_budget(s->ledger), ld = fedrec_ledger_delta(s->ledger);
    uint32_t lk = fedrec_ledger_max_participation(s->ledger);
    if (config_given(c, "max-participation") && c->e.max_participation != lk)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "max-participation %u conflicts with the saved ledger's %u (%s): the bound "
                              "its epsilon assumes is fixed when it is created; drop the setting, or start a new state-dir",
                              c->e.max_participation, lk, path);
    c->e.max_participation = lk;
    double lp = fedrec_ledger_public_budget(s->ledger);
    if (config_given(c, "public-budget") && c->public_budget != lp)
      return fedrec_error_set(err, FEDREC_ERR_ARG, "public-budget %g conflicts with the saved ledger's %g (%s): fixed when the "
                              "ledger is created; drop the setting, or start a new state-dir", c->public_budget, lp, path);
    c->public_budget = lp;
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
  fedrec_model initial = {0}; /* a new state may start from a file */
  if ((st = check_saved_settings(s, path, err)) || (st = catalogue_load_served(s, err)) || (st = free_list_load(s, err)) ||
      (c->initial_model[0] && coord_store_count(s->store, "models") == 0 && (st = initial_model_load(s, &initial, err))) ||
      (st = save_settings(s, err))) {
    fedrec_model_free(&initial);
    return st;
  }
  c->e.has_catalogue = 1;
  c->e.catalogue = fedrec_catalogue_name(&s->cat);
  st = resume_engine(s, &initial, err);
  fedrec_model_free(&initial); /* the engine took it (zeroed), or it was not used */
  uint64_t devices = 0;
  if (!st && (c->e.max_participation || c->e.min_separation > 1) &&
      !(st = coord_store_load_participation(s->store, s->engine, &devices, err)))
    logj("info", "participation_restored", "\"devices\": %llu, \"max_participation\": %u, \"min_separation\": %u",
         (unsigned long long)devices, c->e.max_participation, c->e.min_separation);
  return st;
}
