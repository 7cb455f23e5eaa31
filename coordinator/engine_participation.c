/* The participation bound (max_participation, min_separation): how often each device took
 * part and in which round last, in an open-addressing table on the client id, checked at
 * check-in and counted when the masked-input phase closes, after the callback persisted it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

int fedrec__engine_bounded(const fedrec_engine *e) {
  return e->c.max_participation || e->c.min_separation > 1 || e->c.tree_noise_multiplier > 0;
}

/* The slot of client: where it is, or the empty one where it would go. */
static uint32_t part_slot(const fedrec_engine *e, uint64_t client) {
  uint32_t s = (uint32_t)((client * 0x9e3779b97f4a7c15ULL) >> 32) & (e->pslots - 1);
  while (e->part[s].count && e->part[s].client != client) s = (s + 1) & (e->pslots - 1);
  return s;
}

static const participation *part_find(const fedrec_engine *e, uint64_t client) {
  if (!e->pslots) return NULL;
  const participation *p = &e->part[part_slot(e, client)];
  return p->count ? p : NULL;
}

/* Room for `more` new devices (the table at most half full); 0: no memory. */
static int part_reserve(fedrec_engine *e, uint32_t more) {
  uint64_t want = 2 * ((uint64_t)e->npart + more);
  if (want <= e->pslots) return 1;
  uint64_t ns = e->pslots ? e->pslots : 64;
  while (ns < want) ns *= 2;
  if (ns > (1u << 31)) return 0;
  participation *old = e->part, *np = calloc(ns, sizeof *np);
  if (!np) return 0;
  uint32_t os = e->pslots;
  e->part = np, e->pslots = (uint32_t)ns;
  for (uint32_t i = 0; i < os; i++)
    if (old[i].count) e->part[part_slot(e, old[i].client)] = old[i];
  free(old);
  return 1;
}

static void part_set(fedrec_engine *e, uint64_t client, uint32_t count, uint64_t last) {
  participation *p = &e->part[part_slot(e, client)];
  if (!p->count) e->npart++;
  *p = (participation){client, count, last};
}

void fedrec_engine_participation(const fedrec_engine *e, uint64_t client, uint32_t *count, uint64_t *last_round) {
  const participation *p = part_find(e, client);
  *count = p ? p->count : 0;
  *last_round = p ? p->last : 0;
}

fedrec_status fedrec_engine_restore_participation(fedrec_engine *e, uint64_t client, uint32_t count, uint64_t last_round,
                                                  fedrec_error *err) {
  if (e->n || e->phase != FEDREC_PHASE_SELECTING)
    return fedrec_error_set(err, FEDREC_ERR_STATE, "engine: participation is restored before the first check-in");
  if (!count) return FEDREC_OK;
  if (!part_reserve(e, 1)) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "engine: participation table");
  part_set(e, client, count, last_round);
  return FEDREC_OK;
}

int fedrec__engine_may_join(const fedrec_engine *e, uint64_t client) {
  const participation *p = part_find(e, client);
  if (!p) return 1;
  if (e->c.max_participation && p->count >= e->c.max_participation) return 0;
  if (e->c.tree_noise_multiplier > 0 && p->last >= e->tree.start) return 0; /* once per tree */
  return !(e->c.min_separation > 1 && e->round - p->last < e->c.min_separation);
}

int fedrec__engine_count_participation(fedrec_engine *e, char *why, size_t cap) {
  uint32_t n = 0;
  uint64_t *ids = malloc(((size_t)e->n + 1) * sizeof *ids);
  if (ids)
    for (uint32_t i = 0; i < e->n; i++)
      if (e->members[i].done >= (int)FEDREC_PHASE_MASKED) ids[n++] = e->members[i].client;
  if (!ids || !part_reserve(e, n)) {
    free(ids);
    snprintf(why, cap, "no memory to count the participation of %u devices: nothing unmasked", n);
    return 0;
  }
  /* durable first (a restart must not forget a participation), then in memory */
  if (e->cb.participated && e->cb.participated(e->cb.ctx, e->round, ids, n)) {
    free(ids);
    snprintf(why, cap, "the participation of %u devices could not be persisted: nothing unmasked", n);
    return 0;
  }
  for (uint32_t i = 0; i < n; i++) {
    const participation *p = part_find(e, ids[i]);
    part_set(e, ids[i], p ? p->count + 1 : 1, e->round);
  }
  free(ids);
  return 1;
}
