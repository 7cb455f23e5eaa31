/* fedrec-audit report: the privacy report an auditor reads (see audit_report.h). Everything
 * in it comes from the ledger as fedrec_ledger_verify_rows recomputes it; nothing is taken on
 * the coordinator's word but the parameters each signed entry records. */
#include "audit_report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "fedrec/internal/tool.h"
#include "fedrec/ledger.h"

typedef struct row {
  uint64_t entry, round, dim, leaf;
  fedrec_mechanism mechanism;
  double q, z, d2, d1, var, sigma, eps, eps_pub;
  uint32_t survivors, colluders;
} row;

typedef struct rows {
  row *r;
  size_t n, cap;
  int nomem;
} rows;

static void keep(void *ctx, const fedrec_ledger_row *x) {
  rows *rs = ctx;
  if (rs->n == rs->cap) {
    size_t cap = rs->cap ? 2 * rs->cap : 64;
    row *r = realloc(rs->r, cap * sizeof *r);
    if (!r) {
      rs->nomem = 1;
      return;
    }
    rs->r = r, rs->cap = cap;
  }
  const fedrec_release *p = x->release;
  rs->r[rs->n++] = (row){x->entry, p->round, p->dim, p->leaf, p->mechanism, p->q, p->z, p->d2, p->d1, p->var, p->sigma,
                         x->epsilon, x->epsilon_public, p->survivors, p->colluders};
}

/* Text for HTML (element content and quoted attributes). */
static void html(FILE *f, const char *s) {
  for (; *s; s++) {
    if (*s == '<') fputs("&lt;", f);
    else if (*s == '>') fputs("&gt;", f);
    else if (*s == '&') fputs("&amp;", f);
    else if (*s == '"') fputs("&quot;", f);
    else fputc(*s, f);
  }
}

/* What the ledger says about its releases as a whole. */
typedef struct overview {
  size_t per_mech[FEDREC_MECHANISMS];
  uint32_t surv_min, surv_max, coll_min, coll_max;
  double surv_mean, q_min, eps_max;
  size_t trees, sampled;
} overview;

static overview overview_of(const rows *rs, const fedrec_ledger_summary *s) {
  overview o = {.surv_min = UINT32_MAX, .coll_min = UINT32_MAX, .q_min = 1};
  size_t released = 0;
  for (size_t i = 0; i < rs->n; i++) {
    const row *r = &rs->r[i];
    o.per_mech[r->mechanism]++;
    if (r->eps > o.eps_max) o.eps_max = r->eps;
    if (r->mechanism == FEDREC_MECH_TREE) {
      o.trees++;
      continue;
    }
    released++;
    o.surv_mean += r->survivors;
    if (r->survivors < o.surv_min) o.surv_min = r->survivors;
    if (r->survivors > o.surv_max) o.surv_max = r->survivors;
    if (r->colluders < o.coll_min) o.coll_min = r->colluders;
    if (r->colluders > o.coll_max) o.coll_max = r->colluders;
    if (r->q < o.q_min) o.q_min = r->q;
    o.sampled += r->q < 1;
  }
  if (released) o.surv_mean /= (double)released;
  else o.surv_min = o.coll_min = 0;
  if (s->budget > o.eps_max) o.eps_max = s->budget;
  return o;
}

/* ---------------------------------------------------------------- the figure (SVG) */

enum { W = 760, H = 380, L = 64, R = 170, T = 24, B = 48 };

static double xpos(size_t i, size_t n) { return L + (n > 1 ? (double)i / (double)(n - 1) : 0.5) * (W - L - R); }
static double ypos(double v, double top) { return T + (1 - v / top) * (H - T - B); }

static void series(FILE *f, const rows *rs, int pub, const char *colour, const char *dash, double top) {
  fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", colour, dash);
  for (size_t i = 0; i < rs->n; i++)
    fprintf(f, "%.1f,%.1f ", xpos(i, rs->n), ypos(pub ? rs->r[i].eps_pub : rs->r[i].eps, top));
  fputs("\"/>\n", f);
}

static void hline(FILE *f, double v, double top, const char *colour, const char *label) {
  double y = ypos(v, top);
  fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\" stroke-dasharray=\"6 4\"/>\n", L, y, W - R, y, colour);
  fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"12\" fill=\"%s\">%s %.3g</text>\n", W - R + 6, y + 4, colour, label, v);
}

/* Both epsilons after each entry, against the budgets. */
static void figure(FILE *f, const rows *rs, const fedrec_ledger_summary *s, const overview *o) {
  double top = o->eps_max > 0 ? o->eps_max * 1.08 : 1;
  fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
             "font-family=\"sans-serif\" role=\"img\" aria-label=\"epsilon after each ledger entry\">\n", W, H, W, H);
  fprintf(f, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, H - B, W - R, H - B);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, H - B);
  for (int k = 0; k <= 5; k++) { /* y ticks */
    double v = top * k / 5, y = ypos(v, top);
    fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", L, y, W - R, y);
    fprintf(f, "<text x=\"%d\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n", L - 6, y + 4, v);
  }
  size_t step = rs->n > 8 ? (rs->n + 7) / 8 : 1; /* x ticks: about 8 entries, and the last */
  for (size_t i = 0; i < rs->n; i += step) {
    size_t at = i + step < rs->n || i == rs->n - 1 ? i : rs->n - 1; /* the last tick on the last entry */
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" text-anchor=\"middle\">%llu</text>\n", xpos(at, rs->n), H - B + 16,
            (unsigned long long)rs->r[at].entry);
    if (at != i) break;
  }
  fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" text-anchor=\"middle\">ledger entry</text>\n", (L + W - R) / 2, H - 10);
  fprintf(f, "<text x=\"14\" y=\"%d\" font-size=\"12\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">epsilon "
             "(delta %.3g)</text>\n", (T + H - B) / 2, (T + H - B) / 2, s->delta);
  hline(f, s->budget, top, "#b00", "budget");
  if (s->public_budget > 0 && s->public_budget < s->budget) hline(f, s->public_budget, top, "#06a", "public budget");
  if (rs->n) {
    series(f, rs, 0, "#b00", "", top);
    series(f, rs, 1, "#06a", " stroke-dasharray=\"3 3\"", top);
  }
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#b00\" stroke-width=\"2\"/>\n", W - R + 6, H - B - 34, W - R + 26, H - B - 34);
  fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#b00\">operator</text>\n", W - R + 30, H - B - 30);
  fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#06a\" stroke-width=\"2\" stroke-dasharray=\"3 3\"/>\n",
          W - R + 6, H - B - 14, W - R + 26, H - B - 14);
  fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#06a\">model recipients</text>\n", W - R + 30, H - B - 10);
  fputs("</svg>\n", f);
}

/* ---------------------------------------------------------------- assumptions */

/* The assumptions under which the numbers hold, each with what enforces it (one per line,
 * "who: text"); from what the ledger's entries say. */
static void assumptions(const fedrec_ledger_summary *s, const overview *o, void (*put)(void *, const char *, const char *),
                        void *ctx) {
  char b[600];
  snprintf(b, sizeof b, "each person's data is on one device; neighbouring data sets differ in one device's whole history "
           "(add/remove, or zero-out for fixed cohorts: docs/PRIVACY.md), at delta %.3g", s->delta);
  put(ctx, "both epsilons", b);
  if (o->sampled)
    put(ctx, "epsilon against the operator", "Poisson sampling: every device's selection decided by its own coin, "
        "independent of everything else (the engine's keyed coin per device and round); amplification by sampling "
        "depends on it");
  else put(ctx, "epsilon against the operator", "no sampling assumed: every release composed as if every device took part");
  if (s->max_participation) {
    snprintf(b, sizeof b, "each device takes part in at most %u releases (max-participation, enforced by the coordinator "
             "by client id across restarts and by the device itself): only the %u costliest entries per order are composed",
             s->max_participation, s->max_participation);
    put(ctx, "epsilon against the operator", b);
  }
  snprintf(b, sizeof b, "each release's noise is that of at least its recorded survivors (%u to %u) minus the recorded "
           "colluders (%u to %u: the fraction of a cohort assumed to work with the operator, whose noise is not credited); "
           "nothing is unmasked with fewer inputs", o->surv_min, o->surv_max, o->coll_min, o->coll_max);
  put(ctx, "epsilon against the operator", b);
  put(ctx, "epsilon against the operator", "the operator sees only each round's sum: secure aggregation held against it "
      "(the active variant with an enrolment authority apart from the coordinator and colluders within the recorded "
      "fraction; or the passive variant with an operator who runs the code as shipped). The ledger does not record "
      "which variant ran: the coordinator's log does (secagg_variant); docs/SECURITY.md");
  put(ctx, "epsilon against the operator", "every device clips its whole update to the clip norm before noise, as the "
      "recorded sensitivities assume (the device library does; a device that does not can only spoil its own round)");
  if (o->trees)
    put(ctx, "epsilon against model recipients", "recipients see only the published models (post-processing of the noisy "
        "prefix sums of the tree entries); the tree's node noise drawn once per node by the coordinator from a CSPRNG, "
        "and each device in at most one leaf per tree");
  else put(ctx, "epsilon against model recipients", "no tree entries: equal to the epsilon against the operator (models "
           "are post-processing of the sums)");
  put(ctx, "the ledger", "it is complete: every model's signature names the ledger head it was sealed with, so a "
      "shortened copy is caught with fedrec-audit verify --covers N:HEX (from the model)");
}

/* ---------------------------------------------------------------- HTML and JSON */

static void put_li(void *ctx, const char *who, const char *text) {
  FILE *f = ctx;
  fputs("<li><b>", f);
  html(f, who);
  fputs(":</b> ", f);
  html(f, text);
  fputs("</li>\n", f);
}

static int first_json;
static void put_json(void *ctx, const char *who, const char *text) {
  FILE *f = ctx;
  fputs(first_json ? "\n    {\"for\": " : ",\n    {\"for\": ", f);
  first_json = 0;
  fedrec_json_string(f, who);
  fputs(", \"assumption\": ", f);
  fedrec_json_string(f, text);
  fputs("}", f);
}

static void head_hex(char out[65], const fedrec_ledger_summary *s) { sodium_bin2hex(out, 65, s->head, 32); }

static void html_summary(FILE *f, const report_in *in, const fedrec_ledger_summary *s, const overview *o, const char *failed) {
  char hx[65], bound[128], most[64];
  head_hex(hx, s);
  if (s->max_participation) {
    snprintf(bound, sizeof bound, "each device in at most %u releases: the %u costliest composed", s->max_participation,
             s->max_participation);
    snprintf(most, sizeof most, "%u", s->max_participation);
  } else {
    snprintf(bound, sizeof bound, "none (every release composed)");
    snprintf(most, sizeof most, "every one (no bound)");
  }
  fputs("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>fedrec privacy report</title>\n"
        "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}"
        ".ok{color:#060;font-weight:bold}.bad{color:#b00;font-weight:bold}code{font-size:90%}</style></head><body>\n"
        "<h1>Privacy report</h1>\n<p>Ledger <code>", f);
  html(f, in->ledger);
  fprintf(f, "</code>, coordinator key <code>%s</code>.</p>\n", in->pk_hex);
  if (failed) {
    fputs("<p id=\"verdict\" class=\"bad\">NOT VERIFIED: ", f);
    html(f, failed);
    fputs(". The numbers below are the entries verified before it; none of them can be relied on.</p>\n", f);
  } else
    fprintf(f, "<p id=\"verdict\" class=\"ok\">Verified: %llu entries; genesis, chain, signatures, the signed head and "
               "every epsilon recomputed from each entry's parameters.</p>\n", (unsigned long long)s->entries);
  fprintf(f, "<h2>Summary</h2>\n<table id=\"summary\">\n"
             "<tr><th>epsilon against the operator</th><td>%.6f</td><td>budget %g</td></tr>\n"
             "<tr><th>epsilon against model recipients</th><td>%.6f</td><td>public budget %g</td></tr>\n"
             "<tr><th>delta</th><td colspan=\"2\">%g</td></tr>\n"
             "<tr><th>participation bound</th><td colspan=\"2\">%s</td></tr>\n"
             "<tr><th>ledger format, head</th><td colspan=\"2\">%d, entry %llu, <code>%s</code></td></tr>\n</table>\n",
          s->epsilon, s->budget, s->epsilon_public, s->public_budget > 0 ? s->public_budget : s->budget, s->delta,
          bound, s->format, (unsigned long long)s->entries, hx);
  fprintf(f, "<h2>Epsilon over the releases</h2>\n<figure><img id=\"figure\" src=\"epsilon.svg\" width=\"%d\" height=\"%d\" "
             "alt=\"epsilon against the operator and against model recipients after each ledger entry, with the budgets\">"
             "<figcaption>Both epsilons after each entry (cumulative, as recomputed), against the budgets. Also in "
             "epsilon.svg.</figcaption></figure>\n", W, H);
  fputs("<h2>Mechanisms</h2>\n<table id=\"mechanisms\"><tr><th>mechanism</th><th>entries</th></tr>\n", f);
  for (int m = 0; m < FEDREC_MECHANISMS; m++)
    if (o->per_mech[m]) fprintf(f, "<tr><td>%s</td><td>%zu</td></tr>\n", fedrec_mechanism_name((fedrec_mechanism)m), o->per_mech[m]);
  fputs("</table>\n", f);
  fprintf(f, "<h2>Participation</h2>\n<table id=\"participation\">"
             "<tr><th>releases (rounds unmasked)</th><td>%zu</td></tr>"
             "<tr><th>survivors per release</th><td>min %u, mean %.1f, max %u</td></tr>"
             "<tr><th>colluders assumed per release</th><td>%u to %u</td></tr>"
             "<tr><th>sampled releases (q &lt; 1)</th><td>%zu (smallest q %g)</td></tr>"
             "<tr><th>tree entries (DP-FTRL)</th><td>%zu</td></tr>"
             "<tr><th>most releases one device may be in</th><td>%s</td></tr></table>\n",
          (size_t)s->entries - o->trees, o->surv_min, o->surv_mean, o->surv_max, o->coll_min, o->coll_max, o->sampled, o->q_min,
          o->trees, most);
}

static int write_html(const char *path, const report_in *in, const rows *rs, const fedrec_ledger_summary *s, const overview *o,
                      const char *failed) {
  FILE *f = fopen(path, "w");
  if (!f) return 0;
  html_summary(f, in, s, o, failed);
  fputs("<h2>Assumptions under which each number holds</h2>\n<ul id=\"assumptions\">\n", f);
  assumptions(s, o, put_li, f);
  fputs("</ul>\n<h2>Every release</h2>\n<p>Each row's epsilons are cumulative; the command recomputes that entry alone "
        "with fedrec-audit epsilon.</p>\n<table id=\"releases\"><tr><th>entry</th><th>round</th><th>mechanism</th><th>q</th>"
        "<th>survivors</th><th>colluders</th><th>epsilon</th><th>public</th></tr>\n", f);
  for (size_t i = 0; i < rs->n; i++) {
    const row *r = &rs->r[i];
    fprintf(f, "<tr><td>%llu</td><td>%llu</td><td>%s</td><td>%g</td><td>%u</td><td>%u</td><td>%.6f</td><td>%.6f</td></tr>\n",
            (unsigned long long)r->entry, (unsigned long long)r->round, fedrec_mechanism_name(r->mechanism), r->q, r->survivors,
            r->colluders, r->eps, r->eps_pub);
  }
  fputs("</table>\n</body></html>\n", f);
  return fclose(f) == 0;
}

static int write_json(const char *path, const report_in *in, const rows *rs, const fedrec_ledger_summary *s, const overview *o,
                      const char *failed) {
  FILE *f = fopen(path, "w");
  if (!f) return 0;
  char hx[65];
  head_hex(hx, s);
  fprintf(f, "{\"verified\": %s, \"reason\": ", failed ? "false" : "true");
  fedrec_json_string(f, failed ? failed : "");
  fputs(", \"ledger\": ", f);
  fedrec_json_string(f, in->ledger);
  fprintf(f, ", \"public_key\": \"%s\",\n \"entries\": %llu, \"format\": %d, \"head\": \"%s\", \"delta\": %.17g, "
             "\"budget\": %.17g, \"epsilon\": %.17g, \"public_budget\": %.17g, \"epsilon_public\": %.17g, "
             "\"max_participation\": %u,\n \"participation\": {\"releases\": %zu, \"survivors_min\": %u, \"survivors_mean\": %.17g, "
             "\"survivors_max\": %u, \"colluders_min\": %u, \"colluders_max\": %u, \"sampled_releases\": %zu, \"tree_entries\": %zu},\n"
             " \"mechanisms\": {",
          in->pk_hex, (unsigned long long)s->entries, s->format, hx, s->delta, s->budget, s->epsilon,
          s->public_budget > 0 ? s->public_budget : s->budget, s->epsilon_public, s->max_participation, (size_t)s->entries - o->trees,
          o->surv_min, o->surv_mean, o->surv_max, o->coll_min, o->coll_max, o->sampled, o->trees);
  int first = 1;
  for (int m = 0; m < FEDREC_MECHANISMS; m++)
    if (o->per_mech[m]) fprintf(f, "%s\"%s\": %zu", first ? "" : ", ", fedrec_mechanism_name((fedrec_mechanism)m), o->per_mech[m]), first = 0;
  fputs("},\n \"assumptions\": [", f);
  first_json = 1;
  assumptions(s, o, put_json, f);
  fputs("],\n \"releases\": [", f);
  for (size_t i = 0; i < rs->n; i++) {
    const row *r = &rs->r[i];
    fprintf(f, "%s\n  {\"entry\": %llu, \"round\": %llu, \"mechanism\": \"%s\", \"sampling_rate\": %.17g, \"noise_multiplier\": %.17g, "
               "\"l2_sensitivity\": %.17g, \"l1_sensitivity\": %.17g, \"variance\": %.17g, \"local_sigma\": %.17g, \"dim\": %llu, "
               "\"leaf\": %llu, \"survivors\": %u, \"colluders\": %u, \"epsilon\": %.17g, \"epsilon_public\": %.17g}",
            i ? "," : "", (unsigned long long)r->entry, (unsigned long long)r->round, fedrec_mechanism_name(r->mechanism), r->q, r->z,
            r->d2, r->d1, r->var, r->sigma, (unsigned long long)r->dim, (unsigned long long)r->leaf, r->survivors, r->colluders,
            r->eps, r->eps_pub);
  }
  fputs("\n ]}\n", f);
  return fclose(f) == 0;
}

int fedrec_audit_report(const report_in *in) {
  if (mkdir(in->out, 0755) && errno != EEXIST) {
    fprintf(stderr, "fedrec-audit report: --out %s: %s\n", in->out, strerror(errno));
    return 1;
  }
  rows rs = {0};
  fedrec_ledger_summary s = {0};
  fedrec_error err = {0};
  fedrec_status st = fedrec_ledger_verify_rows(in->ledger, in->pk, &s, keep, &rs, &err);
  if (rs.nomem) st = fedrec_error_set(&err, FEDREC_ERR_NOMEM, "report: no memory for %zu entries", rs.n);
  if (st) { /* what was verified before the failure, for the page; the verdict says it failed */
    s.entries = rs.n;
    if (rs.n) s.epsilon = rs.r[rs.n - 1].eps, s.epsilon_public = rs.r[rs.n - 1].eps_pub;
  }
  overview o = overview_of(&rs, &s);
  char p[1200];
  int ok = 1;
  snprintf(p, sizeof p, "%s/epsilon.svg", in->out);
  FILE *f = fopen(p, "w");
  if (f) figure(f, &rs, &s, &o);
  ok = f && fclose(f) == 0;
  snprintf(p, sizeof p, "%s/index.html", in->out);
  ok = ok && write_html(p, in, &rs, &s, &o, st ? err.msg : NULL);
  snprintf(p, sizeof p, "%s/report.json", in->out);
  ok = ok && write_json(p, in, &rs, &s, &o, st ? err.msg : NULL);
  free(rs.r);
  if (!ok) {
    fprintf(stderr, "fedrec-audit report: cannot write %s: %s\n", p, strerror(errno));
    return 1;
  }
  if (st) {
    fprintf(stderr, "fedrec-audit report: %s: NOT VERIFIED: %s (the report says so: %s/index.html)\n", in->ledger, err.msg, in->out);
    return 1;
  }
  printf("report: %s/index.html (figure epsilon.svg, summary report.json): %llu entries verified, epsilon %.6f against the "
         "operator, %.6f against model recipients\n", in->out, (unsigned long long)s.entries, s.epsilon, s.epsilon_public);
  return 0;
}
