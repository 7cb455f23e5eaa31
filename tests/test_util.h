/* Shared helpers for the unit tests (cmocka). */
#ifndef FEDREC_TEST_UTIL_H
#define FEDREC_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fedrec/fedrec.h"

/* Writes len bytes to a fresh temporary file; returns its path (static buffer per call
 * site is not needed: the caller passes one of PATH_MAX bytes). */
static inline void write_temp(char *path, size_t cap, const char *suffix, const void *data,
                              size_t len) {
  (void)suffix; /* mkstemps is not POSIX; the library never looks at file names' endings */
  snprintf(path, cap, "/tmp/fedrec_test_XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, len), (ssize_t)len);
  close(fd);
}

/* The real datasets beside the repository, or NULL when absent. */
static inline const char *shared_data_dir(void) {
  const char *env = getenv("FEDREC_DATA_DIR");
  if (env) return env;
  static char dir[4096];
  snprintf(dir, sizeof dir, "%s/../shared/data", FEDREC_SOURCE_DIR);
  return access(dir, R_OK) == 0 ? dir : NULL;
}

#define assert_status(expr, expected) assert_int_equal((int)(expr), (int)(expected))
#define assert_near(a, b, tol)                                                                 \
  do {                                                                                         \
    double a_ = (a), b_ = (b);                                                                 \
    if (!(fabs(a_ - b_) <= (tol))) fail_msg("%s = %.9g, expected %.9g (tol %g)", #a, a_, b_, (double)(tol)); \
  } while (0)

#endif
