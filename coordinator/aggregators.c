/* The coordinator's side of the aggregators (docs/DEPLOY.md, "Aggregators"): the setting,
 * their port (mutual TLS), who is calling (the certificate's issuer and common name), which
 * are live, and their two methods: GetAssignment and SubmitAggregate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "server.h"

/* An aggregator that has not polled for this long gets no members in a new round. */
enum { LIVE_MS = 3000 };

int aggregators_parse(const char *spec, aggregator_entry *out, uint32_t *n, char *why, size_t cap) {
  *n = 0;
  const char *p = spec;
  while (*p) {
    const char *end = strchr(p, ','), *eq = strchr(p, '=');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (!eq || eq >= p + len) {
      snprintf(why, cap, "aggregators: entry %u (\"%.*s\") is not NAME=HOST:PORT", *n + 1, (int)(len > 64 ? 64 : len), p);
      return 0;
    }
    size_t nl = (size_t)(eq - p), al = len - nl - 1;
    if (*n == FEDREC_MAX_AGGREGATORS || !nl || nl >= sizeof out->name || !al || al >= sizeof out->addr) {
      snprintf(why, cap, "aggregators: entry %u: at most %d entries, names of 1-63 and addresses of 1-255 characters", *n + 1,
               FEDREC_MAX_AGGREGATORS);
      return 0;
    }
    aggregator_entry *a = &out[*n];
    memset(a, 0, sizeof *a);
    memcpy(a->name, p, nl);
    memcpy(a->addr, eq + 1, al);
    for (const char *q = a->addr; *q; q++)
      if (*q <= ' ' || *q >= 0x7f) {
        snprintf(why, cap, "aggregators: the address of %s has a space or a control character", a->name);
        return 0;
      }
    for (uint32_t k = 0; k < *n; k++)
      if (!strcmp(out[k].name, a->name)) {
        snprintf(why, cap, "aggregators: %s is named twice", a->name);
        return 0;
      }
    (*n)++;
    p += len + (end != NULL);
  }
  return 1;
}

int aggregators_listen(server *s, int *port) {
  config *c = &s->cfg;
  char why[256];
  *port = 0;
  if (!c->aggregators[0]) return 1;
  if (!aggregators_parse(c->aggregators, s->aggs, &s->naggs, why, sizeof why)) {
    fprintf(stderr, "fedrec-coordinator: %s\n", why);
    return 0;
  }
  char *cert = fedrec_rpc_read_text(c->tls_cert), *key = fedrec_rpc_read_text(c->tls_key), *ca = fedrec_rpc_read_text(c->aggregator_ca);
  BIO *bio = ca ? BIO_new_mem_buf(ca, -1) : NULL;
  s->agg_ca = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  BIO_free(bio);
  grpc_server_credentials *creds = NULL;
  if (cert && key && s->agg_ca) {
    grpc_ssl_pem_key_cert_pair pair = {.private_key = key, .cert_chain = cert};
    creds = grpc_ssl_server_credentials_create_ex(ca, &pair, 1, GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
  }
  if (key) sodium_memzero(key, strlen(key));
  free(cert), free(key), free(ca);
  if (!creds) {
    fprintf(stderr, "fedrec-coordinator: cannot read aggregator-ca %s (one PEM certificate) or the TLS files\n", c->aggregator_ca);
    return 0;
  }
  *port = grpc_server_add_http2_port(s->gs, c->aggregator_listen, creds);
  grpc_server_credentials_release(creds);
  if (!*port) {
    fprintf(stderr, "fedrec-coordinator: cannot listen on aggregator-listen %s (in use, or a bad address)\n", c->aggregator_listen);
    return 0;
  }
  return 1;
}

void aggregators_free(server *s) {
  X509_free(s->agg_ca);
  s->agg_ca = NULL;
}

/* The value of the auth context's first property called name, NUL-terminated in out. */
static int property(grpc_auth_context *ctx, const char *name, char *out, size_t cap) {
  grpc_auth_property_iterator it = grpc_auth_context_find_properties_by_name(ctx, name);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  if (!p || !p->value || p->value_length >= cap) return 0;
  memcpy(out, p->value, p->value_length);
  out[p->value_length] = 0;
  return 1;
}

/* 1 when the PEM certificate was issued and signed by the aggregators' CA. gRPC verified the
 * chain against the CA of the port the call came in on; this binds the call to aggregator-ca
 * whichever port it was (a device port with its own client CA included). */
static int issued_by(X509 *ca, const char *pem) {
  BIO *bio = BIO_new_mem_buf(pem, -1);
  X509 *leaf = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
  EVP_PKEY *key = ca ? X509_get0_pubkey(ca) : NULL;
  int ok = leaf && key && X509_check_issued(ca, leaf) == X509_V_OK && X509_verify(leaf, key) == 1;
  X509_free(leaf);
  BIO_free(bio);
  return ok;
}

int aggregator_authenticate(server *s, grpc_call *gc, uint32_t *agg, char *details, size_t cap) {
  grpc_auth_context *ctx = grpc_call_auth_context(gc);
  char cn[64], *pem = malloc(16384);
  int ok = ctx && pem && s->naggs && grpc_auth_context_peer_is_authenticated(ctx) &&
           property(ctx, GRPC_X509_CN_PROPERTY_NAME, cn, sizeof cn) && property(ctx, GRPC_X509_PEM_CERT_PROPERTY_NAME, pem, 16384) &&
           issued_by(s->agg_ca, pem);
  if (ctx) grpc_auth_context_release(ctx);
  free(pem);
  *agg = 0;
  for (uint32_t k = 0; ok && k < s->naggs && !*agg; k++)
    if (!strcmp(s->aggs[k].name, cn)) *agg = k + 1;
  if (*agg) return 1;
  snprintf(details, cap, "%s", !s->naggs ? "this coordinator has no aggregators"
                               : ok ? "the certificate's common name is not one of the coordinator's aggregators"
                                    : "aggregator methods need a client certificate from aggregator-ca (aggregator-listen)");
  return 0;
}

void aggregators_tick(server *s, uint64_t now) {
  uint8_t live[FEDREC_MAX_AGGREGATORS] = {0};
  for (uint32_t k = 0; k < s->naggs; k++) live[k] = s->aggs[k].last_seen && now - s->aggs[k].last_seen < LIVE_MS;
  fedrec_engine_set_aggregators(s->engine, s->naggs, live);
}

fedrec_status handle_get_assignment(request *r) {
  server *s = r->s;
  uint32_t agg = (uint32_t)(r->client - AGGREGATOR_CLIENT_BASE);
  Fedrec__V1__GetAssignmentResponse resp = FEDREC__V1__GET_ASSIGNMENT_RESPONSE__INIT;
  fedrec_assignment a;
  if (!s->aggs[agg - 1].last_seen) logj("info", "aggregator_live", "\"aggregator\": \"%s\"", s->aggs[agg - 1].name);
  s->aggs[agg - 1].last_seen = r->now;
  fedrec_status st = fedrec_engine_assignment(s->engine, agg, &a, &r->err);
  if (st && st != FEDREC_ERR_EMPTY) return st;
  if (!st) {
    resp.round = a.round;
    resp.open = a.open;
    resp.phase_ms_left = a.deadline > r->now ? (uint32_t)(a.deadline - r->now) : 0;
    resp.cohort_size = a.cohort;
    resp.dim = a.dim;
    resp.bits = a.bits;
    resp.n_cohort_index = resp.n_client = a.n;
    resp.cohort_index = a.index;
    resp.client = a.clients;
    resp.tickets.data = a.tickets;
    resp.tickets.len = (size_t)a.n * FEDREC_TICKET_BYTES;
  }
  r->c->resp = fedrec_rpc_pack(&resp.base);
  if (!st) fedrec_assignment_free(&a);
  return FEDREC_OK;
}

fedrec_status handle_submit_aggregate(request *r) {
  server *s = r->s;
  uint32_t agg = (uint32_t)(r->client - AGGREGATOR_CLIENT_BASE);
  const Fedrec__V1__SubmitAggregateRequest *q = (const Fedrec__V1__SubmitAggregateRequest *)r->rq;
  s->aggs[agg - 1].last_seen = r->now;
  fedrec_sa_msg sm;
  fedrec_status st = fedrec_rpc_aggregate_sum(q, &sm, &r->err);
  if (st) return st;
  int has = sm.type == FEDREC_SA_MSG_MASKED;
  uint32_t dim = has ? sm.u.masked.dim : 0;
  const uint32_t *y = has ? sm.u.masked.y : NULL;
  st = fedrec_engine_submit_aggregate(s->engine, agg, q->round, q->client, (uint32_t)q->n_client, y, dim, q->sum.len, q->refused,
                                      (uint32_t)q->n_refused, r->now, &r->err);
  if (has) fedrec_sa_msg_free(&sm);
  if (st) return st;
  if (q->n_refused)
    logj("warn", "aggregator_refused", "\"aggregator\": \"%s\", \"round\": %llu, \"clients\": %zu", s->aggs[agg - 1].name,
         (unsigned long long)q->round, q->n_refused);
  Fedrec__V1__SubmitAggregateResponse resp = FEDREC__V1__SUBMIT_AGGREGATE_RESPONSE__INIT;
  r->c->resp = fedrec_rpc_pack(&resp.base);
  return FEDREC_OK;
}
