/* DP mechanisms (see fedrec/mechanism.h): names, parameter checks, RDP of a release. */
#include <math.h>
#include <string.h>

#include "fedrec/mechanism.h"

static const char *const NAMES[] = {
#define FEDREC_MECHANISM_ROW(NAME, name) [FEDREC_MECH_##NAME] = name,
    FEDREC_MECHANISM_MAP(FEDREC_MECHANISM_ROW)
#undef FEDREC_MECHANISM_ROW
};
_Static_assert(sizeof NAMES / sizeof *NAMES == FEDREC_MECHANISMS, "one name per mechanism");

const char *fedrec_mechanism_name(int m) {
  return m >= 0 && m < FEDREC_MECHANISMS ? NAMES[m] : "unknown";
}

fedrec_status fedrec_mechanism_parse(const char *name, fedrec_mechanism *out) {
  for (int m = 0; name && m < FEDREC_MECHANISMS; m++)
    if (!strcmp(name, NAMES[m])) {
      *out = (fedrec_mechanism)m;
      return FEDREC_OK;
    }
  return FEDREC_ERR_ARG;
}

const char *fedrec_mechanism_names(void) {
  static const char names[] =
#define FEDREC_MECHANISM_TEXT(NAME, name) ", " name
      FEDREC_MECHANISM_MAP(FEDREC_MECHANISM_TEXT)
#undef FEDREC_MECHANISM_TEXT
      ;
  return names + 2;
}

fedrec_status fedrec_release_check(const fedrec_release *x, fedrec_error *err) {
  fedrec_mechanism m = x->mechanism;
  const char *name = fedrec_mechanism_name(m);
  if (m < 0 || m >= FEDREC_MECHANISMS) return fedrec_error_set(err, FEDREC_ERR_ARG, "unknown mechanism %d", (int)m);
  if (!(x->q > 0 && x->q <= 1)) return fedrec_error_set(err, FEDREC_ERR_ARG, "sampling rate %g not in (0, 1]", x->q);
  if ((m == FEDREC_MECH_GAUSSIAN || m == FEDREC_MECH_TREE) && !(x->z > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "noise multiplier %g not > 0", x->z);
  if ((m == FEDREC_MECH_SKELLAM || m == FEDREC_MECH_DGAUSS) && !(x->d2 > 0 && x->d1 > 0))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "%s needs sensitivities d2, d1 > 0", name);
  if (m == FEDREC_MECH_SKELLAM && !(x->var > 0)) return fedrec_error_set(err, FEDREC_ERR_ARG, "skellam needs var > 0");
  if (m == FEDREC_MECH_DGAUSS && !(x->sigma > 0 && x->dim > 0 && x->survivors > x->colluders))
    return fedrec_error_set(err, FEDREC_ERR_ARG, "dgauss needs sigma > 0, dim >= 1, survivors > colluders");
  if (x->colluders > x->survivors)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "%u colluders among %u survivors", x->colluders, x->survivors);
  if (m == FEDREC_MECH_TREE && x->q != 1)
    return fedrec_error_set(err, FEDREC_ERR_ARG, "tree aggregation assumes no sampling (q = 1), got q = %g", x->q);
  return FEDREC_OK;
}

double fedrec_release_rdp(const fedrec_release *x, double a, double count) {
  double v;
  switch (x->mechanism) {
  case FEDREC_MECH_GAUSSIAN: v = fedrec_rdp_subsampled_gaussian(x->q, x->z, a); break;
  case FEDREC_MECH_TREE: return x->z > 0 ? a * count / (2 * x->z * x->z) : INFINITY;
  case FEDREC_MECH_SKELLAM: v = fedrec_rdp_skellam_subsampled(x->q, a, x->d2, x->d1, x->var); break;
  case FEDREC_MECH_DGAUSS:
    v = fedrec_rdp_ddgauss_subsampled(x->q, a, x->d2, x->d1, x->sigma, x->survivors - x->colluders, x->dim);
    break;
  default: return INFINITY;
  }
  return isnan(v) ? INFINITY : count * v; /* no bound (e.g. fractional orders when subsampled) */
}

double fedrec_release_epsilon(const fedrec_release *x, double count, double delta, const fedrec_orders *o,
                              double *best_order) {
  double r[FEDREC_MAX_ORDERS];
  for (size_t k = 0; k < o->n; k++) r[k] = fedrec_release_rdp(x, o->a[k], count);
  return fedrec_rdp_to_epsilon(r, o, delta, best_order);
}
