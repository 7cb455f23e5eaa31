/* Server optimizers: how the coordinator moves the model by a round's averaged update. One
 * list from which the enum, the names and the step table are made; adding one is a row here,
 * a step function in core/optimizer.c, a test in tests/test_model.c and a line in
 * docs/CONTRIBUTING.md's table. */
#ifndef FEDREC_OPTIMIZER_H
#define FEDREC_OPTIMIZER_H

#include <stdint.h>

#include "fedrec/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, name, what it does) */
#define FEDREC_OPTIMIZER_MAP(X)                                                                  \
  X(FEDAVG, fedavg, "server SGD with momentum on the average: m = momentum m + g, x -= lr m")  \
  X(FEDADAM, fedadam, "Adam on the average (Reddi et al. 2021): bias-corrected moments, x -= lr m/(sqrt(v) + eps)")

typedef enum fedrec_optimizer {
#define FEDREC_OPTIMIZER_ENUM(NAME, name, help) FEDREC_OPT_##NAME,
  FEDREC_OPTIMIZER_MAP(FEDREC_OPTIMIZER_ENUM)
#undef FEDREC_OPTIMIZER_ENUM
  FEDREC_OPTIMIZERS
} fedrec_optimizer;

/* "fedavg", ...; "unknown" out of range. */
const char *fedrec_optimizer_name(int o);
/* The optimizer called name: FEDREC_OK, or FEDREC_ERR_ARG when there is none. */
fedrec_status fedrec_optimizer_parse(const char *name, int *out);
/* "fedavg, fedadam": for messages and --help (FEDREC_OPTIMIZER_NAMES: the same, a constant). */
const char *fedrec_optimizer_names(void);
#define FEDREC_OPTIMIZER_NAME_TEXT(NAME, name, help) ", " #name
#define FEDREC_OPTIMIZER_NAMES (&(FEDREC_OPTIMIZER_MAP(FEDREC_OPTIMIZER_NAME_TEXT))[2])

typedef struct fedrec_optimizer_params {
  double lr;                 /* server learning rate */
  double momentum;           /* fedavg */
  double beta1, beta2, eps;  /* fedadam */
} fedrec_optimizer_params;

/* One server step t (1 for the first) over n parameters: x moves against the averaged update
 * g; m1 and m2 hold the optimizer's state (zero at the start; saved with the model so that a
 * restart continues where it was). */
void fedrec_optimizer_step(int o, const fedrec_optimizer_params *p, uint64_t t, float *x, float *m1, float *m2,
                           const float *g, int64_t n);

#ifdef __cplusplus
}
#endif
#endif
