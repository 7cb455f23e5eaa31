/* Shared by the benchmarks: a monotonic clock and the JSON-lines record
 * {"name", "value", "unit"[, "limit", "limit_name", "ratio"][, extra fields]}. */
#ifndef FEDREC_BENCH_UTIL_H
#define FEDREC_BENCH_UTIL_H

#include <stdio.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* limit <= 0: no limit; extra: further JSON fields ("\"k\": 1, ...") or NULL. */
static inline void bench_emit(const char *name, double value, const char *unit, double limit,
                              const char *limit_name, const char *extra) {
  printf("{\"name\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"", name, value, unit);
  if (limit > 0)
    printf(", \"limit\": %.6g, \"limit_name\": \"%s\", \"ratio\": %.4f", limit, limit_name, value / limit);
  if (extra) printf(", %s", extra);
  printf("}\n");
  fflush(stdout);
}

#endif
