/* String id -> dense index: open addressing with linear probing over an index table;
 * names are kept in one growing arena so lookups touch little memory. */
#include <stdlib.h>
#include <string.h>

#include "fedrec/data.h"
#include "internal.h"

struct fedrec_idmap {
  int32_t *slots;     /* cap entries: index + 1, or 0 when empty */
  uint64_t *hashes;   /* per index */
  int64_t *name_off;  /* per index: offset of the NUL-terminated name in arena */
  char *arena;
  int64_t arena_len, arena_cap;
  int32_t size, idx_cap;
  int64_t cap; /* power of two */
};

uint64_t fedrec__hash(const char *s, size_t n) {
  uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a final mix */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

fedrec_idmap *fedrec_idmap_new(void) {
  fedrec_idmap *m = calloc(1, sizeof *m);
  if (!m) return NULL;
  m->cap = 1024;
  m->slots = calloc((size_t)m->cap, sizeof *m->slots);
  if (!m->slots) {
    free(m);
    return NULL;
  }
  return m;
}

void fedrec_idmap_free(fedrec_idmap *m) {
  if (!m) return;
  free(m->slots);
  free(m->hashes);
  free(m->name_off);
  free(m->arena);
  free(m);
}

static int rehash(fedrec_idmap *m) {
  int64_t cap = m->cap * 2;
  int32_t *slots = calloc((size_t)cap, sizeof *slots);
  if (!slots) return -1;
  for (int32_t i = 0; i < m->size; i++) {
    int64_t j = (int64_t)(m->hashes[i] & (uint64_t)(cap - 1));
    while (slots[j]) j = (j + 1) & (cap - 1);
    slots[j] = i + 1;
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  return 0;
}

static int add_name(fedrec_idmap *m, const char *key, size_t len, uint64_t h) {
  if (m->size == m->idx_cap) {
    int32_t nc = m->idx_cap ? (m->idx_cap > INT32_MAX / 2 ? INT32_MAX - 1 : m->idx_cap * 2) : 256;
    if (nc <= m->idx_cap) return -1;
    uint64_t *hs = realloc(m->hashes, (size_t)nc * sizeof *hs);
    if (!hs) return -1;
    m->hashes = hs;
    int64_t *no = realloc(m->name_off, (size_t)nc * sizeof *no);
    if (!no) return -1;
    m->name_off = no;
    m->idx_cap = nc;
  }
  if (m->arena_len + (int64_t)len + 1 > m->arena_cap) {
    int64_t nc = m->arena_cap ? m->arena_cap * 2 : 4096;
    while (nc < m->arena_len + (int64_t)len + 1) nc *= 2;
    char *a = realloc(m->arena, (size_t)nc);
    if (!a) return -1;
    m->arena = a;
    m->arena_cap = nc;
  }
  memcpy(m->arena + m->arena_len, key, len);
  m->arena[m->arena_len + (int64_t)len] = '\0';
  m->name_off[m->size] = m->arena_len;
  m->hashes[m->size] = h;
  m->arena_len += (int64_t)len + 1;
  return 0;
}

int32_t fedrec_idmap_get(fedrec_idmap *m, const char *key, size_t len, int create) {
  uint64_t h = fedrec__hash(key, len);
  int64_t j = (int64_t)(h & (uint64_t)(m->cap - 1));
  while (m->slots[j]) {
    int32_t i = m->slots[j] - 1;
    if (m->hashes[i] == h) {
      const char *name = m->arena + m->name_off[i];
      if (strlen(name) == len && memcmp(name, key, len) == 0) return i;
    }
    j = (j + 1) & (m->cap - 1);
  }
  if (!create) return -1;
  if (m->size >= FEDREC_MAX_ENTITIES) return -2;
  if ((int64_t)(m->size + 1) * 2 > m->cap) {
    if (rehash(m)) return -2;
    j = (int64_t)(h & (uint64_t)(m->cap - 1));
    while (m->slots[j]) j = (j + 1) & (m->cap - 1);
  }
  if (add_name(m, key, len, h)) return -2;
  m->slots[j] = m->size + 1;
  return m->size++;
}

int32_t fedrec_idmap_size(const fedrec_idmap *m) { return m ? m->size : 0; }

const char *fedrec_idmap_name(const fedrec_idmap *m, int32_t idx) {
  if (!m || idx < 0 || idx >= m->size) return NULL;
  return m->arena + m->name_off[idx];
}
