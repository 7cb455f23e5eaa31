#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fedrec/data.h"

void fedrec_lines_init(fedrec_lines *L, const char *buf, int64_t len, const char *name) {
  L->p = buf;
  L->end = buf + len;
  L->name = name;
  L->line = 0;
}

int fedrec_lines_next(fedrec_lines *L, fedrec_field *line) {
  if (L->p >= L->end) return 0;
  const char *s = L->p;
  const char *nl = memchr(s, '\n', (size_t)(L->end - s));
  const char *e = nl ? nl : L->end;
  L->p = nl ? nl + 1 : L->end;
  if (e > s && e[-1] == '\r') e--;
  line->s = s;
  line->n = (size_t)(e - s);
  L->line++;
  return 1;
}

int fedrec_split(fedrec_field line, char sep, fedrec_field *fields, int max) {
  int k = 0;
  const char *s = line.s, *end = line.s + line.n;
  for (;;) {
    const char *e = memchr(s, sep, (size_t)(end - s));
    if (!e) e = end;
    if (k == max) return max + 1;
    fields[k].s = s;
    fields[k].n = (size_t)(e - s);
    k++;
    if (e == end) return k;
    s = e + 1;
  }
}

/* Copies a field into a NUL-terminated buffer for strto*; rejects empty, overlong and
 * space-led fields (strto* would skip the spaces). */
static int field_cstr(fedrec_field f, char *tmp, size_t cap) {
  if (f.n == 0 || f.n >= cap || f.s[0] == ' ' || f.s[0] == '\t') return 0;
  memcpy(tmp, f.s, f.n);
  tmp[f.n] = '\0';
  return 1;
}

int fedrec_field_double(fedrec_field f, double *out) {
  char tmp[64];
  if (!field_cstr(f, tmp, sizeof tmp)) return 0;
  char *end;
  errno = 0;
  double v = strtod(tmp, &end);
  if (end != tmp + f.n || errno == ERANGE || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

int fedrec_field_i64(fedrec_field f, int64_t *out) {
  char tmp[32];
  if (!field_cstr(f, tmp, sizeof tmp)) return 0;
  char *end;
  errno = 0;
  long long v = strtoll(tmp, &end, 10);
  if (end != tmp + f.n || errno == ERANGE) return 0;
  *out = v;
  return 1;
}

int fedrec_field_is_id(fedrec_field f) {
  if (f.n == 0 || f.n > FEDREC_MAX_ID_LEN) return 0;
  for (size_t i = 0; i < f.n; i++)
    if ((unsigned char)f.s[i] < 0x20 || f.s[i] == 0x7f) return 0;
  return 1;
}

const char *fedrec_field_show(fedrec_field f, char *buf, size_t cap) {
  size_t w = 0;
  size_t n = f.n > 40 ? 40 : f.n;
  for (size_t i = 0; i < n && w + 5 < cap; i++) {
    unsigned char c = (unsigned char)f.s[i];
    if (c >= 0x20 && c < 0x7f) buf[w++] = (char)c;
    else w += (size_t)snprintf(buf + w, cap - w, "\\x%02x", c);
  }
  if (f.n > n && w + 4 < cap) {
    memcpy(buf + w, "...", 3);
    w += 3;
  }
  buf[w < cap ? w : cap - 1] = '\0';
  return buf;
}
