/* Internal: a bounds-checked line and field reader over an in-memory file, tracking the
 * line number for error messages. Handles LF and CRLF. The buffer need not be
 * NUL-terminated; fields are (pointer, length) views into it. */
#ifndef FEDREC_CORE_TEXT_H
#define FEDREC_CORE_TEXT_H

#include <stdint.h>
#include <stddef.h>

#include "fedrec/status.h"

typedef struct {
  const char *p, *end;
  const char *name; /* file name for messages */
  int64_t line;     /* 1-based number of the line last returned */
} fedrec_lines;

typedef struct {
  const char *s;
  size_t n;
} fedrec_field;

void fedrec_lines_init(fedrec_lines *L, const char *buf, int64_t len, const char *name);
/* Next line without its terminator; 0 at end of input. */
int fedrec_lines_next(fedrec_lines *L, fedrec_field *line);
/* Splits line at sep into at most max fields; returns the count, or max + 1 if more. */
int fedrec_split(fedrec_field line, char sep, fedrec_field *fields, int max);
/* Strict numbers: the whole field must parse, no spaces, finite. */
int fedrec_field_double(fedrec_field f, double *out);
int fedrec_field_i64(fedrec_field f, int64_t *out);
/* Validates an id: 1..FEDREC_MAX_ID_LEN bytes, no control characters. */
int fedrec_field_is_id(fedrec_field f);
/* Prints at most 40 bytes of a field, escaping non-printables, into buf (for messages). */
const char *fedrec_field_show(fedrec_field f, char *buf, size_t cap);

#endif
