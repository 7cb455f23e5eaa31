/* fedrec-coordinator's parts and what they share (internal to coordinator/):
 *   main.c      the command line, subcommands dispatch, the JSON log
 *   admin.c     init, token, revoke, status, export-model: the state directory's keys and files
 *   state.c     starting or resuming the engine from the state, saving what it publishes
 *   server.c    gRPC: the completion queue, calls, workers, the ticker, the listener watchdog
 *   handlers.c  one handler per RPC method (the table is made from FEDREC_RPC_MAP), tokens
 *   metrics.c   the Prometheus text (served by metrics_http.c)
 *   config.c    the settings table; store.c the coordinator's SQLite state */
#ifndef FEDREC_COORD_SERVER_H
#define FEDREC_COORD_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "fedrec/engine.h"
#include "fedrec/ledger.h"
#include "fedrec/data.h"
#include "catalogue.h"
#include "config.h"
#include "logj.h"
#include "metrics_http.h"
#include "rpc.h"
#include "store.h"

typedef struct metrics {
  uint64_t rounds_published, rounds_aborted, checkins, accepted, bytes_in, bytes_out;
  uint64_t dropouts[FEDREC_PHASES], rpc_errors[17];
  uint64_t last_cohort, last_survivors, last_phase_ms[FEDREC_PHASES];
  double epsilon, epsilon_public;
  double start_time, last_round_time;   /* Unix seconds: this process's start, the last published round (or the start) */
} metrics;

/* An aggregator (aggregators.c): the common name of its client certificate, where devices
 * reach it, and when it last called (engine clock; 0: never). */
typedef struct aggregator_entry {
  char name[64];
  char addr[256];
  uint64_t last_seen;
} aggregator_entry;
/* Aggregators make calls as these client ids (in-flight accounting), never a device's. */
#define AGGREGATOR_CLIENT_BASE (UINT64_MAX - 1024)

typedef struct server {
  config cfg;
  pthread_mutex_t mu; /* the engine, the store and the metrics */
  atomic_ullong listen_unaccepted; /* the watchdog's last look at the listen queue (no lock: the watchdog must
                                    * never wait for the engine's mutex) */
  fedrec_engine *engine;
  coord_store *store;
  fedrec_ledger *ledger;
  fedrec_identity id;
  uint8_t *token_secret;
  fedrec_catalogue cat; /* the catalogue served (the models' items) */
  fedrec_catalogue pending_cat; /* an update (SIGHUP) waiting for the round to end (blob: set) */
  fedrec_idmap *free_ids;       /* the free-items list as last read (NULL: none) */
  int pending;                  /* a catalogue or free-items update waits for the round to end */
  size_t max_msg;               /* gRPC's receive cap, fixed when serving starts (0 before) */
  metrics m;
  grpc_server *gs;
  grpc_completion_queue *cq;
  grpc_completion_queue *accept_cq; /* polled by the acceptor thread only (server.c) */
  pthread_t accept_thread;
  void *handles[FEDREC_RPC_NMETHODS];
  atomic_int shutting_down;
  pthread_mutex_t sd_mu;
  pthread_cond_t sd_cv;
  int shutdown_done;
  metrics_http *metrics;
  /* revoked client ids, sorted; reloaded from the state every few seconds by the ticker */
  pthread_mutex_t revoke_mu;
  /* calls in flight per client (a device makes one at a time): open addressing on the id,
   * under inflight_mu; beyond MAX_CALLS_PER_CLIENT a client's call is refused unread */
  pthread_mutex_t inflight_mu;
  struct inflight {
    uint64_t client;
    uint32_t calls;
    uint8_t used;
  } *inflight;
  uint64_t *revoked;
  size_t nrevoked;
  /* the configured aggregators (under mu), and the CA that signs their certificates (X509) */
  aggregator_entry aggs[FEDREC_MAX_AGGREGATORS];
  uint32_t naggs;
  void *agg_ca;
} server;

typedef struct call {
  server *s;
  int method; /* FEDREC_RPC_*, or -1: the catch-all for unknown methods */
  int stage;  /* 0: waiting for a call; 2: reading its message (authenticated); 1: reply sent */
  uint64_t client; /* the authenticated client id (stage 2) */
  int counted;     /* counted in the client's calls in flight */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array md;
  grpc_byte_buffer *req, *resp;
  grpc_call_details details;
  int cancelled;
} call;


/* admin.c */
void state_path(char *out, size_t cap, const config *c, const char *name);
/* A 32-byte value written as hex (a key file): 1 when read. */
int read_hex32(const char *path, uint8_t out[32]);
int cmd_init(const config *c);
int cmd_status(const config *c);
int cmd_export(const config *c, uint64_t v, const char *out);
int cmd_token(const config *c, uint64_t id, uint64_t days);
int cmd_revoke(const config *c, uint64_t id);
int cmd_authority_init(const char *out);
#ifdef FEDREC_MALICIOUS
/* tests/malicious_coordinator.c: the coordinator as an attacker who runs it would build it */
void malicious_round_info(fedrec_round_info *info, const fedrec_identity *own);
void malicious_phase_input(fedrec_engine *e, uint64_t client, uint64_t round, fedrec_phase phase, uint8_t **out, size_t *len);
#endif
int cmd_enrol(const char *authority, uint64_t id, const char *device);

/* state.c: opens the ledger and the store in the state directory, checks the saved settings,
 * and starts the engine from the newest saved model (or a new one). */
fedrec_status start_engine(server *s, fedrec_error *err);

/* initial_model.c: the initial-model file matched to s->cat by item id (a new state's first
 * model; sets the dim setting to the file's d). Refused unless initial-model-privacy is public. */
fedrec_status initial_model_load(server *s, fedrec_model *out, fedrec_error *err);

/* updates.c: the catalogue to serve, from the setting's files and the newest saved version
 * (the first start saves version 1; changed files make the next one: s->cat). */
fedrec_status catalogue_load_served(server *s, fedrec_error *err);
/* The free-items file (s->free_ids; none when the setting is ""). */
fedrec_status free_list_load(server *s, fedrec_error *err);
/* The listed items of s->cat, for a first model (malloc'd; *n of them). */
fedrec_status free_initial(server *s, int32_t **items, int32_t *n, fedrec_error *err);
/* After a restart: the model follows s->cat when it changed, or when listed items have no
 * free embedding yet (published as the next version). */
fedrec_status catalogue_follow_now(server *s, int changed, fedrec_error *err);
/* SIGHUP: the catalogue and free-items files are read again (the main thread, outside the lock
 * while reading files); a change becomes pending (s->pending). The ticker applies it between
 * rounds (under s->mu): the model grown and published as the next version. */
void catalogue_reload(server *s);
void catalogue_apply_pending(server *s);

/* server.c */
/* 1 when the settings can work together (TLS given or insecure, cohort sizes in order, ...);
 * says what is wrong on stderr otherwise. serve checks them first; so does check-config. */
int check_settings(const config *c);
int serve(server *s);

/* handlers.c: the call's message is in and its token checked: runs the method's handler;
 * the response buffer in c->resp (on OK), or a status and details. */
grpc_status_code handle_call(server *s, call *c, char *details, size_t dcap);
/* The client id from "authorization: Bearer <token>": 1 when the token is genuine, unexpired
 * and not revoked; else 0 and why in details. */
int authenticate(server *s, call *c, uint64_t *client, char *details, size_t dcap);
/* Rereads the deny list (under s->mu, which guards the store). */
void reload_revoked(server *s);
/* The largest request method m can legitimately need. */
size_t method_cap(server *s, int m);

/* A call's request with the engine locked: a handler sets c->resp, or returns a status with
 * the reason in err. */
typedef struct request {
  server *s;
  call *c;
  ProtobufCMessage *rq; /* the unpacked request (NULL for the health check: unpacked there) */
  uint64_t client, now;
  fedrec_error err;
} request;

/* aggregators.c */
/* Parses the aggregators setting into out (at most FEDREC_MAX_AGGREGATORS): 1 when good, else
 * 0 with why. */
int aggregators_parse(const char *spec, aggregator_entry *out, uint32_t *n, char *why, size_t cap);
/* The aggregators' port (mutual TLS) and their CA; 0 (with a message on stderr) when it cannot
 * be set up; *port 0 when none are configured. */
int aggregators_listen(server *s, int *port);
/* The calling aggregator (1-based) from its verified client certificate: its issuer must be
 * aggregator-ca and its common name a configured one. 0 with why in details otherwise. */
int aggregator_authenticate(server *s, grpc_call *gc, uint32_t *agg, char *details, size_t cap);
/* Tells the engine which aggregators called within the last seconds (under mu). */
void aggregators_tick(server *s, uint64_t now);
fedrec_status handle_get_assignment(request *r);
fedrec_status handle_submit_aggregate(request *r);
void aggregators_free(server *s);

/* metrics.c: the Prometheus text (a metrics_render_fn; ctx is the server). */
size_t metrics_render(void *ctx, char *out, size_t cap);
/* status_page.c: the HTML status page served at "/" on the metrics port (ctx is the server). */
size_t status_page_render(void *ctx, char *out, size_t cap);

#endif
