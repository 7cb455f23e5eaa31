/* The Prometheus endpoint over libmicrohttpd (see metrics_http.h). */
#include "metrics_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

enum {
  BODY_CAP = 1 << 17,     /* the metrics text is a few KiB */
  MAX_CONNECTIONS = 64,   /* all clients together */
  MAX_PER_ADDRESS = 8,    /* one scraper needs one or two */
};

struct metrics_http {
  struct MHD_Daemon *d;
  metrics_render_fn fn, page;
  void *ctx;
};

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_size, void **state) {
  (void)version, (void)upload_data;
  metrics_http *m = cls;
  int get = !strcmp(method, MHD_HTTP_METHOD_GET), head = !strcmp(method, MHD_HTTP_METHOD_HEAD);
  if (!*state) { /* first call for this request: headers only; answer on the next */
    *state = m;
    return MHD_YES;
  }
  if (*upload_size) { /* a request body (nothing here takes one): drop it */
    *upload_size = 0;
    return MHD_YES;
  }
  struct MHD_Response *r;
  unsigned code;
  int page = m->page && url && !strcmp(url, "/");
  if (get || head) {
    char *body = malloc(BODY_CAP);
    if (body) {
      r = MHD_create_response_from_buffer((page ? m->page : m->fn)(m->ctx, body, BODY_CAP), body, MHD_RESPMEM_MUST_FREE);
      code = MHD_HTTP_OK;
    } else {
      r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
      code = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
  } else {
    static const char msg[] = "only GET and HEAD\n";
    r = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
    code = MHD_HTTP_METHOD_NOT_ALLOWED;
  }
  if (!r) return MHD_NO;
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, page ? "text/html; charset=utf-8" : "text/plain; version=0.0.4");
  if (page) MHD_add_response_header(r, "Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'");
  if (code == MHD_HTTP_METHOD_NOT_ALLOWED) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  enum MHD_Result ok = MHD_queue_response(conn, code, r);
  MHD_destroy_response(r);
  return ok;
}

/* "HOST:PORT" or "[V6]:PORT" into a socket address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, int *v6) {
  char host[128];
  const char *colon = strrchr(s, ':');
  if (!colon || (size_t)(colon - s) >= sizeof host) return 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || port < 0 || port > 65535) return 0;
  memcpy(host, s, (size_t)(colon - s));
  host[colon - s] = 0;
  memset(ss, 0, sizeof *ss);
  if (host[0] == '[') {
    size_t n = strlen(host);
    if (n < 2 || host[n - 1] != ']') return 0;
    host[n - 1] = 0;
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)port);
    *v6 = 1;
    return inet_pton(AF_INET6, host + 1, &a->sin6_addr) == 1;
  }
  struct sockaddr_in *a = (struct sockaddr_in *)ss;
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  *v6 = 0;
  if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
  return inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &a->sin_addr) == 1;
}

fedrec_status metrics_http_start(metrics_http **out, const char *listen, unsigned timeout_s, metrics_render_fn fn,
                                 metrics_render_fn page, void *ctx, int *port, fedrec_error *err) {
  *out = NULL;
  struct sockaddr_storage ss;
  int v6 = 0;
  if (!parse_listen(listen, &ss, &v6))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "metrics: '%s' is not HOST:PORT or [IPV6]:PORT", listen);
  metrics_http *m = calloc(1, sizeof *m);
  if (!m) return fedrec_error_set(err, FEDREC_ERR_NOMEM, "metrics");
  m->fn = fn, m->page = page, m->ctx = ctx;
  int any6 = v6 && IN6_IS_ADDR_UNSPECIFIED(&((struct sockaddr_in6 *)&ss)->sin6_addr);
  unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | (any6 ? MHD_USE_DUAL_STACK : v6 ? MHD_USE_IPv6 : 0);
  m->d = MHD_start_daemon(flags, 0, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                          MHD_OPTION_CONNECTION_TIMEOUT, timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
                          MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)MAX_PER_ADDRESS,
                          MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(64 * 1024), MHD_OPTION_END);
  if (!m->d) {
    free(m);
    return fedrec_error_set(err, FEDREC_ERR_IO, "metrics: cannot listen on %s (in use, or a bad address)", listen);
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
  *port = info ? info->port : 0;
  *out = m;
  return FEDREC_OK;
}

void metrics_http_stop(metrics_http *m) {
  if (!m) return;
  MHD_stop_daemon(m->d);
  free(m);
}
