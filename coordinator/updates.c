/* The catalogue and the free embeddings between rounds: the catalogue served (built from the
 * setting's files and followed from the newest saved version), the operator's free-items
 * list, a SIGHUP reload of both (files read outside the lock), and the pending update the
 * ticker applies between rounds (the model grown and published as the next version). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"
#include "fedrec/ddp.h"
#include "fedrec/internal/tool.h"
#include "server.h"

static fedrec_status prefixed(fedrec_error *err, fedrec_status st, const char *what) {
  char msg[sizeof err->msg];
  snprintf(msg, sizeof msg, "%s", err->msg);
  return fedrec_error_set(err, st, "%s: %s", what, msg);
}

/* next (loaded from the files) as the successor of prev (fedrec_catalogue_follow) with the
 * operator's availability rules, encoded: *changed = 0 when it is prev itself (the same
 * encoding, prev's version), else it is prev's version + 1. Without prev: version 1. */
static fedrec_status follow(server *s, fedrec_catalogue *next, const fedrec_catalogue *prev, const fedrec_catalogue_rules *rules,
                            int32_t *added, int32_t *withdrawn, int *changed, fedrec_error *err) {
  fedrec_status st = FEDREC_OK;
  int32_t unknown;
  char first[257];
  *added = fedrec_catalogue_items(next), *withdrawn = 0, *changed = 1;
  if (prev) st = fedrec_catalogue_follow(next, prev, added, withdrawn, err);
  if (!st) st = fedrec_catalogue_apply_rules(next, rules, &unknown, first, sizeof first, err);
  if (!st && unknown) {
    char js[sizeof first * 6];
    fedrec_json_escape(js, sizeof js, first);
    logj("warn", "availability_unknown", "\"count\": %d, \"first\": \"%s\", \"files\": \"%s %s\"", unknown, js, s->cfg.availability,
         s->cfg.blocked);
  }
  if (!st && prev) {
    next->version = prev->version; /* unchanged files: the same encoding */
    st = fedrec_catalogue_encode(next, err);
    if (!st && !memcmp(next->hash, prev->hash, 32)) *changed = 0;
    next->version = prev->version + 1;
  }
  if (!st && *changed) st = fedrec_catalogue_encode(next, err);
  return st;
}

static void log_catalogue(const char *event, const fedrec_catalogue *c, int32_t added, int32_t withdrawn) {
  char mods[400] = "";
  for (int32_t k = 0; k < c->ds.n_modalities; k++)
    snprintf(mods + strlen(mods), sizeof mods - strlen(mods), "%s%.31s:%d", k ? "," : "", c->ds.modalities[k].name, c->ds.modalities[k].dim);
  logj("info", event, "\"version\": %llu, \"items\": %d, \"added\": %d, \"withdrawn\": %d, \"blocked\": %d, \"restricted\": %d, "
       "\"groups\": %d, \"modalities\": \"%s\", \"dim\": %d, \"bytes\": %zu", (unsigned long long)c->version, fedrec_catalogue_items(c), added,
       withdrawn, fedrec_catalogue_blocked_count(c), fedrec_catalogue_restricted_count(c), c->n_groups, mods, c->ds.content_dim, c->len);
}

/* The catalogue to serve: built from the setting's files and compared with the newest one
 * saved. The first start saves version 1; files that changed since make the next version
 * (the saved items keep their indices, those gone are withdrawn, new ones are appended:
 * fedrec_catalogue_follow); unchanged files serve the saved version. */
fedrec_status catalogue_load_served(server *s, fedrec_error *err) {
  fedrec_catalogue next, prev = {0};
  fedrec_catalogue_rules rules;
  uint8_t *blob;
  size_t len;
  int32_t added, withdrawn;
  int changed, have_prev = 0;
  fedrec_status st = fedrec_catalogue_load(&next, s->cfg.catalogue, err);
  if (st) return prefixed(err, st, "catalogue");
  if ((st = fedrec_catalogue_set_precision(&next, s->cfg.catalogue_precision, err)) ||
      (st = fedrec_catalogue_rules_read(&rules, s->cfg.availability, s->cfg.blocked, err))) {
    fedrec_catalogue_free(&next);
    return st;
  }
  st = coord_store_load_catalogue(s->store, 0, &blob, &len, err);
  if (st == FEDREC_ERR_EMPTY) {
    st = FEDREC_OK;
  } else if (!st) {
    st = fedrec_catalogue_decode(&prev, blob, len, err);
    have_prev = !st;
    free(blob);
  }
  if (!st) st = follow(s, &next, have_prev ? &prev : NULL, &rules, &added, &withdrawn, &changed, err);
  fedrec_catalogue_rules_free(&rules);
  if (!st && changed)
    st = coord_store_save_catalogue(s->store, next.version, next.hash, next.blob, next.len, fedrec_catalogue_items(&next), added,
                                    withdrawn, err);
  if (!st && changed) log_catalogue(have_prev ? "catalogue_updated" : "catalogue_created", &next, added, withdrawn);
  if (!st) {
    s->cat = changed ? next : prev;
    memset(changed ? &next : &prev, 0, sizeof next);
  }
  fedrec_catalogue_free(&next);
  fedrec_catalogue_free(&prev);
  return st;
}

/* The operator's free-items file: one item id per line, like npy:'s IDS.txt
 * (fedrec_parse_id_list). "" gives no list. */
static fedrec_status free_list_read(const char *path, fedrec_idmap **out, fedrec_error *err) {
  *out = NULL;
  if (!path[0]) return FEDREC_OK;
  char *buf;
  int64_t len;
  fedrec_status st = fedrec_read_file(path, &buf, &len, err);
  if (st) return prefixed(err, st, "free-items");
  fedrec_idmap *m = fedrec_idmap_new();
  st = m ? fedrec_parse_id_list(m, buf, len, path, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "free-items %s", path);
  free(buf);
  if (st) {
    fedrec_idmap_free(m);
    return prefixed(err, st, "free-items");
  }
  *out = m;
  return FEDREC_OK;
}

/* The listed items of cat that get a free embedding now: in cat, not withdrawn, and without
 * one in m (NULL: a model not made yet), in the list's order; *unknown counts the ids cat does
 * not hold (the first in first_unknown). */
static fedrec_status free_to_add(fedrec_idmap *list, const fedrec_catalogue *cat, const fedrec_model *m, int32_t **add,
                                 int32_t *n, int32_t *unknown, char *first_unknown, size_t cap, fedrec_error *err) {
  int32_t size = list ? fedrec_idmap_size(list) : 0;
  *add = NULL, *n = 0, *unknown = 0;
  if (!size) return FEDREC_OK;
  if (!(*add = malloc((size_t)size * sizeof **add))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "free-items");
  for (int32_t k = 0; k < size; k++) {
    const char *id = fedrec_idmap_name(list, k);
    int32_t i = fedrec_idmap_get(cat->ds.items, id, strlen(id), 0);
    if (i < 0 && !(*unknown)++) snprintf(first_unknown, cap, "%s", id);
    if (i < 0 || (cat->withdrawn && cat->withdrawn[i]) || (m && i < m->n_items && m->free_row[i] >= 0)) continue;
    (*add)[(*n)++] = i;
  }
  return FEDREC_OK;
}

/* The model grows to cat (its ref signs the next model) with free embeddings for the listed
 * items that have none; logged. FEDREC_ERR_STATE: a round in flight. */
static fedrec_status model_follows(server *s, const fedrec_catalogue *cat, fedrec_error *err) {
  int32_t *add, n, unknown;
  char first[257] = "";
  const fedrec_model *m = fedrec_engine_current_model(s->engine);
  fedrec_status st = free_to_add(s->free_ids, cat, m, &add, &n, &unknown, first, sizeof first, err);
  /* gRPC's receive cap was fixed at start (max-message-mb 0: what the model then needed): a
   * model whose masked input would not fit could never finish a round */
  uint64_t need = 4096 + 4 * (uint64_t)fedrec_ddp_padded((uint32_t)(fedrec_model_params(m) + (int64_t)n * m->d));
  if (!st && n && s->max_msg && need > s->max_msg) {
    logj("error", "free_items_refused", "\"items\": %d, \"message_bytes\": %llu, \"max_message_bytes\": %zu, \"reason\": \"the masked "
         "input would exceed the message cap fixed at start: restart the coordinator (it sizes the cap for the model it starts "
         "with), or set max-message-mb\"", n, (unsigned long long)need, s->max_msg);
    n = 0;
    if (cat == &s->cat) { /* nothing else changes: no new model */
      free(add);
      return FEDREC_OK;
    }
  }
  fedrec_catalogue_ref ref = fedrec_catalogue_name(cat);
  if (!st) st = fedrec_engine_set_catalogue(s->engine, &cat->ds, &ref, add, n, err);
  free(add);
  if (st) return st;
  fedrec_published pub;
  fedrec_engine_model(s->engine, &pub);
  logj("info", "model_follows_catalogue", "\"catalogue_version\": %llu, \"items\": %d, \"model_version\": %llu, \"free_added\": %d, "
       "\"free_embeddings\": %d, \"params\": %lld", (unsigned long long)cat->version, fedrec_catalogue_items(cat),
       (unsigned long long)pub.version, n, fedrec_engine_current_model(s->engine)->n_free, (long long)pub.dim);
  if (unknown) {
    char js[sizeof first * 6];
    fedrec_json_escape(js, sizeof js, first);
    logj("warn", "free_items_unknown", "\"count\": %d, \"first\": \"%s\", \"file\": \"%s\"", unknown, js, s->cfg.free_items);
  }
  return FEDREC_OK;
}

fedrec_status free_list_load(server *s, fedrec_error *err) {
  return free_list_read(s->cfg.free_items, &s->free_ids, err);
}

fedrec_status free_initial(server *s, int32_t **items, int32_t *n, fedrec_error *err) {
  int32_t unknown;
  char first[257];
  return free_to_add(s->free_ids, &s->cat, NULL, items, n, &unknown, first, sizeof first, err);
}

fedrec_status catalogue_follow_now(server *s, int changed, fedrec_error *err) {
  int32_t *add, n, unknown;
  char first[257];
  fedrec_status st = free_to_add(s->free_ids, &s->cat, fedrec_engine_current_model(s->engine), &add, &n, &unknown, first, sizeof first, err);
  free(add);
  if (st || (!changed && !n)) return st;
  return model_follows(s, &s->cat, err);
}

void catalogue_reload(server *s) {
  fedrec_catalogue next;
  fedrec_catalogue_rules rules = {0};
  fedrec_idmap *list = NULL;
  fedrec_error err = {0};
  int32_t added = 0, withdrawn = 0, *add = NULL, n = 0, unknown;
  int changed = 0;
  char first[257];
  logj("info", "catalogue_reload", NULL);
  fedrec_status st = fedrec_catalogue_load(&next, s->cfg.catalogue, &err); /* the files: outside the lock */
  if (st) prefixed(&err, st, "catalogue");
  if (!st) st = fedrec_catalogue_set_precision(&next, s->cfg.catalogue_precision, &err);
  if (!st) st = free_list_read(s->cfg.free_items, &list, &err);
  if (!st) st = fedrec_catalogue_rules_read(&rules, s->cfg.availability, s->cfg.blocked, &err);
  pthread_mutex_lock(&s->mu);
  if (!st) st = follow(s, &next, &s->cat, &rules, &added, &withdrawn, &changed, &err);
  if (!st && changed) /* saved now: a restart before it is applied finds it */
    st = coord_store_save_catalogue(s->store, next.version, next.hash, next.blob, next.len, fedrec_catalogue_items(&next), added,
                                    withdrawn, &err);
  if (!st) {
    fedrec_idmap_free(s->free_ids);
    s->free_ids = list, list = NULL;
    fedrec_catalogue_free(&s->pending_cat); /* a newer reload replaces one not yet applied */
    if (changed) {
      s->pending_cat = next;
      memset(&next, 0, sizeof next);
      log_catalogue("catalogue_update_pending", &s->pending_cat, added, withdrawn);
    } else {
      logj("info", "catalogue_unchanged", "\"version\": %llu", (unsigned long long)s->cat.version);
    }
    const fedrec_catalogue *target = s->pending_cat.blob ? &s->pending_cat : &s->cat;
    st = free_to_add(s->free_ids, target, fedrec_engine_current_model(s->engine), &add, &n, &unknown, first, sizeof first, &err);
    if (!st && n) logj("info", "free_items_pending", "\"items\": %d", n);
    s->pending = s->pending_cat.blob || n;
  }
  pthread_mutex_unlock(&s->mu);
  free(add);
  fedrec_idmap_free(list);
  fedrec_catalogue_rules_free(&rules);
  fedrec_catalogue_free(&next);
  if (st) { /* the served catalogue and list stay; nothing else changes */
    char js[1200];
    fedrec_json_escape(js, sizeof js, err.msg);
    logj("error", "catalogue_refused", "\"reason\": \"%s\", \"served_version\": %llu", js, (unsigned long long)s->cat.version);
  }
}

void catalogue_apply_pending(server *s) {
  fedrec_catalogue *p = &s->pending_cat;
  fedrec_error err = {0};
  fedrec_status st = model_follows(s, p->blob ? p : &s->cat, &err);
  if (st == FEDREC_ERR_STATE) return; /* a round in flight: the next tick */
  s->pending = 0;
  if (st) {
    char js[1200];
    fedrec_json_escape(js, sizeof js, err.msg);
    logj("error", "catalogue_not_applied", "\"version\": %llu, \"reason\": \"%s\"", (unsigned long long)(p->blob ? p : &s->cat)->version, js);
    fedrec_catalogue_free(p);
    return;
  }
  if (!p->blob) return;
  fedrec_catalogue old = s->cat; /* the engine's model now reads the new content */
  s->cat = *p;
  memset(p, 0, sizeof *p);
  fedrec_catalogue_free(&old);
}
