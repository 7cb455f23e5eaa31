#include "fedrec/status.h"

#include <stdarg.h>
#include <stdio.h>

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
