/* The coordinator's Prometheus text: rounds, phases, check-ins, dropouts, bytes, epsilon spent
 * and left, failed calls by status. Served by metrics_http.c on --metrics-listen. */
#include <stdio.h>

#include "server.h"

size_t metrics_render(void *ctx, char *out, size_t cap) {
  server *s = ctx;
  size_t n = 0;
#define PUT(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)
  pthread_mutex_lock(&s->mu);
  metrics m = s->m;
  uint64_t round = fedrec_engine_round(s->engine);
  fedrec_phase ph = fedrec_engine_phase(s->engine);
  fedrec_published p;
  fedrec_engine_model(s->engine, &p);
  pthread_mutex_unlock(&s->mu);
  PUT("# HELP fedrec_rounds_total Rounds by outcome.\n# TYPE fedrec_rounds_total counter\n");
  PUT("fedrec_rounds_total{outcome=\"published\"} %llu\n", (unsigned long long)m.rounds_published);
  PUT("fedrec_rounds_total{outcome=\"aborted\"} %llu\n", (unsigned long long)m.rounds_aborted);
  PUT("# HELP fedrec_round Current round number.\n# TYPE fedrec_round gauge\nfedrec_round %llu\n", (unsigned long long)round);
  PUT("# HELP fedrec_phase Current phase (1 for the active one).\n# TYPE fedrec_phase gauge\n");
  for (int i = 0; i < FEDREC_PHASES; i++) PUT("fedrec_phase{phase=\"%s\"} %d\n", fedrec_phase_name((fedrec_phase)i), (int)ph == i);
  PUT("# HELP fedrec_model_version Published model version.\n# TYPE fedrec_model_version gauge\nfedrec_model_version %llu\n",
      (unsigned long long)p.version);
  PUT("# HELP fedrec_checkins_total Check-ins.\n# TYPE fedrec_checkins_total counter\nfedrec_checkins_total %llu\n",
      (unsigned long long)m.checkins);
  PUT("# HELP fedrec_checkins_accepted_total Check-ins taken into a cohort.\n# TYPE fedrec_checkins_accepted_total counter\n"
      "fedrec_checkins_accepted_total %llu\n", (unsigned long long)m.accepted);
  PUT("# HELP fedrec_round_participants Cohort of the last round.\n# TYPE fedrec_round_participants gauge\n"
      "fedrec_round_participants %llu\n", (unsigned long long)m.last_cohort);
  PUT("# HELP fedrec_round_survivors Survivors of the last round.\n# TYPE fedrec_round_survivors gauge\n"
      "fedrec_round_survivors %llu\n", (unsigned long long)m.last_survivors);
  PUT("# HELP fedrec_dropouts_total Clients dropped at each phase's deadline.\n# TYPE fedrec_dropouts_total counter\n");
  for (int i = 1; i <= 4; i++) PUT("fedrec_dropouts_total{phase=\"%s\"} %llu\n", fedrec_phase_name((fedrec_phase)i), (unsigned long long)m.dropouts[i]);
  PUT("# HELP fedrec_phase_duration_ms Duration of each phase in the last round.\n# TYPE fedrec_phase_duration_ms gauge\n");
  for (int i = 1; i <= 4; i++) PUT("fedrec_phase_duration_ms{phase=\"%s\"} %llu\n", fedrec_phase_name((fedrec_phase)i), (unsigned long long)m.last_phase_ms[i]);
  PUT("# HELP fedrec_bytes_total Request and response payload bytes.\n# TYPE fedrec_bytes_total counter\n");
  PUT("fedrec_bytes_total{direction=\"in\"} %llu\nfedrec_bytes_total{direction=\"out\"} %llu\n", (unsigned long long)m.bytes_in,
      (unsigned long long)m.bytes_out);
  PUT("# HELP fedrec_epsilon_spent Cumulative epsilon at the ledger's delta.\n# TYPE fedrec_epsilon_spent gauge\n"
      "fedrec_epsilon_spent %.6f\n", m.epsilon);
  PUT("# HELP fedrec_epsilon_remaining Budget left.\n# TYPE fedrec_epsilon_remaining gauge\nfedrec_epsilon_remaining %.6f\n",
      s->cfg.budget - m.epsilon);
  PUT("# HELP fedrec_epsilon_public Cumulative epsilon against model recipients (DP-FTRL: below fedrec_epsilon_spent).\n"
      "# TYPE fedrec_epsilon_public gauge\nfedrec_epsilon_public %.6f\n", m.epsilon_public);
  PUT("# HELP fedrec_rpc_errors_total Failed calls by gRPC status code.\n# TYPE fedrec_rpc_errors_total counter\n");
  for (int i = 1; i < 17; i++)
    if (m.rpc_errors[i]) PUT("fedrec_rpc_errors_total{code=\"%d\"} %llu\n", i, (unsigned long long)m.rpc_errors[i]);
  PUT("# HELP fedrec_min_survivors The configured min-survivors: fewer abort a round; the noise is planned for them.\n"
      "# TYPE fedrec_min_survivors gauge\nfedrec_min_survivors %u\n", s->cfg.e.min_survivors);
  PUT("# HELP fedrec_planned_dropout The configured dropout the secure aggregation is sized for.\n"
      "# TYPE fedrec_planned_dropout gauge\nfedrec_planned_dropout %g\n", s->cfg.e.dropout);
  PUT("# HELP fedrec_epsilon_budget The configured epsilon budget.\n# TYPE fedrec_epsilon_budget gauge\nfedrec_epsilon_budget %g\n",
      s->cfg.budget);
  PUT("# HELP fedrec_listen_unaccepted Connections the kernel completed that nobody accepted (the watchdog's last look).\n"
      "# TYPE fedrec_listen_unaccepted gauge\nfedrec_listen_unaccepted %llu\n", (unsigned long long)atomic_load(&s->listen_unaccepted));
  PUT("# HELP fedrec_start_time_seconds When this process started serving (Unix seconds).\n"
      "# TYPE fedrec_start_time_seconds gauge\nfedrec_start_time_seconds %.0f\n", m.start_time);
  PUT("# HELP fedrec_last_round_timestamp_seconds When the last round was published (Unix seconds; the start until one is).\n"
      "# TYPE fedrec_last_round_timestamp_seconds gauge\nfedrec_last_round_timestamp_seconds %.0f\n", m.last_round_time);
#undef PUT
  return n < cap ? n : cap - 1;
}
