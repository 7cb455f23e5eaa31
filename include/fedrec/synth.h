/* The built-in synthetic audio/video catalogue and population.
 *
 * Items belong to topics (genres); each has a p-dimensional content embedding (a noisy
 * topic centroid, as a frozen encoder would produce) and a true latent factor that is
 * partly a linear function of that embedding and partly item-specific. Popularity follows
 * a power law. Users have a latent taste (near some item's factor), two favourite topics
 * and a log-normal history length; they pick items (70% from the first topic, 20% from the
 * second, 10% from anywhere) in proportion to popularity times
 * min(1, exp(tau * (taste . factor - 0.5))).
 * Deterministic for a seed, whatever the number of threads. */
#ifndef FEDREC_SYNTH_H
#define FEDREC_SYNTH_H

#include <stdint.h>

#include "fedrec/data.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fedrec_synth_config {
  int32_t users;         /* 100000 */
  int32_t items;         /* 20000 */
  int32_t content_dim;   /* p, 64 */
  int32_t factors;       /* true latent dimension, 16 */
  int32_t topics;        /* 24 */
  double zipf;           /* popularity exponent, 0.9 */
  double median_len;     /* median history length, 24 */
  double content_share;  /* share of the true factor explained by content, 0.7 */
  double tau;            /* taste sharpness, 5 */
  uint64_t seed;         /* 42 */
  int32_t threads;       /* 0 = all cores */
  int32_t modalities;    /* 0: one content source (above); 1 to 3: that many modalities of
                          * dim each, of known informativeness (docs/MODEL.md "Multimodal
                          * content"): "strong" (90% the true factor, missing for 30% of
                          * items), "weak" (50%, missing for 10%), "noise" (none of it) */
} fedrec_synth_config;

void fedrec_synth_defaults(fedrec_synth_config *c);
/* Parses "key=value,key=value" (keys: users, items, dim, factors, topics, zipf, len,
 * content_share, tau, seed, modalities) into c; unknown keys and bad values are errors. */
fedrec_status fedrec_synth_parse(fedrec_synth_config *c, const char *spec, fedrec_error *err);
fedrec_status fedrec_synth_generate(fedrec_dataset *ds, const fedrec_synth_config *c,
                                    fedrec_error *err);

#ifdef __cplusplus
}
#endif
#endif
