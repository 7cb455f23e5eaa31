/* The status page on the metrics port ("/"): the current round and phase, the last round's
 * survivors, the published model, and the epsilon burn-down as an inline SVG chart, with the
 * last rounds below. One HTML document, no script, no external resource. Rendered at most once
 * a second (the rounds table is read under the engine's mutex); later requests get the copy. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "server.h"

enum { POINTS = 400, RECENT = 10, PAGE_CAP = 96 * 1024 };

typedef struct snapshot {
  uint64_t round, version, rounds_published, rounds_aborted, last_cohort, last_survivors;
  const char *phase;
  char hash[17];
  double epsilon, epsilon_public, budget, delta;
  uint32_t min_survivors;
  size_t npoints, nrecent;
  uint64_t at[POINTS];
  double eps[POINTS];
  coord_round_row recent[RECENT];
} snapshot;

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static char cache[PAGE_CAP];
static size_t cache_len;
static time_t cache_at;

static void take(server *s, snapshot *o) {
  pthread_mutex_lock(&s->mu);
  o->round = fedrec_engine_round(s->engine);
  o->phase = fedrec_phase_name(fedrec_engine_phase(s->engine));
  fedrec_published p;
  fedrec_engine_model(s->engine, &p);
  o->version = p.version;
  sodium_bin2hex(o->hash, sizeof o->hash, p.hash, 8);
  o->rounds_published = s->m.rounds_published, o->rounds_aborted = s->m.rounds_aborted;
  o->last_cohort = s->m.last_cohort, o->last_survivors = s->m.last_survivors;
  o->epsilon = s->m.epsilon, o->epsilon_public = s->m.epsilon_public;
  o->budget = s->cfg.budget, o->delta = s->cfg.delta, o->min_survivors = s->cfg.e.min_survivors;
  o->npoints = coord_store_epsilon_history(s->store, o->at, o->eps, POINTS);
  o->nrecent = coord_store_recent_rounds(s->store, o->recent, RECENT);
  pthread_mutex_unlock(&s->mu);
}

#define PUT(...) n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, __VA_ARGS__)

/* Text for HTML: & < > " escaped, control characters dropped. */
static size_t put_text(char *out, size_t n, size_t cap, const char *t) {
  for (; *t; t++) {
    unsigned char ch = (unsigned char)*t;
    if (ch == '&') PUT("&amp;");
    else if (ch == '<') PUT("&lt;");
    else if (ch == '>') PUT("&gt;");
    else if (ch == '"') PUT("&quot;");
    else if (ch >= 0x20) PUT("%c", ch);
  }
  return n;
}

/* The burn-down: cumulative epsilon against the round, the budget as a line. */
static size_t put_chart(char *out, size_t n, size_t cap, const snapshot *o) {
  const double W = 640, H = 260, L = 56, R = 16, T = 16, B = 40;
  double top = o->budget > 0 ? o->budget : 1;
  for (size_t i = 0; i < o->npoints; i++) top = fmax(top, o->eps[i]);
  uint64_t x0 = o->npoints ? o->at[0] : 0, x1 = o->npoints ? o->at[o->npoints - 1] : 1;
  if (x1 <= x0) x1 = x0 + 1;
#define XP(r) (L + (double)((r) - x0) / (double)(x1 - x0) * (W - L - R))
#define YP(v) (T + (1 - (v) / top) * (H - T - B))
  PUT("<svg id=\"burndown\" xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" role=\"img\" "
      "aria-label=\"epsilon spent against the round\">\n", W, H, W, H);
  PUT("<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"#fafafa\" stroke=\"#ccc\"/>\n", L, T, W - L - R, H - T - B);
  for (int k = 0; k <= 4; k++) {
    double v = top * k / 4;
    PUT("<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n", L - 6, YP(v) + 4, v);
  }
  PUT("<line id=\"budget\" x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" stroke-dasharray=\"6 4\"/>\n", L, W - R,
      YP(o->budget), YP(o->budget));
  PUT("<text x=\"%.0f\" y=\"%.1f\" font-size=\"11\" fill=\"#c0392b\" text-anchor=\"end\">budget %.3g</text>\n", W - R - 4, YP(o->budget) - 4,
      o->budget);
  PUT("<polyline id=\"spent\" fill=\"none\" stroke=\"#1f5fa8\" stroke-width=\"2\" points=\"");
  for (size_t i = 0; i < o->npoints; i++) PUT("%s%.1f,%.1f", i ? " " : "", XP(o->at[i]), YP(o->eps[i]));
  PUT("\"/>\n<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\">round %llu</text>\n", L, H - 12, (unsigned long long)x0);
  PUT("<text x=\"%.0f\" y=\"%.0f\" font-size=\"11\" text-anchor=\"end\">round %llu</text>\n", W - R, H - 12, (unsigned long long)x1);
  if (!o->npoints) PUT("<text x=\"%.0f\" y=\"%.0f\" font-size=\"13\" text-anchor=\"middle\">no round published yet</text>\n", W / 2, H / 2);
  PUT("</svg>\n");
#undef XP
#undef YP
  return n;
}

static size_t render(const snapshot *o, char *out, size_t cap) {
  size_t n = 0;
  PUT("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"15\">"
      "<title>fedrec-coordinator</title>\n<style>body{font-family:sans-serif;margin:24px;color:#222}"
      "dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px}dt{color:#666}dd{margin:0}"
      "table{border-collapse:collapse}td,th{padding:2px 10px;border-bottom:1px solid #ddd;text-align:right}"
      ".aborted{color:#c0392b}</style></head><body>\n<h1>fedrec-coordinator</h1>\n<dl>\n");
  PUT("<dt>round</dt><dd id=\"round\">%llu</dd>\n<dt>phase</dt><dd id=\"phase\">%s</dd>\n", (unsigned long long)o->round, o->phase);
  PUT("<dt>rounds published / aborted</dt><dd id=\"rounds\">%llu / %llu</dd>\n", (unsigned long long)o->rounds_published,
      (unsigned long long)o->rounds_aborted);
  PUT("<dt>last round: survivors of cohort</dt><dd id=\"survivors\">%llu of %llu (min-survivors %u)</dd>\n",
      (unsigned long long)o->last_survivors, (unsigned long long)o->last_cohort, o->min_survivors);
  PUT("<dt>published model</dt><dd id=\"model\">version %llu, BLAKE2b %s&hellip;</dd>\n", (unsigned long long)o->version, o->hash);
  PUT("<dt>epsilon spent</dt><dd id=\"epsilon\">%.4f of %.4g (delta %.3g); against model recipients %.4f</dd>\n</dl>\n",
      o->epsilon, o->budget, o->delta, o->epsilon_public);
  PUT("<h2>Epsilon burn-down</h2>\n");
  n = put_chart(out, n, cap, o);
  PUT("<h2>Last rounds</h2>\n<table id=\"recent\"><tr><th>round</th><th>cohort</th><th>survivors</th><th>epsilon</th><th>ended (UTC)</th>"
      "<th>outcome</th></tr>\n");
  for (size_t i = 0; i < o->nrecent; i++) {
    const coord_round_row *r = &o->recent[i];
    char when[32] = "";
    time_t t = (time_t)r->ended;
    struct tm tm;
    if (gmtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    PUT("<tr%s><td>%llu</td><td>%llu</td><td>%llu</td><td>%.4f</td><td>%s</td><td>", r->aborted ? " class=\"aborted\"" : "",
        (unsigned long long)r->round, (unsigned long long)r->cohort, (unsigned long long)r->survivors, r->epsilon, when);
    if (r->aborted) n = put_text(out, n, cap, r->reason[0] ? r->reason : "aborted");
    else PUT("published");
    PUT("</td></tr>\n");
  }
  PUT("</table>\n<p>Prometheus metrics: <a href=\"/metrics\">/metrics</a>. Reloads every 15 s.</p>\n</body></html>\n");
  return n;
}
#undef PUT

size_t status_page_render(void *ctx, char *out, size_t cap) {
  static snapshot o; /* large; renders are serialised by cache_mu */
  pthread_mutex_lock(&cache_mu);
  time_t now = time(NULL);
  if (!cache_len || now != cache_at) {
    take(ctx, &o);
    size_t n = render(&o, cache, sizeof cache);
    cache_len = n < sizeof cache ? n : sizeof cache - 1;
    cache_at = now;
  }
  size_t n = cache_len < cap ? cache_len : cap;
  memcpy(out, cache, n);
  pthread_mutex_unlock(&cache_mu);
  return n;
}
