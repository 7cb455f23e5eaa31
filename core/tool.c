/* Shared by the command-line tools: number validation, JSON strings, a monotonic clock. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fedrec/internal/tool.h"

const char *fedrec_format_bound(char *out, size_t cap, double v) {
  if (v == floor(v) && fabs(v) < 1e15) snprintf(out, cap, "%.0f", v);
  else snprintf(out, cap, "%.6g", v);
  return out;
}

fedrec_status fedrec_parse_number(const char *flag, const char *v, double lo, double hi, int whole, double *out,
                                  fedrec_error *err) {
  if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s needs a value", flag);
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end || errno || !isfinite(x) || x < lo || x > hi || (whole && x != floor(x))) {
    char a[32], b[32];
    return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: '%.200s' is not a%s number in [%s, %s]", flag, v,
                            whole ? " whole" : "", fedrec_format_bound(a, sizeof a, lo),
                            fedrec_format_bound(b, sizeof b, hi));
  }
  *out = x;
  return FEDREC_OK;
}

fedrec_status fedrec_parse_u64(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                               fedrec_error *err) {
  if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s needs a value", flag);
  char *end;
  errno = 0;
  /* strtoull takes "-1" (as 2^64 - 1) and leading spaces: digits only */
  unsigned long long x = v[0] >= '0' && v[0] <= '9' ? strtoull(v, &end, 10) : 0;
  if (!(v[0] >= '0' && v[0] <= '9') || *end || errno || x < lo || x > hi)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: '%.200s' is not a whole number in [%llu, %llu]", flag, v,
                            (unsigned long long)lo, (unsigned long long)hi);
  *out = x;
  return FEDREC_OK;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s) {
  size_t n = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3 : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
  if (n == 2 && s[0] < 0xc2) return 0; /* overlong */
  for (size_t i = 1; i < n; i++)
    if ((s[i] & 0xc0) != 0x80) return 0;
  return n;
}

char *fedrec_json_escape(char *out, size_t cap, const char *s) {
  size_t o = 0;
  if (!cap) return out;
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p;) {
    char tmp[8];
    size_t n = 0, take = 1;
    if (*p == '"' || *p == '\\') tmp[n++] = '\\', tmp[n++] = (char)*p;
    else if (*p == '\n') tmp[n++] = '\\', tmp[n++] = 'n';
    else if (*p == '\t') tmp[n++] = '\\', tmp[n++] = 't';
    else if (*p == '\r') tmp[n++] = '\\', tmp[n++] = 'r';
    else if (*p < 0x20 || *p == 0x7f || (*p >= 0x80 && !utf8_len(p))) n = (size_t)snprintf(tmp, sizeof tmp, "\\u%04x", *p);
    else {
      take = utf8_len(p);
      memcpy(tmp, p, take);
      n = take;
    }
    if (o + n + 1 > cap) break;
    memcpy(out + o, tmp, n);
    o += n;
    p += take;
  }
  out[o] = 0;
  return out;
}

void fedrec_json_string(FILE *f, const char *s) {
  if (!s) {
    fputs("null", f);
    return;
  }
  size_t cap = strlen(s) * 6 + 1;
  char small[1024], *buf = cap <= sizeof small ? small : malloc(cap);
  if (!buf) { /* out of memory: printable ASCII only */
    fputc('"', f);
    for (const char *p = s; *p; p++) fputc(*p >= 0x20 && *p < 0x7f && *p != '"' && *p != '\\' ? *p : '?', f);
    fputc('"', f);
    return;
  }
  fprintf(f, "\"%s\"", fedrec_json_escape(buf, cap, s));
  if (buf != small) free(buf);
}

uint64_t fedrec_clock_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

double fedrec_clock_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The index of v among choices ("a, b, c"), or -1. */
static int choice_index(const char *choices, const char *v) {
  size_t n = strlen(v);
  int k = 0;
  for (const char *p = choices; *p; k++) {
    const char *e = strchr(p, ',');
    size_t len = e ? (size_t)(e - p) : strlen(p);
    if (len == n && !strncmp(p, v, n)) return k;
    if (!e) break;
    p = e + 1;
    while (*p == ' ') p++;
  }
  return -1;
}

static fedrec_status unknown_option(const fedrec_option *table, const char *f, fedrec_error *err) {
  char known[4096] = "", near[64];
  size_t n = 0;
  for (const fedrec_option *o = table; o->flag && n + 64 < sizeof known; o++) n += (size_t)snprintf(known + n, sizeof known - n, "%s ", o->flag);
  if (fedrec_nearest_flag(f, known, near, sizeof near))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "unknown option '%.100s': did you mean %s? (see --help)", f, near);
  return fedrec_error_set(err, FEDREC_ERR_ARG, "unknown option '%.100s' (see --help)", f);
}

fedrec_status fedrec_option_parse(const fedrec_option *table, void *dest, int argc, char **argv, int *i,
                                  const fedrec_option **found, fedrec_error *err) {
  const char *f = argv[*i];
  const fedrec_option *o = table;
  while (o->flag && strcmp(o->flag, f)) o++;
  if (!o->flag) return unknown_option(table, f, err);
  *found = o;
  char *at = (char *)dest + o->offset;
  if (o->kind == FEDREC_ARG_SET) {
    *(int *)at = o->set;
    return FEDREC_OK;
  }
  const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
  if (!v) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s needs a value", f);
  (*i)++;
  if (o->kind == FEDREC_ARG_STRING) {
    *(const char **)at = v;
    return FEDREC_OK;
  }
  if (o->kind == FEDREC_ARG_CHOICE) {
    int k = choice_index(o->choices, v);
    if (k < 0) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: '%.100s' is not one of %s", f, v, o->choices);
    *(int *)at = k;
    return FEDREC_OK;
  }
  double x;
  int whole = o->kind == FEDREC_ARG_INT32 || o->kind == FEDREC_ARG_UINT32 || o->kind == FEDREC_ARG_UINT64 ||
              o->kind == FEDREC_ARG_WHOLE;
  fedrec_status s = fedrec_parse_number(f, v, o->lo, o->hi, whole, &x, err);
  if (!s && (((o->open & FEDREC_OPEN_LO) && x == o->lo) || ((o->open & FEDREC_OPEN_HI) && x == o->hi))) s = FEDREC_ERR_ARG;
  if (s && o->open) { /* the message with the range's true brackets */
    char a[32], b[32];
    return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: '%.200s' is not a%s number in %s%s, %s%s", f, v, whole ? " whole" : "",
                            o->open & FEDREC_OPEN_LO ? "(" : "[", fedrec_format_bound(a, sizeof a, o->lo),
                            fedrec_format_bound(b, sizeof b, o->hi), o->open & FEDREC_OPEN_HI ? ")" : "]");
  }
  if (s) return s;
  switch (o->kind) {
  case FEDREC_ARG_WHOLE:
  case FEDREC_ARG_DOUBLE: *(double *)at = x; break;
  case FEDREC_ARG_FLOAT: *(float *)at = (float)x; break;
  case FEDREC_ARG_INT32: *(int32_t *)at = (int32_t)x; break;
  case FEDREC_ARG_UINT32: *(uint32_t *)at = (uint32_t)x; break;
  default: *(uint64_t *)at = (uint64_t)x; break;
  }
  return FEDREC_OK;
}

fedrec_status fedrec_spec_parse(const char *what, const char *spec, const fedrec_spec_key *keys, size_t n, fedrec_error *err) {
  char buf[512], names[256] = "";
  if (strlen(spec) >= sizeof buf) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s spec longer than %zu bytes", what, sizeof buf - 1);
  strcpy(buf, spec);
  for (size_t k = 0; k < n; k++)
    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", k ? ", " : "", keys[k].key);
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '='), *end;
    if (!eq) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: '%s' is not key=value", what, kv);
    *eq = '\0';
    double v = strtod(eq + 1, &end);
    if (end == eq + 1 || *end || !isfinite(v))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: %s='%s' is not a number", what, kv, eq + 1);
    size_t k = 0;
    for (; k < n && strcmp(keys[k].key, kv); k++) {}
    if (k == n) return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: unknown key '%s' (%s)", what, kv, names);
    int whole = keys[k].kind != FEDREC_SPEC_DOUBLE;
    if (v < keys[k].lo || v > keys[k].hi || (whole && v != floor(v)))
      return fedrec_error_set(err, FEDREC_ERR_ARG, "%s: %s=%g out of range [%g, %g]%s", what, kv, v, keys[k].lo, keys[k].hi,
                              whole ? " (integer)" : "");
    if (keys[k].kind == FEDREC_SPEC_INT32) *(int32_t *)keys[k].dst = (int32_t)v;
    else if (keys[k].kind == FEDREC_SPEC_UINT64) *(uint64_t *)keys[k].dst = (uint64_t)v;
    else *(double *)keys[k].dst = v;
  }
  return FEDREC_OK;
}
