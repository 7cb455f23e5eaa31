/* Server optimizers (see fedrec/optimizer.h). */
#include <math.h>
#include <string.h>

#include "fedrec/optimizer.h"

typedef void (*step_fn)(const fedrec_optimizer_params *p, double t, float *x, float *m1, float *m2, const float *g,
                        int64_t n);

static void fedavg_step(const fedrec_optimizer_params *p, double t, float *x, float *m1, float *m2, const float *g,
                        int64_t n) {
  (void)t, (void)m2;
  for (int64_t i = 0; i < n; i++) {
    m1[i] = (float)(p->momentum * m1[i] + (double)g[i]);
    x[i] -= (float)(p->lr * m1[i]);
  }
}

static void fedadam_step(const fedrec_optimizer_params *p, double t, float *x, float *m1, float *m2, const float *g,
                         int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    double gi = g[i];
    m1[i] = (float)(p->beta1 * m1[i] + (1 - p->beta1) * gi);
    m2[i] = (float)(p->beta2 * m2[i] + (1 - p->beta2) * gi * gi);
    double mh = m1[i] / (1 - pow(p->beta1, t)), vh = m2[i] / (1 - pow(p->beta2, t));
    x[i] -= (float)(p->lr * mh / (sqrt(vh) + p->eps));
  }
}

static const struct {
  const char *name;
  step_fn step;
} OPTIMIZERS[] = {
#define FEDREC_OPTIMIZER_ROW(NAME, name, help) [FEDREC_OPT_##NAME] = {#name, name##_step},
    FEDREC_OPTIMIZER_MAP(FEDREC_OPTIMIZER_ROW)
#undef FEDREC_OPTIMIZER_ROW
};
_Static_assert(sizeof OPTIMIZERS / sizeof *OPTIMIZERS == FEDREC_OPTIMIZERS, "one row per optimizer");

const char *fedrec_optimizer_name(int o) {
  return o >= 0 && o < FEDREC_OPTIMIZERS ? OPTIMIZERS[o].name : "unknown";
}

fedrec_status fedrec_optimizer_parse(const char *name, int *out) {
  for (int o = 0; name && o < FEDREC_OPTIMIZERS; o++)
    if (!strcmp(name, OPTIMIZERS[o].name)) {
      *out = o;
      return FEDREC_OK;
    }
  return FEDREC_ERR_ARG;
}

const char *fedrec_optimizer_names(void) { return FEDREC_OPTIMIZER_NAMES; }

void fedrec_optimizer_step(int o, const fedrec_optimizer_params *p, uint64_t t, float *x, float *m1, float *m2,
                           const float *g, int64_t n) {
  if (o < 0 || o >= FEDREC_OPTIMIZERS) return;
  OPTIMIZERS[o].step(p, (double)t, x, m1, m2, g, n);
}
