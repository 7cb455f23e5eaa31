/* What the four command-line tools (fedrec-coordinator, fedrec-client, fedrec-sim,
 * fedrec-audit) share: one number validator with ranges, one JSON string writer that escapes,
 * one monotonic clock. Internal: not installed (core/tool.c). */
#ifndef FEDREC_INTERNAL_TOOL_H
#define FEDREC_INTERNAL_TOOL_H

#include <stddef.h>
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

/* Monotonic time since an arbitrary start: milliseconds, and seconds as a double. */
uint64_t fedrec_clock_ms(void);
double fedrec_clock_s(void);

#ifdef __cplusplus
}
#endif
#endif
