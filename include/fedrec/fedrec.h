/* fedrec core: everything a program needs to load data, train and evaluate. */
#ifndef FEDREC_FEDREC_H
#define FEDREC_FEDREC_H

#include "fedrec/content.h"
#include "fedrec/data.h"
#include "fedrec/eval.h"
#include "fedrec/model.h"
#include "fedrec/rng.h"
#include "fedrec/status.h"
#include "fedrec/synth.h"
#include "fedrec/train.h"

#define FEDREC_VERSION "0.1.0"

/* OpenBLAS's own thread count. A program that runs BLAS calls on several threads of its own
 * (the simulator's client pool) sets it to 1, or the two thread pools fight over the cores. */
void fedrec_blas_threads(int n);

#endif
