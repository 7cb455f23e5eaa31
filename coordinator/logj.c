/* The JSON log of fedrec-coordinator and fedrec-aggregator (logj.h). */
#include "logj.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;

void logj(const char *level, const char *event, const char *fmt, ...) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  char fields[2048] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fields, sizeof fields, fmt, ap);
    va_end(ap);
  }
  pthread_mutex_lock(&log_mu);
  fprintf(stderr, "{\"ts\": %lld.%03ld, \"level\": \"%s\", \"event\": \"%s\"%s%s}\n", (long long)ts.tv_sec,
          ts.tv_nsec / 1000000, level, event, fields[0] ? ", " : "", fields);
  pthread_mutex_unlock(&log_mu);
}
