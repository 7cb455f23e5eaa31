/* Internal (core, and the simulator's client pool): a parallel for-loop over [0, n) on up to `threads` POSIX threads.
 * Work is handed out in chunks from an atomic counter, so uneven items balance. */
#ifndef FEDREC_INTERNAL_PARALLEL_H
#define FEDREC_INTERNAL_PARALLEL_H

#include <stdint.h>

#include "fedrec/status.h"

/* fn(ctx, tid, begin, end) processes [begin, end); tid in [0, threads). It returns a status;
 * the first non-OK status stops the hand-out of further chunks and is returned. */
typedef fedrec_status (*fedrec_range_fn)(void *ctx, int tid, int64_t begin, int64_t end);

fedrec_status fedrec_parallel_for(int threads, int64_t n, int64_t chunk, fedrec_range_fn fn,
                                  void *ctx);

/* Number of online CPUs (at least 1). */
int fedrec_cpu_count(void);

/* OpenBLAS's own thread count: 1 inside our parallel loops, all cores for big kernels. */
void fedrec_blas_threads(int n);

#endif
