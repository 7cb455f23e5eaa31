/* The coordinator's Prometheus endpoint: HTTP served by libmicrohttpd (Debian's
 * libmicrohttpd12), with its own polling thread, a deadline per connection and limits on
 * connections, so that no client (a slow one, a hostile one, many) can block scrapes or end
 * the endpoint. Internal to coordinator/. */
#ifndef FEDREC_COORD_METRICS_HTTP_H
#define FEDREC_COORD_METRICS_HTTP_H

#include <stddef.h>

#include "fedrec/status.h"

/* Writes the metrics text into out (cap bytes); returns its length. Called from the
 * endpoint's thread. */
typedef size_t (*metrics_render_fn)(void *ctx, char *out, size_t cap);

typedef struct metrics_http metrics_http;

/* Serves GET (and HEAD) on listen: "/" is page's HTML (when page is not NULL), every other
 * path fn's metrics text. listen: "HOST:PORT" (IPv4, "localhost") or "[V6ADDR]:PORT" (IPv6;
 * "[::]" also takes IPv4 where the system allows); port 0 picks one, written to *port.
 * Connections idle for timeout_s seconds are closed. */
fedrec_status metrics_http_start(metrics_http **out, const char *listen, unsigned timeout_s, metrics_render_fn fn,
                                 metrics_render_fn page, void *ctx, int *port, fedrec_error *err);
/* Stops the endpoint and waits for its thread; NULL is fine. */
void metrics_http_stop(metrics_http *m);

#endif
