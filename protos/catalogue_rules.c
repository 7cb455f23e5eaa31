/* Availability and blocking (docs/CATALOGUE.md "Availability"): the operator's rule files, the
 * rules as part of the signed catalogue (wire form, checks), and what a device in some groups
 * may be recommended. The device's groups are its own setting: nothing here sends them. */
#include "catalogue_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/content.h"

/* The most availability sets a catalogue holds (regions and operator groups together). */
#define MAX_GROUPS 65536

void fedrec_catalogue_rules_free(fedrec_catalogue_rules *r) {
  if (!r) return;
  fedrec_idmap_free(r->items), fedrec_idmap_free(r->groups), fedrec_idmap_free(r->blocked);
  free(r->start), free(r->group);
  memset(r, 0, sizeof *r);
}

fedrec_status fedrec_catalogue_rules_parse(fedrec_catalogue_rules *r, const char *avail, int64_t alen, const char *aname,
                                           const char *blocked, int64_t blen, const char *bname, fedrec_error *err) {
  memset(r, 0, sizeof *r);
  fedrec_status st = FEDREC_OK;
  if (avail) {
    r->items = fedrec_idmap_new(), r->groups = fedrec_idmap_new();
    st = r->items && r->groups ? fedrec_parse_availability(r->items, r->groups, &r->start, &r->group, avail, alen, aname, err)
                               : fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
    if (!st && fedrec_idmap_size(r->groups) > MAX_GROUPS)
      st = fedrec_error_set(err, FEDREC_ERR_LIMIT, "%s: %d groups, more than %d", aname, fedrec_idmap_size(r->groups), MAX_GROUPS);
  }
  if (!st && blocked) {
    r->blocked = fedrec_idmap_new();
    st = r->blocked ? fedrec_parse_id_list(r->blocked, blocked, blen, bname, err) : fedrec_error_set(err, FEDREC_ERR_NOMEM, "blocked");
  }
  if (st) fedrec_catalogue_rules_free(r);
  return st;
}

fedrec_status fedrec_catalogue_rules_read(fedrec_catalogue_rules *r, const char *availability, const char *blocked,
                                          fedrec_error *err) {
  char *a = NULL, *b = NULL;
  int64_t alen = 0, blen = 0;
  memset(r, 0, sizeof *r);
  fedrec_status st = availability && availability[0] ? fedrec_read_file(availability, &a, &alen, err) : FEDREC_OK;
  if (!st && blocked && blocked[0]) st = fedrec_read_file(blocked, &b, &blen, err);
  if (!st) st = fedrec_catalogue_rules_parse(r, a, alen, availability, b, blen, blocked, err);
  free(a), free(b);
  return st;
}

void fedrec__catalogue_rules_clear(fedrec_catalogue *c) {
  for (int32_t g = 0; c->groups && g < c->n_groups; g++) free(c->groups[g]);
  free(c->groups), free(c->gstart), free(c->gitems), free(c->blocked), free(c->restricted);
  c->groups = NULL, c->gstart = c->gitems = NULL, c->blocked = c->restricted = NULL, c->n_groups = 0;
}

/* c->restricted from the sets: once per catalogue, so that a device's filter touches only its
 * own groups' lists. */
static fedrec_status mark_restricted(fedrec_catalogue *c, fedrec_error *err) {
  int32_t n = fedrec_catalogue_items(c);
  if (!c->n_groups) return FEDREC_OK;
  if (!(c->restricted = calloc((size_t)n + 1, 1))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
  for (int32_t j = 0; j < c->gstart[c->n_groups]; j++) c->restricted[c->gitems[j]] = 1;
  return FEDREC_OK;
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* c's groups from r: names sorted, and each group's items (c's indices, increasing). */
static fedrec_status build_groups(fedrec_catalogue *c, const fedrec_catalogue_rules *r, const int32_t *index, fedrec_error *err) {
  int32_t ng = r->groups ? fedrec_idmap_size(r->groups) : 0, nl = r->items ? fedrec_idmap_size(r->items) : 0;
  int32_t *count = calloc((size_t)ng + 1, sizeof *count), *order = malloc(((size_t)ng + 1) * sizeof *order);
  char **names = calloc((size_t)ng + 1, sizeof *names);
  if (!count || !order || !names) {
    free(count), free(order), free(names);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
  }
  for (int32_t g = 0; g < ng; g++) names[g] = (char *)fedrec_idmap_name(r->groups, g);
  qsort(names, (size_t)ng, sizeof *names, cmp_name);
  for (int32_t g = 0; g < ng; g++) order[fedrec_idmap_get(r->groups, names[g], strlen(names[g]), 0)] = g; /* file's -> sorted */
  for (int32_t k = 0; k < nl; k++)
    for (int32_t j = r->start[k]; index[k] >= 0 && j < r->start[k + 1]; j++) count[order[r->group[j]]]++;
  /* groups left without items (only unknown ones listed) are left out: one encoding per rules */
  int32_t kept = 0, *slot = malloc(((size_t)ng + 1) * sizeof *slot); /* sorted -> kept */
  for (int32_t g = 0; slot && g < ng; g++) slot[g] = count[g] ? kept++ : -1;
  c->groups = calloc((size_t)kept + 1, sizeof *c->groups);
  c->gstart = calloc((size_t)kept + 1, sizeof *c->gstart);
  int64_t total = 0;
  for (int32_t g = 0; g < ng; g++) total += count[g];
  c->gitems = malloc(((size_t)total + 1) * sizeof *c->gitems);
  fedrec_status st = slot && c->groups && c->gstart && c->gitems ? FEDREC_OK : fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
  if (!st) c->n_groups = kept;
  for (int32_t g = 0; !st && g < ng; g++) {
    if (slot[g] < 0) continue;
    c->gstart[slot[g] + 1] = c->gstart[slot[g]] + count[g];
    count[g] = c->gstart[slot[g]]; /* the next free slot */
    if (!(c->groups[slot[g]] = strdup(names[g]))) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
  }
  /* by item index, so that each group's list comes out increasing */
  int32_t n = fedrec_catalogue_items(c), *line = malloc(((size_t)n + 1) * sizeof *line);
  if (!st && !line) st = fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
  for (int32_t i = 0; !st && i < n; i++) line[i] = -1;
  for (int32_t k = 0; !st && k < nl; k++)
    if (index[k] >= 0) line[index[k]] = k;
  for (int32_t i = 0; !st && i < n; i++)
    for (int32_t j = line[i] >= 0 ? r->start[line[i]] : 0; line[i] >= 0 && j < r->start[line[i] + 1]; j++)
      c->gitems[count[order[r->group[j]]]++] = i;
  free(line), free(count), free(order), free(names), free(slot);
  return st;
}

fedrec_status fedrec_catalogue_apply_rules(fedrec_catalogue *c, const fedrec_catalogue_rules *r, int32_t *unknown, char *first,
                                           size_t cap, fedrec_error *err) {
  int32_t n = fedrec_catalogue_items(c), nl = r->items ? fedrec_idmap_size(r->items) : 0;
  int32_t nb = r->blocked ? fedrec_idmap_size(r->blocked) : 0;
  *unknown = 0;
  if (cap) first[0] = 0;
  fedrec__catalogue_rules_clear(c);
  int32_t *index = malloc(((size_t)nl + 1) * sizeof *index);
  if (!index || (nb && !(c->blocked = calloc((size_t)n, 1)))) {
    free(index);
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "availability");
  }
  for (int32_t k = 0; k < nl + nb; k++) { /* the availability file's lines, then the block list's */
    const char *id = fedrec_idmap_name(k < nl ? r->items : r->blocked, k < nl ? k : k - nl);
    int32_t i = fedrec_idmap_get(c->ds.items, id, strlen(id), 0);
    if (i < 0 && !(*unknown)++ && cap) snprintf(first, cap, "%s", id);
    if (k < nl) index[k] = i;
    else if (i >= 0) c->blocked[i] = 1;
  }
  fedrec_status st = FEDREC_OK;
  if (!st && nl) st = build_groups(c, r, index, err);
  if (!st) st = mark_restricted(c, err);
  free(index);
  if (st) fedrec__catalogue_rules_clear(c);
  return st;
}

int fedrec_catalogue_groups_valid(const char *groups) {
  if (!groups[0]) return 1;
  for (const char *p = groups;;) {
    const char *e = strchr(p, ',');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    if (!fedrec_group_name_valid(p, n)) return 0;
    if (!e) return 1;
    p = e + 1;
  }
}

/* Group g's index in c, or -1 (binary search: names increasing). */
static int32_t find_group(const fedrec_catalogue *c, const char *name, size_t n) {
  int32_t lo = 0, hi = c->n_groups - 1;
  while (lo <= hi) {
    int32_t mid = lo + (hi - lo) / 2;
    int k = strncmp(c->groups[mid], name, n);
    if (!k) k = c->groups[mid][n] ? 1 : 0;
    if (!k) return mid;
    if (k < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

int32_t fedrec_catalogue_allowed(const fedrec_catalogue *c, const char *groups, uint8_t *allowed) {
  int32_t n = fedrec_catalogue_items(c), count = 0;
  for (int32_t i = 0; i < n; i++)
    allowed[i] = !(c->withdrawn && c->withdrawn[i]) && !(c->blocked && c->blocked[i]) && !(c->restricted && c->restricted[i]);
  /* restricted items: only those in one of the device's groups */
  for (const char *p = groups; c->n_groups && p && *p;) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    int32_t g = find_group(c, p, len);
    for (int32_t j = g >= 0 ? c->gstart[g] : 0; g >= 0 && j < c->gstart[g + 1]; j++) {
      int32_t i = c->gitems[j];
      allowed[i] = !(c->withdrawn && c->withdrawn[i]) && !(c->blocked && c->blocked[i]);
    }
    p = e ? e + 1 : NULL;
  }
  for (int32_t i = 0; i < n; i++) count += allowed[i];
  return count;
}

int32_t fedrec_catalogue_blocked_count(const fedrec_catalogue *c) {
  int32_t k = 0;
  for (int32_t i = 0; c->blocked && i < fedrec_catalogue_items(c); i++) k += c->blocked[i];
  return k;
}

int32_t fedrec_catalogue_restricted_count(const fedrec_catalogue *c) {
  int32_t k = 0;
  for (int32_t i = 0; c->restricted && i < fedrec_catalogue_items(c); i++) k += c->restricted[i];
  return k;
}

fedrec_status fedrec__catalogue_rules_wire(const fedrec_catalogue *c, Fedrec__V1__Catalogue *m, fedrec_error *err) {
  int32_t n = fedrec_catalogue_items(c);
  if (fedrec_catalogue_blocked_count(c)) m->blocked.data = c->blocked, m->blocked.len = (size_t)n;
  if (!c->n_groups) return FEDREC_OK;
  Fedrec__V1__Availability *a = calloc((size_t)c->n_groups, sizeof *a);
  m->availability = calloc((size_t)c->n_groups, sizeof *m->availability);
  uint32_t *items = malloc(((size_t)c->gstart[c->n_groups] + 1) * sizeof *items);
  if (!a || !m->availability || !items) {
    free(a), free(m->availability), free(items);
    m->availability = NULL;
    return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue availability");
  }
  for (int32_t j = 0; j < c->gstart[c->n_groups]; j++) items[j] = (uint32_t)c->gitems[j];
  for (int32_t g = 0; g < c->n_groups; g++) {
    fedrec__v1__availability__init(&a[g]);
    a[g].group = c->groups[g];
    a[g].items = items + c->gstart[g];
    a[g].n_items = (size_t)(c->gstart[g + 1] - c->gstart[g]);
    m->availability[g] = &a[g];
  }
  m->n_availability = (size_t)c->n_groups;
  return FEDREC_OK;
}

void fedrec__catalogue_rules_wire_free(Fedrec__V1__Catalogue *m) {
  if (m->n_availability) free(m->availability[0]->items), free(m->availability[0]);
  free(m->availability);
  m->availability = NULL, m->n_availability = 0;
}

fedrec_status fedrec__catalogue_rules_check(const Fedrec__V1__Catalogue *m, fedrec_error *err) {
  size_t n = m->n_ids;
  if (m->blocked.len && m->blocked.len != n)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu blocked flags for %zu items", m->blocked.len, n);
  for (size_t i = 0; i < m->blocked.len; i++)
    if (m->blocked.data[i] > 1) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: item %zu's blocked flag is not 0 or 1", i);
  if (m->n_availability > MAX_GROUPS)
    return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %zu availability sets, more than %d", m->n_availability, MAX_GROUPS);
  uint64_t total = 0;
  for (size_t g = 0; g < m->n_availability; g++) {
    const Fedrec__V1__Availability *a = m->availability[g];
    if (!fedrec_group_name_valid(a->group, strlen(a->group)))
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: availability set %zu's group name is not valid", g);
    if (g && strcmp(m->availability[g - 1]->group, a->group) >= 0)
      return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: availability set %zu is out of order or repeats a group", g);
    for (size_t j = 0; j < a->n_items; j++)
      if (a->items[j] >= n || (j && a->items[j] <= a->items[j - 1]))
        return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: group '%s' lists item %u (%zu items, increasing)", a->group,
                                a->items[j], n);
    total += a->n_items;
  }
  if (total > INT32_MAX) return fedrec_error_set(err, FEDREC_ERR_PARSE, "catalogue: %llu availability entries", (unsigned long long)total);
  return FEDREC_OK;
}

fedrec_status fedrec__catalogue_rules_build(fedrec_catalogue *c, const Fedrec__V1__Catalogue *m, fedrec_error *err) {
  size_t n = m->n_ids, ng = m->n_availability, total = 0;
  if (m->blocked.len) {
    if (!(c->blocked = malloc(n))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue");
    memcpy(c->blocked, m->blocked.data, n);
  }
  if (!ng) return FEDREC_OK;
  for (size_t g = 0; g < ng; g++) total += m->availability[g]->n_items;
  c->groups = calloc(ng, sizeof *c->groups);
  c->gstart = calloc(ng + 1, sizeof *c->gstart);
  c->gitems = malloc((total + 1) * sizeof *c->gitems);
  if (!c->groups || !c->gstart || !c->gitems) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue availability");
  c->n_groups = (int32_t)ng;
  for (size_t g = 0; g < ng; g++) {
    const Fedrec__V1__Availability *a = m->availability[g];
    if (!(c->groups[g] = strdup(a->group))) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "catalogue availability");
    c->gstart[g + 1] = c->gstart[g] + (int32_t)a->n_items;
    for (size_t j = 0; j < a->n_items; j++) c->gitems[c->gstart[g] + (int32_t)j] = (int32_t)a->items[j];
  }
  return mark_restricted(c, err);
}
