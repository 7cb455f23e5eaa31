/* The cohort: members in an open-addressing table on the client id, the Poisson selection
 * coin, and the ban list of members caught sending what no honest client sends. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/accountant.h"
#include "engine_internal.h"

/* The device's selection coin for this round: heads with probability sampling_rate (a
 * 2^-53 multiple), the same however often it checks in. */
int fedrec__engine_coin(const fedrec_engine *e, uint64_t client) {
  uint8_t h[FEDREC_KEY_BYTES];
  fedrec_mask_key(h, e->coin_key, e->round, FEDREC_PRF_COIN, (uint32_t)client, (uint32_t)(client >> 32), 0);
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v |= (uint64_t)h[i] << (8 * i);
  uint64_t q = (uint64_t)(e->c.sampling_rate * 9007199254740992.0);
  return (v >> 11) < q;
}

static uint32_t slot_of(const fedrec_engine *e, uint64_t client) {
  uint64_t h = client * 0x9e3779b97f4a7c15ULL;
  return (uint32_t)(h >> 32) & (e->nslots - 1);
}

member *fedrec__engine_find(fedrec_engine *e, uint64_t client, uint32_t *idx) {
  for (uint32_t s = slot_of(e, client);; s = (s + 1) & (e->nslots - 1)) {
    uint32_t v = e->slots[s];
    if (!v) return NULL;
    if (e->members[v - 1].client == client) {
      if (idx) *idx = v - 1;
      return &e->members[v - 1];
    }
  }
}

/* The ban-list slot of client: where it is, or the empty slot where it would go. */
static uint32_t ban_slot(const fedrec_engine *e, uint64_t client) {
  uint32_t s = (uint32_t)((client * 0x9e3779b97f4a7c15ULL) >> 32) & (e->bslots - 1);
  while (e->banned[s] && e->banned[s] != client + 1) s = (s + 1) & (e->bslots - 1);
  return s;
}

int fedrec_engine_banned(const fedrec_engine *e, uint64_t client) {
  return e->bslots && e->banned[ban_slot(e, client)] == client + 1;
}

/* Leaves a misbehaving member out of this round (dropped) and of every later selection. */
void fedrec__engine_ban(fedrec_engine *e, member *m) {
  m->done = DROPPED;
  m->dropped_at = BANNED_AT;
  if (fedrec_engine_banned(e, m->client) || e->nbanned >= MAX_BANNED) return;
  if (2 * (e->nbanned + 1) > e->bslots) { /* grow: at most half full */
    uint32_t ns = e->bslots ? 2 * e->bslots : 64, os = e->bslots;
    uint64_t *old = e->banned, *nb = calloc(ns, sizeof *nb);
    if (!nb) return;
    e->banned = nb, e->bslots = ns;
    for (uint32_t i = 0; i < os; i++)
      if (old[i]) e->banned[ban_slot(e, old[i] - 1)] = old[i];
    free(old);
  }
  e->banned[ban_slot(e, m->client)] = m->client + 1;
  e->nbanned++;
}

void fedrec__engine_add_member(fedrec_engine *e, uint64_t client) {
  uint32_t s = slot_of(e, client);
  while (e->slots[s]) s = (s + 1) & (e->nslots - 1);
  e->members[e->n] = (member){client, 0, 0, 0};
  e->slots[s] = ++e->n;
}

void fedrec__engine_clear_members(fedrec_engine *e) {
  if (e->n) memset(e->slots, 0, (size_t)e->nslots * sizeof *e->slots);
  e->n = 0;
}
