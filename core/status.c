#include "fedrec/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *fedrec_status_str(fedrec_status st) {
  switch (st) {
  case FEDREC_OK: return "ok";
  case FEDREC_ERR_NOMEM: return "out of memory";
  case FEDREC_ERR_IO: return "I/O error";
  case FEDREC_ERR_PARSE: return "parse error";
  case FEDREC_ERR_LIMIT: return "size limit exceeded";
  case FEDREC_ERR_ARG: return "invalid argument";
  case FEDREC_ERR_NUMERIC: return "numerical failure";
  case FEDREC_ERR_EMPTY: return "not enough data";
  case FEDREC_ERR_STATE: return "wrong state";
  case FEDREC_ERR_AUTH: return "not authorised";
  }
  return "unknown status";
}

fedrec_status fedrec_error_set(fedrec_error *err, fedrec_status st, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = st;
  }
  return st;
}

static size_t edit_distance(const char *a, size_t na, const char *b, size_t nb) {
  size_t row[64];
  if (na >= 64 || nb >= 64) return (size_t)-1;
  for (size_t j = 0; j <= nb; j++) row[j] = j;
  for (size_t i = 1; i <= na; i++) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= nb; j++) {
      size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best) best = up + 1;
      if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
      diag = up;
      row[j] = best;
    }
  }
  return row[nb];
}

int fedrec_nearest_flag(const char *given, const char *known, char *out, size_t cap) {
  while (*given == '-') given++;
  size_t ng = strlen(given), best = (size_t)-1;
  for (const char *p = strstr(known, "--"); p; p = strstr(p + 2, "--")) {
    const char *s = p + 2, *e = s;
    while ((*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') || *e == '-') e++;
    if (e == s) continue;
    size_t d = edit_distance(given, ng, s, (size_t)(e - s));
    if (d < best) {
      best = d;
      snprintf(out, cap, "--%.*s", (int)(e - s), s);
    }
  }
  size_t allowed = ng / 3 < 2 ? 2 : ng / 3;
  return best != (size_t)-1 && best > 0 && best <= allowed;
}
