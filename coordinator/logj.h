/* One JSON object per line on stderr: {"ts": ..., "level": ..., "event": ..., fields}; fields
 * is a preformatted JSON fragment ("\"k\": v, ..."), or NULL. Shared by fedrec-coordinator and
 * fedrec-aggregator. Internal to coordinator/. */
#ifndef FEDREC_COORD_LOGJ_H
#define FEDREC_COORD_LOGJ_H

void logj(const char *level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
