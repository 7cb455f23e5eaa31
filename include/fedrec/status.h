/* fedrec: one status enum for the whole library, and an error record that carries
 * context (file:line of bad input, which flag, which field) back to the caller. */
#ifndef FEDREC_STATUS_H
#define FEDREC_STATUS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Numbered, never renumbered: callers and logs may store the numbers. */
typedef enum fedrec_status {
  FEDREC_OK = 0,
  FEDREC_ERR_NOMEM = 1,   /* an allocation failed */
  FEDREC_ERR_IO = 2,      /* a file could not be opened or read */
  FEDREC_ERR_PARSE = 3,   /* input is malformed; the message says where */
  FEDREC_ERR_LIMIT = 4,   /* input exceeds a size cap */
  FEDREC_ERR_ARG = 5,     /* a caller or user argument is out of range */
  FEDREC_ERR_NUMERIC = 6, /* a factorisation failed (matrix not positive definite) */
  FEDREC_ERR_EMPTY = 7,   /* not enough data for the operation */
  FEDREC_ERR_STATE = 8,   /* the request does not fit the current state (wrong round or phase) */
  FEDREC_ERR_AUTH = 9,    /* a credential (device certificate) is missing, forged or someone else's */
} fedrec_status;

/* Filled by fallible calls; msg is a complete sentence fragment naming what and where. */
typedef struct fedrec_error {
  fedrec_status status;
  char msg[512];
} fedrec_error;

/* Short, static description of a status ("parse error", ...). Never NULL. */
const char *fedrec_status_str(fedrec_status st);

/* Records st and a printf-style message in err (err may be NULL); returns st so that
 * callers can write `return fedrec_error_set(err, FEDREC_ERR_PARSE, "...")`. */
fedrec_status fedrec_error_set(fedrec_error *err, fedrec_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* For "unknown option" messages: the flag in `known` (text naming flags as --name, e.g. a
 * usage message) nearest to `given` by edit distance, written to out with its dashes; 0 when
 * none is close (more than a third of its letters, at least 2, would have to change). */
int fedrec_nearest_flag(const char *given, const char *known, char *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
