/* The coordinator's settings: one table (name, type, bounds, help) that the config file, the
 * command line, --help and validation all read. Internal to coordinator/. */
#ifndef FEDREC_COORD_CONFIG_H
#define FEDREC_COORD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "fedrec/engine.h"

typedef struct config {
  char listen[128], state_dir[512], tls_cert[512], tls_key[512], tls_client_ca[512];
  char enrolment_authority[512];
  int secagg_active;
  char aggregators[2048], aggregator_listen[128], aggregator_ca[512];
  char metrics_listen[128], health_listen[128], catalogue[512], free_items[512], availability[512], blocked[512], initial_model[512], initial_model_privacy[16], noise[16], optimizer[16];
  int insecure, workers, dim, free_embeddings, keep_models, catalogue_precision;
  uint32_t max_message_mb, chunk_kb, memory_quota_mb, handshake_ms, idle_ms, max_streams;
  double budget, delta, public_budget;
  fedrec_engine_config e;
  unsigned char given[96]; /* given[i]: setting i was set (file or flag), not defaulted */
} config;

void config_defaults(config *c);
/* 1: the parsers print nothing (for the fuzz target). */
extern int config_quiet;
/* Sets one key; where names the source (a file and line, or the command line). 1 when set;
 * 0 after printing what was wrong to stderr. */
int config_set(config *c, const char *key, const char *val, const char *where);
/* "key = value" lines ('#' starts a comment) from text of len bytes, named name in messages
 * ("name:line: ..."); stops at the first bad line. 1 when every line was good. */
int config_parse_text(config *c, const char *text, size_t len, const char *name);
/* The same from a file (at most 1 MiB). */
int config_file(config *c, const char *path);
/* 1 when key was set by a file or flag (not left at its default). */
int config_given(const config *c, const char *key);
/* One line per setting: name and help. */
void config_usage(FILE *f);

#endif
