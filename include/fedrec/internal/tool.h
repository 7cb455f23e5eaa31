/* What the four command-line tools (fedrec-coordinator, fedrec-client, fedrec-sim,
 * fedrec-audit) share: one number validator with ranges, one JSON string writer that escapes,
 * one monotonic clock. Internal: not installed (core/tool.c). */
#ifndef FEDREC_INTERNAL_TOOL_H
#define FEDREC_INTERNAL_TOOL_H

#include <stddef.h> /* offsetof, for the table rows */
#include <stdint.h>
#include <stdio.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A number given for flag (a flag or setting name, for the message) in [lo, hi]; whole: it
 * must be an integer. Refuses an empty or missing value, trailing text, inf and nan, with
 * "FLAG: 'V' is not a [whole ]number in [LO, HI]" (or "FLAG needs a value") in err. */
fedrec_status fedrec_parse_number(const char *flag, const char *v, double lo, double hi, int whole, double *out,
                                  fedrec_error *err);
/* A whole number in [lo, hi] over the full 64-bit range (ids, versions): digits only (no
 * sign, no spaces), same message. */
fedrec_status fedrec_parse_u64(const char *flag, const char *v, uint64_t lo, uint64_t hi, uint64_t *out,
                               fedrec_error *err);
/* A bound or default as people write it: 1048576, not 1.04858e+06; 1e-300 stays short. */
const char *fedrec_format_bound(char *out, size_t cap, double v);

/* s as the inside of a JSON string (quotes, backslashes and control characters escaped;
 * invalid UTF-8 bytes as \u00XX), truncated at a character boundary to fit cap (NUL
 * included). Returns out. */
char *fedrec_json_escape(char *out, size_t cap, const char *s);
/* Writes "s" (with its quotes) to f, escaped; "null" for NULL. */
void fedrec_json_string(FILE *f, const char *s);

/* ---- "key=value,key=value" specs (--dataset synthetic:..., fitted:...) ----
 * Each key's value must be a number in [lo, hi] (whole for FEDREC_SPEC_INT32 and _UINT64);
 * unknown keys, missing '=', text after the number and out-of-range values are refused with a
 * message that starts with `what` and lists the keys. */
typedef enum { FEDREC_SPEC_DOUBLE, FEDREC_SPEC_INT32, FEDREC_SPEC_UINT64 } fedrec_spec_kind;
typedef struct fedrec_spec_key {
  const char *key;
  double lo, hi;
  fedrec_spec_kind kind;
  void *dst;
} fedrec_spec_key;
fedrec_status fedrec_spec_parse(const char *what, const char *spec, const fedrec_spec_key *keys, size_t n, fedrec_error *err);

/* ---- command-line options: one table per tool ----
 * Each entry names a flag, the kind of its value, where the value goes (an offset into the
 * tool's argument struct), the range of a number or the names of a choice, a group (bits the
 * tool uses to see what was given) and a line of help. */
typedef enum fedrec_arg_kind {
  FEDREC_ARG_SET,    /* no value: stores `set` (an int) */
  FEDREC_ARG_STRING, /* const char *, borrowed from argv */
  FEDREC_ARG_DOUBLE,
  FEDREC_ARG_FLOAT,
  FEDREC_ARG_INT32,  /* whole numbers */
  FEDREC_ARG_UINT32,
  FEDREC_ARG_UINT64, /* up to 2^53 */
  FEDREC_ARG_WHOLE,  /* a whole number kept in a double */
  FEDREC_ARG_CHOICE, /* one of `choices` ("a, b, c"): its index, as an int */
} fedrec_arg_kind;

typedef struct fedrec_option {
  const char *flag; /* "--dim" */
  fedrec_arg_kind kind;
  size_t offset;
  double lo, hi;       /* numbers */
  int set;             /* FEDREC_ARG_SET */
  const char *choices; /* FEDREC_ARG_CHOICE */
  unsigned group;
  const char *help;
  int open; /* numbers: FEDREC_OPEN_LO, FEDREC_OPEN_HI: that end of the range excluded */
} fedrec_option;
enum { FEDREC_OPEN_LO = 1, FEDREC_OPEN_HI = 2 };

/* Table rows, by field name (fields not named are zero): T is the tool's argument struct. */
#define FEDREC_OPTION_STRING(f, T, field) {.flag = (f), .kind = FEDREC_ARG_STRING, .offset = offsetof(T, field)}
#define FEDREC_OPTION_SET(f, T, field, value, grp) \
  {.flag = (f), .kind = FEDREC_ARG_SET, .offset = offsetof(T, field), .set = (value), .group = (grp)}
#define FEDREC_OPTION_NUMBER(f, k, T, field, low, high, grp, opn)                                            \
  {.flag = (f), .kind = (k), .offset = offsetof(T, field), .lo = (low), .hi = (high), .group = (grp), \
   .open = (opn)}
#define FEDREC_OPTION_CHOICE(f, T, field, names, grp) \
  {.flag = (f), .kind = FEDREC_ARG_CHOICE, .offset = offsetof(T, field), .choices = (names), .group = (grp)}
#define FEDREC_OPTION_END {.flag = NULL}

/* argv[*i] against the table (ended by an entry with flag NULL): its value (argv[*i + 1],
 * except for FEDREC_ARG_SET) parsed, checked and stored at dest + offset, *i moved past it,
 * *found the entry. FEDREC_ERR_ARG names the flag and what is wrong; for a flag not in the
 * table, "unknown option '--x': did you mean --y? (see --help)". */
fedrec_status fedrec_option_parse(const fedrec_option *table, void *dest, int argc, char **argv, int *i,
                                  const fedrec_option **found, fedrec_error *err);

/* Monotonic time since an arbitrary start: milliseconds, and seconds as a double. */
uint64_t fedrec_clock_ms(void);
double fedrec_clock_s(void);

#ifdef __cplusplus
}
#endif
#endif
